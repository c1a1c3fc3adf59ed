//! Assembles the running gateway: pingora server, public TLS listener, optional redirect
//! listener, the admin listener, and the background tasks that reload policy and certificates
//! (R-OPS-2, R-TLS-2), refresh JWKS and cut slow connections.

use std::sync::Arc;
use std::time::Duration;

use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::audit::{AuditError, AuditSink, Signer, StateEvent, StoreConfig};
use crate::controls::Controls;
use crate::head_refusals::RecordingProxy;
use crate::identity::SessionRegistry;
use crate::limits::connections::{ConnectionAdmission, ConnectionTable};
use crate::policy::{PolicyStore, Snapshot};
use crate::proxy::Gateway;
use crate::redirect::RedirectToHttps;
use crate::tls::ReloadingCertResolver;

/// Why the server could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// pingora refused a setting.
    #[error("cannot set up the {what}: {source}")]
    Pingora {
        /// What was being set up.
        what: &'static str,
        /// pingora's error.
        source: Box<pingora::Error>,
    },
    /// The audit store could not be opened or could not record the policy version.
    #[error("audit store: {0}")]
    Audit(#[from] AuditError),
    /// The checkpoint signing key could not be loaded or made.
    #[error("audit signing key: {0}")]
    AuditKey(#[from] crate::audit::note::NoteError),
    /// The admin listener could not be set up.
    #[error("admin listener: {0}")]
    Admin(#[from] crate::admin::AdminSetupError),
    /// The admin listener's address could not be bound.
    #[error("admin listener: cannot listen on {addr}: {source}")]
    AdminBind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What the running gateway's parts share: the policy, the audit store and the state that
/// changes at run time. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Shared {
    /// The policy in force.
    pub store: Arc<PolicyStore>,
    /// The audit store.
    pub audit: AuditSink,
    /// Sessions and revocations.
    pub sessions: Arc<SessionRegistry>,
    /// Mode and subject stops.
    pub controls: Arc<Controls>,
    /// The consent ledger.
    pub consents: Arc<crate::consent::ConsentLedger>,
    /// Open client connections.
    pub connections: Arc<ConnectionTable>,
    /// The public certificate.
    pub certificates: Arc<ReloadingCertResolver>,
}

impl Shared {
    /// Reload the policy file (SIGHUP or the admin API): check it, record its version, put it
    /// in service. On any failure the running policy stays, the refusal is recorded and the
    /// error returned.
    pub async fn reload_policy(&self, trigger: &'static str) -> Result<Arc<Snapshot>, String> {
        let current = self.store.current();
        let running = current.version.clone();
        let count = |result: &str| {
            if let Some(m) = crate::metrics::metrics() {
                m.policy_reloads.with_label_values(&[result]).inc();
            }
        };
        let next = match self.store.prepare_reload() {
            Ok(next) => next,
            Err(e) => {
                count("failed");
                let event = StateEvent::PolicyRejected {
                    running: running.to_string(),
                    error: e.to_string(),
                };
                if let Err(audit) = self.audit.record_state(event).await {
                    tracing::error!("could not record the refused reload: {audit}");
                }
                tracing::error!(running = %running, "policy reload failed; keeping the running policy: {e}");
                // The certificate may have been renewed even if the policy is broken.
                self.reload_certificate(false);
                return Err(e.to_string());
            }
        };
        // Every version is recorded before it is served; one that cannot be recorded is not
        // put in service (R-LOG-4).
        let event = policy_loaded(&next, trigger, Some(&current));
        if let Err(e) = self.audit.record_state(event).await {
            count("failed");
            tracing::error!(running = %running, "policy reload not applied: its version could not be recorded: {e}");
            return Err(format!("the new version could not be recorded: {e}"));
        }
        self.store.install(Arc::clone(&next));
        self.certificates.replace(
            Arc::clone(&next.tls.server_key),
            &next.tls.certificate_chain,
            &next.tls.private_key,
        );
        self.certificates.serve_hosts(next.listeners.hosts.clone());
        count("ok");
        tracing::info!(version = %next.version, previous = %running, "policy reloaded");
        Ok(next)
    }

    /// Load the certificate files again if they changed (or always, with `force`).
    pub fn reload_certificate(&self, force: bool) {
        match self.certificates.reload(force) {
            Ok(crate::tls::certificate::ReloadOutcome::Replaced) => {
                tracing::info!("server certificate reloaded; new connections get the new one")
            }
            Ok(crate::tls::certificate::ReloadOutcome::Unchanged) => {}
            Err(e) => tracing::error!(
                "certificate reload failed; keeping the certificate in service: {e}"
            ),
        }
    }

    /// Readings of the state metrics mirror.
    pub fn readings(&self) -> crate::metrics::Readings {
        let snapshot = self.store.current();
        crate::metrics::Readings {
            audit: Some(self.audit.stats()),
            certificate_expires_at: self.certificates.expires_at(),
            active_sessions: self.sessions.active(),
            stopped_subjects: self.controls.stopped_subjects(),
            live_consents: self.consents.live_count(),
            open_connections: self.connections.open(),
            limiter_keys: snapshot.limits.rates.key_counts(),
            policy_loaded_at: snapshot
                .loaded_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            now: crate::identity::unix_now(),
        }
    }
}

/// A pingora server with the gateway's services added, ready for `run_forever`.
pub struct GatewayServer {
    /// The pingora server; add more services (the demo backend) before running it.
    pub server: Server,
    /// The certificate resolver of the public listener.
    pub certificates: Arc<ReloadingCertResolver>,
    /// The audit store every request and state change is recorded in.
    pub audit: AuditSink,
    /// What the parts share.
    pub shared: Shared,
}

impl GatewayServer {
    /// Serve until SIGTERM (graceful: drain, then stop) or SIGINT (quick), then write what the
    /// audit queue still holds, sync both logs and sign checkpoints over every record, so a
    /// stopped gateway's trail verifies to its last record.
    pub fn run(self) -> std::process::ExitCode {
        self.server.run(pingora::server::RunArgs::default());
        self.audit.close();
        tracing::info!("audit trail closed with a final checkpoint; exiting");
        std::process::ExitCode::SUCCESS
    }
}

/// Open the audit store the snapshot names (making its signing key on first start).
pub fn open_audit(snapshot: &Snapshot) -> Result<AuditSink, ServerError> {
    let plan = &snapshot.audit;
    let signer = Signer::load_or_generate(&plan.signing_key, &plan.origin)?;
    Ok(AuditSink::open(StoreConfig {
        dir: plan.dir.clone(),
        node_id: Arc::from(snapshot.gateway.node_id.as_str()),
        origin: plan.origin.clone(),
        signer,
        checkpoint_every: plan.checkpoint_every,
        checkpoint_interval: plan.checkpoint_interval,
        segment_max_bytes: plan.segment_max_bytes,
        sync_interval: plan.sync_interval,
        access_durability: plan.access_durability,
        on_failure: plan.on_failure,
        queue_capacity: plan.queue_capacity,
    })?)
}

fn policy_loaded(
    snapshot: &Snapshot,
    trigger: &'static str,
    previous: Option<&Snapshot>,
) -> StateEvent {
    StateEvent::PolicyLoaded {
        version: snapshot.version.to_string(),
        source: snapshot.source.display().to_string(),
        trigger: trigger.to_owned(),
        previous: previous.map(|p| p.version.to_string()),
    }
}

/// The pingora configuration for a snapshot.
fn server_conf(snapshot: &Snapshot) -> ServerConf {
    ServerConf {
        threads: snapshot.gateway.worker_threads,
        grace_period_seconds: Some(snapshot.gateway.drain.as_secs()),
        graceful_shutdown_timeout_seconds: Some(snapshot.gateway.shutdown_timeout.as_secs()),
        ..ServerConf::default()
    }
}

/// pingora's proxy around the gateway, for the public listener. `CONNECT` is let through to
/// the gateway's hooks, whose first step refuses it (`protocol::check_no_tunnel`): pingora's
/// own refusal would go out without the gateway's record or hardening over HTTP/2, where the
/// connection tap cannot read the answer (`head_refusals`).
///
/// HTTP/2's header-list bound follows the policy's head limits (pingora's default, 64 KiB,
/// would otherwise refuse heads the policy allows); its other bounds (100 concurrent streams)
/// stay pingora's.
fn public_proxy(conf: &Arc<ServerConf>, shared: &Shared) -> pingora::proxy::HttpProxy<Gateway> {
    let mut proxy = pingora::proxy::http_proxy(conf, Gateway::new(shared.clone()));
    let mut options = pingora::apps::HttpServerOptions::default();
    options.allow_connect_method_proxying = true;
    proxy.server_options = Some(options);
    let mut h2 = pingora::protocols::http::v2::server::default_h2_options();
    h2.max_header_list_size(shared.store.http2_header_list_bound());
    proxy.h2_options = Some(h2);
    proxy
}

/// Build the server for the store's policy. Listening starts at `run_forever`.
pub fn build(store: Arc<PolicyStore>) -> Result<GatewayServer, ServerError> {
    let snapshot = store.current();
    let audit = open_audit(&snapshot)?;
    // The gateway does not serve under a policy whose version it could not record (R-LOG-4).
    audit.record_state_blocking(policy_loaded(&snapshot, "start", None))?;
    // Revocations, logouts, stops and the mode survive a restart: they are replayed from the
    // state log.
    let sessions = Arc::new(SessionRegistry::default());
    let controls = Arc::new(Controls::default());
    let state_dir = snapshot.audit.dir.join(crate::audit::LogKind::State.name());
    let events = crate::audit::segment::read_replayed_state(&state_dir)
        .map_err(|e| AuditError::from((state_dir.display().to_string(), e)))?;
    let replayed = sessions.replay(&events);
    let controls_replayed = controls.replay(&events);
    let consents = Arc::new(crate::consent::ConsentLedger::default());
    let consents_replayed = consents.replay(events);
    tracing::info!(
        replayed,
        controls_replayed,
        consents_replayed,
        mode = controls.mode().name(),
        "session revocations and operator controls replayed from the state log"
    );
    let started = std::time::Instant::now();
    crate::inspect::detect::compile();
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "input inspection's detectors built"
    );
    let mut server = Server::new_with_opt_and_conf(None, server_conf(&snapshot));
    server.bootstrap();

    let certificates = Arc::new(ReloadingCertResolver::new(
        Arc::clone(&snapshot.tls.server_key),
        &snapshot.tls.certificate_chain,
        &snapshot.tls.private_key,
    ));
    certificates.serve_hosts(snapshot.listeners.hosts.clone());
    let shared = Shared {
        store: Arc::clone(&store),
        audit: audit.clone(),
        sessions,
        controls,
        consents,
        connections: Arc::new(ConnectionTable::default()),
        certificates: Arc::clone(&certificates),
    };
    let pingora_err = |what| move |source| ServerError::Pingora { what, source };

    // The public listener: every connection is admitted (per-address limit) and tracked
    // (deadlines) before its TLS handshake.
    let mut listeners = pingora::listeners::Listeners::new();
    listeners.set_pre_tls_callback(Arc::new(ConnectionAdmission {
        table: Arc::clone(&shared.connections),
        store: Arc::clone(&store),
    }));
    // The resolver replaces pingora's file loading, which panics on a bad file and cannot
    // reload; the paths given here are never read.
    let mut tls = TlsSettings::with_callbacks(Box::new(HandshakeCounter))
        .map_err(pingora_err("TLS listener"))?;
    tls.set_cert_resolver(Arc::clone(&certificates) as _);
    tls.enable_h2();
    listeners.add_tls_with_settings(&snapshot.listeners.public.to_string(), None, tls);
    let public = Service::with_listeners(
        "phr-gateway public listener".to_owned(),
        listeners,
        RecordingProxy::new(
            public_proxy(&server.configuration, &shared),
            shared.audit.clone(),
        ),
    );
    server.add_service(public);

    if let Some(addr) = snapshot.listeners.redirect {
        let mut redirect = Service::new(
            "phr-gateway redirect listener".to_owned(),
            RedirectToHttps::new(
                snapshot.listeners.redirect_host.clone(),
                snapshot.listeners.public.port(),
            )
            .serving(Arc::clone(&shared.store))
            .recording(shared.audit.clone()),
        );
        redirect.add_tcp(&addr.to_string());
        server.add_service(redirect);
    }

    if let Some(plan) = &snapshot.admin {
        let config = crate::admin::tls_config(plan, Arc::clone(&certificates))?;
        // Bound now, so a taken address stops the start with a clear error.
        let socket =
            std::net::TcpListener::bind(plan.listen).map_err(|source| ServerError::AdminBind {
                addr: plan.listen,
                source,
            })?;
        server.add_service(background_service(
            "admin listener",
            crate::admin::api::AdminListener::new(shared.clone(), config, socket),
        ));
    }

    server.add_service(background_service(
        "JWKS refresher",
        JwksRefresher {
            store: Arc::clone(&store),
        },
    ));
    server.add_service(background_service(
        "connection deadlines",
        ConnectionSweeper {
            shared: shared.clone(),
        },
    ));
    server.add_service(background_service(
        "policy and certificate reloader",
        Reloader {
            shared: shared.clone(),
            hangup: std::sync::Mutex::new(hangup_stream()),
        },
    ));

    tracing::info!(
        version = %snapshot.version,
        public = %snapshot.listeners.public,
        redirect = ?snapshot.listeners.redirect,
        routes = snapshot.routes.routes().len(),
        tls12 = snapshot.tls.allow_tls12,
        "gateway configured"
    );
    Ok(GatewayServer {
        server,
        certificates,
        audit,
        shared,
    })
}

/// Refreshes the JWKS of URL-sourced issuers of the policy in force: on schedule, and soon
/// after a token names an unknown key id (rate-limited per issuer).
struct JwksRefresher {
    store: Arc<PolicyStore>,
}

#[async_trait::async_trait]
impl BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            let snapshot = self.store.current();
            for issuer in &snapshot.identity.issuers {
                issuer.keys.refresh_if_due(&issuer.id).await;
            }
        }
    }
}

/// Counts completed client TLS handshakes by version.
struct HandshakeCounter;

#[async_trait::async_trait]
impl pingora::listeners::TlsAccept for HandshakeCounter {
    async fn handshake_complete_callback(
        &self,
        tls: &pingora::protocols::tls::TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        let version = tls
            .version()
            .and_then(crate::proxy::tls_version_label)
            .unwrap_or("other");
        if let Some(m) = crate::metrics::metrics() {
            m.tls_handshakes.with_label_values(&[version]).inc();
        }
        None
    }
}

/// Cuts connections past their header or idle deadline (slowloris), four times a second.
struct ConnectionSweeper {
    shared: Shared,
}

#[async_trait::async_trait]
impl BackgroundService for ConnectionSweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            let snapshot = self.shared.store.current();
            let cuts = self
                .shared
                .connections
                .sweep(&snapshot.limits.connections, std::time::Instant::now());
            if let Some(m) = crate::metrics::metrics() {
                for reason in &cuts {
                    m.connections_cut.with_label_values(&[reason.name()]).inc();
                }
            }
            if !cuts.is_empty() {
                tracing::debug!(count = cuts.len(), "slow or idle connections cut");
            }
        }
    }
}

/// Reloads the policy on SIGHUP and the certificate when its files change.
struct Reloader {
    shared: Shared,
    /// SIGHUP, listened for since the server was built ([`hangup_stream`]); taken by `start`.
    hangup: std::sync::Mutex<Option<tokio::signal::unix::Signal>>,
}

/// A stream of SIGHUPs, made while the server is built, before any listener accepts. Until a
/// process listens for SIGHUP its default action ends the process: a reloader that began
/// listening only when its service first ran left a window after start in which an
/// operator's (or a test's) SIGHUP stopped the gateway instead of reloading it, and it was
/// seen under load. The stream is made in a throwaway runtime: tokio delivers signals to
/// every stream from whichever runtime's driver reads them, so the reloader's runtime polls
/// it later and a SIGHUP sent in between is waiting for it.
fn hangup_stream() -> Option<tokio::signal::unix::Signal> {
    let listen = || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let _entered = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    };
    listen()
        .map_err(|e| tracing::error!("cannot listen for SIGHUP; reload needs a restart: {e}"))
        .ok()
}

#[async_trait::async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangup = self
            .hangup
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        loop {
            let poll = self.shared.store.current().tls.watch_interval;
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                    tracing::info!("SIGHUP: reloading policy");
                    let _ = self.shared.reload_policy("reload").await;
                }
                _ = tokio::time::sleep(poll.unwrap_or(Duration::from_secs(3600))), if poll.is_some() => {
                    self.shared.reload_certificate(false);
                }
            }
        }
    }
}
