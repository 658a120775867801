//! One semantics, two paths: random programs run with the lowered fast path and without it
//! (every instruction in the general interpreter) must print the same, end the same, report
//! the same crashes and trace the same slices, reductions included, under any budget. Random
//! rings of processes passing messages, untraced (a trace turns the threaded receive and send
//! off), must print, end and count the same: reductions, slices, messages sent, received and
//! tested.

mod common;
use common::{run_src_lowered, run_src_paths};
use proptest::prelude::*;

/// An operand: a register r0-r5 or a constant (small, or near the ends of the small-integer
/// range, where the fast path's overflow checks matter).
#[derive(Clone, Debug)]
enum Val {
    Reg(u8),
    Int(i64),
    List,
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Reg(r) => format!("r{r}"),
            Val::Int(n) => n.to_string(),
            Val::List => "[1, 2]".to_string(),
        }
    }
}

#[derive(Clone, Debug)]
enum Ins {
    Move(u8, Val),
    Arith(&'static str, u8, Val, Val),
    /// A conditional jump forward, to the label this many instructions on.
    Jump(&'static str, u8, Val, usize),
    Call,
    PushPop(u8, u8),
    Work(u8),
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        12 => (0u8..6).prop_map(Val::Reg),
        6 => (-20i64..20).prop_map(Val::Int),
        // The ends of the small-integer range (±2^59) and past them: the fast path's overflow
        // checks hand these to the general path.
        4 => prop_oneof![
            Just((1i64 << 59) - 1),
            Just(-(1i64 << 59)),
            Just(1i64 << 58),
            Just(-(1i64 << 58)),
            Just(1i64 << 59),
            Just(i64::MAX),
            Just(1i64 << 30)
        ]
        .prop_map(Val::Int),
        1 => Just(Val::List),
    ]
}

fn ins() -> impl Strategy<Value = Ins> {
    prop_oneof![
        3 => ((0u8..6), val()).prop_map(|(d, v)| Ins::Move(d, v)),
        5 => (
            prop_oneof![
                4 => Just("add"),
                4 => Just("sub"),
                2 => Just("mul"),
                1 => Just("div"),
                1 => Just("rem")
            ],
            0u8..6,
            val(),
            val()
        )
            .prop_map(|(op, d, a, b)| Ins::Arith(op, d, a, b)),
        2 => (
            prop_oneof![
                Just("jeq"),
                Just("jne"),
                Just("jlt"),
                Just("jle"),
                Just("jgt"),
                Just("jge")
            ],
            0u8..6,
            val(),
            1usize..6
        )
            .prop_map(|(op, a, b, ahead)| Ins::Jump(op, a, b, ahead)),
        1 => Just(Ins::Call),
        1 => ((0u8..6), (0u8..6)).prop_map(|(a, b)| Ins::PushPop(a, b)),
        1 => (0u8..5).prop_map(Ins::Work),
    ]
}

/// The program: registers set, then the body run `iterations` times (a counter in r7), the
/// registers printed; a helper function the body calls.
fn program(init: &[i64], body: &[Ins], helper: &[Ins], iterations: u8) -> String {
    let mut s = String::from("main:\n");
    for (r, v) in init.iter().enumerate() {
        s += &format!("    move r{r}, {v}\n");
    }
    s += "    move r7, 0\nloop:\n";
    let render = |ins: &[Ins], prefix: &str, s: &mut String| {
        for (i, x) in ins.iter().enumerate() {
            s.push_str(&format!("{prefix}{i}:\n"));
            let line = match x {
                Ins::Move(d, v) => format!("move r{d}, {}", v.text()),
                Ins::Arith(op, d, a, b) => format!("{op} r{d}, {}, {}", a.text(), b.text()),
                Ins::Jump(op, a, b, ahead) => {
                    let to = (i + ahead).min(ins.len());
                    format!("{op} r{a}, {}, {prefix}{to}", b.text())
                }
                Ins::Call => {
                    if prefix == "h" {
                        "nop".to_string()
                    } else {
                        "call helper".to_string()
                    }
                }
                Ins::PushPop(a, b) => format!("push r{a}\n    pop r{b}"),
                Ins::Work(n) => format!("work {n}"),
            };
            s.push_str(&format!("    {line}\n"));
        }
        s.push_str(&format!("{prefix}{}:\n", ins.len()));
    };
    render(body, "b", &mut s);
    s += &format!("    add r7, r7, 1\n    jlt r7, {iterations}, loop\n");
    s += "    print {r0, r1, r2, r3, r4, r5}\n    end\nhelper:\n";
    render(helper, "h", &mut s);
    s += "    ret\n";
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn the_fast_path_and_the_general_interpreter_agree(
        init in proptest::collection::vec(-5i64..5, 6),
        body in proptest::collection::vec(ins(), 1..25),
        helper in proptest::collection::vec(ins(), 0..6),
        iterations in 1u8..8,
        budget in prop_oneof![Just(1u32), Just(2), Just(3), Just(7), Just(4000)],
    ) {
        let src = program(&init, &body, &helper, iterations);
        let fast = run_src_lowered(&src, common::budget(budget), true);
        let slow = run_src_lowered(&src, common::budget(budget), false);
        prop_assert_eq!(&fast.stdout, &slow.stdout, "stdout of\n{}", src);
        prop_assert_eq!(&fast.stderr, &slow.stderr, "stderr of\n{}", src);
        prop_assert_eq!(fast.status, slow.status, "status of\n{}", src);
        prop_assert_eq!(&fast.trace, &slow.trace, "trace of\n{}", src);
        prop_assert_eq!(fast.vm.stats.reductions, slow.vm.stats.reductions);
    }
}

/// What a ring member does between taking the token and passing it on.
#[derive(Clone, Debug)]
enum Step {
    /// Adds the token's count to the accumulator (r4).
    Add,
    /// Sends junk to itself (the general path's send: a self-send).
    JunkSelf,
    /// Sends junk to its successor, whose receive skips it (or takes it: see `Member`).
    JunkNext,
    /// Sends its successor a message whose template holds a heap term (a list of the
    /// accumulator: the general path copies it).
    ListNext,
    /// Takes one junk message if one is there (`after 0`: the general path's receive).
    DrainOne,
    Work(u8),
}

/// How a member receives the token.
#[derive(Clone, Debug)]
enum Receive {
    /// `{:token, 0} -> last | {:token, r1}`: flat, so threaded.
    Flat,
    /// As `Flat`, with a clause that takes junk too (counted in r5).
    FlatTakesJunk,
    /// A clause the flat form cannot take (a pattern with a list): the general path.
    General,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Add),
        1 => Just(Step::JunkSelf),
        2 => Just(Step::JunkNext),
        1 => Just(Step::ListNext),
        1 => Just(Step::DrainOne),
        1 => (0u8..4).prop_map(Step::Work),
    ]
}

fn receive() -> impl Strategy<Value = Receive> {
    prop_oneof![
        3 => Just(Receive::Flat),
        1 => Just(Receive::FlatTakesJunk),
        1 => Just(Receive::General),
    ]
}

/// A ring of `members` processes besides main that pass a token `hops` times; each member
/// runs `steps` after each token, receiving as `recv` says. Every member prints what it
/// accumulated when the token reaches 0.
fn ring_program(members: u8, hops: u8, steps: &[Step], recv: &Receive) -> String {
    let mut s = format!(
        ".export main, member\n\
         main:\n\
         \x20   self r1\n\
         \x20   move r2, r1\n\
         \x20   move r3, 0\n\
         spawn_loop:\n\
         \x20   jge r3, {members}, ready\n\
         \x20   spawn r2, member, r2\n\
         \x20   add r3, r3, 1\n\
         \x20   jump spawn_loop\n\
         ready:\n\
         \x20   send r2, {{:token, {hops}}}\n\
         main_wait:\n\
         \x20   receive\n\
         \x20     | {{:token, 0}} -> main_done\n\
         \x20     | {{:token, r5}}\n\
         \x20   sub r5, r5, 1\n\
         \x20   send r2, {{:token, r5}}\n\
         \x20   jump main_wait\n\
         main_done:\n\
         \x20   print {{:main, :done}}\n\
         \x20   end\n\
         member:\n\
         \x20   self r6\n\
         \x20   move r4, 0\n\
         \x20   move r5, 0\n\
         wait:\n\
         \x20   receive\n\
         \x20     | {{:token, 0}} -> last\n"
    );
    s += match recv {
        Receive::Flat => "      | {:token, r1}\n",
        Receive::FlatTakesJunk => "      | {:junk, r7} -> junk\n      | {:token, r1}\n",
        Receive::General => "      | {:token, [r1]} -> wait\n      | {:token, r1}\n",
    };
    for (i, st) in steps.iter().enumerate() {
        s += &match st {
            Step::Add => "    add r4, r4, r1\n".to_string(),
            Step::JunkSelf => "    send r6, {:junk, r1}\n".to_string(),
            Step::JunkNext => "    send r0, {:junk, r4}\n".to_string(),
            Step::ListNext => "    move r7, [r4, r1]\n    send r0, {:junk, r7}\n".to_string(),
            Step::DrainOne => format!(
                "    receive\n      | {{:junk, r7}} -> d{i}\n      | after 0 -> d{i}\nd{i}:\n"
            ),
            Step::Work(n) => format!("    work {n}\n"),
        };
    }
    s += "    sub r1, r1, 1\n    send r0, {:token, r1}\n    jump wait\n";
    s += "junk:\n    add r5, r5, 1\n    jump wait\n";
    s += "last:\n    print {:member, r4, r5}\n    send r0, {:token, 0}\n    end\n";
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn message_passing_agrees_on_both_paths(
        members in 1u8..6,
        hops in 0u8..40,
        steps in proptest::collection::vec(step(), 0..5),
        recv in receive(),
        budget in prop_oneof![Just(1u32), Just(2), Just(3), Just(7), Just(4000)],
    ) {
        let src = ring_program(members, hops, &steps, &recv);
        let fast = run_src_paths(&src, common::budget(budget), true, false);
        let slow = run_src_paths(&src, common::budget(budget), false, false);
        prop_assert_eq!(&fast.stdout, &slow.stdout, "stdout of\n{}", src);
        prop_assert_eq!(&fast.stderr, &slow.stderr, "stderr of\n{}", src);
        prop_assert_eq!(fast.status, slow.status, "status of\n{}", src);
        let counts = |r: &common::Run| {
            let s = &r.vm.stats;
            (
                s.reductions,
                s.slices,
                s.context_switches,
                s.messages_sent,
                s.messages_received,
                s.messages_tested,
            )
        };
        prop_assert_eq!(counts(&fast), counts(&slow), "counts of\n{}", src);
        prop_assert!(fast.stdout.contains("{:main, :done}"), "ran to the end:\n{}", src);
    }
}
