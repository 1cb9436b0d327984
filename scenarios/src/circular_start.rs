//! `circular-start` (Fix #8): three to five services, each needing some of the others, declared
//! in an order drawn from the seed; in about a third of the seeds two of them need each other,
//! directly or through a third.
//!
//! - `flawed`: the services start in declaration order under one supervisor, and each waits at
//!   start-up (up to 200 ms) for what it needs to be registered, then goes on without it, as
//!   the report's platform did with its circular supervisor dependencies: a service declared
//!   before what it needs starts without it, and a cycle starts some service without its need
//!   however they are ordered.
//! - `fixed`: `services::start` orders the services by what they need and refuses a cycle,
//!   naming the services on it, before anything starts.
//!
//! Invariants (after the quiet phase):
//! - `no-start-without-dependencies` (safety): no service finished starting while something it
//!   needs was not running.
//! - `cycle-refused-by-name` (safety): with a cycle, nothing started and the refusal named
//!   services that are on a cycle (each reaches itself through what it needs), and only those.
//! - `acyclic-starts-everything` (liveness): without a cycle, every service is running.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::services::{self, GraphError, Service, ServicesError};
use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy};
use groundhog_runtime::{start_actor, Actor, Ctx, Event, ExitReason, Flow, Node, Pid, Registry};
use groundhog_sim::Violation;
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, NodeCtx, Scenario, Setup};
use rand::seq::SliceRandom;
use rand::Rng;

const WAIT: Duration = Duration::from_millis(200);
const POLL: Duration = Duration::from_millis(10);

/// The drawn services: name and what it needs, in declaration order.
type Graph = Vec<(String, Vec<String>)>;

fn draw(rng: &mut rt::ChaCha8Rng) -> Graph {
    let n = rng.gen_range(3..=5);
    let names: Vec<String> = (0..n).map(|i| format!("svc{i}")).collect();
    // Acyclic: a service may need only services with a lower number.
    let mut needs: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (i, need) in needs.iter_mut().enumerate() {
        for j in 0..i {
            if rng.gen_bool(0.4) {
                need.insert(j);
            }
        }
    }
    if rng.gen_bool(0.35) {
        // Close a cycle: a lower service needs a higher one that needs it, directly or
        // through a service between them.
        let b = rng.gen_range(2..n);
        let a = rng.gen_range(0..b - 1);
        if rng.gen_bool(0.5) {
            needs[b].insert(a);
        } else {
            let m = rng.gen_range(a + 1..b);
            needs[b].insert(m);
            needs[m].insert(a);
        }
        needs[a].insert(b);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    order
        .into_iter()
        .map(|i| {
            let need = needs[i].iter().map(|j| names[*j].clone()).collect();
            (names[i].clone(), need)
        })
        .collect()
}

/// The services that reach themselves through what they need.
fn on_cycles(graph: &Graph) -> BTreeSet<String> {
    let needs: BTreeMap<&str, &Vec<String>> = graph.iter().map(|(n, d)| (n.as_str(), d)).collect();
    let reaches_itself = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = needs[start].iter().map(String::as_str).collect();
        while let Some(at) = stack.pop() {
            if at == start {
                return true;
            }
            if seen.insert(at) {
                stack.extend(needs[at].iter().map(String::as_str));
            }
        }
        false
    };
    graph
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| reaches_itself(n))
        .collect()
}

#[derive(Default)]
struct World {
    node: Option<Node>,
    /// Services that finished starting, and which of their needs were not running then.
    started: Vec<(String, Vec<String>)>,
    running: BTreeMap<String, Pid>,
    /// The services a refused start named.
    refused: Option<BTreeSet<String>>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct CircularStart;

impl Scenario for CircularStart {
    fn name(&self) -> &'static str {
        "circular-start"
    }

    fn about(&self) -> &'static str {
        "services start after what they need; a dependency cycle is refused by name before anything starts"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(vec![FaultKind::CrashNode], 0.3, 2_000);
        Setup::new(1, faults).seed_budget(10)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let graph = draw(&mut rt::seeded_rng(ctx.seed(), Stream::Workload));
    let cycle = on_cycles(&graph);
    ctx.note(&format!("services {graph:?} on-cycles={cycle:?}"));
    let ordered = ctx.variant() == "fixed";
    {
        let (world, graph) = (world.clone(), graph.clone());
        ctx.start_node(0, move |node: NodeCtx| {
            let (world, graph) = (world.clone(), graph.clone());
            async move { node_main(node.incarnation(), world, graph, ordered).await }
        });
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(2)).await;
    let w = lock(&world);
    let without = w.started.iter().find(|(_, missing)| !missing.is_empty());
    ctx.check("no-start-without-dependencies", without.is_none(), || {
        let (name, missing) = without.cloned().unwrap_or_default();
        format!("{name} started while {missing:?}, which it needs, was not running")
    })?;
    if !cycle.is_empty() {
        ctx.check(
            "cycle-refused-by-name",
            w.started.is_empty()
                && w.refused
                    .as_ref()
                    .is_some_and(|named| !named.is_empty() && named.is_subset(&cycle)),
            || {
                format!(
                    "services {cycle:?} are on a cycle; started {:?}, refusal named {:?}",
                    w.started.iter().map(|s| &s.0).collect::<Vec<_>>(),
                    w.refused
                )
            },
        )?;
    } else {
        let alive = |name: &str| {
            w.running
                .get(name)
                .is_some_and(|pid| w.node.as_ref().is_some_and(|n| n.is_alive(*pid)))
        };
        let down: Vec<&String> = graph.iter().map(|g| &g.0).filter(|n| !alive(n)).collect();
        ctx.check("acyclic-starts-everything", down.is_empty(), || {
            format!("no cycle, but {down:?} not running")
        })?;
    }
    Ok(())
}

async fn node_main(incarnation: u64, world: Shared, graph: Graph, ordered: bool) {
    let node = Node::local(0, incarnation);
    {
        let mut w = lock(&world);
        w.node = Some(node.clone());
        w.running.clear();
    }
    let intensity = (3, Duration::from_secs(5));
    let children = graph
        .iter()
        .map(|(name, needs)| (service(name, needs, &world, !ordered), needs));
    if ordered {
        let services: Vec<Service> = children
            .map(|(child, needs)| {
                needs
                    .iter()
                    .fold(Service::new(child), |s, need| s.needs(need))
            })
            .collect();
        match services::start(&node, "services", None, &(), services, intensity).await {
            Err(ServicesError::Graph(GraphError::Cycles(cycles))) => {
                lock(&world).refused = Some(cycles.into_iter().flatten().collect());
            }
            Err(e) => {
                lock(&world).refused = Some(BTreeSet::from([format!("not a cycle: {e}")]));
            }
            Ok(_) => {}
        }
    } else {
        let spec = children.fold(
            Spec::new(Strategy::OneForOne).intensity(intensity.0, intensity.1),
            |spec, (child, _)| spec.child(child),
        );
        let _ = supervisor::start(&node, "services", None, spec).await;
    }
}

fn service(name: &str, needs: &[String], world: &Shared, wait: bool) -> ChildSpec {
    let (world, needs, name) = (world.clone(), needs.to_vec(), name.to_string());
    ChildSpec::new(&name.clone(), move |node: Node, sup: Pid| {
        let actor = Svc {
            name: name.clone(),
            needs: needs.clone(),
            world: world.clone(),
            wait,
        };
        let (world, name) = (world.clone(), name.clone());
        async move {
            let pid = start_actor(&node, &name, Some(sup), Duration::from_secs(1), actor).await?;
            lock(&world).running.insert(name, pid);
            Ok(pid)
        }
    })
}

/// A service that registers its name once started; the flawed one first waits a while for
/// what it needs and then starts anyway.
struct Svc {
    name: String,
    needs: Vec<String>,
    world: Shared,
    wait: bool,
}

impl Actor for Svc {
    type Msg = ();

    async fn init(&mut self, ctx: &mut Ctx<()>) -> Result<(), ExitReason> {
        let registry = Registry::local(ctx.node());
        let missing = |r: &Registry| -> Vec<String> {
            self.needs
                .iter()
                .filter(|n| r.whereis(n).is_none())
                .cloned()
                .collect()
        };
        if self.wait {
            let until = rt::Instant::now() + WAIT;
            while !missing(&registry).is_empty() && rt::Instant::now() < until {
                rt::sleep(POLL).await;
            }
        }
        let missing = missing(&registry);
        lock(&self.world).started.push((self.name.clone(), missing));
        registry
            .register(&self.name, ctx.pid())
            .map_err(|e| ExitReason::error(format!("register: {e}")))?;
        Ok(())
    }

    async fn handle(&mut self, _ctx: &mut Ctx<()>, _event: Event<()>) -> Flow {
        Flow::Continue
    }
}
