//! The normaliser and the detectors on any bytes, in both `+` readings, and the JSON depth
//! counter: none may panic. For UTF-8 input, the `&str` entry and the NFKC fast paths must
//! give what the byte entry and NFKC of the whole give (for text without escapes; the
//! `&str` entry decodes no escape into invalid UTF-8 or a control character, and never
//! refuses more).
#![no_main]

use libfuzzer_sys::fuzz_target;
use phr_gateway::inspect::normalise::{normalise, normalise_str, Plus};
use unicode_normalization::UnicodeNormalization;

fuzz_target!(|data: &[u8]| {
    for plus in [Plus::Literal, Plus::Space] {
        let n = normalise(data, plus);
        let _ = phr_gateway::inspect::detect::value(&n);
        let _ = phr_gateway::inspect::detect::name(&n);
        if let Ok(text) = std::str::from_utf8(data) {
            // The `&str` entry (a JSON or XML string) is the byte entry's but where an
            // escape decodes to bytes that are not UTF-8 or to a control character: a
            // backend reads the string undecoded, so decoding stops before such a round
            // there (an overlong form still counts). It never refuses more.
            let from_str = normalise_str(text, plus);
            let (s, b) = (from_str.signals, n.signals);
            for (signal, of_bytes) in [
                (s.invalid_utf8, b.invalid_utf8),
                (s.control, b.control),
                (s.nul, b.nul),
                (s.letter_encoded_twice, b.letter_encoded_twice),
            ] {
                assert!(!signal || of_bytes, "{text:?}: {s:?} / {b:?}");
            }
            if !b.control && !b.invalid_utf8 {
                assert_eq!(from_str, n);
            }
            // Without escapes (percent, entities, `\u`/`\x`) and control characters,
            // normalising is NFKC of the whole.
            if plus == Plus::Literal
                && !text.contains(['%', '&', '\\'])
                && !text.chars().any(char::is_control)
            {
                assert_eq!(n.decoded, text.nfkc().collect::<String>());
            }
        }
    }
    let _ = phr_gateway::protocol::json_depth(data);
});
