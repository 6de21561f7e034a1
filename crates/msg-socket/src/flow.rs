//! Sending and receiving as the PUSH, PULL, DEALER, ROUTER and PAIR
//! sockets share it: encode outside the lock, offer under it, wait for room
//! or a delivery through the shim's wakers.

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
use crate::router::Route;

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

/// A pattern that delivers what arrives to the application.
pub(crate) trait Inbound: Protocol {
    /// What the application receives.
    type Item;

    /// The next delivery, if one waits.
    fn take(&mut self) -> Option<Self::Item>;
}

impl Inbound for PullProto {
    type Item = Message;
    fn take(&mut self) -> Option<Message> {
        PullProto::take(self)
    }
}

impl Inbound for DealerProto {
    type Item = Message;
    fn take(&mut self) -> Option<Message> {
        DealerProto::take(self)
    }
}

impl Inbound for PairProto {
    type Item = Message;
    fn take(&mut self) -> Option<Message> {
        PairProto::take(self)
    }
}

impl Inbound for RouterProto {
    type Item = (Route, Message);
    fn take(&mut self) -> Option<(Route, Message)> {
        RouterProto::take(self)
    }
}

/// The next delivery; `None` once the socket is closed and nothing waits.
pub(crate) fn poll_recv<P: Inbound>(
    shared: &Shared<P>,
    cx: &mut Context<'_>,
) -> Poll<Option<P::Item>> {
    shared.with_state(|state| {
        if let Some(item) = state.proto.take() {
            return Poll::Ready(Some(item));
        }
        if shared.core.is_closing() {
            return Poll::Ready(None);
        }
        state.wait_for_delivery(cx.waker());
        Poll::Pending
    })
}

/// [`poll_recv`] as a future.
pub(crate) async fn recv<P: Inbound>(shared: &Shared<P>) -> Option<P::Item> {
    poll_fn(|cx| poll_recv(shared, cx)).await
}
