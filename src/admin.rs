//! The admin listener (R-AUTH-4, R-NET-2): its own address, TLS 1.3, and named
//! administrators who prove who they are with a client certificate (mutual TLS) or an admin
//! token (an issuer's token with the admin role and multi-factor evidence). Every call except
//! the health probes is a state-log event naming the administrator, allowed or refused.
//!
//! The listener is a small hyper server of its own rather than a pingora service: it needs the
//! client certificate of each connection and a verifier that asks for one, and it must keep
//! answering while the proxy is stopped. [`api`] holds the endpoints, [`client`] the
//! `phr-gateway admin` side.

pub mod api;
pub mod client;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use http::HeaderMap;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use sha2::{Digest, Sha256};

use crate::net::NetworkList;
use crate::policy::Snapshot;

/// The admin listener as the policy declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminPlan {
    /// Its address (start-only).
    pub listen: SocketAddr,
    /// CA file for client certificates (start-only).
    pub client_ca: Option<PathBuf>,
    /// Index of the issuer whose tokens may carry admin rights.
    pub token_issuer: Option<usize>,
    /// The role an admin token must carry.
    pub token_role: String,
    /// Networks admin calls may come from.
    pub allow: NetworkList,
    /// The administrators.
    pub admins: Vec<AdminIdentity>,
}

/// One named administrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminIdentity {
    /// Their name, recorded with every call.
    pub name: String,
    /// Their client certificate's subject CN.
    pub certificate_cn: Option<String>,
    /// Their client certificate's SHA-256.
    pub certificate_sha256: Option<[u8; 32]>,
    /// Their tokens' `sub`.
    pub token_subject: Option<String>,
}

/// How a caller proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A client certificate.
    Certificate,
    /// A bearer token.
    Token,
    /// Nothing usable.
    None,
}

impl Credential {
    /// The name in state events.
    pub const fn name(self) -> &'static str {
        match self {
            Credential::Certificate => "certificate",
            Credential::Token => "token",
            Credential::None => "none",
        }
    }
}

/// Who is calling, or why they are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A named administrator of the policy in force.
    Admin {
        /// Their name.
        name: String,
        /// What proved it.
        credential: Credential,
    },
    /// Refused: status (401, 403) and why.
    Refused {
        /// The status to answer.
        status: u16,
        /// The credential seen, if any.
        credential: Credential,
        /// Why, for the caller and the state log.
        why: String,
    },
}

/// Decide who is calling under the snapshot in force: the network first, then the client
/// certificate, then a bearer token. A certificate that names no administrator is refused even
/// when a token is also sent: one call, one identity.
pub fn authenticate(
    snapshot: &Snapshot,
    peer: Option<IpAddr>,
    client_certificate: Option<&CertificateDer<'_>>,
    headers: &HeaderMap,
    now: i64,
) -> Caller {
    let Some(plan) = &snapshot.admin else {
        return refused(
            403,
            Credential::None,
            "the policy declares no admin listener",
        );
    };
    if let Some(peer) = peer {
        if !plan.allow.is_empty() && !plan.allow.contains(peer) {
            return refused(
                403,
                Credential::None,
                "this network may not make admin calls",
            );
        }
    }
    if let Some(certificate) = client_certificate {
        let fingerprint: [u8; 32] = Sha256::digest(certificate.as_ref()).into();
        let cn = common_name(certificate);
        let found = plan.admins.iter().find(|a| {
            let pinned = a.certificate_sha256.map(|pin| pin == fingerprint);
            let named = a
                .certificate_cn
                .as_ref()
                .map(|want| cn.as_deref() == Some(want.as_str()));
            match (pinned, named) {
                (None, None) => false,
                (p, n) => p.unwrap_or(true) && n.unwrap_or(true),
            }
        });
        return match found {
            Some(admin) => Caller::Admin {
                name: admin.name.clone(),
                credential: Credential::Certificate,
            },
            None => refused(
                403,
                Credential::Certificate,
                "the client certificate names no administrator of this policy",
            ),
        };
    }
    if !headers.contains_key(http::header::AUTHORIZATION) {
        return refused(
            401,
            Credential::None,
            "admin calls need a client certificate or an admin token",
        );
    }
    let Some(issuer) = plan
        .token_issuer
        .and_then(|i| snapshot.identity.issuers.get(i))
    else {
        return refused(
            403,
            Credential::Token,
            "this policy accepts no admin tokens",
        );
    };
    let principal = match crate::identity::verified_principal(headers, &snapshot.identity, now) {
        Ok(p) => p,
        Err(refusal) => return refused(401, Credential::Token, &refusal.detail),
    };
    if principal.issuer != issuer.id {
        return refused(
            403,
            Credential::Token,
            "the token is not from the admin issuer",
        );
    }
    if !principal.roles.iter().any(|r| r == &plan.token_role) {
        return refused(
            403,
            Credential::Token,
            &format!("the token lacks the `{}` role", plan.token_role),
        );
    }
    if !principal.multi_factor {
        return refused(
            403,
            Credential::Token,
            "admin tokens need multi-factor evidence (R-AUTH-2)",
        );
    }
    match plan
        .admins
        .iter()
        .find(|a| a.token_subject.as_deref() == Some(principal.subject.as_str()))
    {
        Some(admin) => Caller::Admin {
            name: admin.name.clone(),
            credential: Credential::Token,
        },
        None => refused(
            403,
            Credential::Token,
            "the token's subject is no administrator of this policy",
        ),
    }
}

fn refused(status: u16, credential: Credential, why: &str) -> Caller {
    Caller::Refused {
        status,
        credential,
        why: why.to_owned(),
    }
}

/// The subject CN of a certificate.
fn common_name(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// Why the admin listener could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminSetupError {
    /// The client CA file could not be read or holds no certificate.
    #[error("admin.client_ca {}: {detail}", path.display())]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("admin TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// The admin listener's TLS: TLS 1.3 only, the public certificate (reloaded with it), client
/// certificates requested and verified against `client_ca` when one is set, but optional so
/// that token callers and health probes can connect.
pub fn tls_config(
    plan: &AdminPlan,
    certificates: Arc<crate::tls::ReloadingCertResolver>,
) -> Result<ServerConfig, AdminSetupError> {
    let provider = Arc::new(crate::tls::provider::gateway_provider(false));
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match &plan.client_ca {
        Some(path) => {
            let ca_error = |detail: String| AdminSetupError::ClientCa {
                path: path.clone(),
                detail,
            };
            let chain =
                crate::tls::certificate::load_chain(path).map_err(|e| ca_error(e.to_string()))?;
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(chain);
            if added == 0 {
                return Err(ca_error("no usable CA certificate".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| ca_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(crate::tls::certificate::AnyServerName(
        certificates,
    )));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
