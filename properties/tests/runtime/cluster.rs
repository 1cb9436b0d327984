//! Shared pieces of the runtime scenarios.

use std::sync::{Arc, Mutex, MutexGuard};

use groundhog_runtime::rt::Duration;
use groundhog_runtime::{Node, NodeConfig};
use groundhog_sim::{Fault, FaultMix, FaultPlan, NodeCtx};

/// Heartbeats every 50 ms; a peer silent for 500 ms is down.
pub const HEARTBEAT: Duration = Duration::from_millis(50);
pub const DOWN_AFTER: Duration = Duration::from_millis(500);

/// Starts this simulated node's runtime, in a cluster of `nodes`.
pub async fn start(node: &NodeCtx, nodes: u32) -> Node {
    let config = NodeConfig::cluster(node.index(), node.incarnation(), nodes)
        .heartbeat(HEARTBEAT, DOWN_AFTER);
    Node::start(config)
        .await
        .expect("the distribution port is free on a fresh node")
}

pub fn lock<T>(m: &Arc<Mutex<T>>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A mix for scenarios whose tests always give an explicit plan.
pub fn no_faults(window_ms: u64) -> FaultMix {
    FaultMix::new(Vec::new(), 0.0, window_ms)
}

/// Node 1 crashes at `at_ms` and restarts at `back_ms`; quiet from `quiet_ms`.
pub fn crash_node_1(at_ms: u64, back_ms: u64, quiet_ms: u64) -> FaultPlan {
    FaultPlan::timed(
        quiet_ms,
        vec![
            (at_ms, Fault::CrashNode { node: 1 }),
            (back_ms, Fault::RestartNode { node: 1 }),
        ],
    )
}

/// Nodes 0 and 1 are cut apart at `at_ms` and healed at `heal_ms`; quiet from `quiet_ms`.
pub fn cut_0_from_1(at_ms: u64, heal_ms: u64, quiet_ms: u64) -> FaultPlan {
    FaultPlan::timed(
        quiet_ms,
        vec![
            (
                at_ms,
                Fault::Partition {
                    groups: vec![vec![0], vec![1]],
                },
            ),
            (heal_ms, Fault::Heal),
        ],
    )
}
