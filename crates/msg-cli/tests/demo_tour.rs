//! `msg demo`, the README's first command: the real binary, run to the end.

use crate::common::run;

/// Runs `msg demo ARGS` and returns its stdout, asserting it succeeded
/// quietly (nothing on stderr).
#[track_caller]
fn demo(args: &[&str]) -> Vec<String> {
    let mut all = vec!["demo"];
    all.extend_from_slice(args);
    let finished = run(&all, b"");
    assert!(finished.stderr.is_empty(), "stderr: {finished:#?}");
    finished.ok()
}

/// Index of the first line at or after `from` that starts with `prefix`
/// (after leading spaces), or a failure that shows the whole output.
#[track_caller]
fn find(lines: &[String], from: usize, prefix: &str) -> usize {
    lines
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.trim_start().starts_with(prefix))
        .map(|(i, _)| i)
        .unwrap_or_else(|| {
            panic!(
                "no line {prefix:?} after line {from} in:\n{}",
                lines.join("\n")
            )
        })
}

#[test]
fn demo_tours_every_section_and_checks_the_catch_up() {
    let out = demo(&[]);
    let text = out.join("\n");

    // Every section, in order, each with its explanation.
    let mut at = 0;
    for heading in [
        "1. Req/Rep:",
        "2. Pub/Sub:",
        "3. Reliable:",
        "4. Offline:",
        "5. Back:",
    ] {
        at = find(&out, at, heading);
    }

    // Req/Rep over real TCP on loopback, with the OS's port.
    let server = &out[find(&out, 0, "server listening on ")];
    assert!(server.contains("tcp://127.0.0.1:"), "{server}");
    assert!(!server.ends_with(":0"), "{server}");
    find(&out, 0, "request \"hello\" -> reply \"HELLO\"");

    // Each subscriber got its own topics only.
    let a = &out[find(&out, 0, "subscriber A got:")];
    assert!(a.contains("prices.btc") && a.contains("prices.eth"), "{a}");
    assert!(!a.contains("news.") && !a.contains("weather."), "{a}");
    let b = &out[find(&out, 0, "subscriber B got:")];
    assert!(b.contains("news.today") && !b.contains("prices."), "{b}");

    // Reliable: online delivery, storing while offline, then the catch-up,
    // in this order.
    let mut at = find(&out, 0, "3. Reliable:");
    for n in 1..=3 {
        at = find(&out, at, &format!("sender: stored #{n} "));
    }
    for n in 1..=3 {
        at = find(&out, at, &format!("receiver: got #{n} "));
    }
    at = find(&out, at, "4. Offline:");
    at = find(&out, at, "receiver: offline");
    for n in 4..=6 {
        at = find(&out, at, &format!("sender: stored #{n} "));
        assert!(
            out[at].ends_with("while the receiver is away"),
            "{}",
            out[at]
        );
    }
    at = find(&out, at, "sender.pending(): 3 messages stored for receiver");
    at = find(&out, at, "5. Back:");
    at = find(&out, at, "receiver: store reopened, connecting again");
    for n in 4..=6 {
        at = find(
            &out,
            at,
            &format!("receiver: got #{n} \"order {n}\" (sent while it was away)"),
        );
    }
    at = find(&out, at, "sender.pending(): nothing");

    // Every message once: each `got #N` line appears exactly one time.
    for n in 1..=6 {
        let got = format!("receiver: got #{n} ");
        assert_eq!(
            out.iter()
                .filter(|l| l.trim_start().starts_with(&got))
                .count(),
            1,
            "{text}"
        );
    }

    // The final check, last.
    let check = find(&out, at, "check: ok:");
    assert_eq!(check, out.len() - 1, "{text}");
    assert!(
        out[check].contains("6 reliable messages received, each once, in order, none missing"),
        "{text}"
    );
}

#[test]
fn demo_dir_keeps_the_redb_stores() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let stores = dir.path().join("stores");
    let path = stores.to_str().expect("a UTF-8 temporary path");
    let out = demo(&["--dir", path]);
    find(&out, 0, &format!("redb stores in {path}"));
    find(&out, 0, "check: ok:");
    for name in ["sender.redb", "receiver.redb"] {
        let file = stores.join(name);
        let meta = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{} should be left in --dir: {e}", file.display()));
        assert!(meta.len() > 0, "{} is empty", file.display());
    }

    // A second run resumes the same stores: numbering goes on from #7, and
    // the check still holds.
    let again = demo(&["--dir", path]);
    find(
        &again,
        0,
        "receiver: got #12 \"order 6\" (sent while it was away)",
    );
    find(&again, 0, "check: ok:");
}
