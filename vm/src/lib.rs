//! ember-vm: Ember's instruction set, bytecode modules and their verifier, and the virtual
//! machine that runs them.

pub mod atoms;
pub mod bytecode;
pub mod heap;
pub mod interp;
pub mod isa;
pub mod lower;
pub mod process;
mod proctable;
pub mod program;
pub mod term;
pub mod trace;
pub mod verify;
pub mod vm;
