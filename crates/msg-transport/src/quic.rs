//! QUIC with quinn: one connection per peer, one bidirectional stream per connection.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, IdleTimeout, TransportConfig, UdpPoller, VarInt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::accept::AcceptQueue;
use crate::tcp::check_scheme;
use crate::{
    Conn, Endpoint, Host, Listener, PeerAddr, PeerCertificates, Scheme, TlsClientConfig,
    TlsServerConfig, Transport, TransportError,
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
    /// A port with no socket at all fails at once with [`TransportError::Refused`]
    /// (see [`Quic`]). This limit covers the silent cases: a firewall that drops
    /// datagrams, a host that does not answer, a socket that is open but not a
    /// listening QUIC server. Without it they would wait for the idle timeout.
    /// Default: 10 s.
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
    ///
    /// It also bounds how long [`QuicConn::close`] and closing a [`QuicListener`]
    /// wait for the peers' acknowledgements before their UDP socket can close.
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

/// The QUIC transport (`quic://host:port`), built on quinn and rustls (aws-lc-rs).
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
///
/// # Connecting to a closed port
///
/// UDP has no "connection refused", but the host of a closed port answers with an ICMP
/// "port unreachable". To hear it, [`connect`](Transport::connect) sends, beside the
/// QUIC handshake and from a separate connected UDP socket, one probe datagram: a
/// 1200-byte QUIC packet with a reserved version (RFC 9000 §15), which a QUIC server
/// answers with a harmless Version Negotiation packet. If the probe is refused, the
/// connect fails at once with [`TransportError::Refused`], as a TCP connect would.
/// An answer, or silence, leaves the handshake to succeed or to fail with
/// [`TransportError::Timeout`] after the [connect
/// timeout](QuicOptions::connect_timeout); the probe never delays a handshake.
///
/// # Closing and the UDP port
///
/// A QUIC connection does not end when it is dropped: it first waits, up to the
/// [linger](QuicOptions::linger) time, for the peer to acknowledge what was written,
/// then closes and drains for three probe timeouts (RFC 9000 §10.2; about 80 ms on
/// loopback, up to a few seconds for a connection still in its handshake). Its UDP
/// socket, a client's own or a listener's, closes only after that, in quinn's
/// background task. Dropping does all this in the background and never blocks;
/// [`Listener::close`] and [`Transport::close_conn`] (or [`QuicConn::close`]) wait
/// for it and return once the socket is closed, so that the port can be bound
/// again. They give up waiting 4 s after the linger time, and log it.
#[derive(Clone)]
pub struct Quic {
    inner: Arc<QuicInner>,
}

struct QuicInner {
    server: Option<quinn::ServerConfig>,
    /// The client configuration, the server name override, and whether server
    /// certificates are verified.
    client: Option<(quinn::ClientConfig, Option<String>, bool)>,
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
                Some((config, name, !client.skips_verification()))
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
        let (quic, released) =
            bound.ok_or_else(|| TransportError::io("bind", endpoint, last_err))?;
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
                            // Client certificates are only ever asked for with a
                            // verifier: what quinn has was verified.
                            Ok::<_, io::Error>(QuicConn::new(send, recv, conn, None, linger, true))
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
            endpoint: StopAccepting(quic),
            released,
            linger,
            local_endpoint,
        })
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<(QuicConn, PeerAddr), TransportError> {
        check_scheme(endpoint, Scheme::Quic)?;
        let (config, name_override, verified) =
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
                    let peer = Peer {
                        addr,
                        server_name: &server_name,
                        verified: *verified,
                    };
                    connect_addr(endpoint, config.clone(), peer, linger).boxed()
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

    async fn close_conn(&self, conn: QuicConn) {
        conn.close().await;
    }
}

/// How long closing waits, after the [linger](QuicOptions::linger) time, for quinn to
/// close a UDP socket: 4 s.
///
/// A closed connection lingers in the closing or draining state for three probe
/// timeouts (RFC 9000 §10.2) before quinn forgets it, and the socket closes only
/// after its last connection. On loopback that is about 80 ms; a connection still in
/// its handshake, with no round-trip sample yet, uses the initial estimate of 333 ms
/// and waits about 3 s, which this covers.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(4);

/// How much a QUIC endpoint's UDP socket may buffer each way. The kernel
/// caps it (`net.core.rmem_max`, `wmem_max`). With the default (about
/// 200 KiB on Linux) a burst on a fast path overflows the receive buffer;
/// each dropped datagram looks like congestion to the sender, which then
/// slows down: on loopback, 1 % of datagrams were dropped that way.
const UDP_BUFFER: usize = 8 * 1024 * 1024;

/// A quinn endpoint on a UDP socket bound to `addr`, with large socket
/// buffers; a server endpoint when `server` is given. The [`Released`] hears
/// when quinn closes the socket.
fn udp_endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> io::Result<(quinn::Endpoint, Released)> {
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
    let (socket, released) = ReleasingSocket::wrap(runtime.wrap_udp_socket(socket.into())?);
    let endpoint = quinn::Endpoint::new_with_abstract_socket(
        quinn::EndpointConfig::default(),
        server,
        socket,
        runtime,
    )?;
    Ok((endpoint, released))
}

/// The runtime's UDP socket, as quinn gets it, with a signal for when quinn drops it.
///
/// quinn shares the socket (an `Arc`) between its endpoint task and every connection,
/// and closes it when the last of them lets go: after the last connection has drained,
/// some time after anything a caller can see has ended. This wrapper is that `Arc`'s
/// target, so its drop is the moment the file descriptor closes; it then drops a
/// [`oneshot::Sender`], which wakes the [`Released`].
///
/// Every call is handed on to the wrapped socket unchanged: one more indirect call
/// per batch of datagrams, next to a system call. Nothing is locked, counted or
/// allocated on the way.
#[derive(Debug)]
struct ReleasingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    /// Declared after `inner`: fields drop in order, so the signal goes only once
    /// the wrapped socket (the last `Arc` to it, see [`ReleasingPoller`]) is closed.
    _released: oneshot::Sender<Infallible>,
}

impl ReleasingSocket {
    fn wrap(inner: Arc<dyn AsyncUdpSocket>) -> (Arc<dyn AsyncUdpSocket>, Released) {
        let (tx, rx) = oneshot::channel();
        let socket = ReleasingSocket {
            inner,
            _released: tx,
        };
        (Arc::new(socket), Released(rx))
    }
}

impl AsyncUdpSocket for ReleasingSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(ReleasingPoller {
            inner: self.inner.clone().create_io_poller(),
            _socket: self,
        })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// The wrapped socket's poller, holding the wrapper rather than letting the wrapped
/// poller alone keep the socket open: otherwise the socket could outlive the
/// [`ReleasingSocket`] and the signal would come too early.
#[derive(Debug)]
struct ReleasingPoller {
    /// Declared first, so it (and its `Arc` to the wrapped socket) drops before
    /// `_socket`, possibly the wrapper's last `Arc`.
    inner: Pin<Box<dyn UdpPoller>>,
    _socket: Arc<ReleasingSocket>,
}

impl UdpPoller for ReleasingPoller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner.as_mut().poll_writable(cx)
    }
}

/// Completes once quinn has closed an endpoint's UDP socket.
#[derive(Debug)]
struct Released(oneshot::Receiver<Infallible>);

impl Released {
    /// Waits until the socket is closed, for at most `limit`; returns whether it is.
    async fn wait(self, limit: Duration) -> bool {
        // Nothing is ever sent: the receiver completes, with an error, once the
        // sender is dropped.
        tokio::time::timeout(limit, self.0).await.is_ok()
    }
}

/// The unspecified address and an ephemeral port, in `addr`'s family: where a client
/// socket talking to `addr` binds.
fn unspecified_like(addr: SocketAddr) -> SocketAddr {
    if addr.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    }
}

/// The server a client connects to: its address, the name its certificate must
/// hold, and whether that is checked.
struct Peer<'a> {
    addr: SocketAddr,
    server_name: &'a str,
    verified: bool,
}

async fn connect_addr(
    endpoint: &Endpoint,
    config: quinn::ClientConfig,
    peer: Peer<'_>,
    linger: Duration,
) -> Result<(QuicConn, SocketAddr), TransportError> {
    let Peer {
        addr,
        server_name,
        verified,
    } = peer;
    let (client, released) = udp_endpoint(unspecified_like(addr), None)
        .map_err(|e| TransportError::io("bind a client socket for", endpoint, e))?;
    let connecting = client
        .connect_with(config, addr, server_name)
        .map_err(|e| quic_error(endpoint, io::Error::other(e)))?;
    // The probe runs beside the handshake, never before it: when a server answers,
    // the handshake finishes as fast as without it. `biased` polls the handshake
    // first, so a handshake that completes wins over a late probe result.
    let conn = tokio::select! {
        biased;
        conn = connecting => conn.map_err(|e| connection_error(endpoint, e))?,
        () = refused_probe(addr) => {
            debug!(endpoint = %endpoint, peer = %addr, "quic probe refused: nothing listens");
            return Err(TransportError::Refused {
                endpoint: endpoint.clone(),
            });
        }
    };
    let (mut send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| connection_error(endpoint, e))?;
    send.write_all(&[STREAM_OPEN])
        .await
        .map_err(|e| quic_error(endpoint, e))?;
    let own = OwnEndpoint {
        endpoint: client,
        released,
    };
    Ok((
        QuicConn::new(send, recv, conn, Some(own), linger, verified),
        addr,
    ))
}

/// The reserved QUIC version the refusal probe announces.
///
/// RFC 9000 §15 reserves versions of the form `0x?a?a?a?a` so that they are never
/// supported: a server receiving one answers with a Version Negotiation packet
/// (§5.2.2, §6.1) and creates no connection state.
const PROBE_VERSION: u32 = 0x6a7a_8a9a;

/// The size of the probe datagram, in bytes: the smallest a client's first datagram
/// may be. A server drops smaller packets of an unsupported version (RFC 9000
/// §5.2.2), so that a spoofed source cannot make it send more than it received.
const PROBE_LEN: usize = 1200;

/// The datagram the refusal probe sends: a long-header packet (RFC 9000 §17.2) with
/// the reserved [`PROBE_VERSION`], padded to [`PROBE_LEN`] bytes.
///
/// ```text
/// +------+------------+-----+------------+-----+------------+-------------+
/// | 0xc0 | version    | 8   | "msgprobe" | 8   | "msgprobe" | zeros, to   |
/// |      | 0x6a7a8a9a | len | dest. CID  | len | source CID | 1200 bytes  |
/// +------+------------+-----+------------+-----+------------+-------------+
///    1         4         1        8         1        8
/// ```
///
/// The first byte sets the long header and fixed bits. Everything after the version
/// is only read by a server that supports it, and none does.
fn probe_datagram() -> Vec<u8> {
    const CID: &[u8; 8] = b"msgprobe";
    let mut datagram = Vec::with_capacity(PROBE_LEN);
    datagram.push(0xc0);
    datagram.extend_from_slice(&PROBE_VERSION.to_be_bytes());
    for _ in 0..2 {
        datagram.push(CID.len() as u8);
        datagram.extend_from_slice(CID);
    }
    datagram.resize(PROBE_LEN, 0);
    datagram
}

/// Completes only when nothing listens on UDP `addr`; pending forever otherwise.
///
/// UDP has no connection, so quinn never learns that nobody is there: its Initial
/// packets go unanswered until the connect timeout. The operating system does learn
/// it, from the ICMP "port unreachable" the peer's host returns, but by default
/// reports it only on a *connected* UDP socket (as `ECONNREFUSED` on the next
/// receive), and quinn's socket is not connected. So this opens one, sends a datagram
/// that any QUIC server handles harmlessly (see [`probe_datagram`]), and waits for
/// the answer:
///
/// - a refusal means the port is closed: nothing can answer the handshake either;
/// - a datagram (a server's Version Negotiation) or any other error proves nothing,
///   and the handshake goes on as if there had been no probe;
/// - silence (a firewall that drops, a lost datagram, a dropped listener whose socket
///   stays open for its accepted connections) leaves the handshake to finish or time
///   out as before.
async fn refused_probe(addr: SocketAddr) {
    match probe(addr).await {
        Ok(true) => return,
        Ok(false) => debug!(peer = %addr, "quic probe answered"),
        Err(e) => debug!(peer = %addr, error = %e, "quic probe failed"),
    }
    std::future::pending::<()>().await;
}

/// Sends the probe to `addr` and reports whether the port refused it.
async fn probe(addr: SocketAddr) -> io::Result<bool> {
    let socket = tokio::net::UdpSocket::bind(unspecified_like(addr)).await?;
    socket.connect(addr).await?;
    if let Err(e) = socket.send(&probe_datagram()).await {
        return if is_port_unreachable(&e) {
            Ok(true)
        } else {
            Err(e)
        };
    }
    // The answer's content does not matter, only whether there is one.
    let mut answer = [0u8; 64];
    match socket.recv(&mut answer).await {
        Ok(_) => Ok(false),
        Err(e) if is_port_unreachable(&e) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Whether a connected UDP socket's error reports an ICMP "port unreachable".
fn is_port_unreachable(error: &io::Error) -> bool {
    // Windows reports it as WSAECONNRESET rather than a refusal.
    error.kind() == io::ErrorKind::ConnectionRefused
        || (cfg!(windows) && error.kind() == io::ErrorKind::ConnectionReset)
}

/// A bound QUIC listener; `accept` yields connections whose handshake completed and
/// whose stream is open.
///
/// Dropping it stops accepting. Connections already accepted keep the UDP socket open
/// until they close; while it is open, new clients get no handshake and their connect
/// times out: the port is not closed, so it cannot refuse them (see [`Quic`]).
/// [`Listener::close`] stops accepting too, then waits until the socket is closed.
#[derive(Debug)]
pub struct QuicListener {
    queue: AcceptQueue<QuicConn>,
    endpoint: StopAccepting,
    released: Released,
    linger: Duration,
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

    /// Turns new clients away, lets go of every handle on the endpoint, and waits
    /// for quinn to close the socket: once the connections accepted from it have
    /// closed (their [linger](QuicOptions::linger) time at most) and drained.
    async fn close(self) {
        let QuicListener {
            queue,
            endpoint,
            released,
            linger,
            local_endpoint,
        } = self;
        drop(endpoint);
        // The accept loop and its handshakes hold handles too.
        queue.close().await;
        if !released.wait(linger + RELEASE_TIMEOUT).await {
            warn!(endpoint = %local_endpoint, "quic listener closed with its udp socket still open");
        }
    }
}

/// The listener's handle on its endpoint; dropping it turns new clients away.
#[derive(Debug)]
struct StopAccepting(quinn::Endpoint);

impl Drop for StopAccepting {
    fn drop(&mut self) {
        // Without a server configuration quinn ignores new connections; the ones
        // already accepted are untouched.
        self.0.set_server_config(None);
    }
}

/// One QUIC connection with its single bidirectional stream, as a byte stream.
///
/// Shutting down the write half finishes the send stream (the peer reads EOF).
/// Dropping the connection finishes the send stream, stops the receive stream, and
/// closes the QUIC connection once the peer has acknowledged the data sent, or after
/// the [linger](QuicOptions::linger) time, in a background task. [`close`](Self::close)
/// does the same and waits for it.
#[derive(Debug)]
pub struct QuicConn {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    conn: quinn::Connection,
    /// The endpoint made for this connection alone (client side); taken when
    /// closing begins.
    own_endpoint: Option<OwnEndpoint>,
    linger: Duration,
    /// Set once closing has begun, so that dropping has nothing left to do.
    closing: bool,
    /// The peer's verified certificates, read once the handshake completed.
    certificates: Option<PeerCertificates>,
}

/// A client connection's own endpoint, and the signal that its socket is closed.
#[derive(Debug)]
struct OwnEndpoint {
    endpoint: quinn::Endpoint,
    released: Released,
}

impl QuicConn {
    fn new(
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        conn: quinn::Connection,
        own_endpoint: Option<OwnEndpoint>,
        linger: Duration,
        verified: bool,
    ) -> Self {
        let certificates = if verified {
            peer_certificates(&conn)
        } else {
            None
        };
        QuicConn {
            send,
            recv,
            conn,
            own_endpoint,
            linger,
            closing: false,
            certificates,
        }
    }

    /// Closes the connection as dropping it does, and waits until that is done.
    ///
    /// The send stream is finished and the peer gets up to the
    /// [linger](QuicOptions::linger) time to acknowledge everything written; then the
    /// connection closes. On the client side this also waits, bounded (see [`Quic`]),
    /// until the connection has drained and its own UDP socket is closed. On the
    /// server side the socket is the listener's: [`Listener::close`] waits for it.
    pub async fn close(mut self) {
        let closing = self.begin_close();
        // quinn keeps a connection, and the socket, while any handle on it is
        // alive: the streams and the connection go now.
        drop(self);
        closing.await;
    }

    /// Finishes and stops the streams; the returned future closes the connection
    /// once the peer has acknowledged what was sent (or after the linger time),
    /// then waits for a client's own socket to close.
    fn begin_close(&mut self) -> impl Future<Output = ()> + Send + 'static {
        self.closing = true;
        // Errors here mean the stream or connection is already finished or gone.
        let _ = self.send.finish();
        let _ = self.recv.stop(VarInt::from_u32(0));
        let conn = self.conn.clone();
        let delivered = self.send.stopped();
        let linger = self.linger;
        let own_endpoint = self.own_endpoint.take();
        async move {
            let _ = tokio::time::timeout(linger, delivered).await;
            conn.close(VarInt::from_u32(0), b"closed");
            drop(conn);
            if let Some(OwnEndpoint { endpoint, released }) = own_endpoint {
                // Without handles the endpoint's task sends the close, lets the
                // connection drain, then ends and drops the socket.
                drop(endpoint);
                if !released.wait(RELEASE_TIMEOUT).await {
                    debug!("quic client socket still open after closing its connection");
                }
            }
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

/// The chain quinn's rustls session holds for the peer, if any.
fn peer_certificates(conn: &quinn::Connection) -> Option<PeerCertificates> {
    let identity = conn.peer_identity()?;
    let chain = identity
        .downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
        .ok()?;
    PeerCertificates::from_chain(
        chain
            .iter()
            .map(|c| bytes::Bytes::copy_from_slice(c.as_ref()))
            .collect(),
    )
}

impl Conn for QuicConn {
    /// The chain the peer presented, leaf first, when it was verified: a client's
    /// under [`TlsServerConfig::require_client_auth`], the server's unless the client
    /// skips verification.
    fn peer_certificates(&self) -> Option<PeerCertificates> {
        self.certificates.clone()
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
        if self.closing {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(self.begin_close());
            }
            Err(_) => self.conn.close(VarInt::from_u32(0), b"closed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TlsClientConfig, dev};

    #[test]
    fn probe_datagram_is_a_full_size_long_header_with_a_reserved_version() {
        let datagram = probe_datagram();
        assert_eq!(datagram.len(), 1200);
        // Long header form and fixed bit.
        assert_eq!(datagram[0] & 0xc0, 0xc0);
        assert_eq!(datagram[1..5], PROBE_VERSION.to_be_bytes());
        // RFC 9000 §15: reserved versions match 0x?a?a?a?a.
        assert_eq!(PROBE_VERSION & 0x0f0f_0f0f, 0x0a0a_0a0a);
        assert_eq!(datagram[5], 8);
        assert_eq!(&datagram[6..14], b"msgprobe");
        assert_eq!(datagram[14], 8);
        assert_eq!(&datagram[15..23], b"msgprobe");
    }

    fn trusted_quic() -> Quic {
        let cert = dev::self_signed(["127.0.0.1"]).unwrap();
        let mut client = TlsClientConfig::new();
        client.add_root(cert.certificate());
        let mut options = QuicOptions::new();
        options.server(cert.server_config()).client(client);
        Quic::new(&options).unwrap()
    }

    #[tokio::test]
    async fn quic_server_answers_probe_with_version_negotiation_and_keeps_serving() {
        let quic = trusted_quic();
        let mut listener = quic
            .bind(&"quic://127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let endpoint = listener.local_endpoint().clone();
        let addr = endpoint.socket_addr().unwrap();

        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(addr).await.unwrap();
        socket.send(&probe_datagram()).await.unwrap();
        let mut answer = [0u8; 1500];
        let len = socket.recv(&mut answer).await.unwrap();
        let answer = &answer[..len];
        // Version Negotiation (RFC 9000 §17.2.1): long header, version 0, our source
        // connection id as its destination.
        assert!(answer.len() >= 23, "{answer:?}");
        assert_eq!(answer[0] & 0x80, 0x80);
        assert_eq!(answer[1..5], [0, 0, 0, 0]);
        assert_eq!(answer[5], 8);
        assert_eq!(&answer[6..14], b"msgprobe");

        // An answered probe is not a refusal, and the listener still serves.
        assert!(!probe(addr).await.unwrap());
        let (client, _) = quic.connect(&endpoint).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        drop((client, server));
    }

    #[tokio::test]
    async fn probe_of_a_closed_port_is_refused() {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        // A regression would hang rather than fail; the guard is never waited for.
        let guard = Duration::from_secs(30);
        let refused = tokio::time::timeout(guard, probe(closed))
            .await
            .expect("probe of a closed port got no answer");
        assert!(refused.unwrap());
    }
}
