//! `groundhog-bench`: prints a table of figures, each measured side by side with its baseline in
//! the same run, as medians over several samples (these machines are shared and noisy).
//!
//! The simulation build (default) measures simulated workloads; the real build
//! (`RUSTFLAGS= CARGO_TARGET_DIR=target/real cargo run --release -p groundhog-bench`) measures
//! real tokio ones. `docs/benchmarks.md` records a run and how to reproduce it.

mod checkers;
mod measure;
mod mesh;
mod real_figures;
mod real_runtime;
mod sim_cluster;
mod sim_figures;
mod sim_runtime;
mod sim_world;
mod table;
mod workloads;

use clap::Parser;
use groundhog_runtime::rt;

#[derive(Parser)]
#[command(
    name = "groundhog-bench",
    about = "Groundhog's benchmarks, as a table of medians and ratios"
)]
struct Args {
    /// Fewer samples and seeds: a smoke run (CI builds and runs this), not a measurement.
    #[arg(long)]
    quick: bool,
    /// Samples per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Only figures whose group name contains this (`remote-call`, `local-send`, `seeds`, `checkers`, ...).
    #[arg(long)]
    only: Option<String>,
}

/// What to measure, and how much.
pub struct Opts {
    pub samples: usize,
    pub quick: bool,
    only: Option<String>,
}

impl Opts {
    /// Whether the figure group `group` was asked for.
    pub fn wants(&self, group: &str) -> bool {
        self.only.as_deref().is_none_or(|o| group.contains(o))
    }
}

fn main() {
    let args = Args::parse();
    // A panic inside a simulated run (an injected crash) is recorded, not printed.
    groundhog_sim::quiet_panics_in_runs();
    let opts = Opts {
        samples: if args.quick { 1 } else { args.samples.max(1) },
        quick: args.quick,
        only: args.only,
    };
    let mut table = table::Table::new();
    if rt::SIMULATED {
        sim_runtime::all(&mut table, &opts);
        sim_cluster::all(&mut table, &opts);
        sim_figures::all(&mut table, &opts);
        checkers::all(&mut table, &opts);
    } else {
        real_runtime::all(&mut table, &opts);
        real_figures::all(&mut table, &opts);
    }
    table.print();
}
