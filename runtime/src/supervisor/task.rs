//! A task supervisor: one-off tasks, each a process linked to it. A failed task is traced
//! (`task-failed`) and reported to `report_to` as a [`TaskFailed`] message, never swallowed.
//! When the supervisor stops, whatever its own or its parent's exit reason (`Normal`
//! included), it stops every task still running with `Shutdown`, last started first: a link
//! signal alone would not, since a `Normal` one is ignored by a task.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::core::KILL_WAIT;
use crate::rt::Duration;
use crate::{event, Ctx, Event, ExitReason, Message, Node, Pid, SpawnOpts};

/// Sent to the task supervisor's `report_to` when a task fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailed {
    pub supervisor: Pid,
    pub task: Pid,
    pub reason: ExitReason,
}

/// What a task supervisor receives: a new task announcing itself (sent by [`spawn_task`] on
/// the task's behalf). Private, so no other process can enrol itself to be stopped.
#[derive(Debug, Serialize, Deserialize)]
struct Enrol(());

/// How long a task has to stop after `Shutdown` before it is killed. Tasks do not trap exits,
/// so `Shutdown` ends them at once; this bounds only a pathological case.
const TASK_SHUTDOWN: Duration = Duration::from_secs(5);

/// Starts a task supervisor linked to `parent`.
pub fn start(node: &Node, name: &str, parent: Option<Pid>, report_to: Option<Pid>) -> Pid {
    let mut opts = SpawnOpts::named(name).trap_exit();
    opts.link = parent;
    node.spawn_opts(opts, move |mut ctx: Ctx<Enrol>| async move {
        // Running tasks, in start order.
        let mut tasks: Vec<Pid> = Vec::new();
        loop {
            let (from, reason) = match ctx.recv().await {
                Event::Msg { from, msg: Enrol(()) } => {
                    // Its exit, if it already ended, was handled (it comes after this message).
                    if ctx.is_alive(from) {
                        tasks.push(from);
                    }
                    continue;
                }
                Event::Exit { from, reason } => (from, reason),
                _ => continue,
            };
            if Some(from) == parent {
                // Tasks that enrolled just before this exit are still queued: take them too.
                while let Some(event) = ctx.recv_timeout(Duration::ZERO).await {
                    match event {
                        Event::Msg { from, .. } if ctx.is_alive(from) => tasks.push(from),
                        Event::Exit { from, .. } => tasks.retain(|t| *t != from),
                        _ => {}
                    }
                }
                stop_all(&mut ctx, &tasks).await;
                return reason;
            }
            tasks.retain(|t| *t != from);
            if reason.is_clean() {
                continue;
            }
            let me = ctx.pid();
            event!("task-failed", node = me.node, sup = %me, task = %from, reason = %reason);
            if let Some(to) = report_to {
                let report = TaskFailed {
                    supervisor: me,
                    task: from,
                    reason,
                };
                if let Err(e) = ctx.send(to, report) {
                    let why = e.to_string();
                    event!("drop", node = me.node, from = %me, to = %to, reason = "report-undelivered", msg = why.as_str());
                }
            }
        }
    })
}

async fn stop_all(ctx: &mut Ctx<Enrol>, tasks: &[Pid]) {
    let me = ctx.pid();
    for &task in tasks.iter().rev() {
        ctx.exit(task, ExitReason::Shutdown);
        let reason = match ctx.recv_exit_from(task, TASK_SHUTDOWN).await {
            Some(r) => r,
            None => {
                ctx.exit(task, ExitReason::Kill);
                ctx.recv_exit_from(task, KILL_WAIT)
                    .await
                    .unwrap_or(ExitReason::Kill)
            }
        };
        event!("task-stop", node = me.node, sup = %me, task = %task, reason = %reason);
    }
}

/// Runs `task` as a process under task supervisor `sup` (on `node`, which must be `sup`'s).
/// If `sup` is already gone, or cannot take the task, the task is stopped at once: nothing
/// runs unsupervised. A task that needs to act as a process (call, send, monitor as itself)
/// uses [`spawn_task_in`].
pub fn spawn_task<F>(node: &Node, sup: Pid, name: &str, task: F) -> Pid
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    spawn_task_in(node, sup, name, move |_ctx: Ctx<()>| task)
}

/// [`spawn_task`] for a task that runs as a process: `body` gets the task's own [`Ctx`], so it
/// calls, sends and monitors as itself (its pid is the one the supervisor reports), and it
/// receives messages of type `M`. `Err(reason)` ends it with `Error(reason)`, reported as a
/// [`TaskFailed`].
pub fn spawn_task_in<M, F, Fut>(node: &Node, sup: Pid, name: &str, body: F) -> Pid
where
    M: Message,
    F: FnOnce(Ctx<M>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let pid = node.spawn_opts(
        SpawnOpts::named(name).link(sup),
        move |ctx: Ctx<M>| async move {
            match body(ctx).await {
                Ok(()) => ExitReason::Normal,
                Err(e) => ExitReason::Error(e),
            }
        },
    );
    // Sent in the task's name: it comes before the task's exit signal, or, if the task already
    // ended, the supervisor sees it dead and does not enrol it.
    if let Err(e) = node.send(pid, sup, Enrol(())) {
        let why = e.to_string();
        event!("drop", node = pid.node, from = %pid, to = %sup, reason = "task-unsupervised", msg = why.as_str());
        node.exit(sup, pid, ExitReason::Shutdown);
    }
    pid
}
