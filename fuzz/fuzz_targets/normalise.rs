//! The normaliser and the detectors on any bytes, in both `+` readings, and the JSON depth
//! counter: none may panic. For UTF-8 input, the `&str` entry and the NFKC fast paths must
//! give what the byte entry and NFKC of the whole give (for text without escapes; the
//! `&str` entry may refuse fewer escapes that decode to invalid UTF-8).
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
            // The `&str` entry (a JSON or XML string) is the byte entry's but for one
            // signal: escapes that decode to bytes that are not UTF-8 count there only as an
            // overlong form.
            let mut from_str = normalise_str(text, plus);
            assert!(!from_str.signals.invalid_utf8 || n.signals.invalid_utf8);
            from_str.signals.invalid_utf8 = n.signals.invalid_utf8;
            assert_eq!(from_str, n);
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
