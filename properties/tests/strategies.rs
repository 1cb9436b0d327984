//! Proptest strategies for fault plans. Plans shrink by dropping faults and moving them earlier,
//! so a failing plan shrinks towards the fewest faults that still break the invariant.

use groundhog_sim::{Fault, FaultPlan, PlanNet, TimedFault};
use proptest::prelude::*;

/// One fault among `nodes` nodes, from the kinds that a scenario's nodes survive (a killed
/// process without a supervisor stays dead, so `kill-process` is left to scenarios that name one).
pub fn fault(nodes: u32) -> impl Strategy<Value = Fault> {
    let node = 0..nodes;
    prop_oneof![
        node.clone().prop_map(|node| Fault::CrashNode { node }),
        node.clone().prop_map(|node| Fault::RestartNode { node }),
        node.clone().prop_map(|node| Fault::PauseNode { node }),
        node.clone().prop_map(|node| Fault::ResumeNode { node }),
        proptest::collection::vec(node.clone(), 1..=nodes as usize).prop_map(move |side| {
            let mut a: Vec<u32> = side;
            a.sort_unstable();
            a.dedup();
            let mut b: Vec<u32> = (0..nodes).filter(|n| !a.contains(n)).collect();
            // A partition splits something: both sides hold a node (one node cannot be split).
            if b.is_empty() {
                match a.pop() {
                    Some(last) if !a.is_empty() => b.push(last),
                    _ => return Fault::Heal,
                }
            }
            Fault::Partition { groups: vec![a, b] }
        }),
        Just(Fault::Heal),
        (node.clone(), node.clone()).prop_map(|(from, to)| Fault::ClogLink { from, to }),
        (node.clone(), node).prop_map(|(from, to)| Fault::UnclogLink { from, to }),
        (0u32..=50).prop_map(|p| Fault::SetLoss {
            rate: f64::from(p) / 100.0
        }),
        (1u64..=300).prop_map(|max_ms| Fault::SetLatency {
            min_ms: max_ms / 10,
            max_ms
        }),
    ]
}

/// Up to `max_faults` faults in `0..window_ms`, then the quiet phase.
pub fn plan(nodes: u32, window_ms: u64, max_faults: usize) -> impl Strategy<Value = FaultPlan> {
    proptest::collection::vec((0..window_ms, fault(nodes)), 0..=max_faults).prop_map(
        move |mut v| {
            v.sort_by_key(|(at, _)| *at);
            FaultPlan {
                quiet_at_ms: window_ms,
                buggify: false,
                net: None,
                swarm: None,
                faults: v
                    .into_iter()
                    .map(|(at_ms, fault)| TimedFault { at_ms, fault })
                    .collect(),
            }
        },
    )
}

/// The same, on a perfect base network (no loss, 1 to 20 ms latency): every failure is the
/// plan's doing, which makes shrunk plans meaningful.
pub fn plan_on_clean_net(
    nodes: u32,
    window_ms: u64,
    max_faults: usize,
) -> impl Strategy<Value = FaultPlan> {
    plan(nodes, window_ms, max_faults).prop_map(|mut p| {
        p.net = Some(PlanNet {
            loss: 0.0,
            min_ms: 1,
            max_ms: 20,
        });
        p
    })
}

#[test]
fn generated_plans_are_valid() {
    let mut runner = proptest::test_runner::TestRunner::new(crate::config(200, file!()));
    runner
        .run(&plan(4, 3_000, 12), |p| {
            p.validate(groundhog_sim::PlanLimits::nodes(4), None)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let round: FaultPlan = toml_round_trip(&p);
            prop_assert_eq!(round, p);
            Ok(())
        })
        .unwrap();
}

fn toml_round_trip(p: &FaultPlan) -> FaultPlan {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("round-trip.toml");
    std::fs::write(&path, p.to_toml().unwrap()).unwrap();
    FaultPlan::load(&path).unwrap()
}
