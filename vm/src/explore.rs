//! Choosing schedules: what `ember check` explores, `--schedule` replays and `--record` writes.
//!
//! With one scheduler a run is a sequence of scheduling points (steps): at each, the VM takes
//! the process at the front of the run queue and runs it for a full budget, and when nothing
//! can run it moves the clock to the earliest timeout. A [`Strategy`] may decide otherwise at
//! any step: run another runnable process, end the slice after fewer reductions, or fire the
//! earliest pending timeout before its time (the clock then moves to its deadline, so `now`
//! never runs backwards). A run is named by its decisions that differ from the default: a
//! [`Schedule`], printed as `STEP=PID/BUDGET` and `STEP=t` items (`0/2,3=1,5=t`).
//!
//! The interpreter loop never sees any of this: decisions are taken between slices.

use std::fmt;

/// What the VM does at one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run the `index`-th runnable process (0: the queue's front) for at most `budget`
    /// reductions.
    Run { index: usize, budget: u32 },
    /// Fire the earliest pending timeout now, then decide again (same step).
    Fire,
}

/// A scheduling point as a strategy sees it.
pub struct Point<'a> {
    /// Steps taken before this one.
    pub step: u64,
    /// The runnable processes, front of the queue first.
    pub runnable: &'a [u32],
    /// Per runnable process: whether its next instruction is local ([`is_local`]); all
    /// `false` unless the strategy [`Strategy::reads_local`].
    pub local: &'a [bool],
    /// Whether a timeout is pending.
    pub timer: bool,
    /// The configured budget.
    pub budget: u32,
}

impl Point<'_> {
    /// What the VM does unprompted.
    pub fn default_decision(&self) -> Decision {
        if self.runnable.is_empty() {
            Decision::Fire
        } else {
            Decision::Run {
                index: 0,
                budget: self.budget,
            }
        }
    }
}

/// Whether an instruction can only touch its own process: it sends nothing, takes no message,
/// touches no link, monitor, name, timer, clock or output, and cannot crash (but for running
/// out of heap or stack). Such a step commutes with every step of every other process, so a
/// systematic exploration need not try other processes first (a persistent set of one).
pub fn is_local(op: crate::isa::Opcode) -> bool {
    use crate::isa::Opcode::*;
    matches!(
        op,
        Jump | Jeq
            | Jne
            | Jlt
            | Jle
            | Jgt
            | Jge
            | Call
            | CallExt
            | JumpExt
            | Push
            | Work
            | Nop
            | Move
            | Eq
            | Ne
            | Eqx
            | Nex
            | Lt
            | Le
            | Gt
            | Ge
            | Min
            | Max
            | IsInteger
            | IsFloat
            | IsNumber
            | IsAtom
            | IsBoolean
            | IsTuple
            | IsList
            | IsMap
            | IsBinary
            | IsPid
            | IsRef
            | IsFun
            | SelfPid
            | Cons
            | Closure
            | CrashNote
    )
}

/// Decides the steps of a run.
pub trait Strategy: Send {
    fn decide(&mut self, at: &Point<'_>) -> Decision;
    /// Whether this strategy reads [`Point::local`] (working it out costs a look at each
    /// runnable process's next instruction at every step; the others see all `false`).
    fn reads_local(&self) -> bool {
        false
    }
}

/// One decision that differs from the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deviation {
    pub step: u64,
    pub choice: Choice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Choice {
    /// Fire the earliest timeout (before the slice of this step).
    Fire,
    /// Run `pid` (None: the default one), ending its slice after `budget` reductions (None:
    /// the configured budget).
    Run {
        pid: Option<u32>,
        budget: Option<u32>,
    },
}

/// A run's decisions that differ from the default, in step order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule(pub Vec<Deviation>);

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", d.step)?;
            match d.choice {
                Choice::Fire => f.write_str("=t")?,
                Choice::Run { pid, budget } => {
                    if let Some(pid) = pid {
                        write!(f, "={pid}")?;
                    }
                    if let Some(b) = budget {
                        write!(f, "/{b}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    /// Parses `STEP[=PID][/BUDGET]` and `STEP=t` items separated by commas (or spaces); the
    /// empty string is the default schedule.
    fn from_str(s: &str) -> Result<Schedule, String> {
        let mut out = Vec::new();
        for item in s.split([',', ' ']).filter(|i| !i.is_empty()) {
            let bad = || format!("bad schedule item `{item}` (want STEP=PID/BUDGET or STEP=t)");
            let (head, budget) = match item.split_once('/') {
                Some((h, b)) => (h, Some(b.parse::<u32>().map_err(|_| bad())?)),
                None => (item, None),
            };
            if budget == Some(0) {
                return Err(bad());
            }
            let (step, pid) = match head.split_once('=') {
                Some((s, p)) => (s, Some(p)),
                None => (head, None),
            };
            let step: u64 = step.parse().map_err(|_| bad())?;
            let choice = match pid {
                Some("t") if budget.is_none() => Choice::Fire,
                Some(p) => Choice::Run {
                    pid: Some(p.parse().map_err(|_| bad())?),
                    budget,
                },
                None if budget.is_some() => Choice::Run { pid: None, budget },
                None => return Err(bad()),
            };
            out.push(Deviation { step, choice });
        }
        out.sort();
        Ok(Schedule(out))
    }
}

/// Replays a [`Schedule`]: its deviations where they apply (a pid that is not runnable at that
/// step, or a timeout that is not pending, leaves the default), the default elsewhere.
pub struct Replay {
    devs: Vec<Deviation>,
    next: usize,
    /// Fires already taken at the current step.
    fired: usize,
    step: u64,
}

impl Replay {
    pub fn new(schedule: &Schedule) -> Replay {
        Replay {
            devs: schedule.0.clone(),
            next: 0,
            fired: 0,
            step: 0,
        }
    }
}

impl Strategy for Replay {
    fn decide(&mut self, at: &Point<'_>) -> Decision {
        if at.step != self.step {
            self.step = at.step;
            self.fired = 0;
        }
        while self.next < self.devs.len() && self.devs[self.next].step < at.step {
            self.next += 1;
        }
        let mut i = self.next;
        let mut fires = 0;
        while i < self.devs.len() && self.devs[i].step == at.step {
            match self.devs[i].choice {
                Choice::Fire => {
                    fires += 1;
                    if fires > self.fired && at.timer {
                        self.fired += 1;
                        return Decision::Fire;
                    }
                }
                Choice::Run { pid, budget } => {
                    if at.runnable.is_empty() {
                        break;
                    }
                    let index = pid
                        .and_then(|p| at.runnable.iter().position(|&q| q == p))
                        .unwrap_or(0);
                    return Decision::Run {
                        index,
                        budget: budget.unwrap_or(at.budget),
                    };
                }
            }
            i += 1;
        }
        at.default_decision()
    }
}

/// splitmix64: small, fast, and the same numbers for a seed everywhere (the explorers' choices
/// and each process's `rand`).
#[derive(Clone, Copy, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// A slice's length under the random strategies: short (1 to 8 reductions) half the time, where
/// most races live, else the full budget.
fn random_budget(rng: &mut Rng, budget: u32) -> u32 {
    if rng.one_in(2) {
        (1 + rng.below(8) as u32).min(budget)
    } else {
        budget
    }
}

/// At each step, a runnable process chosen uniformly, a random slice length, and now and then
/// a pending timeout fired early.
pub struct RandomWalk {
    rng: Rng,
}

impl RandomWalk {
    pub fn new(seed: u64) -> RandomWalk {
        RandomWalk {
            rng: Rng::new(seed),
        }
    }
}

impl Strategy for RandomWalk {
    fn decide(&mut self, at: &Point<'_>) -> Decision {
        if at.timer && (at.runnable.is_empty() || self.rng.one_in(4)) {
            return Decision::Fire;
        }
        if at.runnable.is_empty() {
            return Decision::Fire;
        }
        Decision::Run {
            index: self.rng.below(at.runnable.len() as u64) as usize,
            budget: random_budget(&mut self.rng, at.budget),
        }
    }
}

/// The default order with every slice `budget` reductions long (the seed's story: one budget
/// works, another deadlocks).
pub struct FixedBudget(pub u32);

impl Strategy for FixedBudget {
    fn decide(&mut self, at: &Point<'_>) -> Decision {
        match at.default_decision() {
            Decision::Run { index, .. } => Decision::Run {
                index,
                budget: self.0,
            },
            fire => fire,
        }
    }
}

/// PCT (Burckhardt et al., "A Randomized Scheduler with Probabilistic Guarantees of Finding
/// Bugs", 2010): every process gets a random priority when first seen, the highest-priority
/// runnable process runs one reduction at a time, and at `depth - 1` random steps the one
/// running drops below all others. A bug that needs `depth` ordering constraints among `n`
/// processes within `k` steps is found by one run with probability at least 1/(n k^(depth-1)).
pub struct Pct {
    rng: Rng,
    /// Priorities by pid (higher runs first); the initial ones are all above `depth`.
    priority: std::collections::HashMap<u32, u64>,
    /// Steps at which the running process's priority drops, with the priority it drops to.
    changes: Vec<(u64, u64)>,
}

impl Pct {
    /// `steps`: how many steps a run is expected to take (the change points fall among them).
    pub fn new(seed: u64, depth: u32, steps: u64) -> Pct {
        let mut rng = Rng::new(seed);
        let changes = (1..depth)
            .map(|i| (rng.below(steps.max(1)), u64::from(i)))
            .collect();
        Pct {
            rng,
            priority: std::collections::HashMap::new(),
            changes,
        }
    }
}

impl Strategy for Pct {
    fn decide(&mut self, at: &Point<'_>) -> Decision {
        if at.timer && (at.runnable.is_empty() || self.rng.one_in(16)) {
            return Decision::Fire;
        }
        if at.runnable.is_empty() {
            return Decision::Fire;
        }
        for &pid in at.runnable {
            let rng = &mut self.rng;
            self.priority
                .entry(pid)
                .or_insert_with(|| 1_000 + rng.below(1 << 40));
        }
        let best = |prio: &std::collections::HashMap<u32, u64>| {
            (0..at.runnable.len())
                .max_by_key(|&i| prio[&at.runnable[i]])
                .unwrap_or(0)
        };
        let mut index = best(&self.priority);
        for &(step, low) in &self.changes {
            if step == at.step {
                self.priority.insert(at.runnable[index], low);
                index = best(&self.priority);
            }
        }
        Decision::Run { index, budget: 1 }
    }
}

/// Systematic exploration, one run at a time: every step is one reduction, and at each step
/// where every runnable process's next instruction is visible (not [`is_local`]) each of them
/// (and firing a pending timeout) is a branch; a local step runs without branching, since it
/// commutes with everything the others do (partial-order reduction by persistent sets). Runs
/// are a depth-first walk of that tree: each follows `prefix`, then takes the first branch,
/// logging what it met in `trail`; [`Dfs::next_prefix`] gives the next run's prefix, and none
/// once every schedule was explored.
pub struct Dfs {
    prefix: Vec<usize>,
    /// Per branching point met: the branch taken and how many there were.
    pub trail: std::sync::Arc<std::sync::Mutex<Vec<(usize, usize)>>>,
}

impl Dfs {
    pub fn new(prefix: Vec<usize>) -> Dfs {
        Dfs {
            prefix,
            trail: Default::default(),
        }
    }

    /// The prefix of the run after the one that logged `trail`: the deepest branching point
    /// with a branch left takes its next branch. None: the tree is explored.
    pub fn next_prefix(trail: &[(usize, usize)]) -> Option<Vec<usize>> {
        let k = trail.iter().rposition(|&(taken, n)| taken + 1 < n)?;
        let mut next: Vec<usize> = trail[..k].iter().map(|&(taken, _)| taken).collect();
        next.push(trail[k].0 + 1);
        Some(next)
    }
}

impl Strategy for Dfs {
    fn reads_local(&self) -> bool {
        true
    }
    fn decide(&mut self, at: &Point<'_>) -> Decision {
        if let Some(i) = at.local.iter().position(|&l| l) {
            return Decision::Run {
                index: i,
                budget: 1,
            };
        }
        let branches = at.runnable.len() + usize::from(at.timer);
        let mut trail = self.trail.lock().unwrap_or_else(|e| e.into_inner());
        let depth = trail.len();
        let taken = if branches > 1 {
            let taken = self
                .prefix
                .get(depth)
                .copied()
                .unwrap_or(0)
                .min(branches - 1);
            trail.push((taken, branches));
            taken
        } else {
            0
        };
        if taken == at.runnable.len() || at.runnable.is_empty() {
            Decision::Fire
        } else {
            Decision::Run {
                index: taken,
                budget: 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_print_and_parse_back() {
        let s: Schedule = "3=1/2, 0/2,5=t,5=t,7=4".parse().unwrap();
        assert_eq!(s.to_string(), "0/2,3=1/2,5=t,5=t,7=4");
        assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
        assert_eq!("".parse::<Schedule>().unwrap(), Schedule::default());
        assert_eq!(Dfs::next_prefix(&[(0, 2), (1, 2)]), Some(vec![1]));
        assert_eq!(Dfs::next_prefix(&[(0, 2), (0, 3)]), Some(vec![0, 1]));
        assert_eq!(Dfs::next_prefix(&[(1, 2), (2, 3)]), None);
        for bad in ["x", "3", "3=", "3/0", "3=t/2", "=1"] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
    }
}
