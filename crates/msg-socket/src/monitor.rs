//! Observability: per-socket statistics and the stream of connection events.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use msg_transport::{Endpoint, PeerAddr};
use tokio::sync::broadcast;

/// How many events a slow [`SocketEvents`] reader may fall behind before it
/// misses the oldest ones.
pub(crate) const EVENT_BUFFER: usize = 1024;

/// Something that happened to one of a socket's connections, in the spirit of
/// ZeroMQ's socket monitor.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketEvent {
    /// The socket is bound and accepting at this endpoint (with the real
    /// port).
    Listening(Endpoint),
    /// A connection finished its handshake.
    Connected {
        /// The peer.
        peer: PeerAddr,
        /// The identity it announced.
        identity: bytes::Bytes,
    },
    /// An established connection ended.
    Disconnected {
        /// The peer.
        peer: PeerAddr,
        /// Why, in words.
        reason: String,
    },
    /// A connect attempt failed (nothing listening, TLS refused, timeout).
    ConnectFailed {
        /// The endpoint tried.
        endpoint: Endpoint,
        /// Why, in words.
        error: String,
    },
    /// The socket will try this endpoint again after `delay`.
    Reconnecting {
        /// The endpoint.
        endpoint: Endpoint,
        /// Failed attempts in a row so far.
        attempt: u32,
        /// How long it waits first.
        delay: Duration,
    },
    /// The socket stopped trying this endpoint (the reconnect give-up limit
    /// was reached).
    GaveUp {
        /// The endpoint.
        endpoint: Endpoint,
    },
    /// A handshake failed: garbage instead of a handshake, a timeout, an
    /// incompatible socket type or protocol version.
    HandshakeFailed {
        /// The peer.
        peer: PeerAddr,
        /// Why, in words.
        error: String,
    },
    /// Authentication refused a connection: on a server, its authenticator
    /// rejected the peer; on a client, the server rejected us.
    AuthRejected {
        /// The peer.
        peer: PeerAddr,
        /// The rejection text.
        reason: String,
    },
    /// A connection announcing an identity that is already connected was
    /// refused, because it did not authenticate as the same principal as the
    /// connected one (another certificate, another token, or none): on a
    /// server, it refused the newcomer (Reject
    /// [`Reason::IdentityInUse`](msg_wire::Reason::IdentityInUse)); on a
    /// client, the server refused us so, or the client refused a server it
    /// connected to, which announced an identity that another principal
    /// holds here (then the connection came up and is closed with that
    /// reason; the client tries it again after
    /// [`auth_reject_delay`](crate::SocketOptions::auth_reject_delay)). The
    /// connected peer keeps its connection.
    IdentityRefused {
        /// The peer refused, or the server that refused us.
        peer: PeerAddr,
        /// The identity in question.
        identity: bytes::Bytes,
        /// Why, in words.
        reason: String,
    },
    /// A connection was closed because the peer broke the protocol (a frame
    /// over the size limit, a decompression bomb, a malformed frame) or went
    /// silent past the heartbeat timeout.
    PeerMisbehaved {
        /// The peer.
        peer: PeerAddr,
        /// Why, in words.
        error: String,
    },
}

/// A `Stream` of [`SocketEvent`]s; see [`ReqSocket::events`](crate::ReqSocket::events).
///
/// Events are buffered (1,024 of them); a reader that falls further behind
/// skips the oldest and learns how many through
/// [`SocketEvents::missed`].
pub struct SocketEvents {
    inner: Pin<Box<dyn Stream<Item = SocketEvent> + Send>>,
    missed: Arc<AtomicU64>,
}

impl SocketEvents {
    pub(crate) fn new(rx: broadcast::Receiver<SocketEvent>) -> Self {
        let missed = Arc::new(AtomicU64::new(0));
        let counter = missed.clone();
        let inner = futures::stream::unfold(rx, move |mut rx| {
            let counter = counter.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok(ev) => return Some((ev, rx)),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            counter.fetch_add(n, Relaxed);
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Self {
            inner: Box::pin(inner),
            missed,
        }
    }

    /// Events skipped because this reader fell more than 1,024 behind.
    pub fn missed(&self) -> u64 {
        self.missed.load(Relaxed)
    }
}

impl Stream for SocketEvents {
    type Item = SocketEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SocketEvent>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for SocketEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketEvents")
            .field("missed", &self.missed())
            .finish_non_exhaustive()
    }
}

/// Counters shared by a socket and its connection tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) msgs_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) msgs_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) dropped_hwm: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) active_peers: AtomicUsize,
    pub(crate) auth_rejections: AtomicU64,
    pub(crate) identity_refusals: AtomicU64,
    pub(crate) handshake_failures: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) heartbeat_timeouts: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) latency: LatencyHistogram,
}

/// Request latencies in power-of-two microsecond buckets: cheap to record
/// from many tasks, precise to within a factor of two.
#[derive(Debug)]
pub(crate) struct LatencyHistogram {
    buckets: [AtomicU64; 40],
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    pub(crate) fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let bucket = (64 - us.leading_zeros()) as usize;
        if let Some(b) = self.buckets.get(bucket.min(self.buckets.len() - 1)) {
            b.fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }

    /// Upper bound of the bucket holding quantile `q` (0.0 to 1.0).
    fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count.load(Relaxed);
        if count == 0 {
            return None;
        }
        let rank = ((count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= rank {
                let upper = if i == 0 { 1 } else { 1u64 << i };
                let max = self.max_us.load(Relaxed);
                return Some(Duration::from_micros(upper.min(max.max(1))));
            }
        }
        Some(Duration::from_micros(self.max_us.load(Relaxed)))
    }
}

/// A snapshot of a socket's counters.
///
/// Messages and bytes count application messages and encoded frame bytes
/// after the handshake; heartbeats and control frames are not messages but
/// their bytes are counted.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SocketStats {
    /// Messages (requests, replies, publications) handed to connections.
    pub msgs_sent: u64,
    /// Bytes written to connections.
    pub bytes_sent: u64,
    /// Messages received from connections.
    pub msgs_received: u64,
    /// Bytes read from connections.
    pub bytes_received: u64,
    /// Messages dropped at a high-water mark.
    pub dropped_hwm: u64,
    /// Reconnect attempts after a lost connection or failed attempt.
    pub reconnects: u64,
    /// Connections with a completed handshake right now.
    pub active_peers: usize,
    /// Peers refused by the authenticator (server) or refusals received
    /// (client).
    pub auth_rejections: u64,
    /// Connections refused because another principal holds the identity
    /// they announced (server), or refusals of our identity received
    /// (client); see [`SocketEvent::IdentityRefused`].
    pub identity_refusals: u64,
    /// Handshakes that failed for any other reason.
    pub handshake_failures: u64,
    /// Connections closed because the peer broke the protocol.
    pub protocol_errors: u64,
    /// Connections closed because the peer went silent.
    pub heartbeat_timeouts: u64,
    /// Connections refused right after accept because the socket already
    /// served [`max_connections`](crate::SocketOptions::max_connections).
    pub connections_refused: u64,
    /// Messages missing from a publisher's sequence (Sub sockets).
    pub gaps: u64,
    /// Completed requests (Req sockets).
    pub requests: u64,
    /// Median request latency (Req sockets), within a factor of two.
    pub latency_p50: Option<Duration>,
    /// 99th percentile request latency (Req sockets), within a factor of two.
    pub latency_p99: Option<Duration>,
    /// Longest request latency (Req sockets).
    pub latency_max: Option<Duration>,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> SocketStats {
        let l = &self.latency;
        let requests = l.count.load(Relaxed);
        SocketStats {
            msgs_sent: self.msgs_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            msgs_received: self.msgs_received.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            dropped_hwm: self.dropped_hwm.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            active_peers: self.active_peers.load(Relaxed),
            auth_rejections: self.auth_rejections.load(Relaxed),
            identity_refusals: self.identity_refusals.load(Relaxed),
            handshake_failures: self.handshake_failures.load(Relaxed),
            protocol_errors: self.protocol_errors.load(Relaxed),
            heartbeat_timeouts: self.heartbeat_timeouts.load(Relaxed),
            connections_refused: self.connections_refused.load(Relaxed),
            gaps: self.gaps.load(Relaxed),
            requests,
            latency_p50: l.quantile(0.5),
            latency_p99: l.quantile(0.99),
            latency_max: (requests > 0).then(|| Duration::from_micros(l.max_us.load(Relaxed))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_land_in_the_right_bucket() {
        let h = LatencyHistogram::default();
        for _ in 0..98 {
            h.record(Duration::from_micros(40));
        }
        h.record(Duration::from_millis(3));
        h.record(Duration::from_millis(3));
        let p50 = h.quantile(0.5).unwrap();
        assert!(p50 >= Duration::from_micros(40) && p50 <= Duration::from_micros(64));
        let p99 = h.quantile(0.99).unwrap();
        assert!(p99 >= Duration::from_millis(2) && p99 <= Duration::from_millis(3));
    }

    #[test]
    fn empty_histogram_has_no_quantiles() {
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
    }
}
