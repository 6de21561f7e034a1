//! The publishing side of publish/subscribe.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};

use bytes::{Bytes, BytesMut};
use msg_transport::{Endpoint, Transport};
use msg_wire::{Frame, FrameCodec, Reason, SocketType};

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
/// subscriber receives only what it asked for. A message is encoded (and
/// compressed) once; every matching subscriber gets the same payload bytes,
/// with a header of its own.
///
/// The publisher never waits for a subscriber: each subscriber has a bounded
/// queue ([`send_hwm`](SocketOptions::send_hwm) messages and
/// [`send_hwm_bytes`](SocketOptions::send_hwm_bytes)), and when it is full
/// the newest messages for that subscriber are dropped and counted
/// ([`SocketStats::dropped_hwm`]), while the other subscribers go on
/// receiving everything.
///
/// Each message a subscriber is sent carries a sequence number that counts
/// up by one per message queued for that subscriber, so a dropped message
/// shows up at the subscriber as a gap
/// ([`PubMessage::seq`](crate::PubMessage::seq), [`SocketStats::gaps`]).
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
    /// Scratch space for per-subscriber headers, reused across messages.
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
    /// for (drops at a high-water mark are not counted here).
    ///
    /// # Errors
    ///
    /// [`PublishError::Encode`] for a topic over 65,535 bytes or a payload
    /// over the frame limit; [`PublishError::Closed`] after close.
    pub fn publish(
        &self,
        topic: impl Into<Bytes>,
        payload: impl Into<Bytes>,
    ) -> Result<usize, PublishError> {
        if self.core.cancel.is_cancelled() {
            return Err(PublishError::Closed);
        }
        let state = &self.state;
        let topic: Bytes = topic.into();
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
        let mut queued = 0;
        let subscribers = state.subscribers.read().expect("subscribers lock");
        let mut headers = state.headers.lock().expect("headers lock");
        for sub in subscribers.values() {
            if !sub.topics.matches(&topic) {
                continue;
            }
            // Every message meant for this subscriber takes the next number,
            // delivered or dropped, so the subscriber can count what it missed.
            let seq = sub.conn.seq.fetch_add(1, Relaxed) + 1;
            let Some(frame) = encoded.with_seq(seq, &mut headers) else {
                continue;
            };
            match sub.conn.try_send(frame) {
                Ok(()) => {
                    queued += 1;
                    counters.msgs_sent.fetch_add(1, Relaxed);
                }
                Err(QueueError::Full) => {
                    counters.dropped_hwm.fetch_add(1, Relaxed);
                }
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
                if sub.topics.len() >= MAX_SUBSCRIPTIONS {
                    return Err((Reason::Overloaded, "too many subscriptions"));
                }
                if sub.topics.insert(topic) {
                    drop(subs);
                    self.core.progress.notify_waiters();
                }
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

/// Most distinct prefixes one subscriber may hold: a peer cannot grow the
/// publisher's memory without bound.
const MAX_SUBSCRIPTIONS: usize = 10_000;

impl_common!(PubSocket);
