//! Which patient a FHIR `PATCH` body sets (R-AZ-1).
//!
//! A patch names no resource the gateway can read, only changes to one the backend holds; if
//! it rewrites the resource's `subject` or `patient`, it moves a record the caller may change
//! into another patient's chart — and the backend's compartment check, run against the stored
//! resource, passed before the change. So a patch that touches either field must set it to
//! one literal patient reference, which is then checked as a create's `subject` is; a patch
//! that removes, moves or half-rewrites it (its `identifier`, its `type`) is refused. The three
//! forms a FHIR server takes: JSON Patch (RFC 6902, an array; in a Bundle, a `Binary`
//! carrying it), FHIRPath Patch (a `Parameters` resource), and JSON Merge Patch (RFC 7386, an
//! object whose members replace the resource's). A reference to a patient the patch writes
//! into any other field (`performer`, `focus`) must name that same patient: a server files the
//! resource in the compartment of each patient it refers to.

use base64::Engine;
use serde_json::Value;

use super::fhir::{each_reference, patient_of_reference, referred_patient};
use crate::decision::{Reason, Refusal};

/// The fields that say whose record a resource is.
const PATIENT_FIELDS: [&str; 2] = ["subject", "patient"];

/// The patient `patch` sets, `None` when it leaves `subject` and `patient` alone.
pub fn patched_patient(patch: &Value) -> Result<Option<String>, Refusal> {
    let mut set = PatientSet::default();
    match patch {
        Value::Array(operations) => json_patch(operations, &mut set)?,
        Value::Object(resource) => match resource.get("resourceType").and_then(Value::as_str) {
            Some("Parameters") => fhirpath_patch(patch, &mut set)?,
            Some("Binary") => binary_json_patch(patch, &mut set)?,
            _ => merge_patch(resource, &mut set)?,
        },
        _ => return Err(refuse("a patch is a JSON array or object")),
    }
    Ok(set.patient)
}

/// The one patient every change of a patch names.
#[derive(Default)]
struct PatientSet {
    patient: Option<String>,
}

impl PatientSet {
    fn name(&mut self, reference: Option<&str>) -> Result<(), Refusal> {
        let reference = reference.ok_or_else(|| {
            refuse("a patch that sets a resource's patient must name it by a literal reference")
        })?;
        let patient = patient_of_reference(reference).unwrap_or(reference);
        match &self.patient {
            Some(earlier) if earlier != patient => Err(refuse(
                "the patch names two patients (its subject or patient, or a reference another field files the resource under)",
            )),
            _ => {
                self.patient = Some(patient.to_owned());
                Ok(())
            }
        }
    }

    /// A value the patch writes: every patient it refers to is the one patient the patch names.
    /// `pointer` is where it goes, for a bare reference string (`/performer/0/reference`).
    fn refer(&mut self, value: &Value, pointer: &str) -> Result<(), Refusal> {
        let mut referred = Vec::new();
        match value {
            Value::String(reference) if pointer.ends_with("reference") => {
                referred.push(reference.as_str())
            }
            _ => each_reference(value, &mut |reference| referred.push(reference)),
        }
        for id in referred.into_iter().filter_map(referred_patient) {
            self.name(Some(id))?;
        }
        Ok(())
    }
}

fn refuse(detail: &str) -> Refusal {
    Refusal::new(Reason::AccessSubjectMismatch, detail)
}

fn removes() -> Refusal {
    refuse("a patch may not remove, move or rewrite in part a resource's subject or patient")
}

/// RFC 6902: each operation's `path` (and `from`) is a JSON pointer into the resource.
fn json_patch(operations: &[Value], set: &mut PatientSet) -> Result<(), Refusal> {
    for operation in operations {
        let op = operation["op"].as_str().unwrap_or_default();
        if let Some(from) = operation["from"].as_str() {
            if op == "move" && patient_field(from).is_some() {
                return Err(removes());
            }
        }
        let path = operation["path"].as_str().unwrap_or_default();
        if matches!(op, "add" | "replace") {
            set.refer(&operation["value"], path)?;
        }
        if path.is_empty() {
            // The whole document: a value replacing it names its patient as a merge patch
            // does, and must name one.
            match (op, &operation["value"]) {
                ("test", _) => {}
                ("add" | "replace", Value::Object(resource))
                    if PATIENT_FIELDS.iter().any(|f| resource.contains_key(*f)) =>
                {
                    merge_patch(resource, set)?
                }
                _ => return Err(removes()),
            }
            continue;
        }
        let Some(rest) = patient_field(path) else {
            continue;
        };
        match (op, rest.as_str()) {
            ("test", _) => {}
            ("add" | "replace", "") => set.name(operation["value"]["reference"].as_str())?,
            ("add" | "replace", "/reference") => set.name(operation["value"].as_str())?,
            _ => return Err(removes()),
        }
    }
    Ok(())
}

/// What follows `/subject` or `/patient` in a JSON pointer (`""`, `/reference`, …), when the
/// pointer starts with one of them.
fn patient_field(pointer: &str) -> Option<String> {
    let rest = pointer.strip_prefix('/')?;
    let (first, tail) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    // RFC 6901 escapes: `~1` is `/`, `~0` is `~`.
    let first = first.replace("~1", "/").replace("~0", "~");
    let tail = tail.replace("~1", "/").replace("~0", "~");
    PATIENT_FIELDS.contains(&first.as_str()).then_some(tail)
}

/// A `Binary` whose `data` is a JSON Patch: how a Bundle entry carries one.
fn binary_json_patch(binary: &Value, set: &mut PatientSet) -> Result<(), Refusal> {
    let unreadable = || {
        Refusal::new(
            Reason::AccessFhirUnsupported,
            "a Binary patch must carry a JSON Patch in `data` (base64)",
        )
    };
    let data = binary["data"].as_str().ok_or_else(unreadable)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| unreadable())?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(operations)) => json_patch(&operations, set),
        _ => Err(unreadable()),
    }
}

/// FHIRPath Patch: `operation` parameters, each with a `type`, a `path` (`Observation.subject`),
/// for `add` a `name`, and a `value[x]`.
fn fhirpath_patch(parameters: &Value, set: &mut PatientSet) -> Result<(), Refusal> {
    let operations = parameters["parameter"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for operation in operations.iter().filter(|p| p["name"] == "operation") {
        let parts = operation["part"].as_array().map_or(&[][..], Vec::as_slice);
        let part = |name: &str| parts.iter().find(|p| p["name"] == name);
        let text = |name: &str| {
            part(name).and_then(|p| p["valueString"].as_str().or(p["valueCode"].as_str()))
        };
        let kind = text("type").unwrap_or_default();
        let path = text("path").unwrap_or_default();
        // The element the operation changes, below the resource: `subject` in
        // `Observation.subject`, or the `name` an `add` puts under `path`.
        let mut steps: Vec<&str> = path.split('.').skip(1).collect();
        if kind == "add" {
            steps.extend(text("name"));
        }
        if matches!(kind, "add" | "insert" | "replace") {
            if let Some(value) = part("value") {
                let pointer = steps.last().copied().map(field_name).unwrap_or_default();
                let written = value
                    .as_object()
                    .and_then(|v| v.iter().find(|(k, _)| k.starts_with("value")))
                    .map_or(&Value::Null, |(_, v)| v);
                set.refer(written, pointer)?;
            }
        }
        let Some(at) = steps
            .iter()
            .position(|step| PATIENT_FIELDS.contains(&field_name(step)))
        else {
            continue;
        };
        let value = part("value");
        match (kind, &steps[at + 1..]) {
            ("add" | "replace", []) => {
                set.name(value.and_then(|v| v["valueReference"]["reference"].as_str()))?
            }
            ("add" | "replace", ["reference"]) => set.name(value.and_then(|v| {
                v["valueString"]
                    .as_str()
                    .or(v["valueUri"].as_str())
                    .or(v["valueReference"]["reference"].as_str())
            }))?,
            _ => return Err(removes()),
        }
    }
    Ok(())
}

/// A FHIRPath step's element name, without a function or index (`subject.first()`,
/// `patient[0]`).
fn field_name(step: &str) -> &str {
    step.split(['(', '[']).next().unwrap_or(step)
}

/// RFC 7386: a member replaces the resource's; `null` removes it.
fn merge_patch(
    resource: &serde_json::Map<String, Value>,
    set: &mut PatientSet,
) -> Result<(), Refusal> {
    for (name, value) in resource {
        set.refer(value, name)?;
    }
    for field in PATIENT_FIELDS {
        match resource.get(field) {
            None => {}
            Some(Value::Object(reference)) => {
                if reference.keys().any(|k| k != "reference" && k != "display") {
                    return Err(removes());
                }
                set.name(reference.get("reference").and_then(Value::as_str))?
            }
            Some(_) => return Err(removes()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(value: &Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(value.to_string())
    }

    fn op(kind: &str, path: &str, extra: Value) -> Value {
        let mut part = vec![
            json!({"name": "type", "valueCode": kind}),
            json!({"name": "path", "valueString": path}),
        ];
        if let Value::Array(more) = extra {
            part.extend(more);
        }
        json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": part}]})
    }

    #[test]
    fn a_patch_names_the_patient_it_sets() {
        let reference = json!({"reference": "Patient/p-2"});
        let value_reference =
            json!([{"name": "value", "valueReference": {"reference": "Patient/p-2"}}]);
        let cases = [
            json!([{"op": "replace", "path": "/subject", "value": reference}]),
            json!([{"op": "add", "path": "/patient", "value": reference}]),
            json!([{"op": "replace", "path": "/subject/reference", "value": "https://x/fhir/Patient/p-2"}]),
            json!([{"op": "test", "path": "/subject/reference", "value": "Patient/p-1"},
                   {"op": "replace", "path": "/subject/reference", "value": "p-2"}]),
            json!({"resourceType": "Binary", "contentType": "application/json-patch+json",
                   "data": b64(&json!([{"op": "replace", "path": "/subject", "value": reference}]))}),
            op("replace", "Observation.subject", value_reference.clone()),
            op(
                "add",
                "Immunization",
                json!([{"name": "name", "valueString": "patient"},
                {"name": "value", "valueReference": {"reference": "Patient/p-2"}}]),
            ),
            op(
                "replace",
                "Observation.subject.reference",
                json!([{"name": "value", "valueString": "Patient/p-2"}]),
            ),
            json!({"subject": {"reference": "Patient/p-2", "display": "B"}, "status": "final"}),
            json!([{"op": "replace", "path": "", "value": {"resourceType": "Observation", "subject": reference}}]),
            // Another field that refers to a patient files the resource in that patient's
            // compartment too: the patch names that patient.
            json!([{"op": "add", "path": "/performer/-", "value": reference}]),
            json!([{"op": "replace", "path": "/focus/0/reference", "value": "Patient/p-2/_history/1"}]),
            json!({"performer": [{"reference": "Patient/p-2"}]}),
            op(
                "add",
                "Observation",
                json!([{"name": "name", "valueString": "performer"},
                {"name": "value", "valueReference": {"reference": "Patient/p-2"}}]),
            ),
            op(
                "replace",
                "Observation.focus[0].reference",
                json!([{"name": "value", "valueString": "Patient/p-2"}]),
            ),
        ];
        for patch in cases {
            assert_eq!(
                patched_patient(&patch).map_err(|r| r.detail),
                Ok(Some("p-2".into())),
                "{patch}"
            );
        }
    }

    /// The subject set to one patient and another field to another: the resource would join
    /// both records (R-AZ-1).
    #[test]
    fn a_patch_referring_to_two_patients_is_refused_r_az_1() {
        for patch in [
            json!([{"op": "replace", "path": "/subject", "value": {"reference": "Patient/p-1"}},
                   {"op": "add", "path": "/performer/-", "value": {"reference": "Patient/p-2"}}]),
            json!({"subject": {"reference": "Patient/p-1"}, "focus": [{"reference": "Patient/p-2"}]}),
            json!([{"op": "add", "path": "/performer", "value": [
                {"reference": "Patient/p-1"}, {"reference": "Patient/p-2"}]}]),
        ] {
            let refusal = patched_patient(&patch).expect_err("two patients");
            assert_eq!(refusal.reason, Reason::AccessSubjectMismatch, "{patch}");
        }
    }

    #[test]
    fn a_patch_that_leaves_the_patient_alone_names_none() {
        for patch in [
            json!([{"op": "replace", "path": "/status", "value": "amended"},
                   {"op": "copy", "from": "/subject", "path": "/focus/0"},
                   {"op": "add", "path": "/note/-", "value": {"text": "subject to change"}}]),
            json!([{"op": "replace", "path": "/subjectNote", "value": "x"}]),
            op(
                "replace",
                "Observation.status",
                json!([{"name": "value", "valueCode": "amended"}]),
            ),
            json!({"status": "amended"}),
            json!([]),
            // References to other types, local ones, a reference tested and not written.
            json!([{"op": "add", "path": "/performer/-", "value": {"reference": "Practitioner/d-1"}},
                   {"op": "replace", "path": "/specimen/reference", "value": "#s1"},
                   {"op": "test", "path": "/focus/0/reference", "value": "Patient/p-2"}]),
            json!({"performer": [{"reference": "Organization/o-1"}]}),
        ] {
            assert_eq!(
                patched_patient(&patch).map_err(|r| r.detail),
                Ok(None),
                "{patch}"
            );
        }
    }

    /// Removing, moving or half-rewriting the patient, naming it without a literal reference,
    /// or twice differently, is refused (R-AZ-1).
    #[test]
    fn a_patch_that_moves_or_blurs_the_patient_is_refused() {
        let p1 = json!({"reference": "Patient/p-1"});
        let p2 = json!({"reference": "Patient/p-2"});
        for patch in [
            json!([{"op": "remove", "path": "/subject"}]),
            json!([{"op": "move", "from": "/subject", "path": "/focus/0"}]),
            json!([{"op": "copy", "from": "/focus/0", "path": "/subject"}]),
            json!([{"op": "replace", "path": "/subject/identifier/value", "value": "p-2"}]),
            json!([{"op": "replace", "path": "/subject", "value": {"identifier": {"value": "p-2"}}}]),
            json!([{"op": "remove", "path": "/patient/reference"}]),
            json!([{"op": "replace", "path": "", "value": {"resourceType": "Observation", "status": "final"}}]),
            json!([{"op": "replace", "path": "", "value": {"subject": p2, "patient": p1}}]),
            json!([{"op": "remove", "path": ""}]),
            json!([{"op": "copy", "from": "/contained/0", "path": ""}]),
            json!([{"op": "replace", "path": "/subject", "value": p1},
                   {"op": "replace", "path": "/patient", "value": p2}]),
            json!({"resourceType": "Binary", "data": "not base64!"}),
            op("delete", "Observation.subject", json!([])),
            op(
                "replace",
                "Observation.subject.identifier",
                json!([{"name": "value", "valueString": "p-2"}]),
            ),
            op("replace", "Observation.subject", json!([])),
            op("move", "Observation.patient", json!([])),
            json!({"subject": null}),
            json!({"patient": {"identifier": {"value": "p-2"}}}),
            json!({"subject": p1, "patient": p2}),
            json!("replace"),
        ] {
            assert!(patched_patient(&patch).is_err(), "{patch}");
        }
    }
}
