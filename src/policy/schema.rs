//! The policy file as written by operators: TOML, every table closed to unknown keys.
//!
//! These types only describe the file. [`super::compile`] turns them into the immutable
//! [`super::Snapshot`] the proxy uses. `docs/policy.md` explains every key; the JSON Schema in
//! `docs/policy.schema.json` is generated from these types (`phr-gateway schema`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// A whole policy file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Process-wide settings.
    #[serde(default)]
    pub gateway: GatewaySection,
    /// Where the gateway listens.
    pub listeners: ListenersSection,
    /// The public listener's TLS (R-TLS-1, R-TLS-2).
    pub tls: TlsSection,
    /// Backends, by name.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, UpstreamSection>")]
    pub upstreams: BTreeMap<String, Spanned<UpstreamSection>>,
    /// The audit store (R-LOG-1 … R-LOG-5). Every request's record goes there.
    pub audit: AuditSection,
    /// How tokens are checked (R-AUTH-1, R-AUTH-2).
    #[serde(default)]
    pub identity: IdentitySection,
    /// Token issuers the gateway trusts. Without one, every route that is not `anonymous` is
    /// refused.
    #[serde(default)]
    #[schemars(with = "Vec<IssuerSection>")]
    pub issuers: Vec<Spanned<IssuerSection>>,
    /// Network rules: allow and deny lists, trusted proxies (R-NET-1).
    #[serde(default)]
    pub network: NetworkSection,
    /// Rate, connection and time limits (R-NET-3).
    #[serde(default)]
    pub limits: LimitsSection,
    /// The admin listener (R-AUTH-4, R-NET-2). Without this table there is none.
    pub admin: Option<AdminSection>,
    /// The administrators, by name (R-AUTH-4). Removing a name removes its access at the next
    /// reload.
    #[serde(default)]
    #[schemars(with = "Vec<AdminEntry>")]
    pub admins: Vec<Spanned<AdminEntry>>,
    /// How requests state their purpose (R-AZ-2).
    #[serde(default)]
    pub access: AccessSection,
    /// The purpose catalogue (R-AZ-2): every purpose a route may serve.
    #[serde(default)]
    #[schemars(with = "Vec<PurposeSection>")]
    pub purposes: Vec<Spanned<PurposeSection>>,
    /// Third parties the subject may consent to provide data to (R-AZ-4, R-AZ-8).
    #[serde(default)]
    #[schemars(with = "Vec<RecipientSection>")]
    pub recipients: Vec<Spanned<RecipientSection>>,
    /// The route table. A request that matches no route is refused (default deny, R-AZ-1).
    #[serde(default)]
    #[schemars(with = "Vec<RouteSection>")]
    pub routes: Vec<Spanned<RouteSection>>,
}

/// `[gateway]`: process-wide settings. All of them take effect only at start.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// This node's name in logs and audit records. Default: the host name.
    pub node_id: Option<String>,
    /// Worker threads of the proxy service (1 to 256).
    #[serde(
        default = "default_worker_threads",
        deserialize_with = "worker_threads_in_range"
    )]
    #[schemars(range(min = 1, max = 256))]
    pub worker_threads: usize,
    /// On SIGTERM: seconds in-flight requests get to finish after the listeners close.
    #[serde(default = "default_drain_secs")]
    pub drain_secs: u64,
    /// After the drain: seconds the runtimes get to stop before the process exits anyway.
    #[serde(default = "default_shutdown_timeout_secs")]
    pub shutdown_timeout_secs: u64,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            node_id: None,
            worker_threads: default_worker_threads(),
            drain_secs: default_drain_secs(),
            shutdown_timeout_secs: default_shutdown_timeout_secs(),
        }
    }
}

fn default_worker_threads() -> usize {
    2
}

/// Checked while parsing, so the error carries the value's own line and column.
fn worker_threads_in_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if (1..=256).contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "worker_threads must be between 1 and 256, not {n}"
        )))
    }
}
fn default_drain_secs() -> u64 {
    10
}
fn default_shutdown_timeout_secs() -> u64 {
    5
}

/// `[listeners]`: addresses. Take effect only at start.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenersSection {
    /// The TLS listener for users and apps, e.g. `"0.0.0.0:8443"`.
    #[schemars(with = "String")]
    pub public: SocketAddr,
    /// Optional plain-HTTP listener that only answers `308 Permanent Redirect` to https.
    #[schemars(with = "Option<String>")]
    pub redirect: Option<SocketAddr>,
    /// Host (and optional port) put in redirect `Location`s, e.g. `"phr.example.jp"`. Without
    /// it the request's own `Host` is used, with the public listener's port, if `hosts`
    /// lists it.
    pub redirect_host: Option<String>,
    /// Host names (or addresses) the public listener serves, e.g. `["phr.example.jp"]`, each
    /// exactly, without a port. A request whose `Host` (HTTP/2: `:authority`) names another,
    /// port and case aside, is refused with 421 `route.host_not_served` before it is routed.
    /// Empty (the default): any host. Reloadable.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub hosts: Vec<Spanned<String>>,
}

/// `[tls]`: the public listener's certificate and protocol versions.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM file with the certificate chain, leaf first. Relative to the policy file.
    #[schemars(with = "PathBuf")]
    pub certificate_chain: Spanned<PathBuf>,
    /// PEM file with the private key (PKCS#8, SEC1 or PKCS#1). Relative to the policy file.
    #[schemars(with = "PathBuf")]
    pub private_key: Spanned<PathBuf>,
    /// Accept TLS 1.2 as well as 1.3 (R-TLS-1 allows it only where 1.3 is hard). Even then only
    /// ECDHE key exchange with AES-GCM or ChaCha20-Poly1305. Takes effect only at start.
    #[serde(default)]
    pub allow_tls12: bool,
    /// Seconds between checks of the certificate files for a renewal; 0 turns polling off
    /// (SIGHUP still reloads).
    #[serde(default = "default_watch_interval_secs")]
    pub watch_interval_secs: u64,
}

fn default_watch_interval_secs() -> u64 {
    10
}

/// `[audit]`: where and how access records and state events are kept. Start-only: a reload
/// that changes this section is refused.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// The store's directory (created if missing). Relative to the policy file.
    #[schemars(with = "PathBuf")]
    pub dir: Spanned<PathBuf>,
    /// Ed25519 key that signs checkpoints (C2SP signed-note text). Generated on first start
    /// when the file does not exist, with its public half beside it (`.pub`). Keep it outside
    /// `dir`. Relative to the policy file.
    #[schemars(with = "PathBuf")]
    pub signing_key: Spanned<PathBuf>,
    /// Checkpoint origin prefix: the logs' checkpoints name `<origin>/access` and
    /// `<origin>/state`. Default: `phr-gateway/<node_id>`.
    #[schemars(with = "Option<String>")]
    pub origin: Option<Spanned<String>>,
    /// Write a signed checkpoint after this many new records…
    #[serde(default = "default_checkpoint_every_records")]
    #[schemars(range(min = 1))]
    pub checkpoint_every_records: u64,
    /// …or this many seconds after the last one, whichever comes first.
    #[serde(default = "default_checkpoint_interval_secs")]
    #[schemars(range(min = 1))]
    pub checkpoint_interval_secs: u64,
    /// Segment files are rotated once they pass this size.
    #[serde(default = "default_segment_max_mib")]
    #[schemars(range(min = 1))]
    pub segment_max_mib: u64,
    /// Longest time (ms) a written access record waits for its fsync in `batched` mode.
    #[serde(default = "default_sync_interval_ms")]
    pub sync_interval_ms: u64,
    /// `batched` (default): an access record is acknowledged once written, synced within
    /// `sync_interval_ms` (group commit). `durable`: acknowledged once synced. State events
    /// are always durable.
    #[serde(default = "default_durability")]
    pub access_durability: crate::audit::Durability,
    /// While access records cannot be written: `fail_closed` (default) refuses new requests
    /// with 503 `audit.unavailable`; `degrade` serves them, counts the lost records and logs
    /// an alert.
    #[serde(default = "default_on_audit_failure")]
    pub on_audit_failure: crate::audit::OnFailure,
    /// Records that may wait for the writer before requests wait for room.
    #[serde(default = "default_queue_capacity")]
    #[schemars(range(min = 1))]
    pub queue_capacity: usize,
    /// A file holding a secret of at least 32 bytes. When set, subject identifiers are written
    /// as keyed pseudonyms (HMAC-SHA-256), for logs that leave the host (R-LOG-5).
    #[schemars(with = "Option<PathBuf>")]
    pub pseudonym_key: Option<Spanned<PathBuf>>,
}

fn default_checkpoint_every_records() -> u64 {
    1000
}
fn default_checkpoint_interval_secs() -> u64 {
    10
}
fn default_segment_max_mib() -> u64 {
    64
}
fn default_sync_interval_ms() -> u64 {
    5
}
fn default_durability() -> crate::audit::Durability {
    crate::audit::Durability::Batched
}
fn default_on_audit_failure() -> crate::audit::OnFailure {
    crate::audit::OnFailure::FailClosed
}
fn default_queue_capacity() -> usize {
    8192
}

/// `[identity]`: rules for every token.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    /// Clock skew allowed on `exp`, `nbf` and `iat` (0 to 120 seconds).
    #[serde(default = "default_leeway_secs", deserialize_with = "leeway_in_range")]
    #[schemars(range(max = 120))]
    pub leeway_secs: u64,
    /// Largest token accepted, in bytes.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// `amr` values and the factor kind each proves (`knowledge`, `possession`, `inherence`),
    /// added to (or overriding) the RFC 8176 table in docs/identity.md.
    #[serde(default)]
    pub amr: BTreeMap<String, crate::identity::FactorKind>,
    /// `acr` values that by themselves count as multi-factor.
    #[serde(default)]
    pub mfa_acr: Vec<String>,
    /// Believe `amr: ["mfa"]` without the factors themselves. Default `false`.
    #[serde(default)]
    pub accept_mfa_amr: bool,
    /// Names of the headers that carry the verified identity upstream.
    #[serde(default)]
    pub headers: IdentityHeadersSection,
    /// A session with no request for this long is locked (R-AUTH-3).
    #[serde(default = "default_session_idle_secs")]
    pub session_idle_secs: u64,
    /// A session ends this long after its sign-in (`auth_time`, else `iat`).
    #[serde(default = "default_session_absolute_secs")]
    pub session_absolute_secs: u64,
    /// Accept tokens that name no session (neither `sid` nor `jti`), for an issuer whose
    /// access tokens carry neither: no idle lock, logout or session revocation reaches them,
    /// only the absolute lifetime and revocation by subject (R-AUTH-3). Default `false`: such
    /// a token is refused `identity.invalid_token`.
    #[serde(default)]
    pub sessionless_tokens: bool,
    /// Invalid tokens allowed per client address within `failure_window_secs` (R-AUTH-5).
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// The window failures are counted in.
    #[serde(default = "default_failure_window_secs")]
    pub failure_window_secs: u64,
    /// How long an address over the limit is refused.
    #[serde(default = "default_lockout_secs")]
    pub lockout_secs: u64,
}

fn default_jwks_refresh_secs() -> u64 {
    300
}
fn default_jwks_min_refetch_secs() -> u64 {
    30
}
fn default_session_idle_secs() -> u64 {
    30 * 60
}
fn default_session_absolute_secs() -> u64 {
    12 * 3600
}
fn default_max_failures() -> u32 {
    10
}
fn default_failure_window_secs() -> u64 {
    60
}
fn default_lockout_secs() -> u64 {
    300
}

impl Default for IdentitySection {
    fn default() -> Self {
        IdentitySection {
            leeway_secs: default_leeway_secs(),
            max_token_bytes: default_max_token_bytes(),
            amr: BTreeMap::new(),
            mfa_acr: Vec::new(),
            accept_mfa_amr: false,
            headers: IdentityHeadersSection::default(),
            session_idle_secs: default_session_idle_secs(),
            session_absolute_secs: default_session_absolute_secs(),
            sessionless_tokens: false,
            max_failures: default_max_failures(),
            failure_window_secs: default_failure_window_secs(),
            lockout_secs: default_lockout_secs(),
        }
    }
}

fn default_leeway_secs() -> u64 {
    30
}

/// Checked while parsing, so the error carries the value's own line and column.
fn leeway_in_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if n <= 120 {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "leeway_secs must be at most 120, not {n}: a larger skew keeps expired tokens alive"
        )))
    }
}
fn default_max_token_bytes() -> usize {
    8192
}

/// `[identity.headers]`: upstream header names (defaults `x-phr-subject`, `x-phr-client-id`,
/// `x-phr-scopes`, `x-phr-roles`, `x-phr-session`, `x-phr-mfa`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeadersSection {
    /// The subject.
    pub subject: Option<String>,
    /// The client id.
    pub client_id: Option<String>,
    /// Space-separated scopes.
    pub scopes: Option<String>,
    /// Comma-separated roles.
    pub roles: Option<String>,
    /// The session id.
    pub session: Option<String>,
    /// `true` when the token shows multi-factor evidence.
    pub mfa: Option<String>,
}

/// `[[issuers]]`: one token issuer.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerSection {
    /// The policy's name for it (in records and metrics).
    pub id: String,
    /// Its `iss` value, e.g. `"https://id.example.jp"`.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// Accepted algorithms: `RS256`, `PS256`, `ES256`, `EdDSA`.
    #[schemars(with = "Vec<String>")]
    pub algorithms: Vec<Spanned<String>>,
    /// The issuer's JWKS document as a file, relative to the policy file; read at load and
    /// reload. Give this or `jwks_url`.
    #[schemars(with = "Option<PathBuf>")]
    pub jwks_file: Option<Spanned<PathBuf>>,
    /// The issuer's JWKS endpoint (`https://...`): fetched at load (the policy is refused if
    /// it cannot be), refreshed every `jwks_refresh_secs` and when a token names an unknown
    /// `kid` (at most once per `jwks_min_refetch_secs`); a failed refresh keeps the last keys.
    #[schemars(with = "Option<String>")]
    pub jwks_url: Option<Spanned<String>>,
    /// PEM trust anchors for `jwks_url` (default: the system's).
    #[schemars(with = "Option<PathBuf>")]
    pub jwks_ca: Option<Spanned<PathBuf>>,
    /// Scheduled JWKS refresh interval.
    #[serde(default = "default_jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
    /// Least time between fetches triggered by unknown key ids.
    #[serde(default = "default_jwks_min_refetch_secs")]
    pub jwks_min_refetch_secs: u64,
    /// Required `typ` header, e.g. `"at+jwt"` (RFC 9068).
    pub token_type: Option<String>,
}

/// `[upstreams.NAME]`: one backend.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// `http://host:port` or `https://host:port`, no path. Host names are resolved when the
    /// policy is loaded or reloaded.
    #[schemars(with = "String")]
    pub url: Spanned<String>,
    /// PEM file of the CA certificates that sign the upstream's certificate (https only).
    /// Without it the system's trust store is used.
    #[schemars(with = "Option<PathBuf>")]
    pub ca: Option<Spanned<PathBuf>>,
    /// PEM certificate chain the gateway presents to the upstream (mutual TLS, R-TLS-4).
    #[schemars(with = "Option<PathBuf>")]
    pub client_certificate: Option<Spanned<PathBuf>>,
    /// PEM private key for `client_certificate`.
    #[schemars(with = "Option<PathBuf>")]
    pub client_key: Option<Spanned<PathBuf>>,
    /// Name sent as SNI and checked against the upstream's certificate. Default: the URL host.
    pub sni: Option<String>,
    /// Milliseconds to establish a connection (TCP and TLS).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Milliseconds the upstream may stay silent while answering.
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
    /// Seconds an idle pooled connection to the upstream is kept.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
}

fn default_connect_timeout_ms() -> u64 {
    3_000
}
fn default_read_timeout_ms() -> u64 {
    30_000
}
fn default_idle_timeout_secs() -> u64 {
    60
}

/// `[[routes]]`: one declared route.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Stable identifier, used in logs, metrics and audit records.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// HTTP methods, upper case. `GET` implies `HEAD`.
    #[schemars(with = "Vec<String>")]
    pub methods: Vec<Spanned<String>>,
    /// Path pattern: literal segments, `{name}` for one segment, `{*name}` for the rest.
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    /// Name of an entry in `[upstreams]`.
    #[schemars(with = "String")]
    pub upstream: Spanned<String>,
    /// What kind of data the route carries (R-AZ-1 classifies health data apart).
    pub category: DataCategory,
    /// `true` for the few routes that need no identity. Default `false`: identity required.
    #[serde(default)]
    pub anonymous: bool,
    /// Require multi-factor evidence (R-AUTH-2). Default `true` for routes that need identity.
    #[serde(default = "default_true")]
    pub mfa: bool,
    /// Step-up: the sign-in (`auth_time`) must be at most this many seconds old.
    pub max_auth_age_secs: Option<u64>,
    /// Step-up: the token's `acr` must be one of these.
    #[serde(default)]
    pub acr_values: Vec<String>,
    /// When not empty, only these networks may use the route (R-NET-1).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allow_from: Vec<Spanned<String>>,
    /// A limit for the route as a whole, all callers together (R-NET-3).
    pub rate_limit: Option<RateSection>,
    /// Scopes the token must hold, each covered by a granted scope: plain strings, or SMART
    /// on FHIR scopes such as `patient/Observation.rs` (R-AZ-1).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub scopes: Vec<Spanned<String>>,
    /// Roles (in the token's `roles`), any one of which the caller must have.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Where the request's data subject is: `self`, `path:NAME` (a parameter of `path`) or
    /// `query:NAME` (e.g. `query:patient`). The caller may then reach only its own data.
    #[schemars(with = "Option<String>")]
    pub subject: Option<Spanned<String>>,
    /// The purposes the route serves (ids of `[[purposes]]`); a request must state one of them
    /// (R-AZ-2).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub purposes: Vec<Spanned<String>>,
    /// A FHIR route: the FHIR base path (e.g. `/fhir`, with `path = "/fhir/{*rest}"`). The
    /// SMART scope and the patient each request needs are derived from its method, path and
    /// query (and a Bundle's entries), instead of `subject`.
    #[schemars(with = "Option<String>")]
    pub fhir: Option<Spanned<String>>,
    /// Input inspection (R-WAF-1): `block` (default), `detect` (forward and record the rule
    /// ids), `neutralise` (rewrite the fields `neutralise` names, block the rest; R-WAF-4) or
    /// `off`. See docs/inspect.md.
    #[serde(default)]
    #[schemars(with = "Option<crate::inspect::Mode>")]
    pub inspect: Option<Spanned<crate::inspect::Mode>>,
    /// Rule ids (`sqli-100`) or classes (`ssrf`) not applied on this route, everywhere or in one
    /// field (`xss@body:note.text`, `sqli@query:q`, `lfi@path`): the false positives an
    /// operator meets, excluded where they occur (CRS-style exclusions).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub inspect_exclude: Vec<Spanned<String>>,
    /// With `inspect = "neutralise"`: the body fields whose HTML special characters are
    /// rewritten as entities — JSON dotted paths with array levels skipped (`note.text`), form
    /// and multipart field names. A FHIR narrative (`text.div`) is cleaned to FHIR's XHTML
    /// instead, when it breaks the narrative rules.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub neutralise: Vec<Spanned<String>>,
    /// The files this route accepts as uploads (R-WAF-2), by media type: raw bodies or
    /// multipart parts with a file name. `application/pdf`, `image/jpeg`, `image/png` are
    /// taken apart and rebuilt; XML is inspected; other listed types pass unchanged; archives
    /// are never accepted. Every other upload is refused (`415 inspect.file_refused`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub files: Vec<Spanned<String>>,
}

/// `[network]`: which networks may use the public listener (R-NET-1). Entries are CIDR
/// networks (`10.0.0.0/8`, `2001:db8::/32`) or single addresses.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// When not empty, only these networks are served.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allow: Vec<Spanned<String>>,
    /// Always refused (deny wins over allow).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub deny: Vec<Spanned<String>>,
    /// Load balancers or proxies in front of the gateway whose `X-Forwarded-For` is believed.
    /// From any other peer the header is ignored.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub trusted_proxies: Vec<Spanned<String>>,
}

/// A rate: `requests` per `per_secs` seconds, `burst` of them back to back.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RateSection {
    /// Requests per window (at least 1).
    #[schemars(range(min = 1))]
    pub requests: u32,
    /// The window in seconds (at least 1). Default 1.
    #[serde(default = "default_per_secs")]
    #[schemars(range(min = 1))]
    pub per_secs: u64,
    /// Requests allowed at once. Default: `requests`.
    pub burst: Option<u32>,
}

fn default_per_secs() -> u64 {
    1
}

/// `[limits]`: rate limits, connection limits and timeouts (R-NET-3).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Requests per client address (after trusted proxies are resolved).
    #[schemars(with = "Option<RateSection>")]
    pub per_client: Option<Spanned<RateSection>>,
    /// Requests per verified subject.
    #[schemars(with = "Option<RateSection>")]
    pub per_subject: Option<Spanned<RateSection>>,
    /// Keys each keyed limiter keeps at most; the least used are dropped beyond it.
    #[serde(default = "default_max_keys")]
    #[schemars(range(min = 1))]
    pub max_keys: usize,
    /// Open connections per client address; 0 for no limit. Trusted proxies are exempt.
    #[serde(default = "default_connections_per_client")]
    pub connections_per_client: u32,
    /// Seconds from accept to a complete first request head (TLS handshake included).
    #[serde(default = "default_header_timeout_secs")]
    #[schemars(range(min = 1))]
    pub header_timeout_secs: u64,
    /// Seconds a client may stay silent while sending a request body.
    #[serde(default = "default_body_timeout_secs")]
    #[schemars(range(min = 1))]
    pub body_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request.
    #[serde(default = "default_idle_timeout_secs_limits")]
    #[schemars(range(min = 1))]
    pub idle_timeout_secs: u64,
    /// Longest request target (path and query) in bytes; longer is `414 protocol.uri_too_long`
    /// (R-WAF-3). At most 1048575, pingora's HTTP/1 bound on a whole head.
    #[serde(
        default = "default_max_uri_bytes",
        deserialize_with = "max_uri_bytes_in_range"
    )]
    #[schemars(range(min = 1, max = 1048575))]
    pub max_uri_bytes: usize,
    /// Most query parameters; more is `400 protocol.too_many_parameters`.
    #[serde(default = "default_max_query_params")]
    #[schemars(range(min = 1))]
    pub max_query_params: usize,
    /// Most request header fields; more is `431 protocol.too_many_headers`. At most 256, the
    /// HTTP/1 parser's own bound.
    #[serde(
        default = "default_max_headers",
        deserialize_with = "max_headers_in_range"
    )]
    #[schemars(range(min = 1, max = 256))]
    pub max_headers: usize,
    /// Most bytes of request header names and values together; more is
    /// `431 protocol.headers_too_large`. HTTP/2's header-list bound is set from this,
    /// `max_headers` and `max_uri_bytes` at start: a reload may lower them, not raise them
    /// above it. At most 1048575, pingora's HTTP/1 bound on a whole head.
    #[serde(
        default = "default_max_header_bytes",
        deserialize_with = "max_header_bytes_in_range"
    )]
    #[schemars(range(min = 1, max = 1048575))]
    pub max_header_bytes: usize,
    /// Deepest nesting of arrays and objects in a JSON body an inspected route reads; deeper
    /// is `400 protocol.json_too_deep`. FHIR resources nest a dozen levels at most. The same
    /// bound holds an XML body's elements (`400 protocol.xml_too_deep`).
    #[serde(default = "default_max_json_depth")]
    #[schemars(range(min = 1, max = 128))]
    pub max_json_depth: usize,
    /// Largest request body, in bytes, a route that reads bodies whole (inspection, file
    /// disarm, FHIR Bundle checks) accepts; larger is `413 protocol.body_too_large`. Each such
    /// request holds its body in memory until it has passed. A body without a declared
    /// length (chunked) is bounded by 64 KiB whatever this says (docs/inspect.md).
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(min = 1, max = 268435456))]
    pub max_body_bytes: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            per_client: None,
            per_subject: None,
            max_keys: default_max_keys(),
            connections_per_client: default_connections_per_client(),
            header_timeout_secs: default_header_timeout_secs(),
            body_timeout_secs: default_body_timeout_secs(),
            idle_timeout_secs: default_idle_timeout_secs_limits(),
            max_uri_bytes: default_max_uri_bytes(),
            max_query_params: default_max_query_params(),
            max_headers: default_max_headers(),
            max_header_bytes: default_max_header_bytes(),
            max_json_depth: default_max_json_depth(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

fn default_max_uri_bytes() -> usize {
    8192
}

fn default_max_query_params() -> usize {
    256
}

fn default_max_headers() -> usize {
    100
}

/// Checked while parsing, so the error carries the value's own line and column.
fn max_headers_in_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    at_most(
        d,
        "max_headers",
        crate::protocol::HTTP1_MAX_HEADERS,
        "a head with more fields",
    )
}

/// Checked while parsing, so the error carries the value's own line and column.
fn max_uri_bytes_in_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    at_most(
        d,
        "max_uri_bytes",
        crate::protocol::HTTP1_MAX_HEAD_BYTES,
        "a larger head",
    )
}

/// Checked while parsing, so the error carries the value's own line and column.
fn max_header_bytes_in_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    at_most(
        d,
        "max_header_bytes",
        crate::protocol::HTTP1_MAX_HEAD_BYTES,
        "a larger head",
    )
}

/// A head limit above what pingora's HTTP/1 parser reads would hold on HTTP/2 alone (and
/// raise HTTP/2's header-list bound, memory held per stream, with it): refused.
fn at_most<'de, D: serde::Deserializer<'de>>(
    d: D,
    key: &str,
    most: usize,
    refused: &str,
) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n <= most {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "{key} must be at most {most}, not {n}: pingora's HTTP/1 parser refuses {refused}"
        )))
    }
}

fn default_max_header_bytes() -> usize {
    32 * 1024
}

fn default_max_json_depth() -> usize {
    64
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_max_keys() -> usize {
    1_000_000
}
fn default_connections_per_client() -> u32 {
    256
}
fn default_header_timeout_secs() -> u64 {
    10
}
fn default_body_timeout_secs() -> u64 {
    30
}
fn default_idle_timeout_secs_limits() -> u64 {
    60
}

/// `[admin]`: the admin listener (R-AUTH-4, R-NET-2). It serves the public listener's
/// certificate, TLS 1.3 only. `listen` and `client_ca` take effect at start; `allow`,
/// `token_*` and the `[[admins]]` list at every reload.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Its address. Default `127.0.0.1:9443`.
    #[serde(default = "default_admin_listen")]
    #[schemars(with = "String")]
    pub listen: SocketAddr,
    /// PEM CA certificates that issue administrators' client certificates (mutual TLS).
    #[schemars(with = "Option<PathBuf>")]
    pub client_ca: Option<Spanned<PathBuf>>,
    /// Id of an `[[issuers]]` entry whose tokens may carry admin rights.
    #[schemars(with = "Option<String>")]
    pub token_issuer: Option<Spanned<String>>,
    /// The role (in the token's `roles`) an admin token must have. Default `phr-admin`.
    #[serde(default = "default_admin_role")]
    pub token_role: String,
    /// Networks admin calls may come from. Default: loopback only.
    #[serde(default = "default_admin_allow")]
    #[schemars(with = "Vec<String>")]
    pub allow: Vec<Spanned<String>>,
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9443))
}
fn default_admin_role() -> String {
    "phr-admin".into()
}
fn default_admin_allow() -> Vec<Spanned<String>> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .map(|s| Spanned::new(0..0, (*s).to_owned()))
        .collect()
}

/// `[[admins]]`: one named administrator and the credentials that prove it is them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminEntry {
    /// The name recorded with every call they make.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The subject common name (CN) of their client certificate, issued by `admin.client_ca`.
    pub certificate_cn: Option<String>,
    /// SHA-256 (hex) of their client certificate (DER), to pin one certificate.
    #[schemars(with = "Option<String>")]
    pub certificate_sha256: Option<Spanned<String>>,
    /// The `sub` of their admin tokens (from `admin.token_issuer`, with `admin.token_role` and
    /// multi-factor evidence).
    pub token_subject: Option<String>,
}

/// `[access]`: how a request states its purpose.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessSection {
    /// The request header that states the purpose. Default `PHR-Purpose`.
    #[serde(default = "default_purpose_header")]
    pub purpose_header: String,
    /// A token claim listing the purposes the token was issued for (array or space-separated
    /// string). When set and present, the stated purpose must be one of them.
    pub purpose_claim: Option<String>,
    /// The country the service operates in (ISO 3166-1 alpha-2). A recipient elsewhere is
    /// abroad: consent to provide to it must name its country (R-AZ-4). Default `JP`.
    #[serde(default = "default_home_country")]
    pub home_country: String,
    /// Whether a subject stop (R-AZ-7) also refuses the subject's own reads (GET, HEAD of their
    /// own data). Default `true`: a stop refuses everything about the subject.
    #[serde(default = "default_true")]
    pub stop_refuses_own_reads: bool,
}

impl Default for AccessSection {
    fn default() -> Self {
        AccessSection {
            purpose_header: default_purpose_header(),
            purpose_claim: None,
            home_country: default_home_country(),
            stop_refuses_own_reads: true,
        }
    }
}

fn default_home_country() -> String {
    "JP".into()
}

/// `[[recipients]]`: a third party (another PHR provider, a clinic, an insurer) that may receive
/// a subject's data under the subject's provision consent (R-AZ-4), while its compliance with the
/// guideline is confirmed (R-AZ-8).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientSection {
    /// Its id (what provision consents name).
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// Its name, as shown to the subject.
    pub name: String,
    /// The token client ids (`azp` or `client_id`) its applications sign in with. A token from
    /// one of these clients is always a third party's, whatever subject claims it carries.
    #[schemars(with = "Vec<String>")]
    pub clients: Spanned<Vec<String>>,
    /// Where it is (ISO 3166-1 alpha-2). Default: `access.home_country`.
    pub country: Option<String>,
    /// The day its compliance with the guideline was last confirmed (a TOML date, e.g.
    /// `2026-04-01`).
    #[schemars(with = "String")]
    pub compliance_confirmed: Spanned<toml::value::Datetime>,
    /// How many days a confirmation holds: provision is refused from the day after
    /// `compliance_confirmed + recheck_days` (UTC).
    pub recheck_days: u32,
}

fn default_purpose_header() -> String {
    "PHR-Purpose".into()
}

/// `[[purposes]]`: one purpose of use, described for the people whose data it concerns.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PurposeSection {
    /// Its id (what requests state and routes list).
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// Japanese description.
    pub ja: String,
    /// English description.
    pub en: String,
}

fn default_true() -> bool {
    true
}

/// The data categories a route can carry. Health categories are the ones the guideline's
/// consent rules (R-AZ-3, R-AZ-4) apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataCategory {
    /// Health-checkup results (健診等情報).
    Checkup,
    /// Prescriptions and dispensing.
    Medication,
    /// Vaccination records.
    Vaccination,
    /// Self-measured vitals (weight, blood pressure, steps, ...).
    Vitals,
    /// The user's account and profile; not health data.
    Account,
    /// Public, non-personal content.
    Public,
}

impl DataCategory {
    /// Whether it is health data (the guideline's 健診等情報 and related records).
    pub const fn is_health(self) -> bool {
        matches!(
            self,
            DataCategory::Checkup
                | DataCategory::Medication
                | DataCategory::Vaccination
                | DataCategory::Vitals
        )
    }

    /// The name used in the policy file and in records.
    pub const fn as_str(self) -> &'static str {
        match self {
            DataCategory::Checkup => "checkup",
            DataCategory::Medication => "medication",
            DataCategory::Vaccination => "vaccination",
            DataCategory::Vitals => "vitals",
            DataCategory::Account => "account",
            DataCategory::Public => "public",
        }
    }
}
