//! The local backend: names of this node's processes, kept in the node's own table.
//!
//! A keeper process holds one monitor per name; its `Down` removes the name. If the keeper
//! itself dies, its monitors die with it and every name turns invisible until the next registry
//! operation starts a new keeper, which monitors every entry again (a dead process gets its
//! `NoProc` at once), so a keeper crash loses no live name and resurrects no dead one.

use super::{Backend, RegistryError};
use crate::node::State;
use crate::{event, Ctx, Event, ExitReason, Node, Pid, Ref};

/// The node-local name of the local backend's keeper process.
pub const KEEPER_NAME: &str = "groundhog.registry.keeper";

/// One name in the node's table, with the keeper's monitor on its holder.
pub(crate) struct Named {
    pub(crate) pid: Pid,
    pub(crate) monitor: Ref,
}

pub(crate) struct LocalBackend {
    node: Node,
}

impl LocalBackend {
    pub(crate) fn new(node: Node) -> LocalBackend {
        LocalBackend { node }
    }
}

/// The live keeper, started (and handed every entry) if there is none.
pub(crate) fn ensure_keeper(node: &Node) -> Result<Pid, RegistryError> {
    {
        let mut st = node.lock();
        if let Some(keeper) = st.name_keeper {
            if st.entry(keeper).is_some() {
                return Ok(keeper);
            }
        }
    }
    let keeper = node.spawn("registry-keeper", keeper_loop);
    let mut st = node.lock();
    if st.entry(keeper).is_none() {
        return Err(RegistryError::NoRegistry);
    }
    st.name_keeper = Some(keeper);
    // The keeper names itself (visible while it lives), so tools and tests can find it.
    let monitor = st.make_ref();
    st.monitor(monitor, keeper, keeper, false);
    st.names.insert(
        KEEPER_NAME.to_string(),
        Named {
            pid: keeper,
            monitor,
        },
    );
    let names: Vec<(String, Pid)> = st.names.iter().map(|(n, e)| (n.clone(), e.pid)).collect();
    for (name, pid) in names {
        let monitor = st.make_ref();
        st.monitor(monitor, keeper, pid, false);
        st.names.insert(name, Named { pid, monitor });
    }
    Ok(keeper)
}

async fn keeper_loop(mut ctx: Ctx<()>) -> ExitReason {
    loop {
        if let Event::Down {
            reference,
            pid,
            reason,
        } = ctx.recv().await
        {
            let mut st = ctx.node().lock();
            let gone: Vec<String> = st
                .names
                .iter()
                .filter(|(_, e)| e.monitor == reference)
                .map(|(n, _)| n.clone())
                .collect();
            for name in gone {
                st.names.remove(&name);
                event!("unregister", node = st.index, name = name.as_str(), pid = %pid, backend = "local", why = %reason);
            }
        }
    }
}

/// Names local process `pid` under the node lock; `keeper` must be the live keeper.
pub(crate) fn register_locked(
    st: &mut State,
    keeper: Pid,
    name: &str,
    pid: Pid,
) -> Result<(), RegistryError> {
    if pid.node != st.index {
        return Err(RegistryError::NotLocal {
            pid,
            node: st.index,
        });
    }
    if st.entry(keeper).is_none() {
        return Err(RegistryError::NoRegistry);
    }
    if st.entry(pid).is_none() {
        return Err(RegistryError::NotAlive(pid));
    }
    if let Some(holder) = st.whereis_name(name) {
        return Err(RegistryError::AlreadyRegistered {
            name: name.to_string(),
            holder,
        });
    }
    let monitor = st.make_ref();
    st.monitor(monitor, keeper, pid, false);
    st.names.insert(name.to_string(), Named { pid, monitor });
    event!("register", node = st.index, name = name, pid = %pid, backend = "local");
    Ok(())
}

impl Backend for LocalBackend {
    fn register(&self, name: &str, pid: Pid) -> Result<(), RegistryError> {
        let keeper = ensure_keeper(&self.node)?;
        register_locked(&mut self.node.lock(), keeper, name, pid)
    }

    fn unregister(&self, name: &str) -> Result<Pid, RegistryError> {
        let _ = ensure_keeper(&self.node);
        let mut st = self.node.lock();
        let visible = st.whereis_name(name);
        let Some(entry) = st.names.remove(name) else {
            return Err(RegistryError::NotRegistered(name.to_string()));
        };
        st.demonitor(entry.monitor);
        match visible {
            Some(pid) => {
                event!("unregister", node = st.index, name = name, pid = %pid, backend = "local", why = "asked");
                Ok(pid)
            }
            None => Err(RegistryError::NotRegistered(name.to_string())),
        }
    }

    fn whereis(&self, name: &str) -> Option<Pid> {
        let _ = ensure_keeper(&self.node);
        self.node.lock().whereis_name(name)
    }

    fn registered(&self) -> Vec<(String, Pid)> {
        let _ = ensure_keeper(&self.node);
        let st = self.node.lock();
        st.names
            .keys()
            .filter_map(|n| st.whereis_name(n).map(|pid| (n.clone(), pid)))
            .collect()
    }
}
