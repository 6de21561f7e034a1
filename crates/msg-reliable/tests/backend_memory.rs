//! `MemoryBackend`: the backend contract; the failure-injecting wrapper
//! over it.

use crate::common::*;
use msg_reliable::{Backend, MemoryBackend, StorageErrorKind, StoreBatch};

#[tokio::test]
async fn memory_append_assigns_consecutive_numbers_per_peer() {
    append_assigns_consecutive_numbers_per_peer(&MemoryBackend::new()).await;
}

#[tokio::test]
async fn memory_ack_outgoing_deletes_only_the_acked_prefix() {
    ack_outgoing_deletes_only_the_acked_prefix(&MemoryBackend::new()).await;
}

#[tokio::test]
async fn memory_store_incoming_moves_the_watermark_with_the_messages() {
    store_incoming_moves_the_watermark_with_the_messages(&MemoryBackend::new()).await;
}

#[tokio::test]
async fn memory_ack_incoming_deletes_only_those_messages() {
    ack_incoming_deletes_only_those_messages(&MemoryBackend::new()).await;
}

#[tokio::test]
async fn memory_peers_lists_both_directions() {
    peers_lists_both_directions(&MemoryBackend::new()).await;
}

#[tokio::test]
async fn memory_binary_and_prefix_peer_ids_stay_apart() {
    binary_and_prefix_peer_ids_stay_apart(&MemoryBackend::new()).await;
}

#[tokio::test]
async fn memory_clones_share_one_store() {
    let a = MemoryBackend::new();
    let b = a.clone();
    a.append_outgoing(&peer("x"), msgs("x", 1..=2))
        .await
        .unwrap();
    assert_eq!(b.load_outgoing(&peer("x")).await.unwrap().last_assigned, 2);
}

/// The failure-injecting wrapper the other tests rely on: a failed
/// operation surfaces as an injected error and leaves the store as it was.
#[tokio::test]
async fn injected_failures_surface_and_change_nothing() {
    let b = FailingBackend::new(MemoryBackend::new());
    let x = peer("x");
    b.append_outgoing(&x, msgs("x", 1..=2)).await.unwrap();
    b.store_incoming(&x, StoreBatch::new(1, msgs("m", 1..=2), true))
        .await
        .unwrap();
    let before_out = b.load_outgoing(&x).await.unwrap();
    let before_in = b.load_incoming(&x).await.unwrap();
    let operations = b.inner().operations();

    b.fail_next(4);
    let e = b.append_outgoing(&x, msgs("x", 3..=3)).await.unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::Other);
    assert!(is_injected(&e), "{e:?}");
    assert!(b.ack_outgoing(&x, 2).await.is_err());
    assert!(
        b.store_incoming(&x, StoreBatch::new(3, msgs("m", 3..=3), true))
            .await
            .is_err()
    );
    assert!(b.ack_incoming(&x, vec![1]).await.is_err());
    assert_eq!(b.injected_failures(), 4);
    assert_eq!(
        b.inner().operations(),
        operations,
        "the store was not called"
    );

    // The failed append assigned no number; nothing else moved either.
    assert_eq!(b.load_outgoing(&x).await.unwrap(), before_out);
    assert_eq!(b.load_incoming(&x).await.unwrap(), before_in);
    assert_eq!(b.append_outgoing(&x, msgs("x", 3..=3)).await.unwrap(), 3);

    // A disk that stays full fails until it is fixed.
    b.set_failing(true);
    for _ in 0..3 {
        assert!(b.accepted(&x).await.is_err());
    }
    b.set_failing(false);
    assert_eq!(b.accepted(&x).await.unwrap(), 2);
    assert_eq!(b.injected_failures(), 7);
}
