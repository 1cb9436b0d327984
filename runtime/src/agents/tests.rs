//! The agent registry on one node: indexes, paging, rollback, crash recovery.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::channel::oneshot;

use super::{
    Agent, AgentRef, AgentRegistry, Config, Cursor, Health, Index, Op, OpError, OpKind, QueryError,
    Request, TxError,
};
use crate::rt::{self, Duration};
use crate::supervisor::which_children;
use crate::{Ctx, ExitReason, Node, Pid};

const SEC: Duration = Duration::from_secs(1);
const NO_CRASH: usize = usize::MAX;

/// Runs `body` as a process and returns what it produced.
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

fn agent(id: &str, node: u32, caps: &[&str], health: Health) -> Agent {
    caps.iter()
        .fold(Agent::new(id, node), |a, c| a.capability(*c))
        .health(health)
}

/// Every agent, read page by page with a predicate that accepts all.
fn all(reg: &AgentRegistry) -> Vec<Agent> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = reg.scan(|_| true, cursor.as_ref(), 3).unwrap();
        out.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

fn ids(agents: &[Agent]) -> Vec<&str> {
    agents.iter().map(|a| a.id.as_str()).collect()
}

/// A registry whose hook crashes before op `crash.load()` of the next batch, once.
async fn crashing(node: &Node) -> (AgentRegistry, Arc<AtomicUsize>) {
    let crash = Arc::new(AtomicUsize::new(NO_CRASH));
    let hook = crash.clone();
    let config = Config::default()
        .intensity(100, SEC)
        .crash_before_op(move |i, _| {
            hook.compare_exchange(i, NO_CRASH, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
    let reg = AgentRegistry::start(node, None, config).await.unwrap();
    (reg, crash)
}

#[rt::test]
async fn writes_keep_every_index_in_step() {
    let node = Node::local(0, 1);
    let reg = AgentRegistry::start(&node, None, Config::default())
        .await
        .unwrap();
    let r = reg.clone();
    in_process(&node, move |ctx| async move {
        let batch = vec![
            Op::Register(agent("a", 1, &["ml", "io"], Health::Healthy)),
            Op::Register(agent("b", 2, &["ml"], Health::Degraded)),
            Op::Register(agent("c", 1, &["io"], Health::Healthy)),
        ];
        assert_eq!(r.transact(&ctx, batch, SEC).await.unwrap().version, 1);
        r.update(&ctx, agent("a", 2, &["gpu"], Health::Unhealthy), SEC)
            .await
            .unwrap();
        r.report_health(&ctx, AgentRef::Id("c".into()), Health::Degraded, SEC)
            .await
            .unwrap();
        r.unregister(&ctx, "b", SEC).await.unwrap();
    })
    .await;
    reg.check_invariants().unwrap();
    let q = |index: Index| ids(&reg.query(&index, None, 10).unwrap().items).join(",");
    assert_eq!(q(Index::Capability("ml".into())), "");
    assert_eq!(q(Index::Capability("gpu".into())), "a");
    assert_eq!(q(Index::Capability("io".into())), "c");
    assert_eq!(q(Index::Node(1)), "c");
    assert_eq!(q(Index::Node(2)), "a");
    assert_eq!(q(Index::Health(Health::Degraded)), "c");
    assert_eq!(q(Index::Health(Health::Unhealthy)), "a");
    assert_eq!(q(Index::Health(Health::Healthy)), "");
    assert_eq!(reg.version(), 4);
}

#[rt::test]
async fn a_failing_op_rolls_back_the_whole_batch() {
    let node = Node::local(0, 1);
    let reg = AgentRegistry::start(&node, None, Config::default().max_agents(3))
        .await
        .unwrap();
    let r = reg.clone();
    let errors = in_process(&node, move |ctx| async move {
        r.register(&ctx, agent("keep", 0, &["x"], Health::Healthy), SEC)
            .await
            .unwrap();
        let mut errors = Vec::new();
        let batches = vec![
            // Fails at 2: the two earlier ops (one of them changing `keep`) must not stick.
            vec![
                Op::Register(agent("a", 0, &["x"], Health::Healthy)),
                Op::SetHealth {
                    id: "keep".into(),
                    health: Health::Unhealthy,
                },
                Op::Unregister("missing".into()),
            ],
            // Fails at 1: the batch's own earlier op counts ("a" is taken by op 0).
            vec![
                Op::Register(agent("a", 0, &[], Health::Healthy)),
                Op::Register(agent("a", 0, &[], Health::Healthy)),
            ],
            // Fails at 2 on the bound (keep + a + b fill it).
            vec![
                Op::Register(agent("a", 0, &[], Health::Healthy)),
                Op::Register(agent("b", 0, &[], Health::Healthy)),
                Op::Register(agent("c", 0, &[], Health::Healthy)),
            ],
            // Fails at 1: an unregistered agent cannot be updated later in the batch.
            vec![
                Op::Unregister("keep".into()),
                Op::Update(agent("keep", 0, &[], Health::Healthy)),
            ],
            vec![Op::Register(agent("", 0, &[], Health::Healthy))],
        ];
        for batch in batches {
            errors.push(r.transact(&ctx, batch, SEC).await.unwrap_err());
        }
        errors
    })
    .await;
    let summary: Vec<(usize, OpKind, String)> = errors
        .iter()
        .map(|e| match e {
            TxError::Op {
                index, op, agent, ..
            } => (*index, *op, agent.clone()),
            other => panic!("expected an op error, got {other}"),
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, OpKind::Unregister, "missing".into()),
            (1, OpKind::Register, "a".into()),
            (2, OpKind::Register, "c".into()),
            (1, OpKind::Update, "keep".into()),
            (0, OpKind::Register, "".into()),
        ]
    );
    assert!(matches!(
        &errors[2],
        TxError::Op {
            error: OpError::Full { max: 3 },
            ..
        }
    ));
    assert_eq!(all(&reg), vec![agent("keep", 0, &["x"], Health::Healthy)]);
    assert_eq!(reg.version(), 1, "only the first register committed");
    reg.check_invariants().unwrap();
}

#[rt::test]
async fn a_crash_at_every_op_index_applies_nothing_and_the_restart_recovers() {
    let node = Node::local(0, 1);
    let (reg, crash) = crashing(&node).await;
    let r = reg.clone();
    in_process(&node, move |ctx| async move {
        r.transact(
            &ctx,
            vec![
                Op::Register(agent("a", 0, &["x"], Health::Healthy)),
                Op::Register(agent("b", 1, &["y"], Health::Healthy)),
            ],
            SEC,
        )
        .await
        .unwrap();
        let before = all(&r);
        let batch = vec![
            Op::Register(agent("c", 2, &["x"], Health::Healthy)),
            Op::Unregister("a".into()),
            Op::SetHealth {
                id: "b".into(),
                health: Health::Unhealthy,
            },
            Op::Update(agent("c", 0, &["z"], Health::Degraded)),
        ];
        for k in 0..batch.len() {
            let old_pid = r.pid().unwrap();
            crash.store(k, Ordering::SeqCst);
            let err = r.transact(&ctx, batch.clone(), SEC).await.unwrap_err();
            assert!(
                matches!(&err, TxError::RegistryDown(ExitReason::Error(m)) if m.contains("fault injected")),
                "crash before op {k}: {err}"
            );
            assert_eq!(all(&r), before, "crash before op {k} left a partial batch");
            r.check_invariants().unwrap();
            // The supervisor handles the exit before this call, so the restart is done.
            let children = which_children(&ctx, r.supervisor(), SEC).await.unwrap();
            let new_pid = children[0].1.expect("the registry was restarted");
            assert_ne!(new_pid, old_pid);
            assert_eq!(r.pid(), Some(new_pid));
            assert_eq!(r.version(), 1, "recovered, not emptied");
        }
        // The restarted registry commits the same batch whole.
        assert_eq!(r.transact(&ctx, batch, SEC).await.unwrap().version, 2);
    })
    .await;
    let after = all(&reg);
    assert_eq!(
        after,
        vec![
            agent("b", 1, &["y"], Health::Unhealthy),
            agent("c", 0, &["z"], Health::Degraded),
        ]
    );
    reg.check_invariants().unwrap();
}

#[rt::test]
async fn a_dead_registry_is_reported_not_running() {
    let node = Node::local(0, 1);
    let config = Config::default().intensity(0, SEC);
    let reg = AgentRegistry::start(&node, None, config).await.unwrap();
    let r = reg.clone();
    let err = in_process(&node, move |ctx| async move {
        let pid = r.pid().unwrap();
        let m = ctx.monitor(pid);
        ctx.exit(pid, ExitReason::Kill);
        let mut ctx = ctx;
        while !matches!(ctx.recv().await, crate::Event::Down { reference, .. } if reference == m) {}
        // Intensity 0: the supervisor gave up, no registry runs any more.
        r.register(&ctx, agent("a", 0, &[], Health::Healthy), SEC)
            .await
            .unwrap_err()
    })
    .await;
    assert_eq!(err, TxError::NotRunning);
    assert!(reg.is_empty());
}

#[rt::test]
async fn pages_cover_the_index_in_order_once() {
    let node = Node::local(0, 1);
    let reg = AgentRegistry::start(&node, None, Config::default().scan_budget(4))
        .await
        .unwrap();
    let r = reg.clone();
    in_process(&node, move |ctx| async move {
        let ops = (0..20)
            .map(|i| {
                let caps: &[&str] = if i % 3 == 0 { &["even3"] } else { &["other"] };
                Op::Register(agent(
                    &format!("agent-{i:02}"),
                    i % 4,
                    caps,
                    Health::Healthy,
                ))
            })
            .collect();
        r.transact(&ctx, ops, SEC).await.unwrap();
    })
    .await;
    let index = Index::Capability("even3".into());
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = reg.query(&index, cursor.as_ref(), 3).unwrap();
        assert!(page.items.len() <= 3);
        pages += 1;
        seen.extend(page.items.into_iter().map(|a| a.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..20)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("agent-{i:02}"))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3, "7 matches in pages of 3");
    let streamed: Vec<String> = reg
        .stream(Index::Node(1), 2)
        .unwrap()
        .map(|a| a.id)
        .collect();
    assert_eq!(
        streamed,
        ["agent-01", "agent-05", "agent-09", "agent-13", "agent-17"]
    );
    // A scan page stops at its budget of 4 examined entries, even with fewer matches.
    let page = reg.scan(|a| a.node == 3, None, 10).unwrap();
    assert_eq!(ids(&page.items), ["agent-03"]);
    assert_eq!(page.next, Some(Cursor::after("agent-03")));
    assert_eq!(
        reg.query(&index, None, 0).unwrap_err(),
        QueryError::ZeroPageSize
    );
}

#[rt::test]
async fn health_reports_name_agents_by_pid_and_reads_skip_the_queue() {
    let node = Node::local(0, 1);
    let reg = AgentRegistry::start(&node, None, Config::default())
        .await
        .unwrap();
    let r = reg.clone();
    in_process(&node, move |ctx| async move {
        let worker: Pid = ctx.pid();
        r.register(&ctx, Agent::new("w", 0).pid(worker), SEC)
            .await
            .unwrap();
        let err = r
            .register(&ctx, Agent::new("w2", 0).pid(worker), SEC)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            TxError::Op {
                error: OpError::PidInUse { .. },
                ..
            }
        ));
        r.report_health(&ctx, AgentRef::Pid(worker), Health::Degraded, SEC)
            .await
            .unwrap();
        assert_eq!(r.get_by_pid(worker).unwrap().health, Health::Degraded);
        // Queue many writes as plain messages, then read at once: the read does not wait for
        // them (it sees the state before any of them ran).
        let registry = r.pid().unwrap();
        for i in 0..50 {
            let health = if i % 2 == 0 {
                Health::Unhealthy
            } else {
                Health::Healthy
            };
            let agent = AgentRef::Id("w".into());
            ctx.send(registry, Request::ReportHealth { agent, health })
                .unwrap();
        }
        assert_eq!(r.get("w").unwrap().health, Health::Degraded);
        assert_eq!(r.version(), 2);
        // A call queued behind them sees all of them applied.
        let v = r
            .report_health(&ctx, AgentRef::Id("w".into()), Health::Healthy, SEC)
            .await
            .unwrap();
        assert_eq!(v.version, 53);
    })
    .await;
    reg.check_invariants().unwrap();
}

/// Found by the model test: an agent giving up its pid and another taking it in the same batch
/// (the taker sorting first) must leave the pid index naming the taker.
#[rt::test]
async fn a_pid_can_move_between_agents_in_one_batch() {
    let node = Node::local(0, 1);
    let reg = AgentRegistry::start(&node, None, Config::default())
        .await
        .unwrap();
    let r = reg.clone();
    in_process(&node, move |ctx| async move {
        let worker = ctx.pid();
        r.register(&ctx, Agent::new("f", 0).pid(worker), SEC)
            .await
            .unwrap();
        let batch = vec![
            Op::Update(Agent::new("f", 0)),
            Op::Register(Agent::new("b", 0).pid(worker)),
        ];
        r.transact(&ctx, batch, SEC).await.unwrap();
        assert_eq!(r.get_by_pid(worker).map(|a| a.id), Some("b".to_string()));
    })
    .await;
    reg.check_invariants().unwrap();
}

/// Agent monitors report through the relay: a dead agent leaves the registry, also when the
/// registry crashes on the relay's write (the relay retries until the restarted one takes it).
#[rt::test]
async fn monitor_reports_reach_the_registry_across_a_registry_crash() {
    use crate::agent_monitor::{self, HealthCheck, MonitorConfig};
    if !rt::SIMULATED {
        // Waiting for the restarted registry is timing; it belongs in simulation.
        return;
    }
    let node = Node::local(0, 1);
    let crashed = Arc::new(AtomicUsize::new(0));
    let hook = crashed.clone();
    let config = Config::default()
        .intensity(10, SEC)
        .crash_before_op(move |_, op| {
            matches!(op, Op::Unregister(_)) && hook.fetch_add(1, Ordering::SeqCst) == 0
        });
    let reg = AgentRegistry::start(&node, None, config).await.unwrap();
    let relay = reg.start_health_relay(&node, None);
    let config: MonitorConfig<HealthCheck> = MonitorConfig::new(relay, None);
    let monitors = agent_monitor::start_supervisor(&node, None, (10, SEC), config)
        .await
        .unwrap();
    let r = reg.clone();
    in_process(&node, move |ctx| async move {
        let (stop, stopped) = oneshot::channel::<()>();
        let worker = ctx.spawn("worker", move |_: Ctx<()>| async move {
            let _ = stopped.await;
            ExitReason::error("worker crashed")
        });
        let a = agent("w", 0, &["ml"], Health::Degraded).pid(worker);
        r.register(&ctx, a, SEC).await.unwrap();
        agent_monitor::watch(&ctx, monitors, worker, SEC)
            .await
            .unwrap()
            .unwrap();
        // Without probes the monitor reports the agent alive: Healthy.
        rt::sleep(Duration::from_millis(50)).await;
        assert_eq!(r.get("w").unwrap().health, Health::Healthy);
        // The agent dies; the registry crashes on the first write that would remove it.
        let _ = stop.send(());
        rt::sleep(Duration::from_millis(500)).await;
        assert_eq!(r.get("w"), None, "the dead agent is still registered");
        assert!(ctx.is_alive(relay), "the relay gave up");
    })
    .await;
    assert_eq!(
        crashed.load(Ordering::SeqCst),
        2,
        "one crash, then the retry"
    );
}

/// The owner moves agent `agent-2` from `old` (just killed) to `new`, and in the same step the
/// `Down` about `old` reaches the health relay: the interleaving that lost a live agent. Returns the entry once
/// both writes were handled.
async fn down_races_a_move(node: &Node) -> (Option<Agent>, Pid) {
    use crate::agent_monitor::{Health as Seen, HealthReport};
    let reg = AgentRegistry::start(node, None, Config::default())
        .await
        .unwrap();
    let relay = reg.start_health_relay(node, None);
    let r = reg.clone();
    let new = in_process(node, move |ctx| async move {
        let old = ctx.spawn("old", |mut c: Ctx<()>| async move {
            loop {
                c.recv().await;
            }
        });
        let new = ctx.spawn("new", |mut c: Ctx<()>| async move {
            loop {
                c.recv().await;
            }
        });
        r.register(&ctx, Agent::new("agent-2", 0).pid(old), SEC)
            .await
            .unwrap();
        ctx.exit(old, ExitReason::Kill);
        let moved = Op::Update(Agent::new("agent-2", 0).pid(new));
        ctx.send(r.pid().unwrap(), Request::Transact(vec![moved]))
            .unwrap();
        let down = HealthReport {
            agent: old,
            health: Seen::Down(ExitReason::Kill),
        };
        ctx.send(relay, down).unwrap();
        // Both writes are one hop (the relay's two) from the registry: long done after this.
        rt::sleep(Duration::from_millis(100)).await;
        new
    })
    .await;
    reg.check_invariants().unwrap();
    (reg.get("agent-2"), new)
}

/// Issue 22: a `Down` about a dead pid never removes the live agent that took over its id, on
/// every schedule tried (the old relay, which looked the id up in its own task and then sent an
/// unconditional unregister, lost the agent on some of these seeds).
#[test]
fn a_late_down_never_removes_the_agent_that_took_over_the_id() {
    if !rt::SIMULATED {
        return;
    }
    let mut lost = Vec::new();
    for seed in 0..32 {
        let world = rt::World::new(seed, &rt::NetConfig::default(), None).unwrap();
        let (entry, new) = world.block_on(async {
            let node = Node::local(0, 1);
            down_races_a_move(&node).await
        });
        if entry.and_then(|a| a.pid) != Some(new) {
            lost.push(seed);
        }
    }
    assert!(lost.is_empty(), "agent-2 lost on seeds {lost:?}");
}

/// The same race on this build's executor (one schedule), and the registry-level rule in both
/// builds: `ReportDown` for a pid no agent holds any more is refused, and removes nothing.
#[rt::test]
async fn report_down_is_a_compare_and_delete() {
    let node = Node::local(0, 1);
    let (entry, new) = down_races_a_move(&node).await;
    assert_eq!(entry.and_then(|a| a.pid), Some(new));
    let reg = AgentRegistry::start(&node, None, Config::default())
        .await
        .unwrap();
    let r = reg.clone();
    in_process(&node, move |ctx| async move {
        let me = ctx.pid();
        let gone = Pid { id: 9_999, ..me };
        r.register(&ctx, Agent::new("a", 0).pid(gone), SEC)
            .await
            .unwrap();
        r.update(&ctx, Agent::new("a", 0).pid(me), SEC)
            .await
            .unwrap();
        let err = r.report_down(&ctx, gone, SEC).await.unwrap_err();
        assert!(
            matches!(&err, TxError::Op { op: OpKind::Unregister, error: OpError::NotFound(p), .. } if *p == gone.to_string()),
            "{err:?}"
        );
        assert_eq!(r.get("a").and_then(|a| a.pid), Some(me));
        r.report_down(&ctx, me, SEC).await.unwrap();
        assert_eq!(r.get("a"), None);
    })
    .await;
}
