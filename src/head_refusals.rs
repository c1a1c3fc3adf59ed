//! Requests the HTTP layers refuse themselves, before any gateway hook runs: heads pingora's
//! HTTP/1 parser cannot read, and HTTP/2 streams (R-LOG-1, R-WAF-3, R-TLS-3).
//!
//! pingora answers a request head its HTTP/1 parser cannot read with its own pre-generated
//! error — a bare `400` carrying `Server: Pingora`, no problem body, no HSTS — and closes the
//! connection; no `ProxyHttp` hook ever sees that request. The public listener's connections
//! pass through [`Tap`], which notices pingora's answer as pingora writes it and writes the
//! gateway's own in its place: `400`, the problem body with `protocol.unparsable_head` and a
//! request id, the hardening headers. Before the first byte of it goes out, the access record
//! is written as every other refusal's is: the client and the TLS version, nothing of the head
//! itself (it may hold a patient's identifier in its path, R-LOG-5).
//!
//! On HTTP/2 connections the tap reads the server's frames instead and does the same for the
//! streams the HTTP/2 layers refuse themselves (`h2_frames`).

mod h2_frames;

use std::fmt;
use std::future::Future;
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
use crate::decision::{Reason, Refusal};
use h2_frames::{FrameWatch, LayerRefusal, Plan};

/// Whether `written` is the answer pingora writes for a head its parser cannot read
/// (`pingora_core::protocols::http::error_resp`): a `400` naming pingora as its server. The
/// gateway's own answers never carry that banner (it writes its refusals itself, and strips
/// an upstream's `Server`). pingora's other pre-hook refusal, `405` for `CONNECT`, is not
/// made: the server lets `CONNECT` through to the gateway's own steps (`server.rs`).
fn is_parser_refusal(written: &[u8]) -> bool {
    if !written.starts_with(b"HTTP/1.1 400 ") {
        return false;
    }
    let window = &written[..written.len().min(512)];
    let head = memchr::memmem::find(window, b"\r\n\r\n").map_or(window, |end| &window[..end]);
    head.split(|&b| b == b'\n')
        .any(|line| line.trim_ascii().eq_ignore_ascii_case(b"server: pingora"))
}

/// The gateway's answer in place of pingora's: `400` with the problem body, the request id
/// and the hardening every other answer carries (R-TLS-3), and no banner; and its body's
/// length. pingora closes the connection after its own answer; this one says so.
fn gateway_answer(request_id: &str) -> (Vec<u8>, usize) {
    let refusal = Refusal::new(
        Reason::ProtocolUnparsableHead,
        "the request head could not be parsed; the connection is closed",
    );
    let body = crate::decision::problem_body(&refusal, request_id);
    let mut answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         X-Request-Id: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\
         Strict-Transport-Security: {}\r\nX-Content-Type-Options: nosniff\r\nDate: {}\r\n\r\n",
        crate::decision::PROBLEM_CONTENT_TYPE,
        body.len(),
        request_id,
        crate::harden::HSTS.to_str().unwrap_or_default(),
        httpdate::fmt_http_date(SystemTime::now()),
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    (answer, body.len())
}

/// The access record of a request the HTTP layers refused: the client and the TLS version,
/// nothing of the head (the method is part of what did not parse: left empty, as the path
/// is; an HTTP/2 block is not decoded here).
fn refusal_record(
    reason: Reason,
    request_id: String,
    client: String,
    tls: Option<&'static str>,
    bytes_out: usize,
) -> AccessRecord {
    AccessRecord {
        time: crate::audit::record::format_time(SystemTime::now().into()),
        request_id,
        client,
        tls,
        decision: "refuse",
        reason: Some(reason.code()),
        status: reason.status(),
        bytes_out: Some(bytes_out as u64),
        ..AccessRecord::default()
    }
}

/// The access record of a refusal pingora made, being written.
type Recording = Pin<Box<dyn Future<Output = Result<(), crate::audit::AuditError>> + Send>>;

/// A client connection as pingora reads and writes it, watched for pingora's own refusals,
/// which it answers in the gateway's words instead, once their record is written.
pub struct Tap {
    inner: Stream,
    audit: AuditSink,
    /// The record of the refusal being answered; the answer waits for it. In a mutex only
    /// because a connection must be `Sync`: the tap alone polls it, through `&mut self`.
    recording: Mutex<Option<Recording>>,
    /// The gateway's answer going out in place of a refusal of the HTTP layers.
    answer: Option<Answer>,
    /// An HTTP/2 connection's frames as the server writes them; `None` on HTTP/1.
    frames: Option<FrameWatch>,
}

/// The gateway's answer being written in place of a refusal.
struct Answer {
    bytes: Vec<u8>,
    /// How much of it has gone.
    sent: usize,
    /// How many bytes of the write it stands in for: on HTTP/2 the refusal's frame, on
    /// HTTP/1 (`None`) the whole write, pingora's whole answer.
    replaces: Option<usize>,
}

impl Tap {
    fn new(inner: Stream, audit: AuditSink) -> Self {
        let frames =
            matches!(inner.selected_alpn_proto(), Some(ALPN::H2)).then(FrameWatch::default);
        Tap {
            inner,
            audit,
            recording: Mutex::new(None),
            answer: None,
            frames,
        }
    }

    /// If `written` is pingora's own refusal, start its record and make the gateway's answer.
    fn notice(&mut self, written: &[u8]) {
        if !is_parser_refusal(written) {
            return;
        }
        let request_id = uuid::Uuid::now_v7().hyphenated().to_string();
        let (answer, body_len) = gateway_answer(&request_id);
        let reason = Reason::ProtocolUnparsableHead;
        self.begin_answer(reason, request_id, answer, body_len, None);
    }

    /// Start the record of an HTTP/2 layer's refusal and make the gateway's answer.
    fn notice_layer_refusal(&mut self, refusal: &LayerRefusal<'_>) {
        let request_id = uuid::Uuid::now_v7().hyphenated().to_string();
        let date = httpdate::fmt_http_date(SystemTime::now());
        let answer = h2_frames::gateway_answer(refusal, &request_id, &date);
        let replaces = Some(refusal.frame_len);
        self.begin_answer(refusal.reason, request_id, answer, 0, replaces);
    }

    /// Start writing the record of a refusal, which `answer` will follow.
    fn begin_answer(
        &mut self,
        reason: Reason,
        request_id: String,
        answer: Vec<u8>,
        bytes_out: usize,
        replaces: Option<usize>,
    ) {
        let client = self
            .inner
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
            .map_or_else(String::new, |ip| ip.to_string());
        let tls = self
            .inner
            .get_ssl_digest()
            .and_then(|d| crate::proxy::tls_version_label(&d.version));
        let record = refusal_record(reason, request_id, client, tls, bytes_out);
        // Counted where every other request is, so its alerts see scanners' probes too.
        if let Some(m) = crate::metrics::metrics() {
            m.count_request("-", "refuse", reason.code(), reason.status());
        }
        let audit = self.audit.clone();
        let recording: Recording = Box::pin(async move { audit.record_access(record).await });
        if let Ok(slot) = self.recording.get_mut() {
            *slot = Some(recording);
        }
        self.answer = Some(Answer {
            bytes: answer,
            sent: 0,
            replaces,
        });
    }

    /// Write the gateway's answer in place of the write's first `replaced` bytes, after its
    /// record; ready (with all of `replaced` taken) once the whole answer is written. pingora
    /// and h2 write with `write_all`, so a pending write is retried with the same bytes.
    fn poll_answer(
        &mut self,
        cx: &mut Context<'_>,
        replaced: usize,
    ) -> Poll<std::io::Result<usize>> {
        if let Ok(slot) = self.recording.get_mut() {
            if let Some(recording) = slot.as_mut() {
                let Poll::Ready(written) = recording.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                *slot = None;
                // A refusal releases no data: it is sent even when its record could not be
                // written (the store counts the loss), as the gateway's other refusals are.
                if written.is_err() {
                    if let Some(m) = crate::metrics::metrics() {
                        m.audit_write_failures.inc();
                    }
                }
            }
        }
        let Some(answer) = self.answer.as_mut() else {
            return Poll::Ready(Ok(replaced));
        };
        while answer.sent < answer.bytes.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &answer.bytes[answer.sent..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => answer.sent += n,
                other => return other,
            }
        }
        self.answer = None;
        Poll::Ready(Ok(replaced))
    }

    /// A write on an HTTP/2 connection: passed on up to the next refusal of the HTTP/2
    /// layers, which is answered in the gateway's words.
    fn poll_write_frames(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let Some(frames) = self.frames.as_ref() else {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        };
        // Whether these bytes are a refusal's, answered in the gateway's words (and recorded).
        let mut answered = true;
        let written = match self.answer.as_ref().and_then(|a| a.replaces) {
            Some(replaces) => self.poll_answer(cx, replaces),
            None => match frames.plan(buf) {
                Plan::Refusal(refusal) => {
                    self.notice_layer_refusal(&refusal);
                    self.poll_answer(cx, refusal.frame_len)
                }
                Plan::Pass(n) => {
                    answered = false;
                    Pin::new(&mut self.inner).poll_write(cx, &buf[..n])
                }
            },
        };
        if let (Poll::Ready(Ok(n)), Some(frames)) = (&written, self.frames.as_mut()) {
            frames.advance(&buf[..*n], |error| count_http2_error(error, answered));
        }
        written
    }
}

/// Count an error the HTTP/2 layer sent: no request record holds it. `NO_ERROR` is no
/// error (a stream whose answer ended before its body, a connection closed cleanly), and a
/// reset answered in the gateway's words was recorded as the refusal it is.
fn count_http2_error(error: h2_frames::ErrorFrame, answered: bool) {
    let Some(m) = crate::metrics::metrics() else {
        return;
    };
    match error {
        h2_frames::ErrorFrame::Connection(code) if code != 0 => {
            // The connection closed for the client's error: counted with the connections
            // the gateway cut.
            let error = h2_frames::error_name(code);
            tracing::debug!(error, "HTTP/2 connection closed for an error (GOAWAY)");
            let reason = format!("http2_{error}");
            m.connections_cut.with_label_values(&[&reason]).inc();
        }
        h2_frames::ErrorFrame::Stream(code) if code != 0 && !answered => {
            m.http2_streams_reset
                .with_label_values(&[h2_frames::error_name(code)])
                .inc();
        }
        _ => {}
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
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.frames.is_some() {
            return this.poll_write_frames(cx, buf);
        }
        // One comparison of the first bytes per write; the search only on a 400.
        if this.answer.is_none() && buf.first() == Some(&b'H') {
            this.notice(buf);
        }
        if this.answer.is_some() {
            return this.poll_answer(cx, buf.len());
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let first = bufs.iter().find(|b| !b.is_empty());
        if this.frames.is_some() {
            // Not vectored on HTTP/2 (below): h2 sends its slices one by one.
            return this.poll_write_frames(cx, first.map_or(&[][..], |b| &b[..]));
        }
        if let Some(first) = first {
            if this.answer.is_none() && first.first() == Some(&b'H') {
                this.notice(first);
            }
            if this.answer.is_some() {
                // In place of the slice that held pingora's answer; the caller sends the
                // rest again.
                return this.poll_answer(cx, first.len());
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        // h2 then writes a frame's header and its payload in turn, each read here whole.
        self.frames.is_none() && self.inner.is_write_vectored()
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

/// A server app (pingora's HTTP proxy) whose connections are [`Tap`]ped: its parser's
/// refusals are answered in the gateway's words and recorded in the audit trail.
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
        let stream: Stream = if stream.as_any().is::<Tap>() {
            stream
        } else {
            Box::new(Tap::new(stream, self.audit.clone()))
        };
        self.inner.process_new(stream, shutdown).await
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
            b"HTTP/1.1 405 Method Not Allowed\r\nServer: Pingora\r\n\r\n",
            b"{\"note\":\"HTTP/1.1 400 Pingora\"}",
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\n\r\nServer: Pingora",
            b"HTTP/1.1 400 Bad Request\r\nX-Note: Server: Pingora\r\n\r\n",
        ] {
            assert!(!is_parser_refusal(gateway), "{gateway:?}");
        }
    }

    #[test]
    fn the_gateway_s_answer_is_a_hardened_problem_r_tls_3() {
        let (answer, body_len) = gateway_answer("0190-id");
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = response.parse(&answer).expect("parses") else {
            panic!("incomplete head");
        };
        assert_eq!(response.code, Some(400));
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| std::str::from_utf8(h.value).expect("ASCII"))
        };
        let body = &answer[head..];
        assert_eq!(body.len(), body_len);
        assert_eq!(
            header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(header("content-type"), Some("application/problem+json"));
        assert_eq!(header("x-request-id"), Some("0190-id"));
        assert_eq!(header("connection"), Some("close"));
        assert_eq!(
            header("strict-transport-security"),
            Some("max-age=31536000; includeSubDomains")
        );
        assert_eq!(header("x-content-type-options"), Some("nosniff"));
        assert_eq!(header("server"), None);
        let date = header("date").expect("Date");
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
        let problem: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        assert_eq!(problem["reason"], "protocol.unparsable_head");
        assert_eq!(problem["request_id"], "0190-id");
        // Never taken for pingora's own in turn.
        assert!(!is_parser_refusal(&answer));
    }
}
