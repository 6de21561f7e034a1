//! Pub/Sub filtering over every transport: by topic prefix, at the
//! publisher, per subscriber; the empty prefix gets everything; an
//! unsubscribe stops delivery once it has reached the publisher.

use crate::common;

use std::time::Duration;

use crate::common::Setup;
use futures::{FutureExt, StreamExt};
use msg_socket::{PubMessage, PubSocket, SubSocket};

const WAIT: Duration = Duration::from_secs(10);

/// The next message, or a failed test if none comes (a guard against
/// hanging, not a way of waiting).
async fn next(sub: &mut SubSocket) -> PubMessage {
    crate::common::next_message(sub, WAIT).await
}

/// A subscriber with these prefixes, subscribed before it connects.
async fn subscriber(s: &Setup, endpoint: &str, prefixes: &[&str]) -> SubSocket {
    let sub = SubSocket::with_options(s.client.clone()).unwrap();
    for p in prefixes {
        sub.subscribe(p.to_string()).await;
    }
    sub.connect(endpoint).unwrap();
    sub
}

/// Receives exactly `topics`, in order, numbered 1, 2, 3, ... with no gap.
async fn expect_topics(name: &str, who: &str, sub: &mut SubSocket, topics: &[&str]) {
    for (i, topic) in topics.iter().enumerate() {
        let m = next(sub).await;
        assert_eq!(m.topic(), topic.as_bytes(), "{name}: {who} message {i}");
        assert_eq!(m.payload(), format!("payload of {topic}").as_bytes());
        assert_eq!(m.seq(), i as u64 + 1, "{name}: {who} numbers its messages");
    }
    assert_eq!(sub.stats().gaps, 0, "{name}: {who}");
}

/// Three subscribers with different prefixes ("a.", "b.", and "" for
/// everything) and one with none. Each receives exactly what matches, and
/// the publisher queues only the matching deliveries: `publish` returns
/// how many subscribers matched and `msgs_sent` adds them up. Each
/// subscriber's last message comes after everything else published, so a
/// message sent to the wrong subscriber would have arrived before it.
async fn prefix_filtering_at_the_publisher(s: Setup) {
    let name = s.name;
    let publisher = PubSocket::with_options(s.server.clone()).unwrap();
    let endpoint = publisher.bind(&s.bind).await.unwrap().to_string();
    let mut a = subscriber(&s, &endpoint, &["a."]).await;
    let mut b = subscriber(&s, &endpoint, &["b."]).await;
    let mut all = subscriber(&s, &endpoint, &[""]).await;
    let none = subscriber(&s, &endpoint, &[]).await;
    assert!(publisher.wait_for_subscribers(3, WAIT).await, "{name}");
    assert!(publisher.wait_for_peers(4, WAIT).await, "{name}");
    assert_eq!(
        publisher.subscribers(),
        3,
        "{name}: one peer asked for nothing"
    );

    let plan = [
        ("a.x", 2),
        ("b.x", 2),
        ("ab", 1), // "a." is not a prefix of "ab"
        ("a.y", 2),
        ("c.z", 1),
        ("a.end", 2),
        ("b.end", 2),
    ];
    for (topic, matching) in plan {
        let queued = publisher
            .publish(topic, format!("payload of {topic}"))
            .unwrap();
        assert_eq!(queued, matching, "{name}: subscribers matching {topic}");
    }
    let stats = publisher.stats();
    assert_eq!(stats.msgs_sent, 12, "{name}: only matching deliveries");
    assert_eq!(stats.dropped_hwm, 0, "{name}");

    expect_topics(name, "a.", &mut a, &["a.x", "a.y", "a.end"]).await;
    expect_topics(name, "b.", &mut b, &["b.x", "b.end"]).await;
    expect_topics(
        name,
        "everything",
        &mut all,
        &["a.x", "b.x", "ab", "a.y", "c.z", "a.end", "b.end"],
    )
    .await;
    for sub in [&mut a, &mut b, &mut all] {
        assert!(sub.next().now_or_never().is_none(), "{name}: nothing more");
    }
    assert_eq!(none.stats().msgs_received, 0, "{name}");
}

/// After `unsubscribe("a.")`, messages under "a." are delivered exactly
/// until the unsubscribe reaches the publisher: `publish` says so (it
/// returns 0 once the publisher has dropped the prefix), every "a." message
/// it queued arrives, and none published after that does. A marker on the
/// still-subscribed "m." closes each round, so anything wrongly delivered
/// arrives before it.
async fn unsubscribe_stops_delivery(s: Setup) {
    let name = s.name;
    let publisher = PubSocket::with_options(s.server.clone()).unwrap();
    let endpoint = publisher.bind(&s.bind).await.unwrap().to_string();
    let mut sub = subscriber(&s, &endpoint, &["a.", "m."]).await;
    assert!(publisher.wait_for_subscribers(1, WAIT).await, "{name}");
    assert_eq!(publisher.publish("a.0", "before").unwrap(), 1);
    assert_eq!(next(&mut sub).await.topic(), "a.0");

    sub.unsubscribe("a.").await;
    let mut queued_after = vec![];
    let mut received_after = vec![];
    let mut stopped = false;
    for k in 1..=1000 {
        let topic = format!("a.{k}");
        if publisher.publish(topic.clone(), "x").unwrap() == 0 {
            stopped = true;
            break;
        }
        queued_after.push(topic);
        let marker = format!("m.{k}");
        assert_eq!(publisher.publish(marker.clone(), "").unwrap(), 1);
        loop {
            let m = next(&mut sub).await;
            if m.topic() == marker.as_bytes() {
                break;
            }
            received_after.push(String::from_utf8(m.topic().to_vec()).unwrap());
        }
    }
    assert!(
        stopped,
        "{name}: the unsubscribe never reached the publisher"
    );

    for k in 0..10 {
        let late = publisher.publish(format!("a.late{k}"), "x").unwrap();
        assert_eq!(late, 0, "{name}: filtered at the publisher");
    }
    assert_eq!(publisher.publish("m.end", "").unwrap(), 1);
    loop {
        let m = next(&mut sub).await;
        if m.topic() == "m.end" {
            break;
        }
        received_after.push(String::from_utf8(m.topic().to_vec()).unwrap());
    }
    assert_eq!(
        received_after, queued_after,
        "{name}: exactly what was queued before the unsubscribe arrived"
    );
    assert!(sub.next().now_or_never().is_none(), "{name}");
    assert_eq!(sub.stats().gaps, 0, "{name}");
}

/// Subscribing twice to a prefix needs two unsubscribes: the first one is
/// not even sent. A new subscription, sent after it on the same connection,
/// serves as the barrier: once it is in force, "a." must still be.
async fn subscriptions_are_counted(s: Setup) {
    let name = s.name;
    let publisher = PubSocket::with_options(s.server.clone()).unwrap();
    let endpoint = publisher.bind(&s.bind).await.unwrap().to_string();
    let mut sub = subscriber(&s, &endpoint, &["a.", "a.", "m."]).await;
    assert!(publisher.wait_for_subscribers(1, WAIT).await, "{name}");

    sub.unsubscribe("a.").await;
    sub.subscribe("z.").await;
    // Round trips on "m." until "z." is in force at the publisher.
    let mut in_force = false;
    for k in 0..1000 {
        if publisher.publish("z.sync", "").unwrap() == 1 {
            in_force = true;
            break;
        }
        let marker = format!("m.{k}");
        publisher.publish(marker.clone(), "").unwrap();
        while next(&mut sub).await.topic() != marker.as_bytes() {}
    }
    assert!(in_force, "{name}: the new subscription never arrived");
    assert_eq!(next(&mut sub).await.topic(), "z.sync");
    assert_eq!(
        publisher.publish("a.still", "").unwrap(),
        1,
        "{name}: one subscription to \"a.\" is left"
    );
    assert_eq!(next(&mut sub).await.topic(), "a.still");
}

over_every_transport!(
    prefix_filtering_at_the_publisher,
    unsubscribe_stops_delivery,
    subscriptions_are_counted,
);
