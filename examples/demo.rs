//! msg's sockets doing their main jobs in one process, explained as they go:
//! request/reply on three transports, many requests in flight, a server
//! restart, a slow subscriber. (`msg demo`, the README's tour, is the
//! command-line tool's; this is library code.)
//!
//! Run with `cargo run --example demo`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use msg::prelude::*;

fn say(text: &str) {
    println!("\n== {text}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;

    say("Request/reply over TCP, IPC and in-process: same code, different endpoint string");
    for endpoint in [
        "tcp://127.0.0.1:0".to_string(),
        format!("ipc://{}", dir.path().join("demo-rep.sock").display()),
        "inproc://demo-rep".to_string(),
    ] {
        let rep = RepSocket::new();
        let bound = rep.bind(&endpoint).await?;
        tokio::spawn(rep.serve(16, |payload, _| async move { payload.to_ascii_uppercase() }));
        let req = ReqSocket::new();
        req.connect(&bound.to_string())?;
        let started = Instant::now();
        let reply = req.request("hello msg").await?;
        println!(
            "  {:<40} -> {:?} in {:?}",
            bound.to_string(),
            String::from_utf8_lossy(&reply),
            started.elapsed()
        );
    }

    say("1,000 requests in flight at once, replies matched by id");
    let rep = RepSocket::new();
    let bound = rep.bind("tcp://127.0.0.1:0").await?;
    tokio::spawn(rep.serve(64, |payload, _| async move { payload }));
    let mut options = SocketOptions::new();
    options.send_hwm(2_000);
    let req = Arc::new(ReqSocket::with_options(options)?);
    req.connect(&bound.to_string())?;
    let started = Instant::now();
    let calls: Vec<_> = (0..1_000u32)
        .map(|n| {
            let req = req.clone();
            tokio::spawn(async move {
                let reply = req.request(n.to_be_bytes().to_vec()).await?;
                anyhow::ensure!(reply.as_ref() == n.to_be_bytes(), "reply mismatch");
                anyhow::Ok(())
            })
        })
        .collect();
    for call in calls {
        call.await??;
    }
    let stats = req.stats();
    println!(
        "  1,000 round trips in {:?}; latency p50 {:?}, p99 {:?}",
        started.elapsed(),
        stats.latency_p50,
        stats.latency_p99
    );

    say("A server restart: requests fail clearly, then the client reconnects by itself");
    let rep = RepSocket::new();
    let bound = rep.bind("tcp://127.0.0.1:0").await?;
    let mut options = SocketOptions::new();
    options
        .request_timeout(Duration::from_millis(300))
        .reconnect_initial(Duration::from_millis(20))
        .reconnect_max(Duration::from_millis(200));
    let req = ReqSocket::with_options(options)?;
    req.connect(&bound.to_string())?;
    let server = tokio::spawn(rep.serve(4, |p, _| async move { p }));
    println!("  before: {:?}", req.request("one").await.map(|_| "ok"));
    server.abort();
    let _ = server.await;
    println!(
        "  server stopped: {:?}",
        req.request("two").await.map(|_| "ok")
    );
    let rep = RepSocket::new();
    rep.bind(&bound.to_string()).await?;
    tokio::spawn(rep.serve(4, |p, _| async move { p }));
    req.wait_for_peers(1, Duration::from_secs(5)).await;
    println!(
        "  server back: {:?}",
        req.request("three").await.map(|_| "ok")
    );

    say(
        "Publish/subscribe: prefix filtering at the publisher, a slow subscriber never slows the rest",
    );
    let mut options = SocketOptions::new();
    options.send_hwm(1_000);
    let publisher = PubSocket::with_options(options)?;
    let bound = publisher.bind("tcp://127.0.0.1:0").await?;
    let mut fast = SubSocket::new();
    fast.subscribe("ticks.").await;
    fast.connect(&bound.to_string())?;
    let slow = SubSocket::new(); // subscribes but never reads
    slow.subscribe("ticks.").await;
    slow.connect(&bound.to_string())?;
    let mut other = SubSocket::new();
    other.subscribe("news.").await;
    other.connect(&bound.to_string())?;
    publisher
        .wait_for_subscribers(3, Duration::from_secs(5))
        .await;
    let total = 20_000u64;
    // The fast subscriber reads as messages come.
    let reader = tokio::spawn(async move {
        let (mut got, mut last, mut in_order) = (0u64, 0u64, true);
        // Read until the stream goes quiet.
        while let Ok(Some(msg)) =
            tokio::time::timeout(Duration::from_millis(500), fast.next()).await
        {
            in_order &= msg.seq() > last;
            last = msg.seq();
            got += 1;
        }
        (got, in_order, fast.stats().gaps)
    });
    for n in 0..total {
        publisher.publish("ticks.eurusd", vec![0u8; 64])?;
        if n % 100 == 99 {
            // A steady stream of 100 messages a millisecond. The publisher
            // itself never waits for anyone.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    publisher.publish("news.today", "markets calm")?;
    let news = other.next().await.expect("socket open");
    let (got, in_order, gaps) = reader.await?;
    println!("  fast subscriber: {got} of {total} messages, in order: {in_order}, lost: {gaps}");
    println!(
        "  news subscriber received only its topic: {:?}",
        String::from_utf8_lossy(news.topic())
    );
    let slow_stats = slow.stats();
    println!(
        "  slow subscriber: {} messages waiting (its queue is bounded), {} dropped; the publisher dropped {} for it",
        slow_stats.msgs_received - slow_stats.dropped_hwm,
        slow_stats.dropped_hwm,
        publisher.stats().dropped_hwm
    );
    drop(slow);

    say("Done. The book (mdbook serve book) explains each of these.");
    Ok(())
}
