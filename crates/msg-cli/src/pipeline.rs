//! `msg push` and `msg pull`: the two ends of a pipeline.

use std::time::Duration;

use anyhow::bail;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use msg::{PullSocket, PushSocket};

use crate::cli::{OutgoingArgs, PullArgs, PushArgs, Side};
use crate::input::Source;
use crate::output::Printer;
use crate::parse::format_duration;
use crate::publish::{pace, pacer};
use crate::setup::{attach, parse_endpoint, socket_options};

/// Runs `msg push`.
///
/// # Errors
///
/// A bad endpoint or certificate, a failed bind or first connection,
/// unreadable input, too few pullers within `--wait-timeout`, a message too
/// large to send, or messages still queued when `--linger` runs out.
pub(crate) async fn push(args: PushArgs) -> anyhow::Result<()> {
    let endpoint = parse_endpoint(&args.endpoint)?;
    let side = args.conn.side(Side::Connect);
    let options = socket_options(&args.conn, &endpoint, side)?;
    let push = PushSocket::with_options(options)?;
    let mut watch = attach(&push, &endpoint, side, args.conn.retry).await?;

    let mut pacer = pacer(args.rate);
    let work = async {
        // Input problems (a missing file) show before any waiting.
        let (mut messages, limit) = messages(args.out).await?;
        wait_for_pullers(&push, args.wait_pullers, args.wait_timeout).await?;
        let mut pushed = 0u64;
        while pushed < limit {
            let Some(payload) = messages.try_next().await? else {
                break;
            };
            pace(&mut pacer).await;
            // Waits while every puller is full: backpressure, not loss.
            push.send(payload).await?;
            pushed += 1;
        }
        anyhow::Ok(pushed)
    };
    let pushed = tokio::select! {
        result = work => result?,
        error = watch.failed() => return Err(error),
    };

    let report = push.close(args.linger).await;
    tracing::info!(pushed, "done");
    if !report.is_complete() {
        bail!(
            "{} of {pushed} message frame(s) not delivered: still queued when --linger ({}) ran out",
            report.undelivered_frames,
            format_duration(args.linger)
        );
    }
    Ok(())
}

/// The messages `msg push` (or `msg dealer`) sends, and how many of them
/// at most.
///
/// One message (one MESSAGE, or the whole file or stdin) is sent `--count`
/// times (once by default); several (MESSAGEs, or lines with `--lines`) are
/// sent in order, at most `--count` of them.
pub(crate) async fn messages(
    out: OutgoingArgs,
) -> anyhow::Result<(BoxStream<'static, anyhow::Result<Bytes>>, u64)> {
    let OutgoingArgs { data, input, count } = out;
    let input = &input;
    let many = count.unwrap_or(u64::MAX);
    if input.lines {
        // Arguments with --lines: each line of each argument.
        let data = (!data.is_empty()).then(|| data.join("\n"));
        let lines = Source::new(data, input).lines().await?;
        return Ok((lines.boxed(), many));
    }
    if data.len() > 1 {
        let each = stream::iter(data.into_iter().map(|d| Ok(Bytes::from(d))));
        return Ok((each.boxed(), many));
    }
    let payload = Source::new(data.into_iter().next(), input)
        .read_all()
        .await?;
    Ok((
        stream::repeat_with(move || Ok(payload.clone())).boxed(),
        count.unwrap_or(1),
    ))
}

/// Waits for `n` connected pullers.
async fn wait_for_pullers(push: &PushSocket, n: usize, timeout: Duration) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    if push.peers() < n {
        tracing::info!(pullers = n, "waiting for pullers");
    }
    if !push.wait_for_peers(n, timeout).await {
        bail!(
            "{} of {n} puller(s) after waiting {} (--wait-pullers, --wait-timeout)",
            push.peers(),
            format_duration(timeout)
        );
    }
    Ok(())
}

/// Runs `msg pull`.
///
/// # Errors
///
/// A bad endpoint or certificate, a failed bind or first connection, or a
/// closed stdout.
pub(crate) async fn pull(args: PullArgs) -> anyhow::Result<()> {
    let endpoint = parse_endpoint(&args.endpoint)?;
    let side = args.conn.side(Side::Bind);
    let options = socket_options(&args.conn, &endpoint, side)?;
    let mut pull = PullSocket::with_options(options)?;
    let mut watch = attach(&pull, &endpoint, side, args.conn.retry).await?;

    let printer = Printer::new(args.format);
    let limit = args.count.unwrap_or(u64::MAX);
    let work = async {
        let mut received = 0u64;
        while received < limit {
            let Some(message) = pull.recv().await else {
                break;
            };
            printer.parts(&message)?;
            received += 1;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        result = work => result?,
        error = watch.failed() => return Err(error),
    }
    tracing::info!(received = pull.stats().msgs_received, "done");
    pull.close(Duration::ZERO).await;
    Ok(())
}
