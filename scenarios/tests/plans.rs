//! Hand-written and generated fault plans through the CLI.

use std::path::PathBuf;

use crate::{groundhog, hash_of, stderr, stdout};

fn write(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn bad_plan(name: &str, text: &str, expect: &str) {
    let path = write(name, text);
    let out = groundhog(&[
        "run",
        "ping-pong",
        "--seed",
        "1",
        "--plan",
        path.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains(expect), "{err:?} should mention {expect:?}");
    assert!(err.contains(name), "the message names the file: {err:?}");
}

#[test]
fn malformed_plans_are_rejected_saying_where() {
    bad_plan(
        "garbled.toml",
        "quiet_at_ms = 10\n[[fault]\n",
        "(line 2, column",
    );
    bad_plan(
        "unknown-fault.toml",
        "quiet_at_ms = 10\n[[fault]]\nat_ms = 1\nfault = \"explode-node\"\n",
        "unknown variant `explode-node`",
    );
    bad_plan(
        "far-node.toml",
        "quiet_at_ms = 100\n[[fault]]\nat_ms = 5\nfault = \"crash-node\"\nnode = 9\n",
        "fault #0 (at_ms 5): crash-node names node 9, but the scenario has nodes 0..3",
    );
    bad_plan(
        "bad.json",
        "{\"quiet_at_ms\": \"soon\"}",
        "malformed plan file",
    );
    let out = groundhog(&[
        "run",
        "ping-pong",
        "--seed",
        "1",
        "--plan",
        "/nonexistent/plan.toml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read plan file /nonexistent/plan.toml"));
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_plan_file_drives_the_run_and_appears_in_the_repro_line() {
    let path = write(
        "partition.toml",
        "quiet_at_ms = 2000\n\
         [[fault]]\nat_ms = 300\nfault = \"partition\"\ngroups = [[0], [1, 2]]\n\
         [[fault]]\nat_ms = 1200\nfault = \"heal\"\n",
    );
    let p = path.to_str().unwrap();
    let out = groundhog(&[
        "replay",
        "ping-pong",
        "--variant",
        "fixed",
        "--seed",
        "3",
        "--plan",
        p,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.starts_with("0.3000")
            && l.ends_with("-- fault fault=\"partition groups=[[0], [1, 2]]\"")),
        "{text}"
    );
    assert!(text
        .lines()
        .any(|l| l.starts_with("1.2000") && l.ends_with("-- fault fault=heal")));

    let json = write(
        "partition.json",
        r#"{"quiet_at_ms":2000,"fault":[{"at_ms":300,"fault":"partition","groups":[[0],[1,2]]},{"at_ms":1200,"fault":"heal"}]}"#,
    );
    let same = groundhog(&[
        "run",
        "ping-pong",
        "--variant",
        "fixed",
        "--seed",
        "3",
        "--plan",
        json.to_str().unwrap(),
    ]);
    assert_eq!(
        hash_of(&stdout(&same)),
        hash_of(text.lines().last().unwrap())
    );

    let flawed = groundhog(&[
        "run",
        "ping-pong",
        "--variant",
        "flawed",
        "--seed",
        "4",
        "--plan",
        p,
    ]);
    assert_eq!(flawed.status.code(), Some(1));
    assert!(stdout(&flawed).contains(&format!(
        "repro: groundhog replay ping-pong --variant flawed --seed 4 --plan {p}"
    )));
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn a_generated_plan_written_to_a_file_replays_the_same_run() {
    let plan = groundhog(&["plan", "lost-update", "--seed", "21"]);
    assert_eq!(plan.status.code(), Some(0));
    let path = write("generated-21.toml", &stdout(&plan));
    let from_file = groundhog(&[
        "run",
        "lost-update",
        "--seed",
        "21",
        "--plan",
        path.to_str().unwrap(),
    ]);
    let generated = groundhog(&["run", "lost-update", "--seed", "21"]);
    assert_eq!(hash_of(&stdout(&from_file)), hash_of(&stdout(&generated)));
}
