//! A JSON body's keys and strings, inspected as the parser reads them (R-WAF-1).
//!
//! The document is never built as a tree: each key and string goes to the detectors as
//! serde_json hands it over, borrowed from the body when it holds no escape, so a body costs
//! one parse and no allocation per value. Keys are seen in document order, duplicates too
//! (a tree keeps only the last of a duplicated key, which a backend may read otherwise).

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::normalise::{normalise_str, Plus};
use super::{
    attachment, detect, narrative, plain, Findings, Hit, Place, Verdicts, SEEN_JSON_KEYS,
    SEEN_JSON_VALUES,
};

/// Inspect `body` as JSON. `Err` when it is not JSON (what was found before the syntax error
/// is kept); inspection stops early, successfully, once the findings are full.
pub(super) fn inspect(body: &[u8], found: &mut Findings) -> Result<(), serde_json::Error> {
    walk(body, found, None)
}

/// [`inspect`], collecting on the way the files the body carries inline ([`attachment`]):
/// one parse for both. Such a walk reads the whole body even once the findings are full.
pub(super) fn inspect_collecting_files(
    body: &[u8],
    found: &mut Findings,
) -> Result<Result<Vec<attachment::Attachment>, attachment::Unreadable>, serde_json::Error> {
    let mut files = attachment::Collector::default();
    walk(body, found, Some(&mut files))?;
    Ok(files.finish())
}

fn walk(
    body: &[u8],
    found: &mut Findings,
    files: Option<&mut attachment::Collector>,
) -> Result<(), serde_json::Error> {
    let mut walk = Walk {
        found,
        path: KeyPath::default(),
        siblings: SiblingKeys::default(),
        full: false,
        files,
        body,
    };
    // UTF-8 checked once for the whole body (std's check runs a word at a time over ASCII),
    // not once per string as a parse of bytes does; a body that is not UTF-8 is parsed as
    // bytes, so that its error says where.
    let read = match std::str::from_utf8(body) {
        Ok(text) => walk_all(serde_json::Deserializer::from_str(text), &mut walk),
        Err(_) => walk_all(serde_json::Deserializer::from_slice(body), &mut walk),
    };
    match read {
        Err(_) if walk.full => Ok(()),
        other => other,
    }
}

/// The whole document through `walk`, and nothing after it.
fn walk_all<'de, R: serde_json::de::Read<'de>>(
    mut parser: serde_json::Deserializer<R>,
    walk: &mut Walk<'_>,
) -> Result<(), serde_json::Error> {
    Node(walk)
        .deserialize(&mut parser)
        .and_then(|()| parser.end())
}

struct Walk<'f> {
    found: &'f mut Findings,
    path: KeyPath,
    siblings: SiblingKeys,
    /// The findings are full: the parse is stopped by an error that is not one (unless files
    /// are being collected; then detection stops and the parse goes on).
    full: bool,
    files: Option<&'f mut attachment::Collector>,
    /// The body, to say where a string the parser lent from it sits.
    body: &'f [u8],
}

impl Walk<'_> {
    /// `key`, read in the object whose keys start at `object` in [`SiblingKeys`].
    fn key(&mut self, key: &str, object: usize) {
        // Once the findings are full (only reached when collecting files) the key still
        // enters the path, unjudged.
        let unjudged = KeyVerdict {
            hit: None,
            names_fetched_url: false,
        };
        // A key is a name, and a value a lenient backend may read (CRS's ARGS_NAMES).
        let verdict = if self.full {
            unjudged
        } else {
            Verdicts::get_or(&SEEN_JSON_KEYS, key.as_bytes(), || {
                let n = normalise_str(key, Plus::Literal);
                let hit = detect::name(&n).or_else(|| {
                    if plain(key.as_bytes()) {
                        detect::plain_value(key.as_bytes())
                    } else {
                        detect::value_with(&n, false)
                    }
                });
                KeyVerdict {
                    hit,
                    names_fetched_url: fetched_url_key(key),
                }
            })
        };
        let fetched = verdict.names_fetched_url || fhir_fetched_url(self.path.last(), key);
        let repeated = self.siblings.repeated(object, key).then_some(REPEATED_KEY);
        self.path.push(key, fetched);
        let path = &self.path;
        self.full = self.found.add(verdict.hit, Place::Body, || path.field());
        if !self.full {
            self.full = self.found.add(repeated, Place::Body, || path.field());
        }
    }

    /// A string value; `lent` when the parser handed it over from the body itself (it held
    /// no escape).
    fn string(&mut self, text: &str, lent: bool) {
        let last = self.path.last();
        // FHIR's base64Binary (`Attachment.data`, `Binary.data`): bytes the backend decodes.
        let binary = last == Some("data") && base64_binary(text.as_bytes());
        let mut file_verdict = None;
        if let Some(files) = self.files.as_deref_mut() {
            let path = &self.path;
            match last {
                Some("contentType") => files.content_type(text),
                Some("data") => {
                    let span = lent
                        .then(|| attachment::lent_span(self.body, text))
                        .flatten();
                    file_verdict = files.data(text, span, binary, || path.field());
                }
                _ => {}
            }
        }
        if self.full {
            return;
        }
        let hit = if let Some(hit) = file_verdict {
            // A file the collector decoded: the base64 rules were asked of its bytes.
            hit
        } else if last == Some("div") && self.path.parent() == Some("text") {
            // A FHIR narrative: XHTML by design, held to the narrative rules.
            narrative(text)
        } else if plain(text.as_bytes()) {
            detect::plain_value(text.as_bytes())
        } else if binary {
            // Held to the base64 rules only (docs/decisions.md, 2026-11-27).
            detect::plain_value(text.as_bytes())
        } else if self.path.names_fetched_url() && !binary_reference(last, text) {
            detect::value_with(&normalise_str(text, Plus::Literal), true)
        } else {
            // Code systems, units, dates, display names: the same in every resource.
            Verdicts::get_or(&SEEN_JSON_VALUES, text.as_bytes(), || {
                detect::value_with(&normalise_str(text, Plus::Literal), false)
            })
        };
        let path = &self.path;
        self.full = self.found.add(hit, Place::Body, || path.field());
    }

    fn stop<E: de::Error>(&self) -> Result<(), E> {
        if self.full && self.files.is_none() {
            Err(E::custom("findings full"))
        } else {
            Ok(())
        }
    }
}

/// A key given twice in one object, also in two letter cases (`protocol-230`). RFC 8259
/// leaves what a parser does with it open, and they differ: most keep the last, some the
/// first, some refuse, some ignore case. The gateway
/// reads every occurrence, but the backend reads one, and a check that reads a field (a FHIR
/// create's `subject`, a neutralised `note.text`) could be shown one value while the backend
/// stores the other. I-JSON (RFC 7493) forbids it; FHIR's JSON never has it.
const REPEATED_KEY: Hit = Hit {
    rule: "protocol-230",
    class: detect::Class::Protocol,
};

/// The keys of the objects being read, innermost last, as hashes: enough to find a key given
/// twice in one object. A few keys are compared one by one; an object past
/// [`SiblingKeys::LISTED`] keys gets a hash set, so a body of one huge object costs no more
/// than its length.
#[derive(Default)]
struct SiblingKeys {
    /// The keys of every open object, each object's after its parent's.
    listed: Vec<u64>,
    /// The open objects past `LISTED` keys: where their keys start in `listed`, and the set
    /// that holds them from then on.
    large: Vec<(usize, HashSet<u64, foldhash::fast::RandomState>)>,
}

impl SiblingKeys {
    const LISTED: usize = 32;

    /// An object opens: its keys start here.
    fn open(&self) -> usize {
        self.listed.len()
    }

    /// The object opened at `start` is read whole.
    fn close(&mut self, start: usize) {
        self.listed.truncate(start);
        if self.large.last().is_some_and(|&(s, _)| s == start) {
            self.large.pop();
        }
    }

    /// Whether the object opened at `start` already had `key`, in any ASCII letter case
    /// (ASP.NET Core's JSON binding ignores a name's case: `Subject` after `subject` is the
    /// same property to it, and the last one wins).
    fn repeated(&mut self, start: usize, key: &str) -> bool {
        let hash = folded_hash(key.as_bytes());
        let own = &self.listed[start..];
        if own.len() < Self::LISTED {
            let seen = own.contains(&hash);
            self.listed.push(hash);
            return seen;
        }
        match self.large.last_mut() {
            Some((s, set)) if *s == start => !set.insert(hash),
            _ => {
                let mut set = HashSet::with_capacity_and_hasher(
                    own.len() * 2,
                    foldhash::fast::RandomState::default(),
                );
                set.extend(own.iter().copied());
                let seen = !set.insert(hash);
                self.large.push((start, set));
                seen
            }
        }
    }
}

/// A 64-bit hash of `key` with ASCII letters folded to lower case, eight bytes to a multiply
/// (FxHash's mixing: a JSON key is a word or two, and a hash per key must cost little next to
/// the key's inspection). Unseeded: keys made to collide only refuse the body that holds
/// them, and the set past [`SiblingKeys::LISTED`] keys hashes these hashes again with a
/// per-process seed, so collisions cannot be piled up in it.
fn folded_hash(key: &[u8]) -> u64 {
    const MULTIPLIER: u64 = 0xf135_7aea_2e62_a9c5;
    let mix = |hash: u64, chunk: &[u8]| {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        word.make_ascii_lowercase();
        (hash ^ u64::from_le_bytes(word))
            .wrapping_mul(MULTIPLIER)
            .rotate_left(26)
    };
    let chunks = key.chunks_exact(8);
    let rest = chunks.remainder();
    let hash = chunks.fold(key.len() as u64, mix);
    if rest.is_empty() {
        hash
    } else {
        mix(hash, rest)
    }
}

/// What a key's first sight found, kept with its verdict: keys repeat in every resource, so
/// a string's questions about its key are answered once per key, not once per string.
#[derive(Clone, Copy)]
pub(super) struct KeyVerdict {
    hit: Option<Hit>,
    /// [`fetched_url_key`] of the key.
    names_fetched_url: bool,
}

/// The keys leading to the value being read, array levels skipped, as FHIRPath names fields
/// (`note.text`): one buffer, not a string per level.
#[derive(Default)]
struct KeyPath {
    dotted: String,
    /// Where each key starts in `dotted`, and whether it names a fetched URL.
    starts: Vec<(usize, bool)>,
}

impl KeyPath {
    fn push(&mut self, key: &str, names_fetched_url: bool) {
        if !self.starts.is_empty() {
            self.dotted.push('.');
        }
        self.starts.push((self.dotted.len(), names_fetched_url));
        self.dotted.push_str(key);
    }

    fn pop(&mut self) {
        if let Some((start, _)) = self.starts.pop() {
            self.dotted.truncate(start.saturating_sub(1));
        }
    }

    /// Whether the last key names a URL the backend may fetch ([`fetched_url_key`]).
    fn names_fetched_url(&self) -> bool {
        self.starts.last().is_some_and(|&(_, fetched)| fetched)
    }

    fn last(&self) -> Option<&str> {
        self.starts.last().map(|&(s, _)| &self.dotted[s..])
    }

    fn parent(&self) -> Option<&str> {
        let [.., (parent, _), (last, _)] = self.starts[..] else {
            return None;
        };
        Some(&self.dotted[parent..last - 1])
    }

    fn field(&self) -> String {
        self.dotted.clone()
    }
}

/// Whether `bytes` is base64 as FHIR's base64Binary carries it (RFC 4648 section 4): the
/// alphabet's 64 characters, `=` only as the last one or two, a multiple of four in all,
/// written on one line or wrapped in lines of one length (a multiple of four, 16 or more;
/// the last may be shorter) between spaces and line breaks, as MIME wraps at 76. In that
/// alphabet no SQL, markup, shell, template or lookup syntax can be written (no quote, `<`,
/// `;`, `$`, `{`, `.`), and the wrapping rule keeps out free spacing (`1 union select …`),
/// so text rules have nothing to read in it but [`detect::plain_value`]'s hidden words.
pub(super) fn base64_binary(bytes: &[u8]) -> bool {
    const SHORTEST_LINE: usize = 16;
    let text = bytes.trim_ascii();
    let unpadded = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    let outside_alphabet =
        |b: u8| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b' ' | b'\r' | b'\n'));
    if text.is_empty() || super::scan::any_byte(unpadded, outside_alphabet) {
        return false;
    }
    if !super::scan::any_byte(unpadded, |b| matches!(b, b' ' | b'\r' | b'\n')) {
        return text.len().is_multiple_of(4);
    }
    // Line breaks found by `memchr3` (a line is tens of bytes; a split's closure per byte
    // cost more than the rest of this value's inspection).
    let mut start = 0;
    let mut lines = memchr::memchr3_iter(b' ', b'\r', b'\n', text)
        .chain([text.len()])
        .filter_map(|end| {
            let line = &text[start..end];
            start = end + 1;
            (!line.is_empty()).then_some(line)
        });
    let width = lines.next().map_or(0, <[u8]>::len);
    if width < SHORTEST_LINE || !width.is_multiple_of(4) {
        return false;
    }
    let (mut total, mut ended) = (width, false);
    for line in lines {
        if ended || line.len() > width {
            return false;
        }
        ended = line.len() < width;
        total += line.len();
    }
    total.is_multiple_of(4)
}

/// Whether a JSON key names a URL the backend may fetch (a webhook, a callback), where an
/// internal address is SSRF; other URLs in a FHIR document are identifiers and references.
pub(super) fn fetched_url_key(key: &str) -> bool {
    static WORDS: std::sync::LazyLock<Option<aho_corasick::AhoCorasick>> =
        std::sync::LazyLock::new(|| {
            aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build([
                    "endpoint", "callback", "webhook", "redirect", "notify", "fetch", "download",
                    "proxy",
                ])
                .ok()
        });
    // Built from constants (unit-tested); failing that, every key is taken as one.
    WORDS.as_ref().is_none_or(|w| w.is_match(key))
}

/// Whether a key names one of the URLs FHIR's own resources ask a server to fetch:
/// `Attachment.url` (under `attachment`, `valueAttachment`, `photo`, `presentedForm`,
/// Media's `content`: a server may fetch the file to store or render it) and
/// `Endpoint.address` (a string only there: `Patient.address` is an object, whose strings
/// sit under `line`, `city`, …). Other `url` keys are identifiers (`extension.url`).
pub(super) fn fhir_fetched_url(parent: Option<&str>, key: &str) -> bool {
    match key {
        "address" => true,
        "url" => parent.is_some_and(|parent| {
            // `attachment`, `valueAttachment`, `contentAttachment`, …
            parent.ends_with("ttachment") || matches!(parent, "photo" | "presentedForm" | "content")
        }),
        _ => false,
    }
}

/// Whether `key` is an attachment's `url` and `url` a reference to a FHIR `Binary`
/// (`…/Binary/1e40…`):
/// FHIR lets `Attachment.url` point at the Binary that holds the content, which a server
/// resolves as a reference, and HL7's own examples write them to `http://localhost:…`.
/// Such a URL reaches only a FHIR server's Binary endpoint; any other internal address in an
/// attachment's `url` is refused.
pub(super) fn binary_reference(key: Option<&str>, url: &str) -> bool {
    if key != Some("url") {
        return false;
    }
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let mut segments = path.rsplit('/');
    let id = segments.next().unwrap_or_default();
    segments.next() == Some("Binary")
        && !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
}

/// Any value: strings are inspected, containers walked, the rest skipped.
struct Node<'w, 'f>(&'w mut Walk<'f>);

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, parser: D) -> Result<(), D::Error> {
        parser.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.0.string(text, false);
        self.0.stop()
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<(), E> {
        self.0.string(text, true);
        self.0.stop()
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while items.next_element_seed(Node(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if let Some(files) = self.0.files.as_deref_mut() {
            files.open();
        }
        let object = self.0.siblings.open();
        while map.next_key_seed(Key(&mut *self.0, object))?.is_some() {
            let value = map.next_value_seed(Node(&mut *self.0));
            self.0.path.pop();
            value?;
        }
        self.0.siblings.close(object);
        if let Some(files) = self.0.files.as_deref_mut() {
            let path = &self.0.path;
            files.close(|| path.field());
        }
        Ok(())
    }
}

/// An object's key: inspected as a name, checked against the object's other keys, and
/// entered into the path. The `usize` is where the object's keys start in [`SiblingKeys`].
struct Key<'w, 'f>(&'w mut Walk<'f>, usize);

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, parser: D) -> Result<(), D::Error> {
        parser.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        self.0.key(key, self.1);
        self.0.stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Vec<(String, &'static str)> {
        let mut found = Findings::default();
        inspect(body.as_bytes(), &mut found).expect("json");
        found
            .list
            .into_iter()
            .map(|f| (f.field, f.hit.rule))
            .collect()
    }

    #[test]
    fn findings_name_their_dotted_field_without_array_levels() {
        let found = fields(
            r#"{"entry":[{"resource":{"note":[{"text":"<script>alert(1)</script>"}]}}],"id":"a"}"#,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "entry.resource.note.text");
        assert!(found[0].1.starts_with("xss-"), "{found:?}");
        // Keys are names: a prototype-pollution key is found where it stands.
        let found = fields(r#"{"a":{"__proto__":{"admin":true}}}"#);
        assert_eq!(found[0].0, "a.__proto__", "{found:?}");
    }

    /// A body that is not UTF-8 is parsed as bytes: what stands before the bad byte is still
    /// inspected, and the error is the parse's.
    #[test]
    fn a_body_that_is_not_utf8_is_inspected_up_to_its_bad_byte() {
        let mut body = br#"{"note":"<script>alert(1)</script>","x":""#.to_vec();
        body.extend_from_slice(b"\xff\"}");
        let mut found = Findings::default();
        assert!(inspect(&body, &mut found).is_err());
        assert_eq!(found.list.len(), 1);
        assert_eq!(found.list[0].field, "note");
        let mut found = Findings::default();
        inspect(
            br#"{"x":"\u00ff","note":"<script>alert(1)</script>"}"#,
            &mut found,
        )
        .unwrap();
        assert_eq!(found.list.len(), 1, "the same finding in a UTF-8 body");
    }

    #[test]
    fn an_internal_address_is_ssrf_only_where_a_key_says_it_is_fetched() {
        assert!(fetched_url_key("webhookUrl"));
        assert!(fetched_url_key("CallBack"));
        assert!(!fetched_url_key("system"));
        assert_eq!(
            fields(r#"{"notifyEndpoint":"http://169.254.169.254/latest"}"#).len(),
            1
        );
        assert!(fields(r#"{"system":"http://10.0.0.5/codes"}"#).is_empty());
        // FHIR identifiers are URLs, `ftp://` ones too (an IHE code system): not fetched.
        assert!(
            fields(r#"{"url":"ftp://ftp.ihe.net/TF_Implementation_Material/fhir"}"#).is_empty()
        );
        assert_eq!(fields(r#"{"callbackUrl":"ftp://203.0.113.9/x"}"#).len(), 1);
        // FHIR's own fetched URLs: an attachment's `url`, an Endpoint's `address`.
        for fetched in [
            r#"{"content":[{"attachment":{"contentType":"application/pdf","url":"http://169.254.169.254/latest/"}}]}"#,
            r#"{"valueAttachment":{"url":"http://127.0.0.1:6379/"}}"#,
            r#"{"photo":[{"contentType":"image/jpeg","url":"http://10.0.0.5/admin"}]}"#,
            r#"{"resourceType":"Endpoint","address":"http://169.254.169.254/"}"#,
            r#"{"attachment":{"url":"http://127.0.0.1:8080/admin/Binary/"}}"#,
            r#"{"attachment":{"url":"http://10.0.0.1/Binary/../../admin"}}"#,
        ] {
            assert_eq!(fields(fetched).len(), 1, "{fetched}");
        }
        for identifier in [
            r#"{"extension":[{"url":"http://127.0.0.1/x","valueString":"a"}]}"#,
            r#"{"attachment":{"url":"https://phr.example.jp/files/1.pdf"}}"#,
            r#"{"address":[{"line":["1-2-3"],"city":"localhost"}]}"#,
            // HL7's example: an attachment naming the Binary that holds it.
            r#"{"attachment":{"url":"http://localhost:9556/svc/fhir/Binary/1e40-4af3"}}"#,
        ] {
            assert!(fields(identifier).is_empty(), "{identifier}");
        }
    }

    /// A FHIR `data` field holding base64 (on one line, or wrapped evenly) is bytes: its
    /// encoding is not read as text (a JPEG's base64 opens with `/9j/`), but the base64
    /// rules still read it; anything else in a `data` field is an ordinary value.
    #[test]
    fn base64_binary_data_is_held_to_the_base64_rules_only() {
        assert!(base64_binary(b"/9j/4AAQSkZJRgABAQ=="));
        assert!(base64_binary(b"SGVsbG8="));
        assert!(base64_binary(b"/etc/passwd/"));
        // Wrapped as MIME does, or in lines of 40 with a run of spaces between.
        assert!(base64_binary(
            b"JVBERi0xLjUNJeLjz9MNCjEwIDAgb2JqDTw8L0xpbmVhcml6ZWQgMS9MIDE3NTcwNS9PIDEyL0Ug\r\n\
              MTcwNjAyL04gMS9UIDE3NTQxNy9IIFsgNjQwIDE5OV0+Pg1lbmRvYmoNICAgICAgICAgICAgICAg\r\n\
              ICAg"
        ));
        assert!(base64_binary(
            b"R0lGODlhfgCRAPcAAAAAAIAAAACAAICAAAAAgIAA    gACAgICAgMDAwP8AAAD/AP//AAAA//8A/wD///8="
        ));
        for not_base64 in [
            &b""[..],
            b"SGVsbG8",
            b"SGVs bG8=",
            b"SGVs\nbG8=",
            b"SG=sbG8=",
            b"SGVsbG===",
            b"1 union select 1111",
            b"../../etc/passwd",
            // Lines of more than one length, or too short to be a wrapping.
            b"AAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAA AAAA",
            b"AAAAAAAAAAAAAAAA AAAA AAAAAAAAAAAAAAAA",
            b"AAAAAAAA AAAAAAAA",
        ] {
            assert!(!base64_binary(not_base64), "{not_base64:?}");
        }
        // A serialized Java gadget still counts, under `data` as anywhere.
        let gadget = fields(
            r#"{"resourceType":"Binary","data":"rO0ABXNyADJzdW4ucmVmbGVjdC5hbm5vdGF0aW9u"}"#,
        );
        assert_eq!(gadget.len(), 1, "{gadget:?}");
        assert!(gadget[0].1.starts_with("java-"), "{gadget:?}");
        // Not base64, so read as text: a path, a statement.
        assert!(!fields(r#"{"data":"../../etc/passwd"}"#).is_empty());
        assert!(!fields(r#"{"data":"1' or '1'='1"}"#).is_empty());
        // Base64 that spells a path is bytes under `data` (the decision), a path elsewhere.
        assert!(fields(r#"{"data":"/etc/passwd/"}"#).is_empty());
        assert!(!fields(r#"{"file":"/etc/passwd/"}"#).is_empty());
    }

    /// A finding after nested containers, arrays of scalars and an empty object names its
    /// own field, and one inside them theirs.
    #[test]
    fn findings_after_nested_containers_name_their_own_field() {
        let found = fields(
            r#"{"a":{"b":[1,{"c":"x"},[],{}],"d":"y","n":null},"e":"<script>alert(1)</script>","f":[true,"1' or '1'='1"]}"#,
        );
        let names: Vec<&str> = found.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(names, ["e", "f"], "{found:?}");
        let found = fields(r#"[{"k":[{"deep":"<script>alert(1)</script>"}]},"x"]"#);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "k.deep");
    }

    #[test]
    fn a_duplicated_key_is_inspected_every_time_it_appears() {
        // A tree keeps only the last `q`; a backend may read the first.
        let found = fields(r#"{"q":"1' or '1'='1","q":"fine"}"#);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0], ("q".into(), "sqli-110"));
        // And the repetition itself is refused (`protocol-230`).
        assert_eq!(found[1], ("q".into(), "protocol-230"));
    }

    #[test]
    fn a_key_given_twice_in_one_object_is_refused() {
        for (body, field) in [
            (
                r#"{"subject":{"reference":"Patient/p-1"},"subject":{"reference":"Patient/p-2"}}"#,
                "subject",
            ),
            (r#"{"a":1,"b":{"c":1,"d":2,"c":3}}"#, "b.c"),
            (
                r#"{"note":[{"text":"a"},{"text":"b","text":"c"}]}"#,
                "note.text",
            ),
            // The same key once escaped: one name to every parser.
            (r#"{"id":"1","\u0069d":"2"}"#, "id"),
            // In another letter case: one property to a case-insensitive binder.
            (
                r#"{"subject":{"reference":"Patient/p-1"},"Subject":{"reference":"Patient/p-2"}}"#,
                "Subject",
            ),
            (
                r#"{"resourceType":"Observation","RESOURCETYPE":"Patient"}"#,
                "RESOURCETYPE",
            ),
        ] {
            assert_eq!(fields(body), [(field.to_owned(), "protocol-230")], "{body}");
        }
        // The same key in sibling or nested objects, in array items, or as a value: no repetition.
        for body in [
            r#"{"a":{"id":1},"b":{"id":2},"id":3}"#,
            r#"{"entry":[{"resource":{"id":"1"}},{"resource":{"id":"2"}}]}"#,
            r#"{"id":{"id":{"id":"id"}}}"#,
            r#"{"a":"b","b":"a"}"#,
            // Keys one letter apart, or one a prefix of the other, are not the same key.
            r#"{"valueString":"a","valueStrings":"b","value":"c","valueStrinG2":"d"}"#,
        ] {
            assert!(fields(body).is_empty(), "{body}");
        }
        // Past the listed keys, a set takes over: found at any count, both ways.
        for keys in [31, 32, 33, 500] {
            let object: Vec<String> = (0..keys).map(|i| format!("\"k{i}\":{i}")).collect();
            let unique = format!("{{{}}}", object.join(","));
            assert!(fields(&unique).is_empty(), "{keys} keys");
            for again in [0, keys - 1] {
                let repeated =
                    format!("{{{},\"k{again}\":0,\"x\":{{\"k0\":1}}}}", object.join(","));
                assert_eq!(
                    fields(&repeated),
                    [(format!("k{again}"), "protocol-230")],
                    "{keys} keys, k{again}"
                );
            }
        }
    }

    #[test]
    fn a_narrative_is_held_to_narrative_rules_not_generic_xss() {
        let ok = r#"{"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>血圧 <b>118/76</b></p></div>"}}"#;
        assert!(fields(ok).is_empty());
        let bad = r#"{"text":{"div":"<div><img src=x onerror=alert(1)/></div>"}}"#;
        assert_eq!(fields(bad)[0].0, "text.div");
        // `div` elsewhere is an ordinary value.
        assert!(!fields(r#"{"div":"<b>x</b><script>alert(1)</script>"}"#).is_empty());
    }

    #[test]
    fn escaped_strings_and_non_json_are_handled() {
        assert_eq!(
            fields(r#"{"k":"\u003cscript\u003ealert(1)\u003c/script\u003e"}"#)[0].0,
            "k"
        );
        let mut found = Findings::default();
        assert!(inspect(b"{\"a\": ", &mut found).is_err());
        assert!(inspect(b"{\"a\": 1} trailing", &mut found).is_err());
    }

    #[test]
    fn the_walk_stops_when_the_findings_are_full() {
        let many: Vec<String> = (0..40)
            .map(|i| format!(r#""k{i}":"<script>alert({i})</script>""#))
            .collect();
        let body = format!("{{{}}}", many.join(","));
        let mut found = Findings::default();
        assert!(inspect(body.as_bytes(), &mut found).is_ok());
        assert_eq!(found.list.len(), super::super::MAX_FINDINGS);
    }
}
