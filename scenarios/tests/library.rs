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
