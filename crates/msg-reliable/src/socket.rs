//! The reliable socket: [`ReliableSocket`], its deliveries, its shutdown.

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use msg_socket::transport::Endpoint;
use msg_socket::{PeerEvent, PeerSocket, SocketOptions};
use msg_wire::Frame;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::driver::{self, Command, Driver, Pending, ReliableStats, Shared};
use crate::error::ReliableError;
use crate::link::{Link, LinkEvent};
use crate::options::{AckMode, ReliableOptions};
use crate::peer::PeerId;
use crate::proto::Session;

/// A reliable socket: sends to peers by [`PeerId`] and receives from
/// them, every message once and in order, across disconnects and restarts.
///
/// It runs the reliable protocol (see the [crate docs](crate)) for every
/// peer in one background task, over a [`PeerSocket`] it owns
/// ([`bind`](Self::bind), [`connect`](Self::connect)) or over a
/// [`Link`] of your own ([`open_with_link`](Self::open_with_link)), and
/// keeps its state in a [`Backend`].
///
/// - [`send_to`](Self::send_to) returns the message's sequence number once
///   the message is stored; from then on it is delivered to the peer
///   whenever the peer is reachable, even after a restart of either side.
///   [`wait_acked`](Self::wait_acked) waits until the peer has stored it.
/// - [`recv`](Self::recv) and [`deliveries`](Self::deliveries) hand out
///   incoming messages as [`Delivery`]s, in order per peer. In
///   [`AckMode::Manual`] (the default) call [`Delivery::ack`] once a
///   message is processed; unacknowledged deliveries are delivered again
///   after a restart.
/// - [`shutdown`](Self::shutdown) waits (up to a timeout) for the peers to
///   acknowledge what is stored, and reports what is still pending; it
///   stays stored for the next run.
///
/// Dropping the socket stops its task at once (like a crash, minus the
/// crash: what was stored stays stored); the task releases the backend
/// when storage operations under way have finished. Use
/// [`shutdown`](Self::shutdown) to drain and to wait for that, for example
/// before reopening the same redb file.
///
/// ```
/// use std::time::Duration;
/// use msg_reliable::{MemoryBackend, PeerId, ReliableOptions, ReliableSocket};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), msg_reliable::ReliableError> {
/// let (a, b): (PeerId, PeerId) = ("a".parse()?, "b".parse()?);
/// let alice = ReliableSocket::open(a.clone(), ReliableOptions::new(), MemoryBackend::new()).await?;
/// let bob = ReliableSocket::open(b.clone(), ReliableOptions::new(), MemoryBackend::new()).await?;
/// let endpoint = alice.bind("inproc://reliable-doc").await?;
///
/// // Stored before Bob is even connected.
/// let seq = alice.send_to(&b, "hello").await?;
/// bob.connect(&endpoint.to_string())?;
///
/// let delivery = bob.recv().await.expect("a delivery");
/// assert_eq!((delivery.peer(), delivery.seq()), (&a, seq));
/// assert_eq!(delivery.payload(), "hello");
/// delivery.ack().await?;
///
/// alice.wait_acked(&b, seq).await?;
/// assert!(alice.shutdown(Duration::from_secs(1)).await.is_complete());
/// # Ok(()) }
/// ```
pub struct ReliableSocket {
    identity: PeerId,
    shared: Arc<Shared>,
    deliveries: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Delivery>>>,
    socket: Option<Arc<PeerSocket>>,
    driver: Mutex<Option<JoinHandle<Pending>>>,
}

impl fmt::Debug for ReliableSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReliableSocket")
            .field("identity", &self.identity)
            .field("ack_mode", &self.shared.ack_mode)
            .field("custom_link", &self.socket.is_none())
            .finish_non_exhaustive()
    }
}

impl ReliableSocket {
    /// Opens a reliable socket named `identity` over a new [`PeerSocket`] with
    /// default [`SocketOptions`], resuming whatever `backend` holds.
    ///
    /// On open, every peer the backend has state for is restored: its
    /// unacknowledged outgoing messages are sent as soon as it is connected,
    /// and the messages accepted from it that the application had not
    /// acknowledged are delivered again, first.
    ///
    /// # Errors
    ///
    /// [`ReliableError::InvalidOptions`] for bad options, a
    /// [`ReliableError::Storage`] error if the backend cannot be read or
    /// holds inconsistent state, [`ReliableError::Socket`] if the socket
    /// cannot be created.
    pub async fn open<B: Backend>(
        identity: PeerId,
        options: ReliableOptions,
        backend: B,
    ) -> Result<Self, ReliableError> {
        Self::open_with_socket_options(identity, options, SocketOptions::new(), backend).await
    }

    /// Like [`open`](Self::open), with options for the socket (transports
    /// with TLS or QUIC certificates, authentication, heartbeats, reconnect
    /// backoff, high-water marks). Its identity is set to `identity`, and
    /// its [`name`](SocketOptions::name), when none is set, too.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub async fn open_with_socket_options<B: Backend>(
        identity: PeerId,
        options: ReliableOptions,
        mut socket_options: SocketOptions,
        backend: B,
    ) -> Result<Self, ReliableError> {
        socket_options.identity(identity.to_bytes());
        if socket_options.get_name().is_none() {
            // Its metrics' name label, unless one was given: the identity.
            socket_options.name(identity.to_string());
        }
        let socket = Arc::new(PeerSocket::with_options(socket_options)?);
        let link = SocketLink(socket.clone());
        Self::start(identity, options, backend, link, Some(socket)).await
    }

    /// Opens a reliable socket over a network of your own: `link` carries the
    /// frames and reports peers coming and going (see [`Link`]). Such an
    /// reliable socket has no [`PeerSocket`]: [`bind`](Self::bind) and
    /// [`connect`](Self::connect) fail with [`ReliableError::CustomLink`].
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub async fn open_with_link<B: Backend, L: Link>(
        identity: PeerId,
        options: ReliableOptions,
        backend: B,
        link: L,
    ) -> Result<Self, ReliableError> {
        Self::start(identity, options, backend, link, None).await
    }

    async fn start<B: Backend, L: Link>(
        identity: PeerId,
        options: ReliableOptions,
        backend: B,
        link: L,
        socket: Option<Arc<PeerSocket>>,
    ) -> Result<Self, ReliableError> {
        options.validate()?;
        #[cfg(feature = "metrics")]
        let metrics_every = options.metrics_interval;
        let opts = Arc::new(options);
        let mut sessions = Vec::new();
        for peer in backend.peers().await? {
            let outgoing = backend.load_outgoing(&peer).await?;
            let incoming = backend.load_incoming(&peer).await?;
            tracing::debug!(
                %peer,
                unacked = outgoing.unacked.len(),
                undelivered = incoming.undelivered.len(),
                "restoring peer"
            );
            sessions.push(Session::new(peer, opts.clone(), outgoing, incoming)?);
        }
        // Both channels are unbounded in type and bounded in use; a bounded
        // channel would add a wait that no caller needs:
        //
        // - Commands. Every `Send`, `Pending` and replying `Ack` comes from
        //   a caller that then waits for its one-shot reply, so the channel
        //   holds at most one command per call in progress (or just
        //   cancelled, until the driver takes it, which it does on its next
        //   turn: it never waits for anything but its inputs). The one
        //   command nobody waits for is the `Ack` that `recv`/`recv_many`
        //   send in `AckMode::Auto` for what they took, and those are
        //   bounded as the deliveries are: by the receive window.
        // - Deliveries. The sessions deliver only messages inside the
        //   receive window, and a delivery holds its room there until the
        //   application acknowledges it (`Delivery::ack`, or taking it in
        //   auto mode). So per peer the channel holds at most
        //   `recv_window` deliveries and `recv_window_bytes` of payload
        //   (tests/socket_receive_window.rs checks it). The driver must not
        //   wait on this channel: it also reads the link and finishes
        //   storage while the application is slow.
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (deliveries_tx, deliveries_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(commands, opts.get_ack_mode()));
        let state = Driver::new(opts, sessions, shared.clone(), deliveries_tx);
        // One span for the socket's task: every event of every peer's
        // session carries the socket's identity and its store.
        let store = std::any::type_name::<B>()
            .rsplit("::")
            .next()
            .unwrap_or("?");
        let span = tracing::debug_span!("reliable", identity = %identity, store = %store);
        let driver = tokio::spawn(tracing::Instrument::instrument(
            driver::run(link, backend, state, commands_rx),
            span,
        ));
        #[cfg(feature = "metrics")]
        crate::metrics_export::start(&shared, &identity, metrics_every);
        Ok(Self {
            identity,
            shared,
            deliveries: Arc::new(tokio::sync::Mutex::new(deliveries_rx)),
            socket,
            driver: Mutex::new(Some(driver)),
        })
    }

    /// This socket's identity.
    pub fn identity(&self) -> &PeerId {
        &self.identity
    }

    /// The [`PeerSocket`] this socket runs over (for `bind_with`, `connect_with`,
    /// events and stats); `None` over a custom link.
    pub fn socket(&self) -> Option<&PeerSocket> {
        self.socket.as_deref()
    }

    fn require_socket(&self) -> Result<&PeerSocket, ReliableError> {
        self.socket().ok_or(ReliableError::CustomLink)
    }

    /// Binds `endpoint` (for example `tcp://0.0.0.0:7000`); peers that
    /// connect to it are known by the identity they announce. See
    /// [`PeerSocket::bind`].
    ///
    /// # Errors
    ///
    /// [`ReliableError::Socket`] for a bad endpoint or an address in use,
    /// [`ReliableError::CustomLink`] over a custom link.
    pub async fn bind(&self, endpoint: &str) -> Result<Endpoint, ReliableError> {
        Ok(self.require_socket()?.bind(endpoint).await?)
    }

    /// Connects to `endpoint` in the background and keeps reconnecting;
    /// see [`PeerSocket::connect`]. Connect two peers in one direction only.
    ///
    /// # Errors
    ///
    /// [`ReliableError::Socket`] for a bad endpoint,
    /// [`ReliableError::CustomLink`] over a custom link.
    pub fn connect(&self, endpoint: &str) -> Result<(), ReliableError> {
        Ok(self.require_socket()?.connect(endpoint)?)
    }

    /// Stores `payload` for `peer` and returns its sequence number (1, 2,
    /// 3, ... per peer) once it is stored: durably, with a durable backend.
    /// It is then sent, and resent, until `peer` acknowledges it, across
    /// disconnects and restarts. The peer does not need to be connected.
    ///
    /// When `peer`'s outbox is at its limit
    /// ([`ReliableOptions::max_outbox_messages`],
    /// [`max_outbox_bytes`](ReliableOptions::max_outbox_bytes)), it waits
    /// until the peer's acknowledgements make room: backpressure, in the
    /// order the calls came. That wait lasts as long as the peer is away;
    /// use [`try_send_to`](Self::try_send_to) to fail at once instead, or
    /// put a timeout around it.
    ///
    /// Concurrent calls are stored together (one write, one fsync with
    /// [`RedbBackend`](crate::RedbBackend)). Dropping the future while it
    /// waits for room cancels the send (nothing is stored); once the store
    /// has begun, dropping it does not cancel it: the message may still be
    /// sent.
    ///
    /// # Errors
    ///
    /// [`ReliableError::OutboxFull`] only for a message larger than the
    /// whole outbox limit (it could never fit), [`ReliableError::Storage`]
    /// when storing failed (the message does not exist),
    /// [`ReliableError::Closed`] after shutdown.
    pub async fn send_to(
        &self,
        peer: &PeerId,
        payload: impl Into<Bytes>,
    ) -> Result<u64, ReliableError> {
        self.append(peer, vec![payload.into()], true).await
    }

    /// Like [`send_to`](Self::send_to), but fails at once with
    /// [`ReliableError::OutboxFull`] when `peer`'s outbox has no room for
    /// it, instead of waiting. It does not queue behind sends that wait:
    /// when acknowledgements have just made room, it may take it first.
    ///
    /// # Errors
    ///
    /// [`ReliableError::OutboxFull`], and as [`send_to`](Self::send_to).
    pub async fn try_send_to(
        &self,
        peer: &PeerId,
        payload: impl Into<Bytes>,
    ) -> Result<u64, ReliableError> {
        self.append(peer, vec![payload.into()], false).await
    }

    /// Stores several messages for `peer` in one write, atomically (all or
    /// none), and returns their sequence numbers. See
    /// [`send_to`](Self::send_to): it waits for room for the whole batch.
    ///
    /// # Errors
    ///
    /// As [`send_to`](Self::send_to); [`ReliableError::OutboxFull`] for a
    /// batch larger than the whole outbox limit.
    pub async fn send_batch_to<I>(
        &self,
        peer: &PeerId,
        payloads: I,
    ) -> Result<Range<u64>, ReliableError>
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        self.append_batch(peer, payloads, true).await
    }

    /// Like [`send_batch_to`](Self::send_batch_to), but fails at once with
    /// [`ReliableError::OutboxFull`] when the outbox has no room for the
    /// whole batch.
    ///
    /// # Errors
    ///
    /// As [`try_send_to`](Self::try_send_to).
    pub async fn try_send_batch_to<I>(
        &self,
        peer: &PeerId,
        payloads: I,
    ) -> Result<Range<u64>, ReliableError>
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        self.append_batch(peer, payloads, false).await
    }

    async fn append_batch<I>(
        &self,
        peer: &PeerId,
        payloads: I,
        wait: bool,
    ) -> Result<Range<u64>, ReliableError>
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        let payloads: Vec<Bytes> = payloads.into_iter().map(Into::into).collect();
        let n = payloads.len() as u64;
        let first = self.append(peer, payloads, wait).await?;
        Ok(first..first + n)
    }

    async fn append(
        &self,
        peer: &PeerId,
        payloads: Vec<Bytes>,
        wait: bool,
    ) -> Result<u64, ReliableError> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Send {
                peer: peer.clone(),
                payloads,
                wait,
                reply,
            })
            .map_err(|_| ReliableError::Closed)?;
        rx.await.map_err(|_| ReliableError::Closed)?
    }

    /// Waits until `peer` has acknowledged (stored) message `seq` and
    /// everything before it.
    ///
    /// Waits as long as that takes (the peer may be away for a day); put a
    /// timeout around it if that is too long. Waiting for a sequence number
    /// never assigned waits forever.
    ///
    /// # Errors
    ///
    /// [`ReliableError::Closed`] if the socket shuts down first.
    pub async fn wait_acked(&self, peer: &PeerId, seq: u64) -> Result<(), ReliableError> {
        let mut acked = self.shared.watch_acked(peer);
        tokio::select! {
            r = acked.wait_for(|&a| a >= seq) => r.map(|_| ()).map_err(|_| ReliableError::Closed),
            () = self.shared.cancel.cancelled() => Err(ReliableError::Closed),
        }
    }

    /// The highest sequence number `peer` has acknowledged so far.
    pub fn acked(&self, peer: &PeerId) -> u64 {
        *self.shared.watch_acked(peer).borrow()
    }

    /// Messages stored and not yet acknowledged, per peer (only peers with
    /// any).
    ///
    /// # Errors
    ///
    /// [`ReliableError::Closed`] after shutdown.
    pub async fn pending(&self) -> Result<Vec<(PeerId, usize)>, ReliableError> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Pending { reply })
            .map_err(|_| ReliableError::Closed)?;
        rx.await.map_err(|_| ReliableError::Closed)
    }

    /// The socket's counters: messages stored for sending and handed to the
    /// application, what waits for acknowledgement, and every peer
    /// session's frames, retransmissions, duplicates and store failures,
    /// summed and per peer.
    ///
    /// # Errors
    ///
    /// [`ReliableError::Closed`] after shutdown.
    pub async fn stats(&self) -> Result<ReliableStats, ReliableError> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Stats { reply })
            .map_err(|_| ReliableError::Closed)?;
        rx.await.map_err(|_| ReliableError::Closed)
    }

    /// The next delivery, from any peer (in order per peer); `None` once
    /// the socket is shut down.
    ///
    /// Several tasks may wait at once; each delivery goes to one of them.
    /// In [`AckMode::Auto`], taking a delivery acknowledges it.
    pub async fn recv(&self) -> Option<Delivery> {
        recv(&self.deliveries, &self.shared).await
    }

    /// Waits for deliveries and takes up to `limit` of them at once,
    /// appending them to `buf` (in order per peer); returns how many it
    /// took, 0 once the socket is shut down (or if `limit` is 0).
    ///
    /// Like [`recv`](Self::recv), but a busy receiver takes what has
    /// arrived in one call; acknowledge them together with
    /// [`Delivery::ack_all`].
    ///
    /// ```
    /// # use msg_reliable::{Delivery, ReliableSocket};
    /// # async fn consume(socket: &ReliableSocket) -> Result<(), msg_reliable::ReliableError> {
    /// let mut batch = Vec::with_capacity(256);
    /// while socket.recv_many(&mut batch, 256).await > 0 {
    ///     for delivery in &batch {
    ///         println!("{} #{}: {} bytes", delivery.peer(), delivery.seq(), delivery.payload().len());
    ///     }
    ///     // One storage write for the whole batch.
    ///     Delivery::ack_all(batch.drain(..)).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn recv_many(&self, buf: &mut Vec<Delivery>, limit: usize) -> usize {
        recv_many(&self.deliveries, &self.shared, buf, limit).await
    }

    /// The deliveries as a [`Stream`]; see [`recv`](Self::recv). Several
    /// streams share one sequence of deliveries.
    pub fn deliveries(&self) -> Deliveries {
        let rx = self.deliveries.clone();
        let shared = self.shared.clone();
        let stream = futures::stream::unfold((rx, shared), |(rx, shared)| async move {
            let delivery = recv(&rx, &shared).await?;
            Some((delivery, (rx, shared)))
        });
        Deliveries {
            inner: Box::pin(stream),
        }
    }

    /// Shuts the socket down gracefully: waits up to `timeout` until
    /// every peer has acknowledged every stored message, then stops, and
    /// reports what was still pending.
    ///
    /// Pending messages stay stored and go out on the next run with the
    /// same backend. Storage operations under way complete before it
    /// returns; deliveries not acknowledged by then are delivered again on
    /// the next run.
    pub async fn shutdown(mut self, timeout: Duration) -> ShutdownReport {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pending = loop {
            let progress = self.shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            let pending = self.pending().await.unwrap_or_default();
            if pending.is_empty() || tokio::time::Instant::now() >= deadline {
                break pending;
            }
            tokio::select! {
                () = progress => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        };
        self.shared.cancel.cancel();
        let driver = self.driver.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(driver) = driver {
            if let Ok(last) = driver.await {
                pending = last;
            }
        }
        if let Some(socket) = self.socket.take() {
            // The driver is gone, and the link with it: this is the last
            // reference.
            if let Ok(socket) = Arc::try_unwrap(socket) {
                socket.close(Duration::ZERO).await;
            }
        }
        ShutdownReport { pending }
    }
}

impl Drop for ReliableSocket {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

async fn recv(
    deliveries: &tokio::sync::Mutex<mpsc::UnboundedReceiver<Delivery>>,
    shared: &Shared,
) -> Option<Delivery> {
    // A delivery already waiting is taken without registering a waiter
    // with the shutdown token or the lock.
    let ready = match deliveries.try_lock() {
        Ok(mut rx) => rx.try_recv().ok(),
        Err(_) => None,
    };
    let delivery = match ready {
        Some(delivery) => delivery,
        None => tokio::select! {
            d = async { deliveries.lock().await.recv().await } => d?,
            () = shared.cancel.cancelled() => return None,
        },
    };
    if shared.ack_mode != AckMode::Manual {
        let _ = shared.commands.send(Command::Ack {
            peer: delivery.peer.clone(),
            seqs: vec![delivery.seq],
            reply: None,
        });
    }
    Some(delivery)
}

async fn recv_many(
    deliveries: &tokio::sync::Mutex<mpsc::UnboundedReceiver<Delivery>>,
    shared: &Shared,
    buf: &mut Vec<Delivery>,
    limit: usize,
) -> usize {
    if limit == 0 {
        return 0;
    }
    let start = buf.len();
    let ready = match deliveries.try_lock() {
        Ok(mut rx) => {
            while buf.len() - start < limit {
                match rx.try_recv() {
                    Ok(delivery) => buf.push(delivery),
                    Err(_) => break,
                }
            }
            buf.len() - start
        }
        Err(_) => 0,
    };
    let taken = if ready > 0 {
        ready
    } else {
        tokio::select! {
            n = async { deliveries.lock().await.recv_many(buf, limit).await } => n,
            () = shared.cancel.cancelled() => 0,
        }
    };
    if taken > 0 && shared.ack_mode != AckMode::Manual {
        for (peer, seqs) in by_peer(buf[start..].iter().map(|d| (&d.peer, d.seq))) {
            let _ = shared.commands.send(Command::Ack {
                peer,
                seqs,
                reply: None,
            });
        }
    }
    taken
}

/// Groups `(peer, seq)` pairs by peer, in order of first appearance, each
/// peer's numbers in their order.
fn by_peer<'a>(acks: impl Iterator<Item = (&'a PeerId, u64)>) -> Vec<(PeerId, Vec<u64>)> {
    let mut groups: Vec<(PeerId, Vec<u64>)> = Vec::new();
    for (peer, seq) in acks {
        // Deliveries come in runs from few peers: the last group is
        // nearly always the one.
        match groups.iter_mut().rev().find(|(p, _)| p == peer) {
            Some((_, seqs)) => seqs.push(seq),
            None => groups.push((peer.clone(), vec![seq])),
        }
    }
    groups
}

/// A [`Stream`] of [`Delivery`]s, from [`ReliableSocket::deliveries`].
pub struct Deliveries {
    inner: Pin<Box<dyn Stream<Item = Delivery> + Send>>,
}

impl fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deliveries").finish_non_exhaustive()
    }
}

impl Stream for Deliveries {
    type Item = Delivery;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// One message from a peer, handed to the application.
///
/// In [`AckMode::Manual`], call [`ack`](Self::ack) once it is processed: it
/// is then deleted from storage and never delivered again. Dropping it
/// without acknowledging keeps it stored (and counting against the receive
/// window) until the next run, which delivers it again.
pub struct Delivery {
    peer: PeerId,
    seq: u64,
    payload: Bytes,
    acker: Option<mpsc::UnboundedSender<Command>>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("peer", &self.peer)
            .field("seq", &self.seq)
            .field("len", &self.payload.len())
            .finish()
    }
}

impl Delivery {
    pub(crate) fn new(
        peer: PeerId,
        seq: u64,
        payload: Bytes,
        acker: Option<mpsc::UnboundedSender<Command>>,
    ) -> Self {
        Self {
            peer,
            seq,
            payload,
            acker,
        }
    }

    /// The sending peer.
    pub fn peer(&self) -> &PeerId {
        &self.peer
    }

    /// The message's sequence number from that peer (1, 2, 3, ...).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The message.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Acknowledges the delivery: the application has processed it. Returns
    /// once that is stored (the message deleted); it is never delivered
    /// again. In [`AckMode::Auto`] this does nothing.
    ///
    /// # Errors
    ///
    /// [`ReliableError::Storage`] if the deletion failed (the message would
    /// be delivered again after a restart; acknowledging again may
    /// succeed), [`ReliableError::Closed`] after shutdown.
    pub async fn ack(self) -> Result<(), ReliableError> {
        let Some(acker) = &self.acker else {
            return Ok(());
        };
        let (reply, rx) = oneshot::channel();
        acker
            .send(Command::Ack {
                peer: self.peer.clone(),
                seqs: vec![self.seq],
                reply: Some(reply),
            })
            .map_err(|_| ReliableError::Closed)?;
        rx.await.map_err(|_| ReliableError::Closed)?
    }

    /// Acknowledges several deliveries at once (see [`ack`](Self::ack)):
    /// one storage write per socket and peer instead of one per delivery.
    /// Returns once every deletion is stored. Deliveries from several
    /// sockets or peers may be mixed; in [`AckMode::Auto`] they need
    /// nothing and are skipped.
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack): the first failure, after every write has
    /// finished. The deliveries of a failed write are delivered again after
    /// a restart; those of the writes that succeeded are not.
    pub async fn ack_all(
        deliveries: impl IntoIterator<Item = Delivery>,
    ) -> Result<(), ReliableError> {
        // Grouped by socket (its command channel) and peer.
        let mut groups: Vec<(mpsc::UnboundedSender<Command>, PeerId, Vec<u64>)> = Vec::new();
        for delivery in deliveries {
            let Some(acker) = delivery.acker else {
                continue;
            };
            let found = groups
                .iter_mut()
                .rev()
                .find(|(a, p, _)| *p == delivery.peer && a.same_channel(&acker));
            match found {
                Some((_, _, seqs)) => seqs.push(delivery.seq),
                None => groups.push((acker, delivery.peer, vec![delivery.seq])),
            }
        }
        let mut replies = Vec::with_capacity(groups.len());
        let mut closed = false;
        for (acker, peer, seqs) in groups {
            let (reply, rx) = oneshot::channel();
            match acker.send(Command::Ack {
                peer,
                seqs,
                reply: Some(reply),
            }) {
                Ok(()) => replies.push(rx),
                Err(_) => closed = true,
            }
        }
        let mut outcome = if closed {
            Err(ReliableError::Closed)
        } else {
            Ok(())
        };
        for rx in replies {
            let result = rx.await.unwrap_or(Err(ReliableError::Closed));
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    }
}

/// What [`ReliableSocket::shutdown`] left pending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Stored messages the peer had not acknowledged, per peer (only peers
    /// with any). They go out on the next run.
    pub pending: Vec<(PeerId, usize)>,
}

impl ShutdownReport {
    /// Whether every stored message was acknowledged.
    pub fn is_complete(&self) -> bool {
        self.pending.is_empty()
    }

    /// Pending messages over all peers.
    pub fn pending_messages(&self) -> usize {
        self.pending.iter().map(|(_, n)| n).sum()
    }
}

/// The [`Link`] over a [`PeerSocket`]: identities from the handshake are
/// the peer ids.
struct SocketLink(Arc<PeerSocket>);

impl Link for SocketLink {
    async fn send(&self, peer: &PeerId, frame: Frame) -> Result<(), ReliableError> {
        self.0
            .send(peer.as_bytes(), frame)
            .await
            .map_err(|e| ReliableError::link(peer.clone(), e))
    }

    async fn send_batch(&self, peer: &PeerId, frames: Vec<Frame>) -> Result<(), ReliableError> {
        self.0
            .send_all(peer.as_bytes(), frames)
            .await
            .map_err(|e| ReliableError::link(peer.clone(), e))
    }

    async fn recv(&self) -> Option<LinkEvent> {
        loop {
            // The socket refuses empty identities, so every one is a PeerId.
            let event = match self.0.recv().await? {
                PeerEvent::Up(id, _) => PeerId::new(id).ok().map(LinkEvent::Up),
                PeerEvent::Down(id) => PeerId::new(id).ok().map(LinkEvent::Down),
                PeerEvent::Frame(id, frame) => PeerId::new(id)
                    .ok()
                    .map(|peer| LinkEvent::Frame { peer, frame }),
                _ => None,
            };
            if let Some(event) = event {
                return Some(event);
            }
        }
    }
}
