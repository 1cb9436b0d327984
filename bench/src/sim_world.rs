//! What every simulation-build figure shares: a fresh world with a steady network, timed from
//! outside, and hand-offs from node programs to the world's supervisor.

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use groundhog_runtime::rt::{self, Control, Duration, NetConfig};

use crate::measure::timed;

/// A fixed 1 ms latency and no loss, so both sides see the same network.
fn steady_net() -> NetConfig {
    NetConfig {
        loss: 0.0,
        latency: Duration::from_millis(1)..Duration::from_millis(1),
    }
}

/// Wall time of one fresh world running `body` as its supervisor, with what `body` returned.
pub fn in_world<T, F: Future<Output = T>>(
    body: impl FnOnce(Control) -> F,
) -> (std::time::Duration, T) {
    let world = rt::World::new(1, &steady_net(), None).expect("the simulation build");
    timed(|| world.block_on(async { body(Control::current().expect("inside a world")).await }))
}

/// Creates node `index` running `program`, then keeping the node alive (a madsim node whose
/// program returns exits).
pub fn start_node<F>(control: &Control, index: u32, program: impl Fn() -> F + Send + Sync + 'static)
where
    F: Future<Output = ()> + 'static,
{
    control.create_node(index, move || {
        let run = program();
        async move {
            run.await;
            std::future::pending::<()>().await;
        }
    });
}

/// Datagrams the world's network has carried so far (0 outside the simulation build).
pub fn datagrams() -> u64 {
    rt::datagram_count().unwrap_or(0)
}

/// Hands one value from a node program (which may run again) to the supervisor.
pub type Slot<T> = Arc<Mutex<Option<oneshot::Sender<T>>>>;

pub fn handoff<T: Send + 'static>() -> (Slot<T>, oneshot::Receiver<T>) {
    let (tx, rx) = oneshot::channel();
    (Arc::new(Mutex::new(Some(tx))), rx)
}

pub fn give<T>(slot: &Slot<T>, value: T) {
    if let Some(tx) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = tx.send(value);
    }
}
