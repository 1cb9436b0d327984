//! Call timeouts without a timer per call: one sweeper task per node sleeps until the earliest
//! pending call's deadline and fails every call past its deadline with `Timeout`.
//!
//! A timer per call cost more than the call itself in the real build: registering it woke the
//! parked I/O driver every time (measured: local call latency 4.1 µs with it, 1.9 µs without).
//! The sweeper is woken only by a deadline earlier than the one it sleeps until; when that one
//! passes with its call long answered, it sleeps again until the earliest pending deadline. Calls
//! usually share one timeout, so it wakes about once per timeout period.

use std::sync::Weak;

use futures::channel::mpsc;
use futures::StreamExt;

use super::{Node, Shared, State};
use crate::rt::{self, Duration, Instant};
use crate::{event, CallError, Pid, Ref};

impl State {
    /// Registers the deadline of call `reference`; `None` when it never times out.
    pub(crate) fn add_deadline(
        &mut self,
        node: &Node,
        reference: Ref,
        from: Pid,
        to: Pid,
        timeout: Duration,
    ) -> Option<Instant> {
        let at = Instant::now().checked_add(timeout)?;
        self.deadlines.insert((at, reference), (from, to));
        // Wake the sweeper only if it sleeps past this deadline (or not at all).
        let sooner = self.sweeper_armed.is_none_or(|armed| at < armed);
        match &self.sweeper {
            Some(kick) if sooner => {
                let _ = kick.unbounded_send(());
            }
            Some(_) => {}
            None => {
                let (kick, kicks) = mpsc::unbounded();
                self.sweeper = Some(kick);
                let sweeper = sweep(std::sync::Arc::downgrade(&node.shared), kicks);
                let task = node.spawn_service("call-deadlines", sweeper);
                self.sweeper_task = Some(task.abort_handle());
            }
        }
        Some(at)
    }

    pub(crate) fn remove_deadline(&mut self, at: Instant, reference: Ref) {
        self.deadlines.remove(&(at, reference));
    }

    /// Fails every call whose deadline is not after `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, reference), (from, to)) = entry.remove_entry();
            if let Some(call) = self.calls.remove(&reference) {
                event!("call-timeout", node = from.node, from = %from, to = %to, call = %reference);
                let _ = call.send(Err(CallError::Timeout));
            }
        }
    }
}

async fn sweep(node: Weak<Shared>, mut kicks: mpsc::UnboundedReceiver<()>) {
    loop {
        let next = {
            let Some(shared) = node.upgrade() else { return };
            let node = Node { shared };
            let mut st = node.lock();
            let next = st.deadlines.keys().next().map(|(at, _)| *at);
            st.sweeper_armed = next;
            next
        };
        let Some(at) = next else {
            // Nothing pending: wait for the next call (or the node's end).
            if kicks.next().await.is_none() {
                return;
            }
            continue;
        };
        match rt::timeout(at.saturating_duration_since(Instant::now()), kicks.next()).await {
            Ok(Some(())) => continue,
            Ok(None) => return,
            Err(_) => {}
        }
        let Some(shared) = node.upgrade() else { return };
        Node { shared }.lock().expire(Instant::now());
    }
}
