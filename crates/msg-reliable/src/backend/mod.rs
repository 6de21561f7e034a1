//! Storage backends: the [`Backend`] trait, [`MemoryBackend`] and (with the
//! `redb` feature) [`RedbBackend`](crate::RedbBackend) and (with the
//! `postgres` feature) `PostgresBackend`.

use std::future::Future;

use bytes::Bytes;

use crate::error::StorageError;
use crate::peer::PeerId;
use crate::proto::{IncomingState, OutgoingState, StoreBatch};

#[cfg(any(feature = "redb", feature = "postgres"))]
mod batch;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "redb", feature = "postgres"))]
mod queue;
#[cfg(feature = "redb")]
mod redb;

pub use memory::MemoryBackend;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresBackend, PostgresOptions, PostgresStats};
#[cfg(feature = "redb")]
pub use redb::{RedbBackend, RedbStats};

/// Storage for the reliable layer: outboxes, acceptance watermarks and
/// undelivered incoming messages, per peer.
///
/// Every write is atomic (all or nothing) and, for a durable backend,
/// durable when its future completes with `Ok`. Each method covers many
/// messages, and a backend may merge concurrent calls into one write
/// (group commit), so concurrent senders share the cost of a sync. The
/// state changes by small steps (append, delete a prefix, store a batch),
/// never by rewriting it whole.
///
/// The methods return `impl Future + Send` rather than boxed futures: the
/// reliable driver is generic over its backend, so no call allocates a box
/// or pays for dynamic dispatch, and the `Send` bound lets the driver run
/// on any tokio worker. The price is that `Backend` is not object safe; put
/// a generic adapter in front if you need `dyn`.
///
/// Dropping a returned future does not undo an operation that the backend
/// already started: treat it as "may or may not have happened". A
/// successful result is a promise.
///
/// Sequence numbers are per (this side, peer) pair and direction, start at 1
/// and have no gaps.
pub trait Backend: Send + Sync + 'static {
    /// Stores `payloads` as the next outgoing messages for `peer`, assigning
    /// them consecutive sequence numbers atomically, and returns the first
    /// one (the rest follow in order). The highest assigned number is
    /// remembered even after the messages are deleted.
    ///
    /// An empty `payloads` stores nothing and returns the number the next
    /// message would get.
    ///
    /// # Errors
    ///
    /// A [`StorageError`]; then nothing was stored and no number assigned.
    fn append_outgoing(
        &self,
        peer: &PeerId,
        payloads: Vec<Bytes>,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Deletes the outgoing messages for `peer` with sequence numbers up to
    /// and including `up_to` (the peer acknowledged them). Deleting what is
    /// already gone is not an error.
    ///
    /// # Errors
    ///
    /// A [`StorageError`]; then nothing was deleted.
    fn ack_outgoing(
        &self,
        peer: &PeerId,
        up_to: u64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Loads the unacknowledged outgoing messages for `peer` and the highest
    /// number assigned, to resume after a restart.
    ///
    /// # Errors
    ///
    /// A [`StorageError`].
    fn load_outgoing(
        &self,
        peer: &PeerId,
    ) -> impl Future<Output = Result<OutgoingState, StorageError>> + Send;

    /// Accepts a batch of incoming messages from `peer`: stores them (if
    /// [`persist_payloads`](StoreBatch::persist_payloads)) and moves the
    /// peer's acceptance watermark to the batch's
    /// [`last_seq`](StoreBatch::last_seq), in one atomic write. So a crash can
    /// never leave a message accepted but not stored, nor stored but not
    /// accepted.
    ///
    /// An empty batch stores nothing.
    ///
    /// # Errors
    ///
    /// A [`StorageErrorKind::Conflict`](crate::StorageErrorKind::Conflict)
    /// error if the batch does not start right after the stored watermark,
    /// or another [`StorageError`]; then nothing was stored.
    fn store_incoming(
        &self,
        peer: &PeerId,
        batch: StoreBatch,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Deletes incoming messages from `peer` that the application
    /// acknowledged, so they are not delivered again after a restart. Their
    /// acceptance is kept (the watermark does not move back). Unknown
    /// numbers are ignored.
    ///
    /// # Errors
    ///
    /// A [`StorageError`]; then nothing was deleted.
    fn ack_incoming(
        &self,
        peer: &PeerId,
        seqs: Vec<u64>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Loads the acceptance watermark for `peer` and the accepted messages
    /// the application has not acknowledged, to resume after a restart.
    ///
    /// # Errors
    ///
    /// A [`StorageError`].
    fn load_incoming(
        &self,
        peer: &PeerId,
    ) -> impl Future<Output = Result<IncomingState, StorageError>> + Send;

    /// The acceptance watermark for `peer` (0 if nothing was accepted).
    ///
    /// # Errors
    ///
    /// A [`StorageError`].
    fn accepted(&self, peer: &PeerId) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Every peer the store has state for (either direction), in order, to
    /// resume them all after a restart.
    ///
    /// # Errors
    ///
    /// A [`StorageError`].
    fn peers(&self) -> impl Future<Output = Result<Vec<PeerId>, StorageError>> + Send;
}
