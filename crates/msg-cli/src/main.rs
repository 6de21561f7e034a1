//! `msg`, the command-line tool of the msg messaging library.
//!
//! Request/reply (`msg rep`, `msg req`), publish/subscribe (`msg pub`,
//! `msg sub`), pipelines (`msg push`, `msg pull`), reliable delivery (`msg send`, `msg recv`), benchmarks
//! (`msg bench`) and a guided tour (`msg demo`) over every transport msg has,
//! built on the public API of the `msg` crate only. `msg --help` and
//! `msg COMMAND --help` describe each command with examples; the book's
//! "Command-line tool" chapter has sessions to copy.
//!
//! Conventions every command follows:
//!
//! - Data goes to stdout; status (`msg: listening on ENDPOINT`), warnings
//!   and errors go to stderr.
//! - An error is one line, `msg: error: ...`, and exit status 1; a usage
//!   error is one line too, with status 2. Nothing panics at a user.
//! - `-v`, `-vv`, `-vvv` turn on tracing logs (info, debug, trace) on
//!   stderr; `RUST_LOG` overrides them.
//!
//! The code is a thin layer over the library: `cli` declares the command
//! line, `setup` turns flags into socket options and watches connections,
//! `input` and `output` read payloads and print messages, and one module
//! per command does the rest.

mod bench;
mod cli;
mod demo;
mod input;
mod metrics_http;
mod output;
mod parse;
mod pipeline;
mod publish;
mod reliable;
mod rep;
mod req;
mod routing;
mod setup;
mod subscribe;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::{Cli, Command};
use crate::output::StdoutClosed;

fn main() -> ExitCode {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("msg: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let result = run(cli.command).await;
        if result.is_ok() {
            finish_background_work().await;
        }
        result
    });
    // What may be left is a blocking read of stdin (after an error, say),
    // which must not keep the process alive.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<StdoutClosed>() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("msg: error: {}", one_line(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Runs one command to completion, serving its metrics meanwhile when asked
/// to.
async fn run(command: Command) -> anyhow::Result<()> {
    let server = match command.conn().and_then(|c| c.metrics_addr.as_deref()) {
        Some(addr) => Some(metrics_http::serve(addr).await?),
        None => None,
    };
    let result = run_command(command).await;
    if let Some(server) = server {
        server.abort();
    }
    result
}

/// Runs one command to completion.
async fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Rep(args) => rep::run(args).await,
        Command::Req(args) => req::run(args).await,
        Command::Pub(args) => publish::run(args).await,
        Command::Sub(args) => subscribe::run(args).await,
        Command::Push(args) => pipeline::push(args).await,
        Command::Pull(args) => pipeline::pull(args).await,
        Command::Dealer(args) => routing::dealer(args).await,
        Command::Router(args) => routing::router(args).await,
        Command::Send(args) => reliable::send(args).await,
        Command::Recv(args) => reliable::recv(args).await,
        Command::Bench(command) => bench::run(command).await,
        Command::Demo(args) => demo::run(args).await,
    }
}

/// The longest the process waits at exit for the sockets' background work:
/// the default QUIC linger.
const FINISH_LIMIT: Duration = Duration::from_secs(5);

/// Waits (up to [`FINISH_LIMIT`]) until no task is left on the runtime.
///
/// A closed socket has handed everything to its transports, but a QUIC
/// connection still needs the peer to acknowledge the last data: the
/// transport waits for that in a background task, and data a process
/// abandons by exiting is lost, unlike data in a TCP socket's kernel buffer.
/// So a `msg rep --count` or `msg pub` over QUIC must not exit before those
/// tasks are done.
async fn finish_background_work() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = tokio::time::Instant::now() + FINISH_LIMIT;
    while metrics.num_alive_tasks() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Prints a warning line on stderr.
pub(crate) fn warn(text: &str) {
    eprintln!("msg: warning: {}", one_line(text));
}

/// `text` with its line breaks folded into spaces: errors are one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reports a command-line error in one line (with the usage), or prints
/// help and version as clap does.
fn usage_error(error: &clap::Error) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
        _ => {}
    }
    // clap renders "error: WHAT" (continued on indented lines, such as the
    // list of missing arguments), tips, then "Usage: ...".
    let rendered = error.render().to_string();
    let mut lines = rendered.lines();
    let mut what = lines
        .next()
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ")
        .to_owned();
    for continued in lines.by_ref().take_while(|l| l.starts_with(' ')) {
        what.push(' ');
        what.push_str(continued.trim());
    }
    let usage = lines
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| format!("; usage: {u}"))
        .unwrap_or_default();
    eprintln!("msg: error: {}{usage} (see --help)", one_line(&what));
    ExitCode::from(2)
}

/// Sets up `tracing` logs on stderr for `-v` (info), `-vv` (debug) and
/// `-vvv` (trace), or as `RUST_LOG` says. Without either, nothing is
/// logged: the commands report what matters themselves.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(match verbose {
            0 => "off",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Turns a panic (a bug) into one error line instead of a message and a
/// backtrace hint.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown panic");
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "msg: error: internal error{place}: {} (please report it)",
            one_line(what)
        );
    }));
}
