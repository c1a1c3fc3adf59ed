//! Access (R-AZ-1, R-AZ-7): after identity, what the verified caller may do on the route — the
//! scopes it must hold (plain or SMART on FHIR, [`scope`]), the roles (any one of them), and
//! whose data it is: a route that names where the data subject is found (a path parameter, a
//! query parameter, or `self`) is served only when that subject is the caller's own (the
//! token's `patient` claim, else `fhirUser` `Patient/<id>`, else `sub`), and never for a
//! subject whose data use is stopped.
//!
//! A route that lists purposes (R-AZ-2) is served only when the request states one of them
//! (header `PHR-Purpose` by default), from the policy's catalogue, and, when the token lists
//! the purposes it was issued for, one of those too.
//!
//! A token issued to a registered recipient's application (its `azp` / `client_id` is one of
//! the recipient's `clients`) is a third party's: on a route that names its data subject it is
//! served only while the recipient's compliance confirmation holds (R-AZ-8), for a stated
//! purpose, and — checked by the pipeline against [`crate::consent`] — under the subject's live
//! provision consent (R-AZ-4). Any other token reaches only its own subject's data.

pub mod fhir;
pub mod fhir_patch;
pub mod scope;

use std::borrow::Cow;
use std::sync::Arc;

use crate::decision::{Reason, Refusal};
use crate::identity::Principal;
use scope::Scope;

/// Where a route finds the data subject of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectSource {
    /// The caller is the subject.
    Caller,
    /// A named path parameter, e.g. `id` in `/fhir/Patient/{id}`.
    Path(String),
    /// A query parameter, e.g. FHIR's `patient` (`patient=123` or `patient=Patient/123`).
    Query(String),
}

impl SubjectSource {
    /// Parse `self`, `path:NAME` or `query:NAME`.
    pub fn parse(text: &str) -> Option<SubjectSource> {
        match text.split_once(':') {
            None if text == "self" => Some(SubjectSource::Caller),
            Some(("path", name)) if !name.is_empty() => Some(SubjectSource::Path(name.to_owned())),
            Some(("query", name)) if !name.is_empty() => {
                Some(SubjectSource::Query(name.to_owned()))
            }
            _ => None,
        }
    }
}

/// A route's access requirements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteAccess {
    /// Every one must be covered by a scope the token grants.
    pub scopes: Vec<Scope>,
    /// The token must carry at least one (none: no role needed).
    pub roles: Vec<String>,
    /// Where the data subject is; `None`: the route serves no one subject's data.
    pub subject: Option<SubjectSource>,
    /// The purposes the route serves; a request must state one (none: no purpose asked).
    pub purposes: Vec<Arc<str>>,
    /// A FHIR route: scopes and the data subject are derived from each request ([`fhir`]).
    pub fhir: Option<fhir::FhirRoute>,
}

/// One purpose of the policy's catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purpose {
    /// Its id.
    pub id: Arc<str>,
    /// Japanese description.
    pub ja: String,
    /// English description.
    pub en: String,
}

/// A registered third party that may receive subjects' data under their provision consent
/// (R-AZ-4), while its compliance confirmation holds (R-AZ-8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// Its id.
    pub id: Arc<str>,
    /// Its name, as shown to subjects.
    pub name: String,
    /// The token client ids its applications sign in with.
    pub clients: Vec<String>,
    /// Its country (ISO 3166-1 alpha-2).
    pub country: Arc<str>,
    /// Whether that is not the service's own country: consents must then name it.
    pub abroad: bool,
    /// The day its compliance was last confirmed.
    pub confirmed_on: time::Date,
    /// The last day the confirmation holds (`confirmed_on + recheck_days`).
    pub confirmed_through: time::Date,
    /// Seconds since the epoch from which provision is refused (the day after
    /// `confirmed_through`, 00:00 UTC).
    pub expires_at: i64,
}

impl Recipient {
    /// Whether its confirmation has lapsed at `now` (seconds since the epoch).
    pub fn expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }
}

/// The policy's access settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessSettings {
    /// The header a request states its purpose in.
    pub purpose_header: http::HeaderName,
    /// The purpose catalogue.
    pub purposes: Vec<Purpose>,
    /// The registered recipients (R-AZ-4, R-AZ-8).
    pub recipients: Vec<Arc<Recipient>>,
    /// The service's own country.
    pub home_country: Arc<str>,
    /// Whether a subject stop also refuses the subject's own reads (R-AZ-7).
    pub stop_refuses_own_reads: bool,
}

impl Default for AccessSettings {
    fn default() -> Self {
        AccessSettings {
            purpose_header: http::HeaderName::from_static("phr-purpose"),
            purposes: Vec::new(),
            recipients: Vec::new(),
            home_country: Arc::from("JP"),
            stop_refuses_own_reads: true,
        }
    }
}

impl AccessSettings {
    /// The recipient whose application a token was issued to, if any.
    pub fn recipient_of(&self, principal: &Principal) -> Option<&Arc<Recipient>> {
        let client = principal.client_id.as_deref()?;
        self.recipients
            .iter()
            .find(|r| r.clients.iter().any(|c| c == client))
    }

    /// A recipient by id.
    pub fn recipient(&self, id: &str) -> Option<&Arc<Recipient>> {
        self.recipients.iter().find(|r| &*r.id == id)
    }
}

/// The purpose a request states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatedPurpose<'a> {
    /// No purpose header.
    None,
    /// One.
    One(&'a str),
    /// More than one, or not text: no one purpose.
    Unclear,
}

impl<'a> StatedPurpose<'a> {
    /// The purpose stated in `headers` under `name`.
    pub fn of(headers: &'a http::HeaderMap, name: &http::HeaderName) -> Self {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => StatedPurpose::None,
            (Some(v), None) => match v.to_str() {
                Ok(text) if !text.trim().is_empty() && !text.contains(',') => {
                    StatedPurpose::One(text.trim())
                }
                _ => StatedPurpose::Unclear,
            },
            _ => StatedPurpose::Unclear,
        }
    }
}

/// What the access step allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Granted<'r> {
    /// The request's data subject, when the route names one.
    pub subject: Option<Cow<'r, str>>,
    /// The purpose the request stated, when the route asks for one.
    pub purpose: Option<Arc<str>>,
    /// The registered recipient asking for the subject's data: the request is a provision,
    /// to be checked against the subject's consents and recorded before release.
    pub recipient: Option<Arc<Recipient>>,
    /// A FHIR batch or transaction, or a create or update: the body decides the subject
    /// (`pipeline::check_bundle`).
    pub bundle: bool,
    /// For a single create or update, the request as the one entry to check with its body.
    pub single: Option<fhir::BundleEntry>,
}

impl RouteAccess {
    /// Whether the route asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
            && self.roles.is_empty()
            && self.subject.is_none()
            && self.purposes.is_empty()
            && self.fhir.is_none()
    }
}

/// What the access step looks at in a request.
pub struct AccessRequest<'a> {
    /// The method.
    pub method: &'a http::Method,
    /// The path, without the query.
    pub path: &'a str,
    /// The route's path parameters.
    pub params: &'a [(&'a str, &'a str)],
    /// The query string.
    pub query: Option<&'a str>,
    /// The purpose the request states.
    pub purpose: StatedPurpose<'a>,
    /// The policy's access settings (purpose header, recipients).
    pub settings: &'a AccessSettings,
    /// Seconds since the epoch.
    pub now: i64,
}

/// The caller's own data subject id: `patient`, else `fhirUser` `Patient/<id>`, else `sub`.
pub fn own_subject(p: &Principal) -> &str {
    p.patient.as_deref().unwrap_or(&p.subject)
}

/// Check a route's access requirements for a verified caller. Returns the request's data
/// subject (for the subject-stop check) and its purpose (for the record).
pub fn check<'r>(
    access: &RouteAccess,
    principal: &Principal,
    request: &AccessRequest<'r>,
) -> Result<Granted<'r>, Refusal> {
    let missing: Vec<String> = access
        .scopes
        .iter()
        .filter(|wanted| !principal.granted_scopes.iter().any(|g| g.covers(wanted)))
        .map(display)
        .collect();
    if !missing.is_empty() {
        let mut refusal = Refusal::new(
            Reason::AccessScopeMissing,
            format!("the token lacks the scope(s): {}", missing.join(" ")),
        );
        refusal.challenge = Some(format!(
            "Bearer realm=\"phr-gateway\", error=\"insufficient_scope\", scope=\"{}\"",
            missing.join(" ")
        ));
        return Err(refusal);
    }
    if !access.roles.is_empty() && !access.roles.iter().any(|r| principal.roles.contains(r)) {
        return Err(Refusal::new(
            Reason::AccessRoleMissing,
            format!(
                "the route needs one of the roles: {}",
                access.roles.join(", ")
            ),
        ));
    }
    let purpose = check_purpose(access, principal, request)?;
    let recipient = request.settings.recipient_of(principal);
    let mismatch = |detail: &str| Err(Refusal::new(Reason::AccessSubjectMismatch, detail));
    if let Some(route) = &access.fhir {
        let rest = route.rest(request.path).ok_or_else(|| {
            Refusal::new(
                Reason::AccessFhirUnsupported,
                format!("the path is not under the route's FHIR base {}", route.base),
            )
        })?;
        let derived = fhir::derive(request.method, rest, request.query)?;
        if derived.bundle || derived.reads_body {
            // The scopes are checked now; the patient once the body is read.
            fhir_scopes(&derived, principal)?;
            let single = derived.reads_body.then(|| fhir::BundleEntry {
                method: request.method.clone(),
                path: rest.to_owned(),
                query: request.query.map(str::to_owned),
                resource_patient: None,
            });
            return Ok(Granted {
                subject: None,
                purpose,
                recipient: recipient.cloned(),
                bundle: true,
                single,
            });
        }
        let subject = fhir_subject(&derived, principal)?;
        if recipient.is_some() && subject.is_none() && !derived.needs.is_empty() {
            return mismatch("a recipient's request must name the patient whose data it reads");
        }
        return whose_data(subject, purpose, recipient, principal, request.now);
    }
    let subject: Option<Cow<'r, str>> = match (&access.subject, recipient) {
        (None, _) => None,
        (Some(SubjectSource::Caller), None) => {
            Some(Cow::Owned(own_subject(principal).to_owned()))
        }
        (Some(SubjectSource::Caller), Some(_)) => {
            return mismatch(
                "a recipient's application reaches a subject's data only on routes that name the subject",
            )
        }
        (Some(SubjectSource::Path(name)), _) => request
            .params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| Cow::Borrowed(*v)),
        (Some(SubjectSource::Query(name)), _) => {
            if request
                .query
                .is_some_and(|q| names_parameter_ambiguously(q, &[name]))
            {
                return mismatch(AMBIGUOUS_SUBJECT);
            }
            match query_subject(request.query, name) {
                Some(s) => Some(s),
                None => return mismatch("the request does not name whose data it is for"),
            }
        }
    };
    if access.subject.is_some() && subject.is_none() {
        return mismatch("the request does not name whose data it is for");
    }
    whose_data(subject, purpose, recipient, principal, request.now)
}

/// The data subject decided: the caller's own data, or a registered recipient's request for a
/// subject's data (R-AZ-4, R-AZ-8).
pub fn whose_data<'r>(
    subject: Option<Cow<'r, str>>,
    purpose: Option<Arc<str>>,
    recipient: Option<&Arc<Recipient>>,
    principal: &Principal,
    now: i64,
) -> Result<Granted<'r>, Refusal> {
    let mismatch = |detail: &str| Err(Refusal::new(Reason::AccessSubjectMismatch, detail));
    let Some(recipient) = recipient.filter(|_| subject.is_some()) else {
        // The caller's own data, or a route that serves no one subject's data.
        return match subject {
            Some(s) if s != own_subject(principal) => {
                // Never echo the requested subject: the caller learns nothing about others.
                mismatch("the token may only reach its own subject's data here")
            }
            subject => Ok(Granted {
                subject,
                purpose,
                recipient: None,
                bundle: false,
                single: None,
            }),
        };
    };
    // A registered recipient's application: a third party, whatever subject claims its token
    // carries (an EHR launch may put a `patient` in it). R-AZ-4, R-AZ-8.
    if purpose.is_none() {
        return Err(Refusal::new(
            Reason::AccessPurposeNotAllowed,
            "a recipient must state its purpose of use, and this route serves none",
        ));
    }
    if recipient.expired(now) {
        return Err(Refusal::new(
            Reason::AccessRecipientUnconfirmed,
            format!(
                "the compliance confirmation of the recipient `{}` held through {}; no data is provided until it is confirmed again",
                recipient.id, recipient.confirmed_through
            ),
        ));
    }
    Ok(Granted {
        subject,
        purpose,
        recipient: Some(Arc::clone(recipient)),
        bundle: false,
        single: None,
    })
}

/// The scopes a derived FHIR request needs, and its data subject (SMART on FHIR v2): every
/// [`fhir::Need`] must be covered by a granted scope; when only `patient/` scopes cover it, the
/// request is bound to the token's patient ([`own_subject`]) — the patient it names must be that one, and a
/// search or create that names none is refused. Returns the request's data subject.
pub fn fhir_subject<'r>(
    derived: &fhir::FhirRequest<'r>,
    principal: &Principal,
) -> Result<Option<Cow<'r, str>>, Refusal> {
    let bound = fhir_scopes(derived, principal)?;
    if !bound {
        return Ok(derived.patient.clone());
    }
    let mismatch = |detail: &str| Err(Refusal::new(Reason::AccessSubjectMismatch, detail));
    let own = own_subject(principal);
    match &derived.patient {
        Some(p) if p == own => Ok(Some(p.clone())),
        Some(_) => mismatch("the token's patient/ scopes reach only its own patient's data"),
        None if derived.type_level => mismatch(
            "with patient/ scopes a search, create or conditional change must name the patient (patient=, subject=, the Patient compartment, or the resource's subject)",
        ),
        None => Ok(Some(Cow::Owned(own.to_owned()))),
    }
}

/// Whether the token's scopes cover every need of a derived FHIR request; `Ok(true)` when only
/// `patient/` scopes cover some need (the request is bound to the token's patient).
fn fhir_scopes(derived: &fhir::FhirRequest<'_>, principal: &Principal) -> Result<bool, Refusal> {
    let mut bound = false;
    let mut missing = Vec::new();
    for need in &derived.needs {
        let covering = principal.granted_scopes.iter().filter_map(|g| match g {
            Scope::Smart(g)
                if (g.resource.is_none() || g.resource.as_deref() == need.resource.as_deref())
                    && g.letters & need.letters == need.letters =>
            {
                Some(g.context)
            }
            _ => None,
        });
        let (mut any, mut unbound) = (false, false);
        for context in covering {
            any = true;
            unbound |= context != scope::Context::Patient;
        }
        if !any {
            missing.push(display(&Scope::Smart(scope::SmartScope {
                context: scope::Context::Patient,
                resource: need.resource.as_deref().map(str::to_owned),
                letters: need.letters,
            })));
        }
        bound |= any && !unbound;
    }
    if !missing.is_empty() {
        let mut refusal = Refusal::new(
            Reason::AccessScopeMissing,
            format!(
                "the token lacks a scope for: {} (or the same on user/)",
                missing.join(" ")
            ),
        );
        refusal.challenge = Some(format!(
            "Bearer realm=\"phr-gateway\", error=\"insufficient_scope\", scope=\"{}\"",
            missing.join(" ")
        ));
        return Err(refusal);
    }
    Ok(bound)
}

/// The purpose check (R-AZ-2): one stated purpose, served by the route, and, when the token
/// lists its purposes, issued for it.
fn check_purpose(
    access: &RouteAccess,
    principal: &Principal,
    request: &AccessRequest<'_>,
) -> Result<Option<Arc<str>>, Refusal> {
    if access.purposes.is_empty() {
        return Ok(None);
    }
    let served = || {
        access
            .purposes
            .iter()
            .map(|p| &**p)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let refuse = |detail: String| Err(Refusal::new(Reason::AccessPurposeNotAllowed, detail));
    let stated = match request.purpose {
        StatedPurpose::One(p) => p,
        StatedPurpose::None => {
            return refuse(format!(
                "state the purpose of use in the {} header: one of {}",
                request.settings.purpose_header,
                served()
            ))
        }
        StatedPurpose::Unclear => {
            return refuse(format!(
                "state exactly one purpose of use in the {} header",
                request.settings.purpose_header
            ))
        }
    };
    let Some(purpose) = access.purposes.iter().find(|p| &***p == stated) else {
        return refuse(format!(
            "this route does not serve the purpose `{stated}`; it serves: {}",
            served()
        ));
    };
    if let Some(issued) = &principal.purposes {
        if !issued.iter().any(|p| p == stated) {
            return refuse(format!(
                "the token was not issued for the purpose `{stated}`"
            ));
        }
    }
    Ok(Some(Arc::clone(purpose)))
}

fn display(scope: &Scope) -> String {
    match scope {
        Scope::Plain(s) => s.clone(),
        Scope::Smart(s) => {
            let context = match s.context {
                scope::Context::Patient => "patient",
                scope::Context::User => "user",
                scope::Context::System => "system",
            };
            let letters: String = ['c', 'r', 'u', 'd', 's']
                .iter()
                .zip([1u8, 2, 4, 8, 16])
                .filter(|(_, bit)| s.letters & bit != 0)
                .map(|(c, _)| *c)
                .collect();
            format!(
                "{context}/{}.{letters}",
                s.resource.as_deref().unwrap_or("*")
            )
        }
    }
}

/// The refusal's detail for [`names_parameter_ambiguously`].
pub(crate) const AMBIGUOUS_SUBJECT: &str =
    "the query spells the subject's parameter in a form some backends read as it (other case, blanks, `[]`, or after a `;`); send it once, exactly";

/// Whether `query` spells one of `names` in a way some backend reads as that parameter while
/// the gateway, which reads only the exact name between `&`s, does not (HTTP parameter
/// pollution): another letter case (ASP.NET's query collection ignores case), blanks, `+` or
/// control characters around the name, `[…]` after it (PHP reads ` patient` and `patient[]`
/// as `patient`, and keeps the last), or a pair after a `;` (a separator to older Python, Go
/// and Java parsers). A backend that took that pair's value would serve a subject the gateway
/// never checked, so a route that finds its subject in the query refuses such a request
/// (R-AZ-1). A FHIR modifier (`patient:Patient`) does not change the name; `;` encoded as
/// `%3B`, as form encoders write it, is no separator.
pub(crate) fn names_parameter_ambiguously(query: &str, names: &[&str]) -> bool {
    any_name_read_loosely(query, |name, loose, after_semicolon| {
        names
            .iter()
            .any(|wanted| loose.eq_ignore_ascii_case(wanted))
            && (after_semicolon || !names.contains(&name))
    })
}

/// Whether `query` (or a form body) names `wanted` in any spelling a backend's parser reads
/// as it ([`names_parameter_ambiguously`]), the exact one included.
pub(crate) fn names_parameter_loosely(query: &str, wanted: &str) -> bool {
    any_name_read_loosely(query, |_, loose, _| loose.eq_ignore_ascii_case(wanted))
}

/// Whether `test` holds for a key of `query`, given the key's name as decoded (without a
/// FHIR modifier), its loosest reading (blanks, `+` and `[…]` cut; the caller folds case)
/// and whether it follows a `;` within an `&`-separated pair.
fn any_name_read_loosely(query: &str, test: impl Fn(&str, &str, bool) -> bool) -> bool {
    let blank = |c: char| c.is_whitespace() || c.is_control() || c == '+';
    query.split('&').any(|pair| {
        pair.split(';').enumerate().any(|(at, part)| {
            let key = part.split_once('=').map_or(part, |(key, _)| key);
            let key = if key.contains('%') {
                percent_encoding::percent_decode_str(key).decode_utf8_lossy()
            } else {
                Cow::Borrowed(key)
            };
            let name = key.split_once(':').map_or(&*key, |(name, _)| name);
            let loose = name.split_once('[').map_or(name, |(name, _)| name);
            test(name, loose.trim_matches(blank), at > 0)
        })
    })
}

/// The subject a query parameter names: `name=123` or `name=Patient/123`; a parameter given
/// twice with different values names no one subject (refused).
fn query_subject<'q>(query: Option<&'q str>, name: &str) -> Option<Cow<'q, str>> {
    let mut found: Option<Cow<'q, str>> = None;
    for pair in query?.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_encoding::percent_decode_str(key)
            .decode_utf8()
            .ok()?
            != name
        {
            continue;
        }
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .ok()?;
        let value = match value {
            Cow::Borrowed(v) => Cow::Borrowed(v.strip_prefix("Patient/").unwrap_or(v)),
            Cow::Owned(v) => Cow::Owned(v.strip_prefix("Patient/").unwrap_or(&v).to_owned()),
        };
        match &found {
            Some(previous) if *previous != value => return None,
            _ => found = Some(value),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_sources_parse() {
        assert_eq!(SubjectSource::parse("self"), Some(SubjectSource::Caller));
        assert_eq!(
            SubjectSource::parse("path:id"),
            Some(SubjectSource::Path("id".into()))
        );
        assert_eq!(
            SubjectSource::parse("query:patient"),
            Some(SubjectSource::Query("patient".into()))
        );
        for bad in ["path:", "header:x", "me", ""] {
            assert_eq!(SubjectSource::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_subjects_are_read_strictly() {
        assert_eq!(
            query_subject(Some("patient=p-1"), "patient").as_deref(),
            Some("p-1")
        );
        assert_eq!(
            query_subject(Some("a=1&patient=Patient%2Fp-1"), "patient").as_deref(),
            Some("p-1")
        );
        assert_eq!(
            query_subject(Some("patient=p-1&patient=p-1"), "patient").as_deref(),
            Some("p-1")
        );
        // Two different subjects in one request: neither.
        assert_eq!(
            query_subject(Some("patient=p-1&patient=p-2"), "patient"),
            None
        );
        assert_eq!(query_subject(Some("subject=p-1"), "patient"), None);
        assert_eq!(query_subject(None, "patient"), None);
    }

    #[test]
    fn a_subject_parameter_spelled_for_another_parser_is_ambiguous() {
        let patient = &["patient"][..];
        for query in [
            "patient=p-1&PATIENT=p-2",
            "patient=p-1&Patient=p-2",
            "patient=p-1&%20patient=p-2",
            "patient=p-1&+patient=p-2",
            "patient=p-1&patient%20=p-2",
            "patient=p-1&patient%09=p-2",
            "patient=p-1&patient[]=p-2",
            "patient=p-1&patient%5B0%5D=p-2",
            "patient=p-1&x=1;patient=p-2",
            "x;patient=p-2&patient=p-1",
            "patient=p-1;patient=p-2",
            "PATIENT:Patient=p-2",
        ] {
            assert!(names_parameter_ambiguously(query, patient), "{query}");
        }
        for query in [
            "patient=p-1",
            "patient=p-1&patient=p-1",
            "patient:Patient=p-1",
            "patient=p-1&code=a%3Bb",
            "patient=p-1&note=a;b",
            "patient=p-1&patients=2&xpatient=3&patient.name=x&patient_id=4",
            "",
        ] {
            assert!(!names_parameter_ambiguously(query, patient), "{query}");
        }
        // Every name asked for counts; others do not.
        assert!(names_parameter_ambiguously(
            "patient=p-1&Subject=p-2",
            &["patient", "subject"]
        ));
        assert!(!names_parameter_ambiguously(
            "patient=p-1&Subject=p-2",
            patient
        ));
    }

    /// What `identity::check_token_only_in_header` asks (RFC 6750's `access_token`): every
    /// spelling, the exact one too.
    #[test]
    fn a_parameter_is_named_loosely_in_every_spelling() {
        for query in [
            "access_token=t",
            "a=1&access_token",
            "Access_Token=t",
            "%20access_token=t",
            "access_token%5B%5D=t",
            "a=1;access_token=t",
        ] {
            assert!(names_parameter_loosely(query, "access_token"), "{query}");
        }
        for query in [
            "token=t",
            "accesstoken=t",
            "access_token_hint=t",
            "a=access_token",
            "note=access_token%3Dt",
            "",
        ] {
            assert!(!names_parameter_loosely(query, "access_token"), "{query}");
        }
    }
}
