//! The demo's sample PHR backend: FHIR-shaped JSON from memory, on a plain loopback listener.
//! Fictional data only. It announces itself with a `Server` banner so the demo can show the
//! gateway removing it.

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

/// The sample backend.
pub struct DemoBackend {
    /// The demo issuer's JWKS, served at `/.well-known/jwks.json`.
    jwks: Option<Value>,
    patients: Vec<Value>,
    observations: Vec<Value>,
    immunizations: Vec<Value>,
    medications: Vec<Value>,
}

impl Default for DemoBackend {
    fn default() -> Self {
        DemoBackend {
            jwks: None,
            patients: vec![json!({
                "resourceType": "Patient", "id": "p-001",
                "name": [{"use": "official", "family": "山田", "given": ["花子"],
                          "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "IDE"}]},
                         {"use": "official", "family": "ヤマダ", "given": ["ハナコ"]}],
                "gender": "female", "birthDate": "1980-04-01"
            })],
            observations: vec![
                json!({"resourceType": "Observation", "id": "o-001", "status": "final",
                       "category": [{"coding": [{"code": "laboratory"}]}],
                       "code": {"coding": [{"system": "http://jpfhir.jp/fhir/core/CodeSystem/JP_ObservationLabResultCode_CS", "code": "3D046000001920402", "display": "HbA1c"}]},
                       "subject": {"reference": "Patient/p-001"}, "effectiveDateTime": "2026-04-10",
                       "valueQuantity": {"value": 5.6, "unit": "%"}}),
                json!({"resourceType": "Observation", "id": "o-002", "status": "final",
                       "code": {"text": "収縮期血圧"},
                       "subject": {"reference": "Patient/p-001"}, "effectiveDateTime": "2026-04-10",
                       "valueQuantity": {"value": 118, "unit": "mm[Hg]"}}),
            ],
            immunizations: vec![json!({
                "resourceType": "Immunization", "id": "i-001", "status": "completed",
                "vaccineCode": {"text": "インフルエンザHAワクチン"},
                "patient": {"reference": "Patient/p-001"}, "occurrenceDateTime": "2025-11-02"
            })],
            medications: vec![json!({
                "resourceType": "MedicationStatement", "id": "m-001", "status": "active",
                "medicationCodeableConcept": {"text": "アムロジピン錠5mg 1日1回朝食後"},
                "subject": {"reference": "Patient/p-001"}
            })],
        }
    }
}

impl DemoBackend {
    /// The backend that also serves the demo issuer's JWKS.
    pub fn with_jwks(jwks: &str) -> Self {
        DemoBackend {
            jwks: serde_json::from_str(jwks).ok(),
            ..DemoBackend::default()
        }
    }

    /// The status and JSON body for a GET of `path` with `query`.
    pub fn answer(&self, method: &str, path: &str, query: Option<&str>) -> (StatusCode, Value) {
        if method != "GET" && method != "HEAD" {
            return outcome(
                StatusCode::METHOD_NOT_ALLOWED,
                "the demo backend is read-only",
            );
        }
        let patient = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|kv| kv.strip_prefix("patient="))
            .map(|p| p.trim_start_matches("Patient/"));
        let search = |set: &[Value], field: &str| match patient {
            None => outcome(StatusCode::BAD_REQUEST, "search needs patient="),
            Some(p) => {
                let wanted = format!("Patient/{p}");
                let entries: Vec<Value> = set
                    .iter()
                    .filter(|r| r[field]["reference"] == wanted.as_str())
                    .map(|r| json!({"resource": r}))
                    .collect();
                (
                    StatusCode::OK,
                    json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
                )
            }
        };
        match path {
            "/.well-known/jwks.json" => match &self.jwks {
                Some(jwks) => (StatusCode::OK, jwks.clone()),
                None => outcome(StatusCode::NOT_FOUND, "no issuer here"),
            },
            "/fhir/metadata" => (StatusCode::OK, capability_statement()),
            "/fhir/Observation" => search(&self.observations, "subject"),
            "/fhir/Immunization" => search(&self.immunizations, "patient"),
            "/fhir/MedicationStatement" => search(&self.medications, "subject"),
            _ => match path.strip_prefix("/fhir/Patient/") {
                Some(id) => match self.patients.iter().find(|p| p["id"] == id) {
                    Some(p) => (StatusCode::OK, p.clone()),
                    None => outcome(StatusCode::NOT_FOUND, "no such patient"),
                },
                None => outcome(StatusCode::NOT_FOUND, "unknown resource"),
            },
        }
    }
}

/// What a FHIR server says about itself at `/metadata`: public by FHIR's design (a client
/// reads it before it has a token), so the demo's one anonymous route.
fn capability_statement() -> Value {
    let search = |name: &str| json!({"name": name, "type": "reference"});
    json!({
        "resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
        "date": "2026-11-29", "fhirVersion": "4.0.1", "format": ["json"],
        "software": {"name": "phr-gateway demo backend"},
        "rest": [{"mode": "server", "resource": [
            {"type": "Patient", "interaction": [{"code": "read"}]},
            {"type": "Observation", "interaction": [{"code": "search-type"}, {"code": "create"}],
             "searchParam": [search("patient")]},
            {"type": "Immunization", "interaction": [{"code": "search-type"}],
             "searchParam": [search("patient")]},
            {"type": "MedicationStatement", "interaction": [{"code": "search-type"}],
             "searchParam": [search("patient")]}
        ]}]
    })
}

fn outcome(status: StatusCode, text: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": "processing", "diagnostics": text}]}),
    )
}

#[async_trait]
impl ServeHttp for DemoBackend {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let request = session.req_header();
        let create =
            request.method == http::Method::POST && request.uri.path() == "/fhir/Observation";
        let (status, body) = if create {
            // A create is answered with the resource as it arrived (not stored), so that the
            // demo shows what the gateway forwarded.
            let mut received = Vec::new();
            while let Ok(Some(chunk)) = session.read_request_body().await {
                received.extend_from_slice(&chunk);
            }
            match serde_json::from_slice::<Value>(&received) {
                Ok(mut resource) => {
                    resource["id"] = json!("obs-new");
                    (StatusCode::CREATED, resource)
                }
                Err(_) => outcome(StatusCode::BAD_REQUEST, "not a JSON resource"),
            }
        } else {
            self.answer(
                request.method.as_str(),
                request.uri.path(),
                request.uri.query(),
            )
        };
        let body = serde_json::to_vec_pretty(&body).unwrap_or_default();
        Response::builder()
            .status(status)
            .header(
                http::header::CONTENT_TYPE,
                "application/fhir+json; charset=utf-8",
            )
            .header(http::header::CONTENT_LENGTH, body.len())
            .header(http::header::SERVER, "demo-backend/0.1")
            .body(body)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_reads_and_searches() {
        let b = DemoBackend::default();
        let (s, v) = b.answer("GET", "/fhir/Patient/p-001", None);
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["name"][0]["family"], "山田");
        let (s, v) = b.answer("GET", "/fhir/metadata", None);
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["resourceType"], "CapabilityStatement");
        let (s, v) = b.answer("GET", "/fhir/Observation", Some("patient=p-001"));
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["total"], 2);
        let (s, _) = b.answer("GET", "/fhir/Observation", None);
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = b.answer("DELETE", "/fhir/Patient/p-001", None);
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    }
}
