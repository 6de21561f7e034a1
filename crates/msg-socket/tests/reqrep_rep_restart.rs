//! A Rep restarted on the same endpoint while a Req keeps requesting:
//! requests during the gap time out or fail with `ConnectionLost`, none is
//! answered twice or re-sent, and requests succeed again after the Req
//! reconnects.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use msg_socket::{RepSocket, ReqError, ReqSocket, SocketOptions};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Answered(String),
    Timeout,
    Lost,
}

type Log = Arc<Mutex<Vec<String>>>;

/// Answers `"<tag>:<payload>"` until told to stop, logging every request it
/// receives; hands the socket back for a proper `close`.
fn serve(
    mut rep: RepSocket,
    tag: &'static str,
    log: Log,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<RepSocket>) {
    let (stop_tx, mut stop) = oneshot::channel();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stop => return rep,
                r = rep.recv() => {
                    let r = r.expect("rep closed");
                    let payload = String::from_utf8(r.payload().to_vec()).unwrap();
                    log.lock().unwrap().push(payload.clone());
                    let _ = r.reply(format!("{tag}:{payload}")).await;
                }
            }
        }
    });
    (stop_tx, task)
}

async fn next_outcome(results: &mut mpsc::Receiver<(u32, Outcome)>) -> (u32, Outcome) {
    tokio::time::timeout(Duration::from_secs(20), results.recv())
        .await
        .expect("no request finished within 20 s")
        .expect("requester stopped")
}

async fn restart_while_requesting(server: SocketOptions, client: SocketOptions, bind: &str) {
    let (log1, log2): (Log, Log) = (Arc::default(), Arc::default());
    let rep = RepSocket::with_options(server.clone()).unwrap();
    let bound = rep.bind(bind).await.unwrap();
    // The same endpoint again, with the real port.
    let endpoint = bound.to_string();
    let (stop1, gen1) = serve(rep, "gen1", log1.clone());

    let mut opts = client;
    // Short enough to see the gap quickly, long enough that a loaded machine
    // does not time out a request to a live Rep.
    common::quick(&mut opts).request_timeout(Duration::from_secs(1));
    let req = ReqSocket::with_options(opts).unwrap();
    req.connect(&endpoint).unwrap();

    // One request after the other, for as long as the test wants.
    let (results_tx, mut results) = mpsc::channel(16);
    let requester = tokio::spawn(async move {
        for n in 0..100_000u32 {
            let outcome = match req.request(n.to_string()).await {
                Ok(reply) => Outcome::Answered(String::from_utf8(reply.to_vec()).unwrap()),
                Err(ReqError::Timeout) => Outcome::Timeout,
                Err(ReqError::ConnectionLost) => Outcome::Lost,
                Err(e) => panic!("request {n}: unexpected {e}"),
            };
            if results_tx.send((n, outcome)).await.is_err() {
                break;
            }
        }
    });

    let mut outcomes = Vec::new();
    // Served by the first Rep.
    while outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Answered(a) if a.starts_with("gen1:")))
        .count()
        < 5
    {
        outcomes.push(next_outcome(&mut results).await);
    }

    // Stop and close the first Rep.
    stop1.send(()).unwrap();
    let rep = gen1.await.unwrap();
    rep.close(Duration::from_millis(100)).await;
    // Wait until the gap shows: a request made while no Rep was there
    // timed out (the one in flight at the close, if any, was lost).
    loop {
        let o = next_outcome(&mut results).await;
        let timed_out = o.1 == Outcome::Timeout;
        outcomes.push(o);
        if timed_out {
            break;
        }
    }

    // A new Rep on the same endpoint.
    let rep = RepSocket::with_options(server).unwrap();
    let rebound = rep.bind(&endpoint).await.unwrap();
    assert_eq!(rebound.to_string(), endpoint);
    let (_stop2, _gen2) = serve(rep, "gen2", log2.clone());
    while outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Answered(a) if a.starts_with("gen2:")))
        .count()
        < 5
    {
        outcomes.push(next_outcome(&mut results).await);
    }
    drop(results);
    requester.await.unwrap();

    // The story, in order: gen1 answers, failures, gen2 answers.
    let phase = |o: &Outcome| match o {
        Outcome::Answered(a) if a.starts_with("gen1:") => 0,
        Outcome::Timeout | Outcome::Lost => 1,
        Outcome::Answered(_) => 2,
    };
    let phases: Vec<u8> = outcomes.iter().map(|(_, o)| phase(o)).collect();
    assert!(
        phases.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {outcomes:?}"
    );
    // Every answer is to its own request.
    for (n, o) in &outcomes {
        if let Outcome::Answered(a) = o {
            assert_eq!(a.split_once(':').unwrap().1, n.to_string());
        }
    }
    // No request reached a Rep twice: nothing was re-sent, not even across
    // the restart.
    let (log1, log2) = (log1.lock().unwrap(), log2.lock().unwrap());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for p in log1.iter().chain(log2.iter()) {
        *seen.entry(p).or_default() += 1;
    }
    assert!(
        seen.values().all(|&c| c == 1),
        "a request arrived twice: {seen:?}"
    );
    // A request that failed in the gap never reached the new Rep: it was
    // not retried behind the caller's back.
    for (n, o) in &outcomes {
        if matches!(o, Outcome::Timeout | Outcome::Lost) {
            assert!(
                !log2.contains(&n.to_string()),
                "request {n} failed ({o:?}) yet reached the new Rep"
            );
        }
    }
    let failures = phases.iter().filter(|p| **p == 1).count();
    assert!(failures >= 1);
}

#[tokio::test]
async fn rep_restarted_on_the_same_tcp_port_while_req_keeps_requesting() {
    let s = common::setup("tcp");
    restart_while_requesting(s.server.clone(), s.client.clone(), &s.bind).await;
}

#[tokio::test]
async fn rep_restarted_on_the_same_ipc_path_while_req_keeps_requesting() {
    let s = common::setup("ipc");
    restart_while_requesting(s.server.clone(), s.client.clone(), &s.bind).await;
}
