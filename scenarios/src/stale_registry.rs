//! `stale-registry` (004 issue 1, dual storage): workers on three nodes are registered, killed
//! and unregistered by name while nodes crash and the network splits; every node looks names up.
//! Invariants: no lookup returns a pid more than [`DETECT`] after its death (or its node's
//! crash) became known; after the quiet phase every node sees exactly the live registrations.
//!
//! - `fixed`: every read and write goes through the cluster [`Registry`] backend, whose monitors
//!   remove a name when its process dies or its node is declared down.
//! - `flawed`: the 004 pattern. Registrations are also written to a plain per-node map that
//!   lookups consult first, falling back to the backend; nothing but an explicit unregister
//!   ever removes from that map, so a dead worker's name keeps resolving on its node.
//!
//! History: a name's registration, unregistration and lookups on the node incarnation that
//! registered it are `write`/`read` operations of a linearizable [`Map`] (keyed by name). The
//! death of a named worker is a `write` of `nil` invoked at the kill and answered [`DETECT`]
//! later (the registry promises to forget the name within that time, no sooner than the kill).
//! Lookups from other nodes are not recorded: the cluster registry is eventually consistent
//! across nodes (a name registered during a split is not seen across it), which the liveness
//! check after the quiet phase covers. The flawed variant fails the map check alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::channel::oneshot;
use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::{
    Ctx, Event, ExitReason, NameConflict, Node, NodeConfig, Pid, Registry, RegistryError,
};
use groundhog_sim::checker::Map;
use groundhog_sim::{
    BoxFuture, Driver, FaultKind, FaultMix, History, OpId, Scenario, Setup, Value, Violation,
};
use rand::Rng;

const NODES: u32 = 3;
const HEARTBEAT: Duration = Duration::from_millis(50);
const DOWN_AFTER: Duration = Duration::from_millis(500);
/// Failure detection (silence past `DOWN_AFTER`) plus a generous margin for delivery.
pub const DETECT: Duration = Duration::from_millis(1_500);
/// The workload runs while faults happen, then stops so the quiet phase can converge.
const WORKLOAD_MS: u64 = 3_000;

/// One node incarnation's way of naming workers: the backend alone, or the flawed dual store.
#[derive(Clone)]
struct View {
    registry: Registry,
    /// `Some` in the flawed variant: the plain map lookups read first (node memory, made anew
    /// with each node incarnation; not a disk).
    cache: Option<Arc<Mutex<BTreeMap<String, Pid>>>>,
}

impl View {
    fn register(&self, name: &str, pid: Pid) -> Result<(), RegistryError> {
        self.registry.register(name, pid)?;
        if let Some(cache) = &self.cache {
            lock(cache).insert(name.to_string(), pid);
        }
        Ok(())
    }

    fn unregister(&self, name: &str) -> Result<Pid, RegistryError> {
        if let Some(cache) = &self.cache {
            lock(cache).remove(name);
        }
        self.registry.unregister(name)
    }

    fn lookup(&self, name: &str) -> Option<Pid> {
        let cached = self.cache.as_ref().and_then(|c| lock(c).get(name).copied());
        cached.or_else(|| self.registry.whereis(name))
    }

    fn registered(&self) -> BTreeMap<String, Pid> {
        let mut all: BTreeMap<String, Pid> = self.registry.registered().into_iter().collect();
        if let Some(cache) = &self.cache {
            for (name, pid) in lock(cache).iter() {
                all.entry(name.clone()).or_insert(*pid);
            }
        }
        all
    }
}

/// The scenario's view for checking the invariants and recording the history.
#[derive(Default)]
struct World {
    /// Each node's current incarnation and its view.
    views: BTreeMap<u32, (u64, View)>,
    /// When each node incarnation was superseded by a restart (its processes died by then).
    superseded: BTreeMap<(u32, u64), Duration>,
    /// Acknowledged registrations (names are unique to one registration).
    acked: BTreeMap<String, Pid>,
    unregistered: BTreeSet<String>,
    /// Workers killed by the workload, and when.
    killed: BTreeMap<Pid, Duration>,
    /// Lookups that returned a pid long dead: (at, node, name, pid, dead since).
    stale: Vec<(Duration, u32, String, Pid, Duration)>,
    /// The node incarnation that registered each name (its lookups there are recorded).
    owner: BTreeMap<String, (u32, u64)>,
    /// Deaths of named workers: the history's `write nil`, answered once `DETECT` has passed.
    deaths: Vec<(OpId, Duration)>,
}

impl World {
    fn dead_since(&self, pid: Pid) -> Option<Duration> {
        let killed = self.killed.get(&pid).copied();
        let crashed = self.superseded.get(&(pid.node, pid.incarnation)).copied();
        match (killed, crashed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Acknowledged, not unregistered, and its process alive.
    fn live(&self) -> BTreeMap<String, Pid> {
        self.acked
            .iter()
            .filter(|(n, p)| !self.unregistered.contains(*n) && self.dead_since(**p).is_none())
            .map(|(n, p)| (n.clone(), *p))
            .collect()
    }
}

type Shared = Arc<Mutex<World>>;

fn lock<T>(m: &Arc<Mutex<T>>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct StaleRegistry;

impl Scenario for StaleRegistry {
    fn name(&self) -> &'static str {
        "stale-registry"
    }

    fn about(&self) -> &'static str {
        "names of dead workers must stop resolving; every node sees every live name after heal"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![
                FaultKind::CrashNode,
                FaultKind::Partition,
                FaultKind::SetLoss,
            ],
            0.4,
            WORKLOAD_MS,
        );
        Setup::new(NODES, faults)
            .net(rt::NetConfig {
                loss: 0.02,
                latency: Duration::from_millis(1)..Duration::from_millis(20),
            })
            .seed_budget(20)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let flawed = ctx.variant() == "flawed";
    let seed = ctx.seed();
    for n in 0..NODES {
        let world = world.clone();
        let history = ctx.history();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            let history = history.clone();
            async move {
                let config = NodeConfig::cluster(n, node.incarnation(), NODES)
                    .heartbeat(HEARTBEAT, DOWN_AFTER);
                let rt_node = Node::start(config).await.expect("the port is free");
                let view = View {
                    registry: Registry::cluster(&rt_node),
                    cache: flawed.then(Arc::default),
                };
                {
                    let mut w = lock(&world);
                    if let Some((old, _)) = w.views.insert(n, (node.incarnation(), view.clone())) {
                        w.superseded.insert((n, old), rt::elapsed());
                    }
                }
                let stream =
                    |k: u32| Stream::Extra(k * 1_000 + n * 100 + node.incarnation() as u32);
                manager(
                    &rt_node,
                    view.clone(),
                    world.clone(),
                    history.clone(),
                    rt::seeded_rng(seed, stream(1)),
                );
                reader(
                    &rt_node,
                    view,
                    world,
                    history.clone(),
                    rt::seeded_rng(seed, stream(2)),
                );
            }
        });
    }
    // Safety: readers record stale lookups as they happen.
    while ctx.now() < Duration::from_millis(WORKLOAD_MS) {
        rt::sleep(Duration::from_millis(250)).await;
        answer_deaths(&ctx.history(), &world, ctx.now());
        check_stale(&ctx, &world)?;
    }
    ctx.quiesce().await;
    answer_deaths(&ctx.history(), &world, Duration::MAX);
    check_stale(&ctx, &world)?;
    // Liveness: after the quiet phase every node sees exactly the live registrations.
    let expected = lock(&world).live();
    for n in 0..NODES {
        let (tx, rx) = oneshot::channel();
        let view = lock(&world).views.get(&n).map(|(_, v)| v.clone());
        ctx.spawn_on(n, async move {
            let _ = tx.send(view.map(|v| v.registered()));
        });
        let seen: BTreeMap<String, Pid> = rx
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, _)| name.starts_with('w'))
            .collect();
        ctx.check("every-node-sees-every-live-name", seen == expected, || {
            let missing: Vec<_> = expected
                .iter()
                .filter(|(k, _)| !seen.contains_key(*k))
                .collect();
            let extra: Vec<_> = seen
                .iter()
                .filter(|e| !expected.contains_key(e.0) || expected[e.0] != *e.1)
                .collect();
            format!("node {n} after the quiet phase: missing {missing:?}, wrong or dead {extra:?}")
        })?;
    }
    // After the hand-written invariants, whose messages name the scenario's own terms.
    ctx.check_linear("owner-lookups-linearizable", &Map)
}

/// Answers the deaths whose `DETECT` has passed by `now`.
fn answer_deaths(history: &History, world: &Shared, now: Duration) {
    let mut w = lock(world);
    w.deaths.retain(|&(op, killed)| {
        let due = killed + DETECT <= now;
        if due {
            history.ok(op, Value::Nil);
        }
        !due
    });
}

fn check_stale(ctx: &Driver, world: &Shared) -> Result<(), Violation> {
    let w = lock(world);
    let first = w.stale.first().cloned();
    ctx.check("no-lookup-returns-a-dead-pid", first.is_none(), || {
        match &first {
            Some((at, node, name, pid, since)) => format!(
                "at {at:?} node {node} resolved `{name}` to {pid}, dead since {since:?} (limit {DETECT:?})"
            ),
            None => String::new(),
        }
    })
}

fn now_in_workload() -> bool {
    rt::elapsed() < Duration::from_millis(WORKLOAD_MS)
}

/// Spawns, names, kills and unregisters this node's workers at random.
fn manager(node: &Node, view: View, world: Shared, history: History, mut rng: rt::ChaCha8Rng) {
    let (index, incarnation) = (node.index(), node.incarnation());
    let me = format!("n{index}.{incarnation}");
    node.spawn("manager", move |ctx: Ctx<()>| async move {
        let mut mine: Vec<(String, Pid)> = Vec::new();
        let mut k = 0u32;
        while now_in_workload() {
            rt::sleep(Duration::from_millis(rng.gen_range(20..120))).await;
            match rng.gen_range(0..10) {
                0..=4 => {
                    k += 1;
                    let name = format!("w{index}.{incarnation}.{k}");
                    let pid = ctx.spawn("worker", |mut ctx: Ctx<NameConflict>| async move {
                        loop {
                            if let Event::Msg { .. } = ctx.recv().await {}
                        }
                    });
                    if view.register(&name, pid).is_ok() {
                        history.instant(&me, &name, "write", pid.to_string(), Value::Nil);
                        let mut w = lock(&world);
                        w.acked.insert(name.clone(), pid);
                        w.owner.insert(name.clone(), (index, incarnation));
                        drop(w);
                        mine.push((name, pid));
                    }
                }
                5..=7 if !mine.is_empty() => {
                    let (name, pid) = mine.remove(rng.gen_range(0..mine.len()));
                    let death = history.invoke(&me, &name, "write", Value::Nil);
                    let mut w = lock(&world);
                    w.killed.insert(pid, rt::elapsed());
                    w.deaths.push((death, rt::elapsed()));
                    drop(w);
                    ctx.exit(pid, ExitReason::Kill);
                }
                8 if !mine.is_empty() => {
                    let (name, _) = mine.remove(rng.gen_range(0..mine.len()));
                    if view.unregister(&name).is_ok() {
                        history.instant(&me, &name, "write", Value::Nil, Value::Nil);
                        lock(&world).unregistered.insert(name);
                    }
                }
                _ => {}
            }
        }
        ExitReason::Normal
    });
}

/// Looks up names registered anywhere and records any that resolve to a long-dead pid.
fn reader(node: &Node, view: View, world: Shared, history: History, mut rng: rt::ChaCha8Rng) {
    let (index, incarnation) = (node.index(), node.incarnation());
    let me = format!("n{index}.{incarnation}");
    node.spawn("reader", move |_ctx: Ctx<()>| async move {
        while now_in_workload() {
            rt::sleep(Duration::from_millis(rng.gen_range(10..60))).await;
            let names: Vec<String> = lock(&world).acked.keys().cloned().collect();
            if names.is_empty() {
                continue;
            }
            let name = &names[rng.gen_range(0..names.len())];
            let found = view.lookup(name);
            let owned = lock(&world).owner.get(name) == Some(&(index, incarnation));
            if owned {
                let seen = Value::from(found.map(|p| p.to_string()));
                history.instant(&me, name, "read", Value::Nil, seen);
            }
            let Some(pid) = found else {
                continue;
            };
            let now = rt::elapsed();
            let mut w = lock(&world);
            if let Some(since) = w.dead_since(pid) {
                if now > since + DETECT {
                    w.stale.push((now, index, name.clone(), pid, since));
                }
            }
        }
        ExitReason::Normal
    });
}
