//! Helpers shared by the integration tests: run a program through the library or the binary and
//! collect what a user sees.
#![allow(dead_code)]

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A `Write` whose bytes the test can read afterwards.
#[derive(Clone, Default)]
pub struct Buffer(pub Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// What a run produced.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub status: i32,
    pub trace: Vec<serde_json::Value>,
    pub vm: ember_vm::vm::Vm,
}

/// Assembles `src` and runs it in-process with `config`, tracing every event.
pub fn run_src(src: &str, config: ember_vm::vm::Config) -> Run {
    run_src_lowered(src, config, true)
}

/// [`run_src`], with the lowered fast path on or off.
pub fn run_src_lowered(src: &str, config: ember_vm::vm::Config, lowering: bool) -> Run {
    run_src_paths(src, config, lowering, true)
}

/// [`run_src_lowered`], traced or not (a trace turns the threaded receive and send off: the
/// general path writes their events).
pub fn run_src_paths(src: &str, config: ember_vm::vm::Config, lowering: bool, traced: bool) -> Run {
    let module = ember_asm::assemble_str("test.basm", src).unwrap_or_else(|e| panic!("{e}"));
    let verified = ember_vm::verify::verify(module).expect("verifies");
    let program = if lowering {
        ember_vm::program::Program::new(verified)
    } else {
        ember_vm::program::Program::without_lowering(verified)
    };
    let (out, err, trace) = (Buffer::default(), Buffer::default(), Buffer::default());
    let mut vm = ember_vm::vm::Vm::new(
        program,
        config,
        Box::new(out.clone()),
        Box::new(err.clone()),
    );
    if traced {
        vm.set_trace(Box::new(trace.clone()));
    }
    vm.spawn_main("main", &[]).expect("has main");
    let status = vm.run().status();
    let trace = trace
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("trace lines are JSON"))
        .collect();
    Run {
        stdout: out.text(),
        stderr: err.text(),
        status,
        trace,
        vm,
    }
}

/// Runs the `ember` binary with `args` from the project root.
pub fn ember(args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("runs ember");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// The `slice` events of a trace as (pid, reds, outcome, queue).
pub fn slices(trace: &[serde_json::Value]) -> Vec<(u64, u64, String, Vec<u64>)> {
    trace
        .iter()
        .filter(|e| e["ev"] == "slice")
        .map(|e| {
            (
                e["pid"].as_u64().unwrap(),
                e["reds"].as_u64().unwrap(),
                e["outcome"].as_str().unwrap().to_string(),
                e["queue"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|q| q.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

pub fn budget(n: u32) -> ember_vm::vm::Config {
    ember_vm::vm::Config {
        budget: n,
        virtual_time: true,
        seed: Some(1),
        ..Default::default()
    }
}
