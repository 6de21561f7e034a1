//! Subscriptions reach publishers whenever they are made: before
//! connecting, while connected, more than a queue holds, concurrently from
//! several tasks; and one subscriber hears several publishers.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use crate::common::Setup;
use msg_socket::{PubMessage, PubSocket, SocketOptions, SubSocket};

const WAIT: Duration = Duration::from_secs(10);

async fn next(sub: &mut SubSocket) -> PubMessage {
    crate::common::next_message(sub, WAIT).await
}

/// A subscriber that connects with no subscription at all, then subscribes
/// once the connection is up: the subscription is sent on the live
/// connection and the publisher starts sending.
async fn a_subscription_added_while_connected_reaches_the_publisher(s: Setup) {
    let name = s.name;
    let publisher = PubSocket::with_options(s.server.clone()).unwrap();
    let endpoint = publisher.bind(&s.bind).await.unwrap().to_string();
    let mut sub = SubSocket::with_options(s.client.clone()).unwrap();
    sub.connect(&endpoint).unwrap();
    assert!(sub.wait_for_peers(1, WAIT).await, "{name}");
    assert!(publisher.wait_for_peers(1, WAIT).await, "{name}");
    assert_eq!(publisher.subscribers(), 0, "{name}");
    assert_eq!(publisher.publish("live.0", "nobody").unwrap(), 0);

    sub.subscribe("live.").await;
    assert!(publisher.wait_for_subscribers(1, WAIT).await, "{name}");
    assert_eq!(publisher.publish("live.1", "hello").unwrap(), 1);
    let m = next(&mut sub).await;
    assert_eq!((m.topic().as_ref(), m.seq()), (&b"live.1"[..], 1), "{name}");
}

/// One subscriber connected to two publishers receives from both, and
/// `PubMessage::publisher` tells them apart; each numbers its own stream.
async fn a_subscriber_hears_two_publishers(s: Setup) {
    let name = s.name;
    let one = PubSocket::with_options(s.server.clone()).unwrap();
    let two = PubSocket::with_options(s.server.clone()).unwrap();
    let endpoint_one = one.bind(&s.bind).await.unwrap().to_string();
    // Names and paths cannot be bound twice; ports are 0.
    let second_bind = match s.name {
        "inproc" | "ipc" => format!("{}-2", s.bind),
        _ => s.bind.clone(),
    };
    let endpoint_two = two.bind(&second_bind).await.unwrap().to_string();
    let mut sub = SubSocket::with_options(s.client.clone()).unwrap();
    sub.subscribe("").await;
    sub.connect(&endpoint_one).unwrap();
    sub.connect(&endpoint_two).unwrap();
    assert!(one.wait_for_subscribers(1, WAIT).await, "{name}");
    assert!(two.wait_for_subscribers(1, WAIT).await, "{name}");

    for i in 0..3 {
        assert_eq!(one.publish("from", format!("one {i}")).unwrap(), 1);
        assert_eq!(two.publish("from", format!("two {i}")).unwrap(), 1);
    }
    let mut from_one = vec![];
    let mut from_two = vec![];
    for _ in 0..6 {
        let m = next(&mut sub).await;
        let who = &m.publisher().identity;
        if who == one.identity() {
            from_one.push((m.seq(), m.payload().clone()));
        } else if who == two.identity() {
            from_two.push((m.seq(), m.payload().clone()));
        } else {
            panic!("{name}: a message from nowhere: {m:?}");
        }
    }
    let expect = |who: &str| -> Vec<(u64, bytes::Bytes)> {
        (0..3)
            .map(|i| (i + 1, format!("{who} {i}").into()))
            .collect()
    };
    assert_eq!(from_one, expect("one"), "{name}");
    assert_eq!(from_two, expect("two"), "{name}");
    assert_eq!(sub.stats().gaps, 0, "{name}");
}

/// A subscriber with far more subscriptions than its outgoing queue holds
/// (3,000 against a mark of 16 messages and 1 KiB) made before it connects:
/// the whole set is resent on connect, while the connection's writer drains
/// the queue, and every prefix reaches the publisher. Then 3,000 more while
/// connected.
#[tokio::test(start_paused = true)]
async fn more_subscriptions_than_the_queue_holds_reach_the_publisher() {
    let mut server = SocketOptions::new();
    server.send_hwm(10_000);
    let publisher = PubSocket::with_options(server).unwrap();
    let endpoint = publisher
        .bind("inproc://pubsub-many-subscriptions")
        .await
        .unwrap()
        .to_string();
    let mut client = SocketOptions::new();
    client.send_hwm(16).send_hwm_bytes(1024).recv_hwm(10_000);
    let mut sub = SubSocket::with_options(client).unwrap();
    for i in 0..3000 {
        sub.subscribe(format!("p{i:04}.")).await;
    }
    sub.connect(&endpoint).unwrap();
    // The set goes out in order; the last one settles the rest.
    wait_until_matched(&publisher, "p2999.").await;
    assert_eq!(next(&mut sub).await.topic(), "p2999.", "the probe");
    for i in 0..3000 {
        assert_eq!(
            publisher.publish(format!("p{i:04}.x"), "").unwrap(),
            1,
            "p{i:04}."
        );
    }
    for i in 0..3000 {
        assert_eq!(
            next(&mut sub).await.topic(),
            format!("p{i:04}.x").as_bytes()
        );
    }

    for i in 0..3000 {
        sub.subscribe(format!("q{i:04}.")).await;
    }
    wait_until_matched(&publisher, "q2999.").await;
    for i in 0..3000 {
        assert_eq!(
            publisher.publish(format!("q{i:04}.x"), "").unwrap(),
            1,
            "q{i:04}."
        );
    }
    assert_eq!(publisher.stats().dropped_hwm, 0);
}

/// Virtual time only: publishes a probe on `topic` every millisecond until
/// one is queued for a subscriber.
async fn wait_until_matched(publisher: &PubSocket, topic: &str) {
    for _ in 0..100_000 {
        if publisher.publish(topic.to_string(), "probe").unwrap() > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{topic} never reached the publisher");
}

/// Two tasks per prefix, on a multi-threaded runtime, subscribe and
/// unsubscribe it at once, in pairs; then one of them subscribes once more.
/// Every prefix ends subscribed once, and the publisher must agree: an
/// unsubscribe frame overtaking the subscribe that followed it (or the
/// other way round) would leave the publisher with a different set than the
/// subscriber's, forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_subscription_changes_reach_the_publisher_in_order() {
    const ROUNDS: usize = 4;
    const PREFIXES: usize = 64;
    const CHANGES: usize = 100;
    let mut server = SocketOptions::new();
    server.send_hwm(10_000);
    let publisher = PubSocket::with_options(server).unwrap();
    let endpoint = publisher
        .bind(&format!(
            "inproc://pubsub-concurrent-{}",
            std::process::id()
        ))
        .await
        .unwrap()
        .to_string();
    let mut client = SocketOptions::new();
    // One frame in the queue at a time: changes often wait for room, which
    // is when they could overtake one another.
    client.send_hwm_bytes(1);
    let sub = Arc::new(SubSocket::with_options(client).unwrap());
    sub.connect(&endpoint).unwrap();
    assert!(sub.wait_for_peers(1, WAIT).await);
    assert!(publisher.wait_for_peers(1, WAIT).await);

    // What matters is the last changes to each prefix: several rounds of
    // many prefixes give many chances to catch a misordering.
    for round in 0..ROUNDS {
        let mut tasks = Vec::new();
        for p in 0..PREFIXES {
            for last_word in [true, false] {
                let sub = sub.clone();
                let prefix = format!("r{round}p{p}.");
                tasks.push(tokio::spawn(async move {
                    for _ in 0..CHANGES {
                        sub.subscribe(prefix.clone()).await;
                        tokio::task::yield_now().await;
                        sub.unsubscribe(prefix.clone()).await;
                    }
                    if last_word {
                        sub.subscribe(prefix).await;
                    }
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    // A last subscription, behind every change on the same connection:
    // once it is in force, so are they.
    sub.subscribe("zz.").await;
    let mut barrier = false;
    for _ in 0..1_000_000 {
        if publisher.publish("zz.barrier", "").unwrap() == 1 {
            barrier = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(barrier, "the last subscription never arrived");
    let mut wrong = Vec::new();
    for round in 0..ROUNDS {
        for p in 0..PREFIXES {
            let topic = format!("r{round}p{p}.x");
            if publisher.publish(topic.clone(), "").unwrap() != 1 {
                wrong.push(topic);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "not subscribed at the publisher: {wrong:?}"
    );
}

over_every_transport!(
    a_subscription_added_while_connected_reaches_the_publisher,
    a_subscriber_hears_two_publishers,
);
