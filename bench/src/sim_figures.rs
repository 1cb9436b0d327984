//! Figures of the simulation build: seeds per second, simulated:wall ratio, time to bug.

use groundhog_scenarios::catalogue;
use groundhog_sim::{provable, Mode, Prove, Scenario, SeedRange, Sim, Sweep};

use crate::measure::{median, median_of};
use crate::mesh::Mesh;
use crate::table::{Row, Table};
use crate::Opts;

pub fn all(table: &mut Table, opts: &Opts) {
    let cat = catalogue();
    let lost_update = cat.find("lost-update").expect("in the catalogue");
    if opts.wants("seeds") {
        let (samples, quick) = (opts.samples, opts.quick);
        seeds_per_second(
            table,
            samples,
            quick,
            lost_update.as_ref(),
            "fixed",
            "lost-update fixed",
        );
        seeds_per_second(table, samples, quick, &Mesh, "default", "runtime-mesh");
    }
    if opts.wants("sim-wall") {
        sim_wall_ratio(table, opts.samples, opts.quick);
    }
    if opts.wants("time-to-bug") {
        time_to_bug(table, opts.quick);
    }
    if opts.wants("memory") {
        memory_per_run(table, opts.quick, lost_update.as_ref());
    }
}

/// This process's resident memory in MiB (`VmRSS` of /proc/self/status; 0 where there is none).
fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Resident memory after `few` and after `many` runs of one scenario in this process: flat when
/// a world frees everything it owns when it ends.
fn memory_per_run(table: &mut Table, quick: bool, scenario: &dyn Scenario) {
    let (few, many) = if quick {
        (200, 1_000)
    } else {
        (1_000, 100_000)
    };
    let run = |seeds: std::ops::Range<u64>| {
        let s = sweep(scenario, "fixed", seeds, 1, Sim::new(0));
        assert_eq!(s.failed, 0, "the fixed variant passes");
    };
    run(0..few);
    let after_few = resident_mib();
    run(few..many);
    let after_many = resident_mib();
    let growth = (after_many - after_few) / ((many - few) as f64) * 1024.0 * 1024.0;
    table.push(Row {
        figure: format!(
            "resident memory after {few} and after {many} runs, {} fixed (1 worker)",
            scenario.name()
        ),
        groundhog: format!("{after_few:.1} MiB -> {after_many:.1} MiB"),
        baseline: "-".into(),
        ratio: format!("{growth:.0} B/run"),
        target: "flat (< 1 KiB/run)".into(),
        met: Some(growth < 1024.0),
    });
}

fn sweep(
    scenario: &dyn Scenario,
    variant: &str,
    seeds: std::ops::Range<u64>,
    jobs: usize,
    sim: Sim,
) -> groundhog_sim::SweepSummary {
    Sweep::new(vec![(scenario, variant.to_string())], SeedRange(seeds), sim)
        .jobs(jobs)
        .mode(Mode::Run)
        .run()
        .expect("catalogue scenarios take these settings")
}

/// Seeds per second of a 5-node scenario with faults, on 1 and 2 workers.
fn seeds_per_second(
    table: &mut Table,
    samples: usize,
    quick: bool,
    scenario: &dyn Scenario,
    variant: &str,
    label: &str,
) {
    let seeds = if quick { 0..20 } else { 0..1_000 };
    let rate = |jobs: usize| {
        let s = sweep(scenario, variant, seeds.clone(), jobs, Sim::new(0).nodes(5));
        assert!(
            s.failed == 0,
            "{label} passes: {:?}",
            s.failures.first().map(|f| &f.repro)
        );
        s.seeds_per_sec
    };
    // Interleaved pairs, so a burst of load elsewhere hits both sides alike.
    let pairs: Vec<(f64, f64)> = (0..samples).map(|_| (rate(1), rate(2))).collect();
    let one = median_of(pairs.iter().map(|p| p.0).collect());
    let two = median_of(pairs.iter().map(|p| p.1).collect());
    let scaling = median_of(pairs.iter().map(|p| p.1 / p.0).collect());
    table.push(Row {
        figure: format!("seeds/s, {label}, 5 nodes, faults (1 worker)"),
        groundhog: format!("{one:.0}"),
        baseline: "-".into(),
        ratio: "-".into(),
        target: ">= 200 per core".into(),
        met: Some(one >= 200.0),
    });
    table.push(Row {
        figure: format!("seeds/s, {label}, 2 workers vs 1"),
        groundhog: format!("{two:.0}"),
        baseline: format!("{one:.0}"),
        ratio: format!("{scaling:.2}x"),
        target: ">= 1.8x".into(),
        met: Some(scaling >= 1.8),
    });
}

fn sim_wall_ratio(table: &mut Table, samples: usize, quick: bool) {
    let seeds = if quick { 0..20 } else { 0..500 };
    let cat = catalogue();
    let mut targets: Vec<(&dyn Scenario, &str)> =
        cat.iter().map(|s| (s.as_ref(), "fixed")).collect();
    targets.push((&Mesh, "default"));
    for (scenario, variant) in targets {
        let ratio = median(samples, || {
            sweep(scenario, variant, seeds.clone(), 1, Sim::new(0)).sim_wall_ratio
        });
        table.push(Row {
            figure: format!("simulated:wall, {} {variant} (1 worker)", scenario.name()),
            groundhog: format!("{ratio:.0}x"),
            baseline: "-".into(),
            ratio: "-".into(),
            target: ">= 1000x".into(),
            met: Some(ratio >= 1000.0),
        });
    }
}

/// Seeds and wall time until the first failure of each flawed variant, median over 20 seed
/// ranges (range k starts at seed k * 10,000), searched on one worker as `groundhog prove` does.
fn time_to_bug(table: &mut Table, quick: bool) {
    let ranges = if quick { 3 } else { 20 };
    let prove = Prove {
        ranges,
        range_width: 10_000,
        jobs: 1,
        ..Prove::default()
    };
    for scenario in catalogue().iter() {
        if !provable(scenario.as_ref()) {
            continue;
        }
        let budget = scenario.setup().seed_budget;
        let searches = prove
            .search_ranges(scenario.as_ref())
            .expect("catalogue scenarios take these settings");
        let missed = searches.iter().filter(|r| r.found.is_none()).count();
        let mut seeds: Vec<u64> = searches
            .iter()
            .map(|r| r.found.as_ref().map_or(u64::MAX, |f| f.seeds_tried))
            .collect();
        seeds.sort_unstable();
        let median_seeds = seeds[seeds.len() / 2];
        let walls: Vec<f64> = searches
            .iter()
            .filter_map(|r| r.found.as_ref().map(|f| f.wall_secs))
            .collect();
        let median_wall = if walls.is_empty() {
            f64::INFINITY
        } else {
            median_of(walls)
        };
        table.push(Row {
            figure: format!(
                "time to bug, {} flawed (median of {ranges} ranges)",
                scenario.name()
            ),
            groundhog: format!("{median_seeds} seeds, {:.1} ms", median_wall * 1e3),
            baseline: "real-build stress: see docs/benchmarks.md".into(),
            ratio: "-".into(),
            target: format!("< 1 s; within {budget} seeds"),
            met: Some(missed == 0 && median_wall < 1.0),
        });
    }
}
