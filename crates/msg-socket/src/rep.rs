//! The replying side of request/reply.
//!
//! [`RepProto`] queues the requests of every connection for the
//! application, holds connections back while that queue is full, and routes
//! each reply to the connection its request came from. This module is the
//! thin handle over it.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use msg_wire::Frame;

use crate::driver::conn::PeerInfo;
use crate::driver::shared::Shared;
use crate::error::ReplyError;
use crate::message::Message;
use crate::proto::conns::ConnId;
use crate::proto::rep::{RepProto, ReplyStatus};
use crate::socket::Socket;

/// Receives requests and sends back replies.
///
/// A `RepSocket` binds (or connects) and serves any number of requesters;
/// every connection is its own peer, IPC clients included. Requests arrive as
/// a [`Stream`] of [`Request`]s (or through [`recv`](Self::recv)); each
/// carries its payload and its peer, and [`Request::reply`] sends the answer
/// back on the connection the request came from. Requests may be answered in
/// any order and concurrently: [`serve`](Self::serve) runs a handler with a
/// concurrency limit.
///
/// High-water mark: at most [`recv_hwm`](crate::SocketOptions::recv_hwm) requests
/// (and [`recv_hwm_bytes`](crate::SocketOptions::recv_hwm_bytes)) wait in the
/// socket. When the queue is full, connections stop reading, so clients feel
/// backpressure through the transport; nothing is dropped.
pub type RepSocket = Socket<RepProto>;

/// One request received by a [`RepSocket`].
///
/// Dropping it without replying leaves the requester to its timeout.
#[derive(Debug)]
pub struct Request {
    id: u64,
    /// The parts before the payload, for a multipart request.
    head: Vec<Bytes>,
    payload: Bytes,
    peer: Arc<PeerInfo>,
    conn: ConnId,
    shared: Arc<Shared<RepProto>>,
}

impl Request {
    /// The request's payload: its only part, or the last part of a
    /// multipart request (see [`message`](Self::message)).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Takes the payload out (the last part of a multipart request).
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// Whether the request has more than one part (from
    /// [`ReqSocket::request_message`](crate::ReqSocket::request_message) or
    /// a [`DealerSocket`](crate::DealerSocket)); it is delivered whole.
    pub fn is_multipart(&self) -> bool {
        !self.head.is_empty()
    }

    /// Every part of the request, as a [`Message`] (the bytes are shared,
    /// not copied).
    pub fn message(&self) -> Message {
        Message::from_wire(self.head.clone(), self.payload.clone())
    }

    /// Who sent it.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// Sends `payload` back to the requester, on the connection the request
    /// came from. Waits while that connection's queue is at its high-water
    /// mark.
    ///
    /// # Errors
    ///
    /// [`ReplyError::Disconnected`] when the requester's connection is gone
    /// (the requester got [`ReqError::ConnectionLost`](crate::ReqError::ConnectionLost));
    /// [`ReplyError::Encode`] when the reply is too large.
    pub async fn reply(self, payload: impl Into<Bytes>) -> Result<(), ReplyError> {
        self.reply_message(Message::from(payload.into())).await
    }

    /// Sends a reply of one or more parts back to the requester, whole; as
    /// [`reply`](Self::reply) otherwise. A [`ReqSocket`](crate::ReqSocket)
    /// takes it with [`request_message`](crate::ReqSocket::request_message),
    /// a [`DealerSocket`](crate::DealerSocket) as any message.
    ///
    /// # Errors
    ///
    /// As for [`reply`](Self::reply); [`ReplyError::Encode`] also for more
    /// than [`MAX_PARTS`](crate::MAX_PARTS) parts or a message over the
    /// frame limit in all.
    pub async fn reply_message(self, message: impl Into<Message>) -> Result<(), ReplyError> {
        let core = &self.shared.core;
        let id = self.id;
        let encoded = message
            .into()
            .encode(&core.codec, core.opts.wire.get_compression(), |payload| {
                Frame::Reply { id, payload }
            })
            .map_err(ReplyError::Encode)?;
        // Moved into the connection's queue once it has room.
        let mut encoded = Some(encoded);
        poll_fn(|cx| {
            if core.is_closing() {
                return Poll::Ready(Err(ReplyError::Disconnected));
            }
            let Some(reply) = encoded.take() else {
                return Poll::Ready(Ok(()));
            };
            self.shared
                .with_state(|state| match state.proto.reply_message(self.conn, reply) {
                    ReplyStatus::Queued => Poll::Ready(Ok(())),
                    ReplyStatus::Gone => Poll::Ready(Err(ReplyError::Disconnected)),
                    ReplyStatus::Full(reply) => {
                        encoded = Some(reply);
                        state.wait_for_room(cx.waker());
                        Poll::Pending
                    }
                })
        })
        .await
    }
}

impl Socket<RepProto> {
    /// The next request; `None` once the socket is closed.
    pub async fn recv(&mut self) -> Option<Request> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Request>> {
        self.shared.with_state(|state| {
            if let Some(incoming) = state.proto.poll_delivery() {
                return Poll::Ready(Some(Request {
                    id: incoming.id,
                    head: incoming.head,
                    payload: incoming.payload,
                    peer: incoming.peer,
                    conn: incoming.conn,
                    shared: self.shared.clone(),
                }));
            }
            if self.shared.core.is_closing() {
                return Poll::Ready(None);
            }
            state.wait_for_delivery(cx.waker());
            Poll::Pending
        })
    }

    /// Answers every request with `handler`, running at most `concurrency`
    /// handlers at once, until the socket closes. The handler gets the
    /// payload: for a DEALER's multipart request, its last part only (use
    /// [`recv`](Self::recv) and [`Request::message`] to see every part).
    ///
    /// Requests beyond the limit wait in the socket's queue (and past its
    /// high-water mark, in the clients' connections): a slow handler slows
    /// intake instead of piling up work.
    ///
    /// ```
    /// # use msg_socket::{RepSocket, ReqSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rep = RepSocket::new();
    /// let endpoint = rep.bind("inproc://serve-doc").await?;
    /// tokio::spawn(rep.serve(16, |payload, _peer| async move {
    ///     let n: u64 = std::str::from_utf8(&payload).unwrap_or("0").parse().unwrap_or(0);
    ///     (n * 2).to_string()
    /// }));
    /// let req = ReqSocket::new();
    /// req.connect(&endpoint.to_string())?;
    /// assert_eq!(req.request("21").await?, "42");
    /// # Ok(()) }
    /// ```
    pub async fn serve<F, Fut, R>(self, concurrency: usize, handler: F)
    where
        F: Fn(Bytes, PeerInfo) -> Fut,
        Fut: Future<Output = R>,
        R: Into<Bytes>,
    {
        let handler = &handler;
        self.for_each_concurrent(concurrency.max(1), |request| async move {
            let peer = request.peer().clone();
            let payload = request.payload.clone();
            let answer = handler(payload, peer).await;
            // A requester that went away is its own business.
            let _ = request.reply(answer).await;
        })
        .await;
    }
}

impl Stream for Socket<RepProto> {
    type Item = Request;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Request>> {
        self.poll_recv(cx)
    }
}
