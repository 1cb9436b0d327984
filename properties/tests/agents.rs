//! Model-based test of the agent registry: random sequences of transactions (many of them
//! failing), crashes of the registry process in the middle of a batch and kills between batches,
//! checked after every step against a plain `BTreeMap` model: the whole table, every index, the
//! version, and paging (each index and a predicate scan, paged, give exactly the model's
//! matching agents, in id order, once).
//!
//! Each case is one simulated run (one node, no faults besides the registry's own crashes). CI
//! runs 48 cases; `PROPTEST_CASES=1000` runs more.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use groundhog_runtime::agents::{
    Agent, AgentRegistry, Config, Cursor, Health, Index, Op, OpError, OpKind, Resources, TxError,
};
use groundhog_runtime::rt::Duration;
use groundhog_runtime::supervisor::which_children;
use groundhog_runtime::{Ctx, Event, ExitReason, Node, Pid};
use groundhog_scenarios::TransactionRollback;
use groundhog_sim::{
    BoxFuture, Check, Driver, FaultMix, FaultPlan, Outcome, Scenario, Setup, Sim, Violation,
};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use crate::config;

mod relay;

const MAX_AGENTS: usize = 5;
const SCAN_BUDGET: usize = 3;
const SEC: Duration = Duration::from_secs(1);
const NO_CRASH: usize = usize::MAX;
const CAPS: [&str; 3] = ["x", "y", "z"];

#[derive(Debug, Clone)]
enum Step {
    /// A batch, expected to commit or fail exactly as the model says.
    Tx(Vec<Op>),
    /// A batch during which the registry crashes before op `at`.
    CrashAt(Vec<Op>, usize),
    /// The registry process is killed between batches.
    Kill,
}

fn pid(n: u64) -> Pid {
    Pid {
        node: 0,
        incarnation: 1,
        id: 1_000 + n,
    }
}

fn agent_strategy() -> impl Strategy<Value = Agent> {
    (
        prop_oneof![9 => prop::sample::select(vec!["a", "b", "c", "d", "e", "f"]), 1 => Just("")],
        0u32..3,
        prop::option::weighted(0.3, 0u64..3),
        prop::collection::btree_set(prop::sample::select(CAPS.to_vec()), 0..3),
        prop::sample::select(vec![Health::Healthy, Health::Degraded, Health::Unhealthy]),
        0u32..4,
    )
        .prop_map(|(id, node, p, caps, health, cpu)| {
            let mut a = caps
                .into_iter()
                .fold(Agent::new(id, node), |a, c| a.capability(c))
                .health(health)
                .resources(Resources {
                    cpu_millis: cpu,
                    memory_mb: 64,
                });
            a.pid = p.map(pid);
            a
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let id = prop::sample::select(vec!["a", "b", "c", "d", "e", "f"]).prop_map(String::from);
    prop_oneof![
        4 => agent_strategy().prop_map(Op::Register),
        2 => agent_strategy().prop_map(Op::Update),
        2 => (id.clone(), prop::sample::select(vec![Health::Healthy, Health::Degraded, Health::Unhealthy]))
            .prop_map(|(id, health)| Op::SetHealth { id, health }),
        2 => id.prop_map(Op::Unregister),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let batch = || prop::collection::vec(op_strategy(), 1..5);
    prop_oneof![
        8 => batch().prop_map(Step::Tx),
        2 => (batch(), any::<prop::sample::Index>())
            .prop_map(|(ops, i)| { let at = i.index(ops.len()); Step::CrashAt(ops, at) }),
        1 => Just(Step::Kill),
    ]
}

/// The reference: a plain map and a commit counter, with the op rules written out again.
#[derive(Debug, Default, Clone)]
struct Model {
    agents: BTreeMap<String, Agent>,
    version: u64,
}

impl Model {
    /// Applies the batch to a copy; on the first failing op, the model is left as it was.
    fn transact(&mut self, ops: &[Op]) -> Result<u64, (usize, OpKind, OpError)> {
        let mut next = self.agents.clone();
        for (i, op) in ops.iter().enumerate() {
            let fail = |e| (i, op.kind(), e);
            match op {
                Op::Register(a) | Op::Update(a) => {
                    if a.id.is_empty() {
                        return Err(fail(OpError::Invalid {
                            id: a.id.clone(),
                            why: "the id must have 1 to 256 bytes".into(),
                        }));
                    }
                    let exists = next.contains_key(&a.id);
                    if matches!(op, Op::Register(_)) && exists {
                        return Err(fail(OpError::AlreadyRegistered(a.id.clone())));
                    }
                    if matches!(op, Op::Update(_)) && !exists {
                        return Err(fail(OpError::NotFound(a.id.clone())));
                    }
                    if matches!(op, Op::Register(_)) && next.len() >= MAX_AGENTS {
                        return Err(fail(OpError::Full { max: MAX_AGENTS }));
                    }
                    if let Some(p) = a.pid {
                        if let Some(owner) =
                            next.values().find(|o| o.pid == Some(p) && o.id != a.id)
                        {
                            return Err(fail(OpError::PidInUse {
                                pid: p,
                                owner: owner.id.clone(),
                            }));
                        }
                    }
                    next.insert(a.id.clone(), a.clone());
                }
                Op::SetHealth { id, health } => match next.get_mut(id) {
                    Some(a) => a.health = *health,
                    None => return Err(fail(OpError::NotFound(id.clone()))),
                },
                Op::Unregister(id) => {
                    if next.remove(id).is_none() {
                        return Err(fail(OpError::NotFound(id.clone())));
                    }
                }
            }
        }
        self.agents = next;
        self.version += 1;
        Ok(self.version)
    }
}

/// Pages through `index` `page_size` at a time.
fn paged(reg: &AgentRegistry, index: &Index, page_size: usize) -> Vec<Agent> {
    let mut out = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = reg.query(index, cursor.as_ref(), page_size).unwrap();
        out.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn scanned(reg: &AgentRegistry, pred: impl Fn(&Agent) -> bool, page_size: usize) -> Vec<Agent> {
    let mut out = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = reg.scan(&pred, cursor.as_ref(), page_size).unwrap();
        out.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Which agents an index should hold.
type Matcher = Box<dyn Fn(&Agent) -> bool>;

/// Everything the registry shows must equal the model.
fn compare(reg: &AgentRegistry, model: &Model, page_size: usize) -> Result<(), String> {
    reg.check_invariants()?;
    let all: Vec<Agent> = model.agents.values().cloned().collect();
    let got = scanned(reg, |_| true, page_size);
    if got != all {
        return Err(format!("table {got:?}, model {all:?}"));
    }
    if reg.version() != model.version {
        return Err(format!(
            "version {}, model {}",
            reg.version(),
            model.version
        ));
    }
    let mut indexes: Vec<(Index, Matcher)> = Vec::new();
    for c in CAPS {
        indexes.push((
            Index::Capability(c.into()),
            Box::new(move |a: &Agent| a.capabilities.contains(c)),
        ));
    }
    for h in [Health::Healthy, Health::Degraded, Health::Unhealthy] {
        indexes.push((Index::Health(h), Box::new(move |a: &Agent| a.health == h)));
    }
    for n in 0..3 {
        indexes.push((Index::Node(n), Box::new(move |a: &Agent| a.node == n)));
    }
    for (index, pred) in &indexes {
        let want: Vec<Agent> = all.iter().filter(|a| pred(a)).cloned().collect();
        let got = paged(reg, index, page_size);
        if got != want {
            return Err(format!(
                "{index:?} paged by {page_size}: {got:?}, model {want:?}"
            ));
        }
    }
    let even_cpu = |a: &Agent| a.resources.cpu_millis % 2 == 0;
    let want: Vec<Agent> = all.iter().filter(|a| even_cpu(a)).cloned().collect();
    let got = scanned(reg, even_cpu, page_size);
    if got != want {
        return Err(format!(
            "scan paged by {page_size}: {got:?}, model {want:?}"
        ));
    }
    Ok(())
}

/// Waits (by calling the supervisor, which handles the registry's exit first) until the
/// registry runs again.
async fn restarted(ctx: &Ctx<u32>, reg: &AgentRegistry, old: Pid) -> Result<(), String> {
    let children = which_children(ctx, reg.supervisor(), SEC)
        .await
        .map_err(|e| e.to_string())?;
    match children.first().and_then(|c| c.1) {
        Some(p) if p != old && reg.pid() == Some(p) => Ok(()),
        other => Err(format!("registry not restarted: {other:?}")),
    }
}

async fn run_steps(
    ctx: &mut Ctx<u32>,
    reg: &AgentRegistry,
    crash: &AtomicUsize,
    steps: &[Step],
    page_size: usize,
) -> Result<(), String> {
    let mut model = Model::default();
    compare(reg, &model, page_size)?;
    for (n, step) in steps.iter().enumerate() {
        let at = |e: String| format!("step {n} {step:?}: {e}");
        match step {
            Step::Tx(ops) => {
                let want = model.transact(ops);
                let got = reg.transact(ctx, ops.clone(), SEC).await;
                let same = match (&got, &want) {
                    (Ok(r), Ok(v)) => r.version == *v,
                    (
                        Err(TxError::Op {
                            index, op, error, ..
                        }),
                        Err((i, k, e)),
                    ) => index == i && op == k && error == e,
                    _ => false,
                };
                if !same {
                    return Err(at(format!("registry {got:?}, model {want:?}")));
                }
            }
            Step::CrashAt(ops, k) => {
                let old = reg.pid().ok_or_else(|| at("no registry".into()))?;
                crash.store(*k, Ordering::SeqCst);
                // The model, applied up to the crash point, must not have failed before it:
                // otherwise the batch aborts before reaching the crash.
                let fails_before = match model.clone().transact(&ops[..*k]) {
                    Err((i, _, _)) => i < *k,
                    Ok(_) => false,
                };
                let got = reg.transact(ctx, ops.clone(), SEC).await;
                crash.store(NO_CRASH, Ordering::SeqCst);
                if fails_before {
                    if !matches!(got, Err(TxError::Op { .. })) {
                        return Err(at(format!("expected an op error, got {got:?}")));
                    }
                    continue;
                }
                if !matches!(got, Err(TxError::RegistryDown(_))) {
                    return Err(at(format!("expected RegistryDown, got {got:?}")));
                }
                compare(reg, &model, page_size).map_err(at)?;
                restarted(ctx, reg, old).await.map_err(at)?;
            }
            Step::Kill => {
                let old = reg.pid().ok_or_else(|| at("no registry".into()))?;
                let m = ctx.monitor(old);
                ctx.exit(old, ExitReason::Kill);
                while !matches!(ctx.recv().await, Event::Down { reference, .. } if reference == m) {
                }
                restarted(ctx, reg, old).await.map_err(at)?;
            }
        }
        compare(reg, &model, page_size).map_err(at)?;
    }
    Ok(())
}

struct RegistryModel {
    steps: Vec<Step>,
    page_size: usize,
}

impl Scenario for RegistryModel {
    fn name(&self) -> &'static str {
        "agent-registry-model"
    }

    fn about(&self) -> &'static str {
        "the agent registry against a BTreeMap model"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["model"]
    }

    fn setup(&self) -> Setup {
        Setup::new(1, FaultMix::new(Vec::new(), 0.0, 0))
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        let steps = self.steps.clone();
        let page_size = self.page_size;
        Box::pin(async move {
            let (tx, rx) = oneshot::channel::<Result<(), String>>();
            let tx = Arc::new(Mutex::new(Some(tx)));
            ctx.start_node(0, move |node| {
                let (steps, tx) = (steps.clone(), tx.clone());
                async move {
                    let rt_node = Node::local(0, node.incarnation());
                    let crash = Arc::new(AtomicUsize::new(NO_CRASH));
                    let hook = crash.clone();
                    let config = Config::default()
                        .max_agents(MAX_AGENTS)
                        .scan_budget(SCAN_BUDGET)
                        .intensity(1_000, SEC)
                        .crash_before_op(move |i, _| hook.load(Ordering::SeqCst) == i);
                    let reg = AgentRegistry::start(&rt_node, None, config)
                        .await
                        .expect("the registry starts");
                    rt_node.spawn("model", move |mut ctx: Ctx<u32>| async move {
                        let result = run_steps(&mut ctx, &reg, &crash, &steps, page_size).await;
                        if let Some(tx) = tx.lock().unwrap().take() {
                            let _ = tx.send(result);
                        }
                        ExitReason::Normal
                    });
                }
            });
            let result = rx
                .await
                .unwrap_or_else(|_| Err("the model process died".into()));
            ctx.check("registry-equals-model", result.is_ok(), || {
                result.unwrap_err()
            })
        })
    }
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn agent_registry_matches_its_model() {
    let mut runner = TestRunner::new(config(crate::cases(48), file!()));
    let result = runner.run(
        &(prop::collection::vec(step_strategy(), 1..25), 1usize..4),
        |(steps, page_size)| {
            let scenario = RegistryModel { steps, page_size };
            let report = Sim::new(0)
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

/// The `transaction-rollback` scenario: the fixed variant (one `transact` per batch) keeps the
/// table at whole-batch states under failing ops, mid-batch registry crashes at every drawn op
/// index, killed writers and node crashes, deterministically; the flawed one (one call per op)
/// is caught on the first seed.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn transaction_rollback_fixed_holds_and_flawed_is_caught() {
    let summary = Check::new(&TransactionRollback)
        .variant("fixed")
        .seeds(0..40)
        .determinism(true)
        .run();
    assert_eq!(summary.seeds_run, 40);
    let found = Check::new(&TransactionRollback)
        .variant("flawed")
        .seeds(0..20)
        .expect_failure();
    assert!(
        matches!(&found.outcome, Outcome::Violated(v) if v.invariant == "never-between-batches"),
        "{}",
        found.summary
    );
    assert_eq!(
        found.repro,
        format!(
            "groundhog replay transaction-rollback --variant flawed --seed {}",
            found.seed
        )
    );
}
