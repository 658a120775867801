//! Hot code loading, rule by rule (the BEAM's): a loaded version becomes current and the
//! previous one old; calls naming the module go to the current version, and one to a label it
//! no longer exports crashes `:undef`; processes running old code finish in it; loading while an
//! old version exists fails `:not_purged`; purging kills the processes whose pc, frames or
//! function values are in the old code, and leaves the others their values. Every test runs on
//! one scheduler and on two, lowered and not.

use ember_vm::value::{Pid, Value};
use ember_vm::vm::{Capture, CodeError, Config, Mailbox, Vm};

mod common;

/// Version 1 of `counter`: `server` loops through the export table (it moves to new code),
/// `stuck` loops locally (it stays in the version it started in).
const V1: &str = "
.module counter
.export server, stuck, get, version, handler, constant, park, tick

server:
    receive
    | {:ask, r1}
    send    r1, {:v1, r0}
    add     r0, r0, 1
    jump    counter:server

stuck:
    receive
    | {:ask, r1}
    send    r1, {:v1, :stuck}
    jump    stuck

get:
    move    r0, {:v1_get, [1, 2, 3], \"a literal binary of version one\"}
    ret

version:
    move    r0, 1
    ret

; A function value of this version, inside a literal.
handler:
    move    r0, {:handler, counter:tick}
    ret

tick:
    ret

constant:
    move    r0, {:kept, [10, 20, 30], \"literal of a loaded version\"}
    ret

; Waits here, in this version's code (the caller's frame is below it).
park:
    receive
    | :go
    ret
";

/// Version 2: `server` answers `:v2` and counts in a map (more registers than version 1's
/// loop); `get` is no longer exported.
const V2: &str = "
.module counter
.export server, stuck, version, handler, constant, park, tick

server:
    receive
    | {:ask, r1}
    move    r2, #{:n => r0}
    map_get r3, r2, :n
    send    r1, {:v2, r3}
    add     r0, r3, 1
    jump    counter:server

stuck:
    receive
    | {:ask, r1}
    send    r1, {:v2, :stuck}
    jump    stuck

version:
    move    r0, 2
    ret

handler:
    move    r0, {:handler, counter:tick}
    ret

tick:
    ret

constant:
    move    r0, {:kept, [10, 20, 30], \"literal of version two\"}
    ret

park:
    receive
    | :go
    ret
";

/// The program: its own processes call into `counter`.
const MAIN: &str = "
.import counter
.export get_then_report, version_to, park_then_report, hold_fun, hold_constant

main:
    end

; r0 = reply pid: calls counter:get and sends what it got.
get_then_report:
    move    r16, r0
    call    counter:get
    send    r16, {:got, r0}
    end

; r0 = reply pid: sends counter:version's answer.
version_to:
    move    r16, r0
    call    counter:version
    send    r16, {:version, r0}
    end

; r0 = reply pid: waits in counter:park (old code, with a frame here), then reports.
park_then_report:
    move    r16, r0
    call    counter:park
    send    r16, :parked_done
    end

; Holds a function value of counter's current version (in a literal) while waiting here.
hold_fun:
    move    r16, r0
    call    counter:handler
    move    r17, r0
    receive
    | :go
    send    r16, {:held, r17}
    end

; Holds a literal of counter's current version while waiting here; then sends it.
hold_constant:
    move    r16, r0
    call    counter:constant
    move    r17, r0
    receive
    | :go
    send    r16, {:held, r17}
    end
";

/// A fresh directory for one test.
fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-hotload-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn configs() -> Vec<(usize, bool)> {
    vec![(1, true), (1, false), (2, true), (2, false)]
}

fn vm(schedulers: usize, lowering: bool) -> (Vm, Capture) {
    let err = Capture::new();
    let main = ember_asm::SourceFile {
        name: "main.basm".into(),
        text: MAIN.into(),
        dir: None,
    };
    let module = ember_asm::assemble_with(main, &[("counter".to_string(), V1.to_string())])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut b = Vm::builder()
        .config(Config {
            schedulers,
            seed: Some(1),
            ..Config::default()
        })
        .stderr(err.clone());
    if !lowering {
        b = b.without_lowering();
    }
    (b.build(module).expect("loads"), err)
}

fn version(src: &str) -> ember_vm::bytecode::Module {
    ember_asm::assemble_str("counter.basm", src).unwrap_or_else(|e| panic!("{e}"))
}

fn atom(a: &str) -> Value {
    Value::atom(a)
}

fn tuple(items: impl IntoIterator<Item = Value>) -> Value {
    Value::tuple(items)
}

/// Sends `{:ask, mb}` to `pid` and returns the answer.
fn ask(vm: &mut Vm, mb: &Mailbox, pid: Pid) -> Value {
    vm.send(pid, &tuple([atom("ask"), mb.pid().into()]))
        .unwrap();
    vm.run_until_idle();
    vm.receive(mb).unwrap().expect("an answer")
}

/// Everything in `mb` now.
fn drain(vm: &mut Vm, mb: &Mailbox) -> Vec<Value> {
    std::iter::from_fn(|| vm.receive(mb).unwrap()).collect()
}

/// The reason in a `:DOWN` message.
fn down_reason(msg: &Value) -> Value {
    match msg {
        Value::Tuple(items) if items.len() == 5 && items[0] == atom("DOWN") => items[4].clone(),
        other => panic!("not a :DOWN message: {other:?}"),
    }
}

#[test]
fn the_new_version_is_current_and_old_code_runs_on_until_it_calls_the_module() {
    for (n, lowering) in configs() {
        let (mut vm, _) = vm(n, lowering);
        let mb = vm.open_mailbox().unwrap();
        let server = vm.spawn("counter:server", &[Value::Int(0)]).unwrap();
        let stuck = vm.spawn("counter:stuck", &[]).unwrap();
        assert_eq!(
            ask(&mut vm, &mb, server),
            tuple([atom("v1"), Value::Int(0)])
        );
        assert_eq!(ask(&mut vm, &mb, stuck), tuple([atom("v1"), atom("stuck")]));

        vm.load(version(V2)).unwrap();
        assert!(vm.has_old_code("counter"));
        // The server was waiting in version 1: this answer is still version 1's; its loop's
        // `jump counter:server` then takes it to version 2, with its state.
        assert_eq!(
            ask(&mut vm, &mb, server),
            tuple([atom("v1"), Value::Int(1)])
        );
        assert_eq!(
            ask(&mut vm, &mb, server),
            tuple([atom("v2"), Value::Int(2)])
        );
        // A local loop stays in the version it runs in.
        assert_eq!(ask(&mut vm, &mb, stuck), tuple([atom("v1"), atom("stuck")]));
        // New calls and spawns that name the module reach version 2.
        vm.spawn("version_to", &[mb.pid().into()]).unwrap();
        vm.run_until_idle();
        assert_eq!(
            drain(&mut vm, &mb),
            [tuple([atom("version"), Value::Int(2)])]
        );
        let fresh = vm.spawn("counter:stuck", &[]).unwrap();
        assert_eq!(ask(&mut vm, &mb, fresh), tuple([atom("v2"), atom("stuck")]));

        // Purging version 1 kills the process still in it, and only that one.
        vm.monitor(&mb, stuck).unwrap();
        vm.monitor(&mb, server).unwrap();
        assert_eq!(vm.purge("counter"), Some(1), "{n} schedulers");
        assert!(!vm.has_old_code("counter"));
        vm.run_until_idle();
        let downs = drain(&mut vm, &mb);
        assert_eq!(downs.len(), 1, "{downs:?}");
        assert_eq!(down_reason(&downs[0]), atom("killed"));
        assert!(!vm.is_alive(stuck));
        assert_eq!(
            ask(&mut vm, &mb, server),
            tuple([atom("v2"), Value::Int(3)])
        );
        // Nothing left to purge.
        assert_eq!(vm.purge("counter"), None);
    }
}

#[test]
fn a_call_to_a_label_the_new_version_no_longer_exports_crashes_undef() {
    for (n, lowering) in configs() {
        let (mut vm, err) = vm(n, lowering);
        let mb = vm.open_mailbox().unwrap();
        vm.spawn("get_then_report", &[mb.pid().into()]).unwrap();
        vm.run_until_idle();
        let got = drain(&mut vm, &mb);
        assert_eq!(got.len(), 1);
        assert!(matches!(&got[0], Value::Tuple(t) if t[0] == atom("got")));

        vm.load(version(V2)).unwrap();
        let pid = vm.spawn("get_then_report", &[mb.pid().into()]).unwrap();
        vm.monitor(&mb, pid).unwrap();
        vm.run_until_idle();
        let downs = drain(&mut vm, &mb);
        assert_eq!(downs.len(), 1, "{downs:?}");
        assert_eq!(
            down_reason(&downs[0]),
            atom("undef"),
            "{n} schedulers, lowering {lowering}"
        );
        assert!(err.text().contains("undef"), "the crash is reported");
        // The host cannot spawn at it either.
        assert!(vm.spawn("counter:get", &[]).is_err());
    }
}

#[test]
fn loading_while_an_old_version_exists_fails_not_purged() {
    for (n, lowering) in configs() {
        let (mut vm, _) = vm(n, lowering);
        vm.load(version(V2)).unwrap();
        assert_eq!(vm.load(version(V1)), Err(CodeError::NotPurged));
        // The failed load changed nothing: version 2 is still current.
        let mb = vm.open_mailbox().unwrap();
        vm.spawn("version_to", &[mb.pid().into()]).unwrap();
        vm.run_until_idle();
        assert_eq!(
            drain(&mut vm, &mb),
            [tuple([atom("version"), Value::Int(2)])]
        );
        assert_eq!(vm.purge("counter"), Some(0));
        vm.load(version(V1)).unwrap();
        vm.spawn("version_to", &[mb.pid().into()]).unwrap();
        vm.run_until_idle();
        assert_eq!(
            drain(&mut vm, &mb),
            [tuple([atom("version"), Value::Int(1)])]
        );
    }
}

#[test]
fn purge_kills_processes_with_frames_or_function_values_in_the_old_code() {
    for (n, lowering) in configs() {
        let (mut vm, _) = vm(n, lowering);
        let mb = vm.open_mailbox().unwrap();
        // Waiting inside counter:park: its pc in version 1, a frame in main.
        let parked = vm.spawn("park_then_report", &[mb.pid().into()]).unwrap();
        // Waiting in main, a function of version 1 (from a literal) in a register.
        let holder = vm.spawn("hold_fun", &[mb.pid().into()]).unwrap();
        // The same, but it hands its function to the host before the purge.
        let giver = vm.spawn("hold_fun", &[mb.pid().into()]).unwrap();
        // Waiting in main with only a literal of version 1: one gets a function of version 1
        // in its mailbox; the other keeps nothing of version 1's code and survives.
        let fun_in_mailbox = vm.spawn("hold_constant", &[mb.pid().into()]).unwrap();
        let keeper = vm.spawn("hold_constant", &[mb.pid().into()]).unwrap();
        vm.run_until_idle();
        vm.send(giver, &atom("go")).unwrap();
        vm.run_until_idle();
        let given = drain(&mut vm, &mb);
        let fun_v1 = match &given[..] {
            [Value::Tuple(t)] if t[0] == atom("held") => t[1].clone(),
            other => panic!("{other:?}"),
        };
        for pid in [parked, holder, fun_in_mailbox, keeper] {
            vm.monitor(&mb, pid).unwrap();
        }

        vm.load(version(V2)).unwrap();
        vm.send(fun_in_mailbox, &tuple([atom("ask"), fun_v1]))
            .unwrap();
        // A process started after the load holds version 2's function: it is not touched.
        let newer = vm.spawn("hold_fun", &[mb.pid().into()]).unwrap();
        vm.run_until_idle();

        assert_eq!(
            vm.purge("counter"),
            Some(3),
            "{n} schedulers, lowering {lowering}"
        );
        vm.run_until_idle();
        let mut downs: Vec<(String, Value)> = drain(&mut vm, &mb)
            .iter()
            .map(|m| match m {
                Value::Tuple(t) => (format!("{:?}", t[3]), down_reason(m)),
                other => panic!("{other:?}"),
            })
            .collect();
        downs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want: Vec<(String, Value)> = [parked, holder, fun_in_mailbox]
            .iter()
            .map(|&p| (format!("{:?}", Value::from(p)), atom("killed")))
            .collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(downs, want);
        assert!(vm.is_alive(keeper) && vm.is_alive(newer));
        vm.send(keeper, &atom("go")).unwrap();
        vm.run_until_idle();
        let kept = tuple([
            atom("held"),
            tuple([
                atom("kept"),
                Value::list([Value::Int(10), Value::Int(20), Value::Int(30)]),
                Value::binary("literal of a loaded version"),
            ]),
        ]);
        assert_eq!(drain(&mut vm, &mb)[0], kept);
    }
}

#[test]
fn purge_copies_the_literals_of_a_loaded_version_out_of_every_heap() {
    // Version 2 (loaded, with an area of its own) hands out a literal; version 3 replaces it;
    // purging version 2 frees its area, and the holders still see the value.
    for (n, lowering) in configs() {
        let (mut vm, _) = vm(n, lowering);
        vm.load(version(V2)).unwrap();
        assert_eq!(vm.purge("counter"), Some(0));
        let mb = vm.open_mailbox().unwrap();
        let holders: Vec<Pid> = (0..3)
            .map(|_| vm.spawn("hold_constant", &[mb.pid().into()]).unwrap())
            .collect();
        vm.run_until_idle();
        // The host mailbox holds one too, in a message.
        vm.spawn("hold_constant", &[mb.pid().into()]).unwrap();
        vm.run_until_idle();
        vm.load(version(V1)).unwrap();
        assert_eq!(vm.purge("counter"), Some(0), "{n} schedulers");
        // Collections after the area is gone still find every object in its heap.
        for _ in 0..3 {
            vm.spawn("version_to", &[mb.pid().into()]).unwrap();
        }
        vm.run_until_idle();
        for &h in &holders {
            vm.send(h, &atom("go")).unwrap();
        }
        vm.run_until_idle();
        let literal = tuple([
            atom("kept"),
            Value::list([Value::Int(10), Value::Int(20), Value::Int(30)]),
            Value::binary("literal of version two"),
        ]);
        let got = drain(&mut vm, &mb);
        let held: Vec<&Value> = got
            .iter()
            .filter(|m| matches!(m, Value::Tuple(t) if t[0] == atom("held")))
            .collect();
        assert_eq!(held.len(), 3, "{got:?}");
        for m in held {
            assert_eq!(*m, tuple([atom("held"), literal.clone()]));
        }
    }
}

#[test]
fn a_module_that_names_what_the_program_lacks_is_refused() {
    let (mut vm, _) = vm(1, true);
    let bad = ".module counter\n.import lists\n.export version\nversion:\n    call lists:reverse, [1]\n    ret\n";
    match vm.load(version(bad)) {
        Err(CodeError::Invalid(e)) => assert!(e.contains("lists:reverse"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(!vm.has_old_code("counter"));
}

#[test]
fn basm_programs_load_and_purge_through_the_code_module() {
    let dir = temp("code");
    let main = dir.join("main.basm");
    std::fs::write(
        &main,
        "
.import counter
.import code
main:
    call    counter:version
    print   r0
    call    code:load, \"v2.basm\"
    print   r0
    call    counter:version
    print   r0
    call    code:load, :counter
    print   r0
    call    code:load, \"missing.basm\"
    print   r0
    call    code:purge, :counter
    print   r0
    call    code:reload, :counter
    print   r0
    call    counter:version
    print   r0
",
    )
    .unwrap();
    std::fs::write(dir.join("counter.basm"), V1).unwrap();
    std::fs::write(dir.join("v2.basm"), V2).unwrap();
    for sched in ["1", "2"] {
        let (out, err, status) =
            common::ember(&["run", main.to_str().unwrap(), "--schedulers", sched]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(status, 0, "{err}");
        assert_eq!(
            lines[..4],
            ["1", ":ok", "2", "{:error, :not_purged}"],
            "{out}"
        );
        assert!(
            lines[4].starts_with("{:error, {:badfile, \"") && lines[4].contains("missing.basm"),
            "{out}"
        );
        assert_eq!(lines[5..], [":false", ":ok", "1"], "{out}");
    }
}

#[test]
fn run_watch_loads_an_edited_file_into_the_running_vm() {
    use std::io::{BufRead, BufReader};
    let dir = temp("watch");
    let path = dir.join("ticker.basm");
    let source = |v: &str| {
        format!(
            ".module ticker\n.export loop\nmain:\n    jump ticker:loop\nloop:\n    print :{v}\n    receive\n    | :never\n    | after 20\n    jump ticker:loop\n"
        )
    };
    // Written whole, then renamed over the program, as editors save.
    let save = |text: String| {
        let tmp = dir.join("ticker.basm.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    save(source("one"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["run", "--watch", path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |want: &str| -> bool {
        // A guard against a hang, not a timing assumption: the line comes within milliseconds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == want => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    };
    // The last line that showed.
    let seen = if !wait_for(":one") {
        "none"
    } else {
        save(source("two"));
        if !wait_for(":two") {
            ":one"
        } else {
            // A second edit: the first version is purged, then the third loaded.
            save(source("three"));
            if wait_for(":three") {
                ":three"
            } else {
                ":two"
            }
        }
    };
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(seen, ":three", "stderr: {err}");
    assert_eq!(
        err.matches("ember: loaded a new version of ticker").count(),
        2,
        "{err}"
    );
}

#[test]
fn a_module_the_program_never_had_can_be_loaded() {
    for (n, lowering) in configs() {
        let (mut vm, _) = vm(n, lowering);
        assert!(vm.spawn("greeter:hello", &[]).is_err());
        let greeter = ".module greeter\n.import counter\n.export hello\nhello:\n    move r16, r0\n    call counter:version\n    send r16, {:hello, r0}\n";
        vm.load(
            ember_asm::assemble_with(
                ember_asm::SourceFile {
                    name: "greeter.basm".into(),
                    text: greeter.into(),
                    dir: None,
                },
                &[("counter".to_string(), V1.to_string())],
            )
            .unwrap(),
        )
        .unwrap();
        assert!(!vm.has_old_code("greeter"));
        let mb = vm.open_mailbox().unwrap();
        vm.spawn("greeter:hello", &[mb.pid().into()]).unwrap();
        vm.run_until_idle();
        assert_eq!(drain(&mut vm, &mb), [tuple([atom("hello"), Value::Int(1)])]);
    }
}
