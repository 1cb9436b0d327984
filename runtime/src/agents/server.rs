//! The registry process: the only writer of the table.

use std::sync::Arc;

use super::{AgentRef, Op, OpError, Receipt, Rejected, Request, Shared};
use crate::{event, Actor, Ctx, Event, ExitReason, Flow};

pub(super) struct Server {
    shared: Arc<Shared>,
}

impl Server {
    pub(super) fn new(shared: Arc<Shared>) -> Server {
        Server { shared }
    }

    /// Stages `ops` under a read lock, then commits them under the write lock: one step, no
    /// await, so a crash anywhere before it leaves the committed table as it was.
    fn transact(&self, ops: &[Op]) -> Result<Receipt, Rejected> {
        let node = self.shared.node;
        let hook = self.shared.config.crash_before_op.clone();
        let staged = {
            let table = self.shared.read();
            table.stage(ops, self.shared.config.max_agents, |i, op| {
                if hook.as_ref().is_some_and(|h| h(i, op)) {
                    event!("agents-crash-injected", node = node, index = i);
                    panic!("fault injected before op {i} of a transaction");
                }
            })
        };
        match staged {
            Ok(staged) => {
                let entries = staged.len();
                let mut table = self.shared.table.write().unwrap_or_else(|e| e.into_inner());
                let version = table.commit(staged);
                event!(
                    "agents-commit",
                    node = node,
                    tx = version,
                    ops = ops.len(),
                    entries = entries
                );
                Ok(Receipt { version })
            }
            Err((index, error)) => {
                let op = &ops[index];
                Err(self.abort(Rejected {
                    index,
                    op: op.kind(),
                    agent: op.agent_id().to_string(),
                    error,
                }))
            }
        }
    }

    /// Traces a refused batch (nothing of it was applied).
    fn abort(&self, rejected: Rejected) -> Rejected {
        let error = rejected.error.to_string();
        event!(
            "agents-abort",
            node = self.shared.node,
            index = rejected.index,
            op = %rejected.op,
            agent = rejected.agent.as_str(),
            error = error.as_str()
        );
        rejected
    }

    /// The agent bound to `pid` in the committed table, or the traced refusal naming `op`.
    fn resolve(&self, pid: crate::Pid, op: super::OpKind) -> Result<String, Rejected> {
        match self.shared.read().id_of_pid(pid) {
            Some(id) => Ok(id.clone()),
            None => {
                let agent = pid.to_string();
                Err(self.abort(Rejected {
                    index: 0,
                    op,
                    error: OpError::NotFound(agent.clone()),
                    agent,
                }))
            }
        }
    }

    /// Requests naming an agent by pid are resolved here, by the only writer, in the same step
    /// as the write: no other write can come between the lookup and the change.
    fn handle_request(&self, request: Request) -> Result<Receipt, Rejected> {
        match request {
            Request::Transact(ops) => self.transact(&ops),
            Request::ReportHealth { agent, health } => {
                let id = match agent {
                    AgentRef::Id(id) => id,
                    AgentRef::Pid(pid) => self.resolve(pid, super::OpKind::SetHealth)?,
                };
                self.transact(&[Op::SetHealth { id, health }])
            }
            Request::ReportDown { pid } => {
                let id = self.resolve(pid, super::OpKind::Unregister)?;
                self.transact(&[Op::Unregister(id)])
            }
        }
    }
}

impl Actor for Server {
    type Msg = Request;

    /// Traps exits, as every actor did before trapping became a choice.
    fn trap_exit(&self) -> bool {
        true
    }

    async fn init(&mut self, ctx: &mut Ctx<Request>) -> Result<(), ExitReason> {
        let pid = ctx.pid();
        *self.shared.pid.lock().unwrap_or_else(|e| e.into_inner()) = Some(pid);
        let version = self.shared.read().version();
        event!("agents-start", node = self.shared.node, pid = %pid, version = version);
        Ok(())
    }

    async fn handle(&mut self, _ctx: &mut Ctx<Request>, event: Event<Request>) -> Flow {
        match event {
            Event::Call { msg, reply, .. } => reply.reply(self.handle_request(msg)),
            Event::Msg { msg, .. } => {
                // Fire and forget: an abort is traced by `transact`.
                let _ = self.handle_request(msg);
            }
            _ => {}
        }
        Flow::Continue
    }
}
