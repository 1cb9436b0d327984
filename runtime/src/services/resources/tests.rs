use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use rand::Rng;

use super::{Pressure, ResourceConfig, ResourceManager};
use crate::rt::{self, Duration, Stream};
use crate::services::Problems;
use crate::supervisor::{self, ChildSpec, Spec, Strategy};
use crate::{start_actor, Actor, Ctx, Event, ExitReason, Flow, Node, Pid};

fn config() -> ResourceConfig {
    ResourceConfig { high: 100, low: 50 }
}

#[test]
fn an_invalid_configuration_is_refused_with_every_problem() {
    assert_eq!(Problems::of(&ResourceConfig { high: 0, low: 0 }).len(), 2);
    assert_eq!(Problems::of(&config()).len(), 0);
}

/// The writer learns of the pressure before its next admission: a High is in its own mailbox
/// by the time `admit` returns the refusal; the total never passes `high`; Low comes once the
/// total is back at `low`.
#[rt::test]
async fn the_subscriber_is_told_before_the_next_admission() {
    let node = Node::local(0, 1);
    let rm = ResourceManager::new(&node, config()).unwrap();
    let (tx, rx) = oneshot::channel();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (m, s) = (rm.clone(), seen.clone());
    node.spawn("writer", move |mut ctx: Ctx<Pressure>| async move {
        m.subscribe(ctx.pid());
        let mut admitted = 0;
        while m.admit("table", 30).is_ok() {
            admitted += 1;
            assert!(m.total() <= 100);
        }
        // Refused: the alert is already queued for this process.
        let told_first = ctx.pending() == 1;
        // Refused again, and told once per period of pressure.
        let again = m.admit("table", 11).is_err() && ctx.pending() == 1;
        if let Event::Msg { msg, .. } = ctx.recv().await {
            s.lock().unwrap().push(msg);
        }
        m.release("table", 30);
        let low_yet = ctx.pending();
        m.release("table", 10);
        if let Event::Msg { msg, .. } = ctx.recv().await {
            s.lock().unwrap().push(msg);
        }
        let _ = tx.send((admitted, told_first, again, low_yet));
        ExitReason::Normal
    });
    let (admitted, told_first, again, low_yet) = rx.await.unwrap();
    assert_eq!(admitted, 3);
    assert!(told_first, "High queued before admit returned");
    assert!(again, "refused again, no second High");
    assert_eq!(low_yet, 0, "60 in use: not yet low");
    assert_eq!(
        *seen.lock().unwrap(),
        [Pressure::High { total: 90 }, Pressure::Low { total: 50 }]
    );
    assert_eq!(rm.total(), 50);
}

/// A supervised subscriber: subscribes at every start and logs what it is told, per pid.
struct Watcher {
    rm: ResourceManager,
    logs: Logs,
}

type Logs = Arc<Mutex<std::collections::BTreeMap<Pid, Vec<Pressure>>>>;

impl Actor for Watcher {
    type Msg = Pressure;

    async fn init(&mut self, ctx: &mut Ctx<Pressure>) -> Result<(), ExitReason> {
        self.logs.lock().unwrap().insert(ctx.pid(), Vec::new());
        self.rm.subscribe(ctx.pid());
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Ctx<Pressure>, event: Event<Pressure>) -> Flow {
        if let Event::Msg { msg, .. } = event {
            self.logs
                .lock()
                .unwrap()
                .entry(ctx.pid())
                .or_default()
                .push(msg);
        }
        Flow::Continue
    }
}

/// Waits (polling an observable condition, with a deadline) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = rt::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(rt::Instant::now() < deadline, "never: {what}");
        rt::sleep(Duration::from_millis(1)).await;
    }
}

/// Seeded scripts of admissions, releases and kills of a supervised subscriber (restarted,
/// subscribing again at each start), against a model of the total and of what each
/// incarnation of the subscriber must be told: admissions are the model's, each incarnation
/// gets exactly the alerts of the pressure periods it saw (`High` at once if it subscribed
/// during one), dead incarnations get nothing more, and the list never holds more than the
/// one live subscriber.
#[rt::test]
async fn decisions_and_alerts_match_the_model_across_subscriber_restarts() {
    let node = Node::local(0, 1);
    for script in 0..6u32 {
        let rm = ResourceManager::new(&node, config()).unwrap();
        let logs: Logs = Arc::default();
        let (m, l) = (rm.clone(), logs.clone());
        let child = ChildSpec::new("watcher", move |node: Node, sup: Pid| {
            let actor = Watcher {
                rm: m.clone(),
                logs: l.clone(),
            };
            async move { start_actor(&node, "watcher", Some(sup), Duration::from_secs(1), actor).await }
        });
        let spec = Spec::new(Strategy::OneForOne)
            .intensity(1_000, Duration::from_secs(1))
            .child(child);
        let sup = supervisor::start(&node, "watchers", None, spec)
            .await
            .unwrap();
        let current = || node.supervisor_child(sup, "watcher").unwrap();
        let mut rng = rt::seeded_rng(u64::from(script), Stream::Extra(40));
        let (mut total, mut pressed) = (0u64, false);
        let mut expected: std::collections::BTreeMap<Pid, Vec<Pressure>> =
            [(current(), Vec::new())].into();
        let mut kills = 0;
        for step in 0..150 {
            let me = current();
            match rng.gen_range(0..10) {
                0..=4 => {
                    let amount = rng.gen_range(1..40);
                    let got = rm.admit("table", amount);
                    let fits = total + amount <= 100;
                    assert_eq!(
                        got.is_ok(),
                        fits,
                        "script {script} step {step}: admit {amount} at {total}"
                    );
                    if fits {
                        total += amount;
                    } else if !pressed {
                        pressed = true;
                        expected
                            .get_mut(&me)
                            .unwrap()
                            .push(Pressure::High { total });
                    }
                }
                5..=7 => {
                    let amount = rng.gen_range(1..40).min(total);
                    rm.release("table", amount);
                    total -= amount;
                    if pressed && total <= 50 {
                        pressed = false;
                        expected.get_mut(&me).unwrap().push(Pressure::Low { total });
                    }
                }
                _ => {
                    node.exit(me, me, ExitReason::Kill);
                    until("a restarted watcher", || {
                        node.supervisor_child(sup, "watcher")
                            .is_some_and(|p| p != me)
                    })
                    .await;
                    let told = if pressed {
                        vec![Pressure::High { total }]
                    } else {
                        vec![]
                    };
                    expected.insert(current(), told);
                    kills += 1;
                }
            }
            assert_eq!(rm.total(), total);
            assert!(
                rm.subscribers() <= 1,
                "script {script} step {step}: {} subscribers after {kills} restarts",
                rm.subscribers()
            );
            let now = current();
            let want = expected[&now].clone();
            until("the watcher told", || logs.lock().unwrap()[&now] == want).await;
        }
        assert!(kills > 5, "the script restarted the subscriber ({kills})");
        let alerts: usize = expected.values().map(Vec::len).sum();
        assert!(alerts > 5, "the script reached pressure ({alerts} alerts)");
        // Every incarnation, dead ones included, was told exactly its own.
        assert_eq!(*logs.lock().unwrap(), expected, "script {script}");
        node.exit(sup, sup, ExitReason::Kill);
    }
}
