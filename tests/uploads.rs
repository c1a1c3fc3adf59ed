#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! File 無害化 through the real gateway (R-WAF-2): a PDF carrying JavaScript, an open action
//! and an embedded file reaches the upstream without them and still parses; a JPEG's EXIF and
//! a PNG's text chunks are gone and both images still decode; what was removed is in the
//! access record and the `PHR-Neutralised` header. Uploads the route does not accept, files
//! that are not what they claim, archives and unparsable PDFs are refused and never
//! forwarded. Files sent inline in FHIR JSON (`Attachment.data`) are disarmed in place or
//! refused the same way. Bodies longer than pingora's 64 KiB retry buffer are held back by the gateway
//! until all of them has passed: disarmed and forwarded whole, or refused with none of their
//! bytes forwarded; beyond `limits.max_body_bytes`, 413.

mod support;

use lopdf::{dictionary, Document, Object, Stream};
use support::*;

const EXTRA: &str = r#"
[[routes]]
id = "uploads"
methods = ["POST", "PUT"]
path = "/uploads/{*rest}"
upstream = "backend"
category = "public"
anonymous = true
files = ["application/pdf", "image/jpeg", "image/png", "text/csv"]

[[routes]]
id = "scans"
methods = ["POST"]
path = "/scans/{*rest}"
upstream = "backend"
category = "public"
anonymous = true
files = ["image/tiff"]

[[routes]]
id = "notes"
methods = ["POST"]
path = "/notes/{*rest}"
upstream = "backend"
category = "public"
anonymous = true

[limits]
max_body_bytes = 400000
"#;

async fn setup() -> Harness {
    Harness::start(EXTRA).await
}

/// One POST of `body` as `content_type`.
async fn send(s: &Harness, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
    s.client()
        .await
        .send_bytes("POST", path, &[("content-type", content_type)], body)
        .await
        .unwrap()
}

/// A one-page PDF that runs JavaScript when opened, carries an embedded file and a page action.
fn hostile_pdf() -> Vec<u8> {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let content = doc.add_object(Stream::new(
        dictionary! {},
        b"BT /F1 12 Tf 72 720 Td (HbA1c 5.6%) Tj ET".to_vec(),
    ));
    let script = doc.add_object(dictionary! {
        "S" => "JavaScript",
        "JS" => Object::string_literal("app.alert('pwned')"),
    });
    let page = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content,
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        "AA" => dictionary! { "O" => script },
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => vec![page.into()],
            "Count" => 1,
        }),
    );
    let payload = doc.add_object(Stream::new(
        dictionary! { "Type" => "EmbeddedFile" },
        b"MZ not really an exe".to_vec(),
    ));
    let catalog = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
        "OpenAction" => script,
        "Names" => dictionary! {
            "JavaScript" => dictionary! { "Names" => vec![Object::string_literal("a"), script.into()] },
            "EmbeddedFiles" => dictionary! { "Names" => vec![Object::string_literal("x.exe"), dictionary! { "EF" => dictionary! { "F" => payload } }.into()] },
        },
    });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// A 16×16 JPEG with EXIF (a GPS position), IPTC (a name) and a PHP file glued after its end.
fn jpeg_with_exif() -> Vec<u8> {
    let pixels: Vec<u8> = (0..16 * 16 * 3).map(|i| (i % 251) as u8).collect();
    let mut jpeg = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, 90);
    encoder
        .add_app_segment(1, b"Exif\0\0MM\0*\0\0\0\x08\0\0GPS 35.68N 139.76E".to_vec())
        .unwrap();
    encoder
        .add_app_segment(13, b"Photoshop 3.0\0patient name".to_vec())
        .unwrap();
    encoder
        .encode(&pixels, 16, 16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    jpeg.extend_from_slice(b"<?php system($_GET['c']); ?>");
    jpeg
}

/// [`hostile_pdf`] grown past pingora's 64 KiB retry buffer by a long page text.
fn long_hostile_pdf() -> Vec<u8> {
    let mut doc = Document::load_mem(&hostile_pdf()).unwrap();
    let filler: String = (0..4000)
        .map(|i| format!("BT /F1 9 Tf 72 {} Td (line {i:05}) Tj ET\n", 700 - i % 600))
        .collect();
    doc.add_object(Stream::new(dictionary! {}, filler.into_bytes()));
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    assert!(out.len() > 100 * 1024, "{} bytes", out.len());
    out
}

/// `bytes` is [`hostile_pdf`] rebuilt: it parses, its one page keeps its text, and no active
/// part survived (R-WAF-2).
fn assert_pdf_disarmed(bytes: &[u8]) {
    let rebuilt = Document::load_mem(bytes).expect("the rebuilt PDF parses");
    assert_eq!(rebuilt.get_pages().len(), 1, "the page is still there");
    let keys = pdf_keys(&rebuilt);
    for gone in ["JavaScript", "JS", "OpenAction", "AA", "EmbeddedFiles"] {
        assert!(
            !keys.contains(&gone.to_owned()),
            "{gone} survived: {keys:?}"
        );
    }
    let page = rebuilt.get_pages().into_values().next().unwrap();
    let text = rebuilt.get_page_content(page);
    assert!(String::from_utf8_lossy(&text).contains("HbA1c 5.6%"));
}

/// Every dictionary key anywhere in a parsed PDF.
fn pdf_keys(doc: &Document) -> Vec<String> {
    fn walk(object: &Object, keys: &mut Vec<String>) {
        match object {
            Object::Dictionary(d) => {
                for (k, v) in d.iter() {
                    keys.push(String::from_utf8_lossy(k).into_owned());
                    walk(v, keys);
                }
            }
            Object::Stream(s) => walk(&Object::Dictionary(s.dict.clone()), keys),
            Object::Array(items) => items.iter().for_each(|i| walk(i, keys)),
            _ => {}
        }
    }
    let mut keys = Vec::new();
    for object in doc.objects.values() {
        walk(object, &mut keys);
    }
    keys
}

fn multipart(parts: &[(&str, Option<&str>, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "phr-test-boundary-7MA4YWxk";
    let mut body = Vec::new();
    for (name, filename, content_type, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let file = filename.map_or(String::new(), |f| format!("; filename=\"{f}\""));
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"{file}\r\nContent-Type: {content_type}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pdf_loses_its_javascript_and_embedded_files_and_still_parses_r_waf_2() {
    let s = setup().await;
    let pdf = hostile_pdf();
    assert!(pdf_keys(&Document::load_mem(&pdf).unwrap()).contains(&"OpenAction".to_owned()));
    let (content_type, body) = multipart(&[
        ("comment", None, "text/plain", "健診結果".as_bytes()),
        ("report", Some("checkup.pdf"), "application/pdf", &pdf),
    ]);
    let reply = send(&s, "/uploads/a", &content_type, body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.headers["phr-neutralised"], "report");

    let seen = s.forwarded("/uploads/a");
    assert_eq!(seen.headers["phr-neutralised"], "report");
    let boundary = phr_gateway::inspect::multipart::boundary(&content_type).unwrap();
    let parts = phr_gateway::inspect::multipart::parse(&seen.body, boundary)
        .unwrap()
        .parts;
    assert_eq!(parts.len(), 2);
    assert_eq!(
        parts[0].content,
        "健診結果".as_bytes(),
        "a text part is untouched"
    );
    assert_eq!(
        seen.headers["content-length"].to_str().unwrap(),
        seen.body.len().to_string()
    );
    assert_pdf_disarmed(parts[1].content);

    let record = s.record(&reply);
    let changes: Vec<&str> = record["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for removed in [
        "disarmed:report:pdf:JavaScript",
        "disarmed:report:pdf:OpenAction",
        "disarmed:report:pdf:EmbeddedFiles",
        "disarmed:report:pdf:AA",
    ] {
        assert!(changes.contains(&removed), "{record}");
    }

    // `explain` disarms the same upload, given as base64, and names the same changes; a file
    // that is not what it claims is refused there too.
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let request = |content_type: &str, bytes: &[u8]| {
        serde_json::json!({
            "method": "POST", "path": "/uploads/a",
            "headers": [["content-type", content_type]],
            "body": b64(bytes), "body_base64": true,
        })
    };
    let (_, again) = multipart(&[
        ("comment", None, "text/plain", "健診結果".as_bytes()),
        ("report", Some("checkup.pdf"), "application/pdf", &pdf),
    ]);
    let out = explain(
        &s.gateway.policy_path,
        &[request(&content_type, &again), request("image/png", &pdf)],
    );
    assert_eq!(out[0]["reason"], "allow", "{}", out[0]);
    assert_eq!(out[0]["changes"], record["changes"]);
    assert_eq!(out[1]["decision"], "refuse", "{}", out[1]);
    assert_eq!(out[1]["status"], 415, "{}", out[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jpeg_loses_its_exif_and_a_png_its_text_and_both_still_decode_r_waf_2() {
    use img_parts::{ImageEXIF, ImageICC};
    let s = setup().await;
    let jpeg = jpeg_with_exif();
    let parsed = img_parts::jpeg::Jpeg::from_bytes(jpeg.clone().into()).unwrap();
    assert!(parsed.exif().is_some());

    let reply = send(&s, "/uploads/photo", "image/jpeg", jpeg).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = s.forwarded("/uploads/photo");
    let cleaned = img_parts::jpeg::Jpeg::from_bytes(seen.body.clone()).unwrap();
    assert!(cleaned.exif().is_none(), "EXIF survived");
    assert!(cleaned.icc_profile().is_none());
    assert!(
        !seen.body.windows(5).any(|w| w == b"<?php"),
        "the glued-on file survived"
    );
    let mut decoder = jpeg_decoder::Decoder::new(&seen.body[..]);
    let decoded = decoder.decode().expect("the rebuilt JPEG decodes");
    assert_eq!(decoded.len(), 16 * 16 * 3);
    let record = s.record(&reply);
    let changes = record["changes"].to_string();
    for removed in [
        "disarmed:body:jpeg:exif",
        "disarmed:body:jpeg:iptc",
        "disarmed:body:jpeg:trailing-data",
    ] {
        assert!(changes.contains(removed), "{record}");
    }

    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, 4, 4);
        encoder.set_color(png::ColorType::Rgb);
        encoder
            .add_text_chunk("Comment".into(), "patient: Yamada Taro".into())
            .unwrap();
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[200u8; 4 * 4 * 3]).unwrap();
    }
    let reply = send(&s, "/uploads/scan", "image/png", png).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = s.forwarded("/uploads/scan");
    assert!(!seen.body.windows(4).any(|w| w == b"tEXt"), "text survived");
    let decoder = png::Decoder::new(std::io::Cursor::new(seen.body.to_vec()));
    let mut reader = decoder.read_info().expect("the rebuilt PNG decodes");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    assert_eq!(&buf[..3], &[200, 200, 200]);
    assert!(s.record(&reply)["changes"]
        .to_string()
        .contains("disarmed:body:png:tEXt"));
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_not_accepted_or_not_what_they_claim_are_refused_r_waf_2() {
    let s = setup().await;
    let (zip_type, zip_part) = multipart(&[(
        "f",
        Some("r.pdf"),
        "application/pdf",
        b"PK\x03\x04\x14\0\0\0\x08\0",
    )]);
    let (elsewhere_type, elsewhere) = multipart(&[("f", Some("a.png"), "image/png", b"\x89PNG")]);
    // (path, content type, body, status, reason)
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "/uploads/1",
            "image/gif",
            b"GIF89a....".to_vec(),
            415,
            "inspect.file_refused",
        ),
        (
            "/uploads/2",
            "image/jpeg",
            b"<?php system($_GET['c']); ?>".to_vec(),
            415,
            "inspect.file_refused",
        ),
        (
            "/uploads/3",
            &zip_type,
            zip_part,
            415,
            "inspect.file_refused",
        ),
        (
            "/uploads/4",
            "application/pdf",
            b"%PDF-1.7\nnot a pdf at all".to_vec(),
            422,
            "inspect.file_unrebuildable",
        ),
        (
            "/uploads/5",
            "application/octet-stream",
            b"\x7fELF\x02\x01".to_vec(),
            415,
            "inspect.file_refused",
        ),
        // A route without `files` accepts none.
        (
            "/notes/1",
            &elsewhere_type,
            elsewhere,
            415,
            "inspect.file_refused",
        ),
    ];
    for (path, content_type, body, status, reason) in cases {
        let reply = send(&s, path, content_type, body).await;
        assert_eq!(reply.status, status, "{path}: {reply:?}");
        assert_eq!(reply.json()["reason"], reason, "{path}");
        assert_eq!(s.record(&reply)["reason"], reason);
    }
    assert!(
        s.upstream.requests().is_empty(),
        "a refused upload reached the upstream"
    );
    // A listed type the gateway does not rebuild passes unchanged.
    let reply = send(&s, "/uploads/6", "text/csv", b"a,b\n1,2\n".to_vec()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(&s.forwarded("/uploads/6").body[..], b"a,b\n1,2\n");
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A FHIR DocumentReference carrying `file` inline as `content_type`, with a decimal written
/// as a clinician wrote it (`5.60`) and Japanese text, which must reach the upstream as sent.
fn document_reference(content_type: &str, file: &[u8]) -> Vec<u8> {
    format!(
        r#"{{"resourceType":"DocumentReference","status":"current","description":"健診結果 2026","content":[{{"attachment":{{"contentType":"{content_type}","data":"{}","title":"checkup.pdf"}}}}],"extension":[{{"url":"http://example.org/hba1c","valueDecimal":5.60}}]}}"#,
        b64(file)
    )
    .into_bytes()
}

/// The decoded `data` of the first attachment of a forwarded DocumentReference.
fn inline_file(body: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    let data = json["content"][0]["attachment"]["data"].as_str().unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn files_sent_inline_in_fhir_json_are_disarmed_r_waf_2() {
    let s = setup().await;
    // A route without `files` (`/notes`): the PDF is disarmed as it would be as an upload.
    let body = document_reference("application/pdf", &hostile_pdf());
    let reply = send(&s, "/notes/doc", "application/fhir+json", body.clone()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.headers["phr-neutralised"], "content.attachment.data");
    let seen = s.forwarded("/notes/doc");
    assert_eq!(
        seen.headers["content-length"].to_str().unwrap(),
        seen.body.len().to_string()
    );
    assert_pdf_disarmed(&inline_file(&seen.body));
    // Everything but `data` as sent, byte for byte: the decimal keeps its trailing zero.
    let text = String::from_utf8(seen.body.to_vec()).unwrap();
    let original = String::from_utf8(body).unwrap();
    let cut = |t: &str| {
        let start = t.find(r#""data":""#).unwrap();
        let end = start + 8 + t[start + 8..].find('"').unwrap();
        format!("{}{}", &t[..start], &t[end..])
    };
    assert_eq!(cut(&text), cut(&original));
    assert!(text.contains(r#""valueDecimal":5.60"#));
    let changes = s.record(&reply)["changes"].to_string();
    for removed in [
        "disarmed:content.attachment.data:pdf:JavaScript",
        "disarmed:content.attachment.data:pdf:OpenAction",
        "disarmed:content.attachment.data:pdf:EmbeddedFiles",
    ] {
        assert!(changes.contains(removed), "{changes}");
    }

    // A photo loses its EXIF, IPTC and the file glued after it, and still decodes; a route
    // that lists files (`/uploads`) disarms inline files by the same rules as its uploads.
    let photo = jpeg_with_exif();
    for path in ["/notes/photo", "/uploads/photo"] {
        let body = format!(
            r#"{{"resourceType":"Patient","photo":[{{"data":"{}","contentType":"image/jpeg"}}]}}"#,
            b64(&photo)
        );
        let reply = send(&s, path, "application/fhir+json", body.into_bytes()).await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        assert_eq!(reply.headers["phr-neutralised"], "photo.data");
        let seen = s.forwarded(path);
        let json: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
        use base64::Engine as _;
        let cleaned = base64::engine::general_purpose::STANDARD
            .decode(json["photo"][0]["data"].as_str().unwrap())
            .unwrap();
        assert!(!cleaned.windows(5).any(|w| w == b"<?php"), "{path}");
        assert!(
            !cleaned.windows(4).any(|w| w == b"Exif"),
            "{path}: EXIF survived"
        );
        let mut decoder = jpeg_decoder::Decoder::new(&cleaned[..]);
        assert_eq!(decoder.decode().expect("decodes").len(), 16 * 16 * 3);
        assert!(s.record(&reply)["changes"]
            .to_string()
            .contains("disarmed:photo.data:jpeg:exif"));
    }

    // What needs no change passes byte for byte: a GIF photo, text in `data`, a PDF-typed
    // `data` that no PDF reader would open (FHIR's own examples send `SGVsbG8=`).
    for (i, body) in [
        r#"{"resourceType":"Patient","photo":[{"contentType":"image/gif","data":"R0lGODlhAQABAAAAACw="}]}"#,
        r#"{"resourceType":"Observation","valueAttachment":{"contentType":"text/plain","data":"6KGA5Zyn6auY44KB"}}"#,
        r#"{"resourceType":"Communication","payload":[{"contentAttachment":{"contentType":"application/pdf","data":"SGVsbG8="}}]}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/notes/plain{i}");
        let reply = send(&s, &path, "application/fhir+json", body.as_bytes().to_vec()).await;
        assert_eq!(reply.status, 200, "{body}: {reply:?}");
        assert!(!reply.headers.contains_key("phr-neutralised"), "{body}");
        assert_eq!(&s.forwarded(&path).body[..], body.as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn inline_files_that_hide_or_cannot_be_disarmed_are_refused_r_waf_2() {
    let s = setup().await;
    let gif_body = format!(
        r#"{{"resourceType":"Patient","photo":[{{"contentType":"image/gif","data":"{}"}}]}}"#,
        b64(b"GIF89a\x01\0\x01\0")
    );
    let ambiguous = format!(
        r#"{{"resourceType":"Binary","contentType":"image/png","data":"{}","contentType":"application/pdf"}}"#,
        b64(&hostile_pdf())
    );
    let untyped_zip = format!(
        r#"{{"resourceType":"Binary","data":"{}"}}"#,
        b64(b"PK\x03\x04\x14\0\0\0\x08\0")
    );
    // A script inside an inline XML file.
    let xml = format!(
        r#"{{"resourceType":"DocumentReference","content":[{{"attachment":{{"contentType":"application/xml","data":"{}"}}}}]}}"#,
        b64(b"<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>")
    );
    // (path, body, status, reason)
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        // A PDF declared as an image: a viewer that sniffs opens it as a PDF.
        (
            "/notes/1",
            document_reference("image/gif", &hostile_pdf()),
            415,
            "inspect.file_refused",
        ),
        // A PDF behind an HTML page: PDF readers look for `%PDF-` in the first kilobyte.
        (
            "/notes/2",
            document_reference(
                "application/pdf",
                &[b"<html>\n".as_slice(), &hostile_pdf()].concat(),
            ),
            415,
            "inspect.file_refused",
        ),
        (
            "/notes/3",
            document_reference("application/zip", b"anything"),
            415,
            "inspect.file_refused",
        ),
        (
            "/notes/4",
            untyped_zip.into_bytes(),
            415,
            "inspect.file_refused",
        ),
        (
            "/notes/5",
            ambiguous.into_bytes(),
            415,
            "inspect.file_refused",
        ),
        (
            "/notes/6",
            document_reference("application/pdf", b"%PDF-1.7\nnot a pdf at all"),
            422,
            "inspect.file_unrebuildable",
        ),
        ("/notes/7", xml.into_bytes(), 403, "inspect.blocked"),
        // Script under a binary label passes no reader's magic-byte test, yet a reader
        // that sniffs opens it as the page it is: its text is inspected.
        (
            "/notes/7b",
            document_reference(
                "image/png",
                b"<html><body><script>alert(document.cookie)</script></body></html>",
            ),
            403,
            "inspect.blocked",
        ),
        (
            "/notes/7c",
            document_reference("application/octet-stream", b"<svg onload=alert(1)>"),
            403,
            "inspect.blocked",
        ),
        // A file in a body that does not parse: a lenient backend reads the first value.
        (
            "/notes/8",
            [
                document_reference("application/pdf", &hostile_pdf()),
                b" trailing".to_vec(),
            ]
            .concat(),
            400,
            "protocol.malformed_body",
        ),
        // Inside an inline FHIR document, as in the body itself: an archive, a PDF that
        // says it is an image; and files three deep, which the gateway does not take apart.
        (
            "/notes/9",
            document_reference(
                "application/fhir+json",
                &document_reference("application/zip", b"PK\x03\x04anything"),
            ),
            415,
            "inspect.file_refused",
        ),
        (
            "/notes/10",
            document_reference(
                "application/fhir+json",
                &document_reference("image/gif", &hostile_pdf()),
            ),
            415,
            "inspect.file_refused",
        ),
        (
            "/notes/11",
            document_reference(
                "application/fhir+json",
                &document_reference(
                    "application/fhir+json",
                    &document_reference("application/pdf", &hostile_pdf()),
                ),
            ),
            415,
            "inspect.file_refused",
        ),
        // A route that lists files accepts inline only those types.
        (
            "/uploads/1",
            gif_body.into_bytes(),
            415,
            "inspect.file_refused",
        ),
    ];
    for (path, body, status, reason) in cases {
        let reply = send(&s, path, "application/fhir+json", body).await;
        assert_eq!(reply.status, status, "{path}: {reply:?}");
        assert_eq!(reply.json()["reason"], reason, "{path}");
        assert_eq!(s.record(&reply)["reason"], reason, "{path}");
    }
    assert!(
        s.upstream.requests().is_empty(),
        "a refused inline file reached the upstream"
    );
}

/// A FHIR document sent inline (a DocumentReference attached to another, as a document
/// Bundle is) carries files of its own: they are disarmed as the body's own are, and the
/// document is written anew around them (R-WAF-2).
#[tokio::test(flavor = "multi_thread")]
async fn files_inside_an_inline_fhir_document_are_disarmed_r_waf_2() {
    let s = setup().await;
    let inner = document_reference("application/pdf", &hostile_pdf());
    let body = document_reference("application/fhir+json", &inner);
    let reply = send(&s, "/notes/nested", "application/fhir+json", body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // The field changed, named through the file that carries it.
    assert_eq!(
        reply.headers["phr-neutralised"],
        "content.attachment.data/content.attachment.data"
    );
    let seen = s.forwarded("/notes/nested");
    let forwarded_inner = inline_file(&seen.body);
    assert_pdf_disarmed(&inline_file(&forwarded_inner));
    // The inner document is otherwise as sent: its decimal keeps its trailing zero.
    let inner_text = String::from_utf8(forwarded_inner).unwrap();
    assert!(
        inner_text.contains(r#""valueDecimal":5.60"#),
        "{inner_text}"
    );
    assert!(inner_text.contains("健診結果 2026"));
    let changes = s.record(&reply)["changes"].to_string();
    assert!(
        changes.contains("disarmed:content.attachment.data/content.attachment.data:pdf:JavaScript"),
        "{changes}"
    );
    // The same document in FHIR's XML form, sent inline as `application/fhir+xml`.
    let xml = document_reference_xml("application/pdf", &hostile_pdf());
    let body = document_reference("application/fhir+xml", xml.as_bytes());
    let reply = send(&s, "/notes/nested-xml", "application/fhir+json", body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let forwarded_xml =
        String::from_utf8(inline_file(&s.forwarded("/notes/nested-xml").body)).unwrap();
    let (_, rest) = forwarded_xml.split_once(r#"<data value=""#).unwrap();
    let (data, after) = rest.split_once('"').unwrap();
    use base64::Engine as _;
    assert_pdf_disarmed(
        &base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    );
    assert!(after.contains(r#"<title value="checkup.pdf"/>"#), "{after}");
    // The same document uploaded as a multipart file.
    // The same document uploaded as a multipart file, and as a part without a file name.
    let (content_type, body) = multipart(&[
        (
            "document",
            Some("summary.json"),
            "application/fhir+json",
            &inner,
        ),
        ("resource", None, "application/fhir+json", &inner),
    ]);
    let reply = send(&s, "/notes/nested-multipart", &content_type, body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.headers["phr-neutralised"],
        "document/content.attachment.data, resource/content.attachment.data"
    );
    let seen = s.forwarded("/notes/nested-multipart");
    let boundary = phr_gateway::inspect::multipart::boundary(&content_type).unwrap();
    let parts = phr_gateway::inspect::multipart::parse(&seen.body, boundary)
        .unwrap()
        .parts;
    assert_pdf_disarmed(&inline_file(parts[0].content));
    assert_pdf_disarmed(&inline_file(parts[1].content));
    // An inline document whose files need no change is forwarded byte for byte.
    let plain = document_reference(
        "application/fhir+json",
        &document_reference("text/plain", b"BP 120/80"),
    );
    let reply = send(&s, "/notes/plain", "application/fhir+json", plain.clone()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(!reply.headers.contains_key("phr-neutralised"));
    assert_eq!(s.forwarded("/notes/plain").body, plain);
    // An attack in the inner document's own file is found and named by the outer field.
    let attack = document_reference(
        "application/fhir+json",
        &document_reference("text/plain", b"<script>alert(1)</script>"),
    );
    let reply = send(&s, "/notes/attack", "application/fhir+json", attack).await;
    assert_eq!(reply.status, 403, "{reply:?}");
}

/// FHIR's XML form of a DocumentReference with one attachment.
fn document_reference_xml(content_type: &str, file: &[u8]) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><DocumentReference xmlns="http://hl7.org/fhir"><status value="current"/><description value="健診結果 2026"/><content><attachment><contentType value="{content_type}"/><data value="{}"/><title value="checkup.pdf"/></attachment></content></DocumentReference>"#,
        b64(file)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn files_sent_inline_in_fhir_xml_are_disarmed_r_waf_2() {
    let s = setup().await;
    let body = document_reference_xml("application/pdf", &hostile_pdf());
    let reply = send(
        &s,
        "/notes/xml",
        "application/fhir+xml",
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.headers["phr-neutralised"], "content.attachment.data");
    let seen = String::from_utf8(s.forwarded("/notes/xml").body.to_vec()).unwrap();
    // Every byte but the attribute's value as sent.
    let (head, rest) = seen.split_once(r#"<data value=""#).unwrap();
    let (data, tail) = rest.split_once('"').unwrap();
    let (sent_head, sent_rest) = body.split_once(r#"<data value=""#).unwrap();
    assert_eq!(head, sent_head);
    assert_eq!(tail, sent_rest.split_once('"').unwrap().1);
    use base64::Engine as _;
    let rebuilt = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    assert_pdf_disarmed(&rebuilt);
    assert!(s.record(&reply)["changes"]
        .to_string()
        .contains("disarmed:content.attachment.data:pdf:JavaScript"));

    // Refused as in JSON: a PDF declared as an image, an archive, a file in XML that does not
    // parse, a script in the narrative; none forwarded.
    let cases = [
        (
            document_reference_xml("image/gif", &hostile_pdf()),
            415,
            "inspect.file_refused",
        ),
        (
            document_reference_xml("application/zip", b"PK\x03\x04"),
            415,
            "inspect.file_refused",
        ),
        (
            document_reference_xml("application/pdf", &hostile_pdf()).replace("</content>", ""),
            400,
            "protocol.malformed_body",
        ),
        (
            r#"<Patient xmlns="http://hl7.org/fhir"><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>山田</p><img src="x" onerror="alert(1)"/></div></text></Patient>"#.to_owned(),
            403,
            "inspect.blocked",
        ),
    ];
    for (i, (body, status, reason)) in cases.into_iter().enumerate() {
        let path = format!("/notes/xml-refused-{i}");
        let reply = send(&s, &path, "application/fhir+xml", body.into_bytes()).await;
        assert_eq!(reply.status, status, "{i}: {reply:?}");
        assert_eq!(reply.json()["reason"], reason, "{i}");
        assert_eq!(s.record(&reply)["reason"], reason, "{i}");
        assert!(
            s.upstream.requests().iter().all(|r| r.path != path),
            "{i} reached the upstream"
        );
    }
    // An SVG image is XML a browser runs: its script is refused on any route.
    let svg =
        r#"<svg xmlns="http://www.w3.org/2000/svg"><script>fetch('//x.example')</script></svg>"#;
    let reply = send(&s, "/notes/svg", "image/svg+xml", svg.as_bytes().to_vec()).await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(s.upstream.requests().iter().all(|r| r.path != "/notes/svg"));
}

#[test]
fn archives_and_files_without_inspection_are_policy_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    for (bad, expected) in [
        (
            "files = [\"application/zip\"]",
            "`application/zip` is an archive",
        ),
        ("files = [\"pdf\"]", "`pdf` is not a media type"),
    ] {
        let extra = format!(
            "\n[[routes]]\nid = \"r\"\nmethods = [\"POST\"]\npath = \"/r\"\nupstream = \"backend\"\ncategory = \"public\"\nanonymous = true\n{bad}\n"
        );
        let text = policy(&pki, 8443, 8081, "", &extra);
        let line = text.lines().position(|l| l == bad).unwrap() + 1;
        assert_policy_error(dir.path(), &text, line, expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pdf_longer_than_the_retry_buffer_is_held_disarmed_and_forwarded_whole_r_waf_2() {
    let s = setup().await;
    let pdf = long_hostile_pdf();
    let reply = send(&s, "/uploads/long", "application/pdf", pdf.clone()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.headers["phr-neutralised"], "body");

    let seen = s.forwarded("/uploads/long");
    // The rebuilt file's length was not known when the head went: framed chunked.
    assert_eq!(seen.headers["transfer-encoding"], "chunked");
    assert!(seen.headers.get("content-length").is_none());
    assert_pdf_disarmed(&seen.body);
    assert!(
        seen.body.len() > 64 * 1024,
        "the whole file went: {} bytes",
        seen.body.len()
    );
    let record = s.record(&reply);
    assert!(record["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "disarmed:body:pdf:OpenAction"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attack_at_the_end_of_a_long_body_is_refused_with_none_of_it_forwarded_r_waf_1() {
    let s = setup().await;
    // 200 KiB of a patient's notes, the script in the last piece pingora reads.
    let note = "朝食後に血圧を測定。".repeat(7000);
    let body = format!(
        r#"{{"resourceType":"Observation","note":[{{"text":"{note}"}},{{"text":"<script>alert(1)</script>"}}]}}"#
    );
    assert!(body.len() > 200 * 1024);
    let reply = send(
        &s,
        "/notes/long",
        "application/fhir+json",
        body.into_bytes(),
    )
    .await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.json()["reason"], "inspect.blocked");
    let record = s.record(&reply);
    assert_eq!(record["reason"], "inspect.blocked");
    assert!(
        rules(&record).iter().any(|r| r.starts_with("xss-")),
        "{record}"
    );
    // The head may have gone (the connection is dropped after it); the body never did.
    for seen in s.upstream.requests() {
        assert!(
            seen.body.is_empty(),
            "{} body bytes reached the upstream",
            seen.body.len()
        );
    }

    // The same length without the script passes whole, its length kept (nothing to rewrite).
    let body = format!(r#"{{"resourceType":"Observation","note":[{{"text":"{note}"}}]}}"#);
    let reply = send(
        &s,
        "/notes/clean",
        "application/fhir+json",
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = s.forwarded("/notes/clean");
    assert_eq!(seen.body, body.as_bytes());
    assert_eq!(
        seen.headers["content-length"].to_str().unwrap(),
        body.len().to_string()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_max_body_bytes_or_a_long_chunked_one_is_413_and_not_forwarded_r_waf_3() {
    let s = setup().await;
    let reply = send(&s, "/notes/huge", "text/plain", vec![b'a'; 400_001]).await;
    assert_eq!(reply.status, 413, "{reply:?}");
    assert_eq!(reply.json()["reason"], "protocol.body_too_large");
    assert_eq!(s.record(&reply)["reason"], "protocol.body_too_large");

    // Without a declared length the body is read before forwarding: 64 KiB at most.
    let mut raw = String::from(
        "POST /notes/chunked HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for _ in 0..3 {
        raw.push_str(&format!("8000\r\n{}\r\n", "b".repeat(0x8000)));
    }
    raw.push_str("0\r\n\r\n");
    let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, raw.as_bytes())
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("protocol.body_too_large"), "{answer}");
    assert!(
        s.upstream.requests().is_empty(),
        "a refused body reached the upstream"
    );
}

/// A listed type the gateway does not rebuild passes unchanged — unless its bytes are text:
/// a page sent as `image/tiff` is opened as a page by a reader that sniffs, so it is
/// inspected as a text file is (R-WAF-2).
#[tokio::test(flavor = "multi_thread")]
async fn a_listed_file_that_is_text_is_inspected_as_text_r_waf_2() {
    let s = setup().await;
    let tiff: &[u8] = b"II*\0\x08\0\0\0\x01\0\0\x01\x03\0\x01\0\0\0\x01\0\0\0";
    let (content_type, body) = multipart(&[("scan", Some("scan.tif"), "image/tiff", tiff)]);
    let reply = send(&s, "/scans/1", &content_type, body.clone()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(&s.forwarded("/scans/1").body[..], &body[..]);
    let page = b"<html><body><script>alert(document.cookie)</script></body></html>";
    let (content_type, body) = multipart(&[("scan", Some("scan.tif"), "image/tiff", page)]);
    let reply = send(&s, "/scans/2", &content_type, body).await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.json()["reason"], "inspect.blocked");
    assert!(s.upstream.requests().iter().all(|r| r.path != "/scans/2"));
}

/// A backend takes `filename*` (RFC 6266) over `filename`, and parsers differ on which of two
/// repeated parameters counts: each file name a backend may take is inspected, and a repeated
/// parameter is refused (R-WAF-2).
#[tokio::test(flavor = "multi_thread")]
async fn every_file_name_a_backend_may_take_is_inspected_r_waf_2() {
    let s = setup().await;
    let upload = |disposition: &str| {
        let boundary = "phr-test-boundary-7MA4YWxk";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\nContent-Type: text/csv\r\n\r\na,b\n1,2\n\r\n--{boundary}--\r\n"
        );
        (
            format!("multipart/form-data; boundary={boundary}"),
            body.into_bytes(),
        )
    };
    for (disposition, rule) in [
        (
            r#"name="f"; filename*=UTF-8''..%2F..%2F..%2Fvar%2Fwww%2Fhtml%2Fshell.php; filename="ok.csv""#,
            "php-150",
        ),
        (
            r#"name="f"; filename="ok.csv"; filename*=UTF-8''..%2F..%2F..%2Fetc%2Fcron.d%2Fx"#,
            "lfi",
        ),
        (
            r#"name="f"; filename="a.csv"; filename="b.csv""#,
            "multipart-120",
        ),
        (r#"name="f"; name="g"; filename="a.csv""#, "multipart-120"),
    ] {
        let (content_type, body) = upload(disposition);
        let reply = send(&s, "/uploads/named", &content_type, body).await;
        assert_eq!(reply.status, 403, "{disposition}: {reply:?}");
        let rules = s.record(&reply)["rules"].to_string();
        assert!(rules.contains(rule), "{disposition}: {rules}");
    }
    assert!(
        s.upstream.requests().is_empty(),
        "a refused upload was forwarded"
    );
    let (content_type, body) = upload(r#"name="f"; filename*=UTF-8''%E6%A4%9C%E6%9F%BB.csv"#);
    let reply = send(&s, "/uploads/named", &content_type, body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}
