//! The processes shape: the two ends of a row in two OS processes, as two
//! services are deployed.
//!
//! The client end runs in this process; the server end runs in a child
//! process, the program of [`Config::helper_exe`] (the `compare` binary
//! itself) started with [`PEER_ARG`], which calls [`peer_main`]. Each
//! process runs its end as spawned tasks on a multi-thread tokio runtime
//! with tokio's default worker count (one per core), which is what
//! `#[tokio::main]` builds. The rows:
//!
//! - the Req/Rep round trip (msg Req/Rep and the tokio ping-pong, and the
//!   two interleaved, see [`Interleaved`](crate::Interleaved)): the child
//!   serves a tokio echo and a msg Rep socket, this process sends;
//! - one-way throughput at 64 B (the tokio stream, msg Pub/Sub and msg
//!   Push/Pull): the child sends, publishes or pushes, this process
//!   receives and counts. The two
//!   processes share no clock, so the window runs from the first message
//!   received to the last.
//!
//! The child binds on loopback with a port chosen by the OS, or a Unix
//! socket in a fresh temporary directory that this process creates and
//! removes, and writes its endpoints to its standard output. It lives as
//! long as its standard input is open: the parent closes it when it is done
//! (a guard does so on every exit path, and kills and reaps the child if it
//! does not exit within a second), and the system closes it if the parent
//! dies.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use msg::{PubSocket, PullSocket, PushSocket, RepSocket, ReqSocket, SocketOptions, SubSocket};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::mpsc;

use crate::error::BenchError;
use crate::interleave::{self, Plan, Rounds};
use crate::measure::{Config, Shape, Transport, deadline};
use crate::msg_rows::{
    self, END_GRACE, MARKER_INTERVAL, REQ_REP_SIZE, other, publish, rep_echo, req_round, subscribe,
};
use crate::pattern_rows::{pull_all, push_all};
use crate::placement::{bounded, runtime};
use crate::tokio_baseline::{Link, echo_server, ping_client, stream_receiver, stream_sender};

/// The command-line argument that makes a binary run [`peer_main`] instead
/// of its own main.
pub const PEER_ARG: &str = "--msg-bench-peer";

/// How long the guard waits for a child to exit by itself once its
/// standard input is closed, before it kills it.
const EXIT_WAIT: Duration = Duration::from_secs(1);

/// What the child process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Serve a tokio echo (one connection) and a msg Rep socket.
    Echo,
    /// Send a tokio stream to the one connection it accepts.
    Stream,
    /// Publish to one subscriber.
    Publish,
    /// Push to one Pull socket.
    Push,
}

impl Role {
    const fn name(self) -> &'static str {
        match self {
            Role::Echo => "echo",
            Role::Stream => "stream",
            Role::Publish => "publish",
            Role::Push => "push",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        [Role::Echo, Role::Stream, Role::Publish, Role::Push]
            .into_iter()
            .find(|r| r.name() == s)
    }
}

/// Everything the child needs, passed on its command line.
#[derive(Clone, Debug)]
struct PeerArgs {
    role: Role,
    transport: Transport,
    dir: PathBuf,
    size: usize,
    count: u64,
    limit: Duration,
    join: Duration,
    life: Duration,
}

impl PeerArgs {
    fn new(role: Role, transport: Transport, dir: &Path, cfg: &Config, size: usize) -> PeerArgs {
        let count = if size <= 64 {
            cfg.pubsub_count.min(cfg.stream_count_for(size))
        } else {
            cfg.stream_count_for(size)
        };
        PeerArgs {
            role,
            transport,
            dir: dir.to_owned(),
            size,
            count,
            limit: cfg.time_limit,
            join: cfg.join_timeout,
            life: cfg.hard_limit() + cfg.interleave_hard_limit(),
        }
    }

    fn to_args(&self) -> Vec<String> {
        vec![
            self.role.name().to_owned(),
            self.transport.name().to_owned(),
            self.dir.display().to_string(),
            self.size.to_string(),
            self.count.to_string(),
            self.limit.as_millis().to_string(),
            self.join.as_millis().to_string(),
            self.life.as_millis().to_string(),
        ]
    }

    fn parse(args: &[String]) -> Result<PeerArgs, String> {
        let [role, transport, dir, size, count, limit, join, life] = args else {
            return Err(format!("expected 8 arguments, got {}", args.len()));
        };
        let num = |s: &str| s.parse::<u64>().map_err(|_| format!("not a number: {s}"));
        let ms = |s: &str| num(s).map(Duration::from_millis);
        Ok(PeerArgs {
            role: Role::parse(role).ok_or_else(|| format!("unknown role {role}"))?,
            transport: [Transport::Tcp, Transport::Ipc]
                .into_iter()
                .find(|t| t.name() == transport)
                .ok_or_else(|| format!("unsupported transport {transport}"))?,
            dir: PathBuf::from(dir),
            size: usize::try_from(num(size)?).map_err(|_| "size too large".to_owned())?,
            count: num(count)?,
            limit: ms(limit)?,
            join: ms(join)?,
            life: ms(life)?,
        })
    }
}

// ---------------------------------------------------------------------------
// This process's end.

/// Ping-pong round trips with the echo server in a child process. `None`
/// when no helper program is configured (the row is skipped).
pub(crate) fn tokio_ping_pong(
    cfg: &Config,
    transport: Transport,
) -> Result<Option<Vec<Duration>>, BenchError> {
    match transport {
        Transport::Tcp => tokio_ping_pong_on::<TcpStream>(cfg, transport),
        Transport::Ipc => tokio_ping_pong_on::<UnixStream>(cfg, transport),
        other => Err(BenchError::Unsupported(other)),
    }
}

fn tokio_ping_pong_on<L: Link>(
    cfg: &Config,
    transport: Transport,
) -> Result<Option<Vec<Duration>>, BenchError> {
    let (count, warmup, time_limit) = (cfg.rtt_count, cfg.rtt_warmup(), cfg.time_limit);
    with_peer(cfg, Role::Echo, transport, 0, async |peer, limit| {
        let ready = peer.expect("ready", limit).await?;
        let io = L::from_std(L::std_connect(field(&ready, 0)?)?)?;
        tokio::spawn(ping_client(io, count, warmup, time_limit))
            .await
            .map_err(|_| BenchError::Panicked)?
    })
}

/// A one-way tokio stream of `size`-byte frames from a child process:
/// frames received and the window from the first to the last.
pub(crate) fn tokio_stream(
    cfg: &Config,
    transport: Transport,
    size: usize,
) -> Result<Option<(u64, Duration)>, BenchError> {
    match transport {
        Transport::Tcp => tokio_stream_on::<TcpStream>(cfg, transport, size),
        Transport::Ipc => tokio_stream_on::<UnixStream>(cfg, transport, size),
        other => Err(BenchError::Unsupported(other)),
    }
}

fn tokio_stream_on<L: Link>(
    cfg: &Config,
    transport: Transport,
    size: usize,
) -> Result<Option<(u64, Duration)>, BenchError> {
    with_peer(cfg, Role::Stream, transport, size, async |peer, limit| {
        let ready = peer.expect("ready", limit).await?;
        let io = L::from_std(L::std_connect(field(&ready, 0)?)?)?;
        let (received, first, last) = tokio::spawn(stream_receiver(io, size))
            .await
            .map_err(|_| BenchError::Panicked)??;
        let sent: u64 = parse(field(&peer.expect("sent", limit).await?, 0)?)?;
        if received != sent {
            return Err(BenchError::Inconsistent(format!(
                "stream sent {sent} frames, received {received}"
            )));
        }
        window(received, first, Some(last))
    })
}

/// msg Req/Rep round trips with the Rep socket in a child process, then
/// the interleaved rounds against a tokio echo in the same child. `None`
/// when no helper program is configured.
pub(crate) fn req_rep(
    cfg: &Config,
    transport: Transport,
) -> Result<Option<(Vec<Duration>, Rounds)>, BenchError> {
    match transport {
        Transport::Tcp => req_rep_on::<TcpStream>(cfg, transport),
        Transport::Ipc => req_rep_on::<UnixStream>(cfg, transport),
        other => Err(BenchError::Unsupported(other)),
    }
}

fn req_rep_on<L: Link>(
    cfg: &Config,
    transport: Transport,
) -> Result<Option<(Vec<Duration>, Rounds)>, BenchError> {
    let (count, warmup, time_limit) = (cfg.rtt_count, cfg.rtt_warmup(), cfg.time_limit);
    let (plan, join) = (Plan::new(cfg), cfg.join_timeout);
    with_peer(cfg, Role::Echo, transport, 0, async |peer, limit| {
        let ready = peer.expect("ready", limit).await?;
        let mut io = L::from_std(L::std_connect(field(&ready, 0)?)?)?;
        let req = Arc::new(ReqSocket::with_options(SocketOptions::new()).map_err(other)?);
        req.connect(field(&ready, 1)?).map_err(other)?;
        if !req.wait_for_peers(1, join).await {
            return Err(BenchError::Timeout("req connecting"));
        }
        let out = tokio::spawn({
            let req = req.clone();
            async move {
                let payload = Bytes::from(vec![0xA5; REQ_REP_SIZE]);
                let rtts = req_round(&req, &payload, count, warmup, time_limit).await?;
                let rounds = interleave::alternate(&mut io, &req, plan).await?;
                let _ = io.shutdown().await;
                Ok::<_, BenchError>((rtts, rounds))
            }
        })
        .await
        .map_err(|_| BenchError::Panicked)?;
        msg_rows::close_shared_req(req).await;
        out
    })
}

/// msg Pub/Sub of `size`-byte messages from a publisher in a child process
/// to one subscriber here: messages delivered and the window from the
/// first to the last. `None` when no helper program is configured.
pub(crate) fn pub_sub(
    cfg: &Config,
    transport: Transport,
    size: usize,
) -> Result<Option<(u64, Duration)>, BenchError> {
    let hard = cfg.hard_limit();
    with_peer(cfg, Role::Publish, transport, size, async |peer, limit| {
        let ready = peer.expect("ready", limit).await?;
        let sub = SubSocket::with_options(SocketOptions::new()).map_err(other)?;
        sub.subscribe(Bytes::new()).await;
        sub.connect(field(&ready, 0)?).map_err(other)?;
        let stop = Arc::new(AtomicBool::new(false));
        let counting = tokio::spawn({
            let stop = stop.clone();
            async move { subscribe(sub, size, &stop, deadline(hard)).await }
        });
        // The child says when it has published its last message; from then
        // on the subscriber stops at its first idle poll, if the end marker
        // does not stop it first.
        let published = peer.expect("published", limit).await;
        stop.store(true, Ordering::Release);
        let counted = counting.await.map_err(|_| BenchError::Panicked)?;
        peer.tell("stop");
        published?;
        let (count, first, last) = counted?;
        window(count, first, last)
    })
}

/// msg Push/Pull of `size`-byte messages from a Push socket in a child
/// process to a Pull socket here: messages received and the window from
/// the first to the last. `None` when no helper program is configured.
pub(crate) fn push_pull(
    cfg: &Config,
    transport: Transport,
    size: usize,
) -> Result<Option<(u64, Duration)>, BenchError> {
    let hard = cfg.hard_limit();
    with_peer(cfg, Role::Push, transport, size, async |peer, limit| {
        let ready = peer.expect("ready", limit).await?;
        let pull = PullSocket::with_options(SocketOptions::new()).map_err(other)?;
        pull.connect(field(&ready, 0)?).map_err(other)?;
        let counted = tokio::spawn(pull_all(pull, size, deadline(hard)))
            .await
            .map_err(|_| BenchError::Panicked)?;
        let sent = peer.expect("sent", limit).await;
        peer.tell("stop");
        let (received, first, last) = counted?;
        let sent: u64 = parse(field(&sent?, 0)?)?;
        if received != sent {
            return Err(BenchError::Inconsistent(format!(
                "Push sent {sent} messages, Pull received {received}"
            )));
        }
        window(received, first, last)
    })
}

/// Spawn a child in `role`, run `body` with it on a runtime of
/// [`Shape::Processes`] (cut off after the body's hard limit, which it
/// also gets), then close the child. `None` without a helper program.
fn with_peer<T>(
    cfg: &Config,
    role: Role,
    transport: Transport,
    size: usize,
    body: impl AsyncFnOnce(&mut Peer, Duration) -> Result<T, BenchError>,
) -> Result<Option<T>, BenchError> {
    let Some(exe) = cfg.helper_exe.clone() else {
        eprintln!("msg processes shape: skipped, no helper program configured");
        return Ok(None);
    };
    let dir = tempfile::Builder::new().prefix("msg-bench").tempdir()?;
    let args = PeerArgs::new(role, transport, dir.path(), cfg, size);
    let limit = args.life;
    let mut peer = Peer::spawn(&exe, &args)?;
    let rt = runtime(Shape::Processes)?;
    let out = rt.block_on(bounded(limit, "processes peer", body(&mut peer, limit)));
    drop(rt);
    drop(peer);
    out.map(Some)
}

/// `count` messages between `first` and `last`, as a count and a window.
fn window(
    count: u64,
    first: Option<Instant>,
    last: Option<Instant>,
) -> Result<(u64, Duration), BenchError> {
    match (first, last) {
        (Some(first), Some(last)) if count > 0 => {
            Ok((count, last.saturating_duration_since(first)))
        }
        _ => Err(BenchError::Inconsistent("no message delivered".into())),
    }
}

/// Field `i` of a tab-separated answer.
fn field(fields: &[String], i: usize) -> Result<&str, BenchError> {
    fields
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| BenchError::Inconsistent("child process answer too short".into()))
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, BenchError> {
    s.parse()
        .map_err(|_| BenchError::Inconsistent(format!("child process answered {s:?}")))
}

/// The child process and the lines it writes. Dropping it closes the
/// child's standard input, waits a little for it to exit, then kills it,
/// and always reaps it.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Peer {
    fn spawn(exe: &Path, args: &PeerArgs) -> Result<Peer, BenchError> {
        let mut command = Command::new(exe);
        command.arg(PEER_ARG).args(args.to_args());
        Peer::start(command)
    }

    /// Start `command` with piped standard input and output.
    fn start(mut command: Command) -> Result<Peer, BenchError> {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let (tx, lines) = mpsc::unbounded_channel();
        // The guard exists before anything else can fail.
        let mut peer = Peer {
            child,
            stdin: None,
            lines,
        };
        peer.stdin = peer.child.stdin.take();
        let Some(stdout) = peer.child.stdout.take() else {
            return Err(BenchError::Inconsistent(
                "child process without pipes".into(),
            ));
        };
        // Ends when the child's standard output closes, that is when the
        // child exits.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(peer)
    }

    /// The next line whose first field is `word`, split into the fields
    /// after it; lines before it are skipped. An `error` line is an error.
    async fn expect(&mut self, word: &str, limit: Duration) -> Result<Vec<String>, BenchError> {
        loop {
            let line = match tokio::time::timeout(limit, self.lines.recv()).await {
                Err(_) => return Err(BenchError::Timeout("child process answering")),
                Ok(None) => return Err(BenchError::Inconsistent("child process exited".into())),
                Ok(Some(line)) => line,
            };
            let mut fields = line.split('\t').map(str::to_owned);
            match fields.next().as_deref() {
                Some(w) if w == word => return Ok(fields.collect()),
                Some("error") => {
                    let why = fields.collect::<Vec<_>>().join(" ");
                    return Err(BenchError::Inconsistent(format!("child process: {why}")));
                }
                _ => {}
            }
        }
    }

    /// Send the child one command line; a child that is gone is not an
    /// error here.
    fn tell(&mut self, command: &str) {
        if let Some(stdin) = &mut self.stdin {
            let _ = writeln!(stdin, "{command}").and_then(|()| stdin.flush());
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let until = deadline(EXIT_WAIT);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The child's end.

/// The child process of the processes shape: binaries call it when started
/// with [`PEER_ARG`] followed by the arguments this module passes. It
/// serves one role (a tokio echo and a msg Rep socket, a tokio stream
/// sender, a msg publisher, or a msg Push socket) on a multi-thread runtime with the default
/// worker count, writes its endpoints and progress as tab-separated lines
/// to standard output, and exits as soon as its standard input closes.
/// Returns the process's exit code.
pub fn peer_main(args: &[String]) -> i32 {
    let args = match PeerArgs::parse(args) {
        Ok(args) => args,
        Err(e) => {
            println!("error\t{e}");
            return 2;
        }
    };
    let (tx, commands) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
        // The parent is done, or gone.
        std::process::exit(0);
    });
    let rt = match runtime(Shape::Processes) {
        Ok(rt) => rt,
        Err(e) => {
            println!("error\t{e}");
            return 1;
        }
    };
    let life = args.life;
    let result = rt.block_on(bounded(life, "child process", async move {
        tokio::spawn(serve(args, commands))
            .await
            .map_err(|_| BenchError::Panicked)?
    }));
    match result {
        Ok(()) => {
            // Done; stay until the parent closes standard input.
            std::thread::sleep(life);
            0
        }
        Err(e) => {
            println!("error\t{e}");
            1
        }
    }
}

async fn serve(
    args: PeerArgs,
    commands: mpsc::UnboundedReceiver<String>,
) -> Result<(), BenchError> {
    match args.transport {
        Transport::Tcp => serve_on::<TcpStream>(args, commands).await,
        Transport::Ipc => serve_on::<UnixStream>(args, commands).await,
        other => Err(BenchError::Unsupported(other)),
    }
}

async fn serve_on<L: Link>(
    args: PeerArgs,
    mut commands: mpsc::UnboundedReceiver<String>,
) -> Result<(), BenchError> {
    let msg_endpoint = match args.transport {
        Transport::Ipc => format!("ipc://{}", args.dir.join("msg.sock").display()),
        _ => "tcp://127.0.0.1:0".to_owned(),
    };
    match args.role {
        Role::Echo => {
            let (listener, addr) = L::std_listen(&args.dir)?;
            let rep = RepSocket::with_options(SocketOptions::new()).map_err(other)?;
            let at = rep.bind(&msg_endpoint).await.map_err(other)?;
            say(&format!("ready\t{addr}\t{at}"))?;
            tokio::spawn(rep_echo(rep, std::future::pending()));
            let io = accept::<L>(listener).await?;
            echo_server(io).await?;
            Ok(())
        }
        Role::Stream => {
            let (listener, addr) = L::std_listen(&args.dir)?;
            say(&format!("ready\t{addr}"))?;
            let io = accept::<L>(listener).await?;
            let (sent, _) = stream_sender(io, args.size, args.count, args.limit).await?;
            say(&format!("sent\t{sent}"))
        }
        Role::Publish => {
            let publisher = PubSocket::with_options(SocketOptions::new()).map_err(other)?;
            let at = publisher.bind(&msg_endpoint).await.map_err(other)?;
            say(&format!("ready\t{at}"))?;
            publish(&publisher, 1, args.size, args.count, args.join, args.limit).await?;
            say("published")?;
            // End markers until the parent has its count, as in this
            // process's Pub/Sub rows.
            let grace = deadline(END_GRACE);
            while Instant::now() < grace {
                let _ = publisher.publish(Bytes::new(), Bytes::new());
                tokio::select! {
                    () = tokio::time::sleep(MARKER_INTERVAL) => {}
                    _ = commands.recv() => break,
                }
            }
            publisher.close(Duration::ZERO).await;
            Ok(())
        }
        Role::Push => {
            let push = PushSocket::with_options(SocketOptions::new()).map_err(other)?;
            let at = push.bind(&msg_endpoint).await.map_err(other)?;
            say(&format!("ready\t{at}"))?;
            let (sent, _) = push_all(&push, args.size, args.count, args.join, args.limit).await?;
            say(&format!("sent\t{sent}"))?;
            // Keep delivering until the parent has its count.
            tokio::select! {
                () = tokio::time::sleep(args.life) => {}
                _ = commands.recv() => {}
            }
            push.close(Duration::ZERO).await;
            Ok(())
        }
    }
}

/// Accept one connection on `listener` without blocking the runtime.
async fn accept<L: Link>(listener: L::Listener) -> Result<L, BenchError> {
    let s = tokio::task::spawn_blocking(move || L::std_accept(&listener))
        .await
        .map_err(|_| BenchError::Panicked)??;
    Ok(L::from_std(s)?)
}

/// One line to the parent.
fn say(line: &str) -> Result<(), BenchError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_arguments_survive_the_command_line() {
        let mut cfg = Config::quick();
        cfg.time_limit(Duration::from_millis(250));
        let args = PeerArgs::new(Role::Publish, Transport::Ipc, Path::new("/tmp/x"), &cfg, 64);
        let back = PeerArgs::parse(&args.to_args()).unwrap();
        assert_eq!(back.role, Role::Publish);
        assert_eq!(back.transport, Transport::Ipc);
        assert_eq!(back.dir, PathBuf::from("/tmp/x"));
        assert_eq!((back.size, back.count), (64, args.count));
        assert_eq!(back.limit, Duration::from_millis(250));
        assert_eq!(back.life, args.life);
        assert!(PeerArgs::parse(&["echo".to_owned()]).is_err());
        let mut bad = args.to_args();
        bad[1] = "quic".to_owned();
        assert!(PeerArgs::parse(&bad).is_err());
    }

    #[test]
    fn a_child_that_ignores_its_closed_stdin_is_killed_and_reaped_even_on_panic() {
        let pid = std::sync::Mutex::new(None);
        let unwound = std::panic::catch_unwind(|| {
            // `sleep` does not read its standard input, so closing it does
            // not end it: the guard has to kill it.
            let mut command = Command::new("sleep");
            command.arg("30");
            let peer = Peer::start(command).expect("sleep starts");
            *pid.lock().unwrap() = Some(peer.child.id());
            panic!("the row failed");
        });
        assert!(unwound.is_err());
        let pid = pid.lock().unwrap().expect("the child had started");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} is still there"
        );
    }
}
