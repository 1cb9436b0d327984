//! A resource manager: services register what they hold (table entries, bytes), and writes are
//! admitted against one threshold with backpressure signalled before the write, not after.
//!
//! - **Admission.** [`ResourceManager::admit`] adds `amount` to a resource's usage if the total
//!   stays at or under `high`; otherwise it admits nothing and returns
//!   [`Backpressure`]. Usage goes down with [`release`](ResourceManager::release).
//! - **Told first.** The first refusal of a period of pressure sends `Pressure::High` to every
//!   subscriber *before* `admit` returns (a local send under the manager's lock), so a
//!   subscriber has it in its mailbox before any later write can be admitted. When usage falls
//!   to `low` or below, subscribers get `Pressure::Low`. Nothing is "eventually": the order of
//!   refusal, alert and next admission is the order of the calls.
//! - **Off the mailbox.** The accounting runs in the caller's task under the handle's lock; there
//!   is no process to fall behind, so no alert can lag the write that caused it.
//! - **Subscribers come and go.** A subscriber that joins during pressure is told `High` as it
//!   subscribes; one that died is dropped at the next subscribe or alert, and a subscriber
//!   subscribing again is listed once, so a supervised subscriber that restarts (and subscribes
//!   at each start) never grows the list past the live subscribers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::services::{Problems, Validate};
use crate::{event, Node, Pid};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceConfig {
    /// Admissions keep the total at or under this.
    pub high: u64,
    /// Pressure ends when the total falls to this or below.
    pub low: u64,
}

impl Validate for ResourceConfig {
    fn check(&self, p: &mut Problems) {
        p.require(self.high > 0, "high", "must be at least 1");
        p.require(self.low < self.high, "low", "must be below high");
    }
}

/// What subscribers are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pressure {
    High { total: u64 },
    Low { total: u64 },
}

/// A refused admission: nothing was added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backpressure: {total} in use, {amount} more would pass {high}")]
pub struct Backpressure {
    pub total: u64,
    pub amount: u64,
    pub high: u64,
}

struct State {
    config: ResourceConfig,
    usage: BTreeMap<String, u64>,
    total: u64,
    pressed: bool,
    subscribers: Vec<Pid>,
}

#[derive(Clone)]
pub struct ResourceManager {
    state: Arc<Mutex<State>>,
    node: Node,
}

impl ResourceManager {
    /// A manager for `node`'s resources; an invalid configuration is refused with every problem.
    pub fn new(node: &Node, config: ResourceConfig) -> Result<ResourceManager, Problems> {
        let problems = Problems::of(&config);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ResourceManager {
            state: Arc::new(Mutex::new(State {
                config,
                usage: BTreeMap::new(),
                total: 0,
                pressed: false,
                subscribers: Vec::new(),
            })),
            node: node.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `pid` (a local process whose messages are [`Pressure`]) is told of pressure from now
    /// on; if pressure has already begun, it is told `High` now (before this returns), as if
    /// it had been there. Dead subscribers are dropped here too, and subscribing twice changes
    /// nothing, so a subscriber restarted in a loop does not grow the list.
    pub fn subscribe(&self, pid: Pid) {
        let mut st = self.lock();
        let node = &self.node;
        st.subscribers.retain(|p| *p != pid && node.is_alive(*p));
        if st.pressed {
            let total = st.total;
            if node.send(pid, pid, Pressure::High { total }).is_err() {
                return;
            }
        }
        st.subscribers.push(pid);
    }

    /// How many subscribers the manager would tell now (at most the live ones subscribed).
    pub fn subscribers(&self) -> usize {
        self.lock().subscribers.len()
    }

    fn tell(&self, st: &mut State, what: Pressure) {
        // A subscriber that died or cannot take the message is dropped from the list: it can
        // no longer be told before a write.
        let node = &self.node;
        st.subscribers
            .retain(|pid| node.send(*pid, *pid, what).is_ok());
    }

    /// Adds `amount` to `resource` if the total stays at or under `high`.
    pub fn admit(&self, resource: &str, amount: u64) -> Result<(), Backpressure> {
        let mut st = self.lock();
        let after = st.total.saturating_add(amount);
        if after > st.config.high {
            let refused = Backpressure {
                total: st.total,
                amount,
                high: st.config.high,
            };
            if !st.pressed {
                st.pressed = true;
                let total = st.total;
                event!(
                    "pressure",
                    node = self.node.index(),
                    state = "high",
                    total = total
                );
                self.tell(&mut st, Pressure::High { total });
            }
            return Err(refused);
        }
        st.total = after;
        *st.usage.entry(resource.to_string()).or_default() += amount;
        Ok(())
    }

    /// Takes `amount` off `resource` (at most what it holds).
    pub fn release(&self, resource: &str, amount: u64) {
        let mut st = self.lock();
        let held = st.usage.get(resource).copied().unwrap_or(0);
        let amount = amount.min(held);
        st.usage.insert(resource.to_string(), held - amount);
        st.total -= amount;
        if st.pressed && st.total <= st.config.low {
            st.pressed = false;
            let total = st.total;
            event!(
                "pressure",
                node = self.node.index(),
                state = "low",
                total = total
            );
            self.tell(&mut st, Pressure::Low { total });
        }
    }

    pub fn total(&self) -> u64 {
        self.lock().total
    }
}

#[cfg(test)]
mod tests;
