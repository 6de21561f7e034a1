//! `msg sub`: subscribe to topic prefixes and print what arrives.

use std::time::Duration;

use msg::SubSocket;

use crate::cli::{Side, SubArgs};
use crate::output::Printer;
use crate::setup::{attach, parse_endpoint, socket_options};

/// Runs `msg sub`.
///
/// # Errors
///
/// A bad endpoint or certificate, a failed bind or first connection, or a
/// closed stdout.
pub(crate) async fn run(args: SubArgs) -> anyhow::Result<()> {
    let endpoint = parse_endpoint(&args.endpoint)?;
    let side = args.conn.side(Side::Connect);
    let options = socket_options(&args.conn, &endpoint, side)?;
    let mut sub = SubSocket::with_options(options)?;
    // Subscribed before connecting: the subscriptions go out with the
    // handshake of every connection, the first included.
    if args.topics.is_empty() {
        sub.subscribe("").await;
    }
    for topic in &args.topics {
        sub.subscribe(topic.clone()).await;
    }
    let mut watch = attach(&sub, &endpoint, side, args.conn.retry).await?;

    let printer = Printer::new(args.format);
    let limit = args.count.unwrap_or(u64::MAX);
    let work = async {
        let mut received = 0u64;
        while received < limit {
            let Some(message) = sub.recv().await else {
                break;
            };
            printer.message(&message)?;
            received += 1;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        result = work => result?,
        error = watch.failed() => return Err(error),
    }
    let stats = sub.stats();
    tracing::info!(
        received = stats.msgs_received,
        gaps = stats.gaps,
        dropped = stats.dropped_hwm,
        "done"
    );
    sub.close(Duration::ZERO).await;
    Ok(())
}
