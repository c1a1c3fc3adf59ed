//! The audit store: two append-only, hash-chained, Merkle-checkpointed logs (R-LOG-1 … R-LOG-5,
//! R-OPS-3).
//!
//! - [`record`]: what a record holds and the line format.
//! - [`merkle`]: the RFC 9162 tree, proofs and their verification.
//! - [`note`]: signed checkpoints (C2SP signed-note, Ed25519) and their keys.
//! - [`segment`]: the files of one log.
//! - `writer`: the one thread that writes (group commit, syncs, checkpoints, failures).
//! - [`verify`]: `audit verify`, `audit export`, `audit proof`.
//! - [`pseudonym`]: keyed pseudonyms for subject identifiers.
//!
//! Everything that records goes through an [`AuditSink`]: the proxy's access records and every
//! state change (policy versions here; consents, revocations and admin actions later).

pub mod merkle;
pub mod note;
pub mod pseudonym;
pub mod record;
pub mod segment;
pub mod verify;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use note::{Signer, Verifier};
pub use pseudonym::Pseudonymiser;
pub use record::{AccessRecord, LogKind, StateEvent};
use writer::{Command, Writer};

/// When an access record is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Once written: a gateway crash loses nothing acknowledged; a power loss can lose the
    /// last `sync_interval_ms` (group commit).
    Batched,
    /// Once synced to disk.
    Durable,
}

/// What the gateway does with requests while access records cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Refuse new requests with 503 `audit.unavailable` (the default).
    FailClosed,
    /// Serve them; count the lost records and log an alert.
    Degrade,
}

/// How the store is set up (from the policy's `[audit]`).
#[derive(Debug)]
pub struct StoreConfig {
    /// The store's directory.
    pub dir: PathBuf,
    /// This node's name in every record.
    pub node_id: Arc<str>,
    /// Checkpoint origin prefix; the logs are `<origin>/access` and `<origin>/state`.
    pub origin: String,
    /// The checkpoint signing key.
    pub signer: Signer,
    /// Checkpoint after this many new records…
    pub checkpoint_every: u64,
    /// …or this long after the last one, whichever comes first.
    pub checkpoint_interval: Duration,
    /// Segment files are rotated past this size.
    pub segment_max_bytes: u64,
    /// Longest a written access record waits for its sync (batched mode).
    pub sync_interval: Duration,
    /// When access records are acknowledged.
    pub access_durability: Durability,
    /// Requests while the store cannot write.
    pub on_failure: OnFailure,
    /// Records that may wait for the writer.
    pub queue_capacity: usize,
}

/// Why something could not be recorded or the store could not be opened.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The store cannot write (disk full, I/O error, permissions).
    #[error("the audit store cannot write: {0}")]
    Unavailable(String),
    /// The writer has stopped.
    #[error("the audit store is closed")]
    Closed,
    /// The store's files could not be read or made.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The store's files are not what the store wrote; the gateway does not start on them.
    #[error("audit log {log} is damaged: {detail}")]
    Corrupt {
        /// Which log.
        log: &'static str,
        /// What was found.
        detail: String,
    },
    /// A record could not be encoded.
    #[error("cannot encode an audit record: {0}")]
    Encode(String),
}

impl From<(String, std::io::Error)> for AuditError {
    fn from((path, source): (String, std::io::Error)) -> Self {
        AuditError::Io {
            path,
            source: Arc::new(source),
        }
    }
}

/// Keep the store's copy of the public key current, for auditors' convenience (they should pin
/// their own copy: a key next to the records proves nothing against whoever controls both).
fn publish_key(config: &StoreConfig) -> Result<(), AuditError> {
    let path = config.dir.join(verify::PUBLIC_KEY_FILE);
    let text = config.signer.verifier().to_text();
    let existing = std::fs::read_to_string(&path).ok();
    match existing.as_deref().map(str::trim) {
        Some(same) if same == text => return Ok(()),
        Some(old) => {
            tracing::warn!(old, new = %text, "the checkpoint signing key changed; older checkpoints verify only with the old key")
        }
        None => {}
    }
    crate::pki::write_file(&path, text.as_bytes(), false)
        .map_err(|e| AuditError::from((path.display().to_string(), std::io::Error::other(e))))
}

/// State shared by the sinks and the writer.
#[derive(Debug)]
struct Shared {
    available: AtomicBool,
    /// Records written, per log (by [`LogKind::index`]).
    appended: [AtomicU64; 2],
    /// Size of the latest checkpoint, per log (by [`LogKind::index`]).
    checkpoints: [AtomicU64; 2],
    /// Access records that could not be written.
    lost: AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Counters for status pages and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditStats {
    /// Whether the store is writing.
    pub available: bool,
    /// Records in the access log (its head: the next record's seq).
    pub access_appended: u64,
    /// Records in the state log.
    pub state_appended: u64,
    /// Access records lost (`degrade` mode, or refused requests while unavailable).
    pub access_lost: u64,
    /// Size of the latest access checkpoint.
    pub access_checkpoint: u64,
    /// Size of the latest state checkpoint.
    pub state_checkpoint: u64,
    /// Records waiting for the writer.
    pub queue_depth: usize,
}

/// The handle everything that records holds. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditSink {
    queue: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    on_failure: OnFailure,
    capacity: usize,
}

impl AuditSink {
    /// Open (or create) the store, recover it, and start its writer thread. Fails when the
    /// store's files are damaged: a gateway never starts on an audit trail it cannot extend.
    pub fn open(config: StoreConfig) -> Result<Self, AuditError> {
        let config = Arc::new(config);
        let shared = Arc::new(Shared {
            available: AtomicBool::new(true),
            appended: [AtomicU64::new(0), AtomicU64::new(0)],
            checkpoints: [AtomicU64::new(0), AtomicU64::new(0)],
            lost: AtomicU64::new(0),
            writer: Mutex::new(None),
        });
        let writer = Writer::open(Arc::clone(&config), Arc::clone(&shared))?;
        publish_key(&config)?;
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| AuditError::from(("audit writer thread".to_owned(), e)))?;
        if let Ok(mut slot) = shared.writer.lock() {
            *slot = Some(thread);
        }
        Ok(AuditSink {
            queue,
            shared,
            on_failure: config.on_failure,
            capacity: config.queue_capacity.max(1),
        })
    }

    /// Whether access records can be written now. With `fail_closed`, the proxy refuses new
    /// requests while this is false, before anything reaches an upstream.
    pub fn is_available(&self) -> bool {
        self.shared.available.load(Ordering::Acquire)
    }

    /// The policy for access records while the store cannot write.
    pub fn on_failure(&self) -> OnFailure {
        self.on_failure
    }

    /// Record one request. With `fail_closed` this returns once the record is written (or
    /// synced, with durable access records), and an error means the response must not be
    /// released. With `degrade` it only queues the record; a full queue or a failed write
    /// counts a lost record.
    pub async fn record_access(&self, record: AccessRecord) -> Result<(), AuditError> {
        match self.on_failure {
            OnFailure::FailClosed => {
                let (ack, written) = oneshot::channel();
                self.queue
                    .send(Command::Access(record, Some(ack)))
                    .await
                    .map_err(|_| AuditError::Closed)?;
                written.await.map_err(|_| AuditError::Closed)?.map(drop)
            }
            OnFailure::Degrade => {
                if self.queue.try_send(Command::Access(record, None)).is_err() {
                    self.shared.lost.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        }
    }

    /// Queue an access record without waiting (for requests whose client is already gone).
    pub fn record_access_detached(&self, record: AccessRecord) {
        if self.queue.try_send(Command::Access(record, None)).is_err() {
            self.shared.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Record a state change durably; returns its seq once it is on disk. Always fails closed:
    /// the caller must not act as if the change happened when this fails.
    pub async fn record_state(&self, event: StateEvent) -> Result<u64, AuditError> {
        let (ack, synced) = oneshot::channel();
        self.queue
            .send(Command::State(event, ack))
            .await
            .map_err(|_| AuditError::Closed)?;
        synced.await.map_err(|_| AuditError::Closed)?
    }

    /// [`Self::record_state`] for code outside an async runtime (start-up, the CLI).
    pub fn record_state_blocking(&self, event: StateEvent) -> Result<u64, AuditError> {
        let (ack, synced) = oneshot::channel();
        self.queue
            .blocking_send(Command::State(event, ack))
            .map_err(|_| AuditError::Closed)?;
        synced.blocking_recv().map_err(|_| AuditError::Closed)?
    }

    /// Sync both logs and write checkpoints covering every record so far.
    pub async fn checkpoint(&self) -> Result<(), AuditError> {
        let (done, finished) = oneshot::channel();
        self.queue
            .send(Command::Checkpoint(done))
            .await
            .map_err(|_| AuditError::Closed)?;
        finished.await.map_err(|_| AuditError::Closed)
    }

    /// Counters for status and metrics.
    pub fn stats(&self) -> AuditStats {
        AuditStats {
            available: self.is_available(),
            access_appended: self.shared.appended[LogKind::Access.index()].load(Ordering::Relaxed),
            state_appended: self.shared.appended[LogKind::State.index()].load(Ordering::Relaxed),
            access_lost: self.shared.lost.load(Ordering::Relaxed),
            access_checkpoint: self.shared.checkpoints[LogKind::Access.index()]
                .load(Ordering::Acquire),
            state_checkpoint: self.shared.checkpoints[LogKind::State.index()]
                .load(Ordering::Acquire),
            queue_depth: self.capacity - self.queue.capacity(),
        }
    }

    /// Stop the writer: it writes what is queued, syncs and checkpoints both logs. Records
    /// sent after this fail with [`AuditError::Closed`]. Call it outside an async runtime.
    pub fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.queue.blocking_send(Command::Shutdown(done)).is_ok() {
            let _ = finished.blocking_recv();
        }
        let thread = self
            .shared
            .writer
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}
