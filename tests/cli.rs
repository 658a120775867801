//! The `ember` binary as a user meets it: commands, exit statuses and error messages.

mod common;
use common::ember;

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ember-cli-{}-{name}", std::process::id()))
}

#[test]
fn asm_then_run_the_bytecode_file_gives_the_same_output() {
    let ebc = temp("pingpong.ebc");
    let (_, err, status) = ember(&["asm", "examples/pingpong.basm", "-o", ebc.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    let from_source = ember(&["run", "examples/pingpong.basm"]);
    let from_bytecode = ember(&["run", ebc.to_str().unwrap()]);
    assert_eq!(from_source, from_bytecode);
    // disasm prints assembly that assembles back to the identical file.
    let (text, _, status) = ember(&["disasm", ebc.to_str().unwrap()]);
    assert_eq!(status, 0);
    let basm = temp("again.basm");
    std::fs::write(&basm, text).unwrap();
    let again = temp("again.ebc");
    let (_, err, status) = ember(&["asm", basm.to_str().unwrap(), "-o", again.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(std::fs::read(&ebc).unwrap(), std::fs::read(&again).unwrap());
    for f in [ebc, basm, again] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn asm_without_o_writes_beside_the_source() {
    let dir = temp("dir");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("hello.basm");
    std::fs::copy("examples/hello.basm", &src).unwrap();
    let (_, err, status) = ember(&["asm", src.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    assert!(dir.join("hello.ebc").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_file_is_an_error_with_status_1() {
    let (_, err, status) = ember(&["run", "no/such/file.basm"]);
    assert_eq!(status, 1);
    assert!(
        err.starts_with("no/such/file.basm: error: cannot read file"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(ember(&["frobnicate"]).2, 2);
    assert_eq!(ember(&["run"]).2, 2);
    assert_eq!(ember(&["run", "examples/hello.basm", "--budget", "0"]).2, 2);
    assert_eq!(
        ember(&["run", "examples/hello.basm", "--budget", "many"]).2,
        2
    );
}

#[test]
fn a_corrupt_bytecode_file_is_rejected_with_a_position() {
    let ebc = temp("bad.ebc");
    std::fs::write(&ebc, b"EMBC\x01\x00\x00\x00\xff").unwrap();
    let (_, err, status) = ember(&["run", ebc.to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(err.contains("error: invalid bytecode: at byte "), "{err}");
    std::fs::write(&ebc, b"not bytecode at all").unwrap();
    let (_, err, status) = ember(&["disasm", ebc.to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(err.contains("bad magic"), "{err}");
    let _ = std::fs::remove_file(ebc);
}

#[test]
fn a_program_without_main_says_so() {
    let src = temp("nomain.basm");
    std::fs::write(&src, "start:\n    end\n").unwrap();
    let (_, err, status) = ember(&["run", src.to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(err.contains("has no label `main`"), "{err}");
    let _ = std::fs::remove_file(src);
}

#[test]
fn program_arguments_arrive_in_r0_as_binaries() {
    let src = temp("args.basm");
    std::fs::write(&src, "main:\n    print r0\n    end\n").unwrap();
    let (out, _, status) = ember(&[
        "run",
        src.to_str().unwrap(),
        "one",
        "-2",
        "--virtual-time",
        "three",
    ]);
    assert_eq!(status, 0);
    assert_eq!(out, "[\"one\", \"-2\", \"three\"]\n");
    let _ = std::fs::remove_file(src);
}

#[test]
fn seeded_runs_repeat_exactly() {
    let src = temp("rand.basm");
    std::fs::write(
        &src,
        "main:\n    rand r1, 1000000\n    rand r2, 1000000\n    print {r1, r2}\n    end\n",
    )
    .unwrap();
    let a = ember(&["run", src.to_str().unwrap(), "--seed", "42"]);
    let b = ember(&["run", src.to_str().unwrap(), "--seed", "42"]);
    let c = ember(&["run", src.to_str().unwrap(), "--seed", "43"]);
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
    let _ = std::fs::remove_file(src);
}
