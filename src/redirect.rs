//! The optional plain listener: it serves nothing but `308 Permanent Redirect` to https
//! (R-TLS-1: no plaintext listener except one that redirects). A redirect built from the
//! request's `Host` names only a host the policy serves (`[listeners] hosts`, R-NET-2), so
//! the gateway's own plain origin never sends a client to another site. Every answer is
//! recorded in the access trail like the public listener's (R-LOG-1): a client still sending
//! in plaintext is something the security team should see.

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use crate::audit::{self, AccessRecord, AuditSink};
use crate::decision::{Outcome, Reason};
use crate::limits::connections::{is_trusted, ConnectionPlan, OpenPerAddress};
use crate::policy::{PolicyStore, Snapshot};
use crate::protocol::serves_host;
use crate::proxy::new_request_id;

/// Answers every request with a redirect to the same path over https.
pub struct RedirectToHttps {
    host: Option<String>,
    https_port: u16,
    /// Where the hosts served are read, per request, so a reload applies here too.
    policy: Option<Arc<PolicyStore>>,
    /// Where each answer is recorded.
    audit: Option<AuditSink>,
    /// Open connections per client address, held to `limits.connections_per_client` as the
    /// public listener's are.
    open: Mutex<OpenPerAddress>,
}

/// Why no redirect is given.
#[derive(Debug, PartialEq, Eq)]
pub enum NoRedirect {
    /// No `Host`, or one that is not a plain name or address.
    UnsafeHost,
    /// A host `[listeners] hosts` does not list.
    HostNotServed,
}

impl RedirectToHttps {
    /// `host`: the configured redirect host (may hold a port); `None` to use the request's.
    pub fn new(host: Option<String>, https_port: u16) -> Self {
        RedirectToHttps {
            host,
            https_port,
            policy: None,
            audit: None,
            open: Mutex::default(),
        }
    }

    /// Record every answer in `audit`'s access log.
    pub fn recording(mut self, audit: AuditSink) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Redirect only to the hosts the policy in force serves.
    pub fn serving(mut self, policy: Arc<PolicyStore>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The `Location` for a request, given the hosts served (empty: any).
    pub fn location(
        &self,
        served: &[String],
        request_host: Option<&str>,
        path_and_query: &str,
    ) -> Result<String, NoRedirect> {
        let host = match &self.host {
            Some(h) => h.clone(),
            None => {
                let host = request_host.ok_or(NoRedirect::UnsafeHost)?;
                // Keep only the host part, and only if it is a plain name or address, so the
                // redirect cannot be pointed at a crafted target.
                let name = match host.rsplit_once(':') {
                    Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                    _ => host,
                };
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
                {
                    return Err(NoRedirect::UnsafeHost);
                }
                if !serves_host(served, name.as_bytes()) {
                    return Err(NoRedirect::HostNotServed);
                }
                match self.https_port {
                    443 => name.to_owned(),
                    port => format!("{name}:{port}"),
                }
            }
        };
        let path = if path_and_query.starts_with('/') {
            path_and_query
        } else {
            "/"
        };
        Ok(format!("https://{host}{path}"))
    }
}

#[async_trait]
impl HttpServerApp for RedirectToHttps {
    /// One request per connection, as pingora's own `ServeHttp` loop reads it, with two
    /// changes. The head must arrive within `limits.header_timeout_secs` (pingora's loop waits
    /// for ever: a slow client could hold connections open until the process runs out of
    /// them, the TLS listener's too). And a head pingora cannot read, which its loop logs at
    /// ERROR and drops without a word (a scanner on the plain port would flood the log and
    /// leave no trace in the audit), is answered `400` and recorded. A redirect's connection
    /// is not kept alive: the client goes to another port over TLS.
    async fn process_new_http(
        self: &Arc<Self>,
        mut http: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let snapshot = self.policy.as_ref().map(|p| p.current());
        let default_plan = ConnectionPlan::default();
        let plan = snapshot
            .as_ref()
            .map_or(&default_plan, |s| &s.limits.connections);
        let peer = peer_ip(&http);
        let exempt = snapshot
            .as_ref()
            .zip(peer)
            .is_some_and(|(s, ip)| is_trusted(&s.network.trusted_proxies, ip));
        let per_client = if exempt { 0 } else { plan.per_client };
        let Some(_admitted) = self.admit(peer, per_client) else {
            if let Some(m) = crate::metrics::metrics() {
                m.connections_cut.with_label_values(&["limit"]).inc();
            }
            return None;
        };
        let read = tokio::time::timeout(plan.header_timeout, http.read_request()).await;
        let (started, arrived) = (Instant::now(), SystemTime::now());
        let request_id = new_request_id();
        http.set_keepalive(None);
        let response = match read {
            Err(_) => {
                if let Some(m) = crate::metrics::metrics() {
                    m.connections_cut
                        .with_label_values(&["header_timeout"])
                        .inc();
                }
                return None;
            }
            // The client closed before sending a request.
            Ok(Ok(false)) => return None,
            Ok(Ok(true)) => self.answer(&http, snapshot.as_deref(), &request_id, started, arrived),
            // The client went away, or its connection failed, mid-head: no one to answer.
            Ok(Err(e)) if *e.etype() != pingora::ErrorType::InvalidHTTPHeader => return None,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "redirect listener: unreadable request head");
                // Nothing of an unreadable head is trusted, a forwarded address neither.
                self.record(
                    peer,
                    &request_id,
                    "-",
                    Reason::ProtocolUnparsableHead,
                    started,
                    arrived,
                );
                Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .header(http::header::CONTENT_LENGTH, "0")
                    .header("x-request-id", request_id)
                    .body(Vec::new())
                    .unwrap_or_default()
            }
        };
        let (parts, _) = response.into_parts();
        if let Err(e) = http.write_response_header(Box::new(parts.into())).await {
            tracing::debug!(error = %e, "redirect listener: the answer could not be written");
            return None;
        }
        let persistent = HttpPersistentSettings::for_session(&http);
        match http.finish().await {
            Ok(reusable) => reusable.map(|s| ReusedHttpStream::from_reusable_stream(s, persistent)),
            Err(_) => None,
        }
    }
}

/// The address the connection comes from.
fn peer_ip(session: &ServerSession) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// One admitted connection; forgotten when dropped.
struct Admitted<'a> {
    open: &'a Mutex<OpenPerAddress>,
    client: Option<IpAddr>,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client {
            self.open
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .leave(client);
        }
    }
}

impl RedirectToHttps {
    /// Admit a connection from `peer`, or `None` when its address has `per_client` open
    /// already (0: no limit; a trusted proxy's, as on the public listener). One that is not
    /// from an inet socket has nothing to be counted under.
    fn admit(&self, peer: Option<IpAddr>, per_client: u32) -> Option<Admitted<'_>> {
        if let Some(client) = peer {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            if !open.enter(client, per_client) {
                return None;
            }
        }
        Some(Admitted {
            open: &self.open,
            client: peer,
        })
    }

    /// The answer to a request read whole: the redirect, or why there is none; recorded.
    fn answer(
        &self,
        session: &ServerSession,
        snapshot: Option<&Snapshot>,
        request_id: &http::HeaderValue,
        started: Instant,
        arrived: SystemTime,
    ) -> Response<Vec<u8>> {
        let request = session.req_header();
        let host = request
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok());
        let path = request.uri.path_and_query().map_or("/", |p| p.as_str());
        let served = snapshot.map_or(&[][..], |s| &s.listeners.hosts[..]);
        let builder = Response::builder()
            .header(http::header::CONTENT_LENGTH, "0")
            .header("x-request-id", request_id.clone());
        let (response, reason) = match self.location(served, host, path) {
            Ok(location) => (
                builder
                    .status(StatusCode::PERMANENT_REDIRECT)
                    .header(http::header::LOCATION, location),
                Reason::ProtocolHttpsRequired,
            ),
            Err(NoRedirect::UnsafeHost) => (
                builder.status(StatusCode::BAD_REQUEST),
                Reason::ProtocolInvalidHost,
            ),
            Err(NoRedirect::HostNotServed) => (
                builder.status(StatusCode::MISDIRECTED_REQUEST),
                Reason::RouteHostNotServed,
            ),
        };
        let client = match snapshot {
            Some(s) => s.network.client_address(peer_ip(session), &request.headers),
            None => peer_ip(session),
        };
        self.record(
            client,
            request_id,
            request.method.as_str(),
            reason,
            started,
            arrived,
        );
        response.body(Vec::new()).unwrap_or_default()
    }

    /// Record an answer in the access trail and count it.
    fn record(
        &self,
        client: Option<IpAddr>,
        request_id: &http::HeaderValue,
        method: &str,
        reason: Reason,
        started: Instant,
        arrived: SystemTime,
    ) {
        let outcome = Outcome::Refused(reason);
        if let Some(audit) = &self.audit {
            // Detached, as for a lost connection: the answer holds nothing to keep back
            // until the record is durable.
            audit.record_access_detached(AccessRecord {
                time: audit::record::format_time(arrived.into()),
                request_id: request_id.to_str().unwrap_or("-").to_owned(),
                client: client.map_or_else(String::new, |ip| ip.to_string()),
                tls: None,
                principal: None,
                client_id: None,
                method: method.to_owned(),
                route: None,
                template: None,
                purpose: None,
                category: None,
                decision: outcome.decision(),
                reason: outcome.reason(),
                status: reason.status(),
                bytes_in: 0,
                bytes_out: Some(0),
                upstream_us: None,
                total_us: started.elapsed().as_micros() as u64,
                rules: Vec::new(),
                changes: Vec::new(),
            });
        }
        if let Some(m) = crate::metrics::metrics() {
            m.count_request("-", outcome.decision(), outcome.code(), reason.status());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// R-NET-3: the plain listener holds each address to its open connections, an IPv6
    /// client by its /64; a connection that ends frees its place.
    #[test]
    fn connections_per_address_are_bounded() {
        let r = RedirectToHttps::new(None, 8443);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let first = r.admit(Some(a), 2).expect("first");
        let second = r.admit(Some(a), 2).expect("second");
        assert!(
            r.admit(Some(a), 2).is_none(),
            "a third from the same address"
        );
        assert!(r.admit(Some("192.0.2.8".parse().unwrap()), 2).is_some());
        drop(first);
        let third = r.admit(Some(a), 2).expect("a place freed");
        drop((second, third));
        let v6 = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let _one = r.admit(v6("2001:db8:1:2::1"), 1).expect("first of the /64");
        assert!(r.admit(v6("2001:db8:1:2::ffff"), 1).is_none(), "same /64");
        assert!(r.admit(v6("2001:db8:1:3::1"), 1).is_some(), "another /64");
        // 0: no limit; no inet address: nothing to count it under.
        let many: Vec<_> = (0..5).map(|_| r.admit(Some(a), 0)).collect();
        assert!(many.iter().all(Option::is_some));
        assert!(r.admit(None, 1).is_some() && r.admit(None, 1).is_some());
    }

    #[test]
    fn redirects_to_same_path_on_https() {
        let r = RedirectToHttps::new(None, 8443);
        assert_eq!(
            r.location(&[], Some("phr.example.jp:8080"), "/fhir/Patient/1?x=1")
                .as_deref(),
            Ok("https://phr.example.jp:8443/fhir/Patient/1?x=1")
        );
        let r = RedirectToHttps::new(None, 443);
        assert_eq!(
            r.location(&[], Some("phr.example.jp"), "/").as_deref(),
            Ok("https://phr.example.jp/")
        );
    }

    /// R-NET-2: with `[listeners] hosts` set, a request naming another host gets no
    /// redirect there (an open redirect on the gateway's own origin otherwise).
    #[test]
    fn redirects_only_to_a_host_served() {
        let served = ["phr.example.jp".to_owned(), "127.0.0.1".to_owned()];
        let r = RedirectToHttps::new(None, 8443);
        for (host, expected) in [
            ("phr.example.jp", Ok("https://phr.example.jp:8443/a")),
            ("PHR.example.jp.:8080", Ok("https://PHR.example.jp.:8443/a")),
            ("127.0.0.1:8080", Ok("https://127.0.0.1:8443/a")),
            ("evil.example", Err(NoRedirect::HostNotServed)),
            ("evil.example:8080", Err(NoRedirect::HostNotServed)),
            (
                "phr.example.jp.evil.example",
                Err(NoRedirect::HostNotServed),
            ),
        ] {
            assert_eq!(
                r.location(&served, Some(host), "/a").as_deref(),
                expected.as_ref().copied(),
                "{host}"
            );
        }
    }

    #[test]
    fn configured_host_wins_and_crafted_hosts_are_refused() {
        let r = RedirectToHttps::new(Some("phr.example.jp".into()), 8443);
        assert_eq!(
            r.location(&[], Some("evil.example"), "/a").as_deref(),
            Ok("https://phr.example.jp/a")
        );
        let r = RedirectToHttps::new(None, 443);
        assert_eq!(
            r.location(&[], Some("evil.example/@x"), "/a"),
            Err(NoRedirect::UnsafeHost)
        );
        assert_eq!(r.location(&[], None, "/a"), Err(NoRedirect::UnsafeHost));
    }
}
