//! Socket options: every knob with its unit, its default and its trade-off.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use msg_transport::AnyTransport;
use msg_wire::{Compression, WireOptions};

use crate::auth::{Authenticator, DynAuthenticator};
use crate::error::ConfigError;
use crate::proto::backoff::BackoffPolicy;

/// Options shared by every socket type.
///
/// Build one with [`SocketOptions::new`], change what you need through the
/// setters (each documents its unit and default), and hand it to a socket's
/// `with_options` constructor, which validates it once. The defaults are safe
/// for a socket exposed to the internet: bounded queues, a 64 MiB frame
/// limit, a 5 second handshake deadline, heartbeats on.
///
/// ```
/// use std::time::Duration;
/// use msg_socket::SocketOptions;
///
/// let mut opts = SocketOptions::new();
/// opts.request_timeout(Duration::from_secs(2))
///     .send_hwm(10_000)
///     .reconnect_max(Duration::from_secs(1));
/// ```
#[derive(Clone)]
pub struct SocketOptions {
    pub(crate) identity: Option<Bytes>,
    pub(crate) request_timeout: Duration,
    pub(crate) send_hwm: usize,
    pub(crate) send_hwm_bytes: usize,
    pub(crate) recv_hwm: usize,
    pub(crate) recv_hwm_bytes: usize,
    pub(crate) reconnect: BackoffPolicy,
    pub(crate) auth_reject_delay: Duration,
    pub(crate) heartbeat_interval: Option<Duration>,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) wire: WireOptions,
    pub(crate) linger: Duration,
    pub(crate) auth_token: Option<Bytes>,
    pub(crate) authenticator: Option<Arc<dyn DynAuthenticator>>,
    pub(crate) auth_timeout: Duration,
    pub(crate) bind_identity_to_certificate: bool,
    pub(crate) max_connections: usize,
    pub(crate) transport: AnyTransport,
    pub(crate) name: Option<String>,
    pub(crate) metrics_interval: Duration,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            identity: None,
            request_timeout: Duration::from_secs(10),
            send_hwm: 1_000,
            send_hwm_bytes: 64 * 1024 * 1024,
            recv_hwm: 1_000,
            recv_hwm_bytes: 64 * 1024 * 1024,
            reconnect: BackoffPolicy::default(),
            auth_reject_delay: Duration::from_secs(5),
            heartbeat_interval: Some(Duration::from_secs(5)),
            heartbeat_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            wire: WireOptions::default(),
            linger: Duration::from_secs(1),
            auth_token: None,
            authenticator: None,
            auth_timeout: Duration::from_secs(3),
            bind_identity_to_certificate: false,
            max_connections: 65_536,
            transport: AnyTransport::new(),
            name: None,
            metrics_interval: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for SocketOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketOptions")
            .field("identity", &self.identity)
            .field("request_timeout", &self.request_timeout)
            .field("send_hwm", &self.send_hwm)
            .field("send_hwm_bytes", &self.send_hwm_bytes)
            .field("recv_hwm", &self.recv_hwm)
            .field("recv_hwm_bytes", &self.recv_hwm_bytes)
            .field("reconnect", &self.reconnect)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("wire", &self.wire)
            .field("linger", &self.linger)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("authenticator", &self.authenticator.is_some())
            .field("auth_timeout", &self.auth_timeout)
            .field(
                "bind_identity_to_certificate",
                &self.bind_identity_to_certificate,
            )
            .field("max_connections", &self.max_connections)
            .field("name", &self.name)
            .field("metrics_interval", &self.metrics_interval)
            .finish_non_exhaustive()
    }
}

impl SocketOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// The identity this socket announces in its handshake, at most 255
    /// bytes.
    ///
    /// Peers see it in [`PeerInfo::identity`](crate::PeerInfo::identity) and
    /// authenticators decide on it. Default: a random identity made when the
    /// socket is created.
    pub fn identity(&mut self, identity: impl Into<Bytes>) -> &mut Self {
        self.identity = Some(identity.into());
        self
    }

    /// A name for this socket, of your choosing: the `name` label of its
    /// metrics (feature `metrics`), to tell sockets of one type apart.
    /// Default: none (an empty label).
    pub fn name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = Some(name.into());
        self
    }

    /// The name set with [`name`](Self::name), if any.
    pub fn get_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// How often the socket's metrics are brought up to date (feature
    /// `metrics`): a background task copies its [`stats`](crate::ReqSocket::stats)
    /// into the `metrics` facade this often, and once more when the socket
    /// closes, so sending and receiving pay nothing for them. Default: 1 s.
    pub fn metrics_interval(&mut self, every: Duration) -> &mut Self {
        self.metrics_interval = every;
        self
    }

    /// How long a [`ReqSocket::request`](crate::ReqSocket::request) may take,
    /// from the call to the reply, whether or not a connection is up.
    ///
    /// Default: 10 s.
    pub fn request_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.request_timeout = timeout;
        self
    }

    /// High-water mark of each connection's outgoing queue, in messages
    /// (for Push, Dealer, Router and Pair: in frames, a message of `n` parts
    /// counting `n`; a message goes on a queue that is below the mark).
    ///
    /// What happens at the mark depends on the socket: a Req request and a
    /// Rep reply wait for room; a publisher drops the message for that
    /// subscriber and counts the drop; Push, Dealer and Pair try another
    /// peer, then wait (and queue up to the same mark in the socket while
    /// no peer is connected); a Router's `send_to` waits for room on that
    /// peer's connection. Every socket counts a message from
    /// the moment it is queued until its last byte is written, the batch
    /// being written included (what the operating system's socket buffer
    /// then holds is not counted). Default: 1,000.
    pub fn send_hwm(&mut self, messages: usize) -> &mut Self {
        self.send_hwm = messages;
        self
    }

    /// High-water mark of each connection's outgoing queue, in bytes of
    /// encoded frames. Whichever of the two marks is reached first applies.
    /// A single frame larger than the mark still goes out when the queue is
    /// empty. Default: 64 MiB.
    pub fn send_hwm_bytes(&mut self, bytes: usize) -> &mut Self {
        self.send_hwm_bytes = bytes;
        self
    }

    /// High-water mark of the socket's incoming queue (requests waiting in a
    /// Rep socket, messages waiting in a Sub socket), in messages; for Pull,
    /// Dealer, Router and Pair, of each connection's share of it.
    ///
    /// A Rep socket stops reading from its clients while the queue is full
    /// (they feel TCP backpressure); a Sub socket drops the newest message
    /// and counts it; Pull, Dealer, Router and Pair stop reading only the
    /// connection that is at its mark.
    ///
    /// A Sub, Pull, Dealer, Router or Pair handle takes up to 32 waiting
    /// messages (64 KiB of payload, or one larger message) from the queue
    /// at a time and hands them out one by one without locking the socket;
    /// those belong to the application and no longer count here, so up to
    /// that many more can be held by a receiving socket. Default: 1,000.
    pub fn recv_hwm(&mut self, messages: usize) -> &mut Self {
        self.recv_hwm = messages;
        self
    }

    /// High-water mark of the socket's incoming queue in payload bytes.
    /// Default: 64 MiB.
    pub fn recv_hwm_bytes(&mut self, bytes: usize) -> &mut Self {
        self.recv_hwm_bytes = bytes;
        self
    }

    /// How a connecting socket waits between reconnect attempts: the whole
    /// [`BackoffPolicy`] (initial and largest delay, growth, jitter, give-up
    /// limit), replacing the one set so far.
    ///
    /// Validated with the other options by the socket's `with_options`. The
    /// `reconnect_*` setters below change one field of this policy each.
    /// Default: [`BackoffPolicy::new`] (100 ms, doubling up to 10 s, jitter
    /// 0.5, forever)
    pub fn reconnect(&mut self, policy: BackoffPolicy) -> &mut Self {
        self.reconnect = policy;
        self
    }

    /// The reconnect policy these options hold.
    pub fn get_reconnect(&self) -> &BackoffPolicy {
        &self.reconnect
    }

    /// First delay before reconnecting after a connection is lost or an
    /// attempt fails. Delays grow from here up to
    /// [`reconnect_max`](Self::reconnect_max). Shorthand for
    /// [`BackoffPolicy::initial_delay`]. Default: 100 ms.
    pub fn reconnect_initial(&mut self, delay: Duration) -> &mut Self {
        self.reconnect.initial_delay(delay);
        self
    }

    /// Longest delay between reconnect attempts. Shorthand for
    /// [`BackoffPolicy::max_delay`]. Default: 10 s.
    pub fn reconnect_max(&mut self, delay: Duration) -> &mut Self {
        self.reconnect.max_delay(delay);
        self
    }

    /// Fraction (0.0 to 1.0) by which each reconnect delay is randomly
    /// shortened, so that clients that lost the same server do not return in
    /// lockstep. Shorthand for [`BackoffPolicy::jitter`]. Default: 0.5.
    pub fn reconnect_jitter(&mut self, fraction: f64) -> &mut Self {
        self.reconnect.jitter(fraction);
        self
    }

    /// Give up on an endpoint after this many failed attempts in a row;
    /// `None` retries forever. Shorthand for
    /// [`BackoffPolicy::give_up_after`]. Default: `None`.
    pub fn reconnect_give_up_after(&mut self, attempts: Option<u32>) -> &mut Self {
        self.reconnect.give_up_after(attempts);
        self
    }

    /// How long a client waits before trying again after the server's
    /// authenticator rejected it, instead of retrying in a tight loop; also
    /// after a connection refused for its identity, and after a PAIR socket
    /// that has its peer refused a connection it dialled. Default: 5 s.
    pub fn auth_reject_delay(&mut self, delay: Duration) -> &mut Self {
        self.auth_reject_delay = delay;
        self
    }

    /// Interval between heartbeat pings; `None` turns heartbeats off.
    /// Default: 5 s.
    pub fn heartbeat_interval(&mut self, interval: Option<Duration>) -> &mut Self {
        self.heartbeat_interval = interval;
        self
    }

    /// How long a connection may stay silent (nothing received, not even a
    /// pong) before it is declared dead and closed, which makes a client
    /// reconnect. Must exceed the interval. Default: 15 s.
    pub fn heartbeat_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// Deadline for the peer's part of the handshake.
    ///
    /// A server gives each connecting peer this long to send its Hello: a
    /// peer that connects and says nothing, or stops halfway, is refused
    /// (with a `HandshakeTimeout` rejection) and counted in
    /// [`SocketStats::handshake_failures`](crate::SocketStats::handshake_failures).
    /// A client gives the server this long to answer, the server's
    /// [`Authenticator`] included. Default: 5 s.
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Deadline for establishing the transport connection (TCP connect, TLS
    /// or QUIC handshake) of one attempt. Default: 10 s.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// Largest frame accepted from a peer, in bytes; also the largest
    /// decompressed payload.
    ///
    /// Larger frames close the connection with
    /// [`WireError::FrameTooLarge`](msg_wire::WireError::FrameTooLarge).
    /// Default: 64 MiB.
    pub fn max_frame_size(&mut self, bytes: usize) -> &mut Self {
        self.wire.max_frame_size(bytes);
        self
    }

    /// Compression of outgoing payloads (receivers need no setting).
    /// Default: [`Compression::None`].
    pub fn compression(&mut self, compression: Compression) -> &mut Self {
        self.wire.compression(compression);
        self
    }

    /// Payloads shorter than this many bytes are sent uncompressed.
    /// Default: 1024.
    pub fn compress_min_size(&mut self, bytes: usize) -> &mut Self {
        self.wire.compress_min_size(bytes);
        self
    }

    /// How long [`close`](crate::ReqSocket::close)-on-drop keeps delivering
    /// queued messages. Default: 1 s.
    pub fn linger(&mut self, linger: Duration) -> &mut Self {
        self.linger = linger;
        self
    }

    /// Token sent in this client's handshake for the server's
    /// [`Authenticator`]. Default: none.
    pub fn auth_token(&mut self, token: impl Into<Bytes>) -> &mut Self {
        self.auth_token = Some(token.into());
        self
    }

    /// Server-side hook that accepts or rejects each connecting peer.
    /// Default: none (everyone is accepted).
    pub fn authenticator(&mut self, authenticator: impl Authenticator) -> &mut Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// Deadline for the [`Authenticator`]; a hook that takes longer rejects
    /// the peer ("authentication timed out"). Keep it below the clients'
    /// [`handshake_timeout`](Self::handshake_timeout), so that they hear the
    /// rejection (and wait [`auth_reject_delay`](Self::auth_reject_delay)
    /// before trying again) instead of timing out. Default: 3 s.
    pub fn auth_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.auth_timeout = timeout;
        self
    }

    /// Requires every peer's identity to be one of the names in the
    /// certificate it presented (see
    /// [`CertName::matches`](msg_transport::CertName::matches): exactly a DNS
    /// or IP subject alternative name, a URI or email name, or the common
    /// name). With it, no peer can announce an identity it holds no
    /// certificate for.
    ///
    /// On a server the client certificate is checked (mutual TLS or QUIC
    /// with [`TlsServerConfig::require_client_auth`](msg_transport::TlsServerConfig::require_client_auth)),
    /// before the [`Authenticator`] runs: a client without a verified
    /// certificate, or whose certificate does not name its identity, is
    /// rejected with [`Reason::AuthRejected`](msg_wire::Reason::AuthRejected)
    /// (counted in
    /// [`SocketStats::auth_rejections`](crate::SocketStats::auth_rejections),
    /// reported as [`SocketEvent::AuthRejected`](crate::SocketEvent::AuthRejected)).
    /// On a client the server's certificate is checked against the identity
    /// the server announces, and a mismatch fails the handshake. Over
    /// `tcp://`, `ipc://` and `inproc://`, which carry no certificates, every
    /// handshake fails. Default: off.
    pub fn bind_identity_to_certificate(&mut self, bind: bool) -> &mut Self {
        self.bind_identity_to_certificate = bind;
        self
    }

    /// Most accepted connections a bound socket holds at once, handshakes
    /// in progress included; more are closed right after accept, with an
    /// `Overloaded` rejection where that can be sent without waiting, a
    /// warning and a counter
    /// ([`SocketStats::connections_refused`](crate::SocketStats::connections_refused)).
    /// Default: 65,536.
    pub fn max_connections(&mut self, connections: usize) -> &mut Self {
        self.max_connections = connections;
        self
    }

    /// The transports used for endpoint strings: set TLS and QUIC
    /// configurations (certificates, roots) here. Default:
    /// [`AnyTransport::new`] (TCP, IPC and inproc; TLS and QUIC need
    /// configuration).
    pub fn transport(&mut self, transport: AnyTransport) -> &mut Self {
        self.transport = transport;
        self
    }

    /// Checks the options for contradictions.
    /// The send high-water marks, for a protocol's connection table.
    pub(crate) fn send_limits(&self) -> crate::proto::conns::SendLimits {
        crate::proto::conns::SendLimits {
            frames: self.send_hwm,
            bytes: self.send_hwm_bytes,
        }
    }

    /// The receive high-water marks, for a protocol's queue for the
    /// application.
    pub(crate) fn recv_limits(&self) -> crate::proto::conns::RecvLimits {
        crate::proto::conns::RecvLimits {
            messages: self.recv_hwm,
            bytes: self.recv_hwm_bytes,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &'static str| Err(ConfigError { what });
        if self.identity.as_ref().is_some_and(|i| i.len() > 255) {
            return bad("identity longer than 255 bytes");
        }
        if self.send_hwm == 0 || self.recv_hwm == 0 {
            return bad("high-water marks must be at least one message");
        }
        self.reconnect.check().or_else(bad)?;
        if let Some(interval) = self.heartbeat_interval {
            if interval.is_zero() || self.heartbeat_timeout <= interval {
                return bad("heartbeat timeout must exceed a positive heartbeat interval");
            }
        }
        if self.handshake_timeout.is_zero()
            || self.request_timeout.is_zero()
            || self.auth_timeout.is_zero()
        {
            return bad("timeouts must be positive");
        }
        if self
            .auth_token
            .as_ref()
            .is_some_and(|t| t.len() > self.wire.get_max_token_size())
        {
            return bad("auth token longer than the maximum token size");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least one");
        }
        if self.metrics_interval.is_zero() {
            return bad("metrics_interval must be positive");
        }
        Ok(())
    }
}
