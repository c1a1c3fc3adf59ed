//! The store's one writer thread: takes records off the bounded queue, seals them into the
//! hash chain and the Merkle tree, writes them in groups, syncs them, and signs checkpoints.
//!
//! Group commit: every record waiting in the queue when the writer wakes goes out in one
//! `write(2)` per log. State events are synced before their callers hear back (durable).
//! Access records are acknowledged once written (the process can die without losing them)
//! and synced at most `sync_interval` later (batched), unless the policy asks for durable
//! access records too. A checkpoint never covers a record that is not synced.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::merkle::{leaf_hash, CompactRange, Hash};
use super::note::Signer;
use super::record::{self, AccessRecord, LogKind, StateEvent, GENESIS_CHAIN};
use super::segment::{self, CheckpointRecord, SegmentWriter};
use super::{AuditError, Durability, Shared, StoreConfig};

/// Most records taken off the queue per group.
const MAX_GROUP: usize = 4096;

pub(super) type Ack = oneshot::Sender<Result<u64, AuditError>>;

/// What the writer is asked to do.
// Access records are nearly every command: boxing them would cost an allocation per request
// to save queue slots that are allocated once.
#[allow(clippy::large_enum_variant)]
pub(super) enum Command {
    Access(AccessRecord, Option<Ack>),
    State(StateEvent, Ack),
    /// Sync both logs and checkpoint whatever is not yet covered.
    Checkpoint(oneshot::Sender<()>),
    /// Write what is queued, checkpoint, and stop.
    Shutdown(oneshot::Sender<()>),
}

/// One log being written.
struct Log {
    kind: LogKind,
    dir: PathBuf,
    origin: String,
    segment: SegmentWriter,
    next_seq: u64,
    chain: Hash,
    tree: CompactRange,
    /// Lines staged for the next write, and the seq of the first of them.
    staged: Vec<u8>,
    staged_first: u64,
    /// Where the log stood before the staged lines, to roll back a failed write.
    committed: (u64, Hash, CompactRange),
    synced_seq: u64,
    checkpointed: u64,
    last_checkpoint: Instant,
    last_sync: Instant,
}

impl Log {
    /// Open a log for appending, after checking its tail against its last checkpoint and cutting
    /// a torn last record.
    fn open(
        dir: &Path,
        kind: LogKind,
        origin: String,
        cuts: &mut Vec<StateEvent>,
    ) -> Result<Self, AuditError> {
        let dir = dir.join(kind.name());
        let corrupt = |detail: String| AuditError::Corrupt {
            log: kind.name(),
            detail,
        };
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| AuditError::Io {
                path,
                source: Arc::new(source),
            }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        segment::cut_torn_checkpoint(&dir).map_err(io(&dir))?;
        let checkpoints = segment::read_checkpoints(&dir).map_err(io(&dir))?;
        let last = checkpoints.last();
        let (mut seq, mut chain, mut tree) = match last {
            Some(cp) => {
                let chain = cp
                    .chain_hash()
                    .ok_or_else(|| corrupt("last checkpoint has a bad chain value".into()))?;
                let tree = cp
                    .peak_hashes()
                    .and_then(|peaks| CompactRange::from_peaks(cp.size, peaks))
                    .ok_or_else(|| corrupt("last checkpoint has bad tree peaks".into()))?;
                (cp.size, chain, tree)
            }
            None => (0, GENESIS_CHAIN, CompactRange::new()),
        };
        let checkpointed = seq;
        let segments = segment::list_segments(&dir).map_err(io(&dir))?;
        // Replay the records after the last checkpoint: from the segment that holds it on.
        let from = segments
            .iter()
            .rposition(|(first, _)| *first <= seq)
            .unwrap_or(0);
        let mut replayed_to = if segments.is_empty() {
            0
        } else {
            segments[from].0
        };
        for (index, (first, path)) in segments.iter().enumerate().skip(from) {
            let is_last = index + 1 == segments.len();
            let bytes = std::fs::read(path).map_err(io(path))?;
            if *first != replayed_to && *first > seq {
                return Err(corrupt(format!(
                    "{} should start at record {replayed_to}",
                    path.display()
                )));
            }
            let mut offset = 0usize;
            while offset < bytes.len() {
                let end = bytes[offset..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map(|i| offset + i);
                let parsed = end.and_then(|end| record::parse_line(&bytes[offset..end]));
                let Some((end, line)) = end.zip(parsed) else {
                    if is_last {
                        // A torn last record: the write the crash interrupted. Nobody was told
                        // it was written, so cutting it loses nothing acknowledged.
                        let cut = (bytes.len() - offset) as u64;
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(path)
                            .and_then(|f| f.set_len(offset as u64))
                            .map_err(io(path))?;
                        tracing::warn!(log = kind.name(), segment = %path.display(), offset, bytes = cut, "cut a torn last record");
                        cuts.push(StateEvent::TornRecordCut {
                            log: kind,
                            segment: path.display().to_string(),
                            offset: offset as u64,
                            bytes: cut,
                        });
                        break;
                    }
                    return Err(corrupt(format!(
                        "{} offset {offset}: unreadable record before the end of the log; run `phr-gateway audit verify`",
                        path.display()
                    )));
                };
                if line.seq >= checkpointed {
                    if line.seq != seq || record::chain_hash(&chain, line.record) != line.chain {
                        return Err(corrupt(format!(
                            "{} offset {offset}: record {} does not continue the chain at {seq}; run `phr-gateway audit verify`",
                            path.display(),
                            line.seq
                        )));
                    }
                    tree.push(leaf_hash(&bytes[offset..end]));
                    chain = line.chain;
                    seq += 1;
                }
                replayed_to = line.seq + 1;
                offset = end + 1;
            }
        }
        if seq < checkpointed || (checkpointed > 0 && replayed_to < checkpointed) {
            return Err(corrupt(format!(
                "the log ends at record {replayed_to} but a signed checkpoint covers {checkpointed}: records were removed; run `phr-gateway audit verify`"
            )));
        }
        let path = match segments.last() {
            Some((_, path)) => path.clone(),
            None => dir.join(segment::segment_name(0)),
        };
        let segment = SegmentWriter::open(path.clone()).map_err(io(&path))?;
        segment::sync_dir(&dir).map_err(io(&dir))?;
        let now = Instant::now();
        Ok(Log {
            kind,
            dir,
            origin,
            segment,
            next_seq: seq,
            chain,
            committed: (seq, chain, tree.clone()),
            tree,
            staged: Vec::with_capacity(64 * 1024),
            staged_first: seq,
            synced_seq: seq,
            checkpointed,
            last_checkpoint: now,
            last_sync: now,
        })
    }

    /// Seal one record into the staged lines; `write` appends its canonical JSON.
    fn stage(
        &mut self,
        write: impl FnOnce(u64, &mut Vec<u8>) -> serde_json::Result<()>,
    ) -> Result<u64, AuditError> {
        if self.staged.is_empty() {
            self.staged_first = self.next_seq;
        }
        let start = self.staged.len();
        if let Err(e) = write(self.next_seq, &mut self.staged) {
            self.staged.truncate(start);
            return Err(AuditError::Encode(e.to_string()));
        }
        self.chain = record::seal_line(&self.chain, &mut self.staged, start);
        let line_end = self.staged.len() - 1;
        self.tree.push(leaf_hash(&self.staged[start..line_end]));
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Write the staged lines; on failure the log is as before they were staged.
    fn write_staged(&mut self, segment_max: u64) -> std::io::Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let result = self
            .rotate_if_full(segment_max)
            .and_then(|()| self.segment.append(&self.staged));
        match result {
            Ok(()) => {
                self.committed = (self.next_seq, self.chain, self.tree.clone());
            }
            Err(_) => {
                (self.next_seq, self.chain, self.tree) = self.committed.clone();
            }
        }
        self.staged.clear();
        result
    }

    fn rotate_if_full(&mut self, segment_max: u64) -> std::io::Result<()> {
        if self.segment.len() < segment_max || self.segment.is_empty() {
            return Ok(());
        }
        // The old segment is complete: make it durable before records go elsewhere.
        self.sync()?;
        let path = self.dir.join(segment::segment_name(self.staged_first));
        self.segment = SegmentWriter::open(path)?;
        segment::sync_dir(&self.dir)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.synced_seq != self.next_seq {
            self.segment.sync()?;
            self.synced_seq = self.next_seq;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    fn checkpoint_due(&self, config: &StoreConfig) -> bool {
        let pending = self.next_seq - self.checkpointed;
        pending > 0
            && (pending >= config.checkpoint_every
                || self.last_checkpoint.elapsed() >= config.checkpoint_interval)
    }

    /// Sync, then sign and write a checkpoint over everything written.
    fn checkpoint(&mut self, signer: &Signer) -> std::io::Result<()> {
        self.sync()?;
        let size = self.next_seq;
        let record = CheckpointRecord {
            chain: hex::encode(self.chain),
            peaks: self.tree.peaks().iter().map(hex::encode).collect(),
            note: signer.sign_checkpoint(&self.origin, size, &self.tree.root()),
            size,
            time: record::now_rfc3339(),
        };
        segment::write_checkpoint(&self.dir, &record)?;
        self.checkpointed = size;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

/// The writer's state.
pub(super) struct Writer {
    config: Arc<StoreConfig>,
    shared: Arc<Shared>,
    access: Log,
    state: Log,
    /// Acks for access records written but waiting for the sync (durable access mode) and
    /// state events waiting for theirs.
    waiting_access: Vec<(u64, Ack)>,
    waiting_state: Vec<(u64, Ack)>,
    outage: Option<Outage>,
    /// Writes and syncs that failed since start.
    failures: u64,
}

struct Outage {
    since: String,
    error: String,
    lost_at_start: u64,
}

impl Writer {
    /// Open both logs (recovering them) and record what recovery did.
    pub(super) fn open(config: Arc<StoreConfig>, shared: Arc<Shared>) -> Result<Self, AuditError> {
        let mut cuts = Vec::new();
        let access = Log::open(
            &config.dir,
            LogKind::Access,
            format!("{}/access", config.origin),
            &mut cuts,
        )?;
        let state = Log::open(
            &config.dir,
            LogKind::State,
            format!("{}/state", config.origin),
            &mut cuts,
        )?;
        // The counters start at the logs' sizes, so they are each log's head, not a count
        // since start (what status and the checkpoint-lag alert compare).
        for log in [&access, &state] {
            shared.appended[log.kind.index()].store(log.next_seq, Ordering::Relaxed);
            shared.checkpoints[log.kind.index()].store(log.checkpointed, Ordering::Release);
        }
        let mut writer = Writer {
            config,
            shared,
            access,
            state,
            waiting_access: Vec::new(),
            waiting_state: Vec::new(),
            outage: None,
            failures: 0,
        };
        for cut in &cuts {
            writer.append_state_now(cut)?;
        }
        Ok(writer)
    }

    /// Append a state event and sync it, outside the thread (at open).
    pub(super) fn append_state_now(&mut self, event: &StateEvent) -> Result<u64, AuditError> {
        let node = self.config.node_id.clone();
        let time = record::now_rfc3339();
        let seq = self
            .state
            .stage(|seq, out| event.write_body(seq, &time, &node, out))?;
        self.state
            .write_staged(self.config.segment_max_bytes)
            .and_then(|()| self.state.sync())
            .map_err(|e| AuditError::Unavailable(e.to_string()))?;
        self.shared.appended[LogKind::State.index()].fetch_add(1, Ordering::Relaxed);
        Ok(seq)
    }

    /// The thread's loop; returns when every sink is gone.
    pub(super) fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("audit writer cannot start its timer runtime: {e}");
                self.shared.available.store(false, Ordering::Release);
                return;
            }
        };
        runtime.block_on(async move {
            let mut group = Vec::with_capacity(MAX_GROUP);
            let mut stopped = Vec::new();
            loop {
                let wait = self.next_wakeup();
                let open = tokio::select! {
                    n = queue.recv_many(&mut group, MAX_GROUP) => n > 0,
                    _ = tokio::time::sleep(wait) => true,
                };
                if !group.is_empty() {
                    // Woken by the first record: let the proxy threads run first, so that one
                    // write, one wake-up and one context switch serve many records rather than
                    // one (on a shared core this halves the audit's cost per request).
                    std::thread::yield_now();
                    while group.len() < MAX_GROUP {
                        match queue.try_recv() {
                            Ok(command) => group.push(command),
                            Err(_) => break,
                        }
                    }
                }
                stopped.extend(self.process(&mut group));
                if !open || !stopped.is_empty() {
                    break;
                }
            }
            queue.close();
            while let Ok(command) = queue.try_recv() {
                group.push(command);
            }
            stopped.extend(self.process(&mut group));
            if let Err(e) = self.checkpoint_all(true) {
                tracing::error!("final audit checkpoint failed: {e}");
            }
            for done in stopped {
                let _ = done.send(());
            }
        });
    }

    fn next_wakeup(&self) -> Duration {
        let mut wait = self.config.checkpoint_interval;
        if self.access.synced_seq != self.access.next_seq {
            wait = wait.min(
                self.config
                    .sync_interval
                    .saturating_sub(self.access.last_sync.elapsed()),
            );
        }
        wait.max(Duration::from_millis(1))
    }

    /// Write one group of commands and everything that is due. Returns the shutdown requests.
    fn process(&mut self, group: &mut Vec<Command>) -> Vec<oneshot::Sender<()>> {
        let mut written_access = Vec::new();
        let mut checkpoint_requests = Vec::new();
        let mut shutdown = Vec::new();
        let node = Arc::clone(&self.config.node_id);
        let time = record::now_rfc3339();
        for command in group.drain(..) {
            match command {
                Command::Access(access, ack) => {
                    match self
                        .access
                        .stage(|seq, out| access.write_body(seq, &node, out))
                    {
                        Ok(seq) => written_access.push((seq, ack)),
                        Err(e) => reply(ack, Err(e)),
                    }
                }
                Command::State(event, ack) => {
                    match self
                        .state
                        .stage(|seq, out| event.write_body(seq, &time, &node, out))
                    {
                        Ok(seq) => self.waiting_state.push((seq, ack)),
                        Err(e) => {
                            let _ = ack.send(Err(e));
                        }
                    }
                }
                Command::Checkpoint(done) => checkpoint_requests.push(done),
                Command::Shutdown(done) => shutdown.push(done),
            }
        }

        let segment_max = self.config.segment_max_bytes;
        let staged_access = written_access.len() as u64;
        let failures_before = self.failures;
        match self.access.write_staged(segment_max) {
            Ok(()) => {
                self.shared.appended[LogKind::Access.index()]
                    .fetch_add(staged_access, Ordering::Relaxed);
                for (seq, ack) in written_access {
                    match (self.config.access_durability, ack) {
                        (Durability::Durable, Some(ack)) => self.waiting_access.push((seq, ack)),
                        (_, ack) => reply(ack, Ok(seq)),
                    }
                }
            }
            Err(e) => {
                self.failed(&e);
                self.shared.lost.fetch_add(staged_access, Ordering::Relaxed);
                for (_, ack) in written_access {
                    reply(ack, Err(AuditError::Unavailable(e.to_string())));
                }
            }
        }
        if let Err(e) = self.state.write_staged(segment_max) {
            self.failed(&e);
            for (_, ack) in self.waiting_state.drain(..) {
                let _ = ack.send(Err(AuditError::Unavailable(e.to_string())));
            }
        }

        // State events always, access records when durable or when the interval is up.
        let access_due = !self.waiting_access.is_empty()
            || self.access.last_sync.elapsed() >= self.config.sync_interval;
        if access_due {
            match self.access.sync() {
                Ok(()) => {
                    for (seq, ack) in self.waiting_access.drain(..) {
                        let _ = ack.send(Ok(seq));
                    }
                }
                Err(e) => {
                    self.failed(&e);
                    for (_, ack) in self.waiting_access.drain(..) {
                        let _ = ack.send(Err(AuditError::Unavailable(e.to_string())));
                    }
                }
            }
        }
        if !self.waiting_state.is_empty() {
            match self.state.sync() {
                Ok(()) => {
                    self.shared.appended[LogKind::State.index()]
                        .store(self.state.next_seq, Ordering::Relaxed);
                    for (seq, ack) in self.waiting_state.drain(..) {
                        let _ = ack.send(Ok(seq));
                    }
                }
                Err(e) => {
                    self.failed(&e);
                    for (_, ack) in self.waiting_state.drain(..) {
                        let _ = ack.send(Err(AuditError::Unavailable(e.to_string())));
                    }
                }
            }
        }

        let forced = !checkpoint_requests.is_empty();
        if let Err(e) = self.checkpoint_all(forced) {
            self.failed(&e);
        }
        for done in checkpoint_requests {
            let _ = done.send(());
        }
        // Only a real access record written proves the store can take them again: a refusal's
        // record while failing closed, a served request's while degrading.
        if self.outage.is_some() && staged_access > 0 && self.failures == failures_before {
            self.try_recover();
        }
        shutdown
    }

    fn checkpoint_all(&mut self, forced: bool) -> std::io::Result<()> {
        for log in [&mut self.access, &mut self.state] {
            let pending = log.next_seq > log.checkpointed;
            if (forced && pending) || log.checkpoint_due(&self.config) {
                log.checkpoint(&self.config.signer)?;
                self.shared.checkpoints[log.kind.index()]
                    .store(log.checkpointed, Ordering::Release);
            }
        }
        Ok(())
    }

    /// A write or sync failed: the store is unavailable until a write works again.
    fn failed(&mut self, e: &std::io::Error) {
        self.failures += 1;
        if self.outage.is_none() {
            tracing::error!(error = %e, policy = ?self.config.on_failure, "audit store cannot write; access records are now refused or lost per on_audit_failure");
            self.outage = Some(Outage {
                since: record::now_rfc3339(),
                error: e.to_string(),
                lost_at_start: self.shared.lost.load(Ordering::Relaxed),
            });
        }
        self.shared.available.store(false, Ordering::Release);
    }

    /// Access records are written again: record the outage (durably); then the store is back.
    fn try_recover(&mut self) {
        let Some(outage) = &self.outage else { return };
        let event = StateEvent::AuditOutage {
            since: outage.since.clone(),
            until: record::now_rfc3339(),
            error: outage.error.clone(),
            lost_access_records: self.shared.lost.load(Ordering::Relaxed) - outage.lost_at_start,
        };
        match self.append_state_now(&event) {
            Ok(_) => {
                tracing::warn!(?event, "audit store writes again");
                self.outage = None;
                self.shared.available.store(true, Ordering::Release);
            }
            Err(e) => tracing::debug!("audit store still cannot write: {e}"),
        }
    }
}

fn reply(ack: Option<Ack>, result: Result<u64, AuditError>) {
    if let Some(ack) = ack {
        let _ = ack.send(result);
    }
}
