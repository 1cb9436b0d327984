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
    let divergence = divergence(&first, &second, |x, y| x == y);
    Ok((first, Some(divergence)))
}

fn divergence(first: &Report, second: &Report, same: impl Fn(&str, &str) -> bool) -> Divergence {
    let (a, b) = (&first.trace.lines, &second.trace.lines);
    let line = a
        .iter()
        .zip(b.iter())
        .position(|(x, y)| !same(x, y))
        .unwrap_or(a.len().min(b.len()));
    Divergence {
        first_hash: first.hash(),
        second_hash: second.hash(),
        line,
        first: a.get(line).cloned(),
        second: b.get(line).cloned(),
    }
}

/// Where two variants' runs of one seed first differ (`groundhog diff`), reading the two
/// variant names as the same word (the start line names the variant); `None` when the traces
/// match. Both reports must keep their lines.
pub fn variant_divergence(first: &Report, second: &Report) -> Option<Divergence> {
    let (va, vb) = (
        format!("variant={}", first.variant),
        format!("variant={}", second.variant),
    );
    let same =
        |x: &str, y: &str| x == y || x.replace(&va, "variant=*") == y.replace(&vb, "variant=*");
    let d = divergence(first, second, same);
    let ended = d.first.is_none() && d.second.is_none();
    (!ended).then_some(d)
}
