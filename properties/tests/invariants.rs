//! The always-on invariants in real runs: a run that breaks one is failed by the harness with
//! the invariant's name, stopped there, and traced; a scenario that skips it by name passes.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration};
use groundhog_runtime::{Ctx, Event, ExitReason, Node, Pid};
use groundhog_sim::{
    BoxFuture, Driver, FaultMix, FaultPlan, Outcome, Scenario, Setup, Sim, Violation,
};

/// A driver that sends "from" a process after that process exited: the runtime's public
/// `Node::send` takes any pid as the sender, so a scenario can forge one.
struct ForgedSender {
    skip: bool,
}

type Shared = Arc<Mutex<Option<(Node, Pid, Pid)>>>;

impl Scenario for ForgedSender {
    fn name(&self) -> &'static str {
        "inv-forged-sender"
    }

    fn about(&self) -> &'static str {
        "a driver sends as a process that already exited"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["default"]
    }

    fn setup(&self) -> Setup {
        let setup = Setup::new(1, FaultMix::new(Vec::new(), 0.0, 100));
        if self.skip {
            // The forgery is this scenario's point, not a runtime bug.
            setup.skip_invariant("no-message-after-exit")
        } else {
            setup
        }
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let shared: Shared = Arc::default();
    let s = shared.clone();
    ctx.start_node(0, move |node| {
        let s = s.clone();
        async move {
            let rt_node = Node::local(node.index(), node.incarnation());
            let receiver = rt_node.spawn("receiver", |mut ctx: Ctx<u32>| async move {
                loop {
                    if let Event::Msg { .. } = ctx.recv().await {}
                }
            });
            let gone = rt_node.spawn("gone", |_ctx: Ctx<u32>| async { ExitReason::Normal });
            *s.lock().unwrap() = Some((rt_node, gone, receiver));
        }
    });
    rt::sleep(Duration::from_millis(100)).await;
    let (node, gone, receiver) = shared.lock().unwrap().clone().expect("node 0 started");
    let _ = node.send(gone, receiver, 7u32);
    rt::sleep(Duration::from_secs(10)).await;
    ctx.check("driver-finished", true, String::new)
}

fn run(skip: bool) -> groundhog_sim::Report {
    Sim::new(3)
        .plan(FaultPlan::quiet(100))
        .run(&ForgedSender { skip })
        .expect("a valid run")
}

#[test]
fn a_run_that_breaks_an_invariant_fails_with_its_name_and_stops_there() {
    if !rt::SIMULATED {
        return;
    }
    let report = run(false);
    let Outcome::Violated(v) = &report.outcome else {
        panic!("expected a violation, got {:?}", report.outcome);
    };
    assert_eq!(v.invariant, "no-message-after-exit");
    assert!(v.message.contains("sent after its exit"), "{}", v.message);
    assert!(v.message.contains("send from=<0.1.2>"), "{}", v.message);
    // Stopped at the violation, not after the driver's 10 s sleep; the driver's check never ran.
    assert!(
        report.sim_time < Duration::from_secs(1),
        "{:?}",
        report.sim_time
    );
    let lines = &report.trace.lines;
    let at = lines
        .iter()
        .position(|l| l.contains("check invariant=no-message-after-exit result=violated"))
        .expect("the violation is traced");
    assert!(
        lines[at - 1].contains(" send from=<0.1.2>"),
        "{}",
        lines[at - 1]
    );
    assert!(!lines.iter().any(|l| l.contains("driver-finished")));
    assert!(report
        .summary()
        .contains("FAIL invariant=no-message-after-exit"));
}

#[test]
fn a_scenario_that_skips_the_invariant_by_name_passes() {
    if !rt::SIMULATED {
        return;
    }
    let report = run(true);
    assert_eq!(report.outcome, Outcome::Pass, "{}", report.summary());
    assert!(report
        .trace
        .lines
        .iter()
        .any(|l| l.contains("driver-finished")));
    assert!(!report
        .trace
        .lines
        .iter()
        .any(|l| l.contains("result=violated")));
}

#[test]
fn the_violation_is_found_without_kept_lines_and_the_hashes_agree() {
    if !rt::SIMULATED {
        return;
    }
    let kept = run(false);
    let sweep = Sim::new(3)
        .plan(FaultPlan::quiet(100))
        .keep_trace(false)
        .run(&ForgedSender { skip: false })
        .unwrap();
    assert_eq!(sweep.outcome, kept.outcome);
    assert_eq!(sweep.hash(), kept.hash());
}

/// A typo in a skipped name is refused before the run, rather than skipping nothing.
struct BadSkip;

impl Scenario for BadSkip {
    fn name(&self) -> &'static str {
        "inv-bad-skip"
    }
    fn about(&self) -> &'static str {
        "skips an invariant that does not exist"
    }
    fn variants(&self) -> &'static [&'static str] {
        &["default"]
    }
    fn setup(&self) -> Setup {
        Setup::new(1, FaultMix::new(Vec::new(), 0.0, 100)).skip_invariant("fifo-order")
    }
    fn run(&self, _ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(async { Ok(()) })
    }
}

#[test]
fn an_unknown_invariant_name_is_bad_input() {
    let err = Sim::new(0).run(&BadSkip).unwrap_err();
    assert!(
        err.to_string().contains("unknown invariant `fifo-order`"),
        "{err}"
    );
}
