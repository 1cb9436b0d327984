//! Histories: what a scenario's clients invoked and what they saw, for the checkers in
//! [`crate::checker`] to judge.
//!
//! A client calls [`History::invoke`] before it sends a request, then exactly one of
//! [`History::ok`] (the answer), [`History::fail`] (certainly not applied) or
//! [`History::unknown`] (a timeout: maybe applied). An operation still open when the run ends
//! counts as unknown. Each call is a `history` trace line stamped with simulated time, so the trace
//! hash covers the history; a run that records nothing has no such line.
//!
//! [`History`] is a cheap clone-able handle (`Send + Sync`): the driver gets one from
//! [`Driver::history`](crate::Driver::history), node programs get a clone of it.

use std::fmt;
use std::sync::{Arc, Mutex};

use groundhog_runtime::event;
use groundhog_runtime::rt::{self, Duration};
use serde::{Deserialize, Serialize};

/// A value an operation carries or returns. `List` also carries compound inputs (a
/// compare-and-set's `[expect, new]`) and transactions' reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Nil,
    Int(i64),
    Str(String),
    List(Vec<Value>),
}

impl Value {
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i64::from(i))
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Int(i64::from(i))
    }
}

impl From<u64> for Value {
    fn from(i: u64) -> Self {
        Value::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Nil, Into::into)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Invoked, no answer yet (at the end of a run: treated as [`Status::Unknown`]).
    Pending,
    /// Applied, with the output seen.
    Ok,
    /// Certainly not applied.
    Fail,
    /// Maybe applied (a timeout, a crash); its output is not known.
    Unknown,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Pending => "invoke",
            Status::Ok => "ok",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
        }
    }
}

/// An operation's index in its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId(pub usize);

/// One operation: who, on what key, which function with which input, and what came back when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub id: OpId,
    /// The client that ran it; operations of one process do not overlap.
    pub process: String,
    /// The object it acts on (checkers partition by key).
    pub key: String,
    /// The function: `read`, `write`, `cas`, `add`, `enqueue`, `dequeue`, `txn`, ...
    pub f: String,
    pub input: Value,
    /// The output seen (`Nil` unless [`Status::Ok`]).
    pub output: Value,
    pub status: Status,
    /// Simulated time of the invocation, nanoseconds since the run started.
    pub invoke_ns: u64,
    /// Simulated time of the answer; `None` while pending or when unknown.
    pub complete_ns: Option<u64>,
}

impl Operation {
    /// `a` precedes `b` in real time: `a` answered strictly before `b` was invoked.
    pub fn precedes(&self, b: &Operation) -> bool {
        self.complete_ns.is_some_and(|c| c < b.invoke_ns)
    }

    /// A short form for messages: `p1 incr(counter 1) -> ok 0 [0.010..0.020]`.
    pub fn describe(&self) -> String {
        let done = match self.complete_ns {
            Some(c) => format!("{:.6}", c as f64 / 1e9),
            None => "?".into(),
        };
        format!(
            "#{} {} {}({} {}) -> {} {} [{:.6}..{done}]",
            self.id.0,
            self.process,
            self.f,
            self.key,
            self.input,
            self.status.name(),
            self.output,
            self.invoke_ns as f64 / 1e9,
        )
    }
}

/// A run's history: a clone-able, thread-safe handle.
#[derive(Clone, Default)]
pub struct History {
    ops: Arc<Mutex<Vec<Operation>>>,
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "History({} ops)", self.lock().len())
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl History {
    /// An empty history (the harness makes one per run).
    pub fn new() -> Self {
        History::default()
    }

    /// Builds a history from finished operations (hand-built histories, files).
    pub fn from_ops(ops: Vec<Operation>) -> Self {
        History {
            ops: Arc::new(Mutex::new(ops)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Operation>> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `process` invokes `f(input)` on `key` now.
    pub fn invoke(
        &self,
        process: impl Into<String>,
        key: impl Into<String>,
        f: &str,
        input: impl Into<Value>,
    ) -> OpId {
        let now = nanos(rt::elapsed());
        let (process, key, input) = (process.into(), key.into(), input.into());
        let mut ops = self.lock();
        let id = OpId(ops.len());
        event!(
            "history",
            op = id.0,
            process = process.as_str(),
            status = "invoke",
            key = key.as_str(),
            f = f,
            value = %input
        );
        ops.push(Operation {
            id,
            process,
            key,
            f: f.to_string(),
            input,
            output: Value::Nil,
            status: Status::Pending,
            invoke_ns: now,
            complete_ns: None,
        });
        id
    }

    /// Operation `id` returned `output`.
    pub fn ok(&self, id: OpId, output: impl Into<Value>) {
        self.complete(id, Status::Ok, output.into());
    }

    /// Operation `id` certainly did not take effect.
    pub fn fail(&self, id: OpId) {
        self.complete(id, Status::Fail, Value::Nil);
    }

    /// Operation `id` may or may not have taken effect (a timeout).
    pub fn unknown(&self, id: OpId) {
        self.complete(id, Status::Unknown, Value::Nil);
    }

    /// Invokes and completes at once: an observation that took no time.
    pub fn instant(
        &self,
        process: impl Into<String>,
        key: impl Into<String>,
        f: &str,
        input: impl Into<Value>,
        output: impl Into<Value>,
    ) -> OpId {
        let id = self.invoke(process, key, f, input);
        self.ok(id, output);
        id
    }

    fn complete(&self, id: OpId, status: Status, output: Value) {
        let now = nanos(rt::elapsed());
        let mut ops = self.lock();
        let Some(op) = ops.get_mut(id.0) else {
            panic!("history: no operation {id:?} was invoked");
        };
        assert_eq!(
            op.status,
            Status::Pending,
            "history: operation {} completed twice",
            id.0
        );
        event!(
            "history",
            op = id.0,
            process = op.process.as_str(),
            status = status.name(),
            value = %output
        );
        op.status = status;
        op.output = output;
        if status != Status::Unknown {
            op.complete_ns = Some(now);
        }
    }

    /// Every operation so far, pending ones as [`Status::Unknown`].
    pub fn ops(&self) -> Vec<Operation> {
        self.lock()
            .iter()
            .cloned()
            .map(|mut op| {
                if op.status == Status::Pending {
                    op.status = Status::Unknown;
                }
                op
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The history as JSON (`groundhog replay ... --history FILE`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.ops()).expect("a history serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_pending_reads_unknown() {
        let h = History::new();
        let a = h.invoke("p1", "x", "write", 3i64);
        h.ok(a, Value::Nil);
        let _open = h.invoke("p2", "x", "read", Value::Nil);
        let ops = h.ops();
        assert_eq!(ops[1].status, Status::Unknown);
        let back: Vec<Operation> = serde_json::from_str(&h.to_json()).unwrap();
        assert_eq!(back, ops);
    }
}
