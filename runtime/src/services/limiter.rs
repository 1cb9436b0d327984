//! A rate limiter: one token bucket per key, a bounded table, cleaned by a supervised process.
//!
//! - **Buckets.** A key's bucket holds up to `capacity` tokens and refills at `refill_per_sec`
//!   on the runtime clock; [`RateLimiter::take`] removes `cost` tokens or says when enough will
//!   be there. Arithmetic is exact (tokens are counted in billionths, time in nanoseconds), so
//!   two runs of one seed decide alike. Over any window of length `T`, a key is granted at most
//!   `capacity + refill_per_sec * T` tokens.
//! - **Bounded, and cleaning is invisible.** A full bucket behaves exactly as an absent one, so
//!   the cleaner removes full buckets (every `clean_every`, and whenever a new key finds the
//!   table at `max_keys`); no decision changes because of it. Only when `max_keys` keys are all
//!   below capacity at once is a new key refused ([`LimitError::TooManyKeys`]): the limiter
//!   fails closed instead of growing.
//! - **Off the mailbox, and kept across restarts.** Decisions are made under the handle's lock
//!   in the caller's own task (no call, no await), and the table belongs to the handle: when the
//!   cleaner process crashes and its supervisor restarts it, no bucket is forgotten (a forgetful
//!   limiter would grant a fresh burst to every key after each crash). The cleaner's timer is
//!   its own, so it dies with it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::rt::{Duration, Instant};
use crate::services::{Problems, Validate};
use crate::supervisor::{self, ChildSpec, Spec, Strategy};
use crate::{event, start_actor, Actor, Ctx, Event, ExitReason, Flow, Node, Pid, StartError};

const NANOS: u128 = 1_000_000_000;

/// A limiter's settings: data, the same in tests and production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterConfig {
    pub capacity: u32,
    pub refill_per_sec: u32,
    pub max_keys: usize,
    pub clean_every: Duration,
}

impl Validate for LimiterConfig {
    fn check(&self, p: &mut Problems) {
        p.require(self.capacity > 0, "capacity", "must be at least 1");
        p.require(
            self.refill_per_sec > 0,
            "refill_per_sec",
            "must be at least 1",
        );
        p.require(self.max_keys > 0, "max_keys", "must be at least 1");
        p.require(
            !self.clean_every.is_zero(),
            "clean_every",
            "must be longer than zero",
        );
    }
}

/// Why a take was refused. Nothing was taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("rate limited: enough tokens in {retry_after:?}")]
    Limited { retry_after: Duration },
    #[error("more than the bucket holds: cost {cost}, capacity {capacity}")]
    TooCostly { cost: u32, capacity: u32 },
    #[error("{max} keys are all in use; a new key is refused")]
    TooManyKeys { max: usize },
}

/// The buckets, without a process: what [`RateLimiter`] guards with its lock. Times are
/// durations since any fixed origin (the limiter's start).
#[derive(Debug, Clone)]
pub struct Buckets {
    config: LimiterConfig,
    /// Key to (tokens in billionths, when they were counted).
    table: BTreeMap<String, (u128, Duration)>,
}

impl Buckets {
    pub fn new(config: LimiterConfig) -> Buckets {
        Buckets {
            config,
            table: BTreeMap::new(),
        }
    }

    fn full(&self) -> u128 {
        u128::from(self.config.capacity) * NANOS
    }

    /// The tokens (in billionths) a bucket counted at `at` holds at `now`.
    fn level(&self, (tokens, at): (u128, Duration), now: Duration) -> u128 {
        let elapsed = now.saturating_sub(at).as_nanos();
        let refill = elapsed.saturating_mul(u128::from(self.config.refill_per_sec));
        tokens.saturating_add(refill).min(self.full())
    }

    /// The tokens (in billionths) `key` has at `now`.
    fn tokens(&self, key: &str, now: Duration) -> u128 {
        self.table
            .get(key)
            .map_or(self.full(), |entry| self.level(*entry, now))
    }

    /// Takes `cost` tokens from `key`'s bucket at `now`, or says why not.
    pub fn take(&mut self, key: &str, cost: u32, now: Duration) -> Result<(), LimitError> {
        if cost > self.config.capacity {
            return Err(LimitError::TooCostly {
                cost,
                capacity: self.config.capacity,
            });
        }
        let have = self.tokens(key, now);
        let need = u128::from(cost) * NANOS;
        if have < need {
            let rate = u128::from(self.config.refill_per_sec);
            let nanos = (need - have).div_ceil(rate);
            return Err(LimitError::Limited {
                retry_after: Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)),
            });
        }
        if !self.table.contains_key(key) && self.table.len() >= self.config.max_keys {
            self.clean(now);
            if self.table.len() >= self.config.max_keys {
                return Err(LimitError::TooManyKeys {
                    max: self.config.max_keys,
                });
            }
        }
        self.table.insert(key.to_string(), (have - need, now));
        Ok(())
    }

    /// Removes every bucket that is full at `now` (it decides exactly as an absent one);
    /// returns how many went.
    pub fn clean(&mut self, now: Duration) -> usize {
        let before = self.table.len();
        let full: Vec<String> = self
            .table
            .iter()
            .filter(|(_, entry)| self.level(**entry, now) >= self.full())
            .map(|(k, _)| k.clone())
            .collect();
        for k in full {
            self.table.remove(&k);
        }
        before - self.table.len()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// The limiter: its buckets, and the supervised process that cleans them.
#[derive(Clone)]
pub struct RateLimiter {
    buckets: Arc<Mutex<Buckets>>,
    /// When the limiter started, on the node's clock: bucket times count from here.
    origin: Instant,
    node: u32,
}

/// The cleaner's timer tag.
const CLEAN: u64 = 1;

struct Cleaner {
    limiter: RateLimiter,
    every: Duration,
}

impl Actor for Cleaner {
    type Msg = ();

    async fn init(&mut self, ctx: &mut Ctx<()>) -> Result<(), ExitReason> {
        ctx.send_after(self.every, CLEAN);
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Ctx<()>, event: Event<()>) -> Flow {
        if let Event::Timer { tag: CLEAN, .. } = event {
            let (removed, left) = {
                let mut b = self.limiter.lock();
                (b.clean(self.limiter.now()), b.len())
            };
            if removed > 0 {
                event!(
                    "limiter-clean",
                    node = self.limiter.node,
                    removed = removed,
                    keys = left
                );
            }
            ctx.send_after(self.every, CLEAN);
        }
        Flow::Continue
    }
}

impl RateLimiter {
    /// Validates `config` (every problem listed), then starts the cleaner under a one-for-one
    /// supervisor named `name`, linked to `parent`. Returns the handle and the supervisor.
    pub async fn start(
        node: &Node,
        name: &str,
        parent: Option<Pid>,
        config: LimiterConfig,
    ) -> Result<(RateLimiter, Pid), StartError> {
        let problems = Problems::of(&config);
        if !problems.is_empty() {
            return Err(StartError::Invalid(problems.to_string()));
        }
        let every = config.clean_every;
        let limiter = RateLimiter {
            buckets: Arc::new(Mutex::new(Buckets::new(config))),
            origin: Instant::now(),
            node: node.index(),
        };
        let handle = limiter.clone();
        let cleaner = ChildSpec::new("cleaner", move |node: Node, sup: Pid| {
            let actor = Cleaner {
                limiter: handle.clone(),
                every,
            };
            async move {
                start_actor(
                    &node,
                    "limiter-cleaner",
                    Some(sup),
                    Duration::from_secs(1),
                    actor,
                )
                .await
            }
        });
        let spec = Spec::new(Strategy::OneForOne).child(cleaner);
        let sup = supervisor::start(node, name, parent, spec).await?;
        Ok((limiter, sup))
    }

    fn lock(&self) -> MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    /// Takes `cost` tokens from `key`'s bucket now (the caller's task, no call).
    pub fn take(&self, key: &str, cost: u32) -> Result<(), LimitError> {
        let now = self.now();
        self.lock().take(key, cost, now)
    }

    /// How many keys the table holds now.
    pub fn keys(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests;
