//! Rate-limit check cost (issue: operate): one per-client check with 1,000,000 live keys in the
//! limiter, the key hit on each iteration drawn from all of them in a scattered order (every
//! check misses the CPU caches, as in a flood of addresses), and one check of a hot key. The
//! rate is high enough that every check is allowed: the cost measured is the check, not the
//! refusal's response. Goal: under 200 ns per check. docs/performance.md has the figures.

use std::hint::black_box;
use std::net::IpAddr;
use std::num::NonZeroU32;

use criterion::{criterion_group, criterion_main, Criterion};
use phr_gateway::limits::{Rate, RateLimits};

const LIVE_KEYS: u32 = 1_000_000;

fn address(i: u32) -> IpAddr {
    IpAddr::from((0x0a00_0000u32 + i).to_be_bytes())
}

fn bench(c: &mut Criterion) {
    let rate = Rate {
        requests: NonZeroU32::new(u32::MAX).unwrap_or(NonZeroU32::MIN),
        per_secs: 1,
        burst: NonZeroU32::new(u32::MAX).unwrap_or(NonZeroU32::MIN),
    };
    // The policy's default bound (1,000,000): some keys collide out as they would in service.
    let limits = RateLimits::new(Some(rate), None, Vec::new(), 1_000_000);
    for i in 0..LIVE_KEYS {
        let _ = limits.check_client(address(i));
    }
    let mut group = c.benchmark_group("rate_limit");
    let mut i = 0u32;
    group.bench_function("check_client, 1M live keys, spread", |b| {
        b.iter(|| {
            // A multiplicative step walks all keys in a scattered order.
            i = i.wrapping_add(2_654_435_761) % LIVE_KEYS;
            assert!(limits.check_client(black_box(address(i))).is_ok());
        })
    });
    group.bench_function("check_client, hot key", |b| {
        b.iter(|| assert!(limits.check_client(black_box(address(7))).is_ok()))
    });
    group.finish();
    let (clients, _) = limits.key_counts();
    eprintln!("keys held after the run: {clients}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
