//! The requesting side of request/reply.
//!
//! Every request in flight has an entry in the socket's pending table,
//! behind one lock. The table's logic (ids with generations, deadlines,
//! outcomes) is sans-IO, in `proto::pending`; this module drives it. The
//! entry is also the request's completion: whoever ends the request (the
//! reply, the loss of its connection, its deadline) stores the outcome there
//! and wakes the waker the entry holds; the request takes the outcome and
//! frees the slot. No channel is allocated per request.
//!
//! Deadlines are kept by one sweeper task per socket instead of a timer per
//! request. It sleeps until the earliest deadline in the table, fails every
//! request past its deadline with [`ReqError::Timeout`], and sleeps again.
//! A request whose deadline is earlier than the one the sweeper sleeps until
//! wakes it to re-arm; with one timeout for all requests (the usual case)
//! deadlines only grow, and a request costs the sweeper nothing. Requests
//! still waiting for a connection or for room in one have their entry too,
//! so the deadline holds whether or not a connection is up.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use msg_transport::{Endpoint, Transport};
use msg_wire::{EncodedFrame, Frame, FrameCodec, Reason, SocketType};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::driver::conn::{ConnHandle, Pattern};
use crate::driver::core::Core;
use crate::error::{ReqError, SocketError};
use crate::monitor::{SocketEvents, SocketStats};
use crate::options::SocketOptions;
use crate::proto::pending::{self, Key, Table};
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
struct ReqState {
    core: Arc<Core>,
    conns: Mutex<Vec<Arc<ConnHandle>>>,
    next_conn: AtomicUsize,
    conn_ready: Notify,
    pending: Mutex<Pending>,
    /// Tells the sweeper that a deadline earlier than the one it sleeps
    /// until came in.
    rearm: Notify,
    codec: FrameCodec,
}

/// What the pending lock guards.
#[derive(Debug, Default)]
struct Pending {
    /// One entry per request that has not ended yet; the waker of the task
    /// waiting for it rides along.
    requests: Table<Waker>,
    /// Whether a sweeper task is running.
    sweeper: bool,
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
            pending: Mutex::new(Pending::default()),
            rearm: Notify::new(),
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
        // Straight to `send` rather than through `request_timeout`: one
        // future less nested in every request's.
        self.state
            .send(payload.into(), self.core.opts.request_timeout)
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
        self.state.send(payload.into(), timeout).await
    }
}

impl Default for ReqSocket {
    fn default() -> Self {
        Self::new()
    }
}

/// Removes a request's entry from the pending table when the request ends
/// early (its future dropped, an encoding error), so nothing leaks.
struct EntryGuard<'a> {
    state: &'a ReqState,
    key: Key,
    /// Cleared once the request collected its outcome, which removed the
    /// entry already.
    armed: bool,
}

impl Drop for EntryGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.state.pending().requests.remove(self.key);
        }
    }
}

/// Clears the table's sweeper flag when the sweeper ends, however it ends
/// (the socket closing, or its runtime shutting down and dropping it), so
/// the next request starts another.
struct SweeperRunning<'a>(&'a ReqState);

impl Drop for SweeperRunning<'_> {
    fn drop(&mut self) {
        let mut pending = self.0.pending();
        pending.sweeper = false;
        pending.requests.disarm();
    }
}

/// Times out requests past their deadline until the socket closes.
async fn sweep(state: Arc<ReqState>) {
    let _running = SweeperRunning(&state);
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    let mut woken = Vec::new();
    loop {
        let rearm = state.rearm.notified();
        let next = {
            let requests = &mut state.pending().requests;
            requests.handle_timeout(Instant::now().into_std(), &mut woken);
            requests.poll_timeout()
        };
        woken.drain(..).for_each(Waker::wake);
        if let Some(deadline) = next {
            sleep.as_mut().reset(Instant::from_std(deadline));
        }
        tokio::select! {
            biased;
            () = state.core.cancel.cancelled() => return,
            () = rearm => {}
            () = &mut sleep, if next.is_some() => {}
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

impl ReqState {
    /// The pending table, locked.
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // The table stays consistent across a panic elsewhere: every change
        // to it is a few plain assignments.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One request, from its entry in the table to its outcome; see
    /// [`ReqSocket::request`].
    async fn send(self: &Arc<Self>, payload: Bytes, timeout: Duration) -> Result<Bytes, ReqError> {
        let started = Instant::now();
        // With a connection up (the usual case), the request is queued on it
        // right away, and its entry names it from the start: the reply may
        // come back before the frame is even reported queued.
        let conn = self.try_pick();
        let waker = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
        let key = self.register(
            deadline(started, timeout),
            conn.as_ref().map(|c| c.peer.conn_id),
            waker,
        );
        let mut guard = EntryGuard {
            state: self,
            key,
            armed: true,
        };
        let frame = self
            .codec
            .encode_parts(
                &Frame::Request {
                    id: key.id(),
                    payload,
                },
                self.core.opts.wire.get_compression(),
            )
            .map_err(ReqError::Encode)?;
        // Queuing finishes at once unless there is no connection or the
        // connection's queue is full; only then is the deadline watched here
        // (the sweeper reports it through the entry). The rare wait for a
        // connection lives in a box of its own, so that its state does not
        // bloat (and get copied with) every request's future.
        let mut waited = false;
        let unsent = match conn {
            Some(conn) => {
                let sent = {
                    let mut send = pin!(conn.send(frame));
                    poll_fn(|cx| {
                        if let Poll::Ready(sent) = send.as_mut().poll(cx) {
                            return Poll::Ready(Some(sent));
                        }
                        waited = true;
                        match self.poll_expired(key, cx) {
                            Poll::Ready(()) => Poll::Ready(None),
                            Poll::Pending => Poll::Pending,
                        }
                    })
                    .await
                };
                match sent {
                    Some(Ok(())) => None,
                    Some(Err(unsent)) => {
                        self.closing(&conn, key);
                        Some(unsent)
                    }
                    None => return Err(ReqError::Timeout),
                }
            }
            None => Some(frame),
        };
        if let Some(frame) = unsent {
            waited = true;
            let dispatch = Box::pin(self.dispatch(key, frame));
            let expired = poll_fn(|cx| self.poll_expired(key, cx));
            tokio::select! {
                biased;
                sent = dispatch => sent?,
                () = expired => return Err(ReqError::Timeout),
            }
        }
        self.core.counters.msgs_sent.fetch_add(1, Relaxed);
        // Only the outcome ends the wait: a queued request always hears
        // back, from its reply, its connection's task (which fails every
        // request queued on it when it ends, `disconnected`, and ends when
        // the socket shuts down) or the sweeper.
        //
        // Unless queuing had to wait, this is still the poll that registered
        // the entry, with the waker of this very poll: whoever ends the
        // request wakes this task (a wake while it runs polls it again). So
        // the first poll yields without looking, which saves a lock on a
        // table the reply cannot have reached yet in the usual case.
        let mut look = waited;
        let outcome = poll_fn(|cx| {
            if !std::mem::replace(&mut look, true) {
                return Poll::Pending;
            }
            self.poll_outcome(key, cx)
        })
        .await;
        // Collecting the outcome removed the entry.
        guard.armed = false;
        match outcome {
            Ok(reply) => {
                self.core.counters.latency.record(started.elapsed());
                Ok(reply)
            }
            Err(ReqError::Timeout) => Err(ReqError::Timeout),
            // A connection torn down by the socket's own shutdown reports
            // the shutdown, not a lost peer.
            Err(_) if self.core.is_closing() => Err(ReqError::Closed),
            Err(e) => Err(e),
        }
    }

    /// Puts a new request in the table, and makes sure the sweeper is
    /// running and armed for its deadline.
    fn register(self: &Arc<Self>, deadline: Instant, conn: Option<u64>, waker: Waker) -> Key {
        let (key, start, rearm) = {
            let mut pending = self.pending();
            let (key, rearm) = pending.requests.insert(deadline.into_std(), conn, waker);
            let start = !pending.sweeper;
            pending.sweeper = true;
            (key, start, rearm)
        };
        if start {
            self.core.tasks.spawn(sweep(self.clone()));
        } else if rearm {
            self.rearm.notify_one();
        }
        key
    }

    /// Queues the request's frame on the next connection to come up. A
    /// connection that turns out to be closing did not take the frame, so
    /// the next one is tried.
    async fn dispatch(&self, key: Key, mut frame: EncodedFrame) -> Result<(), ReqError> {
        loop {
            let conn = self.pick().await?;
            self.assign(key, Some(conn.peer.conn_id));
            match conn.send(frame).await {
                Ok(()) => return Ok(()),
                Err(unsent) => {
                    frame = unsent;
                    self.closing(&conn, key);
                }
            }
        }
    }

    /// `conn` refused the request's frame: it is closing, and the request
    /// was not queued, so another connection may take it. Forgets the
    /// connection now rather than when its task gets round to
    /// `disconnected` (until then `pick` would keep offering it and
    /// `dispatch` would spin), and the request's entry no longer names it.
    fn closing(&self, conn: &ConnHandle, key: Key) {
        self.forget(conn.peer.conn_id);
        self.assign(key, None);
    }

    /// Points the request's entry at `conn` (or at none). A loss reported
    /// for the previous connection is forgotten: the frame was not queued
    /// there.
    fn assign(&self, key: Key, conn: Option<u64>) {
        self.pending().requests.reassign(key, conn);
    }

    /// Ready once the sweeper has timed the request out.
    fn poll_expired(&self, key: Key, cx: &mut Context<'_>) -> Poll<()> {
        let mut pending = self.pending();
        match pending.requests.get(key) {
            Some(entry) if entry.timed_out() => Poll::Ready(()),
            Some(entry) => {
                register_waker(entry.waiter_mut(), cx);
                Poll::Pending
            }
            // Only the request itself removes its entry.
            None => Poll::Pending,
        }
    }

    /// Ready with the request's outcome, which removes its entry.
    fn poll_outcome(&self, key: Key, cx: &mut Context<'_>) -> Poll<Result<Bytes, ReqError>> {
        match self.pending().requests.poll_outcome(key) {
            pending::Poll::Ended(outcome) => Poll::Ready(outcome),
            pending::Poll::Waiting(waker) => {
                register_waker(waker, cx);
                Poll::Pending
            }
            // Only the request itself removes its entry, so this cannot
            // happen; were it to, ending the request beats hanging.
            pending::Poll::Gone => Poll::Ready(Err(ReqError::ConnectionLost)),
        }
    }

    /// The next connected peer, round-robin, if there is one.
    fn try_pick(&self) -> Option<Arc<ConnHandle>> {
        let conns = self.conns.lock().expect("conns lock");
        if conns.is_empty() {
            return None;
        }
        let i = self.next_conn.fetch_add(1, Relaxed) % conns.len();
        conns.get(i).cloned()
    }

    /// The next connected peer, round-robin; waits while there is none.
    async fn pick(&self) -> Result<Arc<ConnHandle>, ReqError> {
        loop {
            let ready = self.conn_ready.notified();
            if let Some(conn) = self.try_pick() {
                return Ok(conn);
            }
            if self.core.is_closing() {
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

/// Keeps `slot` holding the waker of the task polling now.
fn register_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
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
                // A reply for a request that already ended (timed out,
                // cancelled: its slot has a new generation now, even if
                // another request took it), or from another connection than
                // the one the request went to, is ignored.
                let waker = self
                    .pending()
                    .requests
                    .handle_reply(id, conn.peer.conn_id, payload);
                if let Some(waker) = waker {
                    waker.wake();
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
        // before this runs, and tries another connection, forgetting this
        // loss.)
        let mut woken = Vec::new();
        self.pending().requests.handle_conn_lost(id, &mut woken);
        woken.into_iter().for_each(Waker::wake);
    }
}

impl_common!(ReqSocket);
