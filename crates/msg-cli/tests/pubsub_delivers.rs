//! `msg pub` and `msg sub` as separate processes on loopback.

use crate::common::{Proc, run};

#[test]
fn sub_bound_first_receives_lines_from_a_connecting_pub() {
    let mut sub = Proc::start(&[
        "sub",
        "--bind",
        "tcp://127.0.0.1:0",
        "weather.",
        "--count",
        "3",
    ]);
    let endpoint = sub.listening();
    run(
        &[
            "pub",
            "--connect",
            &endpoint,
            "weather.paris",
            "--lines",
            "--wait-subscribers",
            "1",
        ],
        b"rain\nsun\nfog\n",
    )
    .ok();
    assert_eq!(
        sub.finish().ok(),
        [
            "weather.paris rain",
            "weather.paris sun",
            "weather.paris fog"
        ]
    );
}

#[test]
fn pub_waits_for_a_subscriber_before_publishing() {
    let mut publisher = Proc::start(&["pub", "tcp://127.0.0.1:0", "news", "hello", "--count", "2"]);
    let endpoint = publisher.listening();
    let sub = Proc::start(&["sub", &endpoint, "--count", "2", "--format", "json"]);
    publisher.finish().ok();
    let mut messages = sub.finish().json();
    // One connection, named by its id in each record.
    let conns: Vec<serde_json::Value> = messages
        .iter_mut()
        .map(|m| {
            m.as_object_mut()
                .unwrap()
                .remove("conn")
                .expect("a conn field")
        })
        .collect();
    assert_eq!(conns[0], conns[1]);
    assert_eq!(
        messages,
        [
            serde_json::json!({ "topic": "news", "payload": "hello", "seq": 1, "first": true }),
            serde_json::json!({ "topic": "news", "payload": "hello", "seq": 2 }),
        ]
    );
}

#[test]
fn sub_prints_topic_and_payload_in_hex() {
    let mut publisher = Proc::start(&["pub", "tcp://127.0.0.1:0", "t", "--file", "/dev/null"]);
    let endpoint = publisher.listening();
    let sub = Proc::start(&["sub", &endpoint, "t", "--count", "1", "--format", "hex"]);
    publisher.finish().ok();
    // An empty payload is a message too.
    assert_eq!(sub.finish().ok(), ["74 "]);
}

#[test]
fn rate_limited_pub_delivers_every_message() {
    let mut sub = Proc::start(&["sub", "--bind", "tcp://127.0.0.1:0", "--count", "5"]);
    let endpoint = sub.listening();
    run(
        &[
            "pub",
            "--connect",
            &endpoint,
            "tick",
            "now",
            "--count",
            "5",
            "--rate",
            "200/s",
        ],
        b"",
    )
    .ok();
    assert_eq!(sub.finish().ok(), vec!["tick now"; 5]);
}

#[test]
fn pub_gives_up_when_no_subscriber_comes() {
    let error = run(
        &[
            "pub",
            "tcp://127.0.0.1:0",
            "t",
            "x",
            "--wait-timeout",
            "200ms",
        ],
        b"",
    )
    .one_error_line();
    assert_eq!(
        error,
        "msg: error: 0 of 1 subscriber(s) after waiting 200 ms (--wait-subscribers, --wait-timeout)"
    );
}

#[test]
fn sub_keeps_receiving_after_its_publisher_restarts() {
    let mut first = Proc::start(&["pub", "tcp://127.0.0.1:0", "t", "before"]);
    let endpoint = first.listening();
    let mut sub = Proc::start(&["sub", &endpoint, "--count", "2"]);
    assert_eq!(sub.stdout_line(), "t before");
    first.finish().ok();
    // The same endpoint again; the subscriber reconnects by itself, and
    // says that the stream started again.
    run(&["pub", &endpoint, "t", "after"], b"").ok();
    let finished = sub.finish();
    assert!(
        finished.stderr.iter().any(|l| l
            == &format!(
                "msg: stream from {endpoint} restarted on a new connection; what was \
                 published in between is lost"
            )),
        "{finished:#?}"
    );
    assert!(
        finished.stderr.iter().any(|l| l
            == "msg: printed 2 message(s); 0 missing from the sequence numbers; 0 dropped \
                at this subscriber's recv_hwm; 1 stream restart(s)"),
        "{finished:#?}"
    );
    assert_eq!(finished.ok(), ["t after"]);
}

#[test]
fn sub_reports_what_it_received_when_interrupted() {
    let mut publisher = Proc::start(&["pub", "tcp://127.0.0.1:0", "t", "x", "--count", "3"]);
    let endpoint = publisher.listening();
    let mut sub = Proc::start(&["sub", &endpoint, "--format", "json"]);
    for _ in 0..3 {
        sub.stdout_line();
    }
    publisher.finish().ok();
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &sub.pid().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let finished = sub.finish();
    assert!(
        finished.stderr.iter().any(|l| l
            == "msg: printed 3 message(s); 0 missing from the sequence numbers; 0 dropped \
                at this subscriber's recv_hwm; 0 stream restart(s)"),
        "{finished:#?}"
    );
    assert!(finished.status.success(), "{finished:#?}");
}
