//! `msg rep`: answer requests by echo, with a fixed reply, or with a
//! command's output.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use msg::{PeerInfo, RepSocket, Request};
use tokio::io::AsyncWriteExt;

use crate::cli::{OnError, RepArgs, Side};
use crate::output::Printer;
use crate::parse::format_duration;
use crate::setup::{attach, parse_endpoint, socket_options};
use crate::warn;

/// How long closing waits for the last replies to be written.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// What each request is answered with.
#[derive(Debug)]
enum Answer {
    /// The request itself.
    Echo,
    /// The same bytes every time.
    Fixed(Bytes),
    /// The stdout of `sh -c CMD` with the request on stdin.
    Exec {
        command: String,
        timeout: Duration,
        on_error: OnError,
    },
}

/// Runs `msg rep`.
///
/// # Errors
///
/// A bad endpoint or certificate, a failed bind, a failed first connection
/// (with `--connect`), or a closed stdout.
pub(crate) async fn run(args: RepArgs) -> anyhow::Result<()> {
    let endpoint = parse_endpoint(&args.endpoint)?;
    let side = args.conn.side(Side::Bind);
    let options = socket_options(&args.conn, &endpoint, side)?;
    let mut rep = RepSocket::with_options(options)?;
    let mut watch = attach(&rep, &endpoint, side, args.conn.retry).await?;

    let answer = match (args.reply, args.exec) {
        (Some(text), _) => Answer::Fixed(Bytes::from(text)),
        (None, Some(command)) => Answer::Exec {
            command,
            timeout: args.exec_timeout,
            on_error: args.on_error,
        },
        (None, None) => Answer::Echo,
    };
    let printer = (!args.quiet).then(|| Printer::new(args.format));
    let limit = args
        .count
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));

    let serve = (&mut rep)
        .take(limit)
        .map(Ok)
        .try_for_each_concurrent(args.concurrency as usize, |request| {
            handle(request, &answer, printer)
        });
    tokio::select! {
        result = serve => result?,
        error = watch.failed() => return Err(error),
    }
    // Only reached with --count: deliver the last replies before exiting.
    let report = rep.close(CLOSE_LINGER).await;
    if !report.is_complete() {
        warn(&format!(
            "{} replies were not delivered before closing",
            report.undelivered_frames
        ));
    }
    Ok(())
}

/// Prints one request and answers it.
async fn handle(request: Request, answer: &Answer, printer: Option<Printer>) -> anyhow::Result<()> {
    if let Some(printer) = printer {
        printer.request(request.payload(), request.peer())?;
    }
    let reply = match answer {
        Answer::Echo => Some(request.payload().clone()),
        Answer::Fixed(bytes) => Some(bytes.clone()),
        Answer::Exec {
            command,
            timeout,
            on_error,
        } => match exec(command, request.payload().clone(), request.peer(), *timeout).await {
            Ok(output) => Some(output),
            Err(error) => {
                warn(&format!(
                    "--exec failed for a request from {}: {error}",
                    request.peer().addr
                ));
                match on_error {
                    OnError::Reply => Some(Bytes::from(format!("error: {error}"))),
                    OnError::Drop => None,
                }
            }
        },
    };
    if let Some(reply) = reply {
        let peer = request.peer().addr.to_string();
        if let Err(error) = request.reply(reply).await {
            // The requester went away; its own side reports that.
            tracing::info!(%peer, %error, "reply not delivered");
        }
    }
    Ok(())
}

/// Runs `sh -c command` with `input` on stdin and returns its stdout.
///
/// The command's stderr is passed on to ours when it succeeds and quoted
/// in the error when it fails. It learns the requester from the
/// environment: `MSG_PEER` (its address) and `MSG_PEER_IDENTITY`.
///
/// # Errors
///
/// A one-line description: the shell cannot start, the command exits with
/// a failure status, or it runs past `timeout` (and is killed).
async fn exec(
    command: &str,
    input: Bytes,
    peer: &PeerInfo,
    timeout: Duration,
) -> Result<Bytes, String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("MSG_PEER", peer.addr.to_string())
        .env(
            "MSG_PEER_IDENTITY",
            String::from_utf8_lossy(&peer.identity).as_ref(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A command past its timeout is killed when its future is dropped.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    let stdin = child.stdin.take();
    // Feeding stdin while collecting stdout: a command that writes a lot
    // before reading everything would otherwise deadlock with us. A command
    // that never reads its input closes the pipe early; that is its right.
    let feed = async move {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&input).await;
        }
    };
    let run = async {
        let ((), output) = tokio::join!(feed, child.wait_with_output());
        output
    };
    let output = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| format!("timed out after {}", format_duration(timeout)))?
        .map_err(|e| format!("cannot run the command: {e}"))?;
    if output.status.success() {
        if !output.stderr.is_empty() {
            let _ = std::io::Write::write_all(&mut std::io::stderr(), &output.stderr);
        }
        Ok(Bytes::from(output.stdout))
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => Err(format!(
                "command failed ({}): {}",
                output.status,
                last.trim()
            )),
            None => Err(format!("command failed ({})", output.status)),
        }
    }
}
