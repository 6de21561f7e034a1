//! An N-peer harness for the pattern state machines, after quinn-proto's
//! `tests/util.rs` and msg-reliable's `proto/tests/util.rs`: any number of
//! protocols of any pattern, joined by simulated connections, on a virtual
//! clock, with no socket and no task.
//!
//! The harness plays the driver: it reports connections up and down, takes
//! each connection's queue a batch at a time the way a writer does, carries
//! the bytes over the link (encoded and decoded by the real frame codec, so
//! the wire format is exercised too) and feeds them to the other side,
//! calls `handle_timeout` when a protocol's deadline comes, and closes a
//! connection when a protocol asks for it or refuses a frame.
//!
//! A link can add latency in each direction, be stalled in one direction
//! (the receiver stops reading: frames pile up in the sender's queue), and
//! be cut (frames in flight are lost, both sides see the connection go
//! down). Connection events can be delivered in either order.

// The fuzz targets (built without `test`) use only part of the harness.
#![cfg_attr(not(test), allow(dead_code))]

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msg_transport::PeerAddr;
use msg_wire::{EncodedFrame, Frame, FrameCodec, Reason, SocketType};

use crate::auth::Principal;
use crate::driver::conn::PeerInfo;
use crate::proto::conns::ConnId;
use crate::proto::{Protocol, Violation};

/// Connection ids unique across harnesses running in parallel tests.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A node's index in the harness.
pub(crate) type NodeId = usize;

/// A link's index in the harness.
pub(crate) type LinkId = usize;

/// The part of [`Protocol`] the harness drives, object-safe so that nodes
/// of different patterns live side by side.
pub(crate) trait Node: Any {
    fn conn_up(&mut self, now: Instant, peer: Arc<PeerInfo>);
    fn conn_down(&mut self, now: Instant, conn: ConnId);
    fn frame(&mut self, now: Instant, conn: ConnId, frame: Frame) -> Result<(), Violation>;
    fn message(
        &mut self,
        now: Instant,
        conn: ConnId,
        head: Vec<Bytes>,
        last: Frame,
    ) -> Result<(), Violation>;
    fn can_read(&self, conn: ConnId, next: Option<usize>) -> bool;
    fn timeout(&mut self, now: Instant);
    fn next_timeout(&self) -> Option<Instant>;
    /// Takes the connection's whole queue and reports it written.
    fn drain(&mut self, conn: ConnId) -> Vec<EncodedFrame>;
    fn closes(&mut self) -> Vec<(ConnId, Reason, String)>;
    fn socket_type(&self) -> SocketType;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<P: Protocol> Node for P {
    fn conn_up(&mut self, now: Instant, peer: Arc<PeerInfo>) {
        self.handle_conn_up(now, peer);
    }

    fn conn_down(&mut self, now: Instant, conn: ConnId) {
        self.handle_conn_down(now, conn);
    }

    fn frame(&mut self, now: Instant, conn: ConnId, frame: Frame) -> Result<(), Violation> {
        self.handle_frame(now, conn, frame)
    }

    fn message(
        &mut self,
        now: Instant,
        conn: ConnId,
        head: Vec<Bytes>,
        last: Frame,
    ) -> Result<(), Violation> {
        self.handle_message(now, conn, head, last)
    }

    fn can_read(&self, conn: ConnId, next: Option<usize>) -> bool {
        Protocol::can_read(self, conn, next)
    }

    fn timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }

    fn drain(&mut self, conn: ConnId) -> Vec<EncodedFrame> {
        let mut out = Vec::new();
        let conns = self.conns_mut();
        if conns.take_batch(conn, &mut out, usize::MAX) {
            let bytes = out.iter().map(EncodedFrame::len).sum();
            conns.handle_written(conn, out.len(), bytes);
        }
        out
    }

    fn closes(&mut self) -> Vec<(ConnId, Reason, String)> {
        let mut out = Vec::new();
        while let Some(c) = self.conns_mut().poll_close() {
            out.push((c.conn, c.code, c.text));
        }
        out
    }

    fn socket_type(&self) -> SocketType {
        P::SOCKET_TYPE
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// One direction of a link.
#[derive(Debug)]
struct Direction {
    /// The node writing, and its id for the connection.
    from: (NodeId, ConnId),
    /// The node reading, and its id for the connection.
    to: (NodeId, ConnId),
    latency: Duration,
    /// The reader does not read: nothing leaves the writer's queue.
    stalled: bool,
    /// Bytes on their way, with when they arrive.
    in_flight: VecDeque<(Instant, Bytes)>,
    /// The reader's buffer and decoder, and a frame decoded but not yet
    /// taken (the reader's protocol holds it back).
    buf: BytesMut,
    held: Option<(Frame, Vec<Bytes>)>,
    codec: FrameCodec,
    /// The earlier parts of a multipart message still arriving.
    parts: Vec<Bytes>,
}

/// A simulated connection between two nodes.
#[derive(Debug)]
struct Link {
    /// `dirs[0]` carries the client's frames, `dirs[1]` the server's.
    dirs: [Direction; 2],
    up: bool,
}

/// Why the harness closed a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Closed {
    pub(crate) link: LinkId,
    /// The node that closed it.
    pub(crate) by: NodeId,
    pub(crate) code: Reason,
    pub(crate) text: String,
}

/// Nodes, links and a virtual clock.
pub(crate) struct Harness {
    pub(crate) now: Instant,
    nodes: Vec<Box<dyn Node>>,
    links: Vec<Link>,
    /// Every connection the harness closed, in order.
    pub(crate) closed: Vec<Closed>,
    /// Who each node authenticates as on its next connections (anonymous
    /// unless set).
    principals: HashMap<NodeId, Principal>,
}

impl Harness {
    pub(crate) fn new() -> Self {
        Self {
            now: Instant::now(),
            nodes: Vec::new(),
            links: Vec::new(),
            closed: Vec::new(),
            principals: HashMap::new(),
        }
    }

    /// Node `node` authenticates as `principal` on the connections made
    /// from now on.
    pub(crate) fn set_principal(&mut self, node: NodeId, principal: Principal) {
        self.principals.insert(node, principal);
    }

    /// Node `node` as a peer on a connection about to be made, as the
    /// server's handshake would admit it.
    pub(crate) fn candidate(&self, node: NodeId) -> PeerInfo {
        self.peer_info(0, node)
    }

    /// Node `node` as its peer sees it on the connection the peer calls
    /// `conn`.
    fn peer_info(&self, conn: ConnId, node: NodeId) -> PeerInfo {
        let mut info = (*peer(conn, node, self.nodes[node].socket_type())).clone();
        if let Some(principal) = self.principals.get(&node) {
            info.principal = principal.clone();
        }
        info
    }

    /// Adds a node; returns its id.
    pub(crate) fn add<P: Protocol>(&mut self, proto: P) -> NodeId {
        self.nodes.push(Box::new(proto));
        self.nodes.len() - 1
    }

    /// The protocol of node `id`.
    ///
    /// # Panics
    ///
    /// If the node is not a `P`.
    pub(crate) fn node<P: Protocol>(&mut self, id: NodeId) -> &mut P {
        self.nodes[id]
            .as_any_mut()
            .downcast_mut::<P>()
            .expect("node of that pattern")
    }

    /// Connects `client` to `server`: both see the connection up, the
    /// client first.
    pub(crate) fn connect(&mut self, client: NodeId, server: NodeId) -> LinkId {
        self.connect_ordered(client, server, false)
    }

    /// Connects `client` to `server`; with `server_first` the server sees
    /// the connection up before the client does (and may queue frames on it
    /// first).
    pub(crate) fn connect_ordered(
        &mut self,
        client: NodeId,
        server: NodeId,
        server_first: bool,
    ) -> LinkId {
        let link = self.links.len();
        let c = NEXT_CONN.fetch_add(2, Relaxed);
        let s = c + 1;
        let dir = |from, to| Direction {
            from,
            to,
            latency: Duration::ZERO,
            stalled: false,
            in_flight: VecDeque::new(),
            buf: BytesMut::new(),
            held: None,
            parts: Vec::new(),
            codec: FrameCodec::new(),
        };
        self.links.push(Link {
            dirs: [dir((client, c), (server, s)), dir((server, s), (client, c))],
            up: true,
        });
        let now = self.now;
        let client_peer = Arc::new(self.peer_info(c, server));
        let server_peer = Arc::new(self.peer_info(s, client));
        if server_first {
            self.nodes[server].conn_up(now, server_peer);
            self.nodes[client].conn_up(now, client_peer);
        } else {
            self.nodes[client].conn_up(now, client_peer);
            self.nodes[server].conn_up(now, server_peer);
        }
        link
    }

    /// The connection id `node` has for `link`.
    pub(crate) fn conn_of(&self, link: LinkId, node: NodeId) -> ConnId {
        let l = &self.links[link];
        if l.dirs[0].from.0 == node {
            l.dirs[0].from.1
        } else {
            l.dirs[1].from.1
        }
    }

    /// The connection id `node` has for `link`, if `node` is one of its
    /// ends.
    pub(crate) fn conn_on(&self, link: LinkId, node: NodeId) -> Option<ConnId> {
        self.links[link]
            .dirs
            .iter()
            .find(|d| d.from.0 == node)
            .map(|d| d.from.1)
    }

    /// Sets the latency of both directions of `link`.
    pub(crate) fn set_latency(&mut self, link: LinkId, latency: Duration) {
        for d in &mut self.links[link].dirs {
            d.latency = latency;
        }
    }

    /// Stops (or restarts) `reader` reading from `link`: what the other side
    /// queues for it stays in that side's queue.
    pub(crate) fn stall(&mut self, link: LinkId, reader: NodeId, stalled: bool) {
        for d in &mut self.links[link].dirs {
            if d.to.0 == reader {
                d.stalled = stalled;
            }
        }
    }

    /// Cuts `link`: frames in flight are lost, both sides see it go down.
    pub(crate) fn cut(&mut self, link: LinkId) {
        let l = &mut self.links[link];
        if !std::mem::replace(&mut l.up, false) {
            return;
        }
        let ends = [l.dirs[0].from, l.dirs[1].from];
        for d in &mut l.dirs {
            d.in_flight.clear();
        }
        let now = self.now;
        for (node, conn) in ends {
            self.nodes[node].conn_down(now, conn);
        }
    }

    /// Whether `link` is up.
    pub(crate) fn is_up(&self, link: LinkId) -> bool {
        self.links[link].up
    }

    /// Moves everything that can move at the current time: writers drain,
    /// bytes that have arrived are decoded and fed, protocols' closes and
    /// violations end their connections. Returns whether anything moved.
    pub(crate) fn step(&mut self) -> bool {
        let mut moved = false;
        let now = self.now;
        for link in 0..self.links.len() {
            if !self.links[link].up {
                continue;
            }
            for dir in 0..2 {
                let d = &self.links[link].dirs[dir];
                if d.stalled {
                    continue;
                }
                let (from, conn) = d.from;
                let latency = d.latency;
                let frames = self.nodes[from].drain(conn);
                if !frames.is_empty() {
                    moved = true;
                    let mut bytes = BytesMut::new();
                    for f in &frames {
                        bytes.extend_from_slice(f.header());
                        bytes.extend_from_slice(f.payload());
                    }
                    self.links[link].dirs[dir]
                        .in_flight
                        .push_back((now + latency, bytes.freeze()));
                }
                moved |= self.deliver(link, dir);
                if !self.links[link].up {
                    break;
                }
            }
        }
        moved |= self.handle_closes();
        for node in &mut self.nodes {
            if node.next_timeout().is_some_and(|t| t <= now) {
                node.timeout(now);
                moved = true;
            }
        }
        moved
    }

    /// Feeds the frames of `link`'s direction `dir` that have arrived.
    fn deliver(&mut self, link: LinkId, dir: usize) -> bool {
        let now = self.now;
        let mut moved = false;
        loop {
            let d = &mut self.links[link].dirs[dir];
            if d.stalled || !self.links[link].up {
                return moved;
            }
            let d = &mut self.links[link].dirs[dir];
            while d.in_flight.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, bytes)) = d.in_flight.pop_front() {
                    d.buf.extend_from_slice(&bytes);
                }
            }
            let (to, conn) = d.to;
            let (frame, head) = match d.held.take() {
                Some(held) => held,
                None => match d.codec.decode(&mut d.buf) {
                    Ok(Some(Frame::Part { payload })) => {
                        // Parts wait for the frame that completes their
                        // message, as the driver's reader keeps them.
                        d.parts.push(payload);
                        continue;
                    }
                    Ok(Some(frame)) => (frame, std::mem::take(&mut d.parts)),
                    Ok(None) => return moved,
                    Err(e) => panic!("the harness carries only valid frames: {e}"),
                },
            };
            // Backpressure, as the driver applies it: a frame the protocol
            // does not take yet waits, and so does everything behind it.
            let len =
                head.iter().map(Bytes::len).sum::<usize>() + frame.payload().map_or(0, Bytes::len);
            if !self.nodes[to].can_read(conn, Some(len)) {
                self.links[link].dirs[dir].held = Some((frame, head));
                return moved;
            }
            moved = true;
            let fed = if head.is_empty() {
                self.nodes[to].frame(now, conn, frame)
            } else {
                self.nodes[to].message(now, conn, head, frame)
            };
            if let Err((code, text)) = fed {
                self.closed.push(Closed {
                    link,
                    by: to,
                    code,
                    text: text.to_owned(),
                });
                self.cut(link);
                return moved;
            }
        }
    }

    /// Closes the connections protocols asked to close.
    fn handle_closes(&mut self) -> bool {
        let mut moved = false;
        for node in 0..self.nodes.len() {
            for (conn, code, text) in self.nodes[node].closes() {
                moved = true;
                let link = self
                    .links
                    .iter()
                    .position(|l| l.up && l.dirs.iter().any(|d| d.from == (node, conn)));
                if let Some(link) = link {
                    self.closed.push(Closed {
                        link,
                        by: node,
                        code,
                        text,
                    });
                    self.cut(link);
                }
            }
        }
        moved
    }

    /// Steps until nothing moves at the current time.
    pub(crate) fn settle(&mut self) {
        let mut rounds = 0;
        while self.step() {
            rounds += 1;
            assert!(rounds < 100_000, "the harness does not settle");
        }
    }

    /// Runs for `limit` of virtual time, advancing the clock to each next
    /// arrival or deadline on the way; ends with the clock `limit` later.
    pub(crate) fn run_for(&mut self, limit: Duration) {
        let end = self.now + limit;
        loop {
            self.settle();
            let next_arrival = self.next_arrival();
            let next_timeout = self.nodes.iter().filter_map(|n| n.next_timeout()).min();
            let next = [next_arrival, next_timeout].into_iter().flatten().min();
            match next {
                Some(t) if t > self.now && t <= end => self.now = t,
                _ => {
                    self.now = self.now.max(end);
                    self.settle();
                    return;
                }
            }
        }
    }

    /// Runs until every frame in flight has arrived and nothing more moves,
    /// advancing the clock to each arrival but to no protocol deadline.
    pub(crate) fn run(&mut self) {
        for _ in 0..100_000 {
            self.settle();
            match self.next_arrival() {
                Some(t) if t > self.now => self.now = t,
                _ => return,
            }
        }
        panic!("the harness does not come to rest");
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.links
            .iter()
            .filter(|l| l.up)
            .flat_map(|l| l.dirs.iter())
            .filter(|d| !d.stalled)
            .filter_map(|d| d.in_flight.front().map(|(at, _)| *at))
            .min()
    }

    /// Moves the clock by `by` and runs what falls due.
    pub(crate) fn advance(&mut self, by: Duration) {
        self.run_for(by);
    }
}

/// Node `node`, of type `socket_type`, as its peer sees it on the
/// connection the peer calls `conn`.
pub(crate) fn peer(conn: ConnId, node: NodeId, socket_type: SocketType) -> Arc<PeerInfo> {
    Arc::new(PeerInfo {
        identity: Bytes::from(format!("node-{node}")),
        addr: PeerAddr::Inproc {
            name: format!("harness-{node}"),
            conn_id: conn,
        },
        socket_type,
        conn_id: conn,
        certificates: None,
        principal: Default::default(),
    })
}
