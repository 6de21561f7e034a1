//! PAIR: an exclusive connection between two sockets.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::error::SendError;
use crate::flow;
use crate::message::Message;
use crate::proto::pair::PairProto;
use crate::socket::Socket;

/// One end of an exclusive pair: two sockets, one connection, messages both
/// ways. For two tasks, threads or processes that belong together.
///
/// A PAIR socket has exactly one peer. While it has one, a bound PAIR turns
/// any other away in the handshake, with a Reject of reason
/// [`Reason::Occupied`](msg_wire::Reason::Occupied) and the text "a PAIR
/// socket has its one peer already": both sides report a
/// [`HandshakeFailed`](crate::SocketEvent::HandshakeFailed) event, the
/// refused side never has a connection to queue on (what it sent waits in
/// it), and it keeps retrying with backoff until the first peer is gone.
/// [`refused`](Self::refused) counts them. A connection that gets past the
/// handshake anyway (two handshakes at once, or a second `connect` of this
/// socket's own) is closed right after it with the same reason, and the
/// other side reports a disconnect.
///
/// # High-water marks
///
/// Sending: at most [`send_hwm`](crate::SocketOptions::send_hwm) frames wait
/// for the peer; [`send`](Self::send) waits past that and
/// [`try_send`](Self::try_send) returns [`SendError::Full`]. While no peer
/// is connected, messages queue in the socket up to the same marks and go
/// to the peer when it connects. Receiving: up to
/// [`recv_hwm`](crate::SocketOptions::recv_hwm) messages wait for the
/// application, then the connection is held back (backpressure). Nothing is
/// dropped; what was queued on a connection that breaks is lost with it.
///
/// Like [`PushSocket`](crate::PushSocket), it is a [`futures::Sink`] of
/// anything that makes a [`Message`](crate::Message), waiting for room in
/// `poll_ready`.
///
/// ```
/// use futures::StreamExt;
/// use msg_socket::PairSocket;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut a = PairSocket::new();
/// let endpoint = a.bind("inproc://pair-doc").await?;
/// let mut b = PairSocket::new();
/// b.connect(&endpoint.to_string())?;
/// a.send("ping").await?;
/// assert_eq!(b.next().await.unwrap(), "ping");
/// b.send("pong").await?;
/// assert_eq!(a.next().await.unwrap(), "pong");
/// # Ok(()) }
/// ```
pub type PairSocket = Socket<PairProto>;

impl Socket<PairProto> {
    /// Sends `message` to the peer, waiting while its queue is at the
    /// high-water mark (or, with no peer, while the socket's queue is).
    ///
    /// # Errors
    ///
    /// [`SendError::Encode`] for a message over the frame limit or of more
    /// than [`MAX_PARTS`](crate::MAX_PARTS) parts; [`SendError::Closed`]
    /// after close.
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        flow::send(&self.shared, message.into()).await
    }

    /// Sends `message` if there is room now.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] when there is not; otherwise as for
    /// [`send`](Self::send).
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        flow::try_send(&self.shared, message.into())
    }

    /// The next message from the peer; `None` once the socket is closed.
    pub async fn recv(&mut self) -> Option<Message> {
        flow::recv(&self.shared, &mut self.taken).await
    }

    /// Second connections refused so far because the socket had its peer.
    pub fn refused(&self) -> u64 {
        self.shared.with(|proto| proto.refused)
    }
}

impl Stream for Socket<PairProto> {
    type Item = Message;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = self.get_mut();
        flow::poll_recv(&this.shared, &mut this.taken, cx)
    }
}

flow::balanced_sink!(PairProto);
