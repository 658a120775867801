//! Terms: Ember's values (spec §1), one machine word each, and the operations on them that
//! allocate nothing on a process heap: accessors, structural equality, Erlang term order and the
//! printed form.
//!
//! This module has no `unsafe` code. It reads heap objects through the safe accessors of
//! [`crate::heap`], which holds all the VM's unsafe code and writes down the invariants that make
//! reading through a pointer term sound. In short: a pointer term (tuple, binary, boxed integer,
//! list cell) may be used only while the memory it points to is alive, that is before the next
//! collection of the heap it lives in (or while the `Literals` area it lives in exists).
//!
//! The word layout of terms is in [`crate::word`].
//!

#![forbid(unsafe_code)]
// The accessors below are the term API the VM and its tests share; some only tests use for now
// (the embedding API will expose terms safely, issue 15).
#![allow(dead_code)]

use smallvec::SmallVec;
use std::cmp::Ordering;

use crate::heap::{self, Boxed};
use crate::map;
pub(crate) use crate::word::{Term, View};

/// What needs the heap: reading the objects pointer terms point to.
impl Term {
    /// The value of a small or boxed integer.
    pub fn as_int(self) -> Option<i64> {
        match self.as_small_int() {
            Some(i) => Some(i),
            None => match heap::read_boxed(self)? {
                Boxed::Int(i) => Some(i),
                _ => None,
            },
        }
    }

    pub fn is_float(self) -> bool {
        matches!(heap::read_boxed(self), Some(Boxed::Float(_)))
    }

    /// An integer or a float, as a float (an integer beyond 2^53 rounds to the nearest).
    pub fn as_number(self) -> Option<f64> {
        match self.as_small_int() {
            Some(i) => Some(i as f64),
            None => match heap::read_boxed(self)? {
                Boxed::Int(i) => Some(i as f64),
                Boxed::Float(f) => Some(f),
                _ => None,
            },
        }
    }

    pub fn is_tuple(self) -> bool {
        matches!(heap::read_boxed(self), Some(Boxed::Tuple(_)))
    }

    pub fn is_binary(self) -> bool {
        matches!(heap::read_boxed(self), Some(Boxed::Binary(_)))
    }

    pub fn is_int(self) -> bool {
        self.as_int().is_some()
    }

    /// Takes the term apart. See [`View`] for how long the borrowed parts may be used.
    pub fn view(self) -> View<'static> {
        if let Some(v) = self.immediate_view() {
            return v;
        }
        if let Some((h, t)) = heap::read_cons(self) {
            return View::Cons(h, t);
        }
        match heap::read_boxed(self) {
            Some(Boxed::Tuple(elems)) => View::Tuple(elems),
            Some(Boxed::Binary(bytes)) => View::Binary(bytes),
            Some(Boxed::Int(i)) => View::Int(i),
            Some(Boxed::Float(f)) => View::Float(f),
            Some(Boxed::Closure(fields)) => View::Closure(fields),
            Some(Boxed::Map(fields)) => View::Map(fields),
            Some(Boxed::Hamt(_)) => unreachable!("a trie node is not a term: {self:?}"),
            None => unreachable!("a header word used as a term: {self:?}"),
        }
    }
}

// ---- accessors ----

/// The elements of a tuple.
pub fn tuple_elems(t: Term) -> Option<&'static [Term]> {
    match heap::read_boxed(t)? {
        Boxed::Tuple(elems) => Some(elems),
        _ => None,
    }
}

pub fn tuple_arity(t: Term) -> Option<usize> {
    tuple_elems(t).map(<[Term]>::len)
}

/// Element `i` (0-based) of a tuple; `None` if `t` is not a tuple or `i` is out of range.
pub fn tuple_get(t: Term, i: usize) -> Option<Term> {
    tuple_elems(t)?.get(i).copied()
}

pub fn binary_bytes(t: Term) -> Option<&'static [u8]> {
    match heap::read_boxed(t)? {
        Boxed::Binary(bytes) => Some(bytes),
        _ => None,
    }
}

/// Head and tail of a list cell (`hd`, `tl`).
pub fn cons_parts(t: Term) -> Option<(Term, Term)> {
    heap::read_cons(t)
}

/// Iterates over the heads of a list's cells. After the end, [`ListIter::tail`] is what ended
/// the list: `[]` for a proper list, anything else for an improper one.
pub fn list_iter(t: Term) -> ListIter {
    ListIter { rest: t }
}

pub struct ListIter {
    rest: Term,
}

impl ListIter {
    /// What is left: the cells not visited yet, or the final tail.
    pub fn tail(&self) -> Term {
        self.rest
    }
}

impl Iterator for ListIter {
    type Item = Term;

    fn next(&mut self) -> Option<Term> {
        let (head, tail) = cons_parts(self.rest)?;
        self.rest = tail;
        Some(head)
    }
}

/// The length of a proper list (`[]` has length 0); `None` for anything else, including an
/// improper list.
pub fn list_len(t: Term) -> Option<usize> {
    let mut it = list_iter(t);
    let n = it.by_ref().count();
    it.tail().is_nil().then_some(n)
}

// ---- equality and order ----

/// Exact structural equality, Erlang's `=:=`: what patterns use (`1` does not match `1.0`).
/// Iterative (an explicit stack), so neither long lists nor deep nesting use the Rust stack.
pub fn eq(a: Term, b: Term) -> bool {
    equal::<true>(a, b)
}

/// Erlang's `==`: as [`eq`], except that an integer and a float are equal when their values
/// are (`1 == 1.0`), anywhere inside the terms (what `jeq` and `jne` use).
pub fn eq_num(a: Term, b: Term) -> bool {
    equal::<false>(a, b)
}

/// An integer and a float of equal value (`1` and `1.0`).
fn same_number(a: Term, b: Term) -> bool {
    match (a.view(), b.view()) {
        (View::Int(i), View::Float(f)) | (View::Float(f), View::Int(i)) => {
            cmp_int_float(i, f) == Ordering::Equal
        }
        _ => false,
    }
}

fn equal<const EXACT: bool>(a: Term, b: Term) -> bool {
    // Inline for small terms: matching a message against a constant allocates nothing. Each
    // pair says whether it is compared exactly: under `==`, a map's keys still are (`1` and
    // `1.0` are two keys); under `=:=` everything is, and `exact` folds to `true`.
    let mut todo: SmallVec<[(Term, Term, bool); 8]> = SmallVec::new();
    let (mut a, mut b, mut exact) = (a, b, EXACT);
    loop {
        // Same word: same immediate or the very same object (shared, or a literal).
        if a != b {
            let exact_here = EXACT || exact;
            if a.is_immediate() || b.is_immediate() {
                // Canonical integers: an immediate never equals a pointer term, except that
                // for `==` a small integer may equal a float.
                // (Floats are boxed: two immediates that differ are never equal.)
                if exact_here || (a.is_immediate() && b.is_immediate()) || !same_number(a, b) {
                    return false;
                }
                match todo.pop() {
                    Some(next) => (a, b, exact) = next,
                    None => return true,
                }
                continue;
            }
            match (a.view(), b.view()) {
                (View::Cons(ha, ta), View::Cons(hb, tb)) => {
                    // Heads now, tails later: along a list whose heads are immediates (or
                    // small terms) the stack stays short however long the list is.
                    todo.push((ta, tb, exact_here));
                    (a, b) = (ha, hb);
                    continue;
                }
                (View::Tuple(xs), View::Tuple(ys)) | (View::Closure(xs), View::Closure(ys)) => {
                    if xs.len() != ys.len() {
                        return false;
                    }
                    // Immediate elements are settled here; only compound ones wait on the stack.
                    for (&x, &y) in xs.iter().zip(ys.iter()) {
                        if x == y {
                            continue;
                        }
                        if exact_here && (x.is_immediate() || y.is_immediate()) {
                            return false;
                        }
                        todo.push((x, y, exact_here));
                    }
                }
                // Canonical layouts: equal maps have the same shape (see `map.rs`).
                (View::Map(xs), View::Map(ys)) => {
                    if xs.len() != ys.len() || xs[0] != ys[0] {
                        return false;
                    }
                    match (map::shape(xs).1, map::shape(ys).1) {
                        (map::Shape::Flat(p), map::Shape::Flat(q)) => {
                            for (x, y) in p.chunks_exact(2).zip(q.chunks_exact(2)) {
                                todo.push((x[0], y[0], true));
                                todo.push((x[1], y[1], exact_here));
                            }
                        }
                        (map::Shape::Trie(r), map::Shape::Trie(s)) => {
                            if !map::tries_pair_up(r, s, &mut |k1, k2, v1, v2| {
                                todo.push((k1, k2, true));
                                todo.push((v1, v2, exact_here));
                            }) {
                                return false;
                            }
                        }
                        _ => return false,
                    }
                }
                (View::Binary(x), View::Binary(y)) => {
                    if x != y {
                        return false;
                    }
                }
                (View::Int(x), View::Int(y)) => {
                    if x != y {
                        return false;
                    }
                }
                // (Erlang 26's `=:=`: `0.0` and `-0.0` are equal.)
                (View::Float(x), View::Float(y)) => {
                    if x != y {
                        return false;
                    }
                }
                (View::Int(_), View::Float(_)) | (View::Float(_), View::Int(_)) if !exact_here => {
                    if !same_number(a, b) {
                        return false;
                    }
                }
                _ => return false,
            }
        }
        match todo.pop() {
            Some(next) => (a, b, exact) = next,
            None => return true,
        }
    }
}

/// How integer `i` compares with float `f`, by value and exactly (no rounding of `i`).
pub(crate) fn cmp_int_float(i: i64, f: f64) -> Ordering {
    // 2^63: every i64 is below it, every float at or above it is above every i64.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f >= TWO_63 {
        return Ordering::Less;
    }
    if f < -TWO_63 {
        return Ordering::Greater;
    }
    // `t` is an integer within i64's range, exactly: compare the integer parts, then what `f`
    // has after the point.
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal if f > t => Ordering::Less,
        Ordering::Equal if f < t => Ordering::Greater,
        ord => ord,
    }
}

/// Position of a kind in the term order: number (integer or float) < atom < reference < function < pid < tuple <
/// map < `[]` < non-empty list < binary (functions sit where Erlang puts funs).
fn rank(v: &View) -> u8 {
    match v {
        View::Int(_) | View::Float(_) => 0,
        View::Atom(_) => 1,
        View::Ref(_) => 2,
        View::Fun(_) | View::Closure(_) => 3,
        View::Pid(_) => 4,
        View::Tuple(_) => 5,
        View::Map(_) => 6,
        View::Nil => 7,
        View::Cons(..) => 8,
        View::Binary(_) => 9,
    }
}

/// Erlang term order (spec §1). Atoms compare by their text (`atom_names` gives it); tuples by
/// size, then element by element; maps by size, then their keys in map-key order, then their
/// values in key order; lists element by element, a shorter proper list first, an improper tail
/// compared as a term; binaries bytewise. Iterative like [`eq`].
pub fn compare<'n>(a: Term, b: Term, atom_names: &dyn Fn(u32) -> &'n str) -> Ordering {
    compare_in(a, b, atom_names, false)
}

/// Map-key order: term order, except that every integer sorts before every float (so `1` and
/// `1.0` are different keys, the integer first), inside the keys too: Erlang's order of map
/// keys.
pub(crate) fn compare_keys<'n>(a: Term, b: Term, atom_names: &dyn Fn(u32) -> &'n str) -> Ordering {
    compare_in(a, b, atom_names, true)
}

fn compare_in<'n>(a: Term, b: Term, atom_names: &dyn Fn(u32) -> &'n str, keys: bool) -> Ordering {
    // Pairs still to compare, the next one on top, each with its mode (`true`: map-key order);
    // the first difference decides.
    let mut todo: SmallVec<[(Term, Term, bool); 8]> = SmallVec::new();
    let (mut a, mut b, mut keys) = (a, b, keys);
    loop {
        if a != b {
            let (va, vb) = (a.view(), b.view());
            let ord = match (va, vb) {
                (View::Int(x), View::Int(y)) => x.cmp(&y),
                // Numbers compare by value (`1 == 1.0` in the order; only `=:=` tells them
                // apart). Floats are never NaN.
                (View::Float(x), View::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                (View::Int(_), View::Float(_)) if keys => Ordering::Less,
                (View::Float(_), View::Int(_)) if keys => Ordering::Greater,
                (View::Int(x), View::Float(y)) => cmp_int_float(x, y),
                (View::Float(x), View::Int(y)) => cmp_int_float(y, x).reverse(),
                (View::Atom(x), View::Atom(y)) => atom_names(x).cmp(atom_names(y)),
                (View::Ref(x), View::Ref(y)) => x.cmp(&y),
                (View::Fun(x), View::Fun(y)) => x.cmp(&y),
                // A closure after the plain reference to the same function; two closures as
                // tuples of their function, arity and captured values.
                (View::Fun(x), View::Closure(c)) => {
                    x.cmp(&c[0].as_fun().unwrap_or(0)).then(Ordering::Less)
                }
                (View::Closure(c), View::Fun(y)) => {
                    c[0].as_fun().unwrap_or(0).cmp(&y).then(Ordering::Greater)
                }
                (View::Pid(x), View::Pid(y)) => x.cmp(&y),
                (View::Binary(x), View::Binary(y)) => x.cmp(y),
                (View::Tuple(xs), View::Tuple(ys)) | (View::Closure(xs), View::Closure(ys)) => {
                    match xs.len().cmp(&ys.len()) {
                        Ordering::Equal => {
                            // Element 0 must be compared first, so it goes on top.
                            todo.extend(
                                xs.iter()
                                    .copied()
                                    .zip(ys.iter().copied())
                                    .map(|(x, y)| (x, y, keys))
                                    .rev(),
                            );
                            Ordering::Equal
                        }
                        ord => ord,
                    }
                }
                (View::Map(xs), View::Map(ys)) => {
                    let (n, m) = (map::shape(xs).0, map::shape(ys).0);
                    match n.cmp(&m) {
                        Ordering::Equal => {
                            let p = map::sorted_entries(xs, atom_names);
                            let q = map::sorted_entries(ys, atom_names);
                            // All the keys (in key order) first, then the values: the keys
                            // go on top.
                            for (x, y) in p.iter().zip(q.iter()).rev() {
                                todo.push((x.1, y.1, keys));
                            }
                            for (x, y) in p.iter().zip(q.iter()).rev() {
                                todo.push((x.0, y.0, true));
                            }
                            Ordering::Equal
                        }
                        ord => ord,
                    }
                }
                (View::Cons(ha, ta), View::Cons(hb, tb)) => {
                    // Heads first, then the tails: continue with the heads at once and leave
                    // the tails below them. A list of non-compound heads never grows the stack.
                    todo.push((ta, tb, keys));
                    (a, b) = (ha, hb);
                    continue;
                }
                _ => rank(&va).cmp(&rank(&vb)),
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        match todo.pop() {
            Some(next) => (a, b, keys) = next,
            None => return Ordering::Equal,
        }
    }
}

// ---- printed form ----

/// Where a printed form goes: a vector, a vector that stops at a size, or a counter. Printing
/// stops as soon as the sink is full, so neither a term with shared parts (a DAG whose tree form
/// is astronomically large) nor a huge atom or binary costs more than the sink takes.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
    /// How many more bytes the sink takes (`usize::MAX` when unbounded).
    fn room(&self) -> usize;
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn room(&self) -> usize {
        usize::MAX
    }
}

/// Keeps the first `cap` bytes and notes whether anything was cut.
pub(crate) struct Capped<'a> {
    pub out: &'a mut Vec<u8>,
    pub cap: usize,
    pub cut: bool,
}

impl Sink for Capped<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.out.len());
        if bytes.len() > room {
            self.cut = true;
        }
        self.out.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
    fn room(&self) -> usize {
        // One byte more than fits, so that a cut is noticed.
        if self.cut {
            0
        } else {
            self.cap.saturating_sub(self.out.len()) + 1
        }
    }
}

/// Counts bytes up to `cap + 1` (enough to tell that the form is longer than `cap`).
pub(crate) struct Counter {
    pub n: usize,
    pub cap: usize,
    /// Pieces put so far, and how many may be: a walk that puts more pieces than the term
    /// has words in its heap is walking shared parts again and again (see `printed_len`).
    pub pieces: usize,
    pub max_pieces: usize,
}

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.n = self.n.saturating_add(bytes.len());
        self.pieces += 1;
    }
    fn room(&self) -> usize {
        if self.pieces > self.max_pieces {
            return 0;
        }
        self.cap.saturating_add(1).saturating_sub(self.n)
    }
}

/// Appends the printed form of `t` (spec §1) to `out`. Iterative: an explicit stack of what is
/// left to print, so no shape of term can overflow the Rust stack.
pub fn format<'n>(t: Term, atom_names: &dyn Fn(u32) -> &'n str, out: &mut Vec<u8>) {
    format_with(t, atom_names, &|at| at.to_string(), out)
}

/// [`format`], naming function references with `fun_names` (`#Fun<mod:label>`).
pub fn format_with<'n>(
    t: Term,
    atom_names: &dyn Fn(u32) -> &'n str,
    fun_names: &dyn Fn(u32) -> String,
    out: &mut Vec<u8>,
) {
    format_into(t, atom_names, fun_names, out)
}

/// The length of the printed form of `t`, or `None` when it is longer than `cap` bytes. The
/// work is bounded by `cap` (and the size of `t`'s objects), whatever the term shares.
///
/// `heap_words` bounds the words of the objects `t` reaches (its heap's used words, plus the
/// literal area's). A walk of a term without shared parts puts a bounded number of pieces per
/// word; one that puts more is walking shared parts over and over (`{r1, r1}` nested 40 deep
/// prints 2^40 leaves), and then the length is computed on the DAG instead, each object once.
pub(crate) fn printed_len<'n>(
    t: Term,
    atom_names: &dyn Fn(u32) -> &'n str,
    fun_names: &dyn Fn(u32) -> String,
    cap: usize,
    heap_words: usize,
) -> Option<usize> {
    let mut c = Counter {
        n: 0,
        cap,
        pieces: 0,
        max_pieces: heap_words.saturating_mul(4).saturating_add(64),
    };
    format_into(t, atom_names, fun_names, &mut c);
    if c.pieces > c.max_pieces && c.n <= cap {
        return dag_printed_len(t, atom_names, fun_names, cap);
    }
    (c.n <= cap).then_some(c.n)
}

/// [`printed_len`] of a term with shared parts: each tuple's length and each list cell's
/// (the length of the list from that cell on) is computed once. Lengths saturate past `cap`.
fn dag_printed_len<'n>(
    t: Term,
    atom_names: &dyn Fn(u32) -> &'n str,
    fun_names: &dyn Fn(u32) -> String,
    cap: usize,
) -> Option<usize> {
    let over = cap.saturating_add(1);
    let leaf = |t: Term| {
        let mut c = Counter {
            n: 0,
            cap,
            pieces: 0,
            max_pieces: usize::MAX,
        };
        format_into(t, atom_names, fun_names, &mut c);
        c.n.min(over)
    };
    // Tuples by address: their printed length; list cells by address: the length of what
    // they print inside the brackets, from their head on.
    let mut memo: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    let is_compound = |t: Term| t.is_pointer() && (t.is_cons() || t.is_tuple());
    // The printed length of a term whose parts are known.
    let len = |t: Term, memo: &std::collections::HashMap<u64, usize>| -> usize {
        if !is_compound(t) {
            leaf(t)
        } else if t.is_cons() {
            memo[&t.addr()].saturating_add(2)
        } else {
            memo[&t.addr()]
        }
    };
    let mut stack: Vec<(Term, bool)> = vec![(t, false)];
    while let Some((t, expanded)) = stack.pop() {
        if !is_compound(t) || memo.contains_key(&t.addr()) {
            continue;
        }
        match t.view() {
            View::Tuple(elems) => {
                if expanded {
                    let inner = elems
                        .iter()
                        .fold(0usize, |acc, &e| acc.saturating_add(len(e, &memo)));
                    let commas = 2 * elems.len().saturating_sub(1);
                    memo.insert(t.addr(), inner.saturating_add(commas + 2).min(over));
                } else {
                    stack.push((t, true));
                    stack.extend(elems.iter().map(|&e| (e, false)));
                }
            }
            View::Cons(head, tail) => {
                if expanded {
                    let rest = if tail.is_nil() {
                        0
                    } else if tail.is_cons() {
                        memo[&tail.addr()].saturating_add(2)
                    } else {
                        len(tail, &memo).saturating_add(3)
                    };
                    let here = len(head, &memo).saturating_add(rest).min(over);
                    memo.insert(t.addr(), here);
                } else {
                    stack.push((t, true));
                    stack.push((head, false));
                    stack.push((tail, false));
                }
            }
            _ => {}
        }
    }
    let n = len(t, &memo);
    (n <= cap).then_some(n)
}

/// The printed form of `t` cut at `cap` bytes, ending in `...` when cut (spec §10: reports).
/// Appends the printed form of `t` to `out` if `out` stays within `cap` bytes; false (and
/// `out` holding a prefix) when it would not.
pub(crate) fn format_within<'n>(
    t: Term,
    atom_names: &dyn Fn(u32) -> &'n str,
    fun_names: &dyn Fn(u32) -> String,
    cap: usize,
    out: &mut Vec<u8>,
) -> bool {
    let mut sink = Capped {
        cap,
        out,
        cut: false,
    };
    format_into(t, atom_names, fun_names, &mut sink);
    !sink.cut
}

pub(crate) fn format_cut<'n>(
    t: Term,
    atom_names: &dyn Fn(u32) -> &'n str,
    fun_names: &dyn Fn(u32) -> String,
    cap: usize,
) -> String {
    let mut out = Vec::new();
    let mut sink = Capped {
        out: &mut out,
        cap,
        cut: false,
    };
    format_into(t, atom_names, fun_names, &mut sink);
    let cut = sink.cut;
    // The cut may fall inside a multi-byte character: back up to a boundary.
    let mut s = match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
    };
    if cut {
        s.push_str("...");
    }
    s
}

fn format_into<'n, S: Sink>(
    t: Term,
    atom_names: &dyn Fn(u32) -> &'n str,
    fun_names: &dyn Fn(u32) -> String,
    out: &mut S,
) {
    enum Job {
        Term(Term),
        Text(&'static str),
        /// The rest of a list after an element: `[]` ends it, a cell continues it, anything
        /// else is an improper tail.
        ListRest(Term),
    }
    let mut jobs = vec![Job::Term(t)];
    while let Some(job) = jobs.pop() {
        if out.room() == 0 {
            return;
        }
        match job {
            Job::Text(s) => out.put(s.as_bytes()),
            Job::ListRest(rest) => match rest.view() {
                View::Nil => {}
                View::Cons(h, tail) => {
                    out.put(b", ");
                    jobs.push(Job::ListRest(tail));
                    jobs.push(Job::Term(h));
                }
                _ => {
                    out.put(b" | ");
                    jobs.push(Job::Term(rest));
                }
            },
            Job::Term(t) => match t.view() {
                View::Int(i) => write_display(out, i),
                View::Float(f) => out.put(float_text(f).as_bytes()),
                View::Atom(a) => format_atom(atom_names(a), out),
                View::Pid(n) => {
                    out.put(b"<0.");
                    write_display(out, n);
                    out.put(b">");
                }
                View::Ref(n) => {
                    out.put(b"#Ref<");
                    write_display(out, n);
                    out.put(b">");
                }
                View::Fun(at) => {
                    out.put(b"#Fun<");
                    out.put(fun_names(at).as_bytes());
                    out.put(b">");
                }
                // `#Fun<mod:label/arity>` (the captured values are not shown, as in Erlang).
                View::Closure(fields) => {
                    out.put(b"#Fun<");
                    out.put(fun_names(fields[0].as_fun().unwrap_or(0)).as_bytes());
                    out.put(b"/");
                    write_display(out, fields[1].as_small_int().unwrap_or(0));
                    out.put(b">");
                }
                View::Nil => out.put(b"[]"),
                View::Binary(bytes) => format_string(bytes, out),
                View::Tuple(elems) => {
                    out.put(b"{");
                    jobs.push(Job::Text("}"));
                    // Only as many elements as can still be printed wait on the stack (each
                    // prints at least one byte).
                    let n = elems.len().min(out.room());
                    if n < elems.len() {
                        jobs.push(Job::Text("..."));
                    }
                    for (i, &e) in elems[..n].iter().enumerate().rev() {
                        jobs.push(Job::Term(e));
                        if i > 0 {
                            jobs.push(Job::Text(", "));
                        }
                    }
                }
                View::Cons(h, tail) => {
                    out.put(b"[");
                    jobs.push(Job::Text("]"));
                    jobs.push(Job::ListRest(tail));
                    jobs.push(Job::Term(h));
                }
                // `#{k => v, ...}`, keys in map-key order (as Erlang prints them).
                View::Map(fields) => {
                    out.put(b"#{");
                    jobs.push(Job::Text("}"));
                    let entries = map::sorted_entries(fields, atom_names);
                    // Each entry prints at least six bytes (`k => v`).
                    let n = entries.len().min(out.room().div_ceil(6));
                    if n < entries.len() {
                        jobs.push(Job::Text("..."));
                    }
                    for (i, &(k, v)) in entries[..n].iter().enumerate().rev() {
                        jobs.push(Job::Term(v));
                        jobs.push(Job::Text(" => "));
                        jobs.push(Job::Term(k));
                        if i > 0 {
                            jobs.push(Job::Text(", "));
                        }
                    }
                }
            },
        }
    }
}

/// Appends a number's decimal form (without a temporary `String`).
/// The printed form of a float, as Erlang's `io:format("~p", [F])` writes it: the shortest
/// digits that read back as the same float, in plain notation (`0.001`, `100.0`) unless the
/// exponent notation is strictly shorter (`1.0e-5`, `1.0e3`) or the value is at least 2^53
/// (`9.007199254740992e15`). Checked against a table `erl` printed
/// (`vm/tests/data/erl_float_print.txt`).
pub fn float_text(f: f64) -> String {
    // Rust's `{:e}` finds how many digits the shortest form that reads back takes; when two
    // such forms of that length exist, Erlang (as Ryu) takes the one nearest the float's exact
    // value, ties to even, which is what Rust's exact `{:.Ne}` writes.
    // (The nearest may not read back: below a power of two the floats are closer together.)
    let shortest = format!("{:e}", f.abs());
    let n = shortest
        .split_once('e')
        .map_or(1, |(m, _)| m.len() - m.contains('.') as usize);
    let nearest = format!("{:.*e}", n - 1, f.abs());
    let sci = if nearest.parse::<f64>() == Ok(f.abs()) {
        nearest
    } else {
        shortest
    };
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("a decimal exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let n = digits.len() as i32;
    let exponent_form = format!(
        "{}.{}e{exp}",
        &digits[..1],
        if n > 1 { &digits[1..] } else { "0" }
    );
    let plain_form = if exp >= n - 1 {
        format!("{digits}{}.0", "0".repeat((exp - (n - 1)) as usize))
    } else if exp >= 0 {
        let point = exp as usize + 1;
        format!("{}.{}", &digits[..point], &digits[point..])
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    };
    const TWO_53: f64 = 9_007_199_254_740_992.0;
    let text = if f.abs() >= TWO_53 || exponent_form.len() < plain_form.len() {
        exponent_form
    } else {
        plain_form
    };
    if f.is_sign_negative() {
        format!("-{text}")
    } else {
        text
    }
}

fn write_display<S: Sink>(out: &mut S, n: impl Into<i128>) {
    // By hand: `to_str` and `print` measure a printed form before they build it, so numbers
    // are written twice, and the formatting machinery is many times a few divisions.
    let n: i128 = n.into();
    let mut buf = [0u8; 40];
    let mut at = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    out.put(&buf[at..]);
}

/// `:name` when the name is identifier-like (`[A-Za-z_][A-Za-z0-9_]*`), else `:"..."` with the
/// same escapes as a binary (so `"` and `\`, and control characters, round-trip).
fn format_atom<S: Sink>(name: &str, out: &mut S) {
    out.put(b":");
    let mut chars = name.bytes();
    let ident = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if ident {
        out.put(name.as_bytes());
    } else {
        format_string(name.as_bytes(), out);
    }
}

/// `"..."`: printable UTF-8 as is; `\n \t \r \0 \\ \"` escaped; every byte of any other control
/// character, and every byte of an invalid UTF-8 sequence, as `\xhh` (lowercase).
fn format_string<S: Sink>(bytes: &[u8], out: &mut S) {
    fn hex<S: Sink>(b: u8, out: &mut S) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        out.put(&[
            b'\\',
            b'x',
            DIGITS[usize::from(b >> 4)],
            DIGITS[usize::from(b & 15)],
        ]);
    }
    out.put(b"\"");
    // Every byte prints as at least one byte: a sink with room for k more needs at most the
    // first k bytes (a huge binary printed into a report costs what the report keeps).
    let bytes = &bytes[..bytes.len().min(out.room())];
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        // Runs of characters that need no escape go out in one piece.
        let mut plain = 0;
        for (i, c) in valid.char_indices() {
            let escape: Option<&[u8]> = match c {
                '\n' => Some(b"\\n"),
                '\t' => Some(b"\\t"),
                '\r' => Some(b"\\r"),
                '\0' => Some(b"\\0"),
                '\\' => Some(b"\\\\"),
                '"' => Some(b"\\\""),
                c if c.is_control() => Some(b""),
                _ => None,
            };
            let Some(escape) = escape else { continue };
            out.put(&valid.as_bytes()[plain..i]);
            if escape.is_empty() {
                c.encode_utf8(&mut [0; 4]).bytes().for_each(|b| hex(b, out));
            } else {
                out.put(escape);
            }
            plain = i + c.len_utf8();
        }
        out.put(&valid.as_bytes()[plain..]);
        chunk.invalid().iter().for_each(|&b| hex(b, out));
    }
    out.put(b"\"");
}

/// The printed form as a `String` (for tests, traces and error messages). The printed form is
/// valid UTF-8: bytes that are not are escaped.
pub fn to_string<'n>(t: Term, atom_names: &dyn Fn(u32) -> &'n str) -> String {
    let mut out = Vec::new();
    format(t, atom_names, &mut out);
    String::from_utf8(out).expect("the printed form escapes invalid UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::Heap;
    use crate::word::{REF_MAX, SMALL_MAX, SMALL_MIN};

    const NAMES: &[&str] = &[
        "ok",          // 0
        "two words",   // 1
        "a\"b\\c",     // 2
        "",            // 3
        "_x1",         // 4
        "1abc",        // 5
        "zeta",        // 6
        "alpha",       // 7
        "ping",        // 8
        "caf\u{e9}",   // 9
        "line\nbreak", // 10
        "EXIT",        // 11
    ];

    fn names(i: u32) -> &'static str {
        NAMES[i as usize]
    }

    fn show(t: Term) -> String {
        to_string(t, &names)
    }

    fn int(i: i64) -> Term {
        Term::small_int(i).unwrap()
    }

    fn list(h: &mut Heap, items: &[Term]) -> Term {
        h.list_from(items, Term::NIL)
    }

    /// A proper list 0, 1, ..., n-1 built cell by cell from the end (cells scattered over
    /// several arena chunks, as a program builds them).
    fn long_list(h: &mut Heap, n: i64) -> Term {
        (0..n).rev().fold(Term::NIL, |tail, i| h.cons(int(i), tail))
    }

    #[test]
    fn immediates_round_trip() {
        assert_eq!(
            Term::small_int(SMALL_MAX).and_then(Term::as_int),
            Some(SMALL_MAX)
        );
        assert_eq!(
            Term::small_int(SMALL_MIN).and_then(Term::as_int),
            Some(SMALL_MIN)
        );
        assert_eq!(Term::small_int(SMALL_MAX + 1), None);
        assert_eq!(Term::small_int(SMALL_MIN - 1), None);
        assert_eq!(int(-7).as_int(), Some(-7));
        assert_eq!(int(0).view(), View::Int(0));
        assert_eq!(Term::atom(u32::MAX).as_atom(), Some(u32::MAX));
        assert_eq!(Term::pid(u32::MAX).as_pid(), Some(u32::MAX));
        assert_eq!(Term::reference(REF_MAX).as_ref(), Some(REF_MAX));
        assert_eq!(Term::reference(1).view(), View::Ref(1));
        assert!(Term::atom(3).is_atom(3) && !Term::atom(3).is_atom(4));
        assert_eq!(Term::NIL.view(), View::Nil);
        assert!(Term::NIL.is_nil() && Term::NIL.is_immediate());
        // Kinds are not confused with each other.
        let all = [
            int(5),
            Term::atom(5),
            Term::pid(5),
            Term::reference(5),
            Term::NIL,
        ];
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                assert_eq!(i == j, a == b);
            }
            assert!(!a.is_cons() && !a.is_tuple() && !a.is_binary());
        }
        assert_eq!(Term::atom(5).as_int(), None);
        assert_eq!(Term::pid(5).as_atom(), None);
        assert_eq!(Term::atom(5).as_pid(), None);
        assert_eq!(int(5).as_ref(), None);
        assert_eq!(Term::NIL.as_ref(), None);
    }

    #[test]
    fn format_immediates() {
        assert_eq!(show(int(42)), "42");
        assert_eq!(show(int(-7)), "-7");
        assert_eq!(show(int(SMALL_MIN)), SMALL_MIN.to_string());
        assert_eq!(show(Term::pid(0)), "<0.0>");
        assert_eq!(show(Term::pid(17)), "<0.17>");
        assert_eq!(show(Term::reference(1)), "#Ref<1>");
        assert_eq!(show(Term::NIL), "[]");
    }

    #[test]
    fn format_atoms() {
        let a = |i| show(Term::atom(i));
        assert_eq!(a(0), ":ok");
        assert_eq!(a(1), ":\"two words\"");
        assert_eq!(a(2), r#":"a\"b\\c""#);
        assert_eq!(a(3), ":\"\"");
        assert_eq!(a(4), ":_x1");
        assert_eq!(a(5), ":\"1abc\"");
        assert_eq!(a(9), ":\"caf\u{e9}\"");
        assert_eq!(a(10), ":\"line\\nbreak\"");
        assert_eq!(a(11), ":EXIT");
    }

    #[test]
    fn format_binaries() {
        let mut h = Heap::new();
        let mut b = |bytes: &[u8]| show(h.binary(bytes));
        assert_eq!(b(b""), r#""""#);
        assert_eq!(b(b"text\n"), r#""text\n""#);
        assert_eq!(b(b"a\tb\rc\0d"), r#""a\tb\rc\0d""#);
        assert_eq!(b(b"say \"hi\" \\o/"), r#""say \"hi\" \\o/""#);
        assert_eq!(b(b"\x01\x1b[0m\x7f"), r#""\x01\x1b[0m\x7f""#);
        assert_eq!(
            b("h\u{e9}llo \u{1f600} \u{4e16}".as_bytes()),
            "\"h\u{e9}llo \u{1f600} \u{4e16}\""
        );
        // A C1 control character is valid UTF-8 but not printable: each of its bytes.
        assert_eq!(b("a\u{85}b".as_bytes()), r#""a\xc2\x85b""#);
        // Invalid UTF-8: each byte of the bad sequence, the valid text around it as is.
        assert_eq!(b(b"\xff\xfe"), r#""\xff\xfe""#);
        assert_eq!(b(b"ok\xc3(\xe2\x82"), r#""ok\xc3(\xe2\x82""#);
        assert_eq!(b(b"\xc3\xa9\xc3"), "\"\u{e9}\\xc3\"");
        // Exactly 8 and 9 bytes (padding edge).
        assert_eq!(b(b"12345678"), r#""12345678""#);
        assert_eq!(b(b"123456789"), r#""123456789""#);
    }

    #[test]
    fn format_compound() {
        let mut h = Heap::new();
        let ping = h.tuple(&[Term::atom(8), Term::pid(0), int(3)]);
        assert_eq!(show(ping), "{:ping, <0.0>, 3}");
        assert_eq!(show(h.tuple(&[])), "{}");
        assert_eq!(show(h.tuple(&[int(1)])), "{1}");
        let l = list(&mut h, &[int(1), int(2), int(3)]);
        assert_eq!(show(l), "[1, 2, 3]");
        assert_eq!(show(h.cons(int(1), int(2))), "[1 | 2]");
        assert_eq!(show(h.list_from(&[int(1), int(2)], int(3))), "[1, 2 | 3]");
        let nil_in = list(&mut h, &[Term::NIL]);
        assert_eq!(show(nil_in), "[[]]");
        let s = h.binary(b"x");
        let nested_tail = h.list_from(&[int(1)], s);
        assert_eq!(show(nested_tail), r#"[1 | "x"]"#);
        let inner = h.tuple(&[l, Term::reference(2), s]);
        let outer = h.tuple(&[inner, Term::NIL, Term::atom(1)]);
        assert_eq!(
            show(outer),
            r#"{{[1, 2, 3], #Ref<2>, "x"}, [], :"two words"}"#
        );
        let big = [i64::MIN, i64::MAX, SMALL_MAX + 1, SMALL_MIN - 1].map(|i| h.int(i));
        let bigs = list(&mut h, &big);
        assert_eq!(
            show(bigs),
            format!(
                "[{}, {}, {}, {}]",
                i64::MIN,
                i64::MAX,
                SMALL_MAX + 1,
                SMALL_MIN - 1
            )
        );
        let tail_list = h.cons(int(0), l);
        let improper_nested = h.cons(tail_list, ping);
        assert_eq!(show(improper_nested), "[[0, 1, 2, 3] | {:ping, <0.0>, 3}]");
    }

    #[test]
    fn accessors() {
        let mut h = Heap::new();
        let t = h.tuple(&[int(1), Term::atom(0)]);
        assert!(t.is_tuple() && !t.is_binary() && !t.is_cons() && !t.is_int());
        assert_eq!(tuple_arity(t), Some(2));
        assert_eq!(tuple_get(t, 1), Some(Term::atom(0)));
        assert_eq!(tuple_get(t, 2), None);
        assert_eq!(tuple_get(int(1), 0), None);
        let b = h.binary(b"abc");
        assert!(b.is_binary() && !b.is_tuple());
        assert_eq!(binary_bytes(b), Some(&b"abc"[..]));
        assert_eq!(binary_bytes(t), None);
        let l = list(&mut h, &[int(1), int(2)]);
        assert!(l.is_cons());
        assert_eq!(cons_parts(l).map(|(hd, _)| hd), Some(int(1)));
        assert_eq!(cons_parts(Term::NIL), None);
        assert_eq!(list_len(l), Some(2));
        assert_eq!(list_len(Term::NIL), Some(0));
        let improper = h.list_from(&[int(1)], int(2));
        assert_eq!(list_len(improper), None);
        assert_eq!(list_len(t), None);
        let mut it = list_iter(improper);
        assert_eq!(it.by_ref().collect::<Vec<_>>(), vec![int(1)]);
        assert_eq!(it.tail(), int(2));
        let big = h.int(i64::MAX);
        assert!(big.is_int() && !big.is_tuple() && big.as_small_int().is_none());
        assert_eq!(big.as_int(), Some(i64::MAX));
        assert_eq!(big.view(), View::Int(i64::MAX));
        assert_eq!(h.int(5), int(5), "small values are never boxed");
        let t2 = h.tuple_set(t, 0, Term::NIL).unwrap();
        assert_eq!(show(t2), "{[], :ok}");
        assert_eq!(show(t), "{1, :ok}", "the original is unchanged");
        assert_eq!(h.tuple_set(t, 2, Term::NIL), None);
        let cat = h.binary_concat(&[b"ab", b"", b"cdefghij"]);
        assert_eq!(binary_bytes(cat), Some(&b"abcdefghij"[..]));
    }

    #[test]
    fn structural_equality() {
        let mut h = Heap::new();
        let build = |h: &mut Heap, last: i64| {
            let s = h.binary(b"hello");
            let big = h.int(i64::MIN);
            let l = h.list_from(&[int(1), s, big], int(last));
            h.tuple(&[
                Term::atom(0),
                l,
                Term::pid(3),
                Term::reference(4),
                Term::NIL,
            ])
        };
        let a = build(&mut h, 9);
        let b = build(&mut h, 9);
        let c = build(&mut h, 8);
        assert_ne!(a, b, "different objects");
        assert!(eq(a, b) && eq(b, a) && eq(a, a));
        assert!(!eq(a, c));
        assert!(eq(h.int(i64::MAX), h.int(i64::MAX)));
        assert!(!eq(h.int(i64::MAX), h.int(i64::MIN)));
        assert!(!eq(h.binary(b"ab"), h.binary(b"abc")));
        let t1 = h.tuple(&[int(1)]);
        let t2 = h.tuple(&[int(1), int(2)]);
        assert!(!eq(t1, t2));
        let l1 = list(&mut h, &[int(1)]);
        assert!(!eq(t1, l1));
        assert!(!eq(l1, Term::NIL));
        let l12 = list(&mut h, &[int(1), int(2)]);
        assert!(!eq(l1, l12) && !eq(l12, l1));
        assert!(!eq(int(1), Term::atom(1)));
        assert!(!eq(Term::pid(1), Term::reference(1)));
    }

    #[test]
    fn term_order_chain() {
        let mut h = Heap::new();
        let one = int(1);
        let big_neg = h.int(i64::MIN);
        let big_pos = h.int(i64::MAX);
        let chain = [
            big_neg,
            int(-5),
            one,
            big_pos,
            Term::atom(7), // alpha
            Term::atom(6), // zeta
            Term::reference(1),
            Term::reference(2),
            Term::pid(0),
            Term::pid(9),
            h.tuple(&[]),
            h.tuple(&[int(9)]),
            h.tuple(&[int(1), int(1)]),
            h.tuple(&[int(1), int(2)]),
            Term::NIL,
            h.list_from(&[int(1)], int(2)), // [1 | 2] < [1] since 2 < []
            list(&mut h, &[int(1)]),
            h.list_from(&[int(1), int(2)], int(3)),
            list(&mut h, &[int(1), int(2)]),
            list(&mut h, &[int(1), int(2), int(3)]),
            list(&mut h, &[int(1), int(3)]),
            list(&mut h, &[int(2)]),
            h.binary(b""),
            h.binary(b"ab"),
            h.binary(b"abc"),
            h.binary(b"b"),
        ];
        for (i, &a) in chain.iter().enumerate() {
            for (j, &b) in chain.iter().enumerate() {
                assert_eq!(
                    compare(a, b, &names),
                    i.cmp(&j),
                    "{} vs {}",
                    show(a),
                    show(b)
                );
            }
        }
    }

    #[test]
    fn order_details() {
        let mut h = Heap::new();
        // Atoms by text, not by index.
        assert_eq!(
            compare(Term::atom(6), Term::atom(7), &names),
            Ordering::Greater
        );
        assert_eq!(
            compare(Term::atom(0), Term::atom(0), &names),
            Ordering::Equal
        );
        // Equal structures built separately compare Equal.
        let a = list(&mut h, &[int(1), Term::atom(0)]);
        let ta = h.tuple(&[a, Term::NIL]);
        let b = list(&mut h, &[int(1), Term::atom(0)]);
        let tb = h.tuple(&[b, Term::NIL]);
        assert_eq!(compare(ta, tb, &names), Ordering::Equal);
        // Size before elements.
        let small = h.tuple(&[int(9), int(9)]);
        let large = h.tuple(&[int(0), int(0), int(0)]);
        assert_eq!(compare(small, large, &names), Ordering::Less);
        // Element by element, first difference wins.
        let x = h.tuple(&[int(1), int(9), Term::atom(6)]);
        let y = h.tuple(&[int(1), int(10), Term::atom(7)]);
        assert_eq!(compare(x, y, &names), Ordering::Less);
    }

    #[test]
    fn printed_length_of_shared_terms_is_computed_on_the_dag() {
        let mut h = Heap::new();
        let fun = |at: u32| at.to_string();
        let l = h.list_from(&[int(1), Term::atom(0)], Term::NIL);
        let improper = h.list_from(&[int(7)], l);
        let odd = h.list_from(&[int(8)], int(9));
        let bin = h.binary(b"x\n");
        let mut t = h.tuple(&[l, improper, odd, bin]);
        // Small DAGs: the DAG computation agrees with printing.
        for _ in 0..6 {
            let printed = to_string(t, &names).len();
            assert_eq!(dag_printed_len(t, &names, &fun, usize::MAX), Some(printed));
            assert_eq!(
                printed_len(t, &names, &fun, usize::MAX, h.used_words()),
                Some(printed)
            );
            t = h.tuple(&[t, t]);
        }
        // 2^60 leaves in 60 tuples: measured at once, and found too long for any limit.
        let mut bomb = Term::NIL;
        for _ in 0..60 {
            bomb = h.tuple(&[bomb, bomb]);
        }
        assert_eq!(
            printed_len(bomb, &names, &fun, 1 << 30, h.used_words()),
            None
        );
        let mut twenty = Term::NIL;
        for _ in 0..20 {
            twenty = h.tuple(&[twenty, twenty]);
        }
        let n = printed_len(twenty, &names, &fun, 1 << 30, h.used_words()).unwrap();
        assert_eq!(n, to_string(twenty, &names).len());
    }

    #[test]
    fn million_element_lists_do_not_overflow() {
        let mut h = Heap::new();
        let n = 1_000_000;
        let a = long_list(&mut h, n);
        let b = long_list(&mut h, n);
        assert!(eq(a, b));
        assert_eq!(compare(a, b, &names), Ordering::Equal);
        let c = h.cons(int(-1), b);
        assert!(!eq(a, c));
        assert_eq!(compare(a, c, &names), Ordering::Greater);
        assert_eq!(list_len(a), Some(n as usize));
        let mut out = Vec::new();
        format(a, &names, &mut out);
        assert!(out.starts_with(b"[0, 1, 2, ") && out.ends_with(b", 999999]"));
        // A list of lists, and a list nested 100,000 deep in its heads.
        let pairs: Vec<Term> = (0..1000).map(|i| list(&mut h, &[int(i), int(i)])).collect();
        let lol = list(&mut h, &pairs);
        assert!(eq(lol, lol));
        let deep = |h: &mut Heap| (0..100_000).fold(Term::NIL, |acc, _| h.cons(acc, Term::NIL));
        let d1 = deep(&mut h);
        let d2 = deep(&mut h);
        assert!(eq(d1, d2));
        assert_eq!(compare(d1, d2, &names), Ordering::Equal);
        let mut out = Vec::new();
        format(d1, &names, &mut out);
        assert_eq!(out.len(), 100_000 * 2 + 2);
    }
}

#[cfg(test)]
mod float_tests {
    use super::*;

    /// Every float of the table `erl` printed (OTP 25, `io:format("~p", [F])`) prints the same.
    #[test]
    fn floats_print_as_erlang_prints_them() {
        let table = include_str!("../tests/data/erl_float_print.txt");
        let mut checked = 0;
        for line in table
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (bits, want) = line.split_once(' ').expect("bits, a space, the text");
            let f = f64::from_bits(u64::from_str_radix(bits, 16).expect("hex bits"));
            assert_eq!(float_text(f), want, "the float with bits {bits}");
            checked += 1;
        }
        assert!(checked > 500, "{checked} floats");
    }

    #[test]
    fn integers_and_floats_compare_by_value_exactly() {
        use std::cmp::Ordering::*;
        assert_eq!(cmp_int_float(1, 1.0), Equal);
        assert_eq!(cmp_int_float(1, 1.5), Less);
        assert_eq!(cmp_int_float(2, 1.5), Greater);
        assert_eq!(cmp_int_float(-1, -1.5), Greater);
        // 2^53 + 1 is not a float: it is above 2^53 as a float, though `as f64` rounds it.
        assert_eq!(
            cmp_int_float((1 << 53) + 1, 9_007_199_254_740_992.0),
            Greater
        );
        assert_eq!(cmp_int_float(i64::MAX, 9.3e18), Less);
        assert_eq!(cmp_int_float(i64::MIN, -9.3e18), Greater);
        assert_eq!(cmp_int_float(i64::MIN, -9_223_372_036_854_775_808.0), Equal);
    }
}
