//! The publisher's state machine: subscribers and their prefixes, the
//! per-subscriber sequence numbers, and the drop-the-newest decision at each
//! subscriber's high-water mark.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use msg_wire::{EncodedFrame, Frame, Reason, SocketType};

use crate::driver::conn::PeerInfo;
use crate::options::SocketOptions;
use crate::proto::conns::{ConnId, ConnTable, SendLimits, fits};
use crate::proto::topics::TopicSet;
use crate::proto::{ProtoStats, Protocol, Violation, Wake, reserve_header};

/// Most distinct prefixes one subscriber may hold: a peer cannot grow the
/// publisher's memory without bound. A subscriber that asks for more has its
/// connection closed ([`Reason::Overloaded`]).
pub(crate) const MAX_SUBSCRIPTIONS: usize = 10_000;

/// Most bytes of prefixes one subscriber may hold (a topic may be 64 KiB, so
/// the count alone would allow 640 MiB). Past it the connection is closed.
pub(crate) const MAX_SUBSCRIPTION_BYTES: usize = 1024 * 1024;

/// What the publisher keeps per subscriber connection (opaque outside the
/// crate).
#[derive(Debug, Default)]
pub struct Subscriber {
    topics: TopicSet,
    /// The last sequence number given to a message for this subscriber.
    seq: u64,
}

/// The publisher's state machine: the type parameter of
/// [`PubSocket`](crate::PubSocket), opaque outside the crate.
#[derive(Debug)]
pub struct PubProto {
    conns: ConnTable<Subscriber>,
    /// Scratch space the per-subscriber headers are cut from.
    headers: BytesMut,
    stats: ProtoStats,
    changed: bool,
}

impl PubProto {
    pub(crate) fn with_limits(limits: SendLimits) -> Self {
        Self {
            conns: ConnTable::new(limits),
            headers: BytesMut::new(),
            stats: ProtoStats::default(),
            changed: false,
        }
    }

    /// Queues `encoded` (a `Publish` frame under `topic`, encoded once with
    /// sequence number 0) for every subscriber whose prefix matches, each
    /// copy stamped with that subscriber's next number. Returns how many
    /// subscribers it was queued for.
    ///
    /// Every matching subscriber's number goes up, queued or not: one whose
    /// queue is at its high-water mark loses the message (counted in
    /// `dropped_hwm`) and sees the jump.
    pub(crate) fn publish(&mut self, topic: &[u8], encoded: &EncodedFrame) -> usize {
        self.publish_parts(topic, &[], encoded)
    }

    /// [`publish`](Self::publish) for a multipart message: the `Part`
    /// frames of every part but the last go before `encoded` (which carries
    /// the topic and, once stamped, the sequence number) on each
    /// subscriber's connection, or none of it does.
    pub(crate) fn publish_parts(
        &mut self,
        topic: &[u8],
        head: &[EncodedFrame],
        encoded: &EncodedFrame,
    ) -> usize {
        let headers = &mut self.headers;
        let stats = &mut self.stats;
        let head_len: usize = head.iter().map(EncodedFrame::len).sum();
        let queued = self.conns.fan_out_parts(head, |conn, limits| {
            if !conn.state.topics.matches(topic) {
                return None;
            }
            let frame = stamp(encoded, conn.state.seq + 1, headers)?;
            conn.state.seq += 1;
            if fits(conn, limits, head_len + frame.len()) {
                Some(frame)
            } else {
                stats.dropped_hwm += 1;
                None
            }
        });
        self.stats.msgs_sent += queued as u64;
        queued
    }

    /// Connected subscribers with at least one subscription.
    pub(crate) fn subscribers(&self) -> usize {
        self.conns
            .iter()
            .filter(|(_, c)| !c.is_closing() && !c.state.topics.is_empty())
            .count()
    }
}

impl Protocol for PubProto {
    type ConnState = Subscriber;
    type Delivery = ();

    const SOCKET_TYPE: SocketType = SocketType::Pub;

    fn new(options: &SocketOptions) -> Self {
        Self::with_limits(options.send_limits())
    }

    fn conns(&self) -> &ConnTable<Subscriber> {
        &self.conns
    }

    fn conns_mut(&mut self) -> &mut ConnTable<Subscriber> {
        &mut self.conns
    }

    fn handle_conn_up(&mut self, _now: Instant, peer: Arc<PeerInfo>) {
        self.conns.insert(peer, Subscriber::default());
    }

    fn handle_conn_down(&mut self, _now: Instant, conn: ConnId) {
        if let Some(gone) = self.conns.remove(conn) {
            if !gone.state.topics.is_empty() {
                self.changed = true;
            }
        }
    }

    fn handle_frame(&mut self, _now: Instant, conn: ConnId, frame: Frame) -> Result<(), Violation> {
        let Some(sub) = self.conns.get_mut(conn) else {
            return Ok(());
        };
        let topics = &mut sub.state.topics;
        match frame {
            // Set semantics at the publisher: the subscriber keeps counts
            // and sends only the first subscribe and the last unsubscribe,
            // so a resend after reconnect can never double a subscription.
            Frame::Subscribe { topic } => {
                if topics.contains(&topic) {
                    return Ok(());
                }
                if topics.len() >= MAX_SUBSCRIPTIONS {
                    return Err((Reason::Overloaded, "too many subscriptions"));
                }
                if topics.bytes().saturating_add(topic.len()) > MAX_SUBSCRIPTION_BYTES {
                    return Err((Reason::Overloaded, "subscriptions too large"));
                }
                // A copy: the decoded topic is a view into the connection's
                // read buffer, and keeping it would pin that whole buffer
                // for as long as the subscription lasts.
                topics.insert(Bytes::copy_from_slice(&topic));
                self.changed = true;
                Ok(())
            }
            Frame::Unsubscribe { topic } => {
                topics.remove(&topic);
                self.changed = true;
                Ok(())
            }
            _ => Err((
                Reason::ProtocolError,
                "a PUB socket only accepts subscriptions",
            )),
        }
    }

    fn poll_wake(&mut self) -> Wake {
        Wake {
            readable: false,
            deliveries: false,
            changed: std::mem::take(&mut self.changed),
        }
    }

    fn stats(&self) -> ProtoStats {
        self.stats
    }
}

/// Stamps `seq` into a copy of `encoded`'s header, sharing its payload; the
/// header is cut from `scratch` (see [`reserve_header`]).
fn stamp(encoded: &EncodedFrame, seq: u64, scratch: &mut BytesMut) -> Option<EncodedFrame> {
    reserve_header(scratch, encoded.header().len());
    encoded.with_seq(seq, scratch)
}

#[cfg(test)]
mod tests {
    use msg_wire::FrameCodec;

    use super::*;
    use crate::proto::{HEADERS_PER_CHUNK, SCRATCH_CHUNK};

    fn encoded(topic: &'static str, payload: Bytes) -> EncodedFrame {
        FrameCodec::new()
            .encode_parts(
                &Frame::Publish {
                    topic: Bytes::from_static(topic.as_bytes()),
                    seq: 0,
                    payload,
                },
                msg_wire::Compression::None,
            )
            .unwrap()
    }

    /// One publish to ten subscribers: one payload shared by all, and the
    /// ten headers cut from one allocation.
    #[test]
    fn fan_out_shares_the_payload_and_one_header_buffer() {
        let payload = Bytes::from(vec![7u8; 4096]);
        let frame = encoded("prices.btc", payload.clone());
        let mut scratch = BytesMut::new();
        let copies: Vec<EncodedFrame> = (1..=10)
            .map(|seq| stamp(&frame, seq, &mut scratch).expect("a publish frame"))
            .collect();
        let header_len = frame.header().len();
        for (i, copy) in copies.iter().enumerate() {
            assert_eq!(
                copy.payload().as_ptr(),
                payload.as_ptr(),
                "subscriber {i} shares the payload"
            );
            assert_eq!(copy.header().len(), header_len);
            let seq = u64::from_be_bytes(copy.header()[7..15].try_into().unwrap());
            assert_eq!(seq, i as u64 + 1, "each copy has its own number");
        }
        for pair in copies.windows(2) {
            // Contiguous headers: split off one buffer, not allocated each.
            assert_eq!(
                pair[1].header().as_ptr(),
                pair[0].header().as_ptr().wrapping_add(header_len),
                "headers come from one allocation"
            );
        }
    }

    /// Headers of consecutive publishes still queued (not yet written) keep
    /// sharing chunks instead of allocating one each.
    #[test]
    fn stamping_allocates_once_per_chunk_while_headers_are_queued() {
        let frame = encoded("t", Bytes::from_static(b"x"));
        let header_len = frame.header().len();
        let mut scratch = BytesMut::new();
        let mut queued = Vec::new();
        let mut chunks = 0;
        let mut last_end = std::ptr::null::<u8>();
        for seq in 1..=1000 {
            let copy = stamp(&frame, seq, &mut scratch).unwrap();
            if copy.header().as_ptr() != last_end {
                chunks += 1;
            }
            last_end = copy.header().as_ptr().wrapping_add(header_len);
            queued.push(copy);
        }
        let per_chunk = (header_len * HEADERS_PER_CHUNK).min(SCRATCH_CHUNK) / header_len;
        assert!(
            chunks <= 1000usize.div_ceil(per_chunk),
            "{chunks} allocations for 1000 headers of {header_len} bytes"
        );
    }

    #[test]
    fn a_huge_topic_still_gets_its_header() {
        let topic = "t".repeat(60_000);
        let frame = FrameCodec::new()
            .encode_parts(
                &Frame::Publish {
                    topic: Bytes::from(topic),
                    seq: 0,
                    payload: Bytes::from_static(b"p"),
                },
                msg_wire::Compression::None,
            )
            .unwrap();
        let mut scratch = BytesMut::new();
        let a = stamp(&frame, 1, &mut scratch).unwrap();
        let b = stamp(&frame, 2, &mut scratch).unwrap();
        assert_eq!(a.len(), frame.len());
        assert_eq!(b.len(), frame.len());
        assert_ne!(a.header(), b.header());
    }
}
