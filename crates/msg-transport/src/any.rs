//! Picking the transport from the endpoint's scheme at run time.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpStream;

use crate::{
    Conn, Endpoint, Inproc, InprocListener, Listener, PeerAddr, PeerCertificates, Scheme, Tcp,
    TcpListener, Transport, TransportError,
};
#[cfg(all(unix, feature = "ipc"))]
use crate::{Ipc, IpcListener};
#[cfg(feature = "quic")]
use crate::{Quic, QuicConn, QuicListener};
#[cfg(feature = "tls")]
use crate::{Tls, TlsConn, TlsListener};

/// Every transport behind one value, chosen by each endpoint's scheme.
///
/// TCP, IPC and inproc work out of the box. TLS and QUIC need certificates, so they are
/// added with [`with_tls`](Self::with_tls) and [`with_quic`](Self::with_quic); an
/// endpoint whose transport was not added, or was compiled out, fails with a clear
/// [`TransportError::MissingConfig`] or [`TransportError::Unsupported`].
///
/// Connections and listeners are the enums [`AnyConn`] and [`AnyListener`]: no boxing,
/// one `match` per I/O call.
///
/// ```
/// use msg_transport::{AnyTransport, Listener, Transport};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), msg_transport::TransportError> {
/// let transport = AnyTransport::new();
/// let mut listener = transport.bind(&"tcp://127.0.0.1:0".parse()?).await?;
/// let endpoint = listener.local_endpoint().clone();
/// let (_conn, peer) = transport.connect(&endpoint).await?;
/// let (_accepted, _) = listener.accept().await?;
/// println!("connected to {peer}");
///
/// let err = transport.bind(&"tls://127.0.0.1:0".parse()?).await.unwrap_err();
/// assert!(err.to_string().contains("needs"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct AnyTransport {
    tcp: Tcp,
    #[cfg(all(unix, feature = "ipc"))]
    ipc: Ipc,
    inproc: Inproc,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
    #[cfg(feature = "quic")]
    quic: Option<Quic>,
}

impl AnyTransport {
    /// TCP with default options, IPC and inproc; no TLS or QUIC.
    pub fn new() -> Self {
        AnyTransport::default()
    }

    /// Uses `tcp` for `tcp://` endpoints.
    #[must_use]
    pub fn with_tcp(mut self, tcp: Tcp) -> Self {
        self.tcp = tcp;
        self
    }

    /// Uses `tls` for `tls://` endpoints. Feature `tls`.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn with_tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Uses `quic` for `quic://` endpoints. Feature `quic`.
    #[cfg(feature = "quic")]
    #[must_use]
    pub fn with_quic(mut self, quic: Quic) -> Self {
        self.quic = Some(quic);
        self
    }

    #[cfg(feature = "tls")]
    fn tls(&self) -> Result<&Tls, TransportError> {
        self.tls.as_ref().ok_or(TransportError::MissingConfig {
            scheme: Scheme::Tls,
            what: "a TLS configuration (AnyTransport::with_tls)",
        })
    }

    #[cfg(feature = "quic")]
    fn quic(&self) -> Result<&Quic, TransportError> {
        self.quic.as_ref().ok_or(TransportError::MissingConfig {
            scheme: Scheme::Quic,
            what: "a QUIC configuration (AnyTransport::with_quic)",
        })
    }
}

/// The error for a scheme whose transport is not compiled in.
#[allow(dead_code)]
fn unsupported(scheme: Scheme) -> TransportError {
    let reason = match scheme {
        Scheme::Ipc if cfg!(not(unix)) => "unix domain sockets need a unix platform",
        Scheme::Ipc => "msg-transport was built without the \"ipc\" feature",
        Scheme::Tls => "msg-transport was built without the \"tls\" feature",
        Scheme::Quic => "msg-transport was built without the \"quic\" feature",
        Scheme::Tcp | Scheme::Inproc => "no transport for this scheme",
    };
    TransportError::Unsupported { scheme, reason }
}

impl Transport for AnyTransport {
    type Conn = AnyConn;
    type Listener = AnyListener;

    async fn bind(&self, endpoint: &Endpoint) -> Result<AnyListener, TransportError> {
        match endpoint.scheme() {
            Scheme::Tcp => self.tcp.bind(endpoint).await.map(AnyListener::Tcp),
            #[cfg(all(unix, feature = "ipc"))]
            Scheme::Ipc => self.ipc.bind(endpoint).await.map(AnyListener::Ipc),
            #[cfg(feature = "tls")]
            Scheme::Tls => self.tls()?.bind(endpoint).await.map(AnyListener::Tls),
            #[cfg(feature = "quic")]
            Scheme::Quic => self.quic()?.bind(endpoint).await.map(AnyListener::Quic),
            Scheme::Inproc => self.inproc.bind(endpoint).await.map(AnyListener::Inproc),
            #[allow(unreachable_patterns)]
            other => Err(unsupported(other)),
        }
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<(AnyConn, PeerAddr), TransportError> {
        fn wrap<C>(
            r: Result<(C, PeerAddr), TransportError>,
            f: fn(C) -> AnyConn,
        ) -> Result<(AnyConn, PeerAddr), TransportError> {
            r.map(|(c, p)| (f(c), p))
        }
        match endpoint.scheme() {
            Scheme::Tcp => wrap(self.tcp.connect(endpoint).await, AnyConn::Tcp),
            #[cfg(all(unix, feature = "ipc"))]
            Scheme::Ipc => wrap(self.ipc.connect(endpoint).await, AnyConn::Ipc),
            #[cfg(feature = "tls")]
            Scheme::Tls => wrap(self.tls()?.connect(endpoint).await, AnyConn::Tls),
            #[cfg(feature = "quic")]
            Scheme::Quic => wrap(self.quic()?.connect(endpoint).await, AnyConn::Quic),
            Scheme::Inproc => wrap(self.inproc.connect(endpoint).await, AnyConn::Inproc),
            #[allow(unreachable_patterns)]
            other => Err(unsupported(other)),
        }
    }

    async fn close_conn(&self, conn: AnyConn) {
        match conn {
            #[cfg(feature = "quic")]
            AnyConn::Quic(conn) => conn.close().await,
            // Dropping the others closes them on the spot.
            other => drop(other),
        }
    }
}

/// A connection from [`AnyTransport`]: one variant per transport.
///
/// Variants for transports compiled out by features are absent; the enum is
/// `#[non_exhaustive]`, so code matching on it compiles with any feature set.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyConn {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix domain socket connection.
    #[cfg(all(unix, feature = "ipc"))]
    Ipc(tokio::net::UnixStream),
    /// A TLS connection.
    #[cfg(feature = "tls")]
    Tls(TlsConn),
    /// A QUIC connection.
    #[cfg(feature = "quic")]
    Quic(QuicConn),
    /// An in-process connection.
    Inproc(DuplexStream),
}

impl Conn for AnyConn {
    fn peer_certificates(&self) -> Option<PeerCertificates> {
        match self {
            #[cfg(feature = "tls")]
            AnyConn::Tls(c) => c.peer_certificates(),
            #[cfg(feature = "quic")]
            AnyConn::Quic(c) => c.peer_certificates(),
            // TCP, IPC and inproc carry no certificates.
            _ => None,
        }
    }
}

/// Forwards a method call to whichever connection `self` holds.
macro_rules! dispatch {
    ($self:expr, $conn:ident => $call:expr) => {
        match $self.get_mut() {
            AnyConn::Tcp($conn) => $call,
            #[cfg(all(unix, feature = "ipc"))]
            AnyConn::Ipc($conn) => $call,
            #[cfg(feature = "tls")]
            AnyConn::Tls($conn) => $call,
            #[cfg(feature = "quic")]
            AnyConn::Quic($conn) => $call,
            AnyConn::Inproc($conn) => $call,
        }
    };
}

impl AsyncRead for AnyConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        dispatch!(self, c => Pin::new(c).poll_read(cx, buf))
    }
}

impl AsyncWrite for AnyConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        dispatch!(self, c => Pin::new(c).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        dispatch!(self, c => Pin::new(c).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            AnyConn::Tcp(c) => c.is_write_vectored(),
            #[cfg(all(unix, feature = "ipc"))]
            AnyConn::Ipc(c) => c.is_write_vectored(),
            #[cfg(feature = "tls")]
            AnyConn::Tls(c) => c.is_write_vectored(),
            #[cfg(feature = "quic")]
            AnyConn::Quic(c) => c.is_write_vectored(),
            AnyConn::Inproc(c) => c.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        dispatch!(self, c => Pin::new(c).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        dispatch!(self, c => Pin::new(c).poll_shutdown(cx))
    }
}

/// A listener from [`AnyTransport`]: one variant per transport.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyListener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix domain socket listener.
    #[cfg(all(unix, feature = "ipc"))]
    Ipc(IpcListener),
    /// A TLS listener.
    #[cfg(feature = "tls")]
    Tls(TlsListener),
    /// A QUIC listener.
    #[cfg(feature = "quic")]
    Quic(QuicListener),
    /// An in-process listener.
    Inproc(InprocListener),
}

impl Listener for AnyListener {
    type Conn = AnyConn;

    fn local_endpoint(&self) -> &Endpoint {
        match self {
            AnyListener::Tcp(l) => l.local_endpoint(),
            #[cfg(all(unix, feature = "ipc"))]
            AnyListener::Ipc(l) => l.local_endpoint(),
            #[cfg(feature = "tls")]
            AnyListener::Tls(l) => l.local_endpoint(),
            #[cfg(feature = "quic")]
            AnyListener::Quic(l) => l.local_endpoint(),
            AnyListener::Inproc(l) => l.local_endpoint(),
        }
    }

    async fn accept(&mut self) -> Result<(AnyConn, PeerAddr), TransportError> {
        match self {
            AnyListener::Tcp(l) => l.accept().await.map(|(c, p)| (AnyConn::Tcp(c), p)),
            #[cfg(all(unix, feature = "ipc"))]
            AnyListener::Ipc(l) => l.accept().await.map(|(c, p)| (AnyConn::Ipc(c), p)),
            #[cfg(feature = "tls")]
            AnyListener::Tls(l) => l.accept().await.map(|(c, p)| (AnyConn::Tls(c), p)),
            #[cfg(feature = "quic")]
            AnyListener::Quic(l) => l.accept().await.map(|(c, p)| (AnyConn::Quic(c), p)),
            AnyListener::Inproc(l) => l.accept().await.map(|(c, p)| (AnyConn::Inproc(c), p)),
        }
    }

    async fn close(self) {
        match self {
            AnyListener::Tcp(l) => l.close().await,
            #[cfg(all(unix, feature = "ipc"))]
            AnyListener::Ipc(l) => l.close().await,
            #[cfg(feature = "tls")]
            AnyListener::Tls(l) => l.close().await,
            #[cfg(feature = "quic")]
            AnyListener::Quic(l) => l.close().await,
            AnyListener::Inproc(l) => l.close().await,
        }
    }
}
