//! Assembler speed on a large generated file: lines per second through lexing, parsing,
//! assembling and encoding.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::fmt::Write;

/// A program of about `n` lines mixing every kind of operand: registers, literals, templates,
/// patterns, clause tables and labels, forward and backward.
fn generate(n: usize) -> String {
    let mut s = String::from(".module big\n.export main\nmain:\n");
    let mut lines = 3;
    let mut block = 0;
    while lines < n {
        let _ = write!(
            s,
            "b{block}:\n    move r1, {{:tag, r0, [1, 2, r2], \"text {block}\"}}\n    add r2, r2, {block}\n    jlt r2, 1000, b{next}\n    case r1\n      | {{:tag, r3, [_, _ | r4], _}} -> b{block}\n      | {{:other, ^r5}}\n    send r0, {{:msg, r1, :atom_{m}}}\n    receive\n      | {{:reply, ^r1, r6}} -> b{block}\n      | after 100 -> b{next}\n",
            next = block + 1,
            m = block % 50
        );
        lines += 11;
        block += 1;
    }
    let _ = writeln!(s, "b{block}:\n    end");
    s
}

fn assembler(c: &mut Criterion) {
    let src = generate(100_000);
    let lines = src.lines().count();
    let mut g = c.benchmark_group("asm");
    g.throughput(Throughput::Elements(lines as u64));
    g.sample_size(10);
    g.bench_function("assemble_100k_lines", |b| {
        b.iter(|| {
            ember_asm::assemble_str("big.basm", &src)
                .expect("assembles")
                .encode()
        })
    });
    g.finish();
    let t0 = std::time::Instant::now();
    let bytes = ember_asm::assemble_str("big.basm", &src).unwrap().encode();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        ">> asm: {lines} lines in {:.1} ms: {:.0} lines/s; .ebc {} bytes ({:.1} bytes/line)",
        secs * 1e3,
        lines as f64 / secs,
        bytes.len(),
        bytes.len() as f64 / lines as f64
    );
}

criterion_group!(benches, assembler);
criterion_main!(benches);
