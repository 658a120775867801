//! Terms as the host sees them: [`Value`], an owned tree with no pointer into any heap.
//!
//! A term inside the VM is a word that may point into a process heap, which the collector moves
//! and frees; a host that held one could read freed memory. So the host never holds a term: a
//! value crosses the boundary by copy, as a message crosses between processes (copy-on-send).
//! Into the VM it is built in a scratch heap and copied into the receiving heap within that
//! process's limits; out of the VM it is read into a `Value`.
//!
//! ```
//! use ember_vm::value::Value;
//! let v = Value::tuple([Value::atom("ok"), Value::from(42), Value::binary("hi")]);
//! assert_eq!(v.as_tuple().map(|t| t.len()), Some(3));
//! assert_eq!(v.as_tuple().unwrap()[0].as_atom(), Some("ok"));
//! ```

use crate::heap::Heap;
use crate::map;
use crate::program::Program;
use crate::term::{self, Term};
use crate::word::View;
use std::fmt;

/// One Ember value, owned by the host. Build one with the constructors ([`Value::atom`],
/// [`Value::tuple`], `Value::from(7)`, ...) and read one with the `as_*` accessors.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    /// A float; the VM holds only finite ones (a NaN or an infinity is refused on the way in).
    Float(f64),
    /// An atom by name, without the colon. Atoms are never made at run time (spec §1): one the
    /// program does not name is refused on the way in.
    Atom(String),
    Binary(Vec<u8>),
    Tuple(Vec<Value>),
    /// A proper list (`[]` is `List(vec![])`).
    List(Vec<Value>),
    /// `[items... | tail]`: at least one item, and a tail that is not a list.
    ImproperList(Vec<Value>, Box<Value>),
    /// A map's entries, in the VM's key order (as `map_to_list` gives them).
    Map(Vec<(Value, Value)>),
    Pid(Pid),
    Ref(Ref),
    /// A function value (a function reference or a closure) the VM gave out.
    Fun(Fun),
}

/// A process identifier: `<0.N>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(pub(crate) u32);

impl Pid {
    /// The pid `<0.n>`. (A pid of no live process is harmless: what is sent to it is dropped.)
    pub fn from_number(n: u32) -> Pid {
        Pid(n)
    }
    /// The `N` of `<0.N>`.
    pub fn number(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<0.{}>", self.0)
    }
}

/// A reference (`make_ref`, `monitor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ref(pub(crate) u64);

/// A function value. Only the VM makes one: its entry is checked against the program when it
/// goes back in.
#[derive(Clone, Debug, PartialEq)]
pub struct Fun {
    pub(crate) entry: u32,
    /// `Some((arity, captured))` for a closure.
    pub(crate) closure: Option<(u8, Vec<Value>)>,
}

/// Why a value cannot cross into or out of the VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// An atom the program does not name (atoms are never made at run time).
    UnknownAtom(String),
    /// A float that is a NaN or an infinity.
    NotFinite,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A function value of another program.
    BadFun,
    /// An improper list whose tail is a list, or has no items.
    BadList,
    /// Larger than the receiving process may hold (`--max-heap`, `--max-memory`).
    TooBig,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::UnknownAtom(a) => write!(
                f,
                "atom :{a} is not named in the program (atoms are never made at run time)"
            ),
            ValueError::NotFinite => write!(f, "a float must be finite"),
            ValueError::TooDeep => write!(f, "nested deeper than {MAX_DEPTH} levels"),
            ValueError::BadFun => write!(f, "a function value of another program"),
            ValueError::BadList => write!(
                f,
                "an improper list needs items and a tail that is not a list"
            ),
            ValueError::TooBig => write!(f, "larger than the receiving process may hold"),
        }
    }
}

impl std::error::Error for ValueError {}

/// Deepest nesting of tuples, maps, closures and list items a value may have crossing the
/// boundary (the conversions recurse, and so does dropping a `Value`). A list's own length is
/// not nesting: a list of any length crosses.
pub const MAX_DEPTH: usize = 1000;

impl Value {
    /// The atom `name` (no colon).
    pub fn atom(name: impl Into<String>) -> Value {
        Value::Atom(name.into())
    }
    /// A binary (Ember's strings are binaries).
    pub fn binary(bytes: impl AsRef<[u8]>) -> Value {
        Value::Binary(bytes.as_ref().to_vec())
    }
    pub fn tuple(items: impl IntoIterator<Item = Value>) -> Value {
        Value::Tuple(items.into_iter().collect())
    }
    pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(items.into_iter().collect())
    }
    /// A map of `entries` (a later key wins, as `map_from_list`).
    pub fn map(entries: impl IntoIterator<Item = (Value, Value)>) -> Value {
        Value::Map(entries.into_iter().collect())
    }
    /// `:true` or `:false`.
    pub fn boolean(b: bool) -> Value {
        Value::atom(if b { "true" } else { "false" })
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Value::Atom(a) => Some(a),
            _ => None,
        }
    }
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Value::Binary(b) => Some(b),
            _ => None,
        }
    }
    /// A binary that is UTF-8 text.
    pub fn as_str(&self) -> Option<&str> {
        self.as_binary().and_then(|b| std::str::from_utf8(b).ok())
    }
    pub fn as_tuple(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(t) => Some(t),
            _ => None,
        }
    }
    /// A proper list's items.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_pid(&self) -> Option<Pid> {
        match self {
            Value::Pid(p) => Some(*p),
            _ => None,
        }
    }
    /// The value of `key` in a map.
    pub fn get(&self, key: &Value) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Int(i.into())
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::boolean(b)
    }
}
impl From<Pid> for Value {
    fn from(p: Pid) -> Value {
        Value::Pid(p)
    }
}
/// A `&str` becomes a binary (Ember's strings are binaries; atoms are [`Value::atom`]).
impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::binary(s)
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Binary(s.into_bytes())
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Value {
        Value::List(items.into_iter().map(Into::into).collect())
    }
}

/// `v` as a term that needs no heap (a small integer, an atom, a pid, `[]`...), if it is one.
pub(crate) fn immediate(v: &Value, prog: &Program) -> Option<Term> {
    match v {
        Value::Int(i) => Term::small_int(*i),
        Value::Atom(a) => prog.atoms.lookup(a).map(Term::atom),
        Value::Pid(p) => Some(Term::pid(p.0)),
        Value::List(items) if items.is_empty() => Some(Term::NIL),
        Value::Fun(f) if f.closure.is_none() && (f.entry as usize) < prog.fun_count() => {
            Some(Term::fun(f.entry))
        }
        _ => None,
    }
}

/// Builds `v` in `heap` (a scratch heap: it never collects while this runs).
pub(crate) fn build(v: &Value, heap: &mut Heap, prog: &Program) -> Result<Term, ValueError> {
    build_at(v, heap, prog, 0)
}

fn build_at(v: &Value, heap: &mut Heap, prog: &Program, depth: usize) -> Result<Term, ValueError> {
    if depth > MAX_DEPTH {
        return Err(ValueError::TooDeep);
    }
    let each = |items: &[Value], heap: &mut Heap| -> Result<Vec<Term>, ValueError> {
        items
            .iter()
            .map(|i| build_at(i, heap, prog, depth + 1))
            .collect()
    };
    Ok(match v {
        Value::Int(i) => heap.int(*i),
        Value::Float(f) if f.is_finite() => heap.float(*f),
        Value::Float(_) => return Err(ValueError::NotFinite),
        Value::Atom(a) => Term::atom(
            prog.atoms
                .lookup(a)
                .ok_or_else(|| ValueError::UnknownAtom(a.clone()))?,
        ),
        Value::Binary(b) => heap.binary(b),
        Value::Tuple(items) => {
            let t = each(items, heap)?;
            heap.tuple(&t)
        }
        Value::List(items) => {
            let t = each(items, heap)?;
            heap.list_from(&t, Term::NIL)
        }
        Value::ImproperList(items, tail) => {
            if items.is_empty() || matches!(**tail, Value::List(_) | Value::ImproperList(..)) {
                return Err(ValueError::BadList);
            }
            let t = each(items, heap)?;
            let tail = build_at(tail, heap, prog, depth + 1)?;
            heap.list_from(&t, tail)
        }
        Value::Map(entries) => {
            let mut pairs = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                pairs.push((
                    build_at(k, heap, prog, depth + 1)?,
                    build_at(v, heap, prog, depth + 1)?,
                ));
            }
            map::from_entries(heap, pairs, &|a| prog.atoms.name(a))
        }
        Value::Pid(p) => Term::pid(p.0),
        Value::Ref(r) if r.0 <= crate::word::REF_MAX => Term::reference(r.0),
        Value::Ref(_) => return Err(ValueError::BadFun),
        Value::Fun(f) => {
            if f.entry as usize >= prog.fun_count() {
                return Err(ValueError::BadFun);
            }
            match &f.closure {
                None => Term::fun(f.entry),
                Some((arity, captured)) => {
                    let c = each(captured, heap)?;
                    heap.closure(f.entry, *arity, &c)
                }
            }
        }
    })
}

/// Reads `t` (a term of a live heap, or a literal) into a value.
pub(crate) fn read(t: Term, prog: &Program) -> Result<Value, ValueError> {
    read_at(t, prog, 0)
}

fn read_at(t: Term, prog: &Program, depth: usize) -> Result<Value, ValueError> {
    if depth > MAX_DEPTH {
        return Err(ValueError::TooDeep);
    }
    let each = |items: &[Term]| -> Result<Vec<Value>, ValueError> {
        items.iter().map(|&i| read_at(i, prog, depth + 1)).collect()
    };
    Ok(match t.view() {
        View::Int(i) => Value::Int(i),
        View::Float(f) => Value::Float(f),
        View::Atom(a) => Value::Atom(prog.atoms.name(a).to_string()),
        View::Pid(p) => Value::Pid(Pid(p)),
        View::Ref(r) => Value::Ref(Ref(r)),
        View::Fun(f) => Value::Fun(Fun {
            entry: f,
            closure: None,
        }),
        View::Closure(fields) => {
            let entry = fields[0].as_fun().unwrap_or_default();
            let arity = fields[1].as_small_int().unwrap_or_default() as u8;
            Value::Fun(Fun {
                entry,
                closure: Some((arity, each(&fields[2..])?)),
            })
        }
        View::Nil => Value::List(Vec::new()),
        View::Tuple(items) => Value::Tuple(each(items)?),
        View::Binary(b) => Value::Binary(b.to_vec()),
        View::Cons(..) => {
            let mut items = Vec::new();
            let mut rest = t;
            while let View::Cons(h, tl) = rest.view() {
                items.push(read_at(h, prog, depth + 1)?);
                rest = tl;
            }
            if rest.is_nil() {
                Value::List(items)
            } else {
                Value::ImproperList(items, Box::new(read_at(rest, prog, depth + 1)?))
            }
        }
        View::Map(fields) => {
            let mut entries = Vec::new();
            for (k, v) in map::sorted_entries(fields, &|a| prog.atoms.name(a)) {
                entries.push((read_at(k, prog, depth + 1)?, read_at(v, prog, depth + 1)?));
            }
            Value::Map(entries)
        }
    })
}

/// The printed form of `t` as the VM prints it.
pub(crate) fn print(t: Term, prog: &Program) -> String {
    term::format_cut(
        t,
        &|a| prog.atoms.name(a),
        &|f| prog.fun_name(f),
        usize::MAX / 2,
    )
}
