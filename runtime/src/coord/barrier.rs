//! A barrier for `parties` participants, run by one supervised process ([`child_spec`]).
//!
//! A participant [`join`]s (optional: [`wait`] joins too) and then [`wait`]s; when `parties`
//! participants are waiting, all are released with `Ok(generation)` and the next generation
//! begins empty. The barrier monitors every participant from its join: if one of them dies or
//! is cut off (its `Down`, `NoConnection` included) before the release, the generation is
//! broken: every participant waiting gets `BarrierError::Broken` naming who and why, and
//! every one that joined but is not yet waiting gets it from its next `wait`, at once. Nobody
//! hangs on a participant that will not come. A participant cut off from the barrier learns
//! it from its call (`BarrierError::Unreachable(NodeDown)`); either way a partitioned
//! participant never believes it passed a barrier it did not pass. The state is not durable:
//! a restarted barrier starts a new, empty generation (participants of the old one got their
//! `Unreachable`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rt::Duration;
use crate::supervisor::ChildSpec;
use crate::{
    event, start_actor, Actor, CallError, Ctx, Event, ExitReason, Flow, Message, Node, Pid, Ref,
    ReplyTo, StartError,
};

const INIT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Replies `Result<u64, BarrierError>`: the generation joined.
    Join,
    /// Replies `Result<u64, BarrierError>` at the release (the generation) or the break.
    Wait,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum BarrierError {
    /// A participant of this generation died or was cut off before the release.
    #[error("generation {generation} broken: participant {participant} is gone ({reason})")]
    Broken {
        generation: u64,
        participant: Pid,
        reason: ExitReason,
    },
    /// This generation already has `parties` participants.
    #[error("the barrier's {parties} places are taken")]
    Full { parties: usize },
    /// The call failed: the barrier is dead, cut off, or did not answer in time (client side
    /// only, never sent by the barrier).
    #[error("barrier unreachable: {0}")]
    #[serde(skip)]
    Unreachable(CallError),
}

/// The barrier process (an [`Actor`]).
pub struct Barrier {
    parties: usize,
    generation: u64,
    /// This generation's participants and the monitor on each.
    members: BTreeMap<Pid, Ref>,
    waiting: BTreeMap<Pid, ReplyTo>,
    /// Joined members of a broken generation not yet told (their next `wait` is).
    told: BTreeMap<Pid, BarrierError>,
}

impl Barrier {
    pub fn new(parties: usize) -> Barrier {
        Barrier {
            parties,
            generation: 0,
            members: BTreeMap::new(),
            waiting: BTreeMap::new(),
            told: BTreeMap::new(),
        }
    }

    fn join(&mut self, ctx: &Ctx<Request>, pid: Pid) -> Result<u64, BarrierError> {
        if self.members.contains_key(&pid) {
            return Ok(self.generation);
        }
        if self.members.len() >= self.parties {
            return Err(BarrierError::Full {
                parties: self.parties,
            });
        }
        // A pending notice of an older break is superseded by joining anew.
        self.told.remove(&pid);
        self.members.insert(pid, ctx.monitor(pid));
        Ok(self.generation)
    }

    fn wait(&mut self, ctx: &Ctx<Request>, pid: Pid, reply: ReplyTo) {
        if let Some(e) = self.told.remove(&pid) {
            reply.reply(Err::<u64, _>(e));
            return;
        }
        if let Err(e) = self.join(ctx, pid) {
            reply.reply(Err::<u64, _>(e));
            return;
        }
        self.waiting.insert(pid, reply);
        if self.waiting.len() == self.parties {
            let me = ctx.pid();
            let generation = self.generation;
            event!(
                "barrier-release",
                node = me.node,
                generation = generation,
                parties = self.parties
            );
            for (_, reply) in std::mem::take(&mut self.waiting) {
                reply.reply(Ok::<u64, BarrierError>(generation));
            }
            self.next_generation(ctx);
        }
    }

    fn next_generation(&mut self, ctx: &Ctx<Request>) {
        for (_, r) in std::mem::take(&mut self.members) {
            ctx.demonitor(r, true);
        }
        self.generation += 1;
    }

    fn gone(&mut self, ctx: &Ctx<Request>, pid: Pid, reason: ExitReason) {
        self.members.remove(&pid);
        self.waiting.remove(&pid);
        self.told.remove(&pid);
        let me = ctx.pid();
        let why = reason.to_string();
        event!("barrier-broken", node = me.node, generation = self.generation, participant = %pid, reason = why.as_str());
        let error = BarrierError::Broken {
            generation: self.generation,
            participant: pid,
            reason,
        };
        for (_, reply) in std::mem::take(&mut self.waiting) {
            reply.reply(Err::<u64, _>(error.clone()));
        }
        for member in self.members.keys() {
            self.told.insert(*member, error.clone());
        }
        self.next_generation(ctx);
    }
}

impl Actor for Barrier {
    type Msg = Request;

    async fn handle(&mut self, ctx: &mut Ctx<Request>, event: Event<Request>) -> Flow {
        match event {
            Event::Call {
                from, msg, reply, ..
            } => match msg {
                Request::Join => reply.reply(self.join(ctx, from)),
                Request::Wait => self.wait(ctx, from, reply),
            },
            Event::Down {
                reference,
                pid,
                reason,
            } => {
                if self.members.get(&pid) == Some(&reference) {
                    self.gone(ctx, pid, reason);
                } else if !self.members.contains_key(&pid) {
                    // A participant of an earlier generation: nothing to break; forget it.
                    self.told.remove(&pid);
                }
            }
            Event::Msg { from, .. } => {
                let me = ctx.pid();
                event!("drop", node = me.node, from = %from, to = %me, reason = "barrier-not-a-call");
            }
            Event::Timer { .. } | Event::Exit { .. } => {}
        }
        Flow::Continue
    }
}

/// Starts a barrier for `parties` on `node`, linked to `parent`.
pub async fn start(
    node: &Node,
    name: &str,
    parent: Option<Pid>,
    parties: usize,
) -> Result<Pid, StartError> {
    if parties == 0 {
        return Err(StartError::Invalid("a barrier of no parties".into()));
    }
    start_actor(node, name, parent, INIT_TIMEOUT, Barrier::new(parties)).await
}

/// A barrier as a supervisor's child (id `name`).
pub fn child_spec(name: &str, parties: usize) -> ChildSpec {
    let id = name.to_string();
    ChildSpec::new(name, move |node, sup| {
        let id = id.clone();
        async move { start(&node, &id, Some(sup), parties).await }
    })
}

/// Joins the current generation of `barrier` (monitored from now on); its number.
pub async fn join<M: Message>(
    ctx: &Ctx<M>,
    barrier: Pid,
    timeout: Duration,
) -> Result<u64, BarrierError> {
    let answer: Result<u64, BarrierError> = ctx
        .call(barrier, Request::Join, timeout)
        .await
        .map_err(BarrierError::Unreachable)?;
    answer
}

/// Waits at `barrier` (joining if needed) until the release (`Ok(generation)`) or the break.
pub async fn wait<M: Message>(
    ctx: &Ctx<M>,
    barrier: Pid,
    timeout: Duration,
) -> Result<u64, BarrierError> {
    let answer: Result<u64, BarrierError> = ctx
        .call(barrier, Request::Wait, timeout)
        .await
        .map_err(BarrierError::Unreachable)?;
    answer
}

#[cfg(test)]
mod tests;
