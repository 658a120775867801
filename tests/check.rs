//! `ember check`, `--schedule`, `--record` and `--replay`: the seed's ex7 race is found and its
//! replay deadlocks; ex7b passes; each seeded bug of tests/check/ is found and its fix passes;
//! replays repeat runs event for event.

mod common;
use common::ember;

/// The schedule of the `replay:` line of a failure report.
fn replay_schedule(out: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("replay:"))
        .unwrap_or_else(|| panic!("no replay line:\n{out}"));
    let start = line.find("--schedule '").expect("a --schedule") + "--schedule '".len();
    line[start..].trim_end_matches('\'').to_string()
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ember-check-{}-{name}", std::process::id()))
}

#[test]
fn ex7_deadlocks_under_some_schedule_and_its_replay_deadlocks_too() {
    for strategy in ["random", "pct", "budgets"] {
        let (out, err, status) =
            ember(&["check", "examples/blog/ex7.basm", "--strategy", strategy]);
        assert_eq!(status, 1, "{strategy}: {out}{err}");
        assert!(out.starts_with("FAILED on run "), "{out}");
        assert!(out.contains("deadlock"), "{out}");
        assert!(
            out.contains("{:EXIT, <0.1>, :noproc}"),
            "the unmatched message: {out}"
        );
        let schedule = replay_schedule(&out);
        let (_, err, status) = ember(&[
            "run",
            "examples/blog/ex7.basm",
            "--seed",
            "0",
            "--schedule",
            &schedule,
        ]);
        assert_eq!(status, 4, "the replay deadlocks too: {err}");
        assert!(err.contains("deadlock"), "{err}");
    }
    // The default order is the one that works.
    let (out, _, status) = ember(&["run", "examples/blog/ex7.basm", "--schedule", ""]);
    assert_eq!((status, out.trim()), (0, "CRASH: <0.1>"));
}

#[test]
fn ex7b_passes_every_strategy() {
    for strategy in ["random", "pct", "budgets"] {
        let (out, err, status) =
            ember(&["check", "examples/blog/ex7b.basm", "--strategy", strategy]);
        assert_eq!(status, 0, "{strategy}: {out}{err}");
        assert!(out.starts_with("passed: "), "{out}");
        assert!(out.contains("distinct schedules"), "{out}");
    }
    let (out, _, status) = ember(&["check", "examples/blog/ex7b.basm", "--runs", "1000"]);
    assert_eq!(status, 0);
    assert!(out.starts_with("passed: 1000 runs"), "{out}");
    // The systematic strategy walks every interleaving of visible steps, and says so.
    let (out, _, status) = ember(&["check", "examples/blog/ex7b.basm", "--strategy", "dpor"]);
    assert_eq!(status, 0);
    assert!(
        out.starts_with("passed: all schedules explored in "),
        "{out}"
    );
}

#[test]
fn the_systematic_strategy_finds_ex7_and_explores_a_fix_completely() {
    let (out, _, status) = ember(&["check", "examples/blog/ex7.basm", "--strategy", "dpor"]);
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("deadlock"), "{out}");
    let (out, _, status) = ember(&[
        "check",
        "tests/check/exit_before_reply_fixed.basm",
        "--strategy",
        "dpor",
    ]);
    assert_eq!(status, 0, "{out}");
    assert!(
        out.starts_with("passed: all schedules explored in "),
        "{out}"
    );
    let (out, _, status) = ember(&[
        "check",
        "tests/check/exit_before_reply.basm",
        "--strategy",
        "dpor",
    ]);
    assert_eq!(status, 1, "{out}");
}

#[test]
fn each_seeded_bug_is_found_and_each_fix_passes() {
    let bugs = [
        ("lost_update", "{:assert, 1, 2}"),
        ("exit_before_reply", ":helper_failed"),
        ("registry_race", ":badarg"),
        ("timeout_late_reply", "{:assert, 10, 20}"),
    ];
    for (bug, symptom) in bugs {
        let path = format!("tests/check/{bug}.basm");
        // The default order hides every one of them.
        let (_, err, status) = ember(&["run", &path, "--schedule", ""]);
        assert_eq!(status, 0, "{bug} passes in the default order: {err}");
        let (out, err, status) = ember(&["check", &path]);
        assert_eq!(status, 1, "{bug} is found: {out}{err}");
        assert!(out.contains(symptom), "{bug}: {out}");
        // The shortest schedule replays the failure.
        let schedule = replay_schedule(&out);
        let (_, err, status) = ember(&["run", &path, "--seed", "0", "--schedule", &schedule]);
        assert_ne!(status, 0, "{bug}: the replay fails too");
        assert!(err.contains(symptom), "{bug}: {err}");
        let fixed = format!("tests/check/{bug}_fixed.basm");
        for strategy in ["random", "pct", "budgets", "dpor"] {
            let (out, err, status) = ember(&["check", &fixed, "--strategy", strategy]);
            assert_eq!(status, 0, "{bug}_fixed under {strategy}: {out}{err}");
        }
    }
}

#[test]
fn a_replay_repeats_the_failing_run_byte_for_byte() {
    let found = tmp("found.jsonl");
    let (out, _, status) = ember(&[
        "check",
        "tests/check/lost_update.basm",
        "--trace",
        found.to_str().unwrap(),
    ]);
    assert_eq!(status, 1);
    let schedule = replay_schedule(&out);
    let replayed = tmp("replayed.jsonl");
    ember(&[
        "run",
        "tests/check/lost_update.basm",
        "--seed",
        "0",
        "--schedule",
        &schedule,
        "--trace",
        replayed.to_str().unwrap(),
    ]);
    let a = std::fs::read_to_string(&found).unwrap();
    let b = std::fs::read_to_string(&replayed).unwrap();
    let _ = std::fs::remove_file(&found);
    let _ = std::fs::remove_file(&replayed);
    assert!(a.lines().count() > 10, "{a}");
    assert_eq!(a, b);
}

#[test]
fn record_then_replay_repeats_a_run() {
    // On virtual time: byte for byte.
    let (rec, a, b) = (tmp("rec.txt"), tmp("rec-a.jsonl"), tmp("rec-b.jsonl"));
    let program = "examples/programs/pubsub.basm";
    let (out1, _, s1) = ember(&[
        "run",
        program,
        "--virtual-time",
        "--record",
        rec.to_str().unwrap(),
        "--trace",
        a.to_str().unwrap(),
    ]);
    let (out2, _, s2) = ember(&[
        "run",
        program,
        "--replay",
        rec.to_str().unwrap(),
        "--trace",
        b.to_str().unwrap(),
    ]);
    assert_eq!((s1, &out1), (s2, &out2));
    assert_eq!(
        std::fs::read_to_string(&a).unwrap(),
        std::fs::read_to_string(&b).unwrap()
    );
    // On real time, the timeouts that fired are in the schedule: the replay (on virtual time)
    // has the same events in the same order, times aside.
    // What `now` read is recorded too, and read again: the output is the same.
    let program = "examples/timeout.basm";
    let (recorded, _, _) = ember(&[
        "run",
        program,
        "--record",
        rec.to_str().unwrap(),
        "--trace",
        a.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&rec).unwrap();
    assert!(text.contains("=t") && text.contains("\nnow "), "{text}");
    let (replayed, _, _) = ember(&[
        "run",
        program,
        "--replay",
        rec.to_str().unwrap(),
        "--trace",
        b.to_str().unwrap(),
    ]);
    assert_eq!(recorded, replayed);
    let events = |p: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                for k in ["t", "start", "clock"] {
                    v.as_object_mut().unwrap().remove(k);
                }
                v
            })
            .collect()
    };
    assert_eq!(events(&a), events(&b));
    for p in [rec, a, b] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn a_bad_schedule_is_an_error() {
    let (_, err, status) = ember(&["run", "examples/hello.basm", "--schedule", "3=x"]);
    assert_eq!(status, 1);
    assert!(err.contains("bad schedule item `3=x`"), "{err}");
    let (_, err, status) = ember(&[
        "run",
        "examples/hello.basm",
        "--schedule",
        "",
        "--schedulers",
        "2",
    ]);
    assert_eq!(status, 1);
    assert!(err.contains("one scheduler"), "{err}");
}

#[test]
fn a_program_that_never_ends_is_cut_and_not_judged() {
    let src = tmp("loop.basm");
    std::fs::write(&src, "main:\n    jump main\n").unwrap();
    let (out, _, status) = ember(&[
        "check",
        src.to_str().unwrap(),
        "--runs",
        "3",
        "--max-steps",
        "10000",
    ]);
    let _ = std::fs::remove_file(&src);
    assert_eq!(status, 2, "{out}");
    assert!(out.starts_with("no run finished: 3 runs"), "{out}");
    assert!(out.contains("3 runs cut at --max-steps"), "{out}");
}
