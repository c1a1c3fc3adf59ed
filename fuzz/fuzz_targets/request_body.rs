//! A request body of each type the gateway parses — JSON (walked and neutralised), XML, forms,
//! multipart (split and rebuilt), PDF, JPEG and PNG (disarmed) — through `check_body` on a
//! route that neutralises fields and accepts every file type. The first byte picks the type;
//! its high bit, a route with exclusions, where no finding may be one they excuse.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use phr_gateway::inspect::{check_body, disarm::Accepted, Exclusion, Mode, RouteInspection};

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

static EXCLUDING: LazyLock<RouteInspection> = LazyLock::new(|| RouteInspection {
    mode: Mode::Block,
    exclude: ["xss", "lfi-100", "sqli@body:note.text"]
        .iter()
        .map(|e| Exclusion::parse(e).expect("exclusion"))
        .collect(),
    ..ROUTE.clone()
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
    let route: &RouteInspection = if pick & 0x80 == 0 { &ROUTE } else { &EXCLUDING };
    let checked = check_body(body, &headers, route);
    // A refused body is never forwarded in any form.
    assert!(checked.refusal.is_none() || checked.rewritten.is_none());
    if pick & 0x80 != 0 {
        for finding in &checked.findings {
            let hit = finding.hit;
            assert!(
                hit.class.name() != "xss"
                    && hit.rule != "lfi-100"
                    && !(hit.class.name() == "sqli" && finding.field == "note.text"),
                "an excused finding was kept: {finding:?}"
            );
        }
    }
});
