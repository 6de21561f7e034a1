//! The reliable layer's rows: `ReliableSocket::send_to` to delivery, on the
//! in-memory backend and on redb with an fsync per commit.
//!
//! Placement follows [`msg_rows`]: the sending endpoint and the receiving
//! endpoint each get their own OS thread with a current-thread tokio runtime
//! (a [`RedbBackend`] adds its own committer thread per store). The receiver binds, the sender connects; both use default
//! [`ReliableOptions`] (window 256, manual acknowledgement) and default
//! socket options.
//!
//! - [`RELIABLE_MEMORY`]: [`SENDERS`] tasks on the sender's thread share one
//!   endpoint and each calls `send_to` with a [`RELIABLE_SIZE`]-byte
//!   payload, one at a time, until the count or the time limit; the
//!   receiver takes every delivery, checks that it is the next sequence
//!   number, and acknowledges it (the acknowledgements run concurrently, as
//!   an application acknowledging after processing would). Both stores are
//!   [`MemoryBackend`]s. Delivered messages per second, compared with
//!   [`msg_rows::PUB_SUB`] at 64 B: what ordering, acknowledgement and
//!   retransmission state cost against fire-and-forget (target: at least
//!   0.3×).
//! - [`RELIABLE_MEMORY_AUTO`]: the same with the receiver in
//!   [`AckMode::Auto`]: a delivery counts as processed once the application
//!   has it, so the receiving application sends no acknowledgement of its
//!   own (the endpoints still acknowledge each other: the sender's window
//!   and retransmission work as before). Compared with
//!   [`msg_rows::PUB_SUB`] too: "delivered" with nothing else asked of the
//!   application, as Pub/Sub is measured.
//! - [`RELIABLE_REDB`]: the same on two [`RedbBackend`] files, every write
//!   committed with an fsync (group commit gathers concurrent writes of one
//!   store into one transaction). Compared with [`RELIABLE_MEMORY`], the
//!   cost of durability; the target is absolute, at least 50,000 msgs/s.
//!
//! The measured window runs from the first `send_to` to the last delivery.
//! A run ends only when every message sent was delivered, in order, and the
//! sender holds the acknowledgement of the last one; both endpoints then
//! shut down with nothing pending and the stores are closed. A full outbox
//! (the receiver behind by [`ReliableOptions::max_outbox_messages`]) is
//! backpressure: the sending task waits for the next acknowledgement.
//! Before the window, [`WARMUP`] empty messages go through both ends, so the
//! connection is up and the stores' tables exist.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use msg::reliable::{
    AckMode, Backend, MemoryBackend, PeerId, RedbBackend, ReliableError, ReliableOptions,
    ReliableSocket,
};
use tokio::sync::{oneshot, watch};

use crate::error::BenchError;
use crate::measure::{Config, Experiment, Measurement, Metric, Suite, Transport};
use crate::msg_rows::{self, Place, TRANSPORTS, on_runtime, other};
use crate::stats::per_sec;

/// Row name of reliable delivery between two in-memory stores.
pub const RELIABLE_MEMORY: &str = "msg reliable, memory, 64 senders";
/// Row name of reliable delivery between two in-memory stores, the receiver
/// in automatic acknowledgement mode.
pub const RELIABLE_MEMORY_AUTO: &str = "msg reliable, memory, auto-ack, 64 senders";
/// Row name of reliable delivery between two redb stores, fsync per commit.
pub const RELIABLE_REDB: &str = "msg reliable, redb fsync, 64 senders";
/// Payload size of the reliable rows, in bytes.
pub const RELIABLE_SIZE: usize = 64;
/// Tasks calling `send_to` at once in the reliable rows.
pub const SENDERS: usize = 64;
/// Empty messages sent and acknowledged before the measured window.
pub const WARMUP: usize = 100;

/// How long an endpoint's shutdown may wait for acknowledgements; every
/// message is acknowledged by then, so it does not wait.
const SHUTDOWN: Duration = Duration::from_secs(2);

/// Every reliable experiment, in table order.
pub fn experiments() -> Vec<Experiment> {
    let mut all = Vec::new();
    for t in TRANSPORTS {
        all.push(Experiment::new(
            format!("{RELIABLE_MEMORY} {t}"),
            move |cfg| reliable::<MemoryBackend>(cfg, t, AckMode::Manual),
        ));
    }
    for t in TRANSPORTS {
        all.push(Experiment::new(
            format!("{RELIABLE_MEMORY_AUTO} {t}"),
            move |cfg| reliable::<MemoryBackend>(cfg, t, AckMode::Auto),
        ));
    }
    for t in TRANSPORTS {
        all.push(Experiment::new(
            format!("{RELIABLE_REDB} {t}"),
            move |cfg| reliable::<RedbBackend>(cfg, t, AckMode::Manual),
        ));
    }
    all
}

/// A backend a reliable row can run on.
trait BenchStore: Backend + Clone {
    /// The row this store measures.
    const ROW: &'static str;
    /// The rows it is compared with.
    const REFS: &'static [&'static str];

    /// Opens a fresh store called `name`, in `dir` if it needs files.
    async fn open(dir: &Path, name: &str) -> Result<Self, BenchError>;

    /// Releases the store (for a file, waits until it is closed).
    async fn close(&self);
}

impl BenchStore for MemoryBackend {
    const ROW: &'static str = RELIABLE_MEMORY;
    const REFS: &'static [&'static str] = &[msg_rows::PUB_SUB];

    async fn open(_dir: &Path, _name: &str) -> Result<Self, BenchError> {
        Ok(MemoryBackend::new())
    }

    async fn close(&self) {}
}

impl BenchStore for RedbBackend {
    const ROW: &'static str = RELIABLE_REDB;
    const REFS: &'static [&'static str] = &[RELIABLE_MEMORY];

    async fn open(dir: &Path, name: &str) -> Result<Self, BenchError> {
        RedbBackend::open(dir.join(format!("{name}.redb")))
            .await
            .map_err(other)
    }

    async fn close(&self) {
        RedbBackend::close(self).await;
    }
}

/// One reliable row: [`Metric::MsgsPerSec`] delivered over `transport`,
/// with both endpoints on a store of type `S`.
///
/// # Errors
///
/// Endpoint or storage errors, endpoints that do not connect, a delivery
/// out of order, or a count delivered that differs from the count sent.
fn reliable<S: BenchStore>(
    cfg: &Config,
    transport: Transport,
    acks: AckMode,
) -> Result<Vec<Measurement>, BenchError> {
    let (row, refs) = match acks {
        AckMode::Manual => (S::ROW, S::REFS),
        _ => (RELIABLE_MEMORY_AUTO, &[msg_rows::PUB_SUB][..]),
    };
    let place = Place::new(transport)?;
    let limit = cfg.hard_limit();
    let (join, time_limit, count) = (cfg.join_timeout, cfg.time_limit, cfg.pubsub_count);
    let sender_id: PeerId = "bench-sender".parse().map_err(other)?;
    let receiver_id: PeerId = "bench-receiver".parse().map_err(other)?;
    let (endpoint_tx, endpoint_rx) = std::sync::mpsc::channel::<Result<String, BenchError>>();
    // The last sequence number of the run, once the senders are done.
    let (last_tx, last_rx) = watch::channel(u64::MAX);
    // The sender holds the last acknowledgement: the receiver may go.
    let (finished_tx, finished_rx) = oneshot::channel::<()>();

    let (sent, start, (delivered, end)) = std::thread::scope(|scope| {
        let place = &place;
        let (sender_id, receiver_id) = (&sender_id, &receiver_id);
        let receiver = scope.spawn(move || {
            on_runtime(limit, async move {
                let bound = async {
                    let backend = S::open(place.dir(), "receiver").await?;
                    let endpoint = ReliableSocket::open_with_socket_options(
                        receiver_id.clone(),
                        ReliableOptions::new().ack_mode(acks).clone(),
                        place.server_options()?,
                        backend.clone(),
                    )
                    .await
                    .map_err(other)?;
                    let bound = endpoint.bind(&place.bind_endpoint()).await.map_err(other)?;
                    Ok::<_, BenchError>((endpoint, backend, bound.to_string()))
                }
                .await;
                let (endpoint, backend) = match bound {
                    Ok((endpoint, backend, bound)) => {
                        let _ = endpoint_tx.send(Ok(bound));
                        (endpoint, backend)
                    }
                    Err(e) => {
                        let _ = endpoint_tx.send(Err(BenchError::Inconsistent(e.to_string())));
                        return Err(e);
                    }
                };
                let endpoint = Arc::new(endpoint);
                // A task of its own, as an application's receiver would be.
                let received =
                    tokio::spawn(receive(endpoint.clone(), sender_id.clone(), last_rx, acks))
                        .await
                        .map_err(|_| BenchError::Panicked)?;
                // Stay up until the sender has the acknowledgement of the
                // last message (or has given up).
                let _ = finished_rx.await;
                close(endpoint, backend).await?;
                received
            })
        });
        let sender = scope.spawn(move || {
            let endpoint = endpoint_rx
                .recv_timeout(limit)
                .map_err(|_| BenchError::Timeout("reliable receiver binding"))??;
            // `last_tx` moves into the future: dropped without a value, it
            // tells the receiver that the sender gave up.
            let result = on_runtime(limit, async move {
                let backend = S::open(place.dir(), "sender").await?;
                let socket = ReliableSocket::open_with_socket_options(
                    sender_id.clone(),
                    ReliableOptions::new(),
                    place.client_options()?,
                    backend.clone(),
                )
                .await
                .map_err(other)?;
                socket.connect(&endpoint).map_err(other)?;
                let socket = Arc::new(socket);
                let sent = send(&socket, receiver_id, count, join, time_limit, &last_tx).await;
                if sent.is_ok() {
                    close(socket, backend).await?;
                }
                sent
            });
            let _ = finished_tx.send(());
            result
        });
        let sender = sender.join().map_err(|_| BenchError::Panicked)?;
        let receiver = receiver.join().map_err(|_| BenchError::Panicked)?;
        let (sent, start) = sender?;
        Ok::<_, BenchError>((sent, start, receiver?))
    })?;

    if delivered != sent {
        return Err(BenchError::Inconsistent(format!(
            "{sent} reliable messages sent, {delivered} delivered"
        )));
    }
    let Some(end) = end.filter(|_| delivered > 0) else {
        return Err(BenchError::Inconsistent("no message delivered".into()));
    };
    let rate = per_sec(delivered, end.saturating_duration_since(start));
    Ok(vec![
        Measurement::new(
            Suite::Msg,
            row,
            transport,
            RELIABLE_SIZE,
            Metric::MsgsPerSec,
            rate,
        )
        .compared_with(refs),
    ])
}

/// The sending side: warms up, then runs [`SENDERS`] tasks calling
/// `send_to` until `count` messages or `limit` is reached, announces the
/// last sequence number and waits for its acknowledgement. Returns that
/// number of measured messages and when the first was sent.
async fn send(
    socket: &Arc<ReliableSocket>,
    to: &PeerId,
    count: u64,
    join: Duration,
    limit: Duration,
    last_tx: &watch::Sender<u64>,
) -> Result<(u64, Instant), BenchError> {
    let connected = match socket.socket() {
        Some(s) => s.wait_for_peers(1, join).await,
        None => false,
    };
    if !connected {
        return Err(BenchError::Timeout("reliable sender connecting"));
    }
    let warm = socket
        .send_batch_to(to, std::iter::repeat_n(Bytes::new(), WARMUP))
        .await
        .map_err(other)?;
    let first = warm.end;
    socket.wait_acked(to, first - 1).await.map_err(other)?;

    let payload = Bytes::from(vec![0xA5; RELIABLE_SIZE]);
    let claimed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + limit;
    let tasks: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (socket, to, payload) = (socket.clone(), to.clone(), payload.clone());
            let claimed = claimed.clone();
            tokio::spawn(async move {
                let mut last = 0;
                while claimed.fetch_add(1, Ordering::Relaxed) < count && Instant::now() < deadline {
                    last = last.max(send_one(&socket, &to, payload.clone()).await?);
                }
                Ok::<u64, BenchError>(last)
            })
        })
        .collect();
    let mut last = first - 1;
    for t in tasks {
        last = last.max(t.await.map_err(|_| BenchError::Panicked)??);
    }
    // Sequence numbers are contiguous from 1: the highest assigned is the
    // last message of the run.
    let _ = last_tx.send(last);
    socket.wait_acked(to, last).await.map_err(other)?;
    Ok((last - (first - 1), start))
}

/// `send_to`, waiting for the next acknowledgement while the outbox is
/// full.
async fn send_one(socket: &ReliableSocket, to: &PeerId, payload: Bytes) -> Result<u64, BenchError> {
    loop {
        match socket.send_to(to, payload.clone()).await {
            Ok(seq) => return Ok(seq),
            Err(e) if e.is_outbox_full() => {
                let acked = socket.acked(to);
                socket.wait_acked(to, acked + 1).await.map_err(other)?;
            }
            Err(e) => return Err(other(e)),
        }
    }
}

/// The receiving side: takes [`WARMUP`] deliveries, then every delivery up
/// to the sequence number `last` announces, each checked to be the next one
/// from `from`, and acknowledges them all. Returns the measured deliveries
/// and when the last one arrived.
async fn receive(
    socket: Arc<ReliableSocket>,
    from: PeerId,
    mut last: watch::Receiver<u64>,
    acks_mode: AckMode,
) -> Result<(u64, Option<Instant>), BenchError> {
    let mut acks = FuturesUnordered::new();
    let (mut next, mut delivered, mut at) = (1u64, 0u64, None);
    let mut announcing = true;
    while next <= *last.borrow() {
        tokio::select! {
            Some(acked) = acks.next(), if !acks.is_empty() => {
                let acked: Result<(), ReliableError> = acked;
                acked.map_err(other)?;
            }
            delivery = socket.recv() => {
                let Some(delivery) = delivery else {
                    return Err(BenchError::Inconsistent("reliable receiver closed".into()));
                };
                if delivery.peer() != &from || delivery.seq() != next {
                    return Err(BenchError::Inconsistent(format!(
                        "expected reliable message {next} from {from}, got {} from {}",
                        delivery.seq(),
                        delivery.peer()
                    )));
                }
                if next > WARMUP as u64 {
                    if delivery.payload().len() != RELIABLE_SIZE {
                        return Err(BenchError::Inconsistent("message of the wrong size".into()));
                    }
                    delivered += 1;
                    at = Some(Instant::now());
                }
                next += 1;
                if acks_mode == AckMode::Manual {
                    acks.push(delivery.ack());
                }
            }
            changed = last.changed(), if announcing => {
                // Closed: with the last number announced, the sender is
                // done; without, it gave up.
                if changed.is_err() {
                    if *last.borrow() == u64::MAX {
                        return Err(BenchError::Inconsistent("reliable sender gave up".into()));
                    }
                    announcing = false;
                }
            }
        }
    }
    while let Some(acked) = acks.next().await {
        acked.map_err(other)?;
    }
    Ok((delivered, at))
}

/// Shuts `endpoint` down (nothing may be left pending) and closes its store.
async fn close<S: BenchStore>(endpoint: Arc<ReliableSocket>, store: S) -> Result<(), BenchError> {
    let Some(endpoint) = Arc::into_inner(endpoint) else {
        return Err(BenchError::Inconsistent(
            "reliable endpoint still shared".into(),
        ));
    };
    let report = endpoint.shutdown(SHUTDOWN).await;
    store.close().await;
    if report.is_complete() {
        Ok(())
    } else {
        Err(BenchError::Inconsistent(format!(
            "{} reliable messages still pending at the end",
            report.pending_messages()
        )))
    }
}
