//! The events of `--trace` for links, monitors, names, exit signals and (with `--trace-gc`)
//! collections, with their fields.

mod common;
use common::ember;
use serde_json::Value;

const PROGRAM: &str = "tests/data/trace_signals.basm";

fn trace(extra: &[&str]) -> Vec<Value> {
    let path = std::env::temp_dir().join(format!(
        "ember-trace-{}-{}.jsonl",
        std::process::id(),
        extra.len()
    ));
    let mut args = vec!["run", PROGRAM, "--trace", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (_, err, status) = ember(&args);
    assert_eq!(status, 0, "{err}");
    let events = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let _ = std::fs::remove_file(&path);
    events
}

fn find<'a>(events: &'a [Value], ev: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["ev"] == ev).collect()
}

#[test]
fn links_monitors_names_and_exit_signals_are_events() {
    let events = trace(&[]);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["ev"].as_str().unwrap())
        .filter(|k| !matches!(*k, "slice" | "trace"))
        .collect();
    assert_eq!(
        kinds,
        [
            "spawn",
            "link",
            "monitor",
            "register",
            "demonitor",
            "unlink",
            "monitor",
            "exit_signal",
            "exit",
            "receive",
            "exit"
        ]
    );
    let link = find(&events, "link")[0];
    assert_eq!(
        (link["pid"].as_u64(), link["other"].as_u64()),
        (Some(0), Some(1))
    );
    let monitors = find(&events, "monitor");
    assert_eq!(monitors[0]["target"], "<0.1>");
    assert_eq!(monitors[1]["target"], ":kid");
    assert_eq!(monitors[1]["ref"], 2);
    assert_eq!(find(&events, "demonitor")[0]["ref"], 1);
    let register = find(&events, "register")[0];
    assert_eq!(
        (&register["name"], register["target"].as_u64()),
        (&Value::from(":kid"), Some(1))
    );
    let signal = find(&events, "exit_signal")[0];
    assert_eq!(
        (
            signal["from"].as_u64(),
            signal["to"].as_u64(),
            &signal["reason"]
        ),
        (Some(0), Some(1), &Value::from(":bye"))
    );
    // Without --trace-gc, collections are not events (the program does collect).
    assert!(find(&events, "gc").is_empty());
    for e in &events {
        assert!(e["t"].is_u64(), "{e}");
    }
}

#[test]
fn collections_are_events_with_trace_gc() {
    let events = trace(&["--trace-gc"]);
    let gcs = find(&events, "gc");
    assert!(!gcs.is_empty(), "the program's list outgrows its heap");
    for g in gcs {
        assert_eq!(g["pid"], 0);
        assert!(g["before"].is_u64() && g["after"].is_u64() && g["us"].is_u64());
        assert!(g["after"].as_u64() <= g["before"].as_u64());
    }
}
