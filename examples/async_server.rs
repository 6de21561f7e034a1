//! An asynchronous server: a Router socket serving Dealer clients that send
//! many requests without waiting for the replies.
//!
//! ```text
//!   client-a (DEALER)   client-b (DEALER)   client-c (DEALER)
//!                \              |              /
//!                 server: ROUTER (binds tcp://)
//!                  | hands (route, request) to |
//!           worker 1   worker 2   worker 3   worker 4   (tasks)
//! ```
//!
//! The server takes each request with its [`Route`], hands both to a pool
//! of worker tasks, and sends each answer with `send_to(route, ..)` as soon
//! as a worker has it: answers go out in whatever order the work finishes.
//! Nothing pairs a DEALER's replies with its requests, so every request
//! carries an id in its first part, and the client matches the replies by
//! it.
//!
//! Run with `cargo run --example async_server`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use msg::prelude::*;
use tokio::sync::{Mutex, mpsc};

const CLIENTS: [&str; 3] = ["client-a", "client-b", "client-c"];
const REQUESTS: u64 = 5;
const WORKERS: usize = 4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut frontend = RouterSocket::new();
    let endpoint = frontend.bind("tcp://127.0.0.1:0").await?;
    println!("server: ROUTER bound on {endpoint}");

    // ANCHOR: clients
    let mut clients = Vec::new();
    for name in CLIENTS {
        let mut options = SocketOptions::new();
        options.identity(name);
        let dealer = DealerSocket::with_options(options)?;
        dealer.connect(&endpoint.to_string())?;
        clients.push((name, dealer));
    }
    // ANCHOR_END: clients
    anyhow::ensure!(
        frontend
            .wait_for_peers(CLIENTS.len(), Duration::from_secs(5))
            .await,
        "the clients did not connect"
    );
    let mut identities: Vec<String> = frontend
        .peer_identities()
        .iter()
        .map(|id| String::from_utf8_lossy(id).into_owned())
        .collect();
    identities.sort();
    println!("server: peers {identities:?}");

    // ANCHOR: server
    // Requests go to the workers through one queue; answers come back
    // through another, to the task that owns the Router socket.
    let (jobs_tx, jobs_rx) = mpsc::channel::<(Route, Message)>(64);
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let (answers_tx, mut answers_rx) = mpsc::channel::<(Route, Message)>(64);
    for worker in 1..=WORKERS {
        let (jobs_rx, answers_tx) = (jobs_rx.clone(), answers_tx.clone());
        tokio::spawn(async move {
            loop {
                let Some((route, request)) = jobs_rx.lock().await.recv().await else {
                    break;
                };
                let [id, body] =
                    <[Bytes; 2]>::try_from(request.into_parts()).expect("requests have two parts");
                // The first requests take longest, so their answers are
                // ready last.
                let n: u64 = std::str::from_utf8(&id)?.parse()?;
                tokio::time::sleep(Duration::from_millis((REQUESTS - n) * 15)).await;
                let answer = format!(
                    "{} (worker {worker})",
                    String::from_utf8_lossy(&body).to_uppercase()
                );
                answers_tx
                    .send((route, Message::from_parts([id, Bytes::from(answer)])))
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    let server = tokio::spawn(async move {
        loop {
            tokio::select! {
                Some((route, request)) = frontend.recv() => {
                    jobs_tx.send((route, request)).await?;
                }
                Some((route, answer)) = answers_rx.recv() => {
                    // To the client that asked, whichever it is.
                    frontend.send_to(&route, answer).await?;
                }
                else => break,
            }
        }
        anyhow::Ok(())
    });
    // ANCHOR_END: server

    // ANCHOR: requests
    let mut running = Vec::new();
    for (name, mut dealer) in clients {
        running.push(tokio::spawn(async move {
            // Every request goes out at once, without waiting for a reply.
            for id in 0..REQUESTS {
                dealer
                    .send([id.to_string(), format!("request {id} from {name}")])
                    .await?;
            }
            let mut answers = BTreeMap::new();
            let mut arrival = Vec::new();
            while answers.len() < REQUESTS as usize {
                let reply = dealer.recv().await.expect("the client is open");
                let id: u64 = std::str::from_utf8(reply.first())?.parse()?;
                let text = String::from_utf8_lossy(reply.last()).into_owned();
                assert!(
                    text.starts_with(&format!("REQUEST {id} FROM {}", name.to_uppercase())),
                    "{name} got {text:?} for request {id}"
                );
                assert!(
                    answers.insert(id, text).is_none(),
                    "request {id} answered twice"
                );
                arrival.push(id);
            }
            anyhow::Ok((name, arrival, answers))
        }));
    }
    // ANCHOR_END: requests

    for client in running {
        let (name, arrival, answers) = client.await??;
        println!("{name}: sent requests 0..{REQUESTS} at once; replies arrived as {arrival:?}");
        for (id, text) in &answers {
            println!("  #{id}: {text}");
        }
        assert_eq!(
            answers.keys().copied().collect::<Vec<_>>(),
            (0..REQUESTS).collect::<Vec<_>>()
        );
    }
    server.abort();
    println!(
        "server: answered {} requests from {} clients, each by its route",
        REQUESTS * CLIENTS.len() as u64,
        CLIENTS.len()
    );
    Ok(())
}
