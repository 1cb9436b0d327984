//! `groundhog prove`: the catalogue is proven, and a flaw the simulation misses (or a fixed variant
//! that fails) is reported as not proven, never quietly passed.

use groundhog_sim::{cli, BoxFuture, Catalogue, Driver, FaultMix, Scenario, Setup, Violation};

use crate::{groundhog, stdout};

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn prove_all_proves_the_catalogue() {
    // Small numbers keep the debug-build test quick; CI runs the release binary with defaults.
    let out = groundhog(&[
        "prove",
        "--all",
        "--fixed-seeds",
        "40",
        "--ranges",
        "4",
        "--check-seeds",
        "4",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for scenario in groundhog_scenarios::catalogue().iter() {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("{} ", scenario.name())))
            .unwrap_or_else(|| panic!("no row for {}:\n{text}", scenario.name()));
        assert!(row.ends_with("proven") && row.contains("40/40"), "{row}");
        assert!(
            text.contains(&format!(
                "  repro: groundhog replay {} --variant flawed --seed",
                scenario.name()
            )),
            "{text}"
        );
    }
}

/// Test only: `flawed` fails on the seeds listed, `fixed` on the others listed.
struct Rigged {
    flawed_fails: fn(u64) -> bool,
    fixed_fails: fn(u64) -> bool,
}

impl Scenario for Rigged {
    fn name(&self) -> &'static str {
        "rigged"
    }
    fn about(&self) -> &'static str {
        "test only: fails on chosen seeds"
    }
    fn variants(&self) -> &'static [&'static str] {
        &["fixed", "flawed"]
    }
    fn setup(&self) -> Setup {
        let quiet = FaultMix::new(vec![], 0.0, 10);
        Setup::new(1, quiet).seed_budget(5)
    }
    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        let fails = if ctx.variant() == "flawed" {
            (self.flawed_fails)(ctx.seed())
        } else {
            (self.fixed_fails)(ctx.seed())
        };
        Box::pin(
            async move { ctx.check("rigged", !fails, || "this seed is rigged to fail".into()) },
        )
    }
}

fn prove_rigged(rigged: Rigged) -> (u8, String) {
    let catalogue = Catalogue::new().with(rigged);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::run(
        &catalogue,
        [
            "groundhog",
            "prove",
            "rigged",
            "--fixed-seeds",
            "20",
            "--ranges",
            "3",
            "--range-width",
            "10",
            "--check-seeds",
            "2",
        ],
        &mut out,
        &mut err,
    );
    (code, String::from_utf8(out).unwrap())
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn seeds_to_failure_are_counted_per_range() {
    // Ranges start at 0, 10, 20: the first failures are seeds 2, 10 and 24.
    let (code, text) = prove_rigged(Rigged {
        flawed_fails: |s| matches!(s, 2 | 10 | 24 | 25),
        fixed_fails: |_| false,
    });
    assert_eq!(code, cli::EXIT_PASS, "{text}");
    // Tries per range: 3, 1, 5 -> median 3, worst 5.
    let row = text.lines().find(|l| l.starts_with("rigged ")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["5", "3.0", "5"], "{row}");
    assert!(text.contains("repro: groundhog replay rigged --variant flawed --seed 2"));
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_flaw_missed_within_budget_is_not_proven() {
    // The range starting at 10 has no failure in its first 5 seeds (budget 5).
    let (code, text) = prove_rigged(Rigged {
        flawed_fails: |s| s == 0 || s == 16 || s == 20,
        fixed_fails: |_| false,
    });
    assert_eq!(code, cli::EXIT_FAIL, "{text}");
    assert!(text.contains("NOT PROVEN"), "{text}");
    assert!(
        text.contains("rigged: MISSED: no failure in seeds 10..15 (budget 5)"),
        "{text}"
    );
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_failing_fixed_seed_is_not_proven_and_prints_its_repro() {
    let (code, text) = prove_rigged(Rigged {
        flawed_fails: |_| true,
        fixed_fails: |s| s == 13,
    });
    assert_eq!(code, cli::EXIT_FAIL, "{text}");
    assert!(text.contains("19/20"), "{text}");
    assert!(
        text.contains("rigged: FIXED FAILED rigged variant=fixed seed=13"),
        "{text}"
    );
    assert!(
        text.contains("repro: groundhog replay rigged --variant fixed --seed 13"),
        "{text}"
    );
}

#[test]
fn prove_rejects_bad_input_with_one_line() {
    for (args, expect) in [
        (vec!["prove"], "name a scenario or pass --all"),
        (vec!["prove", "nope"], "unknown scenario"),
        (vec!["prove", "ping-pong", "--ranges", "0"], "--ranges"),
        (vec!["prove", "ping-pong", "--jobs", "0"], "--jobs"),
    ] {
        let mut full = vec!["prove"];
        full.extend(&args[1..]);
        let out = groundhog(&full);
        let err = crate::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}
