//! Normalisation before detection (R-WAF-1): a value is turned into what a backend would
//! finally see, so that an encoding cannot hide an attack from the detectors.
//!
//! Percent-decoding is repeated (at most three rounds; a value that still decodes after the
//! first round was encoded twice, itself a signal), `+` is a space where forms say so, HTML
//! entities are decoded, Unicode is folded with NFKC (`＜ｓｃｒｉｐｔ＞` becomes `<script>`), NUL and
//! other control characters are noted and removed, backslashes become slashes, and the
//! result is lower-cased. Invalid UTF-8 after decoding is reported, not repaired.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// How a value was encoded, beyond what normalisation undid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// Still percent-encoded after one round of decoding.
    pub double_encoded: bool,
    /// A NUL byte.
    pub nul: bool,
    /// Bytes that are not UTF-8 once decoded.
    pub invalid_utf8: bool,
}

/// A value as the detectors see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalised {
    /// Decoded (percent, entities, NFKC), control characters removed, original case.
    pub decoded: String,
    /// `decoded`, lower-cased, backslashes as slashes.
    pub folded: String,
    /// What the decoding found.
    pub signals: Signals,
}

/// Whether `+` means a space in this value (query strings and urlencoded forms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plus {
    /// `+` is a space.
    Space,
    /// `+` is itself.
    Literal,
}

const MAX_ROUNDS: usize = 3;

/// Normalise one value.
pub fn normalise(raw: &[u8], plus: Plus) -> Normalised {
    let mut signals = Signals::default();
    let mut bytes: Cow<'_, [u8]> = Cow::Borrowed(raw);
    if plus == Plus::Space && bytes.contains(&b'+') {
        bytes = Cow::Owned(
            bytes
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        );
    }
    for round in 0..MAX_ROUNDS {
        if let Some(unescaped) = percent_u(&bytes) {
            // IIS's `%uXXXX`: a backend that reads it sees the character.
            bytes = Cow::Owned(unescaped);
        }
        if !has_escape(&bytes) {
            break;
        }
        if round > 0 {
            signals.double_encoded = true;
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode(&bytes).collect();
        if decoded == *bytes {
            break;
        }
        bytes = Cow::Owned(decoded);
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            signals.invalid_utf8 = true;
            String::from_utf8_lossy(&bytes)
        }
    };
    // Entities: `&lt;script&gt;`, `&#x3c;`, `&#106` without its `;` (browsers read it), and
    // their double forms (`&amp;lt;`).
    let mut text = numeric_entities(&text).unwrap_or_else(|| text.into_owned());
    for _ in 0..2 {
        if !text.contains('&') {
            break;
        }
        let decoded = html_escape::decode_html_entities(&text);
        if decoded == text {
            break;
        }
        text = decoded.into_owned();
    }
    let needs_nfkc = !text.is_ascii();
    let mut decoded = String::with_capacity(text.len());
    let mut push = |c: char| {
        if c == '\0' {
            // Removed: a NUL inside a keyword (`sel%00ect`) must not hide it.
            signals.nul = true;
        } else if !c.is_control() || matches!(c, '\n' | '\r' | '\t') {
            decoded.push(c);
        } else {
            // Other controls separate tokens for an HTML parser (`src=x\x0conerror=`).
            decoded.push(' ');
        }
    };
    if needs_nfkc {
        text.nfkc().for_each(&mut push);
    } else {
        text.chars().for_each(&mut push);
    }
    let folded = decoded
        .chars()
        .map(|c| if c == '\\' { '/' } else { c })
        .flat_map(char::to_lowercase)
        .collect();
    Normalised {
        decoded,
        folded,
        signals,
    }
}

/// `%uXXXX` escapes decoded, or `None` when there are none.
fn percent_u(bytes: &[u8]) -> Option<Vec<u8>> {
    let is_escape = |w: &[u8]| {
        w.len() >= 6
            && w[0] == b'%'
            && (w[1] == b'u' || w[1] == b'U')
            && w[2..6].iter().all(u8::is_ascii_hexdigit)
    };
    if !bytes.windows(6).any(is_escape) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if is_escape(&bytes[i..bytes.len().min(i + 6)]) {
            let hex = std::str::from_utf8(&bytes[i + 2..i + 6]).ok()?;
            let c = u32::from_str_radix(hex, 16)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            i += 6;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Numeric character references, with or without their `;` (`&#106&#x61;`), decoded; `None`
/// when there are none.
fn numeric_entities(text: &str) -> Option<String> {
    if !text.contains("&#") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("&#") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let (hex, digits_from) = match after.as_bytes().first() {
            Some(b'x' | b'X') => (true, 1),
            _ => (false, 0),
        };
        let digits: &str = {
            let tail = &after[digits_from..];
            let len = tail
                .bytes()
                .take_while(|b| {
                    if hex {
                        b.is_ascii_hexdigit()
                    } else {
                        b.is_ascii_digit()
                    }
                })
                .count();
            &tail[..len]
        };
        let value = u32::from_str_radix(digits, if hex { 16 } else { 10 }).ok();
        match value.and_then(char::from_u32) {
            Some(c) if !digits.is_empty() => {
                out.push(c);
                let mut consumed = 2 + digits_from + digits.len();
                if rest[at + consumed..].starts_with(';') {
                    consumed += 1;
                }
                rest = &rest[at + consumed..];
            }
            _ => {
                out.push_str("&#");
                rest = &rest[at + 2..];
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Whether `bytes` holds a `%XX` escape.
fn has_escape(bytes: &[u8]) -> bool {
    bytes
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_fold_to_what_a_backend_sees() {
        let cases: &[(&str, Plus, &str, Signals)] = &[
            (
                "%3Cscript%3E",
                Plus::Literal,
                "<script>",
                Signals::default(),
            ),
            (
                "%253Cscript%253E",
                Plus::Literal,
                "<script>",
                Signals {
                    double_encoded: true,
                    ..Signals::default()
                },
            ),
            ("a+or+1%3D1", Plus::Space, "a or 1=1", Signals::default()),
            ("a+b", Plus::Literal, "a+b", Signals::default()),
            (
                "&lt;ScRiPt&gt;",
                Plus::Literal,
                "<script>",
                Signals::default(),
            ),
            (
                "&amp;lt;img&amp;gt;",
                Plus::Literal,
                "<img>",
                Signals::default(),
            ),
            (
                "＜ｓｃｒｉｐｔ＞",
                Plus::Literal,
                "<script>",
                Signals::default(),
            ),
            ("＇ｏｒ＇", Plus::Literal, "'or'", Signals::default()),
            (
                "..\\..\\windows",
                Plus::Literal,
                "../../windows",
                Signals::default(),
            ),
            (
                "sel%00ect",
                Plus::Literal,
                "select",
                Signals {
                    nul: true,
                    ..Signals::default()
                },
            ),
            (
                "血圧 120/80",
                Plus::Literal,
                "血圧 120/80",
                Signals::default(),
            ),
            (
                "%uff1cscript%uff1e",
                Plus::Literal,
                "<script>",
                Signals::default(),
            ),
            (
                "&#106&#97&#x76;a",
                Plus::Literal,
                "java",
                Signals::default(),
            ),
            (
                "x\u{c}onerror",
                Plus::Literal,
                "x onerror",
                Signals::default(),
            ),
        ];
        for (raw, plus, folded, signals) in cases {
            let n = normalise(raw.as_bytes(), *plus);
            assert_eq!(n.folded, *folded, "{raw}");
            assert_eq!(n.signals, *signals, "{raw}");
        }
        let bad = normalise(b"%C0%AE%C0%AE/", Plus::Literal);
        assert!(bad.signals.invalid_utf8, "overlong UTF-8 is not UTF-8");
    }
}
