//! `orphan-task` (004 issues 2 and 4): leader election with terms on three nodes. Invariants:
//! at most one leader per term (safety), no announcement counted as delivered was lost, and
//! once faults stop every node agrees on one live leader (liveness).
//!
//! - `flawed`: each node's elector claims terms it owns (term `t` belongs to node `t % 3`),
//!   follows the highest term it hears of, monitors its leader and calls an election when the
//!   leader goes down; elections also happen at times drawn from the seed. The leader
//!   announces itself from an unsupervised task that sends to each peer and swallows every
//!   error (`let _ = send`), as the Elixir primitives did. A partition or a crash loses
//!   announcements silently; a restarted node's stale claim is ignored in silence.
//! - `fixed`: the runtime's election (`coord::election`, Raft terms and votes, one supervised
//!   member per node, its term and vote on its node's disk). Nothing is
//!   announced fire-and-forget: followers learn the leader from its acknowledged
//!   `AppendEntries`, so there is no announcement to count and `no-silent-loss` holds
//!   trivially; a leader cut off from the majority steps down. Claims are the members' own
//!   reports of leading a term (their observers); beliefs are each member's (term, leader).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use groundhog_runtime::coord::consensus::{Role, Status};
use groundhog_runtime::coord::election::{self, ElectionStore};
use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy};
use groundhog_runtime::{Ctx, Event, ExitReason, Node, NodeConfig, Pid, Ref};
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, Scenario, Setup, Violation};
use rand::Rng;
use serde::{Deserialize, Serialize};

const ELECTIONS_PER_NODE: u32 = 2;
/// The timer tag of the elections drawn from the seed.
const ELECT: u64 = 0;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Election {
    /// `leader` claims `term` (the flawed broadcast).
    Announce { term: u64, leader: Pid },
}

#[derive(Default)]
struct World {
    /// What survives a crash: each node's highest term seen.
    disk: BTreeMap<u32, u64>,
    /// Each node's current elector.
    electors: BTreeMap<u32, Pid>,
    /// Who claimed each term.
    claims: BTreeMap<u64, BTreeSet<Pid>>,
    /// Each elector's belief.
    views: BTreeMap<Pid, Belief>,
    /// Announcements (term, receiving elector) the announcer counts as delivered.
    counted: BTreeSet<(u64, Pid)>,
    /// Announcements (term, receiving elector) that actually arrived.
    arrived: BTreeSet<(u64, Pid)>,
    /// Fixed: each node's latest member view (its disk is what survives a crash).
    stores: BTreeMap<u32, ElectionStore>,
}

/// An elector's (term, leader).
type Belief = (u64, Option<Pid>);

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct OrphanTask;

impl Scenario for OrphanTask {
    fn name(&self) -> &'static str {
        "orphan-task"
    }

    fn about(&self) -> &'static str {
        "leader announcements from an unsupervised fire-and-forget task are lost silently"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(
            vec![
                FaultKind::Partition,
                FaultKind::CrashNode,
                FaultKind::ClogLink,
                FaultKind::SetLatency,
                FaultKind::SetLoss,
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
            .node_range(2..=groundhog_sim::MAX_NODES)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let (nodes, seed) = (ctx.nodes(), ctx.seed());
    let fixed = ctx.variant() == "fixed";
    for n in 0..nodes {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let inc = node.incarnation();
                let config = NodeConfig::cluster(n, inc, nodes)
                    .heartbeat(Duration::from_millis(50), Duration::from_millis(500));
                let rt_node = Node::start(config).await.expect("the port is free");
                let mut rng = rt::seeded_rng(seed, Stream::Extra(n * 1_000 + inc as u32));
                let elections: Vec<Duration> = (0..ELECTIONS_PER_NODE)
                    .map(|_| Duration::from_millis(rng.gen_range(0..3_000)))
                    .collect();
                if fixed {
                    start_member(&rt_node, nodes, seed, world.clone()).await;
                    return;
                }
                let w = world.clone();
                let elector = rt_node.spawn("elector", move |ctx: Ctx<Election>| {
                    let term = lock(&w).disk.get(&n).copied().unwrap_or(0);
                    let e = Elector {
                        me: ctx.pid(),
                        nodes,
                        term,
                        leader: None,
                        leader_monitor: None,
                        world: w,
                    };
                    e.run(ctx, elections)
                });
                lock(&world).electors.insert(n, elector);
            }
        });
    }
    // Safety as the run goes.
    let deadline = Duration::from_millis(3_500);
    while ctx.now() < deadline {
        rt::sleep(Duration::from_millis(250)).await;
        check_one_leader_per_term(&ctx, &world)?;
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(2)).await;
    check_one_leader_per_term(&ctx, &world)?;
    let w = lock(&world);
    let lost = w.counted.difference(&w.arrived).next();
    ctx.check("no-silent-loss", lost.is_none(), || {
        let (term, to) = lost.unwrap();
        format!("the announcement of term {term} to {to} counted as delivered but never arrived")
    })?;
    // Liveness: every current elector follows the same leader, which leads that term itself.
    let beliefs: Vec<(Pid, Option<&Belief>)> =
        w.electors.values().map(|e| (*e, w.views.get(e))).collect();
    let first = beliefs[0].1.copied();
    let agreed = beliefs.iter().all(|b| b.1.copied() == first);
    let leader_leads = first.is_some_and(|(term, leader)| {
        leader.is_some_and(|l| {
            w.electors.values().any(|e| *e == l) && w.views.get(&l) == Some(&(term, Some(l)))
        })
    });
    ctx.check("one-agreed-leader", agreed && leader_leads, || {
        format!("after the quiet phase the electors believe {beliefs:?}")
    })
}

fn check_one_leader_per_term(ctx: &Driver, world: &Shared) -> Result<(), Violation> {
    let w = lock(world);
    let twice = w.claims.iter().find(|(_, who)| who.len() > 1);
    ctx.check("one-leader-per-term", twice.is_none(), || {
        let (term, who) = twice.unwrap();
        format!("term {term} was claimed by {who:?}")
    })
}

/// Fixed: this node's election member under a supervisor, its status changes recorded as
/// the flawed electors' are (claims by leaders, beliefs by everyone).
async fn start_member(node: &Node, nodes: u32, seed: u64, world: Shared) {
    let n = node.index();
    let store = ElectionStore::new();
    lock(&world).stores.insert(n, store.clone());
    let w = world.clone();
    let config =
        election::config("election", (0..nodes).collect(), seed).observer(move |s: &Status| {
            let mut w = lock(&w);
            if s.role == Role::Leader {
                if let Some(me) = s.leader_pid {
                    w.claims.entry(s.term).or_default().insert(me);
                }
            }
            if let Some(me) = w.electors.get(&s.member).copied() {
                w.views.insert(me, (s.term, s.leader_pid));
            }
        });
    let child = ChildSpec::new("election", move |node, sup| {
        let (config, store, world) = (config.clone(), store.clone(), world.clone());
        async move {
            let pid = election::start(&node, Some(sup), config, store).await?;
            lock(&world).electors.insert(node.index(), pid);
            Ok(pid)
        }
    });
    let spec = Spec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(1))
        .child(child);
    supervisor::start(node, "election-sup", None, spec)
        .await
        .expect("the member starts");
}

/// The flawed elector.
struct Elector {
    me: Pid,
    nodes: u32,
    term: u64,
    leader: Option<Pid>,
    leader_monitor: Option<Ref>,
    world: Shared,
}

impl Elector {
    async fn run(mut self, mut ctx: Ctx<Election>, elections: Vec<Duration>) -> ExitReason {
        for at in elections {
            ctx.send_after(at, ELECT);
        }
        self.elect(&ctx);
        loop {
            match ctx.recv().await {
                Event::Msg {
                    msg: Election::Announce { term, leader },
                    ..
                } => {
                    // No answer, so a stale claim is dropped in silence.
                    self.on_announce(&ctx, term, leader);
                }
                Event::Down { reference, .. } => {
                    if Some(reference) == self.leader_monitor {
                        self.leader_monitor = None;
                        self.elect(&ctx);
                    }
                }
                Event::Timer { tag: ELECT, .. } => self.elect(&ctx),
                Event::Call { .. } | Event::Timer { .. } | Event::Exit { .. } => {}
            }
        }
    }

    fn on_announce(&mut self, ctx: &Ctx<Election>, term: u64, leader: Pid) {
        lock(&self.world).arrived.insert((term, self.me));
        if term > self.term {
            self.adopt(ctx, term, leader);
        }
    }

    fn adopt(&mut self, ctx: &Ctx<Election>, term: u64, leader: Pid) {
        if let Some(m) = self.leader_monitor.take() {
            ctx.demonitor(m, true);
        }
        self.term = term;
        self.leader = Some(leader);
        if leader != self.me {
            self.leader_monitor = Some(ctx.monitor(leader));
        }
        let mut w = lock(&self.world);
        let disk = w.disk.entry(self.me.node).or_default();
        *disk = (*disk).max(term);
        w.views.insert(self.me, (term, Some(leader)));
    }

    /// Claims the next term this node owns and announces it.
    fn elect(&mut self, ctx: &Ctx<Election>) {
        let (n, nodes) = (u64::from(self.me.node), u64::from(self.nodes));
        let next = self.term + 1;
        let term = next + (n + nodes - next % nodes) % nodes;
        lock(&self.world)
            .claims
            .entry(term)
            .or_default()
            .insert(self.me);
        self.adopt(ctx, term, self.me);
        self.broadcast(ctx, term);
    }

    fn broadcast(&mut self, ctx: &Ctx<Election>, term: u64) {
        let me = self.me;
        let peers: Vec<Pid> = lock(&self.world)
            .electors
            .iter()
            .filter(|(n, _)| **n != me.node)
            .map(|(_, p)| *p)
            .collect();
        let world = self.world.clone();
        let announce = Election::Announce { term, leader: me };
        // Unsupervised, unmonitored, every error swallowed.
        ctx.spawn("announce", move |ctx: Ctx<()>| async move {
            for peer in peers {
                let _ = ctx.send(peer, announce.clone());
                lock(&world).counted.insert((term, peer));
            }
            ExitReason::Normal
        });
    }
}
