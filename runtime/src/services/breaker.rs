//! A circuit breaker: calls to a failing dependency are refused for a while instead of piling
//! onto it, then a few trial calls decide whether it is back.
//!
//! - **States.** *Closed*: every call is let through, and each failure is counted; `failures`
//!   failures within `window` (on the node's clock) open the breaker. *Open*: every call is
//!   refused at once with [`BreakerError::Open`], which says when trials begin; after
//!   `open_for` the breaker is half-open. *Half-open*: at most `trials` calls are let through
//!   (more at once are refused with [`BreakerError::Trials`]); `trials` successes close it,
//!   and one failure opens it again for another `open_for`. The thresholds are data
//!   ([`BreakerConfig`]), checked whole before anything starts.
//! - **A result counts in the state it was admitted in.** A call let through carries the
//!   breaker's generation (one more at every change of state); a result reported after the
//!   state changed is ignored (counted as `stale`), so a slow success admitted before the
//!   breaker opened cannot close it, and a late failure cannot reopen a breaker that closed.
//! - **Every admitted call reports.** [`Breaker::allow`] returns a [`Permit`]; its holder
//!   reports [`Permit::success`] or [`Permit::failure`]. A permit dropped without a report (its
//!   holder died, or gave up on the call) counts as a failure: the dependency did not answer.
//! - **Off the mailbox, kept across restarts.** Decisions are made in the caller's task under
//!   the handle's lock (no call, no await), and the state belongs to the handle. The breaker's
//!   supervised process only makes the open-to-half-open change at its time (a timer armed
//!   when the breaker opens, re-armed from the state by a restarted process), so the change is
//!   traced when it happens even without traffic; a decision made in between applies the
//!   change itself, so no decision waits for the process. When the process crashes and is
//!   restarted, the breaker stays in its state: a breaker that forgot it was open would let a
//!   full load through to the dependency it protects after every crash. A crash of the node
//!   loses it with every caller on the node. The process's timer is its own, cancelled when it
//!   stops.
//! - **Bounded.** The closed state remembers at most `failures` failure times; nothing else
//!   grows.
//!
//! Trace events: `breaker` (`node`, `breaker`, `from`, `to`, `generation`) at every change of
//! state.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::rt::{Duration, Instant};
use crate::services::{Problems, Validate};
use crate::supervisor::{self, ChildSpec, Spec, Strategy};
use crate::{event, start_actor, Actor, Ctx, Event, ExitReason, Flow, Node, Pid, Ref, StartError};

/// A breaker's thresholds: data, the same in tests and production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// This many failures within `window` open the breaker.
    pub failures: u32,
    pub window: Duration,
    /// How long the breaker stays open before it lets trial calls through.
    pub open_for: Duration,
    /// Calls let through while half-open; this many successes close the breaker.
    pub trials: u32,
}

impl Validate for BreakerConfig {
    fn check(&self, p: &mut Problems) {
        p.require(self.failures > 0, "failures", "must be at least 1");
        p.require(!self.window.is_zero(), "window", "must be longer than zero");
        p.require(
            !self.open_for.is_zero(),
            "open_for",
            "must be longer than zero",
        );
        p.require(self.trials > 0, "trials", "must be at least 1");
    }
}

/// Where a breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

/// Why a call was not let through. Nothing was admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakerError {
    #[error("circuit open: trial calls begin in {retry_after:?}")]
    Open { retry_after: Duration },
    #[error("circuit half-open: all {trials} trial calls are taken")]
    Trials { trials: u32 },
}

/// A guarded call's failure: refused by the breaker, or the call's own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarded<E> {
    Refused(BreakerError),
    Failed(E),
}

impl<E: std::fmt::Display> std::fmt::Display for Guarded<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Guarded::Refused(e) => write!(f, "{e}"),
            Guarded::Failed(e) => write!(f, "call failed: {e}"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for Guarded<E> {}

/// What an admitted call reports against: the generation it was admitted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    generation: u64,
    trial: bool,
}

impl Ticket {
    /// Whether the call was let through as a half-open trial.
    pub fn is_trial(&self) -> bool {
        self.trial
    }
}

/// Counts since the breaker started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakerStats {
    pub opened: u64,
    pub half_opened: u64,
    pub closed: u64,
    /// Calls refused.
    pub refused: u64,
    /// Results ignored because the state had changed since their call was admitted.
    pub stale: u64,
}

/// A change of state, at a time since the breaker's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub at: Duration,
    /// The generation entered.
    pub generation: u64,
}

#[derive(Debug, Clone)]
enum Phase {
    /// The times of the failures that may still count (at most `failures` of them).
    Closed(VecDeque<Duration>),
    Open {
        until: Duration,
    },
    HalfOpen {
        admitted: u32,
        succeeded: u32,
    },
}

/// The breaker's state machine, without a process: what [`Breaker`] guards with its lock. Times
/// are durations since any fixed origin.
#[derive(Debug, Clone)]
pub struct Circuit {
    config: BreakerConfig,
    phase: Phase,
    generation: u64,
    stats: BreakerStats,
    /// Changes not yet taken by [`Circuit::take_transitions`] (at most two per operation).
    changes: Vec<Transition>,
}

impl Circuit {
    pub fn new(config: BreakerConfig) -> Circuit {
        Circuit {
            config,
            phase: Phase::Closed(VecDeque::new()),
            generation: 0,
            stats: BreakerStats::default(),
            changes: Vec::new(),
        }
    }

    fn go(&mut self, to: Phase, now: Duration) {
        let from = self.stored_state();
        self.phase = to;
        self.generation += 1;
        let to = self.stored_state();
        match to {
            State::Closed => self.stats.closed += 1,
            State::Open => self.stats.opened += 1,
            State::HalfOpen => self.stats.half_opened += 1,
        }
        self.changes.push(Transition {
            from,
            to,
            at: now,
            generation: self.generation,
        });
    }

    fn stored_state(&self) -> State {
        match self.phase {
            Phase::Closed(_) => State::Closed,
            Phase::Open { .. } => State::Open,
            Phase::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// The state at `now`: an open breaker whose `open_for` has passed is half-open, whether
    /// or not the change has been made yet.
    pub fn state(&self, now: Duration) -> State {
        match self.phase {
            Phase::Open { until } if now >= until => State::HalfOpen,
            _ => self.stored_state(),
        }
    }

    /// Makes the open-to-half-open change if it is due at `now`.
    pub fn advance(&mut self, now: Duration) {
        if let Phase::Open { until } = self.phase {
            if now >= until {
                self.go(
                    Phase::HalfOpen {
                        admitted: 0,
                        succeeded: 0,
                    },
                    now,
                );
            }
        }
    }

    /// When an open breaker becomes half-open; `None` unless open.
    pub fn open_until(&self) -> Option<Duration> {
        match self.phase {
            Phase::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Lets a call through at `now`, or says why not.
    pub fn allow(&mut self, now: Duration) -> Result<Ticket, BreakerError> {
        self.advance(now);
        let generation = self.generation;
        let trials = self.config.trials;
        let refused = match &mut self.phase {
            Phase::Closed(_) => {
                return Ok(Ticket {
                    generation,
                    trial: false,
                })
            }
            Phase::HalfOpen { admitted, .. } if *admitted < trials => {
                *admitted += 1;
                return Ok(Ticket {
                    generation,
                    trial: true,
                });
            }
            Phase::HalfOpen { .. } => BreakerError::Trials { trials },
            Phase::Open { until } => BreakerError::Open {
                retry_after: *until - now,
            },
        };
        self.stats.refused += 1;
        Err(refused)
    }

    /// The result of the call `ticket` let through, reported at `now`.
    pub fn record(&mut self, ticket: Ticket, ok: bool, now: Duration) {
        self.advance(now);
        if ticket.generation != self.generation {
            self.stats.stale += 1;
            return;
        }
        let (threshold, window) = (self.config.failures as usize, self.config.window);
        let open = Phase::Open {
            until: now.saturating_add(self.config.open_for),
        };
        match &mut self.phase {
            Phase::Closed(_) if ok => {}
            Phase::Closed(failures) => {
                failures.push_back(now);
                while failures
                    .front()
                    .is_some_and(|&at| now.saturating_sub(at) >= window)
                {
                    failures.pop_front();
                }
                if failures.len() >= threshold {
                    self.go(open, now);
                }
            }
            Phase::HalfOpen { succeeded, .. } if ok => {
                *succeeded += 1;
                if *succeeded >= self.config.trials {
                    self.go(Phase::Closed(VecDeque::new()), now);
                }
            }
            Phase::HalfOpen { .. } => self.go(open, now),
            // Nothing is admitted while open, so no ticket of an open generation exists.
            Phase::Open { .. } => {}
        }
    }

    /// The changes of state since the last call, oldest first.
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.changes)
    }

    pub fn stats(&self) -> BreakerStats {
        self.stats
    }

    /// The failures the closed state remembers (at most `failures`).
    pub fn remembered(&self) -> usize {
        match &self.phase {
            Phase::Closed(f) => f.len(),
            _ => 0,
        }
    }
}

struct Shared {
    circuit: Circuit,
    /// The breaker's running process, told when the breaker opens.
    process: Option<Pid>,
}

/// A circuit breaker: its state, and the supervised process that half-opens it on time.
#[derive(Clone)]
pub struct Breaker {
    shared: Arc<Mutex<Shared>>,
    /// When the breaker started, on the node's clock: its times count from here.
    origin: Instant,
    node: Node,
    name: Arc<str>,
}

/// What the breaker's process receives: the breaker has opened (arm the timer).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Opened;

/// The process's timer tag.
const HALF_OPEN: u64 = 1;

struct Timekeeper {
    breaker: Breaker,
    timer: Option<Ref>,
}

impl Timekeeper {
    /// Arms the timer for the open state's end, if the breaker is open (replacing any other).
    fn arm(&mut self, ctx: &Ctx<Opened>) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
        let until = self.breaker.lock().circuit.open_until();
        if let Some(until) = until {
            let wait = until.saturating_sub(self.breaker.now());
            self.timer = Some(ctx.send_after(wait, HALF_OPEN));
        }
    }
}

impl Actor for Timekeeper {
    type Msg = Opened;

    async fn init(&mut self, ctx: &mut Ctx<Opened>) -> Result<(), ExitReason> {
        self.breaker.lock().process = Some(ctx.pid());
        // A breaker that opened while no process ran (or before this one) is timed from here.
        self.arm(ctx);
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Ctx<Opened>, event: Event<Opened>) -> Flow {
        match event {
            Event::Msg { .. } => self.arm(ctx),
            Event::Timer {
                tag: HALF_OPEN,
                reference,
            } if Some(reference) == self.timer => {
                self.timer = None;
                let now = self.breaker.now();
                self.breaker.with(|c| c.advance(now));
                // Early (or opened again meanwhile): wait for the rest.
                self.arm(ctx);
            }
            _ => {}
        }
        Flow::Continue
    }

    async fn terminate(&mut self, ctx: &mut Ctx<Opened>, _reason: &ExitReason) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
        let mut shared = self.breaker.lock();
        if shared.process == Some(ctx.pid()) {
            shared.process = None;
        }
    }
}

impl Breaker {
    /// Validates `config` (every problem listed), then starts the breaker's process under a
    /// one-for-one supervisor named `name`, linked to `parent`. Returns the handle and the
    /// supervisor.
    pub async fn start(
        node: &Node,
        name: &str,
        parent: Option<Pid>,
        config: BreakerConfig,
    ) -> Result<(Breaker, Pid), StartError> {
        let problems = Problems::of(&config);
        if !problems.is_empty() {
            return Err(StartError::Invalid(problems.to_string()));
        }
        let breaker = Breaker {
            shared: Arc::new(Mutex::new(Shared {
                circuit: Circuit::new(config),
                process: None,
            })),
            origin: Instant::now(),
            node: node.clone(),
            name: name.into(),
        };
        let handle = breaker.clone();
        let child = ChildSpec::new("breaker", move |node: Node, sup: Pid| {
            let actor = Timekeeper {
                breaker: handle.clone(),
                timer: None,
            };
            let name = format!("{}-timer", handle.name);
            async move { start_actor(&node, &name, Some(sup), Duration::from_secs(1), actor).await }
        });
        let spec = Spec::new(Strategy::OneForOne).child(child);
        let sup = supervisor::start(node, name, parent, spec).await?;
        Ok((breaker, sup))
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time since the breaker started, on its node's clock (the times its state counts in).
    pub fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    /// Runs `op` on the circuit, then traces its changes and tells the process if it opened.
    fn with<T>(&self, op: impl FnOnce(&mut Circuit) -> T) -> T {
        let mut shared = self.lock();
        let out = op(&mut shared.circuit);
        let mut opened = false;
        for t in shared.circuit.take_transitions() {
            opened |= t.to == State::Open;
            event!(
                "breaker",
                node = self.node.index(),
                breaker = &*self.name,
                from = t.from.name(),
                to = t.to.name(),
                generation = t.generation
            );
        }
        if let (true, Some(pid)) = (opened, shared.process) {
            // If the process cannot be told (it is restarting), its next start arms the timer
            // from the state; a decision meanwhile makes the change itself.
            let _ = self.node.send(pid, pid, Opened);
        }
        out
    }

    /// Lets a call through now, or refuses it (the caller's task, no call).
    pub fn allow(&self) -> Result<Permit, BreakerError> {
        let now = self.now();
        let ticket = self.with(|c| c.allow(now))?;
        Ok(Permit {
            breaker: self.clone(),
            ticket,
            reported: false,
        })
    }

    fn record(&self, ticket: Ticket, ok: bool) {
        let now = self.now();
        self.with(|c| c.record(ticket, ok, now));
    }

    /// Runs `call` if the breaker lets it through, and reports its result.
    pub async fn call<T, E, F>(&self, call: F) -> Result<T, Guarded<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        let permit = self.allow().map_err(Guarded::Refused)?;
        match call.await {
            Ok(v) => {
                permit.success();
                Ok(v)
            }
            Err(e) => {
                permit.failure();
                Err(Guarded::Failed(e))
            }
        }
    }

    /// The state now.
    pub fn state(&self) -> State {
        let now = self.now();
        self.lock().circuit.state(now)
    }

    /// The changes of state so far (each counted once, when made) and the refusals.
    pub fn stats(&self) -> BreakerStats {
        self.lock().circuit.stats()
    }
}

/// The right to make one call the breaker let through; report how it went. Dropped without a
/// report, it counts as a failure.
#[must_use = "report the call's result with success() or failure()"]
pub struct Permit {
    breaker: Breaker,
    ticket: Ticket,
    reported: bool,
}

impl Permit {
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record(self.ticket, true);
    }

    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(self.ticket, false);
    }

    pub fn is_trial(&self) -> bool {
        self.ticket.trial
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.record(self.ticket, false);
        }
    }
}

#[cfg(test)]
mod tests;
