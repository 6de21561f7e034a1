//! `msg demo`: a guided tour in one process.
//!
//! Every peer lives in this process and talks to the others over real TCP
//! on 127.0.0.1, on ports the operating system picks. The tour has five
//! numbered sections, each opened by a one-line explanation:
//!
//! 1. Req/Rep: a few round trips, then many requests in flight at once.
//! 2. Pub/Sub: two subscribers on different topic prefixes, and a topic
//!    nobody subscribed to.
//! 3. Reliable delivery with redb stores: the receiver is online and gets
//!    what the sender stores.
//! 4. The receiver goes offline (socket shut down, store file closed) and
//!    the sender keeps storing messages for it ([`ReliableSocket::pending`]
//!    shows them).
//! 5. The receiver reopens its store, reconnects and catches up.
//!
//! The demo checks what it shows: a reply that does not match its request,
//! a message to the wrong subscriber, or a reliable message that arrives
//! twice, out of order or not at all is an error, and so is any wait that
//! takes longer than [`WAIT`]. It ends with one `check:` line.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use msg::reliable::{PeerId, RedbBackend, ReliableOptions, ReliableSocket};
use msg::{PubMessage, PubSocket, RepSocket, ReqSocket, SubSocket};

use crate::cli::DemoArgs;
use crate::output::emit;

/// The longest any single step may wait (a reply, a message, an
/// acknowledgement) before the demo gives up with an error. A healthy run
/// takes milliseconds per step; this only keeps a broken one from hanging.
const WAIT: Duration = Duration::from_secs(10);

/// How long the receiver listens after catching up, to show that nothing
/// arrives twice.
const QUIET: Duration = Duration::from_millis(200);

/// The endpoint every listener binds: loopback, any free port.
const ANY_PORT: &str = "tcp://127.0.0.1:0";

/// Messages the sender stores while the receiver is online.
const ONLINE: usize = 3;

/// Messages the sender stores while the receiver is offline.
const OFFLINE: usize = 3;

/// Runs `msg demo`.
pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // A temporary directory lives (and is deleted) with this guard.
    let (_guard, dir) = match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create the directory {}", dir.display()))?;
            (None, dir)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("msg-demo-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let path = temp.path().to_path_buf();
            (Some(temp), path)
        }
    };

    say(
        "msg demo: peers in this one process, talking over TCP on 127.0.0.1 \
         (ports picked by the OS).",
    )?;
    request_reply().await?;
    publish_subscribe().await?;
    let received = reliable(&dir).await?;
    say(&format!(
        "\ncheck: ok: replies and subscriptions as expected; {received} reliable messages \
         received, each once, in order, none missing ({:.1}s)",
        started.elapsed().as_secs_f64()
    ))
}

/// Section 1: request/reply.
async fn request_reply() -> anyhow::Result<()> {
    section(
        1,
        "Req/Rep: a client sends requests and a server answers; each reply is matched \
         to its request.",
    )?;
    let rep = RepSocket::new();
    let endpoint = rep.bind(ANY_PORT).await?;
    let server =
        tokio::spawn(rep.serve(
            16,
            |payload, _peer| async move { payload.to_ascii_uppercase() },
        ));
    say(&format!("   server listening on {endpoint}"))?;

    let req = ReqSocket::new();
    req.connect(&endpoint.to_string())?;
    for text in ["hello", "brokerless"] {
        let sent = Instant::now();
        let reply = within("a reply", req.request(text)).await??;
        ensure!(
            reply == text.to_ascii_uppercase(),
            "the reply to {text:?} was {reply:?}"
        );
        say(&format!(
            "   request {text:?} -> reply {:?} in {:?}",
            String::from_utf8_lossy(&reply),
            Rounded(sent.elapsed())
        ))?;
    }

    let n = 50u32;
    let sent = Instant::now();
    let calls = (0..n).map(|i| {
        let req = &req;
        async move {
            let text = format!("request {i}");
            let reply = req.request(text.clone()).await?;
            ensure!(
                reply == text.to_ascii_uppercase(),
                "the reply to {text:?} was {reply:?}"
            );
            anyhow::Ok(())
        }
    });
    for result in within("replies", futures::future::join_all(calls)).await? {
        result?;
    }
    say(&format!(
        "   {n} requests in flight at once: {n} replies, each to its own request, in {:?}",
        Rounded(sent.elapsed())
    ))?;

    req.close(Duration::ZERO).await;
    server.abort();
    let _ = server.await;
    Ok(())
}

/// Section 2: publish/subscribe.
async fn publish_subscribe() -> anyhow::Result<()> {
    section(
        2,
        "Pub/Sub: subscribers pick topics by prefix; the publisher sends each message \
         only where it matches.",
    )?;
    let publisher = PubSocket::new();
    let endpoint = publisher.bind(ANY_PORT).await?;
    let mut prices = SubSocket::new();
    prices.subscribe("prices.").await;
    prices.connect(&endpoint.to_string())?;
    let mut news = SubSocket::new();
    news.subscribe("news.").await;
    news.connect(&endpoint.to_string())?;
    ensure!(
        publisher.wait_for_subscribers(2, WAIT).await,
        "the subscribers did not connect within {WAIT:?}"
    );
    say(&format!(
        "   publisher on {endpoint}; subscriber A takes \"prices.\", subscriber B \"news.\""
    ))?;

    let messages = [
        ("prices.btc", "97000"),
        ("news.today", "markets calm"),
        ("weather.oslo", "snow"),
        ("prices.eth", "3400"),
    ];
    for (topic, payload) in messages {
        let subscribers = publisher.publish(topic, payload)?;
        say(&format!(
            "   published {topic} {payload:?}: sent to {subscribers} subscriber{}",
            if subscribers == 1 { "" } else { "s" }
        ))?;
    }
    for (name, prefix, socket) in [("A", "prices.", &mut prices), ("B", "news.", &mut news)] {
        let expected: Vec<_> = messages
            .iter()
            .filter(|(topic, _)| topic.starts_with(prefix))
            .collect();
        let mut got = Vec::new();
        for (topic, payload) in expected {
            let message = within("a published message", socket.recv())
                .await?
                .ok_or_else(|| anyhow!("subscriber {name} closed"))?;
            ensure!(
                message.topic() == topic && message.payload() == payload,
                "subscriber {name} expected {topic} {payload:?}, got {}",
                describe(&message)
            );
            got.push(describe(&message));
        }
        say(&format!("   subscriber {name} got: {}", got.join(", ")))?;
    }
    say("   nobody subscribed to \"weather.\", so that message went nowhere")?;

    prices.close(Duration::ZERO).await;
    news.close(Duration::ZERO).await;
    publisher.close(Duration::ZERO).await;
    Ok(())
}

/// `topic "payload"`, for printing.
fn describe(message: &PubMessage) -> String {
    format!(
        "{} {:?}",
        String::from_utf8_lossy(message.topic()),
        String::from_utf8_lossy(message.payload())
    )
}

/// Sections 3 to 5: reliable delivery to a receiver that goes offline and
/// comes back. Returns how many messages the receiver got.
async fn reliable(dir: &Path) -> anyhow::Result<usize> {
    section(
        3,
        "Reliable: send_to returns once a message is in the sender's redb file; it is \
         resent until the receiver acknowledges it.",
    )?;
    let sender_id: PeerId = "sender".parse()?;
    let receiver_id: PeerId = "receiver".parse()?;
    say(&format!("   redb stores in {}", dir.display()))?;
    let (sender, sender_store) = open(&sender_id, dir).await?;
    let leftover = sender.pending().await?;
    ensure!(
        leftover.is_empty(),
        "{} holds an unfinished demo run ({} messages pending); remove its .redb files \
         or pick another directory",
        dir.display(),
        leftover.iter().map(|(_, n)| n).sum::<usize>()
    );
    let endpoint = sender.bind(ANY_PORT).await?.to_string();
    let (receiver, receiver_store) = open(&receiver_id, dir).await?;
    receiver.connect(&endpoint)?;
    say(&format!(
        "   sender (store {}) listening on {endpoint}; receiver (store {}) connecting",
        store_name(&sender_id),
        store_name(&receiver_id)
    ))?;

    let mut log = Log::new(sender_id.clone());
    let mut last = 0;
    for n in 1..=ONLINE {
        last = store(&sender, &receiver_id, &mut log, n, "").await?;
    }
    for _ in 0..ONLINE {
        log.receive(&receiver, "").await?;
    }
    within("acknowledgements", sender.wait_acked(&receiver_id, last)).await??;

    section(
        4,
        "Offline: the receiver shuts down and closes its redb file; the sender keeps \
         sending.",
    )?;
    let report = within("the receiver to shut down", receiver.shutdown(WAIT)).await?;
    ensure!(
        report.is_complete(),
        "the receiver left messages pending: {:?}",
        report.pending
    );
    receiver_store.close().await;
    say("   receiver: offline, store closed")?;
    for n in ONLINE + 1..=ONLINE + OFFLINE {
        last = store(
            &sender,
            &receiver_id,
            &mut log,
            n,
            " while the receiver is away",
        )
        .await?;
    }
    let pending = sender.pending().await?;
    let waiting = pending
        .iter()
        .find(|(peer, _)| *peer == receiver_id)
        .map_or(0, |(_, n)| *n);
    ensure!(
        waiting == OFFLINE,
        "the sender should hold {OFFLINE} messages for the receiver, pending() says {pending:?}"
    );
    say(&format!(
        "   sender.pending(): {waiting} messages stored for {receiver_id}, not yet acknowledged"
    ))?;

    section(
        5,
        "Back: the receiver reopens its redb file and reconnects; what it missed \
         arrives in order, once.",
    )?;
    let (receiver, receiver_store) = open(&receiver_id, dir).await?;
    receiver.connect(&endpoint)?;
    say("   receiver: store reopened, connecting again")?;
    for _ in 0..OFFLINE {
        log.receive(&receiver, " (sent while it was away)").await?;
    }
    within("acknowledgements", sender.wait_acked(&receiver_id, last)).await??;
    // Nothing may come after the last message: a duplicate would.
    if let Ok(Some(extra)) = tokio::time::timeout(QUIET, receiver.recv()).await {
        bail!(
            "message #{} from {} was delivered twice",
            extra.seq(),
            extra.peer()
        );
    }
    let pending = sender.pending().await?;
    ensure!(pending.is_empty(), "the sender still holds {pending:?}");
    say("   sender.pending(): nothing; the receiver has acknowledged every message")?;
    log.complete()?;

    let report = within("the sender to shut down", sender.shutdown(WAIT)).await?;
    ensure!(
        report.is_complete(),
        "the sender left messages pending: {:?}",
        report.pending
    );
    sender_store.close().await;
    within("the receiver to shut down", receiver.shutdown(WAIT)).await?;
    receiver_store.close().await;
    Ok(log.received.len())
}

/// Opens `id`'s reliable socket on its own redb file in `dir`.
async fn open(id: &PeerId, dir: &Path) -> anyhow::Result<(ReliableSocket, RedbBackend)> {
    let path: PathBuf = dir.join(store_name(id));
    let store = RedbBackend::open(&path)
        .await
        .with_context(|| format!("cannot open the store {}", path.display()))?;
    let socket = ReliableSocket::open(id.clone(), ReliableOptions::new(), store.clone()).await?;
    Ok((socket, store))
}

/// The file name of `id`'s store.
fn store_name(id: &PeerId) -> String {
    format!("{id}.redb")
}

/// Stores message number `n` for `to` and records it in `log`; returns its
/// sequence number.
async fn store(
    sender: &ReliableSocket,
    to: &PeerId,
    log: &mut Log,
    n: usize,
    note: &str,
) -> anyhow::Result<u64> {
    let payload = format!("order {n}");
    let seq = within("the store", sender.send_to(to, payload.clone())).await??;
    say(&format!("   sender: stored #{seq} {payload:?}{note}"))?;
    log.sent.push((seq, payload));
    Ok(seq)
}

/// What the sender stored and what the receiver got, in order: the
/// receiver must get exactly what was stored, each message once, in order.
struct Log {
    /// The sending peer, as the receiver sees it.
    from: PeerId,
    /// Sequence number and payload of every stored message.
    sent: Vec<(u64, String)>,
    /// Sequence numbers of the deliveries, in the order they came.
    received: Vec<u64>,
}

impl Log {
    /// An empty log of messages from `from`.
    fn new(from: PeerId) -> Self {
        Self {
            from,
            sent: Vec::new(),
            received: Vec::new(),
        }
    }

    /// Takes the next delivery from `receiver`, checks it is the next
    /// message stored, prints it and acknowledges it.
    async fn receive(&mut self, receiver: &ReliableSocket, note: &str) -> anyhow::Result<()> {
        let delivery = within("a reliable message", receiver.recv())
            .await?
            .ok_or_else(|| anyhow!("the receiver closed"))?;
        let seq = delivery.seq();
        ensure!(
            delivery.peer() == &self.from,
            "a message came from {}, not {}",
            delivery.peer(),
            self.from
        );
        if self.received.contains(&seq) {
            bail!("message #{seq} was delivered twice");
        }
        let Some((expected, payload)) = self.sent.get(self.received.len()) else {
            bail!("message #{seq} arrived, but nothing more was sent");
        };
        ensure!(
            seq == *expected,
            "message #{seq} arrived where #{expected} was due (out of order or missing)"
        );
        ensure!(
            delivery.payload() == payload.as_bytes(),
            "message #{seq} holds {:?}, not {payload:?}",
            delivery.payload()
        );
        self.received.push(seq);
        say(&format!(
            "   receiver: got #{seq} {payload:?}{note}, acknowledged"
        ))?;
        within("the acknowledgement", delivery.ack()).await??;
        Ok(())
    }

    /// Checks that everything stored was received.
    fn complete(&self) -> anyhow::Result<()> {
        let sent: Vec<u64> = self.sent.iter().map(|(seq, _)| *seq).collect();
        ensure!(
            self.received == sent,
            "the receiver got {:?}, the sender stored {sent:?}",
            self.received
        );
        Ok(())
    }
}

/// Awaits `future` for at most [`WAIT`]; `what` names what it waits for in
/// the error.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(WAIT, future)
        .await
        .map_err(|_| anyhow!("timed out after {WAIT:?} waiting for {what}"))
}

/// Prints a section heading: its number and a one-line explanation.
fn section(number: u32, explanation: &str) -> anyhow::Result<()> {
    say(&format!("\n{number}. {explanation}"))
}

/// Prints `text` and a newline on stdout, at once; a closed stdout ends
/// the demo quietly.
fn say(text: &str) -> anyhow::Result<()> {
    emit(&format!("{text}\n"))
}

/// A duration printed to a sensible precision (`412µs`, `1.2ms`).
struct Rounded(Duration);

impl std::fmt::Debug for Rounded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.0.as_micros();
        if micros < 1_000 {
            write!(f, "{micros}µs")
        } else {
            write!(f, "{:.1}ms", self.0.as_secs_f64() * 1e3)
        }
    }
}
