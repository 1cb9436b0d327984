//! Figures of the real build (tokio, no simulation): the baselines a user weighs against.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::measure::median_of;
use crate::table::{Row, Table};
use crate::Opts;

pub fn all(table: &mut Table, opts: &Opts) {
    if opts.wants("time-to-bug") {
        lost_update_stress(table, opts.samples, opts.quick);
    }
}

enum Request {
    Get(oneshot::Sender<u64>),
    Put(u64, oneshot::Sender<()>),
}

/// One round of lost-update's race on real threads: three clients each read-then-write the
/// counter of a server task five times. Returns whether an update was lost.
async fn one_round() -> bool {
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

/// How often a stress run on a 2-thread tokio runtime finds lost-update's flaw in a fixed wall
/// time, the baseline for the simulation's time to bug.
fn lost_update_stress(table: &mut Table, samples: usize, quick: bool) {
    let budget = if quick {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a tokio runtime");
    let mut rates = Vec::new();
    let mut firsts = Vec::new();
    let mut total_rounds = 0u64;
    for _ in 0..samples {
        let start = Instant::now();
        let (mut rounds, mut lost) = (0u64, 0u64);
        let mut first = None;
        while start.elapsed() < budget {
            rounds += 1;
            if runtime.block_on(one_round()) {
                lost += 1;
                first.get_or_insert(start.elapsed());
            }
        }
        total_rounds += rounds;
        rates.push(lost as f64 / rounds as f64);
        firsts.push(first.map_or(f64::INFINITY, |d| d.as_secs_f64()));
    }
    let rate = median_of(rates);
    let first = median_of(firsts);
    table.push(Row {
        figure: format!(
            "real stress, lost-update race, 2 tokio threads, {:?} per sample",
            budget
        ),
        groundhog: "-".into(),
        baseline: format!(
            "lost an update in {:.2}% of rounds ({} rounds); first after {}",
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
