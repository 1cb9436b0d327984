//! Consensus: a Raft replicated log, one member per node, each member a supervised process.
//!
//! A group is `Config::members` (node indexes); on each of those nodes one member runs
//! [`Server`] under the name `Config::name`, and members reach each other by that name. A
//! user proposes commands to the leader ([`propose`]); a reply `Ok(Committed)` means the
//! command is at that index of the committed log, which every member applies in the same
//! order (read it with [`Store::committed`]). The rules are in `consensus/core.rs`, written
//! from the Raft paper: at most one leader per term, a leader commits by majority, logs
//! that agree on an entry's index and term agree on everything before it.
//!
//! **What must survive a crash.** Raft's safety needs `term`, `voted_for` and the log on
//! stable storage, written before the member answers anyone. They live in a [`Store`], which
//! the caller creates and hands to the member: it outlives the member's process (a supervisor
//! restart reuses it), and the caller decides whether it outlives the node. Groundhog's
//! simulated nodes have no durable disk yet, so the properties and scenarios keep each node's
//! store outside the node (as a disk that survives the crash would). A member restarted with
//! a *fresh* store after a crash could vote twice in one term: that is not safe, and it is the
//! caller's to avoid (give the node a new member id, or keep the store).
//!
//! Proposals wait for a definite answer: `Ok(Committed)` once the entry is committed, or
//! `ProposeError::Dropped` once another entry is committed at its index. A leader that steps
//! down keeps its pending proposals until it learns which; the caller's call timeout bounds
//! the wait (`CallError::Timeout` then means "unknown", not "lost").

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::rt::{self, Duration, Stream};
use crate::supervisor::ChildSpec;
use crate::{
    event, start_actor, Actor, CallError, Ctx, Event, ExitReason, Flow, Message, Node, Pid,
    Registry, ReplyTo, StartError,
};

mod core;

use self::core::{Core, Ticks};
pub use self::core::{Durable, Entry, Peer, Role};

/// How long a member's `init` may take (registering its name).
const INIT_TIMEOUT: Duration = Duration::from_secs(1);
/// The timer tag of the member's tick.
const TICK: u64 = 1;

/// A group's configuration: data, the same on every member.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The name every member registers on its node.
    pub name: String,
    /// Node indexes of the members; a majority of them decides.
    pub members: Vec<u32>,
    /// A leader sends `AppendEntries` every tick.
    pub tick: Duration,
    /// Election timeout: a random `election_ticks..2 * election_ticks` ticks; a leader that has
    /// not heard from a majority for `election_ticks` ticks steps down.
    pub election_ticks: u32,
    /// Most entries in one `AppendEntries`.
    pub batch: usize,
    /// The log's bound: a leader refuses proposals past it (`ProposeError::LogFull`).
    pub max_log: usize,
    /// Proposals one member keeps waiting for their outcome (`ProposeError::Busy` past it).
    pub max_pending: usize,
    /// Long-polling watchers ([`watch`]) one member keeps (`WatchError::Busy` past it).
    pub max_watchers: usize,
    /// Election timeouts are drawn from this seed (with the node and its incarnation).
    pub seed: u64,
    /// Called with the member's status on every change of its term, role or known leader, in
    /// the member's process, before anyone else hears of it (metrics, tests). Must not block.
    pub observer: Option<Observer>,
}

/// A callback on a member's status changes (see [`Config::observer`]).
#[derive(Clone)]
pub struct Observer(pub Arc<dyn Fn(&Status) + Send + Sync>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

impl Config {
    /// A group named `name` over `members`: ticks of 50 ms, elections after 300–600 ms.
    pub fn new(name: &str, members: Vec<u32>, seed: u64) -> Config {
        Config {
            name: name.to_string(),
            members,
            tick: Duration::from_millis(50),
            election_ticks: 6,
            batch: 64,
            max_log: 100_000,
            max_pending: 1_024,
            max_watchers: 64,
            seed,
            observer: None,
        }
    }

    pub fn timing(mut self, tick: Duration, election_ticks: u32) -> Self {
        self.tick = tick;
        self.election_ticks = election_ticks;
        self
    }

    pub fn observer(mut self, observer: impl Fn(&Status) + Send + Sync + 'static) -> Self {
        self.observer = Some(Observer(Arc::new(observer)));
        self
    }

    fn validate(&self, me: u32) -> Result<(), StartError> {
        let mut sorted = self.members.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.members.len() || sorted.is_empty() {
            return Err(StartError::Invalid(
                "members must be distinct and non-empty".into(),
            ));
        }
        if !self.members.contains(&me) {
            return Err(StartError::Invalid(format!("node {me} is not a member")));
        }
        if self.election_ticks < 2 || self.tick.is_zero() || self.batch == 0 {
            return Err(StartError::Invalid("timing or batch is zero".into()));
        }
        Ok(())
    }
}

/// A member's stable storage (see the module doc): shared by the member's incarnations.
pub struct Store<C>(Arc<Mutex<Durable<C>>>);

impl<C> Clone for Store<C> {
    fn clone(&self) -> Self {
        Store(self.0.clone())
    }
}

impl<C> Default for Store<C> {
    fn default() -> Self {
        Store(Arc::default())
    }
}

impl<C: Clone> Store<C> {
    pub fn new() -> Store<C> {
        Store::default()
    }

    fn lock(&self) -> MutexGuard<'_, Durable<C>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of everything stored.
    pub fn snapshot(&self) -> Durable<C> {
        self.lock().clone()
    }

    /// The committed prefix of the log, as this member knows it.
    pub fn committed(&self) -> Vec<Entry<C>> {
        let d = self.lock();
        d.log[..d.commit as usize].to_vec()
    }
}

/// What a member is, as [`status`] and [`watch`] report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub member: u32,
    pub term: u64,
    pub role: Role,
    /// The leader of `term` this member knows (itself when leading).
    pub leader: Option<u32>,
    /// The leader's member process, once heard from.
    pub leader_pid: Option<Pid>,
    pub commit: u64,
    pub last_index: u64,
}

/// What a watcher waits to change: (term, role, leader).
type View = (u64, Role, Option<u32>);

impl Status {
    fn view(&self) -> View {
        (self.term, self.role, self.leader)
    }
}

/// Where a proposal was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub index: u64,
    pub term: u64,
}

/// Why a proposal was refused or did not commit; each is definite (nothing pending).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    #[error("member {member} is not the leader (leader: {leader:?})")]
    NotLeader {
        member: u32,
        leader: Option<u32>,
        leader_pid: Option<Pid>,
    },
    /// Not applied: another leader's entry was committed at this index.
    #[error("entry {index} of term {term} was replaced by another leader's and is not applied")]
    Dropped { index: u64, term: u64 },
    #[error("the log is at its bound")]
    LogFull,
    #[error("too many proposals are waiting for their outcome")]
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum WatchError {
    #[error("too many watchers")]
    Busy,
}

/// A client's failure: the call itself, or the member's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// The member did not answer; for a proposal the outcome is unknown.
    #[error("member unreachable: {0}")]
    Call(#[from] CallError),
    #[error(transparent)]
    Propose(#[from] ProposeError),
    #[error(transparent)]
    Watch(#[from] WatchError),
}

/// A member's messages: from its peers, and calls from clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Rpc<C> {
    Peer(Peer<C>),
    /// Call; replies `Result<Committed, ProposeError>`.
    Propose(C),
    /// Call; replies [`Status`].
    Status,
    /// Call; replies `Result<Status, WatchError>` once (term, role, leader) differs from this.
    Watch(u64, Role, Option<u32>),
}

/// One member of a group (an [`Actor`]).
pub struct Server<C> {
    config: Config,
    store: Store<C>,
    core: Option<Core<C>>,
    pending: BTreeMap<u64, (u64, ReplyTo)>,
    watchers: Vec<(View, ReplyTo)>,
    /// Members' processes, learned from their messages.
    pids: BTreeMap<u32, Pid>,
    view: View,
}

impl<C: Message + Clone> Server<C> {
    pub fn new(config: Config, store: Store<C>) -> Server<C> {
        Server {
            config,
            store,
            core: None,
            pending: BTreeMap::new(),
            watchers: Vec::new(),
            pids: BTreeMap::new(),
            view: (0, Role::Follower, None),
        }
    }

    fn core(&mut self) -> &mut Core<C> {
        self.core.as_mut().expect("init made the core")
    }

    fn status(&self, me: u32) -> Status {
        let d = self.store.lock();
        let core = self.core.as_ref().expect("init made the core");
        Status {
            member: me,
            term: d.term,
            role: core.role,
            leader: core.leader,
            leader_pid: core.leader.and_then(|l| self.pids.get(&l).copied()),
            commit: d.commit,
            last_index: d.last_index(),
        }
    }

    /// After every event: send what the rules produced, answer what is now decided.
    fn settle(&mut self, ctx: &Ctx<Rpc<C>>) {
        let me = ctx.pid();
        for (to, msg) in std::mem::take(&mut self.core().out) {
            if let Err(e) = ctx.send_to_name(to, &self.config.name, Rpc::Peer(msg)) {
                let why = e.to_string();
                event!("drop", node = me.node, from = %me, to_node = to, reason = "raft-send", msg = why.as_str());
            }
        }
        let (commit, decided) = {
            let d = self.store.lock();
            let decided: Vec<(u64, Option<u64>)> = self
                .pending
                .range(..=d.commit)
                .map(|(i, _)| (*i, d.term_at(*i)))
                .collect();
            (d.commit, decided)
        };
        for (index, at) in decided {
            let (term, reply) = self.pending.remove(&index).expect("listed above");
            if at == Some(term) {
                reply.reply(Ok::<_, ProposeError>(Committed { index, term }));
            } else {
                event!(
                    "note",
                    node = me.node,
                    msg = "raft proposal dropped",
                    index = index,
                    term = term
                );
                reply.reply(Err::<Committed, _>(ProposeError::Dropped { index, term }));
            }
        }
        let status = self.status(me.node);
        if status.view() != self.view {
            self.view = status.view();
            let role = format!("{:?}", status.role);
            event!("raft-role", node = me.node, pid = %me, group = self.config.name.as_str(), term = status.term, role = role.as_str(), leader = ?status.leader, commit = commit);
            if let Some(Observer(observe)) = &self.config.observer {
                observe(&status);
            }
            let (now, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.watchers)
                .into_iter()
                .partition(|(known, _)| *known != self.view);
            self.watchers = waiting;
            for (_, reply) in now {
                reply.reply(Ok::<_, WatchError>(status.clone()));
            }
        }
    }

    fn on_call(&mut self, ctx: &Ctx<Rpc<C>>, msg: Rpc<C>, reply: ReplyTo) {
        let me = ctx.pid().node;
        match msg {
            Rpc::Propose(command) => {
                let status = self.status(me);
                if status.role != Role::Leader {
                    reply.reply(Err::<Committed, _>(ProposeError::NotLeader {
                        member: me,
                        leader: status.leader,
                        leader_pid: status.leader_pid,
                    }));
                } else if self.pending.len() >= self.config.max_pending {
                    reply.reply(Err::<Committed, _>(ProposeError::Busy));
                } else if status.last_index as usize >= self.config.max_log {
                    reply.reply(Err::<Committed, _>(ProposeError::LogFull));
                } else {
                    let store = self.store.clone();
                    let mut d = store.lock();
                    let (index, term) = self
                        .core()
                        .propose(&mut d, command)
                        .expect("checked: this member leads");
                    drop(d);
                    self.pending.insert(index, (term, reply));
                }
            }
            Rpc::Status => reply.reply(self.status(me)),
            Rpc::Watch(term, role, leader) => {
                let status = self.status(me);
                if status.view() != (term, role, leader) {
                    reply.reply(Ok::<_, WatchError>(status));
                } else if self.watchers.len() >= self.config.max_watchers {
                    reply.reply(Err::<Status, _>(WatchError::Busy));
                } else {
                    self.watchers.push(((term, role, leader), reply));
                }
            }
            Rpc::Peer(_) => {
                let me = ctx.pid();
                event!("drop", node = me.node, to = %me, reason = "raft-peer-call");
            }
        }
    }
}

impl<C: Message + Clone> Actor for Server<C> {
    type Msg = Rpc<C>;

    async fn init(&mut self, ctx: &mut Ctx<Rpc<C>>) -> Result<(), ExitReason> {
        let me = ctx.pid();
        self.config
            .validate(me.node)
            .map_err(|e| ExitReason::error(e.to_string()))?;
        Registry::local(ctx.node())
            .register(&self.config.name, me)
            .map_err(|e| ExitReason::error(format!("raft name: {e}")))?;
        let stream = Stream::Extra(0x5241_0000 ^ me.node);
        self.pids.insert(me.node, me);
        let rng = rt::seeded_rng(self.config.seed ^ (me.incarnation << 20) ^ me.id, stream);
        let ticks = Ticks {
            election: self.config.election_ticks,
            batch: self.config.batch,
        };
        self.core = Some(Core::new(me.node, self.config.members.clone(), ticks, rng));
        let status = self.status(me.node);
        self.view = status.view();
        if let Some(Observer(observe)) = &self.config.observer {
            observe(&status);
        }
        ctx.send_after(self.config.tick, TICK);
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Ctx<Rpc<C>>, event: Event<Rpc<C>>) -> Flow {
        match event {
            Event::Msg {
                from,
                msg: Rpc::Peer(peer),
            } => {
                let sender = match &peer {
                    Peer::Vote { candidate, .. } => *candidate,
                    Peer::VoteReply { from, .. } | Peer::AppendReply { from, .. } => *from,
                    Peer::Append { leader, .. } => *leader,
                };
                if sender != from.node
                    || sender == ctx.pid().node
                    || !self.config.members.contains(&sender)
                {
                    let me = ctx.pid();
                    event!("drop", node = me.node, from = %from, to = %me, reason = "raft-impostor");
                    return Flow::Continue;
                }
                self.pids.insert(sender, from);
                let store = self.store.clone();
                let mut d = store.lock();
                self.core().receive(&mut d, peer);
            }
            Event::Timer { tag: TICK, .. } => {
                ctx.send_after(self.config.tick, TICK);
                let store = self.store.clone();
                let mut d = store.lock();
                self.core().tick(&mut d);
            }
            Event::Call { msg, reply, .. } => self.on_call(ctx, msg, reply),
            Event::Msg { from, .. } => {
                let me = ctx.pid();
                event!("drop", node = me.node, from = %from, to = %me, reason = "raft-not-a-call");
            }
            Event::Timer { .. } | Event::Down { .. } | Event::Exit { .. } => {}
        }
        self.settle(ctx);
        Flow::Continue
    }
}

/// Starts this node's member, linked to `parent`.
pub async fn start<C: Message + Clone>(
    node: &Node,
    parent: Option<Pid>,
    config: Config,
    store: Store<C>,
) -> Result<Pid, StartError> {
    let name = config.name.clone();
    start_actor(
        node,
        &name,
        parent,
        INIT_TIMEOUT,
        Server::new(config, store),
    )
    .await
}

/// This node's member as a supervisor's child (id = the group's name); restarts reuse `store`.
pub fn child_spec<C: Message + Clone + Sync>(config: Config, store: Store<C>) -> ChildSpec {
    let id = config.name.clone();
    ChildSpec::new(&id, move |node, sup| {
        let (config, store) = (config.clone(), store.clone());
        async move { start(&node, Some(sup), config, store).await }
    })
}

/// Proposes `command` to member `member` (the leader, or `NotLeader` names it).
pub async fn propose<C: Message, M: Message>(
    ctx: &Ctx<M>,
    member: Pid,
    command: C,
    timeout: Duration,
) -> Result<Committed, ConsensusError> {
    let answer: Result<Committed, ProposeError> =
        ctx.call(member, Rpc::Propose(command), timeout).await?;
    Ok(answer?)
}

/// Member `member`'s status. `C` is the group's command type.
pub async fn status<C: Message, M: Message>(
    ctx: &Ctx<M>,
    member: Pid,
    timeout: Duration,
) -> Result<Status, ConsensusError> {
    Ok(ctx.call(member, Rpc::<C>::Status, timeout).await?)
}

/// Waits (up to `timeout`) until member `member`'s term, role or leader differs from `known`.
pub async fn watch<C: Message, M: Message>(
    ctx: &Ctx<M>,
    member: Pid,
    known: &Status,
    timeout: Duration,
) -> Result<Status, ConsensusError> {
    let rpc = Rpc::<C>::Watch(known.term, known.role, known.leader);
    let answer: Result<Status, WatchError> = ctx.call(member, rpc, timeout).await?;
    Ok(answer?)
}

#[cfg(test)]
mod tests;
