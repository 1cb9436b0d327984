//! One seeded run: a fresh simulated world, the scenario's driver, the fault plan, and a report.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

use groundhog_runtime::rt::{self, Control, Duration, NetConfig, World, WorldError};
use groundhog_runtime::{event, ExitReason, Node, Pid};
use serde::Serialize;

use crate::fault::{
    exit_reason, Durations, Fault, FaultKind, FaultPlan, PlanError, PlanLimits, Target,
};
use crate::invariants::Invariants;
use crate::scenario::{lock, Driver, Nodes, Processes, Scenario, Violation};
use crate::trace::{format_time, Recorder, Trace, TraceHash};

/// Input that cannot make a run. The message is one readable line.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("scenario `{scenario}` has no variant `{variant}` (known: {known})")]
    UnknownVariant {
        scenario: String,
        variant: String,
        known: String,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    World(#[from] WorldError),
    #[error("{0}")]
    BadInput(String),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    /// An invariant did not hold.
    Violated(Violation),
    /// The run panicked: a scenario bug, a hang past the time limit, or a deadlock.
    Panicked {
        message: String,
    },
}

impl Outcome {
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass)
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: String,
    pub variant: String,
    pub seed: u64,
    pub outcome: Outcome,
    pub trace: Trace,
    /// Simulated time the run took.
    pub sim_time: Duration,
    pub plan: FaultPlan,
    /// The flags, beyond scenario, variant and seed, that reproduce this run.
    pub repro_flags: String,
    /// Coverage points this run declared, and whether each was hit.
    pub coverage: std::collections::BTreeMap<String, bool>,
    /// The binary the repro line names.
    pub program: String,
    /// The operations the scenario's clients recorded (empty when it records none).
    pub history: crate::history::History,
}

impl Report {
    pub fn hash(&self) -> TraceHash {
        self.trace.hash
    }

    /// The command that reproduces this run exactly, with its full trace.
    pub fn repro(&self) -> String {
        format!(
            "{} replay {} --variant {} --seed {}{}",
            self.program, self.scenario, self.variant, self.seed, self.repro_flags
        )
    }

    /// One line naming scenario, variant, seed, hash and result.
    pub fn summary(&self) -> String {
        let result = match &self.outcome {
            Outcome::Pass => "pass".to_string(),
            Outcome::Violated(v) => format!("FAIL invariant={} msg={:?}", v.invariant, v.message),
            Outcome::Panicked { message } => format!("FAIL panic={message:?}"),
        };
        format!(
            "{} variant={} seed={} hash={} sim={}s events={} faults={} {result}",
            self.scenario,
            self.variant,
            self.seed,
            self.trace.hash,
            format_time(self.sim_time),
            self.trace.events(),
            self.plan.faults.len(),
        )
    }
}

/// Where a run's fault plan comes from.
#[derive(Debug, Clone)]
enum PlanSource {
    Generated,
    File(PathBuf),
    Given(FaultPlan),
}

/// A seeded run, configured by builder methods; [`Sim::run`] executes it on a fresh world.
///
/// ```no_run
/// # fn demo(scenario: &dyn groundhog_sim::Scenario) {
/// let report = groundhog_sim::Sim::new(17).variant("flawed").run(scenario).unwrap();
/// println!("{}", report.summary());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Sim {
    seed: u64,
    variant: Option<String>,
    plan: PlanSource,
    intensity: Option<f64>,
    kinds: Option<Vec<FaultKind>>,
    nodes: Option<u32>,
    durations: Option<Durations>,
    program: String,
    net: Option<NetConfig>,
    time_limit: Option<Duration>,
    keep_trace: bool,
    buggify: Option<bool>,
    checkers_only: bool,
}

impl Sim {
    pub fn new(seed: u64) -> Self {
        Sim {
            seed,
            variant: None,
            plan: PlanSource::Generated,
            intensity: None,
            kinds: None,
            nodes: None,
            durations: None,
            program: "groundhog".to_string(),
            net: None,
            time_limit: None,
            keep_trace: true,
            buggify: None,
            checkers_only: false,
        }
    }

    /// Switches the scenario's hand-written invariants off ([`Driver::check`] passes and traces
    /// `result=skipped`), leaving the history checkers and the always-on invariants: shows that
    /// a checker alone catches a flaw. Repro lines add `--checkers-only`.
    pub fn checkers_only(mut self, on: bool) -> Self {
        self.checkers_only = on;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn variant(mut self, variant: impl Into<String>) -> Self {
        self.variant = Some(variant.into());
        self
    }

    /// Uses a plan file (TOML or JSON) instead of a generated plan.
    pub fn plan_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.plan = PlanSource::File(path.into());
        self
    }

    /// Uses this plan instead of a generated one. Such a run's repro line cannot name it; write
    /// it to a file and use [`Sim::plan_file`] when the run must be replayed from the CLI.
    pub fn plan(mut self, plan: FaultPlan) -> Self {
        self.plan = PlanSource::Given(plan);
        self
    }

    /// Intensity of the generated plan, 0.0 to 1.0 (the scenario's default otherwise).
    pub fn intensity(mut self, intensity: f64) -> Self {
        self.intensity = Some(intensity);
        self
    }

    /// Kinds of fault the generated plan may use (the scenario's choice otherwise).
    pub fn faults(mut self, kinds: Vec<FaultKind>) -> Self {
        self.kinds = Some(kinds);
        self
    }

    /// The binary repro lines name (default `groundhog`; a crate of one's own names its own).
    pub fn program(mut self, name: &str) -> Self {
        self.program = name.to_string();
        self
    }

    /// Pins the generated plan's episode lengths (`short`, `long`, `mixed`) for every seed.
    pub fn durations(mut self, durations: Durations) -> Self {
        self.durations = Some(durations);
        self
    }

    pub fn nodes(mut self, nodes: u32) -> Self {
        self.nodes = Some(nodes);
        self
    }

    pub fn net(mut self, net: NetConfig) -> Self {
        self.net = Some(net);
        self
    }

    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = Some(limit);
        self
    }

    /// Turns buggify points on or off for this run, whatever the scenario or plan says.
    pub fn buggify(mut self, on: bool) -> Self {
        self.buggify = Some(on);
        self
    }

    /// Whether the report keeps every trace line (the hash and counts are always kept).
    pub fn keep_trace(mut self, keep: bool) -> Self {
        self.keep_trace = keep;
        self
    }

    pub fn get_seed(&self) -> u64 {
        self.seed
    }

    /// The variant this run would use for `scenario`.
    pub fn variant_for(&self, scenario: &dyn Scenario) -> Result<String, HarnessError> {
        let known = scenario.variants();
        match &self.variant {
            None => Ok(known.first().copied().unwrap_or("default").to_string()),
            Some(v) if known.contains(&v.as_str()) => Ok(v.clone()),
            Some(v) => Err(HarnessError::UnknownVariant {
                scenario: scenario.name().to_string(),
                variant: v.clone(),
                known: known.join(", "),
            }),
        }
    }

    fn repro_flags(&self) -> String {
        let mut flags = String::new();
        match &self.plan {
            PlanSource::File(p) => flags += &format!(" --plan {}", p.display()),
            PlanSource::Given(_) => flags += " --plan <the plan given to Sim::plan>",
            PlanSource::Generated => {}
        }
        if let Some(i) = self.intensity {
            flags += &format!(" --intensity {i}");
        }
        if let Some(kinds) = &self.kinds {
            let names: Vec<_> = kinds.iter().map(|k| k.name()).collect();
            flags += &format!(" --faults {}", names.join(","));
        }
        if let Some(d) = self.durations {
            flags += &format!(" --durations {}", d.name());
        }
        if let Some(n) = self.nodes {
            flags += &format!(" --nodes {n}");
        }
        if self.checkers_only {
            flags += " --checkers-only";
        }
        if self.net.is_some() || self.time_limit.is_some() {
            flags += " (plus the Sim builder's network and time-limit settings)";
        }
        match self.buggify {
            Some(true) => flags += " --buggify",
            // The CLI has no flag that turns buggify off over a plan that turns it on.
            Some(false) => flags += " (plus the Sim builder's buggify setting)",
            None => {}
        }
        flags
    }

    /// The node count this run would use, checked against the scenario's range.
    pub fn nodes_for(&self, scenario: &dyn Scenario) -> Result<u32, HarnessError> {
        let setup = scenario.setup();
        let nodes = self.nodes.unwrap_or(setup.nodes);
        let (min, max) = (
            *setup.node_range.start(),
            (*setup.node_range.end()).min(MAX_NODES),
        );
        if nodes == 0 {
            return Err(HarnessError::BadInput(
                "a run needs at least one node".into(),
            ));
        }
        if nodes > MAX_NODES {
            return Err(HarnessError::BadInput(format!(
                "--nodes {nodes} is past the largest simulated cluster, {MAX_NODES} nodes"
            )));
        }
        if !(min..=max).contains(&nodes) {
            let can = if min == max {
                format!("runs on exactly {min} node(s)")
            } else {
                format!("runs on {min} to {max} nodes")
            };
            return Err(HarnessError::BadInput(format!(
                "scenario `{}` {can}, not {nodes}",
                scenario.name()
            )));
        }
        Ok(nodes)
    }

    /// Resolves the fault plan this run would use, checked against the node count and the
    /// scenario's time limit.
    pub fn resolve_plan(&self, scenario: &dyn Scenario) -> Result<FaultPlan, HarnessError> {
        let setup = scenario.setup();
        let nodes = self.nodes_for(scenario)?;
        if self.intensity.is_some() && !matches!(self.plan, PlanSource::Generated) {
            return Err(HarnessError::BadInput(
                "--intensity shapes a generated plan; it cannot apply to a given --plan".into(),
            ));
        }
        if self.durations.is_some() && !matches!(self.plan, PlanSource::Generated) {
            return Err(HarnessError::BadInput(
                "--durations shapes a generated plan; it cannot apply to a given --plan".into(),
            ));
        }
        if self.kinds.is_some() && !matches!(self.plan, PlanSource::Generated) {
            return Err(HarnessError::BadInput(
                "--faults shapes a generated plan; it cannot apply to a given --plan".into(),
            ));
        }
        let net = self.net.clone().unwrap_or(setup.net);
        let (mut plan, path) = match &self.plan {
            PlanSource::Generated => {
                let mut mix = setup.faults.clone();
                if let Some(i) = self.intensity {
                    if !(0.0..=1.0).contains(&i) {
                        return Err(HarnessError::BadInput(format!(
                            "intensity {i} is not between 0 and 1"
                        )));
                    }
                    mix.intensity = i;
                }
                if let Some(kinds) = &self.kinds {
                    mix.kinds = kinds.clone();
                }
                if let Some(d) = self.durations {
                    mix.durations = Some(d);
                }
                mix.check().map_err(HarnessError::BadInput)?;
                let mut plan = FaultPlan::generate(self.seed, nodes, &mix, &net);
                plan.buggify = setup.buggify;
                (plan, None)
            }
            PlanSource::File(p) => (FaultPlan::load(p)?, Some(p.display().to_string())),
            PlanSource::Given(plan) => (plan.clone(), None),
        };
        let limits = PlanLimits {
            nodes,
            time_limit_ms: millis(self.time_limit.unwrap_or(setup.time_limit)),
            settle_ms: millis(setup.settle),
        };
        plan.validate(limits, path.as_deref())?;
        if let Some(on) = self.buggify {
            plan.buggify = on;
        }
        Ok(plan)
    }

    /// Runs `scenario` on a fresh simulated world. `Err` only for input that cannot make a run;
    /// a failed invariant or a panic is an [`Outcome`] in the report.
    pub fn run(&self, scenario: &dyn Scenario) -> Result<Report, HarnessError> {
        let variant = self.variant_for(scenario)?;
        let setup = scenario.setup();
        let nodes = self.nodes_for(scenario)?;
        let plan = self.resolve_plan(scenario)?;
        let net = self
            .net
            .clone()
            .or_else(|| plan.net.as_ref().map(|n| n.config()))
            .unwrap_or(setup.net.clone());
        let time_limit = self.time_limit.unwrap_or(setup.time_limit);
        let invariants = Invariants::new(&setup.skip_invariants).map_err(HarnessError::BadInput)?;
        let world = World::new(self.seed, &net, Some(time_limit))?;

        let recorder = Recorder::checking(self.keep_trace, invariants);
        let started: Nodes = Arc::default();
        let processes: Processes = Arc::default();
        let points = crate::coverage::Points::default();
        let history = crate::history::History::new();
        let _in_run = InRun::enter();
        let run = tracing::subscriber::with_default(recorder.clone(), || {
            catch_unwind(AssertUnwindSafe(|| {
                world.block_on(async {
                    let control = Control::current().expect("inside a simulated world");
                    if plan.buggify {
                        groundhog_runtime::buggify::enable(self.seed);
                        event!("note", msg = "buggify on");
                    }
                    let ctx = Driver {
                        seed: self.seed,
                        variant: variant.clone(),
                        nodes,
                        quiet_at: Duration::from_millis(plan.quiet_at_ms),
                        settle: setup.settle,
                        control: control.clone(),
                        started: started.clone(),
                        processes: processes.clone(),
                        points: points.clone(),
                        history: history.clone(),
                        hand_checks: !self.checkers_only,
                    };
                    event!(
                        "note",
                        msg = "start",
                        scenario = scenario.name(),
                        variant = variant.as_str(),
                        seed = self.seed,
                        nodes = nodes
                    );
                    drop(rt::spawn(apply_plan(
                        plan.clone(),
                        net.clone(),
                        control,
                        started.clone(),
                        processes.clone(),
                    )));
                    // An always-on invariant's violation ends the run, like a failed check.
                    let violated = Box::pin(recorder.violated());
                    let result = match futures::future::select(scenario.run(ctx), violated).await {
                        futures::future::Either::Left((result, _)) => result,
                        futures::future::Either::Right(((), _)) => Ok(()),
                    };
                    (result, rt::elapsed())
                })
            }))
        });
        let (outcome, sim_time) = match run {
            Ok((Ok(()), t)) => (Outcome::Pass, t),
            Ok((Err(v), t)) => (Outcome::Violated(v), t),
            Err(payload) => (
                Outcome::Panicked {
                    message: panic_message(payload.as_ref()),
                },
                Duration::ZERO,
            ),
        };
        let outcome = match (recorder.violation(), outcome) {
            (Some(v), _) => Outcome::Violated(v),
            (None, Outcome::Pass) => match recorder.finish(sim_time) {
                Some(v) => Outcome::Violated(v),
                None => Outcome::Pass,
            },
            (None, other) => other,
        };
        let verdict = match &outcome {
            Outcome::Pass => "end result=pass".to_string(),
            Outcome::Violated(v) => format!("end result=violated invariant={}", v.invariant),
            Outcome::Panicked { message } => format!("end result=panicked msg={message:?}"),
        };
        recorder.push("end", format!("{} -- {verdict}", format_time(sim_time)));
        Ok(Report {
            scenario: scenario.name().to_string(),
            variant,
            seed: self.seed,
            outcome,
            trace: recorder.take(),
            sim_time,
            plan,
            repro_flags: self.repro_flags(),
            coverage: points.take(),
            program: self.program.clone(),
            history,
        })
    }
}

thread_local! {
    /// Whether this thread is inside [`Sim::run`]. Only [`quiet_panics_in_runs`] reads it; it
    /// never affects a simulation.
    static IN_RUN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current thread as running a simulation until dropped.
struct InRun(bool);

impl InRun {
    fn enter() -> InRun {
        InRun(IN_RUN.with(|f| f.replace(true)))
    }
}

impl Drop for InRun {
    fn drop(&mut self) {
        IN_RUN.with(|f| f.set(self.0));
    }
}

/// Installs a panic hook that stays silent for panics inside a simulation run and hands every
/// other panic to the hook installed before.
///
/// Inside a run nothing is lost by this: a panicking process exits with `Error("panic: ...")`,
/// which the trace records, and a panicking driver makes the run's outcome `Panicked` with the
/// message. Without it, a sweep over a scenario that injects crashes as panics prints a message
/// (and, with `RUST_BACKTRACE`, a backtrace) per crash. The `groundhog` CLI installs it.
/// The largest cluster a run may simulate. Node addresses have room for 65,534; past a thousand
/// nodes a world's start-up and heartbeats alone take minutes per seed, so a larger count is a
/// mistake on the command line, not an experiment.
pub const MAX_NODES: u32 = 1024;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub fn quiet_panics_in_runs() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_RUN.with(|f| f.get()) {
            previous(info);
        }
    }));
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".to_string()
    }
}

/// What the fault executor has done, so the quiet phase can undo all of it.
#[derive(Default)]
struct Damage {
    crashed: BTreeSet<u32>,
    paused: BTreeSet<u32>,
    clogged: BTreeSet<(u32, u32)>,
    /// Nodes whose clock a `clock-skew` or `clock-drift` changed.
    clocks: BTreeSet<u32>,
    /// Nodes whose disk a `disk-stall` or `disk-full` is slowing or filling.
    disks: BTreeSet<u32>,
}

async fn apply_plan(
    plan: FaultPlan,
    base: NetConfig,
    control: Control,
    started: Nodes,
    processes: Processes,
) {
    let mut damage = Damage::default();
    let mut net = base.clone();
    for tf in &plan.faults {
        sleep_until(Duration::from_millis(tf.at_ms)).await;
        let fault = tf.fault.to_string();
        match apply(
            &tf.fault,
            &control,
            &started,
            &processes,
            &mut damage,
            &mut net,
        ) {
            Ok(None) => event!("fault", fault = fault.as_str()),
            // The fault line first, then what the signal does (signal, exit, down, restart).
            Ok(Some((node, pid, reason))) => {
                event!("fault", fault = fault.as_str(), pid = %pid);
                node.exit(pid, pid, reason);
            }
            Err(why) => event!("fault", fault = fault.as_str(), skipped = why),
        }
    }
    sleep_until(Duration::from_millis(plan.quiet_at_ms)).await;
    let nodes = lock(&started).clone();
    for n in &damage.crashed {
        if let Some(node) = nodes.get(n) {
            control.restart(node);
        }
    }
    for n in &damage.paused {
        if let Some(node) = nodes.get(n) {
            control.resume(node);
        }
    }
    for (from, to) in &damage.clogged {
        if let (Some(a), Some(b)) = (nodes.get(from), nodes.get(to)) {
            control.unclog_link(a, b);
        }
    }
    for n in &damage.clocks {
        if let Some(node) = nodes.get(n) {
            control.reset_clock(node);
        }
    }
    for n in &damage.disks {
        if let Some(node) = nodes.get(n) {
            control.disk_stall(node, Duration::ZERO);
            control.disk_full(node, false);
        }
    }
    control
        .set_net(&base)
        .expect("the base network config was validated");
    if damage.clocks.is_empty() && damage.disks.is_empty() {
        event!(
            "fault",
            fault = "quiet",
            restarted = damage.crashed.len(),
            resumed = damage.paused.len(),
            unclogged = damage.clogged.len()
        );
    } else {
        // Only runs that changed a clock say so, so every other trace keeps its hash.
        event!(
            "fault",
            fault = "quiet",
            restarted = damage.crashed.len(),
            resumed = damage.paused.len(),
            unclogged = damage.clogged.len(),
            clocks_reset = damage.clocks.len(),
            disks_freed = damage.disks.len()
        );
    }
}

async fn sleep_until(at: Duration) {
    let now = rt::elapsed();
    if at > now {
        rt::sleep(at - now).await;
    }
}

/// The runtime process `target` names on node `n`, and its node.
fn resolve(n: u32, target: &Target, damage: &Damage) -> Result<(Node, Pid), &'static str> {
    if damage.crashed.contains(&n) {
        return Err("crashed");
    }
    let node = Node::in_world(n).ok_or("no-runtime-node")?;
    let pid = match target {
        Target::Pid(id) => node.live_pid(*id).ok_or("no-such-pid")?,
        Target::Name(name) => node.whereis_local(name).ok_or("no-such-name")?,
        Target::Child { supervisor, child } => {
            let sup = node.whereis_local(supervisor).ok_or("no-such-supervisor")?;
            node.supervisor_child(sup, child).ok_or("no-such-child")?
        }
        // Refused by the plan's validation; never a panic.
        Target::Task(_) => return Err("harness-task"),
    };
    if pid.node != n {
        return Err("not-local");
    }
    Ok((node, pid))
}

/// An exit signal the executor sends after tracing the fault: `(node, target, reason)`.
type Signal = Option<(Node, Pid, ExitReason)>;

/// Applies one fault; `Err(reason)` when it had nothing to act on.
fn apply(
    fault: &Fault,
    control: &Control,
    started: &Nodes,
    processes: &Processes,
    damage: &mut Damage,
    net: &mut NetConfig,
) -> Result<Signal, &'static str> {
    let nodes = lock(started).clone();
    let node = |n: &u32| nodes.get(n).cloned().ok_or("not-started");
    match fault {
        Fault::CrashNode { node: n } => {
            let target = node(n)?;
            if !damage.crashed.insert(*n) {
                return Err("already-crashed");
            }
            damage.paused.remove(n);
            control.crash(&target);
        }
        Fault::RestartNode { node: n } => {
            let target = node(n)?;
            damage.crashed.remove(n);
            damage.paused.remove(n);
            control.restart(&target);
        }
        Fault::PauseNode { node: n } => {
            let target = node(n)?;
            if damage.crashed.contains(n) {
                return Err("crashed");
            }
            damage.paused.insert(*n);
            control.pause(&target);
        }
        Fault::ResumeNode { node: n } => {
            let target = node(n)?;
            if !damage.paused.remove(n) {
                return Err("not-paused");
            }
            control.resume(&target);
        }
        Fault::KillProcess { node: n, target } if !matches!(target, Target::Task(_)) => {
            let (node, pid) = resolve(*n, target, damage)?;
            return Ok(Some((node, pid, ExitReason::Kill)));
        }
        Fault::ExitProcess {
            node: n,
            target,
            reason,
        } => {
            let (node, pid) = resolve(*n, target, damage)?;
            return Ok(Some((node, pid, exit_reason(reason))));
        }
        Fault::KillProcess {
            node: n,
            target: Target::Task(process),
        } => {
            let handle = lock(processes).remove(&(*n, process.clone()));
            let handle = handle
                .filter(|h| !h.is_finished())
                .ok_or("no-such-process")?;
            handle.abort();
            event!(
                "exit",
                node = *n,
                task = process.as_str(),
                reason = "killed"
            );
        }
        Fault::Partition { groups } => {
            let group_of = |n: u32| groups.iter().position(|g| g.contains(&n));
            for (&a, na) in &nodes {
                for (&b, nb) in &nodes {
                    let apart = a != b && (group_of(a).is_none() || group_of(a) != group_of(b));
                    if apart && damage.clogged.insert((a, b)) {
                        control.clog_link(na, nb);
                    }
                }
            }
        }
        Fault::Heal => {
            for (from, to) in std::mem::take(&mut damage.clogged) {
                if let (Ok(a), Ok(b)) = (node(&from), node(&to)) {
                    control.unclog_link(&a, &b);
                }
            }
        }
        Fault::ClogLink { from, to } => {
            let (a, b) = (node(from)?, node(to)?);
            damage.clogged.insert((*from, *to));
            control.clog_link(&a, &b);
        }
        Fault::UnclogLink { from, to } => {
            let (a, b) = (node(from)?, node(to)?);
            damage.clogged.remove(&(*from, *to));
            control.unclog_link(&a, &b);
        }
        Fault::SetLoss { rate } => {
            net.loss = *rate;
            control.set_net(net).expect("validated with the plan");
        }
        Fault::SetLatency { min_ms, max_ms } => {
            net.latency = Duration::from_millis(*min_ms)..Duration::from_millis(*max_ms);
            control.set_net(net).expect("validated with the plan");
        }
        Fault::KillProcess { .. } => unreachable!("every target is matched above"),
        Fault::ClockSkew { node: n, offset_ms } => {
            let target = node(n)?;
            damage.clocks.insert(*n);
            let offset = Duration::from_millis(offset_ms.unsigned_abs());
            control.skew_clock(&target, offset, *offset_ms > 0);
        }
        Fault::ClockDrift { node: n, rate } => {
            let target = node(n)?;
            damage.clocks.insert(*n);
            control.drift_clock(&target, *rate);
        }
        Fault::DiskStall {
            node: n,
            latency_ms,
        } => {
            let target = node(n)?;
            damage.disks.insert(*n);
            control.disk_stall(&target, Duration::from_millis(*latency_ms));
        }
        Fault::DiskFull { node: n, full } => {
            let target = node(n)?;
            damage.disks.insert(*n);
            control.disk_full(&target, *full);
        }
        Fault::DiskCorrupt { node: n } => {
            let target = node(n)?;
            control.disk_corrupt(&target).ok_or("nothing-to-corrupt")?;
        }
    }
    Ok(None)
}
