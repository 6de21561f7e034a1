//! The subscriber's own high-water mark: an application that does not read
//! loses the newest messages past `recv_hwm` (or `recv_hwm_bytes`), counted
//! in the subscriber's `dropped_hwm`; the publisher is not slowed and the
//! socket delivers again as soon as the application reads.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use msg_socket::{PubMessage, PubSocket, SocketOptions, SubSocket};

/// Virtual time: a guard against hanging, not a way of waiting.
const LONG: Duration = Duration::from_secs(1_000_000);

async fn next(sub: &mut SubSocket) -> PubMessage {
    crate::common::next_message(sub, LONG).await
}

/// Waits (in virtual time) until the subscriber has taken `n` messages off
/// its connections, whether it kept them or not.
async fn until_received(sub: &SubSocket, n: u64) {
    for _ in 0..100_000 {
        if sub.stats().msgs_received >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("only {} of {n} messages arrived", sub.stats().msgs_received);
}

async fn pair(name: &str, sub_opts: SocketOptions) -> (PubSocket, SubSocket) {
    let publisher = PubSocket::new();
    let endpoint = publisher.bind(name).await.unwrap().to_string();
    let sub = SubSocket::with_options(sub_opts).unwrap();
    sub.subscribe("").await;
    sub.connect(&endpoint).unwrap();
    assert!(publisher.wait_for_subscribers(1, LONG).await);
    (publisher, sub)
}

/// Twenty messages to a subscriber that holds five and is not read: the
/// first five wait, the other fifteen are dropped and counted on the
/// subscriber (the publisher queued all twenty and dropped nothing). After
/// the application reads, the next message arrives normally; its number
/// shows the fifteen missing, but they are not publisher gaps.
#[tokio::test(start_paused = true)]
async fn an_unread_subscriber_drops_the_newest_past_its_mark_and_recovers() {
    let mut opts = SocketOptions::new();
    opts.recv_hwm(5);
    let (publisher, mut sub) = pair("inproc://pubsub-recv-hwm", opts).await;

    for i in 0..20 {
        assert_eq!(publisher.publish("t", format!("{i}")).unwrap(), 1);
    }
    until_received(&sub, 20).await;
    assert_eq!(sub.stats().dropped_hwm, 15);
    assert_eq!(
        publisher.stats().dropped_hwm,
        0,
        "the publisher was not slowed"
    );

    for i in 0..5 {
        let m = next(&mut sub).await;
        assert_eq!(
            (m.seq(), m.payload().as_ref()),
            (i + 1, format!("{i}").as_bytes())
        );
    }
    assert!(
        sub.next().now_or_never().is_none(),
        "the newest were dropped"
    );

    assert_eq!(publisher.publish("t", "after").unwrap(), 1);
    let m = next(&mut sub).await;
    assert_eq!((m.seq(), m.payload().as_ref()), (21, &b"after"[..]));
    let stats = sub.stats();
    assert_eq!(stats.dropped_hwm, 15);
    assert_eq!(stats.gaps, 0, "local drops are not publisher gaps");
}

/// The byte mark: 10 KiB of room and 4 KiB messages keep two; the rest of
/// ten are dropped. (A single message larger than the mark would still be
/// taken into an empty queue.)
#[tokio::test(start_paused = true)]
async fn the_subscribers_queue_is_bounded_in_bytes() {
    let mut opts = SocketOptions::new();
    opts.recv_hwm(1000).recv_hwm_bytes(10 * 1024);
    let (publisher, mut sub) = pair("inproc://pubsub-recv-hwm-bytes", opts).await;

    let payload = vec![1u8; 4 * 1024];
    for _ in 0..10 {
        assert_eq!(publisher.publish("t", payload.clone()).unwrap(), 1);
    }
    until_received(&sub, 10).await;
    assert_eq!(sub.stats().dropped_hwm, 8);
    for seq in 1..=2 {
        assert_eq!(next(&mut sub).await.seq(), seq);
    }
    assert!(sub.next().now_or_never().is_none());

    let big = vec![2u8; 64 * 1024];
    assert_eq!(publisher.publish("t", big.clone()).unwrap(), 1);
    let m = next(&mut sub).await;
    assert_eq!((m.seq(), m.payload().len()), (11, big.len()));
}
