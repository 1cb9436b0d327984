//! gen_server's rules for `Actor`: terminate after a panic, init failures as values, trapping
//! exits as a choice.

use std::sync::{Arc, Mutex};

use futures::channel::oneshot;

use crate::rt::{self, Duration};
use crate::{start_actor, Actor, Ctx, Event, ExitReason, Flow, Node, StartError};

const SEC: Duration = Duration::from_secs(1);

type Seen = Arc<Mutex<Vec<String>>>;

fn seen(log: &Seen) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Panics in `init` if told to, and in `handle` on message 0; logs `terminate`.
struct Probe {
    log: Seen,
    trap: bool,
    panic_in_init: bool,
}

impl Probe {
    fn new(log: &Seen, trap: bool) -> Probe {
        Probe {
            log: log.clone(),
            trap,
            panic_in_init: false,
        }
    }
}

impl Actor for Probe {
    type Msg = u32;

    fn trap_exit(&self) -> bool {
        self.trap
    }

    async fn init(&mut self, _ctx: &mut Ctx<u32>) -> Result<(), ExitReason> {
        if self.panic_in_init {
            panic!("init blew up");
        }
        Ok(())
    }

    async fn handle(&mut self, _ctx: &mut Ctx<u32>, event: Event<u32>) -> Flow {
        if let Event::Msg { msg: 0, .. } = event {
            panic!("handle blew up");
        }
        Flow::Continue
    }

    async fn terminate(&mut self, _ctx: &mut Ctx<u32>, reason: &ExitReason) {
        self.log.lock().unwrap().push(format!("terminate {reason}"));
    }
}

/// Runs `body` as a process (the parent of what it starts) and returns what it produced.
async fn in_process<T: Send + 'static, F>(
    node: &Node,
    body: impl FnOnce(Ctx<u32>) -> F + Send + 'static,
) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    node.spawn("parent", move |ctx: Ctx<u32>| async move {
        let _ = tx.send(body(ctx).await);
        ExitReason::Normal
    });
    rx.await.expect("the parent process finished")
}

/// The reason the `Down` of a monitor on `pid` carries.
async fn down_reason(ctx: &mut Ctx<u32>, pid: crate::Pid) -> ExitReason {
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
async fn terminate_runs_after_a_panic_in_handle() {
    let node = Node::local(0, 1);
    let log = Seen::default();
    let probe = Probe::new(&log, false);
    let reason = in_process(&node, move |mut ctx| async move {
        ctx.trap_exit(true);
        let me = Some(ctx.pid());
        let pid = start_actor(ctx.node(), "probe", me, SEC, probe)
            .await
            .unwrap();
        ctx.send(pid, 0u32).unwrap();
        down_reason(&mut ctx, pid).await
    })
    .await;
    let crash = ExitReason::error("panic: handle blew up");
    assert_eq!(reason, crash, "the panic is the exit reason");
    assert_eq!(seen(&log), vec![format!("terminate {crash}")]);
}

#[rt::test]
async fn a_panicking_init_reports_its_reason_to_the_starter() {
    let node = Node::local(0, 1);
    let log = Seen::default();
    let mut probe = Probe::new(&log, true);
    probe.panic_in_init = true;
    let (started, pending) = in_process(&node, move |mut ctx| async move {
        let me = Some(ctx.pid());
        let started = start_actor(ctx.node(), "probe", me, SEC, probe).await;
        // The starter is not also sent the failure as an exit signal (it would die of it).
        let pending = ctx.recv_timeout(Duration::from_millis(10)).await.is_some();
        (started, pending)
    })
    .await;
    assert_eq!(
        started,
        Err(StartError::Init(ExitReason::error("panic: init blew up")))
    );
    assert!(!pending);
    assert!(seen(&log).is_empty(), "no terminate after a failed init");
}

/// Not trapping (the default), an actor whose parent exits with `Shutdown` dies at once
/// without `terminate`; trapping, it runs `terminate` with that reason.
#[rt::test]
async fn trapping_exits_is_the_actors_choice() {
    let node = Node::local(0, 1);
    let plain_log = Seen::default();
    let trap_log = Seen::default();
    let (plain, trap) = (Probe::new(&plain_log, false), Probe::new(&trap_log, true));
    let reasons = in_process(&node, move |mut ctx| async move {
        let me = ctx.pid();
        let mut reasons = Vec::new();
        for probe in [plain, trap] {
            let pid = start_actor(ctx.node(), "probe", Some(me), SEC, probe)
                .await
                .unwrap();
            ctx.unlink(pid);
            ctx.exit(pid, ExitReason::Shutdown);
            reasons.push(down_reason(&mut ctx, pid).await);
        }
        reasons
    })
    .await;
    assert_eq!(reasons, vec![ExitReason::Shutdown, ExitReason::Shutdown]);
    assert!(seen(&plain_log).is_empty(), "{:?}", seen(&plain_log));
    assert_eq!(seen(&trap_log), vec!["terminate shutdown".to_string()]);
}
