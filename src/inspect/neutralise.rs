//! Neutralising named fields (R-WAF-4, 無害化 by fixed rules): on a route with
//! `inspect = "neutralise"`, the body fields it names (`neutralise = ["note.text"]`) have the
//! characters that mean something to HTML and SQL rewritten as HTML entities, whatever they
//! hold: `&` `<` `>` `"` `'` become `&amp;` `&lt;` `&gt;` `&quot;` `&#x27;`. A FHIR narrative
//! (`text.div`) is XHTML by design: it is left alone unless it breaks the narrative rules, and
//! then cleaned with ammonia to FHIR's allowed elements and attributes.
//!
//! The rewrite is never silent: the proxy records the fields in the access record and tells
//! both the upstream and the client (`PHR-Neutralised`). JSON keeps its key order and every
//! value outside the named fields as sent (struson reads and writes it as a stream).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::LazyLock;

use struson::reader::{JsonReader, JsonStreamReader, ReaderSettings, ValueType};
use struson::writer::{JsonStreamWriter, JsonWriter};

/// A body whose named fields were rewritten.
#[derive(Debug, PartialEq, Eq)]
pub struct Neutralised {
    /// The new body.
    pub body: Vec<u8>,
    /// The fields that changed (dotted paths or form names), in order.
    pub fields: Vec<String>,
}

/// Why a body could not be rewritten.
#[derive(Debug, thiserror::Error)]
#[error("the body could not be rewritten: {0}")]
pub struct Unrewritable(String);

/// The characters NFKC folds to one of HTML's special characters: full-width `＜＞＂＇＆` and
/// the small `﹤﹥﹠`. A backend that normalises text (many Japanese systems do) would turn
/// `＜img onerror=…＞` into markup after the gateway passed it.
const FOLDS_TO_SPECIAL: [char; 8] = [
    '\u{FE60}', '\u{FE64}', '\u{FE65}', '\u{FF02}', '\u{FF06}', '\u{FF07}', '\u{FF1C}', '\u{FF1E}',
];

/// The fixed rule: HTML's special characters as entities, and the characters that fold to
/// them as numeric ones (`＜` as `&#xFF1C;`, which still reads `＜` wherever entities are
/// decoded, and can no longer be normalised into `<`).
pub fn entities(value: &str) -> std::borrow::Cow<'_, str> {
    let special =
        |c: char| matches!(c, '&' | '<' | '>' | '"' | '\'') || FOLDS_TO_SPECIAL.contains(&c);
    if !value.contains(special) {
        return value.into();
    }
    let mut out = String::with_capacity(value.len() + 16);
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c if FOLDS_TO_SPECIAL.contains(&c) => {
                let _ = write!(out, "&#x{:X};", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.into()
}

/// A FHIR narrative cleaned to FHIR's XHTML subset (elements and attributes of R4's
/// narrative rules, http/https/mailto links only), when it breaks those rules.
fn narrative(xhtml: &str) -> Option<String> {
    static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
        let mut b = ammonia::Builder::new();
        b.tags(
            [
                "a",
                "abbr",
                "acronym",
                "b",
                "big",
                "blockquote",
                "br",
                "caption",
                "cite",
                "code",
                "col",
                "colgroup",
                "dd",
                "dfn",
                "div",
                "dl",
                "dt",
                "em",
                "h1",
                "h2",
                "h3",
                "h4",
                "h5",
                "h6",
                "hr",
                "i",
                "img",
                "li",
                "ol",
                "p",
                "pre",
                "q",
                "samp",
                "small",
                "span",
                "strong",
                "sub",
                "sup",
                "table",
                "tbody",
                "td",
                "tfoot",
                "th",
                "thead",
                "tr",
                "tt",
                "ul",
                "var",
            ]
            .into(),
        )
        .generic_attributes(["class", "style", "id", "lang", "title", "dir"].into())
        .add_tag_attributes("div", ["xmlns"])
        .add_tag_attributes("a", ["href", "name"])
        .add_tag_attributes("img", ["src", "alt", "width", "height"])
        .add_tag_attributes("td", ["colspan", "rowspan"])
        .add_tag_attributes("th", ["colspan", "rowspan", "scope"])
        .url_schemes(["http", "https", "mailto"].into())
        .link_rel(None);
        b
    });
    super::narrative(xhtml)?;
    // ammonia writes HTML; a narrative is XHTML: void elements close themselves.
    let cleaned = CLEANER.clean(xhtml).to_string();
    static VOID: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"<(br|hr|img|col)((?:\s[^>]*)?)>").unwrap_or_else(|_| unreachable!())
    });
    // And XML knows five named entities; html5ever writes a no-break space as HTML's `&nbsp;`.
    let closed = VOID.replace_all(&cleaned, "<$1$2/>");
    Some(closed.replace("&nbsp;", "&#160;"))
}

/// The rewritten value of the field at `path`, when it changes.
pub(super) fn rewrite(path: &str, value: &str) -> Option<String> {
    if path == "text.div" || path.ends_with(".text.div") {
        return narrative(value);
    }
    match entities(value) {
        std::borrow::Cow::Owned(changed) => Some(changed),
        std::borrow::Cow::Borrowed(_) => None,
    }
}

/// A JSON body with the string values at `fields` rewritten; `None` when none changed.
/// Array levels are not part of a path (`note.text` is every note's text).
pub fn json(body: &[u8], fields: &[String]) -> Result<Option<Neutralised>, Unrewritable> {
    let mut changed = BTreeSet::new();
    let out = copy_json(body, &mut |at| {
        // The path is joined only where its last key ends a named field.
        let last = at.path.last().map_or("", String::as_str);
        let maybe = fields.iter().any(|f| {
            f.strip_suffix(last)
                .is_some_and(|head| head.is_empty() || head.ends_with('.'))
        });
        if !maybe {
            return None;
        }
        let field = at.path.join(".");
        let new = fields
            .contains(&field)
            .then(|| rewrite(&field, at.value))
            .flatten()?;
        changed.insert(field);
        Some(new)
    })?;
    Ok((!changed.is_empty()).then(|| Neutralised {
        body: out,
        fields: changed.into_iter().collect(),
    }))
}

/// Where a string value of a JSON body stands, for [`copy_json`]'s edit.
pub(super) struct StringAt<'a> {
    /// The keys leading to it, array levels skipped (`note.text`).
    pub path: &'a [String],
    /// The place of its innermost object among the body's objects, counted as they open.
    pub object: usize,
    /// Whether it is a member of that object itself, not an item of an array in it.
    pub member: bool,
    /// The string.
    pub value: &'a str,
}

/// A JSON body copied as a stream (struson), each string value offered to `edit`, whose
/// answer replaces it. Key order, numbers as written and every other value stay as sent (a
/// health value is never changed, R-WAF-4). Neutralising and the rewrite of inline files
/// (`attachment::rewrite`) both write through it.
pub(super) fn copy_json(
    body: &[u8],
    edit: &mut dyn FnMut(&StringAt<'_>) -> Option<String>,
) -> Result<Vec<u8>, Unrewritable> {
    let mut reader = JsonStreamReader::new_custom(
        body,
        ReaderSettings {
            // The body was parsed for inspection already; keep what serde_json allowed.
            max_nesting_depth: Some(128),
            ..ReaderSettings::default()
        },
    );
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut writer = JsonStreamWriter::new(&mut out);
    let mut copier = Copier {
        path: Vec::new(),
        objects: 0,
        open: Vec::new(),
        edit,
    };
    copier
        .value(&mut reader, &mut writer, false)
        .map_err(|e| Unrewritable(e.to_string()))?;
    reader
        .consume_trailing_whitespace()
        .map_err(|e| Unrewritable(e.to_string()))?;
    writer
        .finish_document()
        .map_err(|e| Unrewritable(e.to_string()))?;
    Ok(out)
}

type CopyError = Box<dyn std::error::Error>;

struct Copier<'e> {
    path: Vec<String>,
    objects: usize,
    /// The objects open, innermost last: their places.
    open: Vec<usize>,
    edit: &'e mut dyn FnMut(&StringAt<'_>) -> Option<String>,
}

impl Copier<'_> {
    /// Copy one value; `member` when it is an object's member (not an array's item).
    fn value(
        &mut self,
        reader: &mut JsonStreamReader<&[u8]>,
        writer: &mut JsonStreamWriter<&mut Vec<u8>>,
        member: bool,
    ) -> Result<(), CopyError> {
        match reader.peek()? {
            ValueType::Object => {
                self.open.push(self.objects);
                self.objects += 1;
                reader.begin_object()?;
                writer.begin_object()?;
                while reader.has_next()? {
                    let name = reader.next_name_owned()?;
                    writer.name(&name)?;
                    self.path.push(name);
                    self.value(reader, writer, true)?;
                    self.path.pop();
                }
                reader.end_object()?;
                writer.end_object()?;
                self.open.pop();
            }
            ValueType::Array => {
                reader.begin_array()?;
                writer.begin_array()?;
                while reader.has_next()? {
                    self.value(reader, writer, false)?;
                }
                reader.end_array()?;
                writer.end_array()?;
            }
            ValueType::String => {
                let value = reader.next_str()?;
                let at = StringAt {
                    path: &self.path,
                    object: self.open.last().copied().unwrap_or_default(),
                    member,
                    value,
                };
                match (self.edit)(&at) {
                    Some(new) => writer.string_value(&new)?,
                    None => writer.string_value(value)?,
                }
            }
            ValueType::Number => writer.number_value_from_string(reader.next_number_as_str()?)?,
            ValueType::Boolean => writer.bool_value(reader.next_bool()?)?,
            ValueType::Null => {
                reader.next_null()?;
                writer.null_value()?;
            }
        }
        Ok(())
    }
}

/// Characters a form value keeps unencoded (`application/x-www-form-urlencoded`).
const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

fn form_decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// An urlencoded form with the values of `fields` rewritten; other pairs stay as sent.
pub fn form(body: &[u8], fields: &[String]) -> Option<Neutralised> {
    let text = std::str::from_utf8(body).ok()?;
    let mut changed = BTreeSet::new();
    let pairs: Vec<String> = text
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = form_decode(name);
            if !fields.contains(&decoded) {
                return pair.to_owned();
            }
            match rewrite(&decoded, &form_decode(value)) {
                Some(new) => {
                    changed.insert(decoded);
                    let encoded: String =
                        percent_encoding::utf8_percent_encode(&new, FORM).collect();
                    format!("{name}={}", encoded.replace("%20", "+"))
                }
                None => pair.to_owned(),
            }
        })
        .collect();
    (!changed.is_empty()).then(|| Neutralised {
        body: pairs.join("&").into_bytes(),
        fields: changed.into_iter().collect(),
    })
}

/// A multipart text part's new content, when `name` is a neutralised field and it changes.
pub fn part(name: &str, content: &[u8], fields: &[String]) -> Option<Vec<u8>> {
    if !fields.iter().any(|f| f == name) {
        return None;
    }
    rewrite(name, std::str::from_utf8(content).ok()?).map(String::into_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn only_the_named_json_fields_change_and_order_is_kept() {
        let body = br#"{"resourceType":"Observation","note":[{"text":"<b>x</b> & 'y'"},{"text":"ok"}],"valueString":"<i>kept</i>","z":1.50,"a":[true,null]}"#;
        let out = json(body, &fields(&["note.text"]))
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("nothing neutralised"));
        assert_eq!(out.fields, ["note.text"]);
        assert_eq!(
            String::from_utf8_lossy(&out.body),
            r#"{"resourceType":"Observation","note":[{"text":"&lt;b&gt;x&lt;/b&gt; &amp; &#x27;y&#x27;"},{"text":"ok"}],"valueString":"<i>kept</i>","z":1.50,"a":[true,null]}"#
        );
        // Nothing special in the field: nothing changes, nothing is recorded.
        assert!(matches!(
            json(
                br#"{"note":[{"text":"118/76 mmHg"}]}"#,
                &fields(&["note.text"])
            ),
            Ok(None)
        ));
        assert!(json(b"{not json", &fields(&["note"])).is_err());
    }

    /// What a backend that normalises text (NFKC) would turn into markup is encoded too;
    /// Japanese text without those characters is left as sent.
    #[test]
    fn characters_that_fold_to_markup_are_encoded() {
        assert_eq!(
            entities("＜img src=x onerror=alert(1)＞ ﹤b﹥ ＂＇＆﹠"),
            "&#xFF1C;img src=x onerror=alert(1)&#xFF1E; &#xFE64;b&#xFE65; &#xFF02;&#xFF07;&#xFF06;&#xFE60;"
        );
        for plain in [
            "朝食後に服用（１日２回）",
            "血糖値　１１０ｍｇ／ｄＬ",
            "「注意」",
        ] {
            assert!(
                matches!(entities(plain), std::borrow::Cow::Borrowed(_)),
                "{plain}"
            );
        }
        let body = r#"{"note":[{"text":"＜ｓｃｒｉｐｔ＞alert(1)＜/ｓｃｒｉｐｔ＞"}]}"#;
        let out = json(body.as_bytes(), &fields(&["note.text"]))
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("nothing neutralised"));
        assert_eq!(
            String::from_utf8_lossy(&out.body),
            r#"{"note":[{"text":"&#xFF1C;ｓｃｒｉｐｔ&#xFF1E;alert(1)&#xFF1C;/ｓｃｒｉｐｔ&#xFF1E;"}]}"#
        );
    }

    #[test]
    fn a_narrative_is_cleaned_only_when_it_breaks_the_rules() {
        let ok = r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>血圧 118/76<br/></p></div>"#;
        assert_eq!(rewrite("text.div", ok), None);
        let bad = r#"<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">血圧<br/></p><script>alert(1)</script><a href="javascript:alert(1)">a</a></div>"#;
        let cleaned = rewrite("text.div", bad).unwrap_or_default();
        assert_eq!(
            cleaned,
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>血圧<br/></p><a>a</a></div>"#
        );
        assert_eq!(super::super::narrative(&cleaned), None);
        // A no-break space comes back as XML can read it, not as HTML's `&nbsp;`.
        let spaced = "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>118\u{a0}mmHg</p><script>x()</script></div>";
        assert_eq!(
            rewrite("text.div", spaced).unwrap_or_default(),
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>118&#160;mmHg</p></div>"#
        );
    }

    #[test]
    fn form_fields_are_rewritten_and_reencoded() {
        let out = form(
            b"comment=%3Cscript%3Ex%3C%2Fscript%3E+hi&other=%3Cb%3E",
            &fields(&["comment"]),
        )
        .unwrap_or_else(|| panic!("nothing neutralised"));
        assert_eq!(out.fields, ["comment"]);
        assert_eq!(
            String::from_utf8_lossy(&out.body),
            "comment=%26lt%3Bscript%26gt%3Bx%26lt%3B%2Fscript%26gt%3B+hi&other=%3Cb%3E"
        );
        assert_eq!(form(b"comment=fine", &fields(&["comment"])), None);
    }
}
