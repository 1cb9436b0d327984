//! `unbounded-table` (Fix #2): a gateway rate-limits requests per client session, and sessions
//! churn: each is used for a short while, then never again (the mix and the pace drawn from
//! the seed). The per-key table must stay bounded.
//!
//! - `flawed`: the rate limiter keeps one bucket per key in a plain map and never removes one,
//!   as the report's tables without size limits or cleanup did: every session ever seen stays,
//!   and the table grows with the run.
//! - `fixed`: `services::limiter::RateLimiter`: at most `max_keys` buckets, full buckets (which
//!   decide exactly as absent ones) removed by a supervised cleaner every `clean_every` and
//!   whenever a new key finds the table full. The plan may kill the cleaner (the table is the
//!   handle's, so nothing is forgotten) or pause the node.
//!
//! Invariants:
//! - `table-bounded` (safety, after every request and checked every 50 ms): the table never
//!   holds more than `MAX_KEYS` keys.
//! - `new-keys-served` (liveness): after the quiet phase the gateway still serves new sessions:
//!   some are granted and none is refused for want of room.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, Instant, Stream};
use groundhog_runtime::services::limiter::{LimitError, LimiterConfig, RateLimiter};
use groundhog_runtime::{Ctx, Node, Registry};
use groundhog_sim::Violation;
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, NodeCtx, Scenario, Setup, Target};
use rand::Rng;

const CAPACITY: u32 = 3;
const REFILL_PER_SEC: u32 = 20;
const MAX_KEYS: usize = 64;
/// Sessions in use at once: each request goes to one of the newest few, or opens a new one.
const ACTIVE: usize = 6;

#[derive(Default)]
struct World {
    /// Keys in the table after the latest request, and the most it held (with when).
    table: usize,
    peak: (usize, Duration),
    sessions: u64,
    granted: u64,
    limited: u64,
    /// New keys refused because the table was full (fixed only).
    refused_new: u64,
    quiet: bool,
    new_after_quiet: u64,
    refused_after_quiet: u64,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct UnboundedTable;

impl Scenario for UnboundedTable {
    fn name(&self) -> &'static str {
        "unbounded-table"
    }

    fn about(&self) -> &'static str {
        "a per-key table under churning keys must stay bounded: cleaned, with a cap, not grown forever"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![
                FaultKind::KillProcess,
                FaultKind::ExitProcess,
                FaultKind::PauseNode,
            ],
            0.4,
            2_000,
        )
        .targets(vec![(
            0,
            Target::Child {
                supervisor: "limiter".into(),
                child: "cleaner".into(),
            },
        )]);
        Setup::new(1, faults)
            .seed_budget(5)
            .coverage("fixed", &["table-full"])
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let (seed, bounded) = (ctx.seed(), ctx.variant() == "fixed");
    {
        let world = world.clone();
        ctx.start_node(0, move |node: NodeCtx| {
            let world = world.clone();
            async move { node_main(node.incarnation(), world, seed, bounded).await }
        });
    }
    let check = || {
        let w = lock(&world);
        let (peak, at) = w.peak;
        // Fixed: the cap reached, so a new key made the limiter clean on demand.
        if ctx.variant() == "fixed" {
            ctx.sometimes("table-full", peak == MAX_KEYS);
        }
        ctx.check("table-bounded", peak <= MAX_KEYS, || {
            format!(
                "the table held {peak} keys at {at:?} (at most {MAX_KEYS}); {} sessions seen",
                w.sessions
            )
        })
    };
    ctx.checking(Duration::from_millis(50), check, ctx.quiesce())
        .await?;
    lock(&world).quiet = true;
    ctx.checking(
        Duration::from_millis(50),
        check,
        rt::sleep(Duration::from_secs(1)),
    )
    .await?;
    check()?;
    let w = lock(&world);
    ctx.note(&format!(
        "sessions={} granted={} limited={} refused_new={} table={} peak={}",
        w.sessions, w.granted, w.limited, w.refused_new, w.table, w.peak.0
    ));
    ctx.check(
        "new-keys-served",
        w.new_after_quiet > 0 && w.refused_after_quiet == 0,
        || {
            format!(
                "after the quiet phase {} new session(s) were granted and {} refused for want of room",
                w.new_after_quiet, w.refused_after_quiet
            )
        },
    )
}

/// The flawed limiter: one bucket per key in a map nothing ever shrinks.
struct Naive {
    origin: Instant,
    /// Key to (tokens in billionths, when they were counted).
    buckets: BTreeMap<String, (u128, Duration)>,
}

impl Naive {
    fn take(&mut self, key: &str) -> Result<(), LimitError> {
        const NANOS: u128 = 1_000_000_000;
        let now = Instant::now().saturating_duration_since(self.origin);
        let full = u128::from(CAPACITY) * NANOS;
        let (tokens, at) = self.buckets.get(key).copied().unwrap_or((full, now));
        let refill = now.saturating_sub(at).as_nanos() * u128::from(REFILL_PER_SEC);
        let have = (tokens + refill).min(full);
        if have < NANOS {
            let wait = (NANOS - have).div_ceil(u128::from(REFILL_PER_SEC));
            return Err(LimitError::Limited {
                retry_after: Duration::from_nanos(wait as u64),
            });
        }
        self.buckets.insert(key.to_string(), (have - NANOS, now));
        Ok(())
    }
}

enum Limiter {
    Naive(Naive),
    Bounded(RateLimiter),
}

impl Limiter {
    fn take(&mut self, key: &str) -> Result<(), LimitError> {
        match self {
            Limiter::Naive(n) => n.take(key),
            Limiter::Bounded(l) => l.take(key, 1),
        }
    }

    fn keys(&self) -> usize {
        match self {
            Limiter::Naive(n) => n.buckets.len(),
            Limiter::Bounded(l) => l.keys(),
        }
    }
}

/// One incarnation: the limiter (and, fixed, its supervised cleaner registered as `limiter`),
/// and the gateway taking one token per request.
async fn node_main(incarnation: u64, world: Shared, seed: u64, bounded: bool) {
    let node = Node::local(0, incarnation);
    lock(&world).table = 0;
    let mut limiter = if bounded {
        let config = LimiterConfig {
            capacity: CAPACITY,
            refill_per_sec: REFILL_PER_SEC,
            max_keys: MAX_KEYS,
            clean_every: Duration::from_millis(100),
        };
        let Ok((limiter, sup)) = RateLimiter::start(&node, "limiter", None, config).await else {
            return;
        };
        let _ = Registry::local(&node).register("limiter", sup);
        Limiter::Bounded(limiter)
    } else {
        Limiter::Naive(Naive {
            origin: Instant::now(),
            buckets: BTreeMap::new(),
        })
    };
    let mut rng = rt::seeded_rng(seed, Stream::Extra(incarnation as u32));
    // The seed's churn: how often a request opens a new session, and the pace.
    let churn = rng.gen_range(0.08..0.25);
    let pace_us = rng.gen_range(1_500..4_000);
    node.spawn("gateway", move |_ctx: Ctx<()>| async move {
        let mut sessions: Vec<String> = Vec::new();
        loop {
            rt::sleep(Duration::from_micros(
                rng.gen_range(pace_us / 2..pace_us * 3 / 2),
            ))
            .await;
            let fresh = sessions.is_empty() || rng.gen_bool(churn);
            let key = if fresh {
                let n = {
                    let mut w = lock(&world);
                    w.sessions += 1;
                    w.sessions
                };
                sessions.push(format!("s{incarnation}-{n}"));
                if sessions.len() > ACTIVE {
                    sessions.remove(0);
                }
                sessions.last().cloned().unwrap_or_default()
            } else {
                sessions[rng.gen_range(0..sessions.len())].clone()
            };
            let got = limiter.take(&key);
            let keys = limiter.keys();
            let mut w = lock(&world);
            w.table = keys;
            if keys > w.peak.0 {
                w.peak = (keys, rt::elapsed());
            }
            match got {
                Ok(()) => w.granted += 1,
                Err(LimitError::Limited { .. }) => w.limited += 1,
                Err(_) => w.refused_new += 1,
            }
            if fresh && w.quiet {
                match got {
                    Ok(()) => w.new_after_quiet += 1,
                    Err(_) => w.refused_after_quiet += 1,
                }
            }
        }
    });
}
