//! What Push/Pull, Dealer/Router and Pair promise beyond a round trip, on
//! real sockets: high-water marks (wait, `Full`, parking before the first
//! peer), round-robin that skips a full peer, fair queueing, close and
//! linger, routing errors, identities, reconnects and refused pairings.

use crate::common::{self, quick};

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use msg_socket::{
    DealerSocket, Message, PairSocket, PubSocket, PullSocket, PushSocket, ReqError, ReqSocket,
    RouteError, RouterSocket, SendError, SocketEvent, SocketOptions, SubSocket,
};
use msg_testkit::next_matching;

const WAIT: Duration = Duration::from_secs(10);

fn options() -> SocketOptions {
    let mut opts = SocketOptions::new();
    quick(&mut opts);
    opts
}

fn tcp() -> &'static str {
    "tcp://127.0.0.1:0"
}

async fn next<S: futures::Stream + Unpin>(stream: &mut S, what: &str) -> S::Item {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} in time"))
        .unwrap_or_else(|| panic!("the socket closed before {what}"))
}

/// Polls `future` once: whether it is still waiting.
fn pending<F: std::future::Future + Unpin>(future: &mut F) -> bool {
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    std::pin::Pin::new(future).poll(&mut cx).is_pending()
}

#[tokio::test]
async fn push_queues_up_to_its_mark_before_any_peer_then_waits_then_delivers_all() {
    let mut opts = options();
    opts.send_hwm(4);
    let push = PushSocket::with_options(opts).unwrap();
    let bound = push.bind(tcp()).await.unwrap();
    for n in 0..4u8 {
        push.try_send(vec![n]).unwrap();
    }
    assert!(
        matches!(push.try_send(vec![4]), Err(SendError::Full)),
        "the fifth is over the mark"
    );
    let mut fifth = Box::pin(push.send(vec![4]));
    assert!(pending(&mut fifth), "send waits while the queue is full");

    let mut pull = PullSocket::with_options(options()).unwrap();
    pull.connect(&bound.to_string()).unwrap();
    tokio::time::timeout(WAIT, fifth)
        .await
        .expect("the waiting send went on once a peer came")
        .unwrap();
    for n in 0..5u8 {
        assert_eq!(next(&mut pull, "a parked message").await, [n].as_slice());
    }
    assert_eq!(push.stats().msgs_sent, 5);
}

#[tokio::test]
async fn closing_a_push_with_no_peer_reports_every_message_it_kept() {
    let push = PushSocket::with_options(options()).unwrap();
    push.try_send("one").unwrap();
    push.try_send(Message::from_parts(["two", "parts"]))
        .unwrap();
    let report = push.close(Duration::from_millis(50)).await;
    assert!(!report.is_complete());
    // Three frames: one, then a Part and its final frame.
    assert_eq!(report.undelivered_frames, 3, "{report:?}");
    assert!(report.undelivered_bytes >= 11, "{report:?}");
}

#[tokio::test]
async fn push_skips_a_peer_that_does_not_read_and_try_send_is_full_when_all_are() {
    let mut opts = options();
    opts.send_hwm(2);
    let push = PushSocket::with_options(opts).unwrap();
    let bound = push.bind(tcp()).await.unwrap();
    let mut pull_opts = options();
    pull_opts.recv_hwm(1);
    // One puller never reads; the other counts what it gets.
    let stalled = PullSocket::with_options(pull_opts.clone()).unwrap();
    stalled.connect(&bound.to_string()).unwrap();
    let mut reader = PullSocket::with_options(pull_opts).unwrap();
    reader.connect(&bound.to_string()).unwrap();
    assert!(push.wait_for_peers(2, WAIT).await);

    let big = Bytes::from(vec![7u8; 64 * 1024]);
    let got = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let counting = {
        let got = got.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return reader,
                    m = reader.next() => {
                        m.expect("reader open");
                        got.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        })
    };
    // 64 MiB in all. Strict round-robin would hang on the stalled peer once
    // its socket buffers are full (far below its half, 32 MiB); skipping
    // it, every send goes through and the reader gets most of them.
    const SENDS: u32 = 1000;
    tokio::time::timeout(WAIT * 3, async {
        for _ in 0..SENDS {
            push.send(big.clone()).await.unwrap();
        }
    })
    .await
    .expect("push never waited on the stalled peer for good");
    tokio::time::timeout(WAIT, async {
        while got.load(std::sync::atomic::Ordering::Relaxed) <= SENDS / 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the reading puller got more than its round-robin half");
    stop.send(()).unwrap();
    let reader = counting.await.unwrap();

    // Now nobody reads: the queues fill, and try_send says so at once.
    let mut taken = 0u32;
    let full = loop {
        match push.try_send(big.clone()) {
            Ok(()) => taken += 1,
            Err(SendError::Full) => break true,
            Err(e) => panic!("{e}"),
        }
        if taken > 10_000 {
            break false;
        }
        tokio::task::yield_now().await;
    };
    assert!(full, "try_send never reported Full");
    assert_eq!(push.stats().dropped_hwm, 0);
    assert_eq!(push.stats().msgs_sent, u64::from(SENDS + taken));
    drop((stalled, reader));
}

#[tokio::test]
async fn pull_serves_a_quiet_pusher_beside_a_busy_one() {
    let mut opts = options();
    opts.recv_hwm(8);
    let mut pull = PullSocket::with_options(opts).unwrap();
    let bound = pull.bind(tcp()).await.unwrap();
    let busy = PushSocket::with_options(options()).unwrap();
    busy.connect(&bound.to_string()).unwrap();
    let quiet = PushSocket::with_options(options()).unwrap();
    quiet.connect(&bound.to_string()).unwrap();
    assert!(pull.wait_for_peers(2, WAIT).await);

    // The busy pusher has thousands queued before the quiet one sends.
    for _ in 0..5000 {
        busy.send("busy").await.unwrap();
    }
    for _ in 0..20 {
        quiet.send("quiet").await.unwrap();
    }
    // Wait until both connections have filled their share of the inbox.
    tokio::time::timeout(WAIT, async {
        while pull.stats().msgs_received < 16 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("both connections delivered");

    // Taken in turn: the quiet pusher's 20 come within the first 60, not
    // after the busy one's 5,000.
    let mut quiet_seen = 0;
    for taken in 1..=60 {
        if next(&mut pull, "a message").await == "quiet" {
            quiet_seen += 1;
        }
        if quiet_seen == 20 {
            assert!(taken <= 60);
            return;
        }
    }
    panic!("only {quiet_seen} of the quiet pusher's 20 came in the first 60");
}

#[tokio::test]
async fn a_router_says_why_a_message_cannot_go_and_the_peers_are_untouched() {
    let mut router = RouterSocket::with_options(options()).unwrap();
    let bound = router.bind(tcp()).await.unwrap();
    let mut req_opts = options();
    req_opts.identity("req-1");
    let req = ReqSocket::with_options(req_opts).unwrap();
    req.connect(&bound.to_string()).unwrap();
    let mut dealer_opts = options();
    dealer_opts.identity("dealer-1");
    let dealer = DealerSocket::with_options(dealer_opts).unwrap();
    dealer.connect(&bound.to_string()).unwrap();
    assert!(router.wait_for_peers(2, WAIT).await);
    let mut ids = router.peer_identities();
    ids.sort();
    assert_eq!(ids, ["dealer-1", "req-1"]);

    // A REQ peer takes only replies to its requests.
    let err = router.send_to("req-1", "unasked").await.unwrap_err();
    assert!(matches!(err, RouteError::NotARequest), "{err:?}");
    // A multipart reply to a single-part request comes back whole, in the
    // error; request_message takes multipart both ways.
    let asking = tokio::spawn(async move { (req.request("q").await, req) });
    let (route, question) = next(&mut router, "the request").await;
    assert_eq!(question, "q");
    assert_eq!(route.identity(), "req-1");
    router
        .send_to(&route, Message::from_parts(["two", "parts"]))
        .await
        .unwrap();
    let (reply, req) = asking.await.unwrap();
    match reply {
        Err(ReqError::MultipartReply(m)) => assert_eq!(m, Message::from_parts(["two", "parts"])),
        other => panic!("{other:?}"),
    }
    // One answer per request: a second is an error, not a reply the REQ
    // peer would drop.
    let err = router.send_to(&route, "twice").await.unwrap_err();
    assert!(matches!(err, RouteError::AlreadyAnswered), "{err:?}");
    let asking = tokio::spawn(async move { (req.request_message(["q1", "q2"]).await, req) });
    let (route, question) = next(&mut router, "the multipart request").await;
    assert_eq!(question, Message::from_parts(["q1", "q2"]));
    router
        .send_to(&route, Message::from_parts(["a1", "a2", "a3"]))
        .await
        .unwrap();
    let (reply, req) = asking.await.unwrap();
    assert_eq!(reply.unwrap(), Message::from_parts(["a1", "a2", "a3"]));

    // A departed peer is unreachable, never a silent drop.
    drop(dealer);
    tokio::time::timeout(WAIT, async {
        while router.peers() > 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the dealer's departure was noticed");
    let err = router.try_send_to("dealer-1", "gone").unwrap_err();
    assert!(
        matches!(&err, RouteError::Unreachable(id) if id == "dealer-1"),
        "{err:?}"
    );
    assert!(err.to_string().contains("dealer-1"), "{err}");
    drop(req);
}

#[tokio::test]
async fn a_newer_connection_with_the_same_identity_takes_over_the_route() {
    let router = RouterSocket::with_options(options()).unwrap();
    let bound = router.bind(tcp()).await.unwrap();
    let mut opts = options();
    opts.identity("worker");
    let mut old = DealerSocket::with_options(opts.clone()).unwrap();
    let mut old_events = old.events();
    old.connect(&bound.to_string()).unwrap();
    assert!(router.wait_for_peers(1, WAIT).await);
    let mut new = DealerSocket::with_options(opts).unwrap();
    new.connect(&bound.to_string()).unwrap();
    let reason = next_matching(&mut old_events, |e| match e {
        SocketEvent::Disconnected { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert!(reason.contains("newer connection"), "{reason}");
    // The old one reconnects, and the newest wins again: whichever holds
    // the route now gets the message, and only one of them.
    router.send_to("worker", "hello").await.unwrap();
    let got = tokio::time::timeout(WAIT, async {
        tokio::select! {
            m = new.next() => m,
            m = old.next() => m,
        }
    })
    .await
    .expect("one of them got it");
    assert_eq!(got.unwrap(), "hello");
}

#[tokio::test]
async fn a_pusher_reconnects_to_a_restarted_puller_and_delivers_what_waited() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("ipc://{}", dir.path().join("pull.sock").display());
    let mut pull = PullSocket::with_options(options()).unwrap();
    pull.bind(&endpoint).await.unwrap();
    let push = PushSocket::with_options(options()).unwrap();
    let mut events = push.events();
    push.connect(&endpoint).unwrap();
    push.send("before").await.unwrap();
    assert_eq!(next(&mut pull, "the first message").await, "before");

    pull.close(Duration::ZERO).await;
    next_matching(&mut events, |e| match e {
        SocketEvent::Disconnected { .. } => Some(()),
        _ => None,
    })
    .await;
    // With no peer, these wait in the pusher.
    push.send("while away 1").await.unwrap();
    push.send("while away 2").await.unwrap();
    let mut pull = PullSocket::with_options(options()).unwrap();
    pull.bind(&endpoint).await.unwrap();
    assert_eq!(next(&mut pull, "a waiting message").await, "while away 1");
    assert_eq!(next(&mut pull, "a waiting message").await, "while away 2");
    assert!(push.stats().reconnects >= 1);
}

#[tokio::test]
async fn pull_and_push_keep_stats_and_report_their_peers() {
    let mut pull = PullSocket::with_options(options()).unwrap();
    let mut pull_events = pull.events();
    let bound = pull.bind(tcp()).await.unwrap();
    let mut opts = options();
    opts.identity("pusher-7");
    let push = PushSocket::with_options(opts).unwrap();
    push.connect(&bound.to_string()).unwrap();
    let identity = next_matching(&mut pull_events, |e| match e {
        SocketEvent::Connected { identity, .. } => Some(identity),
        _ => None,
    })
    .await;
    assert_eq!(identity, "pusher-7");
    for _ in 0..10 {
        push.send(Message::from_parts(["a", "bc"])).await.unwrap();
    }
    for _ in 0..10 {
        next(&mut pull, "a message").await;
    }
    let (sent, received) = (push.stats(), pull.stats());
    assert_eq!(sent.msgs_sent, 10);
    assert_eq!(received.msgs_received, 10);
    assert_eq!(sent.active_peers, 1);
    assert!(received.bytes_received >= 30);
}

/// Binds a `$server`, connects a `$client` to it, and checks both refuse
/// the pairing, naming both types.
macro_rules! refused {
    ($name:ident: $server:ty, $client:ty, $theirs:literal, $ours:literal) => {
        #[tokio::test(start_paused = true)]
        async fn $name() {
            let server = <$server>::new();
            let mut server_events = server.events();
            let bound = server
                .bind(&common::inproc(stringify!($name)))
                .await
                .unwrap();
            let client = <$client>::new();
            let mut client_events = client.events();
            client.connect(&bound.to_string()).unwrap();
            for events in [&mut client_events, &mut server_events] {
                let error = next_matching(events, |e| match e {
                    SocketEvent::HandshakeFailed { error, .. } => Some(error),
                    SocketEvent::Connected { .. } => panic!("an incompatible pair connected"),
                    _ => None,
                })
                .await;
                assert!(error.contains("incompatible"), "{error}");
                assert!(error.contains($theirs) && error.contains($ours), "{error}");
            }
            assert_eq!(server.peers(), 0);
            assert_eq!(client.peers(), 0);
        }
    };
}

refused!(push_to_pub_is_refused: PubSocket, PushSocket, "PUSH", "PUB");
refused!(pair_to_pull_is_refused: PullSocket, PairSocket, "PAIR", "PULL");
refused!(router_to_router_is_refused: RouterSocket, RouterSocket, "ROUTER", "ROUTER");
refused!(dealer_to_pull_is_refused: PullSocket, DealerSocket, "DEALER", "PULL");
refused!(push_to_push_is_refused: PushSocket, PushSocket, "PUSH", "PUSH");
refused!(sub_to_pair_is_refused: PairSocket, SubSocket, "SUB", "PAIR");
refused!(req_to_pull_is_refused: PullSocket, ReqSocket, "REQ", "PULL");

#[tokio::test]
async fn a_pair_that_has_its_peer_waits_before_dialling_again() {
    // `a` has its peer (`b` dialled it), and dials `c` as well: each
    // connection to `c` comes up and `a` closes it at once (Occupied).
    let mut a_opts = options();
    a_opts.auth_reject_delay(Duration::from_millis(300));
    let a = PairSocket::with_options(a_opts).unwrap();
    let a_at = a.bind(tcp()).await.unwrap();
    let b = PairSocket::with_options(options()).unwrap();
    b.connect(&a_at.to_string()).unwrap();
    assert!(a.wait_for_peers(1, WAIT).await);
    let c = PairSocket::with_options(options()).unwrap();
    let c_at = c.bind(tcp()).await.unwrap();
    let mut events = a.events();
    a.connect(&c_at.to_string()).unwrap();
    // It waits auth_reject_delay before dialling again, each time, where
    // it redialled at the backoff's 10 ms, ten times a second.
    for _ in 0..2 {
        let delay = next_matching(&mut events, |e| match e {
            SocketEvent::Reconnecting { delay, .. } => Some(delay),
            _ => None,
        })
        .await;
        assert_eq!(delay, Duration::from_millis(300));
    }
    assert_eq!(a.stats().active_peers, 1);
    // The peer it had is still its peer.
    b.send("still paired").await.unwrap();
    let mut a = a;
    assert_eq!(next(&mut a, "b's message").await, "still paired");
}
