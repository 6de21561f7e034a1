//! ROUTER: an asynchronous server that knows who sent what.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::Stream;
use msg_wire::Frame;

use crate::driver::shared::Shared;
use crate::error::RouteError;
use crate::flow;
use crate::message::{Encoded, Message};
use crate::proto::conns::ConnId;
use crate::proto::router::{RouteStatus, RouterProto};
use crate::socket::Socket;

/// Where a message came from, and where its answer goes: a peer's identity
/// and, for a REQ peer's request, which request on which connection.
///
/// A [`RouterSocket`] gives one with every message it receives; pass it to
/// [`send_to`](RouterSocket::send_to) to answer. To send to a DEALER peer
/// unprompted, make one from its identity alone ([`Route::to`], or
/// `From` a `Bytes`, `&str`, ...): a route from a DEALER's message is its
/// identity alone, equal to `Route::to(identity)`. A REQ peer takes only
/// answers to its requests, so only the route of one of its requests
/// reaches it, and each of its requests has a route of its own.
///
/// A broker that passes a request on to a worker and the answer back keeps
/// the route meanwhile, in memory or inside the message itself as an
/// envelope part ([`to_bytes`](Self::to_bytes) and
/// [`from_bytes`](Self::from_bytes)). The bytes name a connection of this
/// process: they are an envelope for the socket that made them, not an
/// address to store or send elsewhere.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Route {
    identity: Bytes,
    /// The request this answers: its connection and id.
    request: Option<(ConnId, u64)>,
}

impl Route {
    pub(crate) fn new(identity: Bytes, request: Option<(ConnId, u64)>) -> Self {
        Self { identity, request }
    }

    /// A route to the peer with this identity, answering no request.
    pub fn to(identity: impl Into<Bytes>) -> Self {
        Self::new(identity.into(), None)
    }

    /// The peer's identity (as it announced it in the handshake).
    pub fn identity(&self) -> &Bytes {
        &self.identity
    }

    /// Whether this route answers a REQ peer's request (a DEALER's messages
    /// come with routes that answer none: any message reaches it).
    pub fn is_request(&self) -> bool {
        self.request.is_some()
    }

    pub(crate) fn request(&self) -> Option<(ConnId, u64)> {
        self.request
    }

    /// The route as bytes, for an envelope part.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(17 + self.identity.len());
        match self.request {
            Some((conn, id)) => {
                out.put_u8(1);
                out.put_u64(conn);
                out.put_u64(id);
            }
            None => out.put_u8(0),
        }
        out.put_slice(&self.identity);
        out.freeze()
    }

    /// A route from [`to_bytes`](Self::to_bytes); `None` for bytes that
    /// are not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut buf = bytes;
        let request = match buf.try_get_u8().ok()? {
            0 => None,
            1 => Some((buf.try_get_u64().ok()?, buf.try_get_u64().ok()?)),
            _ => return None,
        };
        Some(Self::new(Bytes::copy_from_slice(buf), request))
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Route");
        d.field("identity", &self.identity.escape_ascii().to_string());
        if let Some((_, id)) = self.request {
            d.field("request", &id);
        }
        d.finish()
    }
}

impl From<&Route> for Route {
    fn from(route: &Route) -> Self {
        route.clone()
    }
}

macro_rules! route_from_identity {
    ($($t:ty),*) => {$(
        impl From<$t> for Route {
            fn from(identity: $t) -> Self {
                Route::to(identity)
            }
        }
    )*};
}

route_from_identity!(Bytes, Vec<u8>, String, &'static str, &'static [u8]);

/// Serves REQ and DEALER peers asynchronously, and knows who sent what: the
/// server side of asynchronous request/reply, and both sides of a broker.
///
/// Every message arrives with its [`Route`] (the sender's identity, and for
/// a request, which one): a `Stream` of `(Route, Message)`, or
/// [`recv`](Self::recv). [`send_to`](Self::send_to) sends a message to the
/// peer a route names, in any order, any number of times for a DEALER peer.
/// Requests may be answered out of order and concurrently.
///
/// # Routing is never silent
///
/// libzmq's ROUTER drops a message for an unknown peer unless
/// `ROUTER_MANDATORY` is set. Here `send_to` always says:
/// [`RouteError::Unreachable`] when no peer with that identity is
/// connected (it never was, or it left), [`RouteError::NotARequest`] when
/// the peer is a REQ socket and the route answers none of its requests, and
/// [`RouteError::Departed`] when the REQ peer's connection that carried the
/// request is gone, and [`RouteError::AlreadyAnswered`] for a second answer
/// to a REQ peer's request (it takes one reply per request). Identities come from the peers' handshakes
/// ([`SocketOptions::identity`](crate::SocketOptions::identity); a random
/// one when unset); when a second connection announces an identity that is
/// connected, the newer connection wins if it authenticated as the same
/// principal (the old one is closed), and is refused with
/// [`Reason::IdentityInUse`](msg_wire::Reason::IdentityInUse) otherwise,
/// as for [`PeerSocket`](crate::PeerSocket).
///
/// # High-water marks
///
/// Sending: each peer's connection queues at most
/// [`send_hwm`](crate::SocketOptions::send_hwm) frames; `send_to` waits for
/// room on that peer's connection (only), and
/// [`try_send_to`](Self::try_send_to) returns [`RouteError::Full`] at once.
/// Receiving: fair-queued over the peers, each connection holding at most
/// [`recv_hwm`](crate::SocketOptions::recv_hwm) messages before it alone is
/// held back. Nothing is dropped.
///
/// ```
/// use futures::StreamExt;
/// use msg_socket::{ReqSocket, RouterSocket};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut router = RouterSocket::new();
/// let endpoint = router.bind("inproc://router-doc").await?;
/// let req = ReqSocket::new();
/// req.connect(&endpoint.to_string())?;
///
/// let asking = tokio::spawn(async move { req.request("2 + 2").await });
/// let (route, question) = router.next().await.unwrap();
/// assert_eq!(question, "2 + 2");
/// router.send_to(&route, "4").await?;
/// assert_eq!(asking.await??, "4");
/// # Ok(()) }
/// ```
pub type RouterSocket = Socket<RouterProto>;

impl Socket<RouterProto> {
    /// The next message and its route; `None` once the socket is closed.
    pub async fn recv(&mut self) -> Option<(Route, Message)> {
        flow::recv(&self.shared, &mut self.taken).await
    }

    /// Sends `message` to the peer `route` names (an answer when the route
    /// came with a request), waiting while that peer's connection is at its
    /// high-water mark.
    ///
    /// # Errors
    ///
    /// [`RouteError::Unreachable`], [`RouteError::NotARequest`],
    /// [`RouteError::Departed`] or [`RouteError::AlreadyAnswered`] when the
    /// message cannot reach the peer (see
    /// the type's docs); [`RouteError::Encode`] for a message over the frame
    /// limit or of too many parts; [`RouteError::Closed`] after close.
    pub async fn send_to(
        &self,
        route: impl Into<Route>,
        message: impl Into<Message>,
    ) -> Result<(), RouteError> {
        let route = route.into();
        let encoded = encode(&self.shared, &route, message.into())?;
        poll_fn(|cx| {
            if self.shared.core.is_closing() {
                return Poll::Ready(Err(RouteError::Closed));
            }
            self.shared.with_state(|state| {
                match outcome(&route, state.proto.send_to(&route, &encoded)) {
                    Err(RouteError::Full) => {
                        state.wait_for_room(cx.waker());
                        Poll::Pending
                    }
                    done => Poll::Ready(done),
                }
            })
        })
        .await
    }

    /// Sends `message` to the peer `route` names if its connection has room
    /// now.
    ///
    /// # Errors
    ///
    /// [`RouteError::Full`] when it has not; otherwise as for
    /// [`send_to`](Self::send_to).
    pub fn try_send_to(
        &self,
        route: impl Into<Route>,
        message: impl Into<Message>,
    ) -> Result<(), RouteError> {
        let route = route.into();
        let encoded = encode(&self.shared, &route, message.into())?;
        outcome(
            &route,
            self.shared.with(|proto| proto.send_to(&route, &encoded)),
        )
    }

    /// The identities of the peers connected now.
    pub fn peer_identities(&self) -> Vec<Bytes> {
        self.shared
            .with(|proto| proto.identities().cloned().collect())
    }
}

/// Encodes `message` as the answer to `route`'s request, or as a plain
/// message when it answers none.
fn encode(
    shared: &Shared<RouterProto>,
    route: &Route,
    message: Message,
) -> Result<Encoded, RouteError> {
    let core = &shared.core;
    if core.is_closing() {
        return Err(RouteError::Closed);
    }
    let compression = core.opts.wire.get_compression();
    let encoded = match route.request() {
        Some((_, id)) => message.encode(&core.codec, compression, |payload| Frame::Reply {
            id,
            payload,
        }),
        None => message.encode(&core.codec, compression, |payload| Frame::Message {
            payload,
        }),
    };
    encoded.map_err(RouteError::Encode)
}

fn outcome(route: &Route, status: RouteStatus) -> Result<(), RouteError> {
    match status {
        RouteStatus::Queued => Ok(()),
        RouteStatus::Full => Err(RouteError::Full),
        RouteStatus::Unreachable => Err(RouteError::Unreachable(route.identity().clone())),
        RouteStatus::NotARequest => Err(RouteError::NotARequest),
        RouteStatus::Departed => Err(RouteError::Departed),
        RouteStatus::Answered => Err(RouteError::AlreadyAnswered),
    }
}

impl Stream for Socket<RouterProto> {
    type Item = (Route, Message);
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<(Route, Message)>> {
        let this = self.get_mut();
        flow::poll_recv(&this.shared, &mut this.taken, cx)
    }
}
