//! Supervisor behaviour on one node.

use std::sync::{Arc, Mutex};

use futures::channel::oneshot;

use super::task::{self, TaskFailed};
use super::{ChildSpec, Restart, Shutdown, Spec, Strategy};
use crate::rt::{self, Duration, Instant};
use crate::{start_actor, Actor, Ctx, Event, ExitReason, Flow, Node, Pid, SpawnOpts, StartError};

const SEC: Duration = Duration::from_secs(1);

type Log = Arc<Mutex<Vec<String>>>;

fn log_of(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Records its start and stop; crashes on message 0; optionally fails its init or crashes by
/// itself after a delay.
#[derive(Clone)]
struct Recorder {
    id: String,
    log: Log,
    fail_init: bool,
    crash_after: Option<Duration>,
}

impl Actor for Recorder {
    type Msg = u32;

    /// Traps exits, as every actor did before trapping became a choice.
    fn trap_exit(&self) -> bool {
        true
    }

    async fn init(&mut self, ctx: &mut Ctx<u32>) -> Result<(), ExitReason> {
        self.log.lock().unwrap().push(format!("start {}", self.id));
        if self.fail_init {
            return Err(ExitReason::error("init refused"));
        }
        if let Some(after) = self.crash_after {
            ctx.send_after(after, 0);
        }
        Ok(())
    }

    async fn handle(&mut self, _ctx: &mut Ctx<u32>, event: Event<u32>) -> Flow {
        match event {
            Event::Msg { msg: 0, .. } | Event::Timer { tag: 0, .. } => {
                Flow::Stop(ExitReason::error("crash"))
            }
            _ => Flow::Continue,
        }
    }

    async fn terminate(&mut self, _ctx: &mut Ctx<u32>, reason: &ExitReason) {
        self.log
            .lock()
            .unwrap()
            .push(format!("stop {} {reason}", self.id));
    }
}

fn recorder(id: &str, log: &Log) -> Recorder {
    Recorder {
        id: id.to_string(),
        log: log.clone(),
        fail_init: false,
        crash_after: None,
    }
}

fn child(r: Recorder) -> ChildSpec {
    let id = r.id.clone();
    ChildSpec::new(&id.clone(), move |node: Node, sup: Pid| {
        let (r, id) = (r.clone(), id.clone());
        async move { start_actor(&node, &id, Some(sup), SEC, r).await }
    })
}

/// Runs `body` in a process that owns (is the parent of) whatever it starts; returns its result
/// once the body is done. The owner then exits with `Shutdown`.
async fn as_owner<T: Send + 'static, F>(
    node: &Node,
    body: impl FnOnce(Ctx<u32>) -> F + Send + 'static,
) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    node.spawn("owner", move |ctx: Ctx<u32>| async move {
        let _ = tx.send(body(ctx).await);
        ExitReason::Shutdown
    });
    rx.await.unwrap()
}

/// Waits in `ctx` for the `Down` of `pid`.
async fn down_of(ctx: &mut Ctx<u32>, pid: Pid) -> ExitReason {
    let m = ctx.monitor(pid);
    loop {
        if let Event::Down {
            reference, reason, ..
        } = ctx.recv().await
        {
            if reference == m {
                return reason;
            }
        }
    }
}

#[rt::test]
async fn children_start_in_order_and_stop_in_reverse() {
    let node = Node::local(0, 1);
    let log: Log = Arc::default();
    let spec = Spec::new(Strategy::OneForOne)
        .child(child(recorder("a", &log)))
        .child(child(recorder("b", &log)))
        .child(child(recorder("c", &log)));
    let sup = as_owner(&node, {
        let node = node.clone();
        move |_ctx| async move { super::start(&node, "sup", Some(_ctx.pid()), spec).await }
    })
    .await
    .unwrap();
    // The owner has exited with Shutdown; the supervisor follows, stopping c, b, a.
    let reason = as_owner(
        &node,
        move |mut ctx| async move { down_of(&mut ctx, sup).await },
    )
    .await;
    assert!(matches!(reason, ExitReason::Shutdown | ExitReason::NoProc));
    assert_eq!(
        log_of(&log),
        [
            "start a",
            "start b",
            "start c",
            "stop c shutdown",
            "stop b shutdown",
            "stop a shutdown"
        ]
    );
}

#[rt::test]
async fn a_failing_child_stops_start_up_and_is_named() {
    let node = Node::local(0, 1);
    let log: Log = Arc::default();
    let mut bad = recorder("b", &log);
    bad.fail_init = true;
    let spec = Spec::new(Strategy::OneForOne)
        .child(child(recorder("a", &log)))
        .child(child(bad))
        .child(child(recorder("c", &log)));
    let result = as_owner(&node, {
        let node = node.clone();
        move |ctx| async move { super::start(&node, "sup", Some(ctx.pid()), spec).await }
    })
    .await;
    match result {
        Err(StartError::Child { id, error }) => {
            assert_eq!(id, "b");
            assert_eq!(*error, StartError::Init(ExitReason::error("init refused")));
        }
        other => panic!("expected child b to fail, got {other:?}"),
    }
    assert_eq!(log_of(&log), ["start a", "start b", "stop a shutdown"]);
}

#[rt::test]
async fn a_stubborn_child_is_killed_after_its_shutdown_timeout() {
    if !rt::SIMULATED {
        return;
    }
    let node = Node::local(0, 1);
    let stubborn = ChildSpec::new("stubborn", |node: Node, sup: Pid| async move {
        let opts = SpawnOpts::named("stubborn").link(sup).trap_exit();
        Ok(node.spawn_opts(opts, |mut ctx: Ctx<u32>| async move {
            loop {
                ctx.recv().await;
            }
        }))
    })
    .shutdown(Shutdown::Timeout(3 * SEC));
    let spec = Spec::new(Strategy::OneForOne).child(stubborn);
    let (took, stopped, reason) = as_owner(&node, {
        let node = node.clone();
        move |mut ctx| async move {
            let sup = super::start(&node, "sup", None, spec).await.unwrap();
            let children = super::which_children(&ctx, sup, SEC).await.unwrap();
            let child = children[0].1.unwrap();
            let m = ctx.monitor(child);
            let start = Instant::now();
            let stopped = super::terminate_child(&ctx, sup, child, 10 * SEC).await;
            let took = start.elapsed();
            let reason = loop {
                if let Event::Down {
                    reference, reason, ..
                } = ctx.recv().await
                {
                    if reference == m {
                        break reason;
                    }
                }
            };
            (took, stopped, reason)
        }
    })
    .await;
    assert_eq!(stopped, Ok(true));
    assert_eq!(reason, ExitReason::Killed);
    assert!(took >= 3 * SEC && took < 4 * SEC, "took {took:?}");
}

#[rt::test]
async fn intensity_is_counted_on_the_runtime_clock() {
    if !rt::SIMULATED {
        return;
    }
    let node = Node::local(0, 1);
    let log: Log = Arc::default();
    let run = |every: Duration| {
        let mut r = recorder("flaky", &log);
        r.crash_after = Some(every);
        let spec = Spec::new(Strategy::OneForOne)
            .intensity(2, 10 * SEC)
            .child(child(r));
        let owner = node.clone();
        async move {
            as_owner(&owner.clone(), move |mut ctx| async move {
                let started = Instant::now();
                let sup = super::start(&owner, "sup", None, spec).await.unwrap();
                let outcome = rt::timeout(60 * SEC, down_of(&mut ctx, sup)).await;
                (outcome.ok(), started.elapsed())
            })
            .await
        }
    };
    // Crashing every second: the third restart within 10 s is one too many, at about 3 s.
    let (reason, took) = run(SEC).await;
    assert_eq!(reason, Some(super::gave_up()));
    assert!(took >= 3 * SEC && took < 4 * SEC, "gave up after {took:?}");
    // Crashing every 6 s: never more than 2 restarts in any 10 s window, so it keeps going.
    let (reason, _) = run(6 * SEC).await;
    assert_eq!(reason, None);
}

#[rt::test]
async fn strategies_restart_the_right_children() {
    for (strategy, expect) in [
        (Strategy::OneForOne, vec!["start b"]),
        (
            Strategy::OneForAll,
            vec![
                "stop c shutdown",
                "stop a shutdown",
                "start a",
                "start b",
                "start c",
            ],
        ),
        (
            Strategy::RestForOne,
            vec!["stop c shutdown", "start b", "start c"],
        ),
    ] {
        let node = Node::local(0, 1);
        let log: Log = Arc::default();
        let spec = Spec::new(strategy)
            .child(child(recorder("a", &log)))
            .child(child(recorder("b", &log)))
            .child(child(recorder("c", &log)));
        let after = as_owner(&node, {
            let node = node.clone();
            let log = log.clone();
            move |mut ctx| async move {
                let sup = super::start(&node, "sup", None, spec).await.unwrap();
                let before = super::which_children(&ctx, sup, SEC).await.unwrap();
                let b = before[1].1.unwrap();
                log.lock().unwrap().clear();
                ctx.send(b, 0u32).unwrap();
                down_of(&mut ctx, b).await;
                // The restart has happened once the supervisor answers again.
                let now = super::which_children(&ctx, sup, SEC).await.unwrap();
                assert!(now.iter().all(|(_, p)| p.is_some()));
                assert_ne!(now[1].1, Some(b));
                log_of(&log)
            }
        })
        .await;
        // b's own terminate ("stop b error: crash") comes first.
        assert_eq!(after[0], "stop b error: crash", "{strategy:?}");
        assert_eq!(after[1..], expect[..], "{strategy:?}");
    }
}

/// A temporary sibling stopped by one-for-all is gone, not restarted (OTP's rule).
#[rt::test]
async fn one_for_all_does_not_restart_temporary_siblings() {
    let node = Node::local(0, 1);
    let log: Log = Arc::default();
    let spec = Spec::new(Strategy::OneForAll)
        .child(child(recorder("a", &log)).restart(Restart::Temporary))
        .child(child(recorder("b", &log)))
        .child(child(recorder("c", &log)));
    let (ids, after) = as_owner(&node, {
        let node = node.clone();
        let log = log.clone();
        move |mut ctx| async move {
            let sup = super::start(&node, "sup", None, spec).await.unwrap();
            let before = super::which_children(&ctx, sup, SEC).await.unwrap();
            let b = before[1].1.unwrap();
            log.lock().unwrap().clear();
            ctx.send(b, 0u32).unwrap();
            down_of(&mut ctx, b).await;
            let now = super::which_children(&ctx, sup, SEC).await.unwrap();
            let ids: Vec<String> = now.iter().map(|(id, _)| id.clone()).collect();
            (ids, log_of(&log))
        }
    })
    .await;
    assert_eq!(ids, vec!["b", "c"]);
    assert_eq!(
        after,
        vec![
            "stop b error: crash",
            "stop c shutdown",
            "stop a shutdown",
            "start b",
            "start c"
        ]
    );
}

#[rt::test]
async fn dynamic_children_start_on_demand() {
    let node = Node::local(0, 1);
    let log: Log = Arc::default();
    let children = as_owner(&node, {
        let node = node.clone();
        let log = log.clone();
        move |ctx| async move {
            let sup = super::start_dynamic(
                &node,
                "dyn",
                None,
                (3, 5 * SEC),
                Restart::Temporary,
                Shutdown::Timeout(SEC),
                move |node: Node, sup: Pid, id: String| {
                    let r = recorder(&id, &log);
                    async move { start_actor(&node, "dynamic", Some(sup), SEC, r).await }
                },
            )
            .await
            .unwrap();
            let a = super::start_child(&ctx, sup, "x".to_string(), SEC).await;
            let b = super::start_child(&ctx, sup, "y".to_string(), SEC).await;
            assert!(matches!(a, Ok(Ok(_))) && matches!(b, Ok(Ok(_))));
            super::which_children(&ctx, sup, SEC).await.unwrap()
        }
    })
    .await;
    assert_eq!(children.len(), 2);
    assert_eq!(log_of(&log), ["start x", "start y"]);
}

#[rt::test]
async fn a_failed_task_is_reported() {
    let node = Node::local(0, 1);
    let (tx, rx) = oneshot::channel();
    let n = node.clone();
    node.spawn("owner", move |mut ctx: Ctx<TaskFailed>| async move {
        let sup = task::start(&n, "tasks", None, Some(ctx.pid()));
        task::spawn_task(&n, sup, "ok", async { Ok(()) });
        let bad = task::spawn_task(&n, sup, "bad", async { Err("disk full".to_string()) });
        let report = match ctx.recv().await {
            Event::Msg { msg, .. } => Some(msg),
            _ => None,
        };
        let _ = tx.send((sup, bad, report));
        ExitReason::Normal
    });
    let (sup, bad, report) = rx.await.unwrap();
    assert_eq!(
        report,
        Some(TaskFailed {
            supervisor: sup,
            task: bad,
            reason: ExitReason::error("disk full"),
        })
    );
}

/// A task started with `spawn_task_in` is a process of its own: it calls a server as itself
/// (the server sees the task's pid), and a failed call it turns into `Err` is reported with
/// that pid.
#[rt::test]
async fn a_task_in_a_process_context_calls_as_itself_and_its_failure_is_reported() {
    let node = Node::local(0, 1);
    let server = node.spawn("server", |mut ctx: Ctx<u32>| async move {
        loop {
            if let Event::Call { from, msg, reply } = ctx.recv().await {
                reply.reply((from, msg + 1));
            }
        }
    });
    let gone = Pid {
        node: 0,
        incarnation: 1,
        id: 99_999,
    };
    let (tx, rx) = oneshot::channel();
    let n = node.clone();
    node.spawn("owner", move |mut ctx: Ctx<TaskFailed>| async move {
        let sup = task::start(&n, "tasks", None, Some(ctx.pid()));
        let (seen_tx, seen_rx) = oneshot::channel();
        let caller = task::spawn_task_in(&n, sup, "caller", move |ctx: Ctx<()>| async move {
            let answer: Result<(Pid, u32), _> =
                ctx.call(server, 41u32, Duration::from_secs(1)).await;
            let _ = seen_tx.send((ctx.pid(), answer));
            Ok(())
        });
        let failing = task::spawn_task_in(&n, sup, "failing", move |ctx: Ctx<()>| async move {
            let r: Result<u32, _> = ctx.call(gone, 1u32, Duration::from_secs(1)).await;
            r.map(drop).map_err(|e| e.to_string())
        });
        let report = match ctx.recv().await {
            Event::Msg { msg, .. } => Some(msg),
            _ => None,
        };
        let _ = tx.send((sup, caller, failing, seen_rx.await.ok(), report));
        ExitReason::Normal
    });
    let (sup, caller, failing, seen, report) = rx.await.unwrap();
    assert_eq!(
        seen,
        Some((caller, Ok((caller, 42)))),
        "the server saw the task's own pid"
    );
    let report = report.expect("the failing task was reported");
    assert_eq!((report.supervisor, report.task), (sup, failing));
    assert_eq!(report.reason, ExitReason::error("no such process"));
}

/// A child that needs `dep` (its latest pid in `pids[dep]`) alive to start, recording its
/// starts and refusals in `log`. It stops when its supervisor tells it to.
fn needs(
    id: &'static str,
    at: usize,
    dep: Option<usize>,
    pids: &Arc<Mutex<Vec<Option<Pid>>>>,
    log: &Log,
) -> ChildSpec {
    let (pids, log) = (pids.clone(), log.clone());
    ChildSpec::new(id, move |node: Node, sup: Pid| {
        let (pids, log) = (pids.clone(), log.clone());
        async move {
            if let Some(d) = dep {
                let up = pids.lock().unwrap()[d].is_some_and(|p| node.is_alive(p));
                if !up {
                    log.lock().unwrap().push(format!("{id} refused"));
                    return Err(StartError::Init(ExitReason::error("dependency down")));
                }
            }
            let pid = node.spawn_opts(
                SpawnOpts::named(id).link(sup),
                |mut ctx: Ctx<u32>| async move {
                    loop {
                        ctx.recv().await;
                    }
                },
            );
            log.lock().unwrap().push(format!("start {id}"));
            pids.lock().unwrap()[at] = Some(pid);
            Ok(pid)
        }
    })
}

/// A child that, told by its supervisor to stop, tells `owner` (message 1) and stops only when
/// `owner` says so (any message): while it waits, the supervisor reads nothing else, so exits
/// pile up in its mailbox in a known order.
fn latch(owner: Arc<Mutex<Option<Pid>>>) -> ChildSpec {
    ChildSpec::new("latch", move |node: Node, sup: Pid| {
        let owner = owner.clone();
        async move {
            let opts = SpawnOpts::named("latch").link(sup).trap_exit();
            Ok(node.spawn_opts(opts, move |mut ctx: Ctx<u32>| async move {
                loop {
                    if let Event::Exit { from, .. } = ctx.recv().await {
                        if from == sup {
                            let owner = owner.lock().unwrap().expect("owner set");
                            ctx.send(owner, 1u32).unwrap();
                            while !matches!(ctx.recv().await, Event::Msg { .. }) {}
                            return ExitReason::Shutdown;
                        }
                    }
                }
            }))
        }
    })
}

/// Issue 12's trace: two rest-for-one children die in the same instant and the supervisor
/// reads the dependent's exit first. Its restart fails (the dependency is dead, that exit still
/// queued); the retry waits behind the queued exit, whose restart starts both. The old code
/// retried at once in a loop (11 `child-start-failed`, then escalation). The deaths pile up
/// while the supervisor is busy stopping a latch child, so the order is the same in both
/// builds and under any schedule.
#[rt::test]
async fn a_restart_failing_on_a_dead_dependency_handles_the_queued_exit_first() {
    for intensity in [10, 1] {
        let node = Node::local(0, 1);
        let log: Log = Arc::default();
        let owner = Arc::new(Mutex::new(None));
        let pids = Arc::new(Mutex::new(vec![None, None, None]));
        let spec = Spec::new(Strategy::RestForOne)
            .intensity(intensity, 5 * SEC)
            .child(latch(owner.clone()))
            .child(needs("db", 1, None, &pids, &log))
            .child(needs("app", 2, Some(1), &pids, &log));
        let (after, down) = as_owner(&node, {
            let (node, log) = (node.clone(), log.clone());
            move |mut ctx| async move {
                *owner.lock().unwrap() = Some(ctx.pid());
                let sup = super::start(&node, "sup", None, spec).await.unwrap();
                let m = ctx.monitor(sup);
                let before = super::which_children(&ctx, sup, SEC).await.unwrap();
                log.lock().unwrap().clear();
                let latch = before[0].1.unwrap();
                ctx.spawn("terminator", move |ctx: Ctx<u32>| async move {
                    let _ = super::terminate_child(&ctx, sup, latch, 60 * SEC).await;
                    ExitReason::Normal
                });
                while !matches!(ctx.recv().await, Event::Msg { msg: 1, .. }) {}
                // The supervisor is inside the latch's stop: kill app, then db.
                for victim in [before[2].1.unwrap(), before[1].1.unwrap()] {
                    ctx.exit(victim, ExitReason::Kill);
                    down_of(&mut ctx, victim).await;
                }
                ctx.send(latch, 0u32).unwrap();
                down_of(&mut ctx, latch).await;
                let after = super::which_children(&ctx, sup, SEC).await;
                let down = match ctx.recv_timeout(SEC).await {
                    Some(Event::Down {
                        reference, reason, ..
                    }) if reference == m => Some(reason),
                    _ => None,
                };
                (after.map(|a| (a, before)), down)
            }
        })
        .await;
        if intensity == 10 {
            let (now, before) = after.expect("the supervisor is still running");
            assert_eq!(now[0].1, None, "the latch was terminated");
            assert!(now[1..]
                .iter()
                .zip(&before[1..])
                .all(|(n, b)| n.1.is_some() && n.1 != b.1));
            assert_eq!(log_of(&log), ["app refused", "start db", "start app"]);
            assert_eq!(down, None);
        } else {
            // Two restarts (the failed one and the dependency's) exceed an intensity of 1.
            assert_eq!(log_of(&log), ["app refused"]);
            assert_eq!(down, Some(ExitReason::Shutdown));
        }
    }
}

/// Issue 21's trace: the task supervisor's parent exits `Normal`; its tasks, which do not trap
/// exits and would ignore a `Normal` link signal, are stopped all the same.
#[rt::test]
async fn a_task_supervisor_stops_its_tasks_when_its_parent_exits_normal() {
    let node = Node::local(0, 1);
    let (tx, rx) = oneshot::channel();
    let n = node.clone();
    let app = node.spawn("app", move |_ctx: Ctx<u32>| async move {
        let sup = task::start(&n, "jobs", Some(_ctx.pid()), None);
        let forever = || async {
            futures::future::pending::<()>().await;
            Ok(())
        };
        let a = task::spawn_task(&n, sup, "a", forever());
        let b = task::spawn_task(&n, sup, "b", forever());
        let _ = tx.send((sup, a, b));
        ExitReason::Normal
    });
    let (sup, a, b) = rx.await.unwrap();
    let reasons = as_owner(&node, move |mut ctx| async move {
        let watched = [sup, a, b].map(|p| (ctx.monitor(p), p));
        let mut reasons = Vec::new();
        while reasons.len() < 3 {
            match rt::timeout(10 * SEC, ctx.recv()).await {
                Ok(Event::Down {
                    reference, reason, ..
                }) => {
                    let pid = watched.iter().find(|(r, _)| *r == reference).unwrap().1;
                    reasons.push((pid, reason));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        reasons
    })
    .await;
    assert!(!node.is_alive(app));
    // Either stopped by the supervisor (`Shutdown`) or, if the monitor came after, `NoProc`;
    // never still running.
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    for (pid, reason) in &reasons {
        let expect = if *pid == sup {
            ExitReason::Normal
        } else {
            ExitReason::Shutdown
        };
        assert!(
            *reason == expect || *reason == ExitReason::NoProc,
            "{pid}: {reason}"
        );
    }
    assert!(!node.is_alive(a) && !node.is_alive(b));
}

/// OTP deletes a temporary child's spec when the child terminates, by itself or by
/// `terminate_child`; a permanent child that exits is restarted in place and stays listed.
#[rt::test]
async fn a_temporary_child_leaves_which_children_when_it_exits() {
    let node = Node::local(0, 1);
    let log: Log = Arc::default();
    let spec = Spec::new(Strategy::OneForOne)
        .child(child(recorder("c1", &log)).restart(Restart::Temporary))
        .child(child(recorder("c2", &log)))
        .child(child(recorder("c3", &log)).restart(Restart::Temporary));
    let (before, after) = as_owner(&node, {
        let node = node.clone();
        move |mut ctx| async move {
            let sup = super::start(&node, "sup", None, spec).await.unwrap();
            let before = super::which_children(&ctx, sup, SEC).await.unwrap();
            let (c1, c2, c3) = (
                before[0].1.unwrap(),
                before[1].1.unwrap(),
                before[2].1.unwrap(),
            );
            ctx.send(c1, 0u32).unwrap();
            down_of(&mut ctx, c1).await;
            ctx.send(c2, 0u32).unwrap();
            down_of(&mut ctx, c2).await;
            assert_eq!(super::terminate_child(&ctx, sup, c3, SEC).await, Ok(true));
            let after = super::which_children(&ctx, sup, SEC).await.unwrap();
            assert!(after[0].1.is_some_and(|p| p != c2), "c2 restarted");
            let ids =
                |l: Vec<(String, Option<Pid>)>| l.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
            (ids(before), ids(after))
        }
    })
    .await;
    assert_eq!(before, ["c1", "c2", "c3"]);
    assert_eq!(after, ["c2"]);
}

/// A temporary child after the failed one in rest-for-one is stopped and removed, not
/// restarted; the one before it is left alone.
#[rt::test]
async fn rest_for_one_does_not_restart_temporary_siblings() {
    let node = Node::local(0, 1);
    let log: Log = Arc::default();
    let spec = Spec::new(Strategy::RestForOne)
        .child(child(recorder("a", &log)).restart(Restart::Temporary))
        .child(child(recorder("b", &log)))
        .child(child(recorder("c", &log)).restart(Restart::Temporary))
        .child(child(recorder("d", &log)));
    let (ids, after) = as_owner(&node, {
        let node = node.clone();
        let log = log.clone();
        move |mut ctx| async move {
            let sup = super::start(&node, "sup", None, spec).await.unwrap();
            let before = super::which_children(&ctx, sup, SEC).await.unwrap();
            let b = before[1].1.unwrap();
            log.lock().unwrap().clear();
            ctx.send(b, 0u32).unwrap();
            down_of(&mut ctx, b).await;
            let now = super::which_children(&ctx, sup, SEC).await.unwrap();
            assert!(now.iter().all(|(_, p)| p.is_some()));
            assert_eq!(now[0].1, before[0].1, "a is before b: untouched");
            let ids: Vec<String> = now.iter().map(|(id, _)| id.clone()).collect();
            (ids, log_of(&log))
        }
    })
    .await;
    assert_eq!(ids, ["a", "b", "d"]);
    assert_eq!(
        after,
        [
            "stop b error: crash",
            "stop d shutdown",
            "stop c shutdown",
            "start b",
            "start d"
        ]
    );
}

/// A supervisor that gives up exits `Shutdown` (OTP's reason), so a parent that holds it as a
/// transient child does not restart it.
#[rt::test]
async fn a_supervisor_that_gives_up_exits_shutdown_and_a_transient_parent_keeps_it_down() {
    let node = Node::local(0, 1);
    let log: Log = Arc::default();
    let inner_log = log.clone();
    let inner = ChildSpec::new("inner", move |node: Node, sup: Pid| {
        let log = inner_log.clone();
        async move {
            let mut flaky = recorder("flaky", &log);
            flaky.fail_init = false;
            let spec = Spec::new(Strategy::OneForOne)
                .intensity(0, 5 * SEC)
                .child(child(flaky));
            log.lock().unwrap().push("start inner".into());
            super::start(&node, "inner", Some(sup), spec).await
        }
    })
    .restart(Restart::Transient);
    let spec = Spec::new(Strategy::OneForOne).child(inner);
    let (reason, now) = as_owner(&node, {
        let node = node.clone();
        move |mut ctx| async move {
            let outer = super::start(&node, "outer", None, spec).await.unwrap();
            let inner = super::which_children(&ctx, outer, SEC).await.unwrap()[0]
                .1
                .unwrap();
            let flaky = super::which_children(&ctx, inner, SEC).await.unwrap()[0]
                .1
                .unwrap();
            let m = ctx.monitor(inner);
            ctx.send(flaky, 0u32).unwrap();
            let reason = loop {
                if let Event::Down {
                    reference, reason, ..
                } = ctx.recv().await
                {
                    if reference == m {
                        break reason;
                    }
                }
            };
            (
                reason,
                super::which_children(&ctx, outer, SEC).await.unwrap(),
            )
        }
    })
    .await;
    assert_eq!(reason, ExitReason::Shutdown);
    assert_eq!(now, [("inner".to_string(), None)]);
    assert_eq!(
        log_of(&log).iter().filter(|l| *l == "start inner").count(),
        1
    );
}
