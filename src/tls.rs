//! TLS for the public listener (R-TLS-1, R-TLS-2) and the material for upstream TLS (R-TLS-4).
//!
//! Versions are enforced through the process's rustls crypto provider, because pingora 0.9's
//! rustls listener (and its upstream connector) builds every config with TLS 1.2 and 1.3 and
//! offers no setter: a provider with only TLS 1.3 cipher suites makes TLS 1.2 impossible to
//! negotiate, in both directions. See [`provider`].

pub mod certificate;
pub mod provider;

pub use certificate::{CertificateError, ReloadingCertResolver};
