//! The barrier on one node: release of all parties together, a dead participant breaking the
//! generation for those waiting and for those joined but not yet waiting, a full generation.

use futures::channel::oneshot;

use super::{join, start, wait, BarrierError};
use crate::rt::Duration;
use crate::{Ctx, ExitReason, Node, Pid};

const LONG: Duration = Duration::from_secs(3600);

/// A participant that waits at `barrier` (after joining, if `join_first`) and reports.
fn participant(node: &Node, barrier: Pid) -> (Pid, oneshot::Receiver<Result<u64, BarrierError>>) {
    let (tx, rx) = oneshot::channel();
    let pid = node.spawn("p", move |ctx: Ctx<()>| async move {
        let _ = tx.send(wait(&ctx, barrier, LONG).await);
        ExitReason::Normal
    });
    (pid, rx)
}

#[crate::rt::test]
async fn all_parties_are_released_together_then_a_new_generation_begins() {
    let node = Node::local(0, 1);
    let barrier = start(&node, "b", None, 3).await.unwrap();
    let waits: Vec<_> = (0..3).map(|_| participant(&node, barrier).1).collect();
    for w in waits {
        assert_eq!(w.await.unwrap(), Ok(0));
    }
    let waits: Vec<_> = (0..3).map(|_| participant(&node, barrier).1).collect();
    for w in waits {
        assert_eq!(w.await.unwrap(), Ok(1));
    }
}

#[crate::rt::test]
async fn a_participant_that_dies_breaks_the_generation_for_everyone() {
    let node = Node::local(0, 1);
    let barrier = start(&node, "b", None, 3).await.unwrap();
    // One joins and will wait only when told; one dies after joining; one waits.
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (late_tx, late_rx) = oneshot::channel();
    let (joined_tx, joined_rx) = oneshot::channel();
    node.spawn("late", move |ctx: Ctx<()>| async move {
        let _ = joined_tx.send(join(&ctx, barrier, LONG).await);
        let _ = go_rx.await;
        let _ = late_tx.send(wait(&ctx, barrier, LONG).await);
        ExitReason::Normal
    });
    assert_eq!(joined_rx.await.unwrap(), Ok(0));
    let (waiter, waited) = participant(&node, barrier);
    let (dead_tx, dead_rx) = oneshot::channel();
    let doomed = node.spawn("doomed", move |ctx: Ctx<()>| async move {
        let _ = dead_tx.send(join(&ctx, barrier, LONG).await);
        ExitReason::error("crash")
    });
    assert_eq!(dead_rx.await.unwrap(), Ok(0));
    let broken = BarrierError::Broken {
        generation: 0,
        participant: doomed,
        reason: ExitReason::error("crash"),
    };
    assert_eq!(
        waited.await.unwrap(),
        Err(broken.clone()),
        "{waiter} is released"
    );
    go_tx.send(()).unwrap();
    assert_eq!(
        late_rx.await.unwrap(),
        Err(broken),
        "joined, told at its wait"
    );
}

#[crate::rt::test]
async fn a_full_generation_refuses_another_participant() {
    let node = Node::local(0, 1);
    let barrier = start(&node, "b", None, 1).await.unwrap();
    let (tx, rx) = oneshot::channel();
    node.spawn("two", move |ctx: Ctx<()>| async move {
        let first = join(&ctx, barrier, LONG).await;
        let (tx2, rx2) = oneshot::channel();
        ctx.spawn("other", move |ctx: Ctx<()>| async move {
            let _ = tx2.send(join(&ctx, barrier, LONG).await);
            ExitReason::Normal
        });
        let _ = tx.send((first, rx2.await.unwrap(), wait(&ctx, barrier, LONG).await));
        ExitReason::Normal
    });
    let (first, other, released) = rx.await.unwrap();
    assert_eq!(first, Ok(0));
    assert_eq!(other, Err(BarrierError::Full { parties: 1 }));
    assert_eq!(released, Ok(0));
}
