//! Supervisors: start children in order, restart them by strategy within a restart intensity,
//! stop them in reverse order.
//!
//! - [`start`]: a supervisor over a fixed list of [`ChildSpec`]s.
//! - [`start_dynamic`]: children added on demand with [`start_child`], from one template.
//! - [`task`]: one-off supervised tasks whose failures are reported.
//!
//! Intensity: more than `intensity` restarts within `period` of the runtime clock makes the
//! supervisor stop its children and exit with `Shutdown`, which its own parent sees
//! (escalation). A restart whose start fails is retried after the events already queued, each
//! retry counted as a restart.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::rt::Duration;
use crate::{CallError, Ctx, ExitReason, Message, Node, Pid, StartError};

mod core;
pub mod task;

/// A boxed start future.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<Pid, StartError>> + Send>>;

/// Starts a child given its node and the supervisor's pid (pass it as the child's parent, e.g.
/// to [`start_actor`](crate::start_actor), so the child is linked before it runs).
pub type StartFn = Arc<dyn Fn(Node, Pid) -> StartFuture + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// Restart only the child that exited.
    OneForOne,
    /// Stop all other children (reverse order), then restart all (in order).
    OneForAll,
    /// Stop the children started after it (reverse order), then restart it and them.
    RestForOne,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Restart {
    /// Always restarted.
    Permanent,
    /// Restarted unless it exited `Normal` or `Shutdown`.
    Transient,
    /// Never restarted.
    Temporary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shutdown {
    /// Sent `Shutdown`; killed if still running after this long.
    Timeout(Duration),
    /// Killed at once.
    BrutalKill,
}

/// One child: how to start it and how to treat its exits.
#[derive(Clone)]
pub struct ChildSpec {
    pub id: String,
    pub start: StartFn,
    pub restart: Restart,
    pub shutdown: Shutdown,
}

impl ChildSpec {
    /// A permanent child with a 5 s shutdown timeout.
    pub fn new<F, Fut>(id: &str, start: F) -> ChildSpec
    where
        F: Fn(Node, Pid) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Pid, StartError>> + Send + 'static,
    {
        ChildSpec {
            id: id.to_string(),
            start: Arc::new(move |node, sup| Box::pin(start(node, sup))),
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(Duration::from_secs(5)),
        }
    }

    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .finish()
    }
}

/// A supervisor's configuration: data, the same in tests and production.
#[derive(Debug, Clone)]
pub struct Spec {
    pub strategy: Strategy,
    /// More than this many restarts within `period`...
    pub intensity: u32,
    /// ...of the runtime clock makes the supervisor give up.
    pub period: Duration,
    pub children: Vec<ChildSpec>,
}

impl Spec {
    pub fn new(strategy: Strategy) -> Spec {
        Spec {
            strategy,
            intensity: 3,
            period: Duration::from_secs(5),
            children: Vec::new(),
        }
    }

    pub fn intensity(mut self, restarts: u32, period: Duration) -> Self {
        self.intensity = restarts;
        self.period = period;
        self
    }

    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    fn validate(&self) -> Result<(), StartError> {
        let mut ids: Vec<&str> = self.children.iter().map(|c| c.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(StartError::Invalid(format!(
                "duplicate child id `{}`",
                w[0]
            )));
        }
        if self.period.is_zero() {
            return Err(StartError::Invalid("restart period is zero".into()));
        }
        Ok(())
    }
}

/// Requests a supervisor answers (by call).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Replies `Vec<(String, Option<Pid>)>`: each child's id and pid (if running), in order.
    WhichChildren,
    /// Dynamic supervisors only: the encoded argument; replies `Result<Pid, StartError>`.
    StartChild(Vec<u8>),
    /// Stops a child (its shutdown spec applies) without restarting it; replies `bool`.
    TerminateChild(Pid),
}

/// Starts a supervisor on `node`, linked to `parent`; returns once every child has started, or
/// the first child that failed (already started ones are stopped in reverse order).
pub async fn start(
    node: &Node,
    name: &str,
    parent: Option<Pid>,
    spec: Spec,
) -> Result<Pid, StartError> {
    spec.validate()?;
    core::start::<()>(node, name, parent, spec, None).await
}

/// The template of a dynamic supervisor's children: started with an argument.
pub type DynamicStartFn<A> = Arc<dyn Fn(Node, Pid, A) -> StartFuture + Send + Sync>;

/// Starts a dynamic supervisor (one-for-one, no initial children): children are added with
/// [`start_child`] and get `restart` and `shutdown` from the arguments.
pub async fn start_dynamic<A, F, Fut>(
    node: &Node,
    name: &str,
    parent: Option<Pid>,
    intensity: (u32, Duration),
    restart: Restart,
    shutdown: Shutdown,
    start: F,
) -> Result<Pid, StartError>
where
    A: Message + Clone + Sync,
    F: Fn(Node, Pid, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Pid, StartError>> + Send + 'static,
{
    let spec = Spec::new(Strategy::OneForOne).intensity(intensity.0, intensity.1);
    spec.validate()?;
    let template: DynamicStartFn<A> = Arc::new(move |n, s, a| Box::pin(start(n, s, a)));
    let dynamic = core::Dynamic {
        template,
        restart,
        shutdown,
    };
    core::start(node, name, parent, spec, Some(dynamic)).await
}

/// Asks dynamic supervisor `sup` to start a child with `arg`.
pub async fn start_child<A: Message, M: Message>(
    ctx: &Ctx<M>,
    sup: Pid,
    arg: A,
    timeout: Duration,
) -> Result<Result<Pid, StartError>, CallError> {
    let arg = crate::wire::encode(&arg).map_err(|e| CallError::NotSent(e.to_string()))?;
    ctx.call(sup, Request::StartChild(arg), timeout).await
}

/// Each child's id and pid (if running), in start order.
pub async fn which_children<M: Message>(
    ctx: &Ctx<M>,
    sup: Pid,
    timeout: Duration,
) -> Result<Vec<(String, Option<Pid>)>, CallError> {
    ctx.call(sup, Request::WhichChildren, timeout).await
}

/// Stops child `child` of `sup` without restarting it.
pub async fn terminate_child<M: Message>(
    ctx: &Ctx<M>,
    sup: Pid,
    child: Pid,
    timeout: Duration,
) -> Result<bool, CallError> {
    ctx.call(sup, Request::TerminateChild(child), timeout).await
}

/// A supervisor stopping for good: the exit reason its parent sees. `Shutdown`, as in OTP, so
/// a transient parent does not restart it (the `escalate` trace event says why).
pub(crate) fn gave_up() -> ExitReason {
    ExitReason::Shutdown
}

#[cfg(test)]
mod tests;
