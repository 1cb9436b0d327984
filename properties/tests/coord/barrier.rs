//! The barrier (`coord::barrier`) for one participant per node, the barrier on node 0, under
//! generated plans of partitions, clogged links, crashes with restarts, pauses and latency.
//! Participants join, work for a while, wait, and go again, whatever the outcome.
//!
//! Checked as the run goes: no generation both released someone and broke for someone, and a
//! release counts each participant once and at most `parties`. After the quiet phase (the
//! liveness after heal): every node's participant passes the barrier again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use groundhog_runtime::coord::barrier::{self, BarrierError};
use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy};
use groundhog_runtime::{Ctx, ExitReason, Pid};
use groundhog_sim::{BoxFuture, Check, Driver, Scenario, Setup, Violation};
use rand::Rng;

use super::{lock, start_node};

const WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct World {
    barrier: Option<Pid>,
    /// (barrier, generation) -> participants released / told broken.
    released: BTreeMap<(Pid, u64), Vec<Pid>>,
    broken: BTreeMap<(Pid, u64), Vec<Pid>>,
    /// Each node's last release, in simulated time.
    passed: BTreeMap<u32, Duration>,
}

type Shared = Arc<Mutex<World>>;

struct Barriers;

impl Scenario for Barriers {
    fn name(&self) -> &'static str {
        "coord-barrier"
    }

    fn about(&self) -> &'static str {
        "a barrier is released whole or broken for all, and passes again after the heal"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["faults"]
    }

    fn setup(&self) -> Setup {
        super::consensus::setup()
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn participate(ctx: Ctx<()>, world: Shared, n: u32, mut rng: rt::ChaCha8Rng) {
    loop {
        rt::sleep(Duration::from_millis(rng.gen_range(10..100))).await;
        let Some(b) = lock(&world).barrier else {
            continue;
        };
        if rng.gen_bool(0.5) && barrier::join(&ctx, b, WAIT).await.is_err() {
            continue;
        }
        rt::sleep(Duration::from_millis(rng.gen_range(0..200))).await;
        let outcome = barrier::wait(&ctx, b, WAIT).await;
        let mut w = lock(&world);
        match outcome {
            Ok(generation) => {
                w.released
                    .entry((b, generation))
                    .or_default()
                    .push(ctx.pid());
                w.passed.insert(n, rt::elapsed());
            }
            Err(BarrierError::Broken { generation, .. }) => {
                w.broken.entry((b, generation)).or_default().push(ctx.pid())
            }
            Err(_) => {}
        }
    }
}

fn check(ctx: &Driver, w: &World, parties: usize) -> Result<(), Violation> {
    for (at, who) in &w.released {
        let both = w.broken.get(at);
        ctx.check("released-or-broken-not-both", both.is_none(), || {
            format!("generation {at:?} released {who:?} and broke for {both:?}")
        })?;
        let distinct: BTreeSet<&Pid> = who.iter().collect();
        ctx.check(
            "released-once-each",
            distinct.len() == who.len() && who.len() <= parties,
            || format!("generation {at:?} released {who:?}"),
        )?;
    }
    Ok(())
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let (nodes, seed) = (ctx.nodes(), ctx.seed());
    for n in 0..nodes {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let rt_node = start_node(&node, nodes).await;
                if n == 0 {
                    let w = world.clone();
                    let child = ChildSpec::new("barrier", move |node, sup| {
                        let w = w.clone();
                        async move {
                            let pid =
                                barrier::start(&node, "barrier", Some(sup), nodes as usize).await?;
                            lock(&w).barrier = Some(pid);
                            Ok(pid)
                        }
                    });
                    supervisor::start(
                        &rt_node,
                        "coord-sup",
                        None,
                        Spec::new(Strategy::OneForOne).child(child),
                    )
                    .await
                    .expect("the barrier starts");
                }
                let w = world.clone();
                let rng = rt::seeded_rng(
                    seed,
                    Stream::Extra(7_200 + n * 100 + node.incarnation() as u32),
                );
                rt_node.spawn("participant", move |ctx: Ctx<()>| async move {
                    participate(ctx, w, n, rng).await;
                    ExitReason::Normal
                });
            }
        });
    }
    let parties = nodes as usize;
    let every = Duration::from_millis(100);
    ctx.checking(every, || check(&ctx, &lock(&world), parties), ctx.quiesce())
        .await?;
    let healed = rt::elapsed();
    ctx.checking(
        every,
        || check(&ctx, &lock(&world), parties),
        rt::sleep(Duration::from_secs(4)),
    )
    .await?;
    let w = lock(&world);
    let stuck: Vec<u32> = (0..nodes)
        .filter(|n| w.passed.get(n).is_none_or(|t| *t < healed))
        .collect();
    ctx.check("every-participant-passes-after-the-heal", stuck.is_empty(), || {
        format!("nodes {stuck:?} did not pass the barrier after the heal ({healed:?}); last passes {:?}", w.passed)
    })
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_barrier_is_whole_under_faults_and_passes_after_the_heal() {
    Check::new(&Barriers)
        .variant("faults")
        .seeds(super::cases(8))
        .run();
}
