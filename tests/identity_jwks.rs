#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! JWKS from a real local https endpoint: fetched at start, refetched when a token names an
//! unknown key (rate-limited), rotation followed, the last good keys kept when the endpoint
//! fails (R-AUTH-1).

mod support;

use std::time::{Duration, Instant};

use rustls::version::TLS13;
use support::issuer::*;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn keys_follow_rotation_without_hammering_the_idp_and_survive_its_outage() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let idp_cert = pki.ca.issue_server(&["localhost"]).unwrap();
    let (old, new) = (TestKey::es256("key-2025"), TestKey::es256("key-2026"));
    let idp = JwksServer::start(upstream_tls(&idp_cert, None), jwks(&[&old])).await;
    let upstream = Upstream::start().await;
    let port = free_port();
    // This test sends many bad tokens on purpose: no lockout.
    let extra = "\n[identity]\nmax_failures = 1000\n".to_owned()
        + &issuer_toml(&format!(
            "jwks_url = \"https://localhost:{}/jwks.json\"\njwks_ca = \"{}\"\njwks_refresh_secs = 3600\njwks_min_refetch_secs = 1",
            idp.port,
            pki.ca_path.display()
        ));
    let gateway = Gateway::start(
        dir.path(),
        &policy(&pki, port, upstream.port, "", &extra),
        port,
    );
    let config = client_config(&pki.ca_der, &[&TLS13], &[b"http/1.1"]);
    let ask = |token: String| {
        let config = config.clone();
        async move {
            get(
                port,
                config,
                "/fhir/Patient/p-1",
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(idp.hits(), 1, "fetched once at start");
    assert_eq!(ask(old.sign(&mfa_claims("a"))).await.status, 200);

    // The IdP rotates: the new key is unknown until a refetch, which the unknown kid asks for.
    idp.serve(Some(jwks(&[&new])));
    let first = ask(new.sign(&mfa_claims("b"))).await;
    assert_eq!(first.json()["reason"], "identity.invalid_signature");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut status = 0;
    while Instant::now() < deadline && status != 200 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        status = ask(new.sign(&mfa_claims("b"))).await.status;
    }
    assert_eq!(
        status,
        200,
        "the rotated key was not fetched: {}",
        gateway.log()
    );
    assert_eq!(
        ask(old.sign(&mfa_claims("a"))).await.status,
        401,
        "the retired key is gone"
    );

    // A stream of made-up key ids: at most one fetch per jwks_min_refetch_secs.
    let before = idp.hits();
    let started = Instant::now();
    for i in 0..30 {
        let forged = TestKey::es256(&format!("made-up-{i}"));
        assert_eq!(ask(forged.sign(&mfa_claims("m"))).await.status, 401);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let allowed = started.elapsed().as_secs() as usize + 2;
    assert!(
        idp.hits() - before <= allowed,
        "{} fetches in {:?}",
        idp.hits() - before,
        started.elapsed()
    );

    // The IdP fails: the last good keys stay in use.
    idp.serve(None);
    let failing = idp.hits();
    let forged = TestKey::es256("trigger-refetch");
    let _ = ask(forged.sign(&mfa_claims("m"))).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && idp.hits() == failing {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(idp.hits() > failing, "a refetch was attempted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ask(new.sign(&mfa_claims("b"))).await.status,
        200,
        "kept the last good keys"
    );
    assert!(
        gateway
            .log()
            .contains("JWKS refresh failed; keeping the last good keys"),
        "{}",
        gateway.log()
    );
}

#[test]
fn a_policy_whose_jwks_url_cannot_be_fetched_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let dead = free_port();
    let extra = issuer_toml(&format!(
        "jwks_url = \"https://localhost:{dead}/jwks.json\""
    ));
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy(&pki, free_port(), 9, "", &extra)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phr-gateway"))
        .args(["check", "--policy"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("jwks_url") || stderr.contains(&format!("localhost:{dead}")),
        "{stderr}"
    );
}

/// A failed refresh keeps the keys and is counted in the metrics registry (served by the admin
/// listener's /metrics), beside the key set's age.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_refresh_is_counted_and_the_keys_kept() {
    use phr_gateway::identity::jwks::{IssuerKeys, JwksSource, JwksUrl};
    use phr_gateway::identity::keys::KeySet;
    let dead = free_port();
    let url = JwksUrl::new(
        &format!("https://localhost:{dead}/jwks.json"),
        None,
        Duration::from_secs(3600),
        Duration::from_secs(1),
    )
    .unwrap();
    let set = KeySet::from_json(jwks(&[&TestKey::es256("k")]).as_bytes()).unwrap();
    let keys = IssuerKeys::new(JwksSource::Url(url), set);
    assert!(!keys.refresh_if_due("metrics-idp").await, "nothing due yet");
    keys.unknown_kid();
    assert!(
        keys.refresh_if_due("metrics-idp").await,
        "an unknown kid asks for a fetch"
    );
    assert_eq!(keys.current().len(), 1, "the last good keys stay");
    let text = phr_gateway::metrics::metrics().unwrap().render();
    assert!(
        text.contains("phr_jwks_refresh_failures_total{issuer=\"metrics-idp\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("phr_jwks_age_seconds{issuer=\"metrics-idp\"}"),
        "{text}"
    );
    // Within jwks_min_refetch_secs another unknown kid does not fetch again.
    keys.unknown_kid();
    assert!(!keys.refresh_if_due("metrics-idp").await);
}
