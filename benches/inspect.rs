//! Input inspection (issue: inspect): the head of a typical FHIR read, and JSON bodies of a few
//! kilobytes, through `inspect::inspect` as the proxy calls it. docs/performance.md and
//! docs/inspect.md have the figures.

// A benchmark whose set-up fails has nothing to measure: it stops loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{HeaderMap, HeaderValue};
use phr_gateway::inspect::{inspect, Target};

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

fn bench(c: &mut Criterion) {
    let head = headers(&[
        ("host", "phr.example.test"),
        ("user-agent", "phr-app/1.4 (iOS 17.5)"),
        ("accept", "application/fhir+json"),
        (
            "authorization",
            "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJwLTAwMSJ9.c2ln",
        ),
        ("phr-purpose", "self-management"),
        ("x-request-id", "01a2151b-21a6-711f-a906-242a777c52a4"),
    ]);
    let mut group = c.benchmark_group("inspect");
    group.bench_function("FHIR search head (path, 2 params, 6 headers)", |b| {
        b.iter(|| {
            let found = inspect(black_box(&Target {
                path: "/fhir/Observation",
                query: Some("patient=p-001&_lastUpdated=gt2026-01-01"),
                headers: &head,
                body: None,
            }));
            assert!(found.is_empty());
        })
    });
    let json = headers(&[("content-type", "application/fhir+json")]);
    let mut resource = serde_json::json!({
        "resourceType": "Observation", "id": "o-001", "status": "final",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>収縮期血圧 118 mmHg（安静時）</p></div>"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}], "text": "収縮期血圧"},
        "subject": {"reference": "Patient/p-001"},
        "effectiveDateTime": "2026-04-10T09:30:00+09:00",
        "valueQuantity": {"value": 118, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
        "note": [{"text": "朝食前に測定。体調は良好、特記事項なし。"}]
    });
    let entries: Vec<serde_json::Value> = (0..12)
        .map(|i| {
            resource["id"] = serde_json::json!(format!("o-{i:03}"));
            serde_json::json!({"resource": resource.clone(), "request": {"method": "POST", "url": "Observation"}})
        })
        .collect();
    let bundle =
        serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
            .to_string();
    group.throughput(Throughput::Bytes(bundle.len() as u64));
    group.bench_function(format!("FHIR Bundle body, {} bytes", bundle.len()), |b| {
        b.iter(|| {
            let found = inspect(black_box(&Target {
                path: "/fhir",
                query: None,
                headers: &json,
                body: Some(bundle.as_bytes()),
            }));
            assert!(found.is_empty());
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
