#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! Identity through the real gateway: a verified caller reaches the upstream with the
//! gateway's identity headers (never the client's), refusals are 401 with the right challenge,
//! and the access record names the caller (R-AUTH-1, R-AUTH-2, R-LOG-1).

mod support;

use std::sync::Arc;

use rustls::version::TLS13;
use serde_json::json;
use support::issuer::*;
use support::*;

struct Setup {
    dir: tempfile::TempDir,
    pki: TestPki,
    upstream: Upstream,
    gateway: Gateway,
    key: TestKey,
}

async fn setup(audit_extra: &str) -> Setup {
    setup_full(audit_extra, "").await
}

async fn setup_with_identity(identity: &str) -> Setup {
    setup_full("", identity).await
}

async fn setup_full(audit_extra: &str, identity: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let key = TestKey::es256("gw-test-1");
    std::fs::write(dir.path().join("jwks.json"), jwks(&[&key])).unwrap();
    std::fs::write(
        dir.path().join("pseudonym.key"),
        "0123456789abcdef0123456789abcdef-test-only",
    )
    .unwrap();
    let upstream = Upstream::start().await;
    let port = free_port();
    let extra = format!(
        r#"
[[routes]]
id = "recent"
methods = ["GET"]
path = "/fhir/MedicationRequest/{{id}}"
upstream = "backend"
category = "medication"
max_auth_age_secs = 300

[identity]
{identity}

"#
    ) + &issuer_toml("jwks_file = \"jwks.json\"");
    let text = policy_with_audit(&pki, port, upstream.port, "", audit_extra, &extra);
    let gateway = Gateway::start(dir.path(), &text, port);
    Setup {
        dir,
        pki,
        upstream,
        gateway,
        key,
    }
}

fn h1(s: &Setup) -> Arc<rustls::ClientConfig> {
    client_config(&s.pki.ca_der, &[&TLS13], &[b"http/1.1"])
}

/// GET a patient (a route that needs a token with MFA) with this `Authorization` value.
async fn read_patient(s: &Setup, authorization: &str) -> Reply {
    call(s, "/fhir/Patient/p-1", &[("authorization", authorization)]).await
}

async fn call(s: &Setup, path: &str, headers: &[(&str, &str)]) -> Reply {
    get(s.gateway.port, h1(s), path, headers).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_mfa_caller_is_forwarded_with_the_gateways_identity_headers_r_auth_1() {
    let s = setup("").await;
    let token = s.key.sign(&mfa_claims("alice"));
    let auth = format!("Bearer {token}");
    let reply = call(
        &s,
        "/fhir/Patient/p-1",
        &[
            ("authorization", &auth),
            ("x-phr-subject", "admin"),
            ("x-phr-anything", "1"),
            // What CGI, WSGI and Rack servers read as `X-PHR-Subject` and `X-Forwarded-For`.
            ("x_phr_subject", "admin"),
            ("x_forwarded_for", "10.0.0.1"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // The caller's own data: no cache may keep it. An anonymous route's answer is left alone.
    assert_eq!(reply.headers["cache-control"], "no-store");
    let public = call(&s, "/anon/x", &[]).await;
    assert_eq!(public.status, 200);
    assert!(public.headers.get("cache-control").is_none(), "{public:?}");
    // An anonymous route verifies no token, so none it carries reaches the backend; a
    // token endpoint's `Basic` client authentication does.
    assert_eq!(
        call(&s, "/anon/bearer", &[("authorization", &auth)])
            .await
            .status,
        200
    );
    let basic = "Basic Y2xpZW50OnNlY3JldA==";
    assert_eq!(
        call(&s, "/anon/basic", &[("authorization", basic)])
            .await
            .status,
        200
    );
    let seen = s.upstream.requests();
    let at = |path: &str| seen.iter().find(|r| r.path == path).unwrap();
    assert!(at("/anon/bearer").headers.get("authorization").is_none());
    assert_eq!(at("/anon/basic").headers["authorization"], basic);
    assert_eq!(
        at("/fhir/Patient/p-1").headers["authorization"],
        auth.as_str()
    );
    let seen = s
        .upstream
        .requests()
        .into_iter()
        .find(|r| r.path == "/fhir/Patient/p-1")
        .unwrap();
    for spoofed in ["x_phr_subject", "x_forwarded_for"] {
        assert!(seen.headers.get(spoofed).is_none(), "{spoofed} arrived");
    }
    assert_eq!(
        seen.headers["x-phr-subject"], "alice",
        "the client's own x-phr-subject never arrives"
    );
    assert_eq!(seen.headers.get_all("x-phr-subject").iter().count(), 1);
    assert!(seen.headers.get("x-phr-anything").is_none());
    assert_eq!(seen.headers["x-phr-client-id"], "phr-app");
    assert_eq!(seen.headers["x-phr-mfa"], "true");
    assert_eq!(seen.headers["x-phr-session"], "sid-alice");
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_carry_reason_and_challenge_and_never_reach_the_upstream() {
    let s = setup("").await;
    let mut single = mfa_claims("bob");
    single["amr"] = json!(["pwd"]);
    let mut expired = mfa_claims("bob");
    expired["exp"] = json!(now() - 3600);
    let mut stale = mfa_claims("bob");
    stale["auth_time"] = json!(now() - 3600);
    let other = TestKey::es256("gw-test-1");
    let cases = [
        (
            "/fhir/Patient/p-1",
            None,
            "identity.missing",
            "Bearer realm=\"phr-gateway\"",
        ),
        (
            "/fhir/Patient/p-1",
            Some(s.key.sign(&single)),
            "identity.mfa_required",
            "error=\"insufficient_user_authentication\"",
        ),
        (
            "/fhir/Patient/p-1",
            Some(s.key.sign(&expired)),
            "identity.expired",
            "error=\"invalid_token\"",
        ),
        (
            "/fhir/Patient/p-1",
            Some(other.sign(&mfa_claims("bob"))),
            "identity.invalid_signature",
            "error=\"invalid_token\"",
        ),
        (
            "/fhir/Patient/p-1",
            Some("abc.def".into()),
            "identity.invalid_token",
            "error=\"invalid_token\"",
        ),
        (
            "/fhir/MedicationRequest/m-1",
            Some(s.key.sign(&stale)),
            "identity.step_up_required",
            "max_age=300",
        ),
    ];
    for (path, token, reason, challenge) in cases {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let reply = call(&s, path, &headers).await;
        assert_eq!(reply.status, 401, "{reason}: {reply:?}");
        assert_eq!(reply.json()["reason"], reason);
        let www = reply.headers["www-authenticate"].to_str().unwrap();
        assert!(www.contains(challenge), "{reason}: {www}");
    }
    assert!(
        s.upstream.requests().is_empty(),
        "no refused request reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_record_names_the_caller_pseudonymised_when_asked_r_log_5() {
    let mut s = setup("pseudonym_key = \"pseudonym.key\"").await;
    let token = s.key.sign(&mfa_claims("patient-77"));
    let reply = call(
        &s,
        "/fhir/Patient/p-1",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(reply.status, 200);
    stop(&mut s);
    let segment = s.dir.path().join("audit/access/00000000000000000000.jsonl");
    let log = std::fs::read_to_string(segment).unwrap();
    let record = log.lines().last().unwrap();
    assert!(record.contains("\"principal\":\"p1:"), "{record}");
    assert!(record.contains("\"client_id\":\"phr-app\""), "{record}");
    assert!(
        !record.contains("patient-77"),
        "the subject never appears in clear: {record}"
    );
}

async fn post(s: &Setup, path: &str, token: &str) -> Reply {
    let mut client = Client::open(s.gateway.port, h1(s)).await.unwrap();
    client
        .send(
            "POST",
            path,
            &[("authorization", &format!("Bearer {token}"))],
            "",
        )
        .await
        .unwrap()
}

fn state_events(dir: &std::path::Path) -> Vec<serde_json::Value> {
    phr_gateway::audit::segment::read_records(&dir.join("audit/state")).unwrap()
}

/// Stop the gateway (SIGTERM) and wait for it.
fn stop(s: &mut Setup) {
    s.gateway.stop_with(nix::sys::signal::Signal::SIGTERM);
}

/// Start the gateway again on the same directory and policy (a new port).
fn start_again(s: &mut Setup) {
    let port = free_port();
    let text = std::fs::read_to_string(s.dir.path().join("policy.toml")).unwrap();
    let old = format!("127.0.0.1:{}\"", s.gateway.port);
    let text = text.replace(&old, &format!("127.0.0.1:{port}\""));
    s.gateway = Gateway::start(s.dir.path(), &text, port);
}

fn restart(s: &mut Setup) {
    stop(s);
    start_again(s);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_ends_the_session_for_good_even_across_a_restart_r_auth_3() {
    let mut s = setup("").await;
    let token = s.key.sign(&mfa_claims("frank"));
    let auth = format!("Bearer {token}");
    assert_eq!(read_patient(&s, &auth).await.status, 200);
    let reply = post(&s, "/.phr/session/logout", &token).await;
    assert_eq!(reply.status, 204, "{reply:?}");
    let after = read_patient(&s, &auth).await;
    assert_eq!(
        (after.status, after.json()["reason"].as_str()),
        (401, Some("identity.session_revoked"))
    );
    assert!(state_events(s.dir.path())
        .iter()
        .any(|e| e["event"] == "session_ended" && e["reason"] == "logout"));

    restart(&mut s);
    let after_restart = read_patient(&s, &auth).await;
    assert_eq!(
        after_restart.json()["reason"],
        "identity.session_revoked",
        "replayed from the state log"
    );
    // A new sign-in (a new session) works.
    let mut fresh = mfa_claims("frank");
    fresh["sid"] = json!("sid-frank-2");
    let auth = format!("Bearer {}", s.key.sign(&fresh));
    assert_eq!(read_patient(&s, &auth).await.status, 200);
    // Logout is held to the same framing rules as any request (R-WAF-3).
    let smuggled = format!(
        "POST /.phr/session/logout HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    let answer = raw_exchange(s.gateway.port, &s.pki.ca_der, smuggled.as_bytes())
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("protocol.length_with_transfer_encoding"),
        "{answer}"
    );
    // Logout without a token, or with GET, is refused.
    let mut client = Client::open(s.gateway.port, h1(&s)).await.unwrap();
    assert_eq!(
        client
            .send("POST", "/.phr/session/logout", &[], "")
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        client
            .send(
                "GET",
                "/.phr/session/logout",
                &[("authorization", &auth)],
                ""
            )
            .await
            .unwrap()
            .status,
        405
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_session_is_locked_r_auth_3() {
    let s = setup_with_identity("session_idle_secs = 1").await;
    let token = s.key.sign(&mfa_claims("grace"));
    let auth = format!("Bearer {token}");
    assert_eq!(read_patient(&s, &auth).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let idle = read_patient(&s, &auth).await;
    assert_eq!(
        (idle.status, idle.json()["reason"].as_str()),
        (401, Some("identity.session_idle"))
    );
    // It stays locked, even right away.
    let again = read_patient(&s, &auth).await;
    assert_eq!(again.json()["reason"], "identity.session_revoked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subject_revocation_written_while_stopped_holds_after_the_restart_r_auth_3() {
    let mut s = setup("").await;
    let token = s.key.sign(&mfa_claims("heidi"));
    let auth = format!("Bearer {token}");
    assert_eq!(read_patient(&s, &auth).await.status, 200);
    stop(&mut s);
    // The admin action (its API comes with the admin listener): a durable state event.
    {
        let key = std::fs::read_to_string(s.dir.path().join("audit-signing.key")).unwrap();
        let sink = phr_gateway::audit::AuditSink::open(phr_gateway::audit::StoreConfig {
            dir: s.dir.path().join("audit"),
            node_id: Arc::from("test"),
            origin: "phr-gateway/test".into(),
            signer: phr_gateway::audit::Signer::from_text(&key).unwrap(),
            checkpoint_every: 1000,
            checkpoint_interval: std::time::Duration::from_secs(10),
            segment_max_bytes: 64 << 20,
            sync_interval: std::time::Duration::from_millis(5),
            access_durability: phr_gateway::audit::Durability::Batched,
            on_failure: phr_gateway::audit::OnFailure::FailClosed,
            queue_capacity: 16,
        })
        .unwrap();
        sink.record_state(phr_gateway::audit::StateEvent::SubjectRevoked {
            subject: "heidi".into(),
            at: now(),
            by: "test-admin".into(),
        })
        .await
        .unwrap();
        tokio::task::spawn_blocking(move || sink.close())
            .await
            .unwrap();
    }
    start_again(&mut s);
    let refused = read_patient(&s, &auth).await;
    assert_eq!(refused.json()["reason"], "identity.session_revoked");
    // Signing in again (a later auth_time) is the way back.
    let mut later = mfa_claims("heidi");
    later["auth_time"] = json!(now() + 1);
    later["sid"] = json!("sid-heidi-2");
    let auth = format!("Bearer {}", s.key.sign(&later));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(read_patient(&s, &auth).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_invalid_tokens_lock_the_address_out_r_auth_5() {
    let s = setup_with_identity("max_failures = 3\nlockout_secs = 60").await;
    for _ in 0..4 {
        let reply = call(
            &s,
            "/fhir/Patient/p-1",
            &[("authorization", "Bearer a.b.c")],
        )
        .await;
        assert_eq!(reply.status, 401);
    }
    let good = format!("Bearer {}", s.key.sign(&mfa_claims("ivan")));
    let locked = call(&s, "/fhir/Patient/p-1", &[("authorization", &good)]).await;
    assert_eq!(
        (locked.status, locked.json()["reason"].as_str()),
        (429, Some("identity.too_many_failures"))
    );
    let wait: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    assert!(s.upstream.requests().is_empty());
}

/// A bearer token outside the `Authorization` header (RFC 6750 sections 2.2 and 2.3) is
/// refused, in every spelling a backend's parser reads as `access_token`, whatever the header
/// holds: the gateway verifies only the header's token, and a backend that also read these
/// would act on one it never checked (a revoked or password-only token, another person's).
#[tokio::test(flavor = "multi_thread")]
async fn a_token_outside_the_authorization_header_is_refused_r_auth_1() {
    let s = setup("").await;
    let token = s.key.sign(&mfa_claims("grace"));
    let auth = format!("Bearer {token}");
    let mut single = mfa_claims("mallory");
    single["amr"] = json!(["pwd"]);
    let unchecked = s.key.sign(&single);
    for query in [
        format!("access_token={unchecked}"),
        format!("_format=json&ACCESS_TOKEN={unchecked}"),
        format!("access_token[]={unchecked}"),
        format!("%20access_token={unchecked}"),
        format!("_format=json;access_token={unchecked}"),
    ] {
        for (path, headers) in [
            ("/fhir/Patient/p-1", vec![("authorization", auth.as_str())]),
            ("/anon/x", vec![]),
        ] {
            let reply = call(&s, &format!("{path}?{query}"), &headers).await;
            assert_eq!(reply.status, 400, "{path}?{query}: {reply:?}");
            assert_eq!(reply.json()["reason"], "identity.token_outside_header");
            let www = reply.headers["www-authenticate"].to_str().unwrap();
            assert!(www.contains("error=\"invalid_request\""), "{www}");
        }
    }
    let mut client = Client::open(s.gateway.port, h1(&s)).await.unwrap();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let reply = client
        .send(
            "POST",
            "/anon/x",
            &form,
            &format!("note=a&access_token={unchecked}"),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.json()["reason"], "identity.token_outside_header");
    assert!(
        s.upstream.requests().is_empty(),
        "a request carrying an unverified token reached the upstream"
    );
    // Names that only contain the word, and the header alone, pass.
    let reply = call(
        &s,
        "/fhir/Patient/p-1?my_access_token_count=1&token=x",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = client
        .send("POST", "/anon/x", &form, "note=access_token+expired")
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(s.upstream.requests().len(), 2);
}

/// A token that names no session (neither `sid` nor `jti`) would outlive every idle lock,
/// logout and session revocation: refused unless the policy accepts such tokens (R-AUTH-3).
#[tokio::test(flavor = "multi_thread")]
async fn a_token_that_names_no_session_is_refused_unless_the_policy_accepts_it_r_auth_3() {
    let mut claims = mfa_claims("heidi");
    claims.as_object_mut().unwrap().remove("sid");
    claims.as_object_mut().unwrap().remove("jti");
    let s = setup("").await;
    let reply = read_patient(&s, &format!("Bearer {}", s.key.sign(&claims))).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(reply.json()["reason"], "identity.invalid_token");
    let www = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(www.contains("names no session"), "{www}");
    // Empty claims name no session either: every such token would share one, so one
    // person's logout would end everyone's and anyone's requests would keep it alive.
    let mut empty = mfa_claims("heidi");
    empty["sid"] = serde_json::json!("");
    empty["jti"] = serde_json::json!("");
    let reply = read_patient(&s, &format!("Bearer {}", s.key.sign(&empty))).await;
    assert_eq!(
        reply.json()["reason"],
        "identity.invalid_token",
        "{reply:?}"
    );
    empty["jti"] = serde_json::json!("t-1");
    let reply = read_patient(&s, &format!("Bearer {}", s.key.sign(&empty))).await;
    assert_eq!(
        reply.status, 200,
        "an empty sid falls back to the token id: {reply:?}"
    );
    assert_eq!(s.upstream.requests().len(), 1);
    // Either claim alone names one.
    for keep in ["sid", "jti"] {
        let mut one = mfa_claims("heidi");
        let other = if keep == "sid" { "jti" } else { "sid" };
        one.as_object_mut().unwrap().remove(other);
        let reply = read_patient(&s, &format!("Bearer {}", s.key.sign(&one))).await;
        assert_eq!(reply.status, 200, "{keep}: {reply:?}");
    }

    let s = setup_with_identity("sessionless_tokens = true").await;
    let reply = read_patient(&s, &format!("Bearer {}", s.key.sign(&claims))).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}
