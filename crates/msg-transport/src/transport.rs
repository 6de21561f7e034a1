//! The `Transport` and `Listener` traits.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::{Endpoint, PeerAddr, PeerCertificates, TransportError};

/// A byte stream between two peers, as produced by a [`Transport`], and what the
/// transport knows about the peer's credentials.
///
/// A connection is `AsyncRead + AsyncWrite + Send + Unpin + 'static`. Shutting down
/// the write half ([`AsyncWriteExt::shutdown`](tokio::io::AsyncWriteExt::shutdown))
/// tells the peer no more bytes are coming (it reads EOF); dropping the connection
/// closes it.
///
/// The TCP, IPC, in-process, TLS and QUIC connections implement it; a stream of your
/// own for a custom [`Transport`] needs one line, `impl Conn for MyStream {}`, unless
/// it can vouch for the peer's certificates.
pub trait Conn: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// The certificate chain the peer presented and this side verified, with the names
    /// in it, if there is one.
    ///
    /// TLS and QUIC connections have one when the peer presented a certificate that
    /// was verified: a client certificate on a server that requires them (mutual TLS),
    /// the server's certificate on a client (unless verification was skipped). Every
    /// other connection has none, which is the default.
    fn peer_certificates(&self) -> Option<PeerCertificates> {
        None
    }
}

impl Conn for tokio::net::TcpStream {}

#[cfg(unix)]
impl Conn for tokio::net::UnixStream {}

impl Conn for tokio::io::DuplexStream {}

/// A way to bind listeners and open connections for one kind of [`Endpoint`].
///
/// Implementations are cheap to clone where they carry configuration (TLS and QUIC
/// share theirs through an `Arc`), so a socket driver can keep one per reconnect task.
/// The returned futures are `Send`, so connecting and accepting can run inside
/// `tokio::spawn`. [`AnyTransport`](crate::AnyTransport) picks the implementation from
/// the endpoint's scheme at run time.
///
/// # Examples
///
/// ```
/// use msg_transport::{Endpoint, Inproc, Listener, Transport};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let endpoint: Endpoint = "inproc://doc-example".parse()?;
/// let mut listener = Inproc.bind(&endpoint).await?;
/// let (mut client, _) = Inproc.connect(&endpoint).await?;
/// let (mut server, peer) = listener.accept().await?;
/// client.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
/// println!("accepted {peer}");
/// # Ok(())
/// # }
/// ```
pub trait Transport: Send + Sync + 'static {
    /// The connection type.
    type Conn: Conn;
    /// The listener type; it yields the same connections.
    type Listener: Listener<Conn = Self::Conn>;

    /// Binds a listener at `endpoint`.
    ///
    /// With port 0, the listener's [`local_endpoint`](Listener::local_endpoint) reports
    /// the port the operating system chose.
    ///
    /// # Errors
    ///
    /// [`TransportError::AddrInUse`] when another listener owns the address, plus the
    /// transport's own errors (missing configuration, an unsupported scheme, I/O).
    fn bind(
        &self,
        endpoint: &Endpoint,
    ) -> impl Future<Output = Result<Self::Listener, TransportError>> + Send;

    /// Connects to `endpoint`, returning the connection and the peer's address.
    ///
    /// When this returns, the connection is ready for bytes in both directions
    /// (TLS and QUIC handshakes are complete on the client's side).
    ///
    /// # Errors
    ///
    /// [`TransportError::Refused`] when nothing listens there (see
    /// [`TransportError::is_refused`]), [`TransportError::Timeout`] when the configured
    /// connect timeout passes, handshake and I/O errors otherwise.
    fn connect(
        &self,
        endpoint: &Endpoint,
    ) -> impl Future<Output = Result<(Self::Conn, PeerAddr), TransportError>> + Send;

    /// Closes `conn`, a connection this transport made, and waits until it has let go
    /// of what it held.
    ///
    /// Dropping a connection closes it too, but some transports finish that in the
    /// background: a QUIC connection first waits, up to its linger time
    /// (`QuicOptions::linger`), for the peer to acknowledge what was written, then for
    /// the connection to drain; only then does a client's UDP socket close. This does
    /// the same and returns once that socket is closed, or after a bounded wait (see
    /// `Quic`). For the other transports it just drops the connection, which is the
    /// default.
    fn close_conn(&self, conn: Self::Conn) -> impl Future<Output = ()> + Send {
        async move { drop(conn) }
    }
}

/// A bound listener that accepts connections.
///
/// Dropping the listener stops accepting and frees the address (and, for IPC, removes
/// the socket file); connections already accepted stay open. Some transports free the
/// address in the background; [`close`](Listener::close) waits until it is free.
pub trait Listener: Send + 'static {
    /// The connection type.
    type Conn: Conn;

    /// The endpoint this listener is bound to, with the real port when bound to port 0.
    fn local_endpoint(&self) -> &Endpoint;

    /// Waits for the next connection that is ready for bytes.
    ///
    /// For TLS and QUIC the handshake has completed. This future is cancel safe: if it
    /// is dropped before completing (for example in `tokio::select!`), no connection is
    /// lost.
    ///
    /// # Errors
    ///
    /// I/O errors from the operating system's accept (such as running out of file
    /// descriptors) are returned as they happen; the listener stays usable and the
    /// caller decides whether to back off. [`TransportError::Closed`] means the listener
    /// can accept no more connections.
    fn accept(
        &mut self,
    ) -> impl Future<Output = Result<(Self::Conn, PeerAddr), TransportError>> + Send;

    /// Stops accepting and waits until the address is free to bind again.
    ///
    /// Dropping the listener frees the address too, but some transports do it in the
    /// background: TLS stops its accept task, and a QUIC listener's UDP socket stays
    /// open until the connections accepted from it have closed and drained. This waits
    /// for that, so a new listener can bind the same address as soon as it returns.
    /// For QUIC that needs the accepted connections to be dropped too, as they are when
    /// a socket closes; the wait is bounded by their linger time
    /// (`QuicOptions::linger`) and a drain (see `Quic`). This closes no accepted
    /// connection itself. The default drops the listener.
    fn close(self) -> impl Future<Output = ()> + Send
    where
        Self: Sized,
    {
        async move { drop(self) }
    }
}
