//! The decision pipeline: the request steps in their fixed order, as pure functions of the
//! request and the policy snapshot. The proxy and `phr-gateway explain` both call
//! [`evaluate`], so a decision can always be explained without replaying the request.
//!
//! Order: protocol framing → network (R-NET-1) → mode (emergency stop, read-only) → per-client
//! rate limit → the gateway's own endpoints → route (default deny) → the route's networks →
//! identity → access: scopes, roles, whose data (R-AZ-1) → subject stop of the caller and of the
//! data subject (R-AZ-7) → per-subject and per-route rate limits. The per-client
//! limit sits before identity so that a flood is refused before any signature is checked.
//! Later steps (access, inspection) slot in here.

use http::{HeaderMap, Method};

use crate::controls::Controls;
use crate::decision::Decision;
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
    /// The HTTP/1 parser removed a `Content-Length` sent beside `Transfer-Encoding`.
    pub length_dropped_by_parser: bool,
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
        decision: Decision::Refuse(refusal),
    };
    if let Err(refusal) = protocol::check_framing(request.headers, request.length_dropped_by_parser)
    {
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
    let mut purpose = None;
    let mut provision = None;
    if let Some(p) = &principal {
        match check_access(request, policy, state, route, &found.params, p, now) {
            Ok((stated, provided)) => (purpose, provision) = (stated, provided),
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
        purpose,
        provision,
        decision: Decision::Allow,
    }
}

/// The access steps for a verified caller: scopes, roles, purpose and whose data (R-AZ-1,
/// R-AZ-2), subject stops (R-AZ-7), acquisition consent (R-AZ-3) and, for a registered
/// recipient, provision consent (R-AZ-4). Returns the accepted purpose and the provision to
/// record.
fn check_access(
    request: &RequestView<'_>,
    policy: &Snapshot,
    state: LiveState<'_>,
    route: &Route,
    params: &matchit::Params<'_, '_>,
    p: &identity::Principal,
    now: i64,
) -> Result<
    (
        Option<std::sync::Arc<str>>,
        Option<crate::consent::Provision>,
    ),
    crate::decision::Refusal,
> {
    // Path parameters are collected only for a route that finds its subject there.
    let params: Vec<(&str, &str)> = match &route.access.subject {
        Some(access::SubjectSource::Path(_)) => params.iter().collect(),
        _ => Vec::new(),
    };
    let settings = &policy.access;
    let access_request = access::AccessRequest {
        params: &params,
        query: request.query,
        purpose: access::StatedPurpose::of(request.headers, &settings.purpose_header),
        settings,
        now,
    };
    let granted = access::check(&route.access, p, &access_request)?;
    let data_subject = granted.subject.as_deref();
    if let Some(controls) = state.controls {
        // A stopped subject is refused as the caller and as the data asked for (R-AZ-7),
        // unless the policy lets subjects still read their own data.
        let own_read = !settings.stop_refuses_own_reads
            && granted.recipient.is_none()
            && matches!(*request.method, Method::GET | Method::HEAD);
        if !own_read {
            controls.check_subject(&p.subject)?;
            if let Some(s) = data_subject {
                controls.check_subject(s)?;
            }
        }
    }
    let Some(ledger) = state.consents else {
        return Ok((granted.purpose, None));
    };
    // Health data sent in needs the data subject's acquisition consent (R-AZ-3).
    let ingests = matches!(*request.method, Method::POST | Method::PUT | Method::PATCH);
    let subject = data_subject.unwrap_or_else(|| access::own_subject(p));
    if ingests && route.category.is_health() {
        ledger.check_acquisition(subject, route.category, granted.purpose.as_deref())?;
    }
    let provision = match (&granted.recipient, &granted.purpose) {
        (Some(recipient), Some(purpose)) => {
            use crate::consent::Direction;
            let direction = match *request.method {
                // Data sent in by a recipient is a receipt: the acquisition consent checked
                // above covers it, and it is recorded like a provision (R-LOG-3).
                Method::POST | Method::PUT | Method::PATCH => Direction::Received,
                Method::DELETE => {
                    return Err(crate::decision::Refusal::new(
                        crate::decision::Reason::AccessSubjectMismatch,
                        "a recipient may read or send in a subject's data, never delete it",
                    ))
                }
                _ => Direction::Provided,
            };
            let provision = crate::consent::Provision {
                direction,
                recipient: std::sync::Arc::clone(recipient),
                subject: subject.to_owned(),
                category: route.category,
                purpose: std::sync::Arc::clone(purpose),
            };
            if direction == Direction::Provided {
                ledger.check_provision(&provision)?;
            }
            Some(provision)
        }
        _ => None,
    };
    Ok((granted.purpose, provision))
}
