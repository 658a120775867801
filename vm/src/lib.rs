//! ember-vm: Ember's instruction set, bytecode modules and their verifier, and the virtual
//! machine that runs them — an actor runtime a Rust program can embed.
//!
//! # Embedding Ember
//!
//! A host assembles its `.basm` program (with `ember-asm`) or reads an `.ebc` file, builds a
//! [`vm::Vm`] with [`vm::Vm::builder`], and then, in whatever loop it likes:
//!
//! - spawns processes at exported labels with arguments ([`vm::Vm::spawn`]);
//! - sends them [`value::Value`]s, to a pid or a registered name ([`vm::Vm::send`]);
//! - receives what they send to a *host mailbox*, a pseudo-process with a pid that can be
//!   linked, monitored and registered, and whose closing is an exit `:normal`
//!   ([`vm::Vm::open_mailbox`], [`vm::Vm::receive`], [`vm::Vm::close_mailbox`]);
//! - runs the VM until no process can run ([`vm::Vm::run_until_idle`]), for a bounded amount
//!   of work per scheduler ([`vm::Vm::run_for`]), or to the end ([`vm::Vm::run`]);
//! - reads its figures ([`vm::Vm::stats`], [`vm::Vm::live_processes`]).
//!
//! Rust functions registered as [`native`] functions are called from `.basm` as any exported
//! label is. Values cross the boundary by copy, as messages do between processes, so nothing
//! the host does can break a heap.
//!
//! ```
//! use ember_vm::native::Natives;
//! use ember_vm::value::Value;
//! use ember_vm::vm::{Config, Pause, Vm};
//!
//! // A worker that squares numbers with the host's help, and replies to whoever asks.
//! const SRC: &str = "
//! .import host
//! .export worker
//! worker:
//!     receive
//!     | {:square, r5, r0}
//!     call host:times, r0, r0
//!     send r5, {:squared, r0}
//!     jump worker
//! ";
//!
//! let mut natives = Natives::new();
//! natives.register("host", "times", 2, 1, |call| {
//!     match (call.arg(0).as_int(), call.arg(1).as_int()) {
//!         (Some(a), Some(b)) => a.checked_mul(b).map(Value::from).ok_or(Value::atom("badarith")),
//!         _ => Err(Value::atom("badarg")),
//!     }
//! });
//! let main = ember_asm::SourceFile { name: "pool.basm".into(), text: SRC.into(), dir: None };
//! let module = ember_asm::assemble_with(main, &natives.sources()).expect("assembles");
//! let mut vm = Vm::builder()
//!     .config(Config { schedulers: 2, ..Config::default() })
//!     .natives(natives)
//!     .build(module)
//!     .expect("loads");
//!
//! let replies = vm.open_mailbox().unwrap();
//! let worker = vm.spawn("pool:worker", &[]).unwrap();
//! for n in 1..=3 {
//!     vm.send(worker, &Value::tuple([Value::atom("square"), replies.pid().into(), n.into()]))
//!         .unwrap();
//! }
//! // The host's loop: a bounded slice of work at a time, until the VM is idle.
//! while vm.run_for(10_000) == Pause::Budget {}
//! let mut got = Vec::new();
//! while let Some(reply) = vm.receive(&replies).unwrap() {
//!     got.push(reply.as_tuple().unwrap()[1].as_int().unwrap());
//! }
//! assert_eq!(got, [1, 4, 9]);
//! assert_eq!(vm.live_processes(), 2); // the worker, waiting, and the mailbox
//! ```
//!
//! The host acts between runs: nothing here runs at the same time as a process, so a host
//! thread that computes something long sends its result through the host's own loop. A native
//! runs on the scheduler thread of its caller and must be short (there are no dirty
//! schedulers). Atoms are never made at run time: a value's atoms must be named by the program
//! or declared with [`native::Natives::atoms`].
//!
//! # Hot code loading
//!
//! [`vm::Vm::load`] makes a new version of a module current, with the BEAM's rules: calls that
//! name the module (`call m:l`, `jump m:l`, `spawn d, m:l`) go to the current version, a
//! process runs old code until it makes such a call, a second load waits for
//! [`vm::Vm::purge`], which kills the processes still in the old version and copies its
//! literals out of every heap. `.basm` asks for the same through the stdlib's `code` module,
//! served by the host's [`vm::Builder::loader`]. See `Vm::load` for an example.
//!
//! # The public API is sound
//!
//! Terms are machine words that may point into a process heap; the collector moves and frees
//! what they point to. So terms, heaps and processes are internal: no safe call of this crate
//! can hold a term across a collection, view a term of another heap, or forge a pointer. What
//! is public is the instruction set ([`isa`]), bytecode modules and their verifier
//! ([`bytecode`], [`verify`]), the loaded [`program::Program`], the [`vm::Vm`] that runs it
//! with its configuration, figures and host API, host-owned [`value`]s, [`native`] functions,
//! the [`Probe`] of the profiler and the schedule [`explore`]rs of `ember check`.
//!
//! ```compile_fail
//! // Terms cannot be forged from words (the module and the constructor are private):
//! let t = ember_vm::term::Term::from_raw(0x10);
//! ```
//!
//! ```compile_fail
//! // Nor can a heap be made and collected from outside, so no term can outlive a collection:
//! let mut heap = ember_vm::heap::Heap::new();
//! ```
//!
//! ```compile_fail
//! // A process (its registers, its heap) is not reachable from outside either:
//! let p = ember_vm::process::Process::new(0, 0, 1);
//! ```

mod atoms;
pub mod bytecode;
mod code;
pub mod explore;
mod heap;
mod interp;
pub mod isa;
mod lower;
mod map;
pub mod native;
mod process;
mod proctable;
pub mod program;
mod runtime;
mod term;
mod threaded;
mod trace;
pub mod value;
pub mod verify;
pub mod vm;
mod word;

pub use interp::{NoProbe, Probe};
/// How a float prints (spec §1): the assembler's disassembler writes float literals with it.
pub use term::float_text;
