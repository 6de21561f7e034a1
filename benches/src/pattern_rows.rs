//! msg's pipeline and asynchronous request/reply sockets: Push/Pull
//! throughput and pipelined Dealer/Router round trips, next to the plain
//! tokio and libzmq rows that do the same.
//!
//! Placement follows [`tokio_baseline`] and [`msg_rows`], shape by shape
//! ([`Shape`]): in [`Shape::CurrentThread`] each side on its own OS thread
//! with a current-thread tokio runtime, in [`Shape::MultiThread`] both as
//! tasks of one multi-thread runtime, and in [`Shape::Processes`] (Push/Pull
//! at [`PROCESSES_PUSH_PULL_SIZE`], as the tokio stream and msg Pub/Sub)
//! the pushing side in a child process (see [`processes`]). Each side's
//! socket is driven from a spawned task, as an application's would be.
//! Every socket has its default options (high-water marks of 1000
//! messages, like the libzmq rows).
//!
//! The rows:
//!
//! - [`PUSH_PULL`]: a [`PushSocket`] sends `size`-byte messages with
//!   `send().await` as fast as it can to one [`PullSocket`], which takes
//!   them with `recv().await`; messages and payload bytes received per
//!   second, at 64 B, 1 KiB, 64 KiB and 1 MiB. Push waits at the high-water
//!   mark and never drops, so every message sent is received. Compared with
//!   [`tokio_baseline::STREAM`] and [`zmq_baseline::PUSH_PULL`].
//! - [`DEALER_ROUTER`]: a [`DealerSocket`] keeps up to the config's 1024
//!   requests of 512 B unanswered to a [`RouterSocket`] that answers each
//!   with `send_to(&route, message)`, echoing it; echoes received per
//!   second. Compared with [`zmq_baseline::DEALER_ROUTER`],
//!   [`tokio_baseline::PIPELINED`] and [`msg_rows::PIPELINED`].
//!
//! The Push/Pull window runs from the first message sent to the last one
//! received (in [`Shape::Processes`], from the first received to the last);
//! the pusher starts once its peer is connected and ends with an empty end
//! marker. The Dealer runs in one task that owns the socket, as an
//! application with one Dealer would: it queues as many requests as the
//! window has room for with `try_send` (at most [`DEALER_BATCH`] at a
//! time), waits for one echo with `recv().await`, takes the echoes already
//! there without waiting, and again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use msg::{DealerSocket, Message, PullSocket, PushSocket, RouterSocket, SendError};
use tokio::sync::oneshot;

use crate::error::BenchError;
use crate::measure::{Config, Experiment, Measurement, Metric, Shape, Suite, Transport, deadline};
use crate::msg_rows::{self, Place, bound_endpoint, other};
use crate::placement::two_ends;
use crate::stats::per_sec;
use crate::{processes, tokio_baseline, zmq_baseline};

/// Row name of the Push/Pull stream.
pub const PUSH_PULL: &str = "msg Push/Pull";
/// Row name of the pipelined Dealer/Router echo.
pub const DEALER_ROUTER: &str = "msg Dealer/Router pipelined";

/// Payload sizes of Push/Pull, in bytes.
pub const PUSH_PULL_SIZES: [usize; 4] = [64, 1024, 64 * 1024, 1024 * 1024];
/// Payload size of Push/Pull in [`Shape::Processes`], in bytes.
pub const PROCESSES_PUSH_PULL_SIZE: usize = 64;
/// Payload size of the Dealer/Router echo, in bytes.
pub const DEALER_ROUTER_SIZE: usize = 512;
/// Transports the rows run over.
pub const TRANSPORTS: [Transport; 2] = [Transport::Tcp, Transport::Ipc];
/// The shapes in which every row runs; [`Shape::Processes`] has only
/// Push/Pull at [`PROCESSES_PUSH_PULL_SIZE`].
pub const SHAPES: [Shape; 2] = [Shape::CurrentThread, Shape::MultiThread];
/// Most requests the Dealer queues, or echoes it takes, in one go.
pub const DEALER_BATCH: u64 = 256;

/// How long a receive that has to wait may wait before the receiver looks
/// at its deadline.
const RECV_POLL: Duration = Duration::from_millis(100);

/// Every experiment of this module, in table order: shape by shape
/// ([`SHAPES`], then [`Shape::Processes`]), each name ending with its shape
/// in parentheses, such as `"msg Push/Pull tcp 64 B (multi-thread)"`.
pub fn experiments() -> Vec<Experiment> {
    let mut all = Vec::new();
    for shape in SHAPES {
        for t in TRANSPORTS {
            for size in PUSH_PULL_SIZES {
                all.push(Experiment::new(
                    format!("{PUSH_PULL} {t} {size} B ({shape})"),
                    move |cfg| push_pull(cfg, t, size, shape),
                ));
            }
        }
        for t in TRANSPORTS {
            all.push(Experiment::new(
                format!("{DEALER_ROUTER} {t} ({shape})"),
                move |cfg| dealer_router(cfg, t, shape),
            ));
        }
    }
    let shape = Shape::Processes;
    for t in TRANSPORTS {
        let size = PROCESSES_PUSH_PULL_SIZE;
        all.push(Experiment::new(
            format!("{PUSH_PULL} {t} {size} B ({shape})"),
            move |cfg| push_pull(cfg, t, size, shape),
        ));
    }
    all
}

// ---------------------------------------------------------------------------
// Push/Pull.

/// Push/Pull of `size`-byte messages: [`Metric::MsgsPerSec`] and
/// [`Metric::BytesPerSec`] at the receiver. In [`Shape::Processes`] the
/// pusher is a child process, and the window runs from the first message
/// received to the last.
///
/// # Errors
///
/// Socket errors, a peer that does not connect within the config's join
/// timeout or stops, or a lost message.
pub fn push_pull(
    cfg: &Config,
    transport: Transport,
    size: usize,
    shape: Shape,
) -> Result<Vec<Measurement>, BenchError> {
    let (received, elapsed) = match shape {
        Shape::Processes => match processes::push_pull(cfg, transport, size)? {
            Some(out) => out,
            None => return Ok(Vec::new()),
        },
        _ => push_pull_in_process(cfg, transport, size, shape)?,
    };
    let rate = per_sec(received, elapsed);
    let m = |metric, v| {
        Measurement::new(Suite::Msg, PUSH_PULL, transport, size, metric, v)
            .on(shape)
            .compared_with(&[tokio_baseline::STREAM, zmq_baseline::PUSH_PULL])
    };
    Ok(vec![
        m(Metric::MsgsPerSec, rate),
        m(Metric::BytesPerSec, rate * size as f64),
    ])
}

/// [`push_pull`] with both ends in this process: the Push socket binds, the
/// Pull socket connects. Messages received and the window from the first
/// sent to the last received.
fn push_pull_in_process(
    cfg: &Config,
    transport: Transport,
    size: usize,
    shape: Shape,
) -> Result<(u64, Duration), BenchError> {
    let place = Arc::new(Place::new(transport)?);
    let limit = cfg.hard_limit();
    let (join, time_limit) = (cfg.join_timeout, cfg.time_limit);
    let count = cfg.stream_count_for(size);
    let (endpoint_tx, endpoint_rx) = oneshot::channel::<Result<String, String>>();

    let pusher = {
        let place = place.clone();
        async move {
            let bound = async {
                let push = PushSocket::with_options(place.server_options()?).map_err(other)?;
                let at = push.bind(&place.bind_endpoint()).await.map_err(other)?;
                Ok((push, at.to_string()))
            }
            .await;
            let push = announce(bound, endpoint_tx)?;
            tokio::spawn(async move {
                let out = push_all(&push, size, count, join, time_limit).await;
                // Lingers until what is queued (the end marker included)
                // is written.
                push.close(join).await;
                out
            })
            .await
            .map_err(|_| BenchError::Panicked)?
        }
    };
    let puller = async move {
        let endpoint = bound_endpoint(limit, endpoint_rx, "push socket binding").await?;
        let pull = PullSocket::with_options(place.client_options()?).map_err(other)?;
        pull.connect(&endpoint).map_err(other)?;
        let hard_deadline = deadline(limit);
        tokio::spawn(pull_all(pull, size, hard_deadline))
            .await
            .map_err(|_| BenchError::Panicked)?
    };
    let ((sent, start), (received, _, last)) = two_ends(shape, limit, "msg peer", pusher, puller)?;
    if received != sent {
        return Err(BenchError::Inconsistent(format!(
            "Push sent {sent} messages, Pull received {received}"
        )));
    }
    let Some(end) = last.filter(|_| received > 0) else {
        return Err(BenchError::Inconsistent("no message received".into()));
    };
    Ok((received, end.saturating_duration_since(start)))
}

/// The bound socket of `bound` (its endpoint sent to `endpoint`), or its
/// error (sent there too).
fn announce<S>(
    bound: Result<(S, String), BenchError>,
    endpoint: oneshot::Sender<Result<String, String>>,
) -> Result<S, BenchError> {
    match bound {
        Ok((socket, at)) => {
            let _ = endpoint.send(Ok(at));
            Ok(socket)
        }
        Err(e) => {
            let _ = endpoint.send(Err(e.to_string()));
            Err(e)
        }
    }
}

/// The pusher: wait for the Pull peer, send `size`-byte messages with
/// `send().await` until `count` are sent or `limit` has passed, then an
/// empty end marker. Returns the number sent (the marker not counted) and
/// when sending started.
pub(crate) async fn push_all(
    push: &PushSocket,
    size: usize,
    count: u64,
    join: Duration,
    limit: Duration,
) -> Result<(u64, Instant), BenchError> {
    if !push.wait_for_peers(1, join).await {
        return Err(BenchError::Timeout("pull connecting"));
    }
    let payload = Bytes::from(vec![0xA5; size]);
    // Reading the clock costs about as much as queueing a small message.
    let check_every = if size >= 16 * 1024 { 1 } else { 64 };
    let start = Instant::now();
    let deadline = start + limit;
    let mut sent = 0u64;
    while sent < count {
        if sent % check_every == 0 && Instant::now() >= deadline {
            break;
        }
        push.send(payload.clone()).await.map_err(other)?;
        sent += 1;
    }
    push.send(Bytes::new()).await.map_err(other)?;
    Ok((sent, start))
}

/// The puller: count `size`-byte messages until the empty end marker, then
/// close. Returns the count, when the first message arrived and when the end
/// marker did (right behind the last message).
pub(crate) async fn pull_all(
    mut pull: PullSocket,
    size: usize,
    hard_deadline: Instant,
) -> Result<(u64, Option<Instant>, Option<Instant>), BenchError> {
    let (mut count, mut first) = (0u64, None);
    let out = loop {
        // A message already queued is taken without arming a timer; only a
        // receive that has to wait gets a timeout. `recv` is cancel safe.
        let next = match pull.recv().now_or_never() {
            Some(next) => next,
            None => match tokio::time::timeout(RECV_POLL, pull.recv()).await {
                Ok(next) => next,
                Err(_) if Instant::now() >= hard_deadline => {
                    break Err(BenchError::Timeout("pull receive"));
                }
                Err(_) => continue,
            },
        };
        let Some(message) = next else {
            break Err(BenchError::Inconsistent("pull socket closed".into()));
        };
        match one_part(message) {
            // The end marker follows the last message on the same
            // connection: its arrival ends the window, as in the libzmq
            // baseline, without reading the clock for every message.
            Some(0) => break Ok((count, first, Some(Instant::now()))),
            Some(n) if n == size => {
                count += 1;
                if first.is_none() {
                    first = Some(Instant::now());
                }
            }
            _ => break Err(BenchError::Inconsistent("message of the wrong size".into())),
        }
    };
    pull.close(Duration::ZERO).await;
    out
}

/// The size of a one-part message; `None` for a multipart one.
fn one_part(message: Message) -> Option<usize> {
    message.into_single().ok().map(|part| part.len())
}

// ---------------------------------------------------------------------------
// Dealer/Router.

/// Pipelined Dealer/Router echo of [`DEALER_ROUTER_SIZE`] bytes with up to
/// the config's 1024 requests unanswered: [`Metric::MsgsPerSec`] of echoes.
///
/// # Errors
///
/// Socket errors, a peer that does not connect within the config's join
/// timeout, or a lost or wrong echo.
pub fn dealer_router(
    cfg: &Config,
    transport: Transport,
    shape: Shape,
) -> Result<Vec<Measurement>, BenchError> {
    let place = Arc::new(Place::new(transport)?);
    let limit = cfg.hard_limit();
    let join = cfg.join_timeout;
    let (count, window, time_limit) = (cfg.pipelined_count, cfg.in_flight, cfg.time_limit);
    let (endpoint_tx, endpoint_rx) = oneshot::channel::<Result<String, String>>();
    // Dropped when the Dealer is done (or fails): the Router stops.
    let (stop_tx, stop_rx) = oneshot::channel::<()>();

    let server = {
        let place = place.clone();
        async move {
            let bound = async {
                let router = RouterSocket::with_options(place.server_options()?).map_err(other)?;
                let at = router.bind(&place.bind_endpoint()).await.map_err(other)?;
                Ok((router, at.to_string()))
            }
            .await;
            let router = announce(bound, endpoint_tx)?;
            tokio::spawn(router_echo(router, async move {
                let _ = stop_rx.await;
            }))
            .await
            .map_err(|_| BenchError::Panicked)
        }
    };
    let client = async move {
        let _stop = stop_tx;
        let endpoint = bound_endpoint(limit, endpoint_rx, "router socket binding").await?;
        let dealer = DealerSocket::with_options(place.client_options()?).map_err(other)?;
        dealer.connect(&endpoint).map_err(other)?;
        if !dealer.wait_for_peers(1, join).await {
            return Err(BenchError::Timeout("dealer connecting"));
        }
        tokio::spawn(async move {
            let mut dealer = dealer;
            let out = dealer_window(&mut dealer, count, window, time_limit).await;
            dealer.close(Duration::ZERO).await;
            out
        })
        .await
        .map_err(|_| BenchError::Panicked)?
    };
    let ((), (received, elapsed)) = two_ends(shape, limit, "msg peer", server, client)?;
    Ok(vec![
        Measurement::new(
            Suite::Msg,
            DEALER_ROUTER,
            transport,
            DEALER_ROUTER_SIZE,
            Metric::MsgsPerSec,
            per_sec(received, elapsed),
        )
        .on(shape)
        .compared_with(&[
            zmq_baseline::DEALER_ROUTER,
            tokio_baseline::PIPELINED,
            msg_rows::PIPELINED,
        ]),
    ])
}

/// Answer every message on `router` with itself, through `send_to` its
/// route, until `stop` resolves or the socket closes; then close it.
async fn router_echo(mut router: RouterSocket, stop: impl std::future::Future<Output = ()>) {
    let serve = async {
        while let Some((route, message)) = router.recv().await {
            if router.send_to(&route, message).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = serve => {}
        () = stop => {}
    }
    router.close(Duration::ZERO).await;
}

/// The Dealer's window loop (see the module docs): up to `window` requests
/// unanswered, until `count` are sent or `limit` has passed, then every
/// outstanding echo. Returns the echoes received and the time from the
/// first request to the last echo.
async fn dealer_window(
    dealer: &mut DealerSocket,
    count: u64,
    window: usize,
    limit: Duration,
) -> Result<(u64, Duration), BenchError> {
    let payload = Bytes::from(vec![0xA5; DEALER_ROUTER_SIZE]);
    let window = window as u64;
    let (mut sent, mut received) = (0u64, 0u64);
    let start = Instant::now();
    let deadline = start + limit;
    let mut sending = true;
    loop {
        if sending {
            let room = (window - (sent - received))
                .min(DEALER_BATCH)
                .min(count - sent);
            for _ in 0..room {
                match dealer.try_send(payload.clone()) {
                    Ok(()) => sent += 1,
                    Err(SendError::Full) => break,
                    Err(e) => return Err(other(e)),
                }
            }
            sending = sent < count && Instant::now() < deadline;
        }
        if received == sent {
            if sending {
                continue;
            }
            return Ok((received, start.elapsed()));
        }
        let Some(mut echo) = dealer.recv().await else {
            return Err(BenchError::Inconsistent("dealer socket closed".into()));
        };
        let mut taken = 1;
        loop {
            if one_part(echo) != Some(DEALER_ROUTER_SIZE) {
                return Err(BenchError::Inconsistent("echo of the wrong size".into()));
            }
            received += 1;
            if taken == DEALER_BATCH || received == sent {
                break;
            }
            match dealer.recv().now_or_never() {
                Some(Some(next)) => {
                    echo = next;
                    taken += 1;
                }
                Some(None) => return Err(BenchError::Inconsistent("dealer socket closed".into())),
                None => break,
            }
        }
    }
}
