//! `ReliableSocket::stats()` on real sockets: what each side stored, sent,
//! delivered and acknowledged, summed and per peer. (How each session
//! counts retransmissions and duplicates is tested on the sans-IO session.)

use std::time::Duration;

use crate::support::*;

const COUNT: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_what_each_side_stored_sent_delivered_and_acknowledged() {
    let (a, b, bind, _dir) = memory_pair("tcp", fast()).await;
    let fresh = a.stats().await.unwrap();
    assert_eq!(
        (fresh.peers, fresh.stored_outgoing, fresh.delivered),
        (0, 0, 0)
    );

    link(&a, &b, &bind).await;
    tokio::join!(
        send_all(&a, "a", "b", 1, COUNT),
        receive_all(&b, "a", "b", 1, COUNT),
    );
    tokio::time::timeout(WAIT, a.wait_acked(&pid("b"), COUNT))
        .await
        .expect("acknowledged in time")
        .unwrap();

    let sent = a.stats().await.unwrap();
    assert_eq!(sent.peers, 1);
    assert_eq!(sent.stored_outgoing, COUNT);
    assert_eq!(sent.delivered, 0);
    assert_eq!(sent.unacked_outgoing, 0, "all acknowledged");
    assert!(sent.sessions.data_sent >= COUNT, "{sent:?}");
    assert!(sent.sessions.acks_received >= 1, "{sent:?}");
    assert_eq!(sent.sessions.duplicates, 0);
    assert_eq!(sent.per_peer.len(), 1);
    assert_eq!(sent.per_peer[0].0, pid("b"));
    assert_eq!(sent.per_peer[0].1, sent.sessions, "one peer: its sum");

    let got = b.stats().await.unwrap();
    assert_eq!(got.stored_outgoing, 0);
    assert_eq!(got.delivered, COUNT);
    assert_eq!(got.sessions.stored, COUNT);
    assert!(got.sessions.acks_sent >= 1, "{got:?}");
    assert_eq!(got.sessions.store_failures, 0);

    assert!(a.shutdown(Duration::from_secs(1)).await.is_complete());
    // The other side is still open; its counters stay readable.
    assert_eq!(b.stats().await.unwrap().delivered, COUNT);
}
