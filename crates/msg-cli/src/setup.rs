//! From command-line flags to a bound or connected socket: endpoint checks,
//! socket options (certificates, tokens, compression), and watching a
//! connecting socket's events for failures that retrying cannot fix.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures::StreamExt;
use msg::transport::{
    AnyTransport, Certificate, Endpoint, PrivateKey, Quic, QuicOptions, Scheme, Tls,
    TlsClientConfig, TlsOptions, TlsServerConfig,
};
use msg::{
    AuthRejection, AuthRequest, DealerSocket, PeerSocket, PubSocket, PullSocket, PushSocket,
    RepSocket, ReqSocket, RouterSocket, SocketError, SocketEvent, SocketEvents, SocketOptions,
    SubSocket,
};

use crate::cli::{ConnArgs, Side};
use crate::warn;

/// Parses an endpoint given on the command line.
///
/// # Errors
///
/// The string is not an endpoint, or is an `inproc://` one, which cannot
/// reach another process.
pub(crate) fn parse_endpoint(text: &str) -> anyhow::Result<Endpoint> {
    let endpoint: Endpoint = text.parse()?;
    if endpoint.scheme() == Scheme::Inproc {
        bail!(
            "inproc:// endpoints only reach sockets in the same process; \
             use tcp:// or ipc:// between programs"
        );
    }
    Ok(endpoint)
}

/// Socket options for a socket on `side` of `endpoint`, from the flags.
///
/// Flags that do not apply (a CA file for a TCP endpoint, a token when
/// binding) are reported with a warning and ignored.
///
/// # Errors
///
/// A certificate or key file cannot be loaded, a TLS or QUIC endpoint lacks
/// the certificates its side needs, or the options are invalid.
pub(crate) fn socket_options(
    conn: &ConnArgs,
    endpoint: &Endpoint,
    side: Side,
) -> anyhow::Result<SocketOptions> {
    let mut opts = SocketOptions::new();
    opts.compression(conn.compression.into());
    if let Some(identity) = &conn.identity {
        if identity.len() > 255 {
            bail!("--identity is longer than 255 bytes");
        }
        opts.identity(identity.clone());
        // The `name` label of the socket's metrics (--metrics-addr).
        opts.name(identity.clone());
    }
    match side {
        Side::Connect => {
            if let Some(token) = &conn.token {
                opts.auth_token(token.clone());
            }
            if !conn.accept_token.is_empty() {
                warn("--accept-token is for the binding side; ignored when connecting");
            }
        }
        Side::Bind => {
            if conn.token.is_some() {
                warn("--token is sent by the connecting side; ignored when binding");
            }
            if !conn.accept_token.is_empty() {
                opts.authenticator(token_authenticator(&conn.accept_token));
            }
        }
    }
    match endpoint.scheme() {
        Scheme::Tls => {
            let mut tls = TlsOptions::new();
            match side {
                Side::Bind => tls.server(server_config(conn, endpoint)?),
                Side::Connect => tls.client(client_config(conn, endpoint)?),
            };
            opts.transport(AnyTransport::new().with_tls(Tls::new(&tls)?));
        }
        Scheme::Quic => {
            let mut quic = QuicOptions::new();
            match side {
                Side::Bind => quic.server(server_config(conn, endpoint)?),
                Side::Connect => quic.client(client_config(conn, endpoint)?),
            };
            opts.transport(AnyTransport::new().with_quic(Quic::new(&quic)?));
        }
        scheme => {
            let tls_flags = conn.cert.is_some()
                || conn.ca.is_some()
                || conn.client_ca.is_some()
                || conn.server_name.is_some()
                || conn.dangerous_skip_verify;
            if tls_flags {
                warn(&format!(
                    "certificate flags are for tls:// and quic:// endpoints; ignored for {scheme}://"
                ));
            }
        }
    }
    Ok(opts)
}

/// An authenticator that admits peers presenting one of `tokens`.
fn token_authenticator(
    tokens: &[String],
) -> impl Fn(AuthRequest) -> std::future::Ready<Result<(), AuthRejection>> + Send + Sync + 'static {
    let accepted: Arc<[Bytes]> = tokens.iter().map(|t| Bytes::from(t.clone())).collect();
    move |request: AuthRequest| {
        std::future::ready(match request.token {
            Some(token) if accepted.contains(&token) => Ok(()),
            Some(_) => Err(AuthRejection::new("invalid token")),
            None => Err(AuthRejection::new("a token is required")),
        })
    }
}

/// The binding side of TLS or QUIC: `--cert`, `--key`, `--client-ca`.
fn server_config(conn: &ConnArgs, endpoint: &Endpoint) -> anyhow::Result<TlsServerConfig> {
    let (Some(cert), Some(key)) = (&conn.cert, &conn.key) else {
        bail!(
            "binding a {}:// endpoint needs a certificate: --cert and --key (PEM files)",
            endpoint.scheme()
        );
    };
    if conn.ca.is_some() || conn.dangerous_skip_verify || conn.server_name.is_some() {
        warn(
            "--ca, --server-name and --dangerous-skip-verify are for the connecting side; ignored when binding",
        );
    }
    let chain = Certificate::from_pem_file(cert).context("--cert")?;
    let key = PrivateKey::from_pem_file(key).context("--key")?;
    let mut config = TlsServerConfig::new(chain, key);
    if let Some(client_ca) = &conn.client_ca {
        config.require_client_auth(Certificate::from_pem_file(client_ca).context("--client-ca")?);
    }
    Ok(config)
}

/// The connecting side of TLS or QUIC: `--ca` or `--dangerous-skip-verify`,
/// `--server-name`, and `--cert`/`--key` for mutual TLS.
fn client_config(conn: &ConnArgs, endpoint: &Endpoint) -> anyhow::Result<TlsClientConfig> {
    let mut config = TlsClientConfig::new();
    if conn.dangerous_skip_verify {
        warn(
            "--dangerous-skip-verify: the server's certificate is not checked; anyone can pose as it",
        );
        config.dangerous_skip_server_verification();
    } else if let Some(ca) = &conn.ca {
        for root in Certificate::from_pem_file(ca).context("--ca")? {
            config.add_root(root);
        }
    } else {
        bail!(
            "connecting to a {}:// endpoint needs the roots to trust: --ca PEM \
             (or, for development only, --dangerous-skip-verify)",
            endpoint.scheme()
        );
    }
    if let Some(name) = &conn.server_name {
        config.server_name(name.clone());
    }
    if let (Some(cert), Some(key)) = (&conn.cert, &conn.key) {
        let chain = Certificate::from_pem_file(cert).context("--cert")?;
        let key = PrivateKey::from_pem_file(key).context("--key")?;
        config.client_auth(chain, key);
    }
    if conn.client_ca.is_some() {
        warn("--client-ca is for the binding side; ignored when connecting");
    }
    Ok(config)
}

/// The socket operations the commands share, over the socket types.
pub(crate) trait Socket {
    /// See [`ReqSocket::bind`].
    async fn bind(&self, endpoint: &str) -> Result<Endpoint, SocketError>;
    /// See [`ReqSocket::connect`].
    fn connect(&self, endpoint: &str) -> Result<(), SocketError>;
    /// See [`ReqSocket::events`].
    fn events(&self) -> SocketEvents;
}

macro_rules! impl_socket {
    ($($ty:ty),*) => {$(
        impl Socket for $ty {
            async fn bind(&self, endpoint: &str) -> Result<Endpoint, SocketError> {
                <$ty>::bind(self, endpoint).await
            }
            fn connect(&self, endpoint: &str) -> Result<(), SocketError> {
                <$ty>::connect(self, endpoint)
            }
            fn events(&self) -> SocketEvents {
                <$ty>::events(self)
            }
        }
    )*};
}

impl_socket!(
    ReqSocket,
    RepSocket,
    PubSocket,
    SubSocket,
    PushSocket,
    PullSocket,
    DealerSocket,
    RouterSocket,
    PeerSocket
);

/// Binds or connects `socket` as the flags say.
///
/// A binding socket prints `msg: listening on ENDPOINT` (with the real
/// port) on stderr. The returned [`Watch`] reports what goes wrong with a
/// connecting socket; select on [`Watch::failed`] next to the command's
/// work.
///
/// # Errors
///
/// Binding fails (address in use, permission denied, ...), or the endpoint
/// is refused by the socket.
pub(crate) async fn attach(
    socket: &impl Socket,
    endpoint: &Endpoint,
    side: Side,
    retry: bool,
) -> anyhow::Result<Watch> {
    // Subscribed before connecting, so that no event is missed.
    let events = socket.events();
    let text = endpoint.to_string();
    match side {
        Side::Bind => {
            let bound = socket.bind(&text).await?;
            eprintln!("msg: listening on {bound}");
            tokio::spawn(log_events(events));
            Ok(Watch::new(None, retry))
        }
        Side::Connect => {
            socket.connect(&text)?;
            tracing::info!(endpoint = %text, "connecting");
            Ok(Watch::new(Some(events), retry))
        }
    }
}

/// Logs every event of a binding socket (visible with `-v`).
async fn log_events(mut events: SocketEvents) {
    while let Some(event) = events.next().await {
        log_event(&event);
    }
}

fn log_event(event: &SocketEvent) {
    match event {
        SocketEvent::Connected { peer, identity } => {
            tracing::info!(%peer, identity = %String::from_utf8_lossy(identity), "connected");
        }
        SocketEvent::Disconnected { peer, reason } => {
            tracing::info!(%peer, %reason, "disconnected");
        }
        SocketEvent::AuthRejected { peer, reason } => {
            tracing::warn!(%peer, %reason, "authentication rejected");
        }
        SocketEvent::IdentityRefused {
            peer,
            identity,
            reason,
        } => {
            tracing::warn!(
                %peer,
                identity = %String::from_utf8_lossy(identity),
                %reason,
                "identity refused"
            );
        }
        SocketEvent::Listening(endpoint) => tracing::info!(%endpoint, "listening"),
        other => tracing::info!(event = ?other, "socket event"),
    }
}

/// Watches a connecting socket for failures that retrying will not fix.
#[derive(Debug)]
pub(crate) struct Watch {
    /// The socket's events; `None` for a binding socket, which has nothing
    /// to watch.
    events: Option<SocketEvents>,
    /// `--retry`: keep trying while the first connection fails.
    retry: bool,
    /// Keep trying while nothing answers at the endpoint, even without
    /// `--retry` (a failed TLS or QUIC handshake still ends the command).
    retry_unreachable: bool,
    /// Whether a connection has been up since the socket started.
    connected_once: bool,
    /// Whether the "retrying" warning was printed.
    warned: bool,
}

impl Watch {
    fn new(events: Option<SocketEvents>, retry: bool) -> Self {
        Self {
            events,
            retry,
            retry_unreachable: false,
            connected_once: false,
            warned: false,
        }
    }

    /// Makes a refused or unanswered first connection a warning instead of
    /// an error (`msg send`: the receiver may come up later, and the
    /// messages are stored meanwhile). A failed TLS or QUIC handshake (a
    /// certificate problem) still fails, unless `--retry`.
    pub(crate) fn retry_while_unreachable(&mut self) {
        self.retry_unreachable = true;
    }

    /// Resolves with an error when the connection fails for good: the
    /// server rejected our token (or, before the first connection, our
    /// identity, which another principal holds), the first attempt was refused or its
    /// handshake failed (unless `--retry`), or the socket gave up.
    /// Otherwise it never resolves.
    ///
    /// Once a connection has been up, later failures are the socket's
    /// business (it reconnects by itself) and are only logged.
    pub(crate) async fn failed(&mut self) -> anyhow::Error {
        let Some(events) = &mut self.events else {
            return futures::future::pending().await;
        };
        while let Some(event) = events.next().await {
            log_event(&event);
            let fatal_before_connect = !self.connected_once && !self.retry;
            match event {
                SocketEvent::Connected { .. } => self.connected_once = true,
                SocketEvent::AuthRejected { peer, reason } => {
                    return anyhow!("{peer} rejected our authentication: {reason}");
                }
                SocketEvent::IdentityRefused {
                    peer,
                    identity,
                    reason,
                } if fatal_before_connect => {
                    return anyhow!(
                        "{peer} refused our identity \"{}\": {reason}",
                        String::from_utf8_lossy(&identity)
                    );
                }
                SocketEvent::ConnectFailed { endpoint, error } => {
                    // The transport's message usually names the endpoint
                    // already ("connection refused: nothing is listening at
                    // tcp://...").
                    let text = endpoint.to_string();
                    let mut what = if error.contains(&text) {
                        format!("cannot connect: {error}")
                    } else {
                        format!("cannot connect to {text}: {error}")
                    };
                    if matches!(endpoint.scheme(), Scheme::Tls | Scheme::Quic)
                        && !error.starts_with("connection refused")
                    {
                        // The event does not say why the handshake failed;
                        // these are the usual reasons.
                        what.push_str(
                            " (is the server's certificate signed by --ca and valid for the \
                             endpoint's host or --server-name? does the server require a \
                             client certificate, --cert and --key?)",
                        );
                    }
                    // Both transports name a failed TLS or QUIC handshake as
                    // such; anything else means nothing answered.
                    let unreachable = !error.contains("handshake");
                    if fatal_before_connect && !(self.retry_unreachable && unreachable) {
                        return anyhow!(what);
                    }
                    if !self.connected_once && !self.warned {
                        warn(&format!("{what}; retrying"));
                        self.warned = true;
                    }
                }
                SocketEvent::HandshakeFailed { peer, error } if fatal_before_connect => {
                    return anyhow!("handshake with {peer} failed: {error}");
                }
                SocketEvent::GaveUp { endpoint } => {
                    return anyhow!("gave up connecting to {endpoint}");
                }
                _ => {}
            }
        }
        futures::future::pending().await
    }
}
