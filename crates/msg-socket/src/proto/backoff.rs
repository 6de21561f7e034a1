//! Reconnect backoff: capped exponential growth with jitter and an optional
//! limit on attempts.
//!
//! Pure arithmetic over a seeded generator, so a test can replay the exact
//! sequence of delays a driver will sleep for.

use std::time::Duration;

/// How a connecting socket waits between reconnect attempts: a capped
/// exponential backoff with jitter and an optional limit on attempts.
///
/// The n-th delay since the last established connection (counting from
/// zero) is [`initial_delay`](Self::initial_delay) ×
/// [`multiplier`](Self::multiplier)ⁿ, capped at
/// [`max_delay`](Self::max_delay), then shortened by a random fraction of
/// at most [`jitter`](Self::jitter), so that many clients that lost the
/// same server do not come back in lockstep. With
/// [`give_up_after`](Self::give_up_after), the endpoint is given up after
/// that many failed attempts in a row; losing an established connection is
/// not a failed attempt, and starts the delays over.
///
/// Build one with [`BackoffPolicy::new`] and its setters, and hand it to
/// [`SocketOptions::reconnect`](crate::SocketOptions::reconnect), which
/// validates it with the other options. The `reconnect_*` setters of
/// [`SocketOptions`](crate::SocketOptions) change single fields of the same
/// policy.
///
/// ```
/// use std::time::Duration;
/// use msg_socket::{BackoffPolicy, ReqSocket, SocketOptions};
///
/// // 50 ms, 150 ms, 450 ms, ... up to 5 s; never the same for two
/// // clients; stop after 20 failures in a row.
/// let mut policy = BackoffPolicy::new();
/// policy
///     .initial_delay(Duration::from_millis(50))
///     .multiplier(3.0)
///     .max_delay(Duration::from_secs(5))
///     .jitter(0.3)
///     .give_up_after(Some(20));
/// assert_eq!(policy.base_delay(2), Duration::from_millis(450));
///
/// let mut opts = SocketOptions::new();
/// opts.reconnect(policy);
/// let _req = ReqSocket::with_options(opts)?;
/// # Ok::<(), msg_socket::SocketError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffPolicy {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
    max_attempts: Option<u32>,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.5,
            max_attempts: None,
        }
    }
}

impl BackoffPolicy {
    /// The default policy: 100 ms, doubling up to 10 s, jitter 0.5, retried
    /// forever.
    pub fn new() -> Self {
        Self::default()
    }

    /// First delay after a connection is lost or an attempt fails.
    ///
    /// Shorter finds a restarted server sooner; longer spares a server
    /// that is down. Must be positive and at most
    /// [`max_delay`](Self::max_delay). Default: 100 ms.
    pub fn initial_delay(&mut self, delay: Duration) -> &mut Self {
        self.initial = delay;
        self
    }

    /// Longest delay between attempts: the cap of the exponential growth.
    ///
    /// It bounds how long a client stays away after its server is back.
    /// Must be at least [`initial_delay`](Self::initial_delay).
    /// Default: 10 s.
    pub fn max_delay(&mut self, delay: Duration) -> &mut Self {
        self.max = delay;
        self
    }

    /// Factor by which each delay grows over the one before, until
    /// [`max_delay`](Self::max_delay).
    ///
    /// 1.0 retries at a constant interval; larger values back off faster
    /// from a server that stays down, at the price of coming back later
    /// once it is up. Must be finite and at least 1.0. Default: 2.0.
    pub fn multiplier(&mut self, factor: f64) -> &mut Self {
        self.multiplier = factor;
        self
    }

    /// Fraction (0.0 to 1.0) by which each delay is randomly shortened.
    ///
    /// Spreads the reconnects of many clients that lost the same server
    /// over time; 0.0 makes delays exact (predictable, but clients return
    /// in lockstep). Default: 0.5.
    pub fn jitter(&mut self, fraction: f64) -> &mut Self {
        self.jitter = fraction;
        self
    }

    /// Gives up on an endpoint after this many failed attempts in a row
    /// (a [`SocketEvent::GaveUp`](crate::SocketEvent::GaveUp) event);
    /// `None` retries forever.
    ///
    /// An established connection that is later lost is not a failure and
    /// resets the count. A limit of zero acts as one. Default: `None`.
    pub fn give_up_after(&mut self, attempts: Option<u32>) -> &mut Self {
        self.max_attempts = attempts;
        self
    }

    /// The delay before retry `n` (counting from zero since the last
    /// connection) before jitter: `initial_delay × multiplierⁿ`, capped at
    /// `max_delay`.
    ///
    /// Jitter makes the delay actually slept shorter, by up to the
    /// [`jitter`](Self::jitter) fraction of this.
    pub fn base_delay(&self, n: u32) -> Duration {
        // In f64 nanoseconds: exact for the powers of two of a doubling
        // policy (below 2^53 ns, about 104 days), and anything past the cap,
        // infinite or NaN ends at the cap.
        let exponent = i32::try_from(n).unwrap_or(i32::MAX);
        let nanos = self.initial.as_nanos() as f64 * self.multiplier.powi(exponent);
        if nanos < self.max.as_nanos() as f64 {
            // `as` saturates; below the cap, so at most the cap.
            Duration::from_nanos(nanos as u64).min(self.max)
        } else {
            self.max
        }
    }

    /// Checks the policy: the first contradiction, as a message.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err("reconnect jitter must be between 0.0 and 1.0");
        }
        if self.initial.is_zero() || self.initial > self.max {
            return Err("reconnect initial delay must be positive and at most the maximum");
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err("reconnect multiplier must be finite and at least 1.0");
        }
        Ok(())
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
        let base = self.policy.base_delay(self.step);
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
        let mut policy = BackoffPolicy::new();
        policy
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(2))
            .jitter(jitter)
            .give_up_after(max_attempts);
        policy
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
    fn the_multiplier_sets_the_growth_and_one_keeps_delays_constant() {
        let mut p = policy(0.0, None);
        p.multiplier(3.0);
        let got: Vec<_> = (0..5).map(|n| p.base_delay(n).as_millis()).collect();
        assert_eq!(got, [100, 300, 900, 2000, 2000]);
        p.multiplier(1.0);
        assert!((0..100).all(|n| p.base_delay(n) == Duration::from_millis(100)));
        p.multiplier(1.5);
        assert_eq!(p.base_delay(1), Duration::from_millis(150));
    }

    #[test]
    fn extreme_policies_end_at_the_cap_without_panicking() {
        let mut p = BackoffPolicy::new();
        p.initial_delay(Duration::from_secs(1))
            .max_delay(Duration::MAX)
            .multiplier(1e300);
        assert_eq!(p.base_delay(0), Duration::from_secs(1));
        assert_eq!(p.base_delay(u32::MAX), Duration::MAX);
        p.max_delay(Duration::from_secs(5));
        assert_eq!(p.base_delay(1), Duration::from_secs(5));
    }

    #[test]
    fn check_rejects_contradictions() {
        assert!(BackoffPolicy::new().check().is_ok());
        for bad in [0.5, f64::NAN, f64::INFINITY] {
            let mut p = BackoffPolicy::new();
            p.multiplier(bad);
            assert!(p.check().unwrap_err().contains("multiplier"), "{bad}");
        }
        let mut p = BackoffPolicy::new();
        p.jitter(1.5);
        assert!(p.check().unwrap_err().contains("jitter"));
        let mut p = BackoffPolicy::new();
        p.initial_delay(Duration::from_secs(20));
        assert!(p.check().unwrap_err().contains("initial"));
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
