//! Req/Rep statistics: completed requests and their latency, messages and
//! bytes each way, adding up across the two sides.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use msg_socket::{RepSocket, ReqError, ReqSocket, SocketOptions};

// One thread: a writer counts its bytes in the same poll as the write, so
// once the last reply is in, every counter on both sides is final.
#[tokio::test]
async fn stats_count_requests_latency_messages_and_bytes_on_both_sides() {
    // No heartbeats: a ping in flight would make the byte counts differ.
    let mut quiet = SocketOptions::new();
    quiet.heartbeat_interval(None);
    let mut rep = RepSocket::with_options(quiet.clone()).unwrap();
    let bound = rep.bind("tcp://127.0.0.1:0").await.unwrap();
    let server = tokio::spawn(async move {
        while let Some(r) = rep.recv().await {
            if r.payload() == "ignore me" {
                // Never answered: the requester times out.
                continue;
            }
            let answer = [r.payload().as_ref(), b"!"].concat();
            r.reply(answer).await.unwrap();
            if r_is_last(&rep) {
                break;
            }
        }
        rep
    });

    let req = ReqSocket::with_options(quiet).unwrap();
    req.connect(&bound.to_string()).unwrap();
    let fresh = req.stats();
    assert_eq!(fresh.requests, 0);
    assert_eq!(fresh.latency_p50, None);
    assert_eq!(fresh.latency_max, None);

    for n in 0..50 {
        req.request(format!("one at a time {n}")).await.unwrap();
    }
    let mut in_flight: FuturesUnordered<_> = (0..50)
        .map(|n| {
            let req = &req;
            async move { req.request(format!("pipelined {n}")).await }
        })
        .collect();
    while let Some(r) = in_flight.next().await {
        r.unwrap();
    }
    // A request that times out is sent but not completed.
    let err = req
        .request_timeout("ignore me", Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, ReqError::Timeout));
    // And a last one, so the Rep has certainly read everything.
    req.request("last").await.unwrap();

    let s = req.stats();
    assert_eq!(s.requests, 101, "completed requests only");
    assert_eq!(s.msgs_sent, 102);
    assert_eq!(s.msgs_received, 101);
    assert_eq!(s.active_peers, 1);
    let (p50, p99, max) = (
        s.latency_p50.unwrap(),
        s.latency_p99.unwrap(),
        s.latency_max.unwrap(),
    );
    assert!(p50 > Duration::ZERO && p50 <= p99 && p99 <= max, "{s:?}");
    assert!(max < Duration::from_secs(10), "{s:?}");

    let rep = server.await.unwrap();
    let r = rep.stats();
    assert_eq!(r.msgs_received, 102);
    assert_eq!(r.msgs_sent, 101);
    assert_eq!(r.requests, 0, "a Rep completes no requests of its own");
    assert_eq!(r.latency_p50, None);
    assert_eq!(r.active_peers, 1);
    // Every byte one side wrote, the other read.
    assert_eq!(s.bytes_sent, r.bytes_received, "req -> rep");
    assert_eq!(r.bytes_sent, s.bytes_received, "rep -> req");
    assert!(s.bytes_sent > 102 * 8, "{s:?}");
}

fn r_is_last(rep: &RepSocket) -> bool {
    rep.stats().msgs_received == 102 && rep.stats().msgs_sent == 101
}
