//! The symmetric PEER socket: frames routed by the peer's identity.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use msg_transport::{Endpoint, Transport};
use msg_wire::{Frame, Reason, SocketType};
use tokio::sync::Notify;

use crate::driver::conn::{ConnHandle, Pattern, PeerInfo, QueueError};
use crate::driver::core::Core;
use crate::error::{ConfigError, PeerSendError, SocketError};
use crate::monitor::{SocketEvents, SocketStats};
use crate::options::SocketOptions;
use crate::socket::{CloseReport, impl_common};

/// Something that happened on a [`PeerSocket`], from
/// [`recv`](PeerSocket::recv) or its [`Stream`].
///
/// For one identity, events come in connection order: `Up`, that
/// connection's frames, then `Down` (or the next `Up`, when a newer
/// connection replaced it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// A connection to the peer with this identity finished its handshake
    /// and is now the one frames to it go on. An `Up` for an identity that
    /// is already up means a newer connection replaced the old one, which
    /// was closed; frames in flight on the old one may have been lost.
    Up(Bytes, PeerInfo),
    /// The connection to the peer with this identity ended, and no other
    /// replaced it.
    Down(Bytes),
    /// A `Data` or `Ack` frame from the peer with this identity.
    Frame(Bytes, Frame),
}

/// A symmetric socket that talks to other PEER sockets, each known by the
/// identity it announced in the handshake.
///
/// A `PeerSocket` may [`bind`](Self::bind) and [`connect`](Self::connect) at
/// once, to any number of endpoints; reconnects, heartbeats, authentication
/// and the handling of bad input are those of every msg socket. It carries
/// the frames of msg's reliable layer, `Data` and `Ack`, and nothing else:
/// it does no numbering, acknowledging or retransmitting itself (that is
/// the `msg-reliable` crate's job).
///
/// # Identities and routing
///
/// Frames are sent to an identity, not to a connection:
/// [`send`](Self::send) picks the connection currently up for that
/// identity. So every PEER socket needs a non-empty identity (set it with
/// [`SocketOptions::identity`]; by default it is random), and a peer that
/// announces an empty one is refused in the handshake.
///
/// **The newer connection wins.** When a second connection with an
/// identity that is already connected finishes its handshake (the peer
/// restarted and reconnected before the old connection was found dead, or
/// someone else uses its identity), it replaces the first: frames go on the
/// new one, and the old one is closed with a `Close` frame. Identities are
/// only as trustworthy as the [`Authenticator`](crate::Authenticator) that
/// admits them. Connect two peers in one direction only: if both connect
/// to each other, each new connection replaces the other's.
///
/// # High-water marks: backpressure, never drop
///
/// Outgoing, each connection's queue holds
/// [`send_hwm`](SocketOptions::send_hwm) frames; [`send`](Self::send) waits
/// for room, [`try_send`](Self::try_send) returns
/// [`PeerSendError::Full`]. Incoming, at most
/// [`recv_hwm`](SocketOptions::recv_hwm) frames (and
/// [`recv_hwm_bytes`](SocketOptions::recv_hwm_bytes) of payload) wait for
/// the application; past that the socket stops reading from its
/// connections, so peers feel backpressure through the transport. Nothing
/// is dropped at either mark. `Up` and `Down` events never wait (there is
/// at most one per connection).
///
/// ```
/// use std::time::Duration;
/// use msg_socket::{PeerEvent, PeerSocket, SocketOptions};
/// use msg_socket::wire::Frame;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut opts = SocketOptions::new();
/// let a = PeerSocket::with_options(opts.identity("a").clone())?;
/// let b = PeerSocket::with_options(opts.identity("b").clone())?;
/// let endpoint = a.bind("inproc://peer-doc").await?;
/// b.connect(&endpoint.to_string())?;
///
/// // Each side sees the other come up, by identity.
/// let Some(PeerEvent::Up(id, _)) = b.recv().await else { panic!() };
/// assert_eq!(id, "a");
/// let Some(PeerEvent::Up(id, _)) = a.recv().await else { panic!() };
/// assert_eq!(id, "b");
///
/// b.send_data(b"a", 1, "hello").await?;
/// let Some(PeerEvent::Frame(from, frame)) = a.recv().await else { panic!() };
/// assert_eq!(from, "b");
/// assert_eq!(frame, Frame::Data { seq: 1, payload: "hello".into() });
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PeerSocket {
    core: Arc<Core>,
    state: Arc<PeerState>,
}

#[derive(Debug)]
struct PeerState {
    /// The connection frames to each identity go on.
    routes: Mutex<HashMap<Bytes, Arc<ConnHandle>>>,
    events: EventQueue,
}

impl PeerSocket {
    /// A socket with default options (and a random identity).
    pub fn new() -> Self {
        Self::with_options(SocketOptions::default()).expect("default options are valid")
    }

    /// A socket with these options.
    ///
    /// # Errors
    ///
    /// [`SocketError::Config`] when the options contradict each other, or
    /// the identity is set but empty.
    pub fn with_options(options: SocketOptions) -> Result<Self, SocketError> {
        if options.identity.as_ref().is_some_and(Bytes::is_empty) {
            return Err(ConfigError {
                what: "a PEER socket needs a non-empty identity",
            }
            .into());
        }
        let core = Core::new(SocketType::Peer, options)?;
        let events = EventQueue::new(core.opts.recv_hwm, core.opts.recv_hwm_bytes);
        Ok(Self {
            state: Arc::new(PeerState {
                routes: Mutex::new(HashMap::new()),
                events,
            }),
            core,
        })
    }

    /// Sends `frame` (`Data` or `Ack`) to the peer with this identity, on
    /// its current connection, waiting while that connection's queue is at
    /// its high-water mark.
    ///
    /// Queued is not delivered: a frame queued on a connection that breaks
    /// is lost (the reliable layer resends).
    ///
    /// # Errors
    ///
    /// [`PeerSendError::NotConnected`] when no connection to that identity
    /// is up, [`PeerSendError::Disconnected`] when it ended while waiting,
    /// [`PeerSendError::UnsupportedFrame`] for frames other than `Data` and
    /// `Ack`, [`PeerSendError::Encode`] for a frame over the size limit.
    pub async fn send(&self, identity: &[u8], frame: Frame) -> Result<(), PeerSendError> {
        let (conn, encoded) = self.prepare(identity, &frame)?;
        conn.send(encoded)
            .await
            .map_err(|_| PeerSendError::Disconnected)?;
        self.sent(&frame);
        Ok(())
    }

    /// Sends several `Data`/`Ack` frames to the peer with this identity, in
    /// order, on one connection: [`send`](Self::send) for a batch, with the
    /// route looked up once.
    ///
    /// Frames with small payloads (under 1 KiB) are encoded back to back
    /// and queued together, up to 16 KiB at a time: such a run counts as
    /// one message against [`send_hwm`](crate::SocketOptions::send_hwm)
    /// (every byte counts against `send_hwm_bytes`), and a
    /// [`close`](Self::close) report counts it as one frame.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), for the first frame that could not be
    /// queued; the frames before it were queued, the rest were not.
    pub async fn send_all(
        &self,
        identity: &[u8],
        frames: impl IntoIterator<Item = Frame>,
    ) -> Result<(), PeerSendError> {
        let mut route: Option<Arc<ConnHandle>> = None;
        // Small frames are encoded back to back into `run` and queued as one
        // item of up to RUN_BYTES: one queue operation, one allocation and
        // one slice for the writer instead of one each per frame. A larger
        // payload goes on its own, uncopied, its header split off `headers`.
        let mut run = BytesMut::new();
        let mut run_msgs = 0;
        let mut headers = BytesMut::new();
        let mut failed = None;
        for frame in frames {
            let conn = match route.take() {
                Some(conn) => conn,
                None => match self.route(identity, &frame) {
                    Ok(conn) => conn,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                },
            };
            if let Err(e) = check_kind(&frame) {
                failed = Some(e);
                route = Some(conn);
                break;
            }
            if frame.payload().is_none_or(|p| p.len() < RUN_BELOW) {
                if run.is_empty() {
                    run.reserve(RUN_BYTES);
                }
                if let Err(e) = conn.encode_append(&frame, &mut run) {
                    failed = Some(PeerSendError::Encode(e));
                    route = Some(conn);
                    break;
                }
                run_msgs += u64::from(frame.payload().is_some());
                if run.len() >= RUN_BYTES {
                    self.flush_run(&conn, &mut run, &mut run_msgs).await?;
                }
            } else {
                self.flush_run(&conn, &mut run, &mut run_msgs).await?;
                if headers.capacity() == 0 {
                    headers.reserve(8 * HEADER_ROOM);
                }
                let encoded = encode_in(&conn, &frame, &mut headers)?;
                conn.send(encoded)
                    .await
                    .map_err(|_| PeerSendError::Disconnected)?;
                self.sent(&frame);
            }
            route = Some(conn);
        }
        // The frames before a failure go out.
        if let Some(conn) = &route {
            self.flush_run(conn, &mut run, &mut run_msgs).await?;
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Queues the frames collected in `run` (`msgs` of them carry a
    /// payload) as one item.
    async fn flush_run(
        &self,
        conn: &ConnHandle,
        run: &mut BytesMut,
        msgs: &mut u64,
    ) -> Result<(), PeerSendError> {
        if run.is_empty() {
            return Ok(());
        }
        let frames = msg_wire::EncodedFrame::from_encoded(run.split().freeze());
        conn.send(frames)
            .await
            .map_err(|_| PeerSendError::Disconnected)?;
        self.core
            .counters
            .msgs_sent
            .fetch_add(std::mem::take(msgs), Relaxed);
        Ok(())
    }

    /// Like [`send`](Self::send), without waiting.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), and [`PeerSendError::Full`] when the
    /// connection's queue is at its high-water mark.
    pub fn try_send(&self, identity: &[u8], frame: Frame) -> Result<(), PeerSendError> {
        let (conn, encoded) = self.prepare(identity, &frame)?;
        conn.try_send(encoded).map_err(|e| match e {
            QueueError::Full => PeerSendError::Full,
            QueueError::Closed => PeerSendError::Disconnected,
        })?;
        self.sent(&frame);
        Ok(())
    }

    /// Sends `Data { seq, payload }` to the peer with this identity; see
    /// [`send`](Self::send).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_data(
        &self,
        identity: &[u8],
        seq: u64,
        payload: impl Into<Bytes>,
    ) -> Result<(), PeerSendError> {
        let payload = payload.into();
        self.send(identity, Frame::Data { seq, payload }).await
    }

    /// Sends `Ack { seq }` to the peer with this identity; see
    /// [`send`](Self::send).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_ack(&self, identity: &[u8], seq: u64) -> Result<(), PeerSendError> {
        self.send(identity, Frame::Ack { seq }).await
    }

    /// Whether a connection to the peer with this identity is up.
    pub fn is_connected(&self, identity: &[u8]) -> bool {
        self.state.routes().contains_key(identity)
    }

    /// The identities of the peers connected right now.
    pub fn connected_peers(&self) -> Vec<Bytes> {
        self.state.routes().keys().cloned().collect()
    }

    /// The next event; `None` once the socket is closed.
    ///
    /// Several tasks may wait at once; each event goes to one of them.
    pub async fn recv(&self) -> Option<PeerEvent> {
        std::future::poll_fn(|cx| self.state.events.poll_recv(cx)).await
    }

    fn prepare(
        &self,
        identity: &[u8],
        frame: &Frame,
    ) -> Result<(Arc<ConnHandle>, msg_wire::EncodedFrame), PeerSendError> {
        let conn = self.route(identity, frame)?;
        let encoded = encode_on(&conn, frame)?;
        Ok((conn, encoded))
    }

    /// The connection of `identity`, once `frame` is known to be one a
    /// PEER socket sends and the socket is open.
    fn route(&self, identity: &[u8], frame: &Frame) -> Result<Arc<ConnHandle>, PeerSendError> {
        check_kind(frame)?;
        if self.core.cancel.is_cancelled() {
            return Err(PeerSendError::Closed);
        }
        self.state
            .routes()
            .get(identity)
            .cloned()
            .ok_or(PeerSendError::NotConnected)
    }

    fn sent(&self, frame: &Frame) {
        if frame.payload().is_some() {
            self.core.counters.msgs_sent.fetch_add(1, Relaxed);
        }
    }
}

/// Header bytes set aside per frame in [`PeerSocket::send_all`]: a `Data`
/// or `Ack` header is 15.
const HEADER_ROOM: usize = 16;

/// [`PeerSocket::send_all`] copies frames whose payload is smaller than
/// this into one run of frames.
const RUN_BELOW: usize = 1024;

/// Bytes of frames [`PeerSocket::send_all`] collects into one queue item.
const RUN_BYTES: usize = 16 * 1024;

/// Only `Data` and `Ack` frames travel on a PEER socket.
fn check_kind(frame: &Frame) -> Result<(), PeerSendError> {
    match frame {
        Frame::Data { .. } | Frame::Ack { .. } => Ok(()),
        other => Err(PeerSendError::UnsupportedFrame(other.kind())),
    }
}

/// `frame`, checked and encoded for `conn`.
fn encode_on(conn: &ConnHandle, frame: &Frame) -> Result<msg_wire::EncodedFrame, PeerSendError> {
    check_kind(frame)?;
    conn.encode(frame).map_err(PeerSendError::Encode)
}

/// As [`encode_on`], the header split off `scratch`.
fn encode_in(
    conn: &ConnHandle,
    frame: &Frame,
    scratch: &mut BytesMut,
) -> Result<msg_wire::EncodedFrame, PeerSendError> {
    check_kind(frame)?;
    conn.encode_in(frame, scratch)
        .map_err(PeerSendError::Encode)
}

impl Default for PeerSocket {
    fn default() -> Self {
        Self::new()
    }
}

impl Stream for PeerSocket {
    type Item = PeerEvent;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PeerEvent>> {
        self.state.events.poll_recv(cx)
    }
}

impl PeerState {
    fn routes(&self) -> MutexGuard<'_, HashMap<Bytes, Arc<ConnHandle>>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `conn` is the current connection of its identity.
    fn is_current(&self, conn: &ConnHandle) -> bool {
        self.routes()
            .get(&conn.peer.identity)
            .is_some_and(|c| c.peer.conn_id == conn.peer.conn_id)
    }
}

impl Pattern for PeerState {
    async fn connected(&self, conn: &Arc<ConnHandle>) {
        let identity = conn.peer.identity.clone();
        // The route and the `Up` event change under one lock, so that for
        // one identity the order of events is the order of connections.
        let mut routes = self.routes();
        if let Some(old) = routes.insert(identity.clone(), conn.clone()) {
            tracing::debug!(
                identity = %identity.escape_ascii(),
                old = old.peer.conn_id,
                new = conn.peer.conn_id,
                "a newer connection replaces the old one"
            );
            old.close(Reason::Normal, "replaced by a newer connection");
        }
        self.events
            .push_control(PeerEvent::Up(identity, (*conn.peer).clone()));
    }

    async fn frame(
        &self,
        conn: &Arc<ConnHandle>,
        frame: Frame,
    ) -> Result<(), (Reason, &'static str)> {
        match frame {
            Frame::Data { .. } | Frame::Ack { .. } => {
                if !self.is_current(conn) {
                    // A replaced connection on its way out: its frames are
                    // as lost as those in flight when it was cut.
                    return Ok(());
                }
                let size = frame.payload().map_or(0, Bytes::len);
                let event = PeerEvent::Frame(conn.peer.identity.clone(), frame);
                // Waits while the queue is full: backpressure, never a drop.
                self.events.push(event, size).await;
                Ok(())
            }
            _ => Err((
                Reason::ProtocolError,
                "a PEER socket only accepts data and ack frames",
            )),
        }
    }

    fn disconnected(&self, conn: &Arc<ConnHandle>) {
        let identity = &conn.peer.identity;
        let mut routes = self.routes();
        if routes
            .get(identity)
            .is_some_and(|c| c.peer.conn_id == conn.peer.conn_id)
        {
            routes.remove(identity);
            self.events.push_control(PeerEvent::Down(identity.clone()));
        }
    }
}

impl Drop for PeerState {
    fn drop(&mut self) {
        self.events.close();
    }
}

/// The socket's incoming events: frames bounded in number and bytes (a
/// full queue makes connections wait), `Up`/`Down` always admitted, all in
/// one order.
#[derive(Debug)]
struct EventQueue {
    inner: Mutex<Queue>,
    /// Connections waiting for room.
    room: Notify,
    max_frames: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<(PeerEvent, usize)>,
    frames: usize,
    bytes: usize,
    closed: bool,
    readers: Vec<Waker>,
}

impl EventQueue {
    fn new(max_frames: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Queue::default()),
            room: Notify::new(),
            max_frames,
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `Up` or `Down` at once.
    fn push_control(&self, event: PeerEvent) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        q.items.push_back((event, usize::MAX));
        wake_readers(&mut q);
    }

    /// Queues a frame event of `size` payload bytes, waiting for room; drops
    /// it if the socket is closed.
    async fn push(&self, event: PeerEvent, size: usize) {
        loop {
            let room = self.room.notified();
            {
                let mut q = self.lock();
                if q.closed {
                    return;
                }
                // One frame larger than the whole bytes mark still goes into
                // an empty queue.
                let fits = q.frames < self.max_frames
                    && (q.bytes == 0 || q.bytes.saturating_add(size) <= self.max_bytes);
                if fits {
                    q.frames += 1;
                    q.bytes += size;
                    q.items.push_back((event, size));
                    wake_readers(&mut q);
                    return;
                }
            }
            room.await;
        }
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<PeerEvent>> {
        let mut q = self.lock();
        if let Some((event, size)) = q.items.pop_front() {
            if size != usize::MAX {
                q.frames -= 1;
                q.bytes -= size;
                drop(q);
                self.room.notify_waiters();
            }
            return Poll::Ready(Some(event));
        }
        if q.closed {
            return Poll::Ready(None);
        }
        if !q.readers.iter().any(|w| w.will_wake(cx.waker())) {
            q.readers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        wake_readers(&mut q);
        drop(q);
        self.room.notify_waiters();
    }
}

fn wake_readers(q: &mut Queue) {
    for w in q.readers.drain(..) {
        w.wake();
    }
}

impl_common!(PeerSocket);
