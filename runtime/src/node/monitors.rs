//! Monitors: exactly one `Down` per monitor reference.
//!
//! The watching side keeps every live monitor in `watching`; a `Down` is delivered only by
//! removing its entry there, so whichever of exit, `NoProc`, node down or demonitor comes first
//! wins and every later one is dropped.
//!
//! The `monitor-down-delay` buggify site holds a dead process's `Down` (or its exit signal over
//! a link) to a local receiver for 1 to [`DOWN_DELAY_MAX`], as a slow signal would arrive. While
//! a pair (sender, receiver) is held, every later `Down` and exit signal of that pair queues
//! behind it, and the release delivers them in arrival order through the ordinary path, so the
//! per-pair order holds and the one-`Down` rule (the `watching` entry) decides as before: a
//! `demonitor` or an `unlink` made meanwhile still wins. Only signals of a dead sender start a
//! hold (its own exit reason, or `NoProc`): such a sender sends nothing after them. A
//! `NoConnection` starts none, since its sender may be alive and, after a heal, send again; nor
//! does the monitor of a pending call, whose `Down` ends the call.

use super::{Node, State, Watch};
use crate::mailbox::{Payload, Refused, Signal, SIGNAL_OVERFLOW};
use crate::rt::{self, Duration};
use crate::wire::Wire;
use crate::{event, CallError, ExitReason, Pid, Ref};

/// The buggify site that delays a dead process's `Down` and link exit signals.
pub(crate) const DOWN_DELAY_SITE: &str = "monitor-down-delay";
/// The longest a held signal waits.
pub(crate) const DOWN_DELAY_MAX: Duration = Duration::from_millis(50);

/// A signal held back by [`DOWN_DELAY_SITE`], to be delivered on release.
pub(crate) enum Held {
    Down {
        reference: Ref,
        pid: Pid,
        reason: ExitReason,
    },
    Exit {
        reason: ExitReason,
        linked: bool,
    },
}

impl State {
    /// Queues `signal` if its pair is held, or holds the pair if the site fires (and `may_start`);
    /// `None` when the signal was taken.
    pub(crate) fn hold(&mut self, pair: (Pid, Pid), signal: Held, may_start: bool) -> Option<Held> {
        if let Some(queue) = self.held.get_mut(&pair) {
            queue.push(signal);
            return None;
        }
        if !may_start {
            return Some(signal);
        }
        let Some(wait) = crate::buggify::delay(DOWN_DELAY_SITE, DOWN_DELAY_MAX) else {
            return Some(signal);
        };
        self.held.insert(pair, vec![signal]);
        let me = self.me.clone();
        drop(rt::spawn(async move {
            rt::sleep(wait).await;
            if let Some(shared) = me.upgrade() {
                Node { shared }.lock().release(pair);
            }
        }));
        None
    }

    /// Delivers the signals held for `pair`, in the order they arrived.
    fn release(&mut self, pair: (Pid, Pid)) {
        let (from, to) = pair;
        for signal in self.held.remove(&pair).unwrap_or_default() {
            match signal {
                Held::Down {
                    reference,
                    pid,
                    reason,
                } => self.deliver_down(reference, pid, reason),
                Held::Exit { reason, linked } => self.deliver_exit(from, to, reason, linked),
            }
        }
    }
}

impl State {
    /// Starts monitoring `target` for local `watcher` under `reference`. A call's monitor of a
    /// remote target sends nothing: it rides in the call's request (see [`State::on_wire`]).
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
            if call {
                return;
            }
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

    /// A remote call's monitor, ended on the callee's node by its reply or refusal: forgotten
    /// here without a `Demonitor`.
    pub(crate) fn forget_call_monitor(&mut self, reference: Ref) {
        if self.watching.get(&reference).is_some_and(|w| w.call) {
            self.watching.remove(&reference);
        }
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

    /// Delivers the one `Down` for `reference`, if the monitor is still live here (perhaps
    /// later: the module docs' `monitor-down-delay`).
    pub(crate) fn fire_down(&mut self, reference: Ref, pid: Pid, reason: ExitReason) {
        if let Some(watch) = self.watching.get(&reference) {
            let pair = (pid, watch.watcher);
            let may_start = !watch.call && reason != ExitReason::NoConnection;
            let signal = Held::Down {
                reference,
                pid,
                reason,
            };
            if let Some(Held::Down { reason, .. }) = self.hold(pair, signal, may_start) {
                self.deliver_down(reference, pid, reason);
            }
            return;
        }
        self.deliver_down(reference, pid, reason);
    }

    fn deliver_down(&mut self, reference: Ref, pid: Pid, reason: ExitReason) {
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
