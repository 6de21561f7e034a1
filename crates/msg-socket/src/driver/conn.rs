//! One connection after its handshake: a reader and a batching writer
//! driven from one task, plus heartbeats.
//!
//! The reader decodes frames, answers pings and hands everything else to the
//! pattern; the writer drains the connection's bounded queue in batches.
//! Whichever ends first ends the connection:
//!
//! - the reader, on EOF, a `Close` frame, a protocol error or a heartbeat
//!   timeout. It records why (for the `Close` frame) and cancels the
//!   connection's token; the writer then drops what is still queued, sends
//!   the `Close` frame and shuts its half down, within [`CLOSE_GRACE`];
//! - the writer, on an I/O error;
//! - both, when the socket shuts down (the connection's token is a child of
//!   the socket's): the writer stops at once, even in the middle of a write
//!   to a peer that does not read, and says goodbye with a `Close` frame if
//!   the stream is still whole.

use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use msg_transport::{Conn, PeerAddr};
use msg_wire::{Compression, EncodedFrame, Frame, FrameCodec, Reason, SocketType, WireError};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::driver::core::Core;
use crate::monitor::{Counters, SocketEvent};
use crate::proto::heartbeat::{Heartbeat, HeartbeatAction};

/// How long a closing connection may spend on its last words (the `Close`
/// frame and the shutdown of its write half) to a peer that does not read.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// Most characters of a reason text sent in a `Close` frame (at most 800
/// bytes of UTF-8, well within the wire limit of 1024).
pub(crate) const MAX_CLOSE_TEXT_CHARS: usize = 200;

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
/// `queued_frames` counts frames from the moment they are queued until their
/// last byte is written (or they are dropped when the connection ends), and
/// `queued_bytes` their bytes not yet written, so a batch in the middle of
/// being written counts exactly as far as it is undelivered.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    pub(crate) peer: Arc<PeerInfo>,
    tx: mpsc::Sender<EncodedFrame>,
    queued_frames: AtomicUsize,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    room: Notify,
    closed: CancellationToken,
    /// Why the reader ended the connection, for the writer's `Close` frame.
    close_reason: Mutex<Option<(Reason, String)>>,
    codec: FrameCodec,
    compression: Compression,
}

impl ConnHandle {
    /// Encodes a frame with the socket's compression settings.
    pub(crate) fn encode(&self, frame: &Frame) -> Result<EncodedFrame, WireError> {
        self.codec.encode_parts(frame, self.compression)
    }

    /// Appends `frame`, encoded with the socket's compression settings, to
    /// `dst` (see [`FrameCodec::encode_append`]).
    pub(crate) fn encode_append(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        self.codec.encode_append(frame, self.compression, dst)
    }

    /// Like [`encode`](Self::encode), the header split off `scratch` (see
    /// [`FrameCodec::encode_parts_in`]).
    pub(crate) fn encode_in(
        &self,
        frame: &Frame,
        scratch: &mut BytesMut,
    ) -> Result<EncodedFrame, WireError> {
        self.codec.encode_parts_in(frame, self.compression, scratch)
    }

    fn bytes_would_overflow(&self, len: usize) -> bool {
        let queued = self.queued_bytes.load(Relaxed);
        // A frame larger than the whole mark still goes when the queue is empty.
        queued > 0 && queued.saturating_add(len) > self.max_bytes
    }

    fn account(&self, len: usize) {
        self.queued_bytes.fetch_add(len, Relaxed);
        self.queued_frames.fetch_add(1, Relaxed);
    }

    fn release(&self, frames: usize, bytes: usize) {
        self.queued_bytes.fetch_sub(bytes, Relaxed);
        self.queued_frames.fetch_sub(frames, Relaxed);
        self.room.notify_waiters();
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
        self.account(len);
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.release(1, len);
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => QueueError::Full,
                    mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
                })
            }
        }
    }

    /// Queues, waiting for room below both marks.
    pub(crate) async fn send(&self, frame: EncodedFrame) -> Result<(), EncodedFrame> {
        if self.closed.is_cancelled() {
            return Err(frame);
        }
        // The common case, room under both marks, takes a slot at once:
        // no waiter registered with `room` or with the token, no select.
        let len = frame.len();
        if !self.bytes_would_overflow(len) {
            if let Ok(permit) = self.tx.try_reserve() {
                self.account(len);
                permit.send(frame);
                return Ok(());
            }
        }
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
        self.account(len);
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
                self.release(1, len);
                Err(frame)
            }
        }
    }

    /// Ends the connection from this side (for example because a newer
    /// connection replaced it): the reader stops, and the writer drops what
    /// is queued and says goodbye with a `Close` frame carrying `code` and
    /// `text`.
    pub(crate) fn close(&self, code: Reason, text: &str) {
        *self.close_reason.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((code, text.to_owned()));
        self.closed.cancel();
    }

    /// Frames queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.queued_frames.load(Relaxed)
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Relaxed)
    }

    /// The `Close` frame to end with: the reader's reason, or a shutdown
    /// notice when the socket is closing; none when the peer left first.
    fn final_frame(&self, core: &Core) -> Option<EncodedFrame> {
        let reason = self
            .close_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .or_else(|| {
                core.cancel
                    .is_cancelled()
                    .then(|| (Reason::Shutdown, "socket closing".to_owned()))
            });
        let (code, text) = reason?;
        let text: String = text.chars().take(MAX_CLOSE_TEXT_CHARS).collect();
        self.encode(&Frame::Close { code, text }).ok()
    }
}

/// What a socket pattern does with a connection's traffic.
pub(crate) trait Pattern: Send + Sync + 'static {
    /// A connection finished its handshake. Runs beside the connection's
    /// writer (so it may queue frames with [`ConnHandle::send`], even more
    /// than fit in the queue), before the first frame is read.
    fn connected(&self, conn: &Arc<ConnHandle>) -> impl Future<Output = ()> + Send;
    /// A frame other than heartbeats and `Close` arrived. An `Err` closes the
    /// connection with that reason (the peer broke the pattern's protocol).
    ///
    /// Reading from this connection pauses until the future completes, which
    /// is how a pattern applies backpressure; heartbeats keep going out
    /// meanwhile, and the peer is not judged silent.
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
pub(crate) enum End {
    /// The peer closed (EOF or a `Close` frame).
    PeerClosed(String),
    /// We were asked to close (socket shutdown).
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
///
/// Gives the connection back, its write half shut down, for the caller to
/// drop or to close with its transport (which, for QUIC, can take a while).
pub(crate) async fn run<P: Pattern, C: Conn>(
    core: Arc<Core>,
    pattern: Arc<P>,
    conn: C,
    peer: PeerInfo,
    buf: BytesMut,
) -> C {
    let span = tracing::debug_span!("conn", peer = %peer.addr, id = peer.conn_id);
    run_connection(core, pattern, conn, peer, buf)
        .instrument(span)
        .await
}

async fn run_connection<P: Pattern, C: Conn>(
    core: Arc<Core>,
    pattern: Arc<P>,
    conn: C,
    peer: PeerInfo,
    buf: BytesMut,
) -> C {
    let opts = &core.opts;
    let (tx, rx) = mpsc::channel(opts.send_hwm);
    let handle = Arc::new(ConnHandle {
        peer: Arc::new(peer),
        tx,
        queued_frames: AtomicUsize::new(0),
        queued_bytes: AtomicUsize::new(0),
        max_bytes: opts.send_hwm_bytes,
        room: Notify::new(),
        closed: core.cancel.child_token(),
        close_reason: Mutex::new(None),
        codec: FrameCodec::with_options(opts.wire.clone()),
        compression: opts.wire.get_compression(),
    });
    let addr = handle.peer.addr.clone();

    core.counters.active_peers.fetch_add(1, Relaxed);
    core.register(&handle);
    core.emit(SocketEvent::Connected {
        peer: addr.clone(),
        identity: handle.peer.identity.clone(),
    });
    tracing::debug!(peer = %addr, identity = ?handle.peer.identity, "connected");

    let (mut reader, mut writer) = tokio::io::split(conn);
    let end = {
        let read = async {
            // The greeting (a subscriber's subscriptions) may be more than the
            // queue holds, so it runs while the writer drains the queue.
            tokio::select! {
                () = pattern.connected(&handle) => {}
                () = handle.closed.cancelled() => {}
            }
            read_loop(&core, &*pattern, &handle, &mut reader, buf).await
        };
        let write = write_loop(&core, &handle, &mut writer, rx);
        tokio::pin!(read, write);
        tokio::select! {
            end = &mut read => {
                // The reader cancelled `closed`: the writer drops the queue,
                // sends the Close frame if there is one, and shuts down. It
                // takes longer only with a peer that does not read.
                let _ = tokio::time::timeout(CLOSE_GRACE, &mut write).await;
                end
            }
            end = &mut write => end,
        }
    };
    let conn = reader.unsplit(writer);
    handle.closed.cancel();
    handle.room.notify_waiters();
    core.counters.active_peers.fetch_sub(1, Relaxed);
    core.unregister(&handle);
    pattern.disconnected(&handle);

    report_end(&core, addr, &end);
    conn
}

/// Counts, logs and reports how a connection ended.
pub(crate) fn report_end(core: &Core, addr: PeerAddr, end: &End) {
    let reason = match end {
        End::PeerClosed(why) => why.clone(),
        End::Local => "closed locally".to_owned(),
        End::Io(e) => format!("i/o error: {e}"),
        End::Protocol(code, text) => {
            core.counters.protocol_errors.fetch_add(1, Relaxed);
            tracing::warn!(peer = %addr, %code, "closed connection: peer broke the protocol: {text}");
            core.emit(SocketEvent::PeerMisbehaved {
                peer: addr.clone(),
                error: text.clone(),
            });
            format!("protocol error: {text}")
        }
        End::Silent => {
            core.counters.heartbeat_timeouts.fetch_add(1, Relaxed);
            tracing::warn!(peer = %addr, "closed connection: peer silent past the heartbeat timeout");
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

/// Runs the reader until the connection should end, then records why for
/// the writer's `Close` frame and tells the writer to finish.
async fn read_loop<P: Pattern, C: Conn>(
    core: &Core,
    pattern: &P,
    handle: &Arc<ConnHandle>,
    reader: &mut ReadHalf<C>,
    buf: BytesMut,
) -> End {
    let end = read_frames(core, pattern, handle, reader, buf).await;
    let reason = match &end {
        End::Protocol(code, text) => Some((*code, text.clone())),
        End::Silent => Some((Reason::ProtocolError, "heartbeat timeout".to_owned())),
        _ => None,
    };
    if reason.is_some() {
        *handle
            .close_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = reason;
    }
    handle.closed.cancel();
    end
}

/// Reads frames, answers heartbeats and hands everything else to the
/// pattern, until the connection should end.
async fn read_frames<P: Pattern, C: Conn>(
    core: &Core,
    pattern: &P,
    handle: &Arc<ConnHandle>,
    reader: &mut ReadHalf<C>,
    mut buf: BytesMut,
) -> End {
    let opts = &core.opts;
    let counters = &core.counters;
    let mut codec = FrameCodec::with_options(opts.wire.clone());
    let mut heartbeat = opts
        .heartbeat_interval
        .map(|interval| Heartbeat::new(now(), interval, opts.heartbeat_timeout));
    if !buf.is_empty() {
        // Bytes that came with the handshake are proof of life too.
        counters.bytes_received.fetch_add(buf.len() as u64, Relaxed);
    }
    // One cancellation future and one heartbeat timer for the life of the
    // connection, polled again on every turn of the loop: creating them per
    // read would register (and drop) a waiter and a timer entry per frame.
    // The timer is moved only when the heartbeat deadline changes, which
    // under traffic is once per ping interval.
    let cancelled = handle.closed.cancelled();
    tokio::pin!(cancelled);
    let mut timer = HeartbeatTimer::new();
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    // Payload bytes handed to the pattern since this task last yielded.
    let mut since_yield = 0usize;

    loop {
        // Drain every whole frame already buffered before reading again.
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                match frame {
                    Frame::Ping { nonce } => {
                        if let Ok(f) = handle.encode(&Frame::Pong { nonce }) {
                            // A full queue means traffic is flowing anyway.
                            let _ = handle.try_send(f);
                        }
                    }
                    Frame::Pong { .. } => {}
                    Frame::Close { code, text } => {
                        return End::PeerClosed(format!("peer closed ({code}): {text}"));
                    }
                    other => {
                        if let Some(p) = other.payload() {
                            counters.msgs_received.fetch_add(1, Relaxed);
                            since_yield = since_yield.saturating_add(p.len());
                        }
                        let handled = pattern.frame(handle, other);
                        tokio::pin!(handled);
                        // The pattern may hold us here (backpressure). Keep
                        // pinging so the peer knows we are alive, but do not
                        // judge the peer: we are not reading what it sends.
                        let result = loop {
                            let deadline = heartbeat.as_ref().map(Heartbeat::poll_timeout);
                            let armed = timer.arm(sleep.as_mut(), deadline);
                            tokio::select! {
                                biased;
                                () = &mut cancelled => return End::Local,
                                r = &mut handled => break r,
                                () = &mut sleep, if armed => {
                                    timer.fired();
                                    if let Some(hb) = heartbeat.as_mut() {
                                        let now = now();
                                        match hb.handle_timeout(now) {
                                            Some(HeartbeatAction::Ping(nonce)) => send_ping(handle, nonce),
                                            Some(HeartbeatAction::Dead) => hb.handle_recv(now),
                                            None => {}
                                        }
                                    }
                                }
                            }
                        };
                        if let Err((code, text)) = result {
                            return End::Protocol(code, text.to_owned());
                        }
                        if since_yield >= YIELD_AFTER_BYTES {
                            // Let the application take what we delivered
                            // before reading on (see `YIELD_AFTER_BYTES`).
                            since_yield = 0;
                            tokio::task::yield_now().await;
                        }
                    }
                }
                continue;
            }
            Ok(None) => {}
            // Malformed, oversized (known from the header alone, before any
            // body is buffered) or a decompression bomb: this peer is done.
            Err(e) => return End::Protocol(e.reason(), e.to_string()),
        }
        // Reading: once it has seen a frame header the codec makes room for
        // that frame itself, growing with the bytes that really arrive, so
        // reserve only when there is no room at all (no header yet, or a
        // frame just split off). Reserving more on top of the codec's exact
        // room could let `BytesMut` double a buffer that already holds a
        // frame at the size limit. When a large frame just filled the buffer
        // and the application has dropped it already, this `reserve` takes
        // back that whole allocation without allocating (see
        // `YIELD_AFTER_BYTES`).
        if buf.capacity() == buf.len() {
            buf.reserve(16 * 1024);
        }
        let deadline = heartbeat.as_ref().map(Heartbeat::poll_timeout);
        let armed = timer.arm(sleep.as_mut(), deadline);
        tokio::select! {
            biased;
            () = &mut cancelled => return End::Local,
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => {
                    return if buf.is_empty() {
                        End::PeerClosed("peer closed the connection".into())
                    } else {
                        End::Protocol(
                            Reason::ProtocolError,
                            "connection closed in the middle of a frame".into(),
                        )
                    };
                }
                Ok(n) => {
                    counters.bytes_received.fetch_add(n as u64, Relaxed);
                    // Any bytes are proof of life, also the first part of a
                    // large frame still on its way.
                    if let Some(hb) = heartbeat.as_mut() {
                        hb.handle_recv(now());
                    }
                }
                Err(e) => return End::Io(e),
            },
            () = &mut sleep, if armed => {
                timer.fired();
                if let Some(hb) = heartbeat.as_mut() {
                    match hb.handle_timeout(now()) {
                        Some(HeartbeatAction::Ping(nonce)) => send_ping(handle, nonce),
                        Some(HeartbeatAction::Dead) => return End::Silent,
                        None => {}
                    }
                }
            }
        }
    }
}

/// Payload bytes the reader delivers before it yields to other tasks.
///
/// A large frame is a view into the read buffer it arrived in, so that
/// buffer can be reused only once the application has dropped the frame:
/// then the reader's next `reserve` reclaims the whole allocation in place
/// (reads go straight into memory that is already mapped, and the codec has
/// nothing to grow or copy). Without this a reader whose socket always has
/// more bytes keeps reading until tokio's budget runs out, while an
/// application on the same thread has not had a chance to take, let alone
/// drop, what was delivered: every large frame would then get a fresh
/// buffer, grown step by step (copies) and faulted in page by page. One
/// yield per 256 KiB costs little next to moving that many bytes, and also
/// bounds how far the reader runs ahead of such an application.
pub(crate) const YIELD_AFTER_BYTES: usize = 256 * 1024;

fn send_ping(handle: &ConnHandle, nonce: u64) {
    if let Ok(f) = handle.encode(&Frame::Ping { nonce }) {
        // A full queue means the peer has plenty to read already.
        let _ = handle.try_send(f);
    }
}

/// The tokio clock (paused in tests) as a std `Instant` for the sans-IO code.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Keeps one pinned `Sleep` on the heartbeat deadline, moving it only when
/// the deadline changes.
pub(crate) struct HeartbeatTimer {
    /// The deadline the sleep is set to, if any.
    armed: Option<std::time::Instant>,
}

impl HeartbeatTimer {
    pub(crate) fn new() -> Self {
        Self { armed: None }
    }

    /// Sets `sleep` to `deadline` unless it is set to it already; returns
    /// whether there is a deadline to wait for.
    pub(crate) fn arm(
        &mut self,
        sleep: std::pin::Pin<&mut tokio::time::Sleep>,
        deadline: Option<std::time::Instant>,
    ) -> bool {
        if let Some(d) = deadline {
            if self.armed != Some(d) {
                sleep.reset(d.into());
                self.armed = Some(d);
            }
        }
        deadline.is_some()
    }

    /// The sleep fired: set it again before the next wait, even to the same
    /// deadline.
    pub(crate) fn fired(&mut self) {
        self.armed = None;
    }
}

/// Most bytes gathered into one write; beyond this the writer writes and
/// comes back for more, so one connection cannot hog memory in a batch.
pub(crate) const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Frames whose parts are smaller than this are copied into one buffer (a
/// copy is cheaper than an extra iovec); larger payloads go as their own
/// slice, uncopied.
pub(crate) const COALESCE_BELOW: usize = 4 * 1024;

/// Drains the queue: everything waiting goes out in one (vectored) write,
/// and the stream is flushed only when the queue is empty.
///
/// Once the connection's token is cancelled the writer stops, even in the
/// middle of a write (a peer that does not read cannot hold up a close),
/// drops whatever is still queued, and ends with a `Close` frame where the
/// stream is still whole, then shuts its half down.
async fn write_loop<C: Conn>(
    core: &Core,
    handle: &ConnHandle,
    writer: &mut WriteHalf<C>,
    mut rx: mpsc::Receiver<EncodedFrame>,
) -> End {
    let counters = &core.counters;
    let mut batch: Vec<Bytes> = Vec::with_capacity(64);
    let mut scratch = BytesMut::new();
    let mut progress = Progress::new(handle, counters);
    // Whether the stream ends at a frame boundary, so a Close frame can
    // still follow.
    let mut whole = true;
    // One cancellation future for the whole loop (see `read_frames`).
    let cancelled = handle.closed.cancelled();
    tokio::pin!(cancelled);
    let end = loop {
        let first = tokio::select! {
            biased;
            () = &mut cancelled => break End::Local,
            f = rx.recv() => f,
        };
        // The handle keeps a sender alive, so the queue never ends by itself.
        let Some(first) = first else {
            break End::Local;
        };
        let mut next = Some(first);
        progress.start();
        while let Some(frame) = next.take() {
            progress.add(frame.len());
            let (header, payload) = frame.into_parts();
            scratch.extend_from_slice(&header);
            if payload.len() < COALESCE_BELOW {
                scratch.extend_from_slice(&payload);
            } else {
                batch.push(scratch.split().freeze());
                batch.push(payload);
            }
            if progress.total < MAX_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if !scratch.is_empty() {
            batch.push(scratch.split().freeze());
        }
        let io = async {
            write_all_vectored(&mut *writer, &mut batch, |n| progress.wrote(n)).await?;
            if rx.is_empty() {
                writer.flush().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let written = tokio::select! {
            biased;
            () = &mut cancelled => None,
            r = io => Some(r),
        };
        // Whatever of the batch is not written by now never will be.
        progress.give_up();
        core.progress.notify_waiters();
        match written {
            Some(Ok(())) => {}
            Some(Err(e)) => break End::Io(e),
            None => {
                // Abandoned in the middle of a write to a peer that does not
                // read: it may hold part of a frame, and would not read a
                // Close frame either.
                batch.clear();
                whole = false;
                break End::Local;
            }
        }
    };

    // What is still queued is not delivered (close() has reported it).
    rx.close();
    let (mut frames, mut bytes) = (0, 0);
    while let Ok(frame) = rx.try_recv() {
        frames += 1;
        bytes += frame.len();
    }
    handle.release(frames, bytes);
    core.progress.notify_waiters();

    if whole && !matches!(end, End::Io(_)) {
        if let Some(close) = handle.final_frame(core) {
            let len = close.len() as u64;
            let (header, payload) = close.into_parts();
            let goodbye = async {
                writer.write_all(&header).await?;
                writer.write_all(&payload).await?;
                writer.flush().await
            };
            if let Ok(Ok(())) = tokio::time::timeout(CLOSE_GRACE, goodbye).await {
                counters.bytes_sent.fetch_add(len, Relaxed);
            }
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, writer.shutdown()).await;
    end
}

/// How much of the batch being written is out: each frame leaves the
/// queue's accounting (and so a [`CloseReport`](crate::CloseReport)'s
/// undelivered count) as soon as its last byte is written.
struct Progress<'a> {
    handle: &'a ConnHandle,
    counters: &'a Counters,
    /// Where each frame of the batch ends, in bytes from the batch's start.
    ends: Vec<usize>,
    /// Frames of the batch completely written.
    done: usize,
    /// Bytes of the batch.
    total: usize,
    /// Bytes of the batch written.
    written: usize,
}

impl<'a> Progress<'a> {
    fn new(handle: &'a ConnHandle, counters: &'a Counters) -> Self {
        Self {
            handle,
            counters,
            ends: Vec::with_capacity(64),
            done: 0,
            total: 0,
            written: 0,
        }
    }

    fn start(&mut self) {
        self.ends.clear();
        self.done = 0;
        self.total = 0;
        self.written = 0;
    }

    fn add(&mut self, len: usize) {
        self.total += len;
        self.ends.push(self.total);
    }

    fn wrote(&mut self, n: usize) {
        self.written += n;
        self.counters.bytes_sent.fetch_add(n as u64, Relaxed);
        let first = self.done;
        while self
            .ends
            .get(self.done)
            .is_some_and(|&end| end <= self.written)
        {
            self.done += 1;
        }
        self.handle.queued_bytes.fetch_sub(n, Relaxed);
        self.handle
            .queued_frames
            .fetch_sub(self.done - first, Relaxed);
    }

    /// The batch is over: whatever was not written is dropped from the
    /// accounting, and senders waiting for room are told.
    fn give_up(&mut self) {
        let frames = self.ends.len() - self.done;
        let bytes = self.total - self.written;
        self.done = self.ends.len();
        self.written = self.total;
        self.handle.release(frames, bytes);
    }
}

/// Writes every buffer, in as few system calls as the stream allows,
/// reporting each write's byte count to `wrote`.
pub(crate) async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bufs: &mut Vec<Bytes>,
    mut wrote: impl FnMut(usize),
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
        wrote(n);
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
