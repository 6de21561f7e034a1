//! The comparison's quick mode, in-process: every row runs and yields a
//! finite, positive number. Nothing about speed is asserted.

use msg_benches::{
    Config, Machine, Measurement, Metric, Shape, Transport, experiments, json_lines, markdown,
    msg_rows, pattern_rows, reliable_rows, run, targets_table, tokio_baseline, zmq_baseline,
};

/// The process ids of this process's children that exist (running or not
/// yet reaped), from `/proc/self/task/*/children`; empty where that is not
/// available.
fn live_children() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        // The PostgreSQL row's throwaway cluster (when MSG_TEST_POSTGRES is
        // unset) is kept by a shell that lives as long as this process, by
        // design: it stops the cluster when this process exits.
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !cmdline.split(|&b| b == 0).any(|arg| arg == b"keeper")
        })
        .collect()
}

/// The measurement of `row` in `shape`, or a panic naming what is missing.
fn find<'a>(
    all: &'a [Measurement],
    row: &str,
    shape: Shape,
    transport: Transport,
    size: usize,
    metric: Metric,
) -> &'a Measurement {
    all.iter()
        .find(|m| {
            m.row == row
                && m.shape == shape
                && m.transport == transport
                && m.size == size
                && m.metric == metric
        })
        .unwrap_or_else(|| {
            panic!(
                "missing {row} ({shape}) {transport} {size} B {}",
                metric.name()
            )
        })
}

/// `row` is there in every shape of `shapes`.
fn expect_row_in(
    all: &[Measurement],
    shapes: &[Shape],
    row: &str,
    transport: Transport,
    size: usize,
    metric: Metric,
) {
    for &shape in shapes {
        find(all, row, shape, transport, size, metric);
    }
}

#[test]
fn quick_mode_measures_every_row_with_finite_positive_values() {
    let mut cfg = Config::quick();
    // The idle-connection row's Rep socket runs in a child process.
    cfg.helper_exe(env!("CARGO_BIN_EXE_compare"));
    let all = run(&cfg, &experiments(), |_, _| {}).expect("quick run");

    for m in &all {
        assert!(
            m.value.is_finite() && m.value > 0.0,
            "{} {} {} B {}: {}",
            m.row,
            m.transport,
            m.size,
            m.metric.name(),
            m.value
        );
        assert_eq!(m.samples.len(), 1);
    }

    // In-process shapes: every tokio and msg row. All shapes: the round
    // trips and the 64 B one-way rows. libzmq: its own.
    let ct = Shape::CurrentThread;
    let in_process = [ct, Shape::MultiThread];
    let every = [ct, Shape::MultiThread, Shape::Processes];
    let zmq = [Shape::LibzmqThreads];
    let expect_row = |all: &[Measurement], row: &str, t, size, metric| {
        let shapes: &[Shape] = if row.starts_with("libzmq") {
            &zmq
        } else {
            &in_process
        };
        expect_row_in(all, shapes, row, t, size, metric);
    };
    for t in [Transport::Tcp, Transport::Ipc] {
        expect_row_in(
            &all,
            &every,
            tokio_baseline::PING_PONG,
            t,
            64,
            Metric::RttP50,
        );
        expect_row_in(
            &all,
            &every,
            tokio_baseline::PING_PONG,
            t,
            64,
            Metric::RttP99,
        );
        expect_row_in(
            &all,
            &every,
            tokio_baseline::STREAM,
            t,
            64,
            Metric::MsgsPerSec,
        );
        expect_row_in(&all, &every, msg_rows::REQ_REP, t, 64, Metric::RttP50);
        expect_row_in(&all, &every, msg_rows::REQ_REP, t, 64, Metric::RttP99);
        expect_row_in(&all, &every, msg_rows::PUB_SUB, t, 64, Metric::MsgsPerSec);
        expect_row_in(&all, &every, msg_rows::PUB_SUB, t, 64, Metric::BytesPerSec);
        let size = pattern_rows::PROCESSES_PUSH_PULL_SIZE;
        for metric in [Metric::MsgsPerSec, Metric::BytesPerSec] {
            expect_row_in(&all, &every, pattern_rows::PUSH_PULL, t, size, metric);
        }
        expect_row(&all, tokio_baseline::PING_PONG, t, 64, Metric::RttP50);
        expect_row(&all, tokio_baseline::PING_PONG, t, 64, Metric::RttP99);
        expect_row(&all, tokio_baseline::PIPELINED, t, 512, Metric::MsgsPerSec);
        expect_row(&all, zmq_baseline::REQ_REP, t, 64, Metric::RttP50);
        expect_row(&all, zmq_baseline::REQ_REP, t, 64, Metric::RttP99);
        expect_row(&all, zmq_baseline::PUB_SUB, t, 64, Metric::MsgsPerSec);
        expect_row(
            &all,
            zmq_baseline::DEALER_ROUTER,
            t,
            zmq_baseline::DEALER_ROUTER_SIZE,
            Metric::MsgsPerSec,
        );
        expect_row(
            &all,
            zmq_baseline::PUB_SUB_FAN_OUT,
            t,
            64,
            Metric::MsgsPerSec,
        );
        for size in tokio_baseline::STREAM_SIZES {
            expect_row(&all, tokio_baseline::STREAM, t, size, Metric::MsgsPerSec);
            expect_row(&all, tokio_baseline::STREAM, t, size, Metric::BytesPerSec);
        }
        for size in zmq_baseline::PUSH_PULL_SIZES {
            expect_row(&all, zmq_baseline::PUSH_PULL, t, size, Metric::MsgsPerSec);
        }
    }

    for t in [Transport::Tcp, Transport::Ipc] {
        expect_row(&all, msg_rows::REQ_REP, t, 64, Metric::RttP50);
        expect_row(&all, msg_rows::REQ_REP, t, 64, Metric::RttP99);
        expect_row(&all, msg_rows::PIPELINED, t, 512, Metric::MsgsPerSec);
        for size in msg_rows::PUB_SUB_SIZES {
            expect_row(&all, msg_rows::PUB_SUB, t, size, Metric::MsgsPerSec);
            expect_row(&all, msg_rows::PUB_SUB, t, size, Metric::BytesPerSec);
        }
        expect_row(&all, msg_rows::PUB_SUB_BIG_HWM, t, 64, Metric::MsgsPerSec);
        expect_row(&all, msg_rows::PUB_SUB_FAN_OUT, t, 64, Metric::MsgsPerSec);
        for size in pattern_rows::PUSH_PULL_SIZES {
            expect_row(&all, pattern_rows::PUSH_PULL, t, size, Metric::MsgsPerSec);
            expect_row(&all, pattern_rows::PUSH_PULL, t, size, Metric::BytesPerSec);
        }
        expect_row(
            &all,
            pattern_rows::DEALER_ROUTER,
            t,
            pattern_rows::DEALER_ROUTER_SIZE,
            Metric::MsgsPerSec,
        );
        for row in [
            reliable_rows::RELIABLE_MEMORY,
            reliable_rows::RELIABLE_MEMORY_EACH,
            reliable_rows::RELIABLE_MEMORY_AUTO,
            reliable_rows::RELIABLE_REDB,
        ] {
            expect_row(
                &all,
                row,
                t,
                reliable_rows::RELIABLE_SIZE,
                Metric::MsgsPerSec,
            );
        }
    }
    expect_row(&all, msg_rows::REQ_REP, Transport::Quic, 64, Metric::RttP50);
    let quic_size = msg_rows::QUIC_PUB_SUB_SIZE;
    expect_row(
        &all,
        msg_rows::PUB_SUB,
        Transport::Quic,
        quic_size,
        Metric::BytesPerSec,
    );
    expect_row(&all, msg_rows::IDLE, Transport::Tcp, 0, Metric::Connections);
    expect_row(
        &all,
        msg_rows::IDLE,
        Transport::Tcp,
        0,
        Metric::MemoryPerConn,
    );

    // The Req/Rep round trips over TCP and IPC carry their interleaved
    // rounds against the tokio ping-pong of the same shape, in every shape.
    for shape in every {
        for t in [Transport::Tcp, Transport::Ipc] {
            for metric in [Metric::RttP50, Metric::RttP99] {
                let m = find(&all, msg_rows::REQ_REP, shape, t, 64, metric);
                let i = m
                    .interleaved
                    .as_ref()
                    .unwrap_or_else(|| panic!("{} ({shape}) {t}: no rounds", m.row));
                assert_eq!(i.vs, tokio_baseline::PING_PONG);
                assert_eq!(i.ratios.len(), 3, "quick mode runs 3 rounds");
                assert!(i.ratios.iter().all(|r| r.is_finite() && *r > 0.0));
            }
        }
    }

    // A ratio is taken only against a reference of the same shape (or a
    // libzmq row): msg in processes against tokio in processes.
    let rtt = find(
        &all,
        msg_rows::REQ_REP,
        Shape::Processes,
        Transport::Tcp,
        64,
        Metric::RttP50,
    );
    let tokio_rtt = find(
        &all,
        tokio_baseline::PING_PONG,
        Shape::Processes,
        Transport::Tcp,
        64,
        Metric::RttP50,
    );
    let ratios = rtt.ratios(&all);
    assert_eq!(
        ratios[0],
        (tokio_baseline::PING_PONG, rtt.value / tokio_rtt.value)
    );
    assert_eq!(ratios[1].0, zmq_baseline::REQ_REP);

    // The new patterns find both their baselines in every shape: Push/Pull
    // the tokio stream of its shape and libzmq PUSH/PULL, Dealer/Router
    // libzmq DEALER/ROUTER, the tokio pipelined echo of its shape and msg
    // Req/Rep pipelined.
    for shape in every {
        for t in [Transport::Tcp, Transport::Ipc] {
            let size = pattern_rows::PROCESSES_PUSH_PULL_SIZE;
            let m = find(
                &all,
                pattern_rows::PUSH_PULL,
                shape,
                t,
                size,
                Metric::MsgsPerSec,
            );
            let vs: Vec<_> = m.ratios(&all).iter().map(|(r, _)| *r).collect();
            assert_eq!(vs, [tokio_baseline::STREAM, zmq_baseline::PUSH_PULL]);
        }
    }
    for shape in in_process {
        for t in [Transport::Tcp, Transport::Ipc] {
            let size = pattern_rows::DEALER_ROUTER_SIZE;
            let m = find(
                &all,
                pattern_rows::DEALER_ROUTER,
                shape,
                t,
                size,
                Metric::MsgsPerSec,
            );
            let vs: Vec<_> = m.ratios(&all).iter().map(|(r, _)| *r).collect();
            assert_eq!(
                vs,
                [
                    zmq_baseline::DEALER_ROUTER,
                    tokio_baseline::PIPELINED,
                    msg_rows::PIPELINED
                ]
            );
        }
    }

    // Every libzmq and msg row found its reference in the same run.
    for m in all.iter().filter(|m| {
        m.row.starts_with("libzmq") || (m.row.starts_with("msg") && m.row != msg_rows::IDLE)
    }) {
        assert!(
            !m.ratios(&all).is_empty(),
            "{} {} has no ratio",
            m.row,
            m.transport
        );
    }

    // Every child process (the idle-connection server, the processes
    // shape's server ends) has exited and been reaped.
    assert_eq!(live_children(), Vec::<String>::new());

    let machine = Machine::detect();
    let table = markdown(&machine, &cfg, &all);
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| ")).count(),
        all.len() + 1,
        "one table line per measurement, plus the header:\n{table}"
    );
    assert!(table.contains("| msg Req/Rep | multi-thread | tcp |"));
    assert!(table.contains("| msg Pub/Sub | processes | ipc |"));
    // Every target is checked in every shape and transport its row ran in,
    // each against a reference that ran: 6 Push/Pull lines at 64 B (three
    // shapes), 4 at 1 MiB, 4 Dealer/Router lines.
    let targets = targets_table(&all);
    assert_eq!(targets.lines().count(), 2 + 6 + 4 + 4, "{targets}");
    assert!(!targets.contains("no reference"), "{targets}");
    assert!(targets.contains(
        "| msg Dealer/Router pipelined | 512 B | msgs/s | libzmq DEALER/ROUTER | ≥ 1.00× | multi-thread | ipc |"
    ));
    let json = json_lines(&machine, &cfg, &all);
    assert_eq!(json.lines().count(), all.len() + 1);
    assert!(json.lines().all(|l| l.starts_with('{') && l.ends_with('}')));
    assert!(json.lines().skip(1).all(|l| l.contains("\"shape\":\"")));
    assert!(json.contains("\"shape\":\"processes\""));
    assert!(json.contains("\"interleaved\":{\"vs\":\"tokio ping-pong\",\"rounds\":3,"));
}
