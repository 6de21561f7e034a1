//! Who binds and who connects: a Req spreads requests round-robin over every
//! Rep it is connected to; a Req may bind and Reps connect to it; a socket
//! bound to several endpoints serves them all.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use msg_socket::{RepSocket, ReqSocket};

const WAIT: Duration = Duration::from_secs(10);

/// Serves `rep`, answering `"<tag>:<payload>"` and counting what it served.
fn serve_tagged(rep: RepSocket, tag: &'static str) -> Arc<AtomicUsize> {
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(rep.serve(8, move |payload, _peer| {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::Relaxed);
            let mut answer = format!("{tag}:").into_bytes();
            answer.extend_from_slice(&payload);
            answer
        }
    }));
    served
}

#[tokio::test]
async fn requests_spread_round_robin_over_every_connected_rep() {
    let mut served = Vec::new();
    let req = ReqSocket::with_options(common::setup("tcp").client).unwrap();
    for tag in ["a", "b", "c"] {
        let rep = RepSocket::new();
        let bound = rep.bind("tcp://127.0.0.1:0").await.unwrap();
        served.push(serve_tagged(rep, tag));
        req.connect(&bound.to_string()).unwrap();
    }
    assert!(req.wait_for_peers(3, WAIT).await, "three connections");

    // One at a time: strict round-robin gives each Rep exactly a third.
    let mut tags = Vec::new();
    for n in 0..30 {
        let reply = req.request(format!("{n}")).await.unwrap();
        let reply = std::str::from_utf8(&reply).unwrap().to_owned();
        let (tag, echoed) = reply.split_once(':').unwrap();
        assert_eq!(echoed, n.to_string());
        tags.push(tag.to_owned());
    }
    for (i, tag) in ["a", "b", "c"].into_iter().enumerate() {
        let got = served[i].load(Ordering::Relaxed);
        assert_eq!(got, 10, "rep {tag} served {got} of 30");
        assert_eq!(tags.iter().filter(|t| *t == tag).count(), 10);
    }
    // Consecutive requests never hit the same Rep twice in a row.
    assert!(tags.windows(2).all(|w| w[0] != w[1]), "{tags:?}");

    // Pipelined, too: every Rep takes a share and nothing is lost.
    let mut in_flight: FuturesUnordered<_> = (0..300)
        .map(|n| {
            let req = &req;
            async move { req.request(format!("{n}")).await }
        })
        .collect();
    let mut ok = 0;
    while let Some(r) = in_flight.next().await {
        r.unwrap();
        ok += 1;
    }
    assert_eq!(ok, 300);
    let total: usize = served.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    assert_eq!(total, 330);
    for s in &served {
        assert_eq!(s.load(Ordering::Relaxed), 110);
    }
}

#[tokio::test]
async fn req_may_bind_and_reps_connect_to_it() {
    for s in common::setups() {
        let name = s.name;
        // The Req is the server here: it binds and holds the certificates.
        let req = ReqSocket::with_options(s.server.clone()).unwrap();
        let bound = req.bind(&s.bind).await.unwrap();
        let mut served = Vec::new();
        for tag in ["x", "y"] {
            let rep = RepSocket::with_options(s.client.clone()).unwrap();
            rep.connect(&bound.to_string()).unwrap();
            served.push(serve_tagged(rep, tag));
        }
        assert!(req.wait_for_peers(2, WAIT).await, "{name}: two Reps");
        for n in 0..10 {
            let reply = req.request(format!("{n}")).await.unwrap();
            assert!(reply.ends_with(format!(":{n}").as_bytes()), "{name}");
        }
        for s in &served {
            assert_eq!(s.load(Ordering::Relaxed), 5, "{name}");
        }
    }
}

#[tokio::test]
async fn socket_bound_to_two_endpoints_serves_both() {
    let s = common::setup("ipc");
    let rep = RepSocket::with_options(s.server.clone()).unwrap();
    let tcp = rep.bind("tcp://127.0.0.1:0").await.unwrap();
    let ipc = rep.bind(&s.bind).await.unwrap();
    let served = serve_tagged(rep, "rep");

    let over_tcp = ReqSocket::new();
    over_tcp.connect(&tcp.to_string()).unwrap();
    let over_ipc = ReqSocket::new();
    over_ipc.connect(&ipc.to_string()).unwrap();
    for n in 0..5 {
        assert_eq!(
            over_tcp.request(format!("tcp{n}")).await.unwrap(),
            format!("rep:tcp{n}")
        );
        assert_eq!(
            over_ipc.request(format!("ipc{n}")).await.unwrap(),
            format!("rep:ipc{n}")
        );
    }
    assert_eq!(served.load(Ordering::Relaxed), 10);

    // And a Req bound to two endpoints spreads over the Reps behind both.
    let req = ReqSocket::new();
    let a = req.bind("tcp://127.0.0.1:0").await.unwrap();
    let b = req.bind(&format!("{}-req", s.bind)).await.unwrap();
    let mut counts = Vec::new();
    for endpoint in [a, b] {
        let rep = RepSocket::new();
        rep.connect(&endpoint.to_string()).unwrap();
        counts.push(serve_tagged(rep, "r"));
    }
    assert!(req.wait_for_peers(2, WAIT).await);
    for n in 0..8 {
        req.request(format!("{n}")).await.unwrap();
    }
    assert_eq!(counts[0].load(Ordering::Relaxed), 4);
    assert_eq!(counts[1].load(Ordering::Relaxed), 4);
}
