//! `msg dealer` and `msg router`: requests without lock-step, and the
//! server that answers them by the sender's identity.

use std::time::Duration;

use anyhow::bail;
use futures::TryStreamExt;
use msg::{DealerSocket, Message, RouteError, RouterSocket};

use crate::cli::{DealerArgs, RouterArgs, Side};
use crate::output::Printer;
use crate::parse::format_duration;
use crate::pipeline::messages;
use crate::setup::{attach, parse_endpoint, socket_options};
use crate::warn;

/// How long closing waits for the last messages to be written.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// Runs `msg dealer`.
///
/// # Errors
///
/// A bad endpoint or certificate, a failed bind or first connection,
/// unreadable input, a message too large to send, `--timeout` passing with
/// answers still due, or a closed stdout.
pub(crate) async fn dealer(args: DealerArgs) -> anyhow::Result<()> {
    let endpoint = parse_endpoint(&args.endpoint)?;
    let side = args.conn.side(Side::Connect);
    let options = socket_options(&args.conn, &endpoint, side)?;
    let mut dealer = DealerSocket::with_options(options)?;
    let mut watch = attach(&dealer, &endpoint, side, args.conn.retry).await?;
    let printer = Printer::new(args.format);
    let timeout = args.timeout;

    let work = async {
        // Input problems (a missing file) show before anything is sent.
        let (mut outgoing, limit) = messages(args.out).await?;
        let mut sent = 0u64;
        let mut received = 0u64;
        let mut sending = true;
        loop {
            let due = args.replies.unwrap_or(sent);
            if !sending && received >= due {
                break;
            }
            tokio::select! {
                // Answers first: printing keeps up with a fast router.
                biased;
                message = tokio::time::timeout(timeout, dealer.recv()), if received < due || sending => {
                    match message {
                        Ok(Some(message)) => {
                            printer.parts(&message)?;
                            received += 1;
                        }
                        Ok(None) => bail!("the socket closed"),
                        Err(_) if sending => {}
                        Err(_) => bail!(
                            "{received} of {due} message(s) back after waiting {} (--timeout)",
                            format_duration(timeout)
                        ),
                    }
                }
                next = outgoing.try_next(), if sending => match next? {
                    Some(payload) if sent < limit => {
                        // Waits while every router is full: backpressure.
                        dealer.send(payload).await?;
                        sent += 1;
                    }
                    _ => sending = false,
                },
            }
        }
        anyhow::Ok((sent, received))
    };
    let (sent, received) = tokio::select! {
        result = work => result?,
        error = watch.failed() => return Err(error),
    };
    tracing::info!(sent, received, "done");
    dealer.close(CLOSE_LINGER).await;
    Ok(())
}

/// Runs `msg router`.
///
/// # Errors
///
/// A bad endpoint or certificate, a failed bind or first connection, or a
/// closed stdout. An answer that cannot go is reported, and the router
/// goes on.
pub(crate) async fn router(args: RouterArgs) -> anyhow::Result<()> {
    let endpoint = parse_endpoint(&args.endpoint)?;
    let side = args.conn.side(Side::Bind);
    let options = socket_options(&args.conn, &endpoint, side)?;
    let mut router = RouterSocket::with_options(options)?;
    let mut watch = attach(&router, &endpoint, side, args.conn.retry).await?;
    let printer = (!args.quiet).then(|| Printer::new(args.format));
    let fixed = args.reply.map(Message::from);
    let limit = args.count.unwrap_or(u64::MAX);

    let work = async {
        let mut answered = 0u64;
        while answered < limit {
            let Some((route, message)) = router.recv().await else {
                break;
            };
            if let Some(printer) = printer {
                printer.routed(route.identity(), &message)?;
            }
            let answer = fixed.clone().unwrap_or(message);
            match router.send_to(&route, answer).await {
                Ok(()) => {}
                Err(e @ (RouteError::Unreachable(_) | RouteError::Departed)) => {
                    warn(&format!("answer not delivered: {e}"));
                }
                Err(e) => return Err(e.into()),
            }
            answered += 1;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        result = work => result?,
        error = watch.failed() => return Err(error),
    }
    // Only reached with --count: deliver the last answers before exiting.
    let report = router.close(CLOSE_LINGER).await;
    if !report.is_complete() {
        warn(&format!(
            "{} answers were not delivered before closing",
            report.undelivered_frames
        ));
    }
    Ok(())
}
