//! A node that was itself stalled (paused past `down_after`) trusts nothing it heard before:
//! frames that waited in its socket during the pause say nothing about its peers' present.
//!
//! Node 1 registers a worker in the cluster registry; node 0 is paused at 500 ms, cut off from
//! node 1 at 600 ms, the worker exits at 700 ms (its unregistration cannot reach node 0), and
//! node 0 resumes at 2.5 s. Node 0 looks the name up every millisecond. Without the stall rule
//! a lookup that runs after the receive loop has read a frame queued during the pause (which
//! refreshed the peer's last-heard time) and before the pump's first tick returns the worker,
//! dead for 1.8 s; which of them runs first is the schedule's choice, so some seeds of the
//! range hit it and others do not.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration};
use groundhog_runtime::{Ctx, ExitReason, Pid, Registry};
use groundhog_sim::{BoxFuture, Check, Driver, Fault, FaultPlan, Scenario, Setup, Violation};

use super::cluster::{self, lock};

const RESUME_MS: u64 = 2_500;

#[derive(Default)]
struct World {
    worker: Option<Pid>,
    /// Node 0's lookups after it resumed: (when, what it saw).
    after_resume: Vec<(Duration, Option<Pid>)>,
}

type Shared = Arc<Mutex<World>>;

struct Stall;

impl Scenario for Stall {
    fn name(&self) -> &'static str {
        "rt-stall"
    }

    fn about(&self) -> &'static str {
        "a node paused past down_after resolves no name of a peer it heard from only before"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["default"]
    }

    fn setup(&self) -> Setup {
        Setup::new(2, cluster::no_faults(3_000))
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

fn plan() -> FaultPlan {
    FaultPlan::timed(
        3_500,
        vec![
            (500, Fault::PauseNode { node: 0 }),
            (
                600,
                Fault::Partition {
                    groups: vec![vec![0], vec![1]],
                },
            ),
            (RESUME_MS, Fault::ResumeNode { node: 0 }),
        ],
    )
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    for n in 0..2 {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let rt_node = cluster::start(&node, 2).await;
                let registry = Registry::cluster(&rt_node);
                if n == 1 {
                    let worker = rt_node.spawn("worker", |_: Ctx<()>| async {
                        rt::sleep(Duration::from_millis(700).saturating_sub(rt::elapsed())).await;
                        ExitReason::Normal
                    });
                    registry.register("w", worker).expect("a fresh name");
                    lock(&world).worker = Some(worker);
                } else {
                    rt_node.spawn("prober", move |_: Ctx<()>| async move {
                        loop {
                            let seen = registry.whereis("w");
                            let now = rt::elapsed();
                            if now >= Duration::from_millis(RESUME_MS) {
                                lock(&world).after_resume.push((now, seen));
                            }
                            rt::sleep(Duration::from_millis(1)).await;
                        }
                    });
                }
            }
        });
    }
    rt::sleep(Duration::from_millis(3_000)).await;
    let w = lock(&world);
    ctx.check(
        "node-0-probed-after-resume",
        !w.after_resume.is_empty(),
        String::new,
    )?;
    let stale = w
        .after_resume
        .iter()
        .find(|(_, seen)| seen.is_some() && *seen == w.worker);
    ctx.check("no-stale-name-after-a-stall", stale.is_none(), || {
        let (at, _) = stale.expect("found");
        format!("node 0 resolved `w` at {at:?} to the worker, which exited at 700ms")
    })
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_stalled_node_trusts_nothing_it_heard_before_the_stall() {
    Check::new(&Stall)
        .sim(|s| s.plan(plan()))
        .seeds(0..40)
        .determinism(true)
        .run();
}
