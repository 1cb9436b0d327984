//! `event-fanout` (Fix #17): an emitter sends a stream of numbered metrics, signals and
//! notifications (the mix and the pauses drawn from the seed) to an auditor that wants all
//! three kinds.
//!
//! - `flawed`: two event systems, as in the report's platform before its unified event system:
//!   metrics go straight to their handlers (telemetry), signals through a signal-bus process,
//!   and notifications to both (telemetry by default, plus the compatibility forwarding to the
//!   bus). The auditor gets some events twice, and a metric emitted after a signal can arrive
//!   before it (the signal takes one more hop).
//! - `fixed`: one `services::bus`, one `emit` for every kind.
//!
//! Invariant (after the quiet phase): `once-in-emit-order` (safety): the auditor received every
//! event exactly once, in the order they were emitted.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration, Stream};
use groundhog_runtime::services::bus::{self, BusEvent};
use groundhog_runtime::{Ctx, Event, ExitReason, Node, Pid};
use groundhog_sim::Violation;
use groundhog_sim::{BoxFuture, Driver, FaultMix, NodeCtx, Scenario, Setup};
use rand::Rng;
use serde::{Deserialize, Serialize};

const KINDS: [&str; 3] = ["metric", "signal", "notification"];
const EVENTS: u32 = 40;
const SEC: Duration = Duration::from_secs(1);

#[derive(Default)]
struct World {
    emitted: Vec<u32>,
    received: Vec<u32>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// The flawed variant's signal bus: forwards what it is given.
#[derive(Debug, Serialize, Deserialize)]
struct Signal(u32);

pub struct EventFanout;

impl Scenario for EventFanout {
    fn name(&self) -> &'static str {
        "event-fanout"
    }

    fn about(&self) -> &'static str {
        "every event reaches a subscriber once and in emit order, whatever its kind"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        Setup::new(1, FaultMix::new(vec![], 0.0, 1_000)).seed_budget(5)
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let (seed, unified) = (ctx.seed(), ctx.variant() == "fixed");
    {
        let world = world.clone();
        ctx.start_node(0, move |node: NodeCtx| {
            let world = world.clone();
            async move { node_main(node.incarnation(), world, seed, unified).await }
        });
    }
    ctx.quiesce().await;
    rt::sleep(SEC).await;
    let w = lock(&world);
    ctx.check("once-in-emit-order", w.received == w.emitted, || {
        let first = w
            .received
            .iter()
            .zip(&w.emitted)
            .position(|(r, e)| r != e)
            .unwrap_or(w.received.len().min(w.emitted.len()));
        format!(
            "emitted {} events, received {}; first difference at position {first}: got {}, \
             emitted {}",
            w.emitted.len(),
            w.received.len(),
            event_at(&w.received, first),
            event_at(&w.emitted, first)
        )
    })
}

/// Event `i` of `events` as a message names it: `event 7`, or `nothing` past the end.
fn event_at(events: &[u32], i: usize) -> String {
    events
        .get(i)
        .map_or_else(|| "nothing".to_string(), |e| format!("event {e}"))
}

async fn node_main(incarnation: u64, world: Shared, seed: u64, unified: bool) {
    let node = Node::local(0, incarnation);
    let rng = rt::seeded_rng(seed, Stream::Extra(incarnation as u32));
    if unified {
        let Ok(sup) = bus::start(&node, "bus-sup", None).await else {
            return;
        };
        node.spawn("emitter", move |ctx: Ctx<()>| async move {
            let Ok(Some(bus)) = bus::bus_pid(&ctx, sup).await else {
                return ExitReason::error("no bus");
            };
            let (ready, subscribed) = futures::channel::oneshot::channel();
            auditor(ctx.node(), &world, Some((bus, ready)));
            if subscribed.await != Ok(true) {
                return ExitReason::error("the auditor could not subscribe");
            }
            emit_all(rng, &world, |kind, id| {
                let _ = bus::emit(&ctx, bus, kind, id.to_be_bytes().to_vec());
            })
            .await;
            ExitReason::Normal
        });
    } else {
        let auditor = auditor(&node, &world, None);
        // The signal bus: one more hop for signals (and forwarded notifications).
        let signal_bus = node.spawn("signal-bus", move |mut ctx: Ctx<Signal>| async move {
            let mut seq = 0;
            loop {
                if let Event::Msg { msg, .. } = ctx.recv().await {
                    seq += 1;
                    let _ = ctx.send(auditor, event("signal", seq, msg.0));
                }
            }
        });
        node.spawn("emitter", move |ctx: Ctx<()>| async move {
            let mut direct = 0;
            emit_all(rng, &world, |kind, id| {
                if kind != "signal" {
                    // Telemetry: straight to the handler.
                    direct += 1;
                    let _ = ctx.send(auditor, event(kind, direct, id));
                }
                if kind != "metric" {
                    let _ = ctx.send(signal_bus, Signal(id));
                }
            })
            .await;
            ExitReason::Normal
        });
    }
}

/// The auditor: subscribes to every kind on `bus` if given (saying whether it could), then
/// records the number of each event it receives.
fn auditor(
    node: &Node,
    world: &Shared,
    bus: Option<(Pid, futures::channel::oneshot::Sender<bool>)>,
) -> Pid {
    let w = world.clone();
    node.spawn("auditor", move |mut ctx: Ctx<BusEvent>| async move {
        if let Some((bus, ready)) = bus {
            let _ = ready.send(bus::subscribe(&ctx, bus, &KINDS, SEC).await.is_ok());
        }
        loop {
            if let Event::Msg { msg, .. } = ctx.recv().await {
                let id = u32::from_be_bytes(msg.payload[..4].try_into().unwrap_or_default());
                lock(&w).received.push(id);
            }
        }
    })
}

fn event(kind: &str, seq: u64, id: u32) -> BusEvent {
    BusEvent {
        kind: kind.to_string(),
        seq,
        payload: id.to_be_bytes().to_vec(),
    }
}

/// Emits `EVENTS` numbered events of seeded kinds, with seeded pauses (zero half the time, so
/// events often go back to back), recording each as emitted before it is sent.
async fn emit_all(mut rng: rt::ChaCha8Rng, world: &Shared, mut send: impl FnMut(&str, u32)) {
    for id in 0..EVENTS {
        let kind = KINDS[rng.gen_range(0..KINDS.len())];
        lock(world).emitted.push(id);
        send(kind, id);
        if rng.gen_bool(0.5) {
            rt::sleep(Duration::from_millis(rng.gen_range(1..20))).await;
        }
    }
}
