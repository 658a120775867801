//! Any program: what assembles (or loads, for bytes starting with the .ebc magic) and verifies
//! also runs, in-process, without panicking. Each input is cut short after a fixed number of
//! reductions, so a program that loops forever is just a long input, not a hang.
#![no_main]
use ember_vm::verify::{self, VerifiedModule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let module = if data.starts_with(ember_vm::bytecode::MAGIC) {
        match verify::load(data) {
            Ok(module) => module,
            Err(_) => return,
        }
    } else {
        // No directory: imports come from the embedded stdlib only, never from the disk.
        let source = ember_asm::SourceFile::from_bytes("fuzz.basm".into(), data.to_vec(), None);
        match source.and_then(ember_asm::assemble) {
            Ok(module) => verify::verify(module).expect("assembler output verifies"),
            Err(_) => return,
        }
    };
    run(module);
});

/// Reductions (instructions, and `work`'s extra ones) an input may spend in all processes.
const FUEL: u64 = 20_000;

/// Runs `module` from `main` with small limits, output thrown away. The only use of the VM's
/// run API, kept in one place so a change of that API touches only this function.
fn run(module: VerifiedModule) {
    let config = ember_vm::vm::Config {
        budget: 50,
        virtual_time: true,
        seed: Some(1),
        max_heap_bytes: 1 << 20,
        max_memory_bytes: 64 << 20,
        max_processes: 1000,
        max_stack: 1 << 10,
        // Checked between slices: a run stops within one budget of it.
        max_reductions: Some(FUEL),
        schedulers: 1,
        // Reports go to the sink like the rest of the output.
        quiet_reports: false,
    };
    let program = ember_vm::program::Program::new(module);
    let mut vm = ember_vm::vm::Vm::new(
        program,
        config,
        Box::new(std::io::sink()),
        Box::new(std::io::sink()),
    );
    if vm
        .spawn_main("main", &["fuzz".into(), "-1".into()])
        .is_err()
    {
        return;
    }
    vm.run();
}
