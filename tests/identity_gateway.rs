#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! Identity through the real gateway: a verified caller reaches the upstream with the
//! gateway's identity headers (never the client's), refusals are 401 with the right challenge,
//! and the access record names the caller (R-AUTH-1, R-AUTH-2, R-LOG-1).

mod support;

use std::sync::Arc;

use rustls::version::TLS13;
use serde_json::json;
use support::issuer::*;
use support::*;

struct Setup {
    dir: tempfile::TempDir,
    pki: TestPki,
    upstream: Upstream,
    gateway: Gateway,
    key: TestKey,
}

async fn setup(audit_extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let key = TestKey::es256("gw-test-1");
    std::fs::write(dir.path().join("jwks.json"), jwks(&[&key])).unwrap();
    std::fs::write(
        dir.path().join("pseudonym.key"),
        "0123456789abcdef0123456789abcdef-test-only",
    )
    .unwrap();
    let upstream = Upstream::start().await;
    let port = free_port();
    let extra = format!(
        r#"
[[routes]]
id = "recent"
methods = ["GET"]
path = "/fhir/MedicationRequest/{{id}}"
upstream = "backend"
category = "medication"
max_auth_age_secs = 300

[[issuers]]
id = "test-idp"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
algorithms = ["ES256"]
jwks_file = "jwks.json"
"#
    );
    let text = policy_with_audit(&pki, port, upstream.port, "", audit_extra, &extra);
    let gateway = Gateway::start(dir.path(), &text, port);
    Setup {
        dir,
        pki,
        upstream,
        gateway,
        key,
    }
}

fn h1(s: &Setup) -> Arc<rustls::ClientConfig> {
    client_config(&s.pki.ca_der, &[&TLS13], &[b"http/1.1"])
}

async fn call(s: &Setup, path: &str, headers: &[(&str, &str)]) -> Reply {
    get(s.gateway.port, h1(s), path, headers).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_mfa_caller_is_forwarded_with_the_gateways_identity_headers_r_auth_1() {
    let s = setup("").await;
    let token = s.key.sign(&mfa_claims("alice"));
    let auth = format!("Bearer {token}");
    let reply = call(
        &s,
        "/fhir/Patient/p-1",
        &[
            ("authorization", &auth),
            ("x-phr-subject", "admin"),
            ("x-phr-anything", "1"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = s.upstream.requests().pop().unwrap();
    assert_eq!(
        seen.headers["x-phr-subject"], "alice",
        "the client's own x-phr-subject never arrives"
    );
    assert_eq!(seen.headers.get_all("x-phr-subject").iter().count(), 1);
    assert!(seen.headers.get("x-phr-anything").is_none());
    assert_eq!(seen.headers["x-phr-client-id"], "phr-app");
    assert_eq!(seen.headers["x-phr-mfa"], "true");
    assert_eq!(seen.headers["x-phr-session"], "sid-alice");
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_carry_reason_and_challenge_and_never_reach_the_upstream() {
    let s = setup("").await;
    let mut single = mfa_claims("bob");
    single["amr"] = json!(["pwd"]);
    let mut expired = mfa_claims("bob");
    expired["exp"] = json!(now() - 3600);
    let mut stale = mfa_claims("bob");
    stale["auth_time"] = json!(now() - 3600);
    let other = TestKey::es256("gw-test-1");
    let cases = [
        (
            "/fhir/Patient/p-1",
            None,
            "identity.missing",
            "Bearer realm=\"phr-gateway\"",
        ),
        (
            "/fhir/Patient/p-1",
            Some(s.key.sign(&single)),
            "identity.mfa_required",
            "error=\"insufficient_user_authentication\"",
        ),
        (
            "/fhir/Patient/p-1",
            Some(s.key.sign(&expired)),
            "identity.expired",
            "error=\"invalid_token\"",
        ),
        (
            "/fhir/Patient/p-1",
            Some(other.sign(&mfa_claims("bob"))),
            "identity.invalid_signature",
            "error=\"invalid_token\"",
        ),
        (
            "/fhir/Patient/p-1",
            Some("abc.def".into()),
            "identity.invalid_token",
            "error=\"invalid_token\"",
        ),
        (
            "/fhir/MedicationRequest/m-1",
            Some(s.key.sign(&stale)),
            "identity.step_up_required",
            "max_age=300",
        ),
    ];
    for (path, token, reason, challenge) in cases {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let reply = call(&s, path, &headers).await;
        assert_eq!(reply.status, 401, "{reason}: {reply:?}");
        assert_eq!(reply.json()["reason"], reason);
        let www = reply.headers["www-authenticate"].to_str().unwrap();
        assert!(www.contains(challenge), "{reason}: {www}");
    }
    assert!(
        s.upstream.requests().is_empty(),
        "no refused request reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_record_names_the_caller_pseudonymised_when_asked_r_log_5() {
    let mut s = setup("pseudonym_key = \"pseudonym.key\"").await;
    let token = s.key.sign(&mfa_claims("patient-77"));
    let reply = call(
        &s,
        "/fhir/Patient/p-1",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(reply.status, 200);
    s.gateway.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = s.gateway.child.wait();
    let segment = s.dir.path().join("audit/access/00000000000000000000.jsonl");
    let log = std::fs::read_to_string(segment).unwrap();
    let record = log.lines().last().unwrap();
    assert!(record.contains("\"principal\":\"p1:"), "{record}");
    assert!(record.contains("\"client_id\":\"phr-app\""), "{record}");
    assert!(
        !record.contains("patient-77"),
        "the subject never appears in clear: {record}"
    );
}
