//! Hot code loading, the VM's half: making a new version of a module current, purging the old
//! one (killing the processes that still run it or hold its functions, and copying its
//! literals out of every heap before its area is freed), and serving the requests of the
//! stdlib's `code` module and of `ember run --watch` between slices.
//!
//! The rules are the BEAM's. A module has at most a current and an old version. Calls that
//! name the module (`call m:l`, `jump m:l`, `spawn d, m:l`) go to the current version, and one
//! to a label it no longer exports crashes `:undef`; `call l` and function values stay in the
//! version they belong to, so a process runs old code until it makes such a call. Loading while
//! an old version exists fails `:not_purged`.

use super::*;
use crate::bytecode::Module;
use crate::program::CodeError;
use crate::value::Value;

/// Reads a module for a code request: by module name, or by `.basm` path (see
/// [`Builder::loader`]).
pub type Loader = dyn Fn(&str) -> Result<Module, String> + Send;

impl Vm {
    /// Loads `module`'s first unit (a module assembled on its own: its imports are linked to
    /// the modules of the running program by name) as the current version of its module; the
    /// current one, if any, becomes old. Processes running the old version go on in it.
    ///
    /// ```
    /// # use ember_vm::vm::{Vm, CodeError};
    /// # use ember_vm::value::Value;
    /// let v1 = ".module counter\n.export get\nget:\n    move r0, 1\n    ret\n";
    /// let v2 = ".module counter\n.export get\nget:\n    move r0, 2\n    ret\n";
    /// let main = ".import counter\nmain:\n    call counter:get\n    send r1, r0\n";
    /// let lib = [("counter".to_string(), v1.to_string())];
    /// let main = ember_asm::SourceFile::from_bytes("main.basm".into(), main.into(), None).unwrap();
    /// let mut vm = Vm::builder().build(ember_asm::assemble_with(main, &lib).unwrap()).unwrap();
    /// vm.load(ember_asm::assemble_str("counter.basm", v2).unwrap()).unwrap();
    /// let mb = vm.open_mailbox().unwrap();
    /// vm.spawn("main", &[Value::Int(0), mb.pid().into()]).unwrap();
    /// vm.run_until_idle();
    /// assert_eq!(vm.receive(&mb), Ok(Some(Value::Int(2))));
    /// // Version 1 is old now: a third version waits for its purge.
    /// let v3 = ember_asm::assemble_str("counter.basm", v1).unwrap();
    /// assert_eq!(vm.load(v3.clone()), Err(CodeError::NotPurged));
    /// assert_eq!(vm.purge("counter"), Some(0));
    /// assert_eq!(vm.load(v3), Ok(()));
    /// ```
    pub fn load(&mut self, module: Module) -> Result<(), CodeError> {
        let next = self.prog.load(module)?;
        let floor = next.register_floor();
        self.prog = Arc::new(next);
        // The new code may use more registers than a process was given for the old.
        let pids: Vec<u32> = self.procs.values().map(|p| p.pid).collect();
        for pid in pids {
            if let Some(p) = self.procs.get_mut(pid) {
                if p.status != Status::Host && p.regs.len() < floor {
                    p.regs.resize(floor, Term::NIL);
                }
            }
        }
        Ok(())
    }

    /// Purges `module`'s old version: the processes whose pc, call frames, `try` handlers or
    /// function values (in registers, stack, heap or mailbox) are in its code are killed
    /// (exit reason `:killed`, as the BEAM's purge kills them); the others get copies of the
    /// literals they share with it, and its literal area is freed. How many processes were
    /// killed, or `None` if the module has no old version.
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// let src = ".module m\nmain:\n    end\n";
    /// let mut vm = Vm::builder().build(ember_asm::assemble_str("m.basm", src).unwrap()).unwrap();
    /// assert_eq!(vm.purge("m"), None);
    /// assert!(!vm.has_old_code("m"));
    /// ```
    pub fn purge(&mut self, module: &str) -> Option<usize> {
        let (next, unit) = self.prog.purged(module)?;
        let old = Arc::clone(&self.prog);
        let u = &old.module.module().units[unit as usize];
        let code = u.start..u.end;
        let area = old.literals.area_of(unit);
        let tainted = old.literals_naming(unit);
        let old_fun = |f: u32| old.fun_in_unit(f, unit);
        let pids: Vec<u32> = self.procs.values().map(|p| p.pid).collect();
        let mut doomed = Vec::new();
        for pid in pids {
            let Some(p) = self.procs.get_mut(pid) else {
                continue;
            };
            let runs_old = p.status != Status::Host
                && (code.contains(&p.pc)
                    || p.frames.iter().any(|f| code.contains(f))
                    || p.extras
                        .as_ref()
                        .is_some_and(|x| x.catches.iter().any(|c| code.contains(&c.target))));
            if runs_old {
                doomed.push(pid);
                continue;
            }
            let purge = crate::heap::Purge {
                area: area.as_ref(),
                old_fun: &old_fun,
                tainted: &tainted,
                found: std::cell::Cell::new(false),
            };
            if p.collect_purging(&next.literals, &purge) {
                doomed.push(pid);
            }
        }
        // Nothing refers to the old area any more: the old program holds it until it goes.
        self.prog = Arc::new(next);
        drop(old);
        for &pid in &doomed {
            if let Some(p) = self.procs.remove(pid) {
                self.exit_running(p, Term::atom(atom::KILLED), None);
            }
        }
        Some(doomed.len())
    }

    /// Does `module` have an old version (the BEAM's `check_old_code`)?
    pub fn has_old_code(&self, module: &str) -> bool {
        self.prog.versions.old(module).is_some()
    }

    /// Sets how the VM reads a module for the requests of the stdlib's `code` module and of
    /// [`Remote::reload`]: from a module name (`counter`) or a `.basm` path, the assembled
    /// module (see [`Builder::loader`]).
    ///
    /// ```
    /// # use ember_vm::vm::{Capture, Vm};
    /// let src = ".import code\nmain:\n    call code:load, :nowhere\n    print r0\n";
    /// let out = Capture::new();
    /// let mut vm = Vm::builder()
    ///     .stdout(out.clone())
    ///     .build(ember_asm::assemble_str("main.basm", src).unwrap())
    ///     .unwrap();
    /// vm.set_loader(|name| Err(format!("no module {name} here")));
    /// vm.spawn("main", &[]).unwrap();
    /// vm.run();
    /// assert_eq!(out.text(), "{:error, {:badfile, \"no module nowhere here\"}}\n");
    /// ```
    pub fn set_loader(&mut self, loader: impl Fn(&str) -> Result<Module, String> + Send + 'static) {
        self.loader = Some(Box::new(loader));
    }

    /// Serves the code requests made so far (between slices, every scheduler stopped) and
    /// answers each.
    pub(crate) fn serve_code(&mut self) {
        for (op, reply) in self.remote.take_code() {
            let (what, outcome) = match &op {
                CodeOp::Load(t) => (t, self.load_from(t, false)),
                CodeOp::Reload(t) => (t, self.load_from(t, true)),
                CodeOp::Purge(m) => {
                    let killed = self.purge(m).unwrap_or(0);
                    (
                        m,
                        Ok(Some(Value::atom(if killed > 0 { "true" } else { "false" }))),
                    )
                }
            };
            match reply {
                CodeReply::To(pid, tag) => {
                    let result = match outcome {
                        Ok(v) => v.unwrap_or_else(|| Value::atom("ok")),
                        Err(CodeError::NotPurged) => {
                            Value::tuple([Value::atom("error"), Value::atom("not_purged")])
                        }
                        Err(CodeError::SystemLimit) => {
                            Value::tuple([Value::atom("error"), Value::atom("system_limit")])
                        }
                        Err(CodeError::Invalid(e)) => Value::tuple([
                            Value::atom("error"),
                            Value::tuple([Value::atom("badfile"), Value::binary(e)]),
                        ]),
                    };
                    let _ = self.send(pid, &Value::tuple([Value::atom("code"), tag, result]));
                }
                CodeReply::Report => {
                    let line = match outcome {
                        Ok(_) => format!("ember: loaded a new version of {what}"),
                        Err(e) => format!("ember: cannot load {what}: {e}"),
                    };
                    self.write_err(&line);
                }
            }
        }
    }

    /// Loads the module the loader reads for `target`, purging its old version first if
    /// `purge` (processes still in it are killed).
    fn load_from(&mut self, target: &str, purge: bool) -> Result<Option<Value>, CodeError> {
        let module = match &self.loader {
            None => Err("this VM has no loader to read modules with".to_string()),
            Some(load) => load(target),
        }
        .map_err(CodeError::Invalid)?;
        if purge {
            if let Some(unit) = module.units.first() {
                let name = unit.name.clone();
                self.purge(&name);
            }
        }
        self.load(module).map(|()| None)
    }
}
