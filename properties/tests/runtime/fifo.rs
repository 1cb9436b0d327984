//! Per-pair FIFO across a lossy, reordering network: each sender's messages reach the collector
//! in the order sent; with no faults, all of them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, NetConfig, Stream};
use groundhog_runtime::{Ctx, Event, ExitReason, Pid};
use groundhog_sim::{
    BoxFuture, Check, Driver, FaultKind, FaultMix, FaultPlan, Scenario, Setup, Violation,
};
use rand::Rng;

use super::cluster::{self, lock};

const MESSAGES: u64 = 150;

#[derive(Default)]
struct World {
    collector: Option<Pid>,
    /// Sequence numbers received, per sender.
    got: BTreeMap<Pid, Vec<u64>>,
    senders: Vec<Pid>,
}

type Shared = Arc<Mutex<World>>;

struct Fifo;

impl Scenario for Fifo {
    fn name(&self) -> &'static str {
        "rt-fifo"
    }

    fn about(&self) -> &'static str {
        "per-pair FIFO between processes on three nodes over a jittery, lossy network"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["jitter", "faults"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![
                FaultKind::Partition,
                FaultKind::ClogLink,
                FaultKind::SetLoss,
                FaultKind::SetLatency,
                FaultKind::PauseNode,
            ],
            0.6,
            3_000,
        );
        Setup::new(3, faults)
            .net(NetConfig {
                loss: 0.2,
                latency: Duration::from_millis(1)..Duration::from_millis(100),
            })
            .node_range(3..=5)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let nodes = ctx.nodes();
    let seed = ctx.seed();
    for n in 0..nodes {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let rt_node = cluster::start(&node, nodes).await;
                if node.index() == 0 {
                    let w = world.clone();
                    let pid = rt_node.spawn("collector", move |mut ctx: Ctx<u64>| async move {
                        loop {
                            if let Event::Msg { from, msg } = ctx.recv().await {
                                lock(&w).got.entry(from).or_default().push(msg);
                            }
                        }
                    });
                    lock(&world).collector = Some(pid);
                }
                let stream = Stream::Extra(node.index() * 100 + node.incarnation() as u32);
                let mut rng = rt::seeded_rng(seed, stream);
                let w = world.clone();
                let sender = rt_node.spawn("sender", move |ctx: Ctx<()>| async move {
                    let to = loop {
                        if let Some(pid) = lock(&w).collector {
                            break pid;
                        }
                        rt::sleep(Duration::from_millis(10)).await;
                    };
                    for i in 0..MESSAGES {
                        if ctx.send(to, i).is_err() {
                            return ExitReason::error("send refused");
                        }
                        rt::sleep(Duration::from_millis(rng.gen_range(0..8))).await;
                    }
                    ExitReason::Normal
                });
                lock(&world).senders.push(sender);
            }
        });
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(3)).await;
    let w = lock(&world);
    for (from, seqs) in &w.got {
        let inversion = seqs.windows(2).position(|p| p[0] >= p[1]);
        ctx.check("per-pair-fifo", inversion.is_none(), || {
            let at = inversion.unwrap_or_default();
            format!(
                "messages from {from} out of order at position {at}: {:?}",
                &seqs[at..seqs.len().min(at + 6)]
            )
        })?;
    }
    if ctx.variant() == "jitter" {
        for sender in &w.senders {
            let got = w.got.get(sender).map(Vec::len).unwrap_or(0);
            ctx.check(
                "all-delivered-without-faults",
                got == MESSAGES as usize,
                || format!("{sender} delivered {got} of {MESSAGES}"),
            )?;
        }
    }
    Ok(())
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn fifo_holds_under_jitter_and_loss_and_nothing_is_lost() {
    Check::new(&Fifo)
        .variant("jitter")
        .sim(|s| s.plan(FaultPlan::quiet(3_000)))
        .seeds(0..16)
        .determinism(true)
        .run();
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn fifo_holds_under_partitions_clogs_and_pauses() {
    Check::new(&Fifo).variant("faults").seeds(0..24).run();
}

/// Five nodes, generated faults: the size the issue asks throughput figures for.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn fifo_holds_on_five_nodes_with_faults() {
    Check::new(&Fifo)
        .variant("faults")
        .sim(|s| s.nodes(5))
        .seeds(100..120)
        .run();
}
