//! `msg rep` and `msg req` as separate processes on loopback: every way of
//! answering, every way of giving the request, every output format.

use crate::common::{Proc, run};

/// A `msg rep` on a free loopback port, answering `count` requests.
fn rep(extra: &[&str], count: u32) -> (Proc, String) {
    let count = count.to_string();
    let mut args = vec!["rep", "tcp://127.0.0.1:0", "--count", &count];
    args.extend_from_slice(extra);
    let mut rep = Proc::start(&args);
    let endpoint = rep.listening();
    assert!(endpoint.starts_with("tcp://127.0.0.1:"), "{endpoint}");
    (rep, endpoint)
}

#[test]
fn rep_echoes_and_prints_the_request() {
    let (rep, endpoint) = rep(&[], 1);
    assert_eq!(run(&["req", &endpoint, "hello"], b"").ok(), ["hello"]);
    assert_eq!(rep.finish().ok(), ["hello"]);
}

#[test]
fn rep_answers_with_a_fixed_reply() {
    let (rep, endpoint) = rep(&["--reply", "pong", "--quiet"], 2);
    assert_eq!(run(&["req", &endpoint, "ping"], b"").ok(), ["pong"]);
    assert_eq!(run(&["req", &endpoint, "anything"], b"").ok(), ["pong"]);
    assert!(rep.finish().ok().is_empty(), "--quiet prints nothing");
}

#[test]
fn rep_exec_replies_with_the_commands_stdout() {
    let (rep, endpoint) = rep(&["--exec", "tr a-z A-Z"], 1);
    assert_eq!(run(&["req", &endpoint, "hello"], b"").ok(), ["HELLO"]);
    rep.finish().ok();
}

#[test]
fn rep_exec_tells_the_command_who_asked() {
    let (rep, endpoint) = rep(&["--exec", "echo \"$MSG_PEER $MSG_PEER_IDENTITY\""], 1);
    let reply = run(&["req", &endpoint, "x", "--identity", "alice"], b"").ok();
    assert!(reply[0].starts_with("tcp://127.0.0.1:"), "{reply:?}");
    assert!(reply[0].ends_with(" alice"), "{reply:?}");
    rep.finish().ok();
}

#[test]
fn rep_exec_failure_sends_an_error_reply_and_logs_it() {
    let (mut rep, endpoint) = rep(&["--exec", "echo oops >&2; exit 3"], 1);
    let reply = run(&["req", &endpoint, "x"], b"").ok();
    assert_eq!(reply, ["error: command failed (exit status: 3): oops"]);
    let warning = rep.stderr_line(|l| l.starts_with("msg: warning: "));
    assert!(warning.contains("exit status: 3"), "{warning}");
    rep.finish().ok();
}

#[test]
fn rep_exec_kills_a_command_past_its_timeout() {
    let (rep, endpoint) = rep(&["--exec", "sleep 10", "--exec-timeout", "200ms"], 1);
    let reply = run(&["req", &endpoint, "x"], b"").ok();
    assert_eq!(reply, ["error: timed out after 200 ms"]);
    rep.finish().ok();
}

#[test]
fn rep_exec_failure_with_on_error_drop_leaves_the_requester_to_its_timeout() {
    // No --count: a rep that has handled its last request closes, and its
    // requester would see the connection go rather than its timeout.
    let mut rep = Proc::start(&[
        "rep",
        "tcp://127.0.0.1:0",
        "--exec",
        "exit 1",
        "--on-error",
        "drop",
    ]);
    let endpoint = rep.listening();
    let error = run(&["req", &endpoint, "x", "--timeout", "300ms"], b"").one_error_line();
    assert_eq!(error, "msg: error: no reply within 300 ms");
    let warning = rep.stderr_line(|l| l.starts_with("msg: warning: "));
    assert!(warning.contains("exit status: 1"), "{warning}");
}

#[test]
fn req_reads_the_whole_of_stdin_as_one_request() {
    let (rep, endpoint) = rep(&["--quiet"], 1);
    let reply = run(&["req", &endpoint], b"two\nlines\n").ok();
    assert_eq!(reply, ["two", "lines"]);
    rep.finish().ok();
}

#[test]
fn req_sends_one_request_per_line_of_stdin() {
    let (rep, endpoint) = rep(&[], 3);
    let replies = run(&["req", &endpoint, "--lines"], b"one\ntwo\nthree\n").ok();
    assert_eq!(replies, ["one", "two", "three"]);
    assert_eq!(rep.finish().ok(), ["one", "two", "three"]);
}

#[test]
fn req_keeps_replies_in_order_with_requests_in_flight() {
    let (rep, endpoint) = rep(&["--quiet", "--concurrency", "8"], 20);
    let input: String = (0..20).map(|i| format!("{i}\n")).collect();
    let replies = run(
        &["req", &endpoint, "--lines", "--concurrency", "8"],
        input.as_bytes(),
    )
    .ok();
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(replies, expected);
    rep.finish().ok();
}

#[test]
fn req_reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.txt");
    std::fs::write(&path, "from a file").unwrap();
    let (rep, endpoint) = rep(&["--quiet"], 1);
    let reply = run(&["req", &endpoint, "--file", path.to_str().unwrap()], b"").ok();
    assert_eq!(reply, ["from a file"]);
    rep.finish().ok();
}

#[test]
fn json_lines_carry_the_payload_and_the_requester() {
    let (rep, endpoint) = rep(&["--format", "json", "--reply", "\u{1F600} ok"], 1);
    let reply = run(
        &[
            "req",
            &endpoint,
            "hi",
            "--format",
            "json",
            "--identity",
            "bob",
        ],
        b"",
    )
    .ok();
    let reply: serde_json::Value = serde_json::from_str(&reply[0]).unwrap();
    assert_eq!(reply, serde_json::json!({ "payload": "\u{1F600} ok" }));
    let request = rep.finish().ok();
    let request: serde_json::Value = serde_json::from_str(&request[0]).unwrap();
    assert_eq!(request["payload"], "hi");
    assert_eq!(request["identity"], "bob");
    assert!(
        request["peer"]
            .as_str()
            .unwrap()
            .starts_with("tcp://127.0.0.1:")
    );
}

#[test]
fn hex_output_shows_every_byte() {
    let (rep, endpoint) = rep(&["--format", "hex"], 1);
    let reply = run(&["req", &endpoint, "--format", "hex"], &[0x00, 0xff, b'a']).ok();
    assert_eq!(reply, ["00ff61"]);
    assert_eq!(rep.finish().ok(), ["00ff61"]);
}

#[test]
fn binary_payloads_fall_back_to_hex_in_json() {
    let (rep, endpoint) = rep(&["--quiet"], 1);
    let reply = run(&["req", &endpoint, "--format", "json"], &[0xff, 0xfe]).ok();
    assert_eq!(reply, [r#"{"payload_hex":"fffe"}"#]);
    rep.finish().ok();
}

#[test]
fn ipc_endpoints_work_between_processes() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("ipc://{}", dir.path().join("rep.sock").display());
    let mut rep = Proc::start(&["rep", &endpoint, "--count", "1"]);
    assert_eq!(rep.listening(), endpoint);
    assert_eq!(run(&["req", &endpoint, "over ipc"], b"").ok(), ["over ipc"]);
    rep.finish().ok();
}

#[test]
fn rep_can_connect_to_a_binding_req() {
    let mut req = Proc::start(&["req", "--bind", "tcp://127.0.0.1:0", "reversed"]);
    let endpoint = req.listening();
    let rep = Proc::start(&["rep", "--connect", &endpoint, "--count", "1", "--quiet"]);
    assert_eq!(req.finish().ok(), ["reversed"]);
    rep.finish().ok();
}
