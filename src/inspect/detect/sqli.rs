//! SQL injection (`sqli-*`): libinjection's tokenizer and fingerprints (`libinjectionrs`),
//! asked only of values that can break out of an SQL context, and the shapes it misses or
//! misreads in clinical prose (stacked statements, comment-split words, formulas, lists).

use super::*;

/// A word split by an SQL comment (`uni/**/on sel/**/ect`, `SEL/*x*/ECT`): filters that
/// drop comments before matching, and some SQL dialects' own pre-processors, join the
/// pieces back. A value with a comment between two letters is read again without its
/// comments (`src/*.rs` closes none; a note's `/* aside */` stands between spaces).
pub(super) fn comment_split(decoded: &str) -> Option<Hit> {
    let bytes = decoded.as_bytes();
    // Most values hold no `*`: one `memchr` says so.
    memchr::memchr(b'*', bytes)?;
    // The `/*` or `*/` at or after `from`.
    let find = |from: usize, first: u8, second: u8| {
        memchr::memchr_iter(first, &bytes[from..])
            .map(|at| at + from)
            .find(|&at| bytes.get(at + 1) == Some(&second))
    };
    let mut joined = Vec::new();
    let mut from = 0;
    let mut splits = false;
    while let Some(open) = find(from, b'/', b'*') {
        let Some(close) = find(open + 2, b'*', b'/') else {
            break;
        };
        splits |= open > 0
            && bytes[open - 1].is_ascii_alphabetic()
            && bytes.get(close + 2).is_some_and(u8::is_ascii_alphabetic);
        joined.extend_from_slice(&bytes[from..open]);
        from = close + 2;
    }
    if !splits {
        return None;
    }
    joined.extend_from_slice(&bytes[from..]);
    read_again(&joined)
}

/// Whether what is glued to a span joins it to SQL: a name qualified or listed
/// (`` `db`.`t` ``, `` `a`,`b` ``), an argument (`` max(`x` ``), compared or ended
/// (`` `x`=1 ``), glued to a word (`` user'collate`nocase` ``, `` `or`1 ``). Prose puts a space after its `,` and a sentence's `.` or a
/// parenthesis around a span with a space before it: "(see `code`), `a`, `b`."
pub(super) fn joined_like_sql(before: &[u8], after: &[u8]) -> bool {
    let glued_after = matches!(after, [b'`' | b'=', ..] | [b'.' | b',', b'`', ..])
        || after.first().is_some_and(u8::is_ascii_alphanumeric);
    let glued_before = match before {
        [.., b'`' | b'=' | b'\\'] => true,
        [.., letter] if letter.is_ascii_alphanumeric() => true,
        [.., b'`', b'.' | b','] => true,
        [.., word, b'('] => word.is_ascii_alphanumeric() || *word == b'_',
        _ => false,
    };
    glued_after || glued_before
}

/// Words that open an SQL clause or are a value (`order by`, `true`): beside a back-quoted
/// name (`` select `x` ``, `` `users` where ``) or outside prose's quoted words they make the
/// text SQL.
pub(super) const SQL_CLAUSE_WORDS: [&[u8]; 24] = [
    b"union",
    b"select",
    b"from",
    b"where",
    b"having",
    b"order",
    b"group",
    b"by",
    b"limit",
    b"into",
    b"procedure",
    b"join",
    b"insert",
    b"update",
    b"delete",
    b"drop",
    b"exec",
    b"sleep",
    b"benchmark",
    b"table",
    b"values",
    b"true",
    b"false",
    b"null",
];

/// Whether `word` is one of [`SQL_CLAUSE_WORDS`], in any case.
pub(super) fn sql_clause_word(word: &[u8]) -> bool {
    SQL_CLAUSE_WORDS
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// Whether the word before or after a span is an SQL clause word (`select `x``,
/// `` `users` where ``).
pub(super) fn sql_word_beside(before: &[u8], after: &[u8]) -> bool {
    let last = before
        .trim_ascii_end()
        .rsplit(|b| !b.is_ascii_alphanumeric() && *b != b'_')
        .next()
        .unwrap_or_default();
    let next = after
        .trim_ascii_start()
        .split(|b| !b.is_ascii_alphanumeric() && *b != b'_')
        .next()
        .unwrap_or_default();
    sql_clause_word(last) || sql_clause_word(next)
}

/// The bytes one of which [`libinjection_sqli`]'s gate needs: [`value_with`] does not ask it
/// about a short value holding none of them.
pub(super) const SQL_BREAKOUT_BYTES: &[u8] = b"'\"`;=#-/()";

/// libinjection's SQLi fingerprint, on values where SQL can break out of its context: a
/// quote, a statement or expression character, or a comment. Words alone (`1 union select`)
/// are `sqli-110`'s; skipping the rest keeps natural-language text (a note, a display name)
/// off libinjection's word lookup, which is most of inspection's time otherwise.
///
/// Its gate opens only on a value holding one of [`SQL_BREAKOUT_BYTES`] (a test holds it so).
pub(super) fn libinjection_sqli(decoded: &str) -> bool {
    let bytes = decoded.as_bytes();
    // An `=` that ends the value compares nothing: base64's padding (a FHIR attachment's
    // hundreds of kilobytes, `…LjE=`) is not an expression.
    let unpadded = &bytes[..bytes
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(0, |at| at + 1)];
    // memchr's vector search: a two-byte `any_byte` compiles to a compare per byte here
    // (4% of a 16 KiB POST's CPU before).
    let breaks_out = memchr::memchr2(b'`', b'=', unpadded).is_some()
        || (memchr::memchr(b'"', bytes).is_some() && !quoted_words(bytes))
        || memchr::memchr_iter(b';', bytes).any(|at| !list_semicolon(bytes, at))
        || (memchr::memchr(b'\'', bytes).is_some() && !lone_apostrophe(bytes))
        || memchr::memchr_iter(b'#', bytes).any(|at| !reference_fragment(bytes, at))
        || memchr::memchr2_iter(b'-', b'/', bytes).any(|at| {
            matches!(
                (bytes[at], bytes.get(at + 1)),
                (b'-', Some(b'-')) | (b'/', Some(b'*'))
            ) && !wildcard_name(bytes, at)
        })
        || (memchr::memchr2(b'(', b')', bytes).is_some()
            && !prose_parentheses(bytes)
            && !prose_parentheticals(bytes));
    if !breaks_out || arithmetic_formula(bytes) {
        return false;
    }
    // A percentage (`HbA1c 5.6% (normal)`, `pain 50% (severe)`, `6.2%（基準値内）`) reads to
    // libinjection as the modulo operator before a parenthesis, which is its fingerprint of
    // an injected expression. A `%` after a digit and before a space, the end, punctuation
    // or a parenthesis holding text that is not ASCII is a unit, not an operator (SQL's
    // `a % b` has a space before it, and `1%(select…)` ASCII after it): read as such, it is
    // left out of what libinjection sees.
    let percent = |at: usize| {
        at > 0
            && bytes[at - 1].is_ascii_digit()
            && match bytes.get(at + 1) {
                None => true,
                Some(b) if b.is_ascii_whitespace() || b",.;:)/".contains(b) => true,
                Some(b'(') => bytes.get(at + 2).is_some_and(|b| !b.is_ascii()),
                Some(_) => false,
            }
    };
    if memchr::memchr_iter(b'%', bytes).any(percent) {
        let without: Vec<u8> = bytes
            .iter()
            .enumerate()
            .filter(|&(at, &b)| b != b'%' || !percent(at))
            .map(|(_, &b)| b)
            .collect();
        return libinjectionrs::detect_sqli(&without).is_injection();
    }
    libinjectionrs::detect_sqli(bytes).is_injection()
}

/// Words SQL reads alone, without an operator or a parenthesis: what neither a formula
/// ([`arithmetic_formula`]) nor a quoted phrase ([`quoted_words`]) may hold.
pub(super) const SQL_KEYWORDS: [&[u8]; 50] = [
    b"union",
    b"select",
    b"from",
    b"where",
    b"and",
    b"or",
    b"xor",
    b"not",
    b"like",
    b"rlike",
    b"regexp",
    b"is",
    b"in",
    b"between",
    b"having",
    b"order",
    b"group",
    b"by",
    b"limit",
    b"into",
    b"outfile",
    b"dumpfile",
    b"div",
    b"mod",
    b"null",
    b"true",
    b"false",
    b"collate",
    b"escape",
    b"sounds",
    b"procedure",
    b"case",
    b"when",
    b"then",
    b"else",
    b"end",
    b"exists",
    b"all",
    b"any",
    b"some",
    b"distinct",
    b"as",
    b"join",
    b"on",
    b"using",
    b"insert",
    b"update",
    b"delete",
    b"drop",
    b"exec",
];

/// Whether `text` is a formula as clinical notes and calculators write one (`eGFR = 141 *
/// min(Scr/0.9, 1)^-0.411`, `QTc = QT / sqrt(RR)`, `CrCl = (140 - age) * weight / (72 *
/// Scr)`): a name, one `=`, then numbers, names, `+ - * / ^`, commas, brackets and the
/// arithmetic functions. libinjection reads `name = … f(` as an injected expression; a value
/// with no quote, comment, `;`, second comparison, SQL keyword or other function adds no
/// condition, subquery or call to a query it lands in.
pub(super) fn arithmetic_formula(text: &[u8]) -> bool {
    const FUNCTIONS: [&[u8]; 10] = [
        b"sqrt", b"min", b"max", b"log", b"log10", b"ln", b"exp", b"abs", b"pow", b"round",
    ];
    let Some(equals) = memchr::memchr(b'=', text) else {
        return false;
    };
    let (name, expression) = (&text[..equals], &text[equals + 1..]);
    let keyword = |word: &[u8]| SQL_KEYWORDS.iter().any(|w| word.eq_ignore_ascii_case(w));
    if !name
        .trim_ascii()
        .first()
        .is_some_and(u8::is_ascii_alphabetic)
        || !name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b' ')
        || name.split(|&b| b == b' ').any(keyword)
    {
        return false;
    }
    let mut depth = 0usize;
    let mut at = 0;
    let mut previous = b'=';
    while at < expression.len() {
        let b = expression[at];
        if b.is_ascii_alphabetic() || b == b'_' {
            let end = expression[at..]
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                .map_or(expression.len(), |len| at + len);
            let word = &expression[at..end];
            let called = expression[end..].trim_ascii_start().first() == Some(&b'(');
            if keyword(word) || (called && !FUNCTIONS.iter().any(|f| word.eq_ignore_ascii_case(f)))
            {
                return false;
            }
            at = end;
            previous = b'a';
            continue;
        }
        match b {
            // `--` and `/*` open SQL comments.
            b'-' if previous == b'-' => return false,
            b'*' if previous == b'/' => return false,
            b'0'..=b'9' | b'.' | b' ' | b',' | b'+' | b'-' | b'*' | b'/' | b'^' | b'[' | b']' => {}
            b'(' => depth += 1,
            b')' => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => return false,
        }
        previous = b;
        at += 1;
    }
    depth == 0
}

/// A condition made always true by comparing a thing with itself after `or` or `and`
/// (`sqli-120`): `hi or a=a`, `) or (x = x`, `; or '1'='1'`, `") or (""a""=""a"` — the
/// tautologies libinjection passes when their operands are bare words or doubled quotes.
/// Quotes around either side are not part of what is compared. Prose puts no `=` between
/// one word and itself.
pub(super) fn same_sides(folded: &str) -> Option<Hit> {
    let text = folded.as_bytes();
    let operand = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'\'' | b'"');
    fn unquoted(side: &[u8]) -> impl Iterator<Item = u8> + '_ {
        side.iter().copied().filter(|b| !matches!(b, b'\'' | b'"'))
    }
    memchr::memchr_iter(b'=', text).find_map(|at| {
        // `==` and `===` compare as `=` does: read from the first `=` of the run.
        if at > 0 && text[at - 1] == b'=' {
            return None;
        }
        let before = text[..at].trim_ascii_end();
        // Operands are short: a long run (base64, a token) compares no condition.
        let left_len = before
            .iter()
            .rev()
            .take(65)
            .take_while(|b| operand(b))
            .count();
        if left_len > 64 {
            return None;
        }
        let (head, left) = before.split_at(before.len() - left_len);
        let after = text[at + 1..].trim_ascii_start();
        let after = after[after.iter().take_while(|&&b| b == b'=').count()..].trim_ascii_start();
        let right = &after[..after.iter().take_while(|b| operand(b)).count()];
        if unquoted(left).next().is_none() || !unquoted(left).eq(unquoted(right)) {
            return None;
        }
        let head = head.trim_ascii_end();
        let head = head.strip_suffix(b"(").unwrap_or(head).trim_ascii_end();
        let joined = [&b"or"[..], b"and", b"xor", b"||", b"&&"]
            .iter()
            .any(|joint| {
                head.strip_suffix(*joint).is_some_and(|rest| {
                    joint[0] == b'|'
                        || joint[0] == b'&'
                        || rest.last().is_none_or(|b| !b.is_ascii_alphanumeric())
                })
            });
        joined.then_some(Hit {
            rule: "sqli-120",
            class: Class::Sqli,
        })
    })
}

/// Whether the `/*` at `at` is a wildcard in a name, not a comment: a word before it and
/// `.` and a letter after (SMART on FHIR's scopes `patient/*.read`, `system/*.rs`; a glob
/// `src/*.rs`). A comment that hides SQL opens anywhere else (`admin'/*`, `1/**/or`,
/// `/*!50000select*/`).
pub(super) fn wildcard_name(bytes: &[u8], at: usize) -> bool {
    at > 0
        && bytes[at - 1].is_ascii_alphanumeric()
        && bytes.get(at + 2) == Some(&b'.')
        && bytes.get(at + 3).is_some_and(u8::is_ascii_alphabetic)
}

/// Two whole-value shapes libinjection lets through (`sqli-120`), both read from the
/// value's start, so the check costs a few bytes: a login name closed by a quote and then a
/// comment (`admin' #`, `admin"/*`: the password test after it is commented out), and a
/// number joined to a constant truth (`1 or true`, `-1 and false`: a numeric context's
/// condition made always or never true). Prose starts neither way (`Mary's #1`: the quote
/// is followed by a letter; `7" #2 needle`: a measure, no letter before the quote; `1 or 2
/// tablets`: no constant).
pub(super) fn sql_value_shape(folded: &str) -> Option<Hit> {
    const HIT: Hit = Hit {
        rule: "sqli-120",
        class: Class::Sqli,
    };
    let text = folded.trim_start().as_bytes();
    let name = text
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'))
        .count();
    // A letter in the name: `7" #2 circular needle` is seven inches. Without a name, an
    // apostrophe then `--` or `/*` (`' -- &password=`); `"#1 clinic"` is prose.
    let named = text[..name].iter().any(u8::is_ascii_alphabetic);
    if let Some(quote @ (b'\'' | b'"')) = text.get(name) {
        let rest = text[name + 1..].trim_ascii_start();
        let comment = rest.starts_with(b"--") || rest.starts_with(b"/*");
        if (named && (comment || rest.starts_with(b"#")))
            || (name == 0 && *quote == b'\'' && comment)
        {
            return Some(HIT);
        }
    }
    let rest = text.strip_prefix(b"-").unwrap_or(text);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut words = std::str::from_utf8(&rest[digits..])
        .ok()?
        .split_ascii_whitespace();
    let joint = words.next()?;
    let constant = words.next()?;
    // The constant ends the condition: the value ends, or a comment or `;` ends the
    // statement (`1 and false alarm` is a note).
    let (constant, after) = constant.split_at(
        constant
            .find(['-', '#', ';', '/'])
            .unwrap_or(constant.len()),
    );
    let ended = match words.next() {
        None => after.is_empty() || ["--", "#", ";", "/*"].iter().any(|c| after.starts_with(c)),
        Some(next) => {
            after.is_empty() && ["--", "#", ";", "/*"].iter().any(|c| next.starts_with(c))
        }
    };
    let always = matches!(joint, "or" | "xor" | "||") && constant == "true";
    let never = matches!(joint, "and" | "&&") && constant == "false";
    (rest[digits..].first().is_some_and(u8::is_ascii_whitespace) && ended && (always || never))
        .then_some(HIT)
}

/// A second SQL statement after a `;` (`sqli-130`), in the shapes only SQL writes: the
/// statement's keyword and what must follow it (`select *`, `select 1`, `select … from`,
/// `insert into`, `update x set`, `delete from`, `drop table`, `exec xp_…`, `declare @`,
/// `copy … program`, `attach database`, `set @`, `load data`, a `xp_`/`sp_` procedure).
/// libinjection lets `1;select 1` and `1; copy (select 1) to program 'id'` through; a note's
/// `; select appropriate dose` or `; update family` has none of those shapes.
pub(super) fn stacked_statement(folded: &str) -> Option<Hit> {
    const HIT: Hit = Hit {
        rule: "sqli-130",
        class: Class::Sqli,
    };
    let text = folded.as_bytes();
    let token = |from: &[u8]| -> (usize, usize) {
        // (start, end) of the next word, after spaces, parentheses and `/* … */` comments.
        let mut at = 0;
        loop {
            while at < from.len() && (from[at].is_ascii_whitespace() || from[at] == b'(') {
                at += 1;
            }
            if from[at..].starts_with(b"/*") {
                match memchr::memmem::find(&from[at + 2..], b"*/") {
                    Some(end) => at += end + 4,
                    None => return (from.len(), from.len()),
                }
            } else {
                break;
            }
        }
        (at, at + leading_word(&from[at..]).len())
    };
    for semicolon in memchr::memchr_iter(b';', text) {
        let rest = &text[semicolon + 1..];
        let (start, end) = token(rest);
        let keyword = &rest[start..end];
        let after = &rest[end..];
        let (next_start, next_end) = token(after);
        let next = &after[next_start..next_end];
        let next_first = after[next_start..].first().copied();
        let then = |word: &[u8]| next == word;
        let words_later = |word: &[u8]| {
            after
                .split(|b| !b.is_ascii_alphanumeric())
                .any(|w| w == word)
        };
        let stacked = match keyword {
            b"select" => {
                matches!(next_first, Some(b'*' | b'\'' | b'"' | b'@' | b'0'..=b'9'))
                    || after[next_end..].trim_ascii_start().starts_with(b"(")
                    || words_later(b"from")
            }
            b"insert" | b"replace" => then(b"into"),
            b"update" => {
                let table_after = &after[next_end..];
                let (set_start, set_end) = token(table_after);
                !next.is_empty() && &table_after[set_start..set_end] == b"set"
            }
            b"delete" => then(b"from"),
            // `TABLE` is optional in PostgreSQL's and MySQL's `TRUNCATE`: a name alone, then
            // the statement's end (`; truncate users;--`; "; truncate the fried food" goes on).
            b"truncate" if !next.is_empty() && statement_ends(&after[next_end..]) => true,
            b"drop" | b"create" | b"alter" | b"truncate" | b"rename" => matches!(
                next,
                b"table"
                    | b"database"
                    | b"user"
                    | b"view"
                    | b"function"
                    | b"procedure"
                    | b"trigger"
                    | b"index"
                    | b"schema"
                    | b"login"
                    | b"role"
                    | b"system"
            ),
            b"exec" | b"execute" => {
                next.starts_with(b"xp_")
                    || next.starts_with(b"sp_")
                    || next == b"master"
                    || next == b"immediate"
                    || matches!(next_first, Some(b'\'' | b'"' | b'@'))
            }
            b"declare" | b"set" => next_first == Some(b'@'),
            b"copy" => words_later(b"program") || next_first == Some(b'('),
            b"attach" => then(b"database"),
            b"load" => then(b"data"),
            b"shutdown" => next.is_empty() || then(b"with"),
            _ => keyword.starts_with(b"xp_") || keyword.starts_with(b"sp_"),
        };
        if stacked {
            return Some(HIT);
        }
    }
    None
}

/// Whether `rest` ends an SQL statement: nothing more, `;`, or a comment.
pub(super) fn statement_ends(rest: &[u8]) -> bool {
    let rest = rest.trim_ascii_start();
    rest.is_empty()
        || rest.starts_with(b";")
        || rest.starts_with(b"--")
        || rest.starts_with(b"#")
        || rest.starts_with(b"/*")
}

/// Whether the `;` at `at` separates items of a list, as notes write them (`Count (WBC)
/// high; CRP elevated and fever`, `BP 130/80; HR 72`): a space, then a word that starts no
/// SQL statement. A stacked query needs a statement after its `;` (`; select`, `; drop`,
/// `; exec`, `; copy … from program`, `; attach database`), and a `;` glued to what follows,
/// or before a comment, a quote or the end, still opens libinjection's gate. Words a note
/// also writes (`call`, `set`, `show`, `use`, `do`, `if`) stay in the list: such a note
/// still goes to libinjection, as every note with a `;` did before.
pub(super) fn list_semicolon(text: &[u8], at: usize) -> bool {
    const STATEMENTS: [&[u8]; 58] = [
        b"select",
        b"insert",
        b"update",
        b"delete",
        b"drop",
        b"create",
        b"alter",
        b"exec",
        b"execute",
        b"declare",
        b"set",
        b"shutdown",
        b"waitfor",
        b"truncate",
        b"grant",
        b"revoke",
        b"call",
        b"load",
        b"handler",
        b"use",
        b"show",
        b"begin",
        b"commit",
        b"rollback",
        b"union",
        b"with",
        b"if",
        b"while",
        b"replace",
        b"merge",
        b"copy",
        b"do",
        b"prepare",
        b"kill",
        b"table",
        b"values",
        b"rename",
        b"lock",
        b"backup",
        b"restore",
        b"dbcc",
        b"bulk",
        b"print",
        b"raiserror",
        b"analyze",
        b"vacuum",
        b"attach",
        b"pragma",
        b"listen",
        b"notify",
        b"reindex",
        b"comment",
        b"open",
        b"fetch",
        b"close",
        b"sleep",
        b"benchmark",
        b"end",
    ];
    let after = &text[at + 1..];
    let spaces = after.iter().take_while(|b| **b == b' ').count();
    let word = leading_word(&after[spaces..]);
    // SQL Server runs a stored procedure named first in a batch without `exec`.
    let procedure = word.len() > 3
        && (word[..3].eq_ignore_ascii_case(b"xp_") || word[..3].eq_ignore_ascii_case(b"sp_"));
    spaces > 0
        && word.first().is_some_and(u8::is_ascii_alphabetic)
        && !procedure
        && !STATEMENTS.iter().any(|w| word.eq_ignore_ascii_case(w))
}

/// Whether every double quote of `text` pairs into a quoted word or phrase as prose writes
/// one (`Rate as "none", "mild", "moderate" or "severe"`, `Label says "take with food"`):
/// opened after the start, a space or `(` on a letter, closed after a letter before the
/// end, a space or punctuation, letters, spaces and hyphens between, none of them a word
/// SQL reads alone (`union`, `select`, `or`, `not`, `by`, …). Read into a backend's
/// double-quoted literal, each pair closes it and opens it again around bare words, which
/// without operators, parentheses or keywords add no condition, call or clause; in a
/// numeric context the text outside the quotes is the bare part, so it holds no digit and no
/// clause or value word. libinjection is not asked (it read such a list as strings joined by
/// `or`). `" or "1"="1`, `x" or "a"="a`, `"a" or 1` and `"x" union select "y"` still are.
pub(super) fn quoted_words(text: &[u8]) -> bool {
    // Outside the quotes, in a numeric context, the text is bare SQL: no digit (`"a" or
    // 1`), and no word that opens a clause or is a value (`order by`, `true`).
    let mut outside_quotes = text.split(|&b| b == b'"').step_by(2);
    if !outside_quotes.all(|part| {
        !part.iter().any(u8::is_ascii_digit)
            && !part
                .split(|b| !b.is_ascii_alphabetic())
                .any(sql_clause_word)
    }) {
        return false;
    }
    let mut quotes = memchr::memchr_iter(b'"', text);
    let mut pairs = 0;
    while let Some(open) = quotes.next() {
        let Some(close) = quotes.next() else {
            return false;
        };
        let inside = &text[open + 1..close];
        let opens = open == 0 || matches!(text[open - 1], b' ' | b'(');
        let closes = matches!(
            text.get(close + 1),
            None | Some(b' ' | b',' | b'.' | b')' | b';' | b':' | b'?' | b'!')
        );
        let phrase = inside.len() <= 40
            && inside.first().is_some_and(u8::is_ascii_alphabetic)
            && inside.last().is_some_and(u8::is_ascii_alphabetic)
            && inside
                .iter()
                .all(|&b| b.is_ascii_alphabetic() || b == b' ' || b == b'-')
            && !inside
                .split(|&b| b == b' ' || b == b'-')
                .any(|word| SQL_KEYWORDS.iter().any(|w| word.eq_ignore_ascii_case(w)));
        if !(opens && closes && phrase) {
            return false;
        }
        pairs += 1;
    }
    pairs > 0
}

/// Whether the value's only quote is one apostrophe inside a word (`Murphy's`, `can't`,
/// `O'Brien`): English's, not SQL's. One quote cannot close a backend's string literal and
/// leave valid SQL behind: the backend's own closing quote is then left open, unless a
/// comment (`--`, `#`, `/*`) or `;` swallows it, and each of those opens the gate itself.
/// So such a value goes to libinjection only if something else sends it (`sign (x) Murphy's
/// and …` read as a call in a condition was refused before).
pub(super) fn lone_apostrophe(text: &[u8]) -> bool {
    let mut quotes = memchr::memchr_iter(b'\'', text);
    let (Some(at), None) = (quotes.next(), quotes.next()) else {
        return false;
    };
    // The word after it is English's too: `x'or 1 > 1`, `aa'or current_date*0` are the
    // probes CRS and libinjection's corpus find this way.
    const SQL_WORDS: [&[u8]; 12] = [
        b"or", b"and", b"xor", b"div", b"like", b"rlike", b"regexp", b"is", b"in", b"not",
        b"union", b"having",
    ];
    let after = &text[at + 1..];
    let word = &after[..after.iter().take_while(|b| b.is_ascii_alphabetic()).count()];
    at > 0
        && text[at - 1].is_ascii_alphabetic()
        && !word.is_empty()
        && !SQL_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w))
}

/// Whether the `#` at `at` ends `text` with a FHIR local reference (`#reporter`, the whole
/// value) or a URL's fragment (`http://loinc.org/rdf#54124-3`: a URL before it, no space):
/// not MySQL's comment. A comment can only end an injection that is already there, and
/// before such a `#` there is either nothing or a `:/`, which no SQL dialect parses, so
/// libinjection is not asked about it (it was, at about 30,000 instructions a reference).
/// Any other `#` (`Local #35`, `1 or true#`) still is.
pub(super) fn reference_fragment(text: &[u8], at: usize) -> bool {
    let (before, after) = (&text[..at], &text[at + 1..]);
    let fragment = !after.is_empty()
        && after
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    fragment
        && (before.is_empty()
            || (memchr::memchr_iter(b':', before).any(|c| before[c + 1..].starts_with(b"//"))
                && !before.iter().any(u8::is_ascii_whitespace)))
}

/// The SQL word `text` starts with (letters, digits, `_`; empty when it starts otherwise).
pub(super) fn leading_word(text: &[u8]) -> &[u8] {
    let len = text
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    &text[..len]
}

/// Words that, right after a `(`, open a subquery or an expression: not an aside.
pub(super) const OPENS_SQL: [&[u8]; 11] = [
    b"select", b"case", b"not", b"exists", b"true", b"false", b"null", b"values", b"with",
    b"union", b"if",
];

/// Words that join SQL conditions.
pub(super) const JOINS_CONDITIONS: [&[u8]; 5] = [b"or", b"and", b"xor", b"div", b"like"];

/// Whether every parenthesis of `text` is one prose writes (`Blood pressure (sitting)`,
/// `Body mass index (BMI) [Ratio]`, `検査（基準値内）` once folded), in a value with no word
/// that joins SQL conditions. libinjection spends tens of thousands of instructions on such
/// a value (it looks up every pair of words), and clinical text is full of them. A `(` is
/// prose after a space, the start, a character that is not ASCII or a hyphen glued to a
/// word (a chemical name's `4-(dimethylamino)`), and before a letter
/// or such a character, unless the word it opens starts a subquery or an expression
/// (`(select`, `(case`, `(true`); a `)` is prose after a letter, a `.` or such a
/// character. A call (`sleep(5)`), a number in parentheses (`(1)`, `1234.5)`), a
/// subquery, or `or`, `and`, `xor`, `div`, `like`, `||`, `&&` anywhere, and the value is
/// libinjection's.
pub(super) fn prose_parentheses(text: &[u8]) -> bool {
    let prose_open = |at: usize| {
        // A chemical name's hyphen glued to a locant or a prefix opens one too:
        // `4-(dimethylamino)benzoic acid`, `beta-(…)`.
        let hyphenated = at >= 2 && text[at - 1] == b'-' && text[at - 2].is_ascii_alphanumeric();
        let before_ok = at == 0 || text[at - 1] == b' ' || !text[at - 1].is_ascii() || hyphenated;
        let after = text.get(at + 1).copied();
        before_ok
            && match after {
                Some(b) if b.is_ascii_alphabetic() => {
                    let word = leading_word(&text[at + 1..]);
                    !OPENS_SQL.iter().any(|w| word.eq_ignore_ascii_case(w))
                }
                Some(b) => !b.is_ascii(),
                None => false,
            }
    };
    let prose_close = |at: usize| {
        at > 0
            && (text[at - 1].is_ascii_alphabetic()
                || text[at - 1] == b'.'
                || !text[at - 1].is_ascii())
    };
    let parentheses_are_prose = memchr::memchr2_iter(b'(', b')', text).all(|at| match text[at] {
        b'(' => prose_open(at),
        _ => prose_close(at),
    });
    parentheses_are_prose
        && !memchr::memchr2_iter(b'|', b'&', text).any(|at| text.get(at + 1) == Some(&text[at]))
        && !text
            .split(|b| !b.is_ascii_alphanumeric() && *b != b'_')
            .any(|word| {
                JOINS_CONDITIONS
                    .iter()
                    .any(|w| word.eq_ignore_ascii_case(w))
            })
}

/// Whether `text` is prose whose parentheses are asides (`Left (arm) 130/80 and right (arm)
/// 128/78`, `One quarter (24%) of people … and`): [`prose_parentheses`] with `and`/`or`
/// allowed. Clinical notes write a word SQL also names a function (`Left`, `Count`,
/// `Upper`, `Lower`, `Format`, `Sign`) before an aside, and with an `and` anywhere
/// libinjection reads the pair as a call in a condition. Here every parenthesis belongs to
/// one closed, unnested aside that opens after a space, the start or a character that is
/// not ASCII, on a letter, digit or such a character (not a word that starts a subquery or
/// an expression), and closes after one of those, a `.` or a `%`. Such asides break out of
/// nothing: a parenthesis a backend opened is closed by none of them, and the value without
/// them holds no byte libinjection's gate opens on. What stays libinjection's: a value that
/// starts as a numeric context's injection (`1 and length (password) > 5`: a number, or
/// nothing, then `and`/`or`/`xor`/`div`/`like`), `||` or `&&`, and a clause keyword
/// (`id having (1 or true)`). Time delays with a space before the parenthesis are
/// `sqli-110`'s (`sleep (5)`).
pub(super) fn prose_parentheticals(text: &[u8]) -> bool {
    const CLAUSES: [&[u8]; 6] = [
        b"having",
        b"where",
        b"union",
        b"procedure",
        b"order",
        b"group",
    ];
    let aside_char = |b: u8| b.is_ascii_alphanumeric() || !b.is_ascii();
    let mut open = false;
    for at in memchr::memchr2_iter(b'(', b')', text) {
        let closes = text[at] == b')';
        if closes != open {
            return false; // a `)` opening nothing, or an aside inside an aside
        }
        open = !closes;
        let fits = if closes {
            at > 0 && (aside_char(text[at - 1]) || matches!(text[at - 1], b'.' | b'%'))
        } else {
            let before = at == 0 || text[at - 1] == b' ' || !text[at - 1].is_ascii();
            let word = leading_word(&text[at + 1..]);
            before
                && text.get(at + 1).is_some_and(|&b| aside_char(b))
                && !OPENS_SQL.iter().any(|w| word.eq_ignore_ascii_case(w))
        };
        if !fits {
            return false;
        }
    }
    if open || memchr::memchr2_iter(b'|', b'&', text).any(|at| text.get(at + 1) == Some(&text[at]))
    {
        return false;
    }
    // The first word after any numbers (`1`, `-1.5`): a condition's joint there continues
    // the backend's own expression.
    let starts_condition = text
        .split(|b| b.is_ascii() && !b.is_ascii_alphanumeric() && *b != b'_')
        .find(|word| !word.iter().all(u8::is_ascii_digit))
        .is_some_and(|word| {
            JOINS_CONDITIONS
                .iter()
                .any(|w| word.eq_ignore_ascii_case(w))
        });
    !starts_condition
        && !text
            .split(|b| !b.is_ascii_alphanumeric() && *b != b'_')
            .any(|word| CLAUSES.iter().any(|w| word.eq_ignore_ascii_case(w)))
}
