//! `ember prof`: the histogram adds up to the reductions spent, and the folded stacks parse.

mod common;
use common::ember;

fn field(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(label)
                .map(|rest| rest.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no `{label}` in:\n{report}"))
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn prof_histogram_adds_up_and_folded_stacks_parse() {
    let folded = std::env::temp_dir().join(format!("ember-folded-{}.txt", std::process::id()));
    let (out, err, status) = ember(&[
        "prof",
        "tests/basm/instructions/call.basm",
        "--folded",
        folded.to_str().unwrap(),
    ]);
    assert_eq!(status, 0, "{err}");
    assert!(
        out.contains("back in main"),
        "the program's own output stays on stdout"
    );
    let total = field(&err, "total");
    let reductions = field(&err, "reductions");
    assert_eq!(
        total, reductions,
        "histogram total vs reductions spent:\n{err}"
    );
    // The histogram rows add up to the total too.
    let hist: u64 = err
        .lines()
        .skip_while(|l| !l.starts_with("== instruction histogram"))
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("total"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(hist, total);
    for section in [
        "== top processes by reductions",
        "== scheduler",
        "slices",
        "context switches",
        "GC runs",
        "mailbox high water",
    ] {
        assert!(err.contains(section), "missing `{section}`:\n{err}");
    }
    let text = std::fs::read_to_string(&folded).unwrap();
    let _ = std::fs::remove_file(&folded);
    let mut sum = 0;
    for line in text.lines() {
        let (stack, count) = line.rsplit_once(' ').expect("`stack count`");
        sum += count.parse::<u64>().expect("a count");
        assert!(
            stack.split(';').all(|frame| frame.contains(':')),
            "frames are module:label: {line}"
        );
    }
    assert_eq!(sum, total, "folded weights add up to the reductions");
    assert!(
        text.contains("call:main;call:fact;call:fact"),
        "recursion shows as nested frames:\n{text}"
    );
}

#[test]
fn prof_counts_work_reductions() {
    let (_, err, status) = ember(&["prof", "examples/blog/ex4.basm"]);
    assert_eq!(status, 0);
    assert_eq!(field(&err, "total"), field(&err, "reductions"));
    assert!(err.contains("work"), "{err}");
}

#[test]
fn prof_names_frames_entered_through_call_fun() {
    // A stdlib server calls its handler with `call_fun`: the handler's reductions belong to
    // the handler's own frame under the server loop, not to the loop's call site.
    let folded = std::env::temp_dir().join(format!("ember-folded-fun-{}.txt", std::process::id()));
    let (_, err, status) = ember(&[
        "prof",
        "bench/server.basm",
        "4",
        "100",
        "--folded",
        folded.to_str().unwrap(),
    ]);
    assert_eq!(status, 0, "{err}");
    let text = std::fs::read_to_string(&folded).unwrap();
    let _ = std::fs::remove_file(&folded);
    assert!(
        text.lines()
            .any(|l| l.starts_with("server:loop;server_bench:handle ")),
        "the handler is its own frame:\n{text}"
    );
    assert!(
        !text.contains("server:loop_call"),
        "no reductions land on the call site's label:\n{text}"
    );
}

#[test]
fn prof_writes_a_flame_graph() {
    let svg = std::env::temp_dir().join(format!("ember-flame-{}.svg", std::process::id()));
    let (_, err, status) = ember(&[
        "prof",
        "bench/server.basm",
        "4",
        "100",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(status, 0, "{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    let _ = std::fs::remove_file(&svg);
    assert!(text.starts_with("<?xml"), "an SVG document");
    assert!(text.contains("<svg"), "an SVG document");
    for frame in ["server:loop", "server_bench:handle", "server_bench:client"] {
        assert!(text.contains(frame), "frame {frame} drawn");
    }
}

#[test]
fn folded_weights_add_up_through_calls_crashes_closures_and_processes() {
    // The stacks' weights are read off the budget when frames change, so every way frames
    // change must be seen: calls, returns, caught crashes that cut frames back, call_fun and
    // spawn_fun, slices of many processes, `work`, receives that wait.
    for (i, program) in [
        "tests/basm/try/unwinds_frames_and_stack.basm",
        "tests/basm/closures/capture_call_spawn.basm",
        "examples/blog/ex4.basm",
        "examples/programs/kv.basm",
        "examples/supervisor.basm",
    ]
    .iter()
    .enumerate()
    {
        let folded =
            std::env::temp_dir().join(format!("ember-folded-sum-{}-{i}.txt", std::process::id()));
        let (_, err, _) = ember(&["prof", program, "--folded", folded.to_str().unwrap()]);
        let text = std::fs::read_to_string(&folded).unwrap();
        let _ = std::fs::remove_file(&folded);
        let sum: u64 = text
            .lines()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        assert_eq!(sum, field(&err, "total"), "{program}:\n{text}\n{err}");
    }
}

/// The adjacent pairs: how often an instruction ran straight after the one before it in the
/// code (what a superinstruction fusing the two would run), most frequent first.
#[test]
fn prof_counts_adjacent_pairs() {
    let (_, err, status) = ember(&["prof", "--schedulers", "1", "bench/count.basm", "1000"]);
    assert_eq!(status, 0, "{err}");
    let pairs: Vec<(String, u64)> = err
        .lines()
        .skip_while(|l| !l.starts_with("== adjacent pairs"))
        .skip(1)
        .take_while(|l| !l.starts_with("=="))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (format!("{} {}", w[0], w[1]), w[2].parse().unwrap())
        })
        .collect();
    // The loop `add; sub; jgt` ran 1000 times: `add sub` and `sub jgt` each time, `jgt add`
    // (the jump back is taken, not the next in the code) never.
    assert_eq!(
        pairs[..2],
        [("add sub".into(), 1000), ("sub jgt".into(), 1000)]
    );
    assert!(pairs.iter().all(|(p, _)| p != "jgt add"), "{err}");
}

/// Collections are generational: a process that keeps a large list while it churns garbage is
/// collected minor many times (the list, promoted, is not copied again) and major rarely.
#[test]
fn prof_reports_minor_and_major_collections() {
    let (_, err, status) = ember(&[
        "prof",
        "--schedulers",
        "1",
        "bench/gc.basm",
        "10000",
        "300000",
    ]);
    assert_eq!(status, 0, "{err}");
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with("GC runs"))
        .unwrap_or_else(|| panic!("no GC runs line:\n{err}"));
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    let [runs, major, minor] = n[..] else {
        panic!("{line}")
    };
    assert_eq!(runs, major + minor, "{line}");
    assert!(major >= 1 && minor > 4 * major, "{line}");
}

/// Code loaded while the profile runs (`code:load`, the hot upgrade example) is counted like
/// the rest, stacks included.
#[test]
fn prof_counts_code_loaded_while_it_runs() {
    let folded = std::env::temp_dir().join(format!("ember-folded-up-{}.txt", std::process::id()));
    let (out, err, status) = ember(&[
        "prof",
        "examples/upgrade/main.basm",
        "--folded",
        folded.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&folded);
    assert_eq!(status, 0, "{err}");
    assert!(!out.is_empty(), "the program's output");
    assert_eq!(field(&err, "total"), field(&err, "reductions"), "{err}");
}
