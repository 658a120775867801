//! N schedulers in-process (spec §9): the rules Erlang guarantees hold whatever the number of
//! schedulers. Each program runs with 4 schedulers on the library's `Vm` (and again with 1, the
//! reference), so the whole runtime, its queues and its signals run in this test's threads.

mod common;
use common::run_src;

/// Standard output, exit status and standard error.
fn run(src: &str, schedulers: usize) -> (String, i32, String) {
    let config = ember_vm::vm::Config {
        schedulers,
        seed: Some(1),
        ..Default::default()
    };
    let r = run_src(src, config);
    (r.stdout, r.status, r.stderr)
}

/// The same output and status with 1 and with 4 schedulers, several times over.
fn same_everywhere(src: &str, want: &str) {
    for _ in 0..5 {
        for n in [1, 4] {
            let (out, status, err) = run(src, n);
            assert_eq!(
                (out.as_str(), status),
                (want, 0),
                "with {n} schedulers; stderr: {err}"
            );
        }
    }
}

#[test]
fn per_sender_order_holds_for_many_senders() {
    // 8 senders, 2,000 numbered messages each, to one receiver that checks each sender's
    // numbers come in order.
    let src = "
main:
    self    r0
    spawn   r1, receiver, r0
    move    r2, 0
spawn_senders:
    jge     r2, 8, wait
    spawn   r3, sender, r1, r2
    add     r2, r2, 1
    jump    spawn_senders
wait:
    receive
      | {:ok, r4} -> done
done:
    print   r4
    end
sender:                             ; r0 = receiver, r1 = my id
    move    r2, 0
s_loop:
    jge     r2, 2000, s_done
    send    r0, {r1, r2}
    add     r2, r2, 1
    jump    s_loop
s_done:
    end
receiver:                           ; r0 = main; r10.. the next number expected per sender
    move    r1, {0, 0, 0, 0, 0, 0, 0, 0}
    move    r2, 0
r_loop:
    jge     r2, 16000, r_done
    receive
      | {r3, r4} -> got
got:
    elem    r5, r1, r3
    jne     r4, r5, bad
    add     r5, r5, 1
    setelem r1, r1, r3, r5
    add     r2, r2, 1
    jump    r_loop
r_done:
    send    r0, {:ok, r2}
    end
bad:
    send    r0, {:ok, {:out_of_order, r3, r4, r5}}
    end
";
    same_everywhere(src, "16000\n");
}

#[test]
fn exits_propagate_through_links_across_schedulers() {
    // A chain of 500 linked processes; the last crashes; the first traps the exit.
    let src = "
main:
    trap_exit :true
    spawn_link r1, link, 500
    receive
      | {:EXIT, ^r1, r2} -> got
got:
    print   r2
    end
link:                               ; r0 = links still to make
    jgt     r0, 0, more
    work    100
    crash   :chain_end
more:
    sub     r1, r0, 1
    spawn_link r2, link, r1
    receive
      | :never
";
    same_everywhere(src, ":chain_end\n");
}

#[test]
fn monitors_demonitors_and_names_across_schedulers() {
    // 200 workers register, are monitored by name, and exit; half of the monitors are removed
    // first and must send nothing.
    let src = "
main:
    self    r10
    move    r1, 0
    move    r9, 0                   ; :DOWN messages expected
loop:
    jge     r1, 200, collect
    spawn   r2, worker, r10
    receive
      | {:registered, ^r2, r3} -> registered
registered:
    monitor r4, r3
    rem     r5, r1, 2
    jeq     r5, 0, keep
    demonitor r4
    send    r3, :go
    receive
      | :unregistered
    add     r1, r1, 1
    jump    loop
keep:
    send    r3, :go
    receive
      | :unregistered
    add     r9, r9, 1
    add     r1, r1, 1
    jump    loop
collect:
    move    r1, 0
c_loop:
    jge     r1, r9, quiet
    receive
      | {:DOWN, _, :process, r6, :normal} -> down
down:
    add     r1, r1, 1
    jump    c_loop
quiet:
    receive
      | {:DOWN, _, _, _, _} -> extra
      | after 50 -> ok
ok:
    print   {:downs, r1}
    end
extra:
    print   :unexpected_down
    end
worker:                             ; r0 = main
    self    r1
    move    r4, :w
    register r4, r1
    send    r0, {:registered, r1, r4}
    receive
      | :go -> bye
bye:
    unregister :w
    send    r0, :unregistered
    end
";
    // The name is reused by every worker in turn: the next one is spawned only once the
    // previous one has given it back.
    same_everywhere(src, "{:downs, 100}\n");
}

#[test]
fn timeouts_and_messages_race_fairly() {
    // 100 processes wait with a timeout; half get a message first.
    let src = "
main:
    self    r10
    move    r1, 0
loop:
    jge     r1, 100, collect
    spawn   r2, waiter, r10
    rem     r3, r1, 2
    jeq     r3, 0, next
    send    r2, :hello
next:
    add     r1, r1, 1
    jump    loop
collect:
    move    r1, 0
    move    r4, 0
    move    r5, 0
c_loop:
    jge     r1, 100, done
    receive
      | :got -> got
      | :timed_out -> timed
got:
    add     r4, r4, 1
    add     r1, r1, 1
    jump    c_loop
timed:
    add     r5, r5, 1
    add     r1, r1, 1
    jump    c_loop
done:
    print   {r4, r5}
    end
waiter:                             ; r0 = main
    receive
      | :hello -> hello
      | after 200 -> late
hello:
    send    r0, :got
    end
late:
    send    r0, :timed_out
    end
";
    same_everywhere(src, "{50, 50}\n");
}
