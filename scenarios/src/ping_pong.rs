//! `ping-pong`: nodes ping each other over a lossy, partitioned network and retransmit until
//! answered. Invariant: what a node acknowledged was delivered, and delivered once.
//!
//! - `fixed`: the receiver keeps the set of pings it has delivered on its node's disk
//!   ([`rt::Disk`], synced before it delivers), so it answers a retransmission, also one that
//!   reaches it after a crash and restart, without delivering it again.
//! - `flawed`: the receiver delivers whatever arrives, so a lost pong (or a slow one) turns the
//!   sender's retransmission into a second delivery.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use groundhog_runtime::rt::{self, Disk, Duration, Endpoint, Stream};
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, NodeCtx, Scenario, Setup, Violation};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::wire::{self, PORT};

const PING: u64 = 1;
const PONG: u64 = 2;
const PROBE_PORT: u16 = 7001;
const PINGS_PER_NODE: u64 = 20;
const RETRY_AFTER: Duration = Duration::from_millis(60);
const MAX_TRIES: u32 = 20;

#[derive(Debug, Serialize, Deserialize)]
struct Ping {
    id: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Pong {
    id: u64,
}

/// The receiver's keyspace on its node's disk: one key per delivered ping, `from/id`.
const SEEN: &str = "ping-pong.seen";

/// The oracle's record of the run (the scenario's global view; what a node remembers across a
/// crash is on its disk).
#[derive(Default)]
struct World {
    /// Each node's deliveries, in order (the application's effects, as the oracle sees them).
    delivered: BTreeMap<u32, Vec<(u32, u64)>>,
    /// `(sender, receiver, id)` for every ping whose pong the sender received.
    acked: Vec<(u32, u32, u64)>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct PingPong;

impl Scenario for PingPong {
    fn name(&self) -> &'static str {
        "ping-pong"
    }

    fn about(&self) -> &'static str {
        "pings retransmitted over a lossy, partitioned network; acknowledged means delivered once"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![
                FaultKind::Partition,
                FaultKind::ClogLink,
                FaultKind::SetLoss,
                FaultKind::SetLatency,
                FaultKind::CrashNode,
                FaultKind::PauseNode,
            ],
            0.5,
            3_000,
        );
        Setup::new(3, faults)
            .net(rt::NetConfig {
                loss: 0.02,
                latency: Duration::from_millis(1)..Duration::from_millis(20),
            })
            .seed_budget(20)
            .node_range(2..=groundhog_sim::MAX_NODES)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let dedup = ctx.variant() == "fixed";
    let nodes = ctx.nodes();
    for n in 0..nodes {
        let world = world.clone();
        let seed = ctx.seed();
        ctx.start_node(n, move |node| {
            node_main(node, world.clone(), seed, nodes, dedup)
        });
    }
    // Safety is checked as the run goes, every half second of simulated time.
    let deadline = Duration::from_millis(3_000);
    while ctx.now() < deadline {
        rt::sleep(Duration::from_millis(500)).await;
        check_safety(&ctx, &world)?;
    }
    ctx.quiesce().await;
    check_safety(&ctx, &world)?;
    // Liveness: once healed, every node reaches every other node.
    let mut answers = Vec::new();
    for n in 0..nodes {
        let (tx, rx) = oneshot::channel();
        ctx.spawn_on(n, probe(n, nodes, tx));
        answers.push((n, rx));
    }
    for (n, rx) in answers {
        let answer = rt::timeout(Duration::from_secs(5), rx).await;
        let problem = match answer {
            Ok(Ok(unreached)) if unreached.is_empty() => None,
            Ok(Ok(unreached)) => Some(format!("could not reach nodes {unreached:?}")),
            Ok(Err(_)) => Some("died before it finished probing".to_string()),
            Err(_) => Some("did not finish probing within 5 s".to_string()),
        };
        ctx.check("healed-nodes-reach-each-other", problem.is_none(), || {
            format!(
                "after the quiet phase node {n} {}",
                problem.clone().unwrap_or_default()
            )
        })?;
    }
    check_safety(&ctx, &world)
}

fn check_safety(ctx: &Driver, world: &Shared) -> Result<(), Violation> {
    let w = lock(world);
    let mut twice = None;
    for (receiver, delivered) in &w.delivered {
        let mut counts: BTreeMap<(u32, u64), u32> = BTreeMap::new();
        for d in delivered {
            *counts.entry(*d).or_default() += 1;
        }
        if let Some(((sender, id), c)) = counts.into_iter().find(|(_, c)| *c > 1) {
            twice = Some(format!(
                "node {receiver} delivered ping {id} from node {sender} {c} times"
            ));
            break;
        }
    }
    ctx.check("delivered-once", twice.is_none(), || {
        twice.clone().unwrap_or_default()
    })?;
    let lost = w.acked.iter().find(|(sender, receiver, id)| {
        !w.delivered
            .get(receiver)
            .is_some_and(|d| d.contains(&(*sender, *id)))
    });
    ctx.check("acked-was-delivered", lost.is_none(), || {
        format!("acknowledged ping never delivered: {lost:?}")
    })
}

async fn node_main(node: NodeCtx, world: Shared, seed: u64, nodes: u32, dedup: bool) {
    let me = node.index();
    let ep = Arc::new(wire::bind(me, PORT).await);
    node.spawn_process("server", serve(ep.clone(), me, world.clone(), dedup));
    let rng = rt::seeded_rng(seed, Stream::Extra(me * 1_000 + node.incarnation() as u32));
    node.spawn_process(
        "client",
        client(ep, me, nodes, node.incarnation(), world, rng),
    );
}

async fn serve(ep: Arc<Endpoint>, me: u32, world: Shared, dedup: bool) {
    let disk = Disk::open(SEEN).ok();
    loop {
        let (Ping { id }, from, port) = wire::recv::<Ping>(&ep, me, PING).await;
        let deliver = match (&disk, dedup) {
            (_, false) => Some(true),
            (Some(disk), true) => first_delivery(disk, from, id).await,
            (None, true) => None,
        };
        // A disk that cannot say (or record) whether the ping was delivered answers nothing:
        // the sender retries, and the run's liveness check reports a receiver that never does.
        let Some(deliver) = deliver else {
            continue;
        };
        if deliver {
            lock(&world)
                .delivered
                .entry(me)
                .or_default()
                .push((from, id));
        }
        wire::send(&ep, me, from, port, PONG, &Pong { id }).await;
    }
}

/// Whether ping `id` from `from` is new to this node's disk; a new one is recorded (and synced)
/// before it is delivered. `None` when the disk fails.
async fn first_delivery(disk: &Disk, from: u32, id: u64) -> Option<bool> {
    let key = format!("{from}/{id}");
    if disk.get(&key).await.ok()?.is_some() {
        return Some(false);
    }
    disk.put(&key, &[]).await.ok()?;
    disk.sync().await.ok()?;
    Some(true)
}

/// Sends `id` to `to` until a matching pong arrives or the tries run out.
async fn ping_until_answered(ep: &Endpoint, me: u32, to: u32, id: u64) -> bool {
    for _ in 0..MAX_TRIES {
        wire::send(ep, me, to, PORT, PING, &Ping { id }).await;
        let wait = async {
            loop {
                let (Pong { id: got }, _, _) = wire::recv::<Pong>(ep, me, PONG).await;
                if got == id {
                    return;
                }
            }
        };
        if rt::timeout(RETRY_AFTER, wait).await.is_ok() {
            return true;
        }
    }
    false
}

async fn client(
    ep: Arc<Endpoint>,
    me: u32,
    nodes: u32,
    incarnation: u64,
    world: Shared,
    mut rng: rt::ChaCha8Rng,
) {
    if nodes < 2 {
        return;
    }
    for k in 0..PINGS_PER_NODE {
        rt::sleep(Duration::from_millis(rng.gen_range(0..100))).await;
        let to = (me + rng.gen_range(1..nodes)) % nodes;
        let id = (incarnation << 32) | k;
        if ping_until_answered(&ep, me, to, id).await {
            lock(&world).acked.push((me, to, id));
        }
    }
}

/// After the quiet phase: pings every other node from a fresh port; reports who did not answer.
async fn probe(me: u32, nodes: u32, done: oneshot::Sender<Vec<u32>>) {
    let ep = wire::bind(me, PROBE_PORT).await;
    let mut unreached = Vec::new();
    for (k, to) in (0..nodes).filter(|&n| n != me).enumerate() {
        let id = (u64::from(u32::MAX) << 32) | k as u64;
        if !ping_until_answered(&ep, me, to, id).await {
            unreached.push(to);
        }
    }
    let _ = done.send(unreached);
}
