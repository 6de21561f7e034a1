//! Request/reply: a Rep socket serving over TCP, a Req socket with many
//! requests in flight at once.
//!
//! Run with `cargo run --example reqrep`.

use std::sync::Arc;
use std::time::Duration;

use msg::prelude::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // ANCHOR: server
    let rep = RepSocket::new();
    let endpoint = rep.bind("tcp://127.0.0.1:0").await?;
    println!("rep: bound {endpoint}");

    // Answer every request with its payload reversed, at most 32 at a time.
    tokio::spawn(rep.serve(32, |payload, peer| async move {
        println!(
            "rep: request {:?} from {}",
            String::from_utf8_lossy(&payload),
            peer.addr
        );
        let mut reply = payload.to_vec();
        reply.reverse();
        reply
    }));
    // ANCHOR_END: server

    // ANCHOR: client
    // ANCHOR: options
    let mut options = SocketOptions::new();
    options
        .request_timeout(Duration::from_secs(2))
        .send_hwm(10_000)
        .reconnect_initial(Duration::from_millis(50))
        .reconnect_max(Duration::from_secs(5));
    let req = Arc::new(ReqSocket::with_options(options)?);
    // ANCHOR_END: options
    req.connect(&endpoint.to_string())?;

    // Ten requests in flight at once; replies are matched by id, in any order.
    let mut calls = Vec::new();
    for n in 0..10 {
        let req = req.clone();
        calls.push(tokio::spawn(async move {
            req.request(format!("request number {n}")).await
        }));
    }
    for call in calls {
        let reply = call.await??;
        println!("req: reply {:?}", String::from_utf8_lossy(&reply));
    }
    // ANCHOR_END: client

    // ANCHOR: stats
    let stats = req.stats();
    println!(
        "req: {} requests, p50 latency {:?}, p99 {:?}",
        stats.requests, stats.latency_p50, stats.latency_p99
    );
    // ANCHOR_END: stats
    Ok(())
}
