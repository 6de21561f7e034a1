//! msg's own rows: the same shapes as the baselines, through msg's sockets.
//!
//! Placement follows [`tokio_baseline`], shape by shape ([`Shape`]). In
//! [`Shape::CurrentThread`] each side of a pattern gets its own OS thread
//! with a current-thread tokio runtime, as two single-threaded processes
//! would; the ten subscribers of the fan-out row share one thread and
//! runtime, as the libzmq row's ten SUB sockets share one context. The
//! Req/Rep sides and the subscribers run in spawned tasks, as an
//! application's would (a runtime wakes its `block_on` future at the cost of
//! an extra `epoll_wait`); the publisher, which is never woken by another
//! task, runs in the `block_on` future. In [`Shape::MultiThread`] both sides
//! are spawned tasks of one multi-thread runtime. In [`Shape::Processes`]
//! (the round trip over TCP and IPC, Pub/Sub at 64 B) the Rep socket or the
//! publisher runs in a child process (see [`processes`]). Every socket has
//! its default options unless a row says otherwise.
//!
//! The rows:
//!
//! - [`REQ_REP`]: a [`ReqSocket`] sends 64 B requests one at a time to a
//!   [`RepSocket`] that answers each with its payload; p50 and p99 of
//!   `request().await`. Compared with [`tokio_baseline::PING_PONG`] and
//!   [`zmq_baseline::REQ_REP`]; over QUIC with msg over TCP.
//! - [`PIPELINED`]: 512 B requests, 1024 in flight: 1024 tasks on the
//!   client's thread share one `ReqSocket`, each sending its next request
//!   as soon as its reply is in; replies per second.
//!   Compared with [`tokio_baseline::PIPELINED`].
//! - [`PUB_SUB`]: a [`PubSocket`] publishes as fast as it can to one
//!   [`SubSocket`] subscribed to everything; messages and payload bytes
//!   delivered per second, at 64 B, 1 KiB, 64 KiB and 1 MiB. `publish`
//!   never waits: past the high-water mark it drops, like libzmq's PUB, so
//!   only delivered messages count. Compared with
//!   [`tokio_baseline::STREAM`], [`zmq_baseline::PUB_SUB`] and
//!   [`zmq_baseline::PUSH_PULL`]; over QUIC (64 KiB) with msg over TCP.
//! - [`PUB_SUB_BIG_HWM`]: the 64 B row with a send high-water mark of
//!   [`BIG_HWM`] messages instead of the default 1000, which is what the
//!   libzmq rows would need to stop dropping too.
//! - [`PUB_SUB_FAN_OUT`]: the same at 64 B to [`FAN_OUT`] subscribers; the
//!   total delivered. Compared with [`zmq_baseline::PUB_SUB_FAN_OUT`].
//! - [`IDLE`]: [`Config::idle_connections`] idle TCP connections to one
//!   `RepSocket`, which runs in a child process (see [`Config::helper_exe`]) so
//!   that the growth of its resident memory is its own; bytes per connection.
//!
//! Publishing from a current-thread runtime: `publish` only queues, and the
//! connection's writer is another task on the same thread, so the publisher
//! yields to it every [`PUBLISH_BURST`] messages, as any async producer
//! sharing its thread must.
//!
//! The measured window of a Pub/Sub row runs from the first data message
//! published to the last one delivered. Before it, the publisher waits until
//! every subscription has reached it ([`PubSocket::wait_for_subscribers`]),
//! so nothing is dropped for want of a subscriber; after it, it publishes an
//! empty end marker every millisecond until every subscriber has seen one
//! (for at most a second), and subscribers that miss it stop on a flag.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use msg::transport::{AnyTransport, Quic, QuicOptions, TlsClientConfig, dev};
use msg::{PubSocket, RepSocket, ReqSocket, SocketOptions, SubSocket};
use tokio::sync::oneshot;

use crate::error::BenchError;
use crate::measure::{Config, Experiment, Measurement, Metric, Shape, Suite, Transport, deadline};
use crate::placement::{self, two_ends};
use crate::stats::{per_sec, rtt_percentiles};
use crate::{interleave, processes, tokio_baseline, zmq_baseline};

/// Row name of the Req/Rep round trip.
pub const REQ_REP: &str = "msg Req/Rep";
/// Row name of Req/Rep with many requests in flight.
pub const PIPELINED: &str = "msg Req/Rep pipelined";
/// Row name of Pub/Sub with one subscriber.
pub const PUB_SUB: &str = "msg Pub/Sub";
/// Row name of Pub/Sub with one subscriber and a send high-water mark of
/// [`BIG_HWM`].
pub const PUB_SUB_BIG_HWM: &str = "msg Pub/Sub, send_hwm 100k";
/// Row name of Pub/Sub with [`FAN_OUT`] subscribers.
pub const PUB_SUB_FAN_OUT: &str = "msg Pub/Sub, 10 subs";
/// Row name of the idle connections held by one Rep socket.
pub const IDLE: &str = "msg Rep, idle TCP connections";

/// Subscribers of the fan-out row.
pub const FAN_OUT: usize = 10;
/// Payload size of the round trip, in bytes.
pub const REQ_REP_SIZE: usize = 64;
/// Payload size of the pipelined row, in bytes.
pub const PIPELINED_SIZE: usize = 512;
/// Payload sizes of the one-subscriber Pub/Sub row, in bytes.
pub const PUB_SUB_SIZES: [usize; 4] = [64, 1024, 64 * 1024, 1024 * 1024];
/// Payload size of the fan-out row, in bytes.
pub const FAN_OUT_SIZE: usize = 64;
/// Payload size of the QUIC Pub/Sub row, in bytes.
pub const QUIC_PUB_SUB_SIZE: usize = 64 * 1024;
/// Send high-water mark of [`PUB_SUB_BIG_HWM`], in messages.
pub const BIG_HWM: usize = 100_000;
/// Messages the publisher queues between two yields to its runtime.
pub const PUBLISH_BURST: u64 = 32;
/// Transports of the rows that the baselines also have.
pub const TRANSPORTS: [Transport; 2] = [Transport::Tcp, Transport::Ipc];
/// The shapes in which every row runs; [`Shape::Processes`] has only the
/// Req/Rep round trip over TCP and IPC and Pub/Sub at
/// [`PROCESSES_PUB_SUB_SIZE`].
pub const SHAPES: [Shape; 2] = [Shape::CurrentThread, Shape::MultiThread];
/// Payload size of the Pub/Sub row in [`Shape::Processes`], in bytes.
pub const PROCESSES_PUB_SUB_SIZE: usize = 64;

/// The command-line argument that makes a binary run
/// [`idle_server_main`] instead of its own main.
pub const IDLE_SERVER_ARG: &str = "--msg-idle-rep-server";

/// How long a subscriber's receive waits before it looks at the stop flag.
const SUB_POLL: Duration = Duration::from_millis(20);
/// Interval of the publisher's end markers.
pub(crate) const MARKER_INTERVAL: Duration = Duration::from_millis(1);
/// How long the publisher keeps sending end markers.
pub(crate) const END_GRACE: Duration = Duration::from_secs(1);
/// File descriptors kept free for everything but the idle connections.
const SPARE_FDS: usize = 256;

/// Every msg experiment, in table order: shape by shape ([`SHAPES`], then
/// [`Shape::Processes`]), each name ending with its shape in parentheses,
/// such as `"msg Req/Rep tcp (multi-thread)"`.
pub fn experiments() -> Vec<Experiment> {
    let mut all = Vec::new();
    for shape in SHAPES {
        for t in [Transport::Tcp, Transport::Ipc, Transport::Quic] {
            all.push(Experiment::new(
                format!("{REQ_REP} {t} ({shape})"),
                move |cfg| req_rep(cfg, t, shape),
            ));
        }
        for t in TRANSPORTS {
            all.push(Experiment::new(
                format!("{PIPELINED} {t} ({shape})"),
                move |cfg| pipelined(cfg, t, shape),
            ));
        }
        for t in TRANSPORTS {
            for size in PUB_SUB_SIZES {
                all.push(Experiment::new(
                    format!("{PUB_SUB} {t} {size} B ({shape})"),
                    move |cfg| pub_sub(cfg, t, size, 1, None, shape),
                ));
            }
        }
        all.push(Experiment::new(
            format!("{PUB_SUB} quic {QUIC_PUB_SUB_SIZE} B ({shape})"),
            move |cfg| pub_sub(cfg, Transport::Quic, QUIC_PUB_SUB_SIZE, 1, None, shape),
        ));
        for t in TRANSPORTS {
            all.push(Experiment::new(
                format!("{PUB_SUB_BIG_HWM} {t} ({shape})"),
                move |cfg| pub_sub(cfg, t, PUB_SUB_SIZES[0], 1, Some(BIG_HWM), shape),
            ));
        }
        for t in TRANSPORTS {
            all.push(Experiment::new(
                format!("{PUB_SUB_FAN_OUT} {t} ({shape})"),
                move |cfg| pub_sub(cfg, t, FAN_OUT_SIZE, FAN_OUT, None, shape),
            ));
        }
        all.push(Experiment::new(format!("{IDLE} ({shape})"), move |cfg| {
            idle_connections(cfg, shape)
        }));
    }
    let shape = Shape::Processes;
    for t in TRANSPORTS {
        all.push(Experiment::new(
            format!("{REQ_REP} {t} ({shape})"),
            move |cfg| req_rep(cfg, t, shape),
        ));
    }
    for t in TRANSPORTS {
        let size = PROCESSES_PUB_SUB_SIZE;
        all.push(Experiment::new(
            format!("{PUB_SUB} {t} {size} B ({shape})"),
            move |cfg| pub_sub(cfg, t, size, 1, None, shape),
        ));
    }
    all
}

// ---------------------------------------------------------------------------
// Req/Rep.

/// Round trips of [`REQ_REP_SIZE`] bytes, one in flight: [`Metric::RttP50`]
/// and [`Metric::RttP99`].
///
/// Over TCP and IPC the row then runs alternating rounds of
/// [`tokio_baseline::PING_PONG`] and msg Req/Rep in the same shape, and
/// attaches their per-round ratios to both measurements (see
/// [`Measurement::interleaved`] and [`Interleaved`](crate::Interleaved)).
///
/// # Errors
///
/// Socket errors, or a peer that stops answering.
pub fn req_rep(
    cfg: &Config,
    transport: Transport,
    shape: Shape,
) -> Result<Vec<Measurement>, BenchError> {
    let (rtts, rounds) = match (transport, shape) {
        (Transport::Tcp | Transport::Ipc, Shape::Processes) => {
            match processes::req_rep(cfg, transport)? {
                Some((rtts, rounds)) => (rtts, Some(rounds)),
                None => return Ok(Vec::new()),
            }
        }
        (_, Shape::Processes) => return Err(BenchError::Unsupported(transport)),
        _ => {
            let (count, warmup, limit) = (cfg.rtt_count, cfg.rtt_warmup(), cfg.time_limit);
            let payload = Bytes::from(vec![0xA5; REQ_REP_SIZE]);
            let rtts = with_rep_server(cfg, transport, shape, move |req| async move {
                req_round(&req, &payload, count, warmup, limit).await
            })?;
            let rounds = match transport {
                Transport::Tcp | Transport::Ipc => {
                    Some(interleave::in_process(cfg, transport, shape)?)
                }
                _ => None,
            };
            (rtts, rounds)
        }
    };
    if rtts.is_empty() {
        return Err(BenchError::Inconsistent("no round trip completed".into()));
    }
    let (p50, p99) = rtt_percentiles(&rtts);
    let m = |metric, v| {
        let m = Measurement::new(Suite::Msg, REQ_REP, transport, REQ_REP_SIZE, metric, v).on(shape);
        if transport == Transport::Quic {
            m.compared_with(&[REQ_REP]).compared_over(Transport::Tcp)
        } else {
            m.compared_with(&[tokio_baseline::PING_PONG, zmq_baseline::REQ_REP])
        }
    };
    let (m50, m99) = (m(Metric::RttP50, p50), m(Metric::RttP99, p99));
    Ok(match rounds {
        Some(r) => vec![
            m50.with_interleaved(tokio_baseline::PING_PONG, r.p50),
            m99.with_interleaved(tokio_baseline::PING_PONG, r.p99),
        ],
        None => vec![m50, m99],
    })
}

/// Round trips of `payload` through `req`, one in flight: `warmup`
/// unrecorded, then up to `count` recorded or until `limit` has passed
/// (with at least one recorded). Returns the recorded round-trip times.
pub(crate) async fn req_round(
    req: &ReqSocket,
    payload: &Bytes,
    count: usize,
    warmup: usize,
    limit: Duration,
) -> Result<Vec<Duration>, BenchError> {
    let mut rtts = Vec::with_capacity(count);
    let deadline = deadline(limit);
    let mut done = 0usize;
    while rtts.len() < count {
        let t0 = Instant::now();
        if t0 >= deadline && !rtts.is_empty() {
            break;
        }
        let reply = req.request(payload.clone()).await.map_err(other)?;
        let rtt = t0.elapsed();
        if reply.len() != payload.len() {
            return Err(BenchError::Inconsistent("reply of the wrong size".into()));
        }
        if done >= warmup {
            rtts.push(rtt);
        }
        done += 1;
    }
    Ok(rtts)
}

/// Requests of [`PIPELINED_SIZE`] bytes with up to the config's 1024 in
/// flight: [`Metric::MsgsPerSec`] of replies.
///
/// # Errors
///
/// Socket errors, or a request that fails.
pub fn pipelined(
    cfg: &Config,
    transport: Transport,
    shape: Shape,
) -> Result<Vec<Measurement>, BenchError> {
    let (count, in_flight, limit) = (cfg.pipelined_count, cfg.in_flight, cfg.time_limit);
    let payload = Bytes::from(vec![0xA5; PIPELINED_SIZE]);
    let (received, elapsed) = with_rep_server(cfg, transport, shape, move |req| async move {
        // One task per request in flight, each sending its next request as
        // soon as its reply is in: what 1024 concurrent callers sharing the
        // socket do. (A `FuturesUnordered` of 1024 requests in one task
        // would share one task's cooperative budget between all of them.)
        let start = Instant::now();
        let deadline = start + limit;
        let issued = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..in_flight)
            .map(|_| {
                let (req, issued, payload) = (req.clone(), issued.clone(), payload.clone());
                tokio::spawn(async move {
                    let mut received = 0u64;
                    while issued.fetch_add(1, Ordering::Relaxed) < count
                        && Instant::now() < deadline
                    {
                        let reply = req.request(payload.clone()).await.map_err(other)?;
                        if reply.len() != PIPELINED_SIZE {
                            return Err(BenchError::Inconsistent("reply of the wrong size".into()));
                        }
                        received += 1;
                    }
                    Ok::<u64, BenchError>(received)
                })
            })
            .collect();
        let mut received = 0;
        for w in workers {
            received += w.await.map_err(|_| BenchError::Panicked)??;
        }
        Ok((received, start.elapsed()))
    })?;
    Ok(vec![
        Measurement::new(
            Suite::Msg,
            PIPELINED,
            transport,
            PIPELINED_SIZE,
            Metric::MsgsPerSec,
            per_sec(received, elapsed),
        )
        .on(shape)
        .compared_with(&[tokio_baseline::PIPELINED]),
    ])
}

/// Runs a Rep socket that answers every request with its own payload as
/// one end and `client` with a Req socket connected to it as the other,
/// placed as `shape` says; the server stops when the client is done.
fn with_rep_server<C, CF, T>(
    cfg: &Config,
    transport: Transport,
    shape: Shape,
    client: C,
) -> Result<T, BenchError>
where
    C: FnOnce(Arc<ReqSocket>) -> CF + Send + 'static,
    CF: Future<Output = Result<T, BenchError>> + Send + 'static,
    T: Send + 'static,
{
    let place = Arc::new(Place::new(transport)?);
    let limit = cfg.hard_limit();
    let join = cfg.join_timeout;
    let (endpoint_tx, endpoint_rx) = oneshot::channel::<Result<String, String>>();
    // Dropped when the client is done (or fails): the server stops.
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = {
        let place = place.clone();
        async move {
            let rep = bind_rep(&place, endpoint_tx).await?;
            // Served from a task of its own, as the client's requests
            // are: a runtime wakes a spawned task more cheaply than the
            // future its `block_on` runs.
            tokio::spawn(rep_echo(rep, async move {
                let _ = stop_rx.await;
            }))
            .await
            .map_err(|_| BenchError::Panicked)
        }
    };
    let client = async move {
        let _stop = stop_tx;
        let endpoint = bound_endpoint(limit, endpoint_rx, "rep socket binding").await?;
        let req = Arc::new(ReqSocket::with_options(place.client_options()?).map_err(other)?);
        req.connect(&endpoint).map_err(other)?;
        if !req.wait_for_peers(1, join).await {
            return Err(BenchError::Timeout("req connecting"));
        }
        let out = tokio::spawn(client(req.clone()))
            .await
            .map_err(|_| BenchError::Panicked)?;
        close_shared_req(req).await;
        out
    };
    let ((), out) = two_ends(shape, limit, "msg peer", server, client)?;
    Ok(out)
}

/// Close `req` if no one else holds it any more.
pub(crate) async fn close_shared_req(req: Arc<ReqSocket>) {
    if let Ok(req) = Arc::try_unwrap(req) {
        req.close(Duration::ZERO).await;
    }
}

/// A Rep socket with `place`'s server options, bound at its endpoint. The
/// bound endpoint, or the error, goes to `endpoint`.
pub(crate) async fn bind_rep(
    place: &Place,
    endpoint: oneshot::Sender<Result<String, String>>,
) -> Result<RepSocket, BenchError> {
    let bound = async {
        let rep = RepSocket::with_options(place.server_options()?).map_err(other)?;
        let at = rep.bind(&place.bind_endpoint()).await.map_err(other)?;
        Ok::<_, BenchError>((rep, at.to_string()))
    }
    .await;
    match bound {
        Ok((rep, at)) => {
            let _ = endpoint.send(Ok(at));
            Ok(rep)
        }
        Err(e) => {
            let _ = endpoint.send(Err(e.to_string()));
            Err(e)
        }
    }
}

/// Wait, at most `limit`, for the endpoint the other end bound.
pub(crate) async fn bound_endpoint(
    limit: Duration,
    endpoint: oneshot::Receiver<Result<String, String>>,
    what: &'static str,
) -> Result<String, BenchError> {
    match tokio::time::timeout(limit, endpoint).await {
        Ok(Ok(Ok(endpoint))) => Ok(endpoint),
        Ok(Ok(Err(e))) => Err(BenchError::Inconsistent(e)),
        Ok(Err(_)) | Err(_) => Err(BenchError::Timeout(what)),
    }
}

/// Answer every request on `rep` with its own payload until `stop`
/// resolves or the socket closes; then close it.
pub(crate) async fn rep_echo(mut rep: RepSocket, stop: impl Future<Output = ()>) {
    let serve = async {
        while let Some(request) = rep.recv().await {
            let payload = request.payload().clone();
            let _ = request.reply(payload).await;
        }
    };
    tokio::select! {
        () = serve => {}
        () = stop => {}
    }
    rep.close(Duration::ZERO).await;
}

// ---------------------------------------------------------------------------
// Pub/Sub.

/// Pub/Sub of `size`-byte messages to `subscribers` subscribers:
/// [`Metric::MsgsPerSec`] and [`Metric::BytesPerSec`] delivered, summed
/// over the subscribers. `send_hwm` replaces the default high-water mark.
/// In [`Shape::Processes`] (one subscriber, default high-water mark) the
/// publisher is a child process, and the window runs from the first
/// message delivered to the last.
///
/// # Errors
///
/// Socket errors, subscribers that do not join within the config's join
/// timeout, or a run in which nothing was delivered.
pub fn pub_sub(
    cfg: &Config,
    transport: Transport,
    size: usize,
    subscribers: usize,
    send_hwm: Option<usize>,
    shape: Shape,
) -> Result<Vec<Measurement>, BenchError> {
    let (total, elapsed) = if shape == Shape::Processes {
        if subscribers != 1 || send_hwm.is_some() || transport == Transport::Quic {
            return Err(BenchError::UnsupportedShape(shape));
        }
        match processes::pub_sub(cfg, transport, size)? {
            Some(out) => out,
            None => return Ok(Vec::new()),
        }
    } else {
        pub_sub_in_process(cfg, transport, size, subscribers, send_hwm, shape)?
    };
    let rate = per_sec(total, elapsed);
    pub_sub_measurements(transport, size, subscribers, send_hwm, shape, rate)
}

/// [`pub_sub`] with both ends in this process: messages delivered and the
/// window from the first published to the last delivered.
fn pub_sub_in_process(
    cfg: &Config,
    transport: Transport,
    size: usize,
    subscribers: usize,
    send_hwm: Option<usize>,
    shape: Shape,
) -> Result<(u64, Duration), BenchError> {
    let place = Arc::new(Place::new(transport)?);
    let limit = cfg.hard_limit();
    let (join, time_limit) = (cfg.join_timeout, cfg.time_limit);
    let count = if size <= 64 {
        cfg.pubsub_count
    } else {
        cfg.stream_count_for(size)
    };
    let ended = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (endpoint_tx, endpoint_rx) = oneshot::channel::<Result<String, String>>();

    let publisher = {
        let (place, ended, stop) = (place.clone(), ended.clone(), stop.clone());
        async move {
            let bound = async {
                let mut opts = place.server_options()?;
                if let Some(hwm) = send_hwm {
                    opts.send_hwm(hwm);
                }
                let publisher = PubSocket::with_options(opts).map_err(other)?;
                let endpoint = publisher
                    .bind(&place.bind_endpoint())
                    .await
                    .map_err(other)?;
                Ok::<_, BenchError>((publisher, endpoint.to_string()))
            }
            .await;
            let publisher = match bound {
                Ok((p, endpoint)) => {
                    let _ = endpoint_tx.send(Ok(endpoint));
                    p
                }
                Err(e) => {
                    let _ = endpoint_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            let result = publish(&publisher, subscribers, size, count, join, time_limit).await;
            stop.store(true, Ordering::Release);
            let grace = deadline(END_GRACE);
            while ended.load(Ordering::Acquire) < subscribers && Instant::now() < grace {
                let _ = publisher.publish(Bytes::new(), Bytes::new());
                tokio::time::sleep(MARKER_INTERVAL).await;
            }
            publisher.close(Duration::ZERO).await;
            result
        }
    };
    let subs = async move {
        let endpoint = bound_endpoint(limit, endpoint_rx, "pub socket binding").await?;
        let hard_deadline = deadline(limit);
        let mut sockets = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            let sub = SubSocket::with_options(place.client_options()?).map_err(other)?;
            sub.subscribe(Bytes::new()).await;
            sub.connect(&endpoint).map_err(other)?;
            sockets.push(sub);
        }
        // A task per subscriber, as an application would have: a
        // message wakes only the task it is for.
        let tasks: Vec<_> = sockets
            .into_iter()
            .map(|sub| {
                let (stop, ended) = (stop.clone(), ended.clone());
                tokio::spawn(async move {
                    let r = subscribe(sub, size, &stop, hard_deadline).await;
                    ended.fetch_add(1, Ordering::Release);
                    r
                })
            })
            .collect();
        let mut counted = Vec::with_capacity(tasks.len());
        for t in tasks {
            counted.push(t.await.map_err(|_| BenchError::Panicked)??);
        }
        Ok(counted)
    };
    // A subscriber side that fails never ends the publisher's markers by
    // itself; it stops at its grace time.
    let (start, deliveries) = two_ends(shape, limit, "msg peer", publisher, subs)?;

    let (mut total, mut last) = (0u64, None::<Instant>);
    for (n, _, at) in deliveries {
        total += n;
        last = last.max(at);
    }
    let Some(end) = last.filter(|_| total > 0) else {
        return Err(BenchError::Inconsistent("no message delivered".into()));
    };
    Ok((total, end.saturating_duration_since(start)))
}

/// The measurements of a Pub/Sub row delivering `rate` messages per second.
fn pub_sub_measurements(
    transport: Transport,
    size: usize,
    subscribers: usize,
    send_hwm: Option<usize>,
    shape: Shape,
    rate: f64,
) -> Result<Vec<Measurement>, BenchError> {
    let row = match (subscribers, send_hwm) {
        (1, None) => PUB_SUB,
        (1, Some(_)) => PUB_SUB_BIG_HWM,
        _ => PUB_SUB_FAN_OUT,
    };
    let m = |metric, v| {
        let m = Measurement::new(Suite::Msg, row, transport, size, metric, v).on(shape);
        if transport == Transport::Quic {
            return m.compared_with(&[PUB_SUB]).compared_over(Transport::Tcp);
        }
        match (row, metric) {
            (PUB_SUB_FAN_OUT, _) => m.compared_with(&[zmq_baseline::PUB_SUB_FAN_OUT]),
            (PUB_SUB_BIG_HWM, _) => m.compared_with(&[PUB_SUB, zmq_baseline::PUB_SUB]),
            (_, Metric::MsgsPerSec) => m.compared_with(&[
                tokio_baseline::STREAM,
                zmq_baseline::PUB_SUB,
                zmq_baseline::PUSH_PULL,
            ]),
            _ => m.compared_with(&[tokio_baseline::STREAM, zmq_baseline::PUSH_PULL]),
        }
    };
    let mut out = vec![m(Metric::MsgsPerSec, rate)];
    if subscribers == 1 && send_hwm.is_none() {
        out.push(m(Metric::BytesPerSec, rate * size as f64));
    }
    Ok(out)
}

/// The publisher: wait for every subscription, then publish until the count
/// or the time limit, yielding every [`PUBLISH_BURST`] messages. Returns
/// when publishing started.
pub(crate) async fn publish(
    publisher: &PubSocket,
    subscribers: usize,
    size: usize,
    count: u64,
    join: Duration,
    limit: Duration,
) -> Result<Instant, BenchError> {
    if !publisher.wait_for_subscribers(subscribers, join).await {
        return Err(BenchError::Timeout("subscribers joining"));
    }
    let payload = Bytes::from(vec![0xA5; size]);
    let check_every = if size >= 16 * 1024 { 1 } else { 64 };
    let start = Instant::now();
    let deadline = start + limit;
    let mut sent = 0u64;
    while sent < count {
        if sent % check_every == 0 && Instant::now() >= deadline {
            break;
        }
        publisher
            .publish(Bytes::new(), payload.clone())
            .map_err(other)?;
        sent += 1;
        if sent % PUBLISH_BURST == 0 || size >= 16 * 1024 {
            tokio::task::yield_now().await;
        }
    }
    Ok(start)
}

/// A subscriber: count `size`-byte messages until an end marker arrives or,
/// once `stop` is set, a receive times out. Returns the count and when the
/// first and the last one arrived.
pub(crate) async fn subscribe(
    mut sub: SubSocket,
    size: usize,
    stop: &AtomicBool,
    hard_deadline: Instant,
) -> Result<(u64, Option<Instant>, Option<Instant>), BenchError> {
    let (mut count, mut first, mut last) = (0u64, None, None);
    loop {
        // A message already queued is taken without arming a timer (the
        // libzmq rows' receive timeout is a socket option, not a timer per
        // message); only a receive that has to wait gets the poll timeout.
        // `recv` is cancel safe.
        let next = match sub.recv().now_or_never() {
            Some(next) => Ok(next),
            None => tokio::time::timeout(SUB_POLL, sub.recv()).await,
        };
        match next {
            Ok(Some(msg)) => match msg.payload().len() {
                0 => break,
                n if n == size => {
                    count += 1;
                    last = Some(Instant::now());
                    if first.is_none() {
                        first = last;
                    }
                }
                _ => return Err(BenchError::Inconsistent("message of the wrong size".into())),
            },
            Ok(None) => break,
            Err(_) => {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                if Instant::now() >= hard_deadline {
                    return Err(BenchError::Timeout("sub receive"));
                }
            }
        }
    }
    sub.close(Duration::ZERO).await;
    Ok((count, first, last))
}

// ---------------------------------------------------------------------------
// Idle connections.

/// Memory per idle TCP connection held by one Rep socket:
/// [`Metric::Connections`] (how many were open at once) and
/// [`Metric::MemoryPerConn`].
///
/// The Rep socket runs in a child process (the config's helper program),
/// which reports its resident set size (`VmRSS` in `/proc/self/status`)
/// after binding and again once every connection has finished its
/// handshake; the clients are one Req socket in this process, connected to
/// the same endpoint once per connection. Both processes raise their soft
/// limit on open files to the hard limit; if that still does not allow the
/// configured count, fewer connections are opened and the `connections`
/// value says how many. Skipped (no measurement) without a helper program.
///
/// # Errors
///
/// A helper that fails to start or answer, or connections that do not all
/// come up within the hard limit.
pub fn idle_connections(cfg: &Config, shape: Shape) -> Result<Vec<Measurement>, BenchError> {
    let Some(exe) = cfg.helper_exe.clone() else {
        eprintln!("msg idle connections: skipped, no helper program configured");
        return Ok(Vec::new());
    };
    let fds = raise_fd_limit();
    let want = cfg.idle_connections;
    let n = want.min(fds.saturating_sub(SPARE_FDS)).max(1);
    if n < want {
        eprintln!("msg idle connections: open files limited to {fds}; measuring {n} of {want}");
    }
    let mut helper = Helper::spawn(&exe, n, shape)?;
    let result = idle_measure(cfg, &mut helper, n, shape);
    helper.quit();
    let (held, before, after) = result?;
    let per_conn = after.saturating_sub(before) as f64 / held.max(1) as f64;
    let m = |metric, v| Measurement::new(Suite::Msg, IDLE, Transport::Tcp, 0, metric, v).on(shape);
    Ok(vec![
        m(Metric::Connections, held as f64),
        m(Metric::MemoryPerConn, per_conn),
    ])
}

/// Connects `n` clients to the helper's Rep socket from a runtime of
/// `shape` and returns how many it held, and its RSS in bytes before and
/// after.
fn idle_measure(
    cfg: &Config,
    helper: &mut Helper,
    n: usize,
    shape: Shape,
) -> Result<(usize, u64, u64), BenchError> {
    let endpoint = helper.ask("endpoint")?;
    let before: u64 = parse(&helper.ask("rss")?)?;
    let limit = cfg.hard_limit() + Duration::from_secs(20);
    placement::block_on(shape, limit, "msg peer", async {
        let mut opts = SocketOptions::new();
        opts.max_connections(n + 16);
        let req = ReqSocket::with_options(opts).map_err(other)?;
        for _ in 0..n {
            req.connect(&endpoint).map_err(other)?;
        }
        let up = req.wait_for_peers(n, limit).await;
        let held = loop {
            let held: usize = parse(&helper.ask("peers")?)?;
            if held >= n || !up {
                break held;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if held < n {
            return Err(BenchError::Inconsistent(format!(
                "only {held} of {n} idle connections came up"
            )));
        }
        // Let the server's tasks settle after the burst of handshakes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after: u64 = parse(&helper.ask("rss")?)?;
        req.close(Duration::ZERO).await;
        Ok((held, before, after))
    })
}

/// The child process that serves the idle-connection experiment.
struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Helper {
    fn spawn(exe: &Path, n: usize, shape: Shape) -> Result<Helper, BenchError> {
        let mut child = Command::new(exe)
            .arg(IDLE_SERVER_ARG)
            .arg(n.to_string())
            .arg(shape.name())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(BenchError::Inconsistent("helper without pipes".into()));
        };
        Ok(Helper {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// Sends one command line and reads one answer line.
    fn ask(&mut self, command: &str) -> Result<String, BenchError> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(BenchError::Inconsistent("helper exited".into()));
        }
        Ok(line.trim().to_owned())
    }

    fn quit(mut self) {
        let _ = writeln!(self.stdin, "quit");
        drop(self.stdin);
        let deadline = deadline(Duration::from_secs(5));
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

/// The idle-connection experiment's server: binds a Rep socket on
/// `tcp://127.0.0.1:0` that accepts `args[0]` connections (and a few
/// more), then answers commands on stdin, one per line, until `quit` or
/// EOF: `endpoint` (the bound endpoint), `rss` (resident set size in
/// bytes) and `peers` (connections with a finished handshake).
///
/// Binaries call it when started with [`IDLE_SERVER_ARG`] followed by the
/// connection count and, optionally, the [`Shape`] name of the runtime to
/// serve from (`multi-thread`; default `current-thread`). Returns the
/// process's exit code.
pub fn idle_server_main(args: &[String]) -> i32 {
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let shape = match args.get(1).map(String::as_str) {
        Some(name) if name == Shape::MultiThread.name() => Shape::MultiThread,
        _ => Shape::CurrentThread,
    };
    raise_fd_limit();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let Ok(rt) = placement::runtime(shape) else {
        return 1;
    };
    rt.block_on(async move {
        let mut opts = SocketOptions::new();
        opts.max_connections(n + 16);
        let Ok(rep) = RepSocket::with_options(opts) else {
            return 1;
        };
        let Ok(endpoint) = rep.bind("tcp://127.0.0.1:0").await else {
            return 1;
        };
        let mut out = std::io::stdout().lock();
        while let Some(command) = rx.recv().await {
            let answer = match command.trim() {
                "endpoint" => endpoint.to_string(),
                "rss" => rss_bytes().map_or_else(|| "0".to_owned(), |b| b.to_string()),
                "peers" => rep.peers().to_string(),
                _ => break,
            };
            if writeln!(out, "{answer}")
                .and_then(|()| out.flush())
                .is_err()
            {
                break;
            }
        }
        rep.close(Duration::ZERO).await;
        0
    })
}

/// This process's resident set size in bytes, from `/proc/self/status`.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Raises the soft limit on open files to the hard limit; returns the soft
/// limit in force afterwards.
fn raise_fd_limit() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if setrlimit(Resource::Nofile, limit).is_err() {
            eprintln!("msg idle connections: could not raise the open files limit");
        }
    }
    getrlimit(Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, BenchError> {
    s.parse()
        .map_err(|_| BenchError::Inconsistent(format!("helper answered {s:?}")))
}

// ---------------------------------------------------------------------------
// Helpers.

/// Where a row's sockets meet: the transport, its temporary directory for
/// IPC, and its development certificate for QUIC.
pub(crate) struct Place {
    transport: Transport,
    dir: tempfile::TempDir,
    cert: Option<dev::DevCert>,
}

impl Place {
    pub(crate) fn new(transport: Transport) -> Result<Place, BenchError> {
        let dir = tempfile::Builder::new().prefix("msg-bench").tempdir()?;
        let cert = match transport {
            Transport::Quic => Some(dev::self_signed(["localhost", "127.0.0.1"]).map_err(other)?),
            _ => None,
        };
        Ok(Place {
            transport,
            dir,
            cert,
        })
    }

    /// The row's temporary directory (for Unix sockets and store files).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn bind_endpoint(&self) -> String {
        match self.transport {
            Transport::Tcp => "tcp://127.0.0.1:0".to_owned(),
            Transport::Ipc => format!("ipc://{}", self.dir.path().join("msg.sock").display()),
            Transport::Quic => "quic://127.0.0.1:0".to_owned(),
        }
    }

    /// Default options, with the QUIC server part for QUIC.
    pub(crate) fn server_options(&self) -> Result<SocketOptions, BenchError> {
        let mut opts = SocketOptions::new();
        if let Some(cert) = &self.cert {
            let mut quic = QuicOptions::new();
            quic.server(cert.server_config());
            opts.transport(AnyTransport::new().with_quic(Quic::new(&quic).map_err(other)?));
        }
        Ok(opts)
    }

    /// Default options, with the QUIC client part for QUIC.
    pub(crate) fn client_options(&self) -> Result<SocketOptions, BenchError> {
        let mut opts = SocketOptions::new();
        if let Some(cert) = &self.cert {
            let mut roots = TlsClientConfig::new();
            roots.add_root(cert.certificate());
            let mut quic = QuicOptions::new();
            quic.client(roots);
            opts.transport(AnyTransport::new().with_quic(Quic::new(&quic).map_err(other)?));
        }
        Ok(opts)
    }
}

/// A msg error as a [`BenchError`].
pub(crate) fn other(e: impl std::error::Error) -> BenchError {
    BenchError::Msg(describe(&e))
}

/// An error and its sources on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
