//! Figures of the real build (tokio, no simulation): the baselines a user weighs against.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, oneshot};

use crate::measure::median_of;
use crate::table::{Row, Table};
use crate::Opts;

pub fn all(table: &mut Table, opts: &Opts) {
    if opts.wants("time-to-bug") {
        stress(table, opts, "lost-update", |_| lost_update_round());
        stress(table, opts, "monitor-race", monitor_race_round);
        stress(table, opts, "transaction-rollback", transaction_round);
        stress(table, opts, "blocking-call", blocking_call_round);
    }
}

enum Request {
    Get(oneshot::Sender<u64>),
    Put(u64, oneshot::Sender<()>),
}

/// One round of lost-update's race on real threads: three clients each read-then-write the
/// counter of a server task five times. Returns whether an update was lost.
async fn lost_update_round() -> bool {
    let (tx, mut rx) = mpsc::channel::<Request>(64);
    let server = tokio::spawn(async move {
        let mut value = 0u64;
        while let Some(r) = rx.recv().await {
            match r {
                Request::Get(reply) => {
                    let _ = reply.send(value);
                }
                Request::Put(v, reply) => {
                    value = v;
                    let _ = reply.send(());
                }
            }
        }
        value
    });
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    let (get, got) = oneshot::channel();
                    tx.send(Request::Get(get)).await.expect("server alive");
                    let v = got.await.expect("server answers");
                    let (put, done) = oneshot::channel();
                    tx.send(Request::Put(v + 1, put))
                        .await
                        .expect("server alive");
                    done.await.expect("server answers");
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("client finished");
    }
    drop(tx);
    let value = server.await.expect("server finished");
    value != 15
}

/// How often a stress run on a 2-thread tokio runtime finds a race within a fixed wall time per
/// sample: the baseline for the simulation's time to bug. `round(i)` runs round `i` of the race
/// and returns whether it went wrong.
fn stress<F, Fut>(table: &mut Table, opts: &Opts, race: &str, round: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = bool>,
{
    let budget = if opts.quick {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let mut rates = Vec::new();
    let mut firsts = Vec::new();
    let mut total_rounds = 0u64;
    for _ in 0..opts.samples {
        let start = Instant::now();
        let (mut rounds, mut found) = (0u64, 0u64);
        let mut first = None;
        while start.elapsed() < budget {
            if runtime.block_on(round(total_rounds + rounds)) {
                found += 1;
                first.get_or_insert(start.elapsed());
            }
            rounds += 1;
        }
        total_rounds += rounds;
        rates.push(found as f64 / rounds as f64);
        firsts.push(first.map_or(f64::INFINITY, |d| d.as_secs_f64()));
    }
    let rate = median_of(rates);
    let first = median_of(firsts);
    table.push(Row {
        figure: format!("real stress, {race} race, 2 tokio threads, {budget:?} per sample"),
        groundhog: "-".into(),
        baseline: format!(
            "found in {:.2}% of rounds ({} rounds); first after {}",
            rate * 100.0,
            total_rounds,
            if first.is_finite() {
                format!("{:.1} ms", first * 1e3)
            } else {
                "never".into()
            }
        ),
        ratio: "-".into(),
        target: "report how often real stress finds it".into(),
        met: None,
    });
}

/// A small per-round variation (how many yields before a step), so rounds differ.
fn jitter(round: u64, salt: u64, max: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(round.wrapping_mul(0x9e37_79b9) ^ salt);
    rng.gen_range(0..max)
}

async fn yields(n: u64) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

/// monitor-race's flaw: check that the agent is alive, then subscribe to a notice of deaths that
/// only reaches subscribers present when it is sent. Wrong when the watcher ends up believing a
/// dead agent alive.
async fn monitor_race_round(round: u64) -> bool {
    let alive = Arc::new(AtomicBool::new(true));
    let subscribers: Arc<Mutex<Vec<oneshot::Sender<()>>>> = Arc::default();
    let (a, s) = (alive.clone(), subscribers.clone());
    let agent = tokio::spawn(async move {
        yields(jitter(round, 1, 8)).await;
        a.store(false, Ordering::SeqCst);
        for tx in s.lock().expect("not poisoned").drain(..) {
            let _ = tx.send(());
        }
    });
    let (a, s) = (alive.clone(), subscribers.clone());
    let watcher = tokio::spawn(async move {
        yields(jitter(round, 2, 8)).await;
        if !a.load(Ordering::SeqCst) {
            return false; // saw it dead: right
        }
        // The gap the Elixir code had: the subscription is a separate step.
        tokio::task::yield_now().await;
        let (tx, rx) = oneshot::channel();
        s.lock().expect("not poisoned").push(tx);
        // Believes it alive until told otherwise; wrong if never told.
        tokio::time::timeout(Duration::from_millis(5), rx)
            .await
            .is_err()
    });
    agent.await.expect("agent finished");
    watcher.await.expect("watcher finished")
}

/// transaction-rollback's flaw: a batch applied op by op while the writer can be killed between
/// ops. Wrong when the table holds part of a batch.
async fn transaction_round(round: u64) -> bool {
    const OPS: u64 = 4;
    let table: Arc<Mutex<Vec<u64>>> = Arc::default();
    let t = table.clone();
    let writer = tokio::spawn(async move {
        for op in 0..OPS {
            t.lock().expect("not poisoned").push(op);
            tokio::task::yield_now().await;
        }
    });
    let abort = writer.abort_handle();
    let killer = tokio::spawn(async move {
        yields(jitter(round, 3, 2 * OPS)).await;
        abort.abort();
    });
    let _ = writer.await;
    killer.await.expect("killer finished");
    let n = table.lock().expect("not poisoned").len() as u64;
    n != 0 && n != OPS
}

/// blocking-call's flaw: the server awaits a slow request inside its own loop. Wrong when a fast
/// caller queued behind it misses its deadline.
async fn blocking_call_round(round: u64) -> bool {
    let (tx, mut rx) = mpsc::channel::<(bool, oneshot::Sender<()>)>(8);
    let server = tokio::spawn(async move {
        while let Some((slow, reply)) = rx.recv().await {
            if slow {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            let _ = reply.send(());
        }
    });
    let slow_tx = tx.clone();
    let slow = tokio::spawn(async move {
        yields(jitter(round, 4, 4)).await;
        let (reply, done) = oneshot::channel();
        slow_tx.send((true, reply)).await.expect("server alive");
        let _ = done.await;
    });
    let fast = tokio::spawn(async move {
        yields(jitter(round, 5, 4)).await;
        let (reply, done) = oneshot::channel();
        tx.send((false, reply)).await.expect("server alive");
        tokio::time::timeout(Duration::from_millis(1), done)
            .await
            .is_err()
    });
    let missed = fast.await.expect("fast caller finished");
    slow.await.expect("slow caller finished");
    server.abort();
    missed
}
