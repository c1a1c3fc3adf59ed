//! Protocol enforcement before routing (R-WAF-3): message framing a backend could read
//! differently from the gateway is refused and never forwarded.
//!
//! Request smuggling needs two parsers that disagree on where a body ends. The gateway accepts
//! exactly one way to say it: either one decimal `Content-Length`, or `Transfer-Encoding:
//! chunked` alone.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::HeaderMap;

use crate::decision::{Reason, Refusal};

/// Bounds on a request's head (R-WAF-3): what a backend's parser would otherwise be asked to
/// swallow, and what inspection would otherwise scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Longest request target (path and query), bytes.
    pub uri_bytes: usize,
    /// Most query parameters.
    pub query_params: usize,
    /// Most header fields.
    pub headers: usize,
    /// Most bytes of header names and values together.
    pub header_bytes: usize,
    /// Deepest nesting of a JSON body.
    pub json_depth: usize,
    /// Largest body read whole before it is forwarded.
    pub body_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            uri_bytes: 8192,
            query_params: 256,
            headers: 100,
            header_bytes: 32 * 1024,
            json_depth: 64,
            body_bytes: 1024 * 1024,
        }
    }
}

/// The most header fields pingora's HTTP/1 parser reads: a head with more is unparsable there
/// (`protocol.unparsable_head`), whatever `max_headers` says.
pub const HTTP1_MAX_HEADERS: usize = 256;

/// The most bytes of a request head pingora's HTTP/1 parser reads (request line and fields):
/// a larger head is refused there (`protocol.unparsable_head`), whatever `[limits]` says.
pub const HTTP1_MAX_HEAD_BYTES: usize = 1_048_575;

/// The HTTP/2 layer's own bound on a request's header list, which it enforces before the
/// gateway reads the head (h2's `431`, answered and recorded as `protocol.headers_too_large`
/// by the connection tap). It is set at start from the policy's limits so that the gateway's
/// own checks, with their precise reasons, decide below it: RFC 9113 counts each field as
/// its name, its value and 32 bytes, pseudo-fields included (`:path` holds the request
/// target). Never below pingora's 64 KiB default.
pub fn http2_header_list_bound(limits: &RequestLimits) -> u32 {
    const PINGORA_DEFAULT: usize = 64 * 1024;
    /// `:method`, `:scheme`, `:authority` (a DNS name and a port) and `:protocol`.
    const OTHER_PSEUDO_FIELDS: usize = 4 * 32 + 512;
    let bound = limits
        .header_bytes
        .saturating_add(limits.headers.saturating_add(1).saturating_mul(32))
        .saturating_add(limits.uri_bytes)
        .saturating_add(OTHER_PSEUDO_FIELDS);
    u32::try_from(bound.max(PINGORA_DEFAULT)).unwrap_or(u32::MAX)
}

/// Refuse a request head beyond `limits`, each bound with its own reason.
pub fn check_size(
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    limits: &RequestLimits,
) -> Result<(), Refusal> {
    let uri = path.len() + query.map_or(0, |q| q.len() + 1);
    if uri > limits.uri_bytes {
        return Err(Refusal::new(
            Reason::ProtocolUriTooLong,
            format!(
                "the request target is longer than {} bytes",
                limits.uri_bytes
            ),
        ));
    }
    let params = query.map_or(0, |q| q.split('&').filter(|p| !p.is_empty()).count());
    if params > limits.query_params {
        return Err(Refusal::new(
            Reason::ProtocolTooManyParameters,
            format!("more than {} query parameters", limits.query_params),
        ));
    }
    if headers.len() > limits.headers {
        return Err(Refusal::new(
            Reason::ProtocolTooManyHeaders,
            format!("more than {} header fields", limits.headers),
        ));
    }
    let bytes: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    if bytes > limits.header_bytes {
        return Err(Refusal::new(
            Reason::ProtocolHeadersTooLarge,
            format!(
                "the header fields are larger than {} bytes",
                limits.header_bytes
            ),
        ));
    }
    Ok(())
}

/// Refuse a JSON body nested deeper than `limits.json_depth` (R-WAF-3): a parser's stack is
/// a backend's too, and serde's own bound (128) would only make the body unreadable, not
/// refused. Counted on the bytes, strings skipped, before anything parses it.
pub fn check_json_depth(
    body: &[u8],
    headers: &HeaderMap,
    limits: &RequestLimits,
) -> Option<Refusal> {
    let media = declared_media(headers)?;
    if media != "application/json" && !media.ends_with("+json") {
        return None;
    }
    (json_depth(body) > limits.json_depth).then(|| {
        Refusal::new(
            Reason::ProtocolJsonTooDeep,
            format!(
                "the JSON body nests arrays and objects deeper than {} levels",
                limits.json_depth
            ),
        )
    })
}

/// Refuse an XML body whose elements nest deeper than `limits.json_depth` (R-WAF-3; one limit
/// for both, named for JSON since before XML was parsed): a backend's DOM builder recurses
/// as a JSON parser does. Counted by quick-xml's reader before inspection; a body that does
/// not parse is left to inspection, which refuses or reads it.
pub fn check_xml_depth(
    body: &[u8],
    headers: &HeaderMap,
    limits: &RequestLimits,
) -> Option<Refusal> {
    let media = declared_media(headers)?;
    if !media.ends_with("/xml") && !media.ends_with("+xml") {
        return None;
    }
    (xml_depth(body) > limits.json_depth).then(|| {
        Refusal::new(
            Reason::ProtocolXmlTooDeep,
            format!(
                "the XML body nests elements deeper than {} levels",
                limits.json_depth
            ),
        )
    })
}

/// The body's declared media type, lower case, without parameters.
fn declared_media(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
}

/// The deepest nesting of elements in `xml`, as far as it parses.
pub fn xml_depth(xml: &[u8]) -> usize {
    use quick_xml::events::Event;
    let Ok(text) = std::str::from_utf8(xml) else {
        return 0;
    };
    let mut reader = quick_xml::Reader::from_str(text);
    let (mut depth, mut deepest) = (0usize, 0usize);
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            // `<x/>` is one level below its parent too.
            Ok(Event::Empty(_)) => deepest = deepest.max(depth + 1),
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Eof) | Err(_) => return deepest,
            Ok(_) => {}
        }
    }
}

/// The deepest nesting of arrays and objects in `json` (strings, and what they escape,
/// skipped).
pub fn json_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        i += 1;
        match b {
            b'"' => {
                // A string's end is found a word at a time, not a byte at a time.
                loop {
                    let Some(at) = json.get(i..).and_then(|s| memchr::memchr2(b'"', b'\\', s))
                    else {
                        return deepest;
                    };
                    let quote = json[i + at] == b'"';
                    i += at + if quote { 1 } else { 2 };
                    if quote {
                        break;
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// What the raw bytes of an HTTP/1 head showed that its parsed headers no longer do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawHead {
    /// The parser saw a `Content-Length` beside `Transfer-Encoding` and removed it before the
    /// headers reached us (pingora does, following RFC 9112 §6.3).
    pub length_dropped: bool,
    /// A line ended in a bare LF (no CR before it), which pingora's parser accepts.
    pub bare_line_feed: bool,
    /// The request target held a `#`: a fragment, which a client keeps to itself (RFC 9112
    /// section 3.2 has no place for it) and pingora's parser passes on.
    pub fragment: bool,
    /// The request came over HTTP/1, where `Host` is required (RFC 9112 section 3.2).
    pub http1: bool,
}

impl RawHead {
    /// Read an HTTP/1 head as received.
    pub fn of(head: &[u8], has_transfer_encoding: bool) -> RawHead {
        let line = &head[..memchr::memchr(b'\n', head).unwrap_or(head.len())];
        let mut words = line.split(|&b| b == b' ');
        RawHead {
            length_dropped: has_transfer_encoding && raw_head_has_content_length(head),
            bare_line_feed: memchr::memchr_iter(b'\n', head)
                .any(|at| at == 0 || head[at - 1] != b'\r'),
            fragment: words.nth(1).is_some_and(|target| target.contains(&b'#')),
            http1: true,
        }
    }
}

/// Check the body framing of a request: its headers, and what its raw head showed. The gateway
/// refuses what a proxy in front or a backend behind may read another way (R-WAF-3): a
/// `Content-Length` beside `Transfer-Encoding` (even one the parser dropped), and a head whose
/// lines end in a bare LF (a proxy that splits only on CRLF reads such a line, and the header
/// it hides, as part of the previous header's value).
pub fn check_framing(headers: &HeaderMap, raw: RawHead) -> Result<(), Refusal> {
    if raw.length_dropped {
        return Err(Refusal::new(
            Reason::ProtocolLengthWithTransferEncoding,
            "Content-Length and Transfer-Encoding must not be sent together",
        ));
    }
    if raw.bare_line_feed {
        return Err(Refusal::new(
            Reason::ProtocolBareLineFeed,
            "a line of the request head ends in LF without CR",
        ));
    }
    if raw.fragment {
        return Err(Refusal::new(
            Reason::ProtocolInvalidTarget,
            "the request target holds a fragment (`#`), which a client does not send",
        ));
    }
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    let has_length = match (lengths.next(), lengths.next()) {
        (None, _) => false,
        (Some(_), Some(_)) => {
            return Err(Refusal::new(
                Reason::ProtocolDuplicateContentLength,
                "more than one Content-Length header",
            ))
        }
        (Some(value), None) => {
            let value = value.as_bytes();
            if value.contains(&b',') {
                return Err(Refusal::new(
                    Reason::ProtocolDuplicateContentLength,
                    "Content-Length holds a list of values",
                ));
            }
            // 19 digits fit in u64; a longer number is a parser-disagreement probe.
            if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
                return Err(Refusal::new(
                    Reason::ProtocolInvalidContentLength,
                    "Content-Length must be one decimal number",
                ));
            }
            true
        }
    };

    let mut encodings = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if encodings.peek().is_none() {
        return Ok(());
    }
    if has_length {
        return Err(Refusal::new(
            Reason::ProtocolLengthWithTransferEncoding,
            "Content-Length and Transfer-Encoding must not be sent together",
        ));
    }
    let mut codings = 0;
    for value in encodings {
        for coding in value.as_bytes().split(|&b| b == b',') {
            codings += 1;
            // Exactly `chunked`: no padding, no case games, no other coding before it.
            if codings > 1 || !coding.eq_ignore_ascii_case(b"chunked") {
                return Err(Refusal::new(
                    Reason::ProtocolUnsupportedTransferEncoding,
                    "the only Transfer-Encoding accepted is `chunked`, once",
                ));
            }
        }
    }
    Ok(())
}

/// Refuse `CONNECT` (R-WAF-3): the gateway forwards requests to its routes' upstreams and opens
/// no tunnels. pingora would refuse it before any hook; the server lets it through to the
/// gateway's own steps (`server.rs`) so that it is answered, hardened and recorded as every
/// other refusal, over HTTP/1 and HTTP/2 alike. An empty `Allow`: the target allows no method
/// (RFC 9110 sections 10.2.1 and 15.5.6).
pub fn check_no_tunnel(method: &http::Method) -> Result<(), Refusal> {
    if method != http::Method::CONNECT {
        return Ok(());
    }
    let mut refusal = Refusal::new(
        Reason::ProtocolConnectRefused,
        "this gateway forwards requests; it opens no tunnels",
    );
    refusal.allow = Some(String::new());
    Err(refusal)
}

/// Refuse a body on `GET` or `HEAD` (R-WAF-3): a backend that ignores such a body reads it as
/// the next request on the connection (a "CL.0" desync), while the gateway judged it as this
/// request's. A declared length of zero is no body.
pub fn check_body_allowed(method: &http::Method, headers: &HeaderMap) -> Result<(), Refusal> {
    if method != http::Method::GET && method != http::Method::HEAD {
        return Ok(());
    }
    if declares_body(headers) {
        return Err(Refusal::new(
            Reason::ProtocolBodyNotAllowed,
            format!("a {method} request carries no body"),
        ));
    }
    Ok(())
}

/// Refuse content whose reading is left to guesswork (R-WAF-3): a body without a
/// `Content-Type`, or with an empty one, is answered 415. RFC 9110 section 8.3 lets the
/// recipient sniff it, so a backend may parse as JSON what the gateway inspected as a form
/// (CRS 920340, 920640), and a FHIR server refuses it anyway. An HTTP/2 body needs no length,
/// so one the head does not announce is held to the same rule when it is read
/// ([`crate::inspect::check_body`]).
pub fn check_body_declared(headers: &HeaderMap) -> Result<(), Refusal> {
    if declares_body(headers) && !has_content_type(headers) {
        return Err(Refusal::new(
            Reason::ProtocolContentTypeMissing,
            "a request body must name its media type in Content-Type",
        ));
    }
    Ok(())
}

/// Whether the head announces content: `Transfer-Encoding`, or a `Content-Length` above 0.
fn declares_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes().iter().any(|&b| b != b'0'))
}

/// Whether the request names its body's media type (a non-blank `Content-Type`).
pub fn has_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
}

/// Refuse a `Host` that is not one host name or address with an optional port, or more than
/// one `Host` (RFC 9112 section 3.2 asks for 400): a backend or a virtual-host router would
/// pick another host than the gateway saw. A name is letters, digits, `.`, `-` and `_`; an
/// IPv6 address is in brackets. An HTTP/1 request without `Host` is refused too (RFC 9112
/// section 3.2, HTTP/1.0 included: the gateway serves named sites only); an HTTP/2 request
/// names its authority in its pseudo-headers and may send no `Host` at all.
///
/// `authority` is the one the request target names, when it names one: HTTP/2's
/// `:authority`, or an absolute-form target's (`GET https://host/path`). It must be a valid
/// authority, and the same host as `Host` when both are sent (RFC 9113 section 8.3.1; an
/// origin server reads an absolute-form target's host and ignores `Host`, RFC 9112 section
/// 3.2.2): otherwise the gateway would route, judge and log one site while the backend serves
/// another.
///
/// Returns the host the request names (`Host`, else the target's authority), for
/// [`check_host_served`].
pub fn check_host<'a>(
    headers: &'a HeaderMap,
    raw: RawHead,
    authority: Option<&'a str>,
) -> Result<Option<&'a [u8]>, Refusal> {
    if let Some(authority) = authority {
        if !valid_authority(authority.as_bytes()) {
            return Err(Refusal::new(
                Reason::ProtocolInvalidHost,
                "the request target's authority must be a host name or address, with an optional port",
            ));
        }
        let another_host = headers
            .get(http::header::HOST)
            .is_some_and(|host| !same_host(host.as_bytes(), authority.as_bytes()));
        if another_host {
            return Err(Refusal::new(
                Reason::ProtocolInvalidHost,
                "the request target names another host than the Host header",
            ));
        }
    }
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return match headers.contains_key(http::header::HOST) {
            true => Err(Refusal::new(
                Reason::ProtocolInvalidHost,
                "more than one Host header",
            )),
            false if raw.http1 => Err(Refusal::new(
                Reason::ProtocolInvalidHost,
                "an HTTP/1 request names its host in a Host header",
            )),
            false => Ok(authority.map(str::as_bytes)),
        };
    };
    if valid_authority(host.as_bytes()) {
        Ok(Some(host.as_bytes()))
    } else {
        Err(Refusal::new(
            Reason::ProtocolInvalidHost,
            "Host must be a host name or address, with an optional port",
        ))
    }
}

/// Whether the request names a host the public listener serves (`[listeners] hosts`; empty
/// serves any). A request for another name came by a stray or rebound DNS record, or from a
/// scanner going by address: no route of the policy was written for it, and a backend that
/// builds links or password-reset mails from `Host` would build them for that name.
/// `named` is what [`check_host`] returned: the host the request names, if any.
pub fn check_host_served(named: Option<&[u8]>, served: &[String]) -> Result<(), Refusal> {
    match named {
        Some(host) if serves_host(served, host) => Ok(()),
        None if served.is_empty() => Ok(()),
        _ => Err(Refusal::new(
            Reason::RouteHostNotServed,
            "this gateway does not serve the host the request names",
        )),
    }
}

/// Whether `served` (`[listeners] hosts` as compiled) lists the host of `authority`, its
/// port, case and one trailing dot aside; an empty list serves any host. The one comparison
/// behind both the request's `Host` ([`check_host_served`]) and the TLS handshake's SNI (the
/// certificate resolver).
pub fn serves_host(served: &[String], authority: &[u8]) -> bool {
    let host = split_port(authority).0;
    let host = host.strip_suffix(b".").unwrap_or(host);
    served.is_empty()
        || served
            .iter()
            .any(|s| s.as_bytes().eq_ignore_ascii_case(host))
}

/// A `[listeners] hosts` entry as [`serves_host`] compares it: lower case, without a
/// trailing dot; `None` when it is no host name or address, or has a port.
pub fn served_host_name(entry: &str) -> Option<String> {
    let name = entry.strip_suffix('.').unwrap_or(entry);
    let plain = valid_authority(name.as_bytes()) && split_port(name.as_bytes()).1.is_none();
    plain.then(|| name.to_ascii_lowercase())
}

/// Whether two authorities name the same host, ports aside (a client may spell the default
/// port in one and not the other), case aside.
fn same_host(a: &[u8], b: &[u8]) -> bool {
    split_port(a).0.eq_ignore_ascii_case(split_port(b).0)
}

/// An authority's host and port: the port follows the last `:` outside an IPv6 literal's
/// brackets.
fn split_port(authority: &[u8]) -> (&[u8], Option<&[u8]>) {
    match authority.iter().rposition(|&b| b == b':' || b == b']') {
        Some(at) if authority[at] == b':' => (&authority[..at], Some(&authority[at + 1..])),
        _ => (authority, None),
    }
}

/// The authority an absolute-form HTTP/1 target names (`https://host:8443/path` → `host:8443`).
/// Asked of every request: an origin-form target is answered by its first bytes.
pub fn absolute_form_authority(target: &[u8]) -> Option<&str> {
    let rest = target
        .strip_prefix(b"https://")
        .or_else(|| target.strip_prefix(b"http://"))?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()
}

fn valid_authority(authority: &[u8]) -> bool {
    let (host, port) = split_port(authority);
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    let host_ok = match host {
        [b'[', address @ .., b']'] => {
            !address.is_empty()
                && address
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        _ => {
            !host.is_empty()
                && host
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        }
    };
    port_ok && host_ok
}

/// Whether a raw HTTP/1 request head (request line and headers) has a `Content-Length` line.
/// Only called when `Transfer-Encoding` is present, so the scan is off the common path.
pub fn raw_head_has_content_length(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n')
        .skip(1)
        .any(|line| line.len() >= 15 && line[..15].eq_ignore_ascii_case(b"content-length:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn http2_header_bound_leaves_the_policys_limits_to_the_gateway() {
        // The defaults fit in pingora's own bound, which stays.
        assert_eq!(
            http2_header_list_bound(&RequestLimits::default()),
            64 * 1024
        );
        // Raised limits raise it: a head at every limit (each field counted with RFC 9113's
        // 32 bytes, the target in `:path`) fits.
        let limits = RequestLimits {
            header_bytes: 96 * 1024,
            headers: 200,
            uri_bytes: 16 * 1024,
            ..RequestLimits::default()
        };
        let at_limits = limits.header_bytes + 200 * 32 + (limits.uri_bytes + 5 + 32);
        assert!(http2_header_list_bound(&limits) as usize >= at_limits);
        assert!((http2_header_list_bound(&limits) as usize) < at_limits + 2048);
        let huge = RequestLimits {
            header_bytes: usize::MAX,
            ..RequestLimits::default()
        };
        assert_eq!(http2_header_list_bound(&huge), u32::MAX);
    }

    #[test]
    fn connect_is_refused_with_an_empty_allow_and_other_methods_pass() {
        let refusal = check_no_tunnel(&http::Method::CONNECT).expect_err("CONNECT refused");
        assert_eq!(refusal.reason, Reason::ProtocolConnectRefused);
        assert_eq!(refusal.allow.as_deref(), Some(""));
        assert!(refusal.reason.closes_connection());
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"] {
            let method = http::Method::from_bytes(method.as_bytes()).expect("method");
            assert!(check_no_tunnel(&method).is_ok(), "{method}");
        }
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap_or(CONTENT_LENGTH);
            map.append(
                name,
                HeaderValue::from_bytes(value).unwrap_or(HeaderValue::from_static("x")),
            );
        }
        map
    }

    #[test]
    fn json_depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth(br#"{"a":[1,{"b":"[[[{{"}],"c":"\\\"[["}"#), 3);
        assert_eq!(json_depth(b"12"), 0);
        // Cut off inside a string, after an escape: counted so far, no panic.
        assert_eq!(json_depth(b"[{\"ab\\"), 2);
        assert_eq!(json_depth(b"[\"ab"), 1);
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        let json = headers(&[("content-type", b"application/fhir+json")]);
        let limits = RequestLimits::default();
        assert_eq!(
            check_json_depth(deep.as_bytes(), &json, &limits).map(|r| r.reason),
            Some(Reason::ProtocolJsonTooDeep)
        );
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(check_json_depth(ok.as_bytes(), &json, &limits).is_none());
        // Not JSON: not counted.
        let text = headers(&[("content-type", b"text/plain")]);
        assert!(check_json_depth(deep.as_bytes(), &text, &limits).is_none());
    }

    #[test]
    fn xml_depth_counts_elements_and_refuses_past_the_limit() {
        assert_eq!(xml_depth(b"<a><b><c/></b><d>x</d></a>"), 3);
        // Markup-looking text in attributes, CDATA and comments does not count.
        assert_eq!(
            xml_depth(br#"<a x="<b><c>"><!-- <d> --><![CDATA[<e><f>]]></a>"#),
            1
        );
        let deep = format!("{}{}", "<a>".repeat(65), "</a>".repeat(65));
        let xml = headers(&[("content-type", b"application/fhir+xml")]);
        let limits = RequestLimits::default();
        assert_eq!(
            check_xml_depth(deep.as_bytes(), &xml, &limits).map(|r| r.reason),
            Some(Reason::ProtocolXmlTooDeep)
        );
        let ok = format!("{}<b/>{}", "<a>".repeat(63), "</a>".repeat(63));
        assert!(check_xml_depth(ok.as_bytes(), &xml, &limits).is_none());
        let json = headers(&[("content-type", b"application/json")]);
        assert!(check_xml_depth(deep.as_bytes(), &json, &limits).is_none());
    }

    fn reason(pairs: &[(&str, &[u8])]) -> Option<Reason> {
        check_framing(&headers(pairs), RawHead::default())
            .err()
            .map(|r| r.reason)
    }

    #[test]
    fn raw_head_scan_finds_content_length_lines_only() {
        assert!(raw_head_has_content_length(
            b"POST / HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(!raw_head_has_content_length(
            b"POST /content-length: HTTP/1.1\r\nX-A: content-length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert_eq!(
            check_framing(
                &HeaderMap::new(),
                RawHead {
                    length_dropped: true,
                    ..RawHead::default()
                }
            )
            .err()
            .map(|r| r.reason),
            Some(Reason::ProtocolLengthWithTransferEncoding)
        );
    }

    #[test]
    fn a_fragment_in_the_request_target_is_refused_r_waf_3() {
        let framing = |head: &[u8]| {
            check_framing(&HeaderMap::new(), RawHead::of(head, false))
                .err()
                .map(|r| r.reason)
        };
        for head in [
            &b"GET /#fragment HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /records?a=1#x HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(
                framing(head),
                Some(Reason::ProtocolInvalidTarget),
                "{head:?}"
            );
        }
        // `#` escaped, or in a header, is no fragment.
        for head in [
            &b"GET /records?tag=%23a HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Note: #1\r\n\r\n",
        ] {
            assert_eq!(framing(head), None, "{head:?}");
        }
    }

    #[test]
    fn a_body_on_get_or_head_is_refused_r_waf_3() {
        use http::Method;
        type Headers<'a> = &'a [(&'a str, &'a [u8])];
        let body = Some(Reason::ProtocolBodyNotAllowed);
        let cases: &[(Method, Headers, Option<Reason>)] = &[
            (Method::GET, &[("content-length", b"7")], body),
            (Method::HEAD, &[("content-length", b"1")], body),
            (Method::GET, &[("transfer-encoding", b"chunked")], body),
            (Method::GET, &[("content-length", b"0")], None),
            (Method::GET, &[("content-length", b"00")], None),
            (Method::GET, &[], None),
            (Method::POST, &[("content-length", b"7")], None),
            (Method::DELETE, &[("content-length", b"7")], None),
        ];
        for (method, pairs, expected) in cases {
            let refused = check_body_allowed(method, &headers(pairs))
                .err()
                .map(|r| r.reason);
            assert_eq!(refused, *expected, "{method} {pairs:?}");
        }
    }

    #[test]
    fn a_body_names_its_media_type_r_waf_3() {
        type Headers<'a> = &'a [(&'a str, &'a [u8])];
        let untyped = Some(Reason::ProtocolContentTypeMissing);
        let typed: (&str, &[u8]) = ("content-type", b"application/fhir+json");
        let cases: &[(Headers, Option<Reason>)] = &[
            (&[("content-length", b"7")], untyped),
            (&[("transfer-encoding", b"chunked")], untyped),
            (&[("content-length", b"7"), ("content-type", b" ")], untyped),
            (&[("content-length", b"7"), typed], None),
            (&[("transfer-encoding", b"chunked"), typed], None),
            // No content, nothing to guess: a zero length, or none, needs no type (a POST
            // without a body and without `Content-Length` is what hyper and curl send).
            (&[("content-length", b"0")], None),
            (&[("content-length", b"00")], None),
            (&[], None),
        ];
        for (pairs, expected) in cases {
            let refused = check_body_declared(&headers(pairs)).err().map(|r| r.reason);
            assert_eq!(refused, *expected, "{pairs:?}");
        }
    }

    #[test]
    fn a_target_naming_another_host_than_host_is_refused_r_waf_3() {
        let check = |pairs: &[(&str, &[u8])], authority| {
            check_host(&headers(pairs), RawHead::default(), authority)
                .err()
                .map(|r| r.reason)
        };
        let host: &[(&str, &[u8])] = &[("host", b"phr.example.test:8443")];
        for same in [
            "phr.example.test:8443",
            "phr.example.test",
            "PHR.Example.Test:443",
        ] {
            assert_eq!(check(host, Some(same)), None, "{same}");
        }
        // HTTP/2 without Host: its :authority is the site.
        assert_eq!(check(&[], Some("phr.example.test")), None);
        for other in [
            "admin.internal",
            "phr.example.test.evil",
            "evil@phr.example.test",
            "",
        ] {
            assert_eq!(
                check(host, Some(other)),
                Some(Reason::ProtocolInvalidHost),
                "{other:?}"
            );
        }
        assert_eq!(
            absolute_form_authority(b"https://phr.example.test:8443/fhir?x=1"),
            Some("phr.example.test:8443")
        );
        assert_eq!(absolute_form_authority(b"http://a.test?q"), Some("a.test"));
        assert_eq!(absolute_form_authority(b"/fhir/Patient/1"), None);
    }

    #[test]
    fn a_host_the_listener_does_not_serve_is_refused_r_net_2() {
        let served: Vec<String> = ["phr.example.test", "127.0.0.1", "[::1]"]
            .iter()
            .map(|h| served_host_name(h).expect("valid entry"))
            .collect();
        let check = |pairs: &[(&str, &[u8])], authority, served: &[String]| {
            let headers = headers(pairs);
            let named = check_host(&headers, RawHead::default(), authority).expect("valid host");
            check_host_served(named, served).err().map(|r| r.reason)
        };
        for host in [
            &b"phr.example.test"[..],
            b"PHR.Example.TEST:8443",
            b"phr.example.test.",
            b"phr.example.test.:443",
            b"127.0.0.1:8443",
            b"[::1]:8443",
        ] {
            assert_eq!(check(&[("host", host)], None, &served), None, "{host:?}");
        }
        // HTTP/2 without Host: its :authority names the host.
        assert_eq!(check(&[], Some("phr.example.test:8443"), &served), None);
        let refused = Some(Reason::RouteHostNotServed);
        for host in [
            &b"evil.example"[..],
            b"phr.example.test.evil.example",
            b"www.phr.example.test",
            b"xphr.example.test",
            b"127.0.0.2",
            b"[::2]",
            b"phr.example.test..",
        ] {
            assert_eq!(check(&[("host", host)], None, &served), refused, "{host:?}");
        }
        assert_eq!(check(&[], Some("evil.example"), &served), refused);
        assert_eq!(check(&[], None, &served), refused, "no host named at all");
        // No list: any host, and none.
        assert_eq!(check(&[("host", b"evil.example")], None, &[]), None);
        assert_eq!(check(&[], None, &[]), None);

        assert_eq!(
            served_host_name("PHR.example.TEST."),
            Some("phr.example.test".into())
        );
        for bad in [
            "",
            ".",
            "phr.example.test:443",
            "a b",
            "*.example.test",
            "[::1",
        ] {
            assert_eq!(served_host_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_host_that_is_no_authority_is_refused_r_waf_3() {
        let host = |pairs: &[(&str, &[u8])]| {
            check_host(&headers(pairs), RawHead::default(), None)
                .err()
                .map(|r| r.reason)
        };
        for good in [
            &b"phr.example.test"[..],
            b"localhost:8443",
            b"127.0.0.1",
            b"[::1]:8443",
            b"[2001:db8::1]",
            b"api_internal.local",
        ] {
            assert_eq!(host(&[("host", good)]), None, "{good:?}");
        }
        assert_eq!(host(&[]), None, "HTTP/2 names its authority elsewhere");
        let http1 = RawHead::of(b"GET / HTTP/1.0\r\n\r\n", false);
        assert_eq!(
            check_host(&headers(&[]), http1, None)
                .err()
                .map(|r| r.reason),
            Some(Reason::ProtocolInvalidHost),
            "HTTP/1 without Host"
        );
        assert_eq!(
            check_host(&headers(&[("host", b"a.test")]), http1, None).err(),
            None
        );
        for bad in [
            &b""[..],
            b"localhost%00",
            b"localhost%1F",
            b"%00",
            b"evil.test@phr.example.test",
            b"a b",
            b"phr.example.test:",
            b"phr.example.test:99999x",
            b"[::1",
            b"[]",
            b"phr.example.test/admin",
        ] {
            assert_eq!(
                host(&[("host", bad)]),
                Some(Reason::ProtocolInvalidHost),
                "{bad:?}"
            );
        }
        assert_eq!(
            host(&[("host", b"a.test"), ("host", b"b.test")]),
            Some(Reason::ProtocolInvalidHost),
            "two hosts"
        );
    }

    #[test]
    fn plain_framing_passes() {
        assert_eq!(reason(&[]), None);
        assert_eq!(reason(&[("content-length", b"0")]), None);
        assert_eq!(reason(&[("content-length", b"16384")]), None);
        assert_eq!(reason(&[("transfer-encoding", b"chunked")]), None);
        assert_eq!(reason(&[("transfer-encoding", b"Chunked")]), None);
    }

    #[test]
    fn smuggling_shapes_are_refused_r_waf_3() {
        use Reason::*;
        type Headers<'a> = &'a [(&'a str, &'a [u8])];
        let cases: &[(Headers, Reason)] = &[
            (
                &[("content-length", b"5"), ("transfer-encoding", b"chunked")],
                ProtocolLengthWithTransferEncoding,
            ),
            (
                &[("content-length", b"5"), ("content-length", b"5")],
                ProtocolDuplicateContentLength,
            ),
            (
                &[("content-length", b"5, 6")],
                ProtocolDuplicateContentLength,
            ),
            (&[("content-length", b"+5")], ProtocolInvalidContentLength),
            (&[("content-length", b"0x10")], ProtocolInvalidContentLength),
            (&[("content-length", b"")], ProtocolInvalidContentLength),
            (
                &[("content-length", b"99999999999999999999")],
                ProtocolInvalidContentLength,
            ),
            (
                &[("transfer-encoding", b"gzip, chunked")],
                ProtocolUnsupportedTransferEncoding,
            ),
            (
                &[("transfer-encoding", b"chunked, chunked")],
                ProtocolUnsupportedTransferEncoding,
            ),
            (
                &[
                    ("transfer-encoding", b"chunked"),
                    ("transfer-encoding", b"chunked"),
                ],
                ProtocolUnsupportedTransferEncoding,
            ),
            (
                &[("transfer-encoding", b" chunked")],
                ProtocolUnsupportedTransferEncoding,
            ),
            (
                &[("transfer-encoding", b"xchunked")],
                ProtocolUnsupportedTransferEncoding,
            ),
            (
                &[("transfer-encoding", b"identity")],
                ProtocolUnsupportedTransferEncoding,
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(reason(pairs), Some(*expected), "{pairs:?}");
        }
    }
}
