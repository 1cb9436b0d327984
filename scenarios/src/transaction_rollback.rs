//! `transaction-rollback` (the seeds' Fix #3): a writer applies batches of agent-registry
//! operations (register, update, set-health, unregister) drawn from the seed; some batches
//! contain an op that fails (a duplicate register, an update of a missing agent, ...), some are
//! interrupted by a crash of the registry process before a drawn op (the registry's
//! fault-injection hook), and the plan kills the writer (`kill-process name=writer`, the runtime
//! process itself) or crashes the node.
//! Invariant, checked by a reader every few milliseconds, by the writer after each batch, and
//! after the quiet phase: the table equals the state before or after each whole batch, never a
//! state in between; and a failed batch's error names the failing op.
//!
//! - `flawed`: the client applies a "transaction" as one call per op (the seeds'
//!   `atomic_transaction`, which serialized ops but never rolled back): a failing op, a crash
//!   or a killed writer leaves the batch's earlier ops applied.
//! - `fixed`: one [`AgentRegistry::transact`] per batch: all or nothing.
//!
//! A node crash loses the registry's table (it lives in the node's memory) along with every
//! caller; the restarted node starts from the empty table, which the invariant then expects.
//!
//! History, for the anomaly checker ([`Elle`], read-write registers, strict: real-time edges
//! on): each batch is one transaction of the writer, invoked before its call and `ok`, `fail`
//! or `unknown` as the writer saw the answer (a timeout, a killed writer or a crashed node
//! leaves it unknown; every other error claims "nothing applied", so it is a `fail`). The
//! writer's own read of the table after each batch, and the reader's reads (those that saw a
//! new table or came after a new answer: a repeat of the reader's last read adds nothing but
//! more of the same) are read transactions. The run fails `batches-serializable` with the
//! anomaly's name (G1a: a failed batch's write was seen; G1b: a batch's intermediate record;
//! G-single: a batch seen half applied) and the transactions on it.
//!
//! Why registers and not list-append: the registry keeps one record per agent id and every op
//! replaces (or removes) that record whole; no read shows the order of earlier writes, which is
//! what list-append would claim. So each agent id is a register, holding the record or nothing.
//! Register reads must name the write they saw: the writer stamps every record it registers or
//! updates with a serial in `resources.memory_mb` (which nothing else here uses) and a read's
//! value is `serial:health`; a set-health writes its base record's serial with the new health,
//! which can repeat an earlier value (the checker then takes the read as naming no writer); an
//! unregister writes a tombstone nobody can read, and a read that finds no record is the initial
//! version only while no unregister of that id has been invoked, else it is left out. Registers
//! are per node incarnation (`a@2`): the crashed node's table is gone, and the restarted one is
//! a new table, not a rollback of the old.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::{self, Either};
use groundhog_runtime::agents::{Agent, AgentRegistry, Config, Health, Op, TxError};
use groundhog_runtime::rt::{self, ChaCha8Rng, Duration};
use groundhog_runtime::{CallError, Ctx, ExitReason, Node, Registry};
use groundhog_sim::checker::{Elle, Workload};
use groundhog_sim::{
    BoxFuture, Driver, FaultKind, FaultMix, History, OpId, Scenario, Setup, Target, Value,
    Violation,
};
use rand::Rng;

const NODE: u32 = 0;
const BATCHES: usize = 40;
const IDS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const READ_EVERY: Duration = Duration::from_millis(7);
const WHOLE_TABLE: usize = 1_000;

type Table = BTreeMap<String, Agent>;

#[derive(Debug, Clone)]
struct Batch {
    ops: Vec<Op>,
    /// The registry crashes before this op (if the batch gets that far).
    crash_before: Option<usize>,
    pause: Duration,
}

#[derive(Default)]
struct World {
    rng: Option<ChaCha8Rng>,
    /// Batches started so far.
    next: usize,
    reg: Option<AgentRegistry>,
    /// The table before the batch in flight (or now, when none is).
    before: Table,
    /// The table after the batch in flight, if it applies whole.
    after: Option<Table>,
    /// Arms the registry's crash hook: it panics before op `k` of the next batch.
    arm: Option<usize>,
    violation: Option<(String, String)>,
    /// The node incarnation that `reg` belongs to: the history's registers are per incarnation.
    epoch: u64,
    /// The last serial stamped on a record or tombstone.
    serial: u32,
    /// Registers (`id@epoch`) some batch has tried to unregister: a read of no record there no
    /// longer names one write.
    unregistered: BTreeSet<String>,
    /// Batches answered so far (the reader records a read after each new answer).
    answered: usize,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct TransactionRollback;

impl Scenario for TransactionRollback {
    fn name(&self) -> &'static str {
        "transaction-rollback"
    }

    fn about(&self) -> &'static str {
        "batches of registry ops fail or crash halfway; the table is never between two batches"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![FaultKind::KillProcess, FaultKind::CrashNode],
            0.3,
            3_000,
        )
        .targets(vec![(NODE, Target::Name("writer".to_string()))]);
        Setup::new(1, faults).seed_budget(20)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

/// The next batch, drawn from the seed's workload stream against the current table. With
/// probability 0.9 an op targets an id that is valid at that point of the batch (a new id to
/// register, a present one otherwise), else any id, so some batches fail at a drawn op; a
/// quarter of the batches also crash before a drawn op.
fn draw_batch(rng: &mut impl Rng, table: &Table) -> Batch {
    fn health(rng: &mut impl Rng) -> Health {
        match rng.gen_range(0..3) {
            0 => Health::Healthy,
            1 => Health::Degraded,
            _ => Health::Unhealthy,
        }
    }
    let mut present: BTreeSet<&str> = table.keys().map(String::as_str).collect();
    let len = rng.gen_range(2..=4);
    let ops: Vec<Op> = (0..len)
        .map(|_| {
            let kind = rng.gen_range(0..10);
            let pool: Vec<&str> = IDS
                .iter()
                .copied()
                .filter(|id| present.contains(id) != (kind <= 3))
                .collect();
            let id = if rng.gen_bool(0.9) && !pool.is_empty() {
                pool[rng.gen_range(0..pool.len())]
            } else {
                IDS[rng.gen_range(0..IDS.len())]
            };
            let agent = Agent::new(id, rng.gen_range(0..3))
                .capability(["x", "y"][rng.gen_range(0..2)])
                .health(health(rng));
            match kind {
                0..=3 => {
                    present.insert(id);
                    Op::Register(agent)
                }
                4..=5 => Op::Update(agent),
                6..=7 => Op::SetHealth {
                    id: id.to_string(),
                    health: health(rng),
                },
                _ => {
                    present.remove(id);
                    Op::Unregister(id.to_string())
                }
            }
        })
        .collect();
    let crash_before = rng.gen_bool(0.25).then(|| rng.gen_range(0..len));
    Batch {
        ops,
        crash_before,
        pause: Duration::from_millis(rng.gen_range(20..80)),
    }
}

/// The batch applied to `table` by the rules the registry documents: the new table, or the
/// index of the first failing op.
fn model(table: &Table, ops: &[Op]) -> Result<Table, usize> {
    let mut next = table.clone();
    for (i, op) in ops.iter().enumerate() {
        let ok = match op {
            Op::Register(a) => next.insert(a.id.clone(), a.clone()).is_none(),
            Op::Update(a) => next.insert(a.id.clone(), a.clone()).is_some(),
            Op::SetHealth { id, health } => next.get_mut(id).map(|a| a.health = *health).is_some(),
            Op::Unregister(id) => next.remove(id).is_some(),
        };
        if !ok {
            return Err(i);
        }
    }
    Ok(next)
}

fn snapshot(reg: &AgentRegistry) -> Table {
    // One page under one read lock: one committed state.
    let page = reg
        .scan(|_| true, None, WHOLE_TABLE)
        .expect("the page size is not zero");
    page.items.into_iter().map(|a| (a.id.clone(), a)).collect()
}

fn describe(t: &Table) -> String {
    let agents: Vec<String> = t
        .values()
        .map(|a| format!("{}@{}:{:?}", a.id, a.node, a.health))
        .collect();
    format!("[{}]", agents.join(" "))
}

/// Whether the registry's table is a whole-batch state; the explanation when not.
fn check_table(w: &World) -> Result<(), String> {
    match &w.reg {
        Some(reg) => judge(w, &snapshot(reg)),
        None => Ok(()),
    }
}

/// Whether `now`, a table just read, is a whole-batch state; the explanation when not.
fn judge(w: &World, now: &Table) -> Result<(), String> {
    if *now == w.before || w.after.as_ref() == Some(now) {
        return Ok(());
    }
    Err(format!(
        "batch {}: table {} is neither the state before it {} nor after it {}",
        w.next.saturating_sub(1),
        describe(now),
        describe(&w.before),
        w.after.as_ref().map_or("(fails)".into(), describe),
    ))
}

fn register(id: &str, epoch: u64) -> String {
    format!("{id}@{epoch}")
}

fn mop(f: &str, key: &str, value: Value) -> Value {
    Value::List(vec![f.into(), key.into(), value])
}

/// A record as a register value: its serial and health.
fn record_value(agent: &Agent) -> Value {
    Value::Str(format!("{}:{:?}", agent.resources.memory_mb, agent.health))
}

fn next_serial(serial: &mut u32) -> u32 {
    *serial += 1;
    *serial
}

/// Stamps every record the batch registers or updates with a fresh serial, so that no two
/// writes leave the same record.
fn stamp(batch: &mut Batch, serial: &mut u32) {
    for op in &mut batch.ops {
        if let Op::Register(a) | Op::Update(a) = op {
            a.resources.memory_mb = next_serial(serial);
        }
    }
}

/// The batch as a transaction: one write per op of what that op leaves in its register, if the
/// batch gets that far (each op sees the batch's earlier ones).
fn txn_writes(w: &mut World, ops: &[Op]) -> Value {
    let mut table = w.before.clone();
    let mut mops = Vec::new();
    for op in ops {
        let (id, value) = match op {
            Op::Register(a) | Op::Update(a) => (a.id.clone(), record_value(a)),
            Op::SetHealth { id, health } => {
                let value = match table.get(id) {
                    Some(a) => Value::Str(format!("{}:{health:?}", a.resources.memory_mb)),
                    // This op fails: a value no record can show.
                    None => Value::Str(format!("missing#{}", next_serial(&mut w.serial))),
                };
                (id.clone(), value)
            }
            Op::Unregister(id) => {
                let key = register(id, w.epoch);
                w.unregistered.insert(key);
                let tombstone = format!("gone#{}", next_serial(&mut w.serial));
                (id.clone(), Value::Str(tombstone))
            }
        };
        mops.push(mop("w", &register(&id, w.epoch), value));
        if let Ok(next) = model(&table, std::slice::from_ref(op)) {
            table = next;
        }
    }
    Value::List(mops)
}

/// Records `table`, just read by `process`, as a read transaction of every register it names.
fn record_read(history: &History, process: &str, w: &World, table: &Table) {
    let mut asked = Vec::new();
    let mut seen = Vec::new();
    for id in IDS {
        let key = register(id, w.epoch);
        let value = match table.get(id) {
            Some(agent) => record_value(agent),
            None if !w.unregistered.contains(&key) => Value::Nil,
            // No record: the initial version, or one of the unregisters; names no one write.
            None => continue,
        };
        asked.push(mop("r", &key, Value::Nil));
        seen.push(mop("r", &key, value));
    }
    history.instant(
        process,
        "agents",
        "txn",
        Value::List(asked),
        Value::List(seen),
    );
}

/// The batch's outcome as the writer saw it, in the history.
fn answer(history: &History, op: OpId, writes: Value, result: &Result<(), TxError>) {
    match result {
        Ok(()) => history.ok(op, writes),
        // The registry may still apply a batch whose call timed out (or whose reply was lost).
        Err(TxError::Call(e)) if !matches!(e, CallError::NotSent(_)) => history.unknown(op),
        // Every other error says "nothing applied".
        Err(_) => history.fail(op),
    }
}

fn record(world: &Shared, invariant: &str, msg: String) {
    let mut w = lock(world);
    if w.violation.is_none() {
        w.violation = Some((invariant.to_string(), msg));
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let flawed = ctx.variant() == "flawed";
    let hand_checks = ctx.hand_checks();
    let history = ctx.history();
    let world: Shared = Arc::default();
    lock(&world).rng = Some(ctx.rng());
    {
        let world = world.clone();
        let history = history.clone();
        ctx.start_node(NODE, move |node| {
            let world = world.clone();
            let history = history.clone();
            async move {
                let rt_node = Node::local(NODE, node.incarnation());
                // Weak: the world holds the registry, whose config holds this hook; a strong
                // handle here would be a cycle that keeps every run's table alive.
                let hook_world = Arc::downgrade(&world);
                let config = Config::default()
                    .scan_budget(WHOLE_TABLE)
                    .intensity(1_000, Duration::from_secs(1))
                    .crash_before_op(move |i, _| {
                        let Some(world) = hook_world.upgrade() else {
                            return false;
                        };
                        let mut w = lock(&world);
                        let fire = w.arm == Some(i);
                        if fire {
                            w.arm = None;
                        }
                        fire
                    });
                let reg = AgentRegistry::start(&rt_node, None, config)
                    .await
                    .expect("a fresh node starts its registry");
                {
                    // A node restart: the table and every caller were lost with the node.
                    let mut w = lock(&world);
                    w.reg = Some(reg.clone());
                    w.before = Table::new();
                    w.after = None;
                    w.arm = None;
                    w.epoch = node.incarnation();
                }
                let writer_world = world.clone();
                let pid = rt_node.spawn("writer", move |ctx: Ctx<()>| async move {
                    let opts = WriterOpts {
                        flawed,
                        hand_checks,
                    };
                    writer(ctx, reg, writer_world, history, opts).await;
                    ExitReason::Normal
                });
                // The plan's `kill-process name=writer` kills this process wherever it is, in
                // the middle of a batch or not.
                Registry::local(&rt_node)
                    .register("writer", pid)
                    .expect("a fresh node has no `writer`");
            }
        });
    }
    let quiet = ctx.quiesce();
    futures::pin_mut!(quiet);
    // What the reader last recorded: the incarnation, the table and the answers by then.
    let mut last_read: Option<(u64, Table, usize)> = None;
    // Under checkers-only a failed hand-written check is traced once, then the run goes on.
    let mut hand_failed = false;
    loop {
        let tick = rt::sleep(READ_EVERY);
        futures::pin_mut!(tick);
        let quiet_now = matches!(future::select(quiet.as_mut(), tick).await, Either::Left(_));
        let (table, violation) = {
            let w = lock(&world);
            let table = match &w.reg {
                Some(reg) => {
                    let now = snapshot(reg);
                    let read = (w.epoch, now, w.answered);
                    if quiet_now || last_read.as_ref() != Some(&read) {
                        record_read(&history, "reader", &w, &read.1);
                    }
                    let verdict = judge(&w, &read.1);
                    last_read = Some(read);
                    verdict
                }
                None => Ok(()),
            };
            (table, w.violation.clone())
        };
        if !hand_failed {
            if let Some((invariant, msg)) = violation {
                ctx.check(&invariant, false, || msg)?;
                hand_failed = true;
            } else if let Err(msg) = table {
                ctx.check("never-between-batches", false, || msg)?;
                hand_failed = true;
            }
        }
        if quiet_now {
            break;
        }
    }
    {
        let w = lock(&world);
        ctx.note(&format!("batches started={} of {BATCHES}", w.next));
        ctx.check(
            "never-between-batches-after-quiet",
            check_table(&w).is_ok(),
            || check_table(&w).unwrap_err(),
        )?;
    }
    let elle = Elle::new(Workload::RwRegister).realtime(true);
    ctx.check_anomalies("batches-serializable", &elle)
}

#[derive(Clone, Copy)]
struct WriterOpts {
    flawed: bool,
    /// Hand-written checks on: the writer stops at the first violation (the run ends there);
    /// off, it records the violation and goes on, for the history checker to judge.
    hand_checks: bool,
}

async fn writer(
    ctx: Ctx<()>,
    reg: AgentRegistry,
    world: Shared,
    history: History,
    opts: WriterOpts,
) {
    let WriterOpts {
        flawed,
        hand_checks,
    } = opts;
    loop {
        let (n, batch) = {
            let mut guard = lock(&world);
            let w = &mut *guard;
            if w.next >= BATCHES {
                return;
            }
            let n = w.next;
            let rng = w.rng.as_mut().expect("set before the node starts");
            let mut batch = draw_batch(rng, &w.before);
            stamp(&mut batch, &mut w.serial);
            (n, batch)
        };
        rt::sleep(batch.pause).await;
        let (before, expected, op, writes) = {
            let mut w = lock(&world);
            let expected = model(&w.before, &batch.ops);
            w.after = expected.clone().ok();
            w.next = n + 1;
            let writes = txn_writes(&mut w, &batch.ops);
            let op = history.invoke("writer", "agents", "txn", writes.clone());
            (w.before.clone(), expected, op, writes)
        };
        let result = if flawed {
            per_op_calls(&ctx, &reg, &world, &batch).await
        } else {
            lock(&world).arm = batch.crash_before;
            reg.transact(&ctx, batch.ops.clone(), CALL_TIMEOUT)
                .await
                .map(|_| ())
        };
        let now = snapshot(&reg);
        let between = {
            let mut w = lock(&world);
            w.arm = None;
            answer(&history, op, writes, &result);
            w.answered += 1;
            record_read(&history, "writer", &w, &now);
            let between = judge(&w, &now).err();
            if between.is_none() || !hand_checks {
                w.before = now.clone();
                w.after = None;
            }
            between
        };
        if let Some(msg) = between {
            record(&world, "never-between-batches", msg);
            if hand_checks {
                return;
            }
        }
        let applied = Some(&now) == expected.as_ref().ok() && now != before;
        let wrong = match (&result, &expected) {
            (Ok(()), Ok(after)) if now == *after => None,
            (Ok(()), _) => Some("committed, but the table is not the batch's result".into()),
            (Err(TxError::Op { index, .. }), Err(i)) if !flawed && index != i => Some(format!(
                "the error names op {index}, but op {i} is the one that fails"
            )),
            (Err(e @ TxError::Op { .. }), Ok(_)) => Some(format!("a valid batch was refused: {e}")),
            (Err(e), _) if applied => Some(format!("the batch was applied but reported {e}")),
            _ => None,
        };
        if let Some(msg) = wrong {
            record(
                &world,
                "errors-name-the-failing-op",
                format!("batch {n}: {msg}"),
            );
            if hand_checks {
                return;
            }
        }
        if matches!(result, Err(TxError::RegistryDown(_) | TxError::NotRunning)) {
            // Give the supervisor a moment to restart the registry.
            rt::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The flaw: each op its own call, with no undo when a later one fails.
async fn per_op_calls(
    ctx: &Ctx<()>,
    reg: &AgentRegistry,
    world: &Shared,
    batch: &Batch,
) -> Result<(), TxError> {
    for (i, op) in batch.ops.iter().enumerate() {
        if batch.crash_before == Some(i) {
            lock(world).arm = Some(0);
        }
        reg.transact(ctx, vec![op.clone()], CALL_TIMEOUT).await?;
    }
    Ok(())
}
