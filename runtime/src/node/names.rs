//! Addressing a process by a name registered on its node (`{name, node}` in Erlang terms).
//!
//! The table itself is the local registry backend's (`registry/local.rs`); this file only routes
//! messages to it, locally or over the wire. An unknown name drops the message and traces it
//! (`drop reason=no-name`), as a send to a dead pid would be dropped remotely.

use super::{Node, State};
use crate::mailbox::{Payload, Signal};
use crate::wire::Wire;
use crate::{event, Message, Pid, SendError};

impl State {
    /// The live process registered as `name` here: an entry counts only while the monitor the
    /// registry holds on it is live, so a name never resolves to a process whose `Down` fired.
    pub(crate) fn whereis_name(&self, name: &str) -> Option<Pid> {
        self.names
            .get(name)
            .filter(|named| self.watching.contains_key(&named.monitor))
            .map(|named| named.pid)
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
