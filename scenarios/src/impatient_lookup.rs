//! `impatient-lookup`: a worker, the permanent child `worker` of a supervisor, registers itself
//! locally as `worker` and crashes on a poison job (one in four, drawn from the seed); a client
//! looks the worker up by name for every job. Invariant (liveness): the client gets through all
//! its jobs.
//!
//! - `flawed`: after a crash the client waits 10 ms, looks the name up once, and gives up if it
//!   is not there: it assumes a supervisor's restart is instantaneous.
//! - `fixed`: the client keeps looking (every 10 ms, for up to 2 s) until the restarted worker
//!   has registered.
//!
//! No fault plan: the flaw needs a restart that comes late, which only the runtime's buggify site
//! `supervisor-restart-delay` makes (the scenario turns buggify on, `Setup::buggify`). With
//! buggify off (a plan file without `buggify = true`, e.g. `quiet_at_ms = 1500`) every seed passes.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration};
use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy};
use groundhog_runtime::{CallError, Ctx, Event, ExitReason, Node, Registry, SpawnOpts};
use groundhog_sim::{BoxFuture, Driver, FaultMix, Scenario, Setup, Violation};
use rand::Rng;
use serde::{Deserialize, Serialize};

const NODE: u32 = 0;
const JOBS: u64 = 300;
const JOB_EVERY: Duration = Duration::from_millis(4);
const CALL_TIMEOUT: Duration = Duration::from_millis(100);
const LOOKUP_EVERY: Duration = Duration::from_millis(10);
/// The fixed client looks this many times before it gives up.
const LOOKUPS: u32 = 200;

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u64,
    poison: bool,
}

#[derive(Default)]
struct World {
    done: u64,
    crashes: u64,
    gave_up: Option<String>,
    finished: bool,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct ImpatientLookup;

impl Scenario for ImpatientLookup {
    fn name(&self) -> &'static str {
        "impatient-lookup"
    }

    fn about(&self) -> &'static str {
        "a client that looks a restarted worker up once gives up when the restart comes late"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        Setup::new(1, FaultMix::new(Vec::new(), 0.0, 1_500))
            .buggify(true)
            .seed_budget(30)
            .coverage("fixed", &["worker-crashed"])
            .coverage("flawed", &["worker-crashed"])
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let fixed = ctx.variant() == "fixed";
    let poison: Vec<bool> = {
        let mut rng = ctx.rng();
        (0..JOBS).map(|_| rng.gen_bool(0.25)).collect()
    };
    {
        let world = world.clone();
        ctx.start_node(NODE, move |node| {
            let (world, poison) = (world.clone(), poison.clone());
            async move {
                let rt_node = Node::local(NODE, node.incarnation());
                let w = world.clone();
                let child = ChildSpec::new("worker", move |node: Node, sup| {
                    let w = w.clone();
                    async move {
                        let opts = SpawnOpts::named("worker").link(sup);
                        Ok(node.spawn_opts(opts, move |c| worker(c, w)))
                    }
                });
                let spec = Spec::new(Strategy::OneForOne)
                    .intensity(1_000, Duration::from_secs(1))
                    .child(child);
                supervisor::start(&rt_node, "top", None, spec)
                    .await
                    .expect("the worker starts");
                rt_node.spawn("client", move |c| client(c, world, poison, fixed));
            }
        });
    }
    ctx.quiesce().await;
    let w = lock(&world);
    ctx.sometimes("worker-crashed", w.crashes > 0);
    if let Some(why) = &w.gave_up {
        return ctx.check("all-jobs-done", false, || why.clone());
    }
    ctx.check("all-jobs-done", w.finished && w.done == JOBS, || {
        format!("{} of {JOBS} jobs done", w.done)
    })
}

async fn worker(mut ctx: Ctx<Job>, world: Shared) -> ExitReason {
    let _ = Registry::local(ctx.node()).register("worker", ctx.pid());
    loop {
        if let Event::Call { msg, reply, .. } = ctx.recv().await {
            if msg.poison {
                lock(&world).crashes += 1;
                return ExitReason::error(format!("poison job {}", msg.n));
            }
            reply.reply(msg.n);
        }
    }
}

async fn client(ctx: Ctx<Job>, world: Shared, poison: Vec<bool>, fixed: bool) -> ExitReason {
    let names = Registry::local(ctx.node());
    let mut n = 0;
    while n < JOBS {
        rt::sleep(JOB_EVERY).await;
        let Some(to) = names.whereis("worker") else {
            // The worker crashed: wait for its restart.
            rt::sleep(LOOKUP_EVERY).await;
            let tries = if fixed { LOOKUPS } else { 1 };
            let mut found = false;
            for _ in 0..tries {
                if names.whereis("worker").is_some() {
                    found = true;
                    break;
                }
                rt::sleep(LOOKUP_EVERY).await;
            }
            if !found {
                lock(&world).gave_up = Some(format!(
                    "job {n}: no `worker` registered {} ms after it crashed; the client gave up",
                    LOOKUP_EVERY.as_millis() * u128::from(tries)
                ));
                return ExitReason::Normal;
            }
            continue;
        };
        let job = Job {
            n,
            poison: poison[n as usize],
        };
        let answer: Result<u64, CallError> = ctx.call(to, job, CALL_TIMEOUT).await;
        match answer {
            Ok(_) => {
                lock(&world).done += 1;
                n += 1;
            }
            // A poison job is done once it crashed the worker (it would crash it forever).
            Err(CallError::Exited(_)) => {
                lock(&world).done += 1;
                n += 1;
            }
            Err(_) => {}
        }
    }
    lock(&world).finished = true;
    ExitReason::Normal
}
