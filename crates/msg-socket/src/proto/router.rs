//! ROUTER: serves REQ and DEALER peers asynchronously. Every message comes
//! with the [`Route`] back to its sender; a message goes out only to a
//! peer that is connected now, and what cannot be routed is an error for
//! the caller, never a silent drop.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use msg_wire::{Frame, Reason, SocketType};

use crate::driver::conn::PeerInfo;
use crate::message::{Encoded, Message};
use crate::options::SocketOptions;
use crate::proto::conns::{ConnId, ConnTable, fits};
use crate::proto::identities::Identities;
use crate::proto::inbox::FairInbox;
use crate::proto::outbox::queue;
use crate::proto::{ProtoStats, Protocol, Violation, Wake};
use crate::router::Route;

/// What became of a message given to [`RouterProto::send_to`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RouteStatus {
    /// Queued on the peer's connection.
    Queued,
    /// The peer's connection is at its mark: try again when room opens.
    Full,
    /// No peer with this identity is connected.
    Unreachable,
    /// The peer is a REQ socket, which takes only replies to its requests,
    /// and the route is not one of a request.
    NotARequest,
    /// The peer is a REQ socket and the request's connection is gone (the
    /// requester was told its request was lost).
    Departed,
    /// The peer is a REQ socket and this request was answered already: it
    /// takes one reply per request.
    Answered,
}

/// Most unanswered requests the router keeps track of per REQ connection.
/// Past it, answers to that connection's requests are no longer checked
/// for being the first: a second answer would go out (and the REQ peer
/// would drop it) rather than the table growing without bound.
const MAX_UNANSWERED: usize = 65_536;

/// The requests a REQ peer's connection is waiting for answers to, so that
/// a second answer to one is an error rather than a reply the peer drops
/// (opaque outside the crate).
#[derive(Debug, Default)]
pub struct Unanswered {
    ids: std::collections::HashSet<u64>,
    /// More than [`MAX_UNANSWERED`] requests went unanswered at once: ids
    /// are no longer all known.
    overflowed: bool,
}

/// The ROUTER socket's state machine: the type parameter of
/// [`RouterSocket`](crate::RouterSocket), opaque outside the crate.
#[derive(Debug)]
pub struct RouterProto {
    conns: ConnTable<Unanswered>,
    /// The connection each identity's messages go on (the newer connection
    /// of the same principal wins, see
    /// [`identities`](crate::proto::identities)).
    routes: Identities,
    inbox: FairInbox<(Route, Message)>,
    sent: u64,
}

impl RouterProto {
    /// The longest queue of one connection's messages for the application.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn longest_inbox(&self) -> usize {
        self.inbox.longest()
    }

    /// Queues `message` for the peer `route` names, if it is connected and
    /// its connection has room. `message` was encoded as a reply to the
    /// route's request, or as a plain message when it has none.
    pub(crate) fn send_to(&mut self, route: &Route, message: &Encoded) -> RouteStatus {
        let Some(conn) = self.routes.route(route.identity()) else {
            return RouteStatus::Unreachable;
        };
        let Some(c) = self.conns.get(conn) else {
            return RouteStatus::Unreachable;
        };
        if c.peer.socket_type == SocketType::Req {
            // A REQ peer matches replies to requests by id, per connection:
            // anything else would be dropped at the other end.
            match route.request() {
                None => return RouteStatus::NotARequest,
                Some((from, _)) if from != conn => return RouteStatus::Departed,
                Some((_, id)) if !c.state.ids.contains(&id) && !c.state.overflowed => {
                    return RouteStatus::Answered;
                }
                Some(_) => {}
            }
        }
        if c.is_closing() {
            return RouteStatus::Unreachable;
        }
        if !fits(c, self.conns.limits(), message.len()) {
            return RouteStatus::Full;
        }
        if let (Some((_, id)), Some(c)) = (route.request(), self.conns.get_mut(conn)) {
            c.state.ids.remove(&id);
        }
        queue(&mut self.conns, conn, message.clone());
        self.sent += 1;
        RouteStatus::Queued
    }

    /// The next message and where it came from, from the peer whose turn
    /// it is.
    pub(crate) fn take(&mut self) -> Option<(Route, Message)> {
        self.inbox.pop().map(|(_, item)| item)
    }

    /// The identities of the peers connected now.
    pub(crate) fn identities(&self) -> impl Iterator<Item = &Bytes> {
        self.routes.identities()
    }
}

impl Protocol for RouterProto {
    type ConnState = Unanswered;
    type Delivery = (crate::router::Route, crate::message::Message);

    const SOCKET_TYPE: SocketType = SocketType::Router;

    fn new(options: &SocketOptions) -> Self {
        Self {
            conns: ConnTable::new(options.send_limits()),
            routes: Identities::default(),
            inbox: FairInbox::new(options.recv_limits()),
            sent: 0,
        }
    }

    fn conns(&self) -> &ConnTable<Unanswered> {
        &self.conns
    }

    fn conns_mut(&mut self) -> &mut ConnTable<Unanswered> {
        &mut self.conns
    }

    /// Another principal connected with the identity: refused in the
    /// handshake.
    fn admit(&mut self, peer: &PeerInfo) -> Result<(), Violation> {
        self.routes.admit(&self.conns, peer)
    }

    /// The newer connection of the same principal wins: it replaces the
    /// old one, which is closed. One of another principal is closed itself,
    /// and what it sends is dropped.
    fn handle_conn_up(&mut self, _now: Instant, peer: Arc<PeerInfo>) {
        self.conns.insert(peer.clone(), Unanswered::default());
        self.routes.conn_up(&mut self.conns, &peer);
    }

    fn is_refused(&self, conn: ConnId) -> bool {
        self.routes.is_refused(conn)
    }

    fn handle_conn_down(&mut self, _now: Instant, conn: ConnId) {
        self.inbox.conn_down(conn);
        let Some(gone) = self.conns.remove(conn) else {
            return;
        };
        self.routes.conn_down(&gone.peer.identity, conn);
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
        let Some(c) = self.conns.get_mut(conn) else {
            return Ok(());
        };
        if self.routes.is_refused(conn) {
            // Refused for another principal's identity, on its way out:
            // nothing it sends may pass for that principal's.
            return Ok(());
        }
        // Only a REQ peer needs its request's id back: it matches replies
        // to requests. A DEALER's request (it sends requests so that a REP
        // can answer it too) is a plain message, answered by identity.
        let from_req = c.peer.socket_type == SocketType::Req;
        let (request, payload) = match last {
            Frame::Request { id, payload } => (from_req.then_some((conn, id)), payload),
            Frame::Message { payload } => (None, payload),
            _ => {
                return Err((
                    Reason::ProtocolError,
                    "a ROUTER socket only takes requests and messages",
                ));
            }
        };
        if let Some((_, id)) = request {
            let unanswered = &mut c.state;
            if unanswered.ids.len() < MAX_UNANSWERED {
                unanswered.ids.insert(id);
            } else {
                unanswered.overflowed = true;
            }
        }
        let route = Route::new(c.peer.identity.clone(), request);
        let message = Message::from_wire(head, payload);
        let size = message.size();
        self.inbox.push(conn, (route, message), size);
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
            msgs_sent: self.sent,
            msgs_received: self.inbox.received,
            identity_refusals: self.routes.refusals,
            ..ProtoStats::default()
        }
    }
}
