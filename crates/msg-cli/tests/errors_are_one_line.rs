//! Every failure is one `msg: error: ...` line on stderr and a non-zero
//! exit status, never a panic or a backtrace.

use crate::common::{Proc, run};

#[test]
fn a_bad_endpoint_is_one_error_line() {
    let error = run(&["req", "localhost:5555", "x"], b"").one_error_line();
    assert!(
        error.contains("invalid endpoint \"localhost:5555\""),
        "{error}"
    );
    let error = run(&["sub", "tcp://127.0.0.1:99999"], b"").one_error_line();
    assert!(error.contains("bad port"), "{error}");
}

#[test]
fn inproc_endpoints_are_refused_between_processes() {
    let error = run(&["rep", "inproc://x"], b"").one_error_line();
    assert!(error.contains("same process"), "{error}");
}

#[test]
fn a_port_in_use_is_one_error_line() {
    let mut first = Proc::start(&["rep", "tcp://127.0.0.1:0"]);
    let endpoint = first.listening();
    let error = run(&["rep", &endpoint], b"").one_error_line();
    assert_eq!(
        error,
        format!("msg: error: address already in use: {endpoint}")
    );
}

#[test]
fn a_refused_connection_fails_at_once() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let error = run(&["req", &endpoint, "x"], b"").one_error_line();
    assert_eq!(
        error,
        format!(
            "msg: error: cannot connect: connection refused: nothing is listening at {endpoint}"
        )
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "not a timeout"
    );
    let error = run(&["sub", &endpoint], b"").one_error_line();
    assert!(error.contains("connection refused"), "{error}");
}

#[test]
fn with_retry_a_missing_server_ends_in_a_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let finished = run(
        &["req", &endpoint, "x", "--retry", "--timeout", "300ms"],
        b"",
    );
    assert!(
        finished
            .stderr
            .iter()
            .any(|l| l.starts_with("msg: warning: cannot connect")),
        "{finished:#?}"
    );
    let error = finished.one_error_line();
    assert_eq!(
        error,
        format!("msg: error: no reply within 300 ms: not connected to {endpoint}")
    );
}

#[test]
fn a_rejected_token_shows_the_servers_reason() {
    let mut rep = Proc::start(&[
        "rep",
        "tcp://127.0.0.1:0",
        "--accept-token",
        "s3cret",
        "--count",
        "1",
    ]);
    let endpoint = rep.listening();
    let error = run(&["req", &endpoint, "x", "--token", "guess"], b"").one_error_line();
    assert!(
        error.ends_with("rejected our authentication: invalid token"),
        "{error}"
    );
    let error = run(&["req", &endpoint, "x"], b"").one_error_line();
    assert!(error.contains("a token is required"), "{error}");
    // The right token gets in.
    assert_eq!(
        run(&["req", &endpoint, "x", "--token", "s3cret"], b"").ok(),
        ["x"]
    );
    rep.finish().ok();
}

#[test]
fn connecting_to_the_wrong_socket_type_is_one_error_line() {
    let mut publisher = Proc::start(&["pub", "tcp://127.0.0.1:0", "t", "x"]);
    let endpoint = publisher.listening();
    let error = run(&["req", &endpoint, "x"], b"").one_error_line();
    assert!(error.contains("handshake"), "{error}");
}

#[test]
fn a_missing_input_file_is_one_error_line() {
    let mut rep = Proc::start(&["rep", "tcp://127.0.0.1:0"]);
    let endpoint = rep.listening();
    let error = run(&["req", &endpoint, "--file", "/no/such/request"], b"").one_error_line();
    assert!(
        error.starts_with("msg: error: cannot read /no/such/request: "),
        "{error}"
    );
}

#[test]
fn usage_errors_are_one_line_with_status_2() {
    let finished = run(&["req"], b"");
    assert_eq!(finished.status.code(), Some(2), "{finished:#?}");
    assert_eq!(finished.stderr.len(), 1, "{finished:#?}");
    assert!(
        finished.stderr[0].starts_with("msg: error: "),
        "{finished:#?}"
    );
    assert!(finished.stderr[0].contains("<ENDPOINT>"), "{finished:#?}");
    let finished = run(&["bench", "reqrep", "--size", "lots"], b"");
    assert_eq!(finished.status.code(), Some(2), "{finished:#?}");
    assert_eq!(finished.stderr.len(), 1, "{finished:#?}");
}

#[test]
fn every_command_has_examples_in_its_help() {
    for command in [
        &["rep"][..],
        &["req"],
        &["pub"],
        &["sub"],
        &["bench"],
        &["bench", "reqrep"],
        &["bench", "pubsub"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let help = run(&args, b"").ok().join("\n");
        assert!(help.contains("Examples:"), "{command:?}: {help}");
    }
}
