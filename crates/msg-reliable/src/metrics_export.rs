//! The reliable layer's counters through the `metrics` facade (feature
//! `metrics`): a task per socket copies [`stats`](crate::ReliableSocket::stats)
//! and what waits for acknowledgement into counters and gauges every
//! `metrics_interval`; the store's operations record their latency as they
//! finish.
//!
//! Counters and gauges carry the labels `socket` (`reliable`) and `name`
//! (the socket's identity); the unacknowledged count per peer also `peer`;
//! the store latency `op` (`append`, `store`, `ack_outgoing`, `ack_incoming`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Label};

use crate::driver::{Command, Shared};
use crate::peer::PeerId;

/// Every metric the reliable layer exports: name, help text, and kind
/// (`"counter"`, `"gauge"` or `"histogram"`).
pub const METRICS: &[(&str, &str, &str)] = &[
    (
        "msg_reliable_stored_outgoing_total",
        "Messages stored for sending.",
        "counter",
    ),
    (
        "msg_reliable_delivered_total",
        "Messages handed to the application.",
        "counter",
    ),
    (
        "msg_reliable_data_sent_total",
        "Data frames sent, retransmissions included.",
        "counter",
    ),
    (
        "msg_reliable_retransmitted_total",
        "Data frames sent again.",
        "counter",
    ),
    (
        "msg_reliable_ack_timeouts_total",
        "Acknowledgement timeouts that caused a resend.",
        "counter",
    ),
    (
        "msg_reliable_duplicates_total",
        "Incoming data frames dropped as duplicates.",
        "counter",
    ),
    (
        "msg_reliable_stored_incoming_total",
        "Incoming messages stored.",
        "counter",
    ),
    (
        "msg_reliable_store_failures_total",
        "Store batches that failed.",
        "counter",
    ),
    ("msg_reliable_peers", "Peers with a session.", "gauge"),
    (
        "msg_reliable_unacked_messages",
        "Messages stored for sending and not acknowledged (also per peer).",
        "gauge",
    ),
    (
        "msg_reliable_store_seconds",
        "Latency of store operations, by op.",
        "histogram",
    ),
];

/// Records how long a store operation took.
pub(crate) fn store_latency(op: &'static str, started: Instant) {
    metrics::histogram!("msg_reliable_store_seconds", "op" => op).record(started.elapsed());
}

/// Starts the socket's metrics task: until the socket shuts down.
pub(crate) fn start(shared: &Arc<Shared>, identity: &PeerId, every: Duration) {
    let labels = vec![
        Label::new("socket", "reliable"),
        Label::new("name", identity.to_string()),
    ];
    let cancel = shared.cancel.clone();
    let socket = Arc::downgrade(shared);
    tokio::spawn(async move {
        for &(name, help, kind) in METRICS {
            match kind {
                "counter" => metrics::describe_counter!(name, help),
                "gauge" => metrics::describe_gauge!(name, help),
                _ => metrics::describe_histogram!(name, metrics::Unit::Seconds, help),
            }
        }
        let counters: Vec<Counter> = METRICS
            .iter()
            .filter(|m| m.2 == "counter")
            .map(|m| metrics::counter!(m.0, labels.iter()))
            .collect();
        let peers: Gauge = metrics::gauge!("msg_reliable_peers", labels.iter());
        let unacked: Gauge = metrics::gauge!("msg_reliable_unacked_messages", labels.iter());
        let mut per_peer: Vec<(PeerId, Gauge)> = Vec::new();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
            let Some(shared) = socket.upgrade() else {
                break;
            };
            let (stats, pending) = {
                let (reply, stats) = tokio::sync::oneshot::channel();
                let (pending_reply, pending) = tokio::sync::oneshot::channel();
                if shared.commands.send(Command::Stats { reply }).is_err()
                    || shared
                        .commands
                        .send(Command::Pending {
                            reply: pending_reply,
                        })
                        .is_err()
                {
                    break;
                }
                drop(shared);
                match (stats.await, pending.await) {
                    (Ok(stats), Ok(pending)) => (stats, pending),
                    _ => break,
                }
            };
            let s = &stats.sessions;
            let counts = [
                stats.stored_outgoing,
                stats.delivered,
                s.data_sent,
                s.retransmitted,
                s.timeouts,
                s.duplicates,
                s.stored,
                s.store_failures,
            ];
            for (counter, value) in counters.iter().zip(counts) {
                counter.absolute(value);
            }
            peers.set(stats.peers as f64);
            unacked.set(stats.unacked_outgoing as f64);
            // A peer with nothing waiting is not in `pending`: its gauge
            // goes to zero.
            for (peer, gauge) in &per_peer {
                if !pending.iter().any(|(p, _)| p == peer) {
                    gauge.set(0.0);
                }
            }
            for (peer, count) in pending {
                let gauge = match per_peer.iter().find(|(p, _)| *p == peer) {
                    Some((_, gauge)) => gauge.clone(),
                    None => {
                        let mut with_peer = labels.clone();
                        with_peer.push(Label::new("peer", peer.to_string()));
                        let gauge =
                            metrics::gauge!("msg_reliable_unacked_messages", with_peer.iter());
                        per_peer.push((peer, gauge.clone()));
                        gauge
                    }
                };
                gauge.set(count as f64);
            }
        }
    });
}
