//! The subscribing side of publish/subscribe.

use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use msg_transport::{Endpoint, Transport};
use msg_wire::{Frame, Reason, SocketType};

use crate::driver::conn::{ConnHandle, Pattern, PeerInfo};
use crate::driver::core::Core;
use crate::driver::inbound::{InboundRx, InboundTx, inbound};
use crate::error::SocketError;
use crate::monitor::{SocketEvents, SocketStats};
use crate::options::SocketOptions;
use crate::proto::topics::{TopicSet, gap};
use crate::socket::{CloseReport, impl_common};

/// Receives the messages of one or more publishers that match its
/// subscriptions.
///
/// Subscriptions are topic prefixes (the empty prefix is everything). They
/// are sent to every connected publisher, which filters for us, and sent
/// again on every new connection, so a subscriber whose publisher restarts
/// keeps receiving without doing anything. Messages arrive as a [`Stream`]
/// of [`PubMessage`]s (or through [`recv`](Self::recv)).
///
/// # High-water mark: drop the newest
///
/// At most [`recv_hwm`](SocketOptions::recv_hwm) messages (and
/// [`recv_hwm_bytes`](SocketOptions::recv_hwm_bytes) of payload) wait in the
/// socket for the application; past that the newest are dropped and counted
/// in [`SocketStats::dropped_hwm`]. The socket keeps reading its
/// connections meanwhile, so a slow reader never slows its publishers, and
/// it delivers again as soon as the application catches up.
///
/// # Sequence numbers and gaps
///
/// Each publisher numbers the messages it sends this subscriber 1, 2, 3, ...
/// per connection (see [`PubMessage::seq`]). Messages a publisher dropped
/// for us at its high-water mark show up as jumps, and the socket counts
/// them in [`SocketStats::gaps`] (once a later message shows the jump).
/// Messages this socket dropped itself
/// at `recv_hwm` are counted in `dropped_hwm`, not in `gaps`, though the
/// application also sees them as jumps in `seq`.
///
/// ```
/// use std::time::Duration;
/// use msg_socket::{PubSocket, SubSocket};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let publisher = PubSocket::new();
/// let endpoint = publisher.bind("inproc://sub-doc").await?;
/// let mut subscriber = SubSocket::new();
/// subscriber.connect(&endpoint.to_string())?;
/// subscriber.subscribe("a.").await;
/// subscriber.subscribe("b.").await;
/// publisher.wait_for_subscribers(1, Duration::from_secs(5)).await;
///
/// publisher.publish("a.1", "first")?;
/// let msg = subscriber.recv().await.expect("a message");
/// assert_eq!((msg.topic().as_ref(), msg.seq()), (&b"a.1"[..], 1));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SubSocket {
    core: Arc<Core>,
    state: Arc<SubState>,
    rx: InboundRx<PubMessage>,
}

#[derive(Debug)]
struct SubState {
    core: Arc<Core>,
    /// The counted subscriptions. Their lock also serializes everything
    /// publishers are told: a subscribe or unsubscribe (the change and the
    /// frames that announce it) and the resend of every subscription to a
    /// new connection. Without it, two changes made at once, or a change
    /// racing a reconnect, could reach a publisher in the wrong order (an
    /// unsubscribe overtaken by the subscribe it undoes) and leave it
    /// sending what nobody asked for. It is an async mutex, held across the
    /// awaits that queue those frames, and never taken on the message path.
    topics: tokio::sync::Mutex<TopicSet>,
    conns: Mutex<Vec<Arc<ConnHandle>>>,
    tx: InboundTx<PubMessage>,
}

/// A message received by a [`SubSocket`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubMessage {
    topic: Bytes,
    payload: Bytes,
    seq: u64,
    publisher: Arc<PeerInfo>,
}

impl PubMessage {
    /// The topic it was published under.
    pub fn topic(&self) -> &Bytes {
        &self.topic
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Takes the payload out.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// Its number in the stream of messages its publisher sent this
    /// subscriber on this connection: 1 for the first, then up by one for
    /// every message that matched our subscriptions, including those the
    /// publisher dropped at its high-water mark. A jump from `a` to `b`
    /// means `b - a - 1` messages were lost: at the publisher (counted in
    /// [`SocketStats::gaps`]) or in this socket's own full queue (counted
    /// in [`SocketStats::dropped_hwm`]). Numbers are per connection: they
    /// start again at 1 after a reconnect, and two publishers number
    /// independently (tell them apart with [`publisher`](Self::publisher)).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The publisher it came from (its identity and address; its
    /// `conn_id` tells connections apart).
    pub fn publisher(&self) -> &PeerInfo {
        &self.publisher
    }
}

impl SubSocket {
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
        let core = Core::new(SocketType::Sub, options)?;
        let (tx, rx) = inbound(core.opts.recv_hwm, core.opts.recv_hwm_bytes);
        Ok(Self {
            state: Arc::new(SubState {
                core: core.clone(),
                topics: tokio::sync::Mutex::new(TopicSet::default()),
                conns: Mutex::new(Vec::new()),
                tx,
            }),
            core,
            rx,
        })
    }

    /// Subscribes to every topic that starts with `prefix` ("" for all).
    ///
    /// Subscriptions are counted: subscribing twice to the same prefix needs
    /// two unsubscribes to undo, and only the first is sent to publishers.
    /// The subscription is sent to every connected publisher (and to every
    /// publisher connected later); this returns once it is queued on each
    /// connection, and it takes effect at a publisher once it arrives there
    /// ([`PubSocket::wait_for_subscribers`](crate::PubSocket::wait_for_subscribers)
    /// waits for that on the publishing side). Changes made one after the
    /// other, even from several tasks, reach every publisher in that order.
    ///
    /// A publisher accepts at most 10,000 distinct prefixes, 1 MiB in
    /// total, from one subscriber, and closes the connection of one that
    /// sends more. A prefix is at most 65,535 bytes; a longer one is kept
    /// here but cannot be sent.
    ///
    /// # Cancel safety
    ///
    /// The subscription is recorded before anything is sent. If the future
    /// is dropped while it waits for room in a connection's queue, some
    /// publishers may not hear of it until they reconnect.
    pub async fn subscribe(&self, prefix: impl Into<Bytes>) {
        let prefix = prefix.into();
        let mut topics = self.state.topics.lock().await;
        if topics.subscribe(prefix.clone()) {
            self.state
                .tell_all(Frame::Subscribe { topic: prefix })
                .await;
        }
    }

    /// Undoes one [`subscribe`](Self::subscribe) of `prefix`; the last one
    /// tells publishers to stop sending it.
    ///
    /// Messages the publisher had already sent (or queued) before the
    /// unsubscribe reached it still arrive.
    ///
    /// # Cancel safety
    ///
    /// As for [`subscribe`](Self::subscribe).
    pub async fn unsubscribe(&self, prefix: impl Into<Bytes>) {
        let prefix = prefix.into();
        let mut topics = self.state.topics.lock().await;
        if topics.unsubscribe(&prefix) {
            self.state
                .tell_all(Frame::Unsubscribe { topic: prefix })
                .await;
        }
    }

    /// The next message; `None` once the socket is closed.
    pub async fn recv(&mut self) -> Option<PubMessage> {
        self.rx.recv().await
    }
}

impl Default for SubSocket {
    fn default() -> Self {
        Self::new()
    }
}

impl Stream for SubSocket {
    type Item = PubMessage;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PubMessage>> {
        self.rx.poll_recv(cx)
    }
}

impl SubState {
    /// Sends a control frame to every connected publisher, in turn, waiting
    /// for room in each queue. The caller holds the subscriptions' lock.
    async fn tell_all(&self, frame: Frame) {
        let conns = self.conns.lock().expect("conns lock").clone();
        for conn in conns {
            if let Ok(f) = conn.encode(&frame) {
                // A connection that just closed hears everything again on
                // reconnect.
                let _ = conn.send(f).await;
            }
        }
    }
}

impl Pattern for SubState {
    async fn connected(&self, conn: &Arc<ConnHandle>) {
        // Under the subscriptions' lock: a change made meanwhile waits, and
        // then reaches this connection too, after the full set.
        let topics = self.topics.lock().await;
        self.conns.lock().expect("conns lock").push(conn.clone());
        // More than the queue holds is fine: the writer runs meanwhile.
        for topic in topics.prefixes().cloned() {
            if let Ok(f) = conn.encode(&Frame::Subscribe { topic }) {
                if conn.send(f).await.is_err() {
                    return;
                }
            }
        }
    }

    async fn frame(
        &self,
        conn: &Arc<ConnHandle>,
        frame: Frame,
    ) -> Result<(), (Reason, &'static str)> {
        match frame {
            Frame::Publish {
                topic,
                seq,
                payload,
            } => {
                let counters = &self.core.counters;
                let last = conn.seq.swap(seq, Relaxed);
                let missed = gap(last, seq);
                if missed > 0 {
                    counters.gaps.fetch_add(missed, Relaxed);
                }
                let size = payload.len();
                let msg = PubMessage {
                    topic,
                    payload,
                    seq,
                    publisher: conn.peer.clone(),
                };
                if self.tx.try_send(msg, size).is_err() {
                    counters.dropped_hwm.fetch_add(1, Relaxed);
                }
                Ok(())
            }
            _ => Err((
                Reason::ProtocolError,
                "a SUB socket only accepts publications",
            )),
        }
    }

    fn disconnected(&self, conn: &Arc<ConnHandle>) {
        let id = conn.peer.conn_id;
        self.conns
            .lock()
            .expect("conns lock")
            .retain(|c| c.peer.conn_id != id);
    }
}

impl_common!(SubSocket);
