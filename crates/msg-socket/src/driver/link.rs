//! One connection of a socket whose pattern is a [`Protocol`], after its
//! handshake: a thin task that reads, feeds the protocol and writes what
//! the protocol queued.
//!
//! The task runs a reader and a writer side by side:
//!
//! - the reader decodes every whole frame in its buffer, answers pings,
//!   and feeds the rest to the protocol under one lock per read (not one
//!   per frame). When the protocol holds the connection back
//!   ([`Protocol::can_read`]) it stops reading until told to go on, while
//!   heartbeats keep going out;
//! - the writer takes the connection's queue from the protocol a batch at
//!   a time, writes it with one vectored write, and flushes when the queue
//!   is empty. With nothing queued it parks until the protocol queues a
//!   frame.
//!
//! Whichever ends first ends the connection, as in the pattern-callback
//! driver (`conn.rs`): the reader on EOF, a `Close` frame, a protocol
//! violation or a heartbeat timeout; the writer on an I/O error; both when
//! the socket shuts down or the protocol asks for the connection to close.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::{Bytes, BytesMut};
use msg_transport::Conn;
use msg_wire::{EncodedFrame, Frame, FrameCodec, Reason, WireError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tracing::Instrument;

use crate::driver::conn::{
    CLOSE_GRACE, COALESCE_BELOW, End, HeartbeatTimer, MAX_BATCH_BYTES, MAX_CLOSE_TEXT_CHARS,
    PeerInfo, YIELD_AFTER_BYTES, report_end, write_all_vectored,
};
use crate::driver::core::Core;
use crate::driver::shared::{Link, Shared, now};
use crate::message::MAX_PARTS;
use crate::monitor::SocketEvent;
use crate::proto::Protocol;
use crate::proto::conns::ConnId;
use crate::proto::heartbeat::{Heartbeat, HeartbeatAction};

/// Most frames fed to the protocol under one lock.
const FEED_BATCH: usize = 256;

/// Runs an established connection until it ends. `buf` holds bytes read
/// after the handshake.
///
/// Gives the connection back, its write half shut down, for the caller to
/// drop or to close with its transport.
pub(crate) async fn run<P: Protocol, C: Conn>(
    shared: Arc<Shared<P>>,
    conn: C,
    peer: PeerInfo,
    buf: BytesMut,
) -> C {
    let span = tracing::debug_span!("conn", peer = %peer.addr, id = peer.conn_id);
    run_link(shared, conn, peer, buf).instrument(span).await
}

async fn run_link<P: Protocol, C: Conn>(
    shared: Arc<Shared<P>>,
    conn: C,
    peer: PeerInfo,
    buf: BytesMut,
) -> C {
    let core = shared.core.clone();
    let peer = Arc::new(peer);
    let id = peer.conn_id;
    let addr = peer.addr.clone();
    let link = Arc::new(Link::new(core.cancel.child_token()));

    // A connection refused as it comes up (an identity another principal
    // holds) was reported as such, and is never up: no Connected, no
    // Disconnected, not among the peers.
    let refused = shared.conn_up(peer.clone(), link.clone());
    if !refused {
        core.counters.active_peers.fetch_add(1, Relaxed);
        core.progress.notify_waiters();
        core.emit(SocketEvent::Connected {
            peer: addr.clone(),
            identity: peer.identity.clone(),
        });
        tracing::debug!(peer = %addr, identity = ?peer.identity, "connected");
    }

    let (mut reader, mut writer) = tokio::io::split(conn);
    let end = {
        let read = read_loop(&shared, &link, id, &mut reader, buf);
        let write = write_loop(&shared, &link, id, &mut writer);
        tokio::pin!(read, write);
        tokio::select! {
            end = &mut read => {
                shared.conn_closing(id);
                // The reader cancelled the link: the writer drops the queue,
                // sends the Close frame if there is one, and shuts down. It
                // takes longer only with a peer that does not read.
                let _ = tokio::time::timeout(CLOSE_GRACE, &mut write).await;
                end
            }
            end = &mut write => {
                shared.conn_closing(id);
                end
            }
        }
    };
    let conn = reader.unsplit(writer);
    link.closed.cancel();
    if !refused {
        core.counters.active_peers.fetch_sub(1, Relaxed);
    }
    shared.conn_down(id);
    core.progress.notify_waiters();
    if refused {
        tracing::debug!(peer = %addr, "refused as it came up: identity in use");
    } else {
        report_end(&core, addr, &end);
    }
    conn
}

/// Runs the reader until the connection should end, then records why for
/// the writer's `Close` frame and tells the writer to finish.
async fn read_loop<P: Protocol, C: Conn>(
    shared: &Shared<P>,
    link: &Link,
    id: ConnId,
    reader: &mut ReadHalf<C>,
    buf: BytesMut,
) -> End {
    let end = read_frames(shared, link, id, reader, buf).await;
    match &end {
        End::Protocol(code, text) => link.close(*code, text.clone()),
        End::Silent => link.close(Reason::ProtocolError, "heartbeat timeout".to_owned()),
        _ => link.closed.cancel(),
    }
    end
}

/// Reads frames, answers heartbeats and feeds everything else to the
/// protocol, until the connection should end.
async fn read_frames<P: Protocol, C: Conn>(
    shared: &Shared<P>,
    link: &Link,
    id: ConnId,
    reader: &mut ReadHalf<C>,
    mut buf: BytesMut,
) -> End {
    let core = &*shared.core;
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
    // connection (see `conn.rs`).
    let cancelled = link.closed.cancelled();
    tokio::pin!(cancelled);
    let mut timer = HeartbeatTimer::new();
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    let mut since_yield = 0usize;
    // Frames decoded and not yet taken by the protocol (held back while it
    // applies backpressure), each with the earlier parts of its message,
    // and why the reader stops once they are.
    let mut batch: VecDeque<(Frame, Vec<Bytes>)> = VecDeque::new();
    let mut stop: Option<End> = None;
    // The parts of a multipart message whose last part is still to come.
    let mut parts = Parts::new(opts.wire.get_max_frame_size());

    loop {
        // Every whole frame already buffered, up to a batch.
        let mut full = false;
        while stop.is_none() {
            if batch.len() >= FEED_BATCH {
                full = true;
                break;
            }
            match codec.decode(&mut buf) {
                Ok(Some(Frame::Pong { .. })) => {}
                Ok(Some(Frame::Close { code, text })) => {
                    stop = Some(End::PeerClosed(format!("peer closed ({code}): {text}")));
                }
                Ok(Some(Frame::Part { payload })) => {
                    since_yield = since_yield.saturating_add(payload.len());
                    if let Err(e) = parts.push(payload) {
                        stop = Some(End::Protocol(e.reason(), e.to_string()));
                    }
                }
                Ok(Some(frame @ Frame::Ping { .. })) => batch.push_back((frame, Vec::new())),
                Ok(Some(frame)) => {
                    let len = frame.payload().map_or(0, Bytes::len);
                    since_yield = since_yield.saturating_add(len);
                    match parts.finish(len) {
                        Ok(head) => batch.push_back((frame, head)),
                        Err(e) => stop = Some(End::Protocol(e.reason(), e.to_string())),
                    }
                }
                Ok(None) => break,
                // Malformed, oversized (known from the header alone, before
                // any body is buffered) or a decompression bomb: this peer
                // is done.
                Err(e) => stop = Some(End::Protocol(e.reason(), e.to_string())),
            }
        }
        let may_read = match feed(shared, id, &mut batch) {
            Ok(may_read) => may_read,
            Err((code, text)) => return End::Protocol(code, text.to_owned()),
        };
        if !may_read {
            // Held back by the pattern (backpressure). Keep pinging so the
            // peer knows we are alive, but do not judge the peer: we are
            // not reading what it sends.
            loop {
                let deadline = heartbeat.as_ref().map(Heartbeat::poll_timeout);
                let armed = timer.arm(sleep.as_mut(), deadline);
                tokio::select! {
                    biased;
                    () = &mut cancelled => return End::Local,
                    () = link.read.notified() => {
                        let next = batch.front().map(frame_len);
                        if shared.with_state(|state| state.may_read(id, next)) {
                            break;
                        }
                    }
                    () = &mut sleep, if armed => {
                        timer.fired();
                        heartbeat_fired(shared, id, heartbeat.as_mut(), false);
                    }
                }
            }
            // Feed what was held back before anything else.
            continue;
        }
        if let Some(end) = stop {
            return end;
        }
        if full {
            // More whole frames may be buffered; decode them before reading.
            continue;
        }
        if since_yield >= YIELD_AFTER_BYTES {
            // Let the application take what we delivered before reading on
            // (see `YIELD_AFTER_BYTES`).
            since_yield = 0;
            tokio::task::yield_now().await;
        }
        // Reading: the codec makes room for a frame whose header it has
        // seen; reserve only when there is no room at all (see `conn.rs`).
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
                if heartbeat_fired(shared, id, heartbeat.as_mut(), true) {
                    return End::Silent;
                }
            }
        }
    }
}

/// Feeds `batch` to the protocol under one lock, answering pings, for as
/// long as the protocol takes frames from this connection; what it does not
/// take stays in `batch`. Returns whether the reader may read on, or the
/// violation that ends the connection.
fn feed<P: Protocol>(
    shared: &Shared<P>,
    id: ConnId,
    batch: &mut VecDeque<(Frame, Vec<Bytes>)>,
) -> Result<bool, (Reason, &'static str)> {
    let core = &shared.core;
    let compression = core.opts.wire.get_compression();
    shared.with_state(|state| {
        let now = now();
        loop {
            let next = batch.front().map(frame_len);
            if !state.may_read(id, next) {
                return Ok(false);
            }
            let Some((frame, head)) = batch.pop_front() else {
                return Ok(true);
            };
            if !head.is_empty() {
                state.proto.handle_message(now, id, head, frame)?;
                continue;
            }
            match frame {
                Frame::Ping { nonce } => {
                    // A full queue means traffic is flowing anyway: a peer
                    // that pings without reading cannot grow the queue.
                    let conns = state.proto.conns_mut();
                    if let Ok(pong) = core.codec.encode_parts(&Frame::Pong { nonce }, compression) {
                        if conns.has_room(id, pong.len()) {
                            conns.push(id, pong);
                        }
                    }
                }
                frame => state.proto.handle_frame(now, id, frame)?,
            }
        }
    })
}

/// A message's payload bytes (its last frame and the parts before it), as
/// the protocol counts them against its marks.
fn frame_len((frame, head): &(Frame, Vec<Bytes>)) -> usize {
    head.iter().map(Bytes::len).sum::<usize>() + frame.payload().map_or(0, Bytes::len)
}

/// Parts shorter than this are copied out of the read buffer, so that a
/// message of many small parts cannot pin many buffers.
const COPY_PARTS_BELOW: usize = 4096;

/// The earlier parts of a multipart message on one connection, until its
/// last part completes it. Bounded: at most [`MAX_PARTS`] parts, of at most
/// `max_frame_size` bytes together.
struct Parts {
    head: Vec<Bytes>,
    size: usize,
    max: usize,
}

impl Parts {
    fn new(max: usize) -> Self {
        Self {
            head: Vec::new(),
            size: 0,
            max,
        }
    }

    /// One more part, not the last.
    fn push(&mut self, part: Bytes) -> Result<(), WireError> {
        // Room for the last part too.
        if self.head.len() + 2 > MAX_PARTS {
            return Err(WireError::TooManyParts {
                parts: MAX_PARTS + 1,
                max: MAX_PARTS,
            });
        }
        self.grow(part.len())?;
        let part = if part.len() < COPY_PARTS_BELOW {
            Bytes::copy_from_slice(&part)
        } else {
            part
        };
        self.head.push(part);
        Ok(())
    }

    /// The last part, of `len` bytes, came: the earlier ones, for the
    /// protocol (none for a one-part message).
    fn finish(&mut self, len: usize) -> Result<Vec<Bytes>, WireError> {
        if self.head.is_empty() {
            return Ok(Vec::new());
        }
        self.grow(len)?;
        self.size = 0;
        Ok(std::mem::take(&mut self.head))
    }

    fn grow(&mut self, len: usize) -> Result<(), WireError> {
        let size = self.size.saturating_add(len);
        if size > self.max {
            return Err(WireError::FrameTooLarge {
                len: size as u64,
                max: self.max,
            });
        }
        self.size = size;
        Ok(())
    }
}

/// The heartbeat timer fired: pings the peer when a ping is due, and
/// returns whether the peer has been silent past the timeout. While the
/// pattern holds the reader back (`judging` false) the peer is not judged:
/// we are not reading what it sends, so its silence restarts the clock.
fn heartbeat_fired<P: Protocol>(
    shared: &Shared<P>,
    id: ConnId,
    heartbeat: Option<&mut Heartbeat>,
    judging: bool,
) -> bool {
    let Some(hb) = heartbeat else {
        return false;
    };
    let now = now();
    match hb.handle_timeout(now) {
        Some(HeartbeatAction::Ping(nonce)) => send_control(shared, id, &Frame::Ping { nonce }),
        Some(HeartbeatAction::Dead) if judging => return true,
        Some(HeartbeatAction::Dead) => hb.handle_recv(now),
        None => {}
    }
    false
}

/// Queues a heartbeat frame unless the queue is full (a full queue means
/// the peer has plenty to read already).
fn send_control<P: Protocol>(shared: &Shared<P>, id: ConnId, frame: &Frame) {
    let core = &shared.core;
    if let Ok(encoded) = core
        .codec
        .encode_parts(frame, core.opts.wire.get_compression())
    {
        shared.with(|proto| {
            let conns = proto.conns_mut();
            if conns.has_room(id, encoded.len()) {
                conns.push(id, encoded);
            }
        });
    }
}

/// Takes batches from the protocol and writes them: everything queued goes
/// out in one (vectored) write, and the stream is flushed only when the
/// queue is empty.
///
/// Once the link is cancelled the writer stops, even in the middle of a
/// write (a peer that does not read cannot hold up a close), and ends with
/// a `Close` frame where the stream is still whole, then shuts its half
/// down.
async fn write_loop<P: Protocol, C: Conn>(
    shared: &Shared<P>,
    link: &Link,
    id: ConnId,
    writer: &mut WriteHalf<C>,
) -> End {
    let core = &*shared.core;
    let counters = &core.counters;
    let mut frames: Vec<EncodedFrame> = Vec::with_capacity(64);
    let mut batch: Vec<Bytes> = Vec::with_capacity(64);
    let mut scratch = BytesMut::new();
    // Where each frame of the batch ends, in bytes from its start.
    let mut ends: Vec<usize> = Vec::with_capacity(64);
    // Whether the stream ends at a frame boundary, so a Close frame can
    // still follow.
    let mut whole = true;
    let cancelled = link.closed.cancelled();
    tokio::pin!(cancelled);
    let end = loop {
        if !shared.take_batch(id, &mut frames, MAX_BATCH_BYTES) {
            tokio::select! {
                biased;
                () = &mut cancelled => break End::Local,
                () = link.write.notified() => continue,
            }
        }
        ends.clear();
        let mut total = 0;
        for frame in frames.drain(..) {
            total += frame.len();
            ends.push(total);
            let (header, payload) = frame.into_parts();
            scratch.extend_from_slice(&header);
            if payload.len() < COALESCE_BELOW {
                scratch.extend_from_slice(&payload);
            } else {
                batch.push(scratch.split().freeze());
                batch.push(payload);
            }
        }
        if !scratch.is_empty() {
            batch.push(scratch.split().freeze());
        }
        let mut written = 0;
        let io = write_all_vectored(&mut *writer, &mut batch, |n| {
            written += n;
            counters.bytes_sent.fetch_add(n as u64, Relaxed);
        });
        let result = tokio::select! {
            biased;
            () = &mut cancelled => None,
            r = io => Some(r),
        };
        let count = ends.len();
        let (more, failed) = match result {
            Some(Ok(())) => (shared.written(id, count, total, (0, 0)), None),
            Some(Err(e)) => {
                shared.written(id, count, total, (0, 0));
                (false, Some(End::Io(e)))
            }
            None => {
                // Abandoned in the middle of a write to a peer that does not
                // read: it may hold part of a frame, and would not read a
                // Close frame either.
                batch.clear();
                whole = false;
                let done = ends.iter().take_while(|&&e| e <= written).count();
                let lost = if core.is_closing() {
                    (count - done, total - written)
                } else {
                    (0, 0)
                };
                shared.written(id, count, total, lost);
                (false, Some(End::Local))
            }
        };
        if let Some(end) = failed {
            break end;
        }
        if !more {
            let flushed = tokio::select! {
                biased;
                () = &mut cancelled => break End::Local,
                r = writer.flush() => r,
            };
            if let Err(e) = flushed {
                break End::Io(e);
            }
        }
    };

    if whole && !matches!(end, End::Io(_)) {
        if let Some(close) = final_frame(core, link) {
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

/// The `Close` frame to end with: the reason this side closed for, or a
/// shutdown notice when the socket is closing; none when the peer left
/// first.
fn final_frame(core: &Core, link: &Link) -> Option<EncodedFrame> {
    let (code, text) = link.take_reason().or_else(|| {
        core.is_closing()
            .then(|| (Reason::Shutdown, "socket closing".to_owned()))
    })?;
    let text: String = text.chars().take(MAX_CLOSE_TEXT_CHARS).collect();
    core.codec
        .encode_parts(
            &Frame::Close { code, text },
            core.opts.wire.get_compression(),
        )
        .ok()
}
