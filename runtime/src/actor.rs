//! A handler over a process: `init`, then `handle` per event, then `terminate` on an orderly stop.
//!
//! An actor traps exits: an exit signal from its parent (the process that started it, usually a
//! supervisor) or any abnormal one stops it with that reason after `terminate` runs; a `Normal`
//! exit from anyone else goes to [`Actor::handle_exit`]. Only `Kill` skips `terminate`.

use std::future::Future;

use futures::channel::oneshot;

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

    /// An exit signal from a process other than the parent. By default `Normal` is ignored and
    /// anything else stops the actor with the same reason.
    fn handle_exit(&mut self, _from: Pid, reason: ExitReason) -> Flow {
        match reason {
            ExitReason::Normal => Flow::Continue,
            other => Flow::Stop(other),
        }
    }

    /// Orderly shutdown: release what the actor holds. Its timers are cancelled regardless.
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
    let mut opts = SpawnOpts::named(name).trap_exit();
    opts.link = parent;
    let pid = node.spawn_opts(opts, move |mut ctx: Ctx<A::Msg>| async move {
        if let Err(reason) = actor.init(&mut ctx).await {
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
                Event::Exit { from, reason } => actor.handle_exit(from, reason),
                event => actor.handle(&mut ctx, event).await,
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
        // The process died before acknowledging (killed, or a panic in init).
        Ok(Err(_)) => Err(StartError::Init(ExitReason::error("exited during init"))),
        Err(_) => {
            node.exit(pid, pid, ExitReason::Kill);
            Err(StartError::Init(ExitReason::error("init timed out")))
        }
    }
}
