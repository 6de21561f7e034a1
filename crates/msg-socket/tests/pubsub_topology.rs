//! Who binds and who connects does not matter: a subscriber may bind and
//! publishers connect to it, and a publisher may be bound to several
//! endpoints (of different transports) at once.

use crate::common;

use std::time::Duration;

use crate::common::Setup;
use futures::{FutureExt, StreamExt};
use msg_socket::{PubMessage, PubSocket, SocketOptions, SubSocket};

const WAIT: Duration = Duration::from_secs(10);

async fn next(sub: &mut SubSocket) -> PubMessage {
    crate::common::next_message(sub, WAIT).await
}

/// Reverse roles: the subscriber binds, two publishers connect to it. The
/// subscriber sends its subscriptions on each accepted connection and
/// filtering still happens at each publisher.
async fn a_subscriber_may_bind_and_publishers_connect(s: Setup) {
    let name = s.name;
    let mut sub = SubSocket::with_options(s.server.clone()).unwrap();
    sub.subscribe("r.").await;
    let endpoint = sub.bind(&s.bind).await.unwrap().to_string();
    let one = PubSocket::with_options(s.client.clone()).unwrap();
    let two = PubSocket::with_options(s.client.clone()).unwrap();
    one.connect(&endpoint).unwrap();
    two.connect(&endpoint).unwrap();
    assert!(one.wait_for_subscribers(1, WAIT).await, "{name}");
    assert!(two.wait_for_subscribers(1, WAIT).await, "{name}");

    assert_eq!(one.publish("other", "no").unwrap(), 0, "{name}: filtered");
    assert_eq!(one.publish("r.1", "one").unwrap(), 1, "{name}");
    assert_eq!(two.publish("r.2", "two").unwrap(), 1, "{name}");
    let mut got = vec![];
    for _ in 0..2 {
        let m = next(&mut sub).await;
        assert_eq!(m.seq(), 1, "{name}");
        let who = if m.publisher().identity == one.identity() {
            "one"
        } else {
            assert_eq!(&m.publisher().identity, two.identity(), "{name}");
            "two"
        };
        got.push((who, m.payload().clone()));
    }
    got.sort();
    assert_eq!(
        got,
        [("one", "one".into()), ("two", "two".into())],
        "{name}"
    );
    assert!(sub.next().now_or_never().is_none(), "{name}");
}

/// One publisher bound to TCP, IPC and inproc endpoints at once, with a
/// subscriber on each: one publish reaches all three.
#[tokio::test]
async fn a_publisher_bound_to_several_endpoints_serves_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let publisher = PubSocket::new();
    let endpoints = vec![
        publisher.bind("tcp://127.0.0.1:0").await.unwrap(),
        publisher
            .bind(&format!("ipc://{}", dir.path().join("pub.sock").display()))
            .await
            .unwrap(),
        publisher
            .bind(&format!(
                "inproc://pubsub-multi-bind-{}",
                std::process::id()
            ))
            .await
            .unwrap(),
    ];

    let mut subs = vec![];
    for endpoint in &endpoints {
        let mut opts = SocketOptions::new();
        common::quick(&mut opts);
        let sub = SubSocket::with_options(opts).unwrap();
        sub.subscribe("").await;
        sub.connect(&endpoint.to_string()).unwrap();
        subs.push(sub);
    }
    assert!(publisher.wait_for_subscribers(3, WAIT).await);
    assert_eq!(publisher.publish("all", "of you").unwrap(), 3);
    for (sub, endpoint) in subs.iter_mut().zip(&endpoints) {
        let m = next(sub).await;
        assert_eq!(m.payload(), "of you", "{endpoint}");
        assert_eq!(&m.publisher().identity, publisher.identity());
    }
}

over_every_transport!(a_subscriber_may_bind_and_publishers_connect);
