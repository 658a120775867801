//! ember-asm: the .basm lexer, parser, assembler, disassembler and diagnostics.

pub mod assemble;
pub mod ast;
pub mod diag;
pub mod disasm;
pub mod lexer;
pub mod parser;
pub mod stdlib;

pub use assemble::{assemble, assemble_path, assemble_str, assemble_with, AsmErrors, SourceFile};
pub use disasm::disassemble;
