//! Per-node clocks through the harness: clock faults in plan files, generated plans and traces,
//! and the cluster registry converging while every node's clock disagrees with the others.

use groundhog_scenarios::SplitRegistry;
use groundhog_sim::{Fault, FaultKind, FaultMix, FaultPlan, PlanLimits, Scenario, Sim, TimedFault};

/// `clock-skew` and `clock-drift` read and print as the rest of the vocabulary does, are
/// bounded, and a generated episode is undone by the opposite jump or by stopping the drift.
#[test]
fn clock_faults_in_plan_files_and_generated_plans() {
    let text = r#"
        quiet_at_ms = 3000

        [[fault]]
        at_ms = 100
        fault = "clock-skew"
        node = 1
        offset_ms = -750

        [[fault]]
        at_ms = 200
        fault = "clock-drift"
        node = 2
        rate = 1.05
    "#;
    let plan = FaultPlan::parse(text, false).unwrap();
    let shown: Vec<String> = plan.faults.iter().map(|f| f.fault.to_string()).collect();
    assert_eq!(
        shown,
        [
            "clock-skew node=1 offset_ms=-750",
            "clock-drift node=2 rate=1.05"
        ]
    );
    plan.validate(PlanLimits::nodes(3), None).unwrap();
    let again = FaultPlan::parse(&plan.to_toml().unwrap(), false).unwrap();
    assert_eq!(again, plan);
    for bad in [
        Fault::ClockSkew {
            node: 0,
            offset_ms: 3_600_001,
        },
        Fault::ClockDrift { node: 0, rate: 2.5 },
        Fault::ClockDrift {
            node: 0,
            rate: f64::NAN,
        },
        Fault::ClockSkew {
            node: 3,
            offset_ms: 1,
        },
    ] {
        let plan = FaultPlan::timed(1_000, [(10, bad.clone())]);
        assert!(
            plan.validate(PlanLimits::nodes(3), None).is_err(),
            "{bad} is refused"
        );
    }
    let mix = FaultMix::new(
        vec![FaultKind::ClockSkew, FaultKind::ClockDrift],
        1.0,
        4_000,
    );
    let mut seen = [0, 0];
    for seed in 0..20 {
        let plan = FaultPlan::generate(seed, 3, &mix, &Default::default());
        plan.validate(PlanLimits::nodes(3), None).unwrap();
        let mut skew_sum = [0i64; 3];
        for TimedFault { fault, .. } in &plan.faults {
            match fault {
                Fault::ClockSkew { node, offset_ms } => {
                    seen[0] += 1;
                    assert!((50..=2_000).contains(&offset_ms.unsigned_abs()));
                    skew_sum[*node as usize] += offset_ms;
                }
                Fault::ClockDrift { rate, .. } => {
                    seen[1] += 1;
                    assert!((0.8..=1.2).contains(rate), "{rate}");
                }
                other => panic!("only clock faults were asked for, got {other}"),
            }
        }
        assert_eq!(skew_sum, [0; 3], "every jump is undone by the jump back");
    }
    assert!(seen[0] > 0 && seen[1] > 0, "both kinds are drawn: {seen:?}");
}

/// The cluster registry converges under skew: split-registry's fixed variant, with its own
/// generated partitions plus node 0's clock 2 s ahead, node 1's 1.5 s behind and node 2's
/// running 20% fast, still ends with one live holder per name on every node and every loser
/// told, on every seed tried. The conflict rule ranks by Lamport stamp and pid, so no clock
/// enters it. The trace shows each skewed node's own reading (`local=`).
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn the_cluster_registry_converges_under_skew() {
    let skews = [
        (
            1,
            Fault::ClockSkew {
                node: 0,
                offset_ms: 2_000,
            },
        ),
        (
            1,
            Fault::ClockSkew {
                node: 1,
                offset_ms: -1_500,
            },
        ),
        (1, Fault::ClockDrift { node: 2, rate: 1.2 }),
    ];
    for seed in 0..6 {
        let sim = Sim::new(seed).variant("fixed").keep_trace(true);
        let mut plan = sim.resolve_plan(&SplitRegistry).unwrap();
        let generated = std::mem::take(&mut plan.faults);
        plan.faults = skews
            .iter()
            .map(|(at_ms, fault)| TimedFault {
                at_ms: *at_ms,
                fault: fault.clone(),
            })
            .chain(generated)
            .collect();
        plan.faults.sort_by_key(|f| f.at_ms);
        let report = sim.plan(plan).run(&SplitRegistry).unwrap();
        assert!(
            report.outcome.passed(),
            "seed {seed}: {:?} ({})",
            report.outcome,
            SplitRegistry.name()
        );
        for node in 0..3 {
            let prefix = format!(" n{node} ");
            assert!(
                report
                    .trace
                    .lines
                    .iter()
                    .any(|l| l.contains(&prefix) && l.contains(" local=")),
                "seed {seed}: node {node}'s events show its own clock"
            );
        }
    }
}
