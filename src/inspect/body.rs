//! A request's body (R-WAF-1, R-WAF-2, R-WAF-4): read by its declared type — JSON
//! ([`json`]), XML ([`xml`]), an urlencoded form, multipart parts, text — and inspected, the
//! files it carries disarmed ([`disarm`]) and the route's named fields neutralised
//! ([`neutralise`]). The head was inspected when the request was decided (`head.rs`).

use http::HeaderMap;

use super::head::pairs;
use super::normalise::{normalise, Plus};
use super::{
    attachment, detect, disarm, json, multipart, neutralise, refusal, whole, xml, Class, Finding,
    Findings, Hit, Mode, Place, RouteInspection,
};

/// What checking a body decided (R-WAF-1, R-WAF-2, R-WAF-4).
#[derive(Debug, Default)]
pub struct BodyCheck {
    /// The findings the route keeps (after its exclusions).
    pub findings: Vec<Finding>,
    /// Why the request is refused, when it is.
    pub refusal: Option<crate::decision::Refusal>,
    /// The body to forward instead of the one received (neutralised fields, disarmed files).
    pub rewritten: Option<Vec<u8>>,
    /// What changed, for the access record: `neutralised:note.text`,
    /// `disarmed:upload:pdf:JavaScript` (field, then what was removed).
    pub changes: Vec<String>,
}

impl BodyCheck {
    fn refuse(refusal: crate::decision::Refusal) -> Self {
        BodyCheck {
            refusal: Some(refusal),
            ..BodyCheck::default()
        }
    }
}

/// What a body is, by its declared type.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BodyKind {
    Json,
    Xml,
    Multipart,
    Form,
    /// `text/*`.
    Text,
    /// No declared type: read as a lenient backend would, a form, else text.
    Untyped,
    /// Anything else is a file (R-WAF-2), by its media type.
    File(String),
}

/// Whether a body of this declared type is read as JSON (`application/json`, any `+json`).
pub(crate) fn is_json(content_type: &str) -> bool {
    body_kind(content_type) == BodyKind::Json
}

pub(super) fn body_kind(content_type: &str) -> BodyKind {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => BodyKind::Json,
        m if m.ends_with("+json") => BodyKind::Json,
        m if m.ends_with("/xml") || m.ends_with("+xml") => BodyKind::Xml,
        m if m.starts_with("multipart/") => BodyKind::Multipart,
        "application/x-www-form-urlencoded" => BodyKind::Form,
        "" => BodyKind::Untyped,
        m if m.starts_with("text/") => BodyKind::Text,
        _ => BodyKind::File(media),
    }
}

/// Whether the request's `Content-Type` declares a JSON body ([`is_json`]).
pub(crate) fn declares_json(headers: &HeaderMap) -> bool {
    is_json(content_type(headers))
}

/// Whether the request's `Content-Type` declares an `application/x-www-form-urlencoded` body.
pub(crate) fn declares_form(headers: &HeaderMap) -> bool {
    body_kind(content_type(headers)) == BodyKind::Form
}

pub(super) fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Check a request's body for `route` (its head was inspected when it was decided): inspect
/// it, disarm the files it carries, neutralise the route's named fields. The proxy forwards
/// `rewritten` when there is one.
pub fn check_body(body: &[u8], headers: &HeaderMap, route: &RouteInspection) -> BodyCheck {
    let mut checked = detect::passing_over(&route.excluded_everywhere(), || {
        check_body_passing_over(body, headers, route)
    });
    for ((place, field), passed_over) in route.excluded_in_fields() {
        if place != Place::Body {
            continue;
        }
        let again = detect::passing_over(&passed_over, || {
            check_body_passing_over(body, headers, route)
        });
        let found = again
            .findings
            .into_iter()
            .filter(|f| f.place == place && f.field == field);
        for finding in found {
            if !checked.findings.contains(&finding) {
                checked.findings.push(finding);
            }
        }
        if checked.refusal.is_none() {
            checked.refusal = route.refusing(&checked.findings).map(refusal);
            if checked.refusal.is_some() {
                // A refused body is forwarded in no form.
                checked.rewritten = None;
            }
        }
    }
    checked
}

/// [`check_body`], once the detectors pass over what the route excludes everywhere.
fn check_body_passing_over(body: &[u8], headers: &HeaderMap, route: &RouteInspection) -> BodyCheck {
    use crate::decision::{Reason, Refusal};
    let content_type = content_type(headers);
    let mut found = Findings::for_route(route);
    let mut changes = Vec::new();
    let neutralised: &[String] = if route.mode == Mode::Neutralise {
        &route.neutralise
    } else {
        &[]
    };
    let mut rewritten = None;
    let mut kind = body_kind(content_type);
    if let BodyKind::Text = kind {
        // A text type the route lists as a file is one: passed as the route allows.
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if route.files.accepts(&media.to_ascii_lowercase()) {
            kind = BodyKind::File(media.to_ascii_lowercase());
        }
    }
    match kind {
        BodyKind::File(media) => match disarm::disarm(&media, body, &route.files) {
            Ok(disarmed) => {
                changes.extend(
                    disarmed
                        .removed
                        .iter()
                        .map(|r| format!("disarmed:body:{r}")),
                );
                rewritten = disarmed.content;
            }
            Err(refused) => return BodyCheck::refuse(file_refusal(&refused, "the body")),
        },
        BodyKind::Multipart => {
            let Some(parts) = multipart::boundary(content_type)
                .and_then(|b| Some((b, multipart::parse(body, b)?)))
            else {
                return BodyCheck::refuse(Refusal::new(
                    Reason::ProtocolMalformedBody,
                    "the multipart body does not follow its boundary",
                ));
            };
            let (boundary, multipart::Multipart { parts, newline }) = parts;
            let mut contents: Vec<(&[u8], std::borrow::Cow<'_, [u8]>)> = Vec::new();
            for part in &parts {
                let content = match multipart_part(part, route, neutralised, &mut found) {
                    Ok((new, removed)) => {
                        changes.extend(removed);
                        new
                    }
                    Err(refusal) => return BodyCheck::refuse(refusal),
                };
                contents.push((part.head, content.map_or(part.content.into(), Into::into)));
            }
            if !changes.is_empty() {
                let pieces: Vec<(&[u8], &[u8])> =
                    contents.iter().map(|(h, c)| (*h, c.as_ref())).collect();
                rewritten = Some(multipart::build(&pieces, boundary, newline));
            }
        }
        // RFC 8259 section 8.1: senders must not add a byte order mark, and parsers may skip
        // it. The gateway's does not, so it would read the body as text while a backend that
        // skips the mark (Jackson, .NET) parses JSON past the JSON-only checks (R-WAF-3).
        BodyKind::Json if body.starts_with(b"\xEF\xBB\xBF") => {
            return BodyCheck::refuse(Refusal::new(
                Reason::ProtocolMalformedBody,
                "the JSON body starts with a byte order mark, which RFC 8259 forbids senders to add: send it without one",
            ))
        }
        // An HTTP/2 body needs no length, so the head's check (`protocol::check_body_declared`)
        // could not see this one; a backend would have to guess its type (R-WAF-3).
        BodyKind::Untyped if !body.is_empty() => {
            return BodyCheck::refuse(Refusal::new(
                Reason::ProtocolContentTypeMissing,
                "a request body must name its media type in Content-Type",
            ))
        }
        kind => {
            let mut xml_edits = Vec::new();
            let attachments = if kind == BodyKind::Json {
                match json::inspect_collecting_files(body, &mut found) {
                    Ok(attachments) => match inline_files(attachments, route, &mut found, 0) {
                        Ok(disarmed) => disarmed,
                        Err(refusal) => return BodyCheck::refuse(refusal),
                    },
                    // A body that does not parse may still carry a file a lenient backend
                    // reads (Go's `json.Decoder` takes the first value and stops before
                    // trailing bytes): its files could not be checked, so it goes no further.
                    Err(e) if attachment::may_hold(body) => {
                        return BodyCheck::refuse(Refusal::new(
                            Reason::ProtocolMalformedBody,
                            format!(
                                "the JSON body does not parse ({e}), so the files it may carry inline cannot be checked"
                            ),
                        ))
                    }
                    Err(_) => {
                        // Not JSON after all: inspected as text too (as `inspect_body` does).
                        text_body(body, &mut found);
                        InlineFiles::default()
                    }
                }
            } else if kind == BodyKind::Xml {
                match xml_body_read(body, &mut found, neutralised) {
                    Ok(read) => match inline_files(read.files, route, &mut found, 0) {
                        Ok(disarmed) => {
                            xml_edits = read.edits;
                            disarmed
                        }
                        Err(refusal) => return BodyCheck::refuse(refusal),
                    },
                    // As a JSON body that does not parse: a lenient backend may still read
                    // a file in it; and on a `neutralise` route its named fields could not be
                    // rewritten. (A finding that refuses it already names what it is.)
                    Err(e)
                        if (memchr::memmem::find(body, b"data").is_some()
                            || !neutralised.is_empty())
                            && route.refusing(&found.list).is_none() =>
                    {
                        return BodyCheck::refuse(Refusal::new(
                            Reason::ProtocolMalformedBody,
                            format!(
                                "{e}, so the files it may carry inline and the fields the route neutralises cannot be checked"
                            ),
                        ))
                    }
                    Err(_) => InlineFiles::default(),
                }
            } else {
                inspect_body(body, &kind, &mut found);
                InlineFiles::default()
            };
            if kind == BodyKind::Xml && !(attachments.rebuilt.is_empty() && xml_edits.is_empty()) {
                // Files and neutralised fields in one splice of the body as received.
                let Some(new) = xml::rewrite(body, &attachments.rebuilt, &xml_edits) else {
                    return BodyCheck::refuse(Refusal::new(
                        Reason::ProtocolMalformedBody,
                        "a rebuilt file's place in the XML body is not known",
                    ));
                };
                rewritten = Some(new);
                let fields: std::collections::BTreeSet<_> =
                    xml_edits.iter().map(|e| e.field.as_str()).collect();
                changes.extend(fields.into_iter().map(|f| format!("neutralised:{f}")));
            } else if !attachments.rebuilt.is_empty() {
                // On the body as received, where the attachments were found.
                match attachment::rewrite(body, &attachments.rebuilt) {
                    Ok(new) => rewritten = Some(new),
                    Err(e) => {
                        return BodyCheck::refuse(Refusal::new(
                            Reason::ProtocolMalformedBody,
                            e.to_string(),
                        ))
                    }
                }
            }
            changes.extend(attachments.removed);
            let current = rewritten.as_deref().unwrap_or(body);
            let rewrite = match kind {
                _ if neutralised.is_empty() => Ok(None),
                BodyKind::Json => neutralise::json(current, neutralised),
                BodyKind::Form => Ok(neutralise::form(current, neutralised)),
                _ => Ok(None),
            };
            match rewrite {
                Ok(Some(done)) => {
                    changes.extend(done.fields.iter().map(|f| format!("neutralised:{f}")));
                    rewritten = Some(done.body);
                }
                Ok(None) => {}
                Err(e) => {
                    return BodyCheck::refuse(Refusal::new(
                        Reason::ProtocolMalformedBody,
                        e.to_string(),
                    ))
                }
            }
        }
    }
    // The route's exclusions were applied as the findings were made.
    let findings = found.list;
    let refusal = route.refusing(&findings).map(refusal);
    BodyCheck {
        findings,
        // A refused body is forwarded in no form.
        rewritten: rewritten.filter(|_| refusal.is_none()),
        refusal,
        changes,
    }
}

/// One multipart part: a file is disarmed (its file name inspected), a text part inspected
/// and, when the route names it, neutralised. Returns its new content, if any, and what was
/// changed (`disarmed:…`, `neutralised:…`) for the access record.
fn multipart_part(
    part: &multipart::Part<'_>,
    route: &RouteInspection,
    neutralised: &[String],
    found: &mut Findings,
) -> Result<(Option<Vec<u8>>, Vec<String>), crate::decision::Refusal> {
    let name = part.name.as_deref().unwrap_or_default();
    let field = || name.to_owned();
    let n = normalise(name.as_bytes(), Plus::Literal);
    found.add(detect::name(&n), Place::Body, field);
    found.add(detect::value(&n), Place::Body, field);
    found.add(part_framing(part), Place::Body, field);
    if !part.filenames.is_empty() {
        for filename in &part.filenames {
            found.add(
                detect::file_name(filename)
                    .or_else(|| detect::value(&normalise(filename.as_bytes(), Plus::Literal))),
                Place::Body,
                field,
            );
        }
        let media = part
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        if body_kind(media) != BodyKind::File(media.to_owned()) && !route.files.accepts(media) {
            // A text, JSON or XML file: inspected as its type says, its own files disarmed.
            return Ok(
                inline_document(part.content, name, &body_kind(media), route, found, 0)?
                    .map_or((None, Vec::new()), |file| {
                        (Some(file.content), file.removed)
                    }),
            );
        }
        let what = format!("the file `{name}`");
        let disarmed = disarm::disarm(media, part.content, &route.files)
            .map_err(|r| file_refusal(&r, &what))?;
        if disarmed.content.is_none() {
            inspect_if_text(part.content, name, route, found, 0)?;
        }
        let removed = disarmed
            .removed
            .iter()
            .map(|r| format!("disarmed:{name}:{r}"))
            .collect();
        return Ok((disarmed.content, removed));
    }
    let content = part.content;
    if std::str::from_utf8(content).is_ok() {
        found.add(
            detect::value(&normalise(content, Plus::Literal)),
            Place::Body,
            field,
        );
    }
    // A JSON or XML part (a FHIR resource beside the files of an upload) carries a document:
    // read as one, its own inline files are held to the file rules.
    let (mut new, mut changes) = (None, Vec::new());
    if let Some(kind) = part
        .content_type
        .as_deref()
        .map(body_kind)
        .filter(|kind| matches!(kind, BodyKind::Json | BodyKind::Xml))
    {
        if let Some(file) = inline_document(content, name, &kind, route, found, 0)? {
            (new, changes) = (Some(file.content), file.removed);
        }
    }
    // A named part is neutralised as well, its files rebuilt or not: its findings were let
    // through on the strength of that rewrite.
    if let Some(neutral) = neutralise::part(name, new.as_deref().unwrap_or(content), neutralised) {
        changes.push(format!("neutralised:{name}"));
        new = Some(neutral);
    }
    Ok((new, changes))
}

/// The files a JSON body carries inline, disarmed.
#[derive(Default)]
struct InlineFiles {
    /// Attachments rebuilt, with their new content.
    rebuilt: Vec<(attachment::Attachment, Vec<u8>)>,
    /// What was removed, for the access record (`disarmed:content.attachment.data:pdf:JS`).
    removed: Vec<String>,
}

/// How many files deep inline files are taken apart: a JSON or XML file sent inline (a FHIR
/// document Bundle attached to a DocumentReference) carries files of its own, which are
/// disarmed as the body's are; a file inside one of those is refused, not guessed at.
const INLINE_FILE_DEPTH: usize = 2;

/// A JSON body's inline files (FHIR `Attachment.data`, `Binary.data`), held to R-WAF-2 as
/// uploads are: on a route that lists `files`, by the same rules as a multipart file (an
/// attachment without `contentType` is `application/octet-stream`); on any other route by
/// [`disarm::disarm_unlisted`]. A text, JSON or XML file the route does not list is inspected
/// as its type says. `depth` is how many files deep they are: 0 for the body's own.
fn inline_files(
    attachments: Result<Vec<attachment::Attachment>, attachment::Unreadable>,
    route: &RouteInspection,
    found: &mut Findings,
    depth: usize,
) -> Result<InlineFiles, crate::decision::Refusal> {
    use crate::decision::{Reason, Refusal};
    let attachments = attachments.map_err(|e| match e {
        attachment::Unreadable::Ambiguous { .. } => {
            Refusal::new(Reason::InspectFileRefused, e.to_string())
        }
        attachment::Unreadable::Json(_) => {
            Refusal::new(Reason::ProtocolMalformedBody, e.to_string())
        }
    })?;
    let mut files = InlineFiles::default();
    for inline in attachments {
        let media = inline.media.as_deref();
        if let Some(media) = media {
            let kind = body_kind(media);
            if kind != BodyKind::File(media.to_owned()) && !route.files.accepts(media) {
                if let Some(file) =
                    inline_document(&inline.content, &inline.field, &kind, route, found, depth)?
                {
                    files.removed.extend(file.removed);
                    files.rebuilt.push((inline, file.content));
                }
                continue;
            }
        }
        let what = format!("the file in `{}`", inline.field);
        let disarmed = if route.files.any() {
            disarm::disarm(
                media.unwrap_or("application/octet-stream"),
                &inline.content,
                &route.files,
            )
        } else {
            disarm::disarm_unlisted(media, &inline.content)
        }
        .map_err(|r| file_refusal(&r, &what))?;
        if disarmed.content.is_none() {
            inspect_if_text(&inline.content, &inline.field, route, found, depth)?;
        }
        files.removed.extend(
            disarmed
                .removed
                .iter()
                .map(|r| format!("disarmed:{}:{r}", inline.field)),
        );
        if let Some(content) = disarmed.content {
            files.rebuilt.push((inline, content));
        }
    }
    Ok(files)
}

/// A file passed unchanged by the file rules whose bytes are text all the same — HTML under
/// `image/png`, script under `application/octet-stream` or a listed `image/gif`: a reader that
/// sniffs reads it as what it is, so it is inspected as a text file is. (A PDF of plain ASCII
/// is left to the PDF rules; a GIF or any binary format has control bytes, which text has not.)
fn inspect_if_text(
    content: &[u8],
    field: &str,
    route: &RouteInspection,
    found: &mut Findings,
    depth: usize,
) -> Result<(), crate::decision::Refusal> {
    let is_text = std::str::from_utf8(content).is_ok()
        && !content
            .iter()
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C));
    if is_text && !disarm::rebuildable(content) {
        inline_document(content, field, &BodyKind::Text, route, found, depth)?;
    }
    Ok(())
}

/// A text, JSON or XML file the route does not list as a file (sent inline, or as a
/// multipart file): inspected as its type says (findings named by the field that carries it,
/// where the access record and the route's exclusions look, not by a path inside the file),
/// and the files a JSON or XML one carries inline in turn disarmed, their fields named
/// `outer/inner` (`content.attachment.data/content.attachment.data`). Returns the file
/// written anew when a file inside it was rebuilt, with what was removed.
fn inline_document(
    content: &[u8],
    field: &str,
    kind: &BodyKind,
    route: &RouteInspection,
    found: &mut Findings,
    depth: usize,
) -> Result<Option<Rewritten>, crate::decision::Refusal> {
    use crate::decision::{Reason, Refusal};
    let mut inside = found.within(field);
    let nested = match kind {
        BodyKind::Json => match json::inspect_collecting_files(content, &mut inside) {
            Ok(files) => Some(files),
            Err(_) => {
                // Not JSON after all: inspected as text too (as `inspect_body` does).
                text_body(content, &mut inside);
                None
            }
        },
        BodyKind::Xml => xml_body_read(content, &mut inside, &[])
            .ok()
            .map(|read| read.files),
        _ => {
            inspect_body(content, kind, &mut inside);
            None
        }
    };
    for finding in inside.list {
        found.add(Some(finding.hit), Place::Body, || field.to_owned());
    }
    let nested = match nested {
        None => return Ok(None),
        Some(Ok(files)) if files.is_empty() => return Ok(None),
        Some(Ok(mut files)) => {
            for file in &mut files {
                file.field = format!("{field}/{}", file.field);
            }
            Ok(files)
        }
        Some(Err(unreadable)) => Err(unreadable),
    };
    if depth + 1 >= INLINE_FILE_DEPTH {
        return Err(Refusal::new(
            Reason::InspectFileRefused,
            format!(
                "the file in `{field}` carries files of its own {} files deep; the gateway takes files apart {INLINE_FILE_DEPTH} deep",
                depth + 2
            ),
        ));
    }
    let inner = inline_files(nested, route, found, depth + 1)?;
    if inner.rebuilt.is_empty() {
        return Ok(None);
    }
    let unknown_place = || {
        Refusal::new(
            Reason::ProtocolMalformedBody,
            format!("a rebuilt file's place in the file in `{field}` is not known"),
        )
    };
    let content = match kind {
        BodyKind::Xml => xml::rewrite(content, &inner.rebuilt, &[]).ok_or_else(unknown_place)?,
        _ => attachment::rewrite(content, &inner.rebuilt)
            .map_err(|e| Refusal::new(Reason::ProtocolMalformedBody, e.to_string()))?,
    };
    Ok(Some(Rewritten {
        content,
        removed: inner.removed,
    }))
}

/// A file written anew around the files inside it that were rebuilt.
struct Rewritten {
    content: Vec<u8>,
    /// What was removed from the files inside, for the access record.
    removed: Vec<String>,
}

/// A part a backend would decode otherwise than the gateway inspected it: a charset that does
/// not keep ASCII as ASCII (UTF-7 hides `<` as `+ADw-`; UTF-16, EBCDIC, ISO-2022 escapes),
/// named by the part or by the form's `_charset_` field (`multipart-100`); a
/// `Content-Transfer-Encoding`, which RFC 7578 retired (`multipart-110`). UTF-8, ASCII,
/// ISO-8859 and Windows single-byte code pages pass. Shift_JIS and EUC-JP do not: their
/// second bytes can be `\` or `|` to a backend reading bytes (the "0x5C problem"), and FHIR
/// and the gateway's inspection read UTF-8 — an operator who must take them excludes
/// `multipart-100` on that field. Names that split their own header: `multipart-120`.
fn part_framing(part: &multipart::Part<'_>) -> Option<Hit> {
    // A quote, `;`, `=` or `\` in a part's name or file name ends or splits the
    // `Content-Disposition` parameter for a parser that unquotes otherwise
    // (`filename="a\".php"`); browsers escape them, and no control character belongs there
    // (`multipart-120`). An apostrophe is a name's own (`Taro's checkup.pdf`).
    let splits = |text: &str| {
        text.chars()
            .any(|c| matches!(c, '"' | ';' | '=' | '\\') || c.is_control())
    };
    if part.repeated
        || part.name.as_deref().is_some_and(splits)
        || part.filenames.iter().any(|f| splits(f))
    {
        return Some(Hit {
            rule: "multipart-120",
            class: Class::Multipart,
        });
    }
    let head = String::from_utf8_lossy(part.head).to_ascii_lowercase();
    let other_charset = |charset: &str| {
        let charset = charset.trim().trim_matches('"');
        !charset.is_empty() && !detect::ascii_compatible(charset)
    };
    let declared = head
        .lines()
        .filter(|l| l.trim_start().starts_with("content-type"))
        .flat_map(|l| l.split(';').skip(1))
        .filter_map(|p| p.split_once('='))
        .any(|(k, v)| k.trim() == "charset" && other_charset(v));
    let form_charset = part.name.as_deref() == Some("_charset_")
        && other_charset(&String::from_utf8_lossy(part.content).to_ascii_lowercase());
    if declared || form_charset {
        return Some(Hit {
            rule: "multipart-100",
            class: Class::Multipart,
        });
    }
    head.lines()
        .any(|l| l.trim_start().starts_with("content-transfer-encoding"))
        .then_some(Hit {
            rule: "multipart-110",
            class: Class::Multipart,
        })
}

/// The refusal of an upload (R-WAF-2).
fn file_refusal(refused: &disarm::Refused, what: &str) -> crate::decision::Refusal {
    use crate::decision::{Reason, Refusal};
    let reason = match refused {
        disarm::Refused::Unrebuildable { .. } => Reason::InspectFileUnrebuildable,
        _ => Reason::InspectFileRefused,
    };
    Refusal::new(reason, format!("{what}: {refused}"))
}

/// Inspect a body that is not a file or multipart (those [`check_body`] takes apart).
pub(super) fn inspect_body(body: &[u8], kind: &BodyKind, found: &mut Findings) {
    match kind {
        BodyKind::Json => {
            if json::inspect(body, found).is_err() {
                // Not JSON after all: inspected as text too.
                text_body(body, found);
            }
        }
        BodyKind::Xml => xml_body(body, found),
        BodyKind::Form => {
            pairs(&String::from_utf8_lossy(body), Place::Body, None, found);
        }
        BodyKind::Text => text_body(body, found),
        // What a lenient backend might make of it, a form or text. (A multipart body reaches
        // here only through `inspect`, the head-and-body view that benches use; a file's
        // bytes are read as text.)
        BodyKind::Untyped | BodyKind::Multipart | BodyKind::File(_) => {
            if !pairs(&String::from_utf8_lossy(body), Place::Body, None, found) {
                text_body(body, found);
            }
        }
    }
}

fn text_body(body: &[u8], found: &mut Findings) {
    if std::str::from_utf8(body).is_ok() {
        found.add(
            detect::value(&normalise(body, Plus::Literal)),
            Place::Body,
            whole,
        );
    }
}

/// An XML body ([`xml`]), inspected; the files it carries inline are left to the caller.
fn xml_body(body: &[u8], found: &mut Findings) {
    // Reached from `inspect`, the head-and-body view without files: the proxy's XML bodies,
    // and XML files inline or in a multipart body, go through `xml_body_read` and have their
    // own files collected (`check_body`, `inline_document`).
    let _ = xml_body_read(body, found, &[]);
}

/// An XML body ([`xml`]): a DTD or entity declaration is refused (`xxe-100`); attribute
/// values and text are inspected as values, a FHIR narrative by the narrative rules; the
/// files it carries inline are collected and the `neutralised` fields rewritten. A body that
/// is not well-formed XML is an `Err`, after [`xml_text`] has inspected it as a lenient parser
/// might read it (unless it declares entities).
fn xml_body_read(
    body: &[u8],
    found: &mut Findings,
    neutralised: &[String],
) -> Result<xml::Read, xml::NotXml> {
    let declares_entities = xml::declares_entities(body);
    if declares_entities {
        found.add(
            Some(Hit {
                rule: "xxe-100",
                class: Class::Xxe,
            }),
            Place::Body,
            whole,
        );
    }
    let read = xml::inspect(body, found, neutralised);
    if read.is_err() && !declares_entities {
        // (With a DTD, what its entities expand to is unknown; the DTD is the finding.)
        xml_text(body, found);
    }
    read
}

/// XML that does not parse: its attribute values (`a="…"`, `a='…'`) and the text between
/// its tags, as a lenient parser might find them.
fn xml_text(body: &[u8], found: &mut Findings) {
    let text = String::from_utf8_lossy(body);
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
            whole,
        ) {
            return;
        }
    }
}
