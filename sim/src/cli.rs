//! The `groundhog` command line, as a library function over any catalogue of scenarios, so a
//! user's own binary is three lines:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     groundhog_sim::cli::main(groundhog_sim::Catalogue::new() /* .with(MyScenario) */)
//! }
//! ```
//!
//! Exit codes: 0 all passed, 1 an invariant failed, 2 bad input, 3 nondeterminism found.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::fault::{Durations, FaultKind};
use crate::harness::{HarnessError, Sim};
use crate::prove::{provable, Proof, Prove};
use crate::scenario::{Catalogue, Scenario};
use crate::seeds::{SeedRange, Shard};
use crate::sweep::{Mode, Sweep, SweepSummary, MAX_JOBS};

pub const EXIT_PASS: u8 = 0;
pub const EXIT_FAIL: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_NONDETERMINISM: u8 = 3;

#[derive(Parser)]
#[command(
    name = "groundhog",
    version,
    arg_required_else_help = true,
    about = "Seeded, deterministic simulations of actor systems: every failure replays from its seed."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One scenario a line: name, variants, description.
    List,
    /// Run one seed and print its result (and, on failure, its repro line).
    Run(RunArgs),
    /// `run` with the full trace.
    Replay(RunArgs),
    /// Run a range of seeds over worker threads.
    Sweep(SweepArgs),
    /// Determinism only: run each seed twice and compare trace hashes.
    Check(CheckArgs),
    /// Print the fault plan a seed generates, as TOML (a starting point for --plan files).
    Plan(PlanArgs),
    /// Prove scenarios: each flawed variant fails within its seed budget in every seed range,
    /// each fixed variant passes every seed tried, and both replay identically.
    Prove(ProveArgs),
    /// Create a crate of your own with a working scenario, its binary and a seeded test.
    New(NewArgs),
    /// Run the flawed and the fixed variant on one seed; print whether each passed and the
    /// first trace event where they differ.
    Diff(DiffArgs),
}

#[derive(Args)]
struct DiffArgs {
    scenario: String,
    #[arg(long, env = "GROUNDHOG_SEED", allow_negative_numbers = true)]
    seed: u64,
    #[command(flatten)]
    plan: PlanChoice,
}

#[derive(Args)]
struct NewArgs {
    /// The crate's (and its scenario's) name: lowercase letters, digits and dashes.
    name: String,
    /// Where to create it (default: ./NAME).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The Groundhog checkout its path dependencies point at (default: the one this binary was
    /// built from).
    #[arg(long)]
    groundhog: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct PlanChoice {
    /// Fault plan file (TOML or JSON) instead of the generated one.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Intensity of the generated plan, 0.0 to 1.0.
    #[arg(long, allow_negative_numbers = true)]
    intensity: Option<f64>,
    /// Kinds of fault the generated plan may use, comma-separated (e.g. partition,crash-node).
    #[arg(long, value_delimiter = ',')]
    faults: Option<Vec<FaultKind>>,
    /// Pin the generated plan's episode lengths: short, long or mixed (default: drawn per seed).
    #[arg(long)]
    durations: Option<Durations>,
    /// Number of nodes, overriding the scenario's.
    #[arg(long, allow_negative_numbers = true)]
    nodes: Option<u32>,
    /// Switch the scenario's hand-written invariants off: only history checkers and the
    /// always-on invariants can fail the run.
    #[arg(long)]
    checkers_only: bool,
    /// Turn the runtime's buggify points on for the run(s), whatever the scenario or plan says
    /// (repro lines then carry `--buggify`).
    #[arg(long)]
    buggify: bool,
}

impl PlanChoice {
    fn apply(&self, mut sim: Sim) -> Sim {
        if let Some(p) = &self.plan {
            sim = sim.plan_file(p);
        }
        if let Some(i) = self.intensity {
            sim = sim.intensity(i);
        }
        if let Some(k) = &self.faults {
            sim = sim.faults(k.clone());
        }
        if let Some(d) = self.durations {
            sim = sim.durations(d);
        }
        if let Some(n) = self.nodes {
            sim = sim.nodes(n);
        }
        if self.buggify {
            sim = sim.buggify(true);
        }
        sim.checkers_only(self.checkers_only)
    }
}

#[derive(Args)]
struct RunArgs {
    scenario: String,
    #[arg(long)]
    variant: Option<String>,
    #[arg(long, env = "GROUNDHOG_SEED", allow_negative_numbers = true)]
    seed: u64,
    /// Print every trace line.
    #[arg(long)]
    trace: bool,
    /// Write a message sequence chart of the run to FILE (self-contained HTML with inline SVG).
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
    /// Write the run's history (the operations its clients recorded) to FILE as JSON.
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    #[command(flatten)]
    plan: PlanChoice,
}

#[derive(Args)]
struct Targets {
    /// Scenario name (or --all).
    scenario: Option<String>,
    /// Every scenario in the catalogue.
    #[arg(long, conflicts_with = "scenario")]
    all: bool,
    /// Only this variant (default: every variant).
    #[arg(long)]
    variant: Option<String>,
    /// Seeds: A..B (B excluded), A..=B, or N.
    #[arg(long, env = "GROUNDHOG_SEEDS", allow_hyphen_values = true)]
    seeds: SeedRange,
    /// Worker threads (default: one per core).
    #[arg(long, env = "GROUNDHOG_JOBS", allow_negative_numbers = true)]
    jobs: Option<usize>,
    /// Only shard I of N (1-based) of the seeds, e.g. 3/16.
    #[arg(long)]
    shard: Option<Shard>,
    #[command(flatten)]
    plan: PlanChoice,
}

#[derive(Args)]
struct SweepArgs {
    #[command(flatten)]
    targets: Targets,
    /// Stop at the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Run every seed twice and compare traces.
    #[arg(long)]
    check_determinism: bool,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    targets: Targets,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ProveArgs {
    /// Scenario name (or --all).
    scenario: Option<String>,
    /// Every scenario in the catalogue that has `fixed` and `flawed` variants.
    #[arg(long, conflicts_with = "scenario")]
    all: bool,
    /// Seeds of the fixed variant that must all pass, from 0.
    #[arg(long, default_value_t = 500)]
    fixed_seeds: u64,
    /// Seed ranges in each of which the flawed variant must fail within its budget.
    #[arg(long, default_value_t = 20)]
    ranges: u64,
    /// Width of each seed range (at least the scenario's budget).
    #[arg(long, default_value_t = 100)]
    range_width: u64,
    /// Seeds of each variant run twice for the determinism check.
    #[arg(long, default_value_t = 50)]
    check_seeds: u64,
    /// Worker threads (default: one per core).
    #[arg(long, env = "GROUNDHOG_JOBS", allow_negative_numbers = true)]
    jobs: Option<usize>,
    /// Print the proofs as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PlanArgs {
    scenario: String,
    #[arg(long, env = "GROUNDHOG_SEED", allow_negative_numbers = true)]
    seed: u64,
    #[command(flatten)]
    plan: PlanChoice,
}

/// Parses the process's arguments, runs, and exits with the documented code.
pub fn main(catalogue: Catalogue) -> ExitCode {
    // A panic inside a run is recorded (exit reason or outcome); printing it is noise.
    crate::quiet_panics_in_runs();
    let code = run(
        &catalogue,
        std::env::args_os(),
        // Not locked for the whole run: a panicking simulated task writes to stderr too.
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    ExitCode::from(code)
}

/// The CLI over explicit arguments and writers; returns the exit code.
pub fn run<I, T>(catalogue: &Catalogue, args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // A user's own binary names itself in its help, version and repro lines.
    let program = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_stem())
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("groundhog")
        .to_string();
    let command = <Cli as clap::CommandFactory>::command()
        .name(program.clone())
        .bin_name(program.clone());
    let parsed = command
        .try_get_matches_from(args)
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = write!(out, "{e}");
            return EXIT_PASS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(err, "{e}");
            return EXIT_BAD_INPUT;
        }
        Err(e) => {
            let _ = writeln!(err, "groundhog: {}", one_line(&e.to_string()));
            return EXIT_BAD_INPUT;
        }
    };
    match execute(catalogue, cli.command, &program, out) {
        Ok(code) => code,
        Err(Bad(message)) => {
            let _ = writeln!(err, "groundhog: {message}");
            EXIT_BAD_INPUT
        }
    }
}

/// A sweep's text output lists this many failures with their repro lines; a terminal's scrollback
/// holds them, and `--json` has the rest.
const PRINTED_FAILURES: usize = 20;

fn check_jobs(jobs: Option<usize>) -> Result<(), Bad> {
    match jobs {
        Some(0) => Err(Bad("--jobs must be at least 1".into())),
        Some(j) if j > MAX_JOBS => Err(Bad(format!(
            "--jobs {j} is more than {MAX_JOBS} (each job is a thread running its own world; more \
             jobs than cores only add memory)"
        ))),
        _ => Ok(()),
    }
}

/// clap's message in one line: its first line, and when that ends in a colon (`the following
/// required arguments were not provided:`) the lines that name what it means.
fn one_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim);
    let mut line = lines
        .next()
        .unwrap_or("bad arguments")
        .trim_start_matches("error: ")
        .to_string();
    if line.ends_with(':') {
        let named: Vec<&str> = lines.take_while(|l| !l.is_empty()).collect();
        line = format!("{} {}", line, named.join(", "));
    }
    line
}

/// Bad input: one line, exit 2.
struct Bad(String);

impl From<HarnessError> for Bad {
    fn from(e: HarnessError) -> Self {
        Bad(e.to_string())
    }
}

impl From<String> for Bad {
    fn from(e: String) -> Self {
        Bad(e)
    }
}

fn execute(
    catalogue: &Catalogue,
    command: Command,
    program: &str,
    out: &mut dyn Write,
) -> Result<u8, Bad> {
    match command {
        Command::List => {
            for s in catalogue.iter() {
                let _ = writeln!(
                    out,
                    "{:<20} {:<14} {}",
                    s.name(),
                    s.variants().join(","),
                    s.about()
                );
            }
            Ok(EXIT_PASS)
        }
        Command::Run(args) => run_one(catalogue, args, false, program, out),
        Command::Replay(args) => run_one(catalogue, args, true, program, out),
        Command::Sweep(args) => {
            let mode = if args.check_determinism {
                Mode::RunAndCheckDeterminism
            } else {
                Mode::Run
            };
            sweep(
                catalogue,
                &args.targets,
                mode,
                args.fail_fast,
                args.json,
                program,
                out,
            )
        }
        Command::Check(args) => sweep(
            catalogue,
            &args.targets,
            Mode::DeterminismOnly,
            false,
            args.json,
            program,
            out,
        ),
        Command::Plan(args) => {
            let scenario = catalogue.find(&args.scenario)?;
            let sim = args.plan.apply(Sim::new(args.seed));
            let plan = sim.resolve_plan(scenario.as_ref())?;
            let toml = plan.to_toml().map_err(HarnessError::from)?;
            let _ = write!(
                out,
                "# groundhog plan {} --seed {}\n{toml}",
                args.scenario, args.seed,
            );
            Ok(EXIT_PASS)
        }
        Command::Prove(args) => prove(catalogue, args, program, out),
        Command::Diff(args) => diff(catalogue, args, program, out),
        Command::New(args) => {
            let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
            let groundhog = args
                .groundhog
                .unwrap_or_else(crate::template::default_groundhog);
            let files = crate::template::create(&dir, &args.name, &groundhog)?;
            for f in files {
                let _ = writeln!(out, "created {}", f.display());
            }
            let _ = writeln!(
                out,
                "next: cd {} && cargo run -- run {} --seed 1 && cargo test",
                dir.display(),
                args.name
            );
            Ok(EXIT_PASS)
        }
    }
}

fn prove(
    catalogue: &Catalogue,
    args: ProveArgs,
    program: &str,
    out: &mut dyn Write,
) -> Result<u8, Bad> {
    check_jobs(args.jobs)?;
    let scenarios: Vec<&dyn Scenario> = match (&args.scenario, args.all) {
        (Some(name), false) => {
            let found = catalogue.find(name)?;
            if !provable(found.as_ref()) {
                return Err(Bad(format!(
                    "scenario `{name}` has no `fixed` and `flawed` variants to prove (it has: {})",
                    found.variants().join(", ")
                )));
            }
            catalogue
                .iter()
                .filter(|s| s.name() == found.name())
                .map(|s| s.as_ref())
                .collect()
        }
        (None, true) => catalogue
            .iter()
            .map(|s| s.as_ref())
            .filter(|s| provable(*s))
            .collect(),
        _ => return Err(Bad("name a scenario or pass --all".into())),
    };
    let mut settings = Prove {
        fixed_seeds: args.fixed_seeds,
        ranges: args.ranges,
        range_width: args.range_width,
        check_seeds: args.check_seeds,
        template: Sim::new(0).program(program),
        ..Prove::default()
    };
    if let Some(j) = args.jobs {
        settings.jobs = j;
    }
    let mut proofs = Vec::new();
    for scenario in scenarios {
        proofs.push(settings.run(scenario)?);
    }
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&proofs).expect("proofs always serialize")
        );
    } else {
        print_proofs(&proofs, &settings, out);
    }
    Ok(proofs
        .iter()
        .map(Proof::exit_code)
        .max()
        .unwrap_or(EXIT_PASS))
}

fn print_proofs(proofs: &[Proof], settings: &Prove, out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "{:<22} {:>6} {:>14} {:>12} {:>12} {:>13} {:>11} {:>11}  verdict",
        "scenario",
        "budget",
        "seeds-to-fail",
        "worst-range",
        "ms-to-fail",
        "fixed-passed",
        "s/100seeds",
        "determinism"
    );
    for p in proofs {
        let worst = p
            .worst_seeds_to_failure()
            .map_or_else(|| "missed".to_string(), |w| w.to_string());
        let verdict = if p.proven() { "proven" } else { "NOT PROVEN" };
        let _ = writeln!(
            out,
            "{:<22} {:>6} {:>14} {:>12} {:>12.1} {:>13} {:>11.2} {:>11}  {verdict}",
            p.scenario,
            p.budget,
            format!("{:.1}", p.median_seeds_to_failure()),
            worst,
            p.median_secs_to_failure() * 1e3,
            format!("{}/{}", p.fixed_passed(), p.fixed.seeds_run),
            p.fixed_secs_per_100(),
            if p.deterministic() { "ok" } else { "DIVERGED" },
        );
    }
    let _ = writeln!(
        out,
        "seeds-to-fail: median over {} ranges of width {} (at least the budget); ms-to-fail: median \
         wall time to the first failure; fixed over seeds 0..{} on {} worker(s); determinism over \
         seeds 0..{} of each variant",
        settings.ranges,
        settings.range_width,
        settings.fixed_seeds,
        settings.jobs,
        settings.check_seeds
    );
    for p in proofs {
        if let Some(f) = p.first_failure() {
            let _ = writeln!(out, "{}: first failure {}", p.scenario, f.summary);
            let _ = writeln!(out, "  repro: {}", f.repro);
        }
        for r in p.ranges.iter().filter(|r| r.found.is_none()) {
            let _ = writeln!(
                out,
                "{}: MISSED: no failure in seeds {}..{} (budget {})",
                p.scenario,
                r.start,
                r.start + p.budget,
                p.budget
            );
        }
        for f in &p.fixed.failures {
            let _ = writeln!(out, "{}: FIXED FAILED {}", p.scenario, f.summary);
            let _ = writeln!(out, "  repro: {}", f.repro);
        }
        for r in &p.determinism.nondeterministic {
            let d = r.divergence.as_ref().expect("listed as nondeterministic");
            let _ = writeln!(out, "{}: NONDETERMINISTIC {}", p.scenario, r.summary);
            let _ = writeln!(out, "{}", d.explain());
            let _ = writeln!(out, "  repro: {}", r.repro);
        }
    }
}

/// `diff`: exit 0 when the fixed variant passed (whatever the flawed one did), 1 when not.
fn diff(
    catalogue: &Catalogue,
    args: DiffArgs,
    program: &str,
    out: &mut dyn Write,
) -> Result<u8, Bad> {
    let scenario = catalogue.find(&args.scenario)?;
    if !provable(scenario.as_ref()) {
        return Err(Bad(format!(
            "scenario `{}` has no `fixed` and `flawed` variants to compare (it has: {})",
            scenario.name(),
            scenario.variants().join(", ")
        )));
    }
    let sim = args
        .plan
        .apply(Sim::new(args.seed).program(program))
        .keep_trace(true);
    let flawed = sim.clone().variant("flawed").run(scenario.as_ref())?;
    let fixed = sim.variant("fixed").run(scenario.as_ref())?;
    for (name, r) in [("flawed", &flawed), ("fixed", &fixed)] {
        let verdict = if r.outcome.passed() {
            "passed"
        } else {
            "FAILED"
        };
        let _ = writeln!(out, "{name:<7} {verdict}: {}", r.summary());
    }
    match crate::check::variant_divergence(&flawed, &fixed) {
        None => {
            let _ = writeln!(
                out,
                "the traces are identical (apart from the variant's name)"
            );
        }
        Some(d) => {
            let show = |l: &Option<String>| l.clone().unwrap_or_else(|| "<trace ended>".into());
            let _ = writeln!(out, "first difference at event #{}:", d.line);
            let _ = writeln!(out, "  flawed: {}", show(&d.first));
            let _ = writeln!(out, "  fixed:  {}", show(&d.second));
        }
    }
    if !flawed.outcome.passed() {
        let _ = writeln!(out, "repro: {}", flawed.repro());
    }
    if fixed.outcome.passed() {
        Ok(EXIT_PASS)
    } else {
        let _ = writeln!(out, "repro: {}", fixed.repro());
        Ok(EXIT_FAIL)
    }
}

fn run_one(
    catalogue: &Catalogue,
    args: RunArgs,
    full: bool,
    program: &str,
    out: &mut dyn Write,
) -> Result<u8, Bad> {
    let scenario = catalogue.find(&args.scenario)?;
    // Opened before the run, so a bad path is refused before anything is printed.
    let chart = match &args.chart {
        Some(path) => Some(
            std::fs::File::create(path)
                .map_err(|e| Bad(format!("cannot write the chart to {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let mut sim = args.plan.apply(Sim::new(args.seed).program(program));
    if let Some(v) = &args.variant {
        sim = sim.variant(v.clone());
    }
    let report = sim.run(scenario.as_ref())?;
    if let Some(path) = &args.history {
        std::fs::write(path, report.history.to_json() + "\n")
            .map_err(|e| Bad(format!("cannot write {}: {e}", path.display())))?;
    }
    if full || args.trace {
        for line in &report.trace.lines {
            let _ = writeln!(out, "{line}");
        }
    }
    if let (Some(mut file), Some(path)) = (chart, &args.chart) {
        file.write_all(crate::chart(&report).as_bytes())
            .map_err(|e| Bad(format!("cannot write the chart to {}: {e}", path.display())))?;
    }
    let _ = writeln!(out, "{}", report.summary());
    if report.outcome.passed() {
        Ok(EXIT_PASS)
    } else {
        let _ = writeln!(out, "repro: {}", report.repro());
        Ok(EXIT_FAIL)
    }
}

fn targets<'a>(
    catalogue: &'a Catalogue,
    t: &Targets,
) -> Result<Vec<(&'a dyn Scenario, String)>, Bad> {
    let scenarios: Vec<&dyn Scenario> = match (&t.scenario, t.all) {
        (Some(name), false) => {
            let found = catalogue.find(name)?;
            let same = catalogue
                .iter()
                .find(|s| s.name() == found.name())
                .expect("found in this catalogue");
            vec![same.as_ref()]
        }
        (None, true) => catalogue.iter().map(|s| s.as_ref()).collect(),
        _ => return Err(Bad("name a scenario or pass --all".into())),
    };
    let mut out = Vec::new();
    for s in &scenarios {
        match &t.variant {
            Some(v) if s.variants().contains(&v.as_str()) => out.push((*s, v.clone())),
            Some(v) if !t.all => {
                return Err(Bad(format!(
                    "scenario `{}` has no variant `{v}` (known: {})",
                    s.name(),
                    s.variants().join(", ")
                )))
            }
            Some(_) => {}
            None => out.extend(s.variants().iter().map(|v| (*s, v.to_string()))),
        }
    }
    if out.is_empty() {
        return Err(Bad(format!(
            "no scenario has variant `{}`",
            t.variant.as_deref().unwrap_or_default()
        )));
    }
    Ok(out)
}

fn sweep(
    catalogue: &Catalogue,
    t: &Targets,
    mode: Mode,
    fail_fast: bool,
    json: bool,
    program: &str,
    out: &mut dyn Write,
) -> Result<u8, Bad> {
    check_jobs(t.jobs)?;
    let targets = targets(catalogue, t)?;
    let template = t.plan.apply(Sim::new(0).program(program));
    let mut sweep = Sweep::new(targets, t.seeds.clone(), template)
        .shard(t.shard)
        .mode(mode)
        .fail_fast(fail_fast)
        .progress(!json);
    if let Some(j) = t.jobs {
        sweep = sweep.jobs(j);
    }
    let summary = sweep.run()?;
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary always serializes")
        );
    } else {
        print_summary(&summary, mode, out);
    }
    Ok(summary.exit_code())
}

fn print_summary(summary: &SweepSummary, mode: Mode, out: &mut dyn Write) {
    for r in &summary.nondeterministic {
        let d = r.divergence.as_ref().expect("listed as nondeterministic");
        let _ = writeln!(out, "NONDETERMINISTIC {}", r.summary);
        let _ = writeln!(out, "{}", d.explain());
        let _ = writeln!(out, "repro: {}", r.repro);
    }
    for r in summary.failures.iter().take(PRINTED_FAILURES) {
        let _ = writeln!(out, "{}", r.summary);
        let _ = writeln!(out, "repro: {}", r.repro);
    }
    if summary.failed > PRINTED_FAILURES as u64 {
        let _ = writeln!(
            out,
            "... and {} more failing runs (--json lists the first {} with their repro lines)",
            summary.failed - PRINTED_FAILURES as u64,
            crate::sweep::KEPT_FAILURES
        );
    }
    if !summary.coverage.is_empty() {
        let _ = writeln!(out, "coverage (seeds in which each point was hit):");
        for c in &summary.coverage {
            let _ = writeln!(
                out,
                "  {:<22} {:<8} {:<32} {:>8}/{}{}",
                c.scenario,
                c.variant,
                c.point,
                c.seeds_hit,
                c.seeds_run,
                if c.seeds_hit == 0 { "  NEVER" } else { "" }
            );
        }
    }
    let label = if mode == Mode::DeterminismOnly {
        "check"
    } else {
        "sweep"
    };
    let _ = writeln!(out, "{label}: {}", summary.line());
}
