//! `monitor-race` (Fix #11): a watcher on node 0 keeps a view of which agents (short-lived
//! processes on nodes 1 and 2) are alive. Invariant: the view never calls a live agent dead, and
//! once faults stop it converges to the truth.
//!
//! - `flawed`: the watcher checks that the agent is alive (a probe call), fetches its metadata
//!   (a call to the agent's node), then subscribes to the node's death notices, which only
//!   report deaths after the subscription. An agent dying between the check and the
//!   subscription is never reported: the watcher believes it alive forever.
//! - `fixed`: the watcher watches each agent through the runtime's agent monitor, which
//!   monitors first (`Down` with `NoProc` for an agent already gone); a `Down` with
//!   `NoConnection` (node unreachable) makes the view "unknown" and the agent is watched again.
//!
//! Agents' spawn times and lifetimes are drawn from the seed, most of them short enough to die
//! while the flawed watcher is between its check and its subscription.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use groundhog_runtime::agent_monitor::{self, Health, HealthCheck, HealthReport, MonitorConfig};
use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::{CallError, Ctx, Event, ExitReason, Node, NodeConfig, Pid};
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, Scenario, Setup, Violation};
use rand::Rng;
use serde::{Deserialize, Serialize};

const AGENTS_PER_NODE: u32 = 10;
const SPAWN_WINDOW_MS: u64 = 2_500;
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
const RETRY_AFTER: Duration = Duration::from_millis(200);
const POLL: Duration = Duration::from_millis(20);

/// What the watcher believes about one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Alive,
    Dead,
    /// Not known yet, or its node is unreachable.
    Unknown,
}

#[derive(Default)]
struct World {
    /// Every agent ever spawned, in spawn order (the directory the watcher reads).
    agents: Vec<Pid>,
    /// Agents that exited on their own.
    exited: Vec<Pid>,
    /// Each node's current incarnation; an agent of an earlier one died in a crash.
    incarnation: BTreeMap<u32, u64>,
    /// Each hosting node's death-notice process (current incarnation).
    bus: BTreeMap<u32, Pid>,
    /// The current watcher's view (a restarted watcher starts from nothing).
    view: BTreeMap<Pid, View>,
}

impl World {
    fn truly_dead(&self, agent: Pid) -> bool {
        self.exited.contains(&agent)
            || self.incarnation.get(&agent.node) != Some(&agent.incarnation)
    }
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// The death-notice service on each hosting node: it reports deaths to whoever subscribed
/// before they happened, and nothing to later subscribers.
#[derive(Debug, Serialize, Deserialize)]
enum Bus {
    Track(Pid),
    Subscribe {
        agent: Pid,
        subscriber: Pid,
    },
    /// A call: the agent's metadata.
    Describe(Pid),
}

#[derive(Debug, Serialize, Deserialize)]
struct Died {
    agent: Pid,
    reason: ExitReason,
}

pub struct MonitorRace;

impl Scenario for MonitorRace {
    fn name(&self) -> &'static str {
        "monitor-race"
    }

    fn about(&self) -> &'static str {
        "a watcher's view of short-lived agents: check-then-subscribe misses deaths, monitor-first does not"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![
                FaultKind::Partition,
                FaultKind::CrashNode,
                FaultKind::PauseNode,
                FaultKind::SetLatency,
                FaultKind::SetLoss,
            ],
            0.3,
            3_000,
        );
        Setup::new(3, faults)
            .net(rt::NetConfig {
                loss: 0.01,
                latency: Duration::from_millis(2)..Duration::from_millis(20),
            })
            .seed_budget(20)
            .node_range(2..=groundhog_sim::MAX_NODES)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let (nodes, seed) = (ctx.nodes(), ctx.seed());
    let fixed = ctx.variant() == "fixed";
    for n in 0..nodes {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let inc = node.incarnation();
                let config = NodeConfig::cluster(n, inc, nodes)
                    .heartbeat(Duration::from_millis(50), Duration::from_millis(500));
                let rt_node = Node::start(config).await.expect("the port is free");
                lock(&world).incarnation.insert(n, inc);
                if n == 0 {
                    start_watcher(&rt_node, world, fixed);
                } else {
                    let rng = rt::seeded_rng(seed, Stream::Extra(n * 1_000 + inc as u32));
                    host(&rt_node, world, rng);
                }
            }
        });
    }
    // Safety as the run goes: the watcher never calls a live agent dead.
    let deadline = Duration::from_millis(3_500);
    while ctx.now() < deadline {
        rt::sleep(Duration::from_millis(250)).await;
        check_no_false_death(&ctx, &world)?;
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(2)).await;
    check_no_false_death(&ctx, &world)?;
    // Liveness: with faults healed, the view is the truth.
    let w = lock(&world);
    for agent in &w.agents {
        let truth = if w.truly_dead(*agent) {
            View::Dead
        } else {
            View::Alive
        };
        let seen = w.view.get(agent).copied().unwrap_or(View::Unknown);
        ctx.check("view-converges-to-truth", seen == truth, || {
            format!("agent {agent} is {truth:?} but the watcher believes {seen:?}")
        })?;
    }
    Ok(())
}

fn check_no_false_death(ctx: &Driver, world: &Shared) -> Result<(), Violation> {
    let w = lock(world);
    let wrong = w
        .view
        .iter()
        .find(|(agent, v)| **v == View::Dead && !w.truly_dead(**agent));
    ctx.check("dead-means-dead", wrong.is_none(), || {
        format!("the watcher believes live agent {} dead", wrong.unwrap().0)
    })
}

/// A hosting node: its death-notice bus, then agents spawned over time, each answering probes
/// until its drawn lifetime ends (some live on).
fn host(node: &Node, world: Shared, mut rng: rt::ChaCha8Rng) {
    let bus = node.spawn("bus", bus_loop);
    lock(&world).bus.insert(node.index(), bus);
    let mut plan: Vec<(u64, Option<u64>)> = (0..AGENTS_PER_NODE)
        .map(|_| {
            let at = rng.gen_range(0..SPAWN_WINDOW_MS);
            let life = rng.gen_bool(0.7).then(|| rng.gen_range(0..150));
            (at, life)
        })
        .collect();
    plan.sort_unstable();
    node.spawn("host", move |ctx: Ctx<()>| async move {
        let start = rt::elapsed();
        for (at, life) in plan {
            let at = Duration::from_millis(at);
            let now = rt::elapsed() - start;
            if at > now {
                rt::sleep(at - now).await;
            }
            let w = world.clone();
            let agent = ctx.spawn("agent", move |mut actx: Ctx<HealthCheck>| async move {
                let serve = async {
                    loop {
                        if let Event::Call { reply, .. } = actx.recv().await {
                            reply.reply(Ok::<(), String>(()));
                        }
                    }
                };
                match life {
                    Some(ms) => {
                        let _ = rt::timeout(Duration::from_millis(ms), serve).await;
                        let me = actx.pid();
                        lock(&w).exited.push(me);
                        ExitReason::Normal
                    }
                    None => serve.await,
                }
            });
            let _ = ctx.send(bus, Bus::Track(agent));
            lock(&world).agents.push(agent);
        }
        ExitReason::Normal
    });
}

async fn bus_loop(mut ctx: Ctx<Bus>) -> ExitReason {
    let mut tracked: BTreeMap<groundhog_runtime::Ref, Pid> = BTreeMap::new();
    let mut subscribers: BTreeMap<Pid, Vec<Pid>> = BTreeMap::new();
    loop {
        match ctx.recv().await {
            Event::Msg {
                msg: Bus::Track(agent),
                ..
            } => {
                tracked.insert(ctx.monitor(agent), agent);
            }
            Event::Msg {
                msg: Bus::Subscribe { agent, subscriber },
                ..
            } => subscribers.entry(agent).or_default().push(subscriber),
            Event::Call {
                msg: Bus::Describe(agent),
                reply,
                ..
            } => reply.reply(format!("agent {agent}")),
            Event::Down {
                reference, reason, ..
            } => {
                if let Some(agent) = tracked.remove(&reference) {
                    for s in subscribers.remove(&agent).unwrap_or_default() {
                        let _ = ctx.send(
                            s,
                            Died {
                                agent,
                                reason: reason.clone(),
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

fn start_watcher(node: &Node, world: Shared, fixed: bool) {
    lock(&world).view = BTreeMap::new();
    if fixed {
        let n = node.clone();
        node.spawn("watcher", move |ctx| fixed_watcher(ctx, n, world));
    } else {
        node.spawn("watcher", move |ctx| flawed_watcher(ctx, world));
    }
}

fn set_view(world: &Shared, agent: Pid, view: View) {
    let mut w = lock(world);
    let entry = w.view.entry(agent).or_insert(View::Unknown);
    // Dead is final.
    if *entry != View::Dead {
        *entry = view;
    }
}

/// Agents in the directory that this watcher has not looked at yet.
fn new_agents(world: &Shared, seen: &mut usize) -> Vec<Pid> {
    let w = lock(world);
    let fresh = w.agents[*seen..].to_vec();
    *seen = w.agents.len();
    fresh
}

async fn fixed_watcher(mut ctx: Ctx<HealthReport>, node: Node, world: Shared) -> ExitReason {
    let config = MonitorConfig::new(ctx.pid(), Some(HealthCheck))
        .interval(Duration::from_millis(300))
        .probe_timeout(CALL_TIMEOUT);
    let sup = match agent_monitor::start_supervisor(
        &node,
        Some(ctx.pid()),
        (20, Duration::from_secs(1)),
        config,
    )
    .await
    {
        Ok(sup) => sup,
        Err(e) => return ExitReason::error(e.to_string()),
    };
    let mut seen = 0;
    let mut retry: BTreeMap<u64, Pid> = BTreeMap::new();
    let mut next_tag = 0u64;
    loop {
        let mut watch_now = new_agents(&world, &mut seen);
        match ctx.recv_timeout(POLL).await {
            Some(Event::Msg { msg, .. }) => match msg.health {
                Health::Healthy | Health::Unhealthy(_) => set_view(&world, msg.agent, View::Alive),
                Health::Down(ExitReason::NoConnection) => {
                    // Unreachable is not dead: look again later.
                    set_view(&world, msg.agent, View::Unknown);
                    next_tag += 1;
                    ctx.send_after(RETRY_AFTER, next_tag);
                    retry.insert(next_tag, msg.agent);
                }
                Health::Down(_) => set_view(&world, msg.agent, View::Dead),
            },
            Some(Event::Timer { tag, .. }) => watch_now.extend(retry.remove(&tag)),
            _ => {}
        }
        for agent in watch_now {
            match agent_monitor::watch(&ctx, sup, agent, CALL_TIMEOUT).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return ExitReason::error(format!("watching {agent}: {e}")),
                Err(e) => return ExitReason::error(format!("watching {agent}: {e}")),
            }
        }
    }
}

async fn flawed_watcher(mut ctx: Ctx<Died>, world: Shared) -> ExitReason {
    let mut seen = 0;
    let mut pending: Vec<Pid> = Vec::new();
    loop {
        pending.extend(new_agents(&world, &mut seen));
        for agent in std::mem::take(&mut pending) {
            // Check that it is alive...
            let alive: Result<Result<(), String>, CallError> =
                ctx.call(agent, HealthCheck, CALL_TIMEOUT).await;
            match alive {
                Ok(_) => {}
                Err(CallError::NoProc | CallError::Exited(_)) => {
                    set_view(&world, agent, View::Dead);
                    continue;
                }
                Err(_) => {
                    set_view(&world, agent, View::Unknown);
                    pending.push(agent);
                    continue;
                }
            }
            set_view(&world, agent, View::Alive);
            // ...look it up...
            let bus = lock(&world).bus.get(&agent.node).copied();
            let Some(bus) = bus else { continue };
            let _: Result<String, CallError> =
                ctx.call(bus, Bus::Describe(agent), CALL_TIMEOUT).await;
            // ...and only now subscribe to its death, which may already have happened.
            let subscriber = ctx.pid();
            let _ = ctx.send(bus, Bus::Subscribe { agent, subscriber });
        }
        if let Some(Event::Msg { msg, .. }) = ctx
            .recv_timeout(if pending.is_empty() {
                POLL
            } else {
                RETRY_AFTER
            })
            .await
        {
            set_view(&world, msg.agent, View::Dead);
        }
    }
}
