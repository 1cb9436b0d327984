//! What a harness outside the node needs to aim a fault at one of its processes: the node itself
//! (found through the simulated world, not a static), and a process by id, by registered name,
//! or as a supervisor's child by id. The fault then acts like any exit signal, so links,
//! monitors and supervisors see it as usual.

use std::collections::BTreeMap;
use std::sync::{Mutex, Weak};

use super::{Node, Shared, State};
use crate::{rt, Pid, Registry};

/// The runtime nodes started in one simulated world, newest per index (held by the world).
#[derive(Default)]
pub(crate) struct WorldNodes(Mutex<BTreeMap<u32, Weak<Shared>>>);

impl Node {
    /// Makes this node the one [`Node::in_world`] finds for its index.
    pub(crate) fn join_world(&self) {
        if let Some(nodes) = rt::world_state::<WorldNodes>() {
            let mut table = nodes.0.lock().unwrap_or_else(|e| e.into_inner());
            table.insert(self.index(), std::sync::Arc::downgrade(&self.shared));
        }
    }

    /// The newest runtime node of index `index` alive in the current simulated world (a
    /// harness uses it to aim faults at processes); `None` outside a simulation, in the real
    /// build, or when no such node lives.
    pub fn in_world(index: u32) -> Option<Node> {
        let nodes = rt::world_state::<WorldNodes>()?;
        let table = nodes.0.lock().unwrap_or_else(|e| e.into_inner());
        let shared = table.get(&index)?.upgrade()?;
        Some(Node { shared })
    }

    /// The live local process with per-node id `id` in this incarnation.
    pub fn live_pid(&self, id: u64) -> Option<Pid> {
        let mut st = self.lock();
        let pid = Pid {
            node: st.index,
            incarnation: st.incarnation,
            id,
        };
        st.entry(pid).map(|_| pid)
    }

    /// The live process registered as `name` in this node's local registry.
    pub fn whereis_local(&self, name: &str) -> Option<Pid> {
        Registry::local(self).whereis(name)
    }

    /// The running child `child` (its spec id) of local supervisor `sup`, as the supervisor
    /// last started it; `None` when that child is not running.
    pub fn supervisor_child(&self, sup: Pid, child: &str) -> Option<Pid> {
        let mut st = self.lock();
        let pid = *st.supervised.get(&(sup, child.to_string()))?;
        st.entry(pid).map(|_| pid)
    }

    /// Supervisor `sup` started `child` as `pid` (`None`: it stopped).
    pub(crate) fn note_child(&self, sup: Pid, child: &str, pid: Option<Pid>) {
        let mut st = self.lock();
        match pid {
            Some(pid) => st.supervised.insert((sup, child.to_string()), pid),
            None => st.supervised.remove(&(sup, child.to_string())),
        };
    }
}

impl State {
    /// A supervisor exited: forget its children.
    pub(crate) fn forget_children(&mut self, sup: Pid) {
        let first = (sup, String::new());
        let gone: Vec<(Pid, String)> = self
            .supervised
            .range(first..)
            .take_while(|((s, _), _)| *s == sup)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.supervised.remove(&key);
        }
    }
}
