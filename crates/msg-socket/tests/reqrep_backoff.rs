//! Reconnect backoff on a virtual clock: delays double up to the maximum,
//! jitter only shortens them within its fraction, the socket really waits
//! that long, a lost connection starts over, and the give-up limit counts
//! failed attempts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use msg_socket::{
    BackoffPolicy, RepSocket, ReqError, ReqSocket, SocketEvent, SocketEvents, SocketOptions,
};
use tokio::time::Instant;

fn inproc_name(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "inproc://reqrep-backoff-{what}-{}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The next event that is not `Listening`, with the virtual time it came.
async fn next(events: &mut SocketEvents) -> (Instant, SocketEvent) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(3600), events.next())
            .await
            .expect("no event within an hour of virtual time")
            .expect("event stream ended");
        if !matches!(ev, SocketEvent::Listening(_)) {
            return (Instant::now(), ev);
        }
    }
}

/// Base delay of the n-th retry (1-based) after `initial`, capped at `max`.
fn base(initial: Duration, max: Duration, n: u32) -> Duration {
    (initial * 2u32.pow(n - 1)).min(max)
}

/// The timer wheel rounds a sleep up to the next millisecond.
fn assert_slept(from: Instant, to: Instant, delay: Duration) {
    let slept = to - from;
    assert!(
        slept >= delay && slept <= delay + Duration::from_millis(1),
        "slept {slept:?} for a delay of {delay:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn reconnect_delays_double_up_to_the_max_and_the_socket_waits_them_out() {
    let (initial, max) = (Duration::from_millis(100), Duration::from_millis(1_000));
    let mut o = SocketOptions::new();
    o.reconnect_initial(initial)
        .reconnect_max(max)
        .reconnect_jitter(0.0);
    let req = ReqSocket::with_options(o).unwrap();
    let mut events = req.events();
    req.connect(&inproc_name("nobody")).unwrap();

    let mut delays = Vec::new();
    let (mut failed_at, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::ConnectFailed { .. }), "{ev:?}");
    for n in 1..=8u32 {
        let (at, ev) = next(&mut events).await;
        let SocketEvent::Reconnecting { attempt, delay, .. } = ev else {
            panic!("expected Reconnecting, got {ev:?}");
        };
        assert_eq!(at, failed_at, "announced right after the failure");
        assert_eq!(attempt, n, "failed attempts in a row");
        assert_eq!(delay, base(initial, max, n));
        delays.push(delay.as_millis());
        let (at, ev) = next(&mut events).await;
        assert!(matches!(ev, SocketEvent::ConnectFailed { .. }), "{ev:?}");
        assert_slept(failed_at, at, delay);
        failed_at = at;
    }
    assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
    let (_, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::Reconnecting { attempt: 9, .. }));
    assert_eq!(req.stats().reconnects, 9, "one per Reconnecting event");
}

#[tokio::test(start_paused = true)]
async fn jitter_shortens_each_delay_within_its_fraction() {
    let (initial, max, jitter) = (
        Duration::from_millis(100),
        Duration::from_millis(3_200),
        0.5,
    );
    let mut o = SocketOptions::new();
    o.reconnect_initial(initial)
        .reconnect_max(max)
        .reconnect_jitter(jitter);
    let req = ReqSocket::with_options(o).unwrap();
    let mut events = req.events();
    req.connect(&inproc_name("jitter")).unwrap();

    let (mut failed_at, _) = next(&mut events).await;
    let mut shortened = 0;
    let mut distinct = std::collections::HashSet::new();
    for n in 1..=20u32 {
        let (_, ev) = next(&mut events).await;
        let SocketEvent::Reconnecting { attempt, delay, .. } = ev else {
            panic!("expected Reconnecting, got {ev:?}");
        };
        assert_eq!(attempt, n);
        let base = base(initial, max, n);
        assert!(
            delay <= base && delay >= base.mul_f64(1.0 - jitter),
            "retry {n}: {delay:?} outside [{:?}, {base:?}]",
            base.mul_f64(1.0 - jitter)
        );
        if delay < base {
            shortened += 1;
        }
        if base == max {
            distinct.insert(delay);
        }
        let (at, ev) = next(&mut events).await;
        assert!(matches!(ev, SocketEvent::ConnectFailed { .. }), "{ev:?}");
        assert_slept(failed_at, at, delay);
        failed_at = at;
    }
    assert!(shortened >= 15, "jitter applied to only {shortened} of 20");
    assert!(
        distinct.len() >= 10,
        "capped delays are not spread: {distinct:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn two_sockets_losing_the_same_endpoint_do_not_retry_in_lockstep() {
    let name = inproc_name("herd");
    let mut o = SocketOptions::new();
    o.reconnect_initial(Duration::from_millis(100))
        .reconnect_max(Duration::from_secs(1));
    let a = ReqSocket::with_options(o.clone()).unwrap();
    let b = ReqSocket::with_options(o).unwrap();
    let (mut ea, mut eb) = (a.events(), b.events());
    a.connect(&name).unwrap();
    b.connect(&name).unwrap();
    let mut da = Vec::new();
    let mut db = Vec::new();
    while da.len() < 6 {
        if let (_, SocketEvent::Reconnecting { delay, .. }) = next(&mut ea).await {
            da.push(delay);
        }
    }
    while db.len() < 6 {
        if let (_, SocketEvent::Reconnecting { delay, .. }) = next(&mut eb).await {
            db.push(delay);
        }
    }
    assert_ne!(da, db, "both sockets drew the same jitter");
}

#[tokio::test(start_paused = true)]
async fn give_up_after_three_failed_attempts() {
    let mut o = SocketOptions::new();
    o.reconnect_initial(Duration::from_millis(100))
        .reconnect_jitter(0.0)
        .reconnect_give_up_after(Some(3))
        .request_timeout(Duration::from_secs(5));
    let req = ReqSocket::with_options(o).unwrap();
    let mut events = req.events();
    let name = inproc_name("give-up");
    req.connect(&name).unwrap();

    let mut seen = Vec::new();
    loop {
        let (_, ev) = next(&mut events).await;
        let done = matches!(ev, SocketEvent::GaveUp { .. });
        seen.push(match ev {
            SocketEvent::ConnectFailed { .. } => "failed".to_owned(),
            SocketEvent::Reconnecting { attempt, delay, .. } => {
                format!("retry {attempt} in {}ms", delay.as_millis())
            }
            SocketEvent::GaveUp { endpoint } => {
                assert_eq!(endpoint.to_string(), name);
                "gave up".to_owned()
            }
            other => panic!("unexpected {other:?}"),
        });
        if done {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "failed",
            "retry 1 in 100ms",
            "failed",
            "retry 2 in 200ms",
            "failed",
            "gave up"
        ]
    );
    assert_eq!(req.stats().reconnects, 2);

    // It really stopped: a Rep binding the name now is never reached, and
    // requests time out.
    let rep = RepSocket::new();
    rep.bind(&name).await.unwrap();
    let start = Instant::now();
    assert!(matches!(
        req.request("anyone?").await,
        Err(ReqError::Timeout)
    ));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(rep.peers(), 0);
    assert!(
        tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .is_err(),
        "events after giving up"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_starts_the_backoff_over() {
    let name = inproc_name("lost");
    let mut o = SocketOptions::new();
    o.reconnect_initial(Duration::from_millis(100))
        .reconnect_max(Duration::from_secs(10))
        .reconnect_jitter(0.0)
        .reconnect_give_up_after(Some(2));
    let req = ReqSocket::with_options(o).unwrap();
    let mut events = req.events();
    req.connect(&name).unwrap();

    // Fail once (retry 1 in 100 ms), then connect.
    let (_, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::ConnectFailed { .. }), "{ev:?}");
    let (_, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::Reconnecting { attempt: 1, .. }));
    let rep = RepSocket::new();
    rep.bind(&name).await.unwrap();
    let (_, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::Connected { .. }), "{ev:?}");

    // The Rep goes away: the loss is not a failure, the first delay is
    // `initial` again, and the give-up count starts from zero.
    rep.close(Duration::ZERO).await;
    let (_, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::Disconnected { .. }), "{ev:?}");
    let (_, ev) = next(&mut events).await;
    assert_eq!(
        ev,
        SocketEvent::Reconnecting {
            endpoint: name.parse().unwrap(),
            attempt: 0,
            delay: Duration::from_millis(100),
        }
    );
    // Then one failure (retry in 200 ms), and the second failure in a row
    // gives up.
    let kinds: Vec<String> = {
        let mut v = Vec::new();
        loop {
            let (_, ev) = next(&mut events).await;
            let done = matches!(ev, SocketEvent::GaveUp { .. });
            v.push(match ev {
                SocketEvent::ConnectFailed { .. } => "failed".to_owned(),
                SocketEvent::Reconnecting { attempt, delay, .. } => {
                    format!("retry {attempt} in {}ms", delay.as_millis())
                }
                SocketEvent::GaveUp { .. } => "gave up".to_owned(),
                other => panic!("unexpected {other:?}"),
            });
            if done {
                break v;
            }
        }
    };
    assert_eq!(kinds, ["failed", "retry 1 in 200ms", "failed", "gave up"]);
}

/// A whole `BackoffPolicy` handed to the options sets the schedule: its
/// initial delay, its growth factor, its cap, and its give-up limit, each
/// delay really slept.
#[tokio::test(start_paused = true)]
async fn a_configured_backoff_policy_sets_the_reconnect_schedule() {
    let mut policy = BackoffPolicy::new();
    policy
        .initial_delay(Duration::from_millis(50))
        .multiplier(3.0)
        .max_delay(Duration::from_millis(2_000))
        .jitter(0.0)
        .give_up_after(Some(6));
    let mut o = SocketOptions::new();
    o.reconnect(policy.clone());
    assert_eq!(o.get_reconnect(), &policy);
    let req = ReqSocket::with_options(o).unwrap();
    let mut events = req.events();
    let name = inproc_name("policy");
    req.connect(&name).unwrap();

    let (mut failed_at, ev) = next(&mut events).await;
    assert!(matches!(ev, SocketEvent::ConnectFailed { .. }), "{ev:?}");
    let mut delays = Vec::new();
    loop {
        let (at, ev) = next(&mut events).await;
        match ev {
            SocketEvent::Reconnecting { attempt, delay, .. } => {
                assert_eq!(at, failed_at, "announced right after the failure");
                assert_eq!(attempt as usize, delays.len() + 1);
                delays.push(delay.as_millis());
                let (at, ev) = next(&mut events).await;
                assert!(matches!(ev, SocketEvent::ConnectFailed { .. }), "{ev:?}");
                assert_slept(failed_at, at, delay);
                failed_at = at;
            }
            SocketEvent::GaveUp { endpoint } => {
                assert_eq!(endpoint.to_string(), name);
                assert_eq!(at, failed_at, "gave up at the sixth failure");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // ×3 from 50 ms, capped at 2 s; five retries, six failures, then done.
    assert_eq!(delays, [50, 150, 450, 1_350, 2_000]);
    assert_eq!(req.stats().reconnects, 5);
}

#[test]
fn a_policy_that_shrinks_or_has_no_finite_growth_is_refused() {
    for factor in [0.5, f64::NAN, f64::INFINITY] {
        let mut policy = BackoffPolicy::new();
        policy.multiplier(factor);
        let mut o = SocketOptions::new();
        o.reconnect(policy);
        let err = ReqSocket::with_options(o).unwrap_err();
        assert!(err.to_string().contains("multiplier"), "{factor}: {err}");
    }
    let mut policy = BackoffPolicy::new();
    policy
        .initial_delay(Duration::from_secs(2))
        .max_delay(Duration::from_secs(1));
    let mut o = SocketOptions::new();
    o.reconnect(policy);
    assert!(ReqSocket::with_options(o).is_err(), "initial above max");
}
