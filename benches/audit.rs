//! The audit store (issue: audit store): access records appended per second in batched mode
//! (goal ≥ 200,000/s on the 2-core machine), durable state appends per second (one caller,
//! and 64 at once sharing fsyncs), and `verify` speed (goal ≥ 1,000,000 records/s).
//! docs/performance.md has the figures.

// A benchmark whose set-up fails has nothing to measure: it stops loudly.
#![allow(clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use phr_gateway::audit::verify;
use phr_gateway::audit::{
    AccessRecord, AuditSink, Durability, OnFailure, Signer, StateEvent, StoreConfig,
};

fn config(dir: &Path, signer: Signer, queue_capacity: usize) -> StoreConfig {
    StoreConfig {
        dir: dir.to_path_buf(),
        node_id: Arc::from("bench-node"),
        origin: "bench.example/gw".into(),
        signer,
        checkpoint_every: 1000,
        checkpoint_interval: Duration::from_secs(10),
        segment_max_bytes: 64 << 20,
        sync_interval: Duration::from_millis(5),
        access_durability: Durability::Batched,
        on_failure: OnFailure::FailClosed,
        queue_capacity,
    }
}

/// A record as the proxy makes one for a routed, forwarded request.
fn record(i: u64) -> AccessRecord {
    AccessRecord {
        time: "2026-11-25T10:00:00.123456Z".into(),
        request_id: format!("01a213e1-2704-7409-945a-{i:012x}"),
        client: "192.0.2.77".into(),
        tls: Some("TLSv1.3"),
        method: "GET".into(),
        route: Some("observation-search".into()),
        template: Some("/fhir/Observation".into()),
        category: Some("vitals"),
        decision: "allow",
        status: 200,
        bytes_out: Some(1432),
        upstream_us: Some(412),
        total_us: 530,
        ..AccessRecord::default()
    }
}

const BATCH: u64 = 20_000;

fn batched_appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(BATCH));
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = AuditSink::open(config(
        dir.path(),
        Signer::generate("bench").expect("key"),
        BATCH as usize,
    ))
    .expect("store");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let records: Vec<AccessRecord> = (0..BATCH).map(record).collect();
    group.bench_function("batched access appends", |b| {
        b.iter_batched(
            || records.clone(),
            |records| {
                // Queue them as the proxy does, then wait until all are written, synced and
                // checkpointed: the writer's whole cost per record.
                for r in records {
                    sink.record_access_detached(r);
                }
                runtime.block_on(sink.checkpoint()).expect("checkpoint");
            },
            BatchSize::PerIteration,
        )
    });
    assert_eq!(
        sink.stats().access_lost,
        0,
        "the queue must hold a whole batch"
    );
    sink.close();
    group.finish();
}

fn durable_appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = AuditSink::open(config(
        dir.path(),
        Signer::generate("bench").expect("key"),
        1024,
    ))
    .expect("store");
    let event = StateEvent::PolicyLoaded {
        version: "sha256:00".into(),
        source: "policy.toml".into(),
        trigger: "reload".into(),
        previous: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    group.throughput(Throughput::Elements(1));
    group.bench_function("durable state append, one caller", |b| {
        b.iter(|| {
            runtime
                .block_on(sink.record_state(event.clone()))
                .expect("append")
        })
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("durable state appends, 64 callers", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let calls: Vec<_> = (0..64)
                    .map(|_| {
                        let sink = sink.clone();
                        let event = event.clone();
                        tokio::spawn(async move { sink.record_state(event).await })
                    })
                    .collect();
                for call in calls {
                    call.await.expect("task").expect("append");
                }
            })
        })
    });
    sink.close();
    group.finish();
}

fn verify_speed(c: &mut Criterion) {
    const RECORDS: u64 = 200_000;
    let mut group = c.benchmark_group("audit");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    let dir = tempfile::tempdir().expect("tempdir");
    let signer = Signer::generate("bench").expect("key");
    let key = signer.verifier();
    let sink = AuditSink::open(config(dir.path(), signer, RECORDS as usize)).expect("store");
    for i in 0..RECORDS {
        sink.record_access_detached(record(i));
    }
    sink.close();
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("verify", |b| {
        b.iter(|| {
            let report = verify::verify_store(dir.path(), &key).expect("verify");
            assert!(report.is_clean());
        })
    });
    group.finish();
}

criterion_group!(benches, batched_appends, durable_appends, verify_speed);
criterion_main!(benches);
