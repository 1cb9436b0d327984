use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::{Buckets, LimitError, LimiterConfig, RateLimiter, NANOS};
use crate::rt::{self, Duration};
use crate::services::Problems;
use crate::supervisor::which_children;
use crate::{Ctx, Event, ExitReason, Node, Pid};

const CAP: u32 = 5;
const RATE: u32 = 10;
const MAX_KEYS: usize = 3;
const EVERY: Duration = Duration::from_millis(200);

fn config() -> LimiterConfig {
    LimiterConfig {
        capacity: CAP,
        refill_per_sec: RATE,
        max_keys: MAX_KEYS,
        clean_every: EVERY,
    }
}

/// The reference: every grant of every key, and the bucket level replayed from them, with no
/// table bound and no cleaning (written apart from `Buckets`, which keeps one level per key).
#[derive(Default)]
struct Model {
    grants: BTreeMap<String, Vec<(Duration, u32)>>,
}

impl Model {
    fn level(&self, key: &str, now: Duration) -> u128 {
        let full = u128::from(CAP) * NANOS;
        let mut level = full;
        let mut last = Duration::ZERO;
        for &(at, cost) in self.grants.get(key).into_iter().flatten() {
            level = (level + (at - last).as_nanos() * u128::from(RATE)).min(full);
            level -= u128::from(cost) * NANOS;
            last = at;
        }
        (level + (now - last).as_nanos() * u128::from(RATE)).min(full)
    }

    /// Keys other than `key` whose bucket is below capacity at `now`.
    fn busy_others(&self, key: &str, now: Duration) -> usize {
        let full = u128::from(CAP) * NANOS;
        self.grants
            .keys()
            .filter(|k| *k != key && self.level(k, now) < full)
            .count()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Take { key: u8, cost: u32 },
    Clean,
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..6, 0u32..=CAP + 1).prop_map(|(key, cost)| Op::Take { key, cost }),
        1 => Just(Op::Clean),
        3 => (0u64..400).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Decisions are the reference's: cleaning and the bound change none, except that a new
    /// key is refused exactly when `MAX_KEYS` other keys are below capacity. The table never
    /// holds more than `MAX_KEYS`.
    #[test]
    fn decisions_match_the_unbounded_reference(ops in prop::collection::vec(op(), 1..200)) {
        let mut buckets = Buckets::new(config());
        let mut model = Model::default();
        let mut now = Duration::ZERO;
        for op in ops {
            match op {
                Op::Wait(ms) => now += Duration::from_millis(ms),
                Op::Clean => {
                    buckets.clean(now);
                }
                Op::Take { key, cost } => {
                    let key = format!("k{key}");
                    let got = buckets.take(&key, cost, now);
                    let level = model.level(&key, now);
                    let need = u128::from(cost) * NANOS;
                    let want = if cost > CAP {
                        Err("costly")
                    } else if level < need {
                        Err("limited")
                    } else if level == u128::from(CAP) * NANOS && model.busy_others(&key, now) >= MAX_KEYS {
                        Err("keys")
                    } else {
                        Ok(())
                    };
                    let kind = got.as_ref().map(|_| ()).map_err(|e| match e {
                        LimitError::TooCostly { .. } => "costly",
                        LimitError::Limited { .. } => "limited",
                        LimitError::TooManyKeys { .. } => "keys",
                    });
                    prop_assert_eq!(kind, want, "key {} cost {} at {:?}", key, cost, now);
                    if let Err(LimitError::Limited { retry_after }) = got {
                        // Enough tokens exactly then, not a nanosecond before.
                        prop_assert!(model.level(&key, now + retry_after) >= need);
                        prop_assert!(model.level(&key, now + retry_after - Duration::from_nanos(1)) < need);
                    }
                    if got.is_ok() {
                        model.grants.entry(key).or_default().push((now, cost));
                    }
                }
            }
            prop_assert!(buckets.len() <= MAX_KEYS);
        }
        // The limit itself, from the grants alone: over any window, at most capacity plus
        // what the window refills.
        for grants in model.grants.values() {
            for (i, &(from, _)) in grants.iter().enumerate() {
                let mut sum = 0u128;
                for &(to, cost) in &grants[i..] {
                    sum += u128::from(cost) * NANOS;
                    let allowed = u128::from(CAP) * NANOS + (to - from).as_nanos() * u128::from(RATE);
                    prop_assert!(sum <= allowed);
                }
            }
        }
    }
}

#[test]
fn an_invalid_configuration_is_refused_with_every_problem() {
    let bad = LimiterConfig {
        capacity: 0,
        refill_per_sec: 0,
        max_keys: 0,
        clean_every: Duration::ZERO,
    };
    assert_eq!(Problems::of(&bad).len(), 4);
}

#[rt::test]
async fn a_restarted_cleaner_forgets_no_bucket_and_still_cleans() {
    let node = Node::local(0, 1);
    let (limiter, sup) = RateLimiter::start(&node, "limiter", None, config())
        .await
        .unwrap();
    for _ in 0..CAP {
        limiter.take("a", 1).unwrap();
    }
    assert!(matches!(
        limiter.take("a", 1),
        Err(LimitError::Limited { .. })
    ));
    // Kill the cleaner; its supervisor restarts it.
    let (tx, rx) = futures::channel::oneshot::channel();
    node.spawn("killer", move |mut ctx: Ctx<()>| async move {
        let children = which_children(&ctx, sup, Duration::from_secs(1))
            .await
            .unwrap();
        let cleaner = children[0].1.expect("the cleaner runs");
        let m = ctx.monitor(cleaner);
        ctx.exit(cleaner, ExitReason::Kill);
        while !matches!(ctx.recv().await, Event::Down { reference, .. } if reference == m) {}
        let again = which_children(&ctx, sup, Duration::from_secs(1))
            .await
            .unwrap();
        let _ = tx.send((cleaner, again[0].1));
        ExitReason::Normal
    });
    let (old, new) = rx.await.unwrap();
    assert!(new.is_some_and(|p| p != old), "restarted");
    assert!(
        matches!(limiter.take("a", 1), Err(LimitError::Limited { .. })),
        "bucket kept"
    );
    assert_eq!(limiter.keys(), 1);
    if rt::SIMULATED {
        // Refilled after 0.5 s; the restarted cleaner removes the full bucket within one round.
        rt::sleep(Duration::from_millis(500 + 250)).await;
        assert_eq!(limiter.keys(), 0);
        assert_eq!(limiter.take("a", CAP), Ok(()));
    }
}

#[derive(Debug, Clone)]
enum ServiceOp {
    Take {
        key: u8,
        cost: u32,
    },
    Wait(u64),
    /// Waits until just after the cleaner's next round.
    Clean,
    /// The cleaner's process is killed; its supervisor restarts it.
    Restart,
}

fn service_ops() -> impl Strategy<Value = Vec<ServiceOp>> {
    let op = prop_oneof![
        6 => (0u8..6, 0u32..=CAP + 1).prop_map(|(key, cost)| ServiceOp::Take { key, cost }),
        3 => (0u64..300).prop_map(ServiceOp::Wait),
        1 => Just(ServiceOp::Clean),
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

/// Kills the cleaner and returns once its supervisor has started the next one.
async fn restart_cleaner(node: &Node, sup: Pid) {
    let (tx, rx) = futures::channel::oneshot::channel();
    let n = node.clone();
    node.spawn("killer", move |mut ctx: Ctx<()>| async move {
        let old = n
            .supervisor_child(sup, "cleaner")
            .expect("the cleaner runs");
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

/// The reference's decision for a take (with `retry_after` computed from the replayed level).
fn decide(model: &Model, key: &str, cost: u32, now: Duration) -> Result<(), LimitError> {
    let level = model.level(key, now);
    let need = u128::from(cost) * NANOS;
    if cost > CAP {
        Err(LimitError::TooCostly {
            cost,
            capacity: CAP,
        })
    } else if level < need {
        let nanos = (need - level).div_ceil(u128::from(RATE));
        Err(LimitError::Limited {
            retry_after: Duration::from_nanos(nanos as u64),
        })
    } else if level == u128::from(CAP) * NANOS && model.busy_others(key, now) >= MAX_KEYS {
        Err(LimitError::TooManyKeys { max: MAX_KEYS })
    } else {
        Ok(())
    }
}

/// The running limiter, on a simulated node, across kills of its cleaner: every decision
/// (with its `retry_after`) is the unbounded reference's, so no bucket is forgotten by a
/// restart (a forgetful limiter would grant a fresh burst), and after every step the table
/// holds exactly the keys a model of it holds: a key enters at a grant, leaves at a cleaner
/// round that finds it full, or when a new key finds the table at `max_keys`. A kill ends the
/// old cleaner's schedule and the restarted one cleans every `clean_every` from its start.
/// The simulated clock moves a little while tasks run (50 to 100 ns a poll) and a sleep lasts
/// at least 1 ms, so the test keeps half a millisecond out of step with the cleaner's rounds
/// (its waits are whole milliseconds, refills take whole multiples of 100 ms, and it starts
/// and restarts the cleaner half a millisecond out of step with itself): no check depends on
/// which of two nearly simultaneous tasks ran first.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn the_limiter_matches_the_model_across_restarts_of_its_cleaner() {
    const OUT_OF_STEP: Duration = Duration::from_micros(1_500);
    const HALF: Duration = Duration::from_micros(500);
    // Cases in which a restart came while a key was below capacity, a round removed a key, and
    // a new key was refused because the table was full.
    let reached = std::sync::Mutex::new((0u32, 0u32, 0u32));
    runner(256)
        .run(&service_ops(), |ops| {
            let reached = &reached;
            let world = rt::World::new(3, &rt::NetConfig::default(), None).unwrap();
            world.block_on(async move {
                let node = Node::local(0, 1);
                let (limiter, sup) = RateLimiter::start(&node, "limiter", None, config())
                    .await
                    .unwrap();
                let full = u128::from(CAP) * NANOS;
                let mut model = Model::default();
                let mut table: BTreeSet<String> = BTreeSet::new();
                let mut next_round = limiter.now() + EVERY;
                rt::sleep(OUT_OF_STEP).await;
                let mut restarts = 0;
                let (mut restarted_busy, mut cleaned, mut refused_keys) = (false, false, false);
                for op in ops {
                    match op {
                        ServiceOp::Take { key, cost } => {
                            let key = format!("k{key}");
                            let now = limiter.now();
                            let got = limiter.take(&key, cost);
                            let want = decide(&model, &key, cost, now);
                            prop_assert_eq!(&got, &want, "key {} cost {} at {:?}", key, cost, now);
                            if !table.contains(&key) && table.len() >= MAX_KEYS && cost <= CAP {
                                // A new key at a full table: the full buckets go first.
                                table.retain(|k| model.level(k, now) < full);
                            }
                            refused_keys |= matches!(want, Err(LimitError::TooManyKeys { .. }));
                            if want.is_ok() {
                                model
                                    .grants
                                    .entry(key.clone())
                                    .or_default()
                                    .push((now, cost));
                                table.insert(key);
                            }
                        }
                        ServiceOp::Wait(ms) => rt::sleep(Duration::from_millis(ms)).await,
                        ServiceOp::Clean => {
                            let now = limiter.now();
                            rt::sleep(next_round - now + HALF).await;
                        }
                        // The supervisor's intensity (3 restarts in 5 s) allows three.
                        ServiceOp::Restart if restarts < 3 => {
                            let now = limiter.now();
                            restarted_busy |= table.iter().any(|k| model.level(k, now) < full);
                            // Not at the instant of an old round: past it first, if it is near.
                            let now = limiter.now();
                            if next_round - now < Duration::from_millis(2) {
                                rt::sleep(next_round - now + HALF).await;
                            }
                            let now = limiter.now();
                            while next_round < now {
                                table.retain(|k| model.level(k, next_round) < full);
                                next_round += EVERY;
                            }
                            rt::sleep(OUT_OF_STEP).await;
                            restart_cleaner(&node, sup).await;
                            next_round = limiter.now() + EVERY;
                            rt::sleep(OUT_OF_STEP).await;
                            restarts += 1;
                        }
                        _ => {}
                    }
                    let now = limiter.now();
                    while next_round < now {
                        let before = table.len();
                        table.retain(|k| model.level(k, next_round) < full);
                        cleaned |= table.len() < before;
                        next_round += EVERY;
                    }
                    prop_assert_eq!(
                        limiter.keys(),
                        table.len(),
                        "keys at {:?} after {} restarts",
                        now,
                        restarts
                    );
                }
                let mut r = reached.lock().unwrap();
                r.0 += restarted_busy as u32;
                r.1 += cleaned as u32;
                r.2 += refused_keys as u32;
                Ok(())
            })
        })
        .unwrap();
    let (restarted_busy, cleaned, refused_keys) = *reached.lock().unwrap();
    assert!(
        restarted_busy >= 5 && cleaned >= 20 && refused_keys >= 5,
        "cases restarted with a busy key: {restarted_busy}, cleaned by a round: {cleaned}, \
         refused a new key: {refused_keys}"
    );
}
