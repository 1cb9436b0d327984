//! Sequential specifications the linearizability checker replays operations against.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;

use crate::history::{Operation, Status, Value};

/// A single object's sequential specification. The checker partitions a history by key and
/// runs one copy of the model per key.
pub trait Model {
    type State: Clone + Eq + Hash + Debug;

    fn name(&self) -> &'static str;

    fn init(&self) -> Self::State;

    /// `op` applied to `state`: the next state, or `None` when `op` cannot happen there (an
    /// output that does not match, an unknown function). For an operation of
    /// [`Status::Unknown`] the output is not known and must not be compared.
    fn step(&self, state: &Self::State, op: &Operation) -> Option<Self::State>;

    /// An operation that never changes the state (a read): one whose outcome is unknown tells
    /// nothing, and the checker drops it.
    fn read_only(&self, op: &Operation) -> bool {
        op.f == "read"
    }

    /// One key's operations without those that cannot change the verdict: both the history
    /// and the history without them are linearizable or neither is. By default, all of them.
    fn prune<'a>(&self, ops: Vec<&'a Operation>) -> Vec<&'a Operation> {
        ops
    }
}

fn known(op: &Operation) -> bool {
    op.status == Status::Ok
}

/// A read/write/compare-and-set register. `read` returns the value; `write(v)`; `cas([expect,
/// new])` returns `1` when it swapped and `0` when it did not.
///
/// [`Register::unknown_initial`] is the register whose value before the history is not known
/// (the first read fixes it): the model for reads taken after a system has converged.
#[derive(Debug, Clone)]
pub struct Register {
    initial: Option<Value>,
}

impl Register {
    pub fn new(initial: impl Into<Value>) -> Self {
        Register {
            initial: Some(initial.into()),
        }
    }

    pub fn unknown_initial() -> Self {
        Register { initial: None }
    }
}

impl Default for Register {
    fn default() -> Self {
        Register::new(Value::Nil)
    }
}

impl Model for Register {
    /// `None`: not yet known (only with [`Register::unknown_initial`]).
    type State = Option<Value>;

    fn name(&self) -> &'static str {
        "register"
    }

    fn init(&self) -> Self::State {
        self.initial.clone()
    }

    fn step(&self, state: &Self::State, op: &Operation) -> Option<Self::State> {
        match op.f.as_str() {
            "read" if !known(op) => Some(state.clone()),
            "read" => match state {
                None => Some(Some(op.output.clone())),
                Some(v) => (*v == op.output).then(|| state.clone()),
            },
            "write" => Some(Some(op.input.clone())),
            "cas" => {
                let [expect, new] = op.input.list()? else {
                    return None;
                };
                let swaps = match state {
                    None => true,
                    Some(v) => v == expect,
                };
                match (known(op), op.output.int()) {
                    (false, _) | (true, Some(1)) => swaps.then(|| Some(new.clone())),
                    (true, Some(0)) => match state {
                        Some(v) if v != expect => Some(state.clone()),
                        _ => None,
                    },
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// A key-value map: a [`Register`] per key, every key absent (`nil`) at first. Record `read`,
/// `write` (`nil` deletes) and `cas` with the map key as the operation's key.
#[derive(Debug, Clone, Default)]
pub struct Map;

impl Model for Map {
    type State = Option<Value>;

    fn name(&self) -> &'static str {
        "map"
    }

    fn init(&self) -> Self::State {
        Some(Value::Nil)
    }

    fn step(&self, state: &Self::State, op: &Operation) -> Option<Self::State> {
        Register::default().step(state, op)
    }
}

/// A set: `add(v)`, `remove(v)`, and `read` returning every member as a sorted list.
#[derive(Debug, Clone, Default)]
pub struct Set;

impl Model for Set {
    type State = BTreeSet<Value>;

    fn name(&self) -> &'static str {
        "set"
    }

    fn init(&self) -> Self::State {
        BTreeSet::new()
    }

    fn step(&self, state: &Self::State, op: &Operation) -> Option<Self::State> {
        match op.f.as_str() {
            "add" => {
                let mut s = state.clone();
                s.insert(op.input.clone());
                Some(s)
            }
            "remove" => {
                let mut s = state.clone();
                s.remove(&op.input);
                Some(s)
            }
            "read" if !known(op) => Some(state.clone()),
            "read" => {
                let seen: BTreeSet<Value> = op.output.list()?.iter().cloned().collect();
                (seen == *state).then(|| state.clone())
            }
            _ => None,
        }
    }

    /// Leaves out a timed-out `add(v)` (no answer at all) when no answered read saw `v` and
    /// nothing removes it: membership of `v` only ever turns on, so in any linearization no
    /// read follows that add, and without it the same order explains everything else.
    fn prune<'a>(&self, ops: Vec<&'a Operation>) -> Vec<&'a Operation> {
        let mut seen: BTreeSet<&Value> = BTreeSet::new();
        for op in &ops {
            match op.f.as_str() {
                "read" if known(op) => seen.extend(op.output.list().unwrap_or_default()),
                "remove" => {
                    seen.insert(&op.input);
                }
                _ => {}
            }
        }
        ops.into_iter()
            .filter(|op| {
                let lost =
                    op.f == "add" && op.status == Status::Unknown && op.complete_ns.is_none();
                !lost || seen.contains(&op.input)
            })
            .collect()
    }
}

/// A fenced resource (fencing tokens, as Kleppmann describes them): `write(token)` takes effect
/// only with a token no older than every one accepted before it. Record accepted writes `ok` and
/// refused ones `fail`: the check is that some order consistent with real time accepts tokens
/// that never go back.
#[derive(Debug, Clone, Default)]
pub struct Fence;

impl Model for Fence {
    /// The newest token accepted (`i64::MIN` before any).
    type State = i64;

    fn name(&self) -> &'static str {
        "fence"
    }

    fn init(&self) -> Self::State {
        i64::MIN
    }

    fn step(&self, state: &Self::State, op: &Operation) -> Option<Self::State> {
        match op.f.as_str() {
            "write" => {
                let token = op.input.int()?;
                (token >= *state).then_some(token)
            }
            _ => None,
        }
    }
}

/// A FIFO queue: `enqueue(v)`; `dequeue` returns the head, or `nil` when empty.
#[derive(Debug, Clone, Default)]
pub struct Queue;

impl Model for Queue {
    type State = VecDeque<Value>;

    fn name(&self) -> &'static str {
        "queue"
    }

    fn init(&self) -> Self::State {
        VecDeque::new()
    }

    fn step(&self, state: &Self::State, op: &Operation) -> Option<Self::State> {
        match op.f.as_str() {
            "enqueue" => {
                let mut q = state.clone();
                q.push_back(op.input.clone());
                Some(q)
            }
            "dequeue" => {
                let mut q = state.clone();
                let head = q.pop_front().unwrap_or(Value::Nil);
                (!known(op) || head == op.output).then_some(q)
            }
            _ => None,
        }
    }

    fn read_only(&self, _op: &Operation) -> bool {
        false
    }
}

/// A counter from 0: `add(n)` (an increment is `add(1)`), `read` returning the count.
#[derive(Debug, Clone, Default)]
pub struct Counter;

impl Model for Counter {
    type State = i64;

    fn name(&self) -> &'static str {
        "counter"
    }

    fn init(&self) -> Self::State {
        0
    }

    fn step(&self, state: &Self::State, op: &Operation) -> Option<Self::State> {
        match op.f.as_str() {
            "add" => Some(state.checked_add(op.input.int()?)?),
            "read" if !known(op) => Some(*state),
            "read" => (op.output.int()? == *state).then_some(*state),
            _ => None,
        }
    }
}
