//! The lock service on one node: exclusive grants, tokens that only increase (across the
//! service's restarts too), renew and release by the holder only, a dead holder's lock freed,
//! expiry on the service's clock (sim only), and the fencing guard.

use futures::channel::oneshot;

use super::{
    acquire, child_spec, release, renew, Config, FencedResource, LeaseError, LeaseStore, StaleToken,
};
use crate::rt::{self, Duration};
use crate::supervisor::{self, which_children, Spec, Strategy};
use crate::{Ctx, Event, ExitReason, Node, Pid};

const SEC: Duration = Duration::from_secs(1);

async fn in_process<T: Send + 'static, F>(
    node: &Node,
    body: impl FnOnce(Ctx<u32>) -> F + Send + 'static,
) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    node.spawn("test", move |ctx: Ctx<u32>| async move {
        let _ = tx.send(body(ctx).await);
        ExitReason::Normal
    });
    rx.await.expect("the test process finished")
}

/// The lock service under a supervisor: (supervisor, service).
async fn service(node: &Node, store: LeaseStore) -> (Pid, Pid) {
    let spec = Spec::new(Strategy::OneForOne).child(child_spec(Config::new("locks"), store));
    let sup = supervisor::start(node, "sup", None, spec).await.unwrap();
    (sup, child(node, sup, None).await)
}

/// The supervisor's running child, once it is not `not`.
async fn child(node: &Node, sup: Pid, not: Option<Pid>) -> Pid {
    in_process(node, move |ctx| async move {
        loop {
            match which_children(&ctx, sup, SEC).await.unwrap()[0].1 {
                Some(p) if Some(p) != not => break p,
                _ => rt::yield_now().await,
            }
        }
    })
    .await
}

#[crate::rt::test]
async fn one_holder_at_a_time_and_tokens_only_increase() {
    let node = Node::local(0, 1);
    let store = LeaseStore::new();
    let (sup, locks) = service(&node, store.clone()).await;
    let long = 3600 * SEC;
    let (a, b_refused, stale_renew, b) = in_process(&node, move |ctx| async move {
        let a = acquire(&ctx, locks, long, SEC).await.unwrap();
        let (tx, rx) = oneshot::channel();
        ctx.spawn("b", move |ctx: Ctx<()>| async move {
            let _ = tx.send(acquire(&ctx, locks, long, SEC).await);
            ExitReason::Normal
        });
        let b_refused = rx.await.unwrap();
        release(&ctx, locks, a, SEC).await.unwrap();
        let stale_renew = renew(&ctx, locks, &a, long, SEC).await;
        let b = acquire(&ctx, locks, long, SEC).await.unwrap();
        (a, b_refused, stale_renew, b)
    })
    .await;
    assert_eq!(a.token, 1);
    assert!(
        matches!(b_refused, Err(LeaseError::Held { token: 1, .. })),
        "{b_refused:?}"
    );
    assert_eq!(stale_renew, Err(LeaseError::Lost { token: 1 }));
    assert_eq!(b.token, 2);
    // The holder of token 2 has exited (its `Down` freed the lock); a restarted service keeps
    // counting from the store.
    node.exit(locks, locks, ExitReason::Kill);
    let restarted = child(&node, sup, Some(locks)).await;
    let again = in_process(&node, move |ctx| async move {
        acquire(&ctx, restarted, long, SEC).await
    })
    .await;
    assert_eq!(again.map(|l| l.token), Ok(3));
    assert_eq!(store.snapshot().last_token, 3);
}

#[crate::rt::test]
async fn a_dead_holder_frees_the_lock_and_leases_expire_on_the_service_clock() {
    let node = Node::local(0, 1);
    let (_, locks) = service(&node, LeaseStore::new()).await;
    let (after_death, expired, lost) = in_process(&node, move |mut ctx| async move {
        let (tx, rx) = oneshot::channel();
        let holder = ctx.spawn("holder", move |mut ctx: Ctx<()>| async move {
            let _ = tx.send(acquire(&ctx, locks, 3600 * SEC, SEC).await);
            // Dies on request.
            let _ = ctx.recv().await;
            ExitReason::error("crash")
        });
        let m = ctx.monitor(holder);
        rx.await.unwrap().unwrap();
        ctx.send(holder, ()).unwrap();
        while !matches!(ctx.recv().await, Event::Down { reference, .. } if reference == m) {}
        let after_death = acquire(&ctx, locks, 100 * Duration::from_millis(1), SEC).await;
        if !rt::SIMULATED {
            return (after_death, None, None);
        }
        let lease = *after_death.as_ref().unwrap();
        rt::sleep(Duration::from_millis(150)).await;
        let valid = lease.is_valid();
        let lost = renew(&ctx, locks, &lease, SEC, SEC).await;
        (after_death, Some(valid), Some(lost))
    })
    .await;
    assert_eq!(after_death.map(|l| l.token), Ok(2));
    if rt::SIMULATED {
        assert_eq!(
            expired,
            Some(false),
            "the holder stops believing on its own clock"
        );
        assert_eq!(lost, Some(Err(LeaseError::Lost { token: 2 })));
    }
}

#[test]
fn a_fenced_resource_refuses_a_token_older_than_one_it_accepted() {
    let mut r = FencedResource::new(Vec::new());
    assert_eq!(r.write(1, |v| v.push(1)), Ok(()));
    assert_eq!(r.write(1, |v| v.push(2)), Ok(()), "one holder writes again");
    assert_eq!(r.write(3, |v| v.push(3)), Ok(()));
    assert_eq!(
        r.write(2, |v| v.push(4)),
        Err(StaleToken {
            token: 2,
            newest: 3
        })
    );
    assert_eq!(r.get(), &vec![1, 2, 3]);
}
