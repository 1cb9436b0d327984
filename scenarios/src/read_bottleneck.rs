//! `read-bottleneck` (Fix #7): a store serves frequent reads and occasional slow writes (each
//! write validates and persists for 5 to 60 ms, drawn from the seed) to three readers with a
//! 25 ms deadline and one writer.
//!
//! - `flawed`: every read is a call to the store process, as the report's registry served every
//!   query through its GenServer: a read queues behind whatever write the store is doing and
//!   misses its deadline.
//! - `fixed`: the store still serializes the writes, but publishes each one to a table the
//!   handle shares, and readers read that table in their own task, as `services::cache` and
//!   `services::limiter` decide off the mailbox. The plan kills and exits the store (its
//!   supervisor restarts it; the table outlives it in both variants, so only the read path
//!   differs).
//!
//! Invariants:
//! - `reads-answered-in-time` (safety, checked every 50 ms): every read is answered within
//!   25 ms.
//! - `reads-see-acknowledged-writes` (safety): a read that starts after a write to its key was
//!   acknowledged returns that write or a later one.
//! - `writes-continue` (liveness): writes are acknowledged in the second after the quiet phase.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy};
use groundhog_runtime::{
    start_actor, Actor, CallError, Ctx, Event, ExitReason, Flow, Node, Pid, Registry,
};
use groundhog_sim::{
    BoxFuture, Driver, FaultKind, FaultMix, NodeCtx, Scenario, Setup, Target, Violation,
};
use rand::Rng;
use serde::{Deserialize, Serialize};

const READ_DEADLINE: Duration = Duration::from_millis(25);
const WRITE_DEADLINE: Duration = Duration::from_secs(2);
const READERS: u32 = 3;
const KEYS: u32 = 8;

/// Key to the newest version written: the table the store's handle shares.
type Table = Arc<RwLock<BTreeMap<u32, u64>>>;

#[derive(Debug, Serialize, Deserialize)]
enum Req {
    /// Replies `()` once version `version` of `key` is in the table.
    Put {
        key: u32,
        version: u64,
        cost_ms: u64,
    },
    /// Replies `Option<u64>`: the newest version of `key`.
    Get { key: u32 },
}

#[derive(Default)]
struct World {
    store: Option<Pid>,
    /// The write in progress, if any: (when it was made, what it costs the store).
    writing: Option<(Duration, u64)>,
    /// Per key, the newest version acknowledged to the writer.
    acked: BTreeMap<u32, u64>,
    /// The first late read: (started, how long, what it got).
    late: Option<(Duration, Duration, String)>,
    /// The first stale read: (key, started, got, acknowledged before it started).
    stale: Option<(u32, Duration, Option<u64>, u64)>,
    reads: u64,
    quiet: bool,
    writes_after_quiet: u64,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct ReadBottleneck;

impl Scenario for ReadBottleneck {
    fn name(&self) -> &'static str {
        "read-bottleneck"
    }

    fn about(&self) -> &'static str {
        "reads must not queue behind slow writes in one process's mailbox: read off the mailbox"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![FaultKind::KillProcess, FaultKind::ExitProcess],
            0.4,
            2_000,
        )
        .targets(vec![(
            0,
            Target::Child {
                supervisor: "store-sup".into(),
                child: "store".into(),
            },
        )]);
        Setup::new(1, faults).seed_budget(5)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let (seed, off_mailbox) = (ctx.seed(), ctx.variant() == "fixed");
    {
        let world = world.clone();
        ctx.start_node(0, move |node: NodeCtx| {
            let world = world.clone();
            async move { node_main(node.incarnation(), world, seed, off_mailbox).await }
        });
    }
    let check = || {
        let w = lock(&world);
        ctx.check("reads-answered-in-time", w.late.is_none(), || {
            let (at, took, got) = w.late.clone().unwrap_or_default();
            format!("a read made at {at:?} took {took:?} (deadline {READ_DEADLINE:?}): {got}")
        })?;
        ctx.check("reads-see-acknowledged-writes", w.stale.is_none(), || {
            let (key, at, got, acked) = w.stale.unwrap_or_default();
            format!(
                "a read of key {key} made at {at:?} returned version {got:?}, but version \
                 {acked} was acknowledged before it"
            )
        })
    };
    ctx.checking(Duration::from_millis(50), check, ctx.quiesce())
        .await?;
    lock(&world).quiet = true;
    ctx.checking(
        Duration::from_millis(50),
        check,
        rt::sleep(Duration::from_secs(1)),
    )
    .await?;
    check()?;
    let w = lock(&world);
    ctx.check("writes-continue", w.writes_after_quiet > 0, || {
        format!(
            "no write acknowledged in the second after the quiet phase ({} reads in all)",
            w.reads
        )
    })
}

/// One incarnation: the table, the store under `store-sup`, the writer and the readers.
async fn node_main(incarnation: u64, world: Shared, seed: u64, off_mailbox: bool) {
    let node = Node::local(0, incarnation);
    {
        let mut w = lock(&world);
        // A new node incarnation has a new (empty) table.
        w.acked.clear();
        w.store = None;
    }
    let table: Table = Arc::default();
    let (t, wd) = (table.clone(), world.clone());
    let child = ChildSpec::new("store", move |node: Node, sup: Pid| {
        let (table, world) = (t.clone(), wd.clone());
        async move {
            let pid = start_actor(
                &node,
                "store",
                Some(sup),
                Duration::from_secs(1),
                Store { table },
            )
            .await?;
            lock(&world).store = Some(pid);
            Ok(pid)
        }
    });
    let spec = Spec::new(Strategy::OneForOne)
        .intensity(100, Duration::from_secs(1))
        .child(child);
    let Ok(sup) = supervisor::start(&node, "store-sup", None, spec).await else {
        return;
    };
    let _ = Registry::local(&node).register("store-sup", sup);
    let rng = rt::seeded_rng(seed, Stream::Extra(incarnation as u32 * 100));
    let w = world.clone();
    node.spawn("writer", move |ctx: Ctx<()>| writer(ctx, w, rng));
    for r in 1..=READERS {
        let rng = rt::seeded_rng(seed, Stream::Extra(incarnation as u32 * 100 + r));
        let (w, table) = (world.clone(), table.clone());
        node.spawn("reader", move |ctx: Ctx<()>| {
            reader(ctx, w, table, rng, off_mailbox)
        });
    }
}

/// The store: writes one at a time (slow), reads from the same mailbox when asked.
struct Store {
    table: Table,
}

impl Actor for Store {
    type Msg = Req;

    async fn handle(&mut self, _ctx: &mut Ctx<Req>, event: Event<Req>) -> Flow {
        let Event::Call { msg, reply, .. } = event else {
            return Flow::Continue;
        };
        match msg {
            Req::Put {
                key,
                version,
                cost_ms,
            } => {
                // Validating and persisting the write: the store is busy meanwhile.
                rt::sleep(Duration::from_millis(cost_ms)).await;
                let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
                let v = t.entry(key).or_default();
                *v = (*v).max(version);
                drop(t);
                reply.reply(());
            }
            Req::Get { key } => {
                let t = self.table.read().unwrap_or_else(|e| e.into_inner());
                reply.reply(t.get(&key).copied());
            }
        }
        Flow::Continue
    }
}

async fn writer(ctx: Ctx<()>, world: Shared, mut rng: rt::ChaCha8Rng) -> ExitReason {
    let mut version = 0;
    loop {
        rt::sleep(Duration::from_millis(rng.gen_range(10..60))).await;
        let Some(store) = lock(&world).store else {
            continue;
        };
        version += 1;
        let key = rng.gen_range(0..KEYS);
        let cost_ms = rng.gen_range(5..60);
        let put = Req::Put {
            key,
            version,
            cost_ms,
        };
        lock(&world).writing = Some((rt::elapsed(), cost_ms));
        let done: Result<(), CallError> = ctx.call(store, put, WRITE_DEADLINE).await;
        lock(&world).writing = None;
        if done.is_ok() {
            let mut w = lock(&world);
            let v = w.acked.entry(key).or_default();
            *v = (*v).max(version);
            if w.quiet {
                w.writes_after_quiet += 1;
            }
        }
    }
}

async fn reader(
    ctx: Ctx<()>,
    world: Shared,
    table: Table,
    mut rng: rt::ChaCha8Rng,
    off_mailbox: bool,
) -> ExitReason {
    loop {
        rt::sleep(Duration::from_millis(rng.gen_range(2..20))).await;
        let key = rng.gen_range(0..KEYS);
        let (store, acked, writing) = {
            let w = lock(&world);
            (w.store, w.acked.get(&key).copied(), w.writing)
        };
        let behind = writing.map_or(String::new(), |(at, ms)| {
            format!(" (behind a {ms} ms write made at {at:?})")
        });
        let started = rt::elapsed();
        let got: Result<Option<u64>, CallError> = if off_mailbox {
            let t = table.read().unwrap_or_else(|e| e.into_inner());
            Ok(t.get(&key).copied())
        } else {
            let Some(store) = store else {
                continue;
            };
            ctx.call(store, Req::Get { key }, READ_DEADLINE).await
        };
        let took = rt::elapsed() - started;
        let mut w = lock(&world);
        w.reads += 1;
        match got {
            Ok(v) => {
                if let Some(a) = acked.filter(|a| v < Some(*a)) {
                    w.stale.get_or_insert((key, started, v, a));
                }
                if took > READ_DEADLINE {
                    w.late
                        .get_or_insert((started, took, format!("version {v:?}{behind}")));
                }
            }
            Err(e) => {
                w.late
                    .get_or_insert((started, took, format!("{e}{behind}")));
            }
        }
    }
}
