use proptest::prelude::*;

use super::{Cache, CacheConfig, Entries};
use crate::rt::{self, Duration};
use crate::supervisor::which_children;
use crate::{Ctx, Event, ExitReason, Node};

const CAP: usize = 3;
const TTL: Duration = Duration::from_millis(300);

fn config() -> CacheConfig {
    CacheConfig {
        capacity: CAP,
        ttl: TTL,
        sweep_every: Duration::from_millis(100),
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
