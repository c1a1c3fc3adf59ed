//! The normaliser and the detectors on any bytes, in both `+` readings, and the JSON depth
//! counter: none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phr_gateway::inspect::normalise::{normalise, Plus};

fuzz_target!(|data: &[u8]| {
    for plus in [Plus::Literal, Plus::Space] {
        let n = normalise(data, plus);
        let _ = phr_gateway::inspect::detect::value(&n);
        let _ = phr_gateway::inspect::detect::name(&n);
    }
    let _ = phr_gateway::protocol::json_depth(data);
});
