//! What a scenario is, and what it gets to work with during a run.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use groundhog_runtime::event;
use groundhog_runtime::rt::{self, ChaCha8Rng, Control, Duration, SimNode, Stream};

use crate::fault::FaultMix;

/// The future a scenario's [`Scenario::run`] returns. Simulations are single-threaded, so it
/// need not be `Send`.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// A named, seeded situation with invariants.
///
/// `run` is the scenario's driver: it starts node programs with [`Driver::start_node`], drives the
/// workload, checks safety invariants as it goes with [`Driver::check`], waits for the quiet phase
/// with [`Driver::quiesce`], then checks liveness invariants.
pub trait Scenario: Send + Sync {
    fn name(&self) -> &'static str;
    /// One line for `groundhog list`.
    fn about(&self) -> &'static str;
    /// Variant names; the first is the default.
    fn variants(&self) -> &'static [&'static str];
    fn setup(&self) -> Setup;
    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>>;
}

/// A scenario's defaults. Every field can be overridden per run by the [`Sim`](crate::Sim)
/// builder or the CLI.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Setup {
    pub nodes: u32,
    pub net: rt::NetConfig,
    /// How generated fault plans look for this scenario.
    pub faults: FaultMix,
    /// Time given to recover after faults stop, before liveness invariants are checked.
    pub settle: Duration,
    /// Simulated time after which the run is stopped and reported as a failure (a hang).
    pub time_limit: Duration,
    /// A flawed variant must fail within this many consecutive seeds.
    pub seed_budget: u64,
    /// Node counts the scenario can run with (`--nodes`); by default only `nodes`.
    pub node_range: std::ops::RangeInclusive<u32>,
    /// Coverage points each variant is expected to reach in a sweep, as `(variant, point)`.
    pub coverage: Vec<(String, String)>,
    /// Always-on runtime invariants this scenario does not want checked, by name (see
    /// [`Invariants`](crate::Invariants)). Skip one only when the scenario breaks the rule on
    /// purpose through the runtime's public API (a flawed variant that forges a sender, say),
    /// never to hide a runtime bug; say why beside the call.
    pub skip_invariants: Vec<&'static str>,
    /// Whether buggify points fire in this scenario's runs (off by default; a generated plan
    /// carries it as `buggify = true`, and [`Sim::buggify`](crate::Sim::buggify) overrides it).
    pub buggify: bool,
}

impl Setup {
    pub fn new(nodes: u32, faults: FaultMix) -> Self {
        Setup {
            nodes,
            net: rt::NetConfig::default(),
            faults,
            settle: Duration::from_secs(2),
            time_limit: Duration::from_secs(600),
            seed_budget: 100,
            node_range: nodes..=nodes,
            coverage: Vec::new(),
            skip_invariants: Vec::new(),
            buggify: false,
        }
    }

    /// The scenario runs with any node count in `range` (`--nodes`), not only its default; the
    /// harness refuses counts outside it, and never more than [`crate::MAX_NODES`].
    pub fn node_range(mut self, range: std::ops::RangeInclusive<u32>) -> Self {
        self.node_range = range;
        self
    }

    /// Names coverage points (`ctx.sometimes`, `ctx.reachable`) that `variant` must reach in
    /// some seed of a sweep: a sweep lists them even when never hit, and [`crate::Check::run`]
    /// fails when one is never hit.
    pub fn coverage(mut self, variant: &str, points: &[&str]) -> Self {
        self.coverage
            .extend(points.iter().map(|p| (variant.to_string(), p.to_string())));
        self
    }

    /// The points named for `variant`.
    pub fn points_for(&self, variant: &str) -> Vec<String> {
        self.coverage
            .iter()
            .filter(|(v, _)| v == variant)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Does not check the always-on invariant `name` (an unknown name fails the run's setup).
    pub fn skip_invariant(mut self, name: &'static str) -> Self {
        self.skip_invariants.push(name);
        self
    }

    /// Turns buggify points on (or off) for this scenario's runs.
    pub fn buggify(mut self, on: bool) -> Self {
        self.buggify = on;
        self
    }

    pub fn net(mut self, net: rt::NetConfig) -> Self {
        self.net = net;
        self
    }

    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    pub fn seed_budget(mut self, seeds: u64) -> Self {
        self.seed_budget = seeds;
        self
    }
}

/// A broken invariant: its name and what was seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub invariant: String,
    pub message: String,
}

/// Named tasks per node, so a plan's `kill-process` can find them.
pub(crate) type Processes = Arc<Mutex<BTreeMap<(u32, String), rt::AbortHandle>>>;

/// The nodes a scenario has started, by index.
pub(crate) type Nodes = Arc<Mutex<BTreeMap<u32, SimNode>>>;

/// The driver's view of a run.
#[derive(Clone)]
pub struct Driver {
    pub(crate) seed: u64,
    pub(crate) variant: String,
    pub(crate) nodes: u32,
    pub(crate) quiet_at: Duration,
    pub(crate) settle: Duration,
    pub(crate) control: Control,
    pub(crate) started: Nodes,
    pub(crate) processes: Processes,
    pub(crate) points: crate::coverage::Points,
    pub(crate) history: crate::history::History,
    pub(crate) hand_checks: bool,
}

impl Driver {
    /// A coverage point: declares `name`, and marks it hit when `cond` holds. A sweep reports in
    /// how many seeds each point was hit; it changes nothing in the run or its trace.
    pub fn sometimes(&self, name: &str, cond: bool) {
        self.points.mark(name, cond);
    }

    /// A coverage point hit whenever this line runs.
    pub fn reachable(&self, name: &str) {
        self.points.mark(name, true);
    }

    /// This run's history: record client operations on it (clone it into node programs), and
    /// judge it with [`Driver::check_linear`] or the anomaly checker in [`crate::checker`].
    pub fn history(&self) -> crate::history::History {
        self.history.clone()
    }

    /// Whether hand-written invariants apply; `false` under [`Sim::checkers_only`](crate::Sim::checkers_only),
    /// where [`Driver::check`] traces `result=skipped` and lets the run go on, so that only the
    /// history checkers can fail it.
    pub fn hand_checks(&self) -> bool {
        self.hand_checks
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn variant(&self) -> &str {
        &self.variant
    }

    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    /// The workload's random stream, derived from the seed (identical on every replay).
    pub fn rng(&self) -> ChaCha8Rng {
        rt::seeded_rng(self.seed, Stream::Workload)
    }

    /// Starts node `index` running `program`, which runs again from scratch after every restart.
    pub fn start_node<F, P>(&self, index: u32, program: P)
    where
        P: Fn(NodeCtx) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + 'static,
    {
        assert!(
            index < self.nodes,
            "start_node({index}): the run has nodes 0..{}",
            self.nodes
        );
        let incarnation = Arc::new(Mutex::new(0u64));
        let processes = self.processes.clone();
        let node = self.control.create_node(index, move || {
            let n = {
                let mut inc = incarnation.lock().unwrap_or_else(|e| e.into_inner());
                *inc += 1;
                *inc
            };
            event!("node", node = index, state = "start", incarnation = n);
            let run = program(NodeCtx {
                index,
                incarnation: n,
                processes: processes.clone(),
            });
            async move {
                run.await;
                // A node lives until crashed, not until its start-up program returns.
                std::future::pending::<()>().await
            }
        });
        lock(&self.started).insert(index, node);
    }

    /// Spawns a task on started node `index` (it dies with the node's current incarnation).
    pub fn spawn_on<F>(&self, index: u32, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let node = lock(&self.started).get(&index).cloned();
        let node = node.unwrap_or_else(|| panic!("spawn_on({index}): node not started"));
        self.control.spawn_on(&node, future);
    }

    /// A scenario's own remark in the trace.
    pub fn note(&self, msg: &str) {
        event!("note", msg = msg);
    }

    /// Records an invariant check in the trace; `Err` when it does not hold.
    pub fn check(
        &self,
        invariant: &str,
        holds: bool,
        explain: impl FnOnce() -> String,
    ) -> Result<(), Violation> {
        if !self.hand_checks {
            event!("check", invariant = invariant, result = "skipped");
            return Ok(());
        }
        self.check_always(invariant, holds, explain)
    }

    /// [`Driver::check`], also under [`Sim::checkers_only`](crate::Sim::checkers_only): for the
    /// verdicts of history checkers.
    pub fn check_always(
        &self,
        invariant: &str,
        holds: bool,
        explain: impl FnOnce() -> String,
    ) -> Result<(), Violation> {
        if holds {
            event!("check", invariant = invariant, result = "ok");
            Ok(())
        } else {
            let message = explain();
            event!(
                "check",
                invariant = invariant,
                result = "violated",
                msg = message.as_str()
            );
            Err(Violation {
                invariant: invariant.to_string(),
                message,
            })
        }
    }

    /// Checks this run's history against `model` (see [`crate::checker::linear`]): a violation
    /// of `invariant` naming a minimal non-linearizable sub-history, also under
    /// [`Sim::checkers_only`](crate::Sim::checkers_only). A search that runs out of budget is
    /// traced as `result=budget-exhausted` and does not fail the run (no verdict is not a
    /// failure).
    pub fn check_linear<M: crate::checker::Model>(
        &self,
        invariant: &str,
        model: &M,
    ) -> Result<(), Violation> {
        self.check_linear_ops(invariant, model, &self.history.ops())
    }

    /// [`Driver::check_linear`] over chosen operations (a subset of the history, say).
    pub fn check_linear_ops<M: crate::checker::Model>(
        &self,
        invariant: &str,
        model: &M,
        ops: &[crate::history::Operation],
    ) -> Result<(), Violation> {
        use crate::checker::Verdict;
        match crate::checker::Linear::new(model).check(ops) {
            Verdict::Linearizable => self.check_always(invariant, true, String::new),
            Verdict::NotLinearizable(f) => self.check_always(invariant, false, || f.explain()),
            Verdict::BudgetExhausted { key, steps } => {
                event!(
                    "check",
                    invariant = invariant,
                    result = "budget-exhausted",
                    key = key.as_str(),
                    steps = steps
                );
                Ok(())
            }
        }
    }

    /// Checks this run's transactions (operations with `f = "txn"`) with the anomaly checker
    /// `elle` (see [`crate::checker::elle`]): a violation of `invariant` naming the first
    /// anomaly found, the transactions on it and how many more there are, also under
    /// [`Sim::checkers_only`](crate::Sim::checkers_only).
    pub fn check_anomalies(
        &self,
        invariant: &str,
        elle: &crate::checker::Elle,
    ) -> Result<(), Violation> {
        let anomalies = elle.check(&self.history.ops());
        self.check_always(invariant, anomalies.is_empty(), || {
            let first = &anomalies[0];
            let txns: Vec<String> = first.txns.iter().map(|t| format!("#{}", t.0)).collect();
            let more = match anomalies.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more)"),
            };
            format!(
                "{} on txns {}: {}{more}",
                first.name,
                txns.join(" "),
                first.explain
            )
        })
    }

    /// Waits until faults have stopped, everything is healed and the settle time has passed.
    pub async fn quiesce(&self) {
        let target = self.quiet_at + self.settle;
        let now = rt::elapsed();
        if target > now {
            rt::sleep(target - now).await;
        }
        event!("note", msg = "quiet");
    }

    /// Awaits `until` while evaluating the safety check `check` every `every` of simulated time;
    /// returns `until`'s output, or the first violation as soon as it is seen.
    ///
    /// ```no_run
    /// # async fn demo(ctx: groundhog_sim::Driver) -> Result<(), groundhog_sim::Violation> {
    /// # let table_ok = || true;
    /// use groundhog_runtime::rt::Duration;
    /// let every = Duration::from_millis(250);
    /// let check = || ctx.check("bounded", table_ok(), || "the table grew".into());
    /// ctx.checking(every, check, ctx.quiesce()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn checking<T>(
        &self,
        every: Duration,
        mut check: impl FnMut() -> Result<(), Violation>,
        until: impl Future<Output = T>,
    ) -> Result<T, Violation> {
        let checks = async {
            loop {
                rt::sleep(every).await;
                check()?;
            }
        };
        futures::pin_mut!(until, checks);
        match futures::future::select(until, checks).await {
            futures::future::Either::Left((out, _)) => Ok(out),
            futures::future::Either::Right((result, _)) => {
                let never: Result<std::convert::Infallible, Violation> = result;
                Err(never.unwrap_err())
            }
        }
    }

    /// Simulated time since the run started.
    pub fn now(&self) -> Duration {
        rt::elapsed()
    }

    /// When the quiet phase starts (simulated time since the run started): from then on the
    /// plan injects nothing, and the harness has undone every fault (healed partitions and
    /// links, restarted crashed nodes, resumed paused ones).
    pub fn quiet_at(&self) -> Duration {
        self.quiet_at
    }

    /// How long after [`quiet_at`](Self::quiet_at) the system is given to recover before
    /// [`quiesce`](Self::quiesce) returns (the scenario's `Setup::settle`).
    pub fn settle(&self) -> Duration {
        self.settle
    }
}

/// A node program's view of its node.
#[derive(Clone)]
pub struct NodeCtx {
    index: u32,
    incarnation: u64,
    processes: Processes,
}

impl NodeCtx {
    pub fn index(&self) -> u32 {
        self.index
    }

    /// 1 on first start, then one more after every restart.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Spawns a named task on this node that a plan's `kill-process` can kill.
    pub fn spawn_process<F>(&self, name: &str, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let index = self.index;
        let owned = name.to_string();
        event!("spawn", node = index, task = name);
        let handle = rt::spawn(async move {
            future.await;
            event!(
                "exit",
                node = index,
                task = owned.as_str(),
                reason = "normal"
            );
        });
        lock(&self.processes).insert((index, name.to_string()), handle.abort_handle());
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The scenarios a `groundhog` binary knows, in listing order.
#[derive(Clone, Default)]
pub struct Catalogue {
    scenarios: Vec<Arc<dyn Scenario>>,
}

impl Catalogue {
    pub fn new() -> Self {
        Catalogue::default()
    }

    pub fn with(mut self, scenario: impl Scenario + 'static) -> Self {
        self.scenarios.push(Arc::new(scenario));
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Scenario>> {
        self.scenarios.iter()
    }

    /// The scenario called `name`, or a message listing the known ones.
    pub fn find(&self, name: &str) -> Result<Arc<dyn Scenario>, String> {
        self.scenarios
            .iter()
            .find(|s| s.name() == name)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<_> = self.scenarios.iter().map(|s| s.name()).collect();
                format!("unknown scenario `{name}` (known: {})", known.join(", "))
            })
    }
}
