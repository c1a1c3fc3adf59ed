//! Requests refused by pingora's HTTP/1 parser, before any gateway hook runs (R-LOG-1,
//! R-WAF-3).
//!
//! pingora answers a request head it cannot parse itself — a bare `400` carrying its own
//! `Server: Pingora` — and closes the connection; no `ProxyHttp` hook ever sees that request,
//! so it left no access record. The public listener's connections now pass through [`Tap`],
//! which notices pingora's own answer going out, and [`RecordingProxy`] records it once
//! pingora is done with the connection: `protocol.unparsable_head`, status 400, the client
//! and the TLS version, nothing of the head itself (it may hold a patient's identifier in its
//! path, R-LOG-5). The answer has left by then, so this record alone does not hold a
//! response back (R-LOG-1's fail-closed wait has no response of the gateway's to hold).

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::audit::record::AccessRecord;
use crate::audit::AuditSink;
use crate::decision::Reason;

/// The head of the answer pingora writes for a request it cannot parse
/// (`pingora_core::protocols::http::error_resp`): a 400 whose head names pingora as its
/// server. The gateway's own answers never carry that banner (it writes its refusals itself,
/// and strips an upstream's `Server`).
fn is_parser_refusal(written: &[u8]) -> bool {
    const STATUS_LINE: &[u8] = b"HTTP/1.1 400 Bad Request\r\n";
    if !written.starts_with(STATUS_LINE) {
        return false;
    }
    let window = &written[..written.len().min(512)];
    let head = memchr::memmem::find(window, b"\r\n\r\n").map_or(window, |end| &window[..end]);
    head.split(|&b| b == b'\n')
        .any(|line| line.trim_ascii().eq_ignore_ascii_case(b"server: pingora"))
}

/// What is known of a request pingora refused, taken while the connection is still open.
struct Refused {
    at: SystemTime,
    client: String,
    tls: Option<&'static str>,
}

impl Refused {
    fn record(self) -> AccessRecord {
        AccessRecord {
            time: crate::audit::record::format_time(self.at.into()),
            request_id: uuid::Uuid::now_v7().to_string(),
            client: self.client,
            tls: self.tls,
            // The method is part of what did not parse: left empty, as the path is.
            decision: "refuse",
            reason: Some(Reason::ProtocolUnparsableHead.code()),
            status: Reason::ProtocolUnparsableHead.status(),
            bytes_out: Some(0),
            ..AccessRecord::default()
        }
    }
}

/// A client connection as pingora reads and writes it, watched for pingora's own refusal.
pub struct Tap {
    inner: Stream,
    refused: Arc<Mutex<Option<Refused>>>,
}

impl Tap {
    fn notice(&self, written: &[u8]) {
        if !is_parser_refusal(written) {
            return;
        }
        let refused = Refused {
            at: SystemTime::now(),
            client: self
                .inner
                .get_socket_digest()
                .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
                .map_or_else(String::new, |ip| ip.to_string()),
            tls: self
                .inner
                .get_ssl_digest()
                .and_then(|d| crate::proxy::tls_version_label(&d.version)),
        };
        if let Ok(mut slot) = self.refused.lock() {
            *slot = Some(refused);
        }
    }
}

impl fmt::Debug for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tap").field("inner", &self.inner).finish()
    }
}

impl AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // One comparison of the first bytes per write; the search only on a 400.
        if buf.first() == Some(&b'H') {
            self.notice(buf);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            if first.first() == Some(&b'H') {
                self.notice(first);
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Tap {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Tap {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Tap {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Tap {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> std::time::Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> std::time::Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Tap {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Tap {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Tap {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// A server app (pingora's HTTP proxy) whose connections are [`Tap`]ped, and whose parser's
/// refusals are recorded in the audit trail.
pub struct RecordingProxy<A> {
    inner: Arc<A>,
    audit: AuditSink,
}

impl<A> RecordingProxy<A> {
    /// Wrap `inner`, recording its parser's refusals in `audit`.
    pub fn new(inner: A, audit: AuditSink) -> Self {
        RecordingProxy {
            inner: Arc::new(inner),
            audit,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for RecordingProxy<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // A kept-alive connection comes back already tapped.
        let tapped = stream
            .as_any()
            .downcast_ref::<Tap>()
            .map(|tap| Arc::clone(&tap.refused));
        let (stream, refused): (Stream, _) = match tapped {
            Some(refused) => (stream, refused),
            None => {
                let refused = Arc::new(Mutex::new(None));
                let tap = Tap {
                    inner: stream,
                    refused: Arc::clone(&refused),
                };
                (Box::new(tap), refused)
            }
        };
        let reused = self.inner.process_new(stream, shutdown).await;
        let taken = refused.lock().ok().and_then(|mut slot| slot.take());
        if let Some(refused) = taken {
            self.audit.record_access_detached(refused.record());
            // Counted where every other request is, so its alerts see scanners' probes too.
            if let Some(m) = crate::metrics::metrics() {
                let reason = Reason::ProtocolUnparsableHead;
                m.count_request("-", "refuse", reason.code(), reason.status());
            }
        }
        reused
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingora_s_own_400_is_told_from_the_gateway_s_answers() {
        // What pingora 0.9.1 writes for a head it cannot parse.
        let pingora = b"HTTP/1.1 400 Bad Request\r\nServer: Pingora\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\nCache-Control: private, no-store\r\n\r\n";
        assert!(is_parser_refusal(pingora));
        let lower = b"HTTP/1.1 400 Bad Request\r\nserver: Pingora\r\ncontent-length: 0\r\n\r\n";
        assert!(is_parser_refusal(lower));
        // The gateway's own refusals and answers carry its problem body and request id.
        for gateway in [
            &b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\nx-request-id: 1\r\n\r\n{}"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nPingora",
            b"HTTP/1.1 502 Bad Gateway\r\nServer: Pingora\r\n\r\n",
            b"{\"note\":\"HTTP/1.1 400 Pingora\"}",
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\n\r\nServer: Pingora",
            b"HTTP/1.1 400 Bad Request\r\nX-Note: Server: Pingora\r\n\r\n",
        ] {
            assert!(!is_parser_refusal(gateway), "{gateway:?}");
        }
    }
}
