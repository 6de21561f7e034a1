//! The replier's state machine: requests from every connection in one
//! bounded queue for the application (connections are held back while it
//! is full: backpressure, never a drop), and each reply routed back to the
//! connection its request came from.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use msg_wire::{Frame, Reason, SocketType};

use crate::driver::conn::PeerInfo;
use crate::message::Encoded;
use crate::options::SocketOptions;
use crate::proto::conns::{ConnId, ConnTable, RecvLimits, SendLimits};
use crate::proto::{ProtoStats, Protocol, Violation, Wake};

/// A request taken from a connection, for the application.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) conn: ConnId,
    pub(crate) peer: Arc<PeerInfo>,
    pub(crate) id: u64,
    /// The parts before the last, for a multipart request (from a DEALER).
    pub(crate) head: Vec<Bytes>,
    pub(crate) payload: Bytes,
}

impl Incoming {
    /// Payload bytes of every part.
    pub(crate) fn size(&self) -> usize {
        self.head.iter().map(Bytes::len).sum::<usize>() + self.payload.len()
    }
}

/// Why a reply was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReplyStatus {
    /// Queued on the request's connection.
    Queued,
    /// The connection is at its mark: the reply, back, to offer again when
    /// room opens.
    Full(Encoded),
    /// The connection is gone.
    Gone,
}

/// The replier's state machine: the type parameter of
/// [`RepSocket`](crate::RepSocket), opaque outside the crate.
#[derive(Debug)]
pub struct RepProto {
    conns: ConnTable<()>,
    inbox: VecDeque<Incoming>,
    /// Payload bytes in `inbox`.
    inbox_bytes: usize,
    recv: RecvLimits,
    stats: ProtoStats,
    delivered: bool,
    /// Room opened in the inbox: held-back readers may go on.
    readable: bool,
}

impl RepProto {
    pub(crate) fn with_limits(send: SendLimits, recv: RecvLimits) -> Self {
        Self {
            conns: ConnTable::new(send),
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            recv,
            stats: ProtoStats::default(),
            delivered: false,
            readable: false,
        }
    }

    /// The next request for the application.
    pub(crate) fn poll_delivery(&mut self) -> Option<Incoming> {
        let incoming = self.inbox.pop_front()?;
        self.inbox_bytes -= incoming.size();
        // Room: a connection held back may go on (the driver asks only the
        // connections it holds back).
        self.readable = true;
        Some(incoming)
    }

    /// Queues `frame`, a reply, on `conn` if it has room under its marks.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn reply(&mut self, conn: ConnId, frame: &msg_wire::EncodedFrame) -> ReplyStatus {
        self.reply_message(
            conn,
            Encoded {
                head: Vec::new(),
                last: frame.clone(),
            },
        )
    }

    /// [`reply`](Self::reply) for a reply of one or more parts, moved in:
    /// the `Part` frames of every part but the last are queued together
    /// before the last.
    pub(crate) fn reply_message(&mut self, conn: ConnId, reply: Encoded) -> ReplyStatus {
        if self.conns.get(conn).is_none_or(|c| c.is_closing()) {
            return ReplyStatus::Gone;
        }
        if !self.conns.has_room(conn, reply.len()) {
            return ReplyStatus::Full(reply);
        }
        for frame in reply.into_frames() {
            self.conns.push(conn, frame);
        }
        self.stats.msgs_sent += 1;
        ReplyStatus::Queued
    }

    /// Requests waiting for the application.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn pending(&self) -> usize {
        self.inbox.len()
    }
}

impl Protocol for RepProto {
    type ConnState = ();
    type Delivery = ();

    const SOCKET_TYPE: SocketType = SocketType::Rep;

    fn new(options: &SocketOptions) -> Self {
        Self::with_limits(options.send_limits(), options.recv_limits())
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
        // Requests it sent stay queued: the application may still take
        // them (its reply then finds the connection gone).
        self.conns.remove(conn);
    }

    fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: Frame) -> Result<(), Violation> {
        self.handle_message(now, conn, Vec::new(), frame)
    }

    /// A multipart request (from a REQ or a DEALER) is delivered whole.
    fn handle_message(
        &mut self,
        _now: Instant,
        conn: ConnId,
        head: Vec<Bytes>,
        last: Frame,
    ) -> Result<(), Violation> {
        let Frame::Request { id, payload } = last else {
            return Err((Reason::ProtocolError, "a REP socket only accepts requests"));
        };
        let Some(c) = self.conns.get(conn) else {
            return Ok(());
        };
        let incoming = Incoming {
            conn,
            peer: c.peer.clone(),
            id,
            head,
            payload,
        };
        self.stats.msgs_received += 1;
        self.inbox_bytes += incoming.size();
        self.inbox.push_back(incoming);
        self.delivered = true;
        Ok(())
    }

    /// While the inbox is full no connection is read: clients feel the
    /// backpressure through the transport.
    fn can_read(&self, _conn: ConnId, next: Option<usize>) -> bool {
        self.recv.admits(self.inbox.len(), self.inbox_bytes, next)
    }

    fn poll_wake(&mut self) -> Wake {
        Wake {
            deliveries: std::mem::take(&mut self.delivered),
            readable: std::mem::take(&mut self.readable),
            changed: false,
        }
    }

    fn stats(&self) -> ProtoStats {
        self.stats
    }
}
