//! `full-scan` (Fix #12): the agent registry grows all run long (a registrar adds batches of
//! agents at a pace drawn from the seed) while a looker makes two kinds of lookup, each with a
//! 20 ms deadline: the first `PAGE` agents with a capability, and a search for the heavy
//! agents (memory at or above `HEAVY_MB`, about one in twenty, not indexed).
//!
//! Computing takes no simulated time, so the looker charges itself `ENTRY_COST` of its node's
//! time for every registry entry a lookup examines (counted by the predicate, or the entries an
//! index page returns).
//!
//! - `flawed`: every lookup scans the whole table, as the report's `:ets.tab2list` queries did:
//!   the capability lookup examines every entry and keeps the first `PAGE` matches, the search
//!   examines every entry at once (a registry configured with no scan budget). As the table
//!   grows, lookups pass their deadline.
//! - `fixed`: the capability lookup reads one page of the registry's capability index; the
//!   search reads one predicate-scan page per call (`agents::Config::scan_budget`, at most
//!   `BUDGET` entries examined) and goes on from the page's cursor in its next call, so every
//!   call's cost is bounded whatever the table's size.
//!
//! Invariants:
//! - `lookups-within-deadline` (safety, checked every 50 ms): no lookup call takes longer than
//!   its deadline (time the node spent paused by a plan excuses the calls it overlaps).
//! - `lookups-are-right` (safety): a capability page holds only agents with the capability, in
//!   id order, and when it holds fewer than `PAGE`, every agent acknowledged with it before
//!   the lookup began; a finished search holds only heavy agents, and every heavy agent
//!   acknowledged before it began.
//! - `searches-finish` (liveness): a search begun in the first second after the quiet phase
//!   has finished a second later.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use groundhog_runtime::agents::{Agent, AgentRegistry, Config, Cursor, Index, Op, Resources};
use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::{Ctx, ExitReason, Node, Registry};
use groundhog_sim::{
    BoxFuture, Driver, FaultKind, FaultMix, NodeCtx, Scenario, Setup, Target, Violation,
};
use rand::Rng;

const DEADLINE: Duration = Duration::from_millis(20);
const ENTRY_COST: Duration = Duration::from_micros(10);
const PAGE: usize = 16;
const BUDGET: usize = 256;
const CAPABILITIES: u32 = 20;
const HEAVY_MB: u32 = 950;
/// The registrar stops here (the flawed lookups pass their deadline near 2,000).
const MAX_AGENTS: u32 = 8_000;

#[derive(Default)]
struct World {
    /// Agents acknowledged by the registry in this incarnation: per capability, and the heavy.
    by_capability: BTreeMap<String, BTreeSet<String>>,
    heavy: BTreeSet<String>,
    agents: usize,
    /// Lookup calls past their deadline (the first few): (started, took, what, entries
    /// examined).
    late: Vec<(Duration, Duration, &'static str, usize)>,
    /// Intervals in which the node did not run (paused by the plan): a lookup overlapping one
    /// is excused.
    stalls: Vec<(Duration, Duration)>,
    wrong: Option<String>,
    lookups: u64,
    searches_done: u64,
    quiet: bool,
    /// Searches begun after the quiet phase: (begun, finished).
    after_quiet: Vec<(Duration, Option<Duration>)>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct FullScan;

impl Scenario for FullScan {
    fn name(&self) -> &'static str {
        "full-scan"
    }

    fn about(&self) -> &'static str {
        "lookups in a growing table must stay within their deadline: an index or a bounded scan, not every entry per call"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![
                FaultKind::KillProcess,
                FaultKind::ExitProcess,
                FaultKind::CrashNode,
                FaultKind::PauseNode,
            ],
            0.3,
            2_000,
        )
        .targets(vec![(
            0,
            Target::Child {
                supervisor: "agent-registry-sup".into(),
                child: "agent-registry".into(),
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
    let (seed, bounded) = (ctx.seed(), ctx.variant() == "fixed");
    {
        let world = world.clone();
        ctx.start_node(0, move |node: NodeCtx| {
            let world = world.clone();
            async move { node_main(node.incarnation(), world, seed, bounded).await }
        });
    }
    let check = || {
        let w = lock(&world);
        let late = w.late.iter().find(|(at, took, ..)| {
            !w.stalls
                .iter()
                .any(|&(from, to)| from < *at + *took && *at < to)
        });
        ctx.check("lookups-within-deadline", late.is_none(), || {
            let (at, took, what, examined) = late.copied().unwrap_or_default();
            format!(
                "a {what} made at {at:?} took {took:?} (deadline {DEADLINE:?}): it examined \
                 {examined} entries of {}",
                w.agents
            )
        })?;
        ctx.check("lookups-are-right", w.wrong.is_none(), || {
            w.wrong.clone().unwrap_or_default()
        })
    };
    ctx.checking(Duration::from_millis(50), check, ctx.quiesce())
        .await?;
    let quiet_at = ctx.now();
    lock(&world).quiet = true;
    ctx.checking(
        Duration::from_millis(50),
        check,
        rt::sleep(Duration::from_secs(2)),
    )
    .await?;
    check()?;
    let w = lock(&world);
    ctx.note(&format!(
        "agents={} lookups={} searches={}",
        w.agents, w.lookups, w.searches_done
    ));
    // A search begun in the first second after the quiet phase had a second or more.
    let unfinished = w
        .after_quiet
        .iter()
        .find(|(begun, done)| *begun < quiet_at + Duration::from_secs(1) && done.is_none());
    ctx.check(
        "searches-finish",
        !w.after_quiet.is_empty() && unfinished.is_none(),
        || match unfinished {
            Some((begun, _)) => format!(
                "a search begun at {begun:?} had not finished at {:?}",
                quiet_at + Duration::from_secs(2)
            ),
            None => "no search began after the quiet phase".to_string(),
        },
    )
}

/// One incarnation: the registry (its supervisor registered for the plan's process faults),
/// the registrar and the looker.
async fn node_main(incarnation: u64, world: Shared, seed: u64, bounded: bool) {
    let node = Node::local(0, incarnation);
    {
        // A new incarnation has a new, empty table.
        let mut w = lock(&world);
        w.by_capability.clear();
        w.heavy.clear();
        w.agents = 0;
    }
    let budget = if bounded { BUDGET } else { usize::MAX };
    let config = Config::default()
        .scan_budget(budget)
        .intensity(100, Duration::from_secs(1));
    rt::spawn(clock_probe(world.clone()));
    let Ok(registry) = AgentRegistry::start(&node, None, config).await else {
        return;
    };
    let _ = Registry::local(&node).register("agent-registry-sup", registry.supervisor());
    let mut rng = rt::seeded_rng(seed, Stream::Extra(incarnation as u32 * 10));
    let batch = rng.gen_range(20..60);
    let pace_ms = rng.gen_range(10..25);
    let (r, w) = (registry.clone(), world.clone());
    node.spawn("registrar", move |ctx: Ctx<()>| async move {
        let mut n = 0u32;
        while n < MAX_AGENTS {
            rt::sleep(Duration::from_millis(
                rng.gen_range(pace_ms / 2..pace_ms * 3 / 2),
            ))
            .await;
            let agents: Vec<Agent> = (0..batch)
                .map(|i| {
                    let id = format!("a{incarnation}-{:07}", n + i);
                    Agent::new(id, 0)
                        .capability(format!("cap-{}", rng.gen_range(0..CAPABILITIES)))
                        .resources(Resources {
                            cpu_millis: 100,
                            memory_mb: rng.gen_range(0..1_000),
                        })
                })
                .collect();
            let ops = agents.iter().cloned().map(Op::Register).collect();
            if r.transact(&ctx, ops, Duration::from_secs(1)).await.is_ok() {
                n += batch;
                let mut w = lock(&w);
                for a in agents {
                    if a.resources.memory_mb >= HEAVY_MB {
                        w.heavy.insert(a.id.clone());
                    }
                    for c in &a.capabilities {
                        w.by_capability
                            .entry(c.clone())
                            .or_default()
                            .insert(a.id.clone());
                    }
                }
                w.agents = n as usize;
            }
        }
        ExitReason::Normal
    });
    let rng = rt::seeded_rng(seed, Stream::Extra(incarnation as u32 * 10 + 1));
    node.spawn("looker", move |_ctx: Ctx<()>| {
        looker(registry, world, rng, bounded)
    });
}

/// Records the intervals in which this node's tasks did not run.
async fn clock_probe(world: Shared) {
    loop {
        let before = rt::elapsed();
        rt::sleep(Duration::from_millis(5)).await;
        let after = rt::elapsed();
        if after - before > Duration::from_millis(10) {
            lock(&world).stalls.push((before, after));
        }
    }
}

/// A search for heavy agents in progress: what it found, where it goes on, what it must find.
struct Search {
    found: Vec<String>,
    cursor: Option<Cursor>,
    expected: BTreeSet<String>,
    begun: Duration,
}

async fn looker(
    registry: AgentRegistry,
    world: Shared,
    mut rng: rt::ChaCha8Rng,
    bounded: bool,
) -> ExitReason {
    let mut search: Option<Search> = None;
    loop {
        rt::sleep(Duration::from_millis(rng.gen_range(5..25))).await;
        let started = rt::elapsed();
        let examined = Cell::new(0usize);
        let (what, wrong) = if search.is_some() || rng.gen_bool(0.3) {
            let s = search.get_or_insert_with(|| {
                let mut w = lock(&world);
                let expected = w.heavy.clone();
                if w.quiet {
                    w.after_quiet.push((started, None));
                }
                Search {
                    found: Vec::new(),
                    cursor: None,
                    expected,
                    begun: started,
                }
            });
            let heavy = |a: &Agent| {
                examined.set(examined.get() + 1);
                a.resources.memory_mb >= HEAVY_MB
            };
            let Ok(page) = registry.scan(heavy, s.cursor.as_ref(), usize::MAX) else {
                return ExitReason::error("a page size of zero");
            };
            s.found.extend(page.items.into_iter().map(|a| a.id));
            s.cursor = page.next;
            let mut wrong = None;
            if s.cursor.is_none() {
                let found: BTreeSet<String> = s.found.iter().cloned().collect();
                let missing = s.expected.difference(&found).next();
                if let Some(m) = missing {
                    wrong = Some(format!(
                        "the search begun at {:?} finished without heavy agent {m}, acknowledged before it",
                        s.begun
                    ));
                }
                let mut w = lock(&world);
                w.searches_done += 1;
                let begun = s.begun;
                if let Some(entry) = w.after_quiet.iter_mut().find(|e| e.0 == begun) {
                    entry.1 = Some(started);
                }
                search = None;
            }
            ("search page", wrong)
        } else {
            let cap = format!("cap-{}", rng.gen_range(0..CAPABILITIES));
            let expected = lock(&world)
                .by_capability
                .get(&cap)
                .cloned()
                .unwrap_or_default();
            let items = if bounded {
                let page = registry.query(&Index::Capability(cap.clone()), None, PAGE);
                let items = page.map(|p| p.items).unwrap_or_default();
                examined.set(items.len());
                items
            } else {
                // The flaw: the whole table, filtered, then the first page kept.
                let all = |a: &Agent| {
                    examined.set(examined.get() + 1);
                    a.capabilities.contains(&cap)
                };
                let mut items = registry
                    .scan(all, None, usize::MAX)
                    .map(|p| p.items)
                    .unwrap_or_default();
                items.truncate(PAGE);
                items
            };
            let ids: Vec<&String> = items.iter().map(|a| &a.id).collect();
            let mut wrong = None;
            if items.iter().any(|a| !a.capabilities.contains(&cap))
                || !ids.windows(2).all(|p| p[0] < p[1])
            {
                wrong = Some(format!("a lookup of {cap} returned {ids:?}"));
            } else if items.len() < PAGE {
                if let Some(m) = expected.iter().find(|e| !ids.contains(e)) {
                    wrong = Some(format!(
                        "a lookup of {cap} returned {} agents, without {m}, acknowledged before it",
                        items.len()
                    ));
                }
            }
            ("capability lookup", wrong)
        };
        // What examining the entries costs.
        rt::sleep(ENTRY_COST * examined.get() as u32).await;
        let took = rt::elapsed() - started;
        let mut w = lock(&world);
        w.lookups += 1;
        if took > DEADLINE && w.late.len() < 100 {
            w.late.push((started, took, what, examined.get()));
        }
        if let Some(wrong) = wrong {
            w.wrong.get_or_insert(wrong);
        }
    }
}
