//! Fixed variants hold their invariants under arbitrary fault plans, not only generated ones, and
//! every such run is deterministic.

use groundhog_scenarios::{
    BlockingCall, FullScan, LeakedTimer, LostUpdate, MonitorRace, OrphanTask, PingPong,
    ReadBottleneck, SplitRegistry, StaleRegistry, SupervisorLimits, TransactionRollback,
    UnboundedTable,
};
use groundhog_sim::{Scenario, Sim};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use crate::{config, run_with_plan, strategies};

fn fixed_passes_any_plan(scenario: &dyn Scenario, nodes: u32) {
    fixed_passes_plans(scenario, nodes, 128);
}

fn fixed_passes_plans(scenario: &dyn Scenario, nodes: u32, cases: u32) {
    let mut runner = TestRunner::new(config(cases, file!()));
    let result = runner.run(
        &(strategies::plan(nodes, 3_000, 10), 0u64..1_000),
        |(plan, seed)| {
            let (report, repro) = run_with_plan(scenario, "fixed", seed, &plan);
            prop_assert!(
                repro.is_none(),
                "{}\nrepro: {}\n",
                report.summary(),
                repro.unwrap_or_default()
            );
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn fixed_ping_pong_holds_under_any_plan() {
    fixed_passes_any_plan(&PingPong, 3);
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn fixed_lost_update_holds_under_any_plan() {
    fixed_passes_any_plan(&LostUpdate, 4);
}

/// The single-node catalogue scenarios: crashes, pauses and restarts at arbitrary times.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn fixed_single_node_scenarios_hold_under_any_plan() {
    fixed_passes_plans(&SupervisorLimits, 1, 32);
    fixed_passes_plans(&BlockingCall, 1, 32);
    fixed_passes_plans(&LeakedTimer, 1, 32);
    fixed_passes_plans(&UnboundedTable, 1, 32);
    fixed_passes_plans(&ReadBottleneck, 1, 32);
    fixed_passes_plans(&FullScan, 1, 32);
}

/// The multi-node catalogue scenarios on the runtime: fewer cases, each run is longer.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn fixed_runtime_scenarios_hold_under_any_plan() {
    fixed_passes_plans(&MonitorRace, 3, 16);
    fixed_passes_plans(&OrphanTask, 3, 16);
    fixed_passes_plans(&StaleRegistry, 3, 16);
    fixed_passes_plans(&SplitRegistry, 3, 16);
    fixed_passes_plans(&TransactionRollback, 1, 16);
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn any_plan_replays_to_the_same_hash() {
    let mut runner = TestRunner::new(config(24, file!()));
    runner
        .run(
            &(strategies::plan(3, 3_000, 10), 0u64..1_000),
            |(plan, seed)| {
                let sim = Sim::new(seed).variant("flawed").plan(plan);
                let (_, divergence) = groundhog_sim::check_determinism(&sim, &PingPong).unwrap();
                prop_assert!(
                    divergence.is_none(),
                    "{}",
                    divergence.map(|d| d.explain()).unwrap_or_default()
                );
                Ok(())
            },
        )
        .unwrap();
}
