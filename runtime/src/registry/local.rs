//! The local backend: names of this node's processes, kept in the node's own table.
//!
//! A name is visible while its holder is a live process of this node; a keeper process holds one
//! monitor per name, and its `Down` removes the entry (the process left the table in the same
//! step as that `Down` fired, so `whereis` never returns a pid whose `Down` the keeper has been
//! given). If the keeper itself dies, names stay visible (to `whereis`, `send_to_name` and the
//! cluster replicas' pushes, which are addressed by a local name); the next registry operation
//! starts a new keeper, which monitors every entry again, and a holder that died meanwhile gets
//! its `NoProc` at once. So a keeper crash loses no live name and resurrects no dead one.
//!
//! A process holds at most one name here (as in OTP): a second one is `AlreadyNamed`.

use super::{Host, RegistryError};
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

/// The live holder of `name` on this node.
pub(crate) fn whereis(st: &impl Host, name: &str) -> Option<Pid> {
    st.local_names()
        .get(name)
        .map(|named| named.pid)
        .filter(|pid| st.process_live(*pid))
}

/// The name live process `pid` holds, if any.
fn name_of(st: &impl Host, pid: Pid) -> Option<String> {
    st.local_names()
        .iter()
        .find(|(_, named)| named.pid == pid)
        .map(|(name, _)| name.clone())
        .filter(|_| st.process_live(pid))
}

/// The live keeper, started (and handed every entry) if there is none.
pub(crate) fn ensure_keeper(node: &Node) -> Result<Pid, RegistryError> {
    {
        let mut st = node.lock();
        if let Some(keeper) = *st.keeper_slot() {
            if st.process_live(keeper) {
                return Ok(keeper);
            }
        }
    }
    let keeper = node.spawn("registry-keeper", keeper_loop);
    let mut guard = node.lock();
    let st = &mut *guard;
    if !st.process_live(keeper) {
        return Err(RegistryError::NoRegistry);
    }
    *st.keeper_slot() = Some(keeper);
    // The keeper names itself (visible while it lives), so tools and tests can find it.
    let monitor = st.new_ref();
    st.watch(monitor, keeper, keeper);
    st.local_names_mut().insert(
        KEEPER_NAME.to_string(),
        Named {
            pid: keeper,
            monitor,
        },
    );
    let names: Vec<(String, Pid)> = st
        .local_names()
        .iter()
        .map(|(n, e)| (n.clone(), e.pid))
        .collect();
    for (name, pid) in names {
        let monitor = st.new_ref();
        st.watch(monitor, keeper, pid);
        st.local_names_mut().insert(name, Named { pid, monitor });
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
            let mut guard = ctx.node().lock();
            let st = &mut *guard;
            let gone: Vec<String> = st
                .local_names()
                .iter()
                .filter(|(_, e)| e.monitor == reference)
                .map(|(n, _)| n.clone())
                .collect();
            for name in gone {
                st.local_names_mut().remove(&name);
                event!("unregister", node = st.node_index(), name = name.as_str(), pid = %pid, backend = "local", why = %reason);
            }
        }
    }
}

/// Names local process `pid` under the node lock; `keeper` must be the live keeper.
pub(crate) fn register_locked(
    st: &mut impl Host,
    keeper: Pid,
    name: &str,
    pid: Pid,
) -> Result<(), RegistryError> {
    let index = st.node_index();
    if pid.node != index {
        return Err(RegistryError::NotLocal { pid, node: index });
    }
    if !st.process_live(keeper) {
        return Err(RegistryError::NoRegistry);
    }
    if !st.process_live(pid) {
        return Err(RegistryError::NotAlive(pid));
    }
    if let Some(holder) = whereis(st, name) {
        return Err(RegistryError::AlreadyRegistered {
            name: name.to_string(),
            holder,
        });
    }
    if let Some(held) = name_of(st, pid) {
        return Err(RegistryError::AlreadyNamed { pid, name: held });
    }
    let monitor = st.new_ref();
    st.watch(monitor, keeper, pid);
    if let Some(old) = st
        .local_names_mut()
        .insert(name.to_string(), Named { pid, monitor })
    {
        // A dead holder's entry the keeper had not removed yet.
        st.unwatch(old.monitor);
    }
    event!("register", node = index, name = name, pid = %pid, backend = "local");
    Ok(())
}

impl super::Backend for LocalBackend {
    fn register(&self, name: &str, pid: Pid) -> Result<(), RegistryError> {
        let keeper = ensure_keeper(&self.node)?;
        register_locked(&mut *self.node.lock(), keeper, name, pid)
    }

    fn unregister(&self, name: &str) -> Result<Pid, RegistryError> {
        let _ = ensure_keeper(&self.node);
        let mut guard = self.node.lock();
        let st = &mut *guard;
        let visible = whereis(st, name);
        let Some(entry) = st.local_names_mut().remove(name) else {
            return Err(RegistryError::NotRegistered(name.to_string()));
        };
        st.unwatch(entry.monitor);
        match visible {
            Some(pid) => {
                event!("unregister", node = st.node_index(), name = name, pid = %pid, backend = "local", why = "asked");
                Ok(pid)
            }
            None => Err(RegistryError::NotRegistered(name.to_string())),
        }
    }

    fn whereis(&self, name: &str) -> Option<Pid> {
        let _ = ensure_keeper(&self.node);
        whereis(&*self.node.lock(), name)
    }

    fn registered(&self) -> Vec<(String, Pid)> {
        let _ = ensure_keeper(&self.node);
        let st = self.node.lock();
        st.local_names()
            .keys()
            .filter_map(|n| whereis(&*st, n).map(|pid| (n.clone(), pid)))
            .collect()
    }
}
