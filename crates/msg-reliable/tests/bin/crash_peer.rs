//! A reliable socket as a child process, for the crash tests
//! (`tests/crash_sigkill.rs`), which kill it with SIGKILL at random moments.
//!
//! ```text
//! reliable-crash-peer sender   <store> <log> <endpoint> <count>
//! reliable-crash-peer receiver <store> <log> <endpoint>
//! reliable-crash-peer drain    <store> <log>
//! ```
//!
//! Every line is written to the log with one unbuffered `write` right after
//! the event it records, so a kill loses at most the line of an event in
//! progress:
//!
//! - the sender (identity `sender`) connects to `endpoint` and sends
//!   payloads `p1`, `p2`, ... to `receiver` until `count` are confirmed,
//!   logging `confirmed <seq> <payload>` after each `send_to` returned; it
//!   resumes from the number of confirmed lines, and paces itself (2 ms
//!   between sends) so that kills land while it sends. Then it waits until the
//!   receiver has stored everything, logs `done` and exits.
//! - the receiver (identity `receiver`) binds `endpoint` and, for each
//!   delivery, logs `delivered <seq> <payload>`, acknowledges it and logs
//!   `acked <seq>`.
//! - drain opens the receiver's store without a network, delivers what it
//!   had not acknowledged (known from the store), and exits.
//!
//! `<store>` is a redb file, or `pg:<schema>` for a `PostgresBackend` (built
//! with the `postgres` feature) on the server whose connection string is in
//! `MSG_TEST_POSTGRES`, in that schema: then a restarted process is another
//! instance taking over the identity, waiting until the killed one's
//! database session is gone. `MSG_TEST_LEASE_MS` sets its lease. A sender
//! that finds itself fenced (another instance took over while it was
//! paused) logs `fenced` and exits with status 3.

use std::io::Write;
use std::time::Duration;

use msg_reliable::{Backend, PeerId, RedbBackend, ReliableError, ReliableOptions, ReliableSocket};
#[cfg(feature = "postgres")]
use msg_reliable::{PostgresBackend, PostgresOptions};
use msg_socket::SocketOptions;

fn log_line(log: &mut std::fs::File, line: String) {
    log.write_all(format!("{line}\n").as_bytes())
        .expect("log write");
}

fn socket_options() -> SocketOptions {
    let mut o = SocketOptions::new();
    o.reconnect_initial(Duration::from_millis(10))
        .reconnect_max(Duration::from_millis(50))
        .heartbeat_interval(Some(Duration::from_millis(200)))
        .heartbeat_timeout(Duration::from_secs(1));
    o
}

fn reliable_options() -> ReliableOptions {
    let mut o = ReliableOptions::new();
    o.ack_timeout(Duration::from_millis(200))
        .max_ack_timeout(Duration::from_secs(1));
    o
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let store = &args[2];
    match store.strip_prefix("pg:") {
        #[cfg(feature = "postgres")]
        Some(schema) => {
            let me: PeerId = if args[1] == "sender" {
                "sender"
            } else {
                "receiver"
            }
            .parse()
            .unwrap();
            let url = std::env::var("MSG_TEST_POSTGRES").expect("MSG_TEST_POSTGRES");
            let mut opts = PostgresOptions::new();
            opts.schema(schema).acquire_timeout(Duration::from_secs(60));
            if let Ok(ms) = std::env::var("MSG_TEST_LEASE_MS") {
                opts.lease(Duration::from_millis(ms.parse().expect("lease ms")));
            }
            let store = PostgresBackend::open_with_options(&url, &me, &opts)
                .await
                .expect("open store");
            run(&args, store.clone()).await;
            store.close().await;
        }
        _ => {
            let store = RedbBackend::open(store).await.expect("open store");
            run(&args, store.clone()).await;
            store.close().await;
        }
    }
}

async fn run<B: Backend + Clone>(args: &[String], store: B) {
    let (mode, log) = (&args[1], &args[3]);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    let sender: PeerId = "sender".parse().unwrap();
    let receiver: PeerId = "receiver".parse().unwrap();
    match mode.as_str() {
        "sender" => {
            let endpoint = &args[4];
            let count: u64 = args[5].parse().unwrap();
            let done = std::fs::read_to_string(&args[3]).unwrap_or_default();
            let mut confirmed = done.lines().filter(|l| l.starts_with("confirmed")).count() as u64;
            let sock = ReliableSocket::open_with_socket_options(
                sender,
                reliable_options(),
                socket_options(),
                store,
            )
            .await
            .expect("open socket");
            sock.connect(endpoint).expect("connect");
            while confirmed < count {
                let payload = format!("p{}", confirmed + 1);
                let seq = match sock.send_to(&receiver, payload.clone()).await {
                    Ok(seq) => seq,
                    // Another instance took the identity over: this one
                    // must stop (and could not write if it tried).
                    Err(ReliableError::Storage(e)) if e.is_fenced() => {
                        log_line(&mut log, "fenced".into());
                        std::process::exit(3);
                    }
                    Err(e) => panic!("send_to: {e:?}"),
                };
                log_line(&mut log, format!("confirmed {seq} {payload}"));
                confirmed += 1;
                // Paced, so that the test's kills land while it still sends.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            // Wait until the receiver has stored everything.
            let report = sock.shutdown(Duration::from_secs(30)).await;
            assert!(report.is_complete(), "{report:?}");
            log_line(&mut log, "done".into());
        }
        "receiver" => {
            let endpoint = &args[4];
            log_line(&mut log, "start".into());
            let sock = ReliableSocket::open_with_socket_options(
                receiver,
                reliable_options(),
                socket_options(),
                store,
            )
            .await
            .expect("open socket");
            // The previous run's listener may take a moment to go away.
            let mut tries = 0;
            while let Err(e) = sock.bind(endpoint).await {
                tries += 1;
                assert!(tries < 200, "bind {endpoint}: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            while let Some(d) = sock.recv().await {
                let payload = String::from_utf8_lossy(d.payload()).into_owned();
                let seq = d.seq();
                log_line(&mut log, format!("delivered {seq} {payload}"));
                d.ack().await.expect("ack");
                log_line(&mut log, format!("acked {seq}"));
            }
        }
        "drain" => {
            log_line(&mut log, "start".into());
            let undelivered = store
                .load_incoming(&sender)
                .await
                .expect("load")
                .undelivered
                .len();
            let sock = ReliableSocket::open(receiver, reliable_options(), store.clone())
                .await
                .expect("open socket");
            for _ in 0..undelivered {
                let d = sock.recv().await.expect("a delivery");
                let payload = String::from_utf8_lossy(d.payload()).into_owned();
                let seq = d.seq();
                log_line(&mut log, format!("delivered {seq} {payload}"));
                d.ack().await.expect("ack");
                log_line(&mut log, format!("acked {seq}"));
            }
            sock.shutdown(Duration::ZERO).await;
        }
        other => panic!("unknown mode {other}"),
    }
}
