//! TLS and QUIC between processes, with PEM files written by the test from
//! msg's development certificate authority.

use std::path::{Path, PathBuf};

use crate::common::{Proc, run};
use msg::transport::dev::DevCa;

/// PEM files for a CA, a server certificate for 127.0.0.1 signed by it, and
/// a client certificate signed by it.
struct Pems {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    other_ca: PathBuf,
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

fn pems() -> Pems {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::new("msg cli test ca").unwrap();
    let server = ca.server_cert(["127.0.0.1", "localhost"]).unwrap();
    let client = ca.client_cert("cli-client").unwrap();
    let other = DevCa::new("someone else").unwrap();
    let d = dir.path();
    Pems {
        ca: write(d, "ca.pem", ca.cert_pem()),
        server_cert: write(d, "server.pem", server.cert_pem()),
        server_key: write(d, "server.key", server.key_pem()),
        client_cert: write(d, "client.pem", client.cert_pem()),
        client_key: write(d, "client.key", client.key_pem()),
        other_ca: write(d, "other-ca.pem", other.cert_pem()),
        _dir: dir,
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A rep with the server certificate on `scheme`://127.0.0.1:0.
fn rep(pems: &Pems, scheme: &str, extra: &[&str]) -> (Proc, String) {
    let bind = format!("{scheme}://127.0.0.1:0");
    let mut args = vec![
        "rep",
        &bind,
        "--count",
        "1",
        "--quiet",
        "--cert",
        p(&pems.server_cert),
        "--key",
        p(&pems.server_key),
    ];
    args.extend_from_slice(extra);
    let mut rep = Proc::start(&args);
    let endpoint = rep.listening();
    (rep, endpoint)
}

#[test]
fn tls_round_trip_verifies_the_server_against_the_ca() {
    let pems = pems();
    let (rep, endpoint) = rep(&pems, "tls", &[]);
    assert!(endpoint.starts_with("tls://127.0.0.1:"), "{endpoint}");
    let reply = run(&["req", &endpoint, "secret", "--ca", p(&pems.ca)], b"").ok();
    assert_eq!(reply, ["secret"]);
    rep.finish().ok();
}

#[test]
fn quic_round_trip_verifies_the_server_against_the_ca() {
    let pems = pems();
    let (rep, endpoint) = rep(&pems, "quic", &[]);
    let reply = run(&["req", &endpoint, "over quic", "--ca", p(&pems.ca)], b"").ok();
    assert_eq!(reply, ["over quic"]);
    rep.finish().ok();
}

#[test]
fn mutual_tls_admits_a_client_with_a_certificate() {
    let pems = pems();
    let (rep, endpoint) = rep(&pems, "tls", &["--client-ca", p(&pems.ca)]);
    let reply = run(
        &[
            "req",
            &endpoint,
            "it is me",
            "--ca",
            p(&pems.ca),
            "--cert",
            p(&pems.client_cert),
            "--key",
            p(&pems.client_key),
        ],
        b"",
    )
    .ok();
    assert_eq!(reply, ["it is me"]);
    rep.finish().ok();
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    let pems = pems();
    let (_rep, endpoint) = rep(&pems, "tls", &["--client-ca", p(&pems.ca)]);
    let error = run(
        &[
            "req",
            &endpoint,
            "x",
            "--ca",
            p(&pems.ca),
            "--timeout",
            "5s",
        ],
        b"",
    )
    .one_error_line();
    assert!(error.starts_with("msg: error: "), "{error}");
}

#[test]
fn dangerous_skip_verify_connects_and_warns() {
    let pems = pems();
    let (rep, endpoint) = rep(&pems, "tls", &[]);
    let finished = run(&["req", &endpoint, "x", "--dangerous-skip-verify"], b"");
    assert!(
        finished
            .stderr
            .iter()
            .any(|l| l.starts_with("msg: warning: --dangerous-skip-verify")),
        "{finished:#?}"
    );
    assert_eq!(finished.ok(), ["x"]);
    rep.finish().ok();
}

#[test]
fn an_untrusted_server_certificate_is_one_error_line() {
    let pems = pems();
    let (_rep, endpoint) = rep(&pems, "tls", &[]);
    let error = run(&["req", &endpoint, "x", "--ca", p(&pems.other_ca)], b"").one_error_line();
    assert!(error.starts_with("msg: error: cannot connect"), "{error}");
    assert!(error.contains("tls"), "{error}");
}

#[test]
fn a_missing_certificate_file_is_one_error_line() {
    let error = run(
        &[
            "rep",
            "tls://127.0.0.1:0",
            "--cert",
            "/no/such/cert.pem",
            "--key",
            "/no/such/key.pem",
        ],
        b"",
    )
    .one_error_line();
    assert!(error.contains("/no/such/cert.pem"), "{error}");
}

#[test]
fn a_tls_endpoint_without_certificates_says_what_is_missing() {
    let error = run(&["rep", "tls://127.0.0.1:0"], b"").one_error_line();
    assert!(error.contains("--cert and --key"), "{error}");
    let error = run(&["req", "quic://127.0.0.1:1", "x"], b"").one_error_line();
    assert!(error.contains("--ca"), "{error}");
}

#[test]
fn pub_over_quic_delivers_everything_before_it_exits() {
    // QUIC drops what the peer has not acknowledged when a process exits;
    // `msg pub` must wait for that before exiting.
    let pems = pems();
    let mut sub = Proc::start(&[
        "sub",
        "--bind",
        "quic://127.0.0.1:0",
        "--count",
        "3",
        "--cert",
        p(&pems.server_cert),
        "--key",
        p(&pems.server_key),
    ]);
    let endpoint = sub.listening();
    run(
        &[
            "pub",
            "--connect",
            &endpoint,
            "t",
            "--lines",
            "--ca",
            p(&pems.ca),
        ],
        b"1\n2\n3\n",
    )
    .ok();
    assert_eq!(sub.finish().ok(), ["t 1", "t 2", "t 3"]);
}

#[test]
fn push_over_tls_and_quic_delivers_everything_before_it_exits() {
    let pems = pems();
    for scheme in ["tls", "quic"] {
        let mut pull = Proc::start(&[
            "pull",
            &format!("{scheme}://127.0.0.1:0"),
            "--count",
            "3",
            "--cert",
            p(&pems.server_cert),
            "--key",
            p(&pems.server_key),
        ]);
        let endpoint = pull.listening();
        run(
            &["push", &endpoint, "--lines", "--ca", p(&pems.ca)],
            b"1\n2\n3\n",
        )
        .ok();
        assert_eq!(pull.finish().ok(), ["1", "2", "3"], "over {scheme}");
    }
}

#[test]
fn reliable_send_and_recv_over_tls_and_quic_verify_the_receiver() {
    let pems = pems();
    for scheme in ["tls", "quic"] {
        let stores = tempfile::tempdir().unwrap();
        let bob_store = stores.path().join("bob.redb");
        let alice_store = stores.path().join("alice.redb");
        let bind = format!("{scheme}://127.0.0.1:0");
        let mut recv = Proc::start(&[
            "recv",
            &bind,
            "--identity",
            "bob",
            "--count",
            "1",
            "--cert",
            p(&pems.server_cert),
            "--key",
            p(&pems.server_key),
            "--store",
            p(&bob_store),
        ]);
        let endpoint = recv.listening();
        // A sender trusting another CA never reaches bob, and says so.
        let line = run(
            &[
                "send",
                "bob",
                &endpoint,
                "unverified",
                "--identity",
                "mallory",
                "--ca",
                p(&pems.other_ca),
                "--store",
                p(&stores.path().join("mallory.redb")),
            ],
            b"",
        )
        .one_error_line();
        assert!(line.contains("cannot connect"), "{scheme}: {line}");
        assert!(line.contains("1 message(s) stay in"), "{scheme}: {line}");

        run(
            &[
                "send",
                "bob",
                &endpoint,
                &format!("hello over {scheme}"),
                "--identity",
                "alice",
                "--ca",
                p(&pems.ca),
                "--store",
                p(&alice_store),
            ],
            b"",
        )
        .ok();
        assert_eq!(recv.finish().ok(), [format!("hello over {scheme}")]);
    }
}
