//! The node side of distribution: routing wire messages to peers, applying the ones that arrive,
//! and failing everything pending with a peer that goes down.

use std::net::SocketAddr;

use super::{Node, State};
use crate::auth::{Opened, PEER_LIMIT};
use crate::mailbox::{Payload, Refused, Signal};
use crate::rt::Instant;
use crate::session::{Peer, Unqueued};
use crate::trace::Digest;
use crate::wire::{Frame, Wire};
use crate::{event, CallError, ExitReason, Pid};

impl State {
    /// The session to `node`, created from the configured address on first use.
    fn peer(&mut self, node: u32, config_addr: Option<SocketAddr>) -> Option<&mut Peer> {
        if !self.distributed || node == self.index {
            return None;
        }
        if self.peers.len() >= PEER_LIMIT && !self.peers.contains_key(&node) {
            event!(
                "drop",
                node = self.index,
                peer = node,
                reason = "peer-table-full"
            );
            return None;
        }
        match self.peers.entry(node) {
            std::collections::btree_map::Entry::Occupied(e) => Some(e.into_mut()),
            std::collections::btree_map::Entry::Vacant(e) => {
                Some(e.insert(Peer::new(node, config_addr?, Instant::now())))
            }
        }
    }

    /// Whether `node` is reachable as far as this node knows (not declared down).
    /// A peer silent for longer than `down_after` counts as down here before the pump's next
    /// tick declares it (after a pause of this node, say, its first lookups must not trust
    /// what it heard before). A node that was stalled itself counts no peer as up until its
    /// pump's next tick has looked at them again (see [`State::stalled`]).
    pub(crate) fn peer_up(&self, node: u32) -> bool {
        let now = Instant::now();
        self.distributed
            && !self.stalled(now)
            && self
                .peers
                .get(&node)
                .is_some_and(|p| p.is_up() && !p.silent_for(now, self.down_after))
    }

    /// This node's own pump has not ticked for longer than a heartbeat plus `down_after`: the
    /// node itself was paused or starved. Its peers have declared it down by now, and frames it
    /// reads now may have waited in its socket the whole time, so hearing them says nothing
    /// about the peer's present; its next tick declares every peer down (`why=stall`).
    pub(crate) fn stalled(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_tick) > self.stall_after
    }

    /// Queues `wire` for `node`; if it cannot be queued (no session, the peer declared down,
    /// the outbound queue at its bound) the message is dropped and traced. Callers check
    /// [`State::peer_up`] first, or use [`State::try_route`], where the loss must be reported.
    pub(crate) fn route(&mut self, node: u32, wire: Wire) {
        let _ = self.try_route(node, wire);
    }

    /// [`State::route`], telling the caller why nothing was queued (the drop is traced).
    pub(crate) fn try_route(&mut self, node: u32, wire: Wire) -> Result<(), Unqueued> {
        let kind = wire.kind();
        let index = self.index;
        let queued = match self.peer(node, None) {
            Some(peer) => peer.enqueue(wire),
            None => {
                event!(
                    "drop",
                    node = index,
                    to_node = node,
                    msg = kind,
                    reason = "no-route"
                );
                return Err(Unqueued::Down);
            }
        };
        match queued {
            Ok(()) => self.kick(node),
            Err(why) => {
                event!(
                    "drop",
                    node = index,
                    to_node = node,
                    msg = kind,
                    reason = why.reason()
                );
                // An overflowed control queue is declared down at the pump's next tick.
                self.kick(node);
            }
        }
        queued
    }

    /// Traces what a session to `node` dropped from its queues (a node-down's backlog).
    pub(crate) fn trace_session_drops(&mut self, node: u32) {
        let index = self.index;
        if let Some(peer) = self.peers.get_mut(&node) {
            let dropped = peer.take_dropped();
            if dropped > 0 {
                event!(
                    "drop",
                    node = index,
                    peer = node,
                    reason = "node-down",
                    msgs = dropped
                );
            }
        }
    }

    /// Pushes a user message or call into a local mailbox, tracing the outcome.
    pub(crate) fn deliver(&mut self, to: Pid, signal: Signal) -> Result<(), Refused> {
        let (from, digest) = match &signal {
            Signal::Msg { from, payload } | Signal::Call { from, payload, .. } => match payload {
                Payload::Remote(bytes) => (*from, Some(Digest::of(bytes))),
                Payload::Local(_) => (*from, None),
            },
            _ => (to, None),
        };
        let result = match self.entry(to) {
            Some(entry) => entry.mailbox.push(signal),
            None => Err(Refused::Closed(signal)),
        };
        match &result {
            Ok(()) => match digest {
                Some(d) => event!("deliver", node = to.node, from = %from, to = %to, digest = %d),
                None => event!("deliver", node = to.node, from = %from, to = %to),
            },
            // User messages only come here; they never count against the signal bound.
            Err(Refused::Full(_) | Refused::Overflow) => {
                event!("drop", node = to.node, from = %from, to = %to, reason = "full")
            }
            Err(Refused::Closed(_)) => {
                event!("drop", node = to.node, from = %from, to = %to, reason = "noproc")
            }
        }
        result
    }

    /// Applies one message from a peer. A user message for a full mailbox is handed back, to be
    /// held by the session (not acknowledged, retried) rather than lost while the session is up.
    pub(crate) fn on_wire(&mut self, wire: Wire) -> Option<Wire> {
        match wire {
            Wire::Send { from, to, payload } => {
                let signal = Signal::Msg {
                    from,
                    payload: Payload::Remote(payload),
                };
                let pushed = match self.entry(to) {
                    Some(entry) => entry.mailbox.push(signal),
                    None => Err(Refused::Closed(signal)),
                };
                match pushed {
                    Ok(()) => event!("deliver", node = to.node, from = %from, to = %to),
                    Err(Refused::Full(Signal::Msg {
                        from,
                        payload: Payload::Remote(payload),
                    })) => {
                        event!("hold", node = to.node, from = %from, to = %to, reason = "full");
                        return Some(Wire::Send { from, to, payload });
                    }
                    Err(Refused::Full(_) | Refused::Overflow) => {
                        event!("drop", node = to.node, from = %from, to = %to, reason = "full")
                    }
                    Err(Refused::Closed(_)) => {
                        event!("drop", node = to.node, from = %from, to = %to, reason = "noproc")
                    }
                }
            }
            Wire::Call {
                from,
                to,
                reference,
                payload,
            } => {
                // The caller's monitor of `to` for the call's duration rides in the request:
                // set up before delivery (a missing `to` answers `Down noproc`), dropped when
                // the reply goes out or the call is refused.
                self.remote_monitor(reference, from, to);
                let payload = Payload::Remote(payload);
                let call = Signal::Call {
                    from,
                    reference,
                    payload,
                };
                if let Err(Refused::Full(_)) = self.deliver(to, call) {
                    self.drop_target_side(reference);
                    let refused = Wire::CallRefused {
                        to: from,
                        reference,
                    };
                    self.route(from.node, refused);
                }
            }
            Wire::CallRefused { reference, .. } => {
                // The callee's node has dropped the call's monitor already.
                self.forget_call_monitor(reference);
                if let Some(call) = self.calls.remove(&reference) {
                    let _ = call.send(Err(CallError::NotSent("mailbox full".into())));
                }
            }
            Wire::Reply {
                reference, payload, ..
            } => {
                // The callee's node dropped the call's monitor as it replied (a reply can only
                // come from there: the right to answer never leaves its node).
                self.forget_call_monitor(reference);
                self.complete_call(reference, Payload::Remote(payload));
            }
            Wire::Link { from, to } => self.remote_link(from, to),
            Wire::Unlink { from, to } => {
                if let Some(e) = self.entry(to) {
                    e.links.remove(&from);
                }
            }
            Wire::Exit {
                from,
                to,
                reason,
                linked,
            } => self.exit_signal(from, to, reason, linked),
            Wire::Monitor {
                reference,
                watcher,
                target,
            } => self.remote_monitor(reference, watcher, target),
            Wire::Demonitor { reference, .. } => self.drop_target_side(reference),
            Wire::Down {
                reference,
                pid,
                reason,
                ..
            } => self.fire_down(reference, pid, reason),
            Wire::SendName {
                from,
                name,
                payload,
            } => self.deliver_to_name(from, &name, Payload::Remote(payload)),
        }
        None
    }

    /// `node` is down: its monitors fire `NoConnection`, calls to it fail `NodeDown`, links to
    /// its processes fire `NoConnection`, and what its processes held here is dropped.
    pub(crate) fn peer_down(&mut self, node: u32, why: &str) {
        event!("node-down", node = self.index, peer = node, why = why);
        self.trace_session_drops(node);
        // Whatever ended the session, our next frames to the peer start with a new handshake
        // (a restarted peer has no key of ours; a healed one may have evicted it).
        if let Some(auth) = self.auth.as_mut() {
            auth.forget(node);
        }
        let watched: Vec<_> = self
            .watching
            .iter()
            .filter(|(_, w)| w.target.node == node)
            .map(|(r, w)| (*r, w.target))
            .collect();
        for (reference, target) in watched {
            self.fire_down(reference, target, ExitReason::NoConnection);
        }
        let held: Vec<_> = self
            .monitors
            .iter()
            .filter(|(_, (watcher, _))| watcher.node == node)
            .map(|(r, _)| *r)
            .collect();
        for reference in held {
            self.drop_target_side(reference);
        }
        let mut broken = Vec::new();
        for (id, entry) in &self.procs {
            for other in entry.links.iter().filter(|p| p.node == node) {
                broken.push((*other, *id));
            }
        }
        for (remote, id) in broken {
            let local = Pid {
                node: self.index,
                incarnation: self.incarnation,
                id,
            };
            self.exit_signal(remote, local, ExitReason::NoConnection, true);
        }
    }
}

impl Node {
    /// A datagram arrived from `from`: authenticated, then applied. Returns what must go back to
    /// `from` (the `Welcome` that answers a `Hello`); nothing else is ever answered.
    pub(crate) fn on_datagram(&self, bytes: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
        let mut st = self.lock();
        let index = st.index;
        match st.auth.as_mut()?.open(bytes) {
            Opened::Frame(frame) => {
                st.on_frame(frame, from);
                None
            }
            Opened::Answer(welcome) => Some(welcome),
            Opened::Ready(peer, incarnation) => {
                event!(
                    "handshake",
                    node = index,
                    peer = peer,
                    incarnation = incarnation
                );
                let restarted = st
                    .peers
                    .get_mut(&peer)
                    .is_some_and(|p| p.handshake_with(incarnation) && p.is_up());
                if restarted {
                    st.peer_down(peer, "reset");
                }
                // What waited for the key goes out now.
                st.kick(peer);
                None
            }
            Opened::Dropped {
                reason,
                from: Some(claimed),
            } => {
                event!("drop", node = index, from = %from, peer = claimed, reason = reason);
                None
            }
            Opened::Dropped { reason, from: None } => {
                event!("drop", node = index, from = %from, reason = reason);
                None
            }
        }
    }
}

impl State {
    /// An authenticated frame arrived from `from`.
    pub(crate) fn on_frame(&mut self, frame: Frame, from: SocketAddr) {
        let st = self;
        let incarnation = st.incarnation;
        let peer_index = frame.from;
        let Some(peer) = st.peer(peer_index, Some(from)) else {
            return;
        };
        let received = peer.receive(frame, incarnation, Instant::now());
        if let Some(reason) = received.dropped {
            event!("drop", node = st.index, peer = peer_index, reason = reason);
            // A refusal may have moved our epoch on, dropping what we had queued.
            st.trace_session_drops(peer_index);
            st.kick(peer_index);
            return;
        }
        if received.reset {
            st.peer_down(peer_index, "reset");
        }
        let first_seq = received.first_seq;
        let mut wires = received.deliver.into_iter();
        let mut n = 0u64;
        while let Some(wire) = wires.next() {
            if let Some(held) = st.on_wire(wire) {
                let rest: Vec<Wire> = std::iter::once(held).chain(wires).collect();
                if let Some(peer) = st.peers.get_mut(&peer_index) {
                    peer.hold(first_seq.saturating_add(n), rest);
                }
                break;
            }
            n += 1;
        }
        st.trace_session_drops(peer_index);
        st.kick(peer_index);
    }
}
