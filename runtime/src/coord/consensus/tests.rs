//! One member on one node (both builds): it elects itself, commits what it is given, answers
//! watchers, and a supervisor's restart keeps its store. Groups of several nodes under faults
//! are tested in simulation (`properties coord::consensus`).

use futures::channel::oneshot;

use super::{child_spec, propose, status, watch, Committed, Config, ConsensusError, Role, Store};
use crate::rt::Duration;
use crate::supervisor::{self, which_children, Spec, Strategy};
use crate::{Ctx, ExitReason, Node, Pid};

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

/// Waits (on the member's own notices, no polling) until `member` leads.
async fn until_leader(ctx: &Ctx<u32>, member: Pid) -> super::Status {
    let mut known = status::<String, _>(ctx, member, SEC).await.unwrap();
    while known.role != Role::Leader {
        known = watch::<String, _>(ctx, member, &known, 10 * SEC)
            .await
            .unwrap();
    }
    known
}

#[crate::rt::test]
async fn a_lone_member_leads_commits_and_survives_a_restart_with_its_store() {
    let node = Node::local(0, 1);
    let store: Store<String> = Store::new();
    let spec = Spec::new(Strategy::OneForOne).child(child_spec(
        Config::new("raft", vec![0], 1).timing(Duration::from_millis(10), 3),
        store.clone(),
    ));
    let sup = supervisor::start(&node, "sup", None, spec).await.unwrap();
    let s = store.clone();
    let (first, second, term) = in_process(&node, move |ctx| async move {
        let member = which_children(&ctx, sup, SEC).await.unwrap()[0].1.unwrap();
        let led = until_leader(&ctx, member).await;
        assert_eq!((led.term, led.leader), (1, Some(0)));
        let first = propose(&ctx, member, "a".to_string(), SEC).await;
        // A crash of the member: the supervisor restarts it on the same store.
        ctx.exit(member, ExitReason::Kill);
        let member = loop {
            match which_children(&ctx, sup, SEC).await.unwrap()[0].1 {
                Some(p) if p != member => break p,
                _ => crate::rt::yield_now().await,
            }
        };
        let led = until_leader(&ctx, member).await;
        let second = propose(&ctx, member, "b".to_string(), SEC).await;
        (first, second, led.term)
    })
    .await;
    assert_eq!(first, Ok(Committed { index: 2, term: 1 }));
    assert_eq!(
        term, 2,
        "the restarted member remembered term 1 and started term 2"
    );
    assert_eq!(second, Ok(Committed { index: 4, term: 2 }));
    let commands: Vec<Option<String>> = s.committed().into_iter().map(|e| e.command).collect();
    assert_eq!(
        commands,
        vec![None, Some("a".into()), None, Some("b".into())]
    );
}

#[crate::rt::test]
async fn a_bad_config_fails_the_start_and_a_follower_names_no_leader() {
    let node = Node::local(0, 1);
    let bad = super::start(
        &node,
        None,
        Config::new("g", vec![1, 2], 0),
        Store::<u8>::new(),
    )
    .await;
    assert!(bad.is_err(), "node 0 is not a member: {bad:?}");
    // A member of a three-node group alone on its node never leads and refuses proposals.
    let member = super::start(
        &node,
        None,
        Config::new("g", vec![0, 1, 2], 0),
        Store::<u8>::new(),
    )
    .await
    .unwrap();
    let answer = in_process(&node, move |ctx| async move {
        propose(&ctx, member, 7u8, SEC).await
    })
    .await;
    assert!(
        matches!(
            answer,
            Err(ConsensusError::Propose(super::ProposeError::NotLeader {
                member: 0,
                ..
            }))
        ),
        "{answer:?}"
    );
}
