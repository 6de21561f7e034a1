//! Linger against peers that do not read, on a virtual clock over inproc
//! (a 256 KiB pipe, far less than what is queued):
//!
//! - `close(linger)` keeps delivering for `linger`, then returns (at that
//!   time, not later) with an exact report of what was not delivered;
//! - dropping a socket does the same in the background for
//!   `SocketOptions::linger` (1 s by default): a peer that starts reading
//!   within it gets everything, one that starts later finds the stream cut
//!   at the linger time; with linger zero the drop cuts at once; and once
//!   everything is delivered the socket stops without waiting out the rest.

use crate::common;
use crate::raw;

use std::time::Duration;

use crate::raw::{HANG, RawPeer};
use bytes::Bytes;
use msg_socket::transport::Endpoint;
use msg_socket::wire::{Frame, SocketType};
use msg_socket::{PubSocket, RepSocket, SocketOptions};
use tokio::time::Instant;

const MESSAGES: usize = 200;
const SIZE: usize = 4096;
/// Bytes of one Publish frame on topic `t`: header, sequence, topic length,
/// topic, payload.
const PUBLISH_LEN: usize = 7 + 8 + 2 + 1 + SIZE;

fn inproc(what: &str) -> String {
    common::inproc(&format!("linger-{what}"))
}

/// `actual` is `expected`, give or take the timer's rounding to whole
/// milliseconds.
fn assert_about(actual: Duration, expected: Duration, what: &str) {
    assert!(
        actual >= expected && actual <= expected + Duration::from_millis(2),
        "{what}: {actual:?}, expected {expected:?}"
    );
}

/// A raw subscriber to topic `t` that reads nothing unless told to.
async fn raw_subscriber(publisher: &PubSocket, endpoint: &Endpoint, n: usize) -> RawPeer {
    let mut raw = RawPeer::connect(endpoint).await;
    raw.handshake_as(SocketType::Sub).await;
    raw.send_frame(&Frame::Subscribe {
        topic: Bytes::from_static(b"t"),
    })
    .await;
    assert!(publisher.wait_for_subscribers(n, HANG).await);
    raw
}

/// A publisher with `opts` (and room for every message), `subscribers` raw
/// subscribers, and MESSAGES published to each.
async fn stuck_publisher(mut opts: SocketOptions, subscribers: usize) -> (PubSocket, Vec<RawPeer>) {
    opts.send_hwm(10 * MESSAGES);
    let publisher = PubSocket::with_options(opts).unwrap();
    let endpoint = publisher.bind(&inproc("pub")).await.unwrap();
    let mut raws = Vec::new();
    for n in 1..=subscribers {
        raws.push(raw_subscriber(&publisher, &endpoint, n).await);
    }
    for i in 0..MESSAGES {
        let payload = Bytes::from(vec![(i % 251) as u8; SIZE]);
        assert_eq!(publisher.publish("t", payload).unwrap(), subscribers);
    }
    // Let the writers fill the pipes and get stuck.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    (publisher, raws)
}

fn publications(bytes: bytes::BytesMut) -> usize {
    raw::frames_in(bytes)
        .iter()
        .filter(|f| matches!(f, Frame::Publish { .. }))
        .count()
}

#[tokio::test(start_paused = true)]
async fn close_with_a_linger_returns_at_the_linger_against_a_subscriber_that_never_reads() {
    let (publisher, mut raws) = stuck_publisher(SocketOptions::new(), 1).await;
    let raw = raws.pop().unwrap();

    let linger = Duration::from_secs(2);
    let started = Instant::now();
    let report = publisher.close(linger).await;
    assert_about(started.elapsed(), linger, "close took");
    assert!(!report.is_complete());
    assert!(
        report.undelivered_frames > MESSAGES / 2 && report.undelivered_frames < MESSAGES,
        "{report:?}"
    );

    // The report is exact: what the subscriber got and what was reported
    // add up to everything, in frames and in bytes.
    let closed = raw.read_until_closed().await;
    let got = closed.bytes.len();
    assert_eq!(
        publications(closed.bytes) + report.undelivered_frames,
        MESSAGES,
        "{report:?}"
    );
    assert_eq!(got + report.undelivered_bytes, MESSAGES * PUBLISH_LEN);
}

#[tokio::test(start_paused = true)]
async fn close_with_a_linger_reports_the_replies_a_requester_that_never_reads_missed() {
    const REQUESTS: u64 = 10;
    const REPLY: usize = 100 * 1024;
    let mut rep = RepSocket::new();
    let endpoint = rep.bind(&inproc("rep")).await.unwrap();
    let mut client = RawPeer::connect(&endpoint).await;
    client.handshake_as(SocketType::Req).await;
    for id in 1..=REQUESTS {
        client
            .send_frame(&Frame::Request {
                id,
                payload: Bytes::from_static(b"?"),
            })
            .await;
    }
    // Every reply is queued (the mark is far away), most stay queued.
    for _ in 0..REQUESTS {
        let request = rep.recv().await.unwrap();
        request.reply(vec![b'r'; REPLY]).await.unwrap();
    }

    let linger = Duration::from_millis(1500);
    let started = Instant::now();
    let report = rep.close(linger).await;
    assert_about(started.elapsed(), linger, "close took");
    assert!(report.undelivered_frames > 0, "{report:?}");

    let closed = client.read_until_closed().await;
    let got = closed.bytes.len();
    let replies = raw::frames_in(closed.bytes)
        .iter()
        .filter(|f| matches!(f, Frame::Reply { .. }))
        .count();
    assert_eq!(replies + report.undelivered_frames, REQUESTS as usize);
    assert_eq!(
        got + report.undelivered_bytes,
        REQUESTS as usize * (7 + 8 + REPLY)
    );
}

/// What one raw subscriber saw after the publisher was dropped.
#[derive(Debug)]
struct Seen {
    /// Publications received.
    publications: usize,
    /// When its stream ended, from the drop.
    ended: Duration,
}

/// Drops a publisher (with `opts`) that has MESSAGES queued for each of two
/// subscribers that are not reading; they start reading `first` and
/// `second` after the drop.
async fn drop_then_read(opts: SocketOptions, first: Duration, second: Duration) -> [Seen; 2] {
    let (publisher, raws) = stuck_publisher(opts, 2).await;
    let dropped = Instant::now();
    drop(publisher);
    let readers: Vec<_> = raws
        .into_iter()
        .zip([first, second])
        .map(|(raw, after)| {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let closed = raw.read_until_closed().await;
                Seen {
                    ended: dropped.elapsed(),
                    publications: publications(closed.bytes),
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    for r in readers {
        seen.push(r.await.unwrap());
    }
    seen.try_into().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_dropped_socket_keeps_delivering_for_the_configured_linger() {
    let linger = Duration::from_secs(3);
    let mut opts = SocketOptions::new();
    opts.linger(linger);
    let ms100 = Duration::from_millis(100);
    let [early, late] = drop_then_read(opts, linger - ms100, linger + ms100).await;
    // Reading just before the linger ran out: everything, and the stream
    // ends when the linger does (the other subscriber still holds it up).
    assert_eq!(early.publications, MESSAGES, "{early:?}");
    assert_about(early.ended, linger, "early reader's stream ended");
    // Reading just after: the stream was cut at the linger time.
    assert!(late.publications < MESSAGES / 2, "{late:?}");
    assert_about(late.ended, linger + ms100, "late reader's stream ended");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_socket_lingers_one_second_by_default() {
    let linger = Duration::from_secs(1);
    let ms100 = Duration::from_millis(100);
    let [early, late] = drop_then_read(SocketOptions::new(), linger - ms100, linger + ms100).await;
    assert_eq!(early.publications, MESSAGES, "{early:?}");
    assert_about(early.ended, linger, "early reader's stream ended");
    assert!(late.publications < MESSAGES / 2, "{late:?}");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_socket_with_linger_zero_cuts_at_once() {
    let mut opts = SocketOptions::new();
    opts.linger(Duration::ZERO);
    let [first, second] = drop_then_read(opts, Duration::ZERO, Duration::ZERO).await;
    for seen in [first, second] {
        assert!(seen.publications < MESSAGES / 2, "{seen:?}");
        assert_eq!(seen.ended, Duration::ZERO, "{seen:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_socket_stops_as_soon_as_everything_is_delivered() {
    let mut opts = SocketOptions::new();
    opts.linger(Duration::from_secs(30));
    let at = Duration::from_millis(500);
    let [first, second] = drop_then_read(opts, at, at).await;
    for seen in [first, second] {
        assert_eq!(seen.publications, MESSAGES, "{seen:?}");
        assert_about(seen.ended, at, "stream ended");
    }
}
