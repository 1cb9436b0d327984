use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand::Rng;

use super::{Conn, Pool, PoolConfig, PoolError, PoolStats};
use crate::rt::{self, Duration, Instant, Stream};
use crate::services::Problems;
use crate::{CallError, Ctx, Event, ExitReason, Node, NodeConfig, Pid};

const SEC: Duration = Duration::from_secs(1);
/// Bounds a failing wait; a passing test ends on its events long before.
const BOUND: Duration = Duration::from_secs(60);

fn config(size: u32, max_waiters: usize) -> PoolConfig {
    PoolConfig {
        size,
        max_waiters,
        max_wait: Duration::from_secs(5),
    }
}

/// What a test tells a client process to do.
enum Cmd {
    Checkout(Duration, oneshot::Sender<Result<Conn, PoolError>>),
    Checkin(Conn),
    /// A request to the endpoint on `conn`; answered with the endpoint's reply.
    Request(Conn, oneshot::Sender<Result<u32, CallError>>),
}

/// A client process doing what it is told, one command at a time.
fn client(node: &Node, pool: &Pool) -> (Pid, mpsc::UnboundedSender<Cmd>) {
    let (tx, mut rx) = mpsc::unbounded::<Cmd>();
    let pool = pool.clone();
    let pid = node.spawn("client", move |ctx: Ctx<()>| async move {
        while let Some(cmd) = rx.next().await {
            match cmd {
                Cmd::Checkout(wait, done) => {
                    let _ = done.send(pool.checkout(&ctx, wait).await);
                }
                Cmd::Checkin(conn) => pool.checkin(&ctx, conn),
                Cmd::Request(conn, done) => {
                    let _ = done.send(ctx.call(conn.endpoint, conn, BOUND).await);
                }
            }
        }
        ExitReason::Normal
    });
    (pid, tx)
}

fn checkout(
    c: &mpsc::UnboundedSender<Cmd>,
    wait: Duration,
) -> oneshot::Receiver<Result<Conn, PoolError>> {
    let (tx, rx) = oneshot::channel();
    c.unbounded_send(Cmd::Checkout(wait, tx)).unwrap();
    rx
}

async fn got(rx: oneshot::Receiver<Result<Conn, PoolError>>) -> Result<Conn, PoolError> {
    rt::timeout(BOUND, rx)
        .await
        .expect("answered")
        .expect("client alive")
}

/// Waits (polling an observable condition, up to `BOUND`) until `cond` holds.
async fn until(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !cond() {
        assert!(Instant::now() < deadline, "condition not reached");
        rt::sleep(Duration::from_millis(1)).await;
    }
}

/// An endpoint that answers each request only when its gate lets it through (one permit per
/// request), and records how many requests are in progress on each connection.
fn endpoint(node: &Node) -> (Pid, mpsc::UnboundedSender<()>, Arc<Mutex<Vec<u32>>>) {
    let (gate_tx, mut gate) = mpsc::unbounded::<()>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let pid = node.spawn("endpoint", move |mut ctx: Ctx<Conn>| async move {
        loop {
            if let Event::Call { msg, reply, .. } = ctx.recv().await {
                s.lock().unwrap().push(msg.id);
                // Slow: nothing else is served until the test opens the gate.
                gate.next().await;
                reply.reply(msg.id * 10);
            }
        }
    });
    (pid, gate_tx, seen)
}

#[test]
fn an_invalid_configuration_is_refused_with_every_problem() {
    let bad = PoolConfig {
        size: 0,
        max_waiters: 0,
        max_wait: Duration::ZERO,
    };
    assert_eq!(Problems::of(&bad).len(), 2);
    let long = PoolConfig {
        max_wait: Duration::from_secs(7_200),
        ..config(1, 0)
    };
    assert_eq!(Problems::of(&long).len(), 1);
    assert_eq!(Problems::of(&config(1, 0)).len(), 0);
}

/// Two connections: a third checkout waits and is served, first come first served, when one
/// is checked in; a second waiter beyond `max_waiters` is refused at once (`QueueFull`); a
/// wait of zero is refused at once and a wait that runs out is refused after it
/// (`Exhausted`); a stale check-in changes nothing.
#[rt::test]
async fn a_full_pool_refuses_with_a_typed_error_and_a_waiter_gets_the_next_free_connection() {
    let node = Node::local(0, 1);
    let (ep, _gate, _) = endpoint(&node);
    let (pool, _sup) = Pool::start(&node, "pool", None, ep, config(2, 1))
        .await
        .unwrap();
    let (_, a) = client(&node, &pool);
    let (_, b) = client(&node, &pool);
    let (_, c) = client(&node, &pool);
    let (_, d) = client(&node, &pool);
    let first = got(checkout(&a, Duration::ZERO)).await.unwrap();
    let second = got(checkout(&b, Duration::ZERO)).await.unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(first.endpoint, ep);
    let waiting = checkout(&c, Duration::from_secs(2));
    until(|| pool.stats().waiting == 1).await;
    assert_eq!(
        got(checkout(&d, Duration::from_secs(2))).await,
        Err(PoolError::QueueFull { waiting: 1 })
    );
    a.unbounded_send(Cmd::Checkin(first)).unwrap();
    let third = got(waiting).await.unwrap();
    assert_eq!(third.id, first.id, "the freed connection, to the waiter");
    assert!(third.lease > second.lease, "under a new lease");
    assert_eq!(
        got(checkout(&d, Duration::ZERO)).await,
        Err(PoolError::Exhausted {
            size: 2,
            waited: Duration::ZERO
        })
    );
    let started = Instant::now();
    let wait = Duration::from_millis(100);
    assert_eq!(
        got(checkout(&d, wait)).await,
        Err(PoolError::Exhausted {
            size: 2,
            waited: wait
        })
    );
    if rt::SIMULATED {
        assert_eq!(
            started.elapsed().as_millis(),
            100,
            "refused when the wait ran out"
        );
    }
    // The first lease again: stale, the connection stays with its holder.
    a.unbounded_send(Cmd::Checkin(first)).unwrap();
    until(|| pool.stats().stale_checkins == 1).await;
    let s = pool.stats();
    assert_eq!((s.held, s.waiting, s.refused, s.checkouts), (2, 0, 3, 3));
    assert_eq!(node.timer_count(), 0, "no timer left armed");
}

/// A holder that dies without checking in: its connection goes to the waiter.
#[rt::test]
async fn a_dead_holders_connection_goes_to_the_next_waiter() {
    let node = Node::local(0, 1);
    let (ep, _gate, _) = endpoint(&node);
    let (pool, _sup) = Pool::start(&node, "pool", None, ep, config(1, 4))
        .await
        .unwrap();
    let (holder, a) = client(&node, &pool);
    let (_, w) = client(&node, &pool);
    let held = got(checkout(&a, Duration::ZERO)).await.unwrap();
    let waiting = checkout(&w, Duration::from_secs(5));
    until(|| pool.stats().waiting == 1).await;
    node.exit(holder, holder, ExitReason::Kill);
    let next = got(waiting).await.unwrap();
    assert_eq!(next.id, held.id);
    let s = pool.stats();
    assert_eq!((s.held, s.reclaimed, s.waiting), (1, 1, 0));
}

/// The manager crashes while connections are held: the restarted manager keeps the holdings
/// (it never hands out more than `size`), monitors the holders again, and reclaims from a
/// holder that dies afterwards.
#[rt::test]
async fn a_restarted_manager_keeps_the_holdings_and_still_reclaims() {
    let node = Node::local(0, 1);
    let (ep, _gate, _) = endpoint(&node);
    let (pool, sup) = Pool::start(&node, "pool", None, ep, config(1, 4))
        .await
        .unwrap();
    let (holder, a) = client(&node, &pool);
    let (_, w) = client(&node, &pool);
    got(checkout(&a, Duration::ZERO)).await.unwrap();
    let old = pool.manager().unwrap();
    node.exit(old, old, ExitReason::Kill);
    until(|| pool.manager().is_some_and(|m| m != old && node.is_alive(m))).await;
    assert_eq!(node.supervisor_child(sup, "manager"), pool.manager());
    assert_eq!(
        got(checkout(&w, Duration::ZERO)).await,
        Err(PoolError::Exhausted {
            size: 1,
            waited: Duration::ZERO
        }),
        "the held connection is still held"
    );
    let waiting = checkout(&w, Duration::from_secs(5));
    until(|| pool.stats().waiting == 1).await;
    node.exit(holder, holder, ExitReason::Kill);
    assert!(got(waiting).await.is_ok(), "reclaimed by the new manager");
    assert_eq!(pool.stats().reclaimed, 1);
}

/// The endpoint lives on another node and one request to it is slow (it waits for the test):
/// meanwhile the manager hands out and takes back another connection and answers its stats,
/// each within a millisecond of simulated time, and the slow request is still in progress after all of it.
#[rt::test]
async fn the_manager_answers_while_a_request_is_slow() {
    let far = Node::start(net_config(0, BTreeMap::new())).await.unwrap();
    let addr = far.listen_addr().unwrap();
    let near = Node::start(net_config(1, [(0, addr)].into()))
        .await
        .unwrap();
    let (ep, gate, seen) = endpoint(&far);
    let (pool, _sup) = Pool::start(&near, "pool", None, ep, config(2, 4))
        .await
        .unwrap();
    let (_, slow) = client(&near, &pool);
    let (_, quick) = client(&near, &pool);
    let conn = got(checkout(&slow, Duration::ZERO)).await.unwrap();
    let (tx, mut answer) = oneshot::channel();
    slow.unbounded_send(Cmd::Request(conn, tx)).unwrap();
    until(|| seen.lock().unwrap().len() == 1).await;
    let started = Instant::now();
    let other = got(checkout(&quick, Duration::ZERO)).await.unwrap();
    if rt::SIMULATED {
        assert!(
            started.elapsed() < Duration::from_millis(1),
            "handed out at once"
        );
    }
    assert_ne!(other.id, conn.id);
    quick.unbounded_send(Cmd::Checkin(other)).unwrap();
    until(|| pool.stats().held == 1).await;
    let started = Instant::now();
    let (stats_tx, stats_rx) = oneshot::channel();
    let p = pool.clone();
    near.spawn("asker", move |ctx: Ctx<()>| async move {
        let _ = stats_tx.send(p.stats_from_manager(&ctx, SEC).await);
        ExitReason::Normal
    });
    let stats: PoolStats = rt::timeout(BOUND, stats_rx)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((stats.held, stats.checkouts), (1, 2));
    if rt::SIMULATED {
        assert!(
            started.elapsed() < Duration::from_millis(1),
            "answered at once"
        );
    }
    assert!(
        matches!(answer.try_recv(), Ok(None)),
        "the slow request is still in progress"
    );
    gate.unbounded_send(()).unwrap();
    assert_eq!(
        rt::timeout(BOUND, answer).await.unwrap().unwrap(),
        Ok(conn.id * 10)
    );
    slow.unbounded_send(Cmd::Checkin(conn)).unwrap();
    until(|| pool.stats().held == 0).await;
}

fn net_config(index: u32, peers: BTreeMap<u32, std::net::SocketAddr>) -> NodeConfig {
    let mut c = NodeConfig::local(index, 1)
        .heartbeat(Duration::from_millis(20), Duration::from_secs(3_600))
        .secret(crate::Secret::new("connection tests' cluster secret").unwrap());
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    c.peers = peers;
    c
}

/// Requests in progress per connection, the most at once, and whether one connection had two.
type Users = (BTreeMap<u32, u32>, u32, bool);

/// Simulation only (timed): clients check out with seeded waits, use the connection for a
/// seeded time, then check in, or die holding it. Every connection has one user at a time,
/// never more than `size` are in use, every checkout gets a connection or a typed refusal, and
/// at the end every connection is free again.
#[rt::test]
async fn under_churn_no_connection_has_two_users_and_all_come_back() {
    if !rt::SIMULATED {
        return;
    }
    const SIZE: u32 = 3;
    let node = Node::local(0, 1);
    // Requests in progress per connection, the most in progress at once, and whether one
    // connection ever had two.
    let users: Arc<Mutex<Users>> = Arc::default();
    let u = users.clone();
    let ep = node.spawn("endpoint", move |mut ctx: Ctx<(Conn, u64)>| async move {
        loop {
            if let Event::Call {
                msg: (conn, ms),
                reply,
                ..
            } = ctx.recv().await
            {
                let u = u.clone();
                // Each request in its own task: the endpoint itself is not the bottleneck.
                ctx.node().spawn("request", move |_c: Ctx<()>| async move {
                    {
                        let mut u = u.lock().unwrap();
                        let n = u.0.entry(conn.id).or_default();
                        *n += 1;
                        u.2 |= *n > 1;
                        let total = u.0.values().sum::<u32>();
                        u.1 = u.1.max(total);
                    }
                    rt::sleep(Duration::from_millis(ms)).await;
                    *u.lock().unwrap().0.get_mut(&conn.id).unwrap() -= 1;
                    reply.reply(());
                    ExitReason::Normal
                });
            }
        }
    });
    let (pool, _sup) = Pool::start(&node, "pool", None, ep, config(SIZE, 4))
        .await
        .unwrap();
    let outcomes: Arc<Mutex<BTreeMap<&'static str, u32>>> = Arc::default();
    for i in 0..12u32 {
        let (pool, outcomes) = (pool.clone(), outcomes.clone());
        let mut rng = rt::seeded_rng(5, Stream::Extra(i + 1));
        // Half the clients die holding a connection, from their round `dies_after` on.
        let dies_after = if i % 2 == 0 {
            rng.gen_range(1..8)
        } else {
            u32::MAX
        };
        node.spawn("client", move |ctx: Ctx<()>| async move {
            for round in 0..10 {
                rt::sleep(Duration::from_millis(rng.gen_range(0..30))).await;
                let wait = Duration::from_millis(rng.gen_range(0..80));
                let what = match pool.checkout(&ctx, wait).await {
                    Ok(conn) => {
                        let ms: u64 = rng.gen_range(1..60);
                        let _: Result<(), _> = ctx.call(conn.endpoint, (conn, ms), BOUND).await;
                        if round >= dies_after {
                            *outcomes.lock().unwrap().entry("crashed").or_default() += 1;
                            return ExitReason::error("client crashed holding a connection");
                        }
                        pool.checkin(&ctx, conn);
                        "served"
                    }
                    Err(PoolError::Exhausted { .. }) => "exhausted",
                    Err(PoolError::QueueFull { .. }) => "queue-full",
                    Err(PoolError::Unavailable(_)) => "unavailable",
                };
                *outcomes.lock().unwrap().entry(what).or_default() += 1;
            }
            ExitReason::Normal
        });
    }
    rt::sleep(Duration::from_secs(3)).await;
    let s = pool.stats();
    assert_eq!(s.held, 0, "every connection came back");
    let outcomes = outcomes.lock().unwrap().clone();
    assert_eq!(
        s.reclaimed,
        u64::from(outcomes["crashed"]),
        "one per client that died holding one"
    );
    let (in_use, most, doubled) = users.lock().unwrap().clone();
    assert!(in_use.values().all(|n| *n == 0));
    assert!(!doubled, "a connection had two users at once");
    assert_eq!(
        most, SIZE,
        "at most {SIZE} in use at once, and the pool was used to the full"
    );
    assert!(!outcomes.contains_key("unavailable"), "{outcomes:?}");
    assert!(
        outcomes["served"] > 20 && outcomes["exhausted"] > 5,
        "{outcomes:?}"
    );
}

/// What the model test tells one of its clients to do; each command is acknowledged once done.
enum ModelCmd {
    Checkout(Duration, oneshot::Sender<Result<Conn, PoolError>>),
    Checkin(Conn, oneshot::Sender<()>),
}

/// A client of the model test, and what the test knows of it.
struct ModelClient {
    pid: Pid,
    tx: mpsc::UnboundedSender<ModelCmd>,
    /// Its checkout in progress, if any (then it takes no other command).
    pending: Option<oneshot::Receiver<Result<Conn, PoolError>>>,
    held: Vec<Conn>,
}

fn model_client(node: &Node, pool: &Pool) -> ModelClient {
    let (tx, mut rx) = mpsc::unbounded::<ModelCmd>();
    let pool = pool.clone();
    let pid = node.spawn("client", move |ctx: Ctx<()>| async move {
        while let Some(cmd) = rx.next().await {
            match cmd {
                ModelCmd::Checkout(wait, done) => {
                    let _ = done.send(pool.checkout(&ctx, wait).await);
                }
                ModelCmd::Checkin(conn, done) => {
                    pool.checkin(&ctx, conn);
                    let _ = done.send(());
                }
            }
        }
        ExitReason::Normal
    });
    ModelClient {
        pid,
        tx,
        pending: None,
        held: Vec::new(),
    }
}

/// Runs `body` in a fresh process on `node` and returns what it returned.
async fn in_process<T, F, Fut>(node: &Node, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce(Ctx<()>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    node.spawn("helper", move |ctx: Ctx<()>| async move {
        let _ = tx.send(body(ctx).await);
        ExitReason::Normal
    });
    rt::timeout(BOUND, rx).await.expect("done").expect("ran")
}

/// Lets every other ready task run once before this one goes on.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// Kills `pid` and returns once it is gone.
async fn kill(node: &Node, pid: Pid) {
    in_process(node, move |mut ctx| async move {
        let m = ctx.monitor(pid);
        ctx.exit(pid, ExitReason::Kill);
        while !matches!(ctx.recv().await, Event::Down { reference, .. } if reference == m) {}
    })
    .await
}

/// Asks the manager for its stats: behind everything already in its mailbox.
async fn sync(node: &Node, pool: &Pool) -> PoolStats {
    let p = pool.clone();
    in_process(node, move |ctx| async move {
        p.stats_from_manager(&ctx, SEC).await
    })
    .await
    .expect("the manager answers")
}

const MODEL_SIZE: u32 = 2;
const MODEL_WAITERS: usize = 2;
/// Waits asked for, and the longest: half a millisecond out of step with the test's own
/// whole-millisecond waits, so a deadline never falls on the instant the test looks.
const WAITS: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_micros(40_500),
    Duration::from_micros(150_500),
    Duration::from_secs(1),
];
const MODEL_MAX_WAIT: Duration = Duration::from_micros(300_500);

/// The reference pool: a list of slots, a queue of waiters, and counts.
#[derive(Debug, Default)]
struct PoolModel {
    slots: Vec<Option<(Pid, u64)>>,
    /// When the running manager began monitoring each slot's holder: a dead holder's `Down`s
    /// come in that order, one per connection, each handed to the next waiter.
    monitored: Vec<u64>,
    monitors: u64,
    /// (client index, asked, deadline), in arrival order.
    waiters: VecDeque<(usize, Duration, Duration)>,
    next_lease: u64,
    stats: PoolStats,
    /// Answers due to waiting clients, by client index.
    answers: BTreeMap<usize, Result<Conn, PoolError>>,
}

impl PoolModel {
    fn new() -> PoolModel {
        PoolModel {
            slots: vec![None; MODEL_SIZE as usize],
            monitored: vec![0; MODEL_SIZE as usize],
            next_lease: 1,
            stats: PoolStats {
                size: MODEL_SIZE,
                ..PoolStats::default()
            },
            ..PoolModel::default()
        }
    }

    fn grant(&mut self, id: usize, holder: Pid, endpoint: Pid) -> Conn {
        let lease = self.next_lease;
        self.next_lease += 1;
        self.stats.checkouts += 1;
        self.slots[id] = Some((holder, lease));
        self.monitors += 1;
        self.monitored[id] = self.monitors;
        Conn {
            id: id as u32,
            lease,
            endpoint,
        }
    }

    /// Waiters whose deadline has passed are refused.
    fn expire(&mut self, now: Duration) {
        let (gone, kept): (VecDeque<_>, VecDeque<_>) =
            self.waiters.drain(..).partition(|w| w.2 <= now);
        self.waiters = kept;
        for (c, asked, _) in gone {
            self.stats.refused += 1;
            let refusal = PoolError::Exhausted {
                size: MODEL_SIZE,
                waited: asked,
            };
            self.answers.insert(c, Err(refusal));
        }
    }

    /// Free connections go to the waiters, first come first served.
    fn serve(&mut self, pids: &[Pid], endpoint: Pid) {
        while let Some(id) = self.slots.iter().position(Option::is_none) {
            let Some((c, _, _)) = self.waiters.pop_front() else {
                break;
            };
            let conn = self.grant(id, pids[c], endpoint);
            self.answers.insert(c, Ok(conn));
        }
    }

    /// A checkout by client `c`: answered now, or `None` if it waits.
    fn checkout(
        &mut self,
        c: usize,
        pid: Pid,
        wait: Duration,
        now: Duration,
        endpoint: Pid,
    ) -> Option<Result<Conn, PoolError>> {
        let wait = wait.min(MODEL_MAX_WAIT);
        let free = self.slots.iter().position(Option::is_none);
        if let Some(id) = free.filter(|_| self.waiters.is_empty()) {
            Some(Ok(self.grant(id, pid, endpoint)))
        } else if wait.is_zero() {
            self.stats.refused += 1;
            Some(Err(PoolError::Exhausted {
                size: MODEL_SIZE,
                waited: wait,
            }))
        } else if self.waiters.len() >= MODEL_WAITERS {
            self.stats.refused += 1;
            Some(Err(PoolError::QueueFull {
                waiting: self.waiters.len(),
            }))
        } else {
            self.waiters.push_back((c, wait, now + wait));
            None
        }
    }

    fn checkin(&mut self, conn: Conn) {
        match &mut self.slots[conn.id as usize] {
            Some((_, lease)) if *lease == conn.lease => self.slots[conn.id as usize] = None,
            _ => self.stats.stale_checkins += 1,
        }
    }

    /// `pid` died: every connection it held comes back, in the order its holder was
    /// monitored, each to the next waiter.
    fn died(&mut self, pid: Pid, pids: &[Pid], endpoint: Pid) {
        let mut held: Vec<usize> = (0..self.slots.len())
            .filter(|&id| self.slots[id].is_some_and(|(h, _)| h == pid))
            .collect();
        held.sort_by_key(|&id| self.monitored[id]);
        for id in held {
            self.slots[id] = None;
            self.stats.reclaimed += 1;
            self.serve(pids, endpoint);
        }
    }

    /// A restarted manager monitors every holder again, in slot order.
    fn restarted(&mut self) {
        for id in 0..self.slots.len() {
            if self.slots[id].is_some() {
                self.monitors += 1;
                self.monitored[id] = self.monitors;
            }
        }
    }

    fn expected_stats(&self) -> PoolStats {
        PoolStats {
            held: self.slots.iter().filter(|s| s.is_some()).count() as u32,
            waiting: self.waiters.len(),
            ..self.stats
        }
    }
}

#[derive(Debug, Clone)]
enum PoolOp {
    /// An idle client (the `c`-th, modulo) checks out with the `w`-th of `WAITS`.
    Checkout(usize, usize),
    /// An idle holder checks in its `k`-th connection.
    Checkin(usize, usize),
    /// An idle client checks in a connection already returned (a stale lease).
    Stale(usize, usize),
    /// An idle client dies, holding what it holds.
    Kill(usize),
    Wait(u64),
    /// The manager is killed; its supervisor restarts it.
    Restart,
}

fn pool_ops() -> impl Strategy<Value = Vec<PoolOp>> {
    let op = prop_oneof![
        6 => (0usize..8, 0usize..WAITS.len()).prop_map(|(c, w)| PoolOp::Checkout(c, w)),
        4 => (0usize..8, 0usize..4).prop_map(|(c, k)| PoolOp::Checkin(c, k)),
        1 => (0usize..8, 0usize..8).prop_map(|(c, k)| PoolOp::Stale(c, k)),
        1 => (0usize..8).prop_map(PoolOp::Kill),
        3 => (0u64..200).prop_map(PoolOp::Wait),
        1 => Just(PoolOp::Restart),
    ];
    prop::collection::vec(op, 1..80)
}

/// A deterministic runner: the same cases on every run, nothing persisted.
fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// The pool with its manager, on a simulated node, against a reference pool, across kills of
/// the manager: after every step (synchronised by a stats call behind it), every answer a
/// client got is the model's (which connection under which lease, or the typed refusal:
/// `Exhausted` at once for a wait of zero or when the wait ran out, `QueueFull` beyond
/// `max_waiters`), waiters are served first come first served by check-ins and by reclaims
/// from dead holders, a stale check-in changes nothing, and the counts and who holds which
/// connection are the model's. A kill of the manager keeps every holding (a restarted manager
/// still reclaims from a holder that dies later) and fails the checkouts waiting on it with
/// `Unavailable`.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn the_pool_matches_the_model_across_restarts_of_its_manager() {
    const CLIENTS: usize = 4;
    // Cases in which a waiter was served by a check-in, one by a reclaim, one was refused with
    // QueueFull, one ran out of time, one was failed by a restart, and a restart came while a
    // connection was held.
    let reached = std::sync::Mutex::new([0u32; 6]);
    runner(256)
        .run(&pool_ops(), |ops| {
            let reached = &reached;
            let world = rt::World::new(3, &rt::NetConfig::default(), None).unwrap();
            world.block_on(async move {
                let node = Node::local(0, 1);
                let ep = node.spawn("endpoint", |mut ctx: Ctx<()>| async move {
                    loop {
                        ctx.recv().await;
                    }
                });
                let config = PoolConfig {
                    size: MODEL_SIZE,
                    max_waiters: MODEL_WAITERS,
                    max_wait: MODEL_MAX_WAIT,
                };
                let (pool, sup) = Pool::start(&node, "pool", None, ep, config).await.unwrap();
                let mut clients: Vec<ModelClient> =
                    (0..CLIENTS).map(|_| model_client(&node, &pool)).collect();
                let mut model = PoolModel::new();
                let mut returned: Vec<Conn> = Vec::new();
                let mut restarts = 0;
                let mut seen = [false; 6];
                for op in ops {
                    let idle: Vec<usize> = (0..CLIENTS)
                        .filter(|&c| clients[c].pending.is_none())
                        .collect();
                    let now = pool.now();
                    match op {
                        PoolOp::Checkout(c, w) if !idle.is_empty() => {
                            let c = idle[c % idle.len()];
                            let (tx, rx) = oneshot::channel();
                            clients[c]
                                .tx
                                .unbounded_send(ModelCmd::Checkout(WAITS[w], tx))
                                .unwrap();
                            clients[c].pending = Some(rx);
                            if let Some(answer) =
                                model.checkout(c, clients[c].pid, WAITS[w], now, ep)
                            {
                                seen[2] |= matches!(answer, Err(PoolError::QueueFull { .. }));
                                model.answers.insert(c, answer);
                            }
                        }
                        PoolOp::Checkin(c, k) => {
                            let holders: Vec<usize> = idle
                                .iter()
                                .copied()
                                .filter(|&c| !clients[c].held.is_empty())
                                .collect();
                            if holders.is_empty() {
                                continue;
                            }
                            let c = holders[c % holders.len()];
                            let k = k % clients[c].held.len();
                            let conn = clients[c].held.remove(k);
                            let (tx, rx) = oneshot::channel();
                            clients[c]
                                .tx
                                .unbounded_send(ModelCmd::Checkin(conn, tx))
                                .unwrap();
                            rx.await.unwrap();
                            model.checkin(conn);
                            returned.push(conn);
                            let waiting = model.waiters.len();
                            let pids: Vec<Pid> = clients.iter().map(|c| c.pid).collect();
                            model.serve(&pids, ep);
                            seen[0] |= model.waiters.len() < waiting;
                        }
                        PoolOp::Stale(c, k) if !idle.is_empty() && !returned.is_empty() => {
                            let c = idle[c % idle.len()];
                            let conn = returned[k % returned.len()];
                            let (tx, rx) = oneshot::channel();
                            clients[c]
                                .tx
                                .unbounded_send(ModelCmd::Checkin(conn, tx))
                                .unwrap();
                            rx.await.unwrap();
                            model.checkin(conn);
                        }
                        PoolOp::Kill(c) if !idle.is_empty() => {
                            let c = idle[c % idle.len()];
                            let dead = clients[c].pid;
                            kill(&node, dead).await;
                            returned.append(&mut clients[c].held);
                            clients[c] = model_client(&node, &pool);
                            let waiting = model.waiters.len();
                            let pids: Vec<Pid> = clients.iter().map(|c| c.pid).collect();
                            model.died(dead, &pids, ep);
                            seen[1] |= model.waiters.len() < waiting;
                        }
                        PoolOp::Wait(ms) => {
                            rt::sleep(Duration::from_millis(ms)).await;
                            let waiting = model.waiters.len();
                            model.expire(pool.now());
                            seen[3] |= model.waiters.len() < waiting;
                        }
                        // The supervisor's intensity (3 restarts in 5 s) allows three.
                        PoolOp::Restart if restarts < 3 => {
                            seen[5] |= model.slots.iter().any(Option::is_some);
                            let old = pool.manager().expect("a manager runs");
                            kill(&node, old).await;
                            in_process(&node, move |ctx| async move {
                                crate::supervisor::which_children(&ctx, sup, SEC).await
                            })
                            .await
                            .unwrap();
                            let new = pool.manager().expect("restarted");
                            prop_assert_ne!(new, old);
                            prop_assert_eq!(node.supervisor_child(sup, "manager"), Some(new));
                            seen[4] |= !model.waiters.is_empty();
                            for (c, _, _) in model.waiters.drain(..) {
                                let gone =
                                    PoolError::Unavailable(CallError::Exited(ExitReason::Killed));
                                model.answers.insert(c, Err(gone));
                            }
                            model.restarted();
                            restarts += 1;
                        }
                        _ => {}
                    }
                    // Every answer due has come, and is the model's.
                    for (c, want) in std::mem::take(&mut model.answers) {
                        let rx = clients[c].pending.take().expect("a checkout in progress");
                        let got = rt::timeout(BOUND, rx).await.expect("answered").unwrap();
                        prop_assert_eq!(&got, &want, "client {} after {:?}", c, op);
                        if let Ok(conn) = got {
                            clients[c].held.push(conn);
                        }
                    }
                    // A checkout that waits is queued once its client has run: wait for the table
                    // to show it, then ask the manager behind everything sent so far.
                    let want = model.expected_stats();
                    for _ in 0..1_000 {
                        if pool.stats() == want {
                            break;
                        }
                        yield_now().await;
                    }
                    let stats = sync(&node, &pool).await;
                    prop_assert_eq!(stats, model.expected_stats(), "{:?} at {:?}", op, now);
                    for c in &mut clients {
                        if let Some(rx) = &mut c.pending {
                            prop_assert!(matches!(rx.try_recv(), Ok(None)), "still waiting");
                        }
                    }
                    // Who holds what: the table's slots are the model's.
                    let slots: Vec<Option<(Pid, u64)>> = pool
                        .lock()
                        .slots
                        .iter()
                        .map(|s| s.as_ref().map(|h| (h.holder, h.lease)))
                        .collect();
                    prop_assert_eq!(&slots, &model.slots);
                }
                let mut r = reached.lock().unwrap();
                for (n, s) in r.iter_mut().zip(seen) {
                    *n += s as u32;
                }
                Ok(())
            })
        })
        .unwrap();
    let r = *reached.lock().unwrap();
    assert!(
        r.iter().all(|&n| n >= 20),
        "cases served by check-in, by reclaim, queue full, ran out, failed by a restart, \
         restarted while held: {r:?}"
    );
}
