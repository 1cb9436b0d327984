//! Coverage points: `ctx.sometimes("name", cond)` and `ctx.reachable("name")` mark states a run
//! reached, and a sweep counts, per scenario and variant, in how many seeds each point was hit,
//! so a user can see that a sweep got somewhere (and which states it never reached).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One run's points: each declared point, and whether it was hit.
#[derive(Clone, Default)]
pub(crate) struct Points(Arc<Mutex<BTreeMap<String, bool>>>);

impl Points {
    pub(crate) fn mark(&self, name: &str, hit: bool) {
        let mut points = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let seen = points.entry(name.to_string()).or_insert(false);
        *seen |= hit;
    }

    pub(crate) fn take(&self) -> BTreeMap<String, bool> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// In how many of a sweep's seeds one point was hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoverageRow {
    pub scenario: String,
    pub variant: String,
    pub point: String,
    /// Seeds in which the point was hit.
    pub seeds_hit: u64,
    /// Seeds run of this scenario and variant.
    pub seeds_run: u64,
}

/// Coverage summed over a sweep's runs: points a scenario names in its `Setup` count even if no
/// run ever declared them.
#[derive(Default)]
pub(crate) struct Tally {
    runs: BTreeMap<(String, String), u64>,
    hits: BTreeMap<(String, String, String), u64>,
}

impl Tally {
    pub(crate) fn expect(&mut self, scenario: &str, variant: &str, points: &[String]) {
        self.runs
            .entry((scenario.to_string(), variant.to_string()))
            .or_insert(0);
        for p in points {
            self.hits
                .entry((scenario.to_string(), variant.to_string(), p.clone()))
                .or_insert(0);
        }
    }

    pub(crate) fn add(&mut self, scenario: &str, variant: &str, points: &BTreeMap<String, bool>) {
        *self
            .runs
            .entry((scenario.to_string(), variant.to_string()))
            .or_insert(0) += 1;
        for (p, hit) in points {
            *self
                .hits
                .entry((scenario.to_string(), variant.to_string(), p.clone()))
                .or_insert(0) += u64::from(*hit);
        }
    }

    pub(crate) fn rows(&self) -> Vec<CoverageRow> {
        self.hits
            .iter()
            .map(|((scenario, variant, point), &seeds_hit)| CoverageRow {
                scenario: scenario.clone(),
                variant: variant.clone(),
                point: point.clone(),
                seeds_hit,
                seeds_run: self
                    .runs
                    .get(&(scenario.clone(), variant.clone()))
                    .copied()
                    .unwrap_or(0),
            })
            .collect()
    }
}
