//! The determinism check: it passes on the catalogue and catches a scenario that is not.

use std::sync::atomic::{AtomicU64, Ordering};

use groundhog_sim::{cli, BoxFuture, Catalogue, Driver, FaultMix, Scenario, Setup, Violation};

use crate::{groundhog, stdout};

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn the_whole_catalogue_is_deterministic() {
    // A debug build: few seeds here; CI also runs `check --all --seeds 0..200` and `prove --all`
    // with the release binary.
    let out = groundhog(&["check", "--all", "--seeds", "0..30"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let runs: usize = groundhog_scenarios::catalogue()
        .iter()
        .map(|s| s.variants().len() * 30)
        .sum();
    assert!(
        stdout(&out).contains(&format!("seeds={runs} failures=0 nondeterministic=0")),
        "{}",
        stdout(&out)
    );
}

/// Deliberately breaks the rules: its trace carries a value that changes on every run.
static RUNS: AtomicU64 = AtomicU64::new(0);

struct Nondeterministic;

impl Scenario for Nondeterministic {
    fn name(&self) -> &'static str {
        "nondeterministic"
    }
    fn about(&self) -> &'static str {
        "test only: reads state from outside the simulation"
    }
    fn variants(&self) -> &'static [&'static str] {
        &["only"]
    }
    fn setup(&self) -> Setup {
        Setup::new(1, FaultMix::new(vec![], 0.0, 10))
    }
    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        Box::pin(async move {
            ctx.note("same every time");
            ctx.note(&format!("run {}", RUNS.fetch_add(1, Ordering::Relaxed)));
            Ok(())
        })
    }
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn nondeterminism_exits_3_and_shows_the_first_diverging_events() {
    let catalogue = Catalogue::new().with(Nondeterministic);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::run(
        &catalogue,
        ["groundhog", "check", "nondeterministic", "--seeds", "0..3"],
        &mut out,
        &mut err,
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, cli::EXIT_NONDETERMINISM, "{text}");
    assert_eq!(
        text.matches("NONDETERMINISTIC nondeterministic variant=only")
            .count(),
        3
    );
    assert!(text.contains("first run  (hash"), "{text}");
    assert!(
        text.contains(", event #2: 0.000000000 -- note msg=\"run "),
        "{text}"
    );
    assert!(text.contains("repro: groundhog replay nondeterministic --variant only --seed 0"));

    // The same flag on sweep.
    let mut out = Vec::new();
    let code = cli::run(
        &catalogue,
        [
            "groundhog",
            "sweep",
            "--all",
            "--seeds",
            "0..2",
            "--check-determinism",
        ],
        &mut out,
        &mut err,
    );
    assert_eq!(code, cli::EXIT_NONDETERMINISM);
}
