//! Two nodes in one process over the build's network (loopback UDP in the real build).

use std::collections::BTreeMap;

use futures::channel::oneshot;

use crate::rt::Duration;
use crate::{CallError, Ctx, Event, ExitReason, Node, NodeConfig};

fn config(index: u32, peers: BTreeMap<u32, std::net::SocketAddr>) -> NodeConfig {
    let mut c = NodeConfig::local(index, 1)
        .heartbeat(Duration::from_millis(20), Duration::from_millis(200));
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    c.peers = peers;
    c
}

/// Remote call, remote monitor, and `NoConnection` (then `NodeDown`) once the peer's endpoint
/// is gone. No sleeps: every wait ends on an event; the outer timeout only bounds a failure.
#[crate::rt::test]
async fn two_nodes_call_monitor_and_see_the_peer_go() {
    let a = Node::start(config(0, BTreeMap::new())).await.unwrap();
    let a_addr = a.listen_addr().unwrap();
    let b = Node::start(config(1, [(0, a_addr)].into())).await.unwrap();
    let server = a.spawn("echo", |mut ctx: Ctx<String>| async move {
        loop {
            if let Event::Call { msg, reply, .. } = ctx.recv().await {
                reply.reply(format!("echo {msg}"));
            }
        }
    });
    let (called_tx, called_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    b.spawn("client", move |mut ctx: Ctx<u32>| async move {
        let second = Duration::from_secs(5);
        let answer: Result<String, _> = ctx.call(server, "hi".to_string(), second).await;
        let m = ctx.monitor(server);
        let _ = called_tx.send(answer);
        let down = loop {
            if let Event::Down {
                reference, reason, ..
            } = ctx.recv().await
            {
                if reference == m {
                    break reason;
                }
            }
        };
        let after: Result<String, _> = ctx.call(server, "again".to_string(), second).await;
        let _ = done_tx.send((down, after));
        ExitReason::Normal
    });
    let outcome = crate::rt::timeout(Duration::from_secs(20), async {
        let answer = called_rx.await.unwrap();
        a.stop_distribution();
        (answer, done_rx.await.unwrap())
    })
    .await
    .expect("the two-node exchange finished");
    assert_eq!(outcome.0, Ok("echo hi".to_string()));
    assert_eq!(outcome.1 .0, ExitReason::NoConnection);
    assert_eq!(outcome.1 .1, Err(CallError::NodeDown));
    assert!(a.is_alive(server), "only the endpoint went away");
}
