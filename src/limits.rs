//! Rate limits (R-NET-3): GCRA limiters (governor) per client address, per subject and per
//! route, each with its rate and burst from the policy; and, in [`connections`], per-address
//! connection limits and the header, body and idle deadlines that cut slow clients.
//!
//! Keyed state lives in a bounded store ([`BoundedKeys`]): a flood of distinct addresses or
//! subjects replaces the least useful keys instead of growing memory. An evicted key starts
//! again with a full burst; the keys replaced first are the ones nearest to a full burst
//! anyway, so what a flood can take from a limited client is at most the rest of its window.

pub mod connections;

use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, QuantaClock};
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

/// Ways per bucket: four (tag, state) pairs of 8-byte words, one 64-byte cache line.
const WAYS: usize = 4;
/// Locks, striped over the buckets: few enough to stay in the CPU cache, many enough that two
/// workers rarely meet.
const LOCK_STRIPES: usize = 4096;

/// One cache line: `[tag0, state0, tag1, state1, ...]`. A tag is the key's 64-bit hash with
/// the low bit set (0: empty way); a state is the key's GCRA theoretical arrival time in
/// governor's nanoseconds. Read and written only under the bucket's stripe lock, so `Relaxed`
/// is enough: the lock orders them.
#[repr(align(64))]
#[derive(Default)]
struct Bucket([AtomicU64; 2 * WAYS]);

/// A keyed GCRA state store with a fixed number of slots: a set-associative table, four ways
/// per 64-byte bucket, so a check touches one cache line of the table whatever the number of
/// keys. A key is known by a 64-bit hash seeded per process (foldhash: a client cannot aim at
/// another's bucket); a new key takes the way of its bucket with the smallest state, i.e. the
/// one that is replenished the most (a fully replenished key holds no information: a fresh one
/// gets the same answer). The keys limited hardest are the last to go, so a flood of new
/// addresses cannot reset them.
pub struct BoundedKeys<K> {
    buckets: Box<[Bucket]>,
    locks: Box<[Mutex<()>]>,
    hasher: foldhash::fast::RandomState,
    held: AtomicUsize,
    _keys: PhantomData<fn(&K)>,
}

impl<K: Hash> BoundedKeys<K> {
    /// A store with room for at least `max_keys` keys (rounded up to a multiple of four).
    pub fn new(max_keys: usize) -> Self {
        let buckets = max_keys.div_ceil(WAYS).max(1);
        BoundedKeys {
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            locks: (0..LOCK_STRIPES.min(buckets))
                .map(|_| Mutex::new(()))
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
            held: AtomicUsize::new(0),
            _keys: PhantomData,
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash> StateStore for BoundedKeys<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let hash = self.hasher.hash_one(key);
        let index = (hash % self.buckets.len() as u64) as usize;
        let tag = hash | 1;
        let words = &self.buckets[index].0;
        // The lock guards no data of its own: every update is plain stores, so a poisoned lock
        // still leaves consistent ways.
        let _guard = self.locks[index % self.locks.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let tag_of = |way: usize| words[2 * way].load(Ordering::Relaxed);
        let state_of = |way: usize| words[2 * way + 1].load(Ordering::Relaxed);
        let found = (0..WAYS).find(|&way| tag_of(way) == tag);
        let (way, previous) = match found {
            Some(way) => (way, Some(Nanos::from(state_of(way)))),
            None => (
                (0..WAYS).min_by_key(|&way| state_of(way)).unwrap_or(0),
                None,
            ),
        };
        let (value, state) = f(previous)?;
        if tag_of(way) == 0 {
            self.held.fetch_add(1, Ordering::Relaxed);
        }
        words[2 * way].store(tag, Ordering::Relaxed);
        words[2 * way + 1].store(state.as_u64(), Ordering::Relaxed);
        Ok(value)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedKeys<K> {
    /// Not needed: the number of slots is fixed.
    fn retain_recent(&self, _drop_below: Nanos) {}

    fn len(&self) -> usize {
        BoundedKeys::len(self)
    }

    fn is_empty(&self) -> bool {
        BoundedKeys::is_empty(self)
    }
}

type Keyed<K> =
    RateLimiter<K, BoundedKeys<K>, QuantaClock, NoOpMiddleware<<QuantaClock as Clock>::Instant>>;
type Direct = RateLimiter<
    NotKeyed,
    InMemoryState,
    QuantaClock,
    NoOpMiddleware<<QuantaClock as Clock>::Instant>,
>;

struct Limiter<L> {
    rate: Rate,
    limiter: L,
}

/// The compiled rate limits of one policy snapshot. A reload starts them afresh.
pub struct RateLimits {
    clock: QuantaClock,
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
        // One clock (TSC-based, calibrated once per process; ~7 ns a reading where
        // `Instant::now` costs ~25): its instants are what `Retry-After` is computed from.
        let clock = QuantaClock::default();
        RateLimits {
            per_client: per_client.map(|rate| Limiter {
                rate,
                limiter: RateLimiter::new(rate.quota(), BoundedKeys::new(max_keys), clock.clone()),
            }),
            per_subject: per_subject.map(|rate| Limiter {
                rate,
                limiter: RateLimiter::new(rate.quota(), BoundedKeys::new(max_keys), clock.clone()),
            }),
            per_route: per_route
                .into_iter()
                .map(|r| {
                    r.map(|rate| Limiter {
                        rate,
                        limiter: RateLimiter::direct_with_clock(rate.quota(), clock.clone()),
                    })
                })
                .collect(),
            clock,
        }
    }

    /// No limits at all.
    pub fn none() -> Self {
        RateLimits::new(None, None, Vec::new(), 1)
    }

    /// Charge one request to the client's address.
    pub fn check_client(&self, client: IpAddr) -> Result<(), Refusal> {
        match &self.per_client {
            Some(l) => self.verdict(
                LimitKind::Client,
                l.rate,
                l.limiter.check_key(&crate::net::limit_key(client)),
            ),
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
        result: Result<(), governor::NotUntil<<QuantaClock as Clock>::Instant>>,
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
        // An IPv6 client is counted by its /64: another address in it is the same client.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{s}: {e}"));
        for _ in 0..3 {
            assert!(limits.check_client(v6("2001:db8:1:2::1")).is_ok());
        }
        assert!(limits.check_client(v6("2001:db8:1:2:ffff::9")).is_err());
        assert!(limits.check_client(v6("2001:db8:1:3::1")).is_ok());
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
        assert!(
            clients <= max_keys + WAYS,
            "{clients} keys held, bound {max_keys}"
        );
        assert!(
            clients > max_keys / 2,
            "the store evicted far too much: {clients}"
        );
    }
}
