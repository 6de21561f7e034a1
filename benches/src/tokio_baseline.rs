//! Plain tokio baselines: the practical limit of the machine.
//!
//! Frames are a 4-byte big-endian length, then the payload. Each experiment
//! connects one pair of sockets (TCP on 127.0.0.1 with `TCP_NODELAY`, or a
//! Unix socket in a temporary directory) and places the two ends as its
//! [`Shape`] says: in [`Shape::CurrentThread`] each end has its own OS
//! thread with a current-thread tokio runtime, as two single-threaded
//! processes would be; in [`Shape::MultiThread`] both ends are tasks on one
//! multi-thread runtime; in [`Shape::Processes`] (ping-pong, and the stream
//! at 64 B) the end that listens (the echo server, the stream's sender)
//! runs in a child process (see [`processes`]). Both ends are written the
//! way a careful hand-rolled protocol would be:
//!
//! - readers read into one `BytesMut` in large chunks, cut every whole frame
//!   out of it as a `Bytes` (no copy; what tokio-util's length-delimited
//!   codec hands out), and reserve exactly the rest of a partial frame;
//! - writers batch small frames into one buffer and write it once it holds
//!   64 KiB or the producer runs dry, and send frames of 16 KiB and more with
//!   one vectored write of header and payload, without copying.
//!
//! The rows:
//!
//! - [`PING_PONG`]: one 64 B request, wait for its echo, repeat; p50 and
//!   p99 of the round-trip time.
//! - [`PIPELINED`]: 512 B requests, up to 1024 unanswered at any time, the
//!   server echoing each; echoes received per second.
//! - [`STREAM`]: one-way frames as fast as the receiver takes them, at 64 B,
//!   1 KiB, 64 KiB and 1 MiB; frames and payload bytes received per second.

use std::future::Future;
use std::io::{self, IoSlice};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream, tcp, unix};
use tokio::sync::Semaphore;

use crate::error::BenchError;
use crate::measure::{Config, Experiment, Measurement, Metric, Shape, Suite, Transport, deadline};
use crate::placement::two_ends;
use crate::processes;
use crate::stats::{per_sec, rtt_percentiles};

/// Row name of the ping-pong round trip.
pub const PING_PONG: &str = "tokio ping-pong";
/// Row name of the pipelined echo.
pub const PIPELINED: &str = "tokio pipelined echo";
/// Row name of the one-way stream.
pub const STREAM: &str = "tokio stream";

/// Payload size of the ping-pong, in bytes.
pub const PING_PONG_SIZE: usize = 64;
/// Payload size of the pipelined echo, in bytes.
pub const PIPELINED_SIZE: usize = 512;
/// Payload sizes of the one-way stream, in bytes.
pub const STREAM_SIZES: [usize; 4] = [64, 1024, 64 * 1024, 1024 * 1024];
/// Transports the baselines run over.
pub const TRANSPORTS: [Transport; 2] = [Transport::Tcp, Transport::Ipc];
/// The shapes in which every row runs; [`Shape::Processes`] has only the
/// ping-pong and the stream at [`PROCESSES_STREAM_SIZE`].
pub const SHAPES: [Shape; 2] = [Shape::CurrentThread, Shape::MultiThread];
/// The stream's payload size in [`Shape::Processes`], in bytes.
pub const PROCESSES_STREAM_SIZE: usize = 64;

/// Bytes the readers ask the kernel for at least, per read.
pub(crate) const READ_CHUNK: usize = 256 * 1024;
/// The writers' batch buffer is written out once it holds this much.
const WRITE_BATCH: usize = 64 * 1024;
/// Frames at least this large are not copied into the batch buffer but
/// written with a vectored write.
const DIRECT_WRITE: usize = 16 * 1024;
/// Most frames the pipelined client writes in one batch.
const PIPELINE_BATCH: usize = 256;

/// Every tokio experiment, shape by shape ([`SHAPES`], then
/// [`Shape::Processes`]): ping-pong and pipelined echo on each transport,
/// then the stream at each size on each transport. Each name ends with its
/// shape in parentheses, such as `"tokio ping-pong tcp (multi-thread)"`.
pub fn experiments() -> Vec<Experiment> {
    let mut all = Vec::new();
    for shape in SHAPES {
        for t in TRANSPORTS {
            all.push(Experiment::new(
                format!("{PING_PONG} {t} ({shape})"),
                move |cfg| ping_pong(cfg, t, shape),
            ));
        }
        for t in TRANSPORTS {
            all.push(Experiment::new(
                format!("{PIPELINED} {t} ({shape})"),
                move |cfg| pipelined_echo(cfg, t, shape),
            ));
        }
        for t in TRANSPORTS {
            for size in STREAM_SIZES {
                all.push(Experiment::new(
                    format!("{STREAM} {t} {size} B ({shape})"),
                    move |cfg| stream(cfg, t, size, shape),
                ));
            }
        }
    }
    let shape = Shape::Processes;
    for t in TRANSPORTS {
        all.push(Experiment::new(
            format!("{PING_PONG} {t} ({shape})"),
            move |cfg| ping_pong(cfg, t, shape),
        ));
    }
    for t in TRANSPORTS {
        let size = PROCESSES_STREAM_SIZE;
        all.push(Experiment::new(
            format!("{STREAM} {t} {size} B ({shape})"),
            move |cfg| stream(cfg, t, size, shape),
        ));
    }
    all
}

/// Ping-pong round trips of [`PING_PONG_SIZE`] bytes: [`Metric::RttP50`]
/// and [`Metric::RttP99`].
///
/// # Errors
///
/// Socket errors, or a peer that stops answering (see [`BenchError`]).
pub fn ping_pong(
    cfg: &Config,
    transport: Transport,
    shape: Shape,
) -> Result<Vec<Measurement>, BenchError> {
    let rtts = match (transport, shape) {
        (Transport::Tcp | Transport::Ipc, Shape::Processes) => {
            match processes::tokio_ping_pong(cfg, transport)? {
                Some(rtts) => rtts,
                None => return Ok(Vec::new()),
            }
        }
        (Transport::Tcp, _) => ping_pong_on::<TcpStream>(cfg, shape)?,
        (Transport::Ipc, _) => ping_pong_on::<UnixStream>(cfg, shape)?,
        (other, _) => return Err(BenchError::Unsupported(other)),
    };
    if rtts.is_empty() {
        return Err(BenchError::Inconsistent("no round trip completed".into()));
    }
    let (p50, p99) = rtt_percentiles(&rtts);
    let m = |metric, v| {
        Measurement::new(
            Suite::Tokio,
            PING_PONG,
            transport,
            PING_PONG_SIZE,
            metric,
            v,
        )
        .on(shape)
    };
    Ok(vec![m(Metric::RttP50, p50), m(Metric::RttP99, p99)])
}

fn ping_pong_on<L: Link>(cfg: &Config, shape: Shape) -> Result<Vec<Duration>, BenchError> {
    let (count, warmup, limit) = (cfg.rtt_count, cfg.rtt_warmup(), cfg.time_limit);
    let (_, rtts) = two_sides::<L, _, _, _, _, _, _>(cfg, shape, echo_server, move |io| {
        ping_client(io, count, warmup, limit)
    })?;
    Ok(rtts)
}

/// Pipelined echo of [`PIPELINED_SIZE`] bytes with up to
/// `Config`'s 1024 requests in flight: [`Metric::MsgsPerSec`].
///
/// # Errors
///
/// Socket errors, a peer that stops answering, or a lost echo.
pub fn pipelined_echo(
    cfg: &Config,
    transport: Transport,
    shape: Shape,
) -> Result<Vec<Measurement>, BenchError> {
    let (received, elapsed) = match transport {
        Transport::Tcp => pipelined_on::<TcpStream>(cfg, shape)?,
        Transport::Ipc => pipelined_on::<UnixStream>(cfg, shape)?,
        other => return Err(BenchError::Unsupported(other)),
    };
    Ok(vec![
        Measurement::new(
            Suite::Tokio,
            PIPELINED,
            transport,
            PIPELINED_SIZE,
            Metric::MsgsPerSec,
            per_sec(received, elapsed),
        )
        .on(shape),
    ])
}

fn pipelined_on<L: Link>(cfg: &Config, shape: Shape) -> Result<(u64, Duration), BenchError> {
    let (count, in_flight, limit) = (cfg.pipelined_count, cfg.in_flight, cfg.time_limit);
    let (_, result) = two_sides::<L, _, _, _, _, _, _>(cfg, shape, echo_server, move |io| {
        pipelined_client(io, count, in_flight, limit)
    })?;
    Ok(result)
}

/// One-way stream of `size`-byte frames: [`Metric::MsgsPerSec`] and
/// [`Metric::BytesPerSec`] at the receiver. In [`Shape::Processes`] the
/// sender is a child process, and the window runs from the first frame
/// received to the last.
///
/// # Errors
///
/// Socket errors, a peer that stops, or a lost frame.
pub fn stream(
    cfg: &Config,
    transport: Transport,
    size: usize,
    shape: Shape,
) -> Result<Vec<Measurement>, BenchError> {
    let (received, elapsed) = match (transport, shape) {
        (Transport::Tcp | Transport::Ipc, Shape::Processes) => {
            match processes::tokio_stream(cfg, transport, size)? {
                Some(out) => out,
                None => return Ok(Vec::new()),
            }
        }
        (Transport::Tcp, _) => stream_on::<TcpStream>(cfg, size, shape)?,
        (Transport::Ipc, _) => stream_on::<UnixStream>(cfg, size, shape)?,
        (other, _) => return Err(BenchError::Unsupported(other)),
    };
    let rate = per_sec(received, elapsed);
    let m =
        |metric, v| Measurement::new(Suite::Tokio, STREAM, transport, size, metric, v).on(shape);
    Ok(vec![
        m(Metric::MsgsPerSec, rate),
        m(Metric::BytesPerSec, rate * size as f64),
    ])
}

fn stream_on<L: Link>(
    cfg: &Config,
    size: usize,
    shape: Shape,
) -> Result<(u64, Duration), BenchError> {
    let (count, limit) = (cfg.stream_count_for(size), cfg.time_limit);
    let ((received, _, end), (sent, start)) = two_sides::<L, _, _, _, _, _, _>(
        cfg,
        shape,
        move |io| stream_receiver(io, size),
        move |io| stream_sender(io, size, count, limit),
    )?;
    if received != sent {
        return Err(BenchError::Inconsistent(format!(
            "stream sent {sent} frames, received {received}"
        )));
    }
    Ok((received, end.saturating_duration_since(start)))
}

// ---------------------------------------------------------------------------
// The two ends.

/// Echo every whole frame back, in one write per read, until EOF; then
/// close the write side so the client's reader sees EOF too. Returns the
/// number of frames echoed.
pub(crate) async fn echo_server<L: Link>(mut io: L) -> Result<u64, BenchError> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut echoed = 0;
    loop {
        make_room(&mut buf);
        if io.read_buf(&mut buf).await? == 0 {
            break;
        }
        // Echo whole frames only; a partial one stays in `buf` until the
        // rest of it arrives. Everything that came in one read goes back in
        // one write, which is what makes pipelining pay off.
        let (bytes, frames) = whole_frames(&buf);
        if bytes > 0 {
            let out = buf.split_to(bytes);
            io.write_all(&out).await?;
            echoed += frames;
        }
    }
    io.shutdown().await?;
    Ok(echoed)
}

/// Send one frame, wait for its echo, record the time; `warmup` round
/// trips first are not recorded. Stops after `count` recorded round trips
/// or once `limit` has passed (with at least one recorded).
pub(crate) async fn ping_client<L: Link>(
    mut io: L,
    count: usize,
    warmup: usize,
    limit: Duration,
) -> Result<Vec<Duration>, BenchError> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let rtts = ping_round(&mut io, &mut buf, count, warmup, limit).await?;
    io.shutdown().await?;
    Ok(rtts)
}

/// The round trips of [`ping_client`] on a connection that stays open:
/// `warmup` unrecorded, then up to `count` recorded or until `limit` has
/// passed (with at least one recorded). `buf` is the connection's read
/// buffer, kept from round to round.
pub(crate) async fn ping_round<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    count: usize,
    warmup: usize,
    limit: Duration,
) -> Result<Vec<Duration>, BenchError> {
    let frame = frame_bytes(PING_PONG_SIZE);
    let mut rtts = Vec::with_capacity(count);
    let deadline = deadline(limit);
    let mut done = 0usize;
    while rtts.len() < count {
        let t0 = Instant::now();
        if t0 >= deadline && !rtts.is_empty() {
            break;
        }
        io.write_all(&frame).await?;
        let echo = read_frame(io, buf).await?;
        let rtt = t0.elapsed();
        if echo.len() != PING_PONG_SIZE {
            return Err(BenchError::Inconsistent("echo of the wrong size".into()));
        }
        if done >= warmup {
            rtts.push(rtt);
        }
        done += 1;
    }
    Ok(rtts)
}

/// Keep up to `in_flight` requests unanswered: a writer that sends as many
/// as it has credits for in one batch, and a reader that counts echoes and
/// hands their credits back. The writer stops after `count` requests or
/// `limit`, then closes its side; the reader runs until the server, having
/// echoed everything, closes too. Returns echoes received and the elapsed
/// time.
async fn pipelined_client<L: Link>(
    io: L,
    count: u64,
    in_flight: usize,
    limit: Duration,
) -> Result<(u64, Duration), BenchError> {
    let (mut rd, mut wr) = io.split();
    let credits = Arc::new(Semaphore::new(in_flight));
    let frame = frame_bytes(PIPELINED_SIZE);
    let start = Instant::now();
    let deadline = start + limit;

    let writer = {
        let credits = credits.clone();
        async move {
            let mut batch = BytesMut::with_capacity(PIPELINE_BATCH * frame.len());
            let mut sent = 0u64;
            while sent < count && Instant::now() < deadline {
                // Wait for one credit, then take whatever else is free
                // without waiting, up to a batch.
                let Ok(first) = credits.acquire().await else {
                    break;
                };
                first.forget();
                let left = usize::try_from(count - sent - 1).unwrap_or(usize::MAX);
                let extra = credits
                    .available_permits()
                    .min(PIPELINE_BATCH - 1)
                    .min(left);
                if extra > 0 {
                    if let Ok(more) = credits.try_acquire_many(extra as u32) {
                        more.forget();
                    }
                }
                let n = 1 + extra;
                batch.clear();
                for _ in 0..n {
                    batch.extend_from_slice(&frame);
                }
                wr.write_all(&batch).await?;
                sent += n as u64;
            }
            wr.shutdown().await?;
            Ok::<u64, BenchError>(sent)
        }
    };
    let reader = async move {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut received = 0u64;
        loop {
            make_room(&mut buf);
            if rd.read_buf(&mut buf).await? == 0 {
                break;
            }
            let mut n = 0;
            while let Some(echo) = next_frame(&mut buf) {
                std::hint::black_box(echo);
                n += 1;
            }
            credits.add_permits(n);
            received += n as u64;
        }
        Ok::<(u64, Instant), BenchError>((received, Instant::now()))
    };
    let (sent, (received, end)) = tokio::try_join!(writer, reader)?;
    if sent != received {
        return Err(BenchError::Inconsistent(format!(
            "pipelined sent {sent} requests, got {received} echoes"
        )));
    }
    Ok((received, end.duration_since(start)))
}

/// Send `size`-byte frames until `count` are sent or `limit` has passed,
/// then close. Returns the number sent and when sending started.
pub(crate) async fn stream_sender<L: Link>(
    io: L,
    size: usize,
    count: u64,
    limit: Duration,
) -> Result<(u64, Instant), BenchError> {
    let payload = Bytes::from(vec![0xA5; size]);
    let mut out = FrameWriter::new(io);
    // Reading the clock costs about as much as queueing a small frame, so
    // small frames look at it once every 64.
    let check_every = if size >= DIRECT_WRITE { 1 } else { 64 };
    let start = Instant::now();
    let deadline = start + limit;
    let mut sent = 0u64;
    while sent < count {
        if sent % check_every == 0 && Instant::now() >= deadline {
            break;
        }
        out.send(&payload).await?;
        sent += 1;
    }
    out.finish().await?;
    Ok((sent, start))
}

/// Cut frames out of the stream until EOF, checking their size. Returns
/// the number received, when the first read with data returned, and when
/// the last frame was received.
pub(crate) async fn stream_receiver<L: Link>(
    mut io: L,
    size: usize,
) -> Result<(u64, Option<Instant>, Instant), BenchError> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut received = 0u64;
    let mut first = None;
    loop {
        make_room(&mut buf);
        if io.read_buf(&mut buf).await? == 0 {
            break;
        }
        if first.is_none() {
            first = Some(Instant::now());
        }
        while let Some(frame) = next_frame(&mut buf) {
            if frame.len() != size {
                return Err(BenchError::Inconsistent("frame of the wrong size".into()));
            }
            std::hint::black_box(frame);
            received += 1;
        }
    }
    Ok((received, first, Instant::now()))
}

// ---------------------------------------------------------------------------
// Framing.

/// A 4-byte big-endian length followed by `size` bytes of payload.
fn frame_bytes(size: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(4 + size);
    f.extend_from_slice(&frame_len(size).to_be_bytes());
    f.resize(4 + size, 0xA5);
    f
}

fn frame_len(size: usize) -> u32 {
    u32::try_from(size).expect("benchmark frames are far below 4 GiB")
}

/// The payload length announced by the header at the front of `buf`.
fn peek_len(buf: &[u8]) -> Option<usize> {
    let header: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(header) as usize)
}

/// Take the first whole frame's payload off `buf`, if it is all there.
/// The payload is a view of the read buffer, not a copy.
fn next_frame(buf: &mut BytesMut) -> Option<Bytes> {
    let len = peek_len(buf)?;
    if buf.len() < 4 + len {
        return None;
    }
    buf.advance(4);
    Some(buf.split_to(len).freeze())
}

/// Length in bytes, and count, of the whole frames at the front of `buf`.
fn whole_frames(buf: &[u8]) -> (usize, u64) {
    let (mut at, mut frames) = (0, 0);
    while let Some(len) = peek_len(&buf[at..]) {
        if buf.len() - at < 4 + len {
            break;
        }
        at += 4 + len;
        frames += 1;
    }
    (at, frames)
}

/// Make sure the next read has room for the rest of a partial frame at the
/// front of `buf`, and for at least [`READ_CHUNK`] bytes. Once the frames
/// cut out of the buffer earlier have been dropped, `reserve` reuses the
/// same allocation (moving the partial frame to its start) instead of
/// growing it.
fn make_room(buf: &mut BytesMut) {
    let missing = peek_len(buf).map_or(0, |len| (4 + len).saturating_sub(buf.len()));
    buf.reserve(missing.max(READ_CHUNK));
}

/// Read until one whole frame is in `buf` and return its payload.
async fn read_frame<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
) -> Result<Bytes, BenchError> {
    loop {
        if let Some(frame) = next_frame(buf) {
            return Ok(frame);
        }
        make_room(buf);
        if io.read_buf(buf).await? == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
    }
}

/// Batching frame writer: small frames are copied into one buffer that is
/// written when it reaches [`WRITE_BATCH`] bytes or on
/// [`finish`](Self::finish); large ones go out with whatever is buffered in
/// one vectored write, header and payload uncopied.
struct FrameWriter<W> {
    io: W,
    buf: BytesMut,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    fn new(io: W) -> Self {
        FrameWriter {
            io,
            buf: BytesMut::with_capacity(2 * WRITE_BATCH),
        }
    }

    async fn send(&mut self, payload: &Bytes) -> io::Result<()> {
        let header = frame_len(payload.len()).to_be_bytes();
        if payload.len() >= DIRECT_WRITE {
            let mut slices = [
                IoSlice::new(&self.buf),
                IoSlice::new(&header),
                IoSlice::new(payload),
            ];
            write_all_vectored(&mut self.io, &mut slices).await?;
            self.buf.clear();
        } else {
            self.buf.extend_from_slice(&header);
            self.buf.extend_from_slice(payload);
            if self.buf.len() >= WRITE_BATCH {
                self.io.write_all(&self.buf).await?;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Write what is buffered and close the write side.
    async fn finish(mut self) -> io::Result<()> {
        self.io.write_all(&self.buf).await?;
        self.io.shutdown().await
    }
}

/// Write every byte of `slices`, in as few vectored writes as the socket
/// allows.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    io: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n = io.write_vectored(slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The two ends' sockets and their placement.

/// A tokio stream type the baselines run over, and how to get a connected
/// pair of them, or to listen and connect across processes.
pub(crate) trait Link: AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static {
    /// The std socket, which (unlike the tokio one) can cross threads
    /// before a runtime exists.
    type Std: Send + 'static;
    /// The std listener.
    type Listener: Send + 'static;
    /// The read half of [`Link::split`].
    type Read: AsyncRead + Unpin + Send;
    /// The write half of [`Link::split`].
    type Write: AsyncWrite + Unpin + Send;

    /// A connected pair, `(server, client)`, using `dir` for any socket
    /// file.
    fn std_pair(dir: &Path) -> io::Result<(Self::Std, Self::Std)>;
    /// A listener on loopback (TCP, port chosen by the OS) or in `dir`
    /// (Unix), and the address to give [`Link::std_connect`].
    fn std_listen(dir: &Path) -> io::Result<(Self::Listener, String)>;
    /// Accept one connection (blocking), set up as in [`Link::std_pair`].
    fn std_accept(listener: &Self::Listener) -> io::Result<Self::Std>;
    /// Connect to `addr` from [`Link::std_listen`] (blocking), set up as in
    /// [`Link::std_pair`].
    fn std_connect(addr: &str) -> io::Result<Self::Std>;
    /// Register with the current runtime.
    fn from_std(s: Self::Std) -> io::Result<Self>;
    /// Owned read and write halves.
    fn split(self) -> (Self::Read, Self::Write);
}

impl Link for TcpStream {
    type Std = std::net::TcpStream;
    type Listener = std::net::TcpListener;
    type Read = tcp::OwnedReadHalf;
    type Write = tcp::OwnedWriteHalf;

    fn std_pair(dir: &Path) -> io::Result<(Self::Std, Self::Std)> {
        let (listener, addr) = Self::std_listen(dir)?;
        let client = Self::std_connect(&addr)?;
        let server = Self::std_accept(&listener)?;
        Ok((server, client))
    }

    fn std_listen(_dir: &Path) -> io::Result<(Self::Listener, String)> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        Ok((listener, addr))
    }

    fn std_accept(listener: &Self::Listener) -> io::Result<Self::Std> {
        let (s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        Ok(s)
    }

    fn std_connect(addr: &str) -> io::Result<Self::Std> {
        let s = std::net::TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        Ok(s)
    }

    fn from_std(s: Self::Std) -> io::Result<Self> {
        TcpStream::from_std(s)
    }

    fn split(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl Link for UnixStream {
    type Std = std::os::unix::net::UnixStream;
    type Listener = std::os::unix::net::UnixListener;
    type Read = unix::OwnedReadHalf;
    type Write = unix::OwnedWriteHalf;

    fn std_pair(dir: &Path) -> io::Result<(Self::Std, Self::Std)> {
        let (listener, addr) = Self::std_listen(dir)?;
        let client = Self::std_connect(&addr)?;
        let server = Self::std_accept(&listener)?;
        drop(listener);
        std::fs::remove_file(&addr)?;
        Ok((server, client))
    }

    fn std_listen(dir: &Path) -> io::Result<(Self::Listener, String)> {
        let path = dir.join("tokio.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        Ok((listener, path.display().to_string()))
    }

    fn std_accept(listener: &Self::Listener) -> io::Result<Self::Std> {
        let (s, _) = listener.accept()?;
        s.set_nonblocking(true)?;
        Ok(s)
    }

    fn std_connect(addr: &str) -> io::Result<Self::Std> {
        let s = std::os::unix::net::UnixStream::connect(addr)?;
        s.set_nonblocking(true)?;
        Ok(s)
    }

    fn from_std(s: Self::Std) -> io::Result<Self> {
        UnixStream::from_std(s)
    }

    fn split(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

/// Connect a pair of `L`, run `server` on one end and `client` on the
/// other, placed as `shape` says (see [`two_ends`]), and return both
/// results. Each side is cut off after the config's hard limit; when one
/// side fails, its socket closes, so the other ends too.
fn two_sides<L, S, SF, A, C, CF, B>(
    cfg: &Config,
    shape: Shape,
    server: S,
    client: C,
) -> Result<(A, B), BenchError>
where
    L: Link,
    S: FnOnce(L) -> SF + Send + 'static,
    SF: Future<Output = Result<A, BenchError>> + Send,
    A: Send + 'static,
    C: FnOnce(L) -> CF + Send + 'static,
    CF: Future<Output = Result<B, BenchError>> + Send,
    B: Send + 'static,
{
    let dir = tempfile::Builder::new().prefix("msg-bench").tempdir()?;
    let (server_end, client_end) = L::std_pair(dir.path())?;
    two_ends(
        shape,
        cfg.hard_limit(),
        "tokio baseline peer",
        async move { server(L::from_std(server_end)?).await },
        async move { client(L::from_std(client_end)?).await },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_whole_and_partial_ones_wait() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&frame_bytes(3));
        buf.extend_from_slice(&frame_bytes(5)[..6]);
        assert_eq!(whole_frames(&buf), (7, 1));
        assert_eq!(next_frame(&mut buf).map(|f| f.len()), Some(3));
        assert_eq!(next_frame(&mut buf), None);
        make_room(&mut buf);
        assert!(buf.capacity() - buf.len() >= READ_CHUNK);
        assert_eq!(buf.len(), 6);
    }
}
