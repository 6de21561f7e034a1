//! The shim between a pattern's state machine and the tasks around it.
//!
//! A socket's [`Protocol`] lives in one [`Shared`], behind one mutex, the
//! way quinn keeps a `proto::Connection` behind its `ConnectionRef`. Every
//! caller (the application's handle, a connection's reader or writer) takes
//! the lock, calls into the protocol, and before letting go acts on what
//! the call left behind: it wakes connection writers whose queue got a
//! frame, hands close requests to their connections, and collects the
//! application tasks to wake, which it wakes after the lock is released.
//!
//! No lock is held across an await, and no call into a protocol does I/O,
//! so the lock is held for a few hundred nanoseconds at a time.
//!
//! Lock poisoning: a protocol does not panic on anything a peer sends (its
//! fuzz target checks that), so a poisoned lock can only follow a bug; the
//! socket then goes on with the state as it is rather than panicking every
//! task that touches it. The same policy holds for every lock in the crate.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Waker;
use std::time::Instant;

use msg_wire::{EncodedFrame, Reason};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::driver::conn::PeerInfo;
use crate::driver::core::Core;
use crate::monitor::{SocketEvent, SocketStats};
use crate::proto::Protocol;
use crate::proto::conns::{ConnId, IdMap};
use crate::proto::identities::IDENTITY_IN_USE;

/// Locks `mutex`, going on with its state if a panic poisoned it (see the
/// module docs).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One socket's protocol and the wake-ups around it.
#[derive(Debug)]
pub(crate) struct Shared<P> {
    pub(crate) core: Arc<Core>,
    state: Mutex<State<P>>,
    /// This very value, for the timer task it starts.
    me: Weak<Shared<P>>,
    /// Tells the timer task that the protocol's next deadline moved earlier.
    rearm: Notify,
}

/// What the lock guards.
#[derive(Debug)]
pub(crate) struct State<P> {
    pub(crate) proto: P,
    /// The driver's side of each live connection.
    links: IdMap<Arc<Link>>,
    /// Application tasks waiting for a delivery.
    readers: Vec<Waker>,
    /// Application tasks waiting for room in a queue.
    room: Vec<Waker>,
    /// Connections whose reader waits for the pattern to take frames again.
    paused: Vec<ConnId>,
    /// Frames and bytes the writers gave up on because the socket closed,
    /// for [`CloseReport`](crate::CloseReport).
    undelivered: (usize, usize),
    /// Whether the timer task runs, and the deadline it sleeps until.
    timer: Option<Option<Instant>>,
    /// Connections the protocol refused as they came up (a repeated
    /// identity of another principal), until their task has ended.
    refused: Vec<ConnId>,
}

/// The driver's side of one connection: how to reach its task.
#[derive(Debug)]
pub(crate) struct Link {
    /// Frames were queued while the writer was parked.
    pub(crate) write: Notify,
    /// The protocol may accept frames from this connection again.
    pub(crate) read: Notify,
    /// Cancelled to end the connection (a child of the socket's token).
    pub(crate) closed: CancellationToken,
    /// Why the connection is being closed from this side, for the `Close`
    /// frame.
    reason: Mutex<Option<(Reason, String)>>,
}

impl Link {
    pub(crate) fn new(closed: CancellationToken) -> Self {
        Self {
            write: Notify::new(),
            read: Notify::new(),
            closed,
            reason: Mutex::new(None),
        }
    }

    /// Ends the connection from this side, with `code` and `text` for the
    /// peer (the first reason given wins).
    pub(crate) fn close(&self, code: Reason, text: String) {
        lock(&self.reason).get_or_insert((code, text));
        self.closed.cancel();
    }

    /// The reason given to [`close`](Self::close), if any.
    pub(crate) fn take_reason(&self) -> Option<(Reason, String)> {
        lock(&self.reason).take()
    }
}

/// What to do once the lock is released: application tasks to wake, the
/// timer task to start or re-arm.
#[derive(Default)]
pub(crate) struct Wakes {
    wakers: Vec<Waker>,
    start_timer: bool,
    rearm_timer: bool,
}

impl<P: Protocol> Shared<P> {
    pub(crate) fn new(core: Arc<Core>, proto: P) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            core,
            me: me.clone(),
            rearm: Notify::new(),
            state: Mutex::new(State {
                proto,
                links: IdMap::default(),
                readers: Vec::new(),
                room: Vec::new(),
                paused: Vec::new(),
                undelivered: (0, 0),
                timer: None,
                refused: Vec::new(),
            }),
        })
    }

    /// Calls `f` on the protocol, then does what the call left for the
    /// driver (see the module docs).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut P) -> R) -> R {
        self.with_state(|state| f(&mut state.proto))
    }

    /// Like [`with`](Self::with), with the whole state: for the handles'
    /// own waits, which register a waker in it.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State<P>) -> R) -> R {
        let mut wakes = Wakes::default();
        let result = {
            let mut state = lock(&self.state);
            let result = f(&mut state);
            state.settle(&self.core, &mut wakes);
            result
        };
        self.after(wakes);
        result
    }

    /// Does what [`State::settle`] left for after the lock.
    fn after(&self, wakes: Wakes) {
        wakes.wakers.into_iter().for_each(Waker::wake);
        if wakes.rearm_timer {
            self.rearm.notify_one();
        }
        if wakes.start_timer {
            self.start_timer();
        }
    }

    /// Starts the task that calls the protocol's `handle_timeout` when its
    /// deadline comes (within a runtime; there is none only while the socket
    /// is dropped outside one, and then no deadline matters).
    fn start_timer(&self) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() || self.core.is_closing() {
            lock(&self.state).timer = None;
            return;
        }
        self.core.tasks.spawn(run_timer(me));
    }

    /// A connection finished its handshake. If the protocol refuses it at
    /// once (a repeated identity of another principal, which got past the
    /// handshake's check or was never checked there: a connection this
    /// socket made), that is reported as in the handshake, and this returns
    /// `true`: the connection never counts as up.
    pub(crate) fn conn_up(&self, peer: Arc<PeerInfo>, link: Arc<Link>) -> bool {
        let refused = self.with_state(|state| {
            state.links.insert(peer.conn_id, link);
            state.proto.handle_conn_up(now(), peer.clone());
            let refused = state.proto.is_refused(peer.conn_id);
            // Either way the connect loop waits before dialling again.
            if refused || state.proto.is_occupied(peer.conn_id) {
                state.refused.push(peer.conn_id);
            }
            refused
        });
        if refused {
            self.core.emit(SocketEvent::IdentityRefused {
                peer: peer.addr.clone(),
                identity: peer.identity.clone(),
                reason: IDENTITY_IN_USE.to_owned(),
            });
        }
        refused
    }

    /// Whether the protocol refused connection `id` as it came up (a
    /// repeated identity, or a PAIR that has its peer); forgets it. For the
    /// task that ran the connection, once it has ended.
    pub(crate) fn take_refused(&self, id: ConnId) -> bool {
        let mut state = lock(&self.state);
        let before = state.refused.len();
        state.refused.retain(|&c| c != id);
        state.refused.len() != before
    }

    /// A connection is ending (its reader or writer stopped): it takes no
    /// new frames from now on, and what is queued on it will not be
    /// written.
    pub(crate) fn conn_closing(&self, id: ConnId) {
        let closing = self.core.is_closing();
        self.with_state(|state| {
            let (frames, bytes) = state.proto.conns_mut().closing(id);
            if closing {
                state.add_undelivered(frames, bytes);
            }
        });
    }

    /// A connection ended. When the socket is closing, whatever was still
    /// queued on it counts as undelivered.
    pub(crate) fn conn_down(&self, id: ConnId) {
        let closing = self.core.is_closing();
        self.with_state(|state| {
            if closing {
                let (frames, bytes) = state.proto.conns_mut().clear(id);
                state.add_undelivered(frames, bytes);
            }
            state.links.remove(&id);
            state.paused.retain(|&c| c != id);
            state.proto.handle_conn_down(now(), id);
        });
    }

    /// Frames and bytes queued on every connection and not yet written.
    /// Messages parked in the pattern, waiting for a connection, count too.
    pub(crate) fn queued(&self) -> (usize, usize) {
        let state = lock(&self.state);
        let (frames, bytes) = state.proto.conns().total();
        let (parked, parked_bytes) = state.proto.parked();
        (frames + parked, bytes + parked_bytes)
    }

    /// What the writers gave up on when the socket closed, and what was
    /// still parked in the pattern waiting for a connection.
    pub(crate) fn undelivered(&self) -> (usize, usize) {
        let state = lock(&self.state);
        let (parked, parked_bytes) = state.proto.parked();
        (
            state.undelivered.0 + parked,
            state.undelivered.1 + parked_bytes,
        )
    }

    /// The socket's counters: the driver's and the protocol's.
    pub(crate) fn stats(&self) -> SocketStats {
        let proto = lock(&self.state).proto.stats();
        let mut stats = self.core.counters.snapshot();
        stats.msgs_sent += proto.msgs_sent;
        stats.msgs_received += proto.msgs_received;
        stats.dropped_hwm += proto.dropped_hwm;
        stats.gaps += proto.gaps;
        stats.identity_refusals += proto.identity_refusals;
        stats
    }
}

impl<P: Protocol> State<P> {
    /// Acts on what a call into the protocol left behind: writers to wake,
    /// connections to close, application tasks to wake (collected in
    /// `wakes`, woken by the caller after the lock is released).
    fn settle(&mut self, core: &Core, wakes: &mut Wakes) {
        let Self {
            proto,
            links,
            readers,
            room,
            paused,
            ..
        } = self;
        let conns = proto.conns_mut();
        for id in conns.drain_wakes() {
            if let Some(link) = links.get(&id) {
                // A permit is stored if the writer is not waiting yet.
                link.write.notify_one();
            }
        }
        while let Some(close) = conns.poll_close() {
            if let Some(link) = links.get(&close.conn) {
                link.close(close.code, close.text);
            }
        }
        if conns.take_room() {
            wakes.wakers.append(room);
        }
        proto.drain_wakers(&mut wakes.wakers);
        if let Some(deadline) = proto.poll_timeout() {
            match self.timer {
                None => {
                    self.timer = Some(Some(deadline));
                    wakes.start_timer = true;
                }
                Some(armed) if armed.is_none_or(|armed| deadline < armed) => {
                    wakes.rearm_timer = true;
                }
                Some(_) => {}
            }
        }
        let wake = proto.poll_wake();
        if wake.readable && !paused.is_empty() {
            // Readers the pattern held back may go on.
            paused.retain(|&id| {
                if !proto.can_read(id, None) {
                    return true;
                }
                if let Some(link) = links.get(&id) {
                    link.read.notify_one();
                }
                false
            });
        }
        if wake.deliveries {
            wakes.wakers.append(readers);
        }
        if wake.changed {
            core.progress.notify_waiters();
        }
    }

    /// Registers the task of `waker` to be woken by the next delivery.
    /// Several tasks may wait; all are woken, and those that find nothing
    /// wait again.
    pub(crate) fn wait_for_delivery(&mut self, waker: &Waker) {
        if !self.readers.iter().any(|w| w.will_wake(waker)) {
            self.readers.push(waker.clone());
        }
    }

    /// Registers the task of `waker` to be woken when room opens in some
    /// connection's queue.
    pub(crate) fn wait_for_room(&mut self, waker: &Waker) {
        if !self.room.iter().any(|w| w.will_wake(waker)) {
            self.room.push(waker.clone());
        }
    }

    /// For the reader of `id`: whether the protocol takes its next frame
    /// (of `next` payload bytes; `None`: whether to read more at all); if
    /// not, the reader is woken through its link's `read` when it may try
    /// again.
    pub(crate) fn may_read(&mut self, id: ConnId, next: Option<usize>) -> bool {
        if self.proto.can_read(id, next) {
            return true;
        }
        if !self.paused.contains(&id) {
            self.paused.push(id);
        }
        false
    }

    fn add_undelivered(&mut self, frames: usize, bytes: usize) {
        self.undelivered.0 += frames;
        self.undelivered.1 += bytes;
    }
}

impl<P: Protocol> Shared<P> {
    /// For the writer of `id`: the next batch (see
    /// [`ConnTable::take_batch`](crate::proto::conns::ConnTable::take_batch)).
    pub(crate) fn take_batch(
        &self,
        id: ConnId,
        out: &mut Vec<EncodedFrame>,
        max_bytes: usize,
    ) -> bool {
        lock(&self.state)
            .proto
            .conns_mut()
            .take_batch(id, out, max_bytes)
    }

    /// For the writer of `id`: a batch is done. `undelivered` frames and
    /// bytes of it were given up because the socket is closing. Returns
    /// whether more is queued.
    pub(crate) fn written(
        &self,
        id: ConnId,
        frames: usize,
        bytes: usize,
        undelivered: (usize, usize),
    ) -> bool {
        let more = self.with_state(|state| {
            state.add_undelivered(undelivered.0, undelivered.1);
            state.proto.conns_mut().handle_written(id, frames, bytes)
        });
        if !more {
            // For `close`, which waits for every queue to empty.
            self.core.progress.notify_waiters();
        }
        more
    }
}

/// The tokio clock (paused in tests) as a std `Instant` for the protocol.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Marks the timer task stopped however it ends (the socket closing, or
/// its runtime shutting down and dropping it), so that the next deadline
/// starts another.
struct TimerRunning<'a, P: Protocol>(&'a Shared<P>);

impl<P: Protocol> Drop for TimerRunning<'_, P> {
    fn drop(&mut self) {
        lock(&self.0.state).timer = None;
    }
}

/// Calls the protocol's `handle_timeout` whenever its deadline comes, until
/// the socket closes. One task per socket, started with the first deadline:
/// one timer for all of a socket's deadlines, not one per request.
async fn run_timer<P: Protocol>(shared: Arc<Shared<P>>) {
    let _running = TimerRunning(&shared);
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    loop {
        let rearm = shared.rearm.notified();
        let next = shared.with_state(|state| {
            state.proto.handle_timeout(now());
            let next = state.proto.poll_timeout();
            state.timer = Some(next);
            next
        });
        if let Some(deadline) = next {
            sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
        }
        tokio::select! {
            biased;
            () = shared.core.cancel.cancelled() => return,
            () = rearm => {}
            () = &mut sleep, if next.is_some() => {}
        }
    }
}
