//! A request head — path, query, headers, cookies — built from any bytes, through the
//! head's inspection and the protocol checks; and through a route with exclusions, where no
//! finding may be one they excuse.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use phr_gateway::inspect::{inspect, inspect_on, Exclusion, Place, RouteInspection, Target};

static EXCLUDING: LazyLock<RouteInspection> = LazyLock::new(|| RouteInspection {
    exclude: ["xss", "lfi-100", "sqli@query:q"]
        .iter()
        .map(|e| Exclusion::parse(e).expect("exclusion"))
        .collect(),
    ..RouteInspection::default()
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut pieces = text.splitn(4, '\n');
    let path = pieces.next().unwrap_or("/");
    let query = pieces.next();
    let mut headers = http::HeaderMap::new();
    if let Some(cookie) = pieces
        .next()
        .and_then(|c| http::HeaderValue::from_str(c).ok())
    {
        headers.insert(http::header::COOKIE, cookie);
    }
    if let Some(agent) = pieces
        .next()
        .and_then(|a| http::HeaderValue::from_str(a).ok())
    {
        headers.insert(http::header::USER_AGENT, agent);
    }
    let _ = phr_gateway::route::check_canonical(path);
    let _ = phr_gateway::protocol::check_size(
        path,
        query,
        &headers,
        &phr_gateway::protocol::RequestLimits::default(),
    );
    let target = Target {
        method: &http::Method::GET,
        path,
        query,
        headers: &headers,
        authority: None,
        body: None,
    };
    let _ = inspect(&target);
    for finding in inspect_on(&target, &EXCLUDING) {
        let hit = finding.hit;
        assert!(
            hit.class.name() != "xss"
                && hit.rule != "lfi-100"
                && !(hit.class.name() == "sqli"
                    && finding.place == Place::Query
                    && finding.field == "q"),
            "an excused finding was kept: {finding:?}"
        );
    }
});
