//! The requester's state machine: which connection takes each request
//! (round-robin over those with room), the pending-request table with its
//! deadlines, and how each request ends (its reply, the loss of its
//! connection, or its deadline).

use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use msg_wire::{EncodedFrame, Frame, Reason, SocketType};

use crate::driver::conn::PeerInfo;
use crate::message::Message;
use crate::options::SocketOptions;
use crate::proto::conns::{ConnId, ConnTable, SendLimits, fits};
use crate::proto::pending::{Key, Outcome, Status, Table};
use crate::proto::{ProtoStats, Protocol, Violation, Wake, reserve_header};

/// Where a request stands after [`ReqProto::dispatch`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// Queued on a connection: its outcome comes from there (or from its
    /// deadline).
    Queued,
    /// No connection has room (or none is up): try again when room opens.
    Waiting,
    /// The request ended before it could be queued (its deadline passed).
    Ended,
}

/// The requester's state machine: the type parameter of
/// [`ReqSocket`](crate::ReqSocket), opaque outside the crate.
#[derive(Debug)]
pub struct ReqProto {
    conns: ConnTable<()>,
    /// One entry per request not yet collected; the waker of the task
    /// waiting for it rides along.
    requests: Table<Waker>,
    /// Where the next round-robin choice starts, in the connection order.
    next: usize,
    /// Scratch space request headers are stamped into.
    headers: BytesMut,
    /// Tasks of requests that ended, for the driver to wake.
    woken: Vec<Waker>,
    stats: ProtoStats,
}

impl ReqProto {
    pub(crate) fn with_limits(limits: SendLimits) -> Self {
        Self {
            conns: ConnTable::new(limits),
            requests: Table::default(),
            next: 0,
            headers: BytesMut::new(),
            woken: Vec::new(),
            stats: ProtoStats::default(),
        }
    }

    /// A new request, due at `deadline`, whose task `waker` is woken when
    /// it ends. Not queued anywhere yet: see [`dispatch`](Self::dispatch).
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> Key {
        self.requests.insert(deadline, None, waker).0
    }

    /// Queues the request's frame (encoded with id 0; the request's id is
    /// stamped in here) on the next connection, round-robin, that has room
    /// under its marks. Connections at their mark are skipped.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn dispatch(&mut self, key: Key, frame: &EncodedFrame) -> Dispatch {
        self.dispatch_parts(key, &[], frame)
    }

    /// [`dispatch`](Self::dispatch) for a multipart request: the `Part`
    /// frames of every part but the last, queued together before `frame`.
    pub(crate) fn dispatch_parts(
        &mut self,
        key: Key,
        head: &[EncodedFrame],
        frame: &EncodedFrame,
    ) -> Dispatch {
        match self.requests.get(key) {
            Some(entry) if entry.timed_out() => return Dispatch::Ended,
            Some(_) => {}
            None => return Dispatch::Ended,
        }
        let order = self.conns.order();
        let n = order.len();
        let limits = self.conns.limits();
        let len = head.iter().map(EncodedFrame::len).sum::<usize>() + frame.len();
        let chosen = (0..n)
            .map(|i| order[(self.next + i) % n])
            .enumerate()
            .find(|&(_, id)| self.conns.get(id).is_some_and(|c| fits(c, limits, len)));
        let Some((offset, conn)) = chosen else {
            return Dispatch::Waiting;
        };
        reserve_header(&mut self.headers, frame.header().len());
        let Some(stamped) = frame.with_id(key.id(), &mut self.headers) else {
            // Not a request frame: a bug in the caller, not the peer's doing.
            debug_assert!(false, "dispatch takes request frames");
            return Dispatch::Waiting;
        };
        self.next = (self.next + offset + 1) % n;
        self.requests.reassign(key, Some(conn));
        for part in head {
            self.conns.push(conn, part.clone());
        }
        self.conns.push(conn, stamped);
        self.stats.msgs_sent += 1;
        Dispatch::Queued
    }

    /// The request's outcome once it ended (which frees its entry);
    /// otherwise `waker` becomes the one woken when it does.
    pub(crate) fn poll_outcome(&mut self, key: Key, waker: &Waker) -> Option<Outcome> {
        match self.requests.poll_outcome(key) {
            Status::Ended(outcome) => Some(outcome),
            Status::Waiting(slot) => {
                match slot {
                    Some(w) if w.will_wake(waker) => {}
                    _ => *slot = Some(waker.clone()),
                }
                None
            }
            // Only the request itself removes its entry, so this cannot
            // happen; were it to, ending the request beats hanging.
            Status::Gone => Some(Err(crate::error::ReqError::ConnectionLost)),
        }
    }

    /// The request's task gave up on it (its future was dropped): its entry
    /// goes, and a late reply finds nothing.
    pub(crate) fn cancel(&mut self, key: Key) {
        self.requests.remove(key);
    }
}

impl Protocol for ReqProto {
    type ConnState = ();
    type Delivery = ();

    const SOCKET_TYPE: SocketType = SocketType::Req;

    fn new(options: &SocketOptions) -> Self {
        Self::with_limits(options.send_limits())
    }

    fn conns(&self) -> &ConnTable<()> {
        &self.conns
    }

    fn conns_mut(&mut self) -> &mut ConnTable<()> {
        &mut self.conns
    }

    fn handle_conn_up(&mut self, _now: Instant, peer: Arc<PeerInfo>) {
        self.conns.insert(peer, ());
    }

    fn handle_conn_down(&mut self, _now: Instant, conn: ConnId) {
        self.conns.remove(conn);
        // Every request queued on this connection fails, written or not:
        // none is re-sent behind the caller's back.
        self.requests.handle_conn_lost(conn, &mut self.woken);
    }

    fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: Frame) -> Result<(), Violation> {
        self.handle_message(now, conn, Vec::new(), frame)
    }

    /// A reply of one or more parts, whole.
    fn handle_message(
        &mut self,
        _now: Instant,
        conn: ConnId,
        head: Vec<Bytes>,
        last: Frame,
    ) -> Result<(), Violation> {
        let Frame::Reply { id, payload } = last else {
            return Err((Reason::ProtocolError, "a REQ socket only accepts replies"));
        };
        self.stats.msgs_received += 1;
        // A reply for a request that already ended (timed out, cancelled:
        // its slot has a new generation now, even if another request took
        // it), or from another connection than the one the request went
        // to, is ignored.
        let reply = Message::from_wire(head, payload);
        if let Some(waker) = self.requests.handle_reply(id, conn, reply) {
            self.woken.push(waker);
        }
        Ok(())
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.requests.handle_timeout(now, &mut self.woken);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.requests.poll_timeout()
    }

    fn poll_wake(&mut self) -> Wake {
        Wake::default()
    }

    fn drain_wakers(&mut self, out: &mut Vec<Waker>) {
        out.append(&mut self.woken);
    }

    fn stats(&self) -> ProtoStats {
        self.stats
    }
}
