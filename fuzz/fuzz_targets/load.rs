//! Any bytes: the bytecode loader and verifier reject or accept, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(module) = ember_vm::verify::load(data) {
        let _ = ember_asm::disassemble(module.module());
    }
});
