//! `ember view TRACE -o view.html`: one self-contained HTML page (no network) that shows a
//! `--trace` file as the seed's picture of a run: a swimlane per process over the scheduler's
//! steps (its slices), and for the selected step the run queue, each process's mailbox and its
//! links. Step with the buttons, the arrow keys or a click on a cell; `view.html#step=N` opens
//! at step N.

use serde_json::{json, Value};

/// Pages show at most this many slices (a longer trace is cut, and the page says so).
pub const MAX_STEPS: usize = 10_000;

/// The page for the JSON Lines `trace`.
pub fn page(trace: &str, title: &str) -> Result<String, String> {
    let mut steps: Vec<Value> = Vec::new();
    // Events between two slices belong to the slice that ends next.
    let mut pending: Vec<Value> = Vec::new();
    let mut total = 0usize;
    for e in crate::perfetto::trace_events(trace)? {
        match e["ev"].as_str().unwrap_or_default() {
            "slice" => {
                total += 1;
                if steps.len() < MAX_STEPS {
                    steps.push(json!({
                        "pid": e["pid"], "label": e["label"], "outcome": e["outcome"],
                        "reds": e["reds"], "queue": e["queue"], "t": e["t"], "sched": e["sched"],
                        "events": std::mem::take(&mut pending),
                    }));
                }
            }
            "trace" | "gc" => {}
            _ if steps.len() < MAX_STEPS => pending.push(compact(&e)),
            _ => {}
        }
    }
    let data = json!({"title": title, "steps": steps, "total": total});
    // `</` cannot end the script early: JSON allows `<\/`.
    let data = data.to_string().replace("</", "<\\/");
    Ok(TEMPLATE
        .replace("{{TITLE}}", &html_escape(title))
        .replace("{{DATA}}", &data))
}

/// The fields of an event the page uses.
fn compact(e: &Value) -> Value {
    let mut c = json!({"ev": e["ev"]});
    for key in [
        "pid", "child", "link", "from", "to", "msg", "id", "reason", "other", "target", "name",
    ] {
        if !e[key].is_null() {
            c[key] = e[key].clone();
        }
    }
    c
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const TEMPLATE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ember view: {{TITLE}}</title>
<style>
  body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
  h1 { font-size: 16px; margin: 0 0 8px; }
  #controls { margin: 8px 0; display: flex; gap: 8px; align-items: center; }
  #notice { color: #a40; }
  #lanes { overflow-x: auto; border: 1px solid #ccc; padding: 4px; }
  .lane { display: flex; align-items: center; height: 18px; }
  .lane .name { width: 70px; flex: none; font-family: monospace; }
  .cell { width: 10px; height: 14px; flex: none; border-right: 1px solid #fff; background: #f2f2f2; cursor: pointer; }
  .cell.yield { background: #6a9fd8; }
  .cell.wait { background: #7cc47f; }
  .cell.exit { background: #d86a6a; }
  .cell.selected { outline: 2px solid #000; }
  #panel { display: grid; grid-template-columns: repeat(3, 1fr); gap: 12px; margin-top: 12px; }
  #panel section { border: 1px solid #ddd; padding: 8px; }
  #panel h2 { font-size: 13px; margin: 0 0 4px; }
  code, pre { font-family: monospace; white-space: pre-wrap; margin: 0; }
</style>
</head>
<body>
<h1>ember view: {{TITLE}}</h1>
<div id="controls">
  <button id="first">|&lt;</button><button id="prev">&lt; step</button>
  <button id="next">step &gt;</button><button id="last">&gt;|</button>
  <input id="slider" type="range" min="0" value="0">
  <span id="where"></span>
  <span id="notice"></span>
</div>
<div id="lanes"></div>
<div id="panel">
  <section><h2>This step</h2><pre id="step"></pre></section>
  <section><h2>Run queue after it</h2><pre id="queue"></pre></section>
  <section><h2>Mailboxes and links</h2><pre id="state"></pre></section>
</div>
<script id="data" type="application/json">{{DATA}}</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const steps = data.steps;
const pids = [];
const seen = new Set();
function addPid(p) { if (p !== undefined && p !== null && !seen.has(p)) { seen.add(p); pids.push(p); } }
for (const s of steps) {
  for (const e of s.events) { addPid(e.pid); addPid(e.child); addPid(e.to); addPid(e.from); }
  addPid(s.pid);
  for (const q of s.queue || []) addPid(q);
}
pids.sort((a, b) => a - b);
if (data.total > steps.length) {
  document.getElementById("notice").textContent =
    "truncated: showing the first " + steps.length + " of " + data.total + " slices";
}
const lanes = document.getElementById("lanes");
const cells = new Map();
for (const p of pids) {
  const lane = document.createElement("div");
  lane.className = "lane";
  lane.dataset.pid = p;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = "<0." + p + ">";
  lane.appendChild(name);
  steps.forEach((s, i) => {
    const c = document.createElement("span");
    c.className = "cell" + (s.pid === p ? " " + s.outcome : "");
    c.title = s.pid === p ? (s.label + ": " + s.reds + " reductions, " + s.outcome) : "";
    c.onclick = () => select(i);
    lane.appendChild(c);
    cells.set(p + ":" + i, c);
  });
  lanes.appendChild(lane);
}
// The state after each step, from the events up to it: mailboxes (sent, not yet received)
// and links.
function stateAt(n) {
  const mail = new Map(), links = new Map();
  const link = (a, b, on) => {
    for (const [x, y] of [[a, b], [b, a]]) {
      if (!links.has(x)) links.set(x, new Set());
      if (on) links.get(x).add(y); else links.get(x).delete(y);
    }
  };
  for (let i = 0; i <= n; i++) {
    for (const e of steps[i].events) {
      if (e.ev === "send") {
        if (!mail.has(e.to)) mail.set(e.to, []);
        mail.get(e.to).push(e);
      } else if (e.ev === "receive") {
        const box = mail.get(e.pid) || [];
        const k = box.findIndex(m => (e.id && m.id === e.id) || (!e.id && m.msg === e.msg));
        if (k >= 0) box.splice(k, 1);
      } else if (e.ev === "spawn" && e.link) link(e.pid, e.child, true);
      else if (e.ev === "link") link(e.pid, e.other, true);
      else if (e.ev === "unlink") link(e.pid, e.other, false);
      else if (e.ev === "exit") { mail.delete(e.pid); links.delete(e.pid); for (const s of links.values()) s.delete(e.pid); }
    }
  }
  return { mail, links };
}
let current = 0;
const slider = document.getElementById("slider");
slider.max = Math.max(0, steps.length - 1);
function select(i) {
  if (steps.length === 0) return;
  i = Math.max(0, Math.min(steps.length - 1, i));
  for (const p of pids) {
    const old = cells.get(p + ":" + current);
    if (old) old.classList.remove("selected");
  }
  current = i;
  const s = steps[i];
  const c = cells.get(s.pid + ":" + i);
  if (c) c.classList.add("selected");
  slider.value = i;
  document.body.dataset.step = i;
  document.getElementById("where").textContent =
    "step " + (i + 1) + " of " + steps.length + " (t = " + s.t + ")";
  document.getElementById("step").textContent =
    "<0." + s.pid + "> ran " + s.label + (s.sched == null ? "" : " on scheduler " + s.sched) +
    ": " + s.reds + " reductions, then " + s.outcome + "\n" +
    s.events.map(e => "  " + describe(e)).join("\n");
  document.getElementById("queue").textContent =
    !s.queue ? "(several schedulers: a queue each, not recorded)" :
    s.queue.length ? s.queue.map(q => "<0." + q + ">").join("  ") : "(empty)";
  const st = stateAt(i);
  const lines = [];
  for (const p of pids) {
    const box = st.mail.get(p) || [];
    const ls = [...(st.links.get(p) || [])].sort((a, b) => a - b);
    if (box.length || ls.length) {
      lines.push("<0." + p + ">" + (ls.length ? "  linked to " + ls.map(l => "<0." + l + ">").join(", ") : ""));
      for (const m of box) lines.push("    " + m.msg);
    }
  }
  document.getElementById("state").textContent = lines.join("\n") || "(no messages waiting, no links)";
}
function describe(e) {
  switch (e.ev) {
    case "spawn": return "<0." + e.pid + "> spawned <0." + e.child + ">" + (e.link ? " (linked)" : "");
    case "send": return "<0." + e.from + "> sent " + e.msg + " to <0." + e.to + ">";
    case "receive": return "<0." + e.pid + "> received " + e.msg;
    case "exit": return "<0." + e.pid + "> exited: " + e.reason;
    case "timeout": return "<0." + e.pid + "> timed out";
    default: return e.ev + " " + JSON.stringify(e);
  }
}
document.getElementById("first").onclick = () => select(0);
document.getElementById("prev").onclick = () => select(current - 1);
document.getElementById("next").onclick = () => select(current + 1);
document.getElementById("last").onclick = () => select(steps.length - 1);
slider.oninput = () => select(Number(slider.value));
document.addEventListener("keydown", ev => {
  if (ev.key === "ArrowRight") select(current + 1);
  if (ev.key === "ArrowLeft") select(current - 1);
});
// `view.html#step=N` opens at step N (1-based), for links to a moment of a run.
const wanted = /step=(\d+)/.exec(location.hash);
select(wanted ? Number(wanted[1]) - 1 : 0);
</script>
</body>
</html>
"#;
