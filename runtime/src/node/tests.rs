//! Local process semantics, on one node.

use futures::channel::oneshot;

use crate::rt::{self, Duration};
use crate::{CallError, Ctx, Event, ExitReason, Node, Pid, SendError, SpawnOpts};

const SEC: Duration = Duration::from_secs(1);

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

/// The pid of a process that has certainly exited (its `Down` was seen).
async fn dead_pid(node: &Node) -> Pid {
    in_process(node, |mut ctx| async move {
        let pid = ctx.spawn("short", |_ctx: Ctx<u32>| async { ExitReason::Normal });
        let m = ctx.monitor(pid);
        loop {
            if let Event::Down { reference, .. } = ctx.recv().await {
                if reference == m {
                    return pid;
                }
            }
        }
    })
    .await
}

/// Tests about timeouts and timers measure time, which only the simulation does without
/// sleeping; the real build skips them.
fn timing_is_simulated() -> bool {
    rt::SIMULATED
}

/// A process that collects `n` messages and reports them.
fn collector(node: &Node, n: usize) -> (Pid, oneshot::Receiver<Vec<(Pid, u32)>>) {
    let (tx, rx) = oneshot::channel();
    let pid = node.spawn("collector", move |mut ctx: Ctx<u32>| async move {
        let mut got = Vec::new();
        while got.len() < n {
            if let Event::Msg { from, msg } = ctx.recv().await {
                got.push((from, msg));
            }
        }
        let _ = tx.send(got);
        ExitReason::Normal
    });
    (pid, rx)
}

#[rt::test]
async fn local_messages_arrive_in_send_order() {
    let node = Node::local(0, 1);
    let (sink, got) = collector(&node, 100);
    let me = in_process(&node, move |ctx| async move {
        for i in 0..100u32 {
            ctx.send(sink, i).unwrap();
        }
        ctx.pid()
    })
    .await;
    let got = got.await.unwrap();
    assert_eq!(got, (0..100).map(|i| (me, i)).collect::<Vec<_>>());
}

#[rt::test]
async fn a_full_mailbox_hands_the_message_back() {
    let node = Node::local(0, 1);
    let sink = node.spawn_opts(SpawnOpts::named("slow").mailbox(2), |_ctx: Ctx<u32>| {
        std::future::pending::<ExitReason>()
    });
    let results = in_process(&node, move |ctx| async move {
        (0..3u32).map(|i| ctx.send(sink, i)).collect::<Vec<_>>()
    })
    .await;
    assert!(results[0].is_ok() && results[1].is_ok());
    match &results[2] {
        Err(SendError::Full { msg: 2, .. }) => {}
        other => panic!("expected Full(2), got {other:?}"),
    }
}

#[rt::test]
async fn sends_to_dead_or_stale_pids_are_noproc() {
    let node = Node::local(0, 1);
    let gone = dead_pid(&node).await;
    assert!(!node.is_alive(gone));
    let stale = Pid {
        incarnation: 0,
        ..gone
    };
    // A pid of an earlier incarnation whose id is live in this one names a different
    // process: it is not alive and nothing sent to it reaches the live one.
    let (live, got) = collector(&node, 1);
    let stale_live = Pid {
        incarnation: 0,
        ..live
    };
    assert!(!node.is_alive(stale_live));
    let (a, b, c, d) = in_process(&node, move |ctx| async move {
        (
            ctx.send(gone, 1u32),
            ctx.send(stale, 2u32),
            ctx.send(stale_live, 3u32),
            ctx.send(live, 4u32),
        )
    })
    .await;
    assert!(matches!(a, Err(SendError::NoProc { msg: 1, .. })));
    assert!(matches!(b, Err(SendError::NoProc { msg: 2, .. })));
    assert!(matches!(c, Err(SendError::NoProc { msg: 3, .. })));
    assert!(d.is_ok());
    let got: Vec<u32> = got.await.unwrap().into_iter().map(|(_, m)| m).collect();
    assert_eq!(got, vec![4], "only the message to the live pid arrived");
}

fn echo_server(node: &Node) -> Pid {
    node.spawn("echo", |mut ctx: Ctx<u32>| async move {
        loop {
            match ctx.recv().await {
                // 0: crash; 1: never answer; 2: answer after 2 s (a deferred reply); n: echo.
                Event::Call { msg: 0, .. } => return ExitReason::error("asked to"),
                Event::Call { msg: 1, .. } => {}
                Event::Call { msg: 2, reply, .. } => {
                    ctx.send_after(2 * SEC, 0);
                    let Some(Event::Timer { .. }) = ctx.recv_timeout(3 * SEC).await else {
                        return ExitReason::error("no timer");
                    };
                    reply.reply(2u32);
                }
                Event::Call { msg, reply, .. } => reply.reply(msg),
                _ => {}
            }
        }
    })
}

#[rt::test]
async fn call_returns_reply_timeout_exit_or_noproc() {
    if !timing_is_simulated() {
        return;
    }
    let node = Node::local(0, 1);
    let server = echo_server(&node);
    let results = in_process(&node, move |ctx| async move {
        let ok: Result<u32, _> = ctx.call(server, 7u32, SEC).await;
        let slow: Result<u32, _> = ctx.call(server, 2u32, 5 * SEC).await;
        let timeout: Result<u32, _> = ctx.call(server, 1u32, SEC).await;
        let crash: Result<u32, _> = ctx.call(server, 0u32, SEC).await;
        let noproc: Result<u32, _> = ctx.call(server, 7u32, SEC).await;
        (ok, slow, timeout, crash, noproc)
    })
    .await;
    assert_eq!(results.0, Ok(7));
    assert_eq!(results.1, Ok(2));
    assert_eq!(results.2, Err(CallError::Timeout));
    assert_eq!(
        results.3,
        Err(CallError::Exited(ExitReason::error("asked to")))
    );
    assert_eq!(results.4, Err(CallError::NoProc));
}

/// One sweeper serves every call's deadline: a short call behind a long pending one times out
/// at its own deadline, and so does the next one, while the long one times out at its own.
#[rt::test]
async fn each_call_times_out_at_its_own_deadline() {
    if !timing_is_simulated() {
        return;
    }
    let node = Node::local(0, 1);
    let server = echo_server(&node);
    let start = rt::Instant::now();
    let long = {
        let node = node.clone();
        async move {
            in_process(&node, move |ctx| async move {
                let r: Result<u32, _> = ctx.call(server, 1u32, 30 * SEC).await;
                (r, start.elapsed())
            })
            .await
        }
    };
    let shorts = in_process(&node, move |ctx| async move {
        rt::sleep(SEC / 10).await;
        let mut out = Vec::new();
        for _ in 0..2 {
            let began = rt::Instant::now();
            let r: Result<u32, _> = ctx.call(server, 1u32, SEC).await;
            out.push((r, began.elapsed()));
        }
        out
    });
    let (long, shorts) = futures::join!(long, shorts);
    for (r, took) in shorts {
        assert_eq!(r, Err(CallError::Timeout));
        assert!(
            took >= SEC && took < SEC + SEC / 100,
            "timed out after {took:?}"
        );
    }
    assert_eq!(long.0, Err(CallError::Timeout));
    assert!(
        long.1 >= 30 * SEC && long.1 < 30 * SEC + SEC / 100,
        "{:?}",
        long.1
    );
}

#[rt::test]
async fn a_late_reply_is_never_a_stray_message() {
    if !timing_is_simulated() {
        return;
    }
    let node = Node::local(0, 1);
    let server = echo_server(&node);
    let (timeout, stray) = in_process(&node, move |mut ctx| async move {
        let r: Result<u32, _> = ctx.call(server, 2u32, SEC).await;
        // The reply comes at 2 s; wait past it and look at the mailbox.
        let stray = ctx.recv_timeout(3 * SEC).await;
        (r, stray.is_some())
    })
    .await;
    assert_eq!(timeout, Err(CallError::Timeout));
    assert!(!stray, "a late reply reached the caller's mailbox");
}

#[rt::test]
async fn links_propagate_abnormal_exits_unless_trapped() {
    let node = Node::local(0, 1);
    let (reason_tx, reason_rx) = oneshot::channel();
    let trapped = in_process(&node, move |ctx| async move {
        ctx.trap_exit(true);
        let node = ctx.node().clone();
        // A middle process linked to a crasher dies with the crasher's reason.
        let middle = ctx.spawn_link("middle", |ctx: Ctx<u32>| async move {
            ctx.spawn_link("crasher", |_c: Ctx<u32>| async {
                ExitReason::error("boom")
            });
            std::future::pending::<ExitReason>().await
        });
        let mut ctx = ctx;
        let got = ctx.recv_timeout(SEC).await;
        let _ = reason_tx.send(node.is_alive(middle));
        match got {
            Some(Event::Exit { from, reason }) => Some((from == middle, reason)),
            _ => None,
        }
    })
    .await;
    assert_eq!(trapped, Some((true, ExitReason::error("boom"))));
    assert!(!reason_rx.await.unwrap());
}

#[rt::test]
async fn normal_exits_do_not_kill_links_and_kill_cannot_be_trapped() {
    let node = Node::local(0, 1);
    let (normal_survivor, killed) = in_process(&node, move |ctx| async move {
        let (seen_tx, seen_rx) = oneshot::channel();
        let survivor = ctx.spawn("survivor", |mut ctx: Ctx<u32>| async move {
            let child = ctx.spawn_link("normal", |_c: Ctx<u32>| async { ExitReason::Normal });
            let m = ctx.monitor(child);
            while !matches!(ctx.recv().await, Event::Down { reference, .. } if reference == m) {}
            let _ = seen_tx.send(());
            std::future::pending::<ExitReason>().await
        });
        let trapper = ctx.node().spawn_opts(
            SpawnOpts::named("trapper").trap_exit(),
            |mut ctx: Ctx<u32>| async move {
                loop {
                    ctx.recv().await;
                }
            },
        );
        let m = ctx.monitor(trapper);
        seen_rx.await.unwrap();
        ctx.exit(trapper, ExitReason::Kill);
        let mut ctx = ctx;
        let down = Some(ctx.recv().await);
        (
            ctx.is_alive(survivor),
            matches!(down, Some(Event::Down { reference, reason: ExitReason::Killed, .. }) if reference == m),
        )
    })
    .await;
    assert!(normal_survivor);
    assert!(killed);
}

/// OTP's `kill` / `killed`: an untrappable `Kill` makes its target exit with `Killed`, which
/// is what its links and monitors see; a process that exits with `Kill` by itself sends `Kill`
/// over its links, where it is trappable like any other reason.
#[rt::test]
async fn a_killed_process_is_seen_as_killed_and_kill_over_a_link_is_trappable() {
    let node = Node::local(0, 1);
    let (killed, over_link, trapper_alive) = in_process(&node, move |mut ctx| async move {
        ctx.trap_exit(true);
        let target = ctx.spawn_link("target", |_c: Ctx<u32>| async move {
            std::future::pending::<ExitReason>().await
        });
        let m = ctx.monitor(target);
        ctx.exit(target, ExitReason::Kill);
        let mut killed = Vec::new();
        while killed.len() < 2 {
            match ctx.recv().await {
                Event::Exit { from, reason } if from == target => killed.push(("link", reason)),
                Event::Down {
                    reference, reason, ..
                } if reference == m => killed.push(("monitor", reason)),
                _ => {}
            }
        }
        killed.sort();
        // A trapping process linked to one that exits with `Kill` gets it as a message.
        let (reason_tx, reason_rx) = oneshot::channel();
        let trapper = ctx.node().spawn_opts(
            SpawnOpts::named("trapper").trap_exit(),
            |mut ctx: Ctx<u32>| async move {
                let quitter = ctx.spawn_link("quitter", |_c: Ctx<u32>| async { ExitReason::Kill });
                let mut reason_tx = Some(reason_tx);
                loop {
                    if let Event::Exit { from, reason } = ctx.recv().await {
                        if from == quitter {
                            if let Some(tx) = reason_tx.take() {
                                let _ = tx.send(reason);
                            }
                        }
                    }
                }
            },
        );
        let over_link = reason_rx.await.ok();
        let alive = ctx.is_alive(trapper);
        (killed, over_link, alive)
    })
    .await;
    assert_eq!(
        killed,
        vec![
            ("link", ExitReason::Killed),
            ("monitor", ExitReason::Killed)
        ]
    );
    assert_eq!(over_link, Some(ExitReason::Kill));
    assert!(trapper_alive, "a trapped Kill over a link does not kill");
}

#[rt::test]
async fn monitoring_a_dead_process_gives_one_noproc_down() {
    let node = Node::local(0, 1);
    let gone = dead_pid(&node).await;
    assert!(!node.is_alive(gone));
    let downs = in_process(&node, move |mut ctx| async move {
        let m = ctx.monitor(gone);
        let mut downs = Vec::new();
        while let Some(Event::Down {
            reference, reason, ..
        }) = ctx.recv_timeout(SEC).await
        {
            downs.push((reference == m, reason));
        }
        downs
    })
    .await;
    assert_eq!(downs, vec![(true, ExitReason::NoProc)]);
}

#[rt::test]
async fn demonitor_with_flush_removes_a_queued_down() {
    if !timing_is_simulated() {
        return;
    }
    let node = Node::local(0, 1);
    let (flushed, live) = in_process(&node, move |mut ctx| async move {
        let target = ctx.spawn("short", |_ctx: Ctx<u32>| async { ExitReason::Normal });
        let m = ctx.monitor(target);
        rt::sleep(SEC).await;
        assert_eq!(ctx.pending(), 1);
        let live = ctx.demonitor(m, true);
        (ctx.recv_timeout(SEC).await.is_none(), live)
    })
    .await;
    assert!(flushed);
    assert!(!live, "the monitor had already fired");
}

#[rt::test]
async fn timers_fire_once_and_die_with_their_process() {
    if !timing_is_simulated() {
        return;
    }
    let node = Node::local(0, 1);
    let (tag, cancelled, armed) = in_process(&node, move |mut ctx| async move {
        ctx.send_after(SEC, 9);
        let cancel = ctx.send_after(SEC, 10);
        let cancelled = ctx.cancel_timer(cancel);
        let armed = ctx.node().timer_count();
        let tag = match ctx.recv_timeout(2 * SEC).await {
            Some(Event::Timer { tag, .. }) => Some(tag),
            _ => None,
        };
        assert_eq!(
            ctx.node().timer_count(),
            0,
            "a fired timer is no longer pending"
        );
        assert!(ctx.recv_timeout(2 * SEC).await.is_none());
        (tag, cancelled, armed)
    })
    .await;
    assert_eq!(tag, Some(9));
    assert!(cancelled);
    assert_eq!(armed, 1, "one timer armed, one cancelled");
    // A process with a pending timer exits: the timer task is aborted with it at once, not
    // left sleeping until it would have fired.
    rt::sleep(SEC).await;
    let before = rt::task_count().expect("counted under simulation");
    let pid = node.spawn("timed", |ctx: Ctx<u32>| async move {
        ctx.send_after(10 * SEC, 1);
        ExitReason::Normal
    });
    rt::sleep(Duration::from_millis(10)).await;
    assert!(!node.is_alive(pid));
    assert_eq!(node.timer_count(), 0);
    assert_eq!(
        rt::task_count(),
        Some(before),
        "the exited process's timer task is gone"
    );
}

#[rt::test]
async fn a_panic_is_an_error_exit() {
    let node = Node::local(0, 1);
    let reason = in_process(&node, move |mut ctx| async move {
        let p = ctx.spawn("panics", |_c: Ctx<u32>| async {
            panic!("oops");
        });
        let m = ctx.monitor(p);
        match ctx.recv_timeout(SEC).await {
            Some(Event::Down {
                reference, reason, ..
            }) if reference == m => Some(reason),
            _ => None,
        }
    })
    .await;
    assert_eq!(reason, Some(ExitReason::error("panic: oops")));
}

#[rt::test]
async fn an_oversized_remote_message_is_handed_back() {
    let node = Node::local(0, 1);
    let remote = Pid {
        node: 1,
        incarnation: 1,
        id: 1,
    };
    let result = in_process(&node, move |ctx| async move {
        ctx.send(remote, vec![7u8; crate::wire::MAX_FRAME])
    })
    .await;
    match result {
        Err(SendError::TooLarge { msg, size, .. }) => {
            assert_eq!(msg.len(), crate::wire::MAX_FRAME);
            assert!(size > crate::wire::MAX_PAYLOAD);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[rt::test]
async fn a_process_spawn_linked_to_a_dead_one_never_runs() {
    let node = Node::local(0, 1);
    let gone = dead_pid(&node).await;
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    let reason = in_process(&node, move |mut ctx| async move {
        let opts = SpawnOpts::named("orphan").link(gone);
        let orphan = ctx.node().spawn_opts(opts, move |_c: Ctx<u32>| async move {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            ExitReason::Normal
        });
        let m = ctx.monitor(orphan);
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
    })
    .await;
    assert_eq!(reason, ExitReason::NoProc);
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
}

#[rt::test]
async fn a_message_of_the_wrong_type_is_dropped_not_delivered() {
    let node = Node::local(0, 1);
    let (sink, got) = collector(&node, 1);
    in_process(&node, move |ctx| async move {
        ctx.send(sink, "not a number".to_string()).unwrap();
        ctx.send(sink, 7u32).unwrap();
    })
    .await;
    let got = got.await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, 7);
}

/// A panicking node service is not swallowed: it is traced and takes the node down, killing its
/// processes (whose links and monitors then fire).
#[rt::test]
async fn a_failed_service_takes_the_node_down() {
    /// Reports when the process holding it is gone (its body dropped).
    struct Gone(Option<oneshot::Sender<()>>);
    impl Drop for Gone {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }
    let node = Node::local(0, 1);
    let (gone_tx, gone) = oneshot::channel();
    let idle = node.spawn("idle", move |mut ctx: Ctx<u32>| async move {
        let _gone = Gone(Some(gone_tx));
        ctx.recv().await;
        ExitReason::Normal
    });
    assert!(node.is_alive(idle));
    let service = node.spawn_service("doomed", async { panic!("service bug") });
    service
        .await
        .expect("the service task itself ends after the shutdown");
    // The idle process's body is dropped: after it ran (the guard reports) or before it ever
    // ran (the guard's sender is dropped unsent). Left alive, it would never report.
    let killed = rt::timeout(10 * SEC, gone).await;
    assert!(
        killed.is_ok(),
        "the idle process outlived its node's shutdown"
    );
}

/// The audit's flood: exit signals into a trapping process far past any mailbox. Signals count
/// against their own bound; the one past it kills the process (its monitors see why) instead of
/// growing the mailbox or vanishing.
#[crate::rt::test]
async fn an_exit_signal_flood_is_bounded_and_kills_instead_of_dropping() {
    use crate::mailbox::SIGNAL_LIMIT;
    let node = Node::local(0, 1);
    let (ready_tx, ready_rx) = oneshot::channel();
    let trapper = node.spawn("trapper", |ctx: Ctx<()>| async move {
        ctx.trap_exit(true);
        let _ = ready_tx.send(());
        // Never reads its mailbox.
        futures::future::pending::<ExitReason>().await
    });
    ready_rx.await.unwrap();
    let (down_tx, down_rx) = oneshot::channel();
    let (watching_tx, watching_rx) = oneshot::channel();
    node.spawn("watcher", move |mut ctx: Ctx<()>| async move {
        ctx.monitor(trapper);
        let _ = watching_tx.send(());
        if let Event::Down { reason, .. } = ctx.recv().await {
            let _ = down_tx.send(reason);
        }
        ExitReason::Normal
    });
    let sender = node.spawn("sender", |_: Ctx<()>| async move {
        futures::future::pending::<ExitReason>().await
    });
    watching_rx.await.unwrap();
    for _ in 0..SIGNAL_LIMIT {
        node.exit(sender, trapper, ExitReason::Shutdown);
    }
    assert!(node.is_alive(trapper), "alive at the bound");
    let queued = node.lock().entry(trapper).map(|e| e.mailbox.len());
    assert_eq!(queued, Some(SIGNAL_LIMIT));
    // One past the bound: not queued, and the process is told to die.
    node.exit(sender, trapper, ExitReason::Shutdown);
    assert_eq!(queued, node.lock().entry(trapper).map(|e| e.mailbox.len()));
    let reason = down_rx.await.unwrap();
    assert!(!node.is_alive(trapper));
    assert_eq!(reason, ExitReason::error("signal-queue-overflow"));
}
