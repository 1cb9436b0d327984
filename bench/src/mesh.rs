//! `runtime-mesh`, a benchmark-only scenario on the actor runtime: every node runs an echo server
//! and a client that calls random peers, under generated crashes, partitions, loss and latency.
//! Its invariant is weak on purpose (calls return, and succeed again once healed); it exists to
//! measure what a seed of a five-node runtime simulation costs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::{Ctx, ExitReason, Node, NodeConfig, Pid};
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, Scenario, Setup, Violation};
use rand::Rng;

use crate::workloads;

#[derive(Default)]
struct World {
    servers: BTreeMap<u32, Pid>,
    ok_after_heal: u64,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Mesh;

impl Scenario for Mesh {
    fn name(&self) -> &'static str {
        "runtime-mesh"
    }

    fn about(&self) -> &'static str {
        "benchmark only: five runtime nodes calling each other under faults"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["default"]
    }

    fn setup(&self) -> Setup {
        let mix = FaultMix::new(
            vec![
                FaultKind::CrashNode,
                FaultKind::Partition,
                FaultKind::SetLoss,
                FaultKind::SetLatency,
            ],
            0.5,
            3_000,
        );
        Setup::new(5, mix).node_range(2..=groundhog_sim::MAX_NODES)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let (nodes, seed) = (ctx.nodes(), ctx.seed());
    let quiet_from = Arc::new(Mutex::new(None::<Duration>));
    for n in 0..nodes {
        let world = world.clone();
        let quiet_from = quiet_from.clone();
        ctx.start_node(n, move |node| {
            let (world, quiet_from) = (world.clone(), quiet_from.clone());
            async move {
                let config = NodeConfig::cluster(n, node.incarnation(), nodes);
                let rt_node = Node::start(config).await.expect("the port is free");
                lock(&world)
                    .servers
                    .insert(n, workloads::echo_server(&rt_node));
                let mut rng =
                    rt::seeded_rng(seed, Stream::Extra(n * 1_000 + node.incarnation() as u32));
                rt_node.spawn("client", move |ctx: Ctx<()>| async move {
                    loop {
                        rt::sleep(Duration::from_millis(rng.gen_range(5..50))).await;
                        let peer = rng.gen_range(0..nodes);
                        let Some(server) = lock(&world).servers.get(&peer).copied() else {
                            continue;
                        };
                        let answer: Result<u64, _> =
                            ctx.call(server, 7, Duration::from_secs(2)).await;
                        let healed = quiet_from
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .is_some_and(|q| rt::elapsed() >= q);
                        if answer.is_ok() && healed {
                            lock(&world).ok_after_heal += 1;
                        }
                    }
                    #[allow(unreachable_code)]
                    ExitReason::Normal
                });
            }
        });
    }
    ctx.quiesce().await;
    *quiet_from.lock().unwrap_or_else(|e| e.into_inner()) = Some(ctx.now());
    rt::sleep(Duration::from_secs(2)).await;
    let ok = lock(&world).ok_after_heal;
    ctx.check("calls-succeed-after-heal", ok > 0, || {
        "no call succeeded after the heal".into()
    })
}
