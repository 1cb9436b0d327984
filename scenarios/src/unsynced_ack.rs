//! `unsynced-ack`: a storage server (node 0) keeps a client's writes on its disk
//! ([`rt::Disk`]); the client (node 1) records every write the server acknowledged. Invariant:
//! once faults stop, every acknowledged write is on the server's disk, crash or no crash
//! (acknowledged means durable), and writes are acknowledged again after the heal.
//!
//! - `flawed`: the server acknowledges a write as soon as it is buffered, and syncs on a timer
//!   (group commit without waiting for the commit): a crash between the acknowledgement and the
//!   next sync loses writes the client was told were stored.
//! - `fixed`: the server syncs before it acknowledges; a write the disk refuses (`disk-full`) is
//!   answered with an error, never an acknowledgement.
//!
//! History: each write is a `write` of its own key in a [`Map`], recorded by the client: `ok`
//! when acknowledged, `fail` when it certainly did not happen (the disk refused the put, or the
//! request reached no server: `NoProc`, `NotSent`), `unknown` when it may have (a timeout, the
//! server's node down, a failed sync that leaves the write buffered, a call still open at the
//! end). After the heal the driver reads every written key from the server's disk as a `read`.
//! An acknowledged write that a crash lost reads `nil` after its `ok`: the flawed variant fails
//! `disk-history-linearizable` with the hand-written invariant switched off.
//!
//! The disk lives in the simulated world, so `crash-node` loses exactly the unsynced writes.
//! Only the server is crashed (the `store` role). With `crash-node` switched off
//! (`--faults disk-stall,disk-full,set-latency,partition`) the flawed variant passes: nothing
//! else loses a buffered write.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use groundhog_runtime::rt::{self, Disk, DiskError, Duration};
use groundhog_runtime::{CallError, Ctx, Event, ExitReason, Node, NodeConfig, Pid};
use groundhog_sim::checker::Map;
use groundhog_sim::{
    BoxFuture, Driver, FaultKind, FaultMix, History, Scenario, Setup, Value, Violation,
};
use serde::{Deserialize, Serialize};

const SERVER: u32 = 0;
const CLIENT: u32 = 1;
const DIR: &str = "store";
const SYNC_EVERY: Duration = Duration::from_millis(150);
const WRITE_EVERY: Duration = Duration::from_millis(30);
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
const FAULT_WINDOW_MS: u64 = 3_000;

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Write { key: String, value: u64 },
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Ack,
    /// The disk refused the write: it was not made.
    Refused(String),
    /// The write is buffered but its sync failed: a later sync may still make it durable.
    Unsynced(String),
}

/// The scenario's view: the server's pid and what the client was told is stored.
#[derive(Default)]
struct World {
    server: Option<Pid>,
    acked: BTreeMap<String, u64>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct UnsyncedAck;

impl Scenario for UnsyncedAck {
    fn name(&self) -> &'static str {
        "unsynced-ack"
    }

    fn about(&self) -> &'static str {
        "a write acknowledged before its sync is lost by a crash"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![
                FaultKind::CrashNode,
                FaultKind::DiskStall,
                FaultKind::DiskFull,
                FaultKind::SetLatency,
                FaultKind::Partition,
            ],
            0.5,
            FAULT_WINDOW_MS,
        )
        .role("store", [SERVER])
        .role("client", [CLIENT])
        .aim(FaultKind::CrashNode, &["store"])
        .aim(FaultKind::DiskStall, &["store"])
        .aim(FaultKind::DiskFull, &["store"]);
        Setup::new(2, faults)
            .net(rt::NetConfig {
                loss: 0.0,
                latency: Duration::from_millis(1)..Duration::from_millis(5),
            })
            .seed_budget(30)
            .coverage("fixed", &["write-refused"])
            .coverage("flawed", &["acked-unsynced-at-crash"])
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let fixed = ctx.variant() == "fixed";
    // A coverage counter, the scenario's own; the server's data is on its disk.
    let refused = Arc::new(Mutex::new(0u64));
    for n in [SERVER, CLIENT] {
        let world = world.clone();
        let refused = refused.clone();
        let history = ctx.history();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            let refused = refused.clone();
            let history = history.clone();
            async move {
                let config = NodeConfig::cluster(n, node.incarnation(), 2);
                let rt_node = Node::start(config).await.expect("the port is free");
                if n == SERVER {
                    let pid = rt_node.spawn("store", move |c| server(c, fixed, refused));
                    lock(&world).server = Some(pid);
                } else {
                    rt_node.spawn("client", move |c| client(c, world, history));
                }
            }
        });
    }
    ctx.quiesce().await;
    let before = lock(&world).acked.len();
    rt::sleep(Duration::from_secs(1)).await;
    let acked = lock(&world).acked.clone();
    ctx.sometimes(
        "write-refused",
        *refused.lock().unwrap_or_else(|e| e.into_inner()) > 0,
    );
    // Read every key written from the server's disk, on the server's node, as its next
    // incarnation would. The client is still writing: each read is recorded around the disk
    // access itself.
    let history = ctx.history();
    let written: Vec<String> = history
        .ops()
        .into_iter()
        .filter(|op| op.f == "write")
        .map(|op| op.key)
        .collect();
    let (tx, rx) = oneshot::channel();
    ctx.spawn_on(SERVER, async move {
        let Ok(disk) = Disk::open(DIR) else {
            return;
        };
        let mut read = BTreeMap::new();
        for key in written {
            let op = history.invoke("driver", &key, "read", Value::Nil);
            let got = disk.get(&key).await;
            history.ok(op, stored_value(&got));
            read.insert(key, got);
        }
        let _ = tx.send(read);
    });
    let missing: Vec<String> = match rx.await {
        Ok(read) => acked
            .iter()
            .filter_map(|(key, value)| match read.get(key) {
                Some(Ok(Some(bytes))) if *bytes == value.to_le_bytes() => None,
                Some(got) => Some(format!("{key}={value} reads {got:?}")),
                None => Some(format!("{key}={value} was not read")),
            })
            .collect(),
        Err(_) => vec!["the server's node died".into()],
    };
    if !fixed {
        ctx.sometimes("acked-unsynced-at-crash", !missing.is_empty());
    }
    ctx.check(
        "acknowledged-writes-are-durable",
        missing.is_empty(),
        || {
            format!(
                "{} of {} acknowledged writes are not on the server's disk: {}",
                missing.len(),
                acked.len(),
                missing
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    )?;
    ctx.check(
        "writes-acknowledged-after-heal",
        acked.len() > before,
        || "no write acknowledged in the second after faults stopped".into(),
    )?;
    ctx.check_linear("disk-history-linearizable", &Map)
}

/// What a disk read returned, as the history's `read` output: the value, `nil` when absent, or
/// a string no write wrote (damage, an error).
fn stored_value(got: &Result<Option<Vec<u8>>, DiskError>) -> Value {
    match got {
        Ok(Some(bytes)) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(b) => Value::from(u64::from_le_bytes(b)),
            Err(_) => Value::Str(format!("{bytes:?}")),
        },
        Ok(None) => Value::Nil,
        Err(e) => Value::Str(e.to_string()),
    }
}

/// Node 0: stores each write; `fixed` syncs before acknowledging, `flawed` on a timer.
async fn server(mut ctx: Ctx<Request>, fixed: bool, refused: Arc<Mutex<u64>>) -> ExitReason {
    let Ok(disk) = Disk::open(DIR) else {
        return ExitReason::Error("no disk".into());
    };
    if !fixed {
        ctx.send_after(SYNC_EVERY, 0);
    }
    loop {
        match ctx.recv().await {
            Event::Timer { .. } => {
                let _ = disk.sync().await;
                ctx.send_after(SYNC_EVERY, 0);
            }
            Event::Call {
                msg: Request::Write { key, value },
                reply,
                ..
            } => {
                let answer = match disk.put(&key, &value.to_le_bytes()).await {
                    Err(e) => {
                        if matches!(e, DiskError::Full) {
                            *refused.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                        }
                        Reply::Refused(e.to_string())
                    }
                    Ok(()) if fixed => match disk.sync().await {
                        Ok(()) => Reply::Ack,
                        Err(e) => Reply::Unsynced(e.to_string()),
                    },
                    Ok(()) => Reply::Ack,
                };
                reply.reply(answer);
            }
            _ => {}
        }
    }
}

/// Node 1: writes `k1`, `k2`, ... and records the acknowledged ones, and every write in the
/// history.
async fn client(ctx: Ctx<Request>, world: Shared, history: History) -> ExitReason {
    let mut next = 0u64;
    loop {
        rt::sleep(WRITE_EVERY).await;
        let Some(server) = lock(&world).server else {
            continue;
        };
        next += 1;
        let key = format!("k{next}");
        let op = history.invoke("client", &key, "write", next);
        let reply: Result<Reply, CallError> = ctx
            .call(
                server,
                Request::Write {
                    key: key.clone(),
                    value: next,
                },
                CALL_TIMEOUT,
            )
            .await;
        match reply {
            Ok(Reply::Ack) => {
                history.ok(op, Value::Nil);
                lock(&world).acked.insert(key, next);
            }
            Ok(Reply::Refused(_)) | Err(CallError::NoProc | CallError::NotSent(_)) => {
                history.fail(op)
            }
            Ok(Reply::Unsynced(_))
            | Err(
                CallError::Timeout
                | CallError::NodeDown
                | CallError::Exited(_)
                | CallError::BadReply(_),
            ) => history.unknown(op),
        }
    }
}
