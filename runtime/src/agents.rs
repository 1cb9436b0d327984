//! The agent registry: agents with metadata (capabilities, health, node, pid, resources),
//! secondary indexes, paged queries, reads that never queue behind writes, and atomic
//! transactions.
//!
//! - **Writes** go through one process, `agent-registry`, which [`AgentRegistry::start`] runs
//!   under a supervisor (one-for-one, permanent). Every write is a transaction: a batch of [`Op`]s
//!   applied all or nothing ([`AgentRegistry::transact`]; `register`, `update`, `unregister` and
//!   `report_health` are one-op batches).
//! - **Atomicity.** The registry validates the whole batch against the committed table without
//!   changing it (staging), then commits the staged result in one step under the table's write
//!   lock, with no await in between; the reply is sent in the same step. So:
//!   - a failing op aborts the batch: nothing applied, [`TxError::Op`] names the op's index, kind
//!     and agent;
//!   - a crash of the registry process during a batch (a panic, or a kill at an await point) comes
//!     before the commit: nothing applied, the caller gets [`TxError::RegistryDown`], which
//!     therefore always means "not applied";
//!   - no reader ever sees part of a batch.
//! - **State after a restart: recovered.** The table belongs to the handle, not to the process
//!   (like an ETS table with an heir), so the supervisor's restarted registry serves the last
//!   committed state. Calls made while no registry runs fail with [`TxError::NotRunning`]
//!   (nothing applied). The table lives in the node's memory: a node crash loses it, and every
//!   caller on that node dies with it.
//! - **Reads** ([`AgentRegistry::get`], [`query`](AgentRegistry::query),
//!   [`scan`](AgentRegistry::scan), [`stream`](AgentRegistry::stream)) take a shared read lock on
//!   the table from the reader's own task; they never pass through the registry's mailbox. Each
//!   page is read under one lock, so it reflects one committed state. Across pages (a cursor is
//!   the last id returned, and pages go in id order): no agent appears twice, an agent present
//!   from the first page to the last is returned, and one committed in between may or may not
//!   be.
//! - **Queries never copy the table**: a page clones at most `page_size` agents; a predicate
//!   scan stops after `page_size` matches or `scan_budget` examined entries.
//! - **Fault injection.** [`Config::crash_before_op`] is a hook asked before each op of each
//!   batch; when it returns true the registry panics right there. It exists for tests and
//!   scenarios; production configs leave it unset.
//!
//! Trace events: `agents-commit` (`node`, `tx`, `ops`, `entries`), `agents-abort` (`node`,
//! `index`, `op`, `agent`, `error`), `agents-crash-injected` (`node`, `index`), `agents-start`
//! (`node`, `pid`, `version`).

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use serde::{Deserialize, Serialize};

use crate::rt::Duration;
use crate::supervisor::{self, ChildSpec, Spec, Strategy};
use crate::{start_actor, CallError, Ctx, ExitReason, Message, Node, Pid, StartError};

mod health;
mod server;
mod table;
#[cfg(test)]
mod tests;

use table::Table;

/// An agent's key.
pub type AgentId = String;

/// Longest agent id or capability name accepted.
pub const MAX_NAME_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Health {
    Healthy,
    Degraded,
    Unhealthy,
}

/// What an agent uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_millis: u32,
    pub memory_mb: u32,
}

/// One agent's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: AgentId,
    /// The node the agent runs on (indexed).
    pub node: u32,
    /// The agent's process, if it has one; at most one agent per pid.
    pub pid: Option<Pid>,
    /// What it can do (indexed).
    pub capabilities: BTreeSet<String>,
    /// Indexed.
    pub health: Health,
    pub resources: Resources,
}

impl Agent {
    /// A healthy agent on `node` with no capabilities, pid or resources.
    pub fn new(id: impl Into<AgentId>, node: u32) -> Agent {
        Agent {
            id: id.into(),
            node,
            pid: None,
            capabilities: BTreeSet::new(),
            health: Health::Healthy,
            resources: Resources::default(),
        }
    }

    pub fn capability(mut self, capability: impl Into<String>) -> Self {
        self.capabilities.insert(capability.into());
        self
    }

    pub fn health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    pub fn pid(mut self, pid: Pid) -> Self {
        self.pid = Some(pid);
        self
    }

    pub fn resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }

    fn validate(&self) -> Result<(), OpError> {
        let invalid = |why: &str| OpError::Invalid {
            id: self.id.clone(),
            why: why.to_string(),
        };
        if self.id.is_empty() || self.id.len() > MAX_NAME_LEN {
            return Err(invalid("the id must have 1 to 256 bytes"));
        }
        if self
            .capabilities
            .iter()
            .any(|c| c.is_empty() || c.len() > MAX_NAME_LEN)
        {
            return Err(invalid("a capability name must have 1 to 256 bytes"));
        }
        Ok(())
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Adds an agent; fails if the id is taken, its pid names another agent, or the table is full.
    Register(Agent),
    /// Replaces an existing agent's metadata (all of it).
    Update(Agent),
    /// Sets an existing agent's health, leaving the rest.
    SetHealth { id: AgentId, health: Health },
    /// Removes an existing agent.
    Unregister(AgentId),
}

impl Op {
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Register(_) => OpKind::Register,
            Op::Update(_) => OpKind::Update,
            Op::SetHealth { .. } => OpKind::SetHealth,
            Op::Unregister(_) => OpKind::Unregister,
        }
    }

    /// The agent the op is about.
    pub fn agent_id(&self) -> &str {
        match self {
            Op::Register(a) | Op::Update(a) => &a.id,
            Op::SetHealth { id, .. } | Op::Unregister(id) => id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    Register,
    Update,
    SetHealth,
    Unregister,
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::Register => "register",
            OpKind::Update => "update",
            OpKind::SetHealth => "set-health",
            OpKind::Unregister => "unregister",
        })
    }
}

/// Why one op was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum OpError {
    #[error("agent `{0}` is already registered")]
    AlreadyRegistered(AgentId),
    #[error("no agent `{0}`")]
    NotFound(AgentId),
    #[error("pid {pid} already belongs to agent `{owner}`")]
    PidInUse { pid: Pid, owner: AgentId },
    #[error("the registry is full ({max} agents)")]
    Full { max: usize },
    #[error("agent `{id}` is invalid: {why}")]
    Invalid { id: AgentId, why: String },
}

/// A transaction that did not commit. Every variant means nothing of the batch was applied,
/// except [`TxError::Call`], whose outcome is unknown (see there).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Op `index` (0-based) of the batch failed; the batch was rolled back (never applied).
    #[error("op {index} ({op} `{agent}`) failed, nothing applied: {error}")]
    Op {
        index: usize,
        op: OpKind,
        agent: AgentId,
        error: OpError,
    },
    /// The registry process exited while handling the batch, before committing it.
    #[error("the agent registry exited during the transaction ({0}); nothing applied")]
    RegistryDown(ExitReason),
    /// No registry process was running (it is being restarted, or its supervisor gave up).
    #[error("the agent registry is not running; nothing applied")]
    NotRunning,
    /// The call failed otherwise: a `Timeout` leaves the outcome unknown (the registry may
    /// still commit the batch), `NotSent` means it was not applied.
    #[error("call to the agent registry failed: {0}")]
    Call(CallError),
}

/// A committed transaction: the table's version after it (one more per committed batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub version: u64,
}

/// An agent named by id or by its process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentRef {
    Id(AgentId),
    Pid(Pid),
}

/// A secondary index to query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Index {
    Capability(String),
    Health(Health),
    Node(u32),
}

/// Where the next page starts: after this agent id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    after: AgentId,
}

impl Cursor {
    /// A cursor that starts after `id`.
    pub fn after(id: impl Into<AgentId>) -> Cursor {
        Cursor { after: id.into() }
    }
}

/// One page of a query: agents in id order, and the cursor of the next page if any remain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<Agent>,
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("page size must be at least 1")]
    ZeroPageSize,
}

/// The requests the registry process answers. [`AgentRegistry`] wraps them; a process may also
/// send `ReportHealth` as a plain message (fire and forget) to the registry's pid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Replies `Result<Receipt, Rejected>`.
    Transact(Vec<Op>),
    /// A one-op transaction setting the health of the agent named by id or pid; replies like
    /// `Transact` when sent as a call.
    ReportHealth { agent: AgentRef, health: Health },
    /// Process `pid` is gone: unregister the agent bound to it *now*, if any. A compare-and-delete
    /// resolved and applied by the registry in one step, so a late report about a dead pid
    /// never removes an agent that has since moved to another pid. Refused with
    /// [`OpError::NotFound`] (naming the pid) when no agent is bound to `pid`.
    ReportDown { pid: Pid },
}

/// The registry's refusal of a batch, as it travels in a reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rejected {
    pub index: usize,
    pub op: OpKind,
    pub agent: AgentId,
    pub error: OpError,
}

/// Asked before op `index` of every batch; `true` makes the registry panic there. A
/// fault-injection point for tests and scenarios.
pub type CrashHook = Arc<dyn Fn(usize, &Op) -> bool + Send + Sync>;

/// The registry's configuration.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The table's bound: a register beyond it fails with [`OpError::Full`].
    pub max_agents: usize,
    /// Most entries one predicate-scan page examines.
    pub scan_budget: usize,
    /// The supervisor's restart intensity: more than this many restarts within the period
    /// and it gives up (and the registry stays down).
    pub intensity: (u32, Duration),
    pub crash_before_op: Option<CrashHook>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_agents: 100_000,
            scan_budget: 1_024,
            intensity: (3, Duration::from_secs(5)),
            crash_before_op: None,
        }
    }
}

impl Config {
    pub fn max_agents(mut self, max: usize) -> Self {
        self.max_agents = max;
        self
    }

    pub fn scan_budget(mut self, entries: usize) -> Self {
        self.scan_budget = entries.max(1);
        self
    }

    pub fn intensity(mut self, restarts: u32, period: Duration) -> Self {
        self.intensity = (restarts, period);
        self
    }

    /// Installs the fault-injection hook (see [`CrashHook`]).
    pub fn crash_before_op(
        mut self,
        hook: impl Fn(usize, &Op) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.crash_before_op = Some(Arc::new(hook));
        self
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_agents", &self.max_agents)
            .field("scan_budget", &self.scan_budget)
            .field("intensity", &self.intensity)
            .field("crash_before_op", &self.crash_before_op.is_some())
            .finish()
    }
}

/// What the handle and the registry process share; outlives every registry process.
struct Shared {
    table: RwLock<Table>,
    /// The running registry process, published by each one as it starts.
    pid: Mutex<Option<Pid>>,
    config: Config,
    node: u32,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, Table> {
        // Writers never panic while holding the lock (commit is infallible), so a poisoned
        // lock still holds a committed state.
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// A handle on an agent registry: cheap to clone, reads served directly from the table, writes
/// sent to the registry process. Local to the node the registry runs on.
#[derive(Clone)]
pub struct AgentRegistry {
    shared: Arc<Shared>,
    sup: Pid,
}

impl fmt::Debug for AgentRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentRegistry")
            .field("sup", &self.sup)
            .field("pid", &self.pid())
            .finish()
    }
}

const INIT_TIMEOUT: Duration = Duration::from_secs(5);

impl AgentRegistry {
    /// Starts the registry's supervisor (linked to `parent`) and the registry process under
    /// it, with an empty table.
    pub async fn start(
        node: &Node,
        parent: Option<Pid>,
        config: Config,
    ) -> Result<AgentRegistry, StartError> {
        if config.max_agents == 0 {
            return Err(StartError::Invalid("max_agents is zero".into()));
        }
        let intensity = config.intensity;
        let shared = Arc::new(Shared {
            table: RwLock::new(Table::default()),
            pid: Mutex::new(None),
            config,
            node: node.index(),
        });
        let child = {
            let shared = shared.clone();
            ChildSpec::new("agent-registry", move |node: Node, sup: Pid| {
                let server = server::Server::new(shared.clone());
                async move {
                    start_actor(&node, "agent-registry", Some(sup), INIT_TIMEOUT, server).await
                }
            })
        };
        let spec = Spec::new(Strategy::OneForOne)
            .intensity(intensity.0, intensity.1)
            .child(child);
        let sup = supervisor::start(node, "agent-registry-sup", parent, spec).await?;
        Ok(AgentRegistry { shared, sup })
    }

    /// The registry's supervisor.
    pub fn supervisor(&self) -> Pid {
        self.sup
    }

    /// The registry process most recently started (it may have exited since).
    pub fn pid(&self) -> Option<Pid> {
        *self.shared.pid.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `ops` atomically, in order: all of them, or none (see the module docs).
    pub async fn transact<M: Message>(
        &self,
        ctx: &Ctx<M>,
        ops: Vec<Op>,
        timeout: Duration,
    ) -> Result<Receipt, TxError> {
        self.request(ctx, Request::Transact(ops), timeout).await
    }

    pub async fn register<M: Message>(
        &self,
        ctx: &Ctx<M>,
        agent: Agent,
        timeout: Duration,
    ) -> Result<Receipt, TxError> {
        self.transact(ctx, vec![Op::Register(agent)], timeout).await
    }

    pub async fn update<M: Message>(
        &self,
        ctx: &Ctx<M>,
        agent: Agent,
        timeout: Duration,
    ) -> Result<Receipt, TxError> {
        self.transact(ctx, vec![Op::Update(agent)], timeout).await
    }

    pub async fn unregister<M: Message>(
        &self,
        ctx: &Ctx<M>,
        id: impl Into<AgentId>,
        timeout: Duration,
    ) -> Result<Receipt, TxError> {
        self.transact(ctx, vec![Op::Unregister(id.into())], timeout)
            .await
    }

    /// Sets the health of the agent named by id or pid (for a health monitor).
    pub async fn report_health<M: Message>(
        &self,
        ctx: &Ctx<M>,
        agent: AgentRef,
        health: Health,
        timeout: Duration,
    ) -> Result<Receipt, TxError> {
        self.request(ctx, Request::ReportHealth { agent, health }, timeout)
            .await
    }

    /// Unregisters the agent bound to `pid`, if it still is when the registry handles the
    /// request (see [`Request::ReportDown`]); for whoever learned that `pid` is gone.
    pub async fn report_down<M: Message>(
        &self,
        ctx: &Ctx<M>,
        pid: Pid,
        timeout: Duration,
    ) -> Result<Receipt, TxError> {
        self.request(ctx, Request::ReportDown { pid }, timeout)
            .await
    }

    async fn request<M: Message>(
        &self,
        ctx: &Ctx<M>,
        request: Request,
        timeout: Duration,
    ) -> Result<Receipt, TxError> {
        let pid = self.pid().ok_or(TxError::NotRunning)?;
        let reply: Result<Result<Receipt, Rejected>, CallError> =
            ctx.call(pid, request, timeout).await;
        match reply {
            Ok(Ok(receipt)) => Ok(receipt),
            Ok(Err(r)) => Err(TxError::Op {
                index: r.index,
                op: r.op,
                agent: r.agent,
                error: r.error,
            }),
            Err(CallError::Exited(reason)) => Err(TxError::RegistryDown(reason)),
            Err(CallError::NoProc) => Err(TxError::NotRunning),
            Err(other) => Err(TxError::Call(other)),
        }
    }

    pub fn get(&self, id: &str) -> Option<Agent> {
        self.shared.read().get(id).cloned()
    }

    /// The agent whose process is `pid`.
    pub fn get_by_pid(&self, pid: Pid) -> Option<Agent> {
        let table = self.shared.read();
        table.id_of_pid(pid).and_then(|id| table.get(id)).cloned()
    }

    pub fn len(&self) -> usize {
        self.shared.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many transactions have committed.
    pub fn version(&self) -> u64 {
        self.shared.read().version()
    }

    /// Up to `page_size` agents in `index`, in id order, after `after` (None: from the start).
    pub fn query(
        &self,
        index: &Index,
        after: Option<&Cursor>,
        page_size: usize,
    ) -> Result<Page, QueryError> {
        if page_size == 0 {
            return Err(QueryError::ZeroPageSize);
        }
        Ok(self.shared.read().index_page(index, after, page_size))
    }

    /// Agents matching `pred`, in id order after `after`: a page ends at `page_size` matches or
    /// after `scan_budget` examined entries (it may then hold fewer, with `next` set).
    pub fn scan(
        &self,
        pred: impl Fn(&Agent) -> bool,
        after: Option<&Cursor>,
        page_size: usize,
    ) -> Result<Page, QueryError> {
        if page_size == 0 {
            return Err(QueryError::ZeroPageSize);
        }
        let budget = self.shared.config.scan_budget;
        Ok(self
            .shared
            .read()
            .scan_page(&pred, after, page_size, budget))
    }

    /// Every agent in `index`, fetched `page_size` at a time as the iterator advances.
    pub fn stream(&self, index: Index, page_size: usize) -> Result<AgentStream, QueryError> {
        if page_size == 0 {
            return Err(QueryError::ZeroPageSize);
        }
        Ok(AgentStream {
            registry: self.clone(),
            index,
            page_size,
            buffer: VecDeque::new(),
            next: None,
            done: false,
        })
    }

    /// Checks that every index matches the entries (for tests).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.shared.read().check_invariants()
    }
}

/// An index query as an iterator, one page per fetch (see [`AgentRegistry::stream`]); the
/// cross-page consistency of the module docs applies.
pub struct AgentStream {
    registry: AgentRegistry,
    index: Index,
    page_size: usize,
    buffer: VecDeque<Agent>,
    next: Option<Cursor>,
    done: bool,
}

impl Iterator for AgentStream {
    type Item = Agent;

    fn next(&mut self) -> Option<Agent> {
        if self.buffer.is_empty() && !self.done {
            let page = self.registry.shared.read().index_page(
                &self.index,
                self.next.as_ref(),
                self.page_size,
            );
            self.done = page.next.is_none();
            self.next = page.next;
            self.buffer.extend(page.items);
        }
        self.buffer.pop_front()
    }
}

impl fmt::Debug for AgentStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentStream")
            .field("index", &self.index)
            .field("next", &self.next)
            .finish()
    }
}
