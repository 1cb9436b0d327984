//! Fault classes beyond the first generator: a flaw that only long outages reach, and coverage
//! points that show a sweep reached the states that matter.

use groundhog_runtime::rt;
use groundhog_scenarios::Failover;
use groundhog_sim::{BoxFuture, Check, Driver, Durations, Scenario, Setup, Violation};

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn failover_is_caught_only_by_outages_longer_than_failure_detection() {
    let first = Check::new(&Failover)
        .variant("flawed")
        .seeds(0..20)
        .expect_failure();
    assert!(
        first.summary.contains("invariant=one-primary-at-a-time"),
        "{}",
        first.summary
    );
    // The same seeds with every episode short: every seed passes, and the coverage point says
    // why: the takeover, the state the flaw needs, is never reached.
    let short = std::panic::catch_unwind(|| {
        Check::new(&Failover)
            .variant("flawed")
            .seeds(0..100)
            .sim(|s| s.durations(Durations::Short))
            .run()
    });
    let message = *short.unwrap_err().downcast::<String>().unwrap();
    assert_eq!(
        message,
        "1 problem(s):\ncoverage point `takeover` of failover flawed was never hit in seeds 0..100"
    );
    Check::new(&Failover).variant("fixed").seeds(0..60).run();
}

/// `failover`, asking for a coverage point no run ever marks.
struct Unreached;

impl Scenario for Unreached {
    fn name(&self) -> &'static str {
        "unreached"
    }
    fn about(&self) -> &'static str {
        "names a coverage point it never reaches"
    }
    fn variants(&self) -> &'static [&'static str] {
        &["only"]
    }
    fn setup(&self) -> Setup {
        Setup::new(1, groundhog_sim::FaultMix::new(Vec::new(), 0.0, 100))
            .coverage("only", &["reached", "never-reached"])
    }
    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(async move {
            rt::sleep(rt::Duration::from_millis(10)).await;
            ctx.reachable("reached");
            ctx.sometimes("odd-seed", ctx.seed() % 2 == 1);
            Ok(())
        })
    }
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_sweep_counts_coverage_points_and_check_fails_on_a_point_never_hit() {
    let summary = groundhog_sim::Sweep::new(
        vec![(&Unreached as &dyn Scenario, "only".to_string())],
        groundhog_sim::SeedRange(0..10),
        groundhog_sim::Sim::new(0),
    )
    .run()
    .unwrap();
    let row = |p: &str| {
        summary
            .coverage
            .iter()
            .find(|r| r.point == p)
            .map(|r| (r.seeds_hit, r.seeds_run))
    };
    assert_eq!(row("reached"), Some((10, 10)));
    assert_eq!(row("odd-seed"), Some((5, 10)));
    assert_eq!(
        row("never-reached"),
        Some((0, 10)),
        "named in Setup, listed though never declared"
    );
    let failed = std::panic::catch_unwind(|| Check::new(&Unreached).seeds(0..10).run());
    let message = *failed.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains(
            "coverage point `never-reached` of unreached only was never hit in seeds 0..10"
        ),
        "{message}"
    );
    assert!(!message.contains("`reached`"), "{message}");
}

/// `amnesiac-restart` is caught only with faults aimed at processes: without `kill-process` and
/// `exit-process` the store is never restarted (the coverage point says so) and every seed
/// passes; with them the first seeds fail. Catches a store that keeps state across restarts in
/// the flawed variant, and a `kill-process` that misses the supervisor's child.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn amnesiac_restart_is_caught_only_by_faults_aimed_at_processes() {
    use groundhog_scenarios::AmnesiacRestart;
    use groundhog_sim::FaultKind;
    let first = Check::new(&AmnesiacRestart)
        .variant("flawed")
        .seeds(0..20)
        .expect_failure();
    assert!(
        first.summary.contains("invariant=acknowledged-writes-kept"),
        "{}",
        first.summary
    );
    let off = vec![
        FaultKind::Partition,
        FaultKind::SetLoss,
        FaultKind::SetLatency,
        FaultKind::PauseNode,
        FaultKind::CrashNode,
    ];
    let without = std::panic::catch_unwind(|| {
        Check::new(&AmnesiacRestart)
            .variant("flawed")
            .seeds(0..100)
            .sim(|s| s.faults(off.clone()))
            .run()
    });
    let message = *without.unwrap_err().downcast::<String>().unwrap();
    assert_eq!(
        message,
        "1 problem(s):\ncoverage point `store-restarted` of amnesiac-restart flawed was never hit in seeds 0..100"
    );
    Check::new(&AmnesiacRestart)
        .variant("fixed")
        .seeds(0..60)
        .run();
}

/// `impatient-lookup` is caught only with buggify on: its runs have no fault plan, and only the
/// runtime's `supervisor-restart-delay` site makes a restart slow enough for the flawed client
/// to give up. Catches buggify never firing when the scenario turns it on, and a flawed client
/// that waits as long as the fixed one.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn impatient_lookup_is_caught_only_with_buggify() {
    use groundhog_scenarios::ImpatientLookup;
    let first = Check::new(&ImpatientLookup)
        .variant("flawed")
        .seeds(0..30)
        .expect_failure();
    assert!(
        first.summary.contains("invariant=all-jobs-done"),
        "{}",
        first.summary
    );
    Check::new(&ImpatientLookup)
        .variant("flawed")
        .seeds(0..100)
        .sim(|s| s.buggify(false))
        .run();
    Check::new(&ImpatientLookup)
        .variant("fixed")
        .seeds(0..60)
        .run();
}

/// `lease-drift` is caught only with clock faults: without `clock-skew` and `clock-drift` the
/// flawed client's expiry stamps agree with global time and every seed passes; with them the
/// first seeds fail. Catches a flawed client that does not trust its own clock, and clock faults
/// that do not reach the clients' wall clocks.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn lease_drift_is_caught_only_by_clock_faults() {
    use groundhog_scenarios::LeaseDrift;
    use groundhog_sim::FaultKind;
    let first = Check::new(&LeaseDrift)
        .variant("flawed")
        .seeds(0..30)
        .expect_failure();
    assert!(
        first.summary.contains("invariant=one-holder-at-a-time"),
        "{}",
        first.summary
    );
    let off = vec![
        FaultKind::Partition,
        FaultKind::SetLatency,
        FaultKind::PauseNode,
        FaultKind::CrashNode,
    ];
    Check::new(&LeaseDrift)
        .variant("flawed")
        .seeds(0..60)
        .sim(|s| s.faults(off.clone()))
        .run();
    Check::new(&LeaseDrift).variant("fixed").seeds(0..40).run();
}

/// `unsynced-ack` is caught only when a crash meets the disk: without `crash-node` (disk stalls,
/// a full disk, latency and partitions still on) nothing loses a buffered write and every seed
/// passes; with it the first seeds fail. Catches a disk whose kill keeps unsynced writes, and a
/// flawed server that syncs before acknowledging.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn unsynced_ack_is_caught_only_by_crashes_of_a_buffering_disk() {
    use groundhog_scenarios::UnsyncedAck;
    use groundhog_sim::FaultKind;
    let first = Check::new(&UnsyncedAck)
        .variant("flawed")
        .seeds(0..30)
        .expect_failure();
    assert!(
        first
            .summary
            .contains("invariant=acknowledged-writes-are-durable"),
        "{}",
        first.summary
    );
    let off = vec![
        FaultKind::DiskStall,
        FaultKind::DiskFull,
        FaultKind::SetLatency,
        FaultKind::Partition,
    ];
    // Every seed passes; the only problem is the coverage point that needs a crash.
    let without = std::panic::catch_unwind(|| {
        Check::new(&UnsyncedAck)
            .variant("flawed")
            .seeds(0..60)
            .sim(|s| s.faults(off.clone()))
            .run()
    });
    let message = *without.unwrap_err().downcast::<String>().unwrap();
    assert_eq!(
        message,
        "1 problem(s):\ncoverage point `acked-unsynced-at-crash` of unsynced-ack flawed was never hit in seeds 0..60"
    );
    Check::new(&UnsyncedAck).variant("fixed").seeds(0..40).run();
}
