//! `consensus-spawn` (004 issue 2): a client on node 0 runs consensus rounds, one value each,
//! on three nodes. Invariant (after the quiet phase): every round the (still running) client
//! started has an outcome it was told (decided, or a typed error), and every value it was
//! told decided is in every node's decided log.
//!
//! - `flawed`: as the Elixir primitives did: the client sends the round to a coordinator node
//!   and moves on; the coordinator runs it from an unsupervised, unmonitored task that sends
//!   `Accept` to every node and swallows every error, gives up silently when a majority does
//!   not answer in time, and reports `Done` only on success. A crash, partition or clog during
//!   a round loses it, and nobody learns.
//! - `fixed`: the runtime's consensus (`coord::consensus`, Raft, one supervised member per
//!   node, each keeping its term, vote and log on its node's disk): the client proposes to
//!   the leader by call and always gets `Ok(Committed)` or a typed error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use groundhog_runtime::coord::consensus::{self, Config, Role, Store};
use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::supervisor::{self, Spec, Strategy};
use groundhog_runtime::{Ctx, Event, ExitReason, Node, NodeConfig, Pid, Registry};
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, Scenario, Setup, Violation};
use rand::Rng;
use serde::{Deserialize, Serialize};

const ROUNDS: u64 = 12;
const GROUP: &str = "raft";
const CALL: Duration = Duration::from_millis(800);
/// The flawed round's wait for a majority of answers.
const ROUND_WAIT: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Round {
    /// Client to a coordinator node's `rounds` process.
    Run {
        id: u64,
        value: u64,
        client: Pid,
    },
    Accept {
        id: u64,
        value: u64,
    },
    Ack {
        id: u64,
    },
    Decide {
        id: u64,
        value: u64,
    },
    /// To the client, on success only.
    Done {
        id: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Decided { index: u64 },
    Failed(String),
}

#[derive(Default)]
pub(crate) struct World {
    pub(crate) stores: BTreeMap<u32, Store<u64>>,
    /// The current client.
    client: Option<Pid>,
    /// Rounds by (client, value): the outcome the client was told.
    rounds: BTreeMap<(Pid, u64), Option<Outcome>>,
    /// Flawed: what each node's acceptor was told is decided.
    decided: BTreeMap<u32, BTreeSet<u64>>,
}

type Shared = Arc<Mutex<World>>;

pub(crate) fn lock<T>(w: &Arc<Mutex<T>>) -> std::sync::MutexGuard<'_, T> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct ConsensusSpawn;

impl Scenario for ConsensusSpawn {
    fn name(&self) -> &'static str {
        "consensus-spawn"
    }

    fn about(&self) -> &'static str {
        "consensus rounds run from unsupervised tasks are lost silently when a node fails"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        raft_setup()
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

/// Three nodes, faults that cut and crash them.
pub(crate) fn raft_setup() -> Setup {
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
        .settle(Duration::from_secs(3))
        .seed_budget(20)
}

pub(crate) async fn start_runtime(n: u32, incarnation: u64, nodes: u32) -> Node {
    let config = NodeConfig::cluster(n, incarnation, nodes)
        .heartbeat(Duration::from_millis(50), Duration::from_millis(500));
    Node::start(config).await.expect("the port is free")
}

/// This node's Raft member under a supervisor; `store` is the view it fills from its disk.
pub(crate) async fn start_member(node: &Node, nodes: u32, seed: u64, store: Store<u64>) {
    let config = Config::new(GROUP, (0..nodes).collect(), seed);
    let spec = Spec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(1))
        .child(consensus::child_spec(config, store));
    supervisor::start(node, "coord-sup", None, spec)
        .await
        .expect("the member starts");
}

/// Proposes `value` through the leader the local member names; every failure is typed.
pub(crate) async fn propose_via_local<M: groundhog_runtime::Message>(
    ctx: &Ctx<M>,
    value: u64,
) -> Result<consensus::Committed, String> {
    let local = Registry::local(ctx.node())
        .whereis(GROUP)
        .ok_or("no local member")?;
    let status = consensus::status::<u64, _>(ctx, local, CALL)
        .await
        .map_err(|e| e.to_string())?;
    let leader = status
        .leader_pid
        .or((status.role == Role::Leader).then_some(local))
        .ok_or("no leader known")?;
    consensus::propose(ctx, leader, value, CALL)
        .await
        .map_err(|e| e.to_string())
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
                let rt_node = start_runtime(n, inc, nodes).await;
                if fixed {
                    let store = Store::new();
                    lock(&world).stores.insert(n, store.clone());
                    start_member(&rt_node, nodes, seed, store).await;
                } else {
                    let w = world.clone();
                    let acceptor = rt_node.spawn("acceptor", move |ctx| accept(ctx, w, n));
                    let rounds = rt_node.spawn("rounds", move |ctx| coordinate(ctx, nodes));
                    let registry = Registry::local(&rt_node);
                    registry
                        .register("acceptor", acceptor)
                        .expect("a fresh node");
                    registry.register("rounds", rounds).expect("a fresh node");
                }
                if n == 0 {
                    let rng = rt::seeded_rng(seed, Stream::Extra(3_000 + inc as u32));
                    let w = world.clone();
                    let client = rt_node.spawn("client", move |ctx: Ctx<Round>| {
                        client(ctx, w, nodes, inc, fixed, rng)
                    });
                    lock(&world).client = Some(client);
                }
            }
        });
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(2)).await;
    let w = lock(&world);
    let client = w.client;
    let open: Vec<u64> = w
        .rounds
        .iter()
        .filter(|((c, _), outcome)| Some(*c) == client && outcome.is_none())
        .map(|((_, v), _)| *v)
        .collect();
    ctx.check("every-round-has-an-outcome", open.is_empty(), || {
        format!("rounds {open:?} were started and never decided nor reported failed")
    })?;
    let decided: Vec<(u64, u64)> = w
        .rounds
        .iter()
        .filter_map(|((_, v), o)| match o {
            Some(Outcome::Decided { index }) => Some((*v, *index)),
            _ => None,
        })
        .collect();
    for n in 0..nodes {
        let missing: Vec<u64> = if fixed {
            let log = w.stores[&n].committed();
            decided
                .iter()
                .filter(|(v, i)| log.get(*i as usize - 1).and_then(|e| e.command) != Some(*v))
                .map(|(v, _)| *v)
                .collect()
        } else {
            let have = w.decided.get(&n).cloned().unwrap_or_default();
            decided
                .iter()
                .filter(|(v, _)| !have.contains(v))
                .map(|(v, _)| *v)
                .collect()
        };
        ctx.check("decided-everywhere", missing.is_empty(), || {
            format!("node {n} does not have decided values {missing:?}")
        })?;
    }
    ctx.sometimes("a-round-decided", !decided.is_empty());
    Ok(())
}

async fn client(
    mut ctx: Ctx<Round>,
    world: Shared,
    nodes: u32,
    inc: u64,
    fixed: bool,
    mut rng: rt::ChaCha8Rng,
) -> ExitReason {
    let me = ctx.pid();
    for k in 0..ROUNDS {
        rt::sleep(Duration::from_millis(rng.gen_range(50..400))).await;
        let value = inc << 32 | k;
        lock(&world).rounds.insert((me, value), None);
        if fixed {
            let outcome = match propose_via_local(&ctx, value).await {
                Ok(at) => Outcome::Decided { index: at.index },
                Err(e) => Outcome::Failed(e),
            };
            lock(&world).rounds.insert((me, value), Some(outcome));
        } else {
            // Fire and forget: the round is the coordinator's business now.
            let coordinator = rng.gen_range(0..nodes);
            let run = Round::Run {
                id: value,
                value,
                client: me,
            };
            let _ = ctx.send_to_name(coordinator, "rounds", run);
        }
        // Flawed: collect whatever `Done`s have come in.
        while let Some(event) = ctx.recv_timeout(Duration::ZERO).await {
            if let Event::Msg {
                msg: Round::Done { id },
                ..
            } = event
            {
                lock(&world)
                    .rounds
                    .insert((me, id), Some(Outcome::Decided { index: 0 }));
            }
        }
    }
    // The flawed client keeps waiting for the rounds it believes are still running.
    loop {
        if let Event::Msg {
            msg: Round::Done { id },
            ..
        } = ctx.recv().await
        {
            lock(&world)
                .rounds
                .insert((me, id), Some(Outcome::Decided { index: 0 }));
        }
    }
}

/// The flawed coordinator: every round in an unsupervised, unmonitored task.
async fn coordinate(mut ctx: Ctx<Round>, nodes: u32) -> ExitReason {
    loop {
        if let Event::Msg {
            msg: Round::Run { id, value, client },
            ..
        } = ctx.recv().await
        {
            ctx.spawn("round", move |ctx: Ctx<Round>| {
                run_round(ctx, nodes, id, value, client)
            });
        }
    }
}

async fn run_round(
    mut ctx: Ctx<Round>,
    nodes: u32,
    id: u64,
    value: u64,
    client: Pid,
) -> ExitReason {
    for n in 0..nodes {
        let _ = ctx.send_to_name(n, "acceptor", Round::Accept { id, value });
    }
    let mut acks = 0;
    while acks < nodes / 2 + 1 {
        match ctx.recv_timeout(ROUND_WAIT).await {
            Some(Event::Msg {
                msg: Round::Ack { id: a },
                ..
            }) if a == id => acks += 1,
            Some(_) => {}
            // Gave up: `catch _, _ -> :ok`, nobody is told.
            None => return ExitReason::Normal,
        }
    }
    for n in 0..nodes {
        let _ = ctx.send_to_name(n, "acceptor", Round::Decide { id, value });
    }
    let _ = ctx.send(client, Round::Done { id });
    ExitReason::Normal
}

async fn accept(mut ctx: Ctx<Round>, world: Shared, n: u32) -> ExitReason {
    loop {
        match ctx.recv().await {
            Event::Msg {
                from,
                msg: Round::Accept { id, .. },
            } => {
                let _ = ctx.send(from, Round::Ack { id });
            }
            Event::Msg {
                msg: Round::Decide { value, .. },
                ..
            } => {
                lock(&world).decided.entry(n).or_default().insert(value);
            }
            _ => {}
        }
    }
}
