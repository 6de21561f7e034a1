//! The end-to-end comparison: msg against plain tokio and libzmq, on this
//! machine, in one run.
//!
//! ```text
//! cargo run --release -p msg-benches --bin compare -- [--quick] [--runs N] [--json FILE] [--only TEXT]...
//! ```
//!
//! Prints the machine, a markdown table, the rows that ran in more than
//! one shape side by side and the targets (met or missed) to stdout,
//! progress to stderr, and with `--json` writes JSON lines to FILE. See
//! `benches/README.md`.

use std::process::ExitCode;
use std::time::Instant;

use msg_benches::{
    Config, Machine, experiments, json_lines, markdown, msg_rows, processes, run, shapes_table,
    targets_table,
};

const USAGE: &str = "\
usage: compare [--quick] [--runs N] [--json FILE] [--only TEXT]...

  --quick      smoke run: tiny counts, one run, a few seconds; numbers are not meaningful
  --runs N     report the median of N runs (default 3; 1 with --quick)
  --json FILE  also write the results as JSON lines to FILE
  --only TEXT  run only the experiments whose name contains TEXT (e.g. \"tcp\", \"PUB/SUB\",
               or a shape: \"current-thread\", \"multi-thread\", \"processes\");
               repeat it to run those that contain any of the TEXTs
";

struct Args {
    quick: bool,
    runs: Option<usize>,
    json: Option<String>,
    only: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        runs: None,
        json: None,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--runs" => {
                let v = value("--runs")?;
                let n = v
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--runs: not a positive number: {v}"))?;
                args.runs = Some(n);
            }
            "--json" => args.json = Some(value("--json")?),
            "--only" => args.only.push(value("--only")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    // The idle-connection experiment runs its Rep socket in a child
    // process: this same program, started with this argument.
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some(msg_rows::IDLE_SERVER_ARG) {
        let code = msg_rows::idle_server_main(&raw[1..]);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // So do the server ends of the processes shape.
    if raw.first().map(String::as_str) == Some(processes::PEER_ARG) {
        let code = processes::peer_main(&raw[1..]);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("compare: {msg}");
            }
            eprint!("{USAGE}");
            return if msg.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };

    let mut cfg = if args.quick {
        Config::quick()
    } else {
        Config::full()
    };
    if let Some(runs) = args.runs {
        cfg.runs(runs);
    }
    if let Ok(exe) = std::env::current_exe() {
        cfg.helper_exe(exe);
    }
    let mut exps = experiments();
    if !args.only.is_empty() {
        exps.retain(|e| {
            args.only
                .iter()
                .any(|only| e.name().contains(only.as_str()))
        });
        if exps.is_empty() {
            eprintln!(
                "compare: no experiment name contains any of {:?}",
                args.only
            );
            return ExitCode::from(2);
        }
    }

    let machine = Machine::detect();
    if machine.profile == "debug" && !cfg.is_quick() {
        eprintln!("compare: warning: debug build; use --release for meaningful numbers");
    }
    let started = Instant::now();
    let total = exps.len();
    let mut step = 0;
    let result = run(&cfg, &exps, |round, exp| {
        step = step % total + 1;
        eprintln!(
            "[run {round}/{}, {step}/{total}, {:.1} s] {}",
            cfg.get_runs(),
            started.elapsed().as_secs_f64(),
            exp.name()
        );
    });
    let measurements = match result {
        Ok(m) => m,
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("compare: {msg}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());

    print!("{}", markdown(&machine, &cfg, &measurements));
    let side_by_side = shapes_table(&measurements);
    if !side_by_side.is_empty() {
        println!();
        println!("### The shapes side by side");
        println!();
        println!(
            "Rows that ran in more than one shape; each cell is the value and its ratio to \
             the row named in `vs`, in the same shape and run (and the median interleaved \
             ratio where there is one)."
        );
        println!();
        print!("{side_by_side}");
    }
    let targets = targets_table(&measurements);
    if !targets.is_empty() {
        println!();
        println!("### Targets");
        println!();
        println!(
            "Ratios some rows should reach against one of their references, in each shape \
             and on each transport they ran (a report, not a test: nothing fails)."
        );
        println!();
        print!("{targets}");
    }
    if let Some(path) = &args.json {
        if let Err(e) = std::fs::write(path, json_lines(&machine, &cfg, &measurements)) {
            eprintln!("compare: writing {path}: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {path}");
    }
    ExitCode::SUCCESS
}
