//! The connections a pattern's state machine owns: who is up, what each one
//! carries for the pattern, and what waits to be written to it, counted
//! against the send high-water marks.
//!
//! Every pattern keeps its live connections in a [`ConnTable`]. A frame the
//! pattern decides to send is [`push`](ConnTable::push)ed onto its
//! connection's queue; the driver's writer for that connection takes the
//! queue a batch at a time ([`take_batch`](ConnTable::take_batch)) and says
//! when the batch is written ([`handle_written`](ConnTable::handle_written)).
//! A frame counts against the marks from the moment it is queued until its
//! batch is written, so a writer stuck on a peer that does not read still
//! holds its batch against the mark.
//!
//! The table also records what the driver has to act on, without doing it:
//! writers to wake (their queue was empty and they were parked), and
//! connections to close, with the reason for the peer.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use msg_wire::{EncodedFrame, Reason};

use crate::driver::conn::PeerInfo;

/// A connection's id: [`PeerInfo::conn_id`], unique within the process.
pub(crate) type ConnId = u64;

/// Hashes a [`ConnId`] as itself: ids are distinct counters, and SipHash on
/// the path of every frame costs more than the lookup.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for ids; anything else folds in bytewise.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Spread the low bits, which is where consecutive ids differ.
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by connection id.
pub(crate) type IdMap<V> = HashMap<ConnId, V, BuildHasherDefault<IdHasher>>;

/// The send high-water marks of every connection of one socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendLimits {
    /// Frames queued or being written.
    pub(crate) frames: usize,
    /// Bytes queued or being written.
    pub(crate) bytes: usize,
}

/// The receive high-water marks: messages and payload bytes waiting for the
/// application.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecvLimits {
    pub(crate) messages: usize,
    pub(crate) bytes: usize,
}

impl RecvLimits {
    /// Whether a queue holding `count` messages of `bytes` payload bytes
    /// takes one more of `next` bytes (with `None`: whether it takes any
    /// more at all). A message larger than the whole bytes mark still goes
    /// into an empty queue.
    pub(crate) fn admits(self, count: usize, bytes: usize, next: Option<usize>) -> bool {
        count < self.messages
            && (bytes == 0
                || match next {
                    Some(len) => bytes.saturating_add(len) <= self.bytes,
                    None => bytes < self.bytes,
                })
    }
}

/// One live connection, as the pattern sees it.
#[derive(Debug)]
pub(crate) struct Conn<S> {
    /// Who is at the other end.
    pub(crate) peer: Arc<PeerInfo>,
    /// What the pattern keeps for this connection.
    pub(crate) state: S,
    queue: VecDeque<EncodedFrame>,
    /// Bytes of `queue`.
    queued_bytes: usize,
    /// A batch the writer has taken and not yet reported written.
    writing_frames: usize,
    writing_bytes: usize,
    /// The writer found the queue empty and waits to be woken.
    writer_parked: bool,
    /// The pattern asked for the connection to close.
    closing: bool,
}

impl<S> Conn<S> {
    /// Frames queued or being written.
    pub(crate) fn frames(&self) -> usize {
        self.queue.len() + self.writing_frames
    }

    /// Bytes queued or being written.
    pub(crate) fn bytes(&self) -> usize {
        self.queued_bytes + self.writing_bytes
    }

    /// Whether the pattern asked for this connection to close; it stays in
    /// the table until the driver reports it down, but takes no new frames.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing
    }
}

/// Queues `frame` on `conn` unless it is closing; a parked writer goes on
/// the `wake` list.
fn enqueue<S>(conn: &mut Conn<S>, id: ConnId, frame: EncodedFrame, wake: &mut Vec<ConnId>) -> bool {
    if conn.closing {
        return false;
    }
    conn.queued_bytes += frame.len();
    conn.queue.push_back(frame);
    if std::mem::take(&mut conn.writer_parked) {
        wake.push(id);
    }
    true
}

/// Whether a frame of `len` bytes fits on `conn` under `limits`. A frame
/// larger than the whole bytes mark still goes on an idle connection.
pub(crate) fn fits<S>(conn: &Conn<S>, limits: SendLimits, len: usize) -> bool {
    !conn.closing && conn.frames() < limits.frames && {
        let bytes = conn.bytes();
        bytes == 0 || bytes.saturating_add(len) <= limits.bytes
    }
}

/// A request to close a connection, for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseRequest {
    pub(crate) conn: ConnId,
    /// Sent to the peer in the `Close` frame.
    pub(crate) code: Reason,
    pub(crate) text: String,
    /// Whether the peer broke the protocol (counted and reported as
    /// misbehaviour) rather than, say, being replaced.
    pub(crate) violation: bool,
}

/// The live connections of one socket and their outgoing queues.
#[derive(Debug)]
pub struct ConnTable<S> {
    conns: IdMap<Conn<S>>,
    /// Ids in the order they came up, for round-robin choices.
    order: Vec<ConnId>,
    limits: SendLimits,
    /// Writers to wake: their queue got a frame while they were parked.
    wake: Vec<ConnId>,
    closes: Vec<CloseRequest>,
    /// Room opened (a batch written, a connection up or gone): senders
    /// waiting for room may try again.
    room: bool,
}

impl<S> ConnTable<S> {
    pub(crate) fn new(limits: SendLimits) -> Self {
        Self {
            conns: IdMap::default(),
            order: Vec::new(),
            limits,
            wake: Vec::new(),
            closes: Vec::new(),
            room: false,
        }
    }

    /// Adds a connection that finished its handshake.
    pub(crate) fn insert(&mut self, peer: Arc<PeerInfo>, state: S) {
        let id = peer.conn_id;
        let conn = Conn {
            peer,
            state,
            queue: VecDeque::new(),
            queued_bytes: 0,
            writing_frames: 0,
            writing_bytes: 0,
            writer_parked: false,
            closing: false,
        };
        if self.conns.insert(id, conn).is_none() {
            self.order.push(id);
        }
        // Room on a new connection, for senders waiting for one.
        self.room = true;
    }

    /// Removes a connection that went down, with whatever was queued on it.
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Conn<S>> {
        let conn = self.conns.remove(&id)?;
        self.order.retain(|&c| c != id);
        self.wake.retain(|&c| c != id);
        self.room = true;
        Some(conn)
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn<S>> {
        self.conns.get_mut(&id)
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn<S>> {
        self.conns.get(&id)
    }

    /// Live connections, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&ConnId, &Conn<S>)> {
        self.conns.iter()
    }

    /// Ids in the order the connections came up.
    pub(crate) fn order(&self) -> &[ConnId] {
        &self.order
    }

    pub(crate) fn limits(&self) -> SendLimits {
        self.limits
    }

    /// Whether a frame of `len` bytes fits on `id` under both marks. A frame
    /// larger than the whole bytes mark still goes on an idle connection.
    pub(crate) fn has_room(&self, id: ConnId, len: usize) -> bool {
        self.conns
            .get(&id)
            .is_some_and(|c| fits(c, self.limits, len))
    }

    /// Queues `frame` on `id`, marks or not; control frames (pongs,
    /// subscriptions) use this directly, data frames after
    /// [`has_room`](Self::has_room). Returns whether it was queued (not on a
    /// connection that is gone or closing).
    pub(crate) fn push(&mut self, id: ConnId, frame: EncodedFrame) -> bool {
        match self.conns.get_mut(&id) {
            Some(conn) => enqueue(conn, id, frame, &mut self.wake),
            None => false,
        }
    }

    /// Offers every connection (closing ones excepted) to `f`, which may
    /// give back a frame to queue on it; `f` also sees the marks, to decide.
    /// Returns how many frames were queued.
    pub(crate) fn fan_out(
        &mut self,
        f: impl FnMut(&mut Conn<S>, SendLimits) -> Option<EncodedFrame>,
    ) -> usize {
        self.fan_out_parts(&[], f)
    }

    /// [`fan_out`](Self::fan_out) for a multipart message: where `f` gives
    /// back the frame of the last part, the `head` frames (the same for
    /// every connection) are queued before it.
    pub(crate) fn fan_out_parts(
        &mut self,
        head: &[EncodedFrame],
        mut f: impl FnMut(&mut Conn<S>, SendLimits) -> Option<EncodedFrame>,
    ) -> usize {
        let mut queued = 0;
        for (&id, conn) in self.conns.iter_mut() {
            if conn.closing {
                continue;
            }
            if let Some(frame) = f(conn, self.limits) {
                for part in head {
                    enqueue(conn, id, part.clone(), &mut self.wake);
                }
                queued += usize::from(enqueue(conn, id, frame, &mut self.wake));
            }
        }
        queued
    }

    /// For the writer of `id`: moves queued frames into `out`, up to about
    /// `max_bytes` (at least one frame), and counts them as being written.
    /// With nothing queued the writer is parked (woken by the next
    /// [`push`](Self::push)) and this returns false.
    pub(crate) fn take_batch(
        &mut self,
        id: ConnId,
        out: &mut Vec<EncodedFrame>,
        max_bytes: usize,
    ) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        let mut taken = 0;
        while let Some(frame) = conn.queue.front() {
            if taken > 0 && taken + frame.len() > max_bytes {
                break;
            }
            let Some(frame) = conn.queue.pop_front() else {
                break;
            };
            taken += frame.len();
            conn.queued_bytes -= frame.len();
            conn.writing_frames += 1;
            out.push(frame);
        }
        conn.writing_bytes += taken;
        if out.is_empty() {
            conn.writer_parked = true;
            false
        } else {
            true
        }
    }

    /// The writer of `id` is done with its batch: `frames` frames of `bytes`
    /// bytes leave the marks (written, or given up). Returns whether more is
    /// queued.
    pub(crate) fn handle_written(&mut self, id: ConnId, frames: usize, bytes: usize) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        conn.writing_frames = conn.writing_frames.saturating_sub(frames);
        conn.writing_bytes = conn.writing_bytes.saturating_sub(bytes);
        self.room = true;
        !conn.queue.is_empty()
    }

    /// Drops what is queued on `id` (the connection is ending); returns the
    /// frames and bytes dropped.
    pub(crate) fn clear(&mut self, id: ConnId) -> (usize, usize) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return (0, 0);
        };
        let dropped = (conn.queue.len(), conn.queued_bytes);
        conn.queue.clear();
        conn.queued_bytes = 0;
        self.room = true;
        dropped
    }

    /// The driver is ending `id`: it takes no new frames, and what is queued
    /// is dropped. Returns the frames and bytes dropped.
    pub(crate) fn closing(&mut self, id: ConnId) -> (usize, usize) {
        let dropped = self.clear(id);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.closing = true;
        }
        dropped
    }

    /// Frames and bytes queued or being written, on all connections.
    pub(crate) fn total(&self) -> (usize, usize) {
        self.conns
            .values()
            .fold((0, 0), |(f, b), c| (f + c.frames(), b + c.bytes()))
    }

    /// Asks the driver to close `id`, telling the peer `code` and `text`.
    /// The connection takes no new frames; what is queued is dropped.
    pub(crate) fn close(&mut self, id: ConnId, code: Reason, text: &str, violation: bool) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.closing {
            return;
        }
        conn.closing = true;
        conn.queue.clear();
        conn.queued_bytes = 0;
        self.room = true;
        self.closes.push(CloseRequest {
            conn: id,
            code,
            text: text.to_owned(),
            violation,
        });
    }

    /// Writers to wake, for the driver.
    pub(crate) fn drain_wakes(&mut self) -> std::vec::Drain<'_, ConnId> {
        self.wake.drain(..)
    }

    /// Connections to close, for the driver.
    pub(crate) fn poll_close(&mut self) -> Option<CloseRequest> {
        if self.closes.is_empty() {
            None
        } else {
            Some(self.closes.remove(0))
        }
    }

    /// Whether room opened since the last call.
    pub(crate) fn take_room(&mut self) -> bool {
        std::mem::take(&mut self.room)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use msg_transport::PeerAddr;
    use msg_wire::{Frame, FrameCodec, SocketType};

    use super::*;

    fn peer(id: ConnId) -> Arc<PeerInfo> {
        Arc::new(PeerInfo {
            identity: Bytes::from_static(b"p"),
            addr: PeerAddr::Inproc {
                name: "t".into(),
                conn_id: id,
            },
            socket_type: SocketType::Sub,
            conn_id: id,
            certificates: None,
            principal: Default::default(),
        })
    }

    fn frame(len: usize) -> EncodedFrame {
        FrameCodec::new()
            .encode_parts(
                &Frame::Data {
                    seq: 1,
                    payload: Bytes::from(vec![0; len]),
                },
                msg_wire::Compression::None,
            )
            .unwrap()
    }

    fn table() -> ConnTable<()> {
        ConnTable::new(SendLimits {
            frames: 2,
            bytes: 1000,
        })
    }

    #[test]
    fn a_batch_being_written_counts_against_the_marks() {
        let mut t = table();
        t.insert(peer(1), ());
        assert!(t.has_room(1, 10));
        t.push(1, frame(10));
        t.push(1, frame(10));
        assert!(!t.has_room(1, 10), "two frames queued: the frame mark");
        let mut out = Vec::new();
        assert!(t.take_batch(1, &mut out, 1 << 20));
        assert_eq!(out.len(), 2);
        assert!(!t.has_room(1, 10), "still counted while being written");
        let bytes = out.iter().map(EncodedFrame::len).sum();
        assert!(!t.handle_written(1, 2, bytes));
        assert!(t.take_room());
        assert!(t.has_room(1, 10));
        assert_eq!(t.total(), (0, 0));
    }

    #[test]
    fn the_bytes_mark_lets_one_large_frame_through_an_idle_connection() {
        let mut t = table();
        t.insert(peer(1), ());
        assert!(t.has_room(1, 5000));
        t.push(1, frame(5000));
        assert!(!t.has_room(1, 1));
    }

    #[test]
    fn a_parked_writer_is_woken_once_by_the_next_frame() {
        let mut t = table();
        t.insert(peer(1), ());
        let mut out = Vec::new();
        assert!(!t.take_batch(1, &mut out, 100), "nothing queued: parked");
        t.push(1, frame(1));
        t.push(1, frame(1));
        assert_eq!(t.drain_wakes().collect::<Vec<_>>(), vec![1]);
        assert_eq!(t.drain_wakes().count(), 0);
    }

    #[test]
    fn batches_stop_at_the_byte_limit_but_take_at_least_one_frame() {
        let mut t = table();
        t.insert(peer(1), ());
        t.push(1, frame(300));
        t.push(1, frame(300));
        let mut out = Vec::new();
        assert!(t.take_batch(1, &mut out, 100));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_closing_connection_drops_its_queue_and_takes_nothing_new() {
        let mut t = table();
        t.insert(peer(1), ());
        t.push(1, frame(10));
        t.close(1, Reason::Normal, "bye", false);
        t.close(1, Reason::Normal, "again", false);
        assert_eq!(t.total(), (0, 0));
        assert!(!t.push(1, frame(10)));
        assert!(!t.has_room(1, 1));
        let close = t.poll_close().expect("one close request");
        assert_eq!((close.conn, close.text.as_str()), (1, "bye"));
        assert!(t.poll_close().is_none(), "asked once");
    }

    #[test]
    fn round_robin_order_follows_arrival_and_forgets_the_departed() {
        let mut t = table();
        for id in [5, 3, 9] {
            t.insert(peer(id), ());
        }
        t.remove(3);
        assert_eq!(t.order(), &[5, 9]);
    }
}
