//! Disk faults in plan files and generated plans.

use groundhog_sim::{Fault, FaultKind, FaultMix, FaultPlan, PlanLimits, TimedFault};

/// `disk-stall`, `disk-full` and `disk-corrupt` read and print as the rest of the vocabulary
/// does; a generated stall or full disk is undone within its episode, a corruption has no undo.
#[test]
fn disk_faults_in_plan_files_and_generated_plans() {
    let text = r#"
        quiet_at_ms = 3000

        [[fault]]
        at_ms = 100
        fault = "disk-stall"
        node = 0
        latency_ms = 40

        [[fault]]
        at_ms = 200
        fault = "disk-full"
        node = 1
        full = true

        [[fault]]
        at_ms = 300
        fault = "disk-corrupt"
        node = 1
    "#;
    let plan = FaultPlan::parse(text, false).unwrap();
    let shown: Vec<String> = plan.faults.iter().map(|f| f.fault.to_string()).collect();
    assert_eq!(
        shown,
        [
            "disk-stall node=0 latency_ms=40",
            "disk-full node=1 full=true",
            "disk-corrupt node=1"
        ]
    );
    plan.validate(PlanLimits::nodes(2), None).unwrap();
    assert_eq!(
        FaultPlan::parse(&plan.to_toml().unwrap(), false).unwrap(),
        plan
    );
    let too_slow = FaultPlan::timed(
        1_000,
        [(
            1,
            Fault::DiskStall {
                node: 0,
                latency_ms: 60_001,
            },
        )],
    );
    assert!(too_slow.validate(PlanLimits::nodes(2), None).is_err());
    let mix = FaultMix::new(
        vec![
            FaultKind::DiskStall,
            FaultKind::DiskFull,
            FaultKind::DiskCorrupt,
        ],
        1.0,
        4_000,
    );
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let plan = FaultPlan::generate(seed, 2, &mix, &Default::default());
        plan.validate(PlanLimits::nodes(2), None).unwrap();
        let mut stalled = [false; 2];
        let mut full = [false; 2];
        for TimedFault { fault, .. } in &plan.faults {
            kinds.insert(fault.kind());
            match fault {
                Fault::DiskStall { node, latency_ms } => {
                    assert!(*latency_ms <= 200);
                    stalled[*node as usize] = *latency_ms > 0;
                }
                Fault::DiskFull { node, full: f } => full[*node as usize] = *f,
                Fault::DiskCorrupt { .. } => {}
                other => panic!("only disk faults were asked for, got {other}"),
            }
        }
        if !plan.swarm.as_ref().is_some_and(|s| s.overlap) {
            assert_eq!(
                (stalled, full),
                ([false; 2], [false; 2]),
                "seed {seed}: undone"
            );
        }
    }
    assert_eq!(kinds.len(), 3, "every kind is drawn: {kinds:?}");
}
