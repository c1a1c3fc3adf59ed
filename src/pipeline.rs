//! The decision pipeline: the request steps in their fixed order, as pure functions of the
//! request and the policy snapshot. The proxy and `phr-gateway explain` both call
//! [`evaluate`], so a decision can always be explained without replaying the request.
//!
//! Order: protocol framing → network (R-NET-1) → mode (emergency stop, read-only) → per-client
//! rate limit → the gateway's own endpoints → route (default deny) → the route's networks →
//! input inspection of the head (R-WAF-1) → identity → access: scopes, roles, whose data
//! (R-AZ-1) → subject stop of the caller and of the data subject (R-AZ-7) → per-subject and
//! per-route rate limits. The per-client limit and inspection sit before identity so that a
//! flood or a scanner is refused before any signature is checked. A body (a FHIR Bundle, an
//! inspected upload) is checked once read, by the proxy or from `explain`'s line: [`check_body`].

use http::{HeaderMap, Method};

use crate::controls::Controls;
use crate::decision::{Decision, Refusal};
use crate::limits::RateLimits;
use crate::policy::Snapshot;
use crate::route::Route;
use crate::{access, identity, net, protocol};

/// What the steps keep between requests. `explain` runs without any of it: no sessions, no
/// stops, and no rate limit is charged.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveState<'a> {
    /// Sessions, failed attempts, and the client's address (from [`net::NetworkPlan`]).
    pub identity: identity::IdentityState<'a>,
    /// Mode and subject stops.
    pub controls: Option<&'a Controls>,
    /// The snapshot's rate limiters, when requests are to be charged.
    pub rate_limits: Option<&'a RateLimits>,
    /// The consent ledger.
    pub consents: Option<&'a crate::consent::ConsentLedger>,
}

/// What the steps may look at. Borrowed from pingora's request header in the proxy, built
/// from a JSON line in `explain`.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path, without the query string.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The target's authority: HTTP/2's `:authority`, or an absolute-form target's.
    pub authority: Option<&'a str>,
    /// What the raw HTTP/1 head showed that the parsed headers no longer do.
    pub raw_head: protocol::RawHead,
}

/// The gateway's own endpoints under `/.phr/`: answered by the gateway, never forwarded. They
/// sit after the framing checks and before routing, so every request passes the same first
/// step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayEndpoint {
    /// `POST /.phr/session/logout`: end the caller's own session (R-AUTH-3).
    SessionLogout,
    /// `GET` / `POST /.phr/consents`: the caller's consents and history, or a new consent
    /// (R-AZ-3, R-AZ-5).
    Consents,
    /// `POST /.phr/consents/{id}/withdraw` (R-AZ-6).
    ConsentWithdraw,
    /// `GET /.phr/provisions`: the records of the caller's data provided to recipients
    /// (R-LOG-3).
    Provisions,
}

impl GatewayEndpoint {
    /// Every endpoint.
    pub const ALL: [GatewayEndpoint; 4] = [
        GatewayEndpoint::SessionLogout,
        GatewayEndpoint::Consents,
        GatewayEndpoint::ConsentWithdraw,
        GatewayEndpoint::Provisions,
    ];

    /// Its path (matched exactly, `{id}` one segment of letters, digits and `-`: no
    /// dot-segment or encoding variant reaches it).
    pub const fn path(self) -> &'static str {
        match self {
            GatewayEndpoint::SessionLogout => "/.phr/session/logout",
            GatewayEndpoint::Consents => "/.phr/consents",
            GatewayEndpoint::ConsentWithdraw => "/.phr/consents/{id}/withdraw",
            GatewayEndpoint::Provisions => "/.phr/provisions",
        }
    }

    /// Its name in `explain` output.
    pub const fn name(self) -> &'static str {
        match self {
            GatewayEndpoint::SessionLogout => "session-logout",
            GatewayEndpoint::Consents => "consents",
            GatewayEndpoint::ConsentWithdraw => "consent-withdraw",
            GatewayEndpoint::Provisions => "provisions",
        }
    }

    /// Whether it only writes the state log, or reads (read-only mode lets it through).
    pub const fn writes_state_only(self) -> bool {
        true
    }

    fn find(path: &str) -> Option<Self> {
        if let Some(id) = path
            .strip_prefix("/.phr/consents/")
            .and_then(|rest| rest.strip_suffix("/withdraw"))
        {
            return consent_id_is_plain(id).then_some(GatewayEndpoint::ConsentWithdraw);
        }
        Self::ALL.into_iter().find(|e| e.path() == path)
    }
}

/// A consent id in a path: a UUID's letters, digits and hyphens.
pub fn consent_id_is_plain(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The pipeline's answer.
#[derive(Debug)]
pub struct Evaluation<'s> {
    /// One of the gateway's own endpoints, when the path names one.
    pub endpoint: Option<GatewayEndpoint>,
    /// The matched route, when routing got that far.
    pub route: Option<&'s Route>,
    /// Its index in the snapshot's route table.
    pub route_index: Option<usize>,
    /// The verified caller, for routes that need one.
    pub principal: Option<std::sync::Arc<identity::Principal>>,
    /// The purpose of use the request stated and the route accepted (R-AZ-2).
    pub purpose: Option<std::sync::Arc<str>>,
    /// A release of the data subject's data to a registered recipient, allowed under the
    /// subject's provision consent: the proxy records it before the response leaves (R-LOG-3).
    pub provision: Option<crate::consent::Provision>,
    /// A FHIR batch or transaction allowed so far: the proxy reads its body and finishes the
    /// check with [`check_bundle`].
    pub bundle: Option<PendingBundle>,
    /// What input inspection found in the head (R-WAF-1): the refusal's cause in `block`
    /// mode, the record's rule ids in `detect` mode.
    pub findings: Vec<crate::inspect::Finding>,
    /// Whether the route inspects bodies: when the request has one (which only the connection
    /// knows: an HTTP/2 body needs no length), the proxy reads it whole and inspects it.
    pub inspect_body: bool,
    /// Allow, or the refusal.
    pub decision: Decision,
}

/// Run every request step at `now` (seconds since the epoch); the first refusal wins.
pub fn evaluate<'s>(
    request: &RequestView<'_>,
    policy: &'s Snapshot,
    state: LiveState<'_>,
    now: i64,
) -> Evaluation<'s> {
    let refuse = |found: Option<(usize, &'s Route)>, refusal| Evaluation {
        endpoint: None,
        route: found.map(|f| f.1),
        route_index: found.map(|f| f.0),
        principal: None,
        purpose: None,
        provision: None,
        bundle: None,
        findings: Vec::new(),
        inspect_body: false,
        decision: Decision::Refuse(refusal),
    };
    if let Err(refusal) = protocol::check_no_tunnel(request.method)
        .and_then(|()| protocol::check_framing(request.headers, request.raw_head))
        .and_then(|()| protocol::check_body_allowed(request.method, request.headers))
        .and_then(|()| protocol::check_body_declared(request.headers))
        .and_then(|()| protocol::check_host(request.headers, request.raw_head, request.authority))
        .and_then(|named| protocol::check_host_served(named, &policy.listeners.hosts))
    {
        return refuse(None, refusal);
    }
    if let Err(refusal) = protocol::check_size(
        request.path,
        request.query,
        request.headers,
        &policy.limits.request,
    ) {
        return refuse(None, refusal);
    }
    let client = state.identity.client;
    if let Err(refusal) = policy.network.check(client) {
        return refuse(None, refusal);
    }
    let endpoint = GatewayEndpoint::find(request.path);
    if let Some(controls) = state.controls {
        // The gateway's endpoints only write the state log: read-only mode lets them through.
        let writes_state_only = endpoint.is_some_and(GatewayEndpoint::writes_state_only);
        if let Err(refusal) = controls.check_mode(request.method, writes_state_only) {
            return refuse(None, refusal);
        }
    }
    if let (Some(limits), Some(client)) = (state.rate_limits, client) {
        if let Err(refusal) = limits.check_client(client) {
            return refuse(None, refusal);
        }
    }
    if let Some(endpoint) = endpoint {
        // The endpoint checks its own method and token: what it needs differs from a route's.
        return Evaluation {
            endpoint: Some(endpoint),
            route: None,
            route_index: None,
            principal: None,
            purpose: None,
            provision: None,
            bundle: None,
            findings: Vec::new(),
            inspect_body: false,
            decision: Decision::Allow,
        };
    }
    let found = match policy.routes.route(request.method, request.path) {
        Ok(found) => found,
        Err(refusal) => return refuse(None, refusal),
    };
    let (index, route) = (found.index, found.route);
    if let Err(refusal) = net::check_route(&route.allow_from, client) {
        return refuse(Some((index, route)), refusal);
    }
    if let Some(Err(refusal)) = request.query.map(identity::check_token_only_in_header) {
        return refuse(Some((index, route)), refusal);
    }
    // Input inspection of the head, before any signature is checked (R-WAF-1).
    let mut findings = Vec::new();
    if route.inspect.is_on() {
        findings = crate::inspect::inspect_on(
            &crate::inspect::Target {
                method: request.method,
                path: request.path,
                query: request.query,
                headers: request.headers,
                authority: request.authority,
                body: None,
            },
            &route.inspect,
        );
        if let Some(first) = route.inspect.refusing(&findings) {
            let mut evaluation = refuse(Some((index, route)), crate::inspect::refusal(first));
            evaluation.findings = findings;
            return evaluation;
        }
    }
    let principal = match identity::identify(
        request.headers,
        route,
        &policy.identity,
        state.identity,
        now,
    ) {
        Ok(principal) => principal,
        Err(refusal) => return refuse(Some((index, route)), refusal),
    };
    let mut outcome = AccessOutcome {
        purpose: None,
        provision: None,
        bundle: None,
    };
    if let Some(p) = &principal {
        match check_access(request, policy, state, route, &found.params, p, now) {
            Ok(checked) => outcome = checked,
            Err(refusal) => return refuse(Some((index, route)), refusal),
        }
    }
    if let Some(limits) = state.rate_limits {
        let subject = principal.as_ref().map(|p| &p.rate_key);
        if let Err(refusal) = limits.check_caller(subject, index) {
            return refuse(Some((index, route)), refusal);
        }
    }
    Evaluation {
        endpoint: None,
        route: Some(route),
        route_index: Some(index),
        principal,
        purpose: outcome.purpose,
        provision: outcome.provision,
        bundle: outcome.bundle,
        findings,
        inspect_body: route.inspect.is_on(),
        decision: Decision::Allow,
    }
}

/// The access steps for a verified caller: scopes, roles, purpose and whose data (R-AZ-1,
/// R-AZ-2), subject stops (R-AZ-7), acquisition consent (R-AZ-3) and, for a registered
/// recipient, provision consent (R-AZ-4). Returns what the evaluation carries on.
fn check_access(
    request: &RequestView<'_>,
    policy: &Snapshot,
    state: LiveState<'_>,
    route: &Route,
    params: &matchit::Params<'_, '_>,
    p: &identity::Principal,
    now: i64,
) -> Result<AccessOutcome, Refusal> {
    // Path parameters are collected only for a route that finds its subject there.
    let params: Vec<(&str, &str)> = match &route.access.subject {
        Some(access::SubjectSource::Path(_)) => params.iter().collect(),
        _ => Vec::new(),
    };
    let settings = &policy.access;
    let access_request = access::AccessRequest {
        method: request.method,
        path: request.path,
        params: &params,
        query: request.query,
        purpose: access::StatedPurpose::of(request.headers, &settings.purpose_header),
        settings,
        now,
    };
    let granted = access::check(&route.access, p, &access_request)?;
    if granted.bundle {
        // The entries decide; the proxy reads the body and calls [`check_bundle`].
        return Ok(AccessOutcome {
            purpose: granted.purpose,
            provision: None,
            bundle: Some(PendingBundle {
                recipient: granted.recipient,
                single: granted.single,
            }),
        });
    }
    let ops = Operations::of(request.method);
    let provision = check_data(state, policy, route, p, &granted, ops)?;
    Ok(AccessOutcome {
        purpose: granted.purpose,
        provision,
        bundle: None,
    })
}

/// What the access steps hand on to the proxy.
struct AccessOutcome {
    purpose: Option<std::sync::Arc<str>>,
    provision: Option<crate::consent::Provision>,
    bundle: Option<PendingBundle>,
}

/// A FHIR batch or transaction, or a create or update, allowed so far: its body decides the
/// rest.
#[derive(Clone, Debug)]
pub struct PendingBundle {
    /// The registered recipient asking, if it is one.
    pub recipient: Option<std::sync::Arc<crate::access::Recipient>>,
    /// For a create or update, the request as the one entry (its body is the resource).
    pub single: Option<crate::access::fhir::BundleEntry>,
}

/// What a request (or a Bundle's entries together) does with the subject's data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Operations {
    /// Reads or searches.
    pub reads: bool,
    /// Creates or updates: data taken in.
    pub writes: bool,
    /// Deletes.
    pub deletes: bool,
}

impl Operations {
    /// What one method does.
    pub fn of(method: &Method) -> Self {
        match *method {
            Method::POST | Method::PUT | Method::PATCH => Operations {
                writes: true,
                ..Default::default()
            },
            Method::DELETE => Operations {
                deletes: true,
                ..Default::default()
            },
            _ => Operations {
                reads: true,
                ..Default::default()
            },
        }
    }

    /// What one FHIR interaction does: as its method, except that a search by POST reads.
    fn of_fhir(method: &Method, rest: &str) -> Self {
        if crate::access::fhir::is_search_by_post(method, rest) {
            return Operations::of(&Method::GET);
        }
        Operations::of(method)
    }

    fn and(self, other: Operations) -> Self {
        Operations {
            reads: self.reads || other.reads,
            writes: self.writes || other.writes,
            deletes: self.deletes || other.deletes,
        }
    }
}

/// The checks on the data subject once it is known: subject stops (R-AZ-7), acquisition
/// consent for data taken in (R-AZ-3), and for a recipient provision consent for data read
/// (R-AZ-4). Returns the exchange with the recipient to record (R-LOG-3).
fn check_data(
    state: LiveState<'_>,
    policy: &Snapshot,
    route: &Route,
    p: &identity::Principal,
    granted: &access::Granted<'_>,
    ops: Operations,
) -> Result<Option<crate::consent::Provision>, Refusal> {
    let data_subject = granted.subject.as_deref();
    let (purpose, recipient) = (granted.purpose.as_ref(), granted.recipient.as_ref());
    if let Some(controls) = state.controls {
        // A stopped subject is refused as the caller and as the data asked for (R-AZ-7),
        // unless the policy lets subjects still read their own data.
        let own_read = !policy.access.stop_refuses_own_reads
            && recipient.is_none()
            && ops == Operations::of(&Method::GET);
        if !own_read {
            controls.check_subject(&p.subject)?;
            if let Some(s) = data_subject {
                controls.check_subject(s)?;
            }
        }
    }
    let Some(ledger) = state.consents else {
        return Ok(None);
    };
    // Health data sent in needs the data subject's acquisition consent (R-AZ-3).
    let subject = data_subject.unwrap_or_else(|| access::own_subject(p));
    if ops.writes && route.category.is_health() {
        ledger.check_acquisition(subject, route.category, purpose.map(|p| &**p))?;
    }
    let (Some(recipient), Some(purpose)) = (recipient, purpose) else {
        return Ok(None);
    };
    use crate::consent::Direction;
    if ops.deletes {
        return Err(Refusal::new(
            crate::decision::Reason::AccessSubjectMismatch,
            "a recipient may read or send in a subject's data, never delete it",
        ));
    }
    let provision = crate::consent::Provision {
        // Data sent in by a recipient is a receipt: the acquisition consent checked above
        // covers it, and it is recorded like a provision (R-LOG-3).
        direction: if ops.reads {
            Direction::Provided
        } else {
            Direction::Received
        },
        recipient: std::sync::Arc::clone(recipient),
        subject: subject.to_owned(),
        category: route.category,
        purpose: std::sync::Arc::clone(purpose),
    };
    if ops.reads {
        ledger.check_provision(&provision)?;
    }
    Ok(Some(provision))
}

/// The second half of a FHIR batch, transaction, create or update's access check, once its
/// body is read:
/// every entry is derived and checked as a request of its own would be (scopes, patient
/// binding), every entry must concern the same patient, and that patient's stops and consents
/// are checked for what the entries do together. Returns the exchange to record.
pub fn check_bundle(
    body: &[u8],
    policy: &Snapshot,
    state: LiveState<'_>,
    route: &Route,
    p: &identity::Principal,
    purpose: Option<&std::sync::Arc<str>>,
    pending: &PendingBundle,
) -> Result<Option<crate::consent::Provision>, Refusal> {
    use crate::access::fhir;
    let entries = match &pending.single {
        None => fhir::bundle_entries(body)?,
        Some(entry) => vec![fhir::single_entry(
            &entry.method,
            &entry.path,
            entry.query.as_deref(),
            body,
        )?],
    };
    let mut subject: Option<String> = None;
    let mut ops = Operations::default();
    let mut same = |found: Option<&str>| -> Result<(), Refusal> {
        match (found, &subject) {
            (Some(f), Some(s)) if f != s => Err(Refusal::new(
                crate::decision::Reason::AccessSubjectMismatch,
                "every entry of a Bundle must concern the same patient",
            )),
            (Some(f), None) => {
                subject = Some(f.to_owned());
                Ok(())
            }
            _ => Ok(()),
        }
    };
    for (i, entry) in entries.iter().enumerate() {
        let at = |r: Refusal| fhir::at_entry(i, r);
        let mut derived =
            fhir::derive(&entry.method, &entry.path, entry.query.as_deref()).map_err(at)?;
        if derived.patient.is_none() {
            // A create names its patient in the resource.
            derived.patient = entry
                .resource_patient
                .as_deref()
                .map(std::borrow::Cow::Borrowed);
        }
        if derived.bundle {
            return Err(at(Refusal::new(
                crate::decision::Reason::AccessFhirUnsupported,
                "a Bundle inside a Bundle",
            )));
        }
        let entry_subject = access::fhir_subject(&derived, p).map_err(at)?;
        same(entry_subject.as_deref()).map_err(at)?;
        same(entry.resource_patient.as_deref()).map_err(at)?;
        if pending.recipient.is_some() && entry_subject.is_none() && !derived.needs.is_empty() {
            return Err(at(Refusal::new(
                crate::decision::Reason::AccessSubjectMismatch,
                "a recipient's request must name the patient whose data it reads",
            )));
        }
        ops = ops.and(Operations::of_fhir(&entry.method, &entry.path));
    }
    let granted = access::whose_data(
        subject.as_deref().map(std::borrow::Cow::Borrowed),
        purpose.cloned(),
        pending.recipient.as_ref(),
        p,
        identity::unix_now(),
    )?;
    check_data(state, policy, route, p, &granted, ops)
}

/// What the checks of a whole body found: the proxy forwards `rewritten` when there is one
/// and records the rest; `explain` prints it.
#[derive(Debug, Default)]
pub struct BodyOutcome {
    /// Input inspection's findings the route keeps (R-WAF-1), on refusal too.
    pub findings: Vec<crate::inspect::Finding>,
    /// What was changed: `neutralised:note.text`, `disarmed:upload:pdf:JavaScript`.
    pub changes: Vec<String>,
    /// The body to forward instead of the client's (neutralised fields, disarmed files).
    pub rewritten: Option<Vec<u8>>,
    /// The release or receipt the Bundle's entries make (R-LOG-3).
    pub provision: Option<crate::consent::Provision>,
    /// Why the request is refused, when it is.
    pub refusal: Option<Refusal>,
}

/// The request's body step, once the body is read whole (the proxy reads it; `explain` has
/// it in the line): the route's bound on its size, the JSON depth, input inspection, file
/// disarm and neutralising (R-WAF-1/2/4), then a pending FHIR Bundle, create or update entry
/// by entry (R-AZ-1, R-AZ-4) for the `principal` the head was decided for.
#[allow(clippy::too_many_arguments)]
pub fn check_body(
    body: &[u8],
    headers: &HeaderMap,
    policy: &Snapshot,
    state: LiveState<'_>,
    route: &Route,
    principal: Option<&identity::Principal>,
    purpose: Option<&std::sync::Arc<str>>,
    pending: Option<&PendingBundle>,
) -> BodyOutcome {
    let mut outcome = BodyOutcome::default();
    let max = policy.limits.request.body_bytes;
    if body.len() > max {
        outcome.refusal = Some(body_too_large(max, Some(body.len())));
        return outcome;
    }
    if crate::inspect::declares_form(headers) {
        if let Err(refusal) = identity::check_token_only_in_header(&String::from_utf8_lossy(body)) {
            outcome.refusal = Some(refusal);
            return outcome;
        }
    }
    if route.inspect.is_on() {
        let limits = &policy.limits.request;
        if let Some(refusal) = protocol::check_json_depth(body, headers, limits)
            .or_else(|| protocol::check_xml_depth(body, headers, limits))
        {
            outcome.refusal = Some(refusal);
            return outcome;
        }
        let checked = crate::inspect::check_body(body, headers, &route.inspect);
        outcome.findings = checked.findings;
        outcome.changes = checked.changes;
        outcome.rewritten = checked.rewritten;
        if checked.refusal.is_some() {
            outcome.refusal = checked.refusal;
            return outcome;
        }
    }
    if let (Some(pending), Some(principal)) = (pending, principal) {
        // The entries are read as JSON, so the body must say it is JSON (a search by POST's,
        // a form): inspection (above) reads a body as its type declares, and a JSON body sent
        // as text or XML would be read two ways — a key given twice (`protocol-230`) missed
        // by one, its last value taken here, its first perhaps by the backend.
        let search = pending
            .single
            .as_ref()
            .is_some_and(|e| crate::access::fhir::is_search_by_post(&e.method, &e.path));
        let (declared, detail) = if search {
            (
                body.is_empty() || crate::inspect::declares_form(headers),
                "a FHIR search by POST sends its parameters as application/x-www-form-urlencoded",
            )
        } else {
            (
                crate::inspect::declares_json(headers),
                "a FHIR Bundle, create or update is read as JSON: send it as application/fhir+json",
            )
        };
        if !declared {
            outcome.refusal = Some(Refusal::new(
                crate::decision::Reason::AccessFhirUnsupported,
                detail,
            ));
            return outcome;
        }
        match check_bundle(body, policy, state, route, principal, purpose, pending) {
            Ok(provision) => outcome.provision = provision,
            Err(refusal) => outcome.refusal = Some(refusal),
        }
    }
    outcome
}

/// The refusal of a body longer than the route reads whole: `declared` is its length when
/// known.
pub fn body_too_large(max: usize, declared: Option<usize>) -> Refusal {
    let detail = match declared {
        Some(n) => format!(
            "this route reads a body whole before it is forwarded: at most {max} bytes, not {n}"
        ),
        None => format!(
            "this route reads a body whole before it is forwarded: at most {max} bytes (a body without Content-Length: at most 64 KiB)"
        ),
    };
    Refusal::new(crate::decision::Reason::ProtocolBodyTooLarge, detail)
}
