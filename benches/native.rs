//! What a native call costs against a .basm call of the same function: a loop of 100,000
//! calls of `add(a, b)`, one through the host's Rust function `host:add`, one through a label
//! of a .basm module. Both pay the loop's own instructions; the difference is the call.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ember_vm::native::Natives;
use ember_vm::value::Value;
use ember_vm::vm::{Capture, Config, Vm};

const CALLS: i64 = 100_000;

const SRC: &str = r#"
.import host
.export native_loop, basm_loop
native_loop:
    move r3, r0
    move r2, 0
native_next:
    call host:add, r2, 1
    add r2, r2, 1
    jlt r2, r3, native_next
    end
basm_loop:
    move r3, r0
    move r2, 0
basm_next:
    call add, r2, 1
    add r2, r2, 1
    jlt r2, r3, basm_next
    end
add:
    add r0, r0, r1
    ret
"#;

fn natives() -> Natives {
    let mut n = Natives::new();
    n.register("host", "add", 2, 1, |c| {
        match (c.arg(0).as_int(), c.arg(1).as_int()) {
            (Some(a), Some(b)) => a
                .checked_add(b)
                .map(Value::from)
                .ok_or_else(|| Value::atom("badarith")),
            _ => Err(Value::atom("badarg")),
        }
    });
    n
}

fn vm() -> Vm {
    let natives = natives();
    let module = ember_asm::assemble_with(
        ember_asm::SourceFile {
            name: "bench.basm".into(),
            text: SRC.into(),
            dir: None,
        },
        &natives.sources(),
    )
    .expect("assembles");
    Vm::builder()
        .config(Config {
            seed: Some(0),
            ..Config::default()
        })
        .natives(natives)
        .stdout(Capture::new())
        .build(module)
        .expect("loads")
}

fn calls(c: &mut Criterion) {
    let mut g = c.benchmark_group("native");
    g.throughput(Throughput::Elements(CALLS as u64));
    for entry in ["native_loop", "basm_loop"] {
        g.bench_function(entry, |b| {
            b.iter_batched(
                vm,
                |mut vm| {
                    vm.spawn(entry, &[Value::Int(CALLS)]).expect("spawns");
                    vm.run_until_idle();
                    assert_eq!(vm.stats.reductions, 3 + 5 * CALLS as u64, "every call ran");
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, calls);
criterion_main!(benches);
