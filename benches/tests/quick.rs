//! The comparison's quick mode, in-process: every row runs and yields a
//! finite, positive number. Nothing about speed is asserted.

use msg_benches::{
    Config, Machine, Measurement, Metric, Transport, experiments, json_lines, markdown, msg_rows,
    reliable_rows, run, tokio_baseline, zmq_baseline,
};

fn expect_row(all: &[Measurement], row: &str, transport: Transport, size: usize, metric: Metric) {
    assert!(
        all.iter().any(|m| m.row == row
            && m.transport == transport
            && m.size == size
            && m.metric == metric),
        "missing {row} {transport} {size} B {}",
        metric.name()
    );
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

    for t in [Transport::Tcp, Transport::Ipc] {
        expect_row(&all, tokio_baseline::PING_PONG, t, 64, Metric::RttP50);
        expect_row(&all, tokio_baseline::PING_PONG, t, 64, Metric::RttP99);
        expect_row(&all, tokio_baseline::PIPELINED, t, 512, Metric::MsgsPerSec);
        expect_row(&all, zmq_baseline::REQ_REP, t, 64, Metric::RttP50);
        expect_row(&all, zmq_baseline::REQ_REP, t, 64, Metric::RttP99);
        expect_row(&all, zmq_baseline::PUB_SUB, t, 64, Metric::MsgsPerSec);
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

    let machine = Machine::detect();
    let table = markdown(&machine, &cfg, &all);
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| ")).count(),
        all.len() + 1,
        "one table line per measurement, plus the header:\n{table}"
    );
    let json = json_lines(&machine, &cfg, &all);
    assert_eq!(json.lines().count(), all.len() + 1);
    assert!(json.lines().all(|l| l.starts_with('{') && l.ends_with('}')));
}
