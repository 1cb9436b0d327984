//! The supervisor process: start-up, the restart loop, and ordered shutdown.

use std::collections::VecDeque;

use futures::channel::oneshot;

use super::{gave_up, ChildSpec, DynamicStartFn, Request, Restart, Shutdown, Spec, Strategy};
use crate::rt::{Duration, Instant};
use crate::{event, wire, Ctx, Event, ExitReason, Message, Node, Pid, Ref, SpawnOpts, StartError};

/// The longest a buggified restart waits (`supervisor-restart-delay`).
const RESTART_DELAY_MAX: Duration = Duration::from_millis(100);

/// How long a supervisor waits for a killed child's exit before moving on.
pub(super) const KILL_WAIT: Duration = Duration::from_secs(5);

pub(super) struct Dynamic<A> {
    pub(super) template: DynamicStartFn<A>,
    pub(super) restart: Restart,
    pub(super) shutdown: Shutdown,
}

struct Child {
    spec: ChildSpec,
    pid: Option<Pid>,
    /// Its restart failed to start it; a retry is queued behind the events already waiting.
    restarting: bool,
}

struct Sup<A> {
    ctx: Ctx<Request>,
    me: Pid,
    strategy: Strategy,
    intensity: u32,
    period: Duration,
    restarts: VecDeque<Instant>,
    children: Vec<Child>,
    dynamic: Option<Dynamic<A>>,
    next_dynamic: u64,
    /// Queued retries (OTP's `try_again_restart`), oldest first: ids of children to restart.
    retries: VecDeque<String>,
    /// The one timer armed for the oldest retry. One at a time, so retries run in the order
    /// they were queued (timers due at the same instant may fire in any order).
    retry_timer: Option<Ref>,
}

pub(super) async fn start<A: Message + Clone + Sync>(
    node: &Node,
    name: &str,
    parent: Option<Pid>,
    spec: Spec,
    dynamic: Option<Dynamic<A>>,
) -> Result<Pid, StartError> {
    let (ack_tx, ack_rx) = oneshot::channel();
    let mut opts = SpawnOpts::named(name).trap_exit();
    opts.link = parent;
    let pid = node.spawn_opts(opts, move |ctx: Ctx<Request>| async move {
        let me = ctx.pid();
        let mut sup = Sup {
            ctx,
            me,
            strategy: spec.strategy,
            intensity: spec.intensity,
            period: spec.period,
            restarts: VecDeque::new(),
            children: spec
                .children
                .into_iter()
                .map(|spec| Child {
                    spec,
                    pid: None,
                    restarting: false,
                })
                .collect(),
            dynamic,
            next_dynamic: 0,
            retries: VecDeque::new(),
            retry_timer: None,
        };
        let count = sup.children.len();
        if let Err(e) = sup.start_range(0..count).await {
            sup.stop_all().await;
            if let Some(parent) = parent {
                sup.ctx.unlink(parent);
            }
            let reason = ExitReason::error(e.to_string());
            let _ = ack_tx.send(Err(e));
            return reason;
        }
        let _ = ack_tx.send(Ok(()));
        sup.run(parent).await
    });
    match ack_rx.await {
        Ok(Ok(())) => Ok(pid),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StartError::Init(ExitReason::error(
            "supervisor died during start",
        ))),
    }
}

impl<A: Message + Clone + Sync> Sup<A> {
    /// Starts children `range` in order; stops at the first failure.
    async fn start_range(&mut self, range: std::ops::Range<usize>) -> Result<(), StartError> {
        for i in range {
            let pid = self.start_one(i).await?;
            self.children[i].pid = Some(pid);
            self.children[i].restarting = false;
        }
        Ok(())
    }

    async fn start_one(&mut self, i: usize) -> Result<Pid, StartError> {
        let spec = &self.children[i].spec;
        let node = self.ctx.node().clone();
        match (spec.start)(node, self.me).await {
            Ok(pid) => {
                // Idempotent if the start function already linked it; an already dead child
                // shows up as an exit signal with NoProc.
                self.ctx.link(pid);
                event!("child-start", node = self.me.node, sup = %self.me, child = spec.id.as_str(), pid = %pid);
                self.ctx.node().note_child(self.me, &spec.id, Some(pid));
                Ok(pid)
            }
            Err(error) => {
                let why = error.to_string();
                event!("child-start-failed", node = self.me.node, sup = %self.me, child = spec.id.as_str(), error = why.as_str());
                Err(StartError::Child {
                    id: spec.id.clone(),
                    error: Box::new(error),
                })
            }
        }
    }

    async fn run(mut self, parent: Option<Pid>) -> ExitReason {
        loop {
            match self.ctx.recv().await {
                Event::Exit { from, reason } if Some(from) == parent => {
                    self.stop_all().await;
                    return reason;
                }
                Event::Exit { from, reason } => {
                    let Some(i) = self.children.iter().position(|c| c.pid == Some(from)) else {
                        continue;
                    };
                    if let Err(reason) = self.child_exited(i, reason).await {
                        return reason;
                    }
                }
                Event::Timer { reference, .. } if self.retry_timer == Some(reference) => {
                    self.retry_timer = None;
                    let id = self.retries.pop_front().expect("a retry per armed timer");
                    // Only if no other restart has started it meanwhile.
                    let found = self
                        .children
                        .iter()
                        .position(|c| c.spec.id == id && c.restarting);
                    if let Some(i) = found {
                        if let Err(reason) = self.restart(i, "try-again").await {
                            return reason;
                        }
                    }
                    self.arm_retry();
                }
                Event::Call { msg, reply, .. } => match msg {
                    Request::WhichChildren => {
                        let list: Vec<(String, Option<Pid>)> = self
                            .children
                            .iter()
                            .map(|c| (c.spec.id.clone(), c.pid))
                            .collect();
                        reply.reply(list);
                    }
                    Request::StartChild(arg) => {
                        let result = self.start_dynamic(arg).await;
                        reply.reply(result);
                    }
                    Request::TerminateChild(pid) => {
                        let found = self.children.iter().position(|c| c.pid == Some(pid));
                        if let Some(i) = found {
                            self.stop_child(i).await;
                            // OTP: a terminated temporary (or dynamic) child's spec goes too.
                            if self.dynamic.is_some()
                                || self.children[i].spec.restart == Restart::Temporary
                            {
                                self.children.remove(i);
                            }
                        }
                        reply.reply(found.is_some());
                    }
                },
                _ => {}
            }
        }
    }

    async fn start_dynamic(&mut self, arg: Vec<u8>) -> Result<Pid, StartError> {
        let Some(dynamic) = &self.dynamic else {
            return Err(StartError::Invalid("not a dynamic supervisor".into()));
        };
        let arg: A = wire::decode(&arg).map_err(|e| StartError::Invalid(e.to_string()))?;
        self.next_dynamic += 1;
        let template = dynamic.template.clone();
        let mut spec = ChildSpec::new(&format!("dyn-{}", self.next_dynamic), move |n, s| {
            template(n, s, arg.clone())
        });
        spec.restart = dynamic.restart;
        spec.shutdown = dynamic.shutdown;
        self.children.push(Child {
            spec,
            pid: None,
            restarting: false,
        });
        let i = self.children.len() - 1;
        match self.start_one(i).await {
            Ok(pid) => {
                self.children[i].pid = Some(pid);
                Ok(pid)
            }
            Err(e) => {
                self.children.remove(i);
                Err(e)
            }
        }
    }

    /// A child exited. `Err` when the supervisor gives up (its children are already stopped).
    async fn child_exited(&mut self, i: usize, reason: ExitReason) -> Result<(), ExitReason> {
        self.children[i].pid = None;
        self.ctx
            .node()
            .note_child(self.me, &self.children[i].spec.id, None);
        let restart = match self.children[i].spec.restart {
            Restart::Permanent => true,
            Restart::Transient => !reason.is_clean(),
            Restart::Temporary => false,
        };
        if !restart {
            // As in OTP: a temporary child's spec goes with the child, and a dynamic
            // supervisor's children are never kept once they are not restarted.
            if self.dynamic.is_some() || self.children[i].spec.restart == Restart::Temporary {
                self.children.remove(i);
            }
            return Ok(());
        }
        self.restart(i, &reason.to_string()).await
    }

    /// One restart of child `failed` by the strategy, counted against the intensity. If a child
    /// of the group fails to start, the rest of the group stays stopped and a retry of that
    /// child is queued behind the events already waiting (OTP's `try_again_restart`): exits
    /// that arrived meanwhile (say, of the dependency it failed on) are handled first, instead
    /// of retrying in a loop that never reads the mailbox.
    async fn restart(&mut self, mut failed: usize, why: &str) -> Result<(), ExitReason> {
        self.count_restart().await?;
        let id = self.children[failed].spec.id.clone();
        event!("restart", node = self.me.node, sup = %self.me, child = id.as_str(), reason = %why, intensity = self.intensity, period_ms = self.period.as_millis() as u64);
        // Buggify: a restart that comes late (a slow start-up, a loaded node). What arrives
        // meanwhile waits in the mailbox, in order.
        if let Some(wait) = crate::buggify::delay("supervisor-restart-delay", RESTART_DELAY_MAX) {
            crate::rt::sleep(wait).await;
        }
        let range = match self.strategy {
            Strategy::OneForOne => failed..failed + 1,
            Strategy::OneForAll => 0..self.children.len(),
            Strategy::RestForOne => failed..self.children.len(),
        };
        for j in range.clone().rev() {
            self.stop_child(j).await;
        }
        // As in OTP, temporary siblings stopped with the group are not restarted: they
        // leave the child list.
        let mut range = range;
        let mut j = range.start;
        while j < range.end {
            if j != failed && self.children[j].spec.restart == Restart::Temporary {
                self.children.remove(j);
                range.end -= 1;
                if j < failed {
                    failed -= 1;
                }
            } else {
                j += 1;
            }
        }
        match self.start_range(range).await {
            Ok(()) => Ok(()),
            Err(StartError::Child { id, .. }) => {
                let at = self
                    .children
                    .iter()
                    .position(|c| c.spec.id == id)
                    .expect("the failed child is in the list");
                self.children[at].restarting = true;
                self.retries.push_back(id);
                self.arm_retry();
                Ok(())
            }
            Err(_) => unreachable!("start_range reports child errors"),
        }
    }

    /// Arms the retry timer if a retry waits and none is armed. A timer, not a message to
    /// itself: it cannot be refused by a full mailbox, and it lands behind everything already
    /// queued.
    fn arm_retry(&mut self) {
        if self.retry_timer.is_none() && !self.retries.is_empty() {
            self.retry_timer = Some(self.ctx.send_after(Duration::ZERO, 0));
        }
    }

    async fn count_restart(&mut self) -> Result<(), ExitReason> {
        let now = Instant::now();
        self.restarts.push_back(now);
        while let Some(first) = self.restarts.front() {
            if now.duration_since(*first) > self.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        if self.restarts.len() as u64 > u64::from(self.intensity) {
            let reason = gave_up();
            event!("escalate", node = self.me.node, sup = %self.me, reason = %reason, why = "reached max restart intensity");
            self.stop_all().await;
            return Err(reason);
        }
        Ok(())
    }

    /// Stops every running child, last started first.
    async fn stop_all(&mut self) {
        for i in (0..self.children.len()).rev() {
            self.stop_child(i).await;
        }
    }

    async fn stop_child(&mut self, i: usize) {
        let Some(pid) = self.children[i].pid.take() else {
            return;
        };
        let id = self.children[i].spec.id.clone();
        self.ctx.node().note_child(self.me, &id, None);
        let reason = match self.children[i].spec.shutdown {
            Shutdown::BrutalKill => None,
            Shutdown::Timeout(t) => {
                self.ctx.exit(pid, ExitReason::Shutdown);
                self.ctx.recv_exit_from(pid, t).await
            }
        };
        let reason = match reason {
            Some(r) => r,
            None => {
                self.ctx.exit(pid, ExitReason::Kill);
                self.ctx
                    .recv_exit_from(pid, KILL_WAIT)
                    .await
                    .unwrap_or(ExitReason::Killed)
            }
        };
        event!("child-stop", node = self.me.node, sup = %self.me, child = id.as_str(), pid = %pid, reason = %reason);
    }
}
