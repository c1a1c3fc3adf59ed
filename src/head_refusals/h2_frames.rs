//! HTTP/2 streams the HTTP/2 layers refuse themselves, before any gateway hook runs (R-LOG-1,
//! R-WAF-3, R-TLS-3).
//!
//! The `h2` library and pingora's HTTP/2 server refuse some requests before the gateway sees
//! them: a malformed header block (`content-length` on a request that ends with its headers,
//! conflicting or non-numeric lengths, connection-specific fields, a bad `:path`), or a body
//! longer than its length, gets a `RST_STREAM` with `PROTOCOL_ERROR`; an `:authority` that
//! disagrees with `Host` gets pingora's bare `400`; a header list over the HTTP/2 layer's
//! bound gets h2's bare `431`. None of them is recorded, and the answers carry no HSTS.
//!
//! The connection tap reads the frames the server writes (headers only; payloads are
//! skipped) and finds those refusals: a stream's first frame from the server that is a
//! `RST_STREAM` with `PROTOCOL_ERROR`, or a `HEADERS` that ends the stream with a block of a
//! few bytes (every answer of the gateway's own carries a request id, tens of bytes). It
//! writes a `HEADERS` frame in the refusal's place: the status, the request id its record
//! carries, HSTS, `nosniff`, `no-store` and a `Date`. Three things keep the connection sound:
//! the new block only adds literal fields *without indexing* (RFC 7541 section 6.2.2), so the
//! client's HPACK table changes exactly as the library's own block changes it (which is kept,
//! in front); no `DATA` is added, which would consume flow-control window the library does
//! not know of (so no problem body); and a stream is taken as unanswered only when its id is
//! higher than every stream the server has written on (a malformed stream is refused as it
//! opens, so nothing the server wrote can be for it).
//!
//! The same reading finds the `GOAWAY` frames that close a connection for an error (a broken
//! frame or HPACK block, a reset flood: `ENHANCE_YOUR_CALM`), which no request record holds;
//! the tap counts them with the connections the gateway closed. And the `RST_STREAM`s that
//! end single streams for an error without an answer of the gateway's (`REFUSED_STREAM` for a
//! stream over the connection's 100 concurrent ones, which the client may send again;
//! `CANCEL`): the tap counts those too.

use crate::decision::Reason;

/// The frame types and flags read here (RFC 9113 section 6).
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PROTOCOL_ERROR: u32 = 0x1;
const FRAME_HEADER_LEN: usize = 9;

/// A header block the HTTP/2 layers write for their own answers holds only `:status`: one
/// byte when the status is in HPACK's static table, a few when it is a literal.
const LAYER_BLOCK_MAX: usize = 8;

/// HPACK's static-table entry `:status: 400` (RFC 7541 appendix A, index 12), which pingora's
/// own `400` is encoded as.
const STATUS_400: u8 = 0x80 | 12;

/// Where the server's frames are, across writes.
#[derive(Debug, Default)]
pub(super) struct FrameWatch {
    /// The frame header being read, when a write ended inside it.
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
    /// The highest stream id the server has written a frame on.
    highest_answered: u32,
    /// The start of a `GOAWAY`'s or `RST_STREAM`'s payload (which holds its error code) as
    /// it passes, and how much of it has.
    error_frame: Option<ErrorFrameStart>,
}

/// The first bytes of a frame that carries an error code, gathered across writes.
#[derive(Debug)]
struct ErrorFrameStart {
    kind: u8,
    bytes: [u8; 8],
    have: usize,
}

impl ErrorFrameStart {
    /// The payload bytes that end with the error code: a `GOAWAY`'s last stream id and code,
    /// a `RST_STREAM`'s code.
    fn needed(&self) -> usize {
        if self.kind == GOAWAY {
            8
        } else {
            4
        }
    }

    fn error(&self) -> ErrorFrame {
        let at = self.needed() - 4;
        let code = u32::from_be_bytes([
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ]);
        if self.kind == GOAWAY {
            ErrorFrame::Connection(code)
        } else {
            ErrorFrame::Stream(code)
        }
    }
}

/// An error code the server sent, read as its frame went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ErrorFrame {
    /// A `GOAWAY`: the connection ends.
    Connection(u32),
    /// A `RST_STREAM`: one stream ends.
    Stream(u32),
}

/// A refusal the HTTP/2 layers wrote, found at the start of a write.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct LayerRefusal<'a> {
    /// The refusal's frame, whole: what the gateway's answer stands in for.
    pub frame_len: usize,
    pub stream: u32,
    pub reason: Reason,
    /// The header block to keep in front of the gateway's fields: the library's own (whose
    /// effect on the HPACK table must stay), or `:status: 400` in place of a reset.
    pub block: &'a [u8],
}

/// What to do with the bytes of a write.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Plan<'a> {
    /// Pass this many bytes on as they are: up to the next refusal, or all.
    Pass(usize),
    /// The write starts with a refusal to answer in the gateway's words.
    Refusal(LayerRefusal<'a>),
}

/// One frame's header, parsed.
struct Frame {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl Frame {
    fn parse(header: &[u8]) -> Frame {
        Frame {
            len: usize::from(header[0]) << 16
                | usize::from(header[1]) << 8
                | usize::from(header[2]),
            kind: header[3],
            flags: header[4],
            stream: u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff,
        }
    }
}

impl FrameWatch {
    /// Where in `buf` the next refusal is: at its start (answer it), further on (pass what is
    /// before it), or nowhere (pass it all). Reads, does not move: [`Self::advance`] does, over
    /// what was written.
    pub(super) fn plan<'a>(&self, buf: &'a [u8]) -> Plan<'a> {
        let mut highest = self.highest_answered;
        let mut at = self.payload_left;
        if self.header_len > 0 {
            // A frame whose header began in an earlier write: never a refusal (those are
            // found whole at the start of a write), but its stream counts as answered.
            let need = FRAME_HEADER_LEN - self.header_len;
            if buf.len() < need {
                return Plan::Pass(buf.len());
            }
            let mut header = self.header;
            header[self.header_len..].copy_from_slice(&buf[..need]);
            let frame = Frame::parse(&header);
            highest = highest.max(frame.stream);
            at = need + frame.len;
        }
        while at + FRAME_HEADER_LEN <= buf.len() {
            let frame = Frame::parse(&buf[at..at + FRAME_HEADER_LEN]);
            let payload = at + FRAME_HEADER_LEN;
            if frame.stream > highest && frame.stream % 2 == 1 && payload + frame.len <= buf.len() {
                if let Some(refusal) = refusal(&frame, &buf[payload..payload + frame.len]) {
                    if at > 0 {
                        return Plan::Pass(at);
                    }
                    return Plan::Refusal(refusal);
                }
            }
            highest = highest.max(frame.stream);
            at = payload + frame.len;
        }
        Plan::Pass(buf.len())
    }

    /// Move past `written`, the bytes that went out (or were answered in the gateway's words),
    /// telling `on_error` of each error code (`GOAWAY`, `RST_STREAM`) that went out with them.
    pub(super) fn advance(&mut self, mut written: &[u8], mut on_error: impl FnMut(ErrorFrame)) {
        while !written.is_empty() {
            if self.payload_left > 0 {
                let skipped = self.payload_left.min(written.len());
                if let Some(start) = self.error_frame.as_mut() {
                    let take = (start.needed() - start.have).min(skipped);
                    start.bytes[start.have..start.have + take].copy_from_slice(&written[..take]);
                    start.have += take;
                    if start.have == start.needed() {
                        on_error(start.error());
                        self.error_frame = None;
                    }
                }
                self.payload_left -= skipped;
                written = &written[skipped..];
                continue;
            }
            let take = (FRAME_HEADER_LEN - self.header_len).min(written.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&written[..take]);
            self.header_len += take;
            written = &written[take..];
            if self.header_len == FRAME_HEADER_LEN {
                let frame = Frame::parse(&self.header);
                self.highest_answered = self.highest_answered.max(frame.stream);
                self.payload_left = frame.len;
                self.header_len = 0;
                let needed = match frame.kind {
                    GOAWAY => 8,
                    RST_STREAM => 4,
                    _ => usize::MAX,
                };
                if frame.len >= needed {
                    self.error_frame = Some(ErrorFrameStart {
                        kind: frame.kind,
                        bytes: [0; 8],
                        have: 0,
                    });
                }
            }
        }
    }
}

/// Whether `frame`, the first the server writes on its stream, is a refusal of the HTTP/2
/// layers, and which.
fn refusal<'a>(frame: &Frame, payload: &'a [u8]) -> Option<LayerRefusal<'a>> {
    let frame_len = FRAME_HEADER_LEN + frame.len;
    match frame.kind {
        RST_STREAM if payload.len() == 4 => {
            let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            (code == PROTOCOL_ERROR).then_some(LayerRefusal {
                frame_len,
                stream: frame.stream,
                reason: Reason::ProtocolMalformedStream,
                block: &[STATUS_400],
            })
        }
        // Only END_STREAM and END_HEADERS: no padding, no priority, no CONTINUATION.
        HEADERS
            if frame.flags == END_STREAM | END_HEADERS
                && !payload.is_empty()
                && payload.len() <= LAYER_BLOCK_MAX =>
        {
            // pingora's `400` is for the authority; the only other answer the layers write is
            // h2's `431` for a header list over its bound (a literal, maybe indexed after).
            let reason = if payload == [STATUS_400] {
                Reason::ProtocolInvalidHost
            } else {
                Reason::ProtocolHeadersTooLarge
            };
            Some(LayerRefusal {
                frame_len,
                stream: frame.stream,
                reason,
                block: payload,
            })
        }
        _ => None,
    }
}

/// The name of an HTTP/2 error code (RFC 9113 section 7), as a metric's label.
pub(super) fn error_name(code: u32) -> &'static str {
    match code {
        0x0 => "no_error",
        0x1 => "protocol_error",
        0x2 => "internal_error",
        0x3 => "flow_control_error",
        0x4 => "settings_timeout",
        0x5 => "stream_closed",
        0x6 => "frame_size_error",
        0x7 => "refused_stream",
        0x8 => "cancel",
        0x9 => "compression_error",
        0xa => "connect_error",
        0xb => "enhance_your_calm",
        0xc => "inadequate_security",
        0xd => "http_1_1_required",
        _ => "unknown_error",
    }
}

/// The `HEADERS` frame written in the refusal's place: its block, then the gateway's fields,
/// each a literal that leaves the client's HPACK table as it is; the stream ends with it.
pub(super) fn gateway_answer(refusal: &LayerRefusal<'_>, request_id: &str, date: &str) -> Vec<u8> {
    let mut block = refusal.block.to_vec();
    // HPACK static-table names (RFC 7541 appendix A).
    const CACHE_CONTROL: usize = 24;
    const DATE: usize = 33;
    const STRICT_TRANSPORT_SECURITY: usize = 56;
    let hsts = crate::harden::HSTS;
    literal_field(
        &mut block,
        Name::Static(STRICT_TRANSPORT_SECURITY),
        hsts.as_bytes(),
    );
    literal_field(&mut block, Name::New(b"x-content-type-options"), b"nosniff");
    literal_field(
        &mut block,
        Name::New(b"x-request-id"),
        request_id.as_bytes(),
    );
    literal_field(&mut block, Name::Static(CACHE_CONTROL), b"no-store");
    literal_field(&mut block, Name::Static(DATE), date.as_bytes());
    let len = block.len();
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + len);
    frame.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
    frame.extend_from_slice(&[HEADERS, END_STREAM | END_HEADERS]);
    frame.extend_from_slice(&refusal.stream.to_be_bytes());
    frame.extend_from_slice(&block);
    frame
}

/// A field's name: an index into HPACK's static table, or spelled out.
enum Name {
    Static(usize),
    New(&'static [u8]),
}

/// A literal header field without indexing (RFC 7541 section 6.2.2), strings without Huffman.
fn literal_field(out: &mut Vec<u8>, name: Name, value: &[u8]) {
    match name {
        Name::Static(index) => integer(out, 0x00, 4, index),
        Name::New(name) => {
            out.push(0x00);
            string(out, name);
        }
    }
    string(out, value);
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    integer(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// An integer with an `prefix_bits`-bit prefix after the pattern `first` (RFC 7541 5.1).
fn integer(out: &mut Vec<u8>, first: u8, prefix_bits: u32, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    const SETTINGS: u8 = 0x4;
    const DATA: u8 = 0x0;

    fn reset(stream: u32, code: u32) -> Vec<u8> {
        frame(RST_STREAM, 0, stream, &code.to_be_bytes())
    }

    /// Runs `writes` through a watch as a tap would: each write planned, what passes
    /// advanced over, each refusal's frame taken as answered; returns the refusals found.
    fn refusals_in(writes: &[Vec<u8>]) -> Vec<(u32, Reason)> {
        let mut watch = FrameWatch::default();
        let mut found = Vec::new();
        for write in writes {
            let mut rest = &write[..];
            while !rest.is_empty() {
                match watch.plan(rest) {
                    Plan::Pass(n) => {
                        assert!(n > 0, "a plan always moves");
                        watch.advance(&rest[..n], |_| {});
                        rest = &rest[n..];
                    }
                    Plan::Refusal(r) => {
                        found.push((r.stream, r.reason));
                        let n = r.frame_len;
                        watch.advance(&rest[..n], |_| {});
                        rest = &rest[n..];
                    }
                }
            }
        }
        found
    }

    /// A block the gateway's own answers have: a request id makes it tens of bytes.
    fn gateway_block() -> Vec<u8> {
        let mut block = vec![0x88];
        literal_field(&mut block, Name::New(b"x-request-id"), b"0190-aaaa-bbbb");
        block
    }

    #[test]
    fn a_reset_or_bare_answer_on_a_new_stream_is_the_layers_refusal_r_log_1() {
        let writes = vec![
            frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]),
            // Stream 1 answered by the gateway, then a body.
            [
                frame(HEADERS, END_HEADERS, 1, &gateway_block()),
                frame(DATA, END_STREAM, 1, b"{}"),
            ]
            .concat(),
            // Stream 3 refused as it opened; stream 5 gets pingora's 400, stream 7 h2's 431,
            // all in one write behind a frame of stream 1's.
            [
                frame(DATA, 0, 1, b"x"),
                reset(3, PROTOCOL_ERROR),
                frame(HEADERS, END_STREAM | END_HEADERS, 5, &[STATUS_400]),
                frame(
                    HEADERS,
                    END_STREAM | END_HEADERS,
                    7,
                    &[0x48, 0x03, b'4', b'3', b'1'],
                ),
            ]
            .concat(),
        ];
        assert_eq!(
            refusals_in(&writes),
            vec![
                (3, Reason::ProtocolMalformedStream),
                (5, Reason::ProtocolInvalidHost),
                (7, Reason::ProtocolHeadersTooLarge),
            ]
        );
    }

    #[test]
    fn a_stream_the_server_has_written_on_is_never_taken_for_a_refusal() {
        let writes = vec![
            // The gateway answered stream 5; a later reset of 5 (or of an older stream, 3) is
            // the body's, and a short block on stream 5 is trailers.
            frame(HEADERS, END_HEADERS, 5, &gateway_block()),
            reset(5, PROTOCOL_ERROR),
            reset(3, PROTOCOL_ERROR),
            frame(HEADERS, END_STREAM | END_HEADERS, 5, &[0x88]),
            // Other resets, a gateway answer that ends the stream, a padded block.
            reset(7, 0x8),
            frame(HEADERS, END_STREAM | END_HEADERS, 9, &gateway_block()),
            frame(
                HEADERS,
                END_STREAM | END_HEADERS | 0x8,
                11,
                &[0, STATUS_400],
            ),
            // Even (server-initiated) and connection-level frames.
            reset(12, PROTOCOL_ERROR),
        ];
        assert_eq!(refusals_in(&writes), vec![]);
    }

    #[test]
    fn frames_split_across_writes_keep_the_watch_in_step() {
        let stream_1 = [
            frame(HEADERS, END_HEADERS, 1, &gateway_block()),
            frame(DATA, END_STREAM, 1, &[b'a'; 300]),
        ]
        .concat();
        let refused = reset(3, PROTOCOL_ERROR);
        let all = [stream_1.clone(), refused.clone(), frame(DATA, 0, 1, b"x")].concat();
        // Every cut point, including inside the frame headers.
        for cut in 1..all.len() {
            let writes = vec![all[..cut].to_vec(), all[cut..].to_vec()];
            let found = refusals_in(&writes);
            if cut <= stream_1.len() || cut >= stream_1.len() + refused.len() {
                assert_eq!(found, vec![(3, Reason::ProtocolMalformedStream)], "{cut}");
            } else {
                // A reset cut in two was never offered whole: passed on as it is.
                assert_eq!(found, vec![], "{cut}");
            }
        }
        // A stream answered in a frame whose header was cut keeps its later reset its own.
        let answered = frame(HEADERS, END_HEADERS, 3, &gateway_block());
        let writes = vec![
            answered[..4].to_vec(),
            [&answered[4..], &refused[..]].concat(),
        ];
        assert_eq!(refusals_in(&writes), vec![]);
    }

    #[test]
    fn the_answer_keeps_the_library_s_block_and_adds_literals_only_r_tls_3() {
        let library = [0x48, 0x03, b'4', b'3', b'1'];
        let refusal = LayerRefusal {
            frame_len: 14,
            stream: 7,
            reason: Reason::ProtocolHeadersTooLarge,
            block: &library,
        };
        let answer = gateway_answer(&refusal, "0190-id", "Sat, 28 Nov 2026 17:00:00 GMT");
        let header = Frame::parse(&answer[..FRAME_HEADER_LEN]);
        assert_eq!(header.kind, HEADERS);
        assert_eq!(header.flags, END_STREAM | END_HEADERS);
        assert_eq!(header.stream, 7);
        assert_eq!(header.len, answer.len() - FRAME_HEADER_LEN);
        let block = &answer[FRAME_HEADER_LEN..];
        assert!(block.starts_with(&library));
        // Literal without indexing, name index 56 (strict-transport-security): 0x0f, 56 - 15.
        let hsts = crate::harden::HSTS;
        let mut expected = vec![0x0f, 41, hsts.len() as u8];
        expected.extend_from_slice(hsts.as_bytes());
        assert_eq!(
            &block[library.len()..library.len() + expected.len()],
            &expected[..]
        );
        // The request id, spelled out: 0x00, the name, the value.
        let mut id = vec![0x00, 12];
        id.extend_from_slice(b"x-request-id");
        id.push(7);
        id.extend_from_slice(b"0190-id");
        assert!(block.windows(id.len()).any(|w| w == id));
    }

    #[test]
    fn any_bytes_in_any_writes_are_passed_on_whole_and_in_order() {
        // The server's own bytes are read here, never a client's; still, no sequence of
        // writes may stall the tap or lose a byte. A fixed xorshift, so a failure repeats.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let len = (next() % 200) as usize;
            // Small frame lengths, so that frames end inside the bytes.
            let bytes: Vec<u8> = (0..len)
                .map(|i| if i % 9 < 2 { 0 } else { next() as u8 })
                .collect();
            let mut watch = FrameWatch::default();
            let mut passed = Vec::new();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let write = &rest[..rest.len().min(1 + (next() % 40) as usize)];
                let taken = match watch.plan(write) {
                    Plan::Pass(n) => n,
                    Plan::Refusal(r) => r.frame_len,
                };
                assert!(
                    taken > 0 && taken <= write.len(),
                    "{taken} of {}",
                    write.len()
                );
                watch.advance(&write[..taken], |_| {});
                passed.extend_from_slice(&write[..taken]);
                rest = &rest[taken..];
            }
            assert_eq!(passed, bytes);
        }
    }

    #[test]
    fn error_codes_are_read_as_they_pass_whatever_the_cuts() {
        let mut goaway = 7u32.to_be_bytes().to_vec();
        goaway.extend_from_slice(&0xb_u32.to_be_bytes());
        goaway.extend_from_slice(b"too many resets");
        let all = [
            frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]),
            frame(DATA, 0, 1, &[0x7; 20]),
            reset(201, 0x7),
            frame(DATA, 0, 3, &[0x3; 5]),
            frame(GOAWAY, 0, 0, &goaway),
            frame(DATA, 0, 1, &[0xb; 8]),
        ]
        .concat();
        for cut in 0..all.len() {
            for second in cut..all.len() {
                let mut watch = FrameWatch::default();
                let mut errors = Vec::new();
                for part in [&all[..cut], &all[cut..second], &all[second..]] {
                    watch.advance(part, |e| errors.push(e));
                }
                assert_eq!(
                    errors,
                    [ErrorFrame::Stream(0x7), ErrorFrame::Connection(0xb)],
                    "cut at {cut} and {second}"
                );
            }
        }
        assert_eq!(error_name(0xb), "enhance_your_calm");
        assert_eq!(error_name(0x1), "protocol_error");
        assert_eq!(error_name(0x99), "unknown_error");
    }

    #[test]
    fn hpack_integers_carry_on_past_their_prefix() {
        // RFC 7541 appendix C.1.
        let mut out = Vec::new();
        integer(&mut out, 0x00, 5, 10);
        assert_eq!(out, [0x0a]);
        out.clear();
        integer(&mut out, 0x00, 5, 1337);
        assert_eq!(out, [0x1f, 0x9a, 0x0a]);
        out.clear();
        integer(&mut out, 0x00, 4, 15);
        assert_eq!(out, [0x0f, 0x00]);
    }
}
