//! Integration tests of the `groundhog` binary and the harness, run as one test binary.
//!
//! The simulation build runs everything; the real build (no `--cfg madsim`) cannot create
//! simulated worlds, and `real_build` checks that it says so clearly.

mod audit;
mod checkers;
mod cli;
mod determinism;
mod driver;
mod fault_classes;
mod library;
mod plans;
mod prove;
mod real_build;

use std::process::{Command, Output};

use groundhog_runtime::rt;

/// Runs the `groundhog` binary built for these tests.
pub fn groundhog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_groundhog"))
        .args(args)
        .env_remove("GROUNDHOG_SEED")
        .env_remove("GROUNDHOG_SEEDS")
        .env_remove("GROUNDHOG_JOBS")
        .output()
        .expect("the groundhog binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Simulation-only tests return early in the real build; `real_build` covers that build.
pub fn simulated() -> bool {
    rt::SIMULATED
}

/// The `hash=` field of a result line.
pub fn hash_of(line: &str) -> &str {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("hash="))
        .unwrap_or_else(|| panic!("no hash in {line:?}"))
}
