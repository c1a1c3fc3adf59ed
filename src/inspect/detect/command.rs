//! OS command injection (`rce-*` in code): command words split or hidden by shell quoting
//! and escapes, back-quoted commands, and an address followed by a command.

use super::*;

/// A command written with backslashes before its letters (`c\at /et\c/pas\swd`): a shell
/// drops a backslash before an ordinary character, so it runs `cat /etc/passwd`, while the
/// rules read backslashes as a path's slashes. A value with a backslash between two letters
/// is read again without its backslashes (a Windows path, `C:\Users\report.pdf`, the rules
/// have read as a path already; without them it is a word, `C:Usersreport.pdf`).
pub(super) fn shell_escaped(decoded: &str) -> Option<Hit> {
    let bytes = decoded.as_bytes();
    let escaped_letter = |at: usize| {
        at > 0
            && bytes[at - 1].is_ascii_alphabetic()
            && bytes.get(at + 1).is_some_and(u8::is_ascii_alphabetic)
    };
    if !memchr::memchr_iter(b'\\', bytes).any(escaped_letter) {
        return None;
    }
    let unescaped: Vec<u8> = bytes
        .iter()
        .enumerate()
        .filter(|&(at, &b)| b != b'\\' || !bytes.get(at + 1).is_some_and(u8::is_ascii_alphanumeric))
        .map(|(_, &b)| b)
        .collect();
    read_again(&unescaped)
}

/// The bytes one of which every value [`split_word`] fires on holds: [`value_with`] does not
/// ask it about a short value holding none of them.
pub(super) const SPLIT_WORD_BYTES: &[u8] = b"$`'\";|&";

/// A word a shell joins back from pieces (`rce-220`, CRS 932200, 932230, 932240, 932290):
/// letters on both sides of a special parameter that expands to nothing in a one-off command
/// (`c$@at`, `una$$me`, `/et$?c`), of an empty command substitution (`pi$()ng`, or two
/// back-quotes; or before the space that ends the word, `ping$() 127.0.0.1`), of `${}`, or of an
/// empty quoted string (`ti''me`); a short unset variable between a word and what a shell reads
/// next (`uname$u -a`, `cat$u+/etc$u/passwd`, `cu$v\r\l`); variables joined into a word
/// (`$c1$c2$c3`, `$c $a$b`); or a value (or a command after `;`, `|`, `&`) that starts with a
/// quoted piece of its first word (`'i'fconfig`, `"w"get`). Text writes none of these;
/// `$everything`, `O'Brien`, `"O"s`, `US$ 5` pass. Code, not a pattern: it looks only where a
/// `$`, a back-quote or a quote is.
pub(super) fn split_word(folded: &str) -> Option<Hit> {
    // Every shape below starts at one of `SPLIT_WORD_BYTES` (a test holds it so).
    const HIT: Hit = Hit {
        rule: "rce-220",
        class: Class::Rce,
    };
    let text = folded.as_bytes();
    let letter = |at: Option<usize>| {
        at.and_then(|i| text.get(i))
            .is_some_and(u8::is_ascii_lowercase)
    };
    // What a shell reads after a word: a space, a `+` left undecoded, a path's `/` (the
    // folded text has every backslash as a slash: `cu$v\r\l` reads `cu$v/r/l`).
    let word_end = |at: usize| matches!(text.get(at), Some(b' ' | b'+' | b'/'));
    // The word the pieces join back into must be a program's or a path's (`c$@at`,
    // `w$@ho$@ami`, `/et$?c`): a password's `Pa$$word` or `7ay$Towh+` joins into none.
    let joins_command = |start: usize, resume: usize| {
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        // Backwards over letters and the other empty pieces before them.
        let mut from = start;
        loop {
            from -= text[..from].iter().rev().take_while(|b| alnum(b)).count();
            match filler_before(&text[..from]) {
                Some(len) if from > len && alnum(&text[from - len - 1]) => from -= len,
                _ => break,
            }
        }
        let mut word: Vec<u8> = text[from..start]
            .iter()
            .copied()
            .filter(|b| alnum(b))
            .collect();
        // Forwards over letters, empty pieces and the backslashes a shell drops (`cu$v\r\l`).
        let mut at = resume;
        loop {
            let piece = text
                .get(at..)
                .map_or(0, |rest| rest.iter().take_while(|b| alnum(b)).count());
            word.extend_from_slice(&text[at..at + piece]);
            at += piece;
            if command_word(&word) {
                return true;
            }
            let skip = match filler_at(&text[at..]) {
                Some(len) => len,
                None if text.get(at) == Some(&b'/') && piece <= 1 => 1,
                None => return false,
            };
            if !text.get(at + skip).is_some_and(alnum) {
                return false;
            }
            at += skip;
        }
    };
    let split = memchr::memchr2_iter(b'$', b'`', text).any(|at| {
        let before = letter(at.checked_sub(1));
        if text[at] == b'$' && text.get(at + 1).is_some_and(u8::is_ascii_lowercase) {
            let name = text[at + 1..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || **b == b'_')
                .count();
            let next = at + 1 + name;
            let joined = text.get(next) == Some(&b'$')
                && text
                    .get(next + 1)
                    .is_some_and(|b| b.is_ascii_lowercase() || matches!(b, b'_' | b'{'));
            return joined || (before && name <= 4 && word_end(next) && joins_command(at, next));
        }
        let Some(filler) = filler_at(&text[at..]) else {
            return false;
        };
        // An empty substitution also ends a word before its space (`ping$() 127.0.0.1`).
        let ends_word = filler == 3 || text[at] == b'`';
        before
            && (letter(Some(at + filler)) || (ends_word && text.get(at + filler) == Some(&b' ')))
            && joins_command(at, at + filler)
    });
    let empty_quotes = memchr::memchr2_iter(b'\'', b'"', text).any(|at| {
        text.get(at + 1) == Some(&text[at])
            && letter(at.checked_sub(1))
            && letter(Some(at + 2))
            && joins_command(at, at + 2)
    });
    if split || empty_quotes {
        return Some(HIT);
    }
    // A quoted first piece: at the start, or after a separator and spaces.
    let starts = std::iter::once(0).chain(
        memchr::memchr3_iter(b';', b'|', b'&', text)
            .map(|at| at + 1 + text[at + 1..].iter().take_while(|b| **b == b' ').count()),
    );
    let quoted_piece = |from: usize| {
        let Some(&quote @ (b'\'' | b'"')) = text.get(from) else {
            return false;
        };
        let piece = text[from + 1..]
            .iter()
            .take_while(|b| b.is_ascii_lowercase())
            .count();
        piece > 0 && text.get(from + 1 + piece) == Some(&quote) && letter(Some(from + piece + 2))
    };
    starts.into_iter().any(quoted_piece).then_some(HIT)
}

/// The empty piece a shell expands to nothing (`$@`, `$$`, `$()`, `${}`, two back-quotes or
/// quotes) that `text` starts with, by its length: what [`split_word`] reads words across.
pub(super) fn filler_at(text: &[u8]) -> Option<usize> {
    match text {
        [b'$', b'(', b')', ..] | [b'$', b'{', b'}', ..] => Some(3),
        [b'$', b'@' | b'!' | b'*' | b'?' | b'-' | b'_' | b'$' | b'#', ..] => Some(2),
        [b'`', b'`', ..] | [b'\'', b'\'', ..] | [b'"', b'"', ..] => Some(2),
        _ => None,
    }
}

/// [`filler_at`] of the piece `text` ends with.
pub(super) fn filler_before(text: &[u8]) -> Option<usize> {
    [3, 2]
        .into_iter()
        .find(|&len| text.len() >= len && filler_at(&text[text.len() - len..]) == Some(len))
}

/// Back-quoted text (`rce-110`): a shell runs it, MySQL reads it as a name. Markdown writes
/// code spans the same way, and FHIR's `markdown` fields (an annotation's text, a
/// definition's description) hold them: `` `Observation.code` ``, `` `_count` ``,
/// `` `http://loinc.org` ``. A span passes when it is such a name: one word of letters,
/// digits (any script's), `_`, `-`, `.`, `[x]` or a URL, starting with a letter, a digit or `_` (or a `.` before one: `` `.oralDiet.instruction` ``), that names
/// no program (`` `id` ``, `` `whoami` `` run), written as prose writes it: not joined to
/// another span or to SQL (`` `db`.`users` ``, `` `a`,`b` ``, `` (`x`) ``, `` `x`=1 ``),
/// and in a value with no SQL clause word (`select`, `from`, `where`, `union`, …) around
/// a span, nor the whole value. Spans pair in order; a last, unpaired back-quote runs nothing.
pub(super) fn back_quoted(folded: &str) -> Option<Hit> {
    let bytes = folded.as_bytes();
    let hit = Some(Hit {
        rule: "rce-110",
        class: Class::Rce,
    });
    // Markdown delimits a span by a run of back-quotes (```` ```name``` ````): each run is
    // one delimiter, from its first back-quote to its last; runs pair in order.
    let mut opening: Option<(usize, usize)> = None;
    let mut from = 0;
    while let Some(found) = memchr::memchr(b'`', &bytes[from..]) {
        let close_from = from + found;
        let close_to = close_from
            + bytes[close_from..]
                .iter()
                .take_while(|&&b| b == b'`')
                .count()
            - 1;
        from = close_to + 1;
        let Some((open_from, open_to)) = opening.take() else {
            opening = Some((close_from, close_to));
            continue;
        };
        let span = &bytes[open_to + 1..close_from];
        if span.len() < 2 {
            continue;
        }
        let (before, after) = (&bytes[..open_from], &bytes[close_to + 1..]);
        // A value that is one span is a substitution whole (`` `bla` ``, an attribute's
        // `probe="`bla`"`): no prose around it.
        if before.trim_ascii().is_empty() && after.trim_ascii().is_empty() {
            return hit;
        }
        if !markdown_name(span) || joined_like_sql(before, after) || sql_word_beside(before, after)
        {
            return hit;
        }
    }
    None
}

/// Whether a code span's text is a name as Markdown quotes one, not a command.
pub(super) fn markdown_name(span: &[u8]) -> bool {
    let url = memchr::memmem::find(span, b"://").is_some();
    let first = span[usize::from(span[0] == b'.')];
    (first.is_ascii_alphanumeric() || first == b'_' || !first.is_ascii())
        && span.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || !b.is_ascii()
                || matches!(b, b'_' | b'-' | b'.' | b'[' | b']')
                || (url && matches!(b, b':' | b'/' | b'#' | b'?' | b'=' | b'&' | b'%'))
        })
        && !command_word(span)
}

/// Whether `word` (lower case) names a program `rce-100` or `rce-105` knows, or a piece of
/// the paths an injected command reads (`etc`, `passwd`): what [`split_word`]'s pieces must
/// join back into. A version after a name (`python3`) is read as the name.
pub(super) fn command_word(word: &[u8]) -> bool {
    static WORDS: LazyLock<std::collections::HashSet<&'static [u8]>> = LazyLock::new(|| {
        concat!(
            shell_words!(),
            "|",
            tool_words!(),
            "|",
            abbreviation_tool_words!(),
            "|etc|passwd|shadow|group|hosts|bin|sbin|tmp|usr|dev|proc|self|environ|var|log|",
            "home|root|time|which|more|less|tac|rev|strings|grep|egrep|cp|mv|mkdir|export|",
            "set|eval|exec|source|printf|alias"
        )
        .split('|')
        .map(|entry| {
            // A pattern's entry up to its first piece of regex syntax (`python[0-9.]*`).
            let name = entry
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(entry, |end| &entry[..end]);
            name.as_bytes()
        })
        .filter(|name| name.len() >= 2)
        .collect()
    });
    let bare = word.trim_ascii_end();
    let unversioned = &bare[..bare.len()
        - bare
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .count()];
    WORDS.contains(bare) || WORDS.contains(unversioned)
}

/// An IPv4 address, then a shell separator and a command (`rce-260`: `127.0.0.1; ls`,
/// `8.8.8.8|id`, `10.0.0.1 && whoami`): the injection into a field a backend hands to
/// `ping` or `nslookup`. The command words' own rules wait for what a shell reads after a
/// word that prose also writes (`; ls` at a note's end is prose's); after an address there
/// is no prose. Read from the value's start: a few bytes for any other value.
pub(super) fn address_then_command(folded: &str) -> Option<Hit> {
    let text = folded.trim_start().as_bytes();
    let address = text
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .count();
    // Four groups of one to three digits (`127.000.000.001` as a resolver reads it), counted
    // without collecting them: many values start with a number.
    let mut octets = 0;
    let dotted_quad = text[..address].split(|b| *b == b'.').all(|octet| {
        octets += 1;
        (1..=3).contains(&octet.len())
    });
    if !dotted_quad || octets != 4 {
        return None;
    }
    let rest = text[address..].trim_ascii_start();
    const SEPARATORS: [&[u8]; 6] = [b"&&", b"||", b";", b"|", b"&", b"\n"];
    let separator = SEPARATORS.iter().find(|s| rest.starts_with(s))?;
    let command = rest[separator.len()..].trim_ascii_start();
    command
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'/' | b'$' | b'`'))
        .then_some(Hit {
            rule: "rce-260",
            class: Class::Rce,
        })
}
