//! A node: the process table, links, monitors, pending calls and (optionally) the sessions to
//! other nodes. All of it lives in one value per node incarnation; nothing is process-wide.
//!
//! The state machine is in `node/` (one file per concept), all of it synchronous under one lock;
//! the only tasks are the processes themselves, their timers, the call-deadline sweeper
//! (`node/deadlines.rs`), and the two network tasks in [`crate::net`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures::channel::{mpsc, oneshot};

use crate::auth::{Auth, NetStats, Secret};
use crate::mailbox::{Mailbox, Payload};
use crate::rt::{self, AbortHandle, Duration, Instant};
use crate::session::Peer;
use crate::{event, CallError, ExitReason, Pid, Ref};

mod calls;
mod deadlines;
mod links;
mod monitors;
mod names;
mod remote;
mod spawn;
mod timers;
mod world;

pub(crate) use spawn::panic_message;
pub use spawn::SpawnOpts;

/// How a node runs. Limits are data: the same in tests and production.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    pub index: u32,
    /// Must change on every restart of the node (the simulation's node incarnation).
    pub incarnation: u64,
    /// Where to listen for other nodes; `None` for a node without distribution.
    pub listen: Option<SocketAddr>,
    /// Other nodes' addresses, by index. Nodes that write first are learned from their frames.
    pub peers: BTreeMap<u32, SocketAddr>,
    /// Heartbeat (and retransmission) interval.
    pub heartbeat: Duration,
    /// A peer silent for longer than this is declared down.
    pub down_after: Duration,
    /// Default mailbox capacity (user messages).
    pub mailbox: usize,
    /// The cluster secret (see [`crate::auth`]). Required for distribution in the real build;
    /// under simulation `None` means the world's seed-derived secret.
    pub secret: Option<Secret>,
}

/// The port every simulated node's distribution listens on.
pub const DIST_PORT: u16 = 4369;

impl NodeConfig {
    /// A node without distribution.
    pub fn local(index: u32, incarnation: u64) -> NodeConfig {
        NodeConfig {
            index,
            incarnation,
            listen: None,
            peers: BTreeMap::new(),
            heartbeat: Duration::from_millis(100),
            down_after: Duration::from_millis(1000),
            mailbox: 1024,
            secret: None,
        }
    }

    /// Node `index` of a simulated cluster of `nodes`, at [`rt::node_addr`]`(_, DIST_PORT)`.
    pub fn cluster(index: u32, incarnation: u64, nodes: u32) -> NodeConfig {
        let mut config = NodeConfig::local(index, incarnation);
        config.listen = Some(rt::node_addr(index, DIST_PORT));
        config.peers = (0..nodes)
            .filter(|n| *n != index)
            .map(|n| (n, rt::node_addr(n, DIST_PORT)))
            .collect();
        config
    }

    pub fn heartbeat(mut self, every: Duration, down_after: Duration) -> Self {
        self.heartbeat = every;
        self.down_after = down_after;
        self
    }

    pub fn mailbox(mut self, capacity: usize) -> Self {
        self.mailbox = capacity;
        self
    }

    /// The cluster secret this node proves it knows, and requires of its peers.
    pub fn secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }
}

/// A handle to a node; cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) config: NodeConfig,
    pub(crate) state: Mutex<State>,
}

pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) links: BTreeSet<Pid>,
    /// Taken when the process is told to die; `None` means it is already exiting.
    pub(crate) kill: Option<oneshot::Sender<ExitReason>>,
    pub(crate) timers: BTreeMap<Ref, AbortHandle>,
    /// Monitors other processes hold on this one.
    pub(crate) monitored_by: BTreeSet<Ref>,
}

/// A monitor seen from the watching side.
pub(crate) struct Watch {
    pub(crate) watcher: Pid,
    pub(crate) target: Pid,
    /// The monitor of a pending call: its `Down` completes the call, never reaches a mailbox.
    pub(crate) call: bool,
}

pub(crate) type CallResult = Result<Payload, CallError>;

pub(crate) struct State {
    pub(crate) index: u32,
    pub(crate) incarnation: u64,
    next_id: u64,
    next_ref: u64,
    pub(crate) procs: BTreeMap<u64, Entry>,
    /// Monitors on local processes: reference -> (watcher, target id).
    pub(crate) monitors: BTreeMap<Ref, (Pid, u64)>,
    pub(crate) watching: BTreeMap<Ref, Watch>,
    pub(crate) calls: BTreeMap<Ref, oneshot::Sender<CallResult>>,
    /// Deadlines of pending calls, earliest first, with (caller, callee) for the trace.
    pub(crate) deadlines: BTreeMap<(rt::Instant, Ref), (Pid, Pid)>,
    /// Wakes the call-deadline sweeper (started with the first call that has a deadline).
    pub(crate) sweeper: Option<mpsc::UnboundedSender<()>>,
    pub(crate) sweeper_task: Option<AbortHandle>,
    /// The deadline the sweeper sleeps until; `None` while it waits for work.
    pub(crate) sweeper_armed: Option<rt::Instant>,
    pub(crate) peers: BTreeMap<u32, Peer>,
    /// The configuration's failure-detection timeout.
    pub(crate) down_after: Duration,
    /// Handshakes and keys (`None` until distribution starts).
    pub(crate) auth: Option<Auth>,
    pub(crate) distributed: bool,
    kick: Option<mpsc::UnboundedSender<()>>,
    kicked: bool,
    /// Peers the pump must look at before its next tick: something was queued for them, an
    /// acknowledgement is owed, a handshake completed. Between ticks the pump visits only these.
    pub(crate) due: BTreeSet<u32>,
    /// When the pump last ran its tick: a node whose own pump has not ticked for longer than
    /// `stall_after` was stalled itself (paused, starved) and trusts nothing it heard before.
    pub(crate) last_tick: Instant,
    /// One heartbeat plus `down_after`: a tick that late means the node itself stalled.
    pub(crate) stall_after: Duration,
    pub(crate) net_tasks: Vec<AbortHandle>,
    pub(crate) listen_addr: Option<SocketAddr>,
    /// Node-local registered names (the local registry backend's table).
    pub(crate) names: BTreeMap<String, crate::registry::local::Named>,
    /// The process holding the monitors of `names`.
    pub(crate) name_keeper: Option<Pid>,
    /// This node's cluster registry replica, once started.
    pub(crate) cluster_registry: Option<crate::registry::cluster::Replica>,
    /// Supervisors' running children, `(supervisor, child id) -> pid` (`node/world.rs`).
    pub(crate) supervised: BTreeMap<(Pid, String), Pid>,
    /// Signals held back by the `monitor-down-delay` buggify site, per (sender, receiver), in
    /// arrival order (`node/monitors.rs`).
    pub(crate) held: BTreeMap<(Pid, Pid), Vec<monitors::Held>>,
    /// This node, for the tasks its state starts (a held signal's release).
    pub(crate) me: Weak<Shared>,
}

impl State {
    pub(crate) fn make_ref(&mut self) -> Ref {
        self.next_ref += 1;
        Ref {
            node: self.index,
            incarnation: self.incarnation,
            n: self.next_ref,
        }
    }

    pub(crate) fn next_pid(&mut self) -> Pid {
        self.next_id += 1;
        Pid {
            node: self.index,
            incarnation: self.incarnation,
            id: self.next_id,
        }
    }

    pub(crate) fn is_local(&self, pid: Pid) -> bool {
        pid.node == self.index
    }

    /// The live local entry for `pid` (right incarnation, not exited).
    pub(crate) fn entry(&mut self, pid: Pid) -> Option<&mut Entry> {
        if pid.node != self.index || pid.incarnation != self.incarnation {
            return None;
        }
        self.procs.get_mut(&pid.id)
    }

    /// Asks the pump to look at `peer` (flush what is queued for it, or owed to it).
    pub(crate) fn kick(&mut self, peer: u32) {
        self.due.insert(peer);
        if !self.kicked {
            if let Some(k) = &self.kick {
                self.kicked = k.unbounded_send(()).is_ok();
            }
        }
    }

    pub(crate) fn unkick(&mut self) {
        self.kicked = false;
    }
}

impl Node {
    /// A node without distribution: remote pids are unreachable.
    pub fn local(index: u32, incarnation: u64) -> Node {
        Node::with_config(NodeConfig::local(index, incarnation))
    }

    pub(crate) fn with_config(config: NodeConfig) -> Node {
        let state = State {
            index: config.index,
            incarnation: config.incarnation,
            next_id: 0,
            next_ref: 0,
            procs: BTreeMap::new(),
            monitors: BTreeMap::new(),
            watching: BTreeMap::new(),
            calls: BTreeMap::new(),
            deadlines: BTreeMap::new(),
            sweeper: None,
            sweeper_task: None,
            sweeper_armed: None,
            peers: BTreeMap::new(),
            down_after: config.down_after,
            stall_after: config.heartbeat.saturating_add(config.down_after),
            auth: None,
            distributed: false,
            kick: None,
            kicked: false,
            due: BTreeSet::new(),
            last_tick: Instant::now(),
            net_tasks: Vec::new(),
            listen_addr: None,
            names: BTreeMap::new(),
            name_keeper: None,
            cluster_registry: None,
            supervised: BTreeMap::new(),
            held: BTreeMap::new(),
            me: Weak::new(),
        };
        let node = Node {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(state),
            }),
        };
        node.lock().me = Arc::downgrade(&node.shared);
        node.join_world();
        node
    }

    /// Starts a node; with `config.listen` set it binds there and starts talking to its peers.
    pub async fn start(config: NodeConfig) -> std::io::Result<Node> {
        let listen = config.listen;
        let node = Node::with_config(config);
        if let Some(addr) = listen {
            crate::net::start(&node, addr).await?;
        }
        Ok(node)
    }

    pub(crate) fn set_kick(&self, kick: mpsc::UnboundedSender<()>) {
        self.lock().kick = Some(kick);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn index(&self) -> u32 {
        self.shared.config.index
    }

    pub fn incarnation(&self) -> u64 {
        self.shared.config.incarnation
    }

    pub fn config(&self) -> &NodeConfig {
        &self.shared.config
    }

    /// Whether `pid` is a live local process, or (remote) whether its node is not known down.
    /// The answer can be stale by the time it is used; a monitor is the race-free way.
    pub fn is_alive(&self, pid: Pid) -> bool {
        let mut st = self.lock();
        if st.is_local(pid) {
            st.entry(pid).is_some()
        } else {
            st.peer_up(pid.node)
        }
    }

    /// Pids of the live local processes, in spawn order.
    pub fn processes(&self) -> Vec<Pid> {
        let st = self.lock();
        st.procs
            .keys()
            .map(|id| Pid {
                node: st.index,
                incarnation: st.incarnation,
                id: *id,
            })
            .collect()
    }

    /// Sends `reason` as an exit signal from `from` to `to`, as `Ctx::exit` does.
    pub fn exit(&self, from: Pid, to: Pid, reason: ExitReason) {
        self.lock().send_exit(from, to, reason, false);
    }

    /// The address distribution listens on, once started.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.lock().listen_addr
    }

    /// The distribution layer's counters (all zero before it starts).
    pub fn net_stats(&self) -> NetStats {
        self.lock()
            .auth
            .as_ref()
            .map(Auth::stats)
            .unwrap_or_default()
    }

    /// The peers this node is connected to now, in index order (OTP's `nodes()`): heard from
    /// (an authenticated frame or handshake), then not silent past the failure detector's
    /// `down_after` and not declared down. A configured peer never heard from is not listed,
    /// nor is any peer of a node that is not distributed.
    pub fn nodes(&self) -> Vec<u32> {
        let st = self.lock();
        let heard = |n: &u32| st.peers.get(n).is_some_and(|p| p.was_heard());
        st.peers
            .keys()
            .copied()
            .filter(|n| heard(n) && st.peer_up(*n))
            .collect()
    }

    /// Stops distribution: closes the socket, so peers stop hearing from this node (they will
    /// declare it down); locally every remote pid becomes unreachable.
    pub fn stop_distribution(&self) {
        let mut st = self.lock();
        for task in st.net_tasks.drain(..) {
            task.abort();
        }
        st.kick = None;
        st.distributed = false;
        st.listen_addr = None;
    }

    /// Runs one of the node's own service tasks (network, call deadlines). They are the node's
    /// kernel: if one panics, the failure is traced (`task-failed`) and the node shuts down, so
    /// its processes' links and monitors fire and its peers see it go. A node never lives on
    /// half-dead with a service silently gone.
    pub(crate) fn spawn_service<F>(&self, name: &'static str, service: F) -> rt::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        use futures::FutureExt;
        let node = Arc::downgrade(&self.shared);
        let index = self.index();
        rt::spawn(async move {
            if let Err(panic) = std::panic::AssertUnwindSafe(service).catch_unwind().await {
                let why = spawn::panic_message(&*panic);
                event!(
                    "task-failed",
                    node = index,
                    task = name,
                    reason = why.as_str()
                );
                if let Some(shared) = node.upgrade() {
                    Node { shared }.shutdown();
                }
            }
        })
    }

    /// Stops distribution and kills every process: each exits with `Killed`.
    pub fn shutdown(&self) {
        self.stop_distribution();
        let mut st = self.lock();
        st.sweeper = None;
        if let Some(task) = st.sweeper_task.take() {
            task.abort();
        }
        let ids: Vec<u64> = st.procs.keys().copied().collect();
        for id in ids {
            st.kill(id, ExitReason::Killed);
        }
    }
}

#[cfg(test)]
mod tests;
