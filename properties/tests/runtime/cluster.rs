//! Shared pieces of the runtime scenarios.

use std::sync::{Arc, Mutex, MutexGuard};

use groundhog_runtime::rt::Duration;
use groundhog_runtime::{Node, NodeConfig};
use groundhog_sim::{FaultMix, NodeCtx};

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
    FaultMix {
        kinds: Vec::new(),
        intensity: 0.0,
        window_ms,
        processes: Vec::new(),
    }
}

/// Whole simulations need the simulation build; the real build skips them.
pub fn simulated() -> bool {
    groundhog_runtime::rt::SIMULATED
}
