//! The command line: every command, flag and help text, as clap derive
//! structs. Nothing here does I/O; `main` hands the parsed values to the
//! command modules.
//!
//! The reliable commands (`msg send`, `msg recv`, `msg bench reliable`)
//! reuse [`ConnArgs`] for their endpoints, certificates and tokens, and add
//! a store path.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::parse::{parse_duration, parse_rate, parse_size};

const ABOUT: &str = "Brokerless messaging from the terminal: request/reply, publish/subscribe, \
pipelines and benchmarks over TCP, IPC, TLS and QUIC.";

const MAIN_AFTER_HELP: &str = "\
Examples:
  # terminal 1                                # terminal 2
  msg rep tcp://127.0.0.1:5555                msg req tcp://127.0.0.1:5555 hello
  msg pub tcp://127.0.0.1:5556 news --lines   msg sub tcp://127.0.0.1:5556 news
  msg pull tcp://127.0.0.1:5558               msg push tcp://127.0.0.1:5558 --lines
  msg recv tcp://127.0.0.1:5557 --identity bob
                                              msg send bob tcp://127.0.0.1:5557 --lines
  msg bench reqrep --transport quic --concurrency 64 --duration 5s
  msg demo                                    # a tour, all in one process

Binding sides print `listening on ENDPOINT` on stderr; data goes to stdout.
Exit status: 0 on success, 1 on an error (one `msg: error: ...` line on
stderr), 2 on a usage error.";

/// The `msg` command line.
#[derive(Debug, Parser)]
#[command(
    name = "msg",
    version,
    about = ABOUT,
    after_help = MAIN_AFTER_HELP,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// Log what the sockets do to stderr: -v info, -vv debug, -vvv trace
    /// (RUST_LOG, when set, wins).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Answer requests: echo them, send a fixed reply, or run a command.
    #[command(after_help = REP_AFTER_HELP)]
    Rep(RepArgs),
    /// Send requests and print the replies.
    #[command(after_help = REQ_AFTER_HELP)]
    Req(ReqArgs),
    /// Publish messages under a topic.
    #[command(after_help = PUB_AFTER_HELP)]
    Pub(PubArgs),
    /// Subscribe to topic prefixes and print what arrives.
    #[command(after_help = SUB_AFTER_HELP)]
    Sub(SubArgs),
    /// Push messages down a pipeline: each goes to one puller.
    #[command(after_help = PUSH_AFTER_HELP)]
    Push(PushArgs),
    /// Pull messages from pushers and print them.
    #[command(after_help = PULL_AFTER_HELP)]
    Pull(PullArgs),
    /// Send messages to a router without lock-step and print what comes
    /// back.
    #[command(after_help = DEALER_AFTER_HELP)]
    Dealer(DealerArgs),
    /// Serve dealers and requesters asynchronously: print each message and
    /// answer it (echo, or a fixed reply) to the peer it came from.
    #[command(after_help = ROUTER_AFTER_HELP)]
    Router(RouterArgs),
    /// Send messages reliably to a peer: stored first, delivered once, in
    /// order, even if the peer is down now.
    #[command(after_help = SEND_AFTER_HELP)]
    Send(SendArgs),
    /// Receive reliable messages, print them, and acknowledge each once
    /// printed.
    #[command(after_help = RECV_AFTER_HELP)]
    Recv(RecvArgs),
    /// Measure throughput and latency, with both ends in this process.
    #[command(subcommand, after_help = BENCH_AFTER_HELP)]
    Bench(BenchCommand),
    /// A guided tour in one process: Req/Rep, Pub/Sub, then reliable
    /// delivery to a peer that goes offline and comes back.
    Demo(DemoArgs),
}

impl Command {
    /// The connection flags, for the commands that have a socket.
    pub(crate) fn conn(&self) -> Option<&ConnArgs> {
        match self {
            Command::Rep(a) => Some(&a.conn),
            Command::Req(a) => Some(&a.conn),
            Command::Pub(a) => Some(&a.conn),
            Command::Sub(a) => Some(&a.conn),
            Command::Push(a) => Some(&a.conn),
            Command::Pull(a) => Some(&a.conn),
            Command::Dealer(a) => Some(&a.conn),
            Command::Router(a) => Some(&a.conn),
            Command::Send(a) => Some(&a.conn),
            Command::Recv(a) => Some(&a.conn),
            Command::Bench(_) | Command::Demo(_) => None,
        }
    }
}

/// Which end of the connection a socket is: the one that binds and waits,
/// or the one that connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Bind the endpoint and accept connections.
    Bind,
    /// Connect to the endpoint (and reconnect when the connection drops).
    Connect,
}

/// Endpoint side, certificates, authentication and compression: what every
/// socket command takes.
#[derive(Debug, Args)]
pub(crate) struct ConnArgs {
    /// Bind the endpoint and wait for peers (the default for rep, pub, recv
    /// and pull).
    #[arg(long, conflicts_with = "connect", help_heading = "Connection")]
    pub(crate) bind: bool,

    /// Connect to the endpoint (the default for req, sub, send and push).
    #[arg(long, help_heading = "Connection")]
    pub(crate) connect: bool,

    /// When connecting, keep retrying while nothing listens at the endpoint,
    /// instead of failing at the first refused attempt.
    #[arg(long, help_heading = "Connection")]
    pub(crate) retry: bool,

    /// The identity announced to peers (default: a random one).
    #[arg(long, value_name = "NAME", help_heading = "Connection")]
    pub(crate) identity: Option<String>,

    /// Serve the socket's metrics in the Prometheus text format at
    /// http://ADDR/metrics while the command runs. ADDR is IP:PORT, or a
    /// PORT alone for loopback (127.0.0.1); port 0 picks a free one. The
    /// address is printed on stderr.
    #[arg(long, value_name = "ADDR", help_heading = "Observability")]
    pub(crate) metrics_addr: Option<String>,

    /// Compress outgoing payloads of 1 KiB or more (receivers need no flag).
    #[arg(long, value_enum, default_value_t = CompressionArg::None, help_heading = "Connection")]
    pub(crate) compression: CompressionArg,

    /// Certificate chain in PEM: the server's when binding a tls:// or
    /// quic:// endpoint; the client's, for mutual TLS, when connecting.
    #[arg(
        long,
        value_name = "PEM",
        requires = "key",
        help_heading = "TLS and QUIC"
    )]
    pub(crate) cert: Option<PathBuf>,

    /// Private key in PEM for --cert.
    #[arg(
        long,
        value_name = "PEM",
        requires = "cert",
        help_heading = "TLS and QUIC"
    )]
    pub(crate) key: Option<PathBuf>,

    /// Root certificates in PEM that the server's certificate must chain to
    /// (connecting side).
    #[arg(long, value_name = "PEM", help_heading = "TLS and QUIC")]
    pub(crate) ca: Option<PathBuf>,

    /// Require clients to present a certificate that chains to these roots
    /// (binding side: mutual TLS).
    #[arg(long, value_name = "PEM", help_heading = "TLS and QUIC")]
    pub(crate) client_ca: Option<PathBuf>,

    /// Check the server's certificate against NAME instead of the
    /// endpoint's host (connecting side).
    #[arg(long, value_name = "NAME", help_heading = "TLS and QUIC")]
    pub(crate) server_name: Option<String>,

    /// DANGEROUS: accept any server certificate. The connection is still
    /// encrypted but the server is not authenticated; for development only.
    #[arg(long, conflicts_with = "ca", help_heading = "TLS and QUIC")]
    pub(crate) dangerous_skip_verify: bool,

    /// Token to present to the server's authenticator (connecting side).
    #[arg(
        long,
        env = "MSG_TOKEN",
        hide_env_values = true,
        help_heading = "Authentication"
    )]
    pub(crate) token: Option<String>,

    /// Accept only peers presenting this token (binding side; repeat to
    /// accept several). Others are refused with a reason they can see.
    #[arg(long, value_name = "TOKEN", help_heading = "Authentication")]
    pub(crate) accept_token: Vec<String>,
}

impl ConnArgs {
    /// The side chosen on the command line, or the command's default.
    pub(crate) fn side(&self, default: Side) -> Side {
        if self.bind {
            Side::Bind
        } else if self.connect {
            Side::Connect
        } else {
            default
        }
    }
}

/// Compression algorithms, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CompressionArg {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Zstandard.
    Zstd,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
}

impl From<CompressionArg> for msg::Compression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::None => msg::Compression::None,
            CompressionArg::Gzip => msg::Compression::Gzip,
            CompressionArg::Zstd => msg::Compression::Zstd,
            CompressionArg::Snappy => msg::Compression::Snappy,
            CompressionArg::Lz4 => msg::Compression::Lz4,
        }
    }
}

/// How received payloads are printed on stdout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// The bytes as text (invalid UTF-8 shown as U+FFFD), one message per
    /// line.
    #[default]
    Text,
    /// Lowercase hex, one message per line.
    Hex,
    /// One JSON object per line; a field whose bytes are not UTF-8 is given
    /// as `<field>_hex` instead.
    Json,
}

/// Where a command's outgoing data comes from.
#[derive(Debug, Args)]
pub(crate) struct InputArgs {
    /// Read the data from this file instead of the command line or stdin.
    #[arg(long, value_name = "PATH", help_heading = "Input")]
    pub(crate) file: Option<PathBuf>,

    /// Send every line of the input as its own message (without its
    /// newline), as the lines arrive.
    #[arg(long, help_heading = "Input")]
    pub(crate) lines: bool,
}

const REP_AFTER_HELP: &str = "\
Examples:
  msg rep tcp://127.0.0.1:5555                       # echo every request
  msg rep tcp://127.0.0.1:5555 --reply pong          # the same reply to all
  msg rep tcp://127.0.0.1:5555 --exec 'tr a-z A-Z'   # a command's output
  msg rep tls://0.0.0.0:5555 --cert server.pem --key server.key --accept-token s3cret

With --exec, each request runs `sh -c CMD` with the request on stdin; its
stdout is the reply. MSG_PEER and MSG_PEER_IDENTITY tell the command who
asked. A command that fails (non-zero exit, --exec-timeout, cannot start) is
logged on stderr and, with --on-error reply (the default), answered with
`error: ...` so the requester does not wait for its timeout; with
--on-error drop, it gets no reply.

Requests are printed on stdout (use --quiet to stop that).";

/// `msg rep`.
#[derive(Debug, Args)]
pub(crate) struct RepArgs {
    /// Where to listen (or, with --connect, where to connect), e.g.
    /// tcp://127.0.0.1:5555 (port 0 picks a free port).
    pub(crate) endpoint: String,

    /// Answer every request with TEXT.
    #[arg(
        long,
        value_name = "TEXT",
        conflicts_with = "exec",
        help_heading = "Replies"
    )]
    pub(crate) reply: Option<String>,

    /// Answer every request with the stdout of `sh -c CMD`, the request on
    /// its stdin.
    #[arg(long, value_name = "CMD", help_heading = "Replies")]
    pub(crate) exec: Option<String>,

    /// Most requests handled at once (commands running at once, with
    /// --exec).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Replies")]
    pub(crate) concurrency: u32,

    /// Kill a command that runs longer than this (e.g. 500ms, 10s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, help_heading = "Replies")]
    pub(crate) exec_timeout: Duration,

    /// What a failed command answers: an `error: ...` reply, or nothing.
    #[arg(long, value_enum, default_value_t = OnError::Reply, help_heading = "Replies")]
    pub(crate) on_error: OnError,

    /// Exit after answering N requests.
    #[arg(long, value_name = "N", help_heading = "Replies")]
    pub(crate) count: Option<u64>,

    /// Do not print requests.
    #[arg(short, long)]
    pub(crate) quiet: bool,

    /// How requests are printed.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// What `msg rep --exec` answers when the command fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnError {
    /// Reply `error: <what went wrong>`.
    Reply,
    /// Send no reply: the requester sees its timeout.
    Drop,
}

const REQ_AFTER_HELP: &str = "\
Examples:
  msg req tcp://127.0.0.1:5555 hello               # one request, from the argument
  echo -n hello | msg req tcp://127.0.0.1:5555     # one request, all of stdin
  msg req tcp://127.0.0.1:5555 --file request.bin --format hex
  printf 'a\\nb\\nc\\n' | msg req tcp://127.0.0.1:5555 --lines --concurrency 3
  msg req tls://db-1:5555 --ca ca.pem --token s3cret ping

Replies are printed on stdout in request order. A connection that is refused
fails at once (use --retry to wait for the server instead); a request without
a reply fails after --timeout.";

/// `msg req`.
#[derive(Debug, Args)]
pub(crate) struct ReqArgs {
    /// Where to connect (or, with --bind, where to listen), e.g.
    /// tcp://127.0.0.1:5555.
    pub(crate) endpoint: String,

    /// The request; without it, --file or stdin is read.
    #[arg(conflicts_with = "file")]
    pub(crate) data: Option<String>,

    #[command(flatten)]
    pub(crate) input: InputArgs,

    /// How long each request may take, from sending to its reply (e.g.
    /// 500ms, 10s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,

    /// Requests in flight at once with --lines (replies still print in
    /// order).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) concurrency: u32,

    /// How replies are printed.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

const PUB_AFTER_HELP: &str = "\
Examples:
  msg pub tcp://127.0.0.1:5556 weather.paris 'rain, 14C'
  tail -f app.log | msg pub tcp://127.0.0.1:5556 logs.app --lines --wait-subscribers 0
  msg pub tcp://127.0.0.1:5556 tick now --count 100 --rate 10/s
  msg pub --connect tcp://127.0.0.1:6000 alerts disk-full   # to a bound `msg sub --bind`

Pub/sub keeps no history: a subscriber gets only what is published after its
subscription reached the publisher. So pub first waits for
--wait-subscribers subscribers (1 by default; 0 starts at once) for up to
--wait-timeout. A subscriber too slow to keep up loses the newest messages
(counted, and reported at the end).";

/// `msg pub`.
#[derive(Debug, Args)]
pub(crate) struct PubArgs {
    /// Where to listen (or, with --connect, where to connect), e.g.
    /// tcp://127.0.0.1:5556.
    pub(crate) endpoint: String,

    /// The topic every message is published under.
    pub(crate) topic: String,

    /// The message; without it, --file or stdin is read.
    #[arg(conflicts_with = "file")]
    pub(crate) data: Option<String>,

    #[command(flatten)]
    pub(crate) input: InputArgs,

    /// Publish the message N times, or, with --lines, at most N lines.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,

    /// Publish at most this many messages per second (e.g. 100, 100/s,
    /// 30/m).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub(crate) rate: Option<f64>,

    /// Wait for this many subscribers before publishing.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) wait_subscribers: usize,

    /// How long to wait for them before giving up with an error.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub(crate) wait_timeout: Duration,

    /// At the end, how long to keep delivering what is still queued.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub(crate) linger: Duration,

    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

const SUB_AFTER_HELP: &str = "\
Examples:
  msg sub tcp://127.0.0.1:5556                      # every topic
  msg sub tcp://127.0.0.1:5556 weather. alerts.     # topics starting with either
  msg sub tcp://127.0.0.1:5556 --count 1 --format json
  msg sub --bind tcp://127.0.0.1:6000 alerts        # publishers connect to us

Text output is `TOPIC PAYLOAD` per message; JSON lines carry topic, payload,
seq (the publisher's sequence number on this connection), conn (the
connection), and when so: first (the connection's first message), restart (a
publisher seen before, on a new connection: what it published in between is
lost) and lost (messages missing from the sequence just before). In text,
losses and restarts are notices on stderr. Every exit, Ctrl-C included,
ends with a summary line on stderr: messages printed, missing from the
sequences, dropped at this subscriber's recv_hwm, and stream restarts.";

/// `msg sub`.
#[derive(Debug, Args)]
pub(crate) struct SubArgs {
    /// Where to connect (or, with --bind, where to listen), e.g.
    /// tcp://127.0.0.1:5556.
    pub(crate) endpoint: String,

    /// Topic prefixes to subscribe to (default: everything).
    pub(crate) topics: Vec<String>,

    /// Exit after N messages.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,

    /// How messages are printed.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

const PUSH_AFTER_HELP: &str = "\
Examples:
  msg push tcp://127.0.0.1:5558 'job 1' 'job 2'      # two messages, in order
  seq 100 | msg push tcp://127.0.0.1:5558 --lines    # one message per line
  msg push tcp://127.0.0.1:5558 --file task.bin
  msg push --bind tcp://127.0.0.1:5559 --lines --wait-pullers 3 < jobs.txt

Each message goes to exactly one puller: round-robin over the connected
pullers that have room. Push never drops a message: it waits while every
puller is full (backpressure), and, with no puller connected, queues up to
the high-water mark for the first one to come. So push first waits for
--wait-pullers pullers (1 by default; 0 starts at once) for up to
--wait-timeout, and at the end for up to --linger to hand everything over;
what is still queued then is an error.";

/// The messages `msg push` and `msg dealer` send.
#[derive(Debug, Args)]
pub(crate) struct OutgoingArgs {
    /// The messages, one per argument, sent in order; without any, --file
    /// or stdin is read.
    #[arg(value_name = "MESSAGE", conflicts_with = "file")]
    pub(crate) data: Vec<String>,

    #[command(flatten)]
    pub(crate) input: InputArgs,

    /// Send the message N times, or, with --lines or several MESSAGEs, at
    /// most N messages.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
}

/// `msg push`.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// Where to connect (or, with --bind, where to listen), e.g.
    /// tcp://127.0.0.1:5558.
    pub(crate) endpoint: String,

    #[command(flatten)]
    pub(crate) out: OutgoingArgs,

    /// Push at most this many messages per second (e.g. 100, 100/s, 30/m).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub(crate) rate: Option<f64>,

    /// Wait for this many pullers before pushing (with --bind, so that the
    /// work is spread over all of them from the start).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) wait_pullers: usize,

    /// How long to wait for them before giving up with an error.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub(crate) wait_timeout: Duration,

    /// At the end, how long to keep delivering what is still queued.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub(crate) linger: Duration,

    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

const PULL_AFTER_HELP: &str = "\
Examples:
  msg pull tcp://127.0.0.1:5558                     # print what every pusher sends
  msg pull tcp://127.0.0.1:5558 --count 10 --format json
  msg pull --connect tcp://127.0.0.1:5559           # a worker of a `msg push --bind`

Messages from several pushers are taken fairly, one from each in turn; each
pusher's messages arrive in the order it pushed them. Text output is the
message per line (the parts of a multipart message separated by spaces);
JSON lines carry payload, or parts for a multipart message.";

/// `msg pull`.
#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// Where to listen (or, with --connect, where to connect), e.g.
    /// tcp://127.0.0.1:5558.
    pub(crate) endpoint: String,

    /// Exit after N messages.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,

    /// How messages are printed.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

const DEALER_AFTER_HELP: &str = "\
Examples:
  msg dealer tcp://127.0.0.1:5560 'job 1' 'job 2'      # two messages, print two answers
  seq 100 | msg dealer tcp://127.0.0.1:5560 --lines    # every line, answers as they come

Messages go out at once, without waiting for answers, round-robin over the
routers connected; what comes back is printed as it arrives, in whatever order
the routers answer. The dealer exits once it has as many messages back as it
sent (or --replies), and fails if --timeout passes without one arriving while
some are still due. Output is as for `msg pull`.";

/// `msg dealer`.
#[derive(Debug, Args)]
pub(crate) struct DealerArgs {
    /// Where to connect (or, with --bind, where to listen), e.g.
    /// tcp://127.0.0.1:5560.
    pub(crate) endpoint: String,

    #[command(flatten)]
    pub(crate) out: OutgoingArgs,

    /// How many messages to wait for before exiting (default: as many as
    /// were sent).
    #[arg(long, value_name = "N")]
    pub(crate) replies: Option<u64>,

    /// Fail when nothing arrives for this long while messages are still due
    /// (e.g. 500ms, 10s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,

    /// How messages are printed.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

const ROUTER_AFTER_HELP: &str = "\
Examples:
  msg router tcp://127.0.0.1:5560                    # echo every message to its sender
  msg router tcp://127.0.0.1:5560 --reply ok --format json   # who sent what, answered `ok`
  msg router tcp://127.0.0.1:5560 --count 10         # answer 10, then exit

A router takes messages from dealers and from requesters (`msg req`) and
answers each one to the peer it came from, by that peer's identity. Printed
as for `msg pull`; JSON lines also carry the sender's identity. An answer that
cannot go (the peer left) is reported on stderr, and the router goes on.";

/// `msg router`.
#[derive(Debug, Args)]
pub(crate) struct RouterArgs {
    /// Where to listen (or, with --connect, where to connect), e.g.
    /// tcp://127.0.0.1:5560.
    pub(crate) endpoint: String,

    /// Answer every message with TEXT instead of echoing it.
    #[arg(long, value_name = "TEXT")]
    pub(crate) reply: Option<String>,

    /// Exit after answering N messages.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,

    /// Do not print messages.
    #[arg(short, long)]
    pub(crate) quiet: bool,

    /// How messages are printed.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// `msg bench` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Request/reply: requests in flight against an echoing Rep socket.
    #[command(after_help = BENCH_REQREP_AFTER_HELP)]
    Reqrep(BenchReqRepArgs),
    /// Publish/subscribe: one publisher streaming to subscribers.
    #[command(after_help = BENCH_PUBSUB_AFTER_HELP)]
    Pubsub(BenchPubSubArgs),
    /// Pipeline: one pusher handing messages to pullers, waiting when they
    /// are full.
    #[command(after_help = BENCH_PUSHPULL_AFTER_HELP)]
    Pushpull(BenchPushPullArgs),
    /// Reliable delivery: concurrent senders storing messages for one
    /// receiving peer, which acknowledges what it takes in batches.
    #[command(after_help = BENCH_RELIABLE_AFTER_HELP)]
    Reliable(BenchReliableArgs),
}

const BENCH_AFTER_HELP: &str = "\
Examples:
  msg bench reqrep --transport tcp --concurrency 16
  msg bench pubsub --transport ipc --size 1KiB --duration 5s
  msg bench pushpull --pullers 4

Each prints a progress bar while it runs (on a terminal), then a table:
msgs/s, MB/s, p50, p99 and drops.";

const BENCH_REQREP_AFTER_HELP: &str = "\
Examples:
  msg bench reqrep                                   # 100,000 x 64 B over TCP, 1 in flight
  msg bench reqrep --transport ipc --concurrency 64 --duration 5s
  msg bench reqrep --transport tls --size 16KiB --compression lz4

Both sockets run in this process and talk over loopback (TLS and QUIC use a
throwaway self-signed certificate). msgs/s counts completed round trips,
MB/s their request payloads (10^6 bytes), p50 and p99 the round-trip
latency; drops are failed requests.";

const BENCH_PUBSUB_AFTER_HELP: &str = "\
Examples:
  msg bench pubsub                                   # 100,000 x 64 B over TCP, 1 subscriber
  msg bench pubsub --transport quic --size 64KiB --count 20000
  msg bench pubsub --subscribers 4 --duration 5s

The publisher never waits for subscribers: what a subscriber cannot keep up
with is dropped at a high-water mark and shown as drops. msgs/s and MB/s count
delivered messages (all subscribers together); p50 and p99 are the time from
publish to receipt (payloads of 8 bytes or more carry a timestamp).";

/// What every benchmark takes.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The transport to measure.
    #[arg(long, value_enum, default_value_t = BenchTransport::Tcp)]
    pub(crate) transport: BenchTransport,

    /// Payload size (e.g. 64, 1KiB, 1MiB).
    #[arg(long, value_name = "BYTES", default_value = "64", value_parser = parse_size)]
    pub(crate) size: usize,

    /// Messages to send (default 100,000).
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub(crate) count: Option<u64>,

    /// Send for this long instead of a fixed count (e.g. 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,

    /// Compress payloads (only those of 1 KiB or more are compressed; the
    /// bench payload is repetitive text, so ratios are optimistic).
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub(crate) compression: CompressionArg,

    /// Print the summary as one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `msg bench reqrep`.
#[derive(Debug, Args)]
pub(crate) struct BenchReqRepArgs {
    #[command(flatten)]
    pub(crate) bench: BenchArgs,

    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) concurrency: u32,
}

/// `msg bench pubsub`.
#[derive(Debug, Args)]
pub(crate) struct BenchPubSubArgs {
    #[command(flatten)]
    pub(crate) bench: BenchArgs,

    /// Subscribers, each on its own connection.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) subscribers: u32,
}

const BENCH_PUSHPULL_AFTER_HELP: &str = "\
Examples:
  msg bench pushpull                                 # 100,000 x 64 B over TCP, 1 puller
  msg bench pushpull --transport ipc --pullers 4 --duration 5s
  msg bench pushpull --transport quic --size 16KiB

The pusher waits whenever every puller is full (backpressure), so nothing is
dropped: drops are always 0, and the run fails if a message goes missing.
msgs/s and MB/s count delivered messages (all pullers together); p50 and p99
are the time from send to receipt (payloads of 8 bytes or more carry a
timestamp).";

/// `msg bench pushpull`.
#[derive(Debug, Args)]
pub(crate) struct BenchPushPullArgs {
    #[command(flatten)]
    pub(crate) bench: BenchArgs,

    /// Pullers, each on its own connection; messages go round-robin.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) pullers: u32,
}

const BENCH_RELIABLE_AFTER_HELP: &str = "\
Examples:
  msg bench reliable                                 # 100,000 x 64 B, redb store, 64 senders
  msg bench reliable --backend memory --concurrency 1
  msg bench reliable --transport ipc --duration 5s

Both endpoints run in this process, each on its own store (redb files in a
temporary directory, or memory). A send counts once the receiving peer has
delivered it and the sender has its acknowledgement. msgs/s and MB/s count
delivered messages; p50 and p99 are the time from send_to to delivery; drops
are always 0 (a reliable message is never dropped), failed sends are errors.";

/// `msg bench reliable`.
#[derive(Debug, Args)]
pub(crate) struct BenchReliableArgs {
    #[command(flatten)]
    pub(crate) bench: BenchArgs,

    /// Tasks calling send_to at once (their stores share fsyncs).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) concurrency: u32,

    /// Where both endpoints keep their messages.
    #[arg(long, value_enum, default_value_t = BenchBackend::Redb)]
    pub(crate) backend: BenchBackend,
}

/// Storage for `msg bench reliable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchBackend {
    /// redb files in a temporary directory: durable, one fsync per batch.
    Redb,
    /// In memory: no disk at all.
    Memory,
}

/// The transports a benchmark can run over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchTransport {
    /// TCP over loopback.
    Tcp,
    /// A Unix domain socket in a temporary directory.
    Ipc,
    /// In-process pipes (no kernel involved).
    Inproc,
    /// QUIC over loopback.
    Quic,
    /// TLS over TCP over loopback.
    Tls,
}

impl BenchTransport {
    /// The scheme's name, for the summary.
    pub(crate) fn name(self) -> &'static str {
        match self {
            BenchTransport::Tcp => "tcp",
            BenchTransport::Ipc => "ipc",
            BenchTransport::Inproc => "inproc",
            BenchTransport::Quic => "quic",
            BenchTransport::Tls => "tls",
        }
    }
}

const SEND_AFTER_HELP: &str = "\
Examples:
  msg send bob tcp://127.0.0.1:5557 'hello bob'       # one message
  msg send bob tcp://127.0.0.1:5557 --lines           # every line typed
  msg send bob tcp://127.0.0.1:5557 --file report.pdf --identity alice

Each message is stored in this sender's store (a redb file) before it
counts as sent, then sent, and resent, until the peer acknowledges it: the
peer can be down while you type. At the end, send waits up to --linger for
the acknowledgements; what is still unacknowledged stays in the store and
goes out the next time `msg send` runs with the same store.

The peer is named by its identity (`msg recv --identity NAME`). The store
defaults to $XDG_DATA_HOME/msg/IDENTITY.redb (~/.local/share/msg/...), one
per identity; two processes cannot share one.";

/// `msg send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The identity of the receiving peer.
    pub(crate) peer: String,

    /// Where to connect (or, with --bind, where to listen), e.g.
    /// tcp://127.0.0.1:5557.
    pub(crate) endpoint: String,

    /// The message; without it, --file or stdin is read.
    #[arg(conflicts_with = "file")]
    pub(crate) data: Option<String>,

    #[command(flatten)]
    pub(crate) input: InputArgs,

    /// Send the message N times, or, with --lines, at most N lines.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,

    /// At the end, how long to wait for the peer's acknowledgements (0 to
    /// exit as soon as everything is stored).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) linger: Duration,

    #[command(flatten)]
    pub(crate) store: StoreArgs,

    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

const RECV_AFTER_HELP: &str = "\
Examples:
  msg recv tcp://127.0.0.1:5557 --identity bob
  msg recv tcp://127.0.0.1:5557 --identity bob --count 10 --format json
  msg recv --connect tcp://127.0.0.1:5558 --identity bob   # to a `msg send --bind`

Messages arrive in order per sender, once each. A message is acknowledged
only after it has been written to stdout: one that was received but not
printed (the process was killed, stdout closed) is delivered again next time.
Text output is the payload per line; JSON lines carry peer, seq and payload.";

/// `msg recv`.
#[derive(Debug, Args)]
pub(crate) struct RecvArgs {
    /// Where to listen (or, with --connect, where to connect), e.g.
    /// tcp://127.0.0.1:5557.
    pub(crate) endpoint: String,

    /// Exit after N messages.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,

    /// How messages are printed.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    #[command(flatten)]
    pub(crate) store: StoreArgs,

    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// Where a reliable command keeps its messages.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// The store: a redb file, created if missing (default:
    /// $XDG_DATA_HOME/msg/IDENTITY.redb), or a PostgreSQL database,
    /// postgres://USER@HOST/DB, shared by the instances that may run this
    /// identity. Put a connection string with a password in MSG_STORE, not
    /// on the command line.
    #[arg(
        long,
        value_name = "PATH|URL",
        env = "MSG_STORE",
        hide_env_values = true,
        help_heading = "Reliable"
    )]
    pub(crate) store: Option<String>,
}

/// `msg demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Keep the demo's redb stores in this directory instead of a temporary
    /// one (it is created if missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sides_default_per_command_and_follow_the_flags() {
        let cli = Cli::try_parse_from(["msg", "req", "tcp://127.0.0.1:1", "x", "--bind"]).unwrap();
        let Command::Req(req) = cli.command else {
            panic!("not req")
        };
        assert_eq!(req.conn.side(Side::Connect), Side::Bind);
        let cli = Cli::try_parse_from(["msg", "rep", "tcp://127.0.0.1:1"]).unwrap();
        let Command::Rep(rep) = cli.command else {
            panic!("not rep")
        };
        assert_eq!(rep.conn.side(Side::Bind), Side::Bind);
        assert!(Cli::try_parse_from(["msg", "rep", "tcp://x:1", "--bind", "--connect"]).is_err());
    }
}
