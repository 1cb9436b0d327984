use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use rand::Rng;

use super::{bus_pid, emit, start, stats, subscribe, unsubscribe, BusEvent, BusMsg};
use crate::rt::{self, Duration, Stream};
use crate::{Ctx, Event, ExitReason, Node, Pid, SpawnOpts};

const SEC: Duration = Duration::from_secs(1);
const KINDS: [&str; 3] = ["metric", "signal", "notice"];

type Log = Arc<Mutex<Vec<BusEvent>>>;

/// A subscriber that does what its control channel says and logs what the bus sends it.
fn subscriber(node: &Node, log: Log) -> (Pid, futures::channel::mpsc::UnboundedSender<Ctl>) {
    let (tx, mut rx) = futures::channel::mpsc::unbounded::<Ctl>();
    let pid = node.spawn("sub", move |mut ctx: Ctx<BusEvent>| async move {
        use futures::StreamExt;
        loop {
            futures::select_biased! {
                ctl = rx.next() => match ctl {
                    Some(Ctl::Sub(bus, kinds, done)) => {
                        let _ = subscribe(&ctx, bus, &kinds, SEC).await;
                        let _ = done.send(());
                    }
                    Some(Ctl::Unsub(bus, kinds, done)) => {
                        let _ = unsubscribe(&ctx, bus, &kinds, SEC).await;
                        let _ = done.send(());
                    }
                    Some(Ctl::Sync(done)) => {
                        // Log whatever is already in the mailbox, then answer.
                        while ctx.pending() > 0 {
                            if let Event::Msg { msg, .. } = ctx.recv().await {
                                log.lock().unwrap().push(msg);
                            }
                        }
                        let _ = done.send(());
                    }
                    None => return ExitReason::Normal,
                },
                ev = futures::FutureExt::fuse(ctx.recv()) => {
                    if let Event::Msg { msg, .. } = ev {
                        log.lock().unwrap().push(msg);
                    }
                }
            }
        }
    });
    (pid, tx)
}

enum Ctl {
    Sub(Pid, Vec<&'static str>, oneshot::Sender<()>),
    Unsub(Pid, Vec<&'static str>, oneshot::Sender<()>),
    /// Answers once everything already in the mailbox is logged.
    Sync(oneshot::Sender<()>),
}

/// A seeded script of subscribes, unsubscribes, kills and emits, against a model of who should
/// get what: every live subscriber gets exactly the events of its kinds emitted while it was
/// subscribed, once each, in emit order, numbered 1, 2, 3...; dead ones are forgotten.
#[rt::test]
async fn each_subscriber_gets_exactly_its_kinds_in_emit_order() {
    let node = Node::local(0, 1);
    let sup = start(&node, "bus-sup", None).await.unwrap();
    let (done_tx, done_rx) = oneshot::channel();
    let n = node.clone();
    node.spawn("driver", move |ctx: Ctx<()>| async move {
        let bus = bus_pid(&ctx, sup).await.unwrap().unwrap();
        let mut rng = rt::seeded_rng(7, Stream::Extra(1));
        let mut subs: Vec<(Pid, futures::channel::mpsc::UnboundedSender<Ctl>, Log, bool)> =
            Vec::new();
        for _ in 0..5 {
            let log = Log::default();
            let (pid, tx) = subscriber(&n, log.clone());
            subs.push((pid, tx, log, true));
        }
        let mut model: BTreeMap<usize, BTreeSet<&'static str>> = BTreeMap::new();
        let mut expected: BTreeMap<usize, Vec<(String, Vec<u8>, u64)>> = BTreeMap::new();
        let mut counters: BTreeMap<usize, u64> = BTreeMap::new();
        for step in 0..300u32 {
            let who = rng.gen_range(0..subs.len());
            let kind = KINDS[rng.gen_range(0..KINDS.len())];
            match rng.gen_range(0..10) {
                0..=1 if subs[who].3 => {
                    let (tx, rx) = oneshot::channel();
                    let _ = subs[who].1.unbounded_send(Ctl::Sub(bus, vec![kind], tx));
                    let _ = rx.await;
                    model.entry(who).or_default().insert(kind);
                }
                2 if subs[who].3 => {
                    let (tx, rx) = oneshot::channel();
                    let _ = subs[who].1.unbounded_send(Ctl::Unsub(bus, vec![kind], tx));
                    let _ = rx.await;
                    if let Some(k) = model.get_mut(&who) {
                        k.remove(kind);
                        if k.is_empty() {
                            // Unsubscribed from everything: a new subscription counts from 1.
                            counters.remove(&who);
                        }
                    }
                }
                3 if subs[who].3 && step % 7 == 0 => {
                    ctx.exit(subs[who].0, ExitReason::Kill);
                    subs[who].3 = false;
                    model.remove(&who);
                }
                _ => {
                    let payload = step.to_be_bytes().to_vec();
                    emit(&ctx, bus, kind, payload.clone()).unwrap();
                    for (w, kinds) in &model {
                        if kinds.contains(kind) {
                            let seq = counters.entry(*w).or_default();
                            *seq += 1;
                            let row = (kind.to_string(), payload.clone(), *seq);
                            expected.entry(*w).or_default().push(row);
                        }
                    }
                }
            }
        }
        // Stats is a call behind every emit: once it answers, every event has been routed.
        let s = stats(&ctx, bus, SEC).await.unwrap();
        for sub in subs.iter().filter(|s| s.3) {
            let (tx, rx) = oneshot::channel();
            let _ = sub.1.unbounded_send(Ctl::Sync(tx));
            let _ = rx.await;
        }
        let got: Vec<(Vec<BusEvent>, bool)> = subs
            .iter()
            .map(|s| (s.2.lock().unwrap().clone(), s.3))
            .collect();
        let live = model.values().filter(|k| !k.is_empty()).count();
        let _ = done_tx.send((got, expected, s, live));
        ExitReason::Normal
    });
    let (got, expected, s, live) = done_rx.await.unwrap();
    let mut checked = 0;
    for (i, (events, alive)) in got.iter().enumerate() {
        if !alive {
            continue;
        }
        let want = expected.get(&i).cloned().unwrap_or_default();
        let seen: Vec<(String, Vec<u8>, u64)> = events
            .iter()
            .map(|e| (e.kind.clone(), e.payload.clone(), e.seq))
            .collect();
        assert_eq!(seen, want, "subscriber {i}");
        checked += want.len();
    }
    assert!(
        checked > 50,
        "the script routed enough to mean something ({checked})"
    );
    assert_eq!(
        s.subscribers, live,
        "dead and fully unsubscribed subscribers are forgotten"
    );
}

/// Simulation only: the subscriber's reads are timed.
#[rt::test]
async fn a_slow_subscriber_loses_events_not_memory_and_sees_the_gap() {
    if !rt::SIMULATED {
        return;
    }
    let node = Node::local(0, 1);
    let sup = start(&node, "bus-sup", None).await.unwrap();
    let (tx, rx) = oneshot::channel();
    let n = node.clone();
    node.spawn("driver", move |ctx: Ctx<()>| async move {
        let bus = bus_pid(&ctx, sup).await.unwrap().unwrap();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let (seen_tx, seen_rx) = oneshot::channel();
        let mut opts = SpawnOpts::named("slow");
        opts.mailbox = Some(4);
        n.spawn_opts(opts, move |mut ctx: Ctx<BusEvent>| async move {
            subscribe(&ctx, bus, &["metric"], SEC).await.unwrap();
            let _ = ready_tx.send(());
            let _ = go_rx.await;
            let mut seqs = Vec::new();
            while let Some(Event::Msg { msg, .. }) =
                ctx.recv_timeout(Duration::from_millis(50)).await
            {
                seqs.push(msg.seq);
            }
            let _ = seen_tx.send(seqs);
            ExitReason::Normal
        });
        ready_rx.await.unwrap();
        for i in 0..100u32 {
            emit(&ctx, bus, "metric", i.to_be_bytes().to_vec()).unwrap();
        }
        let full = stats(&ctx, bus, SEC).await.unwrap();
        let _ = go_tx.send(());
        rt::sleep(Duration::from_millis(10)).await;
        emit(&ctx, bus, "metric", vec![]).unwrap();
        let seqs = seen_rx.await.unwrap();
        let _ = tx.send((full, seqs));
        ExitReason::Normal
    });
    let (full, seqs) = rx.await.unwrap();
    assert_eq!((full.routed, full.dropped), (4, 96));
    assert_eq!(seqs, vec![1, 2, 3, 4, 101], "the gap shows in the numbers");
    let _ = BusMsg::Stats;
}

/// A subscriber that follows the bus across its restarts, as the module says a subscriber
/// should: it monitors the bus it subscribed to and, at its `Down`, finds the restarted bus
/// under the supervisor and subscribes again to its kinds. Logs every event; `Ctl` as above.
fn follower(
    node: &Node,
    sup: Pid,
    log: Log,
) -> (Pid, futures::channel::mpsc::UnboundedSender<Ctl>) {
    let (tx, mut rx) = futures::channel::mpsc::unbounded::<Ctl>();
    let pid = node.spawn("follower", move |mut ctx: Ctx<BusEvent>| async move {
        use futures::StreamExt;
        let mut kinds: BTreeSet<&'static str> = BTreeSet::new();
        let mut watching: Option<crate::Ref> = None;
        loop {
            futures::select_biased! {
                ctl = rx.next() => match ctl {
                    Some(Ctl::Sub(bus, k, done)) => {
                        let _ = subscribe(&ctx, bus, &k, SEC).await;
                        kinds.extend(k);
                        if watching.is_none() {
                            watching = Some(ctx.monitor(bus));
                        }
                        let _ = done.send(());
                    }
                    Some(Ctl::Unsub(bus, k, done)) => {
                        let _ = unsubscribe(&ctx, bus, &k, SEC).await;
                        for kind in k {
                            kinds.remove(kind);
                        }
                        let _ = done.send(());
                    }
                    Some(Ctl::Sync(done)) => {
                        while ctx.pending() > 0 {
                            if let Event::Msg { msg, .. } = ctx.recv().await {
                                log.lock().unwrap().push(msg);
                            }
                        }
                        let _ = done.send(());
                    }
                    None => return ExitReason::Normal,
                },
                ev = futures::FutureExt::fuse(ctx.recv()) => match ev {
                    Event::Msg { msg, .. } => log.lock().unwrap().push(msg),
                    Event::Down { reference, .. } if Some(reference) == watching => {
                        // The bus restarted: find the new one and subscribe again.
                        let bus = loop {
                            match bus_pid(&ctx, sup).await {
                                Ok(Some(bus)) => break bus,
                                _ => rt::sleep(Duration::from_millis(1)).await,
                            }
                        };
                        watching = Some(ctx.monitor(bus));
                        let k: Vec<&str> = kinds.iter().copied().collect();
                        if !k.is_empty() {
                            let _ = subscribe(&ctx, bus, &k, SEC).await;
                        }
                    }
                    _ => {}
                },
            }
        }
    });
    (pid, tx)
}

/// The model test of the first script, with kills of the bus itself: a restarted bus starts
/// with no subscribers and numbers from 1 again; each follower subscribes again to its kinds,
/// and from then on gets exactly its kinds in emit order, once each; an emit to the dead bus
/// is refused; dead followers are forgotten by the bus that saw them die.
#[rt::test]
async fn followers_get_exactly_their_kinds_across_restarts_of_the_bus() {
    let node = Node::local(0, 1);
    let sup = start(&node, "bus-sup", None).await.unwrap();
    let (done_tx, done_rx) = oneshot::channel();
    let n = node.clone();
    node.spawn("driver", move |mut ctx: Ctx<()>| async move {
        let mut bus = bus_pid(&ctx, sup).await.unwrap().unwrap();
        let mut rng = rt::seeded_rng(11, Stream::Extra(2));
        let mut subs: Vec<(Pid, futures::channel::mpsc::UnboundedSender<Ctl>, Log, bool)> =
            Vec::new();
        for _ in 0..5 {
            let log = Log::default();
            let (pid, tx) = follower(&n, sup, log.clone());
            subs.push((pid, tx, log, true));
        }
        let mut model: BTreeMap<usize, BTreeSet<&'static str>> = BTreeMap::new();
        let mut expected: BTreeMap<usize, Vec<(String, Vec<u8>, u64)>> = BTreeMap::new();
        let mut counters: BTreeMap<usize, u64> = BTreeMap::new();
        let mut restarts = 0;
        for step in 0..400u32 {
            let who = rng.gen_range(0..subs.len());
            let kind = KINDS[rng.gen_range(0..KINDS.len())];
            match rng.gen_range(0..20) {
                0..=3 if subs[who].3 => {
                    let (tx, rx) = oneshot::channel();
                    let _ = subs[who].1.unbounded_send(Ctl::Sub(bus, vec![kind], tx));
                    let _ = rx.await;
                    model.entry(who).or_default().insert(kind);
                }
                4 if subs[who].3 => {
                    let (tx, rx) = oneshot::channel();
                    let _ = subs[who].1.unbounded_send(Ctl::Unsub(bus, vec![kind], tx));
                    let _ = rx.await;
                    if let Some(k) = model.get_mut(&who) {
                        k.remove(kind);
                        if k.is_empty() {
                            counters.remove(&who);
                        }
                    }
                }
                5 if subs[who].3 && step % 5 == 0 => {
                    ctx.exit(subs[who].0, ExitReason::Kill);
                    subs[who].3 = false;
                    model.remove(&who);
                }
                // The bus's supervisor allows three restarts in 5 s.
                6 if step % 3 == 0 && restarts < 3 => {
                    // Everything emitted so far is routed, then the bus is killed.
                    stats(&ctx, bus, SEC).await.unwrap();
                    let old = bus;
                    let m = ctx.monitor(old);
                    ctx.exit(old, ExitReason::Kill);
                    while !matches!(ctx.recv().await, Event::Down { reference, .. } if reference == m) {}
                    let refused = emit(&ctx, old, kind, vec![]);
                    assert!(refused.is_err(), "an emit to the dead bus is refused");
                    // Polls observable conditions, with a deadline.
                    let deadline = rt::Instant::now() + Duration::from_secs(60);
                    bus = loop {
                        match bus_pid(&ctx, sup).await {
                            Ok(Some(b)) if b != old => break b,
                            _ => {}
                        }
                        assert!(rt::Instant::now() < deadline, "never restarted");
                        rt::sleep(Duration::from_millis(1)).await;
                    };
                    // Every live follower with kinds subscribes again; numbers start at 1.
                    let live = model.values().filter(|k| !k.is_empty()).count();
                    while !stats(&ctx, bus, SEC)
                        .await
                        .is_ok_and(|s| s.subscribers == live)
                    {
                        assert!(
                            rt::Instant::now() < deadline,
                            "followers never subscribed again"
                        );
                        rt::sleep(Duration::from_millis(1)).await;
                    }
                    counters.clear();
                    restarts += 1;
                }
                _ => {
                    let payload = step.to_be_bytes().to_vec();
                    emit(&ctx, bus, kind, payload.clone()).unwrap();
                    for (w, kinds) in &model {
                        if kinds.contains(kind) {
                            let seq = counters.entry(*w).or_default();
                            *seq += 1;
                            let row = (kind.to_string(), payload.clone(), *seq);
                            expected.entry(*w).or_default().push(row);
                        }
                    }
                }
            }
        }
        let s = stats(&ctx, bus, SEC).await.unwrap();
        for sub in subs.iter().filter(|s| s.3) {
            let (tx, rx) = oneshot::channel();
            let _ = sub.1.unbounded_send(Ctl::Sync(tx));
            let _ = rx.await;
        }
        let got: Vec<(Vec<BusEvent>, bool)> = subs
            .iter()
            .map(|s| (s.2.lock().unwrap().clone(), s.3))
            .collect();
        let live = model.values().filter(|k| !k.is_empty()).count();
        let _ = done_tx.send((got, expected, s, live, restarts));
        ExitReason::Normal
    });
    let (got, expected, s, live, restarts) = done_rx.await.unwrap();
    assert_eq!(restarts, 3, "the script restarted the bus");
    let mut checked = 0;
    for (i, (events, alive)) in got.iter().enumerate() {
        if !alive {
            continue;
        }
        let want = expected.get(&i).cloned().unwrap_or_default();
        let seen: Vec<(String, Vec<u8>, u64)> = events
            .iter()
            .map(|e| (e.kind.clone(), e.payload.clone(), e.seq))
            .collect();
        assert_eq!(seen, want, "follower {i}");
        checked += want.len();
    }
    assert!(
        checked > 50,
        "the script routed enough to mean something ({checked})"
    );
    assert_eq!(
        s.subscribers, live,
        "dead followers are forgotten by the restarted bus too"
    );
}
