//! Consensus: a Raft replicated log, one member per node, each member a supervised process.
//!
//! A group is `Config::members` (node indexes); on each of those nodes one member runs
//! [`Server`] under the name `Config::name`, and members reach each other by that name. A
//! user proposes commands to the leader ([`propose`]); a reply `Ok(Committed)` means the
//! command is at that index of the committed log, which every member applies in the same
//! order (read it on the member's node with [`Store::committed`]). The rules are in
//! `consensus/core.rs`, written from the Raft paper: at most one leader per term, a leader
//! commits by majority, logs that agree on an entry's index and term agree on everything
//! before it.
//!
//! **What survives a crash.** Raft's safety needs `term`, `voted_for` and the log on stable
//! storage before the member answers anyone. Each member keeps them on its node's disk
//! ([`rt::Disk`], keyspace `Config::dir`; layout in `consensus/stable.rs`): after every event
//! it writes what changed and syncs, and only then sends the messages the event produced, so
//! a vote is durable before the candidate hears of it and an entry before its leader counts
//! it. A restarted member (a supervisor's restart, or the node's after `crash-node`) reads
//! back what was synced; an unsynced write is gone, which is safe because nothing it implied
//! was sent. A record that fails its checksum or does not decode fails the member's start
//! with a [`StoreError`] (typed, never taken as data); a disk that refuses a write stops the
//! member with that error before it sends anything, and its supervisor restarts it from what
//! was synced. [`load`] reads a node's stored state the same way (for tools and tests).
//!
//! A [`Store`] is the member's in-memory view of what it has synced, for readers on its node:
//! the member fills it from the disk at start and updates it after every sync. It is not what
//! makes the state durable, so a fresh one per start is fine.
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
    event, start_actor, Actor, CallError, Ctx, Event, ExitReason, Flow, Message, Node, Pid, Ref,
    Registry, ReplyTo, StartError,
};

mod core;
mod stable;

use self::core::{Core, Ticks, MILLI};
pub use self::core::{Durable, Entry, Peer, Role};
use self::stable::Stable;
pub use self::stable::{load, StoreError};

/// How long a member's `init` may take (registering its name, reading its disk).
const INIT_TIMEOUT: Duration = Duration::from_secs(5);
/// The timer tag of the member's tick.
const TICK: u64 = 1;
/// Election timers are tagged `ELECT + n`, `n` counting the timers armed (only the last counts).
const ELECT: u64 = 1 << 32;

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
    /// Election timeout: a random time in `election_ticks..2 * election_ticks` ticks, drawn to a
    /// thousandth of a tick and timed on its own timer (so members whose ticks line up still
    /// time out apart); a leader that has not heard from a majority for `election_ticks`
    /// ticks steps down. After a split vote (a candidate hears another candidate's request
    /// for its own term) the lower member index redraws from `election_ticks / 2..
    /// election_ticks` ticks and the higher from `2 * election_ticks..3 * election_ticks`.
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
    /// The member's keyspace on its node's disk (real build: a directory). Two groups on one
    /// node need two.
    pub dir: String,
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
            dir: format!("raft-{name}"),
            observer: None,
        }
    }

    pub fn timing(mut self, tick: Duration, election_ticks: u32) -> Self {
        self.tick = tick;
        self.election_ticks = election_ticks;
        self
    }

    /// Keeps the member's state in keyspace `dir` of its node's disk.
    pub fn dir(mut self, dir: impl Into<String>) -> Self {
        self.dir = dir.into();
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
        if self.election_ticks > 1_000_000 {
            return Err(StartError::Invalid("election_ticks past 1,000,000".into()));
        }
        Ok(())
    }
}

/// A view of what a member has synced to its disk (see the module doc), for readers on its
/// node; the member replaces it with what it reads from the disk when it starts.
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

    /// A copy of everything the member has synced.
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
    /// The readers' view of `durable`, updated after each sync.
    store: Store<C>,
    core: Option<Core<C>>,
    /// Term, vote, log and commit index as the rules last left them.
    durable: Durable<C>,
    /// The disk; `None` until `init` opened it.
    stable: Option<Stable>,
    pending: BTreeMap<u64, (u64, ReplyTo)>,
    watchers: Vec<(View, ReplyTo)>,
    /// Members' processes, learned from their messages.
    pids: BTreeMap<u32, Pid>,
    view: View,
    /// Election timers armed so far (the tag of the live one is `ELECT + elections`).
    elections: u64,
    /// The live election timer.
    election_timer: Option<Ref>,
}

impl<C: Message + Clone> Server<C> {
    pub fn new(config: Config, store: Store<C>) -> Server<C> {
        Server {
            config,
            store,
            core: None,
            durable: Durable::default(),
            stable: None,
            pending: BTreeMap::new(),
            watchers: Vec::new(),
            pids: BTreeMap::new(),
            view: (0, Role::Follower, None),
            elections: 0,
            election_timer: None,
        }
    }

    fn core(&mut self) -> &mut Core<C> {
        self.core.as_mut().expect("init made the core")
    }

    fn status(&self, me: u32) -> Status {
        let d = &self.durable;
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

    /// Writes what the last event changed to the disk and syncs, then updates the view.
    async fn persist(&mut self) -> Result<(), StoreError> {
        let dirty = self.core().take_dirty();
        let stable = self.stable.as_mut().expect("init opened the disk");
        if !stable.changed(&self.durable, dirty) {
            return Ok(());
        }
        let save = stable.plan(&self.durable, dirty)?;
        stable.apply(save).await?;
        let d = &self.durable;
        let mut view = self.store.lock();
        view.term = d.term;
        view.voted_for = d.voted_for;
        view.commit = d.commit;
        let from = dirty
            .map_or(d.log.len(), |i| i as usize - 1)
            .min(view.log.len());
        view.log.truncate(from);
        view.log.extend_from_slice(&d.log[from..]);
        Ok(())
    }

    /// Sets the election timer again if the rules reset it.
    fn arm(&mut self, ctx: &Ctx<Rpc<C>>) {
        if let Some(milli) = self.core().take_rearm() {
            if let Some(old) = self.election_timer.take() {
                ctx.cancel_timer(old);
            }
            self.elections += 1;
            let after = self.config.tick.as_nanos() * u128::from(milli) / u128::from(MILLI);
            let after = Duration::from_nanos(u64::try_from(after).unwrap_or(u64::MAX));
            self.election_timer = Some(ctx.send_after(after, ELECT + self.elections));
        }
    }

    /// After every event: make its changes durable, then send what the rules produced and
    /// answer what is now decided. A disk failure stops the member before it says anything.
    async fn settle(&mut self, ctx: &Ctx<Rpc<C>>) -> Flow {
        let me = ctx.pid();
        self.arm(ctx);
        if let Err(e) = self.persist().await {
            let why = e.to_string();
            event!(
                "note",
                node = me.node,
                msg = "raft member stops: its disk failed",
                error = why.as_str()
            );
            return Flow::Stop(ExitReason::error(why));
        }
        for (to, msg) in std::mem::take(&mut self.core().out) {
            if let Err(e) = ctx.send_to_name(to, &self.config.name, Rpc::Peer(msg)) {
                let why = e.to_string();
                event!("drop", node = me.node, from = %me, to_node = to, reason = "raft-send", msg = why.as_str());
            }
        }
        let commit = self.durable.commit;
        let decided: Vec<(u64, Option<u64>)> = self
            .pending
            .range(..=commit)
            .map(|(i, _)| (*i, self.durable.term_at(*i)))
            .collect();
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
        Flow::Continue
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
                    let core = self.core.as_mut().expect("init made the core");
                    let (index, term) = core
                        .propose(&mut self.durable, command)
                        .expect("checked: this member leads");
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
        let (stable, durable) = Stable::open(&self.config.dir).await.map_err(|e| {
            let why = e.to_string();
            event!(
                "note",
                node = me.node,
                msg = "raft member cannot start: its disk failed",
                error = why.as_str()
            );
            ExitReason::error(why)
        })?;
        *self.store.lock() = durable.clone();
        self.durable = durable;
        self.stable = Some(stable);
        Registry::local(ctx.node())
            .register(&self.config.name, me)
            .map_err(|e| ExitReason::error(format!("raft name: {e}")))?;
        let stream = Stream::Extra(0x5241_0000 ^ me.node);
        self.pids.insert(me.node, me);
        let rng = rt::seeded_rng(self.config.seed ^ (me.incarnation << 20) ^ me.id, stream);
        let ticks = Ticks {
            election: self.config.election_ticks,
            batch: self.config.batch,
            exact: true,
        };
        self.core = Some(Core::new(me.node, self.config.members.clone(), ticks, rng));
        let status = self.status(me.node);
        self.view = status.view();
        if let Some(Observer(observe)) = &self.config.observer {
            observe(&status);
        }
        ctx.send_after(self.config.tick, TICK);
        self.arm(ctx);
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
                let core = self.core.as_mut().expect("init made the core");
                core.receive(&mut self.durable, peer);
            }
            Event::Timer { tag: TICK, .. } => {
                ctx.send_after(self.config.tick, TICK);
                let core = self.core.as_mut().expect("init made the core");
                core.tick(&mut self.durable);
            }
            Event::Timer { tag, .. } if tag == ELECT + self.elections => {
                self.election_timer = None;
                let core = self.core.as_mut().expect("init made the core");
                core.election_due(&mut self.durable);
            }
            Event::Call { msg, reply, .. } => self.on_call(ctx, msg, reply),
            Event::Msg { from, .. } => {
                let me = ctx.pid();
                event!("drop", node = me.node, from = %from, to = %me, reason = "raft-not-a-call");
            }
            Event::Timer { .. } | Event::Down { .. } | Event::Exit { .. } => {}
        }
        self.settle(ctx).await
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

/// This node's member as a supervisor's child (id = the group's name); each start reads the disk
/// and refreshes `store`.
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
