//! Heartbeats: detect a dead peer even when the connection looks alive.
//!
//! Either side sends `Ping` every `interval` and
//! declares the peer dead after `timeout` without receiving anything at all
//! (any bytes count as proof of life, not only a `Pong`: also the first
//! part of a large frame still on its way).

use std::time::{Duration, Instant};

/// What the heartbeat asks the driver to do after a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeartbeatAction {
    /// Send `Ping` with this nonce.
    Ping(u64),
    /// Nothing heard for longer than the timeout: close the connection.
    Dead,
}

/// Heartbeat state of one connection.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    last_recv: Instant,
    last_send: Instant,
    nonce: u64,
}

impl Heartbeat {
    pub(crate) fn new(now: Instant, interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            timeout,
            last_recv: now,
            last_send: now,
            nonce: 0,
        }
    }

    /// Something arrived from the peer.
    pub(crate) fn handle_recv(&mut self, now: Instant) {
        self.last_recv = now;
    }

    /// The next moment [`Heartbeat::handle_timeout`] has work to do.
    pub(crate) fn poll_timeout(&self) -> Instant {
        (self.last_send + self.interval).min(self.last_recv + self.timeout)
    }

    /// Called at or after [`Heartbeat::poll_timeout`].
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<HeartbeatAction> {
        if now >= self.last_recv + self.timeout {
            return Some(HeartbeatAction::Dead);
        }
        if now >= self.last_send + self.interval {
            self.last_send = now;
            self.nonce = self.nonce.wrapping_add(1);
            return Some(HeartbeatAction::Ping(self.nonce));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_secs(1);
    const T: Duration = Duration::from_secs(3);

    #[test]
    fn pings_after_each_idle_interval() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, I, T);
        assert_eq!(hb.poll_timeout(), t0 + I);
        assert_eq!(hb.handle_timeout(t0 + I / 2), None);
        assert_eq!(hb.handle_timeout(t0 + I), Some(HeartbeatAction::Ping(1)));
        hb.handle_recv(t0 + I);
        assert_eq!(hb.poll_timeout(), t0 + 2 * I);
        assert_eq!(
            hb.handle_timeout(t0 + 2 * I),
            Some(HeartbeatAction::Ping(2))
        );
    }

    #[test]
    fn silence_past_the_timeout_is_death_even_while_pinging() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, I, T);
        let mut pings = 0;
        let now = loop {
            let now = hb.poll_timeout();
            match hb.handle_timeout(now) {
                Some(HeartbeatAction::Ping(_)) => pings += 1,
                Some(HeartbeatAction::Dead) => break now,
                None => panic!("woken at {now:?} for nothing"),
            }
        };
        assert_eq!(now, t0 + T);
        assert_eq!(pings, 2);
    }

    #[test]
    fn anything_received_keeps_the_peer_alive() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, I, T);
        for s in 1..10u64 {
            let now = t0 + Duration::from_secs(s);
            hb.handle_recv(now);
            assert_ne!(hb.handle_timeout(now), Some(HeartbeatAction::Dead));
        }
    }
}
