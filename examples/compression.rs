//! Compression: the same compressible messages published with each
//! algorithm; the subscriber needs no configuration, the header says how
//! each message was compressed.
//!
//! Run with `cargo run --example compression`.

use std::time::Duration;

use msg::prelude::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A log line repeated: the kind of payload compression is made for.
    let payload = "level=info service=checkout msg=\"order accepted\" items=3\n".repeat(200);
    println!("payload: {} bytes", payload.len());

    for algorithm in [
        Compression::None,
        Compression::Gzip,
        Compression::Zstd,
        Compression::Snappy,
        Compression::Lz4,
    ] {
        // ANCHOR: options
        let mut options = SocketOptions::new();
        options
            .compression(algorithm)
            // Payloads shorter than this go uncompressed.
            .compress_min_size(512);
        let publisher = PubSocket::with_options(options)?;
        // ANCHOR_END: options
        let endpoint = publisher.bind("tcp://127.0.0.1:0").await?;

        let mut subscriber = SubSocket::new();
        subscriber.subscribe("logs").await;
        subscriber.connect(&endpoint.to_string())?;
        publisher
            .wait_for_subscribers(1, Duration::from_secs(5))
            .await;

        for _ in 0..10 {
            publisher.publish("logs", payload.clone())?;
        }
        for _ in 0..10 {
            let msg = subscriber.next().await.expect("socket open");
            assert_eq!(msg.payload().len(), payload.len());
        }
        let stats = publisher.stats();
        println!(
            "{:>7}: {:>6} bytes on the wire for {} bytes of payload",
            algorithm.to_string(),
            stats.bytes_sent,
            10 * payload.len()
        );
    }
    Ok(())
}
