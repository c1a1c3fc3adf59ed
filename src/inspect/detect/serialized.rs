//! Serialized objects (`java-*`, `nodejs-*`): Java gadget classes and Node.js functions in
//! base64 at any of its three alignments, Java's serialization stream, and decoded files.

use super::*;

/// The rules that can fire on a plain value (an identifier's letters, digits, `-` and `_`;
/// [`value`]'s other rules need more): a base64 run hiding a gadget or a function.
pub fn plain_value(raw: &[u8]) -> Option<Hit> {
    // Most plain values (ids, codes, dates, capitalised words) have too few capitals and
    // digits to hold a pattern: `base64_words` counts them first.
    base64_words(raw).or_else(|| java_stream(raw))
}

/// A value that starts as Java serialization's stream in base64 (`AC ED 00 05`: `rO0AB`),
/// as a serialized object sent whole does: `java-110`, which the value rules find in text,
/// on the values they do not read (identifiers, a FHIR `data` field's base64).
pub(super) fn java_stream(raw: &[u8]) -> Option<Hit> {
    raw.starts_with(b"rO0AB").then_some(Hit {
        rule: "java-110",
        class: Class::Java,
    })
}

/// Words hidden in base64 (a serialized payload in a parameter, a Node.js function in a
/// cookie): each word's base64 form at the three byte alignments a surrounding text can give
/// it, matched case-sensitively as base64 is. Values are not base64-decoded (docs/inspect.md);
/// this runs on plain values too, since a base64 run is letters and digits.
pub(super) fn base64_words(bytes: &[u8]) -> Option<Hit> {
    let (words, shortest) = base64_word_automaton()?;
    // Most values (text with spaces, Japanese, identifiers, capitalised words) have no run
    // of base64 characters as long as a pattern with as many capitals and digits after its
    // first character as every pattern has (base64 of lower-case text is full of them), and
    // skip the automaton. The whole value's count of capitals and digits comes first: it is
    // vectorised, and rules out runs of lower-case letters and most text at once.
    if !at_least(bytes, BASE64_MARKED, upper_or_digit) || !has_marked_run(bytes, *shortest) {
        return None;
    }
    words
        .find(bytes)
        .map(|m| compiled().base64_words[m.pattern().as_usize()].1)
}

/// The automaton over [`Compiled::base64_words`], and the fewest base64 characters in a row
/// any of them needs. aho-corasick's full DFA: an attachment's base64 runs to megabytes, and
/// its default (contiguous NFA) cost 40 instructions a byte on it, the DFA 16.
/// (regex-automata's dense DFA ran at 4, but took 150 ms and 13 MB to build, docs/inspect.md.)
pub(super) fn base64_word_automaton() -> Option<&'static (aho_corasick::AhoCorasick, usize)> {
    static WORDS: std::sync::LazyLock<Option<(aho_corasick::AhoCorasick, usize)>> =
        std::sync::LazyLock::new(|| {
            let words = &compiled().base64_words;
            let shortest = words.iter().map(|(word, _)| word.len()).min().unwrap_or(1);
            let automaton = aho_corasick::AhoCorasick::builder()
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(words.iter().map(|(word, _)| word))
                .ok()?;
            Some((automaton, shortest))
        });
    WORDS.as_ref()
}

pub(super) fn upper_or_digit(b: u8) -> bool {
    b.wrapping_sub(b'A') < 26 || b.wrapping_sub(b'0') < 10
}

/// Whether `bytes` hold a run of at least `len` base64 characters with [`BASE64_MARKED`]
/// capitals and digits after its first.
pub(super) fn has_marked_run(bytes: &[u8], len: usize) -> bool {
    let (mut run, mut marked) = (0, 0);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' {
            if run > 0 && upper_or_digit(b) {
                marked += 1;
            }
            run += 1;
            if run >= len && marked >= BASE64_MARKED {
                return true;
            }
        } else {
            (run, marked) = (0, 0);
        }
    }
    false
}

/// The fewest capitals and digits after its first character that every pattern of
/// [`base64_patterns`] has (a unit test checks).
pub(super) const BASE64_MARKED: usize = 3;

/// The base64 patterns [`base64_words`] looks for, and the hit each stands for.
pub(super) const JAVA_GADGET: Hit = Hit {
    rule: "java-130",
    class: Class::Java,
};
pub(super) const NODE_FUNCTION: Hit = Hit {
    rule: "nodejs-110",
    class: Class::Nodejs,
};

/// What a serialized Java object or a Node.js function always carries, matched in base64
/// by `java-130` and `nodejs-110`: each word as written and capitalised.
pub(super) const SERIALIZED_WORDS: &[(&[u8], Hit)] = &[
    (b"runtime", JAVA_GADGET),
    (b"processbuilder", JAVA_GADGET),
    (b"clonetransformer", JAVA_GADGET),
    (b"forclosure", JAVA_GADGET),
    (b"instantiatefactory", JAVA_GADGET),
    (b"instantiatetransformer", JAVA_GADGET),
    (b"invokertransformer", JAVA_GADGET),
    (b"prototypeclonefactory", JAVA_GADGET),
    (b"prototypeserializationfactory", JAVA_GADGET),
    (b"whileclosure", JAVA_GADGET),
    (b"getproperty", JAVA_GADGET),
    (b"filewriter", JAVA_GADGET),
    (b"xmldecoder", JAVA_GADGET),
    (b"_$$ND_FUNC$$_", NODE_FUNCTION),
    (b"child_process", NODE_FUNCTION),
    (b"require(", NODE_FUNCTION),
    (b"while(true)", NODE_FUNCTION),
];

/// Java serialization's stream header: a serialized object follows.
pub(super) const JAVA_STREAM_HEADER: [u8; 4] = [0xAC, 0xED, 0x00, 0x05];

/// Each of [`SERIALIZED_WORDS`] as written and with a capital first letter.
pub(super) fn serialized_word_forms() -> impl Iterator<Item = (Vec<u8>, Hit)> {
    SERIALIZED_WORDS.iter().flat_map(|&(word, hit)| {
        let mut capital = word.to_vec();
        capital[..1].make_ascii_uppercase();
        let forms = if capital == word {
            vec![word.to_vec()]
        } else {
            vec![word.to_vec(), capital]
        };
        forms.into_iter().map(move |form| (form, hit))
    })
}

pub(super) fn base64_patterns() -> (Vec<String>, Vec<Hit>) {
    // The stream header at the three alignments, as CRS 944210 spells it.
    let mut patterns: Vec<String> = ["rO0ABQ", "KztAAU", "Cs7QAF"].map(String::from).into();
    let mut hits = vec![JAVA_GADGET; patterns.len()];
    for (form, hit) in serialized_word_forms() {
        for shifted in base64_shifts(&form) {
            patterns.push(shifted);
            hits.push(hit);
        }
    }
    (patterns, hits)
}

/// The base64 rules asked of a file's decoded bytes (a FHIR `data` field the inspection
/// decoded to disarm it): `java-130` and `nodejs-110` for a word of `SERIALIZED_WORDS` or
/// the stream header anywhere, else `java-110` for bytes that start as a serialized Java
/// object. The same findings as [`plain_value`] on the base64, bar a base64 spelling that
/// sits across the encoding's four-character groups (no word there) and the header, found
/// here whatever byte follows it. The scan costs about what the base64 one does (16
/// instructions a byte, callgrind): the saving is the files it is not asked of (a PDF, JPEG or
/// PNG: `attachment::Collector::data`).
pub fn decoded_file(bytes: &[u8]) -> Option<Hit> {
    static WORDS: LazyLock<Option<(aho_corasick::AhoCorasick, Vec<Hit>)>> = LazyLock::new(|| {
        let (words, hits): (Vec<Vec<u8>>, Vec<Hit>) = serialized_word_forms()
            .chain([(JAVA_STREAM_HEADER.to_vec(), JAVA_GADGET)])
            .unzip();
        Some((aho_corasick::AhoCorasick::new(words).ok()?, hits))
    });
    let (words, hits) = WORDS.as_ref()?;
    words
        .find(bytes)
        .map(|m| hits[m.pattern().as_usize()])
        // `rO0AB`, as `java_stream` reads the base64: the header's first three bytes and a
        // version whose first six bits are 1.
        .or_else(|| {
            (bytes.starts_with(&JAVA_STREAM_HEADER[..3])
                && bytes.get(3).is_some_and(|b| b >> 2 == 1))
            .then_some(Hit {
                rule: "java-110",
                class: Class::Java,
            })
        })
}

/// The base64 characters that encode `word` alone, at each of the three byte offsets it can
/// start at in a longer text.
pub(super) fn base64_shifts(word: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    (0..3)
        .map(|offset| {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(word);
            let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes);
            // Characters whose six bits all come from the word.
            let first = (8 * offset).div_ceil(6);
            let last = (8 * (offset + word.len())) / 6;
            encoded[first..last.min(encoded.len())].to_owned()
        })
        .collect()
}
