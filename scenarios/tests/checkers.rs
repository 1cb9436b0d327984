//! History checkers catch flaws alone: with every hand-written invariant switched off
//! (`Sim::checkers_only`), each flawed variant below still fails, on the history checker's
//! invariant, within its seed budget; the fixed variants pass the same checkers.

use groundhog_scenarios::{LostUpdate, SplitRegistry, StaleRegistry};
use groundhog_sim::{Outcome, Scenario, Sim};

use crate::simulated;

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
fn lost_update_is_caught_by_the_counter_history() {
    if !simulated() {
        return;
    }
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
fn stale_registry_is_caught_by_the_owner_map_history() {
    if !simulated() {
        return;
    }
    caught_by_checker_alone(&StaleRegistry, "owner-lookups-linearizable", 0, 20);
}

#[test]
fn split_registry_is_caught_by_the_converged_register_history() {
    if !simulated() {
        return;
    }
    caught_by_checker_alone(&SplitRegistry, "reads-after-heal-agree", 0, 20);
}
