//! One member on one node (both builds): it elects itself, commits what it is given, answers
//! watchers, and a supervisor's restart reads its state back from the disk. Under simulation:
//! what a crash of the node keeps (the synced vote) and loses (the unsynced one), and a
//! corrupt record refusing the start. Groups of several nodes under faults are tested in
//! simulation (`properties coord::consensus`).

use futures::channel::oneshot;

use super::{child_spec, propose, status, watch, Committed, Config, ConsensusError, Role, Store};
use crate::rt::Duration;
use crate::supervisor::{self, which_children, Spec, Strategy};
use crate::{Ctx, ExitReason, Node, Pid};

const SEC: Duration = Duration::from_secs(1);

/// A keyspace of its own for test `name` (real build: a fresh directory under the system's
/// temporary directory, so a rerun starts empty).
fn test_dir(name: &str) -> String {
    if crate::rt::SIMULATED {
        return name.to_string();
    }
    let dir = std::env::temp_dir().join(format!("groundhog-raft-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.to_string_lossy().into_owned()
}

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
async fn a_lone_member_leads_commits_and_survives_a_restart_from_its_disk() {
    let node = Node::local(0, 1);
    let store: Store<String> = Store::new();
    let dir = test_dir("lone");
    let spec = Spec::new(Strategy::OneForOne).child(child_spec(
        Config::new("raft", vec![0], 1)
            .timing(Duration::from_millis(10), 3)
            .dir(&dir),
        store.clone(),
    ));
    let sup = supervisor::start(&node, "sup", None, spec).await.unwrap();
    let s = store.clone();
    let (first, second, term) = in_process(&node, move |ctx| async move {
        let member = which_children(&ctx, sup, SEC).await.unwrap()[0].1.unwrap();
        let led = until_leader(&ctx, member).await;
        assert_eq!((led.term, led.leader), (1, Some(0)));
        let first = propose(&ctx, member, "a".to_string(), SEC).await;
        // A crash of the member: the supervisor restarts it, and it reads its disk.
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
        Config::new("g", vec![1, 2], 0).dir(test_dir("bad")),
        Store::<u8>::new(),
    )
    .await;
    assert!(bad.is_err(), "node 0 is not a member: {bad:?}");
    // A member of a three-node group alone on its node never leads and refuses proposals.
    let member = super::start(
        &node,
        None,
        Config::new("g", vec![0, 1, 2], 0).dir(test_dir("follower")),
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

/// What node 0's boots saw: the state read from the disk, and how the member's start went.
type Boot = (
    Result<super::Durable<u8>, super::StoreError>,
    Result<(), String>,
);

/// A vote is durable before the candidate hears of it: a crash while the vote's write is
/// still unsynced (the disk stalled) loses the vote and no reply was sent; once synced and
/// answered, the vote survives the crash. Then a torn record fails the start with a typed
/// error, never read as state.
#[test]
fn a_synced_vote_survives_a_crash_and_an_unsynced_one_is_gone() {
    use super::core::Peer;
    use super::{load, Rpc, StoreError};
    use crate::rt::{Control, DiskError, NetConfig, World};
    use crate::{Event, NodeConfig};
    use std::sync::{Arc, Mutex};

    if !crate::rt::SIMULATED {
        return;
    }
    const DIR: &str = "raft-votes";
    let net = NetConfig {
        loss: 0.0,
        latency: Duration::from_millis(1)..Duration::from_millis(2),
    };
    let world = World::new(3, &net, None).unwrap();
    let boots: Arc<Mutex<Vec<Boot>>> = Arc::default();
    let replies: Arc<Mutex<Vec<Peer<u8>>>> = Arc::default();
    let candidate: Arc<Mutex<Option<Node>>> = Arc::default();
    let lock = |m: &Arc<Mutex<Vec<Boot>>>| m.lock().unwrap().clone();
    let seen = world.block_on(async {
        let control = Control::current().unwrap();
        let b = boots.clone();
        let n0 = control.create_node(0, move || {
            let b = b.clone();
            async move {
                let incarnation = b.lock().unwrap().len() as u64 + 1;
                let node = Node::start(NodeConfig::cluster(0, incarnation, 2))
                    .await
                    .unwrap();
                let loaded = load::<u8>(DIR).await;
                // Elections far off: the only vote is the one asked for below.
                let config = Config::new("raft", vec![0, 1], 1)
                    .timing(Duration::from_millis(50), 200)
                    .dir(DIR);
                let started = super::start(&node, None, config, Store::<u8>::new())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                b.lock().unwrap().push((loaded, started));
                std::future::pending::<()>().await
            }
        });
        let c = candidate.clone();
        let n1 = control.create_node(1, move || {
            let c = c.clone();
            async move {
                let node = Node::start(NodeConfig::cluster(1, 1, 2)).await.unwrap();
                *c.lock().unwrap() = Some(node);
                std::future::pending::<()>().await
            }
        });
        crate::rt::sleep(Duration::from_millis(300)).await;
        let ask = |control: &Control| {
            let node = candidate.lock().unwrap().clone().unwrap();
            let replies = replies.clone();
            control.spawn_on(&n1, async move {
                node.spawn("candidate", move |mut ctx: Ctx<Rpc<u8>>| async move {
                    // Where the member answers: its peer's group name on node 1.
                    let _ = crate::Registry::local(ctx.node()).unregister("raft");
                    crate::Registry::local(ctx.node())
                        .register("raft", ctx.pid())
                        .unwrap();
                    let vote: Peer<u8> = Peer::Vote {
                        term: 3,
                        candidate: 1,
                        last_index: 0,
                        last_term: 0,
                    };
                    ctx.send_to_name(0, "raft", Rpc::Peer(vote)).unwrap();
                    loop {
                        if let Event::Msg {
                            msg: Rpc::Peer(p), ..
                        } = ctx.recv().await
                        {
                            replies.lock().unwrap().push(p);
                        }
                    }
                });
            });
        };
        // The vote's write waits 100 ms for the stalled disk, its sync 100 ms more: crash
        // between the two.
        control.disk_stall(&n0, Duration::from_millis(100));
        ask(&control);
        crate::rt::sleep(Duration::from_millis(150)).await;
        let unsynced = control.unsynced_writes(&n0);
        let replied_before_sync = replies.lock().unwrap().len();
        control.disk_stall(&n0, Duration::ZERO);
        control.restart(&n0);
        crate::rt::sleep(Duration::from_millis(300)).await;
        ask(&control);
        crate::rt::sleep(Duration::from_millis(300)).await;
        let answered = replies.lock().unwrap().clone();
        control.restart(&n0);
        crate::rt::sleep(Duration::from_millis(300)).await;
        let torn = control.disk_corrupt(&n0);
        control.restart(&n0);
        crate::rt::sleep(Duration::from_millis(300)).await;
        (unsynced, replied_before_sync, answered, torn)
    });
    let (unsynced, replied_before_sync, answered, torn) = seen;
    assert_eq!(unsynced, 1, "the vote's record was written, not synced");
    assert_eq!(
        replied_before_sync, 0,
        "no reply before the vote is durable"
    );
    assert_eq!(
        answered,
        vec![Peer::VoteReply {
            term: 3,
            from: 0,
            granted: true
        }]
    );
    assert_eq!(torn.as_deref(), Some("raft-votes/meta"));
    let boots = lock(&boots);
    let states: Vec<Option<(u64, Option<u32>)>> = boots
        .iter()
        .map(|(d, _)| d.as_ref().ok().map(|d| (d.term, d.voted_for)))
        .collect();
    assert_eq!(
        states,
        vec![Some((0, None)), Some((0, None)), Some((3, Some(1))), None],
        "first boot empty; the unsynced vote gone; the synced one kept; then the torn record"
    );
    assert_eq!(
        boots[3].0,
        Err(StoreError::Disk(DiskError::Corrupt { key: "meta".into() }))
    );
    assert!(
        boots[..3].iter().all(|(_, s)| s.is_ok()) && boots[3].1.is_err(),
        "a member with a torn record does not start: {:?}",
        boots[3].1
    );
}
