//! `unfenced-lock`: clients on three nodes take a lease lock (`coord::lease`, the service on
//! node 0) and, while they believe they hold it, write to a resource on node 1. Between the
//! check "my lease is valid" and the write a client may stall (a long pause, a slow disk) for
//! longer than the lease, so its write can arrive after the lease ran out and a newer holder
//! wrote. Invariant (as the run goes): the resource never accepts a write from a holder older
//! than one whose write it already accepted; after the quiet phase a new holder's write is
//! accepted.
//!
//! - `flawed`: the resource trusts the lock: it accepts every write (the token travels with
//!   the write but is not checked), so a stale holder overwrites a newer one.
//! - `fixed`: the resource is a `FencedResource`: a write with a token older than the newest
//!   it accepted is refused with `StaleToken`, and the stale holder is told.
//!
//! History: every write to the resource is a `write` of its token to a [`Fence`] (`ok` when
//! accepted, `fail` when refused or unsent, `unknown` on a timeout), one process per client
//! incarnation. The flawed resource accepting a stale holder's token after a newer one was
//! acknowledged fails `writes-fenced` with the hand-written invariant switched off (a stale write
//! concurrent with the newer one may have gone first, and is not caught by it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use groundhog_runtime::coord::lease::{self, Config, FencedResource, LeaseStore, StaleToken};
use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy};
use groundhog_runtime::{CallError, Ctx, Event, ExitReason, Node, Pid};
use groundhog_sim::checker::Fence;
use groundhog_sim::{
    BoxFuture, Driver, FaultKind, FaultMix, History, Scenario, Setup, Value, Violation,
};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::consensus_spawn::{lock, start_runtime};

const LEASE: Duration = Duration::from_millis(200);
const CALL: Duration = Duration::from_millis(500);
const SERVICE: u32 = 0;
const RESOURCE: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Write {
    token: u64,
}

#[derive(Default)]
struct World {
    store: LeaseStore,
    service: Option<Pid>,
    resource: Option<Pid>,
    /// The resource's data (kept outside node 1, as on its disk): the tokens of the writes
    /// it accepted, in order.
    accepted: Vec<u64>,
    /// Fixed only: the resource's guard.
    fence: FencedResource<()>,
    nodes: BTreeMap<u32, Node>,
    quiet: bool,
}

type Shared = Arc<Mutex<World>>;

pub struct UnfencedLock;

impl Scenario for UnfencedLock {
    fn name(&self) -> &'static str {
        "unfenced-lock"
    }

    fn about(&self) -> &'static str {
        "a lock used without its fencing token lets a stalled holder overwrite a newer one"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![
                FaultKind::Partition,
                FaultKind::CrashNode,
                FaultKind::PauseNode,
                FaultKind::ClogLink,
                FaultKind::SetLatency,
            ],
            0.5,
            3_000,
        );
        Setup::new(3, faults)
            .net(rt::NetConfig {
                loss: 0.01,
                latency: Duration::from_millis(2)..Duration::from_millis(20),
            })
            .seed_budget(20)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn resource(mut ctx: Ctx<Write>, world: Shared, fenced: bool) -> ExitReason {
    loop {
        if let Event::Call { msg, reply, .. } = ctx.recv().await {
            let mut w = lock(&world);
            let answer: Result<(), StaleToken> = if fenced {
                w.fence.write(msg.token, |_| ())
            } else {
                // Trusts whoever writes: the token is recorded, not checked.
                Ok(())
            };
            if answer.is_ok() {
                w.accepted.push(msg.token);
            }
            drop(w);
            reply.reply(answer);
        }
    }
}

/// One write of `token` to the resource, recorded in the history as process `me`.
async fn write(
    ctx: &Ctx<()>,
    resource: Pid,
    token: u64,
    history: &History,
    me: &str,
) -> Result<Result<(), StaleToken>, CallError> {
    let op = history.invoke(me, "resource", "write", token);
    let answer = ctx.call(resource, Write { token }, CALL).await;
    match &answer {
        Ok(Ok(())) => history.ok(op, Value::Nil),
        Ok(Err(_)) | Err(CallError::NoProc | CallError::NotSent(_)) => history.fail(op),
        Err(_) => history.unknown(op),
    }
    answer
}

async fn client(
    ctx: Ctx<()>,
    world: Shared,
    mut rng: rt::ChaCha8Rng,
    history: History,
    me: String,
) -> ExitReason {
    loop {
        rt::sleep(Duration::from_millis(rng.gen_range(10..150))).await;
        let (service, resource) = {
            let w = lock(&world);
            if w.quiet {
                return ExitReason::Normal;
            }
            (w.service, w.resource)
        };
        let (Some(service), Some(resource)) = (service, resource) else {
            continue;
        };
        let Ok(held) = lease::acquire(&ctx, service, LEASE, CALL).await else {
            continue;
        };
        for _ in 0..rng.gen_range(1..4) {
            rt::sleep(Duration::from_millis(rng.gen_range(0..100))).await;
            if !held.is_valid() {
                break;
            }
            // The stall between the check and the write.
            if rng.gen_bool(0.3) {
                rt::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
            }
            let answer = write(&ctx, resource, held.token, &history, &me).await;
            if let Ok(Err(stale)) = answer {
                let why = stale.to_string();
                groundhog_runtime::event!("note", node = ctx.pid().node, msg = why.as_str());
                break;
            }
        }
        if rng.gen_bool(0.5) {
            // Refused if it ran out meanwhile: the holder learns it lost the lease.
            if let Err(e) = lease::release(&ctx, service, held, CALL).await {
                let why = e.to_string();
                groundhog_runtime::event!("note", node = ctx.pid().node, msg = why.as_str());
            }
        }
    }
}

fn check(ctx: &Driver, w: &World) -> Result<(), Violation> {
    let tokens = &w.accepted;
    let back = tokens.windows(2).position(|p| p[1] < p[0]);
    ctx.check("no-stale-write", back.is_none(), || {
        let i = back.unwrap();
        format!(
            "a write of token {} was accepted after one of token {}: a stale holder overwrote a newer one",
            tokens[i + 1],
            tokens[i]
        )
    })
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let (nodes, seed) = (ctx.nodes(), ctx.seed());
    let fenced = ctx.variant() == "fixed";
    for n in 0..nodes {
        let world = world.clone();
        let history = ctx.history();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            let history = history.clone();
            async move {
                let inc = node.incarnation();
                let rt_node = start_runtime(n, inc, nodes).await;
                lock(&world).nodes.insert(n, rt_node.clone());
                if n == SERVICE {
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
                if n == RESOURCE {
                    let w = world.clone();
                    let pid = rt_node.spawn("resource", move |ctx| resource(ctx, w, fenced));
                    lock(&world).resource = Some(pid);
                }
                let w = world.clone();
                let rng = rt::seeded_rng(seed, Stream::Extra(3_100 + n * 100 + inc as u32));
                let (history, me) = (history.clone(), format!("client-{n}-{inc}"));
                rt_node.spawn("client", move |ctx: Ctx<()>| {
                    client(ctx, w, rng, history, me)
                });
            }
        });
    }
    let every = Duration::from_millis(50);
    ctx.checking(every, || check(&ctx, &lock(&world)), ctx.quiesce())
        .await?;
    lock(&world).quiet = true;
    // Liveness: a new holder (once the last lease ran out) writes.
    let (node, service, resource) = {
        let w = lock(&world);
        (w.nodes[&2].clone(), w.service, w.resource)
    };
    let (service, resource) = (service.expect("started"), resource.expect("started"));
    let (tx, rx) = futures::channel::oneshot::channel();
    let history = ctx.history();
    node.spawn("probe", move |ctx: Ctx<()>| async move {
        let mut outcome = String::from("never acquired");
        for _ in 0..20 {
            match lease::acquire(&ctx, service, LEASE, CALL).await {
                Ok(held) => {
                    let r = write(&ctx, resource, held.token, &history, "probe").await;
                    outcome = format!("{r:?}");
                    break;
                }
                Err(e) => {
                    outcome = format!("never acquired: {e}");
                    rt::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let _ = tx.send(outcome);
        ExitReason::Normal
    });
    let outcome = rx.await.ok();
    ctx.check(
        "a-holder-writes-after-the-quiet-phase",
        outcome.as_deref() == Some("Ok(Ok(()))"),
        || format!("after the quiet phase a new holder got {outcome:?}"),
    )?;
    check(&ctx, &lock(&world))?;
    ctx.check_linear("writes-fenced", &Fence)
}
