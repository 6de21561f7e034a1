//! PEER sockets: frames routed by the peer's handshake identity, the newer
//! connection wins, only `Data`/`Ack` frames, backpressure instead of drops.

use crate::common;
use crate::raw;

use std::time::Duration;

use crate::raw::RawPeer;
use bytes::Bytes;
use msg_socket::wire::{Frame, Hello, Reason, SocketType};
use msg_socket::{PeerEvent, PeerSendError, PeerSocket, SocketOptions};

const WAIT: Duration = Duration::from_secs(10);

fn peer(base: &SocketOptions, identity: &str) -> PeerSocket {
    let mut o = base.clone();
    o.identity(identity.to_owned());
    PeerSocket::with_options(o).unwrap()
}

async fn next(socket: &PeerSocket) -> PeerEvent {
    tokio::time::timeout(WAIT, socket.recv())
        .await
        .expect("an event in time")
        .expect("socket open")
}

async fn expect_up(socket: &PeerSocket, identity: &str) {
    match next(socket).await {
        PeerEvent::Up(id, info) => {
            assert_eq!(id, identity);
            assert_eq!(info.identity, identity);
            assert_eq!(info.socket_type, SocketType::Peer);
        }
        other => panic!("expected Up({identity}), got {other:?}"),
    }
}

/// `a` bound, `b` connected to it, each told the other is up.
async fn connected_pair(s: &common::Setup) -> (PeerSocket, PeerSocket) {
    let a = peer(&s.server, "a");
    let b = peer(&s.client, "b");
    let endpoint = a.bind(&s.bind).await.unwrap();
    b.connect(&endpoint.to_string()).unwrap();
    expect_up(&a, "b").await;
    expect_up(&b, "a").await;
    (a, b)
}

async fn exchange_by_identity(s: common::Setup) {
    let (a, b) = connected_pair(&s).await;
    assert!(a.is_connected(b"b") && b.is_connected(b"a"));

    for seq in 1..=100u64 {
        b.send_data(b"a", seq, format!("m{seq}")).await.unwrap();
    }
    a.send_ack(b"b", 100).await.unwrap();
    for seq in 1..=100u64 {
        let expected = Frame::Data {
            seq,
            payload: Bytes::from(format!("m{seq}")),
        };
        assert_eq!(
            next(&a).await,
            PeerEvent::Frame("b".into(), expected),
            "{}",
            s.name
        );
    }
    assert_eq!(
        next(&b).await,
        PeerEvent::Frame("a".into(), Frame::Ack { seq: 100 })
    );

    // The connector goes away: the binder sees it down, and can no longer
    // send to it.
    b.close(Duration::ZERO).await;
    assert_eq!(next(&a).await, PeerEvent::Down("b".into()));
    assert!(matches!(
        a.send_ack(b"b", 1).await,
        Err(PeerSendError::NotConnected)
    ));
}

over_every_transport!(exchange_by_identity);

#[tokio::test]
async fn sending_to_an_unknown_identity_or_a_foreign_frame_fails() {
    let a = PeerSocket::new();
    assert!(matches!(
        a.send_data(b"nobody", 1, "x").await,
        Err(PeerSendError::NotConnected)
    ));
    assert!(matches!(
        a.try_send(b"nobody", Frame::Ping { nonce: 1 }),
        Err(PeerSendError::UnsupportedFrame(_))
    ));
}

#[tokio::test]
async fn a_newer_connection_with_the_same_identity_replaces_the_old() {
    let mut base = SocketOptions::new();
    common::quick(&mut base);
    let a = peer(&base, "a");
    let endpoint = a.bind("inproc://peer-replace").await.unwrap();

    // The first "b" would reconnect only after an hour: once replaced, it
    // stays out of the way.
    let mut slow = base.clone();
    slow.reconnect_initial(Duration::from_secs(3600))
        .reconnect_max(Duration::from_secs(3600));
    let old = peer(&slow, "b");
    old.connect(&endpoint.to_string()).unwrap();
    expect_up(&a, "b").await;
    expect_up(&old, "a").await;

    let new = peer(&base, "b");
    new.connect(&endpoint.to_string()).unwrap();
    expect_up(&new, "a").await;
    // The binder sees a second Up for "b" and no Down: the route moved.
    expect_up(&a, "b").await;
    // The old connection was closed by the binder.
    assert_eq!(next(&old).await, PeerEvent::Down("a".into()));

    a.send_data(b"b", 7, "to the new one").await.unwrap();
    assert_eq!(
        next(&new).await,
        PeerEvent::Frame(
            "a".into(),
            Frame::Data {
                seq: 7,
                payload: "to the new one".into()
            }
        )
    );
    assert_eq!(a.connected_peers(), vec![Bytes::from("b")]);
}

#[tokio::test]
async fn an_empty_identity_is_refused() {
    let mut o = SocketOptions::new();
    o.identity("");
    assert!(PeerSocket::with_options(o).is_err());

    // A raw client announcing no identity is rejected in the handshake.
    let a = PeerSocket::new();
    let endpoint = a.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut raw = RawPeer::connect(&endpoint).await;
    let answer = raw
        .hello(&Hello::new(SocketType::Peer, Bytes::new(), None))
        .await;
    assert!(!answer.is_accept(), "{answer:?}");
}

#[tokio::test]
async fn frames_other_than_data_and_ack_close_the_connection() {
    let a = PeerSocket::new();
    let endpoint = a.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut raw = RawPeer::connect(&endpoint).await;
    let answer = raw
        .hello(&Hello::new(
            SocketType::Peer,
            Bytes::from_static(b"raw"),
            None,
        ))
        .await;
    assert!(answer.is_accept());
    expect_up(&a, "raw").await;
    raw.send_frame(&Frame::Request {
        id: 1,
        payload: "no".into(),
    })
    .await;
    let closed = raw.read_until_closed().await;
    let frames = raw::frames_in(closed.bytes);
    assert!(
        frames.iter().any(|f| matches!(
            f,
            Frame::Close {
                code: Reason::ProtocolError,
                ..
            }
        )),
        "{frames:?}"
    );
    assert_eq!(next(&a).await, PeerEvent::Down("raw".into()));
    assert_eq!(a.stats().protocol_errors, 1);
}

#[tokio::test]
async fn a_full_receiver_applies_backpressure_and_drops_nothing() {
    let mut base = SocketOptions::new();
    common::quick(&mut base).recv_hwm(4).send_hwm(4);
    let a = peer(&base, "a");
    let b = peer(&base, "b");
    let endpoint = a.bind("inproc://peer-backpressure").await.unwrap();
    b.connect(&endpoint.to_string()).unwrap();
    expect_up(&a, "b").await;
    expect_up(&b, "a").await;

    // Nobody reads on `a`: its queue fills, its connection stops reading,
    // the pipe fills, and `b`'s queue with it. `try_send` then says Full.
    let payload = Bytes::from(vec![7u8; 1024]);
    let mut sent = 0u64;
    let full = loop {
        assert!(sent < 1_000_000, "never full");
        let frame = Frame::Data {
            seq: sent + 1,
            payload: payload.clone(),
        };
        match b.try_send(b"a", frame) {
            Ok(()) => sent += 1,
            Err(PeerSendError::Full) => break true,
            Err(e) => panic!("{e}"),
        }
        if sent % 16 == 0 {
            // Let the connection tasks move what they can.
            tokio::task::yield_now().await;
        }
    };
    assert!(full);
    // A waiting send completes once `a` reads; every frame arrives, in order.
    let last = sent + 1;
    let waiting = b.send_data(b"a", last, payload.clone());
    let reader = async {
        for seq in 1..=last {
            match next(&a).await {
                PeerEvent::Frame(_, Frame::Data { seq: got, .. }) => assert_eq!(got, seq),
                other => panic!("{other:?}"),
            }
        }
    };
    let (sent_last, ()) = tokio::join!(waiting, reader);
    sent_last.unwrap();
}

/// `send_all` collects small frames into runs and sends large payloads on
/// their own: over TCP and IPC, 3,000 frames of every size class, with
/// acks between them, arrive intact and in order, and every message is
/// counted once.
#[tokio::test]
async fn send_all_keeps_order_across_runs_of_small_frames_and_large_ones() {
    for transport in ["tcp", "ipc"] {
        let s = common::setup(transport);
        let (a, b) = connected_pair(&s).await;

        // Sizes around the run threshold (1 KiB) and past a run's 16 KiB.
        let sizes = [0usize, 1, 64, 1023, 1024, 5000, 20_000];
        let frames: Vec<Frame> = (1..=3000u64)
            .map(|seq| {
                if seq % 10 == 0 {
                    Frame::Ack { seq }
                } else {
                    let len = sizes[seq as usize % sizes.len()];
                    Frame::Data {
                        seq,
                        payload: Bytes::from(vec![(seq % 251) as u8; len]),
                    }
                }
            })
            .collect();
        let data = frames
            .iter()
            .filter(|f| matches!(f, Frame::Data { .. }))
            .count() as u64;
        let before = b.stats().msgs_sent;
        let reader = async {
            for want in &frames {
                assert_eq!(next(&a).await, PeerEvent::Frame("b".into(), want.clone()));
            }
        };
        let (sent, ()) = tokio::join!(b.send_all(b"a", frames.clone()), reader);
        sent.unwrap();
        assert_eq!(b.stats().msgs_sent - before, data, "{transport}");
    }
}

#[tokio::test]
async fn send_all_queues_a_batch_in_order_and_stops_at_a_foreign_frame() {
    let s = common::setup("tcp");
    let (a, b) = connected_pair(&s).await;

    let data = |seq: u64| Frame::Data {
        seq,
        payload: Bytes::from(format!("m{seq}")),
    };
    b.send_all(b"a", (1..=3).map(data)).await.unwrap();
    // Frames before a foreign one go out; it and the rest do not.
    let batch = vec![data(4), Frame::Ping { nonce: 9 }, data(5)];
    assert!(matches!(
        b.send_all(b"a", batch).await,
        Err(PeerSendError::UnsupportedFrame(_))
    ));
    b.send_all(b"a", [Frame::Ack { seq: 7 }]).await.unwrap();
    for seq in 1..=4 {
        assert_eq!(next(&a).await, PeerEvent::Frame("b".into(), data(seq)));
    }
    assert_eq!(
        next(&a).await,
        PeerEvent::Frame("b".into(), Frame::Ack { seq: 7 })
    );
    // An empty batch needs no connection; a batch for nobody fails.
    b.send_all(b"nobody", []).await.unwrap();
    assert!(matches!(
        b.send_all(b"nobody", [data(1)]).await,
        Err(PeerSendError::NotConnected)
    ));
}
