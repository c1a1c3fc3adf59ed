//! A request body of each type the gateway parses — JSON (walked and neutralised), XML, forms,
//! multipart (split and rebuilt), PDF, JPEG and PNG (disarmed) — through `check_body` on a
//! route that neutralises fields and accepts every file type. The first byte picks the type.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use phr_gateway::inspect::{check_body, disarm::Accepted, Mode, RouteInspection};

const TYPES: &[&str] = &[
    "application/fhir+json",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "text/plain",
    "application/pdf",
    "image/jpeg",
    "image/png",
    "",
];

static ROUTE: LazyLock<RouteInspection> = LazyLock::new(|| RouteInspection {
    mode: Mode::Neutralise,
    exclude: Vec::new(),
    neutralise: vec!["note.text".into(), "comment".into(), "text.div".into()],
    files: Accepted(vec![
        "application/pdf".into(),
        "image/jpeg".into(),
        "image/png".into(),
    ]),
});

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    let content_type = TYPES[usize::from(pick) % TYPES.len()];
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        headers.insert(http::header::CONTENT_TYPE, value);
    }
    let checked = check_body(body, &headers, &ROUTE);
    // A refused body is never forwarded in any form.
    assert!(checked.refusal.is_none() || checked.rewritten.is_none());
});
