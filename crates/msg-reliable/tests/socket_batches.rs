//! Taking deliveries in batches (`recv_many`) and acknowledging them
//! together (`Delivery::ack_all`).

use std::time::Duration;

use crate::common::FailingBackend;
use crate::support::*;
use msg_reliable::{AckMode, Backend, Delivery, MemoryBackend, ReliableOptions, ReliableSocket};

async fn open(name: &str, opts: ReliableOptions, store: &(impl Backend + Clone)) -> ReliableSocket {
    ReliableSocket::open_with_socket_options(pid(name), opts, quick(), store.clone())
        .await
        .unwrap()
}

/// Takes deliveries with `recv_many` until `count` are in `buf`.
async fn take(sock: &ReliableSocket, buf: &mut Vec<Delivery>, count: usize, limit: usize) {
    while buf.len() < count {
        let before = buf.len();
        let n = tokio::time::timeout(WAIT, sock.recv_many(buf, limit))
            .await
            .expect("deliveries in time");
        assert!(n > 0, "socket closed");
        assert_eq!(buf.len(), before + n, "returns how many it appended");
        assert!(n <= limit, "took {n} with a limit of {limit}");
    }
}

/// The sequence numbers in `buf`, checked to come from `from`.
fn seqs(buf: &[Delivery], from: &str) -> Vec<u64> {
    buf.iter()
        .map(|d| {
            assert_eq!(d.peer(), &pid(from));
            assert_eq!(d.payload(), &payload(from, "b", d.seq()));
            d.seq()
        })
        .collect()
}

/// `recv_many` takes what has arrived, in order and within its limit;
/// `ack_all` acknowledges a batch in one storage write; after a restart
/// on the same store only the deliveries left unacknowledged come again.
#[tokio::test(start_paused = true)]
async fn recv_many_and_ack_all_acknowledge_exactly_the_batch() {
    let a_store = MemoryBackend::new();
    let b_store = MemoryBackend::new();
    let a = open("a", fast(), &a_store).await;
    let endpoint = a.bind(&unique_inproc("ack-all")).await.unwrap();
    send_all(&a, "a", "b", 1, 100).await;

    let b = open("b", fast(), &b_store).await;
    b.connect(&endpoint.to_string()).unwrap();
    let mut buf = Vec::new();
    assert_eq!(b.recv_many(&mut buf, 0).await, 0, "a limit of 0 takes none");
    take(&b, &mut buf, 100, 32).await;
    assert_eq!(seqs(&buf, "a"), (1..=100).collect::<Vec<_>>());
    a.wait_acked(&pid("b"), 100).await.unwrap();

    // The first 60 in one call: one write to the store.
    let rest = buf.split_off(60);
    let before = b_store.operations();
    Delivery::ack_all(buf).await.unwrap();
    assert_eq!(b_store.operations() - before, 1, "one write for the batch");
    drop(rest); // processed by nobody

    // Restart `b` on its store: 61..=100 again, 1..=60 never.
    assert!(b.shutdown(Duration::from_secs(1)).await.is_complete());
    let b = open("b", fast(), &b_store).await;
    let mut again = Vec::new();
    take(&b, &mut again, 40, 1000).await;
    assert_eq!(seqs(&again, "a"), (61..=100).collect::<Vec<_>>());
    Delivery::ack_all(again).await.unwrap();
    assert!(b.shutdown(Duration::from_secs(1)).await.is_complete());
    let b = open("b", fast(), &b_store).await;
    b.pending().await.unwrap(); // the restored deliveries are queued by now
    assert_nothing_delivered(&b);
}

/// One `ack_all` may hold deliveries of two sockets from two peers: each
/// socket stores its own acknowledgements.
#[tokio::test(start_paused = true)]
async fn ack_all_sorts_deliveries_by_socket_and_peer() {
    let stores: Vec<MemoryBackend> = (0..4).map(|_| MemoryBackend::new()).collect();
    let b = open("b", fast(), &stores[0]).await;
    let d = open("d", fast(), &stores[1]).await;
    let b_at = b.bind(&unique_inproc("mixed-b")).await.unwrap();
    let d_at = d.bind(&unique_inproc("mixed-d")).await.unwrap();
    let a = open("a", fast(), &stores[2]).await;
    let c = open("c", fast(), &stores[3]).await;
    for sender in [&a, &c] {
        sender.connect(&b_at.to_string()).unwrap();
        sender.connect(&d_at.to_string()).unwrap();
    }
    for (sender, name) in [(&a, "a"), (&c, "c")] {
        send_all(sender, name, "b", 1, 10).await;
        for seq in 1..=10 {
            assert_eq!(sender.send_to(&pid("d"), "to d").await.unwrap(), seq);
        }
    }
    let mut all = Vec::new();
    take(&b, &mut all, 20, 64).await;
    take(&d, &mut all, 40, 64).await;
    let operations = |s: &MemoryBackend| s.operations();
    let before = (operations(&stores[0]), operations(&stores[1]));
    Delivery::ack_all(all).await.unwrap();
    // One write per socket and peer.
    assert_eq!(operations(&stores[0]) - before.0, 2);
    assert_eq!(operations(&stores[1]) - before.1, 2);

    for (sock, store) in [(b, &stores[0]), (d, &stores[1])] {
        let name = sock.identity().clone();
        assert!(sock.shutdown(Duration::from_secs(1)).await.is_complete());
        let again = ReliableSocket::open(name, fast(), store.clone())
            .await
            .unwrap();
        again.pending().await.unwrap();
        assert_nothing_delivered(&again);
    }
}

/// A failed store write fails `ack_all`; its deliveries come again after
/// a restart.
#[tokio::test(start_paused = true)]
async fn a_failed_ack_all_reports_it_and_delivers_again() {
    let a_store = MemoryBackend::new();
    let b_store = FailingBackend::new(MemoryBackend::new());
    let a = open("a", fast(), &a_store).await;
    let b = open("b", fast(), &b_store).await;
    let endpoint = a.bind(&unique_inproc("ack-all-fails")).await.unwrap();
    b.connect(&endpoint.to_string()).unwrap();
    send_all(&a, "a", "b", 1, 5).await;
    let mut buf = Vec::new();
    take(&b, &mut buf, 5, 16).await;
    b_store.fail_next(1);
    let err = Delivery::ack_all(buf).await.unwrap_err();
    assert!(err.is_storage(), "{err}");

    assert!(b.shutdown(Duration::from_secs(1)).await.is_complete());
    let b = open("b", fast(), &b_store).await;
    let mut again = Vec::new();
    take(&b, &mut again, 5, 16).await;
    assert_eq!(seqs(&again, "a"), (1..=5).collect::<Vec<_>>());
}

/// In automatic mode `recv_many` acknowledges what it takes: with a
/// receive window of 8, 50 messages arrive only if each batch taken frees
/// its room in the window.
#[tokio::test(start_paused = true)]
async fn recv_many_in_auto_mode_acknowledges_what_it_takes() {
    let a_store = MemoryBackend::new();
    let b_store = MemoryBackend::new();
    let mut auto = fast();
    auto.ack_mode(AckMode::Auto).window(8).recv_window(8);
    let a = open("a", fast(), &a_store).await;
    let endpoint = a.bind(&unique_inproc("auto")).await.unwrap();
    let b = open("b", auto, &b_store).await;
    b.connect(&endpoint.to_string()).unwrap();
    send_all(&a, "a", "b", 1, 50).await;
    let mut buf = Vec::new();
    take(&b, &mut buf, 50, 8).await;
    assert_eq!(seqs(&buf, "a"), (1..=50).collect::<Vec<_>>());
    // Nothing to do for deliveries that need no acknowledgement.
    let before = b_store.operations();
    Delivery::ack_all(buf).await.unwrap();
    assert_eq!(b_store.operations(), before);
    a.wait_acked(&pid("b"), 50).await.unwrap();
}
