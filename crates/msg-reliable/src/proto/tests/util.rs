//! A two-peer harness for the sans-IO sessions, after quinn-proto's
//! `tests/util.rs`: two [`Session`]s exchange frames over a simulated link
//! on a virtual clock, each with a simulated store and application.
//!
//! The link can add latency and jitter (which reorders), lose and duplicate
//! frames, and be cut (frames in flight are lost) and restored. The stores
//! can be slow or fail; nodes can crash (their session, unfinished store and
//! unacknowledged deliveries vanish; the store stays) and restart from the
//! store. The harness plays the driver exactly as the `Session` docs
//! describe, and checks on every step what the application sees.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use msg_wire::Frame;

use crate::error::ReliableError;
use crate::options::ReliableOptions;
use crate::peer::PeerId;
use crate::proto::{IncomingState, OutgoingState, Session, SessionEvent, SessionStats, StoreBatch};

/// The workspace's seeded generator (SplitMix64): reproducible runs.
pub(super) use msg_testkit::Rng;

/// How the simulated link treats frames.
#[derive(Clone, Debug)]
pub(super) struct LinkConfig {
    pub(super) latency: Duration,
    /// Extra random delay per frame, up to this; reorders frames.
    pub(super) jitter: Duration,
    pub(super) loss: f64,
    pub(super) duplicate: f64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}

/// What a node's store holds: what survives a crash.
#[derive(Debug, Default)]
pub(super) struct SimStore {
    pub(super) last_assigned: u64,
    pub(super) outgoing: BTreeMap<u64, Bytes>,
    pub(super) accepted: u64,
    pub(super) incoming: BTreeMap<u64, Bytes>,
    /// Store batches written (incoming messages with their watermark).
    pub(super) writes: u64,
}

impl SimStore {
    fn outgoing_state(&self) -> OutgoingState {
        OutgoingState {
            last_assigned: self.last_assigned,
            unacked: self.outgoing.iter().map(|(k, v)| (*k, v.clone())).collect(),
        }
    }

    fn incoming_state(&self) -> IncomingState {
        IncomingState {
            accepted: self.accepted,
            undelivered: self.incoming.iter().map(|(k, v)| (*k, v.clone())).collect(),
        }
    }

    /// The backend contract of `store_incoming`, checked.
    fn store(&mut self, batch: &StoreBatch) {
        assert_eq!(
            batch.first_seq(),
            self.accepted + 1,
            "store batch must follow the watermark"
        );
        if batch.persist_payloads() {
            for (seq, payload) in batch.iter() {
                self.incoming.insert(seq, payload.clone());
            }
        }
        self.accepted = batch.last_seq();
        self.writes += 1;
    }
}

/// One side: its session, store and application.
pub(super) struct Node {
    pub(super) name: &'static str,
    pub(super) session: Session,
    pub(super) store: SimStore,
    opts: Arc<ReliableOptions>,
    /// The other side's id, which this node's session talks to.
    peer: PeerId,
    /// Batch being stored and when the store completes.
    storing: Option<(Instant, StoreBatch)>,
    pub(super) store_latency: Duration,
    /// Probability that a store batch fails.
    pub(super) store_failure: f64,
    /// How long the application takes to process (then acknowledge) a
    /// delivery.
    pub(super) app_delay: Duration,
    app_queue: VecDeque<(Instant, u64, Bytes)>,
    /// What the application processed and acknowledged, in order.
    pub(super) processed: Vec<(u64, Bytes)>,
    /// Every delivery, including those delivered again after a crash.
    pub(super) deliveries: u64,
    /// The next delivery expected in this incarnation.
    next_delivery: Option<u64>,
    pub(super) crashes: u64,
    pub(super) acked_events: Vec<u64>,
    /// Counters of the sessions lost in crashes.
    past_stats: Vec<SessionStats>,
}

impl Node {
    fn new(name: &'static str, peer: PeerId, opts: Arc<ReliableOptions>) -> Self {
        let session = Session::new(
            peer.clone(),
            opts.clone(),
            OutgoingState::default(),
            IncomingState::default(),
        )
        .unwrap();
        Self {
            name,
            session,
            store: SimStore::default(),
            opts,
            peer,
            storing: None,
            store_latency: Duration::from_millis(1),
            store_failure: 0.0,
            app_delay: Duration::ZERO,
            app_queue: VecDeque::new(),
            processed: Vec::new(),
            deliveries: 0,
            next_delivery: None,
            crashes: 0,
            acked_events: Vec::new(),
            past_stats: Vec::new(),
        }
    }

    /// The payload the other side's `n`th message carries.
    pub(super) fn payload(from: &str, seq: u64) -> Bytes {
        Bytes::from(format!("{from}->{seq}"))
    }

    /// `send_to`: reserve, store (assigning the number), report.
    pub(super) fn send(&mut self, now: Instant) -> Result<u64, ReliableError> {
        let seq = self.store.last_assigned + 1;
        let payload = Self::payload(self.name, seq);
        self.session.reserve(1, payload.len())?;
        self.store.last_assigned = seq;
        self.store.outgoing.insert(seq, payload.clone());
        self.session.handle_enqueued(now, seq, payload);
        Ok(seq)
    }

    /// The process dies and restarts from its store. A store in progress
    /// either committed or not (`committed`); deliveries the application
    /// had not acknowledged are forgotten by it.
    pub(super) fn crash(&mut self, committed: bool) {
        if let Some((_, batch)) = self.storing.take() {
            if committed {
                self.store.store(&batch);
            }
        }
        self.app_queue.clear();
        self.next_delivery = None;
        self.crashes += 1;
        self.past_stats.push(self.session.stats());
        self.session = Session::new(
            self.peer.clone(),
            self.opts.clone(),
            self.store.outgoing_state(),
            self.store.incoming_state(),
        )
        .unwrap();
    }

    /// Counters summed over every incarnation of this node.
    pub(super) fn total_stats(&self) -> SessionStats {
        let mut t = self.session.stats();
        for s in &self.past_stats {
            t.data_sent += s.data_sent;
            t.retransmitted += s.retransmitted;
            t.timeouts += s.timeouts;
            t.acks_received += s.acks_received;
            t.acks_sent += s.acks_sent;
            t.duplicates += s.duplicates;
            t.held_back += s.held_back;
            t.hold_back_dropped += s.hold_back_dropped;
            t.window_full += s.window_full;
            t.stored += s.stored;
            t.store_failures += s.store_failures;
        }
        t
    }

    /// Checks and records an application acknowledgement.
    fn process(&mut self, seq: u64, payload: Bytes) {
        let expected = self.processed.last().map_or(1, |(s, _)| s + 1);
        assert_eq!(
            seq, expected,
            "{}: the application must process every message once, in order",
            self.name
        );
        self.store.incoming.remove(&seq);
        self.processed.push((seq, payload));
        assert!(self.session.handle_app_ack(seq));
    }

    fn next_event_time(&self) -> Option<Instant> {
        [
            self.session.poll_timeout(),
            self.storing.as_ref().map(|(t, _)| *t),
            self.app_queue.front().map(|(t, _, _)| *t),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[derive(Debug)]
struct InFlight {
    arrive: Instant,
    order: u64,
    to_b: bool,
    epoch: u64,
    frame: Frame,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.arrive, self.order) == (other.arrive, other.order)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.arrive, self.order).cmp(&(other.arrive, other.order))
    }
}

/// Two nodes, `a` and `b`, and the link between them.
pub(super) struct Pair {
    pub(super) now: Instant,
    pub(super) a: Node,
    pub(super) b: Node,
    pub(super) link: LinkConfig,
    up: bool,
    epoch: u64,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    pub(super) rng: Rng,
    /// Data frames put on the link by each side, and the most in flight
    /// (sent, not acknowledged) ever seen for each.
    pub(super) data_frames: [u64; 2],
    pub(super) max_in_flight: [u64; 2],
}

impl Pair {
    pub(super) fn new(opts: ReliableOptions, seed: u64) -> Self {
        let opts = Arc::new(opts);
        Self {
            now: Instant::now(),
            a: Node::new("a", "b".parse().unwrap(), opts.clone()),
            b: Node::new("b", "a".parse().unwrap(), opts),
            link: LinkConfig::default(),
            up: false,
            epoch: 0,
            in_flight: BinaryHeap::new(),
            order: 0,
            rng: Rng::new(seed),
            data_frames: [0; 2],
            max_in_flight: [0; 2],
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.up
    }

    /// The connection comes up.
    pub(super) fn connect(&mut self) {
        if self.up {
            return;
        }
        self.up = true;
        self.a.session.handle_link_up(self.now);
        self.b.session.handle_link_up(self.now);
    }

    /// The connection breaks: what is in flight is lost.
    pub(super) fn cut(&mut self) {
        if !self.up {
            return;
        }
        self.up = false;
        self.epoch += 1;
        self.in_flight.clear();
        self.a.session.handle_link_down(self.now);
        self.b.session.handle_link_down(self.now);
    }

    /// `a` (or `b`) crashes and restarts; the connection breaks with it. A
    /// store in progress committed or not, at random.
    pub(super) fn crash(&mut self, a: bool) {
        let committed = self.rng.chance(0.5);
        self.crash_with(a, committed);
    }

    /// As [`crash`](Self::crash), choosing whether a store in progress
    /// committed.
    pub(super) fn crash_with(&mut self, a: bool, committed: bool) {
        self.cut();
        if a {
            self.a.crash(committed);
        } else {
            self.b.crash(committed);
        }
    }

    /// Sends `n` messages from `a` (or `b`); panics if the outbox is full.
    pub(super) fn send(&mut self, from_a: bool, n: usize) {
        let now = self.now;
        let node = if from_a { &mut self.a } else { &mut self.b };
        for _ in 0..n {
            node.send(now).unwrap();
        }
    }

    /// Drains both sessions' outputs into the link, the stores and the
    /// applications.
    fn flush(&mut self) {
        for from_a in [true, false] {
            loop {
                let node = if from_a { &mut self.a } else { &mut self.b };
                let Some(frame) = node.session.poll_transmit() else {
                    break;
                };
                if matches!(frame, Frame::Data { .. }) {
                    let i = usize::from(!from_a);
                    self.data_frames[i] += 1;
                    let in_flight = node.session.sender().in_flight();
                    self.max_in_flight[i] = self.max_in_flight[i].max(in_flight);
                }
                self.transmit(from_a, frame);
            }
            let now = self.now;
            let node = if from_a { &mut self.a } else { &mut self.b };
            if let Some(batch) = node.session.poll_store() {
                assert!(node.storing.is_none(), "one store batch at a time");
                node.storing = Some((now + node.store_latency, batch));
            }
            while let Some(event) = node.session.poll_event() {
                match event {
                    SessionEvent::Acked { up_to } => {
                        // The peer stored these: delete them, as the driver
                        // would.
                        node.store.outgoing.retain(|seq, _| *seq > up_to);
                        node.acked_events.push(up_to);
                    }
                    SessionEvent::Deliver { seq, payload } => {
                        if let Some(expected) = node.next_delivery {
                            assert_eq!(seq, expected, "{}: deliveries in order", node.name);
                        }
                        node.next_delivery = Some(seq + 1);
                        node.deliveries += 1;
                        node.app_queue
                            .push_back((now + node.app_delay, seq, payload));
                    }
                }
            }
        }
    }

    fn transmit(&mut self, from_a: bool, frame: Frame) {
        if !self.up {
            return;
        }
        if self.rng.chance(self.link.loss) {
            return;
        }
        let copies = if self.rng.chance(self.link.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let arrive = self.now + self.link.latency + self.rng.duration(self.link.jitter);
            self.order += 1;
            self.in_flight.push(Reverse(InFlight {
                arrive,
                order: self.order,
                to_b: from_a,
                epoch: self.epoch,
                frame: frame.clone(),
            }));
        }
    }

    fn next_event_time(&self) -> Option<Instant> {
        [
            self.in_flight.peek().map(|f| f.0.arrive),
            self.a.next_event_time(),
            self.b.next_event_time(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Handles everything due at `self.now`.
    fn handle_due(&mut self) {
        let now = self.now;
        while let Some(f) = self.in_flight.peek() {
            if f.0.arrive > now {
                break;
            }
            let Some(Reverse(f)) = self.in_flight.pop() else {
                break;
            };
            if f.epoch != self.epoch || !self.up {
                continue;
            }
            let node = if f.to_b { &mut self.b } else { &mut self.a };
            node.session
                .handle_frame(now, f.frame)
                .expect("no protocol errors between well-behaved peers");
        }
        let rng = &mut self.rng;
        for node in [&mut self.a, &mut self.b] {
            if let Some((at, _)) = &node.storing {
                if *at <= now {
                    let Some((_, batch)) = node.storing.take() else {
                        unreachable!()
                    };
                    if rng.chance(node.store_failure) {
                        node.session.handle_store_failed();
                    } else {
                        node.store.store(&batch);
                        node.session.handle_stored(batch.last_seq());
                    }
                }
            }
            while let Some((at, _, _)) = node.app_queue.front() {
                if *at > now {
                    break;
                }
                let Some((_, seq, payload)) = node.app_queue.pop_front() else {
                    break;
                };
                node.process(seq, payload);
            }
            if node.session.poll_timeout().is_some_and(|t| t <= now) {
                node.session.handle_timeout(now);
            }
        }
    }

    /// Runs until nothing is left to do or `deadline` is reached; returns
    /// whether it went idle.
    pub(super) fn run_until(&mut self, deadline: Instant) -> bool {
        loop {
            self.flush();
            let Some(next) = self.next_event_time() else {
                return true;
            };
            if next > deadline {
                self.now = deadline;
                return false;
            }
            self.now = self.now.max(next);
            self.handle_due();
        }
    }

    /// Runs for `d` of virtual time (or less, if it goes idle sooner, in
    /// which case the clock still advances by `d`).
    pub(super) fn run_for(&mut self, d: Duration) {
        let deadline = self.now + d;
        self.run_until(deadline);
        self.now = deadline;
    }

    /// Runs until idle, failing the test if that takes longer than `limit`
    /// of virtual time.
    pub(super) fn drive(&mut self, limit: Duration) {
        let deadline = self.now + limit;
        assert!(self.run_until(deadline), "not idle after {limit:?}");
    }

    /// Asserts that each side's application processed exactly the messages
    /// `1..=n` the other side sent, in order, with their payloads.
    pub(super) fn assert_processed(&self, a_to_b: u64, b_to_a: u64) {
        for (node, from, n) in [(&self.b, "a", a_to_b), (&self.a, "b", b_to_a)] {
            assert_eq!(
                node.processed.len() as u64,
                n,
                "{} processed {} of {n} messages",
                node.name,
                node.processed.len()
            );
            for (i, (seq, payload)) in node.processed.iter().enumerate() {
                assert_eq!(*seq, i as u64 + 1);
                assert_eq!(*payload, Node::payload(from, *seq));
            }
        }
    }
}
