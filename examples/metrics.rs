//! Metrics: a Req/Rep pair and a reliable pair with the `metrics` feature,
//! exported in the Prometheus text format. The example prints what a
//! scrape would read; a service would serve the same text over HTTP
//! (metrics-exporter-prometheus can, with its `http-listener` feature, or
//! `msg ... --metrics-addr`).
//!
//! Run with `cargo run --example metrics`.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use msg::prelude::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // ANCHOR: exporter
    // Install the exporter before the sockets bind or connect: each socket
    // registers its metrics then, and updates them every metrics_interval.
    let recorder = PrometheusBuilder::new().build_recorder();
    let scrape = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    // ANCHOR_END: exporter

    // ANCHOR: sockets
    let mut options = SocketOptions::new();
    options
        .name("orders")
        .metrics_interval(Duration::from_millis(100));
    let rep = RepSocket::with_options(options.clone())?;
    let endpoint = rep.bind("tcp://127.0.0.1:0").await?;
    tokio::spawn(rep.serve(8, |payload, _| async move { payload }));
    let req = ReqSocket::with_options(options)?;
    req.connect(&endpoint.to_string())?;
    for i in 0..100 {
        req.request(format!("order {i}")).await?;
    }
    // ANCHOR_END: sockets

    let mut reliable = ReliableOptions::default();
    reliable.metrics_interval(Duration::from_millis(100));
    let alice = ReliableSocket::open(
        PeerId::new("alice")?,
        reliable.clone(),
        MemoryBackend::new(),
    )
    .await?;
    let bob = ReliableSocket::open(PeerId::new("bob")?, reliable, MemoryBackend::new()).await?;
    let at = bob.bind("tcp://127.0.0.1:0").await?;
    alice.connect(&at.to_string())?;
    for i in 0..10 {
        alice
            .send_to(&PeerId::new("bob")?, format!("invoice {i}"))
            .await?;
    }
    for _ in 0..10 {
        let delivery = bob.recv().await.expect("bob is open");
        delivery.ack().await?;
    }
    alice.wait_acked(&PeerId::new("bob")?, 10).await?;

    // Let the sockets bring their numbers up to date, then read them as a
    // scrape of /metrics would.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = scrape.render();
    for line in text.lines().filter(|l| {
        l.starts_with("msg_socket_requests_total")
            || l.starts_with("msg_socket_messages_received_total")
            || l.starts_with("msg_reliable_delivered_total")
            || l.starts_with("msg_reliable_stored_outgoing_total")
            || l.starts_with("msg_reliable_store_seconds_count")
    }) {
        println!("{line}");
    }
    assert!(
        text.contains(r#"msg_socket_requests_total{socket="req",name="orders"} 100"#),
        "{text}"
    );
    req.close(Duration::from_secs(1)).await;
    alice.shutdown(Duration::from_secs(1)).await;
    bob.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
