//! Measurements of msg side by side with two baselines on the same machine, in
//! the same run: plain tokio sockets with 4-byte length-prefixed frames (the
//! practical limit of the machine) and libzmq through the `zmq` crate.
//!
//! The `compare` binary (`src/bin/compare.rs`) runs every [`Experiment`]
//! from [`experiments`] a few times, keeps the median of each
//! [`Measurement`], and prints a markdown table with ratios against the
//! reference rows, plus JSON lines. The criterion micro-benchmarks of the
//! codec and of compression live in `benches/` and do not use this library.
//!
//! # Layout
//!
//! - [`tokio_baseline`]: ping-pong, pipelined echo and one-way stream over
//!   plain `tokio::net` TCP and Unix sockets.
//! - [`zmq_baseline`]: REQ/REP, PUSH/PULL, DEALER/ROUTER and PUB/SUB through libzmq, on
//!   std threads (libzmq is blocking).
//! - [`msg_rows`]: the same shapes through msg's sockets, plus memory per
//!   idle connection.
//! - [`pattern_rows`]: msg's Push/Pull throughput and pipelined
//!   Dealer/Router round trips.
//! - [`reliable_rows`]: the reliable layer, `send_to` to delivery on the
//!   memory and the redb backends.
//! - [`targets`]: ratios some rows should reach, and whether a run met
//!   them (a section of the report, never an assertion).
//! - [`processes`]: the server ends of the [`Shape::Processes`] rows, run in
//!   a child process.
//!
//! Everything runs on loopback: TCP on `127.0.0.1` with ports chosen by the
//! OS, Unix sockets in a fresh temporary directory. Every loop is bounded in
//! both count and time ([`Config`]), and every blocking wait has a timeout,
//! so a broken peer turns into a [`BenchError`], never a hang.
//!
//! # The msg rows and their references
//!
//! [`msg_rows`] measures msg's sockets in the same shapes. Each of its
//! measurements names the rows it is compared with in
//! [`Measurement::refs`]; a ratio is printed when a reference row with the
//! same transport (or [`Measurement::ref_transport`]), size and metric ran
//! in the same run. The shapes, with the rows they compare against (see the
//! targets in `DESIGN.md`):
//!
//! | msg row | size | metrics | refs |
//! |---|---|---|---|
//! | Req/Rep round trip | 64 B | [`Metric::RttP50`], [`Metric::RttP99`] | [`tokio_baseline::PING_PONG`], [`zmq_baseline::REQ_REP`]; QUIC: msg over TCP |
//! | Req/Rep pipelined, 1024 in flight | 512 B | [`Metric::MsgsPerSec`] | [`tokio_baseline::PIPELINED`] |
//! | Pub/Sub, one subscriber | 64 B … 1 MiB | [`Metric::MsgsPerSec`], [`Metric::BytesPerSec`] | [`tokio_baseline::STREAM`], [`zmq_baseline::PUB_SUB`] (64 B), [`zmq_baseline::PUSH_PULL`]; QUIC (64 KiB): msg over TCP |
//! | Pub/Sub, 10 subscribers, total delivered | 64 B | [`Metric::MsgsPerSec`] | [`zmq_baseline::PUB_SUB_FAN_OUT`] |
//! | Push/Pull | 64 B … 1 MiB | [`Metric::MsgsPerSec`], [`Metric::BytesPerSec`] | [`tokio_baseline::STREAM`], [`zmq_baseline::PUSH_PULL`] |
//! | Dealer/Router pipelined, 1024 in flight | 512 B | [`Metric::MsgsPerSec`] | [`zmq_baseline::DEALER_ROUTER`], [`tokio_baseline::PIPELINED`], [`msg_rows::PIPELINED`] |
//! | idle connections to one Rep socket | - | [`Metric::Connections`], [`Metric::MemoryPerConn`] | - |
//! | reliable, memory backend, 64 senders, batched acks | 64 B | [`Metric::MsgsPerSec`] | [`msg_rows::PUB_SUB`] |
//! | reliable, memory backend, 64 senders, an ack per delivery | 64 B | [`Metric::MsgsPerSec`] | [`msg_rows::PUB_SUB`] |
//! | reliable, memory backend, auto-ack, 64 senders | 64 B | [`Metric::MsgsPerSec`] | [`msg_rows::PUB_SUB`] |
//! | reliable, redb backend (fsync), 64 senders | 64 B | [`Metric::MsgsPerSec`] | [`reliable_rows::RELIABLE_MEMORY`] |
//! | reliable, PostgreSQL backend (`synchronous_commit = on`), 64 senders | 64 B | [`Metric::MsgsPerSec`] | [`reliable_rows::RELIABLE_REDB`] |
//!
//! The two peers of a msg row are placed like the baselines' in each
//! [`Shape`] (see [`tokio_baseline`]), so that the ratios compare
//! protocols, not schedulers: each side on its own thread with a
//! current-thread tokio runtime ([`Shape::CurrentThread`]), both sides as
//! tasks of one multi-thread runtime ([`Shape::MultiThread`]), and, for the
//! round trips and the 64 B one-way rows, the two sides in two processes
//! ([`Shape::Processes`]). A ratio is only taken between rows of the same
//! shape, or against a libzmq row ([`Shape::LibzmqThreads`]), which is the
//! reference for every shape.
//!
//! # Round trips that hold still
//!
//! The msg Req/Rep rows over TCP and IPC also run alternating rounds of
//! the tokio ping-pong and msg Req/Rep in their shape, on two connections
//! open side by side, and report the per-round ratios
//! ([`Measurement::interleaved`], [`Interleaved`]): a slow phase of the
//! machine then touches both halves of each ratio alike.

mod error;
mod interleave;
mod machine;
mod measure;
pub mod msg_rows;
pub mod pattern_rows;
mod placement;
pub mod processes;
pub mod reliable_rows;
mod report;
mod stats;
pub mod targets;
pub mod tokio_baseline;
pub mod zmq_baseline;

pub use error::BenchError;
pub use machine::Machine;
pub use measure::{
    Config, Experiment, Interleaved, MULTI_THREAD_WORKERS, Measurement, Metric, Shape, Suite,
    Transport, run,
};
pub use report::{json_lines, markdown, shapes_table};
pub use stats::{median, percentile};
pub use targets::targets_table;

/// Every experiment this build knows, baselines first, in the order the
/// table shows them.
pub fn experiments() -> Vec<Experiment> {
    let mut all = tokio_baseline::experiments();
    all.extend(zmq_baseline::experiments());
    all.extend(msg_rows::experiments());
    all.extend(reliable_rows::experiments());
    all.extend(pattern_rows::experiments());
    all
}
