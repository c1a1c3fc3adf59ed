//! Normalisation before detection (R-WAF-1): a value is turned into what a backend would
//! finally see, so that an encoding cannot hide an attack from the detectors.
//!
//! Percent-decoding is repeated (at most three rounds; a value that still decodes after the
//! first round was encoded twice, itself a signal), `+` is a space where forms say so, HTML
//! entities and JavaScript/Java `\uXXXX` and `\xHH` escapes (what a script engine or a Java
//! properties reader makes of `c\u006fnsole`) are decoded, Unicode is folded with NFKC (`＜ｓｃｒｉｐｔ＞` becomes `<script>`), NUL and
//! other control characters are noted and removed, backslashes become slashes, and the
//! result is lower-cased. Invalid UTF-8 after decoding is reported, not repaired.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// How a value was encoded, beyond what normalisation undid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// Still percent-encoded after one round of decoding.
    pub double_encoded: bool,
    /// Still percent-encoded after one round, and an escape of that second round spells an
    /// ASCII letter or digit (`%2573` → `%73` → `s`): no encoder escapes those even once.
    pub letter_encoded_twice: bool,
    /// A NUL byte.
    pub nul: bool,
    /// Bytes that are not UTF-8 once decoded.
    pub invalid_utf8: bool,
    /// A control character other than tab, line feed, carriage return and NUL, once decoded
    /// (FHIR forbids them in strings; no form or URL carries one).
    pub control: bool,
    /// A `%` that starts no escape (`%1G`, a trailing `%`): each decoder reads it its own way.
    pub stray_percent: bool,
    /// IIS's `%uXXXX` escape, which no standard encoder writes.
    pub percent_u: bool,
    /// A `\uXXXX` escape of an ASCII letter or digit (`\u0061lert`): nothing needs one but
    /// a word hidden from a filter.
    pub escaped_ascii: bool,
}

/// A value as the detectors see it. Most values need no decoding nor folding, and borrow
/// the text they were made from: a value costs no copy for that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalised<'a> {
    /// Decoded (percent, entities, NFKC), control characters removed, original case.
    pub decoded: Cow<'a, str>,
    /// `decoded`, lower-cased, backslashes as slashes.
    pub folded: Cow<'a, str>,
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
pub fn normalise(raw: &[u8], plus: Plus) -> Normalised<'_> {
    if let Some(quiet) = std::str::from_utf8(raw).ok().and_then(|t| quiet(t, plus)) {
        return quiet;
    }
    decode(raw, plus, Context::Url)
}

/// Normalise one value known to be UTF-8 (a JSON string, an XML value): its bytes are not
/// checked again. Its percent escapes are decoded for the detectors, as a backend that
/// decodes them again would; but where that decoding makes bytes that are not UTF-8 or a
/// control character, it stops before (an overlong form, `%C0%AE`, the traversal trick, is
/// still taken and refused): a password or a token with `%a6` or `%0F` in it is text, not an
/// encoding attack.
pub fn normalise_str(text: &str, plus: Plus) -> Normalised<'_> {
    quiet(text, plus).unwrap_or_else(|| decode(text.as_bytes(), plus, Context::Text))
}

/// What a value's percent escapes are to the backend that receives it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Part of a URL or a form: the backend decodes them.
    Url,
    /// Text in a structured body: escapes only if the backend decodes the text again.
    Text,
}

/// Whether `bytes` hold an overlong UTF-8 form (a lead byte `C0`/`C1`, `E0` before
/// `80`–`9F`, `F0` before `80`–`8F`): how `.` and `/` are spelled to slip past a filter.
fn has_overlong(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| {
        matches!(
            w,
            [0xC0 | 0xC1, _] | [0xE0, 0x80..=0x9F] | [0xF0, 0x80..=0x8F]
        )
    }) || bytes.last().is_some_and(|&b| b == 0xC0 || b == 0xC1)
}

/// Whether a later decoding round's output is still text a backend could have been sent
/// encoded once more: UTF-8 where the round before was (or an overlong form, which stays a
/// signal), and no control character but NUL, tab and line ends that the round before lacked
/// (`%2500` is a NUL hidden from a filter; `%250d%250a` a header injection, which the rules
/// read). An overlong form is taken whatever else the round made: `%25c1%251c` is
/// `..%c1%1c..`'s traversal encoded again, its `1C` a control byte only as decoded.
fn second_round_readable(before: &[u8], after: &[u8]) -> bool {
    if has_overlong(after) {
        return true;
    }
    let utf8 = |b: &[u8]| std::str::from_utf8(b).is_ok();
    if !utf8(after) && utf8(before) {
        return false;
    }
    let controls = |b: &[u8]| {
        b.iter()
            .filter(|&&b| b != 0 && is_removed_control_byte(b))
            .count()
    };
    controls(after) <= controls(before)
}

/// Everything normalisation does, for a value [`quiet`] could not pass.
fn decode(raw: &[u8], plus: Plus, context: Context) -> Normalised<'static> {
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
        if memchr::memchr(b'%', &bytes).is_none() {
            break;
        }
        if round == 0 {
            signals.stray_percent = has_stray_percent(&bytes);
        }
        if let Some(unescaped) = percent_u(&bytes) {
            // IIS's `%uXXXX`: a backend that reads it sees the character.
            signals.percent_u = true;
            bytes = Cow::Owned(unescaped);
        }
        if !has_escape(&bytes) {
            break;
        }
        if round > 0 {
            signals.double_encoded = true;
            signals.letter_encoded_twice |= escapes_alphanumeric(&bytes);
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode(&bytes).collect();
        if decoded == *bytes {
            break;
        }
        // A URL's or a form's backend decodes once: what the first round made is what it
        // sees; a structured body's text is what it sees undecoded. Any other round is read
        // only for what a backend that decodes again would see, and where it makes bytes that
        // are not UTF-8 (and no overlong form, the traversal trick) or a control character,
        // the text before it stands: a password `%b4s2…` or `%0Fi2…`, sent encoded once or
        // in JSON, is text, not an encoding attack.
        let decoded_again = round > 0 || context == Context::Text;
        if decoded_again && !second_round_readable(&bytes, &decoded) {
            break;
        }
        bytes = Cow::Owned(decoded);
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            // Only a round the backend makes, or an overlong form, is ever taken into bytes
            // that are not UTF-8 (`second_round_readable`): either is refused.
            signals.invalid_utf8 = true;
            String::from_utf8_lossy(&bytes)
        }
    };
    // Entities: `&lt;script&gt;`, `&#x3c;`, `&#106` without its `;` (browsers read it), and
    // their double forms (`&amp;lt;`).
    let mut text = numeric_entities(&text).unwrap_or_else(|| text.into_owned());
    if let Some((unescaped, escaped_ascii)) = unicode_escapes(&text) {
        text = unescaped;
        signals.escaped_ascii = escaped_ascii;
    }
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
    let stable = kana_or_kanji_or_ascii;
    let needs_nfkc = !text.is_ascii() && first_unstable(&text).is_some();
    // Line ends and tabs are kept as they are: a note's lines need no character loop.
    let has_controls = has_removed_control(&text);
    if !needs_nfkc && !has_controls {
        // Nothing to fold or remove.
        return Normalised {
            folded: Cow::Owned(fold(&text)),
            decoded: Cow::Owned(text),
            signals,
        };
    }
    let mut decoded = String::with_capacity(text.len());
    // Character by character only where a control character may be among them.
    let keep = |decoded: &mut String, signals: &mut Signals, run: &str| {
        if has_controls {
            run.chars().for_each(|c| keep_char(decoded, signals, c));
        } else {
            decoded.push_str(run);
        }
    };
    if needs_nfkc {
        // Only the runs around other characters go through NFKC, each from the ASCII, kana
        // or kanji character before it (a combining mark composes with it: か + ゙ is が) to
        // the next such character, which composes with nothing before it. The result is what
        // NFKC makes of the whole, and Japanese text keeps clear of the Unicode tables.
        let mut rest = text.as_str();
        while let Some((at, _)) = first_unstable(rest) {
            let start = rest[..at].char_indices().last().map_or(0, |(i, _)| i);
            keep(&mut decoded, &mut signals, &rest[..start]);
            let end = rest[at..].find(stable).map_or(rest.len(), |e| at + e);
            rest[start..end]
                .nfkc()
                .for_each(|c| keep_char(&mut decoded, &mut signals, c));
            rest = &rest[end..];
        }
        keep(&mut decoded, &mut signals, rest);
    } else {
        keep(&mut decoded, &mut signals, &text);
    }
    Normalised {
        folded: Cow::Owned(fold(&decoded)),
        decoded: Cow::Owned(decoded),
        signals,
    }
}

/// `\uXXXX` and `\xHH` escapes decoded, when there is one: the text a JavaScript, Java or
/// PHP string literal spelled that way holds (`\xHH` only for ASCII). A surrogate or a
/// character that is not one stays as written. Also says whether one spelled an ASCII letter
/// or digit.
fn unicode_escapes(text: &str) -> Option<(String, bool)> {
    // No backslash, no escape (the usual case): found without a substring search.
    memchr::memchr(b'\\', text.as_bytes())?;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    let mut escaped_ascii = false;
    while let Some(at) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        // `\uXXXX`, any character; `\xHH`, an ASCII one (PHP's and JavaScript's `"\x73ystem"`).
        let (digits, ascii_only) = match rest.as_bytes().get(at + 1) {
            Some(b'u') => (4, false),
            Some(b'x') => (2, true),
            _ => (0, false),
        };
        let escaped = (digits > 0)
            .then(|| rest.get(at + 2..at + 2 + digits))
            .flatten()
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| char::from_u32(u32::from_str_radix(hex, 16).ok()?))
            .filter(|c| !ascii_only || c.is_ascii());
        match escaped {
            Some(c) => {
                out.push(c);
                changed = true;
                escaped_ascii |= c.is_ascii_alphanumeric();
                rest = &rest[at + 2 + digits..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    changed.then_some((out, escaped_ascii))
}

/// NUL is removed (a NUL inside a keyword, `sel%00ect`, must not hide it); other control
/// characters but line ends and tabs become spaces (they separate tokens for an HTML parser:
/// `src=x\x0conerror=`).
fn keep_char(decoded: &mut String, signals: &mut Signals, c: char) {
    if c == '\0' {
        signals.nul = true;
    } else if !is_removed_control(c) {
        decoded.push(c);
    } else {
        signals.control = true;
        decoded.push(' ');
    }
}

/// A control character normalisation turns into a space: any but the line ends and the tab
/// (NUL, also one, is removed before this is asked).
fn is_removed_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\r' | '\t')
}

/// [`is_removed_control`] of one byte: only an ASCII byte is a character alone.
fn is_removed_control_byte(b: u8) -> bool {
    // Arithmetic, not a character lookup, so that scans of it vectorise; a unit test holds
    // it to `is_removed_control` for every character.
    (b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t')) || b == 0x7f
}

/// Whether `text` holds a character [`is_removed_control`] names: a C0 control but the line
/// ends and the tab, DEL, or a C1 control (`C2 80` to `C2 9F` in UTF-8). Over bytes, so
/// that a long note's characters are not decoded one by one to ask.
fn has_removed_control(text: &str) -> bool {
    let bytes = text.as_bytes();
    super::scan::any_byte(bytes, is_removed_control_byte)
        || memchr::memchr_iter(0xc2, bytes).any(|at| matches!(bytes.get(at + 1), Some(0x80..=0x9f)))
}

/// Most values hold no escape, no control character and nothing NFKC folds (Japanese text
/// is NFKC already): for them normalising is folding case, found in one pass over the bytes.
/// Line ends and tabs are not control characters here (`keep_char` keeps them): a note or a
/// narrative of several lines is as quiet as one of one.
fn quiet(text: &str, plus: Plus) -> Option<Normalised<'_>> {
    let plus_escapes = plus == Plus::Space;
    // Over bytes, the ASCII controls (NUL among them); the C1 controls are not ASCII, which
    // the check after this one sends to `decode`.
    let escape_or_control = |b: u8| {
        is_removed_control_byte(b)
            || b == b'%'
            || b == b'&'
            || b == b'\\'
            || (b == b'+' && plus_escapes)
    };
    if super::scan::any_byte(text.as_bytes(), escape_or_control) {
        return None;
    }
    // Anything else goes to `decode`, which sends only what needs it through NFKC.
    // Nothing for NFKC to fold, no case beyond ASCII's.
    (text.is_ascii() || first_unstable(text).is_none()).then(|| Normalised {
        decoded: Cow::Borrowed(text),
        // Only ASCII has case here, and there is no backslash to turn (refused above).
        folded: if super::scan::any_byte(text.as_bytes(), |b| b.is_ascii_uppercase()) {
            Cow::Owned(text.to_ascii_lowercase())
        } else {
            Cow::Borrowed(text)
        },
        signals: Signals::default(),
    })
}

/// The first character of `text` that [`kana_or_kanji_or_ascii`] refuses, and where it
/// starts. ASCII is skipped 64 bytes at a time without decoding characters: a narrative is
/// mostly ASCII with a few `&nbsp;`s, a note mostly kanji with a full-width digit or two.
fn first_unstable(text: &str) -> Option<(usize, char)> {
    let bytes = text.as_bytes();
    let mut at = 0;
    loop {
        at += super::scan::first_byte(&bytes[at..], |b| !b.is_ascii())?;
        let c = text[at..].chars().next()?;
        if !kana_or_kanji(c) {
            return Some((at, c));
        }
        at += c.len_utf8();
    }
}

fn kana_or_kanji_or_ascii(c: char) -> bool {
    c.is_ascii() || kana_or_kanji(c)
}

/// Characters of Japanese text that NFKC leaves as they are, that compose with nothing
/// before them and that have no case: ideographic punctuation and brackets, hiragana,
/// katakana (not the half-width forms, nor the lone sound marks), CJK unified ideographs.
/// A value made of these and ASCII needs no Unicode tables at all.
fn kana_or_kanji(c: char) -> bool {
    matches!(c,
        '\u{3001}'..='\u{3003}'
        | '\u{3005}'..='\u{3007}'
        | '\u{3008}'..='\u{3011}'
        | '\u{3041}'..='\u{3096}'
        | '\u{309D}'..='\u{309E}'
        | '\u{30A1}'..='\u{30FA}'
        | '\u{30FC}'..='\u{30FE}'
        | '\u{4E00}'..='\u{9FFF}')
}

/// [`fold`] for text whose only cased characters are ASCII.
fn fold_ascii(text: &str) -> String {
    let folded = text.to_ascii_lowercase();
    if folded.contains('\\') {
        folded.replace('\\', "/")
    } else {
        folded
    }
}

/// Lower-cased, backslashes as slashes, and the slashes NFKC leaves alone read as slashes:
/// Windows' "best fit" conversion to an ANSI code page turns the division slash (U+2215),
/// the fraction slash (U+2044), the big solidus (U+29F8) and their reverse forms into `/`
/// and `\` (the "WorstFit" attacks: `..∕..∕windows∕win.ini` reaches a file through a
/// backend that converts the path).
fn fold(decoded: &str) -> String {
    // Runs of ASCII and caseless Japanese are copied whole and lower-cased in one pass at
    // the end (ASCII lower-casing leaves other bytes alone); only the other characters are
    // looked up, one by one. A narrative of mostly Japanese text is a few copies, not a push
    // per character.
    if decoded.is_ascii() {
        return fold_ascii(decoded);
    }
    let mut folded = String::with_capacity(decoded.len());
    let mut rest = decoded;
    while let Some((at, c)) = first_unstable(rest) {
        folded.push_str(&rest[..at]);
        match c {
            '\u{2215}' | '\u{2044}' | '\u{29F8}' | '\u{2216}' | '\u{29F9}' => folded.push('/'),
            _ => folded.extend(c.to_lowercase()),
        }
        rest = &rest[at + c.len_utf8()..];
    }
    folded.push_str(rest);
    folded.make_ascii_lowercase();
    if folded.contains('\\') {
        folded = folded.replace('\\', "/");
    }
    folded
}

/// `%uXXXX` escapes decoded, or `None` when there are none.
fn percent_u(bytes: &[u8]) -> Option<Vec<u8>> {
    let is_escape = |w: &[u8]| {
        w.len() >= 6
            && w[0] == b'%'
            && (w[1] == b'u' || w[1] == b'U')
            && w[2..6].iter().all(u8::is_ascii_hexdigit)
    };
    if !memchr::memchr_iter(b'%', bytes).any(|at| is_escape(&bytes[at..bytes.len().min(at + 6)])) {
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
/// A `%` followed by anything but two hex digits or IIS's `u` and four.
fn has_stray_percent(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'%', bytes).any(|at| {
        let rest = &bytes[at + 1..];
        let hex = |n: usize, from: usize| {
            rest.len() >= from + n && rest[from..from + n].iter().all(u8::is_ascii_hexdigit)
        };
        !(hex(2, 0) || (matches!(rest.first(), Some(b'u' | b'U')) && hex(4, 1)))
    })
}

/// The two bytes after each `%` of `bytes` (a `%` too near the end has none).
fn after_percents(bytes: &[u8]) -> impl Iterator<Item = (u8, u8)> + '_ {
    memchr::memchr_iter(b'%', bytes)
        .filter_map(|at| Some((*bytes.get(at + 1)?, *bytes.get(at + 2)?)))
}

fn escapes_alphanumeric(bytes: &[u8]) -> bool {
    after_percents(bytes).any(|(high, low)| {
        let hex = |b: u8| (b as char).to_digit(16);
        hex(high)
            .zip(hex(low))
            .is_some_and(|(high, low)| ((high << 4) as u8 | low as u8).is_ascii_alphanumeric())
    })
}

fn has_escape(bytes: &[u8]) -> bool {
    after_percents(bytes).any(|(high, low)| high.is_ascii_hexdigit() && low.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_scan_for_controls_agrees_with_the_character_rule() {
        for b in 0..=0x7f_u8 {
            assert_eq!(
                is_removed_control_byte(b),
                is_removed_control(char::from(b)),
                "{b:#x}"
            );
        }
        for b in 0x80..=0xff_u8 {
            assert!(!is_removed_control_byte(b), "{b:#x} is no character alone");
        }
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            assert_eq!(
                has_removed_control(&text),
                is_removed_control(c),
                "U+{:04X}",
                u32::from(c)
            );
        }
        assert!(!has_removed_control("line\r\nnext\ttab ×\u{a0}"));
    }

    #[test]
    fn folding_by_runs_equals_folding_each_character() {
        let by_character = |text: &str| -> String {
            text.chars()
                .flat_map(char::to_lowercase)
                .map(|c| if c == '\\' { '/' } else { c })
                .collect()
        };
        for text in [
            "ASCII Only \\ Path",
            "血圧 ＡＢＣ 120/80 mmHg（坐位）",
            "ΣΑΣ İstanbul Kelvin \u{212a} Ǆ",
            "カタカナとひらがな、漢字。",
            "",
            "ÀÉÎ\\ÕÜ",
            // Runs longer than the byte scan's blocks, a character at a block's edge.
            &format!(
                "{}É{}血Ｚ{}",
                "X".repeat(63),
                "y".repeat(64),
                "\\".repeat(70)
            ),
        ] {
            assert_eq!(fold(text), by_character(text), "{text}");
        }
    }

    /// A structured body's text is refused for what its percent escapes decode to only when
    /// that is an overlong form; in a URL any bytes that are not UTF-8 are (R-WAF-1).
    #[test]
    fn escapes_in_text_are_refused_only_for_overlong_forms() {
        for token in ["%a69N8mN%jF2on", ".%dArHy:xwFnA", "100%ff"] {
            assert!(
                !normalise_str(token, Plus::Literal).signals.invalid_utf8,
                "{token}"
            );
            assert!(
                normalise(token.as_bytes(), Plus::Literal)
                    .signals
                    .invalid_utf8,
                "{token}"
            );
        }
        for overlong in [
            "..%c0%af..%c0%afetc",
            "%e0%80%ae%e0%80%ae/",
            "%C1%9C",
            "x%c0",
        ] {
            assert!(
                normalise_str(overlong, Plus::Literal).signals.invalid_utf8,
                "{overlong}"
            );
        }
    }

    /// Percent-decoding again only where it makes text (R-WAF-1).
    #[test]
    fn a_later_round_that_makes_no_text_is_not_read() {
        // Sent encoded once, a password that holds `%b4` or `%0F` is text to the backend:
        // decoding it again would make bytes that are not UTF-8, or a control character.
        for (raw, text) in [
            ("%25b4s2WZtEm", "%b4s2WZtEm"),
            ("_n%25AB%40vw3_", "_n%AB@vw3_"),
            ("%24%2A%250Fi2PF%25", "$*%0Fi2PF%"),
        ] {
            let n = normalise(raw.as_bytes(), Plus::Space);
            assert_eq!(n.decoded, text, "{raw}");
            assert!(!n.signals.invalid_utf8 && !n.signals.control, "{raw}");
        }
        let json = normalise_str("$*%0Fi2PF%", Plus::Literal);
        assert!(!json.signals.control, "a JSON string's escape is text");
        // What a later round makes that a backend decoding twice would be attacked with
        // still is: an overlong form, a NUL, a line break.
        assert!(
            normalise(b"%25c0%25ae%25c0%25ae/etc", Plus::Literal)
                .signals
                .invalid_utf8
        );
        assert!(
            normalise(b"..%25c1%251c..%25c1%251cetc/passwd", Plus::Literal)
                .signals
                .invalid_utf8
        );
        assert!(normalise(b"a.php%2500.jpg", Plus::Literal).signals.nul);
        assert!(normalise(b"x%250d%250aSet-Cookie: a=b", Plus::Literal)
            .decoded
            .contains("\r\nSet-Cookie"));
        // Once encoded, a control character is one.
        assert!(normalise(b"a%0Fb", Plus::Literal).signals.control);
        assert!(normalise(b"a%b4b", Plus::Literal).signals.invalid_utf8);
    }

    /// Slashes a Windows backend's best-fit conversion makes of look-alikes (R-WAF-1).
    #[test]
    fn slash_look_alikes_fold_to_slashes() {
        assert_eq!(
            fold("..\u{2215}..\u{2215}etc\u{2215}passwd"),
            "../../etc/passwd"
        );
        assert_eq!(
            fold("..\u{2216}WINDOWS\u{2044}x\u{29F8}y\u{29F9}z"),
            "../windows/x/y/z"
        );
        assert_eq!(fold("1\u{2215}2 血圧"), "1/2 血圧");
    }

    #[test]
    fn escapes_no_encoder_writes_are_signalled() {
        let signals = |raw: &str| normalise(raw.as_bytes(), Plus::Space).signals;
        assert!(signals("param=%1G").stray_percent);
        assert!(signals("new %w20$").stray_percent);
        assert!(signals("99%").stray_percent);
        assert!(!signals("100%25").stray_percent);
        assert!(!signals("%E8%A1%80%E5%9C%A7").stray_percent);
        assert!(!signals("%u0041").stray_percent);
        assert!(signals("foo%uFF01").percent_u);
        assert!(!signals("foo%FF%01").percent_u);
        assert!(signals("%5Cu0061lert").escaped_ascii);
        assert!(signals("\\u0065val").escaped_ascii);
        assert!(
            !signals("\\u3042").escaped_ascii,
            "Japanese escaped is text"
        );
        assert!(
            !signals("\\u003c").escaped_ascii,
            "a sign: the detectors judge it"
        );
        assert!(
            signals("%25%37%33ome").letter_encoded_twice,
            "`s` encoded twice"
        );
        assert!(signals("x%2573").letter_encoded_twice);
        assert!(signals("x%2573").double_encoded);
        for text in ["50%2526%252339%253Bs", "a%2520b", "%252F", "%73", "100%25"] {
            assert!(!signals(text).letter_encoded_twice, "{text}");
        }
        assert!(signals("a%2520b").double_encoded);
        assert!(signals("test1%03").control);
        assert!(signals("hi%13").control);
        assert!(!signals("line%0Abreak%09tab").control);
        assert!(!signals("a%00b").control, "NUL is its own signal");
    }

    #[test]
    fn unicode_escapes_are_decoded_as_a_script_engine_would() {
        let folded = |raw: &str| normalise(raw.as_bytes(), Plus::Literal).folded.into_owned();
        assert_eq!(folded("c\\u006fnsole"), "console");
        assert_eq!(folded("__\\u0070\\u0072oto__"), "__proto__");
        assert_eq!(folded("%5Cu003Cscript"), "<script");
        assert_eq!(folded("\\x73y\\x73tem(ls)"), "system(ls)");
        assert_eq!(folded("c:\\xyz\\x8"), "c:/xyz/x8");
        // Not an escape: kept as written (backslashes fold to slashes).
        assert_eq!(folded("C:\\u-file"), "c:/u-file");
        assert_eq!(folded("\\ud800x"), "/ud800x");
        assert_eq!(folded("\\u00"), "/u00");
    }

    #[test]
    fn kana_and_kanji_are_what_nfkc_and_lower_casing_leave_alone() {
        let mut checked = 0;
        for c in (0x3000..=0x9FFF)
            .filter_map(char::from_u32)
            .filter(|&c| kana_or_kanji(c))
        {
            let one = c.to_string();
            assert_eq!(
                one.nfkc().collect::<String>(),
                one,
                "{c:?} {:04X}",
                c as u32
            );
            assert_eq!(one.to_lowercase(), one, "{c:?}");
            assert!(!c.is_control());
            // Nothing composes with it from behind (it is a starter), nor it with a kana.
            let pair = format!("か{c}");
            assert_eq!(pair.nfkc().collect::<String>(), pair, "{c:?}");
            checked += 1;
        }
        assert!(checked > 20_000);
        // The sound marks and half-width kana are not among them: NFKC changes them.
        for c in ['\u{309B}', '\u{3099}', 'ｶ', '㍿', '（'] {
            assert!(!kana_or_kanji(c), "{c:?}");
        }
        // Runs NFKC folds, between and around runs it leaves alone: the same as the whole
        // through NFKC.
        for text in [
            "（安静時）118/76",
            "ｶﾀｶﾅ＜ｓｃｒｉｐｔ＞です",
            "か\u{3099}が",
            "e\u{301}t\u{e9} ㍿ 血圧",
            "ﬁ<b>①</b>",
        ] {
            let n = normalise(text.as_bytes(), Plus::Literal);
            assert_eq!(n.decoded, text.nfkc().collect::<String>(), "{text}");
        }
        // And over many mixtures of what composes, decomposes and stays.
        let pool: Vec<char> =
            "aZ1 <>か血ー。ｶﾞ\u{3099}\u{309A}\u{301}\u{308}eÅ\u{1100}\u{1161}\u{11A8}가＜①ﬁ㍿ﾟ"
                .chars()
                .collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let text: String = (0..8)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    pool[(seed >> 33) as usize % pool.len()]
                })
                .collect();
            let n = normalise(text.as_bytes(), Plus::Literal);
            assert_eq!(n.decoded, text.nfkc().collect::<String>(), "{text:?}");
        }
        let n = normalise("血圧ＯＫ".as_bytes(), Plus::Literal);
        assert_eq!(n.folded, "血圧ok");
        let n = normalise("朝食後 DROP\\x".as_bytes(), Plus::Literal);
        assert_eq!(
            (&*n.decoded, &*n.folded),
            ("朝食後 DROP\\x", "朝食後 drop/x")
        );
    }

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
                Signals {
                    percent_u: true,
                    ..Signals::default()
                },
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
                Signals {
                    control: true,
                    ..Signals::default()
                },
            ),
            // Line ends and tabs are kept, with no signal, whether or not the text has
            // something to decode; the characters around them still fold.
            (
                "Line one\r\n\tＬＩＮＥ　２",
                Plus::Literal,
                "line one\r\n\tline 2",
                Signals::default(),
            ),
            (
                "朝食後\n&lt;b&gt;",
                Plus::Literal,
                "朝食後\n<b>",
                Signals::default(),
            ),
            (
                "a\nb\u{b}c",
                Plus::Literal,
                "a\nb c",
                Signals {
                    control: true,
                    ..Signals::default()
                },
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
