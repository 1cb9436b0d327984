//! The lease lock (`coord::lease`) with a fenced resource, under generated plans of
//! partitions, clogged links, pauses (the stalled holder), crashes and latency. The lock
//! service runs on node 0, the resource on node 1 (its data kept outside the node, as on a
//! disk), clients on every node: acquire a 300 ms lease, write a few times while they believe
//! they hold it (each write after a stall of up to 250 ms following the check, which can
//! outlast the lease), release or let it run out.
//!
//! Checked as the run goes: every token was granted once (tokens only increase); the writes
//! the resource accepted carry non-decreasing tokens (no write with a stale token accepted,
//! so no two holders' writes interleave). After the quiet phase: a client acquires the lock
//! and its write is accepted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use groundhog_runtime::coord::lease::{self, Config, FencedResource, LeaseStore, StaleToken};
use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy};
use groundhog_runtime::{Ctx, Event, ExitReason, Pid};
use groundhog_sim::{BoxFuture, Check, Driver, Scenario, Setup, Violation};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{in_process, lock, start_node};

const LEASE: Duration = Duration::from_millis(300);
const CALL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Write {
    token: u64,
    by: Pid,
}

#[derive(Default)]
struct World {
    store: LeaseStore,
    service: Option<Pid>,
    resource: Option<Pid>,
    data: FencedResource<Vec<u64>>,
    /// Who was granted each token.
    granted: BTreeMap<u64, Pid>,
    twice: Option<u64>,
    nodes: BTreeMap<u32, groundhog_runtime::Node>,
    quiet: bool,
}

type Shared = Arc<Mutex<World>>;

struct Fencing;

impl Scenario for Fencing {
    fn name(&self) -> &'static str {
        "coord-lease"
    }

    fn about(&self) -> &'static str {
        "a fenced resource never accepts a stale holder's write"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["faults"]
    }

    fn setup(&self) -> Setup {
        super::consensus::setup().node_range(3..=3)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

/// The resource: the fenced data lives in the world (it survives node 1's crash).
async fn resource(mut ctx: Ctx<Write>, world: Shared) -> ExitReason {
    loop {
        if let Event::Call { msg, reply, .. } = ctx.recv().await {
            let answer: Result<(), StaleToken> =
                lock(&world).data.write(msg.token, |v| v.push(msg.token));
            reply.reply(answer);
        }
    }
}

async fn client(ctx: Ctx<()>, world: Shared, mut rng: rt::ChaCha8Rng) {
    loop {
        rt::sleep(Duration::from_millis(rng.gen_range(10..200))).await;
        let (service, resource) = {
            let w = lock(&world);
            if w.quiet {
                return;
            }
            (w.service, w.resource)
        };
        let (Some(service), Some(resource)) = (service, resource) else {
            continue;
        };
        let Ok(held) = lease::acquire(&ctx, service, LEASE, CALL).await else {
            continue;
        };
        {
            let mut w = lock(&world);
            if w.granted.insert(held.token, ctx.pid()).is_some() {
                w.twice = Some(held.token);
            }
        }
        for _ in 0..rng.gen_range(1..4) {
            rt::sleep(Duration::from_millis(rng.gen_range(0..200))).await;
            if !held.is_valid() {
                break;
            }
            // A stall between the check and the write (a long pause, a slow disk): the write
            // may go out after the lease ran out. Only the token stops it.
            rt::sleep(Duration::from_millis(rng.gen_range(0..250))).await;
            let write = Write {
                token: held.token,
                by: ctx.pid(),
            };
            let _: Result<Result<(), StaleToken>, _> = ctx.call(resource, write, CALL).await;
        }
        if rng.gen_bool(0.5) {
            // Refused if it ran out meanwhile: the holder learns it lost the lease.
            let _ = lease::release(&ctx, service, held, CALL).await;
        }
    }
}

fn check(ctx: &Driver, w: &World) -> Result<(), Violation> {
    ctx.check("one-grant-per-token", w.twice.is_none(), || {
        format!("token {:?} was granted twice", w.twice)
    })?;
    let tokens = w.data.get();
    let back = tokens.windows(2).position(|p| p[1] < p[0]);
    ctx.check("fenced-writes-in-token-order", back.is_none(), || {
        let i = back.unwrap();
        format!(
            "write {} with token {} was accepted after one with token {}",
            i + 1,
            tokens[i + 1],
            tokens[i]
        )
    })
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let (nodes, seed) = (ctx.nodes(), ctx.seed());
    for n in 0..nodes {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let rt_node = start_node(&node, nodes).await;
                lock(&world).nodes.insert(n, rt_node.clone());
                if n == 0 {
                    let store = lock(&world).store.clone();
                    let w = world.clone();
                    let child = ChildSpec::new("locks", move |node, sup| {
                        let (store, w) = (store.clone(), w.clone());
                        async move {
                            let pid =
                                lease::start(&node, Some(sup), Config::new("locks"), store).await?;
                            lock(&w).service = Some(pid);
                            Ok(pid)
                        }
                    });
                    let spec = Spec::new(Strategy::OneForOne).child(child);
                    supervisor::start(&rt_node, "coord-sup", None, spec)
                        .await
                        .expect("the lock service starts");
                }
                if n == 1 {
                    let w = world.clone();
                    let pid = rt_node.spawn("resource", move |ctx| resource(ctx, w));
                    lock(&world).resource = Some(pid);
                }
                let w = world.clone();
                let rng = rt::seeded_rng(
                    seed,
                    Stream::Extra(7_100 + n * 100 + node.incarnation() as u32),
                );
                rt_node.spawn("client", move |ctx: Ctx<()>| async move {
                    client(ctx, w, rng).await;
                    ExitReason::Normal
                });
            }
        });
    }
    let every = Duration::from_millis(50);
    ctx.checking(every, || check(&ctx, &lock(&world)), ctx.quiesce())
        .await?;
    ctx.checking(
        every,
        || check(&ctx, &lock(&world)),
        rt::sleep(Duration::from_secs(1)),
    )
    .await?;
    lock(&world).quiet = true;
    // Liveness: a new client gets the lock (once the last lease ran out) and writes.
    let (node, service, resource) = {
        let w = lock(&world);
        (w.nodes[&2].clone(), w.service, w.resource)
    };
    let (service, resource) = (service.expect("started"), resource.expect("started"));
    let outcome = in_process(&node, move |ctx| async move {
        for _ in 0..20 {
            match lease::acquire(&ctx, service, LEASE, CALL).await {
                Ok(held) => {
                    let write = Write {
                        token: held.token,
                        by: ctx.pid(),
                    };
                    let r: Result<Result<(), StaleToken>, _> =
                        ctx.call(resource, write, CALL).await;
                    return format!("{r:?}");
                }
                Err(_) => rt::sleep(Duration::from_millis(100)).await,
            }
        }
        format!(
            "never acquired: {:?}",
            lease::acquire(&ctx, service, LEASE, CALL).await
        )
    })
    .await;
    ctx.check(
        "a-holder-writes-after-the-quiet-phase",
        outcome.as_deref() == Some("Ok(Ok(()))"),
        || format!("after the quiet phase a new client got {outcome:?}"),
    )?;
    let w = lock(&world);
    check(&ctx, &w)
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_fenced_resource_never_accepts_a_stale_write_under_faults() {
    Check::new(&Fencing)
        .variant("faults")
        .seeds(super::cases(8))
        .run();
}
