//! Supervisors over whole simulations, against a reference model: for any strategy, intensity,
//! period and schedule of child crashes, the supervisor restarts exactly what the model says, in
//! start order, stops siblings in reverse start order, gives up exactly when more than `intensity`
//! restarts fall within `period` of the runtime clock, and its parent learns it (escalation).

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::Duration;
use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy as Sup};
use groundhog_runtime::{Ctx, Event, ExitReason, Pid, SpawnOpts};
use groundhog_sim::{BoxFuture, Ctx as SimCtx, Scenario, Setup, Sim, Violation};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::cluster::{self, lock, simulated};
use crate::config;

/// What the children, the supervisor and the driver did, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The supervisor called child i's start function.
    Start(usize),
    /// Child i received `Shutdown` from the supervisor and exited.
    Stop(usize),
    /// The driver killed child i.
    Crash(usize),
    /// The parent received the supervisor's exit: it gave up.
    GaveUp,
}

/// One generated case.
#[derive(Debug, Clone)]
struct Case {
    strategy: Sup,
    children: usize,
    intensity: u32,
    /// Always 5 ms off a multiple of 10 ms, so no crash (at multiples of 10 ms) falls on the
    /// window's edge, where a few nanoseconds of processing would decide.
    period_ms: u64,
    /// (gap before the crash in ms, child index modulo `children`).
    crashes: Vec<(u64, usize)>,
}

fn case() -> impl Strategy<Value = Case> {
    let strategy = prop_oneof![
        Just(Sup::OneForOne),
        Just(Sup::OneForAll),
        Just(Sup::RestForOne),
    ];
    (
        strategy,
        2usize..=5,
        0u32..=4,
        5u64..=200,
        proptest::collection::vec((1u64..=60, 0usize..5), 0..=12),
    )
        .prop_map(|(strategy, children, intensity, period, crashes)| Case {
            strategy,
            children,
            intensity,
            period_ms: period * 10 + 5,
            crashes: crashes
                .into_iter()
                .map(|(gap, c)| (gap * 10, c % children))
                .collect(),
        })
}

/// The reference model: the steps the supervisor must produce, ending with the parent's
/// shutdown of the supervisor if it never gave up.
fn model(case: &Case) -> Vec<Step> {
    let n = case.children;
    let mut steps: Vec<Step> = (0..n).map(Step::Start).collect();
    let mut restarts: Vec<u64> = Vec::new();
    let mut now = 0;
    for &(gap, c) in &case.crashes {
        now += gap;
        steps.push(Step::Crash(c));
        restarts.push(now);
        restarts.retain(|t| now - t <= case.period_ms);
        if restarts.len() > case.intensity as usize {
            steps.extend((0..n).rev().filter(|j| *j != c).map(Step::Stop));
            steps.push(Step::GaveUp);
            return steps;
        }
        let group = match case.strategy {
            Sup::OneForOne => c..c + 1,
            Sup::OneForAll => 0..n,
            Sup::RestForOne => c..n,
        };
        steps.extend(group.clone().rev().filter(|j| *j != c).map(Step::Stop));
        steps.extend(group.map(Step::Start));
    }
    steps.extend((0..n).rev().map(Step::Stop));
    steps
}

#[derive(Default)]
struct World {
    steps: Vec<Step>,
    /// Each child's current pid.
    pids: Vec<Option<Pid>>,
}

struct Supervision(Case);

impl Scenario for Supervision {
    fn name(&self) -> &'static str {
        "rt-supervision"
    }

    fn about(&self) -> &'static str {
        "a supervisor under a schedule of child crashes, against a reference model"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["model"]
    }

    fn setup(&self) -> Setup {
        Setup::new(1, cluster::no_faults(10))
    }

    fn run(&self, ctx: SimCtx) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx, self.0.clone()))
    }
}

fn child(world: Arc<Mutex<World>>, i: usize) -> ChildSpec {
    ChildSpec::new(&format!("c{i}"), move |node, sup| {
        let world = world.clone();
        async move {
            let w = world.clone();
            let opts = SpawnOpts::named(&format!("c{i}")).link(sup).trap_exit();
            let pid = node.spawn_opts(opts, move |mut ctx: Ctx<()>| async move {
                loop {
                    if let Event::Exit { from, reason } = ctx.recv().await {
                        if from == sup && reason == ExitReason::Shutdown {
                            lock(&w).steps.push(Step::Stop(i));
                            return ExitReason::Shutdown;
                        }
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

async fn drive(ctx: SimCtx, case: Case) -> Result<(), Violation> {
    let world = Arc::new(Mutex::new(World {
        pids: vec![None; case.children],
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
                for i in 0..case.children {
                    spec = spec.child(child(world.clone(), i));
                }
                let node = ctx.node().clone();
                let sup = supervisor::start(&node, "sup", Some(ctx.pid()), spec)
                    .await
                    .expect("children start");
                let mut gave_up = false;
                for &(gap, c) in &case.crashes {
                    // Waiting for the gap also notices an exit of the supervisor early.
                    if let Some(Event::Exit { from, .. }) =
                        ctx.recv_timeout(Duration::from_millis(gap)).await
                    {
                        if from == sup {
                            gave_up = true;
                            break;
                        }
                    }
                    let pid = lock(&world).pids[c].expect("started");
                    lock(&world).steps.push(Step::Crash(c));
                    ctx.exit(pid, ExitReason::Kill);
                }
                if !gave_up {
                    // Either the last crash made it give up, or we shut it down.
                    match ctx.recv_timeout(Duration::from_millis(100)).await {
                        Some(Event::Exit { from, .. }) if from == sup => gave_up = true,
                        _ => ctx.exit(sup, ExitReason::Shutdown),
                    }
                }
                if gave_up {
                    lock(&world).steps.push(Step::GaveUp);
                } else {
                    let _ = ctx.recv_exit_from(sup, Duration::from_secs(60)).await;
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
fn supervisors_follow_the_model_under_any_crash_schedule() {
    if !simulated() {
        return;
    }
    let mut runner = TestRunner::new(config(96, file!()));
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
fn the_model_counts_restarts_in_a_sliding_window() {
    use Step::*;
    // 1 restart allowed in 105 ms: crashes at 100 and 300 are 200 apart (fine); 300 and 350 are not.
    let case = Case {
        strategy: Sup::RestForOne,
        children: 3,
        intensity: 1,
        period_ms: 105,
        crashes: vec![(100, 1), (200, 0), (50, 2)],
    };
    assert_eq!(
        model(&case),
        vec![
            Start(0),
            Start(1),
            Start(2),
            Crash(1),
            Stop(2),
            Start(1),
            Start(2),
            Crash(0),
            Stop(2),
            Stop(1),
            Start(0),
            Start(1),
            Start(2),
            Crash(2),
            Stop(1),
            Stop(0),
            GaveUp
        ]
    );
}
