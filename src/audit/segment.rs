//! The files of one log: append-only segment files of records and the checkpoint file.
//!
//! ```text
//! <dir>/<log>/00000000000000000000.jsonl   records 0.. (named by the seq of their first record)
//! <dir>/<log>/00000000000000412345.jsonl   the next segment, after rotation by size
//! <dir>/<log>/checkpoints.jsonl            one line per signed checkpoint
//! <dir>/<log>/checkpoint                   the latest checkpoint note alone (C2SP text)
//! ```
//!
//! Segment files are opened for append only; nothing here rewrites a byte, except cutting a
//! torn last record at start (a write the crash cut short, recorded as an event).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::merkle::Hash;

/// The checkpoint file's name.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";
/// The latest-checkpoint file's name.
pub const LATEST_CHECKPOINT_FILE: &str = "checkpoint";
const SEGMENT_SUFFIX: &str = ".jsonl";

/// A segment file's name for the seq of its first record.
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// The first seq a segment file's name declares, if it is a segment name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The segments of a log directory, in order, as `(first seq, path)`.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(segments),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) {
            segments.push((first, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// One line of `checkpoints.jsonl`: the signed note plus what the writer needs to resume
/// without rereading the whole log (the tree's peaks and the chain value at `size`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRecord {
    /// Chain value of record `size - 1` (hex).
    pub chain: String,
    /// Peaks of the Merkle tree of `size` records (hex), largest first.
    pub peaks: Vec<String>,
    /// The C2SP checkpoint note.
    pub note: String,
    /// Records covered.
    pub size: u64,
    /// When it was made.
    pub time: String,
}

impl CheckpointRecord {
    /// The chain value as bytes.
    pub fn chain_hash(&self) -> Option<Hash> {
        decode_hash(&self.chain)
    }

    /// The peaks as bytes.
    pub fn peak_hashes(&self) -> Option<Vec<Hash>> {
        self.peaks.iter().map(|p| decode_hash(p)).collect()
    }
}

/// A hex SHA-256 value.
pub fn decode_hash(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok().map(|()| out)
}

/// Read every complete checkpoint line of a log; a torn last line is ignored (and cut by the
/// writer at start). Any other bad line is an error naming its line number.
pub fn read_checkpoints(dir: &Path) -> io::Result<Vec<CheckpointRecord>> {
    let path = dir.join(CHECKPOINTS_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    text[..complete]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_slice(line).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}:{}: {e}", path.display(), i + 1),
                )
            })
        })
        .collect()
}

/// The records of one log, in order, as JSON values (the `record` of each complete line),
/// for replaying the state log at start.
pub fn read_records(dir: &Path) -> io::Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for_each_record(dir, |record| {
        out.push(serde_json::from_slice(record).map_err(io::Error::other)?);
        Ok(())
    })?;
    Ok(out)
}

/// A state event with the time its envelope gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRecord {
    /// RFC 3339 time of the record.
    pub time: String,
    /// The event.
    pub event: super::StateEvent,
}

/// The state events start-up replays (revocations, controls, consents), typed, from a state log
/// directory. Every other event is skipped after reading only its name and time: start-up
/// reads the whole state log, most of it policy versions and admin calls. The records are
/// parsed on every core (in order-preserving chunks): parsing, not applying, is most of a
/// replay.
pub fn read_replayed_state(dir: &Path) -> io::Result<Vec<StateRecord>> {
    // Below this many records one thread is quicker than starting more.
    const PARALLEL_FROM: usize = 20_000;
    let mut files = Vec::new();
    for (_, path) in list_segments(dir)? {
        let bytes = std::fs::read(&path)?;
        files.push((path, bytes));
    }
    let mut records = Vec::new();
    for (path, bytes) in &files {
        records.extend(complete_records(path, bytes)?);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads == 1 || records.len() < PARALLEL_FROM {
        return parse_replayed(&records);
    }
    let chunk = records.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = records
            .chunks(chunk)
            .map(|part| scope.spawn(move || parse_replayed(part)))
            .collect();
        let mut out = Vec::new();
        for part in parts {
            out.extend(
                part.join()
                    .map_err(|_| io::Error::other("replay thread panicked"))??,
            );
        }
        Ok(out)
    })
}

/// The replayed events among `records`, in order.
fn parse_replayed(records: &[&[u8]]) -> io::Result<Vec<StateRecord>> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        event: &'a str,
        #[serde(borrow)]
        time: &'a str,
    }
    const REPLAYED: &[&str] = &[
        "session_ended",
        "subject_revoked",
        "token_revoked",
        "mode_changed",
        "subject_stopped",
        "subject_resumed",
        "consent_granted",
        "consent_withdrawn",
        "third_party_record",
    ];
    let mut out = Vec::new();
    for record in records {
        let head: Head<'_> = serde_json::from_slice(record).map_err(io::Error::other)?;
        if REPLAYED.contains(&head.event) {
            let time = head.time.to_owned();
            let event = serde_json::from_slice(record).map_err(io::Error::other)?;
            out.push(StateRecord { time, event });
        }
    }
    Ok(out)
}

/// Apply to `apply` the records whose event `wanted` selects; returns how many. The one loop
/// behind every replayer's `replay` (sessions, controls, consents).
pub fn replay_matching<'a>(
    records: impl IntoIterator<Item = &'a StateRecord>,
    wanted: impl Fn(&super::StateEvent) -> bool,
    mut apply: impl FnMut(&StateRecord),
) -> usize {
    let mut applied = 0;
    for record in records.into_iter().filter(|r| wanted(&r.event)) {
        apply(record);
        applied += 1;
    }
    applied
}

/// Call `f` with the record bytes of every complete line of every segment, in order.
fn for_each_record(dir: &Path, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    for (_, path) in list_segments(dir)? {
        let bytes = std::fs::read(&path)?;
        for record in complete_records(&path, &bytes)? {
            f(record)?;
        }
    }
    Ok(())
}

/// The record bytes of every complete line of one segment's `bytes`, in order.
fn complete_records<'b>(path: &Path, bytes: &'b [u8]) -> io::Result<Vec<&'b [u8]>> {
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes[..complete]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            super::record::parse_line(line)
                .map(|l| l.record)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: unreadable record", path.display()),
                    )
                })
        })
        .collect()
}

/// An append-only segment file being written.
#[derive(Debug)]
pub struct SegmentWriter {
    file: File,
    path: PathBuf,
    /// Bytes known to be completely written.
    len: u64,
    /// A write failed and its partial tail may still be in the file: cut before the next.
    /// Only then is the file's length asked for, not on every append.
    torn: bool,
}

impl SegmentWriter {
    /// Open (or create) a segment for appending. `len` is its length after recovery.
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        Ok(SegmentWriter {
            file,
            path,
            len,
            torn: false,
        })
    }

    /// The segment's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the segment.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append `bytes` (whole records). A failed write may leave part of them behind: that
    /// tail is cut before the error is returned, or at the next attempt.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.torn {
            self.cut_partial_write()?;
        }
        if let Err(e) = self.file.write_all(bytes) {
            self.torn = true;
            let _ = self.cut_partial_write();
            return Err(e);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn cut_partial_write(&mut self) -> io::Result<()> {
        if self.file.metadata()?.len() != self.len {
            self.file.set_len(self.len)?;
        }
        self.torn = false;
        Ok(())
    }

    /// Make everything appended so far durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Make a directory entry (a new segment, a renamed file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Append a checkpoint line and replace the latest-checkpoint file, both durably.
pub fn write_checkpoint(dir: &Path, record: &CheckpointRecord) -> io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(CHECKPOINTS_FILE))?;
    file.write_all(&line)?;
    file.sync_data()?;
    let latest = dir.join(LATEST_CHECKPOINT_FILE);
    let tmp = dir.join(".checkpoint.tmp");
    let mut tmp_file = File::create(&tmp)?;
    tmp_file.write_all(record.note.as_bytes())?;
    tmp_file.sync_data()?;
    std::fs::rename(&tmp, &latest)?;
    sync_dir(dir)
}

/// Cut a torn last line off `checkpoints.jsonl` (a crash during a checkpoint write).
pub fn cut_torn_checkpoint(dir: &Path) -> io::Result<()> {
    let path = dir.join(CHECKPOINTS_FILE);
    let Ok(text) = std::fs::read(&path) else {
        return Ok(());
    };
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete != text.len() {
        OpenOptions::new()
            .write(true)
            .open(&path)?
            .set_len(complete as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_first_seq() {
        assert_eq!(segment_name(42), "00000000000000000042.jsonl");
        assert_eq!(parse_segment_name("00000000000000000042.jsonl"), Some(42));
        assert_eq!(parse_segment_name("42.jsonl"), None);
        assert_eq!(parse_segment_name("checkpoints.jsonl"), None);
    }

    #[test]
    fn a_failed_append_leaves_no_partial_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::open(dir.path().join(segment_name(0))).unwrap();
        w.append(b"one\n").unwrap();
        // A partial record left by a failed write whose own cut failed too (a full disk,
        // an I/O error) is cut before the next append.
        std::fs::OpenOptions::new()
            .append(true)
            .open(w.path())
            .unwrap()
            .write_all(b"tor")
            .unwrap();
        w.torn = true;
        w.append(b"two\n").unwrap();
        assert_eq!(std::fs::read(w.path()).unwrap(), b"one\ntwo\n");
        assert_eq!(w.len(), 8);
    }
}
