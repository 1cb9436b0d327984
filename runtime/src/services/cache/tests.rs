use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::{Cache, CacheConfig, Entries};
use crate::rt::{self, Duration};
use crate::supervisor::which_children;
use crate::{Ctx, Event, ExitReason, Node, Pid};

const CAP: usize = 3;
const TTL: Duration = Duration::from_millis(300);
const EVERY: Duration = Duration::from_millis(100);
/// How far the service test keeps from the sweeper's rounds.
const HALF: Duration = Duration::from_micros(500);
/// Puts the test half a millisecond out of step (a simulated sleep lasts at least 1 ms).
const OUT_OF_STEP: Duration = Duration::from_micros(1_500);

fn config() -> CacheConfig {
    CacheConfig {
        capacity: CAP,
        ttl: TTL,
        sweep_every: EVERY,
    }
}

/// The reference: a list in recency order (least recent first), scanned linearly.
#[derive(Default)]
struct Model {
    list: Vec<(String, u32, Duration)>,
}

impl Model {
    fn get(&mut self, key: &str, now: Duration) -> Option<u32> {
        let i = self.list.iter().position(|e| e.0 == key)?;
        if self.list[i].2 <= now {
            self.list.remove(i);
            return None;
        }
        let e = self.list.remove(i);
        let v = e.1;
        self.list.push(e);
        Some(v)
    }

    fn put(&mut self, key: &str, v: u32, now: Duration) {
        self.list.retain(|e| e.0 != key);
        if self.list.len() >= CAP {
            self.list.retain(|e| e.2 > now);
        }
        while self.list.len() >= CAP {
            self.list.remove(0);
        }
        self.list.push((key.to_string(), v, now + TTL));
    }

    /// What a sweep at `now` drops: every entry expired by then.
    fn sweep(&mut self, now: Duration) {
        self.list.retain(|e| e.2 > now);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Get(u8),
    Put(u8, u32),
    Sweep,
    Wait(u64),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6).prop_map(Op::Get),
        4 => (0u8..6, any::<u32>()).prop_map(|(k, v)| Op::Put(k, v)),
        1 => Just(Op::Sweep),
        3 => (0u64..200).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every get answers as the reference does (never an expired value), sweeping changes no
    /// answer, and the cache never holds more than its capacity.
    #[test]
    fn answers_match_the_reference_list(ops in prop::collection::vec(op(), 1..200)) {
        let mut cache: Entries<u32> = Entries::new(config());
        let mut model = Model::default();
        let mut now = Duration::ZERO;
        for op in ops {
            match op {
                Op::Wait(ms) => now += Duration::from_millis(ms),
                Op::Sweep => {
                    cache.sweep(now);
                }
                Op::Put(k, v) => {
                    let k = format!("k{k}");
                    cache.put(&k, v, now);
                    model.put(&k, v, now);
                }
                Op::Get(k) => {
                    let k = format!("k{k}");
                    prop_assert_eq!(cache.get(&k, now), model.get(&k, now), "get {} at {:?}", k, now);
                }
            }
            prop_assert!(cache.len() <= CAP);
        }
    }
}

#[rt::test]
async fn a_restarted_sweeper_keeps_the_entries_and_still_sweeps() {
    let node = Node::local(0, 1);
    let (cache, sup) = Cache::<u32>::start(&node, "cache", None, config())
        .await
        .unwrap();
    cache.put("a", 1);
    let (tx, rx) = futures::channel::oneshot::channel();
    node.spawn("killer", move |mut ctx: Ctx<()>| async move {
        let sweeper = which_children(&ctx, sup, Duration::from_secs(1))
            .await
            .unwrap()[0]
            .1
            .expect("the sweeper runs");
        let m = ctx.monitor(sweeper);
        ctx.exit(sweeper, ExitReason::Kill);
        while !matches!(ctx.recv().await, Event::Down { reference, .. } if reference == m) {}
        let again = which_children(&ctx, sup, Duration::from_secs(1))
            .await
            .unwrap();
        let _ = tx.send((sweeper, again[0].1));
        ExitReason::Normal
    });
    let (old, new) = rx.await.unwrap();
    assert!(new.is_some_and(|p| p != old), "restarted");
    assert_eq!(cache.get("a"), Some(1), "entries kept");
    if rt::SIMULATED {
        // Expired after the TTL; the restarted sweeper drops it within one round, without a get.
        rt::sleep(TTL + Duration::from_millis(150)).await;
        assert_eq!(cache.len(), 0);
    }
}

#[derive(Debug, Clone)]
enum ServiceOp {
    Get(u8),
    Put(u8, u32),
    Wait(u64),
    /// Waits until just after the sweeper's next round.
    Sweep,
    /// The sweeper's process is killed; its supervisor restarts it.
    Restart,
}

fn service_ops() -> impl proptest::strategy::Strategy<Value = Vec<ServiceOp>> {
    let op = prop_oneof![
        4 => (0u8..6).prop_map(ServiceOp::Get),
        4 => (0u8..6, any::<u32>()).prop_map(|(k, v)| ServiceOp::Put(k, v)),
        3 => (0u64..200).prop_map(ServiceOp::Wait),
        1 => Just(ServiceOp::Sweep),
        1 => Just(ServiceOp::Restart),
    ];
    prop::collection::vec(op, 1..100)
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

/// Kills the sweeper and returns once its supervisor has started the next one.
async fn restart_sweeper(node: &Node, sup: Pid) {
    let (tx, rx) = futures::channel::oneshot::channel();
    let n = node.clone();
    node.spawn("killer", move |mut ctx: Ctx<()>| async move {
        let old = n
            .supervisor_child(sup, "sweeper")
            .expect("the sweeper runs");
        let m = ctx.monitor(old);
        ctx.exit(old, ExitReason::Kill);
        while !matches!(ctx.recv().await, Event::Down { reference, .. } if reference == m) {}
        // Asked behind the exit, so the supervisor has handled it.
        let children = which_children(&ctx, sup, Duration::from_secs(1))
            .await
            .unwrap();
        let new = children[0].1.expect("restarted");
        assert_ne!(new, old);
        let _ = tx.send(());
        ExitReason::Normal
    });
    rx.await.unwrap();
}

/// The running cache, on a simulated node, against the reference list and a model of the
/// sweeper's rounds: every get answers as the reference does, and after every step the cache
/// holds exactly the entries the reference still has once every sweep due so far has run,
/// across kills of the sweeper. The entries survive each kill (the table is the handle's);
/// the killed sweeper's timer does not (no round on its old schedule), and the restarted one
/// sweeps every `sweep_every` from its start. The simulated clock moves a little while tasks
/// run (50 to 100 ns a poll) and a sleep lasts at least 1 ms, so the test keeps half a
/// millisecond away from the sweeper's rounds (its waits are whole milliseconds, and it
/// starts and restarts the sweeper half a millisecond out of step with itself): no check
/// depends on which of two nearly simultaneous tasks ran first.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn the_cache_matches_the_model_across_restarts_of_its_sweeper() {
    // Cases with a restart while an expired entry waited for a round, and cases in which a
    // round dropped an entry no get had touched.
    let reached = std::sync::Mutex::new((0u32, 0u32));
    runner(256)
        .run(&service_ops(), |ops| {
            let reached = &reached;
            let world = rt::World::new(3, &rt::NetConfig::default(), None).unwrap();
            world.block_on(async move {
                let node = Node::local(0, 1);
                let (cache, sup) = Cache::<u32>::start(&node, "cache", None, config())
                    .await
                    .unwrap();
                let mut model = Model::default();
                // The sweeper's next round, on the cache's clock.
                let mut next_round = cache.now() + EVERY;
                rt::sleep(OUT_OF_STEP).await;
                let mut restarts = 0;
                let (mut restarted_expired, mut swept) = (false, false);
                for op in ops {
                    match op {
                        ServiceOp::Get(k) => {
                            let k = format!("k{k}");
                            let now = cache.now();
                            prop_assert_eq!(
                                cache.get(&k),
                                model.get(&k, now),
                                "get {} at {:?}",
                                k,
                                now
                            );
                        }
                        ServiceOp::Put(k, v) => {
                            let k = format!("k{k}");
                            let now = cache.now();
                            cache.put(&k, v);
                            model.put(&k, v, now);
                        }
                        ServiceOp::Wait(ms) => rt::sleep(Duration::from_millis(ms)).await,
                        ServiceOp::Sweep => {
                            let now = cache.now();
                            rt::sleep(next_round - now + HALF).await;
                        }
                        // The supervisor's intensity (3 restarts in 5 s) allows three.
                        ServiceOp::Restart if restarts < 3 => {
                            restarted_expired |= model.list.iter().any(|e| e.2 <= cache.now());
                            // Not at the instant of an old round: past it first, if it is near.
                            let now = cache.now();
                            if next_round - now < Duration::from_millis(2) {
                                rt::sleep(next_round - now + HALF).await;
                            }
                            let now = cache.now();
                            while next_round < now {
                                model.sweep(next_round);
                                next_round += EVERY;
                            }
                            rt::sleep(OUT_OF_STEP).await;
                            restart_sweeper(&node, sup).await;
                            next_round = cache.now() + EVERY;
                            rt::sleep(OUT_OF_STEP).await;
                            restarts += 1;
                        }
                        _ => {}
                    }
                    let now = cache.now();
                    while next_round < now {
                        let before = model.list.len();
                        model.sweep(next_round);
                        swept |= model.list.len() < before;
                        next_round += EVERY;
                    }
                    prop_assert_eq!(
                        cache.len(),
                        model.list.len(),
                        "entries at {:?} after {} restarts",
                        now,
                        restarts
                    );
                }
                let mut r = reached.lock().unwrap();
                r.0 += restarted_expired as u32;
                r.1 += swept as u32;
                Ok(())
            })
        })
        .unwrap();
    let (restarted_expired, swept) = *reached.lock().unwrap();
    assert!(
        restarted_expired >= 5 && swept >= 20,
        "cases restarted with an expired entry: {restarted_expired}, swept by a round: {swept}"
    );
}
