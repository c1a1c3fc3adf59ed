//! The admin listener's endpoints. JSON in and out (metrics in Prometheus text, the report
//! also in Markdown). docs/operations.md lists them with examples.
//!
//! | call | does |
//! |---|---|
//! | `GET /healthz` | 200 while the process serves (no credential, not recorded) |
//! | `GET /readyz` | 200 when the audit store writes, 503 otherwise (no credential, not recorded) |
//! | `GET /status` | policy, certificate, audit, JWKS, mode, connections |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /report[?format=md]` | the compliance report (R-CMP-1) |
//! | `POST /reload` | reload the policy file |
//! | `POST /mode` | `{"mode": "normal" \| "stopped" \| "read-only", "retry_after_secs": N}` |
//! | `POST /subjects/stop`, `POST /subjects/resume` | `{"subject": "..."}` (R-AZ-7) |
//! | `POST /revoke` | `{"session": "<issuer>\|<sid>"}`, `{"subject": "..."}` or `{"token_id": "..."}` |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use serde_json::json;

use super::{authenticate, Caller};
use crate::audit::StateEvent;
use crate::controls::Mode;
use crate::server::Shared;

/// Largest request body an admin call may send.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Time a client gets for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin listener as a background service of the pingora server.
pub struct AdminListener {
    shared: Shared,
    acceptor: tokio_rustls::TlsAcceptor,
    socket: std::sync::Mutex<Option<std::net::TcpListener>>,
}

impl AdminListener {
    /// A listener on an already bound socket.
    pub fn new(
        shared: Shared,
        config: rustls::ServerConfig,
        socket: std::net::TcpListener,
    ) -> Self {
        AdminListener {
            shared,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            socket: std::sync::Mutex::new(Some(socket)),
        }
    }
}

#[async_trait::async_trait]
impl BackgroundService for AdminListener {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let socket = self.socket.lock().ok().and_then(|mut s| s.take());
        let listener = match socket.map(|s| {
            s.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(s)
        }) {
            Some(Ok(listener)) => listener,
            Some(Err(e)) => {
                tracing::error!("admin listener cannot start: {e}");
                return;
            }
            None => return,
        };
        tracing::info!(addr = ?listener.local_addr().ok(), "admin listener ready");
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let acceptor = self.acceptor.clone();
                        let shared = self.shared.clone();
                        tokio::spawn(serve_connection(shared, acceptor, tcp, peer));
                    }
                    Err(e) => {
                        tracing::warn!("admin accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }
}

async fn serve_connection(
    shared: Shared,
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(%peer, "admin TLS handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    let certificate: Option<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first().cloned());
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        let certificate = certificate.clone();
        async move { Ok::<_, Infallible>(handle(&shared, peer, certificate.as_ref(), request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
    if let Err(e) = connection.await {
        tracing::debug!(%peer, "admin connection ended: {e}");
    }
}

/// One answer: status, content type, body, and what the state log says it did.
struct Answer {
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    outcome: String,
}

impl Answer {
    fn json(status: StatusCode, value: serde_json::Value, outcome: impl Into<String>) -> Self {
        Answer {
            status,
            content_type: "application/json",
            body: Bytes::from(serde_json::to_vec_pretty(&value).unwrap_or_default()),
            outcome: outcome.into(),
        }
    }

    fn error(status: StatusCode, message: &str) -> Self {
        Answer::json(status, json!({ "error": message }), message)
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() = self.status;
        if let Ok(value) = http::HeaderValue::from_str(self.content_type) {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, value);
        }
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        // The admin listener answers over TLS too: HSTS and nosniff as on the proxy's (R-TLS-3).
        crate::harden::harden(response.headers_mut());
        response
    }
}

async fn handle(
    shared: &Shared,
    peer: SocketAddr,
    certificate: Option<&CertificateDer<'static>>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // Health probes: no credential (load balancers and systemd call them), not recorded.
    match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => {
            return Answer::json(StatusCode::OK, json!({"status": "ok"}), "").into_response()
        }
        (&Method::GET, "/readyz") => return readiness(shared).into_response(),
        _ => {}
    }
    let snapshot = shared.store.current();
    let caller = authenticate(
        &snapshot,
        Some(peer.ip()),
        certificate,
        request.headers(),
        crate::identity::unix_now(),
    );
    let action = format!("{method} {path}");
    let allowed = matches!(caller, Caller::Admin { .. });
    let (answer, admin, credential) = match caller {
        Caller::Refused {
            status,
            credential,
            why,
        } => (
            Answer::error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
                &why,
            ),
            "-".to_owned(),
            credential,
        ),
        Caller::Admin { name, credential } => {
            let answer = endpoint(shared, &name, request).await;
            (answer, name, credential)
        }
    };
    if let Some(m) = crate::metrics::metrics() {
        m.admin_calls
            .with_label_values(&[if allowed { "allowed" } else { "refused" }])
            .inc();
    }
    // Every call, allowed or refused, is in the state log (R-AUTH-4, R-LOG-4). A call that
    // cannot be recorded is answered 503 (its own change, if any, was recorded already).
    let event = StateEvent::AdminCall {
        admin: admin.clone(),
        credential: credential.name().to_owned(),
        action: action.clone(),
        status: answer.status.as_u16(),
        outcome: answer.outcome.clone(),
    };
    if let Err(e) = shared.audit.record_state(event).await {
        tracing::error!(admin, action, "admin call could not be recorded: {e}");
        return Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the call could not be recorded in the state log",
        )
        .into_response();
    }
    tracing::info!(admin, action, status = answer.status.as_u16(), "admin call");
    answer.into_response()
}

fn readiness(shared: &Shared) -> Answer {
    let audit = shared.audit.stats();
    let mode = shared.controls.mode();
    let body = json!({
        "ready": audit.available,
        "audit_available": audit.available,
        "mode": mode.name(),
    });
    // A stopped gateway stays ready: users must reach it to be told it is stopped (R-OPS-1).
    let status = if audit.available {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Answer::json(status, body, "")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeRequest {
    mode: Mode,
    retry_after_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectRequest {
    subject: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    session: Option<String>,
    subject: Option<String>,
    token_id: Option<String>,
}

async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
) -> Result<T, Answer> {
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| Answer::error(StatusCode::BAD_REQUEST, &format!("request body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| Answer::error(StatusCode::BAD_REQUEST, &format!("request body: {e}")))
}

async fn endpoint(shared: &Shared, admin: &str, request: Request<Incoming>) -> Answer {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let recorded = |e: crate::audit::AuditError| {
        Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("not done: the change could not be recorded: {e}"),
        )
    };
    match (method, path.as_str()) {
        (Method::GET, "/status") => Answer::json(StatusCode::OK, status(shared), "status read"),
        (Method::GET, "/metrics") => {
            let text = crate::metrics::metrics().map_or_else(String::new, |m| {
                m.observe(&shared.readings());
                m.render()
            });
            Answer {
                status: StatusCode::OK,
                content_type: crate::metrics::CONTENT_TYPE,
                body: Bytes::from(text),
                outcome: "metrics read".into(),
            }
        }
        (Method::GET, "/report") => {
            let report = crate::report::build(&shared.store.current(), Some(&shared.readings()));
            if query.split('&').any(|p| p == "format=md") {
                Answer {
                    status: StatusCode::OK,
                    content_type: "text/markdown; charset=utf-8",
                    body: Bytes::from(report.to_markdown()),
                    outcome: "report read".into(),
                }
            } else {
                Answer::json(
                    StatusCode::OK,
                    serde_json::to_value(&report).unwrap_or_default(),
                    "report read",
                )
            }
        }
        (Method::POST, "/reload") => match shared.reload_policy("admin").await {
            Ok(snapshot) => Answer::json(
                StatusCode::OK,
                json!({"version": snapshot.version.to_string()}),
                format!("policy {} in service", snapshot.version.short()),
            ),
            Err(e) => Answer::json(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": e, "running": shared.store.current().version.to_string()}),
                "reload refused; the running policy stays",
            ),
        },
        (Method::POST, "/mode") => {
            let body: ModeRequest = match read_json(request).await {
                Ok(b) => b,
                Err(answer) => return answer,
            };
            let retry_after_secs = body
                .retry_after_secs
                .unwrap_or(crate::controls::DEFAULT_RETRY_AFTER_SECS);
            let event = StateEvent::ModeChanged {
                mode: body.mode,
                retry_after_secs,
                by: admin.to_owned(),
            };
            match shared.controls.change(&shared.audit, event).await {
                Ok(_) => Answer::json(
                    StatusCode::OK,
                    json!({"mode": body.mode.name(), "retry_after_secs": retry_after_secs}),
                    format!("mode set to {}", body.mode.name()),
                ),
                Err(e) => recorded(e),
            }
        }
        (Method::POST, "/subjects/stop" | "/subjects/resume") => {
            let body: SubjectRequest = match read_json(request).await {
                Ok(b) => b,
                Err(answer) => return answer,
            };
            if body.subject.is_empty() {
                return Answer::error(StatusCode::BAD_REQUEST, "subject must not be empty");
            }
            let stop = path == "/subjects/stop";
            let event = if stop {
                StateEvent::SubjectStopped {
                    subject: body.subject.clone(),
                    by: admin.to_owned(),
                }
            } else {
                StateEvent::SubjectResumed {
                    subject: body.subject.clone(),
                    by: admin.to_owned(),
                }
            };
            match shared.controls.change(&shared.audit, event).await {
                Ok(_) => Answer::json(
                    StatusCode::OK,
                    json!({"subject": body.subject, "stopped": stop}),
                    if stop {
                        "subject stopped"
                    } else {
                        "subject resumed"
                    },
                ),
                Err(e) => recorded(e),
            }
        }
        (Method::POST, "/revoke") => {
            let body: RevokeRequest = match read_json(request).await {
                Ok(b) => b,
                Err(answer) => return answer,
            };
            let by = admin.to_owned();
            let event = match (body.session, body.subject, body.token_id) {
                (Some(session), None, None) => StateEvent::SessionEnded {
                    session,
                    reason: format!("revoked by {by}"),
                },
                (None, Some(subject), None) => StateEvent::SubjectRevoked {
                    subject,
                    at: crate::identity::unix_now(),
                    by,
                },
                (None, None, Some(token_id)) => StateEvent::TokenRevoked { token_id, by },
                _ => {
                    return Answer::error(
                        StatusCode::BAD_REQUEST,
                        "give exactly one of session, subject, token_id",
                    )
                }
            };
            let what = match &event {
                StateEvent::SessionEnded { .. } => "session revoked",
                StateEvent::SubjectRevoked { .. } => "subject's sessions revoked",
                _ => "token revoked",
            };
            match shared.sessions.revoke(&shared.audit, event).await {
                Ok(seq) => Answer::json(
                    StatusCode::OK,
                    json!({"revoked": what, "state_seq": seq}),
                    what,
                ),
                Err(e) => recorded(e),
            }
        }
        (
            _,
            "/status" | "/metrics" | "/report" | "/reload" | "/mode" | "/subjects/stop"
            | "/subjects/resume" | "/revoke",
        ) => Answer::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here"),
        _ => Answer::error(StatusCode::NOT_FOUND, "no such admin endpoint"),
    }
}

fn status(shared: &Shared) -> serde_json::Value {
    let snapshot = shared.store.current();
    let audit = shared.audit.stats();
    let now = crate::identity::unix_now();
    let expires = shared.certificates.expires_at();
    let loaded = snapshot
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "node": snapshot.gateway.node_id,
        "mode": shared.controls.mode().name(),
        "retry_after_secs": shared.controls.retry_after(),
        "policy": {
            "version": snapshot.version.to_string(),
            "source": snapshot.source.display().to_string(),
            "loaded_at": loaded,
        },
        "tls": {
            "certificate_expires_at": expires,
            "certificate_expires_in_secs": expires.map(|e| e - now),
            "allow_tls12": snapshot.tls.allow_tls12,
        },
        "audit": {
            "available": audit.available,
            "access_records": audit.access_appended,
            "state_events": audit.state_appended,
            "access_checkpoint": audit.access_checkpoint,
            "state_checkpoint": audit.state_checkpoint,
            "queue_depth": audit.queue_depth,
            "access_records_lost": audit.access_lost,
        },
        "jwks": snapshot.identity.issuers.iter().map(|i| json!({
            "issuer": i.id,
            "age_secs": i.keys.age().as_secs(),
        })).collect::<Vec<_>>(),
        "sessions_active": shared.sessions.active(),
        "subjects_stopped": shared.controls.stopped_subjects(),
        "connections_open": shared.connections.open(),
    })
}
