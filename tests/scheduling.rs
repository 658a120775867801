//! One test per scheduling rule of spec §5, checked on the trace events a user sees, and the
//! blog examples' traces.

mod common;
use common::{budget, ember, run_src, slices};

fn slice(pid: u64, reds: u64, outcome: &str, queue: &[u64]) -> (u64, u64, String, Vec<u64>) {
    (pid, reds, outcome.to_string(), queue.to_vec())
}

#[test]
fn every_instruction_costs_one_reduction() {
    let r = run_src(
        "main:\n    nop\n    move r0, 1\n    add r0, r0, 1\n    end\n",
        budget(100),
    );
    assert_eq!(slices(&r.trace), vec![slice(0, 4, "exit", &[])]);
}

#[test]
fn a_process_whose_budget_runs_out_goes_to_the_back_of_the_queue() {
    let src = "main:\n    spawn r0, child\n    nop\n    nop\n    nop\n    end\nchild:\n    nop\n    nop\n    nop\n    end\n";
    let r = run_src(src, budget(2));
    assert_eq!(
        slices(&r.trace),
        vec![
            slice(0, 2, "yield", &[1, 0]),
            slice(1, 2, "yield", &[0, 1]),
            slice(0, 2, "yield", &[1, 0]),
            slice(1, 2, "exit", &[0]),
            slice(0, 1, "exit", &[]),
        ]
    );
}

#[test]
fn spawn_queues_the_child_at_the_back_at_once_and_the_queue_is_fifo() {
    let src = "main:\n    spawn r0, child\n    spawn r0, child\n    spawn r0, child\n    end\nchild:\n    end\n";
    let r = run_src(src, budget(100));
    assert_eq!(
        slices(&r.trace),
        vec![
            slice(0, 4, "exit", &[1, 2, 3]),
            slice(1, 1, "exit", &[2, 3]),
            slice(2, 1, "exit", &[3]),
            slice(3, 1, "exit", &[]),
        ]
    );
    let spawns: Vec<_> = r.trace.iter().filter(|e| e["ev"] == "spawn").collect();
    assert_eq!(spawns.len(), 3);
    assert_eq!(spawns[0]["child"], 1);
    assert_eq!(spawns[0]["link"], false);
}

#[test]
fn work_costs_n_and_is_split_across_slices() {
    let r = run_src("main:\n    work 10\n    end\n", budget(4));
    assert_eq!(
        slices(&r.trace),
        vec![
            slice(0, 4, "yield", &[0]),
            slice(0, 4, "yield", &[0]),
            slice(0, 3, "exit", &[]),
        ]
    );
}

#[test]
fn a_receive_without_a_match_waits_and_a_message_queues_the_waiter_at_the_back() {
    let src = "main:\n    self r1\n    spawn r0, child, r1\n    receive\n      | :go -> got\ngot:\n    end\nchild:\n    nop\n    send r0, :go\n    end\n";
    let r = run_src(src, budget(100));
    assert_eq!(
        slices(&r.trace),
        vec![
            slice(0, 3, "wait", &[1]),
            slice(1, 3, "exit", &[0]),
            slice(0, 2, "exit", &[]),
        ]
    );
}

#[test]
fn a_process_is_never_in_the_queue_twice() {
    // Two messages reach the waiting pid 0 during one slice of pid 1: it is queued once.
    let src = "main:\n    self r1\n    spawn r0, child, r1\n    receive\n      | :a -> a\na:\n    receive\n      | :b -> b\nb:\n    end\nchild:\n    send r0, :a\n    send r0, :b\n    nop\n    end\n";
    let r = run_src(src, budget(100));
    let s = slices(&r.trace);
    assert_eq!(s[0], slice(0, 3, "wait", &[1]));
    assert_eq!(s[1], slice(1, 4, "exit", &[0]));
    assert_eq!(s.len(), 3);
    for (_, _, _, q) in &s {
        let mut seen = q.clone();
        seen.dedup();
        assert_eq!(seen.len(), q.len(), "a pid appears twice in {q:?}");
    }
}

#[test]
fn a_slice_ends_when_the_process_exits_or_waits_and_events_are_in_order() {
    let src = "main:\n    self r1\n    spawn r0, child, r1\n    send r0, {:ping, r1}\n    receive\n      | :pong -> done\ndone:\n    end\nchild:\n    receive\n      | {:ping, r2} -> ping\nping:\n    send r2, :pong\n    end\n";
    let r = run_src(src, budget(100));
    let evs: Vec<String> = r
        .trace
        .iter()
        .map(|e| e["ev"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        evs,
        [
            "trace", "spawn", "send", "slice", "receive", "send", "exit", "slice", "receive",
            "exit", "slice"
        ]
    );
    let send = &r.trace[2];
    assert_eq!(send["from"], 0);
    assert_eq!(send["to"], 1);
    assert_eq!(send["msg"], "{:ping, <0.0>}");
}

#[test]
fn blog_ex4_with_budget_7_slices_as_the_post_describes() {
    let trace = std::env::temp_dir().join(format!("ember-ex4-{}.jsonl", std::process::id()));
    let (_, _, status) = ember(&[
        "run",
        "examples/blog/ex4.basm",
        "--budget",
        "7",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(status, 0);
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let _ = std::fs::remove_file(&trace);
    let s = slices(&events);
    assert_eq!(s[0], slice(0, 7, "yield", &[1, 0]));
    assert_eq!(s[1], slice(1, 7, "yield", &[0, 1]));
    assert_eq!(s[2], slice(0, 5, "exit", &[1]));
    assert!(
        s[3..].iter().all(|(pid, _, _, _)| *pid == 1),
        "then pid 1 runs alone"
    );
    assert_eq!(s.last().unwrap().2, "exit");
}

#[test]
fn blog_ex7_deadlocks_under_budget_1_and_works_under_the_default() {
    let (out, err, status) = ember(&["run", "examples/blog/ex7.basm", "--budget", "1"]);
    assert_eq!(status, 4, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("deadlock"), "{err}");
    assert!(
        err.contains("<0.0> waiting in receive at examples/blog/ex7.basm:"),
        "{err}"
    );
    let (out, _, status) = ember(&["run", "examples/blog/ex7.basm"]);
    assert_eq!(status, 0);
    assert_eq!(out, "CRASH: <0.1>\n");
}

#[test]
fn blog_ex7b_works_under_every_budget_from_1_to_10() {
    for b in 1..=10 {
        let (out, err, status) =
            ember(&["run", "examples/blog/ex7b.basm", "--budget", &b.to_string()]);
        assert_eq!(
            (status, out.as_str()),
            (0, "CRASH: <0.1>\n"),
            "budget {b}: {err}"
        );
    }
}

#[test]
fn the_trace_file_is_json_lines_with_the_documented_fields() {
    let r = run_src("main:\n    spawn r0, c\n    send r0, :hi\n    end\nc:\n    receive\n      | _ -> d\nd:\n    crash :boom\n", budget(100));
    for e in &r.trace {
        assert!(e["t"].is_u64(), "every event has a time: {e}");
        match e["ev"].as_str().unwrap() {
            "trace" => assert_eq!(e["clock"], "virtual_ms"),
            "spawn" => assert!(e["pid"].is_u64() && e["child"].is_u64() && e["link"].is_boolean()),
            "send" => assert!(
                e["from"].is_u64() && e["to"].is_u64() && e["msg"].is_string() && e["id"] == "1.0"
            ),
            "exit" => assert!(e["pid"].is_u64() && e["reason"].is_string()),
            "slice" => assert!(
                e["reds"].is_u64()
                    && e["queue"].is_array()
                    && e["start"].as_u64() <= e["t"].as_u64()
                    && e["label"].is_string()
            ),
            // The receive names the message as its send did.
            "receive" => assert!(e["msg"].is_string() && e["id"] == "1.0"),
            other => panic!("unexpected event {other}"),
        }
    }
    let exits: Vec<_> = r
        .trace
        .iter()
        .filter(|e| e["ev"] == "exit")
        .map(|e| e["reason"].clone())
        .collect();
    assert_eq!(exits, vec![":normal", ":boom"]);
}

#[test]
fn a_woken_receive_tests_only_the_messages_it_has_not_tested() {
    // 1,000 unmatched messages wait in pid 0's mailbox; then 100 more unmatched ones arrive one
    // per slice of the sender, waking pid 0 each time, and finally the wanted one.
    let src = "
main:
    self r0
    move r1, 1000
junk:
    send r0, {:junk, r1}
    sub r1, r1, 1
    jgt r1, 0, junk
    spawn r2, sender, r0
    receive
      | :wanted -> done
done:
    end
sender:
    move r1, 100
more:
    send r0, {:junk, r1}
    work 10
    sub r1, r1, 1
    jgt r1, 0, more
    send r0, :wanted
    end
";
    let r = run_src(src, budget(5));
    assert_eq!(r.status, 0);
    // Each message is tested once: 1,000 + 100 + the wanted one (not 1,000 per wake-up).
    assert_eq!(r.vm.stats.messages_tested, 1101);
    let waits = slices(&r.trace)
        .iter()
        .filter(|s| s.0 == 0 && s.2 == "wait")
        .count();
    assert!(waits >= 50, "pid 0 was woken many times ({waits})");
}

#[test]
fn a_receive_site_without_pins_never_retests_messages_it_rejected_before() {
    // 1,000 junk messages, then 100 wanted ones: each later receive at the same site starts
    // after the junk it already rejected.
    let src = "
main:
    self r0
    move r1, 1000
junk:
    send r0, {:junk, r1}
    sub r1, r1, 1
    jgt r1, 0, junk
    move r1, 100
wanted:
    send r0, {:wanted, r1}
    sub r1, r1, 1
    jgt r1, 0, wanted
    move r1, 100
loop:
    receive
      | {:wanted, _}
    sub r1, r1, 1
    jgt r1, 0, loop
    len r2, [1]
    print r1
    end
";
    let r = run_src(src, budget(4000));
    assert_eq!(r.stdout, "0\n");
    // The first receive tests the 1,000 junk messages and one wanted; the other 99 test one each.
    assert_eq!(r.vm.stats.messages_tested, 1000 + 100);
}

#[test]
fn a_receive_pinning_a_fresh_reference_skips_older_messages() {
    let src = "
main:
    self r0
    move r1, 1000
junk:
    send r0, {:junk, r1}
    sub r1, r1, 1
    jgt r1, 0, junk
    move r1, 100
call:
    make_ref r2
    send r0, {:reply, r2, r1}
    receive
      | {:reply, ^r2, r3} -> got
got:
    sub r1, r1, 1
    jgt r1, 0, call
    print r3
    end
";
    let r = run_src(src, budget(4000));
    assert_eq!(r.stdout, "1\n");
    // Each of the 100 calls tests only its own reply, never the 1,000 older messages.
    assert_eq!(r.vm.stats.messages_tested, 100);
}

#[test]
fn budgets_split_at_the_exact_instruction_inside_fused_loops() {
    // `sub` + `jgt` run as one superinstruction in the fast loop; a budget must still end
    // between them when only one reduction is left.
    let src = "main:\n    move r0, 5\nloop:\n    sub r0, r0, 1\n    jgt r0, 0, loop\n    end\n";
    for b in 1..=6u64 {
        let r = run_src(src, budget(b as u32));
        let s = slices(&r.trace);
        let total: u64 = s.iter().map(|x| x.1).sum();
        assert_eq!(total, 1 + 5 * 2 + 1, "budget {b}");
        for (_, reds, outcome, _) in &s[..s.len() - 1] {
            assert_eq!((*reds, outcome.as_str()), (b, "yield"), "budget {b}: {s:?}");
        }
        assert_eq!(s.last().unwrap().2, "exit");
    }
}

#[test]
fn an_ignored_exit_signal_still_queues_a_waiting_process() {
    // Spec §5: a message or signal that reaches a waiting process queues it at the back. The
    // `:normal` signal is ignored, so pid 1 runs its receive again and goes back to waiting.
    let src = "main:\n    spawn r0, waiter\n    nop\n    exit r0, :normal\n    work 5\n    send r0, :go\n    end\nwaiter:\n    receive\n      | :go -> go\ngo:\n    end\n";
    let r = run_src(src, budget(2));
    assert_eq!(
        slices(&r.trace),
        vec![
            slice(0, 2, "yield", &[1, 0]),
            slice(1, 1, "wait", &[0]),
            slice(0, 2, "yield", &[1, 0]),
            slice(1, 1, "wait", &[0]),
            slice(0, 2, "yield", &[0]),
            slice(0, 2, "yield", &[0]),
            slice(0, 2, "exit", &[1]),
            slice(1, 2, "exit", &[]),
        ]
    );
}
