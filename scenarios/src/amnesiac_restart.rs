//! `amnesiac-restart`: a store (node 0), the permanent child `store` of a supervisor registered as
//! `top`, acknowledges a client's writes (node 1); the client reads everything back every few
//! writes. Invariant: every acknowledged write is in every later read, and the store serves
//! again once faults stop.
//!
//! - `flawed`: the store keeps its items in the process's own memory (a local variable, OTP's
//!   state in the loop). Its supervisor restarts it after it is killed, as designed, but the new
//!   process starts empty: everything acknowledged before is gone.
//! - `fixed`: the items live in a table the node program creates before the supervisor and hands
//!   to every start of the child (OTP keeps such a table in an ETS table owned by a longer-lived
//!   process); a restarted store serves what was acknowledged.
//!
//! History: the client's adds and reads are `add`/`read` operations of a linearizable [`Set`]
//! (one per incarnation of the store's node, whose memory holds the table): `ok` when answered,
//! `fail` when the request reached no store (`NoProc`, `NotSent`), `unknown` otherwise (a
//! timeout, a call open when the client's node crashed). Each client incarnation is its own
//! process. A restarted flawed store answers a read without items acknowledged before:
//! `items-history-linearizable` fails with the hand-written invariant switched off.
//!
//! Only a fault aimed at the process itself reaches the flaw: partitions, loss, latency, pauses
//! and client crashes never restart the store, and a crash of its node loses the table in both
//! variants (the node's memory is gone; the store's node is never crashed here). The plan's
//! `kill-process` and `exit-process` aim at `supervisor=top child=store` and `name=store`;
//! `groundhog sweep amnesiac-restart --variant flawed --faults partition,set-loss,set-latency,pause-node,crash-node`
//! passes, and its coverage point `store-restarted` is never hit.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration};
use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy};
use groundhog_runtime::{
    CallError, Ctx, Event, ExitReason, Node, NodeConfig, Pid, Registry, SpawnOpts,
};
use groundhog_sim::checker::Set;
use groundhog_sim::{
    BoxFuture, Driver, FaultKind, FaultMix, History, Scenario, Setup, Target, Value, Violation,
};
use serde::{Deserialize, Serialize};

const STORE: u32 = 0;
const CLIENT: u32 = 1;
const CALL_TIMEOUT: Duration = Duration::from_millis(200);
const WRITE_EVERY: Duration = Duration::from_millis(20);
/// Every this many operations the client reads everything back.
const READ_EVERY: u64 = 5;
const FAULT_WINDOW_MS: u64 = 2_400;

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Add(u64),
    List,
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Added,
    Items(BTreeSet<u64>),
}

/// The scenario's view of the system (not the system's own state), kept outside the nodes to
/// check the invariant.
#[derive(Default)]
struct World {
    /// The store process now serving (the directory the client reads).
    store: Option<Pid>,
    /// Incarnations of node 0 so far: the history's key (each has its own table).
    epoch: u64,
    /// Store processes started on the current incarnation of node 0.
    starts: u32,
    /// Restarts of the store seen in the run (starts after the first, per node incarnation).
    restarts: u32,
    /// Items acknowledged to the client.
    acked: BTreeSet<u64>,
    /// The next item the client writes (kept across client restarts).
    next: u64,
    /// Whether faults have stopped; reads after it count for liveness.
    quiet: bool,
    reads_after_quiet: u32,
    violation: Option<String>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct AmnesiacRestart;

impl Scenario for AmnesiacRestart {
    fn name(&self) -> &'static str {
        "amnesiac-restart"
    }

    fn about(&self) -> &'static str {
        "a supervised store killed by the plan restarts; acknowledged writes must survive it"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![
                FaultKind::KillProcess,
                FaultKind::ExitProcess,
                FaultKind::Partition,
                FaultKind::SetLoss,
                FaultKind::SetLatency,
                FaultKind::PauseNode,
                FaultKind::CrashNode,
            ],
            0.5,
            FAULT_WINDOW_MS,
        )
        .targets(vec![
            (
                STORE,
                Target::Child {
                    supervisor: "top".into(),
                    child: "store".into(),
                },
            ),
            (STORE, Target::Name("store".into())),
        ])
        .role("store", [STORE])
        .role("client", [CLIENT])
        .aim(FaultKind::CrashNode, &["client"]);
        Setup::new(2, faults)
            .net(rt::NetConfig {
                loss: 0.0,
                latency: Duration::from_millis(1)..Duration::from_millis(5),
            })
            .seed_budget(20)
            .coverage("fixed", &["store-restarted"])
            .coverage("flawed", &["store-restarted"])
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let fixed = ctx.variant() == "fixed";
    for n in [STORE, CLIENT] {
        let world = world.clone();
        let history = ctx.history();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            let history = history.clone();
            let me = format!("client-{}", node.incarnation());
            async move {
                let config = NodeConfig::cluster(n, node.incarnation(), 2);
                let rt_node = Node::start(config).await.expect("the port is free");
                if n == STORE {
                    start_store(&rt_node, world, fixed).await;
                } else {
                    rt_node.spawn("client", move |c| client(c, world, history, me));
                }
            }
        });
    }
    let check = || {
        let w = lock(&world);
        ctx.sometimes("store-restarted", w.restarts > 0);
        ctx.check("acknowledged-writes-kept", w.violation.is_none(), || {
            w.violation.clone().unwrap_or_default()
        })
    };
    ctx.checking(Duration::from_millis(100), check, ctx.quiesce())
        .await?;
    lock(&world).quiet = true;
    rt::sleep(Duration::from_secs(1)).await;
    check()?;
    let (reads, restarts) = {
        let w = lock(&world);
        (w.reads_after_quiet, w.restarts)
    };
    ctx.check("store-serves-after-quiet", reads > 0, || {
        format!("no read answered in the second after faults stopped ({restarts} restart(s))")
    })?;
    ctx.check_linear("items-history-linearizable", &Set)
}

/// Node 0: the supervisor `top` over the permanent child `store`, both registered locally.
async fn start_store(node: &Node, world: Shared, fixed: bool) {
    {
        // A new node incarnation: its memory, and with it every table, is new.
        let mut w = lock(&world);
        w.epoch += 1;
        w.starts = 0;
        w.acked.clear();
        w.store = None;
    }
    // The fixed variant's table outlives every store process: the node program owns it. Node
    // memory (an ETS table), not a disk: it is made anew with each node incarnation.
    let table: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let child = ChildSpec::new("store", move |node: Node, sup| {
        let (table, world) = (table.clone(), world.clone());
        async move {
            let opts = SpawnOpts::named("store").link(sup);
            Ok(node.spawn_opts(opts, move |c| store(c, table, world, fixed)))
        }
    });
    let spec = Spec::new(Strategy::OneForOne)
        .intensity(1_000, Duration::from_secs(1))
        .child(child);
    let top = supervisor::start(node, "top", None, spec)
        .await
        .expect("the store starts");
    Registry::local(node)
        .register("top", top)
        .expect("a fresh node has no `top`");
}

async fn store(
    mut ctx: Ctx<Request>,
    table: Arc<Mutex<BTreeSet<u64>>>,
    world: Shared,
    fixed: bool,
) -> ExitReason {
    // The old holder's name went with it (a registered name is dropped when its process dies).
    let _ = Registry::local(ctx.node()).register("store", ctx.pid());
    {
        let mut w = lock(&world);
        w.starts += 1;
        if w.starts > 1 {
            w.restarts += 1;
        }
        w.store = Some(ctx.pid());
    }
    // The flaw: the items live in this process only.
    let mut own = BTreeSet::new();
    loop {
        if let Event::Call { msg, reply, .. } = ctx.recv().await {
            let mut shared = table.lock().unwrap_or_else(|e| e.into_inner());
            let items = if fixed { &mut *shared } else { &mut own };
            match msg {
                Request::Add(item) => {
                    items.insert(item);
                    reply.reply(Reply::Added);
                }
                Request::List => reply.reply(Reply::Items(items.clone())),
            }
        }
    }
}

/// Node 1: adds items to whichever store the directory names, reading everything back every
/// [`READ_EVERY`] operations; a read missing an acknowledged item is the violation. Every
/// operation goes in the history as process `me`.
async fn client(ctx: Ctx<Request>, world: Shared, history: History, me: String) -> ExitReason {
    loop {
        rt::sleep(WRITE_EVERY).await;
        let (to, op, key) = {
            let mut w = lock(&world);
            let Some(to) = w.store else {
                continue;
            };
            w.next += 1;
            (to, w.next, format!("items-{}", w.epoch))
        };
        if op % READ_EVERY == 0 {
            let acked = lock(&world).acked.clone();
            let id = history.invoke(&me, &key, "read", Value::Nil);
            let read: Result<Reply, CallError> = ctx.call(to, Request::List, CALL_TIMEOUT).await;
            record(&history, id, &read);
            if let Ok(Reply::Items(items)) = read {
                let mut w = lock(&world);
                // Only what the current node incarnation acknowledged (a node restart clears it).
                let missing: Vec<u64> = acked
                    .intersection(&w.acked)
                    .filter(|i| !items.contains(i))
                    .copied()
                    .collect();
                if !missing.is_empty() && w.violation.is_none() {
                    let first: Vec<u64> = missing.iter().take(5).copied().collect();
                    w.violation = Some(format!(
                        "{to} answered a read without {} acknowledged item(s), first {first:?} \
                         ({} restart(s) of the store so far)",
                        missing.len(),
                        w.restarts
                    ));
                }
                if w.quiet {
                    w.reads_after_quiet += 1;
                }
            }
        } else {
            let id = history.invoke(&me, &key, "add", op);
            let added: Result<Reply, CallError> =
                ctx.call(to, Request::Add(op), CALL_TIMEOUT).await;
            record(&history, id, &added);
            if let Ok(Reply::Added) = added {
                lock(&world).acked.insert(op);
            }
        }
    }
}

/// How a call ends in the history: answered, certainly not applied (it reached no store), or
/// maybe applied.
fn record(history: &History, id: groundhog_sim::OpId, answer: &Result<Reply, CallError>) {
    match answer {
        Ok(Reply::Added) => history.ok(id, Value::Nil),
        Ok(Reply::Items(items)) => history.ok(
            id,
            Value::List(items.iter().map(|&i| Value::from(i)).collect()),
        ),
        Err(CallError::NoProc | CallError::NotSent(_)) => history.fail(id),
        Err(_) => history.unknown(id),
    }
}
