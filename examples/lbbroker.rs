//! The load-balancing broker of the zguide, with a Router socket on both
//! sides.
//!
//! ```text
//!   client-1 .. client-5 (REQ)
//!               |
//!     frontend: ROUTER (binds tcp://)
//!            broker         queue of ready workers: [worker-2, worker-3, ...]
//!     backend:  ROUTER (binds ipc://)
//!               |
//!   worker-1 .. worker-3 (DEALER), each says "READY" first
//! ```
//!
//! The broker keeps a queue of the workers that are ready. It takes a
//! client request only while a worker is ready, hands it to the worker that
//! has waited longest, with the client's [`Route`] as an envelope part in
//! front of the request, and the worker sends its answer back behind the
//! same envelope. The broker reads the route back from the envelope and
//! answers the client with `send_to`; the worker is ready again.
//!
//! Why DEALER workers and not REQ ones, as in the zguide: a Router answers
//! a REQ peer only with the route of one of that peer's requests, so a REQ
//! worker would have to receive each task as the *reply* to its READY (or
//! to its previous answer). That does not hold up here: a REQ request has a
//! deadline (`request_timeout`, 10 s by default), so a worker idle for
//! longer loses its pending "request" and with it the next task (the reply
//! arrives late and is dropped). A DEALER worker has no such limit: the
//! broker sends it a task whenever it likes, with
//! `Route::to(worker_identity)`, and the worker answers with a message of
//! its own, as many parts as it needs.
//!
//! Run with `cargo run --example lbbroker`.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use msg::prelude::*;

const CLIENTS: usize = 5;
const REQUESTS_PER_CLIENT: usize = 2;
const WORKERS: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut frontend = RouterSocket::new();
    let clients_at = frontend.bind("tcp://127.0.0.1:0").await?;
    let mut backend = RouterSocket::new();
    let workers_at = backend
        .bind(&format!(
            "ipc://{}",
            dir.path().join("backend.sock").display()
        ))
        .await?;
    println!("broker: clients connect to {clients_at}, workers to {workers_at}");

    // ANCHOR: worker
    for n in 1..=WORKERS {
        let mut options = SocketOptions::new();
        options.identity(format!("worker-{n}"));
        let mut worker = DealerSocket::with_options(options)?;
        worker.connect(&workers_at.to_string())?;
        tokio::spawn(async move {
            worker.send("READY").await?;
            while let Some(mut task) = worker.recv().await {
                // [client's route, request]: keep the envelope, replace the
                // request by the answer.
                let request = String::from_utf8_lossy(task.last()).into_owned();
                tokio::time::sleep(Duration::from_millis(10)).await;
                let envelope = task.pop_front();
                worker
                    .send([envelope, Bytes::from(format!("OK {request} (worker-{n})"))])
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    // ANCHOR_END: worker

    // ANCHOR: broker
    let total = CLIENTS * REQUESTS_PER_CLIENT;
    let broker = tokio::spawn(async move {
        let mut ready: VecDeque<Bytes> = VecDeque::new();
        // Every worker says READY before clients are served, so the first
        // requests are spread over all of them.
        while ready.len() < WORKERS {
            let (route, message) = backend.recv().await.expect("backend open");
            assert_eq!(message, "READY");
            ready.push_back(route.identity().clone());
        }
        println!("broker: {WORKERS} workers ready");

        let mut handled: BTreeMap<String, usize> = BTreeMap::new();
        let mut answered = 0;
        while answered < total {
            tokio::select! {
                // From a worker: an answer behind its envelope (or a READY).
                Some((worker, mut answer)) = backend.recv() => {
                    ready.push_back(worker.identity().clone());
                    if answer == "READY" {
                        continue;
                    }
                    let envelope = answer.pop_front();
                    let client = Route::from_bytes(&envelope).expect("a route we made");
                    frontend.send_to(client, answer).await?;
                    *handled
                        .entry(String::from_utf8_lossy(worker.identity()).into_owned())
                        .or_default() += 1;
                    answered += 1;
                }
                // From a client, taken only while a worker is ready.
                Some((client, mut request)) = frontend.recv(), if !ready.is_empty() => {
                    let worker = ready.pop_front().expect("a ready worker");
                    request.push_front(client.to_bytes());
                    backend.send_to(Route::to(worker), request).await?;
                }
                else => anyhow::bail!("the broker's sockets closed"),
            }
        }
        anyhow::Ok(handled)
    });
    // ANCHOR_END: broker

    // ANCHOR: clients
    let mut clients = Vec::new();
    for n in 1..=CLIENTS {
        let req = ReqSocket::new();
        req.connect(&clients_at.to_string())?;
        clients.push(tokio::spawn(async move {
            for k in 1..=REQUESTS_PER_CLIENT {
                let request = format!("hello {k} from client-{n}");
                let reply = req.request(request.clone()).await?;
                let reply = String::from_utf8_lossy(&reply).into_owned();
                assert!(
                    reply.starts_with(&format!("OK {request} (worker-")),
                    "client-{n} got {reply:?} for {request:?}"
                );
                println!("client-{n}: {request:?} -> {reply:?}");
            }
            anyhow::Ok(())
        }));
    }
    // ANCHOR_END: clients

    for client in clients {
        client.await??;
    }
    let handled = broker.await??;
    println!("broker: {total} requests answered; per worker: {handled:?}");
    assert_eq!(handled.values().sum::<usize>(), total);
    assert_eq!(handled.len(), WORKERS, "every worker got work");
    Ok(())
}
