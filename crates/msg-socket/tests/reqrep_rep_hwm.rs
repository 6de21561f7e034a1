//! A Rep that does not read holds at most `recv_hwm` requests (and
//! `recv_hwm_bytes`); past that its connections stop reading, so clients
//! feel backpressure, and nothing is dropped: once the Rep reads again,
//! every request is answered, each exactly once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use msg_socket::{RepSocket, ReqSocket, Request, SocketOptions};

fn inproc_name(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "inproc://reqrep-hwm-{what}-{}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Takes every request already waiting in the socket, without letting any
/// other task run (so nothing new can come in meanwhile).
fn drain_waiting(rep: &mut RepSocket) -> Vec<Request> {
    let mut out = Vec::new();
    while out.len() < 10_000 {
        match rep.recv().now_or_never() {
            Some(Some(r)) => out.push(r),
            _ => break,
        }
    }
    out
}

struct Run {
    clients: usize,
    per_client: usize,
    payload: usize,
    stall: Duration,
}

/// Clients fire all their requests at a Rep that does not read for
/// `stall`; returns how many requests were waiting in the Rep at the end of
/// the stall and how many it had read off its connections by then.
async fn stall_then_serve(rep_opts: SocketOptions, run: Run) -> (usize, u64) {
    let name = inproc_name("stall");
    let mut rep = RepSocket::with_options(rep_opts).unwrap();
    rep.bind(&name).await.unwrap();
    let mut o = SocketOptions::new();
    o.request_timeout(Duration::from_secs(600));
    let reqs: Vec<ReqSocket> = (0..run.clients)
        .map(|_| {
            let req = ReqSocket::with_options(o.clone()).unwrap();
            req.connect(&name).unwrap();
            req
        })
        .collect();

    let requests = futures::future::join_all(reqs.iter().enumerate().flat_map(|(k, req)| {
        (0..run.per_client).map(move |n| async move {
            let mut payload = format!("{k}-{n}-").into_bytes();
            payload.resize(run.payload, b'.');
            let reply = req.request(payload.clone()).await;
            (payload, reply)
        })
    }));

    let server = async {
        tokio::time::sleep(run.stall).await;
        let waiting = drain_waiting(&mut rep);
        let held = waiting.len();
        let read_off = rep.stats().msgs_received;
        let total = run.clients * run.per_client;
        let mut seen = HashSet::new();
        let mut served = 0;
        for r in waiting {
            assert!(seen.insert(r.payload().clone()));
            let answer = r.payload().clone();
            r.reply(answer).await.unwrap();
            served += 1;
        }
        while served < total {
            let r = rep.recv().await.unwrap();
            assert!(seen.insert(r.payload().clone()), "a request came twice");
            let answer = r.payload().clone();
            r.reply(answer).await.unwrap();
            served += 1;
        }
        (held, read_off)
    };
    let (results, (held, read_off)) = tokio::join!(requests, server);
    for (payload, reply) in results {
        assert_eq!(reply.expect("request lost"), payload);
    }
    for req in &reqs {
        assert_eq!(req.stats().requests, run.per_client as u64);
        assert_eq!(req.stats().reconnects, 0, "a connection dropped");
    }
    (held, read_off)
}

#[tokio::test(start_paused = true)]
async fn rep_holds_at_most_recv_hwm_requests_and_loses_none() {
    const HWM: usize = 4;
    let mut o = SocketOptions::new();
    o.recv_hwm(HWM);
    let clients = 3;
    let (held, read_off) = stall_then_serve(
        o,
        Run {
            clients,
            per_client: 40,
            payload: 32,
            // Longer than the heartbeat timeout: the connections survive a
            // Rep that does not read.
            stall: Duration::from_secs(40),
        },
    )
    .await;
    assert_eq!(held, HWM, "requests waiting in the Rep at its mark");
    // Past the mark the Rep stops reading: it took no more off the
    // connections than its queue and one request per connection (the one
    // each connection holds while it waits for room).
    assert!(
        read_off <= (HWM + clients) as u64,
        "read {read_off} requests off the connections while stalled"
    );
}

#[tokio::test(start_paused = true)]
async fn rep_holds_at_most_recv_hwm_bytes_of_requests_and_loses_none() {
    let mut o = SocketOptions::new();
    o.recv_hwm_bytes(100);
    let (held, read_off) = stall_then_serve(
        o,
        Run {
            clients: 2,
            per_client: 30,
            payload: 30,
            stall: Duration::from_secs(2),
        },
    )
    .await;
    // Three 30-byte requests fit under 100 bytes; a fourth would not.
    assert_eq!(held, 3);
    assert!(read_off <= 3 + 2, "read {read_off} while stalled");
}
