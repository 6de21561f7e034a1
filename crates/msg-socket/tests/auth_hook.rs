//! Authentication: a server-side hook accepts or rejects each peer from its
//! identity, token and address, within a deadline; a rejected client hears
//! why and does not retry in a tight loop. Over inproc, clock paused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use msg_socket::transport::PeerAddr;
use msg_socket::wire::SocketType;
use msg_socket::{AuthRejection, AuthRequest, RepSocket, ReqSocket, SocketEvent, SocketOptions};
use msg_testkit::next_matching;
use tokio::sync::mpsc;
use tokio::time::Instant;

fn inproc(name: &str) -> String {
    format!("inproc://auth-{name}-{}", std::process::id())
}

/// A Rep socket whose authenticator wants the token `open sesame`, and
/// reports every request it sees.
fn guarded_rep(seen: mpsc::UnboundedSender<AuthRequest>) -> RepSocket {
    let mut opts = SocketOptions::new();
    opts.authenticator(move |req: AuthRequest| {
        let seen = seen.clone();
        async move {
            let ok = req.token.as_deref() == Some(b"open sesame".as_slice());
            let _ = seen.send(req);
            if ok {
                Ok(())
            } else {
                Err(AuthRejection::new("wrong token, go away"))
            }
        }
    });
    RepSocket::with_options(opts).unwrap()
}

fn client(identity: &'static str, token: &'static str) -> ReqSocket {
    let mut opts = SocketOptions::new();
    opts.identity(identity).auth_token(token);
    ReqSocket::with_options(opts).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_right_token_is_accepted_and_the_hook_sees_identity_token_and_address() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let rep = guarded_rep(seen_tx);
    let endpoint = rep.bind(&inproc("accept")).await.unwrap();
    tokio::spawn(rep.serve(4, |payload, peer| async move {
        assert_eq!(peer.identity, "alice");
        payload
    }));

    let req = client("alice", "open sesame");
    let mut events = req.events();
    req.connect(&endpoint.to_string()).unwrap();
    assert_eq!(req.request("hi").await.unwrap(), "hi");

    let request = seen.recv().await.expect("the hook ran");
    assert_eq!(request.identity, "alice");
    assert_eq!(request.token, Some(Bytes::from_static(b"open sesame")));
    assert_eq!(request.socket_type, SocketType::Req);
    match &request.addr {
        PeerAddr::Inproc { name, .. } => assert!(endpoint.to_string().ends_with(name.as_str())),
        other => panic!("unexpected address {other:?}"),
    }
    let connected = next_matching(&mut events, |e| match e {
        SocketEvent::Connected { identity, .. } => Some(identity),
        SocketEvent::AuthRejected { reason, .. } => panic!("rejected: {reason}"),
        _ => None,
    })
    .await;
    assert!(!connected.is_empty(), "the server announced its identity");
    assert_eq!(req.stats().auth_rejections, 0);
}

#[tokio::test(start_paused = true)]
async fn a_wrong_token_is_rejected_with_the_servers_reason_on_both_sides() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let rep = guarded_rep(seen_tx);
    let mut rep_events = rep.events();
    let endpoint = rep.bind(&inproc("reject")).await.unwrap();

    let req = client("mallory", "guess");
    let mut events = req.events();
    req.connect(&endpoint.to_string()).unwrap();

    let reason = next_matching(&mut events, |e| match e {
        SocketEvent::AuthRejected { reason, .. } => Some(reason),
        SocketEvent::Connected { .. } => panic!("a wrong token got in"),
        _ => None,
    })
    .await;
    assert_eq!(reason, "wrong token, go away");
    let (peer, server_reason) = next_matching(&mut rep_events, |e| match e {
        SocketEvent::AuthRejected { peer, reason } => Some((peer, reason)),
        _ => None,
    })
    .await;
    assert_eq!(server_reason, "wrong token, go away");
    let request = seen.recv().await.unwrap();
    assert_eq!(request.identity, "mallory");
    assert_eq!(request.token, Some(Bytes::from_static(b"guess")));
    assert_eq!(request.addr, peer, "the hook saw the peer's address");

    assert_eq!(rep.stats().auth_rejections, 1);
    assert_eq!(rep.stats().handshake_failures, 0);
    assert_eq!(req.stats().auth_rejections, 1);
    assert_eq!(rep.peers(), 0);
    // And the request never goes anywhere.
    let err = req
        .request_timeout("let me in", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, msg_socket::ReqError::Timeout), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_hook_that_never_answers_rejects_the_peer_after_auth_timeout() {
    let mut opts = SocketOptions::new();
    opts.auth_timeout(Duration::from_secs(2))
        .authenticator(|_req: AuthRequest| std::future::pending());
    let rep = RepSocket::with_options(opts).unwrap();
    let mut rep_events = rep.events();
    let endpoint = rep.bind(&inproc("hook-timeout")).await.unwrap();

    let req = ReqSocket::new();
    let mut events = req.events();
    let started = Instant::now();
    req.connect(&endpoint.to_string()).unwrap();
    let reason = next_matching(&mut events, |e| match e {
        SocketEvent::AuthRejected { reason, .. } => Some(reason),
        SocketEvent::HandshakeFailed { error, .. } => panic!("handshake failed: {error}"),
        SocketEvent::Connected { .. } => panic!("a hanging hook let a peer in"),
        _ => None,
    })
    .await;
    let waited = started.elapsed();
    assert!(reason.contains("timed out"), "{reason}");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "rejected after {waited:?}"
    );
    next_matching(&mut rep_events, |e| match e {
        SocketEvent::AuthRejected { .. } => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(rep.stats().auth_rejections, 1);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_client_waits_auth_reject_delay_between_attempts() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let mut opts = SocketOptions::new();
    opts.authenticator(move |_req: AuthRequest| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Err(AuthRejection::new("never")) }
    });
    let rep = RepSocket::with_options(opts).unwrap();
    let endpoint = rep.bind(&inproc("no-tight-loop")).await.unwrap();

    let mut opts = SocketOptions::new();
    // A short reconnect backoff, so only the rejection delay holds it back.
    opts.auth_reject_delay(Duration::from_secs(5))
        .reconnect_initial(Duration::from_millis(10))
        .reconnect_max(Duration::from_millis(100));
    let req = ReqSocket::with_options(opts).unwrap();
    req.connect(&endpoint.to_string()).unwrap();

    tokio::time::sleep(Duration::from_secs(60)).await;
    let n = attempts.load(Ordering::SeqCst);
    // Attempts at 0 s, 5 s, ..., 55 s and maybe 60 s.
    assert!((12..=13).contains(&n), "{n} attempts in a minute");
    assert_eq!(rep.stats().auth_rejections as usize, n);
    assert_eq!(req.stats().auth_rejections as usize, n);
}
