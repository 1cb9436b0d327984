//! `lost-update`: clients increment a counter held by a server, over a network that loses,
//! delays and partitions, with nodes that crash. Invariant: the final count equals the number of
//! increments the clients saw acknowledged.
//!
//! Both variants use idempotent requests (a retried request gets its first answer back), so
//! neither double-applies under retries or client crashes; they differ in the write.
//! - `flawed`: read, then write `value + 1` blindly; two clients that read the same value both
//!   write the same result and one increment is lost.
//! - `fixed`: read, then compare-and-set from the value read; on conflict read again and retry.
//!
//! History: each increment is a counter `add(1)`, invoked when the client starts it and `ok`
//! when its write is acknowledged (a crash leaves it open: unknown), and the driver's final
//! read of the count is a `read`; the [`Counter`] linearizability check catches the flawed
//! variant alone (`Sim::checkers_only`), and the fixed one passes it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, Endpoint, Stream};
use groundhog_sim::checker::Counter;
use groundhog_sim::{
    BoxFuture, Ctx, FaultKind, FaultMix, History, NodeCtx, OpId, Scenario, Setup, Value, Violation,
};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::wire::{self, PORT};

const REQUEST: u64 = 1;
const RESPONSE: u64 = 2;
const SERVER: u32 = 0;
const INCREMENTS_PER_CLIENT: u32 = 5;
const RETRY_AFTER: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Request {
    Get { req: u64 },
    Put { req: u64, value: u64 },
    Cas { req: u64, expect: u64, value: u64 },
}

impl Request {
    fn id(self) -> u64 {
        match self {
            Request::Get { req } | Request::Put { req, .. } | Request::Cas { req, .. } => req,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Response {
    Value { req: u64, value: u64 },
    Done { req: u64, ok: bool },
}

impl Response {
    fn id(self) -> u64 {
        match self {
            Response::Value { req, .. } | Response::Done { req, .. } => req,
        }
    }
}

/// The server's durable state: the counter and the answer to every write it applied.
#[derive(Default)]
struct ServerDisk {
    value: u64,
    answered: BTreeMap<(u32, u64), Response>,
}

/// A client's durable state, so a restarted client finishes a write it had in flight.
#[derive(Default)]
struct ClientDisk {
    done: u32,
    next_req: u64,
    pending: Option<Request>,
    /// The history operation of the increment in flight.
    op: Option<OpId>,
}

#[derive(Default)]
struct World {
    server: ServerDisk,
    clients: BTreeMap<u32, ClientDisk>,
    acked: u64,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct LostUpdate;

impl Scenario for LostUpdate {
    fn name(&self) -> &'static str {
        "lost-update"
    }

    fn about(&self) -> &'static str {
        "clients read-modify-write a counter; the count must equal acknowledged increments"
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
        Setup::new(4, faults)
            .seed_budget(20)
            .node_range(2..=groundhog_sim::MAX_NODES)
    }

    fn run(&self, ctx: Ctx) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Ctx) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let cas = ctx.variant() == "fixed";
    let seed = ctx.seed();
    {
        let world = world.clone();
        ctx.start_node(SERVER, move |node| serve(node, world.clone()));
    }
    for c in 1..ctx.nodes() {
        let world = world.clone();
        let history = ctx.history();
        ctx.start_node(c, move |node| {
            client(node, world.clone(), history.clone(), seed, cas)
        });
    }
    ctx.quiesce().await;
    let clients = ctx.nodes().saturating_sub(1);
    let all_done = || {
        let w = lock(&world);
        (1..=clients).all(|c| {
            w.clients
                .get(&c)
                .is_some_and(|d| d.done == INCREMENTS_PER_CLIENT)
        })
    };
    let mut waited = Duration::ZERO;
    while !all_done() && waited < Duration::from_secs(30) {
        rt::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    ctx.check("clients-finish-after-heal", all_done(), || {
        "clients still incrementing 30 s after the quiet phase began".to_string()
    })?;
    let (value, acked) = {
        let w = lock(&world);
        (w.server.value, w.acked)
    };
    ctx.note(&format!("final value={value} acked={acked}"));
    ctx.history()
        .instant("driver", "counter", "read", Value::Nil, value);
    // The hand-written invariant first: its message is the short one a reader expects.
    ctx.check("count-equals-acked-increments", value == acked, || {
        format!("final count {value}, but {acked} increments were acknowledged")
    })?;
    ctx.check_linear("counter-history-linearizable", &Counter)
}

async fn serve(_node: NodeCtx, world: Shared) {
    let ep = wire::bind(SERVER, PORT).await;
    loop {
        let (request, from, port) = wire::recv::<Request>(&ep, SERVER, REQUEST).await;
        let response = {
            let mut w = lock(&world);
            let disk = &mut w.server;
            match request {
                Request::Get { req } => Response::Value {
                    req,
                    value: disk.value,
                },
                // The flaw under test: the write ignores what happened since the read.
                Request::Put { req, value } => disk.write_once(from, req, |_| Some(value)),
                Request::Cas { req, expect, value } => {
                    disk.write_once(from, req, |current| (current == expect).then_some(value))
                }
            }
        };
        wire::send(&ep, SERVER, from, port, RESPONSE, &response).await;
    }
}

impl ServerDisk {
    /// Applies write `req` of client `from` the first time it arrives (`decide` maps the current
    /// value to the new one, or `None` to refuse); a retry gets the first answer back.
    fn write_once(
        &mut self,
        from: u32,
        req: u64,
        decide: impl FnOnce(u64) -> Option<u64>,
    ) -> Response {
        if let Some(r) = self.answered.get(&(from, req)) {
            return *r;
        }
        let new = decide(self.value);
        if let Some(v) = new {
            self.value = v;
        }
        let r = Response::Done {
            req,
            ok: new.is_some(),
        };
        self.answered.insert((from, req), r);
        r
    }
}

/// Sends `request` until its response arrives (the network heals eventually).
async fn call(ep: &Endpoint, me: u32, request: Request) -> Response {
    loop {
        wire::send(ep, me, SERVER, PORT, REQUEST, &request).await;
        let wait = async {
            loop {
                let (r, _, _) = wire::recv::<Response>(ep, me, RESPONSE).await;
                if r.id() == request.id() {
                    return r;
                }
            }
        };
        if let Ok(r) = rt::timeout(RETRY_AFTER, wait).await {
            return r;
        }
    }
}

async fn client(node: NodeCtx, world: Shared, history: History, seed: u64, cas: bool) {
    let me = node.index();
    let ep = wire::bind(me, PORT).await;
    let mut rng = rt::seeded_rng(seed, Stream::Extra(me * 1_000 + node.incarnation() as u32));
    let fresh_id = |world: &Shared| {
        let mut w = lock(world);
        let disk = w.clients.entry(me).or_default();
        disk.next_req += 1;
        disk.next_req
    };
    loop {
        let (done, pending) = {
            let mut w = lock(&world);
            let disk = w.clients.entry(me).or_default();
            (disk.done, disk.pending)
        };
        if done >= INCREMENTS_PER_CLIENT {
            return;
        }
        let write = match pending {
            Some(w) => w,
            None => {
                rt::sleep(Duration::from_millis(rng.gen_range(0..50))).await;
                let open = lock(&world).clients.entry(me).or_default().op;
                if open.is_none() {
                    let op = history.invoke(format!("client{me}"), "counter", "add", 1i64);
                    lock(&world).clients.entry(me).or_default().op = Some(op);
                }
                let get = Request::Get {
                    req: fresh_id(&world),
                };
                let Response::Value { value, .. } = call(&ep, me, get).await else {
                    unreachable!("a Get is answered with a Value");
                };
                let req = fresh_id(&world);
                let write = if cas {
                    Request::Cas {
                        req,
                        expect: value,
                        value: value + 1,
                    }
                } else {
                    Request::Put {
                        req,
                        value: value + 1,
                    }
                };
                lock(&world).clients.entry(me).or_default().pending = Some(write);
                write
            }
        };
        let response = call(&ep, me, write).await;
        let mut w = lock(&world);
        let disk = w.clients.entry(me).or_default();
        disk.pending = None;
        if let Response::Done { ok: true, .. } = response {
            disk.done += 1;
            if let Some(op) = disk.op.take() {
                history.ok(op, Value::Nil);
            }
            w.acked += 1;
        }
    }
}
