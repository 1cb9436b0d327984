use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
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
