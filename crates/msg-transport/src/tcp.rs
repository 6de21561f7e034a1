//! Plain TCP.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener as TokioTcpListener, TcpStream};
use tracing::debug;

use crate::{Endpoint, Listener, PeerAddr, Scheme, Transport, TransportError};

/// Options of TCP connections, shared by [`Tcp`] and the TLS transport.
///
/// ```
/// use std::time::Duration;
/// use msg_transport::{Tcp, TcpOptions};
///
/// let mut options = TcpOptions::default();
/// options.keepalive(None).connect_timeout(Duration::from_secs(2));
/// let tcp = Tcp::with_options(options);
/// ```
#[derive(Clone, Debug)]
pub struct TcpOptions {
    nodelay: bool,
    keepalive: Option<Duration>,
    connect_timeout: Duration,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            nodelay: true,
            keepalive: Some(Duration::from_secs(60)),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl TcpOptions {
    /// Disables Nagle's algorithm (`TCP_NODELAY`) on every connection.
    ///
    /// msg batches its own writes, so waiting to coalesce small segments only adds
    /// latency. Default: `true`.
    pub fn nodelay(&mut self, nodelay: bool) -> &mut Self {
        self.nodelay = nodelay;
        self
    }

    /// Idle time before the kernel starts sending TCP keep-alive probes, or `None` to
    /// leave keep-alive off.
    ///
    /// Keep-alive lets the kernel notice a peer that vanished without closing (power
    /// loss, a dropped NAT mapping) on an otherwise idle connection; msg's own
    /// heartbeats do the same faster at the socket layer. The probe interval and count
    /// stay at the system defaults. Default: `Some(60 s)`.
    pub fn keepalive(&mut self, idle: Option<Duration>) -> &mut Self {
        self.keepalive = idle;
        self
    }

    /// How long [`Transport::connect`] may take, name resolution and (for TLS) the
    /// handshake included, before it fails with [`TransportError::Timeout`].
    ///
    /// Default: 10 s.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    pub(crate) fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Applies the per-connection socket options.
    pub(crate) fn apply(&self, stream: &TcpStream) -> io::Result<()> {
        stream.set_nodelay(self.nodelay)?;
        if let Some(idle) = self.keepalive {
            SockRef::from(stream).set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
        }
        Ok(())
    }
}

/// The TCP transport (`tcp://host:port`).
///
/// Every connection has `TCP_NODELAY` set and keep-alive configured as in
/// [`TcpOptions`]. Host names are resolved at each bind and connect; connecting tries
/// the resolved addresses in order until one answers.
#[derive(Clone, Debug, Default)]
pub struct Tcp {
    options: TcpOptions,
}

impl Tcp {
    /// A TCP transport with default [`TcpOptions`].
    pub fn new() -> Self {
        Tcp::default()
    }

    /// A TCP transport with the given options.
    pub fn with_options(options: TcpOptions) -> Self {
        Tcp { options }
    }

    /// The transport's options.
    pub fn options(&self) -> &TcpOptions {
        &self.options
    }
}

impl Transport for Tcp {
    type Conn = TcpStream;
    type Listener = TcpListener;

    async fn bind(&self, endpoint: &Endpoint) -> Result<TcpListener, TransportError> {
        check_scheme(endpoint, Scheme::Tcp)?;
        let inner = bind_tcp(endpoint).await?;
        let local = inner
            .local_addr()
            .map_err(|e| TransportError::io("bind", endpoint, e))?;
        let local_endpoint = Endpoint::tcp(local);
        debug!(endpoint = %local_endpoint, "tcp listener bound");
        Ok(TcpListener {
            inner,
            local_endpoint,
            options: self.options.clone(),
        })
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<(TcpStream, PeerAddr), TransportError> {
        check_scheme(endpoint, Scheme::Tcp)?;
        let (stream, addr) = connect_tcp(endpoint, &self.options).await?;
        debug!(endpoint = %endpoint, peer = %addr, "tcp connected");
        Ok((stream, PeerAddr::Tcp(addr)))
    }
}

/// A bound TCP listener.
#[derive(Debug)]
pub struct TcpListener {
    inner: TokioTcpListener,
    local_endpoint: Endpoint,
    options: TcpOptions,
}

impl Listener for TcpListener {
    type Conn = TcpStream;

    fn local_endpoint(&self) -> &Endpoint {
        &self.local_endpoint
    }

    async fn accept(&mut self) -> Result<(TcpStream, PeerAddr), TransportError> {
        let (stream, addr) = accept_tcp(&self.inner, &self.local_endpoint, &self.options).await?;
        debug!(endpoint = %self.local_endpoint, peer = %addr, "tcp accepted");
        Ok((stream, PeerAddr::Tcp(addr)))
    }
}

pub(crate) fn check_scheme(endpoint: &Endpoint, expected: Scheme) -> Result<(), TransportError> {
    if endpoint.scheme() == expected {
        Ok(())
    } else {
        Err(TransportError::Unsupported {
            scheme: endpoint.scheme(),
            reason: wrong_transport_reason(expected),
        })
    }
}

fn wrong_transport_reason(expected: Scheme) -> &'static str {
    match expected {
        Scheme::Tcp => "the tcp transport only handles tcp:// endpoints (use AnyTransport)",
        Scheme::Ipc => "the ipc transport only handles ipc:// endpoints (use AnyTransport)",
        Scheme::Quic => "the quic transport only handles quic:// endpoints (use AnyTransport)",
        Scheme::Tls => "the tls transport only handles tls:// endpoints (use AnyTransport)",
        Scheme::Inproc => {
            "the inproc transport only handles inproc:// endpoints (use AnyTransport)"
        }
    }
}

/// Binds the first resolved address that accepts the bind.
pub(crate) async fn bind_tcp(endpoint: &Endpoint) -> Result<TokioTcpListener, TransportError> {
    let addrs = endpoint.resolve().await?;
    let mut last_err = None;
    for addr in addrs {
        match TokioTcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last_err = Some(e),
        }
    }
    let err = last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable));
    Err(TransportError::io("bind", endpoint, err))
}

/// Connects to the first resolved address that answers, within the connect timeout.
pub(crate) async fn connect_tcp(
    endpoint: &Endpoint,
    options: &TcpOptions,
) -> Result<(TcpStream, SocketAddr), TransportError> {
    let attempt = async {
        let addrs = endpoint.resolve().await?;
        let mut last_err = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok((stream, addr)),
                Err(e) => last_err = Some(e),
            }
        }
        let err = last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable));
        Err(TransportError::io("connect to", endpoint, err))
    };
    let timeout = options.get_connect_timeout();
    let (stream, addr) =
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| TransportError::Timeout {
                op: "connect to",
                endpoint: endpoint.clone(),
                after: timeout,
            })??;
    options
        .apply(&stream)
        .map_err(|e| TransportError::io("configure connection to", endpoint, e))?;
    Ok((stream, addr))
}

pub(crate) async fn accept_tcp(
    listener: &TokioTcpListener,
    local: &Endpoint,
    options: &TcpOptions,
) -> Result<(TcpStream, SocketAddr), TransportError> {
    let (stream, addr) = listener
        .accept()
        .await
        .map_err(|e| TransportError::io("accept on", local, e))?;
    // The peer may already have reset the connection, which makes setting options
    // fail. That is this connection's problem, not the listener's: hand it out anyway
    // and let its first read or write report the error.
    if let Err(error) = options.apply(&stream) {
        debug!(endpoint = %local, peer = %addr, %error, "cannot set tcp options on accepted connection");
    }
    Ok((stream, addr))
}
