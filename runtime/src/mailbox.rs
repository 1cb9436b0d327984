//! A process's bounded mailbox: user messages count against the capacity; system signals (exit
//! signals, downs, timers) against a separate bound, [`SIGNAL_LIMIT`]. OTP never drops a
//! signal, and neither does this: a signal past the bound kills the process instead (its node
//! does so, with reason `signal-queue-overflow`), so its links, monitors and supervisor see it.

use std::any::Any;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Mutex;
use std::task::{Poll, Waker};

use crate::{ExitReason, Pid, Ref};

/// A message body: the value itself between local processes, bytes from another node.
pub(crate) enum Payload {
    Local(Box<dyn Any + Send>),
    Remote(Vec<u8>),
}

pub(crate) enum Signal {
    Msg {
        from: Pid,
        payload: Payload,
    },
    Call {
        from: Pid,
        reference: Ref,
        payload: Payload,
    },
    Exit {
        from: Pid,
        reason: ExitReason,
    },
    Down {
        reference: Ref,
        pid: Pid,
        reason: ExitReason,
    },
    Timer {
        reference: Ref,
        tag: u64,
    },
}

impl Signal {
    fn is_user(&self) -> bool {
        matches!(self, Signal::Msg { .. } | Signal::Call { .. })
    }
}

/// System signals one mailbox holds at most.
pub const SIGNAL_LIMIT: usize = 65_536;

/// The exit reason of a process killed for a signal past [`SIGNAL_LIMIT`].
pub(crate) const SIGNAL_OVERFLOW: &str = "signal-queue-overflow";

pub(crate) struct Mailbox {
    inner: Mutex<Inner>,
}

struct Inner {
    queue: VecDeque<Signal>,
    user: usize,
    signals: usize,
    capacity: usize,
    closed: bool,
    trap_exit: bool,
    waker: Option<Waker>,
}

/// Why a signal was refused; it is handed back.
pub(crate) enum Refused {
    Full(Signal),
    Closed(Signal),
    /// A system signal past [`SIGNAL_LIMIT`] (not queued): the caller kills the process.
    Overflow,
}

impl Inner {
    fn removed(&mut self, signal: &Signal) {
        if signal.is_user() {
            self.user -= 1;
        } else {
            self.signals -= 1;
        }
    }
}

impl Mailbox {
    pub(crate) fn new(capacity: usize) -> Mailbox {
        Mailbox {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                user: 0,
                signals: 0,
                capacity,
                closed: false,
                trap_exit: false,
                waker: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, signal: Signal) -> Result<(), Refused> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(Refused::Closed(signal));
        }
        if signal.is_user() {
            if inner.user >= inner.capacity {
                return Err(Refused::Full(signal));
            }
            inner.user += 1;
        } else {
            if inner.signals >= SIGNAL_LIMIT {
                return Err(Refused::Overflow);
            }
            inner.signals += 1;
        }
        inner.queue.push_back(signal);
        if let Some(w) = inner.waker.take() {
            w.wake();
        }
        Ok(())
    }

    pub(crate) fn trap_exit(&self) -> bool {
        self.lock().trap_exit
    }

    pub(crate) fn set_trap_exit(&self, on: bool) {
        self.lock().trap_exit = on;
    }

    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.queue.clear();
        inner.user = 0;
        inner.signals = 0;
    }

    /// Removes a pending `Down` for `reference` (demonitor with flush); true if there was one.
    pub(crate) fn flush_down(&self, reference: Ref) -> bool {
        self.take(|s| matches!(s, Signal::Down { reference: r, .. } if *r == reference))
            .is_some()
    }

    /// The first queued signal matching `pred`, if any (selective receive).
    pub(crate) fn take(&self, pred: impl Fn(&Signal) -> bool) -> Option<Signal> {
        let mut inner = self.lock();
        let at = inner.queue.iter().position(pred)?;
        let signal = inner.queue.remove(at).expect("position is in range");
        inner.removed(&signal);
        Some(signal)
    }

    /// Waits for the first signal matching `pred`.
    pub(crate) async fn recv_where(&self, pred: impl Fn(&Signal) -> bool) -> Signal {
        poll_fn(|cx| {
            if let Some(s) = self.take(&pred) {
                return Poll::Ready(s);
            }
            let mut inner = self.lock();
            // Re-check under the same lock the pusher takes, so no wake-up is lost.
            if let Some(at) = inner.queue.iter().position(&pred) {
                let s = inner.queue.remove(at).expect("position is in range");
                inner.removed(&s);
                return Poll::Ready(s);
            }
            inner.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }
}
