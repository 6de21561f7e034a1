//! `msg bench`: both ends of a pattern in this process, over a real
//! transport on loopback, with a progress bar and a summary table.
//!
//! Latencies are measured per message with the monotonic clock: a request's
//! round trip for Req/Rep, publish-to-receipt for Pub/Sub, send-to-receipt
//! for Push/Pull and
//! `send_to`-to-delivery for the reliable layer (the sender writes the send
//! time into the first 8 payload bytes; both ends share one process, so one
//! clock).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};
use msg::reliable::{
    Backend, Delivery, MemoryBackend, PeerId, RedbBackend, ReliableError, ReliableOptions,
    ReliableSocket,
};
use msg::transport::{AnyTransport, Quic, QuicOptions, Tls, TlsClientConfig, TlsOptions, dev};
use msg::{
    Compression, PubSocket, PullSocket, PushSocket, RepSocket, ReqSocket, SocketOptions, SubSocket,
};
use serde_json::json;
use tempfile::TempDir;

use crate::cli::{
    BenchArgs, BenchBackend, BenchCommand, BenchPubSubArgs, BenchPushPullArgs, BenchReliableArgs,
    BenchReqRepArgs, BenchTransport,
};
use crate::parse::format_duration;

/// Messages sent when neither --count nor --duration is given.
const DEFAULT_COUNT: u64 = 100_000;
/// How long the sockets may take to connect before the bench gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A subscriber that has heard nothing for this long after the publisher
/// finished has everything it is going to get.
const IDLE_AFTER_PUBLISH: Duration = Duration::from_millis(250);
/// The topic every bench message goes under.
const TOPIC: &str = "bench";
/// Most deliveries the reliable receiver takes, and acknowledges, at once.
const RECV_BATCH: usize = 256;

/// Runs `msg bench ...`.
///
/// # Errors
///
/// The sockets cannot be set up or do not connect, or a publish fails.
pub(crate) async fn run(command: BenchCommand) -> anyhow::Result<()> {
    let (summary, json) = match command {
        BenchCommand::Reqrep(args) => {
            let json = args.bench.json;
            (reqrep(args).await?, json)
        }
        BenchCommand::Pubsub(args) => {
            let json = args.bench.json;
            (pubsub(args).await?, json)
        }
        BenchCommand::Pushpull(args) => {
            let json = args.bench.json;
            (pushpull(args).await?, json)
        }
        BenchCommand::Reliable(args) => {
            let json = args.bench.json;
            (reliable(args).await?, json)
        }
    };
    if json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_table());
    }
    Ok(())
}

/// Messages the reliable bench sends (and waits for) before it measures:
/// they bring the connection up and create the stores' tables.
const RELIABLE_WARMUP: usize = 100;
/// How long the reliable sockets may take to shut down at the end; every
/// message is acknowledged by then, so they need no time at all.
const RELIABLE_SHUTDOWN: Duration = Duration::from_secs(5);

/// `msg bench reliable`: opens the two stores (redb files in a temporary
/// directory, or memory), runs the bench on them, and closes them.
async fn reliable(args: BenchReliableArgs) -> anyhow::Result<Summary> {
    match args.backend {
        BenchBackend::Memory => {
            reliable_on(&args, "memory", MemoryBackend::new(), MemoryBackend::new()).await
        }
        BenchBackend::Redb => {
            let dir = tempfile::Builder::new()
                .prefix("msg-bench-")
                .tempdir()
                .context("cannot make a directory for the redb stores")?;
            let sender = RedbBackend::open(dir.path().join("sender.redb"))
                .await
                .context("cannot open the sender's store")?;
            let receiver = match RedbBackend::open(dir.path().join("receiver.redb")).await {
                Ok(store) => store,
                Err(error) => {
                    sender.close().await;
                    return Err(error).context("cannot open the receiver's store");
                }
            };
            let result = reliable_on(&args, "redb", sender.clone(), receiver.clone()).await;
            // The sockets are shut down (or dropped, after an error): wait
            // until both files are released before the directory goes.
            sender.close().await;
            receiver.close().await;
            result
        }
    }
}

/// The reliable bench proper, on the stores it is given.
///
/// The receiver binds and the sender connects. `--concurrency` tasks share
/// the sending endpoint and call `send_to` one message at a time each; the
/// receiver takes every delivery, checks it is the next in order, and
/// acknowledges it (the acknowledgements are stored concurrently, as the
/// sends are, so that they share fsyncs). The run ends when the receiver has
/// every message and the sender has the acknowledgement of the last one.
async fn reliable_on<B: Backend>(
    args: &BenchReliableArgs,
    backend: &str,
    sender_store: B,
    receiver_store: B,
) -> anyhow::Result<Summary> {
    let bench = &args.bench;
    let concurrency = args.concurrency as usize;
    let plan = Plan::new(bench);
    let rig = Rig::new(bench.transport, bench.compression.into(), bench.size)?;
    let sender_id: PeerId = "bench-sender".parse()?;
    let receiver_id: PeerId = "bench-receiver".parse()?;

    let receiver = ReliableSocket::open_with_socket_options(
        receiver_id.clone(),
        ReliableOptions::new(),
        rig.server,
        receiver_store,
    )
    .await
    .context("cannot open the receiving endpoint")?;
    let endpoint = receiver.bind(&rig.bind).await?;
    let sender = ReliableSocket::open_with_socket_options(
        sender_id.clone(),
        ReliableOptions::new(),
        rig.client,
        sender_store,
    )
    .await
    .context("cannot open the sending endpoint")?;
    sender.connect(&endpoint.to_string())?;
    let connected = match sender.socket() {
        Some(socket) => socket.wait_for_peers(1, CONNECT_TIMEOUT).await,
        None => false,
    };
    if !connected {
        bail!("the bench's endpoints did not connect over {endpoint}");
    }
    let (sender, receiver) = (Arc::new(sender), Arc::new(receiver));

    // Warm up: the first messages, both ways, and the stores' first writes.
    let warmup = sender
        .send_batch_to(
            &receiver_id,
            std::iter::repeat_n(Bytes::new(), RELIABLE_WARMUP),
        )
        .await?;
    for _ in warmup.clone() {
        let delivery = receiver
            .recv()
            .await
            .context("the receiving endpoint closed")?;
        delivery.ack().await?;
    }
    sender.wait_acked(&receiver_id, warmup.end - 1).await?;

    let template = payload(bench.size);
    let timestamped = bench.size >= 8;
    // The last sequence number of the run: u64::MAX while the senders are
    // still at it.
    let (last_tx, last_rx) = tokio::sync::watch::channel(u64::MAX);
    let delivered = Arc::new(AtomicU64::new(0));
    let clock = Instant::now();

    let receiving = tokio::spawn(receive_reliable(
        receiver.clone(),
        sender_id,
        warmup.end,
        last_rx,
        delivered.clone(),
        clock,
        timestamped,
    ));

    let claimed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = Progress::start(plan, started, delivered.clone());
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (sender, peer, template) = (sender.clone(), receiver_id.clone(), template.clone());
        let claimed = claimed.clone();
        senders.push(tokio::spawn(async move {
            let mut last = 0;
            while plan.claim(&claimed, started) {
                let message = if timestamped {
                    let mut bytes = BytesMut::from(&template[..]);
                    bytes[..8].copy_from_slice(&nanos(clock.elapsed()).to_le_bytes());
                    bytes.freeze()
                } else {
                    template.clone()
                };
                // Waits for room when the outbox is full (the receiver is
                // behind): backpressure, not a failure.
                last = last.max(sender.send_to(&peer, message).await?);
            }
            anyhow::Ok(last)
        }));
    }
    let mut outcome = Ok(warmup.end - 1);
    for task in senders {
        match task.await.context("a bench task failed") {
            Ok(Ok(last)) => outcome = outcome.map(|l: u64| l.max(last)),
            Ok(Err(error)) | Err(error) => outcome = outcome.and(Err(error)),
        }
    }
    let last = match outcome {
        Ok(last) => last,
        Err(error) => {
            progress.finish();
            receiving.abort();
            return Err(error.context("a send failed"));
        }
    };
    // Sequence numbers are contiguous from 1: the highest one assigned
    // tells the receiver when it has everything.
    let _ = last_tx.send(last);
    sender.wait_acked(&receiver_id, last).await?;
    let latencies = receiving.await.context("a bench task failed")??;
    let elapsed = started.elapsed();
    progress.finish();

    let sent = last - (warmup.end - 1);
    let received = delivered.load(Relaxed);
    if received != sent {
        bail!("sent {sent} messages but {received} were delivered");
    }
    for (name, endpoint) in [("sender", sender), ("receiver", receiver)] {
        let endpoint = Arc::into_inner(endpoint).context("a bench task outlived the run")?;
        let report = endpoint.shutdown(RELIABLE_SHUTDOWN).await;
        if !report.is_complete() {
            bail!(
                "the {name} still had {} unacknowledged messages at the end",
                report.pending_messages()
            );
        }
    }

    let mut summary = Summary::new(
        "reliable",
        bench,
        format!(
            "{concurrency} sender{}, {backend} stores",
            if concurrency == 1 { "" } else { "s" }
        ),
        latencies,
        0,
        elapsed,
    );
    summary.delivered = received;
    Ok(summary)
}

/// The receiving side of `msg bench reliable`: takes deliveries from
/// `from` starting at sequence number `first` until the one `last`
/// announces, checks each is the next in order, and acknowledges them a
/// batch at a time, as [`RECV_BATCH`] deliveries taken at once (each
/// acknowledgement is a write to the store, concurrent with the next
/// receive). Counts
/// them in `delivered`; returns the send-to-delivery latencies in
/// nanoseconds of `clock` (when payloads carry a timestamp).
async fn receive_reliable(
    receiver: Arc<ReliableSocket>,
    from: PeerId,
    first: u64,
    mut last: tokio::sync::watch::Receiver<u64>,
    delivered: Arc<AtomicU64>,
    clock: Instant,
    timestamped: bool,
) -> anyhow::Result<Vec<u64>> {
    let mut latencies = Vec::new();
    let mut acks = FuturesUnordered::new();
    let mut batch = Vec::with_capacity(RECV_BATCH);
    let mut next = first;
    while next <= *last.borrow() {
        tokio::select! {
            Some(acked) = acks.next(), if !acks.is_empty() => {
                let acked: Result<(), ReliableError> = acked;
                acked.context("cannot acknowledge a delivery")?;
            }
            taken = receiver.recv_many(&mut batch, RECV_BATCH) => {
                if taken == 0 {
                    bail!("the receiving endpoint closed");
                }
                for delivery in &batch {
                    if delivery.peer() != &from || delivery.seq() != next {
                        bail!(
                            "expected message #{next} from {from}, got #{} from {}",
                            delivery.seq(),
                            delivery.peer()
                        );
                    }
                    if timestamped {
                        if let Some(stamp) = delivery.payload().get(..8) {
                            let mut bytes = [0u8; 8];
                            bytes.copy_from_slice(stamp);
                            let now = nanos(clock.elapsed());
                            latencies.push(now.saturating_sub(u64::from_le_bytes(bytes)));
                        }
                    }
                    next += 1;
                }
                delivered.fetch_add(taken as u64, Relaxed);
                // One acknowledgement (one store write) per batch taken.
                let done = std::mem::replace(&mut batch, Vec::with_capacity(RECV_BATCH));
                acks.push(Delivery::ack_all(done));
            }
            changed = last.changed() => {
                changed.context("the senders went away")?;
            }
        }
    }
    while let Some(acked) = acks.next().await {
        acked.context("cannot acknowledge a delivery")?;
    }
    Ok(latencies)
}

/// When a run stops: after a number of messages or after some time.
#[derive(Clone, Copy, Debug)]
enum Plan {
    Count(u64),
    Duration(Duration),
}

impl Plan {
    fn new(args: &BenchArgs) -> Self {
        match (args.count, args.duration) {
            (_, Some(d)) => Plan::Duration(d),
            (Some(n), None) => Plan::Count(n),
            (None, None) => Plan::Count(DEFAULT_COUNT),
        }
    }

    /// Claims the next message: whether one more may be sent, given how
    /// many were claimed before (`claimed`, shared by all senders) and when
    /// the run started.
    fn claim(&self, claimed: &AtomicU64, started: Instant) -> bool {
        match *self {
            Plan::Count(n) => claimed.fetch_add(1, Relaxed) < n,
            Plan::Duration(d) => {
                claimed.fetch_add(1, Relaxed);
                started.elapsed() < d
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Plan::Count(n) => format!("{n} messages"),
            Plan::Duration(d) => format!("for {}", format_duration(*d)),
        }
    }
}

/// Both sides' socket options and where to bind, for one transport.
struct Rig {
    server: SocketOptions,
    client: SocketOptions,
    bind: String,
    /// Holds the IPC socket's directory until the bench ends.
    _dir: Option<TempDir>,
}

impl Rig {
    fn new(
        transport: BenchTransport,
        compression: Compression,
        size: usize,
    ) -> anyhow::Result<Rig> {
        let mut server = SocketOptions::new();
        let mut client = SocketOptions::new();
        for options in [&mut server, &mut client] {
            options
                .compression(compression)
                // Room for the largest --size; the default limit is 64 MiB.
                .max_frame_size(size.saturating_add(64 * 1024).max(64 << 20))
                .request_timeout(Duration::from_secs(30));
        }
        let mut dir = None;
        let bind = match transport {
            BenchTransport::Tcp => "tcp://127.0.0.1:0".to_owned(),
            BenchTransport::Inproc => format!("inproc://msg-bench-{}", std::process::id()),
            BenchTransport::Ipc => {
                let tmp = tempfile::Builder::new()
                    .prefix("msg-bench-")
                    .tempdir()
                    .context("cannot make a directory for the ipc socket")?;
                let path = tmp.path().join("bench.sock");
                dir = Some(tmp);
                format!("ipc://{}", path.display())
            }
            BenchTransport::Tls | BenchTransport::Quic => {
                let cert = dev::self_signed(["127.0.0.1", "localhost"])?;
                let mut roots = TlsClientConfig::new();
                roots.add_root(cert.certificate());
                if transport == BenchTransport::Tls {
                    let (mut s, mut c) = (TlsOptions::new(), TlsOptions::new());
                    s.server(cert.server_config());
                    c.client(roots);
                    server.transport(AnyTransport::new().with_tls(Tls::new(&s)?));
                    client.transport(AnyTransport::new().with_tls(Tls::new(&c)?));
                    "tls://127.0.0.1:0".to_owned()
                } else {
                    let (mut s, mut c) = (QuicOptions::new(), QuicOptions::new());
                    s.server(cert.server_config());
                    c.client(roots);
                    server.transport(AnyTransport::new().with_quic(Quic::new(&s)?));
                    client.transport(AnyTransport::new().with_quic(Quic::new(&c)?));
                    "quic://127.0.0.1:0".to_owned()
                }
            }
        };
        Ok(Rig {
            server,
            client,
            bind,
            _dir: dir,
        })
    }
}

/// A payload of `size` bytes of repetitive text.
fn payload(size: usize) -> Bytes {
    const TEXT: &[u8] = b"the quick brown fox jumps over the lazy dog; ";
    Bytes::from(TEXT.iter().copied().cycle().take(size).collect::<Vec<u8>>())
}

/// `msg bench reqrep`.
async fn reqrep(args: BenchReqRepArgs) -> anyhow::Result<Summary> {
    let bench = &args.bench;
    let concurrency = args.concurrency as usize;
    let plan = Plan::new(bench);
    let rig = Rig::new(bench.transport, bench.compression.into(), bench.size)?;

    let rep = RepSocket::with_options(rig.server)?;
    let endpoint = rep.bind(&rig.bind).await?;
    let server = tokio::spawn(rep.serve(concurrency, |payload, _| async move { payload }));
    let req = Arc::new(ReqSocket::with_options(rig.client)?);
    req.connect(&endpoint.to_string())?;
    if !req.wait_for_peers(1, CONNECT_TIMEOUT).await {
        bail!("the bench's sockets did not connect over {endpoint}");
    }
    let payload = payload(bench.size);
    // Warm up: first connections, allocations, TLS session state.
    for _ in 0..100 {
        req.request(payload.clone()).await?;
    }

    let claimed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = Progress::start(plan, started, done.clone());
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (req, payload) = (req.clone(), payload.clone());
        let (claimed, done, failed) = (claimed.clone(), done.clone(), failed.clone());
        senders.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while plan.claim(&claimed, started) {
                let sent = Instant::now();
                match req.request(payload.clone()).await {
                    Ok(_) => latencies.push(nanos(sent.elapsed())),
                    Err(error) => {
                        tracing::debug!(%error, "request failed");
                        failed.fetch_add(1, Relaxed);
                    }
                }
                done.fetch_add(1, Relaxed);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for sender in senders {
        latencies.extend(sender.await.context("a bench task failed")?);
    }
    let elapsed = started.elapsed();
    progress.finish();
    server.abort();

    Ok(Summary::new(
        "reqrep",
        bench,
        format!("{concurrency} in flight"),
        latencies,
        failed.load(Relaxed),
        elapsed,
    ))
}

/// `msg bench pubsub`.
async fn pubsub(args: BenchPubSubArgs) -> anyhow::Result<Summary> {
    let bench = &args.bench;
    let plan = Plan::new(bench);
    let rig = Rig::new(bench.transport, bench.compression.into(), bench.size)?;

    let publisher = PubSocket::with_options(rig.server)?;
    let endpoint = publisher.bind(&rig.bind).await?;
    let mut subscribers = Vec::new();
    for _ in 0..args.subscribers {
        let sub = SubSocket::with_options(rig.client.clone())?;
        sub.subscribe(TOPIC).await;
        sub.connect(&endpoint.to_string())?;
        subscribers.push(sub);
    }
    let n = subscribers.len();
    if !publisher.wait_for_subscribers(n, CONNECT_TIMEOUT).await {
        bail!("the bench's subscribers did not connect over {endpoint}");
    }

    let template = payload(bench.size);
    let timestamped = bench.size >= 8;
    // Everything a subscriber needs to know when it is done: u64::MAX
    // while the publisher is still at it, then how many it published.
    let published_total = Arc::new(AtomicU64::new(u64::MAX));
    // Tells the subscribers the publisher is done, without a timer per
    // message while it is not.
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let received = Arc::new(AtomicU64::new(0));
    let clock = Instant::now();

    let mut receivers = Vec::with_capacity(n);
    for mut sub in subscribers {
        let (published_total, received) = (published_total.clone(), received.clone());
        let mut done_rx = done_rx.clone();
        receivers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut last = None;
            let mut publisher_done = false;
            loop {
                let next = if publisher_done {
                    // Idle for a while after the publisher finished: the
                    // rest was dropped on the way.
                    match tokio::time::timeout(IDLE_AFTER_PUBLISH, sub.recv()).await {
                        Ok(next) => next,
                        Err(_) => break,
                    }
                } else {
                    tokio::select! {
                        biased;
                        next = sub.recv() => next,
                        _ = done_rx.changed() => {
                            publisher_done = true;
                            continue;
                        }
                    }
                };
                let Some(message) = next else {
                    break;
                };
                let now = clock.elapsed();
                last = Some(now);
                received.fetch_add(1, Relaxed);
                if timestamped {
                    if let Some(stamp) = message.payload().get(..8) {
                        let mut bytes = [0u8; 8];
                        bytes.copy_from_slice(stamp);
                        latencies.push(nanos(now).saturating_sub(u64::from_le_bytes(bytes)));
                    }
                }
                // Sequence numbers count every message published to us,
                // those dropped on the way included: the last one ends it.
                if message.seq() >= published_total.load(Relaxed) {
                    break;
                }
            }
            (latencies, last)
        }));
    }

    let claimed = AtomicU64::new(0);
    let started = Instant::now();
    let progress = Progress::start(plan, started, received.clone());
    let mut published = 0u64;
    while plan.claim(&claimed, started) {
        let message = if timestamped {
            let mut bytes = BytesMut::from(&template[..]);
            bytes[..8].copy_from_slice(&nanos(clock.elapsed()).to_le_bytes());
            bytes.freeze()
        } else {
            template.clone()
        };
        publisher.publish(TOPIC, message)?;
        published += 1;
        if published % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    published_total.store(published, Relaxed);
    let _ = done_tx.send(true);

    let mut latencies = Vec::new();
    let mut last_receipt = None;
    for receiver in receivers {
        let (lat, last) = receiver.await.context("a bench task failed")?;
        latencies.extend(lat);
        last_receipt = last_receipt.max(last);
    }
    progress.finish();
    // From the first publish to the last receipt.
    let elapsed = last_receipt.map_or_else(
        || started.elapsed(),
        |last| last.saturating_sub(started - clock),
    );
    let delivered = received.load(Relaxed);
    let drops = (published * n as u64).saturating_sub(delivered);
    let mut summary = Summary::new(
        "pubsub",
        bench,
        format!("{n} subscriber{}", if n == 1 { "" } else { "s" }),
        latencies,
        drops,
        elapsed,
    );
    summary.delivered = delivered;
    Ok(summary)
}

/// `msg bench pushpull`.
///
/// The pusher binds and the pullers connect. The pusher sends as fast as
/// the pullers take (its `send` waits while every puller is full); each
/// puller counts what it receives. The run ends when the pullers together
/// have every message sent.
async fn pushpull(args: BenchPushPullArgs) -> anyhow::Result<Summary> {
    let bench = &args.bench;
    let plan = Plan::new(bench);
    let rig = Rig::new(bench.transport, bench.compression.into(), bench.size)?;

    let push = PushSocket::with_options(rig.server)?;
    let endpoint = push.bind(&rig.bind).await?;
    let mut pullers = Vec::new();
    for _ in 0..args.pullers {
        let pull = PullSocket::with_options(rig.client.clone())?;
        pull.connect(&endpoint.to_string())?;
        pullers.push(pull);
    }
    let n = pullers.len();
    if !push.wait_for_peers(n, CONNECT_TIMEOUT).await {
        bail!("the bench's pullers did not connect over {endpoint}");
    }

    let template = payload(bench.size);
    let timestamped = bench.size >= 8;
    // How many messages the run sends: u64::MAX while the pusher is still
    // at it. The pusher stores it and then reads `received`; each puller
    // adds to `received` and then reads it (both SeqCst), so whichever
    // comes second sees that the run is complete.
    let sent_total = Arc::new(AtomicU64::new(u64::MAX));
    let received = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let clock = Instant::now();

    let mut receivers = Vec::with_capacity(n);
    for mut pull in pullers {
        let (sent_total, received, done_tx) =
            (sent_total.clone(), received.clone(), done_tx.clone());
        let mut done_rx = done_rx.clone();
        receivers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let message = tokio::select! {
                    biased;
                    message = pull.recv() => message,
                    _ = done_rx.wait_for(|done| *done) => break,
                };
                let Some(message) = message else {
                    break;
                };
                if timestamped {
                    if let Some(stamp) = message.first().get(..8) {
                        let mut bytes = [0u8; 8];
                        bytes.copy_from_slice(stamp);
                        let now = nanos(clock.elapsed());
                        latencies.push(now.saturating_sub(u64::from_le_bytes(bytes)));
                    }
                }
                if received.fetch_add(1, SeqCst) + 1 >= sent_total.load(SeqCst) {
                    let _ = done_tx.send(true);
                    break;
                }
            }
            pull.close(Duration::ZERO).await;
            latencies
        }));
    }

    let claimed = AtomicU64::new(0);
    let started = Instant::now();
    let progress = Progress::start(plan, started, received.clone());
    let mut sent = 0u64;
    while plan.claim(&claimed, started) {
        let message = if timestamped {
            let mut bytes = BytesMut::from(&template[..]);
            bytes[..8].copy_from_slice(&nanos(clock.elapsed()).to_le_bytes());
            bytes.freeze()
        } else {
            template.clone()
        };
        push.send(message).await?;
        sent += 1;
        if sent % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    sent_total.store(sent, SeqCst);
    if received.load(SeqCst) >= sent {
        let _ = done_tx.send(true);
    }

    let mut latencies = Vec::new();
    for receiver in receivers {
        latencies.extend(receiver.await.context("a bench task failed")?);
    }
    let elapsed = started.elapsed();
    progress.finish();
    push.close(Duration::ZERO).await;
    let delivered = received.load(SeqCst);
    if delivered != sent {
        bail!("sent {sent} messages but the pullers received {delivered}");
    }
    let mut summary = Summary::new(
        "pushpull",
        bench,
        format!("{n} puller{}", if n == 1 { "" } else { "s" }),
        latencies,
        0,
        elapsed,
    );
    summary.delivered = delivered;
    Ok(summary)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The progress bar, on stderr, while a run goes; hidden unless both stdout
/// and stderr are terminals.
struct Progress {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
}

impl Progress {
    fn start(plan: Plan, started: Instant, done: Arc<AtomicU64>) -> Progress {
        let visible = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let bar = if !visible {
            ProgressBar::hidden()
        } else {
            let (len, template) = match plan {
                Plan::Count(n) => (n, "{bar:40} {pos}/{len} msgs  {per_sec}  {elapsed}"),
                Plan::Duration(d) => (
                    u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                    "{bar:40} {msg}  {elapsed}",
                ),
            };
            let bar = ProgressBar::new(len);
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (ticker, flag) = (bar.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !flag.load(Relaxed) {
                tick.tick().await;
                let n = done.load(Relaxed);
                match plan {
                    Plan::Count(_) => ticker.set_position(n),
                    Plan::Duration(_) => {
                        ticker.set_position(
                            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        );
                        ticker.set_message(format!("{n} msgs"));
                    }
                }
            }
        });
        Progress { bar, stop }
    }

    fn finish(self) {
        self.stop.store(true, Relaxed);
        self.bar.finish_and_clear();
    }
}

/// The outcome of a run.
#[derive(Debug)]
struct Summary {
    pattern: &'static str,
    transport: &'static str,
    size: usize,
    compression: Compression,
    /// "4 in flight", "2 subscribers".
    shape: String,
    plan: String,
    /// Messages that arrived (replies; messages summed over subscribers).
    delivered: u64,
    /// Failed requests; messages published but not received.
    drops: u64,
    elapsed: Duration,
    p50: Option<Duration>,
    p99: Option<Duration>,
}

impl Summary {
    fn new(
        pattern: &'static str,
        bench: &BenchArgs,
        shape: String,
        mut latencies: Vec<u64>,
        drops: u64,
        elapsed: Duration,
    ) -> Summary {
        latencies.sort_unstable();
        let quantile = |q: f64| -> Option<Duration> {
            let last = latencies.len().checked_sub(1)?;
            let rank = ((latencies.len() as f64) * q).ceil() as usize;
            latencies
                .get(rank.saturating_sub(1).min(last))
                .map(|&ns| Duration::from_nanos(ns))
        };
        Summary {
            pattern,
            transport: bench.transport.name(),
            size: bench.size,
            compression: bench.compression.into(),
            shape,
            plan: Plan::new(bench).describe(),
            delivered: latencies.len() as u64,
            drops,
            elapsed,
            p50: quantile(0.50),
            p99: quantile(0.99),
        }
    }

    fn msgs_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.delivered as f64 / secs
        } else {
            0.0
        }
    }

    fn mb_per_sec(&self) -> f64 {
        self.msgs_per_sec() * self.size as f64 / 1e6
    }

    /// A title line and a table with a header row and one row of results.
    fn to_table(&self) -> String {
        let latency = |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), format_duration);
        let header = [
            "pattern",
            "transport",
            "size",
            "msgs",
            "time",
            "msgs/s",
            "MB/s",
            "p50",
            "p99",
            "drops",
        ];
        let row = [
            self.pattern.to_owned(),
            self.transport.to_owned(),
            format_size(self.size),
            self.delivered.to_string(),
            format_duration(self.elapsed),
            thousands(self.msgs_per_sec().round() as u64),
            format!("{:.2}", self.mb_per_sec()),
            latency(self.p50),
            latency(self.p99),
            self.drops.to_string(),
        ];
        let widths: Vec<usize> = header
            .iter()
            .zip(&row)
            .map(|(h, r)| h.chars().count().max(r.chars().count()))
            .collect();
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let padded: Vec<String> = cells
                .zip(&widths)
                .map(|(cell, &w)| format!("{cell:<w$}"))
                .collect();
            padded.join("  ").trim_end().to_owned() + "\n"
        };
        format!(
            "{} over {}: {} payloads, {}, compression {}, {}\n{}{}",
            self.pattern,
            self.transport,
            format_size(self.size),
            self.shape,
            self.compression,
            self.plan,
            line(&mut header.iter().copied()),
            line(&mut row.iter().map(String::as_str)),
        )
    }

    fn to_json(&self) -> serde_json::Value {
        let micros = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e6);
        json!({
            "pattern": self.pattern,
            "transport": self.transport,
            "size": self.size,
            "compression": self.compression.name(),
            "shape": self.shape,
            "msgs": self.delivered,
            "secs": self.elapsed.as_secs_f64(),
            "msgs_per_sec": self.msgs_per_sec(),
            "mb_per_sec": self.mb_per_sec(),
            "p50_us": micros(self.p50),
            "p99_us": micros(self.p99),
            "drops": self.drops,
        })
    }
}

/// `64 B`, `16 KiB`, `1 MiB`, `1500 B`.
fn format_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_sizes_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(format_size(64), "64 B");
        assert_eq!(format_size(16 * 1024), "16 KiB");
        assert_eq!(format_size(1 << 20), "1 MiB");
        assert_eq!(format_size(1500), "1500 B");
    }

    #[test]
    fn count_plans_stop_after_their_count() {
        let claimed = AtomicU64::new(0);
        let plan = Plan::Count(3);
        let now = Instant::now();
        let sent = std::iter::from_fn(|| plan.claim(&claimed, now).then_some(())).count();
        assert_eq!(sent, 3);
    }

    #[test]
    fn payloads_have_the_requested_size() {
        assert_eq!(payload(0).len(), 0);
        assert_eq!(payload(100_000).len(), 100_000);
    }
}
