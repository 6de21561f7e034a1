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
    let lines = sub.finish().ok();
    let messages: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            serde_json::json!({ "topic": "news", "payload": "hello", "seq": 1 }),
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
    // The same endpoint again; the subscriber reconnects by itself.
    run(&["pub", &endpoint, "t", "after"], b"").ok();
    assert_eq!(sub.finish().ok(), ["t after"]);
}
