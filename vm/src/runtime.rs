//! What the interpreter asks of the runtime: the effects of the process instructions (spawn,
//! send, links, monitors, exit signals, the registry), the limits, the clock and output.
//!
//! [`crate::interp::run_slice`] is generic over it and monomorphised, so the runtime of one
//! scheduler ([`crate::vm::Vm`], where a signal to a process that is not running takes effect
//! at once) and that of N schedulers ([`crate::smp`], where signals are messages in the
//! receiver's incoming queue) share one interpreter loop and pay nothing for the other.

use crate::process::Process;
use crate::program::Tpl;
use crate::term::Term;
use crate::vm::Stats;

/// An exit the running process must take, returned by an effect.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exit {
    pub reason: Term,
    /// Raised by the VM (`:badarg`, `:heap_limit`, `:noproc`, ...): reported on stderr.
    pub raised: bool,
}

impl Exit {
    pub(crate) fn raised(reason: u32) -> Exit {
        Exit {
            reason: Term::atom(reason),
            raised: true,
        }
    }
}

/// What an effect returns: its value, or the exit the running process must take.
pub(crate) type Effect<T = ()> = Result<T, Exit>;

/// What `send` sends: a term of the sender's heap, or a template of its registers.
#[derive(Clone, Copy)]
pub(crate) enum Outgoing<'t> {
    Term(Term),
    /// A template, with its image when its shape is fixed.
    Template(&'t Tpl, Option<&'t crate::heap::Image>),
}

pub(crate) trait Runtime {
    /// Whether signals may reach a process while it runs and wait to be drained (`drain`):
    /// with one scheduler they never do, and an empty mailbox at a receive means wait.
    const DRAINS: bool;
    /// `send p, v`: `to` is a pid or a registered name.
    fn send(&mut self, p: &mut Process, to: Term, msg: Outgoing<'_>) -> Effect;
    /// Whether `send_image` may send (the threaded `send` asks it only then).
    const SENDS_IMAGES: bool = false;
    /// `send` of a template with a fixed shape (`image`, reading `regs`) from process `from`,
    /// when the runtime can do it as `send` would with nothing else to do (see
    /// `Vm::send_image`): true when sent. False, with nothing done, otherwise.
    fn send_image(
        &mut self,
        _from: u32,
        _peer_at: &mut crate::process::PeerHint,
        _to: Term,
        _image: &crate::heap::Image,
        _regs: &[Term],
    ) -> bool {
        false
    }
    /// `spawn`/`spawn_link` at `at` with `args` (terms of a heap of `src_words` words).
    fn spawn(
        &mut self,
        p: &mut Process,
        at: u32,
        link: bool,
        args: &[Term],
        src_words: usize,
    ) -> Effect<u32>;
    fn link(&mut self, p: &mut Process, other: u32) -> Effect;
    fn unlink(&mut self, p: &mut Process, other: u32);
    fn monitor(&mut self, p: &mut Process, target: Term) -> Effect<u64>;
    fn demonitor(&mut self, p: &mut Process, r: u64);
    fn exit(&mut self, p: &mut Process, to: u32, reason: Term) -> Effect;
    fn register(&mut self, p: &mut Process, name: u32, pid: u32) -> Effect;
    fn unregister(&mut self, p: &mut Process, name: u32) -> Effect;
    fn whereis(&self, name: u32) -> Option<u32>;
    fn make_ref(&mut self, p: &mut Process) -> u64;
    /// A receive took `msg`, the `seq`-th message to reach `p`.
    fn received(&mut self, p: &mut Process, msg: Term, seq: u64);
    /// Signals that reached `p` while it ran: messages join its mailbox, links, monitors and
    /// exit signals take effect. True when a message arrived. With one scheduler signals take
    /// effect at once, so there is never anything to drain.
    fn drain(&mut self, p: &mut Process) -> Effect<bool>;
    /// Collects `p`'s heap now; `roots` are terms the instruction holds (updated in place).
    fn collect(&mut self, p: &mut Process, roots: &mut [Term]);
    /// Bytes `p` may still grow by before it passes its limits (spec §10).
    fn room(&self, p: &Process) -> usize;
    fn over_limit(&self, p: &Process) -> bool;
    fn max_stack(&self) -> usize;
    /// Writes a line of `print`; false when the output failed and the run ends.
    fn print(&mut self, line: &[u8]) -> bool;
    /// A report line (the `report` instruction) for standard error; dropped under
    /// `--quiet-reports`.
    fn report(&mut self, line: &str);
    fn now_ms(&self) -> u64;
    fn arm_timer(&mut self, p: &mut Process, ms: u64);
    fn cancel_timer(&mut self, p: &mut Process);
    fn stats(&mut self) -> &mut Stats;
    /// Whether a trace is being written (the instructions that change links, monitors and
    /// names then report what they did with [`Runtime::trace_event`]).
    fn tracing(&self) -> bool;
    fn trace_event(&mut self, event: serde_json::Value);
    /// What other threads send into this VM through (a native gives a handle to its thread).
    fn remote_inbox(&self) -> &std::sync::Arc<crate::vm::RemoteInbox>;
}
