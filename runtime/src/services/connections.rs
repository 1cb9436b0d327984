//! A connection manager: a bounded pool of connections to one endpoint (a process, on this
//! node or another), handed out and checked in by a supervised manager that never waits on
//! the endpoint.
//!
//! - **The caller does the slow work.** [`Pool::checkout`] gets a [`Conn`] (which connection,
//!   the lease it was handed out under, the endpoint's pid); the holder talks to the endpoint
//!   itself, for as long as its request takes, then [`Pool::checkin`]s it. The manager's loop
//!   only hands out, takes back and times out: it answers every other caller while a request
//!   is slow (the blocking-call flaw as a service: nothing slow ever runs in the manager).
//! - **Bounded, with a typed refusal.** At most `size` connections are held at once. A
//!   checkout when none is free waits, in arrival order, up to the time it asked for (at most
//!   `max_wait`), then fails with [`PoolError::Exhausted`]; a wait of zero fails at once. At
//!   most `max_waiters` checkouts wait; one more is refused at once with
//!   [`PoolError::QueueFull`]. The manager keeps one timer, for the earliest deadline.
//! - **A dead holder's connection comes back.** The manager monitors every holder; at its
//!   `Down` (its exit, or `NoConnection` when its node is cut off) every connection it held is
//!   returned (traced `pool-reclaim`) and handed to the next waiter (one `Down` per connection,
//!   in the order the manager began monitoring the holder for each). A check-in names the lease:
//!   a stale one (after a reclaim, or a second check-in) changes nothing.
//! - **Kept across the manager's restarts.** The table of connections belongs to the handle:
//!   a restarted manager keeps every holding, monitors each holder again (one that died
//!   meanwhile is reclaimed at its `NoProc` `Down`), and so never hands out more than `size`.
//!   Checkouts waiting on the crashed manager have already failed (their call's callee
//!   exited), so it starts with no waiters. A check-in while no manager runs is applied to the
//!   table directly. The manager's timer is its own, cancelled when it stops.
//!
//! A checkout's call waits `REPLY_MARGIN` longer than the manager would, so a waiting caller
//! gets `Exhausted`, not a call timeout; a caller whose call still timed out (a remote caller
//! behind a partition) may have been handed a connection it never saw, which comes back at its
//! death or when its node is declared down.
//!
//! Trace events: `pool-reclaim` (`node`, `pool`, `conn`, `holder`, `reason`), `pool-refuse`
//! (`node`, `pool`, `to`, `why`: `exhausted` / `queue-full`).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::rt::{Duration, Instant};
use crate::services::{Problems, Validate};
use crate::supervisor::{self, ChildSpec, Spec, Strategy};
use crate::{
    event, start_actor, Actor, CallError, Ctx, Event, ExitReason, Flow, Message, Node, Pid, Ref,
    ReplyTo, StartError,
};

/// How much longer a checkout's call waits than the manager would.
pub const REPLY_MARGIN: Duration = Duration::from_secs(1);

/// A pool's settings: data, the same in tests and production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections to the endpoint.
    pub size: u32,
    /// Checkouts that may wait at once for a connection.
    pub max_waiters: usize,
    /// The longest a checkout may wait (a longer wait asked for is cut to this).
    pub max_wait: Duration,
}

impl Validate for PoolConfig {
    fn check(&self, p: &mut Problems) {
        p.require(self.size > 0, "size", "must be at least 1");
        p.require(
            !self.max_wait.is_zero(),
            "max_wait",
            "must be longer than zero",
        );
        p.require(
            self.max_wait <= Duration::from_secs(3_600),
            "max_wait",
            "at most one hour",
        );
    }
}

/// A connection handed out: check it in with the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conn {
    /// Which connection, `0..size`.
    pub id: u32,
    /// The checkout it was handed out under (unique per pool).
    pub lease: u64,
    /// The process it connects to.
    pub endpoint: Pid,
}

/// Why the manager refused a checkout, as it travels in the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("all {size} connections in use for {waited:?}")]
    Exhausted { size: u32, waited: Duration },
    #[error("{waiting} checkouts already waiting")]
    QueueFull { waiting: usize },
}

/// Why a checkout returned no connection. Nothing is held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// No connection came free within the wait.
    #[error("pool exhausted: all {size} connections in use for {waited:?}")]
    Exhausted { size: u32, waited: Duration },
    /// Too many checkouts are already waiting.
    #[error("pool exhausted: {waiting} checkouts already waiting")]
    QueueFull { waiting: usize },
    /// The manager could not be asked (not running, or the call failed).
    #[error("pool manager unavailable: {0}")]
    Unavailable(CallError),
}

impl From<Refusal> for PoolError {
    fn from(r: Refusal) -> PoolError {
        match r {
            Refusal::Exhausted { size, waited } => PoolError::Exhausted { size, waited },
            Refusal::QueueFull { waiting } => PoolError::QueueFull { waiting },
        }
    }
}

/// What the manager serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PoolMsg {
    /// Call: a connection, waiting up to `wait`; replies `Result<Conn, Refusal>`.
    Checkout { wait: Duration },
    /// Cast: the connection is free again.
    Checkin(Conn),
    /// Call: replies [`PoolStats`].
    Stats,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    pub size: u32,
    pub held: u32,
    pub waiting: usize,
    pub checkouts: u64,
    /// Connections returned because their holder died.
    pub reclaimed: u64,
    /// Checkouts refused: exhausted after their wait, or the queue full.
    pub refused: u64,
    /// Check-ins of a lease no longer held (ignored).
    pub stale_checkins: u64,
}

struct Holding {
    holder: Pid,
    lease: u64,
    /// The running manager's monitor of the holder (none until a manager monitors it).
    monitor: Option<Ref>,
}

struct Waiter {
    reply: ReplyTo,
    asked: Duration,
    deadline: Duration,
}

struct Table {
    config: PoolConfig,
    endpoint: Pid,
    /// One per connection: who holds it, if anyone.
    slots: Vec<Option<Holding>>,
    waiters: VecDeque<Waiter>,
    next_lease: u64,
    manager: Option<Pid>,
    stats: PoolStats,
}

impl Table {
    /// Frees the connection if `conn`'s lease still holds it; the holder's monitor, if any.
    fn release(&mut self, conn: Conn) -> Option<Option<Ref>> {
        let slot = self.slots.get_mut(conn.id as usize)?;
        match slot {
            Some(h) if h.lease == conn.lease => {
                let monitor = h.monitor;
                *slot = None;
                Some(monitor)
            }
            _ => {
                self.stats.stale_checkins += 1;
                None
            }
        }
    }

    fn stats(&self) -> PoolStats {
        PoolStats {
            held: self.slots.iter().filter(|s| s.is_some()).count() as u32,
            waiting: self.waiters.len(),
            ..self.stats
        }
    }
}

/// The pool: its table, and the supervised manager that serves it.
#[derive(Clone)]
pub struct Pool {
    table: Arc<Mutex<Table>>,
    origin: Instant,
    node: u32,
    name: Arc<str>,
}

/// The manager's timer tag.
const DEADLINE: u64 = 1;

struct Manager {
    pool: Pool,
    /// The timer for the earliest waiter's deadline.
    timer: Option<Ref>,
}

impl Manager {
    /// Hands connection `id` to `holder` (monitored) under a new lease.
    fn grant(&self, ctx: &Ctx<PoolMsg>, t: &mut Table, id: usize, holder: Pid) -> Conn {
        let lease = t.next_lease;
        t.next_lease += 1;
        t.stats.checkouts += 1;
        t.slots[id] = Some(Holding {
            holder,
            lease,
            monitor: Some(ctx.monitor(holder)),
        });
        Conn {
            id: id as u32,
            lease,
            endpoint: t.endpoint,
        }
    }

    fn refuse(&self, t: &mut Table, reply: ReplyTo, why: Refusal) {
        t.stats.refused += 1;
        let kind = match why {
            Refusal::Exhausted { .. } => "exhausted",
            Refusal::QueueFull { .. } => "queue-full",
        };
        event!("pool-refuse", node = self.pool.node, pool = &*self.pool.name, to = %reply.caller(), why = kind);
        reply.reply(Err::<Conn, Refusal>(why));
    }

    /// Free connections to waiters (first come first served), expired waiters refused, and
    /// the timer aimed at the earliest deadline left.
    fn settle(&mut self, ctx: &Ctx<PoolMsg>) {
        let now = self.pool.now();
        let pool = self.pool.clone();
        let mut t = pool.lock();
        let size = t.config.size;
        let mut kept = VecDeque::new();
        while let Some(w) = t.waiters.pop_front() {
            if w.deadline <= now {
                let why = Refusal::Exhausted {
                    size,
                    waited: w.asked,
                };
                self.refuse(&mut t, w.reply, why);
            } else if let Some(id) = t.slots.iter().position(Option::is_none) {
                let conn = self.grant(ctx, &mut t, id, w.reply.caller());
                w.reply.reply(Ok::<Conn, Refusal>(conn));
            } else {
                kept.push_back(w);
            }
        }
        t.waiters = kept;
        if let Some(old) = self.timer.take() {
            ctx.cancel_timer(old);
        }
        if let Some(first) = t.waiters.iter().map(|w| w.deadline).min() {
            self.timer = Some(ctx.send_after(first - now, DEADLINE));
        }
    }
}

impl Actor for Manager {
    type Msg = PoolMsg;

    async fn init(&mut self, ctx: &mut Ctx<PoolMsg>) -> Result<(), ExitReason> {
        let pool = self.pool.clone();
        let mut t = pool.lock();
        t.manager = Some(ctx.pid());
        // The previous manager's waiters saw it exit; its monitors died with it.
        t.waiters.clear();
        for h in t.slots.iter_mut().flatten() {
            h.monitor = Some(ctx.monitor(h.holder));
        }
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Ctx<PoolMsg>, event: Event<PoolMsg>) -> Flow {
        let pool = self.pool.clone();
        match event {
            Event::Call {
                from,
                msg: PoolMsg::Checkout { wait },
                reply,
            } => {
                let now = pool.now();
                let mut t = pool.lock();
                let wait = wait.min(t.config.max_wait);
                let free = t.slots.iter().position(Option::is_none);
                // Behind waiters, if any (first come, first served).
                if let Some(id) = free.filter(|_| t.waiters.is_empty()) {
                    let conn = self.grant(ctx, &mut t, id, from);
                    reply.reply(Ok::<Conn, Refusal>(conn));
                } else if wait.is_zero() {
                    let size = t.config.size;
                    let why = Refusal::Exhausted { size, waited: wait };
                    self.refuse(&mut t, reply, why);
                } else if t.waiters.len() >= t.config.max_waiters {
                    let why = Refusal::QueueFull {
                        waiting: t.waiters.len(),
                    };
                    self.refuse(&mut t, reply, why);
                } else {
                    t.waiters.push_back(Waiter {
                        reply,
                        asked: wait,
                        deadline: now + wait,
                    });
                }
            }
            Event::Msg {
                msg: PoolMsg::Checkin(conn),
                ..
            } => {
                if let Some(Some(monitor)) = pool.lock().release(conn) {
                    ctx.demonitor(monitor, true);
                }
            }
            Event::Call {
                msg: PoolMsg::Stats,
                reply,
                ..
            } => reply.reply(pool.lock().stats()),
            Event::Down {
                pid,
                reference,
                reason,
            } => {
                let mut t = pool.lock();
                let mut back = 0;
                for (id, slot) in t.slots.iter_mut().enumerate() {
                    if slot
                        .as_ref()
                        .is_some_and(|h| h.holder == pid && h.monitor == Some(reference))
                    {
                        *slot = None;
                        back += 1;
                        event!("pool-reclaim", node = pool.node, pool = &*pool.name, conn = id, holder = %pid, reason = %reason);
                    }
                }
                t.stats.reclaimed += back;
            }
            Event::Timer { reference, .. } if Some(reference) == self.timer => self.timer = None,
            _ => {}
        }
        self.settle(ctx);
        Flow::Continue
    }

    async fn terminate(&mut self, ctx: &mut Ctx<PoolMsg>, _reason: &ExitReason) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
        let mut t = self.pool.lock();
        if t.manager == Some(ctx.pid()) {
            t.manager = None;
        }
    }
}

impl Pool {
    /// Validates `config` (every problem listed), then starts the manager (process
    /// `<name>-manager`) under a one-for-one supervisor named `name`, linked to `parent`, with
    /// `size` connections to `endpoint`. Returns the handle and the supervisor.
    pub async fn start(
        node: &Node,
        name: &str,
        parent: Option<Pid>,
        endpoint: Pid,
        config: PoolConfig,
    ) -> Result<(Pool, Pid), StartError> {
        let problems = Problems::of(&config);
        if !problems.is_empty() {
            return Err(StartError::Invalid(problems.to_string()));
        }
        let size = config.size;
        let pool = Pool {
            table: Arc::new(Mutex::new(Table {
                config,
                endpoint,
                slots: (0..size).map(|_| None).collect(),
                waiters: VecDeque::new(),
                next_lease: 1,
                manager: None,
                stats: PoolStats {
                    size,
                    ..PoolStats::default()
                },
            })),
            origin: Instant::now(),
            node: node.index(),
            name: name.into(),
        };
        let handle = pool.clone();
        let manager = ChildSpec::new("manager", move |node: Node, sup: Pid| {
            let actor = Manager {
                pool: handle.clone(),
                timer: None,
            };
            let name = format!("{}-manager", handle.name);
            async move { start_actor(&node, &name, Some(sup), Duration::from_secs(1), actor).await }
        });
        let spec = Spec::new(Strategy::OneForOne).child(manager);
        let sup = supervisor::start(node, name, parent, spec).await?;
        Ok((pool, sup))
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    /// The running manager, if any.
    pub fn manager(&self) -> Option<Pid> {
        self.lock().manager
    }

    /// A connection for the calling process, waiting up to `wait` (at most `max_wait`) for one
    /// to come free.
    pub async fn checkout<M: Message>(
        &self,
        ctx: &Ctx<M>,
        wait: Duration,
    ) -> Result<Conn, PoolError> {
        let (manager, max) = {
            let t = self.lock();
            (t.manager, t.config.max_wait)
        };
        let manager = manager.ok_or(PoolError::Unavailable(CallError::NoProc))?;
        let answer: Result<Conn, Refusal> = ctx
            .call(
                manager,
                PoolMsg::Checkout { wait },
                wait.min(max) + REPLY_MARGIN,
            )
            .await
            .map_err(PoolError::Unavailable)?;
        answer.map_err(PoolError::from)
    }

    /// Returns `conn` to the pool (a cast to the manager; applied to the table directly if the
    /// manager cannot take it).
    pub fn checkin<M: Message>(&self, ctx: &Ctx<M>, conn: Conn) {
        let manager = self.lock().manager;
        let sent = manager.map(|m| ctx.send(m, PoolMsg::Checkin(conn)));
        if !matches!(sent, Some(Ok(()))) {
            // The manager's monitor, if it still runs, finds the slot no longer the holder's.
            self.lock().release(conn);
        }
    }

    /// Checks a connection out, runs `work` with it, and checks it in, whatever `work`
    /// returned.
    pub async fn with<M, T, F, Fut>(
        &self,
        ctx: &Ctx<M>,
        wait: Duration,
        work: F,
    ) -> Result<T, PoolError>
    where
        M: Message,
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = T>,
    {
        let conn = self.checkout(ctx, wait).await?;
        let out = work(conn).await;
        self.checkin(ctx, conn);
        Ok(out)
    }

    /// The pool's counts, read from the table (no call).
    pub fn stats(&self) -> PoolStats {
        self.lock().stats()
    }

    /// The pool's counts, asked of the manager (so behind everything already in its mailbox).
    pub async fn stats_from_manager<M: Message>(
        &self,
        ctx: &Ctx<M>,
        timeout: Duration,
    ) -> Result<PoolStats, CallError> {
        let manager = self.manager().ok_or(CallError::NoProc)?;
        ctx.call(manager, PoolMsg::Stats, timeout).await
    }
}

#[cfg(test)]
mod tests;
