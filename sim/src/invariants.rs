//! Always-on runtime invariants: safety rules the harness checks in every run, whatever the
//! scenario, by reading the same trace lines the [`Recorder`](crate::Recorder) records (also
//! when a run keeps no lines). A passing check adds nothing to the trace; the first violation
//! adds one `check invariant=<name> result=violated` line, stops the run, and becomes its
//! [`Outcome`](crate::Outcome).
//!
//! Each rule is decided only from what the trace can prove; where the trace cannot tell, the
//! rule says so and checks the weaker, sound part. The rules, by name ([`Invariants::NAMES`]):
//!
//! - `one-down`: at most one `down` per monitor reference; no `down` before the `monitor` line
//!   (or the `send call=` line of a call) that made its reference; the `down` names the watcher
//!   and target of that monitor. "Every monitor of a dead process got its Down" is not checked:
//!   `demonitor` and the end of a call remove monitors without a trace line, so an open monitor
//!   cannot be told from a removed one.
//! - `nothing-after-down`: once watcher `W` had a `down` for `P` for an exit (not
//!   `noconnection`), no message `P` sent to `W` *before* that `down` is delivered to `W`. OTP: a
//!   `'DOWN'` is a signal from `P` to `W`, and signals between one pair of processes are
//!   delivered in the order sent (Erlang Reference Manual, "Processes", signal delivery), so
//!   everything `P` sent earlier is already in `W`'s queue. And once node `Y` traced
//!   `node-down peer=X`, nothing sent on a session of `X` that the node-down ended is delivered
//!   on `Y` (OTP: a connection that goes down loses what was in flight on it, and a new
//!   one starts clean). The trace shows sessions only through `node-down` and restarts, so: a
//!   silent `node-down` ends the sessions `Y` had heard of (a message sent on them was delivered
//!   before) and `X`'s very first one; a session `X` began at its own `node-down` for `Y` or at
//!   its restart, and `Y` never heard, is a new connection, which OTP sets up only after both
//!   sides dropped the old one, so its messages may arrive. A reset `node-down` is caused by a
//!   frame of `X`'s new session: it ends what `X`'s earlier incarnations sent. A
//!   `Down(noconnection)` is judged through its `node-down`.
//! - `no-message-after-exit`: no `send` from a process after its `exit` (or after its node
//!   crashed or restarted). A message sent *before* the sender's exit and delivered after it is
//!   legal: it was in flight, and OTP delivers it (only the receiver's own death or a lost
//!   connection discards it), so deliveries are not judged against the sender's exit.
//! - `fifo`: between one pair of processes, remote deliveries are a subsequence of the sends,
//!   matched by the payload digest (`digest=` on `send` and `deliver`); a delivery that matches
//!   no unmatched earlier send is a reordering, a duplicate or an invention. Equal payloads share
//!   a digest, which can only hide a violation, never invent one. Local messages are queued
//!   inside `send` itself, so they are in order by construction and not matched.
//! - `no-link-to-dead`: linking to a process already known dead delivers its exit signal to the
//!   linker: on the same node at once (the next trace line), across nodes before the run ends
//!   (unless the linker died or its node declared the target's node down). A link broken by an
//!   exit without a signal is not checked: `unlink` leaves no trace line.
//! - `intensity`: a supervisor's `restart` lines never number more than its `intensity` within
//!   any `period_ms` window (the window is taken as half-open, which can only excuse).
//! - `supervised-descendants`: no child of a supervisor (`child-start`), nor a process
//!   spawn-linked to it (a task of a task supervisor), is alive [`Invariants::GRACE`] after the
//!   supervisor exited; a grandchild is checked through its own supervisor. A process counts as
//!   a supervisor once some line names it `sup=`.
//!
//! The end-of-run parts (remote links, descendants) judge only what happened at least
//! [`Invariants::GRACE`] before the run ended, so that nothing is blamed for a signal still on
//! its way.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use groundhog_runtime::rt::Duration;

use crate::scenario::Violation;

/// A pid as the trace prints it: `<node.incarnation.id>`.
type P = (u32, u64, u64);

/// A reference as the trace prints it: `#node.incarnation.n`.
type R = (u32, u64, u64);

/// Sends kept per pair before the pair is no longer judged (a receiver that never reads).
const MAX_PENDING: usize = 4096;

/// One parsed trace line.
pub(crate) struct Line<'a> {
    pub(crate) time: Duration,
    pub(crate) node: Option<u32>,
    pub(crate) kind: &'a str,
    pub(crate) fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Line<'a> {
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    pub(crate) fn pid(&self, name: &str) -> Option<P> {
        self.get(name).and_then(|v| parse_triple(v, '<', '>'))
    }

    fn reference(&self, name: &str) -> Option<R> {
        self.get(name).and_then(|v| parse_triple(v, '#', '\0'))
    }
}

fn parse_triple(v: &str, open: char, close: char) -> Option<(u32, u64, u64)> {
    let v = v.strip_prefix(open)?;
    let v = if close == '\0' {
        v
    } else {
        v.strip_suffix(close)?
    };
    let mut parts = v.split('.');
    let a = parts.next()?.parse().ok()?;
    let b = parts.next()?.parse().ok()?;
    let c = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((a, b, c))
}

fn show(p: P) -> String {
    format!("<{}.{}.{}>", p.0, p.1, p.2)
}

fn time(d: Duration) -> String {
    crate::trace::format_time(d)
}

/// Splits `<time> <node> <kind> name=value ...`; a value may be a Rust-quoted string.
pub(crate) fn parse(line: &str) -> Option<Line<'_>> {
    let mut rest = line;
    let mut word = || {
        let (w, r) = rest.split_once(' ').unwrap_or((rest, ""));
        rest = r;
        w
    };
    let (secs, nanos) = word().split_once('.')?;
    let time = Duration::new(secs.parse().ok()?, nanos.parse().ok()?);
    let node = match word() {
        "--" => None,
        n => Some(n.strip_prefix('n')?.parse().ok()?),
    };
    let kind = word();
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut end = None;
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end?;
            (&quoted[..end], quoted[end + 1..].trim_start_matches(' '))
        } else {
            unquoted(after)
        };
        fields.push((name, value));
        rest = next;
    }
    Some(Line {
        time,
        node,
        kind,
        fields,
    })
}

/// An unquoted value runs to the next ` name=` (a Display value such as an exit reason may hold
/// spaces: `reason=error: lost the dependency intensity=3`), or to the end of the line.
fn unquoted(after: &str) -> (&str, &str) {
    let mut from = 0;
    while let Some(space) = after[from..].find(' ') {
        let at = from + space;
        let next = &after[at + 1..];
        let word = next.split(' ').next().unwrap_or("");
        if let Some((name, _)) = word.split_once('=') {
            let is_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if is_name {
                return (&after[..at], next);
            }
        }
        from = at + 1;
    }
    (after, "")
}

#[derive(Default)]
struct Life {
    died: Option<Duration>,
}

/// A send not yet matched to a delivery.
struct Sent {
    digest: u32,
    index: u64,
    time: Duration,
    session: Session,
}

/// Which of the sender node's sessions towards the receiver's node carried a send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Session {
    /// The first one of the node's first incarnation.
    First,
    /// One the sender began at this time: its own `node-down` for the peer, or its restart.
    Since(Duration),
}

#[derive(Default)]
struct Pair {
    pending: VecDeque<Sent>,
    /// Sends were dropped from `pending` to bound it: unmatched deliveries are not judged.
    overflowed: bool,
}

struct Monitor {
    watcher: P,
    target: P,
    downed: bool,
}

/// The latest `node-down` of each kind a node traced for one peer: (line index, time), and for
/// a reset the peer's newest incarnation known then.
#[derive(Default)]
struct NodeDowns {
    /// For silence, the latest send time of a message from the peer delivered before it (the
    /// sessions the node had heard of).
    silence: Option<(u64, Duration, Option<Duration>)>,
    reset: Option<(u64, Duration, u64)>,
}

impl NodeDowns {
    fn latest(&self) -> Option<Duration> {
        self.silence.map(|s| s.1).max(self.reset.map(|r| r.1))
    }
}

/// A link made to a process already dead, waiting for its exit signal.
struct DeadLink {
    linker: P,
    target: P,
    time: Duration,
    line: String,
}

/// The online checker: feed it every trace line in order with [`Invariants::observe`], then
/// call [`Invariants::finish`] once at the end of the run.
pub struct Invariants {
    skip: BTreeSet<String>,
    index: u64,
    violation: Option<Violation>,
    lives: BTreeMap<P, Life>,
    /// Keyed (receiver, sender), so a dead receiver's pairs are one range.
    pairs: BTreeMap<(P, P), Pair>,
    /// Name-addressed remote sends not yet delivered, by (sender, node).
    name_sends: BTreeMap<(P, u32), u64>,
    /// Index of the latest `down` a watcher had for a target, by (watcher, target).
    downs: BTreeMap<(P, P), (u64, Duration)>,
    /// The latest `node-down`s, by (node, peer).
    node_downs: BTreeMap<(u32, u32), NodeDowns>,
    /// The newest incarnation seen in a pid of each node.
    incarnations: BTreeMap<u32, u64>,
    /// How many times each node's program started, and when last.
    starts: BTreeMap<u32, (u64, Duration)>,
    /// A node's latest `node-down` for a peer in its current incarnation, by (node, peer).
    own_downs: BTreeMap<(u32, u32), Duration>,
    /// The latest send time of a message from a peer a node delivered, by (node, peer).
    heard: BTreeMap<(u32, u32), Duration>,
    monitors: BTreeMap<R, Monitor>,
    /// The signal the next line must be (a same-node link to a dead process).
    expect_signal: Option<(P, P, String)>,
    dead_links: Vec<DeadLink>,
    last_spawn: Option<P>,
    supervisors: BTreeSet<P>,
    /// Children and spawn-linked processes, by supervisor (or would-be supervisor).
    children: BTreeMap<P, BTreeSet<P>>,
    restarts: BTreeMap<P, VecDeque<Duration>>,
}

impl Invariants {
    /// Every invariant, by the name a scenario uses to skip it.
    pub const NAMES: &'static [&'static str] = &[
        "one-down",
        "nothing-after-down",
        "no-message-after-exit",
        "fifo",
        "no-link-to-dead",
        "intensity",
        "supervised-descendants",
    ];

    /// How long before the end of a run an exit or link must be for the end-of-run checks to
    /// judge it: failure detection and the settle phase take less.
    pub const GRACE: Duration = Duration::from_secs(5);

    /// A checker skipping the invariants named in `skip`; `Err` names an unknown one.
    pub fn new<S: AsRef<str>>(skip: &[S]) -> Result<Invariants, String> {
        let mut set = BTreeSet::new();
        for name in skip {
            let name = name.as_ref();
            if !Self::NAMES.contains(&name) {
                return Err(format!(
                    "unknown invariant `{name}` to skip (known: {})",
                    Self::NAMES.join(", ")
                ));
            }
            set.insert(name.to_string());
        }
        Ok(Invariants {
            skip: set,
            index: 0,
            violation: None,
            lives: BTreeMap::new(),
            pairs: BTreeMap::new(),
            name_sends: BTreeMap::new(),
            downs: BTreeMap::new(),
            node_downs: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            starts: BTreeMap::new(),
            heard: BTreeMap::new(),
            own_downs: BTreeMap::new(),
            monitors: BTreeMap::new(),
            expect_signal: None,
            dead_links: Vec::new(),
            last_spawn: None,
            supervisors: BTreeSet::new(),
            children: BTreeMap::new(),
            restarts: BTreeMap::new(),
        })
    }

    /// The first violation seen, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    fn fail(&mut self, invariant: &'static str, line: &str, why: String) {
        if self.violation.is_some() || self.skip.contains(invariant) {
            return;
        }
        self.violation = Some(Violation {
            invariant: invariant.to_string(),
            message: format!("{why}; at: {line}"),
        });
    }

    fn dead(&self, p: P) -> bool {
        self.lives.get(&p).is_some_and(|l| l.died.is_some())
    }

    fn alive(&self, p: P) -> bool {
        self.lives.get(&p).is_some_and(|l| l.died.is_none())
    }

    fn die(&mut self, p: P, at: Duration) {
        let life = self.lives.entry(p).or_default();
        if life.died.is_none() {
            life.died = Some(at);
        }
        let dead_pairs: Vec<_> = self
            .pairs
            .range((p, (0, 0, 0))..=(p, (u32::MAX, u64::MAX, u64::MAX)))
            .map(|(k, _)| *k)
            .collect();
        for k in dead_pairs {
            self.pairs.remove(&k);
        }
    }

    fn node_died(&mut self, node: u32, at: Duration) {
        let on_node: Vec<P> = self
            .lives
            .range((node, 0, 0)..=(node, u64::MAX, u64::MAX))
            .filter(|(_, l)| l.died.is_none())
            .map(|(p, _)| *p)
            .collect();
        for p in on_node {
            self.die(p, at);
        }
        // References are made by the watcher's node; a restarted node may make them again.
        let refs: Vec<R> = self
            .monitors
            .range((node, 0, 0)..=(node, u64::MAX, u64::MAX))
            .map(|(r, _)| *r)
            .collect();
        for r in refs {
            self.monitors.remove(&r);
        }
    }

    /// Checks one trace line (in the [`Recorder`](crate::Recorder)'s format).
    pub fn observe(&mut self, text: &str) {
        self.index += 1;
        let Some(line) = parse(text) else {
            return;
        };
        if let Some((from, to, made)) = self.expect_signal.take() {
            let ok = line.kind == "signal"
                && line.pid("from") == Some(from)
                && line.pid("to") == Some(to);
            if !ok {
                self.fail(
                    "no-link-to-dead",
                    &made,
                    format!(
                        "{} linked to {} on its own node after {} exited, and got no exit signal for it",
                        show(to),
                        show(from),
                        show(from)
                    ),
                );
            }
        }
        let spawned_before = self.last_spawn.take();
        if let Some(sup) = line.pid("sup") {
            self.supervisors.insert(sup);
        }
        match line.kind {
            "spawn" => {
                if let Some(p) = line.pid("pid") {
                    self.lives.insert(p, Life::default());
                    self.last_spawn = Some(p);
                    let inc = self.incarnations.entry(p.0).or_default();
                    *inc = (*inc).max(p.1);
                }
            }
            "exit" => {
                if let Some(p) = line.pid("pid") {
                    self.die(p, line.time);
                }
            }
            "node" => {
                if let Some(n) = line.node {
                    self.node_died(n, line.time);
                    let start = self.starts.entry(n).or_default();
                    *start = (start.0 + 1, line.time);
                    let mine: Vec<_> = self
                        .own_downs
                        .range((n, 0)..=(n, u32::MAX))
                        .map(|(k, _)| *k)
                        .collect();
                    for k in mine {
                        self.own_downs.remove(&k);
                    }
                }
            }
            "fault" => {
                let crashed = line
                    .get("fault")
                    .and_then(|f| f.strip_prefix("crash-node node="))
                    .and_then(|n| n.parse().ok());
                if let (Some(n), None) = (crashed, line.get("skipped")) {
                    self.node_died(n, line.time);
                }
            }
            "send" => self.on_send(&line, text),
            "deliver" => self.on_deliver(&line, text),
            "down" => self.on_down(&line, text),
            "monitor" => {
                if let (Some(r), Some(w), Some(p)) = (
                    line.reference("reference"),
                    line.pid("watcher"),
                    line.pid("pid"),
                ) {
                    self.on_monitor(r, w, p, text);
                }
            }
            "node-down" => {
                let peer = line.get("peer").and_then(|p| p.parse().ok());
                if let (Some(n), Some(peer)) = (line.node, peer) {
                    let newest = self.incarnations.get(&peer).copied().unwrap_or(0);
                    let at = (self.index, line.time);
                    let heard = self.heard.get(&(n, peer)).copied();
                    self.own_downs.insert((n, peer), line.time);
                    let downs = self.node_downs.entry((n, peer)).or_default();
                    match line.get("why") {
                        Some("reset") => downs.reset = Some((at.0, at.1, newest)),
                        _ => downs.silence = Some((at.0, at.1, heard)),
                    }
                }
            }
            "link" => self.on_link(&line, text, spawned_before),
            "signal" => {
                if let (Some(from), Some(to)) = (line.pid("from"), line.pid("to")) {
                    self.dead_links
                        .retain(|l| !(l.linker == to && l.target == from));
                }
            }
            "child-start" => {
                if let (Some(sup), Some(c)) = (line.pid("sup"), line.pid("pid")) {
                    self.children.entry(sup).or_default().insert(c);
                }
            }
            "restart" => self.on_restart(&line, text),
            _ => {}
        }
    }

    fn on_send(&mut self, line: &Line<'_>, text: &str) {
        let Some(from) = line.pid("from") else {
            return;
        };
        if self.dead(from) {
            let died = self.lives[&from].died.unwrap_or_default();
            self.fail(
                "no-message-after-exit",
                text,
                format!("{} sent after its exit at {}", show(from), time(died)),
            );
        }
        if let Some(r) = line.reference("call") {
            if let Some(to) = line.pid("to") {
                self.on_monitor(r, from, to, text);
            }
        }
        if let (Some(node), None) = (line.get("to_node"), line.get("to")) {
            if let Ok(node) = node.parse::<u32>() {
                if node != from.0 {
                    *self.name_sends.entry((from, node)).or_default() += 1;
                }
            }
            return;
        }
        let (Some(to), Some(digest)) = (line.pid("to"), line.get("digest")) else {
            return;
        };
        let Ok(digest) = u32::from_str_radix(digest, 16) else {
            return;
        };
        if self.dead(to) {
            return;
        }
        let pair = self.pairs.entry((to, from)).or_default();
        if pair.pending.len() >= MAX_PENDING {
            pair.pending.clear();
            pair.overflowed = true;
        }
        let session = match (
            self.own_downs.get(&(from.0, to.0)),
            self.starts.get(&from.0),
        ) {
            (Some(t), _) => Session::Since(*t),
            (None, Some((n, t))) if *n > 1 => Session::Since(*t),
            (None, _) => Session::First,
        };
        let pair = self.pairs.entry((to, from)).or_default();
        pair.pending.push_back(Sent {
            digest,
            index: self.index,
            time: line.time,
            session,
        });
    }

    fn on_deliver(&mut self, line: &Line<'_>, text: &str) {
        let (Some(from), Some(to), Some(digest)) =
            (line.pid("from"), line.pid("to"), line.get("digest"))
        else {
            return;
        };
        let Ok(digest) = u32::from_str_radix(digest, 16) else {
            return;
        };
        let pair = self.pairs.entry((to, from)).or_default();
        let Some(i) = pair.pending.iter().position(|s| s.digest == digest) else {
            let overflowed = pair.overflowed;
            if let Some(n) = self.name_sends.get_mut(&(from, to.0)).filter(|n| **n > 0) {
                *n -= 1;
                return;
            }
            if !overflowed {
                let outstanding = pair.pending.len();
                self.fail(
                    "fifo",
                    text,
                    format!(
                        "a message from {} to {} (digest {digest:08x}) matches no earlier unmatched send \
                         ({outstanding} outstanding): reordered, duplicated or never sent",
                        show(from),
                        show(to)
                    ),
                );
            }
            return;
        };
        // Whether a candidate send can no longer arrive, and why. A `down` condemns what was
        // sent before it. A silent `node-down` condemns what was sent before it on a session
        // the node had heard of, or on the peer's very first one; a session the peer began after
        // its own `node-down` or restart and not yet heard is a new connection (OTP: set up only
        // after both sides dropped the old one). A reset `node-down` is caused by a frame of the
        // peer's new session: it condemns the sends of the peer's earlier incarnations.
        let down = self.downs.get(&(to, from)).copied();
        let node_downs = self.node_downs.get(&(to.0, from.0));
        let silence = node_downs.and_then(|d| d.silence);
        let reset = node_downs.and_then(|d| d.reset);
        let condemned = |s: &Sent| -> Option<(Duration, &'static str)> {
            if let Some((_, t)) = down.filter(|d| s.index < d.0) {
                return Some((t, "down"));
            }
            if let Some((_, t, heard)) = silence.filter(|d| s.index < d.0) {
                let known = match s.session {
                    Session::First => true,
                    Session::Since(began) => heard.is_some_and(|h| h >= began),
                };
                if known {
                    return Some((t, "node-down"));
                }
            }
            if let Some((_, t, _)) = reset.filter(|d| s.index < d.0 && from.1 < d.2) {
                return Some((t, "node-down (reset)"));
            }
            None
        };
        let first = &pair.pending[i];
        let sent = first.time;
        let verdict = condemned(first).filter(|_| {
            pair.pending
                .iter()
                .skip(i)
                .filter(|s| s.digest == digest)
                .all(|s| condemned(s).is_some())
        });
        if let Some((at, what)) = verdict {
            self.fail(
                "nothing-after-down",
                text,
                format!(
                    "a message {} sent to {} at {} was delivered after the {what} at {}",
                    show(from),
                    show(to),
                    time(sent),
                    time(at)
                ),
            );
        }
        let heard = self.heard.entry((to.0, from.0)).or_insert(sent);
        *heard = (*heard).max(sent);
        let pair = self.pairs.get_mut(&(to, from)).expect("just used");
        pair.pending.drain(..=i);
    }

    fn on_monitor(&mut self, r: R, watcher: P, target: P, text: &str) {
        if let Some(m) = self.monitors.get(&r) {
            if m.downed {
                self.fail(
                    "one-down",
                    text,
                    format!(
                        "the down for reference #{}.{}.{} came before its monitor",
                        r.0, r.1, r.2
                    ),
                );
            }
            return;
        }
        self.monitors.insert(
            r,
            Monitor {
                watcher,
                target,
                downed: false,
            },
        );
    }

    fn on_down(&mut self, line: &Line<'_>, text: &str) {
        let (Some(r), Some(w), Some(p)) = (
            line.reference("reference"),
            line.pid("watcher"),
            line.pid("pid"),
        ) else {
            return;
        };
        // A `noconnection` down is judged through its `node-down` (which knows resets from
        // silence); a down without one (a node never heard from) proves nothing about sessions.
        if line.get("reason") != Some("noconnection") {
            self.downs.insert((w, p), (self.index, line.time));
        }
        let reference = format!("#{}.{}.{}", r.0, r.1, r.2);
        match self.monitors.get_mut(&r) {
            None => {
                // A call to a process already dead: its down comes before any send line.
                self.monitors.insert(
                    r,
                    Monitor {
                        watcher: w,
                        target: p,
                        downed: true,
                    },
                );
            }
            Some(m) if m.downed => {
                self.fail("one-down", text, format!("a second down for {reference}"));
            }
            Some(m) => {
                m.downed = true;
                if (m.watcher, m.target) != (w, p) {
                    let (mw, mt) = (m.watcher, m.target);
                    self.fail(
                        "one-down",
                        text,
                        format!(
                            "the down for {reference} names watcher {} and pid {}, its monitor {} and {}",
                            show(w),
                            show(p),
                            show(mw),
                            show(mt)
                        ),
                    );
                }
            }
        }
    }

    fn on_link(&mut self, line: &Line<'_>, text: &str, spawned_before: Option<P>) {
        let (Some(a), Some(b)) = (line.pid("from"), line.pid("to")) else {
            return;
        };
        if spawned_before == Some(a) {
            self.children.entry(b).or_default().insert(a);
        }
        if !self.dead(b) {
            return;
        }
        if a.0 == b.0 {
            self.expect_signal = Some((b, a, text.to_string()));
        } else {
            self.dead_links.push(DeadLink {
                linker: a,
                target: b,
                time: line.time,
                line: text.to_string(),
            });
        }
    }

    fn on_restart(&mut self, line: &Line<'_>, text: &str) {
        let (Some(sup), Some(intensity), Some(period)) = (
            line.pid("sup"),
            line.get("intensity").and_then(|v| v.parse::<u64>().ok()),
            line.get("period_ms").and_then(|v| v.parse::<u64>().ok()),
        ) else {
            return;
        };
        let period = Duration::from_millis(period);
        let now = line.time;
        let window = self.restarts.entry(sup).or_default();
        window.push_back(now);
        while window.front().is_some_and(|t| now - *t >= period) {
            window.pop_front();
        }
        if window.len() as u64 > intensity {
            let n = window.len();
            self.fail(
                "intensity",
                text,
                format!(
                    "supervisor {} restarted {n} times within {}, more than its intensity {intensity}",
                    show(sup),
                    time(period)
                ),
            );
        }
    }

    /// The end-of-run checks, for a run that ended at `end`.
    pub fn finish(&mut self, end: Duration) {
        if let Some((_, _, made)) = self.expect_signal.take() {
            self.fail(
                "no-link-to-dead",
                &made,
                "the run ended before the exit signal for a link to a dead process".into(),
            );
        }
        let judged = |t: Duration| t + Self::GRACE <= end;
        let links = std::mem::take(&mut self.dead_links);
        for l in links {
            let linker_down = self
                .node_downs
                .get(&(l.linker.0, l.target.0))
                .and_then(NodeDowns::latest);
            if judged(l.time) && self.alive(l.linker) && linker_down.is_none_or(|d| d < l.time) {
                self.fail(
                    "no-link-to-dead",
                    &l.line,
                    format!(
                        "{} linked to {}, already dead, and never got its exit signal",
                        show(l.linker),
                        show(l.target)
                    ),
                );
            }
        }
        let mut found = None;
        for sup in &self.supervisors {
            let Some(died) = self.lives.get(sup).and_then(|l| l.died) else {
                continue;
            };
            if !judged(died) {
                continue;
            }
            let left: Vec<P> = self
                .children
                .get(sup)
                .into_iter()
                .flatten()
                .filter(|c| self.alive(**c))
                .copied()
                .collect();
            if !left.is_empty() {
                let mut names = String::new();
                for c in &left {
                    let _ = write!(names, " {}", show(*c));
                }
                found = Some((*sup, died, names));
                break;
            }
        }
        if let Some((sup, died, names)) = found {
            let at = format!("{} supervisor {} exited", time(died), show(sup));
            self.fail(
                "supervised-descendants",
                &at,
                format!(
                    "supervisor {} exited at {} and these are still alive at the end ({}):{names}",
                    show(sup),
                    time(died),
                    time(end)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
