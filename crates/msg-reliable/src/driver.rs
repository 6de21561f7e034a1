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

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use msg_wire::Frame;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::endpoint::Delivery;
use crate::error::{ReliableError, StorageError};
use crate::link::{Link, LinkEvent};
use crate::options::{AckMode, ReliableOptions};
use crate::peer::PeerId;
use crate::proto::{Session, SessionEvent, StoreBatch};

/// Stored messages not yet acknowledged, per peer.
pub(crate) type Pending = Vec<(PeerId, usize)>;

/// Most frames handed to the link in one send operation.
const SEND_BATCH: usize = 64;

/// A request from the application to the driver.
#[derive(Debug)]
pub(crate) enum Command {
    /// Store these messages for `peer` and send them.
    Send {
        peer: PeerId,
        payloads: Vec<Bytes>,
        reply: oneshot::Sender<Result<u64, ReliableError>>,
    },
    /// The application processed delivery `seq` from `peer`. In manual mode
    /// it is deleted from storage first, and `reply` hears the outcome.
    Ack {
        peer: PeerId,
        seq: u64,
        reply: Option<oneshot::Sender<Result<(), ReliableError>>>,
    },
    /// What is stored and not yet acknowledged, per peer.
    Pending { reply: oneshot::Sender<Pending> },
}

/// State shared between the driver and the application's handles.
#[derive(Debug)]
pub(crate) struct Shared {
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

/// Storage or link work started by the driver.
enum Op {
    Append {
        peer: PeerId,
        payloads: Vec<Bytes>,
        bytes: usize,
        reply: oneshot::Sender<Result<u64, ReliableError>>,
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
        seq: u64,
        reply: Option<oneshot::Sender<Result<(), ReliableError>>>,
    },
    Send {
        peer: PeerId,
        frames: Vec<Frame>,
    },
}

/// A finished [`Op`].
enum Done {
    Appended {
        peer: PeerId,
        payloads: Vec<Bytes>,
        bytes: usize,
        result: Result<u64, StorageError>,
        reply: oneshot::Sender<Result<u64, ReliableError>>,
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
        seq: u64,
        result: Result<(), StorageError>,
        reply: Option<oneshot::Sender<Result<(), ReliableError>>>,
    },
    Sent {
        peer: PeerId,
        result: Result<(), ReliableError>,
    },
}

type Task<'a> = Pin<Box<dyn Future<Output = Done> + Send + 'a>>;
type Work<'a> = FuturesUnordered<Task<'a>>;

struct PeerState {
    session: Session,
    /// A send batch is with the link.
    sending: bool,
    /// Appends being stored.
    appending: usize,
}

/// Everything the driver knows; the loop in [`run`] feeds it.
pub(crate) struct Driver {
    opts: Arc<ReliableOptions>,
    peers: HashMap<PeerId, PeerState>,
    shared: Arc<Shared>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    ops: Vec<Op>,
    /// Storage operations in flight (appends, stores, acks).
    storing: usize,
    closing: bool,
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
            storing: 0,
            closing: false,
        };
        for session in sessions {
            let peer = session.peer().clone();
            driver.shared.set_acked(&peer, session.sender().acked());
            driver.peers.insert(
                peer,
                PeerState {
                    session,
                    sending: false,
                    appending: 0,
                },
            );
        }
        driver
    }

    fn peer(&mut self, peer: &PeerId) -> &mut PeerState {
        if !self.peers.contains_key(peer) {
            // Every peer the store knows was loaded at start-up, and the
            // store has one owner: a peer not loaded has no state.
            let session = Session::new(
                peer.clone(),
                self.opts.clone(),
                Default::default(),
                Default::default(),
            )
            .expect("options were validated and the state is empty");
            self.peers.insert(
                peer.clone(),
                PeerState {
                    session,
                    sending: false,
                    appending: 0,
                },
            );
        }
        self.peers.get_mut(peer).expect("just inserted")
    }

    fn command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Send {
                peer,
                payloads,
                reply,
            } => {
                let bytes = payloads.iter().map(Bytes::len).sum();
                let state = self.peer(&peer);
                if let Err(e) = state.session.reserve(payloads.len(), bytes) {
                    let _ = reply.send(Err(e));
                    return;
                }
                state.appending += 1;
                self.storing += 1;
                self.ops.push(Op::Append {
                    peer,
                    payloads,
                    bytes,
                    reply,
                });
            }
            Command::Ack { peer, seq, reply } => match self.shared.ack_mode {
                AckMode::Manual => {
                    self.storing += 1;
                    self.ops.push(Op::AckIncoming { peer, seq, reply });
                }
                _ => {
                    self.peer(&peer).session.handle_app_ack(seq);
                    self.pump(now, &peer);
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                }
            },
            Command::Pending { reply } => {
                let _ = reply.send(self.pending());
            }
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
                self.peer(&peer).session.handle_link_up(now);
                self.pump(now, &peer);
            }
            LinkEvent::Down(peer) => {
                tracing::debug!(%peer, "link down");
                self.peer(&peer).session.handle_link_down(now);
            }
            LinkEvent::Frame { peer, frame } => {
                if let Err(error) = self.peer(&peer).session.handle_frame(now, frame) {
                    tracing::warn!(%peer, %error, "peer broke the reliable protocol; frame ignored");
                }
                self.pump(now, &peer);
            }
        }
    }

    fn done(&mut self, now: Instant, done: Done) {
        match done {
            Done::Appended {
                peer,
                payloads,
                bytes,
                result,
                reply,
            } => {
                self.storing -= 1;
                let state = self.peer(&peer);
                state.appending -= 1;
                match result {
                    Ok(first) => {
                        for (seq, payload) in (first..).zip(payloads) {
                            state.session.handle_enqueued(now, seq, payload);
                        }
                        let _ = reply.send(Ok(first));
                    }
                    Err(e) => {
                        state.session.release(payloads.len(), bytes);
                        let _ = reply.send(Err(e.into()));
                    }
                }
                self.shared.progress.notify_waiters();
                self.pump(now, &peer);
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
                let state = self.peer(&peer);
                match result {
                    Ok(()) => state.session.handle_stored(last),
                    Err(error) => {
                        // Not acknowledged: the peer resends after its timeout.
                        tracing::warn!(%peer, %error, "could not store incoming messages");
                        state.session.handle_store_failed();
                    }
                }
                self.pump(now, &peer);
            }
            Done::AckedIncoming {
                peer,
                seq,
                result,
                reply,
            } => {
                self.storing -= 1;
                let outcome = match result {
                    Ok(()) => {
                        self.peer(&peer).session.handle_app_ack(seq);
                        self.pump(now, &peer);
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                };
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
            Done::Sent { peer, result } => {
                if let Err(error) = result {
                    // Lost frames are resent when the link is up again.
                    tracing::debug!(%peer, %error, "send failed");
                }
                self.peer(&peer).sending = false;
                self.pump(now, &peer);
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
            self.peer(&peer).session.handle_timeout(now);
            self.pump(now, &peer);
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|s| s.session.poll_timeout())
            .min()
    }

    /// Drains `peer`'s session: events, the next store batch, frames.
    fn pump(&mut self, _now: Instant, peer: &PeerId) {
        if self.closing {
            return;
        }
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        while let Some(event) = state.session.poll_event() {
            match event {
                SessionEvent::Acked { up_to } => {
                    self.shared.set_acked(peer, up_to);
                    self.shared.progress.notify_waiters();
                    self.storing += 1;
                    self.ops.push(Op::AckOutgoing {
                        peer: peer.clone(),
                        up_to,
                    });
                }
                SessionEvent::Deliver { seq, payload } => {
                    let acker = (self.shared.ack_mode == AckMode::Manual)
                        .then(|| self.shared.commands.clone());
                    let delivery = Delivery::new(peer.clone(), seq, payload, acker);
                    // The receiver lives as long as the endpoint.
                    let _ = self.deliveries.send(delivery);
                }
            }
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
                state.sending = true;
                self.ops.push(Op::Send {
                    peer: peer.clone(),
                    frames,
                });
            }
        }
    }

    fn pump_all(&mut self, now: Instant) {
        let peers: Vec<PeerId> = self.peers.keys().cloned().collect();
        for peer in peers {
            self.pump(now, &peer);
        }
    }
}

fn start<'a, L: Link, B: Backend>(op: Op, link: &'a L, backend: &'a B) -> Task<'a> {
    match op {
        Op::Append {
            peer,
            payloads,
            bytes,
            reply,
        } => Box::pin(async move {
            let result = backend.append_outgoing(&peer, payloads.clone()).await;
            Done::Appended {
                peer,
                payloads,
                bytes,
                result,
                reply,
            }
        }),
        Op::AckOutgoing { peer, up_to } => Box::pin(async move {
            let result = backend.ack_outgoing(&peer, up_to).await;
            Done::AckedOutgoing { peer, result }
        }),
        Op::StoreIncoming { peer, batch } => Box::pin(async move {
            let last = batch.last_seq();
            let result = backend.store_incoming(&peer, batch).await;
            Done::Stored { peer, last, result }
        }),
        Op::AckIncoming { peer, seq, reply } => Box::pin(async move {
            let result = backend.ack_incoming(&peer, vec![seq]).await;
            Done::AckedIncoming {
                peer,
                seq,
                result,
                reply,
            }
        }),
        Op::Send { peer, frames } => Box::pin(async move {
            for frame in frames {
                if let Err(e) = link.send(&peer, frame).await {
                    return Done::Sent {
                        peer,
                        result: Err(e),
                    };
                }
            }
            Done::Sent {
                peer,
                result: Ok(()),
            }
        }),
    }
}

/// The tokio clock (paused in tests) as a std `Instant` for the sessions.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Runs the driver until the endpoint is cancelled; returns what was still
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
    let mut work: Work<'_> = Work::new();
    let recv = link.recv();
    tokio::pin!(recv);
    let mut link_open = true;
    driver.pump_all(now());
    loop {
        for op in driver.ops.drain(..) {
            work.push(start(op, link, backend));
        }
        let deadline = driver.next_timeout();
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(done) = work.next(), if !work.is_empty() => driver.done(now(), done),
            event = &mut recv, if link_open => {
                match event {
                    Some(event) => driver.link_event(now(), event),
                    None => {
                        tracing::debug!("link closed");
                        link_open = false;
                    }
                }
                recv.set(link.recv());
            }
            command = commands.recv() => match command {
                Some(command) => driver.command(now(), command),
                None => break,
            },
            () = sleep_until_opt(deadline) => driver.timeout(now()),
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
