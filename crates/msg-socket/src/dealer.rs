//! DEALER: asynchronous requests, without lock-step.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::error::SendError;
use crate::flow;
use crate::message::Message;
use crate::proto::dealer::DealerProto;
use crate::socket::Socket;

/// Sends requests without waiting for replies, and receives whatever comes
/// back: an asynchronous client, or a worker behind a
/// [`RouterSocket`](crate::RouterSocket) broker.
///
/// Unlike [`ReqSocket`](crate::ReqSocket), nothing pairs a reply with its
/// request or times it out: [`send`](Self::send) goes round-robin over the
/// connected peers with room, and the replies (and any other messages)
/// arrive as a `Stream` of [`Message`]s, fair-queued over the peers. Put a
/// correlation id in a part of the message when you need one.
///
/// A DEALER talks to a [`RouterSocket`](crate::RouterSocket) (which sees its
/// identity and can send it messages at any time), to a
/// [`RepSocket`](crate::RepSocket) (which answers each message as a
/// request: a multipart one arrives whole, see
/// [`Request::message`](crate::Request::message), and the reply may have
/// several parts, see [`Request::reply_message`](crate::Request::reply_message)),
/// and to another DEALER.
///
/// # High-water marks
///
/// Sending as [`PushSocket`](crate::PushSocket): wait when every peer is at
/// [`send_hwm`](crate::SocketOptions::send_hwm) (or `try_send` returns
/// [`SendError::Full`]); queue in the socket, up to the same marks, while no
/// peer is connected; never drop. Receiving as
/// [`PullSocket`](crate::PullSocket): per connection, up to
/// [`recv_hwm`](crate::SocketOptions::recv_hwm) messages wait, then that
/// connection is held back.
///
/// Like [`PushSocket`](crate::PushSocket), it is a [`futures::Sink`] of
/// anything that makes a [`Message`](crate::Message), waiting for room in
/// `poll_ready`.
///
/// ```
/// use futures::StreamExt;
/// use msg_socket::{DealerSocket, RepSocket};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rep = RepSocket::new();
/// let endpoint = rep.bind("inproc://dealer-doc").await?;
/// tokio::spawn(rep.serve(8, |payload, _| async move { [&payload[..], b"!"].concat() }));
///
/// let mut dealer = DealerSocket::new();
/// dealer.connect(&endpoint.to_string())?;
/// for word in ["one", "two", "three"] {
///     dealer.send(word).await?; // no waiting for each reply
/// }
/// let mut replies = Vec::new();
/// for _ in 0..3 {
///     replies.push(dealer.next().await.unwrap().into_single().unwrap());
/// }
/// replies.sort();
/// assert_eq!(replies, ["one!", "three!", "two!"]);
/// # Ok(()) }
/// ```
pub type DealerSocket = Socket<DealerProto>;

impl Socket<DealerProto> {
    /// Sends `message` to the next peer with room, waiting while every peer
    /// is at its high-water mark (or, with no peer connected, while the
    /// socket's own queue is full).
    ///
    /// # Errors
    ///
    /// [`SendError::Encode`] for a message over the frame limit or of more
    /// than [`MAX_PARTS`](crate::MAX_PARTS) parts; [`SendError::Closed`]
    /// after close.
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        flow::send(&self.shared, message.into()).await
    }

    /// Sends `message` if a peer (or the socket's queue) has room now.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] when none has; otherwise as for
    /// [`send`](Self::send).
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        flow::try_send(&self.shared, message.into())
    }

    /// The next message from any peer; `None` once the socket is closed.
    pub async fn recv(&mut self) -> Option<Message> {
        flow::recv(&self.shared, &mut self.taken).await
    }
}

impl Stream for Socket<DealerProto> {
    type Item = Message;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = self.get_mut();
        flow::poll_recv(&this.shared, &mut this.taken, cx)
    }
}

flow::balanced_sink!(DealerProto);
