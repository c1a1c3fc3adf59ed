//! Compiling the operating sections of a policy: `[network]`, `[limits]`, `[admin]` and
//! `[[admins]]`, and each route's `allow_from` and `rate_limit`.

use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::compile::Diagnostics;
use super::schema::{PolicyFile, RateSection};
use crate::admin::{AdminIdentity, AdminPlan};
use crate::limits::connections::ConnectionPlan;
use crate::limits::{Rate, RateLimits};
use crate::net::{self, NetworkList, NetworkPlan};

/// The largest `limits.max_body_bytes` a policy may set.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// The compiled limits of a snapshot.
#[derive(Debug)]
pub struct LimitsPlan {
    /// The rate limiters (fresh for each snapshot).
    pub rates: RateLimits,
    /// Connection limits and deadlines.
    pub connections: ConnectionPlan,
    /// The policy's rates, for reports.
    pub per_client: Option<Rate>,
    /// The policy's rates, for reports.
    pub per_subject: Option<Rate>,
    /// Routes with a limit of their own.
    pub routes_limited: usize,
    /// The key bound of each keyed limiter.
    pub max_keys: usize,
    /// Bounds on a request's head (R-WAF-3).
    pub request: crate::protocol::RequestLimits,
}

/// A list of networks from the policy; each bad entry is a diagnostic at its position.
pub(super) fn networks(entries: &[Spanned<String>], diags: &mut Diagnostics<'_>) -> NetworkList {
    let mut list = Vec::new();
    for entry in entries {
        match net::parse_network(entry.get_ref()) {
            Ok(network) => list.push(network),
            Err(message) => diags.at(entry.span(), message),
        }
    }
    NetworkList::new(list)
}

pub(super) fn network(file: &PolicyFile, diags: &mut Diagnostics<'_>) -> NetworkPlan {
    NetworkPlan {
        allow: networks(&file.network.allow, diags),
        deny: networks(&file.network.deny, diags),
        trusted_proxies: networks(&file.network.trusted_proxies, diags),
    }
}

/// A rate from the policy, or a diagnostic.
pub(super) fn rate(
    section: &RateSection,
    span: std::ops::Range<usize>,
    what: &str,
    diags: &mut Diagnostics<'_>,
) -> Option<Rate> {
    let requests = NonZeroU32::new(section.requests);
    let burst = NonZeroU32::new(section.burst.unwrap_or(section.requests));
    match (requests, burst, section.per_secs) {
        (Some(requests), Some(burst), per_secs) if per_secs > 0 => Some(Rate {
            requests,
            per_secs,
            burst,
        }),
        _ => {
            diags.at(
                span,
                format!("{what}: requests, per_secs and burst must each be at least 1"),
            );
            None
        }
    }
}

pub(super) fn limits(
    file: &PolicyFile,
    route_rates: Vec<Option<Rate>>,
    diags: &mut Diagnostics<'_>,
) -> LimitsPlan {
    let section = &file.limits;
    let per_client = section
        .per_client
        .as_ref()
        .and_then(|r| rate(r.get_ref(), r.span(), "limits.per_client", diags));
    let per_subject = section
        .per_subject
        .as_ref()
        .and_then(|r| rate(r.get_ref(), r.span(), "limits.per_subject", diags));
    let routes_limited = route_rates.iter().filter(|r| r.is_some()).count();
    for (value, name) in [
        (section.header_timeout_secs, "header_timeout_secs"),
        (section.body_timeout_secs, "body_timeout_secs"),
        (section.idle_timeout_secs, "idle_timeout_secs"),
        (section.max_keys as u64, "max_keys"),
        (section.max_body_bytes as u64, "max_body_bytes"),
    ] {
        if value == 0 {
            diags.at(0..0, format!("limits.{name} must be at least 1"));
        }
    }
    if section.max_body_bytes > MAX_BODY_BYTES {
        // Every request on a body-reading route may hold this much memory at once.
        diags.at(
            0..0,
            format!("limits.max_body_bytes must be at most {MAX_BODY_BYTES} (256 MiB)"),
        );
    }
    LimitsPlan {
        rates: RateLimits::new(per_client, per_subject, route_rates, section.max_keys),
        request: crate::protocol::RequestLimits {
            uri_bytes: section.max_uri_bytes,
            query_params: section.max_query_params,
            headers: section.max_headers,
            header_bytes: section.max_header_bytes,
            json_depth: section.max_json_depth,
            body_bytes: section.max_body_bytes,
        },
        connections: ConnectionPlan {
            per_client: section.connections_per_client,
            header_timeout: Duration::from_secs(section.header_timeout_secs),
            idle_timeout: Duration::from_secs(section.idle_timeout_secs),
            body_timeout: Duration::from_secs(section.body_timeout_secs),
        },
        per_client,
        per_subject,
        routes_limited,
        max_keys: section.max_keys,
    }
}

pub(super) fn admin(
    file: &PolicyFile,
    base: &Path,
    issuer_ids: &[&str],
    diags: &mut Diagnostics<'_>,
) -> Option<AdminPlan> {
    let Some(section) = &file.admin else {
        if let Some(first) = file.admins.first() {
            diags.at(
                first.span(),
                "[[admins]] are declared but there is no [admin] table, so no admin listener",
            );
        }
        return None;
    };
    let token_issuer = section.token_issuer.as_ref().and_then(|id| {
        let found = issuer_ids.iter().position(|i| i == id.get_ref());
        if found.is_none() {
            diags.at(
                id.span(),
                format!(
                    "admin.token_issuer `{}` is not an [[issuers]] id; declared: {}",
                    id.get_ref(),
                    if issuer_ids.is_empty() {
                        "none".to_owned()
                    } else {
                        issuer_ids.join(", ")
                    }
                ),
            );
        }
        found
    });
    let mut admins: Vec<AdminIdentity> = Vec::new();
    for entry in &file.admins {
        let a = entry.get_ref();
        let name = a.name.get_ref();
        if name.is_empty() || admins.iter().any(|b| &b.name == name) {
            diags.at(
                a.name.span(),
                format!("admin name `{name}` must be non-empty and unique"),
            );
            continue;
        }
        let pin = a.certificate_sha256.as_ref().and_then(|hex_text| {
            let bytes = hex::decode(hex_text.get_ref().replace(':', ""))
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            if bytes.is_none() {
                diags.at(
                    hex_text.span(),
                    "certificate_sha256 must be 64 hex digits (colons allowed)",
                );
            }
            bytes
        });
        let by_certificate = a.certificate_cn.is_some() || pin.is_some();
        if by_certificate && section.client_ca.is_none() {
            diags.at(
                entry.span(),
                format!("admin `{name}` is known by certificate, but admin.client_ca is not set"),
            );
        }
        if a.token_subject.is_some() && section.token_issuer.is_none() {
            diags.at(
                entry.span(),
                format!("admin `{name}` is known by token, but admin.token_issuer is not set"),
            );
        }
        if !by_certificate && a.token_subject.is_none() {
            diags.at(
                entry.span(),
                format!(
                    "admin `{name}` has no credential: give certificate_cn, certificate_sha256 or token_subject"
                ),
            );
        }
        admins.push(AdminIdentity {
            name: name.clone(),
            certificate_cn: a.certificate_cn.clone(),
            certificate_sha256: pin,
            token_subject: a.token_subject.clone(),
        });
    }
    Some(AdminPlan {
        listen: section.listen,
        client_ca: section.client_ca.as_ref().map(|p| base.join(p.get_ref())),
        token_issuer,
        token_role: section.token_role.clone(),
        allow: networks(&section.allow, diags),
        admins,
    })
}
