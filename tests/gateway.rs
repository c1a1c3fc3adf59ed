#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! The gateway end to end: the real binary, real TLS handshakes, a real upstream.

mod support;

use std::time::Duration;

use rustls::version::{TLS12, TLS13};
use support::*;

struct Setup {
    _dir: tempfile::TempDir,
    pki: TestPki,
    upstream: Upstream,
    gateway: Gateway,
}

async fn setup_with(tls_extra: &str, extra: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path(), "server");
    let upstream = Upstream::start().await;
    let port = free_port();
    let gateway = Gateway::start(
        dir.path(),
        &policy(&pki, port, upstream.port, tls_extra, extra),
        port,
    );
    Setup {
        _dir: dir,
        pki,
        upstream,
        gateway,
    }
}

async fn setup() -> Setup {
    setup_with("", "").await
}

fn h1(s: &Setup) -> std::sync::Arc<rustls::ClientConfig> {
    client_config(&s.pki.ca_der, &[&TLS13], &[b"http/1.1"])
}

#[tokio::test(flavor = "multi_thread")]
async fn tls13_request_is_forwarded_and_hardened_r_tls_1_r_tls_3() {
    let s = setup().await;
    let tls = connect(s.gateway.port, h1(&s))
        .await
        .expect("TLS 1.3 handshake");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    drop(tls);

    let reply = get(s.gateway.port, h1(&s), "/anon/hello", &[])
        .await
        .expect("request");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "upstream-ok /anon/hello 0");
    assert_eq!(
        reply.headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    assert!(
        reply.headers.get("server").is_none(),
        "upstream banner passed on"
    );
    assert!(reply.headers.get("x-powered-by").is_none());
    let id = reply.headers["x-request-id"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(id.len(), 36);
    let seen = s.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["x-request-id"], id.as_str());
}

/// A backend that answers with its own address (a FHIR create's `Location`, from its
/// configured base) would send a client that follows it past the gateway, bearer token in
/// plaintext: the gateway writes the address the client used instead, over both protocols.
#[tokio::test(flavor = "multi_thread")]
async fn the_upstreams_own_address_in_location_becomes_the_public_one() {
    let s = setup().await;
    let own = format!("http://127.0.0.1:{}", s.upstream.port);
    let h2 = client_config(&s.pki.ca_der, &[&TLS13], &[b"h2"]);
    for config in [h1(&s), h2] {
        for (asked, expected) in [
            (
                "{own}/anon/created/1",
                "https://localhost/anon/created/1".to_owned(),
            ),
            ("{OWN}?x=1", "https://localhost/?x=1".to_owned()),
            // Not the upstream's own: another port, another host, a relative reference.
            ("{own}0/anon/x", format!("{own}0/anon/x")),
            (
                "https://other.example/x",
                "https://other.example/x".to_owned(),
            ),
            ("/anon/relative", "/anon/relative".to_owned()),
        ] {
            let reply = get(
                s.gateway.port,
                config.clone(),
                "/anon/create",
                &[("x-test-location", asked)],
            )
            .await
            .expect("request");
            assert_eq!(reply.status, 200, "{reply:?}");
            for name in ["location", "content-location"] {
                assert_eq!(reply.headers[name], expected.as_str(), "{name} for {asked}");
            }
            // A pagination `Link` to the same URL is made public the same way.
            assert_eq!(
                reply.headers["link"],
                format!("<{expected}>; rel=\"next\"").as_str(),
                "link for {asked}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_cookie_the_upstream_sets_reaches_the_client_marked_secure_r_tls_3() {
    let s = setup().await;
    let h2 = client_config(&s.pki.ca_der, &[&TLS13], &[b"h2"]);
    for config in [h1(&s), h2] {
        let reply = get(
            s.gateway.port,
            config,
            "/anon/cookies",
            &[
                ("x-test-set-cookie", "sid=s3cr3t; Path=/; HttpOnly"),
                ("x-test-set-cookie", "pref=ja; Secure"),
            ],
        )
        .await
        .expect("request");
        assert_eq!(reply.status, 200, "{reply:?}");
        let cookies: Vec<_> = reply.headers.get_all("set-cookie").iter().collect();
        assert_eq!(
            cookies,
            ["sid=s3cr3t; Path=/; HttpOnly; Secure", "pref=ja; Secure"],
            "{:?}",
            reply.version
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn h2_and_http11_both_work() {
    let s = setup().await;
    let h2 = client_config(&s.pki.ca_der, &[&TLS13], &[b"h2"]);
    let reply = get(s.gateway.port, h2, "/anon/two", &[])
        .await
        .expect("h2 request");
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let reply = get(s.gateway.port, h1(&s), "/anon/one", &[])
        .await
        .expect("h1 request");
    assert_eq!(reply.version, http::Version::HTTP_11);
    assert_eq!(reply.status, 200);
    let seen = s.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].headers["host"], "localhost",
        "h2 :authority becomes Host"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls12_only_client_is_refused_by_default_r_tls_1() {
    let s = setup().await;
    let tls12 = client_config(&s.pki.ca_der, &[&TLS12], &[b"http/1.1"]);
    assert!(
        connect(s.gateway.port, tls12).await.is_err(),
        "TLS 1.2 handshake succeeded"
    );
    // The listener still serves TLS 1.3 after refusing.
    assert_eq!(
        get(s.gateway.port, h1(&s), "/anon/x", &[])
            .await
            .map(|r| r.status)
            .ok(),
        Some(200)
    );
}

/// A TLS 1.2 ClientHello offering only the given suites, with the extensions an ECDHE
/// handshake needs (groups, point formats, signature algorithms).
fn client_hello_tls12(suites: &[u16]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    let mut ext = Vec::new();
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x17, 0x00, 0x1d]);
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    ext.extend_from_slice(&[0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x08, 0x04]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

/// Send a raw ClientHello and return the first record type the server answers with
/// (0x16 handshake = ServerHello, 0x15 alert), or None if it closed.
async fn first_record_type(port: u16, hello: &[u8]) -> Option<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    tcp.write_all(hello).await.ok()?;
    let mut first = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut first)).await {
        Ok(Ok(_)) => Some(first[0]),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls12_opt_in_allows_only_ecdhe_aead_r_tls_1() {
    let s = setup_with("allow_tls12 = true", "").await;
    let tls12 = client_config(&s.pki.ca_der, &[&TLS12], &[b"http/1.1"]);
    let tls = connect(s.gateway.port, tls12.clone())
        .await
        .expect("TLS 1.2 ECDHE-GCM handshake");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    drop(tls);
    assert_eq!(
        get(s.gateway.port, tls12, "/anon/x", &[])
            .await
            .map(|r| r.status)
            .ok(),
        Some(200)
    );

    // Control: the hand-made hello gets a ServerHello when it offers ECDHE-ECDSA-AES128-GCM.
    assert_eq!(
        first_record_type(s.gateway.port, &client_hello_tls12(&[0xc02b])).await,
        Some(0x16)
    );
    // CBC suites with ECDHE, and static-RSA key exchange (GCM or CBC): refused with an alert.
    for suite in [0xc009u16, 0xc013, 0xc023, 0x009c, 0x002f, 0x0035, 0x000a] {
        assert_eq!(
            first_record_type(s.gateway.port, &client_hello_tls12(&[suite])).await,
            Some(0x15),
            "suite {suite:#06x} was not refused"
        );
    }
}

/// A refusal of a `HEAD` is its head alone (RFC 9110 section 9.3.2), over both protocols:
/// over HTTP/2 a DATA frame after it makes the client reset the stream, and over HTTP/1.1 the
/// bytes would be read as the start of the next response. The connection serves on.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_head_is_answered_without_a_body_on_both_protocols() {
    let s = setup().await;
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let config = client_config(&s.pki.ca_der, &[&TLS13], &[alpn]);
        let mut client = Client::open(s.gateway.port, config).await.expect("connect");
        for (path, status) in [("/fhir/Patient/p-1", 401), ("/admin/secrets", 404)] {
            let reply = client
                .send("HEAD", path, &[], "")
                .await
                .unwrap_or_else(|e| panic!("HEAD {path} over {alpn:?}: {e:?}"));
            assert_eq!(reply.status, status, "{path}");
            assert!(reply.body.is_empty(), "{path}: {reply:?}");
            assert!(reply.headers.contains_key("x-request-id"));
        }
        let reply = client.send("GET", "/anon/x", &[], "").await.expect("GET");
        assert_eq!(reply.status, 200, "{alpn:?}: {reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn undeclared_path_is_404_problem_and_never_forwarded_r_az_1() {
    let s = setup().await;
    let reply = get(s.gateway.port, h1(&s), "/admin/secrets", &[])
        .await
        .expect("request");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert_eq!(
        reply.headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let problem = reply.json();
    assert_eq!(problem["reason"], "route.not_found");
    assert_eq!(problem["type"], "urn:phr-gateway:problem:route.not_found");
    assert_eq!(problem["status"], 404);
    assert_eq!(
        problem["request_id"],
        reply.headers["x-request-id"].to_str().unwrap_or("?")
    );

    let reply = get(s.gateway.port, h1(&s), "/anon/../fhir/Patient/1", &[])
        .await
        .expect("request");
    assert_eq!(reply.json()["reason"], "route.path_not_canonical");
    // A letter sent percent-encoded is the same path to a backend that decodes it: a
    // catch-all route must not be reached by `/fhir/%50atient/1` (docs/policy.md, Matching).
    for path in ["/anon/%78", "/anon/x%zz", "/anon/%u0078"] {
        let reply = get(s.gateway.port, h1(&s), path, &[])
            .await
            .expect("request");
        assert_eq!(reply.status, 400, "{path}");
        assert_eq!(reply.json()["reason"], "route.path_not_canonical", "{path}");
    }

    let mut client = Client::open(s.gateway.port, h1(&s)).await.expect("connect");
    let reply = client
        .send("DELETE", "/anon/x", &[], "")
        .await
        .expect("request");
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["allow"], "GET, POST, HEAD");
    assert_eq!(reply.json()["reason"], "route.method_not_allowed");

    // Not anonymous, and no identity can be verified yet: fail closed (R-AUTH-1).
    let reply = client
        .send("GET", "/fhir/Patient/p-1", &[], "")
        .await
        .expect("request");
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["reason"], "identity.missing");
    assert!(reply.headers["www-authenticate"]
        .to_str()
        .unwrap_or("")
        .starts_with("Bearer"));

    assert!(
        s.upstream.requests().is_empty(),
        "a refused request reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_framing_is_refused_and_never_forwarded_r_waf_3() {
    let s = setup().await;
    let cases: &[&[u8]] = &[
        b"POST /anon/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /anon/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST /anon/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /anon/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello",
        b"POST /anon/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST /anon/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    ];
    for raw in cases {
        let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, raw)
            .await
            .expect("exchange");
        let status_line = answer.lines().next().unwrap_or("");
        assert!(
            status_line.starts_with("HTTP/1.1 400"),
            "{}: {answer}",
            String::from_utf8_lossy(raw)
        );
        // One answer, then the connection is closed: nothing after it is read as a request.
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    }
    assert!(
        s.upstream.requests().is_empty(),
        "an ambiguous request reached the upstream"
    );
    // A well-framed body still passes.
    let ok = raw_exchange(
        s.gateway.port,
        &s.pki.ca_der,
        b"POST /anon/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await
    .expect("exchange");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.ends_with("upstream-ok /anon/x 5"), "{ok}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_and_spoofed_forwarding_headers_do_not_reach_upstream() {
    let s = setup().await;
    let reply = get(
        s.gateway.port,
        h1(&s),
        "/anon/headers",
        &[
            ("x-forwarded-for", "10.9.9.9"),
            ("forwarded", "for=10.9.9.9;proto=http"),
            ("x-real-ip", "10.9.9.9"),
            ("x-forwarded-proto", "http"),
            ("x-request-id", "chosen-by-client"),
            ("connection", "keep-alive, x-private-hop"),
            ("x-private-hop", "secret"),
            ("keep-alive", "timeout=100"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic dXNlcjpwYXNz"),
            // What frameworks read in place of the standard names.
            ("x-forwarded-ssl", "off"),
            ("x-original-host", "evil.example"),
            ("x-cluster-client-ip", "10.9.9.9"),
            // What an authenticating proxy asserts (R-AUTH-1).
            ("x-forwarded-user", "admin"),
            ("remote-user", "admin"),
            ("x-ssl-client-verify", "SUCCESS"),
            ("x-ms-client-principal-name", "admin"),
            ("accept", "application/fhir+json"),
        ],
    )
    .await
    .expect("request");
    assert_eq!(reply.status, 200);
    let seen = s.upstream.requests();
    let h = &seen[0].headers;
    assert_eq!(
        h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
        vec!["127.0.0.1"]
    );
    assert_eq!(
        h["forwarded"],
        "for=127.0.0.1;proto=https;host=\"localhost\""
    );
    assert_eq!(h["x-forwarded-proto"], "https");
    assert!(h.get("x-real-ip").is_none());
    assert_ne!(h["x-request-id"], "chosen-by-client");
    for hop in [
        "x-private-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
        "x-forwarded-ssl",
        "x-original-host",
        "x-cluster-client-ip",
        "x-forwarded-user",
        "remote-user",
        "x-ssl-client-verify",
        "x-ms-client-principal-name",
    ] {
        assert!(h.get(hop).is_none(), "{hop} reached the upstream");
    }
    assert_eq!(h["accept"], "application/fhir+json");
}

/// `[listeners] hosts` (R-NET-2): with no list any host is served; once a reload lists the
/// names the gateway serves, a request naming another, over HTTP/1 or HTTP/2, is answered
/// 421 before it is routed, recorded, and never forwarded. The served name passes with any
/// port, case or trailing dot.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_the_policy_does_not_serve_is_refused_421_r_net_2() {
    let h = Harness::start("").await;
    let raw = |host: &str, path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };
    let exchange = |host: &'static str, path: &'static str| {
        let (port, ca) = (h.gateway.port, h.pki.ca_der.clone());
        let request = raw(host, path);
        async move {
            raw_exchange(port, &ca, request.as_bytes())
                .await
                .expect("exchange")
        }
    };
    let before = exchange("127.0.0.1", "/anon/served-by-address").await;
    assert!(
        before.starts_with("HTTP/1.1 200"),
        "no list, any host: {before}"
    );

    let text = std::fs::read_to_string(&h.gateway.policy_path).expect("policy");
    std::fs::write(&h.gateway.policy_path, with_hosts(&text, &["localhost"])).expect("write");
    h.gateway.reload();
    assert!(
        h.gateway.log().contains("policy reloaded"),
        "{}",
        h.gateway.log()
    );

    for (host, path) in [
        ("localhost", "/anon/served-1"),
        ("LocalHost:8443", "/anon/served-2"),
        ("localhost.", "/anon/served-3"),
    ] {
        let answer = exchange(host, path).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
    for host in [
        "127.0.0.1",
        "evil.example",
        "localhost.evil.example",
        "xlocalhost",
    ] {
        let answer = exchange(host, "/anon/refused").await;
        assert!(answer.starts_with("HTTP/1.1 421"), "{host}: {answer}");
        assert!(answer.contains("route.host_not_served"), "{host}: {answer}");
    }
    let h2 = client_config(&h.pki.ca_der, &[&TLS13], &[b"h2"]);
    let reply = get(
        h.gateway.port,
        h2.clone(),
        "https://evil.example/anon/refused",
        &[],
    )
    .await
    .expect("h2 request");
    assert_eq!(reply.status, 421);
    assert_eq!(reply.json()["reason"], "route.host_not_served");
    let reply = get(h.gateway.port, h2, "/anon/served-h2", &[])
        .await
        .expect("h2 request");
    assert_eq!(reply.status, 200, "h2 :authority localhost is served");

    assert_eq!(h.records_with_reason("route.host_not_served", 5).len(), 5);
    let forwarded: Vec<String> = h.upstream.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(forwarded.iter().filter(|p| p.contains("served")).count(), 5);
    assert!(
        !forwarded.iter().any(|p| p.contains("refused")),
        "a request for a host not served reached the upstream: {forwarded:?}"
    );
}

/// An absolute-form target (`GET https://host/path`) reaches the upstream in origin-form, with
/// the same headers stripped and set as any request; one naming another host than `Host` is
/// refused, since the backend would serve the host in the target (RFC 9112 section 3.2.2),
/// and so is an HTTP/2 `:authority` that disagrees with `Host`.
#[tokio::test(flavor = "multi_thread")]
async fn an_absolute_form_target_goes_upstream_as_origin_form_r_waf_3() {
    let s = setup().await;
    let spoofed = "X-Forwarded-For: 10.9.9.9\r\nX-Real-IP: 10.9.9.9\r\n\
                   X-Request-Id: chosen-by-client\r\nTE: trailers\r\n\
                   X-Phr-Subject: someone-else\r\nAccept: application/fhir+json\r\n";
    let targets: [&[u8]; 2] = [b"/anon/headers", b"https://localhost/anon/headers"];
    for target in targets {
        let mut raw = b"GET ".to_vec();
        raw.extend_from_slice(target);
        raw.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\n");
        raw.extend_from_slice(spoofed.as_bytes());
        raw.extend_from_slice(b"Connection: close\r\n\r\n");
        let shown = String::from_utf8_lossy(target).into_owned();
        let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, &raw)
            .await
            .expect("exchange");
        assert!(answer.starts_with("HTTP/1.1 200"), "{shown}: {answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(
            lower.contains("\r\nstrict-transport-security: max-age=31536000"),
            "{answer}"
        );
        assert!(!lower.contains("\r\nserver:"), "{answer}");
        let seen = s.upstream.requests();
        let last = seen.last().expect("forwarded");
        if shown.starts_with("https://") {
            assert_eq!(last.path, "/anon/headers", "{shown} went upstream as is");
        }
        let h = &last.headers;
        assert_eq!(
            h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
            vec!["127.0.0.1"],
            "{shown}"
        );
        assert!(h.get("x-real-ip").is_none(), "{shown}");
        assert!(h.get("te").is_none(), "{shown}");
        assert!(h.get("x-phr-subject").is_none(), "{shown}");
        assert_ne!(h["x-request-id"], "chosen-by-client", "{shown}");
        assert_eq!(h["accept"], "application/fhir+json", "{shown}");
    }
    assert_eq!(s.upstream.requests().len(), targets.len());

    // pingora refuses these itself, over HTTP/1 (the authority must equal Host byte for byte)
    // and HTTP/2 alike; the gateway's own check (`protocol::check_host`) stands behind it.
    for target in [
        "https://admin.internal/anon/headers",
        "https://localhost:8443/anon/headers",
    ] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, raw.as_bytes())
            .await
            .expect("exchange");
        assert!(answer.starts_with("HTTP/1.1 400"), "{target}: {answer}");
    }
    let h2 = client_config(&s.pki.ca_der, &[&TLS13], &[b"h2"]);
    let reply = get(
        s.gateway.port,
        h2,
        "https://admin.internal/anon/headers",
        &[("host", "localhost")],
    )
    .await
    .expect("h2 request");
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(
        s.upstream.requests().len(),
        targets.len(),
        "a refused one went upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_with_broken_policy_keeps_old_routes_r_ops_2() {
    let s = setup().await;
    let good = std::fs::read_to_string(&s.gateway.policy_path).expect("policy");

    std::fs::write(
        &s.gateway.policy_path,
        good.replace("[[routes]]", "[[routes]]\nbogus_key = 1"),
    )
    .expect("write");
    s.gateway.reload();
    let log = s.gateway.log();
    assert!(log.contains("policy reload failed"), "{log}");
    assert!(log.contains("unknown field `bogus_key`"), "{log}");
    let reply = get(s.gateway.port, h1(&s), "/anon/still-here", &[])
        .await
        .expect("request");
    assert_eq!(reply.status, 200, "old policy no longer served");

    // A valid change is taken: a new anonymous route appears.
    let extended = format!(
        "{good}\n[[routes]]\nid = \"new\"\nmethods = [\"GET\"]\npath = \"/new\"\nupstream = \"backend\"\ncategory = \"public\"\nanonymous = true\n"
    );
    assert_eq!(
        get(s.gateway.port, h1(&s), "/new", &[])
            .await
            .map(|r| r.status)
            .ok(),
        Some(404)
    );
    std::fs::write(&s.gateway.policy_path, extended).expect("write");
    s.gateway.reload();
    assert_eq!(
        get(s.gateway.port, h1(&s), "/new", &[])
            .await
            .map(|r| r.status)
            .ok(),
        Some(200)
    );

    // A start-only change is refused and says so.
    std::fs::write(
        &s.gateway.policy_path,
        good.replace("[tls]", "[tls]\nallow_tls12 = true"),
    )
    .expect("write");
    s.gateway.reload();
    assert!(
        s.gateway.log().contains("tls.allow_tls12"),
        "{}",
        s.gateway.log()
    );
    assert_eq!(
        get(s.gateway.port, h1(&s), "/new", &[])
            .await
            .map(|r| r.status)
            .ok(),
        Some(200)
    );
}

/// A SIGHUP sent as soon as the gateway says it is configured, before its services have run,
/// reloads the policy; it used to find no listener yet and end the process (SIGHUP's
/// default), which a loaded CI machine showed.
#[tokio::test(flavor = "multi_thread")]
async fn a_sighup_while_the_gateway_starts_reloads_it_r_ops_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path(), "server");
    let upstream = Upstream::start().await;
    let port = free_port();
    let mut gateway = Gateway::spawn(dir.path(), &policy(&pki, port, upstream.port, "", ""), port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !gateway.log().contains("gateway configured") {
        assert!(std::time::Instant::now() < deadline, "{}", gateway.log());
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    gateway.signal(nix::sys::signal::Signal::SIGHUP);
    gateway.wait_ready(port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gateway.log().contains("policy reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload: {}",
            gateway.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let s = Setup {
        _dir: dir,
        pki,
        upstream,
        gateway,
    };
    let reply = get(s.gateway.port, h1(&s), "/anon/still-here", &[])
        .await
        .expect("request");
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn renewed_certificate_is_served_to_next_connection_r_tls_2() {
    let s = setup_with("watch_interval_secs = 1", "").await;
    let old = h1(&s);
    let mut open = Client::open(s.gateway.port, old.clone())
        .await
        .expect("connect");
    assert_eq!(
        open.send("GET", "/anon/a", &[], "")
            .await
            .map(|r| r.status)
            .ok(),
        Some(200)
    );

    // A broken renewal keeps the old certificate.
    std::fs::write(
        &s.pki.cert_path,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    s.gateway.reload();
    assert!(
        s.gateway
            .log()
            .contains("keeping the certificate in service"),
        "{}",
        s.gateway.log()
    );
    assert!(
        connect(s.gateway.port, old.clone()).await.is_ok(),
        "old certificate no longer served"
    );

    // A real renewal, from another CA, written over the same files, picked up by the file watch.
    let renewed_ca = phr_gateway::pki::DevCa::new("renewal CA").expect("ca");
    let renewed = renewed_ca.issue_server(&["localhost"]).expect("cert");
    std::fs::write(&s.pki.key_path, &renewed.key_pem).expect("write key");
    std::fs::write(&s.pki.cert_path, &renewed.cert_pem).expect("write cert");
    let new = client_config(
        &rustls::pki_types::CertificateDer::from(renewed_ca.cert_der()),
        &[&TLS13],
        &[b"http/1.1"],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if connect(s.gateway.port, new.clone()).await.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "renewed certificate not served: {}",
            s.gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A fresh client (no session to resume) that trusts only the old CA is refused.
    assert!(
        connect(s.gateway.port, h1(&s)).await.is_err(),
        "old certificate still served"
    );
    // The connection opened before the renewal was not dropped.
    assert_eq!(
        open.send("GET", "/anon/b", &[], "")
            .await
            .map(|r| r.status)
            .ok(),
        Some(200)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests() {
    let s = setup().await;
    let port = s.gateway.port;
    let config = h1(&s);
    let slow = tokio::spawn(async move {
        get(port, config, "/anon/slow", &[])
            .await
            .map(|r| r.status)
            .ok()
    });
    // SIGTERM once the request is in flight: at the upstream, answered 1.5 s later. (A fixed
    // 300 ms wait failed once in CI: on a loaded machine the request had not reached the
    // gateway yet, and a draining gateway takes no new connection.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s
        .upstream
        .slow_arrived
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow request never reached the upstream: {}",
            s.gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.gateway.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        slow.await.ok().flatten(),
        Some(200),
        "in-flight request was cut: {}",
        s.gateway.log()
    );
    let mut s = s;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = s.gateway.child.try_wait() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gateway did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_connections_are_reused() {
    let s = setup().await;
    for i in 0..5 {
        // A new client connection each time: reuse is the gateway's pool, not the client's.
        let reply = get(s.gateway.port, h1(&s), &format!("/anon/{i}"), &[])
            .await
            .expect("request");
        assert_eq!(reply.status, 200);
    }
    assert_eq!(s.upstream.requests().len(), 5);
    let opened = s
        .upstream
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(opened, 1, "each request opened its own upstream connection");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_body_gets_a_problem_and_the_connection_closes_r_waf_3() {
    let s = setup().await;
    let raw = b"POST /anon/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\nGET /anon/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, raw)
        .await
        .expect("exchange");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("\"reason\":\"protocol.malformed_body\""),
        "{answer}"
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{answer}"
    );
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    // Bodies stream to the upstream as they arrive, so the head already reached it; what
    // followed the broken chunk never did. (Inspection will buffer bodies before forwarding.)
    assert!(
        s.upstream
            .requests()
            .iter()
            .all(|r| r.path != "/anon/smuggled"),
        "bytes after a broken chunk were read as a request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_header_is_refused_and_never_forwarded_r_waf_3() {
    let s = setup().await;
    for raw in [
        &b"GET /anon/x HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n"[..],
        &b"GET /anon/x HTTP/1.1\r\nHost: localhost\r\nX-A: a\rb\r\n\r\n"[..],
    ] {
        let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, raw)
            .await
            .expect("exchange");
        // pingora answers a head it cannot parse itself, before any gateway hook runs, so
        // this 400 has no problem body (docs/architecture.md).
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    assert!(
        s.upstream.requests().is_empty(),
        "a malformed head was forwarded"
    );
}
