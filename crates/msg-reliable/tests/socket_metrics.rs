//! Feature `metrics`: the reliable layer's counters, gauges and store
//! latency reach the `metrics` facade, on real sockets.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use msg_reliable::METRICS;

use crate::support::*;

#[test]
fn stored_delivered_unacked_and_store_latency_are_exported() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Values for (metric, name label, peer label) in one snapshot (a
    // snapshot resets them; the sockets set them again every interval),
    // and the store latencies recorded since the last one.
    let take = || {
        let mut values = Vec::new();
        let mut latencies = 0;
        for (key, .., value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let label = |k: &str| {
                key.labels()
                    .find(|l| l.key() == k)
                    .map(|l| l.value().to_owned())
            };
            match value {
                DebugValue::Histogram(v) if key.name() == "msg_reliable_store_seconds" => {
                    latencies += v.len();
                }
                value => values.push((
                    key.name().to_owned(),
                    label("name"),
                    label("peer"),
                    format!("{value:?}"),
                )),
            }
        }
        (values, latencies)
    };
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut opts = fast();
            opts.metrics_interval(Duration::from_millis(10));
            let (a, b, bind, _dir) = memory_pair("tcp", opts).await;
            link(&a, &b, &bind).await;
            send_all(&a, "a", "b", 1, 10).await;
            receive_all(&b, "a", "b", 1, 10).await;
            a.wait_acked(&pid("b"), 10).await.unwrap();

            let mut latencies = 0;
            let deadline = tokio::time::Instant::now() + WAIT;
            let values = loop {
                let (values, recorded) = take();
                latencies += recorded;
                let has = |metric: &str, name: &str, peer: Option<&str>, value: &str| {
                    values.iter().any(|(m, n, p, v)| {
                        m == metric
                            && n.as_deref() == Some(name)
                            && p.as_deref() == peer
                            && v == value
                    })
                };
                if has(
                    "msg_reliable_stored_outgoing_total",
                    "a",
                    None,
                    "Counter(10)",
                ) && has("msg_reliable_delivered_total", "b", None, "Counter(10)")
                    && has("msg_reliable_unacked_messages", "a", None, "Gauge(0.0)")
                    && has("msg_reliable_peers", "a", None, "Gauge(1.0)")
                {
                    break values;
                }
                assert!(tokio::time::Instant::now() < deadline, "{values:#?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            // Appends, stores and acknowledgements each recorded their time.
            assert!(latencies >= 3, "{latencies} store latencies");
            for (metric, _, kind) in METRICS {
                if *kind != "histogram" {
                    assert!(
                        values
                            .iter()
                            .any(|(m, n, ..)| m == metric && n.as_deref() == Some("a")),
                        "{metric} not exported"
                    );
                }
            }
            a.shutdown(Duration::from_secs(1)).await;
            b.shutdown(Duration::from_secs(1)).await;
        });
    });
}
