//! `supervisor-limits` (Fix #4): a worker crash-loops against a failing dependency under a
//! supervisor. The production spec allows 3 restarts in 5 s; past that the supervisor gives up
//! and its parent (the application) learns it and backs off before trying the subtree again.
//!
//! - `fixed`: the supervisor runs with the production limits (3 in 5 s), the same data in tests
//!   and production.
//! - `flawed`: the supervisor runs with the test suite's lenient limits (100 in 10 s). A worker
//!   whose connection attempt takes 150 ms or more never reaches them, so the supervisor never
//!   gives up, the parent never hears of the outage, and the dependency is hammered.
//!
//! Invariants, from the production spec:
//! - `dependency-not-hammered` (safety, checked as the run goes): within one run of the node, the
//!   dependency sees at most 8 connection attempts in any 5 s (two bursts of 1 + 3 restarts).
//! - `parent-learns-of-escalation` (liveness): the supervision tree that lives through the
//!   fault-free end of the outage gave up at least once during it, and its parent saw that exit.
//! - `worker-reconnects` (liveness): once the dependency is back, the worker is connected again.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration};
use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy};
use groundhog_runtime::{event, Ctx, Event, ExitReason, Node, Pid, SpawnOpts, StartError};
use groundhog_sim::Violation;
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, NodeCtx, Scenario, Setup};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Production limits: more than 3 restarts in 5 s and the supervisor gives up.
const PRODUCTION: (u32, Duration) = (3, Duration::from_secs(5));
/// The test suite's limits, which hide the crash loop.
const LENIENT: (u32, Duration) = (100, Duration::from_secs(10));
/// What the dependency may see per window: two bursts of one start and three restarts.
const MAX_ATTEMPTS: usize = 8;
const WINDOW: Duration = Duration::from_secs(5);
/// How long the application waits after its subtree gave up before starting it again.
const BACKOFF: Duration = Duration::from_secs(5);
/// A connected worker queries the dependency this often.
const QUERY_EVERY: Duration = Duration::from_millis(500);
/// The outage lasts this long into the quiet phase, so one tree lives through it fault-free.
const TAIL: Duration = Duration::from_secs(4);
/// Time given after the outage to back off and reconnect.
const RECOVER: Duration = Duration::from_secs(8);
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Requests the dependency answers.
#[derive(Debug, Serialize, Deserialize)]
enum DbReq {
    Connect,
    Query,
}

#[derive(Debug, Clone, Copy)]
struct Attempt {
    incarnation: u64,
    at: Duration,
    ok: bool,
}

struct World {
    /// The dependency is down from `outage.0` until `outage.1`.
    outage: (Duration, Duration),
    attempts: Vec<Attempt>,
    /// `(incarnation, time)` of every give-up the application saw.
    escalations: Vec<(u64, Duration)>,
    /// The incarnation whose worker is connected now, if any.
    connected: Option<u64>,
    incarnation: u64,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct SupervisorLimits;

impl Scenario for SupervisorLimits {
    fn name(&self) -> &'static str {
        "supervisor-limits"
    }

    fn about(&self) -> &'static str {
        "a worker crash-loops on a failing dependency; the supervisor must give up, not hammer it"
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
    let mut rng = ctx.rng();
    let outage_start = Duration::from_millis(rng.gen_range(200..1_500));
    let connect_timeout = Duration::from_millis(rng.gen_range(150..300));
    let limits = if ctx.variant() == "fixed" {
        PRODUCTION
    } else {
        LENIENT
    };
    ctx.note(&format!(
        "outage from {outage_start:?}, connect timeout {connect_timeout:?}, limits {} in {:?}",
        limits.0, limits.1
    ));
    let world: Shared = Arc::new(Mutex::new(World {
        outage: (outage_start, Duration::MAX),
        attempts: Vec::new(),
        escalations: Vec::new(),
        connected: None,
        incarnation: 0,
    }));
    {
        let world = world.clone();
        ctx.start_node(0, move |node: NodeCtx| {
            let world = world.clone();
            async move { node_main(node.incarnation(), world, connect_timeout, limits) }
        });
    }
    // Safety as the run goes, until the quiet phase.
    ctx.checking(CHECK_EVERY, || check_hammering(&ctx, &world), ctx.quiesce())
        .await?;
    // The dependency comes back `TAIL` into the quiet phase.
    let outage_end = ctx.now() + TAIL;
    lock(&world).outage.1 = outage_end;
    ctx.checking(
        CHECK_EVERY,
        || check_hammering(&ctx, &world),
        rt::sleep(outage_end + RECOVER - ctx.now()),
    )
    .await?;
    check_hammering(&ctx, &world)?;
    let w = lock(&world);
    let last = w.incarnation;
    let escalated = w
        .escalations
        .iter()
        .any(|&(inc, at)| inc == last && at >= outage_start && at <= outage_end);
    ctx.check("parent-learns-of-escalation", escalated, || {
        format!(
            "the dependency was down from {outage_start:?} to {outage_end:?}, the last {:?} of \
             it without faults, and the supervisor never gave up ({} failed attempts in that run)",
            TAIL,
            w.attempts
                .iter()
                .filter(|a| a.incarnation == last && !a.ok)
                .count()
        )
    })?;
    ctx.check("worker-reconnects", w.connected == Some(last), || {
        format!(
            "the dependency has been back since {outage_end:?}, but the worker is not connected"
        )
    })
}

/// At most `MAX_ATTEMPTS` connection attempts in any `WINDOW`, within one run of the node.
fn check_hammering(ctx: &Driver, world: &Shared) -> Result<(), Violation> {
    let worst = worst_window(&lock(world).attempts);
    ctx.check("dependency-not-hammered", worst.is_none(), || {
        let (n, at) = worst.unwrap_or_default();
        format!(
            "the dependency saw {n} connection attempts in the {WINDOW:?} from {at:?} \
             (at most {MAX_ATTEMPTS} allowed)"
        )
    })
}

/// The busiest `WINDOW` of one node run with more than `MAX_ATTEMPTS` attempts: how many and
/// when it began.
fn worst_window(attempts: &[Attempt]) -> Option<(usize, Duration)> {
    let mut worst: Option<(usize, Duration)> = None;
    for (i, first) in attempts.iter().enumerate() {
        let n = attempts[i..]
            .iter()
            .take_while(|b| b.incarnation == first.incarnation && b.at < first.at + WINDOW)
            .count();
        if n > MAX_ATTEMPTS && worst.is_none_or(|(m, _)| n > m) {
            worst = Some((n, first.at));
        }
    }
    worst
}

/// One incarnation of the node: the dependency, and the application over the supervised worker.
fn node_main(incarnation: u64, world: Shared, connect_timeout: Duration, limits: (u32, Duration)) {
    lock(&world).incarnation = incarnation;
    let node = Node::local(0, incarnation);
    let db = node.spawn("db", {
        let world = world.clone();
        move |ctx| dependency(ctx, world, incarnation)
    });
    let spec = move |world: Shared| {
        Spec::new(Strategy::OneForOne)
            .intensity(limits.0, limits.1)
            .child(ChildSpec::new("worker", move |node: Node, sup: Pid| {
                let world = world.clone();
                async move {
                    let opts = SpawnOpts::named("worker").link(sup);
                    Ok::<Pid, StartError>(node.spawn_opts(opts, move |ctx| {
                        worker(ctx, world, db, incarnation, connect_timeout)
                    }))
                }
            }))
    };
    node.spawn_opts(
        SpawnOpts::named("app").trap_exit(),
        move |mut ctx: Ctx<()>| async move {
            loop {
                let node = ctx.node().clone();
                let me = ctx.pid();
                let sup = match supervisor::start(&node, "db-sup", Some(me), spec(world.clone()))
                    .await
                {
                    Ok(sup) => sup,
                    Err(e) => return ExitReason::error(e.to_string()),
                };
                let reason = loop {
                    if let Event::Exit { from, reason } = ctx.recv().await {
                        if from == sup {
                            break reason;
                        }
                    }
                };
                lock(&world).escalations.push((incarnation, rt::elapsed()));
                event!("note", node = me.node, msg = "subtree gave up; backing off", reason = %reason);
                rt::sleep(BACKOFF).await;
            }
        },
    );
}

/// The dependency: silent while down (a connection attempt times out), and it counts attempts.
async fn dependency(mut ctx: Ctx<DbReq>, world: Shared, incarnation: u64) -> ExitReason {
    loop {
        let Event::Call { msg, reply, .. } = ctx.recv().await else {
            continue;
        };
        let mut w = lock(&world);
        let now = rt::elapsed();
        let up = !(w.outage.0 <= now && now < w.outage.1);
        if let DbReq::Connect = msg {
            w.attempts.push(Attempt {
                incarnation,
                at: now,
                ok: up,
            });
        }
        if up {
            reply.reply(());
        }
    }
}

/// Connects, then queries; any failure is a crash, for the supervisor to restart.
async fn worker(
    ctx: Ctx<()>,
    world: Shared,
    db: Pid,
    incarnation: u64,
    timeout: Duration,
) -> ExitReason {
    if ctx
        .call::<_, ()>(db, DbReq::Connect, timeout)
        .await
        .is_err()
    {
        return ExitReason::error("cannot connect to the dependency");
    }
    lock(&world).connected = Some(incarnation);
    loop {
        rt::sleep(QUERY_EVERY).await;
        if ctx.call::<_, ()>(db, DbReq::Query, timeout).await.is_err() {
            lock(&world).connected = None;
            return ExitReason::error("lost the dependency");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(incarnation: u64, ms: u64) -> Attempt {
        Attempt {
            incarnation,
            at: Duration::from_millis(ms),
            ok: false,
        }
    }

    #[test]
    fn attempts_are_counted_per_window_and_per_run() {
        // Nine attempts 500 ms apart fall in one 5 s window: one too many.
        let nine: Vec<Attempt> = (0..9).map(|k| at(1, k * 500)).collect();
        assert_eq!(worst_window(&nine), Some((9, Duration::ZERO)));
        // The same nine split over two runs of the node are fine.
        let split: Vec<Attempt> = (0..9).map(|k| at(1 + k / 5, k * 500)).collect();
        assert_eq!(worst_window(&split), None);
        // Nine attempts 700 ms apart never put more than 8 in a window.
        let slow: Vec<Attempt> = (0..9).map(|k| at(1, k * 700)).collect();
        assert_eq!(worst_window(&slow), None);
    }
}
