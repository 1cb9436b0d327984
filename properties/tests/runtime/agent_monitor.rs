//! Agent monitors watching agents on another node: whether an agent exits, its node crashes or
//! it is cut off, each agent gets exactly one `Down` report, the last one it gets, with a true
//! reason; an agent that lives on a reachable node gets none.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use groundhog_runtime::agent_monitor::{self, Health, HealthCheck, HealthReport, MonitorConfig};
use groundhog_runtime::rt::{self, Duration, NetConfig, Stream};
use groundhog_runtime::{Ctx, Event, ExitReason, Pid};
use groundhog_sim::{BoxFuture, Check, Driver, FaultPlan, Scenario, Setup, Violation};
use rand::Rng;

use super::cluster::{self, lock};

const AGENTS: u32 = 16;

#[derive(Default)]
struct World {
    /// Agents on node 1 (first incarnation), with the reason each will exit with, if any.
    agents: Vec<(Pid, Option<ExitReason>)>,
    /// Every report node 0's collector received, in order, per agent.
    reports: BTreeMap<Pid, Vec<Health>>,
    watched: u32,
}

type Shared = Arc<Mutex<World>>;

struct RemoteAgents;

impl Scenario for RemoteAgents {
    fn name(&self) -> &'static str {
        "rt-agent-monitor"
    }

    fn about(&self) -> &'static str {
        "monitors on node 0 watch agents on node 1 through exits, crashes and partitions"
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

/// An agent that answers probes until its (drawn) time is up.
fn spawn_agent(node: &groundhog_runtime::Node, life: Option<(Duration, ExitReason)>) -> Pid {
    node.spawn("agent", move |mut ctx: Ctx<HealthCheck>| async move {
        let serve = async {
            loop {
                if let Event::Call { reply, .. } = ctx.recv().await {
                    reply.reply(Ok::<(), String>(()));
                }
            }
        };
        match life {
            Some((after, reason)) => {
                let _ = rt::timeout(after, serve).await;
                reason
            }
            None => serve.await,
        }
    })
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
                if node.incarnation() > 1 {
                    return;
                }
                let mut rng = rt::seeded_rng(seed, Stream::Extra(n));
                if n == 1 {
                    for k in 0..AGENTS {
                        // Half the agents exit on their own within 0..600 ms, half live on.
                        let life = (k % 2 == 0).then(|| {
                            let reason = if rng.gen_bool(0.5) {
                                ExitReason::Normal
                            } else {
                                ExitReason::error("agent failed")
                            };
                            (Duration::from_millis(rng.gen_range(0..600)), reason)
                        });
                        let reason = life.as_ref().map(|l| l.1.clone());
                        let pid = spawn_agent(&rt_node, life);
                        lock(&world).agents.push((pid, reason));
                    }
                    return;
                }
                while lock(&world).agents.len() < AGENTS as usize {
                    rt::sleep(Duration::from_millis(1)).await;
                }
                let agents: Vec<Pid> = lock(&world).agents.iter().map(|a| a.0).collect();
                let w = world.clone();
                let n0 = rt_node.clone();
                rt_node.spawn("registry", move |mut ctx: Ctx<HealthReport>| async move {
                    let config = MonitorConfig::new(ctx.pid(), Some(HealthCheck))
                        .interval(Duration::from_millis(20))
                        .probe_timeout(Duration::from_millis(200));
                    let sup = agent_monitor::start_supervisor(
                        &n0,
                        Some(ctx.pid()),
                        (10, Duration::from_secs(1)),
                        config,
                    )
                    .await
                    .expect("a valid config starts");
                    for agent in agents {
                        rt::sleep(Duration::from_millis(rng.gen_range(0..40))).await;
                        let started =
                            agent_monitor::watch(&ctx, sup, agent, Duration::from_secs(1)).await;
                        if matches!(started, Ok(Ok(_))) {
                            lock(&w).watched += 1;
                        }
                    }
                    loop {
                        if let Event::Msg { msg, .. } = ctx.recv().await {
                            lock(&w)
                                .reports
                                .entry(msg.agent)
                                .or_default()
                                .push(msg.health);
                        }
                    }
                });
            }
        });
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(3)).await;
    let w = lock(&world);
    ctx.check("every-agent-watched", w.watched == AGENTS, || {
        format!("{} of {AGENTS} monitors started", w.watched)
    })?;
    let faulty = ctx.variant() != "plain";
    for (agent, own) in &w.agents {
        let seen = w.reports.get(agent).cloned().unwrap_or_default();
        let downs = seen.iter().filter(|h| matches!(h, Health::Down(_))).count();
        if !faulty && own.is_none() {
            // A live agent on a reachable node is never reported down.
            ctx.check("no-down-for-a-live-agent", downs == 0, || {
                format!("agent {agent} never exits but got {seen:?}")
            })?;
            continue;
        }
        ctx.check(
            "one-down-and-last",
            downs == 1 && matches!(seen.last(), Some(Health::Down(_))),
            || format!("agent {agent} (exits {own:?}) got {seen:?}"),
        )?;
        let Some(Health::Down(reason)) = seen.last() else {
            unreachable!("checked above")
        };
        let explained = Some(reason) == own.as_ref()
            || *reason == ExitReason::NoProc
            || (faulty && *reason == ExitReason::NoConnection);
        ctx.check("down-reason-is-true", explained, || {
            format!("agent {agent} (exits {own:?}) reported down with {reason:?}")
        })?;
    }
    Ok(())
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn each_remote_agent_is_reported_down_exactly_once() {
    Check::new(&RemoteAgents)
        .variant("plain")
        .sim(|s| s.plan(FaultPlan::quiet(2_000)))
        .seeds(0..12)
        .determinism(true)
        .run();
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn agents_on_a_crashed_node_are_reported_down_exactly_once() {
    let crash = cluster::crash_node_1(300, 1_500, 2_000);
    Check::new(&RemoteAgents)
        .variant("crash")
        .sim(|s| s.plan(crash))
        .seeds(0..12)
        .run();
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn agents_cut_off_by_a_partition_are_reported_down_exactly_once() {
    let cut = cluster::cut_0_from_1(300, 1_200, 2_000);
    Check::new(&RemoteAgents)
        .variant("partition")
        .sim(|s| s.plan(cut))
        .seeds(0..12)
        .run();
}
