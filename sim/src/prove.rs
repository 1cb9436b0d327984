//! Proving a catalogue: every flawed variant is caught within its seed budget, every fixed variant
//! passes every seed tried, and both replay identically.
//!
//! For each scenario with `fixed` and `flawed` variants, [`Prove`] measures:
//! - **Seeds to first failure** of `flawed`, searched from the start of each of `ranges` seed
//!   ranges (0, W, 2W, ... where W is the range width, at least the budget). A range whose first
//!   `budget` seeds all pass means the simulation missed the flaw: the proof fails.
//! - **Fixed seeds passed**: `fixed` over seeds `0..fixed_seeds`, with the seconds each 100 took.
//! - **Determinism** of both variants over the first `check_seeds` seeds (two runs each).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Instant;

use serde::Serialize;

use crate::harness::{HarnessError, Sim};
use crate::scenario::{lock, Scenario};
use crate::seeds::SeedRange;
use crate::sweep::{Mode, Sweep, SweepSummary};

/// The variant names a provable scenario has.
pub const FIXED: &str = "fixed";
pub const FLAWED: &str = "flawed";

/// How hard to try.
#[derive(Debug, Clone)]
pub struct Prove {
    /// Seeds of `fixed` that must all pass, from 0.
    pub fixed_seeds: u64,
    /// Seed ranges in which `flawed` must fail within its budget.
    pub ranges: u64,
    /// Width of each range (raised to the scenario's budget if smaller).
    pub range_width: u64,
    /// Seeds of each variant run twice for the determinism check, from 0.
    pub check_seeds: u64,
    pub jobs: usize,
    /// Runs carry everything but seed and variant from here (plan, intensity, nodes...).
    pub template: Sim,
}

impl Default for Prove {
    fn default() -> Self {
        Prove {
            fixed_seeds: 500,
            ranges: 20,
            range_width: 100,
            check_seeds: 50,
            jobs: thread::available_parallelism().map_or(1, |n| n.get()),
            template: Sim::new(0),
        }
    }
}

/// The first failure found in one seed range.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub seed: u64,
    /// Seeds run in the range up to and including the failing one.
    pub seeds_tried: u64,
    pub wall_secs: f64,
    pub summary: String,
    pub repro: String,
}

/// One range's search for the flaw.
#[derive(Debug, Clone, Serialize)]
pub struct RangeSearch {
    pub start: u64,
    /// `None`: no seed of the first `budget` failed.
    pub found: Option<Found>,
}

/// Everything measured for one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Proof {
    pub scenario: String,
    pub budget: u64,
    pub ranges: Vec<RangeSearch>,
    pub fixed: SweepSummary,
    pub determinism: SweepSummary,
}

impl Proof {
    /// Whether every range caught the flaw within the budget.
    pub fn flaw_caught(&self) -> bool {
        self.ranges.iter().all(|r| r.found.is_some())
    }

    /// Median over ranges of seeds to the first failure (missed ranges count as budget + 1).
    pub fn median_seeds_to_failure(&self) -> f64 {
        let mut tries: Vec<u64> = self
            .ranges
            .iter()
            .map(|r| r.found.as_ref().map_or(self.budget + 1, |f| f.seeds_tried))
            .collect();
        median(&mut tries)
    }

    /// The largest number of seeds any range needed (`None` if one missed).
    pub fn worst_seeds_to_failure(&self) -> Option<u64> {
        self.ranges
            .iter()
            .map(|r| r.found.as_ref().map(|f| f.seeds_tried))
            .try_fold(0, |worst, t| t.map(|t| worst.max(t)))
    }

    /// Median wall time to the first failure, in seconds, over the ranges that found it.
    pub fn median_secs_to_failure(&self) -> f64 {
        let mut secs: Vec<f64> = self
            .ranges
            .iter()
            .filter_map(|r| r.found.as_ref().map(|f| f.wall_secs))
            .collect();
        secs.sort_by(f64::total_cmp);
        match secs.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => secs[n / 2],
            n => (secs[n / 2 - 1] + secs[n / 2]) / 2.0,
        }
    }

    /// The first failure of the first range: the seed the catalogue documents.
    pub fn first_failure(&self) -> Option<&Found> {
        self.ranges.first().and_then(|r| r.found.as_ref())
    }

    /// Wall seconds per 100 seeds of the fixed variant.
    pub fn fixed_secs_per_100(&self) -> f64 {
        self.fixed.wall_secs / (self.fixed.seeds_run.max(1) as f64) * 100.0
    }

    pub fn fixed_passed(&self) -> u64 {
        self.fixed.seeds_run - self.fixed.failed
    }

    pub fn deterministic(&self) -> bool {
        self.determinism.nondeterministic.is_empty()
    }

    pub fn proven(&self) -> bool {
        self.flaw_caught() && self.fixed.failed == 0 && self.deterministic()
    }

    /// 0 proven, 1 a flaw missed or a fixed seed failed, 3 nondeterminism.
    pub fn exit_code(&self) -> u8 {
        if !self.deterministic() {
            3
        } else if !self.proven() {
            1
        } else {
            0
        }
    }
}

fn median(values: &mut [u64]) -> f64 {
    values.sort_unstable();
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2] as f64,
        n => (values[n / 2 - 1] + values[n / 2]) as f64 / 2.0,
    }
}

/// Whether `scenario` can be proven: it has both a `fixed` and a `flawed` variant.
pub fn provable(scenario: &dyn Scenario) -> bool {
    let v = scenario.variants();
    v.contains(&FIXED) && v.contains(&FLAWED)
}

/// The most seed ranges one proof searches (each range's result is kept and printed).
pub const MAX_RANGES: u64 = 10_000;

impl Prove {
    /// Why these settings cannot make a proof of a scenario with this seed budget, if they cannot:
    /// a proof over no seeds proves nothing, and the last range must end inside the seed space.
    pub fn check(&self, budget: u64) -> Result<(), String> {
        if self.fixed_seeds == 0 {
            return Err(
                "--fixed-seeds must be at least 1 (a proof over no fixed seeds proves nothing)"
                    .into(),
            );
        }
        if self.check_seeds == 0 {
            return Err(
                "--check-seeds must be at least 1 (determinism over no seeds proves nothing)"
                    .into(),
            );
        }
        if self.ranges == 0 || self.ranges > MAX_RANGES {
            return Err(format!(
                "--ranges must be from 1 to {MAX_RANGES}, not {}",
                self.ranges
            ));
        }
        if self.range_width == 0 {
            return Err("--range-width must be at least 1".into());
        }
        let width = self.range_width.max(budget);
        (self.ranges - 1)
            .checked_mul(width)
            .and_then(|last| last.checked_add(budget))
            .ok_or_else(|| {
                format!(
                    "--ranges {} of width {width} run past the largest seed {}",
                    self.ranges,
                    u64::MAX
                )
            })?;
        Ok(())
    }

    /// Measures one scenario. `Err` only for input that cannot make a run.
    pub fn run(&self, scenario: &dyn Scenario) -> Result<Proof, HarnessError> {
        let budget = scenario.setup().seed_budget.max(1);
        self.check(budget).map_err(HarnessError::BadInput)?;
        let ranges = self.search_ranges(scenario)?;
        let fixed = Sweep::new(
            vec![(scenario, FIXED.to_string())],
            SeedRange(0..self.fixed_seeds),
            self.template.clone(),
        )
        .jobs(self.jobs)
        .mode(Mode::Run)
        .run()?;
        let determinism = Sweep::new(
            vec![
                (scenario, FIXED.to_string()),
                (scenario, FLAWED.to_string()),
            ],
            SeedRange(0..self.check_seeds),
            self.template.clone(),
        )
        .jobs(self.jobs)
        .mode(Mode::DeterminismOnly)
        .run()?;
        Ok(Proof {
            scenario: scenario.name().to_string(),
            budget,
            ranges,
            fixed,
            determinism,
        })
    }

    /// Searches each of `ranges` seed ranges for the first failing seed of `flawed`, at most the
    /// scenario's budget of seeds into each range, ranges spread over the workers; in range
    /// order. Also the time-to-bug benchmark's measurement.
    pub fn search_ranges(&self, scenario: &dyn Scenario) -> Result<Vec<RangeSearch>, HarnessError> {
        let budget = scenario.setup().seed_budget.max(1);
        let flawed = self.template.clone().variant(FLAWED);
        flawed.variant_for(scenario)?;
        self.check(budget).map_err(HarnessError::BadInput)?;
        let width = self.range_width.max(budget);
        let starts: Vec<u64> = (0..self.ranges).map(|r| r * width).collect();
        let next = AtomicUsize::new(0);
        let found: Mutex<Vec<RangeSearch>> = Mutex::new(Vec::new());
        let error: Mutex<Option<HarnessError>> = Mutex::new(None);
        thread::scope(|s| {
            for _ in 0..self.jobs.clamp(1, starts.len().max(1)) {
                s.spawn(|| {
                    while let Some(&start) = starts.get(next.fetch_add(1, Ordering::Relaxed)) {
                        match search(&flawed, scenario, start, budget) {
                            Ok(r) => lock(&found).push(r),
                            Err(e) => {
                                lock(&error).get_or_insert(e);
                                return;
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = lock(&error).take() {
            return Err(e);
        }
        let mut found = std::mem::take(&mut *lock(&found));
        found.sort_by_key(|r| r.start);
        Ok(found)
    }
}

fn search(
    flawed: &Sim,
    scenario: &dyn Scenario,
    start: u64,
    budget: u64,
) -> Result<RangeSearch, HarnessError> {
    let began = Instant::now();
    for offset in 0..budget {
        let report = flawed
            .clone()
            .seed(start + offset)
            .keep_trace(false)
            .run(scenario)?;
        if !report.outcome.passed() {
            return Ok(RangeSearch {
                start,
                found: Some(Found {
                    seed: start + offset,
                    seeds_tried: offset + 1,
                    wall_secs: began.elapsed().as_secs_f64(),
                    summary: report.summary(),
                    repro: report.repro(),
                }),
            });
        }
    }
    Ok(RangeSearch { start, found: None })
}
