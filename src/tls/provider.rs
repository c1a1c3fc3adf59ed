//! The gateway's one rustls crypto provider (ring), restricted to what R-TLS-1 allows.
//!
//! It must be installed as the process default before pingora builds any TLS config: pingora
//! installs ring's unrestricted default only when none is installed yet. Because pingora's
//! upstream connector uses the same process default, upstream TLS follows the same versions:
//! with TLS 1.2 off, upstreams must speak TLS 1.3 too.

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedCipherSuite};

/// TLS 1.2 suites IPA's "high security" profile permits: ECDHE key exchange with AEAD only.
const TLS12_ALLOWED: &[CipherSuite] = &[
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// ring's provider with TLS 1.3 suites, plus the allowed TLS 1.2 suites when opted in.
/// Key exchange groups are ring's: X25519, P-256, P-384 (all ECDHE; no finite-field DH).
pub fn gateway_provider(allow_tls12: bool) -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|suite| match suite {
        SupportedCipherSuite::Tls13(_) => true,
        SupportedCipherSuite::Tls12(_) => allow_tls12 && TLS12_ALLOWED.contains(&suite.suite()),
    });
    provider
}

/// Why the provider could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("a rustls crypto provider was already installed in this process; the gateway's TLS version policy cannot be enforced")]
pub struct AlreadyInstalled;

/// Install [`gateway_provider`] as the process default. Call first thing in `main`, before any
/// pingora or rustls object exists.
pub fn install(allow_tls12: bool) -> Result<(), AlreadyInstalled> {
    CryptoProvider::install_default(gateway_provider(allow_tls12)).map_err(|_| AlreadyInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_has_only_tls13_suites_r_tls_1() {
        let p = gateway_provider(false);
        assert!(!p.cipher_suites.is_empty());
        assert!(p
            .cipher_suites
            .iter()
            .all(|s| matches!(s, SupportedCipherSuite::Tls13(_))));
    }

    #[test]
    fn tls12_opt_in_adds_only_ecdhe_aead_r_tls_1() {
        let p = gateway_provider(true);
        let tls12: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
            .map(|s| s.suite())
            .collect();
        assert!(!tls12.is_empty());
        for suite in tls12 {
            let name = format!("{suite:?}");
            assert!(name.contains("ECDHE"), "{name}");
            assert!(name.contains("GCM") || name.contains("CHACHA20"), "{name}");
        }
    }
}
