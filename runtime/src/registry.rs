//! The process registry: names for processes, over a small [`Backend`] trait.
//!
//! [`Registry`] is the one API (`register`, `unregister`, `whereis`, `registered`); it only ever
//! goes through its backend. Two backends:
//!
//! - [`Registry::local`]: names of this node's processes, in the node's own table (the table
//!   [`Node::send_to_name`] resolves). A keeper process monitors every registered pid.
//! - [`Registry::cluster`]: names consistent across the cluster. One replica process per node;
//!   each node owns the names of its own processes and pushes them to every peer's replica.
//!
//! In both, a name disappears when its process dies or its node is declared down, driven by the
//! monitor the registry holds on it (no polling): a cluster entry is visible only while that
//! monitor is live, a local one while its holder lives (which ends in the same step its monitors
//! fire), so `whereis` never returns a pid whose `Down` the registry has been given. A process
//! holds at most one name per registry. The backends reach their node only through [`Host`].
//! See `docs/semantics.md` (Registry) for the guarantees between connected nodes, during a
//! partition and after a heal.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Message, Node, Pid, Ref, SendError};

pub(crate) mod cluster;
pub(crate) mod local;

pub use cluster::{REPLICA_NAME, SYNC_EVERY};
pub use local::KEEPER_NAME;

/// Why a registry operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("`{name}` is already registered to {holder}")]
    AlreadyRegistered { name: String, holder: Pid },
    /// A process holds at most one name per registry (as in OTP): `pid` already holds `name`.
    #[error("{pid} is already registered as `{name}`")]
    AlreadyNamed { pid: Pid, name: String },
    #[error("{0} is not alive")]
    NotAlive(Pid),
    /// A backend only registers processes of its own node (their node owns their names).
    #[error("{pid} is not a process of node {node}")]
    NotLocal { pid: Pid, node: u32 },
    #[error("`{0}` is not registered here")]
    NotRegistered(String),
    /// The registry's process could not be started (the node is shutting down).
    #[error("the registry process is not running")]
    NoRegistry,
}

/// Sent to a process that lost its cluster name to a conflicting claim (two nodes registered it
/// while neither saw the other's): `winner` holds it now. Claims are ordered by
/// `(stamp, pid)`, smaller first, and the smaller one wins: `(winner_stamp, winner)` is smaller
/// than `(loser_stamp, <the receiver>)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameConflict {
    pub name: String,
    pub winner: Pid,
    /// The winning registration's logical stamp.
    pub winner_stamp: u64,
    /// The receiver's registration's logical stamp.
    pub loser_stamp: u64,
}

/// What the registry backends need from their node, and all they may touch of it: the node's
/// own state implements it (`node/names.rs`). Visibility of a name rests on one query,
/// [`Host::monitor_live`] (cluster) or [`Host::process_live`] (local); the backends never read
/// the node's monitor or process tables.
pub(crate) trait Host {
    fn node_index(&self) -> u32;
    /// Every other node this one is configured with or has heard from.
    fn peer_nodes(&self) -> Vec<u32>;
    fn new_ref(&mut self) -> Ref;
    /// `watcher` (a local process) monitors `target` under `reference`.
    fn watch(&mut self, reference: Ref, watcher: Pid, target: Pid);
    fn unwatch(&mut self, reference: Ref);
    /// The narrow query: is this monitor still live (its `Down` not yet fired)?
    fn monitor_live(&self, reference: Ref) -> bool;
    /// Is `pid` a live process of this node (this incarnation, not exited)?
    fn process_live(&self, pid: Pid) -> bool;
    fn send_to<T: Message>(&mut self, from: Pid, to: Pid, msg: T) -> Result<(), SendError<T>>;
    fn send_to_named<T: Message>(
        &mut self,
        from: Pid,
        node: u32,
        name: &str,
        msg: T,
    ) -> Result<(), SendError<T>>;
    fn local_names(&self) -> &BTreeMap<String, local::Named>;
    fn local_names_mut(&mut self) -> &mut BTreeMap<String, local::Named>;
    fn keeper_slot(&mut self) -> &mut Option<Pid>;
    fn replica_slot(&mut self) -> &mut Option<cluster::Replica>;
}

/// Where a registry keeps its names. Every method is synchronous: reads come from a table,
/// never from a queue behind the registry's mailbox.
pub trait Backend: Send + Sync {
    /// Names `pid`, a live process of this backend's node.
    fn register(&self, name: &str, pid: Pid) -> Result<(), RegistryError>;
    /// Removes `name` (registered from this node); returns who held it.
    fn unregister(&self, name: &str) -> Result<Pid, RegistryError>;
    fn whereis(&self, name: &str) -> Option<Pid>;
    /// Every visible name, in name order.
    fn registered(&self) -> Vec<(String, Pid)>;
}

/// A handle on a registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    backend: Arc<dyn Backend>,
}

impl Registry {
    /// Any backend, e.g. a test double.
    pub fn new(backend: Arc<dyn Backend>) -> Registry {
        Registry { backend }
    }

    /// This node's local names (also what [`Node::send_to_name`] resolves).
    pub fn local(node: &Node) -> Registry {
        Registry::new(Arc::new(local::LocalBackend::new(node.clone())))
    }

    /// The cluster registry, through this node's replica (started on first use, and restarted
    /// if it crashed). Call it again in a restarted node's program.
    pub fn cluster(node: &Node) -> Registry {
        Registry::new(Arc::new(cluster::ClusterBackend::new(node.clone())))
    }

    pub fn register(&self, name: &str, pid: Pid) -> Result<(), RegistryError> {
        self.backend.register(name, pid)
    }

    pub fn unregister(&self, name: &str) -> Result<Pid, RegistryError> {
        self.backend.unregister(name)
    }

    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.backend.whereis(name)
    }

    pub fn registered(&self) -> Vec<(String, Pid)> {
        self.backend.registered()
    }
}

#[cfg(test)]
mod tests;
