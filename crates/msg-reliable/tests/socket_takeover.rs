//! No one can take over a reliable peer's stream by announcing its identity.
//!
//! A reliable sender routes messages by identity. Were a second connection
//! announcing the receiver's identity to replace the receiver's, whoever made
//! it would read the messages meant for the receiver and acknowledge them,
//! and the sender would delete them. So a repeated identity replaces a live
//! connection only when it authenticated as the same principal; a client
//! with a valid certificate for another name, or a forged identity with a
//! wrong token, is refused, and the real receiver keeps its stream and gets
//! every message, in order, once.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use msg_reliable::{MemoryBackend, ReliableSocket};
use msg_socket::{PeerEvent, PeerSocket, SocketEvent, SocketEvents, SocketOptions, TokenTable};
use msg_testkit::{MutualTls, next_matching};

use crate::support::*;

/// Messages sent before the intruder comes, and as many after.
const HALF: u64 = 50;

/// A reliable socket named `name` over `options`.
async fn open(name: &str, options: SocketOptions) -> ReliableSocket {
    ReliableSocket::open_with_socket_options(pid(name), fast(), options, MemoryBackend::new())
        .await
        .unwrap()
}

/// The sender `a`, bound at `bind`, and the receiver `b`, connected to it,
/// with the first half of the messages delivered and acknowledged. Returns
/// the endpoint and `b`'s socket events since before it connected.
async fn exchange_first_half(
    a: &ReliableSocket,
    b: &ReliableSocket,
    bind: &str,
) -> (String, SocketEvents) {
    let endpoint = a.bind(bind).await.unwrap().to_string();
    let b_events = b.socket().unwrap().events();
    b.connect(&endpoint).unwrap();
    send_all(a, "a", "b", 1, HALF).await;
    receive_all(b, "a", "b", 1, HALF).await;
    (endpoint, b_events)
}

/// The second half goes to the real `b`, in order, and all is acknowledged;
/// `b`'s connection never dropped, and `intruder` received nothing.
async fn real_peer_keeps_its_stream(
    a: ReliableSocket,
    b: ReliableSocket,
    mut b_events: SocketEvents,
    intruder: &PeerSocket,
) {
    send_all(&a, "a", "b", HALF + 1, HALF).await;
    receive_all(&b, "a", "b", HALF + 1, HALF).await;
    tokio::time::timeout(WAIT, a.wait_acked(&pid("b"), 2 * HALF))
        .await
        .expect("everything acknowledged in time")
        .unwrap();
    while let Some(Some(event)) = b_events.next().now_or_never() {
        assert!(
            !matches!(event, SocketEvent::Disconnected { .. }),
            "the real peer lost its connection: {event:?}"
        );
    }
    while let Some(Some(event)) = intruder.recv().now_or_never() {
        assert!(
            !matches!(event, PeerEvent::Frame(..)),
            "the intruder read a frame: {event:?}"
        );
    }
    assert_nothing_delivered(&b);
    assert!(a.shutdown(Duration::from_secs(1)).await.is_complete());
    assert!(b.shutdown(Duration::from_secs(1)).await.is_complete());
}

/// The identity the next `IdentityRefused` event names.
async fn refused_identity(events: &mut SocketEvents) -> bytes::Bytes {
    next_matching(events, |event| match event {
        SocketEvent::IdentityRefused { identity, .. } => Some(identity),
        _ => None,
    })
    .await
}

/// The reason of the next `AuthRejected` event.
async fn auth_rejection(events: &mut SocketEvents) -> String {
    next_matching(events, |event| match event {
        SocketEvent::AuthRejected { reason, .. } => Some(reason),
        _ => None,
    })
    .await
}

/// Mutual TLS or QUIC: `b` has a certificate for "b"; mallory has a valid
/// certificate from the same authority, for "mallory", and announces "b".
async fn another_certificate_cannot_take_over(scheme: &str) {
    let pki = MutualTls::new();
    let mut server = quick();
    server.transport(pki.server());
    let a = open("a", server).await;
    let mut a_events = a.socket().unwrap().events();
    let mut client = quick();
    client.transport(pki.client("b"));
    let b = open("b", client).await;
    let (endpoint, b_events) =
        exchange_first_half(&a, &b, &format!("{scheme}://127.0.0.1:0")).await;

    let mut forged = quick();
    forged.identity("b").transport(pki.client("mallory"));
    let mallory = PeerSocket::with_options(forged).unwrap();
    let mut mallory_events = mallory.events();
    mallory.connect(&endpoint).unwrap();
    assert_eq!(refused_identity(&mut mallory_events).await, "b");
    assert_eq!(refused_identity(&mut a_events).await, "b");
    let stats = a.socket().unwrap().stats();
    assert!(stats.identity_refusals >= 1, "{stats:?}");

    real_peer_keeps_its_stream(a, b, b_events, &mallory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_certificate_cannot_take_over_a_reliable_peer_over_tls() {
    another_certificate_cannot_take_over("tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_certificate_cannot_take_over_a_reliable_peer_over_quic() {
    another_certificate_cannot_take_over("quic").await;
}

/// Identities bound to tokens: mallory announces "b" with a wrong token, or
/// none, and is rejected; `b`, with its own, keeps its stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_identity_with_a_wrong_token_is_refused() {
    let mut tokens = TokenTable::new();
    tokens.insert("b", "b-secret-0123456789");
    let mut server = quick();
    server.authenticator(tokens);
    let a = open("a", server).await;
    let mut a_events = a.socket().unwrap().events();
    let mut client = quick();
    client.auth_token("b-secret-0123456789");
    let b = open("b", client).await;
    let (endpoint, b_events) = exchange_first_half(&a, &b, "tcp://127.0.0.1:0").await;

    for token in [Some("guess"), None] {
        let mut forged = quick();
        forged.identity("b");
        if let Some(token) = token {
            forged.auth_token(token);
        }
        let mallory = PeerSocket::with_options(forged).unwrap();
        let mut mallory_events = mallory.events();
        mallory.connect(&endpoint).unwrap();
        let reason = auth_rejection(&mut mallory_events).await;
        assert_eq!(reason, "unknown identity or wrong token");
        assert_eq!(auth_rejection(&mut a_events).await, reason);
        assert!(mallory.recv().now_or_never().is_none(), "{token:?}");
    }
    let quiet = PeerSocket::with_options(quick()).unwrap();
    real_peer_keeps_its_stream(a, b, b_events, &quiet).await;
}

/// With identities bound to certificates, mallory cannot even squat "b"
/// while `b` is away; with its own name it is welcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_identity_cannot_be_squatted_before_its_holder_connects() {
    let pki = MutualTls::new();
    let mut server = quick();
    server
        .transport(pki.server())
        .bind_identity_to_certificate(true);
    let a = open("a", server).await;
    let endpoint = a.bind("tls://127.0.0.1:0").await.unwrap().to_string();

    let mut forged = quick();
    forged.identity("b").transport(pki.client("mallory"));
    let squatter = PeerSocket::with_options(forged).unwrap();
    let mut squatter_events = squatter.events();
    squatter.connect(&endpoint).unwrap();
    let reason = auth_rejection(&mut squatter_events).await;
    assert!(
        reason.contains("\"b\" is not a name in the client certificate"),
        "{reason}"
    );

    let mut honest = quick();
    honest.identity("mallory").transport(pki.client("mallory"));
    let mallory = PeerSocket::with_options(honest).unwrap();
    mallory.connect(&endpoint).unwrap();

    let mut client = quick();
    client.transport(pki.client("b"));
    let b = open("b", client).await;
    b.connect(&endpoint).unwrap();
    send_all(&a, "a", "b", 1, HALF).await;
    receive_all(&b, "a", "b", 1, HALF).await;
    let peers = a.socket().unwrap();
    assert!(
        peers.wait_for_peers(2, WAIT).await,
        "b and the honest mallory are both connected"
    );
    assert!(squatter.recv().now_or_never().is_none());
}
