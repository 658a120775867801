//! ember-vm: Ember's instruction set, bytecode modules and their verifier, and the virtual
//! machine that runs them.

pub mod bytecode;
pub mod isa;
