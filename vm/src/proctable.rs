//! The process table: live processes by pid, and nothing for dead ones (spec §10).
//!
//! Pids are spawn numbers and never reused, so a table indexed by pid would grow forever.
//! This one is open addressing with linear probing where pid `n`'s home slot is `n & mask`:
//! the live pids of a program are mostly a recent window of spawn numbers, which fall on
//! distinct slots, so a lookup is one probe and neighbouring pids sit in neighbouring slots
//! (a ring of processes walks the table in order). No hashing. A removed process leaves a
//! tombstone (a backward shift would rescan the whole run of consecutive pids on every exit);
//! tombstones go at the next rehash. The capacity is a power of two kept between 2× and 8× the
//! live count, so memory follows the live count down again.

use crate::process::Process;

const EMPTY: u32 = u32::MAX;
/// A slot whose process was removed: lookups probe past it, inserts may reuse it.
const TOMB: u32 = u32::MAX - 1;
const MIN_CAPACITY: usize = 16;

struct Slot {
    /// `EMPTY`, or the pid this slot holds.
    pid: u32,
    /// `None` with a pid: the process is checked out (running) and still owns the slot.
    proc: Option<Box<Process>>,
}

pub(crate) struct ProcTable {
    slots: Vec<Slot>,
    /// Slots holding a pid (checked-out ones included).
    len: usize,
    tombs: usize,
}

impl ProcTable {
    pub fn new() -> ProcTable {
        ProcTable {
            slots: Vec::new(),
            len: 0,
            tombs: 0,
        }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding `pid`, if any.
    fn find(&self, pid: u32) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = pid as usize & mask;
        loop {
            match self.slots[i].pid {
                EMPTY => return None,
                p if p == pid => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.find(pid).and_then(|i| self.slots[i].proc.as_deref())
    }

    pub fn get_mut(&mut self, pid: u32) -> Option<&mut Process> {
        let i = self.find(pid)?;
        self.slots[i].proc.as_deref_mut()
    }

    pub fn contains(&self, pid: u32) -> bool {
        self.get(pid).is_some()
    }

    /// Adds a new process (its pid must not be in the table).
    pub fn insert(&mut self, p: Box<Process>) {
        if (self.len + self.tombs + 1) * 2 > self.slots.len() {
            // Grow when the live processes fill a quarter; else just clear the tombstones.
            let capacity = if (self.len + 1) * 4 > self.slots.len() {
                (self.slots.len() * 2).max(MIN_CAPACITY)
            } else {
                self.slots.len()
            };
            self.resize(capacity);
        }
        let i = self.free_slot_for(p.pid);
        if self.slots[i].pid == TOMB {
            self.tombs -= 1;
        }
        self.slots[i] = Slot {
            pid: p.pid,
            proc: Some(p),
        };
        self.len += 1;
    }

    fn free_slot_for(&self, pid: u32) -> usize {
        let mask = self.mask();
        let mut i = pid as usize & mask;
        while !matches!(self.slots[i].pid, EMPTY | TOMB) {
            i = (i + 1) & mask;
        }
        i
    }

    /// Takes a process out to run it; its slot stays reserved until [`ProcTable::put_back`]
    /// or [`ProcTable::remove`].
    pub fn check_out(&mut self, pid: u32) -> Option<Box<Process>> {
        let i = self.find(pid)?;
        self.slots[i].proc.take()
    }

    /// Returns a checked-out process to its slot.
    pub fn put_back(&mut self, p: Box<Process>) {
        match self.find(p.pid) {
            Some(i) => self.slots[i].proc = Some(p),
            None => self.insert(p),
        }
    }

    /// Removes `pid` (present or checked out); the process, if it was present.
    pub fn remove(&mut self, pid: u32) -> Option<Box<Process>> {
        let i = self.find(pid)?;
        let taken = self.slots[i].proc.take();
        self.slots[i].pid = TOMB;
        self.len -= 1;
        self.tombs += 1;
        if self.slots.len() > MIN_CAPACITY && self.len * 8 < self.slots.len() {
            self.resize(self.slots.len() / 2);
        }
        taken
    }

    fn resize(&mut self, capacity: usize) {
        let old = std::mem::replace(
            &mut self.slots,
            (0..capacity)
                .map(|_| Slot {
                    pid: EMPTY,
                    proc: None,
                })
                .collect(),
        );
        self.tombs = 0;
        for s in old.into_iter().filter(|s| !matches!(s.pid, EMPTY | TOMB)) {
            let i = self.free_slot_for(s.pid);
            self.slots[i] = s;
        }
    }

    /// The processes present (not checked out), in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Process> {
        self.slots.iter().filter_map(|s| s.proc.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32) -> Box<Process> {
        Box::new(Process::new(pid, 0, 1))
    }

    #[test]
    fn insert_find_remove_in_any_order() {
        let mut t = ProcTable::new();
        // A window of live pids sliding over the spawn numbers, plus pid 0 living throughout.
        t.insert(proc(0));
        let mut live = std::collections::VecDeque::new();
        for pid in 1..5000u32 {
            t.insert(proc(pid));
            live.push_back(pid);
            if live.len() > 100 {
                // Remove from the middle as well as the front.
                let victim = live.remove((pid as usize * 7919) % live.len()).unwrap();
                assert_eq!(t.remove(victim).map(|p| p.pid), Some(victim));
                assert!(!t.contains(victim));
            }
            assert!(t.contains(0));
        }
        for &pid in &live {
            assert_eq!(t.get(pid).map(|p| p.pid), Some(pid));
        }
        assert_eq!(t.values().count(), live.len() + 1);
        assert!(t.slots.len() <= 1024, "capacity follows the live count");
        while let Some(pid) = live.pop_front() {
            assert!(t.remove(pid).is_some());
        }
        assert_eq!(t.values().count(), 1);
        assert!(t.slots.len() <= MIN_CAPACITY, "{}", t.slots.len());
        assert!(t.get(1).is_none() && t.remove(1).is_none());
    }

    #[test]
    fn checked_out_processes_keep_their_slot() {
        let mut t = ProcTable::new();
        for pid in 0..40 {
            t.insert(proc(pid));
        }
        let p = t.check_out(7).unwrap();
        assert!(t.get(7).is_none() && !t.contains(7));
        assert!(t.check_out(7).is_none());
        // Colliding pids probe past the reserved slot.
        t.insert(proc(7 + 64));
        assert!(t.contains(7 + 64));
        t.put_back(p);
        assert!(t.contains(7));
        let p = t.check_out(7).unwrap();
        assert!(
            t.remove(7).is_none(),
            "removing a checked-out pid frees its slot"
        );
        drop(p);
        assert!(t.contains(7 + 64));
    }
}
