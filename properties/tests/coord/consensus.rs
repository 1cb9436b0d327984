//! Raft (`coord::consensus`) on three to five nodes under generated plans of partitions,
//! clogged links, crashes with restarts, pauses, loss and latency. Each member keeps its term,
//! vote and log on its node's disk; each incarnation of a node starts with a fresh [`Store`]
//! (the member's view of what it synced), so what survives a crash is what the disk kept.
//! Clients on every node propose unique values to the leader their member names.
//!
//! Checked every 100 ms of simulated time: at most one leader per term (election safety);
//! any two logs that hold an entry of the same index and term agree up to it (log matching);
//! a committed entry never changes and every member's committed prefix agrees with every
//! other's (agreement); every committed command was proposed (validity); every proposal
//! acknowledged `Ok(Committed { index })` is that index's command. After the quiet phase:
//! one leader all members follow, a new proposal commits, and every member's committed log
//! holds every acknowledged value.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use groundhog_runtime::coord::consensus::{self, Committed, Config, Entry, Role, Status, Store};
use groundhog_runtime::rt::{self, Duration, NetConfig, Stream};
use groundhog_runtime::supervisor::{self, Spec, Strategy};
use groundhog_runtime::{Ctx, ExitReason, Node, Registry};
use groundhog_sim::{BoxFuture, Check, Driver, FaultKind, FaultMix, Scenario, Setup, Violation};
use rand::Rng;

use super::{in_process, lock, start_node};

pub const GROUP: &str = "raft";
const CALL: Duration = Duration::from_millis(800);

#[derive(Default)]
pub struct World {
    /// Each node's latest member view (after a crash: what its disk holds until it restarts).
    pub stores: BTreeMap<u32, Store<u64>>,
    /// Every (term -> members) that led it, from the members' observers.
    pub leaders: BTreeMap<u64, BTreeSet<u32>>,
    /// Each member's latest status.
    pub status: BTreeMap<u32, Status>,
    /// Each node's current runtime.
    pub nodes: BTreeMap<u32, Node>,
    proposed: BTreeSet<u64>,
    acked: BTreeMap<u64, Committed>,
    /// Every committed entry seen, by index.
    committed: BTreeMap<u64, Entry<u64>>,
    quiet: bool,
}

pub type Shared = Arc<Mutex<World>>;

pub struct Raft;

impl Scenario for Raft {
    fn name(&self) -> &'static str {
        "coord-consensus"
    }

    fn about(&self) -> &'static str {
        "Raft keeps election safety, log matching, agreement and validity under any plan"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["faults"]
    }

    fn setup(&self) -> Setup {
        setup()
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

pub fn setup() -> Setup {
    let faults = FaultMix::new(
        vec![
            FaultKind::Partition,
            FaultKind::ClogLink,
            FaultKind::CrashNode,
            FaultKind::PauseNode,
            FaultKind::SetLoss,
            FaultKind::SetLatency,
        ],
        0.7,
        3_000,
    );
    Setup::new(3, faults)
        .net(NetConfig {
            loss: 0.02,
            latency: Duration::from_millis(1)..Duration::from_millis(30),
        })
        .settle(Duration::from_secs(2))
        .node_range(3..=5)
}

/// Starts each node's member under a supervisor, recording its status changes in `world`.
pub fn start_members(ctx: &Driver, world: &Shared) {
    let (nodes, seed) = (ctx.nodes(), ctx.seed());
    for n in 0..nodes {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let rt_node = start_node(&node, nodes).await;
                lock(&world).nodes.insert(n, rt_node.clone());
                let store = Store::new();
                lock(&world).stores.insert(n, store.clone());
                let w = world.clone();
                let config =
                    Config::new(GROUP, (0..nodes).collect(), seed).observer(move |s: &Status| {
                        let mut w = lock(&w);
                        if s.role == Role::Leader {
                            w.leaders.entry(s.term).or_default().insert(s.member);
                        }
                        w.status.insert(s.member, s.clone());
                    });
                let spec = Spec::new(Strategy::OneForOne)
                    .intensity(10, Duration::from_secs(1))
                    .child(consensus::child_spec(config, store));
                supervisor::start(&rt_node, "coord-sup", None, spec)
                    .await
                    .expect("the member starts");
                let w = world.clone();
                let rng = rt::seeded_rng(
                    seed,
                    Stream::Extra(7_000 + n * 100 + node.incarnation() as u32),
                );
                rt_node.spawn("client", move |ctx: Ctx<()>| async move {
                    client(ctx, w, n, node.incarnation(), rng).await;
                    ExitReason::Normal
                });
            }
        });
    }
}

/// The proposal a client makes through its own member's view of the leader.
async fn propose_once(ctx: &Ctx<()>, value: u64) -> Option<Result<Committed, String>> {
    let local = Registry::local(ctx.node()).whereis(GROUP)?;
    let status = consensus::status::<u64, _>(ctx, local, CALL).await.ok()?;
    let leader = status
        .leader_pid
        .or((status.role == Role::Leader).then_some(local))?;
    Some(
        consensus::propose(ctx, leader, value, CALL)
            .await
            .map_err(|e| e.to_string()),
    )
}

async fn client(ctx: Ctx<()>, world: Shared, n: u32, inc: u64, mut rng: rt::ChaCha8Rng) {
    for k in 0.. {
        rt::sleep(Duration::from_millis(rng.gen_range(50..300))).await;
        if lock(&world).quiet {
            return;
        }
        let value = u64::from(n) << 40 | inc << 20 | k;
        lock(&world).proposed.insert(value);
        if let Some(Ok(at)) = propose_once(&ctx, value).await {
            lock(&world).acked.insert(value, at);
        }
    }
}

pub fn check_one_leader_per_term_in(
    ctx: &Driver,
    leaders: &BTreeMap<u64, BTreeSet<u32>>,
) -> Result<(), Violation> {
    let twice = leaders.iter().find(|(_, who)| who.len() > 1);
    ctx.check("one-leader-per-term", twice.is_none(), || {
        format!(
            "term {} was led by {:?}",
            twice.unwrap().0,
            twice.unwrap().1
        )
    })
}

fn check_logs(ctx: &Driver, w: &mut World) -> Result<(), Violation> {
    check_one_leader_per_term_in(ctx, &w.leaders)?;
    let disks: Vec<(u32, consensus::Durable<u64>)> =
        w.stores.iter().map(|(n, s)| (*n, s.snapshot())).collect();
    for (na, a) in &disks {
        for (nb, b) in &disks {
            let common = a.log.len().min(b.log.len());
            let last = (0..common).rev().find(|i| a.log[*i].term == b.log[*i].term);
            let ok = last.is_none_or(|l| a.log[..=l] == b.log[..=l]);
            ctx.check("log-matching", ok, || {
                format!(
                    "members {na} and {nb} share entry {} but not its prefix",
                    last.unwrap() + 1
                )
            })?;
        }
    }
    for (n, d) in &disks {
        for (i, e) in d.log[..d.commit as usize].iter().enumerate() {
            let index = i as u64 + 1;
            let seen = w.committed.entry(index).or_insert_with(|| e.clone());
            ctx.check("agreement", seen == e, || {
                format!("member {n} committed {e:?} at {index}, another {seen:?}")
            })?;
            if let Some(v) = e.command {
                ctx.check("validity", w.proposed.contains(&v), || {
                    format!("member {n} committed {v}, never proposed")
                })?;
            }
        }
    }
    for (value, at) in &w.acked {
        let entry = w.committed.get(&at.index);
        let ok = entry.is_none_or(|e| e.command == Some(*value) && e.term == at.term);
        ctx.check("acknowledged-is-committed", ok, || {
            format!("{value} was acknowledged at {at:?}, the committed entry is {entry:?}")
        })?;
    }
    Ok(())
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    start_members(&ctx, &world);
    let every = Duration::from_millis(100);
    ctx.checking(every, || check_logs(&ctx, &mut lock(&world)), ctx.quiesce())
        .await?;
    lock(&world).quiet = true;
    ctx.checking(
        every,
        || check_logs(&ctx, &mut lock(&world)),
        rt::sleep(Duration::from_secs(3)),
    )
    .await?;
    // Liveness: one leader everybody follows, and a new proposal commits everywhere.
    let statuses: Vec<Status> = lock(&world).status.values().cloned().collect();
    let leader = statuses.iter().find(|s| s.role == Role::Leader).cloned();
    let agreed = leader.as_ref().is_some_and(|l| {
        statuses
            .iter()
            .all(|s| s.term == l.term && s.leader == Some(l.member))
    });
    ctx.check("one-followed-leader", agreed, || {
        format!("after the quiet phase the members are {statuses:?}")
    })?;
    let final_value = u64::MAX;
    let leader_node = lock(&world).nodes[&leader.as_ref().unwrap().member].clone();
    lock(&world).proposed.insert(final_value);
    let fin = in_process(&leader_node, move |ctx| async move {
        let member = Registry::local(ctx.node())
            .whereis(GROUP)
            .expect("the leader runs");
        consensus::propose(&ctx, member, final_value, CALL).await
    })
    .await;
    ctx.check(
        "a-proposal-commits-after-the-quiet-phase",
        matches!(fin, Some(Ok(_))),
        || format!("the final proposal got {fin:?}"),
    )?;
    if let Some(Ok(at)) = fin {
        lock(&world).acked.insert(final_value, at);
    }
    // Followers learn the new commit index from the next heartbeat.
    rt::sleep(Duration::from_millis(500)).await;
    check_logs(&ctx, &mut lock(&world))?;
    let w = lock(&world);
    let commits: Vec<(u32, u64)> = w
        .stores
        .iter()
        .map(|(n, s)| (*n, s.snapshot().commit))
        .collect();
    let acked: BTreeSet<u64> = w.acked.keys().copied().collect();
    for (n, s) in &w.stores {
        let have: BTreeSet<u64> = s.committed().iter().filter_map(|e| e.command).collect();
        let missing = acked.difference(&have).next();
        ctx.check("acknowledged-everywhere", missing.is_none(), || {
            format!("member {n} lacks acknowledged {missing:?}; commits {commits:?}")
        })?;
    }
    ctx.sometimes("a-proposal-was-acknowledged", !acked.is_empty());
    if std::env::var("COORD_DEBUG").is_ok() {
        eprintln!(
            "seed {} acked {} terms {} commits {commits:?}",
            ctx.seed(),
            acked.len(),
            w.leaders.len()
        );
    }
    Ok(())
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn raft_keeps_safety_under_faults_and_recovers_after_them() {
    Check::new(&Raft)
        .variant("faults")
        .seeds(super::cases(8))
        .run();
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn raft_on_five_nodes_keeps_safety_under_faults() {
    Check::new(&Raft)
        .variant("faults")
        .sim(|s| s.nodes(5))
        .seeds(super::cases(4))
        .run();
}
