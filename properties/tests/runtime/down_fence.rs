//! Issue 20's rule over whole simulations: once a watcher has a `Down(NoConnection)` for a
//! remote process, no message that process sent before the `Down` reaches the watcher. Every
//! node runs talkers that stream numbered messages to the watchers on the other nodes, and
//! watchers that monitor every remote talker they hear from, and every first-life talker before
//! hearing from it (again after each `NoConnection`), under seeded plans of clogged links,
//! partitions, crashes with restarts and pauses.
//!
//! Mutation checked: with the floor rule in `session.rs` switched off (a session never heard
//! before the node-down is accepted later with its backlog), plan seeds 17, 47, 75, 89 and 232
//! of 0..300 fail (17 is within CI's 24), and the clog-from-the-start test fails on every seed.
//!
//! "Before" is the simulation's one order: a shared counter each send and each received `Down`
//! takes a number from (one thread runs the whole simulation, so the order is total).
//!
//! The fences are the `Down`s a node-down fires. A monitor set while its node is already known
//! down gets its `Down` at once; that one restates the earlier node-down (the fence for it) and
//! is not a fence of its own: a new connection may be opening at that moment, and what the peer
//! sends on it after hearing of the node-down is new traffic. (Making every such answer a fence
//! would mean refusing every session begun before it, and a watcher re-monitoring faster than a
//! round trip would then keep the peer from ever reconnecting: tried, and a simulation here ran
//! for minutes without reconnecting.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, NetConfig, Stream};
use groundhog_runtime::{Ctx, Event, ExitReason, Pid, Ref};
use groundhog_sim::{BoxFuture, Check, Driver, FaultKind, FaultMix, Scenario, Setup, Violation};
use rand::Rng;

use super::cluster::{self, lock};

const NODES: u32 = 3;
const MESSAGES: u64 = 250;

#[derive(Debug)]
enum Seen {
    Down { target: Pid, at: u64 },
    Msg { from: Pid, n: u64, at: u64 },
}

#[derive(Default)]
struct World {
    clock: u64,
    watchers: Vec<Pid>,
    /// Every talker started, learned out of band by watchers that have not heard from it.
    talkers: Vec<Pid>,
    /// When each (talker, n) was sent.
    sent: BTreeMap<(Pid, u64), u64>,
    /// What each watcher saw, in the order it saw it.
    seen: BTreeMap<Pid, Vec<Seen>>,
    downs: usize,
}

impl World {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

type Shared = Arc<Mutex<World>>;

struct DownFence;

impl Scenario for DownFence {
    fn name(&self) -> &'static str {
        "rt-down-fence"
    }

    fn about(&self) -> &'static str {
        "nothing sent before a Down(NoConnection) reaches the watcher after it"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["faults"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![
                FaultKind::ClogLink,
                FaultKind::Partition,
                FaultKind::CrashNode,
                FaultKind::PauseNode,
                FaultKind::SetLatency,
            ],
            0.8,
            3_000,
        );
        Setup::new(NODES, faults).net(NetConfig {
            loss: 0.05,
            latency: Duration::from_millis(1)..Duration::from_millis(40),
        })
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn watch(mut ctx: Ctx<u64>, world: Shared, me: u32, mut rng: rt::ChaCha8Rng) {
    let pid = ctx.pid();
    let mut monitors: BTreeMap<Ref, (Pid, bool)> = BTreeMap::new();
    let mut gone: BTreeSet<Pid> = BTreeSet::new();
    let mut heard: BTreeSet<Pid> = BTreeSet::new();
    // After a Down, a target is watched again only after a pause (else a monitor on a node
    // known down fires at once, again and again, with no simulated time passing).
    let mut not_before: BTreeMap<Pid, rt::Instant> = BTreeMap::new();
    loop {
        let now = rt::Instant::now();
        // Talkers heard from, and first-life talkers learned out of band (the
        // clog case: a watcher monitors a process whose messages a clog holds from the start). A
        // later life's pid learned out of band could name a restarted node's process before
        // this node has heard of the restart; its messages then come on a session that began
        // after the old one's node-down, which the rule allows, though the shared order calls
        // them "before".
        let first_lives: Vec<Pid> = lock(&world)
            .talkers
            .iter()
            .copied()
            .filter(|t| t.incarnation == 1)
            .collect();
        let targets: Vec<Pid> = heard
            .iter()
            .copied()
            .chain(first_lives)
            .collect::<BTreeSet<Pid>>()
            .into_iter()
            .filter(|t| t.node != me && !gone.contains(t))
            .filter(|t| not_before.get(t).is_none_or(|at| *at <= now))
            .collect();
        for t in targets {
            if !monitors.values().any(|m| m.0 == t) {
                // A monitor set while the node is already known down fires at once: that Down
                // restates the earlier node-down, which is the fence (see the module doc).
                let restated = !ctx.is_alive(t);
                monitors.insert(ctx.monitor(t), (t, restated));
            }
        }
        let wait = Duration::from_millis(rng.gen_range(1..60));
        let Some(event) = ctx.recv_timeout(wait).await else {
            continue;
        };
        let mut w = lock(&world);
        let at = w.tick();
        match event {
            Event::Msg { from, msg } => {
                heard.insert(from);
                w.seen
                    .entry(pid)
                    .or_default()
                    .push(Seen::Msg { from, n: msg, at })
            }
            Event::Down {
                reference, reason, ..
            } => {
                let Some((target, restated)) = monitors.remove(&reference) else {
                    continue;
                };
                let pause = Duration::from_millis(rng.gen_range(20..200));
                not_before.insert(target, rt::Instant::now() + pause);
                if reason == ExitReason::NoConnection && restated {
                    // Not a fence of its own; watch again later.
                } else if reason == ExitReason::NoConnection {
                    w.downs += 1;
                    w.seen
                        .entry(pid)
                        .or_default()
                        .push(Seen::Down { target, at });
                } else {
                    gone.insert(target);
                }
            }
            _ => {}
        }
    }
}

async fn talk(ctx: Ctx<()>, world: Shared, me: u32, mut rng: rt::ChaCha8Rng) {
    let pid = ctx.pid();
    for n in 0..MESSAGES {
        let to: Vec<Pid> = lock(&world)
            .watchers
            .iter()
            .copied()
            .filter(|w| w.node != me)
            .collect();
        for w in to {
            let at = lock(&world).tick();
            lock(&world).sent.insert((pid, n), at);
            let _ = ctx.send(w, n);
        }
        rt::sleep(Duration::from_millis(rng.gen_range(1..25))).await;
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let seed = ctx.seed();
    for n in 0..NODES {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let rt_node = cluster::start(&node, NODES).await;
                let stream =
                    |k: u32| Stream::Extra(900 + k * 100 + n * 10 + node.incarnation() as u32);
                let (w, rng) = (world.clone(), rt::seeded_rng(seed, stream(0)));
                let watcher = rt_node.spawn("watcher", move |ctx: Ctx<u64>| async move {
                    watch(ctx, w, n, rng).await;
                    ExitReason::Normal
                });
                lock(&world).watchers.push(watcher);
                let (w, rng) = (world.clone(), rt::seeded_rng(seed, stream(1)));
                let talker = rt_node.spawn("talker", move |ctx: Ctx<()>| async move {
                    talk(ctx, w, n, rng).await;
                    ExitReason::Normal
                });
                lock(&world).talkers.push(talker);
            }
        });
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(3)).await;
    let w = lock(&world);
    for (watcher, seen) in &w.seen {
        let mut last_down: BTreeMap<Pid, u64> = BTreeMap::new();
        for s in seen {
            match s {
                Seen::Down { target, at } => {
                    last_down.insert(*target, *at);
                }
                Seen::Msg { from, n, at } => {
                    let sent = w.sent.get(&(*from, *n)).copied().unwrap_or(0);
                    let down = last_down.get(from).copied();
                    ctx.check(
                        "nothing-from-before-a-noconnection",
                        down.is_none_or(|d| sent > d),
                        || {
                            format!(
                                "{watcher} got message {n} from {from} (sent at #{sent}) at #{at}, \
                                 after its Down(NoConnection) at #{}",
                                down.unwrap_or_default()
                            )
                        },
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// How many generated plans CI runs; `DOWN_FENCE_CASES` (and `DOWN_FENCE_FROM`) widen it.
fn cases() -> std::ops::Range<u64> {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let from = var("DOWN_FENCE_FROM", 0);
    from..from + var("DOWN_FENCE_CASES", 24)
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn nothing_sent_before_a_noconnection_is_delivered_after_it() {
    Check::new(&DownFence)
        .variant("faults")
        .seeds(cases())
        .run();
}

/// Issue 20's first case as a plan: node 1's link to node 0 is clogged before node 0 has heard
/// a frame of node 1's session, so node 0 declares it down having heard nothing; the unclog
/// then delivers what the clog held. Under the old acceptance of an unheard session this fails
/// on every seed (the held messages arrive after the `Down`).
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn nothing_held_by_a_clog_from_the_start_is_delivered_after_the_noconnection() {
    let plan = groundhog_sim::FaultPlan::timed(
        2_500,
        vec![
            (1, groundhog_sim::Fault::ClogLink { from: 1, to: 0 }),
            (1_200, groundhog_sim::Fault::UnclogLink { from: 1, to: 0 }),
        ],
    );
    Check::new(&DownFence)
        .variant("faults")
        .sim(|s| s.plan(plan))
        .seeds(0..4)
        .run();
}
