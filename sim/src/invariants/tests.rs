//! Each invariant against hand-made traces: one that breaks it, one that does not.

use super::*;

/// Feeds `lines` (trace lines without their time: one millisecond apart), then the end-of-run
/// checks at `end_s` seconds; returns the violated invariant's name.
fn verdict_at(lines: &[&str], end_s: u64, skip: &[&str]) -> Option<String> {
    let mut inv = Invariants::new(skip).unwrap();
    for (i, line) in lines.iter().enumerate() {
        let t = Duration::from_millis(i as u64 + 1);
        inv.observe(&format!("{} {line}", time(t)));
    }
    inv.finish(Duration::from_secs(end_s));
    inv.violation().map(|v| v.invariant.clone())
}

fn verdict(lines: &[&str]) -> Option<String> {
    verdict_at(lines, 1, &[])
}

fn fails(invariant: &str, lines: &[&str]) {
    assert_eq!(verdict(lines).as_deref(), Some(invariant), "{lines:#?}");
}

fn passes(lines: &[&str]) {
    assert_eq!(verdict(lines), None, "{lines:#?}");
}

const SPAWN_A: &str = "n0 spawn pid=<0.1.1> name=a";
const SPAWN_B: &str = "n1 spawn pid=<1.1.1> name=b";

#[test]
fn parses_quoted_fields_and_the_harness_node() {
    let line = parse("1.500000000 -- fault fault=\"crash-node node=1\" skipped=x").unwrap();
    assert_eq!(line.time, Duration::from_millis(1500));
    assert_eq!(line.node, None);
    assert_eq!(line.get("fault"), Some("crash-node node=1"));
    assert_eq!(line.get("skipped"), Some("x"));
    let line = parse("0.000000001 n3 down watcher=<3.2.1> reference=#3.2.9").unwrap();
    assert_eq!(line.node, Some(3));
    assert_eq!(line.pid("watcher"), Some((3, 2, 1)));
    assert_eq!(line.reference("reference"), Some((3, 2, 9)));
}

#[test]
fn unknown_names_to_skip_are_refused() {
    assert!(Invariants::new(&["fifo", "one-down"]).is_ok());
    assert!(Invariants::new(&["fifo-order"]).is_err());
}

#[test]
fn one_down() {
    let monitor = "n0 monitor watcher=<0.1.1> pid=<1.1.1> reference=#0.1.4";
    let down = "n0 down watcher=<0.1.1> pid=<1.1.1> reference=#0.1.4 reason=noconnection";
    passes(&[SPAWN_A, monitor, down]);
    // A call to a dead process: its down has no monitor line at all.
    passes(&[SPAWN_A, down]);
    fails("one-down", &[SPAWN_A, monitor, down, down]);
    // The down came first, then a monitor line made its reference.
    fails("one-down", &[SPAWN_A, down, monitor]);
    fails(
        "one-down",
        &[
            SPAWN_A,
            "n0 send from=<0.1.1> to=<1.1.1> call=#0.1.4 digest=00000001",
            "n0 down watcher=<0.1.1> pid=<1.1.2> reference=#0.1.4 reason=noproc",
        ],
    );
}

#[test]
fn no_message_after_exit() {
    let send = "n0 send from=<0.1.1> to=<1.1.1> digest=0000000a";
    let exit = "n0 exit pid=<0.1.1> name=a reason=normal";
    let deliver = "n1 deliver from=<0.1.1> to=<1.1.1> digest=0000000a";
    // Sent before the exit, delivered after it: in flight, legal.
    passes(&[SPAWN_A, SPAWN_B, send, exit, deliver]);
    fails("no-message-after-exit", &[SPAWN_A, SPAWN_B, exit, send]);
    // A node restart ends every process of the node's previous incarnation.
    fails(
        "no-message-after-exit",
        &[SPAWN_A, "n0 node state=start incarnation=2", send],
    );
    fails(
        "no-message-after-exit",
        &[SPAWN_A, "-- fault fault=\"crash-node node=0\"", send],
    );
    passes(&[
        SPAWN_A,
        "-- fault fault=\"crash-node node=0\" skipped=already-crashed",
        send,
    ]);
}

#[test]
fn fifo() {
    let send = |d: &str| format!("n0 send from=<0.1.1> to=<1.1.1> digest={d}");
    let deliver = |d: &str| format!("n1 deliver from=<0.1.1> to=<1.1.1> digest={d}");
    let (sa, sb, da, db) = (send("a"), send("b"), deliver("a"), deliver("b"));
    passes(&[SPAWN_A, SPAWN_B, &sa, &sb, &da, &db]);
    // Loss is not disorder: `a` lost, `b` delivered.
    passes(&[SPAWN_A, SPAWN_B, &sa, &sb, &db]);
    fails("fifo", &[SPAWN_A, SPAWN_B, &sa, &sb, &db, &da]);
    fails("fifo", &[SPAWN_A, SPAWN_B, &sa, &da, &da]);
    fails("fifo", &[SPAWN_A, SPAWN_B, &da]);
    // Equal payloads: a, b, a sent; a, a, b delivered cannot be in order.
    fails("fifo", &[SPAWN_A, SPAWN_B, &sa, &sb, &sa, &da, &da, &db]);
    // Local messages carry no digest and are not matched.
    passes(&[
        SPAWN_A,
        "n0 deliver from=<0.1.2> to=<0.1.1>",
        "n0 deliver from=<0.1.2> to=<0.1.1>",
    ]);
    // A name-addressed remote send may be the one delivered.
    passes(&[
        SPAWN_A,
        SPAWN_B,
        "n0 send from=<0.1.1> to_node=1 name=reg",
        &da,
    ]);
    // Another pair's sends do not count.
    fails(
        "fifo",
        &[
            SPAWN_A,
            SPAWN_B,
            "n0 send from=<0.1.1> to=<1.1.2> digest=a",
            &da,
        ],
    );
}

#[test]
fn nothing_after_down() {
    let monitor = "n1 monitor watcher=<1.1.1> pid=<0.1.1> reference=#1.1.4";
    let down = "n1 down watcher=<1.1.1> pid=<0.1.1> reference=#1.1.4 reason=normal";
    let send = "n0 send from=<0.1.1> to=<1.1.1> digest=0000000a";
    let deliver = "n1 deliver from=<0.1.1> to=<1.1.1> digest=0000000a";
    // Sent before the Down, delivered after it: the Down overtook a message.
    fails(
        "nothing-after-down",
        &[SPAWN_A, SPAWN_B, monitor, send, down, deliver],
    );
    passes(&[SPAWN_A, SPAWN_B, monitor, send, deliver, down]);
    // Sent after the Down: may arrive.
    passes(&[SPAWN_A, SPAWN_B, monitor, down, send, deliver]);
    // Two equal payloads, one before and one after: the delivery may be the later one.
    passes(&[SPAWN_A, SPAWN_B, monitor, send, down, send, deliver]);
    // The issue-20 trace: node-down by silence, its Down(noconnection), then the old message.
    let silence = "n1 node-down peer=0 why=silence";
    let noconn = "n1 down watcher=<1.1.1> pid=<0.1.1> reference=#1.1.4 reason=noconnection";
    fails(
        "nothing-after-down",
        &[SPAWN_A, SPAWN_B, monitor, send, silence, noconn, deliver],
    );
    // Node level, without any monitor.
    fails(
        "nothing-after-down",
        &[SPAWN_A, SPAWN_B, send, silence, deliver],
    );
    passes(&[SPAWN_A, SPAWN_B, silence, send, deliver]);
    // A Down(noconnection) with no node-down (a node never heard from) decides nothing.
    passes(&[SPAWN_A, SPAWN_B, monitor, send, noconn, deliver]);
    // n0 declaring n1 down says nothing about what n1 receives from n0.
    passes(&[
        SPAWN_A,
        SPAWN_B,
        send,
        "n0 node-down peer=1 why=silence",
        deliver,
    ]);
    // A silence about a crashed incarnation, noticed just after the restarted one sent: the
    // new incarnation was never heard, its session is not the one declared down.
    let crashed_then_back = [
        SPAWN_A,
        SPAWN_B,
        "n0 node state=start incarnation=1",
        "-- fault fault=\"crash-node node=0\"",
        "n0 node state=start incarnation=2",
        "n0 spawn pid=<0.2.1> name=a",
        "n0 send from=<0.2.1> to=<1.1.1> digest=0000000b",
        silence,
        "n1 deliver from=<0.2.1> to=<1.1.1> digest=0000000b",
    ];
    passes(&crashed_then_back);
    // ... but once n1 had heard the new incarnation, a silence is about it.
    fails(
        "nothing-after-down",
        &[
            SPAWN_A,
            SPAWN_B,
            "n0 node state=start incarnation=1",
            "n0 node state=start incarnation=2",
            "n0 spawn pid=<0.2.1> name=a",
            "n0 send from=<0.2.1> to=<1.1.1> digest=0000000b",
            "n1 deliver from=<0.2.1> to=<1.1.1> digest=0000000b",
            "n0 send from=<0.2.1> to=<1.1.1> digest=0000000b",
            silence,
            "n1 deliver from=<0.2.1> to=<1.1.1> digest=0000000b",
        ],
    );
    // Both sides time out; n0 sends on the session it began at its own node-down, and n1 sees
    // it after its own: a new connection (orphan-task flawed, seed 9).
    passes(&[
        SPAWN_A,
        SPAWN_B,
        "n0 node-down peer=1 why=silence",
        send,
        silence,
        deliver,
    ]);
    // A reset is caused by the restarted peer's new session: its messages, sent just before
    // the reset was noticed, may arrive; the old incarnation's may not.
    let reset = "n1 node-down peer=0 why=reset";
    let spawn_new = "n0 spawn pid=<0.2.1> name=a";
    let send_new = "n0 send from=<0.2.1> to=<1.1.1> digest=0000000b";
    let deliver_new = "n1 deliver from=<0.2.1> to=<1.1.1> digest=0000000b";
    passes(&[
        SPAWN_A,
        SPAWN_B,
        "n0 node state=start incarnation=2",
        spawn_new,
        send_new,
        reset,
        deliver_new,
    ]);
    fails(
        "nothing-after-down",
        &[
            SPAWN_A,
            SPAWN_B,
            send,
            "n0 node state=start incarnation=2",
            spawn_new,
            reset,
            deliver,
        ],
    );
}

#[test]
fn no_link_to_dead() {
    let spawn_c = "n0 spawn pid=<0.1.2> name=c";
    let exit_c = "n0 exit pid=<0.1.2> name=c reason=normal";
    let link = "n0 link from=<0.1.1> to=<0.1.2>";
    let signal = "n0 signal from=<0.1.2> to=<0.1.1> reason=noproc effect=trapped";
    passes(&[SPAWN_A, spawn_c, exit_c, link, signal]);
    fails("no-link-to-dead", &[SPAWN_A, spawn_c, exit_c, link]);
    fails(
        "no-link-to-dead",
        &[SPAWN_A, spawn_c, exit_c, link, "n0 note msg=x", signal],
    );
    // Across nodes the signal may take time, but must come before the run ends.
    let exit_b = "n1 exit pid=<1.1.1> name=b reason=normal";
    let remote = "n0 link from=<0.1.1> to=<1.1.1>";
    let remote_signal = "n0 signal from=<1.1.1> to=<0.1.1> reason=noproc effect=trapped";
    assert_eq!(
        verdict_at(&[SPAWN_A, SPAWN_B, exit_b, remote], 10, &[]).as_deref(),
        Some("no-link-to-dead")
    );
    assert_eq!(
        verdict_at(&[SPAWN_A, SPAWN_B, exit_b, remote, remote_signal], 10, &[]),
        None
    );
    // Too close to the end to judge.
    assert_eq!(
        verdict_at(&[SPAWN_A, SPAWN_B, exit_b, remote], 1, &[]),
        None
    );
    // The linker's node declared the target's node down: the NoConnection covered it.
    let down = "n0 node-down peer=1 why=silence";
    assert_eq!(
        verdict_at(&[SPAWN_A, SPAWN_B, exit_b, remote, down], 10, &[]),
        None
    );
}

#[test]
fn intensity() {
    let restart = "n0 restart sup=<0.1.1> child=c reason=boom intensity=2 period_ms=1000";
    passes(&[SPAWN_A, restart, restart]);
    fails("intensity", &[SPAWN_A, restart, restart, restart]);
    // Restarts 1 ms apart under a 2 ms window: never more than 2 inside one window.
    let quick = "n0 restart sup=<0.1.1> child=c reason=boom intensity=2 period_ms=2";
    passes(&[SPAWN_A, quick, quick, quick, quick]);
    // Another supervisor's restarts do not count.
    let other = "n0 restart sup=<0.1.9> child=c reason=boom intensity=2 period_ms=1000";
    passes(&[SPAWN_A, restart, restart, other]);
}

#[test]
fn supervised_descendants() {
    let spawn_sup = "n0 spawn pid=<0.1.1> name=sup";
    let spawn_child = "n0 spawn pid=<0.1.2> name=child";
    let child_start = "n0 child-start sup=<0.1.1> child=w pid=<0.1.2>";
    let exit_sup = "n0 exit pid=<0.1.1> name=sup reason=shutdown";
    let exit_child = "n0 exit pid=<0.1.2> name=child reason=shutdown";
    let ok = [spawn_sup, spawn_child, child_start, exit_child, exit_sup];
    assert_eq!(verdict_at(&ok, 10, &[]), None);
    let orphan = [spawn_sup, spawn_child, child_start, exit_sup];
    assert_eq!(
        verdict_at(&orphan, 10, &[]).as_deref(),
        Some("supervised-descendants")
    );
    // The supervisor exited just before the end: not judged yet.
    assert_eq!(verdict_at(&orphan, 1, &[]), None);
    // Issue 21: a task spawn-linked to a task supervisor (known by its `task-failed` line)
    // survives the supervisor's exit with `normal`.
    let tasks = [
        "n0 spawn pid=<0.1.3> name=jobs",
        "n0 spawn pid=<0.1.11> name=task",
        "n0 link from=<0.1.11> to=<0.1.3>",
        "n0 spawn pid=<0.1.12> name=task",
        "n0 link from=<0.1.12> to=<0.1.3>",
        "n0 exit pid=<0.1.12> name=task reason=boom",
        "n0 task-failed sup=<0.1.3> task=<0.1.12> reason=boom",
        "n0 exit pid=<0.1.3> name=jobs reason=normal",
        "n0 signal from=<0.1.3> to=<0.1.11> reason=normal effect=ignored",
    ];
    assert_eq!(
        verdict_at(&tasks, 10, &[]).as_deref(),
        Some("supervised-descendants")
    );
    // A node crash ends the children with it.
    let crashed = [
        spawn_sup,
        spawn_child,
        child_start,
        exit_sup,
        "-- fault fault=\"crash-node node=0\"",
    ];
    assert_eq!(verdict_at(&crashed, 10, &[]), None);
}

#[test]
fn a_skipped_invariant_is_not_reported_and_the_others_still_are() {
    let exit = "n0 exit pid=<0.1.1> name=a reason=normal";
    let send = "n0 send from=<0.1.1> to=<1.1.1> digest=0000000a";
    let lines = [SPAWN_A, exit, send];
    assert_eq!(
        verdict_at(&lines, 1, &[]).as_deref(),
        Some("no-message-after-exit")
    );
    assert_eq!(verdict_at(&lines, 1, &["no-message-after-exit"]), None);
    let twice = [
        SPAWN_A,
        exit,
        send,
        "n0 down watcher=<0.1.1> pid=<1.1.1> reference=#0.1.4 reason=noproc",
        "n0 down watcher=<0.1.1> pid=<1.1.1> reference=#0.1.4 reason=noproc",
    ];
    assert_eq!(
        verdict_at(&twice, 1, &["no-message-after-exit"]).as_deref(),
        Some("one-down")
    );
}

#[test]
fn an_unquoted_value_with_spaces_runs_to_the_next_field() {
    let line = super::parse(
        "1.738001253 n0 exit pid=<0.1.4> name=worker reason=error: lost the dependency x=1",
    )
    .expect("parses");
    assert_eq!(line.get("reason"), Some("error: lost the dependency"));
    assert_eq!(line.get("x"), Some("1"));
    assert_eq!(line.pid("pid"), Some((0, 1, 4)));
    let last = super::parse("1.0 n0 exit pid=<0.1.4> reason=error: a=b c").expect("parses");
    assert_eq!(last.get("reason"), Some("error:"));
    assert_eq!(last.get("a"), Some("b c"));
}
