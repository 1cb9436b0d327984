//! Addressing a process by a name registered on its node (`{name, node}` in Erlang terms).
//!
//! The table itself is the local registry backend's (`registry/local.rs`); this file only routes
//! messages to it, locally or over the wire. An unknown name drops the message and traces it
//! (`drop reason=no-name`), as a send to a dead pid would be dropped remotely.

use std::collections::BTreeMap;

use super::{Node, State};
use crate::mailbox::{Payload, Signal};
use crate::registry::{cluster::Replica, local::Named, Host};
use crate::wire::Wire;
use crate::{event, Message, Pid, Ref, SendError};

/// All the registries may touch of a node: its identity, monitors by reference, one liveness
/// query per kind (monitor, local process), sends, and the registries' own tables.
impl Host for State {
    fn node_index(&self) -> u32 {
        self.index
    }

    fn peer_nodes(&self) -> Vec<u32> {
        self.peers
            .keys()
            .copied()
            .filter(|n| *n != self.index)
            .collect()
    }

    fn new_ref(&mut self) -> Ref {
        self.make_ref()
    }

    fn watch(&mut self, reference: Ref, watcher: Pid, target: Pid) {
        self.monitor(reference, watcher, target, false);
    }

    fn unwatch(&mut self, reference: Ref) {
        self.demonitor(reference);
    }

    fn monitor_live(&self, reference: Ref) -> bool {
        self.watching
            .get(&reference)
            .is_some_and(|w| w.target.node == self.index || self.peer_up(w.target.node))
    }

    fn process_live(&self, pid: Pid) -> bool {
        pid.node == self.index
            && pid.incarnation == self.incarnation
            && self.procs.contains_key(&pid.id)
    }

    fn send_to<T: Message>(&mut self, from: Pid, to: Pid, msg: T) -> Result<(), SendError<T>> {
        self.send(from, to, msg)
    }

    fn send_to_named<T: Message>(
        &mut self,
        from: Pid,
        node: u32,
        name: &str,
        msg: T,
    ) -> Result<(), SendError<T>> {
        self.send_name(from, node, name, msg)
    }

    fn local_names(&self) -> &BTreeMap<String, Named> {
        &self.names
    }

    fn local_names_mut(&mut self) -> &mut BTreeMap<String, Named> {
        &mut self.names
    }

    fn keeper_slot(&mut self) -> &mut Option<Pid> {
        &mut self.name_keeper
    }

    fn replica_slot(&mut self) -> &mut Option<Replica> {
        &mut self.cluster_registry
    }
}

impl State {
    /// The live process registered as `name` here (the local registry's rule).
    pub(crate) fn whereis_name(&self, name: &str) -> Option<Pid> {
        crate::registry::local::whereis(self, name)
    }

    pub(crate) fn send_name<T: Message>(
        &mut self,
        from: Pid,
        node: u32,
        name: &str,
        msg: T,
    ) -> Result<(), SendError<T>> {
        event!("send", node = from.node, from = %from, to_node = node, name = name);
        if node == self.index {
            self.deliver_to_name(from, name, Payload::Local(Box::new(msg)));
            return Ok(());
        }
        let to = Pid {
            node,
            incarnation: 0,
            id: 0,
        };
        let (payload, _) = super::calls::encode(to, msg)?;
        self.route(
            node,
            Wire::SendName {
                from,
                name: name.to_string(),
                payload,
            },
        );
        Ok(())
    }

    pub(crate) fn deliver_to_name(&mut self, from: Pid, name: &str, payload: Payload) {
        match self.whereis_name(name) {
            Some(to) => {
                let _ = self.deliver(to, Signal::Msg { from, payload });
            }
            None => {
                event!("drop", node = self.index, from = %from, name = name, reason = "no-name");
            }
        }
    }
}

impl Node {
    /// Sends `msg` from `from` to the process registered as `name` on node `node` (this node or a
    /// peer). An unknown name, or an unreachable node, drops the message (traced), as a remote
    /// send to a dead pid would; errors are only those found before anything left this node.
    pub fn send_to_name<T: Message>(
        &self,
        from: Pid,
        node: u32,
        name: &str,
        msg: T,
    ) -> Result<(), SendError<T>> {
        self.lock().send_name(from, node, name, msg)
    }
}
