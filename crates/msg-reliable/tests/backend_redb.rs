//! `RedbBackend` on real files: the backend contract, persistence across
//! reopening, group commit, and single ownership of the file.

#![cfg(feature = "redb")]

use std::path::PathBuf;

use crate::common::*;
use msg_reliable::{Backend, IncomingState, RedbBackend, StorageErrorKind, StoreBatch};
use tempfile::TempDir;

async fn fresh() -> (TempDir, PathBuf, RedbBackend) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reliable.redb");
    let b = RedbBackend::open(&path).await.unwrap();
    (dir, path, b)
}

#[tokio::test]
async fn redb_append_assigns_consecutive_numbers_per_peer() {
    let (_dir, _, b) = fresh().await;
    append_assigns_consecutive_numbers_per_peer(&b).await;
}

#[tokio::test]
async fn redb_ack_outgoing_deletes_only_the_acked_prefix() {
    let (_dir, _, b) = fresh().await;
    ack_outgoing_deletes_only_the_acked_prefix(&b).await;
}

#[tokio::test]
async fn redb_store_incoming_moves_the_watermark_with_the_messages() {
    let (_dir, _, b) = fresh().await;
    store_incoming_moves_the_watermark_with_the_messages(&b).await;
}

#[tokio::test]
async fn redb_ack_incoming_deletes_only_those_messages() {
    let (_dir, _, b) = fresh().await;
    ack_incoming_deletes_only_those_messages(&b).await;
}

#[tokio::test]
async fn redb_peers_lists_both_directions() {
    let (_dir, _, b) = fresh().await;
    peers_lists_both_directions(&b).await;
}

#[tokio::test]
async fn redb_binary_and_prefix_peer_ids_stay_apart() {
    let (_dir, _, b) = fresh().await;
    binary_and_prefix_peer_ids_stay_apart(&b).await;
}

#[tokio::test]
async fn redb_state_survives_reopening_and_acked_data_is_gone() {
    let (_dir, path, b) = fresh().await;
    let (x, y) = (peer("x"), peer("y"));
    b.append_outgoing(&x, msgs("x", 1..=10)).await.unwrap();
    b.ack_outgoing(&x, 7).await.unwrap();
    b.store_incoming(&y, StoreBatch::new(1, msgs("y", 1..=5), true))
        .await
        .unwrap();
    b.ack_incoming(&y, vec![1, 2]).await.unwrap();
    b.close().await;

    let b = RedbBackend::open(&path).await.unwrap();
    let out = b.load_outgoing(&x).await.unwrap();
    assert_eq!(out.last_assigned, 10);
    assert_eq!(
        out.unacked,
        (8..=10).map(|s| (s, msg("x", s))).collect::<Vec<_>>(),
        "acknowledged messages are gone, the rest is intact"
    );
    assert_eq!(
        b.load_incoming(&y).await.unwrap(),
        IncomingState {
            accepted: 5,
            undelivered: (3..=5).map(|s| (s, msg("y", s))).collect()
        }
    );
    assert_eq!(b.accepted(&y).await.unwrap(), 5, "watermark survives");
    assert_eq!(
        b.append_outgoing(&x, msgs("x", 11..=11)).await.unwrap(),
        11,
        "numbering continues"
    );
    // The watermark still guards against storing anything twice.
    let err = b
        .store_incoming(&y, StoreBatch::new(5, msgs("y", 5..=5), true))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    b.close().await;
}

#[tokio::test]
async fn redb_store_that_is_open_refuses_a_second_owner() {
    let (_dir, path, b) = fresh().await;
    let err = RedbBackend::open(&path).await.unwrap_err();
    assert_eq!(err.kind(), StorageErrorKind::AlreadyOpen, "{err:?}");
    assert!(err.is_already_open());
    assert!(err.to_string().contains("already open"), "{err}");
    b.close().await;
    // Released on close.
    let b = RedbBackend::open(&path).await.unwrap();
    b.close().await;
}

#[tokio::test]
async fn redb_closed_store_refuses_operations() {
    let (_dir, _, b) = fresh().await;
    let clone = b.clone();
    b.close().await;
    let err = clone
        .append_outgoing(&peer("x"), msgs("x", 1..=1))
        .await
        .unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    b.close().await; // closing twice is fine
}

#[tokio::test]
async fn redb_open_reports_a_file_that_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0x5a; 4096]).unwrap();
    let err = RedbBackend::open(&path).await.unwrap_err();
    assert_eq!(err.kind(), StorageErrorKind::Io, "{err:?}");
}

/// 64 tasks append concurrently: every message gets its own number, the
/// numbers are exactly 1..=N, each task's own messages are in the order it
/// sent them, and the committer gathered them into fewer transactions than
/// appends (group commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_concurrent_appends_are_numbered_once_and_group_committed() {
    let (_dir, path, b) = fresh().await;
    let appends = concurrent_appends_are_numbered_once(&b, 64, 40).await;
    let stats = b.stats();
    assert_group_committed(appends, stats.write_transactions, stats.write_requests);
    // Each stored payload is under the number its task got.
    b.close().await;
    let b = RedbBackend::open(&path).await.unwrap();
    let out = b.load_outgoing(&peer("x")).await.unwrap();
    assert_eq!(out.last_assigned, appends);
    assert_eq!(out.unacked.len() as u64, appends);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_mixed_concurrent_writes_fail_only_on_their_own_conflict() {
    let (_dir, _, b) = fresh().await;
    mixed_concurrent_writes_fail_only_on_their_own_conflict(&b, 32, 10).await;
    b.close().await;
}

/// Rows in `table` of the closed store at `path`, read with redb itself.
fn rows(path: &std::path::Path, table: &str) -> usize {
    use redb::{ReadableTableMetadata, TableDefinition};
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let def: TableDefinition<'_, (&[u8], u64), &[u8]> = TableDefinition::new(table);
    txn.open_table(def).unwrap().len().unwrap() as usize
}

#[tokio::test]
async fn batches_are_one_row_each_and_go_when_fully_acknowledged() {
    let (_dir, path, b) = fresh().await;
    let x = peer("x");
    // Three appends, three rows; an incoming batch of five, one row.
    b.append_outgoing(&x, msgs("o", 1..=4)).await.unwrap();
    b.append_outgoing(&x, msgs("o", 5..=6)).await.unwrap();
    b.append_outgoing(&x, msgs("o", 7..=9)).await.unwrap();
    b.store_incoming(&x, StoreBatch::new(1, msgs("i", 1..=5), true))
        .await
        .unwrap();
    b.close().await;
    assert_eq!(rows(&path, "outgoing_batches"), 3);
    assert_eq!(rows(&path, "incoming_batches"), 1);

    // Acked up to the middle of the second append: the first row goes, the
    // second stays with its head hidden. The application processes three
    // of five incoming messages, out of order.
    let b = RedbBackend::open(&path).await.unwrap();
    b.ack_outgoing(&x, 5).await.unwrap();
    b.ack_incoming(&x, vec![4, 1]).await.unwrap();
    b.ack_incoming(&x, vec![2]).await.unwrap();
    b.close().await;
    assert_eq!(rows(&path, "outgoing_batches"), 2);
    assert_eq!(rows(&path, "incoming_batches"), 1);

    let b = RedbBackend::open(&path).await.unwrap();
    assert_eq!(
        b.load_outgoing(&x).await.unwrap().unacked,
        (6..=9).map(|n| (n, msg("o", n))).collect::<Vec<_>>()
    );
    assert_eq!(
        b.load_incoming(&x).await.unwrap(),
        IncomingState {
            accepted: 5,
            undelivered: vec![(3, msg("i", 3)), (5, msg("i", 5))]
        }
    );
    // Everything acknowledged: no rows left behind, bitmaps included.
    b.ack_outgoing(&x, 9).await.unwrap();
    b.ack_incoming(&x, vec![3, 5]).await.unwrap();
    b.close().await;
    assert_eq!(rows(&path, "outgoing_batches"), 0);
    assert_eq!(rows(&path, "incoming_batches"), 0);
    assert_eq!(rows(&path, "incoming_acked"), 0);
    let b = RedbBackend::open(&path).await.unwrap();
    assert_eq!(b.load_outgoing(&x).await.unwrap().last_assigned, 9);
    assert_eq!(b.append_outgoing(&x, msgs("o", 10..=10)).await.unwrap(), 10);
}

#[tokio::test]
async fn a_damaged_batch_row_is_reported_as_corrupt_not_a_panic() {
    let (_dir, path, b) = fresh().await;
    let x = peer("x");
    b.append_outgoing(&x, msgs("o", 1..=2)).await.unwrap();
    b.close().await;
    {
        use redb::TableDefinition;
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let out: TableDefinition<'_, (&[u8], u64), &[u8]> =
                TableDefinition::new("outgoing_batches");
            let mut out = txn.open_table(out).unwrap();
            // Claims 200 messages, holds a few bytes.
            out.insert((b"x".as_slice(), 2), [200u8, 0, 0, 0, 1].as_slice())
                .unwrap();
            let inc: TableDefinition<'_, (&[u8], u64), &[u8]> =
                TableDefinition::new("incoming_batches");
            let mut inc = txn.open_table(inc).unwrap();
            // Three messages cannot end at sequence number 2.
            let row = [3u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            inc.insert((b"x".as_slice(), 2), row.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let b = RedbBackend::open(&path).await.unwrap();
    let e = b.load_outgoing(&x).await.unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::Corrupt, "{e:?}");
    let e = b.load_incoming(&x).await.unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::Corrupt, "{e:?}");
    let e = b.ack_incoming(&x, vec![1]).await.unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::Corrupt, "{e:?}");
}
