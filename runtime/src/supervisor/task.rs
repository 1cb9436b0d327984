//! A task supervisor: one-off tasks, each a process linked to it. A failed task is traced
//! (`task-failed`) and reported to `report_to` as a [`TaskFailed`] message, never swallowed; when
//! the supervisor stops, the link signal stops its tasks.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::{event, Ctx, Event, ExitReason, Node, Pid, SpawnOpts};

/// Sent to the task supervisor's `report_to` when a task fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailed {
    pub supervisor: Pid,
    pub task: Pid,
    pub reason: ExitReason,
}

/// Starts a task supervisor linked to `parent`.
pub fn start(node: &Node, name: &str, parent: Option<Pid>, report_to: Option<Pid>) -> Pid {
    let mut opts = SpawnOpts::named(name).trap_exit();
    opts.link = parent;
    node.spawn_opts(opts, move |mut ctx: Ctx<()>| async move {
        loop {
            let Event::Exit { from, reason } = ctx.recv().await else {
                continue;
            };
            if Some(from) == parent {
                return reason;
            }
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

/// Runs `task` as a process under task supervisor `sup` (on `node`, which must be `sup`'s).
/// If `sup` is already gone the task is stopped at once: nothing runs unsupervised.
pub fn spawn_task<F>(node: &Node, sup: Pid, name: &str, task: F) -> Pid
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    node.spawn_opts(
        SpawnOpts::named(name).link(sup),
        move |_ctx: Ctx<()>| async move {
            match task.await {
                Ok(()) => ExitReason::Normal,
                Err(e) => ExitReason::Error(e),
            }
        },
    )
}
