//! Reconnect backoff: capped exponential growth with jitter and an optional
//! limit on attempts.
//!
//! Pure arithmetic over a seeded generator, so a test can replay the exact
//! sequence of delays a driver will sleep for.

use std::time::Duration;

/// How a client-side connection waits between reconnect attempts.
///
/// The n-th delay (counting from zero) is `initial * 2^n`, capped at `max`,
/// then shortened by a random fraction of at most `jitter` so that many
/// clients that lost the same server do not come back in lockstep.
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffPolicy {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) jitter: f64,
    pub(crate) max_attempts: Option<u32>,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            jitter: 0.5,
            max_attempts: None,
        }
    }
}

/// The state of one reconnect loop: which attempt comes next.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
    rng: XorShift,
}

impl Backoff {
    pub(crate) fn new(policy: BackoffPolicy, seed: u64) -> Self {
        Self {
            policy,
            attempt: 0,
            rng: XorShift::new(seed),
        }
    }

    /// How long to wait before the next attempt, or `None` when the policy
    /// says to give up.
    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        if let Some(max) = self.policy.max_attempts {
            if self.attempt >= max {
                return None;
            }
        }
        // 2^attempt overflows quickly; past 2^31 the cap has long been hit.
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        let base = self
            .policy
            .initial
            .checked_mul(factor)
            .unwrap_or(self.policy.max)
            .min(self.policy.max);
        self.attempt = self.attempt.saturating_add(1);
        let cut = base.mul_f64(self.policy.jitter * self.rng.next_unit());
        Some(base.saturating_sub(cut))
    }

    /// Attempts made since the last successful connection.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over after a connection succeeded.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A tiny deterministic generator (xorshift64*), plenty for jitter.
#[derive(Debug, Clone)]
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        // Zero is the one state xorshift never leaves.
        Self(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `[0, 1)`.
    pub(crate) fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64, max_attempts: Option<u32>) -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            jitter,
            max_attempts,
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_without_jitter() {
        let mut b = Backoff::new(policy(0.0, None), 7);
        let got: Vec<_> = (0..8)
            .map(|_| b.next_delay().unwrap().as_millis())
            .collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    }

    #[test]
    fn jitter_only_shortens_and_stays_within_its_fraction() {
        let mut b = Backoff::new(policy(0.5, None), 42);
        let mut seen_shorter = false;
        for n in 0..200u32 {
            let d = b.next_delay().unwrap();
            let base = Duration::from_millis(100)
                .checked_mul(1 << n.min(10))
                .unwrap()
                .min(Duration::from_secs(2));
            assert!(d <= base, "attempt {n}: {d:?} > {base:?}");
            assert!(d >= base / 2, "attempt {n}: {d:?} < half of {base:?}");
            seen_shorter |= d < base;
        }
        assert!(seen_shorter, "jitter never applied");
    }

    #[test]
    fn gives_up_after_max_attempts_and_reset_starts_over() {
        let mut b = Backoff::new(policy(0.0, Some(3)), 1);
        assert!(b.next_delay().is_some());
        assert!(b.next_delay().is_some());
        assert!(b.next_delay().is_some());
        assert_eq!(b.next_delay(), None);
        assert_eq!(b.attempts(), 3);
        b.reset();
        assert_eq!(b.next_delay(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(policy(0.0, None), 3);
        for _ in 0..10_000 {
            assert!(b.next_delay().unwrap() <= Duration::from_secs(2));
        }
    }

    #[test]
    fn same_seed_same_delays() {
        let mut a = Backoff::new(policy(0.9, None), 99);
        let mut b = Backoff::new(policy(0.9, None), 99);
        for _ in 0..50 {
            assert_eq!(a.next_delay(), b.next_delay());
        }
    }
}
