//! What an auditor runs: `audit verify` over a store or an export, `audit export`, and
//! `audit proof` (R-LOG-2, R-OPS-3). Nothing here trusts the gateway that wrote the files: a
//! record is accepted only if its chain links hold and a checkpoint signed by the pinned key
//! covers it.

use std::fmt;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::merkle::{self, CompactRange, Hash, RangeProof};
use super::note::{Checkpoint, Verifier};
use super::record::{self, LogKind, GENESIS_CHAIN};
use super::segment;

/// Why a verification could not be run at all (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The input is not what the command expects.
    #[error("{0}")]
    Invalid(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VerifyError + '_ {
    move |source| VerifyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where in the store something was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The log.
    pub log: LogKind,
    /// The record's position in the log (the seq it should have).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The file.
    pub file: String,
    /// Byte offset in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// What kind of damage was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A record's bytes differ from what was chained.
    Changed,
    /// Records are missing from the middle of the log.
    Removed,
    /// A record appears where it was not written (an extra or repeated record).
    Inserted,
    /// Records are out of order.
    Reordered,
    /// Records a signed checkpoint covers are missing from the end.
    Truncated,
    /// A line is not a record at all.
    Malformed,
    /// A checkpoint's signature does not verify, or it does not match the records.
    Checkpoint,
}

/// One thing `verify` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What.
    pub kind: FindingKind,
    /// Where.
    pub at: Location,
    /// In words.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.at.log.name(), self.kind)?;
        if let Some(seq) = self.at.seq {
            write!(f, " at record {seq}")?;
        }
        write!(f, " ({}", self.at.file)?;
        if let Some(offset) = self.at.offset {
            write!(f, " offset {offset}")?;
        }
        write!(f, "): {}", self.detail)
    }
}

/// The result of verifying one log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LogSummary {
    /// Records read.
    pub records: u64,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints_verified: u64,
    /// Size covered by the latest verified checkpoint.
    pub covered: u64,
}

/// The result of a verification.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Per log.
    pub logs: Vec<(LogKind, LogSummary)>,
    /// Damage found; empty when everything verified.
    pub findings: Vec<Finding>,
    /// Remarks that are not damage (records after the last checkpoint, a torn last line).
    pub notes: Vec<String>,
}

impl Report {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// A checkpoint line whose note verified.
struct SignedCheckpoint {
    line: usize,
    checkpoint: Checkpoint,
}

/// Read and check the signed checkpoints of a log directory.
fn signed_checkpoints(
    dir: &Path,
    kind: LogKind,
    key: &Verifier,
    findings: &mut Vec<Finding>,
) -> Result<Vec<SignedCheckpoint>, VerifyError> {
    let file = dir.join(segment::CHECKPOINTS_FILE);
    let at = |seq| Location {
        log: kind,
        seq,
        file: file.display().to_string(),
        offset: None,
    };
    let records = match segment::read_checkpoints(dir) {
        Ok(r) => r,
        Err(e) => {
            findings.push(Finding {
                kind: FindingKind::Checkpoint,
                at: at(None),
                detail: e.to_string(),
            });
            return Ok(Vec::new());
        }
    };
    let mut out: Vec<SignedCheckpoint> = Vec::new();
    for (i, cp) in records.iter().enumerate() {
        match open_checkpoint(key, &cp.note, kind) {
            Ok(checkpoint) if checkpoint.size == cp.size => {
                if out
                    .last()
                    .is_some_and(|prev| prev.checkpoint.size > checkpoint.size)
                {
                    findings.push(Finding {
                        kind: FindingKind::Checkpoint,
                        at: at(Some(checkpoint.size)),
                        detail: format!("line {}: checkpoint sizes go backwards", i + 1),
                    });
                }
                out.push(SignedCheckpoint {
                    line: i + 1,
                    checkpoint,
                });
            }
            Ok(_) => findings.push(Finding {
                kind: FindingKind::Checkpoint,
                at: at(Some(cp.size)),
                detail: format!(
                    "line {}: size beside the note differs from the signed size",
                    i + 1
                ),
            }),
            Err(e) => findings.push(Finding {
                kind: FindingKind::Checkpoint,
                at: at(Some(cp.size)),
                detail: format!("line {}: {e}", i + 1),
            }),
        }
    }
    Ok(out)
}

/// Check a note's signature and that it is a checkpoint of this kind of log.
fn open_checkpoint(key: &Verifier, note: &str, kind: LogKind) -> Result<Checkpoint, String> {
    let checkpoint = key.open(note).map_err(|e| e.to_string())?;
    if !checkpoint.origin.ends_with(&format!("/{}", kind.name())) {
        return Err(format!(
            "checkpoint origin {:?} is not a {} log",
            checkpoint.origin,
            kind.name()
        ));
    }
    Ok(checkpoint)
}

/// Verify a store directory: every chain link, every checkpoint signature and root.
pub fn verify_store(dir: &Path, key: &Verifier) -> Result<Report, VerifyError> {
    if !dir.join(LogKind::Access.name()).is_dir() && !dir.join(LogKind::State.name()).is_dir() {
        return Err(VerifyError::Invalid(format!(
            "{} is not an audit store (no access/ or state/ directory)",
            dir.display()
        )));
    }
    let mut report = Report::default();
    for kind in LogKind::ALL {
        let summary = verify_log(&dir.join(kind.name()), kind, key, &mut report)?;
        report.logs.push((kind, summary));
    }
    Ok(report)
}

fn verify_log(
    dir: &Path,
    kind: LogKind,
    key: &Verifier,
    report: &mut Report,
) -> Result<LogSummary, VerifyError> {
    let checkpoints = signed_checkpoints(dir, kind, key, &mut report.findings)?;
    let mut pending = checkpoints.iter().peekable();
    let mut summary = LogSummary::default();
    let mut tree = CompactRange::new();
    let mut chain = GENESIS_CHAIN;
    let mut expected = 0u64;
    let segments = segment::list_segments(dir).map_err(io_err(dir))?;
    let mut broken = false;
    'segments: for (index, (first, path)) in segments.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let file = path.display().to_string();
        let at = |seq, offset: usize| Location {
            log: kind,
            seq: Some(seq),
            file: file.clone(),
            offset: Some(offset as u64),
        };
        if *first != expected {
            report.findings.push(Finding {
                kind: if *first > expected {
                    FindingKind::Removed
                } else {
                    FindingKind::Inserted
                },
                at: at(expected, 0),
                detail: format!(
                    "segment is named for record {first} but record {expected} comes next"
                ),
            });
            broken = true;
            break;
        }
        let lines = split_lines(&bytes);
        // The leaf hashes do not depend on each other: a second core computes them while
        // this one follows the chain, which must go in order.
        let (leaves, pass) = std::thread::scope(|scope| {
            let hasher = scope.spawn(|| {
                lines
                    .iter()
                    .map(|(_, l)| l.map_or([0u8; 32], merkle::leaf_hash))
                    .collect::<Vec<_>>()
            });
            let pass = follow_chain(&lines, &mut chain, expected, index + 1 == segments.len());
            (hasher.join(), pass)
        });
        let leaves =
            leaves.map_err(|_| VerifyError::Invalid("the hashing thread failed".into()))?;
        for leaf in &leaves[..pass.valid] {
            tree.push(*leaf);
            expected += 1;
            while let Some(cp) = pending.next_if(|cp| cp.checkpoint.size <= expected) {
                check_root(cp, &tree, expected, kind, dir, report, &mut summary);
            }
        }
        match pass.stop {
            None => {}
            Some(Stop::Torn(offset)) => {
                report.notes.push(format!(
                    "{}: {file} ends in an incomplete record at offset {offset} (a write in progress or cut by a crash; the gateway cuts it at its next start)",
                    kind.name()
                ));
                break 'segments;
            }
            Some(Stop::Found(kind_found, offset, detail)) => {
                report.findings.push(Finding {
                    kind: kind_found,
                    at: at(expected, offset),
                    detail,
                });
                broken = true;
                break 'segments;
            }
        }
    }
    summary.records = expected;
    if !broken {
        if let Some(last) = checkpoints
            .last()
            .filter(|cp| cp.checkpoint.size > expected)
        {
            report.findings.push(Finding {
                kind: FindingKind::Truncated,
                at: Location {
                    log: kind,
                    seq: Some(expected),
                    file: segments.last().map_or_else(|| dir.display().to_string(), |(_, p)| p.display().to_string()),
                    offset: None,
                },
                detail: format!(
                    "the log ends after {expected} records but the signed checkpoint on line {} covers {}",
                    last.line, last.checkpoint.size
                ),
            });
        } else if expected > summary.covered {
            report.notes.push(format!(
                "{}: records {} to {} are not yet covered by a checkpoint (the gateway writes one every few seconds and at shutdown)",
                kind.name(),
                summary.covered,
                expected - 1
            ));
        }
    }
    Ok(summary)
}

/// Where the chain pass over a segment stopped, if it did.
enum Stop {
    /// The last line has no newline (only in the last segment).
    Torn(usize),
    /// Damage at this byte offset.
    Found(FindingKind, usize, String),
}

struct ChainPass {
    /// Lines, from the first, that continue the chain.
    valid: usize,
    stop: Option<Stop>,
}

/// Follow the chain through a segment's lines from record `first_seq` on, advancing `chain`.
fn follow_chain(
    lines: &[(usize, Option<&[u8]>)],
    chain: &mut Hash,
    first_seq: u64,
    last_segment: bool,
) -> ChainPass {
    for (n, &(offset, line)) in lines.iter().enumerate() {
        let expected = first_seq + n as u64;
        let stop = |stop| ChainPass {
            valid: n,
            stop: Some(stop),
        };
        let Some(parsed) = line.and_then(record::parse_line) else {
            if line.is_none() && last_segment {
                return stop(Stop::Torn(offset));
            }
            return stop(Stop::Found(
                FindingKind::Malformed,
                offset,
                "not a record line".into(),
            ));
        };
        if parsed.seq != expected {
            let next_seq = lines
                .get(n + 1)
                .and_then(|(_, l)| l.and_then(record::parse_line))
                .map(|l| l.seq);
            let (kind, detail) = if parsed.seq > expected && next_seq == Some(expected) {
                (
                    FindingKind::Reordered,
                    format!("record {} is before record {expected}", parsed.seq),
                )
            } else if parsed.seq > expected {
                (
                    FindingKind::Removed,
                    format!("records {expected} to {} are missing", parsed.seq - 1),
                )
            } else {
                (
                    FindingKind::Inserted,
                    format!(
                        "a record numbered {} appears where record {expected} belongs",
                        parsed.seq
                    ),
                )
            };
            return stop(Stop::Found(kind, offset, detail));
        }
        let computed = record::chain_hash(chain, parsed.record);
        if computed != parsed.chain {
            return stop(Stop::Found(
                FindingKind::Changed,
                offset,
                "the record's bytes do not match its chain hash (changed, or a record before it was)".into(),
            ));
        }
        *chain = computed;
    }
    ChainPass {
        valid: lines.len(),
        stop: None,
    }
}

fn check_root(
    cp: &SignedCheckpoint,
    tree: &CompactRange,
    size: u64,
    kind: LogKind,
    dir: &Path,
    report: &mut Report,
    summary: &mut LogSummary,
) {
    if cp.checkpoint.size != size {
        return;
    }
    if tree.root() == cp.checkpoint.root {
        summary.checkpoints_verified += 1;
        summary.covered = size;
    } else {
        report.findings.push(Finding {
            kind: FindingKind::Checkpoint,
            at: Location {
                log: kind,
                seq: Some(summary.covered),
                file: dir.join(segment::CHECKPOINTS_FILE).display().to_string(),
                offset: None,
            },
            detail: format!(
                "the signed checkpoint on line {} (size {size}) does not match records {} to {}: one of them was changed, or the log was rewritten",
                cp.line,
                summary.covered,
                size - 1
            ),
        });
    }
}

/// The lines of a segment as `(offset, Some(line))`, the last one `None` if it has no newline.
fn split_lines(bytes: &[u8]) -> Vec<(usize, Option<&[u8]>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        match memchr::memchr(b'\n', &bytes[offset..]) {
            Some(len) => {
                out.push((offset, Some(&bytes[offset..offset + len])));
                offset += len + 1;
            }
            None => {
                out.push((offset, None));
                break;
            }
        }
    }
    out
}

/// Every stored line of a log, in order, with its leaf hash.
fn read_log(dir: &Path) -> Result<Vec<Vec<u8>>, VerifyError> {
    let mut lines = Vec::new();
    for (_, path) in segment::list_segments(dir).map_err(io_err(dir))? {
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        lines.extend(
            split_lines(&bytes)
                .into_iter()
                .filter_map(|(_, l)| l.map(<[u8]>::to_vec)),
        );
    }
    Ok(lines)
}

/// The newest checkpoint of a log that verifies with `key`.
fn latest_checkpoint(
    dir: &Path,
    kind: LogKind,
    key: &Verifier,
) -> Result<(String, Checkpoint), VerifyError> {
    let records = segment::read_checkpoints(dir).map_err(io_err(dir))?;
    let last = records
        .last()
        .ok_or_else(|| VerifyError::Invalid(format!("{}: no checkpoint yet", dir.display())))?;
    let checkpoint = open_checkpoint(key, &last.note, kind).map_err(VerifyError::Invalid)?;
    Ok((last.note.clone(), checkpoint))
}

/// The first line of an export file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportHeader {
    format: String,
    v: u8,
    created: String,
    since: String,
    until: String,
    /// The verifier key of the store's checkpoints (pin it with `--key` rather than trusting it).
    key: String,
}

/// Introduces one log's records in an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportSection {
    log: LogKind,
    first_seq: u64,
    count: u64,
    /// Chain value before the first record.
    prev_chain: String,
    /// The signed checkpoint the records are checked against.
    checkpoint: String,
    /// Peaks of the tree before the first record (base64).
    before: Vec<String>,
    /// Subtree roots after the last record, up to the checkpoint's size (base64).
    after: Vec<String>,
}

const EXPORT_FORMAT: &str = "phr-gateway-audit-export";

/// What an export contains.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// Per log: first seq and record count exported.
    pub logs: Vec<(LogKind, u64, u64)>,
    /// Records in the window that no checkpoint covers yet, left out.
    pub left_out: u64,
}

/// Write a self-contained export of the records whose `time` is in `[since, until)`: the
/// records, the latest signed checkpoint of each log, the hashes that connect the records to
/// the checkpoint's root, and the public key. Times are in the records' own format.
pub fn export(
    dir: &Path,
    since: &str,
    until: &str,
    out: &Path,
    key: &Verifier,
) -> Result<ExportSummary, VerifyError> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).map_err(io_err(out))?);
    let mut summary = ExportSummary::default();
    let header = ExportHeader {
        format: EXPORT_FORMAT.into(),
        v: 1,
        created: record::now_rfc3339(),
        since: since.into(),
        until: until.into(),
        key: key.to_text(),
    };
    write_json_line(&mut file, &header, out)?;
    for kind in LogKind::ALL {
        let log_dir = dir.join(kind.name());
        let lines = read_log(&log_dir)?;
        let (note, checkpoint) = latest_checkpoint(&log_dir, kind, key)?;
        let covered = (checkpoint.size as usize).min(lines.len());
        let in_window = |line: &Vec<u8>| {
            record::parse_line(line)
                .and_then(|l| record::string_field(l.record, b"\"time\":"))
                .is_some_and(|t| t >= since && t < until)
        };
        let first = lines.iter().position(in_window);
        let last = lines.iter().rposition(in_window);
        let (from, to) = match (first, last) {
            (Some(f), Some(l)) => (f.min(covered), (l + 1).min(covered)),
            _ => (0, 0),
        };
        if let Some(l) = last {
            summary.left_out += (l + 1).saturating_sub(covered.max(from)) as u64;
        }
        let leaves: Vec<Hash> = lines[..covered]
            .iter()
            .map(|l| merkle::leaf_hash(l))
            .collect();
        let proof = merkle::range_proof(&leaves, from as u64, to as u64);
        let prev_chain = if from == 0 {
            GENESIS_CHAIN
        } else {
            record::parse_line(&lines[from - 1])
                .map(|l| l.chain)
                .ok_or_else(|| {
                    VerifyError::Invalid(format!(
                        "{}: record {} is unreadable; run audit verify",
                        kind.name(),
                        from - 1
                    ))
                })?
        };
        let section = ExportSection {
            log: kind,
            first_seq: from as u64,
            count: (to - from) as u64,
            prev_chain: hex::encode(prev_chain),
            checkpoint: note,
            before: proof.before.iter().map(|h| BASE64.encode(h)).collect(),
            after: proof.after.iter().map(|h| BASE64.encode(h)).collect(),
        };
        write_json_line(&mut file, &section, out)?;
        for line in &lines[from..to] {
            file.write_all(line)
                .and_then(|()| file.write_all(b"\n"))
                .map_err(io_err(out))?;
        }
        summary.logs.push((kind, from as u64, (to - from) as u64));
    }
    file.flush().map_err(io_err(out))?;
    file.get_ref().sync_all().map_err(io_err(out))?;
    Ok(summary)
}

fn write_json_line(
    file: &mut impl Write,
    value: &impl Serialize,
    path: &Path,
) -> Result<(), VerifyError> {
    serde_json::to_writer(&mut *file, value)
        .map_err(std::io::Error::other)
        .and_then(|()| file.write_all(b"\n"))
        .map_err(io_err(path))
}

/// The verifier key to check with: the pinned one, or the one the input carries.
pub enum KeySource {
    /// Given by the auditor (`--key`).
    Pinned(Verifier),
    /// Taken from the input itself; proves integrity only against whoever holds that key.
    FromInput,
}

/// Verify an export file.
pub fn verify_export(path: &Path, key: KeySource) -> Result<Report, VerifyError> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut lines = std::io::BufReader::new(file).split(b'\n');
    let mut next_line = |what: &str| -> Result<Vec<u8>, VerifyError> {
        lines
            .next()
            .ok_or_else(|| VerifyError::Invalid(format!("{}: ends before {what}", path.display())))?
            .map_err(io_err(path))
    };
    let header: ExportHeader = serde_json::from_slice(&next_line("the header")?).map_err(|e| {
        VerifyError::Invalid(format!("{}: not an export header: {e}", path.display()))
    })?;
    if header.format != EXPORT_FORMAT || header.v != 1 {
        return Err(VerifyError::Invalid(format!(
            "{}: not a version 1 phr-gateway export",
            path.display()
        )));
    }
    let mut report = Report::default();
    let key = match key {
        KeySource::Pinned(k) => k,
        KeySource::FromInput => {
            report.notes.push(format!(
                "checked with the key the export carries ({}); pin the key with --key to trust nothing in the file",
                header.key
            ));
            Verifier::from_text(&header.key).map_err(|e| VerifyError::Invalid(e.to_string()))?
        }
    };
    let file = path.display().to_string();
    for _ in LogKind::ALL {
        let section: ExportSection = serde_json::from_slice(&next_line("a log section")?)
            .map_err(|e| VerifyError::Invalid(format!("{file}: not a log section: {e}")))?;
        let kind = section.log;
        let at = |seq: u64| Location {
            log: kind,
            seq: Some(seq),
            file: file.clone(),
            offset: None,
        };
        let checkpoint = open_checkpoint(&key, &section.checkpoint, kind);
        let mut chain = segment::decode_hash(&section.prev_chain)
            .ok_or_else(|| VerifyError::Invalid(format!("{file}: bad prev_chain")))?;
        let mut leaves = Vec::with_capacity(section.count as usize);
        let mut damaged = false;
        for i in 0..section.count {
            let seq = section.first_seq + i;
            let line = next_line("the end of its records")?;
            if damaged {
                continue;
            }
            let finding = match record::parse_line(&line) {
                None => Some((FindingKind::Malformed, "not a record line".to_owned())),
                Some(l) if l.seq != seq => Some((
                    if l.seq > seq {
                        FindingKind::Removed
                    } else {
                        FindingKind::Inserted
                    },
                    format!("record {} where record {seq} belongs", l.seq),
                )),
                Some(l) if record::chain_hash(&chain, l.record) != l.chain => Some((
                    FindingKind::Changed,
                    "the record's bytes do not match its chain hash".into(),
                )),
                Some(l) => {
                    chain = l.chain;
                    leaves.push(merkle::leaf_hash(&line));
                    None
                }
            };
            if let Some((kind_found, detail)) = finding {
                report.findings.push(Finding {
                    kind: kind_found,
                    at: at(seq),
                    detail,
                });
                damaged = true;
            }
        }
        let checkpoint = match checkpoint {
            Ok(c) => c,
            Err(e) => {
                report.findings.push(Finding {
                    kind: FindingKind::Checkpoint,
                    at: at(section.first_seq),
                    detail: e,
                });
                continue;
            }
        };
        if damaged {
            continue;
        }
        let decode = |v: &[String]| -> Option<Vec<Hash>> {
            v.iter()
                .map(|h| BASE64.decode(h).ok().and_then(|b| b.try_into().ok()))
                .collect()
        };
        let proof = decode(&section.before)
            .zip(decode(&section.after))
            .map(|(before, after)| RangeProof { before, after });
        let root = proof
            .and_then(|p| merkle::root_from_range(section.first_seq, &leaves, checkpoint.size, &p));
        if root == Some(checkpoint.root) {
            report.logs.push((
                kind,
                LogSummary {
                    records: section.count,
                    checkpoints_verified: 1,
                    covered: checkpoint.size,
                },
            ));
        } else {
            report.findings.push(Finding {
                kind: FindingKind::Checkpoint,
                at: at(section.first_seq),
                detail: format!(
                    "records {} to {} do not hash to the root signed for size {}",
                    section.first_seq,
                    section.first_seq + section.count,
                    checkpoint.size
                ),
            });
        }
    }
    if lines.next().is_some() {
        report.findings.push(Finding {
            kind: FindingKind::Inserted,
            at: Location {
                log: LogKind::State,
                seq: None,
                file,
                offset: None,
            },
            detail: "lines after the last section".into(),
        });
    }
    Ok(report)
}

/// An inclusion or consistency proof as `audit proof` prints it and `audit verify --proof`
/// reads it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Proof {
    /// Record `seq` is in the tree the checkpoint signs.
    Inclusion {
        /// The log.
        log: LogKind,
        /// The record.
        seq: u64,
        /// The record's stored line.
        line: String,
        /// Sibling hashes, leaf to root (base64).
        proof: Vec<String>,
        /// The signed checkpoint.
        checkpoint: String,
    },
    /// The tree of `old_size` records is a prefix of the one the checkpoint signs.
    Consistency {
        /// The log.
        log: LogKind,
        /// The earlier size.
        old_size: u64,
        /// The earlier root (base64); compare it with the checkpoint you kept.
        old_root: String,
        /// Proof hashes (base64).
        proof: Vec<String>,
        /// The signed checkpoint.
        checkpoint: String,
    },
}

/// The latest checkpoint of a log and the records it covers: what every proof is made from.
struct Covered {
    note: String,
    checkpoint: Checkpoint,
    lines: Vec<Vec<u8>>,
    leaves: Vec<Hash>,
}

fn covered_leaves(dir: &Path, log: LogKind, key: &Verifier) -> Result<Covered, VerifyError> {
    let log_dir = dir.join(log.name());
    let (note, checkpoint) = latest_checkpoint(&log_dir, log, key)?;
    let lines = read_log(&log_dir)?;
    if checkpoint.size as usize > lines.len() {
        return Err(VerifyError::Invalid(format!(
            "the {} log is shorter than its latest checkpoint (size {}); run audit verify",
            log.name(),
            checkpoint.size
        )));
    }
    let leaves = lines[..checkpoint.size as usize]
        .iter()
        .map(|l| merkle::leaf_hash(l))
        .collect();
    Ok(Covered {
        note,
        checkpoint,
        lines,
        leaves,
    })
}

fn encode_all(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| BASE64.encode(h)).collect()
}

/// An inclusion proof of record `seq` against the latest checkpoint.
pub fn inclusion_proof(
    dir: &Path,
    log: LogKind,
    seq: u64,
    key: &Verifier,
) -> Result<Proof, VerifyError> {
    let Covered {
        note,
        checkpoint,
        lines,
        leaves,
    } = covered_leaves(dir, log, key)?;
    if seq >= checkpoint.size {
        return Err(VerifyError::Invalid(format!(
            "record {seq} is not covered by the latest checkpoint (size {}); wait for the next one",
            checkpoint.size
        )));
    }
    Ok(Proof::Inclusion {
        log,
        seq,
        line: String::from_utf8_lossy(&lines[seq as usize]).into_owned(),
        proof: encode_all(&merkle::inclusion_proof(&leaves, seq as usize)),
        checkpoint: note,
    })
}

/// A consistency proof from `old_size` records to the latest checkpoint.
pub fn consistency_proof(
    dir: &Path,
    log: LogKind,
    old_size: u64,
    key: &Verifier,
) -> Result<Proof, VerifyError> {
    let Covered {
        note,
        checkpoint,
        leaves,
        ..
    } = covered_leaves(dir, log, key)?;
    if old_size == 0 || old_size > checkpoint.size {
        return Err(VerifyError::Invalid(format!(
            "old size must be between 1 and the latest checkpoint's size {}",
            checkpoint.size
        )));
    }
    Ok(Proof::Consistency {
        log,
        old_size,
        old_root: BASE64.encode(merkle::root_of(&leaves[..old_size as usize])),
        proof: encode_all(&merkle::consistency_proof(&leaves, old_size as usize)),
        checkpoint: note,
    })
}

/// Check a proof: the checkpoint's signature by `key`, then the proof against its root.
/// Returns what was proven, in words.
pub fn verify_proof(proof: &Proof, key: &Verifier) -> Result<String, String> {
    let decode = |v: &[String]| -> Result<Vec<Vec<u8>>, String> {
        v.iter()
            .map(|h| {
                BASE64
                    .decode(h)
                    .map_err(|_| "proof hash is not base64".to_owned())
            })
            .collect()
    };
    match proof {
        Proof::Inclusion {
            log,
            seq,
            line,
            proof,
            checkpoint,
        } => {
            let cp = open_checkpoint(key, checkpoint, *log)?;
            let hashes = decode(proof)?;
            let refs: Vec<&[u8]> = hashes.iter().map(Vec::as_slice).collect();
            let leaf = merkle::leaf_hash(line.as_bytes());
            let numbered = record::parse_line(line.as_bytes()).map(|l| l.seq) == Some(*seq);
            if numbered && merkle::verify_inclusion(*seq, cp.size, &leaf, &refs, &cp.root) {
                Ok(format!(
                    "record {seq} of the {} log is included in the signed tree of size {}",
                    log.name(),
                    cp.size
                ))
            } else {
                Err(format!("the inclusion proof of record {seq} does not verify against the checkpoint of size {}", cp.size))
            }
        }
        Proof::Consistency {
            log,
            old_size,
            old_root,
            proof,
            checkpoint,
        } => {
            let cp = open_checkpoint(key, checkpoint, *log)?;
            let hashes = decode(proof)?;
            let refs: Vec<&[u8]> = hashes.iter().map(Vec::as_slice).collect();
            let old = BASE64
                .decode(old_root)
                .map_err(|_| "old_root is not base64".to_owned())?;
            if merkle::verify_consistency(*old_size, cp.size, &old, &cp.root, &refs) {
                Ok(format!(
                    "the {} log of size {old_size} (root {old_root}) is a prefix of the signed tree of size {}",
                    log.name(),
                    cp.size
                ))
            } else {
                Err(format!(
                    "the consistency proof from size {old_size} to {} does not verify",
                    cp.size
                ))
            }
        }
    }
}

/// The verifier key: from `--key` when given, else the store's `checkpoint-key.pub`.
pub fn store_key(
    dir: &Path,
    pinned: Option<&Path>,
) -> Result<(Verifier, Option<PathBuf>), VerifyError> {
    let (path, from_store) = match pinned {
        Some(p) => (p.to_path_buf(), false),
        None => (dir.join(PUBLIC_KEY_FILE), true),
    };
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let key = Verifier::from_text(&text)
        .map_err(|e| VerifyError::Invalid(format!("{}: {e}", path.display())))?;
    Ok((key, from_store.then_some(path)))
}

/// The copy of the public key the store keeps for convenience (an auditor pins their own).
pub const PUBLIC_KEY_FILE: &str = "checkpoint-key.pub";
