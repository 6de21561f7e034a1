//! Each fault of the fault-injection wrapper does what it says, on in-process pipes
//! with a paused clock.

use crate::common;

use std::io::ErrorKind;
use std::time::Duration;

use crate::common::unique;
use futures::StreamExt;
use msg_transport::{Endpoint, FaultOptions, Faulty, FaultyConn, Inproc, Listener, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::time::Instant;

fn pair(options: &FaultOptions) -> (FaultyConn<DuplexStream>, DuplexStream) {
    let (a, b) = duplex(64 * 1024);
    (FaultyConn::new(a, options), b)
}

#[tokio::test(start_paused = true)]
async fn write_delay_delays_each_write() {
    let mut options = FaultOptions::new();
    options.write_delay(Duration::from_millis(100));
    let (mut conn, mut peer) = pair(&options);
    let start = Instant::now();
    conn.write_all(b"one").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    conn.write_all(b"two").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    let mut buf = [0u8; 6];
    peer.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"onetwo");
    // The peer's reads are not delayed.
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn read_delay_delays_each_read_once() {
    let mut options = FaultOptions::new();
    options.read_delay(Duration::from_secs(2));
    let (mut conn, mut peer) = pair(&options);
    let start = Instant::now();
    // The data arrives after the read started waiting: the delay is not paid twice.
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).await.unwrap();
        (buf, start.elapsed())
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    peer.write_all(b"hello").await.unwrap();
    let (buf, elapsed) = reader.await.unwrap();
    assert_eq!(&buf, b"hello");
    assert_eq!(elapsed, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn cut_after_written_delivers_exactly_that_many_bytes() {
    // ANCHOR: cut_after_written
    let mut options = FaultOptions::new();
    options.cut_after_written(10);
    let (mut conn, mut peer) = pair(&options);
    assert_eq!(conn.write(b"abcd").await.unwrap(), 4);
    assert_eq!(conn.write(b"efgh").await.unwrap(), 4);
    // Short write up to the limit, then the cut.
    assert_eq!(conn.write(b"ijkl").await.unwrap(), 2);
    let handle = conn.handle();
    assert!(handle.is_cut());
    assert_eq!(handle.bytes_written(), 10);
    assert_eq!(
        conn.write(b"m").await.unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
    assert_eq!(
        conn.read(&mut [0u8; 4]).await.unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
    // The peer gets the ten bytes, then EOF: the wrapped connection was dropped.
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"abcdefghij");
    // ANCHOR_END: cut_after_written
}

#[tokio::test(start_paused = true)]
async fn cut_after_read_stops_reading_at_the_limit() {
    let mut options = FaultOptions::new();
    options.cut_after_read(5);
    let (mut conn, mut peer) = pair(&options);
    peer.write_all(b"0123456789").await.unwrap();
    let mut got = Vec::new();
    let error = conn.read_to_end(&mut got).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    assert_eq!(got, b"01234");
    assert_eq!(conn.handle().bytes_read(), 5);
    // The peer sees the connection gone.
    assert_eq!(
        peer.write_all(b"more").await.unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
}

#[tokio::test(start_paused = true)]
async fn cut_after_total_counts_both_directions() {
    let mut options = FaultOptions::new();
    options.cut_after_total(6);
    let (mut conn, mut peer) = pair(&options);
    conn.write_all(b"abcd").await.unwrap();
    peer.write_all(b"wxyz").await.unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(conn.read(&mut buf).await.unwrap(), 2);
    assert_eq!(&buf[..2], b"wx");
    assert!(conn.handle().is_cut());
    assert_eq!(conn.handle().cut_offset(), Some(6));
}

#[tokio::test(start_paused = true)]
async fn cut_at_zero_fails_the_first_io() {
    let mut options = FaultOptions::new();
    options.cut_after_written(0);
    let (mut conn, _peer) = pair(&options);
    assert_eq!(
        conn.write(b"x").await.unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
}

#[tokio::test(start_paused = true)]
async fn max_chunks_make_short_reads_and_writes() {
    let mut options = FaultOptions::new();
    options.max_read_chunk(3).max_write_chunk(2);
    let (mut conn, mut peer) = pair(&options);
    assert_eq!(conn.write(b"hello").await.unwrap(), 2);
    conn.write_all(b"llo").await.unwrap();
    let mut got = [0u8; 5];
    peer.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello");

    peer.write_all(b"abcdefgh").await.unwrap();
    let mut buf = [0u8; 100];
    assert_eq!(conn.read(&mut buf).await.unwrap(), 3);
    assert_eq!(&buf[..3], b"abc");
    let mut rest = [0u8; 5];
    conn.read_exact(&mut rest).await.unwrap();
    assert_eq!(&rest, b"defgh");
    assert_eq!(conn.handle().bytes_read(), 8);
    assert_eq!(conn.handle().bytes_written(), 5);
}

#[tokio::test(start_paused = true)]
async fn injected_errors_fail_exactly_one_call() {
    let (mut conn, mut peer) = pair(&FaultOptions::new());
    let handle = conn.handle();
    handle.fail_next_write(ErrorKind::TimedOut);
    assert_eq!(
        conn.write(b"x").await.unwrap_err().kind(),
        ErrorKind::TimedOut
    );
    conn.write_all(b"ok").await.unwrap();

    handle.fail_next_read(ErrorKind::InvalidData);
    peer.write_all(b"yz").await.unwrap();
    let mut buf = [0u8; 2];
    assert_eq!(
        conn.read(&mut buf).await.unwrap_err().kind(),
        ErrorKind::InvalidData
    );
    conn.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"yz");
}

#[tokio::test(start_paused = true)]
async fn injected_read_error_wakes_a_waiting_read() {
    let (mut conn, _peer) = pair(&FaultOptions::new());
    let handle = conn.handle();
    let reader = tokio::spawn(async move { conn.read(&mut [0u8; 8]).await });
    tokio::task::yield_now().await;
    handle.fail_next_read(ErrorKind::Interrupted);
    assert_eq!(
        reader.await.unwrap().unwrap_err().kind(),
        ErrorKind::Interrupted
    );
}

#[tokio::test(start_paused = true)]
async fn cut_on_demand_wakes_the_reader_and_closes_the_peer() {
    let (mut conn, mut peer) = pair(&FaultOptions::new());
    let handle = conn.handle();
    let reader = tokio::spawn(async move { conn.read(&mut [0u8; 8]).await });
    tokio::task::yield_now().await;
    handle.cut();
    assert_eq!(
        reader.await.unwrap().unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
    assert_eq!(peer.read(&mut [0u8; 1]).await.unwrap(), 0);
    assert!(handle.is_cut());
}

#[tokio::test(start_paused = true)]
async fn random_cuts_are_deterministic_per_seed_and_in_range() {
    async fn offsets(seed: u64) -> Vec<u64> {
        let mut options = FaultOptions::new();
        options.cut_at_random(100..5000, seed);
        let transport = Faulty::new(Inproc, options);
        let endpoint = Endpoint::inproc(unique("random-cut"));
        // Only the client side is faulty: the listener is plain inproc.
        let mut listener = Inproc.bind(&endpoint).await.unwrap();
        let mut offsets = Vec::new();
        for _ in 0..10 {
            let (mut client, _) = transport.connect(&endpoint).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let drain = tokio::spawn(async move {
                let mut received = Vec::new();
                server.read_to_end(&mut received).await.unwrap();
                received.len() as u64
            });
            let handle = client.handle();
            let offset = handle.cut_offset().unwrap();
            assert!((100..5000).contains(&offset), "{offset}");
            let error = client.write_all(&vec![7u8; 10_000]).await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::ConnectionReset);
            assert_eq!(handle.bytes_written(), offset);
            // The peer received exactly the bytes before the cut, then EOF.
            drop(client);
            assert_eq!(drain.await.unwrap(), offset);
            offsets.push(offset);
        }
        assert_eq!(transport.handles().len(), 10);
        offsets
    }
    let a = offsets(42).await;
    assert_eq!(a, offsets(42).await);
    assert_ne!(a, offsets(43).await);
}

#[tokio::test(start_paused = true)]
async fn framed_reader_sees_an_error_when_cut_mid_frame() {
    use bytes::Bytes;
    use futures::SinkExt;
    use msg_wire::{Frame, FrameCodec};
    use tokio_util::codec::Framed;

    let mut options = FaultOptions::new();
    options.cut_after_written(1000);
    let (conn, peer) = pair(&options);
    let mut writer = Framed::new(conn, FrameCodec::new());
    let mut reader = Framed::new(peer, FrameCodec::new());
    let frame = Frame::Request {
        id: 1,
        payload: Bytes::from(vec![1u8; 5000]),
    };
    assert!(writer.send(frame).await.is_err());
    // The peer got a truncated frame, then EOF: the codec reports it, it does not
    // invent a frame.
    match reader.next().await {
        Some(Err(_)) | None => {}
        Some(Ok(frame)) => panic!("decoded a frame from a truncated stream: {frame:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn faulty_transport_delays_with_paused_time() {
    // ANCHOR: faulty_transport
    let mut options = FaultOptions::new();
    options.delay(Duration::from_millis(250));
    let transport = Faulty::new(Inproc, options);
    let endpoint = Endpoint::inproc(unique("faulty-delay"));
    let listener = transport.bind(&endpoint).await.unwrap();
    assert_eq!(listener.local_endpoint(), &endpoint);
    common::spawn_echo_server(listener);
    let start = Instant::now();
    let (conn, _) = transport.connect(&endpoint).await.unwrap();
    common::echo_sizes(conn, &[10], 1).await;
    // Two writes in a row on the critical path (client, then server); each read's
    // delay runs while it waits for the data, overlapping the writer's.
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    transport.cut_all();
    assert!(transport.handles().iter().all(|h| h.is_cut()));
    // ANCHOR_END: faulty_transport
}
