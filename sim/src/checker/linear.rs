//! Linearizability: is there one order of the operations, consistent with real time, in which
//! the model explains every output?
//!
//! The search is Wing and Gong's, as Lowe and Porcupine refine it: take the operations of one key
//! in invocation order; repeatedly pick a *minimal* one (invoked no later than every pending
//! operation's answer), step the model with it, and backtrack when the model refuses. A pair
//! (set of operations linearized so far, model state) reached once is never explored again
//! (the memo), which turns the exponential search into one bounded by the distinct states.
//! Reads are tried first, and a read that fits the state is never backtracked over: moved to
//! the front of any linearization from that point it sees the same state, so the others need
//! not be tried in its place (concurrent reads then cost one step each, not a subset each).
//!
//! Operations that failed are dropped (they did not happen). Unknown ones (timeouts) may be
//! linearized anywhere after their invocation or not at all; unknown reads are dropped. Keys are
//! independent objects, checked one at a time (P-compositionality).
//!
//! Before the search the model may leave out operations that cannot change the verdict
//! ([`Model::prune`]): a set's timed-out add of a value nobody saw, which would otherwise stay a
//! candidate to the end and multiply the states by two. The memo keeps a 128-bit fingerprint of
//! each pair, not the pair (a set's state is the whole set), and at most [`MEMO_LIMIT`] of them:
//! memory stays bounded whatever the states weigh. Past the limit pairs are no longer
//! remembered, which costs repeated work (counted against the budget), never a wrong verdict; a
//! fingerprint collision (odds about n²/2¹²⁹ for n pairs) could only prune a branch unexplored.
//!
//! Every model step counts against a budget; a search that runs out says so
//! ([`Verdict::BudgetExhausted`]) instead of guessing. On failure, the key's operations are
//! shrunk to a minimal sub-history that is still not linearizable: a *conflict* (operations
//! whose outputs no order explains together, while without any one of them the rest is
//! explained) and the *context*: the other operations whose effects are needed for the failure,
//! to explain each conflict-but-one, or to make each conflict operation's output possible at
//! some time. A plain
//! deletion-minimal sub-history would be useless: a lone read of a value nobody wrote.

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::checker::models::Model;
use crate::history::{Operation, Status};

/// The default budget: model steps over the whole history.
pub const DEFAULT_BUDGET: u64 = 10_000_000;

/// The most memo entries one search keeps (16 bytes each, plus the table's overhead).
pub const MEMO_LIMIT: usize = 1 << 20;

/// What the checker found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable(NotLinearizable),
    /// The search ran out of its step budget on `key`: no verdict.
    BudgetExhausted {
        key: String,
        steps: u64,
    },
}

impl Verdict {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// A key whose operations no order explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLinearizable {
    pub model: &'static str,
    pub key: String,
    /// A minimal sub-history of that key that is not linearizable (see the module docs).
    pub ops: Vec<Operation>,
    /// The operations of `ops` whose outputs conflict: remove any one and the rest is
    /// explained; the others are the context (the writes) that explains each of them.
    pub conflict: Vec<crate::history::OpId>,
    /// Whether the shrinking finished within the budget (`false`: still a failing
    /// sub-history, perhaps not minimal).
    pub minimal: bool,
}

impl NotLinearizable {
    /// One paragraph for a failure message or a trace line.
    pub fn explain(&self) -> String {
        let part = |conflict: bool| -> Vec<String> {
            self.ops
                .iter()
                .filter(|o| self.conflict.contains(&o.id) == conflict)
                .map(Operation::describe)
                .collect()
        };
        let (conflict, context) = (part(true), part(false));
        let given = if context.is_empty() {
            String::new()
        } else {
            format!(" given {}", context.join("; "))
        };
        format!(
            "key {:?} is not linearizable as a {}{}: no order explains {}{given}",
            self.key,
            self.model,
            if self.minimal {
                ""
            } else {
                " (not fully shrunk)"
            },
            conflict.join("; "),
        )
    }
}

/// The checker, configured: `Linear::new(&Counter).budget(1_000_000).check(&ops)`.
pub struct Linear<'m, M: Model> {
    model: &'m M,
    budget: u64,
}

impl<'m, M: Model> Linear<'m, M> {
    pub fn new(model: &'m M) -> Self {
        Linear {
            model,
            budget: DEFAULT_BUDGET,
        }
    }

    /// Model steps allowed over the whole check, shrinking included.
    pub fn budget(mut self, steps: u64) -> Self {
        self.budget = steps;
        self
    }

    pub fn check(&self, ops: &[Operation]) -> Verdict {
        let mut by_key: BTreeMap<&str, Vec<Operation>> = BTreeMap::new();
        for op in ops {
            let dropped =
                op.status == Status::Fail || (op.status != Status::Ok && self.model.read_only(op));
            if !dropped {
                by_key.entry(op.key.as_str()).or_default().push(op.clone());
            }
        }
        let mut left = self.budget;
        for (key, ops) in by_key {
            match search(self.model, &ops, &mut left) {
                Some(true) => {}
                None => {
                    return Verdict::BudgetExhausted {
                        key: key.to_string(),
                        steps: self.budget,
                    }
                }
                Some(false) => {
                    let (ops, conflict, minimal) = shrink(self.model, ops, &mut left);
                    return Verdict::NotLinearizable(NotLinearizable {
                        model: self.model.name(),
                        key: key.to_string(),
                        ops,
                        conflict,
                        minimal,
                    });
                }
            }
        }
        Verdict::Linearizable
    }
}

/// Checks `ops` against `model` with the default budget.
pub fn check<M: Model>(model: &M, ops: &[Operation]) -> Verdict {
    Linear::new(model).check(ops)
}

/// A fixed-size set of operation indices.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }

    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    fn flip(&mut self, i: usize) {
        self.0[i / 64] ^= 1 << (i % 64);
    }

    /// The first index not in the set, from word `from`.
    fn first_clear(&self, from: usize) -> usize {
        let mut w = from;
        while w < self.0.len() && self.0[w] == u64::MAX {
            w += 1;
        }
        w * 64 + self.0.get(w).map_or(0, |x| x.trailing_ones() as usize)
    }
}

/// Whether one key's operations are linearizable: `None` when the budget ran out.
fn search<M: Model>(model: &M, ops: &[Operation], left: &mut u64) -> Option<bool> {
    let mut ops = model.prune(ops.iter().collect());
    ops.sort_by_key(|op| (op.invoke_ns, op.id));
    let n = ops.len();
    let invoke: Vec<u64> = ops.iter().map(|o| o.invoke_ns).collect();
    let ret: Vec<u64> = ops
        .iter()
        .map(|o| o.complete_ns.unwrap_or(u64::MAX))
        .collect();
    let required = ops.iter().filter(|o| o.status == Status::Ok).count();

    // The operations that may go next: not linearized, invoked no later than the earliest
    // answer among the operations not linearized.
    let candidates = |done: &Bits| -> Vec<usize> {
        let mut out = Vec::new();
        let mut min_ret = u64::MAX;
        let mut i = done.first_clear(0);
        while i < n {
            if !done.get(i) {
                if invoke[i] > min_ret {
                    break;
                }
                min_ret = min_ret.min(ret[i]);
                out.push(i);
            }
            i += 1;
        }
        out.retain(|&c| invoke[c] <= min_ret);
        // Tried by popping: reads first, then the earliest invoked first, as most histories
        // run (a queue's wrong order is found only at a later dequeue, so a late guess costs
        // the most).
        out.reverse();
        out.sort_by_key(|&c| model.read_only(ops[c]));
        out
    };

    struct Frame<S> {
        done: Bits,
        linearized: usize,
        state: S,
        next: Vec<usize>,
    }
    // Never iterated: only asked whether a pair was seen.
    let mut seen: HashSet<u128> = HashSet::new();
    let start = Bits::new(n);
    let mut stack = vec![Frame {
        next: candidates(&start),
        done: start,
        linearized: 0,
        state: model.init(),
    }];
    while let Some(top) = stack.last_mut() {
        if top.linearized == required {
            return Some(true);
        }
        let Some(c) = top.next.pop() else {
            stack.pop();
            continue;
        };
        if *left == 0 {
            return None;
        }
        *left -= 1;
        let Some(state) = model.step(&top.state, ops[c]) else {
            continue;
        };
        if model.read_only(ops[c]) {
            // A read that fits now may go first: moved to the front of any linearization from
            // here it sees the same state (reads change none), and no operation left answered
            // before it was invoked (it is a candidate). So its subtree decides this frame.
            top.next.clear();
        }
        let mut done = top.done.clone();
        done.flip(c);
        let linearized = top.linearized + usize::from(ops[c].status == Status::Ok);
        let print = fingerprint(&done, &state);
        if seen.contains(&print) {
            continue;
        }
        if seen.len() < MEMO_LIMIT {
            seen.insert(print);
        }
        stack.push(Frame {
            next: candidates(&done),
            done,
            linearized,
            state,
        });
    }
    Some(required == 0)
}

/// A 128-bit fingerprint of a memo pair: two independent 64-bit hashes (std's SipHash with
/// fixed keys, the same on every run).
fn fingerprint<S: Hash>(done: &Bits, state: &S) -> u128 {
    let half = |salt: u8| {
        let mut h = DefaultHasher::new();
        salt.hash(&mut h);
        done.hash(&mut h);
        state.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// The operation with its output forgotten: its effect still happens before its answer (if
/// anything after it is linearized), but what it returned is not compared.
fn weaken(op: &Operation) -> Operation {
    let mut op = op.clone();
    op.status = Status::Unknown;
    op.output = crate::history::Value::Nil;
    op
}

/// Shrinks a non-linearizable key history in two steps. First the *conflict*: the fewest
/// answered operations whose outputs, taken together, no order explains (every other one made
/// output-free, keeping its answer time). Then the *context*: of the others, only those
/// without which the rest would be explained, or some conflict-but-one would not be, or some
/// conflict operation's output could not have been seen at any time (each test as it came out
/// with all of them). Returns the context and
/// conflict operations as recorded, the conflict's ids, and whether shrinking finished.
fn shrink<M: Model>(
    model: &M,
    ops: Vec<Operation>,
    left: &mut u64,
) -> (Vec<Operation>, Vec<crate::history::OpId>, bool) {
    let n = ops.len();
    // `relax`: that operation may take effect at any time (its output must still fit).
    let build_relaxed = |req: &[bool], keep: &[bool], relax: Option<usize>| -> Vec<Operation> {
        (0..n)
            .filter(|&i| keep[i])
            .filter_map(|i| {
                if relax == Some(i) {
                    let mut op = ops[i].clone();
                    op.invoke_ns = 0;
                    op.complete_ns = Some(u64::MAX);
                    Some(op)
                } else if req[i] {
                    Some(ops[i].clone())
                } else if model.read_only(&ops[i]) {
                    None
                } else {
                    Some(weaken(&ops[i]))
                }
            })
            .collect()
    };
    let build = |req: &[bool], keep: &[bool]| build_relaxed(req, keep, None);
    let mut req: Vec<bool> = ops.iter().map(|o| o.status == Status::Ok).collect();
    let mut keep = vec![true; n];
    let done = |req: &[bool], keep: &[bool], finished: bool| {
        let conflict = (0..n).filter(|&i| req[i]).map(|i| ops[i].id).collect();
        let sub = (0..n)
            .filter(|&i| keep[i])
            .map(|i| ops[i].clone())
            .collect();
        (sub, conflict, finished)
    };
    // The conflict: make chunks of halving size optional while the history still fails.
    let mut chunk = n.div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < n {
            let end = (i + chunk).min(n);
            if (i..end).any(|j| req[j]) {
                let mut trial = req.clone();
                trial[i..end].iter_mut().for_each(|r| *r = false);
                match search(model, &build(&trial, &keep), left) {
                    Some(false) => req = trial,
                    Some(true) => {}
                    None => return done(&req, &keep, false),
                }
            }
            i = end;
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    // The context: drop an operation when the rest still fails, every conflict-but-one is
    // still explained, and each conflict operation alone could still have returned what it
    // did at some time (a read's value was written), each trial as it came out with every
    // operation kept: a read that misses an acknowledged add was never possible, and dropping
    // the other adds cannot make it so.
    let trials = |keep: &[bool]| -> Vec<Vec<Operation>> {
        let mut out = vec![build(&req, keep)];
        for r in (0..n).filter(|&r| req[r]) {
            let mut fewer = req.clone();
            fewer[r] = false;
            out.push(build(&fewer, keep));
            let only: Vec<bool> = (0..n).map(|j| j == r).collect();
            out.push(build_relaxed(&only, keep, Some(r)));
        }
        out
    };
    let mut expect = Vec::new();
    for trial in trials(&keep) {
        match search(model, &trial, left) {
            Some(x) => expect.push(x),
            None => return done(&req, &keep, false),
        }
    }
    // First the operations the failure needs outright: without one of them the rest would be
    // explained (the add a read missed).
    let mut essential = vec![false; n];
    for j in (0..n).filter(|&j| !req[j] && !model.read_only(&ops[j])) {
        keep[j] = false;
        let found = search(model, &build(&req, &keep), left);
        keep[j] = true;
        match found {
            Some(explained) => essential[j] = explained,
            None => return done(&req, &keep, false),
        }
    }
    // Then the rest, in chunks of halving size as the conflict: most of a history is context
    // to nothing. Unrequired reads are in no trial at all.
    let mut chunk = n.div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < n {
            let end = (i + chunk).min(n);
            let drop: Vec<usize> = (i..end)
                .filter(|&j| keep[j] && !req[j] && !essential[j])
                .collect();
            drop.iter().for_each(|&j| keep[j] = false);
            let mut holds = true;
            if !drop.iter().all(|&j| model.read_only(&ops[j])) {
                for (trial, &explained) in trials(&keep).iter().zip(&expect) {
                    match search(model, trial, left) {
                        Some(x) if x == explained => {}
                        Some(_) => {
                            holds = false;
                            break;
                        }
                        None => {
                            drop.iter().for_each(|&j| keep[j] = true);
                            return done(&req, &keep, false);
                        }
                    }
                }
            }
            if !holds {
                drop.iter().for_each(|&j| keep[j] = true);
            }
            i = end;
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    done(&req, &keep, true)
}
