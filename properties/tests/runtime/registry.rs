//! The cluster registry under a node crash and a partition, checked at fixed points in time:
//! names of an unreachable node are gone once it is declared down (monitors, not the restarted
//! node's re-sync, remove them), every acknowledged name of a reachable node stays visible on
//! every reachable node, and after the heal every node sees every live name again. Plus the
//! catalogue's `split-registry` and `stale-registry` under explicit plans.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use groundhog_runtime::rt::{self, Duration};
use groundhog_runtime::{Ctx, ExitReason, Pid, Registry};
use groundhog_scenarios::{SplitRegistry, StaleRegistry};
use groundhog_sim::{BoxFuture, Check, Driver, Fault, FaultPlan, Scenario, Setup, Sim, Violation};
use proptest::prelude::*;

use super::cluster::{self, lock};
use crate::{config, run_with_plan};

const NODES: u32 = 3;

#[derive(Default)]
struct World {
    registries: BTreeMap<u32, Registry>,
    /// Acknowledged registrations, by node.
    acked: BTreeMap<u32, BTreeMap<String, Pid>>,
}

type Shared = Arc<Mutex<World>>;

struct Names;

impl Scenario for Names {
    fn name(&self) -> &'static str {
        "rt-registry"
    }

    fn about(&self) -> &'static str {
        "cluster registry views during a crash or partition and after it heals"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["crash", "partition"]
    }

    fn setup(&self) -> Setup {
        Setup::new(NODES, cluster::no_faults(4_000))
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

/// Node 2 crashes at 1 s (restarted by the quiet phase at 4 s).
fn crash_plan() -> FaultPlan {
    FaultPlan::timed(4_000, vec![(1_000, Fault::CrashNode { node: 2 })])
}

/// Node 0 is cut off from 1 s to 3 s.
fn partition_plan() -> FaultPlan {
    FaultPlan::timed(
        4_000,
        vec![
            (
                1_000,
                Fault::Partition {
                    groups: vec![vec![0], vec![1, 2]],
                },
            ),
            (3_000, Fault::Heal),
        ],
    )
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    for n in 0..NODES {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let rt_node = cluster::start(&node, NODES).await;
                let registry = Registry::cluster(&rt_node);
                lock(&world).registries.insert(n, registry.clone());
                let w = world.clone();
                rt_node.spawn("registrar", move |ctx: Ctx<()>| async move {
                    rt::sleep(Duration::from_millis(100)).await;
                    for k in 0..3 {
                        let name = format!("w{n}.{}.{k}", ctx.pid().incarnation);
                        let pid = ctx.spawn("worker", |mut c: Ctx<()>| async move {
                            loop {
                                c.recv().await;
                            }
                        });
                        if registry.register(&name, pid).is_ok() {
                            lock(&w).acked.entry(n).or_default().insert(name, pid);
                        }
                    }
                    ExitReason::Normal
                });
            }
        });
    }
    // During the fault (failure detection is 500 ms): who sees what.
    rt::sleep(Duration::from_millis(2_500)).await;
    let reachable: Vec<Vec<u32>> = if ctx.variant() == "crash" {
        vec![vec![0, 1]]
    } else {
        vec![vec![0], vec![1, 2]]
    };
    for side in &reachable {
        let expected = acked_of(&world, side);
        for n in side {
            let seen = view(&ctx, &world, *n).await;
            ctx.check(
                "reachable-names-only-during-fault",
                seen == expected,
                || format!("node {n} sees {seen:?}, expected exactly its side's {expected:?}"),
            )?;
        }
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(1)).await;
    let all: Vec<u32> = (0..NODES).collect();
    let mut expected = acked_of(&world, &all);
    if ctx.variant() == "crash" {
        // Node 2's first incarnation died; its restart registered new names.
        expected.retain(|_, pid| !(pid.node == 2 && pid.incarnation == 1));
    }
    for n in 0..NODES {
        let seen = view(&ctx, &world, n).await;
        ctx.check("every-live-name-after-heal", seen == expected, || {
            format!("node {n} sees {seen:?}, expected {expected:?}")
        })?;
    }
    Ok(())
}

fn acked_of(world: &Shared, nodes: &[u32]) -> BTreeMap<String, Pid> {
    let w = lock(world);
    nodes
        .iter()
        .filter_map(|n| w.acked.get(n))
        .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), *v)))
        .collect()
}

/// `registered()` as node `n` sees it, read on that node.
async fn view(ctx: &Driver, world: &Shared, n: u32) -> BTreeMap<String, Pid> {
    let registry = lock(world).registries.get(&n).cloned();
    let (tx, rx) = oneshot::channel();
    ctx.spawn_on(n, async move {
        let _ = tx.send(registry.map(|r| r.registered()).unwrap_or_default());
    });
    rx.await.unwrap_or_default().into_iter().collect()
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_crashed_node_loses_its_names_and_survivors_keep_theirs() {
    Check::new(&Names)
        .variant("crash")
        .sim(|s| s.plan(crash_plan()))
        .seeds(0..10)
        .determinism(true)
        .run();
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn each_side_of_a_partition_keeps_its_names_and_all_agree_after_heal() {
    Check::new(&Names)
        .variant("partition")
        .sim(|s| s.plan(partition_plan()))
        .seeds(0..10)
        .determinism(true)
        .run();
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn split_registry_resolves_a_long_partition() {
    let plan = FaultPlan::timed(
        6_000,
        vec![
            (
                1_000,
                Fault::Partition {
                    groups: vec![vec![0], vec![1, 2]],
                },
            ),
            (3_500, Fault::Heal),
        ],
    );
    Check::new(&SplitRegistry)
        .variant("fixed")
        .sim(|s| s.plan(plan.clone()))
        .seeds(0..10)
        .determinism(true)
        .run();
    // Not vacuous: these runs do resolve conflicts (so the scenario's
    // `the-earlier-claim-wins` and `the-loser-is-told` judged real losers).
    let conflicts: u64 = (0..10)
        .map(|seed| {
            let report = Sim::new(seed)
                .variant("fixed")
                .plan(plan.clone())
                .keep_trace(false)
                .run(&SplitRegistry)
                .expect("a valid run");
            report
                .trace
                .counts
                .get("name-conflict")
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert!(conflicts > 0, "no name conflict in 10 seeds");
}

proptest! {
    #![proptest_config(config(12, file!()))]

    /// Issue 6: whichever single node crashes, whenever, for however long, no acknowledged
    /// registration of a process on a surviving node is lost (stale-registry's invariants).
    #[test]
    #[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
    fn no_acknowledged_registration_is_lost_when_one_node_crashes(
        node in 0..3u32,
        at in 100..2_500u64,
        down in prop::option::of(300..1_500u64),
    ) {
        let mut faults = vec![(at, Fault::CrashNode { node })];
        if let Some(down) = down {
            faults.push((at + down, Fault::RestartNode { node }));
        }
        let plan = FaultPlan::timed(3_000, faults);
        let (report, repro) = run_with_plan(&StaleRegistry, "fixed", 0, &plan);
        prop_assert!(report.outcome.passed(), "{}\n{}", report.summary(), repro.unwrap_or_default());
    }
}
