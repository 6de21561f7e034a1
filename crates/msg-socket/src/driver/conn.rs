//! One connection after its handshake: a reader and a batching writer
//! driven from one task, plus heartbeats.

use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use msg_transport::{Conn, PeerAddr};
use msg_wire::{Compression, EncodedFrame, Frame, FrameCodec, Reason, SocketType, WireError};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::driver::core::Core;
use crate::monitor::SocketEvent;
use crate::proto::heartbeat::{Heartbeat, HeartbeatAction};

/// Who is at the other end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The identity the peer announced in its handshake.
    pub identity: Bytes,
    /// The peer's address; for IPC and inproc it carries a per-connection
    /// id, so every client is its own peer.
    pub addr: PeerAddr,
    /// The peer's socket type.
    pub socket_type: SocketType,
    /// This socket's id for the connection, unique within the process.
    pub conn_id: u64,
}

/// Why a frame could not be queued on a connection.
#[derive(Debug)]
pub(crate) enum QueueError {
    /// The queue is at its high-water mark.
    Full,
    /// The connection is gone.
    Closed,
}

/// The handle patterns use to talk to one connection.
///
/// Frames go into a bounded queue that the connection's writer drains; the
/// queue is bounded in messages (the channel) and in bytes (`queued_bytes`).
#[derive(Debug)]
pub(crate) struct ConnHandle {
    pub(crate) peer: Arc<PeerInfo>,
    /// A per-connection sequence counter for the pattern: the next sequence
    /// number a publisher gives this subscriber, the last one a subscriber
    /// saw from this publisher.
    pub(crate) seq: AtomicU64,
    tx: mpsc::Sender<EncodedFrame>,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    room: Notify,
    closed: CancellationToken,
    codec: FrameCodec,
    compression: Compression,
}

impl ConnHandle {
    /// Encodes a frame with the socket's compression settings.
    pub(crate) fn encode(&self, frame: &Frame) -> Result<EncodedFrame, WireError> {
        self.codec.encode_parts(frame, self.compression)
    }

    fn bytes_would_overflow(&self, len: usize) -> bool {
        let queued = self.queued_bytes.load(Relaxed);
        // A frame larger than the whole mark still goes when the queue is empty.
        queued > 0 && queued.saturating_add(len) > self.max_bytes
    }

    /// Queues without waiting; at the mark the frame comes back as `Full`.
    pub(crate) fn try_send(&self, frame: EncodedFrame) -> Result<(), QueueError> {
        if self.closed.is_cancelled() {
            return Err(QueueError::Closed);
        }
        if self.bytes_would_overflow(frame.len()) {
            return Err(QueueError::Full);
        }
        let len = frame.len();
        self.queued_bytes.fetch_add(len, Relaxed);
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued_bytes.fetch_sub(len, Relaxed);
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => QueueError::Full,
                    mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
                })
            }
        }
    }

    /// Queues, waiting for room below both marks.
    pub(crate) async fn send(&self, frame: EncodedFrame) -> Result<(), EncodedFrame> {
        loop {
            let notified = self.room.notified();
            if self.closed.is_cancelled() {
                return Err(frame);
            }
            if !self.bytes_would_overflow(frame.len()) {
                break;
            }
            tokio::select! {
                _ = notified => {}
                _ = self.closed.cancelled() => return Err(frame),
            }
        }
        let len = frame.len();
        self.queued_bytes.fetch_add(len, Relaxed);
        let permit = tokio::select! {
            p = self.tx.reserve() => p,
            _ = self.closed.cancelled() => Err(mpsc::error::SendError(())),
        };
        match permit {
            Ok(permit) => {
                permit.send(frame);
                Ok(())
            }
            Err(_) => {
                self.queued_bytes.fetch_sub(len, Relaxed);
                Err(frame)
            }
        }
    }

    /// Frames queued and not yet taken by the writer.
    pub(crate) fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Relaxed)
    }
}

/// What a socket pattern does with a connection's traffic.
pub(crate) trait Pattern: Send + Sync + 'static {
    /// A connection finished its handshake.
    fn connected(&self, conn: &Arc<ConnHandle>) -> impl Future<Output = ()> + Send;
    /// A frame other than heartbeats and `Close` arrived. An `Err` closes the
    /// connection with that reason (the peer broke the pattern's protocol).
    fn frame(
        &self,
        conn: &Arc<ConnHandle>,
        frame: Frame,
    ) -> impl Future<Output = Result<(), (Reason, &'static str)>> + Send;
    /// The connection ended.
    fn disconnected(&self, conn: &Arc<ConnHandle>);
}

/// How a connection ended, for events and logs.
#[derive(Debug)]
enum End {
    /// The peer closed (EOF or a `Close` frame).
    PeerClosed(String),
    /// We were asked to close (socket shutdown or pattern decision).
    Local,
    /// Reading or writing failed.
    Io(std::io::Error),
    /// The peer broke the protocol.
    Protocol(Reason, String),
    /// Heartbeat timeout.
    Silent,
}

/// Runs an established connection until it ends. `buf` holds bytes read
/// after the handshake.
pub(crate) async fn run<P: Pattern, C: Conn>(
    core: Arc<Core>,
    pattern: Arc<P>,
    conn: C,
    peer: PeerInfo,
    buf: BytesMut,
) {
    let opts = &core.opts;
    let (tx, rx) = mpsc::channel(opts.send_hwm);
    let closed = core.cancel.child_token();
    let handle = Arc::new(ConnHandle {
        peer: Arc::new(peer),
        seq: AtomicU64::new(0),
        tx,
        queued_bytes: AtomicUsize::new(0),
        max_bytes: opts.send_hwm_bytes,
        room: Notify::new(),
        closed: closed.clone(),
        codec: FrameCodec::with_options(opts.wire.clone()),
        compression: opts.wire.get_compression(),
    });
    let addr = handle.peer.addr.clone();
    let span = tracing::debug_span!("conn", peer = %addr, id = handle.peer.conn_id);
    let _enter = span.enter();
    drop(_enter);

    core.counters.active_peers.fetch_add(1, Relaxed);
    core.register(&handle);
    core.emit(SocketEvent::Connected {
        peer: addr.clone(),
        identity: handle.peer.identity.clone(),
    });
    tracing::debug!(peer = %addr, identity = ?handle.peer.identity, "connected");
    pattern.connected(&handle).await;

    let (reader, writer) = tokio::io::split(conn);
    let end = {
        let read = read_loop(&core, &*pattern, &handle, reader, buf);
        let write = write_loop(&core, &handle, writer, rx);
        tokio::pin!(read, write);
        tokio::select! {
            end = &mut read => {
                // The writer may still hold a Close frame for the peer; give it
                // a moment, bounded, to go out.
                let _ = tokio::time::timeout(Duration::from_millis(200), &mut write).await;
                end
            }
            end = &mut write => end,
        }
    };
    handle.closed.cancel();
    handle.room.notify_waiters();
    core.counters.active_peers.fetch_sub(1, Relaxed);
    core.unregister(&handle);
    pattern.disconnected(&handle);

    let reason = match &end {
        End::PeerClosed(why) => why.clone(),
        End::Local => "closed locally".to_owned(),
        End::Io(e) => format!("i/o error: {e}"),
        End::Protocol(code, text) => {
            core.counters.protocol_errors.fetch_add(1, Relaxed);
            tracing::warn!(peer = %addr, %code, "closing connection: peer broke the protocol: {text}");
            core.emit(SocketEvent::PeerMisbehaved {
                peer: addr.clone(),
                error: text.clone(),
            });
            format!("protocol error: {text}")
        }
        End::Silent => {
            core.counters.heartbeat_timeouts.fetch_add(1, Relaxed);
            tracing::warn!(peer = %addr, "closing connection: peer silent past the heartbeat timeout");
            core.emit(SocketEvent::PeerMisbehaved {
                peer: addr.clone(),
                error: "heartbeat timeout".into(),
            });
            "heartbeat timeout".to_owned()
        }
    };
    tracing::debug!(peer = %addr, %reason, "disconnected");
    core.emit(SocketEvent::Disconnected { peer: addr, reason });
}

/// Reads frames, answers heartbeats and hands everything else to the
/// pattern. Returns when the connection should end; on a protocol error it
/// queues a `Close` frame for the writer first.
async fn read_loop<P: Pattern, C: Conn>(
    core: &Core,
    pattern: &P,
    handle: &Arc<ConnHandle>,
    mut reader: ReadHalf<C>,
    mut buf: BytesMut,
) -> End {
    let opts = &core.opts;
    let mut codec = FrameCodec::with_options(opts.wire.clone());
    let start = tokio::time::Instant::now();
    let mut heartbeat = opts
        .heartbeat_interval
        .map(|interval| Heartbeat::new(start.into_std(), interval, opts.heartbeat_timeout));
    let counters = &core.counters;

    let end = loop {
        // Drain every whole frame already buffered before reading again.
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                if let Some(hb) = heartbeat.as_mut() {
                    hb.handle_recv(tokio::time::Instant::now().into_std());
                }
                match frame {
                    Frame::Ping { nonce } => {
                        if let Ok(f) = handle.encode(&Frame::Pong { nonce }) {
                            // A full queue means traffic is flowing anyway.
                            let _ = handle.try_send(f);
                        }
                    }
                    Frame::Pong { .. } => {}
                    Frame::Close { code, text } => {
                        break End::PeerClosed(format!("peer closed ({code}): {text}"));
                    }
                    other => {
                        if other.payload().is_some() {
                            counters.msgs_received.fetch_add(1, Relaxed);
                        }
                        let result = tokio::select! {
                            r = pattern.frame(handle, other) => r,
                            _ = handle.closed.cancelled() => break End::Local,
                        };
                        if let Err((code, text)) = result {
                            break End::Protocol(code, text.to_owned());
                        }
                    }
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => break End::Protocol(e.reason(), e.to_string()),
        }
        // Reading: the codec reserved room for a frame whose header it has
        // seen; otherwise make room for a typical batch, without ever
        // letting a peer choose the size.
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(16 * 1024);
        }
        let deadline = heartbeat.as_ref().map(|hb| hb.poll_timeout());
        tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => {
                    break if buf.is_empty() {
                        End::PeerClosed("peer closed the connection".into())
                    } else {
                        End::Protocol(Reason::ProtocolError, "connection closed in the middle of a frame".into())
                    };
                }
                Ok(n) => {
                    counters.bytes_received.fetch_add(n as u64, Relaxed);
                }
                Err(e) => break End::Io(e),
            },
            _ = sleep_until_opt(deadline) => {
                let now = tokio::time::Instant::now().into_std();
                if let Some(hb) = heartbeat.as_mut() {
                    match hb.handle_timeout(now) {
                        Some(HeartbeatAction::Ping(nonce)) => {
                            if let Ok(f) = handle.encode(&Frame::Ping { nonce }) {
                                let _ = handle.try_send(f);
                            }
                        }
                        Some(HeartbeatAction::Dead) => break End::Silent,
                        None => {}
                    }
                }
            }
            _ = handle.closed.cancelled() => break End::Local,
        }
    };
    // Tell the peer why, where the stream is still usable.
    let close = match &end {
        End::Protocol(code, text) => Some((*code, text.as_str())),
        End::Silent => Some((Reason::ProtocolError, "heartbeat timeout")),
        End::Local => Some((Reason::Shutdown, "closing")),
        _ => None,
    };
    if let Some((code, text)) = close {
        let text: String = text.chars().take(200).collect();
        if let Ok(f) = handle.encode(&Frame::Close { code, text }) {
            // Bypass the HWM: the writer is the only consumer left.
            let _ = handle.tx.try_send(f);
        }
    }
    end
}

async fn sleep_until_opt(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Most bytes gathered into one write; beyond this the writer writes and
/// comes back for more, so one connection cannot hog memory in a batch.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Frames whose parts are smaller than this are copied into one buffer (a
/// copy is cheaper than an extra iovec); larger payloads go as their own
/// slice, uncopied.
const COALESCE_BELOW: usize = 4 * 1024;

/// Drains the queue: everything waiting goes out in one (vectored) write,
/// and the stream is flushed only when the queue is empty.
async fn write_loop<C: Conn>(
    core: &Core,
    handle: &ConnHandle,
    mut writer: WriteHalf<C>,
    mut rx: mpsc::Receiver<EncodedFrame>,
) -> End {
    let counters = &core.counters;
    let mut batch: Vec<Bytes> = Vec::with_capacity(64);
    let mut scratch = BytesMut::new();
    loop {
        let first = tokio::select! {
            biased;
            f = rx.recv() => f,
            _ = handle.closed.cancelled() => {
                // Deliver what is already queued (the Close frame among it).
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else {
            let _ = writer.shutdown().await;
            return End::Local;
        };
        let mut total = 0usize;
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            total += frame.len();
            let (header, payload) = frame.into_parts();
            scratch.extend_from_slice(&header);
            if payload.len() < COALESCE_BELOW {
                scratch.extend_from_slice(&payload);
            } else {
                batch.push(scratch.split().freeze());
                batch.push(payload);
            }
            if total < MAX_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if !scratch.is_empty() {
            batch.push(scratch.split().freeze());
        }
        if let Err(e) = write_all_vectored(&mut writer, &mut batch).await {
            return End::Io(e);
        }
        handle.queued_bytes.fetch_sub(total, Relaxed);
        handle.room.notify_waiters();
        core.progress.notify_waiters();
        counters.bytes_sent.fetch_add(total as u64, Relaxed);
        if rx.is_empty() {
            if let Err(e) = writer.flush().await {
                return End::Io(e);
            }
        }
    }
}

/// Writes every buffer, in as few system calls as the stream allows.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bufs: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    let mut start = 0;
    while start < bufs.len() {
        if bufs[start].is_empty() {
            start += 1;
            continue;
        }
        let n = if writer.is_write_vectored() {
            let slices: Vec<IoSlice<'_>> = bufs[start..]
                .iter()
                .take(64)
                .map(|b| IoSlice::new(b))
                .collect();
            writer.write_vectored(&slices).await?
        } else {
            writer.write(&bufs[start]).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut left = n;
        while left > 0 {
            let b = &mut bufs[start];
            let take = left.min(b.len());
            b.advance(take);
            left -= take;
            if b.is_empty() {
                start += 1;
            }
        }
    }
    bufs.clear();
    Ok(())
}
