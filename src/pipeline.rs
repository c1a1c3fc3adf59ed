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
}

impl GatewayEndpoint {
    /// Every endpoint.
    pub const ALL: [GatewayEndpoint; 3] = [
        GatewayEndpoint::SessionLogout,
        GatewayEndpoint::Consents,
        GatewayEndpoint::ConsentWithdraw,
    ];

    /// Its path (matched exactly, `{id}` one segment of letters, digits and `-`: no
    /// dot-segment or encoding variant reaches it).
    pub const fn path(self) -> &'static str {
        match self {
            GatewayEndpoint::SessionLogout => "/.phr/session/logout",
            GatewayEndpoint::Consents => "/.phr/consents",
            GatewayEndpoint::ConsentWithdraw => "/.phr/consents/{id}/withdraw",
        }
    }

    /// Its name in `explain` output.
    pub const fn name(self) -> &'static str {
        match self {
            GatewayEndpoint::SessionLogout => "session-logout",
            GatewayEndpoint::Consents => "consents",
            GatewayEndpoint::ConsentWithdraw => "consent-withdraw",
        }
    }

    /// Whether it only writes the state log (read-only mode lets it through).
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
    let request_method = request.method;
    if let Some(p) = &principal {
        // Path parameters are collected only for a route that finds its subject there.
        let params: Vec<(&str, &str)> = match &route.access.subject {
            Some(access::SubjectSource::Path(_)) => found.params.iter().collect(),
            _ => Vec::new(),
        };
        let header = &policy.access.purpose_header;
        let request = access::AccessRequest {
            params: &params,
            query: request.query,
            purpose: access::StatedPurpose::of(request.headers, header),
            purpose_header: header.as_str(),
        };
        let granted = match access::check(&route.access, p, &request) {
            Ok(granted) => granted,
            Err(refusal) => return refuse(Some((index, route)), refusal),
        };
        purpose = granted.purpose.clone();
        let data_subject = granted.subject;
        if let Some(controls) = state.controls {
            // A stopped subject is refused as the caller and as the data asked for (R-AZ-7).
            let stopped = controls
                .check_subject(&p.subject)
                .and_then(|()| match &data_subject {
                    Some(s) => controls.check_subject(s),
                    None => Ok(()),
                });
            if let Err(refusal) = stopped {
                return refuse(Some((index, route)), refusal);
            }
        }
        // Health data sent in needs the data subject's acquisition consent (R-AZ-3).
        let ingests = matches!(*request_method, Method::POST | Method::PUT | Method::PATCH);
        if let (Some(ledger), true) = (state.consents, ingests && route.category.is_health()) {
            let subject = data_subject
                .as_deref()
                .unwrap_or_else(|| access::own_subject(p));
            if let Err(refusal) =
                ledger.check_acquisition(subject, route.category, purpose.as_deref())
            {
                return refuse(Some((index, route)), refusal);
            }
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
        decision: Decision::Allow,
    }
}
