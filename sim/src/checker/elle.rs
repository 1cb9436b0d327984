//! Transactional anomalies, as Elle finds them: infer from what transactions read which
//! transaction's write each saw and in what order versions were installed, build the dependency
//! graph, and name every cycle by the anomaly it is.
//!
//! A transaction is an [`Operation`] with `f = "txn"` whose input (and, once `ok`, output)
//! is a list of micro-operations `[f, key, value]`: for list-append `["append", k, 3]` and
//! `["r", k, [1, 2, 3]]`, for read-write registers `["w", k, 3]` and `["r", k, 3]` (`nil`: never
//! written). Values written to one key should be unique, so a read names the write it saw; a
//! value that more than one transaction wrote to a key names no single writer, so a read of it
//! adds no `wr` edge and no G1a / G1b finding (what it rules out still counts: every one of
//! those writers comes after the initial version).
//!
//! Edges (Adya's): `ww` T1 installed a version T2 overwrote; `wr` T2 read T1's write; `rw` T1
//! read a version T2 overwrote. Optionally `process` (one client's transactions in order) and
//! `realtime` (T1 answered before T2 was invoked). Version order: for list-append the longest
//! read of a key (every read must be a prefix of it, else `incompatible-order`); for registers,
//! the initial version first, and a transaction's read before its own write of a key.
//!
//! Cycles are found per strongly connected component (petgraph's Tarjan); each component gets
//! the most severe cycle it holds: `G0` (ww only), `G1c` (ww and wr), `G-single` (exactly one
//! rw), `G2` (more); with a `-process` or `-realtime` suffix when the cycle needs those edges.
//! Without cycles: `G1a` (a read of an aborted transaction's write) and `G1b` (a read of a
//! version its writer overwrote within the same transaction).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;

use crate::history::{OpId, Operation, Status, Value};

/// Which transactions the history holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    ListAppend,
    RwRegister,
}

/// One anomaly: its name, the transactions on it, and the cycle or read that shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub name: String,
    pub txns: Vec<OpId>,
    pub explain: String,
}

/// Every transaction that wrote each (key, value), with whether it was its last write of the key.
type Writers<'a> = BTreeMap<(&'a Value, &'a Value), Vec<(usize, bool)>>;

const WW: u8 = 1;
const WR: u8 = 2;
const RW: u8 = 4;
const PROCESS: u8 = 8;
const REALTIME: u8 = 16;
const DATA: u8 = WW | WR | RW;

fn edge_name(bits: u8) -> &'static str {
    [
        (WW, "ww"),
        (WR, "wr"),
        (RW, "rw"),
        (PROCESS, "process"),
        (REALTIME, "realtime"),
    ]
    .iter()
    .find(|(b, _)| bits & b != 0)
    .map_or("?", |(_, n)| n)
}

/// The checker: `Elle::new(Workload::ListAppend).realtime(true).check(&ops)`.
#[derive(Debug, Clone)]
pub struct Elle {
    workload: Workload,
    process: bool,
    realtime: bool,
}

struct Mop<'a> {
    f: &'a str,
    key: &'a Value,
    value: &'a Value,
}

fn mops(op: &Operation) -> Vec<Mop<'_>> {
    let source = if op.status == Status::Ok {
        &op.output
    } else {
        &op.input
    };
    source
        .list()
        .unwrap_or(&[])
        .iter()
        .filter_map(|m| match m.list()? {
            [Value::Str(f), key, value] => Some(Mop { f, key, value }),
            _ => None,
        })
        .collect()
}

impl Elle {
    pub fn new(workload: Workload) -> Self {
        Elle {
            workload,
            process: true,
            realtime: false,
        }
    }

    /// Adds process-order edges (default on: one client's transactions happen in order).
    pub fn process(mut self, on: bool) -> Self {
        self.process = on;
        self
    }

    /// Adds real-time edges (strict serializability; default off).
    pub fn realtime(mut self, on: bool) -> Self {
        self.realtime = on;
        self
    }

    /// Every anomaly found; empty when the history is serializable (strictly, with real time).
    pub fn check(&self, ops: &[Operation]) -> Vec<Anomaly> {
        let txns: Vec<&Operation> = ops.iter().filter(|o| o.f == "txn").collect();
        let mut anomalies = Vec::new();
        let mut edges: BTreeMap<(usize, usize), u8> = BTreeMap::new();
        let mut add = |a: usize, b: usize, bit: u8| {
            if a != b {
                *edges.entry((a, b)).or_default() |= bit;
            }
        };
        // Who wrote each (key, value), and whether it was that writer's last write of the key.
        let mut writers: Writers = BTreeMap::new();
        for (t, op) in txns.iter().enumerate() {
            let ms = mops(op);
            for (i, m) in ms.iter().enumerate() {
                if m.f == "append" || m.f == "w" {
                    let last = !ms[i + 1..].iter().any(|n| n.f == m.f && n.key == m.key);
                    let all = writers.entry((m.key, m.value)).or_default();
                    match all.iter_mut().find(|(w, _)| *w == t) {
                        Some(same) => same.1 |= last,
                        None => all.push((t, last)),
                    }
                }
            }
        }
        // The one transaction that wrote a (key, value); none when several did.
        let writer: BTreeMap<(&Value, &Value), (usize, bool)> = writers
            .iter()
            .filter_map(|(kv, all)| match all.as_slice() {
                [one] => Some((*kv, *one)),
                _ => None,
            })
            .collect();
        let committed = |t: usize| txns[t].status != Status::Fail;
        // Reads by committed transactions: (reader, key, what it saw).
        let mut reads: Vec<(usize, &Value, &Value)> = Vec::new();
        for (t, op) in txns.iter().enumerate() {
            if op.status != Status::Ok {
                continue;
            }
            // A transaction's own writes before a read are not dependencies on others.
            for m in mops(op).into_iter().filter(|m| m.f == "r") {
                reads.push((t, m.key, m.value));
            }
        }
        // G1a and G1b: what a read's last (or only) value names.
        for &(t, key, seen) in &reads {
            let values: Vec<&Value> = match self.workload {
                Workload::ListAppend => seen.list().unwrap_or(&[]).iter().collect(),
                Workload::RwRegister => vec![seen],
            };
            for (i, v) in values.iter().enumerate() {
                let Some(&(w, last)) = writer.get(&(key, *v)) else {
                    continue;
                };
                if w == t {
                    continue;
                }
                if !committed(w) {
                    anomalies.push(Anomaly {
                        name: "G1a".into(),
                        txns: vec![txns[t].id, txns[w].id],
                        explain: format!(
                            "txn #{} read {key}={v}, written by txn #{}, which failed",
                            txns[t].id.0, txns[w].id.0
                        ),
                    });
                } else if !last && i + 1 == values.len() {
                    anomalies.push(Anomaly {
                        name: "G1b".into(),
                        txns: vec![txns[t].id, txns[w].id],
                        explain: format!(
                            "txn #{} read {key}={v}, an intermediate version of txn #{}",
                            txns[t].id.0, txns[w].id.0
                        ),
                    });
                }
            }
        }
        match self.workload {
            Workload::ListAppend => {
                self.list_edges(&txns, &reads, &writer, &mut anomalies, &mut add)
            }
            Workload::RwRegister => self.register_edges(&txns, &reads, &writer, &writers, &mut add),
        }
        let ok: Vec<usize> = (0..txns.len())
            .filter(|&t| txns[t].status == Status::Ok)
            .collect();
        if self.process {
            let mut last: BTreeMap<&str, usize> = BTreeMap::new();
            let mut by_time = ok.clone();
            by_time.sort_by_key(|&t| (txns[t].invoke_ns, txns[t].id));
            for t in by_time {
                if let Some(prev) = last.insert(txns[t].process.as_str(), t) {
                    add(prev, t, PROCESS);
                }
            }
        }
        if self.realtime {
            realtime_edges(&txns, &ok, &mut add);
        }
        let mut graph: DiGraphMap<usize, u8> = DiGraphMap::new();
        for t in 0..txns.len() {
            graph.add_node(t);
        }
        for (&(a, b), &bits) in &edges {
            graph.add_edge(a, b, bits);
        }
        let mut sccs = tarjan_scc(&graph);
        sccs.iter_mut().for_each(|c| c.sort_unstable());
        sccs.sort();
        for scc in sccs.into_iter().filter(|c| c.len() > 1) {
            if let Some(a) = classify(&graph, &scc, &txns) {
                anomalies.push(a);
            }
        }
        anomalies
    }

    fn list_edges<'a>(
        &self,
        txns: &[&Operation],
        reads: &[(usize, &'a Value, &'a Value)],
        writer: &BTreeMap<(&'a Value, &'a Value), (usize, bool)>,
        anomalies: &mut Vec<Anomaly>,
        add: &mut impl FnMut(usize, usize, u8),
    ) {
        // The version order of each key: its longest read.
        let mut order: BTreeMap<&Value, &[Value]> = BTreeMap::new();
        for &(_, key, seen) in reads {
            let seen = seen.list().unwrap_or(&[]);
            let longest = order.entry(key).or_insert(seen);
            if seen.len() > longest.len() {
                *longest = seen;
            }
        }
        for &(t, key, seen) in reads {
            let seen = seen.list().unwrap_or(&[]);
            let longest = order[key];
            if !longest.starts_with(seen) {
                anomalies.push(Anomaly {
                    name: "incompatible-order".into(),
                    txns: vec![txns[t].id],
                    explain: format!(
                        "txn #{} read {key}={}, not a prefix of {}",
                        txns[t].id.0,
                        Value::List(seen.to_vec()),
                        Value::List(longest.to_vec())
                    ),
                });
                continue;
            }
            if let Some(last) = seen.last() {
                if let Some(&(w, _)) = writer.get(&(key, last)) {
                    add(w, t, WR);
                }
            }
            if let Some(next) = longest.get(seen.len()) {
                if let Some(&(w, _)) = writer.get(&(key, next)) {
                    add(t, w, RW);
                }
            }
        }
        for (key, versions) in &order {
            for pair in versions.windows(2) {
                if let (Some(&(a, _)), Some(&(b, _))) =
                    (writer.get(&(*key, &pair[0])), writer.get(&(*key, &pair[1])))
                {
                    add(a, b, WW);
                }
            }
        }
    }

    fn register_edges<'a>(
        &self,
        txns: &[&Operation],
        reads: &[(usize, &'a Value, &'a Value)],
        writer: &BTreeMap<(&'a Value, &'a Value), (usize, bool)>,
        writers: &Writers<'a>,
        add: &mut impl FnMut(usize, usize, u8),
    ) {
        // Known version pairs per key: (earlier, later); `Nil` is the initial version.
        let mut after: BTreeMap<(&Value, &Value), BTreeSet<&Value>> = BTreeMap::new();
        for (key, value) in writers.keys() {
            after.entry((key, &Value::Nil)).or_default().insert(value);
        }
        for op in txns.iter().filter(|o| o.status == Status::Ok) {
            let ms = mops(op);
            // The value this transaction leaves in each key it writes.
            let last: BTreeMap<&Value, &Value> = ms
                .iter()
                .filter(|m| m.f == "w")
                .map(|m| (m.key, m.value))
                .collect();
            let mut seen: BTreeMap<&Value, &Value> = BTreeMap::new();
            for m in ms {
                match m.f {
                    "r" => {
                        seen.entry(m.key).or_insert(m.value);
                    }
                    "w" => {
                        // Writing the value a key already holds installs no new version; and
                        // a value this transaction also leaves last names that last version
                        // to every other reader, not the one it overwrote here.
                        if let Some(prev) = seen
                            .insert(m.key, m.value)
                            .filter(|p| *p != m.value && last.get(m.key) != Some(p))
                        {
                            after.entry((m.key, prev)).or_default().insert(m.value);
                        }
                    }
                    _ => {}
                }
            }
        }
        for ((key, earlier), laters) in &after {
            for later in laters {
                let (Some(&(b, _)), a) =
                    (writer.get(&(*key, *later)), writer.get(&(*key, *earlier)))
                else {
                    continue;
                };
                if let Some(&(a, _)) = a {
                    add(a, b, WW);
                }
            }
        }
        for &(t, key, seen) in reads {
            if let Some(&(w, _)) = writer.get(&(key, seen)) {
                add(w, t, WR);
            }
            // What came after a value is known only of a value that names one version (the
            // initial one, or one write); then every writer of a later version overwrote what
            // `t` saw, however many there are.
            if *seen != Value::Nil && !writer.contains_key(&(key, seen)) {
                continue;
            }
            for later in after.get(&(key, seen)).into_iter().flatten() {
                for &(w, _) in writers.get(&(key, *later)).into_iter().flatten() {
                    add(t, w, RW);
                }
            }
        }
    }
}

/// Real-time order among the transactions `ok`, transitively reduced: `a` reaches `b` exactly
/// when `a` answered before `b` was invoked, through O(n × concurrency) edges rather than one per
/// such pair (n² / 2 for a long history). Sweeping invocations and answers in time order (the
/// invocations of an instant first: precedence is strict), each invocation gets an edge from
/// every transaction on the frontier, the answered ones that no answered transaction follows
/// yet; an answer then takes its own predecessors off the frontier and joins it.
fn realtime_edges(txns: &[&Operation], ok: &[usize], add: &mut impl FnMut(usize, usize, u8)) {
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for &t in ok {
        events.push((txns[t].invoke_ns, false, t));
        if let Some(c) = txns[t].complete_ns {
            events.push((c, true, t));
        }
    }
    events.sort_unstable();
    let mut frontier: BTreeSet<usize> = BTreeSet::new();
    let mut preds: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (_, answered, t) in events {
        if answered {
            for a in preds.remove(&t).unwrap_or_default() {
                frontier.remove(&a);
            }
            frontier.insert(t);
        } else {
            let before: Vec<usize> = frontier.iter().copied().collect();
            for &a in &before {
                add(a, t, REALTIME);
            }
            preds.insert(t, before);
        }
    }
}

/// The shortest cycle in `scc` through edges with bits in `mask`, with exactly one `rw` edge
/// when `single_rw`; as (node, bits of the edge to the next node) pairs.
fn cycle(
    graph: &DiGraphMap<usize, u8>,
    scc: &[usize],
    mask: u8,
    single_rw: bool,
) -> Option<Vec<(usize, u8)>> {
    let inside: BTreeSet<usize> = scc.iter().copied().collect();
    // A path from `from` to `to` through edges in `m`, by breadth-first search.
    let path = |from: usize, to: usize, m: u8| -> Option<Vec<(usize, u8)>> {
        let mut prev: BTreeMap<usize, (usize, u8)> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(n) = queue.pop_front() {
            for (_, next, &bits) in graph.edges(n) {
                if bits & m == 0 || !inside.contains(&next) || prev.contains_key(&next) {
                    continue;
                }
                prev.insert(next, (n, bits & m));
                if next == to {
                    let mut out = Vec::new();
                    let mut at = to;
                    while at != from || out.is_empty() {
                        let (p, b) = prev[&at];
                        out.push((p, b));
                        at = p;
                        if at == from {
                            break;
                        }
                    }
                    out.reverse();
                    return Some(out);
                }
                queue.push_back(next);
            }
        }
        None
    };
    let mut best: Option<Vec<(usize, u8)>> = None;
    for &a in scc {
        let found = if single_rw {
            graph
                .edges(a)
                .filter(|(_, b, &bits)| bits & RW != 0 && inside.contains(b))
                .filter_map(|(_, b, _)| {
                    let mut c = vec![(a, RW)];
                    if b == a {
                        return Some(c);
                    }
                    c.extend(path(b, a, mask & !RW)?);
                    Some(c)
                })
                .min_by_key(Vec::len)
        } else {
            path(a, a, mask)
        };
        if let Some(c) = found {
            if best.as_ref().is_none_or(|b| c.len() < b.len()) {
                best = Some(c);
            }
        }
    }
    best
}

/// The most severe cycle of a strongly connected component, named.
fn classify(graph: &DiGraphMap<usize, u8>, scc: &[usize], txns: &[&Operation]) -> Option<Anomaly> {
    let tries: [(&str, u8, bool); 4] = [
        ("G0", WW, false),
        ("G1c", WW | WR, false),
        ("G-single", DATA, true),
        ("G2", DATA, false),
    ];
    let extra = [
        (0u8, ""),
        (PROCESS, "-process"),
        (PROCESS | REALTIME, "-realtime"),
    ];
    for (more, suffix) in extra {
        for (name, mask, single) in tries {
            let Some(c) = cycle(graph, scc, mask | more, single) else {
                continue;
            };
            // Name by what the cycle uses: rt beats process in the suffix.
            let uses = c.iter().fold(0u8, |acc, (_, b)| acc | b);
            let suffix = if uses & REALTIME != 0 {
                "-realtime"
            } else if uses & PROCESS != 0 {
                "-process"
            } else {
                suffix
            };
            let steps: Vec<String> = c
                .iter()
                .map(|(n, b)| format!("#{} -{}->", txns[*n].id.0, edge_name(*b)))
                .collect();
            return Some(Anomaly {
                name: format!("{name}{suffix}"),
                txns: c.iter().map(|(n, _)| txns[*n].id).collect(),
                explain: format!("{} #{}", steps.join(" "), txns[c[0].0].id.0),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The reduced real-time edges reach exactly the pairs where one answered before the other
    /// was invoked, on random intervals with ties and instants.
    #[test]
    fn reduced_realtime_edges_keep_the_real_time_order() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let n = rng.gen_range(1..30);
            let ops: Vec<Operation> = (0..n)
                .map(|i| {
                    let start = rng.gen_range(0..40u64);
                    Operation {
                        id: OpId(i),
                        process: format!("p{i}"),
                        key: "k".into(),
                        f: "txn".into(),
                        input: Value::Nil,
                        output: Value::Nil,
                        status: Status::Ok,
                        invoke_ns: start,
                        complete_ns: Some(start + rng.gen_range(0..6)),
                    }
                })
                .collect();
            let txns: Vec<&Operation> = ops.iter().collect();
            let ok: Vec<usize> = (0..n).collect();
            let mut next: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
            realtime_edges(&txns, &ok, &mut |a, b, _| {
                next.entry(a).or_default().insert(b);
            });
            for a in 0..n {
                let mut reach = BTreeSet::new();
                let mut todo = vec![a];
                while let Some(x) = todo.pop() {
                    for &y in next.get(&x).into_iter().flatten() {
                        if reach.insert(y) {
                            todo.push(y);
                        }
                    }
                }
                let want: BTreeSet<usize> = (0..n).filter(|&b| ops[a].precedes(&ops[b])).collect();
                assert_eq!(reach, want, "from {a} in {ops:?}");
            }
        }
    }
}
