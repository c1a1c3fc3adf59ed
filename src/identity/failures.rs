//! Failed sign-in attempts (R-AUTH-5): invalid tokens counted per client address; past the
//! policy's threshold within its window, the address is refused for a cool-down period.

use std::net::IpAddr;

/// The policy's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureLimits {
    /// Invalid tokens allowed per address within `window_secs`.
    pub max_failures: u32,
    /// The counting window.
    pub window_secs: u64,
    /// How long an address stays refused once over the limit.
    pub lockout_secs: u64,
}

#[derive(Clone, Copy, Debug)]
struct Count {
    failures: u32,
    window_start: i64,
    locked_until: i64,
}

/// Counters per client address. Bounded: the least recently used addresses are forgotten
/// first, so a flood of distinct addresses cannot grow memory.
pub struct FailureTracker {
    counts: quick_cache::sync::Cache<IpAddr, Count>,
}

impl std::fmt::Debug for FailureTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FailureTracker")
    }
}

impl Default for FailureTracker {
    fn default() -> Self {
        FailureTracker {
            counts: quick_cache::sync::Cache::new(100_000),
        }
    }
}

impl FailureTracker {
    /// Seconds the address must still wait, if it is locked out at `now`.
    pub fn locked(&self, client: IpAddr, now: i64) -> Option<u64> {
        self.counts
            .get(&crate::net::limit_key(client))
            .filter(|c| c.locked_until > now)
            .map(|c| (c.locked_until - now) as u64)
    }

    /// Count one invalid token from `client`; returns whether it is now locked out.
    pub fn fail(&self, client: IpAddr, limits: FailureLimits, now: i64) -> bool {
        let client = crate::net::limit_key(client);
        let mut count = self.counts.get(&client).unwrap_or(Count {
            failures: 0,
            window_start: now,
            locked_until: 0,
        });
        if now.saturating_sub(count.window_start) > limits.window_secs as i64 {
            count.failures = 0;
            count.window_start = now;
        }
        count.failures += 1;
        let locked = count.failures > limits.max_failures;
        if locked {
            count.locked_until = now + limits.lockout_secs as i64;
            count.failures = 0;
            count.window_start = now;
        }
        self.counts.insert(client, count);
        locked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_the_limit_waits_out_the_lockout_r_auth_5() {
        let t = FailureTracker::default();
        let ip: IpAddr = "192.0.2.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let other: IpAddr = "192.0.2.10".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let limits = FailureLimits {
            max_failures: 3,
            window_secs: 60,
            lockout_secs: 300,
        };
        for _ in 0..3 {
            assert!(!t.fail(ip, limits, 1000));
        }
        assert!(t.locked(ip, 1000).is_none());
        assert!(t.fail(ip, limits, 1001));
        assert_eq!(t.locked(ip, 1001), Some(300));
        assert!(t.locked(other, 1001).is_none(), "only that address");
        // An IPv6 client is one client across its /64: a new address in it is still locked.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for n in 0..4 {
            t.fail(v6(&format!("2001:db8:5:6::{n}")), limits, 1000);
        }
        assert!(t.locked(v6("2001:db8:5:6:abcd::1"), 1000).is_some());
        assert!(t.locked(v6("2001:db8:5:7::1"), 1000).is_none());
        assert!(t.locked(ip, 1302).is_none(), "free after the cool-down");
        // Failures spread wider than the window do not add up.
        let spread = "192.0.2.11".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for i in 0..10 {
            assert!(!t.fail(spread, limits, 2000 + i * 61));
        }
    }
}
