//! Groundhog's simulation harness.
//!
//! - [`Scenario`] and [`Catalogue`] (`scenario.rs`): what a scenario is and what its driver and
//!   node programs get ([`Driver`], [`NodeCtx`]).
//! - [`Sim`] and [`Report`] (`harness.rs`): one seeded run on a fresh simulated world.
//! - [`FaultPlan`] and [`Fault`] (`fault.rs`): the fault vocabulary, plan files, generated plans.
//! - [`Trace`] and [`TraceHash`] (`trace.rs`): the recorded events and their FNV-1a 64 hash.
//! - [`Invariants`] (`invariants.rs`): the runtime rules every run is checked against (one
//!   `Down` per monitor, FIFO, nothing after a `Down`, supervision), skippable by name.
//! - [`chart`] (`chart.rs`): a run's message sequence chart, self-contained HTML with inline SVG.
//! - [`History`] (`history.rs`): operations a scenario's clients record (invoke, then ok /
//!   fail / unknown), traced and exported as JSON.
//! - [`checker`] (`checker/`): linearizability (register, map, set, queue, counter) and
//!   transactional anomalies (Elle's G0 to G2) over histories.
//! - [`check_determinism`] (`check.rs`): two fresh runs of a seed, first diverging event.
//! - [`Sweep`] and [`Check`] (`sweep.rs`): many seeds over threads; seeded checks in `#[test]`s.
//! - [`Prove`] (`prove.rs`): a flawed variant caught within its budget in every seed range, the
//!   fixed one passing every seed, both deterministic.
//! - [`cli`]: the `groundhog` command line over any catalogue.
//!
//! ```no_run
//! use groundhog_sim::{Check, Scenario};
//!
//! fn my_test(scenario: &dyn Scenario) {
//!     // Panics with `repro: groundhog replay ...` for any failing seed.
//!     Check::new(scenario).variant("fixed").seeds(0..500).determinism(true).run();
//! }
//! ```

mod chart;
mod check;
pub mod checker;
pub mod cli;
mod coverage;
mod fault;
mod harness;
mod history;
mod invariants;
mod prove;
mod scenario;
mod seeds;
mod sweep;
mod template;
mod trace;

pub use chart::render as chart;
pub use check::{check_determinism, variant_divergence, Divergence};
pub use coverage::CoverageRow;
pub use fault::{
    exit_reason, Durations, Fault, FaultKind, FaultMix, FaultPlan, PlanError, PlanLimits, PlanNet,
    Swarm, Target, TimedFault, EXIT_REASONS, LONG_EPISODE_MS, MAX_LATENCY_MS, MAX_PLAN_BYTES,
};
pub use harness::{quiet_panics_in_runs, HarnessError, Outcome, Report, Sim, MAX_NODES};
pub use history::{History, OpId, Operation, Status, Value};
pub use invariants::Invariants;
pub use prove::{provable, Found, Proof, Prove, RangeSearch};
pub use scenario::{BoxFuture, Catalogue, Driver, NodeCtx, Scenario, Setup, Violation};
pub use seeds::{SeedRange, SeedSet, Shard};
pub use sweep::{
    Check, Mode, SeedResult, Sweep, SweepSummary, VariantCount, KEPT_FAILURES, MAX_JOBS,
};
pub use trace::{format_time, Recorder, Trace, TraceHash};
