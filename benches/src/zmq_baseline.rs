//! libzmq baselines, through the `zmq` crate (libzmq built from its bundled
//! source).
//!
//! libzmq's API is blocking, so each peer runs on its own std thread. Each
//! side of a pattern has its own `zmq::Context` (with libzmq's default of
//! one I/O thread), as two processes would; the subscribers of the fan-out
//! row share one, as ten SUB sockets in one process would. Socket options
//! are libzmq's defaults (high-water marks of 1000 messages) except for
//! `ZMQ_LINGER` 0 and send/receive timeouts that keep every wait bounded.
//! TCP endpoints bind `tcp://127.0.0.1:*` and read the port back from
//! `ZMQ_LAST_ENDPOINT`; IPC endpoints live in a temporary directory.
//!
//! Received messages are taken as `zmq::Message`s (no copy out of libzmq);
//! sent ones are copied in from a byte slice, as `zmq_send` does.
//!
//! The rows:
//!
//! - [`REQ_REP`]: REQ sends 64 B, REP echoes it, repeat; p50 and p99 of
//!   the round-trip time.
//! - [`PUSH_PULL`]: PUSH sends as fast as it can; PUSH blocks at the
//!   high-water mark, so nothing is lost. Messages and payload bytes
//!   received per second at 64 B, 1 KiB, 64 KiB and 1 MiB.
//! - [`DEALER_ROUTER`]: DEALER keeps up to the config's 1024 requests of
//!   512 B unanswered, ROUTER echoes each to its sender; echoes received
//!   per second. ROUTER has `ZMQ_ROUTER_MANDATORY` set, so that it blocks
//!   instead of dropping an echo (it never needs to: the window is below
//!   the high-water marks).
//! - [`PUB_SUB`] and [`PUB_SUB_FAN_OUT`]: PUB sends 64 B messages as fast
//!   as it can to one or [`FAN_OUT`] subscribers. PUB never blocks; it drops
//!   what a subscriber's queue has no room for, so only delivered messages
//!   count: their total over all subscribers, divided by the time from the
//!   first send to the last delivery.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::measure::{Config, Experiment, Measurement, Metric, Suite, Transport, deadline};
use crate::stats::{per_sec, rtt_percentiles};
use crate::tokio_baseline;

/// Row name of the REQ/REP round trip.
pub const REQ_REP: &str = "libzmq REQ/REP";
/// Row name of the PUSH/PULL stream.
pub const PUSH_PULL: &str = "libzmq PUSH/PULL";
/// Row name of the pipelined DEALER/ROUTER echo.
pub const DEALER_ROUTER: &str = "libzmq DEALER/ROUTER";
/// Row name of PUB/SUB with one subscriber.
pub const PUB_SUB: &str = "libzmq PUB/SUB";
/// Row name of PUB/SUB with [`FAN_OUT`] subscribers.
pub const PUB_SUB_FAN_OUT: &str = "libzmq PUB/SUB, 10 subs";

/// Subscribers of the fan-out row.
pub const FAN_OUT: usize = 10;
/// Payload size of the REQ/REP round trip, in bytes.
pub const REQ_REP_SIZE: usize = 64;
/// Payload sizes of PUSH/PULL, in bytes.
pub const PUSH_PULL_SIZES: [usize; 4] = [64, 1024, 64 * 1024, 1024 * 1024];
/// Payload size of the DEALER/ROUTER echo, in bytes.
pub const DEALER_ROUTER_SIZE: usize = 512;
/// Payload size of the PUB/SUB rows, in bytes.
pub const PUB_SUB_SIZE: usize = 64;
/// Transports the baselines run over.
pub const TRANSPORTS: [Transport; 2] = [Transport::Tcp, Transport::Ipc];

/// How long a subscriber's receive waits before it looks at the stop flag.
const SUB_POLL: Duration = Duration::from_millis(20);
/// Most requests the DEALER sends, or echoes it takes, in one go.
const DEALER_BATCH: u64 = 256;
/// Interval of the publisher's join probes and end markers.
const MARKER_INTERVAL: Duration = Duration::from_millis(1);
/// How long the publisher keeps sending end markers to subscribers that
/// have not seen one.
const END_GRACE: Duration = Duration::from_secs(1);

/// Every libzmq experiment, in table order.
pub fn experiments() -> Vec<Experiment> {
    let mut all = Vec::new();
    for t in TRANSPORTS {
        all.push(Experiment::new(format!("{REQ_REP} {t}"), move |cfg| {
            req_rep(cfg, t)
        }));
    }
    for t in TRANSPORTS {
        for size in PUSH_PULL_SIZES {
            all.push(Experiment::new(
                format!("{PUSH_PULL} {t} {size} B"),
                move |cfg| push_pull(cfg, t, size),
            ));
        }
    }
    for t in TRANSPORTS {
        all.push(Experiment::new(
            format!("{DEALER_ROUTER} {t}"),
            move |cfg| dealer_router(cfg, t),
        ));
    }
    for t in TRANSPORTS {
        all.push(Experiment::new(format!("{PUB_SUB} {t}"), move |cfg| {
            pub_sub(cfg, t, 1)
        }));
    }
    for t in TRANSPORTS {
        all.push(Experiment::new(
            format!("{PUB_SUB_FAN_OUT} {t}"),
            move |cfg| pub_sub(cfg, t, FAN_OUT),
        ));
    }
    all
}

/// REQ/REP round trips of [`REQ_REP_SIZE`] bytes: [`Metric::RttP50`] and
/// [`Metric::RttP99`], compared with [`tokio_baseline::PING_PONG`].
///
/// # Errors
///
/// libzmq errors, or a peer that stops answering.
pub fn req_rep(cfg: &Config, transport: Transport) -> Result<Vec<Measurement>, BenchError> {
    let dir = temp_dir()?;
    let server_ctx = zmq::Context::new();
    let client_ctx = zmq::Context::new();
    let rep = socket(&server_ctx, zmq::REP, cfg)?;
    let endpoint = bind(&rep, transport, dir.path())?;
    let req = socket(&client_ctx, zmq::REQ, cfg)?;
    req.connect(&endpoint)?;

    let rtts = thread::scope(|scope| {
        let server = scope.spawn(move || echo(rep));
        let client = rtt_client(&req, cfg);
        // Tell the server to stop, whatever happened here: an empty
        // request ends its loop. If the client failed half-way, REQ cannot
        // send now; the server then stops at its receive timeout.
        let _ = req.send(&[][..], 0).and_then(|()| req.recv_msg(0));
        let server = server.join().map_err(|_| BenchError::Panicked)?;
        server?;
        client
    })?;
    let (p50, p99) = rtt_percentiles(&rtts);
    let m = |metric, v| {
        Measurement::new(Suite::Libzmq, REQ_REP, transport, REQ_REP_SIZE, metric, v)
            .compared_with(&[tokio_baseline::PING_PONG])
    };
    Ok(vec![m(Metric::RttP50, p50), m(Metric::RttP99, p99)])
}

/// Echo every request; stop after echoing an empty one.
fn echo(rep: zmq::Socket) -> Result<u64, BenchError> {
    let mut echoed = 0;
    let mut msg = zmq::Message::new();
    loop {
        rep.recv(&mut msg, 0).map_err(timeout("REP receive"))?;
        let last = msg.is_empty();
        rep.send(std::mem::replace(&mut msg, zmq::Message::new()), 0)
            .map_err(timeout("REP send"))?;
        if last {
            return Ok(echoed);
        }
        echoed += 1;
    }
}

/// Round trips until the count or the time limit, after the warm-up ones.
fn rtt_client(req: &zmq::Socket, cfg: &Config) -> Result<Vec<Duration>, BenchError> {
    let payload = [0xA5_u8; REQ_REP_SIZE];
    let mut reply = zmq::Message::new();
    let mut rtts = Vec::with_capacity(cfg.rtt_count);
    let (warmup, deadline) = (cfg.rtt_warmup(), deadline(cfg.time_limit));
    let mut done = 0usize;
    while rtts.len() < cfg.rtt_count {
        let t0 = Instant::now();
        if t0 >= deadline && !rtts.is_empty() {
            break;
        }
        req.send(&payload[..], 0).map_err(timeout("REQ send"))?;
        req.recv(&mut reply, 0).map_err(timeout("REQ receive"))?;
        let rtt = t0.elapsed();
        if reply.len() != REQ_REP_SIZE {
            return Err(BenchError::Inconsistent("reply of the wrong size".into()));
        }
        if done >= warmup {
            rtts.push(rtt);
        }
        done += 1;
    }
    Ok(rtts)
}

/// PUSH/PULL of `size`-byte messages: [`Metric::MsgsPerSec`] and
/// [`Metric::BytesPerSec`] at the receiver, compared with
/// [`tokio_baseline::STREAM`].
///
/// # Errors
///
/// libzmq errors, a peer that stops, or a lost message.
pub fn push_pull(
    cfg: &Config,
    transport: Transport,
    size: usize,
) -> Result<Vec<Measurement>, BenchError> {
    let dir = temp_dir()?;
    let receiver_ctx = zmq::Context::new();
    let sender_ctx = zmq::Context::new();
    let pull = socket(&receiver_ctx, zmq::PULL, cfg)?;
    let endpoint = bind(&pull, transport, dir.path())?;
    let push = socket(&sender_ctx, zmq::PUSH, cfg)?;
    push.connect(&endpoint)?;

    let count = cfg.stream_count_for(size);
    let ((received, end), (sent, start)) = thread::scope(|scope| {
        let receiver = scope.spawn(move || {
            let mut msg = zmq::Message::new();
            let mut received = 0u64;
            loop {
                pull.recv(&mut msg, 0).map_err(timeout("PULL receive"))?;
                match msg.len() {
                    0 => return Ok((received, Instant::now())),
                    n if n == size => received += 1,
                    _ => return Err(BenchError::Inconsistent("message of the wrong size".into())),
                }
            }
        });
        let sent = push_until(&push, size, count, cfg.time_limit);
        // The empty end marker, even after a failure, so the receiver stops
        // now rather than at its timeout.
        let _ = push.send(&[][..], 0);
        let received = receiver.join().map_err(|_| BenchError::Panicked)?;
        Ok::<_, BenchError>((received?, sent?))
    })?;
    if received != sent {
        return Err(BenchError::Inconsistent(format!(
            "PUSH sent {sent} messages, PULL received {received}"
        )));
    }
    let rate = per_sec(received, end.saturating_duration_since(start));
    let m = |metric, v| {
        Measurement::new(Suite::Libzmq, PUSH_PULL, transport, size, metric, v)
            .compared_with(&[tokio_baseline::STREAM])
    };
    Ok(vec![
        m(Metric::MsgsPerSec, rate),
        m(Metric::BytesPerSec, rate * size as f64),
    ])
}

/// Send `size`-byte messages until `count` are sent or `limit` has
/// passed. Returns the number sent and when sending started.
fn push_until(
    sock: &zmq::Socket,
    size: usize,
    count: u64,
    limit: Duration,
) -> Result<(u64, Instant), BenchError> {
    let payload = vec![0xA5_u8; size];
    let check_every = if size >= 16 * 1024 { 1 } else { 64 };
    let start = Instant::now();
    let deadline = start + limit;
    let mut sent = 0u64;
    while sent < count {
        if sent % check_every == 0 && Instant::now() >= deadline {
            break;
        }
        sock.send(&payload[..], 0).map_err(timeout("send"))?;
        sent += 1;
    }
    Ok((sent, start))
}

/// Pipelined DEALER/ROUTER echo of [`DEALER_ROUTER_SIZE`] bytes with up
/// to the config's 1024 requests unanswered: [`Metric::MsgsPerSec`] of
/// echoes, compared with [`tokio_baseline::PIPELINED`].
///
/// The DEALER runs one loop on one thread (a libzmq socket belongs to one
/// thread): it sends as many requests as the window has room for (at most
/// a batch, without blocking), waits for one echo, takes whatever other
/// echoes are already there, and again. It stops sending after the count
/// or the time limit, takes the outstanding echoes, then sends an empty
/// request that stops the ROUTER.
///
/// # Errors
///
/// libzmq errors, a peer that stops answering, or a lost echo.
pub fn dealer_router(cfg: &Config, transport: Transport) -> Result<Vec<Measurement>, BenchError> {
    let dir = temp_dir()?;
    let server_ctx = zmq::Context::new();
    let client_ctx = zmq::Context::new();
    let router = socket(&server_ctx, zmq::ROUTER, cfg)?;
    router.set_router_mandatory(true)?;
    let endpoint = bind(&router, transport, dir.path())?;
    let dealer = socket(&client_ctx, zmq::DEALER, cfg)?;
    dealer.connect(&endpoint)?;

    let (received, elapsed) = thread::scope(|scope| {
        let server = scope.spawn(move || router_echo(router));
        let client = dealer_window(&dealer, cfg);
        // The empty request stops the ROUTER whatever happened here; if the
        // client failed, the ROUTER stops at its receive timeout instead.
        let _ = dealer.send(&[][..], 0);
        let server = server.join().map_err(|_| BenchError::Panicked)?;
        server?;
        client
    })?;
    Ok(vec![
        Measurement::new(
            Suite::Libzmq,
            DEALER_ROUTER,
            transport,
            DEALER_ROUTER_SIZE,
            Metric::MsgsPerSec,
            per_sec(received, elapsed),
        )
        .compared_with(&[tokio_baseline::PIPELINED]),
    ])
}

/// The ROUTER: echo every request to its sender, identity frame first;
/// stop at an empty request (which gets no echo).
fn router_echo(router: zmq::Socket) -> Result<u64, BenchError> {
    let mut echoed = 0;
    let mut identity = zmq::Message::new();
    let mut payload = zmq::Message::new();
    loop {
        router
            .recv(&mut identity, 0)
            .map_err(timeout("ROUTER receive"))?;
        if !router.get_rcvmore()? {
            return Err(BenchError::Inconsistent("ROUTER got no payload".into()));
        }
        router
            .recv(&mut payload, 0)
            .map_err(timeout("ROUTER receive"))?;
        if payload.is_empty() {
            return Ok(echoed);
        }
        router
            .send(
                std::mem::replace(&mut identity, zmq::Message::new()),
                zmq::SNDMORE,
            )
            .map_err(timeout("ROUTER send"))?;
        router
            .send(std::mem::replace(&mut payload, zmq::Message::new()), 0)
            .map_err(timeout("ROUTER send"))?;
        echoed += 1;
    }
}

/// The DEALER's window loop (see [`dealer_router`]). Returns the echoes
/// received and the time from the first request to the last echo.
fn dealer_window(dealer: &zmq::Socket, cfg: &Config) -> Result<(u64, Duration), BenchError> {
    let payload = [0xA5_u8; DEALER_ROUTER_SIZE];
    let window = cfg.in_flight as u64;
    let count = cfg.pipelined_count;
    let mut echo = zmq::Message::new();
    let (mut sent, mut received) = (0u64, 0u64);
    let start = Instant::now();
    let deadline = start + cfg.time_limit;
    let mut sending = true;
    loop {
        if sending {
            let room = (window - (sent - received)).min(DEALER_BATCH);
            for _ in 0..room.min(count - sent) {
                match dealer.send(&payload[..], zmq::DONTWAIT) {
                    Ok(()) => sent += 1,
                    Err(zmq::Error::EAGAIN) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            sending = sent < count && Instant::now() < deadline;
        }
        if received == sent {
            if sending {
                continue;
            }
            break;
        }
        dealer
            .recv(&mut echo, 0)
            .map_err(timeout("DEALER receive"))?;
        let mut taken = 1;
        loop {
            if echo.len() != DEALER_ROUTER_SIZE {
                return Err(BenchError::Inconsistent("echo of the wrong size".into()));
            }
            received += 1;
            if taken == DEALER_BATCH || received == sent {
                break;
            }
            match dealer.recv(&mut echo, zmq::DONTWAIT) {
                Ok(()) => taken += 1,
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((received, start.elapsed()))
}

/// PUB/SUB of [`PUB_SUB_SIZE`]-byte messages to `subscribers` subscribers:
/// [`Metric::MsgsPerSec`] delivered, summed over the subscribers.
///
/// Before measuring, the publisher sends a 1-byte probe every millisecond
/// until every subscriber has received one (libzmq drops what is published
/// before a subscription arrives). After it, it sends an empty end marker
/// every millisecond until every subscriber has seen one, for at most a
/// second; subscribers that miss it (dropped at the high-water mark) stop
/// on the stop flag instead.
///
/// # Errors
///
/// libzmq errors, a subscriber that does not join within the config's join
/// timeout, or a run in which nothing was delivered.
pub fn pub_sub(
    cfg: &Config,
    transport: Transport,
    subscribers: usize,
) -> Result<Vec<Measurement>, BenchError> {
    let size = PUB_SUB_SIZE;
    let dir = temp_dir()?;
    let pub_ctx = zmq::Context::new();
    let sub_ctx = zmq::Context::new();
    let publisher = socket(&pub_ctx, zmq::PUB, cfg)?;
    let endpoint = bind(&publisher, transport, dir.path())?;
    let mut subs = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let s = socket(&sub_ctx, zmq::SUB, cfg)?;
        s.set_rcvtimeo(millis(SUB_POLL))?;
        s.set_subscribe(b"")?;
        s.connect(&endpoint)?;
        subs.push(s);
    }

    let joined = AtomicUsize::new(0);
    let ended = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let hard_deadline = deadline(cfg.hard_limit());
    let (published, deliveries) = thread::scope(|scope| {
        let handles: Vec<_> = subs
            .into_iter()
            .map(|s| {
                let (joined, ended, stop) = (&joined, &ended, &stop);
                scope.spawn(move || {
                    let r = subscribe(&s, size, joined, stop, hard_deadline);
                    ended.fetch_add(1, Ordering::Release);
                    r
                })
            })
            .collect();

        let published = publish(&publisher, cfg, size, subscribers, &joined);
        stop.store(true, Ordering::Release);
        let grace = deadline(END_GRACE);
        while ended.load(Ordering::Acquire) < subscribers && Instant::now() < grace {
            let _ = publisher.send(&[][..], zmq::DONTWAIT);
            thread::sleep(MARKER_INTERVAL);
        }
        let mut deliveries = Vec::with_capacity(subscribers);
        for h in handles {
            deliveries.push(h.join().map_err(|_| BenchError::Panicked)?);
        }
        Ok::<_, BenchError>((published, deliveries))
    })?;

    let start = published?;
    let (mut total, mut last) = (0u64, None::<Instant>);
    for d in deliveries {
        let (count, at) = d?;
        total += count;
        last = last.max(at);
    }
    let Some(end) = last.filter(|_| total > 0) else {
        return Err(BenchError::Inconsistent("no message delivered".into()));
    };
    let (row, refs): (_, &[&'static str]) = if subscribers == 1 {
        (PUB_SUB, &[tokio_baseline::STREAM, PUSH_PULL])
    } else {
        (PUB_SUB_FAN_OUT, &[tokio_baseline::STREAM, PUB_SUB])
    };
    Ok(vec![
        Measurement::new(
            Suite::Libzmq,
            row,
            transport,
            size,
            Metric::MsgsPerSec,
            per_sec(total, end.saturating_duration_since(start)),
        )
        .compared_with(refs),
    ])
}

/// The publisher: wait for every subscriber to join, then publish until
/// the count or the time limit. Returns when publishing started.
fn publish(
    sock: &zmq::Socket,
    cfg: &Config,
    size: usize,
    subscribers: usize,
    joined: &AtomicUsize,
) -> Result<Instant, BenchError> {
    let join_deadline = deadline(cfg.join_timeout);
    while joined.load(Ordering::Acquire) < subscribers {
        if Instant::now() >= join_deadline {
            return Err(BenchError::Timeout("subscribers joining"));
        }
        sock.send(&[1_u8][..], zmq::DONTWAIT)
            .map_err(timeout("PUB send"))?;
        thread::sleep(MARKER_INTERVAL);
    }
    let (_, start) = push_until(sock, size, cfg.pubsub_count, cfg.time_limit)?;
    Ok(start)
}

/// A subscriber: count `size`-byte messages until an end marker arrives or,
/// once `stop` is set, a receive times out. Returns the count and when the
/// last one arrived.
fn subscribe(
    sock: &zmq::Socket,
    size: usize,
    joined: &AtomicUsize,
    stop: &AtomicBool,
    hard_deadline: Instant,
) -> Result<(u64, Option<Instant>), BenchError> {
    let mut msg = zmq::Message::new();
    let (mut count, mut last, mut seen_any) = (0u64, None, false);
    loop {
        match sock.recv(&mut msg, 0) {
            Ok(()) => {
                if !seen_any {
                    seen_any = true;
                    joined.fetch_add(1, Ordering::Release);
                }
                match msg.len() {
                    0 => break,
                    n if n == size => {
                        count += 1;
                        last = Some(Instant::now());
                    }
                    _ => {} // a join probe
                }
            }
            Err(zmq::Error::EAGAIN) => {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                if Instant::now() >= hard_deadline {
                    return Err(BenchError::Timeout("SUB receive"));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((count, last))
}

// ---------------------------------------------------------------------------
// Helpers.

fn temp_dir() -> Result<tempfile::TempDir, BenchError> {
    Ok(tempfile::Builder::new().prefix("msg-bench").tempdir()?)
}

/// A socket with linger 0 and send and receive timeouts of the hard limit.
fn socket(
    ctx: &zmq::Context,
    kind: zmq::SocketType,
    cfg: &Config,
) -> Result<zmq::Socket, BenchError> {
    let s = ctx.socket(kind)?;
    s.set_linger(0)?;
    s.set_rcvtimeo(millis(cfg.hard_limit()))?;
    s.set_sndtimeo(millis(cfg.hard_limit()))?;
    Ok(s)
}

/// Bind on loopback (an OS-chosen TCP port, or a socket file in `dir`) and
/// return the endpoint peers connect to.
fn bind(sock: &zmq::Socket, transport: Transport, dir: &Path) -> Result<String, BenchError> {
    let endpoint = match transport {
        Transport::Tcp => "tcp://127.0.0.1:*".to_owned(),
        Transport::Ipc => format!("ipc://{}", dir.join("zmq.sock").display()),
        other => return Err(BenchError::Unsupported(other)),
    };
    sock.bind(&endpoint)?;
    sock.get_last_endpoint()?
        .map_err(|_| BenchError::Inconsistent("bound endpoint is not UTF-8".into()))
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Map libzmq's `EAGAIN` (a send or receive timeout) to
/// [`BenchError::Timeout`].
fn timeout(what: &'static str) -> impl Fn(zmq::Error) -> BenchError {
    move |e| match e {
        zmq::Error::EAGAIN => BenchError::Timeout(what),
        e => BenchError::Zmq(e),
    }
}
