//! `blocking-call` (Fix #1): a connection manager serves quick lookups and, now and then, a slow
//! fetch (a remote request taking seconds). Invariant: while one fetch is slow, the other callers
//! are still answered within their deadline.
//!
//! - `flawed`: the manager awaits the fetch inside its own loop (`Task.await` in `handle_call`),
//!   so every lookup queued behind it times out.
//! - `fixed`: the manager hands the fetch to a task under its task supervisor, keeps the caller's
//!   `ReplyTo` with it, and goes back to its mailbox; the task answers when the fetch is done.
//!
//! Invariants:
//! - `lookups-answered-in-time` (safety, checked as the run goes): no lookup times out while the
//!   node is running (time the node spent paused by a fault excuses the calls it overlaps).
//! - `fetches-answered` (liveness): after the quiet phase, every fetch gets its (deferred) answer.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::supervisor::{self, task, ChildSpec, Spec, Strategy};
use groundhog_runtime::{start_actor, Actor, CallError, Ctx, Event, ExitReason, Flow, Node, Pid};
use groundhog_sim::Violation;
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, NodeCtx, Scenario, Setup};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A lookup's caller gives up after this long.
const LOOKUP_DEADLINE: Duration = Duration::from_millis(250);
const FETCH_DEADLINE: Duration = Duration::from_secs(5);
const LOOKUP_CLIENTS: u32 = 2;
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// The node's own clock probe: a gap longer than this means the node was not running.
const PROBE_EVERY: Duration = Duration::from_millis(50);
const STALL: Duration = Duration::from_millis(100);
/// How long the workload goes on into the quiet phase.
const AFTER_QUIET: Duration = Duration::from_secs(6);

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// Answered at once with a value derived from the key.
    Lookup(u64),
    /// A remote request that takes `ms` milliseconds.
    Fetch { ms: u64 },
}

#[derive(Debug, Clone, Copy)]
struct CallRecord {
    started: Duration,
    ended: Duration,
    timed_out: bool,
    fetch: bool,
}

#[derive(Default)]
struct World {
    server: Option<(u64, Pid)>,
    calls: Vec<CallRecord>,
    /// When the fetch in flight (if any) was made.
    fetching: Option<Duration>,
    /// Intervals in which the node did not run (paused).
    stalls: Vec<(Duration, Duration)>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct BlockingCall;

impl Scenario for BlockingCall {
    fn name(&self) -> &'static str {
        "blocking-call"
    }

    fn about(&self) -> &'static str {
        "a server awaits a slow request in its own loop; other callers must still be answered"
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
    let (seed, deferred) = (ctx.seed(), ctx.variant() == "fixed");
    {
        let world = world.clone();
        ctx.start_node(0, move |node: NodeCtx| {
            let world = world.clone();
            async move { node_main(node.incarnation(), world, seed, deferred).await }
        });
    }
    ctx.checking(CHECK_EVERY, || check_lookups(&ctx, &world), ctx.quiesce())
        .await?;
    let quiet_at = ctx.now();
    ctx.checking(
        CHECK_EVERY,
        || check_lookups(&ctx, &world),
        rt::sleep(AFTER_QUIET),
    )
    .await?;
    check_lookups(&ctx, &world)?;
    let w = lock(&world);
    let fetches = w
        .calls
        .iter()
        .filter(|c| c.fetch && c.started >= quiet_at)
        .collect::<Vec<_>>();
    let unanswered = fetches.iter().find(|c| c.timed_out);
    ctx.check("fetches-answered", unanswered.is_none(), || {
        let c = unanswered.copied().copied();
        format!(
            "a fetch issued at {:?} after the quiet phase got no answer in {FETCH_DEADLINE:?}",
            c.map(|c| c.started).unwrap_or_default()
        )
    })?;
    ctx.check("fetches-answered", !fetches.is_empty(), || {
        format!("no fetch completed in the {AFTER_QUIET:?} after the quiet phase")
    })
}

fn check_lookups(ctx: &Driver, world: &Shared) -> Result<(), Violation> {
    let w = lock(world);
    let late = w.calls.iter().find(|c| {
        !c.fetch
            && c.timed_out
            && !w
                .stalls
                .iter()
                .any(|&(from, to)| from < c.ended && c.started < to)
    });
    ctx.check("lookups-answered-in-time", late.is_none(), || {
        let c = late.copied().expect("a late call");
        let busy = w.fetching.filter(|&f| f <= c.started).or_else(|| {
            w.calls
                .iter()
                .find(|f| f.fetch && f.started <= c.started && c.started < f.ended)
                .map(|f| f.started)
        });
        format!(
            "a lookup made at {:?} was not answered within {LOOKUP_DEADLINE:?}{}",
            c.started,
            busy.map(|f| format!(" (a fetch made at {f:?} was in progress)"))
                .unwrap_or_default()
        )
    })
}

/// One incarnation of the node: the manager under its supervisor, the clients, a clock probe.
async fn node_main(incarnation: u64, world: Shared, seed: u64, deferred: bool) {
    let node = Node::local(0, incarnation);
    rt::spawn(clock_probe(world.clone()));
    let manager = {
        let world = world.clone();
        ChildSpec::new("conn-manager", move |node: Node, sup: Pid| {
            let world = world.clone();
            async move {
                let actor = ConnManager {
                    deferred,
                    fetchers: None,
                };
                let pid = start_actor(
                    &node,
                    "conn-manager",
                    Some(sup),
                    Duration::from_secs(1),
                    actor,
                )
                .await?;
                lock(&world).server = Some((incarnation, pid));
                Ok(pid)
            }
        })
    };
    let spec = Spec::new(Strategy::OneForOne).child(manager);
    if supervisor::start(&node, "conn-sup", None, spec)
        .await
        .is_err()
    {
        return;
    }
    for c in 0..=LOOKUP_CLIENTS {
        let rng = rt::seeded_rng(seed, Stream::Extra(c * 1_000 + incarnation as u32));
        let world = world.clone();
        let name = if c == 0 { "fetcher" } else { "looker" };
        node.spawn(name, move |ctx: Ctx<()>| {
            client(ctx, world, rng, incarnation, c == 0)
        });
    }
}

/// Records the intervals in which this node's tasks did not run.
async fn clock_probe(world: Shared) {
    loop {
        let before = rt::elapsed();
        rt::sleep(PROBE_EVERY).await;
        let after = rt::elapsed();
        if after - before > STALL {
            lock(&world).stalls.push((before, after));
        }
    }
}

async fn client(
    ctx: Ctx<()>,
    world: Shared,
    mut rng: rt::ChaCha8Rng,
    incarnation: u64,
    fetcher: bool,
) -> ExitReason {
    loop {
        let pause = if fetcher { 300..1_500 } else { 50..250 };
        rt::sleep(Duration::from_millis(rng.gen_range(pause))).await;
        let Some((inc, server)) = lock(&world).server else {
            continue;
        };
        if inc != incarnation {
            continue;
        }
        let (request, deadline) = if fetcher {
            let ms = rng.gen_range(800..2_000);
            (Request::Fetch { ms }, FETCH_DEADLINE)
        } else {
            (Request::Lookup(rng.gen_range(0..1_000)), LOOKUP_DEADLINE)
        };
        let started = rt::elapsed();
        if fetcher {
            lock(&world).fetching = Some(started);
        }
        let answer: Result<u64, CallError> = ctx.call(server, request, deadline).await;
        let mut w = lock(&world);
        if fetcher {
            w.fetching = None;
        }
        w.calls.push(CallRecord {
            started,
            ended: rt::elapsed(),
            timed_out: matches!(answer, Err(CallError::Timeout)),
            fetch: fetcher,
        });
    }
}

/// The connection manager.
struct ConnManager {
    /// Whether slow fetches are handed to a task (`fixed`) or awaited in the loop (`flawed`).
    deferred: bool,
    fetchers: Option<Pid>,
}

impl Actor for ConnManager {
    type Msg = Request;

    /// Traps exits, as every actor did before trapping became a choice.
    fn trap_exit(&self) -> bool {
        true
    }

    async fn init(&mut self, ctx: &mut Ctx<Request>) -> Result<(), ExitReason> {
        if self.deferred {
            self.fetchers = Some(task::start(ctx.node(), "fetchers", Some(ctx.pid()), None));
        }
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Ctx<Request>, event: Event<Request>) -> Flow {
        let Event::Call { msg, reply, .. } = event else {
            return Flow::Continue;
        };
        match msg {
            Request::Lookup(key) => reply.reply(key * 2),
            Request::Fetch { ms } => match self.fetchers {
                Some(sup) => {
                    task::spawn_task(ctx.node(), sup, "fetch", async move {
                        rt::sleep(Duration::from_millis(ms)).await;
                        reply.reply(ms);
                        Ok(())
                    });
                }
                None => {
                    // The flaw: the loop waits here, and so does everyone queued behind.
                    rt::sleep(Duration::from_millis(ms)).await;
                    reply.reply(ms);
                }
            },
        }
        Flow::Continue
    }
}
