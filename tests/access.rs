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

[[routes]]
id = "vitals"
methods = ["GET"]
path = "/vitals/{id}"
upstream = "backend"
category = "vitals"
subject = "path:id"
purposes = ["self-management", "treatment"]

[access]
purpose_claim = "phr_purposes"

[[purposes]]
id = "self-management"
ja = "本人による健康管理"
en = "The person's own health management"

[[purposes]]
id = "treatment"
ja = "診療"
en = "Treatment by a clinician"

[[purposes]]
id = "research"
ja = "研究"
en = "Research"
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
        self.get_with(path, token, &[]).await
    }

    async fn get_with(&self, path: &str, token: &str, headers: &[(&str, &str)]) -> Reply {
        let auth = format!("Bearer {token}");
        let config = client_config(&self.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
        let mut all = vec![("authorization", auth.as_str())];
        all.extend_from_slice(headers);
        get(self.gateway.port, config, path, &all)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}; the gateway's log: {}", self.gateway.log()))
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
    // An empty patient claim names no patient: `fhirUser`, else `sub`, decides.
    let empty_patient = s.token(
        "bob",
        json!({"patient": "", "fhirUser": "https://fhir.example/Patient/p-9"}),
    );
    assert_eq!(
        s.get("/fhir/Observation?patient=p-9", &empty_patient)
            .await
            .status,
        200
    );

    let forwarded = s.upstream.requests().len();
    assert_eq!(forwarded, 8, "refused requests reached the upstream");
}

/// HTTP parameter pollution against the subject binding: the gateway reads `patient` exactly,
/// between `&`s; a backend may also read ` patient` or `patient[]` (PHP, last one wins),
/// `PATIENT` (ASP.NET), or a pair after a `;` (older Python, Go and Java parsers). Each such
/// second spelling could hand the backend another patient, so it is refused, never forwarded.
#[tokio::test(flavor = "multi_thread")]
async fn a_subject_spelled_for_another_parser_is_refused_r_az_1() {
    let s = setup().await;
    let alice = s.token(
        "alice",
        json!({"patient": "p-1", "scope": "openid patient/Observation.rs"}),
    );
    for query in [
        "patient=p-1&%20patient=p-2",
        "patient=p-1&+patient=p-2",
        "patient=p-1&patient%5B%5D=p-2",
        "patient=p-1&PATIENT=p-2",
        "patient=p-1&code=x;patient=p-2",
        "code=x;patient=p-2&patient=p-1",
    ] {
        let reply = s.get(&format!("/fhir/Observation?{query}"), &alice).await;
        assert_eq!(reply.status, 403, "{query}");
        assert_eq!(reply.json()["reason"], "access.subject_mismatch", "{query}");
        assert!(!reply.body.contains("p-2"), "{query}: {}", reply.body);
    }
    assert!(
        s.upstream.requests().is_empty(),
        "a polluted query was forwarded"
    );
    // The same names, spelled once and exactly, and a `;` a form encoder wrote (`%3B`): served.
    for query in [
        "patient=p-1&code=x%3Bpatient%3Dp-2",
        "patient=p-1&patient=p-1",
    ] {
        let reply = s.get(&format!("/fhir/Observation?{query}"), &alice).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
    }
    assert_eq!(s.upstream.requests().len(), 2);
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

#[tokio::test(flavor = "multi_thread")]
async fn a_stated_purpose_must_be_served_by_the_route_and_issued_to_the_token_r_az_2() {
    let s = setup().await;
    let token = s.token("p-1", json!({}));
    let reason = |r: &Reply| r.json()["reason"].as_str().unwrap_or("").to_owned();
    // No purpose, one the route does not serve, two at once: refused.
    let none = s.get("/vitals/p-1", &token).await;
    assert_eq!(
        (none.status, reason(&none)),
        (403, "access.purpose_not_allowed".into())
    );
    assert!(none.body.contains("phr-purpose"), "{}", none.body);
    let research = s
        .get_with("/vitals/p-1", &token, &[("phr-purpose", "research")])
        .await;
    assert_eq!(reason(&research), "access.purpose_not_allowed");
    let two = s
        .get_with(
            "/vitals/p-1",
            &token,
            &[("phr-purpose", "treatment, research")],
        )
        .await;
    assert_eq!(reason(&two), "access.purpose_not_allowed");
    // Served, and recorded with the request. A second spelling that a CGI, WSGI or Rack
    // server reads as the same variable does not reach the upstream beside the checked one.
    let ok = s
        .get_with(
            "/vitals/p-1",
            &token,
            &[
                ("phr-purpose", "self-management"),
                ("phr_purpose", "research"),
            ],
        )
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let seen = &s.upstream.requests()[0].headers;
    assert_eq!(seen["phr-purpose"], "self-management");
    assert!(seen.get("phr_purpose").is_none(), "{seen:?}");
    let records =
        phr_gateway::audit::segment::read_records(&s.gateway.dir.join("audit/access")).unwrap();
    let purposes: Vec<&str> = records
        .iter()
        .filter_map(|r| r["purpose"].as_str())
        .collect();
    assert_eq!(purposes, ["self-management"]);
    // A token issued for other purposes cannot state this one.
    let for_treatment = s.token("p-1", json!({"phr_purposes": ["treatment"]}));
    let r = s
        .get_with(
            "/vitals/p-1",
            &for_treatment,
            &[("phr-purpose", "self-management")],
        )
        .await;
    assert_eq!(reason(&r), "access.purpose_not_allowed");
    let r = s
        .get_with(
            "/vitals/p-1",
            &for_treatment,
            &[("phr-purpose", "treatment")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.upstream.requests().len(), 2);
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
        (
            "purposes = [\"marketing\"]",
            "purpose `marketing` is not in the [[purposes]] catalogue",
        ),
        ("fhir = \"/fhir\"", "fhir `/fhir` must be the literal start"),
    ] {
        let extra = format!(
            "\n[[routes]]\nid = \"r\"\nmethods = [\"GET\"]\npath = \"/r/{{id}}\"\nupstream = \"backend\"\ncategory = \"checkup\"\n{route_keys}\n"
        );
        let text = policy(&pki, 8443, 8081, "", &extra);
        let line = text.lines().position(|l| l == route_keys).unwrap() + 1;
        assert_policy_error(dir.path(), &text, line, message);
    }
}
