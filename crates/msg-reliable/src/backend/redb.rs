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
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use redb::{Database, DatabaseError, Durability, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::backend::batch::{batch_count, corrupt, decode_batch, encode_batch, first_seq};
use crate::backend::queue::{
    Counters, Group, Outcome, Queue, Read, Request, Write, backend_over_queue, closed, fail_all,
};
use crate::error::{StorageError, StorageErrorKind};
use crate::peer::PeerId;
use crate::proto::{IncomingState, OutgoingState};

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

/// A durable [`Backend`](crate::Backend) in one [redb](https://docs.rs/redb) file, with
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
    inner: Arc<Queue>,
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
        let (queue, rx, counters) = Queue::new(QUEUE);
        let (ready_tx, ready_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("msg-reliable-redb".into())
            .spawn(move || committer(path, rx, ready_tx, counters))
            .map_err(io)?;
        ready_rx.await.map_err(|_| closed())??;
        Ok(Self {
            inner: Arc::new(queue),
        })
    }

    /// Closes the store and waits until the file is released: requests
    /// already being committed finish, later ones (from clones) fail with
    /// [`StorageErrorKind::Closed`]. Returns at once if it is already
    /// closed.
    pub async fn close(&self) {
        self.inner.close().await;
    }

    /// Counters since the store was opened.
    pub fn stats(&self) -> RedbStats {
        let (write_transactions, write_requests) = self.inner.counters.get();
        RedbStats {
            write_transactions,
            write_requests,
        }
    }

    fn queue(&self) -> &Queue {
        &self.inner
    }
}

backend_over_queue!(RedbBackend);

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

    let mut group = Group::default();
    // `blocking_recv` returns None once every `RedbBackend` clone is gone.
    while group.closing.is_empty() {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        group.gather(first, &mut rx, MAX_BATCH);
        if !group.writes.is_empty() {
            commit_batch(&db, &mut group.writes, &counters);
        }
        // Reads run after the writes gathered with them, so a caller that
        // awaited its write sees it.
        for read in group.reads.drain(..) {
            answer_read(&db, read);
        }
    }

    // Refuse what raced with the close, then release the file before
    // telling the closer.
    group.refuse_rest(&mut rx);
    drop(db);
    tracing::debug!(path = %path.display(), "reliable store closed");
    group.closed();
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

/// Applies `writes` in one transaction and answers them all after the
/// commit. A write whose own precondition fails (a conflicting incoming
/// batch) is answered with that error and changes nothing; any other error
/// aborts the transaction and fails every write in it.
fn commit_batch(db: &Database, writes: &mut Vec<Write>, counters: &Counters) {
    let result = (|| -> Result<Vec<Outcome>, StorageError> {
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
            counters.committed(writes.len());
            for (w, outcome) in writes.drain(..).zip(outcomes) {
                w.answer(outcome);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, source = ?e.source(), writes = writes.len(), "reliable store commit failed");
            fail_all(writes, e);
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
    fn apply(&mut self, w: &Write) -> Result<Outcome, StorageError> {
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
