//! A cache: bounded size, a time to live on the node's clock, and a supervised sweeper.
//!
//! - **Entries** live `ttl` from their last `put`; a `get` never returns an expired value.
//! - **Bounded.** At most `capacity` entries. A `put` that would exceed it first drops every
//!   expired entry, then the least recently used ones (a `get` hit or a `put` counts as a use)
//!   until there is room: eviction order is stated, and the same on every run.
//! - **Off the mailbox, kept across restarts.** Reads and writes run in the caller's task under
//!   the handle's lock, and the table belongs to the handle, so the sweeper (which drops expired
//!   entries every `sweep_every`, so memory does not wait for the next overflow) can crash and
//!   be restarted by its supervisor without losing the cache. Its timer is its own and dies
//!   with it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::rt::{Duration, Instant};
use crate::services::{Problems, Validate};
use crate::supervisor::{self, ChildSpec, Spec, Strategy};
use crate::{event, start_actor, Actor, Ctx, Event, ExitReason, Flow, Node, Pid, StartError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub capacity: usize,
    pub ttl: Duration,
    pub sweep_every: Duration,
}

impl Validate for CacheConfig {
    fn check(&self, p: &mut Problems) {
        p.require(self.capacity > 0, "capacity", "must be at least 1");
        p.require(!self.ttl.is_zero(), "ttl", "must be longer than zero");
        p.require(
            !self.sweep_every.is_zero(),
            "sweep_every",
            "must be longer than zero",
        );
    }
}

/// The entries, without a process. Times are durations since any fixed origin.
#[derive(Debug, Clone)]
pub struct Entries<V> {
    config: CacheConfig,
    /// Key to (value, expiry, last use).
    table: BTreeMap<String, (V, Duration, u64)>,
    /// Last use to key: the least recently used first.
    recency: BTreeMap<u64, String>,
    uses: u64,
}

impl<V: Clone> Entries<V> {
    pub fn new(config: CacheConfig) -> Entries<V> {
        Entries {
            config,
            table: BTreeMap::new(),
            recency: BTreeMap::new(),
            uses: 0,
        }
    }

    fn touch(&mut self, key: &str) {
        self.uses += 1;
        if let Some(entry) = self.table.get_mut(key) {
            self.recency.remove(&entry.2);
            entry.2 = self.uses;
            self.recency.insert(self.uses, key.to_string());
        }
    }

    fn remove(&mut self, key: &str) -> Option<V> {
        let (value, _, used) = self.table.remove(key)?;
        self.recency.remove(&used);
        Some(value)
    }

    /// The value of `key`, unless absent or expired at `now` (an expired one is dropped).
    pub fn get(&mut self, key: &str, now: Duration) -> Option<V> {
        let expires = self.table.get(key)?.1;
        if expires <= now {
            self.remove(key);
            return None;
        }
        self.touch(key);
        self.table.get(key).map(|e| e.0.clone())
    }

    /// Stores `value` under `key` until `now + ttl`, evicting as the module says if full.
    /// Returns how many other entries were evicted.
    pub fn put(&mut self, key: &str, value: V, now: Duration) -> usize {
        self.remove(key);
        let mut evicted = 0;
        if self.table.len() >= self.config.capacity {
            evicted += self.sweep(now);
        }
        while self.table.len() >= self.config.capacity {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.table.remove(&oldest);
            evicted += 1;
        }
        self.table
            .insert(key.to_string(), (value, now + self.config.ttl, 0));
        self.touch(key);
        evicted
    }

    /// Drops every entry expired at `now`; returns how many.
    pub fn sweep(&mut self, now: Duration) -> usize {
        let expired: Vec<String> = self
            .table
            .iter()
            .filter(|(_, e)| e.1 <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.remove(k);
        }
        expired.len()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// The cache: its entries, and the supervised process that sweeps them.
pub struct Cache<V> {
    entries: Arc<Mutex<Entries<V>>>,
    origin: Instant,
    node: u32,
}

impl<V> Clone for Cache<V> {
    fn clone(&self) -> Self {
        Cache {
            entries: self.entries.clone(),
            origin: self.origin,
            node: self.node,
        }
    }
}

const SWEEP: u64 = 1;

struct Sweeper<V> {
    cache: Cache<V>,
    every: Duration,
}

impl<V: Clone + Send + 'static> Actor for Sweeper<V> {
    type Msg = ();

    async fn init(&mut self, ctx: &mut Ctx<()>) -> Result<(), ExitReason> {
        ctx.send_after(self.every, SWEEP);
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Ctx<()>, event: Event<()>) -> Flow {
        if let Event::Timer { tag: SWEEP, .. } = event {
            let now = self.cache.now();
            let (removed, left) = {
                let mut e = self.cache.lock();
                (e.sweep(now), e.len())
            };
            if removed > 0 {
                event!(
                    "cache-sweep",
                    node = self.cache.node,
                    removed = removed,
                    entries = left
                );
            }
            ctx.send_after(self.every, SWEEP);
        }
        Flow::Continue
    }
}

impl<V: Clone + Send + 'static> Cache<V> {
    /// Validates `config` (every problem listed), then starts the sweeper under a one-for-one
    /// supervisor named `name`, linked to `parent`. Returns the handle and the supervisor.
    pub async fn start(
        node: &Node,
        name: &str,
        parent: Option<Pid>,
        config: CacheConfig,
    ) -> Result<(Cache<V>, Pid), StartError> {
        let problems = Problems::of(&config);
        if !problems.is_empty() {
            return Err(StartError::Invalid(problems.to_string()));
        }
        let every = config.sweep_every;
        let cache = Cache {
            entries: Arc::new(Mutex::new(Entries::new(config))),
            origin: Instant::now(),
            node: node.index(),
        };
        let handle = cache.clone();
        let sweeper = ChildSpec::new("sweeper", move |node: Node, sup: Pid| {
            let actor = Sweeper {
                cache: handle.clone(),
                every,
            };
            async move {
                start_actor(
                    &node,
                    "cache-sweeper",
                    Some(sup),
                    Duration::from_secs(1),
                    actor,
                )
                .await
            }
        });
        let spec = Spec::new(Strategy::OneForOne).child(sweeper);
        let sup = supervisor::start(node, name, parent, spec).await?;
        Ok((cache, sup))
    }

    fn lock(&self) -> MutexGuard<'_, Entries<V>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let now = self.now();
        self.lock().get(key, now)
    }

    pub fn put(&self, key: &str, value: V) {
        let now = self.now();
        self.lock().put(key, value, now);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests;
