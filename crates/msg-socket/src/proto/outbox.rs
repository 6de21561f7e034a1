//! Sending to whichever peer has room: round-robin over the connections
//! under their marks, and a bounded queue of messages that wait while no
//! connection is up (PUSH, DEALER, PAIR).

use std::collections::VecDeque;

use crate::message::Encoded;
use crate::proto::conns::{ConnId, ConnTable, SendLimits, fits};

/// What became of a message offered to [`Outbox::send`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Queued on a connection, or parked until one comes up.
    Taken,
    /// Every connection is at its mark (or the parking queue is full):
    /// the message, back, to offer again when room opens.
    Full(Encoded),
}

/// The sending half of a load-balancing pattern.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// Where the next round-robin choice starts, in the connection order.
    next: usize,
    /// Messages waiting for a connection, oldest first, while none is up.
    parked: VecDeque<Encoded>,
    /// Frames and bytes of `parked`.
    parked_frames: usize,
    parked_bytes: usize,
    limits: SendLimits,
    /// Messages queued on a connection.
    pub(crate) sent: u64,
}

impl Outbox {
    pub(crate) fn new(limits: SendLimits) -> Self {
        Self {
            next: 0,
            parked: VecDeque::new(),
            parked_frames: 0,
            parked_bytes: 0,
            limits,
            sent: 0,
        }
    }

    /// Queues `message` on the next connection, round-robin, that has room
    /// under its marks. With no connection up at all it parks the message
    /// (up to the marks) for the first one to come up; with connections up
    /// but all full it is `Full`.
    pub(crate) fn send<S>(&mut self, conns: &mut ConnTable<S>, message: Encoded) -> Offer {
        if !self.parked.is_empty() || !has_live(conns) {
            return self.park(conns, message);
        }
        let order = conns.order();
        let n = order.len();
        let chosen = (0..n)
            .map(|i| order[(self.next + i) % n])
            .enumerate()
            .find(|&(_, id)| {
                conns
                    .get(id)
                    .is_some_and(|c| fits(c, self.limits, message.len()))
            });
        let Some((offset, id)) = chosen else {
            return Offer::Full(message);
        };
        self.next = (self.next + offset + 1) % n;
        queue(conns, id, message);
        self.sent += 1;
        Offer::Taken
    }

    /// Parks `message` while no connection is up, if the parking queue has
    /// room under the marks (one message always fits an empty queue).
    fn park<S>(&mut self, conns: &mut ConnTable<S>, message: Encoded) -> Offer {
        // A connection came up since the last message was parked: move the
        // parked ones over first, in order.
        self.flush(conns);
        if self.parked.is_empty() && has_live(conns) {
            return self.send(conns, message);
        }
        let fits = self.parked_frames < self.limits.frames
            && (self.parked_bytes == 0
                || self.parked_bytes.saturating_add(message.len()) <= self.limits.bytes);
        if !fits {
            return Offer::Full(message);
        }
        self.parked_frames += message.frames();
        self.parked_bytes += message.len();
        self.parked.push_back(message);
        Offer::Taken
    }

    /// Moves every parked message onto the live connections, round-robin.
    /// Called when a connection comes up. Marks are not checked: the parked
    /// messages fit under one connection's marks (they were parked under
    /// the same ones), and a connection that just came up has nothing
    /// queued.
    pub(crate) fn flush<S>(&mut self, conns: &mut ConnTable<S>) {
        while !self.parked.is_empty() {
            let order = conns.order();
            let n = order.len();
            let Some((offset, id)) = (0..n)
                .map(|i| order[(self.next + i) % n])
                .enumerate()
                .find(|&(_, id)| conns.get(id).is_some_and(|c| !c.is_closing()))
            else {
                return;
            };
            self.next = (self.next + offset + 1) % n;
            let Some(message) = self.parked.pop_front() else {
                return;
            };
            self.parked_frames -= message.frames();
            self.parked_bytes -= message.len();
            queue(conns, id, message);
            self.sent += 1;
        }
    }

    /// Frames and bytes parked.
    pub(crate) fn parked(&self) -> (usize, usize) {
        (self.parked_frames, self.parked_bytes)
    }
}

/// Whether any connection is up and not on its way out.
fn has_live<S>(conns: &ConnTable<S>) -> bool {
    conns.iter().any(|(_, c)| !c.is_closing())
}

/// Queues every frame of `message` on `id`, together.
pub(crate) fn queue<S>(conns: &mut ConnTable<S>, id: ConnId, message: Encoded) {
    for frame in message.into_frames() {
        conns.push(id, frame);
    }
}
