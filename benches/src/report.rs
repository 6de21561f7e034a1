//! The markdown table and the JSON lines.

use std::fmt::Write as _;

use crate::machine::Machine;
use crate::measure::{Config, Interleaved, Measurement, Metric, Shape};

/// The report as markdown: the machine, then one table row per
/// measurement, with its ratios to the reference rows of the same run.
pub fn markdown(machine: &Machine, cfg: &Config, measurements: &[Measurement]) -> String {
    let mut out = String::new();
    let mode = if cfg.is_quick() {
        "quick (smoke run, numbers are not meaningful)"
    } else {
        "full"
    };
    let _ = writeln!(out, "## msg comparison, {}", machine.date);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "- machine: {} cores, {}, Linux {}",
        machine.cores, machine.cpu, machine.kernel
    );
    let _ = writeln!(
        out,
        "- build: {}, {} profile; libzmq {} (bundled)",
        machine.rustc, machine.profile, machine.libzmq
    );
    let _ = writeln!(
        out,
        "- mode: {mode}; median of {} run(s), each measurement bounded to {} ms per run",
        cfg.get_runs(),
        cfg.time_limit.as_millis()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Ratios are this row's value divided by the reference row's, same shape, transport, \
         size and metric, same run (libzmq rows are the reference for every shape): for round \
         trips below 1 is faster than the reference, for throughput above 1 is. \"interleaved\" \
         ratios come from alternating rounds of the row and its baseline in one run: the \
         median of the per-round ratios, their interquartile range and their range."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| row | shape | transport | size | metric | value | unit | ratio |"
    );
    let _ = writeln!(out, "|---|---|---|--:|---|--:|---|---|");
    for m in measurements {
        let (value, unit) = human(m.metric, m.value);
        let over = m
            .ref_transport
            .map(|t| format!(" over {t}"))
            .unwrap_or_default();
        let mut ratios = m
            .ratios(measurements)
            .iter()
            .map(|(row, r)| format!("{}× {row}{over}", sig3(*r)))
            .collect::<Vec<_>>();
        if let Some(i) = &m.interleaved {
            ratios.push(interleaved_text(i));
        }
        let ratios = ratios.join("; ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {value} | {unit} | {ratios} |",
            m.row,
            m.shape,
            m.transport,
            size_label(m.size),
            m.metric.name(),
        );
    }
    out
}

/// The rows that ran in more than one shape, side by side: one line per
/// row, transport, size and metric, one column per shape
/// ([`Shape::CurrentThread`], [`Shape::MultiThread`],
/// [`Shape::Processes`]), each cell holding the value and its ratio to the
/// row's first reference in the same shape (named in the `vs` column), and
/// the median interleaved ratio where there is one. libzmq rows, which
/// have one shape, are left out. Empty when no row ran in two shapes.
pub fn shapes_table(measurements: &[Measurement]) -> String {
    const SHAPES: [Shape; 3] = [Shape::CurrentThread, Shape::MultiThread, Shape::Processes];
    let mut keys: Vec<&Measurement> = Vec::new();
    for m in measurements {
        if SHAPES.contains(&m.shape)
            && !keys.iter().any(|k| {
                k.row == m.row
                    && k.transport == m.transport
                    && k.size == m.size
                    && k.metric == m.metric
            })
        {
            keys.push(m);
        }
    }
    let mut out = String::new();
    for key in keys {
        let cells: Vec<Option<&Measurement>> = SHAPES
            .iter()
            .map(|&shape| {
                measurements.iter().find(|m| {
                    m.shape == shape
                        && m.row == key.row
                        && m.transport == key.transport
                        && m.size == key.size
                        && m.metric == key.metric
                })
            })
            .collect();
        if cells.iter().flatten().count() < 2 {
            continue;
        }
        if out.is_empty() {
            let _ = writeln!(
                out,
                "| row | transport | size | metric | vs | current-thread | multi-thread | processes |"
            );
            let _ = writeln!(out, "|---|---|--:|---|---|--:|--:|--:|");
        }
        let vs = cells
            .iter()
            .flatten()
            .find_map(|m| m.ratios(measurements).first().map(|(r, _)| *r))
            .unwrap_or("");
        let over = key
            .ref_transport
            .filter(|_| !vs.is_empty())
            .map(|t| format!(" over {t}"))
            .unwrap_or_default();
        let cells = cells
            .iter()
            .map(|m| match m {
                None => "-".to_owned(),
                Some(m) => {
                    let (value, unit) = human(m.metric, m.value);
                    let mut cell = format!("{value} {unit}");
                    if let Some((_, r)) = m.ratios(measurements).iter().find(|(r, _)| *r == vs) {
                        let _ = write!(cell, ", {}×", sig3(*r));
                    }
                    if let Some(i) = &m.interleaved {
                        let _ = write!(cell, " (interleaved {}×)", sig3(i.median()));
                    }
                    cell
                }
            })
            .collect::<Vec<_>>()
            .join(" | ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {vs}{over} | {cells} |",
            key.row,
            key.transport,
            size_label(key.size),
            key.metric.name(),
        );
    }
    out
}

/// An interleaved comparison in the table: `interleaved 1.31× tokio
/// ping-pong (IQR 1.25–1.40, range 1.10–1.62, 27 rounds)`.
fn interleaved_text(i: &Interleaved) -> String {
    let (q1, q3) = i.quartiles();
    let (min, max) = i.range();
    format!(
        "interleaved {}× {} (IQR {}–{}, range {}–{}, {} rounds)",
        sig3(i.median()),
        i.vs,
        sig3(q1),
        sig3(q3),
        sig3(min),
        sig3(max),
        i.ratios.len()
    )
}

/// The report as JSON lines: first one object with `"kind":"machine"`, then
/// one with `"kind":"measurement"` per measurement. Values are in
/// [`Metric::unit`]; `shape` is the [`Shape`](crate::Shape)'s name;
/// `samples` has each run's value; `ratios` has `{"vs": row, "ratio": value
/// / reference}` for each reference row present; rows with interleaved
/// rounds add `"interleaved": {"vs", "rounds", "median", "q1", "q3", "min",
/// "max", "ratios"}`, `ratios` holding every round's ratio.
pub fn json_lines(machine: &Machine, cfg: &Config, measurements: &[Measurement]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{{\"kind\":\"machine\",\"date\":{},\"cores\":{},\"cpu\":{},\"kernel\":{},\"rustc\":{},\"profile\":{},\"libzmq\":{},\"quick\":{},\"runs\":{},\"time_limit_ms\":{}}}",
        json_str(&machine.date),
        machine.cores,
        json_str(&machine.cpu),
        json_str(&machine.kernel),
        json_str(&machine.rustc),
        json_str(machine.profile),
        json_str(&machine.libzmq),
        cfg.is_quick(),
        cfg.get_runs(),
        cfg.time_limit.as_millis(),
    );
    for m in measurements {
        let samples = m
            .samples
            .iter()
            .map(|&s| json_num(s))
            .collect::<Vec<_>>()
            .join(",");
        let ratios = m
            .ratios(measurements)
            .iter()
            .map(|(row, r)| {
                let over = m
                    .ref_transport
                    .map(|t| format!(",\"over\":{}", json_str(t.name())))
                    .unwrap_or_default();
                format!(
                    "{{\"vs\":{},\"ratio\":{}{over}}}",
                    json_str(row),
                    json_num(*r)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let interleaved = m
            .interleaved
            .as_ref()
            .map(|i| {
                let (q1, q3) = i.quartiles();
                let (min, max) = i.range();
                let all = i
                    .ratios
                    .iter()
                    .map(|&r| json_num(r))
                    .collect::<Vec<_>>()
                    .join(",");
                format!(
                    ",\"interleaved\":{{\"vs\":{},\"rounds\":{},\"median\":{},\"q1\":{},\"q3\":{},\"min\":{},\"max\":{},\"ratios\":[{all}]}}",
                    json_str(i.vs),
                    i.ratios.len(),
                    json_num(i.median()),
                    json_num(q1),
                    json_num(q3),
                    json_num(min),
                    json_num(max),
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{{\"kind\":\"measurement\",\"suite\":{},\"row\":{},\"shape\":{},\"transport\":{},\"size\":{},\"metric\":{},\"unit\":{},\"value\":{},\"samples\":[{samples}],\"ratios\":[{ratios}]{interleaved}}}",
            json_str(m.suite.name()),
            json_str(m.row),
            json_str(m.shape.name()),
            json_str(m.transport.name()),
            m.size,
            json_str(m.metric.name()),
            json_str(m.metric.unit()),
            json_num(m.value),
        );
    }
    out
}

/// A message size as people write it: `64 B`, `1 KiB`, `64 KiB`, `1 MiB`.
pub(crate) fn size_label(size: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if size == 0 {
        "-".to_owned()
    } else if size >= MIB && size % MIB == 0 {
        format!("{} MiB", size / MIB)
    } else if size >= KIB && size % KIB == 0 {
        format!("{} KiB", size / KIB)
    } else {
        format!("{size} B")
    }
}

/// A value scaled to a readable unit, with three significant digits.
fn human(metric: Metric, value: f64) -> (String, &'static str) {
    let scaled = |units: &[(f64, &'static str)]| {
        let (div, unit) = units
            .iter()
            .copied()
            .find(|&(div, _)| value.abs() >= div)
            .unwrap_or(units[units.len() - 1]);
        (sig3(value / div), unit)
    };
    match metric {
        Metric::RttP50 | Metric::RttP99 => scaled(&[(1e3, "ms"), (1.0, "µs")]),
        Metric::MsgsPerSec => scaled(&[(1e6, "M msgs/s"), (1e3, "k msgs/s"), (1.0, "msgs/s")]),
        Metric::BytesPerSec => scaled(&[(1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s"), (1.0, "B/s")]),
        Metric::Connections => scaled(&[(1.0, "conns")]),
        Metric::MemoryPerConn => scaled(&[(1024.0, "KiB"), (1.0, "B")]),
    }
}

/// `x` with three significant digits (more for values of 1000 and up, which
/// keep all their integer digits).
fn sig3(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let a = x.abs();
    let decimals = if a >= 100.0 || a == 0.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        // 0.0123 -> 3 leading decimals + 2.
        (2 - a.log10().floor() as i32).clamp(2, 9) as usize
    };
    format!("{x:.decimals$}")
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `x` as a JSON number; `null` for NaN and infinities, which JSON lacks.
fn json_num(x: f64) -> String {
    if x.is_finite() {
        x.to_string()
    } else {
        "null".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_labelled_in_binary_units() {
        assert_eq!(size_label(64), "64 B");
        assert_eq!(size_label(512), "512 B");
        assert_eq!(size_label(1024), "1 KiB");
        assert_eq!(size_label(65536), "64 KiB");
        assert_eq!(size_label(1 << 20), "1 MiB");
        assert_eq!(size_label(1500), "1500 B");
    }

    #[test]
    fn values_scale_to_readable_units() {
        assert_eq!(
            human(Metric::MsgsPerSec, 27_123_456.0),
            ("27.1".into(), "M msgs/s")
        );
        assert_eq!(human(Metric::BytesPerSec, 4.2e9), ("4.20".into(), "GB/s"));
        assert_eq!(human(Metric::RttP50, 6.54), ("6.54".into(), "µs"));
        assert_eq!(human(Metric::RttP99, 1234.0), ("1.23".into(), "ms"));
        assert_eq!(sig3(0.0712), "0.0712");
        assert_eq!(sig3(123_456.0), "123456");
    }

    #[test]
    fn json_lines_carry_the_shape_and_the_interleaved_rounds() {
        use crate::measure::{Shape, Suite, Transport};
        let base = Measurement::new(
            Suite::Tokio,
            "base",
            Transport::Ipc,
            64,
            Metric::RttP50,
            10.0,
        )
        .on(Shape::Processes);
        let row = Measurement::new(Suite::Msg, "row", Transport::Ipc, 64, Metric::RttP50, 15.0)
            .on(Shape::Processes)
            .compared_with(&["base"])
            .with_interleaved("base", vec![1.5, 1.25, 2.0]);
        let all = [base, row];
        let machine = Machine::detect();
        let json = json_lines(&machine, &Config::quick(), &all);
        let line = json.lines().nth(2).unwrap();
        assert!(line.contains(r#""row":"row","shape":"processes","transport":"ipc""#));
        assert!(line.contains(r#""ratios":[{"vs":"base","ratio":1.5}]"#));
        assert!(line.contains(
            r#""interleaved":{"vs":"base","rounds":3,"median":1.5,"q1":1.25,"q3":2,"min":1.25,"max":2,"ratios":[1.5,1.25,2]}"#
        ));
        let table = markdown(&machine, &Config::quick(), &all);
        assert!(table.contains(
            "| row | processes | ipc | 64 B | rtt p50 | 15.0 | µs | 1.50× base; \
             interleaved 1.50× base (IQR 1.25–2.00, range 1.25–2.00, 3 rounds) |"
        ));
    }

    #[test]
    fn shapes_side_by_side_pair_each_value_with_its_ratio_in_its_shape() {
        use crate::measure::{Shape, Suite, Transport};
        let m = |suite, row, shape, v| {
            Measurement::new(suite, row, Transport::Tcp, 64, Metric::RttP50, v).on(shape)
        };
        let all = [
            m(Suite::Tokio, "base", Shape::CurrentThread, 10.0),
            m(Suite::Tokio, "base", Shape::MultiThread, 20.0),
            m(Suite::Msg, "row", Shape::CurrentThread, 15.0).compared_with(&["base"]),
            m(Suite::Msg, "row", Shape::MultiThread, 50.0)
                .compared_with(&["base"])
                .with_interleaved("base", vec![2.0, 3.0, 2.5]),
            m(Suite::Msg, "alone", Shape::CurrentThread, 1.0),
        ];
        let table = shapes_table(&all);
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(table.contains("| base | tcp | 64 B | rtt p50 |  | 10.0 µs | 20.0 µs | - |"));
        assert!(table.contains(
            "| row | tcp | 64 B | rtt p50 | base | 15.0 µs, 1.50× | 50.0 µs, 2.50× (interleaved 2.50×) | - |"
        ));
        assert!(shapes_table(&all[4..]).is_empty());
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        assert_eq!(json_num(f64::NAN), "null");
        assert_eq!(json_num(2.5), "2.5");
    }
}
