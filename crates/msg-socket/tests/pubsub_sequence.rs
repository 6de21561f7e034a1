//! Sequence numbers: consecutive per subscriber connection, and every
//! message a publisher drops for a subscriber at its high-water mark shows
//! up at that subscriber as exactly one missing number.

use crate::common;

use std::time::Duration;

use crate::common::Setup;
use futures::{FutureExt, StreamExt};
use msg_socket::transport::{FaultOptions, Faulty, INPROC_BUFFER_SIZE, Inproc};
use msg_socket::wire::HEADER_LEN;
use msg_socket::{PubMessage, PubSocket, SocketOptions, SubSocket};

const WAIT: Duration = Duration::from_secs(10);

async fn next(sub: &mut SubSocket) -> PubMessage {
    crate::common::next_message(sub, WAIT).await
}

/// Two subscribers with different prefixes, 300 messages of three topics:
/// each subscriber numbers only what it was sent, 1, 2, 3, ... with no gap,
/// whatever was published to others in between.
async fn numbers_are_consecutive_per_subscriber(s: Setup) {
    let name = s.name;
    let publisher = PubSocket::with_options(s.server.clone()).unwrap();
    let endpoint = publisher.bind(&s.bind).await.unwrap().to_string();
    let mut x = SubSocket::with_options(s.client.clone()).unwrap();
    x.subscribe("x").await;
    x.connect(&endpoint).unwrap();
    let mut y = SubSocket::with_options(s.client.clone()).unwrap();
    y.subscribe("y").await;
    y.subscribe("z").await;
    y.connect(&endpoint).unwrap();
    assert!(publisher.wait_for_subscribers(2, WAIT).await, "{name}");

    let topics = ["x", "y", "z"];
    for i in 0..300 {
        // At most 200 for one subscriber: far below the mark of 1,000.
        publisher
            .publish(topics[i % 3], format!("{i}"))
            .expect("publish");
    }
    for (sub, expected) in [(&mut x, 100), (&mut y, 200)] {
        for seq in 1..=expected {
            assert_eq!(next(sub).await.seq(), seq, "{name}");
        }
        assert!(sub.next().now_or_never().is_none(), "{name}");
        assert_eq!(sub.stats().gaps, 0, "{name}");
    }
    assert_eq!(publisher.stats().dropped_hwm, 0, "{name}");
}

/// A burst of ten messages, published with no chance for the writer to
/// run, meets a queue of four: four are queued (`publish` says 1), six are
/// dropped (`publish` says 0). The subscriber gets numbers 1 to 4, then the
/// next message is number 11 and its gap count is 6, exactly the
/// publisher's `dropped_hwm`.
async fn gaps_equal_the_publishers_drops(s: Setup) {
    let name = s.name;
    let mut server = s.server.clone();
    // No heartbeats: a pong queued in the middle would take a slot.
    server.send_hwm(4).heartbeat_interval(None);
    let mut client = s.client.clone();
    client.heartbeat_interval(None);
    let publisher = PubSocket::with_options(server).unwrap();
    let endpoint = publisher.bind(&s.bind).await.unwrap().to_string();
    let mut sub = SubSocket::with_options(client).unwrap();
    sub.subscribe("").await;
    sub.connect(&endpoint).unwrap();
    assert!(publisher.wait_for_subscribers(1, WAIT).await, "{name}");

    // `publish` never awaits: on this single-threaded runtime nothing else
    // runs until the loop ends.
    let queued: Vec<usize> = (0..10)
        .map(|i| publisher.publish("t", format!("{i}")).unwrap())
        .collect();
    assert_eq!(queued, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0], "{name}");
    assert_eq!(publisher.stats().dropped_hwm, 6, "{name}");
    assert_eq!(publisher.stats().msgs_sent, 4, "{name}");

    for i in 0..4 {
        let m = next(&mut sub).await;
        assert_eq!(
            (m.seq(), m.payload().as_ref()),
            (i + 1, format!("{i}").as_bytes())
        );
    }
    assert_eq!(sub.stats().gaps, 0, "{name}: nothing missing yet");
    assert_eq!(publisher.publish("t", "after").unwrap(), 1);
    let m = next(&mut sub).await;
    assert_eq!(m.payload(), "after");
    assert_eq!(m.seq(), 11, "{name}: the dropped six kept their numbers");
    assert_eq!(sub.stats().gaps, 6, "{name}");
    assert_eq!(sub.stats().dropped_hwm, 0, "{name}: nothing dropped here");
    assert_eq!(sub.stats().gaps, publisher.stats().dropped_hwm, "{name}");
}

/// A subscriber whose transport is not read (every read waits an hour of
/// virtual time) while messages keep coming, with the writers free to run
/// between publishes: the pipe fills, then the publisher's queue, then the
/// publisher drops. When the subscriber reads again it receives every
/// queued message in order; the next message carries the next number after
/// all the dropped ones, and the subscriber's gap count equals the
/// publisher's drops.
#[tokio::test(start_paused = true)]
async fn a_stalled_subscriber_counts_exactly_what_the_publisher_dropped() {
    let mut server = SocketOptions::new();
    server.send_hwm(8).heartbeat_interval(None);
    let publisher = PubSocket::with_options(server).unwrap();
    let endpoint = publisher.bind("inproc://pubsub-seq-stalled").await.unwrap();

    let mut client = SocketOptions::new();
    client
        .heartbeat_interval(None)
        .handshake_timeout(Duration::from_secs(100 * 3600))
        .recv_hwm(100_000)
        .recv_hwm_bytes(1 << 30);
    let mut faults = FaultOptions::new();
    faults.read_delay(Duration::from_secs(3600));
    let stalled = Faulty::new(Inproc::new(), faults);
    let mut sub = SubSocket::with_options(client).unwrap();
    sub.subscribe("").await;
    sub.connect_with(stalled.clone(), &endpoint).unwrap();
    let long = Duration::from_secs(1_000_000);
    assert!(publisher.wait_for_subscribers(1, long).await);

    const N: u64 = 200;
    let payload = vec![0u8; 16 * 1024];
    let mut queued = 0;
    for _ in 0..N {
        queued += publisher.publish("t", payload.clone()).unwrap() as u64;
        // Lets the writer run; time does not move while tasks can run.
        tokio::task::yield_now().await;
    }
    let stats = publisher.stats();
    // Queued: the eight frames still in the queue (one maybe half written)
    // and those written whole into the pipe, which holds 256 KiB beyond what
    // the subscriber read (nothing, unless the runtime went idle).
    let read = stalled.handles()[0].bytes_read() as usize;
    let frame_len = HEADER_LEN + 8 + 2 + 1 + payload.len();
    let in_pipe = ((INPROC_BUFFER_SIZE + read) / frame_len) as u64;
    assert!(queued <= 8 + in_pipe, "queued {queued}, read {read}");
    assert_eq!(stats.msgs_sent, queued);
    assert_eq!(stats.dropped_hwm, N - queued);

    // Reading again: every queued message, in order.
    let mut last = 0;
    for _ in 0..queued {
        let m = tokio::time::timeout(long, sub.next())
            .await
            .expect("in time")
            .expect("open");
        assert_eq!(m.seq(), last + 1, "in order, none missing");
        last = m.seq();
    }
    assert_eq!(last, queued, "numbered 1, 2, 3, ... up to the drops");
    // Drops at the end are a gap only once a later number arrives.
    assert_eq!(sub.stats().gaps, 0);
    assert_eq!(sub.stats().dropped_hwm, 0);

    assert_eq!(publisher.publish("t", "next").unwrap(), 1);
    let m = tokio::time::timeout(long, sub.next())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!((m.seq(), m.payload().as_ref()), (N + 1, &b"next"[..]));
    assert_eq!(sub.stats().gaps, N - queued);
    assert_eq!(sub.stats().gaps, publisher.stats().dropped_hwm);
}

over_every_transport!(
    numbers_are_consecutive_per_subscriber,
    gaps_equal_the_publishers_drops,
);
