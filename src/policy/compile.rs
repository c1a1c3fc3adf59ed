//! From [`PolicyFile`] to [`Snapshot`]: every check that can be made before serving is made
//! here, so a snapshot that exists is one the proxy can run.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use rustls::sign::CertifiedKey;

use super::schema::{PolicyFile, RouteSection};
use super::{Diagnostic, PolicyError, PolicyVersion};
use crate::route::{Route, RouteTable, RouteTableBuilder};
use crate::tls::certificate;
use crate::upstream::{self, Upstream};

/// Process-wide settings (start-only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewaySettings {
    /// This node's name.
    pub node_id: String,
    /// Proxy worker threads.
    pub worker_threads: usize,
    /// Drain time on SIGTERM.
    pub drain: Duration,
    /// Runtime stop timeout after the drain.
    pub shutdown_timeout: Duration,
}

/// Listener addresses (start-only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listeners {
    /// The TLS listener.
    pub public: SocketAddr,
    /// The optional redirect-only plain listener.
    pub redirect: Option<SocketAddr>,
    /// Host for redirect `Location`s.
    pub redirect_host: Option<String>,
    /// The host names the public listener serves, lower case, without a trailing dot; empty
    /// for any (not start-only: read per request from the snapshot).
    pub hosts: Vec<String>,
}

/// The public listener's TLS plan.
pub struct TlsPlan {
    /// Certificate chain file (absolute or relative to the working directory).
    pub certificate_chain: PathBuf,
    /// Private key file.
    pub private_key: PathBuf,
    /// TLS 1.2 opted in (start-only).
    pub allow_tls12: bool,
    /// How often the files are checked for a renewal; `None`: never (SIGHUP only).
    pub watch_interval: Option<Duration>,
    /// The certificate and key as loaded when the policy was compiled.
    pub server_key: Arc<CertifiedKey>,
}

impl std::fmt::Debug for TlsPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPlan")
            .field("certificate_chain", &self.certificate_chain)
            .field("private_key", &self.private_key)
            .field("allow_tls12", &self.allow_tls12)
            .field("watch_interval", &self.watch_interval)
            .finish_non_exhaustive()
    }
}

/// The audit store's settings (start-only). The signing key is loaded (or made) when the
/// store opens, not here: compiling a policy (`check`, `explain`) never writes a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPlan {
    /// The store's directory.
    pub dir: PathBuf,
    /// The checkpoint signing key file.
    pub signing_key: PathBuf,
    /// Checkpoint origin prefix.
    pub origin: String,
    /// Checkpoint every this many records…
    pub checkpoint_every: u64,
    /// …or this often.
    pub checkpoint_interval: Duration,
    /// Segment rotation size.
    pub segment_max_bytes: u64,
    /// Longest wait for a sync of access records.
    pub sync_interval: Duration,
    /// When access records are acknowledged.
    pub access_durability: crate::audit::Durability,
    /// Requests while records cannot be written.
    pub on_failure: crate::audit::OnFailure,
    /// Queue bound.
    pub queue_capacity: usize,
    /// The pseudonym key file, when subjects are pseudonymised.
    pub pseudonym_key: Option<PathBuf>,
}

/// A compiled policy. Immutable: a reload builds a new one.
#[derive(Debug)]
pub struct Snapshot {
    /// SHA-256 of the file's bytes.
    pub version: PolicyVersion,
    /// When it was compiled (loaded).
    pub loaded_at: std::time::SystemTime,
    /// The file it was compiled from.
    pub source: PathBuf,
    /// Process-wide settings.
    pub gateway: GatewaySettings,
    /// Listener addresses.
    pub listeners: Listeners,
    /// Public TLS.
    pub tls: TlsPlan,
    /// The audit store.
    pub audit: AuditPlan,
    /// Trusted issuers, token rules, MFA rules, the verified-token cache.
    pub identity: crate::identity::IdentityPlan,
    /// Pseudonyms for subject identifiers in records, when the policy asks for them.
    pub pseudonymiser: Option<Arc<crate::audit::Pseudonymiser>>,
    /// Upstreams; routes refer to them by index.
    pub upstreams: Vec<Upstream>,
    /// The route table.
    pub routes: RouteTable,
    /// Network rules and the client address (R-NET-1).
    pub network: crate::net::NetworkPlan,
    /// Rate, connection and time limits (R-NET-3).
    pub limits: super::operate::LimitsPlan,
    /// The admin listener and its administrators, when the policy has one (R-AUTH-4).
    pub admin: Option<crate::admin::AdminPlan>,
    /// The purpose catalogue and how requests state a purpose (R-AZ-2).
    pub access: crate::access::AccessSettings,
}

impl Snapshot {
    /// The first start-only key whose value differs in `next`, if any.
    pub fn restart_only_difference(&self, next: &Snapshot) -> Option<&'static str> {
        if self.listeners.public != next.listeners.public {
            return Some("listeners.public");
        }
        if self.listeners.redirect != next.listeners.redirect {
            return Some("listeners.redirect");
        }
        if self.tls.allow_tls12 != next.tls.allow_tls12 {
            return Some("tls.allow_tls12");
        }
        if self.gateway != next.gateway {
            return Some("gateway");
        }
        if self.audit != next.audit {
            return Some("audit");
        }
        let admin_start = |s: &Snapshot| s.admin.as_ref().map(|a| (a.listen, a.client_ca.clone()));
        if admin_start(self) != admin_start(next) {
            return Some("admin.listen / admin.client_ca");
        }
        None
    }

    /// The upstream a route forwards to.
    pub fn upstream_of(&self, route: &Route) -> &Upstream {
        &self.upstreams[route.upstream]
    }
}

/// Collects diagnostics with positions computed from byte offsets.
pub(super) struct Diagnostics<'a> {
    text: &'a str,
    list: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    pub(super) fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = position(self.text, span.start);
        self.list.push(Diagnostic {
            line,
            column,
            message: message.into(),
        });
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Compile a policy file's bytes. `path` is used for messages and to resolve relative paths.
pub fn compile(path: &Path, bytes: &[u8]) -> Result<Snapshot, PolicyError> {
    let invalid = |diagnostics| PolicyError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let (line, column) = position(valid, valid.len());
            return Err(invalid(vec![Diagnostic {
                line,
                column,
                message: "the file is not valid UTF-8".into(),
            }]));
        }
    };
    let file: PolicyFile = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| position(text, s.start));
        invalid(vec![Diagnostic {
            line,
            column,
            message: e.message().trim_end().to_owned(),
        }])
    })?;

    let base = path.parent().unwrap_or(Path::new("."));
    let mut diags = Diagnostics {
        text,
        list: Vec::new(),
    };

    let gateway = GatewaySettings {
        node_id: file.gateway.node_id.clone().unwrap_or_else(host_name),
        worker_threads: file.gateway.worker_threads,
        drain: Duration::from_secs(file.gateway.drain_secs),
        shutdown_timeout: Duration::from_secs(file.gateway.shutdown_timeout_secs),
    };

    let mut hosts: Vec<String> = Vec::new();
    for host in &file.listeners.hosts {
        match crate::protocol::served_host_name(host.get_ref()) {
            Some(name) if hosts.contains(&name) => diags.at(
                host.span(),
                format!("listeners.hosts: `{}` is listed twice", host.get_ref()),
            ),
            Some(name) => hosts.push(name),
            None => diags.at(
                host.span(),
                format!(
                    "listeners.hosts: `{}` is not a host name or address; write a name (`phr.example.jp`), an IPv4 address or a bracketed IPv6 address, without a port",
                    host.get_ref()
                ),
            ),
        }
    }

    let chain_path = base.join(file.tls.certificate_chain.get_ref());
    let key_path = base.join(file.tls.private_key.get_ref());
    let server_key = match certificate::load_certified_key(&chain_path, &key_path) {
        Ok(key) => Some(Arc::new(key)),
        Err(e) => {
            let span = match e.concerns_key() || e.path() == key_path {
                true => file.tls.private_key.span(),
                false => file.tls.certificate_chain.span(),
            };
            diags.at(span, e.to_string());
            None
        }
    };

    let audit_section = &file.audit;
    let origin = match &audit_section.origin {
        Some(origin) => {
            let text = origin.get_ref();
            if text.is_empty()
                || text
                    .chars()
                    .any(|c| c.is_whitespace() || c == '+' || c.is_control())
            {
                diags.at(
                    origin.span(),
                    "audit.origin must be non-empty, without spaces, `+` or control characters",
                );
            }
            text.clone()
        }
        None => format!("phr-gateway/{}", gateway.node_id),
    };
    let pseudonymiser = audit_section.pseudonym_key.as_ref().and_then(|key| {
        crate::audit::Pseudonymiser::from_file(&base.join(key.get_ref()))
            .map_err(|e| diags.at(key.span(), e.to_string()))
            .ok()
            .map(Arc::new)
    });
    for (value, name) in [
        (
            audit_section.checkpoint_every_records,
            "checkpoint_every_records",
        ),
        (
            audit_section.checkpoint_interval_secs,
            "checkpoint_interval_secs",
        ),
        (audit_section.segment_max_mib, "segment_max_mib"),
        (audit_section.queue_capacity as u64, "queue_capacity"),
    ] {
        if value == 0 {
            diags.at(
                audit_section.dir.span(),
                format!("audit.{name} must be at least 1"),
            );
        }
    }
    let audit = AuditPlan {
        dir: base.join(audit_section.dir.get_ref()),
        signing_key: base.join(audit_section.signing_key.get_ref()),
        origin,
        checkpoint_every: audit_section.checkpoint_every_records,
        checkpoint_interval: Duration::from_secs(audit_section.checkpoint_interval_secs),
        segment_max_bytes: audit_section.segment_max_mib.saturating_mul(1024 * 1024),
        sync_interval: Duration::from_millis(audit_section.sync_interval_ms),
        access_durability: audit_section.access_durability,
        on_failure: audit_section.on_audit_failure,
        queue_capacity: audit_section.queue_capacity,
        pseudonym_key: audit_section
            .pseudonym_key
            .as_ref()
            .map(|k| base.join(k.get_ref())),
    };

    let identity = compile_identity(&file, base, &mut diags);

    let mut upstream_names = Vec::new();
    let mut upstreams = Vec::new();
    for (name, section) in &file.upstreams {
        match upstream::compile(name, section.get_ref(), base) {
            Ok(u) => {
                upstream_names.push(name.as_str());
                upstreams.push(u);
            }
            Err(e) => {
                let span = e.span(section.get_ref()).unwrap_or(section.span());
                diags.at(span, format!("upstream `{name}`: {e}"));
            }
        }
    }

    let mut table = RouteTableBuilder::default();
    if file.routes.is_empty() {
        diags.at(
            0..0,
            "the policy declares no [[routes]]; every request would be refused",
        );
    }
    let mut route_rates = Vec::new();
    for section in &file.routes {
        if let Some(route) = compile_route(section.get_ref(), &upstream_names, &file, &mut diags) {
            match table.add(route) {
                Ok(()) => route_rates.push(section.get_ref().rate_limit.as_ref().and_then(|r| {
                    super::operate::rate(r, section.span(), "route rate_limit", &mut diags)
                })),
                Err(message) => diags.at(section.get_ref().path.span(), message),
            }
        }
    }
    let access = compile_access_settings(&file, &mut diags);
    let network = super::operate::network(&file, &mut diags);
    let limits = super::operate::limits(&file, route_rates, &mut diags);
    let issuer_ids: Vec<&str> = file
        .issuers
        .iter()
        .map(|i| i.get_ref().id.as_str())
        .collect();
    let admin = super::operate::admin(&file, base, &issuer_ids, &mut diags);

    let server_key = match server_key {
        Some(key) if diags.list.is_empty() => key,
        // A missing key always came with a diagnostic.
        _ => {
            diags.list.sort_by_key(|d| (d.line, d.column));
            return Err(invalid(diags.list));
        }
    };
    Ok(Snapshot {
        version: PolicyVersion::of(bytes),
        loaded_at: std::time::SystemTime::now(),
        source: path.to_path_buf(),
        gateway,
        listeners: Listeners {
            public: file.listeners.public,
            redirect: file.listeners.redirect,
            redirect_host: file.listeners.redirect_host.clone(),
            hosts,
        },
        tls: TlsPlan {
            certificate_chain: chain_path,
            private_key: key_path,
            allow_tls12: file.tls.allow_tls12,
            watch_interval: match file.tls.watch_interval_secs {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            server_key,
        },
        audit,
        identity,
        pseudonymiser,
        upstreams,
        routes: table.build(),
        network,
        limits,
        admin,
        access,
    })
}

fn compile_identity(
    file: &PolicyFile,
    base: &Path,
    diags: &mut Diagnostics<'_>,
) -> crate::identity::IdentityPlan {
    use crate::identity::{jwks, keys, IdentityHeaders, Issuer, MfaRules, TokenRules};
    let section = &file.identity;
    let mut issuers = Vec::new();
    for (n, spanned) in file.issuers.iter().enumerate() {
        let i = spanned.get_ref();
        let mut algorithms = Vec::new();
        for name in &i.algorithms {
            match keys::ALLOWED_ALGORITHMS.iter().find(|(n, _)| n == name.get_ref()) {
                Some((_, alg)) => algorithms.push(*alg),
                None => diags.at(
                    name.span(),
                    format!(
                        "issuer `{}`: algorithm `{}` is not accepted; use RS256, PS256, ES256 or EdDSA (never none or HMAC)",
                        i.id,
                        name.get_ref()
                    ),
                ),
            }
        }
        if file.issuers[..n]
            .iter()
            .any(|earlier| earlier.get_ref().issuer == i.issuer)
        {
            diags.at(
                spanned.span(),
                format!("issuer `{}`: another issuer already has iss `{}`; a token could not tell them apart", i.id, i.issuer),
            );
        }
        if i.algorithms.is_empty() || i.audiences.is_empty() {
            diags.at(
                spanned.span(),
                format!(
                    "issuer `{}` needs at least one algorithm and one audience",
                    i.id
                ),
            );
        }
        let loaded = match (&i.jwks_file, &i.jwks_url) {
            (Some(file), None) => {
                let path = base.join(file.get_ref());
                std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
                    .and_then(|bytes| {
                        keys::KeySet::from_json(&bytes)
                            .map_err(|e| format!("{}: {e}", path.display()))
                    })
                    .map(|set| (jwks::JwksSource::File(path), set))
                    .map_err(|e| (file.span(), e))
            }
            (None, Some(url)) => jwks::JwksUrl::new(
                url.get_ref(),
                i.jwks_ca.as_ref().map(|ca| base.join(ca.get_ref())),
                Duration::from_secs(i.jwks_refresh_secs.max(1)),
                Duration::from_secs(i.jwks_min_refetch_secs.max(1)),
            )
            .and_then(|u| {
                u.fetch_blocking()
                    .map(|set| (jwks::JwksSource::Url(u), set))
            })
            .map_err(|e| (url.span(), e.to_string())),
            _ => Err((
                spanned.span(),
                "give exactly one of jwks_file and jwks_url".to_owned(),
            )),
        };
        let (source, keys) = match loaded {
            Ok(loaded) => loaded,
            Err((span, e)) => {
                diags.at(span, format!("issuer `{}`: {e}", i.id));
                continue;
            }
        };
        for why in &keys.rejected {
            tracing::warn!(issuer = %i.id, "JWKS key left out: {why}");
        }
        let keys = jwks::IssuerKeys::new(source, keys);
        issuers.push(Issuer {
            id: i.id.clone(),
            issuer: i.issuer.clone(),
            audiences: i.audiences.clone(),
            algorithms,
            token_type: i.token_type.clone(),
            keys,
        });
    }
    let mut factors = MfaRules::rfc8176().factors;
    factors.extend(section.amr.iter().map(|(k, v)| (k.clone(), *v)));
    let defaults = IdentityHeaders::default();
    let h = &section.headers;
    let pick = |v: &Option<String>, d: &str| {
        v.clone()
            .unwrap_or_else(|| d.to_owned())
            .to_ascii_lowercase()
    };
    let headers = IdentityHeaders {
        subject: pick(&h.subject, &defaults.subject),
        client_id: pick(&h.client_id, &defaults.client_id),
        scopes: pick(&h.scopes, &defaults.scopes),
        roles: pick(&h.roles, &defaults.roles),
        session: pick(&h.session, &defaults.session),
        mfa: pick(&h.mfa, &defaults.mfa),
    };
    for name in headers.names() {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            diags.at(
                0..0,
                format!("identity.headers: `{name}` is not a header name"),
            );
        }
    }
    let mut plan = crate::identity::IdentityPlan::new(
        issuers,
        TokenRules {
            max_bytes: section.max_token_bytes,
            leeway_secs: section.leeway_secs as i64,
        },
        MfaRules {
            factors,
            mfa_acr: section.mfa_acr.clone(),
            accept_mfa_amr: section.accept_mfa_amr,
        },
        headers,
    );
    plan.purpose_claim = file.access.purpose_claim.clone();
    plan.sessions = crate::identity::SessionLimits {
        idle_secs: section.session_idle_secs,
        absolute_secs: section.session_absolute_secs,
    };
    plan.sessionless_tokens = section.sessionless_tokens;
    plan.failures = crate::identity::FailureLimits {
        max_failures: section.max_failures,
        window_secs: section.failure_window_secs,
        lockout_secs: section.lockout_secs,
    };
    plan
}

fn compile_route(
    section: &RouteSection,
    upstream_names: &[&str],
    file: &PolicyFile,
    diags: &mut Diagnostics<'_>,
) -> Option<Route> {
    let mut ok = true;
    let id = section.id.get_ref();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        diags.at(
            section.id.span(),
            format!(
                "route id `{id}` must be non-empty and use only letters, digits, `-`, `_` and `.`"
            ),
        );
        ok = false;
    }
    let mut methods = Vec::new();
    if section.methods.is_empty() {
        diags.at(section.path.span(), "route declares no methods");
        ok = false;
    }
    for m in &section.methods {
        match parse_method(m.get_ref()) {
            Some(method) => methods.push(method),
            None => {
                diags.at(
                    m.span(),
                    format!(
                        "`{}` is not a method routes can declare; use one of {}",
                        m.get_ref(),
                        ROUTABLE_METHODS.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    let upstream_name = section.upstream.get_ref();
    let upstream = upstream_names.iter().position(|n| n == upstream_name);
    if upstream.is_none() && !file.upstreams.contains_key(upstream_name) {
        let known: Vec<&str> = file.upstreams.keys().map(String::as_str).collect();
        diags.at(
            section.upstream.span(),
            format!(
                "no upstream named `{upstream_name}`; declared: {}",
                if known.is_empty() {
                    "none (add an [upstreams.NAME] table)".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        );
    }
    let upstream = upstream?;
    let allow_from = super::operate::networks(&section.allow_from, diags);
    let access = compile_access(section, file, diags);
    ok &= access.is_some();
    ok.then(|| Route {
        id: Arc::from(id.as_str()),
        pattern: Arc::from(section.path.get_ref().as_str()),
        methods,
        upstream,
        category: section.category,
        anonymous: section.anonymous,
        mfa: section.mfa && !section.anonymous,
        step_up: crate::identity::StepUp {
            max_age_secs: section.max_auth_age_secs,
            acr_values: section.acr_values.clone(),
        },
        allow_from,
        access: access.unwrap_or_default(),
        inspect: compile_inspection(section, diags),
    })
}

/// A route's inspection: its mode; exclusions that name a known rule or class and a place;
/// neutralised fields only with `neutralise` mode (and then at least one); accepted files as
/// media types, never archives, never with inspection off.
fn compile_inspection(
    section: &RouteSection,
    diags: &mut Diagnostics<'_>,
) -> crate::inspect::RouteInspection {
    use crate::inspect::{disarm, Exclusion, Mode};
    let mode = section
        .inspect
        .as_ref()
        .map_or(Mode::default(), |m| *m.get_ref());
    let mut exclude = Vec::new();
    for entry in &section.inspect_exclude {
        match Exclusion::parse(entry.get_ref()) {
            Ok(exclusion) => exclude.push(exclusion),
            Err(message) => diags.at(entry.span(), message),
        }
    }
    let neutralise: Vec<String> = section
        .neutralise
        .iter()
        .map(|f| f.get_ref().clone())
        .collect();
    match (mode, section.neutralise.first()) {
        (Mode::Neutralise, None) => diags.at(
            section.inspect.as_ref().map_or(0..0, |m| m.span()),
            "`inspect = \"neutralise\"` needs the fields to rewrite: `neutralise = [\"note.text\"]`",
        ),
        (Mode::Neutralise, Some(_)) => {
            for field in &section.neutralise {
                if field.get_ref().trim().is_empty() || field.get_ref().contains(char::is_whitespace) {
                    diags.at(field.span(), "a field is a dotted path (`note.text`) or a form field name, without spaces");
                }
            }
        }
        (_, Some(first)) => diags.at(
            first.span(),
            "`neutralise` fields are rewritten only with `inspect = \"neutralise\"`",
        ),
        (_, None) => {}
    }
    let mut files = Vec::new();
    for entry in &section.files {
        let media = entry.get_ref().trim().to_ascii_lowercase();
        let valid = media.split_once('/').is_some_and(|(t, s)| {
            !t.is_empty() && !s.is_empty() && !media.contains([';', ' ', '*'])
        });
        if !valid {
            diags.at(
                entry.span(),
                format!(
                    "`{}` is not a media type (`application/pdf`, `image/jpeg`)",
                    entry.get_ref()
                ),
            );
        } else if disarm::ARCHIVE_TYPES.contains(&media.as_str()) {
            diags.at(
                entry.span(),
                format!("`{media}` is an archive: archives are never accepted (R-WAF-2, docs/inspect.md)"),
            );
        } else {
            files.push(media);
        }
    }
    if mode == Mode::Off {
        if let Some(first) = section.files.first() {
            diags.at(
                first.span(),
                "files are disarmed by inspection: a route with `files` cannot have `inspect = \"off\"`",
            );
        }
    }
    crate::inspect::RouteInspection {
        mode,
        exclude,
        neutralise,
        files: disarm::Accepted(files),
    }
}

/// The purpose catalogue and the purpose header (R-AZ-2).
fn compile_access_settings(
    file: &PolicyFile,
    diags: &mut Diagnostics<'_>,
) -> crate::access::AccessSettings {
    use crate::access::{AccessSettings, Purpose};
    let mut purposes: Vec<Purpose> = Vec::new();
    for entry in &file.purposes {
        let p = entry.get_ref();
        let id = p.id.get_ref();
        let valid = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid || purposes.iter().any(|q| &*q.id == id) {
            diags.at(
                p.id.span(),
                format!("purpose id `{id}` must be unique and use only letters, digits, `-`, `_` and `.`"),
            );
            continue;
        }
        purposes.push(Purpose {
            id: Arc::from(id.as_str()),
            ja: p.ja.clone(),
            en: p.en.clone(),
        });
    }
    let purpose_header = match http::HeaderName::from_bytes(file.access.purpose_header.as_bytes()) {
        Ok(name) => name,
        Err(_) => {
            diags.at(
                0..0,
                format!(
                    "access.purpose_header `{}` is not a header name",
                    file.access.purpose_header
                ),
            );
            AccessSettings::default().purpose_header
        }
    };
    let home_country = file.access.home_country.to_ascii_uppercase();
    if !is_country_code(&home_country) {
        diags.at(
            0..0,
            format!(
                "access.home_country `{}` is not an ISO 3166-1 alpha-2 code",
                file.access.home_country
            ),
        );
    }
    let recipients = compile_recipients(file, &home_country, diags);
    AccessSettings {
        purpose_header,
        purposes,
        recipients,
        home_country: Arc::from(home_country.as_str()),
        stop_refuses_own_reads: file.access.stop_refuses_own_reads,
    }
}

fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// The registered recipients (R-AZ-4, R-AZ-8): unique ids, clients that belong to one
/// recipient only, a country code, and a confirmation date.
fn compile_recipients(
    file: &PolicyFile,
    home_country: &str,
    diags: &mut Diagnostics<'_>,
) -> Vec<Arc<crate::access::Recipient>> {
    let mut recipients: Vec<Arc<crate::access::Recipient>> = Vec::new();
    for entry in &file.recipients {
        let r = entry.get_ref();
        let id = r.id.get_ref();
        let valid = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid || recipients.iter().any(|q| &*q.id == id) {
            diags.at(
                r.id.span(),
                format!("recipient id `{id}` must be unique and use only letters, digits, `-`, `_` and `.`"),
            );
            continue;
        }
        let clients = r.clients.get_ref();
        let taken = clients
            .iter()
            .find(|c| c.is_empty() || recipients.iter().any(|q| q.clients.contains(c)));
        if clients.is_empty() || taken.is_some() {
            diags.at(
                r.clients.span(),
                format!(
                    "recipient `{id}` needs client ids of its own; `{}` is empty or already another recipient's",
                    taken.map_or("", String::as_str)
                ),
            );
            continue;
        }
        let country = r
            .country
            .as_deref()
            .unwrap_or(home_country)
            .to_ascii_uppercase();
        if !is_country_code(&country) {
            diags.at(
                entry.span(),
                format!("recipient `{id}`: country `{country}` is not an ISO 3166-1 alpha-2 code"),
            );
            continue;
        }
        let datetime = r.compliance_confirmed.get_ref();
        let confirmed_on = match (datetime.date, datetime.time, datetime.offset) {
            (Some(d), None, None) => time::Month::try_from(d.month)
                .ok()
                .and_then(|m| time::Date::from_calendar_date(i32::from(d.year), m, d.day).ok()),
            _ => None,
        };
        let Some(confirmed_on) = confirmed_on else {
            diags.at(
                r.compliance_confirmed.span(),
                "compliance_confirmed must be a date, e.g. 2026-04-01",
            );
            continue;
        };
        let confirmed_through = confirmed_on
            .checked_add(time::Duration::days(i64::from(r.recheck_days)))
            .unwrap_or(time::Date::MAX);
        let expires_at = confirmed_through
            .next_day()
            .map_or(i64::MAX, |d| d.midnight().assume_utc().unix_timestamp());
        recipients.push(Arc::new(crate::access::Recipient {
            id: Arc::from(id.as_str()),
            name: r.name.clone(),
            clients: clients.clone(),
            abroad: country != home_country,
            country: Arc::from(country.as_str()),
            confirmed_on,
            confirmed_through,
            expires_at,
        }));
    }
    recipients
}

/// A route's scopes, roles and data subject; `None` after a diagnostic.
fn compile_access(
    section: &RouteSection,
    file: &PolicyFile,
    diags: &mut Diagnostics<'_>,
) -> Option<crate::access::RouteAccess> {
    use crate::access::{scope::Scope, RouteAccess, SubjectSource};
    let mut ok = true;
    let mut purposes = Vec::new();
    for id in &section.purposes {
        if file
            .purposes
            .iter()
            .any(|p| p.get_ref().id.get_ref() == id.get_ref())
        {
            purposes.push(Arc::from(id.get_ref().as_str()));
        } else {
            let known: Vec<&str> = file
                .purposes
                .iter()
                .map(|p| p.get_ref().id.get_ref().as_str())
                .collect();
            diags.at(
                id.span(),
                format!(
                    "purpose `{}` is not in the [[purposes]] catalogue; declared: {}",
                    id.get_ref(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            ok = false;
        }
    }
    let mut scopes = Vec::new();
    for text in &section.scopes {
        match Scope::parse(text.get_ref()) {
            Ok(scope) => scopes.push(scope),
            Err(e) => {
                diags.at(text.span(), e.to_string());
                ok = false;
            }
        }
    }
    let subject = section.subject.as_ref().and_then(|text| {
        let parsed = SubjectSource::parse(text.get_ref());
        let known = match &parsed {
            Some(SubjectSource::Path(name)) => section
                .path
                .get_ref()
                .split('/')
                .any(|seg| seg == format!("{{{name}}}")),
            Some(_) => true,
            None => false,
        };
        if !known {
            diags.at(
                text.span(),
                format!(
                    "subject `{}` must be `self`, `query:NAME`, or `path:NAME` naming a `{{NAME}}` segment of the path",
                    text.get_ref()
                ),
            );
            ok = false;
        }
        parsed
    });
    let fhir = section.fhir.as_ref().and_then(|base| {
        let text = base.get_ref().trim_end_matches('/');
        let valid = (text.is_empty() || text.starts_with('/'))
            && section.path.get_ref().starts_with(text)
            && !text.contains(['{', '}']);
        if !valid || section.subject.is_some() {
            diags.at(
                base.span(),
                format!(
                    "fhir `{}` must be the literal start of the route's path (e.g. \"/fhir\" for \"/fhir/{{*rest}}\"), on a route without `subject` (the FHIR request names its patient)",
                    base.get_ref()
                ),
            );
            ok = false;
            return None;
        }
        Some(crate::access::fhir::FhirRoute {
            base: text.to_owned(),
        })
    });
    let access = RouteAccess {
        scopes,
        roles: section.roles.clone(),
        subject,
        purposes,
        fhir,
    };
    if section.anonymous && !access.is_empty() {
        diags.at(
            section.id.span(),
            "an anonymous route has no caller to hold scopes, roles or a subject",
        );
        ok = false;
    }
    ok.then_some(access)
}

const ROUTABLE_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fn parse_method(name: &str) -> Option<Method> {
    ROUTABLE_METHODS
        .contains(&name)
        .then(|| Method::from_bytes(name.as_bytes()).ok())
        .flatten()
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "phr-gateway".to_owned())
}

#[cfg(test)]
mod tests {
    use super::position;

    #[test]
    fn positions_are_one_based_characters() {
        let text = "a = 1\nb = \"日本\" x\n";
        assert_eq!(position(text, 0), (1, 1));
        assert_eq!(position(text, 6), (2, 1));
        let x = text.find('x').unwrap_or_default();
        assert_eq!(position(text, x), (2, 10));
    }
}
