//! What every socket type offers: bind, connect, stats, events, close.
//!
//! [`Socket`] carries them once for every pattern: its type parameter is
//! the pattern's state machine (a [`Protocol`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use msg_transport::{Endpoint, Transport};

use crate::driver::core::Core;
use crate::driver::shared::Shared;
use crate::error::SocketError;
use crate::message::Encoded;
use crate::monitor::{SocketEvents, SocketStats};
use crate::options::SocketOptions;
use crate::proto::Protocol;

/// What [`close`](crate::ReqSocket::close) could not deliver before its
/// linger time ran out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseReport {
    /// Frames not completely written to their connection when the linger
    /// time ran out: still queued, or cut off in the middle of a write.
    /// They were dropped.
    pub undelivered_frames: usize,
    /// Bytes of those frames that were not written.
    pub undelivered_bytes: usize,
}

impl CloseReport {
    /// Whether everything queued was written before the socket stopped.
    pub fn is_complete(&self) -> bool {
        self.undelivered_frames == 0 && self.undelivered_bytes == 0
    }
}

pub(crate) fn active_peers(core: &Core) -> usize {
    core.counters.active_peers.load(Relaxed)
}

/// A socket of one messaging pattern: the methods every pattern shares
/// (bind, connect, stats, events, close), written once.
///
/// You do not name this type: use the pattern's own, such as
/// [`PubSocket`](crate::PubSocket) or [`SubSocket`](crate::SubSocket), which
/// add the pattern's methods. The type parameter is the pattern's state
/// machine, which the socket's tasks feed and which makes every decision of
/// the pattern (see the crate's "Structure" section).
#[derive(Debug)]
pub struct Socket<P: Protocol> {
    pub(crate) shared: Arc<Shared<P>>,
    /// A message handed to the socket's `Sink::start_send` that had no room
    /// yet: offered again by `poll_ready` and `poll_flush`.
    pub(crate) unsent: Option<Encoded>,
    /// Deliveries taken from the socket and not yet handed out (see
    /// `flow::poll_recv`).
    pub(crate) taken: VecDeque<P::Delivery>,
}

impl<P: Protocol> Socket<P> {
    /// A socket with default options.
    pub fn new() -> Self {
        Self::with_options(SocketOptions::default()).expect("default options are valid")
    }

    /// A socket with these options.
    ///
    /// # Errors
    ///
    /// [`SocketError::Config`] when the options contradict each other.
    pub fn with_options(options: SocketOptions) -> Result<Self, SocketError> {
        P::check(&options)?;
        let proto = P::new(&options);
        let core = Core::new(P::SOCKET_TYPE, options)?;
        Ok(Self {
            shared: Shared::new(core, proto),
            unsent: None,
            taken: VecDeque::new(),
        })
    }

    fn core(&self) -> &Arc<Core> {
        &self.shared.core
    }

    /// Binds `endpoint` (for example `tcp://127.0.0.1:0`) and serves every
    /// peer that connects to it, until the socket closes.
    ///
    /// Returns the bound endpoint, with the real port when bound to port 0.
    /// A socket may be bound to several endpoints, and may bind and connect
    /// at once.
    ///
    /// # Errors
    ///
    /// A bad endpoint string, an address in use, a missing TLS or QUIC
    /// configuration (see [`SocketOptions::transport`]), or a closed socket.
    pub async fn bind(&self, endpoint: &str) -> Result<Endpoint, SocketError> {
        let endpoint: Endpoint = endpoint.parse()?;
        let transport = self.core().opts.transport.clone();
        self.bind_with(transport, &endpoint).await
    }

    /// Binds with a transport of your own (a differently configured
    /// [`Tcp`](msg_transport::Tcp), a wrapper, ...) instead of the one from
    /// the options.
    ///
    /// # Errors
    ///
    /// As for [`bind`](Self::bind).
    pub async fn bind_with<T: Transport>(
        &self,
        transport: T,
        endpoint: &Endpoint,
    ) -> Result<Endpoint, SocketError> {
        #[cfg(feature = "metrics")]
        crate::metrics_export::start(&self.shared);
        self.core()
            .bind(self.shared.clone(), transport, endpoint)
            .await
    }

    /// Connects to `endpoint` in the background and keeps the connection
    /// up: after a failure or a lost connection it reconnects with capped
    /// exponential backoff and jitter (forever by default; see
    /// [`SocketOptions::reconnect_give_up_after`]).
    ///
    /// Returns at once; watch [`events`](Self::events) or
    /// [`peers`](Self::peers) to see the connection come up. A socket may
    /// connect to several endpoints.
    ///
    /// # Errors
    ///
    /// A bad endpoint string or a closed socket. Connection failures are not
    /// errors here: they are retried and reported as events.
    pub fn connect(&self, endpoint: &str) -> Result<(), SocketError> {
        let endpoint: Endpoint = endpoint.parse()?;
        let transport = self.core().opts.transport.clone();
        self.connect_with(transport, &endpoint)
    }

    /// Connects with a transport of your own instead of the one from the
    /// options.
    ///
    /// # Errors
    ///
    /// As for [`connect`](Self::connect).
    pub fn connect_with<T: Transport>(
        &self,
        transport: T,
        endpoint: &Endpoint,
    ) -> Result<(), SocketError> {
        #[cfg(feature = "metrics")]
        crate::metrics_export::start(&self.shared);
        self.core()
            .connect(self.shared.clone(), transport, endpoint.clone())
    }

    /// Waits until at least `n` peers are connected (handshake done), or
    /// `timeout` passes; returns whether they are.
    pub async fn wait_for_peers(&self, n: usize, timeout: Duration) -> bool {
        self.core().wait_for_peers(n, timeout).await
    }

    /// Connected peers right now.
    pub fn peers(&self) -> usize {
        active_peers(self.core())
    }

    /// The identity this socket announces to its peers.
    pub fn identity(&self) -> &Bytes {
        &self.core().identity
    }

    /// A snapshot of this socket's counters.
    pub fn stats(&self) -> SocketStats {
        self.shared.stats()
    }

    /// A stream of connection events (connected, disconnected,
    /// reconnecting, handshake failed, auth rejected, ...), from now on.
    /// Each call gives an independent stream.
    pub fn events(&self) -> SocketEvents {
        self.core().events()
    }

    /// Closes the socket: delivers what is queued for up to `linger`, then
    /// stops every connection (telling each peer with a `Close` frame where
    /// the stream allows) and listener, freeing ports and socket files
    /// before it returns, and reports what was not delivered.
    ///
    /// Delivered means written to the transport; with `linger` zero,
    /// whatever is still queued is dropped and reported.
    ///
    /// A QUIC connection's UDP socket (a listener's, or the one a client
    /// connection binds) closes only after the peer has acknowledged what
    /// was written, up to the transport's linger time
    /// (`QuicOptions::linger`), and the connection has drained: about 80 ms
    /// on loopback. Closing waits for that too.
    ///
    /// A message given to the socket's `Sink` that was still waiting for
    /// room (not flushed) counts as undelivered too.
    pub async fn close(mut self, linger: Duration) -> CloseReport {
        let mut report = close_shared(&self.shared, linger).await;
        if let Some(unsent) = self.unsent.take() {
            report.undelivered_frames += unsent.frames();
            report.undelivered_bytes += unsent.len();
        }
        report
    }
}

impl<P: Protocol> Default for Socket<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Protocol> Drop for Socket<P> {
    /// Stops the socket's tasks, freeing its ports and socket files as they
    /// end. With messages still queued (and a tokio runtime around), it
    /// first keeps delivering them in the background for up to the
    /// configured [`linger`](crate::SocketOptions::linger) time;
    /// [`close`](Self::close) is the way to wait for that.
    fn drop(&mut self) {
        let core = &self.shared.core;
        if core.cancel.is_cancelled() {
            return;
        }
        let linger = core.opts.linger;
        let idle = self.shared.queued() == (0, 0);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if !linger.is_zero() && !idle => {
                let shared = self.shared.clone();
                rt.spawn(async move {
                    close_shared(&shared, linger).await;
                });
            }
            _ => core.shutdown(),
        }
    }
}

/// Waits until every connection's queue is written out or `linger` passes,
/// then stops the socket's tasks, waits for them, and reports what the
/// writers gave up on.
async fn close_shared<P: Protocol>(shared: &Shared<P>, linger: Duration) -> CloseReport {
    let core = &shared.core;
    let deadline = tokio::time::Instant::now() + linger;
    loop {
        let progress = core.progress.notified();
        if shared.queued() == (0, 0) || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            _ = progress => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    core.shutdown();
    core.wait_stopped().await;
    let (frames, bytes) = shared.undelivered();
    CloseReport {
        undelivered_frames: frames,
        undelivered_bytes: bytes,
    }
}
