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
    // Every field named today; the default for any the VM adds later.
    #[allow(clippy::needless_update)]
    let config = ember_vm::vm::Config {
        budget: 50,
        virtual_time: true,
        seed: Some(1),
        max_heap_bytes: 1 << 20,
        max_stack: 1 << 10,
        ..Default::default()
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
    // The VM has no limit on a run's reductions, so the probe (which sees every instruction)
    // stops the run by unwinding out of it when the fuel is spent. A `max_reductions` setting
    // in the VM's Config would replace this.
    fuel_hook();
    let mut fuel = Fuel(FUEL);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vm.run_with(&mut fuel))) {
        Ok(_) => {}
        Err(payload) if payload.is::<OutOfFuel>() => {}
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// The panic payload that ends a run whose fuel is spent.
struct OutOfFuel;

struct Fuel(u64);

impl Fuel {
    fn spend(&mut self, n: u64) {
        self.0 = self.0.saturating_sub(n);
        if self.0 == 0 {
            std::panic::panic_any(OutOfFuel);
        }
    }
}

impl ember_vm::interp::Probe for Fuel {
    fn instr(&mut self, _: u32, _: u32, _: &[u32], _: u32, _: ember_vm::isa::Opcode) {
        self.spend(1);
    }
    fn work(&mut self, n: u64) {
        self.spend(n);
    }
}

/// libFuzzer's panic hook aborts on any panic (a panic is a crash); this one lets the
/// `OutOfFuel` unwind through and hands every other panic to it.
fn fuel_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let crash = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<OutOfFuel>() {
                crash(info);
            }
        }));
    });
}
