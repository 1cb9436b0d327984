//! The command line: results, repro lines, exit codes, bad input.

use crate::{groundhog, hash_of, stderr, stdout};

#[test]
fn list_names_every_scenario_with_variants() {
    let out = groundhog(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text
        .lines()
        .any(|l| l.starts_with("ping-pong ") && l.contains("fixed,flawed")));
    assert!(text
        .lines()
        .any(|l| l.starts_with("lost-update ") && l.contains("fixed,flawed")));
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_failure_prints_a_repro_line_that_reproduces_its_hash() {
    let out = groundhog(&["run", "lost-update", "--variant", "flawed", "--seed", "17"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    let result = text.lines().next().unwrap();
    assert!(
        result.starts_with("lost-update variant=flawed seed=17 hash="),
        "{result}"
    );
    assert!(
        result.contains("FAIL invariant=count-equals-acked-increments"),
        "{result}"
    );
    let repro = text
        .lines()
        .find_map(|l| l.strip_prefix("repro: "))
        .unwrap();
    assert_eq!(
        repro,
        "groundhog replay lost-update --variant flawed --seed 17"
    );
    let args: Vec<&str> = repro.split_whitespace().skip(1).collect();
    let again = groundhog(&args);
    assert_eq!(again.status.code(), Some(1));
    let replayed = stdout(&again);
    let summary = replayed
        .lines()
        .find(|l| l.starts_with("lost-update variant="))
        .unwrap();
    assert_eq!(hash_of(summary), hash_of(result));
    assert!(
        replayed.lines().count() > 50,
        "replay prints the full trace"
    );
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn same_seed_same_output_byte_for_byte_across_processes() {
    for scenario in ["ping-pong", "lost-update"] {
        let a = groundhog(&["replay", scenario, "--seed", "5"]);
        let b = groundhog(&["replay", scenario, "--seed", "5"]);
        assert_eq!(a.stdout, b.stdout, "{scenario}");
        let c = groundhog(&["replay", scenario, "--seed", "6"]);
        assert_ne!(
            a.stdout, c.stdout,
            "{scenario}: different seeds, different traces"
        );
    }
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn flawed_sweep_fails_with_repro_lines_that_reproduce_and_fixed_passes() {
    let flawed = groundhog(&[
        "sweep",
        "lost-update",
        "--variant",
        "flawed",
        "--seeds",
        "0..500",
    ]);
    assert_eq!(flawed.status.code(), Some(1));
    let text = stdout(&flawed);
    let failures: Vec<&str> = text.lines().filter(|l| l.contains(" FAIL ")).collect();
    assert_eq!(failures.len(), 20, "the first 20 failures are listed");
    let failed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("sweep: seeds=500 failures="))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a summary line");
    assert!(failed > 250, "the flaw shows on most seeds: {failed}");
    assert!(
        text.contains(&format!("... and {} more failing runs", failed - 20)),
        "{text}"
    );
    let repros: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("repro: "))
        .collect();
    assert_eq!(repros.len(), failures.len());
    for (result, repro) in failures.iter().zip(&repros).step_by(7) {
        let args: Vec<&str> = repro.split_whitespace().skip(1).collect();
        let again = stdout(&groundhog(&args));
        let summary = again
            .lines()
            .find(|l| l.starts_with("lost-update variant="))
            .unwrap();
        assert_eq!(hash_of(summary), hash_of(result), "{repro}");
    }
    let fixed = groundhog(&[
        "sweep",
        "lost-update",
        "--variant",
        "fixed",
        "--seeds",
        "0..500",
    ]);
    assert_eq!(fixed.status.code(), Some(0), "{}", stdout(&fixed));
    assert!(stdout(&fixed).contains("seeds=500 failures=0"));
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn sweep_json_shards_and_env_mirrors() {
    let out = groundhog(&[
        "sweep",
        "ping-pong",
        "--variant",
        "fixed",
        "--seeds",
        "0..40",
        "--shard",
        "2/4",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["seeds_run"], 10);
    assert_eq!(json["failures"].as_array().map(Vec::len), Some(0));
    assert_eq!(json["variants"][0]["variant"], "fixed");
    assert_eq!(json["variants"][0]["runs"], 10);

    // Hashes are strings of 16 hex digits, as printed: a JSON number loses bits past 2^53.
    let flawed = groundhog(&["sweep", "ping-pong", "--seeds", "0..6", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&flawed.stdout).expect("valid JSON");
    let failure = &json["failures"][0];
    let hash = failure["hash"].as_str().expect("the hash is a string");
    assert_eq!(hash.len(), 16);
    assert!(failure["summary"]
        .as_str()
        .unwrap()
        .contains(&format!("hash={hash}")));
    let per_variant: Vec<(String, u64)> = json["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["variant"].as_str().unwrap().to_string(),
                v["runs"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per_variant,
        [("fixed".to_string(), 6), ("flawed".to_string(), 6)]
    );

    let env_run = std::process::Command::new(env!("CARGO_BIN_EXE_groundhog"))
        .args(["run", "ping-pong", "--variant", "flawed"])
        .env("GROUNDHOG_SEED", "4")
        .output()
        .unwrap();
    let flag_run = groundhog(&["run", "ping-pong", "--variant", "flawed", "--seed", "4"]);
    assert_eq!(env_run.stdout, flag_run.stdout);
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn fail_fast_stops_early() {
    let out = groundhog(&[
        "sweep",
        "lost-update",
        "--variant",
        "flawed",
        "--seeds",
        "0..2000",
        "--jobs",
        "1",
        "--fail-fast",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("repro: ")).count(),
        1,
        "{text}"
    );
    assert!(text.contains("stopped at first failure"), "{text}");
}

/// Bad input: exit 2 and exactly one readable line on stderr, never a panic.
fn bad(args: &[&str], expect: &str) {
    let out = groundhog(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
    assert!(
        err.contains(expect),
        "{args:?}: {err:?} should mention {expect:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn bad_input_gets_one_line_and_exit_2() {
    bad(
        &["run", "nope", "--seed", "1"],
        // A prefix: the catalogue grows.
        "unknown scenario `nope` (known: ping-pong, lost-update, ",
    );
    bad(
        &["run", "ping-pong", "--variant", "broken", "--seed", "1"],
        "no variant `broken` (known: fixed, flawed)",
    );
    bad(
        &["sweep", "ping-pong", "--seeds", "9..3"],
        "start 9 is after end 3",
    );
    bad(
        &["sweep", "ping-pong", "--seeds", "abc"],
        "`abc` is not a seed",
    );
    bad(&["check", "--all", "--seeds", "4..4"], "holds no seeds");
    bad(&["run", "ping-pong", "--seed", "x"], "invalid value 'x'");
    bad(
        &["sweep", "ping-pong", "--seeds", "0..9", "--shard", "5/4"],
        "bad shard",
    );
    bad(
        &["sweep", "--seeds", "0..9"],
        "name a scenario or pass --all",
    );
    bad(
        &[
            "run",
            "ping-pong",
            "--seed",
            "1",
            "--faults",
            "explode-node",
        ],
        "unknown fault `explode-node`",
    );
    bad(
        &["sweep", "ping-pong", "--seeds", "0..9", "--jobs", "0"],
        "--jobs must be at least 1",
    );
    bad(&["frobnicate"], "unrecognized subcommand");
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_users_own_binary_names_itself_and_bare_invocation_prints_usage() {
    let mine = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mine");
    std::fs::copy(env!("CARGO_BIN_EXE_groundhog"), &mine).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(&mine)
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(stdout(&run(&["--version"])).trim(), "mine 0.1.0");
    let failed = run(&["run", "lost-update", "--variant", "flawed", "--seed", "17"]);
    assert!(
        stdout(&failed).contains("repro: mine replay lost-update --variant flawed --seed 17"),
        "{}",
        stdout(&failed)
    );
    let bare = groundhog(&[]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(
        stderr(&bare).contains("Usage: groundhog <COMMAND>"),
        "{}",
        stderr(&bare)
    );
    assert!(stderr(&bare).contains("sweep"), "the commands are listed");
}

/// `--buggify` turns the runtime's buggify points on for `run`, `replay`, `sweep` and `check`;
/// a failing run's repro line carries it and replays to the same hash; `plan` prints it; and
/// without the flag nothing changes (the README example's hash is the one it always had).
/// Catches the flag being parsed but not applied (no `buggify on` note, no site firing), a repro
/// line that drops it (the replay's hash differs), and buggify leaking into runs without it.
#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn buggify_flag_turns_buggify_on_and_its_repro_line_replays() {
    let plain = groundhog(&["run", "lost-update", "--variant", "flawed", "--seed", "17"]);
    let plain_line = stdout(&plain).lines().next().unwrap().to_string();
    assert_eq!(
        hash_of(&plain_line),
        "af8b5247adab7621",
        "without --buggify the README example is unchanged"
    );

    let seed = BUGGIFY_SEED.to_string();
    let args = [
        "run",
        "amnesiac-restart",
        "--variant",
        "flawed",
        "--seed",
        &seed,
        "--buggify",
        "--trace",
    ];
    let on = groundhog(&args);
    assert_eq!(on.status.code(), Some(1), "{}", stdout(&on));
    let text = stdout(&on);
    assert!(
        text.contains("msg=\"buggify on\""),
        "the flag turns buggify on"
    );
    assert!(
        text.lines().any(|l| l.contains("buggify site=")),
        "a runtime site fires in seed {seed}"
    );
    let result = text
        .lines()
        .find(|l| l.starts_with("amnesiac-restart variant="))
        .unwrap();
    let repro = text
        .lines()
        .find_map(|l| l.strip_prefix("repro: "))
        .unwrap();
    assert_eq!(
        repro,
        format!("groundhog replay amnesiac-restart --variant flawed --seed {seed} --buggify")
    );
    let replay_args: Vec<&str> = repro.split_whitespace().skip(1).collect();
    let again = groundhog(&replay_args);
    assert_eq!(again.status.code(), Some(1));
    let replayed = stdout(&again);
    let summary = replayed
        .lines()
        .find(|l| l.starts_with("amnesiac-restart variant="))
        .unwrap();
    assert_eq!(hash_of(summary), hash_of(result));
    let off = groundhog(&args[..6]);
    let off_line = stdout(&off);
    assert!(!off_line.contains("buggify"), "{off_line}");
    assert_ne!(
        hash_of(off_line.lines().next().unwrap()),
        hash_of(result),
        "the flag changes the run"
    );

    // sweep and check take it too; sweep's repro lines carry it.
    let sweep = groundhog(&[
        "sweep",
        "amnesiac-restart",
        "--variant",
        "flawed",
        "--seeds",
        &format!("{seed}..={seed}"),
        "--buggify",
    ]);
    assert_eq!(sweep.status.code(), Some(1));
    assert!(
        stdout(&sweep).contains(&format!("--seed {seed} --buggify")),
        "{}",
        stdout(&sweep)
    );
    let check = groundhog(&["check", "amnesiac-restart", "--seeds", "0..3", "--buggify"]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    let plan = groundhog(&["plan", "lost-update", "--seed", "17", "--buggify"]);
    assert!(
        stdout(&plan).lines().any(|l| l.trim() == "buggify = true"),
        "{}",
        stdout(&plan)
    );
    let plan = groundhog(&["plan", "lost-update", "--seed", "17"]);
    assert!(!stdout(&plan).contains("buggify = true"));
}

/// A seed of `amnesiac-restart` (flawed) that fails with a runtime buggify site firing.
const BUGGIFY_SEED: u64 = 27;
