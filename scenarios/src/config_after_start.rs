//! `config-after-start` (Fix #16): a connection pool, a cache and an API service start from a
//! configuration drawn from the seed, about half of them invalid (a pool of zero connections,
//! a TTL past its limit, an empty endpoint, or several of these at once).
//!
//! - `flawed`: the services are started first and the configuration is validated afterwards,
//!   as the report's platform did: by the time the bad value is found, the pool has opened its
//!   connections and the API has served, and stopping the tree does not undo that.
//! - `fixed`: `services::start` checks the whole configuration before any child starts and
//!   refuses to start with every problem listed.
//!
//! Invariants (after the quiet phase, each incarnation of the node counted):
//! - `nothing-starts-on-an-invalid-config` (safety): with an invalid configuration no service
//!   ever started.
//! - `every-problem-reported` (safety): the refusal lists every invalid field, not the first.
//! - `valid-config-starts-everything` (liveness): with a valid configuration every service is
//!   running at the end.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::services::{self, Problems, Service, ServicesError, Validate};
use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy};
use groundhog_runtime::{start_actor, Actor, Ctx, Event, ExitReason, Flow, Node, Pid};
use groundhog_sim::Violation;
use groundhog_sim::{BoxFuture, Driver, FaultKind, FaultMix, NodeCtx, Scenario, Setup};
use rand::Rng;

const MAX_TTL_MS: u64 = 60_000;
const SERVICES: [&str; 3] = ["pool", "cache", "api"];

/// The services' configuration, as an operator would write it.
#[derive(Debug, Clone)]
struct Config {
    pool_size: u32,
    ttl_ms: u64,
    endpoint: String,
}

impl Validate for Config {
    fn check(&self, p: &mut Problems) {
        p.require(self.pool_size > 0, "pool_size", "must be at least 1");
        p.require(
            self.ttl_ms <= MAX_TTL_MS,
            "ttl_ms",
            format!("at most {MAX_TTL_MS}"),
        );
        p.require(!self.endpoint.is_empty(), "endpoint", "must not be empty");
    }
}

impl Config {
    /// Each field is invalid with probability 1/4, so about 58% of configurations are valid.
    fn draw(rng: &mut rt::ChaCha8Rng) -> Config {
        Config {
            pool_size: if rng.gen_bool(0.25) {
                0
            } else {
                rng.gen_range(1..=8)
            },
            ttl_ms: if rng.gen_bool(0.25) {
                rng.gen_range(MAX_TTL_MS + 1..10 * MAX_TTL_MS)
            } else {
                rng.gen_range(10..=MAX_TTL_MS)
            },
            endpoint: if rng.gen_bool(0.25) {
                String::new()
            } else {
                format!("db-{}", rng.gen_range(0..4))
            },
        }
    }
}

#[derive(Default)]
struct World {
    node: Option<Node>,
    /// Services started, over every incarnation, and connections the pool opened.
    started: Vec<&'static str>,
    connections: u32,
    running: Vec<(&'static str, Pid)>,
    /// Problems the start reported (the last incarnation's).
    reported: Option<usize>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct ConfigAfterStart;

impl Scenario for ConfigAfterStart {
    fn name(&self) -> &'static str {
        "config-after-start"
    }

    fn about(&self) -> &'static str {
        "an invalid configuration must stop the start before any service runs, with every problem listed"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(vec![FaultKind::CrashNode], 0.3, 2_000);
        Setup::new(1, faults).seed_budget(10)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let config = Config::draw(&mut rt::seeded_rng(ctx.seed(), Stream::Workload));
    let expected = Problems::of(&config).len();
    ctx.note(&format!("config {config:?} problems={expected}"));
    let validate_first = ctx.variant() == "fixed";
    {
        let (world, config) = (world.clone(), config.clone());
        ctx.start_node(0, move |node: NodeCtx| {
            let (world, config) = (world.clone(), config.clone());
            async move { node_main(node.incarnation(), world, config, validate_first).await }
        });
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(1)).await;
    let w = lock(&world);
    if expected > 0 {
        ctx.check(
            "nothing-starts-on-an-invalid-config",
            w.started.is_empty(),
            || {
                format!(
                    "the configuration has {expected} problem(s), yet {:?} started and the pool \
                     opened {} connection(s)",
                    w.started, w.connections
                )
            },
        )?;
        ctx.check(
            "every-problem-reported",
            w.reported == Some(expected),
            || format!("{expected} problem(s), {:?} reported", w.reported),
        )?;
    } else {
        let alive = |name: &str| {
            w.running.iter().any(|(n, pid)| {
                *n == name && w.node.as_ref().is_some_and(|node| node.is_alive(*pid))
            })
        };
        let missing: Vec<&str> = SERVICES.into_iter().filter(|s| !alive(s)).collect();
        ctx.check("valid-config-starts-everything", missing.is_empty(), || {
            format!("valid configuration, but {missing:?} not running")
        })?;
    }
    Ok(())
}

/// One incarnation: start the services from `config`.
async fn node_main(incarnation: u64, world: Shared, config: Config, validate_first: bool) {
    let node = Node::local(0, incarnation);
    {
        let mut w = lock(&world);
        w.node = Some(node.clone());
        w.running.clear();
    }
    let children: Vec<ChildSpec> = SERVICES
        .into_iter()
        .map(|name| service(name, &world, &config))
        .collect();
    let intensity = (3, Duration::from_secs(5));
    if validate_first {
        let services = vec![
            Service::new(children[0].clone()),
            Service::new(children[1].clone()).needs("pool"),
            Service::new(children[2].clone()).needs("cache"),
        ];
        let reported =
            match services::start(&node, "services", None, &config, services, intensity).await {
                Ok(_) => 0,
                Err(ServicesError::Config(problems)) => problems.len(),
                Err(_) => usize::MAX,
            };
        lock(&world).reported = Some(reported);
    } else {
        // The flaw: start first, validate later, and stop the tree if it turns out bad.
        let mut spec = Spec::new(Strategy::RestForOne).intensity(intensity.0, intensity.1);
        for child in children {
            spec = spec.child(child);
        }
        // The starter is the tree's parent: its `Shutdown` stops the tree, children last-first.
        node.spawn("starter", move |ctx: Ctx<()>| async move {
            let started = supervisor::start(ctx.node(), "services", Some(ctx.pid()), spec).await;
            if started.is_err() {
                return ExitReason::Normal;
            }
            let problems = Problems::of(&config);
            lock(&world).reported = Some(problems.len());
            if problems.is_empty() {
                std::future::pending::<()>().await;
            }
            ExitReason::Shutdown
        });
    }
}

fn service(name: &'static str, world: &Shared, config: &Config) -> ChildSpec {
    let (world, config) = (world.clone(), config.clone());
    ChildSpec::new(name, move |node: Node, sup: Pid| {
        let actor = Svc {
            name,
            world: world.clone(),
            config: config.clone(),
        };
        let world = world.clone();
        async move {
            let pid = start_actor(&node, name, Some(sup), Duration::from_secs(1), actor).await?;
            lock(&world).running.push((name, pid));
            Ok(pid)
        }
    })
}

/// A service that does its start-up work with the configuration it was given.
struct Svc {
    name: &'static str,
    world: Shared,
    config: Config,
}

impl Actor for Svc {
    type Msg = ();

    async fn init(&mut self, _ctx: &mut Ctx<()>) -> Result<(), ExitReason> {
        let mut w = lock(&self.world);
        w.started.push(self.name);
        if self.name == "pool" {
            w.connections += self.config.pool_size;
        }
        Ok(())
    }

    async fn handle(&mut self, _ctx: &mut Ctx<()>, _event: Event<()>) -> Flow {
        Flow::Continue
    }
}
