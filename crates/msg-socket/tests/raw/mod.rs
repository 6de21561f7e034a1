//! Raw peers: plain streams (TCP, Unix, inproc pipes) that speak msg's wire
//! protocol by hand, through msg-wire's codecs, so a test can send exactly
//! the bytes it wants, including broken ones. Plus a capture of `tracing`
//! output and a record of panics, for the bad-input tests.

#![allow(dead_code, unreachable_pub)]

use std::io;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use msg_socket::transport::{Endpoint, Inproc, PeerAddr, Transport};
use msg_socket::wire::{Answer, Frame, FrameCodec, HandshakeCodec, Hello, SocketType, WireOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest a test waits for something that should happen promptly: only
/// turns a hang into a failure, never reached when things work.
pub const HANG: Duration = Duration::from_secs(10);

/// Any byte stream.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One raw connection and what it has read so far.
pub struct RawPeer {
    pub io: Box<dyn Io>,
    /// Bytes read and not yet decoded.
    pub buf: BytesMut,
    /// How the socket at the other end sees us, where we can know it (TCP).
    pub seen_as: Option<PeerAddr>,
}

/// What the raw peer saw until the other side closed.
#[derive(Debug)]
pub struct Closed {
    /// Everything read before EOF (or a reset).
    pub bytes: BytesMut,
    /// Whether the stream ended with a reset instead of an orderly EOF.
    pub reset: bool,
}

impl RawPeer {
    pub fn new(io: impl Io + 'static, seen_as: Option<PeerAddr>) -> Self {
        Self {
            io: Box::new(io),
            buf: BytesMut::new(),
            seen_as,
        }
    }

    /// Connects a plain stream to a bound endpoint (TCP, IPC or inproc).
    pub async fn connect(endpoint: &Endpoint) -> Self {
        if let Some(addr) = endpoint.socket_addr() {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .expect("tcp connect");
            let local = stream.local_addr().expect("local addr");
            return Self::new(stream, Some(PeerAddr::Tcp(local)));
        }
        if let Some(path) = endpoint.path() {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .expect("unix connect");
            return Self::new(stream, None);
        }
        let (stream, _) = Inproc.connect(endpoint).await.expect("inproc connect");
        Self::new(stream, None)
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("raw write");
        self.io.flush().await.expect("raw flush");
    }

    /// Sends a Hello and returns the answer.
    pub async fn hello(&mut self, hello: &Hello) -> Answer {
        self.send(&hello_bytes(hello)).await;
        self.read_answer().await
    }

    /// Completes a handshake as a `socket_type` client; panics unless
    /// accepted.
    pub async fn handshake_as(&mut self, socket_type: SocketType) {
        let hello = Hello::new(socket_type, Bytes::from_static(b"raw"), None);
        let answer = self.hello(&hello).await;
        assert!(answer.is_accept(), "raw handshake refused: {answer:?}");
    }

    /// Reads the server's answer to a Hello.
    pub async fn read_answer(&mut self) -> Answer {
        let mut codec = HandshakeCodec::new();
        loop {
            if let Some(answer) = codec.decode_answer(&mut self.buf).expect("answer") {
                return answer;
            }
            self.read_more()
                .await
                .expect("stream ended before the answer");
        }
    }

    /// Reads a client's Hello (when the raw peer plays a server).
    pub async fn read_hello(&mut self) -> Hello {
        let mut codec = HandshakeCodec::new();
        loop {
            if let Some(hello) = codec.decode_hello(&mut self.buf).expect("hello") {
                return hello;
            }
            self.read_more()
                .await
                .expect("stream ended before the hello");
        }
    }

    /// Answers a Hello (when the raw peer plays a server).
    pub async fn answer(&mut self, answer: &Answer) {
        let mut out = BytesMut::new();
        HandshakeCodec::new()
            .encode_answer(answer, &mut out)
            .expect("encode answer");
        self.send(&out).await;
    }

    /// Sends one frame.
    pub async fn send_frame(&mut self, frame: &Frame) {
        let mut out = BytesMut::new();
        FrameCodec::new().encode(frame, &mut out).expect("encode");
        self.send(&out).await;
    }

    /// The next frame, or `None` at the end of the stream.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        let mut codec = FrameCodec::with_options(big_limits());
        loop {
            if let Some(frame) = codec.decode(&mut self.buf).expect("frame from the socket") {
                return Some(frame);
            }
            match self.read_more().await {
                Some(_) => {}
                None => return None,
            }
        }
    }

    /// Reads some more bytes; `None` at EOF or on a reset.
    async fn read_more(&mut self) -> Option<usize> {
        self.buf.reserve(4096);
        match self.io.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        }
    }

    /// Reads until the other side closes the stream; panics if it does not
    /// within [`HANG`].
    pub async fn read_until_closed(mut self) -> Closed {
        let result = tokio::time::timeout(HANG, async {
            loop {
                self.buf.reserve(4096);
                match self.io.read_buf(&mut self.buf).await {
                    Ok(0) => return false,
                    Ok(_) => {}
                    Err(e) if is_reset(&e) => return true,
                    Err(e) => panic!("raw read failed: {e}"),
                }
            }
        })
        .await;
        let reset = result.expect("the socket never closed the connection");
        Closed {
            bytes: self.buf,
            reset,
        }
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Wire options that accept anything a socket may send back.
pub fn big_limits() -> WireOptions {
    let mut opts = WireOptions::new();
    opts.max_frame_size(64 * 1024 * 1024);
    opts
}

pub fn hello_bytes(hello: &Hello) -> BytesMut {
    let mut out = BytesMut::new();
    HandshakeCodec::new()
        .encode_hello(hello, &mut out)
        .expect("encode hello");
    out
}

/// Every frame in `bytes`, up to the first one that does not decode.
pub fn frames_in(mut bytes: BytesMut) -> Vec<Frame> {
    let mut codec = FrameCodec::with_options(big_limits());
    let mut out = Vec::new();
    while let Ok(Some(frame)) = codec.decode(&mut bytes) {
        out.push(frame);
    }
    out
}

/// A shared buffer that `tracing` output is written to.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Captures warnings and errors logged on this thread (a current-thread
/// runtime runs every task of the test here) until the guard drops.
pub fn capture_warnings() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let sink = logs.0.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || LogWriter(sink.clone()))
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records the name of every thread that panics from now on (a task that
/// panics does not fail its test by itself: tokio catches the panic).
pub fn record_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            PANICS.lock().unwrap_or_else(|p| p.into_inner()).push(name);
            previous(info);
        }));
    });
}

/// Panics unless no panic happened on this thread since [`record_panics`].
pub fn assert_no_panic_on_this_thread() {
    let name = std::thread::current().name().unwrap_or("?").to_owned();
    let panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        !panics.contains(&name),
        "a task panicked on this test's thread"
    );
}

/// A Rep socket that echoes every request from a task of its own, and still
/// answers for its stats (the serving task owns the socket).
pub struct EchoRep {
    stats: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<msg_socket::SocketStats>>,
}

impl EchoRep {
    pub fn spawn(mut rep: msg_socket::RepSocket) -> Self {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<msg_socket::SocketStats>>(1);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    request = rep.recv() => match request {
                        Some(request) => {
                            let payload = request.payload().clone();
                            let _ = request.reply(payload).await;
                        }
                        None => break,
                    },
                    asked = rx.recv() => match asked {
                        Some(answer) => { let _ = answer.send(rep.stats()); }
                        // The handle is gone: drop the socket.
                        None => break,
                    },
                }
            }
        });
        Self { stats: tx }
    }

    pub async fn stats(&self) -> msg_socket::SocketStats {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.stats.send(tx).await.expect("rep task");
        rx.await.expect("rep stats")
    }
}
