//! The coordination primitives (`groundhog_runtime::coord`) under whole simulations with
//! generated fault plans: safety as the run goes, liveness after the quiet phase.
//!
//! CI runs a fixed number of plans per property; `COORD_CASES` (and `COORD_FROM`) widen it.

mod barrier;
mod consensus;
mod election;
mod lease;

use std::sync::{Arc, Mutex, MutexGuard};

use groundhog_runtime::rt::Duration;
use groundhog_runtime::{Node, NodeConfig};
use groundhog_sim::NodeCtx;

/// Starts this simulated node's runtime in a cluster of `nodes`: heartbeats every 50 ms, a
/// peer silent for 500 ms is down.
pub async fn start_node(node: &NodeCtx, nodes: u32) -> Node {
    let config = NodeConfig::cluster(node.index(), node.incarnation(), nodes)
        .heartbeat(Duration::from_millis(50), Duration::from_millis(500));
    Node::start(config)
        .await
        .expect("the distribution port is free on a fresh node")
}

pub fn lock<T>(m: &Arc<Mutex<T>>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `body` as a process on `node` and returns its output (`None` if the process died).
pub async fn in_process<T: Send + 'static, F>(
    node: &Node,
    body: impl FnOnce(groundhog_runtime::Ctx<()>) -> F + Send + 'static,
) -> Option<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
{
    let (tx, rx) = futures::channel::oneshot::channel();
    node.spawn("probe", move |ctx| async move {
        let _ = tx.send(body(ctx).await);
        groundhog_runtime::ExitReason::Normal
    });
    rx.await.ok()
}

/// Seeds (one generated plan each) a property runs: `default` in CI, `COORD_CASES` more.
pub fn cases(default: u64) -> std::ops::Range<u64> {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let from = var("COORD_FROM", 0);
    from..from + var("COORD_CASES", default)
}
