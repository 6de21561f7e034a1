//! `PostgresBackend` on a real PostgreSQL server: the backend contract,
//! persistence across reopening, group commit, schema migrations, damaged
//! rows, ownership of an identity and fencing, and a database that goes
//! away and comes back.
//!
//! The server is `MSG_TEST_POSTGRES` or a throwaway cluster (see
//! `msg_testkit::postgres`); each test works in a schema of its own.

#![cfg(feature = "postgres")]

use std::time::Duration;

use crate::common::*;
use crate::support::{WAIT, fast, payload, quick};
use msg_reliable::{
    Backend, IncomingState, PostgresBackend, PostgresOptions, ReliableSocket, StorageErrorKind,
    StoreBatch,
};
use msg_testkit::postgres::{Cluster, server, skip_reason, unique_schema};

/// The server and a fresh schema, or `None` (skip, reason printed).
fn setup(test: &str) -> Option<(&'static str, PostgresOptions, String)> {
    let url = server(test)?;
    let schema = unique_schema("t");
    let mut opts = PostgresOptions::new();
    opts.schema(schema.clone())
        .acquire_timeout(Duration::from_secs(10));
    Some((url, opts, schema))
}

async fn open(url: &str, opts: &PostgresOptions, me: &str) -> PostgresBackend {
    PostgresBackend::open_with_options(url, &peer(me), opts)
        .await
        .unwrap()
}

/// A plain client for looking at (and damaging) the tables.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let Some((url, opts, _)) = setup(concat!("postgres_", stringify!($name))) else {
                return;
            };
            let b = open(url, &opts, "me").await;
            crate::common::$name(&b).await;
            b.close().await;
        }
    )*};
}

mod postgres_contract {
    use super::*;
    contract!(
        append_assigns_consecutive_numbers_per_peer,
        ack_outgoing_deletes_only_the_acked_prefix,
        store_incoming_moves_the_watermark_with_the_messages,
        ack_incoming_deletes_only_those_messages,
        peers_lists_both_directions,
        binary_and_prefix_peer_ids_stay_apart,
    );
}

#[tokio::test]
async fn postgres_state_survives_reopening_and_identities_stay_apart() {
    let Some((url, opts, _)) = setup("postgres_state_survives_reopening") else {
        return;
    };
    let (x, y) = (peer("x"), peer("y"));
    let b = open(url, &opts, "me").await;
    let other = open(url, &opts, "someone-else").await;
    b.append_outgoing(&x, msgs("x", 1..=10)).await.unwrap();
    b.ack_outgoing(&x, 7).await.unwrap();
    b.store_incoming(&y, StoreBatch::new(1, msgs("y", 1..=5), true))
        .await
        .unwrap();
    b.ack_incoming(&y, vec![1, 2]).await.unwrap();
    other.append_outgoing(&x, msgs("o", 1..=1)).await.unwrap();
    b.close().await;

    let b = open(url, &opts, "me").await;
    let out = b.load_outgoing(&x).await.unwrap();
    assert_eq!(out.last_assigned, 10);
    assert_eq!(
        out.unacked,
        (8..=10).map(|s| (s, msg("x", s))).collect::<Vec<_>>()
    );
    assert_eq!(
        b.load_incoming(&y).await.unwrap(),
        IncomingState {
            accepted: 5,
            undelivered: (3..=5).map(|s| (s, msg("y", s))).collect()
        }
    );
    assert_eq!(b.append_outgoing(&x, msgs("x", 11..=11)).await.unwrap(), 11);
    let err = b
        .store_incoming(&y, StoreBatch::new(5, msgs("y", 5..=5), true))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    // The other identity's state is its own.
    assert_eq!(other.load_outgoing(&x).await.unwrap().last_assigned, 1);
    assert_eq!(other.peers().await.unwrap(), vec![x.clone()]);
    b.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_appends_are_numbered_once_and_group_committed() {
    let Some((url, opts, _)) = setup("postgres_concurrent_appends") else {
        return;
    };
    let b = open(url, &opts, "me").await;
    let appends = concurrent_appends_are_numbered_once(&b, 64, 20).await;
    let stats = b.stats();
    assert_group_committed(appends, stats.write_transactions, stats.write_requests);
    let out = b.load_outgoing(&peer("x")).await.unwrap();
    assert_eq!(out.unacked.len() as u64, appends);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_mixed_concurrent_writes_fail_only_on_their_own_conflict() {
    let Some((url, opts, _)) = setup("postgres_mixed_concurrent_writes") else {
        return;
    };
    let b = open(url, &opts, "me").await;
    mixed_concurrent_writes_fail_only_on_their_own_conflict(&b, 16, 8).await;
    b.close().await;
}

async fn rows(c: &tokio_postgres::Client, schema: &str, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM \"{schema}\".{table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn postgres_batches_are_one_row_each_and_go_when_fully_acknowledged() {
    let Some((url, opts, schema)) = setup("postgres_batches_are_one_row_each") else {
        return;
    };
    let c = sql(url).await;
    let b = open(url, &opts, "me").await;
    let x = peer("x");
    b.append_outgoing(&x, msgs("o", 1..=4)).await.unwrap();
    b.append_outgoing(&x, msgs("o", 5..=6)).await.unwrap();
    b.append_outgoing(&x, msgs("o", 7..=9)).await.unwrap();
    b.store_incoming(&x, StoreBatch::new(1, msgs("i", 1..=5), true))
        .await
        .unwrap();
    assert_eq!(rows(&c, &schema, "msg_reliable_outgoing").await, 3);
    assert_eq!(rows(&c, &schema, "msg_reliable_incoming").await, 1);

    b.ack_outgoing(&x, 5).await.unwrap();
    b.ack_incoming(&x, vec![4, 1]).await.unwrap();
    b.ack_incoming(&x, vec![2]).await.unwrap();
    assert_eq!(rows(&c, &schema, "msg_reliable_outgoing").await, 2);
    assert_eq!(rows(&c, &schema, "msg_reliable_incoming").await, 1);
    assert_eq!(
        b.load_outgoing(&x).await.unwrap().unacked,
        (6..=9).map(|n| (n, msg("o", n))).collect::<Vec<_>>()
    );
    assert_eq!(
        b.load_incoming(&x).await.unwrap(),
        IncomingState {
            accepted: 5,
            undelivered: vec![(3, msg("i", 3)), (5, msg("i", 5))]
        }
    );
    b.ack_outgoing(&x, 9).await.unwrap();
    b.ack_incoming(&x, vec![3, 5]).await.unwrap();
    assert_eq!(rows(&c, &schema, "msg_reliable_outgoing").await, 0);
    assert_eq!(rows(&c, &schema, "msg_reliable_incoming").await, 0);
    assert_eq!(b.load_outgoing(&x).await.unwrap().last_assigned, 9);
    assert_eq!(b.append_outgoing(&x, msgs("o", 10..=10)).await.unwrap(), 10);
    b.close().await;
}

#[tokio::test]
async fn postgres_damaged_rows_are_reported_as_corrupt_not_a_panic() {
    let Some((url, opts, schema)) = setup("postgres_damaged_rows") else {
        return;
    };
    let c = sql(url).await;
    let b = open(url, &opts, "me").await;
    let (x, y, z) = (peer("x"), peer("y"), peer("z"));
    b.append_outgoing(&x, msgs("o", 1..=2)).await.unwrap();
    b.store_incoming(&y, StoreBatch::new(1, msgs("i", 1..=3), true))
        .await
        .unwrap();
    b.store_incoming(&z, StoreBatch::new(1, msgs("i", 1..=2), true))
        .await
        .unwrap();
    // Claims 200 messages, holds a few bytes.
    c.execute(
        &format!("UPDATE \"{schema}\".msg_reliable_outgoing SET batch = '\\xc800000001'::bytea"),
        &[],
    )
    .await
    .unwrap();
    // A well-formed batch of one message under a key for three.
    c.execute(
        &format!(
            "UPDATE \"{schema}\".msg_reliable_incoming SET batch = '\\x010000000100000041'::bytea
             WHERE peer = 'y'::bytea"
        ),
        &[],
    )
    .await
    .unwrap();
    // An acknowledgement of a number outside the row.
    c.execute(
        &format!(
            "UPDATE \"{schema}\".msg_reliable_incoming SET acked = '{{7}}'
             WHERE peer = 'z'::bytea"
        ),
        &[],
    )
    .await
    .unwrap();
    let e = b.load_outgoing(&x).await.unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::Corrupt, "{e:?}");
    let e = b.load_incoming(&y).await.unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::Corrupt, "{e:?}");
    let e = b.load_incoming(&z).await.unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::Corrupt, "{e:?}");
    // The store still works for everything else.
    assert_eq!(b.append_outgoing(&y, msgs("o", 1..=1)).await.unwrap(), 1);
    b.close().await;
}

#[tokio::test]
async fn postgres_schema_is_created_versioned_and_a_newer_one_is_refused() {
    let Some((url, opts, schema)) = setup("postgres_schema_versions") else {
        return;
    };
    // Two identities opening a new schema at once: it is migrated once.
    let (a, b) = tokio::join!(open(url, &opts, "a"), open(url, &opts, "b"));
    let c = sql(url).await;
    let versions: Vec<i32> = c
        .query(
            &format!("SELECT version FROM \"{schema}\".msg_reliable_migrations ORDER BY 1"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1]);
    a.close().await;
    b.close().await;
    // A schema from a newer msg-reliable is not touched.
    c.execute(
        &format!(
            "INSERT INTO \"{schema}\".msg_reliable_migrations (version, description)
             VALUES (99, 'from the future')"
        ),
        &[],
    )
    .await
    .unwrap();
    let err = PostgresBackend::open_with_options(url, &peer("a"), &opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StorageErrorKind::Other, "{err:?}");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("version 99"), "{cause}");
}

#[tokio::test]
async fn postgres_bad_configuration_is_a_clear_error() {
    let err = PostgresBackend::open("host=/nonexistent/dir port=1", &peer("a"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StorageErrorKind::Io, "{err:?}");
    let mut opts = PostgresOptions::new();
    opts.schema("Robert'); DROP TABLE students;--");
    let err = PostgresBackend::open_with_options("host=/tmp", &peer("a"), &opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StorageErrorKind::Other, "{err:?}");
    let err = PostgresBackend::open("postgres://[broken", &peer("a"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StorageErrorKind::Other, "{err:?}");
}

/// A second instance of a live owner waits, then fails naming the owner;
/// it takes over at once when the owner closes, and when the owner's
/// session ends without a close (the process died).
#[tokio::test]
async fn postgres_second_owner_waits_and_takes_over_when_the_first_is_gone() {
    let Some((url, mut opts, _)) = setup("postgres_second_owner_waits") else {
        return;
    };
    let first = open(url, &opts, "me").await;
    let token = first.fencing_token();
    opts.acquire_timeout(Duration::from_millis(300));
    let err = PostgresBackend::open_with_options(url, &peer("me"), &opts)
        .await
        .unwrap_err();
    assert!(err.is_already_open(), "{err:?}");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        cause.contains(&format!("process {}", std::process::id())),
        "{cause}"
    );
    first
        .append_outgoing(&peer("x"), msgs("x", 1..=3))
        .await
        .unwrap();

    // Closed: the next one takes over at once.
    first.close().await;
    opts.acquire_timeout(Duration::ZERO);
    let second = open(url, &opts, "me").await;
    assert_eq!(second.fencing_token(), token + 1);
    assert_eq!(
        second
            .load_outgoing(&peer("x"))
            .await
            .unwrap()
            .last_assigned,
        3
    );

    // Dropped without closing: its session ends, and a waiting opener
    // takes over without waiting for the lease (10 s by default).
    let started = std::time::Instant::now();
    opts.acquire_timeout(Duration::from_secs(5));
    let waiter = tokio::spawn({
        let (url, opts) = (url.to_owned(), opts.clone());
        async move { PostgresBackend::open_with_options(&url, &peer("me"), &opts).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(second);
    let third = waiter.await.unwrap().unwrap();
    assert_eq!(third.fencing_token(), token + 2);
    assert!(started.elapsed() < Duration::from_secs(5));
    third.close().await;
}

/// An owner whose lease ran out while its session lives on (paused,
/// partitioned) is replaced, and then cannot write: every write fails as
/// fenced and changes nothing.
#[tokio::test]
async fn postgres_stale_owner_is_fenced_after_a_takeover() {
    let Some((url, mut opts, schema)) = setup("postgres_stale_owner_is_fenced") else {
        return;
    };
    opts.lease(Duration::from_secs(30));
    let x = peer("x");
    let stale = open(url, &opts, "me").await;
    stale.append_outgoing(&x, msgs("x", 1..=2)).await.unwrap();
    // Its lease runs out (as if it had been paused for 30 s).
    let c = sql(url).await;
    c.execute(
        &format!(
            "UPDATE \"{schema}\".msg_reliable_owners SET lease_expires = now() - interval '1 s'"
        ),
        &[],
    )
    .await
    .unwrap();
    let fresh = open(url, &opts, "me").await;
    assert_eq!(fresh.fencing_token(), stale.fencing_token() + 1);
    fresh.append_outgoing(&x, msgs("x", 3..=3)).await.unwrap();

    // The stale owner wakes up: fenced, whatever it tries to write.
    let e = stale
        .append_outgoing(&x, msgs("stale", 1..=1))
        .await
        .unwrap_err();
    assert!(e.is_fenced(), "{e:?}");
    assert!(e.to_string().contains("took over"), "{e}");
    let e = stale.ack_outgoing(&x, 3).await.unwrap_err();
    assert!(e.is_fenced(), "{e:?}");
    let e = stale
        .store_incoming(&x, StoreBatch::new(1, msgs("i", 1..=1), true))
        .await
        .unwrap_err();
    assert!(e.is_fenced(), "{e:?}");
    // Nothing of it landed.
    let out = fresh.load_outgoing(&x).await.unwrap();
    assert_eq!(out.last_assigned, 3);
    assert_eq!(
        out.unacked,
        vec![(1, msg("x", 1)), (2, msg("x", 2)), (3, msg("x", 3))]
    );
    assert_eq!(fresh.accepted(&x).await.unwrap(), 0);
    fresh.close().await;
    stale.close().await;
}

/// The database stops: `send_to` fails with a storage error and nothing
/// unstored is delivered; it starts again: the same socket sends again and
/// everything it confirmed arrives, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_sends_clearly_and_the_socket_recovers() {
    let Some(cluster) = Cluster::start() else {
        eprintln!("{}", skip_reason("postgres_outage"));
        return;
    };
    let url = cluster.conninfo().to_owned();
    let mut opts = PostgresOptions::new();
    opts.schema("outage")
        .connect_timeout(Duration::from_secs(2));
    let store = PostgresBackend::open_with_options(&url, &peer("a"), &opts)
        .await
        .unwrap();
    let a = ReliableSocket::open_with_socket_options(peer("a"), fast(), quick(), store)
        .await
        .unwrap();
    let b = ReliableSocket::open_with_socket_options(
        peer("b"),
        fast(),
        quick(),
        msg_reliable::MemoryBackend::new(),
    )
    .await
    .unwrap();
    let endpoint = b.bind("tcp://127.0.0.1:0").await.unwrap();
    a.connect(&endpoint.to_string()).unwrap();
    let to = peer("b");
    let mut confirmed = Vec::new();
    for i in 1..=5u64 {
        confirmed.push((a.send_to(&to, payload("a", "b", i)).await.unwrap(), i));
    }

    cluster.stop();
    let mut failures = 0;
    for i in 6..=8u64 {
        let err = tokio::time::timeout(WAIT, a.send_to(&to, payload("a", "b", i)))
            .await
            .expect("send_to answers while the database is down")
            .unwrap_err();
        assert!(err.is_storage(), "{err:?}");
        failures += 1;
    }
    assert_eq!(failures, 3);

    cluster.restart();
    for i in 9..=12u64 {
        confirmed.push((a.send_to(&to, payload("a", "b", i)).await.unwrap(), i));
    }
    // Sequence numbers went on without a gap: the failed sends took none.
    assert_eq!(
        confirmed.iter().map(|c| c.0).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    for (seq, i) in confirmed {
        let d = tokio::time::timeout(WAIT, b.recv()).await.unwrap().unwrap();
        assert_eq!((d.seq(), d.payload()), (seq, &payload("a", "b", i)));
        d.ack().await.unwrap();
    }
    let report = a.shutdown(WAIT).await;
    assert!(report.is_complete(), "{report:?}");
    drop(b);
}

/// A Unix-socket proxy in front of a cluster's socket that can lose a
/// commit's answer at will: the connection breaks with `COMMIT` sent, so
/// the backend cannot know from the connection whether it committed.
mod lossy {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{UnixListener, UnixStream};

    /// Forward everything.
    pub(super) const PASS: u8 = 0;
    /// Drop what the client sends and break the connection: the server
    /// never sees the transaction.
    pub(super) const LOSE_REQUEST: u8 = 1;
    /// Forward the server's answers up to (not including) the one for
    /// `COMMIT`, then break the connection: committed, answer lost.
    pub(super) const LOSE_COMMIT_ANSWER: u8 = 2;

    pub(super) struct Proxy {
        pub(super) dir: tempfile::TempDir,
        pub(super) mode: Arc<AtomicU8>,
    }

    impl Proxy {
        /// Listens in a new directory (the `host` of a connection string)
        /// and forwards to the socket in `server_dir`.
        pub(super) fn start(server_dir: &Path) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let listener = UnixListener::bind(dir.path().join(".s.PGSQL.5432")).unwrap();
            let server: PathBuf = server_dir.join(".s.PGSQL.5432");
            let mode = Arc::new(AtomicU8::new(PASS));
            let m = mode.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let server = UnixStream::connect(&server).await.unwrap();
                    tokio::spawn(pipe(client, server, m.clone()));
                }
            });
            Self { dir, mode }
        }

        pub(super) fn conninfo(&self) -> String {
            format!(
                "host={} user=postgres dbname=postgres",
                self.dir.path().to_str().unwrap()
            )
        }

        pub(super) fn set(&self, mode: u8) {
            self.mode.store(mode, Ordering::SeqCst);
        }
    }

    async fn pipe(client: UnixStream, server: UnixStream, mode: Arc<AtomicU8>) {
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let m = mode.clone();
        let up = async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if m.load(Ordering::SeqCst) == LOSE_REQUEST {
                    return;
                }
                if sw.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        };
        let down = async move {
            // The server's messages: a type byte, then a length (itself
            // included), big-endian.
            let mut pending: Vec<u8> = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let n = match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buf[..n]);
                let mut at = 0;
                while pending.len() >= at + 5 {
                    let len = u32::from_be_bytes(pending[at + 1..at + 5].try_into().unwrap());
                    let end = at + 1 + len as usize;
                    if pending.len() < end {
                        break;
                    }
                    let commit_answer =
                        pending[at] == b'C' && pending[at + 5..end].starts_with(b"COMMIT\0");
                    if commit_answer && mode.load(Ordering::SeqCst) == LOSE_COMMIT_ANSWER {
                        let _ = cw.write_all(&pending[..at]).await;
                        return;
                    }
                    at = end;
                }
                if cw.write_all(&pending[..at]).await.is_err() {
                    return;
                }
                pending.drain(..at);
            }
        };
        // Either direction ending breaks both: the streams are dropped.
        tokio::select! {
            () = up => {}
            () = down => {}
        }
    }
}

/// The connection breaks after `COMMIT` went out. If the server committed
/// (only its answer was lost), the caller is told the number it got; if
/// the server never saw the transaction, the caller gets an error and the
/// number is not used. Either way the stored state and the answers agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commit_with_a_lost_answer_is_settled_not_guessed() {
    let Some(cluster) = Cluster::start() else {
        eprintln!("{}", skip_reason("postgres_commit_with_a_lost_answer"));
        return;
    };
    let server_dir = cluster
        .conninfo()
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("host="))
        .unwrap()
        .to_owned();
    let proxy = lossy::Proxy::start(std::path::Path::new(&server_dir));
    let mut opts = PostgresOptions::new();
    opts.schema("lossy").lease(Duration::from_secs(5));
    let b = PostgresBackend::open_with_options(&proxy.conninfo(), &peer("me"), &opts)
        .await
        .unwrap();
    let x = peer("x");
    assert_eq!(b.append_outgoing(&x, msgs("x", 1..=1)).await.unwrap(), 1);

    // Committed, answer lost: the backend reconnects, finds its commit,
    // and answers with the number.
    proxy.set(lossy::LOSE_COMMIT_ANSWER);
    let append = tokio::spawn({
        let b = b.clone();
        let x = x.clone();
        async move { b.append_outgoing(&x, msgs("x", 2..=2)).await }
    });
    // Reconnecting goes through the proxy too: let it pass once the
    // answer is lost.
    let direct = sql(cluster.conninfo()).await;
    let deadline = std::time::Instant::now() + WAIT;
    while last_x(&direct).await < 2 {
        assert!(std::time::Instant::now() < deadline, "append 2 committed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.set(lossy::PASS);
    assert_eq!(
        tokio::time::timeout(WAIT, append)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        2,
        "the committed append is reported with its number"
    );

    // Never reached the server: an error, and the number is not taken.
    proxy.set(lossy::LOSE_REQUEST);
    let append = tokio::spawn({
        let b = b.clone();
        let x = x.clone();
        async move { b.append_outgoing(&x, msgs("x", 3..=3)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.set(lossy::PASS);
    let result = tokio::time::timeout(WAIT, append).await.unwrap().unwrap();
    assert_eq!(last_x(&direct).await, 2);
    assert!(result.is_err(), "{result:?}");
    assert_eq!(b.append_outgoing(&x, msgs("x", 3..=3)).await.unwrap(), 3);
    let out = b.load_outgoing(&x).await.unwrap();
    assert_eq!(
        out.unacked,
        (1..=3).map(|s| (s, msg("x", s))).collect::<Vec<_>>()
    );
    b.close().await;
}

/// The last number assigned to peer `x` in schema `lossy`, read directly.
async fn last_x(c: &tokio_postgres::Client) -> i64 {
    c.query_opt(
        "SELECT last_assigned FROM lossy.msg_reliable_peers WHERE peer = 'x'::bytea",
        &[],
    )
    .await
    .unwrap()
    .map_or(0, |r| r.get(0))
}
