//! A request head — path, query, headers, cookies — built from any bytes, through the
//! head's inspection and the protocol checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phr_gateway::inspect::{inspect, Target};

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
    let _ = inspect(&Target {
        method: &http::Method::GET,
        path,
        query,
        headers: &headers,
        authority: None,
        body: None,
    });
});
