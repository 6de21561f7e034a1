//! `msg pub`: publish messages under a topic.

use anyhow::bail;
use bytes::Bytes;
use futures::TryStreamExt;
use msg::PubSocket;
use tokio::time::{Interval, MissedTickBehavior};

use crate::cli::{PubArgs, Side};
use crate::input::Source;
use crate::parse::format_duration;
use crate::setup::{attach, parse_endpoint, socket_options};
use crate::warn;

/// How many messages are published between two yields to the runtime, so
/// that the connection writers run while a large --count is published.
const YIELD_EVERY: u64 = 64;

/// Runs `msg pub`.
///
/// # Errors
///
/// A bad endpoint or certificate, a failed bind or first connection,
/// unreadable input, too few subscribers within `--wait-timeout`, or a
/// message too large to publish.
pub(crate) async fn run(args: PubArgs) -> anyhow::Result<()> {
    let endpoint = parse_endpoint(&args.endpoint)?;
    let side = args.conn.side(Side::Bind);
    let options = socket_options(&args.conn, &endpoint, side)?;
    let publisher = PubSocket::with_options(options)?;
    let mut watch = attach(&publisher, &endpoint, side, args.conn.retry).await?;

    let topic = Bytes::from(args.topic);
    let limit = args
        .count
        .unwrap_or(if args.input.lines { u64::MAX } else { 1 });
    let mut pacer = pacer(args.rate);
    let source = Source::new(args.data, &args.input);

    let work = async {
        // Input problems (a missing file) show before any waiting.
        let mut lines = None;
        let mut single = None;
        if args.input.lines {
            lines = Some(source.lines().await?);
        } else {
            single = Some(source.read_all().await?);
        }
        wait_for_subscribers(&publisher, args.wait_subscribers, args.wait_timeout).await?;
        let mut published = 0u64;
        while published < limit {
            let payload = match (&mut lines, &single) {
                (Some(lines), _) => match lines.try_next().await? {
                    Some(line) => line,
                    None => break,
                },
                (None, Some(payload)) => payload.clone(),
                (None, None) => break,
            };
            pace(&mut pacer).await;
            publisher.publish(topic.clone(), payload)?;
            published += 1;
            if published % YIELD_EVERY == 0 {
                tokio::task::yield_now().await;
            }
        }
        anyhow::Ok(published)
    };
    let published = tokio::select! {
        result = work => result?,
        error = watch.failed() => return Err(error),
    };

    // Drops happen at publish time, so the count is final here.
    let dropped = publisher.stats().dropped_hwm;
    let report = publisher.close(args.linger).await;
    tracing::info!(published, dropped, "done");
    if dropped > 0 {
        warn(&format!(
            "{dropped} message(s) dropped for subscribers that could not keep up (try --rate)"
        ));
    }
    if !report.is_complete() {
        warn(&format!(
            "{} message(s) still queued when --linger ({}) ran out",
            report.undelivered_frames,
            format_duration(args.linger)
        ));
    }
    Ok(())
}

/// Waits for `n` subscribers with at least one subscription.
async fn wait_for_subscribers(
    publisher: &PubSocket,
    n: usize,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    if publisher.subscribers() < n {
        tracing::info!(subscribers = n, "waiting for subscribers");
    }
    if !publisher.wait_for_subscribers(n, timeout).await {
        bail!(
            "{} of {n} subscriber(s) after waiting {} (--wait-subscribers, --wait-timeout)",
            publisher.subscribers(),
            format_duration(timeout)
        );
    }
    Ok(())
}

/// The rate limit of `--rate`, if there is one.
pub(crate) fn pacer(rate: Option<f64>) -> Option<Interval> {
    rate.map(|per_second| {
        let mut interval =
            tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / per_second));
        // After a stall (a slow stdin), go on at the rate rather than
        // catching up in a burst.
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        interval
    })
}

/// Waits for the next tick of the rate limit, if there is one.
pub(crate) async fn pace(pacer: &mut Option<Interval>) {
    if let Some(interval) = pacer {
        interval.tick().await;
    }
}
