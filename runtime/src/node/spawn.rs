//! Spawning a process, and its exit: the one place a process's links and monitors fire.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::channel::oneshot;
use futures::future::{select, Either};
use futures::FutureExt;

use super::{Entry, Node, State};
use crate::mailbox::Mailbox;
use crate::{event, rt, Ctx, ExitReason, Message, Pid};

/// Options for [`Node::spawn_opts`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SpawnOpts {
    /// Shown in traces.
    pub name: String,
    /// Linked to this process before the new one runs (atomic spawn-link).
    pub link: Option<Pid>,
    /// Mailbox capacity; the node's default when `None`.
    pub mailbox: Option<usize>,
    /// Start trapping exits before the first poll.
    pub trap_exit: bool,
}

impl SpawnOpts {
    pub fn named(name: &str) -> SpawnOpts {
        SpawnOpts {
            name: name.to_string(),
            ..SpawnOpts::default()
        }
    }

    pub fn link(mut self, to: Pid) -> Self {
        self.link = Some(to);
        self
    }

    pub fn mailbox(mut self, capacity: usize) -> Self {
        self.mailbox = Some(capacity);
        self
    }

    pub fn trap_exit(mut self) -> Self {
        self.trap_exit = true;
        self
    }
}

impl Node {
    /// Spawns a process running `body`; it exits with the reason `body` returns (a panic is
    /// `Error`). The body's future is dropped at once if the process is killed.
    pub fn spawn<M, F, Fut>(&self, name: &str, body: F) -> Pid
    where
        M: Message,
        F: FnOnce(Ctx<M>) -> Fut + Send + 'static,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        self.spawn_opts(SpawnOpts::named(name), body)
    }

    pub fn spawn_opts<M, F, Fut>(&self, opts: SpawnOpts, body: F) -> Pid
    where
        M: Message,
        F: FnOnce(Ctx<M>) -> Fut + Send + 'static,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        let (kill_tx, kill_rx) = oneshot::channel();
        let capacity = opts.mailbox.unwrap_or(self.config().mailbox);
        let mailbox = Arc::new(Mailbox::new(capacity));
        mailbox.set_trap_exit(opts.trap_exit);
        let pid = {
            let mut st = self.lock();
            let pid = st.next_pid();
            st.procs.insert(
                pid.id,
                Entry {
                    name: opts.name.clone(),
                    mailbox: mailbox.clone(),
                    links: BTreeSet::new(),
                    kill: Some(kill_tx),
                    timers: BTreeMap::new(),
                    monitored_by: BTreeSet::new(),
                },
            );
            event!("spawn", node = pid.node, pid = %pid, name = opts.name.as_str());
            if let Some(other) = opts.link {
                st.link(pid, other);
            }
            pid
        };
        let ctx = Ctx::new(self.clone(), pid, mailbox);
        let node = self.clone();
        drop(rt::spawn(async move {
            let run = AssertUnwindSafe(async move { body(ctx).await }).catch_unwind();
            // The kill switch is polled first: a process killed before it ran never runs.
            let reason = match select(kill_rx, Box::pin(run)).await {
                Either::Left((Ok(reason), _)) => reason,
                Either::Left((Err(_), _)) => ExitReason::Killed,
                Either::Right((Ok(reason), _)) => reason,
                Either::Right((Err(panic), _)) => ExitReason::Error(panic_message(&*panic)),
            };
            node.lock().exit_process(pid, reason);
        }));
        pid
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic".to_string()
    }
}

impl State {
    /// Tells a local process to die with `reason` (it exits on its next poll).
    pub(crate) fn kill(&mut self, id: u64, reason: ExitReason) {
        if let Some(kill) = self.procs.get_mut(&id).and_then(|e| e.kill.take()) {
            let _ = kill.send(reason);
        }
    }

    /// A process ended: cancel its timers, close its mailbox, signal its links, fire the
    /// monitors on it, and drop the monitors it held.
    pub(crate) fn exit_process(&mut self, pid: Pid, reason: ExitReason) {
        let Some(entry) = self.procs.remove(&pid.id) else {
            return;
        };
        event!("exit", node = pid.node, pid = %pid, name = entry.name.as_str(), reason = %reason);
        entry.mailbox.close();
        self.forget_children(pid);
        for (_, timer) in entry.timers {
            timer.abort();
        }
        let held: Vec<_> = self
            .watching
            .iter()
            .filter(|(_, w)| w.watcher == pid)
            .map(|(r, _)| *r)
            .collect();
        for reference in held {
            self.demonitor(reference);
        }
        for reference in entry.monitored_by {
            if let Some((watcher, _)) = self.monitors.remove(&reference) {
                self.send_down(reference, watcher, pid, reason.clone());
            }
        }
        for other in entry.links {
            self.send_exit(pid, other, reason.clone(), true);
        }
    }
}
