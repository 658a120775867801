//! Maps, as the BEAM has them: a small map is a flat, sorted array of keys and values; a map
//! of more than [`FLAT_MAX`] entries is a hash array mapped trie (HAMT), so that `map_get` and
//! `map_put` on a map of a million entries touch a handful of nodes.
//!
//! # Layout (heap kinds 6 and 7, see `heap.rs`)
//!
//! A map object's fields: the entry count `n` (a small integer), then
//! - when `n <= FLAT_MAX`: `k0, v0, k1, v1, ...` with the keys in *map-key order* (term order,
//!   except that every integer sorts before every float, so `1` and `1.0` are two keys);
//! - otherwise: one field, the root node of the trie.
//!
//! A trie node's fields (the CHAMP layout: entries inline, so a lookup follows no pointer to
//! its entry): two bitmaps (small integers) of the 32 slots of its level, `data` for the slots
//! that hold an entry and `kids` for those that hold a deeper node; then the entries as key,
//! value words in slot order; then the deeper nodes in slot order. Level `L` indexes slots with
//! bits `5L..5L+5` of the key's 64-bit [`hash`]; keys whose 64 bits are all equal meet in a
//! *collision node* below the last level: `data` is `-1`, `kids` 0, then their entries in
//! map-key order.
//!
//! # Canonical form
//!
//! A map has exactly one layout for a given set of entries: flat iff at most `FLAT_MAX`
//! entries, and in a trie an entry sits at the shallowest level where no other key shares its
//! slot path (a node other than the root never holds a single entry and nothing else). So equal maps are
//! equal word by word in structure, and `=:=`, `==` and hashing walk them without sorting.
//!
//! Maps are values: every operation builds new objects on the process heap and shares the
//! untouched parts of the old map (the nodes off the path it changed).

use std::cmp::Ordering;

use smallvec::SmallVec;

use crate::heap::{self, Boxed, Heap};
use crate::term::{self, Term, View};

/// The most entries a flat map holds; a larger map is a trie (the BEAM's threshold).
pub const FLAT_MAX: usize = 32;

/// Bits of the hash each trie level consumes.
const LEVEL_BITS: u32 = 5;
/// Levels `0..=LAST_LEVEL` index by the hash (the last one has only 4 bits left).
const LAST_LEVEL: u32 = 12;
/// The `data` bitmap of a collision node.
const COLLISION: i64 = -1;
/// The most words a node has: two bitmaps, and two words per slot.
const NODE_WORDS: usize = 2 + 2 * 32;
type Words = SmallVec<[Term; NODE_WORDS]>;

/// A map's entries: flat (key, value words in key order) or the root of a trie.
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    Flat(&'static [Term]),
    Trie(Term),
}

/// The fields of map `m`, or `None` if `m` is not a map.
pub(crate) fn fields(m: Term) -> Option<&'static [Term]> {
    match heap::read_boxed(m)? {
        Boxed::Map(f) => Some(f),
        _ => None,
    }
}

/// The number of entries and the shape of a map's `fields`.
pub(crate) fn shape(fields: &'static [Term]) -> (usize, Shape) {
    let n = fields[0].as_small_int().unwrap_or(0) as usize;
    if fields.len() == 1 + 2 * n {
        (n, Shape::Flat(&fields[1..]))
    } else {
        (n, Shape::Trie(fields[1]))
    }
}

fn small(i: i64) -> Term {
    Term::small_int(i).expect("a small integer")
}

fn node_fields(node: Term) -> &'static [Term] {
    match heap::read_boxed(node) {
        Some(Boxed::Hamt(f)) => f,
        _ => unreachable!("a map's trie holds only nodes: {node:?}"),
    }
}

/// A trie node taken apart.
#[derive(Clone, Copy)]
struct Node {
    /// Slots holding an entry (0 in a collision node).
    data: u32,
    /// Slots holding a deeper node.
    kids: u32,
    /// The entries: key, value, key, value, ...
    pairs: &'static [Term],
    children: &'static [Term],
    collision: bool,
}

impl Node {
    fn of(node: Term) -> Node {
        let f = node_fields(node);
        let data = f[0].as_small_int().unwrap_or(0);
        if data == COLLISION {
            return Node {
                data: 0,
                kids: 0,
                pairs: &f[2..],
                children: &[],
                collision: true,
            };
        }
        let data = data as u32;
        let n = 2 + 2 * data.count_ones() as usize;
        Node {
            data,
            kids: f[1].as_small_int().unwrap_or(0) as u32,
            pairs: &f[2..n],
            children: &f[n..],
            collision: false,
        }
    }

    fn entries(&self) -> impl Iterator<Item = (Term, Term)> + '_ {
        self.pairs.chunks_exact(2).map(|p| (p[0], p[1]))
    }

    /// The index of slot `bit`'s entry among the entries, or of its node among the nodes.
    fn data_index(&self, bit: u32) -> usize {
        (self.data & (bit - 1)).count_ones() as usize
    }

    fn kid_index(&self, bit: u32) -> usize {
        (self.kids & (bit - 1)).count_ones() as usize
    }
}

/// A node of the given bitmaps, entries and children.
fn node(heap: &mut Heap, data: i64, kids: u32, pairs: &[Term], children: &[Term]) -> Term {
    let n = pairs.len();
    heap.hamt_from_fn(2 + n + children.len(), |i| match i {
        0 => small(data),
        1 => small(i64::from(kids)),
        i if i < 2 + n => pairs[i - 2],
        i => children[i - 2 - n],
    })
}

fn slot(hash: u64, level: u32) -> u32 {
    ((hash >> (LEVEL_BITS * level)) & 31) as u32
}

// ---- hashing ----

const K: u64 = 0x517c_c1b7_2722_0a95;
/// How many parts of a term [`hash`] looks at, at most.
const HASH_WORK: usize = 256;

fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(K)
}

/// A 64-bit hash of `t` that depends only on its value (exact equality, `=:=`): the same in
/// every process and after any copy or collection. Iterative: any shape of term is fine.
pub(crate) fn hash(t: Term) -> u64 {
    if t.is_immediate() {
        // The common key: no stack.
        return finish(mix(0, t.raw()));
    }
    let mut h = 0u64;
    let mut todo: SmallVec<[Term; 8]> = SmallVec::new();
    todo.push(t);
    // Only the first `HASH_WORK` parts of the walk are hashed: equal terms walk alike, so the
    // hash stays a function of the value, and a term with shared parts (a tree of 2^40 leaves
    // in 40 tuples) costs no more than a small one.
    let mut work = 0;
    while let Some(t) = todo.pop() {
        work += 1;
        if work > HASH_WORK {
            break;
        }
        if t.is_immediate() {
            // Small integers, atoms, pids, references, `[]`: the word says it all (a big
            // integer is never equal to a small one).
            h = mix(h, t.raw());
            continue;
        }
        match t.view() {
            View::Int(i) => h = mix(mix(h, 1), i as u64),
            // `0.0 =:= -0.0`: one hash for both.
            View::Float(f) => h = mix(mix(h, 2), if f == 0.0 { 0 } else { f.to_bits() }),
            View::Binary(bytes) => {
                h = mix(mix(h, 3), bytes.len() as u64);
                let mut chunks = bytes.chunks_exact(8);
                for c in &mut chunks {
                    h = mix(h, u64::from_le_bytes(c.try_into().expect("8 bytes")));
                }
                let mut last = [0u8; 8];
                last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
                h = mix(h, u64::from_le_bytes(last));
            }
            View::Tuple(elems) => {
                h = mix(mix(h, 4), elems.len() as u64);
                todo.extend(elems.iter().rev().copied());
            }
            View::Closure(fields) => {
                h = mix(mix(h, 5), fields.len() as u64);
                todo.extend(fields.iter().rev().copied());
            }
            View::Cons(head, tail) => {
                h = mix(h, 6);
                todo.push(tail);
                todo.push(head);
            }
            // The canonical layout makes the structure a function of the entries.
            View::Map(fields) => {
                h = mix(mix(h, 7), fields.len() as u64);
                match shape(fields).1 {
                    Shape::Flat(pairs) => todo.extend(pairs.iter().rev().copied()),
                    Shape::Trie(root) => push_node(root, &mut todo, &mut h),
                }
            }
            _ => unreachable!("immediates are handled above"),
        }
    }
    finish(h)
}

/// A finaliser (splitmix64's): every bit of the input moves the low bits the trie uses.
fn finish(mut h: u64) -> u64 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Hashing a trie: the bitmaps, then its entries' keys and values and its nodes (nodes are
/// not terms, so they are expanded here rather than viewed), as far as `hash` will look.
fn push_node(root: Term, todo: &mut SmallVec<[Term; 8]>, h: &mut u64) {
    let mut nodes = vec![root];
    while let Some(n) = nodes.pop() {
        if todo.len() > HASH_WORK {
            return;
        }
        let f = node_fields(n);
        *h = mix(mix(*h, f[0].raw()), f[1].raw());
        let n = Node::of(n);
        todo.extend(n.pairs.iter().rev().copied());
        nodes.extend_from_slice(n.children);
    }
}

/// Walks two tries in step, calling `pair(k1, k2, v1, v2)` for the entries in the same
/// place; false as soon as their structure differs (then the maps differ: layouts are
/// canonical).
pub(crate) fn tries_pair_up(
    a: Term,
    b: Term,
    pair: &mut impl FnMut(Term, Term, Term, Term),
) -> bool {
    let mut nodes = vec![(a, b)];
    while let Some((x, y)) = nodes.pop() {
        if x == y {
            continue;
        }
        let (f, g) = (node_fields(x), node_fields(y));
        if f.len() != g.len() || f[0] != g[0] || f[1] != g[1] {
            return false;
        }
        let (n, m) = (Node::of(x), Node::of(y));
        for ((k1, v1), (k2, v2)) in n.entries().zip(m.entries()) {
            pair(k1, k2, v1, v2);
        }
        nodes.extend(n.children.iter().copied().zip(m.children.iter().copied()));
    }
    true
}

// ---- reading ----

/// The value of key `k` in the map whose fields are `fields`.
pub(crate) fn get(fields: &'static [Term], k: Term) -> Option<Term> {
    match shape(fields).1 {
        Shape::Flat(pairs) => pairs
            .chunks_exact(2)
            .find(|p| p[0] == k || term::eq(p[0], k))
            .map(|p| p[1]),
        Shape::Trie(root) => trie_get(root, hash(k), k),
    }
}

fn trie_get(mut node: Term, h: u64, k: Term) -> Option<Term> {
    let mut level = 0;
    loop {
        let n = Node::of(node);
        if n.collision {
            return n.entries().find(|&(ek, _)| term::eq(ek, k)).map(|(_, v)| v);
        }
        let bit = 1u32 << slot(h, level);
        if n.data & bit != 0 {
            let i = 2 * n.data_index(bit);
            let ek = n.pairs[i];
            return (ek == k || term::eq(ek, k)).then_some(n.pairs[i + 1]);
        }
        if n.kids & bit == 0 {
            return None;
        }
        node = n.children[n.kid_index(bit)];
        level += 1;
    }
}

/// Every entry of a trie, in no particular order.
fn trie_entries(root: Term, out: &mut Vec<(Term, Term)>) {
    let mut nodes = vec![root];
    while let Some(node) = nodes.pop() {
        let n = Node::of(node);
        out.extend(n.entries());
        nodes.extend_from_slice(n.children);
    }
}

/// The entries of a map in map-key order.
pub(crate) fn sorted_entries<'n>(
    fields: &'static [Term],
    names: &dyn Fn(u32) -> &'n str,
) -> Vec<(Term, Term)> {
    match shape(fields).1 {
        Shape::Flat(pairs) => pairs.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
        Shape::Trie(root) => {
            let mut out = Vec::with_capacity(shape(fields).0);
            trie_entries(root, &mut out);
            // Sorting compares keys, and a key may be a large map whose entries must be sorted
            // in turn, whose keys may be large maps...: each level multiplies the work (and
            // deepens the Rust stack). Past `MAX_SORT_DEPTH` levels, entries are ordered by
            // their keys' hashes instead: one fixed order for equal maps, so the order of maps
            // stays total and consistent, but it is Erlang's only down to that depth (a map key
            // of a map key of a map key, each of more than 32 entries). Documented in the spec.
            let depth = SORT_DEPTH.get();
            if depth >= MAX_SORT_DEPTH {
                out.sort_unstable_by_key(|e| hash(e.0));
                return out;
            }
            SORT_DEPTH.set(depth + 1);
            let _restore = Restore(depth);
            out.sort_unstable_by(|a, b| term::compare_keys(a.0, b.0, names));
            out
        }
    }
}

// How many sorts of trie entries are under way on this thread, one inside another.
thread_local! {
    static SORT_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}
const MAX_SORT_DEPTH: u32 = 2;

/// Puts `SORT_DEPTH` back when a sort ends, however it ends.
struct Restore(u32);

impl Drop for Restore {
    fn drop(&mut self) {
        SORT_DEPTH.set(self.0);
    }
}

// ---- building ----

/// The empty map.
#[cfg(test)]
fn empty(heap: &mut Heap) -> Term {
    heap.map_from_fn(1, |_| small(0))
}

/// A flat map of `keys` (unique, in key order, at most `FLAT_MAX`) and their `vals`.
pub(crate) fn flat_from_sorted(heap: &mut Heap, keys: &[Term], vals: &[Term]) -> Term {
    debug_assert!(keys.len() <= FLAT_MAX && keys.len() == vals.len());
    heap.map_from_fn(1 + 2 * keys.len(), |i| match i {
        0 => small(keys.len() as i64),
        i if i % 2 == 1 => keys[(i - 1) / 2],
        i => vals[(i - 1) / 2],
    })
}

/// A flat map of `entries`, unique and in key order.
fn flat(heap: &mut Heap, entries: &[(Term, Term)]) -> Term {
    debug_assert!(entries.len() <= FLAT_MAX);
    heap.map_from_fn(1 + 2 * entries.len(), |i| match i {
        0 => small(entries.len() as i64),
        i if i % 2 == 1 => entries[(i - 1) / 2].0,
        i => entries[(i - 1) / 2].1,
    })
}

/// Builds a map of `entries` (later ones win over earlier ones with an equal key).
pub(crate) fn from_entries<'n>(
    heap: &mut Heap,
    mut entries: Vec<(Term, Term)>,
    names: &dyn Fn(u32) -> &'n str,
) -> Term {
    // A stable sort keeps equal keys in their order: the last of each run wins.
    entries.sort_by(|a, b| term::compare_keys(a.0, b.0, names));
    let mut unique: Vec<(Term, Term)> = Vec::with_capacity(entries.len());
    for e in entries {
        match unique.last_mut() {
            Some(last) if term::eq(last.0, e.0) => *last = e,
            _ => unique.push(e),
        }
    }
    from_sorted_unique(heap, unique)
}

/// A map of entries already unique and in key order.
fn from_sorted_unique(heap: &mut Heap, unique: Vec<(Term, Term)>) -> Term {
    if unique.len() <= FLAT_MAX {
        return flat(heap, &unique);
    }
    let n = unique.len();
    let mut hashed: Vec<(u64, Term, Term)> =
        unique.into_iter().map(|(k, v)| (hash(k), k, v)).collect();
    let root = build_trie(heap, &mut hashed, 0);
    heap.map_from_fn(2, |i| if i == 0 { small(n as i64) } else { root })
}

/// The trie node of `entries` (two or more, unique; in key order when they may collide) at
/// `level`. Recursion is bounded by the trie's depth (14).
fn build_trie(heap: &mut Heap, entries: &mut [(u64, Term, Term)], level: u32) -> Term {
    if level > LAST_LEVEL {
        // Every bit of their hashes is equal: a collision node, in key order (kept by the
        // stable sorts above).
        let pairs: Vec<Term> = entries.iter().flat_map(|&(_, k, v)| [k, v]).collect();
        return node(heap, COLLISION, 0, &pairs, &[]);
    }
    entries.sort_by_key(|e| slot(e.0, level));
    let (mut data, mut kids) = (0u32, 0u32);
    let mut pairs = Words::new();
    let mut children = Words::new();
    let mut start = 0;
    while start < entries.len() {
        let s = slot(entries[start].0, level);
        let mut end = start + 1;
        while end < entries.len() && slot(entries[end].0, level) == s {
            end += 1;
        }
        if end - start == 1 {
            data |= 1 << s;
            pairs.extend([entries[start].1, entries[start].2]);
        } else {
            kids |= 1 << s;
            children.push(build_trie(heap, &mut entries[start..end], level + 1));
        }
        start = end;
    }
    node(heap, i64::from(data), kids, &pairs, &children)
}

/// `m` with key `k` set to `v` (a new map; `m` itself when it already maps `k` to that very
/// word). `m` must be a map.
pub(crate) fn put<'n>(
    heap: &mut Heap,
    m: Term,
    k: Term,
    v: Term,
    names: &dyn Fn(u32) -> &'n str,
) -> Term {
    let f = fields(m).expect("a map");
    let (n, shape) = shape(f);
    match shape {
        Shape::Flat(pairs) => {
            if let Some(i) = pairs.chunks_exact(2).position(|p| term::eq(p[0], k)) {
                if pairs[2 * i + 1] == v {
                    return m;
                }
                return heap.map_from_fn(f.len(), |j| if j == 2 + 2 * i { v } else { f[j] });
            }
            if n == FLAT_MAX {
                let mut entries: Vec<(Term, Term)> =
                    pairs.chunks_exact(2).map(|p| (p[0], p[1])).collect();
                entries.push((k, v));
                return from_entries(heap, entries, names);
            }
            let at = pairs
                .chunks_exact(2)
                .position(|p| term::compare_keys(p[0], k, names) == Ordering::Greater)
                .unwrap_or(n);
            // Fields: count, the entries before `at`, the new one, the rest.
            heap.map_from_fn(f.len() + 2, |j| match j {
                0 => small(n as i64 + 1),
                j if j < 1 + 2 * at => f[j],
                j if j == 1 + 2 * at => k,
                j if j == 2 + 2 * at => v,
                j => f[j - 2],
            })
        }
        Shape::Trie(root) => {
            let mut added = false;
            let new = trie_put(heap, root, 0, hash(k), k, v, names, &mut added);
            if new == root {
                return m;
            }
            let n = n + usize::from(added);
            heap.map_from_fn(2, |i| if i == 0 { small(n as i64) } else { new })
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn trie_put<'n>(
    heap: &mut Heap,
    at: Term,
    level: u32,
    h: u64,
    k: Term,
    v: Term,
    names: &dyn Fn(u32) -> &'n str,
    added: &mut bool,
) -> Term {
    let n = Node::of(at);
    if n.collision {
        let mut pairs: Words = n.pairs.iter().copied().collect();
        match n.entries().position(|(ek, _)| term::eq(ek, k)) {
            Some(i) if n.pairs[2 * i + 1] == v => return at,
            Some(i) => pairs[2 * i + 1] = v,
            None => {
                *added = true;
                let i = n
                    .entries()
                    .position(|(ek, _)| term::compare_keys(ek, k, names) == Ordering::Greater)
                    .unwrap_or(n.pairs.len() / 2);
                pairs.insert_many(2 * i, [k, v]);
            }
        }
        return node(heap, COLLISION, 0, &pairs, &[]);
    }
    let bit = 1u32 << slot(h, level);
    if n.data & bit != 0 {
        let i = 2 * n.data_index(bit);
        let (ek, ev) = (n.pairs[i], n.pairs[i + 1]);
        if ek == k || term::eq(ek, k) {
            if ev == v {
                return at;
            }
            return replaced(heap, at, 3 + i, v);
        }
        // Two keys in one slot: they move down into a node of their own.
        *added = true;
        let sub = two(heap, level + 1, (hash(ek), ek, ev), (h, k, v), names);
        let mut pairs: Words = n.pairs.iter().copied().collect();
        pairs.drain(i..i + 2);
        let mut children: Words = n.children.iter().copied().collect();
        children.insert(n.kid_index(bit), sub);
        return node(
            heap,
            i64::from(n.data & !bit),
            n.kids | bit,
            &pairs,
            &children,
        );
    }
    if n.kids & bit != 0 {
        let j = n.kid_index(bit);
        let sub = trie_put(heap, n.children[j], level + 1, h, k, v, names, added);
        if sub == n.children[j] {
            return at;
        }
        return replaced(heap, at, 2 + n.pairs.len() + j, sub);
    }
    // A new entry in a free slot: the fields with `k, v` inserted among the entries.
    *added = true;
    let f = node_fields(at);
    let w = 2 + 2 * n.data_index(bit);
    let data = small(i64::from(n.data | bit));
    heap.hamt_from_fn(f.len() + 2, |i| match i {
        0 => data,
        i if i < w => f[i],
        i if i == w => k,
        i if i == w + 1 => v,
        i => f[i - 2],
    })
}

/// A copy of node `at` with field `i` replaced by `t`: the step of a put along its path,
/// written straight into the heap.
fn replaced(heap: &mut Heap, at: Term, i: usize, t: Term) -> Term {
    heap.hamt_replacing(node_fields(at), i, t)
}

/// The node at `level` holding two entries whose hashes agreed above it.
fn two<'n>(
    heap: &mut Heap,
    level: u32,
    a: (u64, Term, Term),
    b: (u64, Term, Term),
    names: &dyn Fn(u32) -> &'n str,
) -> Term {
    if level > LAST_LEVEL {
        let (x, y) = if term::compare_keys(a.1, b.1, names) == Ordering::Less {
            (a, b)
        } else {
            (b, a)
        };
        return node(heap, COLLISION, 0, &[x.1, x.2, y.1, y.2], &[]);
    }
    let (sa, sb) = (slot(a.0, level), slot(b.0, level));
    if sa == sb {
        let sub = two(heap, level + 1, a, b, names);
        return node(heap, 0, 1 << sa, &[], &[sub]);
    }
    let (x, y) = if sa < sb { (a, b) } else { (b, a) };
    let data = (1u32 << sa) | (1u32 << sb);
    node(heap, i64::from(data), 0, &[x.1, x.2, y.1, y.2], &[])
}

/// `m` without key `k` (`m` itself when it has no such key). `m` must be a map.
pub(crate) fn remove<'n>(
    heap: &mut Heap,
    m: Term,
    k: Term,
    names: &dyn Fn(u32) -> &'n str,
) -> Term {
    let f = fields(m).expect("a map");
    let (n, shape) = shape(f);
    match shape {
        Shape::Flat(pairs) => {
            let Some(i) = pairs.chunks_exact(2).position(|p| term::eq(p[0], k)) else {
                return m;
            };
            heap.map_from_fn(f.len() - 2, |j| match j {
                0 => small(n as i64 - 1),
                j if j < 1 + 2 * i => f[j],
                j => f[j + 2],
            })
        }
        Shape::Trie(root) => {
            let new = match trie_remove(heap, root, 0, hash(k), k) {
                Removed::Absent => return m,
                Removed::Node(node) => node,
                Removed::Entry(..) => unreachable!("the root holds more than one entry"),
            };
            if n - 1 <= FLAT_MAX {
                let mut entries = Vec::with_capacity(n - 1);
                trie_entries(new, &mut entries);
                entries.sort_unstable_by(|a, b| term::compare_keys(a.0, b.0, names));
                return flat(heap, &entries);
            }
            heap.map_from_fn(2, |i| if i == 0 { small(n as i64 - 1) } else { new })
        }
    }
}

enum Removed {
    Absent,
    /// The node without the key.
    Node(Term),
    /// The node would hold one entry and nothing else: that entry, to take the node's place
    /// in its parent.
    Entry(Term, Term),
}

fn trie_remove(heap: &mut Heap, at: Term, level: u32, h: u64, k: Term) -> Removed {
    let n = Node::of(at);
    if n.collision {
        let Some(i) = n.entries().position(|(ek, _)| term::eq(ek, k)) else {
            return Removed::Absent;
        };
        let mut pairs: Words = n.pairs.iter().copied().collect();
        pairs.drain(2 * i..2 * i + 2);
        if pairs.len() == 2 {
            return Removed::Entry(pairs[0], pairs[1]);
        }
        return Removed::Node(node(heap, COLLISION, 0, &pairs, &[]));
    }
    let bit = 1u32 << slot(h, level);
    if n.data & bit != 0 {
        let i = 2 * n.data_index(bit);
        let ek = n.pairs[i];
        if !(ek == k || term::eq(ek, k)) {
            return Removed::Absent;
        }
        if level > 0 && n.pairs.len() == 4 && n.children.is_empty() {
            let o = if i == 0 { 2 } else { 0 };
            return Removed::Entry(n.pairs[o], n.pairs[o + 1]);
        }
        let mut pairs: Words = n.pairs.iter().copied().collect();
        pairs.drain(i..i + 2);
        return Removed::Node(node(
            heap,
            i64::from(n.data & !bit),
            n.kids,
            &pairs,
            n.children,
        ));
    }
    if n.kids & bit == 0 {
        return Removed::Absent;
    }
    let j = n.kid_index(bit);
    match trie_remove(heap, n.children[j], level + 1, h, k) {
        Removed::Absent => Removed::Absent,
        Removed::Node(sub) => {
            let mut children: Words = n.children.iter().copied().collect();
            children[j] = sub;
            Removed::Node(node(heap, i64::from(n.data), n.kids, n.pairs, &children))
        }
        // The only thing under this node: the entry moves up further.
        Removed::Entry(ek, ev) if level > 0 && n.pairs.is_empty() && n.children.len() == 1 => {
            Removed::Entry(ek, ev)
        }
        // The entry takes the place of the node it was left alone in.
        Removed::Entry(ek, ev) => {
            let mut pairs: Words = n.pairs.iter().copied().collect();
            pairs.insert_many(2 * n.data_index(bit), [ek, ev]);
            let mut children: Words = n.children.iter().copied().collect();
            children.remove(j);
            let data = i64::from(n.data | bit);
            Removed::Node(node(heap, data, n.kids & !bit, &pairs, &children))
        }
    }
}

/// The words a map of `n` entries may take at most (flat or trie, its entries' cells
/// included), for reserving room before building one.
pub(crate) fn words_for(n: usize) -> usize {
    if n <= FLAT_MAX {
        2 + 2 * n
    } else {
        // Two words per entry, and per node three words (its header, bitmaps) and one in its
        // parent; nodes are fewer than entries (plus the map object).
        3 + 6 * n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn names(_: u32) -> &'static str {
        "a"
    }

    fn int(i: i64) -> Term {
        Term::small_int(i).unwrap()
    }

    /// Checks `m` against the model: size, every key's value, key order, canonical layout.
    fn check(m: Term, model: &BTreeMap<i64, i64>, heap: &mut Heap) {
        let f = fields(m).unwrap();
        assert_eq!(shape(f).0, model.len());
        assert_eq!(
            matches!(shape(f).1, Shape::Flat(_)),
            model.len() <= FLAT_MAX
        );
        for (&k, &v) in model {
            assert_eq!(get(f, int(k)), Some(int(v)), "key {k}");
        }
        let sorted: Vec<(i64, i64)> = sorted_entries(f, &names)
            .into_iter()
            .map(|(k, v)| (k.as_int().unwrap(), v.as_int().unwrap()))
            .collect();
        assert_eq!(
            sorted,
            model.iter().map(|(&k, &v)| (k, v)).collect::<Vec<_>>()
        );
        // Canonical: the same entries built in one go give an equal map, word for word.
        let rebuilt = from_entries(
            heap,
            model.iter().map(|(&k, &v)| (int(k), int(v))).collect(),
            &names,
        );
        assert!(
            term::eq(m, rebuilt),
            "not canonical at {} entries",
            model.len()
        );
        assert_eq!(hash(m), hash(rebuilt));
    }

    #[test]
    fn puts_and_removes_agree_with_a_model() {
        let mut heap = Heap::new();
        let mut m = empty(&mut heap);
        let mut model = BTreeMap::new();
        // A fixed pseudo-random walk through puts and removes across the flat/trie boundary.
        let mut x: u64 = 12345;
        for step in 0..3000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = ((x >> 33) % 200) as i64 - 20;
            if (x >> 20).is_multiple_of(3) {
                m = remove(&mut heap, m, int(k), &names);
                model.remove(&k);
            } else {
                m = put(&mut heap, m, int(k), int(step), &names);
                model.insert(k, step);
            }
            if step % 97 == 0 {
                check(m, &model, &mut heap);
            }
        }
        check(m, &model, &mut heap);
        for k in model.keys().copied().collect::<Vec<_>>() {
            m = remove(&mut heap, m, int(k), &names);
            model.remove(&k);
        }
        check(m, &model, &mut heap);
    }

    #[test]
    fn colliding_hashes_share_a_collision_node() {
        // Force the deepest levels: two keys whose hashes agree in every bit cannot be made on
        // purpose, so build the node directly and check lookups and removal through it.
        let mut heap = Heap::new();
        let (a, b) = ((7, int(2), int(20)), (7, int(1), int(10)));
        let node = two(&mut heap, LAST_LEVEL + 1, a, b, &names);
        let f = node_fields(node);
        assert_eq!(f[0].as_small_int(), Some(COLLISION));
        // Both entries, in key order.
        assert_eq!(&f[2..], &[int(1), int(10), int(2), int(20)]);
        assert_eq!(trie_get(node, 7, int(2)), Some(int(20)));
        match trie_remove(&mut heap, node, LAST_LEVEL + 1, 7, int(1)) {
            Removed::Entry(k, v) => assert_eq!((k, v), (int(2), int(20))),
            _ => panic!("a collision node of one entry must collapse"),
        }
    }

    /// Two maps of 40 entries, of equal size and different keys, each with the maps `a` and
    /// `b` as keys: sorting the keys of either compares `a` with `b`, which sorts theirs.
    fn level(heap: &mut Heap, a: Term, b: Term) -> (Term, Term) {
        let mut entries: Vec<(Term, Term)> = (1..39).map(|i| (int(i), int(i))).collect();
        entries.push((a, int(-1)));
        entries.push((b, int(-2)));
        let x = from_entries(heap, entries.clone(), &names);
        entries[0].0 = int(100);
        let y = from_entries(heap, entries, &names);
        (x, y)
    }

    #[test]
    /// (Without the depth bound on sorting, this takes time exponential in `LEVELS`.)
    fn deeply_nested_map_keys_compare_without_exhausting_the_stack() {
        const LEVELS: usize = 200;
        let mut heap = Heap::new();
        let (mut a, mut b) = (int(0), int(1));
        for _ in 0..LEVELS {
            (a, b) = level(&mut heap, a, b);
        }
        assert_eq!(term::compare(a, a, &names), Ordering::Equal);
        assert_ne!(term::compare(a, b, &names), Ordering::Equal);
        let mut text = Vec::new();
        term::format_within(a, &names, &|f| f.to_string(), 64, &mut text);
        assert!(text.starts_with(b"#{1 => 1"));
    }

    #[test]
    fn large_maps_are_tries() {
        let mut heap = Heap::new();
        let entries: Vec<(Term, Term)> = (0..200_000).map(|i| (int(i), int(-i))).collect();
        let m = from_entries(&mut heap, entries, &names);
        let f = fields(m).unwrap();
        assert_eq!(shape(f).0, 200_000);
        for i in (0..200_000).step_by(97) {
            assert_eq!(get(f, int(i)), Some(int(-i)));
        }
        assert_eq!(get(f, int(200_000)), None);
    }
}
