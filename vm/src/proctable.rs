//! The process table of one scheduler: live processes by pid, and (almost) nothing for dead
//! ones (spec §10).
//!
//! Pids are spawn numbers, never reused, and a program's live pids are mostly a recent window
//! of them. So the table is a directory of pages of 1,024 slots, indexed by `pid / 1024` and
//! `pid % 1024`: a lookup is two loads, neighbouring pids share a page (a ring of processes
//! walks memory in order), and a page is freed as soon as its last process exits. What a dead
//! process leaves is its share of one directory word per 1,024 pids: 80 KB after ten million
//! spawns. (Hashing the pid instead spreads a million processes over a table many times larger
//! than the cache, and every lookup misses.)

use crate::process::Process;

const PAGE_BITS: u32 = 10;
const PAGE: usize = 1 << PAGE_BITS;

struct Page<T> {
    /// `None`: no such process, or (for a `ProcTable`) it is checked out (running).
    slots: [Option<T>; PAGE],
    /// Entries of this page that are alive, checked-out ones included.
    live: u32,
}

/// Values by pid, in pages (see the module documentation). N schedulers keep their process
/// handles in shards of these ([`crate::vm`]'s `smp`), one scheduler its processes.
pub(crate) struct PagedTable<T> {
    pages: Vec<Option<Box<Page<T>>>>,
    /// The highest page anything was inserted in. Pids are given out in order, so every pid
    /// of a lower page has been given out: an empty lower page is freed, while the top one is
    /// kept for the pids still to come (a spawn-and-exit loop would otherwise make and free a
    /// page per process).
    top: usize,
}

/// One scheduler's process table.
pub(crate) type ProcTable = PagedTable<Box<Process>>;

fn split(pid: u32) -> (usize, usize) {
    ((pid >> PAGE_BITS) as usize, pid as usize & (PAGE - 1))
}

impl<T> PagedTable<T> {
    pub fn new() -> PagedTable<T> {
        PagedTable {
            pages: Vec::new(),
            top: 0,
        }
    }

    fn slot(&self, pid: u32) -> Option<&Option<T>> {
        let (page, i) = split(pid);
        self.pages.get(page)?.as_ref().map(|p| &p.slots[i])
    }

    fn slot_mut(&mut self, pid: u32) -> Option<&mut Option<T>> {
        let (page, i) = split(pid);
        self.pages.get_mut(page)?.as_mut().map(|p| &mut p.slots[i])
    }

    pub fn get_entry(&self, pid: u32) -> Option<&T> {
        self.slot(pid)?.as_ref()
    }

    /// Adds `v` under `pid` (which must not be alive).
    pub fn insert_at(&mut self, pid: u32, v: T) {
        let (page, i) = split(pid);
        if page > self.top {
            // The old top page gets no more pids: free it if it emptied meanwhile.
            let old = std::mem::replace(&mut self.top, page);
            if let Some(slot) = self.pages.get_mut(old) {
                if slot.as_ref().is_some_and(|p| p.live == 0) {
                    *slot = None;
                }
            }
        }
        if page >= self.pages.len() {
            self.pages.resize_with(page + 1, || None);
        }
        let page = self.pages[page].get_or_insert_with(|| {
            Box::new(Page {
                slots: std::array::from_fn(|_| None),
                live: 0,
            })
        });
        page.live += 1;
        page.slots[i] = Some(v);
    }

    /// Removes the entry of `pid`, if present.
    pub fn remove_entry(&mut self, pid: u32) -> Option<T> {
        let v = self.slot_mut(pid)?.take()?;
        self.release(pid);
        Some(v)
    }

    /// The entry of `pid` (present or checked out) is gone for good: the page forgets it,
    /// and is freed with its last entry.
    pub fn release(&mut self, pid: u32) {
        let (page, _) = split(pid);
        if let Some(slot) = self.pages.get_mut(page) {
            if let Some(p) = slot.as_mut() {
                p.live -= 1;
                if p.live == 0 && page < self.top {
                    *slot = None;
                }
            }
        }
        // (The directory keeps its length: one word per 1,024 pids ever spawned. Trimming
        // its empty tail at every exit would make a spawn-and-exit loop at the top page
        // rebuild it each time.)
    }

    /// The entries present, in pid order.
    pub fn entries(&self) -> impl Iterator<Item = &T> {
        self.pages
            .iter()
            .flatten()
            .flat_map(|p| p.slots.iter())
            .filter_map(Option::as_ref)
    }
}

impl ProcTable {
    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.slot(pid)?.as_deref()
    }

    pub fn get_mut(&mut self, pid: u32) -> Option<&mut Process> {
        self.slot_mut(pid)?.as_deref_mut()
    }

    pub fn contains(&self, pid: u32) -> bool {
        self.get(pid).is_some()
    }

    /// Adds a new process (its pid must not be alive).
    pub fn insert(&mut self, p: Box<Process>) {
        self.insert_at(p.pid, p);
    }

    /// Takes a process out to run it; it stays alive until [`ProcTable::put_back`] or
    /// [`ProcTable::release`].
    pub fn check_out(&mut self, pid: u32) -> Option<Box<Process>> {
        self.slot_mut(pid)?.take()
    }

    /// Returns a checked-out process.
    pub fn put_back(&mut self, p: Box<Process>) {
        let (page, i) = split(p.pid);
        match self.pages.get_mut(page).and_then(Option::as_mut) {
            Some(page) => page.slots[i] = Some(p),
            None => self.insert(p),
        }
    }

    /// Removes a process that is present (not checked out); `None` if there is none.
    pub fn remove(&mut self, pid: u32) -> Option<Box<Process>> {
        self.remove_entry(pid)
    }

    /// The processes present (not checked out), in pid order.
    pub fn values(&self) -> impl Iterator<Item = &Process> {
        self.entries().map(|p| &**p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32) -> Box<Process> {
        Box::new(Process::new(pid, 0, 1))
    }

    #[test]
    fn pages_come_and_go_with_their_processes() {
        let mut t = ProcTable::new();
        // Pid 0 lives throughout while a window of live pids slides over 5,000 spawns.
        t.insert(proc(0));
        let mut live = std::collections::VecDeque::new();
        for pid in 1..5000u32 {
            t.insert(proc(pid));
            live.push_back(pid);
            if live.len() > 100 {
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
        let held = t.pages.iter().flatten().count();
        assert!(held <= 3, "{held} pages for a window of 100 pids");
        while let Some(pid) = live.pop_front() {
            assert!(t.remove(pid).is_some());
        }
        assert_eq!(t.values().map(|p| p.pid).collect::<Vec<_>>(), [0]);
        assert_eq!(
            t.pages.iter().flatten().count(),
            2,
            "pid 0's page, and the top page waiting for the next pids"
        );
        assert!(t.get(1).is_none() && t.remove(1).is_none());
    }

    #[test]
    fn checked_out_processes_stay_alive_until_released() {
        let mut t = ProcTable::new();
        for pid in 0..40 {
            t.insert(proc(pid));
        }
        let p = t.check_out(7).unwrap();
        assert!(t.get(7).is_none() && !t.contains(7));
        assert!(t.check_out(7).is_none());
        t.put_back(p);
        assert!(t.contains(7));
        let _p = t.check_out(7).unwrap();
        t.release(7);
        assert_eq!(t.values().count(), 39);
        // A page whose last process is released is freed once later pids are in use.
        let mut t = ProcTable::new();
        t.insert(proc(2048));
        let _p = t.check_out(2048).unwrap();
        t.release(2048);
        assert_eq!(
            t.pages.iter().flatten().count(),
            1,
            "the top page waits for more"
        );
        t.insert(proc(3072));
        t.remove(3072);
        assert_eq!(t.pages.iter().flatten().count(), 1, "only the new top page");
    }
}
