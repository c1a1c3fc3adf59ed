//! Upstreams: where routes forward to, and how (plain, TLS, or mutual TLS; R-TLS-4).
//!
//! Each upstream compiles into a pingora `HttpPeer` template that requests clone, so parsing
//! certificates and resolving names happens once per policy load, never per request.
//! Verification of the upstream's certificate is always on and SNI is always set: pingora
//! silently skips verification when SNI is empty.

use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{CertKey, WrappedX509};

use crate::policy::schema::UpstreamSection;
use crate::tls::certificate::{self, CertificateError};

/// A compiled upstream.
pub struct Upstream {
    /// Its name in the policy.
    pub name: String,
    /// Its URL, for messages.
    pub url: String,
    /// The resolved address.
    pub address: SocketAddr,
    /// The `Host` value the upstream expects when the client sent none.
    pub authority: String,
    /// The upstream's own origin as it may write it in a `Location` (lower case, without a
    /// trailing slash; with and without a default port): rewritten to the public one.
    pub origins: Vec<String>,
    tls: bool,
    peer: HttpPeer,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// A peer for one request (a cheap clone of the template).
    pub fn peer(&self) -> Box<HttpPeer> {
        Box::new(self.peer.clone())
    }

    /// Whether the upstream is reached over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

/// Why an upstream could not be compiled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The URL is not `http(s)://host:port`.
    #[error("url `{url}` is not valid: {why}; write http://host:port or https://host:port")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The host did not resolve.
    #[error("cannot resolve `{authority}`: {why}")]
    Resolve {
        /// host:port.
        authority: String,
        /// The resolver's answer.
        why: String,
    },
    /// A TLS setting was given for a plain http upstream, or a client key without certificate.
    #[error("{0}")]
    Setting(String),
    /// A certificate or key file is unusable.
    #[error("{0}")]
    Certificate(#[from] CertificateError),
}

impl UpstreamError {
    /// Where in the section the problem is, for the diagnostic.
    pub fn span(&self, section: &UpstreamSection) -> Option<Range<usize>> {
        match self {
            UpstreamError::Url { .. } | UpstreamError::Resolve { .. } => Some(section.url.span()),
            UpstreamError::Setting(_) => Some(section.url.span()),
            UpstreamError::Certificate(e) => {
                let key = e.concerns_key()
                    || section
                        .client_key
                        .as_ref()
                        .is_some_and(|k| e.path().ends_with(k.get_ref()));
                let ca = section.ca.as_ref().map(|s| s.span());
                let cert = section.client_certificate.as_ref().map(|s| s.span());
                let key_span = section.client_key.as_ref().map(|s| s.span());
                if key {
                    key_span.or(cert)
                } else {
                    cert.or(ca)
                }
            }
        }
    }
}

/// Compile one `[upstreams.NAME]` section; relative paths are resolved against `base`.
pub fn compile(name: &str, s: &UpstreamSection, base: &Path) -> Result<Upstream, UpstreamError> {
    let url = s.url.get_ref();
    let bad = |why: &str| UpstreamError::Url {
        url: url.clone(),
        why: why.to_owned(),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad("the scheme must be http or https")),
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("a path or query is not supported"));
    }
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let authority = format!("{host}:{port}");
    let address = authority
        .to_socket_addrs()
        .map_err(|e| UpstreamError::Resolve {
            authority: authority.clone(),
            why: e.to_string(),
        })?
        .next()
        .ok_or_else(|| UpstreamError::Resolve {
            authority: authority.clone(),
            why: "no address".into(),
        })?;

    let host_for_sni = host.trim_start_matches('[').trim_end_matches(']');
    let sni = if tls {
        s.sni.clone().unwrap_or_else(|| host_for_sni.to_owned())
    } else {
        String::new()
    };
    if !tls && (s.ca.is_some() || s.client_certificate.is_some() || s.sni.is_some()) {
        return Err(UpstreamError::Setting(
            "ca, client_certificate and sni apply only to https upstreams".into(),
        ));
    }
    if tls && sni.is_empty() {
        return Err(UpstreamError::Setting(
            "sni must not be empty: without SNI the upstream certificate would not be verified"
                .into(),
        ));
    }

    let mut peer = HttpPeer::new(address, tls, sni);
    peer.options.connection_timeout = Some(Duration::from_millis(s.connect_timeout_ms));
    peer.options.total_connection_timeout = Some(Duration::from_millis(s.connect_timeout_ms));
    peer.options.read_timeout = Some(Duration::from_millis(s.read_timeout_ms));
    peer.options.write_timeout = Some(Duration::from_millis(s.read_timeout_ms));
    peer.options.idle_timeout = Some(Duration::from_secs(s.idle_timeout_secs));
    peer.options.verify_cert = true;
    peer.options.verify_hostname = true;

    if let Some(ca) = &s.ca {
        let path = base.join(ca.get_ref());
        let chain = certificate::load_chain(&path)?;
        let wrapped: Vec<WrappedX509> = chain
            .into_iter()
            .map(|der| WrappedX509::new(der.to_vec(), pingora::utils::tls::parse_x509))
            .collect();
        peer.options.ca = Some(Arc::from(wrapped.into_boxed_slice()));
    }
    match (&s.client_certificate, &s.client_key) {
        (Some(cert), Some(key)) => {
            let (cert, key): (PathBuf, PathBuf) =
                (base.join(cert.get_ref()), base.join(key.get_ref()));
            let chain = certificate::load_chain(&cert)?;
            let key_der = certificate::load_key(&key)?;
            // Checking the pair now makes a bad pair a policy error rather than a failure on
            // the first upstream connection.
            certificate::certify(chain.clone(), &key_der, &cert, &key)?;
            let chain = chain.iter().map(|c| c.to_vec()).collect();
            peer.client_cert_key =
                Some(Arc::new(CertKey::new(chain, key_der.secret_der().to_vec())));
        }
        (None, None) => {}
        _ => {
            return Err(UpstreamError::Setting(
                "client_certificate and client_key must be given together".into(),
            ))
        }
    }

    let scheme = if tls { "https" } else { "http" };
    let host = host.to_ascii_lowercase();
    let mut origins = vec![format!("{scheme}://{host}:{port}")];
    if matches!((tls, port), (true, 443) | (false, 80)) {
        origins.push(format!("{scheme}://{host}"));
    }
    Ok(Upstream {
        name: name.to_owned(),
        url: url.clone(),
        origins,
        address,
        authority: match (tls, port) {
            (true, 443) | (false, 80) => host,
            _ => authority,
        },
        tls,
        peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(url: &str) -> Vec<String> {
        let section: UpstreamSection =
            toml::from_str(&format!("url = \"{url}\"")).expect("an upstream table");
        compile("backend", &section, Path::new(".")).map_or_else(|e| panic!("{e}"), |u| u.origins)
    }

    /// What a backend may write as its own address in a `Location`, to be rewritten.
    #[test]
    fn an_upstreams_own_origins_are_written_with_and_without_a_default_port() {
        assert_eq!(origins("http://127.0.0.1:8081"), ["http://127.0.0.1:8081"]);
        assert_eq!(
            origins("http://LOCALHOST"),
            ["http://localhost:80", "http://localhost"]
        );
        assert_eq!(
            origins("https://127.0.0.1:443/"),
            ["https://127.0.0.1:443", "https://127.0.0.1"]
        );
    }
}
