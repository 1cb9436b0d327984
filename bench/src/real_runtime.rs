//! Real-build figures of the runtime: local throughput and call latency against raw tokio
//! channels and ractor (an established Rust actor library) doing the same work, and the memory
//! an idle process costs.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::runtime::Runtime;

use groundhog_runtime::{Ctx, ExitReason, Node, NodeConfig};

use crate::measure::{median_of, timed};
use crate::table::{Figure, Row, Table};
use crate::workloads;
use crate::Opts;

struct Echo;

enum EchoMsg {
    Cast(#[allow(dead_code)] u64),
    Call(u64, RpcReplyPort<u64>),
}

impl Actor for Echo {
    type Msg = EchoMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<EchoMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<EchoMsg>,
        msg: EchoMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let EchoMsg::Call(v, port) = msg {
            let _ = port.send(v);
        }
        Ok(())
    }
}

async fn ractor_sends(n: u64) {
    let (actor, handle) = Actor::spawn(None, Echo, ()).await.expect("ractor spawns");
    for i in 0..n {
        actor.cast(EchoMsg::Cast(i)).expect("actor alive");
    }
    let last = ractor::call!(actor, EchoMsg::Call, n).expect("actor answers");
    assert_eq!(last, n);
    actor.stop(None);
    handle.await.expect("actor stops");
}

async fn ractor_calls(n: u64) {
    let (actor, handle) = Actor::spawn(None, Echo, ()).await.expect("ractor spawns");
    for i in 0..n {
        let got = ractor::call!(actor, EchoMsg::Call, i).expect("actor answers");
        assert_eq!(got, i);
    }
    actor.stop(None);
    handle.await.expect("actor stops");
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("BENCH_WORKERS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
        )
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// One contestant's whole workload.
type Job = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Interleaved samples of three contestants; per-op medians and ratios to the raw baseline.
fn three_way(
    table: &mut Table,
    samples: usize,
    figure: &Figure<'_>,
    rt: &Runtime,
    groundhog: impl Fn() -> Job,
    raw: impl Fn() -> Job,
    ractor: impl Fn() -> Job,
) {
    let (n, raw_name) = (figure.ops, figure.baseline);
    // Each workload runs as a spawned task, so every contestant's client and server are both
    // on the runtime's worker threads (none on the thread that called block_on).
    let per_op = |f: &dyn Fn() -> Job| {
        let job = f();
        timed(|| rt.block_on(rt.spawn(job)).expect("the workload finishes"))
            .0
            .as_secs_f64()
            / n as f64
    };
    let runs: Vec<(f64, f64, f64)> = (0..samples)
        .map(|_| (per_op(&groundhog), per_op(&raw), per_op(&ractor)))
        .collect();
    let g = median_of(runs.iter().map(|r| r.0).collect());
    let b = median_of(runs.iter().map(|r| r.1).collect());
    let a = median_of(runs.iter().map(|r| r.2).collect());
    let vs_raw = median_of(runs.iter().map(|r| r.0 / r.1).collect());
    let vs_actor = median_of(runs.iter().map(|r| r.0 / r.2).collect());
    table.push(Row {
        figure: format!("{} vs {raw_name}", figure.name),
        groundhog: format!("{:.3} µs/op", g * 1e6),
        baseline: format!("{raw_name}: {:.3} µs/op", b * 1e6),
        ratio: format!("{vs_raw:.2}x"),
        target: format!("<= {}x", figure.target),
        met: Some(vs_raw <= figure.target),
    });
    table.push(Row {
        figure: format!("{} vs ractor 0.16", figure.name),
        groundhog: format!("{:.3} µs/op", g * 1e6),
        baseline: format!("ractor: {:.3} µs/op", a * 1e6),
        ratio: format!("{vs_actor:.2}x"),
        target: "< 1.0x (faster)".into(),
        met: Some(vs_actor < 1.0),
    });
}

/// Resident memory of this process, in bytes (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn idle_process_memory(table: &mut Table, quick: bool) {
    let n: u64 = if quick { 10_000 } else { 100_000 };
    let rt = runtime();
    let node = rt.block_on(async { Node::local(0, 1) });
    let before = resident_bytes();
    rt.block_on(async {
        for _ in 0..n {
            node.spawn("idle", |mut ctx: Ctx<()>| async move {
                ctx.recv().await;
                ExitReason::Normal
            });
        }
        // Let every process reach its first await.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    });
    let after = resident_bytes();
    assert_eq!(node.processes().len() as u64, n, "all idle processes alive");
    let per = match (before, after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / n as f64),
        _ => None,
    };
    table.push(Row {
        figure: format!("resident memory per idle process ({n} spawned)"),
        groundhog: per.map_or("unknown (no /proc)".into(), |p| format!("{:.0} bytes", p)),
        baseline: "-".into(),
        ratio: "-".into(),
        target: "<= 2048 bytes".into(),
        met: per.map(|p| p <= 2048.0),
    });
    node.shutdown();
}

pub fn all(table: &mut Table, opts: &Opts) {
    let rt = runtime();
    let capacity = NodeConfig::local(0, 1).mailbox;
    if opts.wants("local-send") {
        let n = if opts.quick { 10_000 } else { 200_000 };
        let figure = Figure {
            name: "real local send throughput",
            ops: n,
            baseline: "tokio mpsc",
            target: 1.3,
        };
        three_way(
            table,
            opts.samples,
            &figure,
            &rt,
            || {
                Box::pin(async move {
                    let node = Node::local(0, 1);
                    workloads::groundhog_sends(&node, n).await;
                    node.shutdown();
                })
            },
            || Box::pin(workloads::channel_sends(n, capacity)),
            || Box::pin(ractor_sends(n)),
        );
    }
    if opts.wants("call") {
        let n = if opts.quick { 2_000 } else { 50_000 };
        let figure = Figure {
            name: "real local call latency",
            ops: n,
            baseline: "tokio oneshot request/response",
            target: 1.3,
        };
        three_way(
            table,
            opts.samples,
            &figure,
            &rt,
            || {
                Box::pin(async move {
                    let node = Node::local(0, 1);
                    workloads::groundhog_calls(&node, n).await;
                    node.shutdown();
                })
            },
            || Box::pin(workloads::channel_calls(n)),
            || Box::pin(ractor_calls(n)),
        );
    }
    if opts.wants("memory") {
        idle_process_memory(table, opts.quick);
    }
}
