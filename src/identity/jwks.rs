//! Where an issuer's keys come from: a file, or an https URL fetched at load, refreshed on a
//! schedule, and refetched when a token names an unknown `kid` — at most once per
//! `min_refetch`, so a stream of made-up key ids cannot make the gateway hammer the IdP. A
//! failed refresh keeps the last good key set, counts the failure and logs it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use rustls::pki_types::{CertificateDer, ServerName};

use super::keys::{KeySet, KeySetError};

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Longest a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why keys could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The URL is not `https://host[:port]/path`.
    #[error("JWKS URL must be https://host[:port]/path: {0}")]
    Url(String),
    /// The CA file could not be read.
    #[error("cannot read the JWKS CA {path}: {detail}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// Connecting, the TLS handshake or the HTTP exchange failed.
    #[error("fetching {url}: {detail}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// The document is not a usable key set.
    #[error("{url}: {source}")]
    Keys {
        /// The URL.
        url: String,
        /// Why.
        source: KeySetError,
    },
}

/// An https JWKS endpoint.
#[derive(Clone, Debug)]
pub struct JwksUrl {
    /// The URL.
    pub url: http::Uri,
    /// Trust anchors for its certificate (the system's when empty).
    pub roots: Vec<CertificateDer<'static>>,
    /// Scheduled refresh interval.
    pub refresh: Duration,
    /// Least time between two fetches triggered by unknown key ids.
    pub min_refetch: Duration,
}

impl JwksUrl {
    /// Parse and check a URL; `ca` is a PEM file of trust anchors, if given.
    pub fn new(
        url: &str,
        ca: Option<PathBuf>,
        refresh: Duration,
        min_refetch: Duration,
    ) -> Result<Self, JwksError> {
        let uri: http::Uri = url.parse().map_err(|_| JwksError::Url(url.to_owned()))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(JwksError::Url(url.to_owned()));
        }
        let roots = match ca {
            None => Vec::new(),
            Some(path) => {
                crate::tls::certificate::load_chain(&path).map_err(|e| JwksError::Ca {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })?
            }
        };
        Ok(JwksUrl {
            url: uri,
            roots,
            refresh,
            min_refetch,
        })
    }

    /// GET the document and parse it.
    pub async fn fetch(&self) -> Result<KeySet, JwksError> {
        let url = self.url.to_string();
        let err = |detail: String| JwksError::Fetch {
            url: url.clone(),
            detail,
        };
        let body = tokio::time::timeout(FETCH_TIMEOUT, self.get())
            .await
            .map_err(|_| err(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())))?
            .map_err(err)?;
        KeySet::from_json(&body).map_err(|source| JwksError::Keys { url, source })
    }

    /// [`Self::fetch`] from code outside an async runtime (policy loading), on a thread of
    /// its own so it also works from inside one.
    pub fn fetch_blocking(&self) -> Result<KeySet, JwksError> {
        let url = self.url.to_string();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| JwksError::Fetch {
                            url: url.clone(),
                            detail: e.to_string(),
                        })?;
                    runtime.block_on(self.fetch())
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(JwksError::Fetch {
                        url: url.clone(),
                        detail: "the fetch thread failed".into(),
                    })
                })
        })
    }

    async fn get(&self) -> Result<Vec<u8>, String> {
        let host = self
            .url
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        let port = self.url.port_u16().unwrap_or(443);
        let mut roots = rustls::RootCertStore::empty();
        if self.roots.is_empty() {
            let native = rustls_native_certs::load_native_certs().map_err(|e| e.to_string())?;
            roots.add_parsable_certificates(native);
        } else {
            roots.add_parsable_certificates(self.roots.iter().cloned());
        }
        // The process's provider once installed (the same versions and suites as every other
        // connection); before that (policy loading at start) the gateway's own TLS 1.3-only
        // one. `ClientConfig::builder()` would install rustls's default as a side effect.
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(crate::tls::provider::gateway_provider(false)));
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let authority = self.url.authority().map_or(host.clone(), |a| a.to_string());
        let path = self.url.path_and_query().map_or("/", |p| p.as_str());
        let request = http::Request::get(path)
            .header(http::header::HOST, authority)
            .header(
                http::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("status {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(body.to_bytes().to_vec())
    }
}

/// Where an issuer's keys come from.
#[derive(Clone, Debug)]
pub enum JwksSource {
    /// Given in memory, never refreshed (tests, tools).
    Fixed,
    /// A file, read at load and reload.
    File(PathBuf),
    /// An https endpoint.
    Url(JwksUrl),
}

/// An issuer's current keys, replaced whole by a successful refresh.
#[derive(Debug)]
pub struct IssuerKeys {
    /// Where they come from.
    pub source: JwksSource,
    current: ArcSwap<KeySet>,
    fetched: Mutex<Instant>,
    last_attempt: Mutex<Option<Instant>>,
    refetch_wanted: AtomicBool,
    /// Refreshes that failed (the last good keys stayed in use).
    pub failures: AtomicU64,
    /// Bumped whenever the keys are replaced: verified tokens cached under an older
    /// generation are checked again (a key removed from the JWKS may have been compromised).
    generation: AtomicU64,
}

impl IssuerKeys {
    /// Keys loaded from `source` just now.
    pub fn new(source: JwksSource, keys: KeySet) -> Self {
        IssuerKeys {
            source,
            current: ArcSwap::from_pointee(keys),
            fetched: Mutex::new(Instant::now()),
            last_attempt: Mutex::new(None),
            refetch_wanted: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    /// Keys that are never refreshed.
    pub fn fixed(keys: KeySet) -> Self {
        IssuerKeys::new(JwksSource::Fixed, keys)
    }

    /// Which key set is in use (changes with every replacement).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The keys in use.
    pub fn current(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// A token named a key id this set lacks: ask for a refetch (honoured at most once per
    /// `min_refetch`).
    pub fn unknown_kid(&self) {
        if matches!(self.source, JwksSource::Url(_)) {
            self.refetch_wanted.store(true, Ordering::Release);
        }
    }

    /// Seconds since the keys were last replaced.
    pub fn age(&self) -> Duration {
        self.fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    /// Whether a fetch is due now: the schedule says so, or an unknown `kid` asked and the
    /// last attempt is at least `min_refetch` ago.
    fn due(&self, url: &JwksUrl) -> bool {
        let last = *self
            .last_attempt
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let since_attempt = last.map_or(Duration::MAX, |t| t.elapsed());
        let scheduled = self.age() >= url.refresh && since_attempt >= url.min_refetch;
        let wanted =
            self.refetch_wanted.load(Ordering::Acquire) && since_attempt >= url.min_refetch;
        scheduled || wanted
    }

    /// Refresh if due (and keep the key-set age metric current). Returns whether a fetch was
    /// made.
    pub async fn refresh_if_due(&self, issuer: &str) -> bool {
        if let Some(m) = crate::metrics::metrics() {
            m.jwks_age_seconds
                .with_label_values(&[issuer])
                .set(self.age().as_secs_f64());
        }
        let JwksSource::Url(url) = &self.source else {
            return false;
        };
        if !self.due(url) {
            return false;
        }
        *self
            .last_attempt
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.refetch_wanted.store(false, Ordering::Release);
        match url.fetch().await {
            Ok(keys) => {
                tracing::info!(issuer, keys = keys.len(), "JWKS refreshed");
                self.current.store(Arc::new(keys));
                self.generation.fetch_add(1, Ordering::AcqRel);
                *self.fetched.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
            }
            Err(e) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(m) = crate::metrics::metrics() {
                    m.jwks_refresh_failures.with_label_values(&[issuer]).inc();
                }
                tracing::error!(
                    issuer,
                    failures,
                    age_secs = self.age().as_secs(),
                    "JWKS refresh failed; keeping the last good keys: {e}"
                );
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys fetched over plain HTTP could be swapped by anyone on the path.
    #[test]
    fn only_https_jwks_urls_are_accepted() {
        let d = Duration::from_secs(1);
        for url in [
            "http://id.example/jwks.json",
            "https:///jwks.json",
            "file:///etc/jwks.json",
            "not a url",
        ] {
            assert!(
                matches!(JwksUrl::new(url, None, d, d), Err(JwksError::Url(_))),
                "{url}"
            );
        }
        assert!(JwksUrl::new("https://id.example/.well-known/jwks.json", None, d, d).is_ok());
    }
}
