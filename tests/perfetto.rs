//! `ember perfetto`: a `--trace` file becomes a Chrome trace-event document that Perfetto UI
//! opens: the fields and types the format requires, and a flow from each send to its receive.

mod common;
use common::ember;
use serde_json::Value;

fn convert(program: &[&str]) -> (Vec<Value>, Value) {
    let dir = std::env::temp_dir();
    let id = std::process::id();
    let trace = dir.join(format!(
        "ember-pf-{id}-{}.jsonl",
        program.join("_").replace(['/', '-'], "_")
    ));
    let out = dir.join(format!(
        "ember-pf-{id}-{}.json",
        program.join("_").replace(['/', '-'], "_")
    ));
    let mut args = vec!["run"];
    args.extend_from_slice(program);
    args.extend_from_slice(&["--trace", trace.to_str().unwrap()]);
    let (_, err, status) = ember(&args);
    assert!(status == 0, "{err}");
    let (_, err, status) = ember(&[
        "perfetto",
        trace.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(status, 0, "{err}");
    let events: Vec<Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&trace);
    let _ = std::fs::remove_file(&out);
    (events, doc)
}

fn check(trace: &[Value], doc: &Value) {
    let evs = doc["traceEvents"].as_array().expect("traceEvents");
    for e in evs {
        let ph = e["ph"].as_str().expect("ph");
        assert!(e["name"].is_string(), "{e}");
        assert!(e["pid"].is_u64(), "{e}");
        match ph {
            "M" => assert!(e["args"]["name"].is_string(), "{e}"),
            "X" => assert!(
                e["ts"].is_u64() && e["dur"].is_u64() && e["tid"].is_u64(),
                "{e}"
            ),
            "i" => assert!(
                e["ts"].is_u64() && e["tid"].is_u64() && e["s"] == "t",
                "{e}"
            ),
            "s" | "f" => assert!(e["ts"].is_u64() && e["id"].is_u64(), "{e}"),
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    // One flow per message received, each from a send that came first.
    let received = trace.iter().filter(|e| e["ev"] == "receive").count();
    let ends: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "f").collect();
    assert_eq!(ends.len(), received, "a flow per message received");
    for end in ends {
        let start = evs
            .iter()
            .find(|e| e["ph"] == "s" && e["id"] == end["id"])
            .unwrap_or_else(|| panic!("no start for flow {end}"));
        assert!(start["ts"].as_u64() <= end["ts"].as_u64());
        assert_ne!(start["tid"], end["tid"], "from one process to another");
    }
    // A named track per process, and slices named after functions.
    let tracks = evs.iter().filter(|e| e["name"] == "thread_name").count();
    assert!(tracks >= 2);
    assert!(evs
        .iter()
        .any(|e| e["ph"] == "X" && e["name"].as_str().unwrap().contains(':')));
}

#[test]
fn pingpong_becomes_a_trace_event_document_with_a_flow_per_message() {
    let (trace, doc) = convert(&["examples/pingpong.basm"]);
    check(&trace, &doc);
}

#[test]
fn a_trace_of_two_schedulers_has_its_flows_too() {
    let (trace, doc) = convert(&["examples/pingpong.basm", "--schedulers", "2"]);
    check(&trace, &doc);
    assert!(trace
        .iter()
        .any(|e| e["ev"] == "slice" && e["sched"].is_u64()));
}

#[test]
fn a_virtual_time_trace_counts_milliseconds() {
    let (trace, doc) = convert(&["examples/timeout.basm", "--virtual-time"]);
    check(&trace, &doc);
    assert_eq!(trace[0]["clock"], "virtual_ms");
}

#[test]
fn a_trace_that_is_not_json_lines_is_an_error_with_its_line() {
    let bad = std::env::temp_dir().join(format!("ember-pf-bad-{}.jsonl", std::process::id()));
    std::fs::write(
        &bad,
        "{\"ev\":\"trace\",\"clock\":\"us\",\"t\":0}\nnot json\n",
    )
    .unwrap();
    let (_, err, status) = ember(&["perfetto", bad.to_str().unwrap(), "-o", "/dev/null"]);
    let _ = std::fs::remove_file(&bad);
    assert_eq!(status, 1);
    assert!(err.contains(":2: error: not a trace event"), "{err}");
}
