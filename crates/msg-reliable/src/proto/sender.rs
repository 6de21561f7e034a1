//! The sending direction: outbox, window, retransmission.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use msg_wire::Frame;

use crate::error::{OutboxLimit, ProtocolError, ReliableError, StorageError, StorageErrorKind};
use crate::options::ReliableOptions;
use crate::peer::PeerId;
use crate::proto::OutgoingState;

/// The sending half of the conversation with one peer (sans-IO).
///
/// It keeps the stored, unacknowledged messages (the outbox) in memory for
/// retransmission and decides what goes on the link:
///
/// ```text
///            acked       next_send            highest_stored
///              │             │                       │
///   ... ───────┤█████████████│░░░░░░░░░░░░░░░░░░░░░░░│
///    deleted   │  in flight  │  stored, not yet sent │
///              └── at most `window` ──┘
/// ```
///
/// * Messages are numbered by the store. The driver calls
///   [`reserve`](Self::reserve) (which enforces the outbox bounds), stores
///   the message, then reports it with [`handle_enqueued`](Self::handle_enqueued)
///   (or gives the reservation back with [`release`](Self::release) if
///   storing failed).
/// * [`poll_transmit`](Self::poll_transmit) yields `Data` frames in sequence
///   order while the link is up and fewer than `window` are unacknowledged.
/// * A cumulative `Ack{seq}` releases everything up to `seq`;
///   [`poll_acked`](Self::poll_acked) then reports the new watermark once so
///   the driver deletes those messages from storage.
/// * Go-back-N: when the link comes up, and when no acknowledgement made
///   progress for the ack timeout (which doubles while that goes on), the
///   whole unacknowledged tail is sent again from `acked + 1`.
#[derive(Debug)]
pub struct SenderSession {
    peer: PeerId,
    opts: Arc<ReliableOptions>,
    /// Cumulative acknowledgement from the peer: it stored everything up to
    /// here.
    acked: u64,
    /// Stored, unacknowledged messages; `outbox[i]` has sequence
    /// `acked + 1 + i`.
    outbox: VecDeque<Bytes>,
    outbox_bytes: usize,
    /// Messages reported stored ahead of a gap (concurrent appends may be
    /// reported out of order); they join `outbox` when the gap closes.
    early: BTreeMap<u64, Bytes>,
    early_bytes: usize,
    /// Outbox space promised to appends still being stored.
    reserved_messages: usize,
    reserved_bytes: usize,
    /// The next sequence number to put on the link.
    next_send: u64,
    /// Highest sequence number ever transmitted in this session, to count
    /// retransmissions.
    highest_sent: u64,
    link_up: bool,
    /// The latest time the session was told; timers are armed from it.
    now: Option<Instant>,
    /// Current retransmission timeout (doubles without progress).
    rto: Duration,
    retransmit_at: Option<Instant>,
    /// Acknowledgement progress not yet reported by `poll_acked`.
    acked_event: Option<u64>,
    stats: SenderStats,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SenderStats {
    pub(crate) data_sent: u64,
    pub(crate) retransmitted: u64,
    pub(crate) timeouts: u64,
    pub(crate) acks_received: u64,
}

impl SenderSession {
    /// A sender for `peer`, resuming from what the store holds.
    ///
    /// # Errors
    ///
    /// [`ReliableError::InvalidOptions`] if `opts` does not
    /// [validate](ReliableOptions::validate), and a
    /// [`StorageErrorKind::Corrupt`] storage error if `state` breaks its
    /// documented invariants (sequence numbers not consecutive, not ending
    /// at `last_assigned`).
    pub fn new(
        peer: PeerId,
        opts: Arc<ReliableOptions>,
        state: OutgoingState,
    ) -> Result<Self, ReliableError> {
        opts.validate()?;
        let OutgoingState {
            last_assigned,
            unacked,
        } = state;
        let count = unacked.len() as u64;
        let Some(acked) = last_assigned.checked_sub(count) else {
            return Err(corrupt("more unacknowledged messages than were assigned"));
        };
        let mut outbox = VecDeque::with_capacity(unacked.len());
        let mut outbox_bytes = 0;
        for (expected, (seq, payload)) in (acked + 1..).zip(unacked) {
            if seq != expected {
                return Err(corrupt(
                    "unacknowledged sequence numbers are not consecutive",
                ));
            }
            outbox_bytes += payload.len();
            outbox.push_back(payload);
        }
        let rto = opts.ack_timeout;
        Ok(Self {
            peer,
            opts,
            acked,
            outbox,
            outbox_bytes,
            early: BTreeMap::new(),
            early_bytes: 0,
            reserved_messages: 0,
            reserved_bytes: 0,
            next_send: acked + 1,
            highest_sent: acked,
            link_up: false,
            now: None,
            rto,
            retransmit_at: None,
            acked_event: None,
            stats: SenderStats::default(),
        })
    }

    /// The peer this session sends to.
    pub fn peer(&self) -> &PeerId {
        &self.peer
    }

    /// Reserves outbox space for `messages` messages of `bytes` payload
    /// bytes in total, before they are stored.
    ///
    /// Stored-but-unacknowledged messages, messages reported early and
    /// earlier reservations all count against
    /// [`max_outbox_messages`](ReliableOptions::max_outbox_messages) and
    /// [`max_outbox_bytes`](ReliableOptions::max_outbox_bytes). Each
    /// [`handle_enqueued`](Self::handle_enqueued) consumes one message of
    /// the reservation; give back what was not stored with
    /// [`release`](Self::release).
    ///
    /// # Errors
    ///
    /// [`ReliableError::OutboxFull`] if the reservation does not fit; nothing
    /// is reserved then.
    pub fn reserve(&mut self, messages: usize, bytes: usize) -> Result<(), ReliableError> {
        let used_messages = self.outbox.len() + self.early.len() + self.reserved_messages;
        let used_bytes = self.outbox_bytes + self.early_bytes + self.reserved_bytes;
        if used_messages.saturating_add(messages) > self.opts.max_outbox_messages {
            return Err(ReliableError::OutboxFull {
                peer: self.peer.clone(),
                limit: OutboxLimit::Messages(self.opts.max_outbox_messages),
            });
        }
        if used_bytes.saturating_add(bytes) > self.opts.max_outbox_bytes {
            return Err(ReliableError::OutboxFull {
                peer: self.peer.clone(),
                limit: OutboxLimit::Bytes(self.opts.max_outbox_bytes),
            });
        }
        self.reserved_messages += messages;
        self.reserved_bytes += bytes;
        Ok(())
    }

    /// Gives back a reservation (or part of one) whose messages were not
    /// stored, for example because the backend failed.
    pub fn release(&mut self, messages: usize, bytes: usize) {
        self.reserved_messages = self.reserved_messages.saturating_sub(messages);
        self.reserved_bytes = self.reserved_bytes.saturating_sub(bytes);
    }

    /// The backend stored `payload` for the peer under `seq`.
    ///
    /// Consumes one message (and the payload's bytes) of an earlier
    /// [`reserve`](Self::reserve). Reports may come out of order (several
    /// appends stored concurrently); a message is transmitted only once all
    /// lower sequence numbers are known, because the peer accepts in order.
    /// A sequence number already known is ignored.
    pub fn handle_enqueued(&mut self, now: Instant, seq: u64, payload: Bytes) {
        self.now = Some(now);
        self.release(1, payload.len());
        if seq <= self.highest_stored() || self.early.contains_key(&seq) {
            tracing::debug!(peer = %self.peer, seq, "ignoring a message reported twice");
            return;
        }
        if seq == self.highest_stored() + 1 {
            self.outbox_bytes += payload.len();
            self.outbox.push_back(payload);
            // Close the gap, if this message was the one missing.
            let mut next = self.highest_stored() + 1;
            while let Some(payload) = self.early.remove(&next) {
                next += 1;
                self.early_bytes -= payload.len();
                self.outbox_bytes += payload.len();
                self.outbox.push_back(payload);
            }
        } else {
            self.early_bytes += payload.len();
            self.early.insert(seq, payload);
        }
    }

    /// The link to the peer is (again) up: resend everything
    /// unacknowledged, from `acked + 1` (go-back-N).
    pub fn handle_link_up(&mut self, now: Instant) {
        self.now = Some(now);
        self.link_up = true;
        self.next_send = self.acked + 1;
        self.rto = self.opts.ack_timeout;
        self.retransmit_at = None;
    }

    /// The link to the peer went down: transmit nothing and run no timer
    /// until it is up again. Frames in flight are presumed lost.
    pub fn handle_link_down(&mut self, now: Instant) {
        self.now = Some(now);
        self.link_up = false;
        self.retransmit_at = None;
    }

    /// A cumulative acknowledgement: the peer stored everything up to
    /// `seq`.
    ///
    /// An acknowledgement at or below the current one is stale and ignored.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::AckBeyondSent`] if `seq` is above every sequence
    /// number stored for the peer; the session is unchanged.
    pub fn handle_ack(&mut self, now: Instant, seq: u64) -> Result<(), ProtocolError> {
        self.now = Some(now);
        self.stats.acks_received += 1;
        let highest = self.highest_stored();
        if seq > highest {
            return Err(ProtocolError::AckBeyondSent { ack: seq, highest });
        }
        if seq <= self.acked {
            return Ok(());
        }
        for _ in self.acked..seq {
            if let Some(payload) = self.outbox.pop_front() {
                self.outbox_bytes -= payload.len();
            }
        }
        self.acked = seq;
        self.acked_event = Some(seq);
        // The peer may hold more than this session sent since the link came
        // up (it kept what an earlier connection delivered): skip ahead.
        self.next_send = self.next_send.max(seq + 1);
        // Progress: the timer restarts from the base timeout, and only if
        // something is still unacknowledged on the link.
        self.rto = self.opts.ack_timeout;
        self.retransmit_at = (self.in_flight() > 0).then(|| now + self.rto);
        Ok(())
    }

    /// Time passed: if the acknowledgement timer expired, go back to
    /// `acked + 1` and double the timeout (up to its maximum).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        let Some(at) = self.retransmit_at else {
            return;
        };
        if now < at || !self.link_up {
            return;
        }
        self.retransmit_at = None;
        if self.in_flight() == 0 {
            return;
        }
        tracing::debug!(
            peer = %self.peer,
            from = self.acked + 1,
            in_flight = self.in_flight(),
            "no acknowledgement within {:?}, resending",
            self.rto
        );
        self.stats.timeouts += 1;
        self.next_send = self.acked + 1;
        self.rto = (self.rto * 2).min(self.opts.max_ack_timeout);
    }

    /// The next `Data` frame to put on the link, if the link is up, a stored
    /// message is waiting and the window has room.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        if !self.link_up
            || self.next_send > self.highest_stored()
            || self.in_flight() >= self.opts.window as u64
        {
            return None;
        }
        let seq = self.next_send;
        let index = usize::try_from(seq - self.acked - 1).ok()?;
        let payload = self.outbox.get(index)?.clone();
        self.next_send += 1;
        self.stats.data_sent += 1;
        if seq <= self.highest_sent {
            self.stats.retransmitted += 1;
        } else {
            self.highest_sent = seq;
        }
        if self.retransmit_at.is_none() {
            if let Some(now) = self.now {
                self.retransmit_at = Some(now + self.rto);
            }
        }
        Some(Frame::Data { seq, payload })
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called:
    /// the acknowledgement deadline, while the link is up and messages are
    /// in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.link_up {
            self.retransmit_at
        } else {
            None
        }
    }

    /// The new acknowledgement watermark, once after it moved (progress from
    /// several acks in between is reported together).
    ///
    /// The driver deletes the messages up to it from storage and wakes
    /// whoever waits for them.
    pub fn poll_acked(&mut self) -> Option<u64> {
        self.acked_event.take()
    }

    /// The peer's cumulative acknowledgement: everything up to here is
    /// stored by the peer.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Whether the peer has acknowledged (stored) message `seq`.
    pub fn is_acked(&self, seq: u64) -> bool {
        seq <= self.acked
    }

    /// The highest sequence number of the contiguous stored outbox
    /// (`acked` when it is empty).
    pub fn highest_stored(&self) -> u64 {
        self.acked + self.outbox.len() as u64
    }

    /// Messages sent and not yet acknowledged (at most the window).
    pub fn in_flight(&self) -> u64 {
        (self.next_send - 1).saturating_sub(self.acked)
    }

    /// Stored messages the peer has not acknowledged, including those
    /// reported ahead of a gap.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len() + self.early.len()
    }

    /// Payload bytes of [`outbox_len`](Self::outbox_len) messages.
    pub fn outbox_bytes(&self) -> usize {
        self.outbox_bytes + self.early_bytes
    }

    /// Whether the link is up.
    pub fn is_link_up(&self) -> bool {
        self.link_up
    }

    pub(crate) fn stats(&self) -> SenderStats {
        self.stats
    }
}

fn corrupt(what: &'static str) -> ReliableError {
    ReliableError::Storage(StorageError::new(StorageErrorKind::Corrupt, what))
}
