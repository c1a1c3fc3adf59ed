//! FHIR-derived access (R-AZ-1): on a route marked `fhir = "<base>"`, what a request needs is
//! derived from its method, path and query, not listed by hand.
//!
//! (method, path) gives the interaction letter, the resource type and the patient compartment:
//! `GET /Observation?patient=p-1` is a search (`s`) on `Observation` for `p-1`; `PUT
//! /Patient/p-1` an update (`u`) of `Patient` `p-1`. `_include`, `_revinclude` and `_has`
//! reach other types, each needing its own letter; `GET /Patient/{id}/$everything` reaches every
//! type. A batch or transaction (`POST` to the base) is checked entry by entry from its body.
//! Anything the gateway cannot map to (type, letter, patient) — other operations, whole-system
//! searches, modifiers on the patient parameter — is refused rather than guessed.

use std::borrow::Cow;

use http::Method;

use super::scope::letters;
use crate::decision::{Reason, Refusal};

/// A route's FHIR settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FhirRoute {
    /// The FHIR base path (`/fhir`): the part of the path before the resource type.
    pub base: String,
}

/// One thing a request reaches: interaction letters on a resource type, or on every type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need<'a> {
    /// The resource type; `None`: every type.
    pub resource: Option<Cow<'a, str>>,
    /// The SMART interaction letters needed (`scope::letters`).
    pub letters: u8,
}

/// What a FHIR request does, as far as access is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FhirRequest<'a> {
    /// What it reaches.
    pub needs: Vec<Need<'a>>,
    /// The patient it names: the compartment, a `Patient` id, or `patient=` / `subject=` /
    /// `_id` (on `Patient`).
    pub patient: Option<Cow<'a, str>>,
    /// Whether it can reach many resources at once (search, history, create, conditional
    /// update or delete): a patient-bound token must then name its patient.
    pub type_level: bool,
    /// A batch or transaction Bundle: its entries, in the body, decide.
    pub bundle: bool,
    /// A create or update: the resource in the body names its patient; or a search by POST,
    /// whose form body holds search parameters too.
    pub reads_body: bool,
}

/// Whether the request is a search by POST (`POST /T/_search`): FHIR lets its parameters
/// come in an `application/x-www-form-urlencoded` body as well as the query, and a server
/// reads both, so the gateway must too.
pub fn is_search_by_post(method: &Method, rest: &str) -> bool {
    *method == Method::POST && rest.ends_with("/_search")
}

fn unsupported(detail: String) -> Refusal {
    Refusal::new(Reason::AccessFhirUnsupported, detail)
}

/// A resource type name: an ASCII capital, then letters and digits.
fn is_type(segment: &str) -> bool {
    let mut chars = segment.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

fn need(resource: &str, letters: u8) -> Need<'_> {
    Need {
        resource: Some(Cow::Borrowed(resource)),
        letters,
    }
}

impl FhirRoute {
    /// The part of `path` after the base (`""` for the base itself), or `None` when `path` is
    /// not under it.
    pub fn rest<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.base.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

/// Derive what `method` on `rest` (the path after the base) with `query` reaches.
pub fn derive<'a>(
    method: &Method,
    rest: &'a str,
    query: Option<&'a str>,
) -> Result<FhirRequest<'a>, Refusal> {
    use letters::*;
    let trimmed = rest.trim_start_matches('/');
    let segments: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    let read = matches!(*method, Method::GET | Method::HEAD);
    let mut request = FhirRequest::default();
    let mut path_patient: Option<&str> = None;
    match (segments.as_slice(), read) {
        ([], false) if *method == Method::POST => {
            request.bundle = true;
            return Ok(request);
        }
        (["metadata"], true) => return Ok(request),
        ([t], _) if is_type(t) => {
            let letters = match *method {
                Method::GET | Method::HEAD => SEARCH,
                Method::POST => CREATE,
                // A conditional update may create.
                Method::PUT | Method::PATCH => CREATE | UPDATE,
                Method::DELETE => DELETE,
                _ => return Err(unsupported(format!("{method} on a resource type"))),
            };
            request.needs.push(need(t, letters));
            request.type_level = true;
            request.reads_body = !read && *method != Method::DELETE;
        }
        ([t, "_search"], false) if is_type(t) && *method == Method::POST => {
            request.needs.push(need(t, SEARCH));
            request.type_level = true;
            // The body's parameters (`patient=`, `_include=`) count as the query's do.
            request.reads_body = true;
        }
        ([t, "_history"], true) if is_type(t) => {
            request.needs.push(need(t, SEARCH));
            request.type_level = true;
        }
        ([t, id], _) if is_type(t) && !id.starts_with(['$', '_']) => {
            let letters = match *method {
                Method::GET | Method::HEAD => READ,
                Method::PUT | Method::PATCH => UPDATE,
                Method::DELETE => DELETE,
                _ => return Err(unsupported(format!("{method} on a resource instance"))),
            };
            request.needs.push(need(t, letters));
            request.reads_body = matches!(*method, Method::PUT | Method::PATCH);
            if *t == "Patient" {
                path_patient = Some(id);
            }
        }
        ([t, id, "_history"] | [t, id, "_history", _], true)
            if is_type(t) && !id.starts_with(['$', '_']) =>
        {
            request.needs.push(need(t, READ));
            if *t == "Patient" {
                path_patient = Some(id);
            }
        }
        (["Patient", id, "$everything"], true) if !id.starts_with(['$', '_']) => {
            request.needs.push(Need {
                resource: None,
                letters: READ | SEARCH,
            });
            path_patient = Some(id);
        }
        (["Patient", id, t], true) if !id.starts_with(['$', '_']) && (is_type(t) || *t == "*") => {
            request.needs.push(Need {
                resource: (*t != "*").then_some(Cow::Borrowed(*t)),
                letters: SEARCH,
            });
            path_patient = Some(id);
            request.type_level = true;
        }
        _ => {
            return Err(unsupported(format!(
                "the gateway cannot tell what {method} {} reaches (operations, whole-system interactions and other shapes are refused)",
                if rest.is_empty() { "/" } else { rest }
            )))
        }
    }
    let searched = request.needs.first().and_then(|n| n.resource.clone());
    let query_patient = read_query(query, searched.as_deref(), &mut request)?;
    request.patient = match (path_patient, query_patient) {
        (Some(p), Some(q)) if p != q => return Err(two_patients()),
        (Some(p), _) => Some(Cow::Borrowed(p)),
        (None, q) => q,
    };
    Ok(request)
}

fn two_patients() -> Refusal {
    Refusal::new(
        Reason::AccessSubjectMismatch,
        "the request names more than one patient",
    )
}

/// The patient a reference names: `p-1`, `Patient/p-1` or `https://…/Patient/p-1`; `None`
/// for a reference to anything else.
pub fn patient_of_reference(value: &str) -> Option<&str> {
    let id = match value.rfind("Patient/") {
        Some(at) if at == 0 || value[..at].ends_with('/') => &value[at + "Patient/".len()..],
        Some(_) => return None,
        None if !value.contains('/') => value,
        None => return None,
    };
    (!id.is_empty() && !id.contains(['/', ','])).then_some(id)
}

/// Read the search parameters that matter for access: the patient (`patient`, `subject`, and
/// `_id` on `Patient`) and what `_include`, `_revinclude` and `_has` reach.
fn read_query<'a>(
    query: Option<&'a str>,
    searched: Option<&str>,
    request: &mut FhirRequest<'a>,
) -> Result<Option<Cow<'a, str>>, Refusal> {
    let mut patient: Option<Cow<'a, str>> = None;
    let Some(query) = query else {
        return Ok(None);
    };
    let names: &[&str] = if searched == Some("Patient") {
        &["patient", "subject", "_id"]
    } else {
        &["patient", "subject"]
    };
    if super::names_parameter_ambiguously(query, names) {
        return Err(Refusal::new(
            Reason::AccessSubjectMismatch,
            super::AMBIGUOUS_SUBJECT,
        ));
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &'a str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map_err(|_| unsupported("a search parameter is not UTF-8".into()))
        };
        let key = decode(key)?;
        let value = decode(value)?;
        let (name, modifier) = match key.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (&*key, None),
        };
        let names_patient = match name {
            "patient" | "subject" => true,
            "_id" => searched == Some("Patient"),
            _ => false,
        };
        if names_patient {
            if !matches!(modifier, None | Some("Patient")) {
                return Err(unsupported(format!(
                    "the modifier `{name}:{}` is not supported on the patient parameter",
                    modifier.unwrap_or_default()
                )));
            }
            let Some(id) = patient_of_reference(&value) else {
                // Another type's reference, or several patients (`p-1,p-2`).
                return Err(Refusal::new(
                    Reason::AccessSubjectMismatch,
                    format!("`{name}` must name one patient"),
                ));
            };
            let id = match &value {
                Cow::Borrowed(v) => {
                    let v: &'a str = v;
                    Cow::Borrowed(&v[v.len() - id.len()..])
                }
                Cow::Owned(_) => Cow::Owned(id.to_owned()),
            };
            match &patient {
                Some(p) if *p != id => return Err(two_patients()),
                _ => patient = Some(id),
            }
            continue;
        }
        match name {
            "_include" | "_revinclude" => {
                request.needs.push(included(name, &value)?);
            }
            "_has" => {
                // _has:Type:reference:parameter=value — resources of Type are searched.
                let target = key.split(':').nth(1).unwrap_or_default();
                if !is_type(target) {
                    return Err(unsupported(format!("`{key}` names no resource type")));
                }
                request.needs.push(Need {
                    resource: Some(Cow::Owned(target.to_owned())),
                    letters: letters::SEARCH,
                });
            }
            // A named query's parameters mean what its definition says, the patient's too:
            // which data it returns cannot be told from the request.
            "_query" => {
                return Err(unsupported(format!(
                    "the named query `_query={value}` cannot be authorised: its definition, not the request, says whose data it returns"
                )))
            }
            _ => {}
        }
    }
    Ok(patient)
}

/// What `_include=Source:param[:Target]` or `_revinclude=Source:param[:Target]` returns.
fn included(name: &str, value: &str) -> Result<Need<'static>, Refusal> {
    let parts: Vec<&str> = value.split(':').collect();
    let every = Need {
        resource: None,
        letters: letters::READ,
    };
    let resource = match (name, parts.as_slice()) {
        (_, ["*"]) => return Ok(every),
        // Included resources are the targets; without a target, any referenced type.
        ("_include", [source, _]) if is_type(source) => return Ok(every),
        ("_include", [source, _, target]) if is_type(source) && is_type(target) => *target,
        // Reverse-included resources are of the source type.
        ("_revinclude", [source, _] | [source, _, _]) if is_type(source) => *source,
        _ => return Err(unsupported(format!("`{name}={value}` is not understood"))),
    };
    Ok(Need {
        resource: Some(Cow::Owned(resource.to_owned())),
        letters: letters::READ,
    })
}

/// One entry of a batch or transaction Bundle, as access sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEntry {
    /// `entry.request.method`.
    pub method: Method,
    /// The path part of `entry.request.url`, with a leading `/`.
    pub path: String,
    /// Its query part.
    pub query: Option<String>,
    /// The patient `entry.resource` refers to (`subject` or `patient`), or is (`Patient.id`).
    pub resource_patient: Option<String>,
}

/// The most entries a Bundle may have.
pub const MAX_BUNDLE_ENTRIES: usize = 1000;

/// Read a batch or transaction Bundle's entries.
pub fn bundle_entries(body: &[u8]) -> Result<Vec<BundleEntry>, Refusal> {
    use serde::Deserialize;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Bundle {
        resource_type: String,
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        entry: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        request: Option<EntryRequest>,
        resource: Option<serde_json::Value>,
    }
    #[derive(Deserialize)]
    struct EntryRequest {
        method: String,
        url: String,
    }
    let invalid = |detail: String| Refusal::new(Reason::AccessFhirUnsupported, detail);
    let bundle: Bundle = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the Bundle is not valid: {e}")))?;
    if bundle.resource_type != "Bundle" || !matches!(&*bundle.kind, "batch" | "transaction") {
        return Err(invalid(
            "a POST to the FHIR base must be a batch or transaction Bundle".into(),
        ));
    }
    if bundle.entry.len() > MAX_BUNDLE_ENTRIES {
        return Err(invalid(format!(
            "a Bundle may have at most {MAX_BUNDLE_ENTRIES} entries"
        )));
    }
    bundle
        .entry
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let request = entry
                .request
                .ok_or_else(|| invalid(format!("entry {i} has no request")))?;
            let method = match request.method.as_str() {
                "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" => {
                    Method::from_bytes(request.method.as_bytes())
                        .map_err(|_| invalid(format!("entry {i}: method")))?
                }
                other => return Err(invalid(format!("entry {i}: method `{other}`"))),
            };
            // A relative URL (`Observation?patient=p-1`); an absolute one is refused: the
            // gateway cannot tell which server it names.
            if request.url.contains("://") || request.url.starts_with('/') {
                return Err(invalid(format!(
                    "entry {i}: the url must be relative to the base"
                )));
            }
            let (path, query) = match request.url.split_once('?') {
                Some((p, q)) => (format!("/{p}"), Some(q.to_owned())),
                None => (format!("/{}", request.url), None),
            };
            let resource_patient = match &entry.resource {
                Some(resource) => body_patient(&method, resource).map_err(|r| at_entry(i, r))?,
                None => None,
            };
            Ok(BundleEntry {
                method,
                path,
                query,
                resource_patient,
            })
        })
        .collect()
}

/// A single create or update as a one-entry batch: the resource in `body` names its patient.
/// A JSON Patch (an array) names none.
pub fn single_entry(
    method: &Method,
    rest: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<BundleEntry, Refusal> {
    if is_search_by_post(method, rest) {
        // The search's parameters: the query's and the form body's, read as one.
        let form = std::str::from_utf8(body)
            .map_err(|_| unsupported("a search's form body must be UTF-8".into()))?
            .trim();
        let query = match (query, form) {
            (query, "") => query.map(str::to_owned),
            (None | Some(""), form) => Some(form.to_owned()),
            (Some(query), form) => Some(format!("{query}&{form}")),
        };
        return Ok(BundleEntry {
            method: method.clone(),
            path: rest.to_owned(),
            query,
            resource_patient: None,
        });
    }
    let resource: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        unsupported(format!(
            "the gateway reads FHIR JSON bodies only (application/fhir+json): {e}"
        ))
    })?;
    Ok(BundleEntry {
        method: method.clone(),
        path: rest.to_owned(),
        query: query.map(str::to_owned),
        resource_patient: body_patient(method, &resource)?,
    })
}

/// The patient a request's body names: the resource's, or for a `PATCH` the one the patch
/// sets (`fhir_patch`).
fn body_patient(method: &Method, body: &serde_json::Value) -> Result<Option<String>, Refusal> {
    if *method == Method::PATCH {
        super::fhir_patch::patched_patient(body)
    } else {
        resource_patient(body)
    }
}

/// `refusal`, its detail prefixed with the Bundle entry it is about.
pub(crate) fn at_entry(entry: usize, mut refusal: Refusal) -> Refusal {
    refusal.detail = format!("entry {entry}: {}", refusal.detail);
    refusal
}

/// The patient a resource is about: a `Patient`'s id, else its `subject` or `patient`
/// reference. A resource that has both must name the same patient in each: which one is
/// the resource's own element depends on its type (`Immunization.patient`,
/// `Observation.subject`), and a backend that reads the other — or ignores the one it does
/// not know — would file the resource under a patient the gateway never checked (tried:
/// `subject` p-001 with `patient` p-002 was created). A field without a literal reference
/// (an `identifier` only) reads as naming no one, so beside one that names a patient it
/// disagrees too.
///
/// Every other literal reference to a `Patient` in the resource (`Observation.performer`,
/// `focus`, `Patient.link.other`, contained resources included) must name that same patient:
/// a FHIR server files a resource in the compartment of each patient such a field names, so
/// `performer: Patient/p-2` on p-1's reading would put it in p-2's record (tried: created).
/// A resource whose `subject` and `patient` name no one is about the one patient its other
/// references name, if any.
fn resource_patient(resource: &serde_json::Value) -> Result<Option<String>, Refusal> {
    let own = own_patient(resource)?;
    let mut referred = None;
    let mut other = None;
    each_reference(resource, &mut |reference| {
        let Some(id) = referred_patient(reference) else {
            return;
        };
        match (own.as_deref(), referred) {
            (Some(own), _) if own != id => other = Some(id),
            (None, Some(first)) if first != id => other = Some(id),
            _ => referred = Some(id),
        }
    });
    if let Some(id) = other {
        return Err(Refusal::new(
            Reason::AccessSubjectMismatch,
            format!("the resource refers to another patient (`Patient/{id}`), whose record it would join"),
        ));
    }
    Ok(own.or(referred.map(str::to_owned)))
}

/// Call `found` with every `reference` string in `value`, however deep.
pub(super) fn each_reference<'a>(value: &'a serde_json::Value, found: &mut impl FnMut(&'a str)) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, field) in fields {
                match (key.as_str(), field) {
                    ("reference", serde_json::Value::String(reference)) => found(reference),
                    _ => each_reference(field, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| each_reference(v, found)),
        _ => {}
    }
}

/// The patient a literal reference points at: `Patient/p-1`, with a base URL or a version
/// (`Patient/p-1/_history/2`); `None` for another type, a contained (`#p`) or a Bundle-local
/// (`urn:uuid:…`) reference.
pub(super) fn referred_patient(reference: &str) -> Option<&str> {
    let at = reference.rfind("Patient/")?;
    if at != 0 && !reference[..at].ends_with('/') {
        return None;
    }
    let id = reference[at + "Patient/".len()..].split('/').next()?;
    (!id.is_empty()).then_some(id)
}

/// The patient a resource names as its own: a `Patient`'s id, else its `subject` or `patient`.
fn own_patient(resource: &serde_json::Value) -> Result<Option<String>, Refusal> {
    if resource["resourceType"] == "Patient" {
        return Ok(resource["id"].as_str().map(str::to_owned));
    }
    let named = |field: &str| {
        let value = resource.get(field)?;
        // A reference to a non-patient (a Group) names no patient: keep it visible as itself.
        Some(
            value["reference"]
                .as_str()
                .map(|reference| patient_of_reference(reference).unwrap_or(reference)),
        )
    };
    match (named("subject"), named("patient")) {
        (Some(subject), Some(patient)) if subject != patient => Err(Refusal::new(
            Reason::AccessSubjectMismatch,
            "the resource names its patient twice, differently (`subject` and `patient`); a backend may read either",
        )),
        (Some(one), _) | (None, Some(one)) => Ok(one.map(str::to_owned)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use letters::*;

    /// (resource type or every type, letters).
    type Needs = Vec<(Option<String>, u8)>;

    fn needs(method: Method, rest: &str, query: Option<&str>) -> Needs {
        derive(&method, rest, query)
            .unwrap_or_else(|r| panic!("{rest}: {}", r.detail))
            .needs
            .into_iter()
            .map(|n| (n.resource.map(|r| r.into_owned()), n.letters))
            .collect()
    }

    fn t(name: &str, letters: u8) -> (Option<String>, u8) {
        (Some(name.to_owned()), letters)
    }

    #[test]
    fn interactions_come_from_method_and_path() {
        let cases: &[(Method, &str, Option<&str>, Needs)] = &[
            (Method::GET, "/Observation", Some("patient=p-1"), vec![t("Observation", SEARCH)]),
            (Method::GET, "/Observation/o-1", None, vec![t("Observation", READ)]),
            (Method::GET, "/Observation/o-1/_history/2", None, vec![t("Observation", READ)]),
            (Method::GET, "/Observation/_history", None, vec![t("Observation", SEARCH)]),
            (Method::POST, "/Observation", None, vec![t("Observation", CREATE)]),
            (Method::POST, "/Observation/_search", None, vec![t("Observation", SEARCH)]),
            (Method::PUT, "/Observation/o-1", None, vec![t("Observation", UPDATE)]),
            (Method::PATCH, "/Observation/o-1", None, vec![t("Observation", UPDATE)]),
            (Method::PUT, "/Observation", Some("identifier=x"), vec![t("Observation", CREATE | UPDATE)]),
            (Method::DELETE, "/Observation/o-1", None, vec![t("Observation", DELETE)]),
            (Method::GET, "/Patient/p-1/Observation", None, vec![t("Observation", SEARCH)]),
            (Method::GET, "/Patient/p-1/$everything", None, vec![(None, READ | SEARCH)]),
            (Method::GET, "/metadata", None, vec![]),
            (
                Method::GET,
                "/Observation",
                Some("patient=p-1&_include=Observation:performer:Practitioner&_revinclude=Provenance:target"),
                vec![t("Observation", SEARCH), t("Practitioner", READ), t("Provenance", READ)],
            ),
            (
                Method::GET,
                "/Observation",
                Some("patient=p-1&_include=Observation:subject"),
                vec![t("Observation", SEARCH), (None, READ)],
            ),
            (
                Method::GET,
                "/Patient",
                Some("_has:Observation:patient:code=1234"),
                vec![t("Patient", SEARCH), t("Observation", SEARCH)],
            ),
        ];
        for (method, rest, query, expected) in cases {
            assert_eq!(
                &needs(method.clone(), rest, *query),
                expected,
                "{method} {rest} {query:?}"
            );
        }
    }

    #[test]
    fn the_patient_comes_from_the_path_or_the_search_parameters() {
        let patient = |method: Method, rest: &str, query: Option<&str>| {
            derive(&method, rest, query).map(|r| r.patient.map(|p| p.into_owned()))
        };
        let some = |p: &str| Ok(Some(p.to_owned()));
        assert_eq!(patient(Method::GET, "/Patient/p-1", None), some("p-1"));
        assert_eq!(
            patient(Method::GET, "/Patient/p-1/Observation", None),
            some("p-1")
        );
        assert_eq!(
            patient(Method::GET, "/Observation", Some("patient=p-1")),
            some("p-1")
        );
        assert_eq!(
            patient(
                Method::GET,
                "/Observation",
                Some("subject=Patient%2Fp-1&code=x")
            ),
            some("p-1")
        );
        assert_eq!(
            patient(
                Method::GET,
                "/Observation",
                Some("subject:Patient=https://h/fhir/Patient/p-1")
            ),
            some("p-1")
        );
        assert_eq!(
            patient(Method::GET, "/Patient", Some("_id=p-1")),
            some("p-1")
        );
        assert_eq!(
            patient(Method::GET, "/Observation", Some("_id=o-1")),
            Ok(None)
        );
        assert_eq!(patient(Method::GET, "/Observation/o-1", None), Ok(None));
        // Two patients, several at once, another type, or an unsupported modifier: refused.
        for (rest, query) in [
            ("/Observation", "patient=p-1&subject=p-2"),
            ("/Observation", "patient=p-1,p-2"),
            ("/Observation", "subject=Group/g-1"),
            ("/Observation", "patient:missing=true"),
            // The patient spelled for another parser too (`super::names_parameter_ambiguously`).
            ("/Observation", "patient=p-1&Patient=p-2"),
            ("/Observation", "subject=p-1&code=x;subject=p-2"),
            ("/Patient", "_id=p-1&%20_id=p-2"),
            ("/Patient/p-1/Observation", "patient=p-2"),
        ] {
            assert!(
                patient(Method::GET, rest, Some(query)).is_err(),
                "{rest}?{query}"
            );
        }
    }

    #[test]
    fn what_cannot_be_mapped_is_refused() {
        for (method, rest, query) in [
            (Method::GET, "", None),
            (Method::GET, "/Observation/$lastn", None),
            (Method::POST, "/Observation/o-1/$validate", None),
            (Method::GET, "/observation", None),
            (Method::GET, "/Patient/p-1/Observation/o-1/extra", None),
            (Method::GET, "/Observation", Some("_include=bad")),
            (Method::GET, "/Observation", Some("_has:lower:x:y=1")),
            (
                Method::GET,
                "/Observation",
                Some("patient=p-1&_query=current-high-risk"),
            ),
            (
                Method::POST,
                "/Observation/_search",
                Some("_query=all&patient=p-1"),
            ),
            (Method::OPTIONS, "/Observation", None),
        ] {
            let refused = derive(&method, rest, query).err();
            assert!(refused.is_some(), "{method} {rest} {query:?}");
        }
        assert!(derive(&Method::POST, "", None).unwrap_or_default().bundle);
    }

    #[test]
    fn bundles_are_read_entry_by_entry() {
        let body = serde_json::json!({
            "resourceType": "Bundle", "type": "transaction",
            "entry": [
                {"request": {"method": "POST", "url": "Observation"},
                 "resource": {"resourceType": "Observation", "subject": {"reference": "Patient/p-1"}}},
                {"request": {"method": "GET", "url": "MedicationStatement?patient=p-1"}},
                {"request": {"method": "PUT", "url": "Patient/p-1"},
                 "resource": {"resourceType": "Patient", "id": "p-1"}}
            ]
        });
        let entries = bundle_entries(body.to_string().as_bytes()).unwrap_or_default();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].resource_patient.as_deref(), Some("p-1"));
        assert_eq!(entries[1].query.as_deref(), Some("patient=p-1"));
        assert_eq!(entries[2].path, "/Patient/p-1");
        for bad in [
            serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": []}),
            serde_json::json!({"resourceType": "Observation"}),
            serde_json::json!({"resourceType": "Bundle", "type": "batch",
                "entry": [{"request": {"method": "GET", "url": "https://other/fhir/Patient/p-2"}}]}),
            serde_json::json!({"resourceType": "Bundle", "type": "batch",
                "entry": [{"request": {"method": "TRACE", "url": "Patient"}}]}),
            serde_json::json!({"resourceType": "Bundle", "type": "batch", "entry": [{}]}),
        ] {
            assert!(bundle_entries(bad.to_string().as_bytes()).is_err(), "{bad}");
        }
    }

    /// Any other field that refers to a patient must name the resource's own: a server files
    /// the resource in that patient's compartment too (R-AZ-1).
    #[test]
    fn a_resource_referring_to_another_patient_is_refused_r_az_1() {
        let read = |resource: serde_json::Value| {
            single_entry(
                &Method::POST,
                "/Observation",
                None,
                resource.to_string().as_bytes(),
            )
            .map(|e| e.resource_patient)
        };
        let p1 = serde_json::json!({"reference": "Patient/p-1"});
        for resource in [
            serde_json::json!({"resourceType": "Observation", "subject": p1,
                "performer": [{"reference": "Patient/p-2"}]}),
            serde_json::json!({"resourceType": "Observation", "subject": p1,
                "focus": [{"reference": "https://fhir.example.jp/r4/Patient/p-2"}]}),
            serde_json::json!({"resourceType": "Observation", "subject": p1,
                "hasMember": [{"reference": "Patient/p-2/_history/3"}]}),
            serde_json::json!({"resourceType": "Observation", "subject": p1,
                "contained": [{"resourceType": "Observation", "subject": {"reference": "Patient/p-2"}}]}),
            serde_json::json!({"resourceType": "Patient", "id": "p-1",
                "link": [{"other": {"reference": "Patient/p-2"}, "type": "seealso"}]}),
            // Naming no one as its own, it refers to two.
            serde_json::json!({"resourceType": "Appointment", "participant": [
                {"actor": {"reference": "Patient/p-1"}}, {"actor": {"reference": "Patient/p-2"}}]}),
        ] {
            let refusal = read(resource.clone()).expect_err("another patient");
            assert_eq!(refusal.reason, Reason::AccessSubjectMismatch, "{resource}");
            assert!(refusal.detail.contains("Patient/p-2"), "{}", refusal.detail);
        }
        for (resource, expected) in [
            // The own patient again, other types, local references: the resource's patient.
            (
                serde_json::json!({"resourceType": "Observation", "subject": p1,
                    "performer": [{"reference": "Patient/p-1"}, {"reference": "Practitioner/d-1"}],
                    "specimen": {"reference": "#s1"}, "derivedFrom": [{"reference": "urn:uuid:9"}],
                    "note": [{"text": "Patient/p-2 is my brother"}]}),
                Some("p-1"),
            ),
            (
                serde_json::json!({"resourceType": "Patient", "id": "p-1",
                    "generalPractitioner": [{"reference": "Practitioner/d-1"}]}),
                Some("p-1"),
            ),
            // Naming no one as its own, it is about the one patient it refers to.
            (
                serde_json::json!({"resourceType": "Appointment", "participant": [
                    {"actor": {"reference": "Patient/p-1"}}, {"actor": {"reference": "Practitioner/d-1"}}]}),
                Some("p-1"),
            ),
            (
                serde_json::json!({"resourceType": "Appointment", "participant": [
                    {"actor": {"reference": "Practitioner/d-1"}}]}),
                None,
            ),
        ] {
            assert_eq!(
                read(resource.clone()).unwrap().as_deref(),
                expected,
                "{resource}"
            );
        }
    }

    /// `subject` and `patient` both given must agree: a backend reads the one its resource
    /// type has (R-AZ-1).
    #[test]
    fn a_resource_naming_two_patients_is_refused() {
        let read = |resource: serde_json::Value| {
            single_entry(
                &Method::POST,
                "/Immunization",
                None,
                resource.to_string().as_bytes(),
            )
            .map(|e| e.resource_patient)
        };
        let p1 = serde_json::json!({"reference": "Patient/p-1"});
        let p2 = serde_json::json!({"reference": "Patient/p-2"});
        let by_id = serde_json::json!({"identifier": {"value": "p-2"}});
        for (subject, patient) in [(&p1, &p2), (&p2, &p1), (&by_id, &p1), (&p1, &by_id)] {
            let refusal = read(serde_json::json!({"resourceType": "Immunization",
                "subject": subject, "patient": patient}))
            .expect_err("two patients");
            assert_eq!(refusal.reason, Reason::AccessSubjectMismatch);
        }
        for (resource, expected) in [
            (
                serde_json::json!({"subject": p1, "patient": {"reference": "p-1"}}),
                Some("p-1"),
            ),
            (serde_json::json!({"patient": p1}), Some("p-1")),
            (serde_json::json!({"subject": p1}), Some("p-1")),
            (serde_json::json!({"subject": by_id}), None),
            (serde_json::json!({"note": [{"text": "x"}]}), None),
        ] {
            assert_eq!(
                read(resource.clone()).unwrap().as_deref(),
                expected,
                "{resource}"
            );
        }
        let bundle = serde_json::json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "POST", "url": "Immunization"},
             "resource": {"resourceType": "Immunization", "subject": p1, "patient": p2}}]});
        let refusal = bundle_entries(bundle.to_string().as_bytes()).expect_err("two patients");
        assert!(
            refusal.detail.starts_with("entry 0: "),
            "{}",
            refusal.detail
        );
    }
}
