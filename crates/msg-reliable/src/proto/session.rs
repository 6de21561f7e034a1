//! Both directions of the conversation with one peer, as a driver uses them.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use msg_wire::Frame;

use crate::error::{ProtocolError, ReliableError};
use crate::options::ReliableOptions;
use crate::peer::PeerId;
use crate::proto::{IncomingState, OutgoingState, ReceiverSession, SenderSession, StoreBatch};

/// The conversation with one peer: a [`SenderSession`] and a
/// [`ReceiverSession`] sharing one link (sans-IO).
///
/// A driver owns one `Session` per peer and runs this loop:
///
/// 1. feed it: [`handle_link_up`](Self::handle_link_up) /
///    [`handle_link_down`](Self::handle_link_down) as the connection to the
///    peer comes and goes, [`handle_frame`](Self::handle_frame) for every
///    `Data` and `Ack` frame from it, [`handle_timeout`](Self::handle_timeout)
///    when [`poll_timeout`](Self::poll_timeout) passes, and the outcomes of
///    storage: [`handle_enqueued`](Self::handle_enqueued),
///    [`handle_stored`](Self::handle_stored) /
///    [`handle_store_failed`](Self::handle_store_failed),
///    [`handle_app_ack`](Self::handle_app_ack);
/// 2. drain it: write every [`poll_transmit`](Self::poll_transmit) frame to
///    the link, store every [`poll_store`](Self::poll_store) batch, act on
///    every [`poll_event`](Self::poll_event);
/// 3. sleep until [`poll_timeout`](Self::poll_timeout) or the next input.
#[derive(Debug)]
pub struct Session {
    sender: SenderSession,
    receiver: ReceiverSession,
}

/// Something the driver must act on, from [`Session::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The peer has stored every message up to and including `up_to`: delete
    /// them from the outbox in storage and wake whoever waits for them.
    Acked {
        /// The new cumulative acknowledgement.
        up_to: u64,
    },
    /// Hand this stored message to the application. Deliveries come in
    /// sequence order without gaps (after a restart, starting with the first
    /// one the application had not acknowledged).
    Deliver {
        /// Its sequence number, to acknowledge it with.
        seq: u64,
        /// The message.
        payload: Bytes,
    },
}

/// Counters of a [`Session`], for stats and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// `Data` frames transmitted, including retransmissions.
    pub data_sent: u64,
    /// `Data` frames transmitted again (after a timeout or a link coming up).
    pub retransmitted: u64,
    /// Acknowledgement timeouts that caused a resend.
    pub timeouts: u64,
    /// `Ack` frames received.
    pub acks_received: u64,
    /// `Ack` frames transmitted.
    pub acks_sent: u64,
    /// `Data` frames dropped as duplicates.
    pub duplicates: u64,
    /// `Data` frames held back behind a gap.
    pub held_back: u64,
    /// Held-back frames dropped because the hold-back buffer was full.
    pub hold_back_dropped: u64,
    /// In-order frames that found the receive window full (held back if
    /// the hold-back buffer had room, dropped otherwise).
    pub window_full: u64,
    /// Incoming messages stored.
    pub stored: u64,
    /// Store batches that failed.
    pub store_failures: u64,
}

impl Session {
    /// A session with `peer`, resuming from what the store holds for both
    /// directions.
    ///
    /// # Errors
    ///
    /// As [`SenderSession::new`] and [`ReceiverSession::new`].
    pub fn new(
        peer: PeerId,
        opts: Arc<ReliableOptions>,
        outgoing: OutgoingState,
        incoming: IncomingState,
    ) -> Result<Self, ReliableError> {
        Ok(Self {
            sender: SenderSession::new(peer.clone(), opts.clone(), outgoing)?,
            receiver: ReceiverSession::new(peer, opts, incoming)?,
        })
    }

    /// The peer.
    pub fn peer(&self) -> &PeerId {
        self.sender.peer()
    }

    /// The link to the peer is (again) up.
    pub fn handle_link_up(&mut self, now: Instant) {
        self.sender.handle_link_up(now);
        self.receiver.handle_link_up(now);
    }

    /// The link to the peer went down.
    pub fn handle_link_down(&mut self, now: Instant) {
        self.sender.handle_link_down(now);
        self.receiver.handle_link_down(now);
    }

    /// A frame from the peer: `Data` goes to the receiver, `Ack` to the
    /// sender.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] if the peer broke the protocol (the session is
    /// unchanged; close the link), including
    /// [`ProtocolError::UnexpectedFrame`] for kinds other than `Data` and
    /// `Ack`.
    pub fn handle_frame(&mut self, now: Instant, frame: Frame) -> Result<(), ProtocolError> {
        match frame {
            Frame::Data { seq, payload } => self.receiver.handle_data(seq, payload),
            Frame::Ack { seq } => self.sender.handle_ack(now, seq),
            other => Err(ProtocolError::UnexpectedFrame(other.kind())),
        }
    }

    /// Time passed; see [`SenderSession::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.sender.handle_timeout(now);
    }

    /// See [`SenderSession::reserve`].
    ///
    /// # Errors
    ///
    /// [`ReliableError::OutboxFull`].
    pub fn reserve(&mut self, messages: usize, bytes: usize) -> Result<(), ReliableError> {
        self.sender.reserve(messages, bytes)
    }

    /// See [`SenderSession::release`].
    pub fn release(&mut self, messages: usize, bytes: usize) {
        self.sender.release(messages, bytes);
    }

    /// See [`SenderSession::handle_enqueued`].
    pub fn handle_enqueued(&mut self, now: Instant, seq: u64, payload: Bytes) {
        self.sender.handle_enqueued(now, seq, payload);
    }

    /// See [`ReceiverSession::handle_stored`].
    pub fn handle_stored(&mut self, up_to: u64) {
        self.receiver.handle_stored(up_to);
    }

    /// See [`ReceiverSession::handle_store_failed`].
    pub fn handle_store_failed(&mut self) {
        self.receiver.handle_store_failed();
    }

    /// See [`ReceiverSession::handle_app_ack`].
    pub fn handle_app_ack(&mut self, seq: u64) -> bool {
        self.receiver.handle_app_ack(seq)
    }

    /// The next frame for the link: a due `Ack` first (it unblocks the
    /// peer), then `Data` within the window.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        self.receiver
            .poll_transmit()
            .or_else(|| self.sender.poll_transmit())
    }

    /// See [`ReceiverSession::poll_store`].
    pub fn poll_store(&mut self) -> Option<StoreBatch> {
        self.receiver.poll_store()
    }

    /// The next event for the driver: acknowledgement progress first, then
    /// deliveries.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        if let Some(up_to) = self.sender.poll_acked() {
            return Some(SessionEvent::Acked { up_to });
        }
        let (seq, payload) = self.receiver.poll_delivery()?;
        Some(SessionEvent::Deliver { seq, payload })
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sender.poll_timeout()
    }

    /// The sending half.
    pub fn sender(&self) -> &SenderSession {
        &self.sender
    }

    /// The receiving half.
    pub fn receiver(&self) -> &ReceiverSession {
        &self.receiver
    }

    /// The session's counters.
    pub fn stats(&self) -> SessionStats {
        let s = self.sender.stats();
        let r = self.receiver.stats();
        SessionStats {
            data_sent: s.data_sent,
            retransmitted: s.retransmitted,
            timeouts: s.timeouts,
            acks_received: s.acks_received,
            acks_sent: r.acks_sent,
            duplicates: r.duplicates,
            held_back: r.held_back,
            hold_back_dropped: r.hold_back_dropped,
            window_full: r.window_full,
            stored: r.stored,
            store_failures: r.store_failures,
        }
    }
}
