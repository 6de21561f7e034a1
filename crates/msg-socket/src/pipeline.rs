//! PUSH and PULL: pipelines of workers.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::error::SendError;
use crate::flow;
use crate::message::Message;
use crate::proto::pipeline::{PullProto, PushProto};
use crate::socket::Socket;

/// Hands each message to one [`PullSocket`] peer: a pipeline's upstream
/// (a ventilator handing out tasks, a worker passing results on).
///
/// Messages go round-robin over the connected PULL peers, skipping any
/// whose queue is at its high-water mark. Each message goes to exactly one
/// peer; nothing is copied to all of them (that is [`PubSocket`](crate::PubSocket)).
///
/// # High-water mark: wait, never drop
///
/// Each connection queues at most [`send_hwm`](crate::SocketOptions::send_hwm)
/// frames and [`send_hwm_bytes`](crate::SocketOptions::send_hwm_bytes) bytes
/// not yet written (a message of `n` parts counts as `n` frames). When every
/// connected peer is full, [`send`](Self::send) waits for room and
/// [`try_send`](Self::try_send) returns [`SendError::Full`] at once. While
/// no peer is connected at all, messages queue in the socket up to the same
/// marks and go to the first peer that connects (as in libzmq); past them
/// `send` waits too. Nothing is ever dropped to make room.
///
/// What PUSH/PULL does not do: a message queued on a connection that then
/// breaks is lost with it, and is not re-sent to another peer (nor is it in
/// libzmq). For delivery that survives lost connections and restarts, use
/// the reliable layer (`msg-reliable`).
///
/// [`close`](Self::close) lingers to deliver what is queued, including what
/// waits for a first peer, and reports what it could not.
///
/// It is also a [`futures::Sink`] of anything that makes a [`Message`], so
/// `stream.forward(&mut push)` moves a whole stream: `poll_ready` waits for
/// room as [`send`](Self::send) does, and a flush returns once every message
/// is queued (not yet written; [`close`](Self::close) reports what a message
/// the sink still held did not get).
///
/// ```
/// use futures::StreamExt;
/// use msg_socket::{PullSocket, PushSocket};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut pull = PullSocket::new();
/// let endpoint = pull.bind("inproc://push-doc").await?;
/// let push = PushSocket::new();
/// // Queued in the socket until the connection is up.
/// push.send("task 1").await?;
/// push.connect(&endpoint.to_string())?;
/// push.send(["task 2", "with a second part"]).await?;
/// assert_eq!(pull.next().await.unwrap(), "task 1");
/// assert_eq!(pull.next().await.unwrap().len(), 2);
/// # Ok(()) }
/// ```
pub type PushSocket = Socket<PushProto>;

impl Socket<PushProto> {
    /// Sends `message` to the next PULL peer with room, waiting while every
    /// peer is at its high-water mark (or, with no peer connected, while
    /// the socket's own queue is full). Returns once the message is queued,
    /// not when it is written.
    ///
    /// # Errors
    ///
    /// [`SendError::Encode`] for a message over the frame limit
    /// ([`max_frame_size`](crate::SocketOptions::max_frame_size), all parts
    /// together) or of more than [`MAX_PARTS`](crate::MAX_PARTS) parts;
    /// [`SendError::Closed`] after close.
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        flow::send(&self.shared, message.into()).await
    }

    /// Sends `message` if a peer (or, with none connected, the socket's
    /// queue) has room now.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] when none has; otherwise as for
    /// [`send`](Self::send).
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        flow::try_send(&self.shared, message.into())
    }
}

/// Takes messages from [`PushSocket`] peers: a pipeline's downstream (a
/// worker taking tasks, a sink collecting results).
///
/// A `Stream` of [`Message`]s (or [`recv`](Self::recv)), fair-queued: the
/// socket takes one message from each peer that has some, in turn, so one
/// busy pusher cannot starve the others.
///
/// # High-water mark: backpressure, never drop
///
/// Each connection may have [`recv_hwm`](crate::SocketOptions::recv_hwm)
/// messages and [`recv_hwm_bytes`](crate::SocketOptions::recv_hwm_bytes)
/// bytes waiting for the application. Past that, that connection alone
/// stops being read, so its pusher feels backpressure through the transport
/// (and its `send` waits, or it pushes to another peer); the other
/// connections go on. Messages that arrived before a connection ended stay
/// to be received.
pub type PullSocket = Socket<PullProto>;

impl Socket<PullProto> {
    /// The next message; `None` once the socket is closed.
    pub async fn recv(&mut self) -> Option<Message> {
        flow::recv(&self.shared, &mut self.taken).await
    }
}

impl Stream for Socket<PullProto> {
    type Item = Message;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = self.get_mut();
        flow::poll_recv(&this.shared, &mut this.taken, cx)
    }
}

flow::balanced_sink!(PushProto);
