//! The reliable layer's rows: `ReliableSocket::send_to` to delivery, on the
//! in-memory backend and on redb with an fsync per commit.
//!
//! Placement follows [`msg_rows`]: in [`Shape::CurrentThread`] the sending
//! endpoint and the receiving endpoint each get their own OS thread with a
//! current-thread tokio runtime, in [`Shape::MultiThread`] both are tasks
//! on one multi-thread runtime (a [`RedbBackend`] adds its own committer
//! thread per store). The receiver binds, the sender connects; both use default
//! [`ReliableOptions`] (window 256, manual acknowledgement) and default
//! socket options.
//!
//! - [`RELIABLE_MEMORY`]: [`SENDERS`] tasks on the sender's thread share one
//!   endpoint and each calls `send_to` with a [`RELIABLE_SIZE`]-byte
//!   payload, one at a time, until the count or the time limit; the
//!   receiver takes what has arrived with `recv_many` (up to
//!   [`RECV_BATCH`]), checks that each delivery is the next sequence
//!   number, and acknowledges the batch with one `Delivery::ack_all` (the
//!   acknowledgements run concurrently with the next receive, as an
//!   application acknowledging after processing would). Both stores are
//!   [`MemoryBackend`]s. Delivered messages per second, compared with
//!   [`msg_rows::PUB_SUB`] at 64 B: what ordering, acknowledgement and
//!   retransmission state cost against fire-and-forget (target: at least
//!   0.3×).
//! - [`RELIABLE_MEMORY_EACH`]: the same with the receiver taking one
//!   delivery at a time (`recv`) and acknowledging each with its own
//!   `ack`: a storage operation and a reply per delivery.
//! - [`RELIABLE_MEMORY_AUTO`]: the same with the receiver in
//!   [`AckMode::Auto`]: a delivery counts as processed once the application
//!   has it, so the receiving application sends no acknowledgement of its
//!   own (the endpoints still acknowledge each other: the sender's window
//!   and retransmission work as before). Compared with
//!   [`msg_rows::PUB_SUB`] too: "delivered" with nothing else asked of the
//!   application, as Pub/Sub is measured.
//! - [`RELIABLE_POSTGRES`]: the same workload with both stores in PostgreSQL
//!   ([`PostgresBackend`], `synchronous_commit = on`), on the server that
//!   `MSG_TEST_POSTGRES` names or a throwaway local cluster; the target is
//!   absolute, at least 25,000 msgs/s.
//! - [`RELIABLE_REDB`]: the [`RELIABLE_MEMORY`] workload on two [`RedbBackend`] files, every write
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

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use msg::reliable::{
    AckMode, Backend, Delivery, MemoryBackend, PeerId, PostgresBackend, PostgresOptions,
    RedbBackend, ReliableError, ReliableOptions, ReliableSocket,
};
use tokio::sync::{oneshot, watch};

use crate::error::BenchError;
use crate::measure::{Config, Experiment, Measurement, Metric, Shape, Suite, Transport};
use crate::msg_rows::{self, Place, SHAPES, TRANSPORTS, bound_endpoint, other};
use crate::placement::two_ends;
use crate::stats::per_sec;

/// Row name of reliable delivery between two in-memory stores, the
/// receiver acknowledging what each `recv_many` took with one `ack_all`.
pub const RELIABLE_MEMORY: &str = "msg reliable, memory, 64 senders";
/// Row name of reliable delivery between two in-memory stores, the
/// receiver acknowledging every delivery with its own `ack`.
pub const RELIABLE_MEMORY_EACH: &str = "msg reliable, memory, ack each, 64 senders";
/// Row name of reliable delivery between two in-memory stores, the receiver
/// in automatic acknowledgement mode.
pub const RELIABLE_MEMORY_AUTO: &str = "msg reliable, memory, auto-ack, 64 senders";
/// Row name of reliable delivery between two redb stores, fsync per commit.
pub const RELIABLE_REDB: &str = "msg reliable, redb fsync, 64 senders";
/// Row name of reliable delivery with both ends on PostgreSQL, each commit
/// flushed (`synchronous_commit = on`, the server's default).
pub const RELIABLE_POSTGRES: &str = "msg reliable, postgres sync commit, 64 senders";
/// Payload size of the reliable rows, in bytes.
pub const RELIABLE_SIZE: usize = 64;
/// Tasks calling `send_to` at once in the reliable rows.
pub const SENDERS: usize = 64;
/// Empty messages sent and acknowledged before the measured window.
pub const WARMUP: usize = 100;

/// How long an endpoint's shutdown may wait for acknowledgements; every
/// message is acknowledged by then, so it does not wait.
const SHUTDOWN: Duration = Duration::from_secs(2);

/// How the receiving application acknowledges its deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Acking {
    /// `recv_many`, then one `Delivery::ack_all` for what it took.
    Batch,
    /// `recv`, then `Delivery::ack` for each.
    Each,
    /// `recv_many` in [`AckMode::Auto`]: taking them acknowledges them.
    Auto,
}

/// Every reliable experiment, in table order: shape by shape
/// ([`msg_rows::SHAPES`]), each name ending with its shape in parentheses.
pub fn experiments() -> Vec<Experiment> {
    let mut all = Vec::new();
    for shape in SHAPES {
        for (name, acking) in [
            (RELIABLE_MEMORY, Acking::Batch),
            (RELIABLE_MEMORY_EACH, Acking::Each),
            (RELIABLE_MEMORY_AUTO, Acking::Auto),
        ] {
            for t in TRANSPORTS {
                all.push(Experiment::new(
                    format!("{name} {t} ({shape})"),
                    move |cfg| reliable::<MemoryBackend>(cfg, t, name, acking, shape),
                ));
            }
        }
        for t in TRANSPORTS {
            all.push(Experiment::new(
                format!("{RELIABLE_REDB} {t} ({shape})"),
                move |cfg| reliable::<RedbBackend>(cfg, t, RELIABLE_REDB, Acking::Batch, shape),
            ));
        }
        for t in TRANSPORTS {
            all.push(Experiment::new(
                format!("{RELIABLE_POSTGRES} {t} ({shape})"),
                move |cfg| {
                    reliable::<PostgresBackend>(cfg, t, RELIABLE_POSTGRES, Acking::Batch, shape)
                },
            ));
        }
    }
    all
}

/// A backend a reliable row can run on.
trait BenchStore: Backend + Clone + Send + Sync + 'static {
    /// The rows its rows are compared with.
    const REFS: &'static [&'static str];

    /// Opens a fresh store called `name`, in `dir` if it needs files.
    fn open(dir: &Path, name: &str) -> impl Future<Output = Result<Self, BenchError>> + Send;

    /// Releases the store (for a file, waits until it is closed).
    fn close(&self) -> impl Future<Output = ()> + Send;
}

impl BenchStore for MemoryBackend {
    const REFS: &'static [&'static str] = &[msg_rows::PUB_SUB];

    async fn open(_dir: &Path, _name: &str) -> Result<Self, BenchError> {
        Ok(MemoryBackend::new())
    }

    async fn close(&self) {}
}

impl BenchStore for RedbBackend {
    const REFS: &'static [&'static str] = &[RELIABLE_MEMORY];

    fn open(dir: &Path, name: &str) -> impl Future<Output = Result<Self, BenchError>> + Send {
        let path = dir.join(format!("{name}.redb"));
        async move { RedbBackend::open(path).await.map_err(other) }
    }

    async fn close(&self) {
        RedbBackend::close(self).await;
    }
}

impl BenchStore for PostgresBackend {
    const REFS: &'static [&'static str] = &[RELIABLE_REDB];

    /// Identity `bench-NAME` in a schema of its own, on the server
    /// `MSG_TEST_POSTGRES` names or on a throwaway cluster (fsync on).
    fn open(_dir: &Path, name: &str) -> impl Future<Output = Result<Self, BenchError>> + Send {
        let id = format!("bench-{name}");
        async move {
            let url = msg_testkit::postgres::server(RELIABLE_POSTGRES).ok_or_else(|| {
                other(std::io::Error::other(msg_testkit::postgres::skip_reason(
                    RELIABLE_POSTGRES,
                )))
            })?;
            let id: PeerId = id.parse().map_err(other)?;
            let mut opts = PostgresOptions::new();
            opts.schema(msg_testkit::postgres::unique_schema("bench"));
            PostgresBackend::open_with_options(url, &id, &opts)
                .await
                .map_err(other)
        }
    }

    async fn close(&self) {
        PostgresBackend::close(self).await;
    }
}

/// One reliable row, called `row`: [`Metric::MsgsPerSec`] delivered over
/// `transport`, with both endpoints on a store of type `S`, the receiver
/// acknowledging as `acking` says.
///
/// # Errors
///
/// Endpoint or storage errors, endpoints that do not connect, a delivery
/// out of order, or a count delivered that differs from the count sent.
fn reliable<S: BenchStore>(
    cfg: &Config,
    transport: Transport,
    row: &'static str,
    acking: Acking,
    shape: Shape,
) -> Result<Vec<Measurement>, BenchError> {
    let refs = S::REFS;
    let acks = match acking {
        Acking::Auto => AckMode::Auto,
        Acking::Batch | Acking::Each => AckMode::Manual,
    };
    let place = Arc::new(Place::new(transport)?);
    let limit = cfg.hard_limit();
    let (join, time_limit, count) = (cfg.join_timeout, cfg.time_limit, cfg.pubsub_count);
    let sender_id: PeerId = "bench-sender".parse().map_err(other)?;
    let receiver_id: PeerId = "bench-receiver".parse().map_err(other)?;
    let (endpoint_tx, endpoint_rx) = oneshot::channel::<Result<String, String>>();
    // The last sequence number of the run, once the senders are done.
    let (last_tx, last_rx) = watch::channel(u64::MAX);
    // The sender holds the last acknowledgement: the receiver may go.
    let (finished_tx, finished_rx) = oneshot::channel::<()>();

    let receiver = {
        let (place, sender_id, receiver_id) =
            (place.clone(), sender_id.clone(), receiver_id.clone());
        async move {
            let bound = async {
                let backend = S::open(place.dir(), "receiver").await?;
                let endpoint = ReliableSocket::open_with_socket_options(
                    receiver_id,
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
                    let _ = endpoint_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            let endpoint = Arc::new(endpoint);
            // A task of its own, as an application's receiver would be.
            let received = tokio::spawn(receive(endpoint.clone(), sender_id, last_rx, acking))
                .await
                .map_err(|_| BenchError::Panicked)?;
            // Stay up until the sender has the acknowledgement of the
            // last message (or has given up).
            let _ = finished_rx.await;
            close(endpoint, backend).await?;
            received
        }
    };
    // `last_tx` and `finished_tx` move into the sender: dropped without a
    // value, they tell the receiver that the sender gave up.
    let sender = async move {
        let _finished = finished_tx;
        let endpoint = bound_endpoint(limit, endpoint_rx, "reliable receiver binding").await?;
        let backend = S::open(place.dir(), "sender").await?;
        let socket = ReliableSocket::open_with_socket_options(
            sender_id,
            ReliableOptions::new(),
            place.client_options()?,
            backend.clone(),
        )
        .await
        .map_err(other)?;
        socket.connect(&endpoint).map_err(other)?;
        let socket = Arc::new(socket);
        let sent = send(&socket, &receiver_id, count, join, time_limit, &last_tx).await;
        if sent.is_ok() {
            close(socket, backend).await?;
        }
        sent
    };
    let ((delivered, end), (sent, start)) = two_ends(shape, limit, "msg peer", receiver, sender)?;

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
        .on(shape)
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
    // The time limit as a flag, so that the senders do not read the clock
    // for every message.
    let expired = Arc::new(AtomicBool::new(false));
    let timer = tokio::spawn({
        let expired = expired.clone();
        async move {
            tokio::time::sleep(limit).await;
            expired.store(true, Ordering::Relaxed);
        }
    });
    let tasks: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (socket, to, payload) = (socket.clone(), to.clone(), payload.clone());
            let (claimed, expired) = (claimed.clone(), expired.clone());
            tokio::spawn(async move {
                let mut last = 0;
                while claimed.fetch_add(1, Ordering::Relaxed) < count
                    && !expired.load(Ordering::Relaxed)
                {
                    last = last.max(socket.send_to(&to, payload.clone()).await.map_err(other)?);
                }
                Ok::<u64, BenchError>(last)
            })
        })
        .collect();
    let mut last = first - 1;
    for t in tasks {
        last = last.max(t.await.map_err(|_| BenchError::Panicked)??);
    }
    timer.abort();
    // Sequence numbers are contiguous from 1: the highest assigned is the
    // last message of the run.
    let _ = last_tx.send(last);
    socket.wait_acked(to, last).await.map_err(other)?;
    Ok((last - (first - 1), start))
}

/// Most deliveries the receiver of a batched row takes with `recv_many`
/// (and acknowledges with one `ack_all`) at once.
pub const RECV_BATCH: usize = 256;

/// The receiving side: takes [`WARMUP`] deliveries, then every delivery up
/// to the sequence number `last` announces, each checked to be the next one
/// from `from`, and acknowledges them all as `acking` says (the
/// acknowledgements run concurrently, as an application acknowledging after
/// processing would). Returns the measured deliveries and when the last one
/// arrived.
async fn receive(
    socket: Arc<ReliableSocket>,
    from: PeerId,
    mut last: watch::Receiver<u64>,
    acking: Acking,
) -> Result<(u64, Option<Instant>), BenchError> {
    let mut acks = FuturesUnordered::new();
    let mut check = Checker {
        from,
        next: 1,
        delivered: 0,
        at: None,
        unstamped: false,
    };
    let mut batch = Vec::with_capacity(RECV_BATCH);
    let mut announcing = true;
    while check.next <= *last.borrow() {
        tokio::select! {
            Some(acked) = acks.next(), if !acks.is_empty() => {
                let acked: Result<(), ReliableError> = acked;
                acked.map_err(other)?;
            }
            taken = socket.recv_many(&mut batch, RECV_BATCH), if acking != Acking::Each => {
                if taken == 0 {
                    return Err(BenchError::Inconsistent("reliable receiver closed".into()));
                }
                for delivery in &batch {
                    check.next_is(delivery)?;
                }
                check.stamp();
                if acking == Acking::Batch {
                    acks.push(Delivery::ack_all(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(RECV_BATCH),
                    )).boxed());
                } else {
                    // Acknowledged by taking them.
                    batch.clear();
                }
            }
            delivery = socket.recv(), if acking == Acking::Each => {
                let Some(delivery) = delivery else {
                    return Err(BenchError::Inconsistent("reliable receiver closed".into()));
                };
                check.next_is(&delivery)?;
                check.stamp();
                if acking == Acking::Each {
                    acks.push(delivery.ack().boxed());
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
    Ok((check.delivered, check.at))
}

/// Checks that deliveries come in order from one peer, and counts those
/// after the warm-up.
struct Checker {
    from: PeerId,
    next: u64,
    delivered: u64,
    /// When the last counted delivery was taken.
    at: Option<Instant>,
    /// Deliveries were counted since `at` was set.
    unstamped: bool,
}

impl Checker {
    fn next_is(&mut self, delivery: &Delivery) -> Result<(), BenchError> {
        if delivery.peer() != &self.from || delivery.seq() != self.next {
            return Err(BenchError::Inconsistent(format!(
                "expected reliable message {} from {}, got {} from {}",
                self.next,
                self.from,
                delivery.seq(),
                delivery.peer()
            )));
        }
        if self.next > WARMUP as u64 {
            if delivery.payload().len() != RELIABLE_SIZE {
                return Err(BenchError::Inconsistent("message of the wrong size".into()));
            }
            self.delivered += 1;
            self.unstamped = true;
        }
        self.next += 1;
        Ok(())
    }

    /// Notes the time if deliveries were counted since the last call: one
    /// clock read per batch taken.
    fn stamp(&mut self) {
        if std::mem::take(&mut self.unstamped) {
            self.at = Some(Instant::now());
        }
    }
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
