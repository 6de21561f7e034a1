//! A slow subscriber never slows the publisher or its other subscribers:
//! the publisher drops the newest messages for it past its high-water mark
//! (in messages and in bytes), counts them, and holds no more than the mark.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use msg_socket::transport::{FaultHandle, FaultOptions, Faulty, INPROC_BUFFER_SIZE, Inproc};
use msg_socket::wire::{Frame, FrameCodec, HEADER_LEN, HandshakeCodec, Hello, SocketType};
use msg_socket::{PubMessage, PubSocket, SocketOptions, SubSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Virtual time: a guard against hanging, not a way of waiting.
const LONG: Duration = Duration::from_secs(1_000_000);

async fn next(sub: &mut SubSocket, within: Duration) -> PubMessage {
    crate::common::next_message(sub, within).await
}

/// A subscriber to everything whose transport is never read while tasks
/// can run: each read first waits an hour of virtual time. Returns it and
/// the handle that counts what it read.
async fn stalled_subscriber(endpoint: &str) -> (SubSocket, Faulty<Inproc>) {
    let mut opts = SocketOptions::new();
    opts.heartbeat_interval(None)
        .handshake_timeout(Duration::from_secs(100 * 3600));
    let mut faults = FaultOptions::new();
    faults.read_delay(Duration::from_secs(3600));
    let transport = Faulty::new(Inproc::new(), faults);
    let sub = SubSocket::with_options(opts).unwrap();
    sub.subscribe("").await;
    sub.connect_with(transport.clone(), &endpoint.parse().unwrap())
        .unwrap();
    (sub, transport)
}

/// Bytes on the wire for a publication: header, sequence number, topic
/// length, topic, payload.
fn frame_len(topic: usize, payload: usize) -> usize {
    HEADER_LEN + 8 + 2 + topic + payload
}

fn the_one(transport: &Faulty<Inproc>) -> FaultHandle {
    let handles = transport.handles();
    assert_eq!(handles.len(), 1, "one connection, never reconnected");
    handles[0].clone()
}

/// One publisher, one subscriber that stops reading and one that keeps up;
/// 20,000 messages of 1 KiB. `publish` (which cannot wait: it is not
/// async) queues every message for the fast subscriber, which receives
/// them all, in order, numbered 1 to 20,000. The slow one gets what its
/// pipe and its queue of 128 hold; the rest is dropped and counted. At the
/// end its queue holds at most 128 messages.
#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_never_slows_the_publisher_or_a_fast_one() {
    const HWM: usize = 128;
    const N: usize = 20_000;
    const WINDOW: usize = 100;
    let mut opts = SocketOptions::new();
    opts.send_hwm(HWM).heartbeat_interval(None);
    let publisher = PubSocket::with_options(opts).unwrap();
    let endpoint = publisher
        .bind("inproc://pubsub-slow-vs-fast")
        .await
        .unwrap()
        .to_string();
    let (slow, slow_transport) = stalled_subscriber(&endpoint).await;
    let mut fast_opts = SocketOptions::new();
    fast_opts.heartbeat_interval(None);
    let mut fast = SubSocket::with_options(fast_opts).unwrap();
    fast.subscribe("").await;
    fast.connect(&endpoint).unwrap();
    assert!(publisher.wait_for_subscribers(2, LONG).await);

    let payload = Bytes::from(vec![b'x'; 1024]);
    let mut seq = 0;
    for window in 0..N / WINDOW {
        for i in 0..WINDOW {
            let n = window * WINDOW + i;
            let queued = publisher
                .publish(format!("t{n:05}"), payload.clone())
                .unwrap();
            assert!(
                queued >= 1,
                "message {n} was queued for the fast subscriber"
            );
        }
        for i in 0..WINDOW {
            let m = next(&mut fast, LONG).await;
            seq += 1;
            assert_eq!(m.seq(), seq);
            assert_eq!(m.topic(), format!("t{:05}", window * WINDOW + i).as_bytes());
        }
    }
    assert!(fast.next().now_or_never().is_none());
    assert_eq!(fast.stats().gaps, 0);
    assert_eq!(fast.stats().dropped_hwm, 0);

    let stats = publisher.stats();
    let to_slow = stats.msgs_sent - N as u64;
    assert_eq!(
        stats.dropped_hwm,
        N as u64 - to_slow,
        "every message is counted"
    );
    // What the slow one was sent is in its queue (at most HWM, counting a
    // frame half written), or was written whole into the pipe, which holds
    // 256 KiB beyond what the subscriber read (nothing, unless the runtime
    // went idle mid-test).
    let read = the_one(&slow_transport).bytes_read() as usize;
    let bound = HWM + (INPROC_BUFFER_SIZE + read) / frame_len(6, payload.len());
    assert!(
        to_slow as usize <= bound,
        "{to_slow} queued for the slow subscriber, bound {bound}, read {read}"
    );
    assert!(stats.dropped_hwm >= (N - bound) as u64, "{stats:?}");

    // What is left at the publisher is the slow subscriber's full queue.
    let report = publisher.close(Duration::ZERO).await;
    assert!((1..=HWM).contains(&report.undelivered_frames), "{report:?}");
    drop(slow);
}

/// The byte mark holds as well: with room for 10,000 messages but only
/// 64 KiB, a stalled subscriber's queue of 8 KiB messages stops at 64 KiB.
#[tokio::test(start_paused = true)]
async fn the_publishers_queue_is_bounded_in_bytes() {
    const HWM_BYTES: usize = 64 * 1024;
    let mut opts = SocketOptions::new();
    opts.send_hwm(10_000)
        .send_hwm_bytes(HWM_BYTES)
        .heartbeat_interval(None);
    let publisher = PubSocket::with_options(opts).unwrap();
    let endpoint = publisher
        .bind("inproc://pubsub-slow-bytes")
        .await
        .unwrap()
        .to_string();
    let (_slow, transport) = stalled_subscriber(&endpoint).await;
    assert!(publisher.wait_for_subscribers(1, LONG).await);

    let payload = Bytes::from(vec![0u8; 8 * 1024]);
    let mut queued = 0;
    for _ in 0..500 {
        queued += publisher.publish("t", payload.clone()).unwrap();
        tokio::task::yield_now().await;
    }
    let frame_len = frame_len(1, payload.len());
    let read = the_one(&transport).bytes_read() as usize;
    // Queued bytes count what is not written yet, so the queue and the
    // pipe together hold at most this many messages.
    let bound = (HWM_BYTES + INPROC_BUFFER_SIZE + read) / frame_len;
    assert!(queued <= bound, "{queued} queued, bound {bound}");
    assert_eq!(publisher.stats().dropped_hwm, (500 - queued) as u64);

    let report = publisher.close(Duration::ZERO).await;
    assert!(report.undelivered_frames > 0, "{report:?}");
    assert!(report.undelivered_bytes <= HWM_BYTES, "{report:?}");
}

/// Over real TCP, a peer that completes the handshake, subscribes to
/// everything and never reads again (a raw client with a tiny receive
/// buffer), beside a fast subscriber. The fast one receives all 20,000
/// messages in order; the publisher drops for the silent peer and counts
/// it, and at the end holds at most its mark for it.
#[tokio::test]
async fn a_peer_that_never_reads_costs_the_publisher_a_bounded_queue_over_tcp() {
    const HWM: usize = 256;
    const N: usize = 20_000;
    const WINDOW: usize = 200;
    let mut opts = SocketOptions::new();
    opts.send_hwm(HWM).heartbeat_interval(None);
    let publisher = PubSocket::with_options(opts).unwrap();
    let endpoint = publisher.bind("tcp://127.0.0.1:0").await.unwrap();
    let addr = endpoint
        .to_string()
        .trim_start_matches("tcp://")
        .parse()
        .unwrap();

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut silent = socket.connect(addr).await.unwrap();
    let handshake = HandshakeCodec::new();
    let mut out = BytesMut::new();
    handshake
        .encode_hello(
            &Hello::new(SocketType::Sub, Bytes::from_static(b"silent"), None),
            &mut out,
        )
        .unwrap();
    FrameCodec::new()
        .encode(
            &Frame::Subscribe {
                topic: Bytes::new(),
            },
            &mut out,
        )
        .unwrap();
    silent.write_all(&out).await.unwrap();
    let mut handshake = handshake;
    let mut buf = BytesMut::new();
    let answer = loop {
        if let Some(answer) = handshake.decode_answer(&mut buf).unwrap() {
            break answer;
        }
        assert!(silent.read_buf(&mut buf).await.unwrap() > 0);
    };
    assert!(answer.is_accept(), "{answer:?}");

    let mut fast = SubSocket::new();
    fast.subscribe("").await;
    fast.connect(&endpoint.to_string()).unwrap();
    assert!(
        publisher
            .wait_for_subscribers(2, Duration::from_secs(10))
            .await
    );

    // 4 KiB each, 80 MiB in all: far more than the kernel buffers hold.
    let payload = Bytes::from(vec![b'x'; 4096]);
    let mut seq = 0;
    for window in 0..N / WINDOW {
        for _ in 0..WINDOW {
            assert!(publisher.publish("t", payload.clone()).unwrap() >= 1);
        }
        for _ in 0..WINDOW {
            let m = next(&mut fast, Duration::from_secs(10)).await;
            seq += 1;
            assert_eq!(m.seq(), seq, "window {window}");
            assert_eq!(m.payload().len(), payload.len());
        }
    }
    assert_eq!(fast.stats().gaps, 0);
    let stats = publisher.stats();
    assert!(stats.dropped_hwm > 0, "{stats:?}");
    assert_eq!(stats.dropped_hwm, 2 * N as u64 - stats.msgs_sent);

    let report = publisher.close(Duration::ZERO).await;
    assert!(report.undelivered_frames <= HWM, "{report:?}");
    drop(silent);
}
