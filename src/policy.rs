//! The policy: read, validated, compiled into an immutable [`Snapshot`], swapped atomically on
//! reload (R-OPS-2).
//!
//! A bad file never replaces a good one: [`PolicyStore::reload`] compiles the new file
//! completely before it swaps, and keeps the running snapshot when anything is wrong. Every
//! error names the file, line and column, and what would be valid.

pub mod compile;
pub mod operate;
pub mod schema;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use compile::{GatewaySettings, Listeners, Snapshot, TlsPlan};
pub use schema::DataCategory;

/// One problem found in a policy file, at a line and column (both 1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong and what would be valid.
    pub message: String,
}

/// Why a policy could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        /// The policy file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid policy.
    #[error("{}", render_diagnostics(path, diagnostics))]
    Invalid {
        /// The policy file.
        path: PathBuf,
        /// Every problem found, in file order.
        diagnostics: Vec<Diagnostic>,
    },
    /// A reload raised the head limits above the HTTP/2 layer's bound, set at start.
    #[error("reload of {} refused: `limits.max_header_bytes`, `max_headers` and `max_uri_bytes` now allow an HTTP/2 header list of {wanted} bytes, over the bound of {started} the HTTP/2 layer started with; raising it takes a restart, so the running policy is kept", path.display())]
    Http2HeaderBoundRaised {
        /// The policy file.
        path: PathBuf,
        /// The bound the new limits need.
        wanted: u32,
        /// The bound in force.
        started: u32,
    },
    /// A reload changed a setting that only takes effect at start.
    #[error("reload of {} refused: `{key}` changed; it takes effect only when the gateway restarts, so the running policy is kept", path.display())]
    RestartRequired {
        /// The policy file.
        path: PathBuf,
        /// The key that changed.
        key: &'static str,
    },
}

fn render_diagnostics(path: &Path, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}:{}:{}: {}",
            path.display(),
            d.line,
            d.column,
            d.message
        ));
    }
    out
}

/// The content hash of a policy file: the policy's version in logs and audit records.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PolicyVersion(pub [u8; 32]);

impl PolicyVersion {
    /// SHA-256 of the file's bytes.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        PolicyVersion(sha2::Sha256::digest(bytes).into())
    }

    /// The first 12 hex digits, for log lines.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Read and compile a policy file.
pub fn load(path: &Path) -> Result<Snapshot, PolicyError> {
    let bytes = std::fs::read(path).map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    compile::compile(path, &bytes)
}

/// The running policy: the current snapshot, replaced whole on reload.
///
/// Requests take an `Arc` of the snapshot when they start and keep it to the end, so a reload
/// never changes the rules under a request in flight.
pub struct PolicyStore {
    path: PathBuf,
    current: ArcSwap<Snapshot>,
    /// The HTTP/2 header-list bound of the policy the process started with: the HTTP/2 layer
    /// keeps it until a restart.
    http2_header_list_bound: u32,
}

impl fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyStore")
            .field("path", &self.path)
            .field("version", &self.current.load().version)
            .finish()
    }
}

impl PolicyStore {
    /// Load the policy at `path`; fails if it is not valid.
    pub fn open(path: &Path) -> Result<Self, PolicyError> {
        let snapshot = load(path)?;
        Ok(PolicyStore {
            path: path.to_path_buf(),
            http2_header_list_bound: crate::protocol::http2_header_list_bound(
                &snapshot.limits.request,
            ),
            current: ArcSwap::from_pointee(snapshot),
        })
    }

    /// The bound the HTTP/2 layer holds a request's header list to, fixed at start
    /// ([`crate::protocol::http2_header_list_bound`]).
    pub fn http2_header_list_bound(&self) -> u32 {
        self.http2_header_list_bound
    }

    /// The snapshot in force now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Read the file again and swap the new snapshot in. On any error the running snapshot
    /// stays and the error says why.
    pub fn reload(&self) -> Result<Arc<Snapshot>, PolicyError> {
        let next = self.prepare_reload()?;
        self.install(Arc::clone(&next));
        Ok(next)
    }

    /// Read and check the file again without putting it in service: the caller records the
    /// new version first, then [`Self::install`]s it.
    pub fn prepare_reload(&self) -> Result<Arc<Snapshot>, PolicyError> {
        let next = load(&self.path)?;
        let running = self.current.load();
        if let Some(key) = running.restart_only_difference(&next) {
            return Err(PolicyError::RestartRequired {
                path: self.path.clone(),
                key,
            });
        }
        let wanted = crate::protocol::http2_header_list_bound(&next.limits.request);
        if wanted > self.http2_header_list_bound {
            // Heads the new limits allow would be refused by the HTTP/2 layer first.
            return Err(PolicyError::Http2HeaderBoundRaised {
                path: self.path.clone(),
                wanted,
                started: self.http2_header_list_bound,
            });
        }
        Ok(Arc::new(next))
    }

    /// Put a prepared snapshot in service.
    pub fn install(&self, next: Arc<Snapshot>) {
        self.current.store(next);
    }
}

/// The JSON Schema of the policy file, generated from [`schema::PolicyFile`].
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(schema::PolicyFile);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
