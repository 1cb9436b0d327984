//! Simulation-build figures of whole clusters against raw madsim: every node calling random
//! peers' echo servers (`echo`), and a cluster doing nothing (`idle`), at 3 to 50 nodes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};
use groundhog_runtime::rt::{self, Control, Duration, Endpoint, Stream};
use groundhog_runtime::{Ctx, ExitReason, Node, NodeConfig, Pid};
use rand::Rng;

use crate::measure::median_of;
use crate::sim_world::{datagrams, give, handoff, in_world, start_node, Slot};
use crate::table::{Row, Table};
use crate::workloads;
use crate::Opts;

const SIZES: [u32; 5] = [3, 5, 10, 20, 50];
/// The seed of the callers' peer choices (the same for both sides).
const SEED: u64 = 15;

/// What one run did: its wall time, the operations it finished and the datagrams it carried.
#[derive(Clone, Copy)]
struct Run {
    wall: f64,
    ops: u64,
    datagrams: u64,
}

/// Every node's contribution (its echo server, or only that it is ready), handed to every node once all have given.
struct Roll<T> {
    slots: Vec<Slot<T>>,
    gathered: Vec<oneshot::Receiver<T>>,
    all: Shared<oneshot::Receiver<Arc<Vec<T>>>>,
    send_all: oneshot::Sender<Arc<Vec<T>>>,
}

impl<T: Send + Sync + 'static> Roll<T> {
    fn new(nodes: u32) -> Roll<T> {
        let (slots, gathered) = (0..nodes).map(|_| handoff()).unzip();
        let (send_all, all) = oneshot::channel();
        Roll {
            slots,
            gathered,
            all: all.shared(),
            send_all,
        }
    }

    /// Waits for every node's value and hands the whole list to every node.
    async fn gather(self) {
        let mut values = Vec::new();
        for rx in self.gathered {
            values.push(rx.await.expect("every node starts"));
        }
        let _ = self.send_all.send(Arc::new(values));
    }
}

/// Starts `nodes` nodes, node `i` running `program(i, its slot, everyone's values)`, lets them run
/// for `window` of simulated time once all have given their value, and counts what `ops` says
/// they finished.
fn cluster<T, F, Fut>(nodes: u32, window: Duration, program: F) -> Run
where
    T: Send + Sync + 'static,
    F: Fn(u32, Slot<T>, Shared<oneshot::Receiver<Arc<Vec<T>>>>, Arc<AtomicU64>) -> Fut,
    F: Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let ops = Arc::new(AtomicU64::new(0));
    let counted = ops.clone();
    let (wall, carried) = in_world(|control: Control| async move {
        let roll = Roll::<T>::new(nodes);
        for (i, slot) in (0..nodes).zip(roll.slots.clone()) {
            let (program, all, ops) = (program.clone(), roll.all.clone(), ops.clone());
            start_node(&control, i, move || {
                program(i, slot.clone(), all.clone(), ops.clone())
            });
        }
        roll.gather().await;
        rt::sleep(window).await;
        datagrams()
    });
    Run {
        wall: wall.as_secs_f64(),
        ops: counted.load(Ordering::Relaxed),
        datagrams: carried,
    }
}

/// A peer of `me` other than itself, drawn from `rng`.
fn peer(rng: &mut rt::ChaCha8Rng, me: u32, nodes: u32) -> usize {
    let k = rng.gen_range(0..nodes - 1);
    (if k >= me { k + 1 } else { k }) as usize
}

/// The workload through Groundhog: every node's caller process calls random peers' echo
/// processes back to back.
fn groundhog_echo(nodes: u32, window: Duration) -> Run {
    cluster::<Pid, _, _>(nodes, window, move |i, slot, servers, calls| async move {
        let node = Node::start(NodeConfig::cluster(i, 1, nodes))
            .await
            .expect("port free");
        give(&slot, workloads::echo_server(&node));
        let servers = servers.await.expect("the roll completes");
        let mut rng = rt::seeded_rng(SEED, Stream::Extra(i));
        node.spawn("caller", move |ctx: Ctx<()>| async move {
            for v in 0.. {
                let server = servers[peer(&mut rng, i, nodes)];
                let got: u64 = ctx
                    .call(server, v, Duration::from_secs(60))
                    .await
                    .expect("echo");
                assert_eq!(got, v);
                calls.fetch_add(1, Ordering::Relaxed);
            }
            ExitReason::Normal
        });
    })
}

/// The same workload on raw madsim: an echo task and a caller task per node, each on its own
/// `rt::Endpoint`, one request datagram and one response per call.
fn endpoint_echo(nodes: u32, window: Duration) -> Run {
    cluster::<(), _, _>(nodes, window, move |i, slot, ready, calls| async move {
        let ep = Endpoint::bind(rt::node_addr(i, workloads::ECHO_PORT))
            .await
            .expect("port free");
        rt::spawn(async move { workloads::endpoint_echo(&ep).await });
        let caller = Endpoint::bind(rt::node_addr(i, workloads::ECHO_PORT + 1))
            .await
            .expect("port free");
        give(&slot, ());
        ready.await.expect("the roll completes");
        let mut rng = rt::seeded_rng(SEED, Stream::Extra(i));
        for v in 0.. {
            let server = rt::node_addr(peer(&mut rng, i, nodes) as u32, workloads::ECHO_PORT);
            assert_eq!(workloads::endpoint_call(&caller, server, v).await, v);
            calls.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// `nodes` runtime nodes with no user traffic (heartbeats only).
fn groundhog_idle(nodes: u32, window: Duration) -> Run {
    cluster::<(), _, _>(nodes, window, move |i, slot, _, _| async move {
        let _node = Node::start(NodeConfig::cluster(i, 1, nodes))
            .await
            .expect("port free");
        give(&slot, ());
        std::future::pending::<()>().await;
    })
}

/// `nodes` madsim nodes, each with a task waking every 100 ms (the runtime's heartbeat period).
fn madsim_idle(nodes: u32, window: Duration) -> Run {
    cluster::<(), _, _>(nodes, window, move |_, slot, _, _| async move {
        give(&slot, ());
        loop {
            rt::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Interleaved (Groundhog, baseline) samples: the median of each side and of their ratios.
fn interleaved(
    samples: usize,
    mut ours: impl FnMut() -> Run,
    mut theirs: impl FnMut() -> Run,
) -> (Run, Run, f64) {
    let pairs: Vec<(Run, Run)> = (0..samples).map(|_| (ours(), theirs())).collect();
    let per_op = |r: &Run| r.wall / r.ops.max(1) as f64;
    let median_run = |side: fn(&(Run, Run)) -> Run| {
        let mut runs: Vec<Run> = pairs.iter().map(side).collect();
        runs.sort_by(|a, b| per_op(a).total_cmp(&per_op(b)));
        runs[runs.len() / 2]
    };
    let ratio = median_of(pairs.iter().map(|(g, b)| per_op(g) / per_op(b)).collect());
    (median_run(|p| p.0), median_run(|p| p.1), ratio)
}

fn echo(table: &mut Table, opts: &Opts) {
    let window = Duration::from_millis(if opts.quick { 200 } else { 2_000 });
    for nodes in SIZES {
        let (g, b, ratio) = interleaved(
            opts.samples,
            || groundhog_echo(nodes, window),
            || endpoint_echo(nodes, window),
        );
        let per_call = |r: &Run| {
            format!(
                "{:.2} µs/call, {:.1} datagrams/call ({} calls)",
                r.wall / r.ops.max(1) as f64 * 1e6,
                r.datagrams as f64 / r.ops.max(1) as f64,
                r.ops
            )
        };
        let target = match nodes {
            3 => Some(1.5),
            50 => Some(2.0),
            _ => None,
        };
        table.push(Row {
            figure: format!(
                "simulated echo, {nodes} nodes calling random peers, {:.1} s (wall per call)",
                window.as_secs_f64()
            ),
            groundhog: per_call(&g),
            baseline: format!("raw madsim Endpoint: {}", per_call(&b)),
            ratio: format!("{ratio:.2}x"),
            target: target.map_or("-".into(), |t| format!("<= {t}x")),
            met: target.map(|t| ratio <= t),
        });
    }
}

/// The least-squares slope of `ln y` against `ln x`: the exponent `k` of `y ~ x^k`.
fn exponent(points: &[(f64, f64)]) -> f64 {
    let logs: Vec<(f64, f64)> = points
        .iter()
        .map(|(x, y)| (x.ln(), y.max(1e-12).ln()))
        .collect();
    let n = logs.len() as f64;
    let (mx, my) = logs
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let cov: f64 = logs.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = logs.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    cov / var
}

fn idle(table: &mut Table, opts: &Opts) {
    let window = Duration::from_secs(if opts.quick { 1 } else { 10 });
    let secs = window.as_secs_f64();
    let mut walls = Vec::new();
    for nodes in SIZES {
        // No operations: the ratio is of whole runs' wall times.
        let (g, b, ratio) = interleaved(
            opts.samples,
            || groundhog_idle(nodes, window),
            || madsim_idle(nodes, window),
        );
        walls.push((
            f64::from(nodes),
            g.wall / secs,
            b.wall / secs,
            g.datagrams as f64 / secs,
        ));
        table.push(Row {
            figure: format!("idle cluster, {nodes} nodes, {secs:.0} s (wall per simulated s)"),
            groundhog: format!(
                "{:.2} ms/s, {:.0} datagrams/s",
                g.wall / secs * 1e3,
                g.datagrams as f64 / secs
            ),
            baseline: format!(
                "madsim nodes, a sleeping task each: {:.2} ms/s",
                b.wall / secs * 1e3
            ),
            ratio: format!("{ratio:.2}x"),
            target: "-".into(),
            met: None,
        });
    }
    let fit = |pick: fn(&(f64, f64, f64, f64)) -> f64| {
        exponent(&walls.iter().map(|w| (w.0, pick(w))).collect::<Vec<_>>())
    };
    let (ours, theirs, sent) = (fit(|w| w.1), fit(|w| w.2), fit(|w| w.3));
    table.push(Row {
        figure: "idle cluster cost against nodes, least-squares exponent k of wall ~ N^k".into(),
        groundhog: format!("k = {ours:.2} (datagrams/s: k = {sent:.2})"),
        baseline: format!("madsim sleeping tasks: k = {theirs:.2}"),
        ratio: "-".into(),
        target: "about linear (k <= 1.2)".into(),
        met: Some(ours <= 1.2),
    });
}

pub fn all(table: &mut Table, opts: &Opts) {
    if opts.wants("echo") {
        echo(table, opts);
    }
    if opts.wants("idle") {
        idle(table, opts);
    }
}
