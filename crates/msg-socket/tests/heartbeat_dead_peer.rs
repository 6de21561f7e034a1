//! Heartbeats: a peer that stops responding is closed after the heartbeat
//! timeout, reported and counted, and a client then reconnects; an idle but
//! healthy connection stays up. Over inproc, with tokio's clock paused.

use crate::raw;

use std::time::Duration;

use crate::raw::RawPeer;
use bytes::Bytes;
use futures::StreamExt;
use msg_socket::transport::{Endpoint, Inproc, Listener, Transport};
use msg_socket::wire::{Answer, Frame, Reason, SocketType};
use msg_socket::{RepSocket, ReqSocket, SocketEvent, SocketEvents, SocketOptions};
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(3);

fn inproc(name: &str) -> String {
    format!("inproc://heartbeat-{name}-{}", std::process::id())
}

fn heartbeat_options() -> SocketOptions {
    let mut opts = SocketOptions::new();
    opts.heartbeat_interval(Some(INTERVAL))
        .heartbeat_timeout(TIMEOUT)
        .reconnect_initial(Duration::from_millis(100))
        .reconnect_jitter(0.0);
    opts
}

async fn next_event(events: &mut SocketEvents) -> SocketEvent {
    tokio::time::timeout(Duration::from_secs(60), events.next())
        .await
        .expect("no event within a virtual minute")
        .expect("events")
}

#[tokio::test(start_paused = true)]
async fn a_server_closes_a_client_that_stops_responding_after_the_heartbeat_timeout() {
    let rep = RepSocket::with_options(heartbeat_options()).unwrap();
    let endpoint = rep.bind(&inproc("server-side")).await.unwrap();
    let mut events = rep.events();

    // A client that completes the handshake, then never reads or writes.
    let mut raw = RawPeer::connect(&endpoint).await;
    raw.handshake_as(SocketType::Req).await;
    let started = Instant::now();
    let peer = match next_event(&mut events).await {
        SocketEvent::Connected { peer, .. } => peer,
        other => panic!("expected Connected, got {other:?}"),
    };
    match next_event(&mut events).await {
        SocketEvent::PeerMisbehaved { peer: p, error } => {
            assert_eq!(p, peer);
            assert!(error.contains("heartbeat"), "{error}");
        }
        other => panic!("expected PeerMisbehaved, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= TIMEOUT && waited < TIMEOUT + INTERVAL,
        "closed after {waited:?}"
    );
    assert!(matches!(
        next_event(&mut events).await,
        SocketEvent::Disconnected { .. }
    ));
    let stats = rep.stats();
    assert_eq!(stats.heartbeat_timeouts, 1);
    assert_eq!(stats.protocol_errors, 0);
    assert_eq!(stats.active_peers, 0);

    // What the silent client was sent meanwhile: pings, then the reason.
    let closed = raw.read_until_closed().await;
    let frames = raw::frames_in(closed.bytes);
    let pings = frames
        .iter()
        .filter(|f| matches!(f, Frame::Ping { .. }))
        .count();
    assert_eq!(pings, 2, "{frames:?}");
    match frames.last() {
        Some(Frame::Close { code, text }) => {
            assert_eq!(*code, Reason::ProtocolError);
            assert!(text.contains("heartbeat"), "{text}");
        }
        other => panic!("expected a Close frame last, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_drops_a_silent_server_and_reconnects() {
    let endpoint: Endpoint = inproc("client-side").parse().unwrap();
    let mut server = Inproc.bind(&endpoint).await.unwrap();
    let req = ReqSocket::with_options(heartbeat_options()).unwrap();
    let mut events = req.events();
    req.connect(&endpoint.to_string()).unwrap();

    // A server that answers the handshake, then never reads or writes.
    let (conn, _) = server.accept().await.unwrap();
    let mut first = RawPeer::new(conn, None);
    first.read_hello().await;
    first
        .answer(&Answer::accept(
            SocketType::Rep,
            Bytes::from_static(b"zombie"),
        ))
        .await;
    let up = Instant::now();

    assert!(matches!(
        next_event(&mut events).await,
        SocketEvent::Connected { .. }
    ));
    match next_event(&mut events).await {
        SocketEvent::PeerMisbehaved { error, .. } => assert!(error.contains("heartbeat")),
        other => panic!("expected PeerMisbehaved, got {other:?}"),
    }
    let waited = up.elapsed();
    assert!(
        waited >= TIMEOUT && waited < TIMEOUT + INTERVAL,
        "{waited:?}"
    );
    assert!(matches!(
        next_event(&mut events).await,
        SocketEvent::Disconnected { .. }
    ));
    match next_event(&mut events).await {
        SocketEvent::Reconnecting { delay, .. } => {
            // A lost connection is not a failed attempt: the backoff starts
            // over from its initial delay.
            assert_eq!(delay, Duration::from_millis(100));
        }
        other => panic!("expected Reconnecting, got {other:?}"),
    }

    // The client comes back on a new connection, and it works.
    let (conn, _) = server.accept().await.unwrap();
    let mut second = RawPeer::new(conn, None);
    second.read_hello().await;
    second
        .answer(&Answer::accept(
            SocketType::Rep,
            Bytes::from_static(b"alive"),
        ))
        .await;
    match next_event(&mut events).await {
        SocketEvent::Connected { identity, .. } => assert_eq!(identity, "alive"),
        other => panic!("expected Connected again, got {other:?}"),
    }
    let stats = req.stats();
    assert_eq!(stats.heartbeat_timeouts, 1);
    assert_eq!(stats.reconnects, 1);
    assert_eq!(stats.active_peers, 1);
    drop(first);
}

#[tokio::test(start_paused = true)]
async fn an_idle_healthy_connection_stays_up_across_many_intervals() {
    let rep = RepSocket::with_options(heartbeat_options()).unwrap();
    let mut rep_events = rep.events();
    let endpoint = rep.bind(&inproc("idle")).await.unwrap();
    let rep_stats = raw::EchoRep::spawn(rep);
    let req = ReqSocket::with_options(heartbeat_options()).unwrap();
    let mut events = req.events();
    req.connect(&endpoint.to_string()).unwrap();
    assert!(req.wait_for_peers(1, Duration::from_secs(5)).await);
    assert!(matches!(
        next_event(&mut events).await,
        SocketEvent::Connected { .. }
    ));
    assert!(matches!(
        next_event(&mut rep_events).await,
        SocketEvent::Listening(_)
    ));
    assert!(matches!(
        next_event(&mut rep_events).await,
        SocketEvent::Connected { .. }
    ));
    let before = req.stats();

    // Sixty intervals without a message.
    tokio::time::sleep(60 * INTERVAL).await;

    assert_eq!(req.peers(), 1);
    let after = req.stats();
    assert_eq!(after.heartbeat_timeouts, 0);
    assert_eq!(after.reconnects, 0);
    // Pings went out and pongs came back (both sides ping).
    assert!(
        after.bytes_sent > before.bytes_sent && after.bytes_received > before.bytes_received,
        "{before:?} {after:?}"
    );
    assert_eq!(
        after.msgs_sent, before.msgs_sent,
        "heartbeats are not messages"
    );
    assert_eq!(rep_stats.stats().await.heartbeat_timeouts, 0);
    assert_eq!(req.request("still there?").await.unwrap(), "still there?");
    // Nothing happened to either side's connection.
    for events in [&mut events, &mut rep_events] {
        let quiet = tokio::time::timeout(Duration::from_millis(1), events.next()).await;
        assert!(quiet.is_err(), "unexpected event {quiet:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_flowing_while_a_rep_applies_backpressure() {
    // A Rep whose application does not take requests: its queue holds one,
    // and the connection stops reading behind it.
    let mut opts = heartbeat_options();
    opts.recv_hwm(1);
    let mut rep = RepSocket::with_options(opts).unwrap();
    let endpoint = rep.bind(&inproc("backpressure")).await.unwrap();
    let rep_events = rep.events();
    let mut opts = heartbeat_options();
    opts.request_timeout(Duration::from_secs(120));
    let req = std::sync::Arc::new(ReqSocket::with_options(opts).unwrap());
    let mut events = req.events();
    req.connect(&endpoint.to_string()).unwrap();
    assert!(req.wait_for_peers(1, Duration::from_secs(5)).await);
    assert!(matches!(
        next_event(&mut events).await,
        SocketEvent::Connected { .. }
    ));
    let mut pending = Vec::new();
    for i in 0..3 {
        let req = req.clone();
        pending.push(tokio::spawn(
            async move { req.request(format!("r{i}")).await },
        ));
    }

    // Thirty heartbeat intervals while the Rep's connection is held up.
    tokio::time::sleep(30 * INTERVAL).await;
    assert_eq!(req.stats().heartbeat_timeouts, 0, "the Rep kept pinging");
    assert_eq!(rep.stats().heartbeat_timeouts, 0, "the Rep did not judge");
    assert_eq!(req.peers(), 1);

    // The application catches up and every request is answered.
    for _ in 0..3 {
        let request = rep.recv().await.unwrap();
        let payload = request.payload().clone();
        request.reply(payload).await.unwrap();
    }
    for (i, p) in pending.into_iter().enumerate() {
        assert_eq!(p.await.unwrap().unwrap(), format!("r{i}"));
    }
    let quiet = tokio::time::timeout(Duration::from_millis(1), events.next()).await;
    assert!(quiet.is_err(), "unexpected event {quiet:?}");
    drop(rep_events);
}
