//! Many requests in flight at once from one Req socket, answered out of
//! order, each reply matched to its own request, over every transport.

use crate::common;

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use msg_socket::{RepSocket, ReqSocket};

const REQUESTS: usize = 1_000;

/// A deterministic permutation of `0..n` (seeded), so the Rep answers in an
/// order that is neither the arrival order nor its reverse.
fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    msg_testkit::Rng::new(0x9e37_79b9_7f4a_7c15).shuffle(&mut order);
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_pipelined_requests_answered_out_of_order_over_every_transport() {
    for s in common::setups() {
        let name = s.name;
        let mut rep = RepSocket::with_options(s.server.clone()).unwrap();
        let bound = rep.bind(&s.bind).await.unwrap();

        // The Rep holds every request before it answers any: all 1,000 were
        // in flight at once. Then it answers in a shuffled order.
        let server = tokio::spawn(async move {
            let mut held = Vec::with_capacity(REQUESTS);
            while held.len() < REQUESTS {
                held.push(rep.recv().await.expect("rep closed early"));
            }
            let arrival: Vec<Vec<u8>> = held.iter().map(|r| r.payload().to_vec()).collect();
            let mut slots: Vec<Option<_>> = held.into_iter().map(Some).collect();
            let mut answered = Vec::with_capacity(REQUESTS);
            for i in shuffled(REQUESTS) {
                let request = slots[i].take().unwrap();
                let payload = request.payload().clone();
                answered.push(payload.to_vec());
                let mut answer = b"reply:".to_vec();
                answer.extend_from_slice(&payload);
                request.reply(answer).await.expect("reply");
            }
            (arrival, answered, rep)
        });

        let mut opts = s.client.clone();
        opts.request_timeout(Duration::from_secs(30));
        let req = ReqSocket::with_options(opts).unwrap();
        req.connect(&bound.to_string()).unwrap();

        let mut in_flight: FuturesUnordered<_> = (0..REQUESTS)
            .map(|n| {
                let req = &req;
                async move { (n, req.request(format!("request-{n}")).await) }
            })
            .collect();
        let mut seen = vec![false; REQUESTS];
        let mut reply_order = Vec::with_capacity(REQUESTS);
        while let Some((n, reply)) = in_flight.next().await {
            let reply = reply.unwrap_or_else(|e| panic!("{name}: request {n}: {e}"));
            assert_eq!(
                reply,
                format!("reply:request-{n}").as_bytes(),
                "{name}: reply matched to the wrong request"
            );
            assert!(!seen[n], "{name}: request {n} answered twice");
            seen[n] = true;
            reply_order.push(n);
        }
        assert!(seen.iter().all(|s| *s), "{name}: a request got no reply");

        let (arrival, answered, _rep) = server.await.unwrap();
        assert_ne!(
            arrival, answered,
            "{name}: the Rep answered in arrival order"
        );
        assert_ne!(
            reply_order,
            (0..REQUESTS).collect::<Vec<_>>(),
            "{name}: replies came back in request order"
        );
        assert_eq!(req.stats().requests, REQUESTS as u64, "{name}");
    }
}
