//! Every option's default, three ways at once: the value in the code (seen
//! through `Debug`, or through behaviour on a virtual clock where `Debug`
//! does not show it), the `Default:` sentence of its setter's rustdoc, and
//! its row in the book's options table. A default changed in one place and
//! not the others fails here, and so does an option added without a
//! documented default.
//!
//! Plus the socket-level `connect_timeout`: each connect attempt is cut at
//! that deadline, reported, and retried with backoff.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common;
use crate::raw::{HANG, RawPeer};
use futures::StreamExt;
use msg_socket::transport::{
    Endpoint, Inproc, InprocListener, PeerAddr, Scheme, Transport, TransportError,
};
use msg_socket::wire::{Frame, Reason, SocketType};
use msg_socket::{
    AuthRejection, AuthRequest, RepSocket, ReqError, ReqSocket, SocketError, SocketEvent,
    SocketEvents, SocketOptions,
};
use tokio::io::DuplexStream;
use tokio::time::Instant;

/// One option's default as the docs state it and as `Debug` shows it.
struct Documented {
    /// The setter.
    setter: &'static str,
    /// What follows `Default:` in the setter's rustdoc.
    rustdoc: &'static str,
    /// The option's cell in the book's table (`a / b` rows are split).
    book: &'static str,
    /// What `Debug` of the default options contains; `None` where the value
    /// is pinned by a behaviour test below instead.
    debug: Option<&'static str>,
}

const fn d(
    setter: &'static str,
    rustdoc: &'static str,
    book: &'static str,
    debug: Option<&'static str>,
) -> Documented {
    Documented {
        setter,
        rustdoc,
        book,
        debug,
    }
}

const DEFAULTS: &[Documented] = &[
    d(
        "identity",
        "a random identity made when the socket is created",
        "random",
        Some("identity: None"),
    ),
    d(
        "request_timeout",
        "10 s",
        "10 s",
        Some("request_timeout: 10s"),
    ),
    d(
        "send_hwm",
        "1,000",
        "1,000 messages",
        Some("send_hwm: 1000,"),
    ),
    d(
        "send_hwm_bytes",
        "64 MiB",
        "64 MiB",
        Some("send_hwm_bytes: 67108864,"),
    ),
    d(
        "recv_hwm",
        "1,000",
        "1,000 messages",
        Some("recv_hwm: 1000,"),
    ),
    d(
        "recv_hwm_bytes",
        "64 MiB",
        "64 MiB",
        Some("recv_hwm_bytes: 67108864,"),
    ),
    d(
        "reconnect",
        "[`BackoffPolicy::new`] (100 ms, doubling up to 10 s, jitter 0.5, forever)",
        "`BackoffPolicy::new()`",
        Some("multiplier: 2.0,"),
    ),
    d(
        "reconnect_initial",
        "100 ms",
        "100 ms",
        Some("BackoffPolicy { initial: 100ms,"),
    ),
    d("reconnect_max", "10 s", "10 s", Some(" max: 10s,")),
    d("reconnect_jitter", "0.5", "0.5", Some("jitter: 0.5,")),
    d(
        "reconnect_give_up_after",
        "`None`",
        "never",
        Some("max_attempts: None }"),
    ),
    // Not in `Debug`: see `the_default_auth_reject_delay_is_five_seconds`.
    d("auth_reject_delay", "5 s", "5 s", None),
    d(
        "heartbeat_interval",
        "5 s",
        "5 s",
        Some("heartbeat_interval: Some(5s)"),
    ),
    d(
        "heartbeat_timeout",
        "15 s",
        "15 s",
        Some("heartbeat_timeout: 15s"),
    ),
    d(
        "handshake_timeout",
        "5 s",
        "5 s",
        Some("handshake_timeout: 5s"),
    ),
    d(
        "connect_timeout",
        "10 s",
        "10 s",
        Some("connect_timeout: 10s"),
    ),
    d(
        "max_frame_size",
        "64 MiB",
        "64 MiB",
        Some("max_frame_size: 67108864,"),
    ),
    d(
        "compression",
        "[`Compression::None`]",
        "none",
        Some("compression: None,"),
    ),
    d(
        "compress_min_size",
        "1024",
        "1 KiB",
        Some("compress_min_size: 1024,"),
    ),
    d("linger", "1 s", "1 s", Some("linger: 1s,")),
    d("auth_token", "none", "none", Some("auth_token: None,")),
    d(
        "authenticator",
        "none (everyone is accepted)",
        "none",
        Some("authenticator: false,"),
    ),
    d("auth_timeout", "3 s", "3 s", Some("auth_timeout: 3s,")),
    d(
        "bind_identity_to_certificate",
        "off",
        "off",
        Some("bind_identity_to_certificate: false,"),
    ),
    d(
        "max_connections",
        "65,536",
        "65,536",
        Some("max_connections: 65536,"),
    ),
    d("name", "none (an empty label)", "none", Some("name: None,")),
    d(
        "metrics_interval",
        "1 s",
        "1 s",
        Some("metrics_interval: 1s"),
    ),
    // Not in `Debug`: see `the_default_transport_knows_tcp_ipc_and_inproc`.
    d(
        "transport",
        "[`AnyTransport::new`] (TCP, IPC and inproc; TLS and QUIC need configuration)",
        "TCP, IPC, inproc",
        None,
    ),
];

fn read(relative: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Setter name to the text after `Default:` in its rustdoc, for every
/// public `&mut self` method of `SocketOptions`.
fn rustdoc_defaults() -> BTreeMap<String, String> {
    let source = read("src/options.rs");
    let mut out = BTreeMap::new();
    let mut doc: Vec<&str> = Vec::new();
    for line in source.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix("///") {
            doc.push(text.trim());
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub fn ") {
            let name = rest.split('(').next().unwrap();
            if rest.contains("(&mut self") {
                let joined = doc.join(" ");
                let default = joined
                    .split_once("Default:")
                    .map(|(_, d)| d.trim().trim_end_matches('.').to_owned())
                    .unwrap_or_else(|| panic!("setter `{name}` documents no default"));
                out.insert(name.to_owned(), default);
            }
        }
        doc.clear();
    }
    out
}

/// Option name to its default cell in the book's options table.
fn book_defaults() -> BTreeMap<String, String> {
    let book = read("../../book/src/options.md");
    let mut out = BTreeMap::new();
    for row in book.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (names, defaults) = (cells[1], cells[2]);
        let names: Vec<&str> = names.split(" / ").map(|n| n.trim_matches('`')).collect();
        let defaults: Vec<&str> = if names.len() == 1 {
            vec![defaults]
        } else {
            defaults.split(" / ").collect()
        };
        assert_eq!(names.len(), defaults.len(), "book row {row}");
        for (name, default) in names.into_iter().zip(defaults) {
            out.insert(name.to_owned(), default.to_owned());
        }
    }
    out
}

#[test]
fn every_default_agrees_in_the_code_the_rustdoc_and_the_book() {
    let rustdoc = rustdoc_defaults();
    let book = book_defaults();
    let debug = format!("{:?}", SocketOptions::new());
    let listed: Vec<&str> = DEFAULTS.iter().map(|o| o.setter).collect();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        rustdoc.keys().map(String::as_str).collect::<Vec<_>>(),
        "every setter, and only setters, have an entry here"
    );
    assert_eq!(
        sorted,
        book.keys().map(String::as_str).collect::<Vec<_>>(),
        "the book's table lists every option"
    );
    for o in DEFAULTS {
        assert_eq!(rustdoc[o.setter], o.rustdoc, "rustdoc of `{}`", o.setter);
        assert_eq!(book[o.setter], o.book, "book row of `{}`", o.setter);
        if let Some(shown) = o.debug {
            assert!(
                debug.contains(shown),
                "default of `{}`: `{shown}` not in {debug}",
                o.setter
            );
        }
    }
}

#[tokio::test]
async fn the_default_identity_is_random_and_names_the_socket_type() {
    let (a, b) = (ReqSocket::new(), ReqSocket::new());
    assert!(a.identity().starts_with(b"req-"), "{:?}", a.identity());
    assert_ne!(a.identity(), b.identity());
    assert!(RepSocket::new().identity().starts_with(b"rep-"));
}

#[tokio::test]
async fn the_default_transport_knows_tcp_ipc_and_inproc() {
    let dir = tempfile::tempdir().unwrap();
    let rep = RepSocket::new();
    for endpoint in [
        "tcp://127.0.0.1:0".to_owned(),
        format!("ipc://{}", dir.path().join("s").display()),
        format!("inproc://options-default-{}", std::process::id()),
    ] {
        rep.bind(&endpoint).await.unwrap();
    }
    for (endpoint, scheme) in [
        ("tls://127.0.0.1:0", Scheme::Tls),
        ("quic://127.0.0.1:0", Scheme::Quic),
    ] {
        let err = rep.bind(endpoint).await.unwrap_err();
        assert!(
            matches!(&err, SocketError::Transport(TransportError::MissingConfig { scheme: s, .. }) if *s == scheme),
            "{endpoint}: {err:?}"
        );
    }
}

fn inproc(what: &str) -> Endpoint {
    common::inproc(&format!("options-{what}")).parse().unwrap()
}

/// `actual` is `expected`, give or take the timer wheel's rounding up to
/// whole milliseconds.
fn assert_about(actual: Duration, expected: Duration, what: &str) {
    assert!(
        actual >= expected && actual <= expected + Duration::from_millis(2),
        "{what}: {actual:?}, expected {expected:?}"
    );
}

/// The next event other than `Listening` and the virtual time it came.
async fn next(events: &mut SocketEvents) -> (Instant, SocketEvent) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(3600), events.next())
            .await
            .expect("no event within a virtual hour")
            .expect("events");
        if !matches!(ev, SocketEvent::Listening(_)) {
            return (Instant::now(), ev);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_default_request_timeout_is_ten_seconds() {
    let req = ReqSocket::new();
    let started = Instant::now();
    let err = req.request("anyone?").await.unwrap_err();
    assert!(matches!(err, ReqError::Timeout), "{err:?}");
    assert_about(started.elapsed(), Duration::from_secs(10), "request");
}

#[tokio::test(start_paused = true)]
async fn the_default_auth_reject_delay_is_five_seconds() {
    let mut server = SocketOptions::new();
    server.authenticator(|_: AuthRequest| async { Err(AuthRejection::new("go away")) });
    let rep = RepSocket::with_options(server).unwrap();
    let endpoint = rep.bind(&inproc("reject").to_string()).await.unwrap();
    let req = ReqSocket::new();
    let mut events = req.events();
    req.connect(&endpoint.to_string()).unwrap();
    let (rejected_at, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::AuthRejected { .. }), "{ev:?}");
    let (_, ev) = next(&mut events).await;
    let SocketEvent::Reconnecting { delay, .. } = ev else {
        panic!("expected Reconnecting, got {ev:?}");
    };
    assert_eq!(delay, Duration::from_secs(5));
    let (again_at, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::AuthRejected { .. }), "{ev:?}");
    assert_about(again_at - rejected_at, Duration::from_secs(5), "retry");
}

#[tokio::test(start_paused = true)]
async fn the_default_handshake_and_heartbeat_deadlines_cut_silent_peers() {
    let rep = RepSocket::new();
    let mut events = rep.events();
    let endpoint = rep.bind(&inproc("deadlines").to_string()).await.unwrap();

    // Connects and never says hello: refused after 5 s.
    let started = Instant::now();
    let mute = RawPeer::connect(&endpoint).await;
    let (at, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::HandshakeFailed { .. }), "{ev:?}");
    assert_about(at - started, Duration::from_secs(5), "handshake");
    drop(mute);

    // Says hello, then nothing: pinged at 5 s and 10 s, closed at 15 s.
    let mut silent = RawPeer::connect(&endpoint).await;
    silent.handshake_as(SocketType::Req).await;
    let (up, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::Connected { .. }), "{ev:?}");
    let (at, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::PeerMisbehaved { .. }), "{ev:?}");
    assert_about(at - up, Duration::from_secs(15), "heartbeat");
    let frames = crate::raw::frames_in(silent.read_until_closed().await.bytes);
    let pings = frames
        .iter()
        .filter(|f| matches!(f, Frame::Ping { .. }))
        .count();
    assert_eq!(pings, 2, "{frames:?}");
    assert!(matches!(
        frames.last(),
        Some(Frame::Close {
            code: Reason::ProtocolError,
            ..
        })
    ));
}

/// A transport whose connects never complete (a host that drops every
/// packet), over inproc for binding.
#[derive(Clone, Copy, Debug)]
struct Unanswered;

impl Transport for Unanswered {
    type Conn = DuplexStream;
    type Listener = InprocListener;

    async fn bind(&self, endpoint: &Endpoint) -> Result<InprocListener, TransportError> {
        Inproc.bind(endpoint).await
    }

    async fn connect(&self, _: &Endpoint) -> Result<(DuplexStream, PeerAddr), TransportError> {
        std::future::pending().await
    }
}

/// Checks that connect attempts to nowhere are cut every `timeout`, with
/// `retry` between them.
async fn attempts_are_cut_at(opts: SocketOptions, timeout: Duration, retry: Duration) {
    let req = ReqSocket::with_options(opts).unwrap();
    let mut events = req.events();
    let started = Instant::now();
    req.connect_with(Unanswered, &inproc("unanswered")).unwrap();
    let mut attempt_started = started;
    for n in 1..=3u32 {
        let (at, ev) = next(&mut events).await;
        match ev {
            SocketEvent::ConnectFailed { error, .. } => {
                assert_eq!(error, "connect timed out");
            }
            other => panic!("expected ConnectFailed, got {other:?}"),
        }
        assert_about(at - attempt_started, timeout, &format!("attempt {n}"));
        let (_, ev) = next(&mut events).await;
        assert!(
            matches!(ev, SocketEvent::Reconnecting { attempt, .. } if attempt == n),
            "{ev:?}"
        );
        attempt_started = at + retry;
    }
    assert_eq!(req.stats().reconnects, 3);
    assert_eq!(req.peers(), 0);
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_cuts_each_attempt_and_the_socket_retries() {
    let mut o = SocketOptions::new();
    o.connect_timeout(Duration::from_millis(1500))
        .reconnect_initial(Duration::from_millis(100))
        .reconnect_max(Duration::from_millis(100))
        .reconnect_jitter(0.0);
    attempts_are_cut_at(o, Duration::from_millis(1500), Duration::from_millis(100)).await;
}

#[tokio::test(start_paused = true)]
async fn the_default_connect_timeout_is_ten_seconds() {
    let mut o = SocketOptions::new();
    // Only the retry delay is made predictable.
    o.reconnect_initial(Duration::from_millis(100))
        .reconnect_max(Duration::from_millis(100))
        .reconnect_jitter(0.0);
    attempts_are_cut_at(o, Duration::from_secs(10), Duration::from_millis(100)).await;
}

#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_a_timed_out_connect_ends_at_its_own_deadline() {
    let mut o = SocketOptions::new();
    o.connect_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(2));
    let req = ReqSocket::with_options(o).unwrap();
    req.connect_with(Unanswered, &inproc("request")).unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(HANG, req.request("x"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ReqError::Timeout), "{err:?}");
    assert_about(started.elapsed(), Duration::from_secs(2), "request");
}
