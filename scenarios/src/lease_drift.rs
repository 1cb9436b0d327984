//! `lease-drift`: a lock server (node 0) grants a lease of `LEASE` to one of two clients
//! (nodes 1 and 2) at a time; a client acts as the lease holder (writes to the resource) only
//! while it believes it holds the lease. Invariant: every act happens while the server's grant
//! to that client is current, in global time (one holder at a time, as the resource sees it),
//! and leases are granted and acted on again once faults stop.
//!
//! - `flawed`: the server's grant carries its expiry as a wall-clock stamp of the server's clock,
//!   and the client acts while its own wall clock reads earlier than the stamp. That is sound
//!   only while the two clocks agree: a client whose clock is stepped back or runs slow keeps
//!   acting after the server has granted the lease to the other client.
//! - `fixed`: the client trusts no remote time. It starts its own monotonic timer when it sends
//!   the request (before the server's grant, so network delay only shortens its belief) and acts
//!   for at most `HOLD`, a margin below `LEASE` covering the largest drift a plan may draw
//!   (20%: `HOLD / 0.8 < LEASE`). A step of the wall clock does not move a monotonic timer.
//!
//! Clock faults hit only the clients (the `clients` role): the server is the time authority.
//! With clock faults switched off (`--faults partition,set-latency,pause-node,crash-node`) the
//! flawed variant passes: the stamps then agree with global time.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use groundhog_runtime::rt::{self, Duration, Instant, Stream};
use groundhog_runtime::{CallError, Ctx, Event, ExitReason, Node, NodeConfig, Pid};
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, Scenario, Setup, Violation};
use rand::Rng;
use serde::{Deserialize, Serialize};

const SERVER: u32 = 0;
const CLIENTS: [u32; 2] = [1, 2];
const LEASE: Duration = Duration::from_millis(600);
/// The fixed client's own bound: `HOLD / 0.8 < LEASE` (a clock 20% slow still stops in time).
const HOLD: Duration = Duration::from_millis(450);
const ACT_EVERY: Duration = Duration::from_millis(20);
const CALL_TIMEOUT: Duration = Duration::from_millis(200);
const FAULT_WINDOW_MS: u64 = 4_000;

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Acquire { client: u32 },
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Granted { token: u64, expires_at: SystemTime },
    Busy,
}

/// The scenario's view of the system, in global time (the resource's check of every act; the
/// server's lease lives in its process, whose node is never crashed here).
#[derive(Default)]
struct World {
    server: Option<Pid>,
    /// The server's current grant: (client, token, expiry in global time).
    grant: Option<(u32, u64, Duration)>,
    acts: u64,
    /// The first act outside the actor's current grant.
    stale: Option<String>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct LeaseDrift;

impl Scenario for LeaseDrift {
    fn name(&self) -> &'static str {
        "lease-drift"
    }

    fn about(&self) -> &'static str {
        "a lease holder must not trust its own clock against a remote expiry stamp"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let clients = &["clients"];
        let faults = FaultMix::new(
            vec![
                FaultKind::ClockSkew,
                FaultKind::ClockDrift,
                FaultKind::Partition,
                FaultKind::SetLatency,
                FaultKind::PauseNode,
                FaultKind::CrashNode,
            ],
            0.5,
            FAULT_WINDOW_MS,
        )
        .role("server", [SERVER])
        .role("clients", CLIENTS)
        .aim(FaultKind::ClockSkew, clients)
        .aim(FaultKind::ClockDrift, clients)
        .aim(FaultKind::PauseNode, clients)
        .aim(FaultKind::CrashNode, clients);
        Setup::new(3, faults)
            .net(rt::NetConfig {
                loss: 0.0,
                latency: Duration::from_millis(1)..Duration::from_millis(10),
            })
            .seed_budget(30)
            .coverage("fixed", &["handover"])
            .coverage("flawed", &["handover"])
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let fixed = ctx.variant() == "fixed";
    let seed = ctx.seed();
    // A coverage counter, the scenario's own: not the server's state.
    let handovers = Arc::new(Mutex::new(0u64));
    for n in [SERVER, CLIENTS[0], CLIENTS[1]] {
        let world = world.clone();
        let handovers = handovers.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            let handovers = handovers.clone();
            async move {
                let config = NodeConfig::cluster(n, node.incarnation(), 3);
                let rt_node = Node::start(config).await.expect("the port is free");
                if n == SERVER {
                    let w = world.clone();
                    let pid = rt_node.spawn("lock-server", move |c| server(c, w, handovers));
                    lock(&world).server = Some(pid);
                } else {
                    let rng = rt::seeded_rng(seed ^ node.incarnation(), Stream::Extra(n));
                    rt_node.spawn("client", move |c| client(c, world, n, fixed, rng));
                }
            }
        });
    }
    let check = || {
        let w = lock(&world);
        ctx.check("one-holder-at-a-time", w.stale.is_none(), || {
            w.stale.clone().unwrap_or_default()
        })
    };
    ctx.checking(Duration::from_millis(50), check, ctx.quiesce())
        .await?;
    let before = lock(&world).acts;
    rt::sleep(Duration::from_secs(2)).await;
    check()?;
    ctx.sometimes(
        "handover",
        *handovers.lock().unwrap_or_else(|e| e.into_inner()) > 0,
    );
    let w = lock(&world);
    ctx.check("leases-used-after-heal", w.acts > before, || {
        "no client acted under a lease in the two seconds after faults stopped".into()
    })
}

/// Node 0: grants the lease when it is free or expired on the server's own clock.
async fn server(mut ctx: Ctx<Request>, world: Shared, handovers: Arc<Mutex<u64>>) -> ExitReason {
    let mut held: Option<(u32, Instant)> = None;
    let mut token = 0;
    loop {
        let Event::Call { msg, reply, .. } = ctx.recv().await else {
            continue;
        };
        let Request::Acquire { client } = msg;
        let now = Instant::now();
        let free = held.is_none_or(|(_, until)| now >= until);
        if !free {
            reply.reply(Reply::Busy);
            continue;
        }
        if held.is_some_and(|(c, _)| c != client) {
            *handovers.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        }
        token += 1;
        held = Some((client, now + LEASE));
        lock(&world).grant = Some((client, token, rt::elapsed() + LEASE));
        reply.reply(Reply::Granted {
            token,
            expires_at: rt::system_time() + LEASE,
        });
    }
}

/// Nodes 1 and 2: acquire the lease, act while holding it, then wait a little and try again.
async fn client(
    ctx: Ctx<Request>,
    world: Shared,
    me: u32,
    fixed: bool,
    mut rng: rt::ChaCha8Rng,
) -> ExitReason {
    loop {
        rt::sleep(Duration::from_millis(rng.gen_range(5..60))).await;
        let Some(server) = lock(&world).server else {
            continue;
        };
        let asked = Instant::now();
        let reply: Result<Reply, CallError> = ctx
            .call(server, Request::Acquire { client: me }, CALL_TIMEOUT)
            .await;
        let Ok(Reply::Granted { token, expires_at }) = reply else {
            continue;
        };
        loop {
            let holds = if fixed {
                asked.elapsed() < HOLD
            } else {
                rt::system_time() < expires_at
            };
            if !holds {
                break;
            }
            act(&world, me, token);
            rt::sleep(ACT_EVERY).await;
        }
    }
}

/// The resource's view of one act: it must fall within the actor's current grant.
fn act(world: &Shared, me: u32, token: u64) {
    let now = rt::elapsed();
    let mut w = lock(world);
    w.acts += 1;
    let current = matches!(w.grant, Some((c, t, until)) if c == me && t == token && now < until);
    if !current && w.stale.is_none() {
        w.stale = Some(format!(
            "client {me} acted with token {token} at {now:?}, outside its grant (the server's \
             current grant: {})",
            match w.grant {
                Some((c, t, until)) => format!("client {c}, token {t}, until {until:?}"),
                None => "none".to_string(),
            }
        ));
    }
}
