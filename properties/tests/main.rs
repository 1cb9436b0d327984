//! Property tests over whole simulations, whole-simulation tests of the runtime over many seeds
//! (`runtime/`, each a small test-only scenario), and trace snapshots, as one test binary.
//!
//! Simulation-only: in the real build (no `--cfg madsim`) worlds cannot be created, and each test
//! returns early; the scenarios crate's `real_build` test covers that build's behaviour.

mod agents;
mod checkers;
mod clocks;
mod coord;
mod disks;
mod invariants;
mod plan_files;
mod plans;
mod registry_model;
mod runtime;
mod shrinking;
mod snapshots;
mod strategies;

use std::path::PathBuf;

use groundhog_sim::{FaultPlan, Report, Scenario, Sim};
use proptest::test_runner::{Config, RngSeed};

/// Proptest settings: a fixed generator seed so CI explores the same cases every time;
/// failures found are kept in `<test file>.proptest-regressions` beside `source_file`, committed
/// and replayed first on every later run.
pub fn config(cases: u32, source_file: &'static str) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x6772_6f75_6e64),
        source_file: Some(source_file),
        ..Config::default()
    }
}

/// Cases for a model-based test: `default` in CI, or `PROPTEST_CASES` (proptest's own variable)
/// for a longer run.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `scenario` with `plan`; on failure writes the plan next to the test's temporary files and
/// returns the repro line that replays exactly this run.
pub fn run_with_plan(
    scenario: &dyn Scenario,
    variant: &str,
    seed: u64,
    plan: &FaultPlan,
) -> (Report, Option<String>) {
    let report = Sim::new(seed)
        .variant(variant)
        .plan(plan.clone())
        .keep_trace(false)
        .run(scenario)
        .expect("a generated plan is valid input");
    if report.outcome.passed() {
        return (report, None);
    }
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{}-{variant}-{seed}-{}.toml",
        scenario.name(),
        report.hash()
    ));
    std::fs::write(&path, plan.to_toml().expect("a valid plan is TOML"))
        .expect("the plan file is writable");
    let repro = format!(
        "groundhog replay {} --variant {variant} --seed {seed} --plan {}",
        scenario.name(),
        path.display()
    );
    (report, Some(repro))
}
