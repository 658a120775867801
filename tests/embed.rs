//! The embedding API: a host spawns processes with arguments, sends them values, receives in
//! host mailboxes, drives the VM a bounded amount at a time, and registers native functions.
//! Every test runs on one scheduler and on two.

use ember_vm::native::Natives;
use ember_vm::value::{Pid, Value};
use ember_vm::vm::{Capture, Config, Dest, HostError, LoadError, Pause, RunEnd, Vm};

fn config(schedulers: usize) -> Config {
    Config {
        schedulers,
        seed: Some(1),
        ..Config::default()
    }
}

/// `src` (as `host_test.basm`) assembled with the stubs of `natives`.
fn assemble(src: &str, natives: &Natives) -> ember_vm::bytecode::Module {
    ember_asm::assemble_with(
        ember_asm::SourceFile {
            name: "host_test.basm".into(),
            text: src.into(),
            dir: None,
        },
        &natives.sources(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn vm_with(src: &str, schedulers: usize, natives: Natives) -> (Vm, Capture, Capture) {
    let (out, err) = (Capture::new(), Capture::new());
    let module = assemble(src, &natives);
    let vm = Vm::builder()
        .config(config(schedulers))
        .natives(natives)
        .stdout(out.clone())
        .stderr(err.clone())
        .build(module)
        .expect("loads");
    (vm, out, err)
}

fn vm(src: &str, schedulers: usize) -> (Vm, Capture, Capture) {
    vm_with(src, schedulers, Natives::new())
}

fn both(test: impl Fn(usize)) {
    for n in [1, 2] {
        test(n);
    }
}

fn tuple(items: impl IntoIterator<Item = Value>) -> Value {
    Value::tuple(items)
}

fn atom(a: &str) -> Value {
    Value::atom(a)
}

/// Takes every message now in `mb`.
fn drain(vm: &mut Vm, mb: &ember_vm::vm::Mailbox) -> Vec<Value> {
    let mut all = Vec::new();
    while let Some(v) = vm.receive(mb).expect("open") {
        all.push(v);
    }
    all
}

const POOL: &str = r#"
.export worker
; A worker: {:square, from, n} -> from ! {:result, self, n*n}; :stop ends it.
worker:
    receive
    | {:square, r1, r2} -> square
    | :stop -> stop
square:
    mul r2, r2, r2
    self r3
    send r1, {:result, r3, r2}
    jump worker
stop:
    end
"#;

#[test]
fn a_host_feeds_a_pool_and_collects_replies() {
    both(|n| {
        let (mut vm, _, _) = vm(POOL, n);
        let mb = vm.open_mailbox().unwrap();
        let workers: Vec<Pid> = (0..4)
            .map(|_| vm.spawn("host_test:worker", &[]).unwrap())
            .collect();
        for i in 0..100i64 {
            let w = workers[i as usize % 4];
            vm.send(w, &tuple([atom("square"), mb.pid().into(), i.into()]))
                .unwrap();
        }
        assert!(matches!(
            vm.run_until_idle(),
            Pause::Idle { next_timeout: None }
        ));
        let mut results: Vec<i64> = drain(&mut vm, &mb)
            .iter()
            .map(|m| {
                let t = m.as_tuple().expect("a tuple");
                assert_eq!(t[0], atom("result"));
                assert!(workers.contains(&t[1].as_pid().unwrap()));
                t[2].as_int().unwrap()
            })
            .collect();
        results.sort_unstable();
        assert_eq!(
            results,
            (0..100).map(|i| i * i).collect::<Vec<_>>(),
            "{n} schedulers"
        );
        for w in &workers {
            vm.send(*w, &atom("stop")).unwrap();
        }
        vm.run_until_idle();
        assert!(workers.iter().all(|w| !vm.is_alive(*w)));
        assert_eq!(vm.live_processes(), 1, "only the mailbox is left");
    });
}

#[test]
fn values_cross_both_ways_unchanged() {
    both(|n| {
        let (mut vm, out, _) = vm(
            "echo:\n    receive\n    | {r1, r2}\n    print r2\n    send r1, r2\n    jump echo\n",
            n,
        );
        let mb = vm.open_mailbox().unwrap();
        let pid = vm.spawn("echo", &[]).unwrap();
        let values = [
            Value::from(-7),
            Value::from(i64::MAX),
            Value::from(2.5),
            atom("ok"),
            Value::binary("héllo"),
            Value::list([1.into(), Value::list([]), tuple([atom("ok")])]),
            Value::ImproperList(vec![1.into()], Box::new(2.into())),
            Value::map([
                (atom("ok"), 1.into()),
                (Value::from(1), Value::binary("one")),
            ]),
            Value::Pid(mb.pid()),
        ];
        for v in &values {
            vm.send(pid, &tuple([mb.pid().into(), v.clone()])).unwrap();
        }
        vm.run_until_idle();
        let back = drain(&mut vm, &mb);
        assert_eq!(back.len(), values.len());
        for (v, b) in values.iter().zip(&back) {
            match v {
                // Maps come back in the VM's key order.
                Value::Map(_) => assert_eq!(b.get(&atom("ok")), Some(&Value::from(1)), "{b:?}"),
                _ => assert_eq!(v, b),
            }
        }
        let printed = out.text();
        assert!(
            printed.starts_with("-7\n9223372036854775807\n2.5\n:ok\n"),
            "{printed}"
        );
        assert!(printed.contains("[1, [], {:ok}]\n[1 | 2]\n"), "{printed}");
        assert_eq!(
            vm.format_value(&values[7]).unwrap(),
            "#{1 => \"one\", :ok => 1}"
        );
    });
}

#[test]
fn bad_values_and_destinations_are_errors() {
    let (mut vm, _, _) = vm("main:\n    receive\n    | _\n", 1);
    let pid = vm.spawn("main", &[]).unwrap();
    assert_eq!(
        vm.send(pid, &atom("never_named")),
        Err(HostError::Value(ember_vm::value::ValueError::UnknownAtom(
            "never_named".into()
        )))
    );
    assert_eq!(
        vm.send(pid, &Value::Float(f64::NAN)),
        Err(HostError::Value(ember_vm::value::ValueError::NotFinite))
    );
    assert_eq!(
        vm.send("ok", &atom("ok")),
        Err(HostError::NoName("ok".into()))
    );
    assert_eq!(
        vm.spawn("nope", &[]),
        Err(HostError::NoEntry("nope".into()))
    );
    // A label of an imported module must be exported to be spawned.
    assert!(matches!(
        vm.spawn("lists:nope", &[]),
        Err(HostError::NoEntry(_))
    ));
    let mut deep = Value::from(0);
    for _ in 0..2000 {
        deep = tuple([deep]);
    }
    assert_eq!(
        vm.send(pid, &deep),
        Err(HostError::Value(ember_vm::value::ValueError::TooDeep))
    );
    // A dead pid: dropped, as `send` does.
    assert_eq!(vm.send(Pid::from_number(999), &Value::from(1)), Ok(()));
}

#[test]
fn a_mailbox_links_monitors_and_closes_like_a_process() {
    both(|n| {
        let src = r#"
crasher:
    receive
    | :go
    crash :boom
trapper:
    trap_exit :true
    link r0
    send r0, :linked
    receive
    | {:EXIT, r1, r2}
    send r0, {:trapper_saw, r2}
    end
watcher:
    monitor r1, r0
    send r0, :watching
    receive
    | {:DOWN, _, :process, r2, r3}
    send r0, {:watcher_saw, r3}
"#;
        let (mut vm, _, _) = vm(src, n);
        let mb = vm.open_mailbox().unwrap();
        let c = vm.spawn("crasher", &[]).unwrap();
        vm.link(&mb, c).unwrap();
        let r = vm.monitor(&mb, c).unwrap();
        vm.send(c, &atom("go")).unwrap();
        vm.run_until_idle();
        let got = drain(&mut vm, &mb);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], tuple([atom("EXIT"), c.into(), atom("boom")]));
        assert_eq!(
            got[1],
            tuple([
                atom("DOWN"),
                Value::Ref(r),
                atom("process"),
                c.into(),
                atom("boom")
            ])
        );
        // Closing the mailbox is its exit with reason :normal.
        let mb2 = vm.open_mailbox().unwrap();
        let t = vm.spawn("trapper", &[mb2.pid().into()]).unwrap();
        let w = vm.spawn("watcher", &[mb2.pid().into()]).unwrap();
        vm.run_until_idle();
        let mut hello = drain(&mut vm, &mb2);
        hello.sort_by_key(|v| format!("{v:?}"));
        assert_eq!(hello, vec![atom("linked"), atom("watching")]);
        vm.close_mailbox(mb2);
        vm.link(&mb, t).unwrap();
        vm.link(&mb, w).unwrap();
        vm.run_until_idle();
        let mut seen = drain(&mut vm, &mb);
        seen.sort_by_key(|v| format!("{v:?}"));
        assert_eq!(
            seen,
            vec![
                tuple([atom("EXIT"), t.into(), atom("normal")]),
                tuple([atom("EXIT"), w.into(), atom("normal")]),
            ],
            "linked while alive, they ended normally: a trapping mailbox is told"
        );
        assert!(!vm.is_alive(t) && !vm.is_alive(w));
        // A link to a process already gone: :noproc at once.
        vm.link(&mb, t).unwrap();
        assert_eq!(
            vm.receive(&mb),
            Ok(Some(tuple([atom("EXIT"), t.into(), atom("noproc")])))
        );
    });
}

#[test]
fn trapper_sees_the_mailbox_close_normally() {
    both(|n| {
        let src = r#"
trapper:
    trap_exit :true
    link r0
    send r1, :ready
    receive
    | {:EXIT, r2, r3}
    send r1, {:saw, r2, r3}
    end
watcher:
    monitor r2, r0
    send r1, :ready
    receive
    | {:DOWN, _, :process, r3, r4}
    send r1, {:down, r3, r4}
"#;
        let (mut vm, _, _) = vm(src, n);
        let observer = vm.open_mailbox().unwrap();
        let mb = vm.open_mailbox().unwrap();
        vm.spawn("trapper", &[mb.pid().into(), observer.pid().into()])
            .unwrap();
        vm.spawn("watcher", &[mb.pid().into(), observer.pid().into()])
            .unwrap();
        vm.run_until_idle();
        assert_eq!(
            drain(&mut vm, &observer),
            vec![atom("ready"), atom("ready")]
        );
        let pid = mb.pid();
        vm.close_mailbox(mb);
        vm.run_until_idle();
        let mut got = drain(&mut vm, &observer);
        got.sort_by_key(|v| format!("{v:?}"));
        assert_eq!(
            got,
            vec![
                tuple([atom("down"), pid.into(), atom("normal")]),
                tuple([atom("saw"), pid.into(), atom("normal")]),
            ]
        );
    });
}

#[test]
fn a_mailbox_can_be_registered_and_killed() {
    both(|n| {
        let src = r#"
client:
    send :host, {:hi, r0}
    end
kill:
    exit r0, :kill
"#;
        let (mut vm, _, _) = vm(src, n);
        let mb = vm.open_mailbox().unwrap();
        vm.register("host", mb.pid()).unwrap();
        assert_eq!(vm.whereis("host"), Some(mb.pid()));
        assert_eq!(vm.register("host", mb.pid()), Err(HostError::BadRegister));
        vm.spawn("client", &[7.into()]).unwrap();
        vm.run_until_idle();
        assert_eq!(vm.receive(&mb), Ok(Some(tuple([atom("hi"), 7.into()]))));
        vm.send(Dest::from("host"), &atom("hi")).unwrap();
        assert_eq!(vm.pending(&mb), 1);
        vm.spawn("kill", &[mb.pid().into()]).unwrap();
        vm.run_until_idle();
        assert_eq!(vm.receive(&mb), Err(HostError::Closed));
        assert_eq!(vm.whereis("host"), None);
    });
}

#[test]
fn run_for_bounds_the_work_and_resumes() {
    both(|n| {
        let src =
            "spin:\n    add r0, r0, 1\n    jump spin\ncount:\n    work 100000\n    print :done\n";
        let (mut vm, out, _) = vm(src, n);
        vm.spawn("count", &[]).unwrap();
        let mut rounds = 0;
        loop {
            let before = vm.stats.reductions;
            match vm.run_for(10_000) {
                Pause::Budget => {
                    let spent = vm.stats.reductions - before;
                    assert!(
                        spent >= 10_000 && spent <= 10_000 * n as u64 + 8000,
                        "{spent}"
                    );
                }
                Pause::Idle { next_timeout: None } => break,
                other => panic!("{other:?}"),
            }
            rounds += 1;
            assert!(rounds < 100);
        }
        assert!(rounds >= 5, "{rounds}");
        assert_eq!(out.text(), ":done\n");
        // An endless process: every bounded run returns.
        vm.spawn("spin", &[0.into()]).unwrap();
        for _ in 0..3 {
            assert_eq!(vm.run_for(5000), Pause::Budget);
        }
    });
}

#[test]
fn a_pending_timeout_is_reported_not_waited_for() {
    both(|n| {
        let src = "wait:\n    receive\n    | :go\n    | after 50 -> late\n    end\nlate:\n    send r0, :late\n";
        let (mut vm, _, _) = vm(src, n);
        let mb = vm.open_mailbox().unwrap();
        vm.spawn("wait", &[mb.pid().into()]).unwrap();
        let Pause::Idle {
            next_timeout: Some(at),
        } = vm.run_until_idle()
        else {
            panic!("a timer is pending")
        };
        assert!(at >= 50);
        assert_eq!(vm.pending(&mb), 0);
        // The host waits until then (its own loop would), and runs again.
        while vm.now_ms() < at {
            std::thread::yield_now();
        }
        while vm.pending(&mb) == 0 {
            vm.run_until_idle();
        }
        assert_eq!(vm.receive(&mb), Ok(Some(atom("late"))));
    });
}

#[test]
fn run_to_the_end_after_host_work() {
    let (mut vm, out, _) = vm("main:\n    receive\n    | r1\n    print r1\n", 1);
    vm.spawn("main", &[]).unwrap();
    vm.run_until_idle();
    vm.send(Pid::from_number(0), &Value::binary("bye")).unwrap();
    assert_eq!(
        vm.run(),
        RunEnd::MainExited {
            normal: true,
            reason: ":normal".into()
        }
    );
    assert_eq!(out.text(), "bye\n");
}

fn natives() -> Natives {
    let mut n = Natives::new();
    n.register("host", "add", 2, 1, |c| {
        match (c.arg(0).as_int(), c.arg(1).as_int()) {
            (Some(a), Some(b)) => Ok(Value::from(a + b)),
            _ => Err(atom("badarg")),
        }
    })
    .register("host", "costly", 0, 500, |_| Ok(atom("ok")))
    .register("host", "notify", 1, 1, |c| {
        let who = c.caller();
        c.send(c.arg(0).clone(), tuple([atom("from_native"), who.into()]));
        c.send(Value::atom("ok"), atom("ok")); // an unregistered name: :badarg after the first
        Ok(atom("ok"))
    })
    .register("host", "big", 1, 1, |c| {
        let n = c.arg(0).as_int().unwrap_or(0);
        Ok(Value::list((0..n).map(Value::from)))
    })
    .register("host", "panics", 0, 1, |_| panic!("host bug"))
    .register("host", "bad_atom", 0, 1, |_| Ok(atom("not_in_program")))
    .atoms(["from_native"]);
    n
}

const NATIVE_CALLER: &str = r#"
.import host
add:
    call host:add, 40, 2
    print r0
    move r1, host:add
    call_fun r1, 1, 2
    print r0
    end
add_bad:
    call host:add, :x, 2
    end
costly:
    call host:costly
    print r0
    end
notify:
    call host:notify, r0
    end
big:
    call host:big, r0
    len r1, r0
    print r1
    end
panics:
    call host:panics
    end
bad_atom:
    call host:bad_atom
"#;

#[test]
fn natives_are_called_as_exported_labels() {
    both(|n| {
        let (mut vm, out, err) = vm_with(NATIVE_CALLER, n, natives());
        vm.spawn("add", &[]).unwrap();
        vm.run_until_idle();
        assert_eq!(out.text(), "42\n3\n");
        assert_eq!(err.text(), "");
        // A native's crash reason crashes the caller.
        let p = vm.spawn("add_bad", &[]).unwrap();
        vm.run_until_idle();
        assert!(!vm.is_alive(p));
        let e = err.text();
        assert!(
            e.contains("error in process") && e.contains(":badarg"),
            "{e}"
        );
        // A panic crashes the caller, not the VM.
        vm.spawn("panics", &[]).unwrap();
        vm.run_until_idle();
        let e = err.text();
        assert!(
            e.contains("{:native_panic, \"host:panics: host bug\"}"),
            "{e}"
        );
        // A result with an atom the program lacks: :badarg.
        vm.spawn("bad_atom", &[]).unwrap();
        vm.run_until_idle();
        assert!(err.text().contains(":badarg"));
    });
}

#[test]
fn natives_cost_their_reductions_and_send() {
    both(|n| {
        let (mut vm, out, err) = vm_with(NATIVE_CALLER, n, natives());
        let before = vm.stats.reductions;
        let p = vm.spawn("costly", &[]).unwrap();
        vm.run_until_idle();
        assert_eq!(out.text(), ":ok\n");
        // call, native (500), ret, print, end
        assert_eq!(vm.stats.reductions - before, 504);
        assert!(!vm.is_alive(p));
        let mb = vm.open_mailbox().unwrap();
        let caller = vm.spawn("notify", &[mb.pid().into()]).unwrap();
        vm.run_until_idle();
        assert_eq!(
            vm.receive(&mb),
            Ok(Some(tuple([atom("from_native"), caller.into()])))
        );
        assert!(
            err.text().contains(":badarg"),
            "the second send names no process"
        );
    });
}

#[test]
fn a_native_result_counts_against_the_heap_limit() {
    both(|n| {
        let (out, err) = (Capture::new(), Capture::new());
        let natives = natives();
        let module = assemble(NATIVE_CALLER, &natives);
        let mut vm = Vm::builder()
            .config(Config {
                schedulers: n,
                max_heap_bytes: 1 << 20,
                ..Config::default()
            })
            .natives(natives)
            .stdout(out.clone())
            .stderr(err.clone())
            .build(module)
            .unwrap();
        vm.spawn("big", &[1000.into()]).unwrap();
        vm.run_until_idle();
        assert_eq!(out.text(), "1000\n");
        vm.spawn("big", &[1_000_000.into()]).unwrap();
        vm.run_until_idle();
        assert_eq!(out.text(), "");
        assert!(err.text().contains(":heap_limit"));
    });
}

#[test]
fn unregistered_and_mismatched_natives() {
    // Stubs for a native the VM was not given: the call crashes :undef.
    let mut declared = Natives::new();
    declared.register("host", "add", 2, 1, |_| Ok(Value::from(0)));
    let src = ".import host\nmain:\n    call host:add, 1, 2\n";
    let module = || assemble(src, &declared);
    let err = Capture::new();
    let mut vm = Vm::builder().stderr(err.clone()).build(module()).unwrap();
    vm.spawn("main", &[]).unwrap();
    vm.run_until_idle();
    assert!(err.text().contains(":undef"));
    let mut other = Natives::new();
    other.register("host", "add", 3, 1, |_| Ok(Value::from(0)));
    match Vm::builder().natives(other).build(module()) {
        Err(LoadError::Native(m)) => assert!(m.contains("host:add"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("an arity mismatch loads"),
    }
}

#[test]
fn ebc_bytes_load_with_their_stubs() {
    let natives = natives();
    let module = assemble(NATIVE_CALLER, &natives);
    let out = Capture::new();
    let mut vm = Vm::builder()
        .natives(natives)
        .stdout(out.clone())
        .build_ebc(&module.encode())
        .unwrap();
    vm.spawn("add", &[]).unwrap();
    vm.run_until_idle();
    assert_eq!(out.text(), "42\n3\n");
    assert!(matches!(
        Vm::builder().build_ebc(b"EMBC junk"),
        Err(LoadError::Decode(_))
    ));
}

#[test]
fn live_processes_count_mailboxes_and_processes() {
    both(|n| {
        let (mut vm, _, _) = vm(
            "quick:\n    end\nspawner:\n    spawn r1, quick\n    spawn r1, quick\n",
            n,
        );
        let mb = vm.open_mailbox().unwrap();
        assert_eq!(vm.live_processes(), 1);
        vm.spawn("spawner", &[]).unwrap();
        assert_eq!(vm.live_processes(), 2);
        vm.run_until_idle();
        assert_eq!(vm.live_processes(), 1, "{n} schedulers");
        vm.close_mailbox(mb);
        assert_eq!(vm.live_processes(), 0, "{n} schedulers");
    });
}

/// A native hands its long work to a thread, which sends the result back through a `Remote`;
/// `run` waits for it (the thread's `Remote` is alive) and then ends as usual.
#[test]
fn a_native_hands_long_work_to_a_thread() {
    both(|n| {
        let mut natives = Natives::new();
        natives
            .register("host", "slow_square", 1, 1, |call| {
                let (x, caller, remote) = (
                    call.arg(0).as_int().unwrap_or(0),
                    call.caller(),
                    call.remote(),
                );
                std::thread::spawn(move || {
                    // Long work off the schedulers (the VM keeps running meanwhile).
                    let r = x * x;
                    remote.send(caller, Value::tuple([Value::atom("squared"), r.into()]));
                });
                Ok(Value::atom("pending"))
            })
            .atoms(["squared", "pending"]);
        let src = ".import host\nmain:\n    call host:slow_square, 12\n    print r0\n    receive\n    | {:squared, r1}\n    print r1\n";
        let (mut vm, out, _) = vm_with(src, n, natives);
        vm.spawn("main", &[]).unwrap();
        assert_eq!(
            vm.run(),
            RunEnd::MainExited {
                normal: true,
                reason: ":normal".into()
            },
            "{n} schedulers"
        );
        assert_eq!(out.text(), ":pending\n144\n");
    });
}

#[test]
fn remotes_send_from_other_threads_between_and_during_runs() {
    both(|n| {
        let src = "sum:\n    receive\n    | {:add, r1}\n    | :total -> total\n    add r0, r0, r1\n    jump sum\ntotal:\n    print r0\n";
        let (mut vm, out, _) = vm(src, n);
        let pid = vm.spawn("sum", &[0.into()]).unwrap();
        vm.register("summer", pid).unwrap_err(); // `summer` is not an atom of the program
        let remote = vm.remote();
        let senders: Vec<_> = (0..4)
            .map(|t| {
                let remote = remote.clone();
                std::thread::spawn(move || {
                    for i in 0..250i64 {
                        remote.send(
                            pid,
                            Value::tuple([Value::atom("add"), (t * 1000 + i).into()]),
                        );
                    }
                })
            })
            .collect();
        drop(remote);
        for s in senders {
            s.join().unwrap();
        }
        vm.run_until_idle();
        vm.remote().send(pid, Value::atom("total"));
        vm.run();
        let want: i64 = (0..4)
            .map(|t| (0..250).map(|i| t * 1000 + i).sum::<i64>())
            .sum();
        assert_eq!(out.text(), format!("{want}\n"));
    });
}

/// A process waiting with a timeout takes a message another thread sends before it fires.
#[test]
fn a_remote_message_beats_a_pending_timeout() {
    both(|n| {
        let src = "main:\n    receive\n    | :ping -> got\n    | after 5000 -> late\ngot:\n    print :got\n    end\nlate:\n    print :late\n";
        let (mut vm, out, _) = vm(src, n);
        let pid = vm.spawn("main", &[]).unwrap();
        let remote = vm.remote();
        let sender = std::thread::spawn(move || {
            remote.send(pid, Value::atom("ping"));
        });
        vm.run();
        sender.join().unwrap();
        assert_eq!(out.text(), ":got\n");
        assert!(vm.now_ms() < 5000);
    });
}

/// A mailbox of one VM names a pid of another that may be an ordinary process: the host calls
/// refuse it rather than take that process's messages or end it.
#[test]
fn a_mailbox_of_another_vm_is_refused() {
    let (mut a, _, _) = vm("main:\n    receive\n    | :never\n", 1);
    let (mut b, _, _) = vm("main:\n    receive\n    | :never\n", 1);
    let mb = a.open_mailbox().unwrap(); // <0.0> in a
    let p = b.spawn("main", &[]).unwrap(); // <0.0> in b: an ordinary process
    assert_eq!(mb.pid(), p);
    b.send(p, &Value::from(1)).unwrap();
    b.run_until_idle();
    assert_eq!(b.receive(&mb), Err(HostError::Closed));
    assert_eq!(b.pending(&mb), 0);
    assert_eq!(b.link(&mb, p), Err(HostError::Closed));
    b.close_mailbox(mb);
    assert!(b.is_alive(p), "the ordinary process is not ended");
}
