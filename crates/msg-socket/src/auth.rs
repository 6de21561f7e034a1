//! Server-side authentication hook, the identity-to-token table, and the
//! principal a connection authenticated as.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use msg_transport::{CertName, PeerAddr, PeerCertificates};
use msg_wire::SocketType;
use subtle::ConstantTimeEq;

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
    /// The certificate chain the peer presented and the transport verified, with
    /// the names in it: over `tls://` and `quic://` when the server requires client
    /// certificates
    /// ([`TlsServerConfig::require_client_auth`](msg_transport::TlsServerConfig::require_client_auth)).
    /// `None` otherwise.
    pub certificates: Option<Arc<PeerCertificates>>,
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
/// found compatible (and, with
/// [`SocketOptions::bind_identity_to_certificate`](crate::SocketOptions::bind_identity_to_certificate),
/// after the identity was found in the client certificate), under [`SocketOptions::auth_timeout`] (a hook that takes
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

/// An [`Authenticator`] that admits a peer only with the token its identity is
/// given: each identity is bound to its own secret, so that a peer cannot
/// announce an identity whose token it does not hold.
///
/// Tokens are compared in constant time (with the `subtle` crate), and an
/// unknown identity costs the same comparison as a known one with a wrong
/// token; both are refused with the same text, which names neither. The length
/// of a token may still show in the timing: give every identity a token of the
/// same length, such as 32 random bytes.
///
/// Tokens travel in the handshake in the clear over `tcp://` and `ipc://`,
/// where anyone on the path can read and replay them: use a table over TLS or
/// QUIC.
///
/// ```
/// use msg_socket::{SocketOptions, TokenTable};
///
/// let mut tokens = TokenTable::new();
/// tokens.insert("alice", "s3cret-of-alice").insert("bob", "s3cret-of-bob");
/// let mut server = SocketOptions::new();
/// server.authenticator(tokens);
///
/// // Alice's side: her identity and her token.
/// let mut alice = SocketOptions::new();
/// alice.identity("alice").auth_token("s3cret-of-alice");
/// ```
#[derive(Clone, Default)]
pub struct TokenTable {
    tokens: HashMap<Bytes, Bytes>,
}

/// What a [`TokenTable`] tells a refused peer.
const BAD_TOKEN: &str = "unknown identity or wrong token";

impl TokenTable {
    /// An empty table: it refuses everyone until identities are inserted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds `identity` to `token`, replacing any token it had.
    pub fn insert(&mut self, identity: impl Into<Bytes>, token: impl Into<Bytes>) -> &mut Self {
        self.tokens.insert(identity.into(), token.into());
        self
    }

    /// Unbinds `identity`: it is refused from the next handshake on
    /// (connections already up stay up).
    pub fn remove(&mut self, identity: &[u8]) -> &mut Self {
        self.tokens.remove(identity);
        self
    }

    /// How many identities are bound.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no identity is bound.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether `token` is the one bound to `identity`, in time that does not
    /// depend on where the two differ.
    pub fn verify(&self, identity: &[u8], token: Option<&[u8]>) -> bool {
        let given = token.unwrap_or_default();
        match self.tokens.get(identity) {
            Some(expected) => bool::from(expected.as_ref().ct_eq(given)) && token.is_some(),
            None => {
                // The same work as for a known identity, so that timing does not
                // tell which identities exist.
                let _ = given.ct_eq(given);
                false
            }
        }
    }
}

impl fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Identities, never tokens.
        let mut identities: Vec<_> = self.tokens.keys().collect();
        identities.sort();
        f.debug_struct("TokenTable")
            .field("identities", &identities)
            .finish()
    }
}

impl Authenticator for TokenTable {
    fn authenticate(
        &self,
        request: AuthRequest,
    ) -> impl Future<Output = Result<(), AuthRejection>> + Send {
        let verdict = if self.verify(&request.identity, request.token.as_deref()) {
            Ok(())
        } else {
            Err(AuthRejection::new(BAD_TOKEN))
        };
        std::future::ready(verdict)
    }
}

/// Who a connection authenticated as: what a repeated identity is compared by.
///
/// A second connection announcing an identity that is already connected
/// replaces the first only if their principals are equal. Two connections
/// are the same principal when they presented the same credentials:
///
/// - the certificate part: with the identity bound to the certificate, any
///   verified certificate naming the identity (all holders of the name are
///   the one principal); otherwise the names of the verified certificate (a
///   renewed certificate with the same names is the same principal), or its
///   bytes when it has no names; none without a certificate;
/// - the token part: the token an authenticator accepted (compared in
///   constant time); none without an authenticator, since an unchecked token
///   proves nothing.
///
/// A connection without either is anonymous, and all anonymous connections
/// are one principal: without authentication an identity is only a claim,
/// and the newer connection wins as it always did.
#[derive(Clone, Default)]
pub(crate) struct Principal {
    cert: Option<CertPrincipal>,
    token: Option<Bytes>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum CertPrincipal {
    /// A certificate holding the identity, which was checked.
    Bound,
    /// The certificate's names, sorted.
    Names(Vec<CertName>),
    /// A certificate without names: its DER bytes.
    Der(Bytes),
}

impl Principal {
    /// The principal of a connection with these verified `certificates`
    /// (`bound`: the identity was checked to be one of their names) and this
    /// accepted `token`.
    pub(crate) fn new(
        certificates: Option<&PeerCertificates>,
        bound: bool,
        token: Option<Bytes>,
    ) -> Self {
        let cert = certificates.map(|certs| {
            if bound {
                return CertPrincipal::Bound;
            }
            let mut names: Vec<CertName> = certs.names().iter().cloned().collect();
            if names.is_empty() {
                return CertPrincipal::Der(certs.end_entity().clone());
            }
            names.sort();
            names.dedup();
            CertPrincipal::Names(names)
        });
        Self { cert, token }
    }
}

impl PartialEq for Principal {
    fn eq(&self, other: &Self) -> bool {
        let tokens = match (&self.token, &other.token) {
            (None, None) => true,
            (Some(a), Some(b)) => bool::from(a.as_ref().ct_eq(b.as_ref())),
            _ => false,
        };
        // Both parts are always compared: no early return on the token.
        tokens & (self.cert == other.cert)
    }
}

impl Eq for Principal {}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("cert", &self.cert)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_table_admits_only_the_token_bound_to_the_identity() {
        let mut table = TokenTable::new();
        table.insert("alice", "a-token").insert("bob", "b-token");
        assert!(table.verify(b"alice", Some(b"a-token")));
        assert!(!table.verify(b"alice", Some(b"b-token")), "bob's token");
        assert!(!table.verify(b"alice", Some(b"a-toke")), "a prefix");
        assert!(!table.verify(b"alice", Some(b"a-token!")), "longer");
        assert!(!table.verify(b"alice", None), "no token");
        assert!(
            !table.verify(b"carol", Some(b"a-token")),
            "unknown identity"
        );
        table.remove(b"alice");
        assert!(!table.verify(b"alice", Some(b"a-token")), "removed");
        assert_eq!(table.len(), 1);
        assert!(!format!("{table:?}").contains("token\""), "{table:?}");
        assert!(!format!("{table:?}").contains("b-token"));
    }

    #[test]
    fn an_empty_token_is_a_token() {
        let mut table = TokenTable::new();
        table.insert("x", "");
        assert!(table.verify(b"x", Some(b"")));
        assert!(!table.verify(b"x", None));
    }

    #[test]
    fn principals_compare_by_credentials() {
        let anonymous = Principal::default();
        assert_eq!(anonymous, Principal::new(None, false, None));
        let token = |t: &'static str| Principal::new(None, false, Some(Bytes::from(t)));
        assert_eq!(token("t1"), token("t1"));
        assert_ne!(token("t1"), token("t2"));
        assert_ne!(token("t1"), anonymous);
        assert!(!format!("{:?}", token("t1")).contains("t1"));
    }
}
