//! `msg push` and `msg pull` as separate processes on loopback.

use crate::common::{Proc, run};

#[test]
fn push_to_pull_delivers_every_line_in_order() {
    let lines: Vec<String> = (1..=200).map(|n| format!("line {n}")).collect();
    let mut pull = Proc::start(&["pull", "tcp://127.0.0.1:0", "--count", "200"]);
    let endpoint = pull.listening();
    let input = lines.join("\n") + "\n";
    run(&["push", &endpoint, "--lines"], input.as_bytes()).ok();
    assert_eq!(pull.finish().ok(), lines);
}

#[test]
fn push_sends_each_argument_as_a_message_over_ipc() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("ipc://{}", dir.path().join("pull.sock").display());
    let mut pull = Proc::start(&["pull", &endpoint, "--count", "3", "--format", "json"]);
    pull.listening();
    run(
        &[
            "push",
            &endpoint,
            "job 1",
            "job 2",
            "",
            "--wait-pullers",
            "1",
        ],
        b"",
    )
    .ok();
    let messages = pull.finish().json();
    assert_eq!(
        messages,
        [
            serde_json::json!({ "payload": "job 1" }),
            serde_json::json!({ "payload": "job 2" }),
            serde_json::json!({ "payload": "" }),
        ]
    );
}

#[test]
fn a_bound_push_waits_for_its_puller_and_repeats_with_count() {
    let mut push = Proc::start(&["push", "--bind", "tcp://127.0.0.1:0", "hi", "--count", "3"]);
    let endpoint = push.listening();
    let pull = Proc::start(&[
        "pull",
        "--connect",
        &endpoint,
        "--count",
        "3",
        "--format",
        "hex",
    ]);
    push.finish().ok();
    assert_eq!(pull.finish().ok(), ["6869", "6869", "6869"]);
}

#[test]
fn push_from_stdin_whole_is_one_message() {
    let mut pull = Proc::start(&[
        "pull",
        "tcp://127.0.0.1:0",
        "--count",
        "1",
        "--format",
        "json",
    ]);
    let endpoint = pull.listening();
    run(&["push", &endpoint], b"two\nlines").ok();
    assert_eq!(pull.finish().ok(), [r#"{"payload":"two\nlines"}"#]);
}

#[test]
fn push_gives_up_when_no_puller_comes() {
    let error = run(
        &[
            "push",
            "--bind",
            "tcp://127.0.0.1:0",
            "x",
            "--wait-timeout",
            "200ms",
        ],
        b"",
    )
    .one_error_line();
    assert_eq!(
        error,
        "msg: error: 0 of 1 puller(s) after waiting 200 ms (--wait-pullers, --wait-timeout)"
    );
}

#[test]
fn push_to_nothing_fails_at_once() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let error = run(&["push", &endpoint, "x"], b"").one_error_line();
    assert!(error.contains("connection refused"), "{error}");
}
