//! Any text: the lexer, parser, assembler and diagnostics return errors, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (_, diags) = ember_asm::parser::parse(&text);
    let _ = ember_asm::diag::render("fuzz.basm", &text, &diags);
    match ember_asm::assemble_str("fuzz.basm", &text) {
        Ok(module) => {
            // What assembles must verify, encode, load and disassemble.
            let bytes = module.encode();
            ember_vm::verify::load(&bytes).expect("assembler output verifies");
            let _ = ember_asm::disassemble(&module);
        }
        // The report a user would see.
        Err(errors) => drop(errors.to_string()),
    }
});
