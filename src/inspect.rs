//! Input inspection, 無害化 (R-WAF-1, R-WAF-3): every value of a request a backend will read —
//! path segments, query parameters (names and values), cookies, header values, and JSON,
//! urlencoded and XML bodies — is normalised ([`normalise`]) and run through the detectors
//! ([`detect`]). A route blocks (`inspect = "block"`, the default), only records
//! (`"detect"`), or skips inspection (`"off"`).
//!
//! FHIR narratives (`text.div`) hold XHTML by design: they are checked against the narrative
//! rules (no script, no event attributes, no `javascript:` URLs) instead of the generic XSS
//! patterns, so that a patient's record is not blocked for being a record.

pub mod detect;
pub mod eval;
pub mod normalise;

use http::HeaderMap;

pub use detect::{Class, Hit};
use normalise::{normalise, Plus};

/// Where in the request a finding was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// A path segment.
    Path,
    /// A query parameter (name or value).
    Query,
    /// A header value.
    Header,
    /// A cookie (name or value).
    Cookie,
    /// The body.
    Body,
}

/// One rule that fired, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub hit: Hit,
    /// Where.
    pub place: Place,
}

/// What a route does with findings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Refuse the request (403 `inspect.blocked`).
    #[default]
    Block,
    /// Forward it, and record the rule ids.
    Detect,
    /// Inspect nothing.
    Off,
}

/// A route's inspection settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteInspection {
    /// Block, detect or off.
    pub mode: Mode,
    /// Rule ids or class names not applied here.
    pub exclude: Vec<String>,
}

impl RouteInspection {
    /// Whether the route inspects at all.
    pub fn is_on(&self) -> bool {
        self.mode != Mode::Off
    }

    /// The findings this route does not exclude.
    pub fn keep(&self, findings: Vec<Finding>) -> Vec<Finding> {
        if self.exclude.is_empty() {
            return findings;
        }
        findings
            .into_iter()
            .filter(|f| {
                !self
                    .exclude
                    .iter()
                    .any(|e| e == f.hit.rule || e == f.hit.class.name())
            })
            .collect()
    }
}

/// Whether `text` is a rule id or a class name (for policy exclusions).
pub fn is_rule_or_class(text: &str) -> bool {
    detect::RULE_IDS.contains(&text) || detect::CLASSES.iter().any(|c| c.name() == text)
}

impl Place {
    /// Its name in refusals and records.
    pub const fn name(self) -> &'static str {
        match self {
            Place::Path => "path",
            Place::Query => "query",
            Place::Header => "header",
            Place::Cookie => "cookie",
            Place::Body => "body",
        }
    }
}

/// Headers whose values are not inspected: credentials the identity step verifies, and
/// content negotiation and framing that the protocol step checks.
const SKIPPED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "content-length",
    "transfer-encoding",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "host",
    "if-none-match",
    "if-match",
];

/// The most findings kept for one request (a detect-mode record lists their rule ids).
const MAX_FINDINGS: usize = 8;

/// What inspection reads of a request.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The path, without the query.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body, when it was read.
    pub body: Option<&'a [u8]>,
}

/// Whether a raw value is an identifier, a date or a number (letters, digits, `-`, single `_`;
/// short): no detector can fire on it, so it is not normalised at all. Most values of a PHR
/// API are such (`p-001`, `2026-04-10`, `self-management`).
fn plain(raw: &[u8]) -> bool {
    raw.len() <= 128
        && raw
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !raw.windows(2).any(|w| w == b"__")
}

/// Inspect one value: nothing for a plain one, else normalised and run through the detectors.
fn value_hit(raw: &[u8], plus: Plus) -> Option<Hit> {
    if plain(raw) {
        return None;
    }
    detect::value(&normalise(raw, plus))
}

/// Verdicts on header values seen before: a client sends the same `User-Agent` on every
/// request, and libinjection's word lookup is most of an uncached header's cost. Keyed by the
/// whole value (no hash collision can pass an attack as a benign value seen before); values
/// over 512 bytes are not kept. `Referer` and `Origin` name pages, never addresses a backend
/// fetches: an internal host there is not SSRF (a staff portal on `http://10.0.0.5/`).
fn header_hit(name: &http::HeaderName, raw: &[u8]) -> Option<Hit> {
    type Verdicts = quick_cache::sync::Cache<Box<[u8]>, Option<Hit>>;
    // One table per SSRF setting, so that a hit is a lookup by the borrowed value.
    static FETCHED: std::sync::LazyLock<Verdicts> =
        std::sync::LazyLock::new(|| Verdicts::new(16_384));
    static PAGES: std::sync::LazyLock<Verdicts> = std::sync::LazyLock::new(|| Verdicts::new(4_096));
    if plain(raw) {
        return None;
    }
    let fetched = !matches!(name.as_str(), "referer" | "origin");
    let verdict = || detect::value_with(&normalise(raw, Plus::Literal), fetched);
    if raw.len() > 512 {
        return verdict();
    }
    let seen = if fetched { &FETCHED } else { &PAGES };
    if let Some(found) = seen.get(raw) {
        return found;
    }
    let found = verdict();
    seen.insert(raw.into(), found);
    found
}

struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, hit: Option<Hit>, place: Place) -> bool {
        if let Some(hit) = hit {
            if !self.0.iter().any(|f| f.hit == hit) {
                self.0.push(Finding { hit, place });
            }
        }
        self.0.len() >= MAX_FINDINGS
    }
}

/// The refusal of a request whose inspection found `finding` (R-WAF-1). It names the class and
/// the place, not the rule (the access record has it, for the operator's exclusions).
pub fn refusal(finding: &Finding) -> crate::decision::Refusal {
    crate::decision::Refusal::new(
        crate::decision::Reason::InspectBlocked,
        format!(
            "the request's {} holds what input inspection takes for {}; if it is legitimate, give the operator this request's id",
            finding.place.name(),
            finding.hit.class.name()
        ),
    )
}

/// Inspect a request's body alone (its head was inspected when it was decided).
pub fn inspect_body_of(body: &[u8], headers: &HeaderMap) -> Vec<Finding> {
    let mut found = Findings(Vec::new());
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    inspect_body(body, content_type, &mut found);
    found.0
}

/// Inspect a request's head (path, query, cookies, headers) and, when given, its body.
pub fn inspect(target: &Target<'_>) -> Vec<Finding> {
    let mut found = Findings(Vec::new());
    inspect_head(target, &mut found);
    if let Some(body) = target.body {
        let content_type = target
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        inspect_body(body, content_type, &mut found);
    }
    found.0
}

fn inspect_head(target: &Target<'_>, found: &mut Findings) {
    for segment in target.path.split('/').filter(|s| !s.is_empty()) {
        if found.add(value_hit(segment.as_bytes(), Plus::Literal), Place::Path) {
            return;
        }
    }
    if let Some(query) = target.query {
        if pairs(query, Place::Query, found) {
            return;
        }
    }
    for value in target.headers.get_all(http::header::COOKIE) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for cookie in text.split(';') {
            let (name, value) = cookie.trim().split_once('=').unwrap_or((cookie.trim(), ""));
            let n = normalise(name.as_bytes(), Plus::Literal);
            if found.add(detect::name(&n), Place::Cookie)
                || found.add(value_hit(name.as_bytes(), Plus::Literal), Place::Cookie)
                || found.add(value_hit(value.as_bytes(), Plus::Literal), Place::Cookie)
            {
                return;
            }
        }
    }
    for (name, value) in target.headers {
        if SKIPPED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        if found.add(header_hit(name, value.as_bytes()), Place::Header) {
            return;
        }
    }
}

/// `name=value&...` (a query or an urlencoded form): names and values. Returns whether the
/// findings are full.
fn pairs(text: &str, place: Place, found: &mut Findings) -> bool {
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let n = normalise(name.as_bytes(), Plus::Space);
        if found.add(detect::name(&n), place)
            || found.add(value_hit(name.as_bytes(), Plus::Space), place)
            || found.add(value_hit(value.as_bytes(), Plus::Space), place)
        {
            return true;
        }
    }
    false
}

fn inspect_body(body: &[u8], content_type: &str, found: &mut Findings) {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media == "application/json" || media.ends_with("+json") {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(json) => {
                walk_json(&json, None, found);
            }
            // Not JSON after all: inspected as text.
            Err(_) => text_body(body, found),
        }
    } else if media.ends_with("/xml") || media.ends_with("+xml") {
        xml_body(body, found);
    } else if media.starts_with("multipart/") {
        multipart_body(body, content_type, found);
    } else if media == "application/x-www-form-urlencoded" {
        pairs(&String::from_utf8_lossy(body), Place::Body, found);
    } else {
        // No or another type: what a lenient backend might make of it, a form or text.
        if !pairs(&String::from_utf8_lossy(body), Place::Body, found) {
            text_body(body, found);
        }
    }
}

fn text_body(body: &[u8], found: &mut Findings) {
    if std::str::from_utf8(body).is_ok() {
        found.add(detect::value(&normalise(body, Plus::Literal)), Place::Body);
    }
}

/// An XML body: DTDs and entities are refused (XXE); attribute values and text are inspected
/// as values.
fn xml_body(body: &[u8], found: &mut Findings) {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    if lower.contains("<!doctype") || lower.contains("<!entity") {
        found.add(
            Some(Hit {
                rule: "xxe-100",
                class: Class::Xxe,
            }),
            Place::Body,
        );
        return;
    }
    // Attribute values (`a="…"`, `a='…'`) and the text between tags.
    let mut values: Vec<&str> = Vec::new();
    for (i, piece) in text.split(['"', '\'']).enumerate() {
        if i % 2 == 1 {
            values.push(piece);
        }
    }
    for piece in text.split('>').filter_map(|p| p.split('<').next()) {
        if !piece.trim().is_empty() {
            values.push(piece);
        }
    }
    for value in values {
        if found.add(
            detect::value(&normalise(value.as_bytes(), Plus::Literal)),
            Place::Body,
        ) {
            return;
        }
    }
}

/// A multipart body: each part's name and file name, and its content when it is text.
/// (Parts are not rebuilt here: file disarm is a later step.)
fn multipart_body(body: &[u8], content_type: &str, found: &mut Findings) {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'));
    let Some(boundary) = boundary.filter(|b| !b.is_empty()) else {
        text_body(body, found);
        return;
    };
    let text = String::from_utf8_lossy(body);
    let delimiter = format!("--{boundary}");
    for part in text.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.trim_start_matches(['\r', '\n']);
        let (head, content) = part
            .split_once("\r\n\r\n")
            .or_else(|| part.split_once("\n\n"))
            .unwrap_or((part, ""));
        for line in head.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if !name.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for param in value.split(';').skip(1) {
                let Some((key, v)) = param.trim().split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                let n = normalise(v.as_bytes(), Plus::Literal);
                let hit = if key.eq_ignore_ascii_case("name") {
                    detect::name(&n).or_else(|| detect::value(&n))
                } else {
                    detect::value(&n)
                };
                if found.add(hit, Place::Body) {
                    return;
                }
            }
        }
        let content = content.trim_end_matches(['\r', '\n']);
        if found.add(
            detect::value(&normalise(content.as_bytes(), Plus::Literal)),
            Place::Body,
        ) {
            return;
        }
    }
}

/// Whether a JSON key names a URL the backend may fetch (a webhook, a callback), where an
/// internal address is SSRF; other URLs in a FHIR document are identifiers and references.
fn fetched_url_key(key: Option<&str>) -> bool {
    key.is_some_and(|k| {
        let k = k.to_ascii_lowercase();
        [
            "endpoint", "callback", "webhook", "redirect", "notify", "fetch", "download", "proxy",
        ]
        .iter()
        .any(|w| k.contains(w))
    })
}

/// Keys and string values of a JSON document; `parent` is the key holding `value`.
fn walk_json(value: &serde_json::Value, parent: Option<&str>, found: &mut Findings) -> bool {
    match value {
        serde_json::Value::String(text) if plain(text.as_bytes()) => false,
        serde_json::Value::String(text) => {
            let n = normalise(text.as_bytes(), Plus::Literal);
            found.add(detect::value_with(&n, fetched_url_key(parent)), Place::Body)
        }
        serde_json::Value::Array(items) => items.iter().any(|v| walk_json(v, parent, found)),
        serde_json::Value::Object(map) => map.iter().any(|(key, v)| {
            let n = normalise(key.as_bytes(), Plus::Literal);
            if found.add(detect::name(&n), Place::Body) {
                return true;
            }
            match (parent, key.as_str(), v) {
                // A FHIR narrative: XHTML by design, held to the narrative rules.
                (Some("text"), "div", serde_json::Value::String(xhtml)) => {
                    found.add(narrative(xhtml), Place::Body)
                }
                _ => walk_json(v, Some(key), found),
            }
        }),
        _ => false,
    }
}

/// FHIR's narrative rules (R4 `txt-1`, `txt-2`): no scripts, event attributes, `javascript:`
/// URLs or active elements in `text.div`.
fn narrative(xhtml: &str) -> Option<Hit> {
    let n = normalise(xhtml.as_bytes(), Plus::Literal);
    let folded = &n.folded;
    let active = [
        "<script",
        "<iframe",
        "<object",
        "<embed",
        "<form",
        "<style",
        "<link",
        "<meta",
        "<base",
        "javascript:",
        "vbscript:",
        "data:text/html",
    ];
    let event = folded.match_indices(" on").any(|(at, _)| {
        let rest = &folded[at + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        name_len >= 3 && rest[name_len..].trim_start().starts_with('=')
    });
    (event || active.iter().any(|a| folded.contains(a))).then_some(Hit {
        rule: "xss-120",
        class: Class::Xss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(
        path: &str,
        query: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Vec<&'static str> {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap_or(http::header::WARNING),
                http::HeaderValue::from_str(v).unwrap_or(http::HeaderValue::from_static("-")),
            );
        }
        inspect(&Target {
            path,
            query,
            headers: &map,
            body: body.map(str::as_bytes),
        })
        .iter()
        .map(|f| f.hit.rule)
        .collect()
    }

    #[test]
    fn every_place_is_inspected() {
        let json = [("content-type", "application/fhir+json")];
        assert_eq!(
            findings("/x/..%2f..%2fetc%2fpasswd", None, &[], None),
            ["lfi-100"]
        );
        assert_eq!(
            findings("/x", Some("q=1%27%20or%20%271%27%3D%271"), &[], None),
            ["sqli-110"]
        );
        assert_eq!(
            findings("/x", Some("__proto__[admin]=1"), &[], None),
            ["proto-110", "proto-100"]
        );
        assert_eq!(
            findings(
                "/x",
                None,
                &[("cookie", "s=<script>alert(1)</script>")],
                None
            ),
            ["xss-110"]
        );
        assert_eq!(
            findings("/x", None, &[("user-agent", "${jndi:ldap://e/a}")], None),
            ["jndi-100"]
        );
        assert_eq!(
            findings(
                "/x",
                None,
                &json,
                Some(r#"{"note": "'; DROP TABLE users; --"}"#)
            ),
            ["sqli-110"]
        );
        assert_eq!(
            findings("/x", None, &json, Some(r#"{"$where": "1"}"#)),
            ["nosql-110"]
        );
        assert_eq!(
            findings(
                "/x",
                None,
                &[("content-type", "application/xml")],
                Some("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>")
            ),
            ["xxe-100"]
        );
    }

    #[test]
    fn a_page_address_is_not_a_fetched_url() {
        let from_intranet = [
            ("referer", "http://10.0.0.5/portal?id=1"),
            ("origin", "http://localhost:3000"),
        ];
        assert!(findings("/x", None, &from_intranet, None).is_empty());
        let fetched = [("x-callback-url", "http://169.254.169.254/latest/meta-data/")];
        assert_eq!(findings("/x", None, &fetched, None), ["ssrf-100"]);
        // Other attacks in a Referer are still found.
        let xss = [("referer", "http://e.example/?q=<script>alert(1)</script>")];
        assert_eq!(findings("/x", None, &xss, None), ["xss-110"]);
    }

    #[test]
    fn fhir_narratives_are_held_to_narrative_rules() {
        let json = [("content-type", "application/fhir+json")];
        let ok = r#"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p><b>血圧</b> 118/76 mmHg</p><table><tr><td>HbA1c</td></tr></table></div>"}}"#;
        assert!(findings("/fhir/Observation", None, &json, Some(ok)).is_empty());
        for bad in [
            r#"{"text":{"div":"<div><script>alert(1)</script></div>"}}"#,
            r#"{"text":{"div":"<div><img src=x onerror=alert(1)></div>"}}"#,
            r#"{"text":{"div":"<div><a href=\"javascript:alert(1)\">x</a></div>"}}"#,
        ] {
            assert_eq!(
                findings("/fhir/Observation", None, &json, Some(bad)),
                ["xss-120"],
                "{bad}"
            );
        }
        // The same markup anywhere else is not a narrative.
        let elsewhere = r#"{"note":"<div><p>hello</p><script>alert(1)</script></div>"}"#;
        assert_eq!(findings("/x", None, &json, Some(elsewhere)), ["xss-110"]);
    }
}
