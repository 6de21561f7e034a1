//! The task that runs every peer's [`Session`] against a [`Link`] and a
//! [`Backend`].
//!
//! One task owns all sessions (a map by peer) and is the only one to touch
//! them; the application talks to it through a command channel and hears
//! back through one-shot replies, a watch per peer (acknowledgements) and
//! the deliveries channel. The loop waits for whichever comes first: a
//! command, a link event, a finished storage or send operation, or the
//! earliest retransmission deadline. Every input is fed to the peer's
//! session, and the session is then drained ("pumped") into new
//! operations.
//!
//! Storage and sends are futures kept in one `FuturesUnordered` inside the
//! task, never awaited one by one: concurrent `send_to` calls have their
//! appends in the backend at the same time (so redb commits them together),
//! a slow peer's send does not stop the others or the reading of the link,
//! and the loop keeps reading while it writes, so two peers pushing at each
//! other cannot deadlock on full queues. At most one send batch per peer is
//! in flight, which keeps its frames in order.
//!
//! The append of a `send_to` and its `handle_enqueued` happen here, not in
//! the caller's future: a caller that gives up (drops its future) cannot
//! leave a stored message unknown to the session, which would be a gap in
//! the numbering that stalls the peer.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use msg_wire::Frame;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::error::{ReliableError, StorageError};
use crate::link::{Link, LinkEvent};
use crate::options::{AckMode, ReliableOptions};
use crate::peer::PeerId;
use crate::proto::{Session, SessionEvent, SessionStats, StoreBatch};
use crate::socket::Delivery;

/// Stored messages not yet acknowledged, per peer.
pub(crate) type Pending = Vec<(PeerId, usize)>;

/// Most frames handed to the link in one send operation.
const SEND_BATCH: usize = 64;

/// Most rounds of ready inputs (a command, a finished op and a link event
/// each) fed before the driver pumps and starts the resulting work.
const BURST: usize = 256;

/// A request from the application to the driver.
#[derive(Debug)]
pub(crate) enum Command {
    /// Store these messages for `peer` and send them. With `wait`, a full
    /// outbox makes the command wait (in order) for room instead of
    /// failing.
    Send {
        peer: PeerId,
        payloads: Vec<Bytes>,
        wait: bool,
        reply: oneshot::Sender<Result<u64, ReliableError>>,
    },
    /// The application processed deliveries `seqs` from `peer`. In manual
    /// mode they are deleted from storage first, and `reply` hears the
    /// outcome.
    Ack {
        peer: PeerId,
        seqs: Vec<u64>,
        reply: Option<oneshot::Sender<Result<(), ReliableError>>>,
    },
    /// What is stored and not yet acknowledged, per peer.
    Pending { reply: oneshot::Sender<Pending> },
    /// The socket's counters.
    Stats {
        reply: oneshot::Sender<ReliableStats>,
    },
}

/// State shared between the driver and the application's handles.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Commands from the application. Unbounded in type; bounded by the
    /// callers waiting for replies and by the receive window (see where
    /// `ReliableSocket` creates it).
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    /// The peers' cumulative acknowledgements, for `wait_acked`.
    acked: Mutex<HashMap<PeerId, watch::Sender<u64>>>,
    /// Signalled when acknowledgements or appends make progress.
    pub(crate) progress: Notify,
    pub(crate) cancel: CancellationToken,
    pub(crate) ack_mode: AckMode,
}

impl Shared {
    pub(crate) fn new(commands: mpsc::UnboundedSender<Command>, ack_mode: AckMode) -> Self {
        Self {
            commands,
            acked: Mutex::new(HashMap::new()),
            progress: Notify::new(),
            cancel: CancellationToken::new(),
            ack_mode,
        }
    }

    fn acked_map(&self) -> MutexGuard<'_, HashMap<PeerId, watch::Sender<u64>>> {
        self.acked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver of `peer`'s acknowledgement watermark.
    pub(crate) fn watch_acked(&self, peer: &PeerId) -> watch::Receiver<u64> {
        self.acked_map()
            .entry(peer.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn set_acked(&self, peer: &PeerId, up_to: u64) {
        self.acked_map()
            .entry(peer.clone())
            .or_insert_with(|| watch::channel(0).0)
            .send_if_modified(|v| {
                let moved = up_to > *v;
                if moved {
                    *v = up_to;
                }
                moved
            });
    }
}

/// One `send_to` (or batch) in a merged [`Op::Append`]: how many of the
/// op's payloads are its own, and who waits for its first sequence number.
struct AppendPart {
    count: usize,
    bytes: usize,
    reply: oneshot::Sender<Result<u64, ReliableError>>,
}

/// Storage or link work started by the driver.
///
/// Ops of one kind for one peer that are queued together are merged before
/// they start (see [`Driver::start_ops`]): the appends of many concurrent
/// `send_to` calls become one backend write, and so do application acks.
enum Op {
    Append {
        peer: PeerId,
        payloads: Vec<Bytes>,
        parts: Vec<AppendPart>,
    },
    AckOutgoing {
        peer: PeerId,
        up_to: u64,
    },
    StoreIncoming {
        peer: PeerId,
        batch: StoreBatch,
    },
    AckIncoming {
        peer: PeerId,
        seqs: Vec<u64>,
        replies: Vec<oneshot::Sender<Result<(), ReliableError>>>,
    },
    Send {
        peer: PeerId,
        frames: Vec<Frame>,
    },
}

impl Op {
    /// What an op can be merged by: its kind and peer, for the kinds that
    /// merge.
    fn merge_key(&self) -> Option<(u8, &PeerId)> {
        match self {
            Op::Append { peer, .. } => Some((0, peer)),
            Op::AckOutgoing { peer, .. } => Some((1, peer)),
            Op::AckIncoming { peer, .. } => Some((2, peer)),
            Op::StoreIncoming { .. } | Op::Send { .. } => None,
        }
    }

    /// Folds `other` into `self` if both are appends, outgoing acks or
    /// application acks for the same peer; gives it back otherwise.
    fn merge(&mut self, other: Op) -> Result<(), Op> {
        match (self, other) {
            (
                Op::Append {
                    peer,
                    payloads,
                    parts,
                },
                Op::Append {
                    peer: p,
                    payloads: more,
                    parts: more_parts,
                },
            ) if *peer == p => {
                payloads.extend(more);
                parts.extend(more_parts);
                Ok(())
            }
            (Op::AckOutgoing { peer, up_to }, Op::AckOutgoing { peer: p, up_to: u })
                if *peer == p =>
            {
                *up_to = (*up_to).max(u);
                Ok(())
            }
            (
                Op::AckIncoming {
                    peer,
                    seqs,
                    replies,
                },
                Op::AckIncoming {
                    peer: p,
                    seqs: more,
                    replies: more_replies,
                },
            ) if *peer == p => {
                seqs.extend(more);
                replies.extend(more_replies);
                Ok(())
            }
            (_, other) => Err(other),
        }
    }
}

/// A finished [`Op`].
enum Done {
    Appended {
        peer: PeerId,
        payloads: Vec<Bytes>,
        parts: Vec<AppendPart>,
        result: Result<u64, StorageError>,
    },
    AckedOutgoing {
        peer: PeerId,
        result: Result<(), StorageError>,
    },
    Stored {
        peer: PeerId,
        last: u64,
        result: Result<(), StorageError>,
    },
    AckedIncoming {
        peer: PeerId,
        seqs: Vec<u64>,
        result: Result<(), StorageError>,
        replies: Vec<oneshot::Sender<Result<(), ReliableError>>>,
    },
    Sent {
        peer: PeerId,
        result: Result<(), ReliableError>,
    },
}

type Task<'a> = Pin<Box<dyn Future<Output = Done> + Send + 'a>>;
type Work<'a> = FuturesUnordered<Task<'a>>;

/// A `send_to` waiting for room in its peer's outbox.
struct Waiting {
    payloads: Vec<Bytes>,
    bytes: usize,
    reply: oneshot::Sender<Result<u64, ReliableError>>,
}

struct PeerState {
    session: Session,
    /// Sends waiting for room in the outbox, oldest first.
    waiting: VecDeque<Waiting>,
    /// A send batch is with the link.
    sending: bool,
    /// Messages whose appends are being stored.
    appending: usize,
    /// Fed since it was last pumped.
    dirty: bool,
}

impl PeerState {
    /// A peer's state with nothing in flight.
    fn new(session: Session) -> Self {
        Self {
            session,
            waiting: VecDeque::new(),
            sending: false,
            appending: 0,
            dirty: false,
        }
    }
}

/// Everything the driver knows; the loop in [`run`] feeds it.
pub(crate) struct Driver {
    opts: Arc<ReliableOptions>,
    peers: HashMap<PeerId, PeerState>,
    shared: Arc<Shared>,
    /// Deliveries for the application. Unbounded in type; at most
    /// `recv_window` messages and `recv_window_bytes` per peer, because
    /// each holds room in its session's receive window until the
    /// application acknowledges it (see where `ReliableSocket` creates
    /// it). Sending never waits, so a slow application cannot stall the
    /// driver.
    deliveries: mpsc::UnboundedSender<Delivery>,
    ops: Vec<Op>,
    /// Peers fed since the last [`pump_dirty`](Self::pump_dirty).
    dirty: Vec<PeerId>,
    /// Storage operations in flight (appends, stores, acks).
    storing: usize,
    closing: bool,
    /// Messages stored for sending since the socket opened.
    stored_outgoing: u64,
    /// Messages handed to the application since the socket opened.
    delivered: u64,
}

impl Driver {
    pub(crate) fn new(
        opts: Arc<ReliableOptions>,
        sessions: Vec<Session>,
        shared: Arc<Shared>,
        deliveries: mpsc::UnboundedSender<Delivery>,
    ) -> Self {
        let mut driver = Self {
            opts,
            peers: HashMap::new(),
            shared,
            deliveries,
            ops: Vec::new(),
            dirty: Vec::new(),
            storing: 0,
            closing: false,
            stored_outgoing: 0,
            delivered: 0,
        };
        for session in sessions {
            let peer = session.peer().clone();
            driver.shared.set_acked(&peer, session.sender().acked());
            driver.peers.insert(peer, PeerState::new(session));
        }
        driver
    }

    /// `peer`'s state, created empty for a peer the store did not know,
    /// and marked to be pumped (see [`mark`](Self::mark)): one map lookup
    /// for both.
    fn fed(&mut self, peer: &PeerId) -> &mut PeerState {
        let opts = &self.opts;
        let state = self.peers.entry(peer.clone()).or_insert_with(|| {
            // Every peer the store knows was loaded at start-up, and the
            // store has one owner: a peer not loaded has no state.
            let session = Session::new(
                peer.clone(),
                opts.clone(),
                Default::default(),
                Default::default(),
            )
            .expect("options were validated and the state is empty");
            PeerState::new(session)
        });
        if !state.dirty {
            state.dirty = true;
            self.dirty.push(peer.clone());
        }
        state
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Send {
                peer,
                payloads,
                wait,
                reply,
            } => {
                let bytes = payloads.iter().map(Bytes::len).sum();
                let count = payloads.len();
                // Fits an empty outbox: worth waiting for.
                let fits =
                    count <= self.opts.max_outbox_messages && bytes <= self.opts.max_outbox_bytes;
                let state = self.fed(&peer);
                let waiting = Waiting {
                    payloads,
                    bytes,
                    reply,
                };
                if wait && fits && !state.waiting.is_empty() {
                    // Behind the others that wait.
                    state.waiting.push_back(waiting);
                    return;
                }
                match state.session.reserve(count, bytes) {
                    Ok(()) => {
                        state.appending += count;
                        self.storing += 1;
                        self.ops.push(append(peer, waiting));
                    }
                    Err(e) if wait && fits && e.is_outbox_full() => {
                        state.waiting.push_back(waiting);
                    }
                    Err(e) => {
                        let _ = waiting.reply.send(Err(e));
                    }
                }
            }
            Command::Ack { peer, seqs, reply } => {
                tracing::trace!(
                    %peer,
                    first = seqs.first(),
                    last = seqs.last(),
                    count = seqs.len(),
                    "acknowledged by the application"
                );
                match self.shared.ack_mode {
                    AckMode::Manual => {
                        self.storing += 1;
                        self.ops.push(Op::AckIncoming {
                            peer,
                            seqs,
                            replies: reply.into_iter().collect(),
                        });
                    }
                    _ => {
                        let session = &mut self.fed(&peer).session;
                        for seq in seqs {
                            session.handle_app_ack(seq);
                        }
                        if let Some(reply) = reply {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
            }
            Command::Pending { reply } => {
                let _ = reply.send(self.pending());
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
        }
    }

    /// The counters: the driver's, and every session's, summed and per peer.
    fn stats(&self) -> ReliableStats {
        let mut per_peer: Vec<(PeerId, SessionStats)> = self
            .peers
            .iter()
            .map(|(p, s)| (p.clone(), s.session.stats()))
            .collect();
        per_peer.sort_by(|a, b| a.0.cmp(&b.0));
        let sessions = per_peer
            .iter()
            .fold(SessionStats::default(), |sum, (_, s)| add(sum, s));
        ReliableStats {
            peers: self.peers.len(),
            stored_outgoing: self.stored_outgoing,
            delivered: self.delivered,
            unacked_outgoing: self.pending().iter().map(|(_, n)| *n).sum(),
            sessions,
            per_peer,
        }
    }

    /// Stored messages not yet acknowledged by their peers (appends in
    /// flight included), per peer with any.
    fn pending(&self) -> Pending {
        let mut out: Vec<_> = self
            .peers
            .iter()
            .map(|(p, s)| (p.clone(), s.session.sender().outbox_len() + s.appending))
            .filter(|(_, n)| *n > 0)
            .collect();
        out.sort();
        out
    }

    fn link_event(&mut self, now: Instant, event: LinkEvent) {
        match event {
            LinkEvent::Up(peer) => {
                tracing::debug!(%peer, "link up");
                self.fed(&peer).session.handle_link_up(now);
            }
            LinkEvent::Down(peer) => {
                tracing::debug!(%peer, "link down");
                self.fed(&peer).session.handle_link_down(now);
            }
            LinkEvent::Frame { peer, frame } => {
                if let Err(error) = self.fed(&peer).session.handle_frame(now, frame) {
                    tracing::warn!(%peer, %error, "peer broke the reliable protocol; frame ignored");
                }
            }
        }
    }

    /// Feeds what the link's `recv` gave; returns whether the link is still
    /// open.
    fn link_input(&mut self, now: Instant, event: Option<LinkEvent>) -> bool {
        match event {
            Some(event) => {
                self.link_event(now, event);
                true
            }
            None => {
                tracing::debug!("link closed");
                false
            }
        }
    }

    fn done(&mut self, now: Instant, done: Done) {
        match done {
            Done::Appended {
                peer,
                payloads,
                parts,
                result,
            } => {
                self.storing -= 1;
                let mut stored = 0;
                let state = self.fed(&peer);
                state.appending -= payloads.len();
                match result {
                    Ok(first) => {
                        stored = payloads.len() as u64;
                        tracing::trace!(%peer, first, last = first + stored - 1, "stored for sending");
                        for (seq, payload) in (first..).zip(payloads) {
                            state.session.handle_enqueued(now, seq, payload);
                        }
                        let mut next = first;
                        for part in parts {
                            let _ = part.reply.send(Ok(next));
                            next += part.count as u64;
                        }
                    }
                    Err(e) => {
                        for part in parts {
                            state.session.release(part.count, part.bytes);
                            let _ = part.reply.send(Err(e.clone().into()));
                        }
                    }
                }
                self.stored_outgoing += stored;
                self.shared.progress.notify_waiters();
            }
            Done::AckedOutgoing { peer, result } => {
                self.storing -= 1;
                if let Err(error) = result {
                    // They stay stored a little longer; after a restart they
                    // are resent and the peer drops them as duplicates.
                    tracing::warn!(%peer, %error, "could not delete acknowledged messages");
                }
            }
            Done::Stored { peer, last, result } => {
                self.storing -= 1;
                let state = self.fed(&peer);
                match result {
                    Ok(()) => {
                        tracing::trace!(%peer, last, "received and stored");
                        state.session.handle_stored(last);
                    }
                    Err(error) => {
                        // Not acknowledged: the peer resends after its timeout.
                        tracing::warn!(%peer, %error, "could not store incoming messages");
                        state.session.handle_store_failed();
                    }
                }
            }
            Done::AckedIncoming {
                peer,
                seqs,
                result,
                replies,
            } => {
                self.storing -= 1;
                let outcome = match result {
                    Ok(()) => {
                        let state = self.fed(&peer);
                        for seq in seqs {
                            state.session.handle_app_ack(seq);
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                for reply in replies {
                    let _ = reply.send(outcome.clone().map_err(Into::into));
                }
            }
            Done::Sent { peer, result } => {
                if let Err(error) = result {
                    // Lost frames are resent when the link is up again.
                    tracing::debug!(%peer, %error, "send failed");
                }
                self.fed(&peer).sending = false;
            }
        }
    }

    fn timeout(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, s)| s.session.poll_timeout().is_some_and(|t| t <= now))
            .map(|(p, _)| p.clone())
            .collect();
        for peer in due {
            self.fed(&peer).session.handle_timeout(now);
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|s| s.session.poll_timeout())
            .min()
    }

    /// Notes that `peer`'s session was fed: it is pumped once, after every
    /// input that is ready has been fed, so that the inputs of a burst
    /// leave as one store batch, one send batch, one ack.
    fn mark(&mut self, peer: &PeerId) {
        if let Some(state) = self.peers.get_mut(peer) {
            if !state.dirty {
                state.dirty = true;
                self.dirty.push(peer.clone());
            }
        }
    }

    /// Pumps every peer fed since the last call.
    fn pump_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for peer in &dirty {
            self.pump(peer);
        }
        // Keep the allocation.
        self.dirty = dirty;
        self.dirty.clear();
    }

    /// Pumps the dirty peers, then merges the queued ops (see [`Op`]) and
    /// starts them.
    fn start_ops<'a, L: Link, B: Backend>(
        &mut self,
        work: &mut Work<'a>,
        link: &'a L,
        backend: &'a B,
    ) {
        self.pump_dirty();
        let queued = self.ops.len();
        if queued <= 1 {
            for op in self.ops.drain(..) {
                work.push(start(op, link, backend));
            }
            return;
        }
        let mut merged: Vec<Op> = Vec::with_capacity(queued);
        for op in self.ops.drain(..) {
            // Found by a cheap key first, so an op is moved only to be
            // merged or kept.
            let into = op
                .merge_key()
                .and_then(|key| merged.iter().position(|m| m.merge_key() == Some(key)));
            match into {
                Some(i) => {
                    if let Err(op) = merged[i].merge(op) {
                        merged.push(op);
                    }
                }
                None => merged.push(op),
            }
        }
        // Only storage ops merge, and each was counted in `storing`.
        self.storing -= queued - merged.len();
        for op in merged {
            work.push(start(op, link, backend));
        }
    }

    /// Drains `peer`'s session: events, the next store batch, frames.
    fn pump(&mut self, peer: &PeerId) {
        if self.closing {
            return;
        }
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        state.dirty = false;
        while let Some(event) = state.session.poll_event() {
            match event {
                SessionEvent::Acked { up_to } => {
                    tracing::trace!(%peer, up_to, "acknowledged by the peer");
                    self.shared.set_acked(peer, up_to);
                    self.shared.progress.notify_waiters();
                    self.storing += 1;
                    self.ops.push(Op::AckOutgoing {
                        peer: peer.clone(),
                        up_to,
                    });
                }
                SessionEvent::Deliver { seq, payload } => {
                    tracing::trace!(%peer, seq, "delivered to the application");
                    let acker = (self.shared.ack_mode == AckMode::Manual)
                        .then(|| self.shared.commands.clone());
                    let delivery = Delivery::new(peer.clone(), seq, payload, acker);
                    // The receiver lives as long as the socket.
                    let _ = self.deliveries.send(delivery);
                    self.delivered += 1;
                }
            }
        }
        // Acknowledgements (or a failed append) may have made room for
        // sends that wait, oldest first.
        while let Some(front) = state.waiting.front() {
            if front.reply.is_closed() {
                // Its caller gave up before it was stored.
                state.waiting.pop_front();
                continue;
            }
            let count = front.payloads.len();
            if state.session.reserve(count, front.bytes).is_err() {
                break;
            }
            let Some(waiting) = state.waiting.pop_front() else {
                break;
            };
            state.appending += count;
            self.storing += 1;
            self.ops.push(append(peer.clone(), waiting));
        }
        if let Some(batch) = state.session.poll_store() {
            self.storing += 1;
            self.ops.push(Op::StoreIncoming {
                peer: peer.clone(),
                batch,
            });
        }
        if !state.sending {
            let mut frames = Vec::new();
            while frames.len() < SEND_BATCH {
                match state.session.poll_transmit() {
                    Some(frame) => frames.push(frame),
                    None => break,
                }
            }
            if !frames.is_empty() {
                trace_sending(peer, &frames);
                state.sending = true;
                self.ops.push(Op::Send {
                    peer: peer.clone(),
                    frames,
                });
            }
        }
    }

    fn mark_all(&mut self) {
        let peers: Vec<PeerId> = self.peers.keys().cloned().collect();
        for peer in &peers {
            self.mark(peer);
        }
    }
}

/// The append op of one send, its room reserved.
fn append(peer: PeerId, send: Waiting) -> Op {
    let count = send.payloads.len();
    Op::Append {
        peer,
        payloads: send.payloads,
        parts: vec![AppendPart {
            count,
            bytes: send.bytes,
            reply: send.reply,
        }],
    }
}

fn start<'a, L: Link, B: Backend>(op: Op, link: &'a L, backend: &'a B) -> Task<'a> {
    match op {
        Op::Append {
            peer,
            payloads,
            parts,
        } => Box::pin(async move {
            let started = std::time::Instant::now();
            let result = backend.append_outgoing(&peer, payloads.clone()).await;
            store_latency("append", started);
            Done::Appended {
                peer,
                payloads,
                parts,
                result,
            }
        }),
        Op::AckOutgoing { peer, up_to } => Box::pin(async move {
            let started = std::time::Instant::now();
            let result = backend.ack_outgoing(&peer, up_to).await;
            store_latency("ack_outgoing", started);
            Done::AckedOutgoing { peer, result }
        }),
        Op::StoreIncoming { peer, batch } => Box::pin(async move {
            let last = batch.last_seq();
            let started = std::time::Instant::now();
            let result = backend.store_incoming(&peer, batch).await;
            store_latency("store", started);
            Done::Stored { peer, last, result }
        }),
        Op::AckIncoming {
            peer,
            seqs,
            replies,
        } => Box::pin(async move {
            let started = std::time::Instant::now();
            let result = backend.ack_incoming(&peer, seqs.clone()).await;
            store_latency("ack_incoming", started);
            Done::AckedIncoming {
                peer,
                seqs,
                result,
                replies,
            }
        }),
        Op::Send { peer, frames } => Box::pin(async move {
            let result = link.send_batch(&peer, frames).await;
            Done::Sent { peer, result }
        }),
    }
}

/// Records a store operation's latency (feature `metrics`; nothing
/// without it).
#[cfg(feature = "metrics")]
use crate::metrics_export::store_latency;
#[cfg(not(feature = "metrics"))]
fn store_latency(_op: &'static str, _started: std::time::Instant) {}

/// The tokio clock (paused in tests) as a std `Instant` for the sessions.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs the driver until the socket is cancelled; returns what was still
/// pending then.
pub(crate) async fn run<L: Link, B: Backend>(
    link: L,
    backend: B,
    mut driver: Driver,
    mut commands: mpsc::UnboundedReceiver<Command>,
) -> Pending {
    let link = &link;
    let backend = &backend;
    let cancel = driver.shared.cancel.clone();
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let mut work: Work<'_> = Work::new();
    let recv = link.recv();
    tokio::pin!(recv);
    let mut link_open = true;
    // One timer for the earliest retransmission deadline, moved only when
    // that deadline changes.
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    driver.mark_all();
    loop {
        driver.start_ops(&mut work, link, backend);
        let deadline = driver.next_timeout();
        if deadline != armed {
            if let Some(deadline) = deadline {
                timer.as_mut().reset(deadline.into());
            }
            armed = deadline;
        }
        tokio::select! {
            () = &mut cancelled => break,
            Some(done) = work.next(), if !work.is_empty() => driver.done(now(), done),
            event = &mut recv, if link_open => {
                link_open = driver.link_input(now(), event);
                recv.set(link.recv());
            }
            command = commands.recv() => match command {
                Some(command) => driver.command(command),
                None => break,
            },
            () = &mut timer, if armed.is_some() => {
                armed = None;
                driver.timeout(now());
            }
        }
        // Feed whatever else is ready before pumping, so that a burst of
        // inputs becomes one batch of work.
        let now = now();
        for _ in 0..BURST {
            let mut fed = false;
            if let Ok(command) = commands.try_recv() {
                driver.command(command);
                fed = true;
            }
            if let Some(Some(done)) = work.next().now_or_never() {
                driver.done(now, done);
                fed = true;
            }
            if link_open {
                if let Some(event) = (&mut recv).now_or_never() {
                    link_open = driver.link_input(now, event);
                    recv.set(link.recv());
                    fed = true;
                }
            }
            if !fed {
                break;
            }
        }
    }
    // Closing: no new work, but storage already under way finishes, so that
    // what callers were told and what the store holds agree. Sends are
    // abandoned (the peer gets them on the next run).
    driver.closing = true;
    driver.ops.clear();
    commands.close();
    while driver.storing > 0 {
        match work.next().await {
            Some(done) => driver.done(now(), done),
            None => break,
        }
        driver.ops.clear();
    }
    driver.pending()
}

/// `a` and `b` added field by field.
fn add(a: SessionStats, b: &SessionStats) -> SessionStats {
    SessionStats {
        data_sent: a.data_sent + b.data_sent,
        retransmitted: a.retransmitted + b.retransmitted,
        timeouts: a.timeouts + b.timeouts,
        acks_received: a.acks_received + b.acks_received,
        acks_sent: a.acks_sent + b.acks_sent,
        duplicates: a.duplicates + b.duplicates,
        held_back: a.held_back + b.held_back,
        hold_back_dropped: a.hold_back_dropped + b.hold_back_dropped,
        window_full: a.window_full + b.window_full,
        stored: a.stored + b.stored,
        store_failures: a.store_failures + b.store_failures,
    }
}

/// A snapshot of a [`ReliableSocket`](crate::ReliableSocket)'s counters,
/// from [`stats`](crate::ReliableSocket::stats). Counts start when the
/// socket opens; what a store held from before is not counted again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReliableStats {
    /// Peers the socket has a session with (connected or not).
    pub peers: usize,
    /// Messages stored for sending (`send_to` and friends that succeeded).
    pub stored_outgoing: u64,
    /// Messages handed to the application (redeliveries after a restart
    /// included).
    pub delivered: u64,
    /// Messages stored for sending and not yet acknowledged by their peer,
    /// now (those being stored included).
    pub unacked_outgoing: usize,
    /// Every session's counters, summed: frames sent and retransmitted,
    /// timeouts, acknowledgements, duplicates dropped, messages held back
    /// or stored, store failures.
    pub sessions: SessionStats,
    /// The same counters for each peer, ordered by peer.
    pub per_peer: Vec<(PeerId, SessionStats)>,
}

/// At trace level: which messages a batch of frames for `peer` carries.
fn trace_sending(peer: &PeerId, frames: &[Frame]) {
    if !tracing::enabled!(tracing::Level::TRACE) {
        return;
    }
    let data = frames.iter().filter_map(|f| match f {
        Frame::Data { seq, .. } => Some(*seq),
        _ => None,
    });
    let (first, last) = data.fold((None, None), |(lo, hi): (Option<u64>, Option<u64>), seq| {
        (
            Some(lo.map_or(seq, |l| l.min(seq))),
            Some(hi.map_or(seq, |h| h.max(seq))),
        )
    });
    let acks = frames
        .iter()
        .filter(|f| matches!(f, Frame::Ack { .. }))
        .count();
    tracing::trace!(%peer, frames = frames.len(), first, last, acks, "sending");
}
