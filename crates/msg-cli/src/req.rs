//! `msg req`: send requests and print the replies.

use std::time::Duration;

use anyhow::anyhow;
use bytes::Bytes;
use futures::TryStreamExt;
use msg::transport::Endpoint;
use msg::{ReqError, ReqSocket};

use crate::cli::{ReqArgs, Side};
use crate::input::Source;
use crate::output::Printer;
use crate::parse::format_duration;
use crate::setup::{attach, parse_endpoint, socket_options};

/// Runs `msg req`.
///
/// # Errors
///
/// A bad endpoint or certificate, a refused or rejected connection, a
/// request that fails (timeout, lost connection), unreadable input, or a
/// closed stdout. The first failing request ends the command.
pub(crate) async fn run(args: ReqArgs) -> anyhow::Result<()> {
    let endpoint = parse_endpoint(&args.endpoint)?;
    let side = args.conn.side(Side::Connect);
    let options = socket_options(&args.conn, &endpoint, side)?;
    let req = ReqSocket::with_options(options)?;
    let mut watch = attach(&req, &endpoint, side, args.conn.retry).await?;

    let source = Source::new(args.data, &args.input);
    let printer = Printer::new(args.format);
    let asker = Asker {
        req: &req,
        endpoint: &endpoint,
        timeout: args.timeout,
    };
    let work = async {
        if args.input.lines {
            // `try_buffered` keeps several requests in flight but yields the
            // replies in request order.
            let mut replies = source
                .lines()
                .await?
                .map_ok(|line| asker.ask(line))
                .try_buffered(args.concurrency as usize);
            while let Some(reply) = replies.try_next().await? {
                printer.reply(&reply)?;
            }
        } else {
            let payload = source.read_all().await?;
            let reply = asker.ask(payload).await?;
            printer.reply(&reply)?;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        biased;
        result = work => result,
        error = watch.failed() => Err(error),
    }
}

/// Sends requests and turns their failures into clear errors.
#[derive(Clone, Copy)]
struct Asker<'a> {
    req: &'a ReqSocket,
    endpoint: &'a Endpoint,
    timeout: Duration,
}

impl Asker<'_> {
    async fn ask(self, payload: Bytes) -> anyhow::Result<Bytes> {
        self.req
            .request_timeout(payload, self.timeout)
            .await
            .map_err(|e| match e {
                ReqError::Timeout if self.req.peers() == 0 => anyhow!(
                    "no reply within {}: not connected to {}",
                    format_duration(self.timeout),
                    self.endpoint
                ),
                ReqError::Timeout => {
                    anyhow!("no reply within {}", format_duration(self.timeout))
                }
                other => anyhow!(other),
            })
    }
}
