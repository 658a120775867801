//! Criterion benchmarks of the VM over the workloads in `bench/*.basm`.
//!
//!     cargo bench --bench vm               # everything (a few minutes on 2 cores)
//!     cargo bench --bench vm -- ring       # only the benchmarks whose name contains "ring"
//!     cargo bench --no-run                 # compile only (what CI does)
//!
//! Each benchmark loads its program once through the library API (assemble → verify), then
//! every iteration builds a fresh `Vm` (`Program::new`, `Vm::new` with output to a sink,
//! `spawn_main`) outside the timed region and times `vm.run()` alone; dropping the VM is not
//! timed either. The throughput is set to the workload's natural element (iterations, hops,
//! spawns, receives, crashes, messages), so criterion prints time and elements per second; after
//! each benchmark one line `>> NAME: ...` gives the figure a user compares, computed from the
//! same runs (mean wall time of `run()` and the VM's own counters, `vm.stats`).
//!
//! The sizes here are smaller than those of `scripts/compare-beam.sh` (which compares with
//! Erlang): about 0.1 s per run, 10 samples of one run each.

use criterion::{Criterion, SamplingMode, Throughput};
use ember_vm::program::Program;
use ember_vm::verify::{self, VerifiedModule};
use ember_vm::vm::{Config, Vm};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Set in a child process started by the spawn benchmark to measure memory per process in a
/// fresh address space (RSS in the parent would be polluted by memory earlier runs freed).
const MEM_CHILD_ENV: &str = "EMBER_BENCH_SPAWN_MEM";

fn bench_path(workload: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("bench")
        .join(format!("{workload}.basm"))
}

/// Assembles and verifies `bench/WORKLOAD.basm` (once per benchmark).
fn load(workload: &str) -> VerifiedModule {
    let path = bench_path(workload);
    let module = ember_asm::assemble_path(&path)
        .unwrap_or_else(|e| panic!("{}: does not assemble:\n{e}", path.display()));
    verify::verify(module).unwrap_or_else(|e| panic!("{}: does not verify: {e}", path.display()))
}

/// A VM ready to run `main` of `module` with `args` (r0 = the list of args as binaries).
fn new_vm(module: &VerifiedModule, args: &[String], schedulers: usize) -> Vm {
    let program = Program::new(module.clone());
    let config = Config {
        schedulers,
        ..Default::default()
    };
    let mut vm = Vm::new(
        program,
        config,
        Box::new(std::io::sink()),
        Box::new(std::io::sink()),
    );
    vm.spawn_main("main", args)
        .expect("the workload has a `main` label");
    vm
}

/// What the timed runs of one benchmark added up to.
#[derive(Default)]
struct Totals {
    runs: u64,
    run_time: Duration,
    gc_runs: u64,
    gc_nanos: u64,
    reductions: u64,
    messages: u64,
    context_switches: u64,
}

impl Totals {
    fn mean_ns(&self) -> f64 {
        self.run_time.as_nanos() as f64 / self.runs.max(1) as f64
    }
    fn per_run(&self, x: u64) -> f64 {
        x as f64 / self.runs.max(1) as f64
    }
}

/// Benchmarks `bench/WORKLOAD.basm ARGS` as `NAME`, with `elements` elements per run. Returns
/// the totals of every timed run (warm-up included), or `None` if the filter skipped it.
fn measure(
    c: &mut Criterion,
    name: &str,
    workload: &str,
    args: &[&str],
    elements: u64,
) -> Option<Totals> {
    measure_on(c, name, workload, args, elements, 1)
}

/// [`measure`] with `schedulers` scheduler threads.
fn measure_on(
    c: &mut Criterion,
    name: &str,
    workload: &str,
    args: &[&str],
    elements: u64,
    schedulers: usize,
) -> Option<Totals> {
    let module = load(workload);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut totals = Totals::default();
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(elements));
    group.bench_function(args.join("_"), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let mut vm = new_vm(&module, &args, schedulers);
                let start = Instant::now();
                let end = vm.run();
                let took = start.elapsed();
                assert_eq!(
                    end.status(),
                    0,
                    "{workload}.basm {args:?} ended with {end:?}"
                );
                timed += took;
                totals.runs += 1;
                totals.run_time += took;
                totals.gc_runs += vm.stats.gc_runs;
                totals.gc_nanos += vm.stats.gc_nanos;
                totals.reductions += vm.stats.reductions;
                totals.messages += vm.stats.messages_sent;
                totals.context_switches += vm.stats.context_switches;
                drop(vm); // not timed
            }
            timed
        })
    });
    group.finish();
    (totals.runs > 0).then_some(totals)
}

fn count(c: &mut Criterion) {
    let n: u64 = 3_000_000;
    let Some(t) = measure(c, "count", "count", &[&n.to_string()], n) else {
        return;
    };
    let per_iter = t.mean_ns() / n as f64;
    println!(
        ">> count: {per_iter:.2} ns per iteration (add, sub, jgt), {:.2} ns per instruction, \
         {:.0} reductions per run",
        per_iter / 3.0,
        t.per_run(t.reductions)
    );
}

/// 50 independent rings of 500 processes × 10 laps on one scheduler and on two: what the
/// second scheduler thread buys (spec §9; `scripts/scaling.sh` measures it against the
/// machine's capacity).
fn rings_schedulers(c: &mut Criterion) {
    let (k, n, m): (u64, u64, u64) = (50, 500, 10);
    let hops = k * n * m;
    let args = [k.to_string(), n.to_string(), m.to_string()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut means = Vec::new();
    for schedulers in [1, 2] {
        let name = format!("rings_{schedulers}_schedulers");
        let Some(t) = measure_on(c, &name, "rings", &args, hops, schedulers) else {
            return;
        };
        means.push(t.mean_ns());
    }
    println!(
        ">> rings {k}x{n}x{m}: {:.0} ns per hop on 1 scheduler, {:.0} on 2: {:.2}x",
        means[0] / hops as f64,
        means[1] / hops as f64,
        means[0] / means[1]
    );
}

fn ring(c: &mut Criterion) {
    let (n, m): (u64, u64) = (1000, 100);
    let hops = n * m;
    let Some(t) = measure(c, "ring", "ring", &[&n.to_string(), &m.to_string()], hops) else {
        return;
    };
    let secs = t.mean_ns() / 1e9;
    println!(
        ">> ring {n}x{m}: {:.0} hops per second, {:.0} ns per hop (spawning the ring included), \
         {:.0} context switches per run",
        hops as f64 / secs,
        t.mean_ns() / hops as f64,
        t.per_run(t.context_switches)
    );
}

/// Resident set size of this process in bytes, from /proc/self/statm (4 KiB pages).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// In the child: spawns `n` processes and leaves them waiting (`spawn.basm N 0`), then prints
/// `rss_delta heap_bytes live` for the parent.
fn spawn_memory_child(n: u64) {
    let module = load("spawn");
    let args = vec![n.to_string(), "0".to_string()];
    let before = rss_bytes().unwrap_or(0);
    let mut vm = new_vm(&module, &args, 1);
    let end = vm.run();
    assert_eq!(end.status(), 0, "spawn.basm {args:?} ended with {end:?}");
    let after = rss_bytes().unwrap_or(0);
    let heap: usize = (1..=n as u32)
        .filter_map(|pid| vm.process_stats(pid))
        .map(|s| s.peak_heap)
        .sum();
    println!(
        "{} {} {}",
        after.saturating_sub(before),
        heap,
        vm.live_processes()
    );
}

fn spawn(c: &mut Criterion) {
    let n: u64 = 100_000;
    let Some(t) = measure(c, "spawn", "spawn", &[&n.to_string()], n) else {
        return;
    };
    // Memory per live process, measured in a fresh process (this same binary, re-run).
    let memory = std::env::current_exe().ok().and_then(|exe| {
        let out = std::process::Command::new(exe)
            .env(MEM_CHILD_ENV, n.to_string())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let f: Vec<u64> = text
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (f.len() == 3).then(|| (f[0], f[1], f[2]))
    });
    let memory = match memory {
        Some((rss, heap, live)) => format!(
            "{:.0} bytes per process (RSS delta with {live} waiting), of which {:.0} bytes process heap; \
             Process struct {} bytes",
            rss as f64 / n as f64,
            heap as f64 / n as f64,
            ember_vm::vm::PROCESS_OVERHEAD - 32
        ),
        None => "memory per process: could not measure".to_string(),
    };
    println!(
        ">> spawn {n}: {:.0} ns per spawn (spawn, wait in receive, stop), {memory}",
        t.mean_ns() / n as f64
    );
}

fn selrecv(c: &mut Criterion) {
    let (k, r): (u64, u64) = (1000, 1000);
    let Some(t) = measure(
        c,
        "selrecv",
        "selrecv",
        &[&k.to_string(), &r.to_string()],
        r,
    ) else {
        return;
    };
    println!(
        ">> selrecv {k}/{r}: {:.0} ns per receive past {k} unmatched messages",
        t.mean_ns() / r as f64
    );
}

fn crash(c: &mut Criterion) {
    let n: u64 = 20_000;
    let Some(t) = measure(c, "crash", "crash", &[&n.to_string()], n) else {
        return;
    };
    println!(
        ">> crash {n}: {:.0} ns per crash (spawn_link, crash, EXIT message received)",
        t.mean_ns() / n as f64
    );
}

fn send(c: &mut Criterion) {
    let len: u64 = 1000;
    let small: u64 = 50_000;
    if let Some(t) = measure(
        c,
        "send_small",
        "send",
        &[&small.to_string(), "0", &len.to_string()],
        2 * small,
    ) {
        println!(
            ">> send_small: {:.0} ns per message ({{:small, i}} both ways through an echo process)",
            t.mean_ns() / (2 * small) as f64
        );
    }
    let large: u64 = 1000;
    if let Some(t) = measure(
        c,
        "send_large",
        "send",
        &["0", &large.to_string(), &len.to_string()],
        2 * large,
    ) {
        let bytes = 2 * large * len * 16;
        println!(
            ">> send_large: {:.0} MB/s copied ({len}-element lists, 16 bytes per cell, both ways), \
             {:.0} ns per message, {:.1} GCs per run",
            bytes as f64 / (t.mean_ns() / 1e9) / 1e6,
            t.mean_ns() / (2 * large) as f64,
            t.per_run(t.gc_runs)
        );
    }
}

fn gc(c: &mut Criterion) {
    let (live, iters): (u64, u64) = (100_000, 500_000);
    let Some(t) = measure(
        c,
        "gc",
        "gc",
        &[&live.to_string(), &iters.to_string()],
        iters,
    ) else {
        return;
    };
    let secs = t.run_time.as_secs_f64();
    let live_mb = (live * 16) as f64 / 1e6;
    let pause_ms = t.gc_nanos as f64 / t.gc_runs.max(1) as f64 / 1e6;
    println!(
        ">> gc {live} live cells ({live_mb:.1} MB): {:.0} GC collections per second, {pause_ms:.3} ms \
         per pause, {:.3} ms pause per MB live, {:.0}% of the time in GC, {:.0} ns per iteration",
        t.gc_runs as f64 / secs,
        pause_ms / live_mb,
        100.0 * t.gc_nanos as f64 / t.run_time.as_nanos().max(1) as f64,
        t.mean_ns() / iters as f64
    );
}

/// 200k `map_put`s of scrambled integer keys into one map, then 200k `map_get`s
/// (bench/map_ops.basm; `bench/erlang/map_ops.erl` is the twin with maps:put/get).
fn maps(c: &mut Criterion) {
    let n: u64 = 200_000;
    let Some(t) = measure(c, "maps", "map_ops", &[&n.to_string()], 2 * n) else {
        return;
    };
    println!(
        ">> maps: {:.0} ns per operation (put or get, {n} entries), {:.1}% of the time in GC",
        t.mean_ns() / (2 * n) as f64,
        100.0 * t.gc_nanos as f64 / t.run_time.as_nanos().max(1) as f64
    );
}

fn main() {
    if let Ok(n) = std::env::var(MEM_CHILD_ENV) {
        spawn_memory_child(n.parse().expect("a process count"));
        return;
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    count(&mut c);
    ring(&mut c);
    rings_schedulers(&mut c);
    spawn(&mut c);
    selrecv(&mut c);
    crash(&mut c);
    send(&mut c);
    gc(&mut c);
    maps(&mut c);
    c.final_summary();
}
