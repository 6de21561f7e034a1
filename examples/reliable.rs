//! Reliable delivery: a receiving peer goes offline, the sender keeps
//! sending (durably, to a redb file), the receiver comes back and gets
//! every message once, in order.
//!
//! ```text
//! cargo run --example reliable
//! ```

use std::time::Duration;

use anyhow::Context as _;
use msg::reliable::{Delivery, PeerId, RedbBackend, ReliableOptions, ReliableSocket};

/// Opens `name`'s endpoint on its own store file.
// ANCHOR: open
async fn open(name: &str, dir: &std::path::Path) -> anyhow::Result<(ReliableSocket, RedbBackend)> {
    let store = RedbBackend::open(dir.join(format!("{name}.redb"))).await?;
    let identity: PeerId = name.parse()?;
    let socket = ReliableSocket::open(identity, ReliableOptions::new(), store.clone()).await?;
    Ok((socket, store))
}
// ANCHOR_END: open

/// Receives `n` messages and acknowledges each once it is "processed".
// ANCHOR: receive
async fn receive(receiver: &ReliableSocket, n: usize) -> anyhow::Result<()> {
    for _ in 0..n {
        let delivery = receiver.recv().await.context("receiver closed")?;
        println!(
            "receiver: #{} from {}: {}",
            delivery.seq(),
            delivery.peer(),
            String::from_utf8_lossy(delivery.payload())
        );
        // Processed: acknowledge, and it is never delivered again.
        delivery.ack().await?;
    }
    Ok(())
}
// ANCHOR_END: receive

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let receiver_id: PeerId = "receiver".parse()?;

    // ANCHOR: connect
    let (sender, sender_store) = open("sender", dir.path()).await?;
    let endpoint = sender.bind("tcp://127.0.0.1:0").await?;
    let (receiver, receiver_store) = open("receiver", dir.path()).await?;
    receiver.connect(&endpoint.to_string())?;
    // ANCHOR_END: connect

    // ANCHOR: send
    for n in 1..=3 {
        // Returns once the message is on disk, whether or not the peer is up.
        let seq = sender.send_to(&receiver_id, format!("message {n}")).await?;
        println!("sender: stored #{seq}");
    }
    receive(&receiver, 3).await?;
    // ANCHOR_END: send

    // The receiver goes offline: everything it stored is acknowledged to
    // the sender, what it has not processed stays in its file.
    // ANCHOR: offline
    let report = receiver.shutdown(Duration::from_secs(1)).await;
    println!(
        "receiver: offline ({} of its own messages pending)",
        report.pending_messages()
    );
    receiver_store.close().await;

    for n in 4..=6 {
        let seq = sender.send_to(&receiver_id, format!("message {n}")).await?;
        println!("sender: stored #{seq} while the receiver is away");
    }
    // ANCHOR_END: offline

    // The receiver comes back on the same file and catches up.
    // ANCHOR: back
    let (receiver, receiver_store) = open("receiver", dir.path()).await?;
    receiver.connect(&endpoint.to_string())?;
    receive(&receiver, 3).await?;
    sender.wait_acked(&receiver_id, 6).await?;
    println!("sender: the receiver has everything");
    // ANCHOR_END: back

    // Busy peers work in batches: one write stores 100 messages, and the
    // receiver takes what has arrived and acknowledges it in one write.
    // ANCHOR: batch
    let seqs = sender
        .send_batch_to(&receiver_id, (1..=100).map(|n| format!("batched {n}")))
        .await?;
    let mut batch = Vec::with_capacity(64);
    let mut received = 0;
    while (received as u64) < seqs.end - seqs.start {
        received += receiver.recv_many(&mut batch, 64).await;
        // ... process the batch, then:
        Delivery::ack_all(batch.drain(..)).await?;
    }
    println!(
        "receiver: {received} batched messages, #{} to #{}",
        seqs.start,
        seqs.end - 1
    );
    // ANCHOR_END: batch

    // ANCHOR: shutdown
    let report = sender.shutdown(Duration::from_secs(5)).await;
    assert!(report.is_complete(), "pending: {:?}", report.pending);
    sender_store.close().await;
    receiver.shutdown(Duration::from_secs(1)).await;
    receiver_store.close().await;
    // ANCHOR_END: shutdown
    Ok(())
}
