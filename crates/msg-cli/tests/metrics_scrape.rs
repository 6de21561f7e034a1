//! `--metrics-addr`: a running `msg sub` serves its socket's metrics in the
//! Prometheus text format, and a scrape sees them move.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{Proc, run};

/// `GET path` from `addr`: the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("the metrics server accepts");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a whole response");
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

#[test]
fn sub_serves_its_metrics_while_it_runs() {
    let mut sub = Proc::start(&[
        "sub",
        "--bind",
        "tcp://127.0.0.1:0",
        "--identity",
        "watcher",
        "--metrics-addr",
        "0",
    ]);
    let metrics = sub.stderr_line(|l| l.starts_with("msg: metrics on http://"));
    let addr = metrics
        .trim_start_matches("msg: metrics on http://")
        .trim_end_matches("/metrics")
        .to_owned();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "loopback by default: {addr}"
    );
    let endpoint = sub.listening();
    run(
        &[
            "pub",
            "--connect",
            &endpoint,
            "t",
            "x",
            "--count",
            "3",
            "--wait-subscribers",
            "1",
        ],
        b"",
    )
    .ok();
    // The socket's numbers are copied every second: poll until they show.
    let wanted = r#"msg_socket_messages_received_total{socket="sub",name="watcher"} 3"#;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(&addr, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        if body.lines().any(|l| l == wanted) {
            assert!(
                body.contains("# HELP msg_socket_messages_received_total"),
                "{body}"
            );
            // The publisher has come and gone: a gauge, back at 0 now.
            assert!(
                body.lines()
                    .any(|l| l == r#"msg_socket_peers{socket="sub",name="watcher"} 0"#),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never counted: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _) = get(&addr, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}
