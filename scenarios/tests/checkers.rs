//! History checkers catch flaws alone: with every hand-written invariant switched off
//! (`Sim::checkers_only`), each flawed variant below still fails, on the history checker's
//! invariant, within its seed budget; the fixed variants pass the same checkers.

use groundhog_scenarios::{
    AmnesiacRestart, Failover, LostUpdate, SplitRegistry, StaleRegistry, TransactionRollback,
    UnfencedLock, UnsyncedAck,
};
use groundhog_sim::{Outcome, Scenario, Sim};

/// The first seed from 0 at which `variant` fails with hand-written checks off, and the
/// invariant it failed.
fn first_failure(scenario: &dyn Scenario, within: u64) -> Option<(u64, String)> {
    (0..within).find_map(|seed| {
        let report = Sim::new(seed)
            .variant("flawed")
            .checkers_only(true)
            .keep_trace(false)
            .run(scenario)
            .expect("the scenario runs");
        match report.outcome {
            Outcome::Pass => None,
            Outcome::Violated(v) => Some((seed, v.invariant)),
            Outcome::Panicked { message } => panic!("seed {seed} panicked: {message}"),
        }
    })
}

/// `scenario`'s flawed variant is caught by `checker` alone at `seed` (the first failing
/// seed, pinned), and its fixed variant passes `checker` on `fixed_seeds`.
fn caught_by_checker_alone(scenario: &dyn Scenario, checker: &str, seed: u64, fixed_seeds: u64) {
    let budget = scenario.setup().seed_budget;
    let found = first_failure(scenario, budget);
    assert_eq!(
        found,
        Some((seed, checker.to_string())),
        "{}: flawed, checkers only, first failure within {budget} seeds",
        scenario.name()
    );
    for seed in 0..fixed_seeds {
        let report = Sim::new(seed).variant("fixed").run(scenario).unwrap();
        assert!(
            report.outcome.passed(),
            "{} fixed seed {seed}: {}",
            scenario.name(),
            report.summary()
        );
        let ok = format!("check invariant={checker} result=ok");
        assert!(
            report.trace.lines.iter().any(|l| l.ends_with(&ok)),
            "{} fixed seed {seed}: the checker did not run",
            scenario.name()
        );
    }
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn lost_update_is_caught_by_the_counter_history() {
    caught_by_checker_alone(&LostUpdate, "counter-history-linearizable", 0, 20);
    // The hand-written checks were really off: they traced `skipped` (and the repro says so).
    let report = Sim::new(0)
        .variant("flawed")
        .checkers_only(true)
        .run(&LostUpdate)
        .unwrap();
    let skipped = "check invariant=clients-finish-after-heal result=skipped";
    assert!(
        report.trace.lines.iter().any(|l| l.ends_with(skipped)),
        "no hand-written check was skipped"
    );
    assert!(
        report.repro().ends_with("--checkers-only"),
        "{}",
        report.repro()
    );
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn stale_registry_is_caught_by_the_owner_map_history() {
    caught_by_checker_alone(&StaleRegistry, "owner-lookups-linearizable", 0, 20);
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn split_registry_is_caught_by_the_converged_register_history() {
    caught_by_checker_alone(&SplitRegistry, "reads-after-heal-agree", 0, 20);
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn unsynced_ack_is_caught_by_the_disk_map_history() {
    caught_by_checker_alone(&UnsyncedAck, "disk-history-linearizable", 0, 20);
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn amnesiac_restart_is_caught_by_the_items_set_history() {
    caught_by_checker_alone(&AmnesiacRestart, "items-history-linearizable", 0, 20);
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn failover_is_caught_by_the_term_register_history() {
    caught_by_checker_alone(&Failover, "acknowledged-terms-linearizable", 1, 20);
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn unfenced_lock_is_caught_by_the_fence_history() {
    caught_by_checker_alone(&UnfencedLock, "writes-fenced", 0, 20);
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn transaction_rollback_is_caught_by_the_anomaly_checker() {
    caught_by_checker_alone(&TransactionRollback, "batches-serializable", 1, 20);
    // The verdict names the anomaly and the transactions on it: seed 1's batch #16 failed,
    // yet the writer's next read (#17) saw a record that batch wrote.
    let report = Sim::new(1)
        .variant("flawed")
        .checkers_only(true)
        .run(&TransactionRollback)
        .unwrap();
    let Outcome::Violated(v) = &report.outcome else {
        panic!("{}", report.summary());
    };
    assert!(
        v.message.starts_with("G1a on txns #17 #16: txn #17 read "),
        "{}",
        v.message
    );
    let skipped = "check invariant=never-between-batches result=skipped";
    assert!(
        report.trace.lines.iter().any(|l| l.ends_with(skipped)),
        "no hand-written check was skipped"
    );
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn diff_prints_both_verdicts_and_the_first_difference() {
    let out = crate::groundhog(&["diff", "lost-update", "--seed", "1"]);
    let text = crate::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("flawed  FAILED: lost-update variant=flawed seed=1"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("fixed   passed: lost-update variant=fixed seed=1"),
        "{text}"
    );
    // The variants first differ where the flawed client sends a blind write instead of a
    // compare-and-set, never at the start line that names the variant.
    assert!(
        lines[2].starts_with("first difference at event #"),
        "{text}"
    );
    assert!(!lines[2].ends_with("#0:"), "{text}");
    assert!(
        lines[3].starts_with("  flawed: ") && lines[4].starts_with("  fixed:  "),
        "{text}"
    );
    assert_ne!(
        lines[3]["  flawed: ".len()..],
        lines[4]["  fixed:  ".len()..]
    );
    assert!(
        text.contains("repro: groundhog replay lost-update --variant flawed --seed 1"),
        "{text}"
    );
    // A scenario without both variants is bad input.
    let out = crate::groundhog(&["diff", "nope", "--seed", "1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn replay_writes_the_history_as_json() {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lost-update-1.json");
    let file = path.to_str().unwrap();
    let out = crate::groundhog(&["replay", "lost-update", "--seed", "1", "--history", file]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::stdout(&out));
    let ops: Vec<groundhog_sim::Operation> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Fifteen increments and the final read, as the trace's history lines say.
    assert_eq!(ops.len(), 16);
    let traced = crate::stdout(&out)
        .lines()
        .filter(|l| l.contains(" history ") && l.contains("status=invoke"))
        .count();
    assert_eq!(traced, 16);
}

/// README's "Histories and checkers" example, compiled and run from the very lines the README
/// shows (`readme/history.rs` must equal that code block).
mod readme {
    use groundhog_sim::{BoxFuture, Driver, FaultMix, Outcome, Scenario, Setup, Sim, Violation};

    include!("readme/history.rs");

    struct Example;

    impl Scenario for Example {
        fn name(&self) -> &'static str {
            "readme-history"
        }
        fn about(&self) -> &'static str {
            "test only: README's history example"
        }
        fn variants(&self) -> &'static [&'static str] {
            &["only"]
        }
        fn setup(&self) -> Setup {
            Setup::new(1, FaultMix::new(vec![], 0.0, 10))
        }
        fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
            Box::pin(drive(ctx))
        }
    }

    #[test]
    fn the_readme_history_example_is_this_file_and_passes() {
        let readme = include_str!("../../README.md");
        let example = include_str!("readme/history.rs");
        let block = readme
            .split("## Histories and checkers")
            .nth(1)
            .and_then(|s| s.split("```rust\n").nth(1))
            .and_then(|s| s.split("```").next())
            .expect("README has a rust block under \"Histories and checkers\"");
        assert_eq!(
            block, example,
            "README's example and readme/history.rs differ"
        );
        assert!(example.lines().count() <= 10);
        if !crate::simulated() {
            return;
        }
        let report = Sim::new(1).variant("only").run(&Example).unwrap();
        assert!(
            matches!(report.outcome, Outcome::Pass),
            "{}",
            report.summary()
        );
        let ok = "check invariant=counter-linearizable result=ok";
        assert!(report.trace.lines.iter().any(|l| l.ends_with(ok)));
        assert_eq!(report.history.len(), 2);
    }
}
