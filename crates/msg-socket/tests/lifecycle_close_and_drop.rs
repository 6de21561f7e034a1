//! Shutdown and the event stream: `close(linger)` delivers what is queued up
//! to the linger time and reports the rest; dropping a socket stops its
//! tasks and frees its ports and socket files; events tell a connection's
//! story in order, and a reader that falls behind learns what it missed.

use crate::raw;

use std::time::Duration;

use crate::raw::{HANG, RawPeer};
use bytes::Bytes;
use futures::StreamExt;
use msg_socket::wire::{Frame, SocketType};
use msg_socket::{
    PubSocket, RepSocket, ReqSocket, SocketEvent, SocketEvents, SocketOptions, SubSocket,
};
use tokio::time::Instant;

fn inproc(name: &str) -> String {
    format!("inproc://lifecycle-{name}-{}", std::process::id())
}

async fn next_event(events: &mut SocketEvents) -> SocketEvent {
    tokio::time::timeout(Duration::from_secs(60), events.next())
        .await
        .expect("no event within a virtual minute")
        .expect("events")
}

const MESSAGES: usize = 1000;
const SIZE: usize = 4096;

/// A publisher with room for every message in its per-subscriber queue.
fn roomy_publisher() -> PubSocket {
    let mut opts = SocketOptions::new();
    opts.send_hwm(10 * MESSAGES);
    PubSocket::with_options(opts).unwrap()
}

#[tokio::test(start_paused = true)]
async fn close_without_linger_reports_what_a_subscriber_that_does_not_read_missed() {
    let publisher = roomy_publisher();
    let endpoint = publisher.bind(&inproc("linger-zero")).await.unwrap();
    // A subscriber that subscribes and then never reads.
    let mut raw = RawPeer::connect(&endpoint).await;
    raw.handshake_as(SocketType::Sub).await;
    raw.send_frame(&Frame::Subscribe {
        topic: Bytes::from_static(b"t"),
    })
    .await;
    assert!(publisher.wait_for_subscribers(1, HANG).await);

    for i in 0..MESSAGES {
        let payload = Bytes::from(vec![(i % 251) as u8; SIZE]);
        assert_eq!(publisher.publish("t", payload).unwrap(), 1);
    }
    // Let the writer fill the pipe (256 KiB) and get stuck.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }

    let started = Instant::now();
    let report = publisher.close(Duration::ZERO).await;
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "closing waited for a peer that does not read"
    );
    assert!(!report.is_complete());
    assert!(
        report.undelivered_frames > MESSAGES / 2 && report.undelivered_frames < MESSAGES,
        "{report:?}"
    );

    // The report is exact: what the subscriber got plus what was reported
    // is everything, in frames and in bytes.
    let closed = raw.read_until_closed().await;
    let got = closed.bytes.len();
    let frames = raw::frames_in(closed.bytes);
    let published = frames
        .iter()
        .filter(|f| matches!(f, Frame::Publish { .. }))
        .count();
    assert_eq!(
        published + report.undelivered_frames,
        MESSAGES,
        "{report:?}"
    );
    let frame_len = 7 + 8 + 2 + 1 + SIZE;
    assert_eq!(got + report.undelivered_bytes, MESSAGES * frame_len);
}

#[tokio::test(start_paused = true)]
async fn close_with_enough_linger_delivers_everything_to_a_reading_subscriber() {
    let publisher = roomy_publisher();
    let endpoint = publisher.bind(&inproc("linger-long")).await.unwrap();
    let mut sub = SubSocket::new();
    sub.subscribe("t").await;
    sub.connect(&endpoint.to_string()).unwrap();
    assert!(publisher.wait_for_subscribers(1, HANG).await);

    for i in 0..MESSAGES {
        let payload = Bytes::from(vec![(i % 251) as u8; SIZE]);
        assert_eq!(publisher.publish("t", payload).unwrap(), 1);
    }
    // 4 MiB are queued, far more than the pipe holds: close has to linger.
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < MESSAGES {
            let msg = sub.next().await.expect("a message");
            assert_eq!(msg.payload().len(), SIZE);
            seqs.push(msg.seq());
        }
        seqs
    });
    let report = publisher.close(Duration::from_secs(10)).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.undelivered_frames, 0);
    let seqs = reader.await.unwrap();
    assert_eq!(seqs, (1..=MESSAGES as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn drop_frees_the_tcp_port_and_close_frees_it_before_returning() {
    let rep = RepSocket::new();
    let endpoint = rep.bind("tcp://127.0.0.1:0").await.unwrap();
    let rep = raw::EchoRep::spawn(rep);
    let req = ReqSocket::new();
    req.connect(&endpoint.to_string()).unwrap();
    assert_eq!(req.request("one").await.unwrap(), "one");
    // Dropping the handle ends the serving task, which drops the socket.
    drop(rep);

    // Drop frees the port once the socket's tasks have seen it: a few turns
    // of the runtime.
    let again = RepSocket::new();
    let mut tries = 0;
    let bound = loop {
        match again.bind(&endpoint.to_string()).await {
            Ok(bound) => break bound,
            Err(e) => {
                tries += 1;
                assert!(tries < 1000, "the port was never freed: {e}");
                tokio::task::yield_now().await;
            }
        }
    };
    assert_eq!(bound, endpoint);
    let report = again.close(Duration::ZERO).await;
    assert!(report.is_complete());
    // Right after close, the port is free: no retry needed.
    let third = RepSocket::new();
    third
        .bind(&endpoint.to_string())
        .await
        .expect("close freed the port");
    // The requester finds its way to the new socket (its connect loop
    // comes back only after its previous connection ended).
    assert!(third.wait_for_peers(1, HANG).await);
    let third = raw::EchoRep::spawn(third);
    assert_eq!(
        tokio::time::timeout(HANG, req.request("two"))
            .await
            .unwrap()
            .unwrap(),
        "two"
    );
    drop(third);
}

#[tokio::test]
async fn close_and_drop_remove_the_ipc_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rep.sock");
    let endpoint = format!("ipc://{}", path.display());

    let rep = RepSocket::new();
    rep.bind(&endpoint).await.unwrap();
    assert!(path.exists());
    rep.close(Duration::ZERO).await;
    assert!(!path.exists(), "close left the socket file behind");
    RepSocket::new()
        .bind(&endpoint)
        .await
        .expect("rebind after close");
    // (That socket was dropped at the end of the statement.)
    let mut tries = 0;
    while path.exists() {
        tries += 1;
        assert!(tries < 1000, "drop never removed the socket file");
        tokio::task::yield_now().await;
    }
    let rep = RepSocket::new();
    rep.bind(&endpoint).await.expect("rebind after drop");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_connecting_socket_says_goodbye_and_stops_reconnecting() {
    let name = inproc("drop-client");
    let rep = RepSocket::new();
    let endpoint = rep.bind(&name).await.unwrap();
    let mut rep_events = rep.events();
    let rep = raw::EchoRep::spawn(rep);
    let req = ReqSocket::new();
    req.connect(&endpoint.to_string()).unwrap();
    assert_eq!(req.request("hi").await.unwrap(), "hi");
    assert!(matches!(
        next_event(&mut rep_events).await,
        SocketEvent::Connected { .. }
    ));

    drop(req);
    match next_event(&mut rep_events).await {
        SocketEvent::Disconnected { reason, .. } => {
            assert!(
                reason.contains("socket closing"),
                "the peer was told: {reason}"
            )
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert_eq!(rep.stats().await.active_peers, 0);
    // Were the Req's reconnect loop still running, it would be back by now.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let quiet = tokio::time::timeout(Duration::from_millis(1), rep_events.next()).await;
    assert!(quiet.is_err(), "unexpected event {quiet:?}");
    assert_eq!(rep.stats().await.active_peers, 0);
}

#[tokio::test(start_paused = true)]
async fn events_tell_listen_connect_loss_and_reconnect_in_order() {
    let name = inproc("story");
    let mut opts = SocketOptions::new();
    opts.reconnect_initial(Duration::from_millis(100))
        .reconnect_max(Duration::from_millis(100))
        .reconnect_jitter(0.0);

    let rep = RepSocket::new();
    let mut rep_events = rep.events();
    let endpoint = rep.bind(&name).await.unwrap();
    let req = ReqSocket::with_options(opts).unwrap();
    let mut events = req.events();
    req.connect(&endpoint.to_string()).unwrap();
    assert!(req.wait_for_peers(1, HANG).await);

    // The server's side: listening, a peer, and (at close) its loss.
    assert_eq!(
        next_event(&mut rep_events).await,
        SocketEvent::Listening(endpoint.clone())
    );
    assert!(matches!(
        next_event(&mut rep_events).await,
        SocketEvent::Connected { .. }
    ));
    rep.close(Duration::ZERO).await;
    match next_event(&mut rep_events).await {
        SocketEvent::Disconnected { reason, .. } => assert_eq!(reason, "closed locally"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert_eq!(
        rep_events.next().await,
        None,
        "the stream ends with the socket"
    );

    // The client's side: connected, lost, retrying until the server is back.
    assert!(matches!(
        next_event(&mut events).await,
        SocketEvent::Connected { .. }
    ));
    match next_event(&mut events).await {
        SocketEvent::Disconnected { reason, .. } => {
            assert!(reason.contains("socket closing"), "{reason}")
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(matches!(
        next_event(&mut events).await,
        SocketEvent::Reconnecting { .. }
    ));
    // Nothing listens for a while: failed attempts, each followed by a retry.
    for _ in 0..3 {
        assert!(matches!(
            next_event(&mut events).await,
            SocketEvent::ConnectFailed { .. }
        ));
        match next_event(&mut events).await {
            SocketEvent::Reconnecting { delay, .. } => {
                assert_eq!(delay, Duration::from_millis(100))
            }
            other => panic!("expected Reconnecting, got {other:?}"),
        }
    }
    let back = RepSocket::new();
    back.bind(&name).await.unwrap();
    loop {
        match next_event(&mut events).await {
            SocketEvent::Connected { .. } => break,
            SocketEvent::ConnectFailed { .. } | SocketEvent::Reconnecting { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(events.missed(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_falls_behind_learns_how_many_events_it_missed() {
    let mut opts = SocketOptions::new();
    opts.reconnect_initial(Duration::from_millis(1))
        .reconnect_max(Duration::from_millis(1))
        .reconnect_jitter(0.0);
    let req = ReqSocket::with_options(opts).unwrap();
    let mut events = req.events();
    // Nothing listens there: every millisecond, a failure and a retry.
    req.connect(&inproc("nobody")).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(events.missed(), 0, "nothing read yet, nothing known");

    let first = next_event(&mut events).await;
    assert!(matches!(
        first,
        SocketEvent::ConnectFailed { .. } | SocketEvent::Reconnecting { .. }
    ));
    let missed = events.missed();
    let emitted = 2 * req.stats().reconnects;
    assert!(missed > 0, "a lagging reader was not told");
    // Everything emitted was either missed or is still buffered (1,024).
    assert!(
        missed + 1024 >= emitted && missed < emitted,
        "missed {missed} of {emitted}"
    );
    // The stream goes on after the gap.
    next_event(&mut events).await;
}
