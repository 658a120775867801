//! Heaps, garbage collection and copy-on-send, observed through the stats API and output.

mod common;
use common::{budget, run_src};

#[test]
fn a_process_churning_tuples_keeps_its_heap_bounded() {
    // Ten million iterations, each building two tuples and dropping the older ones (fewer
    // under gc-stress, where every iteration collects).
    let n = if cfg!(feature = "gc-stress") {
        100_000
    } else {
        10_000_000
    };
    let src = "
main:
    move r0, N
    move r2, {:seed, 0}
loop:
    move r1, {:garbage, r0, r2}
    move r2, {:kept, r0}
    sub r0, r0, 1
    jgt r0, 0, loop
    print r2
    end
"
    .replace('N', &n.to_string());
    let r = run_src(&src, budget(4000));
    assert_eq!(r.stdout, "{:kept, 1}\n");
    let stats = r.vm.process_stats(0).expect("pid 0's figures");
    assert!(
        stats.collections > 100,
        "the collector ran ({} times)",
        stats.collections
    );
    assert!(
        stats.peak_heap < 256 * 1024,
        "peak heap {} bytes for a process that keeps two small tuples",
        stats.peak_heap
    );
}

#[test]
fn sharing_inside_a_term_survives_collection() {
    // r1 doubles a list's references 40 times: 2^40 paths, one copy of each cell.
    let src = "
main:
    move r1, [1, 2, 3]
    move r0, 40
loop:
    move r1, {r1, r1}
    sub r0, r0, 1
    jgt r0, 0, loop
    move r2, 0
churn:
    move r3, {:garbage, r2}
    add r2, r2, 1
    jlt r2, 200000, churn
    elem r4, r1, 0
    elem r4, r4, 1
    print r2
    len r5, r4
    print r5
    end
";
    let r = run_src(src, budget(4000));
    assert_eq!(r.stdout, "200000\n2\n");
    let stats = r.vm.process_stats(0).unwrap();
    assert!(stats.collections > 0);
    assert!(stats.peak_heap < 1 << 20, "peak heap {}", stats.peak_heap);
}

#[test]
fn a_big_message_is_copied_whole_and_survives_the_sender() {
    let src = "
main:
    self r5
    spawn r6, receiver, r5
    move r0, 100000
    move r1, []
build:
    cons r1, r0, r1
    sub r0, r0, 1
    jgt r0, 0, build
    send r6, {:list, r1}
    receive
      | :done -> done
done:
    len r2, r1
    print r2
    end
receiver:
    receive
      | {:list, r1} -> got
got:
    len r2, r1
    print r2
    hd r3, r1
    print r3
    send r0, :done
    end
";
    let r = run_src(src, budget(4000));
    assert_eq!(r.stdout, "100000\n1\n100000\n");
}

#[test]
fn rebuilding_on_one_side_never_shows_on_the_other() {
    let src = "
main:
    self r0
    move r1, {:a, [1, 2], \"text\"}
    spawn r2, other, r0, r1
    setelem r1, r1, 0, :changed
    send r2, :go
    receive
      | {:theirs, r3} -> got
got:
    print r1
    print r3
    end
other:
    receive
      | :go -> go
go:
    setelem r4, r1, 2, \"mine\"
    send r0, {:theirs, r1}
    print r4
    end
";
    let r = run_src(src, budget(4000));
    assert_eq!(
        r.stdout,
        "{:a, [1, 2], \"mine\"}\n{:changed, [1, 2], \"text\"}\n{:a, [1, 2], \"text\"}\n"
    );
}

#[test]
fn a_process_heap_is_freed_when_it_exits() {
    // Many short-lived processes each allocate; only the live ones hold memory.
    let src = "
main:
    move r0, 2000
loop:
    spawn r1, worker
    sub r0, r0, 1
    jgt r0, 0, loop
    end
worker:
    move r0, [1, 2, 3, 4, 5, 6, 7, 8]
    move r1, {r0, r0, r0}
    end
";
    let r = run_src(src, budget(4000));
    assert_eq!(r.status, 0);
    assert_eq!(r.vm.live_processes(), 0);
}
