//! Input inspection (issue: inspect): the head of a typical FHIR read, and JSON bodies of a few
//! kilobytes, through `inspect::inspect` as the proxy calls it; the same Bundle through
//! `check_body` on a route that neutralises every note (R-WAF-4); a JPEG and a PDF disarmed,
//! and the JPEG sent inline in a FHIR Patient (R-WAF-2); and the raw-head scan every HTTP/1 request gets (R-WAF-3). docs/performance.md
//! and docs/inspect.md have the figures.

// A benchmark whose set-up fails has nothing to measure: it stops loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{HeaderMap, HeaderValue};
use phr_gateway::inspect::{check_body, disarm, inspect, Mode, RouteInspection, Target};

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

fn bench(c: &mut Criterion) {
    let head = headers(&[
        ("host", "phr.example.test"),
        ("user-agent", "phr-app/1.4 (iOS 17.5)"),
        ("accept", "application/fhir+json"),
        (
            "authorization",
            "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJwLTAwMSJ9.c2ln",
        ),
        ("phr-purpose", "self-management"),
        ("x-request-id", "01a2151b-21a6-711f-a906-242a777c52a4"),
    ]);
    let mut group = c.benchmark_group("inspect");
    group.bench_function("FHIR search head (path, 2 params, 6 headers)", |b| {
        b.iter(|| {
            let found = inspect(black_box(&Target {
                method: &http::Method::GET,
                path: "/fhir/Observation",
                query: Some("patient=p-001&_lastUpdated=gt2026-01-01"),
                headers: &head,
                authority: None,
                body: None,
            }));
            assert!(found.is_empty());
        })
    });
    let json = headers(&[("content-type", "application/fhir+json")]);
    let mut resource = serde_json::json!({
        "resourceType": "Observation", "id": "o-001", "status": "final",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>収縮期血圧 118 mmHg（安静時）</p></div>"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}], "text": "収縮期血圧"},
        "subject": {"reference": "Patient/p-001"},
        "effectiveDateTime": "2026-04-10T09:30:00+09:00",
        "valueQuantity": {"value": 118, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
        "note": [{"text": "朝食前に測定。体調は良好、特記事項なし。"}]
    });
    let entries: Vec<serde_json::Value> = (0..12)
        .map(|i| {
            resource["id"] = serde_json::json!(format!("o-{i:03}"));
            serde_json::json!({"resource": resource.clone(), "request": {"method": "POST", "url": "Observation"}})
        })
        .collect();
    let bundle =
        serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
            .to_string();
    group.throughput(Throughput::Bytes(bundle.len() as u64));
    group.bench_function(format!("FHIR Bundle body, {} bytes", bundle.len()), |b| {
        b.iter(|| {
            let found = inspect(black_box(&Target {
                method: &http::Method::POST,
                path: "/fhir",
                query: None,
                headers: &json,
                authority: None,
                body: Some(bundle.as_bytes()),
            }));
            assert!(found.is_empty());
        })
    });
    // A scanned report sent inline (`Attachment.data`): one long base64 value, the shape that
    // tests inspection's per-byte cost rather than its per-value cost.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let data: String = (0..64 * 1024)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            char::from(alphabet[(seed % 64) as usize])
        })
        .collect();
    let document = serde_json::json!({
        "resourceType": "DocumentReference", "status": "current",
        "subject": {"reference": "Patient/p-001"},
        "content": [{"attachment": {"contentType": "application/pdf", "title": "健診結果", "data": data}}]
    })
    .to_string();
    group.throughput(Throughput::Bytes(document.len() as u64));
    group.bench_function(
        format!(
            "DocumentReference, 64 KiB base64 attachment, {} bytes",
            document.len()
        ),
        |b| {
            b.iter(|| {
                let found = inspect(black_box(&Target {
                    method: &http::Method::POST,
                    path: "/fhir/DocumentReference",
                    query: None,
                    headers: &json,
                    authority: None,
                    body: Some(document.as_bytes()),
                }));
                assert!(found.is_empty());
            })
        },
    );
    let neutralising = RouteInspection {
        mode: Mode::Neutralise,
        neutralise: vec!["entry.resource.note.text".into()],
        ..RouteInspection::default()
    };
    let marked = bundle.replace("体調は良好", "<b>体調は良好</b>");
    group.throughput(Throughput::Bytes(marked.len() as u64));
    group.bench_function(
        format!(
            "FHIR Bundle body, 12 notes neutralised, {} bytes",
            marked.len()
        ),
        |b| {
            b.iter(|| {
                let checked = check_body(black_box(marked.as_bytes()), &json, &neutralising);
                assert_eq!(checked.changes.len(), 1);
            })
        },
    );
    let files = RouteInspection {
        files: disarm::Accepted(vec!["image/jpeg".into(), "application/pdf".into()]),
        ..RouteInspection::default()
    };
    let jpeg = jpeg_with_exif();
    group.throughput(Throughput::Bytes(jpeg.len() as u64));
    group.bench_function(format!("JPEG disarmed (EXIF), {} bytes", jpeg.len()), |b| {
        b.iter(|| {
            let done =
                disarm::disarm("image/jpeg", black_box(&jpeg), &files.files).expect("disarmed");
            assert!(done.content.is_some());
        })
    });
    // The same photo sent inline, as a FHIR app sends it: found, decoded, disarmed and encoded
    // back into the body, on a route that lists no files.
    let patient = {
        use base64::Engine as _;
        format!(
            r#"{{"resourceType":"Patient","name":[{{"text":"山田 太郎"}}],"photo":[{{"contentType":"image/jpeg","data":"{}"}}]}}"#,
            base64::engine::general_purpose::STANDARD.encode(&jpeg)
        )
    };
    group.throughput(Throughput::Bytes(patient.len() as u64));
    group.bench_function(
        format!(
            "Patient with an inline JPEG disarmed (EXIF), {} bytes",
            patient.len()
        ),
        |b| {
            b.iter(|| {
                let checked = check_body(
                    black_box(patient.as_bytes()),
                    &json,
                    &RouteInspection::default(),
                );
                assert!(checked.rewritten.is_some() && checked.refusal.is_none());
            })
        },
    );
    // The same Patient in FHIR's XML form, with a narrative: parsed by quick-xml, the
    // narrative held to its rules, the photo found in `<data value>` and spliced back.
    let patient_xml = {
        use base64::Engine as _;
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Patient xmlns="http://hl7.org/fhir"><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>山田 太郎 (1970-01-01)</p></div></text><name><text value="山田 太郎"/></name><photo><contentType value="image/jpeg"/><data value="{}"/></photo></Patient>"#,
            base64::engine::general_purpose::STANDARD.encode(&jpeg)
        )
    };
    let xml = headers(&[("content-type", "application/fhir+xml")]);
    group.throughput(Throughput::Bytes(patient_xml.len() as u64));
    group.bench_function(
        format!(
            "Patient in XML with an inline JPEG disarmed (EXIF), {} bytes",
            patient_xml.len()
        ),
        |b| {
            b.iter(|| {
                let checked = check_body(
                    black_box(patient_xml.as_bytes()),
                    &xml,
                    &RouteInspection::default(),
                );
                assert!(checked.rewritten.is_some() && checked.refusal.is_none());
            })
        },
    );
    // The nesting bound an XML body is held to before inspection (R-WAF-3): a second pass.
    group.bench_function(
        format!("XML depth counted, {} bytes", patient_xml.len()),
        |b| {
            b.iter(|| {
                let depth = phr_gateway::protocol::xml_depth(black_box(patient_xml.as_bytes()));
                assert_eq!(depth, 4);
            })
        },
    );
    let pdf = pdf_with_javascript();
    group.throughput(Throughput::Bytes(pdf.len() as u64));
    group.bench_function(
        format!("PDF disarmed (OpenAction), {} bytes", pdf.len()),
        |b| {
            b.iter(|| {
                let done = disarm::disarm("application/pdf", black_box(&pdf), &files.files)
                    .expect("disarmed");
                assert!(done.content.is_some());
            })
        },
    );
    let raw = b"GET /fhir/Observation?patient=p-001 HTTP/1.1\r\nHost: phr.example.test\r\nUser-Agent: phr-app/1.4 (iOS 17.5)\r\nAccept: application/fhir+json\r\nAuthorization: Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJwLTAwMSJ9.c2ln\r\nPHR-Purpose: self-management\r\n\r\n";
    group.throughput(Throughput::Bytes(raw.len() as u64));
    group.bench_function("raw HTTP/1 head scan (bare LF, dropped length)", |b| {
        b.iter(|| {
            let flaws = phr_gateway::protocol::RawHead::of(black_box(raw), false);
            assert!(!flaws.bare_line_feed);
        })
    });
    group.finish();
}

/// A 64×64 photo with an EXIF block, as a phone sends it.
fn jpeg_with_exif() -> Vec<u8> {
    let pixels: Vec<u8> = (0..64 * 64 * 3).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 85);
    encoder
        .add_app_segment(1, [b"Exif\0\0".as_slice(), &[0u8; 2048]].concat())
        .expect("exif");
    encoder
        .encode(&pixels, 64, 64, jpeg_encoder::ColorType::Rgb)
        .expect("encode");
    out
}

/// A one-page PDF that runs JavaScript when opened.
fn pdf_with_javascript() -> Vec<u8> {
    use lopdf::{dictionary, Document, Object, Stream};
    let mut doc = Document::with_version("1.7");
    let pages = doc.new_object_id();
    let content = doc.add_object(Stream::new(
        dictionary! {},
        b"BT /F1 12 Tf 72 720 Td (HbA1c 5.6%) Tj ET".repeat(50),
    ));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages, "Contents" => content,
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
    });
    doc.objects.insert(
        pages,
        Object::Dictionary(
            dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 },
        ),
    );
    let script = doc.add_object(
        dictionary! { "S" => "JavaScript", "JS" => Object::string_literal("app.alert(1)") },
    );
    let catalog = doc
        .add_object(dictionary! { "Type" => "Catalog", "Pages" => pages, "OpenAction" => script });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("pdf");
    out
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
