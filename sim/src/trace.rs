//! Recording a run's trace: every `groundhog::*` tracing event, as a deterministic text line
//! stamped with simulated time, folded into a running FNV-1a 64 hash.
//!
//! A line reads `<seconds>.<nanos> <node> <kind> <field>=<value> ...`, for example
//! `0.012000000 n2 send to=1 msg=ping-7`; `--` stands for the harness (no node). An event on a
//! node whose clock a `clock-skew` or `clock-drift` changed ends with `local=<seconds>.<nanos>`,
//! that node's own reading (signed), after the event's fields.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use groundhog_runtime::rt;
use groundhog_runtime::trace::TARGET_PREFIX;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

use crate::invariants::Invariants;
use crate::scenario::Violation;

/// The trace hash: FNV-1a, 64 bits, over every line followed by `\n`. Named and fixed, so a hash
/// printed today still identifies the same trace after a toolchain upgrade (std's hasher does not).
///
/// In JSON it is the same 16 hex digits the text output prints: a 64-bit number is past what a
/// JSON reader such as `jq` holds exactly (2^53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceHash(pub u64);

impl serde::Serialize for TraceHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TraceHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        u64::from_str_radix(&text, 16).map(TraceHash).map_err(|_| {
            serde::de::Error::custom(format!("`{text}` is not a 16-hex-digit trace hash"))
        })
    }
}

impl TraceHash {
    pub const ALGORITHM: &'static str = "fnv1a-64";
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub fn empty() -> Self {
        TraceHash(Self::OFFSET)
    }

    pub fn push_line(&mut self, line: &str) {
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }
}

impl fmt::Display for TraceHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What one run recorded.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Every line, when the run kept them (see [`Recorder::new`]).
    pub lines: Vec<String>,
    pub hash: TraceHash,
    /// Number of events of each kind.
    pub counts: BTreeMap<&'static str, u64>,
}

impl Trace {
    fn new() -> Self {
        Trace {
            lines: Vec::new(),
            hash: TraceHash::empty(),
            counts: BTreeMap::new(),
        }
    }

    pub fn events(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// A `tracing` subscriber for one run, installed on that run's thread only.
#[derive(Clone)]
pub struct Recorder {
    state: Arc<Mutex<State>>,
    keep_lines: bool,
}

/// The trace so far, and buffers reused for every line (a run records thousands of events;
/// formatting each into fresh strings cost a quarter of a runtime simulation's time).
struct State {
    trace: Trace,
    line: String,
    node: String,
    fields: String,
    /// The always-on invariants, fed every line; `None` when the recorder checks nothing.
    invariants: Option<Invariants>,
    /// Woken at the first violation, so the harness can stop the run there.
    waker: Option<Waker>,
}

impl State {
    fn record(&mut self, kind: &'static str, keep: bool) {
        self.append(kind, keep);
        let Some(inv) = self.invariants.as_mut() else {
            return;
        };
        if inv.violation().is_some() {
            return;
        }
        inv.observe(&self.line);
        if let Some(v) = inv.violation().cloned() {
            let at = self.line.split(' ').next().unwrap_or("0.000000000");
            self.line = violation_line(at, &v);
            self.append("check", keep);
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
    }

    fn append(&mut self, kind: &'static str, keep: bool) {
        self.trace.hash.push_line(&self.line);
        *self.trace.counts.entry(kind).or_default() += 1;
        if keep {
            self.trace.lines.push(self.line.clone());
        }
    }
}

/// The trace line of an always-on invariant's violation, stamped `at`.
fn violation_line(at: &str, v: &Violation) -> String {
    format!(
        "{at} -- check invariant={} result=violated msg={:?}",
        v.invariant, v.message
    )
}

impl Recorder {
    /// `keep_lines: false` keeps only the hash and the counts (sweeps).
    pub fn new(keep_lines: bool) -> Self {
        Self::build(keep_lines, None)
    }

    /// A recorder that also feeds every line to `invariants` (see [`Invariants`]).
    pub fn checking(keep_lines: bool, invariants: Invariants) -> Self {
        Self::build(keep_lines, Some(invariants))
    }

    fn build(keep_lines: bool, invariants: Option<Invariants>) -> Self {
        Recorder {
            state: Arc::new(Mutex::new(State {
                trace: Trace::new(),
                line: String::new(),
                node: String::new(),
                fields: String::new(),
                invariants,
                waker: None,
            })),
            keep_lines,
        }
    }

    /// The first always-on invariant violation so far.
    pub fn violation(&self) -> Option<Violation> {
        self.lock().invariants.as_ref()?.violation().cloned()
    }

    /// Resolves at the first always-on invariant violation (never, without invariants).
    pub async fn violated(&self) {
        std::future::poll_fn(|cx| {
            let mut st = self.lock();
            if st
                .invariants
                .as_ref()
                .is_some_and(|i| i.violation().is_some())
            {
                std::task::Poll::Ready(())
            } else {
                st.waker = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }

    /// Runs the invariants' end-of-run checks for a run that ended at `end`; a violation found
    /// now is traced like one found during the run.
    pub fn finish(&self, end: rt::Duration) -> Option<Violation> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let inv = st.invariants.as_mut()?;
        if inv.violation().is_none() {
            inv.finish(end);
            if let Some(v) = inv.violation().cloned() {
                st.line = violation_line(&format_time(end), &v);
                st.append("check", self.keep_lines);
            }
        }
        inv_violation(st)
    }

    pub fn take(&self) -> Trace {
        std::mem::replace(&mut self.lock().trace, Trace::new())
    }

    /// Appends a line that did not come through `tracing` (the harness's own summary lines).
    pub fn push(&self, kind: &'static str, line: String) {
        let mut st = self.lock();
        st.line = line;
        st.record(kind, self.keep_lines);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic inside a run must not hide its trace.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wanted(meta: &Metadata<'_>) -> bool {
        meta.is_event() && meta.target().starts_with(TARGET_PREFIX)
    }
}

fn inv_violation(st: &State) -> Option<Violation> {
    st.invariants.as_ref()?.violation().cloned()
}

/// Formats `dur` as `seconds.nanoseconds`, fixed width after the point.
pub fn format_time(dur: rt::Duration) -> String {
    let mut s = String::new();
    write_time(&mut s, dur);
    s
}

fn write_time(out: &mut String, dur: rt::Duration) {
    let _ = write!(out, "{}.{:09}", dur.as_secs(), dur.subsec_nanos());
}

struct LineVisitor<'a> {
    node: &'a mut String,
    fields: &'a mut String,
}

impl LineVisitor<'_> {
    fn push(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if field.name() == "node" {
            let _ = write!(self.node, "{value}");
            return;
        }
        let name = if field.name() == "message" {
            "msg"
        } else {
            field.name()
        };
        let _ = write!(self.fields, " {name}={value}");
    }
}

impl Visit for LineVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if value.is_empty() || value.contains(char::is_whitespace) {
            self.push(field, format_args!("{value:?}"));
        } else {
            self.push(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, format_args!("{value:?}"));
    }
}

impl Subscriber for Recorder {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if Self::wanted(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        Self::wanted(meta)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        // Spans are never enabled (see `enabled`); this id is never used.
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let kind = &meta.target()[TARGET_PREFIX.len()..];
        let mut guard = self.lock();
        let st = &mut *guard;
        st.node.clear();
        st.fields.clear();
        event.record(&mut LineVisitor {
            node: &mut st.node,
            fields: &mut st.fields,
        });
        st.line.clear();
        write_time(&mut st.line, rt::elapsed());
        if st.node.is_empty() {
            st.line.push_str(" --");
        } else {
            st.line.push_str(" n");
            st.line.push_str(&st.node);
        }
        st.line.push(' ');
        st.line.push_str(kind);
        st.line.push_str(&st.fields);
        // A node whose clock a fault changed also shows its own reading.
        if let Some(local) = rt::local_nanos() {
            st.line.push_str(" local=");
            if local < 0 {
                st.line.push('-');
            }
            let nanos = local.unsigned_abs();
            let _ = write!(
                st.line,
                "{}.{:09}",
                nanos / 1_000_000_000,
                nanos % 1_000_000_000
            );
        }
        st.record(kind, self.keep_lines);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_fnv1a_64_of_lines() {
        // FNV-1a 64 of "a\n", computed by hand from the published offset and prime.
        let mut h = TraceHash::empty();
        h.push_line("a");
        let mut expect = TraceHash::OFFSET;
        for b in [b'a', b'\n'] {
            expect = (expect ^ u64::from(b)).wrapping_mul(TraceHash::PRIME);
        }
        assert_eq!(h.0, expect);
        assert_eq!(TraceHash::empty().to_string(), "cbf29ce484222325");
    }

    #[test]
    fn records_only_groundhog_events_in_field_order() {
        let rec = Recorder::new(true);
        tracing::subscriber::with_default(rec.clone(), || {
            groundhog_runtime::event!("send", node = 2u32, to = 1u32, msg = "ping 7");
            groundhog_runtime::event!("note", msg = "plain");
            tracing::info!(target: "madsim::net", "not ours");
        });
        let trace = rec.take();
        assert_eq!(
            trace.lines,
            vec![
                "0.000000000 n2 send to=1 msg=\"ping 7\"",
                "0.000000000 -- note msg=plain",
            ]
        );
        assert_eq!(trace.counts.get("send"), Some(&1));
        assert_eq!(trace.events(), 2);
    }
}
