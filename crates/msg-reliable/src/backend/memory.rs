//! The in-memory backend.

use std::collections::{BTreeMap, VecDeque};
use std::future::{Future, ready};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::backend::Backend;
use crate::error::{StorageError, StorageErrorKind};
use crate::peer::PeerId;
use crate::proto::{IncomingState, OutgoingState, StoreBatch};

/// A [`Backend`] that keeps everything in memory.
///
/// Nothing survives the process, but clones share one store, so a test can
/// drop a reliable socket and start a new one on a clone to model a
/// restart with intact storage. Operations complete at once (the work is
/// done when the method is called, under a short-held lock).
///
/// ```
/// use msg_reliable::{Backend, MemoryBackend, PeerId};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryBackend::new();
/// let peer: PeerId = "b".parse().unwrap();
/// assert_eq!(store.append_outgoing(&peer, vec!["x".into()]).await.unwrap(), 1);
/// assert_eq!(store.clone().append_outgoing(&peer, vec!["y".into()]).await.unwrap(), 2);
/// assert_eq!(store.operations(), 2);
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryBackend {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    peers: BTreeMap<PeerId, PeerStore>,
    operations: u64,
}

#[derive(Debug, Default)]
struct PeerStore {
    last_assigned: u64,
    /// Unacknowledged outgoing; the last has sequence `last_assigned`.
    outgoing: VecDeque<Bytes>,
    accepted: u64,
    incoming: BTreeMap<u64, Bytes>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Operations that succeeded so far, over every clone: how many
    /// storage writes and reads the reliable layer made, for tests of its
    /// batching.
    pub fn operations(&self) -> u64 {
        self.lock().operations
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock cannot leave the state
        // half-changed: every operation checks before it mutates.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one operation under the lock, counting it if it succeeds.
    fn op<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<PeerId, PeerStore>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut state = self.lock();
        let out = f(&mut state.peers)?;
        state.operations += 1;
        Ok(out)
    }
}

impl Backend for MemoryBackend {
    fn append_outgoing(
        &self,
        peer: &PeerId,
        payloads: Vec<Bytes>,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send {
        ready(self.op(|peers| {
            let store = peers.entry(peer.clone()).or_default();
            let first = store.last_assigned + 1;
            store.last_assigned += payloads.len() as u64;
            store.outgoing.extend(payloads);
            Ok(first)
        }))
    }

    fn ack_outgoing(
        &self,
        peer: &PeerId,
        up_to: u64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        ready(self.op(|peers| {
            if let Some(store) = peers.get_mut(peer) {
                let first = store.last_assigned + 1 - store.outgoing.len() as u64;
                let n = up_to.saturating_add(1).saturating_sub(first);
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                store.outgoing.drain(..n.min(store.outgoing.len()));
            }
            Ok(())
        }))
    }

    fn load_outgoing(
        &self,
        peer: &PeerId,
    ) -> impl Future<Output = Result<OutgoingState, StorageError>> + Send {
        ready(self.op(|peers| {
            Ok(peers.get(peer).map_or_else(OutgoingState::default, |s| {
                let first = s.last_assigned + 1 - s.outgoing.len() as u64;
                OutgoingState {
                    last_assigned: s.last_assigned,
                    unacked: (first..).zip(s.outgoing.iter().cloned()).collect(),
                }
            }))
        }))
    }

    fn store_incoming(
        &self,
        peer: &PeerId,
        batch: StoreBatch,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        ready(self.op(|peers| {
            if batch.is_empty() {
                return Ok(());
            }
            let store = peers.entry(peer.clone()).or_default();
            if batch.first_seq() != store.accepted + 1 {
                return Err(StorageError::from_kind(StorageErrorKind::Conflict));
            }
            if batch.persist_payloads() {
                for (seq, payload) in batch.iter() {
                    store.incoming.insert(seq, payload.clone());
                }
            }
            store.accepted = batch.last_seq();
            Ok(())
        }))
    }

    fn ack_incoming(
        &self,
        peer: &PeerId,
        seqs: Vec<u64>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        ready(self.op(|peers| {
            if let Some(store) = peers.get_mut(peer) {
                for seq in seqs {
                    store.incoming.remove(&seq);
                }
            }
            Ok(())
        }))
    }

    fn load_incoming(
        &self,
        peer: &PeerId,
    ) -> impl Future<Output = Result<IncomingState, StorageError>> + Send {
        ready(self.op(|peers| {
            Ok(peers
                .get(peer)
                .map_or_else(IncomingState::default, |s| IncomingState {
                    accepted: s.accepted,
                    undelivered: s.incoming.iter().map(|(k, v)| (*k, v.clone())).collect(),
                }))
        }))
    }

    fn accepted(&self, peer: &PeerId) -> impl Future<Output = Result<u64, StorageError>> + Send {
        ready(self.op(|peers| Ok(peers.get(peer).map_or(0, |s| s.accepted))))
    }

    fn peers(&self) -> impl Future<Output = Result<Vec<PeerId>, StorageError>> + Send {
        ready(self.op(|peers| Ok(peers.keys().cloned().collect())))
    }
}
