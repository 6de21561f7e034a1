//! Feature `metrics`: a socket's counters and gauges reach the `metrics`
//! facade, labelled by socket type and name, on real sockets.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use msg_socket::{METRICS, RepSocket, ReqSocket, SocketOptions};

/// Every metric's value in one snapshot of the recorder (which a snapshot
/// resets; the socket sets them all again every interval).
type Values = Vec<(String, Vec<(String, String)>, DebugValue)>;

fn snapshot(snapshotter: &Snapshotter) -> Values {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, .., value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect()
}

/// The value of `metric` labelled `socket` and `name` in `values`.
fn value<'a>(values: &'a Values, metric: &str, socket: &str, name: &str) -> Option<&'a DebugValue> {
    let labels = [
        ("socket".to_owned(), socket.to_owned()),
        ("name".to_owned(), name.to_owned()),
    ];
    values
        .iter()
        .find(|(n, l, _)| n == metric && labels.iter().all(|label| l.contains(label)))
        .map(|(.., v)| v)
}

#[test]
fn counters_and_gauges_of_a_req_and_a_rep_socket() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The recorder is this thread's, and a current-thread runtime runs
    // every task of both sockets on this thread.
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut opts = SocketOptions::new();
            opts.name("server")
                .metrics_interval(Duration::from_millis(10));
            let rep = RepSocket::with_options(opts).unwrap();
            let at = rep.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
            tokio::spawn(rep.serve(4, |payload, _| async move { payload }));
            let mut opts = SocketOptions::new();
            opts.name("client")
                .metrics_interval(Duration::from_millis(10));
            let req = ReqSocket::with_options(opts).unwrap();
            req.connect(&at).unwrap();
            for _ in 0..5 {
                req.request("ping").await.unwrap();
            }
            // Brought up to date within a few intervals.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let values = loop {
                let values = snapshot(&snapshotter);
                if value(&values, "msg_socket_requests_total", "req", "client")
                    == Some(&DebugValue::Counter(5))
                {
                    break values;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "requests never counted"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            assert_eq!(
                value(&values, "msg_socket_peers", "req", "client"),
                Some(&DebugValue::Gauge(1.0.into()))
            );
            let received = value(
                &values,
                "msg_socket_messages_received_total",
                "rep",
                "server",
            );
            assert_eq!(received, Some(&DebugValue::Counter(5)));
            let p50 = value(
                &values,
                "msg_socket_request_latency_p50_seconds",
                "req",
                "client",
            );
            assert!(
                matches!(p50, Some(DebugValue::Gauge(s)) if s.0 > 0.0),
                "{p50:?}"
            );
            // Every metric the list names is exported, for each socket.
            for (metric, _, _) in METRICS {
                assert!(
                    value(&values, metric, "req", "client").is_some(),
                    "{metric} not exported"
                );
            }
            // Closing brings them up to date once more.
            snapshot(&snapshotter);
            req.close(Duration::from_secs(1)).await;
            let values = snapshot(&snapshotter);
            assert_eq!(
                value(&values, "msg_socket_messages_sent_total", "req", "client"),
                Some(&DebugValue::Counter(5))
            );
        });
    });
}
