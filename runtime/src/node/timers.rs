//! Process timers: a message to self after a delay, cancelled when the process exits.

use super::Node;
use crate::mailbox::{Refused, Signal, SIGNAL_OVERFLOW};
use crate::rt::{self, Duration};
use crate::{ExitReason, Pid, Ref};

impl Node {
    /// Timers pending on this node: armed by a live process with `send_after`, not yet fired
    /// or cancelled. A process's timers stop counting when it exits (they are aborted).
    pub fn timer_count(&self) -> usize {
        self.lock().procs.values().map(|e| e.timers.len()).sum()
    }

    pub(crate) fn send_after(&self, pid: Pid, after: Duration, tag: u64) -> Option<Ref> {
        let mut st = self.lock();
        let reference = st.make_ref();
        st.entry(pid)?;
        let node = self.clone();
        let task = rt::spawn(async move {
            rt::sleep(after).await;
            let mut st = node.lock();
            if let Some(entry) = st.entry(pid) {
                entry.timers.remove(&reference);
                if let Err(Refused::Overflow) = entry.mailbox.push(Signal::Timer { reference, tag })
                {
                    st.kill(pid.id, ExitReason::error(SIGNAL_OVERFLOW));
                }
            }
        });
        st.entry(pid)?.timers.insert(reference, task.abort_handle());
        Some(reference)
    }

    /// Cancels a timer; true if it had not fired. A fired timer's message is removed too.
    pub(crate) fn cancel_timer(&self, pid: Pid, reference: Ref) -> bool {
        let mut st = self.lock();
        let Some(entry) = st.entry(pid) else {
            return false;
        };
        if let Some(task) = entry.timers.remove(&reference) {
            task.abort();
            return true;
        }
        entry
            .mailbox
            .take(|s| matches!(s, Signal::Timer { reference: r, .. } if *r == reference))
            .is_some()
    }
}
