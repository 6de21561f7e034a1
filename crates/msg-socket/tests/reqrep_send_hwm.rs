//! The send high-water marks of Req and Rep: past the mark a request, or a
//! reply, waits for room instead of being dropped; a request that waits
//! still ends at its deadline (and never goes out); once the peer reads
//! again everything queued arrives, in order.
//!
//! The peer is a raw one that does not read, over inproc (a 256 KiB pipe)
//! with the clock paused: each message is 300 KiB, so the first one gets
//! stuck in the middle of its write and the rest stay queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common;
use crate::raw::{HANG, RawPeer};
use bytes::Bytes;
use msg_socket::transport::{Endpoint, INPROC_BUFFER_SIZE, Inproc, Listener, Transport};
use msg_socket::wire::{Answer, Frame, SocketType};
use msg_socket::{RepSocket, ReqError, ReqSocket, SocketOptions};
use tokio::time::Instant;

/// Larger than the inproc pipe and than a writer's batch (256 KiB): a
/// message of this size never finishes its write to a peer that does not
/// read, and the writer takes no second one into the same batch.
const BIG: usize = 300 * 1024;
const _: () = assert!(BIG > INPROC_BUFFER_SIZE);

fn endpoint(what: &str) -> Endpoint {
    common::inproc(&format!("send-hwm-{what}")).parse().unwrap()
}

/// `BIG` bytes of `tag`.
fn big(tag: u8) -> Bytes {
    Bytes::from(vec![tag; BIG])
}

/// A Req socket with `opts` connected to a raw Rep server that answered
/// its handshake and reads nothing more until the test says so.
async fn req_with_stuck_server(opts: SocketOptions) -> (Arc<ReqSocket>, RawPeer) {
    let endpoint = endpoint("req");
    let mut listener = Inproc.bind(&endpoint).await.unwrap();
    let req = Arc::new(ReqSocket::with_options(opts).unwrap());
    req.connect(&endpoint.to_string()).unwrap();
    let (conn, _) = listener.accept().await.unwrap();
    let mut server = RawPeer::new(conn, None);
    server.read_hello().await;
    server
        .answer(&Answer::accept(
            SocketType::Rep,
            Bytes::from_static(b"stuck"),
        ))
        .await;
    assert!(req.wait_for_peers(1, HANG).await);
    (req, server)
}

/// Options without heartbeats: the raw peer never answers pings, and no
/// ping should sit in the queues being counted.
fn quiet() -> SocketOptions {
    let mut o = SocketOptions::new();
    o.heartbeat_interval(None)
        .request_timeout(Duration::from_secs(600));
    o
}

#[tokio::test(start_paused = true)]
async fn a_request_past_send_hwm_waits_for_room_and_still_ends_at_its_deadline() {
    const HWM: usize = 2;
    let mut o = quiet();
    o.send_hwm(HWM);
    let (req, mut server) = req_with_stuck_server(o).await;

    let requests: Vec<_> = (0..5u8)
        .map(|k| {
            let req = req.clone();
            tokio::spawn(async move { req.request(big(k)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The mark counts every request not yet written, the one stuck in the
    // writer's write included: HWM went out, the other three wait for room.
    // None was dropped, none failed.
    assert_eq!(req.stats().msgs_sent, HWM as u64, "{:?}", req.stats());
    assert!(requests.iter().all(|r| !r.is_finished()));

    // Waiting for room does not stop the clock of a request.
    let started = Instant::now();
    let late = req
        .request_timeout(big(9), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(late, ReqError::Timeout), "{late:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(req.stats().msgs_sent, HWM as u64);

    // The server reads again: room opens, the waiting requests go out in
    // the order they were made, and each is answered.
    for k in 0..5u8 {
        match server.next_frame().await.expect("a request") {
            Frame::Request { id, payload } => {
                assert_eq!(payload, big(k), "request {k} out of order");
                let reply = Frame::Reply {
                    id,
                    payload: payload.slice(..1),
                };
                server.send_frame(&reply).await;
            }
            other => panic!("expected a request, got {other:?}"),
        }
    }
    for (k, r) in requests.into_iter().enumerate() {
        assert_eq!(r.await.unwrap().unwrap(), [k as u8][..]);
    }
    // The request that timed out while waiting was never sent.
    let more = tokio::time::timeout(Duration::from_secs(60), server.next_frame()).await;
    assert!(more.is_err(), "unexpected frame {more:?}");
    let stats = req.stats();
    assert_eq!((stats.msgs_sent, stats.requests), (5, 5), "{stats:?}");
    assert_eq!(stats.dropped_hwm, 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_past_send_hwm_bytes_waits_even_with_message_room() {
    // A byte mark of one: a single frame larger than the mark still goes
    // when the queue is empty, and the next waits until it is written.
    let mut o = quiet();
    o.send_hwm_bytes(1);
    let (req, mut server) = req_with_stuck_server(o).await;

    let requests: Vec<_> = (0..3u8)
        .map(|k| {
            let req = req.clone();
            tokio::spawn(async move { req.request(big(k)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(req.stats().msgs_sent, 1, "{:?}", req.stats());

    for k in 0..3u8 {
        let Some(Frame::Request { id, payload }) = server.next_frame().await else {
            panic!("expected request {k}");
        };
        assert_eq!(payload, big(k));
        server
            .send_frame(&Frame::Reply {
                id,
                payload: Bytes::new(),
            })
            .await;
    }
    for r in requests {
        assert_eq!(r.await.unwrap().unwrap(), Bytes::new());
    }
    assert_eq!(req.stats().msgs_sent, 3);
}

#[tokio::test(start_paused = true)]
async fn a_reply_past_send_hwm_waits_for_room_and_none_is_dropped() {
    const HWM: usize = 2;
    const REQUESTS: u64 = 5;
    let mut o = quiet();
    o.send_hwm(HWM);
    let mut rep = RepSocket::with_options(o).unwrap();
    let endpoint = rep.bind(&endpoint("rep").to_string()).await.unwrap();

    // A raw client that sends its requests and then does not read.
    let mut client = RawPeer::connect(&endpoint).await;
    client.handshake_as(SocketType::Req).await;
    for id in 1..=REQUESTS {
        client
            .send_frame(&Frame::Request {
                id,
                payload: Bytes::from(vec![id as u8]),
            })
            .await;
    }

    // The application answers each request with BIG bytes.
    let replied = Arc::new(AtomicUsize::new(0));
    let counted = replied.clone();
    let server = tokio::spawn(async move {
        for _ in 0..REQUESTS {
            let request = rep.recv().await.expect("a request");
            let tag = request.payload()[0];
            request.reply(big(tag)).await.expect("reply queued");
            counted.fetch_add(1, Ordering::Relaxed);
        }
        rep
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    // HWM replies out (one stuck in the write, counted against the mark
    // until written); the next `reply` waits.
    assert_eq!(replied.load(Ordering::Relaxed), HWM);
    assert!(!server.is_finished());

    // The client reads: every reply arrives, in order, whole.
    for id in 1..=REQUESTS {
        match client.next_frame().await.expect("a reply") {
            Frame::Reply { id: got, payload } => {
                assert_eq!(got, id);
                assert_eq!(payload, big(id as u8));
            }
            other => panic!("expected a reply, got {other:?}"),
        }
    }
    let rep = server.await.unwrap();
    let stats = rep.stats();
    assert_eq!(stats.msgs_sent, REQUESTS, "{stats:?}");
    assert_eq!(stats.dropped_hwm, 0);
}
