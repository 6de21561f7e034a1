//! `msg send` and `msg recv` as separate processes, each on a redb store of
//! its own: delivery once and in order, a receiver that is down while
//! messages are sent, restarts of either side, and the errors.

use std::path::Path;

use crate::common::{Proc, run};

/// `--store DIR/NAME.redb`, as arguments.
fn store(dir: &Path, name: &str) -> [String; 2] {
    [
        "--store".into(),
        dir.join(format!("{name}.redb")).display().to_string(),
    ]
}

/// `msg send bob ENDPOINT --lines` as alice, on `store`, lingering long
/// enough for any test; lines are written to its stdin.
fn lines_to_bob(endpoint: &str, store: &[String]) -> Proc {
    Proc::start_with_stdin(&with(
        &[
            "send",
            "bob",
            endpoint,
            "--lines",
            "--identity",
            "alice",
            "--linger",
            "20s",
        ],
        store,
    ))
}

/// `args` with owned strings appended.
fn with<'a>(args: &[&'a str], more: &'a [String]) -> Vec<&'a str> {
    args.iter()
        .copied()
        .chain(more.iter().map(String::as_str))
        .collect()
}

#[test]
fn lines_sent_over_tcp_arrive_once_in_order_and_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let recv_store = store(dir.path(), "bob");
    let send_store = store(dir.path(), "alice");
    let mut recv = Proc::start(&with(
        &[
            "recv",
            "tcp://127.0.0.1:0",
            "--identity",
            "bob",
            "--count",
            "3",
            "--format",
            "json",
        ],
        &recv_store,
    ));
    let endpoint = recv.listening();
    let sent = run(
        &with(
            &["send", "bob", &endpoint, "--lines", "--identity", "alice"],
            &send_store,
        ),
        b"one\ntwo\nthree\n",
    );
    assert!(sent.status.success(), "{sent:#?}");
    assert!(
        sent.stderr
            .iter()
            .any(|l| l == "msg: stored 3 message(s) for bob"),
        "{sent:#?}"
    );
    assert!(
        sent.stderr
            .iter()
            .any(|l| l == "msg: bob acknowledged every message"),
        "{sent:#?}"
    );
    let received = recv.finish().json();
    assert_eq!(
        received,
        [
            serde_json::json!({ "peer": "alice", "seq": 1, "payload": "one" }),
            serde_json::json!({ "peer": "alice", "seq": 2, "payload": "two" }),
            serde_json::json!({ "peer": "alice", "seq": 3, "payload": "three" }),
        ]
    );
}

#[test]
fn lines_typed_while_the_receiver_is_down_arrive_when_it_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    // An IPC path is known before anything listens on it.
    let endpoint = format!("ipc://{}", dir.path().join("bob.sock").display());
    let send_store = store(dir.path(), "alice");
    let mut send = lines_to_bob(&endpoint, &send_store);
    send.write(b"first\nsecond\n");
    // Stored while nothing listens: the sender says so and keeps retrying.
    send.stderr_line(|l| l.contains("cannot connect") && l.ends_with("retrying"));
    send.write(b"third\n");
    send.close_stdin();
    send.stderr_line(|l| l == "msg: stored 3 message(s) for bob");

    let recv = Proc::start(&with(
        &["recv", &endpoint, "--identity", "bob", "--count", "3"],
        &store(dir.path(), "bob"),
    ));
    assert_eq!(recv.finish().ok(), ["first", "second", "third"]);
    let sent = send.finish();
    assert!(
        sent.stderr
            .iter()
            .any(|l| l == "msg: bob acknowledged every message"),
        "{sent:#?}"
    );
    assert!(sent.status.success(), "{sent:#?}");
}

#[test]
fn unacknowledged_messages_stay_stored_and_go_out_on_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("ipc://{}", dir.path().join("bob.sock").display());
    let send_store = store(dir.path(), "alice");
    // Nobody listens and the sender does not wait: both stay stored.
    let first = run(
        &with(
            &[
                "send",
                "bob",
                &endpoint,
                "--lines",
                "--identity",
                "alice",
                "--linger",
                "0s",
            ],
            &send_store,
        ),
        b"kept 1\nkept 2\n",
    );
    assert!(first.status.success(), "{first:#?}");
    assert!(
        first.stderr.iter().any(|l| l
            .starts_with("msg: warning: 2 message(s) not yet acknowledged by bob")
            && l.contains("go out the next time")),
        "{first:#?}"
    );

    let mut recv = Proc::start(&with(
        &["recv", &endpoint, "--identity", "bob", "--count", "3"],
        &store(dir.path(), "bob"),
    ));
    recv.listening();
    // The next run resumes them before its own message.
    let second = run(
        &with(
            &["send", "bob", &endpoint, "kept 3", "--identity", "alice"],
            &send_store,
        ),
        b"",
    );
    assert!(second.status.success(), "{second:#?}");
    assert!(
        second
            .stderr
            .iter()
            .any(|l| l.starts_with("msg: resuming 2 unacknowledged message(s)")),
        "{second:#?}"
    );
    assert_eq!(recv.finish().ok(), ["kept 1", "kept 2", "kept 3"]);
}

#[test]
fn a_restarted_receiver_gets_only_what_it_had_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("ipc://{}", dir.path().join("bob.sock").display());
    let recv_store = store(dir.path(), "bob");
    let send_store = store(dir.path(), "alice");
    let mut recv = Proc::start(&with(
        &["recv", &endpoint, "--identity", "bob", "--count", "2"],
        &recv_store,
    ));
    recv.listening();
    let mut send = lines_to_bob(&endpoint, &send_store);
    send.write(b"m1\nm2\nm3\nm4\n");
    send.close_stdin();
    assert_eq!(recv.finish().ok(), ["m1", "m2"]);

    // The sender lingers for the rest; a new receiver on the same store
    // continues after what was printed, with no repeats.
    let recv = Proc::start(&with(
        &["recv", &endpoint, "--identity", "bob", "--count", "2"],
        &recv_store,
    ));
    assert_eq!(recv.finish().ok(), ["m3", "m4"]);
    assert!(send.finish().status.success());
}

#[test]
fn a_store_in_use_is_refused_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    // Without --store, the store is XDG_DATA_HOME/msg/IDENTITY.redb.
    let env = [("XDG_DATA_HOME", home.path())];
    let mut first = Proc::start_with_env(&["recv", "tcp://127.0.0.1:0", "--identity", "bob"], &env);
    let endpoint = first.listening();
    let path = home.path().join("msg").join("bob.redb");
    assert!(path.is_file(), "no store at {}", path.display());

    let second = Proc::start_with_env(&["recv", "tcp://127.0.0.1:0", "--identity", "bob"], &env);
    let line = second.finish().one_error_line();
    assert!(
        line.contains(&format!(
            "the store {} is locked by another process",
            path.display()
        )),
        "{line}"
    );
    // The first receiver is unharmed.
    run(
        &with(
            &[
                "send",
                "bob",
                &endpoint,
                "still here",
                "--identity",
                "alice",
            ],
            &store(home.path(), "alice"),
        ),
        b"",
    )
    .ok();
    assert_eq!(first.stdout_line(), "still here");
}

#[test]
fn a_rejected_token_fails_the_sender_and_keeps_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut recv = Proc::start(&with(
        &[
            "recv",
            "tcp://127.0.0.1:0",
            "--identity",
            "bob",
            "--accept-token",
            "right",
        ],
        &store(dir.path(), "bob"),
    ));
    let endpoint = recv.listening();
    let line = run(
        &with(
            &[
                "send",
                "bob",
                &endpoint,
                "hello",
                "--identity",
                "alice",
                "--token",
                "wrong",
            ],
            &store(dir.path(), "alice"),
        ),
        b"",
    )
    .one_error_line();
    assert!(
        line.contains("rejected our authentication: invalid token"),
        "{line}"
    );
    assert!(line.contains("1 message(s) stay in"), "{line}");

    // With the right token, the stored message goes out first.
    run(
        &with(
            &[
                "send",
                "bob",
                &endpoint,
                "again",
                "--identity",
                "alice",
                "--token",
                "right",
            ],
            &store(dir.path(), "alice"),
        ),
        b"",
    )
    .ok();
    assert_eq!(recv.stdout_line(), "hello");
    assert_eq!(recv.stdout_line(), "again");
}

#[test]
fn identities_that_cannot_name_a_store_file_need_an_explicit_store() {
    let home = tempfile::tempdir().unwrap();
    let env = [("XDG_DATA_HOME", home.path())];
    let line = Proc::start_with_env(&["recv", "tcp://127.0.0.1:0", "--identity", "../bob"], &env)
        .finish()
        .one_error_line();
    assert!(line.contains("cannot name a store file"), "{line}");
    assert!(line.contains("--store"), "{line}");
    let line = run(
        &with(
            &["send", "", "tcp://127.0.0.1:1", "x"],
            &store(home.path(), "alice"),
        ),
        b"",
    )
    .one_error_line();
    assert!(line.starts_with("msg: error: peer \"\""), "{line}");
}

#[test]
fn an_interrupted_receiver_closes_its_store_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let recv_store = store(dir.path(), "bob");
    let mut recv = Proc::start(&with(
        &["recv", "tcp://127.0.0.1:0", "--identity", "bob"],
        &recv_store,
    ));
    let endpoint = recv.listening();
    run(
        &with(
            &[
                "send",
                "bob",
                &endpoint,
                "before ctrl-c",
                "--identity",
                "alice",
            ],
            &store(dir.path(), "alice"),
        ),
        b"",
    )
    .ok();
    assert_eq!(recv.stdout_line(), "before ctrl-c");
    // Ctrl-C: the receiver shuts down and releases its store.
    let status = std::process::Command::new("kill")
        .args(["-INT", &recv.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let finished = recv.finish();
    assert!(finished.status.success(), "{finished:#?}");
    // The store is free at once, and the printed message is not delivered
    // again.
    let mut again = Proc::start(&with(
        &["recv", "tcp://127.0.0.1:0", "--identity", "bob"],
        &recv_store,
    ));
    let endpoint = again.listening();
    run(
        &with(
            &["send", "bob", &endpoint, "after", "--identity", "alice"],
            &store(dir.path(), "alice"),
        ),
        b"",
    )
    .ok();
    assert_eq!(again.stdout_line(), "after");
}

/// `--store` with a PostgreSQL connection string, given on the command
/// line (the receiver) or in `MSG_STORE` (the sender): the messages are
/// stored in the database, arrive once and in order, and a second run of
/// the sender goes on numbering where the first stopped.
#[test]
fn postgres_store_from_the_flag_or_msg_store() {
    let Some(url) = msg_testkit::postgres::server("postgres_store_from_the_flag_or_msg_store")
    else {
        return;
    };
    let (alice, bob) = (
        msg_testkit::postgres::unique_schema("alice"),
        msg_testkit::postgres::unique_schema("bob"),
    );
    let mut recv = Proc::start(&[
        "recv",
        "tcp://127.0.0.1:0",
        "--identity",
        &bob,
        "--count",
        "2",
        "--format",
        "json",
        "--store",
        url,
    ]);
    let endpoint = recv.listening();
    for word in ["one", "two"] {
        let sent = Proc::start_with_env(
            &["send", &bob, &endpoint, word, "--identity", &alice],
            &[("MSG_STORE", Path::new(url))],
        )
        .finish();
        assert!(sent.status.success(), "{sent:#?}");
        let acked = format!("msg: {bob} acknowledged every message");
        assert!(sent.stderr.contains(&acked), "{sent:#?}");
    }
    let received: Vec<(u64, String)> = recv
        .finish()
        .ok()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["seq"].as_u64().unwrap(),
                v["payload"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(received, [(1, "one".to_owned()), (2, "two".to_owned())]);
}
