//! The publishing side of publish/subscribe.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};

use bytes::{Bytes, BytesMut};
use msg_transport::{Endpoint, Transport};
use msg_wire::{EncodedFrame, Frame, FrameCodec, Reason, SocketType};

use crate::driver::conn::{ConnHandle, Pattern, QueueError};
use crate::driver::core::Core;
use crate::error::{PublishError, SocketError};
use crate::monitor::{SocketEvents, SocketStats};
use crate::options::SocketOptions;
use crate::proto::topics::TopicSet;
use crate::socket::{CloseReport, impl_common};

/// Publishes messages to every subscriber whose subscription matches.
///
/// Filtering is by topic prefix and happens here, at the publisher, so a
/// subscriber receives only what it asked for and an uninterested one costs
/// nothing on the wire. A message is encoded (and compressed) once; every
/// matching subscriber gets the same payload bytes (a `Bytes` clone, not a
/// copy), with a small header of its own.
///
/// # High-water mark: drop the newest, never wait
///
/// The publisher never waits for a subscriber: [`publish`](Self::publish) is
/// not `async`. Each subscriber has a bounded queue
/// ([`send_hwm`](SocketOptions::send_hwm) messages and
/// [`send_hwm_bytes`](SocketOptions::send_hwm_bytes), whichever is reached
/// first, counting every message not yet written to the transport,
/// including those being written); when it is full the new message is
/// dropped for that subscriber only and counted in
/// [`SocketStats::dropped_hwm`], while the other subscribers go on
/// receiving everything. A subscriber that stops reading therefore costs at
/// most its queue plus what the transport buffers (and, per queued message,
/// a share of a small header buffer, at most 2 KiB).
///
/// # Sequence numbers
///
/// Each connection to a subscriber has its own counter. Every message that
/// matches that subscriber takes the next number, 1, 2, 3, ..., whether it
/// is queued or dropped at the high-water mark. So the numbers a subscriber
/// receives on one connection go up by exactly one unless this publisher
/// dropped messages for it, and a jump of `n + 1` means exactly `n` were
/// dropped ([`PubMessage::seq`](crate::PubMessage::seq),
/// [`SocketStats::gaps`] on the subscriber). A new connection (after a
/// reconnect or a publisher restart) starts again at 1.
///
/// # Limits
///
/// A subscriber may hold at most 10,000 distinct prefixes here, 1 MiB of
/// them in all; one that asks for more has its connection closed (a
/// warning, [`SocketStats::protocol_errors`] and a
/// [`SocketEvent::PeerMisbehaved`](crate::SocketEvent::PeerMisbehaved)),
/// and the other subscribers carry on.
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt;
/// use msg_socket::{PubSocket, SubSocket};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let publisher = PubSocket::new();
/// let endpoint = publisher.bind("inproc://pub-doc").await?;
///
/// let mut subscriber = SubSocket::new();
/// subscriber.subscribe("prices.").await;
/// subscriber.connect(&endpoint.to_string())?;
/// publisher.wait_for_subscribers(1, Duration::from_secs(5)).await;
///
/// publisher.publish("news.today", "not for us")?;
/// publisher.publish("prices.btc", "97000")?;
/// let msg = subscriber.next().await.expect("a message");
/// assert_eq!(msg.topic(), "prices.btc");
/// assert_eq!(msg.payload(), "97000");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PubSocket {
    core: Arc<Core>,
    state: Arc<PubState>,
}

#[derive(Debug)]
struct Subscriber {
    conn: Arc<ConnHandle>,
    topics: TopicSet,
}

#[derive(Debug)]
struct PubState {
    core: Arc<Core>,
    subscribers: RwLock<HashMap<u64, Subscriber>>,
    codec: FrameCodec,
    /// The publish lock, and scratch space for the per-subscriber headers.
    ///
    /// Held while a message is numbered and queued for every subscriber, so
    /// that messages published from several threads at once reach each
    /// queue in the order of their sequence numbers (otherwise a subscriber
    /// would see numbers out of order and count gaps that are not there).
    headers: Mutex<BytesMut>,
}

impl PubSocket {
    /// A socket with default options.
    pub fn new() -> Self {
        Self::with_options(SocketOptions::default()).expect("default options are valid")
    }

    /// A socket with these options.
    ///
    /// # Errors
    ///
    /// [`SocketError::Config`] when the options contradict each other.
    pub fn with_options(options: SocketOptions) -> Result<Self, SocketError> {
        let core = Core::new(SocketType::Pub, options)?;
        let state = Arc::new(PubState {
            core: core.clone(),
            subscribers: RwLock::new(HashMap::new()),
            codec: FrameCodec::with_options(core.opts.wire.clone()),
            headers: Mutex::new(BytesMut::new()),
        });
        Ok(Self { core, state })
    }

    /// Publishes `payload` under `topic` to every subscriber whose prefix
    /// matches, without waiting. Returns how many subscribers it was queued
    /// for; a subscriber whose queue is at its high-water mark is not
    /// counted (the message is dropped for it and counted in
    /// [`SocketStats::dropped_hwm`]).
    ///
    /// Only subscriptions that have reached the publisher count: a message
    /// published before a new subscriber's subscription arrives is not sent
    /// to it (see [`wait_for_subscribers`](Self::wait_for_subscribers)).
    ///
    /// The message is encoded (and compressed) once, before any subscriber
    /// is looked at. Calls from several threads at once take turns only
    /// for numbering and queueing (no system call, rarely an allocation), so that
    /// every subscriber's queue is in sequence-number order.
    ///
    /// # Errors
    ///
    /// [`PublishError::Encode`] for a topic over 65,535 bytes or a payload
    /// over the frame limit ([`SocketOptions::max_frame_size`]);
    /// [`PublishError::Closed`] after close.
    pub fn publish(
        &self,
        topic: impl Into<Bytes>,
        payload: impl Into<Bytes>,
    ) -> Result<usize, PublishError> {
        if self.core.is_closing() {
            return Err(PublishError::Closed);
        }
        let state = &self.state;
        let topic: Bytes = topic.into();
        // Encoded and compressed once, whoever receives it.
        let encoded = state
            .codec
            .encode_parts(
                &Frame::Publish {
                    topic: topic.clone(),
                    seq: 0,
                    payload: payload.into(),
                },
                self.core.opts.wire.get_compression(),
            )
            .map_err(PublishError::Encode)?;
        let counters = &self.core.counters;
        let hwm = self.core.opts.send_hwm;
        let mut queued = 0;
        // Neither lock is held across an await (there is none): queueing is
        // `try_send`, which never waits.
        let subscribers = state.subscribers.read().expect("subscribers lock");
        let mut headers = state.headers.lock().expect("headers lock");
        for sub in subscribers.values() {
            if !sub.topics.matches(&topic) {
                continue;
            }
            // Every message meant for this subscriber takes the next number,
            // queued or dropped, so the subscriber can count what it missed.
            // Only publishers (under the publish lock) touch this counter.
            let seq = sub.conn.seq.load(Relaxed) + 1;
            let Some(frame) = stamp(&encoded, seq, &mut headers) else {
                continue;
            };
            sub.conn.seq.store(seq, Relaxed);
            // The mark counts every frame not yet written, including the
            // batch the writer has taken out of the queue and is writing (to
            // a peer that does not read, that write never ends): the queue
            // alone would let one more batch through.
            let sent = if sub.conn.queued() >= hwm {
                Err(QueueError::Full)
            } else {
                sub.conn.try_send(frame)
            };
            match sent {
                Ok(()) => {
                    queued += 1;
                    counters.msgs_sent.fetch_add(1, Relaxed);
                }
                Err(QueueError::Full) => {
                    counters.dropped_hwm.fetch_add(1, Relaxed);
                }
                // The connection is ending; it is about to leave the table.
                Err(QueueError::Closed) => {}
            }
        }
        Ok(queued)
    }

    /// Waits until at least `n` connected subscribers have sent at least one
    /// subscription, or `timeout` passes; returns whether they have.
    /// (Messages published before a subscription reaches the publisher are
    /// not delivered to that subscriber.)
    pub async fn wait_for_subscribers(&self, n: usize, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progress = self.core.progress.notified();
            if self.subscribers() >= n {
                return true;
            }
            tokio::select! {
                _ = progress => {}
                _ = tokio::time::sleep_until(deadline) => return self.subscribers() >= n,
            }
        }
    }

    /// Connected subscribers with at least one subscription.
    pub fn subscribers(&self) -> usize {
        self.state
            .subscribers
            .read()
            .expect("subscribers lock")
            .values()
            .filter(|s| !s.topics.is_empty())
            .count()
    }
}

impl Default for PubSocket {
    fn default() -> Self {
        Self::new()
    }
}

impl Pattern for PubState {
    async fn connected(&self, conn: &Arc<ConnHandle>) {
        self.subscribers.write().expect("subscribers lock").insert(
            conn.peer.conn_id,
            Subscriber {
                conn: conn.clone(),
                topics: TopicSet::default(),
            },
        );
    }

    async fn frame(
        &self,
        conn: &Arc<ConnHandle>,
        frame: Frame,
    ) -> Result<(), (Reason, &'static str)> {
        let mut subs = self.subscribers.write().expect("subscribers lock");
        let Some(sub) = subs.get_mut(&conn.peer.conn_id) else {
            return Ok(());
        };
        match frame {
            // Set semantics at the publisher: the subscriber keeps counts
            // and sends only the first subscribe and the last unsubscribe,
            // so a resend after reconnect can never double a subscription.
            Frame::Subscribe { topic } => {
                if sub.topics.contains(&topic) {
                    return Ok(());
                }
                if sub.topics.len() >= MAX_SUBSCRIPTIONS {
                    return Err((Reason::Overloaded, "too many subscriptions"));
                }
                if sub.topics.bytes().saturating_add(topic.len()) > MAX_SUBSCRIPTION_BYTES {
                    return Err((Reason::Overloaded, "subscriptions too large"));
                }
                // A copy: the decoded topic is a view into the connection's
                // read buffer, and keeping it would pin that whole buffer
                // for as long as the subscription lasts.
                sub.topics.insert(Bytes::copy_from_slice(&topic));
                drop(subs);
                self.core.progress.notify_waiters();
                Ok(())
            }
            Frame::Unsubscribe { topic } => {
                sub.topics.remove(&topic);
                Ok(())
            }
            _ => Err((
                Reason::ProtocolError,
                "a PUB socket only accepts subscriptions",
            )),
        }
    }

    fn disconnected(&self, conn: &Arc<ConnHandle>) {
        self.subscribers
            .write()
            .expect("subscribers lock")
            .remove(&conn.peer.conn_id);
    }
}

/// Stamps `seq` into a copy of `encoded`'s header, sharing its payload.
///
/// The headers go into `scratch`, which is refilled a chunk at a time (room
/// for up to [`HEADERS_PER_CHUNK`] headers, at most [`SCRATCH_CHUNK`] bytes)
/// so that a publish to many subscribers, or many publishes, allocate once
/// per chunk rather than once per subscriber. (Left to itself, `BytesMut`
/// would do the latter: once earlier headers split off it are still queued,
/// it cannot reuse its buffer and, remembering no capacity below 1 KiB,
/// allocates exactly one header each time.) A queued header keeps its chunk
/// alive until written, so a subscriber's queue pins at most
/// [`SCRATCH_CHUNK`] bytes per queued message beyond what it counts.
fn stamp(encoded: &EncodedFrame, seq: u64, scratch: &mut BytesMut) -> Option<EncodedFrame> {
    let len = encoded.header().len();
    if scratch.capacity() < len {
        let chunk = len
            .saturating_mul(HEADERS_PER_CHUNK)
            .min(SCRATCH_CHUNK)
            .max(len);
        scratch.reserve(chunk);
    }
    encoded.with_seq(seq, scratch)
}

/// Headers stamped from one scratch allocation, when they fit in
/// [`SCRATCH_CHUNK`].
const HEADERS_PER_CHUNK: usize = 64;

/// Largest scratch allocation for headers, in bytes.
const SCRATCH_CHUNK: usize = 2048;

/// Most distinct prefixes one subscriber may hold: a peer cannot grow the
/// publisher's memory without bound. A subscriber that asks for more has its
/// connection closed ([`Reason::Overloaded`]).
const MAX_SUBSCRIPTIONS: usize = 10_000;

/// Most bytes of prefixes one subscriber may hold (a topic may be 64 KiB, so
/// the count alone would allow 640 MiB). Past it the connection is closed.
const MAX_SUBSCRIPTION_BYTES: usize = 1024 * 1024;

impl_common!(PubSocket);

#[cfg(test)]
mod tests {
    use super::*;

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
