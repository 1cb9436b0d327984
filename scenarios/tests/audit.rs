//! The harness audit's bad inputs, one table row each: every malformed command line and plan exits
//! 2 with one readable line naming the problem, and never panics or reports a failed run (a hang
//! is the test runner's to catch: no wall-clock bound here).

use std::path::PathBuf;

use crate::{groundhog, stderr, stdout};

/// A command line, and a piece of the one line it must print on stderr.
const COMMAND_LINES: &[(&str, &str)] = &[
    (
        "sweep ping-pong --seeds 0..3 --shard 5/10",
        "shard 5/10 of seeds 0..3 holds no seeds",
    ),
    (
        "sweep ping-pong --seeds 0..18446744073709551615 --jobs 100000",
        "--jobs 100000 is more than 256",
    ),
    (
        "prove ping-pong --ranges 100000000000",
        "--ranges must be from 1 to 10000",
    ),
    (
        "prove ping-pong --ranges 0",
        "--ranges must be from 1 to 10000",
    ),
    (
        "prove ping-pong --ranges 3 --range-width 9223372036854775808",
        "run past the largest seed",
    ),
    (
        "prove ping-pong --fixed-seeds 0 --check-seeds 0",
        "--fixed-seeds must be at least 1",
    ),
    (
        "prove ping-pong --check-seeds 0",
        "--check-seeds must be at least 1",
    ),
    (
        "prove ping-pong --range-width 0",
        "--range-width must be at least 1",
    ),
    (
        "prove ping-pong --jobs 100000",
        "--jobs 100000 is more than 256",
    ),
    (
        "run ping-pong --seed 1 --nodes 1000000",
        "past the largest simulated cluster, 1024 nodes",
    ),
    (
        "run ping-pong --seed 1 --nodes 0",
        "a run needs at least one node",
    ),
    (
        "plan ping-pong --seed 1 --nodes 0",
        "a run needs at least one node",
    ),
    (
        "run split-registry --seed 1 --nodes 1",
        "`split-registry` runs on exactly 3 node(s), not 1",
    ),
    (
        "run blocking-call --seed 1 --nodes 8",
        "`blocking-call` runs on exactly 1 node(s), not 8",
    ),
    (
        "sweep stale-registry --seeds 0..3 --nodes 8",
        "`stale-registry` runs on exactly",
    ),
    (
        "plan ping-pong --seed 1 --nodes 4000000000 --faults clog-link --intensity 1",
        "past the largest simulated cluster",
    ),
    (
        "run ping-pong --seed 1 --intensity -0.5",
        "intensity -0.5 is not between 0 and 1",
    ),
    (
        "run ping-pong --seed 1 --intensity 3",
        "intensity 3 is not between 0 and 1",
    ),
    (
        "run ping-pong --seed 1 --intensity nan",
        "intensity NaN is not between 0 and 1",
    ),
    (
        "run ping-pong",
        "required arguments were not provided: --seed <SEED>",
    ),
    (
        "sweep ping-pong",
        "required arguments were not provided: --seeds <SEEDS>",
    ),
    ("sweep ping-pong --seeds 0..9 --shard 0/4", "bad shard"),
    (
        "sweep ping-pong --seeds 0..=18446744073709551615",
        "end too large",
    ),
    ("run ping-pong --seed 18446744073709551616", "invalid value"),
    ("new Bad_Name", "bad name `Bad_Name`"),
    ("new fine --dir /", "/ already exists; nothing was written"),
    (
        "new fine --dir /nonexistent/x --groundhog /tmp",
        "/tmp is not a Groundhog checkout",
    ),
    (
        "run ping-pong --seed 1 --nodes -3",
        "invalid value '-3' for '--nodes <NODES>'",
    ),
    (
        "run ping-pong --seed -1",
        "invalid value '-1' for '--seed <SEED>'",
    ),
    ("sweep ping-pong --seeds -1..4", "`-1` is not a seed"),
    (
        "sweep ping-pong --seeds 0..4 --jobs -2",
        "invalid value '-2' for '--jobs <JOBS>'",
    ),
];

/// A plan file's text, and a piece of the message it must give (the file name is always there).
const PLANS: &[(&str, &str)] = &[
    ("quiet_at_ms = 100\n[[fau8t]]\nat_ms = 5\nfault = \"heal\"\n", "unknown key `fau8t` (line 2)"),
    ("quiet_at_ms = 100\n[[faults]]\nat_ms = 5\nfault = \"heal\"\n", "unknown key `faults` (line 2)"),
    ("quiet_at_ms = 100\n[[fault]]\nat_ms = 5\nfault = \"crash-node\"\nnode = 1\nnodee = 2\n", "unknown key `fault[0].nodee` (line 6)"),
    ("quiet_at_ms = 100\nquiet_at = 5\n", "unknown key `quiet_at` (line 2)"),
    ("quiet_at_ms = 100\n[net]\nloss = 0.0\nmin_ms = 1\nmax_ms = 2\njitter = 3\n", "unknown key `net.jitter` (line 6)"),
    ("quiet_at_ms = 100\n[[fault]]\nat_ms = 5\nfault = \"partition\"\ngroups = [[0, 1, 2], []]\n", "partition has an empty group"),
    ("quiet_at_ms = 100\n[[fault]]\nat_ms = 5\nfault = \"partition\"\ngroups = [[0, 1, 2]]\n", "partition splits nothing"),
    ("quiet_at_ms = 9000000\n", "past its time limit of 600000 ms"),
    ("quiet_at_ms = 9223372036854775807\n", "past its time limit"),
    ("quiet_at_ms = 100\n[[fault]]\nat_ms = 9223372036854775807\nfault = \"heal\"\n", "comes after quiet_at_ms 100"),
    ("quiet_at_ms = 100\n[net]\nloss = 0.0\nmin_ms = 1\nmax_ms = 1000000000000\n", "[net] max_ms 1000000000000 is past the largest latency 60000 ms"),
    ("quiet_at_ms = 100\n[[fault]]\nat_ms = 5\nfault = \"set-latency\"\nmin_ms = 1\nmax_ms = 1000000000000\n", "is past the largest latency"),
    ("quiet_at_ms = 100\n[net]\nloss = nan\nmin_ms = 1\nmax_ms = 2\n", "loss NaN is not between 0 and 1"),
    ("quiet_at_ms = 100\n[[fault]]\nat_ms = 5\nfault = \"set-loss\"\nrate = 1.5\n", "set-loss rate 1.5"),
    ("quiet_at_ms = -1\n", "invalid value"),
    ("", "missing field `quiet_at_ms`"),
];

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Exit 2, one line on stderr containing `expect`, nothing on stdout, no panic, and quickly.
fn refused(args: &[&str], expect: &str) {
    let out = groundhog(args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: {err}{}",
        stdout(&out)
    );
    assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
    assert!(err.starts_with("groundhog: "), "{args:?}: {err:?}");
    assert!(
        err.contains(expect),
        "{args:?}: {err:?} should mention {expect:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn every_bad_command_line_of_the_audit_exits_2_with_one_line() {
    for (line, expect) in COMMAND_LINES {
        refused(&words(line), expect);
    }
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn every_bad_plan_of_the_audit_exits_2_with_one_line_naming_the_file() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for (i, (text, expect)) in PLANS.iter().enumerate() {
        let path = dir.join(format!("audit-plan-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        for command in ["run", "plan"] {
            refused(&[command, "ping-pong", "--seed", "1", "--plan", p], expect);
        }
        refused(
            &["sweep", "ping-pong", "--seeds", "0..2", "--plan", p],
            expect,
        );
    }
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_plan_that_is_not_a_regular_file_or_too_large_is_refused_before_reading() {
    refused(
        &["run", "ping-pong", "--seed", "1", "--plan", "/dev/zero"],
        "not a regular file",
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    refused(
        &[
            "run",
            "ping-pong",
            "--seed",
            "1",
            "--plan",
            dir.to_str().unwrap(),
        ],
        "not a regular file",
    );
    let big = dir.join("audit-big.toml");
    let mut text = String::from("quiet_at_ms = 100\n");
    while text.len() <= 1 << 20 {
        text.push_str("# padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&big, text).unwrap();
    refused(
        &[
            "run",
            "ping-pong",
            "--seed",
            "1",
            "--plan",
            big.to_str().unwrap(),
        ],
        "larger than 1048576 bytes",
    );
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_plan_with_intensity_or_kinds_is_contradictory() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("audit-quiet.toml");
    std::fs::write(&path, "quiet_at_ms = 100\n").unwrap();
    let p = path.to_str().unwrap();
    refused(
        &[
            "run",
            "ping-pong",
            "--seed",
            "1",
            "--plan",
            p,
            "--intensity",
            "0.5",
        ],
        "--intensity shapes a generated plan",
    );
    refused(
        &[
            "run",
            "ping-pong",
            "--seed",
            "1",
            "--plan",
            p,
            "--faults",
            "heal",
        ],
        "--faults shapes a generated plan",
    );
    // The same plan alone runs.
    let ok = groundhog(&[
        "run",
        "ping-pong",
        "--seed",
        "1",
        "--plan",
        p,
        "--variant",
        "fixed",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}{}", stdout(&ok), stderr(&ok));
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn every_plan_that_run_accepts_plan_prints_and_the_reverse() {
    // `plan` used to panic serializing a plan that `run` had accepted.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("audit-valid.json");
    std::fs::write(
        &path,
        r#"{"quiet_at_ms": 500, "fault": [{"at_ms": 10, "fault": "heal"}]}"#,
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let printed = groundhog(&["plan", "ping-pong", "--seed", "1", "--plan", p]);
    assert_eq!(printed.status.code(), Some(0), "{}", stderr(&printed));
    let toml = dir.join("audit-valid.toml");
    std::fs::write(&toml, stdout(&printed)).unwrap();
    let run = groundhog(&[
        "run",
        "ping-pong",
        "--seed",
        "1",
        "--variant",
        "fixed",
        "--plan",
        toml.to_str().unwrap(),
    ]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        stdout(&run),
        stderr(&run)
    );
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn the_whole_seed_space_in_a_million_shards_starts_at_once() {
    let out = groundhog(&[
        "sweep",
        "ping-pong",
        "--variant",
        "flawed",
        "--seeds",
        "0..18446744073709551615",
        "--shard",
        "1/1000000",
        "--fail-fast",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("stopped at first failure"), "{text}");
    assert!(
        text.contains("repro: groundhog replay ping-pong --variant flawed --seed "),
        "{text}"
    );
}
