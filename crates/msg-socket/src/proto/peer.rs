//! The PEER socket's state machine: which connection carries frames to each
//! identity (the newer connection of the same principal wins, see
//! [`identities`](crate::proto::identities)), and the one ordered queue of `Up`,
//! `Down` and frame events for the application, bounded for frames
//! (connections are held back while it is full: backpressure, never a
//! drop).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use msg_wire::{EncodedFrame, Frame, Reason, SocketType};

use crate::driver::conn::PeerInfo;
use crate::error::ConfigError;
use crate::options::SocketOptions;
use crate::peer::PeerEvent;
use crate::proto::conns::{ConnId, ConnTable, RecvLimits, SendLimits, fits};
use crate::proto::identities::{Identities, Up};
use crate::proto::{ProtoStats, Protocol, Violation, Wake};

/// Where a frame for a peer stands after [`PeerProto::send`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendStatus {
    /// Queued on the connection.
    Queued,
    /// The connection is at its mark: try again when room opens.
    Full,
    /// The connection is gone (or going).
    Gone,
}

/// The PEER socket's state machine: the type parameter of
/// [`PeerSocket`](crate::PeerSocket), opaque outside the crate.
#[derive(Debug)]
pub struct PeerProto {
    conns: ConnTable<()>,
    /// The connection frames to each identity go on.
    routes: Identities,
    /// Events for the application, each with its payload size (`None` for
    /// `Up` and `Down`, which never wait and do not count).
    events: VecDeque<(PeerEvent, Option<usize>)>,
    /// Frame events in `events`, and their payload bytes.
    frames: usize,
    bytes: usize,
    recv: RecvLimits,
    stats: ProtoStats,
    delivered: bool,
    readable: bool,
}

impl PeerProto {
    pub(crate) fn with_limits(send: SendLimits, recv: RecvLimits) -> Self {
        Self {
            conns: ConnTable::new(send),
            routes: Identities::default(),
            events: VecDeque::new(),
            frames: 0,
            bytes: 0,
            recv,
            stats: ProtoStats::default(),
            delivered: false,
            readable: false,
        }
    }

    /// The connection currently up for `identity`.
    pub(crate) fn route(&self, identity: &[u8]) -> Option<ConnId> {
        self.routes.route(identity)
    }

    /// The identities of the peers connected now.
    pub(crate) fn identities(&self) -> impl Iterator<Item = &Bytes> {
        self.routes.identities()
    }

    /// Queues `frame` (`msgs` of the frames in it carry a payload) on
    /// `conn` if it has room under its marks.
    pub(crate) fn send(&mut self, conn: ConnId, frame: &EncodedFrame, msgs: u64) -> SendStatus {
        let Some(c) = self.conns.get(conn) else {
            return SendStatus::Gone;
        };
        if c.is_closing() {
            return SendStatus::Gone;
        }
        if !fits(c, self.conns.limits(), frame.len()) {
            return SendStatus::Full;
        }
        self.conns.push(conn, frame.clone());
        self.stats.msgs_sent += msgs;
        SendStatus::Queued
    }

    /// The next event for the application.
    pub(crate) fn poll_event(&mut self) -> Option<PeerEvent> {
        let (event, size) = self.events.pop_front()?;
        if let Some(size) = size {
            self.frames -= 1;
            self.bytes -= size;
            self.readable = true;
        }
        Some(event)
    }

    /// Frame events waiting for the application.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn pending_frames(&self) -> usize {
        self.frames
    }

    fn push_control(&mut self, event: PeerEvent) {
        self.events.push_back((event, None));
        self.delivered = true;
    }
}

impl Protocol for PeerProto {
    type ConnState = ();
    type Delivery = ();

    const SOCKET_TYPE: SocketType = SocketType::Peer;

    fn check(options: &SocketOptions) -> Result<(), ConfigError> {
        if options.identity.as_ref().is_some_and(Bytes::is_empty) {
            return Err(ConfigError {
                what: "a PEER socket needs a non-empty identity",
            });
        }
        Ok(())
    }

    fn new(options: &SocketOptions) -> Self {
        Self::with_limits(options.send_limits(), options.recv_limits())
    }

    fn conns(&self) -> &ConnTable<()> {
        &self.conns
    }

    fn conns_mut(&mut self) -> &mut ConnTable<()> {
        &mut self.conns
    }

    /// Another principal connected with the identity: refused in the
    /// handshake.
    fn admit(&mut self, peer: &PeerInfo) -> Result<(), Violation> {
        self.routes.admit(&self.conns, peer)
    }

    /// The newer connection of the same principal wins: it replaces the
    /// old one, which is closed. One of another principal is closed itself
    /// (two handshakes for one identity at once, or a connection this
    /// socket made), and the application never hears of it.
    fn handle_conn_up(&mut self, _now: Instant, peer: Arc<PeerInfo>) {
        self.conns.insert(peer.clone(), ());
        if self.routes.conn_up(&mut self.conns, &peer) == Up::Refused {
            return;
        }
        self.push_control(PeerEvent::Up(peer.identity.clone(), (*peer).clone()));
    }

    fn is_refused(&self, conn: ConnId) -> bool {
        self.routes.is_refused(conn)
    }

    fn handle_conn_down(&mut self, _now: Instant, conn: ConnId) {
        let Some(gone) = self.conns.remove(conn) else {
            return;
        };
        let identity = &gone.peer.identity;
        if self.routes.conn_down(identity, conn) {
            self.push_control(PeerEvent::Down(identity.clone()));
        }
    }

    fn handle_frame(&mut self, _now: Instant, conn: ConnId, frame: Frame) -> Result<(), Violation> {
        if !matches!(frame, Frame::Data { .. } | Frame::Ack { .. }) {
            return Err((
                Reason::ProtocolError,
                "a PEER socket only accepts data and ack frames",
            ));
        }
        let Some(c) = self.conns.get(conn) else {
            return Ok(());
        };
        let identity = c.peer.identity.clone();
        if self.routes.route(&identity) != Some(conn) {
            // A replaced or refused connection on its way out: its frames
            // are as lost as those in flight when it was cut.
            return Ok(());
        }
        let size = frame.payload().map_or(0, Bytes::len);
        if frame.payload().is_some() {
            self.stats.msgs_received += 1;
        }
        self.frames += 1;
        self.bytes += size;
        self.events
            .push_back((PeerEvent::Frame(identity, frame), Some(size)));
        self.delivered = true;
        Ok(())
    }

    /// While the queue is full no connection is read: peers feel the
    /// backpressure through the transport. One frame larger than the whole
    /// bytes mark still goes into an empty queue.
    fn can_read(&self, _conn: ConnId, next: Option<usize>) -> bool {
        self.recv.admits(self.frames, self.bytes, next)
    }

    fn poll_wake(&mut self) -> Wake {
        Wake {
            deliveries: std::mem::take(&mut self.delivered),
            readable: std::mem::take(&mut self.readable),
            changed: false,
        }
    }

    fn stats(&self) -> ProtoStats {
        ProtoStats {
            identity_refusals: self.routes.refusals,
            ..self.stats
        }
    }
}
