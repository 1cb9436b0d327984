//! The cluster backend: one replica process per node, names consistent across nodes.
//!
//! - **Ownership.** A node owns the names of its own processes: only it registers or
//!   unregisters them, and it pushes its whole owned set ([`Owned`]) to every peer's replica
//!   (addressed by the node-local name [`REPLICA_NAME`]) on every change and every
//!   [`SYNC_EVERY`]. Between two replicas messages arrive in order, so a peer's view of a node's
//!   names is that node's set as of its last message.
//! - **Cleanup.** Each replica monitors every pid it holds. A `Down` (the process exited, or
//!   `NoConnection`: its node was declared down, crashed or partitioned away) removes the name;
//!   until the replica handles it the entry is already invisible.
//! - **Conflicts.** A name held by two processes (registered on both sides of a partition) is
//!   resolved the same way on every replica: the earlier registration wins, ordered by
//!   (registration time on the runtime clock, pid). The loser's own node drops it and sends
//!   the loser a [`NameConflict`]; every replica traces `name-conflict`.
//! - **Restarts.** A restarted node starts with no names (its processes died with it) and
//!   learns everyone else's from their next push. A crashed replica process is restarted by the
//!   next registry call, and monitors its entries again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::local::{ensure_keeper, register_locked};
use super::{Backend, NameConflict, RegistryError};
use crate::node::State;
use crate::rt::{self, Duration};
use crate::{event, Ctx, Event, ExitReason, Node, Pid, Ref};

/// The node-local name of every node's replica.
pub const REPLICA_NAME: &str = "groundhog.registry";

/// How often a replica pushes its owned names to its peers (anti-entropy after heals).
pub const SYNC_EVERY: Duration = Duration::from_millis(300);

/// A node's complete set of owned names: (name, pid, registration time in ns).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Owned {
    node: u32,
    names: Vec<(String, Pid, u64)>,
}

struct Held {
    pid: Pid,
    at: u64,
    monitor: Ref,
}

impl Held {
    fn rank(&self) -> (u64, Pid) {
        (self.at, self.pid)
    }
}

/// A node's replica: its process and the names it holds (its own and its peers').
pub(crate) struct Replica {
    pub(crate) pid: Pid,
    peers: Vec<u32>,
    entries: BTreeMap<String, Held>,
}

impl State {
    fn visible(&self, held: &Held) -> bool {
        self.watching.contains_key(&held.monitor)
    }

    /// Runs `f` on the replica table, taken out of the node state so both can be used.
    fn with_replica<T>(&mut self, f: impl FnOnce(&mut State, &mut Replica) -> T) -> Option<T> {
        let mut replica = self.cluster_registry.take()?;
        let out = f(self, &mut replica);
        self.cluster_registry = Some(replica);
        Some(out)
    }
}

fn now_ns() -> u64 {
    rt::elapsed().as_nanos() as u64
}

/// Pushes this node's owned (visible) names to every peer's replica.
fn push(st: &mut State, replica: &Replica) {
    let names: Vec<(String, Pid, u64)> = replica
        .entries
        .iter()
        .filter(|(_, h)| h.pid.node == st.index && st.visible(h))
        .map(|(n, h)| (n.clone(), h.pid, h.at))
        .collect();
    let owned = Owned {
        node: st.index,
        names,
    };
    for peer in &replica.peers {
        let _ = st.send_name(replica.pid, *peer, REPLICA_NAME, owned.clone());
    }
}

fn hold(st: &mut State, replica: &mut Replica, name: &str, pid: Pid, at: u64) {
    let monitor = st.make_ref();
    st.monitor(monitor, replica.pid, pid, false);
    if let Some(old) = replica
        .entries
        .insert(name.to_string(), Held { pid, at, monitor })
    {
        st.demonitor(old.monitor);
    }
}

/// A peer's owned set arrived: take its names, drop the ones it no longer owns, and resolve
/// names held by two processes.
fn apply(st: &mut State, replica: &mut Replica, owned: Owned) {
    let from = owned.node;
    let stale: Vec<String> = replica
        .entries
        .iter()
        .filter(|(n, h)| {
            h.pid.node == from && !owned.names.iter().any(|(m, p, _)| m == *n && *p == h.pid)
        })
        .map(|(n, _)| n.clone())
        .collect();
    for name in stale {
        if let Some(h) = replica.entries.remove(&name) {
            st.demonitor(h.monitor);
            event!("unregister", node = st.index, name = name.as_str(), pid = %h.pid, backend = "cluster", why = "owner-dropped");
        }
    }
    let mut lost_own = false;
    for (name, pid, at) in owned.names {
        if pid.node != from {
            continue;
        }
        let current = replica
            .entries
            .get(&name)
            .map(|h| (h.pid, h.rank(), st.visible(h)));
        match current {
            Some((held, _, true)) if held == pid => continue,
            Some((held, rank, true)) if rank < (at, pid) => {
                event!("name-conflict", node = st.index, name = name.as_str(), winner = %held, loser = %pid);
                continue;
            }
            Some((held, _, true)) => {
                event!("name-conflict", node = st.index, name = name.as_str(), winner = %pid, loser = %held);
                if held.node == st.index {
                    lost_own = true;
                    let _ = st.send(
                        replica.pid,
                        held,
                        NameConflict {
                            name: name.clone(),
                            winner: pid,
                        },
                    );
                }
            }
            _ => {}
        }
        hold(st, replica, &name, pid, at);
    }
    if lost_own {
        push(st, replica);
    }
}

fn on_down(st: &mut State, replica: &mut Replica, reference: Ref, reason: &ExitReason) {
    let gone: Vec<String> = replica
        .entries
        .iter()
        .filter(|(_, h)| h.monitor == reference)
        .map(|(n, _)| n.clone())
        .collect();
    let mut own = false;
    for name in gone {
        if let Some(h) = replica.entries.remove(&name) {
            own |= h.pid.node == st.index;
            event!("unregister", node = st.index, name = name.as_str(), pid = %h.pid, backend = "cluster", why = %reason);
        }
    }
    if own {
        push(st, replica);
    }
}

async fn replica_loop(mut ctx: Ctx<Owned>) -> ExitReason {
    ctx.send_after(SYNC_EVERY, 0);
    loop {
        match ctx.recv().await {
            Event::Msg { msg, .. } => {
                ctx.node().lock().with_replica(|st, r| apply(st, r, msg));
            }
            Event::Down {
                reference, reason, ..
            } => {
                ctx.node()
                    .lock()
                    .with_replica(|st, r| on_down(st, r, reference, &reason));
            }
            Event::Timer { .. } => {
                ctx.node().lock().with_replica(|st, r| push(st, r));
                ctx.send_after(SYNC_EVERY, 0);
            }
            _ => {}
        }
    }
}

/// The live replica process, started if there is none. A new replica monitors every entry
/// again, names itself [`REPLICA_NAME`] here and pushes its owned names at once.
fn ensure_replica(node: &Node) -> Result<Pid, RegistryError> {
    {
        let mut st = node.lock();
        if let Some(pid) = st.cluster_registry.as_ref().map(|r| r.pid) {
            if st.entry(pid).is_some() {
                return Ok(pid);
            }
        }
    }
    let keeper = ensure_keeper(node)?;
    let pid = node.spawn("registry-replica", replica_loop);
    let mut st = node.lock();
    register_locked(&mut st, keeper, REPLICA_NAME, pid)?;
    let replica = st.cluster_registry.take().unwrap_or_else(|| Replica {
        pid,
        peers: node.config().peers.keys().copied().collect(),
        entries: BTreeMap::new(),
    });
    let mut replica = Replica { pid, ..replica };
    let held: Vec<(String, Pid, u64)> = replica
        .entries
        .iter()
        .map(|(n, h)| (n.clone(), h.pid, h.at))
        .collect();
    for (name, holder, at) in held {
        hold(&mut st, &mut replica, &name, holder, at);
    }
    event!("registry-replica", node = st.index, pid = %pid, names = replica.entries.len());
    push(&mut st, &replica);
    st.cluster_registry = Some(replica);
    Ok(pid)
}

pub(crate) struct ClusterBackend {
    node: Node,
}

impl ClusterBackend {
    pub(crate) fn new(node: Node) -> ClusterBackend {
        let _ = ensure_replica(&node);
        ClusterBackend { node }
    }
}

impl Backend for ClusterBackend {
    fn register(&self, name: &str, pid: Pid) -> Result<(), RegistryError> {
        ensure_replica(&self.node)?;
        let mut st = self.node.lock();
        if pid.node != st.index {
            return Err(RegistryError::NotLocal {
                pid,
                node: st.index,
            });
        }
        if st.entry(pid).is_none() {
            return Err(RegistryError::NotAlive(pid));
        }
        st.with_replica(|st, r| {
            if let Some(h) = r.entries.get(name).filter(|h| st.visible(h)) {
                return Err(RegistryError::AlreadyRegistered {
                    name: name.to_string(),
                    holder: h.pid,
                });
            }
            hold(st, r, name, pid, now_ns());
            event!("register", node = st.index, name = name, pid = %pid, backend = "cluster");
            push(st, r);
            Ok(())
        })
        .unwrap_or(Err(RegistryError::NoRegistry))
    }

    fn unregister(&self, name: &str) -> Result<Pid, RegistryError> {
        let _ = ensure_replica(&self.node);
        let mut st = self.node.lock();
        st.with_replica(|st, r| {
            let holder = r
                .entries
                .get(name)
                .filter(|h| st.visible(h))
                .map(|h| h.pid)
                .ok_or_else(|| RegistryError::NotRegistered(name.to_string()))?;
            if holder.node != st.index {
                return Err(RegistryError::NotLocal {
                    pid: holder,
                    node: st.index,
                });
            }
            if let Some(h) = r.entries.remove(name) {
                st.demonitor(h.monitor);
            }
            event!("unregister", node = st.index, name = name, pid = %holder, backend = "cluster", why = "asked");
            push(st, r);
            Ok(holder)
        })
        .unwrap_or(Err(RegistryError::NoRegistry))
    }

    fn whereis(&self, name: &str) -> Option<Pid> {
        let _ = ensure_replica(&self.node);
        let mut st = self.node.lock();
        st.with_replica(|st, r| r.entries.get(name).filter(|h| st.visible(h)).map(|h| h.pid))
            .flatten()
    }

    fn registered(&self) -> Vec<(String, Pid)> {
        let _ = ensure_replica(&self.node);
        let mut st = self.node.lock();
        st.with_replica(|st, r| {
            r.entries
                .iter()
                .filter(|(_, h)| st.visible(h))
                .map(|(n, h)| (n.clone(), h.pid))
                .collect()
        })
        .unwrap_or_default()
    }
}
