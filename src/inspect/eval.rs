//! `phr-gateway inspect eval`: corpora of HTTP request cases (`../shared/corpora/README.md`'s
//! format) through the same inspection the proxy runs — the framing and size checks, the
//! head's [`super::inspect`] and the body's [`super::check_body`] — with no network. Per
//! class: true and false positives and negatives; and throughput. A case counts as detected
//! when it would be refused, or a field of it neutralised.
//!
//! Without a policy every case is inspected with the settings a new operator's route gets
//! (`block`, no exclusions, no files). With one, a case its routes match is inspected with
//! that route's settings (mode, exclusions, neutralised fields, files) and the policy's
//! `[limits]`; a case no route matches keeps the defaults, since routing — not inspection —
//! would refuse it.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// One case of a corpus.
#[derive(Clone, Debug, Deserialize)]
pub struct Case {
    /// Its id.
    pub id: String,
    /// Its attack class, or `benign`.
    pub class: String,
    /// `block` or `allow`.
    pub expect: String,
    /// The method (not inspected: routing checks it).
    #[serde(default)]
    pub method: String,
    /// The request target, query included.
    pub path: String,
    /// `[name, value]` pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Option<String>,
    /// Whether `body` is base64.
    #[serde(default)]
    pub body_base64: bool,
    /// What the source's harness says of how the case is sent.
    #[serde(default)]
    pub meta: Meta,
}

/// The parts of a case's `meta` that change what goes on the wire (CRS's go-ftw tests set
/// them; the other sources leave them out).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Meta {
    /// The version on the request line (`HTTP/1.0`, `HTTP/4.0`, `JUNK/1.0`); absent, the
    /// harness's own (HTTP/1.1, with the `Host` it adds).
    #[serde(default)]
    pub version: Option<String>,
    /// `false`: the headers are sent exactly as listed, without a `Content-Length` added.
    #[serde(default)]
    pub autocomplete_headers: Option<bool>,
}

/// How a request line's version reaches the gateway.
enum Version {
    /// HTTP/1.0 or 1.1 as the case says: `Host` is required (RFC 9112 section 3.2).
    Http1,
    /// HTTP/2, or no version given (the harness adds `Host` itself).
    Other,
}

/// The version a case's request line carries; `Err` when pingora's HTTP/1 parser (httparse)
/// refuses the line with 400 before any of the gateway's steps runs: it reads only
/// `HTTP/1.0` and `HTTP/1.1` (`tests/inspect.rs` sends the others as raw bytes).
fn version(meta: &Meta) -> Result<Version, ()> {
    match meta.version.as_deref() {
        None | Some("HTTP/2" | "HTTP/2.0") => Ok(Version::Other),
        Some("HTTP/1.0" | "HTTP/1.1") => Ok(Version::Http1),
        Some(_) => Err(()),
    }
}

/// Counts for one class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Attacks detected.
    pub tp: u64,
    /// Attacks missed.
    #[serde(rename = "fn")]
    pub missed: u64,
    /// Legitimate requests refused.
    pub fp: u64,
    /// Legitimate requests passed.
    pub tn: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.tp += other.tp;
        self.missed += other.missed;
        self.fp += other.fp;
        self.tn += other.tn;
    }
}

/// The evaluation's result.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// All classes together.
    pub total: Counts,
    /// Per class (`benign` holds the legitimate cases).
    pub classes: BTreeMap<String, Counts>,
    /// Inspection throughput over the cases' bytes, in MB/s.
    pub mb_per_s: f64,
    /// The issue's own measure: throughput over the cases whose body is JSON (a `json` or
    /// `+json` type), counting their body bytes and the time spent on those cases whole.
    /// `None` when no case has one. A first sight: the detectors' lazy automata build their
    /// states as the corpus meets them, as in a gateway just started.
    pub json_body_mb_per_s: Option<f64>,
    /// The same cases again once the automata hold the states the first pass built, with no
    /// verdict remembered from it (each value is judged anew): a gateway that has been
    /// running, meeting text it has not seen.
    pub json_body_warm_mb_per_s: Option<f64>,
    /// Cases that could not be built into a request (counted nowhere else).
    pub unreadable: u64,
    /// Ids of missed attacks and refused legitimate cases (the first 5,000 of each).
    #[serde(skip)]
    pub examples: Vec<String>,
}

/// Why inspection (and framing) would refuse this case — the rule id or reason code — or
/// neutralise it (`neutralised`); `None` when it passes. `None` outside when the case cannot
/// be made into a request.
pub fn verdict(
    case: &Case,
    policy: Option<&crate::policy::Snapshot>,
) -> Option<Option<&'static str>> {
    // The target as the proxy reads it (pingora builds an `http::Uri`): a fragment is refused
    // from the raw target below, a target it cannot parse (`\\index.html`) never reaches the
    // gateway's steps.
    let Ok(target) = http::Uri::try_from(case.path.as_str()) else {
        return Some(Some("protocol-target"));
    };
    let (path, query) = (target.path(), target.query());
    let authority = target.authority().map(|a| a.as_str());
    let mut headers = http::HeaderMap::new();
    for (name, value) in &case.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
        // A value with CR or LF cannot be sent as one header: a client or proxy splits or
        // refuses it. The case is an attack either way; the gateway's parser refuses it.
        let Ok(value) = http::HeaderValue::from_bytes(value.as_bytes()) else {
            return Some(Some("protocol-header"));
        };
        headers.append(name, value);
    }
    let Ok(method) = http::Method::from_bytes(case.method.as_bytes()) else {
        return Some(Some("protocol-method"));
    };
    let Ok(version) = version(&case.meta) else {
        return Some(Some("protocol-version"));
    };
    // The headers CRS's harness (go-ftw) completes, unless the case says it does not: a body
    // without a type is sent as a form, and a body — or a method that defines one — with its
    // length. Without them an HTTP/1 request with neither `Content-Length` nor
    // `Transfer-Encoding` has no body (RFC 9112 section 6.3): the bytes after its head are
    // the next request's, not this one's.
    let sent_body = case.body.as_ref().is_some_and(|b| !b.is_empty());
    let autocomplete = case.meta.autocomplete_headers != Some(false);
    let unframed = !headers.contains_key(http::header::CONTENT_LENGTH)
        && !headers.contains_key(http::header::TRANSFER_ENCODING);
    let body_is_sent = !(sent_body && unframed && !autocomplete);
    if autocomplete && sent_body && !crate::protocol::has_content_type(&headers) {
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    let defines_content = ["POST", "PUT", "PATCH", "DELETE"].contains(&case.method.as_str());
    if autocomplete && unframed && (sent_body || defines_content) {
        let length = case.body.as_ref().map_or(0, String::len);
        headers.insert(http::header::CONTENT_LENGTH, length.into());
    }
    // The target as sent. A case without `Host` and without its own version is not judged
    // for it: like `Content-Length`, the harness that replays a corpus adds it (the proxy
    // refuses HTTP/1 without one).
    let raw = crate::protocol::RawHead {
        fragment: case.path.contains('#'),
        // go-ftw sends HTTP/1.1 unless told otherwise; what it adds is left out above.
        http1: matches!(version, Version::Http1) || (case.meta.version.is_none() && !autocomplete),
        ..crate::protocol::RawHead::default()
    };
    if let Err(refusal) = crate::protocol::check_no_tunnel(&method)
        .and_then(|()| crate::protocol::check_framing(&headers, raw))
        .and_then(|()| crate::protocol::check_body_allowed(&method, &headers))
        .and_then(|()| crate::protocol::check_body_declared(&headers))
        .and_then(|()| crate::protocol::check_host(&headers, raw, authority))
        .and_then(|named| {
            let served = policy.map_or(&[][..], |p| &p.listeners.hosts[..]);
            crate::protocol::check_host_served(named, served)
        })
    {
        return Some(Some(refusal.reason.code()));
    }
    let defaults = crate::protocol::RequestLimits::default();
    let limits = policy.map_or(&defaults, |p| &p.limits.request);
    if let Err(refusal) = crate::protocol::check_size(path, query, &headers, limits) {
        return Some(Some(refusal.reason.code()));
    }
    // Routing serves these methods only (`policy::compile`): any other is refused before
    // inspection.
    const ROUTABLE: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    if !ROUTABLE.contains(&case.method.as_str()) {
        return Some(Some("protocol-method"));
    }
    let body = match (&case.body, case.body_base64) {
        _ if !body_is_sent => None,
        (Some(b), true) => Some(base64::engine::general_purpose::STANDARD.decode(b).ok()?),
        (Some(b), false) => Some(b.as_bytes().to_vec()),
        (None, _) => None,
    };
    let default_route = super::RouteInspection::default();
    let route = policy
        .and_then(|p| match p.routes.lookup(&method, path) {
            crate::route::Lookup::Found(m) => Some(&m.route.inspect),
            _ => None,
        })
        .unwrap_or(&default_route);
    if !route.is_on() {
        return Some(None);
    }
    let target = super::Target {
        method: &method,
        path,
        query,
        headers: &headers,
        authority,
        body: None,
    };
    let head = super::inspect_on(&target, route);
    if let Some(first) = route.refusing(&head) {
        return Some(Some(first.hit.rule));
    }
    let Some(body) = body.filter(|b| !b.is_empty()) else {
        return Some(None);
    };
    if let Some(refusal) = crate::protocol::check_json_depth(&body, &headers, limits)
        .or_else(|| crate::protocol::check_xml_depth(&body, &headers, limits))
    {
        return Some(Some(refusal.reason.code()));
    }
    let checked = super::check_body(&body, &headers, route);
    if let Some(refusal) = checked.refusal {
        // The refusing rule when inspection refused; else the reason (a file, a framing).
        let rule = route
            .refusing(&checked.findings)
            .filter(|_| refusal.reason == crate::decision::Reason::InspectBlocked)
            .map_or(refusal.reason.code(), |f| f.hit.rule);
        return Some(Some(rule));
    }
    // A finding in a neutralised field was rewritten away: detected.
    Some(
        checked
            .findings
            .iter()
            .any(|f| route.neutralises(f))
            .then_some("neutralised"),
    )
}

/// Whether a case sends a JSON body: a non-empty body of a type inspection reads as JSON.
fn has_json_body(case: &Case) -> bool {
    case.body.as_ref().is_some_and(|b| !b.is_empty())
        && !case.body_base64
        && case
            .headers
            .iter()
            .any(|(name, value)| name.eq_ignore_ascii_case("content-type") && super::is_json(value))
}

/// Run every case of `corpora` (JSON lines), with `policy`'s routes when one is given.
pub fn run(
    corpora: &mut [Box<dyn BufRead>],
    policy: Option<&crate::policy::Snapshot>,
) -> std::io::Result<Report> {
    // The detectors' patterns compile on first use: once, when the gateway starts, not per
    // request, so not in the time measured either.
    super::warm_up();
    let mut report = Report::default();
    let mut bytes = 0usize;
    let mut spent = Duration::ZERO;
    let (mut json_bytes, mut json_spent) = (0usize, Duration::ZERO);
    let mut json_cases = Vec::new();
    let mut missed_examples = 0;
    let mut fp_examples = 0;
    for corpus in corpora.iter_mut() {
        for line in corpus.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let Ok(case) = serde_json::from_str::<Case>(&line) else {
                report.unreadable += 1;
                continue;
            };
            bytes += case.path.len()
                + case.body.as_ref().map_or(0, String::len)
                + case
                    .headers
                    .iter()
                    .map(|(n, v)| n.len() + v.len())
                    .sum::<usize>();
            let started = Instant::now();
            let Some(rule) = verdict(&case, policy) else {
                report.unreadable += 1;
                continue;
            };
            let refused = rule.is_some();
            let elapsed = started.elapsed();
            spent += elapsed;
            if let Some(body) = case.body.as_ref().filter(|_| has_json_body(&case)) {
                json_bytes += body.len();
                json_spent += elapsed;
                json_cases.push(case.clone());
            }
            let attack = case.expect == "block";
            let counts = match (attack, refused) {
                (true, true) => Counts {
                    tp: 1,
                    ..Counts::default()
                },
                (true, false) => Counts {
                    missed: 1,
                    ..Counts::default()
                },
                (false, true) => Counts {
                    fp: 1,
                    ..Counts::default()
                },
                (false, false) => Counts {
                    tn: 1,
                    ..Counts::default()
                },
            };
            if counts.missed == 1 && missed_examples < 5000 {
                missed_examples += 1;
                report.examples.push(format!("missed {}", case.id));
            }
            if counts.fp == 1 && fp_examples < 5000 {
                fp_examples += 1;
                report
                    .examples
                    .push(format!("refused {} {}", case.id, rule.unwrap_or("-")));
            }
            report.total.add(counts);
            report.classes.entry(case.class).or_default().add(counts);
        }
    }
    report.mb_per_s = bytes as f64 / 1e6 / spent.as_secs_f64().max(1e-9);
    report.json_body_mb_per_s =
        (json_bytes > 0).then(|| json_bytes as f64 / 1e6 / json_spent.as_secs_f64().max(1e-9));
    super::forget_seen_values();
    let started = Instant::now();
    for case in &json_cases {
        std::hint::black_box(verdict(case, policy));
    }
    let warm = started.elapsed();
    report.json_body_warm_mb_per_s =
        (json_bytes > 0).then(|| json_bytes as f64 / 1e6 / warm.as_secs_f64().max(1e-9));
    Ok(report)
}

/// The report as a table.
pub fn table(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| class | tp | fn | fp | tn | detected | legitimate refused |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let pct = |a: u64, b: u64| {
        if a + b == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}%", 100.0 * a as f64 / (a + b) as f64)
        }
    };
    let mut row = |name: &str, c: &Counts| {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            c.tp,
            c.missed,
            c.fp,
            c.tn,
            pct(c.tp, c.missed),
            pct(c.fp, c.tn)
        );
    };
    for (class, counts) in &report.classes {
        row(class, counts);
    }
    row("total", &report.total);
    let _ = writeln!(out, "\ninspection throughput: {:.1} MB/s", report.mb_per_s);
    if let Some(json) = report.json_body_mb_per_s {
        let _ = writeln!(out, "JSON bodies: {json:.1} MB/s");
    }
    if let Some(json) = report.json_body_warm_mb_per_s {
        let _ = writeln!(out, "JSON bodies, automata warm: {json:.1} MB/s");
    }
    if report.unreadable > 0 {
        let _ = writeln!(out, "cases that are not requests: {}", report.unreadable);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(json: &str) -> Case {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_version_pingora_cannot_parse_is_refused_and_http1_needs_a_host() {
        for version in ["HTTP/4.0", "HTTP/0.9", "JUNK/1.0", "1.1", ""] {
            let c = case(&format!(
                r#"{{"id":"v","class":"protocol","expect":"block","method":"GET","path":"/",
                   "headers":[["Host","localhost"]],"body":null,"meta":{{"version":"{version}"}}}}"#
            ));
            assert_eq!(
                verdict(&c, None),
                Some(Some("protocol-version")),
                "{version}"
            );
        }
        let no_host = |meta: &str| {
            case(&format!(
                r#"{{"id":"h","class":"protocol","expect":"block","method":"GET","path":"/",
                   "headers":[["Accept","*/*"]],"body":null,"meta":{meta}}}"#
            ))
        };
        // The case says HTTP/1.0 and sends no Host: refused as the proxy refuses it.
        assert_eq!(
            verdict(&no_host(r#"{"version":"HTTP/1.0"}"#), None),
            Some(Some("protocol.invalid_host"))
        );
        // HTTP/2 names its authority elsewhere; without a version the harness adds Host.
        assert_eq!(
            verdict(&no_host(r#"{"version":"HTTP/2"}"#), None),
            Some(None)
        );
        assert_eq!(verdict(&no_host("{}"), None), Some(None));
    }

    #[test]
    fn connect_is_refused_as_the_proxy_refuses_it() {
        let connect = case(
            r#"{"id":"c","class":"protocol","expect":"block","method":"CONNECT",
               "path":"www.example.org:443","headers":[["Host","www.example.org:443"]],"body":null}"#,
        );
        assert_eq!(
            verdict(&connect, None),
            Some(Some("protocol.connect_refused"))
        );
    }

    #[test]
    fn json_bodies_are_told_by_their_media_type() {
        let with = |content_type: &str, body: &str, base64: bool| {
            case(&format!(
                r#"{{"id":"j","class":"benign","expect":"allow","method":"POST","path":"/",
                   "headers":[["Content-Type","{content_type}"]],"body":{body},"body_base64":{base64}}}"#
            ))
        };
        for json in [
            "application/json",
            "application/fhir+json; charset=utf-8",
            "Application/JSON",
        ] {
            assert!(has_json_body(&with(json, r#""{}""#, false)), "{json}");
        }
        assert!(!has_json_body(&with("text/plain", r#""{}""#, false)));
        assert!(!has_json_body(&with(
            "application/x-www-form-urlencoded",
            r#""a=1""#,
            false
        )));
        assert!(!has_json_body(&with("application/json", "null", false)));
        assert!(!has_json_body(&with("application/json", r#""e30=""#, true)));
    }

    #[test]
    fn a_body_sent_without_its_length_is_not_this_requests_body() {
        let request = |method: &str, meta: &str| {
            case(&format!(
                r#"{{"id":"b","class":"sqli","expect":"block","method":"{method}","path":"/",
                   "headers":[["Host","localhost"],["Content-Type","application/x-www-form-urlencoded"]],
                   "body":"q=1' union select password from users--","meta":{meta}}}"#
            ))
        };
        let as_listed = r#"{"autocomplete_headers":false}"#;
        // The harness adds Content-Length: the body is this request's, and refused.
        assert!(
            matches!(verdict(&request("POST", "{}"), None), Some(Some(r)) if r.starts_with("sqli"))
        );
        assert!(
            matches!(verdict(&request("DELETE", "{}"), None), Some(Some(r)) if r.starts_with("sqli"))
        );
        // Sent as listed, the request has no body (RFC 9112 section 6.3).
        assert_eq!(verdict(&request("POST", as_listed), None), Some(None));
        assert_eq!(verdict(&request("DELETE", as_listed), None), Some(None));
    }

    #[test]
    fn an_untyped_body_is_a_form_when_the_harness_completes_the_headers() {
        let request = |meta: &str| {
            case(&format!(
                r#"{{"id":"t","class":"sqli","expect":"block","method":"PUT","path":"/r/1",
                   "headers":[["Host","localhost"],["Content-Length","21"]],
                   "body":"name=it's+fine+today","meta":{meta}}}"#
            ))
        };
        // go-ftw adds `application/x-www-form-urlencoded` to a body without a type.
        assert_eq!(verdict(&request("{}"), None), Some(None));
        // Sent as listed, the body names no type: refused before it is read (R-WAF-3).
        assert_eq!(
            verdict(&request(r#"{"autocomplete_headers":false}"#), None),
            Some(Some("protocol.content_type_missing"))
        );
    }
}
