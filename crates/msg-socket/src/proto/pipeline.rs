//! PUSH and PULL: a pipeline. A PUSH socket hands each message to one PULL
//! peer, round-robin over those with room; a PULL socket takes messages
//! from all its PUSH peers in turn.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use msg_wire::{Frame, Reason, SocketType};

use crate::driver::conn::PeerInfo;
use crate::message::{Encoded, Message};
use crate::options::SocketOptions;
use crate::proto::conns::{ConnId, ConnTable};
use crate::proto::inbox::FairInbox;
use crate::proto::outbox::{Offer, Outbox};
use crate::proto::{ProtoStats, Protocol, Violation, Wake};

/// The PUSH socket's state machine: the type parameter of
/// [`PushSocket`](crate::PushSocket), opaque outside the crate.
#[derive(Debug)]
pub struct PushProto {
    conns: ConnTable<()>,
    out: Outbox,
}

impl PushProto {
    /// Queues `message` on the next peer with room (see [`Outbox::send`]).
    pub(crate) fn send(&mut self, message: Encoded) -> Offer {
        self.out.send(&mut self.conns, message)
    }
}

impl Protocol for PushProto {
    type ConnState = ();
    type Delivery = ();

    const SOCKET_TYPE: SocketType = SocketType::Push;

    fn new(options: &SocketOptions) -> Self {
        let limits = options.send_limits();
        Self {
            conns: ConnTable::new(limits),
            out: Outbox::new(limits),
        }
    }

    fn conns(&self) -> &ConnTable<()> {
        &self.conns
    }

    fn conns_mut(&mut self) -> &mut ConnTable<()> {
        &mut self.conns
    }

    fn handle_conn_up(&mut self, _now: Instant, peer: Arc<PeerInfo>) {
        self.conns.insert(peer, ());
        self.out.flush(&mut self.conns);
    }

    fn handle_conn_down(&mut self, _now: Instant, conn: ConnId) {
        self.conns.remove(conn);
    }

    fn handle_frame(
        &mut self,
        _now: Instant,
        _conn: ConnId,
        _frame: Frame,
    ) -> Result<(), Violation> {
        Err((Reason::ProtocolError, "a PUSH socket receives nothing"))
    }

    fn handle_message(
        &mut self,
        _now: Instant,
        _conn: ConnId,
        _head: Vec<Bytes>,
        _last: Frame,
    ) -> Result<(), Violation> {
        Err((Reason::ProtocolError, "a PUSH socket receives nothing"))
    }

    fn parked(&self) -> (usize, usize) {
        self.out.parked()
    }

    fn poll_wake(&mut self) -> Wake {
        Wake::default()
    }

    fn stats(&self) -> ProtoStats {
        ProtoStats {
            msgs_sent: self.out.sent,
            ..ProtoStats::default()
        }
    }
}

/// The PULL socket's state machine: the type parameter of
/// [`PullSocket`](crate::PullSocket), opaque outside the crate.
#[derive(Debug)]
pub struct PullProto {
    conns: ConnTable<()>,
    inbox: FairInbox<Message>,
}

impl PullProto {
    /// The longest queue of one connection's messages for the application.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn longest_inbox(&self) -> usize {
        self.inbox.longest()
    }

    /// The next message, from the peer whose turn it is.
    pub(crate) fn take(&mut self) -> Option<Message> {
        self.inbox.pop().map(|(_, m)| m)
    }

    /// Messages waiting for the application.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.inbox.len()
    }
}

/// The message a one-way frame completes, with the parts before it; an
/// `Err` for any other frame.
pub(crate) fn one_way(
    head: Vec<Bytes>,
    last: Frame,
    who: &'static str,
) -> Result<Message, Violation> {
    match last {
        Frame::Message { payload } => Ok(Message::from_wire(head, payload)),
        _ => Err((Reason::ProtocolError, who)),
    }
}

impl Protocol for PullProto {
    type ConnState = ();
    type Delivery = Message;

    const SOCKET_TYPE: SocketType = SocketType::Pull;

    fn new(options: &SocketOptions) -> Self {
        Self {
            conns: ConnTable::new(options.send_limits()),
            inbox: FairInbox::new(options.recv_limits()),
        }
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

    /// Messages that arrived on the connection stay for the application.
    fn handle_conn_down(&mut self, _now: Instant, conn: ConnId) {
        self.conns.remove(conn);
        self.inbox.conn_down(conn);
    }

    fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: Frame) -> Result<(), Violation> {
        self.handle_message(now, conn, Vec::new(), frame)
    }

    fn handle_message(
        &mut self,
        _now: Instant,
        conn: ConnId,
        head: Vec<Bytes>,
        last: Frame,
    ) -> Result<(), Violation> {
        let message = one_way(head, last, "a PULL socket only takes messages")?;
        let size = message.size();
        self.inbox.push(conn, message, size);
        Ok(())
    }

    fn can_read(&self, conn: ConnId, next: Option<usize>) -> bool {
        self.inbox.admits(conn, next)
    }

    fn poll_wake(&mut self) -> Wake {
        Wake {
            deliveries: self.inbox.take_delivered(),
            readable: self.inbox.take_readable(),
            changed: false,
        }
    }

    fn stats(&self) -> ProtoStats {
        ProtoStats {
            msgs_received: self.inbox.received,
            ..ProtoStats::default()
        }
    }
}
