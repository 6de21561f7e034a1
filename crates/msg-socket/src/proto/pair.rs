//! PAIR: exactly one peer. A second connection (from either side) is
//! closed with [`Reason::Occupied`] while the first is up; messages wait
//! (up to the marks) while no peer is connected.

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
use crate::proto::pipeline::one_way;
use crate::proto::{ProtoStats, Protocol, Violation, Wake};

/// What a PAIR socket tells a second peer.
pub(crate) const OCCUPIED: &str = "a PAIR socket has its one peer already";

/// The PAIR socket's state machine: the type parameter of
/// [`PairSocket`](crate::PairSocket), opaque outside the crate.
#[derive(Debug)]
pub struct PairProto {
    conns: ConnTable<()>,
    /// The one connection, while it is up.
    peer: Option<ConnId>,
    out: Outbox,
    inbox: FairInbox<Message>,
    /// Connections refused because the socket had its peer.
    pub(crate) refused: u64,
}

impl PairProto {
    /// The longest queue of one connection's messages for the application.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn longest_inbox(&self) -> usize {
        self.inbox.longest()
    }

    /// Queues `message` for the peer, or parks it while there is none.
    pub(crate) fn send(&mut self, message: Encoded) -> Offer {
        self.out.send(&mut self.conns, message)
    }

    /// The next message from the peer.
    pub(crate) fn take(&mut self) -> Option<Message> {
        self.inbox.pop().map(|(_, m)| m)
    }
}

impl Protocol for PairProto {
    type ConnState = ();
    type Delivery = crate::message::Message;

    const SOCKET_TYPE: SocketType = SocketType::Pair;

    fn new(options: &SocketOptions) -> Self {
        let limits = options.send_limits();
        Self {
            conns: ConnTable::new(limits),
            peer: None,
            out: Outbox::new(limits),
            inbox: FairInbox::new(options.recv_limits()),
            refused: 0,
        }
    }

    fn conns(&self) -> &ConnTable<()> {
        &self.conns
    }

    fn conns_mut(&mut self) -> &mut ConnTable<()> {
        &mut self.conns
    }

    /// While the peer is up a server refuses any other in the handshake, so
    /// that the other side never has a live connection to queue on.
    fn admit(&mut self, _peer: &PeerInfo) -> Result<(), Violation> {
        if self.peer.is_some() {
            self.refused += 1;
            return Err((Reason::Occupied, OCCUPIED));
        }
        Ok(())
    }

    /// The first connection is the peer; any other (two handshakes that
    /// passed [`admit`](Protocol::admit) together, or a connection this
    /// socket made) is closed with a reason, and takes nothing meanwhile.
    fn handle_conn_up(&mut self, _now: Instant, peer: Arc<PeerInfo>) {
        let id = peer.conn_id;
        self.conns.insert(peer, ());
        if self.peer.is_some() {
            self.refused += 1;
            tracing::info!(conn = id, "refused a second peer: {OCCUPIED}");
            self.conns.close(id, Reason::Occupied, OCCUPIED, false);
            return;
        }
        self.peer = Some(id);
        self.out.flush(&mut self.conns);
    }

    /// Any connection but the peer was closed as it came up.
    fn is_occupied(&self, conn: ConnId) -> bool {
        self.peer.is_some_and(|peer| peer != conn)
    }

    fn handle_conn_down(&mut self, _now: Instant, conn: ConnId) {
        self.conns.remove(conn);
        self.inbox.conn_down(conn);
        if self.peer == Some(conn) {
            self.peer = None;
        }
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
        let message = one_way(head, last, "a PAIR socket only takes messages")?;
        if self.peer != Some(conn) {
            // A refused connection on its way out.
            return Ok(());
        }
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
