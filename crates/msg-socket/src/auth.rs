//! Server-side authentication hook.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use msg_transport::PeerAddr;
use msg_wire::SocketType;

/// What an [`Authenticator`] knows about a connecting peer.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AuthRequest {
    /// The identity the peer announced in its handshake.
    pub identity: Bytes,
    /// The token the peer sent, if any.
    pub token: Option<Bytes>,
    /// Where the connection comes from.
    pub addr: PeerAddr,
    /// The peer's socket type.
    pub socket_type: SocketType,
}

/// Why an [`Authenticator`] refused a peer; the text is sent to the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRejection {
    /// Human-readable reason, sent to the peer (at most 1024 bytes are kept).
    pub text: String,
}

impl AuthRejection {
    /// A rejection with this reason text.
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }
}

/// Decides, per connection, whether a peer may talk to this socket.
///
/// Runs on the server side of each handshake, after the socket types were
/// found compatible, under [`SocketOptions::auth_timeout`] (a hook that takes
/// longer rejects the peer). The peer learns the rejection text, and the
/// socket counts the rejection and emits
/// [`SocketEvent::AuthRejected`](crate::SocketEvent::AuthRejected).
///
/// Closures work too: any `Fn(AuthRequest) -> impl Future<Output =
/// Result<(), AuthRejection>>` is an authenticator.
///
/// ```
/// use msg_socket::{AuthRejection, AuthRequest, SocketOptions};
///
/// let mut opts = SocketOptions::new();
/// opts.authenticator(|req: AuthRequest| async move {
///     match req.token.as_deref() {
///         Some(b"let me in") => Ok(()),
///         _ => Err(AuthRejection::new("bad token")),
///     }
/// });
/// ```
///
/// [`SocketOptions::auth_timeout`]: crate::SocketOptions::auth_timeout
pub trait Authenticator: Send + Sync + 'static {
    /// Accepts (`Ok`) or rejects the peer.
    fn authenticate(
        &self,
        request: AuthRequest,
    ) -> impl Future<Output = Result<(), AuthRejection>> + Send;
}

impl<F, Fut> Authenticator for F
where
    F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), AuthRejection>> + Send + 'static,
{
    fn authenticate(
        &self,
        request: AuthRequest,
    ) -> impl Future<Output = Result<(), AuthRejection>> + Send {
        self(request)
    }
}

type BoxAuthFuture<'a> = Pin<Box<dyn Future<Output = Result<(), AuthRejection>> + Send + 'a>>;

/// Object-safe form of [`Authenticator`], so options can hold any of them.
pub(crate) trait DynAuthenticator: Send + Sync + 'static {
    fn authenticate_dyn(&self, request: AuthRequest) -> BoxAuthFuture<'_>;
}

impl<T: Authenticator> DynAuthenticator for T {
    fn authenticate_dyn(&self, request: AuthRequest) -> BoxAuthFuture<'_> {
        Box::pin(self.authenticate(request))
    }
}
