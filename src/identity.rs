//! Identity (R-AUTH-1, R-AUTH-2, R-AUTH-3, R-AUTH-5): who is asking, proven by a bearer token
//! from an issuer the policy trusts, with the multi-factor and step-up evidence the route asks
//! for, in a session that is still alive, from an address that is not locked out.
//!
//! - [`keys`]: an issuer's JWKS, admitted key by key.
//! - [`jwks`]: where the keys come from (file or https URL) and their refresh.
//! - [`token`]: compact JWS verification and claim checks.
//! - [`mfa`]: factor kinds from `amr`/`acr`, step-up (RFC 9470).
//! - [`session`]: idle and absolute limits, logout, revocation (durable state events).
//! - [`failures`]: failed attempts per client address.
//!
//! A route not declared `anonymous` needs a verified identity; without a trusted issuer in the
//! policy every such request is refused (fail closed).

pub mod failures;
pub mod jwks;
pub mod keys;
pub mod mfa;
pub mod session;
pub mod token;

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::decision::{Reason, Refusal};
use crate::route::Route;
pub use failures::{FailureLimits, FailureTracker};
pub use mfa::{FactorKind, MfaRules, StepUp};
pub use session::{SessionLimits, SessionRegistry};
pub use token::{Issuer, TokenError, TokenRules};

/// A verified caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The issuer's policy id.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `azp` or `client_id`.
    pub client_id: Option<String>,
    /// `scope`, split.
    pub scopes: Vec<String>,
    /// `roles`.
    pub roles: Vec<String>,
    /// `sid`, or the token id when there is none.
    pub session: Option<String>,
    /// `jti`.
    pub token_id: Option<String>,
    /// `auth_time`.
    pub auth_time: Option<i64>,
    /// `iat`.
    pub issued_at: Option<i64>,
    /// `amr`.
    pub amr: Vec<String>,
    /// `acr`.
    pub acr: Option<String>,
    /// Whether the evidence shows two or more factor kinds (R-AUTH-2).
    pub multi_factor: bool,
    /// `exp`.
    pub expires_at: i64,
    /// `<issuer id>|<sid or jti>`: what the session registry knows the session by.
    pub session_key: Option<String>,
    /// The identity headers for the upstream, rendered once per token.
    pub upstream_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `<issuer id>|<sub>`: the per-subject rate limiter's key, made once per token.
    pub rate_key: Arc<str>,
    /// The patient the token is for: its `patient` claim, else the id of a `fhirUser` that is a
    /// `Patient/<id>`.
    pub patient: Option<String>,
    /// `scope`, parsed once per token (malformed and granular SMART scopes grant nothing).
    pub granted_scopes: Vec<crate::access::scope::Scope>,
    /// The purposes the token was issued for, from the claim `access.purpose_claim` names
    /// (an array or a space-separated string); `None` when the policy names no claim or the
    /// token lacks it.
    pub purposes: Option<Vec<String>>,
}

/// Names of the headers that carry the verified identity upstream. Client-sent headers with
/// these names (and any header starting with `x-phr-`) are always removed first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityHeaders {
    /// The subject.
    pub subject: String,
    /// The client id.
    pub client_id: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// Comma-separated roles.
    pub roles: String,
    /// The session id.
    pub session: String,
    /// `true` or `false`: multi-factor evidence.
    pub mfa: String,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        IdentityHeaders {
            subject: "x-phr-subject".into(),
            client_id: "x-phr-client-id".into(),
            scopes: "x-phr-scopes".into(),
            roles: "x-phr-roles".into(),
            session: "x-phr-session".into(),
            mfa: "x-phr-mfa".into(),
        }
    }
}

impl IdentityHeaders {
    /// Every configured name.
    pub fn names(&self) -> [&str; 6] {
        [
            &self.subject,
            &self.client_id,
            &self.scopes,
            &self.roles,
            &self.session,
            &self.mfa,
        ]
    }

    /// The headers to send upstream for a principal, rendered once when its token is verified.
    fn render(&self, p: &Principal) -> Vec<(http::HeaderName, http::HeaderValue)> {
        let mut pairs: Vec<(&str, String)> = vec![
            (&self.subject, p.subject.clone()),
            (&self.mfa, p.multi_factor.to_string()),
        ];
        if let Some(client) = &p.client_id {
            pairs.push((&self.client_id, client.clone()));
        }
        if !p.scopes.is_empty() {
            pairs.push((&self.scopes, p.scopes.join(" ")));
        }
        if !p.roles.is_empty() {
            pairs.push((&self.roles, p.roles.join(",")));
        }
        if let Some(session) = &p.session {
            pairs.push((&self.session, session.clone()));
        }
        // Names were checked when the policy was compiled. Values are percent-encoded UTF-8
        // where they hold anything but visible ASCII and spaces (a subject `山田`, a control
        // character), so no claim is ever dropped or sent mangled: a backend that sees no
        // subject header must never have been sent a verified request.
        const ENCODE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
        pairs
            .into_iter()
            .filter_map(|(name, value)| {
                let encoded = percent_encoding::utf8_percent_encode(&value, ENCODE).to_string();
                Some((
                    http::HeaderName::from_bytes(name.as_bytes()).ok()?,
                    http::HeaderValue::from_str(&encoded).ok()?,
                ))
            })
            .collect()
    }
}

/// The compiled identity part of a policy.
pub struct IdentityPlan {
    /// Trusted issuers.
    pub issuers: Vec<Issuer>,
    /// Size and clock rules.
    pub rules: TokenRules,
    /// How `amr`/`acr` are read.
    pub mfa: MfaRules,
    /// Upstream identity headers.
    pub headers: IdentityHeaders,
    /// Session limits (R-AUTH-3).
    pub sessions: SessionLimits,
    /// Failed-attempt limits (R-AUTH-5).
    pub failures: FailureLimits,
    /// Accept a token that names no session (neither `sid` nor `jti`), which no idle lock or
    /// logout can reach (`identity.sessionless_tokens`; off by default, R-AUTH-3).
    pub sessionless_tokens: bool,
    /// The claim that lists the purposes a token was issued for (R-AZ-2).
    pub purpose_claim: Option<String>,
    /// Verified tokens by SHA-256 of the token, so the signature is checked once per token,
    /// with the issuer and the generation of its key set they were verified under.
    cache: quick_cache::sync::Cache<[u8; 32], (Arc<Principal>, usize, u64)>,
}

impl std::fmt::Debug for IdentityPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityPlan")
            .field("issuers", &self.issuers)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// Most verified tokens remembered at once.
pub const CACHE_CAPACITY: usize = 100_000;

impl IdentityPlan {
    /// A plan with an empty cache.
    pub fn new(
        issuers: Vec<Issuer>,
        rules: TokenRules,
        mfa: MfaRules,
        headers: IdentityHeaders,
    ) -> Self {
        IdentityPlan {
            issuers,
            rules,
            mfa,
            headers,
            sessions: SessionLimits {
                idle_secs: 30 * 60,
                absolute_secs: 12 * 3600,
            },
            failures: FailureLimits {
                max_failures: 10,
                window_secs: 60,
                lockout_secs: 300,
            },
            sessionless_tokens: false,
            purpose_claim: None,
            cache: quick_cache::sync::Cache::new(CACHE_CAPACITY),
        }
    }

    /// Verify a token (or find it verified before) and build its principal.
    pub fn principal(&self, token: &str, now: i64) -> Result<Arc<Principal>, TokenError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((p, issuer, generation)) = self.cache.get(&key) {
            let current = self.issuers.get(issuer).map(|i| i.keys.generation());
            if current == Some(generation) {
                // A cached token expires exactly as it would when verified again.
                if now <= p.expires_at.saturating_add(self.rules.leeway_secs) {
                    return Ok(p);
                }
                self.cache.remove(&key);
                return Err(TokenError::Expired);
            }
            // The issuer's keys changed since: verify again.
            self.cache.remove(&key);
        }
        let verified = token::verify(token, &self.issuers, self.rules, now)?;
        let issuer = verified.issuer;
        let generation = self.issuers[issuer].keys.generation();
        let c = verified.claims;
        let amr = c.amr.unwrap_or_default();
        let issuer_id = &self.issuers[issuer].id;
        // An empty claim names no session: every token carrying it would share one.
        let named = |claim: Option<String>| claim.filter(|s| !s.is_empty());
        let session = named(c.sid).or_else(|| named(c.jti.clone()));
        let mut principal = Principal {
            issuer: issuer_id.clone(),
            session_key: session.as_ref().map(|s| format!("{issuer_id}|{s}")),
            rate_key: Arc::from(format!("{issuer_id}|{}", c.sub)),
            patient: c.patient.clone().filter(|p| !p.is_empty()).or_else(|| {
                c.fhir_user
                    .as_deref()
                    .and_then(|u| u.rsplit_once("Patient/").map(|(_, id)| id.to_owned()))
                    .filter(|id| !id.is_empty() && !id.contains('/'))
            }),
            granted_scopes: Vec::new(),
            purposes: self
                .purpose_claim
                .as_deref()
                .and_then(|name| c.other.get(name))
                .and_then(purposes_of),
            upstream_headers: Vec::new(),
            multi_factor: self.mfa.is_multi_factor(&amr, c.acr.as_deref()),
            subject: c.sub,
            client_id: c.azp.or(c.client_id),
            scopes: c
                .scope
                .map(|s| s.split_ascii_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            roles: c.roles.unwrap_or_default(),
            session,
            token_id: c.jti,
            auth_time: c.auth_time,
            issued_at: c.iat,
            amr,
            acr: c.acr,
            expires_at: c.exp,
        };
        principal.upstream_headers = self.headers.render(&principal);
        principal.granted_scopes = crate::access::scope::granted(&principal.scopes);
        let principal = Arc::new(principal);
        self.cache
            .insert(key, (Arc::clone(&principal), issuer, generation));
        Ok(principal)
    }
}

/// The `WWW-Authenticate` challenge of RFC 6750 for a refused token.
fn invalid_token_challenge(description: &str) -> String {
    format!(
        "Bearer realm=\"phr-gateway\", error=\"invalid_token\", error_description=\"{}\"",
        description.replace('"', "'")
    )
}

/// Refuse a bearer token sent anywhere but the `Authorization` header: an `access_token`
/// query parameter (RFC 6750 section 2.3) or form field (section 2.2), in any spelling a
/// backend's parser reads as it (`access::names_parameter_loosely`). The gateway verifies
/// only the header's token. A backend that also reads these (OAuth resource-server libraries
/// can be set to) would act on a token the gateway never checked — revoked at logout,
/// password-only, or another person's — on a route whose subject is the caller, or on an
/// anonymous one; and a token in a URL lands in logs and `Referer`s (section 5.3). Section
/// 3.1 answers a request that uses more than one method with `invalid_request`, 400.
/// `parameters` is a query or an `application/x-www-form-urlencoded` body.
pub fn check_token_only_in_header(parameters: &str) -> Result<(), Refusal> {
    // Most queries name no token: without `token` and without a `%` (which could spell one
    // of its letters), no key can read as `access_token`, and the keys need not be split.
    let bytes = parameters.as_bytes();
    let could_name_it = memchr::memchr(b'%', bytes).is_some()
        || bytes.windows(5).any(|w| w.eq_ignore_ascii_case(b"token"));
    if !could_name_it || !crate::access::names_parameter_loosely(parameters, "access_token") {
        return Ok(());
    }
    Err(refusal(
        Reason::IdentityTokenOutsideHeader,
        "send the bearer token only in the Authorization header, never as access_token",
        "Bearer realm=\"phr-gateway\", error=\"invalid_request\", error_description=\"the token goes in the Authorization header only\"".into(),
    ))
}

fn refusal(reason: Reason, detail: impl Into<String>, challenge: String) -> Refusal {
    let mut r = Refusal::new(reason, detail);
    r.challenge = Some(challenge);
    r
}

/// What the identity step keeps between requests: sessions and failed attempts. `explain`
/// runs without it (no session or failure state to consult).
#[derive(Clone, Copy, Debug, Default)]
pub struct IdentityState<'a> {
    /// Sessions and revocations.
    pub sessions: Option<&'a SessionRegistry>,
    /// Failed attempts per address.
    pub failures: Option<&'a FailureTracker>,
    /// The client's address.
    pub client: Option<std::net::IpAddr>,
}

/// The identity step for a matched route: `None` for an anonymous route, the principal
/// otherwise, or the refusal (R-AUTH-1, R-AUTH-2, R-AUTH-3, R-AUTH-5).
pub fn identify(
    headers: &HeaderMap,
    route: &Route,
    plan: &IdentityPlan,
    state: IdentityState<'_>,
    now: i64,
) -> Result<Option<Arc<Principal>>, Refusal> {
    if route.anonymous {
        return Ok(None);
    }
    let tracked = state.failures.zip(state.client);
    if let Some(wait) = tracked.and_then(|(f, client)| f.locked(client, now)) {
        let mut r = Refusal::new(
            Reason::IdentityTooManyFailures,
            format!("too many invalid tokens from this address; try again in {wait} s"),
        );
        r.retry_after = Some(wait);
        return Err(r);
    }
    let principal = verified_principal(headers, plan, now).inspect_err(|refusal| {
        if refusal.reason != Reason::IdentityMissing {
            if let Some((failures, client)) = tracked {
                if failures.fail(client, plan.failures, now) {
                    tracing::warn!(%client, "address locked out after repeated invalid tokens");
                }
            }
        }
    })?;
    // A session is what an idle lock, a logout and a session revocation end: a token that
    // names none would outlive all three (R-AUTH-3).
    if principal.session_key.is_none() && !plan.sessionless_tokens {
        return Err(refusal(
            Reason::IdentityInvalidToken,
            "the token names no session (neither sid nor jti), so no idle lock or logout could end it",
            invalid_token_challenge("the token names no session (sid or jti)"),
        ));
    }
    if let Some(sessions) = state.sessions {
        sessions.check(&principal, plan.sessions, now)?;
    }
    require_evidence(route, plan, &principal, now)?;
    Ok(Some(principal))
}

/// The principal of the request's bearer token, without any route requirement (what logout
/// needs: the caller's own session).
pub fn verified_principal(
    headers: &HeaderMap,
    plan: &IdentityPlan,
    now: i64,
) -> Result<Arc<Principal>, Refusal> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        let detail = if headers.contains_key(AUTHORIZATION) {
            "send exactly one Authorization header"
        } else if plan.issuers.is_empty() {
            "this route requires a verified identity, and this gateway has no token issuer configured"
        } else {
            "this route requires a bearer token"
        };
        return Err(refusal(
            Reason::IdentityMissing,
            detail,
            "Bearer realm=\"phr-gateway\"".into(),
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(refusal(
            Reason::IdentityMissing,
            "the Authorization header is not `Bearer <token>`",
            "Bearer realm=\"phr-gateway\"".into(),
        ));
    };
    plan.principal(token, now).map_err(|e| {
        let reason = e.reason();
        refusal(
            reason,
            e.to_string(),
            invalid_token_challenge(&e.to_string()),
        )
    })
}

/// The route's multi-factor and step-up requirements.
fn require_evidence(
    route: &Route,
    plan: &IdentityPlan,
    principal: &Principal,
    now: i64,
) -> Result<(), Refusal> {
    if route.mfa && !principal.multi_factor {
        let mut challenge = String::from(
            "Bearer realm=\"phr-gateway\", error=\"insufficient_user_authentication\", error_description=\"sign in with two kinds of factor\"",
        );
        if !plan.mfa.mfa_acr.is_empty() {
            challenge.push_str(&format!(", acr_values=\"{}\"", plan.mfa.mfa_acr.join(" ")));
        }
        return Err(refusal(
            Reason::IdentityMfaRequired,
            "this route requires multi-factor authentication; the token shows fewer than two kinds of factor",
            challenge,
        ));
    }
    if !route
        .step_up
        .satisfied(principal.auth_time, principal.acr.as_deref(), now)
    {
        return Err(refusal(
            Reason::IdentityStepUpRequired,
            "this route requires a more recent or stronger sign-in",
            route.step_up.challenge(),
        ));
    }
    Ok(())
}

/// A purposes claim: an array of strings or one space-separated string.
fn purposes_of(value: &serde_json::Value) -> Option<Vec<String>> {
    match value {
        serde_json::Value::String(s) => {
            Some(s.split_ascii_whitespace().map(str::to_owned).collect())
        }
        serde_json::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

/// Seconds since the epoch, for token times.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_taken_only_from_the_authorization_header() {
        for refused in [
            "access_token=t",
            "_count=5&ACCESS_TOKEN=t",
            "access_%74oken=t",
            "%61ccess_token=t",
            "access%5Ftoken=t",
            "a=1;access_token=t",
        ] {
            let refusal = check_token_only_in_header(refused).expect_err(refused);
            assert_eq!(refusal.reason, Reason::IdentityTokenOutsideHeader);
            assert_eq!(refusal.reason.status(), 400);
        }
        for passed in ["", "_count=5", "token=t", "code=a%7Cb", "note=access_token"] {
            assert!(check_token_only_in_header(passed).is_ok(), "{passed}");
        }
    }
}
