//! Rate limits (R-NET-3): GCRA limiters (governor) per client address, per subject and per
//! route, each with its rate and burst from the policy; and, in [`connections`], per-address
//! connection limits and the header, body and idle deadlines that cut slow clients.
//!
//! Keyed state lives in a bounded store ([`BoundedKeys`]): a flood of distinct addresses or
//! subjects evicts the least useful keys instead of growing memory. An evicted key starts again
//! with a full burst; with the default of a million keys per limiter that needs a million other
//! keys to be seen in between, which a single client cannot cause faster than it could have
//! spent its own burst.

pub mod connections;

use std::convert::Infallible;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

use crate::decision::{Reason, Refusal};

/// A rate as the policy writes it: `requests` per `per_secs`, with `burst` requests allowed at
/// once (default: `requests`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests per window.
    pub requests: NonZeroU32,
    /// The window, in seconds.
    pub per_secs: u64,
    /// Requests allowed back to back.
    pub burst: NonZeroU32,
}

impl Rate {
    fn quota(self) -> Quota {
        // One request is replenished every window/requests; `per_secs` is at least 1.
        let period = Duration::from_secs(self.per_secs.max(1)) / self.requests.get();
        Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(self.requests))
            .allow_burst(self.burst)
    }
}

/// Which limiter refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// Per client address.
    Client,
    /// Per subject (the verified caller).
    Subject,
    /// Per route, all callers together.
    Route,
}

impl LimitKind {
    /// The name in metrics and in the `RateLimit-Policy` header.
    pub const fn name(self) -> &'static str {
        match self {
            LimitKind::Client => "client",
            LimitKind::Subject => "subject",
            LimitKind::Route => "route",
        }
    }
}

/// A keyed GCRA state store with a fixed upper bound on keys (CLOCK-Pro eviction by
/// quick_cache). Each key's state is governor's own lock-free cell.
pub struct BoundedKeys<K> {
    cells: quick_cache::sync::Cache<K, Arc<InMemoryState>>,
}

impl<K: Eq + Hash + Clone> BoundedKeys<K> {
    /// A store holding at most about `max_keys` keys.
    pub fn new(max_keys: usize) -> Self {
        BoundedKeys {
            cells: quick_cache::sync::Cache::new(max_keys.max(1)),
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

impl<K: Eq + Hash + Clone> StateStore for BoundedKeys<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let cell = match self.cells.get(key) {
            Some(cell) => cell,
            None => self
                .cells
                .get_or_insert_with(key, || {
                    Ok::<_, Infallible>(Arc::new(InMemoryState::default()))
                })
                .unwrap_or_else(|never| match never {}),
        };
        cell.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl<K: Eq + Hash + Clone> ShrinkableKeyedStateStore<K> for BoundedKeys<K> {
    /// Not needed: the bound is enforced on insert.
    fn retain_recent(&self, _drop_below: Nanos) {}

    fn len(&self) -> usize {
        self.cells.len()
    }

    fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

type Keyed<K> = RateLimiter<
    K,
    BoundedKeys<K>,
    MonotonicClock,
    NoOpMiddleware<<MonotonicClock as Clock>::Instant>,
>;
type Direct = RateLimiter<
    NotKeyed,
    InMemoryState,
    MonotonicClock,
    NoOpMiddleware<<MonotonicClock as Clock>::Instant>,
>;

struct Limiter<L> {
    rate: Rate,
    limiter: L,
}

/// The compiled rate limits of one policy snapshot. A reload starts them afresh.
pub struct RateLimits {
    clock: MonotonicClock,
    per_client: Option<Limiter<Keyed<IpAddr>>>,
    per_subject: Option<Limiter<Keyed<Arc<str>>>>,
    /// Indexed like the route table; `None` where a route has no limit of its own.
    per_route: Vec<Option<Limiter<Direct>>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_client", &self.per_client.as_ref().map(|l| l.rate))
            .field("per_subject", &self.per_subject.as_ref().map(|l| l.rate))
            .field(
                "per_route",
                &self.per_route.iter().filter(|r| r.is_some()).count(),
            )
            .finish()
    }
}

impl RateLimits {
    /// Limiters for the given rates; `max_keys` bounds each keyed limiter.
    pub fn new(
        per_client: Option<Rate>,
        per_subject: Option<Rate>,
        per_route: Vec<Option<Rate>>,
        max_keys: usize,
    ) -> Self {
        RateLimits {
            per_client: per_client.map(|rate| Limiter {
                rate,
                limiter: RateLimiter::new(rate.quota(), BoundedKeys::new(max_keys), MonotonicClock),
            }),
            per_subject: per_subject.map(|rate| Limiter {
                rate,
                limiter: RateLimiter::new(rate.quota(), BoundedKeys::new(max_keys), MonotonicClock),
            }),
            per_route: per_route
                .into_iter()
                .map(|r| {
                    r.map(|rate| Limiter {
                        rate,
                        limiter: RateLimiter::direct_with_clock(rate.quota(), MonotonicClock),
                    })
                })
                .collect(),
            clock: MonotonicClock,
        }
    }

    /// No limits at all.
    pub fn none() -> Self {
        RateLimits::new(None, None, Vec::new(), 1)
    }

    /// Charge one request to the client's address.
    pub fn check_client(&self, client: IpAddr) -> Result<(), Refusal> {
        match &self.per_client {
            Some(l) => self.verdict(LimitKind::Client, l.rate, l.limiter.check_key(&client)),
            None => Ok(()),
        }
    }

    /// Charge one request to the subject and to the route.
    pub fn check_caller(&self, subject: Option<&Arc<str>>, route: usize) -> Result<(), Refusal> {
        if let (Some(l), Some(subject)) = (&self.per_subject, subject) {
            self.verdict(LimitKind::Subject, l.rate, l.limiter.check_key(subject))?;
        }
        if let Some(Some(l)) = self.per_route.get(route) {
            self.verdict(LimitKind::Route, l.rate, l.limiter.check())?;
        }
        Ok(())
    }

    /// Keys held by the per-client and per-subject limiters.
    pub fn key_counts(&self) -> (usize, usize) {
        (
            self.per_client.as_ref().map_or(0, |l| l.limiter.len()),
            self.per_subject.as_ref().map_or(0, |l| l.limiter.len()),
        )
    }

    fn verdict(
        &self,
        kind: LimitKind,
        rate: Rate,
        result: Result<(), governor::NotUntil<<MonotonicClock as Clock>::Instant>>,
    ) -> Result<(), Refusal> {
        let Err(not_until) = result else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(self.clock.now());
        // Whole seconds, rounded up: a client that waits what it is told gets through.
        let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if let Some(m) = crate::metrics::metrics() {
            m.rate_limited.with_label_values(&[kind.name()]).inc();
        }
        let mut refusal = Refusal::new(
            Reason::RateLimited,
            format!(
                "the {} rate limit ({} requests per {} s) is used up; retry in {retry_after} s",
                kind.name(),
                rate.requests,
                rate.per_secs
            ),
        );
        refusal.retry_after = Some(retry_after.max(1));
        // draft-ietf-httpapi-ratelimit-headers: the policy (quota and window) and the state
        // (nothing remaining, reset in `t` seconds).
        refusal.rate_limit = Some(Box::new(RateLimitHeaders {
            policy: format!("\"{}\";q={};w={}", kind.name(), rate.burst, rate.per_secs),
            state: format!("\"{}\";r=0;t={}", kind.name(), retry_after.max(1)),
        }));
        Err(refusal)
    }
}

/// The `RateLimit-Policy` and `RateLimit` header values of a refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `RateLimit-Policy`.
    pub policy: String,
    /// `RateLimit`.
    pub state: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(requests: u32, per_secs: u64, burst: u32) -> Rate {
        Rate {
            requests: NonZeroU32::new(requests).unwrap_or(NonZeroU32::MIN),
            per_secs,
            burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
        }
    }

    #[test]
    fn burst_then_refusal_with_headers() {
        let limits = RateLimits::new(Some(rate(60, 60, 3)), None, Vec::new(), 100);
        let client: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..3 {
            assert!(limits.check_client(client).is_ok());
        }
        let refusal = limits.check_client(client).err();
        let refusal = refusal.unwrap_or_else(|| panic!("the fourth request passed"));
        assert_eq!(refusal.reason, Reason::RateLimited);
        assert_eq!(refusal.retry_after, Some(1));
        let headers = refusal.rate_limit.unwrap_or_else(|| panic!("no headers"));
        assert_eq!(headers.policy, "\"client\";q=3;w=60");
        assert_eq!(headers.state, "\"client\";r=0;t=1");
        // Another address has its own burst.
        assert!(limits.check_client([192, 0, 2, 2].into()).is_ok());
    }

    #[test]
    fn subject_and_route_limits_are_separate() {
        let limits = RateLimits::new(
            None,
            Some(rate(1, 60, 1)),
            vec![None, Some(rate(1, 60, 2))],
            100,
        );
        let alice: Arc<str> = Arc::from("alice");
        let bob: Arc<str> = Arc::from("bob");
        assert!(limits.check_caller(Some(&alice), 0).is_ok());
        assert!(limits.check_caller(Some(&alice), 0).is_err());
        assert!(limits.check_caller(Some(&bob), 1).is_ok());
        // Route 1 allows two in all; anonymous callers count against it too.
        assert!(limits.check_caller(None, 1).is_ok());
        let third = limits.check_caller(None, 1).err().map(|r| r.rate_limit);
        assert!(matches!(third, Some(Some(h)) if h.policy.starts_with("\"route\"")));
    }

    #[test]
    fn key_memory_stays_bounded_under_a_flood_of_addresses() {
        let max_keys = 10_000;
        let limits = RateLimits::new(Some(rate(10, 1, 10)), None, Vec::new(), max_keys);
        for i in 0..100_000u32 {
            let addr = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            let _ = limits.check_client(addr);
        }
        let (clients, _) = limits.key_counts();
        assert!(clients <= max_keys, "{clients} keys held, bound {max_keys}");
        assert!(
            clients > max_keys / 2,
            "the store evicted far too much: {clients}"
        );
    }
}
