//! The fault vocabulary and fault plans.
//!
//! One set of names everywhere (API, plan files, traces, CLI, docs): `crash-node`,
//! `restart-node`, `pause-node`, `resume-node`, `kill-process`, `exit-process`, `partition`,
//! `heal`, `clog-link`, `unclog-link`, `set-loss`, `set-latency`, `clock-skew`, `clock-drift`,
//! `disk-stall`, `disk-full`, `disk-corrupt`.
//!
//! A plan is data: hand-written in TOML or JSON, or generated from a seed. Every plan ends with a
//! quiet phase: at `quiet_at_ms` the harness heals everything (restarts crashed nodes, resumes
//! paused ones, removes partitions and clogs, restores the base network) before liveness checks.
//!
//! ```toml
//! quiet_at_ms = 4000
//!
//! [[fault]]
//! at_ms = 500
//! fault = "partition"
//! groups = [[0, 1], [2]]
//!
//! [[fault]]
//! at_ms = 1500
//! fault = "heal"
//! ```

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use groundhog_runtime::rt::{self, Stream};
use groundhog_runtime::ExitReason;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// One fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    CrashNode {
        node: u32,
    },
    RestartNode {
        node: u32,
    },
    PauseNode {
        node: u32,
    },
    ResumeNode {
        node: u32,
    },
    /// Kills a process on `node`: a runtime process (by pid, registered name or supervisor
    /// child) gets an untrappable `Kill` and exits `Killed`; a harness task is aborted.
    KillProcess {
        node: u32,
        #[serde(flatten)]
        target: Target,
    },
    /// Sends a runtime process on `node` an exit signal with `reason` (`normal`, `shutdown`,
    /// `kill`, or any other text for `Error(text)`), as another process's `exit` would: a
    /// trapping process receives it as a message, `normal` is ignored unless trapped.
    ExitProcess {
        node: u32,
        #[serde(flatten)]
        target: Target,
        reason: String,
    },
    /// Only nodes in the same group can talk; nodes in no group are cut off from all.
    Partition {
        groups: Vec<Vec<u32>>,
    },
    /// Removes every partition and clogged link.
    Heal,
    ClogLink {
        from: u32,
        to: u32,
    },
    UnclogLink {
        from: u32,
        to: u32,
    },
    SetLoss {
        rate: f64,
    },
    SetLatency {
        min_ms: u64,
        max_ms: u64,
    },
    /// Moves `node`'s clock by `offset_ms` (either sign) at once. The quiet phase sets every
    /// changed clock back to global time.
    ClockSkew {
        node: u32,
        offset_ms: i64,
    },
    /// From now on `node`'s clock runs `rate` times as fast as global time (1.0 stops drifting
    /// and keeps the offset gained so far). Undone by the quiet phase, like `clock-skew`.
    ClockDrift {
        node: u32,
        rate: f64,
    },
    /// Every operation on `node`'s disk first waits `latency_ms` (0 ends the stall; so does the
    /// quiet phase).
    DiskStall {
        node: u32,
        latency_ms: u64,
    },
    /// Writes to `node`'s disk fail with `DiskError::Full` while `full` (the quiet phase frees it).
    DiskFull {
        node: u32,
        full: bool,
    },
    /// Damages `node`'s last unsynced write, or else its last synced record (a torn write);
    /// reading it is `DiskError::Corrupt`. Data stays damaged: the quiet phase repairs nothing.
    DiskCorrupt {
        node: u32,
    },
}

/// The name of each kind of fault, for choosing which ones a generated plan may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    CrashNode,
    RestartNode,
    PauseNode,
    ResumeNode,
    KillProcess,
    ExitProcess,
    Partition,
    Heal,
    ClogLink,
    UnclogLink,
    SetLoss,
    SetLatency,
    ClockSkew,
    ClockDrift,
    DiskStall,
    DiskFull,
    DiskCorrupt,
}

impl FaultKind {
    pub const ALL: [FaultKind; 17] = [
        FaultKind::CrashNode,
        FaultKind::RestartNode,
        FaultKind::PauseNode,
        FaultKind::ResumeNode,
        FaultKind::KillProcess,
        FaultKind::ExitProcess,
        FaultKind::Partition,
        FaultKind::Heal,
        FaultKind::ClogLink,
        FaultKind::UnclogLink,
        FaultKind::SetLoss,
        FaultKind::SetLatency,
        FaultKind::ClockSkew,
        FaultKind::ClockDrift,
        FaultKind::DiskStall,
        FaultKind::DiskFull,
        FaultKind::DiskCorrupt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::CrashNode => "crash-node",
            FaultKind::RestartNode => "restart-node",
            FaultKind::PauseNode => "pause-node",
            FaultKind::ResumeNode => "resume-node",
            FaultKind::KillProcess => "kill-process",
            FaultKind::ExitProcess => "exit-process",
            FaultKind::Partition => "partition",
            FaultKind::Heal => "heal",
            FaultKind::ClogLink => "clog-link",
            FaultKind::UnclogLink => "unclog-link",
            FaultKind::SetLoss => "set-loss",
            FaultKind::SetLatency => "set-latency",
            FaultKind::ClockSkew => "clock-skew",
            FaultKind::ClockDrift => "clock-drift",
            FaultKind::DiskStall => "disk-stall",
            FaultKind::DiskFull => "disk-full",
            FaultKind::DiskCorrupt => "disk-corrupt",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault `{s}` (known: {})", known.join(", "))
            })
    }
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::CrashNode { .. } => FaultKind::CrashNode,
            Fault::RestartNode { .. } => FaultKind::RestartNode,
            Fault::PauseNode { .. } => FaultKind::PauseNode,
            Fault::ResumeNode { .. } => FaultKind::ResumeNode,
            Fault::KillProcess { .. } => FaultKind::KillProcess,
            Fault::ExitProcess { .. } => FaultKind::ExitProcess,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::Heal => FaultKind::Heal,
            Fault::ClogLink { .. } => FaultKind::ClogLink,
            Fault::UnclogLink { .. } => FaultKind::UnclogLink,
            Fault::SetLoss { .. } => FaultKind::SetLoss,
            Fault::SetLatency { .. } => FaultKind::SetLatency,
            Fault::ClockSkew { .. } => FaultKind::ClockSkew,
            Fault::ClockDrift { .. } => FaultKind::ClockDrift,
            Fault::DiskStall { .. } => FaultKind::DiskStall,
            Fault::DiskFull { .. } => FaultKind::DiskFull,
            Fault::DiskCorrupt { .. } => FaultKind::DiskCorrupt,
        }
    }

    fn nodes(&self) -> Vec<u32> {
        match self {
            Fault::CrashNode { node }
            | Fault::RestartNode { node }
            | Fault::PauseNode { node }
            | Fault::ResumeNode { node }
            | Fault::KillProcess { node, .. }
            | Fault::ExitProcess { node, .. }
            | Fault::ClockSkew { node, .. }
            | Fault::ClockDrift { node, .. }
            | Fault::DiskStall { node, .. }
            | Fault::DiskFull { node, .. }
            | Fault::DiskCorrupt { node } => vec![*node],
            Fault::Partition { groups } => groups.iter().flatten().copied().collect(),
            Fault::ClogLink { from, to } | Fault::UnclogLink { from, to } => vec![*from, *to],
            Fault::Heal | Fault::SetLoss { .. } | Fault::SetLatency { .. } => vec![],
        }
    }

    fn validate(&self, nodes: u32) -> Result<(), String> {
        if let Some(n) = self.nodes().into_iter().find(|&n| n >= nodes) {
            return Err(format!(
                "{} names node {n}, but the scenario has nodes 0..{nodes}",
                self.kind()
            ));
        }
        match self {
            Fault::Partition { groups } => {
                let mut all: Vec<u32> = groups.iter().flatten().copied().collect();
                let len = all.len();
                all.sort_unstable();
                all.dedup();
                if all.len() != len {
                    return Err("partition lists a node in more than one group".into());
                }
                if groups.iter().any(Vec::is_empty) {
                    return Err("partition has an empty group".into());
                }
                if groups.len() < 2 && len == nodes as usize {
                    return Err("partition splits nothing: one group holds every node".into());
                }
            }
            Fault::KillProcess { target, .. } => target.validate()?,
            Fault::ExitProcess { target, reason, .. } => {
                target.validate()?;
                if let Target::Task(_) = target {
                    return Err("exit-process needs a runtime process (`pid`, `name`, or \
                         `supervisor` with `child`); a harness task (`process`) can only be \
                         killed, with kill-process"
                        .into());
                }
                if reason.trim().is_empty() {
                    return Err(
                        "exit-process has an empty `reason` (normal, shutdown, kill, \
                         or the text of an error)"
                            .into(),
                    );
                }
            }
            Fault::SetLoss { rate } if !(0.0..=1.0).contains(rate) => {
                return Err(format!("set-loss rate {rate} is not between 0 and 1"));
            }
            Fault::SetLatency { min_ms, max_ms } if min_ms > max_ms => {
                return Err(format!("set-latency min_ms {min_ms} > max_ms {max_ms}"));
            }
            Fault::SetLatency { max_ms, .. } if *max_ms > MAX_LATENCY_MS => {
                return Err(format!(
                    "set-latency max_ms {max_ms} is past the largest latency {MAX_LATENCY_MS} ms"
                ));
            }
            Fault::ClockSkew { offset_ms, .. } if offset_ms.unsigned_abs() > MAX_CLOCK_SKEW_MS => {
                return Err(format!(
                    "clock-skew offset_ms {offset_ms} is past the largest skew {MAX_CLOCK_SKEW_MS} ms"
                ));
            }
            Fault::ClockDrift { rate, .. } if !(MIN_CLOCK_RATE..=MAX_CLOCK_RATE).contains(rate) => {
                return Err(format!(
                    "clock-drift rate {rate} is not between {MIN_CLOCK_RATE} and {MAX_CLOCK_RATE}"
                ));
            }
            Fault::DiskStall { latency_ms, .. } if *latency_ms > MAX_LATENCY_MS => {
                return Err(format!(
                    "disk-stall latency_ms {latency_ms} is past the largest latency {MAX_LATENCY_MS} ms"
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

impl Durations {
    pub fn name(self) -> &'static str {
        match self {
            Durations::Short => "short",
            Durations::Long => "long",
            Durations::Mixed => "mixed",
        }
    }
}

impl FromStr for Durations {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "short" => Ok(Durations::Short),
            "long" => Ok(Durations::Long),
            "mixed" => Ok(Durations::Mixed),
            _ => Err(format!(
                "unknown durations `{s}` (known: short, long, mixed)"
            )),
        }
    }
}

impl fmt::Display for Fault {
    /// The trace form: the fault's name followed by its fields.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind())?;
        match self {
            Fault::CrashNode { node }
            | Fault::RestartNode { node }
            | Fault::PauseNode { node }
            | Fault::ResumeNode { node } => write!(f, " node={node}"),
            Fault::KillProcess { node, target } => write!(f, " node={node} {target}"),
            Fault::ExitProcess {
                node,
                target,
                reason,
            } => {
                write!(f, " node={node} {target} reason=")?;
                match exit_reason(reason) {
                    ExitReason::Error(text) => write!(f, "{text:?}"),
                    known => write!(f, "{known}"),
                }
            }
            Fault::Partition { groups } => write!(f, " groups={groups:?}"),
            Fault::ClogLink { from, to } | Fault::UnclogLink { from, to } => {
                write!(f, " from={from} to={to}")
            }
            Fault::SetLoss { rate } => write!(f, " rate={rate}"),
            Fault::SetLatency { min_ms, max_ms } => write!(f, " min_ms={min_ms} max_ms={max_ms}"),
            Fault::ClockSkew { node, offset_ms } => write!(f, " node={node} offset_ms={offset_ms}"),
            Fault::ClockDrift { node, rate } => write!(f, " node={node} rate={rate}"),
            Fault::DiskStall { node, latency_ms } => {
                write!(f, " node={node} latency_ms={latency_ms}")
            }
            Fault::DiskFull { node, full } => write!(f, " node={node} full={full}"),
            Fault::DiskCorrupt { node } => write!(f, " node={node}"),
            Fault::Heal => Ok(()),
        }
    }
}

/// The process a `kill-process` or `exit-process` acts on, on the fault's node. In a plan file
/// exactly one of `process`, `pid`, `name`, or `supervisor` with `child`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawTarget", into = "RawTarget")]
pub enum Target {
    /// A harness task started with `NodeCtx::spawn_process` under this name (`process = "..."`).
    Task(String),
    /// The runtime process with this per-node id in the node's current incarnation
    /// (`pid = 7`: the `7` of `<node.incarnation.7>`).
    Pid(u64),
    /// The runtime process registered under this name in the node's local registry
    /// (`name = "..."`).
    Name(String),
    /// The running child with spec id `child` of the supervisor registered locally as
    /// `supervisor` (`supervisor = "...", child = "..."`).
    Child { supervisor: String, child: String },
}

/// A target as a plan file spells it: optional keys, exactly one target among them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RawTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    process: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    supervisor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    child: Option<String>,
}

impl TryFrom<RawTarget> for Target {
    type Error = String;

    fn try_from(raw: RawTarget) -> Result<Target, String> {
        let target = match raw {
            RawTarget {
                process: Some(p),
                pid: None,
                name: None,
                supervisor: None,
                child: None,
            } => Target::Task(p),
            RawTarget {
                process: None,
                pid: Some(id),
                name: None,
                supervisor: None,
                child: None,
            } => Target::Pid(id),
            RawTarget {
                process: None,
                pid: None,
                name: Some(n),
                supervisor: None,
                child: None,
            } => Target::Name(n),
            RawTarget {
                process: None,
                pid: None,
                name: None,
                supervisor: Some(supervisor),
                child: Some(child),
            } => Target::Child { supervisor, child },
            RawTarget {
                supervisor: Some(_),
                child: None,
                ..
            }
            | RawTarget {
                supervisor: None,
                child: Some(_),
                ..
            } => {
                return Err("a supervisor's child is named by both `supervisor` and `child`".into())
            }
            _ => {
                return Err(
                    "a process fault names exactly one target: `process` (a harness \
                     task), `pid`, `name`, or `supervisor` with `child`"
                        .into(),
                )
            }
        };
        Ok(target)
    }
}

impl From<Target> for RawTarget {
    fn from(target: Target) -> RawTarget {
        match target {
            Target::Task(p) => RawTarget {
                process: Some(p),
                ..RawTarget::default()
            },
            Target::Pid(id) => RawTarget {
                pid: Some(id),
                ..RawTarget::default()
            },
            Target::Name(n) => RawTarget {
                name: Some(n),
                ..RawTarget::default()
            },
            Target::Child { supervisor, child } => RawTarget {
                supervisor: Some(supervisor),
                child: Some(child),
                ..RawTarget::default()
            },
        }
    }
}

impl Target {
    fn validate(&self) -> Result<(), String> {
        let empty = match self {
            Target::Task(s) | Target::Name(s) => s.is_empty(),
            Target::Child { supervisor, child } => supervisor.is_empty() || child.is_empty(),
            Target::Pid(_) => false,
        };
        if empty {
            return Err(format!(
                "the process fault's target `{self}` has an empty name"
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Target {
    /// The trace form: the plan file's keys, `key=value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Task(p) => write!(f, "process={p}"),
            Target::Pid(id) => write!(f, "pid={id}"),
            Target::Name(n) => write!(f, "name={n}"),
            Target::Child { supervisor, child } => {
                write!(f, "supervisor={supervisor} child={child}")
            }
        }
    }
}

/// The exit reason an `exit-process` plan's `reason` stands for: `normal`, `shutdown` and
/// `kill` by name, any other text as `Error(text)`.
pub fn exit_reason(reason: &str) -> ExitReason {
    match reason {
        "normal" => ExitReason::Normal,
        "shutdown" => ExitReason::Shutdown,
        "kill" => ExitReason::Kill,
        other => ExitReason::Error(other.to_string()),
    }
}

/// A fault and when to apply it, in simulated milliseconds since the run started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedFault {
    pub at_ms: u64,
    #[serde(flatten)]
    pub fault: Fault,
}

/// A schedule of faults followed by a quiet phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// Faults stop here: the harness heals everything and the quiet phase begins.
    pub quiet_at_ms: u64,
    /// Buggify points fire in this run (`buggify = true`; off when absent). See
    /// `groundhog_runtime::buggify`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub buggify: bool,
    /// The base network for this plan, replacing the scenario's (restored at the quiet phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<PlanNet>,
    /// The shape a generated plan was drawn with (printed by `groundhog plan`; a plan file may
    /// keep it, and it changes nothing when the plan is replayed: the faults below are the plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<Swarm>,
    #[serde(default, rename = "fault")]
    pub faults: Vec<TimedFault>,
}

/// How long a generated plan's episodes last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durations {
    /// From a twentieth to a quarter of the fault window: many short blips.
    Short,
    /// From [`LONG_EPISODE_MS`] to half the window: past every catalogue scenario's failure
    /// detection, so a crashed node is declared down and its work must move elsewhere.
    Long,
    /// Each episode draws short or long.
    Mixed,
}

/// An episode at least this long outlasts failure detection (the runtime's default `down_after`
/// is 1 s).
pub const LONG_EPISODE_MS: u64 = 1_500;

/// The shape of one seed's plan, itself drawn from the seed before any episode, so that a sweep
/// explores plans of every shape rather than one shape with random details (swarm testing, as
/// TigerBeetle's VOPR does it): which kinds are on, how many episodes, how long, overlapping or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Swarm {
    /// The kinds switched on for this seed: each of the mix's kinds with probability 0.6, and at
    /// least one.
    pub kinds: Vec<FaultKind>,
    /// Episodes drawn: none in about one seed in ten, a few, about `8 × intensity`, or many (up to
    /// `24 × intensity`).
    pub episodes: u32,
    pub durations: Durations,
    /// Whether episodes may overlap; when not, each starts after the one before has been undone
    /// (and a fortieth of the window has passed).
    pub overlap: bool,
}

impl Swarm {
    /// Draws a shape for `kinds` at `intensity` (0 gives no episodes at all).
    fn draw(
        rng: &mut impl Rng,
        kinds: &[FaultKind],
        intensity: f64,
        pinned: Option<Durations>,
    ) -> Swarm {
        let mut on: Vec<FaultKind> = kinds
            .iter()
            .copied()
            .filter(|_| rng.gen_bool(0.6))
            .collect();
        if on.is_empty() && !kinds.is_empty() {
            on.push(kinds[rng.gen_range(0..kinds.len())]);
        }
        let mean = intensity * 8.0;
        let around = |rng: &mut dyn rand::RngCore, low: f64, high: f64| -> u32 {
            let x = low + (high - low) * rng.gen::<f64>();
            x.floor() as u32 + u32::from(rng.gen_bool(x - x.floor()))
        };
        let episodes = if on.is_empty() || intensity <= 0.0 {
            0
        } else {
            match rng.gen_range(0..10) {
                0 => 0,
                1 | 2 => around(rng, 1.0, 2.0),
                3..=7 => around(rng, mean * 0.75, mean * 1.25).max(1),
                _ => around(rng, mean, mean * 3.0).max(1),
            }
        };
        // Drawn even when pinned, so pinning moves no other draw.
        let drawn = match rng.gen_range(0..3) {
            0 => Durations::Short,
            1 => Durations::Long,
            _ => Durations::Mixed,
        };
        let durations = pinned.unwrap_or(drawn);
        Swarm {
            kinds: on,
            episodes,
            durations,
            overlap: rng.gen_bool(0.5),
        }
    }

    /// One episode's length within a window of `window` ms.
    fn length(&self, rng: &mut impl Rng, window: u64) -> u64 {
        let short = |rng: &mut dyn rand::RngCore| rng.gen_range(window / 20..=window / 4).max(1);
        let long = |rng: &mut dyn rand::RngCore| {
            let low = LONG_EPISODE_MS.min(window);
            rng.gen_range(low..=(window / 2).max(low))
        };
        match self.durations {
            Durations::Short => short(rng),
            Durations::Long => long(rng),
            Durations::Mixed if rng.gen_bool(0.5) => short(rng),
            Durations::Mixed => long(rng),
        }
    }
}

/// A base network written in a plan: `[net]` with `loss`, `min_ms`, `max_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanNet {
    pub loss: f64,
    pub min_ms: u64,
    pub max_ms: u64,
}

impl PlanNet {
    pub fn config(&self) -> rt::NetConfig {
        rt::NetConfig {
            loss: self.loss,
            latency: rt::Duration::from_millis(self.min_ms)..rt::Duration::from_millis(self.max_ms),
        }
    }
}

/// A plan file that could not be used. The message says where.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed plan file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid plan{}: {message}", at(.path))]
    Net {
        path: Option<String>,
        message: String,
    },
    #[error("invalid plan{}: fault #{index} (at_ms {at_ms}): {message}", at(.path))]
    Invalid {
        path: Option<String>,
        index: usize,
        at_ms: u64,
        message: String,
    },
}

fn at(path: &Option<String>) -> String {
    path.as_ref().map(|p| format!(" {p}")).unwrap_or_default()
}

/// What a plan is checked against: the scenario's node count and phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    pub nodes: u32,
    /// The scenario's time limit: the quiet phase and its settle time must end before it.
    pub time_limit_ms: u64,
    pub settle_ms: u64,
}

impl PlanLimits {
    /// Limits for `nodes` nodes with no time limit worth the name (plans written by hand in tests).
    pub fn nodes(nodes: u32) -> Self {
        PlanLimits {
            nodes,
            time_limit_ms: u64::MAX,
            settle_ms: 0,
        }
    }
}

/// How a generated plan looks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultMix {
    /// Kinds of fault the plan may use. Each episode pairs a fault with its undo
    /// (crash then restart, partition then heal, ...).
    pub kinds: Vec<FaultKind>,
    /// 0.0 (no faults) to 1.0 (many overlapping episodes).
    pub intensity: f64,
    /// Faults happen in `0..window_ms`; the quiet phase starts at `window_ms`.
    pub window_ms: u64,
    /// Named tasks `kill-process` may target, as `(node, name)`.
    pub processes: Vec<(u32, String)>,
    /// Runtime processes `kill-process` and `exit-process` may target, as `(node, target)`.
    #[serde(default)]
    pub targets: Vec<(u32, Target)>,
    /// Named groups of nodes (`primary`, `clients`, ...), for [`FaultMix::aim`].
    #[serde(default)]
    pub roles: Vec<(String, Vec<u32>)>,
    /// Which roles a kind of fault may hit; a kind not listed hits any node.
    #[serde(default)]
    pub aims: Vec<(FaultKind, Vec<String>)>,
    /// At most this many nodes crashed or paused at once (`None`: no limit).
    #[serde(default)]
    pub max_down: Option<u32>,
    /// Episode lengths pinned for every seed instead of drawn (`--durations`), to show which
    /// flaws need which outages.
    #[serde(default)]
    pub durations: Option<Durations>,
}

impl FaultMix {
    /// Faults of `kinds` at `intensity` within `0..window_ms`, killing no named process.
    pub fn new(kinds: Vec<FaultKind>, intensity: f64, window_ms: u64) -> Self {
        FaultMix {
            kinds,
            intensity,
            window_ms,
            processes: Vec::new(),
            targets: Vec::new(),
            roles: Vec::new(),
            aims: Vec::new(),
            max_down: None,
            durations: None,
        }
    }

    /// Named tasks `kill-process` may target, as `(node, name)`.
    pub fn processes(mut self, processes: Vec<(u32, String)>) -> Self {
        self.processes = processes;
        self
    }

    /// Runtime processes (by pid, registered name or supervisor child) `kill-process` and
    /// `exit-process` may target, as `(node, target)`.
    pub fn targets(mut self, targets: Vec<(u32, Target)>) -> Self {
        self.targets = targets;
        self
    }

    /// Names a role: the nodes that play it.
    pub fn role(mut self, name: &str, nodes: impl IntoIterator<Item = u32>) -> Self {
        self.roles
            .push((name.to_string(), nodes.into_iter().collect()));
        self
    }

    /// Faults of `kind` hit only nodes of these roles (for a partition or a clogged link: the
    /// node it cuts off).
    pub fn aim(mut self, kind: FaultKind, roles: &[&str]) -> Self {
        self.aims
            .push((kind, roles.iter().map(|r| r.to_string()).collect()));
        self
    }

    /// At most `n` nodes crashed or paused at the same time.
    pub fn max_down(mut self, n: u32) -> Self {
        self.max_down = Some(n);
        self
    }

    /// Every seed's episodes are `durations` long, instead of a drawn profile.
    pub fn durations(mut self, durations: Durations) -> Self {
        self.durations = Some(durations);
        self
    }

    /// The nodes (below `nodes`) a fault of `kind` may hit, in order.
    fn aimed_nodes(&self, kind: FaultKind, nodes: u32) -> Vec<u32> {
        let Some((_, roles)) = self.aims.iter().find(|(k, _)| *k == kind) else {
            return (0..nodes).collect();
        };
        let mut targets: Vec<u32> = self
            .roles
            .iter()
            .filter(|(name, _)| roles.contains(name))
            .flat_map(|(_, members)| members.iter().copied())
            .filter(|&n| n < nodes)
            .collect();
        targets.sort_unstable();
        targets.dedup();
        targets
    }

    /// Why this mix cannot generate plans, if it cannot: an aim naming no role.
    pub fn check(&self) -> Result<(), String> {
        for (kind, roles) in &self.aims {
            if let Some(r) = roles
                .iter()
                .find(|r| !self.roles.iter().any(|(n, _)| n == *r))
            {
                return Err(format!(
                    "faults of kind {kind} are aimed at role `{r}`, which no node plays"
                ));
            }
        }
        Ok(())
    }
}

impl FaultPlan {
    /// A plan with no faults: the quiet phase starts at `quiet_at_ms`.
    pub fn quiet(quiet_at_ms: u64) -> Self {
        FaultPlan {
            quiet_at_ms,
            buggify: false,
            net: None,
            swarm: None,
            faults: Vec::new(),
        }
    }

    /// A plan of `(at_ms, fault)` pairs, in the order given, then quiet from `quiet_at_ms`.
    pub fn timed(quiet_at_ms: u64, faults: impl IntoIterator<Item = (u64, Fault)>) -> Self {
        FaultPlan {
            quiet_at_ms,
            buggify: false,
            net: None,
            swarm: None,
            faults: faults
                .into_iter()
                .map(|(at_ms, fault)| TimedFault { at_ms, fault })
                .collect(),
        }
    }

    /// Parses TOML or JSON (by extension; anything else is tried as TOML). Only a regular file of at
    /// most [`MAX_PLAN_BYTES`] is read (a FIFO would hang the read, `/dev/zero` would never end),
    /// and a key the plan format does not have is an error naming its line, never ignored: a typo
    /// in `[[fault]]` would otherwise drop faults silently and the run would pass.
    pub fn load(path: &Path) -> Result<FaultPlan, PlanError> {
        let shown = path.display().to_string();
        let read_error = |source| PlanError::Read {
            path: shown.clone(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_error)?;
        if !meta.is_file() {
            return Err(PlanError::Parse {
                path: shown,
                message: "not a regular file".into(),
            });
        }
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_PLAN_BYTES + 1).read_to_string(&mut text))
            .map_err(read_error)?;
        if text.len() as u64 > MAX_PLAN_BYTES {
            return Err(PlanError::Parse {
                path: shown,
                message: format!("larger than {MAX_PLAN_BYTES} bytes"),
            });
        }
        let json = path.extension().is_some_and(|e| e == "json");
        FaultPlan::parse(&text, json).map_err(|message| PlanError::Parse {
            path: shown,
            message,
        })
    }

    /// Parses a plan's text, TOML or JSON, rejecting unknown keys.
    pub fn parse(text: &str, json: bool) -> Result<FaultPlan, String> {
        let (plan, given): (FaultPlan, serde_json::Value) = if json {
            let given: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            let plan = serde_json::from_value(given.clone()).map_err(|e| e.to_string())?;
            (plan, given)
        } else {
            let table: toml::Table = toml::from_str(text).map_err(|e| toml_message(text, &e))?;
            let plan = FaultPlan::deserialize(table.clone()).map_err(|e| toml_message(text, &e))?;
            let given = serde_json::to_value(&table).map_err(|e| e.to_string())?;
            (plan, given)
        };
        let known = serde_json::to_value(&plan).map_err(|e| e.to_string())?;
        if let Some(path) = unknown_key(&given, &known, "") {
            let key = path.rsplit(['.', ']']).next().unwrap_or(&path);
            let line = text
                .lines()
                .position(|l| {
                    let l = l
                        .trim_start()
                        .trim_start_matches('[')
                        .trim_start_matches('"');
                    l.starts_with(key)
                        && l[key.len()..]
                            .trim_start_matches('"')
                            .trim_start()
                            .starts_with(['=', ']', ':'])
                })
                .map(|i| format!(" (line {})", i + 1))
                .unwrap_or_default();
            return Err(format!(
                "unknown key `{path}`{line}; a plan has `quiet_at_ms`, `buggify`, `[net]` (loss, min_ms, \
                 max_ms), `[swarm]` (kinds, episodes, durations, overlap) and `[[fault]]` tables \
                 (at_ms, fault and the fault's own fields)"
            ));
        }
        Ok(plan)
    }

    /// The plan as TOML. Fails only for values TOML cannot hold (integers past 2^63 - 1), which a
    /// validated plan never has: its times lie within the scenario's time limit.
    pub fn to_toml(&self) -> Result<String, PlanError> {
        toml::to_string(self).map_err(|e| PlanError::Net {
            path: None,
            message: format!("cannot be written as TOML: {e}"),
        })
    }

    /// Checks node indexes, ranges and times against a scenario's limits.
    pub fn validate(&self, limits: PlanLimits, path: Option<&str>) -> Result<(), PlanError> {
        let invalid_net = |message| PlanError::Net {
            path: path.map(str::to_string),
            message,
        };
        if let Some(net) = &self.net {
            let problem = if !(0.0..=1.0).contains(&net.loss) {
                Some(format!("[net] loss {} is not between 0 and 1", net.loss))
            } else if net.min_ms > net.max_ms {
                Some(format!(
                    "[net] min_ms {} > max_ms {}",
                    net.min_ms, net.max_ms
                ))
            } else if net.max_ms > MAX_LATENCY_MS {
                Some(format!(
                    "[net] max_ms {} is past the largest latency {MAX_LATENCY_MS} ms",
                    net.max_ms
                ))
            } else {
                None
            };
            if let Some(message) = problem {
                return Err(invalid_net(message));
            }
        }
        let end = self.quiet_at_ms.checked_add(limits.settle_ms);
        if end.is_none_or(|end| end > limits.time_limit_ms) {
            return Err(invalid_net(format!(
                "quiet_at_ms {} plus the scenario's {} ms to settle is past its time limit of {} ms",
                self.quiet_at_ms, limits.settle_ms, limits.time_limit_ms
            )));
        }
        for (index, tf) in self.faults.iter().enumerate() {
            let mut check = tf.fault.validate(limits.nodes);
            if check.is_ok() && tf.at_ms > self.quiet_at_ms {
                check = Err(format!(
                    "comes after quiet_at_ms {} (faults must end before the quiet phase)",
                    self.quiet_at_ms
                ));
            }
            check.map_err(|message| PlanError::Invalid {
                path: path.map(str::to_string),
                index,
                at_ms: tf.at_ms,
                message,
            })?;
        }
        Ok(())
    }

    /// A plan drawn from `seed` (its own random stream, so the workload's draws do not move).
    pub fn generate(seed: u64, nodes: u32, mix: &FaultMix, base: &rt::NetConfig) -> FaultPlan {
        let mut rng = rt::seeded_rng(seed, Stream::Faults);
        let kinds: Vec<FaultKind> = mix
            .kinds
            .iter()
            .copied()
            .filter(|k| {
                !matches!(
                    k,
                    FaultKind::RestartNode
                        | FaultKind::ResumeNode
                        | FaultKind::Heal
                        | FaultKind::UnclogLink
                )
            })
            .filter(|k| match k {
                FaultKind::KillProcess => !mix.processes.is_empty() || !mix.targets.is_empty(),
                FaultKind::ExitProcess => !mix.targets.is_empty(),
                _ => true,
            })
            .collect();
        let window = mix.window_ms.max(1);
        let mut faults = Vec::new();
        let intensity = mix.intensity.clamp(0.0, 1.0);
        let intensity = if nodes == 0 { 0.0 } else { intensity };
        let swarm = Swarm::draw(&mut rng, &kinds, intensity, mix.durations);
        // Without overlap, each episode starts after the previous one's undo.
        let mut free_from = 0;
        // Crash and pause episodes so far, as (start, end, node), for `max_down`.
        let mut down: Vec<(u64, u64, u32)> = Vec::new();
        for _ in 0..swarm.episodes {
            let kind = swarm.kinds[rng.gen_range(0..swarm.kinds.len())];
            let length = swarm.length(&mut rng, window);
            let start = if swarm.overlap {
                rng.gen_range(0..window)
            } else {
                let slack = window / (u64::from(swarm.episodes) + 1);
                free_from + rng.gen_range(0..=slack)
            };
            if start >= window {
                break;
            }
            let end = (start + length).min(window);
            // Sequential episodes leave the system a fortieth of the window between them.
            free_from = end + (window / 40).max(1);
            let targets = mix.aimed_nodes(kind, nodes);
            if targets.is_empty() {
                continue;
            }
            let node = targets[rng.gen_range(0..targets.len())];
            if matches!(kind, FaultKind::CrashNode | FaultKind::PauseNode) {
                let overlapping = down
                    .iter()
                    .filter(|&&(s, e, _)| s <= end && start <= e)
                    .count() as u32;
                let same_node = down
                    .iter()
                    .any(|&(s, e, n)| n == node && s <= end && start <= e);
                if same_node || mix.max_down.is_some_and(|max| overlapping >= max) {
                    continue;
                }
                down.push((start, end, node));
            }
            let (begin, undo) = match kind {
                FaultKind::CrashNode => (Fault::CrashNode { node }, Fault::RestartNode { node }),
                FaultKind::PauseNode => (Fault::PauseNode { node }, Fault::ResumeNode { node }),
                FaultKind::KillProcess => {
                    // Harness tasks first, so a mix without runtime targets draws as before.
                    let i = rng.gen_range(0..mix.processes.len() + mix.targets.len());
                    let (node, target) = match mix.processes.get(i) {
                        Some((node, name)) => (*node, Target::Task(name.clone())),
                        None => mix.targets[i - mix.processes.len()].clone(),
                    };
                    faults.push(TimedFault {
                        at_ms: start,
                        fault: Fault::KillProcess { node, target },
                    });
                    continue;
                }
                FaultKind::ExitProcess => {
                    let (node, target) = mix.targets[rng.gen_range(0..mix.targets.len())].clone();
                    let reason = EXIT_REASONS[rng.gen_range(0..EXIT_REASONS.len())].to_string();
                    faults.push(TimedFault {
                        at_ms: start,
                        fault: Fault::ExitProcess {
                            node,
                            target,
                            reason,
                        },
                    });
                    continue;
                }
                FaultKind::Partition => {
                    let mut side_a = Vec::new();
                    let mut side_b = Vec::new();
                    for n in 0..nodes {
                        if n == node || (n != (node + 1) % nodes && rng.gen_bool(0.5)) {
                            side_a.push(n);
                        } else {
                            side_b.push(n);
                        }
                    }
                    if side_b.is_empty() {
                        continue;
                    }
                    (
                        Fault::Partition {
                            groups: vec![side_a, side_b],
                        },
                        Fault::Heal,
                    )
                }
                FaultKind::ClogLink => {
                    if nodes < 2 {
                        continue;
                    }
                    let to = (node + rng.gen_range(1..nodes)) % nodes;
                    (
                        Fault::ClogLink { from: node, to },
                        Fault::UnclogLink { from: node, to },
                    )
                }
                FaultKind::SetLoss => (
                    Fault::SetLoss {
                        rate: f64::from(rng.gen_range(5u32..=40)) / 100.0,
                    },
                    Fault::SetLoss { rate: base.loss },
                ),
                FaultKind::SetLatency => {
                    let max_ms = rng.gen_range(20..=200);
                    (
                        Fault::SetLatency {
                            min_ms: max_ms / 10,
                            max_ms,
                        },
                        Fault::SetLatency {
                            min_ms: base.latency.start.as_millis() as u64,
                            max_ms: base.latency.end.as_millis() as u64,
                        },
                    )
                }
                // A jump of 50 ms to 2 s either way, undone by the jump back.
                FaultKind::ClockSkew => {
                    let ms = i64::from(rng.gen_range(50u32..=2_000));
                    let offset_ms = if rng.gen_bool(0.5) { ms } else { -ms };
                    (
                        Fault::ClockSkew { node, offset_ms },
                        Fault::ClockSkew {
                            node,
                            offset_ms: -offset_ms,
                        },
                    )
                }
                // 0.1% to 20% fast or slow; the undo stops the drift (the offset gained stays
                // until the quiet phase).
                FaultKind::ClockDrift => {
                    let per_mille = f64::from(rng.gen_range(1u32..=200));
                    let sign = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
                    (
                        Fault::ClockDrift {
                            node,
                            rate: 1.0 + sign * per_mille / 1000.0,
                        },
                        Fault::ClockDrift { node, rate: 1.0 },
                    )
                }
                // 5 to 200 ms per operation, for the episode.
                FaultKind::DiskStall => (
                    Fault::DiskStall {
                        node,
                        latency_ms: rng.gen_range(5..=200),
                    },
                    Fault::DiskStall {
                        node,
                        latency_ms: 0,
                    },
                ),
                FaultKind::DiskFull => (
                    Fault::DiskFull { node, full: true },
                    Fault::DiskFull { node, full: false },
                ),
                // Damage has no undo; like kill-process it is one fault.
                FaultKind::DiskCorrupt => {
                    faults.push(TimedFault {
                        at_ms: start,
                        fault: Fault::DiskCorrupt { node },
                    });
                    continue;
                }
                FaultKind::RestartNode
                | FaultKind::ResumeNode
                | FaultKind::Heal
                | FaultKind::UnclogLink => unreachable!("filtered above"),
            };
            faults.push(TimedFault {
                at_ms: start,
                fault: begin,
            });
            faults.push(TimedFault {
                at_ms: end,
                fault: undo,
            });
        }
        // Stable sort: faults at the same instant keep the order they were drawn in.
        faults.sort_by_key(|f| f.at_ms);
        FaultPlan {
            quiet_at_ms: window,
            buggify: false,
            net: None,
            swarm: Some(swarm),
            faults,
        }
    }
}

/// The reasons a generated `exit-process` draws from: every kind of exit a supervisor treats
/// differently (`normal` and `shutdown` are clean, `kill` is untrappable, the last an error).
pub const EXIT_REASONS: [&str; 4] = ["normal", "shutdown", "kill", "injected"];

/// The largest plan file read. A hand-written plan is a few kilobytes; a generated one at
/// intensity 1 on 64 nodes is well under 100 KB.
pub const MAX_PLAN_BYTES: u64 = 1 << 20;

/// The largest latency a plan may set, in milliseconds: a minute is past every failure detector
/// and phase of the catalogue, so a larger value is a typo, not a network.
pub const MAX_LATENCY_MS: u64 = 60_000;

/// The largest clock jump a plan may make, in milliseconds: an hour is past every lease and
/// timeout of the catalogue, so a larger value is a typo.
pub const MAX_CLOCK_SKEW_MS: u64 = 3_600_000;

/// The slowest and fastest clock rates a plan may set: real quartz drifts by parts per
/// million; half or twice global time is already a broken clock.
pub const MIN_CLOCK_RATE: f64 = 0.5;
pub const MAX_CLOCK_RATE: f64 = 2.0;

/// The first key of `given` (what the file said) that `known` (the same plan written back) lacks:
/// serde drops unknown keys silently, so this is how a typo is caught.
fn unknown_key(given: &serde_json::Value, known: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match (given, known) {
        (Value::Object(g), Value::Object(k)) => g.iter().find_map(|(key, value)| {
            let here = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            match k.get(key) {
                None => Some(here),
                Some(known) => unknown_key(value, known, &here),
            }
        }),
        (Value::Array(g), Value::Array(k)) => g
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(i, (g, k))| unknown_key(g, k, &format!("{at}[{i}]"))),
        _ => None,
    }
}

fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let lines: Vec<&str> = e.message().lines().collect();
    lines.join("; ") + &toml_where(text, e)
}

fn toml_where(text: &str, err: &toml::de::Error) -> String {
    let Some(span) = err.span() else {
        return String::new();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!(" (line {line}, column {column})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(intensity: f64) -> FaultMix {
        FaultMix::new(FaultKind::ALL.to_vec(), intensity, 5_000)
            .processes(vec![(1, "server".into())])
    }

    #[test]
    fn toml_and_json_agree() {
        let toml_text = r#"
            quiet_at_ms = 4000
            [net]
            loss = 0.1
            min_ms = 2
            max_ms = 9
            [[fault]]
            at_ms = 500
            fault = "partition"
            groups = [[0, 1], [2]]
            [[fault]]
            at_ms = 900
            fault = "set-latency"
            min_ms = 5
            max_ms = 50
        "#;
        let json_text = r#"{"quiet_at_ms":4000,"net":{"loss":0.1,"min_ms":2,"max_ms":9},"fault":[
            {"at_ms":500,"fault":"partition","groups":[[0,1],[2]]},
            {"at_ms":900,"fault":"set-latency","min_ms":5,"max_ms":50}]}"#;
        let a: FaultPlan = toml::from_str(toml_text).unwrap();
        let b: FaultPlan = serde_json::from_str(json_text).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.faults[0].fault.kind(), FaultKind::Partition);
        let round: FaultPlan = toml::from_str(&a.to_toml().unwrap()).unwrap();
        assert_eq!(round, a);
    }

    /// Every target form reads back as written, the old harness-task form included (plan files
    /// from before runtime targets still parse and display as they did), and what is not
    /// exactly one target is refused with a message naming the keys.
    #[test]
    fn process_faults_name_one_target_in_plan_files() {
        let text = r#"
            quiet_at_ms = 4000
            [[fault]]
            at_ms = 1
            fault = "kill-process"
            node = 1
            process = "server"
            [[fault]]
            at_ms = 2
            fault = "kill-process"
            node = 0
            pid = 7
            [[fault]]
            at_ms = 3
            fault = "kill-process"
            node = 2
            name = "writer"
            [[fault]]
            at_ms = 4
            fault = "kill-process"
            node = 0
            supervisor = "top"
            child = "cache"
            [[fault]]
            at_ms = 5
            fault = "exit-process"
            node = 0
            name = "writer"
            reason = "shutdown"
            [[fault]]
            at_ms = 6
            fault = "exit-process"
            node = 0
            supervisor = "top"
            child = "cache"
            reason = "disk on fire"
        "#;
        let plan = FaultPlan::parse(text, false).unwrap();
        let shown: Vec<String> = plan.faults.iter().map(|f| f.fault.to_string()).collect();
        assert_eq!(
            shown,
            [
                "kill-process node=1 process=server",
                "kill-process node=0 pid=7",
                "kill-process node=2 name=writer",
                "kill-process node=0 supervisor=top child=cache",
                "exit-process node=0 name=writer reason=shutdown",
                "exit-process node=0 supervisor=top child=cache reason=\"disk on fire\"",
            ]
        );
        assert_eq!(
            plan.faults[0].fault,
            Fault::KillProcess {
                node: 1,
                target: Target::Task("server".into())
            }
        );
        assert_eq!(
            FaultPlan::parse(&plan.to_toml().unwrap(), false).unwrap(),
            plan
        );
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(FaultPlan::parse(&json, true).unwrap(), plan);
        plan.validate(PlanLimits::nodes(3), None).unwrap();
        assert_eq!(exit_reason("kill"), ExitReason::Kill);
        assert_eq!(exit_reason("normal"), ExitReason::Normal);
        assert_eq!(exit_reason("boom"), ExitReason::error("boom"));

        let bad = |fields: &str| {
            let text = format!("quiet_at_ms = 10\n[[fault]]\nat_ms = 1\nnode = 0\n{fields}\n");
            let err = FaultPlan::parse(&text, false);
            match err {
                Err(e) => e,
                Ok(plan) => plan
                    .validate(PlanLimits::nodes(1), None)
                    .unwrap_err()
                    .to_string(),
            }
        };
        let two = bad("fault = \"kill-process\"\npid = 1\nname = \"a\"");
        assert!(two.contains("exactly one target"), "{two}");
        let none = bad("fault = \"kill-process\"");
        assert!(none.contains("exactly one target"), "{none}");
        let half = bad("fault = \"kill-process\"\nsupervisor = \"top\"");
        assert!(half.contains("both `supervisor` and `child`"), "{half}");
        let task = bad("fault = \"exit-process\"\nprocess = \"a\"\nreason = \"kill\"");
        assert!(task.contains("can only be killed"), "{task}");
        let no_reason = bad("fault = \"exit-process\"\nname = \"a\"");
        assert!(no_reason.contains("reason"), "{no_reason}");
        let empty = bad("fault = \"exit-process\"\nname = \"a\"\nreason = \" \"");
        assert!(empty.contains("empty `reason`"), "{empty}");
        let typo = bad("fault = \"kill-process\"\nname = \"a\"\nchlid = \"b\"");
        assert!(typo.contains("unknown key `fault[0].chlid`"), "{typo}");
    }

    /// Generated process faults hit only the declared targets, and a mix that declares only
    /// harness tasks draws exactly the plans it drew before runtime targets existed.
    #[test]
    fn generated_process_faults_hit_declared_targets() {
        let base = rt::NetConfig::default();
        let child = Target::Child {
            supervisor: "top".into(),
            child: "cache".into(),
        };
        let mix = FaultMix::new(
            vec![FaultKind::KillProcess, FaultKind::ExitProcess],
            1.0,
            4_000,
        )
        .targets(vec![(0, Target::Name("writer".into())), (1, child.clone())]);
        let mut seen = std::collections::BTreeSet::new();
        let mut reasons = std::collections::BTreeSet::new();
        for seed in 0..100 {
            let p = FaultPlan::generate(seed, 2, &mix, &base);
            p.validate(PlanLimits::nodes(2), None).unwrap();
            for f in &p.faults {
                match &f.fault {
                    Fault::KillProcess { node, target } => {
                        seen.insert(("kill", *node, target.clone()));
                    }
                    Fault::ExitProcess {
                        node,
                        target,
                        reason,
                    } => {
                        seen.insert(("exit", *node, target.clone()));
                        reasons.insert(reason.clone());
                    }
                    other => panic!("only process faults were asked for: {other}"),
                }
            }
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(seen.contains(&("exit", 1, child)));
        assert_eq!(reasons.len(), EXIT_REASONS.len(), "{reasons:?}");
        // Harness tasks only: exit-process has nothing to aim at and is never drawn.
        let tasks = FaultMix::new(
            vec![FaultKind::KillProcess, FaultKind::ExitProcess],
            1.0,
            4_000,
        )
        .processes(vec![(0, "w".into())]);
        for seed in 0..20 {
            let p = FaultPlan::generate(seed, 1, &tasks, &base);
            assert!(p.faults.iter().all(|f| f.fault
                == Fault::KillProcess {
                    node: 0,
                    target: Target::Task("w".into())
                }));
        }
    }

    #[test]
    fn unknown_fault_name_is_rejected_with_the_known_ones() {
        let err = toml::from_str::<FaultPlan>(
            "quiet_at_ms = 10\n[[fault]]\nat_ms = 1\nfault = \"explode-node\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("explode-node"), "{err}");
        assert!("explode"
            .parse::<FaultKind>()
            .unwrap_err()
            .contains("crash-node"));
    }

    #[test]
    fn validation_names_the_fault_and_the_node() {
        let plan = FaultPlan {
            quiet_at_ms: 100,
            buggify: false,
            net: None,
            swarm: None,
            faults: vec![TimedFault {
                at_ms: 10,
                fault: Fault::CrashNode { node: 7 },
            }],
        };
        let err = plan
            .validate(PlanLimits::nodes(3), Some("p.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid plan p.toml: fault #0 (at_ms 10): crash-node names node 7, but the scenario has nodes 0..3"
        );
    }

    #[test]
    fn generated_plans_are_seeded_valid_and_scale_with_intensity() {
        let base = rt::NetConfig::default();
        let a = FaultPlan::generate(11, 5, &mix(0.6), &base);
        assert_eq!(a, FaultPlan::generate(11, 5, &mix(0.6), &base));
        a.validate(PlanLimits::nodes(5), None).unwrap();
        assert!(FaultPlan::generate(11, 5, &mix(0.0), &base)
            .faults
            .is_empty());
        let count = |i: f64| -> usize {
            (0..50)
                .map(|s| FaultPlan::generate(s, 5, &mix(i), &base).faults.len())
                .sum()
        };
        assert!(count(1.0) > count(0.25), "more intensity, more faults");
        let distinct: std::collections::BTreeSet<String> = (0..20)
            .map(|s| {
                FaultPlan::generate(s, 5, &mix(0.5), &base)
                    .to_toml()
                    .unwrap()
            })
            .collect();
        assert!(distinct.len() > 15, "different seeds give different plans");
    }

    #[test]
    fn swarm_shapes_differ_between_seeds_and_long_episodes_outlast_detection() {
        let base = rt::NetConfig::default();
        let mix = FaultMix::new(vec![FaultKind::CrashNode, FaultKind::Partition], 0.5, 8_000);
        let plans: Vec<FaultPlan> = (0..200)
            .map(|s| FaultPlan::generate(s, 3, &mix, &base))
            .collect();
        let shapes: Vec<&Swarm> = plans.iter().map(|p| p.swarm.as_ref().unwrap()).collect();
        let episodes: std::collections::BTreeSet<u32> = shapes.iter().map(|s| s.episodes).collect();
        assert!(episodes.contains(&0), "some seeds draw no episode at all");
        assert!(episodes.len() >= 6, "episode counts vary: {episodes:?}");
        assert!(
            shapes.iter().any(|s| s.kinds.len() == 1) && shapes.iter().any(|s| s.kinds.len() == 2)
        );
        assert!(shapes.iter().any(|s| s.overlap) && shapes.iter().any(|s| !s.overlap));
        // A crash whose restart comes LONG_EPISODE_MS or more later, in a fair share of seeds.
        let long_crash = |p: &FaultPlan| {
            p.faults.iter().any(|f| {
                let Fault::CrashNode { node } = f.fault else {
                    return false;
                };
                p.faults.iter().any(|g| {
                    g.fault == Fault::RestartNode { node } && g.at_ms >= f.at_ms + LONG_EPISODE_MS
                })
            })
        };
        let long = plans.iter().filter(|p| long_crash(p)).count();
        assert!(
            long >= 30,
            "only {long} of 200 seeds crash a node past failure detection"
        );
        // Without overlap, an episode starts only after the one before was undone.
        for p in plans.iter().filter(|p| !p.swarm.as_ref().unwrap().overlap) {
            let mut open = 0i32;
            for f in &p.faults {
                open += match f.fault {
                    Fault::CrashNode { .. } | Fault::Partition { .. } => 1,
                    Fault::RestartNode { .. } | Fault::Heal => -1,
                    _ => 0,
                };
                assert!((0..=1).contains(&open), "overlap in {p:?}");
            }
        }
        for p in &plans {
            p.validate(PlanLimits::nodes(3), None).unwrap();
        }
    }

    #[test]
    fn a_printed_swarm_plan_reads_back_the_same() {
        let base = rt::NetConfig::default();
        for seed in 0..20 {
            let p = FaultPlan::generate(seed, 4, &mix(0.7), &base);
            let text = p.to_toml().unwrap();
            assert!(text.contains("[swarm]"), "{text}");
            assert_eq!(FaultPlan::parse(&text, false).unwrap(), p);
        }
    }

    #[test]
    fn roles_aim_faults_and_max_down_bounds_what_is_down_at_once() {
        let base = rt::NetConfig::default();
        let mix = FaultMix::new(vec![FaultKind::CrashNode, FaultKind::PauseNode], 1.0, 8_000)
            .role("primary", [0])
            .role("backups", [1, 2])
            .role("clients", [3, 4])
            .aim(FaultKind::CrashNode, &["primary", "backups"])
            .aim(FaultKind::PauseNode, &["backups"])
            .max_down(1);
        mix.check().unwrap();
        let mut crashed = std::collections::BTreeSet::new();
        for seed in 0..300 {
            let p = FaultPlan::generate(seed, 5, &mix, &base);
            let mut down = std::collections::BTreeSet::new();
            for f in &p.faults {
                match f.fault {
                    Fault::CrashNode { node } => {
                        assert!(node <= 2, "a crash hit client {node}");
                        crashed.insert(node);
                        assert!(down.insert(node));
                    }
                    Fault::PauseNode { node } => {
                        assert!((1..=2).contains(&node), "a pause hit {node}");
                        assert!(down.insert(node));
                    }
                    Fault::RestartNode { node } | Fault::ResumeNode { node } => {
                        down.remove(&node);
                    }
                    _ => {}
                }
                assert!(down.len() <= 1, "seed {seed}: {down:?} down at once");
            }
        }
        assert_eq!(crashed.into_iter().collect::<Vec<_>>(), [0, 1, 2]);
        let bad = FaultMix::new(vec![FaultKind::CrashNode], 0.5, 1_000)
            .aim(FaultKind::CrashNode, &["primary"]);
        assert!(bad
            .check()
            .unwrap_err()
            .contains("role `primary`, which no node plays"));
    }
}
