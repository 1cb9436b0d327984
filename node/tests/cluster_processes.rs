//! `groundhog-node` as separate operating-system processes on 127.0.0.1: a three-node cluster
//! that finds itself, resolves names through the cluster registry and calls across nodes; a node
//! killed with SIGKILL, seen down by the survivors and restarted as a new incarnation that
//! rejoins; a node with the wrong secret that never joins; and the console's and flags' errors.
//!
//! Real build only (the simulation build's binary refuses to run, which one test checks). Every
//! wait reads the nodes' output, or repeats a command, until a condition or a deadline
//! ([`WAIT`]); no wait is a fixed sleep. Failure detection is generous (`--down-after-ms 3000`,
//! 60 heartbeats), so a loaded machine that stalls a node for a second does not declare it down.
//! Every child is killed when its handle drops, so a failing test leaves no process behind.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_groundhog-node");
/// The variable the nodes read their secret from (set on each child only).
const SECRET_VAR: &str = "GROUNDHOG_NODE_TEST_SECRET";
const SECRET: &str = "the cluster's secret for this test";
const WRONG_SECRET: &str = "some other cluster's secret entirely";
/// Bounds every wait of a failing test; a passing one ends on its conditions long before.
const WAIT: Duration = Duration::from_secs(30);
/// Between two tries of a command whose answer is awaited.
const RETRY: Duration = Duration::from_millis(20);

/// Where a node's secret comes from.
#[derive(Clone)]
enum Secret {
    Env(&'static str),
    File(std::path::PathBuf),
}

/// One running `groundhog-node`; killed (SIGKILL) and reaped when dropped.
struct NodeProc {
    id: u32,
    child: Child,
    /// `None` once closed on purpose.
    stdin: Option<ChildStdin>,
    /// Answer lines (and `ready`), in order.
    answers: Receiver<String>,
    /// `event ...` lines as they arrive, without the `event ` prefix.
    events_rx: Receiver<String>,
    /// Every event received so far.
    events: Vec<String>,
    stderr: Arc<Mutex<String>>,
    /// The address from `ready`.
    addr: String,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn spawn(id: u32, listen: &str, peers: &[(u32, String)], secret: &Secret) -> NodeProc {
    let mut cmd = Command::new(BIN);
    cmd.args(["--node", &id.to_string(), "--listen", listen])
        .args(["--heartbeat-ms", "50", "--down-after-ms", "3000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (peer, addr) in peers {
        cmd.args(["--peer", &format!("{peer}={addr}")]);
    }
    match secret {
        Secret::Env(value) => {
            cmd.args(["--secret-env", SECRET_VAR])
                .env(SECRET_VAR, value);
        }
        Secret::File(path) => {
            cmd.arg("--secret-file").arg(path);
        }
    }
    let mut child = cmd.spawn().expect("groundhog-node starts");
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let (answers_tx, answers) = mpsc::channel();
    let (events_tx, events_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let sent = match line.strip_prefix("event ") {
                Some(event) => events_tx.send(event.to_string()),
                None => answers_tx.send(line),
            };
            if sent.is_err() {
                return;
            }
        }
    });
    let stderr = Arc::new(Mutex::new(String::new()));
    let into = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = err_pipe.read_to_string(&mut buf);
        lock(&into).push_str(&buf);
    });
    let mut node = NodeProc {
        id,
        child,
        stdin: Some(stdin),
        answers,
        events_rx,
        events: Vec::new(),
        stderr,
        addr: String::new(),
    };
    let ready = node.next_answer("ready");
    node.addr = ready
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("node {id}: expected `ready ADDR`, got `{ready}`"))
        .to_string();
    node
}

impl NodeProc {
    fn fail(&self, what: &str) -> ! {
        let err = lock(&self.stderr).clone();
        panic!(
            "node {}: {what}\nevents so far: {:?}\nstderr: {err}",
            self.id, self.events
        );
    }

    fn next_answer(&mut self, what: &str) -> String {
        match self.answers.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                self.fail(&format!("no answer to {what} in {WAIT:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait();
                self.fail(&format!("exited ({status:?}) before answering {what}"))
            }
        }
    }

    /// Sends one command line and returns its answer line.
    fn ask(&mut self, command: &str) -> String {
        let sent = match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{command}").is_ok(),
            None => false,
        };
        if !sent {
            self.fail(&format!("stdin closed before `{command}`"));
        }
        self.next_answer(&format!("`{command}`"))
    }

    /// Repeats `command` until its answer satisfies `done`, or fails at the deadline.
    fn ask_until(&mut self, command: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let answer = self.ask(command);
            if done(&answer) {
                return answer;
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "`{command}` still answers `{answer}` after {WAIT:?}"
                ));
            }
            std::thread::sleep(RETRY);
        }
    }

    /// How many events have been received so far: a mark for [`NodeProc::wait_event`].
    fn mark(&mut self) -> usize {
        self.drain_events();
        self.events.len()
    }

    fn drain_events(&mut self) {
        while let Ok(event) = self.events_rx.try_recv() {
            self.events.push(event);
        }
    }

    /// The first event at or after index `since` that satisfies `pred`, waiting for it until
    /// the deadline.
    fn wait_event(&mut self, since: usize, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut next = since;
        loop {
            self.drain_events();
            while next < self.events.len() {
                if pred(&self.events[next]) {
                    return self.events[next].clone();
                }
                next += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events_rx.recv_timeout(left) {
                Ok(event) => self.events.push(event),
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no event {what} in {WAIT:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("exited before the event {what}"))
                }
            }
        }
    }

    /// Writes raw bytes to the node's stdin.
    fn write_raw(&mut self, bytes: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut() {
            stdin.write_all(bytes).unwrap();
        }
    }

    /// The pid `whereis NAME` answers, or `None` for `none`.
    fn whereis(&mut self, name: &str) -> Option<String> {
        let answer = self.ask(&format!("whereis {name}"));
        match answer.strip_prefix("pid ") {
            Some(pid) => Some(pid.to_string()),
            None if answer == "none" => None,
            None => self.fail(&format!("`whereis {name}` answered `{answer}`")),
        }
    }

    /// One counter of the `stats` answer (`rejected`, `hellos`, `handshakes`, `authenticated`).
    fn stat(&mut self, counter: &str) -> u64 {
        let answer = self.ask("stats");
        match answer
            .starts_with("stats ")
            .then(|| stat(&answer, counter))
            .flatten()
        {
            Some(n) => n,
            None => self.fail(&format!("`stats` answered `{answer}`")),
        }
    }

    /// Repeats `stats` until `counter` is at least `at_least`.
    fn wait_stat(&mut self, counter: &str, at_least: u64) {
        self.ask_until("stats", |s| stat(s, counter).is_some_and(|n| n >= at_least));
    }
}

/// `peers a b ...`, the way a node answers `peers`.
fn peers_line(ids: &[u32]) -> String {
    let mut line = "peers".to_string();
    for id in ids {
        line.push_str(&format!(" {id}"));
    }
    line
}

/// A pid's fields: `<node.incarnation.id>`.
fn pid_parts(pid: &str) -> (u32, u64, u64) {
    let inner = pid.trim_start_matches('<').trim_end_matches('>');
    let parts: Vec<&str> = inner.split('.').collect();
    match parts[..] {
        [n, i, id] => (n.parse().unwrap(), i.parse().unwrap(), id.parse().unwrap()),
        _ => panic!("`{pid}` is not a pid"),
    }
}

/// `n` UDP ports on 127.0.0.1 that were free a moment ago (bound at once, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("a free UDP port"))
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

/// A directory of this test's own under cargo's test scratch space, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("groundhog-node-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Three nodes find each other, resolve each other's names and call across; node 1 is
/// SIGKILLed, the survivors see it down (event, `peers`, names gone, calls fail), and its
/// restart, a new incarnation on the same address, rejoins: names visible again with the new
/// incarnation's pid, calls work both ways, and the old pid no longer reaches anything.
#[test]
#[cfg_attr(madsim, ignore = "real build only: starts OS processes")]
fn a_three_process_cluster_survives_a_kill_and_a_restart() {
    let ports = free_ports(3);
    let addr = |i: u32| format!("127.0.0.1:{}", ports[i as usize]);
    let peers_of = |i: u32| -> Vec<(u32, String)> {
        (0..3).filter(|j| *j != i).map(|j| (j, addr(j))).collect()
    };
    // Node 2 reads the same secret from a file (with a trailing newline, as `echo` writes it).
    let scratch = Scratch::new("cluster");
    let secret_file = scratch.0.join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let secret_of = |i: u32| match i {
        2 => Secret::File(secret_file.clone()),
        _ => Secret::Env(SECRET),
    };
    let mut nodes: BTreeMap<u32, NodeProc> = (0..3)
        .map(|i| (i, spawn(i, &addr(i), &peers_of(i), &secret_of(i))))
        .collect();
    for (i, node) in &nodes {
        assert_eq!(node.addr, addr(*i));
    }

    // Everyone sees everyone.
    for (i, node) in nodes.iter_mut() {
        for j in (0..3).filter(|j| j != i) {
            node.wait_event(0, &format!("peer-up {j}"), |e| {
                e.starts_with(&format!("peer-up {j} <{j}."))
            });
        }
        let others: Vec<u32> = (0..3).filter(|j| j != i).collect();
        assert_eq!(node.ask("peers"), peers_line(&others));
    }

    // Every node resolves every name to the same pid, on the name's node.
    let mut echo: BTreeMap<u32, String> = BTreeMap::new();
    for (i, node) in nodes.iter_mut() {
        for j in 0..3 {
            let name = format!("echo-{j}");
            let pid = node
                .whereis(&name)
                .unwrap_or_else(|| node.fail(&format!("{name} is not visible")));
            assert_eq!(pid_parts(&pid).0, j, "node {i}: {name} is {pid}");
            let first = echo.entry(j).or_insert_with(|| pid.clone());
            assert_eq!(*first, pid, "node {i} sees another {name}");
        }
    }
    // Calls across every pair.
    for (i, node) in nodes.iter_mut() {
        for j in (0..3).filter(|j| j != i) {
            let text = format!("hello from {i} to {j}");
            assert_eq!(
                node.ask(&format!("call echo-{j} {text}")),
                format!("reply {text}")
            );
        }
    }

    // SIGKILL node 1.
    let marks: BTreeMap<u32, usize> = [0, 2]
        .map(|i| (i, nodes.get_mut(&i).unwrap().mark()))
        .into();
    let mut one = nodes.remove(&1).unwrap();
    one.child.kill().expect("SIGKILL node 1");
    one.child.wait().unwrap();
    drop(one);
    let old_pid = echo[&1].clone();
    for i in [0, 2] {
        let node = nodes.get_mut(&i).unwrap();
        node.wait_event(marks[&i], "peer-down 1", |e| {
            e == "peer-down 1 noconnection"
        });
        let other = if i == 0 { 2 } else { 0 };
        assert_eq!(node.ask("peers"), peers_line(&[other]));
        assert_eq!(
            node.whereis("echo-1"),
            None,
            "node {i}: the registry dropped echo-1"
        );
        let names = node.ask("names");
        assert!(!names.contains("echo-1="), "node {i}: {names}");
        assert!(
            names.contains("echo-0=") && names.contains("echo-2="),
            "node {i}: {names}"
        );
        assert_eq!(node.ask("call echo-1 anyone?"), "error NoProc");
        assert_eq!(
            node.ask(&format!("call {old_pid} anyone?")),
            "error NodeDown"
        );
    }

    // Restart node 1: a new process, so a new (larger) incarnation, on the same address.
    let marks: BTreeMap<u32, usize> = [0, 2]
        .map(|i| (i, nodes.get_mut(&i).unwrap().mark()))
        .into();
    nodes.insert(1, spawn(1, &addr(1), &peers_of(1), &secret_of(1)));
    let (_, old_incarnation, _) = pid_parts(&old_pid);
    for i in [0, 2] {
        let node = nodes.get_mut(&i).unwrap();
        let up = node.wait_event(marks[&i], "peer-up 1 again", |e| {
            e.starts_with("peer-up 1 ")
        });
        let new_pid = up.trim_start_matches("peer-up 1 ").to_string();
        let (n, incarnation, _) = pid_parts(&new_pid);
        assert_eq!(n, 1);
        assert!(incarnation > old_incarnation, "{new_pid} after {old_pid}");
        assert_eq!(node.whereis("echo-1"), Some(new_pid.clone()), "node {i}");
        assert_eq!(node.ask("call echo-1 welcome back"), "reply welcome back");
        // A pid of the killed incarnation reaches nothing in the new one.
        assert_eq!(node.ask(&format!("call {old_pid} anyone?")), "error NoProc");
        let others: Vec<u32> = (0..3).filter(|j| *j != i).collect();
        assert_eq!(node.ask("peers"), peers_line(&others));
    }
    let one = nodes.get_mut(&1).unwrap();
    for j in [0, 2] {
        one.wait_event(0, &format!("peer-up {j}"), |e| {
            e.starts_with(&format!("peer-up {j} "))
        });
        assert_eq!(one.whereis(&format!("echo-{j}")), Some(echo[&j].clone()));
        assert_eq!(one.ask(&format!("call echo-{j} back")), "reply back");
    }
    assert_eq!(one.ask("peers"), peers_line(&[0, 2]));

    // The survivors never saw node 1 go down twice, nor anyone else go down.
    for (i, node) in nodes.iter_mut() {
        node.drain_events();
        let downs: Vec<&String> = node
            .events
            .iter()
            .filter(|e| e.starts_with("peer-down"))
            .collect();
        let expected = if *i == 1 { 0 } else { 1 };
        assert_eq!(downs.len(), expected, "node {i}: {:?}", node.events);
    }
    for (_, mut node) in std::mem::take(&mut nodes) {
        assert_eq!(node.ask("quit"), "bye");
        let status = node.child.wait().unwrap();
        assert!(status.success(), "node {} exited {status}", node.id);
    }
}

/// A node started with another secret never joins. Its `Hello`s reach the others, which answer
/// each with a `Welcome` and nothing more; it rejects those (their proof is under the real
/// secret), never completes a handshake, and so never sends them a frame: it never shows up
/// among their peers or names, and its own lookups and calls fail. Datagrams that are not the
/// protocol's at all (sent by the test) are counted as rejected by the node they reach.
#[test]
#[cfg_attr(madsim, ignore = "real build only: starts OS processes")]
fn a_node_with_the_wrong_secret_is_rejected() {
    // Ports from the nodes themselves: the first listens anywhere, the others name it.
    let mut a = spawn(0, "127.0.0.1:0", &[], &Secret::Env(SECRET));
    let a_addr = a.addr.clone();
    let mut b = spawn(
        1,
        "127.0.0.1:0",
        &[(0, a_addr.clone())],
        &Secret::Env(SECRET),
    );
    let b_addr = b.addr.clone();
    a.wait_event(0, "peer-up 1", |e| e.starts_with("peer-up 1 "));
    b.wait_event(0, "peer-up 0", |e| e.starts_with("peer-up 0 "));
    let (hellos_a, hellos_b) = (a.stat("hellos"), b.stat("hellos"));
    let mut intruder = spawn(
        2,
        "127.0.0.1:0",
        &[(0, a_addr.clone()), (1, b_addr)],
        &Secret::Env(WRONG_SECRET),
    );
    // It says hello every heartbeat (50 ms): a few rounds of it, answered and refused.
    a.wait_stat("hellos", hellos_a + 3);
    b.wait_stat("hellos", hellos_b + 3);
    intruder.wait_stat("rejected", 6);
    let echo_a = a.whereis("echo-0").expect("echo-0");
    for (node, other) in [(&mut a, 1), (&mut b, 0)] {
        assert_eq!(node.stat("authenticated"), 1, "node {}", node.id);
        assert_eq!(node.ask("peers"), peers_line(&[other]));
        assert_eq!(node.whereis("echo-2"), None);
        let names = node.ask("names");
        assert!(!names.contains("echo-2="), "{names}");
        node.drain_events();
        let about_2 = |e: &String| e.starts_with("peer-up 2 ") || e.starts_with("peer-down 2 ");
        assert!(
            !node.events.iter().any(about_2),
            "node {}: {:?}",
            node.id,
            node.events
        );
    }
    assert_eq!(intruder.stat("handshakes"), 0);
    assert_eq!(intruder.stat("authenticated"), 0);
    assert_eq!(intruder.ask("peers"), "peers");
    assert_eq!(intruder.whereis("echo-0"), None);
    assert_eq!(intruder.ask("call echo-0 let me in"), "error NoProc");
    let by_pid = intruder.ask(&format!("call {echo_a} let me in"));
    assert!(
        by_pid == "error Timeout" || by_pid == "error NodeDown",
        "{by_pid}"
    );

    // Junk sent straight to node 0's socket is counted as rejected there.
    let rejected = a.stat("rejected");
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        junk.send_to(b"not a groundhog packet", &a_addr).unwrap();
    }
    a.wait_stat("rejected", rejected + 3);
    assert_eq!(a.ask("peers"), peers_line(&[1]));
}

/// The value of `counter=N` in a `stats` answer.
fn stat(answer: &str, counter: &str) -> Option<u64> {
    answer
        .split_whitespace()
        .find_map(|field| field.strip_prefix(counter)?.strip_prefix('='))
        .and_then(|n| n.parse().ok())
}

/// The console answers malformed lines with `error BadCommand ...` and carries on; `quit`
/// answers `bye` and exits 0, and so does the end of stdin.
#[test]
#[cfg_attr(madsim, ignore = "real build only: starts OS processes")]
fn the_console_refuses_bad_lines_and_carries_on() {
    let mut node = spawn(0, "127.0.0.1:0", &[], &Secret::Env(SECRET));
    let bad = |answer: String, why: &str| {
        assert!(
            answer.starts_with("error BadCommand ") && answer.contains(why),
            "{answer}"
        );
    };
    bad(node.ask("frobnicate now"), "unknown command `frobnicate`");
    bad(node.ask("whereis"), "usage: whereis NAME");
    bad(node.ask("call echo-0"), "usage: call NAME|PID TEXT");
    bad(node.ask("call <0.1> hi"), "is not a pid");
    bad(node.ask("peers please"), "takes no arguments");
    node.write_raw(b"whereis \xff\xfe\n");
    bad(node.next_answer("a line that is not UTF-8"), "not UTF-8");
    let long = "x".repeat((1 << 20) + 10);
    node.write_raw(format!("call echo-0 {long}\n").as_bytes());
    bad(
        node.next_answer("an overlong line"),
        "longer than 1048576 bytes",
    );
    // Blank lines get no answer; the next command's answer is the next line.
    node.write_raw(b"\n   \n\n");
    assert_eq!(node.ask("peers"), "peers");
    assert_eq!(node.ask("call echo-0 to myself"), "reply to myself");
    assert_eq!(node.ask("call nobody hello?"), "error NoProc");
    assert_eq!(node.ask("whereis nobody"), "none");
    let own = node.whereis("echo-0").expect("its own echo server");
    assert_eq!(pid_parts(&own).0, 0);
    assert_eq!(node.ask("quit"), "bye");
    assert!(node.child.wait().unwrap().success());

    // The end of stdin shuts the node down too.
    let mut node = spawn(0, "127.0.0.1:0", &[], &Secret::Env(SECRET));
    drop(node.stdin.take());
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running after stdin closed"
        );
        std::thread::sleep(RETRY);
    }
}

fn run_bin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("groundhog-node runs")
}

/// Bad flags, a secret that cannot be had or is too short, and an address that cannot be bound
/// each end the binary at once with a readable `error:` line (exit 2 for what the flags say,
/// 1 for the bind), never a panic.
#[test]
#[cfg_attr(madsim, ignore = "real build only: starts OS processes")]
fn bad_flags_and_secrets_exit_with_one_readable_error() {
    let base = ["--node", "1", "--listen", "127.0.0.1:0"];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    // (arguments, environment, what the error says)
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (with(&[]), vec![], "--secret-env"),
        (
            with(&["--secret-env", SECRET_VAR, "--peer", "2"]),
            vec![],
            "`2` is not ID=ADDR",
        ),
        (
            with(&["--secret-env", SECRET_VAR, "--peer", "1=127.0.0.1:9"]),
            vec![(SECRET_VAR, SECRET)],
            "this node's own id",
        ),
        (
            with(&["--secret-env", "GROUNDHOG_NODE_TEST_UNSET"]),
            vec![],
            "the variable is not set",
        ),
        (
            with(&["--secret-env", SECRET_VAR]),
            vec![(SECRET_VAR, "short")],
            "it must be at least 16",
        ),
        (
            with(&["--secret-file", "/nonexistent/groundhog/secret"]),
            vec![],
            "cannot read it",
        ),
        (
            vec!["--listen".into(), "127.0.0.1:0".into()],
            vec![],
            "--node",
        ),
    ];
    for (args, env, expect) in cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_bin(&argv, &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && err.contains(expect),
            "{argv:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty(), "{argv:?}");
    }
    // An address already in use.
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let out = run_bin(
        &["--node", "1", "--listen", &at, "--secret-env", SECRET_VAR],
        &[(SECRET_VAR, SECRET)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: cannot listen on {at}: ")),
        "{err}"
    );
}

/// The simulation build's binary says in one line that it runs only in the real build.
#[test]
#[cfg_attr(not(madsim), ignore = "the simulation build's refusal")]
fn the_simulation_builds_binary_refuses_to_run() {
    let out = run_bin(
        &[
            "--node",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--secret-env",
            SECRET_VAR,
        ],
        &[(SECRET_VAR, SECRET)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("groundhog-node runs only in the real build"),
        "{err}"
    );
}
