#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! Access through the real gateway (R-AZ-1): route scopes (SMART on FHIR), roles, and the data
//! subject bound to the caller's own; tokens signed with a real key, refusals never forwarded
//! and never naming another subject.

mod support;

use rustls::version::TLS13;
use serde_json::{json, Value};
use support::issuer::*;
use support::*;

struct Setup {
    _dir: tempfile::TempDir,
    pki: TestPki,
    upstream: Upstream,
    gateway: Gateway,
    key: TestKey,
}

const ROUTES: &str = r#"
[[routes]]
id = "observation-search"
methods = ["GET"]
path = "/fhir/Observation"
upstream = "backend"
category = "checkup"
scopes = ["patient/Observation.rs"]
subject = "query:patient"

[[routes]]
id = "notes"
methods = ["GET"]
path = "/records/{pid}/notes"
upstream = "backend"
category = "vitals"
roles = ["patient", "caregiver"]
subject = "path:pid"
"#;

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let key = TestKey::es256("access-test-1");
    std::fs::write(dir.path().join("jwks.json"), jwks(&[&key])).unwrap();
    let upstream = Upstream::start().await;
    let port = free_port();
    let extra = ROUTES.to_owned() + &issuer_toml("jwks_file = \"jwks.json\"");
    let text = policy(&pki, port, upstream.port, "", &extra);
    let gateway = Gateway::start(dir.path(), &text, port);
    Setup {
        _dir: dir,
        pki,
        upstream,
        gateway,
        key,
    }
}

impl Setup {
    fn token(&self, sub: &str, extra: Value) -> String {
        let mut claims = mfa_claims(sub);
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.key.sign(&claims)
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        let config = client_config(&self.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
        get(self.gateway.port, config, path, &[("authorization", &auth)])
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn smart_scopes_and_the_data_subject_decide_r_az_1() {
    let s = setup().await;
    let alice = s.token(
        "alice",
        json!({"patient": "p-1", "scope": "openid patient/Observation.rs"}),
    );
    assert_eq!(
        s.get("/fhir/Observation?patient=p-1", &alice).await.status,
        200
    );
    assert_eq!(
        s.get("/fhir/Observation?patient=Patient%2Fp-1&code=x", &alice)
            .await
            .status,
        200
    );

    // Another subject's data: refused, and the answer does not name that subject.
    let other = s.get("/fhir/Observation?patient=p-2", &alice).await;
    assert_eq!(other.status, 403);
    assert_eq!(other.json()["reason"], "access.subject_mismatch");
    assert!(!other.body.contains("p-2"), "{}", other.body);
    // Two subjects at once, or none: refused.
    let both = s
        .get("/fhir/Observation?patient=p-1&patient=p-2", &alice)
        .await;
    assert_eq!(both.json()["reason"], "access.subject_mismatch");
    let none = s.get("/fhir/Observation", &alice).await;
    assert_eq!(none.json()["reason"], "access.subject_mismatch");

    // Scopes: another type, a malformed suffix, a granular scope, the wrong context.
    for scope in [
        "patient/Condition.rs",
        "patient/Observation.dus",
        "patient/Observation.rs?category=laboratory",
        "user/Observation.rs",
        "patient/Observation.s",
    ] {
        let token = s.token("alice", json!({"patient": "p-1", "scope": scope}));
        let reply = s.get("/fhir/Observation?patient=p-1", &token).await;
        assert_eq!(reply.status, 403, "{scope}");
        assert_eq!(reply.json()["reason"], "access.scope_missing", "{scope}");
        let challenge = reply.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("insufficient_scope"), "{challenge}");
        assert!(challenge.contains("patient/Observation.rs"), "{challenge}");
    }
    // Wildcards and v1 words cover it.
    for scope in [
        "patient/*.rs",
        "patient/*.read",
        "patient/Observation.cruds",
    ] {
        let token = s.token("alice", json!({"patient": "p-1", "scope": scope}));
        assert_eq!(
            s.get("/fhir/Observation?patient=p-1", &token).await.status,
            200,
            "{scope}"
        );
    }
    // Without a patient claim, `fhirUser` names the subject; else `sub`.
    let by_fhir_user = s.token(
        "bob",
        json!({"fhirUser": "https://fhir.example/Patient/p-9"}),
    );
    assert_eq!(
        s.get("/fhir/Observation?patient=p-9", &by_fhir_user)
            .await
            .status,
        200
    );
    let by_sub = s.token("p-5", json!({}));
    assert_eq!(
        s.get("/fhir/Observation?patient=p-5", &by_sub).await.status,
        200
    );

    let forwarded = s.upstream.requests().len();
    assert_eq!(forwarded, 7, "refused requests reached the upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_and_a_path_subject_r_az_1() {
    let s = setup().await;
    let patient = s.token("alice", json!({"patient": "p-1", "roles": ["patient"]}));
    assert_eq!(s.get("/records/p-1/notes", &patient).await.status, 200);
    let reply = s.get("/records/p-2/notes", &patient).await;
    assert_eq!(reply.json()["reason"], "access.subject_mismatch");
    let no_role = s.token("alice", json!({"patient": "p-1", "roles": ["researcher"]}));
    let reply = s.get("/records/p-1/notes", &no_role).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["reason"], "access.role_missing");
    assert_eq!(s.upstream.requests().len(), 1);
}

#[test]
fn access_keys_are_checked_when_the_policy_loads() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    for (route_keys, message) in [
        (
            "scopes = [\"patient/Observation.dus\"]",
            "the suffix must be letters of `cruds`",
        ),
        ("subject = \"path:nope\"", "subject `path:nope` must be"),
        ("subject = \"header:x\"", "subject `header:x` must be"),
    ] {
        let extra = format!(
            "\n[[routes]]\nid = \"r\"\nmethods = [\"GET\"]\npath = \"/r/{{id}}\"\nupstream = \"backend\"\ncategory = \"checkup\"\n{route_keys}\n"
        );
        let text = policy(&pki, 8443, 8081, "", &extra);
        std::fs::write(dir.path().join("policy.toml"), &text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phr-gateway"))
            .args(["check", "--policy"])
            .arg(dir.path().join("policy.toml"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted {route_keys}");
        let line = text.lines().position(|l| l == route_keys).unwrap() + 1;
        assert!(stderr.contains(&format!("policy.toml:{line}:")), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
}
