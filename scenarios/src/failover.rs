//! `failover`: a primary (node 0) acknowledges a client's writes; a backup (node 1) takes over
//! once it has not heard from the primary for `TAKE_OVER_AFTER`. Invariant: no write is
//! acknowledged under a term older than one already acknowledged (one primary at a time, as the
//! client sees it), and writes are acknowledged again once faults stop.
//!
//! - `flawed`: the primary's role is static configuration: after a restart it serves as primary
//!   again, with its old term, whether or not the backup has taken over.
//! - `fixed`: a restarted primary asks the backup who leads before serving, and stands by if the
//!   backup took over. Asking counts as being heard, so the backup cannot take over between the
//!   answer and the primary's first write.
//!
//! History: the leading term is a [`Register`] (term 1 at first). The backup's takeover is a
//! `write` of term 2 at the moment it decides; each of the client's writes is a `read` of the
//! term it was acknowledged under (`fail` when refused or unsent, `unknown` on a timeout).
//! An acknowledgement under term 1 after the takeover is a stale read:
//! `acknowledged-terms-linearizable` fails the flawed variant with the hand-written invariant
//! switched off.
//!
//! Only crashes of the primary are injected (the `primary` role), one at a time. A restarted
//! primary says hello to the backup, so a crash shorter than `TAKE_OVER_AFTER` is never noticed
//! and the flaw stays hidden: it needs an outage longer
//! than failure detection, which a swarm plan draws in most seeds (`long` or `mixed` durations)
//! and the old fixed plan shape (episodes of a twentieth to a quarter of the window) never did.
//! `groundhog sweep failover --variant flawed --durations short` passes.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration};
use groundhog_runtime::{CallError, Ctx, Event, ExitReason, Node, NodeConfig, Pid};
use groundhog_sim::checker::Register;
use groundhog_sim::{
    BoxFuture, Driver, FaultKind, FaultMix, History, Scenario, Setup, Value, Violation,
};
use serde::{Deserialize, Serialize};

const PRIMARY: u32 = 0;
const BACKUP: u32 = 1;
const CLIENT: u32 = 2;
/// The backup takes over after this long without hearing from the primary.
const TAKE_OVER_AFTER: Duration = Duration::from_millis(1_000);
const PING_EVERY: Duration = Duration::from_millis(100);
const CALL_TIMEOUT: Duration = Duration::from_millis(150);
const WRITE_EVERY: Duration = Duration::from_millis(50);
const FAULT_WINDOW_MS: u64 = 2_400;

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// A (re)started primary announces itself: it counts as being heard.
    Hello,
    Ping,
    WhoLeads,
    Write(u64),
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Pong,
    /// The term under which the answering server leads, if it does.
    Leads(Option<u64>),
    Ack {
        term: u64,
    },
    NotPrimary,
}

/// The scenario's view of the system (not the system's own state).
#[derive(Default)]
struct World {
    /// Each node's current server process.
    servers: [Option<Pid>; 2],
    /// Where the client sends its writes: the last server that declared itself primary.
    primary: Option<Pid>,
    /// The highest term under which a write was acknowledged.
    max_term: u64,
    acks: u64,
    takeovers: u32,
    /// Restarted primaries that found the backup leading and stood by.
    standbys: u32,
    /// The first acknowledgement under an older term than one already acknowledged.
    stale: Option<String>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Failover;

impl Scenario for Failover {
    fn name(&self) -> &'static str {
        "failover"
    }

    fn about(&self) -> &'static str {
        "a backup takes over after a long primary outage: a restarted primary must not lead again"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }

    fn setup(&self) -> Setup {
        let faults = FaultMix::new(vec![FaultKind::CrashNode], 0.5, FAULT_WINDOW_MS)
            .role("primary", [PRIMARY])
            .role("backup", [BACKUP])
            .role("client", [CLIENT])
            .aim(FaultKind::CrashNode, &["primary"])
            .max_down(1);
        Setup::new(3, faults)
            .net(rt::NetConfig {
                loss: 0.0,
                latency: Duration::from_millis(1)..Duration::from_millis(5),
            })
            .seed_budget(20)
            .coverage("fixed", &["takeover", "standby-after-takeover"])
            .coverage("flawed", &["takeover"])
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx))
    }
}

async fn drive(ctx: Driver) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let fixed = ctx.variant() == "fixed";
    for n in [PRIMARY, BACKUP, CLIENT] {
        let world = world.clone();
        let history = ctx.history();
        ctx.start_node(n, move |node| {
            let world = world.clone();
            let history = history.clone();
            async move {
                let config = NodeConfig::cluster(n, node.incarnation(), 3);
                let rt_node = Node::start(config).await.expect("the port is free");
                match n {
                    PRIMARY => {
                        let w = world.clone();
                        let pid = rt_node.spawn("primary", move |c| primary(c, w, fixed));
                        lock(&world).servers[PRIMARY as usize] = Some(pid);
                    }
                    BACKUP => {
                        let w = world.clone();
                        let pid = rt_node.spawn("backup", move |c| backup(c, w, history));
                        lock(&world).servers[BACKUP as usize] = Some(pid);
                    }
                    _ => {
                        rt_node.spawn("client", move |c| client(c, world, history));
                    }
                }
            }
        });
    }
    let check = || {
        let w = lock(&world);
        ctx.check("one-primary-at-a-time", w.stale.is_none(), || {
            w.stale.clone().unwrap_or_default()
        })
    };
    ctx.checking(Duration::from_millis(100), check, ctx.quiesce())
        .await?;
    let before = lock(&world).acks;
    rt::sleep(Duration::from_secs(1)).await;
    check()?;
    let (acks, takeovers) = {
        let w = lock(&world);
        ctx.sometimes("takeover", w.takeovers > 0);
        ctx.sometimes("standby-after-takeover", w.standbys > 0);
        (w.acks, w.takeovers)
    };
    ctx.check("writes-acknowledged-after-heal", acks > before, || {
        format!(
            "no write acknowledged in the second after faults stopped ({takeovers} takeover(s))"
        )
    })?;
    ctx.check_linear("acknowledged-terms-linearizable", &Register::new(1u64))
}

/// Node 0's server. `fixed` asks the backup who leads before serving.
async fn primary(mut ctx: Ctx<Request>, world: Shared, fixed: bool) -> ExitReason {
    if let Some(backup) = lock(&world).servers[BACKUP as usize] {
        let _ = ctx.send(backup, Request::Hello);
    }
    let mut term = Some(1);
    if fixed {
        term = loop {
            let Some(backup) = lock(&world).servers[BACKUP as usize] else {
                rt::sleep(Duration::from_millis(10)).await;
                continue;
            };
            match ctx
                .call::<Request, Reply>(backup, Request::WhoLeads, CALL_TIMEOUT)
                .await
            {
                Ok(Reply::Leads(Some(_))) => {
                    lock(&world).standbys += 1;
                    break None;
                }
                Ok(_) => break Some(1),
                Err(_) => rt::sleep(Duration::from_millis(10)).await,
            }
        };
    }
    if term.is_some() {
        lock(&world).primary = Some(ctx.pid());
    }
    serve(&mut ctx, &world, term).await
}

async fn serve(ctx: &mut Ctx<Request>, world: &Shared, term: Option<u64>) -> ExitReason {
    loop {
        if let Event::Call { msg, reply, .. } = ctx.recv().await {
            reply.reply(answer(msg, term, world));
        }
    }
}

fn answer(msg: Request, term: Option<u64>, _world: &Shared) -> Reply {
    match (msg, term) {
        (Request::Ping | Request::Hello, _) => Reply::Pong,
        (Request::WhoLeads, t) => Reply::Leads(t),
        (Request::Write(_), Some(term)) => Reply::Ack { term },
        (Request::Write(_), None) => Reply::NotPrimary,
    }
}

/// Node 1's server: pings the primary, and takes over (term 2) after `TAKE_OVER_AFTER` of
/// silence.
async fn backup(mut ctx: Ctx<Request>, world: Shared, history: History) -> ExitReason {
    let mut term = None;
    let mut last_heard = rt::elapsed();
    ctx.send_after(PING_EVERY, 0);
    loop {
        match ctx.recv().await {
            Event::Timer { .. } if term.is_none() => {
                let target = lock(&world).servers[PRIMARY as usize];
                if let Some(p) = target {
                    let pong: Result<Reply, CallError> =
                        ctx.call(p, Request::Ping, CALL_TIMEOUT).await;
                    if pong.is_ok() {
                        last_heard = rt::elapsed();
                    }
                }
                if rt::elapsed() - last_heard > TAKE_OVER_AFTER {
                    term = Some(2);
                    history.instant("backup", "term", "write", 2u64, Value::Nil);
                    let mut w = lock(&world);
                    w.primary = Some(ctx.pid());
                    w.takeovers += 1;
                } else {
                    ctx.send_after(PING_EVERY, 0);
                }
            }
            Event::Msg {
                msg: Request::Hello,
                ..
            } => last_heard = rt::elapsed(),
            Event::Call { msg, reply, .. } => {
                if matches!(msg, Request::WhoLeads) {
                    // The primary asked: it is alive.
                    last_heard = rt::elapsed();
                }
                reply.reply(answer(msg, term, &world));
            }
            _ => {}
        }
    }
}

/// Node 2: writes to whoever the directory names as primary, and records each acknowledgement
/// (in the history: a read of the term it came under).
async fn client(ctx: Ctx<Request>, world: Shared, history: History) -> ExitReason {
    let mut value = 0;
    loop {
        rt::sleep(WRITE_EVERY).await;
        let Some(to) = lock(&world).primary else {
            continue;
        };
        value += 1;
        let op = history.invoke("client", "term", "read", Value::Nil);
        let reply: Result<Reply, CallError> =
            ctx.call(to, Request::Write(value), CALL_TIMEOUT).await;
        match &reply {
            Ok(Reply::Ack { term }) => history.ok(op, *term),
            Ok(_) | Err(CallError::NoProc | CallError::NotSent(_)) => history.fail(op),
            Err(_) => history.unknown(op),
        }
        if let Ok(Reply::Ack { term }) = reply {
            let mut w = lock(&world);
            if term < w.max_term && w.stale.is_none() {
                w.stale = Some(format!(
                    "write {value} acknowledged by {to} under term {term}, after term {} had \
                     acknowledged writes: two primaries",
                    w.max_term
                ));
            }
            w.max_term = w.max_term.max(term);
            w.acks += 1;
        }
    }
}
