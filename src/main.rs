//! The `ember` binary: assemble, disassemble, run and profile .basm programs.

use clap::{Parser, Subcommand};
use ember_vm::verify::{self, VerifiedModule};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod prof;

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
    /// Reductions per slice before a process is preempted.
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u32).range(1..))]
    budget: u32,
    /// Write scheduler events as JSON Lines to this file.
    #[arg(long, value_name = "PATH")]
    trace: Option<PathBuf>,
    /// Seed for `rand` (runs with the same seed draw the same numbers).
    #[arg(long)]
    seed: Option<u64>,
    /// Let the clock jump to the next timeout when nothing can run, so runs repeat exactly.
    #[arg(long)]
    virtual_time: bool,
    /// A process whose live heap exceeds this many bytes after a collection crashes
    /// `:heap_limit`.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    max_heap: usize,
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

fn run(flags: RunFlags, folded: Option<Option<PathBuf>>) -> Result<u8, Failure> {
    let module = load(&flags.file)?;
    let config = ember_vm::vm::Config {
        budget: flags.budget,
        virtual_time: flags.virtual_time,
        seed: flags.seed,
        max_heap_bytes: flags.max_heap,
        ..Default::default()
    };
    let program = ember_vm::program::Program::new(module);
    let out = Box::new(io::BufWriter::with_capacity(1 << 16, io::stdout()));
    let mut vm = ember_vm::vm::Vm::new(program, config, out, Box::new(io::stderr()));
    if let Some(path) = &flags.trace {
        let file = std::fs::File::create(path).map_err(|e| {
            fail(format!(
                "{}: error: cannot create trace file: {e}",
                path.display()
            ))
        })?;
        vm.set_trace(Box::new(io::BufWriter::new(file)));
    }
    vm.spawn_main("main", &flags.args).map_err(fail)?;
    let end = match folded {
        None => vm.run(),
        Some(folded) => prof::profile(&mut vm, folded.as_deref()).map_err(fail)?,
    };
    Ok((end.status() & 0xff) as u8)
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
    let mut stdout = io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    Ok(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Deeply nested terms are walked recursively in places; a big stack for the VM thread keeps
    // such programs from overflowing the native stack (pages are only touched when used).
    let worker = std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(move || match cli.command {
            Command::Run(flags) => run(flags, None),
            Command::Prof { run: flags, folded } => run(flags, Some(folded)),
            Command::Asm { file, out } => asm(&file, out),
            Command::Disasm { file } => disasm(&file),
            Command::Isa => {
                let _ = io::stdout().write_all(ember_vm::isa::isa_markdown().as_bytes());
                Ok(0)
            }
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
            eprintln!("{}", f.message);
            ExitCode::from(f.status)
        }
    }
}
