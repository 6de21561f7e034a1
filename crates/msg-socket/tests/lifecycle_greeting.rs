//! A connection's greeting (a subscriber's subscriptions, sent as soon as
//! the handshake is done) may be larger than the connection's queue: the
//! writer drains it while it is queued, so the connection comes up anyway.

use std::time::Duration;

use futures::StreamExt;
use msg_socket::{PubSocket, SocketOptions, SubSocket};

#[tokio::test(start_paused = true)]
async fn a_subscriber_with_more_subscriptions_than_its_queue_holds_connects() {
    let publisher = PubSocket::new();
    let endpoint = publisher
        .bind(&format!("inproc://greeting-{}", std::process::id()))
        .await
        .unwrap();
    let mut opts = SocketOptions::new();
    opts.send_hwm(4);
    let mut sub = SubSocket::with_options(opts).unwrap();
    for i in 0..50 {
        sub.subscribe(format!("topic-{i:02}.")).await;
    }
    sub.connect(&endpoint.to_string()).unwrap();
    assert!(
        publisher
            .wait_for_subscribers(1, Duration::from_secs(10))
            .await
    );
    // Wait until the last subscription has arrived too.
    let mut delivered = 0;
    for _ in 0..1000 {
        delivered = publisher.publish("topic-49.last", "hello").unwrap();
        if delivered == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(delivered, 1, "the 50th subscription never arrived");
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.topic(), "topic-49.last");
    assert_eq!(sub.peers(), 1);
}
