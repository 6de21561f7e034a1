//! `msg sub`: subscribe to topic prefixes and print what arrives.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use msg::{PubMessage, SubSocket};

use crate::cli::{Side, SubArgs};
use crate::output::{Lost, Printer};
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
    let mut losses = Losses::default();
    let mut printed = 0u64;
    let work = async {
        while printed < limit {
            let Some(message) = sub.recv().await else {
                break;
            };
            let lost = losses.see(&message);
            printer.message(&message, lost)?;
            printed += 1;
        }
        anyhow::Ok(())
    };
    let result = tokio::select! {
        result = work => result,
        error = watch.failed() => Err(error),
        interrupted = tokio::signal::ctrl_c() => interrupted.map_err(anyhow::Error::from),
    };
    // Every exit that is not a failure to start reports what was lost, an
    // interrupt included.
    let stats = sub.stats();
    eprintln!(
        "msg: printed {printed} message(s); {} missing from the sequence numbers; {} \
         dropped at this subscriber's recv_hwm; {} stream restart(s)",
        losses.missing, stats.dropped_hwm, losses.restarts,
    );
    sub.close(Duration::ZERO).await;
    result
}

/// What the numbering of the messages shows was lost, per publisher
/// connection, and how often a publisher's stream started again.
#[derive(Default)]
struct Losses {
    /// Per publisher connection: who it is (address, identity) and the last
    /// sequence number seen.
    last: HashMap<u64, (String, Bytes, u64)>,
    /// Messages missing from the sequences, in all.
    missing: u64,
    /// Streams that started again: a new connection from a publisher seen
    /// before (the same address or the same identity).
    restarts: u64,
}

impl Losses {
    /// Takes note of `message`; says what to report with it.
    fn see(&mut self, message: &PubMessage) -> Lost {
        let publisher = message.publisher();
        let (conn, seq) = (publisher.conn_id, message.seq());
        let before = match self.last.get_mut(&conn) {
            Some((_, _, last)) => std::mem::replace(last, seq),
            None => {
                let addr = publisher.addr.to_string();
                let identity = publisher.identity.clone();
                // An earlier connection of the same publisher is over.
                let len = self.last.len();
                self.last
                    .retain(|_, (a, i, _)| *a != addr && *i != identity);
                let restart = self.last.len() < len;
                self.restarts += u64::from(restart);
                self.last.insert(conn, (addr, identity, seq));
                // Numbers start at 1 on a connection: anything before the
                // first message delivered was dropped here, at this
                // subscriber's mark.
                let missing = seq - 1;
                self.missing += missing;
                return Lost { restart, missing };
            }
        };
        let missing = seq.saturating_sub(before).saturating_sub(1);
        self.missing += missing;
        Lost {
            restart: false,
            missing,
        }
    }
}
