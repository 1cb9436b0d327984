//! The library entry point for users' own tests.

use groundhog_scenarios::{LostUpdate, PingPong};
use groundhog_sim::{Check, Outcome, Sim};

use crate::simulated;

#[test]
fn check_passes_fixed_variants_and_catches_flawed_ones() {
    if !simulated() {
        return;
    }
    let summary = Check::new(&PingPong)
        .variant("fixed")
        .seeds(0..100)
        .determinism(true)
        .run();
    assert_eq!(summary.seeds_run, 100);
    let found = Check::new(&LostUpdate)
        .variant("flawed")
        .seeds(0..20)
        .expect_failure();
    assert!(found
        .repro
        .starts_with("groundhog replay lost-update --variant flawed --seed "));
}

#[test]
fn check_panics_with_the_repro_line() {
    if !simulated() {
        return;
    }
    let panic = std::panic::catch_unwind(|| {
        Check::new(&LostUpdate)
            .variant("flawed")
            .seeds(0..3)
            .jobs(1)
            .run();
    })
    .expect_err("flawed lost-update fails");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("repro: groundhog replay lost-update --variant flawed --seed 0"),
        "{message}"
    );
}

#[test]
fn a_report_carries_outcome_trace_hash_time_and_counts() {
    if !simulated() {
        return;
    }
    let report = Sim::new(8).variant("flawed").run(&LostUpdate).unwrap();
    assert!(
        matches!(&report.outcome, Outcome::Violated(v) if v.invariant == "count-equals-acked-increments")
    );
    assert_eq!(report.trace.lines.len() as u64, report.trace.events());
    assert!(report.trace.counts["send"] > 0 && report.trace.counts["deliver"] > 0);
    assert!(
        report.sim_time.as_secs() >= 5,
        "ran through the quiet phase"
    );
    assert!(report
        .trace
        .lines
        .last()
        .unwrap()
        .ends_with("end result=violated invariant=count-equals-acked-increments"));
    let no_lines = Sim::new(8)
        .variant("flawed")
        .keep_trace(false)
        .run(&LostUpdate)
        .unwrap();
    assert_eq!(no_lines.hash(), report.hash());
    assert!(no_lines.trace.lines.is_empty());
}

/// A test-only scenario whose node 0 runs a named `worker` process that a plan can kill.
struct Worker;

impl groundhog_sim::Scenario for Worker {
    fn name(&self) -> &'static str {
        "worker"
    }
    fn about(&self) -> &'static str {
        "test only: a named process and a hang"
    }
    fn variants(&self) -> &'static [&'static str] {
        &["finishes", "hangs"]
    }
    fn setup(&self) -> groundhog_sim::Setup {
        let mix =
            groundhog_sim::FaultMix::new(vec![groundhog_sim::FaultKind::KillProcess], 0.0, 1_000)
                .processes(vec![(0, "worker".into())]);
        groundhog_sim::Setup::new(1, mix).time_limit(groundhog_runtime::rt::Duration::from_secs(20))
    }
    fn run(
        &self,
        ctx: groundhog_sim::Ctx,
    ) -> groundhog_sim::BoxFuture<Result<(), groundhog_sim::Violation>> {
        use groundhog_runtime::rt::{self, Duration};
        Box::pin(async move {
            ctx.start_node(0, |node| async move {
                node.spawn_process("worker", async {
                    rt::sleep(Duration::from_secs(3)).await;
                });
            });
            if ctx.variant() == "hangs" {
                std::future::pending::<()>().await;
            }
            ctx.quiesce().await;
            rt::sleep(Duration::from_secs(2)).await;
            Ok(())
        })
    }
}

#[test]
fn kill_process_kills_the_named_task_and_traces_it() {
    if !simulated() {
        return;
    }
    let untouched = Sim::new(1).run(&Worker).unwrap();
    assert!(untouched
        .trace
        .lines
        .iter()
        .any(|l| l.ends_with("n0 exit task=worker reason=normal")));
    let plan = groundhog_sim::FaultPlan::timed(
        1_000,
        [(
            500,
            groundhog_sim::Fault::KillProcess {
                node: 0,
                process: "worker".into(),
            },
        )],
    );
    let killed = Sim::new(1).plan(plan).run(&Worker).unwrap();
    let lines = &killed.trace.lines;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("0.5") && l.ends_with("n0 exit task=worker reason=killed")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.ends_with("reason=normal")),
        "a killed task never finishes"
    );
    assert!(killed.outcome.passed());
}

#[test]
fn a_run_past_its_time_limit_fails_instead_of_hanging() {
    if !simulated() {
        return;
    }
    let report = Sim::new(1).variant("hangs").run(&Worker).unwrap();
    assert!(
        matches!(&report.outcome, Outcome::Panicked { .. }),
        "{:?}",
        report.outcome
    );
    assert!(report.repro().ends_with("--variant hangs --seed 1"));
}
