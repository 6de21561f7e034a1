//! Round trips that hold still: msg Req/Rep and the plain tokio ping-pong
//! measured in alternating rounds of one run.
//!
//! On a shared machine the round-trip time of both moves with how idle the
//! machine is (a wake-up of an idle thread costs more than one of a busy
//! thread), by a factor of two or three within an hour. A ratio of two
//! numbers taken a minute apart moves with it. Here both connections stay
//! open side by side and the client alternates: a round of
//! [`Config::interleave`] ping-pong round trips, then a round of as many
//! msg Req/Rep round trips, and again, for the configured number of rounds.
//! Each round pair gives one ratio, msg over tokio, of the p50 and of the
//! p99; the report shows the median of those ratios and their spread.
//! Each round starts with a few unrecorded round trips (a twentieth of its
//! count, at most 100) and is bounded to a quarter of the time limit.
//!
//! Both servers (the tokio echo and the msg Rep socket) run as spawned
//! tasks of the server end, both clients in one spawned task of the client
//! end, placed as the row's shape says.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use msg::ReqSocket;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::oneshot;

use crate::error::BenchError;
use crate::measure::{Config, Shape, Transport};
use crate::msg_rows::{
    self, Place, REQ_REP_SIZE, bind_rep, bound_endpoint, other, rep_echo, req_round,
};
use crate::placement::two_ends;
use crate::stats::rtt_percentiles;
use crate::tokio_baseline::{Link, READ_CHUNK, echo_server, ping_round};

/// The per-round ratios of one interleaved comparison, msg over tokio.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rounds {
    /// Ratio of the p50 round-trip times, one per round.
    pub(crate) p50: Vec<f64>,
    /// Ratio of the p99 round-trip times, one per round.
    pub(crate) p99: Vec<f64>,
}

/// How many rounds, how long each, from the config.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    rounds: usize,
    count: usize,
    warmup: usize,
    limit: Duration,
}

impl Plan {
    pub(crate) fn new(cfg: &Config) -> Plan {
        Plan {
            rounds: cfg.interleave_rounds,
            count: cfg.interleave_count,
            warmup: cfg.interleave_warmup(),
            limit: cfg.interleave_round_limit(),
        }
    }
}

/// Alternate rounds on two open connections: `io` to a tokio echo server,
/// `req` to a msg Rep socket that answers with the request's payload.
/// Baseline first in every pair.
pub(crate) async fn alternate<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    req: &ReqSocket,
    plan: Plan,
) -> Result<Rounds, BenchError> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let payload = Bytes::from(vec![0xA5; REQ_REP_SIZE]);
    let mut out = Rounds::default();
    for _ in 0..plan.rounds {
        let base = ping_round(io, &mut buf, plan.count, plan.warmup, plan.limit).await?;
        let ours = req_round(req, &payload, plan.count, plan.warmup, plan.limit).await?;
        if base.is_empty() || ours.is_empty() {
            return Err(BenchError::Inconsistent(
                "an empty interleaved round".into(),
            ));
        }
        let (b50, b99) = rtt_percentiles(&base);
        let (m50, m99) = rtt_percentiles(&ours);
        // Timer resolution is far below a microsecond; the floor only keeps
        // a broken clock from dividing by zero.
        out.p50.push(m50 / b50.max(1e-3));
        out.p99.push(m99 / b99.max(1e-3));
    }
    Ok(out)
}

/// The interleaved comparison with both ends in this process, in `shape`
/// ([`Shape::CurrentThread`] or [`Shape::MultiThread`]).
///
/// # Errors
///
/// Socket errors, a peer that stops answering, or another shape or
/// transport than those.
pub(crate) fn in_process(
    cfg: &Config,
    transport: Transport,
    shape: Shape,
) -> Result<Rounds, BenchError> {
    match transport {
        Transport::Tcp => in_process_on::<TcpStream>(cfg, transport, shape),
        Transport::Ipc => in_process_on::<UnixStream>(cfg, transport, shape),
        other => Err(BenchError::Unsupported(other)),
    }
}

fn in_process_on<L: Link>(
    cfg: &Config,
    transport: Transport,
    shape: Shape,
) -> Result<Rounds, BenchError> {
    let place = Arc::new(Place::new(transport)?);
    let (server_end, client_end) = L::std_pair(place.dir())?;
    let limit = cfg.interleave_hard_limit();
    let (plan, join) = (Plan::new(cfg), cfg.join_timeout);
    let (endpoint_tx, endpoint_rx) = oneshot::channel::<Result<String, String>>();
    // Dropped when the client is done (or fails): the Rep server stops.
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = {
        let place = place.clone();
        async move {
            let echo = tokio::spawn(async move { echo_server(L::from_std(server_end)?).await });
            let rep = bind_rep(&place, endpoint_tx).await?;
            tokio::spawn(rep_echo(rep, async move {
                let _ = stop_rx.await;
            }))
            .await
            .map_err(|_| BenchError::Panicked)?;
            echo.await.map_err(|_| BenchError::Panicked)??;
            Ok(())
        }
    };
    let client = async move {
        let _stop = stop_tx;
        let mut io = L::from_std(client_end)?;
        let endpoint = bound_endpoint(limit, endpoint_rx, "rep socket binding").await?;
        let req = Arc::new(ReqSocket::with_options(place.client_options()?).map_err(other)?);
        req.connect(&endpoint).map_err(other)?;
        if !req.wait_for_peers(1, join).await {
            return Err(BenchError::Timeout("req connecting"));
        }
        let rounds = tokio::spawn({
            let req = req.clone();
            async move {
                let rounds = alternate(&mut io, &req, plan).await;
                let _ = io.shutdown().await;
                rounds
            }
        })
        .await
        .map_err(|_| BenchError::Panicked)?;
        msg_rows::close_shared_req(req).await;
        rounds
    };
    let ((), rounds) = two_ends(shape, limit, "interleaved peer", server, client)?;
    Ok(rounds)
}
