//! TLS over TCP with rustls.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, warn};

use crate::accept::AcceptQueue;
use crate::tcp::{accept_tcp, bind_tcp, check_scheme, connect_tcp};
use crate::{
    Conn, Endpoint, Listener, PeerAddr, PeerCertificates, Scheme, TcpOptions, TlsClientConfig,
    TlsServerConfig, Transport, TransportError,
};

/// Options of the [`Tls`] transport.
///
/// A `Tls` transport with only a server part can bind, one with only a client part can
/// connect; most programs that do both give both.
///
/// ```
/// # fn main() -> Result<(), msg_transport::TransportError> {
/// use std::time::Duration;
/// use msg_transport::{dev, Tls, TlsClientConfig, TlsOptions};
///
/// let cert = dev::self_signed(["localhost", "127.0.0.1"])?;
/// let mut client = TlsClientConfig::new();
/// client.add_root(cert.certificate());
///
/// let mut options = TlsOptions::new();
/// options
///     .server(cert.server_config())
///     .client(client)
///     .handshake_timeout(Duration::from_secs(5));
/// let tls = Tls::new(&options)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TlsOptions {
    server: Option<TlsServerConfig>,
    client: Option<TlsClientConfig>,
    tcp: TcpOptions,
    handshake_timeout: Duration,
    max_pending_handshakes: usize,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            server: None,
            client: None,
            tcp: TcpOptions::default(),
            handshake_timeout: Duration::from_secs(10),
            max_pending_handshakes: 1024,
        }
    }
}

impl TlsOptions {
    /// Options with neither a server nor a client part, and default limits.
    pub fn new() -> Self {
        TlsOptions::default()
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

    /// Options of the underlying TCP connections. The connect timeout covers the TLS
    /// handshake too. Default: [`TcpOptions::default`].
    pub fn tcp(&mut self, options: TcpOptions) -> &mut Self {
        self.tcp = options;
        self
    }

    /// How long an accepted connection may take to complete its handshake before it is
    /// dropped (with a warning naming the peer). Default: 10 s.
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How many accepted connections may be handshaking at once; further peers wait in
    /// the kernel's listen backlog until a handshake finishes or times out.
    ///
    /// Bounds the memory a flood of silent clients can take. Default: 1024.
    pub fn max_pending_handshakes(&mut self, count: usize) -> &mut Self {
        self.max_pending_handshakes = count;
        self
    }
}

/// The TLS-over-TCP transport (`tls://host:port`), built on rustls with the aws-lc-rs
/// provider.
///
/// Listeners run each handshake in its own task, with a timeout, and `accept` yields
/// only connections whose handshake succeeded: a client that connects and then says
/// nothing never delays the others. Failed handshakes are logged as warnings with the
/// peer's address. Both sides offer ALPN `msg/1`.
///
/// Clients verify the server's certificate against the configured roots and the
/// endpoint's host name or IP (see [`TlsClientConfig`]); with
/// [`TlsServerConfig::require_client_auth`] servers verify clients too.
#[derive(Clone)]
pub struct Tls {
    inner: Arc<TlsInner>,
}

struct TlsInner {
    acceptor: Option<TlsAcceptor>,
    /// The connector, the server name override, and whether server certificates
    /// are verified.
    connector: Option<(TlsConnector, Option<ServerName<'static>>, bool)>,
    tcp: TcpOptions,
    handshake_timeout: Duration,
    max_pending_handshakes: usize,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server", &self.inner.acceptor.is_some())
            .field("client", &self.inner.connector.is_some())
            .field("tcp", &self.inner.tcp)
            .field("handshake_timeout", &self.inner.handshake_timeout)
            .finish()
    }
}

impl Tls {
    /// Builds the transport, validating certificates, keys and roots once.
    ///
    /// TLS 1.2 and 1.3 are enabled.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] when a certificate or key is malformed, the key does
    /// not match the certificate, or the client part has no roots and does not skip
    /// verification.
    pub fn new(options: &TlsOptions) -> Result<Tls, TransportError> {
        let versions = rustls::DEFAULT_VERSIONS;
        let acceptor = match &options.server {
            Some(server) => Some(TlsAcceptor::from(Arc::new(server.build(versions)?))),
            None => None,
        };
        let connector = match &options.client {
            Some(client) => {
                let (config, name) = client.build(versions)?;
                let verified = !client.skips_verification();
                Some((TlsConnector::from(Arc::new(config)), name, verified))
            }
            None => None,
        };
        Ok(Tls {
            inner: Arc::new(TlsInner {
                acceptor,
                connector,
                tcp: options.tcp.clone(),
                handshake_timeout: options.handshake_timeout,
                max_pending_handshakes: options.max_pending_handshakes,
            }),
        })
    }
}

impl Transport for Tls {
    type Conn = TlsConn;
    type Listener = TlsListener;

    async fn bind(&self, endpoint: &Endpoint) -> Result<TlsListener, TransportError> {
        check_scheme(endpoint, Scheme::Tls)?;
        let acceptor = self
            .inner
            .acceptor
            .clone()
            .ok_or(TransportError::MissingConfig {
                scheme: Scheme::Tls,
                what: "a server certificate to bind (TlsOptions::server)",
            })?;
        let listener = bind_tcp(endpoint).await?;
        let local = listener
            .local_addr()
            .map_err(|e| TransportError::io("bind", endpoint, e))?;
        let local_endpoint = Endpoint::tls(local);
        debug!(endpoint = %local_endpoint, "tls listener bound");

        let tcp = self.inner.tcp.clone();
        let timeout = self.inner.handshake_timeout;
        let loop_endpoint = local_endpoint.clone();
        let queue = AcceptQueue::spawn(
            self.inner.max_pending_handshakes,
            move |tx, mut handshakes| async move {
                loop {
                    let permit = tokio::select! {
                        permit = handshakes.slot() => permit,
                        () = tx.closed() => return,
                    };
                    let accepted = tokio::select! {
                        accepted = accept_tcp(&listener, &loop_endpoint, &tcp) => accepted,
                        () = tx.closed() => return,
                    };
                    let (stream, addr) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Pass OS accept errors on, as a TCP listener would; the
                            // caller decides whether to back off.
                            if tx.send(Err(e)).await.is_err() {
                                return;
                            }
                            continue;
                        }
                    };
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    handshakes.spawn(permit, async move {
                        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                debug!(peer = %addr, "tls accepted");
                                let conn = TlsConn {
                                    verified: true,
                                    inner: Box::new(tokio_rustls::TlsStream::Server(stream)),
                                };
                                // An error means the listener is gone; the
                                // connection is dropped with it.
                                let _ = tx.send(Ok((conn, PeerAddr::Tls(addr)))).await;
                            }
                            Ok(Err(error)) => {
                                warn!(peer = %addr, %error, "tls handshake failed");
                            }
                            Err(_) => {
                                warn!(peer = %addr, ?timeout, "tls handshake timed out");
                            }
                        }
                    });
                }
            },
        );
        Ok(TlsListener {
            queue,
            local_endpoint,
        })
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<(TlsConn, PeerAddr), TransportError> {
        check_scheme(endpoint, Scheme::Tls)?;
        let (connector, name_override, verified) =
            self.inner
                .connector
                .as_ref()
                .ok_or(TransportError::MissingConfig {
                    scheme: Scheme::Tls,
                    what: "a client configuration to connect (TlsOptions::client)",
                })?;
        let server_name = match (name_override, endpoint.host_port()) {
            (Some(name), _) => name.clone(),
            (None, Some((host, _))) => {
                server_name_for(host).map_err(|source| TransportError::Tls {
                    endpoint: endpoint.clone(),
                    source,
                })?
            }
            // check_scheme admits only tls:// endpoints, which have a host.
            (None, None) => {
                return Err(TransportError::Unsupported {
                    scheme: endpoint.scheme(),
                    reason: "the endpoint has no host to verify the certificate against",
                });
            }
        };
        let limit = self.inner.tcp.get_connect_timeout();
        // The connect timeout covers TCP and TLS together: a server that accepts TCP
        // but never answers the ClientHello must not hang the caller.
        let attempt = async {
            let (stream, addr) = connect_tcp(endpoint, &self.inner.tcp).await?;
            let stream = connector
                .connect(server_name, stream)
                .await
                .map_err(|source| TransportError::Tls {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            Ok::<_, TransportError>((stream, addr))
        };
        let (stream, addr) =
            tokio::time::timeout(limit, attempt)
                .await
                .map_err(|_| TransportError::Timeout {
                    op: "connect to",
                    endpoint: endpoint.clone(),
                    after: limit,
                })??;
        debug!(endpoint = %endpoint, peer = %addr, "tls connected");
        let conn = TlsConn {
            verified: *verified,
            inner: Box::new(tokio_rustls::TlsStream::Client(stream)),
        };
        Ok((conn, PeerAddr::Tls(addr)))
    }
}

/// The server name to verify when connecting to `host`: an IP address or a DNS name.
fn server_name_for(host: &crate::Host) -> Result<ServerName<'static>, std::io::Error> {
    match host {
        crate::Host::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
        crate::Host::Name(name) => ServerName::try_from(name.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e)),
    }
}

/// A bound TLS listener; `accept` yields connections whose handshake completed.
#[derive(Debug)]
pub struct TlsListener {
    queue: AcceptQueue<TlsConn>,
    local_endpoint: Endpoint,
}

impl Listener for TlsListener {
    type Conn = TlsConn;

    fn local_endpoint(&self) -> &Endpoint {
        &self.local_endpoint
    }

    async fn accept(&mut self) -> Result<(TlsConn, PeerAddr), TransportError> {
        self.queue.next().await
    }

    /// The TCP listener lives in the accept task: this waits until it is dropped.
    async fn close(self) {
        self.queue.close().await;
    }
}

/// A TLS connection over TCP, client or server side.
///
/// Shutting down the write half sends TLS `close_notify` and then a TCP FIN.
#[derive(Debug)]
pub struct TlsConn {
    /// Whether the peer's certificates were verified: always on a server (rustls
    /// asks for client certificates only with a verifier), on a client unless it
    /// skips server verification.
    verified: bool,
    // Boxed: a rustls session is over a kilobyte, and connections get moved around
    // (into tasks, into `AnyConn`). One allocation per connection, none per I/O.
    inner: Box<tokio_rustls::TlsStream<TcpStream>>,
}

impl Conn for TlsConn {
    /// The chain the peer presented, leaf first, when it was verified: a client's
    /// under [`TlsServerConfig::require_client_auth`], the server's unless the client
    /// skips verification.
    fn peer_certificates(&self) -> Option<PeerCertificates> {
        if !self.verified {
            return None;
        }
        let (_, session) = self.inner.get_ref();
        let chain = session
            .peer_certificates()?
            .iter()
            .map(|c| Bytes::copy_from_slice(c.as_ref()))
            .collect();
        PeerCertificates::from_chain(chain)
    }
}

impl TlsConn {
    /// The key exchange group the handshake settled on, such as `X25519MLKEM768`
    /// (post-quantum hybrid) or `X25519`, as rustls names it.
    pub fn key_exchange_group(&self) -> Option<String> {
        let (_, session) = self.inner.get_ref();
        session
            .negotiated_key_exchange_group()
            .map(|group| format!("{:?}", group.name()))
    }

    /// The underlying TCP stream.
    pub fn tcp_stream(&self) -> &TcpStream {
        self.inner.get_ref().0
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}
