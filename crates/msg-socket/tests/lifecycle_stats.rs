//! Stats: messages and bytes each way add up between the two sides of an
//! exchange, active peers go up and down, reconnects are counted. Over
//! inproc, with tokio's clock paused.

use std::time::Duration;

use crate::raw::{EchoRep, HANG};
use bytes::Bytes;
use futures::StreamExt;
use msg_socket::{PubSocket, RepSocket, ReqSocket, SocketEvent, SocketOptions, SubSocket};

fn inproc(name: &str) -> String {
    format!("inproc://stats-{name}-{}", std::process::id())
}

/// No heartbeats: only the exchange moves bytes.
fn quiet() -> SocketOptions {
    let mut opts = SocketOptions::new();
    opts.heartbeat_interval(None)
        .reconnect_initial(Duration::from_millis(100))
        .reconnect_jitter(0.0);
    opts
}

#[tokio::test(start_paused = true)]
async fn req_and_rep_counts_of_messages_and_bytes_add_up() {
    let rep = RepSocket::with_options(quiet()).unwrap();
    let endpoint = rep.bind(&inproc("reqrep")).await.unwrap();
    let rep = EchoRep::spawn(rep);
    let req = ReqSocket::with_options(quiet()).unwrap();
    req.connect(&endpoint.to_string()).unwrap();

    let mut payload_bytes = 0;
    for i in 0..100usize {
        let payload = Bytes::from(vec![b'x'; i * 37]);
        payload_bytes += payload.len();
        assert_eq!(req.request(payload.clone()).await.unwrap(), payload);
    }

    let ours = req.stats();
    assert_eq!(ours.msgs_sent, 100);
    assert_eq!(ours.msgs_received, 100);
    assert_eq!(ours.requests, 100);
    assert!(ours.latency_p50.is_some() && ours.latency_max.is_some());
    // A request frame is a 7-byte header, an 8-byte id and the payload.
    assert_eq!(ours.bytes_sent as usize, 100 * (7 + 8) + payload_bytes);
    // The Rep counts a reply's bytes when its write returns, which may be
    // just after the Req has read them: give it a few turns of the runtime.
    let mut theirs = rep.stats().await;
    for _ in 0..1000 {
        if theirs.bytes_sent == ours.bytes_received {
            break;
        }
        tokio::task::yield_now().await;
        theirs = rep.stats().await;
    }
    assert_eq!(theirs.msgs_received, ours.msgs_sent);
    assert_eq!(theirs.msgs_sent, ours.msgs_received);
    assert_eq!(theirs.bytes_received, ours.bytes_sent);
    assert_eq!(theirs.bytes_sent, ours.bytes_received);
    assert_eq!(theirs.dropped_hwm, 0);
}

#[tokio::test(start_paused = true)]
async fn pub_and_sub_counts_of_messages_and_bytes_add_up() {
    let publisher = PubSocket::with_options(quiet()).unwrap();
    let endpoint = publisher.bind(&inproc("pubsub")).await.unwrap();
    let mut sub = SubSocket::with_options(quiet()).unwrap();
    sub.subscribe("a").await;
    sub.subscribe("b").await;
    sub.connect(&endpoint.to_string()).unwrap();
    assert!(publisher.wait_for_subscribers(1, HANG).await);

    for i in 0..100usize {
        let topic = if i % 2 == 0 { "a.even" } else { "b.odd" };
        publisher.publish(topic, vec![b'p'; i]).unwrap();
    }
    // Not subscribed: filtered at the publisher, counted nowhere.
    publisher.publish("c", "nobody").unwrap();
    for _ in 0..100 {
        sub.next().await.unwrap();
    }

    let publisher_stats = publisher.stats();
    let sub_stats = sub.stats();
    assert_eq!(publisher_stats.msgs_sent, 100);
    assert_eq!(sub_stats.msgs_received, 100);
    assert_eq!(sub_stats.gaps, 0);
    // Subscriptions are control frames: bytes, not messages.
    assert_eq!(sub_stats.msgs_sent, 0);
    assert_eq!(publisher_stats.msgs_received, 0);
    assert!(sub_stats.bytes_sent > 0);
    assert_eq!(sub_stats.bytes_received, publisher_stats.bytes_sent);
    assert_eq!(publisher_stats.bytes_received, sub_stats.bytes_sent);
}

#[tokio::test(start_paused = true)]
async fn active_peers_go_up_and_down_with_connections() {
    let rep = RepSocket::with_options(quiet()).unwrap();
    let endpoint = rep.bind(&inproc("peers")).await.unwrap();
    let mut events = rep.events();
    let rep = EchoRep::spawn(rep);
    assert_eq!(rep.stats().await.active_peers, 0);

    let mut clients = Vec::new();
    for n in 1..=3 {
        let req = ReqSocket::with_options(quiet()).unwrap();
        req.connect(&endpoint.to_string()).unwrap();
        assert_eq!(req.request("hi").await.unwrap(), "hi");
        assert_eq!(req.stats().active_peers, 1);
        assert_eq!(rep.stats().await.active_peers, n);
        clients.push(req);
    }
    for n in (0..3).rev() {
        let report = clients.pop().unwrap().close(Duration::ZERO).await;
        assert!(report.is_complete());
        loop {
            let event = tokio::time::timeout(Duration::from_secs(60), events.next())
                .await
                .unwrap()
                .unwrap();
            if matches!(event, SocketEvent::Disconnected { .. }) {
                break;
            }
        }
        assert_eq!(rep.stats().await.active_peers, n);
    }
}

#[tokio::test(start_paused = true)]
async fn reconnects_are_counted_once_per_retry() {
    let name = inproc("reconnects");
    let rep = RepSocket::with_options(quiet()).unwrap();
    rep.bind(&name).await.unwrap();
    let mut opts = quiet();
    opts.reconnect_max(Duration::from_millis(100));
    let req = ReqSocket::with_options(opts).unwrap();
    let mut events = req.events();
    req.connect(&name).unwrap();
    assert!(req.wait_for_peers(1, HANG).await);
    assert_eq!(req.stats().reconnects, 0);

    // The server goes away for a second (ten retries at 100 ms), then
    // comes back.
    rep.close(Duration::ZERO).await;
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let back = RepSocket::with_options(quiet()).unwrap();
    back.bind(&name).await.unwrap();
    assert!(back.wait_for_peers(1, HANG).await);

    let mut retries = 0;
    loop {
        match events.next().await.unwrap() {
            SocketEvent::Reconnecting { .. } => retries += 1,
            SocketEvent::Connected { .. } if retries > 0 => break,
            _ => {}
        }
    }
    let stats = req.stats();
    assert_eq!(stats.reconnects, retries);
    assert!((10..=12).contains(&retries), "{retries} retries");
    assert_eq!(stats.active_peers, 1);
}
