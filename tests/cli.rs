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

#[test]
fn a_source_that_is_not_utf8_fails_at_its_first_bad_byte() {
    // Raw 0xff inside a string: not silently turned into U+FFFD. The column counts the
    // characters before it on its line (`é` is one).
    let src = temp("latin1.basm");
    std::fs::write(&src, b"main:\n    print \"\xc3\xa9a\xffb\"\n    end\n").unwrap();
    let name = src.to_str().unwrap();
    let (out, err, status) = ember(&["run", name]);
    assert_eq!((out.as_str(), status), ("", 1));
    assert_eq!(
        err,
        format!(
            "{name}:2:14: error: invalid UTF-8 in source (byte 0xff)\n    print \"éa\u{fffd}b\"\n             ^\n"
        )
    );
    // `asm` refuses it the same way and writes nothing.
    let ebc = temp("latin1.ebc");
    let (_, err, status) = ember(&["asm", name, "-o", ebc.to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(
        err.starts_with(&format!("{name}:2:14: error: invalid UTF-8")),
        "{err}"
    );
    assert!(!ebc.exists());
    // A sequence cut short by the end of the file.
    std::fs::write(&src, b"main:\n    end\n; \xe2\x82").unwrap();
    let (_, err, status) = ember(&["run", name]);
    assert_eq!(status, 1);
    assert!(
        err.starts_with(&format!(
            "{name}:3:3: error: invalid UTF-8 in source (byte 0xe2)\n"
        )),
        "{err}"
    );
    // The same bytes written as an escape are fine.
    std::fs::write(&src, "main:\n    print \"a\\xffb\"\n    end\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["run", name])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"a\xffb\n");
    let _ = std::fs::remove_file(src);
}

#[test]
fn an_imported_file_that_is_not_utf8_is_reported_in_that_file() {
    let dir = temp("badimport");
    std::fs::create_dir_all(&dir).unwrap();
    let lib = dir.join("lib.basm");
    std::fs::write(
        &lib,
        b".module lib\n.export f\nf:\n    print \"\xfe\"\n    ret\n",
    )
    .unwrap();
    let main = dir.join("main.basm");
    std::fs::write(&main, ".import lib\nmain:\n    call lib:f\n    end\n").unwrap();
    let (_, err, status) = ember(&["run", main.to_str().unwrap()]);
    assert_eq!(status, 1);
    let lib = lib.to_str().unwrap();
    assert!(
        err.starts_with(&format!(
            "{lib}:4:12: error: invalid UTF-8 in source (byte 0xfe)\n    print \"\u{fffd}\"\n           ^\n"
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_error_on_a_huge_line_echoes_a_window_of_it() {
    // A 1 MB line with an error in the middle: stderr stays small and names the true position.
    let src = temp("longline.basm");
    let line = format!(
        "    print \"{}\" @ {}",
        "a".repeat(500_000),
        "b".repeat(500_000)
    );
    std::fs::write(&src, format!("main:\n{line}\n    end\n")).unwrap();
    let (_, err, status) = ember(&["run", src.to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(err.len() < 1000, "{} bytes of stderr", err.len());
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "{}:2:500014: error: unexpected character `@`",
            src.display()
        )
    );
    assert!(
        lines[1].starts_with("...a") && lines[1].ends_with("b..."),
        "{err}"
    );
    assert_eq!(lines[2].len(), lines[1].find('@').unwrap() + 1);
    assert!(lines[2].ends_with(" ^"));
    let _ = std::fs::remove_file(src);
}

#[test]
fn a_file_full_of_errors_shows_the_first_hundred() {
    let src = temp("manyerrors.basm");
    std::fs::write(&src, format!("main:\n{}", "    @\n".repeat(200_000))).unwrap();
    let (_, err, status) = ember(&["run", src.to_str().unwrap()]);
    assert_eq!(status, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 301);
    assert_eq!(
        lines[297],
        format!("{}:101:5: error: unexpected character `@`", src.display())
    );
    assert_eq!(lines[300], "... and 199900 more errors");
    let _ = std::fs::remove_file(src);
}

#[test]
fn many_modules_and_labels_assemble_in_linear_time() {
    // Each of these took time quadratic in the file (seconds to minutes) before.
    let src = temp("manyunits.basm");
    let ebc = temp("manyunits.ebc");
    let mut text = String::from(".import m49999\nmain:\n    call m49999:f\n    end\n");
    for i in 0..50_000 {
        text.push_str(&format!(".module m{i}\nf:\n    ret\n"));
    }
    std::fs::write(&src, &text).unwrap();
    let started = std::time::Instant::now();
    let (_, err, status) = ember(&["asm", src.to_str().unwrap(), "-o", ebc.to_str().unwrap()]);
    assert_eq!(status, 1, "{err}");
    // (Not exported, so not callable: one error, found without scanning every unit.)
    assert!(
        err.contains("`m49999:f` is not exported by module `m49999`"),
        "{err}"
    );
    // Many labels, 100,000 of them the same.
    text = format!("main:\n{}    end\n", "l:\n".repeat(100_000));
    std::fs::write(&src, &text).unwrap();
    let (_, err, status) = ember(&["asm", src.to_str().unwrap(), "-o", ebc.to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(
        err.contains("duplicate label `l` (first defined on line 2)"),
        "{err}"
    );
    assert!(err.ends_with("... and 99899 more errors\n"), "{err}");
    let elapsed = started.elapsed();
    assert!(elapsed.as_secs() < 20, "took {elapsed:?}");
    let _ = std::fs::remove_file(src);
}

#[test]
fn supervisors_report_abnormal_exits_unless_quiet_reports() {
    let (out, err, status) = ember(&[
        "run",
        "examples/stdlib/supervision_tree.basm",
        "--virtual-time",
    ]);
    assert_eq!(status, 0, "{err}");
    assert!(
        err.contains("supervisor <0.1>: child :worker (<0.4>) exited with reason :boom"),
        "{err}"
    );
    assert!(
        err.contains(
            "supervisor <0.1>: child :counter (<0.2>) exited with reason :oops; restarting"
        ),
        "{err}"
    );
    // The counter is a stdlib server asked to stop with :oops: its own report names the last
    // message it handled and its state.
    assert!(
        err.contains(
            "process <0.2> exited with reason :oops\n    last_message_in: {:call, <0.7>, :crash}\n    state: 3"
        ),
        "{err}"
    );
    let (quiet_out, quiet_err, status) = ember(&[
        "run",
        "examples/stdlib/supervision_tree.basm",
        "--virtual-time",
        "--quiet-reports",
    ]);
    assert_eq!(status, 0);
    assert_eq!(quiet_out, out, "reports change nothing else");
    assert!(!quiet_err.contains("supervisor"), "{quiet_err}");
    assert!(!quiet_err.contains("exited with reason"), "{quiet_err}");
}
