//! Recovery: a peer offline for minutes, link cuts at random byte offsets,
//! a full outbox, failing storage, restarts with a redb file.

use std::time::Duration;

use crate::common::FailingBackend;
use crate::support::*;
#[cfg(feature = "redb")]
use msg_reliable::RedbBackend;
use msg_reliable::{MemoryBackend, ReliableOptions, ReliableSocket};
use msg_socket::transport::{FaultOptions, Faulty, Inproc};

#[tokio::test(start_paused = true)]
async fn a_peer_offline_at_send_time_gets_everything_minutes_later() {
    let a =
        ReliableSocket::open_with_socket_options(pid("a"), fast(), quick(), MemoryBackend::new())
            .await
            .unwrap();
    let endpoint = a.bind(&unique_inproc("offline")).await.unwrap();
    send_all(&a, "a", "b", 1, 100).await;
    assert_eq!(a.pending().await.unwrap(), vec![(pid("b"), 100)]);

    tokio::time::sleep(Duration::from_secs(10 * 60)).await;
    assert_eq!(a.acked(&pid("b")), 0);

    let b =
        ReliableSocket::open_with_socket_options(pid("b"), fast(), quick(), MemoryBackend::new())
            .await
            .unwrap();
    b.connect(&endpoint.to_string()).unwrap();
    receive_all(&b, "a", "b", 1, 100).await;
    a.wait_acked(&pid("b"), 100).await.unwrap();
    assert!(a.pending().await.unwrap().is_empty());
    assert_nothing_delivered(&b);
}

/// Every connection from `b` to `a` is cut after a pseudo-random number of
/// bytes (seeded, so a failure replays), while 10,000 messages flow each
/// way: each arrives once, in order.
#[tokio::test(start_paused = true)]
async fn link_cuts_at_random_offsets_lose_and_duplicate_nothing() {
    const COUNT: u64 = 10_000;
    let a =
        ReliableSocket::open_with_socket_options(pid("a"), fast(), quick(), MemoryBackend::new())
            .await
            .unwrap();
    let b =
        ReliableSocket::open_with_socket_options(pid("b"), fast(), quick(), MemoryBackend::new())
            .await
            .unwrap();
    let endpoint = a.bind(&unique_inproc("cuts")).await.unwrap();
    let mut faults = FaultOptions::new();
    faults.cut_at_random(256..16 * 1024, 0x5eed);
    b.socket()
        .unwrap()
        .connect_with(Faulty::new(Inproc::new(), faults), &endpoint)
        .unwrap();

    tokio::join!(
        send_all(&a, "a", "b", 1, COUNT),
        send_all(&b, "b", "a", 1, COUNT),
        receive_all(&a, "b", "a", 1, COUNT),
        receive_all(&b, "a", "b", 1, COUNT),
    );
    a.wait_acked(&pid("b"), COUNT).await.unwrap();
    b.wait_acked(&pid("a"), COUNT).await.unwrap();
    assert_nothing_delivered(&a);
    assert_nothing_delivered(&b);
    let reconnects = b.socket().unwrap().stats().reconnects;
    assert!(reconnects >= 20, "only {reconnects} cuts");
}

#[tokio::test(start_paused = true)]
async fn a_full_outbox_refuses_with_outbox_full_until_acknowledged() {
    let mut opts = fast();
    opts.max_outbox_messages(3);
    let a = ReliableSocket::open_with_socket_options(pid("a"), opts, quick(), MemoryBackend::new())
        .await
        .unwrap();
    send_all(&a, "a", "b", 1, 3).await;
    let err = a.try_send_to(&pid("b"), "one too many").await.unwrap_err();
    assert!(err.is_outbox_full(), "{err}");
    assert!(err.to_string().contains("limit of 3 messages"), "{err}");
    let err = a.try_send_batch_to(&pid("b"), ["x"]).await.unwrap_err();
    assert!(err.is_outbox_full(), "{err}");

    let endpoint = a.bind(&unique_inproc("full")).await.unwrap();
    let b =
        ReliableSocket::open_with_socket_options(pid("b"), fast(), quick(), MemoryBackend::new())
            .await
            .unwrap();
    b.connect(&endpoint.to_string()).unwrap();
    receive_all(&b, "a", "b", 1, 3).await;
    a.wait_acked(&pid("b"), 3).await.unwrap();
    // The refused message took no number.
    send_all(&a, "a", "b", 4, 1).await;
    receive_all(&b, "a", "b", 4, 1).await;
}

/// `send_to` on a full outbox waits for room, in call order; a caller that
/// gives up while waiting stores nothing; a batch larger than the whole
/// limit fails at once.
#[tokio::test(start_paused = true)]
async fn send_to_waits_for_room_in_a_full_outbox() {
    use futures::FutureExt;
    let mut opts = fast();
    opts.max_outbox_messages(3);
    let a = ReliableSocket::open_with_socket_options(pid("a"), opts, quick(), MemoryBackend::new())
        .await
        .unwrap();
    let b_id = pid("b");
    send_all(&a, "a", "b", 1, 3).await;

    let too_big = a.send_batch_to(&b_id, ["1", "2", "3", "4"]).await;
    assert!(too_big.unwrap_err().is_outbox_full(), "could never fit");

    // Each polled once, in this order, so that each has asked to be
    // stored.
    let mut fourth = Box::pin(a.send_to(&b_id, payload("a", "b", 4)));
    assert!((&mut fourth).now_or_never().is_none());
    let mut given_up = Box::pin(a.send_to(&b_id, "never stored"));
    assert!((&mut given_up).now_or_never().is_none());
    let mut fifth = Box::pin(a.send_to(&b_id, payload("a", "b", 5)));
    assert!((&mut fifth).now_or_never().is_none());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!((&mut fourth).now_or_never().is_none(), "waits while full");
    assert!((&mut fifth).now_or_never().is_none(), "waits while full");
    drop(given_up);
    // While the outbox is full, try_send_to fails at once.
    assert!(
        a.try_send_to(&b_id, "x")
            .await
            .unwrap_err()
            .is_outbox_full()
    );
    assert_eq!(a.pending().await.unwrap(), vec![(b_id.clone(), 3)]);

    let endpoint = a.bind(&unique_inproc("waits")).await.unwrap();
    let b = ReliableSocket::open_with_socket_options(
        b_id.clone(),
        fast(),
        quick(),
        MemoryBackend::new(),
    )
    .await
    .unwrap();
    b.connect(&endpoint.to_string()).unwrap();
    receive_all(&b, "a", "b", 1, 3).await;
    assert_eq!(fourth.await.unwrap(), 4);
    assert_eq!(fifth.await.unwrap(), 5, "the abandoned send took no number");
    receive_all(&b, "a", "b", 4, 2).await;
    a.wait_acked(&b_id, 5).await.unwrap();
    assert!(a.pending().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn storage_failures_surface_and_lose_nothing() {
    let a_store = FailingBackend::new(MemoryBackend::new());
    let b_store = FailingBackend::new(MemoryBackend::new());
    let a = ReliableSocket::open_with_socket_options(pid("a"), fast(), quick(), a_store.clone())
        .await
        .unwrap();
    let b = ReliableSocket::open_with_socket_options(pid("b"), fast(), quick(), b_store.clone())
        .await
        .unwrap();
    let endpoint = a.bind(&unique_inproc("storage")).await.unwrap();
    b.connect(&endpoint.to_string()).unwrap();

    // The sender's store fails: send_to says so, and no number is taken.
    a_store.fail_next(1);
    let err = a
        .send_to(&pid("b"), payload("a", "b", 1))
        .await
        .unwrap_err();
    assert!(err.is_storage(), "{err}");
    send_all(&a, "a", "b", 1, 2).await;
    receive_all(&b, "a", "b", 1, 2).await;
    a.wait_acked(&pid("b"), 2).await.unwrap();

    // The receiver's store fails: nothing is acknowledged or delivered
    // while it does, and everything arrives once it works again.
    b_store.set_failing(true);
    send_all(&a, "a", "b", 3, 5).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(b_store.injected_failures() > 0);
    assert_eq!(a.acked(&pid("b")), 2);
    assert_nothing_delivered(&b);
    b_store.set_failing(false);
    receive_all(&b, "a", "b", 3, 5).await;
    a.wait_acked(&pid("b"), 7).await.unwrap();

    // A failed application ack reports the error; the delivery can be
    // acknowledged again... after the store recovers, by the next run. Here:
    // the error surfaces.
    send_all(&a, "a", "b", 8, 1).await;
    let d = next(&b).await;
    assert_eq!(d.seq(), 8);
    b_store.fail_next(1);
    assert!(d.ack().await.unwrap_err().is_storage());
}

/// Close and reopen both sides on their redb files: pending messages go
/// out, unacknowledged deliveries come again, acknowledged ones never.
#[cfg(feature = "redb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_with_redb_resume_where_they_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let a_path = dir.path().join("a.redb");
    let b_path = dir.path().join("b.redb");
    let open = |name: &'static str, path: std::path::PathBuf| async move {
        let store = RedbBackend::open(&path).await.unwrap();
        let sock =
            ReliableSocket::open_with_socket_options(pid(name), fast(), quick(), store.clone())
                .await
                .unwrap();
        (sock, store)
    };
    let stop = |sock: ReliableSocket, store: RedbBackend| async move {
        let report = sock.shutdown(Duration::from_millis(500)).await;
        store.close().await;
        report
    };

    // Run 1: `a` stores 50 messages for `b`, who is not there.
    let (a, a_store) = open("a", a_path.clone()).await;
    send_all(&a, "a", "b", 1, 50).await;
    let report = stop(a, a_store).await;
    assert_eq!(report.pending, vec![(pid("b"), 50)]);
    assert_eq!(report.pending_messages(), 50);

    // Run 2: both up; `b` acknowledges only the first 20 to its app.
    let (a, a_store) = open("a", a_path.clone()).await;
    let endpoint = a.bind(&unique_inproc("restart")).await.unwrap();
    let (b, b_store) = open("b", b_path.clone()).await;
    b.connect(&endpoint.to_string()).unwrap();
    receive_all(&b, "a", "b", 1, 20).await;
    for seq in 21..=50 {
        assert_eq!(next(&b).await.seq(), seq); // received, not acknowledged
    }
    tokio::time::timeout(WAIT, a.wait_acked(&pid("b"), 50))
        .await
        .unwrap()
        .unwrap();
    assert!(stop(b, b_store).await.is_complete());

    // Run 3 of `b`: 21..=50 come again, 1..=20 never.
    let (b, b_store) = open("b", b_path.clone()).await;
    b.connect(&endpoint.to_string()).unwrap();
    receive_all(&b, "a", "b", 21, 30).await;
    send_all(&a, "a", "b", 51, 1).await;
    receive_all(&b, "a", "b", 51, 1).await;
    assert!(stop(b, b_store).await.is_complete());

    // Run 4 of `b`: nothing is delivered again.
    let (b, b_store) = open("b", b_path.clone()).await;
    b.connect(&endpoint.to_string()).unwrap();
    send_all(&a, "a", "b", 52, 1).await;
    receive_all(&b, "a", "b", 52, 1).await;
    tokio::time::timeout(WAIT, a.wait_acked(&pid("b"), 52))
        .await
        .unwrap()
        .unwrap();
    assert!(stop(b, b_store).await.is_complete());
    assert!(stop(a, a_store).await.is_complete());
}

#[tokio::test]
async fn options_are_validated_on_open() {
    let mut bad = ReliableOptions::new();
    bad.window(0);
    let err = ReliableSocket::open(pid("a"), bad, MemoryBackend::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("window"), "{err}");
}

/// Concurrent `send_to` calls share redb write transactions (and their
/// fsyncs): group commit through the socket.
#[cfg(feature = "redb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbBackend::open(dir.path().join("a.redb")).await.unwrap();
    let a = ReliableSocket::open(pid("a"), fast(), store.clone())
        .await
        .unwrap();
    let before = store.stats().write_transactions;
    let b = pid("b");
    let sends = (0..64).map(|n| a.send_to(&b, format!("m{n}")));
    let mut seqs: Vec<u64> = futures::future::try_join_all(sends).await.unwrap();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=64).collect::<Vec<_>>());
    let commits = store.stats().write_transactions - before;
    assert!(commits < 32, "{commits} commits for 64 concurrent sends");
    assert_eq!(a.pending().await.unwrap(), vec![(pid("b"), 64)]);
    a.shutdown(Duration::ZERO).await;
    store.close().await;
}
