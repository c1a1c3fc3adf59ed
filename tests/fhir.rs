#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! FHIR-derived access through the real gateway (R-AZ-1, R-AZ-4): on a `fhir` route the SMART
//! scope and the patient each request needs come from its method, path and query; `_include`,
//! `_revinclude` and `$everything` need the types they reach; a batch or transaction Bundle is
//! authorised entry by entry and forwarded unchanged.

mod support;

use rustls::version::TLS13;
use serde_json::{json, Value};
use support::issuer::*;
use support::*;

const EXTRA: &str = r#"
[[routes]]
id = "fhir"
methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
path = "/api/fhir/{*rest}"
upstream = "backend"
category = "checkup"
fhir = "/api/fhir"
purposes = ["self-management", "treatment"]

# Batches and transactions: the base itself, declared on its own.
[[routes]]
id = "fhir-bundles"
methods = ["POST"]
path = "/api/fhir"
upstream = "backend"
category = "checkup"
fhir = "/api/fhir"
purposes = ["self-management", "treatment"]

[[recipients]]
id = "clinic"
name = "Clinic"
clients = ["clinic-app"]
compliance_confirmed = {recent}
recheck_days = 365
"#;

struct Setup {
    pki: TestPki,
    upstream: Upstream,
    gateway: Gateway,
    port: u16,
    key: TestKey,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let key = TestKey::es256("fhir-test-1");
    std::fs::write(dir.path().join("jwks.json"), jwks(&[&key])).unwrap();
    let upstream = Upstream::start().await;
    let port = free_port();
    let recent = (time::OffsetDateTime::now_utc().date() - time::Duration::days(1)).to_string();
    let extra = EXTRA.replace("{recent}", &recent)
        + PURPOSES_TOML
        + &issuer_toml("jwks_file = \"jwks.json\"");
    let gateway = Gateway::start(
        dir.path(),
        &policy(&pki, port, upstream.port, "", &extra),
        port,
    );
    Setup {
        pki,
        upstream,
        gateway,
        port,
        key,
        _dir: dir,
    }
}

impl Setup {
    fn token(&self, patient: &str, scope: &str) -> String {
        let mut claims = mfa_claims(&format!("user-{patient}"));
        claims["patient"] = json!(patient);
        claims["scope"] = json!(scope);
        self.key.sign(&claims)
    }

    /// The subject's acquisition consent for `checkup` data and self-management.
    async fn grant_checkup(&self, token: &str) {
        let consent =
            json!({"kind": "acquisition", "purpose": "self-management", "categories": ["checkup"]});
        let granted = self
            .call("POST", "/.phr/consents", token, &consent.to_string())
            .await;
        assert_eq!(granted.status, 201, "{granted:?}");
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: &str) -> Reply {
        self.call_as(method, path, token, "self-management", body)
            .await
    }

    async fn call_as(
        &self,
        method: &str,
        path: &str,
        token: &str,
        purpose: &str,
        body: &str,
    ) -> Reply {
        let auth = format!("Bearer {token}");
        let config = client_config(&self.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
        let mut client = Client::open(self.port, config).await.unwrap();
        let headers = [
            ("authorization", auth.as_str()),
            ("phr-purpose", purpose),
            ("content-type", "application/fhir+json"),
        ];
        client.send(method, path, &headers, body).await.unwrap()
    }
}

fn reason(reply: &Reply) -> String {
    reply.json()["reason"].as_str().unwrap_or("-").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_and_the_patient_are_derived_from_each_request_r_az_1() {
    let s = setup().await;
    let narrow = s.token("p-1", "openid patient/Observation.rs patient/Patient.r");
    let cases: &[(&str, &str, &str)] = &[
        ("GET", "/api/fhir/Observation?patient=p-1", "allow"),
        (
            "GET",
            "/api/fhir/Observation?subject=Patient/p-1&code=1234",
            "allow",
        ),
        ("GET", "/api/fhir/Patient/p-1/Observation", "allow"),
        ("GET", "/api/fhir/Patient/p-1", "allow"),
        ("GET", "/api/fhir/Observation/o-1", "allow"),
        // Another patient, or none named on a search: patient/ scopes bind to the token's.
        (
            "GET",
            "/api/fhir/Observation?patient=p-2",
            "access.subject_mismatch",
        ),
        ("GET", "/api/fhir/Patient/p-2", "access.subject_mismatch"),
        ("GET", "/api/fhir/Observation", "access.subject_mismatch"),
        (
            "GET",
            "/api/fhir/Observation?patient=p-1,p-2",
            "access.subject_mismatch",
        ),
        (
            "GET",
            "/api/fhir/Observation?patient=p-1&subject=p-2",
            "access.subject_mismatch",
        ),
        // A named query: its definition says whose data it returns.
        (
            "GET",
            "/api/fhir/Observation?patient=p-1&_query=all-patients",
            "access.fhir_unsupported",
        ),
        // Letters and types the token lacks.
        (
            "POST",
            "/api/fhir/Observation?patient=p-1",
            "access.scope_missing",
        ),
        ("PUT", "/api/fhir/Patient/p-1", "access.scope_missing"),
        (
            "GET",
            "/api/fhir/MedicationStatement?patient=p-1",
            "access.scope_missing",
        ),
        ("GET", "/api/fhir/Patient?_id=p-1", "access.scope_missing"),
        // Other types reached through the search.
        (
            "GET",
            "/api/fhir/Observation?patient=p-1&_include=Observation:performer:Practitioner",
            "access.scope_missing",
        ),
        (
            "GET",
            "/api/fhir/Observation?patient=p-1&_revinclude=Provenance:target",
            "access.scope_missing",
        ),
        (
            "GET",
            "/api/fhir/Observation?patient=p-1&_include=*",
            "access.scope_missing",
        ),
        (
            "GET",
            "/api/fhir/Patient/p-1/$everything",
            "access.scope_missing",
        ),
        // What cannot be mapped is refused, not guessed.
        (
            "GET",
            "/api/fhir/Observation/$lastn?patient=p-1",
            "access.fhir_unsupported",
        ),
        (
            "GET",
            "/api/fhir/Patient/p-1/Observation/o-1/x",
            "access.fhir_unsupported",
        ),
        ("GET", "/api/fhir", "route.method_not_allowed"),
        (
            "GET",
            "/api/fhir/Observation?patient:missing=true",
            "access.fhir_unsupported",
        ),
    ];
    let mut allowed = 0;
    for (method, path, expected) in cases {
        let reply = s.call(method, path, &narrow, "").await;
        if *expected == "allow" {
            assert_eq!(reply.status, 200, "{method} {path}: {reply:?}");
            allowed += 1;
        } else {
            assert_eq!(reason(&reply), *expected, "{method} {path}: {reply:?}");
        }
    }
    assert_eq!(s.upstream.requests().len(), allowed);

    // The missing scope is named in the challenge (RFC 6750).
    let reply = s
        .call(
            "GET",
            "/api/fhir/MedicationStatement?patient=p-1",
            &narrow,
            "",
        )
        .await;
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("scope=\"patient/MedicationStatement.s\""),
        "{challenge}"
    );

    // patient/*.rs reaches every type: $everything and includes pass, for p-1 only.
    let wide = s.token("p-1", "patient/*.rs");
    for path in [
        "/api/fhir/Patient/p-1/$everything",
        "/api/fhir/Observation?patient=p-1&_include=Observation:performer:Practitioner",
        "/api/fhir/Observation?patient=p-1&_revinclude=Provenance:target&_include=*",
    ] {
        assert_eq!(s.call("GET", path, &wide, "").await.status, 200, "{path}");
    }
    let other = s
        .call("GET", "/api/fhir/Patient/p-2/$everything", &wide, "")
        .await;
    assert_eq!(reason(&other), "access.subject_mismatch");
    // A v1 scope is read as the word: .read is search and read, never `r e a d` letters.
    let v1 = s.token("p-1", "patient/Observation.read");
    assert_eq!(
        s.call("GET", "/api/fhir/Observation?patient=p-1", &v1, "")
            .await
            .status,
        200
    );
    assert_eq!(
        reason(&s.call("DELETE", "/api/fhir/Observation/o-1", &v1, "").await),
        "access.scope_missing"
    );
}

fn bundle(kind: &str, entries: Vec<Value>) -> String {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries}).to_string()
}

fn get_entry(url: &str) -> Value {
    json!({"request": {"method": "GET", "url": url}})
}

fn post_observation(patient: &str) -> Value {
    json!({
        "request": {"method": "POST", "url": "Observation"},
        "resource": {"resourceType": "Observation", "status": "final",
                     "code": {"text": "体重"}, "subject": {"reference": format!("Patient/{patient}")}}
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_is_authorised_entry_by_entry_and_forwarded_whole() {
    let s = setup().await;
    let token = s.token("p-1", "patient/Observation.crs patient/Patient.r");
    let reads = bundle(
        "batch",
        vec![
            get_entry("Observation?patient=p-1"),
            get_entry("Patient/p-1"),
        ],
    );
    let reply = s.call("POST", "/api/fhir", &token, &reads).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // The body reached the upstream whole, after the gateway had read it.
    assert_eq!(reply.body, format!("upstream-ok /api/fhir {}", reads.len()));
    // Over HTTP/2 as well.
    let auth = format!("Bearer {token}");
    let h2 = client_config(&s.pki.ca_der, &[&TLS13], &[b"h2"]);
    let reply = Client::open(s.port, h2)
        .await
        .unwrap()
        .send(
            "POST",
            "/api/fhir",
            &[
                ("authorization", &auth),
                ("phr-purpose", "self-management"),
                ("content-type", "application/fhir+json"),
            ],
            &reads,
        )
        .await
        .unwrap();
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.body, format!("upstream-ok /api/fhir {}", reads.len()));

    let refused = [
        (
            bundle(
                "batch",
                vec![
                    get_entry("Observation?patient=p-1"),
                    get_entry("Patient/p-2"),
                ],
            ),
            "access.subject_mismatch",
            "entry 1:",
        ),
        (
            bundle("transaction", vec![post_observation("p-2")]),
            "access.subject_mismatch",
            "entry 0:",
        ),
        (
            bundle("batch", vec![get_entry("MedicationStatement?patient=p-1")]),
            "access.scope_missing",
            "entry 0:",
        ),
        (
            bundle("batch", vec![get_entry("Observation/$lastn")]),
            "access.fhir_unsupported",
            "entry 0:",
        ),
        (
            bundle("collection", vec![]),
            "access.fhir_unsupported",
            "batch or transaction",
        ),
        // Writes need the subject's acquisition consent (R-AZ-3), as single requests do.
        (
            bundle("transaction", vec![post_observation("p-1")]),
            "access.consent_required",
            "acquisition consent",
        ),
    ];
    let before = s.upstream.requests().len();
    for (body, expected, detail) in &refused {
        let reply = s.call("POST", "/api/fhir", &token, body).await;
        assert_eq!(reason(&reply), *expected, "{body}: {reply:?}");
        assert!(
            reply.json()["detail"].as_str().unwrap().contains(detail),
            "{reply:?}"
        );
    }
    assert_eq!(
        s.upstream.requests().len(),
        before,
        "a refused Bundle was forwarded"
    );

    s.grant_checkup(&token).await;
    let write = bundle("transaction", vec![post_observation("p-1")]);
    assert_eq!(
        s.call("POST", "/api/fhir", &token, &write).await.status,
        200
    );

    // A single create names its patient in the resource: read from the body the same way.
    let resource = |patient: &str| post_observation(patient)["resource"].to_string();
    let create = s
        .call("POST", "/api/fhir/Observation", &token, &resource("p-1"))
        .await;
    assert_eq!(create.status, 200, "{create:?}");
    assert_eq!(
        create.body,
        format!(
            "upstream-ok /api/fhir/Observation {}",
            resource("p-1").len()
        )
    );
    let seen = s.upstream.requests().len();
    // The patient named twice, the token's last: parsers that keep the first would store it
    // for p-2, so the repetition itself is refused (`protocol-230`, docs/inspect.md).
    let twice = resource("p-1").replacen(
        "\"subject\"",
        "\"subject\":{\"reference\":\"Patient/p-2\"},\"subject\"",
        1,
    );
    // The patient named in `subject` and again, another, in `patient` (the element an
    // Immunization has): the backend may file it under either.
    let both = resource("p-1").replacen(
        "\"subject\"",
        "\"patient\":{\"reference\":\"Patient/p-2\"},\"subject\"",
        1,
    );
    // The token's patient as `subject`, another as `performer`: a server files the reading
    // in the performer's compartment too, so it would join p-2's record.
    let performer = resource("p-1").replacen(
        "\"subject\"",
        "\"performer\":[{\"reference\":\"Patient/p-2\"}],\"subject\"",
        1,
    );
    for (body, expected) in [
        (resource("p-2"), "access.subject_mismatch"),
        ("<Observation/>".to_owned(), "access.fhir_unsupported"),
        (twice.clone(), "inspect.blocked"),
        (both, "access.subject_mismatch"),
        (performer, "access.subject_mismatch"),
    ] {
        let reply = s.call("POST", "/api/fhir/Observation", &token, &body).await;
        assert_eq!(reason(&reply), expected, "{body}: {reply:?}");
    }
    assert_eq!(s.upstream.requests().len(), seen);
    // The body must say it is JSON: sent as text, XML or a form, the doubled subject would be
    // read as text by inspection and as JSON here, two ways (docs/access.md).
    let auth = format!("Bearer {token}");
    for declared in [
        "text/plain",
        "application/fhir+xml",
        "application/x-www-form-urlencoded",
    ] {
        for body in [resource("p-1"), twice.clone()] {
            let config = client_config(&s.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
            let headers = [
                ("authorization", auth.as_str()),
                ("phr-purpose", "self-management"),
                ("content-type", declared),
            ];
            let reply = Client::open(s.port, config)
                .await
                .unwrap()
                .send("POST", "/api/fhir/Observation", &headers, &body)
                .await
                .unwrap();
            assert_eq!(
                reason(&reply),
                "access.fhir_unsupported",
                "{declared}: {reply:?}"
            );
        }
    }
    assert_eq!(s.upstream.requests().len(), seen);

    // A Bundle longer than pingora's 64 KiB retry buffer is held back and checked whole: its
    // entry count refuses it with none of it forwarded.
    let entries = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| get_entry(&format!("Observation?patient=p-1&code={i:040}")))
            .collect()
    };
    let long = bundle("batch", entries(2000));
    assert!(long.len() > 64 * 1024);
    let reply = s.call("POST", "/api/fhir", &token, &long).await;
    assert_eq!(reason(&reply), "access.fhir_unsupported", "{reply:?}");
    assert!(reply.body.contains("at most 1000 entries"), "{reply:?}");
    assert!(s.upstream.requests()[seen..]
        .iter()
        .all(|r| r.body.is_empty()));
    // Beyond limits.max_body_bytes (1 MiB by default): 413 before anything is forwarded.
    let huge = bundle("batch", entries(12_000));
    assert!(huge.len() > 1024 * 1024);
    let reply = s.call("POST", "/api/fhir", &token, &huge).await;
    assert_eq!(reply.status, 413, "{reply:?}");
    assert_eq!(reason(&reply), "protocol.body_too_large");
}

/// `explain` reads a Bundle's or a create's body as the proxy does: entry by entry, for the
/// token's patient; without a body it says the body still decides.
#[tokio::test(flavor = "multi_thread")]
async fn explain_decides_a_bundle_from_its_body() {
    let s = setup().await;
    let token = s.token("p-1", "patient/Observation.crs patient/Patient.r");
    let request = |path: &str, body: Option<String>| {
        json!({
            "method": "POST",
            "path": path,
            "headers": [
                ["authorization", format!("Bearer {token}")],
                ["phr-purpose", "self-management"],
                ["content-type", "application/fhir+json"],
            ],
            "body": body,
        })
    };
    let reads = bundle(
        "batch",
        vec![
            get_entry("Observation?patient=p-1"),
            get_entry("Patient/p-1"),
        ],
    );
    let mixed = bundle(
        "batch",
        vec![
            get_entry("Observation?patient=p-1"),
            get_entry("Patient/p-2"),
        ],
    );
    let other = post_observation("p-2")["resource"].to_string();
    let out = explain(
        &s.gateway.policy_path,
        &[
            request("/api/fhir", Some(reads)),
            request("/api/fhir", Some(mixed)),
            request("/api/fhir/Observation", Some(other)),
            request("/api/fhir", None),
        ],
    );
    assert_eq!(out[0]["reason"], "allow", "{}", out[0]);
    assert!(out[0].get("detail").is_none(), "{}", out[0]);
    assert_eq!(out[1]["reason"], "access.subject_mismatch", "{}", out[1]);
    assert!(out[1]["detail"].as_str().unwrap().starts_with("entry 1:"));
    assert_eq!(out[2]["reason"], "access.subject_mismatch", "{}", out[2]);
    assert_eq!(out[3]["reason"], "allow");
    assert!(
        out[3]["detail"]
            .as_str()
            .unwrap()
            .contains("decides the patient"),
        "{}",
        out[3]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recipient_on_a_fhir_route_needs_the_patient_named_and_consented_r_az_4() {
    let s = setup().await;
    let mut claims = mfa_claims("dr-1");
    claims["azp"] = json!("clinic-app");
    claims["scope"] = json!("user/*.rs");
    let clinic = s.key.sign(&claims);
    let read = |path: &'static str| s.call_as("GET", path, &clinic, "treatment", "");
    assert_eq!(
        reason(&read("/api/fhir/Observation/o-1").await),
        "access.subject_mismatch"
    );
    assert_eq!(
        reason(&read("/api/fhir/Observation?patient=p-1").await),
        "access.provision_consent_required"
    );
    let patient = s.token("p-1", "patient/*.rs");
    let consent = json!({"kind": "provision", "recipient": "clinic", "purpose": "treatment", "categories": ["checkup"]});
    assert_eq!(
        s.call("POST", "/.phr/consents", &patient, &consent.to_string())
            .await
            .status,
        201
    );
    assert_eq!(read("/api/fhir/Observation?patient=p-1").await.status, 200);
    // A Bundle mixing two patients is refused; one patient's is a provision like any read.
    let two = bundle(
        "batch",
        vec![
            get_entry("Observation?patient=p-1"),
            get_entry("Observation?patient=p-2"),
        ],
    );
    let reply = s
        .call_as("POST", "/api/fhir", &clinic, "treatment", &two)
        .await;
    assert_eq!(reason(&reply), "access.subject_mismatch");
    let one = bundle("batch", vec![get_entry("Observation?patient=p-1")]);
    let reply = s
        .call_as("POST", "/api/fhir", &clinic, "treatment", &one)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let records = s.call("GET", "/.phr/provisions", &patient, "").await.json();
    assert_eq!(
        records["provisions"].as_array().unwrap().len(),
        2,
        "{records}"
    );
}

/// A search by POST (`POST /T/_search`) may carry its parameters in a form body, which the
/// server reads with the query's: the gateway reads them too, so the patient and the types a
/// body's `_include` reaches are checked as in a query (R-AZ-1).
#[tokio::test(flavor = "multi_thread")]
async fn a_search_by_post_is_read_with_its_form_body_r_az_1() {
    let s = setup().await;
    let token = s.token("p-1", "patient/Observation.rs");
    let auth = format!("Bearer {token}");
    let search = |path: &'static str, content_type: &'static str, body: &'static str| {
        let auth = auth.clone();
        let config = client_config(&s.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
        async move {
            let mut headers = vec![
                ("authorization", auth.as_str()),
                ("phr-purpose", "self-management"),
            ];
            if !content_type.is_empty() {
                headers.push(("content-type", content_type));
            }
            Client::open(s.port, config)
                .await
                .unwrap()
                .send("POST", path, &headers, body)
                .await
                .unwrap()
        }
    };
    let form = "application/x-www-form-urlencoded";
    let url = "/api/fhir/Observation/_search";
    for (path, content_type, body) in [
        (url, form, "patient=p-1&code=4548-4"),
        (
            "/api/fhir/Observation/_search?patient=p-1",
            form,
            "code=4548-4",
        ),
        ("/api/fhir/Observation/_search?patient=p-1", "", ""),
    ] {
        let reply = search(path, content_type, body).await;
        assert_eq!(reply.status, 200, "{path} {body}: {reply:?}");
    }
    let forwarded = s.upstream.requests().len();
    for (path, content_type, body, expected) in [
        // Another patient in the body, alone or beside the token's own in the query.
        (url, form, "patient=p-2", "access.subject_mismatch"),
        (
            "/api/fhir/Observation/_search?patient=p-1",
            form,
            "patient=p-2",
            "access.subject_mismatch",
        ),
        // The patient spelled for another parser (HTTP parameter pollution).
        (
            url,
            form,
            "patient=p-1&PATIENT=p-2",
            "access.subject_mismatch",
        ),
        // No patient at all: a patient's token must name its own.
        (url, form, "code=4548-4", "access.subject_mismatch"),
        // A type the scope does not cover, reached through the body.
        (
            url,
            form,
            "patient=p-1&_include=Observation:subject",
            "access.scope_missing",
        ),
        // Parameters under another type: read one way here, another by the server.
        (
            url,
            "application/json",
            r#"{"patient":"p-2"}"#,
            "access.fhir_unsupported",
        ),
    ] {
        let reply = search(path, content_type, body).await;
        assert_eq!(reason(&reply), expected, "{path} {body}: {reply:?}");
    }
    assert_eq!(s.upstream.requests().len(), forwarded);
}

/// A patch names no resource, only changes to one the backend holds: one that rewrites the
/// record's `subject` or `patient` would move the caller's record into another patient's
/// chart after the backend's compartment check passed on the stored one. Every patch form a
/// FHIR server takes is read for the patient it sets (R-AZ-1).
#[tokio::test(flavor = "multi_thread")]
async fn a_patch_that_moves_a_record_to_another_patient_is_refused_r_az_1() {
    use base64::Engine;
    let s = setup().await;
    let token = s.token("p-1", "patient/Observation.u");
    s.grant_checkup(&token).await;
    let auth = format!("Bearer {token}");
    let patch = |path: &'static str, content_type: &'static str, body: Value| {
        let auth = auth.clone();
        let config = client_config(&s.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
        async move {
            let headers = [
                ("authorization", auth.as_str()),
                ("phr-purpose", "self-management"),
                ("content-type", content_type),
            ];
            let method = if path.ends_with("/fhir") {
                "POST"
            } else {
                "PATCH"
            };
            Client::open(s.port, config)
                .await
                .unwrap()
                .send(method, path, &headers, &body.to_string())
                .await
                .unwrap()
        }
    };
    let (json_patch, merge_patch, fhir) = (
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/fhir+json",
    );
    let url = "/api/fhir/Observation/o-1";
    let p2 = json!({"reference": "Patient/p-2"});
    let operation = |kind: &str, path: &str, value: Value| {
        json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
            {"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}, value]}]})
    };
    for (content_type, body) in [
        (
            json_patch,
            json!([{"op": "replace", "path": "/status", "value": "amended"}]),
        ),
        (
            json_patch,
            json!([{"op": "replace", "path": "/subject/reference", "value": "Patient/p-1"}]),
        ),
        (
            fhir,
            operation(
                "replace",
                "Observation.status",
                json!({"name": "value", "valueCode": "amended"}),
            ),
        ),
        (merge_patch, json!({"status": "amended"})),
    ] {
        let reply = patch(url, content_type, body.clone()).await;
        assert_eq!(reply.status, 200, "{body}: {reply:?}");
    }
    let forwarded = s.upstream.requests().len();
    let binary = |operations: Value| {
        json!({"resourceType": "Binary", "contentType": "application/json-patch+json",
            "data": base64::engine::general_purpose::STANDARD.encode(operations.to_string())})
    };
    for (path, content_type, body) in [
        (
            url,
            json_patch,
            json!([{"op": "replace", "path": "/subject", "value": p2}]),
        ),
        (
            url,
            json_patch,
            json!([{"op": "remove", "path": "/subject"}]),
        ),
        // The whole document replaced, by one naming another patient.
        (
            url,
            json_patch,
            json!([{"op": "replace", "path": "", "value": {"resourceType": "Observation", "subject": p2}}]),
        ),
        (
            url,
            json_patch,
            json!([{"op": "replace", "path": "/subject/identifier/value", "value": "p-2"}]),
        ),
        (
            url,
            fhir,
            operation(
                "replace",
                "Observation.subject",
                json!({"name": "value", "valueReference": p2}),
            ),
        ),
        (url, merge_patch, json!({"subject": p2})),
        (url, merge_patch, json!({"subject": null})),
        // Another field made to refer to another patient: the record joins that one's too.
        (
            url,
            json_patch,
            json!([{"op": "add", "path": "/performer/-", "value": p2}]),
        ),
        (url, merge_patch, json!({"focus": [p2]})),
        (
            "/api/fhir",
            fhir,
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
                "request": {"method": "PATCH", "url": "Observation/o-1"},
                "resource": binary(json!([{"op": "add", "path": "/subject", "value": p2}]))}]}),
        ),
    ] {
        let reply = patch(path, content_type, body.clone()).await;
        assert_eq!(
            reason(&reply),
            "access.subject_mismatch",
            "{body}: {reply:?}"
        );
    }
    assert_eq!(
        s.upstream.requests().len(),
        forwarded,
        "a refused patch was forwarded"
    );
}
