//! Random supervision trees (depth 1 to 3; static supervisors of every strategy, dynamic and
//! task supervisors; permanent, transient and temporary children; workers that trap exits and
//! workers that do not) under random deaths: workers exiting with every reason (`Normal`
//! included) or killed, supervisors killed, supervisors giving up, and the application at the
//! root exiting with any reason (`Normal` included). After everything settles, no process whose
//! supervisor has exited is alive: nothing runs unsupervised.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::{self, Duration};
use groundhog_runtime::supervisor::{
    self, task, ChildSpec, Restart, Shutdown, Spec, StartFuture, Strategy as Sup,
};
use groundhog_runtime::{Ctx, Event, ExitReason, Node, Pid, SpawnOpts, StartError};
use groundhog_sim::{BoxFuture, Driver, Scenario, Setup, Sim, Violation};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::cluster::{self, lock};
use crate::config;

const SEC: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
enum Tree {
    /// A process linked to its supervisor; one that traps exits stops when its supervisor's
    /// exit signal arrives, whatever the reason (as a gen_server does).
    Worker { traps: bool },
    Static {
        strategy: Sup,
        children: Vec<(Restart, Tree)>,
    },
    /// Children added with `start_child`, one per subtree, right after it starts.
    Dynamic {
        restart: Restart,
        children: Vec<Tree>,
    },
    /// Tasks that run until stopped (`true`) or fail after 300 ms (`false`).
    Tasks { forever: Vec<bool> },
}

fn restart() -> impl Strategy<Value = Restart> {
    prop_oneof![
        Just(Restart::Permanent),
        Just(Restart::Transient),
        Just(Restart::Temporary)
    ]
}

fn tree() -> impl Strategy<Value = Tree> {
    let strategy = prop_oneof![
        Just(Sup::OneForOne),
        Just(Sup::OneForAll),
        Just(Sup::RestForOne),
    ];
    let tasks =
        proptest::collection::vec(any::<bool>(), 1..=3).prop_map(|forever| Tree::Tasks { forever });
    let worker = any::<bool>().prop_map(|traps| Tree::Worker { traps });
    let leaf = prop_oneof![3 => worker, 1 => tasks.clone()];
    let inner = leaf.prop_recursive(2, 16, 3, move |sub| {
        prop_oneof![
            (
                strategy.clone(),
                proptest::collection::vec((restart(), sub.clone()), 1..=3)
            )
                .prop_map(|(strategy, children)| Tree::Static { strategy, children }),
            (restart(), proptest::collection::vec(sub, 1..=3))
                .prop_map(|(restart, children)| Tree::Dynamic { restart, children }),
        ]
    });
    // The root is a supervisor.
    prop_oneof![
        inner.prop_filter("a supervisor", |t| !matches!(t, Tree::Worker { .. })),
        tasks,
    ]
}

/// What the driver does to a live process (picked by index among the live ones).
#[derive(Debug, Clone, Copy)]
enum Act {
    /// A worker exits by itself with this reason (code 0..3: normal, shutdown, error, kill);
    /// any other process is sent an exit signal with it.
    Exit(u8),
    /// Killed (untrappable), whatever it is.
    Kill,
}

#[derive(Debug, Clone)]
struct Case {
    root: Tree,
    /// (gap in ms, which live process, what happens to it)
    acts: Vec<(u64, usize, Act)>,
    /// When the application at the root exits, and its reason (code as in `Act::Exit`).
    app_exit: Option<(u64, u8)>,
}

fn case() -> impl Strategy<Value = Case> {
    let act = prop_oneof![5 => (0u8..4).prop_map(Act::Exit), 1 => Just(Act::Kill)];
    (
        tree(),
        proptest::collection::vec((1u64..=50, 0usize..64, act), 0..=8),
        proptest::option::weighted(0.8, (1u64..=300, 0u8..4)),
    )
        .prop_map(|(root, acts, app_exit)| Case {
            root,
            acts: acts.into_iter().map(|(g, i, a)| (g * 10, i, a)).collect(),
            app_exit: app_exit.map(|(t, r)| (t * 10, r)),
        })
}

fn reason(code: u8) -> ExitReason {
    match code {
        0 => ExitReason::Normal,
        1 => ExitReason::Shutdown,
        2 => ExitReason::error("crash"),
        _ => ExitReason::Kill,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Worker,
    Supervisor,
    Task,
}

#[derive(Default)]
struct World {
    node: Option<Node>,
    /// Every process started in the tree: (pid, its supervisor, what it is).
    procs: Vec<(Pid, Pid, Kind)>,
    done: bool,
}

type Shared = Arc<Mutex<World>>;

fn spec(world: &Shared, id: String, restart: Restart, tree: Tree) -> ChildSpec {
    let world = world.clone();
    ChildSpec::new(&id.clone(), move |node, sup| {
        start_tree(world.clone(), tree.clone(), node, sup, id.clone())
    })
    .restart(restart)
    .shutdown(Shutdown::Timeout(SEC))
}

fn start_tree(world: Shared, tree: Tree, node: Node, parent: Pid, id: String) -> StartFuture {
    Box::pin(async move {
        let pid = match tree {
            Tree::Worker { traps } => {
                let mut opts = SpawnOpts::named(&id).link(parent);
                if traps {
                    opts = opts.trap_exit();
                }
                let pid = node.spawn_opts(opts, move |mut ctx: Ctx<u8>| async move {
                    loop {
                        match ctx.recv().await {
                            Event::Msg { msg, .. } => return reason(msg),
                            Event::Exit { from, reason } if from == parent => return reason,
                            _ => {}
                        }
                    }
                });
                lock(&world).procs.push((pid, parent, Kind::Worker));
                return Ok(pid);
            }
            Tree::Static { strategy, children } => {
                let mut s = Spec::new(strategy).intensity(2, SEC);
                for (k, (restart, sub)) in children.into_iter().enumerate() {
                    s = s.child(spec(&world, format!("{id}.{k}"), restart, sub));
                }
                supervisor::start(&node, &id, Some(parent), s).await?
            }
            Tree::Dynamic { restart, children } => {
                let n = children.len();
                let (w, name) = (world.clone(), id.clone());
                let template = move |node: Node, sup: Pid, k: usize| {
                    start_tree(
                        w.clone(),
                        children[k].clone(),
                        node,
                        sup,
                        format!("{name}.{k}"),
                    )
                };
                let pid = supervisor::start_dynamic(
                    &node,
                    &id,
                    Some(parent),
                    (2, SEC),
                    restart,
                    Shutdown::Timeout(SEC),
                    template,
                )
                .await?;
                node.spawn("filler", move |ctx: Ctx<()>| async move {
                    for k in 0..n {
                        let _ = supervisor::start_child(&ctx, pid, k, SEC).await;
                    }
                    ExitReason::Normal
                });
                pid
            }
            Tree::Tasks { forever } => {
                let pid = task::start(&node, &id, Some(parent), None);
                for (k, forever) in forever.into_iter().enumerate() {
                    let t = task::spawn_task(&node, pid, &format!("{id}.{k}"), async move {
                        if forever {
                            futures::future::pending::<()>().await;
                        }
                        rt::sleep(Duration::from_millis(300)).await;
                        Err("task failed".into())
                    });
                    lock(&world).procs.push((t, pid, Kind::Task));
                }
                pid
            }
        };
        lock(&world).procs.push((pid, parent, Kind::Supervisor));
        Ok::<Pid, StartError>(pid)
    })
}

struct Trees(Case);

impl Scenario for Trees {
    fn name(&self) -> &'static str {
        "rt-supervision-trees"
    }

    fn about(&self) -> &'static str {
        "random supervision trees under random deaths: nothing outlives its supervisor"
    }

    fn variants(&self) -> &'static [&'static str] {
        &["model"]
    }

    fn setup(&self) -> Setup {
        Setup::new(1, cluster::no_faults(10))
    }

    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(drive(ctx, self.0.clone()))
    }
}

async fn drive(ctx: Driver, case: Case) -> Result<(), Violation> {
    let world: Shared = Arc::default();
    let (w, c) = (world.clone(), case.clone());
    ctx.start_node(0, move |node| {
        let (world, case) = (w.clone(), c.clone());
        async move {
            let rt_node = cluster::start(&node, 1).await;
            lock(&world).node = Some(rt_node.clone());
            let n = rt_node.clone();
            let w = world.clone();
            // The application: starts the root, then exits when told, with the reason told.
            let app = rt_node.spawn("app", move |mut ctx: Ctx<u8>| async move {
                let root = start_tree(w, case.root.clone(), n, ctx.pid(), "root".into()).await;
                if root.is_err() {
                    return ExitReason::error("root did not start");
                }
                loop {
                    if let Event::Msg { msg, .. } = ctx.recv().await {
                        return reason(msg);
                    }
                }
            });
            rt_node.spawn("driver", move |ctx: Ctx<()>| async move {
                let start = rt::Instant::now();
                let mut app_exit = case.app_exit;
                for &(gap, pick, act) in &case.acts {
                    rt::sleep(Duration::from_millis(gap)).await;
                    if let Some((at, code)) = app_exit {
                        if start.elapsed() >= Duration::from_millis(at) {
                            if code == 3 {
                                ctx.exit(app, ExitReason::Kill);
                            } else {
                                let _ = ctx.send(app, code);
                            }
                            app_exit = None;
                        }
                    }
                    let node = ctx.node().clone();
                    let live: Vec<(Pid, Kind)> = lock(&world)
                        .procs
                        .iter()
                        .filter(|p| node.is_alive(p.0))
                        .map(|p| (p.0, p.2))
                        .collect();
                    if live.is_empty() {
                        continue;
                    }
                    let (pid, kind) = live[pick % live.len()];
                    match (act, kind) {
                        (Act::Exit(code), Kind::Worker) if code < 3 => {
                            let _ = ctx.send(pid, code);
                        }
                        // An exit signal: a task ignores `Normal` and dies of the others; a
                        // supervisor ignores it (it is not from its parent).
                        (Act::Exit(code), _) => ctx.exit(pid, reason(code)),
                        (Act::Kill, _) => ctx.exit(pid, ExitReason::Kill),
                    }
                }
                if let Some((_, code)) = app_exit {
                    if code == 3 {
                        ctx.exit(app, ExitReason::Kill);
                    } else {
                        let _ = ctx.send(app, code);
                    }
                }
                lock(&world).done = true;
                ExitReason::Normal
            });
        }
    });
    ctx.quiesce().await;
    // Shutdown timeouts are 1 s, kill waits 5 s, per level: far less than this.
    rt::sleep(Duration::from_secs(60)).await;
    let w = lock(&world);
    ctx.check("finished", w.done, || "the driver did not finish".into())?;
    let node = w.node.clone().expect("the node started");
    // Every process recorded is under a supervisor (or the application): if that one is
    // dead, so must it be.
    let orphans: Vec<String> = w
        .procs
        .iter()
        .filter(|(pid, sup, _)| node.is_alive(*pid) && !node.is_alive(*sup))
        .map(|(pid, sup, kind)| format!("{kind:?} {pid} alive, its supervisor {sup} is not"))
        .collect();
    ctx.check(
        "nothing-outlives-its-supervisor",
        orphans.is_empty(),
        || format!("{:?}: {}", case, orphans.join("; ")),
    )
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn no_process_outlives_its_supervisor_in_any_tree() {
    let mut runner = TestRunner::new(config(crate::cases(64), file!()));
    let result = runner.run(&(case(), 0u64..1_000), |(case, seed)| {
        let report = Sim::new(seed)
            .variant("model")
            .keep_trace(false)
            .run(&Trees(case.clone()))
            .expect("valid input");
        prop_assert!(report.outcome.passed(), "{}", report.summary());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Issue 21's trace as a tree: the application exits `Normal` with a task supervisor under it.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn tasks_stop_when_the_application_exits_normal() {
    for root in [
        Tree::Tasks {
            forever: vec![true, true],
        },
        Tree::Static {
            strategy: Sup::OneForOne,
            children: vec![(
                Restart::Permanent,
                Tree::Tasks {
                    forever: vec![true],
                },
            )],
        },
    ] {
        let case = Case {
            root,
            acts: vec![(100, 0, Act::Exit(0))],
            app_exit: Some((10, 0)),
        };
        let report = Sim::new(0)
            .variant("model")
            .keep_trace(false)
            .run(&Trees(case))
            .expect("valid input");
        assert!(report.outcome.passed(), "{}", report.summary());
    }
}
