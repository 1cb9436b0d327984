//! `groundhog-bench`: prints a table of figures, each measured side by side with its baseline in
//! the same run, as medians over several samples (these machines are shared and noisy).
//!
//! The simulation build (default) measures simulated workloads; the real build
//! (`RUSTFLAGS= CARGO_TARGET_DIR=target/real cargo run --release -p groundhog-bench`) measures
//! real tokio ones. `docs/benchmarks.md` records a run and how to reproduce it.

mod measure;
mod real_figures;
mod sim_figures;
mod table;

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
}

fn main() {
    let args = Args::parse();
    let samples = if args.quick { 1 } else { args.samples.max(1) };
    let mut table = table::Table::new();
    if rt::SIMULATED {
        sim_figures::all(&mut table, samples, args.quick);
    } else {
        real_figures::all(&mut table, samples, args.quick);
    }
    table.print();
}
