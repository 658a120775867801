//! The host's side of a VM: spawning processes with arguments, sending them values, host
//! mailboxes (pseudo-processes that receive for the host), and running a bounded amount of
//! work at a time. See the crate guide for an example.
//!
//! The host acts between runs: `run`, `run_until_idle` and `run_for` take the VM, and nothing
//! here runs at the same time as a process. A host mailbox is a process that never runs: it has
//! a pid, takes messages, traps exits (an exit signal becomes an `{:EXIT, pid, reason}`
//! message; only `:kill` closes it), can be linked, monitored and registered, and closing it
//! is its exit with reason `:normal`.

use super::*;
use crate::value::{self, Pid, Ref, Value, ValueError};
use std::fmt;

/// A host mailbox: what processes send to its pid waits here for [`Vm::receive`].
#[derive(Debug, PartialEq, Eq)]
pub struct Mailbox {
    pid: Pid,
}

impl Mailbox {
    /// Its pid, to put in messages (`{:request, mailbox_pid, ...}`) or to link and monitor.
    pub fn pid(&self) -> Pid {
        self.pid
    }
}

/// A writer that keeps what is written, for a host that wants a VM's output as text.
#[derive(Clone, Default)]
pub struct Capture(Arc<parking_lot::Mutex<Vec<u8>>>);

impl Capture {
    pub fn new() -> Capture {
        Capture::default()
    }
    /// What was written so far, taken out (lossily as UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.0.lock())).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a program could not be loaded into a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The bytes are not a bytecode file.
    Decode(crate::bytecode::DecodeError),
    /// The module breaks a rule of the verifier.
    Verify(String),
    /// A native function does not fit its stub.
    Native(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Decode(e) => write!(f, "not a valid bytecode file: {e}"),
            LoadError::Verify(e) => write!(f, "{e}"),
            LoadError::Native(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Sets up a [`Vm`]: its configuration, natives and outputs, then the program.
pub struct Builder {
    config: Config,
    loader: Option<Box<super::code::Loader>>,
    natives: crate::native::Natives,
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    lowering: bool,
}

impl Builder {
    /// Limits, budget, clock, schedulers (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Builder {
        self.config = config;
        self
    }
    /// The native functions the program's `native` stubs call.
    pub fn natives(mut self, natives: crate::native::Natives) -> Builder {
        self.natives = natives;
        self
    }
    /// Where `print` and `printf` write (default: the process's standard output).
    pub fn stdout(mut self, out: impl Write + Send + 'static) -> Builder {
        self.out = Box::new(out);
        self
    }
    /// Where crash reports and `report` write (default: standard error).
    pub fn stderr(mut self, err: impl Write + Send + 'static) -> Builder {
        self.err = Box::new(err);
        self
    }
    /// How the VM reads a module when a process asks it to load one (`code:load(:counter)`,
    /// `code:load("counter_v2.basm")` from the stdlib's `code` module) or a [`Remote::reload`]
    /// does: from a module name or a `.basm` path, the module assembled on its own
    /// (`ember_asm::assemble_path`). Without one, such requests fail `{:error, {:badfile, _}}`.
    ///
    /// ```
    /// # use ember_vm::vm::{Capture, Vm};
    /// let v2 = ".module greet\n.export hi\nhi:\n    move r0, :v2\n    ret\n";
    /// let main = ".import code\n.import greet\nmain:\n    call code:load, :greet\n    print r0\n    call greet:hi\n    print r0\n";
    /// let lib = [("greet".to_string(), v2.replace(":v2", ":v1"))];
    /// let main = ember_asm::SourceFile::from_bytes("main.basm".into(), main.into(), None).unwrap();
    /// let out = Capture::new();
    /// let mut vm = Vm::builder()
    ///     .stdout(out.clone())
    ///     .loader(move |name| {
    ///         assert_eq!(name, "greet");
    ///         ember_asm::assemble_str("greet.basm", v2).map_err(|e| e.to_string())
    ///     })
    ///     .build(ember_asm::assemble_with(main, &lib).unwrap())
    ///     .unwrap();
    /// vm.spawn("main", &[]).unwrap();
    /// vm.run();
    /// assert_eq!(out.text(), ":ok\n:v2\n");
    /// ```
    pub fn loader(
        mut self,
        loader: impl Fn(&str) -> Result<crate::bytecode::Module, String> + Send + 'static,
    ) -> Builder {
        self.loader = Some(Box::new(loader));
        self
    }
    /// Runs every instruction in the general interpreter (`--no-lower`).
    pub fn without_lowering(mut self) -> Builder {
        self.lowering = false;
        self
    }
    /// The VM of an assembled module (`ember_asm::assemble_str`, `assemble_with`), verified
    /// first.
    pub fn build(self, module: crate::bytecode::Module) -> Result<Vm, LoadError> {
        let verified =
            crate::verify::verify(module).map_err(|e| LoadError::Verify(e.to_string()))?;
        let mut prog = Program::with_natives(verified, &self.natives).map_err(LoadError::Native)?;
        if !self.lowering {
            prog = prog.lowering_off();
        }
        let mut vm = Vm::new(prog, self.config, self.out, self.err);
        vm.loader = self.loader;
        Ok(vm)
    }
    /// The VM of the bytes of an `.ebc` file, decoded and verified.
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// # use ember_vm::value::Value;
    /// # let src = "main:\n    print :ok\n";
    /// # let mut vm = Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// let ebc = ember_asm::assemble_str("m.basm", "main:\n    print :hi\n").unwrap().encode();
    /// let mut vm2 = Vm::builder().build_ebc(&ebc).unwrap();
    /// vm2.spawn("main", &[]).unwrap();
    /// assert!(Vm::builder().build_ebc(b"not bytecode").is_err());
    /// ```
    pub fn build_ebc(self, bytes: &[u8]) -> Result<Vm, LoadError> {
        let module = crate::bytecode::Module::decode(bytes).map_err(LoadError::Decode)?;
        self.build(module)
    }
}

/// Why a host request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// No such label to spawn at: `module:label` must be exported by its module; a plain
    /// `label` is one of the program's first module.
    NoEntry(String),
    /// A value that cannot cross into the VM.
    Value(ValueError),
    /// A send to a name nothing is registered under (Erlang's `badarg`).
    NoName(String),
    /// The mailbox was closed by an exit signal `:kill` (or `--max-heap`).
    Closed,
    /// `--max-processes` or `--max-memory` leaves no room for another process.
    SystemLimit,
    /// `register`: the name is taken, or the process is dead or already named.
    BadRegister,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::NoEntry(e) => write!(
                f,
                "no label `{e}` to spawn at (a label of another module must be exported)"
            ),
            HostError::Value(e) => write!(f, "{e}"),
            HostError::NoName(n) => write!(f, "no process is registered as :{n}"),
            HostError::Closed => write!(f, "the mailbox was closed by an exit signal"),
            HostError::SystemLimit => write!(f, "no room for another process (system_limit)"),
            HostError::BadRegister => write!(
                f,
                "the name is taken, or the process is dead or already named"
            ),
        }
    }
}

impl std::error::Error for HostError {}

impl From<ValueError> for HostError {
    fn from(e: ValueError) -> HostError {
        HostError::Value(e)
    }
}

/// Where [`Vm::send`] sends: a pid, or a registered name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    Pid(Pid),
    Name(String),
}

impl From<Pid> for Dest {
    fn from(p: Pid) -> Dest {
        Dest::Pid(p)
    }
}
impl From<&Mailbox> for Dest {
    fn from(m: &Mailbox) -> Dest {
        Dest::Pid(m.pid)
    }
}
/// A name (an atom, without the colon).
impl From<&str> for Dest {
    fn from(n: &str) -> Dest {
        Dest::Name(n.to_string())
    }
}

/// A handle through which any thread sends into a VM, while it runs or between runs: a native
/// function hands one to the thread that does its long work, which sends the result back as a
/// message. The VM takes what was sent between slices. While a `Remote` is alive, [`Vm::run`]
/// waits for it rather than ending when no process can run.
///
/// ```
/// # use ember_vm::vm::{Capture, Vm};
/// # let out = Capture::new();
/// # let src = "main:\n    receive\n    | {:result, r1}\n    print r1\n";
/// # let mut vm = Vm::builder().stdout(out.clone()).build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
/// use ember_vm::value::{Pid, Value};
/// let main = vm.spawn("main", &[]).unwrap();
/// let remote = vm.remote();
/// let worker = std::thread::spawn(move || {
///     let answer = (1..=10).product::<i64>(); // long work, off the schedulers
///     remote.send(main, Value::tuple([Value::atom("result"), answer.into()]));
/// });
/// vm.run(); // waits for the worker's message (and for its Remote to go)
/// worker.join().unwrap();
/// assert_eq!(out.text(), "3628800\n");
/// ```
pub struct Remote {
    inbox: Arc<RemoteInbox>,
}

impl Clone for Remote {
    fn clone(&self) -> Remote {
        Remote::new(&self.inbox)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.inbox
            .senders
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        // A run waiting for senders looks again.
        let _q = self.inbox.queue.lock();
        self.inbox.arrived.notify_all();
    }
}

#[derive(Default)]
pub(crate) struct RemoteInbox {
    queue: parking_lot::Mutex<Vec<(Dest, Value)>>,
    /// Code requests (`code:load`, `code:purge`, `--watch`), served between slices with every
    /// scheduler stopped.
    code: parking_lot::Mutex<Vec<(CodeOp, CodeReply)>>,
    /// Set when `code` may hold something.
    pub(crate) code_pending: std::sync::atomic::AtomicBool,
    /// Set when `queue` may hold something: looked at between slices without the lock.
    pub(crate) pending: std::sync::atomic::AtomicBool,
    /// How many [`Remote`]s are alive.
    senders: std::sync::atomic::AtomicUsize,
    arrived: parking_lot::Condvar,
}

impl Remote {
    pub(crate) fn new(inbox: &Arc<RemoteInbox>) -> Remote {
        inbox
            .senders
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Remote {
            inbox: Arc::clone(inbox),
        }
    }

    /// Sends `msg` to a pid or a registered name, as [`Vm::send`] does; it arrives between
    /// slices (a bad name or value is dropped, as a send to a dead pid is).
    pub fn send(&self, to: impl Into<Dest>, msg: Value) {
        let mut q = self.inbox.queue.lock();
        q.push((to.into(), msg));
        self.inbox
            .pending
            .store(true, std::sync::atomic::Ordering::Release);
        self.inbox.arrived.notify_all();
    }
}

/// A request to the VM's code server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeOp {
    /// Load a new version of a module, by module name or `.basm` path (the host's loader reads
    /// it, see [`Builder::loader`]).
    Load(String),
    /// Purge a module's old version.
    Purge(String),
    /// Purge the module's old version, if any, then load a new one (`ember run --watch`).
    Reload(String),
}

/// Where the outcome of a code request goes.
#[derive(Clone, Debug, PartialEq)]
pub enum CodeReply {
    /// As a message `{:code, tag, result}` to a process (the stdlib's `code` module waits for
    /// it).
    To(Pid, Value),
    /// As a line on the VM's standard error (`--watch`).
    Report,
}

impl Remote {
    /// Asks the VM to serve a code request between slices (with every scheduler stopped).
    pub fn request(&self, op: CodeOp, reply: CodeReply) {
        self.inbox.code.lock().push((op, reply));
        self.inbox
            .code_pending
            .store(true, std::sync::atomic::Ordering::Release);
        // Wakes a run waiting for remote work, which then serves it.
        let _q = self.inbox.queue.lock();
        self.inbox
            .pending
            .store(true, std::sync::atomic::Ordering::Release);
        self.inbox.arrived.notify_all();
    }

    /// Purges `module`'s old version, if any, and loads a new one (by name or `.basm` path,
    /// through the VM's loader), reporting the outcome on the VM's standard error: what
    /// `ember run --watch` does when a file changes.
    ///
    /// ```
    /// # use ember_vm::vm::{Capture, Vm};
    /// let src = ".module m\nmain:\n    end\n";
    /// let err = Capture::new();
    /// let mut vm = Vm::builder()
    ///     .stderr(err.clone())
    ///     .loader(move |_| ember_asm::assemble_str("m.basm", src).map_err(|e| e.to_string()))
    ///     .build(ember_asm::assemble_str("m.basm", src).unwrap())
    ///     .unwrap();
    /// let remote = vm.remote();
    /// std::thread::spawn(move || remote.reload("m")).join().unwrap();
    /// vm.run_until_idle();
    /// assert_eq!(err.text(), "ember: loaded a new version of m\n");
    /// assert!(vm.has_old_code("m"));
    /// ```
    pub fn reload(&self, module: &str) {
        self.request(CodeOp::Reload(module.to_string()), CodeReply::Report);
    }
}

impl RemoteInbox {
    /// The code requests made so far, oldest first.
    pub(crate) fn take_code(&self) -> Vec<(CodeOp, CodeReply)> {
        let mut q = self.code.lock();
        self.code_pending
            .store(false, std::sync::atomic::Ordering::Relaxed);
        std::mem::take(&mut *q)
    }

    /// Everything sent so far, oldest first.
    pub(crate) fn take(&self) -> Vec<(Dest, Value)> {
        let mut q = self.queue.lock();
        self.pending
            .store(false, std::sync::atomic::Ordering::Relaxed);
        std::mem::take(&mut *q)
    }

    /// Whether a [`Remote`] is alive, which may still send.
    pub(crate) fn has_senders(&self) -> bool {
        self.senders.load(std::sync::atomic::Ordering::Acquire) > 0
    }

    /// Waits (a moment at most) for something to be sent, or the last sender to go.
    pub(crate) fn wait(&self, at_most: std::time::Duration) {
        let mut q = self.queue.lock();
        if q.is_empty() && self.has_senders() {
            self.arrived.wait_for(&mut q, at_most);
        }
    }
}

/// Why [`Vm::run_until_idle`] or [`Vm::run_for`] returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pause {
    /// No process can run now. `next_timeout` is when the earliest pending `receive` timeout
    /// is due, in VM milliseconds ([`Vm::now_ms`]); `None`: none is pending, so nothing will
    /// run until the host sends something.
    Idle { next_timeout: Option<u64> },
    /// The bound of [`Vm::run_for`] was reached; processes are still runnable.
    Budget,
    /// The run is over: `halt`, or an output failed. The VM runs nothing more.
    Ended(RunEnd),
}

/// When a run stops.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// When nothing can run and no timer is pending (`run`).
    End,
    /// When nothing can run now (timers may be pending).
    Idle,
    /// After this many reductions per scheduler, or when idle.
    Reductions(u64),
}

impl Vm {
    /// Sets up a VM (see [`Builder`]).
    pub fn builder() -> Builder {
        Builder {
            config: Config::default(),
            natives: crate::native::Natives::new(),
            out: Box::new(io::stdout()),
            err: Box::new(io::stderr()),
            lowering: true,
            loader: None,
        }
    }

    /// A new process at `entry` (`module:label`, exported by its module, or a label of the
    /// program's first module) with `r0, r1, ... :=` copies of `args`; it is queued to run.
    ///
    /// ```
    /// # use ember_vm::vm::{Capture, Vm};
    /// # let out = Capture::new();
    /// # let src = "f:\n    add r0, r0, r1\n    print r0\n";
    /// # let mut vm = Vm::builder().stdout(out.clone()).build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// vm.spawn("f", &[40.into(), 2.into()]).unwrap();
    /// vm.run_until_idle();
    /// assert_eq!(out.text(), "42\n");
    /// ```
    pub fn spawn(&mut self, entry: &str, args: &[Value]) -> Result<Pid, HostError> {
        let at = self.entry_point(entry)?;
        let mut scratch = Heap::new();
        let terms: Vec<Term> = args
            .iter()
            .map(|a| value::build(a, &mut scratch, &self.prog))
            .collect::<Result<_, _>>()?;
        let words = scratch.used_words();
        self.spawn_process(None, at, false, &terms, words)
            .map(Pid)
            .map_err(|_| HostError::SystemLimit)
    }

    /// The code position of `entry` for the host's `spawn`.
    fn entry_point(&self, entry: &str) -> Result<u32, HostError> {
        let m = self.prog.module.module();
        let found = match entry.split_once(':') {
            // A label of the first module's current version.
            None => self
                .prog
                .versions
                .current(&m.units[0].name)
                .and_then(|u| self.prog.module.find_label(u as usize, entry)),
            Some((module, label)) => self
                .prog
                .versions
                .current(module)
                .map(|u| u as usize)
                .filter(|&u| m.units[u].exports.iter().any(|e| e == label))
                .and_then(|u| self.prog.module.find_label(u, label)),
        };
        found
            .map(|l| l.0)
            .ok_or_else(|| HostError::NoEntry(entry.to_string()))
    }

    /// Sends a copy of `msg` to a pid or a registered name, as `send` does: to a dead pid it is
    /// dropped; a receiver it does not fit (`--max-heap`) crashes `:heap_limit`.
    ///
    /// ```
    /// # use ember_vm::vm::{Capture, Vm};
    /// # let out = Capture::new();
    /// # let src = "echo:\n    receive\n    | {:hello, r1}\n    print r1\n";
    /// # let mut vm = Vm::builder().stdout(out.clone()).build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// use ember_vm::value::Value;
    /// let pid = vm.spawn("echo", &[]).unwrap();
    /// vm.send(pid, &Value::tuple([Value::atom("hello"), 7.into()])).unwrap();
    /// vm.run_until_idle();
    /// assert_eq!(out.text(), "7\n");
    /// ```
    pub fn send(&mut self, to: impl Into<Dest>, msg: &Value) -> Result<(), HostError> {
        let pid = match to.into() {
            Dest::Pid(p) => p.0,
            Dest::Name(n) => self
                .prog
                .atoms
                .lookup(&n)
                .and_then(|a| self.registry.get(&a).copied())
                .ok_or(HostError::NoName(n))?,
        };
        let mut scratch = Heap::new();
        let t = value::build(msg, &mut scratch, &self.prog)?;
        let words = scratch.used_words();
        self.stats.messages_sent += 1;
        self.deliver_built(&mut Running::none(), pid, |heap, lits, room| {
            heap.copy_into(t, lits, words, room)
        });
        Ok(())
    }

    /// A handle through which other threads send into this VM (see [`Remote`]).
    pub fn remote(&self) -> Remote {
        Remote::new(&self.remote)
    }

    /// Delivers what other threads sent through a [`Remote`]; true if anything came.
    pub(crate) fn take_remote(&mut self) -> bool {
        // Messages first, then code requests: `Remote::request` marks its request before it
        // marks the inbox, so a request whose mark this take clears is seen below.
        let sent = self.remote.take();
        let code = self
            .remote
            .code_pending
            .load(std::sync::atomic::Ordering::Acquire);
        if code {
            self.serve_code();
        }
        let any = code || !sent.is_empty();
        for (to, msg) in sent {
            let _ = self.send(to, &msg);
        }
        any
    }

    /// Opens a host mailbox: a new pid that processes can send to.
    ///
    /// ```
    /// # let src = "reply:\n    send r0, {:pong, r1}\n";
    /// # let mut vm = ember_vm::vm::Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// use ember_vm::value::Value;
    /// let mb = vm.open_mailbox().unwrap();
    /// vm.spawn("reply", &[mb.pid().into(), 1.into()]).unwrap();
    /// vm.run_until_idle();
    /// assert_eq!(vm.receive(&mb), Ok(Some(Value::tuple([Value::atom("pong"), 1.into()]))));
    /// assert_eq!(vm.receive(&mb), Ok(None));
    /// ```
    pub fn open_mailbox(&mut self) -> Result<Mailbox, HostError> {
        let pid = self.new_pid().map_err(|_| HostError::SystemLimit)?;
        let mut p = Box::new(Process::new(pid, 0, 1));
        p.status = Status::Host;
        p.trap_exit = true;
        self.alive += 1;
        self.account(&mut p);
        self.procs.insert(p);
        Ok(Mailbox { pid: Pid(pid) })
    }

    /// Takes the oldest message in `mb`, if any. An exit signal from a linked process arrives
    /// as `{:EXIT, pid, reason}`, a monitor's as `{:DOWN, ref, :process, who, reason}`.
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// # use ember_vm::value::Value;
    /// # let src = "crash:\n    receive\n    | :go\n    crash :boom\n";
    /// # let mut vm = Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// let mb = vm.open_mailbox().unwrap();
    /// let pid = vm.spawn("crash", &[]).unwrap();
    /// vm.link(&mb, pid).unwrap();
    /// vm.send(pid, &Value::atom("go")).unwrap();
    /// vm.run_until_idle();
    /// let exit = Value::tuple([Value::atom("EXIT"), pid.into(), Value::atom("boom")]);
    /// assert_eq!(vm.receive(&mb), Ok(Some(exit)));
    /// assert_eq!(vm.receive(&mb), Ok(None));
    /// ```
    pub fn receive(&mut self, mb: &Mailbox) -> Result<Option<Value>, HostError> {
        self.host_mut(mb)?;
        let lits = &self.prog.literals;
        let p = self.procs.get_mut(mb.pid.0).ok_or(HostError::Closed)?;
        let c = p.mailbox.resume(None, false);
        let Some(t) = p.mailbox.peek(c) else {
            return Ok(None);
        };
        let v = value::read(t, &self.prog);
        p.mailbox.take(c);
        self.stats.messages_received += 1;
        if p.heap.needs_gc() {
            p.collect(lits, &mut []);
        }
        let p = self.procs.get_mut(mb.pid.0).ok_or(HostError::Closed)?;
        account(&mut self.memory, p);
        Ok(Some(v?))
    }

    /// How many messages wait in `mb`.
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// # use ember_vm::value::Value;
    /// # let src = "twice:\n    send r0, 1\n    send r0, 2\n";
    /// # let mut vm = Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// let mb = vm.open_mailbox().unwrap();
    /// vm.spawn("twice", &[mb.pid().into()]).unwrap();
    /// vm.run_until_idle();
    /// assert_eq!(vm.pending(&mb), 2);
    /// ```
    pub fn pending(&self, mb: &Mailbox) -> usize {
        self.procs
            .get(mb.pid.0)
            .filter(|p| p.status == Status::Host)
            .map_or(0, |p| p.mailbox.len())
    }

    /// `mb`'s process, if it is still open. (A mailbox of another VM names a pid here that
    /// may be an ordinary process: never that.)
    fn host_mut(&mut self, mb: &Mailbox) -> Result<&mut Process, HostError> {
        self.procs
            .get_mut(mb.pid.0)
            .filter(|p| p.status == Status::Host)
            .ok_or(HostError::Closed)
    }

    /// Closes `mb`: its exit, with reason `:normal` (linked processes that trap exits get
    /// `{:EXIT, pid, :normal}`, monitors `:DOWN`), and its name is freed.
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// # use ember_vm::value::Value;
    /// # let src = "watch:\n    monitor r1, r0\n    receive\n    | {:DOWN, _, :process, _, r2}\n    print r2\n";
    /// # let mut vm = Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// let mb = vm.open_mailbox().unwrap();
    /// vm.spawn("watch", &[mb.pid().into()]).unwrap();
    /// vm.run_until_idle();
    /// let pid = mb.pid();
    /// vm.close_mailbox(mb);
    /// assert!(!vm.is_alive(pid));
    /// vm.run_until_idle(); // the watcher prints :normal
    /// ```
    pub fn close_mailbox(&mut self, mb: Mailbox) {
        if self.host_mut(&mb).is_err() {
            return;
        }
        if let Some(p) = self.procs.remove(mb.pid.0) {
            self.exit_running(p, Term::atom(atom::NORMAL), None);
        }
    }

    /// Links `mb` and `pid`: an abnormal exit of `pid` arrives in `mb` as `{:EXIT, pid,
    /// reason}`, and closing `mb` sends `pid` an exit signal `:normal`. A dead `pid` gives
    /// `{:EXIT, pid, :noproc}` at once.
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// # use ember_vm::value::Value;
    /// # let src = "gone:\n    end\n";
    /// # let mut vm = Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// let mb = vm.open_mailbox().unwrap();
    /// let pid = vm.spawn("gone", &[]).unwrap();
    /// vm.run_until_idle();
    /// vm.link(&mb, pid).unwrap(); // already gone
    /// let noproc = Value::tuple([Value::atom("EXIT"), pid.into(), Value::atom("noproc")]);
    /// assert_eq!(vm.receive(&mb), Ok(Some(noproc)));
    /// ```
    pub fn link(&mut self, mb: &Mailbox, pid: Pid) -> Result<(), HostError> {
        self.as_host(mb, |vm, p| vm.link_pids(p, pid.0).map(|_| ()))
    }

    /// Removes the link between `mb` and `pid`.
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// # use ember_vm::value::Value;
    /// # let src = "fail:\n    receive\n    | :go\n    crash :boom\n";
    /// # let mut vm = Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// let mb = vm.open_mailbox().unwrap();
    /// let pid = vm.spawn("fail", &[]).unwrap();
    /// vm.link(&mb, pid).unwrap();
    /// vm.unlink(&mb, pid).unwrap();
    /// vm.send(pid, &Value::atom("go")).unwrap();
    /// vm.run_until_idle();
    /// assert_eq!(vm.receive(&mb), Ok(None));
    /// ```
    pub fn unlink(&mut self, mb: &Mailbox, pid: Pid) -> Result<(), HostError> {
        self.as_host(mb, |vm, p| {
            vm.unlink_pids(p, pid.0);
            Ok(())
        })
    }

    /// Monitors a pid or a registered name from `mb`: its exit arrives as `{:DOWN, ref,
    /// :process, who, reason}` (`who` the pid or the name, as taken).
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// # use ember_vm::value::Value;
    /// # let src = "svc:\n    self r0\n    register :svc, r0\n    receive\n    | :stop\n";
    /// # let mut vm = Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// let mb = vm.open_mailbox().unwrap();
    /// let pid = vm.spawn("svc", &[]).unwrap();
    /// assert!(vm.send(pid, &Value::atom("unnamed")).is_err()); // atoms are the program's
    /// vm.run_until_idle();
    /// let r = vm.monitor(&mb, "svc").unwrap();
    /// vm.send("svc", &Value::atom("stop")).unwrap();
    /// vm.run_until_idle();
    /// let down = Value::tuple([
    ///     Value::atom("DOWN"), Value::Ref(r), Value::atom("process"), Value::atom("svc"), Value::atom("normal"),
    /// ]);
    /// assert_eq!(vm.receive(&mb), Ok(Some(down)));
    /// ```
    pub fn monitor(&mut self, mb: &Mailbox, target: impl Into<Dest>) -> Result<Ref, HostError> {
        let target = match target.into() {
            Dest::Pid(p) => Term::pid(p.0),
            Dest::Name(n) => Term::atom(
                self.prog
                    .atoms
                    .lookup(&n)
                    .ok_or(HostError::Value(ValueError::UnknownAtom(n)))?,
            ),
        };
        let mut r = 0;
        self.as_host(mb, |vm, p| {
            r = vm.monitor_target(p, target)?;
            Ok(())
        })?;
        Ok(Ref(r))
    }

    /// Removes monitor `r` of `mb` (and its `:DOWN`, if it already came).
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// # use ember_vm::value::Value;
    /// # let src = "quick:\n    end\n";
    /// # let mut vm = Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// let mb = vm.open_mailbox().unwrap();
    /// let pid = vm.spawn("quick", &[]).unwrap();
    /// let r = vm.monitor(&mb, pid).unwrap();
    /// vm.run_until_idle(); // its :DOWN came
    /// vm.demonitor(&mb, r).unwrap(); // and is flushed
    /// assert_eq!(vm.receive(&mb), Ok(None));
    /// ```
    pub fn demonitor(&mut self, mb: &Mailbox, r: Ref) -> Result<(), HostError> {
        self.as_host(mb, |vm, p| {
            vm.demonitor_ref(p, r.0);
            Ok(())
        })
    }

    /// Runs `f` with `mb`'s process checked out, as if it ran an instruction.
    fn as_host(
        &mut self,
        mb: &Mailbox,
        f: impl FnOnce(&mut Vm, &mut Process) -> Effect,
    ) -> Result<(), HostError> {
        self.host_mut(mb)?;
        let mut p = self.procs.check_out(mb.pid.0).ok_or(HostError::Closed)?;
        match f(self, &mut p) {
            Ok(()) => {
                self.account(&mut p);
                self.procs.put_back(p);
                Ok(())
            }
            Err(exit) => {
                self.procs.release(mb.pid.0);
                self.exit_running(p, exit.reason, None);
                Err(HostError::Closed)
            }
        }
    }

    /// Registers `pid` (a process or a host mailbox) as `name`, as `register` does.
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// # use ember_vm::value::Value;
    /// # let src = "ask:\n    send :host, :hello\n";
    /// # let mut vm = Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// let mb = vm.open_mailbox().unwrap();
    /// vm.register("host", mb.pid()).unwrap();
    /// assert_eq!(vm.whereis("host"), Some(mb.pid()));
    /// vm.spawn("ask", &[]).unwrap();
    /// vm.run_until_idle();
    /// assert_eq!(vm.receive(&mb), Ok(Some(Value::atom("hello"))));
    /// ```
    pub fn register(&mut self, name: &str, pid: Pid) -> Result<(), HostError> {
        let a = self
            .prog
            .atoms
            .lookup(name)
            .ok_or_else(|| HostError::Value(ValueError::UnknownAtom(name.to_string())))?;
        if a == atom::UNDEFINED || self.registry.contains_key(&a) {
            return Err(HostError::BadRegister);
        }
        match self.procs.get_mut(pid.0) {
            Some(p) if p.name.is_none() => {
                p.name = Some(a);
                self.registry.insert(a, pid.0);
                Ok(())
            }
            _ => Err(HostError::BadRegister),
        }
    }

    /// The pid registered as `name`.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        let a = self.prog.atoms.lookup(name)?;
        self.registry.get(&a).map(|&p| Pid(p))
    }

    /// Whether `pid` is alive (a process or an open host mailbox).
    pub fn is_alive(&self, pid: Pid) -> bool {
        self.procs.contains(pid.0)
    }

    /// The printed form of `v`, as `print` writes it.
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// # use ember_vm::value::Value;
    /// # let src = "main:\n    print :ok\n";
    /// # let mut vm = Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// let v = Value::tuple([Value::atom("ok"), Value::binary("hi"), Value::list([1.into(), 2.5.into()])]);
    /// assert_eq!(vm.format_value(&v).unwrap(), "{:ok, \"hi\", [1, 2.5]}");
    /// ```
    pub fn format_value(&self, v: &Value) -> Result<String, ValueError> {
        let mut scratch = Heap::new();
        let t = value::build(v, &mut scratch, &self.prog)?;
        Ok(value::print(t, &self.prog))
    }

    /// Runs until no process can run now (a pending timeout is not waited for: see
    /// [`Pause::Idle`]), or the run ends. Under `--virtual-time` the clock moves to each
    /// timeout, so only an empty timer table is idle.
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// # use ember_vm::value::Value;
    /// # let src = "later:\n    receive\n    | after 1000 -> done\ndone:\n    print :done\n";
    /// # let mut vm = Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// use ember_vm::vm::Pause;
    /// vm.spawn("later", &[]).unwrap();
    /// assert_eq!(vm.run_until_idle(), Pause::Idle { next_timeout: Some(1000) });
    /// ```
    pub fn run_until_idle(&mut self) -> Pause {
        self.run_until(Stop::Idle)
    }

    /// Runs at most about `reductions` reductions per scheduler (checked between slices), and
    /// stops earlier when idle: a host event loop's slice of work.
    ///
    /// ```
    /// # use ember_vm::vm::Vm;
    /// # use ember_vm::value::Value;
    /// # let src = "spin:\n    jump spin\n";
    /// # let mut vm = Vm::builder().build(ember_asm::assemble_str("doc.basm", src).unwrap()).unwrap();
    /// use ember_vm::vm::Pause;
    /// vm.spawn("spin", &[]).unwrap();
    /// assert_eq!(vm.run_for(10_000), Pause::Budget);
    /// assert!(vm.stats.reductions >= 10_000);
    /// ```
    pub fn run_for(&mut self, reductions: u64) -> Pause {
        self.run_until(Stop::Reductions(reductions))
    }

    fn run_until(&mut self, stop: Stop) -> Pause {
        match self.run_loop(&mut interp::NoProbe, stop) {
            Some(end) => Pause::Ended(end),
            None if self.queue.iter().any(|&q| self.procs.contains(q)) => Pause::Budget,
            None => Pause::Idle {
                next_timeout: self.timers.first_key_value().map(|(&(d, _), _)| d),
            },
        }
    }
}
