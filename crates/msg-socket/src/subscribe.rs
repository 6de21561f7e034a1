//! The subscribing side of publish/subscribe.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

use crate::driver::conn::PeerInfo;
use crate::flow;
use crate::message::Message;
use crate::proto::subscribe::SubProto;
use crate::socket::Socket;

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
/// At most [`recv_hwm`](crate::SocketOptions::recv_hwm) messages (and
/// [`recv_hwm_bytes`](crate::SocketOptions::recv_hwm_bytes) of payload) wait in the
/// socket for the application; past that the newest are dropped and counted
/// in [`SocketStats::dropped_hwm`](crate::SocketStats::dropped_hwm). The socket keeps reading its
/// connections meanwhile, so a slow reader never slows its publishers, and
/// it delivers again as soon as the application catches up.
///
/// # Sequence numbers and gaps
///
/// Each publisher numbers the messages it sends this subscriber 1, 2, 3, ...
/// per connection (see [`PubMessage::seq`]). Messages a publisher dropped
/// for us at its high-water mark show up as jumps, and the socket counts
/// them in [`SocketStats::gaps`](crate::SocketStats::gaps) (once a later message shows the jump).
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
pub type SubSocket = Socket<SubProto>;

/// A message received by a [`SubSocket`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubMessage {
    topic: Bytes,
    /// The parts before the payload, for a multipart publication.
    head: Vec<Bytes>,
    payload: Bytes,
    seq: u64,
    publisher: Arc<PeerInfo>,
    first: bool,
}

impl PubMessage {
    pub(crate) fn new(
        topic: Bytes,
        head: Vec<Bytes>,
        payload: Bytes,
        seq: u64,
        publisher: Arc<PeerInfo>,
        first: bool,
    ) -> Self {
        Self {
            topic,
            head,
            payload,
            seq,
            publisher,
            first,
        }
    }

    /// The topic it was published under.
    pub fn topic(&self) -> &Bytes {
        &self.topic
    }

    /// The payload: its only part, or the last part of a multipart
    /// publication (see [`message`](Self::message)).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Takes the payload out (the last part of a multipart publication).
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// Whether the publication has more than one part (from
    /// [`PubSocket::publish_message`](crate::PubSocket::publish_message));
    /// it is delivered whole.
    pub fn is_multipart(&self) -> bool {
        !self.head.is_empty()
    }

    /// Every part of the publication (the topic aside), as a [`Message`]
    /// (the bytes are shared, not copied).
    pub fn message(&self) -> Message {
        Message::from_wire(self.head.clone(), self.payload.clone())
    }

    /// Takes every part out, as a [`Message`].
    pub fn into_message(self) -> Message {
        Message::from_wire(self.head, self.payload)
    }

    /// Payload bytes of every part.
    pub(crate) fn size(&self) -> usize {
        self.head.iter().map(Bytes::len).sum::<usize>() + self.payload.len()
    }

    /// Its number in the stream of messages its publisher sent this
    /// subscriber on this connection: 1 for the first, then up by one for
    /// every message that matched our subscriptions, including those the
    /// publisher dropped at its high-water mark. A jump from `a` to `b`
    /// means `b - a - 1` messages were lost: at the publisher (counted in
    /// [`SocketStats::gaps`](crate::SocketStats::gaps)) or in this socket's own full queue (counted
    /// in [`SocketStats::dropped_hwm`](crate::SocketStats::dropped_hwm)). Numbers are per connection: they
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

    /// Whether it is the first message this socket delivers from its
    /// connection (see [`publisher`](Self::publisher)'s `conn_id`): the
    /// start of a stream. After a reconnect to the same publisher it marks
    /// a restart: [`seq`](Self::seq) numbers start again, and what was
    /// published while the subscriber was away is lost without a number
    /// to show it. The socket's events say the same (a `Disconnected`,
    /// then a `Connected`).
    pub fn is_first(&self) -> bool {
        self.first
    }
}

impl Socket<SubProto> {
    /// Subscribes to every topic that starts with `prefix` ("" for all).
    ///
    /// Subscriptions are counted: subscribing twice to the same prefix needs
    /// two unsubscribes to undo, and only the first is sent to publishers.
    /// The subscription is queued at once for every connected publisher (and
    /// sent to every publisher connected later); this returns once every
    /// connection's queue is below its high-water mark, so changes made
    /// faster than a publisher reads them wait instead of piling up. It
    /// takes effect at a publisher once it arrives there
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
    /// The subscription is recorded and queued before the first await:
    /// dropping the future loses nothing.
    pub async fn subscribe(&self, prefix: impl Into<Bytes>) {
        let prefix = prefix.into();
        self.shared.with(|proto| proto.subscribe(prefix));
        self.control_room().await;
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
        self.shared.with(|proto| proto.unsubscribe(prefix));
        self.control_room().await;
    }

    /// Waits until every connection's queue is below its high-water mark.
    async fn control_room(&self) {
        poll_fn(|cx| {
            self.shared.with_state(|state| {
                if state.proto.control_room() || self.shared.core.is_closing() {
                    Poll::Ready(())
                } else {
                    state.wait_for_room(cx.waker());
                    Poll::Pending
                }
            })
        })
        .await;
    }

    /// The next message; `None` once the socket is closed.
    pub async fn recv(&mut self) -> Option<PubMessage> {
        flow::recv(&self.shared, &mut self.taken).await
    }
}

impl Stream for Socket<SubProto> {
    type Item = PubMessage;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PubMessage>> {
        let this = self.get_mut();
        flow::poll_recv(&this.shared, &mut this.taken, cx)
    }
}
