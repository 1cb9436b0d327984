//! Recording a run's trace: every `groundhog::*` tracing event, as a deterministic text line
//! stamped with simulated time, folded into a running FNV-1a 64 hash.
//!
//! A line reads `<seconds>.<nanos> <node> <kind> <field>=<value> ...`, for example
//! `0.012000000 n2 send to=1 msg=ping-7`; `--` stands for the harness (no node).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use groundhog_runtime::rt;
use groundhog_runtime::trace::TARGET_PREFIX;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

/// The trace hash: FNV-1a, 64 bits, over every line followed by `\n`. Named and fixed, so a hash
/// printed today still identifies the same trace after a toolchain upgrade (std's hasher does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TraceHash(pub u64);

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
    pub counts: BTreeMap<String, u64>,
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
    trace: Arc<Mutex<Trace>>,
    keep_lines: bool,
}

impl Recorder {
    /// `keep_lines: false` keeps only the hash and the counts (sweeps).
    pub fn new(keep_lines: bool) -> Self {
        Recorder {
            trace: Arc::new(Mutex::new(Trace::new())),
            keep_lines,
        }
    }

    pub fn take(&self) -> Trace {
        std::mem::replace(&mut *self.lock(), Trace::new())
    }

    /// Appends a line that did not come through `tracing` (the harness's own summary lines).
    pub fn push(&self, kind: &str, line: String) {
        let mut trace = self.lock();
        trace.hash.push_line(&line);
        *trace.counts.entry(kind.to_string()).or_default() += 1;
        if self.keep_lines {
            trace.lines.push(line);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Trace> {
        // A panic inside a run must not hide its trace.
        self.trace.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wanted(meta: &Metadata<'_>) -> bool {
        meta.is_event() && meta.target().starts_with(TARGET_PREFIX)
    }
}

/// Formats `dur` as `seconds.nanoseconds`, fixed width after the point.
pub fn format_time(dur: rt::Duration) -> String {
    format!("{}.{:09}", dur.as_secs(), dur.subsec_nanos())
}

struct LineVisitor {
    node: Option<String>,
    fields: String,
}

impl LineVisitor {
    fn push(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if field.name() == "node" {
            self.node = Some(value.to_string());
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

impl Visit for LineVisitor {
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
        let mut visitor = LineVisitor {
            node: None,
            fields: String::new(),
        };
        event.record(&mut visitor);
        let node = match visitor.node {
            Some(n) => format!("n{n}"),
            None => "--".to_string(),
        };
        let line = format!(
            "{} {node} {kind}{}",
            format_time(rt::elapsed()),
            visitor.fields
        );
        self.push(kind, line);
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
