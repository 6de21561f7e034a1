//! The receiving direction: ordering, hold-back, storing, delivery.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use msg_wire::Frame;

use crate::error::{ProtocolError, ReliableError, StorageError, StorageErrorKind};
use crate::options::{AckMode, ReliableOptions};
use crate::peer::PeerId;
use crate::proto::{IncomingState, StoreBatch};

/// The receiving half of the conversation with one peer (sans-IO).
///
/// ```text
///        accepted           next expected
///           │                     │
///   ... ────┤▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓│      ░░ ░░░   ░░
///    stored │ in order, not yet   │      held back (gap before them)
///           │ stored (unstored)   │
/// ```
///
/// * A `Data` frame at the next expected sequence joins the in-order
///   queue, pulling any held-back successors along; one further ahead is
///   held back (bounded: when full, the highest sequence number is
///   dropped); one at or below the watermark is a duplicate: dropped, and
///   the current watermark is acknowledged again, so a sender whose ack was
///   lost makes progress.
/// * [`poll_store`](Self::poll_store) hands the in-order queue to the
///   driver as one [`StoreBatch`] (one at a time). Only when the driver
///   reports it stored ([`handle_stored`](Self::handle_stored)) does the
///   watermark move, the messages become deliveries
///   ([`poll_delivery`](Self::poll_delivery)) and an `Ack` go out. A failed
///   store ([`handle_store_failed`](Self::handle_store_failed)) drops the
///   queue unacknowledged; the sender resends it.
/// * Flow control: messages accepted and not yet acknowledged by the
///   application ([`handle_app_ack`](Self::handle_app_ack)) are bounded by
///   the receive window; past it, new messages are not accepted (nor
///   acknowledged): they wait in the hold-back buffer, or are dropped if it
///   is full.
#[derive(Debug)]
pub struct ReceiverSession {
    peer: PeerId,
    opts: Arc<ReliableOptions>,
    /// Everything up to here is stored, in order.
    accepted: u64,
    /// In-order messages after `accepted` not yet stored; `unstored[i]` has
    /// sequence `accepted + 1 + i`. The first `in_store` are in the batch
    /// the driver is storing.
    unstored: VecDeque<Bytes>,
    unstored_bytes: usize,
    in_store: usize,
    /// Messages beyond a gap, by sequence number.
    held: BTreeMap<u64, Bytes>,
    held_bytes: usize,
    /// Stored messages the application has not acknowledged, with their
    /// sizes, by sequence number.
    pending: BTreeMap<u64, usize>,
    pending_bytes: usize,
    /// Stored messages not yet handed to the driver.
    deliveries: VecDeque<(u64, Bytes)>,
    ack_pending: bool,
    link_up: bool,
    stats: ReceiverStats,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReceiverStats {
    pub(crate) acks_sent: u64,
    pub(crate) duplicates: u64,
    pub(crate) held_back: u64,
    pub(crate) hold_back_dropped: u64,
    pub(crate) window_full: u64,
    pub(crate) stored: u64,
    pub(crate) store_failures: u64,
}

impl ReceiverSession {
    /// A receiver for messages from `peer`, resuming from what the store
    /// holds. The undelivered messages of `state` are delivered again (see
    /// [`poll_delivery`](Self::poll_delivery)).
    ///
    /// # Errors
    ///
    /// [`ReliableError::InvalidOptions`] if `opts` does not
    /// [validate](ReliableOptions::validate), and a
    /// [`StorageErrorKind::Corrupt`] storage error if `state` breaks its
    /// invariants (undelivered sequence numbers not increasing, or above
    /// `accepted`).
    pub fn new(
        peer: PeerId,
        opts: Arc<ReliableOptions>,
        state: IncomingState,
    ) -> Result<Self, ReliableError> {
        opts.validate()?;
        let IncomingState {
            accepted,
            undelivered,
        } = state;
        let mut pending = BTreeMap::new();
        let mut pending_bytes = 0;
        let mut deliveries = VecDeque::with_capacity(undelivered.len());
        let mut last = 0;
        for (seq, payload) in undelivered {
            if seq <= last || seq > accepted {
                return Err(ReliableError::Storage(StorageError::new(
                    StorageErrorKind::Corrupt,
                    "undelivered incoming messages out of order or beyond the watermark",
                )));
            }
            last = seq;
            pending.insert(seq, payload.len());
            pending_bytes += payload.len();
            deliveries.push_back((seq, payload));
        }
        Ok(Self {
            peer,
            opts,
            accepted,
            unstored: VecDeque::new(),
            unstored_bytes: 0,
            in_store: 0,
            held: BTreeMap::new(),
            held_bytes: 0,
            pending,
            pending_bytes,
            deliveries,
            ack_pending: false,
            link_up: false,
            stats: ReceiverStats::default(),
        })
    }

    /// The peer this session receives from.
    pub fn peer(&self) -> &PeerId {
        &self.peer
    }

    /// The link to the peer is (again) up. The current watermark is
    /// acknowledged right away, so a restarted sender need not resend what
    /// is already stored here.
    pub fn handle_link_up(&mut self, _now: Instant) {
        self.link_up = true;
        self.ack_pending = self.accepted > 0;
    }

    /// The link to the peer went down. Held-back messages are kept: sequence
    /// numbers belong to the peer, not to the connection.
    pub fn handle_link_down(&mut self, _now: Instant) {
        self.link_up = false;
    }

    /// A `Data` frame from the peer.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::ZeroSequence`] for sequence number 0; the session is
    /// unchanged.
    pub fn handle_data(&mut self, seq: u64, payload: Bytes) -> Result<(), ProtocolError> {
        if seq == 0 {
            return Err(ProtocolError::ZeroSequence);
        }
        if seq <= self.accepted {
            // Already stored: the sender did not see our ack. Repeat it.
            self.stats.duplicates += 1;
            self.ack_pending = true;
            return Ok(());
        }
        let next = self.next_expected();
        if seq < next {
            // Being stored; its ack follows when the store completes.
            self.stats.duplicates += 1;
            return Ok(());
        }
        if seq == next {
            if self.has_room(payload.len()) {
                self.push_in_order(payload);
                self.pull_held();
            } else {
                // The application is behind. Keep the message (bounded) so
                // it is accepted as soon as there is room, without waiting
                // for the sender's timeout.
                self.stats.window_full += 1;
                self.hold_back(seq, payload);
            }
            return Ok(());
        }
        self.hold_back(seq, payload);
        Ok(())
    }

    /// The driver stored the batch from [`poll_store`](Self::poll_store), up
    /// to and including `up_to` (normally the batch's
    /// [`last_seq`](StoreBatch::last_seq)).
    ///
    /// The watermark moves, the stored messages become deliveries and the
    /// new watermark will be acknowledged. A report for nothing outstanding
    /// is ignored.
    pub fn handle_stored(&mut self, up_to: u64) {
        let reported = up_to.saturating_sub(self.accepted);
        let count = usize::try_from(reported)
            .unwrap_or(usize::MAX)
            .min(self.in_store);
        for _ in 0..count {
            let Some(payload) = self.unstored.pop_front() else {
                break;
            };
            self.accepted += 1;
            self.unstored_bytes -= payload.len();
            self.pending.insert(self.accepted, payload.len());
            self.pending_bytes += payload.len();
            self.deliveries.push_back((self.accepted, payload));
        }
        self.in_store -= count;
        if count > 0 {
            self.stats.stored += count as u64;
            self.ack_pending = true;
        }
    }

    /// Storing the outstanding batch failed: nothing of it is acknowledged.
    ///
    /// The batch, and anything queued in order behind it, is dropped; the
    /// sender resends it after its ack timeout (or when the link comes up),
    /// so a store that keeps failing is retried at the sender's backoff
    /// pace. Held-back messages are kept.
    pub fn handle_store_failed(&mut self) {
        if self.in_store == 0 {
            return;
        }
        self.stats.store_failures += 1;
        self.in_store = 0;
        self.unstored.clear();
        self.unstored_bytes = 0;
    }

    /// The application acknowledged delivery `seq` (in
    /// [`AckMode::Manual`], after the driver deleted it from storage; in
    /// [`AckMode::Auto`], when the application took it). Frees room in the
    /// receive window. Returns whether `seq` was pending.
    pub fn handle_app_ack(&mut self, seq: u64) -> bool {
        let Some(len) = self.pending.remove(&seq) else {
            return false;
        };
        self.pending_bytes -= len;
        // Held-back messages that did not fit may fit now.
        self.pull_held();
        true
    }

    /// The next `Ack` frame, if one is due and the link is up. Acks are
    /// coalesced: one frame carries the current watermark.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        if !self.link_up || !self.ack_pending {
            return None;
        }
        self.ack_pending = false;
        if self.accepted == 0 {
            return None;
        }
        self.stats.acks_sent += 1;
        Some(Frame::Ack { seq: self.accepted })
    }

    /// The next batch of in-order messages to store, if none is being
    /// stored.
    ///
    /// Everything received in order since the last batch goes into one
    /// batch, so a busy peer's messages share one write. Report the outcome
    /// with [`handle_stored`](Self::handle_stored) or
    /// [`handle_store_failed`](Self::handle_store_failed).
    pub fn poll_store(&mut self) -> Option<StoreBatch> {
        if self.in_store > 0 || self.unstored.is_empty() {
            return None;
        }
        self.in_store = self.unstored.len();
        Some(StoreBatch::new(
            self.accepted + 1,
            self.unstored.iter().cloned().collect(),
            self.opts.ack_mode == AckMode::Manual,
        ))
    }

    /// The next stored message to hand to the application, in order.
    pub fn poll_delivery(&mut self) -> Option<(u64, Bytes)> {
        self.deliveries.pop_front()
    }

    /// The stored acceptance watermark.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Messages held back behind a gap.
    pub fn held_back(&self) -> usize {
        self.held.len()
    }

    /// Messages accepted and not yet acknowledged by the application
    /// (including those being stored): the used part of the receive window.
    pub fn window_used(&self) -> usize {
        self.unstored.len() + self.pending.len()
    }

    /// Whether a store batch is outstanding.
    pub fn is_storing(&self) -> bool {
        self.in_store > 0
    }

    pub(crate) fn stats(&self) -> ReceiverStats {
        self.stats
    }

    fn next_expected(&self) -> u64 {
        self.accepted + self.unstored.len() as u64 + 1
    }

    fn has_room(&self, len: usize) -> bool {
        let used = self.window_used();
        if used == 0 {
            // One message always fits, however large: otherwise a message
            // over the byte window could never be delivered.
            return true;
        }
        used < self.opts.recv_window
            && self.unstored_bytes + self.pending_bytes + len <= self.opts.recv_window_bytes
    }

    fn push_in_order(&mut self, payload: Bytes) {
        self.unstored_bytes += payload.len();
        self.unstored.push_back(payload);
    }

    /// Moves held-back messages that are now next in order (and fit in the
    /// window) to the in-order queue.
    fn pull_held(&mut self) {
        while let Some((&seq, first)) = self.held.first_key_value() {
            let next = self.next_expected();
            if seq > next || (seq == next && !self.has_room(first.len())) {
                break;
            }
            let Some(payload) = self.held.remove(&seq) else {
                break;
            };
            self.held_bytes -= payload.len();
            if seq == next {
                self.push_in_order(payload);
            }
            // Below `next`: arrived in order meanwhile; drop the copy.
        }
    }

    fn hold_back(&mut self, seq: u64, payload: Bytes) {
        if self.held.contains_key(&seq) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.held_back += 1;
        self.held_bytes += payload.len();
        self.held.insert(seq, payload);
        // Over a bound: drop the newest (highest) first, as the oldest are
        // needed first. That may be the message that just arrived.
        while self.held.len() > self.opts.hold_back_messages
            || self.held_bytes > self.opts.hold_back_bytes
        {
            let Some((_, dropped)) = self.held.pop_last() else {
                break;
            };
            self.held_bytes -= dropped.len();
            self.stats.hold_back_dropped += 1;
        }
    }
}
