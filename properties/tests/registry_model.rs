//! Model-based test of the registry: random sequences of spawns, registrations, unregistrations,
//! process deaths and crashes of the registry's own process, on one node, against a plain map.
//! After every step, `whereis` of every name and `registered` must equal the model, and every
//! refused operation must be refused with the model's error (including `AlreadyNamed`: a
//! process holds at most one name). Both backends.
//!
//! `PROPTEST_CASES` overrides the number of cases (CI keeps the default).

use std::collections::BTreeMap;

use futures::channel::oneshot;
use groundhog_runtime::rt::{self, Duration, NetConfig};
use groundhog_runtime::{
    Ctx, Event, ExitReason, Node, Pid, Registry, RegistryError, KEEPER_NAME, REPLICA_NAME,
};
use proptest::prelude::*;

use crate::config;

const NAMES: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Spawn,
    Register {
        name: usize,
        proc: usize,
    },
    Unregister {
        name: usize,
    },
    Kill {
        proc: usize,
    },
    /// Kills the registry's own process (the local keeper or the cluster replica).
    CrashRegistry,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Spawn),
        4 => (0..NAMES, 0..16usize).prop_map(|(name, proc)| Op::Register { name, proc }),
        1 => (0..NAMES).prop_map(|name| Op::Unregister { name }),
        2 => (0..16usize).prop_map(|proc| Op::Kill { proc }),
        1 => Just(Op::CrashRegistry),
    ]
}

#[derive(Default)]
struct Model {
    procs: Vec<(Pid, bool)>,
    names: BTreeMap<String, Pid>,
}

fn name(i: usize) -> String {
    format!("n{i}")
}

fn idle(node: &Node) -> Pid {
    node.spawn("idle", |mut ctx: Ctx<u32>| async move {
        loop {
            ctx.recv().await;
        }
    })
}

/// Kills `pid` and returns once it has certainly exited.
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
    let _ = rx.await;
}

/// Runs `ops` and returns the first disagreement with the model, if any.
async fn run(cluster: bool, ops: Vec<Op>) -> Result<(), String> {
    let node = Node::local(0, 1);
    let reg = if cluster {
        Registry::cluster(&node)
    } else {
        Registry::local(&node)
    };
    let mut model = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        match op.clone() {
            Op::Spawn => model.procs.push((idle(&node), true)),
            Op::Register { name: n, proc } if !model.procs.is_empty() => {
                let (pid, alive) = model.procs[proc % model.procs.len()];
                let expected = if !alive {
                    Err(RegistryError::NotAlive(pid))
                } else if let Some(holder) = model.names.get(&name(n)) {
                    Err(RegistryError::AlreadyRegistered {
                        name: name(n),
                        holder: *holder,
                    })
                } else if let Some((held, _)) = model.names.iter().find(|(_, p)| **p == pid) {
                    // One name per process (OTP).
                    Err(RegistryError::AlreadyNamed {
                        pid,
                        name: held.clone(),
                    })
                } else {
                    model.names.insert(name(n), pid);
                    Ok(())
                };
                let got = reg.register(&name(n), pid);
                if got != expected {
                    return Err(format!(
                        "step {step} {op:?}: got {got:?}, model {expected:?}"
                    ));
                }
            }
            Op::Unregister { name: n } => {
                let expected = model
                    .names
                    .remove(&name(n))
                    .ok_or(RegistryError::NotRegistered(name(n)));
                let got = reg.unregister(&name(n));
                if got != expected {
                    return Err(format!(
                        "step {step} {op:?}: got {got:?}, model {expected:?}"
                    ));
                }
            }
            Op::Kill { proc } if !model.procs.is_empty() => {
                let i = proc % model.procs.len();
                let pid = model.procs[i].0;
                model.procs[i].1 = false;
                model.names.retain(|_, p| *p != pid);
                kill(&node, pid).await;
            }
            Op::CrashRegistry => {
                let own = if cluster { REPLICA_NAME } else { KEEPER_NAME };
                if let Some(pid) = Registry::local(&node).whereis(own) {
                    kill(&node, pid).await;
                }
            }
            _ => {}
        }
        // Let queued Downs be handled sometimes, and sometimes not: both must look the same.
        if step % 2 == 0 {
            rt::sleep(Duration::from_millis(1)).await;
        }
        for n in 0..NAMES {
            let got = reg.whereis(&name(n));
            let expected = model.names.get(&name(n)).copied();
            if got != expected {
                return Err(format!(
                    "after step {step} {op:?}: whereis({}) = {got:?}, model {expected:?}",
                    name(n)
                ));
            }
        }
        let listed: BTreeMap<String, Pid> = reg
            .registered()
            .into_iter()
            .filter(|(n, _)| !n.starts_with("groundhog."))
            .collect();
        if listed != model.names {
            return Err(format!(
                "after step {step} {op:?}: registered = {listed:?}, model {:?}",
                model.names
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(crate::cases(64), file!()))]

    #[test]
    #[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
    fn registry_matches_its_model(cluster in any::<bool>(), ops in prop::collection::vec(op(), 1..60)) {
        let world = rt::World::new(0, &NetConfig::default(), Some(Duration::from_secs(600)))
            .expect("a simulated world");
        let outcome = world.block_on(run(cluster, ops));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
