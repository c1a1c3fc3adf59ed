//! Line breaks that mean something to a program (`crlf-*`): escaped line breaks no encoder
//! writes, a header or a parameter smuggled on a new line, and HL7 v2 messages, whose
//! segments end in a bare CR by design and are read field by field.

use super::*;

/// A command between line breaks written as escapes (`\nid\n`, `\n/bin/ls -al\n`,
/// `;id\n`): a backend that unescapes C-style strings, or passes the value through `echo
/// -e` or `printf`, runs it as lines. A value that starts or ends with such an escape is read
/// again with line breaks for them, and only a command found then counts (a Windows path's
/// `\notes` is a folder, whatever else the second reading makes of it).
pub(super) fn escaped_line_breaks(decoded: &str) -> Option<Hit> {
    const ESCAPES: [&str; 2] = ["\\n", "\\r"];
    if !ESCAPES
        .iter()
        .any(|e| decoded.starts_with(e) || decoded.ends_with(e))
    {
        return None;
    }
    let lines = decoded.replace("\\n", "\n").replace("\\r", "\r");
    read_again(lines.as_bytes()).filter(|hit| hit.class == Class::Rce)
}

/// The fields of an HL7 v2 message (`MSH|^~\&|…`: lab results, prescriptions, SS-MIX2's
/// stored messages in Japan), when the value is one: a receiver splits it at its field,
/// component, repetition and subcomponent separators and at segment ends, so each field is
/// a value of its own. Read whole, the separators are shell syntax (`OBX|4|ID|…` pipes to
/// `id`); read by field, an injection inside one is found as anywhere else. The separators
/// are the ones the message declares in `MSH`, as a receiver reads them.
pub(super) fn hl7_v2_fields(decoded: &str) -> Option<impl Iterator<Item = &str>> {
    let header = decoded.as_bytes().get(..9)?;
    let (field, encoding) = (header[3], &header[4..8]);
    let separator = |b: &u8| b.is_ascii_punctuation() && *b != b'\\';
    let declared = header.starts_with(b"MSH")
        && header[8] == field
        && separator(&field)
        && encoding[2] == b'\\'
        && [encoding[0], encoding[1], encoding[3]]
            .iter()
            .all(|b| separator(b) && *b != field);
    if !declared {
        return None;
    }
    let separators = [field, encoding[0], encoding[1], encoding[3], b'\r', b'\n'];
    Some(decoded.split(move |c: char| u8::try_from(c).is_ok_and(|b| separators.contains(&b))))
}

/// The first finding in an HL7 v2 message's fields. Apart from [`value_with`], which runs
/// for every value, so that this rare path does not weigh on it.
#[cold]
#[inline(never)]
pub(super) fn hl7_v2_verdict<'a>(
    fields: impl Iterator<Item = &'a str>,
    urls_are_fetched: bool,
) -> Option<Hit> {
    fields.filter(|field| !field.is_empty()).find_map(|field| {
        value_with(
            &crate::inspect::normalise::normalise_str(
                field,
                crate::inspect::normalise::Plus::Literal,
            ),
            urls_are_fetched,
        )
    })
}

/// A line in a query value that starts `name=` (`crlf-130`, CRS 921151: `test%0Anext=more`):
/// a parameter smuggled to a backend that reads the value as lines. A line break alone is
/// text (a multi-line note sent by a script).
pub fn query_line(decoded: &str) -> Option<Hit> {
    let text = decoded.as_bytes();
    let smuggled = memchr::memchr2_iter(b'\n', b'\r', text).any(|at| {
        let line = &text[at + 1..];
        let name = line
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            .count();
        name > 0 && line.get(name) == Some(&b'=')
    });
    smuggled.then_some(Hit {
        rule: "crlf-130",
        class: Class::Crlf,
    })
}

/// A header value that, decoded, holds a line break and then any `name:` (`crlf-100`, CRS
/// 921140): a header's value is one line, so a second one is a header injected into what
/// a backend or a log reads. Values elsewhere (a note, a text file) are lines by nature and
/// held to the header names `crlf-100`'s pattern lists.
pub fn header_line(folded: &str) -> Option<Hit> {
    let text = folded.as_bytes();
    memchr::memchr2_iter(b'\r', b'\n', text)
        .any(|at| {
            let line = text[at + 1..].trim_ascii_start();
            let name = line
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
                .count();
            name > 0 && line[name..].trim_ascii_start().first() == Some(&b':')
        })
        .then_some(Hit {
            rule: "crlf-100",
            class: Class::Crlf,
        })
}
