//! The symmetric PEER socket: frames routed by the peer's identity.
//!
//! [`PeerProto`] decides which connection carries frames to each identity
//! (the newer connection of the same principal wins) and keeps the ordered queue of events for
//! the application; this module is the thin handle over it.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use msg_wire::{EncodedFrame, Frame};

use crate::driver::conn::PeerInfo;
use crate::error::PeerSendError;
use crate::proto::conns::ConnId;
use crate::proto::peer::{PeerProto, SendStatus};
use crate::socket::Socket;

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
    /// is already up means a newer connection of the same principal
    /// replaced the old one, which was closed; frames in flight on the old
    /// one may have been lost. The [`PeerInfo`] carries the peer's verified
    /// certificates, if any.
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
/// [`SocketOptions::identity`](crate::SocketOptions::identity); by default it is random), and a peer that
/// announces an empty one is refused in the handshake.
///
/// **Repeated identities: the newer connection of the same principal
/// wins.** When a second connection announces an identity that is already
/// connected (the peer restarted and reconnected before the old connection
/// was found dead, or someone else uses its identity), it replaces the
/// first only if it authenticated as the same principal: the same verified
/// certificate names, the same token accepted by the authenticator. Then
/// frames go on the new one, and the old one is closed with a `Close`
/// frame. A connection of another principal is refused in the handshake
/// with [`Reason::IdentityInUse`](msg_wire::Reason::IdentityInUse),
/// counted in [`SocketStats::identity_refusals`](crate::SocketStats::identity_refusals)
/// and reported as
/// [`SocketEvent::IdentityRefused`](crate::SocketEvent::IdentityRefused);
/// the connected peer keeps its connection and never hears of it.
///
/// Without authentication every connection is the same anonymous
/// principal and the newer connection always wins: an unauthenticated
/// identity is only a claim, anyone could announce it while its holder is
/// away, and refusing the newcomer would lock a restarted peer out until
/// the heartbeat timeout. To make identities trustworthy, bind them to a
/// credential: a name in the client certificate
/// ([`SocketOptions::bind_identity_to_certificate`](crate::SocketOptions::bind_identity_to_certificate))
/// or a token ([`TokenTable`](crate::TokenTable)). Connect two peers in one
/// direction only: if both connect to each other, each new connection
/// replaces the other's.
///
/// # High-water marks: backpressure, never drop
///
/// Outgoing, each connection's queue holds
/// [`send_hwm`](crate::SocketOptions::send_hwm) frames; [`send`](Self::send) waits
/// for room, [`try_send`](Self::try_send) returns
/// [`PeerSendError::Full`]. Incoming, at most
/// [`recv_hwm`](crate::SocketOptions::recv_hwm) frames (and
/// [`recv_hwm_bytes`](crate::SocketOptions::recv_hwm_bytes) of payload) wait for
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
pub type PeerSocket = Socket<PeerProto>;

impl Socket<PeerProto> {
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
        let conn = self.route(identity, &frame)?;
        let encoded = self.encode(&frame)?;
        self.queue(conn, encoded, msgs(&frame)).await
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
        let core = &self.shared.core;
        let compression = core.opts.wire.get_compression();
        let mut route: Option<ConnId> = None;
        // Small frames are encoded back to back into `run` and queued as one
        // item of up to RUN_BYTES: one queue operation, one allocation and
        // one slice for the writer instead of one each per frame. A larger
        // payload goes on its own, uncopied, its header split off `headers`.
        let mut run = BytesMut::new();
        let mut run_msgs = 0;
        let mut headers = BytesMut::new();
        let mut failed = None;
        for frame in frames {
            let conn = match route {
                Some(conn) => conn,
                None => match self.route(identity, &frame) {
                    Ok(conn) => *route.insert(conn),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                },
            };
            if let Err(e) = check_kind(&frame) {
                failed = Some(e);
                break;
            }
            if frame.payload().is_none_or(|p| p.len() < RUN_BELOW) {
                if run.is_empty() {
                    run.reserve(RUN_BYTES);
                }
                if let Err(e) = core.codec.encode_append(&frame, compression, &mut run) {
                    failed = Some(PeerSendError::Encode(e));
                    break;
                }
                run_msgs += msgs(&frame);
                if run.len() >= RUN_BYTES {
                    self.flush_run(conn, &mut run, &mut run_msgs).await?;
                }
            } else {
                self.flush_run(conn, &mut run, &mut run_msgs).await?;
                if headers.capacity() == 0 {
                    headers.reserve(8 * HEADER_ROOM);
                }
                let encoded = core
                    .codec
                    .encode_parts_in(&frame, compression, &mut headers)
                    .map_err(PeerSendError::Encode)?;
                self.queue(conn, encoded, 1).await?;
            }
        }
        // The frames before a failure go out.
        if let Some(conn) = route {
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
        conn: ConnId,
        run: &mut BytesMut,
        msgs: &mut u64,
    ) -> Result<(), PeerSendError> {
        if run.is_empty() {
            return Ok(());
        }
        let frames = EncodedFrame::from_encoded(run.split().freeze());
        self.queue(conn, frames, std::mem::take(msgs)).await
    }

    /// Like [`send`](Self::send), without waiting.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), and [`PeerSendError::Full`] when the
    /// connection's queue is at its high-water mark.
    pub fn try_send(&self, identity: &[u8], frame: Frame) -> Result<(), PeerSendError> {
        let conn = self.route(identity, &frame)?;
        let encoded = self.encode(&frame)?;
        match self
            .shared
            .with(|proto| proto.send(conn, &encoded, msgs(&frame)))
        {
            SendStatus::Queued => Ok(()),
            SendStatus::Full => Err(PeerSendError::Full),
            SendStatus::Gone => Err(PeerSendError::Disconnected),
        }
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
        self.shared.with(|proto| proto.route(identity).is_some())
    }

    /// The identities of the peers connected right now.
    pub fn connected_peers(&self) -> Vec<Bytes> {
        self.shared
            .with(|proto| proto.identities().cloned().collect())
    }

    /// The next event; `None` once the socket is closed.
    ///
    /// Several tasks may wait at once; each event goes to one of them.
    pub async fn recv(&self) -> Option<PeerEvent> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<PeerEvent>> {
        self.shared.with_state(|state| {
            if let Some(event) = state.proto.poll_event() {
                return Poll::Ready(Some(event));
            }
            if self.shared.core.is_closing() {
                return Poll::Ready(None);
            }
            state.wait_for_delivery(cx.waker());
            Poll::Pending
        })
    }

    /// The connection of `identity`, once `frame` is known to be one a
    /// PEER socket sends and the socket is open.
    fn route(&self, identity: &[u8], frame: &Frame) -> Result<ConnId, PeerSendError> {
        check_kind(frame)?;
        if self.shared.core.is_closing() {
            return Err(PeerSendError::Closed);
        }
        self.shared
            .with(|proto| proto.route(identity))
            .ok_or(PeerSendError::NotConnected)
    }

    fn encode(&self, frame: &Frame) -> Result<EncodedFrame, PeerSendError> {
        let core = &self.shared.core;
        core.codec
            .encode_parts(frame, core.opts.wire.get_compression())
            .map_err(PeerSendError::Encode)
    }

    /// Queues `frame` on `conn`, waiting for room.
    async fn queue(
        &self,
        conn: ConnId,
        frame: EncodedFrame,
        msgs: u64,
    ) -> Result<(), PeerSendError> {
        poll_fn(|cx| {
            if self.shared.core.is_closing() {
                return Poll::Ready(Err(PeerSendError::Disconnected));
            }
            self.shared
                .with_state(|state| match state.proto.send(conn, &frame, msgs) {
                    SendStatus::Queued => Poll::Ready(Ok(())),
                    SendStatus::Gone => Poll::Ready(Err(PeerSendError::Disconnected)),
                    SendStatus::Full => {
                        state.wait_for_room(cx.waker());
                        Poll::Pending
                    }
                })
        })
        .await
    }
}

/// Frames of `frame` that carry a payload, for the message counters.
fn msgs(frame: &Frame) -> u64 {
    u64::from(frame.payload().is_some())
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

impl Stream for Socket<PeerProto> {
    type Item = PeerEvent;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PeerEvent>> {
        self.poll_recv(cx)
    }
}
