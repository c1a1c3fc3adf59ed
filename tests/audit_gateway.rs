#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! The audit trail with the real gateway in front of a real upstream: every request has its
//! record (R-LOG-1), policy versions are recorded (R-LOG-4), a killed gateway loses no record
//! of an answered request, and a full disk fails closed (or degrades, when the policy says so)
//! and recovers.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rustls::version::TLS13;
use support::*;

fn h1(pki: &TestPki) -> Arc<rustls::ClientConfig> {
    client_config(&pki.ca_der, &[&TLS13], &[b"http/1.1"])
}

/// Every complete record of a log, by request id (access) or in order (state).
fn records(audit: &Path, log: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for (_, path) in phr_gateway::audit::segment::list_segments(&audit.join(log)).unwrap() {
        let bytes = std::fs::read(path).unwrap();
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in bytes[..complete]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let parsed = phr_gateway::audit::record::parse_line(line).expect("a record line");
            out.push(serde_json::from_slice(parsed.record).unwrap());
        }
    }
    out
}

fn by_request_id(audit: &Path) -> HashMap<String, serde_json::Value> {
    records(audit, "access")
        .into_iter()
        .map(|r| (r["request_id"].as_str().unwrap().to_owned(), r))
        .collect()
}

/// SIGTERM and wait for the exit (the gateway checkpoints on the way out).
fn stop(gateway: &mut Gateway) {
    gateway.stop_with(Signal::SIGTERM);
}

/// A gateway (default test policy) that has answered `n` GETs on the anonymous route.
async fn gateway_after_gets(n: usize) -> (tempfile::TempDir, Gateway, Upstream) {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let upstream = Upstream::start().await;
    let port = free_port();
    let gateway = Gateway::start(dir.path(), &policy(&pki, port, upstream.port, "", ""), port);
    let mut client = Client::open(port, h1(&pki)).await.unwrap();
    for i in 0..n {
        let reply = client
            .send("GET", &format!("/anon/{i}"), &[], "")
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    (dir, gateway, upstream)
}

/// `phr-gateway audit verify` on the store with the pinned key; returns (success, output).
fn audit_verify(dir: &Path) -> (bool, String) {
    cli(&[
        &"audit",
        &"verify",
        &dir.join("audit"),
        &"--key",
        &dir.join("audit-signing.key.pub"),
    ])
}

fn request_id(reply: &Reply) -> String {
    reply.headers["x-request-id"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_is_recorded_refused_ones_too_r_log_1_r_log_5() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let upstream = Upstream::start().await;
    let port = free_port();
    let mut gateway = Gateway::start(dir.path(), &policy(&pki, port, upstream.port, "", ""), port);

    let mut client = Client::open(port, h1(&pki)).await.unwrap();
    let ok = client.send("GET", "/anon/hello", &[], "").await.unwrap();
    let posted = client
        .send(
            "POST",
            "/anon/form",
            &[("content-type", "text/plain")],
            "abc",
        )
        .await
        .unwrap();
    let missing = client.send("GET", "/no/such/route", &[], "").await.unwrap();
    let unauthenticated = client
        .send("GET", "/fhir/Patient/p-4711", &[], "")
        .await
        .unwrap();
    // A body without a type: refused before its bytes are read, so the connection closes.
    let untyped = client.send("POST", "/anon/form", &[], "abc").await.unwrap();
    assert_eq!(
        (
            ok.status,
            posted.status,
            missing.status,
            unauthenticated.status,
            untyped.status
        ),
        (200, 200, 404, 401, 415)
    );
    stop(&mut gateway);

    let audit = dir.path().join("audit");
    let log = by_request_id(&audit);
    let ok = &log[&request_id(&ok)];
    assert_eq!(ok["decision"], "allow");
    assert_eq!(ok["route"], "anon");
    assert_eq!(ok["template"], "/anon/{*rest}");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["tls"], "TLSv1.3");
    assert_eq!(ok["client"], "127.0.0.1");
    assert_eq!(ok["node"], "test");
    assert!(ok["upstream_us"].as_u64().is_some() && ok["total_us"].as_u64().is_some());
    assert!(ok.get("reason").is_none());
    assert_eq!(log[&request_id(&posted)]["bytes_in"], 3);
    let missing = &log[&request_id(&missing)];
    assert_eq!(
        (missing["decision"].as_str(), missing["reason"].as_str()),
        (Some("refuse"), Some("route.not_found"))
    );
    assert_eq!(missing["status"], 404);
    assert!(missing.get("template").is_none());
    let unauthenticated = &log[&request_id(&unauthenticated)];
    assert_eq!(unauthenticated["reason"], "identity.missing");
    assert_eq!(unauthenticated["template"], "/fhir/Patient/{id}");
    let untyped = &log[&request_id(&untyped)];
    assert_eq!(
        (untyped["reason"].as_str(), untyped["status"].as_u64()),
        (Some("protocol.content_type_missing"), Some(415))
    );

    // No raw path, so no identifier a path carried, anywhere in the log (R-LOG-5).
    for (_, path) in phr_gateway::audit::segment::list_segments(&audit.join("access")).unwrap() {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            !text.contains("p-4711") && !text.contains("/anon/hello") && !text.contains("/no/such"),
            "{text}"
        );
    }
    let state = records(&audit, "state");
    assert_eq!(state[0]["event"], "policy_loaded");
    assert_eq!(state[0]["trigger"], "start");
    let (ok, out) = audit_verify(dir.path());
    assert!(ok, "{out}");
    assert!(
        out.contains("access: 5 records, 1 checkpoints verified, signed up to record 5"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_versions_and_refused_reloads_are_recorded_r_log_4() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let upstream = Upstream::start().await;
    let port = free_port();
    let text = policy(&pki, port, upstream.port, "", "");
    let mut gateway = Gateway::start(dir.path(), &text, port);
    let first = sha256_hex(text.as_bytes());

    let second_text = text.replace("id = \"anon\"", "id = \"anonymous\"");
    std::fs::write(&gateway.policy_path, &second_text).unwrap();
    gateway.reload();
    std::fs::write(&gateway.policy_path, "not = [valid").unwrap();
    gateway.reload();
    stop(&mut gateway);

    let state = records(&dir.path().join("audit"), "state");
    let events: Vec<&str> = state.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["policy_loaded", "policy_loaded", "policy_rejected"],
        "{state:#?}"
    );
    assert_eq!(state[0]["version"], first);
    assert_eq!(state[1]["trigger"], "reload");
    assert_eq!(state[1]["previous"], first);
    assert_eq!(state[1]["version"], sha256_hex(second_text.as_bytes()));
    assert_eq!(state[2]["running"], state[1]["version"]);
    assert!(state[2]["error"].as_str().unwrap().contains("policy.toml"));
    let (ok, out) = audit_verify(dir.path());
    assert!(ok, "{out}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Clients send requests as fast as they can; the gateway is killed with SIGKILL mid-load.
/// Every request whose response reached a client must have its record: the record is written
/// before the response is released.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_gateway_keeps_the_record_of_every_answered_request() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let upstream = Upstream::start().await;
    let port = free_port();
    let text = policy(&pki, port, upstream.port, "", "");
    let mut gateway = Gateway::start(dir.path(), &text, port);

    let answered = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for c in 0..8 {
        let answered = Arc::clone(&answered);
        let config = h1(&pki);
        clients.push(tokio::spawn(async move {
            let Ok(mut client) = Client::open(port, config).await else {
                return;
            };
            for i in 0..100_000 {
                match client.send("GET", &format!("/anon/{c}/{i}"), &[], "").await {
                    Ok(reply) if reply.status == 200 => {
                        answered.lock().unwrap().push(request_id(&reply))
                    }
                    Ok(reply) => panic!("unexpected {reply:?}"),
                    Err(_) => return,
                }
            }
        }));
    }
    // Killed once enough answers are in, not after a fixed time: a debug build sharing two
    // cores with the suite's other gateways answers a few dozen requests in the first
    // seconds, a release build thousands.
    let loaded = Instant::now();
    while answered.lock().unwrap().len() < 300 && loaded.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gateway.signal(Signal::SIGKILL);
    for client in clients {
        client.await.unwrap();
    }
    let _ = gateway.child.wait();
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() > 50,
        "too little load to mean anything: {}",
        answered.len()
    );

    let log = by_request_id(&dir.path().join("audit"));
    let lost: Vec<&String> = answered
        .iter()
        .filter(|id| !log.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered requests have no record: {lost:?}",
        lost.len(),
        answered.len()
    );

    // The store recovers on the next start and verifies after a clean stop.
    let mut gateway = Gateway::start(dir.path(), &text, port);
    assert_eq!(
        get(port, h1(&pki), "/anon/after", &[])
            .await
            .unwrap()
            .status,
        200
    );
    stop(&mut gateway);
    let (ok, out) = audit_verify(dir.path());
    assert!(ok, "{out}");
}

async fn full_disk_run(
    on_failure: &str,
) -> Option<(Vec<u16>, usize, usize, tempfile::TempDir, SmallDisk)> {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("audit"), "1m")?;
    let pki = TestPki::new(dir.path(), "server");
    let upstream = Upstream::start().await;
    let port = free_port();
    let audit_extra = format!("on_audit_failure = \"{on_failure}\"\nsync_interval_ms = 1");
    let text = policy_with_audit(&pki, port, upstream.port, "", &audit_extra, "");
    let gateway = Gateway::start(dir.path(), &text, port);
    assert_eq!(
        get(port, h1(&pki), "/anon/before", &[])
            .await
            .unwrap()
            .status,
        200
    );

    let filler = disk.fill();
    let mut statuses = Vec::new();
    let mut client = Client::open(port, h1(&pki)).await.unwrap();
    for i in 0..300 {
        let reply = client
            .send("GET", &format!("/anon/full/{i}"), &[], "")
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(_) => {
                client = Client::open(port, h1(&pki)).await.unwrap();
                client
                    .send("GET", &format!("/anon/full/{i}"), &[], "")
                    .await
                    .unwrap()
            }
        };
        if reply.status == 503 {
            assert_eq!(reply.json()["reason"], "audit.unavailable", "{reply:?}");
            assert_eq!(reply.headers["retry-after"], "5");
        }
        statuses.push(reply.status);
        if statuses.iter().filter(|s| **s == 503).count() >= 5 {
            break;
        }
    }
    let upstream_seen_while_full = upstream.requests().len();

    // Space again: the store writes again by itself, and says how long it could not.
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut back = false;
    while Instant::now() < deadline && !back {
        tokio::time::sleep(Duration::from_millis(200)).await;
        back = get(port, h1(&pki), "/anon/after", &[])
            .await
            .is_ok_and(|r| r.status == 200);
    }
    assert!(back, "the gateway did not serve again: {}", gateway.log());
    let audit = dir.path().join("audit");
    let has_outage = || {
        records(&audit, "state")
            .iter()
            .any(|e| e["event"] == "audit_outage")
    };
    while Instant::now() < deadline && !has_outage() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut gateway = gateway;
    stop(&mut gateway);
    let (ok, out) = audit_verify(dir.path());
    assert!(ok, "{out}");
    let outage = records(&dir.path().join("audit"), "state")
        .into_iter()
        .find(|e| e["event"] == "audit_outage")
        .expect("an audit_outage event");
    let lost = outage["lost_access_records"].as_u64().unwrap() as usize;
    Some((statuses, upstream_seen_while_full, lost, dir, disk))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_closed_then_recovers() {
    let Some((statuses, upstream_seen, lost, dir, _disk)) = full_disk_run("fail_closed").await
    else {
        return;
    };
    let first_refusal = statuses
        .iter()
        .position(|s| *s == 503)
        .expect("a 503 while the disk is full");
    assert!(
        statuses[first_refusal..].iter().all(|s| *s == 503),
        "{statuses:?}"
    );
    // Requests after the store failed never reached the upstream: only "before", the answered
    // ones, and the one whose response was withheld because its record failed (none, if the
    // failure was found by a sync or checkpoint between requests).
    assert!(
        (1 + first_refusal..=1 + first_refusal + 1).contains(&upstream_seen),
        "upstream saw {upstream_seen}: {statuses:?}"
    );
    assert!(lost >= 1);
    // Every 200 the client got has its record.
    assert_eq!(
        by_request_id(&dir.path().join("audit"))
            .values()
            .filter(|r| r["status"] == 200)
            .count(),
        1 + first_refusal + 1,
        "before, the answered ones while filling, after"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_in_degrade_mode_serves_and_counts_the_loss() {
    let Some((statuses, upstream_seen, lost, _dir, _disk)) = full_disk_run("degrade").await else {
        return;
    };
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(upstream_seen, 1 + statuses.len());
    assert!(
        lost >= 1,
        "records written while full must be counted as lost"
    );
}

fn cli(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_phr-gateway"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The auditor's commands on a store the gateway wrote: export, proofs, verify; each edited
/// artefact is refused with exit 1 (R-LOG-2, R-OPS-3).
#[tokio::test(flavor = "multi_thread")]
async fn audit_commands_export_prove_and_catch_edits_r_ops_3() {
    let (dir, mut gateway, _upstream) = gateway_after_gets(20).await;
    stop(&mut gateway);
    let audit = dir.path().join("audit");
    let key = dir.path().join("audit-signing.key.pub");

    let export = dir.path().join("export.jsonl");
    let (ok, out) = cli(&[
        &"audit",
        &"export",
        &audit,
        &"--since",
        &"2000-01-01T00:00:00Z",
        &"--until",
        &"2100-01-01T00:00:00+09:00",
        &"--out",
        &export,
        &"--key",
        &key,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("access: 20 records from record 0"), "{out}");
    let (ok, out) = cli(&[&"audit", &"verify", &export, &"--key", &key]);
    assert!(ok && out.contains("ok: no changes"), "{out}");
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(
        &export,
        text.replacen("\"status\":200", "\"status\":204", 1),
    )
    .unwrap();
    let (ok, out) = cli(&[&"audit", &"verify", &export, &"--key", &key]);
    assert!(
        !ok && out.contains("FINDING: access: Changed at record 0"),
        "{out}"
    );

    let proof = dir.path().join("proof.json");
    let (ok, out) = cli(&[&"audit", &"proof", &audit, &"--seq", &"7", &"--key", &key]);
    assert!(ok, "{out}");
    std::fs::write(&proof, &out).unwrap();
    let (ok, out) = cli(&[
        &"audit", &"verify", &audit, &"--proof", &proof, &"--key", &key,
    ]);
    assert!(
        ok && out.contains("record 7 of the access log is included"),
        "{out}"
    );
    let edited = std::fs::read_to_string(&proof)
        .unwrap()
        .replacen("\"seq\": 7", "\"seq\": 8", 1);
    std::fs::write(&proof, edited).unwrap();
    let (ok, out) = cli(&[
        &"audit", &"verify", &audit, &"--proof", &proof, &"--key", &key,
    ]);
    assert!(!ok && out.contains("FAILED"), "{out}");

    let (ok, out) = cli(&[
        &"audit",
        &"proof",
        &audit,
        &"--consistency",
        &"5",
        &"--key",
        &key,
    ]);
    assert!(ok, "{out}");
    std::fs::write(&proof, &out).unwrap();
    let (ok, out) = cli(&[
        &"audit", &"verify", &audit, &"--proof", &proof, &"--key", &key,
    ]);
    assert!(ok && out.contains("size 5"), "{out}");

    // A changed record in the store itself: found, located, exit 1.
    let (_, segment) = phr_gateway::audit::segment::list_segments(&audit.join("access"))
        .unwrap()
        .remove(0);
    let text = std::fs::read_to_string(&segment).unwrap();
    let third = text.match_indices('\n').nth(1).unwrap().0 + 1;
    let mut bytes = text.into_bytes();
    let flip = third + bytes[third..].iter().position(|&b| b == b'7').unwrap();
    bytes[flip] = b'8';
    std::fs::write(&segment, bytes).unwrap();
    let (ok, out) = audit_verify(dir.path());
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "FINDING: access: Changed at record 2 ({} offset {third})",
            segment.display()
        )),
        "{out}"
    );
}

/// SIGINT is pingora's quick exit; the trail is still closed with a checkpoint over every
/// record, so nothing is left covered by the chain alone.
#[tokio::test(flavor = "multi_thread")]
async fn sigint_still_ends_with_a_checkpoint_over_every_record() {
    let (dir, mut gateway, _upstream) = gateway_after_gets(3).await;
    gateway.stop_with(Signal::SIGINT);
    let (ok, out) = audit_verify(dir.path());
    assert!(ok, "{out}");
    assert!(
        out.contains("access: 3 records, 1 checkpoints verified, signed up to record 3"),
        "{out}"
    );
    assert!(!out.contains("not yet covered"), "{out}");
}
