//! Pipeline: a ventilator hands tasks to three workers with a Push socket,
//! the workers pass their results on with Push sockets, and a sink collects
//! them with a Pull socket.
//!
//! ```text
//!                  ventilator (PUSH, binds tcp://)
//!                 /            |             \
//!     worker-1 (PULL)   worker-2 (PULL)   worker-3 (PULL)
//!     worker-1 (PUSH)   worker-2 (PUSH)   worker-3 (PUSH)
//!                 \            |             /
//!                      sink (PULL, binds ipc://)
//! ```
//!
//! Each task goes to exactly one worker (round-robin over the workers with
//! room), and the sink receives every result exactly once, fair-queued over
//! the workers.
//!
//! Run with `cargo run --example pipeline`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use msg::prelude::*;

const WORKERS: usize = 3;
const TASKS: u32 = 30;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // ANCHOR: sockets
    // The two stable ends bind; the workers, which come and go, connect.
    let ventilator = PushSocket::new();
    let tasks_at = ventilator.bind("tcp://127.0.0.1:0").await?;
    let dir = tempfile::tempdir()?;
    let mut sink = PullSocket::new();
    let results_at = sink
        .bind(&format!("ipc://{}", dir.path().join("sink.sock").display()))
        .await?;
    println!("ventilator: handing out tasks on {tasks_at}");
    println!("sink: collecting results on {results_at}");
    // ANCHOR_END: sockets

    // ANCHOR: workers
    let mut workers = Vec::new();
    for n in 1..=WORKERS {
        let name = format!("worker-{n}");
        let mut tasks = PullSocket::new();
        tasks.connect(&tasks_at.to_string())?;
        let results = PushSocket::new();
        results.connect(&results_at.to_string())?;
        workers.push(tokio::spawn(async move {
            while let Some(task) = tasks.recv().await {
                // A task is two parts: its number and how long it takes.
                let id = task.first().clone();
                let millis: u64 = std::str::from_utf8(task.last())?.parse()?;
                tokio::time::sleep(Duration::from_millis(millis)).await;
                results
                    .send([Bytes::from(name.clone()), id, Bytes::from("done")])
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    // ANCHOR_END: workers

    // Wait until every worker is connected: tasks pushed earlier would all
    // go to the first worker to connect (the "slow joiner" of libzmq).
    anyhow::ensure!(
        ventilator
            .wait_for_peers(WORKERS, Duration::from_secs(5))
            .await,
        "the workers did not connect"
    );

    // ANCHOR: ventilate
    let started = Instant::now();
    let mut total_work = Duration::ZERO;
    for id in 0..TASKS {
        let millis = 5 + u64::from(id % 4) * 5;
        total_work += Duration::from_millis(millis);
        ventilator
            .send([id.to_string(), millis.to_string()])
            .await?;
    }
    println!("ventilator: sent {TASKS} tasks, {total_work:?} of work in all");
    // ANCHOR_END: ventilate

    // ANCHOR: sink
    let mut done_by: BTreeMap<u32, String> = BTreeMap::new();
    let mut per_worker: BTreeMap<String, u32> = BTreeMap::new();
    while done_by.len() < TASKS as usize {
        let result = sink.recv().await.expect("the sink is open");
        let worker = String::from_utf8_lossy(result.first()).into_owned();
        let id: u32 = std::str::from_utf8(result.get(1).expect("a task id"))?.parse()?;
        assert_eq!(result.last(), "done");
        assert!(
            done_by.insert(id, worker.clone()).is_none(),
            "task {id} came back twice"
        );
        *per_worker.entry(worker).or_default() += 1;
    }
    let elapsed = started.elapsed();
    // ANCHOR_END: sink

    println!("sink: all {TASKS} results in {elapsed:?}, each exactly once");
    for (worker, count) in &per_worker {
        println!("  {worker} did {count} tasks");
    }
    assert_eq!(
        done_by.keys().copied().collect::<Vec<_>>(),
        (0..TASKS).collect::<Vec<_>>()
    );
    assert_eq!(per_worker.len(), WORKERS, "every worker got work");

    for worker in workers {
        worker.abort();
    }
    ventilator.close(Duration::ZERO).await;
    sink.close(Duration::ZERO).await;
    Ok(())
}
