//! A request in flight on a connection that drops fails with
//! `ReqError::ConnectionLost`, at once and distinct from a timeout, and is
//! never re-sent behind the caller's back.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use msg_socket::{RepSocket, ReqError, ReqSocket, SocketEvent, SocketOptions};
use tokio::time::Instant;

fn inproc_name(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "inproc://reqrep-lost-{what}-{}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn opts() -> SocketOptions {
    let mut o = SocketOptions::new();
    common::quick(&mut o);
    o
}

#[tokio::test(start_paused = true)]
async fn request_in_flight_fails_with_connection_lost_at_once_and_is_not_resent() {
    let name = inproc_name("drop");
    let mut rep = RepSocket::with_options(opts()).unwrap();
    rep.bind(&name).await.unwrap();
    let mut o = opts();
    o.request_timeout(Duration::from_secs(60));
    let req = ReqSocket::with_options(o).unwrap();
    req.connect(&name).unwrap();
    assert!(req.wait_for_peers(1, Duration::from_secs(1)).await);

    let (result, lost_at) = tokio::join!(req.request("doomed"), async {
        // The Rep takes the request, then goes away without replying.
        let held = rep.recv().await.unwrap();
        assert_eq!(held.payload(), "doomed");
        let report = rep.close(Duration::ZERO).await;
        assert!(report.is_complete());
        // Replying on the dead connection fails; the requester already knows.
        let closed_at = Instant::now();
        assert!(held.reply("too late").await.is_err());
        closed_at
    });
    let failed_after = lost_at.elapsed();
    assert!(
        matches!(result, Err(ReqError::ConnectionLost)),
        "expected ConnectionLost, got {result:?}"
    );
    // Promptly: not after the request timeout, nor after a grace period.
    assert!(
        failed_after < Duration::from_millis(20),
        "ConnectionLost came {failed_after:?} after the Rep closed"
    );

    // A new Rep on the same name: the Req reconnects, and the first thing the
    // new Rep sees is the next request, never the lost one.
    let mut rep = RepSocket::with_options(opts()).unwrap();
    rep.bind(&name).await.unwrap();
    let (result, ()) = tokio::join!(req.request("next"), async {
        let r = rep.recv().await.unwrap();
        assert_eq!(r.payload(), "next", "the lost request was re-sent");
        r.reply("fine").await.unwrap();
    });
    assert_eq!(result.unwrap(), "fine");
    // Nothing else arrives, however long we wait.
    let extra = tokio::time::timeout(Duration::from_secs(30), rep.recv()).await;
    assert!(extra.is_err(), "unexpected request: {:?}", extra.unwrap());
    assert_eq!(rep.stats().msgs_received, 1);
    assert_eq!(req.stats().msgs_sent, 2, "one send each, no retries");
}

#[tokio::test(start_paused = true)]
async fn every_request_in_flight_on_the_dropped_connection_fails_and_others_go_on() {
    // Two Reps; one receives its share of requests and dies. Exactly those
    // fail with ConnectionLost; the rest are answered; later requests all go
    // to the surviving Rep.
    let (a, b) = (inproc_name("a"), inproc_name("b"));
    let mut dying = RepSocket::with_options(opts()).unwrap();
    dying.bind(&a).await.unwrap();
    let healthy = RepSocket::with_options(opts()).unwrap();
    healthy.bind(&b).await.unwrap();
    tokio::spawn(healthy.serve(4, |p, _| async move { p }));

    let mut o = opts();
    o.request_timeout(Duration::from_secs(60));
    let req = ReqSocket::with_options(o).unwrap();
    req.connect(&a).unwrap();
    req.connect(&b).unwrap();
    assert!(req.wait_for_peers(2, Duration::from_secs(1)).await);

    let requests = futures::future::join_all((0..10).map(|n| {
        let req = &req;
        async move { (n, req.request(format!("{n}")).await) }
    }));
    let killer = async {
        let mut held = Vec::new();
        // Round-robin: the dying Rep gets five of the ten.
        while held.len() < 5 {
            held.push(dying.recv().await.unwrap());
        }
        drop(dying);
        held.len()
    };
    let (results, killed) = tokio::join!(requests, killer);
    assert_eq!(killed, 5);
    let lost = results
        .iter()
        .filter(|(_, r)| matches!(r, Err(ReqError::ConnectionLost)))
        .count();
    let answered = results
        .iter()
        .filter(|(n, r)| r.as_ref().is_ok_and(|b| *b == n.to_string()))
        .count();
    assert_eq!((lost, answered), (5, 5), "{results:?}");

    // Afterwards everything goes to the healthy Rep (the dead one's name
    // refuses connections now).
    for n in 0..10 {
        assert_eq!(req.request(format!("{n}")).await.unwrap(), n.to_string());
    }
}

#[tokio::test]
async fn request_in_flight_fails_with_connection_lost_over_tcp_and_ipc() {
    for transport in ["tcp", "ipc"] {
        let s = common::setup(transport);
        let mut rep = RepSocket::with_options(s.server.clone()).unwrap();
        let bound = rep.bind(&s.bind).await.unwrap();
        let req = ReqSocket::with_options(s.client.clone()).unwrap();
        let mut events = req.events();
        req.connect(&bound.to_string()).unwrap();

        let (result, ()) = tokio::join!(req.request_timeout("x", Duration::from_secs(30)), async {
            let held = rep.recv().await.unwrap();
            drop(rep);
            drop(held);
        });
        assert!(
            matches!(result, Err(ReqError::ConnectionLost)),
            "{transport}: {result:?}"
        );
        // The socket saw the disconnection.
        loop {
            if let SocketEvent::Disconnected { .. } = events.next().await.unwrap() {
                break;
            }
        }
    }
}

/// A peer that completes the handshake as a Rep and then never reads,
/// holding every connection open. A message on the returned channel makes it
/// send garbage on every connection.
async fn mute_rep(name: &str) -> tokio::sync::mpsc::Sender<()> {
    use bytes::BytesMut;
    use msg_socket::transport::{Inproc, Listener, Transport};
    use msg_socket::wire::{Answer, HandshakeCodec, SocketType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut listener = Inproc.bind(&name.parse().unwrap()).await.unwrap();
    let (garbage_tx, mut garbage) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut conn, _)) = accepted else { return };
                    let mut codec = HandshakeCodec::new();
                    let mut buf = BytesMut::new();
                    while codec.decode_hello(&mut buf).unwrap().is_none() {
                        assert!(conn.read_buf(&mut buf).await.unwrap() > 0);
                    }
                    let mut out = BytesMut::new();
                    let answer = Answer::accept(SocketType::Rep, bytes::Bytes::from_static(b"mute"));
                    codec.encode_answer(&answer, &mut out).unwrap();
                    conn.write_all(&out).await.unwrap();
                    held.push(conn);
                }
                Some(()) = garbage.recv() => {
                    for conn in &mut held {
                        conn.write_all(&[0xff; 64]).await.unwrap();
                    }
                }
            }
        }
    });
    garbage_tx
}

#[test]
fn request_made_while_a_connection_winds_down_waits_for_another() {
    // A regression here spins forever on the test's one thread; the
    // watchdog turns that into a failure.
    let (done_tx, done) = std::sync::mpsc::channel();
    let test = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(winds_down_body());
        let _ = done_tx.send(());
    });
    match done.recv_timeout(Duration::from_secs(30)) {
        Ok(()) => test.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(test.join().unwrap_err())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("hung: a request spins on a closing connection")
        }
    }
}

async fn winds_down_body() {
    // The Req's reader finds the peer broke the protocol while the pipe to
    // the peer is full (it does not read): the connection then spends a
    // grace period trying to say goodbye. A request made during it must not
    // be queued on the dying connection, nor spin on it: it waits for the
    // reconnection and ends on its own deadline.
    use msg_socket::transport::INPROC_BUFFER_SIZE;
    use msg_socket::wire::{Compression, Frame, FrameCodec};

    let name = inproc_name("mute");
    let garbage = mute_rep(&name).await;
    let mut o = opts();
    o.heartbeat_interval(None)
        .request_timeout(Duration::from_secs(60));
    let req = ReqSocket::with_options(o).unwrap();
    let mut events = req.events();
    req.connect(&name).unwrap();
    assert!(req.wait_for_peers(1, Duration::from_secs(1)).await);
    let start = Instant::now();

    // Four requests fill the pipe exactly, ending on a frame boundary: the
    // writer is idle, and its goodbye will not fit.
    let overhead = FrameCodec::new()
        .encode_parts(
            &Frame::Request {
                id: 1,
                payload: bytes::Bytes::new(),
            },
            Compression::None,
        )
        .unwrap()
        .len();
    let big = bytes::Bytes::from(vec![0u8; INPROC_BUFFER_SIZE / 4 - overhead]);
    let stuck = futures::future::join_all((0..4).map(|_| req.request(big.clone())));
    let late = async {
        tokio::time::sleep_until(start + Duration::from_secs(1)).await;
        garbage.send(()).await.unwrap();
        // Inside the grace period.
        tokio::time::sleep_until(start + Duration::from_millis(1_100)).await;
        let asked_at = Instant::now();
        let r = req.request_timeout("late", Duration::from_secs(1)).await;
        (r, asked_at.elapsed())
    };
    let (stuck, (late, took)) = tokio::join!(stuck, late);
    for r in stuck {
        assert!(matches!(r, Err(ReqError::ConnectionLost)), "{r:?}");
    }
    assert!(matches!(late, Err(ReqError::Timeout)), "{late:?}");
    assert_eq!(took, Duration::from_secs(1));
    let mut connected = 0;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::ZERO, events.next()).await {
        if matches!(ev, SocketEvent::Connected { .. }) {
            connected += 1;
        }
    }
    assert_eq!(connected, 2, "reconnected once");
    assert_eq!(req.stats().protocol_errors, 1);
}
