//! Leader election (`coord::election`) under whole simulations.
//!
//! Under generated plans: at most one leader per term; what a follower learns (through
//! `election::changed`) names that term's one leader; after the quiet phase every member
//! follows one leader, which leads. Under a fixed partition that cuts one node off: once
//! failure detection and an election timeout have passed, the cut-off node does not lead
//! (a leader cut off from the majority steps down) and the majority side follows one leader.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use groundhog_runtime::coord::consensus::{Role, Status};
use groundhog_runtime::coord::election::{self, ElectionStore, Leadership};
use groundhog_runtime::rt::{self, Duration};
use groundhog_runtime::supervisor::{self, Spec, Strategy};
use groundhog_runtime::{Ctx, ExitReason, Registry};
use groundhog_sim::{BoxFuture, Check, Driver, Fault, FaultPlan, Scenario, Setup, Violation};

use super::{lock, start_node};

const NAME: &str = "election";

#[derive(Default)]
struct World {
    stores: BTreeMap<u32, ElectionStore>,
    leaders: BTreeMap<u64, BTreeSet<u32>>,
    status: BTreeMap<u32, Status>,
    /// What each node's application learned, in order.
    learned: BTreeMap<u32, Vec<Leadership>>,
}

type Shared = Arc<Mutex<World>>;

struct Elections;

impl Scenario for Elections {
    fn name(&self) -> &'static str {
        "coord-election"
    }

    fn about(&self) -> &'static str {
        "one leader per term, followers learn it, none in a minority partition"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["faults", "isolate-0", "isolate-1", "isolate-2"]
    }

    fn setup(&self) -> Setup {
        super::consensus::setup()
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

fn start(ctx: &Driver, world: &Shared) {
    let (nodes, seed) = (ctx.nodes(), ctx.seed());
    for n in 0..nodes {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let rt_node = start_node(&node, nodes).await;
                // A fresh view per incarnation: term and vote come back from the disk.
                let store = ElectionStore::new();
                lock(&world).stores.insert(n, store.clone());
                let w = world.clone();
                let config = election::config(NAME, (0..nodes).collect(), seed).observer(
                    move |s: &Status| {
                        let mut w = lock(&w);
                        if s.role == Role::Leader {
                            w.leaders.entry(s.term).or_default().insert(s.member);
                        }
                        w.status.insert(s.member, s.clone());
                    },
                );
                let spec =
                    Spec::new(Strategy::OneForOne).child(election::child_spec(config, store));
                supervisor::start(&rt_node, "coord-sup", None, spec)
                    .await
                    .expect("the member starts");
                let w = world.clone();
                rt_node.spawn("app", move |ctx: Ctx<()>| async move {
                    follow(ctx, w, n).await;
                    ExitReason::Normal
                });
            }
        });
    }
}

/// An application that keeps up with the leadership through its node's member.
async fn follow(ctx: Ctx<()>, world: Shared, n: u32) {
    let member = Registry::local(ctx.node())
        .whereis(NAME)
        .expect("started first");
    let Ok(mut known) = election::leadership(&ctx, member, Duration::from_secs(1)).await else {
        return;
    };
    loop {
        lock(&world)
            .learned
            .entry(n)
            .or_default()
            .push(known.clone());
        match election::changed(&ctx, member, &known, Duration::from_secs(5)).await {
            Ok(next) => known = next,
            Err(election::ElectionError::Unreachable(groundhog_runtime::CallError::Timeout)) => {}
            // The member restarted (its supervisor's business); ask the new one.
            Err(_) => return,
        }
    }
}

fn check_safety(ctx: &Driver, w: &World) -> Result<(), Violation> {
    super::consensus::check_one_leader_per_term_in(ctx, &w.leaders)?;
    for (n, seen) in &w.learned {
        for l in seen {
            let ok = l
                .leader
                .is_none_or(|leader| w.leaders.get(&l.term).is_some_and(|s| s.contains(&leader)));
            ctx.check("learned-leader-led", ok, || {
                format!(
                    "node {n} learned {l:?}; term {} was led by {:?}",
                    l.term,
                    w.leaders.get(&l.term)
                )
            })?;
        }
    }
    Ok(())
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    start(&ctx, &world);
    let every = Duration::from_millis(100);
    if let Some(cut) = ctx.variant().strip_prefix("isolate-") {
        let cut: u32 = cut.parse().expect("a node index");
        // The plan cuts `cut` off from 1,000 ms to 3,500 ms.
        ctx.checking(
            every,
            || check_safety(&ctx, &lock(&world)),
            rt::sleep(Duration::from_millis(2_800)),
        )
        .await?;
        let w = lock(&world);
        let cut_status = w.status.get(&cut).cloned();
        ctx.check(
            "no-leader-in-a-minority",
            cut_status.as_ref().is_none_or(|s| s.role != Role::Leader),
            || format!("node {cut}, cut off, still leads: {cut_status:?}"),
        )?;
        let majority: Vec<&Status> = w.status.values().filter(|s| s.member != cut).collect();
        let leader = majority.iter().find(|s| s.role == Role::Leader);
        let followed = leader.is_some_and(|l| {
            majority
                .iter()
                .all(|s| s.term == l.term && s.leader == Some(l.member))
        });
        ctx.check("the-majority-follows-one-leader", followed, || {
            format!("the majority side's members are {majority:?}")
        })?;
        drop(w);
    }
    ctx.checking(every, || check_safety(&ctx, &lock(&world)), ctx.quiesce())
        .await?;
    ctx.checking(
        every,
        || check_safety(&ctx, &lock(&world)),
        rt::sleep(Duration::from_secs(2)),
    )
    .await?;
    let w = lock(&world);
    let statuses: Vec<&Status> = w.status.values().collect();
    let leader = statuses.iter().find(|s| s.role == Role::Leader);
    let agreed = leader.is_some_and(|l| {
        statuses
            .iter()
            .all(|s| s.term == l.term && s.leader == Some(l.member))
    });
    ctx.check("one-followed-leader", agreed, || {
        format!("after the quiet phase the members are {statuses:?}")
    })?;
    // Every node's application learned that leader.
    let last: Vec<Option<&Leadership>> = w.learned.values().map(|v| v.last()).collect();
    let learned = leader.is_some_and(|l| {
        last.iter()
            .all(|k| k.is_some_and(|k| k.term == l.term && k.leader == Some(l.member)))
    });
    ctx.check("followers-learn-the-leader", learned, || {
        format!("the applications last learned {last:?}")
    })
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn one_leader_per_term_and_followers_learn_it_under_faults() {
    Check::new(&Elections)
        .variant("faults")
        .seeds(super::cases(6))
        .run();
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_leader_cut_off_from_the_majority_steps_down() {
    for cut in 0..3u32 {
        let others: Vec<u32> = (0..3).filter(|n| *n != cut).collect();
        let plan = FaultPlan::timed(
            4_000,
            vec![
                (
                    1_000,
                    Fault::Partition {
                        groups: vec![vec![cut], others],
                    },
                ),
                (3_500, Fault::Heal),
            ],
        );
        Check::new(&Elections)
            .variant(&format!("isolate-{cut}"))
            .sim(|s| s.plan(plan))
            .seeds(super::cases(2))
            .run();
    }
}
