//! The audit store on its own: records written through an `AuditSink` verify; every kind of
//! tampering is caught by `verify` at the right place; exports and proofs verify, edited ones
//! do not; a torn last record is cut at the next start and the cut recorded (R-LOG-2, R-OPS-3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use phr_gateway::audit::record::{self, LogKind};
use phr_gateway::audit::verify::{self, FindingKind, KeySource};
use phr_gateway::audit::{
    AccessRecord, AuditSink, Durability, OnFailure, Signer, StateEvent, StoreConfig, Verifier,
};

fn config(dir: &Path, signer: Signer, segment_max_bytes: u64) -> StoreConfig {
    StoreConfig {
        dir: dir.to_path_buf(),
        node_id: Arc::from("node-a"),
        origin: "test.example/gw".into(),
        signer,
        checkpoint_every: 64,
        checkpoint_interval: Duration::from_secs(60),
        segment_max_bytes,
        sync_interval: Duration::from_millis(2),
        access_durability: Durability::Batched,
        on_failure: OnFailure::FailClosed,
        queue_capacity: 1024,
    }
}

fn access(i: u64, time: &str) -> AccessRecord {
    access_from("req", i, time)
}

fn access_from(prefix: &str, i: u64, time: &str) -> AccessRecord {
    AccessRecord {
        time: time.into(),
        request_id: format!("{prefix}-{i}"),
        client: "192.0.2.7".into(),
        tls: Some("TLSv1.3"),
        method: "GET".into(),
        route: Some("patient-read".into()),
        template: Some("/fhir/Patient/{id}".into()),
        category: Some("account"),
        decision: "allow",
        status: 200,
        total_us: 100 + i,
        ..AccessRecord::default()
    }
}

/// Append access records `range` (all at `time`) and wait for each to be written.
fn append(sink: &AuditSink, range: std::ops::Range<u64>, time: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        for i in range {
            sink.record_access(access(i, time)).await.unwrap();
        }
    });
}

/// Record `n` policy versions in the state log.
fn record_policy_versions(sink: &AuditSink, n: u64) {
    for v in 0..n {
        sink.record_state_blocking(StateEvent::PolicyLoaded {
            version: format!("v{v}"),
            source: "policy.toml".into(),
            trigger: "start".into(),
            previous: None,
        })
        .unwrap();
    }
}

/// A closed store with `n` access records (times in minute `i / 100`) and a few state events.
fn store_with(dir: &Path, n: u64, segment_max_bytes: u64) -> Verifier {
    store_from("req", dir, n, segment_max_bytes)
}

fn store_from(prefix: &str, dir: &Path, n: u64, segment_max_bytes: u64) -> Verifier {
    let signer = Signer::generate("test.example/gw").unwrap();
    let verifier = signer.verifier();
    let sink = AuditSink::open(config(dir, signer, segment_max_bytes)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        for i in 0..n {
            let minute = i / 100;
            let time = format!("2026-11-25T10:{minute:02}:00.{i:06}Z");
            sink.record_access(access_from(prefix, i, &time))
                .await
                .unwrap();
        }
    });
    record_policy_versions(&sink, 3);
    sink.close();
    verifier
}

fn segments(dir: &Path, log: LogKind) -> Vec<PathBuf> {
    phr_gateway::audit::segment::list_segments(&dir.join(log.name()))
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

/// The one finding of a verification, with the seq it points at.
fn only_finding(dir: &Path, key: &Verifier) -> (FindingKind, Option<u64>, verify::Finding) {
    let report = verify::verify_store(dir, key).unwrap();
    assert_eq!(report.findings.len(), 1, "findings: {:#?}", report.findings);
    let f = report.findings[0].clone();
    (f.kind, f.at.seq, f)
}

#[test]
fn an_untouched_store_verifies_with_every_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let key = store_with(dir.path(), 300, 16 * 1024);
    let report = verify::verify_store(dir.path(), &key).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    let (_, access) = report
        .logs
        .iter()
        .find(|(l, _)| *l == LogKind::Access)
        .unwrap();
    assert_eq!(access.records, 300);
    // Every 64 records, plus the one at close.
    assert_eq!(access.checkpoints_verified, 300 / 64 + 1);
    assert_eq!(access.covered, 300);
    assert!(
        segments(dir.path(), LogKind::Access).len() > 2,
        "small segments rotate"
    );
    // The latest checkpoint is also kept as a plain C2SP note.
    let latest = std::fs::read_to_string(dir.path().join("access/checkpoint")).unwrap();
    assert!(
        latest.starts_with("test.example/gw/access\n300\n"),
        "{latest}"
    );
    assert_eq!(key.open(&latest).unwrap().size, 300);
    // A different key trusts nothing.
    let other = Signer::generate("test.example/gw").unwrap().verifier();
    let report = verify::verify_store(dir.path(), &other).unwrap();
    assert!(report
        .findings
        .iter()
        .all(|f| f.kind == FindingKind::Checkpoint));
    assert!(!report.is_clean());
}

#[test]
fn records_hold_the_template_not_the_path_and_are_canonical() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 3, 1 << 20);
    let first = &lines_of(&segments(dir.path(), LogKind::Access)[0])[0];
    let line = record::parse_line(first.as_bytes()).unwrap();
    let value: serde_json::Value = serde_json::from_slice(line.record).unwrap();
    assert_eq!(value["template"], "/fhir/Patient/{id}");
    assert_eq!(value["seq"], 0);
    assert_eq!(value["node"], "node-a");
    assert_eq!(value["v"], 1);
    assert_eq!(
        serde_json::to_vec(&value).unwrap(),
        line.record,
        "sorted keys, no spaces"
    );
    let state = &lines_of(&segments(dir.path(), LogKind::State)[0])[0];
    assert!(state.contains(r#""event":"policy_loaded""#), "{state}");
}

#[test]
fn a_flipped_byte_is_found_at_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let key = store_with(dir.path(), 200, 1 << 20);
    let segment = &segments(dir.path(), LogKind::Access)[0];
    let mut lines = lines_of(segment);
    lines[120] = lines[120].replace("\"status\":200", "\"status\":201");
    write_lines(segment, &lines);
    let offset: usize = lines[..120].iter().map(|l| l.len() + 1).sum();
    let (kind, seq, finding) = only_finding(dir.path(), &key);
    assert_eq!((kind, seq), (FindingKind::Changed, Some(120)));
    assert_eq!(finding.at.offset, Some(offset as u64));
}

#[test]
fn a_deleted_line_is_found_as_removed() {
    let dir = tempfile::tempdir().unwrap();
    let key = store_with(dir.path(), 200, 1 << 20);
    let segment = &segments(dir.path(), LogKind::Access)[0];
    let mut lines = lines_of(segment);
    lines.remove(50);
    write_lines(segment, &lines);
    let (kind, seq, _) = only_finding(dir.path(), &key);
    assert_eq!((kind, seq), (FindingKind::Removed, Some(50)));
}

#[test]
fn swapped_lines_are_found_as_reordered() {
    let dir = tempfile::tempdir().unwrap();
    let key = store_with(dir.path(), 200, 1 << 20);
    let segment = &segments(dir.path(), LogKind::Access)[0];
    let mut lines = lines_of(segment);
    lines.swap(10, 11);
    write_lines(segment, &lines);
    let (kind, seq, _) = only_finding(dir.path(), &key);
    assert_eq!((kind, seq), (FindingKind::Reordered, Some(10)));
}

#[test]
fn an_inserted_copy_is_found_as_inserted() {
    let dir = tempfile::tempdir().unwrap();
    let key = store_with(dir.path(), 200, 1 << 20);
    let segment = &segments(dir.path(), LogKind::Access)[0];
    let mut lines = lines_of(segment);
    let copy = lines[30].clone();
    lines.insert(31, copy);
    write_lines(segment, &lines);
    let (kind, seq, _) = only_finding(dir.path(), &key);
    assert_eq!((kind, seq), (FindingKind::Inserted, Some(31)));
}

#[test]
fn truncation_below_a_checkpoint_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let key = store_with(dir.path(), 200, 1 << 20);
    let segment = &segments(dir.path(), LogKind::Access)[0];
    let lines = lines_of(segment);
    write_lines(segment, &lines[..180]);
    let (kind, seq, finding) = only_finding(dir.path(), &key);
    assert_eq!((kind, seq), (FindingKind::Truncated, Some(180)));
    assert!(finding.detail.contains("covers 200"), "{}", finding.detail);
}

#[test]
fn a_replaced_segment_is_found_at_its_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let key = store_with(dir.path(), 300, 16 * 1024);
    // Another store, same layout, other content: its segment files have the same names.
    let other = tempfile::tempdir().unwrap();
    store_from("rep", other.path(), 300, 16 * 1024);
    let ours = segments(dir.path(), LogKind::Access);
    let theirs = segments(other.path(), LogKind::Access);
    std::fs::copy(&theirs[1], &ours[1]).unwrap();
    let first_seq = phr_gateway::audit::segment::parse_segment_name(
        ours[1].file_name().unwrap().to_str().unwrap(),
    )
    .unwrap();
    let (kind, seq, finding) = only_finding(dir.path(), &key);
    assert_eq!((kind, seq), (FindingKind::Changed, Some(first_seq)));
    assert_eq!(finding.at.offset, Some(0));
    assert!(finding
        .at
        .file
        .ends_with(ours[1].file_name().unwrap().to_str().unwrap()));
}

#[test]
fn a_rewritten_tail_with_a_consistent_chain_is_caught_by_the_signed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let key = store_with(dir.path(), 100, 1 << 20);
    // Recompute the chain after changing record 90, as someone who knows the format would.
    let segment = &segments(dir.path(), LogKind::Access)[0];
    let lines = lines_of(segment);
    let mut chain = record::parse_line(lines[89].as_bytes()).unwrap().chain;
    let mut out = lines[..90].to_vec();
    for (i, line) in lines[90..].iter().enumerate() {
        let body = record::parse_line(line.as_bytes()).unwrap().record.to_vec();
        let mut body = String::from_utf8(body).unwrap();
        if i == 0 {
            body = body.replace("\"status\":200", "\"status\":403");
        }
        let mut buf = body.into_bytes();
        chain = record::seal_line(&chain, &mut buf, 0);
        out.push(String::from_utf8(buf).unwrap().trim_end().to_owned());
    }
    write_lines(segment, &out);
    let (kind, _, finding) = only_finding(dir.path(), &key);
    assert_eq!(kind, FindingKind::Checkpoint);
    assert!(
        finding.detail.contains("does not match records 64 to 99"),
        "{}",
        finding.detail
    );
}

#[test]
fn an_export_verifies_on_its_own_and_an_edited_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let key = store_with(dir.path(), 400, 16 * 1024);
    let out = dir.path().join("export.jsonl");
    let summary = verify::export(
        dir.path(),
        "2026-11-25T10:01:00.000000Z",
        "2026-11-25T10:03:00.000000Z",
        &out,
        &key,
    )
    .unwrap();
    assert_eq!(summary.logs[0], (LogKind::Access, 100, 200));
    // Only the export file and the pinned key are needed.
    let alone = tempfile::tempdir().unwrap();
    let moved = alone.path().join("export.jsonl");
    std::fs::copy(&out, &moved).unwrap();
    let report = verify::verify_export(&moved, KeySource::Pinned(key.clone())).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.logs[0].1.records, 200);

    let text = std::fs::read_to_string(&moved).unwrap();
    let edited = text.replacen(
        "\"request_id\":\"req-150\"",
        "\"request_id\":\"req-999\"",
        1,
    );
    assert_ne!(edited, text);
    std::fs::write(&moved, edited).unwrap();
    let report = verify::verify_export(&moved, KeySource::Pinned(key.clone())).unwrap();
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    assert_eq!(report.findings[0].kind, FindingKind::Changed);
    assert_eq!(report.findings[0].at.seq, Some(150));

    // A key other than the store's proves nothing.
    let other = Signer::generate("test.example/gw").unwrap().verifier();
    std::fs::copy(&out, &moved).unwrap();
    let report = verify::verify_export(&moved, KeySource::Pinned(other)).unwrap();
    assert!(
        !report.is_clean(),
        "a foreign key must not verify the export"
    );
}

#[test]
fn inclusion_and_consistency_proofs_verify_and_forged_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let key = store_with(dir.path(), 150, 1 << 20);
    let proof = verify::inclusion_proof(dir.path(), LogKind::Access, 77, &key).unwrap();
    assert!(verify::verify_proof(&proof, &key).is_ok());
    let verify::Proof::Inclusion {
        log,
        seq,
        line,
        proof: hashes,
        checkpoint,
    } = proof
    else {
        panic!("not an inclusion proof")
    };
    let forged = verify::Proof::Inclusion {
        log,
        seq,
        line: line.replace("req-77", "req-78"),
        proof: hashes.clone(),
        checkpoint: checkpoint.clone(),
    };
    assert!(verify::verify_proof(&forged, &key).is_err());
    let moved = verify::Proof::Inclusion {
        log,
        seq: seq + 1,
        line,
        proof: hashes,
        checkpoint,
    };
    assert!(verify::verify_proof(&moved, &key).is_err());

    let consistency = verify::consistency_proof(dir.path(), LogKind::Access, 64, &key).unwrap();
    assert!(verify::verify_proof(&consistency, &key).is_ok());
    // The old root a proof names must be the one of the checkpoint at that size.
    let first_checkpoint =
        &phr_gateway::audit::segment::read_checkpoints(&dir.path().join("access")).unwrap()[0];
    let signed_old = key.open(&first_checkpoint.note).unwrap();
    let verify::Proof::Consistency { old_root, .. } = &consistency else {
        panic!()
    };
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(old_root)
            .unwrap(),
        signed_old.root
    );
    let verify::Proof::Consistency {
        log,
        old_size,
        proof,
        checkpoint,
        ..
    } = consistency
    else {
        panic!()
    };
    let forged = verify::Proof::Consistency {
        log,
        old_size,
        old_root: base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
        proof,
        checkpoint,
    };
    assert!(verify::verify_proof(&forged, &key).is_err());
}

#[test]
fn a_torn_last_record_is_cut_at_start_and_the_cut_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let signer_text = {
        let signer = Signer::generate("test.example/gw").unwrap();
        let text = signer.to_text();
        let sink = AuditSink::open(config(dir.path(), signer, 1 << 20)).unwrap();
        append(&sink, 0..10, "2026-11-25T10:00:00.000000Z");
        sink.close();
        text
    };
    // A crash in the middle of a write: half a record at the end.
    let segment = &segments(dir.path(), LogKind::Access)[0];
    let whole = std::fs::read(segment).unwrap();
    let mut torn = whole.clone();
    torn.extend_from_slice(&whole[..40]);
    std::fs::write(segment, &torn).unwrap();

    let signer = Signer::from_text(&signer_text).unwrap();
    let key = signer.verifier();
    let sink = AuditSink::open(config(dir.path(), signer, 1 << 20)).unwrap();
    assert_eq!(
        std::fs::read(segment).unwrap(),
        whole,
        "the torn bytes are cut, nothing else"
    );
    append(&sink, 10..11, "2026-11-25T10:00:01.000000Z");
    sink.close();
    let state = lines_of(&segments(dir.path(), LogKind::State)[0]);
    assert!(
        state
            .iter()
            .any(|l| l.contains(r#""event":"torn_record_cut""#) && l.contains(r#""bytes":40"#)),
        "{state:#?}"
    );
    let report = verify::verify_store(dir.path(), &key).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.logs[0].1.records, 11);
}

#[test]
fn a_store_shorter_than_its_checkpoint_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate("test.example/gw").unwrap();
    let text = signer.to_text();
    let sink = AuditSink::open(config(dir.path(), signer, 1 << 20)).unwrap();
    append(&sink, 0..20, "2026-11-25T10:00:00.000000Z");
    sink.close();
    let segment = &segments(dir.path(), LogKind::Access)[0];
    write_lines(segment, &lines_of(segment)[..5]);
    let err = AuditSink::open(config(
        dir.path(),
        Signer::from_text(&text).unwrap(),
        1 << 20,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("checkpoint covers 20"), "{err}");
}

#[test]
fn after_a_restart_the_counters_are_the_logs_heads_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate("test.example/gw").unwrap();
    let text = signer.to_text();
    let sink = AuditSink::open(config(dir.path(), signer, 1 << 20)).unwrap();
    append(&sink, 0..25, "2026-11-25T10:00:00.000000Z");
    sink.close();
    // Reopened, nothing new written yet: status and the checkpoint-lag alert see the whole
    // log, and the final checkpoint of the last stop covers all of it.
    let sink = AuditSink::open(config(
        dir.path(),
        Signer::from_text(&text).unwrap(),
        1 << 20,
    ))
    .unwrap();
    let stats = sink.stats();
    assert_eq!(stats.access_appended, 25);
    assert_eq!(stats.access_checkpoint, 25);
    append(&sink, 25..27, "2026-11-25T10:00:01.000000Z");
    assert_eq!(sink.stats().access_appended, 27);
    sink.close();
}

#[test]
fn state_events_written_by_the_writer_thread_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sink = AuditSink::open(config(
        dir.path(),
        Signer::generate("test.example/gw").unwrap(),
        1 << 20,
    ))
    .unwrap();
    record_policy_versions(&sink, 3);
    assert_eq!(sink.stats().state_appended, 3);
    sink.close();
}
