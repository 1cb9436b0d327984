//! The library entry point for users' own tests.

use groundhog_scenarios::{LostUpdate, PingPong};
use groundhog_sim::{Check, Outcome, Sim};

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn check_passes_fixed_variants_and_catches_flawed_ones() {
    let summary = Check::new(&PingPong)
        .variant("fixed")
        .seeds(0..100)
        .determinism(true)
        .run();
    assert_eq!(summary.seeds_run, 100);
    let found = Check::new(&LostUpdate)
        .variant("flawed")
        .seeds(0..20)
        .expect_failure();
    assert!(found
        .repro
        .starts_with("groundhog replay lost-update --variant flawed --seed "));
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn check_panics_with_the_repro_line() {
    let panic = std::panic::catch_unwind(|| {
        Check::new(&LostUpdate)
            .variant("flawed")
            .seeds(0..3)
            .jobs(1)
            .run();
    })
    .expect_err("flawed lost-update fails");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("repro: groundhog replay lost-update --variant flawed --seed 0"),
        "{message}"
    );
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_report_carries_outcome_trace_hash_time_and_counts() {
    let report = Sim::new(8).variant("flawed").run(&LostUpdate).unwrap();
    assert!(
        matches!(&report.outcome, Outcome::Violated(v) if v.invariant == "count-equals-acked-increments")
    );
    assert_eq!(report.trace.lines.len() as u64, report.trace.events());
    assert!(report.trace.counts["send"] > 0 && report.trace.counts["deliver"] > 0);
    assert!(
        report.sim_time.as_secs() >= 5,
        "ran through the quiet phase"
    );
    assert!(report
        .trace
        .lines
        .last()
        .unwrap()
        .ends_with("end result=violated invariant=count-equals-acked-increments"));
    let no_lines = Sim::new(8)
        .variant("flawed")
        .keep_trace(false)
        .run(&LostUpdate)
        .unwrap();
    assert_eq!(no_lines.hash(), report.hash());
    assert!(no_lines.trace.lines.is_empty());
}

/// A test-only scenario whose node 0 runs a named `worker` process that a plan can kill.
struct Worker;

impl groundhog_sim::Scenario for Worker {
    fn name(&self) -> &'static str {
        "worker"
    }
    fn about(&self) -> &'static str {
        "test only: a named process and a hang"
    }
    fn variants(&self) -> &'static [&'static str] {
        &["finishes", "hangs"]
    }
    fn setup(&self) -> groundhog_sim::Setup {
        let mix =
            groundhog_sim::FaultMix::new(vec![groundhog_sim::FaultKind::KillProcess], 0.0, 1_000)
                .processes(vec![(0, "worker".into())]);
        groundhog_sim::Setup::new(1, mix).time_limit(groundhog_runtime::rt::Duration::from_secs(20))
    }
    fn run(
        &self,
        ctx: groundhog_sim::Driver,
    ) -> groundhog_sim::BoxFuture<Result<(), groundhog_sim::Violation>> {
        use groundhog_runtime::rt::{self, Duration};
        Box::pin(async move {
            ctx.start_node(0, |node| async move {
                node.spawn_process("worker", async {
                    rt::sleep(Duration::from_secs(3)).await;
                });
            });
            if ctx.variant() == "hangs" {
                std::future::pending::<()>().await;
            }
            ctx.quiesce().await;
            rt::sleep(Duration::from_secs(2)).await;
            Ok(())
        })
    }
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn kill_process_kills_the_named_task_and_traces_it() {
    let untouched = Sim::new(1).run(&Worker).unwrap();
    assert!(untouched
        .trace
        .lines
        .iter()
        .any(|l| l.ends_with("n0 exit task=worker reason=normal")));
    let plan = groundhog_sim::FaultPlan::timed(
        1_000,
        [(
            500,
            groundhog_sim::Fault::KillProcess {
                node: 0,
                target: groundhog_sim::Target::Task("worker".into()),
            },
        )],
    );
    let killed = Sim::new(1).plan(plan).run(&Worker).unwrap();
    let lines = &killed.trace.lines;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("0.5") && l.ends_with("n0 exit task=worker reason=killed")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.ends_with("reason=normal")),
        "a killed task never finishes"
    );
    assert!(killed.outcome.passed());
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_run_past_its_time_limit_fails_instead_of_hanging() {
    let report = Sim::new(1).variant("hangs").run(&Worker).unwrap();
    assert!(
        matches!(&report.outcome, Outcome::Panicked { .. }),
        "{:?}",
        report.outcome
    );
    assert!(report.repro().ends_with("--variant hangs --seed 1"));
}

/// A test-only scenario: node 0 runs a supervisor registered as `top` with a permanent child
/// `cache`, and a process registered as `watcher` that traps exits and notes each one.
struct Supervised;

impl groundhog_sim::Scenario for Supervised {
    fn name(&self) -> &'static str {
        "supervised"
    }
    fn about(&self) -> &'static str {
        "test only: a supervisor, its child and a trapping process, for process faults"
    }
    fn variants(&self) -> &'static [&'static str] {
        &["only"]
    }
    fn setup(&self) -> groundhog_sim::Setup {
        groundhog_sim::Setup::new(1, groundhog_sim::FaultMix::new(Vec::new(), 0.0, 1_000))
    }
    fn run(
        &self,
        ctx: groundhog_sim::Driver,
    ) -> groundhog_sim::BoxFuture<Result<(), groundhog_sim::Violation>> {
        use groundhog_runtime::supervisor::{self, ChildSpec, Spec, Strategy};
        use groundhog_runtime::{event, Ctx, Event, ExitReason, Node, Registry, SpawnOpts};
        Box::pin(async move {
            ctx.start_node(0, |node| async move {
                let rt_node = Node::local(0, node.incarnation());
                let cache = ChildSpec::new("cache", |node: Node, sup| async move {
                    let opts = SpawnOpts::named("cache").link(sup);
                    Ok(node.spawn_opts(opts, |mut ctx: Ctx<()>| async move {
                        loop {
                            ctx.recv().await;
                        }
                    }))
                });
                let spec = Spec::new(Strategy::OneForOne).child(cache);
                let top = supervisor::start(&rt_node, "top", None, spec)
                    .await
                    .unwrap();
                let names = Registry::local(&rt_node);
                names.register("top", top).unwrap();
                let opts = SpawnOpts::named("watcher").trap_exit();
                let watcher = rt_node.spawn_opts(opts, |mut ctx: Ctx<()>| async move {
                    loop {
                        if let Event::Exit { reason, .. } = ctx.recv().await {
                            let msg = format!("watcher trapped {reason}");
                            event!("note", node = 0u32, msg = msg.as_str());
                        }
                    }
                    #[allow(unreachable_code)]
                    ExitReason::Normal
                });
                names.register("watcher", watcher).unwrap();
            });
            ctx.quiesce().await;
            Ok(())
        })
    }
}

/// `kill-process` and `exit-process` act on the runtime process itself: a supervisor's child
/// killed by id is restarted, a trapping process gets `exit-process`'s reason as a message and
/// dies of `kill-process`, a missing target is skipped and traced, and killing the supervisor
/// by pid takes its child with it (links). Catches: resolving the child from a stale table
/// (no restart line for the new pid), killing without a signal (no `signal` / `down` lines),
/// or sending exit-process as an untrappable kill.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn process_faults_kill_runtime_processes_by_pid_name_and_supervisor_child() {
    use groundhog_sim::{Fault, FaultPlan, Target};
    let child = || Target::Child {
        supervisor: "top".into(),
        child: "cache".into(),
    };
    let plan = FaultPlan::timed(
        900,
        [
            (
                100,
                Fault::KillProcess {
                    node: 0,
                    target: child(),
                },
            ),
            (
                200,
                Fault::KillProcess {
                    node: 0,
                    target: child(),
                },
            ),
            (
                300,
                Fault::ExitProcess {
                    node: 0,
                    target: Target::Name("watcher".into()),
                    reason: "shutdown".into(),
                },
            ),
            (
                400,
                Fault::KillProcess {
                    node: 0,
                    target: Target::Name("watcher".into()),
                },
            ),
            (
                500,
                Fault::KillProcess {
                    node: 0,
                    target: Target::Name("watcher".into()),
                },
            ),
            (
                600,
                Fault::KillProcess {
                    node: 0,
                    target: Target::Pid(1),
                },
            ),
            (
                700,
                Fault::KillProcess {
                    node: 0,
                    target: child(),
                },
            ),
        ],
    );
    let report = Sim::new(3).plan(plan.clone()).run(&Supervised).unwrap();
    assert!(report.outcome.passed(), "{:?}", report.outcome);
    let lines: Vec<&str> = report
        .trace
        .lines
        .iter()
        .map(|l| l.split_once(' ').unwrap().1)
        .collect();
    let has = |s: &str| lines.iter().any(|l| l.contains(s));
    let count = |s: &str| lines.iter().filter(|l| l.contains(s)).count();
    // The supervisor is <0.1.1>; its child was <0.1.2>, then the two restarts.
    assert!(
        has("fault fault=\"kill-process node=0 supervisor=top child=cache\" pid=<0.1.2>"),
        "{lines:#?}"
    );
    assert!(has(
        "n0 signal from=<0.1.2> to=<0.1.2> reason=kill effect=killed"
    ));
    assert!(has("n0 exit pid=<0.1.2> name=cache reason=killed"));
    assert_eq!(count("n0 restart sup=<0.1.1> child=cache reason=killed"), 2);
    let second = lines
        .iter()
        .find(|l| {
            l.contains("fault fault=\"kill-process node=0 supervisor=top child=cache\" pid=")
                && !l.contains("<0.1.2>")
        })
        .expect("the second kill hits the restarted child");
    assert!(!second.contains("skipped"), "{second}");
    assert!(
        has("n0 note msg=\"watcher trapped shutdown\""),
        "{lines:#?}"
    );
    assert!(has("n0 exit pid=<0.1.4> name=watcher reason=killed"));
    assert!(has(
        "n0 down watcher=<0.1.3> pid=<0.1.4> reference=#0.1.4 reason=killed"
    ));
    assert!(has(
        "fault fault=\"kill-process node=0 name=watcher\" skipped=no-such-name"
    ));
    // The supervisor killed by pid: it dies `killed`, its child with it over the link.
    assert!(has("n0 exit pid=<0.1.1> name=top reason=killed"));
    assert!(has(
        "n0 signal from=<0.1.1> to=<0.1.6> reason=killed effect=killed"
    ));
    assert!(has(
        "fault fault=\"kill-process node=0 supervisor=top child=cache\" skipped=no-such-supervisor"
    ));
    // Replays the same.
    let again = Sim::new(3).plan(plan).run(&Supervised).unwrap();
    assert_eq!(again.hash(), report.hash());
}

/// Buggify is off unless asked for: a run with `Sim::buggify(false)` is the default run, hash
/// for hash. Turned on (by the builder, or by `buggify = true` in a plan file), the runtime's
/// sites fire in some seeds, traced `buggify site=...`, the run stays deterministic, and the
/// fixed variant still holds. Catches buggify drawing or tracing while off (a changed hash), and
/// a plan key that is read but not applied.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn buggify_fires_only_when_the_run_asks_and_replays() {
    use groundhog_scenarios::AmnesiacRestart;
    let mut fired = std::collections::BTreeSet::new();
    for seed in 0..12 {
        let default = Sim::new(seed)
            .variant("fixed")
            .run(&AmnesiacRestart)
            .unwrap();
        let off = Sim::new(seed)
            .variant("fixed")
            .buggify(false)
            .run(&AmnesiacRestart)
            .unwrap();
        assert_eq!(off.hash(), default.hash());
        assert!(!default.trace.lines.iter().any(|l| l.contains("buggify")));
        let on = Sim::new(seed)
            .variant("fixed")
            .buggify(true)
            .run(&AmnesiacRestart)
            .unwrap();
        assert!(on.outcome.passed(), "seed {seed}: {:?}", on.outcome);
        assert!(on.plan.buggify);
        for line in &on.trace.lines {
            if let Some(site) = line.split("buggify site=").nth(1) {
                fired.insert(site.split(' ').next().unwrap().to_string());
            }
        }
        let again = Sim::new(seed)
            .variant("fixed")
            .buggify(true)
            .run(&AmnesiacRestart)
            .unwrap();
        assert_eq!(again.hash(), on.hash(), "seed {seed} replays");
    }
    assert!(fired.contains("call-reply-delay"), "{fired:?}");
    // The plan file key: the generated plan written with `buggify = true` replays the run.
    let on = Sim::new(5)
        .variant("fixed")
        .buggify(true)
        .run(&AmnesiacRestart)
        .unwrap();
    let text = on.plan.to_toml().unwrap();
    assert!(
        text.starts_with("quiet_at_ms = 2400\nbuggify = true\n"),
        "{text}"
    );
    let dir = std::env::temp_dir().join(format!("groundhog-buggify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("plan.toml");
    std::fs::write(&path, text).unwrap();
    let from_file = Sim::new(5)
        .variant("fixed")
        .plan_file(&path)
        .run(&AmnesiacRestart)
        .unwrap();
    assert_eq!(from_file.hash(), on.hash());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Failure messages write pids as the docs and traces do (`<1.1.9>`), never in Rust's `Debug`
/// form (`Pid { node: 1, .. }`, `Some(..)`): the first failing seed of each flawed variant.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn failure_messages_write_pids_as_the_docs_do() {
    groundhog_sim::quiet_panics_in_runs();
    for scenario in groundhog_scenarios::catalogue().iter() {
        if !scenario.variants().contains(&"flawed") {
            continue;
        }
        let failed = (0..10).find_map(|seed| {
            let report = Sim::new(seed)
                .variant("flawed")
                .run(scenario.as_ref())
                .unwrap();
            match report.outcome {
                Outcome::Violated(v) => Some(v.message),
                _ => None,
            }
        });
        let Some(message) = failed else { continue };
        for debug in ["Pid {", "Some(", "incarnation:"] {
            assert!(
                !message.contains(debug),
                "{}: `{debug}` in the failure message: {message}",
                scenario.name()
            );
        }
    }
}
