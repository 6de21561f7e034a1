//! `msg dealer` and `msg router` as separate processes on loopback, with
//! each other and with `msg req` and `msg rep`.

use crate::common::{Proc, run};

#[test]
fn a_router_echoes_each_dealer_message_and_names_its_sender() {
    let mut router = Proc::start(&[
        "router",
        "tcp://127.0.0.1:0",
        "--count",
        "3",
        "--format",
        "json",
    ]);
    let endpoint = router.listening();
    let mut answers = run(
        &[
            "dealer",
            &endpoint,
            "job 1",
            "job 2",
            "",
            "--identity",
            "d-1",
        ],
        b"",
    )
    .ok();
    answers.sort();
    assert_eq!(answers, ["", "job 1", "job 2"]);
    let seen = router.finish().json();
    assert_eq!(
        seen,
        [
            serde_json::json!({ "identity": "d-1", "payload": "job 1" }),
            serde_json::json!({ "identity": "d-1", "payload": "job 2" }),
            serde_json::json!({ "identity": "d-1", "payload": "" }),
        ]
    );
}

#[test]
fn a_router_answers_a_requester_and_a_dealer_drives_a_rep() {
    let mut router = Proc::start(&["router", "tcp://127.0.0.1:0", "--reply", "ok", "-q"]);
    let endpoint = router.listening();
    assert_eq!(run(&["req", &endpoint, "anything"], b"").ok(), ["ok"]);

    let mut rep = Proc::start(&["rep", "tcp://127.0.0.1:0", "--count", "2", "-q"]);
    let endpoint = rep.listening();
    let lines = "one\ntwo\n";
    let mut answers = run(&["dealer", &endpoint, "--lines"], lines.as_bytes()).ok();
    answers.sort();
    assert_eq!(answers, ["one", "two"]);
    rep.finish().ok();
}

#[test]
fn a_dealer_fails_when_answers_stop_coming() {
    // A REP that takes 5 s per answer: nothing comes back within 300 ms.
    let mut rep = Proc::start(&["rep", "tcp://127.0.0.1:0", "--exec", "sleep 5", "-q"]);
    let endpoint = rep.listening();
    let error = run(&["dealer", &endpoint, "slow", "--timeout", "300ms"], b"").one_error_line();
    assert!(
        error.contains("0 of 1 message(s) back after waiting 300 ms"),
        "{error}"
    );
}
