//! Two nodes in one process over the build's network (loopback UDP in the real build).
//!
//! Nothing here depends on how fast the machine is: every wait ends on an observable event
//! (a reply, a `Down`, an exit signal), outer timeouts only bound a failure and are far above
//! any expected run, and failure detection is generous (`DOWN_AFTER`, 150 heartbeats), so a
//! loaded CI machine that stalls a task for seconds does not declare a live peer down. Tests
//! that never need a peer to go down use `NEVER_DOWN`. The timing of failure detection itself
//! is tested in simulation (`session::tests`, `properties runtime::*`).

use std::collections::BTreeMap;

use futures::channel::oneshot;

use crate::rt::Duration;
use crate::{CallError, Ctx, Event, ExitReason, Node, NodeConfig, Pid, Secret};

/// Heartbeats (and retransmissions) every 20 ms.
const HEARTBEAT: Duration = Duration::from_millis(20);
/// For the tests that wait for a peer to be declared down after its endpoint goes away.
const DOWN_AFTER: Duration = Duration::from_secs(3);
/// For the tests in which no peer should ever be declared down.
const NEVER_DOWN: Duration = Duration::from_secs(3600);
/// Bounds a failing test; a passing one ends on its events long before.
const BOUND: Duration = Duration::from_secs(120);

fn test_secret() -> Secret {
    Secret::new("net tests' cluster secret").unwrap()
}

fn config(
    index: u32,
    peers: BTreeMap<u32, std::net::SocketAddr>,
    down_after: Duration,
) -> NodeConfig {
    let mut c = NodeConfig::local(index, 1)
        .heartbeat(HEARTBEAT, down_after)
        .secret(test_secret());
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    c.peers = peers;
    c
}

/// Two nodes over the network: `a` listening, `b` knowing `a` as peer 0 (so `b` opens).
async fn pair(down_after: Duration) -> (Node, Node) {
    let a = Node::start(config(0, BTreeMap::new(), down_after))
        .await
        .unwrap();
    let a_addr = a.listen_addr().unwrap();
    let b = Node::start(config(1, [(0, a_addr)].into(), down_after))
        .await
        .unwrap();
    (a, b)
}

/// A process on `node` that answers every call with `answer(msg)`.
fn echo<M: crate::Message>(node: &Node, answer: fn(M) -> M) -> Pid {
    node.spawn("echo", move |mut ctx: Ctx<M>| async move {
        loop {
            if let Event::Call { msg, reply, .. } = ctx.recv().await {
                reply.reply(answer(msg));
            }
        }
    })
}

/// Remote call, remote monitor, and `NoConnection` (then `NodeDown`) once the peer's endpoint
/// is gone. No sleeps: every wait ends on an event; the outer timeout only bounds a failure.
#[crate::rt::test]
async fn two_nodes_call_monitor_and_see_the_peer_go() {
    let (a, b) = pair(DOWN_AFTER).await;
    let server = echo(&a, |msg: String| format!("echo {msg}"));
    let (called_tx, called_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    b.spawn("client", move |mut ctx: Ctx<u32>| async move {
        let second = BOUND;
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
    let outcome = crate::rt::timeout(BOUND, async {
        let answer = called_rx.await.unwrap();
        a.stop_distribution();
        (answer, done_rx.await.unwrap())
    })
    .await
    .expect("the two-node exchange finished");
    assert_eq!(outcome.0, Ok("echo hi".to_string()));
    assert_eq!(b.nodes(), Vec::<u32>::new(), "a was declared down");
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

    let (a, b) = pair(NEVER_DOWN).await;
    let server = echo(&a, |msg: u32| msg + 1);
    let junk = Socket::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let valid = wire::encode(&Frame::opening(7, 1, 0, None)).unwrap();
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
        let _ = junk.send_to(a.listen_addr().unwrap(), &bytes).await;
    }
    let (tx, rx) = oneshot::channel();
    b.spawn("client", move |ctx: Ctx<()>| async move {
        let r: Result<u32, _> = ctx.call(server, 41u32, BOUND).await;
        let _ = tx.send(r);
        ExitReason::Normal
    });
    let answer = crate::rt::timeout(BOUND, rx)
        .await
        .expect("the call finished")
        .unwrap();
    assert_eq!(answer, Ok(42));
}

/// A link across nodes fires `NoConnection` in a trapping process when the peer goes away.
#[crate::rt::test]
async fn a_remote_link_fires_noconnection() {
    let (a, b) = pair(DOWN_AFTER).await;
    let remote = echo(&a, |msg: u32| msg);
    let (linked_tx, linked_rx) = oneshot::channel();
    let (tx, rx) = oneshot::channel();
    b.spawn_opts(
        crate::SpawnOpts::named("linker").trap_exit(),
        move |mut ctx: Ctx<u32>| async move {
            ctx.link(remote);
            // The reply proves the link request (sent first, same pair, FIFO) was applied.
            let echoed: Result<u32, _> = ctx.call(remote, 5u32, BOUND).await;
            let _ = linked_tx.send(echoed);
            loop {
                if let Event::Exit { from, reason } = ctx.recv().await {
                    let _ = tx.send((from, reason));
                    return ExitReason::Normal;
                }
            }
        },
    );
    let got = crate::rt::timeout(BOUND, async {
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
    let (a, b) = pair(NEVER_DOWN).await;
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
    let r = crate::rt::timeout(BOUND, rx)
        .await
        .expect("the call returned")
        .unwrap();
    assert_eq!(r, Err(CallError::NotSent("mailbox full".into())));
    // The call's monitor, set up by its request, went with the refusal on both sides.
    assert!(
        a.lock().monitors.is_empty(),
        "the callee's node holds no monitor"
    );
    assert!(
        b.lock().watching.is_empty(),
        "the caller's node watches nothing"
    );
}

/// A remote call's monitor rides in its request and ends with its reply (no monitor or
/// demonitor of its own): once answered calls return, the callee's node holds no monitor for
/// them and the caller's node watches nothing; a timed-out call's monitor is removed by the
/// caller's demonitor.
#[crate::rt::test]
async fn a_remote_calls_monitor_ends_with_its_reply() {
    let (a, b) = pair(NEVER_DOWN).await;
    let server = echo(&a, |n: u32| n + 1);
    let silent = a.spawn("silent", |_ctx: Ctx<u32>| {
        std::future::pending::<ExitReason>()
    });
    let (answered_tx, answered_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (timed_out_tx, timed_out_rx) = oneshot::channel();
    b.spawn("client", move |ctx: Ctx<()>| async move {
        let mut answers = Vec::new();
        for n in 0..10u32 {
            answers.push(ctx.call::<u32, u32>(server, n, BOUND).await);
        }
        let _ = answered_tx.send(answers);
        let _ = go_rx.await;
        let r = ctx.call::<u32, u32>(silent, 0, HEARTBEAT).await;
        let _ = timed_out_tx.send(r);
        ExitReason::Normal
    });
    crate::rt::timeout(BOUND, async {
        let answers = answered_rx.await.unwrap();
        assert_eq!(answers, (1..=10).map(Ok).collect::<Vec<_>>());
        assert!(
            a.lock().monitors.is_empty(),
            "answered calls left a monitor"
        );
        assert!(b.lock().watching.is_empty(), "answered calls left a watch");
        let _ = go_tx.send(());
        assert_eq!(timed_out_rx.await.unwrap(), Err(CallError::Timeout));
        assert!(
            b.lock().watching.is_empty(),
            "the timed-out call left a watch"
        );
        eventually("the timed-out call's demonitor arrives", || {
            a.lock().monitors.is_empty()
        })
        .await;
    })
    .await
    .expect("the calls finished");
}

/// A remote send into a full mailbox is not lost while the session is up: the receiving node
/// holds it (no acknowledgement), the sender retransmits, and once the receiver reads, every
/// message arrives, in order, once.
#[crate::rt::test]
async fn remote_sends_into_a_full_mailbox_are_held_not_lost() {
    const SENT: u32 = 20;
    let (a, b) = pair(NEVER_DOWN).await;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (got_tx, got_rx) = oneshot::channel();
    let opts = crate::SpawnOpts::named("slow").mailbox(2);
    let slow = a.spawn_opts(opts, move |mut ctx: Ctx<u32>| async move {
        let _ = go_rx.await;
        let mut got = Vec::new();
        while got.len() < SENT as usize {
            if let Event::Msg { msg, .. } = ctx.recv().await {
                got.push(msg);
            }
        }
        let _ = got_tx.send(got);
        ExitReason::Normal
    });
    let (sent_tx, sent_rx) = oneshot::channel();
    b.spawn("client", move |ctx: Ctx<()>| async move {
        let sent: Vec<bool> = (0..SENT).map(|n| ctx.send(slow, n).is_ok()).collect();
        let _ = sent_tx.send(sent);
        ExitReason::Normal
    });
    let got = crate::rt::timeout(BOUND, async {
        let sent = sent_rx.await.unwrap();
        assert!(
            sent.iter().all(|ok| *ok),
            "the outbound queue has room for all"
        );
        // Wait (on the observable condition, not a duration) until the mailbox is full: from
        // then on every arriving message has to be held at the session.
        loop {
            let queued = a.lock().entry(slow).map_or(0, |e| e.mailbox.len());
            if queued >= 2 {
                break;
            }
            crate::rt::sleep(HEARTBEAT).await;
        }
        let _ = go_tx.send(());
        got_rx.await.unwrap()
    })
    .await
    .expect("every held message arrived");
    assert_eq!(got, (0..SENT).collect::<Vec<_>>());
}

/// Waits until `done()` holds, checking every millisecond; panics naming `what` past [`BOUND`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = crate::rt::Instant::now() + BOUND;
    while !done() {
        assert!(crate::rt::Instant::now() < deadline, "never: {what}");
        crate::rt::sleep(Duration::from_millis(1)).await;
    }
}

/// The audit's attacks from a socket that does not know the secret: a frame claiming to be a
/// new node 7 (it made `is_alive(<7.1.1>)` true), and an `Exit(Kill)` claiming to come from
/// node 1 (it killed a process). Both as the old unauthenticated frame and as a `Data` packet
/// with a made-up key: every one is dropped and counted, no peer appears, nothing dies.
#[crate::rt::test]
async fn spoofed_frames_create_no_node_and_kill_nothing() {
    use crate::auth::Packet;
    use crate::rt::Socket;
    use crate::wire::{self, Frame, Wire};

    let a = Node::start(config(0, BTreeMap::new(), NEVER_DOWN))
        .await
        .unwrap();
    let a_addr = a.listen_addr().unwrap();
    let victim = a.spawn("victim", |mut ctx: Ctx<()>| async move {
        loop {
            ctx.recv().await;
        }
    });
    let fake = Pid {
        node: 7,
        incarnation: 1,
        id: 1,
    };
    let spoofed =
        |from: u32, body: Option<Wire>| Frame::opening(from, 1, u64::from(body.is_some()), body);
    let kill = Wire::Exit {
        from: Pid {
            node: 1,
            incarnation: 1,
            id: 1,
        },
        to: victim,
        reason: ExitReason::Kill,
        linked: false,
    };
    let frames = [spoofed(7, None), spoofed(1, Some(kill))];
    let attacker = Socket::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut sent = 0;
    for frame in &frames {
        let bare = wire::encode(frame).unwrap();
        let packet = wire::encode(&Packet::Data {
            from: frame.from,
            key: [3; 16],
            frame: bare.clone(),
            tag: [0; 32],
        })
        .unwrap();
        for bytes in [bare, packet] {
            attacker.send_to(a_addr, &bytes).await.unwrap();
            sent += 1;
        }
    }
    eventually("every spoofed datagram is rejected", || {
        a.net_stats().rejected >= sent
    })
    .await;
    assert!(!a.is_alive(fake), "a spoofed frame created node 7");
    assert!(a.is_alive(victim), "a spoofed exit signal killed a process");
    assert!(a.lock().peers.is_empty(), "peer state for a stranger");
    assert_eq!(a.net_stats().authenticated, 0);
}

/// A node started with the wrong secret never becomes a peer: its handshake fails at the
/// proof, nothing it queues leaves it, and the cluster's nodes keep talking to each other.
#[crate::rt::test]
async fn a_node_with_the_wrong_secret_is_rejected() {
    let (a, b) = pair(NEVER_DOWN).await;
    let wrong = Secret::new("not the cluster's secret at all").unwrap();
    let intruder =
        Node::start(config(2, [(0, a.listen_addr().unwrap())].into(), NEVER_DOWN).secret(wrong))
            .await
            .unwrap();
    let server = echo(&a, |msg: u32| msg + 1);
    let call = |node: &Node, timeout: Duration| {
        let (tx, rx) = oneshot::channel();
        node.spawn("client", move |ctx: Ctx<()>| async move {
            let r: Result<u32, _> = ctx.call(server, 1u32, timeout).await;
            let _ = tx.send(r);
            ExitReason::Normal
        });
        rx
    };
    assert_eq!(call(&b, BOUND).await.unwrap(), Ok(2));
    eventually("the intruder's handshake is refused", || {
        intruder.net_stats().rejected > 0
    })
    .await;
    assert_eq!(a.nodes(), vec![1], "the intruder is not connected");
    assert_eq!(intruder.nodes(), Vec::<u32>::new());
    let refused = call(&intruder, Duration::from_millis(300)).await.unwrap();
    assert_eq!(refused, Err(CallError::Timeout));
    assert_eq!(intruder.net_stats().handshakes, 0);
    let stats = a.net_stats();
    assert_eq!(stats.authenticated, 1, "only b is a's peer: {stats:?}");
    assert!(!a.lock().peers.contains_key(&2));
    assert_eq!(call(&b, BOUND).await.unwrap(), Ok(2));
}

/// In the real build there is no default secret: distribution does not start without one.
#[cfg(not(madsim))]
#[crate::rt::test]
async fn the_real_build_refuses_distribution_without_a_secret() {
    let mut c = NodeConfig::local(0, 1);
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    let err = Node::start(c)
        .await
        .err()
        .expect("started without a secret");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("cluster secret"), "{err}");
}
