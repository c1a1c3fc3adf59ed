//! Route matching over a table of 1,000 routes (issue: gateway core), the served-host check
//! that runs before it, and a FHIR route's access derivation after it; the query's token check
//! and the response's `no-store` for a verified caller. Reports time per call;
//! docs/performance.md has the figures.

use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use phr_gateway::policy::DataCategory;
use phr_gateway::route::{Route, RouteTable, RouteTableBuilder};
use std::hint::black_box;

/// 1,000 routes shaped like a PHR API: 250 resource types, each with read by id, search,
/// history and a nested search.
fn table() -> RouteTable {
    let mut builder = RouteTableBuilder::default();
    for i in 0..250 {
        let t = format!("/fhir/Type{i}");
        let routes = [
            (format!("{t}/{{id}}"), Method::GET),
            (t.clone(), Method::GET),
            (format!("{t}/{{id}}/_history"), Method::GET),
            (format!("{t}/{{id}}/Observation"), Method::POST),
        ];
        for (j, (pattern, method)) in routes.into_iter().enumerate() {
            let added = builder.add(Route {
                id: format!("r{i}-{j}").into(),
                pattern: pattern.into(),
                methods: vec![method],
                upstream: 0,
                category: DataCategory::Checkup,
                anonymous: false,
                mfa: true,
                step_up: Default::default(),
                allow_from: Default::default(),
                access: Default::default(),
                inspect: Default::default(),
            });
            assert!(added.is_ok(), "{added:?}");
        }
    }
    builder.build()
}

fn bench(c: &mut Criterion) {
    let table = table();
    assert_eq!(table.routes().len(), 1_000);
    let mut group = c.benchmark_group("route_match_1000_routes");
    let cases: [(&str, Method, &str, bool); 4] = [
        ("hit_read_by_id", Method::GET, "/fhir/Type137/p-0001", true),
        (
            "hit_last_declared",
            Method::POST,
            "/fhir/Type249/x/Observation",
            true,
        ),
        ("miss_not_found", Method::GET, "/admin/config", false),
        (
            "miss_method_not_allowed",
            Method::DELETE,
            "/fhir/Type42/p-1",
            false,
        ),
    ];
    for (name, method, path, routed) in cases {
        assert_eq!(table.route(&method, path).is_ok(), routed, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| table.route(black_box(&method), black_box(path)).is_ok())
        });
    }
    group.finish();

    // `[listeners] hosts` (R-NET-2), checked before routing: the last of three names, with a
    // port, and a name not served.
    let served: Vec<String> = ["phr.example.jp", "api.phr.example.jp", "127.0.0.1"]
        .iter()
        .filter_map(|h| phr_gateway::protocol::served_host_name(h))
        .collect();
    let mut group = c.benchmark_group("served_host_3_names");
    for (name, host, ok) in [
        ("served_last_with_port", "127.0.0.1:8443", true),
        ("not_served", "evil.example", false),
    ] {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, http::HeaderValue::from_static(host));
        let check = |h: &http::HeaderMap| {
            let named = h.get(http::header::HOST).map(http::HeaderValue::as_bytes);
            phr_gateway::protocol::check_host_served(named, &served).is_ok()
        };
        assert_eq!(check(&headers), ok, "{name}");
        group.bench_function(name, |b| b.iter(|| check(black_box(&headers))));
    }
    group.finish();

    // After the match, on a FHIR route: what a search reaches and for which patient (R-AZ-1),
    // its query read for the patient and for the same parameter spelled for another parser.
    let mut group = c.benchmark_group("fhir_access_derive");
    let query = "patient=p-0001&code=http%3A%2F%2Floinc.org%7C4548-4&date=ge2026-01-01&_count=50";
    let derive = |q: &str| {
        phr_gateway::access::fhir::derive(&Method::GET, "/Observation", Some(q))
            .is_ok_and(|r| r.patient.is_some())
    };
    assert!(derive(query));
    group.bench_function("search_4_params", |b| b.iter(|| derive(black_box(query))));
    // A create's body: its patient read, and every other reference to a patient compared.
    let observation = serde_json::json!({
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}], "text": "血圧"},
        "subject": {"reference": "Patient/p-0001"},
        "performer": [{"reference": "Patient/p-0001"}, {"reference": "Practitioner/d-17"}],
        "effectiveDateTime": "2026-11-29T08:30:00+09:00",
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 118, "unit": "mmHg"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 76, "unit": "mmHg"}}
        ],
        "note": [{"text": "朝食後に測定"}]
    })
    .to_string();
    let create = |body: &[u8]| {
        phr_gateway::access::fhir::single_entry(&Method::POST, "/Observation", None, body)
            .is_ok_and(|e| e.resource_patient.is_some())
    };
    assert!(create(observation.as_bytes()));
    group.bench_function("create_observation_body", |b| {
        b.iter(|| create(black_box(observation.as_bytes())))
    });
    group.finish();

    // Before inspection, on every request with a query: no bearer token outside the
    // Authorization header (RFC 6750's `access_token`, in any spelling).
    let mut group = c.benchmark_group("token_only_in_header");
    let check = |q: &str| phr_gateway::identity::check_token_only_in_header(q).is_ok();
    assert!(check(query));
    assert!(!check("patient=p-0001&Access_Token=x"));
    group.bench_function("search_4_params", |b| b.iter(|| check(black_box(query))));
    let plain = "patient=p-0001&code=4548-4&date=ge2026-01-01&_count=50";
    assert!(check(plain));
    group.bench_function("search_4_params_no_escapes", |b| {
        b.iter(|| check(black_box(plain)))
    });
    group.finish();

    // On a verified caller's response: `Cache-Control: no-store` unless the upstream said it.
    let mut group = c.benchmark_group("forbid_storing");
    let mut upstream = http::HeaderMap::new();
    for (n, v) in [
        ("content-type", "application/fhir+json; charset=utf-8"),
        ("content-length", "499"),
        ("etag", "W/\"3\""),
        ("cache-control", "private, max-age=60"),
        ("date", "Sun, 29 Nov 2026 11:00:00 GMT"),
    ] {
        upstream.insert(n, http::HeaderValue::from_static(v));
    }
    group.bench_function("upstream_private_max_age", |b| {
        b.iter_batched(
            || upstream.clone(),
            |mut h| {
                phr_gateway::harden::forbid_storing(&mut h);
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();

    // On every response: HSTS and nosniff set, banners and debugging links removed.
    let mut group = c.benchmark_group("harden");
    let mut upstream = upstream.clone();
    upstream.insert("server", http::HeaderValue::from_static("nginx/1.2"));
    group.bench_function("upstream_6_headers", |b| {
        b.iter_batched(
            || upstream.clone(),
            |mut h| {
                phr_gateway::harden::harden(&mut h);
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();

    // On every forwarded response: the cookies the upstream sets marked `Secure`.
    let mut group = c.benchmark_group("secure_cookies");
    group.bench_function("no_cookie", |b| {
        b.iter_batched(
            || upstream.clone(),
            |mut h| {
                phr_gateway::harden::secure_cookies(&mut h);
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let mut with_cookies = upstream.clone();
    with_cookies.append(
        "set-cookie",
        http::HeaderValue::from_static("JSESSIONID=8f1c2e; Path=/; HttpOnly"),
    );
    with_cookies.append(
        "set-cookie",
        http::HeaderValue::from_static("lang=ja; Path=/; Max-Age=31536000; Secure"),
    );
    group.bench_function("two_cookies_one_marked", |b| {
        b.iter_batched(
            || with_cookies.clone(),
            |mut h| {
                phr_gateway::harden::secure_cookies(&mut h);
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();

    // On every forwarded response: the upstream's own address in `Location` made public.
    let mut group = c.benchmark_group("public_locations");
    let origins = ["http://backend.internal:8080".to_owned()];
    group.bench_function("no_location", |b| {
        b.iter_batched(
            || upstream.clone(),
            |mut h| {
                phr_gateway::forward::public_locations(&mut h, &origins, Some("phr.example.jp"));
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let mut created = upstream.clone();
    created.insert(
        "location",
        http::HeaderValue::from_static(
            "http://backend.internal:8080/fhir/Observation/1/_history/1",
        ),
    );
    group.bench_function("created_with_own_location", |b| {
        b.iter_batched(
            || created.clone(),
            |mut h| {
                phr_gateway::forward::public_locations(&mut h, &origins, Some("phr.example.jp"));
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();

    // On every forwarded request: hop-by-hop and gateway-owned headers removed, the
    // forwarding headers and the request id set.
    let mut group = c.benchmark_group("forward_rewrite");
    let mut request = http::HeaderMap::new();
    for (n, v) in [
        ("host", "phr.example.jp"),
        ("user-agent", "PHR-App/3.2 (iPhone; iOS 19.1)"),
        ("accept", "application/fhir+json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("accept-language", "ja-JP,ja;q=0.9"),
        ("authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig"),
        ("phr-purpose", "self-management"),
        ("connection", "keep-alive"),
    ] {
        request.insert(n, http::HeaderValue::from_static(v));
    }
    let identity = phr_gateway::identity::IdentityHeaders::default();
    let request_id = http::HeaderValue::from_static("01a227ac-92c5-76d6-878e-000000000000");
    let forwarding = phr_gateway::forward::Forwarding {
        client_ip: Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7))),
        host: Some("phr.example.jp"),
        request_id: &request_id,
        default_host: "backend.internal",
        identity_headers: &identity,
        principal: None,
        purpose_header: &http::HeaderName::from_static("phr-purpose"),
    };
    group.bench_function("app_request_8_headers", |b| {
        b.iter_batched(
            || request.clone(),
            |mut h| {
                phr_gateway::forward::rewrite_request(&mut h, &forwarding);
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
