use std::sync::{Arc, Mutex};

use futures::channel::oneshot;

use super::{Pressure, ResourceConfig, ResourceManager};
use crate::rt;
use crate::services::Problems;
use crate::{Ctx, Event, ExitReason, Node};

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
