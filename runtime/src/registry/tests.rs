//! Registry semantics on one node (both backends), in both builds.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};

use super::{NameConflict, Registry, RegistryError, KEEPER_NAME};
use crate::rt::{self, Duration};
use crate::{Ctx, Event, ExitReason, Node, NodeConfig, Pid};

/// A process that waits forever (until killed).
fn idle(node: &Node) -> Pid {
    node.spawn("idle", |mut ctx: Ctx<u32>| async move {
        loop {
            ctx.recv().await;
        }
    })
}

/// Kills `pid` and returns once its `Down` was seen, so it has certainly exited.
async fn kill(node: &Node, pid: Pid) {
    let (tx, rx) = oneshot::channel();
    node.spawn("killer", move |mut ctx: Ctx<u32>| async move {
        let m = ctx.monitor(pid);
        ctx.exit(pid, ExitReason::Kill);
        loop {
            if let Event::Down { reference, .. } = ctx.recv().await {
                if reference == m {
                    let _ = tx.send(());
                    return ExitReason::Normal;
                }
            }
        }
    });
    rx.await.expect("the killer saw the Down");
}

fn both(node: &Node) -> [(&'static str, Registry); 2] {
    [
        ("local", Registry::local(node)),
        ("cluster", Registry::cluster(node)),
    ]
}

#[rt::test]
async fn register_whereis_unregister_and_typed_errors() {
    let node = Node::local(0, 1);
    for (backend, reg) in both(&node) {
        let a = idle(&node);
        let b = idle(&node);
        let name = format!("{backend}-a");
        assert_eq!(reg.register(&name, a), Ok(()));
        assert_eq!(reg.whereis(&name), Some(a));
        assert_eq!(
            reg.register(&name, b),
            Err(RegistryError::AlreadyRegistered {
                name: name.clone(),
                holder: a
            })
        );
        let remote = Pid {
            node: 7,
            incarnation: 1,
            id: 1,
        };
        assert_eq!(
            reg.register("r", remote),
            Err(RegistryError::NotLocal {
                pid: remote,
                node: 0
            })
        );
        kill(&node, b).await;
        assert_eq!(reg.register("b", b), Err(RegistryError::NotAlive(b)));
        assert!(reg.registered().contains(&(name.clone(), a)), "{backend}");
        assert_eq!(reg.unregister(&name), Ok(a));
        assert_eq!(reg.whereis(&name), None);
        assert_eq!(
            reg.unregister(&name),
            Err(RegistryError::NotRegistered(name.clone()))
        );
        kill(&node, a).await;
    }
}

#[rt::test]
async fn a_dead_process_loses_its_name_at_once() {
    let node = Node::local(0, 1);
    for (backend, reg) in both(&node) {
        let a = idle(&node);
        reg.register("svc", a).unwrap();
        kill(&node, a).await;
        // The keeper or replica may not have run yet: the fired monitor already hides the name.
        assert_eq!(reg.whereis("svc"), None, "{backend}");
        assert!(!reg.registered().iter().any(|(n, _)| n == "svc"));
        let b = idle(&node);
        assert_eq!(
            reg.register("svc", b),
            Ok(()),
            "{backend}: the name is free again"
        );
        assert_eq!(reg.whereis("svc"), Some(b));
        reg.unregister("svc").unwrap();
    }
}

#[rt::test]
async fn a_crashed_registry_process_loses_no_live_name_and_keeps_no_dead_one() {
    let node = Node::local(0, 1);
    for (backend, reg) in both(&node) {
        let live = idle(&node);
        let doomed = idle(&node);
        reg.register("live", live).unwrap();
        reg.register("doomed", doomed).unwrap();
        let process = {
            let st = node.lock();
            if backend == "local" {
                st.name_keeper.unwrap()
            } else {
                st.cluster_registry.as_ref().unwrap().pid
            }
        };
        kill(&node, process).await;
        kill(&node, doomed).await;
        assert_eq!(reg.whereis("doomed"), None, "{backend}");
        assert_eq!(reg.whereis("live"), Some(live), "{backend}");
        let names: Vec<_> = reg
            .registered()
            .into_iter()
            .filter(|(n, _)| !n.starts_with("groundhog."))
            .collect();
        assert_eq!(names, vec![("live".to_string(), live)], "{backend}");
        reg.unregister("live").unwrap();
    }
}

/// Records the runtime's `drop` events (their fields as `key=value`) on this thread.
#[derive(Clone, Default)]
struct Drops(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }
}

impl Subscriber for Drops {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Never cache an answer: other tests' threads have their own subscribers.
        Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.target() == "groundhog::drop"
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = String::new();
        event.record(&mut Fields(&mut line));
        self.0.lock().unwrap().push(line);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// A process that forwards the first `n` messages it gets.
fn collector(node: &Node, n: usize) -> (Pid, oneshot::Receiver<Vec<u32>>) {
    let (tx, rx) = oneshot::channel();
    let pid = node.spawn("collector", move |mut ctx: Ctx<u32>| async move {
        let mut got = Vec::new();
        while got.len() < n {
            if let Event::Msg { msg, .. } = ctx.recv().await {
                got.push(msg);
            }
        }
        let _ = tx.send(got);
        loop {
            ctx.recv().await;
        }
    });
    (pid, rx)
}

/// An unknown name drops the message and traces it; a known one delivers. The target gets
/// exactly the message meant for it, and the drop names the unknown name (catches a
/// `send_to_name` that errs, delivers the unknown-name message anywhere, or drops silently).
#[rt::test]
async fn send_to_name_reaches_the_registered_process_and_drops_unknown_names() {
    let drops = Drops::default();
    let _guard = tracing::subscriber::set_default(drops.clone());
    let node = Node::local(0, 1);
    let reg = Registry::local(&node);
    let (target, got) = collector(&node, 2);
    reg.register("target", target).unwrap();
    let sender = idle(&node);
    assert!(node.send_to_name(sender, 0, "nobody", 1u32).is_ok());
    assert!(node.send_to_name(sender, 0, "target", 42u32).is_ok());
    assert!(node.send_to_name(sender, 0, "target", 43u32).is_ok());
    let got = rt::timeout(Duration::from_secs(1), got).await;
    assert_eq!(got.ok().and_then(|r| r.ok()), Some(vec![42, 43]));
    let drops = drops.0.lock().unwrap().clone();
    let no_name: Vec<&String> = drops.iter().filter(|l| l.contains("no-name")).collect();
    assert_eq!(no_name.len(), 1, "{drops:?}");
    assert!(no_name[0].contains(" name=nobody"), "{drops:?}");
}

/// OTP: a process holds at most one name per registry; the second is `AlreadyNamed`, and
/// once the first is gone the process may take another. (A local and a cluster name are two
/// registries.)
#[rt::test]
async fn a_process_holds_at_most_one_name_per_registry() {
    let node = Node::local(0, 1);
    let a = idle(&node);
    for (backend, reg) in both(&node) {
        assert_eq!(reg.register("first", a), Ok(()), "{backend}");
        assert_eq!(
            reg.register("second", a),
            Err(RegistryError::AlreadyNamed {
                pid: a,
                name: "first".into()
            }),
            "{backend}"
        );
        assert_eq!(reg.whereis("second"), None, "{backend}");
        assert_eq!(reg.unregister("first"), Ok(a));
        assert_eq!(reg.register("second", a), Ok(()), "{backend}");
        assert_eq!(reg.whereis("second"), Some(a), "{backend}");
    }
    kill(&node, a).await;
}

/// While the keeper is dead (and before any registry call starts a new one), names still
/// resolve for `send_to_name`; a dead holder's name does not.
#[rt::test]
async fn names_resolve_while_the_keeper_restarts() {
    let node = Node::local(0, 1);
    let reg = Registry::local(&node);
    let (svc, got) = collector(&node, 1);
    let doomed = idle(&node);
    reg.register("svc", svc).unwrap();
    reg.register("doomed", doomed).unwrap();
    let keeper = node.lock().whereis_name(KEEPER_NAME).unwrap();
    kill(&node, keeper).await;
    kill(&node, doomed).await;
    assert!(!node.is_alive(keeper));
    let sender = idle(&node);
    node.send_to_name(sender, 0, "svc", 7u32).unwrap();
    let got = rt::timeout(Duration::from_secs(1), got).await;
    assert_eq!(got.ok().and_then(|r| r.ok()), Some(vec![7]));
    assert_eq!(node.lock().whereis_name("doomed"), None);
    assert!(!node.is_alive(keeper), "nothing restarted the keeper");
}

/// Two connected nodes over this build's network, with failure detection far slower than
/// any test step (no timing in these tests; every wait ends on an event).
async fn two_nodes() -> (Node, Node) {
    let config = |index: u32, peers: BTreeMap<u32, std::net::SocketAddr>| {
        let mut c = NodeConfig::local(index, 1)
            .heartbeat(Duration::from_millis(50), Duration::from_secs(30))
            .secret(crate::Secret::new("registry tests' cluster secret").unwrap());
        c.listen = Some("127.0.0.1:0".parse().unwrap());
        c.peers = peers;
        c
    };
    let a = Node::start(config(0, BTreeMap::new())).await.unwrap();
    let b = Node::start(config(1, [(0, a.listen_addr().unwrap())].into()))
        .await
        .unwrap();
    // A call from b to a: once answered, a has learned b from its frames.
    let echo = a.spawn("echo", |mut ctx: Ctx<u32>| async move {
        loop {
            if let Event::Call { msg, reply, .. } = ctx.recv().await {
                reply.reply(msg);
            }
        }
    });
    let (tx, rx) = oneshot::channel();
    b.spawn("hello", move |ctx: Ctx<u32>| async move {
        let answer: Result<u32, _> = ctx.call(echo, 1u32, Duration::from_secs(10)).await;
        let _ = tx.send(answer);
        ExitReason::Normal
    });
    assert_eq!(rx.await.unwrap(), Ok(1));
    (a, b)
}

/// A process that reports the first `NameConflict` it is sent.
fn conflict_holder(node: &Node) -> (Pid, oneshot::Receiver<NameConflict>) {
    let (tx, rx) = oneshot::channel();
    let pid = node.spawn("holder", move |mut ctx: Ctx<NameConflict>| async move {
        let mut tx = Some(tx);
        loop {
            if let Event::Msg { msg, .. } = ctx.recv().await {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(msg);
                }
            }
        }
    });
    (pid, rx)
}

/// Connected nodes: two claims of one name that neither node saw
/// before making its own both get `Ok` (a lock-free claim); the first push between them
/// settles it on both nodes: the smaller (logical stamp, pid) wins, the loser is sent a
/// `NameConflict` naming both stamps, and a later claim on either node is refused. The stamps
/// are Lamport clocks, not time: node 0 registered another name first, so its claim has stamp
/// 2 against node 1's 1, and node 1 wins although its pid sorts after node 0's (a rule ranking
/// by `rt::elapsed()`, 0 in the real build and equal here in simulation, would pick node 0, and
/// so would the reversed rule). Both builds.
#[rt::test]
async fn connected_nodes_settle_a_double_claim_on_the_smaller_stamp() {
    let outcome = rt::timeout(Duration::from_secs(20), async {
        let (a, b) = two_nodes().await;
        let (ra, rb) = (Registry::cluster(&a), Registry::cluster(&b));
        let other = idle(&a);
        let (on_a, told_a) = conflict_holder(&a);
        let (on_b, told_b) = conflict_holder(&b);
        // No await between these: neither node has seen the other's claim.
        assert_eq!(ra.register("other", other), Ok(()));
        assert_eq!(ra.register("svc", on_a), Ok(()));
        assert_eq!(rb.register("svc", on_b), Ok(()));
        let told = told_a.await.unwrap();
        assert_eq!(
            ra.whereis("svc"),
            Some(on_b),
            "node 0 took the winner at once"
        );
        assert_eq!(rb.whereis("svc"), Some(on_b));
        let late = idle(&a);
        assert_eq!(
            ra.register("svc", late),
            Err(RegistryError::AlreadyRegistered {
                name: "svc".into(),
                holder: on_b
            })
        );
        drop(told_b);
        (told, on_b)
    })
    .await
    .expect("the conflict was settled");
    let (told, on_b) = outcome;
    assert_eq!(
        told,
        NameConflict {
            name: "svc".into(),
            winner: on_b,
            winner_stamp: 1,
            loser_stamp: 2,
        }
    );
}

/// Inbound cluster pushes are addressed to the replica by a local name: they still arrive
/// while the local keeper is dead (and nothing has restarted it). Simulation only: the push is
/// awaited by time.
#[rt::test]
async fn cluster_pushes_arrive_while_the_keeper_restarts() {
    if !rt::SIMULATED {
        return;
    }
    let (a, b) = two_nodes().await;
    let (ra, rb) = (Registry::cluster(&a), Registry::cluster(&b));
    let keeper = b.lock().whereis_name(KEEPER_NAME).unwrap();
    kill(&b, keeper).await;
    let svc = idle(&a);
    ra.register("svc", svc).unwrap();
    rt::sleep(Duration::from_millis(100)).await;
    assert!(!b.is_alive(keeper), "nothing restarted b's keeper");
    assert_eq!(rb.whereis("svc"), Some(svc));
}
