//! Native functions: Rust the host registers under `module:name`, which `.basm` calls as it
//! calls any exported label (the BEAM's BIFs and NIFs).
//!
//! A native module is a stub `.basm` module the host hands the assembler
//! ([`Natives::sources`]): each exported label runs one `native` instruction and returns. So
//! `call host:add, r1, r2`, `spawn r3, host:add` and `&host:add` all work as for any other
//! module, and the `.ebc` file of a program holds its stubs. [`crate::program::Program::with_natives`]
//! links the registered functions to the stubs.
//!
//! A native runs to completion on the scheduler thread of the process that calls it, so it must
//! be short: long work belongs on a host thread that sends its result back as a message (there
//! are no dirty schedulers). It sees its arguments as [`Value`]s (copies: it can never break a
//! heap), returns its result (put in `r0`) or a crash reason, may send messages, and costs the
//! reductions it was registered with. A native that panics crashes its caller
//! `{:native_panic, "message"}`; the VM goes on.
//!
//! ```
//! use ember_vm::native::Natives;
//! use ember_vm::value::Value;
//! let mut natives = Natives::new();
//! natives.register("host", "add", 2, 1, |call| match (call.arg(0).as_int(), call.arg(1).as_int()) {
//!     (Some(a), Some(b)) => a.checked_add(b).map(Value::from).ok_or_else(|| Value::atom("badarith")),
//!     _ => Err(Value::atom("badarg")),
//! });
//! let (name, source) = &natives.sources()[0];
//! assert_eq!(name, "host");
//! assert!(source.contains("native :host, :add, 2"));
//! ```

use crate::value::{Pid, Value};
use std::sync::Arc;

/// What a native function is: arguments in, a result or a crash reason out.
pub type NativeFn = dyn Fn(&mut NativeCall<'_>) -> Result<Value, Value> + Send + Sync;

/// One registered native function.
#[derive(Clone)]
pub struct Native {
    pub module: String,
    pub name: String,
    pub arity: u8,
    /// What a call costs, in reductions (at least 1; a call ends its slice when the slice has
    /// fewer left).
    pub reductions: u32,
    pub(crate) f: Arc<NativeFn>,
}

impl std::fmt::Debug for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.module, self.name, self.arity)
    }
}

/// A native function's view of its call.
pub struct NativeCall<'a> {
    pub(crate) args: &'a [Value],
    pub(crate) caller: Pid,
    pub(crate) sends: Vec<(Value, Value)>,
    pub(crate) remote: &'a std::sync::Arc<crate::vm::RemoteInbox>,
}

impl NativeCall<'_> {
    /// The arguments, `r0, r1, ...` of the caller.
    pub fn args(&self) -> &[Value] {
        self.args
    }
    /// Argument `i` (`r<i>`). Panics past the arity, as indexing does.
    pub fn arg(&self, i: usize) -> &Value {
        &self.args[i]
    }
    /// The calling process.
    pub fn caller(&self) -> Pid {
        self.caller
    }
    /// A handle for a thread that does this call's long work and sends its result back as a
    /// message (see [`crate::vm::Remote`]): natives must be short.
    pub fn remote(&self) -> crate::vm::Remote {
        crate::vm::Remote::new(self.remote)
    }
    /// Sends `msg` to `to` (a pid, or a registered name as an atom) when the native returns,
    /// in order, as `send` would from the caller: a bad destination crashes it `:badarg`.
    pub fn send(&mut self, to: impl Into<Value>, msg: Value) {
        self.sends.push((to.into(), msg));
    }
}

/// The native functions a host registers, by `module:name`.
#[derive(Clone, Debug, Default)]
pub struct Natives {
    pub(crate) list: Vec<Native>,
    /// Atoms the natives (or the host) make that the program may not name.
    pub(crate) atoms: Vec<String>,
}

impl Natives {
    pub fn new() -> Natives {
        Natives::default()
    }

    /// Registers `f` as `module:name` taking `arity` arguments and costing `reductions`
    /// (a later registration of the same name replaces it).
    pub fn register(
        &mut self,
        module: &str,
        name: &str,
        arity: u8,
        reductions: u32,
        f: impl Fn(&mut NativeCall<'_>) -> Result<Value, Value> + Send + Sync + 'static,
    ) -> &mut Natives {
        let native = Native {
            module: module.to_string(),
            name: name.to_string(),
            arity,
            reductions: reductions.max(1),
            f: Arc::new(f),
        };
        match self
            .list
            .iter_mut()
            .find(|n| n.module == module && n.name == name)
        {
            Some(old) => *old = native,
            None => self.list.push(native),
        }
        self
    }

    /// Declares atoms the natives return or send (or the host sends) that the program itself
    /// may not name: the VM's atom table is fixed when the program loads (atoms are never made
    /// at run time, so no input can exhaust it).
    pub fn atoms<S: Into<String>>(&mut self, names: impl IntoIterator<Item = S>) -> &mut Natives {
        self.atoms.extend(names.into_iter().map(Into::into));
        self
    }

    /// The VM's own natives: the requests of the stdlib's `code` module (hot code loading),
    /// which the VM serves between slices and answers with a `{:code, ref, result}` message.
    pub(crate) fn builtin() -> &'static Natives {
        static BUILTIN: std::sync::OnceLock<Natives> = std::sync::OnceLock::new();
        BUILTIN.get_or_init(|| {
            let mut n = Natives::new();
            for (name, op) in [
                (
                    "load",
                    crate::vm::CodeOp::Load as fn(String) -> crate::vm::CodeOp,
                ),
                ("purge", crate::vm::CodeOp::Purge),
            ] {
                // (target: an atom or a binary, ref): queues the request; `:badarg` otherwise.
                n.register("ember_code", name, 2, 10, move |call| {
                    let target = match call.arg(0) {
                        Value::Atom(a) => a.clone(),
                        Value::Binary(b) => String::from_utf8_lossy(b).into_owned(),
                        _ => return Err(Value::atom("badarg")),
                    };
                    let caller = call.caller();
                    let tag = call.arg(1).clone();
                    call.remote()
                        .request(op(target), crate::vm::CodeReply::To(caller, tag));
                    Ok(Value::atom("ok"))
                });
            }
            n
        })
    }

    pub(crate) fn find(&self, module: &str, name: &str) -> Option<&Native> {
        self.list
            .iter()
            .find(|n| n.module == module && n.name == name)
    }

    /// The stub `.basm` source of each native module, `(module name, text)`, for the
    /// assembler's library (`ember_asm::assemble_with`).
    pub fn sources(&self) -> Vec<(String, String)> {
        let mut modules: Vec<&str> = self.list.iter().map(|n| n.module.as_str()).collect();
        modules.dedup();
        modules.sort_unstable();
        modules.dedup();
        modules
            .into_iter()
            .map(|m| {
                let fns: Vec<&Native> = self.list.iter().filter(|n| n.module == m).collect();
                let mut text = format!(
                    "; Native functions the host registered: each runs in Rust and returns.\n.module {m}\n.export {}\n",
                    fns.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
                );
                for n in fns {
                    text.push_str(&format!(
                        "{}:\n    native :{m}, :{}, {}\n    ret\n",
                        n.name, n.name, n.arity
                    ));
                }
                (m.to_string(), text)
            })
            .collect()
    }
}
