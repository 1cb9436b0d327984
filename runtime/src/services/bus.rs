//! One event bus for metrics, signals and notifications: `emit` once, routed by kind.
//!
//! - **Routing.** A subscriber names the kinds it wants; each event emitted with one of them is
//!   sent to it once (however often it subscribed to that kind), with a per-subscriber sequence
//!   number. The bus is one process, so events one emitter sends reach every subscriber in
//!   emit order (the runtime's per-pair order, twice).
//! - **Dead subscribers are removed.** The bus monitors each subscriber and forgets it at its
//!   `Down`; nothing is sent to a dead process.
//! - **A slow subscriber cannot grow the bus.** The bus keeps no queue per subscriber: an event
//!   that does not fit in a subscriber's (bounded) mailbox is dropped for that subscriber,
//!   counted and traced (`bus-drop`), and the sequence number still advances, so the subscriber
//!   sees the gap. The bus's own memory is its subscription table.
//! - **Restarts.** The bus runs under its supervisor; a restarted bus starts with no
//!   subscribers. Subscribers monitor the bus (as [`subscribe`] returns its pid) and subscribe
//!   again at its `Down`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::rt::Duration;
use crate::supervisor::{self, ChildSpec, Spec, Strategy};
use crate::{
    event, start_actor, Actor, CallError, Ctx, Event, Flow, Message, Node, Pid, Ref, SendError,
    StartError,
};

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusEvent {
    pub kind: String,
    /// This subscription's count of events routed to it, from 1 (a subscriber that unsubscribed
    /// from every kind starts again at 1); a gap is a drop.
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// Requests the bus serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum BusMsg {
    /// Call: adds kinds to the caller's subscription; replies `()`.
    Subscribe(Vec<String>),
    /// Call: removes the caller's subscription to these kinds (all, if empty); replies `()`.
    Unsubscribe(Vec<String>),
    /// Cast: route an event.
    Emit { kind: String, payload: Vec<u8> },
    /// Call: replies `BusStats`.
    Stats,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusStats {
    pub subscribers: usize,
    pub routed: u64,
    pub dropped: u64,
}

struct Sub {
    kinds: BTreeSet<String>,
    monitor: Ref,
    seq: u64,
}

struct Bus {
    node: u32,
    subs: BTreeMap<Pid, Sub>,
    stats: BusStats,
}

impl Bus {
    fn route(&mut self, ctx: &Ctx<BusMsg>, kind: String, payload: Vec<u8>) {
        for (pid, sub) in self.subs.iter_mut() {
            if !sub.kinds.contains(&kind) {
                continue;
            }
            sub.seq += 1;
            let ev = BusEvent {
                kind: kind.clone(),
                seq: sub.seq,
                payload: payload.clone(),
            };
            match ctx.send(*pid, ev) {
                Ok(()) => self.stats.routed += 1,
                Err(SendError::Full { .. }) => {
                    self.stats.dropped += 1;
                    event!("bus-drop", node = self.node, to = %pid, kind = kind.as_str(), seq = sub.seq, reason = "full");
                }
                Err(e) => {
                    self.stats.dropped += 1;
                    event!("bus-drop", node = self.node, to = %pid, kind = kind.as_str(), seq = sub.seq, reason = %e);
                }
            }
        }
    }
}

impl Actor for Bus {
    type Msg = BusMsg;

    async fn handle(&mut self, ctx: &mut Ctx<BusMsg>, event: Event<BusMsg>) -> Flow {
        match event {
            Event::Call {
                from,
                msg: BusMsg::Subscribe(kinds),
                reply,
            } => {
                let sub = match self.subs.entry(from) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => e.insert(Sub {
                        kinds: BTreeSet::new(),
                        monitor: ctx.monitor(from),
                        seq: 0,
                    }),
                };
                sub.kinds.extend(kinds);
                self.stats.subscribers = self.subs.len();
                reply.reply(());
            }
            Event::Call {
                from,
                msg: BusMsg::Unsubscribe(kinds),
                reply,
            } => {
                if let Some(sub) = self.subs.get_mut(&from) {
                    if kinds.is_empty() {
                        sub.kinds.clear();
                    } else {
                        for k in &kinds {
                            sub.kinds.remove(k);
                        }
                    }
                    if sub.kinds.is_empty() {
                        let monitor = sub.monitor;
                        self.subs.remove(&from);
                        ctx.demonitor(monitor, true);
                    }
                }
                self.stats.subscribers = self.subs.len();
                reply.reply(());
            }
            Event::Call {
                msg: BusMsg::Stats,
                reply,
                ..
            } => reply.reply(self.stats),
            Event::Msg {
                msg: BusMsg::Emit { kind, payload },
                ..
            } => self.route(ctx, kind, payload),
            Event::Down { pid, reference, .. }
                if self.subs.get(&pid).is_some_and(|s| s.monitor == reference) =>
            {
                self.subs.remove(&pid);
                self.stats.subscribers = self.subs.len();
            }
            _ => {}
        }
        Flow::Continue
    }
}

/// Starts the bus (process `bus`) under a one-for-one supervisor named `name`, linked to
/// `parent`. Returns the supervisor; [`bus_pid`] finds the running bus.
pub async fn start(node: &Node, name: &str, parent: Option<Pid>) -> Result<Pid, StartError> {
    let index = node.index();
    let bus = ChildSpec::new("bus", move |node: Node, sup: Pid| async move {
        let actor = Bus {
            node: index,
            subs: BTreeMap::new(),
            stats: BusStats::default(),
        };
        start_actor(&node, "bus", Some(sup), Duration::from_secs(1), actor).await
    });
    supervisor::start(
        node,
        name,
        parent,
        Spec::new(Strategy::OneForOne).child(bus),
    )
    .await
}

/// The running bus under supervisor `sup`, if any.
pub async fn bus_pid<M: Message>(ctx: &Ctx<M>, sup: Pid) -> Result<Option<Pid>, CallError> {
    let children = supervisor::which_children(ctx, sup, Duration::from_secs(5)).await?;
    Ok(children
        .into_iter()
        .find(|(id, _)| id == "bus")
        .and_then(|c| c.1))
}

/// Subscribes the calling process (whose messages must be [`BusEvent`]s) to `kinds`.
pub async fn subscribe(
    ctx: &Ctx<BusEvent>,
    bus: Pid,
    kinds: &[&str],
    timeout: Duration,
) -> Result<(), CallError> {
    let kinds = kinds.iter().map(|k| k.to_string()).collect();
    ctx.call(bus, BusMsg::Subscribe(kinds), timeout).await
}

/// Removes the caller's subscription to `kinds` (every kind, if empty).
pub async fn unsubscribe<M: Message>(
    ctx: &Ctx<M>,
    bus: Pid,
    kinds: &[&str],
    timeout: Duration,
) -> Result<(), CallError> {
    let kinds = kinds.iter().map(|k| k.to_string()).collect();
    ctx.call(bus, BusMsg::Unsubscribe(kinds), timeout).await
}

/// Emits one event (a cast: it fails only if it could not be queued for the bus).
pub fn emit<M: Message>(
    ctx: &Ctx<M>,
    bus: Pid,
    kind: &str,
    payload: Vec<u8>,
) -> Result<(), CallError> {
    ctx.send(
        bus,
        BusMsg::Emit {
            kind: kind.to_string(),
            payload,
        },
    )
    .map_err(|e| CallError::NotSent(e.to_string()))
}

/// Subscriber count, events routed and events dropped.
pub async fn stats<M: Message>(
    ctx: &Ctx<M>,
    bus: Pid,
    timeout: Duration,
) -> Result<BusStats, CallError> {
    ctx.call(bus, BusMsg::Stats, timeout).await
}

#[cfg(test)]
mod tests;
