//! The server certificate: loaded from PEM files, served through a resolver that can swap in a
//! renewed certificate while the listener runs (R-TLS-2).
//!
//! A renewal never drops open connections (they keep the key they negotiated with) and a bad
//! new file never replaces a good certificate: [`ReloadingCertResolver::reload`] loads and
//! checks the whole pair first and keeps the old one on any error.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The chain file holds no PEM certificate, or one that is not valid DER.
    #[error("{} holds no usable PEM certificate ({why})", path.display())]
    Chain {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The key file holds no usable private key.
    #[error("{} holds no usable PEM private key ({why})", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The key does not belong to the leaf certificate.
    #[error("the private key {} does not match the certificate {}", key.display(), chain.display())]
    Mismatch {
        /// The chain file.
        chain: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

impl CertificateError {
    /// The file the problem is in (the chain file, for a mismatch).
    pub fn path(&self) -> &Path {
        match self {
            CertificateError::Read { path, .. }
            | CertificateError::Chain { path, .. }
            | CertificateError::Key { path, .. } => path,
            CertificateError::Mismatch { chain, .. } => chain,
        }
    }

    /// Whether the problem is in the key file rather than the chain.
    pub fn concerns_key(&self) -> bool {
        matches!(
            self,
            CertificateError::Key { .. } | CertificateError::Mismatch { .. }
        )
    }
}

/// Read a PEM certificate chain (leaf first).
pub fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    let bytes = read(path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| CertificateError::Chain {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CertificateError::Chain {
            path: path.to_path_buf(),
            why: "no CERTIFICATE block".into(),
        });
    }
    for cert in &chain {
        x509_parser::parse_x509_certificate(cert).map_err(|e| CertificateError::Chain {
            path: path.to_path_buf(),
            why: format!("not a valid X.509 certificate: {e}"),
        })?;
    }
    Ok(chain)
}

/// Read a PEM private key (PKCS#8, SEC1 or PKCS#1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertificateError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| CertificateError::Key {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// Load a chain and its key into a rustls [`CertifiedKey`], checking that they belong together.
pub fn load_certified_key(chain: &Path, key: &Path) -> Result<CertifiedKey, CertificateError> {
    certify(load_chain(chain)?, &load_key(key)?, chain, key)
}

/// Make a [`CertifiedKey`] of a loaded chain and key, checking that the key is usable and
/// belongs to the leaf. The paths are for messages.
pub fn certify(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'_>,
    chain_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, CertificateError> {
    let signing_key =
        rustls::crypto::ring::sign::any_supported_type(key).map_err(|e| CertificateError::Key {
            path: key_path.to_path_buf(),
            why: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .map_err(|_| CertificateError::Mismatch {
            chain: chain_path.to_path_buf(),
            key: key_path.to_path_buf(),
        })?;
    Ok(certified)
}

fn read(path: &Path) -> Result<Vec<u8>, CertificateError> {
    std::fs::read(path).map_err(|source| CertificateError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Modification time and length of both files: cheap to read, changes on every rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    chain: Option<(SystemTime, u64)>,
    key: Option<(SystemTime, u64)>,
}

fn stamp(chain: &Path, key: &Path) -> Stamp {
    let of = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    Stamp {
        chain: of(chain),
        key: of(key),
    }
}

struct Source {
    chain: PathBuf,
    key: PathBuf,
    stamp: Stamp,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new certificate is served to new connections.
    Replaced,
    /// The files did not change since the last load.
    Unchanged,
}

/// A [`ResolvesServerCert`] whose certificate can be replaced while connections are open, and
/// which refuses a handshake whose SNI names a host the policy does not serve.
pub struct ReloadingCertResolver {
    current: ArcSwap<CertifiedKey>,
    source: Mutex<Source>,
    /// `[listeners] hosts` as compiled (lower case); empty serves any name.
    served: ArcSwap<Vec<String>>,
}

impl fmt::Debug for ReloadingCertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertResolver")
            .finish_non_exhaustive()
    }
}

impl ReloadingCertResolver {
    /// Serve `initial`, which was loaded from `chain` and `key`.
    pub fn new(initial: Arc<CertifiedKey>, chain: &Path, key: &Path) -> Self {
        ReloadingCertResolver {
            current: ArcSwap::new(initial),
            source: Mutex::new(Source {
                chain: chain.to_path_buf(),
                key: key.to_path_buf(),
                stamp: stamp(chain, key),
            }),
            served: ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// The host names handshakes may ask for by SNI (`[listeners] hosts`, R-NET-2), set at
    /// start and on each policy reload; empty for any.
    pub fn serve_hosts(&self, hosts: Vec<String>) {
        self.served.store(Arc::new(hosts));
    }

    /// Serve a key loaded elsewhere (a policy reload), from possibly new paths.
    pub fn replace(&self, key: Arc<CertifiedKey>, chain: &Path, key_path: &Path) {
        if let Ok(mut source) = self.source.lock() {
            *source = Source {
                chain: chain.to_path_buf(),
                key: key_path.to_path_buf(),
                stamp: stamp(chain, key_path),
            };
        }
        self.current.store(key);
    }

    /// Load the files again if they changed (or always, with `force`). On error the certificate
    /// in service stays.
    pub fn reload(&self, force: bool) -> Result<ReloadOutcome, CertificateError> {
        let Ok(mut source) = self.source.lock() else {
            return Ok(ReloadOutcome::Unchanged);
        };
        let now = stamp(&source.chain, &source.key);
        if !force && now == source.stamp {
            return Ok(ReloadOutcome::Unchanged);
        }
        // Remember the stamp even on failure, so a broken file is reported once, not on every
        // poll; the next rewrite changes the stamp and is tried again.
        source.stamp = now;
        let key = load_certified_key(&source.chain, &source.key)?;
        self.current.store(Arc::new(key));
        Ok(ReloadOutcome::Replaced)
    }

    /// The certificate in service now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// When the certificate in service expires (seconds since the epoch).
    pub fn expires_at(&self) -> Option<i64> {
        not_after(&self.current())
    }
}

/// The resolver's certificate for any SNI: the admin listener's view of it. Its clients name
/// the gateway however the operator's network does; `[listeners] hosts` is the public
/// listener's list.
#[derive(Debug)]
pub struct AnyServerName(pub Arc<ReloadingCertResolver>);

impl ResolvesServerCert for AnyServerName {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

/// The `notAfter` of a certified key's end-entity certificate (seconds since the epoch).
pub fn not_after(key: &CertifiedKey) -> Option<i64> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

impl ResolvesServerCert for ReloadingCertResolver {
    /// `None` (rustls then sends `access_denied`) when the client asks by SNI for a host the
    /// policy does not serve: such a connection could only end in `421 route.host_not_served`,
    /// and refusing it here also keeps the certificate from a client that named another site.
    /// A client without SNI (one connecting by address) is served; its `Host` is checked
    /// per request.
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = client_hello.server_name();
        if named
            .is_some_and(|name| !crate::protocol::serves_host(&self.served.load(), name.as_bytes()))
        {
            return None;
        }
        Some(self.current.load_full())
    }
}

#[cfg(test)]
mod tests;
