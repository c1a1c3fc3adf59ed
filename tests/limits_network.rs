#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! Rate limits, connection limits and deadlines (R-NET-3) and network rules (R-NET-1) through
//! the real gateway: real TLS clients on loopback, trusted-proxy addresses given in
//! `X-Forwarded-For` (the only way to appear from other networks on one machine).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::version::TLS13;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Setup {
    _dir: tempfile::TempDir,
    pki: TestPki,
    upstream: Upstream,
    gateway: Gateway,
}

impl Setup {
    fn h1(&self) -> Arc<rustls::ClientConfig> {
        client_config(&self.pki.ca_der, &[&TLS13], &[b"http/1.1"])
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        get(self.gateway.port, self.h1(), path, headers)
            .await
            .unwrap()
    }

    fn access_records(&self) -> Vec<serde_json::Value> {
        phr_gateway::audit::segment::read_records(&self.gateway.dir.join("audit/access")).unwrap()
    }
}

/// A gateway whose policy ends with `extra` (tables after the routes), plus one more route
/// `/lab/{id}` with `route_extra` keys.
async fn setup(extra: &str, route_extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let upstream = Upstream::start().await;
    let port = free_port();
    let tail = format!(
        r#"
[[routes]]
id = "lab"
methods = ["GET"]
path = "/lab/{{id}}"
upstream = "backend"
category = "public"
anonymous = true
{route_extra}

{extra}
"#
    );
    let text = policy(&pki, port, upstream.port, "", &tail);
    let gateway = Gateway::start(dir.path(), &text, port);
    Setup {
        _dir: dir,
        pki,
        upstream,
        gateway,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn per_client_limit_answers_429_with_headers_then_recovers_r_net_3() {
    let s = setup(
        "[limits]\nper_client = { requests = 2, per_secs = 1, burst = 2 }\n",
        "",
    )
    .await;
    for _ in 0..2 {
        assert_eq!(s.get("/anon/a", &[]).await.status, 200);
    }
    let refused = s.get("/anon/a", &[]).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.json()["reason"], "limits.rate_limited");
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.headers["ratelimit-policy"], "\"client\";q=2;w=1");
    assert_eq!(refused.headers["ratelimit"], "\"client\";r=0;t=1");
    assert_eq!(
        s.upstream.requests().len(),
        2,
        "the refused request was forwarded"
    );
    // One request is replenished every 500 ms.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        s.get("/anon/a", &[]).await.status,
        200,
        "no recovery after the window"
    );
    let reasons: Vec<String> = s
        .access_records()
        .iter()
        .filter_map(|r| r["reason"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        reasons,
        ["limits.rate_limited"],
        "the refusal has its record"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn per_route_limit_counts_all_callers_together() {
    let s = setup(
        "",
        "rate_limit = { requests = 1, per_secs = 60, burst = 1 }",
    )
    .await;
    assert_eq!(s.get("/lab/1", &[]).await.status, 200);
    let refused = s.get("/lab/2", &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.headers["ratelimit-policy"], "\"route\";q=1;w=60");
    // Other routes are not charged.
    assert_eq!(s.get("/anon/x", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_finishes_its_head_is_cut_at_the_header_timeout() {
    let s = setup(
        "[limits]\nheader_timeout_secs = 1\nidle_timeout_secs = 1\n",
        "",
    )
    .await;
    let mut slow = connect(s.gateway.port, s.h1()).await.unwrap();
    // A slowloris: the start of a head, then a byte now and then, never the blank line.
    slow.write_all(b"GET /anon/x HTTP/1.1\r\nHost: local")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(6) {
        let _ = slow.write_all(b"h").await;
        match tokio::time::timeout(Duration::from_millis(300), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(_)) => panic!("the gateway answered an unfinished head"),
            Err(_) => {}
        }
    }
    assert!(cut, "the slow connection was still open after 6 s");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "cut before the header timeout: {:?}",
        started.elapsed()
    );
    // A kept-alive connection idle past idle_timeout is closed too.
    let mut idle = Client::open(s.gateway.port, s.h1()).await.unwrap();
    assert_eq!(
        idle.send("GET", "/anon/x", &[], "").await.unwrap().status,
        200
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        idle.send("GET", "/anon/x", &[], "").await.is_err(),
        "the idle connection was kept past idle_timeout"
    );
    // A prompt client is served as usual.
    assert_eq!(s.get("/anon/x", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_per_client_are_limited() {
    let s = setup("[limits]\nconnections_per_client = 2\n", "").await;
    let first = connect(s.gateway.port, s.h1()).await.unwrap();
    let second = connect(s.gateway.port, s.h1()).await.unwrap();
    let third = connect(s.gateway.port, s.h1()).await;
    assert!(
        third.is_err(),
        "a third connection from one address was admitted"
    );
    drop(first);
    // The slot comes back once the gateway sees the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if connect(s.gateway.port, s.h1()).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed connection's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(second);
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_list_wins_and_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // No trusted proxies: the loopback peer is the client, whatever the header says.
    let s = setup("[network]\ndeny = [\"127.0.0.0/8\"]\n", "").await;
    let refused = s
        .get("/anon/x", &[("x-forwarded-for", "203.0.113.9")])
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.json()["reason"], "network.denied");
    assert!(s.upstream.requests().is_empty());

    let s = setup("[network]\nallow = [\"10.0.0.0/8\"]\n", "").await;
    let refused = s.get("/anon/x", &[("x-forwarded-for", "10.0.0.5")]).await;
    assert_eq!(
        refused.status, 403,
        "a spoofed X-Forwarded-For was believed"
    );
    let records = s.access_records();
    assert_eq!(records[0]["client"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_proxy_addresses_meet_global_and_per_route_rules_in_ipv4_and_ipv6() {
    let s = setup(
        "[network]\ntrusted_proxies = [\"127.0.0.1\"]\ndeny = [\"198.51.100.0/24\", \"2001:db8:bad::/48\"]\n",
        "allow_from = [\"10.0.0.0/8\", \"fd00:10::/64\"]",
    )
    .await;
    let status = |xff: &'static str, path: &'static str| {
        let s = &s;
        async move { s.get(path, &[("x-forwarded-for", xff)]).await.status }
    };
    // Global deny list, both families.
    assert_eq!(status("198.51.100.7", "/anon/x").await, 403);
    assert_eq!(status("2001:db8:bad::1", "/anon/x").await, 403);
    assert_eq!(status("203.0.113.9", "/anon/x").await, 200);
    assert_eq!(status("2001:db8:600d::1", "/anon/x").await, 200);
    // The route's own allow list, both families.
    assert_eq!(status("10.1.2.3", "/lab/1").await, 200);
    assert_eq!(status("fd00:10::5", "/lab/1").await, 200);
    assert_eq!(status("203.0.113.9", "/lab/1").await, 403);
    assert_eq!(status("fd00:11::5", "/lab/1").await, 403);
    // A client-prepended entry left of an untrusted hop is not believed.
    assert_eq!(status("10.9.9.9, 203.0.113.9", "/lab/1").await, 403);
    // The upstream is told the resolved client; the record holds it too.
    let seen = s.upstream.requests().pop().unwrap();
    assert_eq!(seen.headers["x-forwarded-for"], "fd00:10::5");
    let clients: Vec<String> = s
        .access_records()
        .iter()
        .filter_map(|r| r["client"].as_str().map(str::to_owned))
        .collect();
    assert!(
        clients.contains(&"2001:db8:bad::1".to_owned()),
        "{clients:?}"
    );
}
