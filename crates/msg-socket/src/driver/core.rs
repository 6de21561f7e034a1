//! What every socket shares: options, counters, events, its tasks, and the
//! accept and reconnect loops that turn endpoints into connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use msg_transport::{Conn, Endpoint, Listener, PeerAddr, Transport};
use msg_wire::{Answer, HandshakeCodec, Hello, Reason, SocketType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::AuthRequest;
use crate::driver::conn::{self, ConnHandle, Pattern, PeerInfo};
use crate::error::{HandshakeError, SocketError};
use crate::monitor::{Counters, SocketEvent, SocketEvents};
use crate::options::SocketOptions;
use crate::proto::backoff::{Backoff, XorShift};
use crate::proto::handshake::{check_answer, check_hello};

/// Connection ids, unique within the process.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Shared state of one socket.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) opts: SocketOptions,
    pub(crate) socket_type: SocketType,
    pub(crate) identity: Bytes,
    pub(crate) counters: Counters,
    events: broadcast::Sender<SocketEvent>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
    /// Signalled whenever a writer finished a batch or a peer came or went.
    pub(crate) progress: Notify,
    /// Connections with a finished handshake, by id.
    live: Mutex<HashMap<u64, Arc<ConnHandle>>>,
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
        Ok(Arc::new(Core {
            opts,
            socket_type,
            identity,
            counters: Counters::default(),
            events,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            progress: Notify::new(),
            live: Mutex::new(HashMap::new()),
        }))
    }

    pub(crate) fn emit(&self, event: SocketEvent) {
        // No subscriber is fine: events are optional.
        let _ = self.events.send(event);
    }

    pub(crate) fn events(&self) -> SocketEvents {
        SocketEvents::new(self.events.subscribe())
    }

    pub(crate) fn register(&self, conn: &Arc<ConnHandle>) {
        self.live
            .lock()
            .expect("live lock")
            .insert(conn.peer.conn_id, conn.clone());
        self.progress.notify_waiters();
    }

    pub(crate) fn unregister(&self, conn: &ConnHandle) {
        self.live
            .lock()
            .expect("live lock")
            .remove(&conn.peer.conn_id);
        self.progress.notify_waiters();
    }

    /// Frames and bytes queued on all connections and not yet written.
    pub(crate) fn queued(&self) -> (usize, usize) {
        let live = self.live.lock().expect("live lock");
        live.values()
            .fold((0, 0), |(f, b), c| (f + c.queued(), b + c.queued_bytes()))
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

    /// Stops every task of the socket; listeners and connections are dropped
    /// as their tasks end.
    pub(crate) fn shutdown(&self) {
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
    pub(crate) async fn bind<T: Transport, P: Pattern>(
        self: &Arc<Self>,
        pattern: Arc<P>,
        transport: T,
        endpoint: &Endpoint,
    ) -> Result<Endpoint, SocketError> {
        if self.cancel.is_cancelled() {
            return Err(SocketError::Closed);
        }
        let mut listener = transport.bind(endpoint).await?;
        let bound = listener.local_endpoint().clone();
        tracing::debug!(socket = %self.socket_type, endpoint = %bound, "listening");
        self.emit(SocketEvent::Listening(bound.clone()));
        let core = self.clone();
        self.tasks.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = core.cancel.cancelled() => break,
                };
                match accepted {
                    Ok((conn, addr)) => {
                        if core.counters.active_peers.load(Relaxed) >= core.opts.max_connections {
                            tracing::warn!(peer = %addr, "refusing connection: max_connections reached");
                            continue;
                        }
                        let core2 = core.clone();
                        let pattern = pattern.clone();
                        core.tasks
                            .spawn(async move { serve_accepted(core2, pattern, conn, addr).await });
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
            // The listener drops here, freeing the port or socket file.
        });
        Ok(bound)
    }

    /// Connects to `endpoint` with `transport` in the background, forever
    /// reconnecting with backoff (or until the give-up limit).
    pub(crate) fn connect<T: Transport, P: Pattern>(
        self: &Arc<Self>,
        pattern: Arc<P>,
        transport: T,
        endpoint: Endpoint,
    ) -> Result<(), SocketError> {
        if self.cancel.is_cancelled() {
            return Err(SocketError::Closed);
        }
        let core = self.clone();
        let seed = NEXT_CONN_ID.load(Relaxed) ^ random_seed();
        self.tasks.spawn(async move {
            let mut backoff = Backoff::new(core.opts.reconnect.clone(), seed);
            loop {
                let extra_wait = tokio::select! {
                    w = connect_once(&core, &pattern, &transport, &endpoint, &mut backoff) => w,
                    _ = core.cancel.cancelled() => return,
                };
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
        });
        Ok(())
    }
}

/// One connect attempt and, if it succeeds, the whole life of the
/// connection. Returns a minimum wait before the next attempt.
async fn connect_once<T: Transport, P: Pattern>(
    core: &Arc<Core>,
    pattern: &Arc<P>,
    transport: &T,
    endpoint: &Endpoint,
    backoff: &mut Backoff,
) -> Duration {
    let opts = &core.opts;
    let connected =
        match tokio::time::timeout(opts.connect_timeout, transport.connect(endpoint)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::debug!(%endpoint, error = %e, "connect failed");
                core.emit(SocketEvent::ConnectFailed {
                    endpoint: endpoint.clone(),
                    error: e.to_string(),
                });
                return Duration::ZERO;
            }
            Err(_) => {
                core.emit(SocketEvent::ConnectFailed {
                    endpoint: endpoint.clone(),
                    error: "connect timed out".into(),
                });
                return Duration::ZERO;
            }
        };
    let (mut conn, addr) = connected;
    match tokio::time::timeout(
        opts.handshake_timeout,
        client_handshake(core, &mut conn, &addr),
    )
    .await
    .unwrap_or(Err(HandshakeError::Timeout))
    {
        Ok((peer, buf)) => {
            backoff.reset();
            conn::run(core.clone(), pattern.clone(), conn, peer, buf).await;
            Duration::ZERO
        }
        Err(e) if e.is_auth_rejected() => {
            core.counters.auth_rejections.fetch_add(1, Relaxed);
            tracing::warn!(peer = %addr, error = %e, "server rejected our authentication");
            core.emit(SocketEvent::AuthRejected {
                peer: addr,
                reason: e.to_string(),
            });
            opts.auth_reject_delay
        }
        Err(e) => {
            core.counters.handshake_failures.fetch_add(1, Relaxed);
            tracing::warn!(peer = %addr, error = %e, "handshake failed");
            core.emit(SocketEvent::HandshakeFailed {
                peer: addr,
                error: e.to_string(),
            });
            Duration::ZERO
        }
    }
}

/// Handshake and life of one accepted connection.
async fn serve_accepted<P: Pattern, C: Conn>(
    core: Arc<Core>,
    pattern: Arc<P>,
    mut conn: C,
    addr: PeerAddr,
) {
    let result = tokio::select! {
        r = tokio::time::timeout(core.opts.handshake_timeout, server_handshake(&core, &mut conn, &addr)) => {
            r.unwrap_or(Err(HandshakeError::Timeout))
        }
        _ = core.cancel.cancelled() => return,
    };
    match result {
        Ok((peer, buf)) => conn::run(core, pattern, conn, peer, buf).await,
        Err(e) => {
            if e.is_auth_rejected() {
                core.counters.auth_rejections.fetch_add(1, Relaxed);
                tracing::warn!(peer = %addr, error = %e, "authentication rejected a peer");
                core.emit(SocketEvent::AuthRejected {
                    peer: addr,
                    reason: e.to_string(),
                });
            } else {
                core.counters.handshake_failures.fetch_add(1, Relaxed);
                tracing::warn!(peer = %addr, error = %e, "handshake with peer failed");
                core.emit(SocketEvent::HandshakeFailed {
                    peer: addr,
                    error: e.to_string(),
                });
            }
        }
    }
}

/// Reads into `buf` until `decode` yields a value. The handshake codec
/// bounds what it buffers, so the buffer stays small whatever the peer sends.
async fn read_until<C: Conn, T>(
    conn: &mut C,
    buf: &mut BytesMut,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, msg_wire::WireError>,
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
    Ok((
        PeerInfo {
            identity,
            addr: addr.clone(),
            socket_type,
            conn_id: NEXT_CONN_ID.fetch_add(1, Relaxed),
        },
        buf,
    ))
}

async fn server_handshake<C: Conn>(
    core: &Core,
    conn: &mut C,
    addr: &PeerAddr,
) -> Result<(PeerInfo, BytesMut), HandshakeError> {
    let mut codec = HandshakeCodec::with_options(core.opts.wire.clone());
    let mut buf = BytesMut::with_capacity(256);
    let hello = match read_until(conn, &mut buf, |b| codec.decode_hello(b)).await {
        Ok(h) => h,
        Err(HandshakeError::Wire(e)) => {
            // A peer that speaks msg but another version, or breaks a limit,
            // hears why; garbage gets no answer at all.
            if !matches!(e, msg_wire::WireError::BadMagic) {
                let answer = Answer::reject(e.reason(), e.to_string());
                send_answer(&codec, conn, &answer).await;
            }
            return Err(HandshakeError::Wire(e));
        }
        Err(e) => return Err(e),
    };
    if let Err((code, text)) = check_hello(core.socket_type, &hello) {
        send_answer(&codec, conn, &Answer::reject(code, text.clone())).await;
        return Err(HandshakeError::Refused { code, text });
    }
    if let Some(auth) = &core.opts.authenticator {
        let request = AuthRequest {
            identity: hello.identity.clone(),
            token: hello.token.clone(),
            addr: addr.clone(),
            socket_type: hello.socket_type,
        };
        let verdict = tokio::time::timeout(core.opts.auth_timeout, auth.authenticate_dyn(request))
            .await
            .unwrap_or_else(|_| Err(crate::AuthRejection::new("authentication timed out")));
        if let Err(rejection) = verdict {
            let text: String = rejection.text.chars().take(256).collect();
            send_answer(
                &codec,
                conn,
                &Answer::reject(Reason::AuthRejected, text.clone()),
            )
            .await;
            return Err(HandshakeError::Refused {
                code: Reason::AuthRejected,
                text,
            });
        }
    }
    let mut out = BytesMut::new();
    codec.encode_answer(
        &Answer::accept(core.socket_type, core.identity.clone()),
        &mut out,
    )?;
    conn.write_all(&out).await?;
    conn.flush().await?;
    Ok((
        PeerInfo {
            identity: hello.identity,
            addr: addr.clone(),
            socket_type: hello.socket_type,
            conn_id: NEXT_CONN_ID.fetch_add(1, Relaxed),
        },
        buf,
    ))
}

/// Best effort: the connection is closed right after anyway.
async fn send_answer<C: Conn>(codec: &HandshakeCodec, conn: &mut C, answer: &Answer) {
    let mut out = BytesMut::new();
    if codec.encode_answer(answer, &mut out).is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            conn.write_all(&out).await?;
            conn.shutdown().await
        })
        .await;
    }
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
