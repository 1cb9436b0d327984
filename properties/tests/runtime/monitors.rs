//! Exactly one `Down` per monitor, in every interleaving of monitor, demonitor and the target's
//! exit, for local and remote targets, also when the target's node crashes or is cut off; and
//! each `Down` carries the right reason: the target's own exit reason, `NoProc` when the target
//! was already dead (for a local target: exactly when it was), or `NoConnection` for a remote
//! target whose node failed.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, NetConfig, Stream};
use groundhog_runtime::{Ctx, Event, ExitReason, Pid};
use groundhog_sim::{BoxFuture, Check, Ctx as SimCtx, FaultPlan, Scenario, Setup, Violation};
use rand::Rng;

use super::cluster::{self, lock};

const TARGETS: u32 = 24;

/// One watcher's record.
#[derive(Debug, Clone)]
struct Watched {
    watcher: Pid,
    target: Pid,
    /// How many `Down`s must arrive: 0 after a demonitor with flush, or after one that found
    /// the monitor still live; 1 otherwise.
    expected: usize,
    downs: Vec<ExitReason>,
    /// The reason the target exits with.
    exits_with: ExitReason,
    /// Whether the target is on the watcher's node.
    local: bool,
    /// For a local target: whether it had exited when the monitor was set.
    dead_before: bool,
}

impl Watched {
    /// Whether `reason` is a `Down` this monitor may carry.
    fn allows(&self, reason: &ExitReason, failures: bool) -> bool {
        if self.local {
            let due = if self.dead_before {
                ExitReason::NoProc
            } else {
                self.exits_with.clone()
            };
            return *reason == due;
        }
        *reason == self.exits_with
            || *reason == ExitReason::NoProc
            || (failures && *reason == ExitReason::NoConnection)
    }
}

#[derive(Default)]
struct World {
    /// Targets per node with the reason each exits with, published by each node's first
    /// incarnation.
    targets: Vec<(u32, Pid, ExitReason)>,
    records: Vec<Watched>,
    watchers_started: u32,
}

type Shared = Arc<Mutex<World>>;

struct MonitorRace;

impl Scenario for MonitorRace {
    fn name(&self) -> &'static str {
        "rt-monitor-race"
    }

    fn about(&self) -> &'static str {
        "monitors racing exits, demonitors and node failure: exactly one Down each"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["plain", "crash", "partition"]
    }

    fn setup(&self) -> Setup {
        Setup::new(2, cluster::no_faults(2_000)).net(NetConfig {
            loss: 0.05,
            latency: Duration::from_millis(1)..Duration::from_millis(40),
        })
    }

    fn run(&self, ctx: SimCtx) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: SimCtx) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let seed = ctx.seed();
    for n in 0..2 {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let rt_node = cluster::start(&node, 2).await;
                let mut rng =
                    rt::seeded_rng(seed, Stream::Extra(n * 100 + node.incarnation() as u32));
                if node.incarnation() > 1 {
                    return;
                }
                // Targets on both nodes exit after 0..150 ms, normally or not.
                for k in 0..TARGETS {
                    let after = Duration::from_millis(rng.gen_range(0..150));
                    let reason = if k % 2 == 0 {
                        ExitReason::Normal
                    } else {
                        ExitReason::error("done")
                    };
                    let exits_with = reason.clone();
                    let pid = rt_node.spawn("target", move |_ctx: Ctx<()>| async move {
                        rt::sleep(after).await;
                        reason
                    });
                    lock(&world).targets.push((n, pid, exits_with));
                }
                if n != 0 {
                    return;
                }
                // Node 0 watches every target (its own and node 1's) with random timing.
                while lock(&world).targets.len() < 2 * TARGETS as usize {
                    rt::sleep(Duration::from_millis(1)).await;
                }
                let targets = lock(&world).targets.clone();
                for (on, target, exits_with) in targets {
                    let local = on == n;
                    let before = Duration::from_millis(rng.gen_range(0..150));
                    let demonitor_after = rng.gen_bool(0.4).then(|| {
                        (
                            Duration::from_millis(rng.gen_range(0..100)),
                            rng.gen_bool(0.5),
                        )
                    });
                    let w = world.clone();
                    lock(&world).watchers_started += 1;
                    rt_node.spawn("watcher", move |mut ctx: Ctx<()>| async move {
                        rt::sleep(before).await;
                        // No await between the two: nothing can exit in between.
                        let dead_before = local && !ctx.is_alive(target);
                        let m = ctx.monitor(target);
                        let mut expected = 1;
                        if let Some((d, flush)) = demonitor_after {
                            rt::sleep(d).await;
                            let live = ctx.demonitor(m, flush);
                            if live || flush {
                                expected = 0;
                            }
                        }
                        // Collect for long enough that any duplicate would have arrived.
                        let mut downs = Vec::new();
                        while let Some(ev) = ctx.recv_timeout(Duration::from_secs(3)).await {
                            if let Event::Down {
                                reference, reason, ..
                            } = ev
                            {
                                if reference == m {
                                    downs.push(reason);
                                }
                            }
                        }
                        lock(&w).records.push(Watched {
                            watcher: ctx.pid(),
                            target,
                            expected,
                            downs,
                            exits_with,
                            local,
                            dead_before,
                        });
                        ExitReason::Normal
                    });
                }
            }
        });
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(6)).await;
    let w = lock(&world);
    ctx.check(
        "every-watcher-finished",
        w.records.len() == w.watchers_started as usize && w.watchers_started == 2 * TARGETS,
        || {
            format!(
                "{} of {} watchers reported",
                w.records.len(),
                w.watchers_started
            )
        },
    )?;
    let failures = ctx.variant() != "plain";
    for r in &w.records {
        ctx.check("exactly-one-down", r.downs.len() == r.expected, || {
            format!(
                "{} monitoring {} expected {} Down(s), got {:?}",
                r.watcher, r.target, r.expected, r.downs
            )
        })?;
        ctx.check(
            "down-reason",
            r.downs.iter().all(|d| r.allows(d, failures)),
            || {
                format!(
                    "{} monitoring {} (exits with {}, local {}, dead before {}) got {:?}",
                    r.watcher, r.target, r.exits_with, r.local, r.dead_before, r.downs
                )
            },
        )?;
    }
    Ok(())
}

#[test]
fn exactly_one_down_per_monitor_in_every_interleaving() {
    if !cluster::simulated() {
        return;
    }
    Check::new(&MonitorRace)
        .variant("plain")
        .sim(|s| s.plan(FaultPlan::quiet(2_000)))
        .seeds(0..40)
        .determinism(true)
        .run();
}

#[test]
fn exactly_one_down_when_the_target_node_crashes() {
    if !cluster::simulated() {
        return;
    }
    let crash = cluster::crash_node_1(60, 1_500, 2_000);
    Check::new(&MonitorRace)
        .variant("crash")
        .sim(|s| s.plan(crash))
        .seeds(0..30)
        .run();
}

#[test]
fn exactly_one_down_when_the_target_node_is_partitioned() {
    if !cluster::simulated() {
        return;
    }
    let cut = cluster::cut_0_from_1(60, 1_200, 2_000);
    Check::new(&MonitorRace)
        .variant("partition")
        .sim(|s| s.plan(cut))
        .seeds(0..30)
        .run();
}
