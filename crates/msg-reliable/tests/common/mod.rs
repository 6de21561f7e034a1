//! The `Backend` contract, checked the same way for every backend, and a
//! backend wrapper that injects storage failures.

#![allow(dead_code, unreachable_pub)]

use std::future::{Future, Ready, ready};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures::future::Either;
use msg_reliable::{
    Backend, IncomingState, MemoryBackend, OutgoingState, PeerId, StorageError, StorageErrorKind,
    StoreBatch,
};

pub fn peer(name: &str) -> PeerId {
    name.parse().unwrap()
}

pub fn msg(tag: &str, seq: u64) -> Bytes {
    Bytes::from(format!("{tag}{seq}"))
}

pub fn msgs(tag: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<Bytes> {
    seqs.map(|s| msg(tag, s)).collect()
}

fn numbered(tag: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, Bytes)> {
    seqs.map(|s| (s, msg(tag, s))).collect()
}

/// Appends get consecutive numbers per peer, starting at 1.
pub async fn append_assigns_consecutive_numbers_per_peer(b: &impl Backend) {
    let (x, y) = (peer("x"), peer("y"));
    assert_eq!(b.append_outgoing(&x, msgs("x", 1..=3)).await.unwrap(), 1);
    assert_eq!(b.append_outgoing(&x, msgs("x", 4..=5)).await.unwrap(), 4);
    assert_eq!(b.append_outgoing(&y, msgs("y", 1..=1)).await.unwrap(), 1);
    assert_eq!(
        b.append_outgoing(&y, vec![]).await.unwrap(),
        2,
        "empty: next number"
    );
    assert_eq!(
        b.load_outgoing(&x).await.unwrap(),
        OutgoingState {
            last_assigned: 5,
            unacked: numbered("x", 1..=5)
        }
    );
    assert_eq!(
        b.load_outgoing(&y).await.unwrap().unacked,
        numbered("y", 1..=1)
    );
    assert_eq!(
        b.load_outgoing(&peer("nobody")).await.unwrap(),
        OutgoingState::default()
    );
}

/// An ack deletes the prefix it covers and nothing else; numbering goes on.
pub async fn ack_outgoing_deletes_only_the_acked_prefix(b: &impl Backend) {
    let x = peer("x");
    b.append_outgoing(&x, msgs("x", 1..=5)).await.unwrap();
    b.append_outgoing(&peer("y"), msgs("y", 1..=2))
        .await
        .unwrap();
    b.ack_outgoing(&x, 3).await.unwrap();
    assert_eq!(
        b.load_outgoing(&x).await.unwrap().unacked,
        numbered("x", 4..=5)
    );
    b.ack_outgoing(&x, 2).await.unwrap(); // already gone: fine
    b.ack_outgoing(&x, 5).await.unwrap();
    assert_eq!(
        b.load_outgoing(&x).await.unwrap(),
        OutgoingState {
            last_assigned: 5,
            unacked: vec![]
        }
    );
    assert_eq!(b.append_outgoing(&x, msgs("x", 6..=6)).await.unwrap(), 6);
    assert_eq!(
        b.load_outgoing(&peer("y")).await.unwrap().unacked.len(),
        2,
        "other peers untouched"
    );
}

/// Storing a batch moves the watermark with it; a batch that does not
/// follow the watermark changes nothing.
pub async fn store_incoming_moves_the_watermark_with_the_messages(b: &impl Backend) {
    let x = peer("x");
    assert_eq!(b.accepted(&x).await.unwrap(), 0);
    b.store_incoming(&x, StoreBatch::new(1, msgs("m", 1..=3), true))
        .await
        .unwrap();
    assert_eq!(b.accepted(&x).await.unwrap(), 3);
    for first in [5, 3, 1] {
        let err = b
            .store_incoming(&x, StoreBatch::new(first, msgs("m", first..=first), true))
            .await
            .unwrap_err();
        assert!(err.is_conflict(), "first {first}: {err:?}");
    }
    assert_eq!(
        b.load_incoming(&x).await.unwrap(),
        IncomingState {
            accepted: 3,
            undelivered: numbered("m", 1..=3)
        },
        "conflicting batches stored nothing"
    );
    // Auto-ack batches store only the watermark.
    b.store_incoming(&x, StoreBatch::new(4, msgs("m", 4..=5), false))
        .await
        .unwrap();
    b.store_incoming(&x, StoreBatch::new(6, vec![], true))
        .await
        .unwrap();
    assert_eq!(
        b.load_incoming(&x).await.unwrap(),
        IncomingState {
            accepted: 5,
            undelivered: numbered("m", 1..=3)
        }
    );
}

/// Application acks delete those messages and keep the watermark.
pub async fn ack_incoming_deletes_only_those_messages(b: &impl Backend) {
    let x = peer("x");
    b.store_incoming(&x, StoreBatch::new(1, msgs("m", 1..=4), true))
        .await
        .unwrap();
    b.ack_incoming(&x, vec![1, 3, 99]).await.unwrap();
    assert_eq!(
        b.load_incoming(&x).await.unwrap(),
        IncomingState {
            accepted: 4,
            undelivered: vec![(2, msg("m", 2)), (4, msg("m", 4))]
        }
    );
}

/// `peers` lists every peer with state in either direction, once.
pub async fn peers_lists_both_directions(b: &impl Backend) {
    assert_eq!(b.peers().await.unwrap(), vec![]);
    b.append_outgoing(&peer("out"), msgs("o", 1..=1))
        .await
        .unwrap();
    b.store_incoming(&peer("in"), StoreBatch::new(1, msgs("i", 1..=1), true))
        .await
        .unwrap();
    b.append_outgoing(&peer("both"), msgs("o", 1..=1))
        .await
        .unwrap();
    b.store_incoming(&peer("both"), StoreBatch::new(1, msgs("i", 1..=1), true))
        .await
        .unwrap();
    assert_eq!(
        b.peers().await.unwrap(),
        vec![peer("both"), peer("in"), peer("out")]
    );
}

/// Peer ids are bytes, not strings: binary ids and ids that are prefixes of
/// each other stay apart.
pub async fn binary_and_prefix_peer_ids_stay_apart(b: &impl Backend) {
    let short = PeerId::new(vec![1u8]).unwrap();
    let long = PeerId::new(vec![1u8, 0]).unwrap();
    let max = PeerId::new(vec![0xffu8; PeerId::MAX_LEN]).unwrap();
    b.append_outgoing(&short, msgs("s", 1..=2)).await.unwrap();
    b.append_outgoing(&long, msgs("l", 1..=1)).await.unwrap();
    b.append_outgoing(&max, msgs("m", 1..=1)).await.unwrap();
    b.ack_outgoing(&short, 2).await.unwrap();
    assert_eq!(b.load_outgoing(&short).await.unwrap().unacked, vec![]);
    assert_eq!(
        b.load_outgoing(&long).await.unwrap().unacked,
        numbered("l", 1..=1)
    );
    assert_eq!(
        b.load_outgoing(&max).await.unwrap().unacked,
        numbered("m", 1..=1)
    );
}

/// `tasks` tasks append `per_task` messages each to peer `x`, at once:
/// every message gets its own number, the numbers are exactly 1..=N, and
/// each task's own messages are numbered in the order it sent them.
/// Returns N.
pub async fn concurrent_appends_are_numbered_once<B: Backend + Clone>(
    b: &B,
    tasks: u64,
    per_task: u64,
) -> u64 {
    let x = peer("x");
    let mut handles = Vec::new();
    for t in 0..tasks {
        let b = b.clone();
        let x = x.clone();
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..per_task {
                let payload = format!("{t}:{i}").into();
                seqs.push(b.append_outgoing(&x, vec![payload]).await.unwrap());
            }
            seqs
        }));
    }
    let mut all = std::collections::BTreeSet::new();
    for handle in handles {
        let seqs = handle.await.unwrap();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "per-task order");
        for s in seqs {
            assert!(all.insert(s), "sequence {s} assigned twice");
        }
    }
    let appends = tasks * per_task;
    assert_eq!(all, (1..=appends).collect());
    appends
}

/// The committer gathered `appends` concurrent appends into far fewer
/// transactions (group commit), by the backend's counters.
pub fn assert_group_committed(appends: u64, transactions: u64, requests: u64) {
    assert_eq!(requests, appends);
    // Typically ~40 appends per transaction; demand at least 4 so a
    // committer that stopped gathering fails, without flaking on a busy box.
    assert!(
        transactions * 4 <= appends,
        "no batching: {transactions} transactions for {appends} appends"
    );
    eprintln!("group commit: {appends} appends in {transactions} transactions");
}

/// Writes of every kind, for `peers` peers at once, share transactions,
/// and a conflicting incoming batch fails alone without failing the others
/// in its transaction.
pub async fn mixed_concurrent_writes_fail_only_on_their_own_conflict<B: Backend + Clone>(
    b: &B,
    peers: u64,
    rounds: u64,
) {
    let mut tasks = Vec::new();
    for t in 0..peers {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            let p = peer(&format!("p{t}"));
            for round in 0..rounds {
                let first = b.append_outgoing(&p, msgs("o", 1..=3)).await.unwrap();
                assert_eq!(first, round * 3 + 1);
                b.ack_outgoing(&p, first).await.unwrap();
                let batch = StoreBatch::new(round * 2 + 1, msgs("i", 1..=2), true);
                b.store_incoming(&p, batch).await.unwrap();
                // A stale batch (a bug in a caller) conflicts, alone.
                let stale = StoreBatch::new(round * 2 + 1, msgs("i", 1..=2), true);
                let err = b.store_incoming(&p, stale).await.unwrap_err();
                assert!(err.is_conflict());
                b.ack_incoming(&p, vec![round * 2 + 1]).await.unwrap();
            }
            let out = b.load_outgoing(&p).await.unwrap();
            assert_eq!(out.last_assigned, rounds * 3);
            // Acks are cumulative: the last one covered every earlier round.
            assert_eq!(
                out.unacked.iter().map(|m| m.0).collect::<Vec<_>>(),
                [rounds * 3 - 1, rounds * 3]
            );
            let inc = b.load_incoming(&p).await.unwrap();
            assert_eq!(inc.accepted, rounds * 2);
            assert_eq!(inc.undelivered.len() as u64, rounds);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(b.peers().await.unwrap().len() as u64, peers);
}

/// A [`Backend`] wrapper that fails operations on demand, for tests that
/// storage failures surface and lose nothing.
///
/// A failed operation never reaches the wrapped backend, so it changes
/// nothing there. Failures are `StorageErrorKind::Other` errors whose
/// cause is [`INJECTED`] (see [`is_injected`]). Clones share the wrapped
/// backend (when it shares its state, as `MemoryBackend` does) and the
/// fault settings, so a test keeps a clone to fail the store a socket uses.
#[derive(Clone, Debug, Default)]
pub struct FailingBackend<B = MemoryBackend> {
    inner: B,
    faults: Arc<Mutex<Faults>>,
}

#[derive(Debug, Default)]
struct Faults {
    fail_next: u64,
    failing: bool,
    injected: u64,
}

/// The cause of every failure a [`FailingBackend`] injects.
pub const INJECTED: &str = "injected storage failure";

/// Whether `error` was injected by a [`FailingBackend`].
pub fn is_injected(error: &StorageError) -> bool {
    error.kind() == StorageErrorKind::Other
        && std::error::Error::source(error).is_some_and(|s| s.to_string() == INJECTED)
}

impl<B: Backend> FailingBackend<B> {
    /// Wraps `inner`, failing nothing yet.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            faults: Arc::default(),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Makes the next `n` operations (of any kind) fail.
    pub fn fail_next(&self, n: u64) {
        self.faults().fail_next = n;
    }

    /// While `on`, every operation fails (a disk that stays full).
    pub fn set_failing(&self, on: bool) {
        self.faults().failing = on;
    }

    /// Operations failed so far.
    pub fn injected_failures(&self) -> u64 {
        self.faults().injected
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `op` on the wrapped backend, unless a failure is due: then the
    /// wrapped backend is not called at all.
    fn run<'a, T, F>(
        &'a self,
        op: impl FnOnce(&'a B) -> F,
    ) -> Either<Ready<Result<T, StorageError>>, F>
    where
        F: Future<Output = Result<T, StorageError>>,
    {
        let mut faults = self.faults();
        if faults.failing || faults.fail_next > 0 {
            faults.fail_next = faults.fail_next.saturating_sub(1);
            faults.injected += 1;
            return Either::Left(ready(Err(StorageError::new(
                StorageErrorKind::Other,
                INJECTED,
            ))));
        }
        drop(faults);
        Either::Right(op(&self.inner))
    }
}

impl<B: Backend> Backend for FailingBackend<B> {
    fn append_outgoing(
        &self,
        peer: &PeerId,
        payloads: Vec<Bytes>,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send {
        self.run(|b| b.append_outgoing(peer, payloads))
    }

    fn ack_outgoing(
        &self,
        peer: &PeerId,
        up_to: u64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        self.run(|b| b.ack_outgoing(peer, up_to))
    }

    fn load_outgoing(
        &self,
        peer: &PeerId,
    ) -> impl Future<Output = Result<OutgoingState, StorageError>> + Send {
        self.run(|b| b.load_outgoing(peer))
    }

    fn store_incoming(
        &self,
        peer: &PeerId,
        batch: StoreBatch,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        self.run(|b| b.store_incoming(peer, batch))
    }

    fn ack_incoming(
        &self,
        peer: &PeerId,
        seqs: Vec<u64>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        self.run(|b| b.ack_incoming(peer, seqs))
    }

    fn load_incoming(
        &self,
        peer: &PeerId,
    ) -> impl Future<Output = Result<IncomingState, StorageError>> + Send {
        self.run(|b| b.load_incoming(peer))
    }

    fn accepted(&self, peer: &PeerId) -> impl Future<Output = Result<u64, StorageError>> + Send {
        self.run(|b| b.accepted(peer))
    }

    fn peers(&self) -> impl Future<Output = Result<Vec<PeerId>, StorageError>> + Send {
        self.run(|b| b.peers())
    }
}
