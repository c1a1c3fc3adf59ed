//! The consent ledger (issue: access): the acquisition check with 1,000,000 consents in the
//! ledger (goal: under 1 µs per decision), and replay at start of 1,000,000 state events read
//! from a segment file in the store's own line format, through every replay the gateway does
//! at start (goal: under 5 s). docs/performance.md
//! has the figures.

// A benchmark whose set-up fails has nothing to measure: it stops loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

// The gateway's own allocator (src/main.rs): start-up's replay allocates per event.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use phr_gateway::audit::record::{seal_line, GENESIS_CHAIN};
use phr_gateway::audit::StateEvent;
use phr_gateway::consent::{ConsentKind, ConsentLedger};
use phr_gateway::policy::DataCategory;

/// A million under `cargo bench`; a thousand when `cargo test --benches` runs it once as a
/// smoke test (unoptimised, where a million would take minutes).
fn consents() -> u64 {
    if std::env::args().any(|a| a == "--bench") {
        1_000_000
    } else {
        1_000
    }
}

fn event(i: u64) -> StateEvent {
    StateEvent::ConsentGranted {
        consent: format!("0190a000-0000-7000-8000-{i:012}"),
        subject: format!("patient-{i}"),
        kind: ConsentKind::Acquisition,
        categories: vec![DataCategory::Vitals],
        purpose: "self-management".into(),
        recipient: None,
        country: None,
    }
}

fn bench(c: &mut Criterion) {
    let consents = consents();
    let ledger = ConsentLedger::default();
    for i in 0..consents {
        ledger.apply(&event(i), "2026-11-25T10:00:00.000000Z");
    }
    let mut group = c.benchmark_group("consent");
    let mut i = 0u64;
    group.bench_function("acquisition check, 1M consents, spread", |b| {
        b.iter(|| {
            i = i.wrapping_add(2_654_435_761) % consents;
            let subject = format!("patient-{i}");
            assert!(ledger.allows_acquisition(
                black_box(&subject),
                DataCategory::Vitals,
                Some("self-management")
            ));
        })
    });
    group.bench_function("acquisition check, 1M consents, refused", |b| {
        b.iter(|| {
            assert!(!ledger.allows_acquisition(
                black_box("patient-none"),
                DataCategory::Vitals,
                Some("self-management")
            ))
        })
    });
    group.finish();

    // Replay: a state log of 1,000,000 consent events, as the gateway reads it at start.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = Vec::with_capacity(400 * consents as usize);
    let mut chain = GENESIS_CHAIN;
    for seq in 0..consents {
        let start = bytes.len();
        event(seq)
            .write_body(seq, "2026-11-25T10:00:00.000000Z", "bench", &mut bytes)
            .expect("record");
        chain = seal_line(&chain, &mut bytes, start);
    }
    std::fs::write(dir.path().join("00000000000000000000.jsonl"), &bytes).expect("write");
    let mut runs = Vec::new();
    let mut reads = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        // What the gateway does at start: read the state log, replay revocations, controls and
        // consents from it.
        let events = phr_gateway::audit::segment::read_replayed_state(dir.path()).expect("read");
        reads.push(started.elapsed());
        let sessions = phr_gateway::identity::SessionRegistry::default();
        let controls = phr_gateway::controls::Controls::default();
        let fresh = ConsentLedger::default();
        assert_eq!(sessions.replay(&events), 0);
        assert_eq!(controls.replay(&events), 0);
        let applied = fresh.replay(events);
        assert_eq!(applied as u64, consents);
        runs.push(started.elapsed());
    }
    runs.sort();
    reads.sort();
    eprintln!(
        "replay of {consents} consent events ({} MiB): median {:?} (runs {:?}); of which reading and parsing: median {:?}",
        bytes.len() / (1 << 20),
        runs[runs.len() / 2],
        runs,
        reads[reads.len() / 2]
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
