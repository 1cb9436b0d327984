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
//! The server keeps the counter and its answers on its node's disk, and each client its progress
//! on its own ([`rt::Disk`], every write synced before the reply or the next request), so a
//! crashed and restarted node carries on from what it had made durable. A disk that fails (only
//! a plan file can ask for disk faults here) answers nothing: the clients' liveness check then
//! reports it.
//!
//! History: each increment is a counter `add(1)`, invoked when the client starts it and `ok`
//! when its write is acknowledged (a crash leaves it open: unknown), and the driver's final
//! read of the count is a `read`; the [`Counter`] linearizability check catches the flawed
//! variant alone (`Sim::checkers_only`), and the fixed one passes it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use groundhog_runtime::rt::{self, Disk, DiskError, Duration, Endpoint, Stream};
use groundhog_sim::checker::Counter;
use groundhog_sim::{
    BoxFuture, Driver, FaultKind, FaultMix, History, NodeCtx, OpId, Scenario, Setup, Value,
    Violation,
};
use rand::Rng;
use serde::de::DeserializeOwned;
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

/// The server's keyspace on its disk: `value` (the counter) and `answer/<client>/<req>` (the
/// answer to every write it applied).
const SERVER_DIR: &str = "lost-update.server";
/// A client's keyspace on its disk: `progress`, a [`ClientDisk`].
const CLIENT_DIR: &str = "lost-update.client";

/// A client's durable state, so a restarted client finishes a write it had in flight.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ClientDisk {
    done: u32,
    next_req: u64,
    pending: Option<Request>,
}

/// The scenario's view (the nodes' own state is on their disks).
#[derive(Default)]
struct World {
    /// Per client, the history operation of its increment in flight.
    ops: BTreeMap<u32, OpId>,
    /// Clients that finished all their increments.
    finished: BTreeMap<u32, u32>,
    acked: u64,
}

/// `key`'s value on `disk`, or the default when it was never written.
async fn load<T: DeserializeOwned + Default>(disk: &Disk, key: &str) -> Result<T, DiskError> {
    match disk.get(key).await? {
        None => Ok(T::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|_| DiskError::Corrupt {
            key: key.to_string(),
        }),
    }
}

/// Writes `value` under `key` and makes it durable.
async fn store<T: Serialize>(disk: &Disk, key: &str, value: &T) -> Result<(), DiskError> {
    let bytes = serde_json::to_vec(value).map_err(|e| DiskError::Io(e.to_string()))?;
    disk.put(key, &bytes).await?;
    disk.sync().await
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

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let cas = ctx.variant() == "fixed";
    let seed = ctx.seed();
    ctx.start_node(SERVER, serve);
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
        (1..=clients).all(|c| w.finished.get(&c) == Some(&INCREMENTS_PER_CLIENT))
    };
    let mut waited = Duration::ZERO;
    while !all_done() && waited < Duration::from_secs(30) {
        rt::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    ctx.check("clients-finish-after-heal", all_done(), || {
        "clients still incrementing 30 s after the quiet phase began".to_string()
    })?;
    // The count is what the server's disk holds, read on the server's node.
    let (tx, rx) = oneshot::channel();
    ctx.spawn_on(SERVER, async move {
        let value = match Disk::open(SERVER_DIR) {
            Ok(disk) => load::<u64>(&disk, "value").await,
            Err(e) => Err(e),
        };
        let _ = tx.send(value);
    });
    let value = match rx.await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => {
            return ctx.check("server-disk-readable", false, || {
                format!("the server's count cannot be read: {e}")
            })
        }
        Err(_) => {
            return ctx.check("server-disk-readable", false, || {
                "the server's node died before its count was read".to_string()
            })
        }
    };
    let acked = lock(&world).acked;
    ctx.note(&format!("final value={value} acked={acked}"));
    ctx.history()
        .instant("driver", "counter", "read", Value::Nil, value);
    // The hand-written invariant first: its message is the short one a reader expects.
    ctx.check("count-equals-acked-increments", value == acked, || {
        format!("final count {value}, but {acked} increments were acknowledged")
    })?;
    ctx.check_linear("counter-history-linearizable", &Counter)
}

async fn serve(_node: NodeCtx) {
    let ep = wire::bind(SERVER, PORT).await;
    let Ok(disk) = Disk::open(SERVER_DIR) else {
        return;
    };
    loop {
        let (request, from, port) = wire::recv::<Request>(&ep, SERVER, REQUEST).await;
        let response = match request {
            Request::Get { req } => load(&disk, "value")
                .await
                .map(|value| Response::Value { req, value }),
            // The flaw under test: the write ignores what happened since the read.
            Request::Put { req, value } => write_once(&disk, from, req, |_| Some(value)).await,
            Request::Cas { req, expect, value } => {
                write_once(&disk, from, req, |current| {
                    (current == expect).then_some(value)
                })
                .await
            }
        };
        // A failed disk answers nothing; the client retries.
        if let Ok(response) = response {
            wire::send(&ep, SERVER, from, port, RESPONSE, &response).await;
        }
    }
}

/// Applies write `req` of client `from` the first time it arrives (`decide` maps the current
/// value to the new one, or `None` to refuse); a retry gets the first answer back. The new value
/// and the answer are synced before the answer is sent.
async fn write_once(
    disk: &Disk,
    from: u32,
    req: u64,
    decide: impl FnOnce(u64) -> Option<u64>,
) -> Result<Response, DiskError> {
    let key = format!("answer/{from}/{req}");
    if let Some(r) = load::<Option<Response>>(disk, &key).await? {
        return Ok(r);
    }
    let new = decide(load(disk, "value").await?);
    if let Some(v) = new {
        disk.put("value", &serde_json::to_vec(&v).unwrap_or_default())
            .await?;
    }
    let r = Response::Done {
        req,
        ok: new.is_some(),
    };
    store(disk, &key, &Some(r)).await?;
    Ok(r)
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
    // A client whose disk fails stops: the clients' liveness check reports it.
    let Ok(disk) = Disk::open(CLIENT_DIR) else {
        return;
    };
    let Ok(mut state) = load::<ClientDisk>(&disk, "progress").await else {
        return;
    };
    loop {
        if state.done >= INCREMENTS_PER_CLIENT {
            lock(&world).finished.insert(me, state.done);
            return;
        }
        let write = match state.pending {
            Some(w) => w,
            None => {
                rt::sleep(Duration::from_millis(rng.gen_range(0..50))).await;
                lock(&world).ops.entry(me).or_insert_with(|| {
                    history.invoke(format!("client{me}"), "counter", "add", 1i64)
                });
                state.next_req += 1;
                let get = Request::Get {
                    req: state.next_req,
                };
                if store(&disk, "progress", &state).await.is_err() {
                    return;
                }
                let Response::Value { value, .. } = call(&ep, me, get).await else {
                    unreachable!("a Get is answered with a Value");
                };
                state.next_req += 1;
                let req = state.next_req;
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
                state.pending = Some(write);
                if store(&disk, "progress", &state).await.is_err() {
                    return;
                }
                write
            }
        };
        let response = call(&ep, me, write).await;
        state.pending = None;
        if let Response::Done { ok: true, .. } = response {
            state.done += 1;
        }
        if store(&disk, "progress", &state).await.is_err() {
            return;
        }
        if let Response::Done { ok: true, .. } = response {
            let mut w = lock(&world);
            if let Some(op) = w.ops.remove(&me) {
                history.ok(op, Value::Nil);
            }
            w.acked += 1;
        }
    }
}
