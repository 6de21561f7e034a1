//! Errors of the socket layer.

use msg_transport::{EndpointError, TransportError};
use msg_wire::{FrameKind, Reason, WireError};

/// Options that contradict each other or are out of range.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid socket options: {what}")]
pub struct ConfigError {
    pub(crate) what: &'static str,
}

/// Errors of socket-level operations: creating, binding, connecting,
/// closing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The options were rejected.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The endpoint string could not be parsed.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// Binding or connecting at the transport level failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The socket was closed.
    #[error("socket is closed")]
    Closed,
}

/// Why the handshake with a peer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer refused us (incompatible socket, version, authentication).
    #[error("peer rejected the handshake ({code}): {text}")]
    Rejected {
        /// Reason code sent by the peer.
        code: Reason,
        /// Reason text sent by the peer.
        text: String,
    },
    /// We refused the peer.
    #[error("refused the peer ({code}): {text}")]
    Refused {
        /// Reason code we sent.
        code: Reason,
        /// Reason text we sent.
        text: String,
    },
    /// We refused the peer because another principal holds the identity it
    /// announced (sent as a Reject with
    /// [`Reason::IdentityInUse`](msg_wire::Reason::IdentityInUse)).
    #[error("refused the peer: identity \"{}\" is in use: {text}", identity.escape_ascii())]
    IdentityRefused {
        /// The identity the peer announced.
        identity: bytes::Bytes,
        /// Reason text we sent.
        text: String,
    },
    /// The peer sent bytes that are not a valid handshake.
    #[error("invalid handshake")]
    Wire(#[from] WireError),
    /// The handshake did not complete in time.
    #[error("handshake timed out")]
    Timeout,
    /// The connection failed during the handshake.
    #[error("connection failed during the handshake")]
    Io(#[from] std::io::Error),
}

impl HandshakeError {
    /// Whether the peer's (or our) authenticator refused the connection.
    pub fn is_auth_rejected(&self) -> bool {
        matches!(
            self,
            HandshakeError::Rejected {
                code: Reason::AuthRejected,
                ..
            } | HandshakeError::Refused {
                code: Reason::AuthRejected,
                ..
            }
        )
    }
}

/// Errors of [`ReqSocket::request`](crate::ReqSocket::request).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReqError {
    /// No reply arrived within the request timeout (whether or not a
    /// connection was up).
    #[error("request timed out")]
    Timeout,
    /// The connection carrying the request dropped before the reply came.
    /// The request was not re-sent: it may or may not have been processed.
    #[error("connection lost while the request was in flight")]
    ConnectionLost,
    /// The request could not be encoded (too large for the frame limit, say).
    #[error("could not encode the request")]
    Encode(#[source] WireError),
    /// The reply has several parts, and the call returns one
    /// ([`request`](crate::ReqSocket::request)): here it is, whole. Use
    /// [`request_message`](crate::ReqSocket::request_message) to take any
    /// reply.
    #[error("the reply has {} parts; request_message takes multipart replies", .0.len())]
    MultipartReply(crate::Message),
    /// The socket was closed.
    #[error("socket is closed")]
    Closed,
}

/// Errors of [`Request::reply`](crate::Request::reply).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The requester's connection is gone; the reply cannot be delivered.
    #[error("the requester disconnected")]
    Disconnected,
    /// The reply could not be encoded.
    #[error("could not encode the reply")]
    Encode(#[source] WireError),
}

/// Errors of [`PubSocket::publish`](crate::PubSocket::publish).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The message could not be encoded (topic too long, too large).
    #[error("could not encode the message")]
    Encode(#[source] WireError),
    /// The socket was closed.
    #[error("socket is closed")]
    Closed,
}

/// Errors of [`PeerSocket::send`](crate::PeerSocket::send) and
/// [`PeerSocket::try_send`](crate::PeerSocket::try_send).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerSendError {
    /// No connection to a peer with this identity is up right now.
    #[error("no connection to that peer")]
    NotConnected,
    /// The connection to the peer ended before the frame was queued.
    #[error("the connection to the peer ended")]
    Disconnected,
    /// The connection's queue is at its high-water mark (`try_send` only).
    #[error("the connection's queue is full")]
    Full,
    /// A PEER socket carries only `Data` and `Ack` frames.
    #[error("a PEER socket cannot send {0} frames")]
    UnsupportedFrame(FrameKind),
    /// The frame could not be encoded (too large for the frame limit).
    #[error("could not encode the frame")]
    Encode(#[source] WireError),
    /// The socket was closed.
    #[error("socket is closed")]
    Closed,
}

/// Errors of sending on a [`PushSocket`](crate::PushSocket),
/// [`DealerSocket`](crate::DealerSocket) or [`PairSocket`](crate::PairSocket).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Every peer's queue is at its high-water mark, or no peer is
    /// connected and the queue for the first one is full (`try_send`
    /// only; `send` waits).
    #[error("no peer has room for the message")]
    Full,
    /// The message could not be encoded (too large for the frame limit, or
    /// too many parts).
    #[error("could not encode the message")]
    Encode(#[source] WireError),
    /// The socket was closed.
    #[error("socket is closed")]
    Closed,
}

/// Errors of [`RouterSocket::send_to`](crate::RouterSocket::send_to) and
/// [`RouterSocket::try_send_to`](crate::RouterSocket::try_send_to).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// No peer with this identity is connected: it never was, or it left.
    /// Nothing was sent.
    #[error("no peer with identity {} is connected", .0.escape_ascii())]
    Unreachable(bytes::Bytes),
    /// The peer is a REQ socket, which takes only replies to its own
    /// requests: answer with the [`Route`](crate::Route) its request came
    /// with.
    #[error("a REQ peer takes only replies to its requests")]
    NotARequest,
    /// The peer is a REQ socket whose connection carrying the request is
    /// gone (it reconnected since); the requester was already told its
    /// request was lost.
    #[error("the request's connection is gone")]
    Departed,
    /// The peer is a REQ socket and this request was answered already: a
    /// REQ socket takes one reply per request, and would drop a second.
    #[error("the request was answered already")]
    AlreadyAnswered,
    /// The peer's queue is at its high-water mark (`try_send_to` only;
    /// `send_to` waits).
    #[error("the peer's queue is full")]
    Full,
    /// The message could not be encoded (too large for the frame limit, or
    /// too many parts).
    #[error("could not encode the message")]
    Encode(#[source] WireError),
    /// The socket was closed.
    #[error("socket is closed")]
    Closed,
}
