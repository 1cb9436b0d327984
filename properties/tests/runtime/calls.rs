//! Calls never hang: with the callee's node crashed or cut off, every call returns (`NodeDown`,
//! `NoProc`, `Exited`) within the failure-detection time, far below its own timeout; once the
//! network heals, calls succeed again.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, Instant, NetConfig, Stream};
use groundhog_runtime::{CallError, Ctx, Event, ExitReason, Pid};
use groundhog_sim::{BoxFuture, Check, Driver, Scenario, Setup, Violation};
use rand::Rng;

use super::cluster::{self, lock, DOWN_AFTER, HEARTBEAT};

/// Far longer than failure detection: a call that takes this long has hung.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Detection (silence past DOWN_AFTER, noticed on a heartbeat tick) plus the slowest reply.
const PROMPT: Duration = Duration::from_millis(1_500);

#[derive(Default)]
struct World {
    /// The current server (republished by each incarnation of node 1).
    server: Option<Pid>,
    /// (simulated start, duration, result) of every call.
    calls: Vec<(Duration, Duration, Result<u64, CallError>)>,
}

type Shared = Arc<Mutex<World>>;

struct CallUnderFailure;

impl Scenario for CallUnderFailure {
    fn name(&self) -> &'static str {
        "rt-call-failure"
    }

    fn about(&self) -> &'static str {
        "calls to a node that crashes or is partitioned return promptly, never hang"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["crash", "partition"]
    }

    fn setup(&self) -> Setup {
        Setup::new(2, cluster::no_faults(3_000)).net(NetConfig {
            loss: 0.05,
            latency: Duration::from_millis(1)..Duration::from_millis(30),
        })
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let seed = ctx.seed();
    for n in 0..2 {
        let world = world.clone();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            async move {
                let rt_node = cluster::start(&node, 2).await;
                let stream = Stream::Extra(n * 100 + node.incarnation() as u32);
                let mut rng = rt::seeded_rng(seed, stream);
                if n == 1 {
                    // A server that answers after 0..300 ms.
                    let server = rt_node.spawn("server", move |mut ctx: Ctx<u64>| async move {
                        loop {
                            if let Event::Call { msg, reply, .. } = ctx.recv().await {
                                rt::sleep(Duration::from_millis(rng.gen_range(0..300))).await;
                                reply.reply(msg);
                            }
                        }
                    });
                    lock(&world).server = Some(server);
                    return;
                }
                let w = world.clone();
                rt_node.spawn("client", move |ctx: Ctx<()>| async move {
                    let start = Instant::now();
                    for i in 0u64.. {
                        let Some(server) = lock(&w).server else {
                            rt::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        let began = Instant::now();
                        let result = ctx.call(server, i, CALL_TIMEOUT).await;
                        let at = began.duration_since(start);
                        lock(&w).calls.push((at, began.elapsed(), result));
                        rt::sleep(Duration::from_millis(20)).await;
                    }
                    ExitReason::Normal
                });
            }
        });
    }
    ctx.quiesce().await;
    rt::sleep(Duration::from_secs(3)).await;
    let quiet = ctx.now() - Duration::from_secs(3);
    let w = lock(&world);
    let slowest = w.calls.iter().map(|c| c.1).max().unwrap_or_default();
    ctx.check("calls-return-promptly", slowest <= PROMPT, || {
        let c = w.calls.iter().find(|c| c.1 == slowest);
        format!("a call took {slowest:?} (limit {PROMPT:?}): {c:?}")
    })?;
    let failed = w.calls.iter().filter(|c| c.2.is_err()).count();
    ctx.check("the-fault-was-seen", failed > 0, || {
        "no call failed: the fault did not hit the calls".to_string()
    })?;
    let timeouts = w
        .calls
        .iter()
        .filter(|c| c.2 == Err(CallError::Timeout))
        .count();
    ctx.check("no-call-timed-out", timeouts == 0, || {
        format!("{timeouts} calls ran into their {CALL_TIMEOUT:?} timeout")
    })?;
    let healed_ok = w
        .calls
        .iter()
        .any(|c| c.0 + Duration::from_millis(1) >= quiet && c.2.is_ok());
    ctx.check("calls-succeed-after-heal", healed_ok, || {
        let tail: Vec<_> = w.calls.iter().rev().take(3).collect();
        format!("no call succeeded after the quiet phase; last calls: {tail:?}")
    })?;
    let _ = (HEARTBEAT, DOWN_AFTER);
    Ok(())
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn calls_never_hang_when_the_callee_node_crashes() {
    let crash = cluster::crash_node_1(700, 2_000, 3_000);
    Check::new(&CallUnderFailure)
        .variant("crash")
        .sim(|s| s.plan(crash))
        .seeds(0..20)
        .determinism(true)
        .run();
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn calls_never_hang_when_the_callee_node_is_partitioned() {
    let cut = cluster::cut_0_from_1(700, 2_000, 3_000);
    Check::new(&CallUnderFailure)
        .variant("partition")
        .sim(|s| s.plan(cut))
        .seeds(0..20)
        .run();
}
