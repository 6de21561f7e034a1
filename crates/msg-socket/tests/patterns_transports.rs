//! Push/Pull, Dealer/Router and Pair over every transport (TCP, IPC, QUIC,
//! TLS, inproc), multipart messages included.

use crate::common::{self, Setup};

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use msg_socket::{
    DealerSocket, Message, PairSocket, PubSocket, PullSocket, PushSocket, RepSocket, ReqSocket,
    RouteError, RouterSocket, SocketEvent, SubSocket,
};

const WAIT: Duration = Duration::from_secs(10);

/// The `n`th message of a test: multipart on every third.
fn numbered(n: u32) -> Message {
    if n % 3 == 0 {
        Message::from_parts([
            Bytes::from(format!("head {n}")),
            Bytes::new(),
            Bytes::from(vec![n as u8; 3000]),
        ])
    } else {
        Message::from(format!("single {n}"))
    }
}

async fn next<S: futures::Stream + Unpin>(stream: &mut S, what: &str) -> S::Item {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} in time"))
        .unwrap_or_else(|| panic!("the socket closed before {what}"))
}

/// A pusher connects to a bound puller; every message arrives whole and in
/// order, multipart ones with every part in place.
async fn push_to_pull(s: Setup) {
    let mut pull = PullSocket::with_options(s.server.clone()).unwrap();
    let bound = pull.bind(&s.bind).await.unwrap();
    let push = PushSocket::with_options(s.client.clone()).unwrap();
    push.connect(&bound.to_string()).unwrap();
    // Sent before the connection is up: parked, then delivered.
    for n in 0..200 {
        push.send(numbered(n)).await.unwrap();
    }
    for n in 0..200 {
        let got = next(&mut pull, "a pushed message").await;
        assert_eq!(got, numbered(n), "{}: message {n}", s.name);
    }
    let report = push.close(WAIT).await;
    assert!(report.is_complete(), "{}: {report:?}", s.name);
    assert_eq!(pull.stats().msgs_received, 200);
}

/// A router serves a REQ and a DEALER at once, and reaches the dealer
/// unprompted; a REP answers a dealer's multipart request.
async fn dealer_and_req_through_router(s: Setup) {
    let mut router = RouterSocket::with_options(s.server.clone()).unwrap();
    let bound = router.bind(&s.bind).await.unwrap();
    let mut dealer_opts = s.client.clone();
    dealer_opts.identity("dealer-1");
    let mut dealer = DealerSocket::with_options(dealer_opts).unwrap();
    dealer.connect(&bound.to_string()).unwrap();
    let req = ReqSocket::with_options(s.client.clone()).unwrap();
    req.connect(&bound.to_string()).unwrap();
    assert!(router.wait_for_peers(2, WAIT).await, "{}", s.name);

    let asking = tokio::spawn(async move { (req.request("from req").await, req) });
    dealer
        .send(Message::from_parts(["env", "from dealer"]))
        .await
        .unwrap();
    for _ in 0..2 {
        let (route, message) = next(&mut router, "a message at the router").await;
        if route.is_request() {
            assert_eq!(message, "from req", "{}", s.name);
            router.send_to(&route, "answer for req").await.unwrap();
        } else {
            assert_eq!(route.identity(), "dealer-1", "{}", s.name);
            assert_eq!(
                message,
                Message::from_parts(["env", "from dealer"]),
                "{}",
                s.name
            );
            router
                .send_to(&route, Message::from_parts(["env", "answer"]))
                .await
                .unwrap();
        }
    }
    let (reply, _req) = asking.await.unwrap();
    assert_eq!(reply.unwrap(), "answer for req", "{}", s.name);
    let got = next(&mut dealer, "the router's answer").await;
    assert_eq!(got, Message::from_parts(["env", "answer"]), "{}", s.name);

    // Unprompted, by identity alone.
    router.send_to("dealer-1", "push").await.unwrap();
    assert_eq!(next(&mut dealer, "an unprompted message").await, "push");
    // An identity no peer has is an error, never a silent drop.
    let err = router.send_to("nobody", "lost?").await.unwrap_err();
    assert!(
        matches!(&err, RouteError::Unreachable(id) if id == "nobody"),
        "{}: {err:?}",
        s.name
    );

    // A dealer drives a REP, multipart requests included.
    let rep = RepSocket::with_options(s.server.clone()).unwrap();
    let bind = if s.name == "inproc" || s.name == "ipc" {
        format!("{}-rep", s.bind)
    } else {
        s.bind.clone()
    };
    let rep_bound = rep.bind(&bind).await.unwrap();
    let mut rep = rep;
    let mut dealer = DealerSocket::with_options(s.client.clone()).unwrap();
    dealer.connect(&rep_bound.to_string()).unwrap();
    dealer
        .send(Message::from_parts(["a", "b", "c"]))
        .await
        .unwrap();
    let request = tokio::time::timeout(WAIT, rep.recv())
        .await
        .expect("a request in time")
        .expect("rep open");
    assert!(request.is_multipart());
    assert_eq!(request.message(), Message::from_parts(["a", "b", "c"]));
    request.reply("abc").await.unwrap();
    assert_eq!(
        next(&mut dealer, "the rep's reply").await,
        "abc",
        "{}",
        s.name
    );

    // A REQ and a REP exchange multipart requests and replies.
    let req = ReqSocket::with_options(s.client.clone()).unwrap();
    req.connect(&rep_bound.to_string()).unwrap();
    let asking = tokio::spawn(async move { req.request_message(["x", "y"]).await });
    let request = tokio::time::timeout(WAIT, rep.recv())
        .await
        .expect("a request in time")
        .expect("rep open");
    let mut answer = request.message();
    answer.push("z");
    request.reply_message(answer).await.unwrap();
    let reply = asking.await.unwrap().unwrap();
    assert_eq!(reply, Message::from_parts(["x", "y", "z"]), "{}", s.name);
}

/// Two pairs talk both ways; a third is refused with the reason and the
/// first two carry on.
async fn pair_has_one_peer(s: Setup) {
    let mut a = PairSocket::with_options(s.server.clone()).unwrap();
    let bound = a.bind(&s.bind).await.unwrap();
    let mut b = PairSocket::with_options(s.client.clone()).unwrap();
    b.connect(&bound.to_string()).unwrap();
    b.send(Message::from_parts(["x", "y"])).await.unwrap();
    assert_eq!(
        next(&mut a, "b's message").await,
        Message::from_parts(["x", "y"])
    );
    a.send("back").await.unwrap();
    assert_eq!(next(&mut b, "a's message").await, "back");

    // A third is turned away in its handshake, with the reason, and never
    // has a connection to lose a message on: what it queued stays queued.
    let intruder = PairSocket::with_options(s.client.clone()).unwrap();
    intruder.try_send("never delivered").unwrap();
    let mut events = intruder.events();
    intruder.connect(&bound.to_string()).unwrap();
    let error = tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await.unwrap() {
                SocketEvent::HandshakeFailed { error, .. } => return error,
                SocketEvent::Connected { .. } => panic!("a second pair connected"),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{}: the intruder was never turned away", s.name));
    assert!(error.contains("one peer already"), "{}: {error}", s.name);
    assert!(error.contains("occupied"), "{}: {error}", s.name);
    assert!(a.refused() >= 1, "{}", s.name);
    assert_eq!(a.peers(), 1, "{}", s.name);
    a.send("still here").await.unwrap();
    assert_eq!(next(&mut b, "a's message after").await, "still here");
    let report = intruder.close(Duration::ZERO).await;
    assert_eq!(report.undelivered_frames, 1, "{}", s.name);

    // Once the peer leaves, the next one is welcome.
    drop(b);
    let c = PairSocket::with_options(s.client.clone()).unwrap();
    c.connect(&bound.to_string()).unwrap();
    c.send("newcomer").await.unwrap();
    assert_eq!(next(&mut a, "the newcomer's message").await, "newcomer");
}

/// Multipart publications arrive whole, beside single-part ones, in
/// sequence order.
async fn multipart_publications(s: Setup) {
    let publisher = PubSocket::with_options(s.server.clone()).unwrap();
    let bound = publisher.bind(&s.bind).await.unwrap();
    let mut sub = SubSocket::with_options(s.client.clone()).unwrap();
    sub.subscribe("t").await;
    sub.connect(&bound.to_string()).unwrap();
    assert!(publisher.wait_for_subscribers(1, WAIT).await, "{}", s.name);
    for n in 0..30 {
        let queued = publisher.publish_message("t", numbered(n)).unwrap();
        assert_eq!(queued, 1, "{}", s.name);
    }
    for n in 0..30u32 {
        let got = next(&mut sub, "a publication").await;
        assert_eq!(got.seq(), u64::from(n) + 1, "{}", s.name);
        assert_eq!(got.is_multipart(), n % 3 == 0, "{}", s.name);
        assert_eq!(got.into_message(), numbered(n), "{}: message {n}", s.name);
    }
}

over_every_transport!(
    push_to_pull,
    dealer_and_req_through_router,
    pair_has_one_peer,
    multipart_publications
);

#[tokio::test]
async fn a_pipeline_spreads_over_workers_and_gathers_fairly() {
    let s = common::setup("tcp");
    // Ventilator (push) -> two workers (pull, then push) -> sink (pull).
    let vent = PushSocket::with_options(s.server.clone()).unwrap();
    let vent_at = vent.bind(&s.bind).await.unwrap();
    let mut sink = PullSocket::with_options(s.server.clone()).unwrap();
    let sink_at = sink.bind(&s.bind).await.unwrap();
    let mut workers = Vec::new();
    for w in 0..2u8 {
        let mut pull = PullSocket::with_options(s.client.clone()).unwrap();
        pull.connect(&vent_at.to_string()).unwrap();
        let push = PushSocket::with_options(s.client.clone()).unwrap();
        push.connect(&sink_at.to_string()).unwrap();
        workers.push(tokio::spawn(async move {
            while let Some(task) = pull.next().await {
                let mut done = task;
                done.push_front(Bytes::from(vec![w]));
                if push.send(done).await.is_err() {
                    break;
                }
            }
        }));
    }
    assert!(vent.wait_for_peers(2, WAIT).await);
    for n in 0..100u32 {
        vent.send(n.to_be_bytes().to_vec()).await.unwrap();
    }
    let mut per_worker = [0u32; 2];
    let mut seen = Vec::new();
    for _ in 0..100 {
        let done = next(&mut sink, "a result").await;
        per_worker[done.first()[0] as usize] += 1;
        seen.push(u32::from_be_bytes(done.last()[..].try_into().unwrap()));
    }
    // Round-robin: each worker got exactly half.
    assert_eq!(per_worker, [50, 50]);
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    for w in workers {
        w.abort();
    }
}
