//! The pingora service: wires the request steps into pingora's phases. Each phase body is a
//! few calls into modules that know nothing of pingora; this file only translates.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING,
    WWW_AUTHENTICATE,
};
use http::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{ErrorSource, ErrorType};

use crate::audit::{self, AccessRecord, AuditSink, OnFailure};
use crate::decision::{self, Decision, Outcome, Reason, Refusal};
use crate::forward::{self, Forwarding};
use crate::harden;
use crate::headers::{HeaderEdit, PHR_NEUTRALISED, X_REQUEST_ID};
use crate::identity::{self, FailureTracker, IdentityState, SessionRegistry};
use crate::pipeline::{self, GatewayEndpoint, LiveState, RequestView};
use crate::policy::Snapshot;
use crate::protocol;
use crate::route::Route;
use crate::server::Shared;

/// The gateway's proxy logic.
pub struct Gateway {
    shared: Shared,
    audit: AuditSink,
    failures: FailureTracker,
}

impl Gateway {
    /// A gateway serving the shared store's current policy and recording every request.
    pub fn new(shared: Shared) -> Self {
        Gateway {
            audit: shared.audit.clone(),
            shared,
            failures: FailureTracker::default(),
        }
    }

    /// What the request steps keep between requests, for a client at `client`; rate limits
    /// are charged only when given.
    fn live_state<'a>(
        &'a self,
        client: Option<std::net::IpAddr>,
        rate_limits: Option<&'a crate::limits::RateLimits>,
    ) -> LiveState<'a> {
        LiveState {
            identity: IdentityState {
                sessions: Some(&self.shared.sessions),
                failures: Some(&self.failures),
                client,
            },
            controls: Some(&self.shared.controls),
            rate_limits,
            consents: Some(&self.shared.consents),
        }
    }
}

/// The pingora error type that carries "the record could not be written" from
/// `response_filter` to `fail_to_proxy`.
const AUDIT_UNAVAILABLE: &str = "AuditUnavailable";

/// The pingora error type that says "the held body was refused: see `late_refusal`".
const BODY_REFUSED: &str = "BodyRefused";

/// A body longer than pingora's retry buffer, held back while it arrives (see `check_body`).
struct HeldBody {
    bytes: Vec<u8>,
    /// The Bundle or resource whose entries the body decides.
    pending: Option<pipeline::PendingBundle>,
    /// Whether the route may forward another body than the client's (neutralise, disarm).
    may_rewrite: bool,
}

/// Per-request state, carried across phases.
pub struct RequestContext {
    /// The gateway's id for this request (UUIDv7: sortable by time), sent to the client and
    /// the upstream as `X-Request-Id`. Kept as a header value: it is made once and cloned
    /// (a reference count) into both headers.
    request_id: HeaderValue,
    /// The policy snapshot this request is decided and forwarded under, start to end.
    snapshot: Option<Arc<Snapshot>>,
    route: Option<usize>,
    /// The verified caller, when the route needed one.
    principal: Option<Arc<crate::identity::Principal>>,
    /// The purpose of use the route accepted.
    purpose: Option<Arc<str>>,
    /// The release to a registered recipient this request asks for, recorded before the
    /// response leaves (R-LOG-3).
    provision: Option<crate::consent::Provision>,
    /// What input inspection found (R-WAF-1): rule ids for the record.
    findings: Vec<crate::inspect::Finding>,
    /// The body forwarded instead of the client's: named fields neutralised (R-WAF-4), files
    /// disarmed (R-WAF-2).
    rewritten: Option<Bytes>,
    /// What that rewrite changed, for the record and the `PHR-Neutralised` headers.
    changes: Vec<String>,
    /// A body too long to read before forwarding, held back until it has passed.
    held: Option<HeldBody>,
    /// Why the held body was refused, for `fail_to_proxy`.
    late_refusal: Option<Refusal>,
    /// How the request ended.
    pub outcome: Outcome,
    started: Instant,
    /// Wall-clock time of arrival, for the record.
    arrived: SystemTime,
    /// When the upstream request was sent, and how long its response head took.
    upstream_sent: Option<Instant>,
    upstream_us: Option<u64>,
    /// Whether the access record was handed to the store.
    recorded: bool,
    /// The connection's peer, while the request counts as in progress on it.
    peer: Option<std::net::SocketAddr>,
    /// The client's address as [`crate::net`] decided it (trusted proxies resolved).
    client: Option<std::net::IpAddr>,
    /// How long the request steps took.
    decide_us: Option<u64>,
    /// How long the request waited for its access record.
    audit_us: Option<u64>,
}

impl RequestContext {
    /// The request id as text.
    pub fn request_id(&self) -> &str {
        // Made from a hyphenated UUID, so always visible ASCII.
        self.request_id.to_str().unwrap_or("-")
    }

    /// The snapshot and the route this request was routed to, if it was.
    fn routed(&self) -> Option<(&Snapshot, &Route)> {
        let snapshot = self.snapshot.as_deref()?;
        Some((snapshot, &snapshot.routes.routes()[self.route?]))
    }
}

/// A new request id: a UUIDv7, so ids sort by arrival.
pub(crate) fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("-"))
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestContext;

    fn new_ctx(&self) -> Self::CTX {
        RequestContext {
            request_id: new_request_id(),
            snapshot: None,
            route: None,
            principal: None,
            purpose: None,
            provision: None,
            findings: Vec::new(),
            rewritten: None,
            held: None,
            late_refusal: None,
            changes: Vec::new(),
            outcome: Outcome::Forwarded,
            started: Instant::now(),
            arrived: SystemTime::now(),
            upstream_sent: None,
            upstream_us: None,
            recorded: false,
            peer: None,
            client: None,
            decide_us: None,
            audit_us: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let snapshot = self.shared.store.current();
        ctx.peer = session.client_addr().and_then(|a| a.as_inet()).copied();
        if let Some(peer) = ctx.peer {
            // The head is in: the connection's header deadline no longer applies.
            self.shared.connections.request_started(peer);
        }
        session.set_read_timeout(Some(snapshot.limits.connections.body_timeout));
        ctx.client = snapshot
            .network
            .client_address(ctx.peer.map(|p| p.ip()), &session.req_header().headers);
        if self.audit.on_failure() == OnFailure::FailClosed && !self.audit.is_available() {
            // Known before anything reaches an upstream: refuse rather than serve unrecorded.
            ctx.snapshot = Some(snapshot);
            ctx.outcome = Outcome::Refused(Reason::AuditUnavailable);
            let refusal = Refusal::new(
                Reason::AuditUnavailable,
                "the audit trail cannot be written; nothing is served without its record",
            );
            self.respond_refusal(session, &refusal, ctx).await?;
            return Ok(true);
        }
        let downstream = session.as_downstream();
        let header = downstream.req_header();
        let raw_head = if downstream.is_http2() {
            protocol::RawHead::default()
        } else {
            protocol::RawHead::of(
                &downstream.to_h1_raw(),
                header.headers.contains_key(TRANSFER_ENCODING),
            )
        };
        let view = RequestView {
            method: &header.method,
            path: header.uri.path(),
            query: header.uri.query(),
            headers: &header.headers,
            authority: header
                .uri
                .authority()
                .map(|a| a.as_str())
                .or_else(|| protocol::absolute_form_authority(header.raw_path())),
            raw_head,
        };
        let state = self.live_state(ctx.client, Some(&snapshot.limits.rates));
        let mut evaluation = pipeline::evaluate(&view, &snapshot, state, identity::unix_now());
        ctx.decide_us = Some(ctx.started.elapsed().as_micros() as u64);
        let decision = std::mem::replace(&mut evaluation.decision, Decision::Allow);
        let endpoint = evaluation.endpoint;
        ctx.route = evaluation.route_index;
        ctx.principal = evaluation.principal;
        ctx.purpose = evaluation.purpose;
        ctx.provision = evaluation.provision;
        ctx.snapshot = Some(Arc::clone(&snapshot));
        ctx.findings = std::mem::take(&mut evaluation.findings);
        // An HTTP/2 body needs no Content-Length: the connection says whether one follows.
        let inspect_body = evaluation.inspect_body && !session.as_downstream_mut().is_body_empty();
        if matches!(decision, Decision::Allow) && (evaluation.bundle.is_some() || inspect_body) {
            // An error here is the client gone mid-body: `fail_to_proxy` records it as lost.
            let checked = self
                .check_body(session, &snapshot, evaluation.bundle.take(), ctx)
                .await?;
            if let Err(refusal) = checked {
                ctx.outcome = Outcome::Refused(refusal.reason);
                self.respond_refusal(session, &refusal, ctx).await?;
                return Ok(true);
            }
        }
        if ctx.provision.is_some() && !self.audit.is_available() {
            // A provision is never released unrecorded, in `degrade` mode too (R-LOG-3): known
            // now, refused before the upstream is asked.
            let refusal = Refusal::new(
                Reason::AuditUnavailable,
                "the provision record cannot be written; no data is provided without it",
            );
            ctx.outcome = Outcome::Refused(refusal.reason);
            self.respond_refusal(session, &refusal, ctx).await?;
            return Ok(true);
        }
        match decision {
            Decision::Allow => match endpoint {
                None => Ok(false),
                Some(GatewayEndpoint::SessionLogout) => self.logout(session, &snapshot, ctx).await,
                Some(endpoint) => self.consents(session, &snapshot, endpoint, ctx).await,
            },
            Decision::Refuse(refusal) => {
                ctx.outcome = Outcome::Refused(refusal.reason);
                self.respond_refusal(session, &refusal, ctx).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        match ctx.routed() {
            Some((snapshot, route)) => Ok(snapshot.upstream_of(route).peer()),
            // request_filter refuses every request it does not route; reaching here without a
            // route would be a bug, and the answer is still to forward nothing.
            None => Error::e_explain(ErrorType::InternalError, "no route decided for request"),
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let client_ip = ctx.client;
        let host = requested_authority(session.req_header());
        let Some((snapshot, route)) = ctx.routed() else {
            return Error::e_explain(ErrorType::InternalError, "no route decided for request");
        };
        let forwarding = Forwarding {
            client_ip,
            host,
            request_id: &ctx.request_id,
            default_host: snapshot.upstream_of(route).authority.as_str(),
            identity_headers: &snapshot.identity.headers,
            principal: ctx.principal.as_deref(),
            purpose_header: &snapshot.access.purpose_header,
        };
        rewrite_upstream_request(upstream_request, &forwarding);
        if let Some(body) = &ctx.rewritten {
            // The body that goes is the rewritten one (request_body_filter), with its length.
            upstream_request.remove_header(&http::header::TRANSFER_ENCODING);
            upstream_request.insert_header(CONTENT_LENGTH, body.len())?;
        } else if ctx.held.as_ref().is_some_and(|h| h.may_rewrite) {
            // A held body may yet be rewritten to another length: pingora frames it chunked.
            upstream_request.remove_header(&CONTENT_LENGTH);
        }
        // Only the gateway says what it changed: a client's own claim never reached the backend
        // (forward::rewrite_request strips it).
        if let Some(changed) = changed_fields(&ctx.changes) {
            // A value is never changed silently (R-WAF-4): the backend is told which.
            upstream_request.insert_header(PHR_NEUTRALISED, changed)?;
        }
        ctx.upstream_sent = Some(Instant::now());
        Ok(())
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(mut held) = ctx.held.take() {
            let checked = self.hold_body(session, &mut held, body, end_of_stream, ctx);
            if let Err(refusal) = checked {
                // fail_to_proxy answers with it; the upstream connection is dropped.
                ctx.late_refusal = Some(refusal);
                return Err(Error::explain(
                    ErrorType::Custom(BODY_REFUSED),
                    "a held body was refused",
                ));
            }
            if !end_of_stream {
                ctx.held = Some(held);
            }
            return Ok(());
        }
        // The body was read whole (check_body) and is replayed from pingora's retry buffer in
        // one piece: it is swapped for the rewritten one.
        if ctx.rewritten.is_some() && body.is_some() {
            *body = ctx.rewritten.take();
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        // Also strips an upstream's own `PHR-Neutralised`: only the gateway says what it changed.
        let identified = ctx.principal.is_some();
        let public_host = requested_authority(session.req_header());
        let upstream_origins = ctx.routed().map_or(&[][..], |(snapshot, route)| {
            &snapshot.upstream_of(route).origins[..]
        });
        edit_response_headers(upstream_response, |headers| {
            crate::forward::public_locations(headers, upstream_origins, public_host);
            harden::harden(headers);
            harden::secure_cookies(headers);
            if identified {
                harden::forbid_storing(headers);
            }
            headers.insert(X_REQUEST_ID, ctx.request_id.clone());
        });
        if let Some(changed) = changed_fields(&ctx.changes) {
            // ... and so is the client whose value it was.
            upstream_response.insert_header(PHR_NEUTRALISED, changed)?;
        }
        ctx.upstream_us = ctx.upstream_sent.map(|t| t.elapsed().as_micros() as u64);
        if let Some(provision) = &ctx.provision {
            // The subject's data leaves only once its release is on disk (R-LOG-3).
            let route = ctx.routed().map_or("-", |(_, r)| &*r.id);
            let status = upstream_response.status.as_u16();
            let recorded = self
                .shared
                .consents
                .record_provision(&self.audit, provision, ctx.request_id(), route, status)
                .await;
            if let Err(e) = recorded {
                tracing::error!(request_id = ctx.request_id(), "provision withheld: {e}");
                return Error::e_explain(ErrorType::Custom(AUDIT_UNAVAILABLE), e.to_string());
            }
            if let Some(m) = crate::metrics::metrics() {
                let direction = match provision.direction {
                    crate::consent::Direction::Provided => "provided",
                    crate::consent::Direction::Received => "received",
                };
                m.third_party_records
                    .with_label_values(&[&*provision.recipient.id, direction])
                    .inc();
            }
        }
        // The record is written before the response head is released: a client never holds
        // data whose record could still be lost (R-LOG-1). The body's size is the declared one.
        let bytes_out = upstream_response
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let record = access_record(session, ctx, upstream_response.status.as_u16(), bytes_out);
        ctx.recorded = true;
        let waiting = Instant::now();
        let written = self.audit.record_access(record).await;
        ctx.audit_us = Some(waiting.elapsed().as_micros() as u64);
        if let Err(e) = written {
            if let Some(m) = crate::metrics::metrics() {
                m.audit_write_failures.inc();
            }
            tracing::error!(request_id = ctx.request_id(), "response withheld: {e}");
            return Error::e_explain(ErrorType::Custom(AUDIT_UNAVAILABLE), e.to_string());
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let refusal = match ctx.late_refusal.take() {
            // A held body failed its checks: none of it went upstream.
            Some(refusal) => refusal,
            None => {
                let Some(reason) = failure_reason(e) else {
                    ctx.outcome = Outcome::ConnectionLost;
                    return FailToProxy {
                        error_code: 0,
                        can_reuse_downstream: false,
                    };
                };
                if reason == Reason::UpstreamUnavailable {
                    if let (Some(m), Some((snapshot, route))) =
                        (crate::metrics::metrics(), ctx.routed())
                    {
                        m.upstream_errors
                            .with_label_values(&[snapshot.upstream_of(route).name.as_str()])
                            .inc();
                    }
                }
                let detail = match reason {
                    Reason::UpstreamUnavailable => "the backend could not be reached",
                    Reason::ProtocolMalformedBody => "the request body could not be read as framed",
                    Reason::ProtocolRequestTimeout => "the request did not arrive in time",
                    Reason::AuditUnavailable => {
                        "the audit trail cannot be written; nothing is served without its record"
                    }
                    _ => "the gateway could not complete the request",
                };
                Refusal::new(reason, detail)
            }
        };
        ctx.outcome = Outcome::Refused(refusal.reason);
        if let Err(write) = self.respond_refusal(session, &refusal, ctx).await {
            // Typically the answer had already started (the upstream answered first).
            tracing::debug!(error = %write, "could not send error response");
        }
        FailToProxy {
            error_code: refusal.reason.status(),
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        if let Some(peer) = ctx.peer.take() {
            self.shared.connections.request_finished(peer);
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if !ctx.recorded {
            // Nothing was answered (the client left, or the answer could not be sent): the
            // record has nothing to hold back, so it is queued without waiting.
            let record = access_record(session, ctx, status, None);
            ctx.recorded = true;
            self.audit.record_access_detached(record);
        }
        observe(ctx, status);
        tracing::debug!(
            request_id = ctx.request_id(),
            route = ctx.routed().map_or("-", |(_, r)| &*r.id),
            method = %session.req_header().method,
            status,
            outcome = ctx.outcome.code(),
            micros = ctx.started.elapsed().as_micros() as u64,
            "request"
        );
    }
}

/// What to tell the client about a failure pingora reports, or `None` when the client's
/// connection is gone and nothing can be sent.
fn failure_reason(e: &Error) -> Option<Reason> {
    match (e.esource(), e.etype()) {
        (_, ErrorType::Custom(AUDIT_UNAVAILABLE)) => Some(Reason::AuditUnavailable),
        (ErrorSource::Upstream, _) => Some(Reason::UpstreamUnavailable),
        (
            ErrorSource::Downstream,
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
        ) => None,
        (ErrorSource::Downstream, ErrorType::ReadTimedout) => Some(Reason::ProtocolRequestTimeout),
        // Anything else from the client's side is a request pingora could not read: for a
        // request whose head parsed, that is its body (a bad chunk, say).
        (ErrorSource::Downstream, _) => Some(Reason::ProtocolMalformedBody),
        (ErrorSource::Internal | ErrorSource::Unset, _) => Some(Reason::GatewayInternal),
    }
}

impl Gateway {
    /// `POST /.phr/session/logout`: end the caller's own session, durably, then 204.
    async fn logout(
        &self,
        session: &mut Session,
        snapshot: &Snapshot,
        ctx: &mut RequestContext,
    ) -> Result<bool> {
        let refuse = |reason, detail: &str| {
            let mut r = Refusal::new(reason, detail);
            if reason == Reason::RouteMethodNotAllowed {
                r.allow = Some("POST".into());
            }
            r
        };
        let request = session.req_header();
        let outcome = if request.method != http::Method::POST {
            Err(refuse(Reason::RouteMethodNotAllowed, "logout is POST"))
        } else {
            match identity::verified_principal(
                &request.headers,
                &snapshot.identity,
                identity::unix_now(),
            ) {
                Err(refusal) => Err(refusal),
                Ok(principal) => match SessionRegistry::logout_event(&principal) {
                    None => Err(refuse(
                        Reason::IdentityInvalidToken,
                        "the token names no session (no sid or jti) to end",
                    )),
                    Some(event) => match self.shared.sessions.revoke(&self.audit, event).await {
                        Ok(_) => Ok(principal),
                        Err(e) => {
                            tracing::error!("logout not recorded, so not applied: {e}");
                            Err(refuse(
                                Reason::AuditUnavailable,
                                "the logout could not be recorded; try again",
                            ))
                        }
                    },
                },
            }
        };
        match outcome {
            Ok(principal) => {
                ctx.principal = Some(principal);
                let mut response = ResponseHeader::build(204, Some(4))?;
                response.insert_header(X_REQUEST_ID, ctx.request_id.clone())?;
                harden::harden(&mut response);
                let record = access_record(session, ctx, 204, Some(0));
                ctx.recorded = true;
                let _ = self.audit.record_access(record).await;
                session
                    .write_response_header(Box::new(response), true)
                    .await?;
            }
            Err(refusal) => {
                ctx.outcome = Outcome::Refused(refusal.reason);
                self.respond_refusal(session, &refusal, ctx).await?;
            }
        }
        Ok(true)
    }

    /// Read a body whole before any of it is forwarded, and check it: a FHIR Bundle, create or
    /// update entry by entry (R-AZ-1, R-AZ-4), and input inspection (R-WAF-1/2/4). A body of
    /// declared length up to 64 KiB, or of no declared length, is read here, before the
    /// upstream is asked, into pingora's retry buffer, which then forwards it. A longer one,
    /// up to `limits.max_body_bytes`, is held back by `request_body_filter` instead: the head
    /// goes to the upstream while it arrives, its bytes only once all of it has passed.
    /// `Err` when the client went away (or reset its HTTP/2 stream) before the body was
    /// whole: nothing can be answered then.
    async fn check_body(
        &self,
        session: &mut Session,
        snapshot: &Snapshot,
        pending: Option<pipeline::PendingBundle>,
        ctx: &mut RequestContext,
    ) -> Result<std::result::Result<(), Refusal>> {
        // pingora's retry buffer: a longer body could not be forwarded after it had been read.
        const RETRY_BUFFER: usize = 64 * 1024;
        let Some(route) = ctx.route.map(|i| &snapshot.routes.routes()[i]) else {
            return Ok(Ok(()));
        };
        let max = snapshot.limits.request.body_bytes;
        let declared = session
            .req_header()
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        match declared {
            Some(n) if n > max => return Ok(Err(pipeline::body_too_large(max, declared))),
            Some(n) if n > RETRY_BUFFER => {
                ctx.held = Some(HeldBody {
                    bytes: Vec::with_capacity(n),
                    pending,
                    may_rewrite: route.inspect.may_rewrite(),
                });
                return Ok(Ok(()));
            }
            _ => {}
        }
        session.enable_retry_buffering();
        let body = match read_body(session, max.min(RETRY_BUFFER)).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return Ok(Err(pipeline::body_too_large(max.min(RETRY_BUFFER), None)))
            }
            // Answered (or, for a client gone, recorded lost) by `fail_to_proxy`, as every
            // failed read is: a body that breaks its framing, one that stalls, a client that
            // left or whose HTTP/2 stream was reset.
            Err(BodyError::Unreadable(e)) => return Err(e),
        };
        let headers = &session.req_header().headers;
        Ok(self.check_whole_body(&body, headers, snapshot, route, pending.as_ref(), ctx))
    }

    /// The checks of a body read whole, wherever it was read: its rewrite, findings and
    /// provision go in `ctx`.
    fn check_whole_body(
        &self,
        body: &[u8],
        headers: &http::HeaderMap,
        snapshot: &Snapshot,
        route: &Route,
        pending: Option<&pipeline::PendingBundle>,
        ctx: &mut RequestContext,
    ) -> std::result::Result<(), Refusal> {
        // The request's limits were charged when it was first decided.
        let state = self.live_state(ctx.client, None);
        let outcome = pipeline::check_body(
            body,
            headers,
            snapshot,
            state,
            route,
            ctx.principal.as_deref(),
            ctx.purpose.as_ref(),
            pending,
        );
        ctx.findings.extend(outcome.findings);
        ctx.changes = outcome.changes;
        if let Some(refusal) = outcome.refusal {
            return Err(refusal);
        }
        ctx.rewritten = outcome.rewritten.map(Bytes::from);
        if pending.is_some() {
            // The entries decide the exchange the head could not.
            ctx.provision = outcome.provision;
        }
        Ok(())
    }

    /// One piece of a held body (see `check_body`): kept back until the last one, then the
    /// whole is checked and goes on in one piece, or the request is refused with none of it
    /// forwarded.
    fn hold_body(
        &self,
        session: &Session,
        held: &mut HeldBody,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> std::result::Result<(), Refusal> {
        // The request's own snapshot, start to end: its bound, then its checks.
        let snapshot = ctx
            .snapshot
            .clone()
            .ok_or_else(|| Refusal::new(Reason::GatewayInternal, "the request lost its policy"))?;
        if let Some(piece) = body.take() {
            let max = snapshot.limits.request.body_bytes;
            if held.bytes.len() + piece.len() > max {
                return Err(pipeline::body_too_large(max, None));
            }
            held.bytes.extend_from_slice(&piece);
        }
        if !end_of_stream {
            // An empty piece is forwarded as nothing; `None` would end the upstream body.
            *body = Some(Bytes::new());
            return Ok(());
        }
        let route = ctx
            .route
            .map(|i| &snapshot.routes.routes()[i])
            .ok_or_else(|| Refusal::new(Reason::GatewayInternal, "the request lost its route"))?;
        let headers = &session.req_header().headers;
        self.check_whole_body(
            &held.bytes,
            headers,
            &snapshot,
            route,
            held.pending.as_ref(),
            ctx,
        )?;
        *body = Some(
            ctx.rewritten
                .take()
                .unwrap_or_else(|| Bytes::from(std::mem::take(&mut held.bytes))),
        );
        Ok(())
    }

    /// `/.phr/consents` (R-AZ-3, R-AZ-5, R-AZ-6): the verified caller's own consents. `GET`
    /// lists current consents and history; `POST` gives one; `POST .../{id}/withdraw` withdraws
    /// one. Changes are durable before the answer. docs/api/consents.yaml describes it.
    async fn consents(
        &self,
        session: &mut Session,
        snapshot: &Snapshot,
        endpoint: GatewayEndpoint,
        ctx: &mut RequestContext,
    ) -> Result<bool> {
        let outcome = self.consent_call(session, snapshot, endpoint, ctx).await;
        match outcome {
            // A body that could not be read: answered, or recorded lost, by `fail_to_proxy`.
            Err(ConsentCallError::Unreadable(e)) => return Err(e),
            Ok((status, body)) => {
                let body = serde_json::to_vec_pretty(&body).unwrap_or_default();
                let mut response = ResponseHeader::build(status, Some(4))?;
                response.insert_header(CONTENT_TYPE, "application/json")?;
                response.insert_header(CONTENT_LENGTH, body.len())?;
                response.insert_header(X_REQUEST_ID, ctx.request_id.clone())?;
                response.insert_header(http::header::CACHE_CONTROL, "no-store")?;
                harden::harden(&mut response);
                let record = access_record(session, ctx, status, Some(body.len() as u64));
                ctx.recorded = true;
                if self.audit.record_access(record).await.is_err() {
                    if let Some(m) = crate::metrics::metrics() {
                        m.audit_write_failures.inc();
                    }
                }
                write_answer(session, response, body).await?;
            }
            Err(ConsentCallError::Refused(refusal)) => {
                ctx.outcome = Outcome::Refused(refusal.reason);
                self.respond_refusal(session, &refusal, ctx).await?;
            }
        }
        Ok(true)
    }

    async fn consent_call(
        &self,
        session: &mut Session,
        snapshot: &Snapshot,
        endpoint: GatewayEndpoint,
        ctx: &mut RequestContext,
    ) -> std::result::Result<(u16, serde_json::Value), ConsentCallError> {
        use crate::consent::ConsentError;
        let invalid = |detail: String| Refusal::new(Reason::ConsentInvalidRequest, detail);
        let now = identity::unix_now();
        let request = session.req_header();
        let method = request.method.clone();
        let path = request.uri.path().to_owned();
        let principal = identity::verified_principal(&request.headers, &snapshot.identity, now)?;
        self.shared
            .sessions
            .check(&principal, snapshot.identity.sessions, now)?;
        if !principal.multi_factor {
            return Err(Refusal::new(
                Reason::IdentityMfaRequired,
                "consents need a multi-factor sign-in",
            )
            .into());
        }
        ctx.principal = Some(Arc::clone(&principal));
        if snapshot.access.recipient_of(&principal).is_some() {
            // A recipient's token may carry a patient context; it still never acts as the subject.
            return Err(Refusal::new(
                Reason::AccessSubjectMismatch,
                "consents and provision records are the subject's own: a recipient's application cannot use them",
            )
            .into());
        }
        let subject = crate::access::own_subject(&principal).to_owned();
        let audit_failed = |e: ConsentError| match e {
            ConsentError::NotFound => Refusal::new(
                Reason::ConsentNotFound,
                "no live consent of yours has this id",
            ),
            ConsentError::Audit(e) => {
                tracing::error!("consent change not recorded, so not applied: {e}");
                Refusal::new(
                    Reason::AuditUnavailable,
                    "the change could not be recorded; nothing changed, try again",
                )
            }
        };
        match (endpoint, method) {
            (GatewayEndpoint::Consents, http::Method::GET) => {
                let all = self.shared.consents.of(&subject);
                let current: Vec<_> = all.iter().filter(|c| c.withdrawn_at.is_none()).collect();
                Ok((
                    200,
                    serde_json::json!({ "subject": subject, "current": current, "history": all }),
                ))
            }
            (GatewayEndpoint::Provisions, http::Method::GET) => {
                let provisions = self.shared.consents.provisions_of(&subject);
                Ok((
                    200,
                    serde_json::json!({ "subject": subject, "provisions": provisions }),
                ))
            }
            (GatewayEndpoint::Consents, http::Method::POST) => {
                // Only JSON is read as a grant: a body sent as a form or `text/plain` is what
                // a page on another site can make a browser send without asking.
                if !is_json_type(session.req_header()) {
                    return Err(invalid(
                        "a consent is granted with a JSON body: send Content-Type: application/json"
                            .to_owned(),
                    )
                    .into());
                }
                let body = match read_body(session, 64 * 1024).await {
                    Ok(body) => body,
                    Err(BodyError::Unreadable(e)) => return Err(ConsentCallError::Unreadable(e)),
                    Err(e @ BodyError::TooLarge) => return Err(invalid(e.to_string()).into()),
                };
                let terms = consent_terms(&body, &snapshot.access).map_err(invalid)?;
                let id = self
                    .shared
                    .consents
                    .grant(&self.audit, &subject, terms)
                    .await
                    .map_err(audit_failed)?;
                Ok((201, serde_json::json!({ "consent": id })))
            }
            (GatewayEndpoint::ConsentWithdraw, http::Method::POST) => {
                let id = path
                    .strip_prefix("/.phr/consents/")
                    .and_then(|rest| rest.strip_suffix("/withdraw"))
                    .unwrap_or_default()
                    .to_owned();
                self.shared
                    .consents
                    .withdraw(&self.audit, &subject, &id)
                    .await
                    .map_err(audit_failed)?;
                Ok((200, serde_json::json!({ "consent": id, "withdrawn": true })))
            }
            (endpoint, _) => {
                let mut refusal = Refusal::new(
                    Reason::RouteMethodNotAllowed,
                    "method not allowed on this endpoint",
                );
                refusal.allow = Some(match endpoint {
                    GatewayEndpoint::Consents => "GET, POST".into(),
                    GatewayEndpoint::Provisions => "GET".into(),
                    _ => "POST".into(),
                });
                Err(refusal.into())
            }
        }
    }

    /// Answer a refused request with its problem+json body, after its record is written. The
    /// one place a [`Refusal`] becomes a response.
    async fn respond_refusal(
        &self,
        session: &mut Session,
        refusal: &Refusal,
        ctx: &mut RequestContext,
    ) -> Result<()> {
        let body = decision::problem_body(refusal, ctx.request_id());
        // One record per request: a refusal after the record was already attempted (an
        // upstream failing mid-body, a record that could not be written) adds none.
        if !ctx.recorded {
            let record = access_record(
                session,
                ctx,
                refusal.reason.status(),
                Some(body.len() as u64),
            );
            ctx.recorded = true;
            // A refusal releases no data, so it is sent even when its record could not be
            // written (the store counts the loss).
            if self.audit.record_access(record).await.is_err() {
                if let Some(m) = crate::metrics::metrics() {
                    m.audit_write_failures.inc();
                }
            }
        }
        write_refusal(session, refusal, ctx.request_id(), body).await
    }
}

/// Whether the request declares a JSON body (`application/json` or `application/*+json`,
/// parameters aside).
fn is_json_type(request: &pingora::http::RequestHeader) -> bool {
    let Some(essence) = request
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
    else {
        return false;
    };
    let essence = essence.trim().to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|sub| sub == "json" || (sub.ends_with("+json") && sub.len() > 5))
}

/// A grant's body, checked against the policy: acquisition consents name health categories
/// (R-AZ-3); provision consents name a registered recipient, and its country when it is abroad
/// (R-AZ-4); every purpose is one of the catalogue's.
fn consent_terms(
    body: &[u8],
    settings: &crate::access::AccessSettings,
) -> std::result::Result<crate::consent::ConsentTerms, String> {
    use crate::consent::{ConsentKind, ConsentTerms};
    use crate::policy::DataCategory;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Grant {
        kind: ConsentKind,
        categories: Vec<DataCategory>,
        purpose: String,
        recipient: Option<String>,
        country: Option<String>,
    }
    let grant: Grant = serde_json::from_slice(body).map_err(|e| format!("request body: {e}"))?;
    if !settings.purposes.iter().any(|p| *p.id == grant.purpose) {
        let known: Vec<&str> = settings.purposes.iter().map(|p| &*p.id).collect();
        return Err(format!(
            "purpose `{}` is not one of this service's: {}",
            grant.purpose,
            known.join(", ")
        ));
    }
    // A consent is the subject's record of what was agreed: each category once, as it is shown.
    let categories = &grant.categories;
    if let Some(twice) = (1..categories.len())
        .find(|&i| categories[..i].contains(&categories[i]))
        .map(|i| categories[i])
    {
        return Err(format!("categories lists `{}` twice", twice.as_str()));
    }
    let country = match grant.kind {
        ConsentKind::Acquisition => {
            if grant.categories.is_empty() || grant.categories.iter().any(|c| !c.is_health()) {
                return Err(
                    "categories must name health data: checkup, medication, vaccination, vitals"
                        .into(),
                );
            }
            if grant.recipient.is_some() || grant.country.is_some() {
                return Err("an acquisition consent names no recipient or country".into());
            }
            None
        }
        ConsentKind::Provision => {
            if grant.categories.is_empty() || grant.categories.contains(&DataCategory::Public) {
                return Err("categories must name the data provided: checkup, medication, vaccination, vitals, account".into());
            }
            let Some(recipient) = grant
                .recipient
                .as_deref()
                .and_then(|r| settings.recipient(r))
            else {
                let known: Vec<&str> = settings.recipients.iter().map(|r| &*r.id).collect();
                return Err(format!(
                    "a provision consent names a registered recipient: {}",
                    if known.is_empty() {
                        "none is registered".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
            };
            let named = grant.country.as_deref().map(str::to_ascii_uppercase);
            match (recipient.abroad, named) {
                (true, Some(c)) if *c == *recipient.country => Some(c),
                (true, _) => {
                    return Err(format!(
                        "the recipient `{}` is abroad, in `{}`: the consent must name that country (R-AZ-4)",
                        recipient.id, recipient.country
                    ))
                }
                (false, Some(c)) if *c != *recipient.country => {
                    return Err(format!(
                        "the recipient `{}` is in `{}`, not `{c}`",
                        recipient.id, recipient.country
                    ))
                }
                (false, _) => None,
            }
        }
    };
    Ok(ConsentTerms {
        kind: grant.kind,
        categories: grant.categories,
        purpose: grant.purpose,
        recipient: grant.recipient,
        country,
    })
}

/// Count the finished request and its phase times (R-OPS-1).
fn observe(ctx: &RequestContext, status: u16) {
    let Some(m) = crate::metrics::metrics() else {
        return;
    };
    let route = ctx.routed().map_or("-", |(_, r)| &*r.id);
    if !ctx.findings.is_empty() {
        // Blocked findings are those of a request inspection refused; the rest were recorded.
        let action = match ctx.outcome {
            Outcome::Refused(Reason::InspectBlocked) => "block",
            _ => "detect",
        };
        for finding in &ctx.findings {
            m.inspection_hits
                .with_label_values(&[finding.hit.class.name(), action])
                .inc();
        }
    }
    m.count_request(route, ctx.outcome.decision(), ctx.outcome.code(), status);
    let seconds = |us: u64| us as f64 / 1e6;
    if let Some(us) = ctx.decide_us {
        m.phases.decide.observe(seconds(us));
    }
    if let Some(us) = ctx.audit_us {
        m.phases.audit.observe(seconds(us));
    }
    if let (Some(us), Some((snapshot, route))) = (ctx.upstream_us, ctx.routed()) {
        m.phases.upstream.observe(seconds(us));
        m.upstream_seconds
            .with_label_values(&[snapshot.upstream_of(route).name.as_str()])
            .observe(seconds(us));
    }
    m.phases.total.observe(ctx.started.elapsed().as_secs_f64());
}

/// The changed fields, as a header value (`note.text, upload`), when anything changed. A
/// disarmed field's name is a client's JSON key path, which may hold a comma, a colon, a
/// quote or Japanese: each name is percent-encoded (UTF-8) beyond letters, digits and
/// `. _ - / [ ]`, so the list splits at its commas and the value stays ASCII.
fn changed_fields(changes: &[String]) -> Option<String> {
    const ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'.')
        .remove(b'_')
        .remove(b'-')
        .remove(b'/')
        .remove(b'[')
        .remove(b']');
    let mut fields: Vec<&str> = changes
        .iter()
        .filter_map(|c| {
            if let Some(field) = c.strip_prefix("neutralised:") {
                return Some(field);
            }
            // `disarmed:FIELD:KIND:ITEM`: the field is what precedes the last two parts.
            c.strip_prefix("disarmed:")?.rsplitn(3, ':').nth(2)
        })
        .collect();
    fields.dedup();
    let encoded: Vec<String> = fields
        .iter()
        .map(|f| percent_encoding::utf8_percent_encode(f, ENCODE).to_string())
        .collect();
    (!encoded.is_empty()).then(|| encoded.join(", "))
}

/// Why a consent call has no answer of its own: refused, or its body unreadable (answered
/// as every failed read is, by `fail_to_proxy`).
enum ConsentCallError {
    Refused(Refusal),
    Unreadable(Box<Error>),
}

impl From<Refusal> for ConsentCallError {
    fn from(refusal: Refusal) -> Self {
        ConsentCallError::Refused(refusal)
    }
}

/// Why a body could not be read whole.
enum BodyError {
    /// Larger than the bound.
    TooLarge,
    /// The body broke its framing, or the client went away (`failure_reason` tells which).
    Unreadable(Box<Error>),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge => f.write_str("request body too large"),
            BodyError::Unreadable(e) => write!(f, "request body: {e}"),
        }
    }
}

/// Read a request body whole, at most `max` bytes: the one loop behind the gateway's own
/// endpoints and the bodies checked before forwarding.
async fn read_body(session: &mut Session, max: usize) -> std::result::Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    // pingora leaves the side of a failed body read unset; it is the client's, which is what
    // tells `failure_reason` a client that left from a gateway fault.
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|e| BodyError::Unreadable(e.into_down()))?
    {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The access record of a request, as far as it went (R-LOG-1, R-LOG-5).
fn access_record(
    session: &Session,
    ctx: &RequestContext,
    status: u16,
    bytes_out: Option<u64>,
) -> AccessRecord {
    let request = session.req_header();
    let routed = ctx.routed();
    AccessRecord {
        time: audit::record::format_time(ctx.arrived.into()),
        request_id: ctx.request_id().to_owned(),
        client: ctx.client.map_or_else(String::new, |ip| ip.to_string()),
        tls: session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .and_then(|ssl| tls_version_label(&ssl.version)),
        // Pseudonymised when the policy names a pseudonym key (R-LOG-5).
        principal: ctx.principal.as_ref().map(|p| {
            match ctx.snapshot.as_ref().and_then(|s| s.pseudonymiser.as_ref()) {
                Some(pseudonyms) => pseudonyms.pseudonym(&p.subject),
                None => p.subject.clone(),
            }
        }),
        client_id: ctx.principal.as_ref().and_then(|p| p.client_id.clone()),
        method: request.method.as_str().to_owned(),
        route: routed.map(|(_, r)| Arc::clone(&r.id)),
        template: routed.map(|(_, r)| Arc::clone(&r.pattern)),
        purpose: ctx.purpose.as_deref().map(str::to_owned),
        category: routed.map(|(_, r)| r.category.as_str()),
        decision: ctx.outcome.decision(),
        reason: ctx.outcome.reason(),
        status,
        bytes_in: session.body_bytes_read() as u64,
        bytes_out,
        upstream_us: ctx.upstream_us,
        total_us: ctx.started.elapsed().as_micros() as u64,
        rules: ctx.findings.iter().map(|f| f.hit.rule.to_owned()).collect(),
        changes: ctx.changes.clone(),
    }
}

/// The record's name for a TLS version as pingora reports it.
pub(crate) fn tls_version_label(version: &str) -> Option<&'static str> {
    if version.contains("1_3") || version.contains("1.3") {
        Some("TLSv1.3")
    } else if version.contains("1_2") || version.contains("1.2") {
        Some("TLSv1.2")
    } else {
        None
    }
}

/// Write a refusal's response.
async fn write_refusal(
    session: &mut Session,
    refusal: &Refusal,
    request_id: &str,
    body: Vec<u8>,
) -> Result<()> {
    let mut response = ResponseHeader::build(refusal.reason.status(), Some(8))?;
    response.insert_header(CONTENT_TYPE, decision::PROBLEM_CONTENT_TYPE)?;
    response.insert_header(CONTENT_LENGTH, body.len())?;
    response.insert_header(X_REQUEST_ID, request_id)?;
    if let Some(allow) = &refusal.allow {
        response.insert_header(ALLOW, allow.as_str())?;
    }
    if refusal.reason.status() == 401 {
        let challenge = refusal
            .challenge
            .as_deref()
            .unwrap_or("Bearer realm=\"phr-gateway\"");
        response.insert_header(WWW_AUTHENTICATE, challenge)?;
    } else if let Some(challenge) = &refusal.challenge {
        // 403 insufficient_scope (RFC 6750 §3.1).
        response.insert_header(WWW_AUTHENTICATE, challenge.as_str())?;
    }
    if let Some(limits) = &refusal.rate_limit {
        response.insert_header("ratelimit-policy", limits.policy.as_str())?;
        response.insert_header("ratelimit", limits.state.as_str())?;
    }
    match (refusal.retry_after, refusal.reason) {
        (Some(secs), _) => response.insert_header(http::header::RETRY_AFTER, secs)?,
        (None, Reason::AuditUnavailable) => {
            response.insert_header(http::header::RETRY_AFTER, "5")?
        }
        _ => {}
    }
    if refusal.reason.closes_connection() {
        session.set_keepalive(None);
        if !session.as_downstream().is_http2() {
            response.insert_header(http::header::CONNECTION, "close")?;
        }
    }
    harden::harden(&mut response);
    write_answer(session, response, body).await
}

/// Write an answer the gateway makes itself. A `HEAD` gets the head alone, its
/// `Content-Length` that of the body a `GET` would get (RFC 9110 section 9.3.2): over HTTP/2
/// a DATA frame after it resets the stream (pingora leaves that to the caller), and over
/// HTTP/1.1 the bytes would be read as the next response.
async fn write_answer(
    session: &mut Session,
    response: ResponseHeader,
    body: Vec<u8>,
) -> Result<()> {
    if session.req_header().method == http::Method::HEAD {
        return session
            .write_response_header(Box::new(response), true)
            .await;
    }
    session
        .write_response_header(Box::new(response), false)
        .await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await
}

// pingora's headers keep a header-name case map beside the `HeaderMap`, and every insert
// through their own methods copies the name, parses it back and updates both maps: about
// 1,500 instructions a header (callgrind), where the forwarding rewrite and the hardening add
// eight headers to every request and response. The proxy's edits are made on the plain
// `HeaderMap` instead, taken out of pingora's header and put back without a case map. Header
// names then go out in pingora's canonical spelling (standard names titled, others in lower
// case), as HTTP/2 sends every name anyway: names are case-insensitive (RFC 9110 section 5.1).
// docs/decisions.md, 2026-11-27.

/// Room made once for the headers the gateway adds to a request (five, and identity headers
/// on routes that verify one) or a response (three); more still fit, at the map's own cost.
const ADDED_HEADERS: usize = 8;

/// The forwarding rewrite on the upstream request, made on its plain `HeaderMap`.
///
/// The target that goes is the one the gateway routed and inspected: pingora's URI, which the
/// parts keep, not a verbatim copy of what the client sent. So an absolute-form target leaves
/// as origin-form (RFC 9112 section 3.2.1; the host an origin server would read from it was
/// checked against `Host`, which goes instead). A target that is not UTF-8 would leave as the
/// URI's rendering of it, but pingora 0.9.1's parser refuses those with 400 first.
fn rewrite_upstream_request(request: &mut RequestHeader, forwarding: &Forwarding<'_>) {
    let end_stream = request.send_end_stream();
    let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts = http::request::Parts::from(std::mem::replace(request, empty));
    parts.headers.reserve(ADDED_HEADERS);
    forward::rewrite_request(&mut parts.headers, forwarding);
    *request = RequestHeader::from(parts);
    if let Some(end_stream) = end_stream {
        request.set_send_end_stream(end_stream);
    }
}

/// The authority the client asked for: `Host`, else (HTTP/2) `:authority`.
fn requested_authority(request: &RequestHeader) -> Option<&str> {
    request
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri.authority().map(|a| a.as_str()))
}

/// Edit a response's headers as a plain `HeaderMap`, keeping its status and reason phrase.
fn edit_response_headers(response: &mut ResponseHeader, edit: impl FnOnce(&mut HeaderMap)) {
    let reason = response
        .get_reason_phrase()
        .filter(|phrase| Some(*phrase) != response.status.canonical_reason())
        .map(str::to_owned);
    let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts = http::response::Parts::from(std::mem::replace(response, empty));
    parts.headers.reserve(ADDED_HEADERS);
    edit(&mut parts.headers);
    *response = ResponseHeader::from(parts);
    if reason.is_some() {
        let _ = response.set_reason_phrase(reason.as_deref());
    }
}

// A response the gateway builds itself (a refusal, its own endpoints) is hardened through
// pingora's own header methods, which keep its two maps in step.

impl HeaderEdit for ResponseHeader {
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = self.insert_header(name, value);
    }
    fn remove(&mut self, name: &HeaderName) {
        while self.remove_header(name).is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_are_listed_once_each_and_stay_one_ascii_list() {
        let changes =
            |c: &[&str]| changed_fields(&c.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(changes(&[]), None);
        assert_eq!(
            changes(&[
                "neutralised:note.text",
                "disarmed:content.attachment.data:pdf:JavaScript",
                "disarmed:content.attachment.data:pdf:OpenAction",
                "disarmed:photo[0].data:jpeg:exif",
            ])
            .as_deref(),
            Some("note.text, content.attachment.data, photo[0].data")
        );
        assert_eq!(
            changes(&[
                "disarmed:写真.data:png:tEXt",
                "disarmed:a,b:c.data:png:tEXt"
            ])
            .as_deref(),
            Some("%E5%86%99%E7%9C%9F.data, a%2Cb%3Ac.data")
        );
    }

    static PURPOSE: HeaderName = HeaderName::from_static("phr-purpose");

    fn forwarding<'a>(
        request_id: &'a HeaderValue,
        identity: &'a crate::identity::IdentityHeaders,
    ) -> Forwarding<'a> {
        Forwarding {
            client_ip: Some("192.0.2.7".parse().unwrap()),
            host: Some("phr.example.test"),
            request_id,
            default_host: "backend.internal",
            identity_headers: identity,
            principal: None,
            purpose_header: &PURPOSE,
        }
    }

    #[test]
    fn the_upstream_request_keeps_its_line_and_loses_what_the_client_may_not_say() {
        let request_id = HeaderValue::from_static("rid-1");
        let identity = crate::identity::IdentityHeaders::default();
        for (target, version, sent) in [
            (
                "/fhir/Patient/1?x=1",
                http::Version::HTTP_11,
                "/fhir/Patient/1?x=1",
            ),
            ("/fhir/Patient/1", http::Version::HTTP_2, "/fhir/Patient/1"),
            (
                "https://phr.example.test/fhir/Patient/1?x=1",
                http::Version::HTTP_11,
                "/fhir/Patient/1?x=1",
            ),
        ] {
            // As pingora's parser stores it: an absolute-form target is kept verbatim.
            let mut request = RequestHeader::build("PUT", b"/", None).expect("request");
            request.set_raw_path(target.as_bytes()).expect("target");
            request.set_version(version);
            request.set_send_end_stream(false);
            request
                .insert_header("X-Forwarded-For", "10.9.9.9")
                .unwrap();
            request
                .insert_header("Accept", "application/fhir+json")
                .unwrap();
            rewrite_upstream_request(&mut request, &forwarding(&request_id, &identity));
            assert_eq!(request.method, http::Method::PUT, "{target}");
            assert_eq!(request.version, version, "{target}");
            assert_eq!(request.raw_path(), sent.as_bytes(), "{target}");
            assert_eq!(request.headers["x-forwarded-for"], "192.0.2.7", "{target}");
            assert_eq!(
                request.headers["accept"], "application/fhir+json",
                "{target}"
            );
            assert_eq!(request.headers["x-request-id"], "rid-1", "{target}");
            let end_stream = (version == http::Version::HTTP_2).then_some(false);
            assert_eq!(request.send_end_stream(), end_stream, "{target}");
        }
    }

    #[test]
    fn the_response_keeps_its_status_and_reason_through_hardening() {
        let mut response = ResponseHeader::build(299, None).expect("response");
        response.set_reason_phrase(Some("Fine Anyway")).unwrap();
        response.insert_header("Server", "backend/1.0").unwrap();
        response
            .insert_header("Content-Type", "application/fhir+json")
            .unwrap();
        edit_response_headers(&mut response, harden::harden);
        assert_eq!(response.status.as_u16(), 299);
        assert_eq!(response.get_reason_phrase(), Some("Fine Anyway"));
        assert!(response.headers.get("server").is_none());
        assert_eq!(response.headers["content-type"], "application/fhir+json");
        assert!(response.headers.contains_key("strict-transport-security"));

        let mut plain = ResponseHeader::build(404, None).expect("response");
        edit_response_headers(&mut plain, |_| {});
        assert_eq!(plain.get_reason_phrase(), Some("Not Found"));
    }

    fn error(etype: ErrorType, source: ErrorSource) -> Box<Error> {
        let mut e = Error::new(etype);
        e.esource = source;
        e
    }

    #[test]
    fn failures_map_to_what_the_client_is_told() {
        use ErrorSource::*;
        use ErrorType::*;
        let cases = [
            (ConnectRefused, Upstream, Some(Reason::UpstreamUnavailable)),
            (
                TLSHandshakeFailure,
                Upstream,
                Some(Reason::UpstreamUnavailable),
            ),
            (
                Custom("InvalidChunk"),
                Downstream,
                Some(Reason::ProtocolMalformedBody),
            ),
            (
                ReadTimedout,
                Downstream,
                Some(Reason::ProtocolRequestTimeout),
            ),
            (ReadError, Downstream, None),
            (WriteError, Downstream, None),
            (ConnectionClosed, Downstream, None),
            (InternalError, Internal, Some(Reason::GatewayInternal)),
            (
                Custom(AUDIT_UNAVAILABLE),
                Internal,
                Some(Reason::AuditUnavailable),
            ),
        ];
        for (etype, source, expected) in cases {
            let e = error(etype.clone(), source.clone());
            assert_eq!(failure_reason(&e), expected, "{etype:?} from {source:?}");
        }
    }
}
