//! `ember perfetto TRACE -o OUT.json`: a `--trace` file (JSON Lines) in the Chrome trace-event
//! format, which Perfetto UI (ui.perfetto.dev) and `chrome://tracing` open as they are.
//!
//! A track per process (`<0.N>`), grouped under its scheduler; a slice per scheduling slice,
//! named after the function it began in; a flow arrow from each send to the receive that took
//! the message (matched by the message `id` both events carry); instant events for the rest
//! (spawns, exits, timeouts, links, monitors, names, exit signals, collections).

use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

/// The events of a `--trace` file, or the line that is not one.
pub fn trace_events(trace: &str) -> Result<Vec<Value>, String> {
    trace
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line)
                .map_err(|err| format!("{}: error: not a trace event: {err}", n + 1))
        })
        .collect()
}

/// The trace-event document for the JSON Lines `trace`.
pub fn convert(trace: &str) -> Result<String, String> {
    let mut events: Vec<Value> = Vec::new();
    // Trace-event times are microseconds; a virtual-time trace counts milliseconds.
    let mut scale = 1u64;
    let mut tracks: BTreeSet<(u64, u64)> = BTreeSet::new();
    let mut flows: HashMap<String, u64> = HashMap::new();
    for e in trace_events(trace)? {
        let ev = e["ev"].as_str().unwrap_or_default();
        let ts = e["t"].as_u64().unwrap_or(0) * scale;
        let sched = e["sched"].as_u64().unwrap_or(0);
        let track = |pid: u64| -> (u64, u64) { (sched, pid) };
        match ev {
            "trace" if e["clock"] == "virtual_ms" => scale = 1000,
            "slice" => {
                let pid = e["pid"].as_u64().unwrap_or(0);
                let start = e["start"].as_u64().unwrap_or(0) * scale;
                tracks.insert(track(pid));
                events.push(json!({
                    "name": e["label"].as_str().unwrap_or("slice"),
                    "cat": "slice", "ph": "X", "ts": start, "dur": ts.saturating_sub(start),
                    "pid": sched, "tid": pid,
                    "args": {"reductions": e["reds"], "outcome": e["outcome"], "queue": e["queue"]},
                }));
            }
            "send" | "receive" => {
                let (pid, phase) = if ev == "send" {
                    (e["from"].as_u64().unwrap_or(0), "s")
                } else {
                    (e["pid"].as_u64().unwrap_or(0), "f")
                };
                tracks.insert(track(pid));
                events.push(json!({
                    "name": ev, "cat": "message", "ph": "i", "s": "t", "ts": ts,
                    "pid": sched, "tid": pid, "args": {"msg": e["msg"], "id": e["id"]},
                }));
                if let Some(id) = e["id"].as_str() {
                    let next = flows.len() as u64 + 1;
                    let flow = *flows.entry(id.to_string()).or_insert(next);
                    let mut arrow = json!({
                        "name": "message", "cat": "message", "ph": phase, "id": flow, "ts": ts,
                        "pid": sched, "tid": pid,
                    });
                    if phase == "f" {
                        arrow["bp"] = json!("e");
                    }
                    events.push(arrow);
                }
            }
            // Everything else happens to one process: an instant on its track, its fields as
            // arguments.
            _ => {
                let Some(pid) = e["pid"].as_u64().or_else(|| e["from"].as_u64()) else {
                    continue;
                };
                tracks.insert(track(pid));
                let name = match ev {
                    "spawn" => format!("spawn <0.{}>", e["child"].as_u64().unwrap_or(0)),
                    "exit" => format!("exit {}", e["reason"].as_str().unwrap_or_default()),
                    "exit_signal" => format!(
                        "exit signal to <0.{}>: {}",
                        e["to"].as_u64().unwrap_or(0),
                        e["reason"].as_str().unwrap_or_default()
                    ),
                    "link" | "unlink" => format!("{ev} <0.{}>", e["other"].as_u64().unwrap_or(0)),
                    "monitor" => format!("monitor {}", e["target"].as_str().unwrap_or_default()),
                    "register" | "unregister" => {
                        format!("{ev} {}", e["name"].as_str().unwrap_or_default())
                    }
                    other => other.to_string(),
                };
                events.push(json!({
                    "name": name, "cat": ev, "ph": "i", "s": "t", "ts": ts,
                    "pid": sched, "tid": pid, "args": e,
                }));
            }
        }
    }
    let schedulers: BTreeSet<u64> = tracks.iter().map(|&(s, _)| s).collect();
    let mut meta: Vec<Value> = schedulers
        .iter()
        .map(|&s| {
            json!({"name": "process_name", "ph": "M", "pid": s,
                   "args": {"name": format!("scheduler {s}")}})
        })
        .collect();
    meta.extend(tracks.iter().map(|&(s, pid)| {
        json!({"name": "thread_name", "ph": "M", "pid": s, "tid": pid,
               "args": {"name": format!("<0.{pid}>")}})
    }));
    meta.extend(events);
    Ok(json!({"traceEvents": meta, "displayTimeUnit": "ms"}).to_string())
}
