//! The sans-IO protocol of the reliable layer.
//!
//! [`SenderSession`] and [`ReceiverSession`] are the two directions of the
//! conversation with one peer; [`Session`] bundles them the way a driver
//! uses them. They take inputs (`handle_*`) and give outputs (`poll_*`), and
//! never touch a socket, a clock or a disk: time is always an argument, and
//! storage is an explicit exchange with the driver:
//!
//! ```text
//!  application          driver                       Session
//!  send_to(p, m) ──▶ reserve(1, len)            ───▶ checks the outbox bound
//!                    Backend::append_outgoing   (seq assigned, stored)
//!                    handle_enqueued(now,seq,m) ───▶ may now transmit it
//!                    link.send(poll_transmit()) ◀─── Data{seq} within the window
//!                    handle_frame(Ack{n})       ───▶ poll_event(): Acked{n}
//!                    Backend::ack_outgoing(n)        (delete, wake waiters)
//!
//!                    handle_frame(Data{seq,m})  ───▶ in order? hold back? dup?
//!                    poll_store(): batch        ◀─── contiguous, not yet stored
//!                    Backend::store_incoming    (messages + watermark, atomic)
//!                    handle_stored(last)        ───▶ Ack{last} + Deliver events
//!  ack(delivery) ──▶ Backend::ack_incoming
//!                    handle_app_ack(seq)        ───▶ frees receive window
//! ```
//!
//! The persistence points are the two backend writes: a message exists once
//! `append_outgoing` stored it, and it is accepted once `store_incoming`
//! stored it with the new watermark. Nothing is acknowledged to a sender
//! before the second one completed.

mod receiver;
mod sender;
mod session;

#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use receiver::ReceiverSession;
pub use sender::SenderSession;
pub use session::{Session, SessionEvent, SessionStats};

/// What a store knows about the messages to one peer, loaded at start-up.
///
/// Produced by [`Backend::load_outgoing`](crate::Backend::load_outgoing) and
/// consumed by [`SenderSession::new`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutgoingState {
    /// The highest sequence number ever assigned to a message for the peer
    /// (0 if none). It survives the deletion of acknowledged messages, so
    /// numbering continues where it stopped.
    pub last_assigned: u64,
    /// The stored messages the peer has not acknowledged, in sequence order.
    /// Their sequence numbers are consecutive and end at `last_assigned`.
    pub unacked: Vec<(u64, Bytes)>,
}

/// What a store knows about the messages from one peer, loaded at start-up.
///
/// Produced by [`Backend::load_incoming`](crate::Backend::load_incoming) and
/// consumed by [`ReceiverSession::new`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IncomingState {
    /// The highest sequence number accepted (stored) from the peer, 0 if
    /// none. Everything up to it was accepted, in order.
    pub accepted: u64,
    /// Accepted messages the application has not acknowledged, in sequence
    /// order, all at most `accepted`. They are delivered again.
    pub undelivered: Vec<(u64, Bytes)>,
}

/// Incoming messages to store, emitted by [`ReceiverSession::poll_store`].
///
/// The messages have consecutive sequence numbers starting right after the
/// peer's stored acceptance watermark. A backend stores them and moves the
/// watermark to [`last_seq`](Self::last_seq) in one atomic write
/// ([`Backend::store_incoming`](crate::Backend::store_incoming)); in
/// [`AckMode::Auto`](crate::AckMode::Auto) only the watermark is stored
/// ([`persist_payloads`](Self::persist_payloads) is false).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreBatch {
    first_seq: u64,
    payloads: Vec<Bytes>,
    persist_payloads: bool,
}

impl StoreBatch {
    /// A batch of `payloads` numbered from `first_seq` on.
    pub fn new(first_seq: u64, payloads: Vec<Bytes>, persist_payloads: bool) -> Self {
        Self {
            first_seq,
            payloads,
            persist_payloads,
        }
    }

    /// Sequence number of the first message.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Sequence number of the last message: the new acceptance watermark.
    /// For an empty batch, `first_seq - 1`.
    pub fn last_seq(&self) -> u64 {
        (self.first_seq + self.payloads.len() as u64).saturating_sub(1)
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.payloads.len()
    }

    /// Whether the batch has no messages.
    pub fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    /// Whether the payloads are stored (for redelivery after a restart) or
    /// only the watermark.
    pub fn persist_payloads(&self) -> bool {
        self.persist_payloads
    }

    /// The messages with their sequence numbers, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Bytes)> + '_ {
        (self.first_seq..).zip(self.payloads.iter())
    }

    /// The payloads, in order.
    pub fn payloads(&self) -> &[Bytes] {
        &self.payloads
    }
}
