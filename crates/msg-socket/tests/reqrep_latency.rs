//! Request latency in a Req socket's stats, on a virtual clock: the Rep
//! answers after a delay the test chooses, so every request takes a known
//! time, and the recorded latencies match it. The maximum is exact; the
//! quantiles are within the documented factor of two (they report the upper
//! bound of a power-of-two bucket, never more than the maximum).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use msg_socket::{RepSocket, ReqSocket, SocketStats};

/// A Rep that answers each request after the number of milliseconds its
/// payload names, and a Req connected to it.
async fn delayed_echo() -> ReqSocket {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "inproc://latency-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let rep = RepSocket::new();
    rep.bind(&name).await.unwrap();
    tokio::spawn(rep.serve(1024, |payload, _| async move {
        let ms: u64 = std::str::from_utf8(&payload).unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        payload
    }));
    let req = ReqSocket::new();
    req.connect(&name).unwrap();
    assert!(req.wait_for_peers(1, Duration::from_secs(5)).await);
    req
}

/// `d` lies in `[low, low + 1 ms]`: the timer rounds a sleep up to the next
/// millisecond.
fn assert_near(d: Option<Duration>, low: Duration, what: &str, s: &SocketStats) {
    let d = d.unwrap_or_else(|| panic!("no {what}: {s:?}"));
    assert!(
        d >= low && d <= low + Duration::from_millis(1),
        "{what} {d:?}, expected {low:?}: {s:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_of_requests_answered_after_a_known_delay_is_recorded_as_that_delay() {
    let req = delayed_echo().await;
    for _ in 0..20 {
        assert_eq!(req.request("50").await.unwrap(), "50");
    }
    let s = req.stats();
    assert_eq!(s.requests, 20);
    let ms50 = Duration::from_millis(50);
    // All alike: each quantile's bucket bound is cut to the maximum.
    assert_near(s.latency_max, ms50, "max", &s);
    assert_near(s.latency_p50, ms50, "p50", &s);
    assert_near(s.latency_p99, ms50, "p99", &s);
}

#[tokio::test(start_paused = true)]
async fn quantiles_tell_a_fast_majority_from_a_slow_tail_within_a_factor_of_two() {
    let req = delayed_echo().await;
    // 98 requests of 10 ms and 2 of 200 ms, in flight together.
    let mut in_flight: FuturesUnordered<_> = (0..100)
        .map(|n| {
            let req = &req;
            let ms = if n % 50 == 7 { "200" } else { "10" };
            async move { req.request(ms).await.unwrap() }
        })
        .collect();
    let mut slow = 0;
    while let Some(reply) = in_flight.next().await {
        slow += usize::from(reply == "200");
    }
    assert_eq!(slow, 2);
    let s = req.stats();
    assert_eq!(s.requests, 100);
    // The slowest request took 200 ms, exactly.
    assert_near(s.latency_max, Duration::from_millis(200), "max", &s);
    // The 99th of 100 is a slow one.
    assert_near(s.latency_p99, Duration::from_millis(200), "p99", &s);
    // The median is a 10 ms request, reported within a factor of two.
    let p50 = s.latency_p50.unwrap();
    assert!(
        p50 >= Duration::from_millis(10) && p50 <= Duration::from_millis(20),
        "p50 {p50:?}: {s:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_counts_from_the_call_including_the_wait_for_a_connection() {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "inproc://latency-late-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut o = msg_socket::SocketOptions::new();
    o.reconnect_initial(Duration::from_millis(300))
        .reconnect_max(Duration::from_millis(300))
        .reconnect_jitter(0.0);
    let req = ReqSocket::with_options(o).unwrap();
    req.connect(&name).unwrap();
    // The Rep appears 300 ms (one retry) after the request was made.
    let serve = async {
        tokio::task::yield_now().await;
        let rep = RepSocket::new();
        rep.bind(&name).await.unwrap();
        tokio::spawn(rep.serve(1, |payload, _| async move { payload }));
    };
    let (reply, ()) = tokio::join!(req.request("x"), serve);
    assert_eq!(reply.unwrap(), "x");
    let s = req.stats();
    assert_near(s.latency_max, Duration::from_millis(300), "max", &s);
}
