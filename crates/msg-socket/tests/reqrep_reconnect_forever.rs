//! Reconnecting forever by default: with the default backoff policy a
//! socket connecting to nothing keeps trying for hours of virtual time,
//! every delay within the documented cap, never giving up; when a server
//! finally appears, it connects and works.

use std::time::Duration;

use futures::StreamExt;
use msg_socket::{RepSocket, ReqSocket, SocketEvent, SocketEvents};
use tokio::time::Instant;

/// The documented defaults: 100 ms doubling up to 10 s, each delay
/// shortened by up to half.
const INITIAL: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(10);
const JITTER: f64 = 0.5;

/// Far past any give-up limit one might have built in by accident.
const ATTEMPTS: u32 = 1_000;

async fn next(events: &mut SocketEvents) -> (Instant, SocketEvent) {
    let ev = tokio::time::timeout(Duration::from_secs(3600), events.next())
        .await
        .expect("no event within a virtual hour: the socket stopped trying")
        .expect("events");
    (Instant::now(), ev)
}

#[tokio::test(start_paused = true)]
async fn with_default_options_a_socket_retries_for_hours_then_connects() {
    let name = format!("inproc://reconnect-forever-{}", std::process::id());
    let req = ReqSocket::new();
    let mut events = req.events();
    let started = Instant::now();
    req.connect(&name).unwrap();

    let (mut failed_at, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::ConnectFailed { .. }), "{ev:?}");
    let mut capped = 0;
    for n in 1..=ATTEMPTS {
        let (_, ev) = next(&mut events).await;
        let SocketEvent::Reconnecting { attempt, delay, .. } = ev else {
            panic!("attempt {n}: expected Reconnecting, got {ev:?}");
        };
        assert_eq!(attempt, n, "failed attempts in a row");
        let base = INITIAL.checked_mul(1 << (n - 1).min(16)).unwrap().min(MAX);
        assert!(
            delay <= base && delay >= base.mul_f64(1.0 - JITTER),
            "retry {n}: {delay:?} outside [{:?}, {base:?}]",
            base.mul_f64(1.0 - JITTER)
        );
        if base == MAX {
            capped += 1;
        }
        let (at, ev) = next(&mut events).await;
        assert!(matches!(ev, SocketEvent::ConnectFailed { .. }), "{ev:?}");
        // The socket really waited that long (rounded up to the timer's
        // millisecond), and no longer.
        let slept = at - failed_at;
        assert!(
            slept >= delay && slept <= delay + Duration::from_millis(1),
            "retry {n}: slept {slept:?} for {delay:?}"
        );
        failed_at = at;
    }
    let trying_for = started.elapsed();
    assert!(
        trying_for > Duration::from_secs(3600),
        "only {trying_for:?} of trying"
    );
    assert!(capped > ATTEMPTS - 10, "the delays never reached the cap");
    // One per Reconnecting event, the one announced after the last failure
    // included.
    assert_eq!(req.stats().reconnects, u64::from(ATTEMPTS) + 1);

    // A server appears: the next attempt, at most the cap later, connects.
    let rep = RepSocket::new();
    rep.bind(&name).await.unwrap();
    let appeared = Instant::now();
    loop {
        match next(&mut events).await {
            (at, SocketEvent::Connected { .. }) => {
                assert!(at - appeared <= MAX, "connected {:?} later", at - appeared);
                break;
            }
            (_, SocketEvent::Reconnecting { .. }) => {}
            (_, other) => panic!("unexpected {other:?}"),
        }
    }
    tokio::spawn(rep.serve(1, |payload, _| async move { payload }));
    assert_eq!(req.request("at last").await.unwrap(), "at last");
}
