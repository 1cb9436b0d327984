//! Model-based test of the agent registry with its health relay running: random agent
//! deaths, owners pointing the same ids at new processes, `Down` reports held back and delivered
//! to the relay arbitrarily late (or in the same step as the owner's move), and registry
//! restarts. The invariant, checked after every step: an agent whose registration was
//! acknowledged and whose process is alive is never removed, except by its owner's own
//! unregister; no id appears that the owner did not register. At the end every held report is
//! delivered, and then exactly the agents with live processes remain (a `Down` is not lost).
//!
//! Each case is one simulated run on one node. CI runs 32 cases; `PROPTEST_CASES=1000` more.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use groundhog_runtime::agent_monitor::{Health as Seen, HealthReport};
use groundhog_runtime::agents::{Agent, AgentRegistry, Config, Op, OpError, TxError};
use groundhog_runtime::rt::{self, Duration};
use groundhog_runtime::{Ctx, Event, ExitReason, Node, Pid};
use groundhog_sim::{
    BoxFuture, Driver, FaultMix, FaultPlan, Outcome, Scenario, Setup, Sim, Violation,
};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::restarted;
use crate::config;

const SEC: Duration = Duration::from_secs(1);
const IDS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Step {
    /// The owner starts a new process for the id and points the id at it (register, or update
    /// if the id exists).
    Start(usize),
    /// The id's process is killed; its `Down` report is held back.
    Kill(usize),
    /// The id's process is killed, its `Down` reaches the relay, and in the same step the owner
    /// points the id at a new process (the interleaving that lost a live agent).
    KillAndMove(usize),
    /// The `k`-th held report (modulo how many there are) reaches the relay now.
    Deliver(usize),
    /// The owner unregisters the id.
    Unregister(usize),
    /// The registry process is killed between steps (its supervisor restarts it).
    RestartRegistry,
    Sleep(u64),
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let id = 0..IDS.len();
    prop_oneof![
        4 => id.clone().prop_map(Step::Start),
        3 => id.clone().prop_map(Step::Kill),
        3 => id.clone().prop_map(Step::KillAndMove),
        4 => (0usize..8).prop_map(Step::Deliver),
        1 => id.prop_map(Step::Unregister),
        1 => Just(Step::RestartRegistry),
        2 => (0u64..60).prop_map(Step::Sleep),
    ]
}

/// What the owner knows: each id's acknowledged process and whether it still lives.
#[derive(Debug, Default)]
struct Model {
    bound: BTreeMap<&'static str, (Pid, bool)>,
    held: Vec<Pid>,
}

impl Model {
    fn compare(&self, reg: &AgentRegistry) -> Result<(), String> {
        for (id, (pid, alive)) in &self.bound {
            let got = reg.get(id).map(|a| a.pid);
            match got {
                Some(Some(p)) if p == *pid => {}
                None if !alive => {}
                other => {
                    return Err(format!(
                        "`{id}` acknowledged at {pid} (alive: {alive}), registry has {other:?}"
                    ))
                }
            }
        }
        for id in IDS {
            if !self.bound.contains_key(id) && reg.get(id).is_some() {
                return Err(format!(
                    "`{id}` is registered, the owner never registered it"
                ));
            }
        }
        reg.check_invariants()
    }
}

fn idle(ctx: &Ctx<u32>) -> Pid {
    ctx.spawn("agent", |mut c: Ctx<()>| async move {
        loop {
            c.recv().await;
        }
    })
}

/// Points `id` at a fresh process: update if the registry has it, else register (a `Down`
/// still in flight may remove it between the owner's two tries; the owner retries once).
async fn start(ctx: &Ctx<u32>, reg: &AgentRegistry, id: &str) -> Result<Pid, String> {
    let pid = idle(ctx);
    let agent = Agent::new(id, 0).pid(pid);
    for _ in 0..2 {
        let tx = if reg.get(id).is_some() {
            Op::Update(agent.clone())
        } else {
            Op::Register(agent.clone())
        };
        match reg.transact(ctx, vec![tx], SEC).await {
            Ok(_) => return Ok(pid),
            Err(TxError::Op {
                error: OpError::NotFound(_) | OpError::AlreadyRegistered(_),
                ..
            }) => continue,
            Err(e) => return Err(format!("owner's write of `{id}` failed: {e}")),
        }
    }
    Err(format!("owner's write of `{id}` refused twice"))
}

fn report_down(ctx: &Ctx<u32>, relay: Pid, agent: Pid) -> Result<(), String> {
    let report = HealthReport {
        agent,
        health: Seen::Down(ExitReason::Kill),
    };
    ctx.send(relay, report).map_err(|e| e.to_string())
}

async fn run_steps(
    ctx: &mut Ctx<u32>,
    reg: &AgentRegistry,
    relay: Pid,
    steps: &[Step],
) -> Result<(), String> {
    let mut model = Model::default();
    for (n, step) in steps.iter().enumerate() {
        let at = |e: String| format!("step {n} {step:?}: {e}");
        match step {
            Step::Start(i) => {
                let pid = start(ctx, reg, IDS[*i]).await.map_err(at)?;
                model.bound.insert(IDS[*i], (pid, true));
            }
            Step::Kill(i) => {
                if let Some((pid, alive)) = model.bound.get_mut(IDS[*i]) {
                    if *alive {
                        ctx.exit(*pid, ExitReason::Kill);
                        *alive = false;
                        model.held.push(*pid);
                    }
                }
            }
            Step::KillAndMove(i) => {
                if let Some((old, true)) = model.bound.get(IDS[*i]).copied() {
                    ctx.exit(old, ExitReason::Kill);
                    report_down(ctx, relay, old).map_err(at)?;
                }
                let pid = start(ctx, reg, IDS[*i]).await.map_err(at)?;
                model.bound.insert(IDS[*i], (pid, true));
            }
            Step::Deliver(k) => {
                if !model.held.is_empty() {
                    let pid = model.held.remove(k % model.held.len());
                    report_down(ctx, relay, pid).map_err(at)?;
                }
            }
            Step::Unregister(i) => {
                if model.bound.remove(IDS[*i]).is_some() {
                    match reg.unregister(ctx, IDS[*i], SEC).await {
                        // NotFound: its process was dead and its `Down` got there first.
                        Ok(_) | Err(TxError::Op { .. }) => {}
                        Err(e) => return Err(at(format!("owner's unregister failed: {e}"))),
                    }
                }
            }
            Step::RestartRegistry => {
                let old = reg.pid().ok_or_else(|| at("no registry".into()))?;
                let m = ctx.monitor(old);
                ctx.exit(old, ExitReason::Kill);
                while !matches!(ctx.recv().await, Event::Down { reference, .. } if reference == m) {
                }
                restarted(ctx, reg, old).await.map_err(at)?;
            }
            Step::Sleep(ms) => rt::sleep(Duration::from_millis(*ms)).await,
        }
        model.compare(reg).map_err(at)?;
    }
    for pid in std::mem::take(&mut model.held) {
        report_down(ctx, relay, pid)?;
    }
    // The relay's writes are one hop each (retries 20 ms apart while the registry restarts).
    rt::sleep(SEC).await;
    model.compare(reg).map_err(|e| format!("at the end: {e}"))?;
    let left: Vec<String> = IDS
        .iter()
        .filter(|id| reg.get(id).is_some())
        .map(|id| id.to_string())
        .collect();
    let live: Vec<String> = IDS
        .iter()
        .filter(|id| model.bound.get(*id).is_some_and(|(_, alive)| *alive))
        .map(|id| id.to_string())
        .collect();
    if left != live {
        return Err(format!(
            "after every report: registry has {left:?}, live agents are {live:?}"
        ));
    }
    Ok(())
}

struct RelayModel {
    steps: Vec<Step>,
}

impl Scenario for RelayModel {
    fn name(&self) -> &'static str {
        "agent-relay-model"
    }

    fn about(&self) -> &'static str {
        "the agent registry and its health relay against the owner's view"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["model"]
    }

    fn setup(&self) -> Setup {
        Setup::new(1, FaultMix::new(Vec::new(), 0.0, 0))
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        let steps = self.steps.clone();
        Box::pin(async move {
            let (tx, rx) = oneshot::channel::<Result<(), String>>();
            let tx = Arc::new(Mutex::new(Some(tx)));
            ctx.start_node(0, move |node| {
                let (steps, tx) = (steps.clone(), tx.clone());
                async move {
                    let rt_node = Node::local(0, node.incarnation());
                    let config = Config::default().intensity(1_000, SEC);
                    let reg = AgentRegistry::start(&rt_node, None, config)
                        .await
                        .expect("the registry starts");
                    let relay = reg.start_health_relay(&rt_node, None);
                    rt_node.spawn("owner", move |mut ctx: Ctx<u32>| async move {
                        let result = run_steps(&mut ctx, &reg, relay, &steps).await;
                        if let Some(tx) = tx.lock().unwrap().take() {
                            let _ = tx.send(result);
                        }
                        ExitReason::Normal
                    });
                }
            });
            let result = rx
                .await
                .unwrap_or_else(|_| Err("the owner process died".into()));
            ctx.check("live-agents-kept", result.is_ok(), || result.unwrap_err())
        })
    }
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn the_relay_never_removes_a_live_acknowledged_agent() {
    let mut runner = TestRunner::new(config(crate::cases(32), file!()));
    let result = runner.run(
        &(prop::collection::vec(step_strategy(), 1..30), 0u64..4),
        |(steps, seed)| {
            let scenario = RelayModel { steps };
            let report = Sim::new(seed)
                .plan(FaultPlan::quiet(0))
                .keep_trace(false)
                .run(&scenario)
                .expect("a valid run");
            prop_assert!(
                matches!(report.outcome, Outcome::Pass),
                "{:?}",
                report.outcome
            );
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
