//! Monitors: exactly one `Down` per monitor reference.
//!
//! The watching side keeps every live monitor in `watching`; a `Down` is delivered only by
//! removing its entry there, so whichever of exit, `NoProc`, node down or demonitor comes first
//! wins and every later one is dropped.

use super::{State, Watch};
use crate::mailbox::{Payload, Refused, Signal, SIGNAL_OVERFLOW};
use crate::wire::Wire;
use crate::{event, CallError, ExitReason, Pid, Ref};

impl State {
    /// Starts monitoring `target` for local `watcher` under `reference`.
    pub(crate) fn monitor(&mut self, reference: Ref, watcher: Pid, target: Pid, call: bool) {
        self.watching.insert(
            reference,
            Watch {
                watcher,
                target,
                call,
            },
        );
        if self.is_local(target) {
            if let Some(entry) = self.entry(target) {
                entry.monitored_by.insert(reference);
                self.monitors.insert(reference, (watcher, target.id));
            } else {
                self.fire_down(reference, target, ExitReason::NoProc);
            }
        } else if self.peer_up(target.node) {
            self.route(
                target.node,
                Wire::Monitor {
                    reference,
                    watcher,
                    target,
                },
            );
        } else {
            self.fire_down(reference, target, ExitReason::NoConnection);
        }
    }

    /// A remote watcher monitoring local `target`.
    pub(crate) fn remote_monitor(&mut self, reference: Ref, watcher: Pid, target: Pid) {
        if let Some(entry) = self.entry(target) {
            entry.monitored_by.insert(reference);
            self.monitors.insert(reference, (watcher, target.id));
        } else {
            self.send_down(reference, watcher, target, ExitReason::NoProc);
        }
    }

    /// Removes a monitor; true if it was still live (no `Down` delivered yet).
    pub(crate) fn demonitor(&mut self, reference: Ref) -> bool {
        let Some(watch) = self.watching.remove(&reference) else {
            return false;
        };
        if self.is_local(watch.target) {
            self.drop_target_side(reference);
        } else {
            self.route(
                watch.target.node,
                Wire::Demonitor {
                    reference,
                    target: watch.target,
                },
            );
        }
        true
    }

    pub(crate) fn drop_target_side(&mut self, reference: Ref) {
        if let Some((_, id)) = self.monitors.remove(&reference) {
            if let Some(e) = self.procs.get_mut(&id) {
                e.monitored_by.remove(&reference);
            }
        }
    }

    /// Sends a `Down` to `watcher`, wherever it is.
    pub(crate) fn send_down(&mut self, reference: Ref, watcher: Pid, pid: Pid, reason: ExitReason) {
        if self.is_local(watcher) {
            self.fire_down(reference, pid, reason);
        } else {
            self.route(
                watcher.node,
                Wire::Down {
                    reference,
                    watcher,
                    pid,
                    reason,
                },
            );
        }
    }

    /// Delivers the one `Down` for `reference`, if the monitor is still live here.
    pub(crate) fn fire_down(&mut self, reference: Ref, pid: Pid, reason: ExitReason) {
        let Some(watch) = self.watching.remove(&reference) else {
            event!("drop", node = self.index, reference = %reference, reason = "stale-down");
            return;
        };
        event!("down", node = self.index, watcher = %watch.watcher, pid = %pid, reference = %reference, reason = %reason);
        if watch.call {
            if let Some(call) = self.calls.remove(&reference) {
                let error = match reason {
                    ExitReason::NoProc => CallError::NoProc,
                    ExitReason::NoConnection => CallError::NodeDown,
                    other => CallError::Exited(other),
                };
                let _ = call.send(Err(error));
            }
            return;
        }
        if let Some(entry) = self.entry(watch.watcher) {
            let pushed = entry.mailbox.push(Signal::Down {
                reference,
                pid,
                reason,
            });
            if let Err(Refused::Overflow) = pushed {
                self.kill(watch.watcher.id, ExitReason::error(SIGNAL_OVERFLOW));
            }
        }
    }

    /// A reply for call `reference`; dropped (and traced) if the caller gave up.
    pub(crate) fn complete_call(&mut self, reference: Ref, payload: Payload) {
        match self.calls.remove(&reference) {
            Some(call) => {
                let _ = call.send(Ok(payload));
            }
            None => {
                event!("drop", node = self.index, reference = %reference, reason = "late-reply");
            }
        }
    }
}
