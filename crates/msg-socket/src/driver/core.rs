//! What every socket shares: options, counters, events, its tasks, and the
//! accept and reconnect loops that turn endpoints into connections.
//!
//! Every accepted connection gets a task of its own (so a slow or hostile
//! peer never holds up the accept loop or another peer), and at most
//! [`SocketOptions::max_connections`] of them exist at once, handshakes in
//! progress included: past that, new connections are refused right after
//! accept without spawning anything. A handshake is bounded in time (the
//! handshake timeout for the peer's part, the auth timeout for the
//! authenticator) and in memory (the handshake codec refuses a bad field as
//! soon as it arrives and never buffers more than one maximal Hello).

use std::sync::Arc;
use std::sync::atomic::{
    AtomicBool, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use msg_transport::{Conn, Endpoint, Listener, PeerAddr, PeerCertificates, Transport};
use msg_wire::{
    Answer, FrameCodec, HandshakeCodec, Hello, MAX_REASON_LEN, Reason, SocketType, WireError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::auth::{AuthRejection, AuthRequest, Principal};
use crate::driver::conn::PeerInfo;
use crate::driver::link;
use crate::driver::shared::Shared;
use crate::error::{HandshakeError, SocketError};
use crate::monitor::{Counters, SocketEvent, SocketEvents};
use crate::options::SocketOptions;
use crate::proto::Protocol;
use crate::proto::Violation;
use crate::proto::backoff::{Backoff, XorShift};
use crate::proto::handshake::{check_answer, check_hello};

/// Connection ids, unique within the process.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// How long a refused peer may take to receive its rejection.
const REJECT_GRACE: Duration = Duration::from_secs(1);

/// Shared state of one socket.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) opts: SocketOptions,
    pub(crate) socket_type: SocketType,
    pub(crate) identity: Bytes,
    /// Encodes with the socket's wire options.
    pub(crate) codec: FrameCodec,
    pub(crate) counters: Counters,
    events: broadcast::Sender<SocketEvent>,
    pub(crate) cancel: CancellationToken,
    /// Set with `cancel`, for checks on the path of every message: reading
    /// an atomic is cheaper than `CancellationToken::is_cancelled`, which
    /// takes a lock.
    closing: AtomicBool,
    pub(crate) tasks: TaskTracker,
    /// Signalled whenever a connection's queue emptied or a peer came or
    /// went (or subscribed), for tasks waiting for either.
    pub(crate) progress: Notify,
    /// Accepted connections that are still open (in their handshake or
    /// established), against `max_connections`.
    accepted: AtomicUsize,
    /// The metrics task runs (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub(crate) metrics_started: AtomicBool,
}

impl Core {
    pub(crate) fn new(
        socket_type: SocketType,
        opts: SocketOptions,
    ) -> Result<Arc<Core>, SocketError> {
        opts.validate()?;
        let identity = opts
            .identity
            .clone()
            .unwrap_or_else(|| random_identity(socket_type));
        let (events, _) = broadcast::channel(crate::monitor::EVENT_BUFFER);
        let codec = FrameCodec::with_options(opts.wire.clone());
        Ok(Arc::new(Core {
            opts,
            socket_type,
            identity,
            codec,
            counters: Counters::default(),
            events,
            cancel: CancellationToken::new(),
            closing: AtomicBool::new(false),
            tasks: TaskTracker::new(),
            progress: Notify::new(),
            accepted: AtomicUsize::new(0),
            #[cfg(feature = "metrics")]
            metrics_started: AtomicBool::new(false),
        }))
    }

    pub(crate) fn emit(&self, event: SocketEvent) {
        // No subscriber is fine: events are optional.
        let _ = self.events.send(event);
    }

    pub(crate) fn events(&self) -> SocketEvents {
        SocketEvents::new(self.events.subscribe())
    }

    /// Waits until `n` peers are connected or `timeout` passes.
    pub(crate) async fn wait_for_peers(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progress = self.progress.notified();
            if self.counters.active_peers.load(Relaxed) >= n {
                return true;
            }
            tokio::select! {
                _ = progress => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return self.counters.active_peers.load(Relaxed) >= n;
                }
            }
        }
    }

    /// Whether the socket is shutting down: [`Core::shutdown`] was called.
    /// Same as `cancel.is_cancelled()` (the token is cancelled only there),
    /// without its lock.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Acquire)
    }

    /// Stops every task of the socket; listeners and connections are dropped
    /// as their tasks end.
    pub(crate) fn shutdown(&self) {
        self.closing.store(true, Release);
        self.cancel.cancel();
        self.tasks.close();
    }

    /// Waits until every task has ended.
    pub(crate) async fn wait_stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Binds `endpoint` with `transport` and serves connections from it until
    /// the socket closes. Returns the bound endpoint (with the real port).
    pub(crate) async fn bind<T: Transport, P: Protocol>(
        self: &Arc<Self>,
        shared: Arc<Shared<P>>,
        transport: T,
        endpoint: &Endpoint,
    ) -> Result<Endpoint, SocketError> {
        if self.cancel.is_cancelled() {
            return Err(SocketError::Closed);
        }
        let listener = transport.bind(endpoint).await?;
        let bound = listener.local_endpoint().clone();
        tracing::debug!(socket = %self.socket_type, endpoint = %bound, "listening");
        self.emit(SocketEvent::Listening(bound.clone()));
        let span = tracing::debug_span!("listener", socket = %self.socket_type, endpoint = %bound);
        self.tasks
            .spawn(accept_loop(self.clone(), shared, listener).instrument(span));
        Ok(bound)
    }

    /// Connects to `endpoint` with `transport` in the background, forever
    /// reconnecting with backoff (or until the give-up limit).
    pub(crate) fn connect<T: Transport, P: Protocol>(
        self: &Arc<Self>,
        shared: Arc<Shared<P>>,
        transport: T,
        endpoint: Endpoint,
    ) -> Result<(), SocketError> {
        if self.cancel.is_cancelled() {
            return Err(SocketError::Closed);
        }
        let seed = NEXT_CONN_ID.load(Relaxed) ^ random_seed();
        let span = tracing::debug_span!("connect", socket = %self.socket_type, %endpoint);
        self.tasks
            .spawn(connect_loop(self.clone(), shared, transport, endpoint, seed).instrument(span));
        Ok(())
    }
}

/// A place among the `max_connections` accepted connections; given back
/// when dropped.
struct AcceptSlot(Arc<Core>);

impl AcceptSlot {
    fn take(core: &Arc<Core>) -> Option<AcceptSlot> {
        let max = core.opts.max_connections;
        core.accepted
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| AcceptSlot(core.clone()))
    }
}

impl Drop for AcceptSlot {
    fn drop(&mut self) {
        self.0.accepted.fetch_sub(1, Relaxed);
    }
}

/// Accepts connections until the socket closes; each gets a task of its
/// own. Closing the listener at the end frees the port or socket file
/// before the task ends, so that [`close`](crate::ReqSocket::close), which
/// waits for the socket's tasks, returns only once it is free (a QUIC
/// listener's UDP socket closes only after its connections, ending in their
/// own tasks meanwhile, have drained).
async fn accept_loop<L: Listener, P: Protocol>(
    core: Arc<Core>,
    shared: Arc<Shared<P>>,
    mut listener: L,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = core.cancel.cancelled() => break,
        };
        match accepted {
            Ok((conn, addr)) => {
                let Some(slot) = AcceptSlot::take(&core) else {
                    core.counters.connections_refused.fetch_add(1, Relaxed);
                    tracing::warn!(
                        peer = %addr,
                        max = core.opts.max_connections,
                        "refused connection: max_connections reached"
                    );
                    refuse_at_once(&core, conn);
                    continue;
                };
                let core2 = core.clone();
                let shared = shared.clone();
                core.tasks.spawn(async move {
                    let _slot = slot;
                    serve_accepted(core2, shared, conn, addr).await;
                });
            }
            Err(e) => {
                // Running out of descriptors and the like: log, breathe, go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = core.cancel.cancelled() => break,
                }
            }
        }
    }
    listener.close().await;
}

/// Tells a connection over the limit why it is dropped, if that can be done
/// without waiting (nothing is spawned or awaited for it), and drops it.
fn refuse_at_once<C: Conn>(core: &Core, mut conn: C) {
    let codec = HandshakeCodec::with_options(core.opts.wire.clone());
    let mut out = BytesMut::new();
    let answer = Answer::reject(Reason::Overloaded, "too many connections");
    if codec.encode_answer(&answer, &mut out).is_ok() {
        let _ = conn.write_all(&out).now_or_never();
    }
}

/// What one connect attempt gave.
enum Attempt<C> {
    /// A connection with a finished handshake.
    Up(C, PeerInfo, BytesMut),
    /// No connection; wait at least this long before the next attempt.
    Failed(Duration),
}

/// Connects, runs the connection until it ends, and reconnects with backoff,
/// until the socket closes or the give-up limit is reached.
async fn connect_loop<T: Transport, P: Protocol>(
    core: Arc<Core>,
    shared: Arc<Shared<P>>,
    transport: T,
    endpoint: Endpoint,
    seed: u64,
) {
    // Shared with the tasks that close finished connections.
    let transport = Arc::new(transport);
    let mut backoff = Backoff::new(core.opts.reconnect.clone(), seed);
    loop {
        // Only the attempt is dropped when the socket closes; an established
        // connection sees the close itself, and says goodbye.
        let attempt = tokio::select! {
            a = attempt(&core, &*transport, &endpoint) => a,
            _ = core.cancel.cancelled() => return,
        };
        let extra_wait = match attempt {
            Attempt::Up(conn, peer, buf) => {
                backoff.reset();
                let id = peer.conn_id;
                let conn = link::run(shared.clone(), conn, peer, buf).await;
                close_conn(&core, &transport, conn);
                if shared.take_refused(id) {
                    // The server announced an identity another principal
                    // holds here, or this PAIR has its peer already: it
                    // will again, so no tight loop.
                    core.opts.auth_reject_delay
                } else {
                    Duration::ZERO
                }
            }
            Attempt::Failed(wait) => wait,
        };
        if core.cancel.is_cancelled() {
            return;
        }
        let Some(delay) = backoff.next_delay() else {
            tracing::warn!(%endpoint, "giving up on endpoint after repeated failures");
            core.emit(SocketEvent::GaveUp { endpoint });
            return;
        };
        let delay = delay.max(extra_wait);
        core.counters.reconnects.fetch_add(1, Relaxed);
        core.emit(SocketEvent::Reconnecting {
            endpoint: endpoint.clone(),
            attempt: backoff.attempts(),
            delay,
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = core.cancel.cancelled() => return,
        }
    }
}

/// Closes a connection this socket made, with its transport: on the spot
/// when the transport just drops it (TCP, IPC, inproc), otherwise in a task
/// of the socket. Reconnecting need not wait for it, and
/// [`close`](crate::ReqSocket::close) does: a QUIC client connection first
/// waits for the peer's acknowledgements, then for its own UDP socket to
/// close.
fn close_conn<T: Transport>(core: &Core, transport: &Arc<T>, conn: T::Conn) {
    let transport = transport.clone();
    let mut closing = Box::pin(async move { transport.close_conn(conn).await });
    if (&mut closing).now_or_never().is_none() {
        core.tasks.spawn(closing);
    }
}

/// One connect attempt: the transport connection and the handshake.
async fn attempt<T: Transport>(
    core: &Arc<Core>,
    transport: &T,
    endpoint: &Endpoint,
) -> Attempt<T::Conn> {
    let opts = &core.opts;
    let connected =
        match tokio::time::timeout(opts.connect_timeout, transport.connect(endpoint)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                // The whole chain: a TLS failure's cause (an unknown issuer,
                // a name mismatch) lives in the error's sources.
                let error = describe(&e);
                tracing::debug!(%endpoint, %error, "connect failed");
                core.emit(SocketEvent::ConnectFailed {
                    endpoint: endpoint.clone(),
                    error,
                });
                return Attempt::Failed(Duration::ZERO);
            }
            Err(_) => {
                tracing::debug!(%endpoint, "connect timed out");
                core.emit(SocketEvent::ConnectFailed {
                    endpoint: endpoint.clone(),
                    error: "connect timed out".into(),
                });
                return Attempt::Failed(Duration::ZERO);
            }
        };
    let (mut conn, addr) = connected;
    let handshake = tokio::time::timeout(
        opts.handshake_timeout,
        client_handshake(core, &mut conn, &addr),
    )
    .await
    .unwrap_or(Err(HandshakeError::Timeout));
    match handshake {
        Ok((peer, buf)) => Attempt::Up(conn, peer, buf),
        Err(HandshakeError::Rejected {
            code: Reason::AuthRejected,
            text,
        }) => {
            core.counters.auth_rejections.fetch_add(1, Relaxed);
            tracing::warn!(peer = %addr, reason = %text, "server rejected our authentication");
            core.emit(SocketEvent::AuthRejected {
                peer: addr,
                reason: text,
            });
            // Not a tight loop: a rejected client waits before trying again.
            Attempt::Failed(opts.auth_reject_delay)
        }
        Err(HandshakeError::Rejected {
            code: Reason::IdentityInUse,
            text,
        }) => {
            core.counters.identity_refusals.fetch_add(1, Relaxed);
            tracing::warn!(
                peer = %addr,
                identity = %core.identity.escape_ascii(),
                reason = %text,
                "server refused our identity: another principal holds it"
            );
            core.emit(SocketEvent::IdentityRefused {
                peer: addr,
                identity: core.identity.clone(),
                reason: text,
            });
            // The holder may stay connected for long: no tight loop either.
            Attempt::Failed(opts.auth_reject_delay)
        }
        Err(e) => {
            let error = describe(&e);
            core.counters.handshake_failures.fetch_add(1, Relaxed);
            tracing::warn!(peer = %addr, %error, "handshake failed");
            core.emit(SocketEvent::HandshakeFailed { peer: addr, error });
            Attempt::Failed(Duration::ZERO)
        }
    }
}

/// Handshake and life of one accepted connection.
async fn serve_accepted<P: Protocol, C: Conn>(
    core: Arc<Core>,
    shared: Arc<Shared<P>>,
    mut conn: C,
    addr: PeerAddr,
) {
    let result = tokio::select! {
        r = server_handshake(&core, &mut conn, &addr, |peer| shared.with(|p| p.admit(peer))) => r,
        _ = core.cancel.cancelled() => return,
    };
    match result {
        Ok((peer, buf)) => {
            let id = peer.conn_id;
            // Dropped: a QUIC connection then closes in the background, and
            // the listener's close waits for it (see `accept_loop`).
            drop(link::run(shared.clone(), conn, peer, buf).await);
            shared.take_refused(id);
        }
        Err(HandshakeError::Refused {
            code: Reason::AuthRejected,
            text,
        }) => {
            core.counters.auth_rejections.fetch_add(1, Relaxed);
            tracing::warn!(peer = %addr, reason = %text, "authentication rejected a peer");
            core.emit(SocketEvent::AuthRejected {
                peer: addr,
                reason: text,
            });
        }
        Err(HandshakeError::IdentityRefused { identity, text }) => {
            // Counted by the pattern, which refused it.
            tracing::warn!(
                peer = %addr,
                identity = %identity.escape_ascii(),
                "refused a connection: {text}"
            );
            core.emit(SocketEvent::IdentityRefused {
                peer: addr,
                identity,
                reason: text,
            });
        }
        Err(e) => {
            let error = describe(&e);
            core.counters.handshake_failures.fetch_add(1, Relaxed);
            tracing::warn!(peer = %addr, %error, "closed connection: handshake failed");
            core.emit(SocketEvent::HandshakeFailed { peer: addr, error });
        }
    }
}

/// An error and its sources, for events and logs: `invalid handshake: bad
/// protocol magic`.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Reads into `buf` until `decode` yields a value. The handshake codec
/// refuses a bad field as soon as it arrives and reserves no more than one
/// maximal message, so the buffer stays small whatever the peer sends.
async fn read_until<C: Conn, T>(
    conn: &mut C,
    buf: &mut BytesMut,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, WireError>,
) -> Result<T, HandshakeError> {
    loop {
        if let Some(v) = decode(buf)? {
            return Ok(v);
        }
        buf.reserve(512);
        if conn.read_buf(buf).await? == 0 {
            return Err(HandshakeError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

async fn client_handshake<C: Conn>(
    core: &Core,
    conn: &mut C,
    addr: &PeerAddr,
) -> Result<(PeerInfo, BytesMut), HandshakeError> {
    let mut codec = HandshakeCodec::with_options(core.opts.wire.clone());
    let hello = Hello::new(
        core.socket_type,
        core.identity.clone(),
        core.opts.auth_token.clone(),
    );
    let mut out = BytesMut::new();
    codec.encode_hello(&hello, &mut out)?;
    conn.write_all(&out).await?;
    conn.flush().await?;
    let mut buf = BytesMut::with_capacity(256);
    let answer = read_until(conn, &mut buf, |b| codec.decode_answer(b)).await?;
    let (socket_type, identity) = check_answer(core.socket_type, answer)?;
    let certificates = conn.peer_certificates().map(Arc::new);
    let bound = core.opts.bind_identity_to_certificate;
    if bound {
        check_bound(&identity, certificates.as_deref(), "server").map_err(|text| {
            HandshakeError::Refused {
                code: Reason::AuthRejected,
                text,
            }
        })?;
    }
    // The server's token is not ours to check: its certificate is all there is.
    let principal = Principal::new(certificates.as_deref(), bound, None);
    Ok((
        PeerInfo {
            identity,
            addr: addr.clone(),
            socket_type,
            conn_id: NEXT_CONN_ID.fetch_add(1, Relaxed),
            certificates,
            principal,
        },
        buf,
    ))
}

/// Whether `identity` is a name in the verified `certificates` of the peer
/// (`side`: "client" or "server"); if not, why, for the peer and the logs.
fn check_bound(
    identity: &[u8],
    certificates: Option<&PeerCertificates>,
    side: &str,
) -> Result<(), String> {
    match certificates {
        None => Err(format!(
            "identity \"{}\" must be a name in a verified {side} certificate, and there is none",
            identity.escape_ascii()
        )),
        Some(certs) if certs.names().contains(identity) => Ok(()),
        Some(_) => Err(format!(
            "identity \"{}\" is not a name in the {side} certificate",
            identity.escape_ascii()
        )),
    }
}

/// The server's side of the handshake. The peer gets the handshake timeout
/// to send its Hello; the identity is checked against the client
/// certificate (if bound to it) and the authenticator gets the auth timeout;
/// the pattern then admits the peer or not (a repeated identity of another
/// principal is not). Every refusal is answered with a Reject naming the
/// reason, except garbage (a peer that does not speak msg gets no answer at
/// all).
async fn server_handshake<C: Conn>(
    core: &Core,
    conn: &mut C,
    addr: &PeerAddr,
    admit: impl FnOnce(&PeerInfo) -> Result<(), Violation>,
) -> Result<(PeerInfo, BytesMut), HandshakeError> {
    let opts = &core.opts;
    let mut codec = HandshakeCodec::with_options(opts.wire.clone());
    let mut buf = BytesMut::with_capacity(256);
    let read = read_until(conn, &mut buf, |b| codec.decode_hello(b));
    let hello = match tokio::time::timeout(opts.handshake_timeout, read).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(HandshakeError::Wire(e))) => {
            // A peer that speaks msg but another version, or breaks a limit,
            // hears why; garbage gets no answer.
            if !matches!(e, WireError::BadMagic) {
                reject(&codec, conn, e.reason(), &e.to_string()).await;
            }
            return Err(HandshakeError::Wire(e));
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            reject(
                &codec,
                conn,
                Reason::HandshakeTimeout,
                "handshake timed out",
            )
            .await;
            return Err(HandshakeError::Timeout);
        }
    };
    if let Err((code, text)) = check_hello(core.socket_type, &hello) {
        reject(&codec, conn, code, &text).await;
        return Err(HandshakeError::Refused { code, text });
    }
    let certificates = conn.peer_certificates().map(Arc::new);
    let bound = opts.bind_identity_to_certificate;
    if bound {
        if let Err(text) = check_bound(&hello.identity, certificates.as_deref(), "client") {
            reject(&codec, conn, Reason::AuthRejected, &text).await;
            return Err(HandshakeError::Refused {
                code: Reason::AuthRejected,
                text,
            });
        }
    }
    if let Some(auth) = &opts.authenticator {
        let request = AuthRequest {
            identity: hello.identity.clone(),
            token: hello.token.clone(),
            addr: addr.clone(),
            socket_type: hello.socket_type,
            certificates: certificates.clone(),
        };
        let verdict = tokio::time::timeout(opts.auth_timeout, auth.authenticate_dyn(request))
            .await
            .unwrap_or_else(|_| Err(AuthRejection::new("authentication timed out")));
        if let Err(rejection) = verdict {
            let text = truncate_utf8(rejection.text, MAX_REASON_LEN);
            reject(&codec, conn, Reason::AuthRejected, &text).await;
            return Err(HandshakeError::Refused {
                code: Reason::AuthRejected,
                text,
            });
        }
    }
    // A token is a credential only once an authenticator has checked it.
    let token = opts.authenticator.as_ref().and(hello.token);
    let peer = PeerInfo {
        identity: hello.identity,
        addr: addr.clone(),
        socket_type: hello.socket_type,
        conn_id: NEXT_CONN_ID.fetch_add(1, Relaxed),
        principal: Principal::new(certificates.as_deref(), bound, token),
        certificates,
    };
    if let Err((code, text)) = admit(&peer) {
        reject(&codec, conn, code, text).await;
        if code == Reason::IdentityInUse {
            return Err(HandshakeError::IdentityRefused {
                identity: peer.identity,
                text: text.to_owned(),
            });
        }
        return Err(HandshakeError::Refused {
            code,
            text: text.to_owned(),
        });
    }
    let mut out = BytesMut::new();
    codec.encode_answer(
        &Answer::accept(core.socket_type, core.identity.clone()),
        &mut out,
    )?;
    // A peer that does not read its answer is as stuck as one that does not
    // send its Hello.
    let send = async {
        conn.write_all(&out).await?;
        conn.flush().await
    };
    match tokio::time::timeout(opts.handshake_timeout, send).await {
        Ok(result) => result?,
        Err(_) => return Err(HandshakeError::Timeout),
    }
    Ok((peer, buf))
}

/// Sends a Reject and shuts the stream down; best effort and bounded, since
/// the connection is dropped right after anyway.
async fn reject<C: Conn>(codec: &HandshakeCodec, conn: &mut C, code: Reason, text: &str) {
    let answer = Answer::reject(code, truncate_utf8(text.to_owned(), MAX_REASON_LEN));
    let mut out = BytesMut::new();
    if codec.encode_answer(&answer, &mut out).is_ok() {
        let _ = tokio::time::timeout(REJECT_GRACE, async {
            conn.write_all(&out).await?;
            conn.shutdown().await
        })
        .await;
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate_utf8(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(NEXT_CONN_ID.fetch_add(1, Relaxed));
    h.finish()
}

fn random_identity(socket_type: SocketType) -> Bytes {
    let mut rng = XorShift::new(random_seed());
    Bytes::from(format!(
        "{}-{:016x}",
        socket_type.as_str().to_ascii_lowercase(),
        rng.next_u64()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_utf8("héllo".into(), 2), "h");
        assert_eq!(truncate_utf8("héllo".into(), 3), "hé");
        assert_eq!(truncate_utf8("short".into(), 1024), "short");
    }

    #[test]
    fn descriptions_carry_the_cause() {
        let e = HandshakeError::Wire(WireError::BadMagic);
        assert_eq!(describe(&e), "invalid handshake: bad protocol magic");
    }
}
