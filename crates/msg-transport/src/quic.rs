//! QUIC with quinn: one connection per peer, one bidirectional stream per connection.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::{debug, warn};

use crate::accept::AcceptQueue;
use crate::tcp::check_scheme;
use crate::{
    Endpoint, Host, Listener, PeerAddr, Scheme, TlsClientConfig, TlsServerConfig, Transport,
    TransportError,
};

/// The byte a client writes when it opens its stream.
///
/// A QUIC stream only becomes visible to the server once the client sends on it.
/// Writing this byte at connect time means the server's `accept` works no matter which
/// side speaks first in the protocol above; the server reads and checks it, and it
/// never reaches the application.
const STREAM_OPEN: u8 = 0x6d;

/// Options of the [`Quic`] transport.
///
/// Certificates work as for TLS: a server part to bind, a client part to connect.
///
/// ```
/// # fn main() -> Result<(), msg_transport::TransportError> {
/// use std::time::Duration;
/// use msg_transport::{dev, Quic, QuicOptions, TlsClientConfig};
///
/// let cert = dev::self_signed(["localhost", "127.0.0.1"])?;
/// let mut client = TlsClientConfig::new();
/// client.add_root(cert.certificate());
///
/// let mut options = QuicOptions::new();
/// options
///     .server(cert.server_config())
///     .client(client)
///     .connect_timeout(Duration::from_secs(3));
/// let quic = Quic::new(&options)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct QuicOptions {
    server: Option<TlsServerConfig>,
    client: Option<TlsClientConfig>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    keep_alive: Option<Duration>,
    linger: Duration,
    max_pending_handshakes: usize,
}

impl Default for QuicOptions {
    fn default() -> Self {
        QuicOptions {
            server: None,
            client: None,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keep_alive: Some(Duration::from_secs(10)),
            linger: Duration::from_secs(5),
            max_pending_handshakes: 1024,
        }
    }
}

impl QuicOptions {
    /// Options with neither a server nor a client part, and default timings.
    pub fn new() -> Self {
        QuicOptions::default()
    }

    /// The certificate listeners present, and client authentication. Needed to bind.
    /// Default: none.
    pub fn server(&mut self, config: TlsServerConfig) -> &mut Self {
        self.server = Some(config);
        self
    }

    /// The roots to verify servers with, and the client certificate. Needed to connect.
    /// Default: none.
    pub fn client(&mut self, config: TlsClientConfig) -> &mut Self {
        self.client = Some(config);
        self
    }

    /// How long [`Transport::connect`] may take (resolution, handshake and opening the
    /// stream) before it fails with [`TransportError::Timeout`].
    ///
    /// UDP has no "connection refused": without this limit, connecting to a port
    /// where nothing listens would wait for the idle timeout. Default: 10 s.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an incoming connection may take to complete the handshake and open its
    /// stream before the listener drops it (with a warning naming the peer).
    /// Default: 10 s.
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.handshake_timeout = timeout;
        self
    }

    /// A connection that receives nothing for this long is closed. The effective value
    /// is the smaller of the two peers'. Default: 30 s.
    pub fn idle_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.idle_timeout = timeout;
        self
    }

    /// Interval of QUIC keep-alive pings on an otherwise idle connection, or `None` for
    /// none. Must be shorter than the idle timeout to keep idle connections open
    /// (and NAT mappings alive). Default: `Some(10 s)`.
    pub fn keep_alive(&mut self, interval: Option<Duration>) -> &mut Self {
        self.keep_alive = interval;
        self
    }

    /// How long a dropped [`QuicConn`] keeps its connection open, in the background,
    /// for the peer to acknowledge the data already written.
    ///
    /// Closing a QUIC connection discards data not yet delivered, unlike closing a TCP
    /// socket; this grace period gives the same "what I wrote before dropping gets
    /// there" behaviour. Default: 5 s.
    pub fn linger(&mut self, linger: Duration) -> &mut Self {
        self.linger = linger;
        self
    }

    /// How many incoming connections may be handshaking at once. Default: 1024.
    pub fn max_pending_handshakes(&mut self, count: usize) -> &mut Self {
        self.max_pending_handshakes = count;
        self
    }

    fn transport_config(
        &self,
        side_accepts_streams: bool,
    ) -> Result<TransportConfig, TransportError> {
        let mut transport = TransportConfig::default();
        let idle = IdleTimeout::try_from(self.idle_timeout)
            .map_err(|e| TransportError::config("quic idle timeout", e))?;
        transport
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(self.keep_alive)
            // One stream per connection, opened by the client; the server opens none.
            .max_concurrent_bidi_streams(VarInt::from_u32(u32::from(side_accepts_streams)))
            .max_concurrent_uni_streams(VarInt::from_u32(0));
        Ok(transport)
    }
}

/// The QUIC transport (`quic://host:port`), built on quinn and rustls (ring).
///
/// Each connection is one QUIC connection carrying one bidirectional stream, opened by
/// the client during [`connect`](Transport::connect). Certificates are verified as for
/// [`Tls`](crate::Tls); QUIC always uses TLS 1.3, with ALPN `msg/1`.
///
/// Listeners handshake each incoming connection in its own task with a timeout, so a
/// slow or hostile client never blocks the others; failed handshakes are logged as
/// warnings with the peer's address. Each client connection binds its own UDP socket
/// on an ephemeral port (`0.0.0.0:0` or `[::]:0`, matching the server's family).
/// Connecting to a host name tries all its addresses at once and keeps the first that
/// answers.
#[derive(Clone)]
pub struct Quic {
    inner: Arc<QuicInner>,
}

struct QuicInner {
    server: Option<quinn::ServerConfig>,
    client: Option<(quinn::ClientConfig, Option<String>)>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    linger: Duration,
    max_pending_handshakes: usize,
}

impl std::fmt::Debug for Quic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quic")
            .field("server", &self.inner.server.is_some())
            .field("client", &self.inner.client.is_some())
            .field("connect_timeout", &self.inner.connect_timeout)
            .field("handshake_timeout", &self.inner.handshake_timeout)
            .finish()
    }
}

impl Quic {
    /// Builds the transport, validating certificates, keys and roots once.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] when a certificate or key is malformed, the key does
    /// not match the certificate, the client part has no roots and does not skip
    /// verification, or a timing is out of QUIC's range.
    pub fn new(options: &QuicOptions) -> Result<Quic, TransportError> {
        let versions = &[&rustls::version::TLS13];
        let server = match &options.server {
            Some(server) => {
                let crypto = QuicServerConfig::try_from(server.build(versions)?)
                    .map_err(|e| TransportError::config("quic server configuration", e))?;
                let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
                config.transport_config(Arc::new(options.transport_config(true)?));
                Some(config)
            }
            None => None,
        };
        let client = match &options.client {
            Some(client) => {
                let (rustls_config, name) = client.build(versions)?;
                let crypto = QuicClientConfig::try_from(rustls_config)
                    .map_err(|e| TransportError::config("quic client configuration", e))?;
                let mut config = quinn::ClientConfig::new(Arc::new(crypto));
                config.transport_config(Arc::new(options.transport_config(false)?));
                // The rustls ServerName was validated in build(); quinn wants a string.
                let name = name.map(|n| n.to_str().into_owned());
                Some((config, name))
            }
            None => None,
        };
        Ok(Quic {
            inner: Arc::new(QuicInner {
                server,
                client,
                connect_timeout: options.connect_timeout,
                handshake_timeout: options.handshake_timeout,
                linger: options.linger,
                max_pending_handshakes: options.max_pending_handshakes,
            }),
        })
    }
}

fn quic_error(endpoint: &Endpoint, source: impl Into<io::Error>) -> TransportError {
    TransportError::Quic {
        endpoint: endpoint.clone(),
        source: source.into(),
    }
}

/// Like [`quic_error`], but a server refusing the connection is [`TransportError::Refused`].
fn connection_error(endpoint: &Endpoint, error: quinn::ConnectionError) -> TransportError {
    match &error {
        quinn::ConnectionError::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            TransportError::Refused {
                endpoint: endpoint.clone(),
            }
        }
        _ => quic_error(endpoint, io::Error::other(error)),
    }
}

impl Transport for Quic {
    type Conn = QuicConn;
    type Listener = QuicListener;

    async fn bind(&self, endpoint: &Endpoint) -> Result<QuicListener, TransportError> {
        check_scheme(endpoint, Scheme::Quic)?;
        let config = self
            .inner
            .server
            .clone()
            .ok_or(TransportError::MissingConfig {
                scheme: Scheme::Quic,
                what: "a server certificate to bind (QuicOptions::server)",
            })?;
        let addrs = endpoint.resolve().await?;
        let mut last_err = io::Error::from(io::ErrorKind::AddrNotAvailable);
        let mut bound = None;
        for addr in addrs {
            match udp_endpoint(addr, Some(config.clone())) {
                Ok(quic) => {
                    bound = Some(quic);
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        let quic = bound.ok_or_else(|| TransportError::io("bind", endpoint, last_err))?;
        let local = quic
            .local_addr()
            .map_err(|e| TransportError::io("bind", endpoint, e))?;
        let local_endpoint = Endpoint::quic(local);
        debug!(endpoint = %local_endpoint, "quic listener bound");

        let timeout = self.inner.handshake_timeout;
        let linger = self.inner.linger;
        let server = quic.clone();
        let queue = AcceptQueue::spawn(
            self.inner.max_pending_handshakes,
            move |tx, mut handshakes| async move {
                loop {
                    let permit = tokio::select! {
                        permit = handshakes.slot() => permit,
                        () = tx.closed() => return,
                    };
                    let incoming = tokio::select! {
                        incoming = server.accept() => incoming,
                        () = tx.closed() => return,
                    };
                    let Some(incoming) = incoming else {
                        // The endpoint was closed.
                        let _ = tx.send(Err(TransportError::Closed)).await;
                        return;
                    };
                    let addr = incoming.remote_address();
                    let tx = tx.clone();
                    let server = server.clone();
                    handshakes.spawn(permit, async move {
                        let handshake = async {
                            let conn = incoming.await?;
                            let (send, mut recv) = conn.accept_bi().await?;
                            let mut open = [0u8; 1];
                            recv.read_exact(&mut open).await.map_err(io::Error::other)?;
                            if open[0] != STREAM_OPEN {
                                return Err(io::Error::new(
                                    io::ErrorKind::InvalidData,
                                    "client opened its stream with an unexpected byte",
                                ));
                            }
                            Ok::<_, io::Error>(QuicConn::new(
                                send, recv, conn, server, false, linger,
                            ))
                        };
                        match tokio::time::timeout(timeout, handshake).await {
                            Ok(Ok(conn)) => {
                                debug!(peer = %addr, "quic accepted");
                                let _ = tx.send(Ok((conn, PeerAddr::Quic(addr)))).await;
                            }
                            Ok(Err(error)) => {
                                warn!(peer = %addr, %error, "quic handshake failed");
                            }
                            Err(_) => {
                                warn!(peer = %addr, ?timeout, "quic handshake timed out");
                            }
                        }
                    });
                }
            },
        );
        Ok(QuicListener {
            queue,
            endpoint: quic,
            local_endpoint,
        })
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<(QuicConn, PeerAddr), TransportError> {
        check_scheme(endpoint, Scheme::Quic)?;
        let (config, name_override) =
            self.inner
                .client
                .as_ref()
                .ok_or(TransportError::MissingConfig {
                    scheme: Scheme::Quic,
                    what: "a client configuration to connect (QuicOptions::client)",
                })?;
        let server_name = match (name_override, endpoint.host_port()) {
            (Some(name), _) => name.clone(),
            (None, Some((Host::Ip(ip), _))) => ip.to_string(),
            (None, Some((Host::Name(name), _))) => name.clone(),
            (None, None) => String::new(),
        };
        let linger = self.inner.linger;
        let attempt = async {
            let addrs = endpoint.resolve().await?;
            let attempts: Vec<_> = addrs
                .into_iter()
                .map(|addr| {
                    connect_addr(endpoint, config.clone(), addr, &server_name, linger).boxed()
                })
                .collect();
            if attempts.is_empty() {
                // resolve() never returns an empty list; select_ok would panic on one.
                return Err(TransportError::io(
                    "connect to",
                    endpoint,
                    io::Error::from(io::ErrorKind::AddrNotAvailable),
                ));
            }
            futures::future::select_ok(attempts)
                .await
                .map(|(connected, _others)| connected)
        };
        let limit = self.inner.connect_timeout;
        let (conn, addr) =
            tokio::time::timeout(limit, attempt)
                .await
                .map_err(|_| TransportError::Timeout {
                    op: "connect to",
                    endpoint: endpoint.clone(),
                    after: limit,
                })??;
        debug!(endpoint = %endpoint, peer = %addr, "quic connected");
        Ok((conn, PeerAddr::Quic(addr)))
    }
}

/// How much a QUIC endpoint's UDP socket may buffer each way. The kernel
/// caps it (`net.core.rmem_max`, `wmem_max`). With the default (about
/// 200 KiB on Linux) a burst on a fast path overflows the receive buffer;
/// each dropped datagram looks like congestion to the sender, which then
/// slows down: on loopback, 1 % of datagrams were dropped that way.
const UDP_BUFFER: usize = 8 * 1024 * 1024;

/// A quinn endpoint on a UDP socket bound to `addr`, with large socket
/// buffers; a server endpoint when `server` is given.
fn udp_endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> io::Result<quinn::Endpoint> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a kernel that allows less still works, with less.
    if let Err(e) = socket.set_recv_buffer_size(UDP_BUFFER) {
        debug!(error = %e, "cannot enlarge the udp receive buffer");
    }
    if let Err(e) = socket.set_send_buffer_size(UDP_BUFFER) {
        debug!(error = %e, "cannot enlarge the udp send buffer");
    }
    socket.bind(&addr.into())?;
    let runtime =
        quinn::default_runtime().ok_or_else(|| io::Error::other("no async runtime for quinn"))?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket.into(),
        runtime,
    )
}

async fn connect_addr(
    endpoint: &Endpoint,
    config: quinn::ClientConfig,
    addr: SocketAddr,
    server_name: &str,
    linger: Duration,
) -> Result<(QuicConn, SocketAddr), TransportError> {
    let local: SocketAddr = if addr.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let client = udp_endpoint(local, None)
        .map_err(|e| TransportError::io("bind a client socket for", endpoint, e))?;
    let conn = client
        .connect_with(config, addr, server_name)
        .map_err(|e| quic_error(endpoint, io::Error::other(e)))?
        .await
        .map_err(|e| connection_error(endpoint, e))?;
    let (mut send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| connection_error(endpoint, e))?;
    send.write_all(&[STREAM_OPEN])
        .await
        .map_err(|e| quic_error(endpoint, e))?;
    Ok((QuicConn::new(send, recv, conn, client, true, linger), addr))
}

/// A bound QUIC listener; `accept` yields connections whose handshake completed and
/// whose stream is open.
///
/// Dropping it stops accepting. Connections already accepted keep the UDP socket open
/// until they close; while it is open, new clients get no handshake and their connect
/// times out (QUIC has no equivalent of TCP's immediate "connection refused").
#[derive(Debug)]
pub struct QuicListener {
    queue: AcceptQueue<QuicConn>,
    endpoint: quinn::Endpoint,
    local_endpoint: Endpoint,
}

impl Listener for QuicListener {
    type Conn = QuicConn;

    fn local_endpoint(&self) -> &Endpoint {
        &self.local_endpoint
    }

    async fn accept(&mut self) -> Result<(QuicConn, PeerAddr), TransportError> {
        self.queue.next().await
    }
}

impl Drop for QuicListener {
    fn drop(&mut self) {
        // Without a server configuration quinn ignores new connections; the ones
        // already accepted are untouched.
        self.endpoint.set_server_config(None);
    }
}

/// One QUIC connection with its single bidirectional stream, as a byte stream.
///
/// Shutting down the write half finishes the send stream (the peer reads EOF).
/// Dropping the connection finishes the send stream, stops the receive stream, and
/// closes the QUIC connection once the peer has acknowledged the data sent, or after
/// the [linger](QuicOptions::linger) time, in a background task.
#[derive(Debug)]
pub struct QuicConn {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    conn: quinn::Connection,
    endpoint: quinn::Endpoint,
    /// Whether `endpoint` exists for this connection alone (client side).
    owns_endpoint: bool,
    linger: Duration,
}

impl QuicConn {
    fn new(
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        conn: quinn::Connection,
        endpoint: quinn::Endpoint,
        owns_endpoint: bool,
        linger: Duration,
    ) -> Self {
        QuicConn {
            send,
            recv,
            conn,
            endpoint,
            owns_endpoint,
            linger,
        }
    }

    /// The current round-trip time estimate.
    pub fn rtt(&self) -> Duration {
        self.conn.rtt()
    }

    /// The peer's UDP address (it can change if the peer migrates).
    pub fn remote_address(&self) -> SocketAddr {
        self.conn.remote_address()
    }
}

impl AsyncRead for QuicConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuicConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.send), cx)
    }
}

impl Drop for QuicConn {
    fn drop(&mut self) {
        // Errors here mean the stream or connection is already finished or gone.
        let _ = self.send.finish();
        let _ = self.recv.stop(VarInt::from_u32(0));
        let conn = self.conn.clone();
        let endpoint = self.endpoint.clone();
        let delivered = self.send.stopped();
        let linger = self.linger;
        let owns_endpoint = self.owns_endpoint;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = tokio::time::timeout(linger, delivered).await;
                    conn.close(VarInt::from_u32(0), b"closed");
                    if owns_endpoint {
                        // Give the close frame a chance to leave before the client's
                        // own UDP socket goes away, so the server need not wait out
                        // its idle timeout.
                        let idle = endpoint.wait_idle();
                        let _ = tokio::time::timeout(Duration::from_secs(1), idle).await;
                    }
                });
            }
            Err(_) => conn.close(VarInt::from_u32(0), b"closed"),
        }
    }
}
