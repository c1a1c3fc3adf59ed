//! Metrics (R-OPS-1): one Prometheus registry for the process, served by the admin listener's
//! `/metrics`. Labels stay low-cardinality: route ids, decisions, reason codes, issuer and
//! upstream names, phases; never a subject, a patient or an address (an unbounded label set
//! is a memory leak on every scrape).
//!
//! Counters and histograms are updated where things happen; gauges that mirror state owned
//! elsewhere (the audit queue, the certificate, sessions, connections) are read at scrape time
//! through [`Readings`].

use std::sync::OnceLock;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::audit::AuditStats;
use crate::controls::Mode;

/// Latency buckets in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// The series of `phr_phase_duration_seconds`, one per phase of a request.
pub struct Phases {
    /// The request steps, up to the decision.
    pub decide: Histogram,
    /// From the request sent upstream to the response head.
    pub upstream: Histogram,
    /// Waiting for the access record to be written.
    pub audit: Histogram,
    /// The whole request.
    pub total: Histogram,
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, decision, reason code and status class (`2xx`, `5xx`, ...).
    pub requests: IntCounterVec,
    /// Time per phase: `decide` (the request steps), `upstream` (to the response head),
    /// `audit` (waiting for the record), `total`.
    pub phase_seconds: HistogramVec,
    /// The four series of `phase_seconds`, resolved once: every request observes them.
    pub phases: Phases,
    /// Time to the upstream's response head, per upstream.
    pub upstream_seconds: HistogramVec,
    /// Upstream failures (connect, TLS, read), per upstream.
    pub upstream_errors: IntCounterVec,
    /// Completed client TLS handshakes, by version.
    pub tls_handshakes: IntCounterVec,
    /// Failed client TLS handshakes (and other listener errors).
    pub tls_handshake_failures: IntCounter,
    /// Seconds until the served certificate expires.
    pub certificate_expiry_seconds: Gauge,
    /// JWKS refreshes that failed (the last good keys stayed in use), per issuer.
    pub jwks_refresh_failures: IntCounterVec,
    /// Seconds since an issuer's keys were last replaced, per issuer.
    pub jwks_age_seconds: GaugeVec,
    /// Rate-limit refusals, per limiter (`client`, `subject`, `route`).
    pub rate_limited: IntCounterVec,
    /// Keys held by the keyed rate limiters.
    pub rate_limit_keys: IntGaugeVec,
    /// Connections closed by the gateway: `limit`, `header_timeout`, `idle_timeout`, and
    /// `http2_<error>` for an HTTP/2 connection closed for the client's error (`GOAWAY`).
    pub connections_cut: IntCounterVec,
    /// HTTP/2 streams the HTTP/2 layer reset without an answer, by error code
    /// (`refused_stream`: over the 100 concurrent streams a connection may open).
    pub http2_streams_reset: IntCounterVec,
    /// Open client connections.
    pub connections_open: IntGauge,
    /// Inspection findings by class (the WAF).
    pub inspection_hits: IntCounterVec,
    /// Access records waiting for the writer.
    pub audit_queue_depth: IntGauge,
    /// Whether the audit store is writing (1) or not (0).
    pub audit_available: IntGauge,
    /// Records in each log (its head).
    pub audit_records: IntGaugeVec,
    /// Records covered by the latest signed checkpoint, per log.
    pub audit_checkpoint_size: IntGaugeVec,
    /// Access-record writes that failed as seen by requests.
    pub audit_write_failures: IntCounter,
    /// Responses released to registered recipients, or data received from them, after their
    /// durable third-party record (R-LOG-3), per recipient and direction.
    pub third_party_records: IntCounterVec,
    /// Access records lost (`degrade` mode, or a full queue).
    pub audit_records_lost: IntGauge,
    /// Policy reloads by result (`ok`, `failed`).
    pub policy_reloads: IntCounterVec,
    /// Unix time the policy in force was loaded.
    pub policy_loaded_timestamp: Gauge,
    /// Sessions seen and not ended.
    pub active_sessions: IntGauge,
    /// Subjects whose data use is stopped.
    pub stopped_subjects: IntGauge,
    /// 1 for the mode in force, 0 for the others.
    pub mode: IntGaugeVec,
    /// Admin calls by result (`allowed`, `refused`).
    pub admin_calls: IntCounterVec,
}

/// State owned elsewhere, read when metrics are scraped.
#[derive(Clone, Copy, Debug, Default)]
pub struct Readings {
    /// The audit store's counters.
    pub audit: Option<AuditStats>,
    /// When the served certificate expires (Unix seconds).
    pub certificate_expires_at: Option<i64>,
    /// Sessions seen and not ended.
    pub active_sessions: usize,
    /// Subjects stopped.
    pub stopped_subjects: usize,
    /// Live consents in the ledger.
    pub live_consents: usize,
    /// Open client connections.
    pub open_connections: usize,
    /// Keys in the per-client and per-subject limiters.
    pub limiter_keys: (usize, usize),
    /// Unix time the policy was loaded.
    pub policy_loaded_at: f64,
    /// Unix time now.
    pub now: i64,
}

impl Metrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("phr".into()), None)?;
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let single_counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let single_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let float_gauge = |name: &str, help: &str| {
            let g = Gauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let jwks_age_seconds = GaugeVec::new(
            Opts::new(
                "jwks_age_seconds",
                "Seconds since the issuer's keys were last loaded",
            ),
            &["issuer"],
        )?;
        registry.register(Box::new(jwks_age_seconds.clone()))?;
        let phase_seconds = histogram(
            "phase_duration_seconds",
            "Time per request phase: decide, upstream, audit, total",
            &["phase"],
        )?;
        let phase = |name: &str| phase_seconds.get_metric_with_label_values(&[name]);
        let phases = Phases {
            decide: phase("decide")?,
            upstream: phase("upstream")?,
            audit: phase("audit")?,
            total: phase("total")?,
        };
        let metrics = Metrics {
            requests: counter(
                "requests_total",
                "Requests by route, decision, reason code and status class",
                &["route", "decision", "reason", "class"],
            )?,
            phase_seconds,
            phases,
            upstream_seconds: histogram(
                "upstream_response_seconds",
                "Time to the upstream's response head",
                &["upstream"],
            )?,
            upstream_errors: counter(
                "upstream_errors_total",
                "Upstream connect, TLS or read failures",
                &["upstream"],
            )?,
            tls_handshakes: counter(
                "tls_handshakes_total",
                "Completed client TLS handshakes by version",
                &["version"],
            )?,
            tls_handshake_failures: single_counter(
                "tls_handshake_failures_total",
                "Failed client TLS handshakes and other listener errors",
            )?,
            certificate_expiry_seconds: float_gauge(
                "tls_certificate_expiry_seconds",
                "Seconds until the served certificate expires",
            )?,
            jwks_refresh_failures: counter(
                "jwks_refresh_failures_total",
                "JWKS refreshes that failed; the last good keys stayed in use",
                &["issuer"],
            )?,
            jwks_age_seconds,
            rate_limited: counter(
                "rate_limited_total",
                "Requests refused by a rate limit, per limiter",
                &["limit"],
            )?,
            rate_limit_keys: gauge(
                "rate_limit_keys",
                "Keys held by the keyed rate limiters",
                &["limit"],
            )?,
            connections_cut: counter(
                "connections_cut_total",
                "Client connections closed by the gateway",
                &["reason"],
            )?,
            http2_streams_reset: counter(
                "http2_streams_reset_total",
                "HTTP/2 streams reset by the HTTP/2 layer without an answer, by error code",
                &["error"],
            )?,
            connections_open: single_gauge("connections_open", "Open client connections")?,
            inspection_hits: counter(
                "inspection_hits_total",
                "Inspection findings by class",
                &["class", "action"],
            )?,
            audit_queue_depth: single_gauge(
                "audit_queue_depth",
                "Records waiting for the audit writer",
            )?,
            audit_available: single_gauge(
                "audit_available",
                "1 while the audit store writes, 0 while it cannot",
            )?,
            audit_records: gauge(
                "audit_records",
                "Records in the log (its head), per log",
                &["log"],
            )?,
            audit_checkpoint_size: gauge(
                "audit_checkpoint_size",
                "Records covered by the latest signed checkpoint, per log",
                &["log"],
            )?,
            audit_write_failures: single_counter(
                "audit_write_failures_total",
                "Access-record writes that failed",
            )?,
            third_party_records: counter(
                "third_party_records_total",
                "Exchanges with registered recipients recorded before release (R-LOG-3)",
                &["recipient", "direction"],
            )?,
            audit_records_lost: single_gauge(
                "audit_records_lost",
                "Access records lost since start (degrade mode or a full queue)",
            )?,
            policy_reloads: counter(
                "policy_reloads_total",
                "Policy reloads by result",
                &["result"],
            )?,
            policy_loaded_timestamp: float_gauge(
                "policy_loaded_timestamp_seconds",
                "Unix time the policy in force was loaded",
            )?,
            active_sessions: single_gauge("active_sessions", "Sessions seen and not ended")?,
            stopped_subjects: single_gauge(
                "stopped_subjects",
                "Subjects whose data use is stopped",
            )?,
            mode: gauge(
                "mode",
                "1 for the gateway's mode (normal, stopped, read-only), 0 for the others",
                &["mode"],
            )?,
            admin_calls: counter(
                "admin_calls_total",
                "Admin listener calls by result",
                &["result"],
            )?,
            registry,
        };
        metrics.set_mode(Mode::Normal);
        for result in ["ok", "failed"] {
            metrics.policy_reloads.with_label_values(&[result]);
        }
        for limit in ["client", "subject", "route"] {
            metrics.rate_limited.with_label_values(&[limit]);
        }
        Ok(metrics)
    }

    /// Mark `mode` as the one in force.
    pub fn set_mode(&self, mode: Mode) {
        for m in Mode::ALL {
            self.mode
                .with_label_values(&[m.name()])
                .set(i64::from(m == mode));
        }
    }

    /// Count one finished request by route, decision, reason code and status class.
    pub fn count_request(&self, route: &str, decision: &str, reason: &str, status: u16) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "none",
        };
        self.requests
            .with_label_values(&[route, decision, reason, class])
            .inc();
    }

    /// Copy state owned elsewhere into the gauges.
    pub fn observe(&self, r: &Readings) {
        if let Some(audit) = r.audit {
            self.audit_queue_depth.set(audit.queue_depth as i64);
            self.audit_available.set(i64::from(audit.available));
            self.audit_records_lost.set(audit.access_lost as i64);
            self.audit_records
                .with_label_values(&["access"])
                .set(audit.access_appended as i64);
            self.audit_records
                .with_label_values(&["state"])
                .set(audit.state_appended as i64);
            self.audit_checkpoint_size
                .with_label_values(&["access"])
                .set(audit.access_checkpoint as i64);
            self.audit_checkpoint_size
                .with_label_values(&["state"])
                .set(audit.state_checkpoint as i64);
        }
        if let Some(expires) = r.certificate_expires_at {
            self.certificate_expiry_seconds
                .set((expires - r.now) as f64);
        }
        self.active_sessions.set(r.active_sessions as i64);
        self.stopped_subjects.set(r.stopped_subjects as i64);
        self.connections_open.set(r.open_connections as i64);
        self.rate_limit_keys
            .with_label_values(&["client"])
            .set(r.limiter_keys.0 as i64);
        self.rate_limit_keys
            .with_label_values(&["subject"])
            .set(r.limiter_keys.1 as i64);
        self.policy_loaded_timestamp.set(r.policy_loaded_at);
    }

    /// The text exposition format of every series.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding our own registry into a Vec cannot fail short of a bug; an empty page says so.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The media type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's metrics, made on first use. `None` only if registration failed (a bug in the
/// fixed names above, covered by the test below); the gateway serves either way.
pub fn metrics() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            Metrics::new()
                .inspect_err(|e| tracing::error!("metrics unavailable: {e}"))
                .ok()
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every series name the gateway exports (each vector touched once so it renders).
    fn exported_names() -> std::collections::BTreeSet<String> {
        let m = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        m.requests
            .with_label_values(&["r", "allow", "allow", "2xx"])
            .inc();
        m.phase_seconds.with_label_values(&["total"]).observe(0.1);
        m.upstream_seconds.with_label_values(&["u"]).observe(0.1);
        m.upstream_errors.with_label_values(&["u"]).inc();
        m.tls_handshakes.with_label_values(&["TLSv1.3"]).inc();
        m.jwks_refresh_failures.with_label_values(&["i"]).inc();
        m.jwks_age_seconds.with_label_values(&["i"]).set(1.0);
        m.connections_cut.with_label_values(&["limit"]).inc();
        m.http2_streams_reset
            .with_label_values(&["refused_stream"])
            .inc();
        m.inspection_hits
            .with_label_values(&["sqli", "block"])
            .inc();
        m.admin_calls.with_label_values(&["allowed"]).inc();
        m.observe(&Readings {
            audit: Some(AuditStats {
                available: true,
                access_appended: 1,
                state_appended: 1,
                access_lost: 0,
                access_checkpoint: 1,
                state_checkpoint: 1,
                queue_depth: 0,
            }),
            certificate_expires_at: Some(10),
            ..Readings::default()
        });
        m.render()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(|n| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .fold(n.to_owned(), |n, s| {
                        n.strip_suffix(s).map_or(n.clone(), str::to_owned)
                    })
            })
            .collect()
    }

    /// docs/operations.md is where a security team reads what each series means.
    #[test]
    fn every_exported_series_is_explained_in_docs_operations() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
                .expect("docs/operations.md");
        let exported = exported_names();
        assert!(exported.len() > 20, "only {} series", exported.len());
        let unexplained: Vec<&String> = exported
            .iter()
            .filter(|name| !doc.contains(&format!("`{name}")))
            .collect();
        assert!(
            unexplained.is_empty(),
            "docs/operations.md does not explain {unexplained:?}"
        );
    }

    #[test]
    fn shipped_alerts_and_dashboard_name_only_exported_series() {
        let exported = exported_names();
        for file in [
            "deploy/prometheus/alerts.yml",
            "deploy/grafana/phr-gateway.json",
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
            let mut rest = text.as_str();
            let mut seen = 0;
            while let Some(at) = rest.find("phr_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .fold(name.clone(), |n, s| {
                        n.strip_suffix(s).map_or(n.clone(), str::to_owned)
                    });
                assert!(
                    exported.contains(&base),
                    "{file} names `{name}`, which the gateway does not export"
                );
                seen += 1;
            }
            assert!(seen > 5, "{file} names hardly any series");
        }
    }

    #[test]
    fn series_register_and_render() {
        let m = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        m.jwks_refresh_failures.with_label_values(&["idp"]).inc();
        m.jwks_age_seconds.with_label_values(&["idp"]).set(12.0);
        m.requests
            .with_label_values(&["r", "refuse", "route.not_found", "4xx"])
            .inc();
        m.set_mode(Mode::Stopped);
        let text = m.render();
        for expected in [
            "phr_jwks_refresh_failures_total{issuer=\"idp\"} 1",
            "phr_jwks_age_seconds{issuer=\"idp\"} 12",
            "phr_requests_total{class=\"4xx\",decision=\"refuse\",reason=\"route.not_found\",route=\"r\"} 1",
            "phr_mode{mode=\"stopped\"} 1",
            "phr_mode{mode=\"normal\"} 0",
            "phr_policy_reloads_total{result=\"failed\"} 0",
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
    }
}
