//! `msg send` and `msg recv`: the reliable layer from the terminal.
//!
//! Each side is a [`ReliableSocket`] on a store of its own, named by its
//! identity: a redb file, or its identity's state in a PostgreSQL database
//! (`--store postgres://...`, or the connection string in `MSG_STORE`). `send` stores every message before it counts as sent (so
//! the receiver may be down), then lingers for the acknowledgements; what is
//! still unacknowledged at exit stays stored and goes out on the next run.
//! `recv` prints each delivery and acknowledges it only once it is written,
//! so a message that was not printed is delivered again next time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures::{FutureExt, TryStreamExt};
use msg::reliable::{
    Delivery, PeerId, PostgresBackend, RedbBackend, ReliableError, ReliableOptions, ReliableSocket,
    ShutdownReport,
};
use msg::transport::Endpoint;

use crate::cli::{ConnArgs, RecvArgs, SendArgs, Side, StoreArgs};
use crate::input::Source;
use crate::output::Printer;
use crate::parse::format_duration;
use crate::setup::{Watch, attach, parse_endpoint, socket_options};
use crate::warn;

/// The identity `msg send` uses without `--identity`.
const DEFAULT_SENDER: &str = "sender";
/// The identity `msg recv` uses without `--identity`.
const DEFAULT_RECEIVER: &str = "receiver";
/// Most messages stored in one write (one fsync) when lines arrive faster
/// than they can be stored one by one.
const MAX_BATCH: usize = 1024;
/// Most deliveries `msg recv` takes, prints and acknowledges at once.
const RECV_BATCH: usize = 256;
/// How long `msg recv` waits at exit for its last acknowledgements to reach
/// the senders.
const RECV_LINGER: Duration = Duration::from_millis(500);

/// An open reliable socket with its store, bound or connected as the
/// flags say.
struct Opened {
    socket: ReliableSocket,
    store: Store,
    /// The store, for messages: a file's path, or the database (without
    /// its password).
    path: String,
    watch: Watch,
    /// Unacknowledged messages found in the store, before any connection.
    resumed_count: u64,
    /// For each peer with unacknowledged messages in the store, the last
    /// one's sequence number.
    resumed: Vec<(PeerId, u64)>,
}

/// Opens the store and the reliable socket for `send` or `recv`.
async fn open(
    conn: &ConnArgs,
    store: &StoreArgs,
    endpoint: &str,
    default_identity: &str,
    default_side: Side,
    retry_unreachable: bool,
) -> anyhow::Result<Opened> {
    let endpoint: Endpoint = parse_endpoint(endpoint)?;
    let side = conn.side(default_side);
    let options = socket_options(conn, &endpoint, side)?;
    let name = conn.identity.as_deref().unwrap_or(default_identity);
    let identity = peer_id(name, "--identity")?;
    let (backend, path) = match store.store.as_deref() {
        Some(url) if is_postgres(url) => open_postgres(url, &identity).await?,
        Some(path) => {
            let path = PathBuf::from(path);
            (open_store(&path).await?, path.display().to_string())
        }
        None => {
            let path = default_store(name)?;
            (open_store(&path).await?, path.display().to_string())
        }
    };
    let reliable = ReliableOptions::new();
    let opened = match &backend {
        Store::Redb(b) => {
            ReliableSocket::open_with_socket_options(identity, reliable, options, b.clone()).await
        }
        Store::Postgres(b) => {
            ReliableSocket::open_with_socket_options(identity, reliable, options, b.clone()).await
        }
    };
    let socket = match opened {
        Ok(socket) => socket,
        Err(error) => {
            backend.close().await;
            return Err(anyhow!(error).context(format!("cannot resume from {path}")));
        }
    };
    // Read before connecting, while no peer can acknowledge anything: the
    // last stored sequence number per peer is then exact.
    let resumed: Vec<(PeerId, u64)> = socket
        .pending()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(peer, n)| {
            let last = socket.acked(&peer) + n as u64;
            (peer, last)
        })
        .collect();
    let resumed_count = resumed.iter().map(|(p, last)| last - socket.acked(p)).sum();
    let peer_socket = socket
        .socket()
        .context("a reliable socket without a peer socket")?;
    let watch = match attach(peer_socket, &endpoint, side, conn.retry).await {
        Ok(mut watch) => {
            if retry_unreachable {
                watch.retry_while_unreachable();
            }
            watch
        }
        Err(error) => {
            socket.shutdown(Duration::ZERO).await;
            backend.close().await;
            return Err(error);
        }
    };
    Ok(Opened {
        socket,
        store: backend,
        path,
        watch,
        resumed_count,
        resumed,
    })
}

/// A peer identity from the command line.
fn peer_id(name: &str, what: &str) -> anyhow::Result<PeerId> {
    PeerId::new(Bytes::copy_from_slice(name.as_bytes()))
        .map_err(|error| anyhow!("{what} {name:?}: {error}"))
}

/// Where `identity` keeps its store without `--store`:
/// `$XDG_DATA_HOME/msg/IDENTITY.redb`, by default under
/// `~/.local/share` (`~/Library/Application Support` on macOS).
fn default_store(identity: &str) -> anyhow::Result<PathBuf> {
    let file_safe = !identity.is_empty()
        && !identity.starts_with('.')
        && identity
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c));
    if !file_safe {
        bail!(
            "the identity {identity:?} cannot name a store file \
             (letters, digits and - _ . @ + only); give the store's path with --store"
        );
    }
    let data_dir = match std::env::var_os("XDG_DATA_HOME").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|home| home.is_absolute())
                .context(
                    "no data directory for the store (neither XDG_DATA_HOME nor HOME is set); \
                     give its path with --store",
                )?;
            if cfg!(target_os = "macos") {
                home.join("Library/Application Support")
            } else {
                home.join(".local/share")
            }
        }
    };
    Ok(data_dir.join("msg").join(format!("{identity}.redb")))
}

/// A store of either kind.
enum Store {
    Redb(RedbBackend),
    Postgres(PostgresBackend),
}

impl Store {
    async fn close(&self) {
        match self {
            Store::Redb(b) => b.close().await,
            Store::Postgres(b) => b.close().await,
        }
    }
}

/// Whether `--store` names a PostgreSQL database rather than a file.
fn is_postgres(store: &str) -> bool {
    store.starts_with("postgres://")
        || store.starts_with("postgresql://")
        || store
            .split_whitespace()
            .any(|kv| kv.starts_with("host=") || kv.starts_with("dbname="))
}

/// Opens `identity`'s state in the PostgreSQL database at `url`, taking
/// ownership of the identity (waiting for a running instance to go away).
async fn open_postgres(url: &str, identity: &PeerId) -> anyhow::Result<(Store, String)> {
    // Name the database without its password in every message.
    let shown = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    };
    match PostgresBackend::open(url, identity).await {
        Ok(store) => {
            tracing::info!(store = %shown, "store open");
            Ok((Store::Postgres(store), shown))
        }
        Err(error) if error.is_already_open() => Err(anyhow!(error).context(format!(
            "identity {identity} is in use by another running instance on {shown}"
        ))),
        Err(error) => Err(anyhow!(error).context(format!("cannot open the store {shown}"))),
    }
}

/// Opens (creating it and its directory if needed) the store at `path`.
async fn open_store(path: &Path) -> anyhow::Result<Store> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .with_context(|| format!("cannot create the store's directory {}", dir.display()))?;
    }
    match RedbBackend::open(path).await {
        Ok(store) => {
            tracing::info!(store = %path.display(), "store open");
            Ok(Store::Redb(store))
        }
        Err(error) if error.is_already_open() => bail!(
            "the store {} is locked by another process (another msg send or msg recv \
             with the same --identity or --store?)",
            path.display()
        ),
        Err(error) => {
            Err(anyhow!(error).context(format!("cannot open the store {}", path.display())))
        }
    }
}

/// Runs `msg send`.
///
/// # Errors
///
/// A bad endpoint, identity or certificate; the store cannot be opened or
/// is locked; unreadable input; a message cannot be stored (the outbox is
/// full, the disk failed); the receiver rejects our authentication.
pub(crate) async fn send(args: SendArgs) -> anyhow::Result<()> {
    let peer = peer_id(&args.peer, "peer")?;
    // Input problems (a missing file) show before anything is opened.
    let source = Source::new(args.data, &args.input);
    let mut lines = None;
    let mut single = None;
    if args.input.lines {
        lines = Some(source.lines().await?);
    } else {
        single = Some(source.read_all().await?);
    }
    let Opened {
        socket,
        store,
        path,
        mut watch,
        resumed_count,
        resumed: mut last_seqs,
    } = open(
        &args.conn,
        &args.store,
        &args.endpoint,
        DEFAULT_SENDER,
        Side::Connect,
        // The receiver may be down: that is what the store is for.
        true,
    )
    .await?;
    if resumed_count > 0 {
        eprintln!(
            "msg: resuming {resumed_count} unacknowledged message(s) from {}",
            path
        );
    }

    let limit = args
        .count
        .unwrap_or(if args.input.lines { u64::MAX } else { 1 });
    // A link failing for good (a rejected token) stops the input, never a
    // store under way: what was read is stored before the error is told.
    let failed = watch.failed();
    tokio::pin!(failed);
    let mut failure = None;
    let mut stored = 0u64;
    let mut batch = Vec::new();
    while stored < limit && failure.is_none() {
        let room = usize::try_from(limit - stored)
            .unwrap_or(usize::MAX)
            .min(MAX_BATCH);
        batch.clear();
        match (&mut lines, &single) {
            (Some(lines), _) => {
                // Wait for one line, then take what else is ready, so that
                // a fast input shares writes and a typed line goes out at
                // once.
                let next = tokio::select! {
                    next = lines.try_next() => next,
                    error = &mut failed => {
                        failure = Some(error);
                        break;
                    }
                };
                match next {
                    Ok(Some(line)) => batch.push(line),
                    Ok(None) => break,
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
                while batch.len() < room {
                    match lines.try_next().now_or_never() {
                        Some(Ok(Some(line))) => batch.push(line),
                        Some(Ok(None)) | None => break,
                        Some(Err(error)) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
            }
            (None, Some(payload)) => batch.resize(room, payload.clone()),
            (None, None) => break,
        }
        // A full outbox ends the run with an error (the peer must catch
        // up first), rather than waiting for a peer that may be gone.
        match socket.try_send_batch_to(&peer, batch.drain(..)).await {
            Ok(seqs) => {
                if !seqs.is_empty() {
                    let last = seqs.end - 1;
                    tracing::debug!(%peer, first = seqs.start, last, "stored");
                    match last_seqs.iter_mut().find(|(p, _)| p == &peer) {
                        Some((_, known)) => *known = last,
                        None => last_seqs.push((peer.clone(), last)),
                    }
                }
                stored += seqs.end - seqs.start;
            }
            Err(error) => failure = Some(store_error(error, &peer, &path)),
        }
    }
    if let Some(error) = failure {
        if stored > 0 {
            eprintln!("msg: stored {stored} message(s) for {peer}");
        }
        let report = socket.shutdown(Duration::ZERO).await;
        store.close().await;
        return Err(still_stored(error, &report, &path));
    }
    if stored > 0 {
        eprintln!("msg: stored {stored} message(s) for {peer}");
    }

    // Linger for the acknowledgements, unless the link fails for good.
    let all_acked = futures::future::join_all(
        last_seqs
            .iter()
            .map(|(peer, last)| socket.wait_acked(peer, *last)),
    );
    let failure = tokio::select! {
        _ = tokio::time::timeout(args.linger, all_acked) => None,
        error = &mut failed => Some(error),
    };
    let report = socket.shutdown(Duration::ZERO).await;
    if let Some(error) = failure {
        store.close().await;
        return Err(still_stored(error, &report, &path));
    }
    store.close().await;
    if report.is_complete() {
        if stored + resumed_count > 0 {
            eprintln!("msg: {peer} acknowledged every message");
        }
    } else {
        for (pending_peer, count) in &report.pending {
            warn(&format!(
                "{count} message(s) not yet acknowledged by {pending_peer} after --linger ({}); \
                 they stay in {} and go out the next time msg send runs with this store",
                format_duration(args.linger),
                path
            ));
        }
    }
    Ok(())
}

/// `error`, saying what stays stored for the next run.
fn still_stored(error: anyhow::Error, report: &ShutdownReport, path: &str) -> anyhow::Error {
    match report.pending_messages() {
        0 => error,
        n => error.context(format!("{n} message(s) stay in {}", path)),
    }
}

/// Explains a failed store of outgoing messages.
fn store_error(error: ReliableError, peer: &PeerId, path: &str) -> anyhow::Error {
    if error.is_outbox_full() {
        anyhow!(error).context(format!(
            "{peer} has too many unacknowledged messages in {}; it must come up and catch up first",
            path
        ))
    } else {
        anyhow!(error).context(format!("cannot store the message in {}", path))
    }
}

/// Runs `msg recv`.
///
/// # Errors
///
/// A bad endpoint, identity or certificate; the store cannot be opened or
/// is locked; a bind fails; an acknowledgement cannot be stored.
pub(crate) async fn recv(args: RecvArgs) -> anyhow::Result<()> {
    let Opened {
        socket,
        store,
        mut watch,
        ..
    } = open(
        &args.conn,
        &args.store,
        &args.endpoint,
        DEFAULT_RECEIVER,
        Side::Bind,
        false,
    )
    .await?;
    let printer = Printer::new(args.format);
    let limit = args.count.unwrap_or(u64::MAX);
    let work = async {
        let mut received = 0u64;
        let mut batch = Vec::new();
        while received < limit {
            // What has arrived, up to the count: a busy sender's messages
            // are printed and acknowledged a batch at a time.
            let room = usize::try_from(limit - received).unwrap_or(usize::MAX);
            if socket.recv_many(&mut batch, room.min(RECV_BATCH)).await == 0 {
                break;
            }
            // Printed (and flushed) first, acknowledged after: a message
            // that never reached stdout is delivered again next time.
            let mut printed = 0;
            let failed = batch.iter().find_map(|delivery| {
                let result = printer.delivery(
                    delivery.peer().as_bytes(),
                    delivery.seq(),
                    delivery.payload(),
                );
                printed += usize::from(result.is_ok());
                result.err()
            });
            received += printed as u64;
            // Those printed before a failure are acknowledged all the same.
            Delivery::ack_all(batch.drain(..printed)).await?;
            if let Some(error) = failed {
                return Err(error);
            }
            batch.clear();
        }
        anyhow::Ok(received)
    };
    let result = tokio::select! {
        result = work => result.map(|_| ()),
        error = watch.failed() => Err(error),
        interrupted = tokio::signal::ctrl_c() => interrupted.map_err(anyhow::Error::from),
    };
    socket.shutdown(RECV_LINGER).await;
    store.close().await;
    // A closed stdout (`msg recv | head -3`) ends quietly in `main`; what
    // was not printed stays unacknowledged.
    result
}
