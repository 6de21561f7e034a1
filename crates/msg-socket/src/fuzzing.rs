//! Entry points for the fuzz targets in `fuzz/` (compiled only with
//! `--cfg fuzzing`, which cargo-fuzz sets, and in this crate's tests).
//!
//! Each function runs one pattern's state machines on the socket-free
//! harness through a sequence of operations read from `data`: connections
//! coming, going and stalling, application calls, valid and invalid frames
//! from peers, and time passing. It panics when an invariant breaks:
//!
//! - nothing panics inside a state machine, whatever a peer sends;
//! - memory stays within the configured marks: a queue for the
//!   application never holds more than its receive mark, a connection's
//!   queue of data frames never more than its send mark;
//! - Req/Rep: every request ends exactly once (reply, deadline or lost
//!   connection), and once time has passed every deadline, every request
//!   has ended;
//! - Pub/Sub: on each connection a subscriber's deliveries come in
//!   strictly increasing sequence order;
//! - PEER: for each identity the application sees `Up` before any frame,
//!   frames only while up, and `Down` only after `Up`.
//! - Push/Pull, Dealer/Router/Rep, Pair: a message the application sent
//!   arrives whole (every part, in place) or not at all, and at most once;
//!   a connection's queue never holds more than its send mark plus the
//!   parts of the one message that crossed it, nor the socket's parking
//!   queue; no connection's share of an inbox passes its receive mark.

use std::collections::HashMap;
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use msg_wire::{Compression, EncodedFrame, Frame, FrameCodec, SocketType};

use crate::SocketOptions;
use crate::auth::Principal;
use crate::message::{Encoded, Message};
use crate::peer::PeerEvent;
use crate::proto::Protocol;
use crate::proto::dealer::DealerProto;
use crate::proto::harness::{self, Harness, LinkId, NodeId};
use crate::proto::pair::PairProto;
use crate::proto::peer::PeerProto;
use crate::proto::pending::Key;
use crate::proto::pipeline::{PullProto, PushProto};
use crate::proto::publish::PubProto;
use crate::proto::rep::RepProto;
use crate::proto::req::{Dispatch, ReqProto};
use crate::proto::router::RouterProto;
use crate::proto::subscribe::SubProto;
use crate::router::Route;

/// The marks every fuzzed socket runs with: small, so they are reached.
const SEND_HWM: usize = 4;
const RECV_HWM: usize = 3;

/// Most parts before the last in a fuzzed message, sent or injected.
const MAX_HEAD: usize = 2;

/// A connection's queue may pass its mark by the parts of the one message
/// that crossed it.
const SEND_BOUND: usize = SEND_HWM + MAX_HEAD;

/// First byte of every part of a message the application sends.
const OURS: u8 = 0xA5;

/// Most links a run keeps (older ones are cut first).
const MAX_LINKS: usize = 6;

/// Reads operations from the fuzzer's bytes; every read past the end is 0.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One of `0..n` (`n > 0`).
    fn pick(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |v, _| (v << 8) | u64::from(self.byte()))
    }

    /// Bytes a peer might send (never starting with [`OURS`], so that no
    /// injected message passes for one the application sent).
    fn payload(&mut self) -> Bytes {
        let len = self.pick(24);
        let mut bytes: Vec<u8> = (0..len).map(|_| self.byte()).collect();
        if bytes.first() == Some(&OURS) {
            bytes[0] = !OURS;
        }
        Bytes::from(bytes)
    }

    /// The parts a peer might send before a message's last frame: none up
    /// to a few.
    fn head(&mut self) -> Vec<Bytes> {
        (0..self.pick(MAX_HEAD + 1))
            .map(|_| self.payload())
            .collect()
    }

    /// A frame a peer might send: any kind, any numbers.
    fn frame(&mut self) -> Frame {
        match self.pick(11) {
            9 => Frame::Message {
                payload: self.payload(),
            },
            10 => Frame::Part {
                payload: self.payload(),
            },
            0 => Frame::Request {
                id: self.u64(),
                payload: self.payload(),
            },
            1 => Frame::Reply {
                id: self.u64(),
                payload: self.payload(),
            },
            2 => Frame::Publish {
                topic: self.topic(),
                seq: self.u64(),
                payload: self.payload(),
            },
            3 => Frame::Subscribe {
                topic: self.topic(),
            },
            4 => Frame::Unsubscribe {
                topic: self.topic(),
            },
            5 => Frame::Data {
                seq: self.u64(),
                payload: self.payload(),
            },
            6 => Frame::Ack { seq: self.u64() },
            7 => Frame::Ping { nonce: self.u64() },
            _ => Frame::Pong { nonce: self.u64() },
        }
    }

    fn topic(&mut self) -> Bytes {
        const TOPICS: [&[u8]; 5] = [b"", b"a", b"ab", b"b", b"abc"];
        Bytes::from_static(TOPICS[self.pick(TOPICS.len())])
    }

    fn duration(&mut self) -> Duration {
        Duration::from_millis(u64::from(self.byte()) * 20)
    }
}

fn options() -> SocketOptions {
    let mut o = SocketOptions::new();
    o.send_hwm(SEND_HWM).recv_hwm(RECV_HWM);
    o
}

fn encode(frame: &Frame) -> EncodedFrame {
    FrameCodec::new()
        .encode_parts(frame, Compression::None)
        .expect("small frames encode")
}

/// The links of a run, with the connect, cut and stall operations every
/// pattern's run shares.
struct Links {
    h: Harness,
    links: Vec<LinkId>,
}

impl Links {
    fn connect(&mut self, client: NodeId, server: NodeId, server_first: bool) {
        if self.links.len() >= MAX_LINKS {
            let oldest = self.links.remove(0);
            self.h.cut(oldest);
        }
        let link = self.h.connect_ordered(client, server, server_first);
        self.links.push(link);
    }

    fn pick(&mut self, input: &mut Input<'_>) -> Option<LinkId> {
        self.links.retain(|&l| self.h.is_up(l));
        if self.links.is_empty() {
            return None;
        }
        Some(self.links[input.pick(self.links.len())])
    }

    fn cut(&mut self, input: &mut Input<'_>) {
        if let Some(link) = self.pick(input) {
            self.h.cut(link);
        }
    }

    fn stall(&mut self, input: &mut Input<'_>, nodes: &[NodeId]) {
        let node = nodes[input.pick(nodes.len())];
        let stalled = input.byte() % 2 == 0;
        if let Some(link) = self.pick(input) {
            self.h.stall(link, node, stalled);
        }
    }

    /// Feeds a multipart message to `node` as if it came from its peer on
    /// `link` (`head` empty: a single frame); a refused one ends the
    /// connection, as the driver does.
    fn inject_message<P: Protocol>(
        &mut self,
        link: LinkId,
        node: NodeId,
        head: Vec<Bytes>,
        last: Frame,
    ) {
        if head.is_empty() {
            return self.inject::<P>(link, node, last);
        }
        let now = self.h.now;
        let Some(conn) = self.h.conn_on(link, node) else {
            return;
        };
        let proto = self.h.node::<P>(node);
        let len = head.iter().map(Bytes::len).sum::<usize>() + last.payload().map_or(0, Bytes::len);
        if !proto.can_read(conn, Some(len)) {
            return;
        }
        if proto.handle_message(now, conn, head, last).is_err() {
            self.h.cut(link);
        }
    }

    /// Feeds `frame` to `node` as if it came from its peer on `link`; a
    /// refused frame ends the connection, as the driver does.
    fn inject<P: Protocol>(&mut self, link: LinkId, node: NodeId, frame: Frame) {
        let now = self.h.now;
        let Some(conn) = self.h.conn_on(link, node) else {
            return;
        };
        let proto = self.h.node::<P>(node);
        let len = frame.payload().map_or(0, Bytes::len);
        if !proto.can_read(conn, Some(len)) {
            // The driver would not read it now.
            return;
        }
        if proto.handle_frame(now, conn, frame).is_err() {
            self.h.cut(link);
        }
    }
}

/// Req/Rep: one requester, two repliers.
pub fn reqrep(data: &[u8]) {
    let mut input = Input(data);
    let mut h = Harness::new();
    let req = h.add(ReqProto::new(&options()));
    let reps = [
        h.add(RepProto::new(&options())),
        h.add(RepProto::new(&options())),
    ];
    let mut run = Links {
        h,
        links: Vec::new(),
    };
    // Requests not yet ended, with their frame (encoded with id 0).
    let mut open: Vec<(Key, EncodedFrame)> = Vec::new();
    let mut ended = 0usize;
    let waker = Waker::noop();
    while !input.is_empty() {
        match input.pick(10) {
            0 => {
                let rep = reps[input.pick(2)];
                run.connect(req, rep, input.byte() % 2 == 0);
            }
            1 => run.cut(&mut input),
            2 => {
                let due = run.h.now + input.duration();
                let frame = encode(&Frame::Request {
                    id: 0,
                    payload: input.payload(),
                });
                let proto = run.h.node::<ReqProto>(req);
                let key = proto.insert(due, waker.clone());
                proto.dispatch(key, &frame);
                open.push((key, frame));
            }
            3 => {
                let proto = run.h.node::<ReqProto>(req);
                for (key, frame) in &open {
                    if proto.dispatch(*key, frame) == Dispatch::Waiting {
                        break;
                    }
                }
            }
            4 => {
                let rep = reps[input.pick(2)];
                let proto = run.h.node::<RepProto>(rep);
                while let Some(incoming) = proto.poll_delivery() {
                    let reply = encode(&Frame::Reply {
                        id: incoming.id,
                        payload: incoming.payload,
                    });
                    let _ = proto.reply(incoming.conn, &reply);
                }
            }
            5 => run.h.advance(input.duration()),
            6 => run.h.run(),
            7 => run.stall(&mut input, &[req, reps[0], reps[1]]),
            8 => {
                if let Some(link) = run.pick(&mut input) {
                    let frame = input.frame();
                    if input.byte() % 2 == 0 {
                        run.inject::<ReqProto>(link, req, frame);
                    } else {
                        let rep = if run.h.conn_on(link, reps[0]).is_some() {
                            reps[0]
                        } else {
                            reps[1]
                        };
                        run.inject::<RepProto>(link, rep, frame);
                    }
                }
            }
            _ => {
                if !open.is_empty() {
                    let (key, _) = open.swap_remove(input.pick(open.len()));
                    run.h.node::<ReqProto>(req).cancel(key);
                }
            }
        }
        // Ended requests are collected once, and never end again.
        let proto = run.h.node::<ReqProto>(req);
        open.retain(|(key, _)| {
            let done = proto.poll_outcome(*key, waker).is_some();
            ended += usize::from(done);
            !done
        });
        check_bounds_reqrep(&mut run.h, req, &reps);
    }
    // Past every deadline, every request has ended.
    run.h.advance(Duration::from_secs(3600));
    let proto = run.h.node::<ReqProto>(req);
    for (key, _) in &open {
        assert!(
            proto.poll_outcome(*key, waker).is_some(),
            "a request outlived its deadline"
        );
    }
}

fn check_bounds_reqrep(h: &mut Harness, req: NodeId, reps: &[NodeId]) {
    for &rep in reps {
        assert!(
            h.node::<RepProto>(rep).pending() <= RECV_HWM,
            "a replier's queue past its mark"
        );
    }
    let proto = h.node::<ReqProto>(req);
    for (_, conn) in proto.conns().iter() {
        assert!(conn.frames() <= SEND_HWM, "a request queue past its mark");
    }
}

/// Pub/Sub: one publisher, two subscribers.
pub fn pubsub(data: &[u8]) {
    let mut input = Input(data);
    let mut h = Harness::new();
    let publisher = h.add(PubProto::new(&options()));
    let subs = [
        h.add(SubProto::new(&options())),
        h.add(SubProto::new(&options())),
    ];
    let mut run = Links {
        h,
        links: Vec::new(),
    };
    // The last sequence number each subscriber saw on each connection.
    let mut last: HashMap<(NodeId, u64), u64> = HashMap::new();
    while !input.is_empty() {
        match input.pick(9) {
            0 => {
                let sub = subs[input.pick(2)];
                run.connect(sub, publisher, input.byte() % 2 == 0);
            }
            1 => run.cut(&mut input),
            2 => {
                let sub = subs[input.pick(2)];
                let topic = input.topic();
                if input.byte() % 3 == 0 {
                    run.h.node::<SubProto>(sub).unsubscribe(topic);
                } else {
                    run.h.node::<SubProto>(sub).subscribe(topic);
                }
            }
            3 => {
                let topic = input.topic();
                let frame = encode(&Frame::Publish {
                    topic: topic.clone(),
                    seq: 0,
                    payload: input.payload(),
                });
                run.h.node::<PubProto>(publisher).publish(&topic, &frame);
            }
            4 => run.h.run(),
            5 => run.h.advance(input.duration()),
            6 => run.stall(&mut input, &[publisher, subs[0], subs[1]]),
            7 => {
                if let Some(link) = run.pick(&mut input) {
                    let frame = input.frame();
                    if input.byte() % 2 == 0 {
                        run.inject::<PubProto>(link, publisher, frame);
                    } else if let Some(&sub) =
                        subs.iter().find(|&&s| run.h.conn_on(link, s).is_some())
                    {
                        run.inject::<SubProto>(link, sub, frame);
                    }
                }
            }
            _ => {
                for &sub in &subs {
                    let proto = run.h.node::<SubProto>(sub);
                    while let Some(msg) = proto.poll_delivery() {
                        let key = (sub, msg.publisher().conn_id);
                        let before = last.insert(key, msg.seq()).unwrap_or(0);
                        assert!(msg.seq() > before, "deliveries out of sequence order");
                    }
                }
            }
        }
        for &sub in &subs {
            assert!(
                run.h.node::<SubProto>(sub).pending() <= RECV_HWM,
                "a subscriber's queue past its mark"
            );
        }
        let proto = run.h.node::<PubProto>(publisher);
        for (_, conn) in proto.conns().iter() {
            assert!(
                conn.frames() <= SEND_HWM,
                "a subscriber queue past its mark"
            );
        }
    }
}

/// PEER: three peers that connect in any direction, more than once.
pub fn peer(data: &[u8]) {
    let mut input = Input(data);
    let mut h = Harness::new();
    let nodes: Vec<NodeId> = (0..3).map(|_| h.add(PeerProto::new(&options()))).collect();
    let mut run = Links {
        h,
        links: Vec::new(),
    };
    // Whether each node's application sees each identity up.
    let mut up: HashMap<(NodeId, Bytes), bool> = HashMap::new();
    while !input.is_empty() {
        match input.pick(9) {
            0 => {
                let a = nodes[input.pick(3)];
                let b = nodes[input.pick(3)];
                // A server refuses a repeated identity of another principal
                // in the handshake; sometimes the check is skipped, as when
                // two handshakes pass it together.
                let candidate = run.h.candidate(a);
                let admitted =
                    input.byte() % 4 == 0 || run.h.node::<PeerProto>(b).admit(&candidate).is_ok();
                if a != b && admitted {
                    run.connect(a, b, input.byte() % 2 == 0);
                }
            }
            8 => {
                // A node authenticates as someone else from now on (a token
                // of three, or none).
                let node = nodes[input.pick(3)];
                let token = match input.pick(4) {
                    3 => None,
                    t => Some(Bytes::from(vec![b't', t as u8])),
                };
                run.h
                    .set_principal(node, Principal::new(None, false, token));
            }
            1 => run.cut(&mut input),
            2 => {
                let from = nodes[input.pick(3)];
                let to = format!("node-{}", input.pick(3));
                let frame = if input.byte() % 2 == 0 {
                    Frame::Data {
                        seq: input.u64(),
                        payload: input.payload(),
                    }
                } else {
                    Frame::Ack { seq: input.u64() }
                };
                let proto = run.h.node::<PeerProto>(from);
                if let Some(conn) = proto.route(to.as_bytes()) {
                    let _ = proto.send(conn, &encode(&frame), 1);
                }
            }
            3 => run.h.run(),
            4 => run.h.advance(input.duration()),
            5 => run.stall(&mut input, &nodes),
            6 => {
                if let Some(link) = run.pick(&mut input) {
                    let node = nodes[input.pick(3)];
                    if run.h.conn_on(link, node).is_some() {
                        let frame = input.frame();
                        run.inject::<PeerProto>(link, node, frame);
                    }
                }
            }
            _ => {
                for &node in &nodes {
                    let proto = run.h.node::<PeerProto>(node);
                    while let Some(event) = proto.poll_event() {
                        match event {
                            PeerEvent::Up(id, _) => {
                                up.insert((node, id), true);
                            }
                            PeerEvent::Down(id) => {
                                let was = up.insert((node, id), false);
                                assert_eq!(was, Some(true), "Down without Up");
                            }
                            PeerEvent::Frame(id, _) => {
                                assert_eq!(up.get(&(node, id)), Some(&true), "a frame while down");
                            }
                        }
                    }
                }
            }
        }
        for &node in &nodes {
            let proto = run.h.node::<PeerProto>(node);
            assert!(
                proto.pending_frames() <= RECV_HWM,
                "a peer's event queue past its mark"
            );
            for (_, conn) in proto.conns().iter() {
                assert!(conn.frames() <= SEND_HWM, "a peer's queue past its mark");
            }
        }
    }
}

/// The `n`th message sender `from` sends: `n % 3 + 1` parts, each
/// `[OURS, from, n, part index]`.
fn ours(from: u8, n: u32) -> Message {
    let parts = n as usize % (MAX_HEAD + 1) + 1;
    (0..parts)
        .map(|i| {
            let mut part = vec![OURS, from];
            part.extend_from_slice(&n.to_be_bytes());
            part.push(i as u8);
            Bytes::from(part)
        })
        .collect()
}

/// Whose message `m` is, if the application sent it: panics unless it is
/// whole, every part in place.
fn whose(m: &Message) -> Option<(u8, u32)> {
    let first = m.first();
    if first.first() != Some(&OURS) {
        return None;
    }
    assert!(first.len() == 7, "a part of our message changed: {m:?}");
    let from = first[1];
    let n = u32::from_be_bytes(first[2..6].try_into().expect("four bytes"));
    assert_eq!(*m, ours(from, n), "a message arrived cut or mixed");
    Some((from, n))
}

/// Deliveries seen, to catch one arriving twice or one never sent.
#[derive(Default)]
struct Ledger {
    sent: std::collections::HashSet<(u8, u32)>,
    seen: std::collections::HashSet<(u8, u32)>,
}

impl Ledger {
    fn sent(&mut self, from: u8, n: u32) {
        self.sent.insert((from, n));
    }

    fn delivered(&mut self, m: &Message) {
        if let Some(key) = whose(m) {
            assert!(self.sent.contains(&key), "a message never sent arrived");
            assert!(self.seen.insert(key), "a message arrived twice");
        }
    }
}

fn one_way_frames(m: Message) -> Encoded {
    m.encode(&FrameCodec::new(), Compression::None, |payload| {
        Frame::Message { payload }
    })
    .expect("small messages encode")
}

fn request_frames(m: Message) -> Encoded {
    m.encode(&FrameCodec::new(), Compression::None, |payload| {
        Frame::Request { id: 0, payload }
    })
    .expect("small messages encode")
}

/// Checks a load-balancing sender's queues against its marks.
fn check_send_bounds<P: Protocol>(h: &mut Harness, node: NodeId) {
    let proto = h.node::<P>(node);
    for (_, conn) in proto.conns().iter() {
        assert!(conn.frames() <= SEND_BOUND, "a send queue past its mark");
    }
    assert!(
        proto.parked().0 <= SEND_BOUND,
        "the parking queue past its mark"
    );
}

/// Push/Pull: two pushers, two pullers.
pub fn pipeline(data: &[u8]) {
    let mut input = Input(data);
    let mut h = Harness::new();
    let pushes = [
        h.add(PushProto::new(&options())),
        h.add(PushProto::new(&options())),
    ];
    let pulls = [
        h.add(PullProto::new(&options())),
        h.add(PullProto::new(&options())),
    ];
    let mut run = Links {
        h,
        links: Vec::new(),
    };
    let mut ledger = Ledger::default();
    let mut next = 0u32;
    let all = [pushes[0], pushes[1], pulls[0], pulls[1]];
    while !input.is_empty() {
        match input.pick(8) {
            0 => {
                let (push, pull) = (pushes[input.pick(2)], pulls[input.pick(2)]);
                if input.byte() % 2 == 0 {
                    run.connect(push, pull, input.byte() % 2 == 0);
                } else {
                    run.connect(pull, push, input.byte() % 2 == 0);
                }
            }
            1 => run.cut(&mut input),
            2 => {
                let from = input.pick(2);
                next += 1;
                let frames = one_way_frames(ours(from as u8, next));
                let offer = run.h.node::<PushProto>(pushes[from]).send(frames);
                if offer == crate::proto::outbox::Offer::Taken {
                    ledger.sent(from as u8, next);
                }
            }
            3 => run.h.run(),
            4 => run.h.advance(input.duration()),
            5 => run.stall(&mut input, &all),
            6 => {
                if let Some(link) = run.pick(&mut input) {
                    let (head, last) = (input.head(), input.frame());
                    if let Some(&pull) = pulls.iter().find(|&&p| run.h.conn_on(link, p).is_some()) {
                        run.inject_message::<PullProto>(link, pull, head, last);
                    } else if let Some(&push) =
                        pushes.iter().find(|&&p| run.h.conn_on(link, p).is_some())
                    {
                        run.inject_message::<PushProto>(link, push, head, last);
                    }
                }
            }
            _ => {
                let proto = run.h.node::<PullProto>(pulls[input.pick(2)]);
                while let Some(m) = proto.take() {
                    ledger.delivered(&m);
                }
            }
        }
        for &push in &pushes {
            check_send_bounds::<PushProto>(&mut run.h, push);
        }
        for &pull in &pulls {
            assert!(
                run.h.node::<PullProto>(pull).longest_inbox() <= RECV_HWM,
                "a puller's queue past its mark"
            );
        }
    }
}

/// Dealer/Router: a requester and two dealers around a router, the dealers
/// also driving a replier.
pub fn routing(data: &[u8]) {
    let mut input = Input(data);
    let mut h = Harness::new();
    let router = h.add(RouterProto::new(&options()));
    let req = h.add(ReqProto::new(&options()));
    let dealers = [
        h.add(DealerProto::new(&options())),
        h.add(DealerProto::new(&options())),
    ];
    let rep = h.add(RepProto::new(&options()));
    let mut run = Links {
        h,
        links: Vec::new(),
    };
    let mut ledger = Ledger::default();
    let mut next = 0u32;
    let mut open: Vec<Key> = Vec::new();
    let waker = Waker::noop();
    let all = [router, req, dealers[0], dealers[1], rep];
    while !input.is_empty() {
        match input.pick(10) {
            0 => {
                let server = if input.byte() % 3 == 0 { rep } else { router };
                let client = match input.pick(3) {
                    0 if server == router => req,
                    i => dealers[i % 2],
                };
                run.connect(client, server, input.byte() % 2 == 0);
            }
            1 => run.cut(&mut input),
            2 => {
                // The requester asks (single part, as a REQ does).
                let due = run.h.now + input.duration();
                let frame = encode(&Frame::Request {
                    id: 0,
                    payload: input.payload(),
                });
                let proto = run.h.node::<ReqProto>(req);
                let key = proto.insert(due, waker.clone());
                proto.dispatch(key, &frame);
                open.push(key);
            }
            3 => {
                let from = input.pick(2);
                next += 1;
                let frames = request_frames(ours(from as u8, next));
                let offer = run.h.node::<DealerProto>(dealers[from]).send(frames);
                if offer == crate::proto::outbox::Offer::Taken {
                    ledger.sent(from as u8, next);
                }
            }
            4 => {
                // The router answers what it took, or sends unprompted to
                // an identity (known or not).
                let answer = input.byte() % 2 == 0;
                let proto = run.h.node::<RouterProto>(router);
                let mut taken = Vec::new();
                while let Some((route, m)) = proto.take() {
                    ledger.delivered(&m);
                    taken.push(route);
                }
                let mut routes = if answer { taken } else { Vec::new() };
                routes.push(Route::to(format!("node-{}", input.pick(6))));
                for route in routes {
                    next += 1;
                    let message = ours(2, next);
                    let frames = match route.request() {
                        Some((_, id)) => message
                            .encode(&FrameCodec::new(), Compression::None, |payload| {
                                Frame::Reply { id, payload }
                            })
                            .expect("small messages encode"),
                        None => one_way_frames(message),
                    };
                    let status = run.h.node::<RouterProto>(router).send_to(&route, &frames);
                    if status == crate::proto::router::RouteStatus::Queued {
                        ledger.sent(2, next);
                    }
                }
            }
            5 => {
                let proto = run.h.node::<RepProto>(rep);
                while let Some(incoming) = proto.poll_delivery() {
                    let m = Message::from_wire(incoming.head, incoming.payload.clone());
                    ledger.delivered(&m);
                    let reply = encode(&Frame::Reply {
                        id: incoming.id,
                        payload: incoming.payload,
                    });
                    let _ = proto.reply(incoming.conn, &reply);
                }
            }
            6 => {
                for &dealer in &dealers {
                    let proto = run.h.node::<DealerProto>(dealer);
                    while let Some(m) = proto.take() {
                        // The router's messages are checked whole; a
                        // replier's answer echoes one part of a dealer's.
                        if m.first().get(1) == Some(&2) {
                            ledger.delivered(&m);
                        }
                    }
                }
                let proto = run.h.node::<ReqProto>(req);
                open.retain(|key| proto.poll_outcome(*key, waker).is_none());
            }
            7 => {
                run.h.run();
                run.h.advance(input.duration());
            }
            8 => run.stall(&mut input, &all),
            _ => {
                if let Some(link) = run.pick(&mut input) {
                    let (head, last) = (input.head(), input.frame());
                    let node = all[input.pick(all.len())];
                    if run.h.conn_on(link, node).is_none() {
                        continue;
                    }
                    match node {
                        n if n == router => run.inject_message::<RouterProto>(link, n, head, last),
                        n if n == req => run.inject_message::<ReqProto>(link, n, head, last),
                        n if n == rep => run.inject_message::<RepProto>(link, n, head, last),
                        n => run.inject_message::<DealerProto>(link, n, head, last),
                    }
                }
            }
        }
        for &dealer in &dealers {
            check_send_bounds::<DealerProto>(&mut run.h, dealer);
            assert!(
                run.h.node::<DealerProto>(dealer).longest_inbox() <= RECV_HWM,
                "a dealer's queue past its mark"
            );
        }
        let proto = run.h.node::<RouterProto>(router);
        assert!(
            proto.longest_inbox() <= RECV_HWM,
            "a router's queue past its mark"
        );
        for (_, conn) in proto.conns().iter() {
            assert!(
                conn.frames() <= SEND_BOUND,
                "a router's send queue past its mark"
            );
        }
        assert!(
            run.h.node::<RepProto>(rep).pending() <= RECV_HWM,
            "a replier's queue past its mark"
        );
    }
}

/// PAIR: three pair sockets, connecting every way; each keeps one peer.
pub fn pair(data: &[u8]) {
    let mut input = Input(data);
    let mut h = Harness::new();
    let nodes: Vec<NodeId> = (0..3).map(|_| h.add(PairProto::new(&options()))).collect();
    let mut run = Links {
        h,
        links: Vec::new(),
    };
    let mut ledger = Ledger::default();
    let mut next = 0u32;
    while !input.is_empty() {
        match input.pick(8) {
            0 => {
                let a = nodes[input.pick(3)];
                let b = nodes[input.pick(3)];
                // A server refuses in the handshake while it has its peer.
                let candidate = harness::peer(0, a, SocketType::Pair);
                if a != b && run.h.node::<PairProto>(b).admit(&candidate).is_ok() {
                    run.connect(a, b, input.byte() % 2 == 0);
                }
            }
            1 => run.cut(&mut input),
            2 => {
                let from = input.pick(3);
                next += 1;
                let frames = one_way_frames(ours(from as u8, next));
                if run.h.node::<PairProto>(nodes[from]).send(frames)
                    == crate::proto::outbox::Offer::Taken
                {
                    ledger.sent(from as u8, next);
                }
            }
            3 => run.h.run(),
            4 => run.h.advance(input.duration()),
            5 => run.stall(&mut input, &nodes),
            6 => {
                if let Some(link) = run.pick(&mut input) {
                    let node = nodes[input.pick(3)];
                    if run.h.conn_on(link, node).is_some() {
                        let (head, last) = (input.head(), input.frame());
                        run.inject_message::<PairProto>(link, node, head, last);
                    }
                }
            }
            _ => {
                for &node in &nodes {
                    let proto = run.h.node::<PairProto>(node);
                    while let Some(m) = proto.take() {
                        ledger.delivered(&m);
                    }
                }
            }
        }
        for &node in &nodes {
            check_send_bounds::<PairProto>(&mut run.h, node);
            assert!(
                run.h.node::<PairProto>(node).longest_inbox() <= RECV_HWM,
                "a pair's queue past its mark"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    /// A short run of each target over reproducible pseudo-random inputs:
    /// the fuzz targets' smoke test, run with every `cargo test`.
    #[test]
    fn every_pattern_survives_random_operation_sequences() {
        let mut rng = crate::proto::backoff::XorShift::new(0x2545_F491_4F6C_DD1D);
        let mut next = || rng.next_u64();
        for round in 0..600 {
            let len = 16 + (next() % 400) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            match round % 6 {
                0 => super::reqrep(&data),
                1 => super::pubsub(&data),
                2 => super::peer(&data),
                3 => super::pipeline(&data),
                4 => super::routing(&data),
                _ => super::pair(&data),
            }
        }
    }
}
