//! The driver merges what arrives together: concurrent `send_to` calls for
//! one peer share one backend write (and, with redb, one fsync), yet each
//! caller gets its own sequence numbers, and a failed shared write fails
//! every caller in it and stores none of them.

use std::sync::Arc;
use std::time::Duration;

use crate::common::FailingBackend;
use futures::future::join_all;
use msg_reliable::{Backend, MemoryBackend, PeerId, ReliableOptions, ReliableSocket};

const SENDERS: u64 = 64;

fn peer(name: &str) -> PeerId {
    name.parse().unwrap()
}

async fn open(backend: &(impl Backend + Clone)) -> Arc<ReliableSocket> {
    Arc::new(
        ReliableSocket::open(peer("me"), ReliableOptions::new(), backend.clone())
            .await
            .unwrap(),
    )
}

/// Starts `SENDERS` tasks that each store one message for `to`, plus one
/// batch of three, all before the driver runs (a current-thread runtime
/// runs them in order, then the driver), and returns each call's result.
async fn send_together(
    socket: &Arc<ReliableSocket>,
    to: &PeerId,
) -> (
    Vec<Result<u64, msg_reliable::ReliableError>>,
    Result<std::ops::Range<u64>, msg_reliable::ReliableError>,
) {
    let singles: Vec<_> = (0..SENDERS)
        .map(|i| {
            let (socket, to) = (socket.clone(), to.clone());
            tokio::spawn(async move { socket.send_to(&to, format!("single {i}")).await })
        })
        .collect();
    let batch = {
        let (socket, to) = (socket.clone(), to.clone());
        tokio::spawn(async move { socket.send_batch_to(&to, ["b1", "b2", "b3"]).await })
    };
    let singles = join_all(singles)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    (singles, batch.await.unwrap())
}

#[tokio::test]
async fn concurrent_sends_share_a_write_and_get_their_own_numbers() {
    let backend = MemoryBackend::new();
    let socket = open(&backend).await;
    let to = peer("far");
    let before = backend.operations();

    let (singles, batch) = send_together(&socket, &to).await;
    let mut seqs: Vec<u64> = singles.into_iter().map(Result::unwrap).collect();
    let batch = batch.unwrap();
    assert_eq!(batch.end - batch.start, 3);
    seqs.extend(batch);
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=SENDERS + 3).collect::<Vec<_>>());

    // One write for all 65 calls (it was one per call).
    assert_eq!(backend.operations() - before, 1);
    assert_eq!(socket.pending().await.unwrap(), [(to.clone(), 67)]);

    // What the calls were told is what the store holds.
    let socket = Arc::into_inner(socket).unwrap();
    socket.shutdown(Duration::ZERO).await;
    let socket = open(&backend).await;
    assert_eq!(socket.pending().await.unwrap(), [(to, 67)]);
}

#[tokio::test]
async fn a_failed_shared_write_fails_every_caller_and_stores_nothing() {
    let backend = FailingBackend::new(MemoryBackend::new());
    let socket = open(&backend).await;
    let to = peer("far");

    backend.fail_next(1);
    let (singles, batch) = send_together(&socket, &to).await;
    for result in singles {
        assert!(result.unwrap_err().is_storage());
    }
    assert!(batch.unwrap_err().is_storage());
    assert_eq!(backend.injected_failures(), 1);
    assert_eq!(socket.pending().await.unwrap(), []);

    // Nothing was numbered: the next message is the first, and the outbox
    // room the failed calls had reserved is free again.
    assert_eq!(socket.send_to(&to, "after").await.unwrap(), 1);
    assert_eq!(socket.pending().await.unwrap(), [(to, 1)]);
}
