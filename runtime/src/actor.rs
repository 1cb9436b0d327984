//! A handler over a process: `init`, then `handle` per event, then `terminate` when it stops.
//!
//! gen_server's rules. `terminate` runs when `handle` returns `Stop` and when `handle` or
//! `handle_exit` panics (with the panic as an `Error` reason, which is then the exit reason).
//! A panicking `init` fails the start with its reason, as an `Err` returned to the starter.
//! Trapping exits is the actor's choice ([`Actor::trap_exit`], off by default as in OTP): a
//! trapping actor stops with its parent's exit reason after `terminate` runs and hands other
//! exit signals to [`Actor::handle_exit`]; a non-trapping one is killed by any abnormal exit
//! signal without `terminate`. An untrappable `Kill` always skips `terminate`.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::channel::oneshot;
use futures::FutureExt;

use crate::rt::Duration;
use crate::{Ctx, Event, ExitReason, Node, Pid, SpawnOpts, StartError};

/// What the actor does after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop(ExitReason),
}

pub trait Actor: Send + 'static {
    type Msg: crate::Message;

    /// Runs before the actor counts as started; an error fails the start with that reason.
    fn init(
        &mut self,
        _ctx: &mut Ctx<Self::Msg>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        async { Ok(()) }
    }

    fn handle(
        &mut self,
        ctx: &mut Ctx<Self::Msg>,
        event: Event<Self::Msg>,
    ) -> impl Future<Output = Flow> + Send;

    /// Whether the actor traps exits (read once, before it runs). Without it, exit signals
    /// are handled by the node: `Normal` is ignored and anything else kills the actor at once,
    /// without `terminate`.
    fn trap_exit(&self) -> bool {
        false
    }

    /// While trapping exits: an exit signal from a process other than the parent. By default
    /// `Normal` is ignored and anything else stops the actor with the same reason.
    fn handle_exit(&mut self, _from: Pid, reason: ExitReason) -> Flow {
        match reason {
            ExitReason::Normal => Flow::Continue,
            other => Flow::Stop(other),
        }
    }

    /// The actor stops: release what it holds. Runs after `Stop`, after a panic in `handle`
    /// and (when trapping) after the parent's exit signal. Its timers are cancelled regardless.
    fn terminate(
        &mut self,
        _ctx: &mut Ctx<Self::Msg>,
        _reason: &ExitReason,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Starts `actor` on `node`, linked to `parent` if given, and waits for its `init`: the pid once
/// it succeeded, or why it did not (within `init_timeout`, after which it is killed).
pub async fn start_actor<A: Actor>(
    node: &Node,
    name: &str,
    parent: Option<Pid>,
    init_timeout: Duration,
    mut actor: A,
) -> Result<Pid, StartError> {
    let (ack_tx, ack_rx) = oneshot::channel::<Result<(), ExitReason>>();
    let mut opts = SpawnOpts::named(name);
    opts.trap_exit = actor.trap_exit();
    opts.link = parent;
    let pid = node.spawn_opts(opts, move |mut ctx: Ctx<A::Msg>| async move {
        let init = AssertUnwindSafe(actor.init(&mut ctx)).catch_unwind().await;
        if let Err(reason) = init.unwrap_or_else(|panic| Err(crashed(&*panic))) {
            // The starter learns the failure as a value, not also as an exit signal.
            if let Some(parent) = parent {
                ctx.unlink(parent);
            }
            let _ = ack_tx.send(Err(reason.clone()));
            return reason;
        }
        let _ = ack_tx.send(Ok(()));
        let reason = loop {
            let flow = match ctx.recv().await {
                Event::Exit { from, reason } if Some(from) == parent => Flow::Stop(reason),
                Event::Exit { from, reason } => {
                    std::panic::catch_unwind(AssertUnwindSafe(|| actor.handle_exit(from, reason)))
                        .unwrap_or_else(|panic| Flow::Stop(crashed(&*panic)))
                }
                event => AssertUnwindSafe(actor.handle(&mut ctx, event))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| Flow::Stop(crashed(&*panic))),
            };
            if let Flow::Stop(reason) = flow {
                break reason;
            }
        };
        actor.terminate(&mut ctx, &reason).await;
        reason
    });
    match crate::rt::timeout(init_timeout, ack_rx).await {
        Ok(Ok(Ok(()))) => Ok(pid),
        Ok(Ok(Err(reason))) => Err(StartError::Init(reason)),
        // The process died before acknowledging (killed during init).
        Ok(Err(_)) => Err(StartError::Init(ExitReason::error("exited during init"))),
        Err(_) => {
            node.exit(pid, pid, ExitReason::Kill);
            Err(StartError::Init(ExitReason::error("init timed out")))
        }
    }
}

/// The reason a panic in a callback becomes, the same as a panicking process body's.
fn crashed(panic: &(dyn std::any::Any + Send)) -> ExitReason {
    ExitReason::Error(crate::node::panic_message(panic))
}

#[cfg(test)]
mod tests;
