//! Process heaps, the literal area, copy-on-send and the copying garbage collector.
//!
//! This module holds the VM's `unsafe` code for memory (the other module with `unsafe` code is
//! `threaded.rs`, the interpreter's dispatch). Everything that dereferences a term is here,
//! behind safe functions; `term.rs` builds on them.
//!
//! # Object layout
//!
//! Objects are sequences of 8-aligned 64-bit words.
//!
//! * **Boxed object** (a boxed term points to its first word, the header). Header word:
//!   bits `2..0` = `010`, bits `5..3` = kind, bits `63..6` = size.
//!   - tuple (kind 0, size = arity): header, then `arity` term words;
//!   - binary (kind 1, size = byte length): header, then the bytes in `ceil(len / 8)` words,
//!     the padding bytes of the last word zero (every word of an object is initialised, so the
//!     collector may copy whole words);
//!   - big integer (kind 2, size 0): header, then the `i64` — only for integers outside the
//!     60-bit small range, so integers stay canonical.
//!   - float (kind 4, size 0): header, then the bits;
//!   - closure (kind 5), map (kind 6) and hash-trie node (kind 7, inside maps only): like a
//!     tuple, `size` term words (see `map.rs` for what a map's words mean).
//! * **List cell** (a cons term points to its first word): two term words, head then tail. No
//!   header: the pointer's tag says what it is.
//! * **Forwarding marker**: bits `2..0` = `110`, bits `63..3` = the address of the copy. The
//!   collector writes it over the first word (header or head) of every object it has copied, in
//!   from-space only. It can't be mistaken for a header (`010`) nor for a term in a cell's head
//!   (boxed pointers end in `000`, cons pointers in `001`, immediates in `11`).
//!
//! # Invariants
//!
//! The unsafe code below is sound as long as these hold:
//!
//! 1. **Pointer terms are made here only**, and point to a fully initialised object (every word
//!    written) in a live [`Heap`] arena or a [`Literals`] area. (`Term::from_raw` can forge one;
//!    it is for tests and debugging of immediates only.)
//! 2. **Memory doesn't move while it is alive.** bumpalo never moves or frees an allocation
//!    before its arena is dropped or reset (a minor collection resets the young arena to reuse
//!    its largest chunk: every young object is dead by then, invariant 4); the young
//!    generation's blocks are allocations of its arena; a `Literals` area is one allocation,
//!    never resized.
//! 3. **Objects are immutable** once a term points to them. The only writes to an existing
//!    object are the collector's forwarding markers, into from-space objects that nobody but the
//!    collector reads again: from-space is freed when the collection ends.
//! 4. **The VM's side of the contract.** A term into a heap is used (viewed, compared, printed,
//!    copied) only until that heap's next [`Heap::collect`] — the terms returned by
//!    [`Collector::copy`] replace the roots — and never after the heap is dropped; slices from
//!    [`crate::word::View`] follow the same rule despite their `'static`. A literal term is used
//!    only while its `Literals` lives. A heap's objects point only into that heap or into the
//!    literal area: terms move between heaps only through [`Heap::copy_into`], or with the
//!    whole heap they live in through [`Heap::adopt`] (a message built for another process).
//!    Since objects are immutable (3) and written when allocated, an object only points to
//!    objects older than itself: the old generation (below) never points into the young one,
//!    which is what lets a minor collection leave the old generation unread.
//! 5. **One thread.** Heaps, the terms into them and the `Literals` are used by one thread at a
//!    time (a heap may move to another thread with all its terms, between instructions).
//!
//! Every `unsafe` block says which of these it relies on.

#![deny(clippy::undocumented_unsafe_blocks)]
// Some constructors and figures are used by tests only for now (see term.rs).
#![allow(dead_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::alloc::{self, Layout};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use bumpalo::Bump;
use smallvec::SmallVec;

use crate::bytecode::Node;
use crate::word::Term;

const WORD: usize = 8;
const LOW3: u64 = 0b111;
const HEADER_TAG: u64 = 0b010;
const FORWARD_TAG: u64 = 0b110;
const KIND_SHIFT: u32 = 3;
const KIND_MASK: u64 = 0b111;
const SIZE_SHIFT: u32 = 6;
const KIND_TUPLE: u64 = 0;
const KIND_BINARY: u64 = 1;
const KIND_BIGINT: u64 = 2;
/// (Kind 3 is a flat list's header, in flat terms only.)
const KIND_FLOAT: u64 = 4;
/// A closure: laid out as a tuple whose words are all terms: the function reference, its
/// arity (a small integer), then the captured values.
const KIND_CLOSURE: u64 = 5;
/// A map (see `map.rs`): the entry count (a small integer), then either its entries as key,
/// value words in key order (at most `map::FLAT_MAX` of them) or the root of a hash trie.
const KIND_MAP: u64 = 6;
/// A node of a map's hash trie: a bitmap (a small integer), then one word per set bit: a list
/// cell `[key | value]` (an entry) or a deeper node.
const KIND_HAMT: u64 = 7;

/// Objects whose words after the header are all terms.
fn has_term_fields(kind: u64) -> bool {
    matches!(kind, KIND_TUPLE | KIND_CLOSURE | KIND_MAP | KIND_HAMT)
}

/// The young generation may always take this many bytes of objects before a collection (96
/// words; with [`YOUNG_SLACK`], a first chunk of 1 KiB with bumpalo's footer): a process that
/// keeps little holds little. (Erlang's default minimum heap is 233 words, but it holds the
/// process's stack too, and it is allocated at spawn.) Each message and allocation touches
/// memory a process keeps: with 10,000 processes in a ring, 2 KiB young generations were 20 MB
/// more to fault in while the ring ran, paid per page (and on a VM whose host takes back freed
/// memory, at several microseconds per page).
pub const MIN_GC_LIMIT: usize = 768;

/// The room a young generation's chunk has beyond its allowance: the object that takes it past
/// its limit (collected right after) still fits. See [`Young::alloc_slow`].
const YOUNG_SLACK: usize = 192;

/// The bytes of a young chunk for an allowance of `room`: the slack, or a quarter more for a
/// large one, so that the chunk is still large enough, and kept, while the old generation (and
/// with it the allowance) grows by promotions between two major collections.
fn young_chunk_bytes(room: usize) -> usize {
    room + YOUNG_SLACK.max(room / 4)
}

/// The next collection is major once the old generation passes this, or twice what the last
/// major one left: larger than [`MIN_GC_LIMIT`], since a small process's old generation would
/// otherwise double with a few promoted objects (the stdlib server, 10 clients: 6.3 times as
/// many major collections).
const MIN_OLD_LIMIT: usize = 2048;

/// Under `gc-stress`, processes whose live data is smaller than this collect after every
/// allocating instruction.
pub const STRESS_LIVE_LIMIT: usize = 64 * 1024;

const fn header(kind: u64, size: usize) -> u64 {
    ((size as u64) << SIZE_SHIFT) | (kind << KIND_SHIFT) | HEADER_TAG
}

fn header_kind(h: u64) -> u64 {
    (h >> KIND_SHIFT) & KIND_MASK
}

fn header_size(h: u64) -> usize {
    (h >> SIZE_SHIFT) as usize
}

/// Words of the object whose header is `h`, the header included.
fn object_words(h: u64) -> usize {
    let size = header_size(h);
    match header_kind(h) {
        KIND_TUPLE | KIND_CLOSURE | KIND_MAP | KIND_HAMT => 1 + size,
        KIND_BINARY => 1 + size.div_ceil(WORD),
        KIND_BIGINT | KIND_FLOAT => 2,
        k => unreachable!("object kind {k} in header {h:#x}"),
    }
}

/// Terms hold addresses as integers: expose the pointer's provenance so that `ptr_at` may turn
/// the integer back into a usable pointer.
fn addr_of(p: *const u64) -> u64 {
    p.expose_provenance() as u64
}

fn ptr_at(addr: u64) -> *mut u64 {
    ptr::with_exposed_provenance_mut(addr as usize)
}

/// Asks the CPU to bring the `LINES` cache lines from the one that holds address `at` into its
/// caches, without waiting for them: schedulers use it for a process they will most likely
/// touch some slices later. Any address will do, even one no longer allocated: nothing is read.
/// A count fixed at compile time: the prefetches are a straight line of instructions (a loop
/// over a byte count cost a ring hop 170 instructions).
#[inline(always)]
pub(crate) fn prefetch<const LINES: usize>(at: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let first = at & !63;
        for line in 0..LINES {
            let p: *const i8 = ptr::without_provenance(first.wrapping_add(line * 64));
            // SAFETY: a prefetch is a hint: it never faults and reads nothing into the
            // program's state, whatever the address. SSE, which it needs, is part of the
            // x86_64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
        }
    }
    #[cfg(any(not(target_arch = "x86_64"), miri))]
    let _ = at;
}

/// Hashes an object's address for the copiers' tables: addresses are distinct and 8-aligned,
/// so one multiply spreads them (and, unlike the default hasher, it needs no per-table random
/// state: a copy that never uses its table pays nothing for it).
#[derive(Default, Clone, Copy)]
pub(crate) struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, addr: u64) {
        self.0 = (addr >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type AddrMap<V> = HashMap<u64, V, BuildHasherDefault<AddrHasher>>;
pub(crate) type AddrSet = HashSet<u64, BuildHasherDefault<AddrHasher>>;

// ---------------------------------------------------------------------------------------------
// Reading objects (used by term.rs)

/// A boxed object's contents. The `'static` is invariant 4's promise, kept by the VM.
pub(crate) enum Boxed {
    Tuple(&'static [Term]),
    Binary(&'static [u8]),
    Int(i64),
    Float(f64),
    /// The function reference, the arity, the captured values.
    Closure(&'static [Term]),
    /// A map's fields (see `map.rs`).
    Map(&'static [Term]),
    /// A hash-trie node's fields: the bitmap, then the entries.
    Hamt(&'static [Term]),
}

/// The object a boxed term points to; `None` if `t` is not a boxed term.
pub(crate) fn read_boxed(t: Term) -> Option<Boxed> {
    if !t.is_boxed() {
        return None;
    }
    let p = ptr_at(t.addr());
    // SAFETY: a boxed term points to the initialised, 8-aligned header word of an object
    // (invariant 1) that is still alive (invariant 4).
    let h = unsafe { p.read() };
    debug_assert_eq!(h & LOW3, HEADER_TAG, "{t:?} does not point to a header");
    let size = header_size(h);
    Some(match header_kind(h) {
        // SAFETY: a tuple's header is followed by `size` initialised term words (invariant 1),
        // alive and unchanged while the term is used (invariants 3, 4). Term is
        // `repr(transparent)` over u64, so the words are valid `Term`s.
        KIND_TUPLE => Boxed::Tuple(unsafe { std::slice::from_raw_parts(p.add(1).cast(), size) }),
        KIND_CLOSURE => {
            // SAFETY: as a tuple's: a closure's header is followed by `size` term words.
            Boxed::Closure(unsafe { std::slice::from_raw_parts(p.add(1).cast(), size) })
        }
        // SAFETY: as a tuple's: a map's header is followed by `size` term words.
        KIND_MAP => Boxed::Map(unsafe { std::slice::from_raw_parts(p.add(1).cast(), size) }),
        // SAFETY: as a tuple's: a trie node's header is followed by `size` term words.
        KIND_HAMT => Boxed::Hamt(unsafe { std::slice::from_raw_parts(p.add(1).cast(), size) }),
        // SAFETY: as above: a binary's header is followed by its `size` initialised bytes.
        KIND_BINARY => Boxed::Binary(unsafe { std::slice::from_raw_parts(p.add(1).cast(), size) }),
        // SAFETY: as above: a float's header is followed by its bits.
        KIND_FLOAT => Boxed::Float(f64::from_bits(unsafe { p.add(1).read() })),
        // SAFETY: as above: a big integer's header is followed by its value word.
        _ => Boxed::Int(unsafe { p.add(1).read() } as i64),
    })
}

/// Head and tail of the cell a cons term points to; `None` if `t` is not a cons term.
pub(crate) fn read_cons(t: Term) -> Option<(Term, Term)> {
    if !t.is_cons() {
        return None;
    }
    let p = ptr_at(t.addr());
    // SAFETY: a cons term points to two initialised words (invariant 1), alive (invariant 4).
    let (head, tail) = unsafe { (p.read(), p.add(1).read()) };
    Some((Term::from_raw(head), Term::from_raw(tail)))
}

// ---------------------------------------------------------------------------------------------
// Heap

/// A process's heap: one bump arena holding its tuples, list cells, binaries and big integers.
/// Memory is reclaimed only by [`Heap::collect`] (or by dropping the heap when the process
/// exits).
///
/// GC policy (generational, as the BEAM's): objects are allocated young, in `arena`; a
/// collection copies what survives into the old generation. Most collections are *minor*: they
/// copy only the young objects reachable from the roots, and leave the old generation as it
/// is, unread (it cannot point to young objects: invariant 4). A collection is *major*, and
/// copies everything live into a fresh old generation, once the old generation has doubled
/// since the last major one, when the heap passed its cap, or for a purge.
///
/// [`Heap::needs_gc`] says yes once the young bytes pass the limit, `max(MIN_GC_LIMIT, live
/// bytes after the last collection)`, the young generation being one chunk of that size (see
/// [`Young::alloc_slow`]): the heap holds at most about twice its live data, as a
/// semispace collector's would, and a large live set is copied once per doubling of the old
/// generation, not at every collection. Both kinds of work are paid for by at least as many
/// bytes allocated since: amortised O(1) per allocated word whatever the heap grows to.
pub struct Heap {
    /// The young generation, with its bump pointer here rather than in bumpalo's chunk footer.
    young: Young,
    /// Arenas adopted with [`Heap::adopt`]: messages another scheduler built for this process.
    /// They belong to this heap like `arena` does, and are from-space at the next collection.
    /// Boxed: one word for the many heaps that never adopt anything.
    #[allow(clippy::box_collection)]
    fragments: Option<Box<Vec<Bump>>>,
    /// The old generation: what survived a collection. `None` until the first (one word for
    /// the many heaps that never collect).
    old: Option<Box<Old>>,
    /// Bytes of objects in the heap, both generations: live after the last collection plus
    /// allocated or adopted since.
    used: usize,
    /// `needs_gc` once `used` passes this: the old generation's bytes plus what the young
    /// generation may take.
    limit: usize,
    /// `needs_gc` also once `used` passes this: the most the owner may hold before its limits
    /// are checked (see [`Heap::set_cap`]).
    cap: usize,
}

impl Default for Heap {
    fn default() -> Heap {
        Heap::new()
    }
}

/// A heap's young generation: a bumpalo arena, and the block of it that objects are bumped
/// into. The bump pointer lives in the heap, that is in the first cache lines of the process
/// (see `Process`): a message to a process at 10,000 processes costs no read of the chunk's
/// footer, a cache miss of its own at every send. A block is the rest of bumpalo's current
/// chunk, carved out whole when an object does not fit the block before; what is left at the
/// end of a block is never used (the collection that frees the young generation frees it too).
/// Created empty: `Bump::new()` allocates nothing until the first object.
///
/// `end` is where the block ends for an object that must leave no collection due: the block's
/// end, or sooner where the heap would pass its collection limit (`top + limit - used`), so
/// that one compare makes both checks (the threaded path's templates). Invariant:
/// `top <= end <= block_end`, and `end - top` is at most the bytes the heap may take before a
/// collection falls due; it holds while an allocation moves `top` and the heap's `used`
/// together, and the heap calls [`Young::clamp`] whenever it changes its limit or `used`
/// otherwise.
#[derive(Default)]
struct Young {
    arena: Bump,
    /// The block: the next free address, the end for objects that leave no collection due,
    /// and the end of the block (exposed addresses; `0, 0, 0`: none).
    top: usize,
    end: usize,
    block_end: usize,
}

impl Young {
    /// `words` uninitialised, 8-aligned words, counted in `used`. `limits`: the heap's
    /// collection limit (what `used` may reach before a collection falls due) and the bytes the
    /// young generation may take (the size of its first chunk).
    #[inline]
    fn alloc(&mut self, used: &mut usize, words: usize, limits: (usize, usize)) -> *mut u64 {
        debug_assert!(words > 0);
        match self.alloc_in_block(used, words) {
            Some(p) => p,
            None => self.alloc_slow(used, words, limits),
        }
    }

    /// Puts `end` where the heap, holding `used` bytes, would pass `limit` (or at the block's
    /// end, if sooner).
    #[inline]
    fn clamp(&mut self, used: usize, limit: usize) {
        self.end = self
            .block_end
            .min(self.top.saturating_add(limit.saturating_sub(used)));
    }

    /// [`Young::alloc`] if the block has room and the heap stays within its collection limit,
    /// else `None` (and nothing done).
    #[inline]
    fn alloc_in_block(&mut self, used: &mut usize, words: usize) -> Option<*mut u64> {
        // (In words, so that no size can overflow.)
        if words <= (self.end - self.top) / WORD {
            let p = self.top;
            self.top += words * WORD;
            *used += words * WORD;
            return Some(ptr_at(p as u64));
        }
        None
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(
        &mut self,
        used: &mut usize,
        words: usize,
        (limit, room): (usize, usize),
    ) -> *mut u64 {
        // Past the collection limit but inside the block: bumped all the same (the collection
        // falls due, and comes right after the instruction).
        if words <= (self.block_end - self.top) / WORD {
            let p = self.top;
            self.top += words * WORD;
            *used += words * WORD;
            self.clamp(*used, limit);
            return ptr_at(p as u64);
        }
        // A young generation's first chunk holds what it may take before the next collection,
        // and a little more for the object that takes it past (bumpalo's chain of doubling
        // chunks would end at twice that): a process holds no more memory than its policy
        // allows, and its next collection keeps that one chunk for the next young objects.
        if self.arena.allocated_bytes() == 0 {
            self.arena = Bump::with_capacity(young_chunk_bytes(room).max(words * WORD));
        }
        let p = alloc_words(&self.arena, used, words);
        // The rest of the chunk the object went to (bumpalo makes a larger one when it does not
        // fit) becomes the block, unless it is too small to be worth it.
        let rest = self.arena.chunk_capacity() / WORD;
        if rest >= 8 {
            let mut carved = 0;
            let block = alloc_words(&self.arena, &mut carved, rest);
            self.top = addr_of(block) as usize;
            self.block_end = self.top + carved;
        }
        self.clamp(*used, limit);
        p
    }
}

/// A heap's old generation.
#[derive(Default)]
struct Old {
    arena: Bump,
    /// The address ranges of `arena`'s chunks (the allocated part of each), for a minor
    /// collection's "is this object old?": a chunk or two, as bumpalo doubles chunk sizes.
    ranges: SmallVec<[(u64, u64); 2]>,
    /// Bytes of objects in `arena`.
    used: usize,
    /// The next collection is major once `used` passes this: twice what the last major one
    /// left (or [`MIN_OLD_LIMIT`]).
    limit: usize,
    /// Collections so far, minor and major (the heap's, kept here: one word less in every
    /// process, which has no old generation until it first collects).
    collections: u64,
    /// Major collections so far.
    majors: u64,
    /// Minor collections since the last major one: after `FULLSWEEP_AFTER` of them the next is
    /// major, so that old objects that died are freed even when the old generation stops
    /// growing.
    minors: u32,
}

/// See [`Old::minors`] (the BEAM's `fullsweep_after`, smaller than its default of 65,535: a
/// process's old garbage is bounded by time as well as by size). Each minor collection comes
/// after at least the live data's size in new objects, so a full sweep, a copy of the live
/// data, costs a 256th of a copy per byte allocated (64 made them half of GC churn's collection
/// time: 11.7 ms against 5.3 of 85 ms).
const FULLSWEEP_AFTER: u32 = 256;

impl Old {
    fn contains(&self, addr: u64) -> bool {
        in_ranges(&self.ranges, addr)
    }
}

/// Is `addr` in one of the `(start, length)` ranges?
#[inline]
fn in_ranges(ranges: &[(u64, u64)], addr: u64) -> bool {
    ranges
        .iter()
        .any(|&(start, len)| addr.wrapping_sub(start) < len)
}

/// The `(start, length)` ranges of the allocated part of `arena`'s chunks.
fn chunk_ranges(arena: &Bump) -> SmallVec<[(u64, u64); 2]> {
    // SAFETY: nothing is allocated in `arena` while the iterator lives; no chunk memory is
    // read through the pointers (we keep addresses only).
    let chunks = unsafe { arena.iter_allocated_chunks_raw() };
    chunks
        .map(|(start, len)| (start.addr() as u64, len as u64))
        .collect()
}

/// Allocates `words` uninitialised, 8-aligned words in `arena` and counts them in `used`.
fn alloc_words(arena: &Bump, used: &mut usize, words: usize) -> *mut u64 {
    debug_assert!(words > 0);
    let layout = Layout::array::<u64>(words).expect("object too large");
    *used += words * WORD;
    arena.alloc_layout(layout).as_ptr().cast()
}

/// Where a copier allocates: a heap's young generation (a message copied into its receiver's
/// heap), or a collection's to-space. Either counts the bytes it gives out.
trait Space {
    fn alloc(&mut self, words: usize) -> *mut u64;
}

/// (The young generation, the heap's `used`, and its limits as [`Young::alloc`] takes them.)
impl Space for (&mut Young, &mut usize, (usize, usize)) {
    #[inline]
    fn alloc(&mut self, words: usize) -> *mut u64 {
        self.0.alloc(self.1, words, self.2)
    }
}

impl Space for (&Bump, &mut usize) {
    #[inline]
    fn alloc(&mut self, words: usize) -> *mut u64 {
        alloc_words(self.0, self.1, words)
    }
}

impl Heap {
    /// An empty heap. Allocates nothing (a VM may hold a million of them).
    pub fn new() -> Heap {
        Heap {
            young: Young::default(),
            fragments: None,
            old: None,
            used: 0,
            limit: MIN_GC_LIMIT,
            cap: usize::MAX,
        }
    }

    #[inline]
    fn alloc(&mut self, words: usize) -> *mut u64 {
        let limits = (self.gc_limit_now(), self.young_room());
        self.young.alloc(&mut self.used, words, limits)
    }

    /// The bytes the young generation may take before [`Heap::needs_gc`] says yes.
    #[inline]
    fn young_room(&self) -> usize {
        self.limit.min(self.cap).saturating_sub(self.used)
    }

    /// What `used` may reach before [`Heap::needs_gc`] says yes: the limit or the cap; with
    /// the feature `gc-stress`, the old generation's bytes (anything allocated since the last
    /// collection), as long as the live data is under [`STRESS_LIVE_LIMIT`].
    #[inline]
    fn gc_limit_now(&self) -> usize {
        if cfg!(feature = "gc-stress") && self.old_bytes() < STRESS_LIVE_LIMIT {
            self.old_bytes()
        } else {
            self.limit.min(self.cap)
        }
    }

    /// Brings the young block's `end` up to date after the limit, the cap or `used` changed
    /// other than by an allocation (see [`Young`]).
    #[inline(never)]
    fn clamp_young(&mut self) {
        let limit = self.gc_limit_now();
        self.young.clamp(self.used, limit);
    }

    /// A tuple of the given elements.
    pub fn tuple(&mut self, elems: &[Term]) -> Term {
        let p = self.alloc(1 + elems.len());
        // SAFETY: `p` is a fresh allocation of 1 + len words: we initialise all of them. `elems`
        // is outside it (fresh memory is not aliased) and Term is `repr(transparent)` over u64.
        unsafe {
            p.write(header(KIND_TUPLE, elems.len()));
            ptr::copy_nonoverlapping(elems.as_ptr().cast::<u64>(), p.add(1), elems.len());
        }
        Term::boxed_at(addr_of(p))
    }

    /// A tuple whose element `i` is `f(i)`, built in place (no temporary vector).
    pub fn tuple_from_fn(&mut self, arity: usize, mut f: impl FnMut(usize) -> Term) -> Term {
        let p = self.alloc(1 + arity);
        for i in 0..arity {
            let v = f(i);
            // SAFETY: `p` is a fresh allocation of 1 + arity words and 1 + i < 1 + arity. (If `f`
            // panics the half-written object is unreachable: no term points to it.)
            unsafe { p.add(1 + i).write(v.raw()) };
        }
        // SAFETY: as above; word 0 is the header.
        unsafe { p.write(header(KIND_TUPLE, arity)) };
        Term::boxed_at(addr_of(p))
    }

    /// An object of term fields whose field `i` is `f(i)`, built in place.
    fn fields_from_fn(&mut self, kind: u64, n: usize, mut f: impl FnMut(usize) -> Term) -> Term {
        debug_assert!(has_term_fields(kind));
        let p = self.alloc(1 + n);
        for i in 0..n {
            let v = f(i);
            // SAFETY: `p` is a fresh allocation of 1 + n words and 1 + i < 1 + n. (If `f`
            // panics the half-written object is unreachable: no term points to it.)
            unsafe { p.add(1 + i).write(v.raw()) };
        }
        // SAFETY: as above; word 0 is the header.
        unsafe { p.write(header(kind, n)) };
        Term::boxed_at(addr_of(p))
    }

    /// A map object of `n` fields, field `i` being `f(i)`. Only `map.rs` makes maps: it keeps
    /// their invariants (key order, canonical tries).
    pub(crate) fn map_from_fn(&mut self, n: usize, f: impl FnMut(usize) -> Term) -> Term {
        self.fields_from_fn(KIND_MAP, n, f)
    }

    /// A copy of the hash-trie node whose fields are `fields`, with field `i` replaced by `t`
    /// (for `map.rs`: the step of a put along its path). One block copy.
    pub(crate) fn hamt_replacing(&mut self, fields: &[Term], i: usize, t: Term) -> Term {
        assert!(i < fields.len());
        let p = self.alloc(1 + fields.len());
        // SAFETY: `p` is a fresh allocation of 1 + n words: the header, then the n fields copied
        // from `fields` (outside the fresh block; Term is `repr(transparent)` over u64), then
        // field i (< n, checked) overwritten.
        unsafe {
            p.write(header(KIND_HAMT, fields.len()));
            ptr::copy_nonoverlapping(fields.as_ptr().cast::<u64>(), p.add(1), fields.len());
            p.add(1 + i).write(t.raw());
        }
        Term::boxed_at(addr_of(p))
    }

    /// A hash-trie node of `n` fields (for `map.rs`).
    pub(crate) fn hamt_from_fn(&mut self, n: usize, f: impl FnMut(usize) -> Term) -> Term {
        self.fields_from_fn(KIND_HAMT, n, f)
    }

    /// A copy of tuple `t` with element `i` replaced by `v` (`setelem`); `None` if `t` is not a
    /// tuple or `i` is out of range.
    pub fn tuple_set(&mut self, t: Term, i: usize, v: Term) -> Option<Term> {
        let Boxed::Tuple(elems) = read_boxed(t)? else {
            return None;
        };
        if i >= elems.len() {
            return None;
        }
        Some(self.tuple_from_fn(elems.len(), |k| if k == i { v } else { elems[k] }))
    }

    /// The list cell `[head | tail]`.
    pub fn cons(&mut self, head: Term, tail: Term) -> Term {
        let p = self.alloc(2);
        // SAFETY: `p` is a fresh allocation of 2 words: we initialise both.
        unsafe {
            p.write(head.raw());
            p.add(1).write(tail.raw());
        }
        Term::cons_at(addr_of(p))
    }

    /// Builds a template's image (see [`Image`]) in one block: each word written once, in
    /// order, the registers' values read from `regs`.
    pub(crate) fn build_image(&mut self, image: &Image, regs: &[Term]) -> Term {
        assert!(usize::from(image.registers()) <= regs.len());
        // SAFETY: checked just above.
        unsafe { self.build_image_from(image, regs.as_ptr()) }
    }

    /// [`Heap::build_image`] with the registers read through `regs` unchecked (the threaded
    /// path, whose register file is proven long enough).
    ///
    /// # Safety
    /// `regs` points to at least `image.registers()` initialised terms.
    pub(crate) unsafe fn build_image_from(&mut self, image: &Image, regs: *const Term) -> Term {
        let words = image.words.len();
        if words > SMALL_IMAGE {
            // SAFETY: the caller's guarantee.
            return unsafe { self.build_large_image(image, regs) };
        }
        let p = self.alloc(words);
        // SAFETY: the caller's guarantee; `p` is a fresh block of the image's size;
        // `build_small` is made for the image's counts.
        unsafe { (image.build_small)(image, regs, p) }
    }

    /// [`Heap::build_image_from`] when it makes no call: a small image that fits the young
    /// block as it is and leaves no collection due (`None` otherwise: see [`Young`]). The
    /// threaded path's, so that its handler saves no register.
    ///
    /// # Safety
    /// As [`Heap::build_image_from`]; `RELS` and `REGS` as [`build_small_image`]'s.
    #[inline(always)]
    pub(crate) unsafe fn build_image_inline<const RELS: usize, const REGS: usize>(
        &mut self,
        image: &Image,
        regs: *const Term,
    ) -> Option<Term> {
        let words = image.words.len();
        // (Counts other than `ANY` are a small image's: see `Image::small_patches`.)
        debug_assert!((RELS == ANY && REGS == ANY) || words <= SMALL_IMAGE);
        if (RELS == ANY || REGS == ANY) && words > SMALL_IMAGE {
            return None;
        }
        let p = self.young.alloc_in_block(&mut self.used, words)?;
        // SAFETY: the caller's guarantee; `p` is a fresh block of the image's size.
        Some(unsafe { build_small_image::<RELS, REGS>(image, regs, p) })
    }

    /// [`Heap::build_image_from`] of an image of more than [`SMALL_IMAGE`] words: one copy,
    /// then the patches from their lists. (Out of line: the small images' path stays short.)
    ///
    /// # Safety
    /// As [`Heap::build_image_from`].
    #[inline(never)]
    unsafe fn build_large_image(&mut self, image: &Image, regs: *const Term) -> Term {
        let words = image.words.len();
        let p = self.alloc(words);
        let base = addr_of(p);
        // SAFETY: as in `build_image_from`.
        unsafe {
            ptr::copy_nonoverlapping(image.words.as_ptr(), p, words);
            for &i in image.relative.iter() {
                *p.add(i as usize) += base;
            }
            for &(i, r) in image.regs.iter() {
                // (r < image.registers(): the caller's guarantee.)
                p.add(i as usize).write((*regs.add(r as usize)).raw());
            }
        }
        image.root(base)
    }

    /// `[items... | tail]` (a proper list when `tail` is `[]`); `tail` itself when `items` is
    /// empty. The cells are allocated in one block.
    pub fn list_from(&mut self, items: &[Term], tail: Term) -> Term {
        if items.is_empty() {
            return tail;
        }
        let n = items.len();
        let p = self.alloc(2 * n);
        for (k, item) in items.iter().enumerate() {
            // SAFETY: `p` is a fresh allocation of 2n words; cell k is words 2k and 2k + 1 < 2n.
            unsafe {
                let next = if k + 1 < n {
                    Term::cons_at(addr_of(p.add(2 * k + 2)))
                } else {
                    tail
                };
                p.add(2 * k).write(item.raw());
                p.add(2 * k + 1).write(next.raw());
            }
        }
        Term::cons_at(addr_of(p))
    }

    /// A binary holding `bytes`.
    pub fn binary(&mut self, bytes: &[u8]) -> Term {
        self.binary_concat(&[bytes])
    }

    /// A binary holding the concatenation of `parts` (`concat`, `to_str`), built in place.
    pub fn binary_concat(&mut self, parts: &[&[u8]]) -> Term {
        let len: usize = parts.iter().map(|b| b.len()).sum();
        let words = 1 + len.div_ceil(WORD);
        let p = self.alloc(words);
        // SAFETY: `p` is a fresh allocation of `words` words: the header, then room for `len`
        // bytes rounded up to whole words. We zero the last word first so that the padding is
        // initialised, then copy the parts one after another (their total is `len`); they are
        // outside the fresh allocation.
        unsafe {
            p.write(header(KIND_BINARY, len));
            if words > 1 {
                p.add(words - 1).write(0);
            }
            let mut dst = p.add(1).cast::<u8>();
            for part in parts {
                ptr::copy_nonoverlapping(part.as_ptr(), dst, part.len());
                dst = dst.add(part.len());
            }
        }
        Term::boxed_at(addr_of(p))
    }

    /// The integer `i`: a small integer when it fits 60 bits, else a boxed one.
    pub fn int(&mut self, i: i64) -> Term {
        if let Some(t) = Term::small_int(i) {
            return t;
        }
        let p = self.alloc(2);
        // SAFETY: `p` is a fresh allocation of 2 words: we initialise both.
        unsafe {
            p.write(header(KIND_BIGINT, 0));
            p.add(1).write(i as u64);
        }
        Term::boxed_at(addr_of(p))
    }

    /// A closure of function `fun` (an entry of the program's function table) taking `arity`
    /// arguments, with `captured` values passed after them.
    pub fn closure(&mut self, fun: u32, arity: u8, captured: &[Term]) -> Term {
        let p = self.alloc(3 + captured.len());
        // SAFETY: `p` is a fresh allocation of 3 + n words: we initialise all of them, the
        // header, two immediates and the captured terms (outside the fresh block).
        unsafe {
            p.write(header(KIND_CLOSURE, 2 + captured.len()));
            p.add(1).write(Term::fun(fun).raw());
            p.add(2).write(
                Term::small_int(i64::from(arity))
                    .expect("a small arity")
                    .raw(),
            );
            for (i, t) in captured.iter().enumerate() {
                p.add(3 + i).write(t.raw());
            }
        }
        Term::boxed_at(addr_of(p))
    }

    /// The float `f` (finite: the instructions that make floats crash `:badarith` on infinities
    /// and NaN).
    pub fn float(&mut self, f: f64) -> Term {
        debug_assert!(f.is_finite(), "{f}");
        let p = self.alloc(2);
        // SAFETY: `p` is a fresh allocation of 2 words: we initialise both.
        unsafe {
            p.write(header(KIND_FLOAT, 0));
            p.add(1).write(f.to_bits());
        }
        Term::boxed_at(addr_of(p))
    }

    /// A deep copy of `t` (a term of another heap, of this one, or of the literal area) in this
    /// heap, if it takes at most `max_words` words: copy-on-send. Literal objects are shared,
    /// not copied. The source is only read, never marked.
    ///
    /// `src_words` bounds the words of the objects `t` reaches in its own heap (that heap's
    /// [`Heap::used_words`]). The term is copied as a tree (as Erlang copies messages) while
    /// the copy stays within `src_words` and `max_words`. A tree form larger than its source
    /// can only come from shared objects (a DAG: `{r1, r1}` nested 40 deep has 2^40 leaves in
    /// 40 tuples); such a term is measured as a DAG and copied as one, each object once, so the
    /// copy is never larger than the original, and nothing larger than `max_words` is ever
    /// built. Iterative: a list of any length is fine.
    pub fn copy_into(
        &mut self,
        t: Term,
        lits: &Literals,
        src_words: usize,
        max_words: usize,
    ) -> Result<Term, TooBig> {
        if !t.is_pointer() || lits.contains(t.addr()) {
            return Ok(t);
        }
        // The commonest message: a tuple of immediates and literals, one object.
        if let Some(Boxed::Tuple(elems)) = read_boxed(t) {
            if elems
                .iter()
                .all(|e| !e.is_pointer() || lits.contains(e.addr()))
            {
                if 1 + elems.len() > max_words {
                    return Err(TooBig);
                }
                return Ok(self.tuple(elems));
            }
        }
        // A list whose elements are immediates or literals (a list of numbers, of atoms): its
        // cells in one block, filled in one loop.
        if t.is_cons() {
            if let Some(copy) = self.copy_flat_list(t, lits, src_words.min(max_words)) {
                return copy;
            }
        }
        // As a tree first, in one pass, stopping once it passes what a tree of this source can
        // take. (What a stopped copy allocated is unreachable garbage for the next collection.)
        let mut copier: Copier<'_, TREE> = Copier {
            lits,
            old: SmallVec::new(),
            pending: SmallVec::new(),
            copies: AddrMap::default(),
            budget: src_words.min(max_words),
            purge: None,
        };
        let limits = (self.gc_limit_now(), self.young_room());
        if let Some(copy) = copier.copy(&mut (&mut self.young, &mut self.used, limits), None, t) {
            return Ok(copy);
        }
        // Too large for a tree: a DAG, or too large altogether.
        let mut seen = AddrSet::default();
        if measure(t, lits, max_words, &mut seen).is_none() {
            return Err(TooBig);
        }
        let mut copier: Copier<'_, DAG> = Copier {
            lits,
            old: SmallVec::new(),
            pending: SmallVec::new(),
            copies: AddrMap::with_capacity_and_hasher(seen.len(), Default::default()),
            budget: usize::MAX,
            purge: None,
        };
        copier
            .copy(&mut (&mut self.young, &mut self.used, limits), None, t)
            .ok_or(TooBig)
    }

    /// `copy_into` of list `t` if every element is an immediate or a literal (the tail too, at
    /// the end): `None` when it is not such a list (the general copy then takes it), else the
    /// copy of its cells in one block, or `TooBig` past `room` words. (No element is shared with
    /// another, so the tree copy is the DAG copy: one count decides.)
    fn copy_flat_list(
        &mut self,
        t: Term,
        lits: &Literals,
        room: usize,
    ) -> Option<Result<Term, TooBig>> {
        let flat = |e: Term| !e.is_pointer() || lits.contains(e.addr());
        let mut cells = 0usize;
        let mut at = t;
        // Cells one after the other, each tail the next cell (as `list_run` counts them, and
        // for the same reasons: no wait on each load, no range check of the tail).
        let mut sequential = true;
        let most = room / 2;
        loop {
            // SAFETY: `at` is a cell (`t`, or the cell right after a cell whose tail points to
            // it): two initialised words, alive.
            let (head, tail) = unsafe {
                let p = ptr_at(at.addr());
                (Term::from_raw(p.read()), p.add(1).read())
            };
            if !flat(head) {
                return None;
            }
            cells += 1;
            if cells > most {
                return Some(Err(TooBig));
            }
            let next = at.addr() + 2 * WORD as u64;
            if tail != Term::cons_at(next).raw() {
                break;
            }
            at = Term::cons_at(next);
        }
        // The rest of the list, after `at` (the last cell counted).
        loop {
            // SAFETY: `at` is a cell: two initialised words, alive.
            let tail = Term::from_raw(unsafe { ptr_at(at.addr()).add(1).read() });
            if !tail.is_cons() || lits.contains(tail.addr()) {
                if !flat(tail) {
                    return None;
                }
                break;
            }
            at = tail;
            // SAFETY: as above, `at` being a cell now.
            if !flat(Term::from_raw(unsafe { ptr_at(at.addr()).read() })) {
                return None;
            }
            sequential = false;
            cells += 1;
            if cells > most {
                return Some(Err(TooBig));
            }
        }
        let dst = self.alloc(2 * cells);
        if sequential {
            // SAFETY: `cells` cells one after the other from `t` (checked above); `dst` has
            // 2 * cells fresh words.
            unsafe {
                let src = ptr_at(t.addr());
                for k in 0..cells - 1 {
                    let cell = dst.add(2 * k);
                    cell.write(src.add(2 * k).read());
                    cell.add(1).write(Term::cons_at(addr_of(cell.add(2))).raw());
                }
                let last = 2 * (cells - 1);
                dst.add(last).write(src.add(last).read());
                dst.add(last + 1).write(src.add(last + 1).read());
            }
            return Some(Ok(Term::cons_at(addr_of(dst))));
        }
        // SAFETY: the loops above walked `cells` cells from `t`, so `src` is a cell each time
        // round (two initialised words, invariant 1) and the last one's tail is what it found;
        // `cell` is cell k of the fresh block of 2 * cells words, and the next one (k + 1 <
        // cells) lies in it. (No tag is checked again: about half the instructions per cell.)
        unsafe {
            let mut src = ptr_at(t.addr());
            let mut cell = dst;
            for _ in 1..cells {
                cell.write(src.read());
                cell.add(1).write(Term::cons_at(addr_of(cell.add(2))).raw());
                src = ptr_at(Term::from_raw(src.add(1).read()).addr());
                cell = cell.add(2);
            }
            cell.write(src.read());
            cell.add(1).write(src.add(1).read());
        }
        Some(Ok(Term::cons_at(addr_of(dst))))
    }

    /// A heap whose first chunk holds about `bytes` (a fragment for one message: the
    /// allocator's default first chunk would be many times a small message).
    pub fn with_capacity(bytes: usize) -> Heap {
        Heap {
            young: Young {
                arena: Bump::with_capacity(bytes),
                ..Young::default()
            },
            ..Heap::new()
        }
    }

    /// `{:DOWN, r, :process, who, reason}` (spec §5), `reason` a term of this heap.
    pub fn down_message(&mut self, r: u64, who: Term, reason: Term) -> Term {
        use crate::atoms::atom;
        self.tuple(&[
            Term::atom(atom::DOWN),
            Term::reference(r),
            Term::atom(atom::PROCESS),
            who,
            reason,
        ])
    }

    /// Makes `frag`'s objects part of this heap: a message (or exit reason) built in a heap of
    /// its own by the sender, on another thread, is taken over by its receiver without a copy.
    /// Terms into `frag` become terms of this heap (invariant 4), and its memory is freed by
    /// this heap's next collection, which copies what is still live out of it.
    pub fn adopt(&mut self, frag: Heap) {
        if frag.used == 0 {
            return;
        }
        // What the fragment holds from the allocator counts, not just its objects: a small
        // message in a chunk of its own must still bring the next collection closer.
        self.used += frag.used.max(frag.arena_bytes());
        self.clamp_young();
        let fragments = self.fragments.get_or_insert_with(Default::default);
        fragments.push(frag.young.arena);
        fragments.extend(frag.fragments.into_iter().flat_map(|f| f.into_iter()));
        // (A message heap is never collected, so it has no old generation; if it had one, its
        // objects would be young here like the rest.)
        fragments.extend(frag.old.map(|o| o.arena));
    }

    /// Words of objects in the arena ([`Heap::used_bytes`] in words).
    pub fn used_words(&self) -> usize {
        self.used / WORD
    }

    /// Bytes of objects in the arena: what survived the last collection plus what was
    /// allocated since.
    /// The address the next young object will most likely take (a prefetching hint).
    #[inline]
    pub(crate) fn next_alloc_at(&self) -> usize {
        self.young.top
    }

    pub fn used_bytes(&self) -> usize {
        self.used
    }

    /// Bytes the arena holds from the system allocator (its chunks, footers excluded).
    pub fn arena_bytes(&self) -> usize {
        self.young.arena.allocated_bytes()
            + self.old.as_ref().map_or(0, |o| o.arena.allocated_bytes())
            + self
                .fragments
                .iter()
                .flat_map(|f| f.iter())
                .map(Bump::allocated_bytes)
                .sum::<usize>()
    }

    /// How many collections this heap has been through.
    pub fn collections(&self) -> u64 {
        self.old.as_ref().map_or(0, |o| o.collections)
    }

    /// How many of them were major (see the policy on [`Heap`]).
    pub fn major_collections(&self) -> u64 {
        self.old.as_ref().map_or(0, |o| o.majors)
    }

    /// The current collection threshold in bytes (see the policy on [`Heap`]).
    pub fn gc_limit(&self) -> usize {
        self.limit
    }

    /// Should the VM collect now? True once `used_bytes` passed the limit; with the feature
    /// `gc-stress`, true whenever anything was allocated since the last collection, as long as
    /// the live data is under [`STRESS_LIVE_LIMIT`] (beyond it, collecting after every
    /// allocation would copy a large live set each time, quadratic in the program's run, so the
    /// normal policy applies).
    pub fn needs_gc(&self) -> bool {
        self.used > self.gc_limit_now()
    }

    /// Would [`Heap::needs_gc`] still say no after `bytes` more were allocated? (What the
    /// threaded path asks before it builds a term that does not fit the young block as it is,
    /// so that it never leaves a collection due: the general path collects right after an
    /// allocation that calls for it.)
    pub(crate) fn fits_without_gc(&self, bytes: usize) -> bool {
        self.used + bytes <= self.gc_limit_now()
    }

    /// Bytes of objects in the old generation.
    pub fn old_bytes(&self) -> usize {
        self.old.as_ref().map_or(0, |o| o.used)
    }

    /// Makes [`Heap::needs_gc`] say yes once the heap holds more than `bytes`, whatever the
    /// collection policy says: the VM sets it to what the owner may still hold under its
    /// limits, so that a heap that grows past them is collected, and checked, at once.
    pub fn set_cap(&mut self, bytes: usize) {
        let before = self.limit.min(self.cap);
        self.cap = bytes;
        // (Set at every slice, and nearly always above the limit: then nothing moves.)
        if self.limit.min(bytes) != before {
            self.clamp_young();
        }
    }

    /// Starts a collection: objects reachable from the terms given to [`Collector::copy`] are
    /// copied into the old generation (the young ones only, in a minor collection; all of them,
    /// into a fresh one, in a major collection: see the policy on [`Heap`]); when the collector
    /// is finished (or dropped) what was copied from is freed, so every term not passed through
    /// `copy` is dead from then on. See [`Collector`].
    pub fn collect<'a>(&'a mut self, lits: &'a Literals) -> Collector<'a> {
        self.collector(lits, None)
    }

    /// [`Heap::collect`] for a purge: `lits` are the literals that stay; objects of
    /// `purge.area` are copied into the heap like heap objects, and `purge.found` is set if a
    /// root reaches a function of the purged code.
    pub fn collect_purging<'a>(
        &'a mut self,
        lits: &'a Literals,
        purge: &'a Purge<'a>,
    ) -> Collector<'a, PURGE> {
        self.collector(lits, Some(purge))
    }

    fn collector<'a, const MODE: u8>(
        &'a mut self,
        lits: &'a Literals,
        purge: Option<&'a Purge<'a>>,
    ) -> Collector<'a, MODE> {
        // Minor, unless the old generation doubled, the heap passed its cap, or a purge (which
        // must see every object).
        let minor = MODE == COLLECT
            && self.used <= self.cap
            && self
                .old
                .as_ref()
                .is_some_and(|o| o.used <= o.limit && o.minors < FULLSWEEP_AFTER);
        let (to, first_chunk, old) = match self.old.as_mut().filter(|_| minor) {
            // Survivors go to the end of the old generation; the old objects stay where they
            // are and are not read.
            Some(old) => (std::mem::take(&mut old.arena), 0, old.ranges.clone()),
            None => (Bump::new(), self.old_bytes(), SmallVec::new()),
        };
        Collector {
            heap: self,
            to,
            first_chunk,
            live: 0,
            minor,
            copier: Copier {
                lits,
                old,
                pending: SmallVec::new(),
                copies: AddrMap::default(),
                budget: usize::MAX,
                purge,
            },
        }
    }
}

/// A copying collection in progress (Cheney-style semispaces, with an explicit work stack
/// instead of a scan pointer, since the to-space arena is not one contiguous block).
///
/// ```ignore
/// let mut c = heap.collect(&lits);
/// for r in regs.iter_mut() { *r = c.copy(*r) }
/// c.finish();
/// ```
///
/// Each root slot must be passed exactly once, with the value it had before the collection
/// (passing the *same value* from two slots is fine and yields the same copy; passing a term
/// `copy` returned would copy the copy). Objects shared between or inside roots stay shared.
pub struct Collector<'a, const MODE: u8 = COLLECT> {
    heap: &'a mut Heap,
    /// To-space, the heap's arena once the collection ends.
    to: Bump,
    /// Size of to-space's first chunk, given to it when the first object is copied: what
    /// survived the last collection, so that in a steady state everything fits in one chunk
    /// (bumpalo adds chunks of doubling size if more survives). When nothing survives,
    /// to-space holds no memory at all (an idle process costs no heap).
    first_chunk: usize,
    /// Bytes copied to `to`.
    live: usize,
    /// A minor collection: `to` is the old generation, and old objects are left alone.
    minor: bool,
    copier: Copier<'a, MODE>,
}

impl<const MODE: u8> Collector<'_, MODE> {
    /// The term for `t` after the collection, copying everything reachable from it that is not
    /// copied yet. Immediates and literal terms come back as they are.
    #[inline]
    pub fn copy(&mut self, t: Term) -> Term {
        // Most roots of a small process are immediates (registers holding numbers, atoms,
        // pids): answered here, without a call.
        if !t.is_pointer() {
            return t;
        }
        self.copy_pointer(t)
    }

    fn copy_pointer(&mut self, t: Term) -> Term {
        if self.first_chunk > 0 && !self.copier.lits.contains(t.addr()) {
            // The first object to copy (to-space is still empty: `first_chunk` is reset).
            self.to = Bump::with_capacity(std::mem::take(&mut self.first_chunk));
        }
        self.copier
            .copy(&mut (&self.to, &mut self.live), Some(&*self.heap), t)
            .expect("a collection has no budget")
    }

    /// `copy` for every term of a slice of roots, in place.
    pub fn copy_all(&mut self, roots: &mut [Term]) {
        for r in roots {
            *r = self.copy(*r);
        }
    }

    /// Ends the collection: frees the old arena and sets the next limit (same as dropping).
    pub fn finish(self) {}
}

impl<const MODE: u8> Drop for Collector<'_, MODE> {
    /// Installs to-space as the heap's arena. Done on drop, so that a collector that is not
    /// finished (a panic half-way) still leaves the heap consistent for the roots it copied.
    fn drop(&mut self) {
        let heap = &mut *self.heap;
        let young_bytes = heap.young.arena.allocated_bytes();
        heap.fragments = None; // the adopted part of the young from-space
        let old = heap.old.get_or_insert_with(Default::default);
        // A minor collection's `to` is the old generation, grown; a major one's replaces it
        // (dropping the old from-space).
        old.arena = std::mem::take(&mut self.to);
        if self.minor {
            old.used += self.live;
            old.minors += 1;
        } else {
            old.used = self.live;
            old.limit = MIN_OLD_LIMIT.max(2 * self.live);
            old.minors = 0;
            old.majors += 1;
        }
        old.ranges = chunk_ranges(&old.arena);
        heap.used = old.used;
        heap.limit = old.used + MIN_GC_LIMIT.max(old.used);
        old.collections += 1;
        // The young from-space is empty now. After a minor collection its chunk is kept for
        // the next young objects, as the BEAM keeps a process's young heap: the next objects
        // go to memory that is mapped and in the cache (GC churn: 10% less time) rather than
        // to a fresh chunk. Only when it is one chunk of the size the young generation may
        // now take (a chain of chunks, or one too small or too large, is freed: the next
        // object gets a chunk of the right size), and not after a major collection, which
        // leaves the process with no more than it needs.
        let room = heap.young_room();
        if self.minor && (room..=2 * young_chunk_bytes(room)).contains(&young_bytes) {
            heap.young.arena.reset();
            (heap.young.top, heap.young.end, heap.young.block_end) = (0, 0, 0);
        } else {
            heap.young = Young::default();
        }
    }
}

/// One word of a template's image, as [`Image::of`] lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// A word as it is: a header, an immediate, a literal pointer.
    Word(u64),
    /// The value of a register.
    Reg(u8),
    /// A pointer to the list cell at this word of the image.
    Cons(u32),
    /// A pointer to the boxed object (a tuple) at this word of the image.
    Boxed(u32),
}

/// The words of a template whose shape is fixed (tuples and lists of registers and constants):
/// building it is one allocation, one copy of its words, and a patch of the words that hold
/// registers and pointers inside it, where a tree of cells and tuples would take one
/// allocation per object (the BEAM's `put_tuple2` and `put_list` sequences, fused). The root
/// object is at word 0.
#[derive(Clone, Debug)]
pub(crate) struct Image {
    /// The words; a pointer inside the block holds its offset in bytes, tagged.
    words: Box<[u64]>,
    /// The words that point inside the block: the block's address is added to each.
    relative: Box<[u32]>,
    /// (word, register): the words that hold a register's value.
    regs: Box<[(u32, u8)]>,
    /// For an image of at most [`SMALL_IMAGE`] words, the same as `relative` and `regs`, in
    /// bytes and inline (no pointer to follow): the first `small_rels` of `small_rel`, and the
    /// first `small_regs` of `small_reg` as (word, register).
    small_rel: [u8; SMALL_IMAGE],
    small_reg: [[u8; 2]; SMALL_IMAGE],
    small_rels: u8,
    small_regs: u8,
    /// `build_small_image` made for its counts (what the general path calls).
    build_small: SmallBuilder,
    /// One more than the highest register it reads (0 if none).
    registers: u16,
    /// The root is a list cell (else a tuple).
    cons: bool,
}

impl Image {
    /// The bytes a build of it allocates.
    pub(crate) fn bytes(&self) -> usize {
        self.words.len() * WORD
    }

    /// The registers it reads, once per word that holds one.
    pub(crate) fn registers_read(&self) -> impl Iterator<Item = u8> + '_ {
        self.regs.iter().map(|&(_, r)| r)
    }

    /// Whether a term built from it with `regs` may go to another heap as it is: every
    /// register it reads holds an immediate or a literal, nothing of the sender's heap (what
    /// a send builds from the image rather than copying).
    #[inline(always)]
    pub(crate) fn reads_only_shared(&self, regs: &[Term], lits: &Literals) -> bool {
        let shared = |t: Term| !t.is_pointer() || lits.contains_term(t);
        self.registers_read().all(|r| shared(regs[r as usize]))
    }

    /// The term of the image built at `base`.
    fn root(&self, base: u64) -> Term {
        if self.cons {
            Term::cons_at(base)
        } else {
            Term::boxed_at(base)
        }
    }

    /// One more than the highest register it reads (0 if none).
    pub(crate) fn registers(&self) -> u16 {
        self.registers
    }

    /// For an image built inline (at most [`SMALL_IMAGE`] words): how many of its words are
    /// pointers inside it, and how many hold registers.
    pub(crate) fn small_patches(&self) -> Option<(usize, usize)> {
        (self.words.len() <= SMALL_IMAGE)
            .then_some((self.small_rels.into(), self.small_regs.into()))
    }
}

/// What a template is made of, for [`Image::of`].
pub(crate) enum Shape<'a, T> {
    Reg(u8),
    Const(Term),
    Tuple(&'a [T]),
    List(&'a [T], &'a T),
    /// Anything else (a map): no image.
    Other,
}

impl Image {
    /// The image of a template, given how to see its parts; `None` unless its root is a tuple
    /// or a list and it holds nothing but tuples, lists, registers and constants.
    pub(crate) fn of<T>(t: &T, shape: &dyn Fn(&T) -> Shape<'_, T>) -> Option<Image> {
        fn place<T>(
            t: &T,
            shape: &dyn Fn(&T) -> Shape<'_, T>,
            out: &mut Vec<Slot>,
        ) -> Option<Slot> {
            if out.len() > 1 << 16 {
                return None;
            }
            Some(match shape(t) {
                Shape::Reg(r) => Slot::Reg(r),
                Shape::Const(c) => Slot::Word(c.raw()),
                Shape::Tuple(items) => {
                    let at = out.len();
                    out.push(Slot::Word(header(KIND_TUPLE, items.len())));
                    out.extend(items.iter().map(|_| Slot::Word(0)));
                    for (i, item) in items.iter().enumerate() {
                        out[at + 1 + i] = place(item, shape, out)?;
                    }
                    Slot::Boxed(at as u32)
                }
                Shape::List(items, tail) => {
                    let at = out.len();
                    out.extend(items.iter().flat_map(|_| [Slot::Word(0); 2]));
                    for (i, item) in items.iter().enumerate() {
                        out[at + 2 * i] = place(item, shape, out)?;
                        out[at + 2 * i + 1] = if i + 1 < items.len() {
                            Slot::Cons((at + 2 * i + 2) as u32)
                        } else {
                            place(tail, shape, out)?
                        };
                    }
                    Slot::Cons(at as u32)
                }
                Shape::Other => return None,
            })
        }
        let cons = match shape(t) {
            Shape::Tuple(_) => false,
            Shape::List(items, _) if !items.is_empty() => true,
            _ => return None,
        };
        let mut slots = Vec::new();
        place(t, shape, &mut slots)?;
        let mut image = Image {
            words: slots.iter().map(|_| 0).collect(),
            relative: Box::default(),
            regs: Box::default(),
            registers: 0,
            small_rel: [0; SMALL_IMAGE],
            small_reg: [[0; 2]; SMALL_IMAGE],
            small_rels: 0,
            small_regs: 0,
            build_small: build_small_image::<ANY, ANY>,
            cons,
        };
        let small = image.words.len() <= SMALL_IMAGE;
        let (mut relative, mut regs) = (Vec::new(), Vec::new());
        for (i, slot) in slots.into_iter().enumerate() {
            let offset = |at: u32| u64::from(at) * WORD as u64;
            image.words[i] = match slot {
                Slot::Word(w) => w,
                Slot::Reg(r) => {
                    regs.push((i as u32, r));
                    if small {
                        image.small_reg[usize::from(image.small_regs)] = [i as u8, r];
                        image.small_regs += 1;
                    }
                    u64::from(r)
                }
                Slot::Cons(at) => {
                    relative.push(i as u32);
                    if small {
                        image.small_rel[usize::from(image.small_rels)] = i as u8;
                        image.small_rels += 1;
                    }
                    Term::cons_at(offset(at)).raw()
                }
                Slot::Boxed(at) => {
                    relative.push(i as u32);
                    if small {
                        image.small_rel[usize::from(image.small_rels)] = i as u8;
                        image.small_rels += 1;
                    }
                    Term::boxed_at(offset(at)).raw()
                }
            };
        }
        image.relative = relative.into();
        image.registers = regs
            .iter()
            .map(|&(_, r)| u16::from(r) + 1)
            .max()
            .unwrap_or(0);
        image.regs = regs.into();
        image.build_small =
            by_patch_counts!(image.small_patches(), build_small_image, SmallBuilder);
        Some(image)
    }
}

/// A count of patches that the image itself gives (see [`build_small_image`]).
pub(crate) const ANY: usize = usize::MAX;

/// `$f::<RELS, REGS>` as a `$ty`, for an image with `$rels` pointers and `$regs` registers to
/// patch: the instance made for those counts when both are at most 4 (nearly every
/// template), else `$f::<ANY, ANY>`. One table for every builder chosen by the counts.
macro_rules! by_patch_counts {
    ($counts:expr, $f:ident, $ty:ty) => {
        by_patch_counts!(@rels $counts, $f, $ty, 0 1 2 3 4)
    };
    (@rels $counts:expr, $f:ident, $ty:ty, $($r:literal)*) => {
        match $counts {
            $(Some(($r, regs)) => match regs {
                0 => $f::<$r, 0> as $ty,
                1 => $f::<$r, 1> as $ty,
                2 => $f::<$r, 2> as $ty,
                3 => $f::<$r, 3> as $ty,
                4 => $f::<$r, 4> as $ty,
                _ => $f::<ANY, ANY> as $ty,
            },)*
            _ => $f::<ANY, ANY> as $ty,
        }
    };
}
pub(crate) use by_patch_counts;

/// A builder of small images (see [`build_small_image`]).
type SmallBuilder = unsafe fn(&Image, *const Term, *mut u64) -> Term;

/// Builds small image `image` (at most [`SMALL_IMAGE`] words) in block `p`. `RELS` and `REGS`
/// are its counts of pointers and registers to patch when known where it is built (a handler
/// made for them: straight lines, with no count loaded and no loop), else [`ANY`].
///
/// # Safety
/// `p` is a fresh block of the image's size; `regs` points to at least `image.registers()`
/// initialised terms; `RELS` and `REGS` are [`ANY`] or the image's counts.
#[inline(always)]
unsafe fn build_small_image<const RELS: usize, const REGS: usize>(
    image: &Image,
    regs: *const Term,
    p: *mut u64,
) -> Term {
    debug_assert!(RELS == ANY || RELS == usize::from(image.small_rels));
    debug_assert!(REGS == ANY || REGS == usize::from(image.small_regs));
    let words = image.words.len();
    let base = addr_of(p);
    let rels = if RELS == ANY {
        usize::from(image.small_rels)
    } else {
        RELS
    };
    let nregs = if REGS == ANY {
        usize::from(image.small_regs)
    } else {
        REGS
    };
    // SAFETY: `p` is a fresh block of `words` words, `image.words` as many, apart. The
    // image is a valid layout (built by `Image::of`: headers with their fields, cells of
    // two words, pointers to the objects at their offsets), so once its pointers are made
    // absolute and its register words filled (every index below < words, by
    // construction), the block holds initialised objects (invariant 1).
    //
    // A small image (nearly every template): a few moves, then the words to patch, from
    // lists inline in the image. No call, no loop set-up: GC churn's template of 9 words, 3
    // pointers and 4 registers takes about half the instructions of a `memcpy` and two
    // patch loops, and with its counts known (`RELS`, `REGS`) a third fewer again.
    unsafe {
        copy_words(image.words.as_ptr(), p, words);
        for k in 0..rels.min(SMALL_IMAGE) {
            *p.add(usize::from(image.small_rel[k])) += base;
        }
        for k in 0..nregs.min(SMALL_IMAGE) {
            let [w, r] = image.small_reg[k];
            // (r < image.registers(): the caller's guarantee.)
            p.add(usize::from(w))
                .write((*regs.add(usize::from(r))).raw());
        }
    }
    image.root(base)
}

/// Images of at most this many words are built inline (see [`Heap::build_image_from`]).
const SMALL_IMAGE: usize = 16;

/// Copies `n` words (at most [`SMALL_IMAGE`]) from `src` to `dst`: a few moves inline, since
/// a call of `memcpy` costs more than the copy at these sizes.
///
/// # Safety
/// As [`ptr::copy_nonoverlapping`] of `n` words.
#[inline(always)]
unsafe fn copy_words(src: *const u64, dst: *mut u64, n: usize) {
    macro_rules! sizes {
        ($($k:literal)*) => {
            match n {
                // SAFETY: the caller's guarantee, for n = $k.
                $($k => unsafe { ptr::copy_nonoverlapping(src, dst, $k) },)*
                // Not taken (callers check the size), but copied all the same, so that a
                // caller that did not could never leave the block uninitialised; word by word
                // (volatile reads keep it from becoming a call of `memcpy`, which would make
                // the threaded handler save registers on every path).
                _ => {
                    for i in 0..n {
                        // SAFETY: the caller's guarantee.
                        unsafe { dst.add(i).write(src.add(i).read_volatile()) };
                    }
                }
            }
        };
    }
    debug_assert!((1..=SMALL_IMAGE).contains(&n));
    sizes!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

/// A copy that does not fit the room it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooBig;

/// Words a DAG copy of `t` needs (literal objects excluded; each object once however often
/// it is reached, `seen` holding their addresses), or `None` once that passes `limit`. The
/// work is bounded by `limit`.
fn measure(t: Term, lits: &Literals, limit: usize, seen: &mut AddrSet) -> Option<usize> {
    let mut todo: SmallVec<[Term; 16]> = SmallVec::new();
    todo.push(t);
    let mut words = 0usize;
    while let Some(t) = todo.pop() {
        if !t.is_pointer() || lits.contains(t.addr()) {
            continue;
        }
        if !seen.insert(t.addr()) {
            continue;
        }
        if let Some((head, tail)) = read_cons(t) {
            words += 2;
            todo.push(tail);
            todo.push(head);
        } else {
            match read_boxed(t)? {
                Boxed::Tuple(elems) => {
                    words += 1 + elems.len();
                    if words <= limit {
                        todo.extend(elems.iter().rev().copied().filter(|e| e.is_pointer()));
                    }
                }
                Boxed::Binary(bytes) => words += 1 + bytes.len().div_ceil(WORD),
                Boxed::Int(_) | Boxed::Float(_) => words += 2,
                Boxed::Closure(fields) | Boxed::Map(fields) | Boxed::Hamt(fields) => {
                    words += 1 + fields.len();
                    if words <= limit {
                        todo.extend(fields.iter().rev().copied().filter(|e| e.is_pointer()));
                    }
                }
            }
        }
        if words > limit {
            return None;
        }
    }
    Some(words)
}

/// What a [`Copier`] does, fixed at compile time so that each kind of copy pays only for its
/// own checks (a large message copies millions of cells).
///
/// - `TREE`: `copy_into` as a tree, within a budget of words;
/// - `DAG`: `copy_into` of a term with shared objects, each copied once (a table of copies);
/// - `COLLECT`: the collector, which leaves forwarding markers in from-space.
const TREE: u8 = 0;
const DAG: u8 = 1;
const COLLECT: u8 = 2;
/// - `PURGE`: the collector of a purge ([`Heap::collect_purging`]), which also copies the
///   purged version's literals into the heap and notes terms that name its code.
const PURGE: u8 = 3;

/// Copies objects one at a time into an arena, and keeps a stack of the fields of the copies
/// that still point to the originals. Used by the collector (leaving forwarding markers and
/// following the ones found, so sharing is kept and nothing is copied twice) and by
/// `copy_into` (the source is only read).
struct Copier<'l, const MODE: u8> {
    lits: &'l Literals,
    /// A minor collection: the old generation's ranges, whose objects stay as they are (like
    /// literals). Empty otherwise.
    old: SmallVec<[(u64, u64); 2]>,
    /// Fields (words inside copies this copier made) still holding a pointer to an original.
    /// Fields still to copy; inline for small terms, so a typical send allocates nothing.
    pending: SmallVec<[*mut u64; 16]>,
    /// `DAG`: the copy made of each object, by address, so that it is copied once. (The
    /// collector uses forwarding markers instead.)
    copies: AddrMap<u64>,
    /// `TREE`: words this copier may still allocate; a copy that needs more stops and fails.
    budget: usize,
    /// `PURGE`: what the purge copies out and looks for.
    purge: Option<&'l Purge<'l>>,
}

/// What a purge's collection of one heap copies out and looks for (see
/// [`Heap::collect_purging`]).
pub struct Purge<'a> {
    /// The purged version's literal area, if it has one: its objects are copied into the heap,
    /// each once, through a table of copies (other heaps share the area, so no forwarding
    /// marker may be written into it).
    pub area: Option<&'a Literals>,
    /// Does function entry `e` name the purged version's code?
    pub old_fun: &'a dyn Fn(u32) -> bool,
    /// Literal objects (by address, in the areas that stay) that hold such a function.
    pub tainted: &'a HashSet<u64>,
    /// Set when the heap holds a term that names the purged code.
    pub found: std::cell::Cell<bool>,
}

impl<const MODE: u8> Copier<'_, MODE> {
    /// Copies everything reachable from `t` into `arena`; the term for the copy. `from` is
    /// from-space when collecting, used by a debug-build check.
    /// `None` when the budget ran out (what was copied is then unreachable garbage).
    fn copy(&mut self, space: &mut impl Space, from: Option<&Heap>, t: Term) -> Option<Term> {
        let new = self.copy_one(space, from, t)?;
        while let Some(field) = self.pending.pop() {
            // SAFETY: `field` is a word of a copy made by this copier in `arena`, which is alive
            // (borrowed by us) and which no one else can see yet.
            let old = Term::from_raw(unsafe { field.read() });
            let Some(copied) = self.copy_one(space, from, old) else {
                self.pending.clear();
                return None;
            };
            // SAFETY: as above.
            unsafe { field.write(copied.raw()) };
        }
        Some(new)
    }

    /// Copies the one object `t` points to (not what it points to: its pointer fields go on
    /// `pending`) and returns the term for the copy. Immediates and literals are returned as
    /// they are; when collecting, an object already copied is found through its marker.
    fn copy_one(&mut self, space: &mut impl Space, from: Option<&Heap>, t: Term) -> Option<Term> {
        if MODE == PURGE {
            return self.copy_purging(space, from, t);
        }
        if !t.is_pointer() || self.lits.contains(t.addr()) || in_ranges(&self.old, t.addr()) {
            return Some(t);
        }
        if cfg!(debug_assertions) {
            // The collector would write a forwarding marker into whatever `t` points to: catch
            // a broken invariant 4 here, in debug builds, rather than corrupt memory.
            if let Some(from) = from {
                assert!(
                    heap_contains(from, t.addr()),
                    "collector: {t:?} points neither into this heap nor into the literal area \
                     (a term of another heap, or one kept across a collection)"
                );
            }
        }
        let src = ptr_at(t.addr());
        // SAFETY: a pointer term points to an initialised object of at least one word
        // (invariant 1), alive (invariant 4: the VM passes only terms of this heap, or for
        // copy_into of a live heap).
        let first = unsafe { src.read() };
        if (MODE == COLLECT || MODE == PURGE) && first & LOW3 == FORWARD_TAG {
            return Some(t.same_kind_at(first & !LOW3));
        }
        if (MODE == COLLECT || MODE == TREE) && t.is_cons() {
            return self.list_run(space, t);
        }
        if MODE == DAG {
            if let Some(&copy) = self.copies.get(&t.addr()) {
                return Some(t.same_kind_at(copy));
            }
        }
        let (words, first_field) = if t.is_cons() {
            (2, 0)
        } else {
            debug_assert_eq!(first & LOW3, HEADER_TAG, "{t:?} does not point to a header");
            let words = object_words(first);
            // Only the words after the header of objects of term fields hold terms.
            (
                words,
                if has_term_fields(header_kind(first)) {
                    1
                } else {
                    words
                },
            )
        };
        if MODE == TREE {
            self.budget = self.budget.checked_sub(words)?;
        }
        let dst = space.alloc(words);
        // SAFETY: `src` has `words` initialised words (invariant 1; for a boxed object
        // `object_words` of its header); `dst` is a fresh allocation of `words` words, so they
        // don't overlap. The forwarding marker goes over the first word of a from-space object
        // (only in `COLLECT` mode, `Heap::collect`'s): nobody reads from-space after this
        // collection, and during it the marker is all the collector reads there (invariant 3).
        unsafe {
            ptr::copy_nonoverlapping(src, dst, words);
            if MODE == COLLECT || MODE == PURGE {
                src.write(addr_of(dst) | FORWARD_TAG);
            }
        }
        if MODE == DAG {
            self.copies.insert(t.addr(), addr_of(dst));
        }
        // Pushed last field first, so the first is copied first: for a cell, the head before
        // the tail. Along a list whose heads are immediates the stack never holds more than the
        // one tail, however long the list.
        for i in (first_field..words).rev() {
            // SAFETY: i < words: an initialised word of the copy just made.
            let field = unsafe { dst.add(i) };
            // SAFETY: as above.
            if Term::from_raw(unsafe { field.read() }).is_pointer() {
                self.pending.push(field);
            }
        }
        Some(t.same_kind_at(addr_of(dst)))
    }
}

impl<const MODE: u8> Copier<'_, MODE> {
    /// The copy of list cell `t` and of the cells after it along the tail, up to the first one
    /// that is a literal or not a cell (or, when collecting, old or copied already): one block
    /// for the run, filled in one loop. The heads that are pointers, and the run's last tail,
    /// go on `pending`. The collector (`COLLECT`) leaves a forwarding marker in each original;
    /// a tree copy (`TREE`, copy-on-send) only reads them, and gives `None` when the run does
    /// not fit its budget.
    fn list_run(&mut self, space: &mut impl Space, t: Term) -> Option<Term> {
        let mut cells = 1usize;
        let mut at = t;
        // Cells laid out one after the other, each tail the next cell (what a copy or a
        // collection makes of a list): counted without reading the tail's address from memory
        // (the loop does not wait on each load) and without the range checks, since a cell
        // right after a heap cell is in the same chunk of the same heap (bumpalo's footer ends
        // a chunk), so neither a literal nor an old object.
        let mut sequential = true;
        loop {
            // SAFETY: as below.
            let tail = unsafe { ptr_at(at.addr()).add(1).read() };
            let next = at.addr() + 2 * WORD as u64;
            if tail != Term::cons_at(next).raw() {
                break;
            }
            // SAFETY: `next` is the cell `at`'s tail points to: two initialised words, alive.
            if MODE == COLLECT && unsafe { ptr_at(next).read() } & LOW3 == FORWARD_TAG {
                break;
            }
            cells += 1;
            at = Term::cons_at(next);
        }
        loop {
            // SAFETY: `at` is a cell not copied yet (checked for the first by the caller, for
            // the others below): two initialised words (invariant 1), alive (invariant 4).
            let tail = Term::from_raw(unsafe { ptr_at(at.addr()).add(1).read() });
            if !tail.is_cons()
                || self.lits.contains(tail.addr())
                || (MODE == COLLECT && in_ranges(&self.old, tail.addr()))
            {
                break;
            }
            // SAFETY: as above, a cell (or, when collecting, a marker over its first word).
            if MODE == COLLECT && unsafe { ptr_at(tail.addr()).read() } & LOW3 == FORWARD_TAG {
                break;
            }
            sequential = false;
            cells += 1;
            at = tail;
        }
        if MODE == TREE {
            self.budget = self.budget.checked_sub(2 * cells)?;
        }
        let dst = space.alloc(2 * cells);
        if sequential {
            // SAFETY: the run is `cells` cells one after the other from `t` (checked above),
            // unchanged since; `dst` has 2 * cells fresh words. Each head is read before its
            // marker is written over it; the tails of all but the last are not read (the copy's
            // are its own next cells).
            unsafe {
                let src = ptr_at(t.addr());
                for k in 0..cells - 1 {
                    let (from, cell) = (src.add(2 * k), dst.add(2 * k));
                    let head = from.read();
                    cell.write(head);
                    if Term::from_raw(head).is_pointer() {
                        self.pending.push(cell);
                    }
                    cell.add(1).write(Term::cons_at(addr_of(cell.add(2))).raw());
                    if MODE == COLLECT {
                        from.write(addr_of(cell) | FORWARD_TAG);
                    }
                }
                self.last_cell(src.add(2 * (cells - 1)), dst.add(2 * (cells - 1)));
            }
            return Some(Term::cons_at(addr_of(dst)));
        }
        // SAFETY: `src` is cell k of the run counted above, unchanged since (only the cells
        // before it got markers, and its tail is read before its own is written); `dst` has
        // 2 * cells fresh words, cell k at 2k and 2k + 1, and the next cell (k + 1 < cells) in
        // the block. The last cell is done after the loop: its tail is the run's.
        unsafe {
            let mut src = ptr_at(t.addr());
            let mut cell = dst;
            for _ in 1..cells {
                let head = src.read();
                let tail = Term::from_raw(src.add(1).read());
                cell.write(head);
                if Term::from_raw(head).is_pointer() {
                    self.pending.push(cell);
                }
                cell.add(1).write(Term::cons_at(addr_of(cell.add(2))).raw());
                if MODE == COLLECT {
                    // The marker, as `copy_one` leaves one (invariant 3).
                    src.write(addr_of(cell) | FORWARD_TAG);
                }
                src = ptr_at(tail.addr());
                cell = cell.add(2);
            }
            self.last_cell(src, cell);
        }
        Some(Term::cons_at(addr_of(dst)))
    }

    /// The last cell of a run: `src`'s head and tail into `cell`, both to be copied if they
    /// are pointers.
    ///
    /// # Safety
    /// `src` is a cell of the run (two initialised words), `cell` two fresh words.
    #[inline]
    unsafe fn last_cell(&mut self, src: *mut u64, cell: *mut u64) {
        // SAFETY: the caller's.
        unsafe {
            let head = src.read();
            let tail = Term::from_raw(src.add(1).read());
            cell.write(head);
            if Term::from_raw(head).is_pointer() {
                self.pending.push(cell);
            }
            cell.add(1).write(tail.raw());
            if tail.is_pointer() {
                self.pending.push(cell.add(1));
            }
            if MODE == COLLECT {
                src.write(addr_of(cell) | FORWARD_TAG);
            }
        }
    }

    /// `copy_one` of a purge: a term naming the purged code is noted; an object of the purged
    /// area is copied once (through the table of copies), with its fields; the others as the
    /// collector copies them.
    fn copy_purging(
        &mut self,
        space: &mut impl Space,
        from: Option<&Heap>,
        t: Term,
    ) -> Option<Term> {
        let purge = self.purge.expect("a purge collection has its purge");
        if t.as_fun().is_some_and(|e| (purge.old_fun)(e)) {
            purge.found.set(true);
        }
        if !t.is_pointer() {
            return Some(t);
        }
        if self.lits.contains(t.addr()) {
            if purge.tainted.contains(&t.addr()) {
                purge.found.set(true);
            }
            return Some(t);
        }
        let in_area = purge.area.is_some_and(|a| a.contains(t.addr()));
        if in_area {
            if let Some(&copy) = self.copies.get(&t.addr()) {
                return Some(t.same_kind_at(copy));
            }
        } else {
            let first = ptr_at(t.addr());
            // SAFETY: as in `copy_one`: a pointer term of this heap points to an initialised
            // object (or a forwarding marker) of at least one word.
            let first = unsafe { first.read() };
            if first & LOW3 == FORWARD_TAG {
                return Some(t.same_kind_at(first & !LOW3));
            }
        }
        let src = ptr_at(t.addr());
        // SAFETY: as above.
        let first = unsafe { src.read() };
        let (words, first_field) = if t.is_cons() {
            (2, 0)
        } else {
            let words = object_words(first);
            (
                words,
                if has_term_fields(header_kind(first)) {
                    1
                } else {
                    words
                },
            )
        };
        let dst = space.alloc(words);
        // SAFETY: as in `copy_one`. The marker goes only into from-space objects of this heap,
        // never into the shared literal area.
        unsafe {
            ptr::copy_nonoverlapping(src, dst, words);
            if in_area {
                self.copies.insert(t.addr(), addr_of(dst));
            } else {
                debug_assert!(from.is_none_or(|h| heap_contains(h, t.addr())));
                src.write(addr_of(dst) | FORWARD_TAG);
            }
        }
        for i in (first_field..words).rev() {
            // SAFETY: i < words: an initialised word of the copy just made.
            let field = unsafe { dst.add(i) };
            // SAFETY: as above.
            let f = Term::from_raw(unsafe { field.read() });
            if f.is_pointer() {
                self.pending.push(field);
            } else if f.as_fun().is_some_and(|e| (purge.old_fun)(e)) {
                purge.found.set(true);
            }
        }
        Some(t.same_kind_at(addr_of(dst)))
    }
}

/// Is `addr` inside the heap's arena or one of its fragments? (Debug checks.)
fn heap_contains(heap: &Heap, addr: u64) -> bool {
    arena_contains(&heap.young.arena, addr)
        || heap
            .old
            .as_ref()
            .is_some_and(|o| arena_contains(&o.arena, addr))
        || heap
            .fragments
            .iter()
            .flat_map(|f| f.iter())
            .any(|f| arena_contains(f, addr))
}

/// Is `addr` inside the allocated part of one of `arena`'s chunks? (O(chunks): debug checks.)
fn arena_contains(arena: &Bump, addr: u64) -> bool {
    // SAFETY: nothing is allocated in `arena` while the iterator lives (we only compare
    // addresses, and the collector allocates into to-space, another arena); no chunk memory is
    // read through the pointers.
    let mut chunks = unsafe { arena.iter_allocated_chunks_raw() };
    chunks.any(|(start, len)| addr.wrapping_sub(start.addr() as u64) < len as u64)
}

// ---------------------------------------------------------------------------------------------
// Flat terms: small messages between threads

/// The most words a flat term takes (see [`flatten`]).
pub const FLAT_WORDS: usize = 8;

/// A small term written out word by word, to travel inside a signal from one scheduler to
/// another without an allocation: most messages are a few words (`{:token, 42}` is three).
/// A fixed array and a length: writing and reading it are plain stores and loads.
#[derive(Clone, Copy)]
pub struct Flat {
    len: u8,
    words: [u64; FLAT_WORDS],
}

impl Default for Flat {
    fn default() -> Flat {
        Flat::new()
    }
}

impl Flat {
    pub fn new() -> Flat {
        Flat {
            len: 0,
            words: [0; FLAT_WORDS],
        }
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn words(&self) -> &[u64] {
        &self.words[..self.len as usize]
    }

    /// Appends `w`; false when full.
    #[inline]
    pub fn push(&mut self, w: u64) -> bool {
        let Some(slot) = self.words.get_mut(self.len as usize) else {
            return false;
        };
        *slot = w;
        self.len += 1;
        true
    }

    /// Room for `n` more words.
    fn has_room(&self, n: usize) -> bool {
        self.len as usize + n <= FLAT_WORDS
    }
}

/// In flat terms only: `n` list items follow, then the tail.
const FLAT_LIST: u64 = 3;

/// Writes `t` into `out` in pre-order: an immediate or a literal pointer as its word (the
/// literal area is shared by every thread and outlives the run); a tuple, binary or big integer
/// as its header and contents; list cells as one header with their count, then the items and
/// the tail. False (and `out` unusable) when it takes more than [`FLAT_WORDS`] words.
#[inline]
pub fn flatten(t: Term, lits: &Literals, out: &mut Flat) -> bool {
    if !t.is_pointer() || lits.contains(t.addr()) {
        return out.push(t.raw());
    }
    flatten_object(t, lits, out)
}

/// [`flatten`] for a term on the heap.
fn flatten_object(t: Term, lits: &Literals, out: &mut Flat) -> bool {
    if t.is_cons() {
        let at = out.len();
        if !out.push(0) {
            return false;
        }
        let mut n = 0;
        let mut rest = t;
        while let Some((head, tail)) = read_cons(rest) {
            if !flatten(head, lits, out) {
                return false;
            }
            n += 1;
            rest = tail;
            if lits.contains_term(rest) {
                break;
            }
        }
        out.words[at] = header(FLAT_LIST, n);
        return flatten(rest, lits, out);
    }
    match read_boxed(t) {
        Some(Boxed::Tuple(elems)) => {
            out.push(header(KIND_TUPLE, elems.len()))
                && elems.iter().all(|&e| flatten(e, lits, out))
        }
        Some(Boxed::Binary(bytes)) => {
            if !out.has_room(1 + bytes.len().div_ceil(WORD)) {
                return false;
            }
            out.push(header(KIND_BINARY, bytes.len()));
            for chunk in bytes.chunks(WORD) {
                let mut w = [0u8; WORD];
                w[..chunk.len()].copy_from_slice(chunk);
                out.push(u64::from_le_bytes(w));
            }
            true
        }
        Some(Boxed::Int(i)) => out.push(header(KIND_BIGINT, 0)) && out.push(i as u64),
        Some(Boxed::Float(f)) => out.push(header(KIND_FLOAT, 0)) && out.push(f.to_bits()),
        Some(Boxed::Closure(fields)) => {
            out.push(header(KIND_CLOSURE, fields.len()))
                && fields.iter().all(|&e| flatten(e, lits, out))
        }
        // A small map (the smallest non-empty one takes four words); a trie never fits.
        Some(Boxed::Map(fields)) => {
            fields.len() <= 1 + 2 * crate::map::FLAT_MAX
                && out.push(header(KIND_MAP, fields.len()))
                && fields.iter().all(|&e| flatten(e, lits, out))
        }
        Some(Boxed::Hamt(_)) | None => false,
    }
}

impl Heap {
    /// The flat header of a tuple of `arity` elements (for templates written flat).
    pub fn flat_tuple_header(arity: usize) -> u64 {
        header(KIND_TUPLE, arity)
    }

    /// The flat header of `n` list items followed by their tail.
    pub fn flat_list_header(n: usize) -> u64 {
        header(FLAT_LIST, n)
    }

    /// Builds in this heap the term [`flatten`] wrote.
    pub fn unflatten(&mut self, flat: &Flat) -> Term {
        let mut at = 0;
        self.unflatten_at(flat.words(), &mut at)
    }

    fn unflatten_at(&mut self, words: &[u64], at: &mut usize) -> Term {
        let w = words[*at];
        *at += 1;
        if w & LOW3 != HEADER_TAG {
            // An immediate, or a pointer into the literal area: the very term that was
            // flattened (invariant 1 holds: the literal area made it).
            return Term::from_raw(w);
        }
        let size = header_size(w);
        match header_kind(w) {
            KIND_TUPLE => {
                let mut elems = [Term::NIL; FLAT_WORDS];
                for e in &mut elems[..size] {
                    let w = words[*at];
                    *e = if w & LOW3 != HEADER_TAG {
                        *at += 1;
                        Term::from_raw(w)
                    } else {
                        self.unflatten_at(words, at)
                    };
                }
                self.tuple(&elems[..size])
            }
            KIND_BINARY => {
                let n = size.div_ceil(WORD);
                let mut bytes = [0u8; FLAT_WORDS * WORD];
                for (i, w) in words[*at..*at + n].iter().enumerate() {
                    bytes[i * WORD..(i + 1) * WORD].copy_from_slice(&w.to_le_bytes());
                }
                *at += n;
                self.binary(&bytes[..size])
            }
            KIND_BIGINT => {
                let i = words[*at] as i64;
                *at += 1;
                self.int(i)
            }
            KIND_FLOAT => {
                let f = f64::from_bits(words[*at]);
                *at += 1;
                self.float(f)
            }
            KIND_MAP => {
                let mut fields = [Term::NIL; FLAT_WORDS];
                for e in &mut fields[..size] {
                    *e = self.unflatten_at(words, at);
                }
                self.map_from_fn(size, |i| fields[i])
            }
            KIND_CLOSURE => {
                let mut fields = [Term::NIL; FLAT_WORDS];
                for e in &mut fields[..size] {
                    *e = self.unflatten_at(words, at);
                }
                let at_ = fields[0].as_fun().expect("a closure's function");
                let arity = fields[1].as_small_int().expect("a closure's arity") as u8;
                self.closure(at_, arity, &fields[2..size])
            }
            _ => {
                let mut items = [Term::NIL; FLAT_WORDS];
                for e in &mut items[..size] {
                    *e = self.unflatten_at(words, at);
                }
                let tail = self.unflatten_at(words, at);
                self.list_from(&items[..size], tail)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Literals

/// One literal area: immutable terms in one contiguous allocation, built at load time.
struct Area {
    /// Start of the area; dangling when `words` is 0.
    base: NonNull<u64>,
    words: usize,
    /// The unit (loaded version) whose literals these are; `u32::MAX` for the program's first
    /// area, which every unit loaded with it shares and which is never freed.
    owner: u32,
}

// SAFETY: the area is never written after it is filled (before it is shared) and is freed only
// by `drop`, so shared or moved access from any thread reads the same initialised, immutable
// words.
unsafe impl Send for Area {}
// SAFETY: as above.
unsafe impl Sync for Area {}

impl Area {
    fn range(&self) -> (u64, u64) {
        (self.base.as_ptr().addr() as u64, (self.words * WORD) as u64)
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        if self.words > 0 {
            let layout = Layout::array::<u64>(self.words).expect("built with this layout");
            // SAFETY: `base` was allocated in `Literals::area` with this very layout and is
            // freed only here. Terms into the area must not be used any more (invariant 4): a
            // purge copies them out of every heap before the last program holding it goes.
            unsafe { alloc::dealloc(self.base.as_ptr().cast(), layout) };
        }
    }
}

/// The program's literal terms: built at load time, immutable, shared from heaps and messages
/// (literal terms are never copied: not by the collector, not by `copy_into`). The program as
/// first loaded has one area; each version of a module loaded later brings one of its own,
/// freed when that version is purged. Telling a literal pointer from a heap pointer is a range
/// check per area ([`Literals::contains_term`]), the first area's inline.
pub struct Literals {
    /// The first area's range, (start, bytes).
    first: (u64, u64),
    /// The other areas' ranges.
    more: Vec<(u64, u64)>,
    /// Keeps the areas alive; the first one first. (Shared with the program before a load, so
    /// that the old program's terms stay valid in the new one.)
    areas: Vec<Arc<Area>>,
}

/// One module's literal nodes and its atom map (module atom index → VM atom id).
pub type LiteralTable<'a> = (&'a [Node], &'a dyn Fn(u32) -> u32);

impl Clone for Literals {
    /// The same areas, shared.
    fn clone(&self) -> Literals {
        Literals::of(self.areas.clone())
    }
}

impl Default for Literals {
    fn default() -> Literals {
        Literals::empty()
    }
}

impl Literals {
    /// An area with no literals (tests, programs without any).
    pub fn empty() -> Literals {
        Literals::of(vec![Arc::new(Area {
            base: NonNull::dangling(),
            words: 0,
            owner: u32::MAX,
        })])
    }

    fn of(areas: Vec<Arc<Area>>) -> Literals {
        Literals {
            first: areas[0].range(),
            more: areas[1..].iter().map(|a| a.range()).collect(),
            areas,
        }
    }

    /// Builds `nodes` into terms in a new area, mapping each atom index through `atom_map`
    /// (module atom index → VM atom id). `Reg`/`Pin`/`Wild` can't occur in a literal (the
    /// verifier rejects them); if one does it becomes `[]`.
    pub fn build(nodes: &[Node], atom_map: &dyn Fn(u32) -> u32) -> (Literals, Vec<Term>) {
        let (lits, mut tables) = Literals::build_many(&[(nodes, atom_map)]);
        (lits, tables.pop().expect("one table"))
    }

    /// [`Literals::build`] for several tables (several modules, each with its own atom map) in
    /// one area.
    pub fn build_many(tables: &[LiteralTable<'_>]) -> (Literals, Vec<Vec<Term>>) {
        let (area, terms) = Literals::area(tables, u32::MAX);
        (Literals::of(vec![area]), terms)
    }

    /// These literals and a new area of `nodes`, owned by (freed with) unit `owner`.
    pub(crate) fn with_area(
        &self,
        nodes: &[Node],
        atom_map: &dyn Fn(u32) -> u32,
        owner: u32,
    ) -> (Literals, Vec<Term>) {
        let (area, mut terms) = Literals::area(&[(nodes, atom_map)], owner);
        let mut areas = self.areas.clone();
        areas.push(area);
        (Literals::of(areas), terms.pop().expect("one table"))
    }

    /// These literals without unit `owner`'s area (the program's first area stays).
    pub(crate) fn without(&self, owner: u32) -> Literals {
        let mut areas = self.areas.clone();
        let mut i = 1;
        while i < areas.len() {
            if areas[i].owner == owner {
                areas.remove(i);
            } else {
                i += 1;
            }
        }
        Literals::of(areas)
    }

    /// Unit `owner`'s area as a literal set of its own (for a purge to copy out of), if it has
    /// one with anything in it.
    pub(crate) fn area_of(&self, owner: u32) -> Option<Literals> {
        self.areas[1..]
            .iter()
            .find(|a| a.owner == owner && a.words > 0)
            .map(|a| Literals::of(vec![a.clone()]))
    }

    fn area(tables: &[LiteralTable<'_>], owner: u32) -> (Arc<Area>, Vec<Vec<Term>>) {
        // Size everything first, allocate once, then fill: no pointer ever moves.
        let words: usize = tables
            .iter()
            .flat_map(|(nodes, _)| nodes.iter())
            .map(node_words)
            .sum();
        let base = if words == 0 {
            NonNull::dangling()
        } else {
            let layout = Layout::array::<u64>(words).expect("literal area too large");
            // SAFETY: `layout` has a non-zero size (words > 0).
            let p = unsafe { alloc::alloc_zeroed(layout) }.cast::<u64>();
            NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(layout))
        };
        let area = Area { base, words, owner };
        let mut filler = Filler {
            base: area.base.as_ptr(),
            words,
            next: 0,
        };
        let terms = tables
            .iter()
            .map(|(nodes, atom_map)| nodes.iter().map(|n| filler.emit(n, *atom_map)).collect())
            .collect();
        assert_eq!(filler.next, words, "literal sizes and contents disagree");
        (Arc::new(area), terms)
    }

    /// Is `addr` inside one of the areas?
    #[inline]
    fn contains(&self, addr: u64) -> bool {
        addr.wrapping_sub(self.first.0) < self.first.1
            || (!self.more.is_empty()
                && self
                    .more
                    .iter()
                    .any(|&(start, bytes)| addr.wrapping_sub(start) < bytes))
    }

    /// Does `t` point into these literals (a literal tuple, list, binary or big integer)?
    pub fn contains_term(&self, t: Term) -> bool {
        t.is_pointer() && self.contains(t.addr())
    }

    /// Size of the areas in bytes.
    pub fn size_bytes(&self) -> usize {
        self.areas.iter().map(|a| a.words * WORD).sum()
    }
}

/// Words a literal node needs in the area. Recursion is bounded by the bytecode's nesting limit
/// (`MAX_NODE_DEPTH`); list items are iterated.
fn node_words(n: &Node) -> usize {
    match n {
        Node::Int(i) if Term::small_int(*i).is_none() => 2,
        Node::Float(_) => 2,
        Node::Int(_)
        | Node::Atom(_)
        | Node::Fun(_)
        | Node::Nil
        | Node::Reg(_)
        | Node::Pin(_)
        | Node::Wild => 0,
        Node::Binary(b) => 1 + b.len().div_ceil(WORD),
        Node::Map(_) => unreachable!("the verifier keeps maps out of literals"),
        Node::Tuple(items) => 1 + items.len() + items.iter().map(node_words).sum::<usize>(),
        Node::List(items, tail) => {
            2 * items.len() + items.iter().map(node_words).sum::<usize>() + node_words(tail)
        }
    }
}

/// Fills a literal area front to back, `node_words(n)` words per node.
struct Filler {
    base: *mut u64,
    words: usize,
    next: usize,
}

impl Filler {
    /// The next `n` words of the area (zeroed by `alloc_zeroed`).
    fn take(&mut self, n: usize) -> *mut u64 {
        assert!(
            self.next + n <= self.words,
            "literal sizes and contents disagree"
        );
        // SAFETY: next + n <= words: inside the area (or `add(0)` on the dangling base).
        let p = unsafe { self.base.add(self.next) };
        self.next += n;
        p
    }

    fn emit(&mut self, n: &Node, atom_map: &dyn Fn(u32) -> u32) -> Term {
        match n {
            Node::Int(i) => Term::small_int(*i).unwrap_or_else(|| {
                let p = self.take(2);
                // SAFETY: `take` gave 2 words of the area, ours alone until `build` returns.
                unsafe {
                    p.write(header(KIND_BIGINT, 0));
                    p.add(1).write(*i as u64);
                }
                Term::boxed_at(addr_of(p))
            }),
            Node::Float(bits) => {
                let p = self.take(2);
                // SAFETY: `take` gave 2 words of the area, ours alone until `build` returns.
                unsafe {
                    p.write(header(KIND_FLOAT, 0));
                    p.add(1).write(*bits);
                }
                Term::boxed_at(addr_of(p))
            }
            Node::Atom(a) => Term::atom(atom_map(*a)),
            Node::Fun(at) => Term::fun(*at),
            Node::Map(_) => unreachable!("the verifier keeps maps out of literals"),
            Node::Nil | Node::Reg(_) | Node::Pin(_) | Node::Wild => Term::NIL,
            Node::Binary(bytes) => {
                let p = self.take(1 + bytes.len().div_ceil(WORD));
                // SAFETY: `take` gave 1 + ceil(len / 8) zeroed words: the header and room for
                // the bytes (the padding stays zero). `bytes` is outside the area.
                unsafe {
                    p.write(header(KIND_BINARY, bytes.len()));
                    ptr::copy_nonoverlapping(bytes.as_ptr(), p.add(1).cast(), bytes.len());
                }
                Term::boxed_at(addr_of(p))
            }
            Node::Tuple(items) => {
                let p = self.take(1 + items.len());
                // SAFETY: `take` gave 1 + arity words: the header is word 0.
                unsafe { p.write(header(KIND_TUPLE, items.len())) };
                for (i, item) in items.iter().enumerate() {
                    let v = self.emit(item, atom_map);
                    // SAFETY: element i is word 1 + i < 1 + arity of the same block.
                    unsafe { p.add(1 + i).write(v.raw()) };
                }
                Term::boxed_at(addr_of(p))
            }
            Node::List(items, tail) => {
                if items.is_empty() {
                    return self.emit(tail, atom_map);
                }
                let cells = self.take(2 * items.len());
                for (k, item) in items.iter().enumerate() {
                    let head = self.emit(item, atom_map);
                    let next = if k + 1 < items.len() {
                        // SAFETY: cell k + 1 (words 2k + 2, 2k + 3) is inside the block.
                        Term::cons_at(addr_of(unsafe { cells.add(2 * k + 2) }))
                    } else {
                        self.emit(tail, atom_map)
                    };
                    // SAFETY: cell k is words 2k and 2k + 1 < 2 × items of the block.
                    unsafe {
                        cells.add(2 * k).write(head.raw());
                        cells.add(2 * k + 1).write(next.raw());
                    }
                }
                Term::cons_at(addr_of(cells))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::{eq, list_len, to_string, tuple_get, View};

    fn names(i: u32) -> &'static str {
        ["ok", "x", "ping"][i as usize]
    }

    fn show(t: Term) -> String {
        to_string(t, &names)
    }

    fn int(i: i64) -> Term {
        Term::small_int(i).unwrap()
    }

    /// 0, 1, ..., n-1, built cell by cell from the end as a program would.
    fn long_list(h: &mut Heap, n: i64) -> Term {
        (0..n).rev().fold(Term::NIL, |tail, i| h.cons(int(i), tail))
    }

    fn sum_list(l: Term) -> i64 {
        crate::term::list_iter(l).map(|t| t.as_int().unwrap()).sum()
    }

    #[test]
    fn new_heap_is_small_and_allocates_nothing() {
        // (72: the fragments pointer of N schedulers, spec §9; 80: the young generation's bump
        // pointer, less the collection count, now in the old generation; 88: the young block's
        // end where the collection limit falls, beside its real end.)
        assert!(
            std::mem::size_of::<Heap>() <= 88,
            "{}",
            std::mem::size_of::<Heap>()
        );
        let h = Heap::new();
        assert_eq!(h.arena_bytes(), 0);
        assert_eq!(h.used_bytes(), 0);
        assert!(!h.needs_gc());
        // Immediates cost nothing either.
        let mut h = Heap::new();
        let t = h.int(5);
        assert_eq!(
            h.copy_into(t, &Literals::empty(), usize::MAX, usize::MAX)
                .unwrap(),
            t
        );
        assert_eq!(h.used_bytes(), 0);
        assert_eq!(h.arena_bytes(), 0);
        assert_eq!(h.list_from(&[], Term::NIL), Term::NIL);
    }

    #[test]
    fn used_bytes_counts_words() {
        let mut h = Heap::new();
        h.tuple(&[int(1), int(2)]); // 3 words
        h.cons(int(1), Term::NIL); // 2
        h.binary(b"123456789"); // 1 + 2
        h.binary(b""); // 1
        h.int(i64::MIN); // 2
        h.list_from(&[int(1), int(2), int(3)], Term::NIL); // 6
        assert_eq!(h.used_bytes(), (3 + 2 + 3 + 1 + 2 + 6) * 8);
    }

    #[test]
    fn needs_gc_follows_the_limit() {
        let lits = Literals::empty();
        let mut h = Heap::new();
        h.tuple(&[int(1)]);
        assert_eq!(h.needs_gc(), cfg!(feature = "gc-stress"));
        let mut keep = Term::NIL;
        while h.used_bytes() <= MIN_GC_LIMIT {
            keep = h.cons(int(1), keep);
        }
        assert!(h.needs_gc());
        let mut c = h.collect(&lits);
        keep = c.copy(keep);
        c.finish();
        assert!(!h.needs_gc());
        assert_eq!(h.collections(), 1);
        let cells = list_len(keep).unwrap();
        assert_eq!(cells, MIN_GC_LIMIT / 16, "the first tuple was garbage");
        assert_eq!(h.used_bytes(), cells * 16);
        assert_eq!(h.gc_limit(), MIN_GC_LIMIT.max(2 * h.used_bytes()));
        h.cons(int(0), keep);
        assert_eq!(h.needs_gc(), cfg!(feature = "gc-stress"));
    }

    #[test]
    fn gc_preserves_sharing_and_values() {
        let lits = Literals::empty();
        let mut h = Heap::new();
        let items: Vec<Term> = (0..1000).map(int).collect();
        let l = h.list_from(&items, Term::NIL);
        let s = h.binary(b"shared");
        let big = h.int(i64::MIN);
        let root = h.tuple(&[l, l, s, big, s]);
        let garbage = long_list(&mut h, 5000);
        assert_eq!(list_len(garbage), Some(5000));
        let mut other = Heap::new();
        let expected = {
            let l = other.list_from(&items, Term::NIL);
            let s = other.binary(b"shared");
            let big = other.int(i64::MIN);
            other.tuple(&[l, l, s, big, s])
        };

        // Two roots with the same value, plus the root itself twice.
        let mut roots = [root, l, root];
        let mut c = h.collect(&lits);
        c.copy_all(&mut roots);
        c.finish();
        let [root, l2, root_again] = roots;
        assert_eq!(root, root_again, "the same object is copied once");
        assert!(eq(root, expected));
        assert_eq!(
            tuple_get(root, 0),
            tuple_get(root, 1),
            "the list is shared, not duplicated"
        );
        assert_eq!(
            tuple_get(root, 0),
            Some(l2),
            "sharing between roots is kept"
        );
        assert_eq!(tuple_get(root, 2), tuple_get(root, 4));
        assert_eq!(tuple_get(root, 3).and_then(Term::as_int), Some(i64::MIN));
        // Live: the tuple (6 words), 1000 cells, the binary (2 words), the big int (2 words).
        let live = (6 + 2000 + 2 + 2) * 8;
        assert_eq!(h.used_bytes(), live);
        // The first to-space grows chunk by chunk (doubling): at most about twice the live size.
        assert!(
            h.arena_bytes() <= 2 * live + 1024,
            "{} for {live}",
            h.arena_bytes()
        );
        // The next one starts with a chunk of the last live size: everything fits in it.
        let mut c = h.collect(&lits);
        let root = c.copy(root);
        drop(c); // dropping works like finish
        assert_eq!(h.used_bytes(), live);
        assert!(
            h.arena_bytes() <= live + 4096,
            "{} for {live}",
            h.arena_bytes()
        );
        assert!(eq(root, expected));
        assert_eq!(h.collections(), 2);
    }

    #[test]
    fn gc_drops_garbage() {
        let lits = Literals::empty();
        let mut h = Heap::new();
        let mut keep = h.tuple(&[Term::atom(0), int(1)]);
        for i in 0..10_000 {
            let g = h.tuple(&[int(i), int(i), int(i)]);
            h.cons(g, Term::NIL);
            keep = h.tuple(&[Term::atom(0), int(i)]);
        }
        let before = h.arena_bytes();
        assert!(before > 500_000, "{before}");
        let mut c = h.collect(&lits);
        keep = c.copy(keep);
        c.finish();
        assert_eq!(show(keep), "{:ok, 9999}");
        assert_eq!(h.used_bytes(), 24);
        assert!(h.arena_bytes() <= 512, "{}", h.arena_bytes());
        // Nothing live at all: a minor collection frees the young generation but leaves the
        // old one (the dead tuple) unread; the major one `FULLSWEEP_AFTER` collections later
        // frees it, and the heap holds no memory.
        for _ in 0..FULLSWEEP_AFTER {
            h.collect(&lits).finish();
            assert_eq!(h.used_bytes(), 24);
        }
        h.collect(&lits).finish();
        assert_eq!(h.arena_bytes(), 0);
        assert_eq!(h.used_bytes(), 0);
    }

    /// A minor collection copies only the young objects the roots reach, into the old
    /// generation; old objects stay where they are, and the young ones they were built on top
    /// of point to them unchanged.
    #[test]
    fn minor_collections_promote_the_young_and_leave_the_old() {
        let lits = Literals::empty();
        let mut h = Heap::new();
        let mut list = Term::NIL;
        for i in 0..100 {
            list = h.cons(int(i), list);
        }
        // The first collection is major: everything live goes old.
        let mut c = h.collect(&lits);
        list = c.copy(list);
        c.finish();
        let old_list = list;
        let old_bytes = h.old_bytes();
        assert_eq!(old_bytes, 100 * 16);
        // Young cells on top of the old list, and young garbage.
        for i in 100..110 {
            list = h.cons(int(i), list);
            h.tuple(&[int(i); 8]);
        }
        let mut c = h.collect(&lits);
        list = c.copy(list);
        c.finish();
        // Promoted: the ten young cells; the old hundred were not copied again.
        assert_eq!(h.old_bytes(), old_bytes + 10 * 16);
        assert_eq!(h.used_bytes(), h.old_bytes());
        let mut tail = list;
        for _ in 0..10 {
            tail = read_cons(tail).unwrap().1;
        }
        assert_eq!(tail, old_list, "the old list is shared, not copied");
        assert_eq!(show(list).matches(',').count(), 109);
        assert_eq!(list_len(list), Some(110));
    }

    #[test]
    fn million_element_list_survives_gc_and_copy_into() {
        let lits = Literals::empty();
        // Miri (CI runs these tests under it) is ~1000× slower: a smaller list there.
        let n = if cfg!(miri) { 2_000 } else { 1_000_000 };
        let mut h = Heap::new();
        let l = long_list(&mut h, n);
        let mut c = h.collect(&lits);
        let l = c.copy(l);
        c.finish();
        assert_eq!(h.used_bytes(), n as usize * 16);
        assert_eq!(list_len(l), Some(n as usize));
        assert_eq!(sum_list(l), n * (n - 1) / 2);

        let mut other = Heap::new();
        let copy = other.copy_into(l, &lits, usize::MAX, usize::MAX).unwrap();
        assert_eq!(other.used_bytes(), n as usize * 16);
        drop(h);
        assert_eq!(sum_list(copy), n * (n - 1) / 2);

        // A list of 1,000,000 tuples (compound heads), then collected again.
        let mut h = Heap::new();
        let tl = (0..n).fold(Term::NIL, |tail, i| {
            let t = h.tuple(&[int(i)]);
            h.cons(t, tail)
        });
        let mut c = h.collect(&lits);
        let tl = c.copy(tl);
        c.finish();
        assert_eq!(h.used_bytes(), n as usize * (16 + 16));
        let mut other = Heap::new();
        let copy = other.copy_into(tl, &lits, usize::MAX, usize::MAX).unwrap();
        assert!(eq(copy, tl));
    }

    #[test]
    fn copy_into_is_a_deep_copy() {
        let lits = Literals::empty();
        let mut a = Heap::new();
        let inner = a.list_from(&[int(1), int(2)], int(3));
        let s = a.binary(b"bytes\xff");
        let big = a.int(i64::MAX);
        let t = a.tuple(&[inner, s, big, Term::pid(2), Term::NIL]);
        let mut b = Heap::new();
        let copy = b.copy_into(t, &lits, usize::MAX, usize::MAX).unwrap();
        assert_ne!(copy, t);
        assert!(eq(copy, t));
        // The source is unchanged and still usable (it was only read).
        assert_eq!(
            show(t),
            r#"{[1, 2 | 3], "bytes\xff", 9223372036854775807, <0.2>, []}"#
        );
        drop(a);
        assert_eq!(
            show(copy),
            r#"{[1, 2 | 3], "bytes\xff", 9223372036854775807, <0.2>, []}"#
        );
        // A term with a little sharing is copied as a tree while its tree form is no larger
        // than the source heap (as Erlang does).
        let l = b.list_from(&[int(1), int(2)], Term::NIL);
        let shared = b.tuple(&[l, l]);
        let mut c = Heap::new();
        let copied = c.copy_into(shared, &lits, usize::MAX, usize::MAX).unwrap();
        assert!(eq(copied, shared));
        assert_eq!(c.used_bytes(), (3 + 4 + 4) * 8);
    }

    /// Copy-on-send of a list inside a tuple copies each run of cells as one block: heads that
    /// are objects, a list in a head, an improper tail.
    #[test]
    fn copy_into_copies_runs_of_list_cells() {
        let lits = Literals::empty();
        let mut a = Heap::new();
        let tail = a.tuple(&[int(-1)]);
        let mut list = tail;
        for i in (0..50).rev() {
            let inner = a.list_from(&[int(i)], Term::NIL);
            let head = a.tuple(&[int(i), inner]);
            list = a.cons(head, list);
        }
        let t = a.tuple(&[Term::atom(0), list]);
        let want = show(t);
        let source_bytes = a.used_bytes();
        let mut b = Heap::new();
        let copy = b.copy_into(t, &lits, a.used_words(), usize::MAX).unwrap();
        drop(a);
        assert_eq!(show(copy), want);
        assert!(want.ends_with("{49, [49]} | {-1}]}"), "{want}");
        // A tree copy of a tree: exactly the source's words.
        assert_eq!(b.used_bytes(), source_bytes);
        // The top-level run is one block: cell k + 1 follows cell k.
        let Some(Boxed::Tuple(elems)) = read_boxed(copy) else {
            panic!("a tuple")
        };
        let (mut at, mut cells) = (elems[1], 0);
        while let Some((_, next)) = read_cons(at) {
            if next.is_cons() {
                assert_eq!(next.addr(), at.addr() + 16);
            }
            at = next;
            cells += 1;
        }
        assert_eq!(cells, 50);
        // Past the room, no more than the room is built (the run is not: its budget is taken
        // before its block).
        let mut c = Heap::new();
        assert!(c.copy_into(copy, &lits, usize::MAX, 100).is_err());
        assert!(c.used_bytes() <= 100 * 8, "{}", c.used_bytes());
    }

    #[test]
    fn lists_of_immediates_copy_in_one_block_of_any_length() {
        let lits = Literals::empty();
        for n in [1usize, 2, 3, 17] {
            for tail in [Term::NIL, int(-9)] {
                let mut a = Heap::new();
                let items: Vec<Term> = (0..n as i64).map(int).collect();
                let list = a.list_from(&items, tail);
                let want = show(list);
                let mut b = Heap::new();
                let copy = b
                    .copy_into(list, &lits, a.used_words(), usize::MAX)
                    .unwrap();
                drop(a);
                assert_eq!(show(copy), want);
                assert_eq!(b.used_words(), 2 * n);
                // Too little room: nothing is copied.
                let mut c = Heap::new();
                assert!(c.copy_into(copy, &lits, usize::MAX, 2 * n - 1).is_err());
                assert_eq!(c.used_words(), 0);
            }
        }
    }

    /// Copies and collections take a run of cells laid out one after the other (what
    /// `list_from`, a copy and a collection make) without reading each tail's address: lists
    /// whose cells lie every which way copy alike, a run stops where the cells stop being in
    /// sequence, and a collection keeps sharing into the middle of a run.
    #[test]
    fn lists_copy_alike_however_their_cells_lie() {
        let lits = Literals::empty();
        let mut a = Heap::new();
        let items: Vec<Term> = (0..9).map(int).collect();
        let pair = a.tuple(&[int(1), int(2)]);
        let built = long_list(&mut a, 5); // cell by cell: each tail lies before its cell
        let in_sequence = a.list_from(&items, Term::NIL);
        let then_built = a.list_from(&items[..4], built);
        let built_then = a.cons(int(-1), in_sequence);
        let improper = a.list_from(&items[..3], int(7));
        let hi = a.binary(b"hi");
        let with_boxes = a.list_from(&[pair, int(3), pair, hi], Term::NIL);
        let nested = a.list_from(&[in_sequence, built, then_built], Term::NIL);
        let lists = [
            built,
            in_sequence,
            then_built,
            built_then,
            improper,
            with_boxes,
            nested,
        ];
        for &l in &lists {
            let want = show(l);
            // Copy-on-send (the flat path, or the tree copier for lists of boxes).
            let mut b = Heap::new();
            let copy = b.copy_into(l, &lits, a.used_words(), usize::MAX).unwrap();
            assert_eq!(show(copy), want);
            // The copy as a message inside a tuple (the tree copier's list runs).
            let msg = b.tuple(&[Term::atom(1), copy]);
            let mut c = Heap::new();
            let back = c.copy_into(msg, &lits, b.used_words(), usize::MAX).unwrap();
            assert_eq!(show(back), format!("{{:{}, {want}}}", names(1)));
            // Collected, with a root into the middle of the list first, then the whole.
            let middle = crate::term::list_iter(copy).count() / 2;
            let mut suffix = copy;
            for _ in 0..middle {
                suffix = read_cons(suffix).unwrap().1;
            }
            let mut roots = [suffix, copy];
            let mut col = b.collect(&lits);
            col.copy_all(&mut roots);
            col.finish();
            assert_eq!(show(roots[1]), want);
            let mut at = roots[1];
            for _ in 0..middle {
                at = read_cons(at).unwrap().1;
            }
            assert_eq!(
                at, roots[0],
                "{want}: the suffix is shared, not copied twice"
            );
        }
        // A run that does not fit: nothing copied.
        let mut d = Heap::new();
        assert!(d.copy_into(in_sequence, &lits, usize::MAX, 17).is_err());
        assert_eq!(d.used_words(), 0);
        let mut d = Heap::new();
        assert!(d.copy_into(then_built, &lits, usize::MAX, 17).is_err());
        assert_eq!(d.used_words(), 0);
    }

    /// `{r1, r1}` nested: a tree form of 2^depth leaves in `depth` tuples.
    fn bomb(h: &mut Heap, depth: usize) -> Term {
        let mut t = h.list_from(&[int(1), int(2)], Term::NIL);
        for _ in 0..depth {
            t = h.tuple(&[t, t]);
        }
        t
    }

    #[test]
    fn small_terms_travel_flat() {
        let (lits, terms) = sample_literals();
        let mut a = Heap::new();
        let s = a.binary(b"hi");
        let l = a.list_from(&[int(1), terms[0]], int(2));
        let big = a.int(i64::MIN);
        let cases = [
            int(5),
            a.tuple(&[Term::atom(0), int(42)]),
            a.tuple(&[s, l]),
            big,
            terms[1],
            a.tuple(&[]),
            a.list_from(&[int(1), int(2), int(3)], Term::NIL),
        ];
        for t in cases {
            let mut flat = Flat::new();
            assert!(flatten(t, &lits, &mut flat), "{}", show(t));
            assert!(flat.len() <= FLAT_WORDS);
            let mut b = Heap::new();
            let back = b.unflatten(&flat);
            assert!(eq(back, t), "{} came back as {}", show(t), show(back));
        }
        // Too large: a longer list, a longer binary.
        let long = long_list(&mut a, 20);
        assert!(!flatten(long, &lits, &mut Flat::new()));
        let bin = a.binary(&[7; 100]);
        assert!(!flatten(bin, &lits, &mut Flat::new()));
    }

    #[test]
    fn adopted_fragments_belong_to_the_heap_until_collected() {
        let lits = Literals::empty();
        let mut h = Heap::new();
        let own = h.tuple(&[int(1)]);
        // Messages built in heaps of their own (as another scheduler's sender does).
        let mut keep = Vec::new();
        for i in 0..100 {
            let mut frag = Heap::new();
            let l = long_list(&mut frag, 10);
            let msg = frag.tuple(&[int(i), l]);
            h.adopt(frag);
            keep.push(msg);
        }
        // What the fragments hold from the allocator counts, at least their objects.
        assert!(h.used_bytes() >= 2 * 8 + 100 * (3 + 20) * 8);
        assert!(h.arena_bytes() >= h.used_bytes());
        // Half of them survive a collection; the fragments are freed.
        let mut c = h.collect(&lits);
        let own = c.copy(own);
        let kept: Vec<Term> = keep.iter().step_by(2).map(|&t| c.copy(t)).collect();
        c.finish();
        assert_eq!(h.used_bytes(), 2 * 8 + 50 * (3 + 20) * 8);
        assert_eq!(show(own), "{1}");
        assert_eq!(show(kept[1]), "{2, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}");
        assert!(h.fragments.is_none());
        // An empty heap adopts nothing.
        h.adopt(Heap::new());
        assert!(h.fragments.is_none());
    }

    #[test]
    fn copy_into_keeps_the_sharing_of_a_dag() {
        let lits = Literals::empty();
        let mut a = Heap::new();
        let t = bomb(&mut a, 60);
        let mut b = Heap::new();
        let copy = b
            .copy_into(t, &lits, a.used_words(), usize::MAX)
            .expect("a DAG of 60 tuples fits");
        // Each object copied once (plus the garbage of the tree copy that stopped when the
        // copy outgrew its source, at most the source's size).
        assert!(b.used_bytes() <= 2 * a.used_bytes(), "{}", b.used_bytes());
        let mut gc = b.collect(&lits);
        let copy = gc.copy(copy);
        gc.finish();
        assert_eq!(
            b.used_bytes(),
            a.used_bytes(),
            "after a collection: the DAG alone"
        );
        // Inner sharing is kept: both elements are the same object.
        let (x, y) = (tuple_get(copy, 0).unwrap(), tuple_get(copy, 1).unwrap());
        assert_eq!(x, y);
        let mut leaf = copy;
        while let Some(inner) = tuple_get(leaf, 0) {
            leaf = inner;
        }
        assert_eq!(show(leaf), "[1, 2]");
        // A small DAG is equal to a tree copy of itself.
        let small = bomb(&mut a, 3);
        let dag = b
            .copy_into(small, &lits, a.used_words(), usize::MAX)
            .unwrap();
        let tree = b.copy_into(small, &lits, usize::MAX, usize::MAX).unwrap();
        assert!(eq(dag, tree) && eq(dag, small));
    }

    #[test]
    fn copy_into_never_builds_more_than_the_room() {
        let lits = Literals::empty();
        let mut a = Heap::new();
        let l = long_list(&mut a, 1000);
        let mut b = Heap::new();
        assert_eq!(b.copy_into(l, &lits, a.used_words(), 1999), Err(TooBig));
        assert!(b.used_bytes() <= 1999 * 8, "never more than the room");
        assert!(b.copy_into(l, &lits, a.used_words(), 2000).is_ok());
        // A bomb whose DAG is larger than the room is refused too, quickly.
        let t = bomb(&mut a, 200);
        let mut c = Heap::new();
        assert_eq!(c.copy_into(t, &lits, a.used_words(), 100), Err(TooBig));
        assert!(c.used_bytes() <= 100 * 8);
        // Immediates and literals need no room.
        assert_eq!(c.copy_into(int(3), &lits, 0, 0), Ok(int(3)));
    }

    #[test]
    fn trie_nodes_copy_with_one_field_replaced() {
        let mut h = Heap::new();
        let node = h.hamt_from_fn(4, |i| int(i as i64));
        let Some(Boxed::Hamt(f)) = read_boxed(node) else {
            panic!("a trie node")
        };
        let copy = h.hamt_replacing(f, 2, int(99));
        let Some(Boxed::Hamt(g)) = read_boxed(copy) else {
            panic!("a trie node")
        };
        assert_eq!(g, &[int(0), int(1), int(99), int(3)]);
        // The original is untouched.
        assert_eq!(f, &[int(0), int(1), int(2), int(3)]);
    }

    #[test]
    fn big_ints_survive() {
        let lits = Literals::empty();
        let mut h = Heap::new();
        let values = [
            i64::MIN,
            i64::MAX,
            crate::word::SMALL_MAX + 1,
            crate::word::SMALL_MIN - 1,
        ];
        let items: Vec<Term> = values.iter().map(|&i| h.int(i)).collect();
        let l = h.list_from(&items, Term::NIL);
        let mut c = h.collect(&lits);
        let l = c.copy(l);
        c.finish();
        let got: Vec<i64> = crate::term::list_iter(l)
            .map(|t| t.as_int().unwrap())
            .collect();
        assert_eq!(got, values);
        let mut other = Heap::new();
        let l = other.copy_into(l, &lits, usize::MAX, usize::MAX).unwrap();
        let got: Vec<i64> = crate::term::list_iter(l)
            .map(|t| t.as_int().unwrap())
            .collect();
        assert_eq!(got, values);
    }

    fn sample_literals() -> (Literals, Vec<Term>) {
        let nodes = vec![
            Node::Tuple(vec![
                Node::Atom(7),
                Node::Binary(b"lit\n".to_vec()),
                Node::Int(-3),
            ]),
            Node::List(
                vec![Node::Int(1), Node::Tuple(vec![])],
                Box::new(Node::Atom(8)),
            ),
            Node::Int(i64::MIN),
            Node::Atom(9),
            Node::Nil,
            Node::Binary(Vec::new()),
            Node::List(
                vec![Node::List(vec![Node::Nil], Box::new(Node::Nil))],
                Box::new(Node::Nil),
            ),
        ];
        // Module atoms 7, 8, 9 are VM atoms 0, 1, 2.
        Literals::build(&nodes, &|a| a - 7)
    }

    #[test]
    fn a_template_image_builds_in_one_block() {
        enum T {
            R(u8),
            C(Term),
            Tup(Vec<T>),
            L(Vec<T>, Box<T>),
        }
        fn shape(t: &T) -> Shape<'_, T> {
            match t {
                T::R(r) => Shape::Reg(*r),
                T::C(c) => Shape::Const(*c),
                T::Tup(items) => Shape::Tuple(items),
                T::L(items, tail) => Shape::List(items, tail),
            }
        }
        let (_lits, terms) = sample_literals();
        // {r0, [r1, r1 | :x], {}, literal}
        let t = T::Tup(vec![
            T::R(0),
            T::L(vec![T::R(1), T::R(1)], Box::new(T::C(Term::atom(1)))),
            T::Tup(vec![]),
            T::C(terms[0]),
        ]);
        let image = Image::of(&t, &shape).expect("a fixed shape");
        let mut h = Heap::new();
        let inner = h.tuple(&[Term::small_int(7).unwrap()]);
        let regs = [Term::small_int(-1).unwrap(), inner];
        let built = h.build_image(&image, &regs);
        assert_eq!(
            show(built),
            r#"{-1, [{7}, {7} | :x], {}, {:ok, "lit\n", -3}}"#
        );
        // tuple 5 + cells 4 + empty tuple 1.
        assert_eq!(h.used_words(), 2 + 5 + 4 + 1);
        let list = T::L(vec![T::R(0)], Box::new(T::C(Term::NIL)));
        let image = Image::of(&list, &shape).expect("a fixed shape");
        assert_eq!(show(h.build_image(&image, &regs)), "[-1]");
        assert!(Image::of(&T::R(0), &shape).is_none());
        // Both ways of building: words copied inline and patched from lists (up to 16),
        // and beyond (`memcpy`, patched from the lists): a tuple of n elements, each a cell
        // [r0 | r1], a constant or a tuple, has the same printed form each way.
        for n in [1, 2, 4, 5, 6, 7, 15, 20, 21, 40, 63, 64, 100] {
            let items = (0..n)
                .map(|i| match i % 3 {
                    0 => T::L(vec![T::R(0)], Box::new(T::R(1))),
                    1 => T::C(Term::small_int(i).unwrap()),
                    _ => T::Tup(vec![T::R(1), T::C(terms[0])]),
                })
                .collect();
            let image = Image::of(&T::Tup(items), &shape).expect("a fixed shape");
            let expected = (0..n)
                .map(|i| match i % 3 {
                    0 => "[-1 | {7}]".to_string(),
                    1 => i.to_string(),
                    _ => r#"{{7}, {:ok, "lit\n", -3}}"#.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let before = h.used_words();
            assert_eq!(
                show(h.build_image(&image, &regs)),
                format!("{{{expected}}}")
            );
            assert_eq!(h.used_words() - before, image.words.len());
        }
        // Every count of pointers and registers, inside the builders made for them (up to 4
        // each) and beyond: {r0, r1, ..., {}, {}, ...} built by the image's own builder, and
        // by the one that reads its counts, print alike.
        for rels in 0..=5 {
            for nregs in 0..=5usize {
                let items = (0..nregs)
                    .map(|i| T::R((i % 2) as u8))
                    .chain((0..rels).map(|_| T::Tup(vec![])))
                    .collect();
                let image = Image::of(&T::Tup(items), &shape).expect("a fixed shape");
                assert_eq!(image.small_patches(), Some((rels, nregs)));
                let expected = ["-1", "{7}"]
                    .iter()
                    .cycle()
                    .take(nregs)
                    .copied()
                    .chain((0..rels).map(|_| "{}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                assert_eq!(
                    show(h.build_image(&image, &regs)),
                    format!("{{{expected}}}")
                );
                let p = h.alloc(image.words.len());
                // SAFETY: `regs` holds both registers the image reads; `p` is a fresh block
                // of its size.
                let any = unsafe { build_small_image::<ANY, ANY>(&image, regs.as_ptr(), p) };
                assert_eq!(show(any), format!("{{{expected}}}"));
            }
        }
    }

    #[test]
    fn gc_copies_list_runs_in_blocks_and_keeps_sharing() {
        let lits = Literals::empty();
        let mut h = Heap::new();
        let ints: Vec<Term> = (1..=5).map(|i| Term::small_int(i).unwrap()).collect();
        let l = h.list_from(&ints, Term::NIL);
        let t1 = h.tuple(&[ints[0]]);
        let t2 = h.tuple(&[ints[1]]);
        let a = h.cons(t1, l);
        let b = h.cons(ints[4], l);
        let of_tuples = h.list_from(&[t1, t2, t1], Term::NIL);
        let (_, rest) = read_cons(l).unwrap();
        let (_, mid) = read_cons(rest).unwrap();
        let _garbage = h.list_from(&ints, Term::NIL);
        // The middle of `l` is a root too: copied first, it splits `l`'s run in two.
        let mut roots = [mid, a, b, of_tuples, l];
        let mut c = h.collect(&lits);
        c.copy_all(&mut roots);
        c.finish();
        let [mid, a, b, of_tuples, l] = roots;
        assert_eq!(show(a), "[{1}, 1, 2, 3, 4, 5]");
        assert_eq!(show(b), "[5, 1, 2, 3, 4, 5]");
        assert_eq!(show(of_tuples), "[{1}, {2}, {1}]");
        assert_eq!(show(mid), "[3, 4, 5]");
        let tail = |t: Term| read_cons(t).unwrap().1;
        assert_eq!(tail(a).raw(), l.raw());
        assert_eq!(tail(b).raw(), l.raw());
        assert_eq!(tail(tail(l)).raw(), mid.raw());
        let head = |t: Term| read_cons(t).unwrap().0;
        assert_eq!(head(a).raw(), head(of_tuples).raw());
        assert_eq!(head(tail(tail(of_tuples))).raw(), head(a).raw());
        // Live: l's 5 cells, a's and b's one each, 3 cells of tuples, two tuples of 2 words.
        assert_eq!(h.used_words(), 2 * 5 + 2 + 2 + 2 * 3 + 2 * 2);
    }

    #[test]
    fn a_purge_copies_a_freed_areas_literals_out_and_finds_its_functions() {
        let (first, _) = sample_literals();
        // A loaded version's area: a literal tuple shared twice, and a function of its code.
        let nodes = [
            Node::Tuple(vec![Node::Atom(7), Node::Binary(b"v2".to_vec())]),
            Node::Tuple(vec![Node::Fun(5)]),
        ];
        let (lits, terms) = first.with_area(&nodes, &|a| a - 7, 42);
        assert!(lits.contains_term(terms[0]) && !first.contains_term(terms[0]));
        let mut h = Heap::new();
        let shared = h.tuple(&[terms[0], terms[0]]);
        let mut regs = [shared, terms[0], Term::small_int(1).unwrap()];
        let remaining = lits.without(42);
        let area = lits.area_of(42).expect("the area");
        let tainted = HashSet::new();
        let purge = Purge {
            area: Some(&area),
            old_fun: &|f| f == 5,
            tainted: &tainted,
            found: std::cell::Cell::new(false),
        };
        let mut c = h.collect_purging(&remaining, &purge);
        c.copy_all(&mut regs);
        c.finish();
        assert!(!purge.found.get());
        drop((lits, area, terms));
        // The area is gone; the copies are in the heap, still shared.
        assert!(!remaining.contains_term(regs[1]));
        assert_eq!(show(regs[0]), r#"{{:ok, "v2"}, {:ok, "v2"}}"#);
        match (regs[0].view(), regs[1]) {
            (View::Tuple(e), one) => assert_eq!(e[0].raw(), one.raw()),
            _ => unreachable!(),
        }
        // A second purge of the same heap finds a function of the purged code.
        let (lits, terms) = first.with_area(&nodes, &|a| a - 7, 43);
        let f = h.tuple(&[terms[1]]);
        let mut roots = [f];
        let area = lits.area_of(43).expect("the area");
        let remaining = lits.without(43);
        let purge = Purge {
            area: Some(&area),
            old_fun: &|f| f == 5,
            tainted: &tainted,
            found: std::cell::Cell::new(false),
        };
        let mut c = h.collect_purging(&remaining, &purge);
        c.copy_all(&mut roots);
        c.finish();
        assert!(purge.found.get());
    }

    #[test]
    fn literals_build() {
        let (lits, terms) = sample_literals();
        let shown: Vec<String> = terms.iter().map(|&t| show(t)).collect();
        assert_eq!(
            shown,
            [
                r#"{:ok, "lit\n", -3}"#,
                "[1, {} | :x]",
                &i64::MIN.to_string(),
                ":ping",
                "[]",
                r#""""#,
                "[[[]]]"
            ]
        );
        // tuple 4 + binary 2, cells 4 + tuple 1, big int 2, binary 1, cells 2 + 2.
        assert_eq!(lits.size_bytes(), (4 + 2 + 4 + 1 + 2 + 1 + 4) * 8);
        assert!(lits.contains_term(terms[0]) && lits.contains_term(terms[2]));
        assert!(!lits.contains_term(terms[3]) && !lits.contains_term(Term::NIL));
        let mut h = Heap::new();
        let t = h.tuple(&[]);
        assert!(!lits.contains_term(t));
        // Several modules in one area.
        let a: &[Node] = &[Node::Atom(0)];
        let b: &[Node] = &[Node::Atom(0), Node::Tuple(vec![Node::Atom(1)])];
        let (many, tables) = Literals::build_many(&[(a, &|x| x), (b, &|x| x + 1)]);
        assert_eq!(tables.len(), 2);
        assert_eq!(show(tables[0][0]), ":ok");
        assert_eq!(show(tables[1][0]), ":x");
        assert_eq!(show(tables[1][1]), "{:ping}");
        assert!(many.contains_term(tables[1][1]));
        let (empty, none) = Literals::build(&[], &|x| x);
        assert_eq!((empty.size_bytes(), none.len()), (0, 0));
    }

    #[test]
    fn literals_are_shared_not_copied() {
        let (lits, terms) = sample_literals();
        let mut h = Heap::new();
        let root = h.tuple(&[terms[0], terms[1], terms[2]]);
        let l = h.cons(terms[0], Term::NIL);
        let mut c = h.collect(&lits);
        let root = c.copy(root);
        let direct = c.copy(terms[1]);
        let l = c.copy(l);
        c.finish();
        assert_eq!(tuple_get(root, 0), Some(terms[0]), "pointer identity");
        assert_eq!(tuple_get(root, 1), Some(terms[1]));
        assert_eq!(tuple_get(root, 2), Some(terms[2]));
        assert_eq!(direct, terms[1]);
        assert_eq!(crate::term::cons_parts(l).map(|p| p.0), Some(terms[0]));
        assert_eq!(
            h.used_bytes(),
            (4 + 2) * 8,
            "only the heap's own tuple and cell"
        );
        let mut other = Heap::new();
        assert_eq!(
            other
                .copy_into(terms[0], &lits, usize::MAX, usize::MAX)
                .unwrap(),
            terms[0]
        );
        assert_eq!(other.used_bytes(), 0);
        let copy = other
            .copy_into(root, &lits, usize::MAX, usize::MAX)
            .unwrap();
        assert_eq!(tuple_get(copy, 0), Some(terms[0]));
        assert_eq!(tuple_get(copy, 1), Some(terms[1]));
        assert_eq!(other.used_bytes(), 4 * 8);
        assert_eq!(
            show(copy),
            format!(r#"{{{{:ok, "lit\n", -3}}, [1, {{}} | :x], {}}}"#, i64::MIN)
        );
        // A heap term inside a template built from literals is copied, the literal is not.
        match root.view() {
            View::Tuple(elems) => assert!(elems.iter().all(|&e| lits.contains_term(e))),
            _ => unreachable!(),
        }
    }

    /// Debug builds catch a root that is not a term of the heap being collected.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "points neither into this heap")]
    fn collector_rejects_foreign_terms() {
        let lits = Literals::empty();
        let mut a = Heap::new();
        let mut b = Heap::new();
        a.tuple(&[int(1)]);
        let foreign = b.tuple(&[int(2)]);
        let mut c = a.collect(&lits);
        c.copy(foreign);
    }

    /// A process that keeps little holds little: a ring member takes one small message after
    /// another, and its young generation is one chunk of the policy's size from the first
    /// message on (not a chain of doubling chunks, which took 3.4 KiB for 2 KiB of objects).
    #[test]
    fn a_young_generation_is_one_chunk_of_its_allowance() {
        let lits = Literals::empty();
        let mut sender = Heap::new();
        let mut h = Heap::new();
        let mut regs = [Term::NIL; 2];
        let (mut first_young, mut max_arena) = (0, 0);
        let n = if cfg!(miri) { 2_000 } else { 100_000 };
        for i in 0..n {
            let msg = sender.tuple(&[Term::atom(0), int(i)]);
            regs[0] = h.copy_into(msg, &lits, 3, usize::MAX).unwrap();
            if i == 0 {
                first_young = h.young.arena.allocated_bytes();
            }
            if h.needs_gc() {
                let mut c = h.collect(&lits);
                c.copy_all(&mut regs);
                c.finish();
            }
            // SAFETY: nothing is allocated while the iterator lives; only counted.
            let chunks = unsafe { h.young.arena.iter_allocated_chunks_raw() }.count();
            assert!(
                chunks <= 1,
                "message {i}: the young generation is {chunks} chunks"
            );
            max_arena = max_arena.max(h.arena_bytes());
            if sender.used_bytes() > 1 << 16 {
                sender = Heap::new();
            }
        }
        assert_eq!(show(regs[0]), format!("{{:ok, {}}}", n - 1));
        assert!(h.collections() >= n as u64 * 24 / MIN_GC_LIMIT as u64 / 2);
        // The first chunk: MIN_GC_LIMIT + YOUNG_SLACK, 1 KiB with bumpalo's footer.
        assert_eq!(first_young, MIN_GC_LIMIT + YOUNG_SLACK);
        // And the old generation the messages promoted until a major collection (at
        // MIN_OLD_LIMIT), in bumpalo's doubling chunks.
        assert!(max_arena <= 8192, "the heap grew to {max_arena} bytes");
    }

    /// The VM's loop: an instruction allocates, between instructions the VM collects when
    /// `needs_gc` says so with its registers as roots. Memory must stay bounded.
    #[test]
    fn churn_stays_bounded() {
        let lits = Literals::empty();
        let mut h = Heap::new();
        let mut regs = [Term::NIL; 4];
        let mut max_arena = 0;
        let n = if cfg!(miri) { 3_000 } else { 1_000_000 };
        for i in 0..n {
            regs[0] = h.tuple(&[int(i), Term::atom(1), regs[1]]);
            regs[1] = h.tuple(&[Term::atom(0), int(i)]); // previous one becomes garbage
            regs[2] = h.cons(regs[1], Term::NIL);
            if h.needs_gc() {
                let mut c = h.collect(&lits);
                c.copy_all(&mut regs);
                c.finish();
            }
            max_arena = max_arena.max(h.arena_bytes());
        }
        assert_eq!(
            show(regs[0]),
            format!("{{{}, :x, {{:ok, {}}}}}", n - 1, n - 2)
        );
        assert_eq!(show(regs[2]), format!("[{{:ok, {}}}]", n - 1));
        assert!(h.collections() > n as u64 / 1000);
        // (The old generation, at most about twice the live data, and the young chunk kept
        // from one minor collection to the next: bounded, whatever `n`.)
        assert!(max_arena <= 16384, "arena grew to {max_arena} bytes");
    }
}
