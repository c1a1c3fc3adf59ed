#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! The consent ledger through the real gateway: acquisition consent needed to send health data
//! in (R-AZ-3), the subject's consents and history (R-AZ-5), withdrawal effective on the next
//! request (R-AZ-6), and the ledger replayed from the state log after a restart.

mod support;

use rustls::version::TLS13;
use serde_json::{json, Value};
use support::issuer::*;
use support::*;

const EXTRA: &str = r#"
[[routes]]
id = "vitals-write"
methods = ["GET", "POST"]
path = "/vitals/{id}"
upstream = "backend"
category = "vitals"
subject = "path:id"
purposes = ["self-management"]
"#;

struct Setup {
    dir: tempfile::TempDir,
    pki: TestPki,
    upstream: Upstream,
    gateway: Gateway,
    key: TestKey,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let key = TestKey::es256("consent-test-1");
    std::fs::write(dir.path().join("jwks.json"), jwks(&[&key])).unwrap();
    let upstream = Upstream::start().await;
    let port = free_port();
    let extra = EXTRA.to_owned() + PURPOSES_TOML + &issuer_toml("jwks_file = \"jwks.json\"");
    let text = policy(&pki, port, upstream.port, "", &extra);
    let gateway = Gateway::start(dir.path(), &text, port);
    Setup {
        dir,
        pki,
        upstream,
        gateway,
        key,
    }
}

impl Setup {
    fn token(&self, patient: &str, mfa: bool) -> String {
        let mut claims = mfa_claims(&format!("user-{patient}"));
        claims["patient"] = json!(patient);
        if !mfa {
            claims["amr"] = json!(["pwd"]);
        }
        self.key.sign(&claims)
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: &str) -> Reply {
        self.call_as("application/json", method, path, token, body)
            .await
    }

    /// `call` with the body declared as `content_type`.
    async fn call_as(
        &self,
        content_type: &str,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> Reply {
        let auth = format!("Bearer {token}");
        let config = client_config(&self.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
        let mut client = Client::open(self.gateway.port, config).await.unwrap();
        let headers = [
            ("authorization", auth.as_str()),
            ("phr-purpose", "self-management"),
            ("content-type", content_type),
        ];
        client.send(method, path, &headers, body).await.unwrap()
    }

    async fn grant(&self, token: &str) -> String {
        let body =
            json!({"kind": "acquisition", "categories": ["vitals"], "purpose": "self-management"});
        let reply = self
            .call("POST", "/.phr/consents", token, &body.to_string())
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.json()["consent"].as_str().unwrap().to_owned()
    }

    fn state_events(&self) -> Vec<Value> {
        phr_gateway::audit::segment::read_records(&self.dir.path().join("audit/state")).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_data_goes_in_only_with_a_live_consent_and_withdrawal_is_immediate_r_az_3_r_az_6() {
    let s = setup().await;
    let alice = s.token("p-1", true);
    let refused = s.call("POST", "/vitals/p-1", &alice, "{\"bp\":120}").await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.json()["reason"], "access.consent_required");
    assert!(
        s.upstream.requests().is_empty(),
        "refused data reached the upstream"
    );
    // Reads need no acquisition consent.
    assert_eq!(s.call("GET", "/vitals/p-1", &alice, "").await.status, 200);

    let id = s.grant(&alice).await;
    assert_eq!(
        s.call("POST", "/vitals/p-1", &alice, "{\"bp\":121}")
            .await
            .status,
        200
    );

    // Withdrawal: one call, effective on the very next request.
    let reply = s
        .call("POST", &format!("/.phr/consents/{id}/withdraw"), &alice, "")
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let refused = s.call("POST", "/vitals/p-1", &alice, "{\"bp\":122}").await;
    assert_eq!(refused.json()["reason"], "access.consent_required");
    assert_eq!(s.upstream.requests().len(), 2);

    // The subject sees current consents and the whole history (R-AZ-5).
    let list = s.call("GET", "/.phr/consents", &alice, "").await.json();
    assert_eq!(list["current"].as_array().unwrap().len(), 0);
    let history = list["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["id"], id.as_str());
    assert_eq!(history[0]["categories"], json!(["vitals"]));
    assert!(history[0]["withdrawn_at"].is_string());

    // Both changes are durable state events naming the subject.
    let events: Vec<String> = s
        .state_events()
        .iter()
        .filter(|e| {
            e["event"]
                .as_str()
                .is_some_and(|n| n.starts_with("consent_"))
        })
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap(),
                e["subject"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(events, ["consent_granted p-1", "consent_withdrawn p-1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_calls_are_checked_and_survive_a_restart_r_az_5() {
    let mut s = setup().await;
    let alice = s.token("p-1", true);
    let bob = s.token("p-2", true);
    let bad = |categories: Value, purpose: &str| {
        json!({"kind": "acquisition", "categories": categories, "purpose": purpose}).to_string()
    };
    for body in [
        bad(json!(["account"]), "self-management"),
        bad(json!([]), "self-management"),
        bad(json!(["vitals"]), "marketing"),
        bad(json!(["vitals", "checkup", "vitals"]), "self-management"),
        "{\"kind\":\"acquisition\"}".to_owned(),
        "not json".to_owned(),
    ] {
        let reply = s.call("POST", "/.phr/consents", &alice, &body).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.json()["reason"], "consent.invalid_request");
    }
    // A valid grant not declared as JSON is what a page on another site can make a browser
    // send as a form: refused, and nothing granted.
    let good =
        json!({"kind": "acquisition", "categories": ["vitals"], "purpose": "self-management"})
            .to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        let reply = s
            .call_as(content_type, "POST", "/.phr/consents", &alice, &good)
            .await;
        assert_eq!(reply.status, 400, "{content_type}");
        assert_eq!(reply.json()["reason"], "consent.invalid_request");
    }
    let none = s.call("GET", "/.phr/consents", &alice, "").await.json();
    assert_eq!(none["history"].as_array().unwrap().len(), 0, "{none}");
    let reply = s
        .call_as(
            "application/fhir+json; charset=utf-8",
            "POST",
            "/.phr/consents",
            &alice,
            &good,
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    s.call(
        "POST",
        &format!(
            "/.phr/consents/{}/withdraw",
            reply.json()["consent"].as_str().unwrap()
        ),
        &alice,
        "",
    )
    .await;
    let id = s.grant(&alice).await;
    // Another subject cannot withdraw it, nor see it; an unknown id is not found.
    let reply = s
        .call("POST", &format!("/.phr/consents/{id}/withdraw"), &bob, "")
        .await;
    assert_eq!(reply.json()["reason"], "consent.not_found");
    let theirs = s.call("GET", "/.phr/consents", &bob, "").await.json();
    assert_eq!(theirs["history"].as_array().unwrap().len(), 0);
    // Consents need a multi-factor sign-in.
    let weak = s.token("p-1", false);
    let reply = s.call("GET", "/.phr/consents", &weak, "").await;
    assert_eq!(reply.json()["reason"], "identity.mfa_required");

    // Restart: the ledger is replayed from the state log.
    s.gateway.stop_with(nix::sys::signal::Signal::SIGTERM);
    let text = std::fs::read_to_string(&s.gateway.policy_path).unwrap();
    s.gateway = Gateway::start(s.dir.path(), &text, s.gateway.port);
    assert_eq!(
        s.call("POST", "/vitals/p-1", &alice, "{\"bp\":120}")
            .await
            .status,
        200
    );
    let list = s.call("GET", "/.phr/consents", &alice, "").await.json();
    assert_eq!(list["current"][0]["id"], id.as_str());
}

/// A consent grant whose client leaves in the middle of its body is recorded as lost: not as
/// an invalid request, whose answer nobody would read (R-LOG-1); nothing is granted. A body
/// that breaks its framing is refused as such (`protocol.malformed_body`), as on any route.
#[tokio::test(flavor = "multi_thread")]
async fn a_consent_grant_cut_mid_body_is_recorded_as_lost_r_log_1() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup().await;
    let token = s.token("p-1", true);
    let head = |framing: &str| {
        format!(
            "POST /.phr/consents HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\n{framing}\r\n"
        )
    };
    let config = client_config(&s.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
    let mut tls = connect(s.gateway.port, config.clone()).await.unwrap();
    let cut = format!("{}{{\"kind\": \"acqui", head("Content-Length: 200\r\n"));
    tls.write_all(cut.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    drop(tls);

    let mut tls = connect(s.gateway.port, config).await.unwrap();
    let broken = format!(
        "{}zz\r\n{{}}\r\n0\r\n\r\n",
        head("Transfer-Encoding: chunked\r\n")
    );
    tls.write_all(broken.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tls.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("protocol.malformed_body"), "{answer}");

    let access = s.dir.path().join("audit/access");
    let mut records = Vec::new();
    for _ in 0..50 {
        records = phr_gateway::audit::segment::read_records(&access).unwrap();
        if records.len() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let reasons: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default().to_owned(),
                r["reason"].as_str().unwrap_or_default().to_owned(),
                r["decision"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "POST".into(),
                "client.connection_lost".into(),
                "lost".into()
            ),
            (
                "POST".into(),
                "protocol.malformed_body".into(),
                "refuse".into()
            ),
        ],
        "{records:?}"
    );
    let listed = s.call("GET", "/.phr/consents", &token, "").await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.json()["current"], json!([]));
}
