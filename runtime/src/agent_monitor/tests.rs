//! Agent monitors on one node: every way an agent can die gives exactly one `Down` report, last,
//! and never a `Healthy` once the death is known.

use futures::channel::oneshot;

use super::{
    spawn_monitor, start_supervisor, watch, Health, HealthCheck, HealthReport, MonitorConfig,
};
use crate::rt::{self, Duration};
use crate::supervisor::which_children;
use crate::{Ctx, Event, ExitReason, Node, Pid, StartError};

const SEC: Duration = Duration::from_secs(1);
const EVERY: Duration = Duration::from_millis(10);

/// What a scripted agent does with each probe, in turn; after the script it exits `Normal`.
#[derive(Debug, Clone)]
enum Answer {
    Ok,
    Err(&'static str),
    /// Answers `Ok`, then exits `Error("crash")` before anything else happens.
    OkThenCrash,
    /// Exits `Error("boom")` with the probe unanswered.
    Crash,
}

fn agent(node: &Node, script: Vec<Answer>) -> Pid {
    node.spawn("agent", move |mut ctx: Ctx<HealthCheck>| async move {
        for answer in script {
            let reply = loop {
                if let Event::Call { reply, .. } = ctx.recv().await {
                    break reply;
                }
            };
            match answer {
                Answer::Ok => reply.reply(Ok::<(), String>(())),
                Answer::Err(why) => reply.reply(Err::<(), String>(why.to_string())),
                Answer::OkThenCrash => {
                    reply.reply(Ok::<(), String>(()));
                    return ExitReason::error("crash");
                }
                Answer::Crash => return ExitReason::error("boom"),
            }
        }
        ExitReason::Normal
    })
}

/// A pid whose process has certainly exited.
async fn dead_agent(node: &Node) -> Pid {
    let (tx, rx) = oneshot::channel();
    node.spawn("prober", move |mut ctx: Ctx<()>| async move {
        let pid = ctx.spawn("short", |_ctx: Ctx<()>| async { ExitReason::Normal });
        let m = ctx.monitor(pid);
        while !matches!(ctx.recv().await, Event::Down { reference, .. } if reference == m) {}
        let _ = tx.send(pid);
        ExitReason::Normal
    });
    rx.await.unwrap()
}

/// Collects what `report_to` receives from the monitor `start` spawns, until that monitor exits:
/// every report about `agent` in order, and the monitor's exit reason.
async fn observe(
    node: &Node,
    agent: Pid,
    start: impl FnOnce(Pid) -> Pid,
) -> (Vec<Health>, ExitReason) {
    let (pid_tx, pid_rx) = oneshot::channel::<Pid>();
    let (out_tx, out_rx) = oneshot::channel();
    let collector = node.spawn("collector", move |mut ctx: Ctx<HealthReport>| async move {
        let monitor = pid_rx.await.unwrap();
        // Reports the monitor sent before it exited are queued ahead of its Down.
        let m = ctx.monitor(monitor);
        let mut seen = Vec::new();
        let reason = loop {
            match ctx.recv().await {
                Event::Msg { msg, .. } => {
                    assert_eq!(msg.agent, agent, "a report names its agent");
                    seen.push(msg.health);
                }
                Event::Down {
                    reference, reason, ..
                } if reference == m => break reason,
                _ => {}
            }
        };
        let _ = out_tx.send((seen, reason));
        ExitReason::Normal
    });
    pid_tx.send(start(collector)).unwrap();
    out_rx.await.unwrap()
}

async fn probed(node: &Node, agent: Pid) -> (Vec<Health>, ExitReason) {
    let n = node.clone();
    observe(node, agent, move |collector| {
        let config = MonitorConfig::new(collector, Some(HealthCheck)).interval(EVERY);
        spawn_monitor(&n, None, agent, config)
    })
    .await
}

/// A monitor that reported `Down` exits `Normal`; the collector sees `NoProc` if it got there
/// too late to monitor it.
fn assert_finished(exit: &ExitReason) {
    assert!(
        matches!(exit, ExitReason::Normal | ExitReason::NoProc),
        "{exit:?}"
    );
}

fn down(reason: ExitReason) -> Health {
    Health::Down(reason)
}

#[rt::test]
async fn an_agent_dead_before_the_monitor_starts_is_reported_down_once() {
    let node = Node::local(0, 1);
    let gone = dead_agent(&node).await;
    let (seen, exit) = probed(&node, gone).await;
    assert_eq!(seen, [down(ExitReason::NoProc)]);
    assert_finished(&exit);
}

#[rt::test]
async fn an_agent_dying_between_monitor_and_first_probe_is_reported_down_once() {
    // The agent dies when the first probe arrives, unanswered: the monitor is already in place,
    // so the Down carries the real reason (monitoring after the death would say NoProc).
    let node = Node::local(0, 1);
    let a = agent(&node, vec![Answer::Crash]);
    let (seen, exit) = probed(&node, a).await;
    assert_eq!(seen, [down(ExitReason::error("boom"))]);
    assert_finished(&exit);
}

#[rt::test]
async fn an_agent_dying_right_after_answering_a_probe_is_never_reported_healthy() {
    // The Down is queued by the time the `Ok` answer is read: the monitor reports the death,
    // not a health its agent no longer has.
    let node = Node::local(0, 1);
    let a = agent(&node, vec![Answer::OkThenCrash]);
    let (seen, _) = probed(&node, a).await;
    assert_eq!(seen, [down(ExitReason::error("crash"))]);

    let a = agent(
        &node,
        vec![
            Answer::Err("warming"),
            Answer::Err("warming"),
            Answer::OkThenCrash,
        ],
    );
    let (seen, _) = probed(&node, a).await;
    assert_eq!(
        seen,
        [
            Health::Unhealthy("warming".into()),
            down(ExitReason::error("crash"))
        ]
    );
}

#[rt::test]
async fn only_changes_are_reported_and_down_is_last() {
    let node = Node::local(0, 1);
    let script = vec![
        Answer::Ok,
        Answer::Ok,
        Answer::Err("overloaded"),
        Answer::Err("overloaded"),
        Answer::Ok,
        Answer::Crash,
    ];
    let a = agent(&node, script);
    let (seen, exit) = probed(&node, a).await;
    assert_eq!(
        seen,
        [
            Health::Healthy,
            Health::Unhealthy("overloaded".into()),
            Health::Healthy,
            down(ExitReason::error("boom")),
        ]
    );
    assert_finished(&exit);
}

#[rt::test]
async fn without_probes_a_monitor_reports_healthy_then_the_one_down() {
    let node = Node::local(0, 1);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let a = node.spawn("agent", move |_ctx: Ctx<()>| async move {
        let _ = stop_rx.await;
        ExitReason::Shutdown
    });
    let n = node.clone();
    let observed = rt::spawn(async move {
        observe(&n.clone(), a, move |collector| {
            let config = MonitorConfig::<HealthCheck>::new(collector, None).interval(EVERY);
            let monitor = spawn_monitor(&n, None, a, config);
            let _ = stop_tx.send(());
            monitor
        })
        .await
    });
    let (seen, _) = observed.await.unwrap();
    // The agent may stop before the monitor is set (NoProc) or after (its own reason, with or
    // without a look at it alive first): one Down, last, either way.
    assert!(
        seen == [down(ExitReason::NoProc)]
            || seen == [down(ExitReason::Shutdown)]
            || seen == [Health::Healthy, down(ExitReason::Shutdown)],
        "{seen:?}"
    );
    let gone = dead_agent(&node).await;
    let n = node.clone();
    let (seen, _) = observe(&node, gone, move |collector| {
        spawn_monitor(
            &n,
            None,
            gone,
            MonitorConfig::<HealthCheck>::new(collector, None),
        )
    })
    .await;
    assert_eq!(seen, [down(ExitReason::NoProc)]);
}

#[rt::test]
async fn a_probe_that_times_out_is_unhealthy() {
    if !rt::SIMULATED {
        return;
    }
    let node = Node::local(0, 1);
    // Takes the probe and never answers it until the second one, which it refuses to survive.
    let a = node.spawn("agent", |mut ctx: Ctx<HealthCheck>| async move {
        let mut held = Vec::new();
        loop {
            if let Event::Call { reply, .. } = ctx.recv().await {
                held.push(reply);
                if held.len() == 2 {
                    return ExitReason::Kill;
                }
            }
        }
    });
    let n = node.clone();
    let (seen, _) = observe(&node, a, move |collector| {
        let config = MonitorConfig::new(collector, Some(HealthCheck))
            .interval(EVERY)
            .probe_timeout(Duration::from_millis(50));
        spawn_monitor(&n, None, a, config)
    })
    .await;
    assert_eq!(
        seen,
        [
            Health::Unhealthy("probe timed out".into()),
            down(ExitReason::Kill)
        ]
    );
}

#[rt::test]
async fn a_monitor_whose_reports_cannot_be_delivered_fails_loudly() {
    let node = Node::local(0, 1);
    let gone = dead_agent(&node).await;
    let nobody = dead_agent(&node).await;
    let (tx, rx) = oneshot::channel();
    let n = node.clone();
    node.spawn("owner", move |mut ctx: Ctx<()>| async move {
        let monitor = spawn_monitor(
            &n,
            None,
            gone,
            MonitorConfig::new(nobody, Some(HealthCheck)),
        );
        let m = ctx.monitor(monitor);
        loop {
            if let Event::Down {
                reference, reason, ..
            } = ctx.recv().await
            {
                if reference == m {
                    let _ = tx.send(reason);
                    return ExitReason::Normal;
                }
            }
        }
    });
    let reason = rx.await.unwrap();
    assert!(
        matches!(&reason, ExitReason::Error(e) if e.starts_with("health report undelivered")),
        "{reason:?}"
    );
}

#[rt::test]
async fn supervised_monitors_are_transient_and_a_crashed_one_is_restarted() {
    let node = Node::local(0, 1);
    let (tx, rx) = oneshot::channel();
    let n = node.clone();
    node.spawn("registry", move |mut ctx: Ctx<HealthReport>| async move {
        let config = MonitorConfig::new(ctx.pid(), Some(HealthCheck)).interval(EVERY);
        let sup = start_supervisor(&n, Some(ctx.pid()), (5, SEC), config)
            .await
            .unwrap();
        // An agent that stays healthy until told to stop.
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let healthy = n.spawn("agent", move |mut actx: Ctx<HealthCheck>| async move {
            let serve = async {
                loop {
                    if let Event::Call { reply, .. } = actx.recv().await {
                        reply.reply(Ok::<(), String>(()));
                    }
                }
            };
            futures::pin_mut!(serve);
            let _ = futures::future::select(serve, stop_rx).await;
            ExitReason::error("stopped")
        });
        let first = watch(&ctx, sup, healthy, SEC).await.unwrap().unwrap();
        let r1 = next_report(&mut ctx).await;
        // Kill the monitor: the supervisor restarts it and the new one reports again.
        ctx.exit(first, ExitReason::Kill);
        let r2 = next_report(&mut ctx).await;
        let children = which_children(&ctx, sup, SEC).await.unwrap();
        let second = children[0].1.unwrap();
        let _ = stop_tx.send(());
        let m = ctx.monitor(second);
        let r3 = next_report(&mut ctx).await;
        let second_exit = loop {
            if let Event::Down {
                reference, reason, ..
            } = ctx.recv().await
            {
                if reference == m {
                    break reason;
                }
            }
        };
        // The supervisor handles that exit before this request (its mailbox is in order).
        let left = which_children(&ctx, sup, SEC).await.unwrap();
        let running = left.iter().filter(|c| c.1.is_some()).count();
        let _ = tx.send((
            first != second,
            [r1, r2, r3],
            second_exit,
            running,
            ctx.pending(),
        ));
        ExitReason::Normal
    });
    let (restarted, reports, second_exit, running, pending) = rx.await.unwrap();
    assert!(restarted, "a killed monitor is replaced by a new process");
    let health: Vec<Health> = reports.into_iter().map(|r| r.health).collect();
    assert_eq!(
        health,
        [
            Health::Healthy,
            Health::Healthy,
            down(ExitReason::error("stopped"))
        ]
    );
    assert_eq!(second_exit, ExitReason::Normal);
    assert_eq!(running, 0, "a monitor that reported Down is not restarted");
    assert_eq!(pending, 0, "no report after Down");
}

#[rt::test]
async fn a_bad_config_is_refused_before_anything_starts() {
    let node = Node::local(0, 1);
    let someone = dead_agent(&node).await;
    let zero = MonitorConfig::new(someone, Some(HealthCheck)).interval(Duration::ZERO);
    let err = start_supervisor(&node, None, (1, SEC), zero)
        .await
        .unwrap_err();
    assert_eq!(err, StartError::Invalid("monitor interval is zero".into()));
    let zero = MonitorConfig::new(someone, Some(HealthCheck)).probe_timeout(Duration::ZERO);
    let err = start_supervisor(&node, None, (1, SEC), zero)
        .await
        .unwrap_err();
    assert_eq!(err, StartError::Invalid("probe timeout is zero".into()));
}

async fn next_report(ctx: &mut Ctx<HealthReport>) -> HealthReport {
    loop {
        if let Event::Msg { msg, .. } = ctx.recv().await {
            return msg;
        }
    }
}
