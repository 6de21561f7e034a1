//! Publish/subscribe: one publisher, two subscribers with different topic
//! prefixes, over a Unix domain socket.
//!
//! Run with `cargo run --example pubsub`.

use std::time::Duration;

use msg::prelude::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let endpoint = format!("ipc://{}", dir.path().join("prices.sock").display());

    // ANCHOR: publisher
    let publisher = PubSocket::new();
    publisher.bind(&endpoint).await?;
    // ANCHOR_END: publisher

    // ANCHOR: subscribers
    let mut crypto = SubSocket::new();
    crypto.subscribe("price.crypto.").await;
    crypto.connect(&endpoint)?;

    let mut everything = SubSocket::new();
    everything.subscribe("").await;
    everything.connect(&endpoint)?;
    // ANCHOR_END: subscribers

    // Messages published before a subscription reaches the publisher are not
    // delivered to that subscriber (there is no history), so wait for both.
    publisher
        .wait_for_subscribers(2, Duration::from_secs(5))
        .await;

    // ANCHOR: publish
    publisher.publish("price.crypto.btc", "97000.5")?;
    publisher.publish("price.stock.acme", "12.25")?;
    publisher.publish("price.crypto.eth", "3400.1")?;
    // ANCHOR_END: publish

    // ANCHOR: receive
    for _ in 0..2 {
        let msg = crypto.next().await.expect("socket open");
        println!(
            "crypto subscriber: {} = {} (seq {})",
            String::from_utf8_lossy(msg.topic()),
            String::from_utf8_lossy(msg.payload()),
            msg.seq()
        );
    }
    // ANCHOR_END: receive
    for _ in 0..3 {
        let msg = everything.next().await.expect("socket open");
        println!(
            "catch-all subscriber: {} = {} (seq {})",
            String::from_utf8_lossy(msg.topic()),
            String::from_utf8_lossy(msg.payload()),
            msg.seq()
        );
    }
    let stats = publisher.stats();
    println!(
        "publisher: {} deliveries queued, {} dropped at the high-water mark",
        stats.msgs_sent, stats.dropped_hwm
    );
    Ok(())
}
