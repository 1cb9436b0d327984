//! The peer watcher: which other nodes this one sees, and the `event` lines when that changes.
//!
//! A peer counts as up here while its echo service (`echo-<ID>`, held by a process of node
//! `ID`) is visible in this node's cluster registry: that takes a registry push from the peer
//! over a live session, and the registry drops the name when the runtime declares the peer down
//! (its monitor fires `NoConnection`) or the process exits. The watcher looks at the registry
//! every [`SCAN_EVERY`] and monitors each echo server it finds; `peer-up` comes from the scan,
//! `peer-down` from that monitor's `Down`, with the `Down`'s reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::Duration;
use groundhog_runtime::{Ctx, Event, ExitReason, Pid, Ref, Registry};

use crate::{echo_name, lock, say};

/// How often the watcher reads the registry (its own table: no network traffic).
pub(crate) const SCAN_EVERY: Duration = Duration::from_millis(50);

/// The peers seen up, by node id, with their echo server's pid.
pub(crate) type Peers = Arc<Mutex<BTreeMap<u32, Pid>>>;

/// The echo servers of other nodes that `names` shows, by node id.
pub(crate) fn echo_servers(me: u32, names: &[(String, Pid)]) -> BTreeMap<u32, Pid> {
    names
        .iter()
        .filter(|(name, pid)| pid.node != me && *name == echo_name(pid.node))
        .map(|(_, pid)| (pid.node, *pid))
        .collect()
}

pub(crate) async fn run(mut ctx: Ctx<()>, registry: Registry, peers: Peers) -> ExitReason {
    let me = ctx.pid().node;
    let mut monitors: BTreeMap<Ref, Pid> = BTreeMap::new();
    // Echo servers whose `Down` arrived: never up again (a restarted peer has a new pid).
    let mut gone: BTreeSet<Pid> = BTreeSet::new();
    ctx.send_after(SCAN_EVERY, 0);
    loop {
        match ctx.recv().await {
            Event::Timer { .. } => {
                let seen = echo_servers(me, &registry.registered());
                for (id, pid) in seen {
                    // A peer already up stays as it is until its `Down`; a new incarnation's
                    // server comes up once the old one's `Down` has been reported.
                    if gone.contains(&pid) || lock(&peers).contains_key(&id) {
                        continue;
                    }
                    monitors.insert(ctx.monitor(pid), pid);
                    lock(&peers).insert(id, pid);
                    say(&format!("event peer-up {id} {pid}"));
                }
                ctx.send_after(SCAN_EVERY, 0);
            }
            Event::Down {
                reference, reason, ..
            } => {
                let Some(pid) = monitors.remove(&reference) else {
                    continue;
                };
                gone.insert(pid);
                let mut up = lock(&peers);
                if up.get(&pid.node) == Some(&pid) {
                    up.remove(&pid.node);
                    drop(up);
                    say(&format!("event peer-down {} {reason}", pid.node));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_other_nodes_echo_servers_count() {
        let pid = |node, id| Pid {
            node,
            incarnation: 7,
            id,
        };
        let names = vec![
            ("echo-0".to_string(), pid(0, 3)),
            ("echo-1".to_string(), pid(1, 3)),
            // Someone else's name, and an echo name held by another node's process.
            ("other".to_string(), pid(2, 4)),
            ("echo-5".to_string(), pid(2, 5)),
            ("echo-2".to_string(), pid(2, 3)),
        ];
        let seen = echo_servers(0, &names);
        assert_eq!(seen, [(1, pid(1, 3)), (2, pid(2, 3))].into());
    }
}
