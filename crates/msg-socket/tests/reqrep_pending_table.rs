//! The Req socket's table of requests in flight: slots are reused, so a
//! reply to a request that already ended (timed out or cancelled) must not
//! reach a later request that took the same slot; deadlines are kept by one
//! sweeper per socket, which must wake early for a shorter deadline and
//! outlive the runtime it was started on.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use msg_socket::{RepSocket, ReqError, ReqSocket, Request, SocketOptions};
use tokio::time::Instant;

fn inproc_name(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "inproc://reqrep-pending-{what}-{}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn opts() -> SocketOptions {
    let mut o = SocketOptions::new();
    common::quick(&mut o);
    o
}

/// A connected pair over inproc.
async fn pair(what: &str) -> (ReqSocket, RepSocket) {
    let name = inproc_name(what);
    let rep = RepSocket::with_options(opts()).unwrap();
    rep.bind(&name).await.unwrap();
    let req = ReqSocket::with_options(opts()).unwrap();
    req.connect(&name).unwrap();
    assert!(req.wait_for_peers(1, Duration::from_secs(5)).await);
    (req, rep)
}

/// The first request ends without its reply (`end_first` times it out or
/// cancels it); the second takes its slot. The Rep then answers the first
/// while the second is in flight, and only after that the second: the
/// second must get its own answer, never the stale one.
async fn stale_reply_is_not_delivered_to_the_slot_reuser(
    req: &ReqSocket,
    rep: &mut RepSocket,
    first: Request,
) {
    assert_eq!(first.payload(), "first");
    let (result, ()) = tokio::join!(req.request("second"), async {
        let second = rep.recv().await.unwrap();
        assert_eq!(second.payload(), "second");
        first.reply("stale answer to first").await.unwrap();
        // Give the stale reply every chance to arrive (and be misrouted)
        // before the real one is sent.
        tokio::time::sleep(Duration::from_millis(50)).await;
        second.reply("answer to second").await.unwrap();
    });
    assert_eq!(result.unwrap(), "answer to second");
}

#[tokio::test(start_paused = true)]
async fn reply_to_a_timed_out_request_does_not_reach_the_request_in_its_slot() {
    let (req, mut rep) = pair("timed-out").await;
    let (result, first) = tokio::join!(
        req.request_timeout("first", Duration::from_secs(1)),
        async { rep.recv().await.unwrap() }
    );
    assert!(matches!(result, Err(ReqError::Timeout)), "{result:?}");
    stale_reply_is_not_delivered_to_the_slot_reuser(&req, &mut rep, first).await;
    assert_eq!(req.stats().requests, 1);
}

#[tokio::test(start_paused = true)]
async fn reply_to_a_cancelled_request_does_not_reach_the_request_in_its_slot() {
    let (req, mut rep) = pair("cancelled").await;
    let first = {
        let request = req.request("first");
        tokio::pin!(request);
        tokio::select! {
            r = &mut request => panic!("the first request ended: {r:?}"),
            first = rep.recv() => first.unwrap(),
        }
        // The request future is dropped here: cancelled while in flight.
    };
    stale_reply_is_not_delivered_to_the_slot_reuser(&req, &mut rep, first).await;
}

#[tokio::test(start_paused = true)]
async fn many_slot_reuses_each_get_their_own_reply() {
    // A slot taken and freed many times: every request in it answered
    // after the stale replies of all earlier ones.
    let (req, mut rep) = pair("reuse").await;
    let mut stale = Vec::new();
    for i in 0..20 {
        let payload = format!("request {i}");
        let (result, request) = tokio::join!(
            req.request_timeout(payload.clone(), Duration::from_millis(100)),
            async { rep.recv().await.unwrap() }
        );
        assert!(matches!(result, Err(ReqError::Timeout)), "{result:?}");
        assert_eq!(request.payload(), payload.as_str());
        stale.push(request);
    }
    let (result, ()) = tokio::join!(req.request("last"), async {
        let last = rep.recv().await.unwrap();
        for request in stale {
            request.reply("stale").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        last.reply("fresh").await.unwrap();
    });
    assert_eq!(result.unwrap(), "fresh");
}

#[tokio::test(start_paused = true)]
async fn a_shorter_deadline_fires_on_time_behind_a_longer_one() {
    let (req, mut rep) = pair("rearm").await;
    // The Rep takes requests and never answers.
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(r) = rep.recv().await {
            held.push(r);
        }
    });
    let start = Instant::now();
    let long = req.request_timeout("long", Duration::from_secs(60));
    let short = async {
        // Starts after the long one, so the sweeper is already armed for a
        // later deadline when this one comes in.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let r = req.request_timeout("short", Duration::from_secs(1)).await;
        (r, start.elapsed())
    };
    let (long, (short, short_at)) = tokio::join!(long, short);
    assert!(matches!(short, Err(ReqError::Timeout)), "{short:?}");
    let expected = Duration::from_millis(1010);
    assert!(
        short_at >= expected && short_at <= expected + Duration::from_millis(2),
        "the short request timed out after {short_at:?}, expected {expected:?}"
    );
    assert!(matches!(long, Err(ReqError::Timeout)), "{long:?}");
    let long_at = start.elapsed();
    assert!(
        long_at >= Duration::from_secs(60) && long_at <= Duration::from_millis(60_002),
        "the long request timed out after {long_at:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn deadlines_in_any_order_each_fire_on_time() {
    // No peer at all: every request waits for a connection until its own
    // deadline, whatever order the deadlines come in.
    let req = ReqSocket::with_options(opts()).unwrap();
    let start = Instant::now();
    let secs = [7u64, 3, 9, 1, 5, 2];
    let results = futures::future::join_all(secs.iter().map(|&s| {
        let req = &req;
        async move {
            let r = req
                .request_timeout(format!("{s}"), Duration::from_secs(s))
                .await;
            (s, r, start.elapsed())
        }
    }))
    .await;
    for (s, r, at) in results {
        assert!(matches!(r, Err(ReqError::Timeout)), "{s}s: {r:?}");
        let expected = Duration::from_secs(s);
        assert!(
            at >= expected && at <= expected + Duration::from_millis(2),
            "{s}s deadline fired after {at:?}"
        );
    }
}

#[test]
fn deadlines_still_fire_after_the_runtime_that_started_the_sweeper_is_gone() {
    let req = ReqSocket::with_options(opts()).unwrap();
    // The first request starts the socket's sweeper on this runtime, which
    // is then dropped with it.
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = first.block_on(req.request_timeout("first", Duration::from_millis(20)));
    assert!(matches!(r, Err(ReqError::Timeout)), "{r:?}");
    drop(first);

    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            req.request_timeout("second", Duration::from_millis(20)),
        )
        .await
        .expect("the request's deadline never fired");
        assert!(matches!(r, Err(ReqError::Timeout)), "{r:?}");
    });
}
