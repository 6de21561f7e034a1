//! A publisher restarted while its subscribers wait: they reconnect and
//! resubscribe by themselves, and receive again.

use crate::common;

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use msg_socket::{PubMessage, PubSocket, SocketOptions, SubSocket};

const WAIT: Duration = Duration::from_secs(10);

async fn next(sub: &mut SubSocket) -> PubMessage {
    crate::common::next_message(sub, WAIT).await
}

/// Three subscribers connected to a publisher at `bind`. The publisher
/// closes; while it is down one subscriber adds a subscription; a new
/// publisher binds the very same endpoint. Without any help the
/// subscribers reconnect and resend every subscription (the new one too),
/// and receive from the new publisher, numbered from 1 again on the new
/// connection, with no gap counted.
async fn subscribers_come_back_to_a_restarted_publisher(bind: &str) {
    let mut server = SocketOptions::new();
    common::quick(&mut server);
    let first = PubSocket::with_options(server.clone()).unwrap();
    let endpoint = first.bind(bind).await.unwrap().to_string();

    let mut subs = Vec::new();
    for _ in 0..3 {
        let mut client = SocketOptions::new();
        common::quick(&mut client);
        let sub = SubSocket::with_options(client).unwrap();
        sub.subscribe("news.").await;
        sub.connect(&endpoint).unwrap();
        subs.push(sub);
    }
    assert!(first.wait_for_subscribers(3, WAIT).await, "{endpoint}");
    assert_eq!(first.publish("news.1", "before").unwrap(), 3);
    for sub in &mut subs {
        let m = next(sub).await;
        assert_eq!((m.payload().as_ref(), m.seq()), (&b"before"[..], 1));
        assert_eq!(&m.publisher().identity, first.identity());
        assert!(m.is_first(), "the first message of a connection says so");
    }
    assert_eq!(first.publish("news.1", "again").unwrap(), 3);
    for sub in &mut subs {
        assert!(!next(sub).await.is_first(), "the second does not");
    }

    let first_identity = first.identity().clone();
    first.close(Duration::ZERO).await;
    subs[0].subscribe("extra.").await;

    let second = PubSocket::with_options(server).unwrap();
    let rebound = second.bind(&endpoint).await.unwrap().to_string();
    assert_eq!(rebound, endpoint, "same port or path");
    assert!(
        second.wait_for_subscribers(3, WAIT).await,
        "{endpoint}: subscribers resubscribed"
    );
    assert_eq!(second.publish("news.2", "after").unwrap(), 3);
    for sub in &mut subs {
        let m = next(sub).await;
        assert_eq!(m.payload(), "after");
        assert_eq!(m.seq(), 1, "a new connection numbers from 1");
        assert!(m.is_first(), "and its first message marks the restart");
        assert_eq!(&m.publisher().identity, second.identity());
        assert_ne!(m.publisher().identity, first_identity);
        assert_eq!(sub.stats().gaps, 0);
        assert!(sub.stats().reconnects >= 1);
    }

    // The subscription made while the publisher was down reached it too,
    // in the same resend as "news." (round trips on "news." settle it);
    // only subs[0] asked for it.
    let mut extra_in_force = false;
    for k in 0..1000 {
        if second.publish("extra.x", "x").unwrap() == 1 {
            extra_in_force = true;
            break;
        }
        let marker = format!("news.sync{k}");
        assert_eq!(second.publish(marker.clone(), "").unwrap(), 3);
        for sub in &mut subs {
            while next(sub).await.topic() != marker.as_bytes() {}
        }
    }
    assert!(extra_in_force, "{endpoint}");
    assert_eq!(next(&mut subs[0]).await.topic(), "extra.x");
    for sub in &mut subs[1..] {
        assert!(sub.next().now_or_never().is_none());
    }
}

#[tokio::test]
async fn subscribers_come_back_to_a_restarted_publisher_over_tcp() {
    subscribers_come_back_to_a_restarted_publisher("tcp://127.0.0.1:0").await;
}

#[tokio::test]
async fn subscribers_come_back_to_a_restarted_publisher_over_ipc() {
    let dir = tempfile::tempdir().unwrap();
    let bind = format!("ipc://{}", dir.path().join("pub.sock").display());
    subscribers_come_back_to_a_restarted_publisher(&bind).await;
}
