//! Targets: ratios a row should reach against one of its references, and
//! whether a run met them.
//!
//! A target is a line of the report, never an assertion: the comparison
//! never fails because something was slow. Each target is checked in every
//! shape and on every transport its row ran in, against the reference of
//! the same shape (or a libzmq row), as [`Measurement::ratios`] pairs them.

use std::fmt::Write as _;

use crate::measure::{Measurement, Metric};
use crate::{pattern_rows, tokio_baseline, zmq_baseline};

/// A ratio `row / vs` of at least `at_least`, for one size and metric.
/// Throughput metrics only: higher is better.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    /// The row the target is for, such as [`pattern_rows::PUSH_PULL`].
    pub row: &'static str,
    /// Its payload size, in bytes.
    pub size: usize,
    /// Its metric.
    pub metric: Metric,
    /// The reference row the ratio is taken against; it must be one of
    /// the row's [`Measurement::refs`].
    pub vs: &'static str,
    /// The smallest ratio that meets the target.
    pub at_least: f64,
}

/// Every target, in report order: msg Push/Pull at 64 B at least as many
/// messages per second as libzmq PUSH/PULL, at 1 MiB at least 0.85 of the
/// plain tokio stream's bytes per second, and pipelined Dealer/Router at
/// 512 B at least as many echoes per second as libzmq DEALER/ROUTER.
pub fn targets() -> Vec<Target> {
    vec![
        Target {
            row: pattern_rows::PUSH_PULL,
            size: 64,
            metric: Metric::MsgsPerSec,
            vs: zmq_baseline::PUSH_PULL,
            at_least: 1.0,
        },
        Target {
            row: pattern_rows::PUSH_PULL,
            size: 1024 * 1024,
            metric: Metric::BytesPerSec,
            vs: tokio_baseline::STREAM,
            at_least: 0.85,
        },
        Target {
            row: pattern_rows::DEALER_ROUTER,
            size: pattern_rows::DEALER_ROUTER_SIZE,
            metric: Metric::MsgsPerSec,
            vs: zmq_baseline::DEALER_ROUTER,
            at_least: 1.0,
        },
    ]
}

/// One target checked against one measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Check<'a> {
    /// The target.
    pub target: Target,
    /// The measurement of the target's row, in one shape and transport.
    pub measurement: &'a Measurement,
    /// Its ratio to the target's reference; `None` when the reference did
    /// not run.
    pub ratio: Option<f64>,
}

impl Check<'_> {
    /// Whether the ratio reaches the target; `None` without a ratio.
    pub fn met(&self) -> Option<bool> {
        self.ratio.map(|r| r >= self.target.at_least)
    }
}

/// Every target of `targets` against every measurement of its row in
/// `measurements`, in target order, then table order.
pub fn check<'a>(targets: &[Target], measurements: &'a [Measurement]) -> Vec<Check<'a>> {
    let mut out = Vec::new();
    for &target in targets {
        for m in measurements
            .iter()
            .filter(|m| m.row == target.row && m.size == target.size && m.metric == target.metric)
        {
            let ratio = m
                .ratios(measurements)
                .into_iter()
                .find_map(|(row, r)| (row == target.vs).then_some(r));
            out.push(Check {
                target,
                measurement: m,
                ratio,
            });
        }
    }
    out
}

/// The targets as a markdown table: one line per target, shape and
/// transport, with the ratio and `met`, `missed` or `no reference`. Empty
/// when no target's row ran.
pub fn targets_table(measurements: &[Measurement]) -> String {
    let checks = check(&targets(), measurements);
    let mut out = String::new();
    if checks.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "| row | size | metric | vs | target | shape | transport | ratio | |"
    );
    let _ = writeln!(out, "|---|--:|---|---|--:|---|---|--:|---|");
    for c in &checks {
        let t = c.target;
        let m = c.measurement;
        let (ratio, status) = match (c.ratio, c.met()) {
            (Some(r), Some(true)) => (format!("{r:.2}×"), "met"),
            (Some(r), _) => (format!("{r:.2}×"), "missed"),
            (None, _) => ("-".to_owned(), "no reference"),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | ≥ {:.2}× | {} | {} | {ratio} | {status} |",
            t.row,
            crate::report::size_label(t.size),
            t.metric.name(),
            t.vs,
            t.at_least,
            m.shape,
            m.transport,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Shape, Suite, Transport};

    #[test]
    fn targets_are_met_missed_or_without_reference_per_shape() {
        let m = |suite, row, shape, v| {
            Measurement::new(suite, row, Transport::Tcp, 64, Metric::MsgsPerSec, v).on(shape)
        };
        let zmq = m(
            Suite::Libzmq,
            zmq_baseline::PUSH_PULL,
            Shape::LibzmqThreads,
            100.0,
        );
        let refs = [tokio_baseline::STREAM, zmq_baseline::PUSH_PULL];
        let ct = m(
            Suite::Msg,
            pattern_rows::PUSH_PULL,
            Shape::CurrentThread,
            120.0,
        )
        .compared_with(&refs);
        let mt = m(
            Suite::Msg,
            pattern_rows::PUSH_PULL,
            Shape::MultiThread,
            90.0,
        )
        .compared_with(&refs);
        let all = [zmq, ct, mt];
        let checks = check(&targets(), &all);
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].met(), Some(true));
        assert_eq!(checks[1].ratio, Some(0.9));
        assert_eq!(checks[1].met(), Some(false));
        let table = targets_table(&all);
        assert!(table.contains(
            "| msg Push/Pull | 64 B | msgs/s | libzmq PUSH/PULL | ≥ 1.00× | current-thread | tcp | 1.20× | met |"
        ));
        assert!(table.contains("| multi-thread | tcp | 0.90× | missed |"));
        let alone = &all[1..2];
        assert!(targets_table(alone).contains("| - | no reference |"));
        assert_eq!(targets_table(&[]), "");
    }
}
