//! Many seeds over worker threads, each run on its own fresh world; and [`Check`], the same for
//! users' own `#[test]`s.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Instant;

use serde::Serialize;

use crate::check::{check_determinism, Divergence};
use crate::coverage::{self, CoverageRow};
use crate::harness::{HarnessError, Outcome, Sim};
use crate::scenario::{lock, Scenario};
use crate::seeds::{SeedRange, SeedSet, Shard};
use crate::trace::TraceHash;

/// What to do with each seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run and judge invariants.
    Run,
    /// Run twice, judge invariants and compare hashes.
    RunAndCheckDeterminism,
    /// Run twice and compare hashes only (invariant failures are not counted).
    DeterminismOnly,
}

/// One seed's result.
#[derive(Debug, Clone, Serialize)]
pub struct SeedResult {
    pub scenario: String,
    pub variant: String,
    pub seed: u64,
    pub hash: TraceHash,
    pub outcome: Outcome,
    pub summary: String,
    pub repro: String,
    pub sim_nanos: u128,
    pub divergence: Option<Divergence>,
    /// Coverage points the run declared, and whether each was hit.
    #[serde(skip)]
    pub coverage: std::collections::BTreeMap<String, bool>,
}

impl SeedResult {
    pub fn failed(&self) -> bool {
        !self.outcome.passed()
    }
}

/// A sweep's totals. Failures and divergences are sorted by scenario, variant and seed.
#[derive(Debug, Clone, Serialize)]
pub struct SweepSummary {
    pub seeds_run: u64,
    /// Every failing run, counted; `failures` keeps the first [`KEPT_FAILURES`] of them.
    pub failed: u64,
    pub failures: Vec<SeedResult>,
    pub nondeterministic: Vec<SeedResult>,
    pub wall_secs: f64,
    pub sim_secs: f64,
    pub seeds_per_sec: f64,
    /// Simulated time over wall time.
    pub sim_wall_ratio: f64,
    pub stopped_early: bool,
    /// Per scenario, variant and coverage point, in how many seeds it was hit.
    pub coverage: Vec<CoverageRow>,
    /// Runs and failures of each scenario and variant.
    pub variants: Vec<VariantCount>,
}

/// One scenario and variant's share of a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantCount {
    pub scenario: String,
    pub variant: String,
    pub runs: u64,
    pub failed: u64,
}

impl SweepSummary {
    /// 0 all passed, 1 an invariant failed, 3 nondeterminism found.
    pub fn exit_code(&self) -> u8 {
        if !self.nondeterministic.is_empty() {
            3
        } else if self.failed > 0 {
            1
        } else {
            0
        }
    }

    pub fn line(&self) -> String {
        format!(
            "seeds={} failures={}{} nondeterministic={} wall={:.2}s seeds/s={:.1} sim={:.1}s sim:wall={:.0}x{}",
            self.seeds_run,
            self.failed,
            if self.failed > self.failures.len() as u64 {
                format!(" (first {} listed)", self.failures.len())
            } else {
                String::new()
            },
            self.nondeterministic.len(),
            self.wall_secs,
            self.seeds_per_sec,
            self.sim_secs,
            self.sim_wall_ratio,
            if self.stopped_early { " (stopped at first failure)" } else { "" }
        )
    }
}

/// A sweep over scenarios, variants and seeds.
pub struct Sweep<'a> {
    targets: Vec<(&'a dyn Scenario, String)>,
    seeds: SeedRange,
    shard: Option<Shard>,
    jobs: usize,
    mode: Mode,
    fail_fast: bool,
    progress: bool,
    template: Sim,
}

impl<'a> Sweep<'a> {
    /// `template` carries everything but the seed (variant is set per target).
    pub fn new(targets: Vec<(&'a dyn Scenario, String)>, seeds: SeedRange, template: Sim) -> Self {
        Sweep {
            targets,
            seeds,
            shard: None,
            jobs: default_jobs(),
            mode: Mode::Run,
            fail_fast: false,
            progress: false,
            template,
        }
    }

    pub fn shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    pub fn fail_fast(mut self, yes: bool) -> Self {
        self.fail_fast = yes;
        self
    }

    /// Shows a progress bar, but only when stderr is a terminal.
    pub fn progress(mut self, yes: bool) -> Self {
        self.progress = yes && std::io::stderr().is_terminal();
        self
    }

    /// Runs the sweep. `Err` for input that cannot make a run (checked on the first seed of each
    /// target before any worker starts).
    ///
    /// Memory is constant in the number of seeds: seeds are computed from their index, and only
    /// failures are kept (the first [`KEPT_FAILURES`]; the rest are counted).
    pub fn run(self) -> Result<SweepSummary, HarnessError> {
        let seeds = SeedSet::new(self.seeds.clone(), self.shard);
        seeds.check_not_empty().map_err(HarnessError::BadInput)?;
        for (scenario, variant) in &self.targets {
            let sim = self.template.clone().variant(variant.clone());
            sim.variant_for(*scenario)?;
            if let Some(seed) = seeds.first() {
                sim.seed(seed).resolve_plan(*scenario)?;
            }
        }
        let per_target = u128::from(seeds.len());
        let total = per_target * self.targets.len() as u128;
        let bar = if self.progress {
            let bar = indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
            bar.set_style(
                indicatif::ProgressStyle::with_template(&format!(
                    "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} runs ({} seeds x {} variants), \
                     {{msg}}, {{per_sec}}, eta {{eta}}",
                    seeds.len(),
                    self.targets.len()
                ))
                .expect("a fixed template")
                .progress_chars("=> "),
            );
            bar.set_prefix("sweep");
            bar.set_message("0 failed");
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let next: Mutex<u128> = Mutex::new(0);
        let stop = AtomicBool::new(false);
        let tally: Mutex<Tally> = Mutex::new(Tally::default());
        for (scenario, variant) in &self.targets {
            let points = scenario.setup().points_for(variant);
            lock(&tally)
                .coverage
                .expect(scenario.name(), variant, &points);
        }
        let first_error: Mutex<Option<HarnessError>> = Mutex::new(None);
        let started = Instant::now();
        let workers = u128::from(self.jobs.clamp(1, MAX_JOBS) as u64).min(total.max(1));
        thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let index = {
                            let mut next = lock(&next);
                            if *next >= total {
                                break;
                            }
                            *next += 1;
                            *next - 1
                        };
                        let t = (index / per_target) as usize;
                        let seed = seeds.nth((index % per_target) as u64);
                        let (scenario, variant) = &self.targets[t];
                        match self.one(*scenario, variant, seed) {
                            Ok(r) => {
                                let bad = (self.mode != Mode::DeterminismOnly && r.failed())
                                    || r.divergence.is_some();
                                if bad && self.fail_fast {
                                    stop.store(true, Ordering::Relaxed);
                                }
                                let mut tally = lock(&tally);
                                if bad && tally.failed < LIVE_FAILURES {
                                    // Shown as found, above the bar, not held back to the end.
                                    bar.println(format!("{}\nrepro: {}", r.summary, r.repro));
                                }
                                tally.add(r, self.mode);
                                if bad {
                                    bar.set_message(format!("{} failed", tally.failed));
                                }
                            }
                            Err(e) => {
                                lock(&first_error).get_or_insert(e);
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        bar.inc(1);
                    }
                });
            }
        });
        bar.finish_and_clear();
        if let Some(e) = lock(&first_error).take() {
            return Err(e);
        }
        let wall = started.elapsed().as_secs_f64();
        let tally = std::mem::take(&mut *lock(&tally));
        let by_seed = |a: &SeedResult, b: &SeedResult| {
            (&a.scenario, &a.variant, a.seed).cmp(&(&b.scenario, &b.variant, b.seed))
        };
        let (mut failures, mut nondeterministic) = (tally.failures, tally.nondeterministic);
        failures.sort_by(by_seed);
        nondeterministic.sort_by(by_seed);
        let sim_secs = tally.sim_nanos as f64 / 1e9;
        Ok(SweepSummary {
            seeds_run: tally.runs,
            failed: tally.failed,
            failures,
            nondeterministic,
            wall_secs: wall,
            sim_secs,
            seeds_per_sec: tally.runs as f64 / wall.max(1e-9),
            sim_wall_ratio: sim_secs / wall.max(1e-9),
            stopped_early: stop.load(Ordering::Relaxed) && u128::from(tally.runs) < total,
            coverage: tally.coverage.rows(),
            variants: tally
                .variants
                .into_iter()
                .map(|((scenario, variant), (runs, failed))| VariantCount {
                    scenario,
                    variant,
                    runs,
                    failed,
                })
                .collect(),
        })
    }

    fn one(
        &self,
        scenario: &dyn Scenario,
        variant: &str,
        seed: u64,
    ) -> Result<SeedResult, HarnessError> {
        let sim = self.template.clone().variant(variant).seed(seed);
        let (report, divergence) = match self.mode {
            Mode::Run => (sim.keep_trace(false).run(scenario)?, None),
            Mode::RunAndCheckDeterminism | Mode::DeterminismOnly => {
                check_determinism(&sim, scenario)?
            }
        };
        Ok(SeedResult {
            scenario: report.scenario.clone(),
            variant: report.variant.clone(),
            seed,
            hash: report.hash(),
            summary: report.summary(),
            repro: report.repro(),
            sim_nanos: report.sim_time.as_nanos(),
            outcome: report.outcome,
            divergence,
            coverage: report.coverage,
        })
    }
}

/// At most this many failures (and as many divergences) are kept with their summaries and repro
/// lines; past it they are only counted, so a sweep whose every seed fails stays in constant memory.
pub const KEPT_FAILURES: usize = 1000;

/// With a progress bar (a terminal), the first this many failures are printed as they are found.
const LIVE_FAILURES: u64 = 10;

/// The most worker threads a sweep starts. Each runs its own simulated world on an OS thread, so
/// more workers than cores only add memory; this bound keeps `--jobs 100000` from exhausting the
/// machine's threads (the CLI refuses more than this with a readable error).
pub const MAX_JOBS: usize = 256;

/// What the workers have found so far.
#[derive(Default)]
struct Tally {
    coverage: coverage::Tally,
    variants: std::collections::BTreeMap<(String, String), (u64, u64)>,
    runs: u64,
    failed: u64,
    sim_nanos: u128,
    failures: Vec<SeedResult>,
    nondeterministic: Vec<SeedResult>,
}

impl Tally {
    fn add(&mut self, r: SeedResult, mode: Mode) {
        self.runs += 1;
        self.coverage.add(&r.scenario, &r.variant, &r.coverage);
        let counts = self
            .variants
            .entry((r.scenario.clone(), r.variant.clone()))
            .or_insert((0, 0));
        counts.0 += 1;
        counts.1 += u64::from(mode != Mode::DeterminismOnly && r.failed());
        self.sim_nanos += r.sim_nanos;
        if r.divergence.is_some() && self.nondeterministic.len() < KEPT_FAILURES {
            self.nondeterministic.push(r.clone());
        }
        if mode != Mode::DeterminismOnly && r.failed() {
            self.failed += 1;
            if self.failures.len() < KEPT_FAILURES {
                self.failures.push(r);
            }
        }
    }
}

fn default_jobs() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// A `#[test]` that sweeps `seeds` of a scenario's `variant`, each seed run twice (determinism),
/// and fails with the repro line of every failing seed. In the real build, where there is no
/// simulation, the test is marked ignored rather than passing without running.
///
/// ```ignore
/// groundhog_sim::scenario_test!(holds_for_200_seeds, MyScenario, "fixed", 0..200);
/// ```
#[macro_export]
macro_rules! scenario_test {
    ($name:ident, $scenario:expr, $variant:expr, $seeds:expr) => {
        #[test]
        #[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
        fn $name() {
            $crate::Check::new(&$scenario)
                .program(env!("CARGO_PKG_NAME"))
                .variant($variant)
                .seeds($seeds)
                .determinism(true)
                .run();
        }
    };
}

/// Seeded checks inside a user's `#[test]`: panics with the repro line of every failure.
///
/// ```no_run
/// # fn demo(scenario: &dyn groundhog_sim::Scenario) {
/// groundhog_sim::Check::new(scenario).variant("fixed").seeds(0..500).run();
/// # }
/// ```
pub struct Check<'a> {
    scenario: &'a dyn Scenario,
    sim: Sim,
    seeds: SeedRange,
    jobs: usize,
    determinism: bool,
}

impl<'a> Check<'a> {
    /// The binary the repro lines name (default `groundhog`; a crate of one's own names its own,
    /// as `scenario_test!` does with the package's name).
    pub fn program(mut self, name: &str) -> Self {
        self.sim = self.sim.program(name);
        self
    }

    pub fn new(scenario: &'a dyn Scenario) -> Self {
        Check {
            scenario,
            sim: Sim::new(0),
            seeds: SeedRange(0..100),
            jobs: default_jobs(),
            determinism: false,
        }
    }

    pub fn variant(mut self, variant: &str) -> Self {
        self.sim = self.sim.variant(variant);
        self
    }

    pub fn seeds(mut self, seeds: std::ops::Range<u64>) -> Self {
        self.seeds = SeedRange(seeds);
        self
    }

    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs;
        self
    }

    /// Also runs every seed twice and fails on differing traces.
    pub fn determinism(mut self, yes: bool) -> Self {
        self.determinism = yes;
        self
    }

    /// Customises each run (intensity, plan, nodes, ...).
    pub fn sim(mut self, f: impl FnOnce(Sim) -> Sim) -> Self {
        self.sim = f(self.sim);
        self
    }

    #[track_caller]
    fn sweep(&self, fail_fast: bool) -> SweepSummary {
        let variant = self
            .sim
            .variant_for(self.scenario)
            .unwrap_or_else(|e| panic!("{e}")); // a bad setup: not the test's line
        let target = vec![(self.scenario, variant)];
        let mode = if self.determinism {
            Mode::RunAndCheckDeterminism
        } else {
            Mode::Run
        };
        Sweep::new(target, self.seeds.clone(), self.sim.clone())
            .jobs(self.jobs)
            .mode(mode)
            .fail_fast(fail_fast)
            .run()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Panics unless every seed passes (and, with [`Check::determinism`], replays identically).
    /// The panic points at the caller's line, not at this crate.
    #[track_caller]
    pub fn run(self) -> SweepSummary {
        let summary = self.sweep(false);
        let mut problems = Vec::new();
        for r in &summary.nondeterministic {
            let d = r.divergence.as_ref().expect("listed as nondeterministic");
            problems.push(format!(
                "nondeterministic: {}\n{}\nrepro: {}",
                r.summary,
                d.explain(),
                r.repro
            ));
        }
        for r in &summary.failures {
            problems.push(format!("{}\nrepro: {}", r.summary, r.repro));
        }
        let variant = self.sim.variant_for(self.scenario).unwrap_or_default();
        let required = self.scenario.setup().points_for(&variant);
        for row in summary.coverage.iter().filter(|r| r.seeds_hit == 0) {
            if required.contains(&row.point) {
                problems.push(format!(
                    "coverage point `{}` of {} {} was never hit in seeds {}",
                    row.point, row.scenario, row.variant, self.seeds
                ));
            }
        }
        assert!(
            problems.is_empty(),
            "{} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        );
        summary
    }

    /// Panics unless some seed fails; returns the first failing seed's result.
    #[track_caller]
    pub fn expect_failure(self) -> SeedResult {
        let summary = self.sweep(true);
        match summary.failures.into_iter().next() {
            Some(first) => first,
            None => panic!(
                "no seed in {} failed {} (variant {:?}): the simulation did not catch the flaw",
                self.seeds,
                self.scenario.name(),
                self.sim.variant_for(self.scenario).ok()
            ),
        }
    }
}
