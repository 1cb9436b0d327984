use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::{Breaker, BreakerConfig, BreakerError, Circuit, Permit, State};
use crate::rt::{self, Duration};
use crate::services::Problems;
use crate::{Ctx, Event, ExitReason, Node, Pid};

const FAILURES: u32 = 3;
const WINDOW: Duration = Duration::from_millis(100);
const OPEN_FOR: Duration = Duration::from_millis(150);
const TRIALS: u32 = 2;

fn config() -> BreakerConfig {
    BreakerConfig {
        failures: FAILURES,
        window: WINDOW,
        open_for: OPEN_FOR,
        trials: TRIALS,
    }
}

/// The reference: a plain state machine written apart from `Circuit`. It keeps every failure
/// since the breaker last closed and counts the recent ones; a call's result counts only if
/// no change of state happened since it was let through (the `era` it was admitted in).
#[derive(Debug, Clone)]
struct Model {
    state: State,
    failures: Vec<Duration>,
    opened_at: Duration,
    trials_out: u32,
    trials_ok: u32,
    era: u64,
    changes: Vec<(State, State)>,
    refused: u64,
}

/// What the model says of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Admitted { trial: bool },
    Open { retry_after: Duration },
    Trials,
}

impl Model {
    fn new() -> Model {
        Model {
            state: State::Closed,
            failures: Vec::new(),
            opened_at: Duration::ZERO,
            trials_out: 0,
            trials_ok: 0,
            era: 0,
            changes: Vec::new(),
            refused: 0,
        }
    }

    fn change(&mut self, to: State, now: Duration) {
        self.changes.push((self.state, to));
        self.state = to;
        self.era += 1;
        match to {
            State::Closed => self.failures.clear(),
            State::Open => self.opened_at = now,
            State::HalfOpen => {
                self.trials_out = 0;
                self.trials_ok = 0;
            }
        }
    }

    /// Open long enough: half-open, whether or not anyone asked.
    fn due(&self, now: Duration) -> bool {
        self.state == State::Open && now >= self.opened_at + OPEN_FOR
    }

    fn tick(&mut self, now: Duration) {
        if self.due(now) {
            self.change(State::HalfOpen, now);
        }
    }

    fn allow(&mut self, now: Duration) -> Decision {
        self.tick(now);
        let d = match self.state {
            State::Closed => Decision::Admitted { trial: false },
            State::Open => Decision::Open {
                retry_after: self.opened_at + OPEN_FOR - now,
            },
            State::HalfOpen if self.trials_out < TRIALS => {
                self.trials_out += 1;
                Decision::Admitted { trial: true }
            }
            State::HalfOpen => Decision::Trials,
        };
        if !matches!(d, Decision::Admitted { .. }) {
            self.refused += 1;
        }
        d
    }

    fn report(&mut self, era: u64, ok: bool, now: Duration) {
        self.tick(now);
        if era != self.era {
            return;
        }
        match (self.state, ok) {
            (State::Closed, false) => {
                self.failures.push(now);
                let recent = self.failures.iter().filter(|&&t| now - t < WINDOW).count();
                if recent >= FAILURES as usize {
                    self.change(State::Open, now);
                }
            }
            (State::HalfOpen, true) => {
                self.trials_ok += 1;
                if self.trials_ok == TRIALS {
                    self.change(State::Closed, now);
                }
            }
            (State::HalfOpen, false) => self.change(State::Open, now),
            _ => {}
        }
    }

    fn state_at(&self, now: Duration) -> State {
        if self.due(now) {
            State::HalfOpen
        } else {
            self.state
        }
    }

    /// (opened, half-opened, closed) changes so far.
    fn counts(&self) -> (u64, u64, u64) {
        let n = |s: State| self.changes.iter().filter(|c| c.1 == s).count() as u64;
        (n(State::Open), n(State::HalfOpen), n(State::Closed))
    }
}

#[derive(Debug, Clone)]
enum Op {
    Allow,
    /// Report the `k`-th outstanding call (modulo how many there are).
    Succeed(usize),
    Fail(usize),
    /// The caller drops its permit without a report.
    Abandon(usize),
    Wait(u64),
    /// The breaker's process is killed; its supervisor restarts it.
    Restart,
}

/// Operations; without a process, `Abandon` is a failure and `Restart` does nothing.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => Just(Op::Allow),
        3 => (0usize..4).prop_map(Op::Succeed),
        3 => (0usize..4).prop_map(Op::Fail),
        1 => (0usize..4).prop_map(Op::Abandon),
        3 => (0u64..120).prop_map(Op::Wait),
        1 => Just(Op::Restart),
    ];
    prop::collection::vec(op, 1..120)
}

/// A deterministic runner: the same cases on every run, nothing persisted.
fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

fn decision(got: &Result<super::Ticket, BreakerError>) -> Decision {
    match got {
        Ok(t) => Decision::Admitted {
            trial: t.is_trial(),
        },
        Err(BreakerError::Open { retry_after }) => Decision::Open {
            retry_after: *retry_after,
        },
        Err(BreakerError::Trials { .. }) => Decision::Trials,
    }
}

/// The state machine without a process: every decision, state and change of state is the
/// model's, and the closed state never remembers more than `failures` failures.
#[test]
fn the_circuit_matches_the_model() {
    // Cases that reached each change at least once: (opened, half-opened, closed again).
    let reached = std::cell::Cell::new((0, 0, 0));
    runner(512)
        .run(&ops(), |ops| {
            let mut circuit = Circuit::new(config());
            let mut model = Model::new();
            let mut out: Vec<(super::Ticket, u64)> = Vec::new();
            let mut now = Duration::ZERO;
            for op in ops {
                match op {
                    Op::Allow => {
                        let got = circuit.allow(now);
                        let want = model.allow(now);
                        prop_assert_eq!(decision(&got), want, "allow at {:?}", now);
                        if let Ok(t) = got {
                            out.push((t, model.era));
                        }
                    }
                    Op::Succeed(k) | Op::Fail(k) | Op::Abandon(k) if !out.is_empty() => {
                        let (t, era) = out.remove(k % out.len());
                        let ok = matches!(op, Op::Succeed(_));
                        circuit.record(t, ok, now);
                        model.report(era, ok, now);
                    }
                    Op::Wait(ms) => now += Duration::from_millis(ms),
                    _ => {}
                }
                prop_assert_eq!(circuit.state(now), model.state_at(now));
                let changes: Vec<(State, State)> = circuit
                    .take_transitions()
                    .iter()
                    .map(|t| (t.from, t.to))
                    .collect();
                let n = changes.len();
                prop_assert_eq!(&changes[..], &model.changes[model.changes.len() - n..]);
                let s = circuit.stats();
                prop_assert_eq!((s.opened, s.half_opened, s.closed), model.counts());
                prop_assert_eq!(s.refused, model.refused);
                prop_assert!(circuit.remembered() <= FAILURES as usize);
            }
            let (o, h, c) = model.counts();
            let r = reached.get();
            reached.set((
                r.0 + (o > 0) as u32,
                r.1 + (h > 0) as u32,
                r.2 + (c > 0) as u32,
            ));
            Ok(())
        })
        .unwrap();
    let (o, h, c) = reached.get();
    assert!(
        o > 100 && h > 50 && c > 20,
        "cases reaching open, half-open, closed: {o} {h} {c}"
    );
}

#[test]
fn an_invalid_configuration_is_refused_with_every_problem() {
    let bad = BreakerConfig {
        failures: 0,
        window: Duration::ZERO,
        open_for: Duration::ZERO,
        trials: 0,
    };
    assert_eq!(Problems::of(&bad).len(), 4);
    assert_eq!(Problems::of(&config()).len(), 0);
}

/// Kills the breaker's process and returns once its supervisor has started the next one.
async fn restart_process(node: &Node, sup: Pid) {
    let (tx, rx) = futures::channel::oneshot::channel();
    let n = node.clone();
    node.spawn("killer", move |mut ctx: Ctx<()>| async move {
        let old = n
            .supervisor_child(sup, "breaker")
            .expect("the process runs");
        let m = ctx.monitor(old);
        ctx.exit(old, ExitReason::Kill);
        while !matches!(ctx.recv().await, Event::Down { reference, .. } if reference == m) {}
        // The supervisor handles the exit after this Down: ask it, behind the exit.
        let children = crate::supervisor::which_children(&ctx, sup, Duration::from_secs(1))
            .await
            .unwrap();
        let new = children[0].1.expect("restarted");
        assert_ne!(new, old);
        let _ = tx.send(());
        ExitReason::Normal
    });
    rx.await.unwrap();
}

/// The breaker with its process, in simulated worlds: every decision and state is the model's
/// after every step, also across kills of the breaker's process (the state is kept), a dropped
/// permit counts as a failure, and each change of state is made once and on time: whenever the
/// open state ended at least 1 ms ago, the change to half-open has been made (by the process's
/// timer, a restarted process's included, if no call made it first).
#[test]
fn the_breaker_matches_the_model_across_restarts_of_its_process() {
    if !rt::SIMULATED {
        return;
    }
    // Cases in which the process was restarted while the breaker was open, and cases in which
    // the breaker closed again after trials.
    let reached = std::sync::Mutex::new((0, 0));
    runner(64)
        .run(&ops(), |ops| {
            let reached = &reached;
            let world = rt::World::new(3, &rt::NetConfig::default(), None).unwrap();
            world.block_on(async move {
                let node = Node::local(0, 1);
                let (breaker, sup) = Breaker::start(&node, "breaker-sup", None, config())
                    .await
                    .unwrap();
                let mut model = Model::new();
                let mut out: Vec<(Permit, u64)> = Vec::new();
                let mut restarts = 0;
                let mut restarted_open = false;
                for op in ops {
                    match op {
                        Op::Allow => {
                            let now = breaker.now();
                            let got = breaker.allow();
                            let want = model.allow(now);
                            let seen = match &got {
                                Ok(p) => Decision::Admitted {
                                    trial: p.is_trial(),
                                },
                                Err(BreakerError::Open { retry_after }) => Decision::Open {
                                    retry_after: *retry_after,
                                },
                                Err(BreakerError::Trials { .. }) => Decision::Trials,
                            };
                            prop_assert_eq!(seen, want, "allow at {:?}", now);
                            if let Ok(p) = got {
                                out.push((p, model.era));
                            }
                        }
                        Op::Succeed(k) | Op::Fail(k) | Op::Abandon(k) if !out.is_empty() => {
                            let (p, era) = out.remove(k % out.len());
                            let now = breaker.now();
                            match op {
                                Op::Succeed(_) => p.success(),
                                Op::Fail(_) => p.failure(),
                                _ => drop(p),
                            }
                            model.report(era, matches!(op, Op::Succeed(_)), now);
                        }
                        Op::Wait(ms) => rt::sleep(Duration::from_millis(ms)).await,
                        // The supervisor's intensity (3 restarts in 5 s) allows three.
                        Op::Restart if restarts < 3 => {
                            restarted_open |= model.state_at(breaker.now()) == State::Open;
                            restart_process(&node, sup).await;
                            restarts += 1;
                        }
                        _ => {}
                    }
                    let now = breaker.now();
                    prop_assert_eq!(breaker.state(), model.state_at(now));
                    let s = breaker.stats();
                    let ended_a_while_ago = model.state == State::Open
                        && now >= model.opened_at + OPEN_FOR + Duration::from_millis(1);
                    let mut want = model.clone();
                    if ended_a_while_ago {
                        want.tick(now);
                    }
                    if ended_a_while_ago || !model.due(now) {
                        prop_assert_eq!(
                            (s.opened, s.half_opened, s.closed),
                            want.counts(),
                            "changes at {:?} after {} restarts",
                            now,
                            restarts
                        );
                    }
                    prop_assert_eq!(s.refused, model.refused);
                }
                let mut r = reached.lock().unwrap();
                r.0 += restarted_open as u32;
                r.1 += (model.counts().2 > 0) as u32;
                Ok(())
            })
        })
        .unwrap();
    let (restarted_open, closed) = *reached.lock().unwrap();
    assert!(
        restarted_open >= 5 && closed >= 5,
        "cases restarted while open: {restarted_open}, closed after trials: {closed}"
    );
}

/// A walk through every state with typed refusals (timed, so simulation only), and a process
/// restarted while the breaker is open still makes the change to half-open on time.
#[rt::test]
async fn an_open_breaker_refuses_then_trials_close_it_across_a_restart() {
    let node = Node::local(0, 1);
    // The real build's clock runs on its own: there the breaker stays open for the whole test.
    let config = if rt::SIMULATED {
        config()
    } else {
        BreakerConfig {
            window: Duration::from_secs(3_600),
            open_for: Duration::from_secs(3_600),
            ..config()
        }
    };
    let open_for = config.open_for;
    let (breaker, sup) = Breaker::start(&node, "breaker-sup", None, config)
        .await
        .unwrap();
    let failing: Result<(), &str> = breaker.call(async { Err("down") }).await.map_err(|_| "");
    assert!(failing.is_err());
    for _ in 1..FAILURES {
        breaker.allow().unwrap().failure();
    }
    assert_eq!(breaker.state(), State::Open);
    assert!(matches!(
        breaker.allow(),
        Err(BreakerError::Open { retry_after }) if retry_after <= open_for
    ));
    let refused = breaker.call(async { Ok::<_, ()>(1) }).await;
    assert!(matches!(
        refused,
        Err(super::Guarded::Refused(BreakerError::Open { .. }))
    ));
    restart_process(&node, sup).await;
    assert_eq!(breaker.state(), State::Open, "kept across the restart");
    if !rt::SIMULATED {
        return;
    }
    rt::sleep(OPEN_FOR + Duration::from_millis(1)).await;
    let s = breaker.stats();
    assert_eq!(
        (s.opened, s.half_opened),
        (1, 1),
        "the restarted process made the change on time"
    );
    let trials: Vec<Permit> = (0..TRIALS).map(|_| breaker.allow().unwrap()).collect();
    assert!(matches!(
        breaker.allow(),
        Err(BreakerError::Trials { trials: TRIALS })
    ));
    for t in trials {
        assert!(t.is_trial());
        t.success();
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.stats().closed, 1);
}
