#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! The admin listener (R-AUTH-4, R-NET-3, R-OPS-1) through the real gateway: mutual TLS with
//! client certificates made at test time, admin tokens signed with a real key, every call in
//! the state log, emergency stop and read-only mode seen by real user requests, and /metrics
//! parsed as Prometheus text.

mod support;

use std::path::PathBuf;

use http::{Method, StatusCode};
use phr_gateway::admin::client::AdminClient;
use rustls::version::TLS13;
use serde_json::{json, Value};
use support::issuer::*;
use support::*;

struct Setup {
    dir: tempfile::TempDir,
    pki: TestPki,
    upstream: Upstream,
    gateway: Gateway,
    key: TestKey,
    admin_port: u16,
    /// The CA that issues administrators' certificates.
    admin_ca: phr_gateway::pki::DevCa,
    admin_ca_path: PathBuf,
}

fn admins_toml(with_alice: bool) -> String {
    let alice = if with_alice {
        "[[admins]]\nname = \"alice\"\ncertificate_cn = \"alice\"\n"
    } else {
        ""
    };
    format!("{alice}\n[[admins]]\nname = \"bob\"\ntoken_subject = \"bob-admin\"\n")
}

fn policy_text(
    s_pki: &TestPki,
    port: u16,
    upstream: u16,
    admin_port: u16,
    ca: &str,
    with_alice: bool,
) -> String {
    let extra = format!(
        r#"
[[routes]]
id = "notes"
methods = ["GET", "POST"]
path = "/notes/{{id}}"
upstream = "backend"
category = "vitals"

[admin]
listen = "127.0.0.1:{admin_port}"
client_ca = "{ca}"
token_issuer = "test-idp"
token_role = "phr-admin"

{admins}
"#,
        admins = admins_toml(with_alice)
    ) + &issuer_toml("jwks_file = \"jwks.json\"");
    policy(s_pki, port, upstream, "", &extra)
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let key = TestKey::es256("admin-test-1");
    std::fs::write(dir.path().join("jwks.json"), jwks(&[&key])).unwrap();
    let admin_ca = phr_gateway::pki::DevCa::new("admin test CA").unwrap();
    let admin_ca_path = dir.path().join("admin-ca.crt");
    std::fs::write(&admin_ca_path, admin_ca.cert_pem()).unwrap();
    let upstream = Upstream::start().await;
    let (port, admin_port) = (free_port(), free_port());
    let text = policy_text(
        &pki,
        port,
        upstream.port,
        admin_port,
        &admin_ca_path.display().to_string(),
        true,
    );
    let mut gateway = Gateway::start(dir.path(), &text, port);
    gateway.wait_ready(admin_port);
    Setup {
        dir,
        pki,
        upstream,
        gateway,
        key,
        admin_port,
        admin_ca,
        admin_ca_path,
    }
}

impl Setup {
    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.admin_port)
    }

    /// An admin client with a client certificate of `cn` from `ca`.
    fn with_certificate(&self, ca: &phr_gateway::pki::DevCa, cn: &str) -> AdminClient {
        let (cert, key) = ca
            .issue_client(cn)
            .unwrap()
            .write(self.dir.path(), &format!("client-{cn}"))
            .unwrap();
        AdminClient::new(
            &self.url(),
            Some(&self.pki.ca_path),
            Some((&cert, &key)),
            None,
            Some("localhost"),
        )
        .unwrap()
    }

    fn with_token(&self, token: Option<String>) -> AdminClient {
        AdminClient::new(
            &self.url(),
            Some(&self.pki.ca_path),
            None,
            token,
            Some("localhost"),
        )
        .unwrap()
    }

    fn alice(&self) -> AdminClient {
        self.with_certificate(&self.admin_ca, "alice")
    }

    fn state_events(&self) -> Vec<Value> {
        phr_gateway::audit::segment::read_records(&self.dir.path().join("audit/state")).unwrap()
    }

    async fn user(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let config = client_config(&self.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
        Client::open(self.gateway.port, config)
            .await
            .unwrap()
            .send(method, path, headers, "")
            .await
            .unwrap()
    }
}

async fn call(
    client: &AdminClient,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    client.call(method, path, body).await.unwrap()
}

/// Whether a line of `/metrics` satisfies `wanted` within 5 s: counters move after the
/// answer that made them goes out.
async fn metrics_show(client: &AdminClient, wanted: impl Fn(&str) -> bool) -> bool {
    for _ in 0..50 {
        let (_, text) = call(client, Method::GET, "/metrics", None).await;
        if text.lines().any(&wanted) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

fn admin_token(s: &Setup, sub: &str, roles: &[&str], mfa: bool) -> String {
    let mut claims = mfa_claims(sub);
    claims["roles"] = json!(roles);
    if !mfa {
        claims["amr"] = json!(["pwd"]);
    }
    s.key.sign(&claims)
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_are_named_and_everyone_else_is_refused_and_recorded_r_auth_4() {
    let s = setup().await;
    // Health probes need no credential.
    let anonymous = s.with_token(None);
    assert_eq!(
        call(&anonymous, Method::GET, "/healthz", None).await.0,
        StatusCode::OK
    );
    // The admin listener's answers are hardened as the proxy's are (R-TLS-3); its refusals
    // too, below.
    let (_, headers, _) = anonymous
        .call_with_headers(Method::GET, "/healthz", None)
        .await
        .unwrap();
    assert_eq!(
        headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(
        call(&anonymous, Method::GET, "/readyz", None).await.0,
        StatusCode::OK
    );
    let (status, headers, _) = anonymous
        .call_with_headers(Method::GET, "/status", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");

    // alice by certificate.
    let (status, body) = call(&s.alice(), Method::GET, "/status", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let status_json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status_json["mode"], "normal");
    assert!(status_json["policy"]["version"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(
        status_json["tls"]["certificate_expires_in_secs"]
            .as_i64()
            .unwrap()
            > 0
    );

    // A certificate from the right CA that names nobody.
    let (status, _) = call(
        &s.with_certificate(&s.admin_ca, "mallory"),
        Method::GET,
        "/status",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A certificate from another CA does not even complete the handshake.
    let stranger_ca = phr_gateway::pki::DevCa::new("stranger CA").unwrap();
    let stranger = s.with_certificate(&stranger_ca, "alice");
    assert!(stranger.call(Method::GET, "/status", None).await.is_err());

    // Tokens: a user token, an admin role without MFA, a non-admin subject, then bob.
    let user = admin_token(&s, "patient-1", &["patient"], true);
    let no_mfa = admin_token(&s, "bob-admin", &["phr-admin"], false);
    let not_named = admin_token(&s, "eve", &["phr-admin"], true);
    for token in [user, no_mfa, not_named] {
        let (status, body) = call(&s.with_token(Some(token)), Method::GET, "/status", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let bob = s.with_token(Some(admin_token(&s, "bob-admin", &["phr-admin"], true)));
    assert_eq!(
        call(&bob, Method::GET, "/status", None).await.0,
        StatusCode::OK
    );

    // Every call but the probes is in the state log, with the admin's name or `-`.
    let calls: Vec<(String, u64)> = s
        .state_events()
        .iter()
        .filter(|e| e["event"] == "admin_call")
        .map(|e| {
            (
                e["admin"].as_str().unwrap().to_owned(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("-".to_owned(), 401),
            ("alice".to_owned(), 200),
            ("-".to_owned(), 403),
            ("-".to_owned(), 403),
            ("-".to_owned(), 403),
            ("-".to_owned(), 403),
            ("bob".to_owned(), 200),
        ],
    );

    // Removing alice from the policy removes her access at the next reload.
    let text = policy_text(
        &s.pki,
        s.gateway.port,
        s.upstream.port,
        s.admin_port,
        &s.admin_ca_path.display().to_string(),
        false,
    );
    std::fs::write(&s.gateway.policy_path, text).unwrap();
    let (status, body) = call(&bob, Method::POST, "/reload", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        call(&s.alice(), Method::GET, "/status", None).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn emergency_stop_and_read_only_take_effect_at_once_and_are_audited_r_net_3() {
    let s = setup().await;
    let alice = s.alice();
    assert_eq!(s.user("POST", "/anon/a", &[]).await.status, 200);

    let (status, body) = call(
        &alice,
        Method::POST,
        "/mode",
        Some(json!({"mode": "stopped", "retry_after_secs": 120})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stopped = s.user("GET", "/anon/a", &[]).await;
    assert_eq!(stopped.status, 503, "{stopped:?}");
    assert_eq!(stopped.json()["reason"], "gateway.stopped");
    assert_eq!(stopped.headers["retry-after"], "120");
    // Health stays up while stopped.
    assert_eq!(
        call(&alice, Method::GET, "/healthz", None).await.0,
        StatusCode::OK
    );

    call(
        &alice,
        Method::POST,
        "/mode",
        Some(json!({"mode": "read-only"})),
    )
    .await;
    assert_eq!(s.user("GET", "/anon/a", &[]).await.status, 200);
    let write = s.user("POST", "/anon/a", &[]).await;
    assert_eq!(write.status, 503);
    assert_eq!(write.json()["reason"], "gateway.read_only");

    call(
        &alice,
        Method::POST,
        "/mode",
        Some(json!({"mode": "normal"})),
    )
    .await;
    assert_eq!(s.user("POST", "/anon/a", &[]).await.status, 200);

    let modes: Vec<(String, String)> = s
        .state_events()
        .iter()
        .filter(|e| e["event"] == "mode_changed")
        .map(|e| {
            (
                e["mode"].as_str().unwrap().to_owned(),
                e["by"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let by_alice = |m: &str| (m.to_owned(), "alice".to_owned());
    assert_eq!(
        modes,
        [
            by_alice("stopped"),
            by_alice("read-only"),
            by_alice("normal")
        ]
    );
    // The stop survives a restart: it is replayed from the state log.
    call(
        &alice,
        Method::POST,
        "/mode",
        Some(json!({"mode": "stopped"})),
    )
    .await;
    let text = std::fs::read_to_string(&s.gateway.policy_path).unwrap();
    let Setup {
        gateway,
        pki,
        dir,
        admin_port,
        ..
    } = s;
    let port = gateway.port;
    drop(gateway);
    let mut restarted = Gateway::start(dir.path(), &text, port);
    restarted.wait_ready(admin_port);
    let config = client_config(&pki.ca_der, &[&TLS13], &[b"http/1.1"]);
    let reply = get(port, config, "/anon/a", &[]).await.unwrap();
    assert_eq!(reply.status, 503, "the stop did not survive a restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn subject_stop_revocation_metrics_and_report() {
    let s = setup().await;
    let alice = s.alice();
    let token = s.key.sign(&mfa_claims("patient-7"));
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    assert_eq!(s.user("GET", "/notes/1", &headers).await.status, 200);

    // Subject stop (R-AZ-7) and resume.
    call(
        &alice,
        Method::POST,
        "/subjects/stop",
        Some(json!({"subject": "patient-7"})),
    )
    .await;
    let stopped = s.user("GET", "/notes/1", &headers).await;
    assert_eq!(stopped.status, 403);
    assert_eq!(stopped.json()["reason"], "access.subject_stopped");
    call(
        &alice,
        Method::POST,
        "/subjects/resume",
        Some(json!({"subject": "patient-7"})),
    )
    .await;
    assert_eq!(s.user("GET", "/notes/1", &headers).await.status, 200);

    // Revoking the subject's sessions ends this token's session.
    let (status, body) = call(
        &alice,
        Method::POST,
        "/revoke",
        Some(json!({"subject": "patient-7"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revoked = s.user("GET", "/notes/1", &headers).await;
    assert_eq!(revoked.status, 401);
    assert_eq!(revoked.json()["reason"], "identity.session_revoked");
    let (status, _) = call(
        &alice,
        Method::POST,
        "/revoke",
        Some(json!({"subject": "a", "token_id": "b"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A head pingora's parser refuses and answers itself, no gateway hook running, is
    // counted by its reason too (R-OPS-1), once pingora has let the connection go.
    let answer = raw_exchange(
        s.gateway.port,
        &s.pki.ca_der,
        b"POST /notes/1 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    )
    .await
    .expect("exchange");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let unparsable = "reason=\"protocol.unparsable_head\"";
    assert!(
        metrics_show(&alice, |l| l.starts_with("phr_requests_total{")
            && l.contains(unparsable))
        .await,
        "pingora's own refusal was not counted"
    );

    // An HTTP/2 connection the HTTP/2 layer closes for the client's error (a HEADERS frame on
    // stream 0: PROTOCOL_ERROR) holds no request to record: it is counted with the
    // connections cut (R-OPS-1).
    let goaway_code = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut h2 = connect(
            s.gateway.port,
            client_config(&s.pki.ca_der, &[&rustls::version::TLS13], &[b"h2"]),
        )
        .await
        .expect("TLS");
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // SETTINGS, empty
        out.extend_from_slice(&[0, 0, 1, 0x1, 0x5, 0, 0, 0, 0, 0x82]); // HEADERS, stream 0
        h2.write_all(&out).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            h2.read_to_end(&mut answer),
        )
        .await;
        // The frames the gateway wrote: the GOAWAY's error code.
        let mut at = 0;
        let mut code = None;
        while at + 9 <= answer.len() {
            let len = usize::from(answer[at]) << 16
                | usize::from(answer[at + 1]) << 8
                | usize::from(answer[at + 2]);
            if answer[at + 3] == 0x7 && at + 17 <= answer.len() {
                code = Some(u32::from_be_bytes(
                    answer[at + 13..at + 17].try_into().expect("4 bytes"),
                ));
            }
            at += 9 + len;
        }
        code
    };
    assert_eq!(goaway_code, Some(0x1), "no GOAWAY with PROTOCOL_ERROR");
    let cut = "phr_connections_cut_total{reason=\"http2_protocol_error\"} 1";
    assert!(
        metrics_show(&alice, |l| l == cut).await,
        "the HTTP/2 connection error was not counted"
    );

    // A stream over the connection's 100 concurrent ones is refused by the HTTP/2 layer
    // (`REFUSED_STREAM`: never processed, the client may send it again): no request, so no
    // record; it is counted (R-OPS-1).
    let refused_code = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut h2 = connect(
            s.gateway.port,
            client_config(&s.pki.ca_der, &[&rustls::version::TLS13], &[b"h2"]),
        )
        .await
        .expect("TLS");
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // SETTINGS, empty
        h2.write_all(&out).await.expect("write");
        // The server's limits hold once its SETTINGS are acknowledged.
        let mut head = [0u8; 9];
        h2.read_exact(&mut head).await.expect("SETTINGS");
        assert_eq!(head[3], 0x4, "the server speaks first with SETTINGS");
        let len = usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        h2.read_exact(&mut payload).await.expect("SETTINGS payload");
        let mut out = vec![0, 0, 0, 0x4, 0x1, 0, 0, 0, 0]; // SETTINGS ACK
                                                           // 101 POSTs whose bodies never come: each waits in the gateway's body read. HPACK:
                                                           // :method POST, :scheme https, then literals without indexing (no table state).
        let mut block = vec![0x83, 0x87, 0x04, 7];
        block.extend_from_slice(b"/anon/x");
        block.extend_from_slice(&[0x01, 9]);
        block.extend_from_slice(b"localhost");
        block.extend_from_slice(&[0x0f, 0x10, 10]);
        block.extend_from_slice(b"text/plain");
        for stream in (1u32..=201).step_by(2) {
            out.extend_from_slice(&[0, 0, block.len() as u8, 0x1, 0x4]); // HEADERS, END_HEADERS
            out.extend_from_slice(&stream.to_be_bytes());
            out.extend_from_slice(&block);
        }
        h2.write_all(&out).await.expect("write");
        // The frames the gateway writes: the first RST_STREAM's stream and code.
        let mut reset = None;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while reset.is_none() && tokio::time::Instant::now() < deadline {
            let mut head = [0u8; 9];
            if tokio::time::timeout_at(deadline, h2.read_exact(&mut head))
                .await
                .is_err()
            {
                break;
            }
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            h2.read_exact(&mut payload).await.expect("payload");
            if head[3] == 0x3 {
                let stream = u32::from_be_bytes(head[5..9].try_into().expect("4 bytes"));
                let code = u32::from_be_bytes(payload[..4].try_into().expect("4 bytes"));
                reset = Some((stream, code));
            }
        }
        reset
    };
    assert_eq!(
        refused_code,
        Some((201, 0x7)),
        "the 101st stream is refused"
    );
    let refused = "phr_http2_streams_reset_total{error=\"refused_stream\"} 1";
    assert!(
        metrics_show(&alice, |l| l == refused).await,
        "the refused stream was not counted"
    );

    // /metrics parses as Prometheus text and counts the refused requests by reason.
    let (status, text) = call(&alice, Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let refused = |reason: &str| {
        scrape
            .samples
            .iter()
            .filter(|m| m.metric == "phr_requests_total" && m.labels.get("reason") == Some(reason))
            .map(|m| match m.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => 0.0,
            })
            .sum::<f64>()
    };
    assert_eq!(refused("access.subject_stopped"), 1.0, "{text}");
    assert_eq!(refused("identity.session_revoked"), 1.0);
    assert_eq!(refused("protocol.unparsable_head"), 1.0);
    assert!(scrape
        .samples
        .iter()
        .any(|m| m.metric == "phr_tls_handshakes_total"
            && m.labels.get("version") == Some("TLSv1.3")));
    assert!(scrape
        .samples
        .iter()
        .any(|m| m.metric == "phr_audit_queue_depth"));
    assert!(
        !text.contains("patient-7") && !text.contains("127.0.0.1"),
        "a subject or an address leaked into a metric label"
    );

    // The report of the running policy.
    let (status, body) = call(&alice, Method::GET, "/report", None).await;
    assert_eq!(status, StatusCode::OK);
    let report: Value = serde_json::from_str(&body).unwrap();
    let item = |id: &str| {
        report["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(item("R-AUTH-4")["status"], "enforced");
    assert_eq!(item("R-TLS-1")["status"], "enforced");

    // The CLI makes the same calls.
    let (cert, key) = s
        .admin_ca
        .issue_client("alice")
        .unwrap()
        .write(s.dir.path(), "cli-alice")
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phr-gateway"))
        .args([
            "admin",
            "--url",
            &s.url(),
            "--server-name",
            "localhost",
            "--ca",
        ])
        .arg(&s.pki.ca_path)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg("status")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["mode"], "normal");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_from_outside_the_admin_networks_is_refused_r_net_2() {
    let s = setup().await;
    // Narrow the admin networks to one this test's loopback client is not in, then reload.
    let text = std::fs::read_to_string(&s.gateway.policy_path)
        .unwrap()
        .replace(
            "token_role = \"phr-admin\"",
            "token_role = \"phr-admin\"\nallow = [\"10.0.0.0/8\"]",
        );
    std::fs::write(&s.gateway.policy_path, text).unwrap();
    let (status, body) = call(&s.alice(), Method::POST, "/reload", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&s.alice(), Method::GET, "/status", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("network"), "{body}");
    // The probes still answer: load balancers need them.
    assert_eq!(
        call(&s.alice(), Method::GET, "/healthz", None).await.0,
        StatusCode::OK
    );
}

/// `[listeners] hosts` (R-NET-2) is the public listener's: once a reload lists only the
/// address, a handshake that asks for `localhost` by SNI is refused there (rustls's
/// `access_denied`, before any HTTP), a client connecting by address (no SNI) is served, and
/// the admin listener, which shares the certificate, still answers a client that names it
/// `localhost`.
#[tokio::test(flavor = "multi_thread")]
async fn the_public_listener_refuses_an_sni_it_does_not_serve_and_the_admin_one_does_not_r_net_2() {
    let s = setup().await;
    let config = client_config(&s.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
    let localhost = || rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let by_address = || rustls::pki_types::ServerName::from(std::net::Ipv4Addr::LOCALHOST);
    assert!(
        connect_as(s.gateway.port, config.clone(), localhost())
            .await
            .is_ok(),
        "no list: any name"
    );

    let text = std::fs::read_to_string(&s.gateway.policy_path).unwrap();
    std::fs::write(&s.gateway.policy_path, with_hosts(&text, &["127.0.0.1"])).unwrap();
    let (status, body) = call(&s.alice(), Method::POST, "/reload", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let Err(refused) = connect_as(s.gateway.port, config.clone(), localhost()).await else {
        panic!("a handshake naming a host not served was accepted");
    };
    assert_eq!(
        tls_error(&refused),
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::AccessDenied
        )),
        "{refused:?}"
    );
    // Counted as a failed handshake (phr_tls_handshake_failures_total).
    let counted = |line: &str| {
        line.strip_prefix("phr_tls_handshake_failures_total ")
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let (_, text) = call(&s.alice(), Method::GET, "/metrics", None).await;
    let before = text.lines().find_map(counted).unwrap_or(0.0);
    assert!(connect_as(s.gateway.port, config.clone(), localhost())
        .await
        .is_err());
    assert!(
        metrics_show(&s.alice(), |l| counted(l).is_some_and(|n| n > before)).await,
        "the refused handshake was not counted"
    );
    let tls = connect_as(s.gateway.port, config, by_address())
        .await
        .expect("by address, no SNI");
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::get("/anon/by-address")
        .header("host", "127.0.0.1")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(send.send_request(request).await.unwrap().status(), 200);

    assert_eq!(
        call(&s.alice(), Method::GET, "/healthz", None).await.0,
        StatusCode::OK,
        "the admin listener answers whatever name its clients use"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subject_stop_covers_own_reads_unless_the_policy_exempts_them_r_az_7() {
    let s = setup().await;
    let alice = s.alice();
    let token = s.key.sign(&mfa_claims("patient-8"));
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    call(
        &alice,
        Method::POST,
        "/subjects/stop",
        Some(json!({"subject": "patient-8"})),
    )
    .await;
    // Default: the stop refuses everything about the subject, their own reads too.
    let reason = |r: Reply| (r.status, r.json()["reason"].as_str().map(str::to_owned));
    let stopped = Some("access.subject_stopped".to_owned());
    assert_eq!(
        reason(s.user("GET", "/notes/1", &headers).await),
        (403, stopped.clone())
    );

    // The operator exempts own reads: the subject reads, but still writes nothing.
    let text = std::fs::read_to_string(&s.gateway.policy_path).unwrap();
    std::fs::write(
        &s.gateway.policy_path,
        format!("{text}\n[access]\nstop_refuses_own_reads = false\n"),
    )
    .unwrap();
    s.gateway.reload();
    assert_eq!(s.user("GET", "/notes/1", &headers).await.status, 200);
    assert_eq!(
        reason(s.user("POST", "/notes/1", &headers).await),
        (403, stopped)
    );
}
