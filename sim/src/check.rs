//! The determinism check: one seed, two fresh worlds, the same trace hash.

use std::thread;

use serde::Serialize;

use crate::harness::{HarnessError, Report, Sim};
use crate::scenario::Scenario;
use crate::trace::TraceHash;

/// Where two runs of one seed first differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Divergence {
    pub first_hash: TraceHash,
    pub second_hash: TraceHash,
    /// Index of the first differing trace line.
    pub line: usize,
    /// That line in each run (`None`: the run had already ended).
    pub first: Option<String>,
    pub second: Option<String>,
}

impl Divergence {
    /// Two lines showing the first diverging event of each run.
    pub fn explain(&self) -> String {
        let show = |l: &Option<String>| l.clone().unwrap_or_else(|| "<trace ended>".into());
        format!(
            "  first run  (hash {}), event #{}: {}\n  second run (hash {}), event #{}: {}",
            self.first_hash,
            self.line,
            show(&self.first),
            self.second_hash,
            self.line,
            show(&self.second)
        )
    }
}

/// Runs `sim` twice, each in a fresh thread with a fresh world, and compares the traces.
/// Returns the first run's report, and the divergence if the hashes differ.
pub fn check_determinism(
    sim: &Sim,
    scenario: &dyn Scenario,
) -> Result<(Report, Option<Divergence>), HarnessError> {
    let sim = sim.clone().keep_trace(true);
    let once = || thread::scope(|s| s.spawn(|| sim.run(scenario)).join());
    let first = once().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
    let second = once().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
    if first.hash() == second.hash() {
        return Ok((first, None));
    }
    let (a, b) = (&first.trace.lines, &second.trace.lines);
    let line = a
        .iter()
        .zip(b.iter())
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let divergence = Divergence {
        first_hash: first.hash(),
        second_hash: second.hash(),
        line,
        first: a.get(line).cloned(),
        second: b.get(line).cloned(),
    };
    Ok((first, Some(divergence)))
}
