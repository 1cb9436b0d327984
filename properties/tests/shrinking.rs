//! A failing generated plan shrinks to a minimal one, written to a file, whose repro line replays
//! the same failure through the CLI.

use groundhog_scenarios::{catalogue, PingPong};
use proptest::test_runner::{Config, TestError, TestRunner};

use crate::{config, run_with_plan, strategies};

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_failing_plan_shrinks_and_its_repro_line_replays_it() {
    // On a clean network, flawed ping-pong only double-delivers when the plan loses or delays a
    // pong; proptest finds such a plan and shrinks it.
    // This test expects a failure: nothing to persist as a regression.
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..config(200, file!())
    });
    let strategy = strategies::plan_on_clean_net(3, 3_000, 10);
    let outcome = runner.run(&strategy, |plan| {
        let (report, repro) = run_with_plan(&PingPong, "flawed", 7, &plan);
        proptest::prop_assert!(
            repro.is_none(),
            "{}\nrepro: {}\n",
            report.summary(),
            repro.unwrap_or_default()
        );
        Ok(())
    });
    let Err(TestError::Fail(message, minimal)) = outcome else {
        panic!("no plan broke flawed ping-pong: {outcome:?}");
    };
    assert!(
        minimal.faults.len() <= 2,
        "shrunk to {} faults: {minimal:#?}",
        minimal.faults.len()
    );
    let message = message.to_string();
    let repro = message
        .lines()
        .find_map(|l| l.strip_prefix("repro: "))
        .expect("the failure names its repro line");
    let (_, expected) = run_with_plan(&PingPong, "flawed", 7, &minimal);
    assert_eq!(
        Some(repro.to_string()),
        expected,
        "the message is the minimal plan's"
    );

    // The repro line, run through the CLI, fails the same way with the same hash.
    let args: Vec<&str> = repro.split_whitespace().collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = groundhog_sim::cli::run(&catalogue(), &args, &mut out, &mut err);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, groundhog_sim::cli::EXIT_FAIL, "{out}");
    let summary = message.lines().next().unwrap();
    let hash = |s: &str| {
        s.split_whitespace()
            .find(|f| f.starts_with("hash="))
            .map(str::to_string)
    };
    let replayed = out
        .lines()
        .find(|l| l.starts_with("ping-pong variant="))
        .unwrap();
    assert_eq!(hash(replayed), hash(summary));
    assert!(
        replayed.contains("FAIL invariant=delivered-once"),
        "{replayed}"
    );
}
