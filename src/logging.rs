//! Structured logs (tracing): JSON when stderr is not a terminal, text when it is.
//!
//! pingora logs every failed client TLS handshake at ERROR. A scanner makes thousands a
//! second, so those lines pass at most once per second, with a count of what was held back;
//! each is counted in `phr_tls_handshake_failures_total`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::subscriber::Interest;
use tracing::{Event, Metadata};
use tracing_log::{AsLog, NormalizeEvent};
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The target pingora logs downstream handshake failures under.
const HANDSHAKE_TARGET: &str = "pingora_core::services::listening";

static LAST_PASSED_SECOND: AtomicU64 = AtomicU64::new(0);
static HELD_BACK: AtomicU64 = AtomicU64::new(0);

/// Lets every event through except pingora's listener errors, which pass at most once per
/// second. Decided per event (not per callsite, which tracing caches), once per event.
struct ListenerErrorLimit;

impl<S> Filter<S> for ListenerErrorLimit {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    fn callsite_enabled(&self, _meta: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if meta.target() != HANDSHAKE_TARGET {
            return true;
        }
        // Every one is counted, whether its line passes or not (R-OPS-1).
        if *meta.level() == tracing::Level::ERROR {
            if let Some(m) = crate::metrics::metrics() {
                m.tls_handshake_failures.inc();
            }
        }
        allow_listener_error(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
    }
}

fn allow_listener_error(now_secs: u64) -> bool {
    let last = LAST_PASSED_SECOND.load(Ordering::Relaxed);
    if now_secs > last
        && LAST_PASSED_SECOND
            .compare_exchange(last, now_secs, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let held = HELD_BACK.swap(0, Ordering::Relaxed);
        if held > 0 {
            tracing::warn!(
                held_back = held,
                "listener errors (mostly failed TLS handshakes) were rate limited"
            );
        }
        return true;
    }
    HELD_BACK.fetch_add(1, Ordering::Relaxed);
    false
}

/// Install the global subscriber. `PHR_LOG` (EnvFilter syntax) sets levels; default `info`.
pub fn init() {
    let filter = EnvFilter::try_from_env("PHR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // pingora logs through the `log` crate, many debug lines per request. Capping `log` at the
    // filter's most verbose level stops those at the call site instead of turning each into a
    // tracing event that the filter then drops.
    let log_level = filter
        .max_level_hint()
        .map_or(log::LevelFilter::Trace, |l| l.as_log());
    let json = !std::io::stderr().is_terminal();
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().flatten_event(true).boxed()
    } else {
        fmt.boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter).with_filter(ListenerErrorLimit))
        .try_init();
    log::set_max_level(log_level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_errors_pass_once_per_second() {
        let base = 1_000_000;
        assert!(allow_listener_error(base));
        assert!(!allow_listener_error(base));
        assert!(!allow_listener_error(base));
        assert_eq!(HELD_BACK.load(Ordering::Relaxed), 2);
        assert!(allow_listener_error(base + 1));
        assert_eq!(HELD_BACK.load(Ordering::Relaxed), 0);
    }
}
