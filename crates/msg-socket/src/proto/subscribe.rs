//! The subscriber's state machine: its counted subscriptions and what each
//! publisher is told of them, gap counting per connection, and the
//! drop-the-newest decision at its own receive high-water mark.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use msg_wire::{Compression, EncodedFrame, Frame, FrameCodec, Reason, SocketType};

use crate::driver::conn::PeerInfo;
use crate::options::SocketOptions;
use crate::proto::conns::{ConnId, ConnTable, RecvLimits, SendLimits};
use crate::proto::topics::{TopicSet, gap};
use crate::proto::{ProtoStats, Protocol, Violation, Wake};
use crate::subscribe::PubMessage;

/// What the subscriber keeps per publisher connection (opaque outside the
/// crate).
#[derive(Debug, Default)]
pub struct Publisher {
    last_seq: u64,
    /// A message from this connection was delivered (queued for the
    /// application): the next is not the first.
    delivered: bool,
}

/// The subscriber's state machine: the type parameter of
/// [`SubSocket`](crate::SubSocket), opaque outside the crate.
#[derive(Debug)]
pub struct SubProto {
    conns: ConnTable<Publisher>,
    /// The counted subscriptions; publishers hear of the first subscribe
    /// and the last unsubscribe of each prefix.
    topics: TopicSet,
    codec: FrameCodec,
    compression: Compression,
    inbox: VecDeque<PubMessage>,
    /// Payload bytes in `inbox`.
    inbox_bytes: usize,
    recv: RecvLimits,
    stats: ProtoStats,
    delivered: bool,
}

impl SubProto {
    pub(crate) fn with_limits(
        send: SendLimits,
        recv: RecvLimits,
        codec: FrameCodec,
        compression: Compression,
    ) -> Self {
        Self {
            conns: ConnTable::new(send),
            topics: TopicSet::default(),
            codec,
            compression,
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            recv,
            stats: ProtoStats::default(),
            delivered: false,
        }
    }

    /// Counts one subscription to `prefix`; the first is queued for every
    /// connected publisher (and every later one gets it with the rest).
    pub(crate) fn subscribe(&mut self, prefix: Bytes) {
        if self.topics.subscribe(prefix.clone()) {
            self.tell_all(&Frame::Subscribe { topic: prefix });
        }
    }

    /// Undoes one subscription to `prefix`; the last one is queued for
    /// every connected publisher.
    pub(crate) fn unsubscribe(&mut self, prefix: Bytes) {
        if self.topics.unsubscribe(&prefix) {
            self.tell_all(&Frame::Unsubscribe { topic: prefix });
        }
    }

    /// Whether every connection's queue is below its frame mark: a
    /// subscription change waits for this, so that changes made faster
    /// than a publisher reads them cannot pile up without bound.
    pub(crate) fn control_room(&self) -> bool {
        let limit = self.conns.limits().frames;
        self.conns
            .iter()
            .all(|(_, c)| c.is_closing() || c.frames() < limit)
    }

    /// The next message for the application.
    pub(crate) fn poll_delivery(&mut self) -> Option<PubMessage> {
        let msg = self.inbox.pop_front()?;
        self.inbox_bytes -= msg.size();
        Some(msg)
    }

    /// Messages waiting for the application.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn pending(&self) -> usize {
        self.inbox.len()
    }

    /// Queues a control frame for every publisher, in the order of the
    /// calls; a topic too long to encode is kept here but cannot be sent.
    fn tell_all(&mut self, frame: &Frame) {
        if let Some(encoded) = self.encode(frame) {
            self.conns.fan_out(|_, _| Some(encoded.clone()));
        }
    }

    fn encode(&self, frame: &Frame) -> Option<EncodedFrame> {
        self.codec.encode_parts(frame, self.compression).ok()
    }
}

impl Protocol for SubProto {
    type ConnState = Publisher;
    type Delivery = crate::subscribe::PubMessage;

    const SOCKET_TYPE: SocketType = SocketType::Sub;

    fn new(options: &SocketOptions) -> Self {
        Self::with_limits(
            options.send_limits(),
            options.recv_limits(),
            FrameCodec::with_options(options.wire.clone()),
            options.wire.get_compression(),
        )
    }

    fn conns(&self) -> &ConnTable<Publisher> {
        &self.conns
    }

    fn conns_mut(&mut self) -> &mut ConnTable<Publisher> {
        &mut self.conns
    }

    fn handle_conn_up(&mut self, _now: Instant, peer: Arc<PeerInfo>) {
        let id = peer.conn_id;
        self.conns.insert(peer, Publisher::default());
        // Every subscription again: a publisher that restarted knows none.
        let frames: Vec<EncodedFrame> = self
            .topics
            .prefixes()
            .filter_map(|topic| {
                self.encode(&Frame::Subscribe {
                    topic: topic.clone(),
                })
            })
            .collect();
        for frame in frames {
            self.conns.push(id, frame);
        }
    }

    fn handle_conn_down(&mut self, _now: Instant, conn: ConnId) {
        self.conns.remove(conn);
    }

    fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: Frame) -> Result<(), Violation> {
        self.handle_message(now, conn, Vec::new(), frame)
    }

    /// A publication of one or more parts, whole.
    fn handle_message(
        &mut self,
        _now: Instant,
        conn: ConnId,
        head: Vec<Bytes>,
        last: Frame,
    ) -> Result<(), Violation> {
        let Frame::Publish {
            topic,
            seq,
            payload,
        } = last
        else {
            return Err((
                Reason::ProtocolError,
                "a SUB socket only accepts publications",
            ));
        };
        let Some(publisher) = self.conns.get_mut(conn) else {
            return Ok(());
        };
        // A correct publisher numbers 1, 2, 3, ... on each connection; one
        // whose numbers do not go up is broken or hostile, and the
        // application's view of the sequence would be wrong with it.
        if seq <= publisher.state.last_seq {
            return Err((
                Reason::ProtocolError,
                "publication sequence numbers must go up",
            ));
        }
        let last = std::mem::replace(&mut publisher.state.last_seq, seq);
        // A hostile publisher can claim any jump: the count saturates.
        self.stats.gaps = self.stats.gaps.saturating_add(gap(last, seq));
        self.stats.msgs_received += 1;
        let size = head.iter().map(Bytes::len).sum::<usize>() + payload.len();
        if !self
            .recv
            .admits(self.inbox.len(), self.inbox_bytes, Some(size))
        {
            self.stats.dropped_hwm += 1;
            return Ok(());
        }
        let first = !std::mem::replace(&mut publisher.state.delivered, true);
        let msg = PubMessage::new(topic, head, payload, seq, publisher.peer.clone(), first);
        self.inbox_bytes += size;
        self.inbox.push_back(msg);
        self.delivered = true;
        Ok(())
    }

    fn poll_wake(&mut self) -> Wake {
        Wake {
            readable: false,
            deliveries: std::mem::take(&mut self.delivered),
            changed: false,
        }
    }

    fn stats(&self) -> ProtoStats {
        self.stats
    }
}
