//! Sending and receiving as the PUSH, PULL, DEALER, ROUTER and PAIR
//! sockets share it: encode outside the lock, offer under it, wait for room
//! or a delivery through the shim's wakers.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;
use msg_wire::Frame;

use crate::driver::shared::Shared;
use crate::error::SendError;
use crate::message::{Encoded, Message};
use crate::proto::Protocol;
use crate::proto::dealer::DealerProto;
use crate::proto::outbox::Offer;
use crate::proto::pair::PairProto;
use crate::proto::pipeline::{PullProto, PushProto};
use crate::proto::router::RouterProto;
use crate::proto::subscribe::SubProto;
use crate::router::Route;
use crate::subscribe::PubMessage;

/// A pattern that sends each message to one peer of its choosing.
pub(crate) trait Balanced: Protocol {
    /// The frame that carries a message's last part.
    fn last_frame(payload: Bytes) -> Frame {
        Frame::Message { payload }
    }

    /// Queues `message` on a peer, or gives it back: it must wait.
    fn offer(&mut self, message: Encoded) -> Offer;
}

impl Balanced for PushProto {
    fn offer(&mut self, message: Encoded) -> Offer {
        self.send(message)
    }
}

impl Balanced for PairProto {
    fn offer(&mut self, message: Encoded) -> Offer {
        self.send(message)
    }
}

impl Balanced for DealerProto {
    /// A request, so that a REP socket answers it. Nothing pairs the reply
    /// with it, so every request carries id 0.
    fn last_frame(payload: Bytes) -> Frame {
        Frame::Request { id: 0, payload }
    }

    fn offer(&mut self, message: Encoded) -> Offer {
        self.send(message)
    }
}

/// Encodes `message` for a `P` socket, outside any lock.
fn encode<P: Balanced>(shared: &Shared<P>, message: Message) -> Result<Encoded, SendError> {
    let core = &shared.core;
    if core.is_closing() {
        return Err(SendError::Closed);
    }
    message
        .encode(&core.codec, core.opts.wire.get_compression(), P::last_frame)
        .map_err(SendError::Encode)
}

/// Sends `message`, waiting while the pattern has no room for it.
pub(crate) async fn send<P: Balanced>(
    shared: &Shared<P>,
    message: Message,
) -> Result<(), SendError> {
    // Moved into the pattern when it is taken, and handed back while it
    // must wait.
    let mut encoded = Some(encode(shared, message)?);
    poll_fn(|cx| {
        if shared.core.is_closing() {
            return Poll::Ready(Err(SendError::Closed));
        }
        let Some(message) = encoded.take() else {
            return Poll::Ready(Ok(()));
        };
        shared.with_state(|state| match state.proto.offer(message) {
            Offer::Taken => Poll::Ready(Ok(())),
            Offer::Full(message) => {
                encoded = Some(message);
                state.wait_for_room(cx.waker());
                Poll::Pending
            }
        })
    })
    .await
}

/// Sends `message` if the pattern has room for it now.
pub(crate) fn try_send<P: Balanced>(shared: &Shared<P>, message: Message) -> Result<(), SendError> {
    let encoded = encode(shared, message)?;
    match shared.with(|proto| proto.offer(encoded)) {
        Offer::Taken => Ok(()),
        Offer::Full(_) => Err(SendError::Full),
    }
}

/// `Sink::start_send`: queues `message` at once if there is room, and
/// otherwise keeps it in `unsent` for [`poll_unsent`] (that is, for the
/// sink's next `poll_ready` or `poll_flush`).
pub(crate) fn start_send<P: Balanced>(
    shared: &Shared<P>,
    unsent: &mut Option<Encoded>,
    message: Message,
) -> Result<(), SendError> {
    if unsent.is_some() {
        // `poll_ready` was not called, or did not say ready: the sink has
        // no room for a second message, and the first stays.
        return Err(SendError::Full);
    }
    let encoded = encode(shared, message)?;
    if let Offer::Full(encoded) = shared.with(|proto| proto.offer(encoded)) {
        *unsent = Some(encoded);
    }
    Ok(())
}

/// `Sink::poll_ready` and `Sink::poll_flush`: offers the message
/// [`start_send`] kept, waiting for room like [`send`].
pub(crate) fn poll_unsent<P: Balanced>(
    shared: &Shared<P>,
    unsent: &mut Option<Encoded>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), SendError>> {
    let Some(message) = unsent.take() else {
        return Poll::Ready(Ok(()));
    };
    if shared.core.is_closing() {
        *unsent = Some(message);
        return Poll::Ready(Err(SendError::Closed));
    }
    shared.with_state(|state| match state.proto.offer(message) {
        Offer::Taken => Poll::Ready(Ok(())),
        Offer::Full(message) => {
            *unsent = Some(message);
            state.wait_for_room(cx.waker());
            Poll::Pending
        }
    })
}

/// `futures::Sink` for the sockets that send to one peer of their choosing
/// ([`Balanced`]): messages of any type that makes a [`Message`].
macro_rules! balanced_sink {
    ($proto:ty) => {
        impl<M: Into<$crate::message::Message>> futures::Sink<M>
            for $crate::socket::Socket<$proto>
        {
            type Error = $crate::error::SendError;

            fn poll_ready(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                let this = self.get_mut();
                $crate::flow::poll_unsent(&this.shared, &mut this.unsent, cx)
            }

            fn start_send(self: std::pin::Pin<&mut Self>, item: M) -> Result<(), Self::Error> {
                let this = self.get_mut();
                $crate::flow::start_send(&this.shared, &mut this.unsent, item.into())
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                let this = self.get_mut();
                $crate::flow::poll_unsent(&this.shared, &mut this.unsent, cx)
            }

            /// Flushes; the socket stays open (see `close`).
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                let this = self.get_mut();
                $crate::flow::poll_unsent(&this.shared, &mut this.unsent, cx)
            }
        }
    };
}
pub(crate) use balanced_sink;

/// Most deliveries a receiving handle takes from the socket at once (and
/// then hands out without the socket's lock).
pub(crate) const RECV_BATCH: usize = 32;

/// Most bytes of payload a receiving handle takes at once; a larger
/// delivery is taken alone.
pub(crate) const RECV_BATCH_BYTES: usize = 64 * 1024;

/// A pattern that delivers what arrives to the application.
pub(crate) trait Inbound: Protocol {
    /// The next delivery, if one waits.
    fn take(&mut self) -> Option<Self::Delivery>;

    /// Bytes of payload in `delivery`, for [`RECV_BATCH_BYTES`].
    fn size(delivery: &Self::Delivery) -> usize;
}

impl Inbound for PullProto {
    fn take(&mut self) -> Option<Message> {
        PullProto::take(self)
    }

    fn size(delivery: &Message) -> usize {
        delivery.size()
    }
}

impl Inbound for DealerProto {
    fn take(&mut self) -> Option<Message> {
        DealerProto::take(self)
    }

    fn size(delivery: &Message) -> usize {
        delivery.size()
    }
}

impl Inbound for PairProto {
    fn take(&mut self) -> Option<Message> {
        PairProto::take(self)
    }

    fn size(delivery: &Message) -> usize {
        delivery.size()
    }
}

impl Inbound for RouterProto {
    fn take(&mut self) -> Option<(Route, Message)> {
        RouterProto::take(self)
    }

    fn size(delivery: &(Route, Message)) -> usize {
        delivery.1.size()
    }
}

impl Inbound for SubProto {
    fn take(&mut self) -> Option<PubMessage> {
        self.poll_delivery()
    }

    fn size(delivery: &PubMessage) -> usize {
        delivery.payload().len()
    }
}

/// The next delivery; `None` once the socket is closed and nothing waits.
///
/// The handle's `taken` holds deliveries already taken from the socket:
/// while it has one, no lock is taken. When it is empty, up to
/// [`RECV_BATCH`] deliveries ([`RECV_BATCH_BYTES`]) that wait are taken
/// under one lock, so a busy receiver locks the socket once per batch,
/// not once per message, and the connections' readers that share the lock
/// are held up less. Taken deliveries belong to the application: they no
/// longer count against the receive high-water mark.
pub(crate) fn poll_recv<P: Inbound>(
    shared: &Shared<P>,
    taken: &mut VecDeque<P::Delivery>,
    cx: &mut Context<'_>,
) -> Poll<Option<P::Delivery>> {
    if let Some(item) = taken.pop_front() {
        return Poll::Ready(Some(item));
    }
    shared.with_state(|state| {
        let Some(first) = state.proto.take() else {
            if shared.core.is_closing() {
                return Poll::Ready(None);
            }
            state.wait_for_delivery(cx.waker());
            return Poll::Pending;
        };
        let mut bytes = P::size(&first);
        while taken.len() + 1 < RECV_BATCH && bytes < RECV_BATCH_BYTES {
            let Some(next) = state.proto.take() else {
                break;
            };
            bytes += P::size(&next);
            taken.push_back(next);
        }
        Poll::Ready(Some(first))
    })
}

/// [`poll_recv`] as a future.
pub(crate) async fn recv<P: Inbound>(
    shared: &Shared<P>,
    taken: &mut VecDeque<P::Delivery>,
) -> Option<P::Delivery> {
    poll_fn(|cx| poll_recv(shared, taken, cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PullSocket, PushSocket};

    /// Sends `count` messages of `size` bytes (each numbered in its first
    /// byte) and waits until they all wait in the PULL socket.
    async fn queued(name: &str, count: u8, size: usize) -> (PushSocket, PullSocket) {
        let pull = PullSocket::new();
        let endpoint = pull.bind(&format!("inproc://{name}")).await.unwrap();
        let push = PushSocket::new();
        push.connect(&endpoint.to_string()).unwrap();
        for i in 0..count {
            let mut payload = vec![0; size];
            payload[0] = i;
            push.send(payload).await.unwrap();
        }
        while pull.shared.with(|p| p.pending()) < usize::from(count) {
            tokio::task::yield_now().await;
        }
        (push, pull)
    }

    #[tokio::test]
    async fn a_receiver_takes_a_batch_under_one_lock_and_hands_it_out_in_order() {
        let (_push, mut pull) = queued("flow-batch-small", 100, 64).await;
        let first = pull.recv().await.unwrap();
        assert_eq!(first.last()[0], 0);
        // The rest of the batch is in the handle, out of the socket's queue
        // (and out of its high-water mark).
        assert_eq!(pull.taken.len(), RECV_BATCH - 1);
        assert_eq!(pull.shared.with(|p| p.pending()), 100 - RECV_BATCH);
        for i in 1..100u8 {
            assert_eq!(pull.recv().await.unwrap().last()[0], i);
        }
        assert!(pull.taken.is_empty());
    }

    #[tokio::test]
    async fn a_batch_stops_at_its_byte_limit_and_a_large_message_comes_alone() {
        let (_push, mut pull) = queued("flow-batch-bytes", 8, 16 * 1024).await;
        pull.recv().await.unwrap();
        // 16 KiB each: four make the 64 KiB of a batch.
        assert_eq!(pull.taken.len(), RECV_BATCH_BYTES / (16 * 1024) - 1);
        drop(pull);

        let (_push, mut pull) = queued("flow-batch-large", 3, RECV_BATCH_BYTES + 1).await;
        pull.recv().await.unwrap();
        assert!(pull.taken.is_empty());
        assert_eq!(pull.shared.with(|p| p.pending()), 2);
    }
}
