//! QUIC with quinn: one connection per peer, one bidirectional stream per connection.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, IdleTimeout, TransportConfig, UdpPoller, VarInt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tracing::{debug, trace, warn};

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
    handshake_restart: Duration,
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
            handshake_restart: Duration::from_secs(1),
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

    /// How long a connect waits for the server's first answer before it starts a fresh
    /// handshake beside the one already under way. Default: 1 s.
    ///
    /// A handshake whose first packets are lost (a link that is down, a route not yet
    /// up) resends them with exponential backoff: after 1 s, 3 s, 7 s. A link that
    /// comes back at 4 s would wait until 7 s for the next try. A fresh handshake every
    /// `restart` keeps the wait after the link heals at about `restart`, as TCP's SYN
    /// retries do over a short outage. Up to four handshakes wait side by side (the
    /// oldest is dropped for a fifth), so a path whose handshake takes longer than
    /// `restart` still completes; the first to finish is kept and the others closed.
    /// Raise it for paths whose round trip is near or above a second; zero turns
    /// restarts off.
    ///
    /// The [connect timeout](QuicOptions::connect_timeout) still bounds the whole
    /// connect.
    pub fn handshake_restart(&mut self, restart: Duration) -> &mut Self {
        self.handshake_restart = restart;
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
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            // Datagrams carry only the empty nudges of `nudge_after_silence`, which
            // nobody reads: a few may wait, each way, and the oldest go first. This
            // also bounds what a peer's datagrams can make a connection hold.
            .datagram_receive_buffer_size(Some(DATAGRAM_BUFFER))
            .datagram_send_buffer_size(DATAGRAM_BUFFER)
            .congestion_controller_factory(Arc::new(NudgeableFactory(Arc::new(
                quinn::congestion::CubicConfig::default(),
            ))));
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
/// # Network outages
///
/// A connect that hears nothing from the server restarts its handshake every
/// [`handshake_restart`](QuicOptions::handshake_restart), and an open connection
/// whose data has waited a second for an acknowledgement nudges the peer with an
/// empty datagram once a second, past the congestion window. Both keep the wait
/// after a link comes back at about a second, where QUIC's doubling probe timer alone
/// would wait about as long again as the outage lasted. A working connection never
/// nudges, and an idle one is not woken. Datagrams are otherwise unused: each
/// connection holds at most 1 KiB of them, whatever the peer sends.
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
    handshake_restart: Duration,
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
                handshake_restart: options.handshake_restart,
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
                            Ok(Err(error)) if client_gave_up(&error) => {
                                // A client that restarted its handshake keeps the
                                // first to finish and closes the others.
                                debug!(peer = %addr, %error, "quic client closed before opening its stream");
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
        let restart = self.inner.handshake_restart;
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
                    connect_addr(endpoint, config.clone(), peer, linger, restart).boxed()
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
    restart: Duration,
) -> Result<(QuicConn, SocketAddr), TransportError> {
    let Peer {
        addr,
        server_name,
        verified,
    } = peer;
    let (client, released) = udp_endpoint(unspecified_like(addr), None)
        .map_err(|e| TransportError::io("bind a client socket for", endpoint, e))?;
    let start = || {
        client
            .connect_with(config.clone(), addr, server_name)
            .map_err(|e| quic_error(endpoint, io::Error::other(e)))
    };
    let mut handshakes = Handshakes::new(start()?, restart);
    // The probe runs beside the handshake, never before it: when a server answers,
    // the handshake finishes as fast as without it. `biased` polls the handshake
    // first, so a handshake that completes wins over a late probe result.
    let conn = tokio::select! {
        biased;
        conn = handshakes.run(start) => conn.map_err(|e| match e {
            Restart::Failed(e) => e,
            Restart::Handshake(e) => connection_error(endpoint, e),
        })?,
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
        QuicConn::new(send, recv, conn, Some(Box::new(own)), linger, verified),
        addr,
    ))
}

/// Whether a server-side handshake ended because the client closed the connection
/// itself (as it does with the handshakes it started beside the one it kept, see
/// [`QuicOptions::handshake_restart`]), rather than failing.
fn client_gave_up(error: &io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<quinn::ConnectionError>())
        .is_some_and(|e| matches!(e, quinn::ConnectionError::ApplicationClosed(_)))
}

/// How many handshakes of one connect may wait side by side.
const MAX_HANDSHAKES: usize = 4;

/// Why [`Handshakes::run`] ended without a connection.
enum Restart {
    /// A fresh handshake could not be started.
    Failed(TransportError),
    /// A handshake failed: the server, or quinn, answered with an error.
    Handshake(quinn::ConnectionError),
}

/// The handshakes of one connect to one address: a fresh one every `restart` while
/// none has finished, at most [`MAX_HANDSHAKES`] at once. See
/// [`QuicOptions::handshake_restart`].
struct Handshakes {
    waiting: std::collections::VecDeque<Pin<Box<quinn::Connecting>>>,
    restart: Duration,
}

impl Handshakes {
    fn new(first: quinn::Connecting, restart: Duration) -> Handshakes {
        Handshakes {
            waiting: std::iter::once(Box::pin(first)).collect(),
            restart,
        }
    }

    /// The first handshake to finish; the others are dropped (quinn closes them).
    /// A handshake that fails ends the connect: an error is an answer, and a fresh
    /// handshake would meet the same one.
    async fn run(
        &mut self,
        mut start: impl FnMut() -> Result<quinn::Connecting, TransportError>,
    ) -> Result<quinn::Connection, Restart> {
        // Zero turns restarts off, as does a restart too far away to schedule.
        let after = |now: tokio::time::Instant| {
            (!self.restart.is_zero())
                .then(|| now.checked_add(self.restart))
                .flatten()
        };
        let mut next = after(tokio::time::Instant::now());
        loop {
            let finished = futures::future::poll_fn(|cx| {
                for handshake in &mut self.waiting {
                    if let Poll::Ready(result) = handshake.as_mut().poll(cx) {
                        return Poll::Ready(result);
                    }
                }
                Poll::Pending
            });
            tokio::select! {
                biased;
                result = finished => return result.map_err(Restart::Handshake),
                () = sleep_until(next) => {
                    if self.waiting.len() == MAX_HANDSHAKES {
                        self.waiting.pop_front();
                    }
                    self.waiting.push_back(Box::pin(start().map_err(Restart::Failed)?));
                    next = next.and_then(after);
                    debug!(handshakes = self.waiting.len(), "quic handshake restarted");
                }
            }
        }
    }
}

/// Sleeps until `deadline`, or forever if there is none.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
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
    own_endpoint: Option<Box<OwnEndpoint>>,
    linger: Duration,
    /// Set once closing has begun, so that dropping has nothing left to do.
    closing: bool,
    /// The peer's verified certificates, read once the handshake completed.
    certificates: Option<PeerCertificates>,
    /// Tells the connection's nudger that something was written.
    wrote: Arc<Wrote>,
}

/// How long a connection waits for acknowledgements of what it sent before it
/// nudges the peer, and then between nudges.
const NUDGE_AFTER: Duration = Duration::from_secs(1);

/// The bytes of datagrams a connection holds, each way (nudges are empty; quinn
/// counts a datagram's bookkeeping too).
const DATAGRAM_BUFFER: usize = 1024;

/// The signal from a [`QuicConn`]'s writes to its nudger.
#[derive(Debug, Default)]
struct Wrote {
    /// The nudger waits for a write; the next write clears this and wakes it.
    waiting: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Wrote {
    /// Called after every write: wakes the nudger if it waits, else costs one load.
    fn wrote(&self) {
        if self.waiting.load(Ordering::Relaxed) && self.waiting.swap(false, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }
}

/// What a connection's congestion controller ([`Nudgeable`]) tells its nudger, and
/// the switch the nudger uses.
#[derive(Debug)]
struct NudgeState {
    /// The instant `waiting_since` counts from.
    base: std::time::Instant,
    /// Nanoseconds after `base`, plus one, since when the connection has had packets
    /// in flight with no new acknowledgement; zero while nothing is in flight.
    waiting_since: AtomicU64,
    /// Opens the congestion window for one packet.
    nudge: AtomicBool,
}

impl NudgeState {
    fn new() -> NudgeState {
        NudgeState {
            base: std::time::Instant::now(),
            waiting_since: AtomicU64::new(0),
            nudge: AtomicBool::new(false),
        }
    }

    fn stamp(&self, now: std::time::Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.base).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
    }

    /// How long packets have been in flight with no acknowledgement, if any are.
    fn waiting_for(&self, now: std::time::Instant) -> Option<Duration> {
        match self.waiting_since.load(Ordering::Acquire) {
            0 => None,
            since => {
                let since = self.base + Duration::from_nanos(since - 1);
                Some(now.saturating_duration_since(since))
            }
        }
    }
}

/// Builds quinn's default congestion controller (CUBIC), wrapped in [`Nudgeable`].
struct NudgeableFactory(Arc<quinn::congestion::CubicConfig>);

impl quinn::congestion::ControllerFactory for NudgeableFactory {
    fn build(
        self: Arc<Self>,
        now: std::time::Instant,
        current_mtu: u16,
    ) -> Box<dyn quinn::congestion::Controller> {
        Box::new(Nudgeable {
            inner: self.0.clone().build(now, current_mtu),
            state: Arc::new(NudgeState::new()),
        })
    }
}

/// A congestion controller that reports acknowledgement progress to the nudger
/// ([`nudge_after_silence`]) and lets one packet past the window when it asks.
///
/// quinn sends nothing that asks for an acknowledgement while the bytes in flight
/// fill the congestion window, except its own probes on the probe timeout. After an
/// outage the bytes sent into it are still counted in flight, so a nudge would wait
/// for the window like everything else. Setting [`NudgeState::nudge`] opens the
/// window for exactly one packet: the next one sent closes it again. The decisions
/// are the wrapped controller's.
struct Nudgeable {
    inner: Box<dyn quinn::congestion::Controller>,
    state: Arc<NudgeState>,
}

impl Nudgeable {
    /// The state shared with `conn`'s controller, if it is a [`Nudgeable`].
    fn state_of(conn: &quinn::Connection) -> Option<Arc<NudgeState>> {
        // quinn hands out a copy of the controller; the copy shares the state.
        let controller = conn.congestion_state().into_any();
        controller
            .downcast::<Nudgeable>()
            .ok()
            .map(|n| n.state.clone())
    }
}

impl quinn::congestion::Controller for Nudgeable {
    fn on_sent(&mut self, now: std::time::Instant, bytes: u64, last_packet_number: u64) {
        self.state.nudge.store(false, Ordering::Relaxed);
        // The first packet in flight starts the wait for acknowledgements.
        let stamp = self.state.stamp(now);
        let _ = self.state.waiting_since.compare_exchange(
            0,
            stamp,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        self.inner.on_sent(now, bytes, last_packet_number);
    }

    fn on_ack(
        &mut self,
        now: std::time::Instant,
        sent: std::time::Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &quinn_proto::RttEstimator,
    ) {
        // Progress: whatever is still in flight waits from now.
        self.state
            .waiting_since
            .store(self.state.stamp(now), Ordering::Release);
        self.inner.on_ack(now, sent, bytes, app_limited, rtt);
    }

    fn on_end_acks(
        &mut self,
        now: std::time::Instant,
        in_flight: u64,
        app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        if in_flight == 0 {
            self.state.waiting_since.store(0, Ordering::Release);
        }
        self.inner
            .on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
    }

    fn on_congestion_event(
        &mut self,
        now: std::time::Instant,
        sent: std::time::Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        self.inner
            .on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.inner.on_mtu_update(new_mtu);
    }

    fn window(&self) -> u64 {
        if self.state.nudge.load(Ordering::Relaxed) {
            // Room for one more packet, whatever is in flight.
            u64::MAX / 2
        } else {
            self.inner.window()
        }
    }

    fn metrics(&self) -> quinn::congestion::ControllerMetrics {
        self.inner.metrics()
    }

    fn clone_box(&self) -> Box<dyn quinn::congestion::Controller> {
        Box::new(Nudgeable {
            inner: self.inner.clone_box(),
            state: self.state.clone(),
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

/// Gets a connection moving again soon after a network outage ends.
///
/// While a path is down, QUIC resends unacknowledged data on its probe timeout,
/// which doubles with every try: after an outage of 7 s the next try can be 7 s
/// away, and the data waits that long after the path is back. An acknowledgement
/// ends the wait at once (the sender learns what was lost and resends it), and the
/// peer acknowledges any packet that asks for it.
///
/// So: while packets have been in flight for [`NUDGE_AFTER`] with no new
/// acknowledgement, this side sends an empty datagram, one packet past the
/// congestion window (see [`Nudgeable`]: the bytes lost in the outage still fill
/// the window), and again every [`NUDGE_AFTER`]. After an outage the first nudge to
/// get through brings the acknowledgement that restarts the data, within about
/// [`NUDGE_AFTER`] of the heal. On a working path acknowledgements come within a
/// round trip and no nudge is sent. The nudger sleeps until the connection writes,
/// and then looks once every [`NUDGE_AFTER`] until nothing is in flight: an idle
/// connection costs no wake-ups.
async fn nudge_after_silence(conn: quinn::Connection, wrote: Arc<Wrote>) {
    let Some(state) = Nudgeable::state_of(&conn) else {
        return;
    };
    loop {
        wrote.waiting.store(true, Ordering::Release);
        tokio::select! {
            () = wrote.notify.notified() => {}
            _ = conn.closed() => return,
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(NUDGE_AFTER) => {}
                _ = conn.closed() => return,
            }
            match state.waiting_for(std::time::Instant::now()) {
                // Everything sent was acknowledged: wait for the next write.
                None => break,
                Some(waited) if waited >= NUDGE_AFTER => {
                    state.nudge.store(true, Ordering::Relaxed);
                    // Errors: the peer takes no datagrams (not msg), or the
                    // connection is closing; either way there is nothing to nudge.
                    if conn.send_datagram(bytes::Bytes::new()).is_err() {
                        return;
                    }
                    trace!(?waited, "quic: no acknowledgement; nudged the peer");
                }
                // Acknowledgements are coming.
                Some(_) => {}
            }
        }
    }
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
        own_endpoint: Option<Box<OwnEndpoint>>,
        linger: Duration,
        verified: bool,
    ) -> Self {
        let certificates = if verified {
            peer_certificates(&conn)
        } else {
            None
        };
        let wrote = Arc::new(Wrote::default());
        tokio::spawn(nudge_after_silence(conn.clone(), wrote.clone()));
        QuicConn {
            send,
            recv,
            conn,
            own_endpoint,
            linger,
            closing: false,
            certificates,
            wrote,
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
            if let Some(own) = own_endpoint {
                let OwnEndpoint { endpoint, released } = *own;
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
        let written = AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote.wrote();
        }
        written
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

    /// A listener of `quic` on a port of loopback, and its endpoint.
    async fn listening(quic: &Quic) -> (QuicListener, Endpoint) {
        let listener = quic
            .bind(&"quic://127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let endpoint = listener.local_endpoint().clone();
        (listener, endpoint)
    }

    #[tokio::test]
    async fn quic_server_answers_probe_with_version_negotiation_and_keeps_serving() {
        let quic = trusted_quic();
        let (mut listener, endpoint) = listening(&quic).await;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_working_connection_sends_no_nudges_and_its_controller_reports_progress() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let quic = trusted_quic();
        let (mut listener, endpoint) = listening(&quic).await;
        let (mut client, _) = quic.connect(&endpoint).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0usize;
            while let Ok(n) = server.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                total += n;
            }
            (server, total)
        });
        let state = Nudgeable::state_of(&client.conn).expect("msg's controller");
        // Longer than NUDGE_AFTER, with the nudger awake throughout.
        let chunk = vec![7u8; 16 * 1024];
        let until = std::time::Instant::now() + NUDGE_AFTER * 5 / 2;
        let mut written = 0usize;
        while std::time::Instant::now() < until {
            client.write_all(&chunk).await.unwrap();
            written += chunk.len();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        client.shutdown().await.unwrap();
        let (server, total) = reader.await.unwrap();
        assert_eq!(total, written);
        let stats = client.conn.stats();
        assert_eq!(stats.frame_tx.datagram, 0, "nudged a working connection");
        // All acknowledged: nothing waits, and the nudge switch is off.
        tokio::time::timeout(Duration::from_secs(10), async {
            while state.waiting_for(std::time::Instant::now()).is_some() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("everything written is acknowledged");
        assert!(!state.nudge.load(Ordering::Relaxed));
        drop((client, server));
    }

    #[tokio::test(start_paused = true)]
    async fn handshakes_restart_every_interval_and_at_most_four_wait() {
        // A server that never answers: a bound UDP socket that nobody reads.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let cert = dev::self_signed(["127.0.0.1"]).unwrap();
        let mut roots = TlsClientConfig::new();
        roots.add_root(cert.certificate());
        let mut options = QuicOptions::new();
        options.client(roots);
        let quic = Quic::new(&options).unwrap();
        let (config, _, _) = quic.inner.client.clone().unwrap();
        let (client, _released) = udp_endpoint(unspecified_like(addr), None).unwrap();
        let started = std::sync::atomic::AtomicUsize::new(0);
        let start = || {
            started.fetch_add(1, Ordering::SeqCst);
            Ok(client
                .connect_with(config.clone(), addr, "127.0.0.1")
                .unwrap())
        };
        let first = start().unwrap();
        let mut handshakes = Handshakes::new(first, Duration::from_secs(1));
        // 6.5 s: restarts at 1, 2, ..., 6 s.
        let run = handshakes.run(start);
        let ended = tokio::time::timeout(Duration::from_millis(6_500), run).await;
        assert!(
            ended.is_err(),
            "a silent server never completes a handshake"
        );
        assert_eq!(started.load(Ordering::SeqCst), 7);
        // The three oldest were dropped to make room.
        assert_eq!(handshakes.waiting.len(), MAX_HANDSHAKES);
    }
}
