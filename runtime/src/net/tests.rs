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

/// Garbage into a live node's port (random bytes, truncated frames, oversized datagrams) is
/// dropped; the node keeps serving remote calls afterwards.
#[crate::rt::test]
async fn junk_datagrams_are_dropped_and_the_node_keeps_working() {
    use crate::rt::Socket;
    use crate::wire::{self, Frame, MAX_FRAME};
    use rand::{Rng, RngCore, SeedableRng};

    let a = Node::start(config(0, BTreeMap::new())).await.unwrap();
    let a_addr = a.listen_addr().unwrap();
    let b = Node::start(config(1, [(0, a_addr)].into())).await.unwrap();
    let server = a.spawn("echo", |mut ctx: Ctx<u32>| async move {
        loop {
            if let Event::Call { msg, reply, .. } = ctx.recv().await {
                reply.reply(msg + 1);
            }
        }
    });
    let junk = Socket::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let valid = wire::encode(&Frame {
        from: 7,
        from_incarnation: 1,
        epoch: 1,
        base_epoch: 0,
        to_incarnation: 0,
        ack_epoch: 0,
        ack: 0,
        refused_epoch: 0,
        seq: 0,
        body: None,
    })
    .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for i in 0..300 {
        let bytes = match i % 3 {
            0 => {
                let mut b = vec![0u8; rng.gen_range(0..300)];
                rng.fill_bytes(&mut b);
                b
            }
            1 => valid[..rng.gen_range(0..valid.len())].to_vec(),
            _ => vec![0xff; MAX_FRAME + 100],
        };
        let _ = junk.send_to(a_addr, &bytes).await;
    }
    let (tx, rx) = oneshot::channel();
    b.spawn("client", move |ctx: Ctx<()>| async move {
        let r: Result<u32, _> = ctx.call(server, 41u32, Duration::from_secs(5)).await;
        let _ = tx.send(r);
        ExitReason::Normal
    });
    let answer = crate::rt::timeout(Duration::from_secs(20), rx)
        .await
        .expect("the call finished")
        .unwrap();
    assert_eq!(answer, Ok(42));
}

/// A link across nodes fires `NoConnection` in a trapping process when the peer goes away.
#[crate::rt::test]
async fn a_remote_link_fires_noconnection() {
    let a = Node::start(config(0, BTreeMap::new())).await.unwrap();
    let a_addr = a.listen_addr().unwrap();
    let b = Node::start(config(1, [(0, a_addr)].into())).await.unwrap();
    let remote = a.spawn("echo", |mut ctx: Ctx<u32>| async move {
        loop {
            if let Event::Call { msg, reply, .. } = ctx.recv().await {
                reply.reply(msg);
            }
        }
    });
    let (linked_tx, linked_rx) = oneshot::channel();
    let (tx, rx) = oneshot::channel();
    b.spawn_opts(
        crate::SpawnOpts::named("linker").trap_exit(),
        move |mut ctx: Ctx<u32>| async move {
            ctx.link(remote);
            // The reply proves the link request (sent first, same pair, FIFO) was applied.
            let echoed: Result<u32, _> = ctx.call(remote, 5u32, Duration::from_secs(5)).await;
            let _ = linked_tx.send(echoed);
            loop {
                if let Event::Exit { from, reason } = ctx.recv().await {
                    let _ = tx.send((from, reason));
                    return ExitReason::Normal;
                }
            }
        },
    );
    let got = crate::rt::timeout(Duration::from_secs(20), async {
        assert_eq!(linked_rx.await.unwrap(), Ok(5));
        a.stop_distribution();
        rx.await.unwrap()
    })
    .await
    .expect("the exit signal arrived");
    assert_eq!(got, (remote, ExitReason::NoConnection));
}

/// A remote call into a full mailbox fails at once (`NotSent`), it does not wait for its timeout.
#[crate::rt::test]
async fn a_remote_call_into_a_full_mailbox_is_refused() {
    let a = Node::start(config(0, BTreeMap::new())).await.unwrap();
    let a_addr = a.listen_addr().unwrap();
    let b = Node::start(config(1, [(0, a_addr)].into())).await.unwrap();
    let opts = crate::SpawnOpts::named("busy").mailbox(1);
    let busy = a.spawn_opts(opts, |_ctx: Ctx<u32>| std::future::pending::<ExitReason>());
    let (tx, rx) = oneshot::channel();
    b.spawn("client", move |ctx: Ctx<()>| async move {
        ctx.send(busy, 1u32).unwrap();
        // Same pair, so the message above is queued first and fills the mailbox.
        let r: Result<u32, _> = ctx.call(busy, 2u32, Duration::from_secs(3600)).await;
        let _ = tx.send(r);
        ExitReason::Normal
    });
    let r = crate::rt::timeout(Duration::from_secs(20), rx)
        .await
        .expect("the call returned")
        .unwrap();
    assert_eq!(r, Err(CallError::NotSent("mailbox full".into())));
}
