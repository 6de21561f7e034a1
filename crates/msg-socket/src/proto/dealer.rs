//! DEALER: requests without lock-step. Sends round-robin over peers with
//! room (as a PUSH does) and takes whatever comes back from all of them in
//! turn (as a PULL does); nothing pairs a reply with its request.

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

/// The DEALER socket's state machine: the type parameter of
/// [`DealerSocket`](crate::DealerSocket), opaque outside the crate.
#[derive(Debug)]
pub struct DealerProto {
    conns: ConnTable<()>,
    out: Outbox,
    inbox: FairInbox<Message>,
}

impl DealerProto {
    /// The longest queue of one connection's messages for the application.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn longest_inbox(&self) -> usize {
        self.inbox.longest()
    }

    /// Queues `message` (a request frame) on the next peer with room.
    pub(crate) fn send(&mut self, message: Encoded) -> Offer {
        self.out.send(&mut self.conns, message)
    }

    /// The next message, from the peer whose turn it is.
    pub(crate) fn take(&mut self) -> Option<Message> {
        self.inbox.pop().map(|(_, m)| m)
    }
}

impl Protocol for DealerProto {
    type ConnState = ();
    type Delivery = crate::message::Message;

    const SOCKET_TYPE: SocketType = SocketType::Dealer;

    fn new(options: &SocketOptions) -> Self {
        let limits = options.send_limits();
        Self {
            conns: ConnTable::new(limits),
            out: Outbox::new(limits),
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
        self.out.flush(&mut self.conns);
    }

    fn handle_conn_down(&mut self, _now: Instant, conn: ConnId) {
        self.conns.remove(conn);
        self.inbox.conn_down(conn);
    }

    fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: Frame) -> Result<(), Violation> {
        self.handle_message(now, conn, Vec::new(), frame)
    }

    /// Replies (from a REP or ROUTER), messages (from a ROUTER) and
    /// requests (from another DEALER) are all just messages here.
    fn handle_message(
        &mut self,
        _now: Instant,
        conn: ConnId,
        head: Vec<Bytes>,
        last: Frame,
    ) -> Result<(), Violation> {
        let (Frame::Reply { payload, .. }
        | Frame::Request { payload, .. }
        | Frame::Message { payload }) = last
        else {
            return Err((
                Reason::ProtocolError,
                "a DEALER socket only takes requests, replies and messages",
            ));
        };
        let message = Message::from_wire(head, payload);
        let size = message.size();
        self.inbox.push(conn, message, size);
        Ok(())
    }

    fn can_read(&self, conn: ConnId, next: Option<usize>) -> bool {
        self.inbox.admits(conn, next)
    }

    fn parked(&self) -> (usize, usize) {
        self.out.parked()
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
            msgs_sent: self.out.sent,
            msgs_received: self.inbox.received,
            ..ProtoStats::default()
        }
    }
}
