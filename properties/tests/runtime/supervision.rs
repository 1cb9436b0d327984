//! Supervisors over whole simulations, against a reference model: for any strategy, intensity,
//! period, restart type per child, dependencies between children, planned start failures and
//! schedule of child deaths (one at a time, or several in the same instant, with any reason),
//! the supervisor starts, stops and restarts exactly what the model says, in order, retries a
//! failed start only after the exits already queued (OTP's `try_again_restart`), counts every
//! restart and retry against the intensity, and gives up (exit `Shutdown`, seen by its parent)
//! exactly when the model does.
//!
//! Several deaths "in the same instant": the supervisor is held inside `terminate_child` of a
//! latch child (which stops only when the driver says so) while the driver kills the victims
//! one after another; the supervisor then finds all their exits queued, in that order. Without
//! the latch the runtime's scheduler would decide how the deaths interleave with the
//! supervisor's reads, and the model could not say what must happen.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{Duration, Instant};
use groundhog_runtime::supervisor::{self, ChildSpec, Restart, Spec, Strategy as Sup};
use groundhog_runtime::{Ctx, Event, ExitReason, Pid, SpawnOpts, StartError};
use groundhog_sim::{BoxFuture, Driver, Scenario, Setup, Sim, Violation};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::cluster::{self, lock};
use crate::config;

/// What the children, the supervisor and the driver did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Child i's start function started it.
    Start(usize),
    /// Child i's start function failed (a planned failure, or its dependency was dead).
    StartFailed(usize),
    /// Child i received `Shutdown` from the supervisor and exited.
    Stop(usize),
    /// The driver made child i exit with this reason.
    Crash(usize, Why),
    /// The parent received the supervisor's exit (it gave up), with this reason.
    SupExit(ExitReason),
}

/// How the driver makes a child exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Kill,
    Error,
    Shutdown,
    Normal,
}

impl Why {
    fn reason(self) -> ExitReason {
        match self {
            Why::Kill => ExitReason::Kill,
            Why::Error => ExitReason::error("crash"),
            Why::Shutdown => ExitReason::Shutdown,
            Why::Normal => ExitReason::Normal,
        }
    }

    fn clean(self) -> bool {
        matches!(self, Why::Shutdown | Why::Normal)
    }
}

/// One instant of deaths: the victims in order, and which running non-victim is the latch
/// (an index into them, modulo their number) when there are several victims.
#[derive(Debug, Clone)]
struct Deaths {
    gap_ms: u64,
    victims: Vec<(usize, Why)>,
    latch: usize,
}

/// One generated case.
#[derive(Debug, Clone)]
struct Case {
    strategy: Sup,
    restarts: Vec<Restart>,
    /// Child j's start fails while its dependency (an earlier child) is dead.
    deps: Vec<Option<usize>>,
    /// `(child, attempt)`: that start attempt of the child fails (attempt 0, the first start,
    /// never does).
    fails: BTreeSet<(usize, u32)>,
    intensity: u32,
    /// Always 5 ms off a multiple of 10 ms, so no death (at multiples of 10 ms) falls on the
    /// window's edge, where a few nanoseconds of processing would decide.
    period_ms: u64,
    deaths: Vec<Deaths>,
}

fn case() -> impl Strategy<Value = Case> {
    let strategy = prop_oneof![
        Just(Sup::OneForOne),
        Just(Sup::OneForAll),
        Just(Sup::RestForOne),
    ];
    let restart = prop_oneof![
        3 => Just(Restart::Permanent),
        2 => Just(Restart::Transient),
        1 => Just(Restart::Temporary),
    ];
    let why = prop_oneof![
        3 => Just(Why::Kill),
        1 => Just(Why::Error),
        1 => Just(Why::Shutdown),
        1 => Just(Why::Normal),
    ];
    let deaths = (
        1u64..=60,
        proptest::collection::vec((0usize..5, why), 1..=3),
        0usize..5,
    );
    (
        strategy,
        proptest::collection::vec((restart, proptest::option::weighted(0.5, 0usize..5)), 2..=5),
        proptest::collection::vec((0usize..5, 1u32..=4), 0..=4),
        0u32..=4,
        5u64..=200,
        proptest::collection::vec(deaths, 0..=10),
    )
        .prop_map(|(strategy, children, fails, intensity, period, deaths)| {
            let n = children.len();
            Case {
                strategy,
                restarts: children.iter().map(|c| c.0).collect(),
                deps: children
                    .iter()
                    .enumerate()
                    .map(|(j, c)| c.1.filter(|_| j > 0).map(|d| d % j))
                    .collect(),
                fails: fails.into_iter().map(|(c, a)| (c % n, a)).collect(),
                intensity,
                period_ms: period * 10 + 5,
                deaths: deaths
                    .into_iter()
                    .map(|(gap, victims, latch)| Deaths {
                        gap_ms: gap * 10,
                        victims: victims.into_iter().map(|(c, w)| (c % n, w)).collect(),
                        latch,
                    })
                    .collect(),
            }
        })
}

/// The victims of `d` that are running (each once, in order), and the latch if there are
/// several and a running non-victim exists (else only the first victim dies). The driver and
/// the model both decide with this, from what is running.
fn plan(d: &Deaths, running: &[bool]) -> (Vec<(usize, Why)>, Option<usize>) {
    let mut victims: Vec<(usize, Why)> = Vec::new();
    for &(c, w) in &d.victims {
        if running[c] && !victims.iter().any(|v| v.0 == c) {
            victims.push((c, w));
        }
    }
    if victims.len() < 2 {
        return (victims, None);
    }
    let others: Vec<usize> = (0..running.len())
        .filter(|c| running[*c] && !victims.iter().any(|v| v.0 == *c))
        .collect();
    if others.is_empty() {
        victims.truncate(1);
        return (victims, None);
    }
    (victims, Some(others[d.latch % others.len()]))
}

/// What the supervisor has queued: a child's exit, or a retry of a failed start.
enum Queued {
    Exit(usize, Why),
    Retry(usize),
}

/// The reference model: OTP's supervisor, step by step.
struct Model<'a> {
    case: &'a Case,
    steps: Vec<Step>,
    /// The supervisor's children in order (child numbers; temporary ones leave).
    list: Vec<usize>,
    /// The supervisor believes child c runs (it has not read its exit).
    held: Vec<bool>,
    /// Child c's process is alive.
    alive: Vec<bool>,
    restarting: Vec<bool>,
    attempts: Vec<u32>,
    queue: VecDeque<Queued>,
    restarts: Vec<u64>,
    now: u64,
}

impl Model<'_> {
    fn start(&mut self, c: usize) -> bool {
        let attempt = self.attempts[c];
        self.attempts[c] += 1;
        let dep_dead = self.case.deps[c].is_some_and(|d| !self.alive[d]);
        if self.case.fails.contains(&(c, attempt)) || dep_dead {
            self.steps.push(Step::StartFailed(c));
            return false;
        }
        self.steps.push(Step::Start(c));
        self.alive[c] = true;
        self.held[c] = true;
        self.restarting[c] = false;
        true
    }

    fn stop(&mut self, c: usize) {
        if !self.held[c] {
            return;
        }
        self.held[c] = false;
        if self.alive[c] {
            self.steps.push(Step::Stop(c));
            self.alive[c] = false;
        } else {
            // Already dead: stopping it reads its queued exit.
            self.queue
                .retain(|q| !matches!(q, Queued::Exit(x, _) if *x == c));
        }
    }

    fn stop_all(&mut self) {
        for c in self.list.clone().into_iter().rev() {
            self.stop(c);
        }
    }

    /// One restart of child `c` by the strategy; true if the supervisor gave up.
    fn restart(&mut self, c: usize) -> bool {
        let now = self.now;
        self.restarts.push(now);
        self.restarts.retain(|t| now - t <= self.case.period_ms);
        if self.restarts.len() > self.case.intensity as usize {
            self.stop_all();
            self.steps.push(Step::SupExit(ExitReason::Shutdown));
            return true;
        }
        let at = self.list.iter().position(|x| *x == c).expect("listed");
        let n = self.list.len();
        let group = match self.case.strategy {
            Sup::OneForOne => at..at + 1,
            Sup::OneForAll => 0..n,
            Sup::RestForOne => at..n,
        };
        for j in group.clone().rev() {
            self.stop(self.list[j]);
        }
        // Temporary members other than `c` leave instead of restarting (as in OTP).
        let mut group = group;
        let mut j = group.start;
        while j < group.end {
            let x = self.list[j];
            if x != c && self.case.restarts[x] == Restart::Temporary {
                self.list.remove(j);
                group.end -= 1;
            } else {
                j += 1;
            }
        }
        for j in group {
            let m = self.list[j];
            if !self.start(m) {
                self.restarting[m] = true;
                self.queue.push_back(Queued::Retry(m));
                break;
            }
        }
        false
    }

    /// Handles everything queued; true if the supervisor gave up.
    fn process(&mut self) -> bool {
        while let Some(q) = self.queue.pop_front() {
            let gave_up = match q {
                Queued::Exit(c, why) => {
                    self.held[c] = false;
                    let restart = match self.case.restarts[c] {
                        Restart::Permanent => true,
                        Restart::Transient => !why.clean(),
                        Restart::Temporary => false,
                    };
                    if !restart {
                        if self.case.restarts[c] == Restart::Temporary {
                            self.list.retain(|x| *x != c);
                        }
                        false
                    } else {
                        self.restart(c)
                    }
                }
                Queued::Retry(c) => self.list.contains(&c) && self.restarting[c] && self.restart(c),
            };
            if gave_up {
                return true;
            }
        }
        false
    }
}

/// The steps the supervisor must produce, ending with the parent's shutdown of the supervisor
/// if it never gave up.
fn model(case: &Case) -> Vec<Step> {
    let n = case.restarts.len();
    let mut m = Model {
        case,
        steps: Vec::new(),
        list: (0..n).collect(),
        held: vec![false; n],
        alive: vec![false; n],
        restarting: vec![false; n],
        attempts: vec![0; n],
        queue: VecDeque::new(),
        restarts: Vec::new(),
        now: 0,
    };
    for c in 0..n {
        assert!(m.start(c), "first starts never fail");
    }
    for d in &case.deaths {
        m.now += d.gap_ms;
        let (victims, latch) = plan(d, &m.alive);
        for &(c, why) in &victims {
            m.steps.push(Step::Crash(c, why));
            m.alive[c] = false;
            m.queue.push_back(Queued::Exit(c, why));
        }
        if let Some(l) = latch {
            // terminate_child: stopped, not restarted; a temporary one leaves the list.
            m.steps.push(Step::Stop(l));
            m.alive[l] = false;
            m.held[l] = false;
            if case.restarts[l] == Restart::Temporary {
                m.list.retain(|x| *x != l);
            }
        }
        if m.process() {
            return m.steps;
        }
    }
    m.stop_all();
    m.steps
}

#[derive(Default)]
struct World {
    steps: Vec<Step>,
    /// Each child's latest pid.
    pids: Vec<Option<Pid>>,
    attempts: Vec<u32>,
    /// The child that must hold the supervisor in its stop, and whom to tell.
    latch: Option<(usize, Pid)>,
}

struct Supervision(Case);

impl Scenario for Supervision {
    fn name(&self) -> &'static str {
        "rt-supervision"
    }

    fn about(&self) -> &'static str {
        "a supervisor under a schedule of child deaths and failing starts, against a model"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["model"]
    }

    fn setup(&self) -> Setup {
        Setup::new(1, cluster::no_faults(10))
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx, self.0.clone()))
    }
}

fn child(world: Arc<Mutex<World>>, case: &Case, i: usize) -> ChildSpec {
    let dep = case.deps[i];
    let fails = case.fails.clone();
    ChildSpec::new(&format!("c{i}"), move |node, sup| {
        let (world, fails) = (world.clone(), fails.clone());
        async move {
            let mut w = lock(&world);
            let attempt = w.attempts[i];
            w.attempts[i] += 1;
            let dep_dead = dep.is_some_and(|d| !w.pids[d].is_some_and(|p| node.is_alive(p)));
            if fails.contains(&(i, attempt)) || dep_dead {
                w.steps.push(Step::StartFailed(i));
                return Err(StartError::Init(ExitReason::error("refused")));
            }
            drop(w);
            let wc = world.clone();
            let opts = SpawnOpts::named(&format!("c{i}")).link(sup).trap_exit();
            let pid = node.spawn_opts(opts, move |mut ctx: Ctx<()>| async move {
                loop {
                    let Event::Exit { from, reason } = ctx.recv().await else {
                        continue;
                    };
                    if from == sup && reason == ExitReason::Shutdown {
                        // Taken, so a later incarnation of the child does not latch again.
                        let latch = {
                            let mut w = lock(&wc);
                            w.latch.take_if(|l| l.0 == i)
                        };
                        if let Some((_, driver)) = latch {
                            let _ = ctx.send(driver, ());
                            while !matches!(ctx.recv().await, Event::Msg { .. }) {}
                        }
                        lock(&wc).steps.push(Step::Stop(i));
                        return ExitReason::Shutdown;
                    }
                    if from != sup {
                        return reason;
                    }
                }
            });
            let mut w = lock(&world);
            w.steps.push(Step::Start(i));
            w.pids[i] = Some(pid);
            Ok(pid)
        }
    })
}

/// Waits `gap`; true if the supervisor exited meanwhile.
async fn wait_gap(ctx: &mut Ctx<()>, gap: Duration, sup: Pid) -> bool {
    let until = Instant::now() + gap;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match ctx.recv_timeout(left).await {
            None => return false,
            Some(Event::Exit { from, .. }) if from == sup => return true,
            Some(_) => {}
        }
    }
}

async fn down(ctx: &mut Ctx<()>, pid: Pid) {
    let m = ctx.monitor(pid);
    loop {
        if let Some(Event::Down { reference, .. }) = ctx.recv_timeout(Duration::from_secs(10)).await
        {
            if reference == m {
                return;
            }
        } else {
            return;
        }
    }
}

async fn drive(ctx: Driver, case: Case) -> Result<(), Violation> {
    let n = case.restarts.len();
    let world = Arc::new(Mutex::new(World {
        pids: vec![None; n],
        attempts: vec![0; n],
        ..World::default()
    }));
    let done = Arc::new(Mutex::new(false));
    let (w, d, c) = (world.clone(), done.clone(), case.clone());
    ctx.start_node(0, move |node| {
        let (world, done, case) = (w.clone(), d.clone(), c.clone());
        async move {
            let rt_node = cluster::start(&node, 1).await;
            let opts = SpawnOpts::named("parent").trap_exit();
            rt_node.spawn_opts(opts, move |mut ctx: Ctx<()>| async move {
                let mut spec = Spec::new(case.strategy)
                    .intensity(case.intensity, Duration::from_millis(case.period_ms));
                for i in 0..n {
                    spec = spec.child(child(world.clone(), &case, i).restart(case.restarts[i]));
                }
                let node = ctx.node().clone();
                let sup = supervisor::start(&node, "sup", Some(ctx.pid()), spec)
                    .await
                    .expect("children start");
                let mut exit = None;
                for deaths in &case.deaths {
                    if wait_gap(&mut ctx, Duration::from_millis(deaths.gap_ms), sup).await {
                        exit = Some(ExitReason::Shutdown);
                        break;
                    }
                    let pids = lock(&world).pids.clone();
                    let running: Vec<bool> = pids
                        .iter()
                        .map(|p| p.is_some_and(|p| node.is_alive(p)))
                        .collect();
                    let (victims, latch) = plan(deaths, &running);
                    let pid = |c: usize| pids[c].expect("running");
                    if let Some(l) = latch {
                        lock(&world).latch = Some((l, ctx.pid()));
                        let latch_pid = pid(l);
                        ctx.spawn("terminator", move |ctx: Ctx<()>| async move {
                            let _ = supervisor::terminate_child(
                                &ctx,
                                sup,
                                latch_pid,
                                Duration::from_secs(60),
                            )
                            .await;
                            ExitReason::Normal
                        });
                        while !matches!(ctx.recv().await, Event::Msg { .. }) {}
                        for &(c, why) in &victims {
                            lock(&world).steps.push(Step::Crash(c, why));
                            ctx.exit(pid(c), why.reason());
                            down(&mut ctx, pid(c)).await;
                        }
                        let _ = ctx.send(latch_pid, ());
                        down(&mut ctx, latch_pid).await;
                    } else {
                        for &(c, why) in &victims {
                            lock(&world).steps.push(Step::Crash(c, why));
                            ctx.exit(pid(c), why.reason());
                        }
                    }
                }
                if exit.is_none() {
                    // Either the last deaths made it give up, or we shut it down.
                    match ctx.recv_timeout(Duration::from_millis(100)).await {
                        Some(Event::Exit { from, reason }) if from == sup => exit = Some(reason),
                        _ => ctx.exit(sup, ExitReason::Shutdown),
                    }
                }
                match exit {
                    Some(reason) => lock(&world).steps.push(Step::SupExit(reason)),
                    None => {
                        let _ = ctx.recv_exit_from(sup, Duration::from_secs(60)).await;
                    }
                }
                *lock(&done) = true;
                ExitReason::Normal
            });
        }
    });
    ctx.quiesce().await;
    groundhog_runtime::rt::sleep(Duration::from_secs(30)).await;
    ctx.check("finished", *lock(&done), || {
        "the driver did not finish".into()
    })?;
    let expected = model(&case);
    let seen = lock(&world).steps.clone();
    ctx.check("matches-model", seen == expected, || {
        let at = seen
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(seen.len().min(expected.len()));
        format!(
            "{case:?}: first difference at step {at}: saw {:?}, model {:?}",
            &seen[at..seen.len().min(at + 6)],
            &expected[at..expected.len().min(at + 6)]
        )
    })
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn supervisors_follow_the_model_under_any_crash_schedule() {
    let mut runner = TestRunner::new(config(crate::cases(96), file!()));
    let result = runner.run(&(case(), 0u64..1_000), |(case, seed)| {
        let report = Sim::new(seed)
            .variant("model")
            .keep_trace(false)
            .run(&Supervision(case.clone()))
            .expect("valid input");
        prop_assert!(report.outcome.passed(), "{}", report.summary());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The model itself, on cases worked by hand.
#[test]
fn the_model_counts_restarts_in_a_sliding_window_and_retries_behind_queued_exits() {
    use Step::*;
    let base = Case {
        strategy: Sup::RestForOne,
        restarts: vec![Restart::Permanent; 3],
        deps: vec![None; 3],
        fails: BTreeSet::new(),
        intensity: 1,
        period_ms: 105,
        deaths: Vec::new(),
    };
    let one = |gap_ms, c| Deaths {
        gap_ms,
        victims: vec![(c, Why::Kill)],
        latch: 0,
    };
    // 1 restart allowed in 105 ms: deaths at 100 and 300 are 200 apart (fine); 300 and 350
    // are not.
    let case = Case {
        deaths: vec![one(100, 1), one(200, 0), one(50, 2)],
        ..base.clone()
    };
    let k = Why::Kill;
    assert_eq!(
        model(&case),
        vec![
            Start(0),
            Start(1),
            Start(2),
            Crash(1, k),
            Stop(2),
            Start(1),
            Start(2),
            Crash(0, k),
            Stop(2),
            Stop(1),
            Start(0),
            Start(1),
            Start(2),
            Crash(2, k),
            Stop(1),
            Stop(0),
            SupExit(ExitReason::Shutdown)
        ]
    );
    // Issue 12's trace: c2 needs c1; both die in one instant, c2 first (c0 is the latch). c2's
    // restart fails, the retry waits behind c1's exit, whose restart starts both; the retry
    // then finds c2 running. Two restarts: intensity 2 holds, 1 gives up.
    let case = Case {
        intensity: 2,
        deps: vec![None, None, Some(1)],
        deaths: vec![Deaths {
            gap_ms: 100,
            victims: vec![(2, k), (1, k)],
            latch: 0,
        }],
        ..base.clone()
    };
    let head = vec![
        Start(0),
        Start(1),
        Start(2),
        Crash(2, k),
        Crash(1, k),
        Stop(0),
        StartFailed(2),
    ];
    let mut ok = head.clone();
    ok.extend([Start(1), Start(2), Stop(2), Stop(1)]);
    assert_eq!(model(&case), ok);
    let mut gave_up = head;
    gave_up.push(SupExit(ExitReason::Shutdown));
    assert_eq!(
        model(&Case {
            intensity: 1,
            ..case
        }),
        gave_up
    );
}
