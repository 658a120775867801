//! ember-vm: Ember's instruction set, bytecode modules and their verifier, and the virtual
//! machine that runs them.
//!
//! # The public API is sound
//!
//! Terms are machine words that may point into a process heap; the collector moves and frees
//! what they point to. So terms, heaps and processes are internal: no safe call of this crate
//! can hold a term across a collection, view a term of another heap, or forge a pointer. What
//! is public is the instruction set ([`isa`]), bytecode modules and their verifier
//! ([`bytecode`], [`verify`]), the loaded [`program::Program`], and the [`vm::Vm`] that runs it,
//! with its configuration, figures, the [`Probe`] of the profiler and the schedule
//! [`explore`]rs of `ember check`.
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
mod trace;
pub mod value;
pub mod verify;
pub mod vm;
mod word;

pub use interp::{NoProbe, Probe};
/// How a float prints (spec §1): the assembler's disassembler writes float literals with it.
pub use term::float_text;
