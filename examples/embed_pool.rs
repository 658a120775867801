//! Embedding Ember: a Rust host runs a pool of .basm servers, feeds them requests and collects
//! the replies. `cargo run --release --example embed_pool`
//!
//! The host speaks to the servers through a host mailbox, as any process would; they call back
//! into Rust through a native function.

use ember_vm::native::Natives;
use ember_vm::value::Value;
use ember_vm::vm::{Config, Pause, Vm};
use std::time::Instant;

/// A word-count server: each request `{:count, from, tag, text}` is answered with
/// `{:counted, tag, words, server}` to `from`; the server keeps how many it answered.
const POOL: &str = r#"
.module pool
.import host
.export start, counter

; r0 = how many servers; r1 = the host's mailbox. Starts the servers, tells the host their pids.
start:
    move r2, []
start_next:
    jeq r0, 0, started
    spawn r3, counter, 0
    cons r2, r3, r2
    sub r0, r0, 1
    jump start_next
started:
    send r1, {:pool, r2}
    end

; r0 = requests answered so far.
counter:
    receive
    | {:count, r1, r2, r3}
    | :stop -> stopped
    split r4, r3, " "
    len r4, r4
    self r5
    send r1, {:counted, r2, r4, r5}
    add r0, r0, 1
    jump counter
stopped:
    call host:log, r0
"#;

fn main() {
    let started = Instant::now();
    let mut natives = Natives::new();
    natives.register("host", "log", 1, 1, move |call| {
        println!(
            "[host] {} stops after {} requests ({:?} in)",
            call.caller(),
            call.arg(0).as_int().unwrap_or(0),
            started.elapsed()
        );
        Ok(Value::atom("ok"))
    });
    let main = ember_asm::SourceFile {
        name: "pool.basm".into(),
        text: POOL.into(),
        dir: None,
    };
    let module = match ember_asm::assemble_with(main, &natives.sources()) {
        Ok(m) => m,
        Err(e) => {
            eprint!("{e}");
            std::process::exit(1);
        }
    };
    let mut vm = Vm::builder()
        .config(Config {
            schedulers: 2,
            ..Config::default()
        })
        .natives(natives)
        .build(module)
        .unwrap_or_else(|e| panic!("{e}"));

    let inbox = vm.open_mailbox().expect("a mailbox");
    vm.spawn("pool:start", &[4.into(), inbox.pid().into()])
        .expect("spawns");
    vm.run_until_idle();
    let Some(Value::Tuple(pool)) = vm.receive(&inbox).expect("open") else {
        panic!("the pool did not start")
    };
    let servers: Vec<Value> = pool[1].as_list().expect("pids").to_vec();
    println!(
        "[host] pool of {} servers: {:?}",
        servers.len(),
        servers
            .iter()
            .map(|s| s.as_pid().unwrap().to_string())
            .collect::<Vec<_>>()
    );

    let texts = [
        "the quick brown fox",
        "jumps over the lazy dog",
        "hello",
        "an actor runtime in a Rust program",
    ];
    let requests = 1000;
    for i in 0..requests {
        let server = servers[i % servers.len()].clone();
        let pid = server.as_pid().expect("a pid");
        let text = texts[i % texts.len()];
        let req = Value::tuple([
            Value::atom("count"),
            inbox.pid().into(),
            Value::from(i as i64),
            Value::binary(text),
        ]);
        vm.send(pid, &req).expect("sends");
        // The host's event loop: a bounded slice of VM work between its own jobs.
        if i % 100 == 99 {
            while vm.run_for(5_000) == Pause::Budget {}
        }
    }
    vm.run_until_idle();
    let mut words = 0;
    let mut replies = 0;
    while let Some(reply) = vm.receive(&inbox).expect("open") {
        let t = reply.as_tuple().expect("a reply");
        assert_eq!(t[0].as_atom(), Some("counted"));
        words += t[2].as_int().expect("a count");
        replies += 1;
    }
    println!("[host] {replies} replies, {words} words in all");
    assert_eq!(replies, requests);
    for s in &servers {
        vm.send(s.as_pid().unwrap(), &Value::atom("stop"))
            .expect("sends");
    }
    vm.run_until_idle();
    vm.close_mailbox(inbox);
    println!(
        "[host] done: {} reductions, {} messages, {} processes left",
        vm.stats.reductions,
        vm.stats.messages_sent,
        vm.live_processes()
    );
}
