//! `orphan-task` (004 issues 2 and 4): leader election with terms on three nodes. Each node's
//! elector claims terms it owns (term `t` belongs to node `t % 3`), follows the highest term it
//! hears of, monitors its leader and calls an election when the leader goes down; elections
//! also happen at times drawn from the seed. Invariants: at most one leader per term (safety),
//! no announcement the elector counts as delivered was lost, and once faults stop every node
//! agrees on one live leader (liveness).
//!
//! - `flawed`: the leader announces itself from an unsupervised task that sends to each peer
//!   and swallows every error (`let _ = send`), as the Elixir primitives did. A partition or a
//!   crash loses announcements silently; a restarted node's stale claim is ignored in silence.
//! - `fixed`: the announcement runs as calls from a task under the node's task supervisor; the
//!   elector monitors the task, so each failed delivery reaches it as a typed error (the task's
//!   exit reason lists every `CallError`), and it retries while it still leads that term. A peer
//!   that knows a newer term answers with it and the elector steps down.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::supervisor::task;
use groundhog_runtime::{CallError, Ctx, Event, ExitReason, Node, NodeConfig, Pid, Ref, SpawnOpts};
use groundhog_sim::{BoxFuture, Ctx as SimCtx, FaultKind, FaultMix, Scenario, Setup, Violation};
use rand::Rng;
use serde::{Deserialize, Serialize};

const CALL_TIMEOUT: Duration = Duration::from_millis(300);
const RETRY_AFTER: Duration = Duration::from_millis(200);
const ELECTIONS_PER_NODE: u32 = 2;
/// Timer tags: elections drawn from the seed; retries carry the term above this.
const ELECT: u64 = 0;
const RETRY: u64 = 1 << 32;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Election {
    /// `leader` claims `term`. Sent by the flawed broadcast, called by the fixed one.
    Announce { term: u64, leader: Pid },
    /// From the elector's own broadcast task: a peer knows this newer term.
    Newer { term: u64, leader: Pid },
}

/// A peer's refusal of an announcement older than what it knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stale {
    term: u64,
    leader: Option<Pid>,
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

    fn run(&self, ctx: SimCtx) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: SimCtx) -> Result<(), Violation> {
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
                let tasks = fixed.then(|| task::start(&rt_node, "announce-tasks", None, None));
                let w = world.clone();
                let elector = rt_node.spawn("elector", move |ctx: Ctx<Election>| {
                    let term = lock(&w).disk.get(&n).copied().unwrap_or(0);
                    let e = Elector {
                        me: ctx.pid(),
                        nodes,
                        term,
                        leader: None,
                        leader_monitor: None,
                        broadcasts: BTreeMap::new(),
                        tasks,
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

fn check_one_leader_per_term(ctx: &SimCtx, world: &Shared) -> Result<(), Violation> {
    let w = lock(world);
    let twice = w.claims.iter().find(|(_, who)| who.len() > 1);
    ctx.check("one-leader-per-term", twice.is_none(), || {
        let (term, who) = twice.unwrap();
        format!("term {term} was claimed by {who:?}")
    })
}

struct Elector {
    me: Pid,
    nodes: u32,
    term: u64,
    leader: Option<Pid>,
    leader_monitor: Option<Ref>,
    /// Fixed only: the running announcement tasks, by monitor, with their term.
    broadcasts: BTreeMap<Ref, u64>,
    tasks: Option<Pid>,
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
                    // The flawed protocol: no answer, so a stale claim is dropped in silence.
                    let _ = self.on_announce(&ctx, term, leader);
                }
                Event::Call {
                    msg: Election::Announce { term, leader },
                    reply,
                    ..
                } => reply.reply(self.on_announce(&ctx, term, leader)),
                Event::Msg {
                    msg: Election::Newer { term, leader },
                    ..
                } => {
                    if term > self.term {
                        self.adopt(&ctx, term, leader);
                    }
                }
                Event::Call { reply, .. } => reply.reply(Err::<(), Stale>(self.stale())),
                Event::Down {
                    reference, reason, ..
                } => {
                    if Some(reference) == self.leader_monitor {
                        self.leader_monitor = None;
                        self.elect(&ctx);
                    } else if let Some(term) = self.broadcasts.remove(&reference) {
                        if !reason.is_clean() && self.leads(term) {
                            let why = reason.to_string();
                            groundhog_runtime::event!(
                                "note",
                                node = self.me.node,
                                msg = why.as_str()
                            );
                            ctx.send_after(RETRY_AFTER, RETRY + term);
                        }
                    }
                }
                Event::Timer { tag: ELECT, .. } => self.elect(&ctx),
                Event::Timer { tag, .. } => {
                    let term = tag - RETRY;
                    if self.leads(term) {
                        self.broadcast(&ctx, term);
                    }
                }
                Event::Exit { .. } => {}
            }
        }
    }

    fn stale(&self) -> Stale {
        Stale {
            term: self.term,
            leader: self.leader,
        }
    }

    fn leads(&self, term: u64) -> bool {
        self.term == term && self.leader == Some(self.me)
    }

    fn on_announce(&mut self, ctx: &Ctx<Election>, term: u64, leader: Pid) -> Result<(), Stale> {
        lock(&self.world).arrived.insert((term, self.me));
        if term > self.term {
            self.adopt(ctx, term, leader);
            Ok(())
        } else if term == self.term && self.leader == Some(leader) {
            Ok(())
        } else {
            Err(self.stale())
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
        let peers: Vec<(u32, Pid)> = lock(&self.world)
            .electors
            .iter()
            .filter(|(n, _)| **n != me.node)
            .map(|(n, p)| (*n, *p))
            .collect();
        let world = self.world.clone();
        let announce = Election::Announce { term, leader: me };
        match self.tasks {
            None => {
                // Unsupervised, unmonitored, every error swallowed.
                ctx.spawn("announce", move |ctx: Ctx<()>| async move {
                    for (_, peer) in peers {
                        let _ = ctx.send(peer, announce.clone());
                        lock(&world).counted.insert((term, peer));
                    }
                    ExitReason::Normal
                });
            }
            Some(sup) => {
                let opts = SpawnOpts::named("announce").link(sup);
                let task = ctx.node().spawn_opts(opts, move |ctx: Ctx<()>| async move {
                    announce_by_calls(ctx, me, term, announce, peers, world).await
                });
                self.broadcasts.insert(ctx.monitor(task), term);
            }
        }
    }
}

/// The fixed announcement: a call per peer; every failure is in the exit reason.
async fn announce_by_calls(
    ctx: Ctx<()>,
    elector: Pid,
    term: u64,
    announce: Election,
    peers: Vec<(u32, Pid)>,
    world: Shared,
) -> ExitReason {
    let mut failed = Vec::new();
    for (n, peer) in peers {
        let answer: Result<Result<(), Stale>, CallError> =
            ctx.call(peer, announce.clone(), CALL_TIMEOUT).await;
        match answer {
            Ok(result) => {
                lock(&world).counted.insert((term, peer));
                if let Err(Stale {
                    term: newer,
                    leader: Some(leader),
                }) = result
                {
                    if let Err(e) = ctx.send(
                        elector,
                        Election::Newer {
                            term: newer,
                            leader,
                        },
                    ) {
                        failed.push(format!("elector: {e}"));
                    }
                }
            }
            Err(e) => failed.push(format!("node {n}: {e}")),
        }
    }
    if failed.is_empty() {
        ExitReason::Normal
    } else {
        ExitReason::error(format!("announce term {term}: {}", failed.join("; ")))
    }
}
