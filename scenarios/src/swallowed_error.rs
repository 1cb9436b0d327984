//! `swallowed-error` (004 issue 4): a participant on each of three nodes casts one vote per
//! round into a replicated log (`coord::consensus`, one supervised member per node) through
//! the leader its node's member names. Invariant (after the quiet phase): every vote a
//! participant believes counted is in every node's committed log.
//!
//! - `flawed`: as the Elixir primitives did, the participant wraps the proposal in a catch-all
//!   (`catch _, _ -> :ok`): whatever the call returned, it believes it took part. A
//!   participant partitioned from the majority, or whose leader just stepped down, is refused
//!   (`NotLeader`, `NodeDown`, `Timeout`) and never knows.
//! - `fixed`: the typed error is surfaced: the participant believes its vote counted only on
//!   `Ok(Committed)`, and otherwise knows it did not take part (it may vote again later).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use groundhog_runtime::coord::consensus::Store;
use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::{Ctx, ExitReason};
use groundhog_sim::{BoxFuture, Driver, Scenario, Setup, Violation};
use rand::Rng;

use crate::consensus_spawn::{lock, propose_via_local, raft_setup, start_member, start_runtime};

const ROUNDS: u64 = 10;

#[derive(Default)]
struct World {
    stores: BTreeMap<u32, Store<u64>>,
    /// Votes their participant believes counted.
    believed: BTreeSet<u64>,
    /// Votes refused with a typed error the participant saw (fixed only).
    refused: usize,
}

type Shared = Arc<Mutex<World>>;

pub struct SwallowedError;

impl Scenario for SwallowedError {
    fn name(&self) -> &'static str {
        "swallowed-error"
    }

    fn about(&self) -> &'static str {
        "a coordination error caught and ignored lets a partitioned participant believe it took part"
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

async fn participate(
    ctx: Ctx<()>,
    world: Shared,
    n: u32,
    inc: u64,
    fixed: bool,
    mut rng: rt::ChaCha8Rng,
) -> ExitReason {
    for round in 0..ROUNDS {
        rt::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
        let vote = u64::from(n) << 40 | inc << 20 | round;
        let outcome = propose_via_local(&ctx, vote).await;
        let mut w = lock(&world);
        if fixed {
            match outcome {
                Ok(_) => {
                    w.believed.insert(vote);
                }
                Err(e) => {
                    w.refused += 1;
                    drop(w);
                    let why = format!("vote {vote} not counted: {e}");
                    groundhog_runtime::event!("note", node = n, msg = why.as_str());
                }
            }
        } else {
            // `try ... catch _, _ -> :ok`: whatever happened, the vote counts.
            let _ = outcome;
            w.believed.insert(vote);
        }
    }
    ExitReason::Normal
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
                let store = Store::new();
                lock(&world).stores.insert(n, store.clone());
                start_member(&rt_node, nodes, seed, store).await;
                let rng = rt::seeded_rng(seed, Stream::Extra(3_200 + n * 100 + inc as u32));
                let w = world.clone();
                rt_node.spawn("participant", move |ctx: Ctx<()>| {
                    participate(ctx, w, n, inc, fixed, rng)
                });
            }
        });
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(2)).await;
    let w = lock(&world);
    for n in 0..nodes {
        let log: BTreeSet<u64> = w.stores[&n]
            .committed()
            .iter()
            .filter_map(|e| e.command)
            .collect();
        let missing: Vec<&u64> = w.believed.difference(&log).collect();
        ctx.check("believed-votes-were-counted", missing.is_empty(), || {
            format!(
                "node {n}'s committed log lacks votes {missing:?} their participants believe counted"
            )
        })?;
    }
    ctx.sometimes("a-vote-was-refused-and-the-participant-knew", w.refused > 0);
    Ok(())
}
