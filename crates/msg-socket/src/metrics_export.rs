//! The socket's counters through the `metrics` facade (feature
//! `metrics`): a task per socket copies [`stats`](crate::ReqSocket::stats)
//! into counters and gauges every `metrics_interval`, and once more when the
//! socket closes. Nothing is done per message.
//!
//! Every metric carries two labels: `socket` (the socket type: `req`,
//! `pub`, ...) and `name` ([`SocketOptions::name`](crate::SocketOptions::name)).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use metrics::{Counter, Gauge, Label};

use crate::driver::shared::Shared;
use crate::monitor::SocketStats;
use crate::proto::Protocol;

/// Every metric a socket exports: its name, its help text, and whether it
/// is a counter (`true`) or a gauge.
pub const METRICS: &[(&str, &str, bool)] = &[
    (
        "msg_socket_messages_sent_total",
        "Application messages sent.",
        true,
    ),
    (
        "msg_socket_messages_received_total",
        "Application messages received.",
        true,
    ),
    (
        "msg_socket_sent_bytes_total",
        "Bytes of frames written, heartbeats included.",
        true,
    ),
    (
        "msg_socket_received_bytes_total",
        "Bytes of frames read, heartbeats included.",
        true,
    ),
    (
        "msg_socket_dropped_total",
        "Messages dropped at a high-water mark.",
        true,
    ),
    ("msg_socket_reconnects_total", "Reconnect attempts.", true),
    (
        "msg_socket_auth_rejections_total",
        "Authentications refused, by either side.",
        true,
    ),
    (
        "msg_socket_identity_refusals_total",
        "Connections refused for an identity already in use.",
        true,
    ),
    (
        "msg_socket_handshake_failures_total",
        "Handshakes failed for any other reason.",
        true,
    ),
    (
        "msg_socket_protocol_errors_total",
        "Connections closed for breaking the protocol.",
        true,
    ),
    (
        "msg_socket_heartbeat_timeouts_total",
        "Connections closed for a silent peer.",
        true,
    ),
    (
        "msg_socket_connections_refused_total",
        "Connections refused at max_connections.",
        true,
    ),
    (
        "msg_socket_gaps_total",
        "Messages missing from publishers' sequences (SUB).",
        true,
    ),
    (
        "msg_socket_requests_total",
        "Requests completed (REQ).",
        true,
    ),
    (
        "msg_socket_peers",
        "Connections with a finished handshake.",
        false,
    ),
    (
        "msg_socket_queued_frames",
        "Frames queued and not yet written.",
        false,
    ),
    (
        "msg_socket_queued_bytes",
        "Bytes queued and not yet written.",
        false,
    ),
    (
        "msg_socket_request_latency_p50_seconds",
        "Median request latency (REQ).",
        false,
    ),
    (
        "msg_socket_request_latency_p99_seconds",
        "99th percentile request latency (REQ).",
        false,
    ),
];

/// The handles of one socket's metrics, in the order of [`METRICS`].
struct Handles {
    counters: Vec<Counter>,
    gauges: Vec<Gauge>,
}

impl Handles {
    fn new(labels: &[Label]) -> Self {
        let mut counters = Vec::new();
        let mut gauges = Vec::new();
        for &(name, help, counter) in METRICS {
            if counter {
                metrics::describe_counter!(name, help);
                counters.push(metrics::counter!(name, labels.iter()));
            } else {
                metrics::describe_gauge!(name, help);
                gauges.push(metrics::gauge!(name, labels.iter()));
            }
        }
        Self { counters, gauges }
    }

    fn record(&self, s: &SocketStats, (frames, bytes): (usize, usize)) {
        let counts = [
            s.msgs_sent,
            s.msgs_received,
            s.bytes_sent,
            s.bytes_received,
            s.dropped_hwm,
            s.reconnects,
            s.auth_rejections,
            s.identity_refusals,
            s.handshake_failures,
            s.protocol_errors,
            s.heartbeat_timeouts,
            s.connections_refused,
            s.gaps,
            s.requests,
        ];
        for (counter, value) in self.counters.iter().zip(counts) {
            counter.absolute(value);
        }
        let seconds = |d: Option<std::time::Duration>| d.map_or(0.0, |d| d.as_secs_f64());
        let levels = [
            s.active_peers as f64,
            frames as f64,
            bytes as f64,
            seconds(s.latency_p50),
            seconds(s.latency_p99),
        ];
        for (gauge, value) in self.gauges.iter().zip(levels) {
            gauge.set(value);
        }
    }
}

/// Starts the socket's metrics task, once (on its first bind or connect,
/// where a runtime is sure to run).
pub(crate) fn start<P: Protocol>(shared: &Arc<Shared<P>>) {
    let core = &shared.core;
    if core.metrics_started.swap(true, Relaxed) {
        return;
    }
    let labels = vec![
        Label::new("socket", core.socket_type.to_string().to_lowercase()),
        Label::new("name", core.opts.name.clone().unwrap_or_default()),
    ];
    let every = core.opts.metrics_interval;
    let cancel = core.cancel.clone();
    let socket = Arc::downgrade(shared);
    core.tasks.spawn(async move {
        let handles = Handles::new(&labels);
        loop {
            let closing = tokio::select! {
                () = cancel.cancelled() => true,
                () = tokio::time::sleep(every) => false,
            };
            let Some(shared) = socket.upgrade() else {
                break;
            };
            handles.record(&shared.stats(), shared.queued());
            if closing {
                break;
            }
        }
    });
}
