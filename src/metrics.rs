//! Metrics (R-OPS-1): one Prometheus registry for the process. Labels stay low-cardinality
//! (issuer ids, route ids, reason codes; never a subject, a patient or an address). The admin
//! listener's `/metrics` (the operations issue) serves [`render`]; parts of the gateway add
//! their series here as they land.

use std::sync::OnceLock;

use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    /// JWKS refreshes that failed (the last good keys stayed in use), per issuer.
    pub jwks_refresh_failures: IntCounterVec,
    /// Seconds since an issuer's keys were last replaced, per issuer.
    pub jwks_age_seconds: GaugeVec,
}

impl Metrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("phr".into()), None)?;
        let jwks_refresh_failures = IntCounterVec::new(
            Opts::new(
                "jwks_refresh_failures_total",
                "JWKS refreshes that failed; the last good keys stayed in use",
            ),
            &["issuer"],
        )?;
        let jwks_age_seconds = GaugeVec::new(
            Opts::new(
                "jwks_age_seconds",
                "Seconds since the issuer's keys were last loaded",
            ),
            &["issuer"],
        )?;
        registry.register(Box::new(jwks_refresh_failures.clone()))?;
        registry.register(Box::new(jwks_age_seconds.clone()))?;
        Ok(Metrics {
            registry,
            jwks_refresh_failures,
            jwks_age_seconds,
        })
    }

    /// The text exposition format of every series.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding our own registry into a Vec cannot fail short of a bug; an empty page says so.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

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

    #[test]
    fn series_register_and_render() {
        let m = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        m.jwks_refresh_failures.with_label_values(&["idp"]).inc();
        m.jwks_age_seconds.with_label_values(&["idp"]).set(12.0);
        let text = m.render();
        assert!(
            text.contains("phr_jwks_refresh_failures_total{issuer=\"idp\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("phr_jwks_age_seconds{issuer=\"idp\"} 12"),
            "{text}"
        );
    }
}
