//! `RepSocket::serve` runs at most `concurrency` handlers at once and
//! answers every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use msg_socket::{RepSocket, ReqSocket};

fn inproc_name(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "inproc://reqrep-serve-{what}-{}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
    done: AtomicUsize,
}

async fn run(limit: usize, requests: usize, clients: usize) -> Arc<Gauge> {
    let name = inproc_name("limit");
    let rep = RepSocket::new();
    rep.bind(&name).await.unwrap();
    let gauge = Arc::new(Gauge::default());
    let g = gauge.clone();
    tokio::spawn(rep.serve(limit, move |payload, _peer| {
        let g = g.clone();
        async move {
            let running = g.now.fetch_add(1, Ordering::SeqCst) + 1;
            g.max.fetch_max(running, Ordering::SeqCst);
            // Handlers take a while (virtual time), varying by request.
            let n: u64 = std::str::from_utf8(&payload).unwrap().parse().unwrap();
            tokio::time::sleep(Duration::from_millis(5 + n % 7)).await;
            g.now.fetch_sub(1, Ordering::SeqCst);
            g.done.fetch_add(1, Ordering::SeqCst);
            payload
        }
    }));

    let reqs: Vec<ReqSocket> = (0..clients)
        .map(|_| {
            let req = ReqSocket::new();
            req.connect(&name).unwrap();
            req
        })
        .collect();
    let mut in_flight: FuturesUnordered<_> = (0..requests)
        .map(|n| {
            let req = &reqs[n % clients];
            async move { (n, req.request(n.to_string()).await) }
        })
        .collect();
    let mut answered = 0;
    while let Some((n, r)) = in_flight.next().await {
        assert_eq!(r.unwrap(), n.to_string());
        answered += 1;
    }
    assert_eq!(answered, requests);
    gauge
}

#[tokio::test(start_paused = true)]
async fn serve_never_runs_more_handlers_than_its_limit() {
    for limit in [1, 4, 16] {
        let gauge = run(limit, 300, 3).await;
        assert_eq!(gauge.done.load(Ordering::SeqCst), 300);
        assert_eq!(gauge.now.load(Ordering::SeqCst), 0);
        // Never above the limit, and the limit is actually used.
        assert_eq!(gauge.max.load(Ordering::SeqCst), limit, "limit {limit}");
    }
}

#[tokio::test(start_paused = true)]
async fn serve_with_a_limit_of_zero_still_serves_one_at_a_time() {
    let gauge = run(0, 20, 1).await;
    assert_eq!(gauge.max.load(Ordering::SeqCst), 1);
    assert_eq!(gauge.done.load(Ordering::SeqCst), 20);
}
