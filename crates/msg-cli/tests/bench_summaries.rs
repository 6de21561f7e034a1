//! `msg bench` runs both ends in its own process and prints a summary.

use crate::common::run;

/// Asserts a table: a title, a header row and one row of results.
#[track_caller]
fn assert_table(lines: &[String], pattern: &str, transport: &str) {
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with(&format!("{pattern} over {transport}: ")),
        "{lines:#?}"
    );
    for column in ["msgs/s", "MB/s", "p50", "p99", "drops"] {
        assert!(lines[1].contains(column), "no {column}: {lines:#?}");
    }
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&row[..2], [pattern, transport], "{lines:#?}");
}

#[test]
fn bench_reqrep_runs_over_every_transport() {
    for transport in ["tcp", "ipc", "inproc", "tls", "quic"] {
        let lines = run(
            &[
                "bench",
                "reqrep",
                "--transport",
                transport,
                "--count",
                "50",
                "--concurrency",
                "4",
            ],
            b"",
        )
        .ok();
        assert_table(&lines, "reqrep", transport);
        // Every request came back: 50 messages, no drops.
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(row[4], "50", "{lines:#?}");
        assert_eq!(row.last(), Some(&"0"), "{lines:#?}");
    }
}

#[test]
fn bench_pubsub_prints_a_table() {
    let lines = run(
        &[
            "bench",
            "pubsub",
            "--count",
            "500",
            "--subscribers",
            "2",
            "--size",
            "1KiB",
            "--compression",
            "lz4",
        ],
        b"",
    )
    .ok();
    assert_table(&lines, "pubsub", "tcp");
    assert!(lines[0].contains("2 subscribers"), "{lines:#?}");
    assert!(lines[0].contains("compression lz4"), "{lines:#?}");
}

#[test]
fn bench_for_a_duration_prints_json() {
    let lines = run(&["bench", "reqrep", "--duration", "200ms", "--json"], b"").ok();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let summary: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(summary["pattern"], "reqrep");
    assert!(summary["msgs"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["p99_us"].as_f64().unwrap() > 0.0, "{summary}");
    assert_eq!(summary["drops"], 0);
}

#[test]
fn bench_reliable_delivers_every_message_on_both_backends() {
    for backend in ["redb", "memory"] {
        let lines = run(
            &[
                "bench",
                "reliable",
                "--backend",
                backend,
                "--count",
                "300",
                "--concurrency",
                "8",
            ],
            b"",
        )
        .ok();
        assert_table(&lines, "reliable", "tcp");
        assert!(
            lines[0].contains(&format!("8 senders, {backend} stores")),
            "{lines:#?}"
        );
        // Every message was delivered (and acknowledged): 300 of them, with
        // latencies, and no drops.
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(row[4], "300", "{lines:#?}");
        assert_ne!(row[row.len() - 5], "-", "no p50: {lines:#?}");
        assert_eq!(row.last(), Some(&"0"), "{lines:#?}");
    }
}

#[test]
fn bench_reliable_prints_json_over_other_transports() {
    for (transport, backend) in [("ipc", "redb"), ("quic", "memory")] {
        let lines = run(
            &[
                "bench",
                "reliable",
                "--transport",
                transport,
                "--backend",
                backend,
                "--count",
                "200",
                "--json",
            ],
            b"",
        )
        .ok();
        assert_eq!(lines.len(), 1, "{lines:#?}");
        let summary: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(summary["pattern"], "reliable", "{summary}");
        assert_eq!(summary["transport"], transport, "{summary}");
        assert_eq!(summary["shape"], format!("64 senders, {backend} stores"));
        assert_eq!(summary["msgs"], 200, "{summary}");
        assert_eq!(summary["drops"], 0, "{summary}");
        assert!(summary["msgs_per_sec"].as_f64().unwrap() > 0.0, "{summary}");
        let (p50, p99) = (summary["p50_us"].as_f64(), summary["p99_us"].as_f64());
        assert!(
            p50.unwrap() > 0.0 && p99.unwrap() >= p50.unwrap(),
            "{summary}"
        );
    }
}

#[test]
fn bench_reliable_for_a_duration_counts_untimestamped_messages() {
    // Payloads under 8 bytes carry no timestamp: no latencies, but every
    // message is still counted once delivered.
    let lines = run(
        &[
            "bench",
            "reliable",
            "--transport",
            "inproc",
            "--backend",
            "memory",
            "--size",
            "4",
            "--duration",
            "200ms",
            "--concurrency",
            "1",
            "--json",
        ],
        b"",
    )
    .ok();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let summary: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(summary["shape"], "1 sender, memory stores", "{summary}");
    assert!(summary["msgs"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["p50_us"].is_null(), "{summary}");
    assert_eq!(summary["drops"], 0, "{summary}");
}

#[test]
fn bench_pushpull_delivers_every_message_over_every_transport() {
    for transport in ["tcp", "ipc", "inproc", "tls", "quic"] {
        let lines = run(
            &[
                "bench",
                "pushpull",
                "--transport",
                transport,
                "--count",
                "500",
                "--pullers",
                "3",
            ],
            b"",
        )
        .ok();
        assert_table(&lines, "pushpull", transport);
        assert!(lines[0].contains("3 pullers"), "{lines:#?}");
        // Every message arrived, none dropped.
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(row[4], "500", "{lines:#?}");
        assert_eq!(row.last(), Some(&"0"), "{lines:#?}");
    }
}

#[test]
fn bench_pushpull_for_a_duration_prints_json() {
    let lines = run(
        &[
            "bench",
            "pushpull",
            "--duration",
            "200ms",
            "--size",
            "1KiB",
            "--json",
        ],
        b"",
    )
    .ok();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let summary: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(summary["pattern"], "pushpull");
    assert_eq!(summary["shape"], "1 puller");
    assert!(summary["msgs"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["p99_us"].as_f64().unwrap() > 0.0, "{summary}");
    assert_eq!(summary["drops"], 0);
}
