//! The handshake: incompatible sockets and other protocol versions are
//! refused with a clear reason on both sides, and the handshake has a
//! deadline on both sides. Over inproc, with tokio's clock paused.

use std::time::Duration;

use crate::raw::RawPeer;
use bytes::Bytes;
use msg_socket::transport::{Endpoint, Inproc, Listener, Transport};
use msg_socket::wire::{Answer, HandshakeCodec, Hello, PROTOCOL_VERSION, Reason, SocketType};
use msg_socket::{PubSocket, ReqSocket, SocketEvent, SocketOptions};
use msg_testkit::next_matching;
use tokio::time::Instant;

fn inproc(name: &str) -> String {
    format!("inproc://handshake-{name}-{}", std::process::id())
}

#[tokio::test(start_paused = true)]
async fn req_to_pub_is_refused_on_both_sides_naming_both_types() {
    let publisher = PubSocket::new();
    let mut pub_events = publisher.events();
    let endpoint = publisher.bind(&inproc("req-pub")).await.unwrap();
    let req = ReqSocket::new();
    let mut req_events = req.events();
    req.connect(&endpoint.to_string()).unwrap();

    let client_error = next_matching(&mut req_events, |e| match e {
        SocketEvent::HandshakeFailed { error, .. } => Some(error),
        SocketEvent::Connected { .. } => panic!("a REQ socket connected to a PUB socket"),
        _ => None,
    })
    .await;
    assert!(
        client_error.contains("REQ") && client_error.contains("PUB"),
        "{client_error}"
    );
    assert!(client_error.contains("incompatible"), "{client_error}");

    let server_error = next_matching(&mut pub_events, |e| match e {
        SocketEvent::HandshakeFailed { error, .. } => Some(error),
        SocketEvent::Connected { .. } => panic!("a PUB socket accepted a REQ socket"),
        _ => None,
    })
    .await;
    assert!(
        server_error.contains("REQ") && server_error.contains("PUB"),
        "{server_error}"
    );
    assert!(req.stats().handshake_failures >= 1);
    assert!(publisher.stats().handshake_failures >= 1);
    assert_eq!(req.peers(), 0);
    assert_eq!(publisher.peers(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_client_refuses_a_server_that_accepts_an_incompatible_socket() {
    let endpoint: Endpoint = inproc("bad-server").parse().unwrap();
    let mut server = Inproc.bind(&endpoint).await.unwrap();
    let req = ReqSocket::new();
    let mut events = req.events();
    req.connect(&endpoint.to_string()).unwrap();

    // A server that ignores the rules and accepts a REQ as a PUB.
    let (conn, _) = server.accept().await.unwrap();
    let mut raw = RawPeer::new(conn, None);
    let hello = raw.read_hello().await;
    assert_eq!(hello.socket_type, SocketType::Req);
    raw.answer(&Answer::accept(
        SocketType::Pub,
        Bytes::from_static(b"liar"),
    ))
    .await;

    let error = next_matching(&mut events, |e| match e {
        SocketEvent::HandshakeFailed { error, .. } => Some(error),
        SocketEvent::Connected { .. } => panic!("connected to a PUB socket"),
        _ => None,
    })
    .await;
    assert!(error.contains("REQ") && error.contains("PUB"), "{error}");
    assert_eq!(req.stats().handshake_failures, 1);
    // The client hung up.
    let closed = raw.read_until_closed().await;
    assert!(closed.bytes.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_client_of_another_protocol_version_gets_unsupported_version() {
    let publisher = PubSocket::new();
    let mut events = publisher.events();
    let endpoint = publisher.bind(&inproc("version")).await.unwrap();
    let mut raw = RawPeer::connect(&endpoint).await;
    let mut hello = Hello::new(SocketType::Sub, Bytes::from_static(b"future"), None);
    hello.version = PROTOCOL_VERSION + 1;
    let answer = raw.hello(&hello).await;
    match answer {
        Answer::Reject {
            version,
            code,
            text,
        } => {
            assert_eq!(code, Reason::UnsupportedVersion, "{text}");
            // The rejection says what the server speaks.
            assert_eq!(version, PROTOCOL_VERSION);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(raw.read_until_closed().await.bytes.is_empty());
    let error = next_matching(&mut events, |e| match e {
        SocketEvent::HandshakeFailed { error, .. } => Some(error),
        _ => None,
    })
    .await;
    assert!(error.contains("version"), "{error}");
    assert_eq!(publisher.stats().handshake_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn a_server_drops_a_silent_client_at_the_handshake_timeout() {
    let mut opts = SocketOptions::new();
    opts.handshake_timeout(Duration::from_secs(5));
    let publisher = PubSocket::with_options(opts).unwrap();
    let mut events = publisher.events();
    let endpoint = publisher.bind(&inproc("silent-client")).await.unwrap();

    let started = Instant::now();
    let raw = RawPeer::connect(&endpoint).await;
    let closed = raw.read_until_closed().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "closed after {waited:?}"
    );
    let mut bytes = closed.bytes;
    let answer = HandshakeCodec::new()
        .decode_answer(&mut bytes)
        .unwrap()
        .expect("a rejection before EOF");
    assert!(
        matches!(answer, Answer::Reject { code, .. } if code == Reason::HandshakeTimeout),
        "{answer:?}"
    );
    let error = next_matching(&mut events, |e| match e {
        SocketEvent::HandshakeFailed { error, .. } => Some(error),
        _ => None,
    })
    .await;
    assert!(error.contains("timed out"), "{error}");
    assert_eq!(publisher.stats().handshake_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn a_client_gives_up_on_a_silent_server_at_the_handshake_timeout_and_retries() {
    let endpoint: Endpoint = inproc("silent-server").parse().unwrap();
    let mut server = Inproc.bind(&endpoint).await.unwrap();
    let mut opts = SocketOptions::new();
    opts.handshake_timeout(Duration::from_secs(2))
        .reconnect_initial(Duration::from_millis(100))
        .reconnect_jitter(0.0);
    let req = ReqSocket::with_options(opts).unwrap();
    let mut events = req.events();
    let started = Instant::now();
    req.connect(&endpoint.to_string()).unwrap();

    // Accepts and never answers.
    let (first, _) = server.accept().await.unwrap();
    let error = next_matching(&mut events, |e| match e {
        SocketEvent::HandshakeFailed { error, .. } => Some(error),
        _ => None,
    })
    .await;
    assert!(error.contains("timed out"), "{error}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let delay = next_matching(&mut events, |e| match e {
        SocketEvent::Reconnecting { delay, .. } => Some(delay),
        _ => None,
    })
    .await;
    assert_eq!(delay, Duration::from_millis(100));
    // The client hung up on the first connection and comes back.
    let closed = RawPeer::new(first, None).read_until_closed().await;
    assert!(!closed.bytes.is_empty(), "the client sent its Hello");
    let (_second, _) = server.accept().await.unwrap();
    assert_eq!(req.stats().handshake_failures, 1);
}
