//! The `ember` binary: assemble, disassemble, run and profile .basm programs.

use clap::{Parser, Subcommand};
use ember_vm::verify::{self, VerifiedModule};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod check;
mod perfetto;
mod prof;
mod view;

// Process heaps, message fragments and process structs are many small allocations, freed on
// other threads than the one that made them with more than one scheduler: mimalloc handles
// both better than the system allocator. (Not under ThreadSanitizer, built with
// `--cfg ember_tsan` by .ci/run: it sees the allocations it intercepts, the system's, and
// would take mimalloc's reuse of memory freed by another thread for a race.)
#[cfg(not(ember_tsan))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ember",
    version,
    about = "A small, fast, BEAM-style virtual machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Flags shared by `run` and `prof`.
#[derive(clap::Args)]
struct RunFlags {
    /// A .basm source file or an .ebc bytecode file.
    file: PathBuf,
    /// Arguments for the program: pid 0 starts with `r0 :=` this list, as binaries.
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    /// Reductions per slice before a process is preempted (default 4000). Implies
    /// `--schedulers 1` unless that is given too.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    budget: Option<u32>,
    /// Scheduler threads (default: one per core). One scheduler gives the exact single-queue
    /// order of spec §5.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    schedulers: Option<u32>,
    /// Write scheduler events as JSON Lines to this file.
    #[arg(long, value_name = "PATH")]
    trace: Option<PathBuf>,
    /// Seed for `rand` (runs with the same seed draw the same numbers).
    #[arg(long)]
    seed: Option<u64>,
    /// Supervisors write no reports (the `report` instruction is silent): standard error holds
    /// only the VM's own crash lines, as spec §5 first had it.
    #[arg(long)]
    quiet_reports: bool,
    /// With --trace: collections are trace events too.
    #[arg(long, requires = "trace")]
    trace_gc: bool,
    /// Let the clock jump to the next timeout when nothing can run, so runs repeat exactly.
    #[arg(long)]
    virtual_time: bool,
    /// A process whose heap, stacks and mailbox would pass this many bytes crashes
    /// `:heap_limit`.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    max_heap: usize,
    /// Bound on the whole VM's memory (default: three quarters of the machine's): an
    /// allocation past it crashes the allocating process `:heap_limit`, a spawn `:system_limit`.
    #[arg(long, value_name = "BYTES")]
    max_memory: Option<usize>,
    /// A spawn beyond this many live processes crashes the spawner `:system_limit`.
    #[arg(long, value_name = "N", default_value_t = 1 << 22)]
    max_processes: usize,
    /// Run this schedule (what `ember check` prints: `STEP=PID/BUDGET` and `STEP=t` items,
    /// the decisions that differ from the default order). Implies one scheduler and virtual
    /// time.
    #[arg(long, value_name = "S", conflicts_with = "replay")]
    schedule: Option<String>,
    /// Write the run's schedule to this file (one scheduler): which processes ran out of
    /// order, where slices ended early, and when timeouts fired, so that `--replay` repeats it.
    #[arg(long, value_name = "PATH")]
    record: Option<PathBuf>,
    /// Run the schedule `--record` wrote (on virtual time, one scheduler).
    #[arg(long, value_name = "PATH")]
    replay: Option<PathBuf>,
    /// Run every instruction in the general interpreter, the lowered fast path off (to test
    /// one path against the other; programs see no difference but speed).
    #[arg(long)]
    no_lower: bool,
    /// Watch the program's .basm file (and the modules it imports from its directory): when
    /// one changes, purge its module's old version and load the new one into the running VM
    /// (hot code loading). The VM then runs until interrupted.
    #[arg(long)]
    watch: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Assemble (.basm) or load (.ebc) a program and run it.
    Run(RunFlags),
    /// Assemble a .basm program into a bytecode file.
    Asm {
        file: PathBuf,
        /// Output path (default: the input with the extension .ebc).
        #[arg(short = 'o', value_name = "OUT.ebc")]
        out: Option<PathBuf>,
    },
    /// Print the assembly of a bytecode file (it assembles back to the identical file).
    Disasm { file: PathBuf },
    /// Run a program and report where its time went.
    Prof {
        #[command(flatten)]
        run: RunFlags,
        /// Also write call stacks weighted by reductions, in the folded format of flame graphs.
        #[arg(long, value_name = "PATH")]
        folded: Option<PathBuf>,
        /// Also write the flame graph of those call stacks, as an SVG file.
        #[arg(long, value_name = "PATH")]
        svg: Option<PathBuf>,
    },
    /// Convert a `--trace` file to the Chrome trace-event format that Perfetto UI and
    /// chrome://tracing open.
    Perfetto {
        trace: PathBuf,
        /// Where to write it.
        #[arg(short, long, value_name = "OUT")]
        out: PathBuf,
    },
    /// Write a `--trace` file as one self-contained HTML page: a swimlane per process over the
    /// scheduler's steps, with the run queue, mailboxes and links at the selected step.
    View {
        trace: PathBuf,
        /// Where to write the page.
        #[arg(short, long, value_name = "OUT")]
        out: PathBuf,
    },
    /// Run a program under many schedules and report the first run that ends badly (pid 0
    /// exits abnormally, a deadlock, a crash the VM raises, a failed `assert`), with a command
    /// that replays it and the shortest schedule that still fails. Exits 1 when a run failed, 2
    /// when no run finished within `--max-steps`.
    Check {
        /// A .basm source file or an .ebc bytecode file.
        file: PathBuf,
        /// Arguments for the program.
        #[arg(allow_negative_numbers = true)]
        args: Vec<String>,
        /// How many runs (default: 1000; `budgets` tries budgets 1 to N).
        #[arg(long, value_name = "N")]
        runs: Option<u64>,
        /// Seed of the strategy's choices and of the program's `rand`.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = check::StrategyName::Random)]
        strategy: check::StrategyName,
        /// A run that spends this many reductions is stopped and not judged.
        #[arg(long, value_name = "K", default_value_t = 1_000_000)]
        max_steps: u64,
        /// PCT: the bug depth it aims at (the number of ordering constraints).
        #[arg(long, value_name = "D", default_value_t = 3)]
        depth: u32,
        /// Reductions per slice, when a strategy does not cut the slice shorter.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..), default_value_t = 4000)]
        budget: u32,
        /// Write the trace of the shortest failing run here (for `ember view`).
        #[arg(long, value_name = "PATH")]
        trace: Option<PathBuf>,
    },
    /// Print the instruction set reference (docs/isa.md).
    #[command(hide = true)]
    Isa,
}

/// An error already formatted for the user, with the exit status to use.
struct Failure {
    message: String,
    status: u8,
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        status: 1,
    }
}

/// Assembles or loads `path` and verifies it.
fn load(path: &Path) -> Result<VerifiedModule, Failure> {
    let name = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| fail(format!("{name}: error: cannot read file: {e}")))?;
    if path.extension().is_some_and(|e| e == "ebc") {
        return verify::load(&bytes)
            .map_err(|e| fail(format!("{name}: error: invalid bytecode: {e}")));
    }
    let dir = path.parent().map(Path::to_path_buf);
    let module = ember_asm::SourceFile::from_bytes(name.clone(), bytes, dir)
        .and_then(ember_asm::assemble)
        .map_err(|errors| {
            let mut message = errors.to_string();
            while message.ends_with('\n') {
                message.pop();
            }
            fail(message)
        })?;
    verify::verify(module)
        .map_err(|e| fail(format!("{name}: error: internal assembler error: {e}")))
}

/// How `code:load` and `--watch` read a module: a `.basm` or `.ebc` path (from the program's
/// directory), the program's own module, a `NAME.basm` beside the program, or a stdlib module.
fn module_loader(
    main: PathBuf,
    main_module: String,
) -> impl Fn(&str) -> Result<ember_vm::bytecode::Module, String> + Send + 'static {
    let dir = main.parent().map(Path::to_path_buf).unwrap_or_default();
    move |target: &str| {
        let path = if target.ends_with(".basm") || target.ends_with(".ebc") {
            dir.join(target)
        } else if !target
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!(
                "`{target}` is neither a module name nor a .basm or .ebc path"
            ));
        } else if target == main_module {
            main.clone()
        } else {
            dir.join(format!("{target}.basm"))
        };
        if !path.exists() {
            if let Some(src) = ember_asm::stdlib::source(target) {
                return ember_asm::assemble_str(&format!("{target}.basm"), src)
                    .map_err(|e| e.to_string().trim_end().to_string());
            }
        }
        load(&path)
            .map(|m| m.module().clone())
            .map_err(|f| f.message)
    }
}

/// `--watch`: the program's file and the modules it imports from its directory, by module.
fn watched_files(main: &Path, m: &ember_vm::bytecode::Module) -> Vec<(String, PathBuf)> {
    let dir = main.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut files = vec![(m.units[0].name.clone(), main.to_path_buf())];
    for u in &m.units[1..] {
        let path = dir.join(format!("{}.basm", u.name));
        if path.exists() {
            files.push((u.name.clone(), path));
        }
    }
    files
}

/// `--watch`: a thread that looks at the files every 100 ms and asks the VM to reload the module
/// of each one whose contents changed (an editor's save may change the time and not the text),
/// once the new contents read the same twice in a row (a file caught half-written is not
/// loaded).
fn watch(files: Vec<(String, PathBuf)>, remote: ember_vm::vm::Remote) {
    // Read now, before the VM runs: a thread that starts late would take an edit made in the
    // meantime for the version running.
    let mut loaded: Vec<Option<Vec<u8>>> =
        files.iter().map(|(_, p)| std::fs::read(p).ok()).collect();
    std::thread::spawn(move || {
        let mut seen: Vec<Option<Vec<u8>>> = vec![None; files.len()];
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            for (i, (module, path)) in files.iter().enumerate() {
                let now = std::fs::read(path).ok();
                if now.is_none() || now == loaded[i] {
                    seen[i] = None;
                } else if now == seen[i] {
                    loaded[i] = now;
                    seen[i] = None;
                    remote.reload(module);
                } else {
                    seen[i] = now;
                }
            }
        }
    });
}

/// One scheduler per core (spec §9).
fn default_schedulers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn run(flags: RunFlags, prof: Option<prof::Outputs>) -> Result<u8, Failure> {
    let module = load(&flags.file)?;
    // Exactness (spec §9): the flags that fix the order imply one scheduler, as does the
    // profiler, whose probe sees one.
    let mut replayed_nows = Vec::new();
    let schedule: Option<ember_vm::explore::Schedule> = match (&flags.schedule, &flags.replay) {
        (Some(text), _) => Some(
            text.parse()
                .map_err(|e| fail(format!("ember: error: --schedule: {e}")))?,
        ),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                fail(format!(
                    "{}: error: cannot read the schedule: {e}",
                    path.display()
                ))
            })?;
            let (schedule, nows) = parse_recording(&text)
                .map_err(|e| fail(format!("{}: error: {e}", path.display())))?;
            replayed_nows = nows;
            Some(schedule)
        }
        (None, None) => None,
    };
    let explored = schedule.is_some() || flags.record.is_some();
    let exact = flags.budget.is_some()
        || flags.trace.is_some()
        || flags.virtual_time
        || prof.is_some()
        || explored;
    if explored && flags.schedulers.is_some_and(|n| n > 1) {
        return Err(fail(
            "ember: error: --schedule, --record and --replay run on one scheduler",
        ));
    }
    let schedulers = match flags.schedulers {
        Some(n) => n as usize,
        None if exact => 1,
        None => default_schedulers(),
    };
    let config = ember_vm::vm::Config {
        budget: flags.budget.unwrap_or(4000),
        schedulers,
        // A schedule runs on virtual time (set here so that a trace's header says so).
        virtual_time: flags.virtual_time || schedule.is_some(),
        seed: flags.seed,
        max_heap_bytes: flags.max_heap,
        max_memory_bytes: flags
            .max_memory
            .unwrap_or_else(ember_vm::vm::default_max_memory),
        max_processes: flags.max_processes,
        quiet_reports: flags.quiet_reports,
        ..Default::default()
    };
    let program = if flags.no_lower {
        ember_vm::program::Program::without_lowering(module)
    } else {
        ember_vm::program::Program::new(module)
    };
    // `print` output shows as it happens: line by line on a terminal; to a pipe or a file in
    // blocks, flushed whenever the VM waits or ends (spec §10).
    let out: Box<dyn Write + Send> = if io::stdout().is_terminal() {
        Box::new(io::LineWriter::new(io::stdout()))
    } else {
        Box::new(io::BufWriter::with_capacity(1 << 16, io::stdout()))
    };
    let main_module = program.module.module().units[0].name.clone();
    let watched = if flags.watch {
        watched_files(&flags.file, program.module.module())
    } else {
        Vec::new()
    };
    let mut vm = ember_vm::vm::Vm::new(program, config, out, Box::new(io::stderr()));
    vm.set_loader(module_loader(flags.file.clone(), main_module));
    if flags.watch {
        watch(watched, vm.remote());
    }
    if let Some(path) = &flags.trace {
        let file = std::fs::File::create(path).map_err(|e| {
            fail(format!(
                "{}: error: cannot create trace file: {e}",
                path.display()
            ))
        })?;
        vm.set_trace(Box::new(io::BufWriter::new(file)));
        vm.set_trace_gc(flags.trace_gc);
    }
    vm.spawn_main("main", &flags.args).map_err(fail)?;
    if let Some(schedule) = &schedule {
        vm.explore(Box::new(ember_vm::explore::Replay::new(schedule)));
        vm.replay_nows(replayed_nows);
    } else if flags.record.is_some() {
        vm.record();
    }
    let end = match prof {
        None => vm.run(),
        Some(outputs) => prof::profile(&mut vm, &outputs).map_err(fail)?,
    };
    if let Some(path) = &flags.record {
        let nows: Vec<String> = vm.recorded_nows().iter().map(u64::to_string).collect();
        let text = format!("{}\nnow {}\n", vm.schedule(), nows.join(","));
        std::fs::write(path, text).map_err(|e| {
            fail(format!(
                "{}: error: cannot write the schedule: {e}",
                path.display()
            ))
        })?;
    }
    if let ember_vm::vm::RunEnd::OutputFailed {
        status,
        message: Some(message),
    } = &end
    {
        return Err(Failure {
            message: message.clone(),
            status: *status as u8,
        });
    }
    Ok((end.status() & 0xff) as u8)
}

/// A `--record` file: the schedule on its first line, then `now V,V,...` (what `now` read).
fn parse_recording(text: &str) -> Result<(ember_vm::explore::Schedule, Vec<u64>), String> {
    let mut lines = text.lines();
    let schedule = lines.next().unwrap_or("").trim().parse()?;
    let mut nows = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let Some(values) = line.trim().strip_prefix("now") else {
            return Err(format!("unexpected line `{line}` (want `now V,V,...`)"));
        };
        for v in values.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            nows.push(v.parse().map_err(|_| format!("bad `now` value `{v}`"))?);
        }
    }
    Ok((schedule, nows))
}

fn asm(file: &Path, out: Option<PathBuf>) -> Result<u8, Failure> {
    let module = load(file)?;
    let out = out.unwrap_or_else(|| file.with_extension("ebc"));
    std::fs::write(&out, module.module().encode())
        .map_err(|e| fail(format!("{}: error: cannot write: {e}", out.display())))?;
    Ok(0)
}

fn disasm(file: &Path) -> Result<u8, Failure> {
    let module = load(file)?;
    let text = ember_asm::disassemble(module.module());
    write_stdout(text.as_bytes())
}

/// The text of a `--trace` file.
fn read_trace(trace: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(trace).map_err(|e| {
        fail(format!(
            "{}: error: cannot read the trace: {e}",
            trace.display()
        ))
    })
}

/// `ember view TRACE -o OUT`.
fn view(trace: &Path, out: &Path) -> Result<u8, Failure> {
    let text = read_trace(trace)?;
    let title = trace
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let page = view::page(&text, &title).map_err(|e| fail(format!("{}:{e}", trace.display())))?;
    std::fs::write(out, page)
        .map_err(|e| fail(format!("{}: error: cannot write: {e}", out.display())))?;
    Ok(0)
}

/// `ember perfetto TRACE -o OUT`.
fn perfetto(trace: &Path, out: &Path) -> Result<u8, Failure> {
    let text = read_trace(trace)?;
    let doc = perfetto::convert(&text).map_err(|e| fail(format!("{}:{e}", trace.display())))?;
    std::fs::write(out, doc)
        .map_err(|e| fail(format!("{}: error: cannot write: {e}", out.display())))?;
    Ok(0)
}

/// Writes all of `bytes` to standard output: a closed pipe ends quietly with status 141, any
/// other failure with status 1 and a message (spec §10).
fn write_stdout(bytes: &[u8]) -> Result<u8, Failure> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(141),
        Err(e) => Err(fail(format!(
            "ember: error: cannot write standard output: {e}"
        ))),
    }
}

fn main() -> ExitCode {
    // (No large pages: mimalloc's `allow_large_os_pages` made runs that fault in hundreds of
    // megabytes bimodal on this project's VM, skynet 380 or 1,500-1,900 ms, spawning a million
    // processes 230 or 500-1,700, as 2 MiB faults land on memory the host has taken back;
    // with 4 KiB pages they take 370-400 and 225-250, and a ring of 10,000 processes, whose
    // young generations are now one 1 KiB chunk each, hops as fast either way.)
    let cli = Cli::parse();
    // Deeply nested terms are walked recursively in places; a big stack for the VM thread keeps
    // such programs from overflowing the native stack (pages are only touched when used).
    let worker = std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(move || match cli.command {
            Command::Run(flags) => run(flags, None),
            Command::Prof {
                run: flags,
                folded,
                svg,
            } => run(flags, Some(prof::Outputs { folded, svg })),
            Command::Asm { file, out } => asm(&file, out),
            Command::Disasm { file } => disasm(&file),
            Command::Perfetto { trace, out } => perfetto(&trace, &out),
            Command::View { trace, out } => view(&trace, &out),
            Command::Check {
                file,
                args,
                runs,
                seed,
                strategy,
                max_steps,
                depth,
                budget,
                trace,
            } => {
                let opts = check::Options {
                    runs: runs.unwrap_or(match strategy {
                        check::StrategyName::Budgets => 64,
                        _ => 1000,
                    }),
                    file,
                    args,
                    seed,
                    strategy,
                    max_steps,
                    depth,
                    budget,
                    trace,
                };
                load(&opts.file).and_then(|module| {
                    check::check(&opts, ember_vm::program::Program::new(module)).map_err(fail)
                })
            }
            Command::Isa => write_stdout(ember_vm::isa::isa_markdown().as_bytes()),
        });
    let result = match worker.map(|h| h.join()) {
        Ok(Ok(r)) => r,
        Ok(Err(_)) | Err(_) => Err(Failure {
            message: "ember: internal error (this is a bug in Ember; please report it)".into(),
            status: 70,
        }),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(f) => {
            let _ = io::stdout().flush();
            // Standard error may be unwritable too: the status still says what happened.
            let _ = writeln!(io::stderr(), "{}", f.message);
            ExitCode::from(f.status)
        }
    }
}
