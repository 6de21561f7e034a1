//! The durable backend: one redb file, written by a group-committing thread.
//!
//! Every operation becomes a request on a bounded queue to one committer
//! thread, which owns the database. The thread takes the first waiting
//! request, then everything else that is already queued (up to
//! [`MAX_BATCH`]), applies all writes in ONE write transaction, commits it
//! with [`Durability::Immediate`] (one fsync), and only then answers every
//! caller. While it syncs, new requests pile up in the queue and become the
//! next batch: the more concurrent senders, the more each sync carries
//! (group commit), with no timer and no added latency for a lone sender.
//!
//! A dedicated thread rather than `spawn_blocking` per operation: redb
//! allows one write transaction at a time anyway, a thread that owns the
//! database is the natural place to batch, and it keeps blocking file I/O
//! off the async workers.
//!
//! Layout. Messages are stored a write at a time, not one by one: an append
//! of 64 messages is one row, and so is an incoming batch, keyed by the
//! last sequence number in it. B-tree work per message is what bounded
//! throughput when every message was a row of its own (an insert and a
//! delete on each side). Keys sort by peer, then sequence number, so a
//! peer's rows are one contiguous range and deleting acknowledged rows is
//! one range removal.
//!
//! ```text
//! outgoing_batches        (peer, last seq) -> batch   unacknowledged outbox
//! outgoing_last_assigned  peer        -> seq          numbering continues
//! outgoing_acked          peer        -> seq          cumulative ack: hides the
//!                                                     acked head of a batch
//! incoming_batches        (peer, last seq) -> batch   accepted, not all app-acked
//! incoming_acked          (peer, last seq) -> bitmap  which of a batch's
//!                                                     messages the app acked
//! incoming_accepted       peer        -> seq          acceptance watermark
//! ```
//!
//! A batch is `count: u32 LE`, then per message `len: u32 LE` and its
//! bytes; its first sequence number is `last - count + 1`. A batch row is
//! deleted once all of its messages are acknowledged (outgoing: by the
//! peer's cumulative ack; incoming: by the application, bit by bit).

use std::collections::BTreeSet;
use std::error::Error as StdError;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use redb::{Database, DatabaseError, Durability, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::backend::Backend;
use crate::backend::batch::{batch_count, corrupt, decode_batch, encode_batch, first_seq};
use crate::error::{StorageError, StorageErrorKind};
use crate::peer::PeerId;
use crate::proto::{IncomingState, OutgoingState, StoreBatch};

const OUTGOING: TableDefinition<'_, (&[u8], u64), &[u8]> = TableDefinition::new("outgoing_batches");
const LAST_ASSIGNED: TableDefinition<'_, &[u8], u64> =
    TableDefinition::new("outgoing_last_assigned");
const OUTGOING_ACKED: TableDefinition<'_, &[u8], u64> = TableDefinition::new("outgoing_acked");
const INCOMING: TableDefinition<'_, (&[u8], u64), &[u8]> = TableDefinition::new("incoming_batches");
const INCOMING_ACKED: TableDefinition<'_, (&[u8], u64), &[u8]> =
    TableDefinition::new("incoming_acked");
const ACCEPTED: TableDefinition<'_, &[u8], u64> = TableDefinition::new("incoming_accepted");

/// Most requests applied in one transaction; bounds the size of a commit
/// and how long the first request in it waits.
const MAX_BATCH: usize = 4096;

/// Requests that may wait for the committer; callers beyond it wait for
/// room (backpressure), they are not refused.
const QUEUE: usize = 8192;

/// A durable [`Backend`] in one [redb](https://docs.rs/redb) file, with
/// group commit.
///
/// A write completes only after its transaction is committed with an fsync
/// (`Durability::Immediate`), so what it stored survives a crash of the
/// process or the machine. Concurrent writes (from many senders, peers and
/// both directions) are gathered into one transaction and one sync; see
/// [`stats`](Self::stats).
///
/// The file has one owner: opening it while another process (or another
/// `RedbBackend` in this one) has it open fails with
/// [`StorageErrorKind::AlreadyOpen`]. Clones share the same database.
/// Dropping the last clone closes it in the background; use
/// [`close`](Self::close) to wait until the file is released.
///
/// ```no_run
/// use msg_reliable::{Backend, PeerId, RedbBackend};
/// # async fn demo() -> Result<(), msg_reliable::StorageError> {
/// let store = RedbBackend::open("/var/lib/app/reliable.redb").await?;
/// let peer: PeerId = "b".parse().unwrap();
/// let seq = store.append_outgoing(&peer, vec!["hello".into()]).await?;
/// // `seq` is now on disk.
/// store.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RedbBackend {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    tx: mpsc::Sender<Request>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    write_transactions: AtomicU64,
    write_requests: AtomicU64,
}

/// Counters of a [`RedbBackend`], to see group commit at work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedbStats {
    /// Write transactions committed (one fsync each).
    pub write_transactions: u64,
    /// Write requests (appends, acks, stores) those transactions carried.
    pub write_requests: u64,
}

type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

#[derive(Debug)]
enum Request {
    Write(Write),
    Read(Read),
    Close(oneshot::Sender<()>),
}

#[derive(Debug)]
enum Write {
    Append {
        peer: PeerId,
        payloads: Vec<Bytes>,
        reply: Reply<u64>,
    },
    AckOutgoing {
        peer: PeerId,
        up_to: u64,
        reply: Reply<()>,
    },
    StoreIncoming {
        peer: PeerId,
        batch: StoreBatch,
        reply: Reply<()>,
    },
    AckIncoming {
        peer: PeerId,
        seqs: Vec<u64>,
        reply: Reply<()>,
    },
}

#[derive(Debug)]
enum Read {
    LoadOutgoing {
        peer: PeerId,
        reply: Reply<OutgoingState>,
    },
    LoadIncoming {
        peer: PeerId,
        reply: Reply<IncomingState>,
    },
    Accepted {
        peer: PeerId,
        reply: Reply<u64>,
    },
    Peers {
        reply: Reply<Vec<PeerId>>,
    },
}

impl RedbBackend {
    /// Opens (or creates) the store at `path`.
    ///
    /// Starts the committer thread, which opens the file, so the async
    /// caller never blocks on file I/O.
    ///
    /// # Errors
    ///
    /// [`StorageErrorKind::AlreadyOpen`] if the file is open elsewhere,
    /// [`StorageErrorKind::Io`] if it cannot be opened or created (or is not
    /// a redb file).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref().to_path_buf();
        let (tx, rx) = mpsc::channel(QUEUE);
        let (ready_tx, ready_rx) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        std::thread::Builder::new()
            .name("msg-reliable-redb".into())
            .spawn(move || committer(path, rx, ready_tx, thread_counters))
            .map_err(io)?;
        ready_rx.await.map_err(|_| closed())??;
        Ok(Self {
            inner: Arc::new(Shared { tx, counters }),
        })
    }

    /// Closes the store and waits until the file is released: requests
    /// already being committed finish, later ones (from clones) fail with
    /// [`StorageErrorKind::Closed`]. Returns at once if it is already
    /// closed.
    pub async fn close(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.inner.tx.send(Request::Close(done_tx)).await.is_ok() {
            let _ = done_rx.await;
        }
    }

    /// Counters since the store was opened.
    pub fn stats(&self) -> RedbStats {
        RedbStats {
            write_transactions: self
                .inner
                .counters
                .write_transactions
                .load(Ordering::Relaxed),
            write_requests: self.inner.counters.write_requests.load(Ordering::Relaxed),
        }
    }

    /// Queues `req` and waits for its answer.
    async fn call<T>(
        &self,
        req: Request,
        answer: oneshot::Receiver<Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        self.inner.tx.send(req).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

impl Backend for RedbBackend {
    fn append_outgoing(
        &self,
        peer: &PeerId,
        payloads: Vec<Bytes>,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        self.call(
            Request::Write(Write::Append {
                peer,
                payloads,
                reply,
            }),
            answer,
        )
    }

    fn ack_outgoing(
        &self,
        peer: &PeerId,
        up_to: u64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        self.call(
            Request::Write(Write::AckOutgoing { peer, up_to, reply }),
            answer,
        )
    }

    fn load_outgoing(
        &self,
        peer: &PeerId,
    ) -> impl Future<Output = Result<OutgoingState, StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        self.call(Request::Read(Read::LoadOutgoing { peer, reply }), answer)
    }

    fn store_incoming(
        &self,
        peer: &PeerId,
        batch: StoreBatch,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        self.call(
            Request::Write(Write::StoreIncoming { peer, batch, reply }),
            answer,
        )
    }

    fn ack_incoming(
        &self,
        peer: &PeerId,
        seqs: Vec<u64>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        self.call(
            Request::Write(Write::AckIncoming { peer, seqs, reply }),
            answer,
        )
    }

    fn load_incoming(
        &self,
        peer: &PeerId,
    ) -> impl Future<Output = Result<IncomingState, StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        self.call(Request::Read(Read::LoadIncoming { peer, reply }), answer)
    }

    fn accepted(&self, peer: &PeerId) -> impl Future<Output = Result<u64, StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        self.call(Request::Read(Read::Accepted { peer, reply }), answer)
    }

    fn peers(&self) -> impl Future<Output = Result<Vec<PeerId>, StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        self.call(Request::Read(Read::Peers { reply }), answer)
    }
}

// ---------------------------------------------------------------------------
// The committer thread.

fn committer(
    path: PathBuf,
    mut rx: mpsc::Receiver<Request>,
    ready: oneshot::Sender<Result<(), StorageError>>,
    counters: Arc<Counters>,
) {
    let db = match open_database(&path) {
        Ok(db) => db,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        // The opener went away; nobody can reach this database.
        return;
    }
    tracing::debug!(path = %path.display(), "reliable store open");

    let mut closing = Vec::new();
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    // `blocking_recv` returns None once every `RedbBackend` clone is gone.
    while closing.is_empty() {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        // Gather whatever else is already waiting: that is the group in
        // group commit. Nothing waits for more to arrive.
        let mut next = Some(first);
        while let Some(req) = next.take() {
            match req {
                Request::Write(w) => writes.push(w),
                Request::Read(r) => reads.push(r),
                Request::Close(done) => closing.push(done),
            }
            if writes.len() + reads.len() >= MAX_BATCH || !closing.is_empty() {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !writes.is_empty() {
            commit_batch(&db, &mut writes, &counters);
        }
        // Reads run after the writes gathered with them, so a caller that
        // awaited its write sees it.
        for read in reads.drain(..) {
            answer_read(&db, read);
        }
    }

    // Refuse what raced with the close, then release the file before
    // telling the closer.
    rx.close();
    while let Ok(req) = rx.try_recv() {
        match req {
            Request::Write(w) => w.answer_err(closed()),
            Request::Read(r) => r.answer_err(closed()),
            Request::Close(done) => closing.push(done),
        }
    }
    drop(db);
    tracing::debug!(path = %path.display(), "reliable store closed");
    for done in closing {
        let _ = done.send(());
    }
}

fn open_database(path: &Path) -> Result<Database, StorageError> {
    let db = Database::create(path).map_err(|e| match e {
        DatabaseError::DatabaseAlreadyOpen => StorageError::new(StorageErrorKind::AlreadyOpen, e),
        e => io(e),
    })?;
    // Create the tables once, so readers never meet a missing one.
    let txn = db.begin_write().map_err(io)?;
    txn.open_table(OUTGOING).map_err(io)?;
    txn.open_table(LAST_ASSIGNED).map_err(io)?;
    txn.open_table(OUTGOING_ACKED).map_err(io)?;
    txn.open_table(INCOMING).map_err(io)?;
    txn.open_table(INCOMING_ACKED).map_err(io)?;
    txn.open_table(ACCEPTED).map_err(io)?;
    txn.commit().map_err(io)?;
    Ok(db)
}

/// What a write produced, before its transaction committed: the first
/// assigned sequence number for an append, 0 for the other writes.
type Outcome = u64;

/// Applies `writes` in one transaction and answers them all after the
/// commit. A write whose own precondition fails (a conflicting incoming
/// batch) is answered with that error and changes nothing; any other error
/// aborts the transaction and fails every write in it.
fn commit_batch(db: &Database, writes: &mut Vec<Write>, counters: &Counters) {
    let result = (|| -> Result<Vec<Result<Outcome, StorageError>>, StorageError> {
        let mut txn = db.begin_write().map_err(io)?;
        txn.set_durability(Durability::Immediate);
        let outcomes = {
            let mut tables = Tables {
                outgoing: txn.open_table(OUTGOING).map_err(io)?,
                last_assigned: txn.open_table(LAST_ASSIGNED).map_err(io)?,
                outgoing_acked: txn.open_table(OUTGOING_ACKED).map_err(io)?,
                incoming: txn.open_table(INCOMING).map_err(io)?,
                incoming_acked: txn.open_table(INCOMING_ACKED).map_err(io)?,
                accepted: txn.open_table(ACCEPTED).map_err(io)?,
            };
            writes
                .iter()
                .map(|w| tables.apply(w))
                .collect::<Result<Vec<_>, _>>()?
        };
        txn.commit().map_err(io)?;
        Ok(outcomes)
    })();
    match result {
        Ok(outcomes) => {
            counters.write_transactions.fetch_add(1, Ordering::Relaxed);
            counters
                .write_requests
                .fetch_add(writes.len() as u64, Ordering::Relaxed);
            for (w, outcome) in writes.drain(..).zip(outcomes) {
                w.answer(outcome);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, source = ?e.source(), writes = writes.len(), "reliable store commit failed");
            for w in writes.drain(..) {
                w.answer_err(e.clone());
            }
        }
    }
}

struct Tables<'txn> {
    outgoing: redb::Table<'txn, (&'static [u8], u64), &'static [u8]>,
    last_assigned: redb::Table<'txn, &'static [u8], u64>,
    outgoing_acked: redb::Table<'txn, &'static [u8], u64>,
    incoming: redb::Table<'txn, (&'static [u8], u64), &'static [u8]>,
    incoming_acked: redb::Table<'txn, (&'static [u8], u64), &'static [u8]>,
    accepted: redb::Table<'txn, &'static [u8], u64>,
}

impl Tables<'_> {
    /// Applies one write. The outer error aborts the whole transaction; the
    /// inner one is this write's own failure, checked before it changed
    /// anything.
    fn apply(&mut self, w: &Write) -> Result<Result<Outcome, StorageError>, StorageError> {
        match w {
            Write::Append { peer, payloads, .. } => {
                let p = peer.as_bytes();
                let last = self
                    .last_assigned
                    .get(p)
                    .map_err(io)?
                    .map_or(0, |g| g.value());
                if !payloads.is_empty() {
                    let new_last = last + payloads.len() as u64;
                    let batch = encode_batch(payloads)?;
                    self.outgoing
                        .insert((p, new_last), batch.as_slice())
                        .map_err(io)?;
                    self.last_assigned.insert(p, new_last).map_err(io)?;
                }
                Ok(Ok(last + 1))
            }
            Write::AckOutgoing { peer, up_to, .. } => {
                let p = peer.as_bytes();
                let acked = self
                    .outgoing_acked
                    .get(p)
                    .map_err(io)?
                    .map_or(0, |g| g.value());
                if *up_to > acked {
                    // Incremental: only the batches acknowledged to their
                    // last message are touched; one acknowledged in part
                    // stays, and the watermark hides its acked head.
                    self.outgoing
                        .retain_in((p, 0)..=(p, *up_to), |_, _| false)
                        .map_err(io)?;
                    self.outgoing_acked.insert(p, *up_to).map_err(io)?;
                }
                Ok(Ok(0))
            }
            Write::StoreIncoming { peer, batch, .. } => {
                if batch.is_empty() {
                    return Ok(Ok(0));
                }
                let p = peer.as_bytes();
                let accepted = self.accepted.get(p).map_err(io)?.map_or(0, |g| g.value());
                if batch.first_seq() != accepted + 1 {
                    return Ok(Err(StorageError::from_kind(StorageErrorKind::Conflict)));
                }
                if batch.persist_payloads() {
                    let encoded = encode_batch(batch.payloads())?;
                    self.incoming
                        .insert((p, batch.last_seq()), encoded.as_slice())
                        .map_err(io)?;
                }
                self.accepted.insert(p, batch.last_seq()).map_err(io)?;
                Ok(Ok(0))
            }
            Write::AckIncoming { peer, seqs, .. } => {
                let mut seqs = seqs.clone();
                seqs.sort_unstable();
                seqs.dedup();
                self.ack_incoming(peer.as_bytes(), &seqs)?;
                Ok(Ok(0))
            }
        }
    }
}

impl Tables<'_> {
    /// Marks `seqs` (sorted, distinct) from peer `p` as processed by the
    /// application, batch by batch, and deletes the batches that are then
    /// processed in full. Sequence numbers not stored are ignored.
    fn ack_incoming(&mut self, p: &[u8], seqs: &[u64]) -> Result<(), StorageError> {
        let mut rest = seqs;
        while let Some(&seq) = rest.first() {
            // The batch holding `seq` is the first one that ends at or
            // after it.
            let found = {
                let mut range = self.incoming.range((p, seq)..=(p, u64::MAX)).map_err(io)?;
                match range.next() {
                    Some(entry) => {
                        let (k, v) = entry.map_err(io)?;
                        Some((k.value().1, batch_count(v.value())?))
                    }
                    None => None,
                }
            };
            let Some((last, count)) = found else {
                break;
            };
            let first = first_seq(last, count)?;
            // Every sequence number up to `last` is in this batch, or in
            // none (already deleted, or never stored).
            let here = rest.partition_point(|&s| s <= last);
            let (mine, later) = rest.split_at(here);
            rest = later;
            let mine: Vec<u64> = mine.iter().copied().filter(|&s| s >= first).collect();
            if mine.is_empty() {
                continue;
            }
            let mut bits = self
                .incoming_acked
                .get((p, last))
                .map_err(io)?
                .map(|g| g.value().to_vec())
                .unwrap_or_else(|| vec![0; (count as usize).div_ceil(8)]);
            if bits.len() != (count as usize).div_ceil(8) {
                return Err(corrupt("an acknowledgement bitmap of the wrong size"));
            }
            for s in mine {
                let i = (s - first) as usize;
                bits[i / 8] |= 1 << (i % 8);
            }
            let done = bits.iter().map(|b| b.count_ones() as u64).sum::<u64>() == count;
            if done {
                self.incoming.remove((p, last)).map_err(io)?;
                self.incoming_acked.remove((p, last)).map_err(io)?;
            } else {
                self.incoming_acked
                    .insert((p, last), bits.as_slice())
                    .map_err(io)?;
            }
        }
        Ok(())
    }
}

impl Write {
    fn answer(self, outcome: Result<Outcome, StorageError>) {
        match (self, outcome) {
            (w, Err(e)) => w.answer_err(e),
            (Write::Append { reply, .. }, Ok(first)) => {
                let _ = reply.send(Ok(first));
            }
            (
                Write::AckOutgoing { reply, .. }
                | Write::StoreIncoming { reply, .. }
                | Write::AckIncoming { reply, .. },
                Ok(_),
            ) => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn answer_err(self, e: StorageError) {
        match self {
            Write::Append { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Write::AckOutgoing { reply, .. }
            | Write::StoreIncoming { reply, .. }
            | Write::AckIncoming { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

impl Read {
    fn answer_err(self, e: StorageError) {
        match self {
            Read::LoadOutgoing { reply, .. } => drop(reply.send(Err(e))),
            Read::LoadIncoming { reply, .. } => drop(reply.send(Err(e))),
            Read::Accepted { reply, .. } => drop(reply.send(Err(e))),
            Read::Peers { reply } => drop(reply.send(Err(e))),
        }
    }
}

fn answer_read(db: &Database, read: Read) {
    let txn = match db.begin_read() {
        Ok(txn) => txn,
        Err(e) => return read.answer_err(io(e)),
    };
    match read {
        Read::LoadOutgoing { peer, reply } => {
            let result = (|| {
                let p = peer.as_bytes();
                let last = txn.open_table(LAST_ASSIGNED).map_err(io)?;
                let last_assigned = last.get(p).map_err(io)?.map_or(0, |g| g.value());
                let acked = txn.open_table(OUTGOING_ACKED).map_err(io)?;
                let acked = acked.get(p).map_err(io)?.map_or(0, |g| g.value());
                let table = txn.open_table(OUTGOING).map_err(io)?;
                let mut unacked = Vec::new();
                for entry in table.range((p, 0)..=(p, u64::MAX)).map_err(io)? {
                    let (k, v) = entry.map_err(io)?;
                    let last = k.value().1;
                    let payloads = decode_batch(Bytes::copy_from_slice(v.value()))?;
                    let first = first_seq(last, payloads.len() as u64)?;
                    unacked.extend((first..).zip(payloads).filter(|(seq, _)| *seq > acked));
                }
                Ok(OutgoingState {
                    last_assigned,
                    unacked,
                })
            })();
            let _ = reply.send(result);
        }
        Read::LoadIncoming { peer, reply } => {
            let result = (|| {
                let p = peer.as_bytes();
                let acc = txn.open_table(ACCEPTED).map_err(io)?;
                let accepted = acc.get(p).map_err(io)?.map_or(0, |g| g.value());
                let table = txn.open_table(INCOMING).map_err(io)?;
                let bitmaps = txn.open_table(INCOMING_ACKED).map_err(io)?;
                let mut undelivered = Vec::new();
                for entry in table.range((p, 0)..=(p, u64::MAX)).map_err(io)? {
                    let (k, v) = entry.map_err(io)?;
                    let last = k.value().1;
                    let payloads = decode_batch(Bytes::copy_from_slice(v.value()))?;
                    let first = first_seq(last, payloads.len() as u64)?;
                    let bits = bitmaps
                        .get((p, last))
                        .map_err(io)?
                        .map(|g| g.value().to_vec())
                        .unwrap_or_default();
                    let acked = |i: usize| bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
                    undelivered.extend(
                        (first..)
                            .zip(payloads)
                            .enumerate()
                            .filter(|(i, _)| !acked(*i))
                            .map(|(_, m)| m),
                    );
                }
                Ok(IncomingState {
                    accepted,
                    undelivered,
                })
            })();
            let _ = reply.send(result);
        }
        Read::Accepted { peer, reply } => {
            let result = (|| {
                let acc = txn.open_table(ACCEPTED).map_err(io)?;
                Ok(acc
                    .get(peer.as_bytes())
                    .map_err(io)?
                    .map_or(0, |g| g.value()))
            })();
            let _ = reply.send(result);
        }
        Read::Peers { reply } => {
            let result = (|| {
                let mut peers = BTreeSet::new();
                for def in [LAST_ASSIGNED, ACCEPTED] {
                    let table = txn.open_table(def).map_err(io)?;
                    for entry in table.iter().map_err(io)? {
                        let (k, _) = entry.map_err(io)?;
                        let id = PeerId::new(Bytes::copy_from_slice(k.value())).map_err(|e| {
                            StorageError::new(StorageErrorKind::Corrupt, e.to_string())
                        })?;
                        peers.insert(id);
                    }
                }
                Ok(peers.into_iter().collect())
            })();
            let _ = reply.send(result);
        }
    }
}

fn io(e: impl Into<Box<dyn StdError + Send + Sync>>) -> StorageError {
    StorageError::new(StorageErrorKind::Io, e)
}

fn closed() -> StorageError {
    StorageError::from_kind(StorageErrorKind::Closed)
}
