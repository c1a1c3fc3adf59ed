//! Files sent inline in a JSON body (R-WAF-2). A FHIR `Attachment` or `Binary` carries its
//! file as base64 in `data`, typed by its sibling `contentType`: a PHR app uploads a scanned
//! report or a photo that way, not as multipart. Such a file is found here, decoded, and handed
//! to the same disarm as an upload ([`super::disarm`]); what comes back rebuilt is encoded
//! again in the place of the old `data`, every other byte of the body kept as sent.
//!
//! The attachments are collected in the one walk that inspects the body (`json.rs` hands each
//! object's opening and closing, and its `contentType` and `data` strings, to a
//! [`Collector`]). A rebuilt file's base64 is spliced over the old text of `data`, which the
//! walk located in the body; a `data` written with an escape in it is replaced by a stream
//! copy of the body instead (`neutralise::copy_json`, as neutralising writes), which knows an object
//! by its place in document order. Either way the order of `contentType` and `data` inside
//! an object does not matter.

use base64::Engine;

use super::Hit;

/// One file found inline.
#[derive(Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The object's place among the body's objects, counted as they open.
    object: usize,
    /// The dotted path of its `data` field (`content.attachment.data`; array levels are not
    /// part of it, as in the rest of inspection).
    pub field: String,
    /// Its `contentType`, lower case, without parameters; `None` when it has none (a FHIR
    /// `Signature`, or an `Attachment` breaking FHIR's att-1).
    pub media: Option<String>,
    /// The decoded file.
    pub content: Vec<u8>,
    /// Where the text of `data` sits in the body, when the parser lent it from there (it held
    /// no escape): a rebuilt file is then written over it, the rest of the body copied whole.
    span: Option<std::ops::Range<usize>>,
}

impl Attachment {
    /// Where the text of its `data` sits in the body, when known.
    pub(super) fn span(&self) -> Option<std::ops::Range<usize>> {
        self.span.clone()
    }
}

/// Why a body's attachments could not be read or rewritten.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unreadable {
    /// The body is not JSON struson can read (inspection parsed it already, so rarely).
    #[error("the body could not be read for its attachments: {0}")]
    Json(String),
    /// `contentType` or `data` twice in one object: a backend may read either.
    #[error("the attachment at `{field}` names `{key}` twice")]
    Ambiguous {
        /// The object's path.
        field: String,
        /// The repeated key.
        key: &'static str,
    },
}

/// Whether a JSON body may hold an attachment: a `"data"` key as written, or an escaped ASCII
/// character, with which a key can spell it (`"d\u0061ta"`).
pub fn may_hold(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"\"data\"").is_some()
        || memchr::memmem::find(body, b"\\u00").is_some()
}

/// What the JSON walk tells about objects, made into attachments: the walk opens and closes
/// each object and hands over the strings under `contentType` and `data`. Every object costs
/// a number on a stack; only those given such a string get a [`Pending`].
#[derive(Default)]
pub(super) struct Collector {
    objects: usize,
    /// The objects open, innermost last: their places in document order.
    open: Vec<usize>,
    /// The open objects given a `contentType` or a `data`, innermost last.
    pending: Vec<Pending>,
    attachments: Vec<Attachment>,
    ambiguous: Option<Unreadable>,
}

/// An object's `contentType` and decoded `data`, and how often each was given.
#[derive(Default)]
pub(super) struct Pending {
    object: usize,
    media: Option<String>,
    data: Option<(String, Vec<u8>, Option<std::ops::Range<usize>>)>,
    media_given: u8,
    data_given: u8,
}

impl Collector {
    /// An object starts.
    pub(super) fn open(&mut self) {
        self.open.push(self.objects);
        self.objects += 1;
    }

    /// The object ends: an attachment when its `data` was base64.
    pub(super) fn close(&mut self, path: impl FnOnce() -> String) {
        let object = self.open.pop();
        if object.is_none() || self.pending.last().map(|p| p.object) != object {
            return;
        }
        let Some(Pending {
            object,
            media,
            data: Some((field, content, span)),
            media_given,
            data_given,
        }) = self.pending.pop()
        else {
            return;
        };
        for (given, key) in [(media_given, "contentType"), (data_given, "data")] {
            if given > 1 && self.ambiguous.is_none() {
                self.ambiguous = Some(Unreadable::Ambiguous { field: path(), key });
                return;
            }
        }
        self.attachments.push(Attachment {
            object,
            field,
            media: media.map(|m| {
                m.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            }),
            content,
            span,
        });
    }

    /// The innermost open object's pending state, made when it has none yet.
    fn current(&mut self) -> Option<&mut Pending> {
        let object = *self.open.last()?;
        if self.pending.last().map(|p| p.object) != Some(object) {
            self.pending.push(Pending {
                object,
                ..Pending::default()
            });
        }
        self.pending.last_mut()
    }

    /// A string under `contentType`.
    pub(super) fn content_type(&mut self, text: &str) {
        if let Some(open) = self.current() {
            open.media_given = open.media_given.saturating_add(1);
            open.media = Some(text.to_owned());
        }
    }

    /// A string under `data`, at `field` (and at `span` of the body, when the parser lent it
    /// from there); `base64` when `json::base64_binary` holds it to be
    /// (other text in `data` is an ordinary value, not a file). When it decodes, the base64
    /// rules' verdict on its bytes (`detect::decoded_file`), for the walk to keep in place of
    /// asking them of the text; none for a PDF, JPEG or PNG, which disarm parses and
    /// rebuilds and no deserializer reads (a serialized object starts with its header).
    pub(super) fn data(
        &mut self,
        text: &str,
        span: Option<std::ops::Range<usize>>,
        base64: bool,
        field: impl FnOnce() -> String,
    ) -> Option<Option<Hit>> {
        let open = self.current()?;
        open.data_given = open.data_given.saturating_add(1);
        let content = base64.then(|| decode(text)).flatten()?;
        let verdict = if super::disarm::rebuildable(&content) {
            None
        } else {
            super::detect::decoded_file(&content)
        };
        open.data = Some((field(), content, span));
        Some(verdict)
    }

    /// The attachments, in document order of their objects' ends.
    pub(super) fn finish(self) -> Result<Vec<Attachment>, Unreadable> {
        match self.ambiguous {
            Some(ambiguous) => Err(ambiguous),
            None => Ok(self.attachments),
        }
    }
}

/// `body` (the one the attachments were found in) with the `data` of the given objects
/// replaced by their new content in base64.
pub fn rewrite(body: &[u8], replaced: &[(Attachment, Vec<u8>)]) -> Result<Vec<u8>, Unreadable> {
    let spans: Vec<_> = replaced
        .iter()
        .map(|(a, content)| a.span.clone().map(|span| (span, content)))
        .collect::<Option<_>>()
        .unwrap_or_default();
    if spans.len() == replaced.len() {
        // Every `data` as written in the body: spliced, the rest copied whole (a stream copy
        // reads and writes every character of a body of megabytes).
        let pieces = spans
            .into_iter()
            .map(|(span, content)| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(content);
                (span, encoded.into_bytes())
            })
            .collect();
        return Ok(splice(body, pieces));
    }
    // A `data` written with an escape: the whole body copied as a stream.
    super::neutralise::copy_json(body, &mut |at| {
        if !(at.member && at.path.last().is_some_and(|key| key == "data")) {
            return None;
        }
        replaced
            .iter()
            .find(|(a, _)| a.object == at.object)
            .map(|(_, content)| base64::engine::general_purpose::STANDARD.encode(content))
    })
    .map_err(|e| Unreadable::Json(e.to_string()))
}

/// Where `text`, which a parser lent from `body` (a slice of it, not a copy), sits in `body`.
pub(super) fn lent_span(body: &[u8], text: &str) -> Option<std::ops::Range<usize>> {
    let start = text.as_ptr().addr().checked_sub(body.as_ptr().addr())?;
    let end = start + text.len();
    (end <= body.len()).then_some(start..end)
}

/// `body` with each span replaced by its new bytes; spans that overlap one before them are
/// left out (the first wins).
pub(super) fn splice(body: &[u8], mut pieces: Vec<(std::ops::Range<usize>, Vec<u8>)>) -> Vec<u8> {
    pieces.sort_by_key(|(span, _)| span.start);
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for (span, new) in pieces {
        if span.start < at {
            continue;
        }
        out.extend_from_slice(body.get(at..span.start).unwrap_or_default());
        out.extend_from_slice(&new);
        at = span.end;
    }
    out.extend_from_slice(body.get(at..).unwrap_or_default());
    out
}

/// The decoded bytes of base64 `data` (one line, or wrapped in lines between spaces and line
/// breaks), when it decodes.
fn decode(data: &str) -> Option<Vec<u8>> {
    const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let text = data.as_bytes().trim_ascii();
    if memchr::memchr3(b' ', b'\r', b'\n', text).is_none() {
        return LENIENT.decode(text).ok();
    }
    // The lines joined a slice at a time (a filter per byte cost as much as the decoding).
    let mut unwrapped = Vec::with_capacity(text.len());
    let mut start = 0;
    for end in memchr::memchr3_iter(b' ', b'\r', b'\n', text).chain([text.len()]) {
        unwrapped.extend_from_slice(&text[start..end]);
        start = end + 1;
    }
    LENIENT.decode(unwrapped).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attachments of a JSON body, as the walk that inspects it collects them.
    fn find(body: &[u8]) -> Result<Vec<Attachment>, Unreadable> {
        let mut ignored = super::super::Findings::default();
        super::super::json::inspect_collecting_files(body, &mut ignored).expect("json")
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn attachments_are_found_whatever_their_key_order_and_depth() {
        let body = format!(
            r#"{{"resourceType":"DocumentReference","content":[{{"attachment":{{"data":"{}","contentType":"Application/PDF; charset=x"}}}},{{"attachment":{{"url":"http://x/a"}}}}],"photo":[{{"contentType":"image/png","data":"{}"}}]}}"#,
            b64(b"%PDF-1.4 one"),
            b64(b"\x89PNG\r\n\x1a\n two")
        );
        let found = find(body.as_bytes()).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].field, "content.attachment.data");
        assert_eq!(found[0].media.as_deref(), Some("application/pdf"));
        assert_eq!(found[0].content, b"%PDF-1.4 one");
        assert_eq!(found[1].field, "photo.data");
        assert_eq!(found[1].media.as_deref(), Some("image/png"));
        // A Binary: `data` at the top.
        let binary = format!(
            r#"{{"resourceType":"Binary","contentType":"image/jpeg","d\u0061ta":"{}"}}"#,
            b64(b"\xFF\xD8\xFF jpeg")
        );
        let found = find(binary.as_bytes()).unwrap();
        assert_eq!(found[0].field, "data");
        assert_eq!(found[0].content, b"\xFF\xD8\xFF jpeg");
    }

    /// Inspection stops reading once its findings are full; collecting files reads on, so a
    /// file after many findings (a `detect` route forwards them) is still disarmed.
    #[test]
    fn a_file_after_the_findings_are_full_is_still_found() {
        let notes: Vec<String> = (0..20)
            .map(|i| format!(r#"{{"text{i}":"<script>alert({i})</script>"}}"#))
            .collect();
        let body = format!(
            r#"{{"note":[{}],"photo":{{"contentType":"image/png","data":"{}"}}}}"#,
            notes.join(","),
            b64(b"\x89PNG\r\n\x1a\n")
        );
        let mut found = super::super::Findings::default();
        let files = super::super::json::inspect_collecting_files(body.as_bytes(), &mut found)
            .expect("json")
            .expect("files");
        assert_eq!(found.list.len(), super::super::MAX_FINDINGS);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].field, "photo.data");
    }

    /// The base64 rules are asked of a file's bytes, except of a PDF, JPEG or PNG (rebuilt by
    /// disarm, read by no deserializer).
    #[test]
    fn serialized_words_are_looked_for_in_the_files_bytes() {
        let rules = |file: &[u8]| {
            let body = format!(r#"{{"contentType":"image/gif","data":"{}"}}"#, b64(file));
            let mut found = super::super::Findings::default();
            let files = super::super::json::inspect_collecting_files(body.as_bytes(), &mut found)
                .expect("json")
                .expect("files");
            assert_eq!(files.len(), 1);
            found.list.iter().map(|f| f.hit.rule).collect::<Vec<_>>()
        };
        assert_eq!(rules(b"GIF89a..java.lang.Runtime.exec"), ["java-130"]);
        assert_eq!(
            rules(b"\xAC\xED\x00\x05sr\x00\x11java.util.HashMap"),
            ["java-130"]
        );
        assert_eq!(rules(b"GIF89a an ordinary picture"), Vec::<&str>::new());
        assert_eq!(
            rules(b"\x89PNG\r\n\x1a\n..java.lang.Runtime"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn text_and_wrapped_base64_in_data() {
        // Text in `data` is an ordinary value, not a file.
        assert_eq!(
            find(br#"{"contentType":"text/plain","data":"not base64!"}"#).unwrap(),
            vec![]
        );
        // MIME-wrapped base64 is decoded whole.
        // `\r\n` escaped, as JSON writes a line break in a string.
        let wrapped = r"JVBERi0xLjQgb25lIHR3\r\nbyB0aHJlZQ==";
        let body = format!(r#"{{"contentType":"application/pdf","data":"{wrapped}"}}"#);
        assert_eq!(
            find(body.as_bytes()).unwrap()[0].content,
            b"%PDF-1.4 one two three"
        );
    }

    #[test]
    fn a_repeated_content_type_or_data_is_refused() {
        let body = format!(
            r#"{{"photo":{{"contentType":"image/png","data":"{}","contentType":"application/pdf"}}}}"#,
            b64(b"%PDF-1.4")
        );
        assert_eq!(
            find(body.as_bytes()),
            Err(Unreadable::Ambiguous {
                field: "photo".into(),
                key: "contentType"
            })
        );
        let body = r#"{"contentType":"image/png","data":"SGVsbG8=","data":"SGVsbG8="}"#;
        assert!(matches!(
            find(body.as_bytes()),
            Err(Unreadable::Ambiguous { key: "data", .. })
        ));
    }

    #[test]
    fn a_rewrite_replaces_only_the_named_objects_data() {
        let body = format!(
            r#"{{"valueQuantity":{{"value":1.50,"unit":"mg"}},"a":[{{"contentType":"image/png","data":"{}"}},{{"data":"{}","contentType":"image/png"}}],"note":"日本語"}}"#,
            b64(b"first"),
            b64(b"second")
        );
        let second = find(body.as_bytes()).unwrap().remove(1);
        let new = rewrite(body.as_bytes(), &[(second, b"rebuilt".to_vec())]).unwrap();
        let expected = format!(
            r#"{{"valueQuantity":{{"value":1.50,"unit":"mg"}},"a":[{{"contentType":"image/png","data":"{}"}},{{"data":"{}","contentType":"image/png"}}],"note":"日本語"}}"#,
            b64(b"first"),
            b64(b"rebuilt")
        );
        assert_eq!(String::from_utf8(new).unwrap(), expected);
        // Spliced where the text of `data` was lent from the body; copied as a stream where
        // it held an escape (`\/`, a line break): both give the same body.
        let found = find(body.as_bytes()).unwrap();
        assert!(found.iter().all(|a| a.span.is_some()));
        let escaped = format!(
            r#"{{"a":[{{"contentType":"image/png","data":"{}"}},{{"data":"{}"}}],"b":1.50}}"#,
            b64(b"\xff\xff\xfe first").replace('/', r"\/"),
            b64(b"second")
        );
        let found = find(escaped.as_bytes()).unwrap();
        assert!(found[0].span.is_none() && found[1].span.is_some());
        let replaced: Vec<_> = found.into_iter().map(|a| (a, b"new".to_vec())).collect();
        let new = rewrite(escaped.as_bytes(), &replaced).unwrap();
        assert_eq!(
            String::from_utf8(new).unwrap(),
            format!(
                r#"{{"a":[{{"contentType":"image/png","data":"{0}"}},{{"data":"{0}"}}],"b":1.50}}"#,
                b64(b"new")
            )
        );
    }
}
