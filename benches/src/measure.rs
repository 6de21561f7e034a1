//! What a measurement is, how long experiments may take, and the runner
//! that repeats them and keeps medians.

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::stats::{median, percentile};

/// Which implementation a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Suite {
    /// Plain tokio sockets with length-prefixed frames.
    Tokio,
    /// libzmq through the `zmq` crate.
    Libzmq,
    /// msg's own sockets.
    Msg,
}

impl Suite {
    /// Lowercase name, as used in the JSON lines.
    pub const fn name(self) -> &'static str {
        match self {
            Suite::Tokio => "tokio",
            Suite::Libzmq => "libzmq",
            Suite::Msg => "msg",
        }
    }
}

/// The byte stream a row runs over. Always on loopback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Transport {
    /// TCP on 127.0.0.1, port chosen by the OS, `TCP_NODELAY` on.
    Tcp,
    /// Unix domain stream socket in a temporary directory.
    Ipc,
    /// QUIC on 127.0.0.1 (msg rows only).
    Quic,
}

impl Transport {
    /// Lowercase name: `"tcp"`, `"ipc"` or `"quic"`.
    pub const fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ipc => "ipc",
            Transport::Quic => "quic",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the two ends of a row run: the runtime shape.
///
/// The current-thread shape places each end on a thread of its own; the
/// multi-thread shape is what most applications run (`#[tokio::main]`, both
/// ends in one process); the processes shape is how two services are
/// deployed. Ratios are only taken between rows of the same shape, except
/// that the libzmq rows, which bring their own threads, are the reference
/// for every shape (and their own ratios are to the current-thread tokio
/// rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Shape {
    /// Each end on its own OS thread with a current-thread tokio runtime,
    /// like two single-threaded processes.
    CurrentThread,
    /// Both ends as tasks on one multi-thread tokio runtime with
    /// [`MULTI_THREAD_WORKERS`] worker threads, in one process.
    MultiThread,
    /// Each end in its own OS process, each process on a multi-thread
    /// runtime with tokio's default worker count (one per core), as
    /// `#[tokio::main]` builds it.
    Processes,
    /// libzmq's own placement: each end on its own std thread, with the
    /// I/O thread of its `zmq::Context`. These rows are the reference of
    /// rows of every shape.
    LibzmqThreads,
}

/// Worker threads of the runtime of [`Shape::MultiThread`].
pub const MULTI_THREAD_WORKERS: usize = 2;

impl Shape {
    /// Name, as used in experiment names, the table and the JSON lines:
    /// `"current-thread"`, `"multi-thread"`, `"processes"` or
    /// `"libzmq threads"`.
    pub const fn name(self) -> &'static str {
        match self {
            Shape::CurrentThread => "current-thread",
            Shape::MultiThread => "multi-thread",
            Shape::Processes => "processes",
            Shape::LibzmqThreads => "libzmq threads",
        }
    }

    /// Whether a row of this shape may be the reference of a row of shape
    /// `row`: the same shape, or libzmq's, which stands for every shape.
    /// The libzmq rows themselves keep their references of the
    /// current-thread shape.
    pub const fn is_reference_for(self, row: Shape) -> bool {
        matches!(
            (self, row),
            (Shape::LibzmqThreads, _)
                | (
                    Shape::CurrentThread,
                    Shape::CurrentThread | Shape::LibzmqThreads
                )
                | (Shape::MultiThread, Shape::MultiThread)
                | (Shape::Processes, Shape::Processes)
        )
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Ratios of a round-trip row to its baseline taken round by round: the
/// baseline and the row ran in alternating rounds in the same run
/// (baseline, row, baseline, row, ...), each round giving one ratio of the
/// row's percentile to the baseline's. A slow phase of the machine then
/// touches both sides of a ratio alike.
#[derive(Clone, Debug, PartialEq)]
pub struct Interleaved {
    /// The baseline row of the rounds, such as
    /// [`tokio_baseline::PING_PONG`](crate::tokio_baseline::PING_PONG).
    pub vs: &'static str,
    /// One ratio per round, `row / baseline`, every run's rounds in order.
    pub ratios: Vec<f64>,
}

impl Interleaved {
    /// The median of the per-round ratios.
    pub fn median(&self) -> f64 {
        median(&self.ratios)
    }

    /// The first and third quartiles of the per-round ratios (nearest
    /// rank).
    pub fn quartiles(&self) -> (f64, f64) {
        let sorted = self.sorted();
        (percentile(&sorted, 0.25), percentile(&sorted, 0.75))
    }

    /// The smallest and the largest per-round ratio.
    pub fn range(&self) -> (f64, f64) {
        let sorted = self.sorted();
        (
            sorted.first().copied().unwrap_or(0.0),
            sorted.last().copied().unwrap_or(0.0),
        )
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.ratios.clone();
        v.sort_by(f64::total_cmp);
        v
    }
}

/// What a measurement's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Metric {
    /// Median round-trip time, in microseconds. Lower is better.
    RttP50,
    /// 99th-percentile round-trip time, in microseconds. Lower is better.
    RttP99,
    /// Messages delivered per second (summed over receivers). Higher is
    /// better.
    MsgsPerSec,
    /// Payload bytes delivered per second (summed over receivers), not
    /// counting framing. Higher is better.
    BytesPerSec,
    /// Connections a socket held open at once. Higher is better.
    Connections,
    /// Resident memory per connection, in bytes: the growth of the
    /// process's RSS divided by the connections. Lower is better.
    MemoryPerConn,
}

impl Metric {
    /// Short name, as used in the table and the JSON lines.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::RttP50 => "rtt p50",
            Metric::RttP99 => "rtt p99",
            Metric::MsgsPerSec => "msgs/s",
            Metric::BytesPerSec => "bytes/s",
            Metric::Connections => "connections",
            Metric::MemoryPerConn => "memory/conn",
        }
    }

    /// Unit of [`Measurement::value`]: `"us"`, `"msgs/s"`, `"B/s"`,
    /// `"conns"` or `"B"`.
    pub const fn unit(self) -> &'static str {
        match self {
            Metric::RttP50 | Metric::RttP99 => "us",
            Metric::MsgsPerSec => "msgs/s",
            Metric::BytesPerSec => "B/s",
            Metric::Connections => "conns",
            Metric::MemoryPerConn => "B",
        }
    }

    /// Whether a smaller value is the better one (latencies, memory).
    pub const fn lower_is_better(self) -> bool {
        matches!(
            self,
            Metric::RttP50 | Metric::RttP99 | Metric::MemoryPerConn
        )
    }
}

/// One number of the comparison: a row, on one transport, at one message
/// size, for one metric.
///
/// Experiments return one `Measurement` per metric with a single entry in
/// `samples`; [`run`] merges the repetitions, so its results hold every
/// run's value in `samples` and their median in `value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// Implementation measured.
    pub suite: Suite,
    /// Row name, such as [`tokio_baseline::STREAM`](crate::tokio_baseline::STREAM).
    pub row: &'static str,
    /// Where the two ends ran.
    pub shape: Shape,
    /// Transport.
    pub transport: Transport,
    /// Payload size of each message, in bytes.
    pub size: usize,
    /// What `value` is.
    pub metric: Metric,
    /// The value, in [`Metric::unit`]: the median of `samples`.
    pub value: f64,
    /// The value from each run, in run order.
    pub samples: Vec<f64>,
    /// Rows this one is compared with. A ratio `value / reference value` is
    /// reported for each reference row that has a measurement with the same
    /// transport (or [`Measurement::ref_transport`]), size and metric in the
    /// same run.
    pub refs: Vec<&'static str>,
    /// The transport of the reference rows when it is not this row's own
    /// (msg over QUIC is compared with msg over TCP); `None` for the same.
    pub ref_transport: Option<Transport>,
    /// Per-round ratios to a baseline measured in alternating rounds (the
    /// Req/Rep round-trip rows over TCP and IPC); `None` for other rows.
    pub interleaved: Option<Interleaved>,
}

impl Measurement {
    /// A measurement from a single run, of [`Shape::LibzmqThreads`] for
    /// the libzmq suite and of [`Shape::CurrentThread`] for the others
    /// (see [`Measurement::on`]).
    pub fn new(
        suite: Suite,
        row: &'static str,
        transport: Transport,
        size: usize,
        metric: Metric,
        value: f64,
    ) -> Self {
        let shape = match suite {
            Suite::Libzmq => Shape::LibzmqThreads,
            Suite::Tokio | Suite::Msg => Shape::CurrentThread,
        };
        Measurement {
            suite,
            row,
            shape,
            transport,
            size,
            metric,
            value,
            samples: vec![value],
            refs: Vec::new(),
            ref_transport: None,
            interleaved: None,
        }
    }

    /// Set the shape the row ran in (see [`Measurement::shape`]).
    #[must_use]
    pub fn on(mut self, shape: Shape) -> Self {
        self.shape = shape;
        self
    }

    /// Attach per-round ratios to a baseline (see
    /// [`Measurement::interleaved`]).
    #[must_use]
    pub fn with_interleaved(mut self, vs: &'static str, ratios: Vec<f64>) -> Self {
        self.interleaved = Some(Interleaved { vs, ratios });
        self
    }

    /// Add rows to compare with (see [`Measurement::refs`]).
    #[must_use]
    pub fn compared_with(mut self, rows: &[&'static str]) -> Self {
        self.refs.extend_from_slice(rows);
        self
    }

    /// Compare with the reference rows over `transport` instead of this
    /// row's own (see [`Measurement::ref_transport`]).
    #[must_use]
    pub fn compared_over(mut self, transport: Transport) -> Self {
        self.ref_transport = Some(transport);
        self
    }

    /// Whether `other` measures the same thing (row, shape, transport, size
    /// and metric), possibly in another run.
    pub fn same_key(&self, other: &Measurement) -> bool {
        self.row == other.row
            && self.shape == other.shape
            && self.transport == other.transport
            && self.size == other.size
            && self.metric == other.metric
    }

    /// The ratios of this measurement to its reference rows found in
    /// `all`, as `(reference row, value / reference value)`, in the order of
    /// [`Measurement::refs`]. A reference must be of the same shape, or a
    /// libzmq row (see [`Shape::is_reference_for`]). References that did
    /// not run are left out.
    pub fn ratios(&self, all: &[Measurement]) -> Vec<(&'static str, f64)> {
        let transport = self.ref_transport.unwrap_or(self.transport);
        self.refs
            .iter()
            .filter_map(|&r| {
                all.iter()
                    .find(|m| {
                        m.row == r
                            && m.shape.is_reference_for(self.shape)
                            && m.transport == transport
                            && m.size == self.size
                            && m.metric == self.metric
                    })
                    .filter(|m| m.value > 0.0)
                    .map(|m| (r, self.value / m.value))
            })
            .collect()
    }
}

/// Counts and time bounds of the experiments.
///
/// Every loop stops at its count or at [`Config::time_limit`], whichever
/// comes first; every blocking wait gives up after the hard limit
/// (`time_limit` plus ten seconds). Use [`Config::full`] for numbers and
/// [`Config::quick`] for a smoke run of a few seconds.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) quick: bool,
    pub(crate) runs: usize,
    pub(crate) time_limit: Duration,
    pub(crate) rtt_count: usize,
    pub(crate) pipelined_count: u64,
    pub(crate) in_flight: usize,
    pub(crate) stream_count: u64,
    pub(crate) stream_bytes: u64,
    pub(crate) pubsub_count: u64,
    pub(crate) join_timeout: Duration,
    pub(crate) idle_connections: usize,
    pub(crate) helper_exe: Option<std::path::PathBuf>,
    pub(crate) interleave_rounds: usize,
    pub(crate) interleave_count: usize,
}

impl Config {
    /// Full measurement: 3 runs, up to one second per measurement (about
    /// two minutes for the baselines).
    pub fn full() -> Self {
        Config {
            quick: false,
            runs: 3,
            time_limit: Duration::from_secs(1),
            rtt_count: 200_000,
            pipelined_count: 50_000_000,
            in_flight: 1024,
            stream_count: 100_000_000,
            stream_bytes: 64 << 30,
            pubsub_count: 100_000_000,
            join_timeout: Duration::from_secs(5),
            idle_connections: 10_000,
            helper_exe: None,
            interleave_rounds: 9,
            interleave_count: 2000,
        }
    }

    /// Smoke run: 1 run, tiny counts, at most 30 ms per measurement. Its
    /// numbers mean nothing; it checks that every row still runs.
    pub fn quick() -> Self {
        Config {
            quick: true,
            runs: 1,
            time_limit: Duration::from_millis(30),
            rtt_count: 200,
            pipelined_count: 4096,
            in_flight: 1024,
            stream_count: 2000,
            stream_bytes: 4 << 20,
            pubsub_count: 2000,
            join_timeout: Duration::from_secs(5),
            idle_connections: 200,
            helper_exe: None,
            interleave_rounds: 3,
            interleave_count: 40,
        }
    }

    /// Number of runs whose median is reported (at least 1).
    pub fn runs(&mut self, runs: usize) -> &mut Self {
        self.runs = runs.max(1);
        self
    }

    /// Upper bound on the measured part of each experiment.
    /// Default: 1 s ([`Config::full`]), 30 ms ([`Config::quick`]).
    pub fn time_limit(&mut self, limit: Duration) -> &mut Self {
        self.time_limit = limit;
        self
    }

    /// The program that serves the idle-connection experiment's Rep socket
    /// in a child process, so that its memory is measured apart from the
    /// clients': a binary that calls
    /// [`msg_rows::idle_server_main`](crate::msg_rows::idle_server_main)
    /// when started with [`msg_rows::IDLE_SERVER_ARG`](crate::msg_rows::IDLE_SERVER_ARG),
    /// such as `compare`. Default: none, and that experiment is skipped.
    pub fn helper_exe(&mut self, exe: impl Into<std::path::PathBuf>) -> &mut Self {
        self.helper_exe = Some(exe.into());
        self
    }

    /// Connections the idle-connection experiment opens to one Rep socket.
    /// Default: 10,000 ([`Config::full`]), 200 ([`Config::quick`]).
    pub fn idle_connections(&mut self, n: usize) -> &mut Self {
        self.idle_connections = n.max(1);
        self
    }

    /// Rounds of each side of an interleaved round-trip comparison (see
    /// [`Interleaved`]), and round trips per round. Default: 9 rounds of
    /// 2000 ([`Config::full`]), 3 of 40 ([`Config::quick`]).
    pub fn interleave(&mut self, rounds: usize, count: usize) -> &mut Self {
        self.interleave_rounds = rounds.max(1);
        self.interleave_count = count.max(1);
        self
    }

    /// Whether this is the quick smoke configuration.
    pub fn is_quick(&self) -> bool {
        self.quick
    }

    /// Number of runs.
    pub fn get_runs(&self) -> usize {
        self.runs
    }

    /// Upper bound on any blocking wait: the time limit plus ten seconds.
    pub(crate) fn hard_limit(&self) -> Duration {
        self.time_limit + Duration::from_secs(10)
    }

    /// How many messages of `size` bytes a throughput loop may send:
    /// `stream_count`, or fewer so that at most `stream_bytes` move.
    pub(crate) fn stream_count_for(&self, size: usize) -> u64 {
        let by_bytes = self.stream_bytes / (size.max(1) as u64);
        self.stream_count.min(by_bytes).max(1)
    }

    /// Round trips to discard before recording: a tenth of the count, at
    /// most 1000.
    pub(crate) fn rtt_warmup(&self) -> usize {
        (self.rtt_count / 10).min(1000)
    }

    /// Round trips to discard at the start of each interleaved round: a
    /// twentieth of the round, at most 100.
    pub(crate) fn interleave_warmup(&self) -> usize {
        (self.interleave_count / 20).min(100)
    }

    /// Upper bound on one interleaved round: a quarter of the time limit.
    pub(crate) fn interleave_round_limit(&self) -> Duration {
        self.time_limit / 4
    }

    /// Upper bound on any blocking wait of an interleaved comparison: every
    /// round at its bound, plus ten seconds.
    pub(crate) fn interleave_hard_limit(&self) -> Duration {
        let rounds = u32::try_from(2 * self.interleave_rounds).unwrap_or(u32::MAX);
        self.interleave_round_limit().saturating_mul(rounds) + Duration::from_secs(10)
    }
}

/// Deadline `limit` from now.
pub(crate) fn deadline(limit: Duration) -> Instant {
    Instant::now() + limit
}

/// The body of an [`Experiment`].
type ExperimentFn = dyn Fn(&Config) -> Result<Vec<Measurement>, BenchError> + Send + Sync;

/// A named, repeatable piece of the comparison that yields one or more
/// measurements per run.
pub struct Experiment {
    name: String,
    func: Box<ExperimentFn>,
}

impl Experiment {
    /// An experiment called `name` that runs `func`.
    pub fn new(
        name: impl Into<String>,
        func: impl Fn(&Config) -> Result<Vec<Measurement>, BenchError> + Send + Sync + 'static,
    ) -> Self {
        Experiment {
            name: name.into(),
            func: Box::new(func),
        }
    }

    /// Name shown in progress output, such as `"tokio stream tcp 64 B"`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run once.
    ///
    /// # Errors
    ///
    /// Whatever the experiment reports; see [`BenchError`].
    pub fn run_once(&self, cfg: &Config) -> Result<Vec<Measurement>, BenchError> {
        (self.func)(cfg)
    }
}

impl fmt::Debug for Experiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Experiment")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Run every experiment `cfg.runs` times and merge the repetitions.
///
/// The whole list runs once per round, so that slow drift of the machine
/// affects all rows alike instead of the last ones. `progress` is called
/// before each experiment with `(round, experiment)`, rounds counted from 1.
/// The result holds one [`Measurement`] per key, in first-seen order, with
/// every round's value in `samples` and the median in `value` (and, for
/// rows with [`Measurement::interleaved`], every run's per-round ratios).
///
/// # Errors
///
/// The first experiment that fails stops the run.
pub fn run(
    cfg: &Config,
    experiments: &[Experiment],
    mut progress: impl FnMut(usize, &Experiment),
) -> Result<Vec<Measurement>, BenchError> {
    let mut merged: Vec<Measurement> = Vec::new();
    for round in 1..=cfg.runs {
        for exp in experiments {
            progress(round, exp);
            for m in exp.run_once(cfg)? {
                match merged.iter_mut().find(|seen| seen.same_key(&m)) {
                    Some(seen) => {
                        seen.samples.extend_from_slice(&m.samples);
                        match (&mut seen.interleaved, m.interleaved) {
                            (Some(seen), Some(new)) => seen.ratios.extend(new.ratios),
                            (seen @ None, new) => *seen = new,
                            (Some(_), None) => {}
                        }
                    }
                    None => merged.push(m),
                }
            }
        }
    }
    for m in &mut merged {
        m.value = median(&m.samples);
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(row: &'static str, metric: Metric, value: f64) -> Measurement {
        Measurement::new(Suite::Tokio, row, Transport::Tcp, 64, metric, value)
    }

    #[test]
    fn ratios_match_transport_size_and_metric() {
        let reference = m("ref", Metric::MsgsPerSec, 200.0);
        let other_metric = m("ref", Metric::BytesPerSec, 1.0);
        let mut other_size = m("ref", Metric::MsgsPerSec, 1.0);
        other_size.size = 1024;
        let row = m("row", Metric::MsgsPerSec, 50.0).compared_with(&["ref", "absent"]);
        let all = [other_metric, other_size, reference, row.clone()];
        assert_eq!(row.ratios(&all), vec![("ref", 0.25)]);
    }

    #[test]
    fn ratios_stay_within_a_shape_and_libzmq_stands_for_every_shape() {
        let tokio_ct = m("tokio", Metric::RttP50, 10.0);
        let tokio_mt = m("tokio", Metric::RttP50, 20.0).on(Shape::MultiThread);
        let mut zmq = m("zmq", Metric::RttP50, 40.0);
        zmq.suite = Suite::Libzmq;
        zmq.shape = Shape::LibzmqThreads;
        let zmq = zmq.compared_with(&["tokio"]);
        let row = m("row", Metric::RttP50, 30.0)
            .on(Shape::MultiThread)
            .compared_with(&["tokio", "zmq"]);
        let procs = m("row", Metric::RttP50, 30.0)
            .on(Shape::Processes)
            .compared_with(&["tokio", "zmq"]);
        let all = [tokio_ct, tokio_mt, zmq.clone(), row.clone(), procs.clone()];
        assert_eq!(row.ratios(&all), vec![("tokio", 1.5), ("zmq", 0.75)]);
        assert_eq!(procs.ratios(&all), vec![("zmq", 0.75)]);
        assert_eq!(zmq.ratios(&all), vec![("tokio", 4.0)]);
        assert!(!row.same_key(&procs));
    }

    #[test]
    fn interleaved_ratios_report_median_quartiles_and_range() {
        let i = Interleaved {
            vs: "base",
            ratios: vec![1.4, 1.0, 1.2, 3.0, 1.1, 1.3, 1.2, 0.9],
        };
        assert_eq!(i.median(), 1.2);
        assert_eq!(i.quartiles(), (1.0, 1.3));
        assert_eq!(i.range(), (0.9, 3.0));
    }

    #[test]
    fn run_pools_the_interleaved_rounds_of_every_run() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = std::sync::Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let exp = Experiment::new("rounds", move |_| {
            let n = f64::from(c.fetch_add(1, Ordering::Relaxed));
            Ok(vec![
                m("row", Metric::RttP50, n).with_interleaved("base", vec![n, n + 0.5]),
            ])
        });
        let mut cfg = Config::quick();
        cfg.runs(2);
        let out = run(&cfg, &[exp], |_, _| {}).unwrap();
        let i = out[0].interleaved.as_ref().unwrap();
        assert_eq!(i.ratios, vec![0.0, 0.5, 1.0, 1.5]);
    }

    #[test]
    fn run_merges_rounds_into_medians() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = std::sync::Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let exp = Experiment::new("counting", move |_| {
            let n = c.fetch_add(1, Ordering::Relaxed);
            Ok(vec![m("row", Metric::RttP50, [5.0, 1.0, 3.0][n as usize])])
        });
        let mut cfg = Config::quick();
        cfg.runs(3);
        let out = run(&cfg, &[exp], |_, _| {}).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].samples, vec![5.0, 1.0, 3.0]);
        assert_eq!(out[0].value, 3.0);
    }
}
