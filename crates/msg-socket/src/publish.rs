//! The publishing side of publish/subscribe.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Sink;
use msg_wire::Frame;

use crate::error::PublishError;
use crate::message::Message;
use crate::proto::publish::PubProto;
use crate::socket::Socket;

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
/// ([`send_hwm`](crate::SocketOptions::send_hwm) messages and
/// [`send_hwm_bytes`](crate::SocketOptions::send_hwm_bytes), whichever is reached
/// first, counting every message not yet written to the transport,
/// including those being written); when it is full the new message is
/// dropped for that subscriber only and counted in
/// [`SocketStats::dropped_hwm`](crate::SocketStats::dropped_hwm), while the other subscribers go on
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
/// [`SocketStats::gaps`](crate::SocketStats::gaps) on the subscriber). A new connection (after a
/// reconnect or a publisher restart) starts again at 1.
///
/// # Limits
///
/// A subscriber may hold at most 10,000 distinct prefixes here, 1 MiB of
/// them in all; one that asks for more has its connection closed (a
/// warning, [`SocketStats::protocol_errors`](crate::SocketStats::protocol_errors) and a
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
pub type PubSocket = Socket<PubProto>;

impl Socket<PubProto> {
    /// Publishes `payload` under `topic` to every subscriber whose prefix
    /// matches, without waiting. Returns how many subscribers it was queued
    /// for; a subscriber whose queue is at its high-water mark is not
    /// counted (the message is dropped for it and counted in
    /// [`SocketStats::dropped_hwm`](crate::SocketStats::dropped_hwm)).
    ///
    /// Only subscriptions that have reached the publisher count: a message
    /// published before a new subscriber's subscription arrives is not sent
    /// to it (see [`wait_for_subscribers`](Self::wait_for_subscribers)).
    ///
    /// The message is encoded (and compressed) once, before any subscriber
    /// is looked at. Calls from several threads at once take turns only
    /// for numbering and queueing (no system call, rarely an allocation), so
    /// that every subscriber's queue is in sequence-number order.
    ///
    /// Being synchronous, it never yields to the runtime: the connections'
    /// tasks write what it queued when they get to run. A task that does
    /// nothing but publish in a loop, on a current-thread runtime, keeps them
    /// from running, and once the queues are full every message is dropped;
    /// yield now and then (`tokio::task::yield_now().await`), as any busy
    /// loop on such a runtime must.
    ///
    /// # Errors
    ///
    /// [`PublishError::Encode`] for a topic over 65,535 bytes or a payload
    /// over the frame limit
    /// ([`SocketOptions::max_frame_size`](crate::SocketOptions::max_frame_size));
    /// [`PublishError::Closed`] after close.
    pub fn publish(
        &self,
        topic: impl Into<Bytes>,
        payload: impl Into<Bytes>,
    ) -> Result<usize, PublishError> {
        let core = &self.shared.core;
        if core.is_closing() {
            return Err(PublishError::Closed);
        }
        let topic: Bytes = topic.into();
        // Encoded and compressed once, whoever receives it, and outside the
        // lock.
        let encoded = core
            .codec
            .encode_parts(
                &Frame::Publish {
                    topic: topic.clone(),
                    seq: 0,
                    payload: payload.into(),
                },
                core.opts.wire.get_compression(),
            )
            .map_err(PublishError::Encode)?;
        Ok(self.shared.with(|proto| proto.publish(&topic, &encoded)))
    }

    /// Publishes a message of one or more parts under `topic`: each
    /// subscriber gets all of it or, at its high-water mark, none of it
    /// (counted as one drop). As [`publish`](Self::publish) otherwise; the
    /// subscriber sees [`PubMessage::message`](crate::PubMessage::message).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use msg_socket::{Message, PubSocket, SubSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let publisher = PubSocket::new();
    /// let endpoint = publisher.bind("inproc://publish-message-doc").await?;
    /// let mut subscriber = SubSocket::new();
    /// subscriber.subscribe("prices").await;
    /// subscriber.connect(&endpoint.to_string())?;
    /// publisher.wait_for_subscribers(1, Duration::from_secs(5)).await;
    ///
    /// publisher.publish_message("prices", ["EURUSD", "1.0842"])?;
    /// let msg = subscriber.recv().await.expect("a message");
    /// assert_eq!(msg.message(), Message::from_parts(["EURUSD", "1.0842"]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`publish`](Self::publish); [`PublishError::Encode`] also for
    /// more than [`MAX_PARTS`](crate::MAX_PARTS) parts or a message over
    /// the frame limit in all.
    pub fn publish_message(
        &self,
        topic: impl Into<Bytes>,
        message: impl Into<Message>,
    ) -> Result<usize, PublishError> {
        let core = &self.shared.core;
        if core.is_closing() {
            return Err(PublishError::Closed);
        }
        let topic: Bytes = topic.into();
        let encoded = message
            .into()
            .encode(&core.codec, core.opts.wire.get_compression(), |payload| {
                Frame::Publish {
                    topic: topic.clone(),
                    seq: 0,
                    payload,
                }
            })
            .map_err(PublishError::Encode)?;
        Ok(self
            .shared
            .with(|proto| proto.publish_parts(&topic, &encoded.head, &encoded.last)))
    }

    /// Waits until at least `n` connected subscribers have sent at least one
    /// subscription, or `timeout` passes; returns whether they have.
    /// (Messages published before a subscription reaches the publisher are
    /// not delivered to that subscriber.)
    pub async fn wait_for_subscribers(&self, n: usize, timeout: std::time::Duration) -> bool {
        let core = &self.shared.core;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progress = core.progress.notified();
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
        self.shared.with(|proto| proto.subscribers())
    }
}

/// Publishes `(topic, message)` pairs: what [`publish_message`](Socket::publish_message)
/// does, as a `futures::Sink`. It never waits, as publishing never does: a
/// subscriber at its high-water mark misses the message (counted in
/// [`SocketStats::dropped_hwm`](crate::SocketStats::dropped_hwm)), and
/// flushing has nothing to wait for.
impl<T, M> Sink<(T, M)> for Socket<PubProto>
where
    T: Into<Bytes>,
    M: Into<Message>,
{
    type Error = PublishError;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(self.open())
    }

    fn start_send(self: Pin<&mut Self>, (topic, message): (T, M)) -> Result<(), Self::Error> {
        self.publish_message(topic, message).map(|_| ())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(self.open())
    }

    /// Flushes; the socket stays open (see [`close`](Socket::close)).
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(self.open())
    }
}

impl Socket<PubProto> {
    /// `Ok` while the socket is open.
    fn open(&self) -> Result<(), PublishError> {
        if self.shared.core.is_closing() {
            Err(PublishError::Closed)
        } else {
            Ok(())
        }
    }
}
