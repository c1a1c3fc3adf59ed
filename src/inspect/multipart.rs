//! `multipart/form-data` bodies (RFC 7578), taken apart and put back together byte for byte:
//! inspection reads each part's name, file name and text, and file disarm replaces a file
//! part's content with the rebuilt file. (multer, the maintained parser, reads an async
//! stream; a body held whole needs only its boundary split, and the rebuild needs the parts'
//! original headers, which it does not keep.)

use memchr::memmem;

/// One part of a multipart body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part<'b> {
    /// The part's header block, as sent (without the blank line that ends it).
    pub head: &'b [u8],
    /// `name` of its `Content-Disposition`.
    pub name: Option<String>,
    /// The file names its `Content-Disposition` gives: `filename`, and `filename*` (RFC 6266,
    /// decoded), which most backends prefer when both are given. Any: the part is a file.
    pub filenames: Vec<String>,
    /// A `Content-Disposition` parameter given twice (`name`, `filename` or `filename*`, in one
    /// header or two): parsers differ on which one counts.
    pub repeated: bool,
    /// Its `Content-Type`, lower case, without parameters.
    pub content_type: Option<String>,
    /// Its content.
    pub content: &'b [u8],
}

/// The boundary of a `multipart/...; boundary=...` content type.
pub fn boundary(content_type: &str) -> Option<&str> {
    content_type
        .split(';')
        .filter_map(|p| {
            let (key, value) = p.trim().split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| value.trim().trim_matches('"'))
        })
        .find(|b| !b.is_empty() && b.len() <= 70)
}

/// A multipart body taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multipart<'b> {
    /// Its parts, in order.
    pub parts: Vec<Part<'b>>,
    /// Its line ending: CRLF as RFC 7578 says, or the bare LF some clients send (and many
    /// backends accept), kept so that a rebuilt body is framed as the original was.
    pub newline: &'static [u8],
}

/// The parts of `body`, or `None` when it is not a well-formed multipart body with this
/// boundary (no closing delimiter, a part without a header block).
pub fn parse<'b>(body: &'b [u8], boundary: &str) -> Option<Multipart<'b>> {
    let delimiter = format!("--{boundary}");
    let finder = memmem::Finder::new(delimiter.as_bytes());
    let first = finder.find(body)?;
    let after_first = &body[first + delimiter.len()..];
    let newline: &'static [u8] = if after_first.starts_with(b"\n") {
        b"\n"
    } else {
        b"\r\n"
    };
    // The first delimiter may open the body or follow a preamble line.
    if first != 0 && !body[..first].ends_with(newline) {
        return None;
    }
    let blank: &[u8] = if newline == b"\n" {
        b"\n\n"
    } else {
        b"\r\n\r\n"
    };
    let mut parts = Vec::new();
    let mut at = first + delimiter.len();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Some(Multipart { parts, newline });
        }
        let rest = rest.strip_prefix(newline)?;
        let start = body.len() - rest.len();
        // The part runs to the next delimiter at the start of a line.
        let n = newline.len();
        let next = memmem::find_iter(rest, delimiter.as_bytes()).find(|&i| {
            let after = &rest[i + delimiter.len()..];
            i >= n
                && &rest[i - n..i] == newline
                && (after.starts_with(newline) || after.starts_with(b"--"))
        })?;
        let part = &body[start..start + next - n];
        let split = memmem::find(part, blank)?;
        parts.push(part_of(&part[..split], &part[split + blank.len()..]));
        at = start + next + delimiter.len();
    }
}

fn part_of<'b>(head: &'b [u8], content: &'b [u8]) -> Part<'b> {
    let text = String::from_utf8_lossy(head);
    let mut part = Part {
        head,
        name: None,
        filenames: Vec::new(),
        repeated: false,
        content_type: None,
        content,
    };
    // Whether `filename` and `filename*` were given yet (a `name` is its own record).
    let (mut plain_given, mut extended_given) = (false, false);
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-type") {
            let media = value.split(';').next().unwrap_or_default();
            part.content_type = Some(media.trim().to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case("content-disposition") {
            for param in parameters(value).skip(1) {
                let Some((key, v)) = param.trim().split_once('=') else {
                    continue;
                };
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
                    .to_owned();
                match key.trim().to_ascii_lowercase().as_str() {
                    "name" => part.repeated |= part.name.replace(v).is_some(),
                    "filename" => {
                        part.repeated |= std::mem::replace(&mut plain_given, true);
                        part.filenames.push(v);
                    }
                    "filename*" => {
                        part.repeated |= std::mem::replace(&mut extended_given, true);
                        part.filenames.push(extended_value(&v));
                    }
                    _ => {}
                }
            }
        }
    }
    part
}

/// An RFC 8187 extended value (`UTF-8''%e2%82%ac%20rates.pdf`) as a backend decodes it: the
/// charset and language dropped, the rest percent-decoded. A value without the two
/// apostrophes is kept as written.
fn extended_value(value: &str) -> String {
    let mut pieces = value.splitn(3, '\'');
    match (pieces.next(), pieces.next(), pieces.next()) {
        (Some(_charset), Some(_language), Some(encoded)) => {
            percent_encoding::percent_decode_str(encoded)
                .decode_utf8_lossy()
                .into_owned()
        }
        _ => value.to_owned(),
    }
}

/// A header value split at each `;` outside a quoted string (`filename="a;b.txt"` is one
/// parameter); a backslash inside quotes keeps the next character in the string. The quoted
/// text is kept as written, so that the part's checks see every character a backend might.
fn parameters(value: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    let mut cuts = Vec::new();
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                cuts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    cuts.push(&value[start..]);
    cuts.into_iter()
}

/// A multipart body with `parts`' heads and the given contents, in order, lines ending in
/// `newline`.
pub fn build(parts: &[(&[u8], &[u8])], boundary: &str, newline: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (head, content) in parts {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(newline);
        out.extend_from_slice(head);
        out.extend_from_slice(newline);
        out.extend_from_slice(newline);
        out.extend_from_slice(content);
        out.extend_from_slice(newline);
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--");
    out.extend_from_slice(newline);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\r\n--XyZ-not\r\nbinary\r\n--XyZ--\r\n";

    #[test]
    fn parts_are_split_and_rebuilt_byte_for_byte() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"XyZ\""),
            Some("XyZ")
        );
        let parsed = parse(BODY, "XyZ").unwrap_or_else(|| panic!("not parsed"));
        let parts = &parsed.parts;
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name.as_deref(), Some("note"));
        assert_eq!(parts[0].content, b"hello");
        assert_eq!(parts[1].filenames, ["r.pdf"]);
        assert_eq!(parts[1].content_type.as_deref(), Some("application/pdf"));
        // A delimiter-like line inside the content that is not the boundary stays content.
        assert_eq!(parts[1].content, b"%PDF-1.4\r\n--XyZ-not\r\nbinary");
        let pieces: Vec<(&[u8], &[u8])> = parts.iter().map(|p| (p.head, p.content)).collect();
        assert_eq!(build(&pieces, "XyZ", parsed.newline), BODY);
        // Bare LF framing, as some clients send it, is read and rebuilt the same way.
        let lf: Vec<u8> = String::from_utf8_lossy(BODY)
            .replace("\r\n", "\n")
            .into_bytes();
        let parsed = parse(&lf, "XyZ").unwrap_or_else(|| panic!("LF body not parsed"));
        assert_eq!(parsed.newline, b"\n");
        assert_eq!(parsed.parts[1].filenames, ["r.pdf"]);
        let pieces: Vec<(&[u8], &[u8])> =
            parsed.parts.iter().map(|p| (p.head, p.content)).collect();
        assert_eq!(build(&pieces, "XyZ", parsed.newline), lf);
    }

    /// Every file name a backend may take is kept, `filename*` decoded; a parameter given
    /// twice is marked.
    #[test]
    fn every_file_name_is_kept_and_repeats_are_marked() {
        let part = |disposition: &str| {
            let body = format!("--B\r\nContent-Disposition: {disposition}\r\n\r\nx\r\n--B--\r\n");
            let parsed = parse(body.as_bytes(), "B").unwrap_or_else(|| panic!("{disposition}"));
            let p = &parsed.parts[0];
            (p.filenames.clone(), p.repeated)
        };
        assert_eq!(
            part(
                "form-data; name=\"f\"; filename*=UTF-8''..%2F..%2Fshell.php; filename=\"ok.png\""
            ),
            (
                vec!["../../shell.php".to_owned(), "ok.png".to_owned()],
                false
            )
        );
        assert_eq!(
            part("form-data; name=\"f\"; filename*=utf-8'ja'%E6%A4%9C%E6%9F%BB.pdf"),
            (vec!["検査.pdf".to_owned()], false)
        );
        assert_eq!(
            part("form-data; name=\"f\"; filename*=plain.pdf"),
            (vec!["plain.pdf".to_owned()], false)
        );
        for repeated in [
            "form-data; name=\"a\"; name=\"b\"",
            "form-data; name=\"f\"; filename=\"a.png\"; FILENAME=\"a.php\"",
            "form-data; name=\"f\"\r\nContent-Disposition: form-data; name=\"g\"",
        ] {
            assert!(part(repeated).1, "{repeated}");
        }
    }

    #[test]
    fn malformed_bodies_are_not_parts() {
        assert_eq!(parse(b"--XyZ\r\nno blank line\r\n--XyZ--", "XyZ"), None);
        assert_eq!(parse(b"--XyZ\r\n\r\nunterminated", "XyZ"), None);
        assert_eq!(parse(b"nothing here", "XyZ"), None);
    }
}
