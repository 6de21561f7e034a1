//! Reconnect backoff: capped exponential growth with jitter and an optional
//! limit on attempts.
//!
//! Pure arithmetic over a seeded generator, so a test can replay the exact
//! sequence of delays a driver will sleep for.

use std::time::Duration;

/// How a client-side connection waits between reconnect attempts.
///
/// The n-th delay since the last established connection (counting from
/// zero) is `initial * 2^n`, capped at `max`, then shortened by a random
/// fraction of at most `jitter` so that many clients that lost the same
/// server do not come back in lockstep. With `max_attempts`, the endpoint is
/// given up after that many failed attempts in a row; losing an established
/// connection is not a failed attempt. Set it through
/// [`SocketOptions`](crate::SocketOptions).
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

/// The state of one reconnect loop.
///
/// The loop calls [`next_delay`](Backoff::next_delay) each time an attempt
/// ends, and [`reset`](Backoff::reset) when an attempt connected (before the
/// connection runs). An attempt that ends without `reset` failed; one that
/// connected and later dropped did not, so after a lost connection the first
/// delay is `initial` again and the give-up count starts from zero.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: BackoffPolicy,
    /// Delays handed out since the last connection: the doubling exponent.
    step: u32,
    /// Failed attempts in a row.
    failures: u32,
    /// The attempt that ends next had connected.
    connected: bool,
    rng: XorShift,
}

impl Backoff {
    pub(crate) fn new(policy: BackoffPolicy, seed: u64) -> Self {
        Self {
            policy,
            step: 0,
            failures: 0,
            connected: false,
            rng: XorShift::new(seed),
        }
    }

    /// An attempt ended: how long to wait before the next one, or `None`
    /// when it failed and the policy says to give up (after `max_attempts`
    /// failures in a row; a limit of zero acts as one).
    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        if std::mem::take(&mut self.connected) {
            // A connection that was up and dropped is not a failure.
        } else {
            self.failures = self.failures.saturating_add(1);
            if self
                .policy
                .max_attempts
                .is_some_and(|max| self.failures >= max)
            {
                return None;
            }
        }
        // 2^step overflows quickly; past 2^31 the cap has long been hit.
        let factor = 1u32.checked_shl(self.step.min(31)).unwrap_or(u32::MAX);
        let base = self
            .policy
            .initial
            .checked_mul(factor)
            .unwrap_or(self.policy.max)
            .min(self.policy.max);
        self.step = self.step.saturating_add(1);
        let cut = base.mul_f64(self.policy.jitter * self.rng.next_unit());
        Some(base.saturating_sub(cut))
    }

    /// Failed attempts in a row so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.failures
    }

    /// The attempt connected: delays and failures start over.
    pub(crate) fn reset(&mut self) {
        self.step = 0;
        self.failures = 0;
        self.connected = true;
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
    fn gives_up_after_max_failures_in_a_row() {
        let mut b = Backoff::new(policy(0.0, Some(3)), 1);
        // Three attempts: the first two failures get a delay, the third
        // failure gives up.
        assert_eq!(b.next_delay(), Some(Duration::from_millis(100)));
        assert_eq!(b.attempts(), 1);
        assert_eq!(b.next_delay(), Some(Duration::from_millis(200)));
        assert_eq!(b.attempts(), 2);
        assert_eq!(b.next_delay(), None);
        assert_eq!(b.attempts(), 3);
    }

    #[test]
    fn a_connection_resets_delays_and_failures_and_its_loss_is_no_failure() {
        let mut b = Backoff::new(policy(0.0, Some(2)), 1);
        assert_eq!(b.next_delay(), Some(Duration::from_millis(100)));
        b.reset();
        // The connection drops: not a failure, the first delay again.
        assert_eq!(b.next_delay(), Some(Duration::from_millis(100)));
        assert_eq!(b.attempts(), 0);
        assert_eq!(b.next_delay(), Some(Duration::from_millis(200)));
        assert_eq!(b.attempts(), 1);
        assert_eq!(b.next_delay(), None, "second failure in a row");
    }

    #[test]
    fn a_limit_of_zero_or_one_gives_up_at_the_first_failure() {
        for max in [0, 1] {
            let mut b = Backoff::new(policy(0.0, Some(max)), 1);
            assert_eq!(b.next_delay(), None);
        }
        let mut b = Backoff::new(policy(0.0, Some(1)), 1);
        b.reset();
        assert!(b.next_delay().is_some(), "a lost connection is no failure");
        assert_eq!(b.next_delay(), None);
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
