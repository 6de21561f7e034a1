//! The replying side of request/reply.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use msg_transport::{Endpoint, Transport};
use msg_wire::{Frame, Reason, SocketType};

use crate::driver::conn::{ConnHandle, Pattern, PeerInfo};
use crate::driver::core::Core;
use crate::driver::inbound::{InboundRx, InboundTx, inbound};
use crate::error::{ReplyError, SocketError};
use crate::monitor::{SocketEvents, SocketStats};
use crate::options::SocketOptions;
use crate::socket::{CloseReport, impl_common};

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
/// High-water mark: at most [`recv_hwm`](SocketOptions::recv_hwm) requests
/// (and [`recv_hwm_bytes`](SocketOptions::recv_hwm_bytes)) wait in the
/// socket. When the queue is full, connections stop reading, so clients feel
/// backpressure through the transport; nothing is dropped.
#[derive(Debug)]
pub struct RepSocket {
    core: Arc<Core>,
    state: Arc<RepState>,
    rx: InboundRx<Request>,
}

#[derive(Debug)]
struct RepState {
    core: Arc<Core>,
    tx: InboundTx<Request>,
}

/// One request received by a [`RepSocket`].
///
/// Dropping it without replying leaves the requester to its timeout.
#[derive(Debug)]
pub struct Request {
    id: u64,
    payload: Bytes,
    conn: Arc<ConnHandle>,
    core: Arc<Core>,
}

impl Request {
    /// The request's payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Takes the payload out.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// Who sent it.
    pub fn peer(&self) -> &PeerInfo {
        &self.conn.peer
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
        let frame = self
            .conn
            .encode(&Frame::Reply {
                id: self.id,
                payload: payload.into(),
            })
            .map_err(ReplyError::Encode)?;
        self.conn
            .send(frame)
            .await
            .map_err(|_| ReplyError::Disconnected)?;
        self.core.counters.msgs_sent.fetch_add(1, Relaxed);
        Ok(())
    }
}

impl RepSocket {
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
        let core = Core::new(SocketType::Rep, options)?;
        let (tx, rx) = inbound(core.opts.recv_hwm, core.opts.recv_hwm_bytes);
        Ok(Self {
            state: Arc::new(RepState {
                core: core.clone(),
                tx,
            }),
            core,
            rx,
        })
    }

    /// The next request; `None` once the socket is closed.
    pub async fn recv(&mut self) -> Option<Request> {
        self.rx.recv().await
    }

    /// Answers every request with `handler`, running at most `concurrency`
    /// handlers at once, until the socket closes.
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

impl Default for RepSocket {
    fn default() -> Self {
        Self::new()
    }
}

impl Stream for RepSocket {
    type Item = Request;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Request>> {
        self.rx.poll_recv(cx)
    }
}

impl Pattern for RepState {
    async fn connected(&self, _conn: &Arc<ConnHandle>) {}

    async fn frame(
        &self,
        conn: &Arc<ConnHandle>,
        frame: Frame,
    ) -> Result<(), (Reason, &'static str)> {
        match frame {
            Frame::Request { id, payload } => {
                let size = payload.len();
                let request = Request {
                    id,
                    payload,
                    conn: conn.clone(),
                    core: self.core.clone(),
                };
                // Waits while the socket's queue is full: backpressure.
                let _ = self.tx.send(request, size).await;
                Ok(())
            }
            _ => Err((Reason::ProtocolError, "a REP socket only accepts requests")),
        }
    }

    fn disconnected(&self, _conn: &Arc<ConnHandle>) {}
}

impl_common!(RepSocket);
