use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{Buckets, LimitError, LimiterConfig, RateLimiter, NANOS};
use crate::rt::{self, Duration};
use crate::services::Problems;
use crate::supervisor::which_children;
use crate::{Ctx, Event, ExitReason, Node};

const CAP: u32 = 5;
const RATE: u32 = 10;
const MAX_KEYS: usize = 3;

fn config() -> LimiterConfig {
    LimiterConfig {
        capacity: CAP,
        refill_per_sec: RATE,
        max_keys: MAX_KEYS,
        clean_every: Duration::from_millis(200),
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
