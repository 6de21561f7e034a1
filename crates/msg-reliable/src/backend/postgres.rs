//! The shared backend: one identity's outboxes and receive state in a
//! PostgreSQL database, owned by one instance at a time.
//!
//! Like the redb backend, every operation becomes a request on a bounded
//! queue to one committer, here a tokio task that owns one database
//! connection. It takes the first waiting request and everything else that
//! is already queued (up to [`MAX_BATCH`]), sends all their writes in ONE
//! transaction (writes of one kind for one peer merged into one statement,
//! see [`plan`]), pipelined (the statements go out back to back, without
//! waiting for each answer), commits it (one `COMMIT`, one WAL flush with
//! `synchronous_commit = on`), and only then answers every caller. While it
//! waits for the commit, new requests pile up and become the next batch:
//! group commit, with no timer.
//!
//! Why one connection and no pool: ownership is tied to a database session
//! (its advisory lock, below), the committer is the only writer of an
//! identity anyway, and one connection that pipelines a whole batch moves
//! more per round trip than several that each wait for their own.
//!
//! # Ownership and fencing
//!
//! ```text
//! msg_reliable_owners   identity -> token, txn, lease_expires, released, holder
//! ```
//!
//! An instance owns an identity while it holds the identity's row with the
//! current `token` (the fencing token). To take over, an instance locks the
//! row (`SELECT ... FOR UPDATE`) and checks whether the current holder is
//! alive: its lease has not expired AND its database session still holds
//! the session-level advisory lock for (identity, token). If it is alive
//! the newcomer waits (up to
//! [`acquire_timeout`](PostgresOptions::acquire_timeout)) and then fails
//! with [`StorageErrorKind::AlreadyOpen`]. Otherwise it increments the
//! token, takes the advisory lock for the new token and a new lease, and
//! commits. So a killed holder (its session ends, the lock goes with it) is
//! replaced at once, and a holder that is alive but silent (paused,
//! partitioned from the database) once its lease has run out.
//!
//! Every write transaction starts with the fence, `msg_reliable_fence`, a
//! function that runs `UPDATE msg_reliable_owners SET txn = txn + 1,
//! lease_expires = ... WHERE identity = $1 AND token = $2`, which row-locks
//! the owner row until the commit, and raises an error if no row matches:
//! a newer owner exists, the transaction is rolled back and the handle is
//! fenced for good
//! ([`StorageErrorKind::Fenced`]). A takeover, which updates the same row,
//! waits for a write in progress to commit, and every later write of the
//! old owner finds the new token. Leases are renewed by every write and, when
//! idle, every third of the lease.
//!
//! The `txn` counter also settles a commit whose answer was lost (the
//! connection broke after `COMMIT` was sent): after reconnecting, the
//! committer reads it back and knows whether the transaction happened,
//! so a caller is never told "failed" for a write that was stored.
//!
//! # Tables
//!
//! ```text
//! msg_reliable_migrations  version -> applied_at, description
//! msg_reliable_peers       (owner, peer) -> last_assigned, outgoing_acked, accepted
//! msg_reliable_outgoing    (owner, peer, last_seq) -> first_seq, batch
//! msg_reliable_incoming    (owner, peer, last_seq) -> first_seq, batch, acked[]
//! ```
//!
//! As in the redb backend a row holds one write's messages (the batch
//! format of the `batch` module), an outgoing row goes when the peer's
//! cumulative ack covers it, and an incoming row when the application has
//! acknowledged each of its messages (`acked` lists those it has).

use std::collections::{BTreeSet, HashMap};
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{join, join_all, join4};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls, Statement};

use crate::backend::batch::{corrupt, decode_batch, encode_batch, first_seq};
use crate::backend::queue::{
    Counters, Group, Outcome, Queue, Read, Request, Write, backend_over_queue, fail_all,
};
use crate::error::{StorageError, StorageErrorKind};
use crate::peer::PeerId;
use crate::proto::{IncomingState, OutgoingState, StoreBatch};

/// Most requests applied in one transaction.
const MAX_BATCH: usize = 4096;

/// Requests that may wait for the committer; callers beyond it wait for
/// room.
const QUEUE: usize = 8192;

/// The SQLSTATE the fence raises when another instance owns the identity.
const FENCED_SQLSTATE: &str = "MRF01";

/// How often a waiting opener looks again whether the owner is gone.
const ACQUIRE_POLL: Duration = Duration::from_millis(50);

/// How often the committer retries the connection while a commit's outcome
/// is unknown.
const RESOLVE_POLL: Duration = Duration::from_millis(100);

/// The schema versions this crate knows, in order: each entry is applied
/// once, in one transaction with its row in `msg_reliable_migrations`.
/// `{s}` stands for the quoted schema name. Never edit an entry that was
/// released; add the next one.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "owners, peers, outgoing and incoming batches",
    "CREATE TABLE {s}.msg_reliable_owners (
        identity bytea PRIMARY KEY,
        token bigint NOT NULL,
        txn bigint NOT NULL DEFAULT 0,
        lease_expires timestamptz NOT NULL,
        released boolean NOT NULL DEFAULT true,
        holder text NOT NULL DEFAULT ''
    );
    CREATE TABLE {s}.msg_reliable_peers (
        owner bytea NOT NULL,
        peer bytea NOT NULL,
        last_assigned bigint NOT NULL DEFAULT 0,
        outgoing_acked bigint NOT NULL DEFAULT 0,
        accepted bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (owner, peer)
    );
    CREATE TABLE {s}.msg_reliable_outgoing (
        owner bytea NOT NULL,
        peer bytea NOT NULL,
        last_seq bigint NOT NULL,
        first_seq bigint NOT NULL CHECK (first_seq BETWEEN 1 AND last_seq),
        batch bytea NOT NULL,
        PRIMARY KEY (owner, peer, last_seq)
    );
    CREATE TABLE {s}.msg_reliable_incoming (
        owner bytea NOT NULL,
        peer bytea NOT NULL,
        last_seq bigint NOT NULL,
        first_seq bigint NOT NULL CHECK (first_seq BETWEEN 1 AND last_seq),
        batch bytea NOT NULL,
        acked bigint[] NOT NULL DEFAULT '{}',
        PRIMARY KEY (owner, peer, last_seq)
    );
    CREATE FUNCTION {s}.msg_reliable_fence(p_identity bytea, p_token bigint, p_lease float8)
    RETURNS bigint LANGUAGE plpgsql AS $fence$
    DECLARE
        n bigint;
    BEGIN
        UPDATE {s}.msg_reliable_owners
        SET txn = txn + 1, lease_expires = now() + make_interval(secs => p_lease)
        WHERE identity = p_identity AND token = p_token
        RETURNING txn INTO n;
        IF n IS NULL THEN
            RAISE EXCEPTION 'msg-reliable: fencing token % no longer owns this identity', p_token
                USING ERRCODE = 'MRF01';
        END IF;
        RETURN n;
    END
    $fence$;",
)];

/// Options of a [`PostgresBackend`]: where its tables live and how
/// ownership of the identity is held and taken over.
///
/// ```
/// use std::time::Duration;
/// use msg_reliable::PostgresOptions;
///
/// let mut opts = PostgresOptions::new();
/// opts.schema("messaging")
///     .lease(Duration::from_secs(5))
///     .acquire_timeout(Duration::from_secs(60));
/// ```
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    schema: String,
    lease: Duration,
    acquire_timeout: Duration,
    connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: "public".into(),
            lease: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl PostgresOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The schema that holds the tables; created if missing (which needs
    /// the `CREATE` privilege on the database). Lowercase ASCII letters,
    /// digits and `_`, starting with a letter or `_`, at most 63 bytes;
    /// anything else fails [`PostgresBackend::open`]. Default: `public`.
    pub fn schema(&mut self, schema: impl Into<String>) -> &mut Self {
        self.schema = schema.into();
        self
    }

    /// How long ownership lasts without a renewal. The owner renews it with
    /// every write and, when idle, every third of it. An owner that cannot
    /// renew it for this long (paused, or cut off from the database) while
    /// its database session lives on can be replaced after it; an owner
    /// whose session ended (the process died) is replaced at once. Shorter
    /// means faster takeover from a silent owner; longer tolerates longer
    /// pauses. Default: 10 s. At least 100 ms.
    pub fn lease(&mut self, lease: Duration) -> &mut Self {
        self.lease = lease;
        self
    }

    /// How long [`PostgresBackend::open`] waits for a live owner of the
    /// identity to go away before it fails with
    /// [`StorageErrorKind::AlreadyOpen`]. Zero: fail at once. Default: 30 s.
    pub fn acquire_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.acquire_timeout = timeout;
        self
    }

    /// How long one attempt to connect to the server may take, when the
    /// connection string sets no `connect_timeout` of its own. Default: 5 s.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    fn validate(&self) -> Result<(), StorageError> {
        let s = self.schema.as_bytes();
        let valid = !s.is_empty()
            && s.len() <= 63
            && (s[0].is_ascii_lowercase() || s[0] == b'_')
            && s.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_');
        if !valid {
            return Err(StorageError::new(
                StorageErrorKind::Other,
                format!(
                    "invalid schema name {:?}: use lowercase letters, digits and _",
                    self.schema
                ),
            ));
        }
        if self.lease < Duration::from_millis(100) {
            return Err(StorageError::new(
                StorageErrorKind::Other,
                "the lease must be at least 100 ms",
            ));
        }
        Ok(())
    }
}

/// A [`Backend`](crate::Backend) in a PostgreSQL database, shared by the instances that may
/// run an identity: when one dies (or its machine does), another opens the
/// same identity on the same database and resumes its outboxes and receive
/// position, with nothing lost and nothing delivered twice.
///
/// A write completes once its transaction is committed (durable on the
/// server as its `synchronous_commit` setting says; `on`, the default,
/// means flushed to the server's disk). Concurrent writes share one
/// transaction and one `COMMIT` (group commit); see [`stats`](Self::stats).
///
/// One instance owns an identity at a time. [`open`](Self::open) waits
/// while another live instance owns it (see
/// [`PostgresOptions::acquire_timeout`]) and takes over once that one is
/// gone: its process died, or it stopped renewing its lease. An instance
/// that lost ownership is fenced: its writes fail with
/// [`StorageErrorKind::Fenced`] and change nothing.
///
/// The database being unreachable fails operations with
/// [`StorageErrorKind::Io`]; the backend reconnects on the next operation,
/// so a reliable socket on it carries on when the database is back.
///
/// The connection string is in libpq's forms, `postgres://user@host/db` or
/// `host=/run/postgresql dbname=app` (a `host` that starts with `/` is a
/// Unix socket directory); put the password in it or, better, in an
/// environment variable the application reads. TLS is not supported yet:
/// use a Unix socket, a private network or a tunnel.
///
/// ```no_run
/// use msg_reliable::{Backend, PeerId, PostgresBackend};
/// # async fn demo() -> Result<(), msg_reliable::StorageError> {
/// let me: PeerId = "billing-1".parse().unwrap();
/// let store = PostgresBackend::open("host=/run/postgresql dbname=app", &me).await?;
/// let peer: PeerId = "ledger".parse().unwrap();
/// let seq = store.append_outgoing(&peer, vec!["hello".into()]).await?;
/// // `seq` is committed.
/// store.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PostgresBackend {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queue: Queue,
    token: u64,
}

/// Counters of a [`PostgresBackend`], to see group commit at work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresStats {
    /// Write transactions committed (one `COMMIT` each).
    pub write_transactions: u64,
    /// Write requests (appends, acks, stores) those transactions carried.
    pub write_requests: u64,
}

impl PostgresBackend {
    /// Opens the state of `identity` in the database at `config` with the
    /// default [`PostgresOptions`]: connects, creates or migrates the
    /// tables, and takes ownership of the identity, waiting up to 30 s for
    /// a live owner to go away.
    ///
    /// Use the same `identity` as the [`ReliableSocket`](crate::ReliableSocket)
    /// that runs on this store.
    ///
    /// # Errors
    ///
    /// See [`open_with_options`](Self::open_with_options).
    pub async fn open(config: &str, identity: &PeerId) -> Result<Self, StorageError> {
        Self::open_with_options(config, identity, &PostgresOptions::new()).await
    }

    /// Opens the state of `identity` in the database at `config`.
    ///
    /// # Errors
    ///
    /// - [`StorageErrorKind::Other`]: the connection string or the options
    ///   are invalid, or the database has a newer schema than this crate
    ///   knows.
    /// - [`StorageErrorKind::Io`]: the server cannot be reached, refused
    ///   the login, or a statement failed.
    /// - [`StorageErrorKind::AlreadyOpen`]: another live instance still
    ///   owned the identity after
    ///   [`acquire_timeout`](PostgresOptions::acquire_timeout); the error
    ///   names it.
    pub async fn open_with_options(
        config: &str,
        identity: &PeerId,
        options: &PostgresOptions,
    ) -> Result<Self, StorageError> {
        options.validate()?;
        let mut pg: tokio_postgres::Config = config.parse().map_err(|e| {
            StorageError::new(
                StorageErrorKind::Other,
                format!("invalid PostgreSQL connection string: {e}"),
            )
        })?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(options.connect_timeout);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("msg-reliable");
        }
        let mut committer = Committer {
            pg,
            sql: Sql::new(&options.schema),
            schema: options.schema.clone(),
            identity: identity.clone(),
            lease: options.lease,
            token: 0,
            last_txn: 0,
            conn: None,
            state: State::Owning,
            counters: Arc::default(),
        };
        committer.acquire(options.acquire_timeout).await?;
        let token = committer.token as u64;
        let (queue, rx, counters) = Queue::new(QUEUE);
        committer.counters = counters;
        tokio::spawn(committer.run(rx));
        Ok(Self {
            inner: Arc::new(Shared { queue, token }),
        })
    }

    /// Gives up ownership and closes the connection: requests already being
    /// committed finish, later ones (from clones) fail with
    /// [`StorageErrorKind::Closed`]. The next instance to open the identity
    /// takes over at once, without waiting for the lease. Returns at once
    /// if it is already closed.
    pub async fn close(&self) {
        self.inner.queue.close().await;
    }

    /// This handle's fencing token: one more than that of the previous
    /// owner of the identity. A higher token wins.
    pub fn fencing_token(&self) -> u64 {
        self.inner.token
    }

    /// Counters since the store was opened.
    pub fn stats(&self) -> PostgresStats {
        let (write_transactions, write_requests) = self.inner.queue.counters.get();
        PostgresStats {
            write_transactions,
            write_requests,
        }
    }

    fn queue(&self) -> &Queue {
        &self.inner.queue
    }
}

backend_over_queue!(PostgresBackend);

// ---------------------------------------------------------------------------
// SQL.

/// The statements, with the schema filled in.
#[derive(Debug)]
struct Sql {
    fence: String,
    renew: String,
    release: String,
    owner_row: String,
    owner_insert: String,
    owner_take: String,
    owner_txn: String,
    append: String,
    append_empty: String,
    ack_outgoing: String,
    store_first: String,
    store_next: String,
    ack_incoming: String,
    peer_row: String,
    outgoing_rows: String,
    incoming_rows: String,
    peers: String,
}

impl Sql {
    fn new(schema: &str) -> Self {
        let s = format!("\"{schema}\"");
        let owners = format!("{s}.msg_reliable_owners");
        let peers = format!("{s}.msg_reliable_peers");
        let outgoing = format!("{s}.msg_reliable_outgoing");
        let incoming = format!("{s}.msg_reliable_incoming");
        Self {
            // Fails (SQLSTATE MRF01) unless this token still owns the
            // identity: that aborts the transaction, so the `COMMIT`
            // pipelined after it rolls back.
            fence: format!("SELECT {s}.msg_reliable_fence($1, $2, $3)"),
            renew: format!(
                "UPDATE {owners} SET lease_expires = now() + make_interval(secs => $3::float8)
                 WHERE identity = $1 AND token = $2"
            ),
            release: format!(
                "UPDATE {owners} SET released = true, lease_expires = now()
                 WHERE identity = $1 AND token = $2"
            ),
            owner_insert: format!(
                "INSERT INTO {owners} (identity, token, lease_expires) VALUES ($1, 0, now())
                 ON CONFLICT (identity) DO NOTHING"
            ),
            owner_row: format!(
                "SELECT token, released, lease_expires > clock_timestamp(), holder, txn
                 FROM {owners} WHERE identity = $1 FOR UPDATE"
            ),
            owner_take: format!(
                "UPDATE {owners} SET token = $2, released = false, holder = $4,
                   lease_expires = now() + make_interval(secs => $3::float8)
                 WHERE identity = $1"
            ),
            owner_txn: format!("SELECT token, txn FROM {owners} WHERE identity = $1"),
            // Numbers are assigned by the database, in the same statement
            // that stores the row: the peer's counter moves by the batch's
            // size and the row is keyed by the new value.
            append: format!(
                "WITH s AS (
                   INSERT INTO {peers} AS p (owner, peer, last_assigned) VALUES ($1, $2, $3)
                   ON CONFLICT (owner, peer)
                   DO UPDATE SET last_assigned = p.last_assigned + EXCLUDED.last_assigned
                   RETURNING p.last_assigned
                 ), o AS (
                   INSERT INTO {outgoing} (owner, peer, last_seq, first_seq, batch)
                   SELECT $1, $2, s.last_assigned, s.last_assigned - $3 + 1, $4 FROM s
                 )
                 SELECT last_assigned FROM s"
            ),
            append_empty: format!(
                "SELECT coalesce(
                   (SELECT last_assigned FROM {peers} WHERE owner = $1 AND peer = $2), 0)"
            ),
            ack_outgoing: format!(
                "WITH d AS (
                   DELETE FROM {outgoing} WHERE owner = $1 AND peer = $2 AND last_seq <= $3
                 )
                 UPDATE {peers} SET outgoing_acked = $3
                 WHERE owner = $1 AND peer = $2 AND outgoing_acked < $3"
            ),
            // A batch is stored only if it follows the watermark, checked
            // and moved in the same statement; the count of updated rows
            // tells the caller. ($3 first, $4 last, $5 batch, $6 persist.)
            store_first: format!(
                "WITH w AS (
                   INSERT INTO {peers} AS p (owner, peer, accepted) VALUES ($1, $2, $4)
                   ON CONFLICT (owner, peer) DO UPDATE SET accepted = EXCLUDED.accepted
                   WHERE p.accepted = $3::bigint - 1
                   RETURNING 1
                 ), i AS (
                   INSERT INTO {incoming} (owner, peer, last_seq, first_seq, batch)
                   SELECT $1, $2, $4, $3, $5 FROM w WHERE $6
                 )
                 SELECT count(*) FROM w"
            ),
            store_next: format!(
                "WITH w AS (
                   UPDATE {peers} SET accepted = $4
                   WHERE owner = $1 AND peer = $2 AND accepted = $3::bigint - 1
                   RETURNING 1
                 ), i AS (
                   INSERT INTO {incoming} (owner, peer, last_seq, first_seq, batch)
                   SELECT $1, $2, $4, $3, $5 FROM w WHERE $6
                 )
                 SELECT count(*) FROM w"
            ),
            // The application's acks, merged into each row's `acked`; a row
            // whose messages are all acknowledged is deleted instead.
            ack_incoming: format!(
                "WITH s AS (SELECT DISTINCT unnest($3::bigint[]) AS seq),
                 hit AS (
                   SELECT i.last_seq, i.last_seq - i.first_seq + 1 AS n,
                          ARRAY(SELECT DISTINCT x FROM unnest(i.acked || array_agg(s.seq)) x
                                ORDER BY x) AS acked
                   FROM {incoming} i JOIN s ON s.seq BETWEEN i.first_seq AND i.last_seq
                   WHERE i.owner = $1 AND i.peer = $2
                   GROUP BY i.owner, i.peer, i.last_seq
                 ),
                 d AS (
                   DELETE FROM {incoming} i USING hit
                   WHERE i.owner = $1 AND i.peer = $2 AND i.last_seq = hit.last_seq
                     AND cardinality(hit.acked) >= hit.n
                 )
                 UPDATE {incoming} i SET acked = hit.acked FROM hit
                 WHERE i.owner = $1 AND i.peer = $2 AND i.last_seq = hit.last_seq
                   AND cardinality(hit.acked) < hit.n"
            ),
            peer_row: format!(
                "SELECT last_assigned, outgoing_acked, accepted FROM {peers}
                 WHERE owner = $1 AND peer = $2"
            ),
            outgoing_rows: format!(
                "SELECT first_seq, last_seq, batch FROM {outgoing}
                 WHERE owner = $1 AND peer = $2 AND last_seq > $3 ORDER BY last_seq"
            ),
            incoming_rows: format!(
                "SELECT first_seq, last_seq, batch, acked FROM {incoming}
                 WHERE owner = $1 AND peer = $2 ORDER BY last_seq"
            ),
            peers: format!(
                "SELECT peer FROM {peers}
                 WHERE owner = $1 AND (last_assigned > 0 OR accepted > 0)"
            ),
        }
    }
}

/// The prepared statements of one connection.
struct Prepared {
    begin: Statement,
    commit: Statement,
    fence: Statement,
    renew: Statement,
    owner_txn: Statement,
    append: Statement,
    append_empty: Statement,
    ack_outgoing: Statement,
    store_first: Statement,
    store_next: Statement,
    ack_incoming: Statement,
    peer_row: Statement,
    outgoing_rows: Statement,
    incoming_rows: Statement,
    peers: Statement,
}

struct Conn {
    client: Client,
    st: Prepared,
}

// ---------------------------------------------------------------------------
// The committer task.

#[derive(Debug, Clone)]
enum State {
    Owning,
    /// Another instance took over; nothing more is written.
    Fenced,
    /// A commit's outcome could not be learned; nothing more is done, so
    /// the caller's idea of what is stored cannot drift from the store's.
    Poisoned,
}

struct Committer {
    pg: tokio_postgres::Config,
    sql: Sql,
    schema: String,
    identity: PeerId,
    lease: Duration,
    /// The fencing token this instance owns the identity with.
    token: i64,
    /// The owner row's `txn` counter after this instance's last commit.
    last_txn: i64,
    conn: Option<Conn>,
    state: State,
    counters: Arc<Counters>,
}

enum TxnError {
    /// Nothing was committed.
    Failed(StorageError),
    /// The owner row has another token.
    Fenced,
    /// `COMMIT` went out and not every answer came back. `outcomes` are
    /// the writes' outcomes if their answers did come.
    InDoubt {
        outcomes: Option<Vec<Outcome>>,
        error: StorageError,
    },
    /// Committed, but the fence's answer did not decode.
    Committed(StorageError),
}

impl Committer {
    fn owner(&self) -> &[u8] {
        self.identity.as_bytes()
    }

    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// The advisory lock key of (schema, identity, token): FNV-1a, spelled
    /// out so every build of every version computes the same key.
    fn lock_key(&self, token: i64) -> i64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let parts: [&[u8]; 4] = [
            b"msg-reliable\0",
            self.schema.as_bytes(),
            self.identity.as_bytes(),
            &token.to_le_bytes(),
        ];
        for part in parts {
            for &b in part.iter().chain(&[0xffu8]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h as i64
    }

    /// Connects, creates or migrates the schema, and prepares statements.
    async fn connect(&self) -> Result<Conn, StorageError> {
        let (mut client, connection) = self.pg.connect(NoTls).await.map_err(|e| {
            StorageError::new(
                StorageErrorKind::Io,
                format!("cannot connect to PostgreSQL: {e}"),
            )
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "reliable store: PostgreSQL connection ended");
            }
        });
        // A session that stalls inside a transaction (its process paused)
        // holds the owner row's lock; the server ends it after a lease, so
        // a successor is not locked out by a holder that lost its lease.
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = {}",
                self.lease.as_millis().max(1)
            ))
            .await
            .map_err(io)?;
        migrate(&mut client, &self.schema).await?;
        let sql = &self.sql;
        let prep = |s: &str| {
            let client = &client;
            let s = s.to_owned();
            async move { client.prepare(&s).await.map_err(io) }
        };
        let st = Prepared {
            begin: prep("BEGIN").await?,
            commit: prep("COMMIT").await?,
            fence: prep(&sql.fence).await?,
            renew: prep(&sql.renew).await?,
            owner_txn: prep(&sql.owner_txn).await?,
            append: prep(&sql.append).await?,
            append_empty: prep(&sql.append_empty).await?,
            ack_outgoing: prep(&sql.ack_outgoing).await?,
            store_first: prep(&sql.store_first).await?,
            store_next: prep(&sql.store_next).await?,
            ack_incoming: prep(&sql.ack_incoming).await?,
            peer_row: prep(&sql.peer_row).await?,
            outgoing_rows: prep(&sql.outgoing_rows).await?,
            incoming_rows: prep(&sql.incoming_rows).await?,
            peers: prep(&sql.peers).await?,
        };
        Ok(Conn { client, st })
    }

    /// Takes ownership of the identity for a new instance, waiting up to
    /// `timeout` for a live owner to go away.
    async fn acquire(&mut self, timeout: Duration) -> Result<(), StorageError> {
        let deadline = Instant::now() + timeout;
        let mut conn = self.connect().await?;
        loop {
            match self.try_take(&mut conn).await? {
                Ok((token, txn)) => {
                    self.token = token;
                    self.last_txn = txn;
                    self.conn = Some(conn);
                    tracing::debug!(identity = %self.identity, token, "reliable store: owner");
                    return Ok(());
                }
                Err(holder) => {
                    if Instant::now() >= deadline {
                        return Err(StorageError::new(
                            StorageErrorKind::AlreadyOpen,
                            format!(
                                "identity {} is owned by a live instance ({holder}); \
                                 gave up after {timeout:?}",
                                self.identity
                            ),
                        ));
                    }
                    tokio::time::sleep(ACQUIRE_POLL).await;
                }
            }
        }
    }

    /// One attempt to take ownership: `Ok(Ok((token, txn)))` if taken (with
    /// the owner row's `txn` counter),
    /// `Ok(Err(holder))` if a live owner holds it.
    async fn try_take(&self, conn: &mut Conn) -> Result<Result<(i64, i64), String>, StorageError> {
        let owner = self.owner();
        let txn = conn.client.transaction().await.map_err(io)?;
        // A holder stalled inside a write transaction keeps the row locked
        // until the server ends its session; meanwhile, report it as busy.
        txn.batch_execute(&format!(
            "SET LOCAL lock_timeout = {}",
            ACQUIRE_POLL.as_millis() * 4
        ))
        .await
        .map_err(io)?;
        txn.execute(self.sql.owner_insert.as_str(), &[&owner])
            .await
            .map_err(io)?;
        let row = match txn.query_one(self.sql.owner_row.as_str(), &[&owner]).await {
            Ok(row) => row,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                return Ok(Err("a holder inside a write transaction".into()));
            }
            Err(e) => return Err(io(e)),
        };
        let token: i64 = row.try_get(0).map_err(io)?;
        let released: bool = row.try_get(1).map_err(io)?;
        let lease_live: bool = row.try_get(2).map_err(io)?;
        let holder: String = row.try_get(3).map_err(io)?;
        let txn_now: i64 = row.try_get(4).map_err(io)?;
        if !released && lease_live {
            // Is the owner's database session still there? It holds the
            // advisory lock of its token as long as it lives.
            let key = self.lock_key(token);
            let free: bool = txn
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await
                .map_err(io)?
                .try_get(0)
                .map_err(io)?;
            if free {
                txn.execute("SELECT pg_advisory_unlock($1)", &[&key])
                    .await
                    .map_err(io)?;
            } else {
                return Ok(Err(format!(
                    "{holder}, fencing token {token}, lease not expired"
                )));
            }
        }
        let new = token
            .checked_add(1)
            .ok_or_else(|| corrupt("fencing token overflow"))?;
        let key = self.lock_key(new);
        let got: bool = txn
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(io)?
            .try_get(0)
            .map_err(io)?;
        if !got {
            // Another identity's lock with the same key (a hash collision):
            // try again later, as for a live owner.
            return Ok(Err("an advisory lock with the same key".into()));
        }
        let me = holder_name();
        txn.execute(
            self.sql.owner_take.as_str(),
            &[&owner, &new, &self.lease_secs(), &me],
        )
        .await
        .map_err(io)?;
        txn.commit().await.map_err(io)?;
        Ok(Ok((new, txn_now)))
    }

    /// After a lost connection: reconnects and checks that this instance
    /// still owns the identity (takes its advisory lock again on the new
    /// session and renews the lease).
    async fn reconnect(&mut self) -> Result<(), StorageError> {
        let mut conn = self.connect().await?;
        let owner = self.owner().to_vec();
        let txn = conn.client.transaction().await.map_err(io)?;
        let row = txn
            .query_opt(self.sql.owner_row.as_str(), &[&owner])
            .await
            .map_err(io)?;
        let token: Option<i64> = row.map(|r| r.try_get(0)).transpose().map_err(io)?;
        if token != Some(self.token) {
            drop(txn);
            self.state = State::Fenced;
            tracing::warn!(identity = %self.identity, token = self.token, "reliable store: another instance took over");
            return Err(fenced());
        }
        // The old session may not have ended yet and still hold the lock;
        // then it keeps holding it for us until it does.
        let key = self.lock_key(self.token);
        txn.query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(io)?;
        txn.execute(
            &conn.st.renew,
            &[&owner.as_slice(), &self.token, &self.lease_secs()],
        )
        .await
        .map_err(io)?;
        txn.commit().await.map_err(io)?;
        self.conn = Some(conn);
        tracing::debug!(identity = %self.identity, "reliable store: reconnected");
        Ok(())
    }

    /// The connection, reconnecting if it was lost; or why there is none.
    async fn ready(&mut self) -> Result<&mut Conn, StorageError> {
        match self.state {
            State::Owning => {}
            State::Fenced => return Err(fenced()),
            State::Poisoned => return Err(poisoned()),
        }
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.reconnect().await?;
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StorageError::from_kind(StorageErrorKind::Io))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut group = Group::default();
        let renew_every = self.lease / 3;
        let mut renew_at = Instant::now() + renew_every;
        while group.closing.is_empty() {
            let first = tokio::select! {
                req = rx.recv() => match req {
                    Some(req) => req,
                    None => break,
                },
                () = tokio::time::sleep_until(renew_at) => {
                    self.renew().await;
                    renew_at = Instant::now() + renew_every;
                    continue;
                }
            };
            group.gather(first, &mut rx, MAX_BATCH);
            if !group.writes.is_empty() {
                self.commit_batch(&mut group.writes).await;
                // A commit renewed the lease.
                renew_at = Instant::now() + renew_every;
            }
            // Reads run after the writes gathered with them, so a caller
            // that awaited its write sees it.
            for read in group.reads.drain(..) {
                self.answer_read(read).await;
            }
        }
        group.refuse_rest(&mut rx);
        self.release().await;
        group.closed();
    }

    /// Renews the lease while idle; finds out about a takeover early.
    async fn renew(&mut self) {
        let owner = self.owner().to_vec();
        let (token, lease) = (self.token, self.lease_secs());
        let conn = match self.ready().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "reliable store: cannot renew the lease");
                return;
            }
        };
        match conn
            .client
            .execute(&conn.st.renew, &[&owner.as_slice(), &token, &lease])
            .await
        {
            Ok(0) => {
                tracing::warn!(identity = %self.identity, token, "reliable store: another instance took over");
                self.state = State::Fenced;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "reliable store: lease renewal failed"),
        }
    }

    /// Gives up ownership (on close): the next opener need not wait for the
    /// lease to run out.
    async fn release(&mut self) {
        if let (State::Owning, Some(conn)) = (&self.state, &self.conn) {
            let owner = self.owner();
            let released = conn
                .client
                .execute(self.sql.release.as_str(), &[&owner, &self.token])
                .await;
            if let Err(e) = released {
                tracing::debug!(error = %e, "reliable store: cannot release ownership");
            }
        }
        // Ending the session drops its advisory lock.
        self.conn = None;
        tracing::debug!(identity = %self.identity, "reliable store closed");
    }

    /// Applies `writes` in one transaction and answers them all after the
    /// commit.
    async fn commit_batch(&mut self, writes: &mut Vec<Write>) {
        let owner = self.owner().to_vec();
        let (token, lease) = (self.token, self.lease_secs());
        let mut result = match self.ready().await {
            Err(e) => Err(TxnError::Failed(e)),
            Ok(conn) => transaction(conn, &owner, token, lease, writes).await,
        };
        // The server refused the transaction and then closed the
        // connection (it was shut down, or ended this session): nothing
        // was committed. Reconnect (which also tells whether this instance
        // was fenced meanwhile, say while it was paused) and try once more.
        if matches!(result, Err(TxnError::Failed(_)))
            && self.conn.as_ref().is_some_and(|c| c.client.is_closed())
        {
            self.conn = None;
            result = match self.ready().await {
                Err(e) if e.is_fenced() => Err(TxnError::Fenced),
                Err(_) => result,
                Ok(conn) => transaction(conn, &owner, token, lease, writes).await,
            };
        }
        let outcomes = match result {
            Ok((outcomes, txn)) => {
                self.last_txn = txn;
                outcomes
            }
            Err(TxnError::Fenced) => {
                tracing::warn!(identity = %self.identity, token, "reliable store: another instance took over");
                self.state = State::Fenced;
                return fail_all(writes, fenced());
            }
            Err(TxnError::Failed(e)) => {
                tracing::warn!(error = %e, source = ?e.source(), writes = writes.len(), "reliable store commit failed");
                self.drop_if_closed();
                return fail_all(writes, e);
            }
            Err(TxnError::Committed(e)) => return self.lost_answers(writes, e),
            Err(TxnError::InDoubt { outcomes, error }) => {
                self.conn = None;
                let expected = self.last_txn + 1;
                match (self.resolve(expected).await, outcomes) {
                    (Ok(true), Some(outcomes)) => {
                        tracing::info!(identity = %self.identity, "reliable store: a commit whose answer was lost did happen");
                        self.last_txn = expected;
                        outcomes
                    }
                    (Ok(true), None) => return self.lost_answers(writes, error),
                    (Ok(false), _) => return fail_all(writes, error),
                    (Err(e), _) => return fail_all(writes, e),
                }
            }
        };
        self.counters.committed(writes.len());
        for (w, outcome) in writes.drain(..).zip(outcomes) {
            w.answer(outcome);
        }
    }

    /// The writes were committed, but not all of their answers (such as the
    /// numbers an append was given) are known: the callers' view of the
    /// store can no longer be kept in step with it, so the backend stops.
    /// Reopening it loads the truth.
    fn lost_answers(&mut self, writes: &mut Vec<Write>, cause: StorageError) {
        tracing::error!(identity = %self.identity, error = %cause, "reliable store: committed, but the answers were lost; stopping");
        self.state = State::Poisoned;
        fail_all(writes, poisoned());
    }

    /// Finds out whether the transaction that would have set the owner's
    /// `txn` counter to `expected` committed, reconnecting until the lease
    /// runs out. If that cannot be learned, the backend stops (poisoned).
    async fn resolve(&mut self, expected: i64) -> Result<bool, StorageError> {
        let deadline = Instant::now() + self.lease;
        loop {
            match self.reconnect().await {
                Ok(()) => {
                    let owner = self.owner().to_vec();
                    if let Some(conn) = &self.conn {
                        let row = conn
                            .client
                            .query_one(&conn.st.owner_txn, &[&owner.as_slice()])
                            .await;
                        if let Ok(row) = row {
                            let now: i64 = row.try_get(1).map_err(io)?;
                            return Ok(now >= expected);
                        }
                    }
                }
                Err(e) if e.is_fenced() => return Err(e),
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                tracing::error!(identity = %self.identity, "reliable store: the outcome of a commit is unknown; stopping");
                self.state = State::Poisoned;
                return Err(poisoned());
            }
            tokio::time::sleep(RESOLVE_POLL).await;
        }
    }

    fn drop_if_closed(&mut self) {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
    }

    async fn answer_read(&mut self, read: Read) {
        let owner = self.owner().to_vec();
        let conn = match self.ready().await {
            Ok(conn) => conn,
            Err(e) => return read.answer_err(e),
        };
        let (c, st) = (&conn.client, &conn.st);
        let o = owner.as_slice();
        match read {
            Read::LoadOutgoing { peer, reply } => {
                let _ = reply.send(load_outgoing(c, st, o, peer.as_bytes()).await);
            }
            Read::LoadIncoming { peer, reply } => {
                let _ = reply.send(load_incoming(c, st, o, peer.as_bytes()).await);
            }
            Read::Accepted { peer, reply } => {
                let result = async {
                    let row = c
                        .query_opt(&st.peer_row, &[&o, &peer.as_bytes()])
                        .await
                        .map_err(io)?;
                    match row {
                        Some(row) => seq_from(row.try_get(2).map_err(io)?),
                        None => Ok(0),
                    }
                }
                .await;
                let _ = reply.send(result);
            }
            Read::Peers { reply } => {
                let result = async {
                    let mut peers = BTreeSet::new();
                    for row in c.query(&st.peers, &[&o]).await.map_err(io)? {
                        let id: Vec<u8> = row.try_get(0).map_err(io)?;
                        let id = PeerId::new(id).map_err(|e| {
                            StorageError::new(StorageErrorKind::Corrupt, e.to_string())
                        })?;
                        peers.insert(id);
                    }
                    Ok(peers.into_iter().collect())
                }
                .await;
                let _ = reply.send(result);
            }
        }
        self.drop_if_closed();
    }
}

/// Runs one write transaction in ONE round trip: `BEGIN`, the fence, every
/// write and `COMMIT` go out back to back (pipelined) before any answer is
/// read. PostgreSQL aborts a transaction at its first failed statement, and
/// a `COMMIT` of an aborted transaction rolls it back (and answers
/// `ROLLBACK`, not an error), so whatever fails (the fence included) takes
/// the whole group with it. The answers then tell which of three things
/// happened:
///
/// - a statement was refused by the server: nothing was committed;
/// - every statement and `COMMIT` succeeded: all of it was committed;
/// - the connection broke before every answer came: `COMMIT` went out, so
///   it may have been committed or not (in doubt).
async fn transaction(
    conn: &mut Conn,
    owner: &[u8],
    token: i64,
    lease: f64,
    writes: &[Write],
) -> Result<(Vec<Outcome>, i64), TxnError> {
    let (client, st) = (&conn.client, &conn.st);
    // Encode first: a payload that cannot be stored fails alone.
    let (ops, routes) = plan(writes);
    let fence_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&owner, &token, &lease];
    // `join4` polls its futures in order on its first poll, and each sends
    // its request on its first poll: the requests go out in this order.
    let (begin, fence, outcomes, commit) = join4(
        client.execute(&st.begin, &[]),
        client.query_one(&st.fence, &fence_params),
        join_all(ops.iter().map(|op| apply(client, st, owner, op))),
        client.execute(&st.commit, &[]),
    )
    .await;
    let fence_err = fence.as_ref().err();
    if fence_err.is_some_and(|e| e.code().is_some_and(|c| c.code() == FENCED_SQLSTATE)) {
        return Err(TxnError::Fenced);
    }
    let errors = [begin.as_ref().err(), fence_err, commit.as_ref().err()]
        .into_iter()
        .flatten()
        .chain(outcomes.iter().filter_map(|o| o.as_ref().err()));
    let mut lost = None;
    for e in errors {
        if e.as_db_error().is_some() || !e.is_closed() {
            // The server refused a statement: the transaction was aborted,
            // and the `COMMIT` after it rolled it back.
            return Err(TxnError::Failed(StorageError::new(
                StorageErrorKind::Io,
                e.to_string(),
            )));
        }
        lost.get_or_insert_with(|| e.to_string());
    }
    if let Some(lost) = lost {
        let known = outcomes
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .map(|o| route(&o, &routes));
        return Err(TxnError::InDoubt {
            outcomes: known.filter(|_| fence.is_ok()),
            error: StorageError::new(StorageErrorKind::Io, lost),
        });
    }
    let txn_no = fence
        .map_err(io)
        .and_then(|row| row.try_get::<_, i64>(0).map_err(io));
    let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
    match txn_no {
        Ok(txn_no) => Ok((route(&outcomes, &routes), txn_no)),
        Err(e) => Err(TxnError::Committed(e)),
    }
}

/// A write's parameters, encoded.
enum Op {
    Append {
        peer: Vec<u8>,
        n: i64,
        batch: Vec<u8>,
    },
    AppendEmpty {
        peer: Vec<u8>,
    },
    AckOutgoing {
        peer: Vec<u8>,
        up_to: i64,
    },
    Store {
        peer: Vec<u8>,
        first: i64,
        last: i64,
        batch: Vec<u8>,
        persist: bool,
    },
    StoreEmpty,
    AckIncoming {
        peer: Vec<u8>,
        seqs: Vec<i64>,
    },
}

/// Most payload bytes that appends of one group merge into one row.
const MERGED_ROW: usize = 256 * 1024;

/// Where a write's outcome comes from: the statement at index `op` of the
/// plan, and the position of the write's first message in that
/// statement's batch (added to the number the statement returns).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Route {
    op: usize,
    offset: u64,
}

/// A statement being planned: writes that merge are gathered here before
/// they are encoded.
enum Draft<'a> {
    Append {
        peer: &'a PeerId,
        payloads: Vec<Bytes>,
        bytes: usize,
    },
    AckOutgoing {
        peer: &'a PeerId,
        up_to: u64,
    },
    AckIncoming {
        peer: &'a PeerId,
        seqs: Vec<u64>,
    },
    /// An empty append: asks for the next number.
    AppendEmpty {
        peer: &'a PeerId,
    },
    Store {
        peer: &'a PeerId,
        batch: &'a StoreBatch,
    },
}

/// The statements for a group of writes, in order, and where each write's
/// outcome comes from.
///
/// Writes of the same kind for the same peer merge into one statement, so
/// a group costs the server a few statements however many callers it
/// carries: appends into one row (numbered in order, up to [`MERGED_ROW`]
/// bytes), cumulative acknowledgements into the highest, the
/// application's acknowledgements into one list. A merged statement runs
/// where its first write stood. A write that would be ordered differently
/// by that ends the merge: an empty append (which asks for the next
/// number) ends its peer's appends, a stored incoming batch its peer's
/// application acknowledgements.
fn plan(writes: &[Write]) -> (Vec<Result<Op, StorageError>>, Vec<Route>) {
    #[derive(PartialEq, Eq, Hash)]
    enum Kind {
        Append,
        AckOutgoing,
        AckIncoming,
    }
    let mut drafts: Vec<Draft<'_>> = Vec::new();
    let mut routes = Vec::with_capacity(writes.len());
    let mut open: HashMap<(Kind, &PeerId), usize> = HashMap::new();
    for w in writes {
        let key = match w {
            Write::Append { peer, payloads, .. } if payloads.is_empty() => {
                open.remove(&(Kind::Append, peer));
                None
            }
            Write::Append { peer, .. } => Some((Kind::Append, peer)),
            Write::AckOutgoing { peer, .. } => Some((Kind::AckOutgoing, peer)),
            Write::AckIncoming { peer, .. } => Some((Kind::AckIncoming, peer)),
            Write::StoreIncoming { peer, .. } => {
                open.remove(&(Kind::AckIncoming, peer));
                None
            }
        };
        let into = key.as_ref().and_then(|k| open.get(k).copied());
        let merged = into.and_then(|i| {
            let offset = match (&mut drafts[i], w) {
                (
                    Draft::Append {
                        payloads, bytes, ..
                    },
                    Write::Append { payloads: more, .. },
                ) => {
                    let size: usize = more.iter().map(Bytes::len).sum();
                    if *bytes + size > MERGED_ROW {
                        return None;
                    }
                    let offset = payloads.len() as u64;
                    payloads.extend(more.iter().cloned());
                    *bytes += size;
                    offset
                }
                (Draft::AckOutgoing { up_to, .. }, Write::AckOutgoing { up_to: more, .. }) => {
                    *up_to = (*up_to).max(*more);
                    0
                }
                (Draft::AckIncoming { seqs, .. }, Write::AckIncoming { seqs: more, .. }) => {
                    seqs.extend_from_slice(more);
                    0
                }
                _ => return None,
            };
            Some(Route { op: i, offset })
        });
        if let Some(r) = merged {
            routes.push(r);
            continue;
        }
        let draft = match w {
            Write::Append { peer, payloads, .. } if !payloads.is_empty() => Draft::Append {
                peer,
                payloads: payloads.clone(),
                bytes: payloads.iter().map(Bytes::len).sum(),
            },
            Write::AckOutgoing { peer, up_to, .. } => Draft::AckOutgoing {
                peer,
                up_to: *up_to,
            },
            Write::Append { peer, .. } => Draft::AppendEmpty { peer },
            Write::AckIncoming { peer, seqs, .. } => Draft::AckIncoming {
                peer,
                seqs: seqs.clone(),
            },
            Write::StoreIncoming { peer, batch, .. } => Draft::Store { peer, batch },
        };
        if let Some(k) = key {
            open.insert(k, drafts.len());
        }
        routes.push(Route {
            op: drafts.len(),
            offset: 0,
        });
        drafts.push(draft);
    }
    (drafts.into_iter().map(Op::new).collect(), routes)
}

/// Each write's outcome from its statement's: the number a merged append
/// returned, moved on by the write's place in the row.
fn route(outcomes: &[Outcome], routes: &[Route]) -> Vec<Outcome> {
    routes
        .iter()
        .map(|r| outcomes[r.op].clone().map(|n| n + r.offset))
        .collect()
}

impl Op {
    fn new(d: Draft<'_>) -> Result<Self, StorageError> {
        Ok(match d {
            Draft::Append { peer, payloads, .. } => Op::Append {
                peer: peer.as_bytes().to_vec(),
                n: seq_to(payloads.len() as u64)?,
                batch: encode_batch(&payloads)?,
            },
            Draft::AckOutgoing { peer, up_to } => Op::AckOutgoing {
                peer: peer.as_bytes().to_vec(),
                up_to: seq_to(up_to)?,
            },
            Draft::AckIncoming { peer, seqs } => Op::AckIncoming {
                peer: peer.as_bytes().to_vec(),
                seqs: seqs.iter().filter_map(|&s| i64::try_from(s).ok()).collect(),
            },
            Draft::AppendEmpty { peer } => Op::AppendEmpty {
                peer: peer.as_bytes().to_vec(),
            },
            Draft::Store { batch, .. } if batch.is_empty() => Op::StoreEmpty,
            Draft::Store { peer, batch } => Op::Store {
                peer: peer.as_bytes().to_vec(),
                first: seq_to(batch.first_seq())?,
                last: seq_to(batch.last_seq())?,
                batch: if batch.persist_payloads() {
                    encode_batch(batch.payloads())?
                } else {
                    Vec::new()
                },
                persist: batch.persist_payloads(),
            },
        })
    }
}

/// Runs one write's statement. The outer error is the statement's own
/// failure (the server refused it, or no answer came); the inner one is
/// this write's outcome: its first number, or why it failed on its own (a
/// conflicting incoming batch, a payload too large to encode, an answer
/// that does not decode), which changes nothing.
async fn apply(
    client: &Client,
    st: &Prepared,
    owner: &[u8],
    op: &Result<Op, StorageError>,
) -> Result<Outcome, tokio_postgres::Error> {
    let op = match op {
        Ok(op) => op,
        Err(e) => return Ok(Err(e.clone())),
    };
    let decode =
        |row: &tokio_postgres::Row| -> Result<i64, StorageError> { row.try_get(0).map_err(io) };
    Ok(match op {
        Op::AppendEmpty { peer } => {
            let row = client.query_one(&st.append_empty, &[&owner, peer]).await?;
            decode(&row).and_then(seq_from).map(|last| last + 1)
        }
        Op::Append { peer, n, batch } => {
            let row = client
                .query_one(&st.append, &[&owner, peer, n, batch])
                .await?;
            // `n` is positive and `last` at least `n`: the row's CHECK holds.
            decode(&row)
                .and_then(seq_from)
                .map(|last| last + 1 - n.unsigned_abs())
        }
        Op::AckOutgoing { peer, up_to } => {
            client
                .execute(&st.ack_outgoing, &[&owner, peer, up_to])
                .await?;
            Ok(0)
        }
        Op::Store {
            peer,
            first,
            last,
            batch,
            persist,
        } => {
            let statement = if *first == 1 {
                &st.store_first
            } else {
                &st.store_next
            };
            let row = client
                .query_one(statement, &[&owner, peer, first, last, batch, persist])
                .await?;
            match decode(&row) {
                Ok(0) => Err(StorageError::from_kind(StorageErrorKind::Conflict)),
                Ok(_) => Ok(0),
                Err(e) => Err(e),
            }
        }
        Op::StoreEmpty => Ok(0),
        Op::AckIncoming { peer, seqs } => {
            client
                .execute(&st.ack_incoming, &[&owner, peer, seqs])
                .await?;
            Ok(0)
        }
    })
}

async fn load_outgoing(
    c: &Client,
    st: &Prepared,
    owner: &[u8],
    peer: &[u8],
) -> Result<OutgoingState, StorageError> {
    let row = c
        .query_opt(&st.peer_row, &[&owner, &peer])
        .await
        .map_err(io)?;
    let Some(row) = row else {
        return Ok(OutgoingState::default());
    };
    let last_assigned = seq_from(row.try_get(0).map_err(io)?)?;
    let acked = seq_from(row.try_get(1).map_err(io)?)?;
    let acked_i = seq_to(acked)?;
    let mut unacked = Vec::new();
    for row in c
        .query(&st.outgoing_rows, &[&owner, &peer, &acked_i])
        .await
        .map_err(io)?
    {
        let (first, last, payloads) = batch_row(&row)?;
        let _ = last;
        unacked.extend((first..).zip(payloads).filter(|(seq, _)| *seq > acked));
    }
    Ok(OutgoingState {
        last_assigned,
        unacked,
    })
}

async fn load_incoming(
    c: &Client,
    st: &Prepared,
    owner: &[u8],
    peer: &[u8],
) -> Result<IncomingState, StorageError> {
    let (row, rows) = join(
        c.query_opt(&st.peer_row, &[&owner, &peer]),
        c.query(&st.incoming_rows, &[&owner, &peer]),
    )
    .await;
    let accepted = match row.map_err(io)? {
        Some(row) => seq_from(row.try_get(2).map_err(io)?)?,
        None => 0,
    };
    let mut undelivered = Vec::new();
    for row in rows.map_err(io)? {
        let (first, last, payloads) = batch_row(&row)?;
        let acked: Vec<i64> = row.try_get(3).map_err(io)?;
        let mut done = BTreeSet::new();
        for seq in acked {
            let seq = seq_from(seq)?;
            if seq < first || seq > last {
                return Err(corrupt(
                    "an acknowledged sequence number outside its batch row",
                ));
            }
            done.insert(seq);
        }
        undelivered.extend(
            (first..)
                .zip(payloads)
                .filter(|(seq, _)| !done.contains(seq)),
        );
    }
    Ok(IncomingState {
        accepted,
        undelivered,
    })
}

/// A batch row's first and last sequence numbers and its payloads, checked
/// against each other.
fn batch_row(row: &tokio_postgres::Row) -> Result<(u64, u64, Vec<Bytes>), StorageError> {
    let first = seq_from(row.try_get(0).map_err(io)?)?;
    let last = seq_from(row.try_get(1).map_err(io)?)?;
    let batch: Vec<u8> = row.try_get(2).map_err(io)?;
    let payloads = decode_batch(Bytes::from(batch))?;
    if first_seq(last, payloads.len() as u64)? != first {
        return Err(corrupt(
            "a batch row whose message count does not match its sequence numbers",
        ));
    }
    Ok((first, last, payloads))
}

/// Creates the schema and applies the migrations it lacks, under a
/// transaction-level advisory lock so that concurrent openers take turns.
async fn migrate(client: &mut Client, schema: &str) -> Result<(), StorageError> {
    let s = format!("\"{schema}\"");
    let txn = client.transaction().await.map_err(io)?;
    txn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 1541))",
        &[&format!("msg-reliable migrate {schema}")],
    )
    .await
    .map_err(io)?;
    txn.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.msg_reliable_migrations (
             version integer PRIMARY KEY,
             description text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(io)?;
    let current: i32 = txn
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {s}.msg_reliable_migrations"),
            &[],
        )
        .await
        .map_err(io)?
        .try_get(0)
        .map_err(io)?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(StorageError::new(
            StorageErrorKind::Other,
            format!(
                "schema {schema} is at version {current}, newer than this msg-reliable \
                 knows ({latest}); upgrade msg-reliable"
            ),
        ));
    }
    for (version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        txn.batch_execute(&sql.replace("{s}", &s))
            .await
            .map_err(io)?;
        txn.execute(
            &format!(
                "INSERT INTO {s}.msg_reliable_migrations (version, description) VALUES ($1, $2)"
            ),
            &[version, description],
        )
        .await
        .map_err(io)?;
        tracing::info!(
            schema,
            version,
            description,
            "reliable store: schema migrated"
        );
    }
    txn.commit().await.map_err(io)
}

/// Who holds an identity, for the error a waiting opener gets.
fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".into());
    format!("process {} on {host}", std::process::id())
}

/// A sequence number as the database stores it.
fn seq_to(seq: u64) -> Result<i64, StorageError> {
    i64::try_from(seq).map_err(|_| {
        StorageError::new(
            StorageErrorKind::Io,
            "a sequence number beyond 2^63 cannot be stored",
        )
    })
}

/// A sequence number read from the database.
fn seq_from(seq: i64) -> Result<u64, StorageError> {
    u64::try_from(seq).map_err(|_| corrupt("a negative sequence number"))
}

fn io(e: impl Into<Box<dyn StdError + Send + Sync>>) -> StorageError {
    StorageError::new(StorageErrorKind::Io, e)
}

fn fenced() -> StorageError {
    StorageError::from_kind(StorageErrorKind::Fenced)
}

fn poisoned() -> StorageError {
    StorageError::new(
        StorageErrorKind::Io,
        "the store stopped after the connection broke during a commit whose outcome \
         or answers could not be learned; reopen the store",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn peer(name: &str) -> PeerId {
        name.parse().unwrap()
    }

    fn append(to: &str, sizes: &[usize]) -> Write {
        Write::Append {
            peer: peer(to),
            payloads: sizes.iter().map(|&n| Bytes::from(vec![7; n])).collect(),
            reply: oneshot::channel().0,
        }
    }

    fn ack_out(to: &str, up_to: u64) -> Write {
        Write::AckOutgoing {
            peer: peer(to),
            up_to,
            reply: oneshot::channel().0,
        }
    }

    fn ack_in(from: &str, seqs: &[u64]) -> Write {
        Write::AckIncoming {
            peer: peer(from),
            seqs: seqs.to_vec(),
            reply: oneshot::channel().0,
        }
    }

    fn store(from: &str, first: u64) -> Write {
        Write::StoreIncoming {
            peer: peer(from),
            batch: StoreBatch::new(first, vec![Bytes::from_static(b"x")], true),
            reply: oneshot::channel().0,
        }
    }

    fn at(op: usize, offset: u64) -> Route {
        Route { op, offset }
    }

    #[test]
    fn appends_to_one_peer_share_a_row_numbered_in_order() {
        let writes = [
            append("a", &[1, 1]),
            append("b", &[1]),
            append("a", &[1]),
            append("a", &[1, 1, 1]),
        ];
        let (ops, routes) = plan(&writes);
        assert_eq!(routes, [at(0, 0), at(1, 0), at(0, 2), at(0, 3)]);
        assert_eq!(ops.len(), 2);
        let Ok(Op::Append { n, batch, .. }) = &ops[0] else {
            panic!("the first statement is a's append");
        };
        assert_eq!(*n, 6);
        assert_eq!(decode_batch(Bytes::from(batch.clone())).unwrap().len(), 6);
        // The row's first number is 10: each write gets its own first.
        let outcomes = route(&[Ok(10), Ok(40)], &routes);
        let firsts: Vec<u64> = outcomes.into_iter().map(Result::unwrap).collect();
        assert_eq!(firsts, [10, 40, 12, 13]);
    }

    #[test]
    fn a_full_row_or_an_empty_append_starts_a_new_row() {
        let big = MERGED_ROW / 2 + 1;
        let writes = [
            append("a", &[big]),
            append("a", &[big]),
            append("a", &[1]),
            append("a", &[]),
            append("a", &[1]),
        ];
        let (ops, routes) = plan(&writes);
        // The second does not fit with the first and starts the row that
        // the third joins; the empty append stands alone and closes that
        // row, so the last append's number comes after the one it reported.
        assert_eq!(routes, [at(0, 0), at(1, 0), at(1, 1), at(2, 0), at(3, 0)]);
        assert!(matches!(ops[2], Ok(Op::AppendEmpty { .. })));
        assert_eq!(ops.len(), 4);
    }

    #[test]
    fn acknowledgements_merge_per_peer() {
        let writes = [
            ack_out("a", 5),
            ack_in("a", &[1, 2]),
            ack_out("a", 9),
            ack_out("a", 7),
            ack_in("a", &[3]),
            ack_out("b", 2),
        ];
        let (ops, routes) = plan(&writes);
        assert_eq!(
            routes,
            [at(0, 0), at(1, 0), at(0, 0), at(0, 0), at(1, 0), at(2, 0)]
        );
        assert!(matches!(ops[0], Ok(Op::AckOutgoing { up_to: 9, .. })));
        let Ok(Op::AckIncoming { seqs, .. }) = &ops[1] else {
            panic!("the second statement is a's application acks");
        };
        assert_eq!(seqs, &[1, 2, 3]);
        assert!(matches!(ops[2], Ok(Op::AckOutgoing { up_to: 2, .. })));
    }

    #[test]
    fn a_stored_batch_ends_the_merge_of_application_acks() {
        let writes = [ack_in("a", &[1]), store("a", 2), ack_in("a", &[2])];
        let (ops, routes) = plan(&writes);
        assert_eq!(routes, [at(0, 0), at(1, 0), at(2, 0)]);
        assert!(matches!(ops[1], Ok(Op::Store { first: 2, .. })));
    }

    #[test]
    fn a_failed_statement_fails_every_write_merged_into_it() {
        let writes = [append("a", &[1]), append("a", &[1]), ack_out("a", 1)];
        let (_, routes) = plan(&writes);
        let e = StorageError::from_kind(StorageErrorKind::Conflict);
        let outcomes = route(&[Err(e), Ok(0)], &routes);
        let kinds: Vec<_> = outcomes
            .iter()
            .map(|o| o.as_ref().err().map(|e| e.kind()))
            .collect();
        assert_eq!(
            kinds,
            [
                Some(StorageErrorKind::Conflict),
                Some(StorageErrorKind::Conflict),
                None
            ]
        );
    }
}
