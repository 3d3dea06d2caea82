//! Sans-IO rate limiters keyed by IP, account or host: exponential backoff after failures,
//! and token buckets for request rates. Both take `now` and are bounded in memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The key an address is limited by: an IPv4 address itself, an IPv6 address's /64 (one
/// subscriber holds a whole /64, so its addresses cost nothing to vary). IPv4-mapped IPv6
/// addresses count as their IPv4 address.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Exponential backoff after failures (for logins: per IP and per account).
///
/// The first `free_failures` failures cost nothing; after that each failure doubles the
/// wait, from `base` up to `max`. A success clears the key. Keys whose wait has passed and
/// that have been quiet for `max` are forgotten when room is needed.
#[derive(Debug)]
pub struct Backoff<K> {
    /// Per-key failure state.
    entries: HashMap<K, BackoffEntry>,
    /// Failures allowed before any wait.
    free_failures: u32,
    /// First wait.
    base: Duration,
    /// Longest wait.
    max: Duration,
    /// Most keys remembered.
    capacity: usize,
}

#[derive(Debug, Clone, Copy)]
struct BackoffEntry {
    failures: u32,
    blocked_until: Instant,
    last_failure: Instant,
}

/// A request that must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many attempts; retry in {} s", retry_after.as_secs().max(1))]
pub struct RetryAfter {
    /// How long to wait.
    pub retry_after: Duration,
}

impl<K: Hash + Eq + Clone> Backoff<K> {
    /// A backoff with the given policy, remembering at most `capacity` keys.
    pub fn new(free_failures: u32, base: Duration, max: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            free_failures,
            base,
            max,
            capacity,
        }
    }

    /// Whether `key` may try now.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), RetryAfter> {
        match self.entries.get(key) {
            Some(e) if e.blocked_until > now => Err(RetryAfter {
                retry_after: e.blocked_until - now,
            }),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns the wait it imposes (zero while failures are free).
    pub fn failure(&mut self, key: &K, now: Instant) -> Duration {
        if !self.entries.contains_key(key) && self.entries.len() >= self.capacity {
            self.evict(now);
        }
        let e = self.entries.entry(key.clone()).or_insert(BackoffEntry {
            failures: 0,
            blocked_until: now,
            last_failure: now,
        });
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        let wait = if e.failures <= self.free_failures {
            Duration::ZERO
        } else {
            let exp = (e.failures - self.free_failures - 1).min(30);
            self.base.saturating_mul(1u32 << exp).min(self.max)
        };
        e.blocked_until = now + wait;
        wait
    }

    /// Records a success: the key starts over.
    pub fn success(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict(&mut self, now: Instant) {
        let max = self.max;
        self.entries
            .retain(|_, e| e.blocked_until > now || now.duration_since(e.last_failure) < max);
        if self.entries.len() >= self.capacity {
            // Still full of active keys: forget the oldest failure. An attacker who can
            // fill the table from many addresses gains one free guess per eviction, which
            // the per-account backoff still bounds.
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
    }
}

/// A token bucket per key (for lookups, ticket requests, connection attempts).
#[derive(Debug)]
pub struct TokenBucket<K> {
    /// Per-key tokens and last refill.
    buckets: HashMap<K, (f64, Instant)>,
    /// Bucket size (burst).
    capacity: f64,
    /// Tokens added per second.
    rate: f64,
    /// Most keys remembered.
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> TokenBucket<K> {
    /// Buckets holding `burst` tokens, refilled at `per_second`, for at most `max_keys` keys.
    pub fn new(burst: u32, per_second: f64, max_keys: usize) -> Self {
        Self {
            buckets: HashMap::new(),
            capacity: f64::from(burst),
            rate: per_second,
            max_keys,
        }
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn try_take(&mut self, key: &K, now: Instant) -> Result<(), RetryAfter> {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            let (cap, rate) = (self.capacity, self.rate);
            // Full buckets carry no information: forget them first.
            self.buckets.retain(|_, (tokens, at)| {
                (*tokens + now.duration_since(*at).as_secs_f64() * rate) < cap
            });
            if self.buckets.len() >= self.max_keys {
                return Err(RetryAfter {
                    retry_after: Duration::from_secs(1),
                });
            }
        }
        let (tokens, at) = self
            .buckets
            .entry(key.clone())
            .or_insert((self.capacity, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate)
            .min(self.capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let secs = if self.rate > 0.0 {
                (1.0 - *tokens) / self.rate
            } else {
                f64::from(u32::MAX)
            };
            Err(RetryAfter {
                retry_after: Duration::from_secs_f64(secs),
            })
        }
    }
}

/// A log line per window at most: the first event of a window is written, the rest are
/// counted and summed up by the next one written. What a stranger can repeat for free (a
/// bad resume token, say) costs the log one line a minute, not one per attempt.
#[derive(Debug)]
pub struct Quiet {
    window: Duration,
    started: Option<Instant>,
    suppressed: u64,
}

impl Quiet {
    /// One line per `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            started: None,
            suppressed: 0,
        }
    }

    /// When the counted events are due to be summed up (their window ends), if any are.
    pub fn due(&self) -> Option<Instant> {
        self.started
            .filter(|_| self.suppressed > 0)
            .map(|t| t + self.window)
    }

    /// At `now`, after the window: how many were counted and not written (then zero).
    pub fn flush(&mut self, now: Instant) -> Option<u64> {
        match self.due() {
            Some(at) if at <= now => {
                self.started = None;
                Some(std::mem::take(&mut self.suppressed))
            }
            _ => None,
        }
    }

    /// An event at `now`: `Some(n)` when it is to be written (`n` more were left out
    /// since the last one written), `None` when it is only counted.
    pub fn event(&mut self, now: Instant) -> Option<u64> {
        match self.started {
            Some(t) if now.saturating_duration_since(t) < self.window => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.started = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quiet_writes_one_line_a_window_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut q = Quiet::new(Duration::from_secs(60));
        assert_eq!(q.event(t0), Some(0));
        for i in 1..=500 {
            assert_eq!(q.event(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(q.event(t0 + Duration::from_secs(61)), Some(500));
        assert_eq!(q.event(t0 + Duration::from_secs(62)), None);
        // A flood that stops is summed up when its window ends.
        let t1 = t0 + Duration::from_secs(61);
        assert_eq!(q.due(), Some(t1 + Duration::from_secs(60)));
        assert_eq!(q.flush(t1 + Duration::from_secs(59)), None);
        assert_eq!(q.flush(t1 + Duration::from_secs(60)), Some(1));
        assert_eq!(q.due(), None);
        assert_eq!(q.event(t1 + Duration::from_secs(61)), Some(0));
    }

    #[test]
    fn ipv6_addresses_are_limited_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(limit_key(v4), v4);
        assert_eq!(limit_key("::ffff:192.0.2.7".parse().unwrap()), v4);
    }

    use super::*;

    #[test]
    fn backoff_doubles_after_free_failures_and_success_resets() {
        let t0 = Instant::now();
        let mut b = Backoff::new(3, Duration::from_secs(1), Duration::from_secs(60), 100);
        let k = "10.0.0.1";
        for _ in 0..3 {
            assert_eq!(b.failure(&k, t0), Duration::ZERO);
        }
        assert!(b.check(&k, t0).is_ok());
        assert_eq!(b.failure(&k, t0), Duration::from_secs(1));
        assert_eq!(
            b.check(&k, t0),
            Err(RetryAfter {
                retry_after: Duration::from_secs(1)
            })
        );
        assert_eq!(b.failure(&k, t0), Duration::from_secs(2));
        assert_eq!(b.failure(&k, t0), Duration::from_secs(4));
        for _ in 0..20 {
            b.failure(&k, t0);
        }
        assert_eq!(b.failure(&k, t0), Duration::from_secs(60));
        assert!(b.check(&k, t0 + Duration::from_secs(61)).is_ok());
        b.success(&k);
        assert!(b.check(&k, t0).is_ok());
        assert!(b.is_empty());
    }

    #[test]
    fn backoff_is_bounded() {
        let t0 = Instant::now();
        let mut b = Backoff::new(0, Duration::from_secs(1), Duration::from_secs(10), 4);
        for i in 0..100u32 {
            b.failure(&i, t0);
            assert!(b.len() <= 4);
        }
    }

    #[test]
    fn bucket_allows_burst_then_refills() {
        let t0 = Instant::now();
        let mut tb = TokenBucket::new(3, 1.0, 10);
        for _ in 0..3 {
            tb.try_take(&"h", t0).unwrap();
        }
        let err = tb.try_take(&"h", t0).unwrap_err();
        assert!(err.retry_after <= Duration::from_secs(1));
        tb.try_take(&"h", t0 + Duration::from_millis(1001)).unwrap();
        // Another key has its own bucket.
        tb.try_take(&"other", t0).unwrap();
    }

    #[test]
    fn bucket_key_table_is_bounded() {
        let t0 = Instant::now();
        let mut tb = TokenBucket::new(1, 0.001, 2);
        tb.try_take(&1, t0).unwrap();
        tb.try_take(&2, t0).unwrap();
        assert!(tb.try_take(&3, t0).is_err());
    }
}
