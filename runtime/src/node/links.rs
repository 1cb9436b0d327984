//! Links and exit signals.
//!
//! A link is held on both sides. When a process exits, every linked process gets an exit signal
//! with the reason: a trapping process receives it as an `Exit` message; otherwise `Normal` is
//! ignored and any other reason kills it with the same reason. `Kill` sent directly (not over a
//! link) cannot be trapped, and its target exits with `Killed` (OTP's `kill` / `killed`).

use super::monitors::Held;
use super::State;
use crate::mailbox::{Refused, Signal, SIGNAL_OVERFLOW};
use crate::wire::Wire;
use crate::{event, ExitReason, Pid};

impl State {
    /// Links local process `a` with `b`. If `b` is already dead, `a` gets an exit signal with
    /// `NoProc` (and `NoConnection` if `b`'s node is known down).
    pub(crate) fn link(&mut self, a: Pid, b: Pid) {
        if a == b || self.entry(a).is_none() {
            return;
        }
        event!("link", node = a.node, from = %a, to = %b);
        if self.is_local(b) {
            if let Some(other) = self.entry(b) {
                other.links.insert(a);
                if let Some(me) = self.entry(a) {
                    me.links.insert(b);
                }
            } else {
                // Not over a link (there is none to consume), but trappable all the same.
                self.exit_signal(b, a, ExitReason::NoProc, false);
            }
        } else if self.peer_up(b.node) {
            if let Some(me) = self.entry(a) {
                me.links.insert(b);
            }
            self.route(b.node, Wire::Link { from: a, to: b });
        } else {
            self.exit_signal(b, a, ExitReason::NoConnection, false);
        }
    }

    pub(crate) fn unlink(&mut self, a: Pid, b: Pid) {
        if let Some(me) = self.entry(a) {
            me.links.remove(&b);
        }
        if self.is_local(b) {
            if let Some(other) = self.entry(b) {
                other.links.remove(&a);
            }
        } else {
            self.route(b.node, Wire::Unlink { from: a, to: b });
        }
    }

    /// A remote process linked to local `to`.
    pub(crate) fn remote_link(&mut self, from: Pid, to: Pid) {
        if let Some(e) = self.entry(to) {
            e.links.insert(from);
        } else {
            self.route(
                from.node,
                Wire::Exit {
                    from: to,
                    to: from,
                    reason: ExitReason::NoProc,
                    linked: true,
                },
            );
        }
    }

    /// Sends an exit signal, locally or over the network.
    pub(crate) fn send_exit(&mut self, from: Pid, to: Pid, reason: ExitReason, linked: bool) {
        if self.is_local(to) {
            self.exit_signal(from, to, reason, linked);
        } else {
            self.route(
                to.node,
                Wire::Exit {
                    from,
                    to,
                    reason,
                    linked,
                },
            );
        }
    }

    /// An exit signal arriving at local process `to` (perhaps delivered later: a link's exit
    /// signal from a dead process may be held by `monitor-down-delay`, `node/monitors.rs`).
    pub(crate) fn exit_signal(&mut self, from: Pid, to: Pid, reason: ExitReason, linked: bool) {
        let may_start = linked
            && reason != ExitReason::NoConnection
            && self.entry(to).is_some_and(|e| e.links.contains(&from));
        let signal = Held::Exit { reason, linked };
        if let Some(Held::Exit { reason, linked }) = self.hold((from, to), signal, may_start) {
            self.deliver_exit(from, to, reason, linked);
        }
    }

    pub(crate) fn deliver_exit(&mut self, from: Pid, to: Pid, reason: ExitReason, linked: bool) {
        let Some(entry) = self.entry(to) else {
            return;
        };
        if linked && !entry.links.remove(&from) {
            // Unlinked meanwhile: the signal no longer applies.
            return;
        }
        let untrappable = reason == ExitReason::Kill && !linked;
        let effect = if !untrappable && entry.mailbox.trap_exit() {
            match entry.mailbox.push(Signal::Exit {
                from,
                reason: reason.clone(),
            }) {
                Err(Refused::Overflow) => "overflow",
                _ => "trapped",
            }
        } else if reason == ExitReason::Normal {
            "ignored"
        } else {
            "killed"
        };
        event!("signal", node = to.node, from = %from, to = %to, reason = %reason, effect = effect);
        if effect == "overflow" {
            self.kill(to.id, ExitReason::error(SIGNAL_OVERFLOW));
        }
        if effect == "killed" {
            let reason = if untrappable {
                ExitReason::Killed
            } else {
                reason
            };
            self.kill(to.id, reason);
        }
    }
}
