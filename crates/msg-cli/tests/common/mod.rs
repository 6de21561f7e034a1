//! Running the real `msg` binary as child processes and reading what they
//! print, line by line, to synchronise with them (no sleeps, no fixed
//! ports: a binding process prints `msg: listening on ENDPOINT` with the
//! port it got).
//!
//! Every wait has a deadline, only so that a broken build fails instead of
//! hanging; a passing run never gets near it.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A `msg` command line, with an environment that cannot change its output.
pub fn msg(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_msg"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("MSG_TOKEN")
        .env_remove("MSG_STORE");
    command
}

/// A running `msg` process; killed when dropped.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stderr line read so far, for failure messages.
    seen_stderr: Vec<String>,
    args: String,
}

/// How a process ended, with everything it printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Finished {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> Vec<String> {
        assert!(self.status.success(), "msg failed: {self:#?}");
        self.stdout
    }

    /// Asserts success and returns stdout parsed as JSON lines (for
    /// `--format json`).
    #[track_caller]
    pub fn json(self) -> Vec<serde_json::Value> {
        self.ok()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Asserts a failure reported the way every error is: exit status 1
    /// and exactly one `msg: error: ...` line on stderr. Returns the line.
    #[track_caller]
    pub fn one_error_line(self) -> String {
        assert_eq!(self.status.code(), Some(1), "{self:#?}");
        let errors: Vec<&String> = self
            .stderr
            .iter()
            .filter(|l| l.starts_with("msg: error: "))
            .collect();
        assert_eq!(errors.len(), 1, "one error line expected: {self:#?}");
        assert!(
            self.stderr
                .iter()
                .all(|l| l.starts_with("msg: ") && !l.contains("panicked")),
            "stderr holds more than msg's own lines: {self:#?}"
        );
        errors[0].clone()
    }
}

impl Proc {
    /// Starts `msg ARGS` with stdin closed.
    pub fn start(args: &[&str]) -> Proc {
        Self::spawn(args, false)
    }

    /// Starts `msg ARGS` with a stdin to write to ([`Proc::write`],
    /// [`Proc::close_stdin`]).
    pub fn start_with_stdin(args: &[&str]) -> Proc {
        Self::spawn(args, true)
    }

    /// Starts `msg ARGS` with stdin closed and `env` added to its
    /// environment.
    pub fn start_with_env(args: &[&str], env: &[(&str, &std::path::Path)]) -> Proc {
        Self::spawn_in(msg(args).envs(env.iter().copied()), args, false)
    }

    fn spawn(args: &[&str], with_stdin: bool) -> Proc {
        Self::spawn_in(&mut msg(args), args, with_stdin)
    }

    fn spawn_in(command: &mut Command, args: &[&str], with_stdin: bool) -> Proc {
        let mut child = command
            .stdin(if with_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start msg");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        Proc {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            seen_stderr: Vec::new(),
            args: args.join(" "),
        }
    }

    /// The process id, to signal it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes to the process's stdin.
    pub fn write(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("started with a stdin");
        stdin.write_all(data).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stderr line that satisfies `pred`, skipping others.
    #[track_caller]
    pub fn stderr_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen_stderr.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "`msg {}` printed no expected line on stderr: {:?}",
                        self.args, self.seen_stderr
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "`msg {}` closed stderr without the expected line: {:?}",
                    self.args, self.seen_stderr
                ),
            }
        }
    }

    /// The endpoint from `msg: listening on ENDPOINT`.
    #[track_caller]
    pub fn listening(&mut self) -> String {
        let line = self.stderr_line(|l| l.starts_with("msg: listening on "));
        line.trim_start_matches("msg: listening on ").to_owned()
    }

    /// The next stdout line.
    #[track_caller]
    pub fn stdout_line(&mut self) -> String {
        match self.stdout.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(e) => panic!("`msg {}` printed no line on stdout: {e}", self.args),
        }
    }

    /// Waits for the process to exit and collects the rest of its output.
    #[track_caller]
    pub fn finish(mut self) -> Finished {
        self.stdin = None;
        let until = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for msg") {
                break status;
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                panic!("`msg {}` did not exit: {:?}", self.args, self.seen_stderr);
            }
            thread::sleep(Duration::from_millis(5));
        };
        let stdout = drain(&self.stdout, until);
        let mut stderr = std::mem::take(&mut self.seen_stderr);
        stderr.extend(drain(&self.stderr, until));
        Finished {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `msg ARGS` with `input` on stdin to completion.
#[track_caller]
pub fn run(args: &[&str], input: &[u8]) -> Finished {
    let mut proc = Proc::start_with_stdin(args);
    // A command that does not read its stdin may close it first.
    if let Some(stdin) = proc.stdin.as_mut() {
        let _ = stdin.write_all(input);
    }
    proc.finish()
}

/// A thread that reads `stream` line by line into a channel.
fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    if tx.send(text.trim_end_matches('\n').to_owned()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Every line left in `rx` until its writer closes.
fn drain(rx: &Receiver<String>, until: Instant) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => out.push(line),
            Err(_) => return out,
        }
    }
}
