//! The requesting side of request/reply.
//!
//! Every decision is [`ReqProto`]'s: which connection takes a request, its
//! entry in the pending table, and how it ends. A request's future is a
//! thin loop over it: it registers the request, queues its frame (waiting
//! for room or a connection if it must), and waits for the outcome, which
//! the socket's connection tasks (a reply, a lost connection) or its timer
//! task (the deadline) leave in the table. One timer for all of a socket's
//! deadlines, no channel per request.

use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use msg_wire::Frame;
use tokio::time::Instant;

use crate::driver::shared::Shared;
use crate::error::ReqError;
use crate::message::Message;
use crate::proto::pending::Key;
use crate::proto::req::{Dispatch, ReqProto};
use crate::socket::Socket;

/// Sends requests and waits for their replies.
///
/// A `ReqSocket` connects (or binds) to any number of [`RepSocket`]s and
/// spreads requests over the connected ones round-robin. Any number of
/// requests may be in flight at once (call [`request`](Self::request) from
/// many tasks through an `Arc<ReqSocket>`); replies are matched by id, in
/// whatever order they come.
///
/// Each request has a deadline ([`SocketOptions::request_timeout`](crate::SocketOptions::request_timeout)) that
/// runs from the call, whether or not a connection is up: while no peer is
/// connected, requests wait for one. A request in flight on a connection that
/// drops fails with [`ReqError::ConnectionLost`] and is never re-sent behind
/// your back: it may or may not have been processed. At-least-once delivery
/// is the reliable layer's job.
///
/// A reply that arrives after its request timed out is dropped. A request
/// the [`RepSocket`] drops without replying ends with its timeout.
///
/// High-water mark: each connection queues at most
/// [`send_hwm`](crate::SocketOptions::send_hwm) requests; past it, `request` waits
/// for room (within its deadline).
///
/// ```
/// use msg_socket::{RepSocket, ReqSocket};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut rep = RepSocket::new();
/// let endpoint = rep.bind("inproc://req-doc").await?;
/// tokio::spawn(async move {
///     while let Some(request) = rep.recv().await {
///         let answer = request.payload().to_ascii_uppercase();
///         let _ = request.reply(answer).await;
///     }
/// });
///
/// let req = ReqSocket::new();
/// req.connect(&endpoint.to_string())?;
/// let reply = req.request("hello").await?;
/// assert_eq!(reply, "HELLO");
/// # Ok(()) }
/// ```
///
/// [`RepSocket`]: crate::RepSocket
pub type ReqSocket = Socket<ReqProto>;

impl Socket<ReqProto> {
    /// Sends `payload` to one of the connected peers and waits for its reply.
    ///
    /// # Errors
    ///
    /// - [`ReqError::Timeout`]: no reply within the request timeout.
    /// - [`ReqError::ConnectionLost`]: the connection dropped while the
    ///   request was in flight; it was not re-sent.
    /// - [`ReqError::Encode`]: the payload is too large for the frame limit;
    ///   returned at once, nothing was sent.
    /// - [`ReqError::MultipartReply`]: the reply has several parts (it is in
    ///   the error, whole); [`request_message`](Self::request_message) takes
    ///   any reply.
    /// - [`ReqError::Closed`]: the socket shut down while the request was
    ///   waiting. In practice a request never sees this: it borrows the
    ///   socket, and [`close`](Self::close) and drop take the socket by
    ///   value, so every request has ended before the socket can close.
    pub async fn request(&self, payload: impl Into<Bytes>) -> Result<Bytes, ReqError> {
        let timeout = self.shared.core.opts.request_timeout;
        single(request(&self.shared, Message::from(payload.into()), timeout).await)
    }

    /// Like [`request`](Self::request), with its own deadline.
    ///
    /// # Errors
    ///
    /// As for [`request`](Self::request).
    pub async fn request_timeout(
        &self,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, ReqError> {
        single(request(&self.shared, Message::from(payload.into()), timeout).await)
    }

    /// Sends a message of one or more parts and waits for the reply, of one
    /// or more parts; both go whole or not at all.
    ///
    /// ```
    /// # use msg_socket::{Message, RepSocket, ReqSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut rep = RepSocket::new();
    /// let endpoint = rep.bind("inproc://req-message-doc").await?;
    /// tokio::spawn(async move {
    ///     while let Some(request) = rep.recv().await {
    ///         let mut answer = request.message();
    ///         answer.push("seen");
    ///         let _ = request.reply_message(answer).await;
    ///     }
    /// });
    /// let req = ReqSocket::new();
    /// req.connect(&endpoint.to_string())?;
    /// let reply = req.request_message(["header", "body"]).await?;
    /// assert_eq!(reply, Message::from_parts(["header", "body", "seen"]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`request`](Self::request), but for
    /// [`ReqError::MultipartReply`]; [`ReqError::Encode`] also for more than
    /// [`MAX_PARTS`](crate::MAX_PARTS) parts or a message over the frame
    /// limit in all.
    pub async fn request_message(&self, message: impl Into<Message>) -> Result<Message, ReqError> {
        let timeout = self.shared.core.opts.request_timeout;
        request(&self.shared, message.into(), timeout).await
    }

    /// Like [`request_message`](Self::request_message), with its own
    /// deadline.
    ///
    /// # Errors
    ///
    /// As for [`request_message`](Self::request_message).
    pub async fn request_message_timeout(
        &self,
        message: impl Into<Message>,
        timeout: Duration,
    ) -> Result<Message, ReqError> {
        request(&self.shared, message.into(), timeout).await
    }
}

/// The one part of a reply, for the single-part calls.
fn single(reply: Result<Message, ReqError>) -> Result<Bytes, ReqError> {
    reply?.into_single().map_err(ReqError::MultipartReply)
}

struct EntryGuard<'a> {
    shared: &'a Shared<ReqProto>,
    key: Option<Key>,
}

impl Drop for EntryGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.shared.with(|proto| proto.cancel(key));
        }
    }
}

/// A deadline `timeout` after `start`, or one so far away that it never
/// comes when that overflows.
fn deadline(start: Instant, timeout: Duration) -> Instant {
    start
        .checked_add(timeout)
        .unwrap_or_else(|| start + Duration::from_secs(86_400 * 365 * 30))
}

/// One request, from its entry in the table to its outcome; see
/// [`ReqSocket::request`].
async fn request(
    shared: &Shared<ReqProto>,
    message: Message,
    timeout: Duration,
) -> Result<Message, ReqError> {
    let core = &shared.core;
    let started = Instant::now();
    let due = deadline(started, timeout).into_std();
    // Encoded (and compressed) outside the lock, with id 0: the protocol
    // stamps the request's id into a copy of the header when it queues it.
    let encoded = message
        .encode(&core.codec, core.opts.wire.get_compression(), |payload| {
            Frame::Request { id: 0, payload }
        })
        .map_err(ReqError::Encode)?;
    let mut guard = EntryGuard { shared, key: None };
    let mut queued = false;
    let outcome = poll_fn(|cx| {
        shared.with_state(|state| {
            let proto = &mut state.proto;
            let key = *guard
                .key
                .get_or_insert_with(|| proto.insert(due, cx.waker().clone()));
            if !queued {
                match proto.dispatch_parts(key, &encoded.head, &encoded.last) {
                    Dispatch::Queued => queued = true,
                    Dispatch::Ended => {}
                    Dispatch::Waiting => {
                        if core.is_closing() {
                            return Poll::Ready(Err(ReqError::Closed));
                        }
                        // Woken by room on a connection, a new connection,
                        // or the deadline (through the entry's waker).
                        state.wait_for_room(cx.waker());
                    }
                }
            }
            match state.proto.poll_outcome(key, cx.waker()) {
                Some(outcome) => {
                    // Collecting the outcome freed the entry.
                    guard.key = None;
                    Poll::Ready(outcome)
                }
                None => Poll::Pending,
            }
        })
    })
    .await;
    drop(guard);
    match outcome {
        Ok(reply) => {
            core.counters.latency.record(started.elapsed());
            Ok(reply)
        }
        Err(ReqError::Timeout) => Err(ReqError::Timeout),
        // A connection torn down by the socket's own shutdown reports the
        // shutdown, not a lost peer.
        Err(_) if core.is_closing() => Err(ReqError::Closed),
        Err(e) => Err(e),
    }
}
