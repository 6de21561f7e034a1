//! The requesting side of request/reply.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use msg_transport::{Endpoint, Transport};
use msg_wire::{Frame, FrameCodec, Reason, SocketType};
use tokio::sync::{Notify, oneshot};

use crate::driver::conn::{ConnHandle, Pattern};
use crate::driver::core::Core;
use crate::error::{ReqError, SocketError};
use crate::monitor::{SocketEvents, SocketStats};
use crate::options::SocketOptions;
use crate::socket::{CloseReport, impl_common};

/// Sends requests and waits for their replies.
///
/// A `ReqSocket` connects (or binds) to any number of [`RepSocket`]s and
/// spreads requests over the connected ones round-robin. Any number of
/// requests may be in flight at once (call [`request`](Self::request) from
/// many tasks through an `Arc<ReqSocket>`); replies are matched by id, in
/// whatever order they come.
///
/// Each request has a deadline ([`SocketOptions::request_timeout`]) that
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
/// [`send_hwm`](SocketOptions::send_hwm) requests; past it, `request` waits
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
#[derive(Debug)]
pub struct ReqSocket {
    core: Arc<Core>,
    state: Arc<ReqState>,
}

#[derive(Debug)]
struct Pending {
    conn_id: u64,
    tx: oneshot::Sender<Result<Bytes, ReqError>>,
}

#[derive(Debug)]
struct ReqState {
    core: Arc<Core>,
    conns: Mutex<Vec<Arc<ConnHandle>>>,
    next_conn: AtomicUsize,
    conn_ready: Notify,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    codec: FrameCodec,
}

impl ReqSocket {
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
        let core = Core::new(SocketType::Req, options)?;
        let state = Arc::new(ReqState {
            core: core.clone(),
            conns: Mutex::new(Vec::new()),
            next_conn: AtomicUsize::new(0),
            conn_ready: Notify::new(),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            codec: FrameCodec::with_options(core.opts.wire.clone()),
        });
        Ok(Self { core, state })
    }

    /// Sends `payload` to one of the connected peers and waits for its reply.
    ///
    /// # Errors
    ///
    /// - [`ReqError::Timeout`]: no reply within the request timeout.
    /// - [`ReqError::ConnectionLost`]: the connection dropped while the
    ///   request was in flight; it was not re-sent.
    /// - [`ReqError::Encode`]: the payload is too large for the frame limit;
    ///   returned at once, nothing was sent.
    /// - [`ReqError::Closed`]: the socket shut down while the request was
    ///   waiting. In practice a request never sees this: it borrows the
    ///   socket, and [`close`](Self::close) and drop take the socket by
    ///   value, so every request has ended before the socket can close.
    pub async fn request(&self, payload: impl Into<Bytes>) -> Result<Bytes, ReqError> {
        self.request_timeout(payload, self.core.opts.request_timeout)
            .await
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
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(timeout, self.state.send(payload.into())).await;
        match result {
            Ok(Ok(reply)) => {
                self.core.counters.latency.record(started.elapsed());
                Ok(reply)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ReqError::Timeout),
        }
    }
}

impl Default for ReqSocket {
    fn default() -> Self {
        Self::new()
    }
}

/// Removes a request's entry from the pending table when the request ends
/// in any way (reply, timeout, cancellation), so nothing leaks.
struct PendingGuard<'a> {
    state: &'a ReqState,
    id: u64,
    /// Cleared once the entry is known to be gone (the reply or the loss was
    /// delivered), which saves a lock on the common path.
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(mut pending) = self.state.pending.lock() {
            pending.remove(&self.id);
        }
    }
}

impl ReqState {
    async fn send(&self, payload: Bytes) -> Result<Bytes, ReqError> {
        let id = self.next_id.fetch_add(1, Relaxed);
        let mut frame = self
            .codec
            .encode_parts(
                &Frame::Request { id, payload },
                self.core.opts.wire.get_compression(),
            )
            .map_err(ReqError::Encode)?;
        loop {
            let conn = self.pick().await?;
            let (tx, rx) = oneshot::channel();
            // Registered before the frame is queued: the reply may come back
            // before `send` returns.
            self.pending.lock().expect("pending lock").insert(
                id,
                Pending {
                    conn_id: conn.peer.conn_id,
                    tx,
                },
            );
            let mut guard = PendingGuard {
                state: self,
                id,
                armed: true,
            };
            match conn.send(frame).await {
                Ok(()) => {}
                Err(unsent) => {
                    // The connection is closing and the request was not
                    // queued, so another connection may take it. Forget this
                    // one now rather than when its task gets round to
                    // `disconnected`: until then `pick` would keep offering
                    // it and this loop would spin.
                    frame = unsent;
                    self.forget(conn.peer.conn_id);
                    continue;
                }
            }
            self.core.counters.msgs_sent.fetch_add(1, Relaxed);
            // Only the reply (or its loss) ends the wait: a queued request
            // always hears back, since the connection's task fails every
            // pending request when it ends (`disconnected`), and it ends when
            // the socket shuts down. Not waiting on the socket's token as
            // well saves registering a waiter with it per request.
            let result = rx.await;
            // Whoever completed (or dropped) the sender took the entry out
            // of the table already.
            guard.armed = false;
            return match result {
                Ok(Ok(reply)) => Ok(reply),
                // A connection torn down by the socket's own shutdown
                // reports the shutdown, not a lost peer.
                _ if self.core.cancel.is_cancelled() => Err(ReqError::Closed),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(ReqError::ConnectionLost),
            };
        }
    }

    /// The next connected peer, round-robin; waits while there is none.
    async fn pick(&self) -> Result<Arc<ConnHandle>, ReqError> {
        loop {
            let ready = self.conn_ready.notified();
            {
                let conns = self.conns.lock().expect("conns lock");
                if !conns.is_empty() {
                    let i = self.next_conn.fetch_add(1, Relaxed) % conns.len();
                    return Ok(conns[i].clone());
                }
            }
            if self.core.cancel.is_cancelled() {
                return Err(ReqError::Closed);
            }
            tokio::select! {
                () = ready => {}
                () = self.core.cancel.cancelled() => return Err(ReqError::Closed),
            }
        }
    }

    /// Stops offering connection `conn_id` to new requests.
    fn forget(&self, conn_id: u64) {
        self.conns
            .lock()
            .expect("conns lock")
            .retain(|c| c.peer.conn_id != conn_id);
    }
}

impl Pattern for ReqState {
    async fn connected(&self, conn: &Arc<ConnHandle>) {
        self.conns.lock().expect("conns lock").push(conn.clone());
        self.conn_ready.notify_waiters();
    }

    async fn frame(
        &self,
        conn: &Arc<ConnHandle>,
        frame: Frame,
    ) -> Result<(), (Reason, &'static str)> {
        match frame {
            Frame::Reply { id, payload } => {
                let waiter = {
                    let mut pending = self.pending.lock().expect("pending lock");
                    // A reply for a request that timed out, or from another
                    // connection than the one the request went to, is
                    // ignored.
                    match pending.entry(id) {
                        Entry::Occupied(e) if e.get().conn_id == conn.peer.conn_id => {
                            Some(e.remove())
                        }
                        _ => None,
                    }
                };
                if let Some(p) = waiter {
                    let _ = p.tx.send(Ok(payload));
                }
                Ok(())
            }
            _ => Err((Reason::ProtocolError, "a REQ socket only accepts replies")),
        }
    }

    fn disconnected(&self, conn: &Arc<ConnHandle>) {
        let id = conn.peer.conn_id;
        self.forget(id);
        // Every request queued on this connection fails, written or not:
        // none is re-sent. (A request still waiting for room in the queue
        // was never sent; `send` sees the connection closed, which happens
        // before this runs, and tries another connection.)
        let lost: Vec<Pending> = {
            let mut pending = self.pending.lock().expect("pending lock");
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.conn_id == id)
                .map(|(k, _)| *k)
                .collect();
            ids.iter().filter_map(|k| pending.remove(k)).collect()
        };
        for p in lost {
            let _ = p.tx.send(Err(ReqError::ConnectionLost));
        }
    }
}

impl_common!(ReqSocket);
