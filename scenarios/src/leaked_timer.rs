//! `leaked-timer` (Fix #5): a cache with a TTL table and a periodic cleanup, restarted by its
//! supervisor whenever a bad request crashes it (crash times drawn from the seed).
//!
//! - `flawed`: the cache starts its cleanup ticker as a separate, unlinked process and never
//!   stops it, as an Erlang cache does with `:timer.send_interval` (the interval belongs to the
//!   timer server, not the cache). Each restart leaves one more ticker ticking at a dead pid.
//! - `fixed`: the cleanup is a `send_after` timer owned by the cache, re-armed on each tick,
//!   cancelled in `terminate` and in any case aborted when the cache exits.
//!
//! Invariants:
//! - `timers-bounded` (safety, checked as the run goes): the node has at most one live timer
//!   (the cache's cleanup), however often the cache restarts.
//! - `table-bounded` (safety): the table holds at most what the writes of one TTL and two
//!   cleanup intervals can put there.
//! - `cache-cleans-after-restarts` (liveness): after the quiet phase the cache is up and no
//!   entry has outlived its expiry by more than three cleanup intervals.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy};
use groundhog_runtime::{start_actor, Actor, Ctx, Event, ExitReason, Flow, Node, Pid, Ref};
use groundhog_sim::Violation;
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, NodeCtx, Scenario, Setup};
use rand::Rng;
use serde::{Deserialize, Serialize};

const TTL: Duration = Duration::from_millis(300);
const CLEANUP_EVERY: Duration = Duration::from_millis(100);
/// The writer puts at most one entry per this long.
const MIN_PUT_GAP_MS: u64 = 20;
/// One entry per `MIN_PUT_GAP_MS` for `TTL` and two cleanup intervals (an entry lives until the
/// first cleanup after it expires; around a restart the next cleanup can be an interval later),
/// and one more.
const TABLE_MAX: usize =
    ((TTL.as_millis() + 2 * CLEANUP_EVERY.as_millis()) as u64 / MIN_PUT_GAP_MS + 1) as usize;
/// At most this many live timers on the node: the cache's one cleanup timer.
const TIMERS_MAX: usize = 1;
const CHECK_EVERY: Duration = Duration::from_millis(250);
const AFTER_QUIET: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, Deserialize)]
enum CacheMsg {
    Put(u64),
    /// From the flawed variant's ticker process.
    Tick,
    /// A request the cache cannot handle: it crashes.
    Poison,
}

#[derive(Default)]
struct World {
    /// The current incarnation's runtime node.
    node: Option<Node>,
    incarnation: u64,
    cache: Option<(u64, Pid)>,
    /// The cache's table, key to expiry (in memory: it starts empty with each incarnation).
    table: BTreeMap<u64, Duration>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct LeakedTimer;

impl Scenario for LeakedTimer {
    fn name(&self) -> &'static str {
        "leaked-timer"
    }

    fn about(&self) -> &'static str {
        "a restarted cache must not leave its cleanup timer behind; timers and table stay bounded"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(vec![FaultKind::CrashNode, FaultKind::PauseNode], 0.5, 3_000);
        Setup::new(1, faults).seed_budget(5)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let (seed, owned) = (ctx.seed(), ctx.variant() == "fixed");
    {
        let world = world.clone();
        ctx.start_node(0, move |node: NodeCtx| {
            let world = world.clone();
            async move { node_main(node.incarnation(), world, seed, owned).await }
        });
    }
    ctx.checking(CHECK_EVERY, || check_bounds(&ctx, &world), ctx.quiesce())
        .await?;
    ctx.checking(
        CHECK_EVERY,
        || check_bounds(&ctx, &world),
        rt::sleep(AFTER_QUIET),
    )
    .await?;
    check_bounds(&ctx, &world)?;
    let w = lock(&world);
    let up = w.cache.is_some_and(|(inc, pid)| {
        inc == w.incarnation && w.node.as_ref().is_some_and(|n| n.is_alive(pid))
    });
    ctx.check("cache-cleans-after-restarts", up, || {
        "the cache is not running after the quiet phase".to_string()
    })?;
    let now = rt::elapsed();
    let stale = w
        .table
        .iter()
        .find(|(_, &expiry)| expiry + 3 * CLEANUP_EVERY < now);
    ctx.check("cache-cleans-after-restarts", stale.is_none(), || {
        let (key, expiry) = stale.map(|(k, e)| (*k, *e)).unwrap_or_default();
        format!("entry {key} expired at {expiry:?} and is still in the table at {now:?}")
    })
}

fn check_bounds(ctx: &Driver, world: &Shared) -> Result<(), Violation> {
    let w = lock(world);
    let timers = w.node.as_ref().map_or(0, Node::timer_count);
    ctx.check("timers-bounded", timers <= TIMERS_MAX, || {
        format!("{timers} live timers on the node (at most {TIMERS_MAX}: the cache's cleanup)")
    })?;
    let size = w.table.len();
    ctx.check("table-bounded", size <= TABLE_MAX, || {
        format!("the cache table holds {size} entries (at most {TABLE_MAX})")
    })
}

/// One incarnation of the node: the cache under its supervisor, and a client writing to it.
async fn node_main(incarnation: u64, world: Shared, seed: u64, owned: bool) {
    let node = Node::local(0, incarnation);
    {
        let mut w = lock(&world);
        w.node = Some(node.clone());
        w.incarnation = incarnation;
        w.cache = None;
        w.table.clear();
    }
    let cache = {
        let world = world.clone();
        ChildSpec::new("cache", move |node: Node, sup: Pid| {
            let world = world.clone();
            async move {
                let actor = Cache {
                    world: world.clone(),
                    owned,
                    timer: None,
                };
                let pid =
                    start_actor(&node, "cache", Some(sup), Duration::from_secs(1), actor).await?;
                lock(&world).cache = Some((incarnation, pid));
                Ok(pid)
            }
        })
    };
    // Generous limits: the crashes drawn below never reach them.
    let spec = Spec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(5))
        .child(cache);
    if supervisor::start(&node, "cache-sup", None, spec)
        .await
        .is_err()
    {
        return;
    }
    let rng = rt::seeded_rng(seed, Stream::Extra(incarnation as u32));
    node.spawn("writer", move |ctx: Ctx<()>| {
        writer(ctx, world, rng, incarnation)
    });
}

/// Puts fresh keys, and now and then (2 to 4 times, 1.1 s or more apart) a request that crashes
/// the cache.
async fn writer(
    ctx: Ctx<()>,
    world: Shared,
    mut rng: rt::ChaCha8Rng,
    incarnation: u64,
) -> ExitReason {
    let start = rt::elapsed();
    let mut crashes = Vec::new();
    let mut at = Duration::from_millis(rng.gen_range(300..800));
    for _ in 0..rng.gen_range(2..=4) {
        crashes.push(start + at);
        at += Duration::from_millis(rng.gen_range(1_100..1_600));
    }
    crashes.reverse();
    let mut key = 0;
    loop {
        rt::sleep(Duration::from_millis(rng.gen_range(MIN_PUT_GAP_MS..80))).await;
        let Some((inc, cache)) = lock(&world).cache else {
            continue;
        };
        if inc != incarnation {
            continue;
        }
        let msg = if crashes.last().is_some_and(|&c| rt::elapsed() >= c) {
            crashes.pop();
            CacheMsg::Poison
        } else {
            key += 1;
            CacheMsg::Put(key)
        };
        let _ = ctx.send(cache, msg);
    }
}

struct Cache {
    world: Shared,
    /// Whether the cleanup timer is the cache's own (`fixed`) or a separate ticker (`flawed`).
    owned: bool,
    timer: Option<Ref>,
}

impl Cache {
    fn clean(&self) {
        let now = rt::elapsed();
        lock(&self.world).table.retain(|_, expiry| *expiry > now);
    }
}

impl Actor for Cache {
    type Msg = CacheMsg;

    /// Traps exits, as every actor did before trapping became a choice.
    fn trap_exit(&self) -> bool {
        true
    }

    async fn init(&mut self, ctx: &mut Ctx<CacheMsg>) -> Result<(), ExitReason> {
        if self.owned {
            self.timer = Some(ctx.send_after(CLEANUP_EVERY, 0));
        } else {
            // The flaw: an interval nobody stops, ticking at this pid after it is gone.
            let cache = ctx.pid();
            ctx.spawn("cleanup-ticker", move |mut ctx: Ctx<()>| async move {
                loop {
                    ctx.send_after(CLEANUP_EVERY, 0);
                    if let Event::Timer { .. } = ctx.recv().await {
                        let _ = ctx.send(cache, CacheMsg::Tick);
                    }
                }
            });
        }
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Ctx<CacheMsg>, event: Event<CacheMsg>) -> Flow {
        match event {
            Event::Msg { msg, .. } => match msg {
                CacheMsg::Put(key) => {
                    let expiry = rt::elapsed() + TTL;
                    lock(&self.world).table.insert(key, expiry);
                }
                CacheMsg::Tick => self.clean(),
                CacheMsg::Poison => return Flow::Stop(ExitReason::error("bad request")),
            },
            Event::Timer { .. } => {
                self.clean();
                self.timer = Some(ctx.send_after(CLEANUP_EVERY, 0));
            }
            _ => {}
        }
        Flow::Continue
    }

    async fn terminate(&mut self, ctx: &mut Ctx<CacheMsg>, _reason: &ExitReason) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_timer(timer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_bound_is_what_ttl_and_two_cleanups_allow() {
        assert_eq!(TABLE_MAX, 26);
    }
}
