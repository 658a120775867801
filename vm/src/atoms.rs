//! The VM's atom table. Atoms the VM itself needs are interned first, at fixed indices.

use std::collections::HashMap;

macro_rules! predefined_atoms {
    ($($name:ident = $text:literal),* $(,)?) => {
        /// Indices of the atoms the VM uses itself (some only interned, so that they sort
        /// and print like any atom).
        #[allow(dead_code)]
        pub mod atom {
            predefined_atoms!(@consts 0u32, $($name,)*);
        }
        const PREDEFINED: &[&str] = &[$($text),*];
    };
    (@consts $n:expr, $name:ident, $($rest:ident,)*) => {
        pub const $name: u32 = $n;
        predefined_atoms!(@consts $n + 1u32, $($rest,)*);
    };
    (@consts $n:expr,) => {};
}

predefined_atoms! {
    OK = "ok",
    NORMAL = "normal",
    CRASH = "crash",
    TRUE = "true",
    FALSE = "false",
    EXIT = "EXIT",
    DOWN = "DOWN",
    PROCESS = "process",
    NOPROC = "noproc",
    KILL = "kill",
    KILLED = "killed",
    BADARITH = "badarith",
    BADARG = "badarg",
    BADMATCH = "badmatch",
    CASE_CLAUSE = "case_clause",
    STACK_OVERFLOW = "stack_overflow",
    HEAP_LIMIT = "heap_limit",
    UNDEFINED = "undefined",
    INFINITY = "infinity",
    SYSTEM_LIMIT = "system_limit",
    ERROR = "error",
    EXIT_CLASS = "exit",
    THROW = "throw",
    NOCATCH = "nocatch",
    BADKEY = "badkey",
    BADMAP = "badmap",
    SHUTDOWN = "shutdown",
    ASSERT = "assert",
    UNDEF = "undef",
    NATIVE_PANIC = "native_panic",
    CODE = "code",
    NOT_PURGED = "not_purged",
    BADFILE = "badfile",
}

/// Atom names by index, with a reverse map for interning.
#[derive(Clone, Debug)]
pub struct AtomTable {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Default for AtomTable {
    fn default() -> Self {
        let mut t = AtomTable {
            names: Vec::new(),
            index: HashMap::new(),
        };
        for name in PREDEFINED {
            t.intern(name);
        }
        t
    }
}

impl AtomTable {
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }
    /// The atom named `name`, if the program has one (nothing adds atoms at run time).
    pub fn lookup(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("?", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_atoms_have_their_indices() {
        let t = AtomTable::default();
        assert_eq!(t.name(atom::OK), "ok");
        assert_eq!(t.name(atom::INFINITY), "infinity");
        assert_eq!(t.name(atom::SYSTEM_LIMIT), "system_limit");
        assert_eq!(t.name(PREDEFINED.len() as u32), "?");
    }
}
