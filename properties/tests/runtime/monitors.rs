//! Exactly one `Down` per monitor, in every interleaving of monitor, demonitor and the target's
//! exit, for local and remote targets, also when the target's node crashes or is cut off; and
//! each `Down` carries the right reason: the target's own exit reason, `NoProc` when the target
//! was already dead (for a local target: exactly when it was), or `NoConnection` for a remote
//! target whose node failed.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, NetConfig, Stream};
use groundhog_runtime::{Ctx, Event, ExitReason, Pid};
use groundhog_sim::{BoxFuture, Check, Driver, FaultPlan, Scenario, Setup, Sim, Violation};
use rand::Rng;
use serde::{Deserialize, Serialize};

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

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
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
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn exactly_one_down_per_monitor_in_every_interleaving() {
    Check::new(&MonitorRace)
        .variant("plain")
        .sim(|s| s.plan(FaultPlan::quiet(2_000)))
        .seeds(0..40)
        .determinism(true)
        .run();
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn exactly_one_down_when_the_target_node_crashes() {
    let crash = cluster::crash_node_1(60, 1_500, 2_000);
    Check::new(&MonitorRace)
        .variant("crash")
        .sim(|s| s.plan(crash))
        .seeds(0..30)
        .run();
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn exactly_one_down_when_the_target_node_is_partitioned() {
    let cut = cluster::cut_0_from_1(60, 1_200, 2_000);
    Check::new(&MonitorRace)
        .variant("partition")
        .sim(|s| s.plan(cut))
        .seeds(0..30)
        .run();
}

/// The firings of the `monitor-down-delay` buggify site in seeds `seeds` of `scenario`'s
/// `variant` under `plan` with buggify on, each run passing (its report's summary otherwise).
fn down_delay_firings(
    scenario: &dyn Scenario,
    variant: &str,
    plan: &FaultPlan,
    seeds: std::ops::Range<u64>,
) -> usize {
    let mut fired = 0;
    for seed in seeds {
        let report = Sim::new(seed)
            .variant(variant)
            .plan(plan.clone())
            .buggify(true)
            .run(scenario)
            .expect("a valid run");
        assert!(report.outcome.passed(), "{}", report.summary());
        fired += report
            .trace
            .lines
            .iter()
            .filter(|l| l.contains("buggify site=monitor-down-delay"))
            .count();
    }
    fired
}

/// With buggify on, the `monitor-down-delay` site fires (a `Down` or link exit signal arrives
/// up to 50 ms late) and still every monitor gets exactly one `Down` with a true reason, also
/// when the target's node crashes; the runs replay. Catches a held `Down` delivered twice (say,
/// once more by the node's `NoConnection`) or after a `demonitor`, and the site never firing.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn exactly_one_down_per_monitor_with_down_delays_firing() {
    let quiet = FaultPlan::quiet(2_000);
    let fired = down_delay_firings(&MonitorRace, "plain", &quiet, 0..24);
    let crash = cluster::crash_node_1(60, 1_500, 2_000);
    let fired_in_crash = down_delay_firings(&MonitorRace, "crash", &crash, 0..12);
    assert!(
        fired >= 5 && fired_in_crash >= 1,
        "fired {fired} and {fired_in_crash} times"
    );
    Check::new(&MonitorRace)
        .variant("plain")
        .sim(|s| s.plan(FaultPlan::quiet(2_000)).buggify(true))
        .seeds(0..6)
        .determinism(true)
        .run();
}

/// What a target tells its watcher.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Note {
    Hello,
    Go,
    Seq(u32),
}

const ORDER_PAIRS: u32 = 30;
const ORDER_MESSAGES: u32 = 4;

/// Per pair: the watcher, and what it saw from its target, in order.
#[derive(Default)]
struct OrderWorld {
    watchers: Vec<Pid>,
    logs: Vec<(Pid, Vec<String>)>,
}

/// A target, linked to a trapping watcher that monitors it, sends messages and exits: the
/// watcher must see the messages in order, then the `Down`, then the exit signal, as the
/// target's exit sent them (monitors first, then links), with delays or without.
struct DownOrder;

impl Scenario for DownOrder {
    fn name(&self) -> &'static str {
        "rt-down-order"
    }

    fn about(&self) -> &'static str {
        "a target's messages, Down and exit signal reach its watcher in the order sent"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["plain"]
    }

    fn setup(&self) -> Setup {
        Setup::new(2, cluster::no_faults(2_000)).net(NetConfig {
            loss: 0.05,
            latency: Duration::from_millis(1)..Duration::from_millis(40),
        })
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive_order(ctx))
    }
}

async fn order_target(mut ctx: Ctx<Note>, watcher: Pid) -> ExitReason {
    ctx.link(watcher);
    let _ = ctx.send(watcher, Note::Hello);
    while !matches!(ctx.recv().await, Event::Msg { msg: Note::Go, .. }) {}
    for i in 1..=ORDER_MESSAGES {
        let _ = ctx.send(watcher, Note::Seq(i));
    }
    ExitReason::error("done")
}

/// A watcher that `demonitor`s on its target's last message logs whether the monitor was still
/// live then: if it was, no `Down` may follow.
async fn order_watcher(
    mut ctx: Ctx<Note>,
    world: Arc<Mutex<OrderWorld>>,
    demonitor: bool,
) -> ExitReason {
    ctx.trap_exit(true);
    let mut target = None;
    let mut monitor = None;
    let mut log = Vec::new();
    while let Some(ev) = ctx.recv_timeout(Duration::from_secs(3)).await {
        match ev {
            Event::Msg {
                from,
                msg: Note::Hello,
            } => {
                target = Some(from);
                monitor = Some(ctx.monitor(from));
                let _ = ctx.send(from, Note::Go);
            }
            Event::Msg {
                from,
                msg: Note::Seq(i),
            } if Some(from) == target => {
                log.push(format!("m{i}"));
                if demonitor && i == ORDER_MESSAGES {
                    let live = monitor.is_some_and(|m| ctx.demonitor(m, false));
                    log.push(if live { "demonitored" } else { "too-late" }.into());
                }
            }
            Event::Down { pid, .. } if Some(pid) == target => log.push("down".into()),
            Event::Exit { from, .. } if Some(from) == target => log.push("exit".into()),
            _ => {}
        }
    }
    lock(&world).logs.push((ctx.pid(), log));
    ExitReason::Normal
}

async fn drive_order(ctx: Driver) -> Result<(), Violation> {
    let world: Arc<Mutex<OrderWorld>> = Arc::default();
    for n in 0..2 {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let rt_node = cluster::start(&node, 2).await;
                if node.incarnation() > 1 {
                    return;
                }
                if n == 0 {
                    for k in 0..2 * ORDER_PAIRS {
                        let w = world.clone();
                        let demonitor = k % 4 >= 2;
                        let pid = rt_node.spawn("watcher", move |c| order_watcher(c, w, demonitor));
                        lock(&world).watchers.push(pid);
                    }
                }
                while lock(&world).watchers.len() < 2 * ORDER_PAIRS as usize {
                    rt::sleep(Duration::from_millis(1)).await;
                }
                // Node 0 hosts the even pairs' targets (local), node 1 the odd ones' (remote).
                let watchers = lock(&world).watchers.clone();
                for (k, watcher) in watchers.into_iter().enumerate() {
                    if k as u32 % 2 == n {
                        rt_node.spawn("target", move |c| order_target(c, watcher));
                    }
                }
            }
        });
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(5)).await;
    let w = lock(&world);
    ctx.check(
        "every-watcher-finished",
        w.logs.len() == 2 * ORDER_PAIRS as usize,
        || format!("{} of {} watchers reported", w.logs.len(), 2 * ORDER_PAIRS),
    )?;
    for (watcher, log) in &w.logs {
        let mut expected: Vec<String> = (1..=ORDER_MESSAGES).map(|i| format!("m{i}")).collect();
        match log.get(expected.len()).map(String::as_str) {
            // A live monitor removed: no `Down` after it.
            Some("demonitored") => expected.push("demonitored".into()),
            Some("too-late") => expected.extend(["too-late".into(), "down".into()]),
            _ => expected.push("down".into()),
        }
        expected.push("exit".into());
        ctx.check("per-pair-order", *log == expected, || {
            format!("{watcher} saw {log:?}, expected {expected:?}")
        })?;
    }
    Ok(())
}

/// With `monitor-down-delay` firing, a target's messages, its `Down` and its link's exit signal
/// still reach the watcher in the order the target sent them, locally and remotely (per-pair
/// order), and a `demonitor` that finds the monitor live (its `Down` held) means no `Down`;
/// without buggify the same holds. Catches a held `Down` overtaken by the exit signal behind it
/// (the pair's queue skipped), a held `Down` delivered after its monitor was removed, and a
/// held signal never released.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn down_delays_keep_per_pair_order() {
    Check::new(&DownOrder)
        .variant("plain")
        .sim(|s| s.plan(FaultPlan::quiet(2_000)))
        .seeds(0..4)
        .run();
    let fired = down_delay_firings(&DownOrder, "plain", &FaultPlan::quiet(2_000), 0..24);
    assert!(fired >= 5, "fired {fired} times");
}
