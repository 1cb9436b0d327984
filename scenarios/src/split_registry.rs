//! `split-registry`: three nodes keep claiming the same few names (a claimer registers a new
//! holder whenever a name looks free) while partitions split the cluster, so both sides of a
//! split register the same name. Invariant: after the heal and the quiet phase, every node
//! resolves each name to the same live holder, and every other live holder that was
//! acknowledged for it has been told it lost ([`NameConflict`]).
//!
//! - `fixed`: the cluster [`Registry`]: the earlier registration wins on every node, the loser's
//!   node tells it, and replicas re-push their names after a heal. Also checked: every
//!   `NameConflict` a loser gets names a claim that ranks before its own (smaller
//!   `(stamp, pid)`: the documented rule, so a reversed rule fails), and no holder that was told
//!   it lost a name resolves as its holder at the end.
//! - `flawed`: a hand-written replicated map: a claim is broadcast once, each node keeps the last
//!   claim it received (last-writer-wins per node), nobody tells a loser, and nothing is
//!   exchanged again after a heal, so the two sides keep different holders.
//!
//! History: the registry is not linearizable during a partition, by design (both sides accept
//! a claim; the heal picks a winner), so the model it meets is the weaker *converged register*:
//! after the quiet phase, with no claims in flight, each node's read of a name is a `read` of
//! one [`Register`] per name whose value before them is unknown ([`Register::unknown_initial`]),
//! that is, every node reads the same holder. The flawed variant fails it alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::channel::oneshot;
use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::{
    Ctx, Event, ExitReason, NameConflict, Node, NodeConfig, Pid, Registry, RegistryError,
};
use groundhog_sim::checker::Register;
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, Scenario, Setup, Value, Violation};
use rand::Rng;
use serde::{Deserialize, Serialize};

const NODES: u32 = 3;
const NAMES: [&str; 3] = ["leader", "primary", "scheduler"];
const HEARTBEAT: Duration = Duration::from_millis(40);
const DOWN_AFTER: Duration = Duration::from_millis(200);
const WORKLOAD_MS: u64 = 4_000;
/// The node-local name of the flawed variant's replica.
const FLAWED_REPLICA: &str = "split.replica";

fn lock<T>(m: &Arc<Mutex<T>>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The flawed variant's broadcast: `name` is now `pid`'s.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claim {
    name: String,
    pid: Pid,
}

/// The flawed replicated map: last writer wins on each node, claims are sent once. Its table is
/// node memory (made anew with each node incarnation), not a disk.
#[derive(Clone)]
struct NaiveNames {
    node: Node,
    replica: Pid,
    table: Arc<Mutex<BTreeMap<String, Pid>>>,
}

impl NaiveNames {
    fn start(node: &Node, nodes: u32) -> NaiveNames {
        let table: Arc<Mutex<BTreeMap<String, Pid>>> = Arc::default();
        let t = table.clone();
        let replica = node.spawn("naive-replica", move |mut ctx: Ctx<Claim>| async move {
            loop {
                match ctx.recv().await {
                    Event::Msg { msg, .. } => {
                        ctx.monitor(msg.pid);
                        lock(&t).insert(msg.name, msg.pid);
                    }
                    Event::Down { pid, .. } => lock(&t).retain(|_, p| *p != pid),
                    _ => {}
                }
            }
        });
        let _ = Registry::local(node).register(FLAWED_REPLICA, replica);
        let _ = nodes;
        NaiveNames {
            node: node.clone(),
            replica,
            table,
        }
    }

    fn register(&self, name: &str, pid: Pid) -> Result<(), RegistryError> {
        if let Some(holder) = lock(&self.table).get(name).copied() {
            return Err(RegistryError::AlreadyRegistered {
                name: name.to_string(),
                holder,
            });
        }
        lock(&self.table).insert(name.to_string(), pid);
        let claim = Claim {
            name: name.to_string(),
            pid,
        };
        let _ = self.node.send(self.replica, self.replica, claim.clone());
        for peer in (0..NODES).filter(|p| *p != self.node.index()) {
            let _ = self
                .node
                .send_to_name(self.replica, peer, FLAWED_REPLICA, claim.clone());
        }
        Ok(())
    }

    fn whereis(&self, name: &str) -> Option<Pid> {
        lock(&self.table).get(name).copied()
    }
}

#[derive(Clone)]
enum Names {
    Cluster(Registry),
    Naive(NaiveNames),
}

impl Names {
    fn register(&self, name: &str, pid: Pid) -> Result<(), RegistryError> {
        match self {
            Names::Cluster(r) => r.register(name, pid),
            Names::Naive(n) => n.register(name, pid),
        }
    }

    fn whereis(&self, name: &str) -> Option<Pid> {
        match self {
            Names::Cluster(r) => r.whereis(name),
            Names::Naive(n) => n.whereis(name),
        }
    }
}

/// The scenario's view for checking the invariants (each node's names live on that node).
#[derive(Default)]
struct World {
    names: BTreeMap<u32, Names>,
    /// Current incarnation of each node; pids of earlier ones are dead.
    incarnation: BTreeMap<u32, u64>,
    /// Acknowledged registrations: (name, holder).
    acked: BTreeSet<(String, Pid)>,
    killed: BTreeSet<Pid>,
    /// Holders that received a `NameConflict`, with the name.
    told: BTreeSet<(String, Pid)>,
    /// `NameConflict`s whose winner does not rank before the loser.
    misranked: Vec<String>,
}

impl World {
    fn alive(&self, pid: Pid) -> bool {
        !self.killed.contains(&pid) && self.incarnation.get(&pid.node) == Some(&pid.incarnation)
    }
}

type Shared = Arc<Mutex<World>>;

pub struct SplitRegistry;

impl Scenario for SplitRegistry {
    fn name(&self) -> &'static str {
        "split-registry"
    }

    fn about(&self) -> &'static str {
        "a name claimed on both sides of a partition has one holder after the heal; the loser is told"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![
                FaultKind::Partition,
                FaultKind::Partition,
                FaultKind::SetLoss,
            ],
            0.5,
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
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let config = NodeConfig::cluster(n, node.incarnation(), NODES)
                    .heartbeat(HEARTBEAT, DOWN_AFTER);
                let rt_node = Node::start(config).await.expect("the port is free");
                let names = if flawed {
                    Names::Naive(NaiveNames::start(&rt_node, NODES))
                } else {
                    Names::Cluster(Registry::cluster(&rt_node))
                };
                {
                    let mut w = lock(&world);
                    w.names.insert(n, names.clone());
                    w.incarnation.insert(n, node.incarnation());
                }
                let stream = Stream::Extra(n * 100 + node.incarnation() as u32);
                claimer(&rt_node, names, world, rt::seeded_rng(seed, stream));
            }
        });
    }
    ctx.quiesce().await;
    // Each node's view of every name, read on that node.
    let mut views: BTreeMap<u32, Vec<Option<Pid>>> = BTreeMap::new();
    for n in 0..NODES {
        let (tx, rx) = oneshot::channel();
        let names = lock(&world).names.get(&n).cloned();
        ctx.spawn_on(n, async move {
            let seen = names.map(|r| NAMES.iter().map(|name| r.whereis(name)).collect());
            let _ = tx.send(seen);
        });
        let seen: Vec<Option<Pid>> = rx.await.ok().flatten().unwrap_or_default();
        for (name, holder) in NAMES.iter().zip(&seen) {
            let holder = Value::from(holder.map(|p| p.to_string()));
            ctx.history()
                .instant(format!("n{n}"), *name, "read", Value::Nil, holder);
        }
        views.insert(n, seen);
    }
    let w = lock(&world);
    ctx.check("the-earlier-claim-wins", w.misranked.is_empty(), || {
        format!(
            "a loser was told of a winner that ranks after it: {}",
            w.misranked.join("; ")
        )
    })?;
    for (i, name) in NAMES.iter().enumerate() {
        let holders: BTreeSet<Option<Pid>> = views
            .values()
            .map(|v| v.get(i).copied().flatten())
            .collect();
        ctx.check("one-holder-after-heal", holders.len() == 1, || {
            let each: Vec<String> = views
                .iter()
                .map(|(n, v)| format!("node {n}: {}", holder_of(v.get(i).copied().flatten())))
                .collect();
            format!(
                "`{name}` resolves differently across nodes after the heal: {}",
                each.join(", ")
            )
        })?;
        let winner = holders.into_iter().next().flatten();
        if let Some(winner) = winner {
            ctx.check("the-holder-is-alive", w.alive(winner), || {
                format!("`{name}` resolves to {winner}, which is dead")
            })?;
            ctx.check(
                "a-told-loser-does-not-hold",
                !w.told.contains(&(name.to_string(), winner)),
                || format!("`{name}` resolves to {winner}, which was told it lost it"),
            )?;
        }
        let untold: Vec<Pid> = w
            .acked
            .iter()
            .filter(|(n, p)| n == name && Some(*p) != winner && w.alive(*p))
            .filter(|(n, p)| !w.told.contains(&(n.clone(), *p)))
            .map(|(_, p)| *p)
            .collect();
        ctx.check("the-loser-is-told", untold.is_empty(), || {
            let untold: Vec<String> = untold.iter().map(Pid::to_string).collect();
            format!(
                "`{name}` is held by {}; live holders {} lost it and were never told",
                holder_of(winner),
                untold.join(", ")
            )
        })?;
    }
    drop(w);
    // After the hand-written invariants, whose messages name the scenario's own terms.
    ctx.check_linear("reads-after-heal-agree", &Register::unknown_initial())
}

/// A name's holder as the docs write pids (`<1.1.9>`), or `nobody`.
fn holder_of(pid: Option<Pid>) -> String {
    pid.map_or_else(|| "nobody".to_string(), |p| p.to_string())
}

/// Claims free names by registering new holders; now and then kills one of its holders.
fn claimer(node: &Node, names: Names, world: Shared, mut rng: rt::ChaCha8Rng) {
    node.spawn("claimer", move |ctx: Ctx<()>| async move {
        let mut mine: Vec<Pid> = Vec::new();
        while rt::elapsed() < Duration::from_millis(WORKLOAD_MS) {
            rt::sleep(Duration::from_millis(rng.gen_range(20..80))).await;
            if !mine.is_empty() && rng.gen_bool(0.05) {
                let pid = mine.remove(rng.gen_range(0..mine.len()));
                lock(&world).killed.insert(pid);
                ctx.exit(pid, ExitReason::Kill);
                continue;
            }
            let name = NAMES[rng.gen_range(0..NAMES.len())];
            if names.whereis(name).is_some() {
                continue;
            }
            let w = world.clone();
            let holder = ctx.spawn("holder", move |mut ctx: Ctx<NameConflict>| async move {
                loop {
                    if let Event::Msg { msg, .. } = ctx.recv().await {
                        let me = ctx.pid();
                        let mut w = lock(&w);
                        if (msg.winner_stamp, msg.winner) >= (msg.loser_stamp, me) {
                            w.misranked.push(format!(
                                "{me} (stamp {}) lost `{}` to {} (stamp {})",
                                msg.loser_stamp, msg.name, msg.winner, msg.winner_stamp
                            ));
                        }
                        w.told.insert((msg.name, me));
                    }
                }
            });
            if names.register(name, holder).is_ok() {
                lock(&world).acked.insert((name.to_string(), holder));
                mine.push(holder);
            } else {
                ctx.exit(holder, ExitReason::Kill);
            }
        }
        ExitReason::Normal
    });
}
