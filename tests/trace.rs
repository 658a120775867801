//! The events of `--trace` for links, monitors, names, exit signals and (with `--trace-gc`)
//! collections, with their fields.

mod common;
use common::ember;
use serde_json::Value;

const PROGRAM: &str = "tests/data/trace_signals.basm";

fn trace(extra: &[&str]) -> Vec<Value> {
    trace_of(PROGRAM, extra)
}

fn trace_of(program: &str, extra: &[&str]) -> Vec<Value> {
    let path = std::env::temp_dir().join(format!(
        "ember-trace-{}-{}-{}.jsonl",
        std::process::id(),
        program.replace('/', "_"),
        extra.join("_").replace('-', "")
    ));
    let mut args = vec!["run", program, "--trace", path.to_str().unwrap()];
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
            "exit_signal_received",
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

#[test]
fn exit_signals_received_say_what_they_did() {
    for schedulers in ["1", "2"] {
        let events = trace_of("tests/data/trace_exits.basm", &["--schedulers", schedulers]);
        let mut got: Vec<(u64, u64, String, bool, String)> = find(&events, "exit_signal_received")
            .iter()
            .map(|e| {
                (
                    e["pid"].as_u64().unwrap(),
                    e["from"].as_u64().unwrap(),
                    e["reason"].as_str().unwrap().to_string(),
                    e["link"].as_bool().unwrap(),
                    e["action"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        got.sort();
        let want = [
            (0, 1, ":boom", true, "trapped"),
            (2, 0, ":kill", false, "killed"),
            (3, 0, ":stop", false, "exits"),
            (4, 0, ":normal", false, "ignored"),
            (4, 0, ":normal", true, "ignored"),
        ]
        .map(|(p, f, r, l, a)| (p, f, r.to_string(), l, a.to_string()));
        assert_eq!(got, want, "with {schedulers} scheduler(s)");
    }
}

#[test]
fn with_several_schedulers_slices_are_events_and_sends_name_their_receives() {
    for program in ["examples/pingpong.basm", "examples/programs/pubsub.basm"] {
        let events = trace_of(program, &["--schedulers", "2"]);
        let slices = find(&events, "slice");
        assert!(!slices.is_empty(), "{program}: slices are events");
        for s in &slices {
            assert!(s["sched"].is_u64(), "{s}");
            assert!(s["label"].as_str().unwrap().contains(':'), "{s}");
            assert!(s["start"].as_u64() <= s["t"].as_u64(), "{s}");
            assert!(s.get("queue").is_none(), "no single run queue to list: {s}");
        }
        // Every message a process sent is received under the id its send carried, once.
        let sends: Vec<&str> = find(&events, "send")
            .iter()
            .map(|e| {
                e["id"]
                    .as_str()
                    .expect("a send to a live process has an id")
            })
            .collect();
        let mut unique = sends.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), sends.len(), "{program}: send ids are unique");
        let mut received_sent = 0;
        for r in find(&events, "receive") {
            let id = r["id"].as_str().unwrap();
            if sends.contains(&id) {
                received_sent += 1;
            } else {
                // Only the VM's own messages (`:DOWN`, `:EXIT`) have no send.
                let msg = r["msg"].as_str().unwrap();
                assert!(
                    msg.starts_with("{:DOWN") || msg.starts_with("{:EXIT"),
                    "{r}"
                );
            }
        }
        assert!(received_sent > 0, "{program}");
    }
}
