//! Registry semantics on one node (both backends), in both builds.

use futures::channel::oneshot;

use super::{Registry, RegistryError};
use crate::rt::{self, Duration};
use crate::{Ctx, Event, ExitReason, Node, Pid};

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

#[rt::test]
async fn send_to_name_reaches_the_registered_process_and_drops_unknown_names() {
    let node = Node::local(0, 1);
    let reg = Registry::local(&node);
    let (tx, rx) = oneshot::channel();
    let target = node.spawn("target", move |mut ctx: Ctx<u32>| async move {
        if let Event::Msg { msg, .. } = ctx.recv().await {
            let _ = tx.send(msg);
        }
        ExitReason::Normal
    });
    reg.register("target", target).unwrap();
    let sender = idle(&node);
    assert!(node.send_to_name(sender, 0, "nobody", 1u32).is_ok());
    assert!(node.send_to_name(sender, 0, "target", 42u32).is_ok());
    let got = rt::timeout(Duration::from_secs(1), rx).await;
    assert_eq!(got.ok().and_then(|r| r.ok()), Some(42));
}
