//! Fault injection for tests: delays, short reads and writes, injected errors and
//! connections cut after a number of bytes.
//!
//! Wrap a whole transport in [`Faulty`] (every connection it makes or accepts gets the
//! faults), or a single connection in [`FaultyConn`]. Faults configured up front live in
//! [`FaultOptions`]; faults injected while a test runs go through a [`FaultHandle`].

use std::future::Future as _;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::{Conn, Endpoint, Listener, PeerAddr, PeerCertificates, Transport, TransportError};

/// Which faults a [`FaultyConn`] injects. Everything is off by default.
///
/// ```
/// use std::time::Duration;
/// use msg_transport::FaultOptions;
///
/// let mut options = FaultOptions::new();
/// options
///     .delay(Duration::from_millis(5))
///     .max_write_chunk(7)
///     .cut_at_random(0..64 * 1024, 42);
/// ```
#[derive(Clone, Debug, Default)]
pub struct FaultOptions {
    read_delay: Duration,
    write_delay: Duration,
    cut_after_read: Option<u64>,
    cut_after_written: Option<u64>,
    cut_after_total: Option<u64>,
    random_cut: Option<(Range<u64>, u64)>,
    max_read_chunk: Option<usize>,
    max_write_chunk: Option<usize>,
}

impl FaultOptions {
    /// No faults.
    pub fn new() -> Self {
        FaultOptions::default()
    }

    /// Sleeps this long (with [`tokio::time::sleep`], so paused test time applies)
    /// before each read. Default: zero.
    pub fn read_delay(&mut self, delay: Duration) -> &mut Self {
        self.read_delay = delay;
        self
    }

    /// Sleeps this long before each write. Default: zero.
    pub fn write_delay(&mut self, delay: Duration) -> &mut Self {
        self.write_delay = delay;
        self
    }

    /// Sets both the read and the write delay.
    pub fn delay(&mut self, delay: Duration) -> &mut Self {
        self.read_delay(delay).write_delay(delay)
    }

    /// Cuts the connection once `bytes` have been read. Default: never.
    ///
    /// A cut delivers bytes up to the limit exactly, then drops the wrapped connection
    /// (so the peer sees it close) and fails every later read and write with
    /// [`io::ErrorKind::ConnectionReset`].
    pub fn cut_after_read(&mut self, bytes: u64) -> &mut Self {
        self.cut_after_read = Some(bytes);
        self
    }

    /// Cuts the connection once `bytes` have been written. Default: never.
    pub fn cut_after_written(&mut self, bytes: u64) -> &mut Self {
        self.cut_after_written = Some(bytes);
        self
    }

    /// Cuts the connection once `bytes` have been read and written together.
    /// Default: never.
    pub fn cut_after_total(&mut self, bytes: u64) -> &mut Self {
        self.cut_after_total = Some(bytes);
        self
    }

    /// Cuts each connection after a pseudo-random number of bytes (read and written
    /// together) drawn from `range`.
    ///
    /// The draws are deterministic: the n-th connection of a [`Faulty`] transport (or a
    /// [`FaultyConn`] made with index n) gets the same offset for the same `seed` on
    /// every run, so a failing seed can be replayed. [`FaultHandle::cut_offset`] tells
    /// the offset drawn. Combined with [`cut_after_total`](Self::cut_after_total), the
    /// smaller limit wins. An empty range means its start. Default: off.
    pub fn cut_at_random(&mut self, range: Range<u64>, seed: u64) -> &mut Self {
        self.random_cut = Some((range, seed));
        self
    }

    /// Returns at most `bytes` from each read, however many are available: short
    /// reads. Default: no limit. Zero is treated as one.
    pub fn max_read_chunk(&mut self, bytes: usize) -> &mut Self {
        self.max_read_chunk = Some(bytes.max(1));
        self
    }

    /// Accepts at most `bytes` in each write: short writes. Default: no limit. Zero is
    /// treated as one.
    pub fn max_write_chunk(&mut self, bytes: usize) -> &mut Self {
        self.max_write_chunk = Some(bytes.max(1));
        self
    }

    /// The total-bytes cut offset for connection number `index`.
    fn total_limit(&self, index: u64) -> Option<u64> {
        let random = self.random_cut.as_ref().map(|(range, seed)| {
            let span = range.end.saturating_sub(range.start);
            if span == 0 {
                range.start
            } else {
                range.start + random_u64(*seed, index) % span
            }
        });
        match (self.cut_after_total, random) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A deterministic pseudo-random number for (`seed`, `index`): SplitMix64 to spread
/// the inputs, then one xorshift64* step. Statistical quality is beside the point;
/// reproducibility is not.
fn random_u64(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let mut x = (z ^ (z >> 31)) | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// One direction of a connection: reads or writes.
#[derive(Clone, Copy, Debug)]
enum Dir {
    Read,
    Write,
}

/// What a [`FaultHandle`] and its connection share about one direction.
#[derive(Debug, Default)]
struct Side {
    /// Bytes that went through.
    bytes: AtomicU64,
    /// An error to fail the next call with, once.
    fail: Mutex<Option<io::ErrorKind>>,
    /// The call waiting in this direction, woken by injections.
    waker: AtomicWaker,
}

#[derive(Debug, Default)]
struct Shared {
    read: Side,
    write: Side,
    cut: AtomicBool,
    cut_offset: Option<u64>,
}

impl Shared {
    fn side(&self, dir: Dir) -> &Side {
        match dir {
            Dir::Read => &self.read,
            Dir::Write => &self.write,
        }
    }

    fn wake(&self) {
        self.read.waker.wake();
        self.write.waker.wake();
    }

    fn inject(&self, dir: Dir, kind: io::ErrorKind) {
        let side = self.side(dir);
        *side.fail.lock().unwrap_or_else(|p| p.into_inner()) = Some(kind);
        side.waker.wake();
    }
}

fn take(slot: &Mutex<Option<io::ErrorKind>>) -> Option<io::ErrorKind> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Injects faults into one [`FaultyConn`] while it runs, and counts its bytes.
///
/// Clones control the same connection. Injections wake a read or write that is
/// waiting, so they take effect at once rather than at the next call.
#[derive(Clone, Debug)]
pub struct FaultHandle {
    shared: Arc<Shared>,
}

impl FaultHandle {
    /// Makes the next read fail with `kind` (once).
    pub fn fail_next_read(&self, kind: io::ErrorKind) {
        self.shared.inject(Dir::Read, kind);
    }

    /// Makes the next write (or flush) fail with `kind` (once).
    pub fn fail_next_write(&self, kind: io::ErrorKind) {
        self.shared.inject(Dir::Write, kind);
    }

    /// Cuts the connection: the wrapped connection is dropped at the next read or write
    /// (at once if one is waiting), and every read and write from now on fails with
    /// [`io::ErrorKind::ConnectionReset`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.wake();
    }

    /// Whether the connection has been cut, by [`cut`](Self::cut) or a byte limit.
    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// Bytes read through the connection so far.
    pub fn bytes_read(&self) -> u64 {
        self.shared.read.bytes.load(Ordering::SeqCst)
    }

    /// Bytes written through the connection so far.
    pub fn bytes_written(&self) -> u64 {
        self.shared.write.bytes.load(Ordering::SeqCst)
    }

    /// The total-bytes offset at which the connection is cut, if one was configured
    /// (fixed or drawn at random).
    pub fn cut_offset(&self) -> Option<u64> {
        self.shared.cut_offset
    }
}

/// A connection wrapped with the faults of a [`FaultOptions`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use msg_transport::{FaultOptions, FaultyConn};
/// use tokio::io::AsyncWriteExt;
///
/// let (a, _b) = tokio::io::duplex(1024);
/// let mut options = FaultOptions::new();
/// options.cut_after_written(3);
/// let mut conn = FaultyConn::new(a, &options);
/// assert_eq!(conn.write(b"hello").await?, 3); // short write up to the limit
/// let err = conn.write(b"lo").await.unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
/// assert!(conn.handle().is_cut());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FaultyConn<C> {
    /// `None` once cut: dropping the connection is how the peer learns of the cut.
    inner: Option<C>,
    read: Pace,
    write: Pace,
    total_limit: Option<u64>,
    handle: FaultHandle,
    scratch: Vec<u8>,
}

/// The configured faults of one direction, and its delay in progress.
#[derive(Debug)]
struct Pace {
    delay: Duration,
    /// Cut once this many bytes went this way.
    limit: Option<u64>,
    max_chunk: Option<usize>,
    sleep: Option<Pin<Box<Sleep>>>,
    /// The delay before the current call has elapsed.
    delay_done: bool,
}

impl Pace {
    fn new(delay: Duration, limit: Option<u64>, max_chunk: Option<usize>) -> Self {
        Self {
            delay,
            limit,
            max_chunk,
            sleep: None,
            delay_done: false,
        }
    }

    /// `Ready` once the delay before this call has elapsed (or if there is
    /// none).
    fn poll_delay(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.delay.is_zero() || self.delay_done {
            return Poll::Ready(());
        }
        let delay = self.delay;
        let timer = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.sleep = None;
                self.delay_done = true;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<C> FaultyConn<C> {
    /// Wraps `inner`. A random cut uses the draw for connection number 0.
    pub fn new(inner: C, options: &FaultOptions) -> Self {
        FaultyConn::with_index(inner, options, 0)
    }

    /// Wraps `inner` as connection number `index`, which selects its random cut draw.
    pub fn with_index(inner: C, options: &FaultOptions, index: u64) -> Self {
        let total_limit = options.total_limit(index);
        let handle = FaultHandle {
            shared: Arc::new(Shared {
                cut_offset: total_limit,
                ..Shared::default()
            }),
        };
        FaultyConn {
            inner: Some(inner),
            read: Pace::new(
                options.read_delay,
                options.cut_after_read,
                options.max_read_chunk,
            ),
            write: Pace::new(
                options.write_delay,
                options.cut_after_written,
                options.max_write_chunk,
            ),
            total_limit,
            handle,
            scratch: Vec::new(),
        }
    }

    /// A handle to inject faults and read counters.
    pub fn handle(&self) -> FaultHandle {
        self.handle.clone()
    }

    /// The wrapped connection, unless it has been cut.
    pub fn get_ref(&self) -> Option<&C> {
        self.inner.as_ref()
    }

    /// Unwraps the connection, unless it has been cut.
    pub fn into_inner(self) -> Option<C> {
        self.inner
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    fn total(&self) -> u64 {
        self.shared().read.bytes.load(Ordering::SeqCst)
            + self.shared().write.bytes.load(Ordering::SeqCst)
    }

    fn pace(&mut self, dir: Dir) -> &mut Pace {
        match dir {
            Dir::Read => &mut self.read,
            Dir::Write => &mut self.write,
        }
    }

    /// How many more bytes may pass in one direction before a limit is hit.
    fn remaining(&self, own: Option<u64>, own_count: u64) -> Option<u64> {
        let own = own.map(|limit| limit.saturating_sub(own_count));
        let total = self
            .total_limit
            .map(|limit| limit.saturating_sub(self.total()));
        match (own, total) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Cuts the connection: drops the wrapped one so the peer sees it close.
    fn do_cut(&mut self) {
        self.handle.shared.cut.store(true, Ordering::SeqCst);
        self.inner = None;
    }

    /// After I/O: cut if a limit has now been reached exactly.
    fn cut_if_limit_reached(&mut self) {
        let read = self.shared().read.bytes.load(Ordering::SeqCst);
        let written = self.shared().write.bytes.load(Ordering::SeqCst);
        let reached = self.read.limit.is_some_and(|l| read >= l)
            || self.write.limit.is_some_and(|l| written >= l)
            || self.total_limit.is_some_and(|l| read + written >= l);
        if reached {
            self.do_cut();
        }
    }

    /// The faults checked before every call in `dir`: a cut, an injected
    /// error. Registers the waker first, so that an injection between the
    /// check and returning `Pending` still wakes the call.
    fn check_injected(&mut self, dir: Dir, cx: &mut Context<'_>) -> io::Result<()> {
        let side = self.handle.shared.side(dir);
        side.waker.register(cx.waker());
        if self.handle.is_cut() {
            self.inner = None;
            return Err(reset());
        }
        match take(&side.fail) {
            Some(kind) => Err(injected(kind)),
            None => Ok(()),
        }
    }

    /// Everything before a read or write reaches the wrapped connection:
    /// injected faults, the delay, and a limit already reached (which cuts).
    /// `Ready(Ok(limit))` gives the most bytes this call may move, if any.
    fn poll_before_io(&mut self, dir: Dir, cx: &mut Context<'_>) -> Poll<io::Result<Option<u64>>> {
        if let Err(e) = self.check_injected(dir, cx) {
            return Poll::Ready(Err(e));
        }
        if self.pace(dir).poll_delay(cx).is_pending() {
            return Poll::Pending;
        }
        let done = self.shared().side(dir).bytes.load(Ordering::SeqCst);
        let pace = self.pace(dir);
        let (limit, max_chunk) = (pace.limit, pace.max_chunk);
        let remaining = self.remaining(limit, done);
        if remaining == Some(0) {
            self.do_cut();
            return Poll::Ready(Err(reset()));
        }
        Poll::Ready(Ok([remaining, max_chunk.map(|c| c as u64)]
            .into_iter()
            .flatten()
            .min()))
    }

    /// After a read or write in `dir` finished with `result` (bytes moved):
    /// the next call waits its delay again, the bytes count, and a limit
    /// reached exactly cuts.
    fn after_io(&mut self, dir: Dir, result: io::Result<usize>) -> io::Result<usize> {
        self.pace(dir).delay_done = false;
        let n = result?;
        self.shared()
            .side(dir)
            .bytes
            .fetch_add(n as u64, Ordering::SeqCst);
        self.cut_if_limit_reached();
        Ok(n)
    }
}

fn reset() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection cut by fault injection",
    )
}

fn injected(kind: io::ErrorKind) -> io::Error {
    io::Error::new(kind, "injected fault")
}

/// The wrapped connection's certificates, until it is cut.
impl<C: Conn> Conn for FaultyConn<C> {
    fn peer_certificates(&self) -> Option<PeerCertificates> {
        self.inner.as_ref().and_then(Conn::peer_certificates)
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for FaultyConn<C> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let limit = match this.poll_before_io(Dir::Read, cx) {
            Poll::Ready(Ok(limit)) => limit,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(reset()));
        };
        let result = match limit {
            Some(limit) if limit < buf.remaining() as u64 => {
                // Read into a smaller buffer, then copy: a short read that cannot
                // overshoot the limit.
                let len = usize::try_from(limit).unwrap_or(usize::MAX).max(1);
                this.scratch.resize(len, 0);
                let mut small = ReadBuf::new(&mut this.scratch);
                match Pin::new(inner).poll_read(cx, &mut small) {
                    Poll::Ready(Ok(())) => {
                        buf.put_slice(small.filled());
                        Poll::Ready(Ok(small.filled().len()))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            }
            _ => {
                let before = buf.filled().len();
                match Pin::new(inner).poll_read(cx, buf) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len() - before)),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            }
        };
        match result {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => Poll::Ready(this.after_io(Dir::Read, result).map(|_| ())),
        }
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for FaultyConn<C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let limit = match this.poll_before_io(Dir::Write, cx) {
            Poll::Ready(Ok(limit)) => limit,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let len = match limit {
            Some(limit) => buf.len().min(usize::try_from(limit).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(reset()));
        };
        match Pin::new(inner).poll_write(cx, &buf[..len]) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => Poll::Ready(this.after_io(Dir::Write, result)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Err(e) = this.check_injected(Dir::Write, cx) {
            return Poll::Ready(Err(e));
        }
        match this.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_flush(cx),
            None => Poll::Ready(Err(reset())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.handle.is_cut() {
            this.inner = None;
            return Poll::Ready(Err(reset()));
        }
        match this.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_shutdown(cx),
            None => Poll::Ready(Err(reset())),
        }
    }
}

/// A transport whose every connection, made or accepted, is a [`FaultyConn`].
///
/// The n-th connection (counting both sides, in the order they are created) gets the
/// n-th random cut offset. [`handles`](Self::handles) reaches the connections after
/// they have been moved into sockets.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), msg_transport::TransportError> {
/// use msg_transport::{FaultOptions, Faulty, Inproc, Listener, Transport};
///
/// let mut options = FaultOptions::new();
/// options.max_write_chunk(1);
/// let transport = Faulty::new(Inproc, options);
/// let endpoint = "inproc://faulty-doc".parse()?;
/// let mut listener = transport.bind(&endpoint).await?;
/// let (_client, _) = transport.connect(&endpoint).await?;
/// let (_server, _) = listener.accept().await?;
/// assert_eq!(transport.handles().len(), 2);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Faulty<T> {
    inner: T,
    shared: Arc<FaultyShared>,
}

#[derive(Debug)]
struct FaultyShared {
    options: FaultOptions,
    next_index: AtomicU64,
    handles: Mutex<Vec<FaultHandle>>,
}

impl FaultyShared {
    fn wrap<C>(&self, conn: C) -> FaultyConn<C> {
        let index = self.next_index.fetch_add(1, Ordering::SeqCst);
        let conn = FaultyConn::with_index(conn, &self.options, index);
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn.handle());
        conn
    }
}

impl<T> Faulty<T> {
    /// Wraps `inner`; every connection gets the faults in `options`.
    pub fn new(inner: T, options: FaultOptions) -> Self {
        Faulty {
            inner,
            shared: Arc::new(FaultyShared {
                options,
                next_index: AtomicU64::new(0),
                handles: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The handles of every connection made or accepted so far, oldest first.
    pub fn handles(&self) -> Vec<FaultHandle> {
        self.shared
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Cuts every connection made or accepted so far.
    pub fn cut_all(&self) {
        for handle in self.handles() {
            handle.cut();
        }
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

impl<T: Transport> Transport for Faulty<T> {
    type Conn = FaultyConn<T::Conn>;
    type Listener = FaultyListener<T::Listener>;

    async fn bind(&self, endpoint: &Endpoint) -> Result<Self::Listener, TransportError> {
        let inner = self.inner.bind(endpoint).await?;
        Ok(FaultyListener {
            inner,
            shared: self.shared.clone(),
        })
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<(Self::Conn, PeerAddr), TransportError> {
        let (conn, peer) = self.inner.connect(endpoint).await?;
        Ok((self.shared.wrap(conn), peer))
    }

    /// Closes the wrapped connection with the wrapped transport; a cut one is gone
    /// already.
    async fn close_conn(&self, conn: Self::Conn) {
        if let Some(conn) = conn.into_inner() {
            self.inner.close_conn(conn).await;
        }
    }
}

/// A listener of a [`Faulty`] transport; it accepts [`FaultyConn`]s.
#[derive(Debug)]
pub struct FaultyListener<L> {
    inner: L,
    shared: Arc<FaultyShared>,
}

impl<L: Listener> Listener for FaultyListener<L> {
    type Conn = FaultyConn<L::Conn>;

    fn local_endpoint(&self) -> &Endpoint {
        self.inner.local_endpoint()
    }

    async fn accept(&mut self) -> Result<(Self::Conn, PeerAddr), TransportError> {
        let (conn, peer) = self.inner.accept().await?;
        Ok((self.shared.wrap(conn), peer))
    }

    async fn close(self) {
        self.inner.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_draws_are_deterministic_and_spread() {
        let mut options = FaultOptions::new();
        options.cut_at_random(100..200, 7);
        let draws: Vec<u64> = (0..50).map(|i| options.total_limit(i).unwrap()).collect();
        let again: Vec<u64> = (0..50).map(|i| options.total_limit(i).unwrap()).collect();
        assert_eq!(draws, again);
        assert!(draws.iter().all(|d| (100..200).contains(d)));
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(distinct.len() > 25, "draws barely vary: {draws:?}");
    }

    #[test]
    fn fixed_and_random_total_cut_take_the_smaller() {
        let mut options = FaultOptions::new();
        options.cut_at_random(1000..2000, 1).cut_after_total(10);
        assert_eq!(options.total_limit(3), Some(10));
    }
}
