//! `asm → disasm → asm` gives the identical bytecode file, for every example and for generated
//! programs; and the loader rejects corrupted files with an error, never a panic.

use ember_vm::verify;
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn basm_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.ends_with("errors") {
            continue; // programs that are meant not to assemble
        }
        if p.is_dir() {
            basm_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "basm") {
            out.push(p);
        }
    }
}

fn all_programs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    basm_files(&root.join("examples"), &mut files);
    basm_files(&root.join("bench"), &mut files);
    basm_files(&root.join("tests/basm"), &mut files);
    files.sort();
    files
}

/// Assembles `text`, disassembles the result, re-assembles that and compares the bytes.
fn assert_round_trip(name: &str, module: ember_vm::bytecode::Module) {
    let bytes = module.encode();
    let text = ember_asm::disassemble(&module);
    let again = ember_asm::assemble_str("disassembly.basm", &text)
        .unwrap_or_else(|e| panic!("{name}: disassembly does not assemble:\n{e}\n---\n{text}"));
    assert!(
        again.encode() == bytes,
        "{name}: re-assembled bytes differ\n---\n{text}"
    );
    // And the file decodes to the same module and verifies.
    let decoded = ember_vm::bytecode::Module::decode(&bytes).expect("decodes");
    assert_eq!(decoded, module, "{name}: decode(encode(m)) != m");
    verify::verify(decoded).expect("verifies");
}

#[test]
fn every_example_round_trips_through_the_disassembler() {
    let files = all_programs();
    assert!(files.len() >= 10, "examples missing");
    for path in files {
        let module = ember_asm::assemble_path(&path)
            .unwrap_or_else(|e| panic!("{} does not assemble:\n{e}", path.display()));
        assert_round_trip(&path.display().to_string(), module);
    }
}

/// Small random but valid programs: straight-line code over random operands, literals,
/// templates, patterns and clause tables, with forward and backward jumps.
fn program_strategy() -> impl Strategy<Value = String> {
    let reg = (0u8..8).prop_map(|r| format!("r{r}"));
    let atom = prop_oneof![
        Just(":ok".to_string()),
        Just(":EXIT".to_string()),
        Just(":\"two words\"".to_string()),
        "[a-z]{1,5}".prop_map(|s| format!(":{s}")),
    ];
    let int = any::<i64>().prop_map(|i| i.to_string());
    let string = "[ -~]{0,8}".prop_map(|s| format!("{:?}", s));
    let leaf = prop_oneof![reg.clone(), atom, int, string, Just("[]".to_string())];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("{{{}}}", v.join(", "))),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| format!("[{}]", v.join(", "))),
            (prop::collection::vec(inner.clone(), 1..3), inner).prop_map(|(v, t)| format!(
                "[{} | {}]",
                v.join(", "),
                t
            )),
        ]
    });
    let pattern = value
        .clone()
        .prop_map(|v| v.replacen("r1", "^r1", 1).replacen("r2", "_", 1));
    let label = (0usize..6).prop_map(|l| format!("l{l}"));
    let instr = prop_oneof![
        (reg.clone(), value.clone()).prop_map(|(d, v)| format!("move {d}, {v}")),
        (reg.clone(), reg.clone(), value.clone())
            .prop_map(|(d, a, b)| format!("add {d}, {a}, {b}")),
        (value.clone(), value.clone(), label.clone())
            .prop_map(|(a, b, l)| format!("jlt {a}, {b}, {l}")),
        (value.clone(), pattern.clone()).prop_map(|(a, p)| format!("match {a}, {p}")),
        (
            value.clone(),
            prop::collection::vec((pattern.clone(), prop::option::of(label.clone())), 1..4)
        )
            .prop_map(|(a, cs)| {
                let mut s = format!("case {a}");
                for (p, l) in cs {
                    s.push_str(&format!("\n  | {p}"));
                    if let Some(l) = l {
                        s.push_str(&format!(" -> {l}"));
                    }
                }
                s
            }),
        (
            prop::collection::vec(pattern, 0..3),
            0u32..5000,
            label.clone()
        )
            .prop_map(|(ps, t, l)| {
                let mut s = "receive".to_string();
                for p in ps {
                    s.push_str(&format!("\n  | {p} -> {l}"));
                }
                s.push_str(&format!("\n  | after {t}"));
                s
            }),
        (
            reg.clone(),
            label.clone(),
            prop::collection::vec(value.clone(), 0..3)
        )
            .prop_map(|(d, l, args)| {
                let mut s = format!("spawn {d}, {l}");
                for a in args {
                    s.push_str(&format!(", {a}"));
                }
                s
            }),
        value.clone().prop_map(|v| format!("print {v}")),
        label.clone().prop_map(|l| format!("call {l}")),
        Just("ret".to_string()),
        Just("crash".to_string()),
        Just("nop".to_string()),
    ];
    prop::collection::vec(instr, 1..20).prop_map(|instrs| {
        let mut s = String::from(".module gen\n.export l0\n");
        let n = instrs.len();
        for (i, ins) in instrs.into_iter().enumerate() {
            // Spread the six labels over the code so jumps go forwards and backwards.
            if i * 6 / n != (i.saturating_sub(1)) * 6 / n || i == 0 {
                s.push_str(&format!("l{}:\n", i * 6 / n));
            }
            s.push_str(&format!("    {ins}\n"));
        }
        for l in 0..6 {
            if !s.contains(&format!("l{l}:")) {
                s.push_str(&format!("l{l}:\n"));
            }
        }
        s.push_str("    end\n");
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn generated_programs_round_trip(src in program_strategy()) {
        let module = ember_asm::assemble_str("gen.basm", &src)
            .unwrap_or_else(|e| panic!("generated program does not assemble:\n{e}\n---\n{src}"));
        assert_round_trip("generated", module);
    }
}

/// Deterministic xorshift, so failures reproduce.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn mutated_bytecode_is_rejected_or_loads_but_never_panics() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut loaded = 0;
    let mut rejected = 0;
    for path in all_programs() {
        let bytes = ember_asm::assemble_path(&path).unwrap().encode();
        for _ in 0..1500 {
            let mut m = bytes.clone();
            match next(&mut seed) % 4 {
                0 => {
                    // flip a few random bytes
                    for _ in 0..1 + next(&mut seed) % 4 {
                        let i = (next(&mut seed) as usize) % m.len();
                        m[i] = next(&mut seed) as u8;
                    }
                }
                1 => {
                    let n = (next(&mut seed) as usize) % m.len();
                    m.truncate(n);
                }
                2 => {
                    let i = (next(&mut seed) as usize) % m.len();
                    m.insert(i, next(&mut seed) as u8);
                }
                _ => {
                    let i = (next(&mut seed) as usize) % m.len();
                    m.remove(i);
                }
            }
            match verify::load(&m) {
                Ok(_) => loaded += 1,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    rejected += 1;
                }
            }
        }
    }
    assert!(
        rejected > 1000,
        "mutations should mostly be rejected ({rejected} rejected, {loaded} loaded)"
    );
}

#[test]
fn each_class_of_bad_file_gets_its_own_message() {
    let good = ember_asm::assemble_str("t.basm", "main:\n    jump main\n")
        .unwrap()
        .encode();
    let err = |b: &[u8]| verify::load(b).unwrap_err().to_string();
    assert!(err(b"NOPE").contains("bad magic"));
    let mut v = good.clone();
    v[4] = 99;
    assert!(err(&v).contains("unsupported bytecode version 99"));
    assert!(err(&good[..good.len() - 3]).contains("truncated"));
    // The code section holds one `jump` (opcode 3, then a 4-byte target): find it.
    let code_at = good.windows(5).rposition(|w| w == [3, 0, 0, 0, 0]).unwrap();
    let mut v = good.clone();
    v[code_at] = 0xee;
    assert!(err(&v).contains("unknown opcode 0xee"));
    let mut v = good.clone();
    v[code_at + 1] = 2;
    assert!(err(&v).contains("middle of an instruction"), "{}", err(&v));
    let mut v = good.clone();
    v[code_at + 1] = 200;
    assert!(err(&v).contains("outside the code"), "{}", err(&v));
}

#[test]
fn verifier_rejects_inconsistent_modules() {
    use ember_vm::isa::{Instr, Label, Reg, Src};
    let base = ember_asm::assemble_str("t.basm", "main:\n    move r0, :ok\n    end\n").unwrap();
    let check = |m: ember_vm::bytecode::Module, want: &str| {
        let e = verify::verify(m).unwrap_err().to_string();
        assert!(e.contains(want), "expected `{want}` in `{e}`");
    };
    let mut m = base.clone();
    m.code[0] = Instr::Move {
        d: Reg(0),
        v: Src::constant(77),
    };
    check(m, "literal index 77 out of range");
    let mut m = base.clone();
    m.code[0] = Instr::Jump { target: Label(9) };
    check(m, "outside the code");
    let mut m = base.clone();
    m.literals[0] = ember_vm::bytecode::Node::Atom(500);
    check(m, "atom index 500 out of range");
    let mut m = base.clone();
    m.code[1] = Instr::Nop {};
    check(m, "falls through");
    let mut m = base.clone();
    m.lines.pop();
    check(m, "line table");
    let mut m = base;
    m.code[0] = Instr::Work {
        n: Src::constant(0),
    };
    check(m, "integer or a register");
}

/// `call m:l`, `spawn d, m:l` and `spawn_link d, m:l` of an exported label assemble to the
/// calls through the export table; `call l`, and `m:l` of this module's unexported label, stay
/// plain calls. The disassembler writes them back as the source does.
#[test]
fn qualified_calls_go_through_the_export_table() {
    use ember_vm::isa::Opcode;
    let src = ".module t\n.import lists\n.export main, helper\nmain:\n    call helper\n    call t:helper\n    call t:hidden\n    call lists:reverse, []\n    spawn r1, t:helper\n    spawn_link r1, lists:reverse, []\n    spawn r1, helper\n    end\nhelper:\n    ret\nhidden:\n    ret\n";
    let m = ember_asm::assemble_str("t.basm", src).unwrap();
    let ops: Vec<Opcode> = m.code[..8].iter().map(|i| i.opcode()).collect();
    assert_eq!(
        ops,
        [
            Opcode::Call,
            Opcode::CallExt,
            Opcode::Call,
            Opcode::CallExt,
            Opcode::SpawnExt,
            Opcode::SpawnLinkExt,
            Opcode::Spawn,
            Opcode::End
        ]
    );
    let text = ember_asm::disassemble(&m);
    assert!(text.contains("    call t:helper\n"), "{text}");
    assert!(text.contains("    call lists:reverse, []\n"), "{text}");
    assert!(
        text.contains("    spawn_link r1, lists:reverse, []\n"),
        "{text}"
    );
    assert_round_trip("t.basm", m);
}

#[test]
fn a_call_through_the_export_table_must_name_an_exported_label() {
    use ember_vm::isa::{ArgsId, Instr, Label};
    let src = ".export main\nmain:\n    call main\n    end\nhidden:\n    ret\n";
    let mut m = ember_asm::assemble_str("t.basm", src).unwrap();
    m.code[0] = Instr::CallExt {
        target: Label(2),
        args: ArgsId(0),
    };
    let e = verify::verify(m.clone()).unwrap_err().to_string();
    assert!(e.contains("not an exported label"), "{e}");
    m.code[0] = Instr::CallExt {
        target: Label(0),
        args: ArgsId(0),
    };
    verify::verify(m).expect("main is exported");
}
