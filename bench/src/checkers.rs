//! Figures of the history checkers: time to check a linearizable register history of 100,
//! 1,000 and 10,000 operations from 5 to 50 concurrent clients (one key: the whole history is
//! one search), and the anomaly checker (real-time edges on) on list-append histories of the
//! same sizes and clients.

use groundhog_sim::checker::{Elle, Linear, Register, Verdict, Workload};
use groundhog_sim::{OpId, Operation, Status, Value};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::measure::{median, timed};
use crate::table::{Row, Table};
use crate::Opts;

pub fn all(table: &mut Table, opts: &Opts) {
    if !opts.wants("checkers") {
        return;
    }
    let sizes: &[usize] = if opts.quick {
        &[100]
    } else {
        &[100, 1_000, 10_000]
    };
    for &ops in sizes {
        for clients in [5, 50] {
            linear(table, opts.samples, ops, clients);
        }
    }
    for &ops in sizes {
        for clients in [5, 50] {
            anomalies(table, opts.samples, ops, clients);
        }
    }
}

/// Intervals of `clients` clients running `total` operations back to back (each op 1 to 20
/// time units, a pause of 0 to 5 between), each with a random point inside its interval.
fn intervals(total: usize, clients: usize, seed: u64) -> Vec<(usize, u64, u64, u64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut next = vec![0u64; clients];
    (0..total)
        .map(|_| {
            let c = rng.gen_range(0..clients);
            let start = next[c] + rng.gen_range(0..5);
            let end = start + rng.gen_range(1..20);
            next[c] = end + 1;
            (c, start, end, rng.gen_range(start..=end))
        })
        .collect()
}

/// A register history in which each operation takes effect at its point: linearizable.
fn register_history(total: usize, clients: usize) -> Vec<Operation> {
    let mut ivs = intervals(total, clients, 7);
    ivs.sort_by_key(|iv| iv.3);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut value = Value::Nil;
    ivs.iter()
        .enumerate()
        .map(|(i, &(c, start, end, _))| {
            let write = rng.gen_bool(0.5);
            let (f, input, output) = if write {
                value = Value::Int(i as i64);
                ("write", value.clone(), Value::Nil)
            } else {
                ("read", Value::Nil, value.clone())
            };
            Operation {
                id: OpId(i),
                process: format!("c{c}"),
                key: "r".into(),
                f: f.into(),
                input,
                output,
                status: Status::Ok,
                invoke_ns: start,
                complete_ns: Some(end),
            }
        })
        .collect()
}

/// A serializable list-append history: transactions of two micro-ops over `keys` keys, applied
/// at their points.
fn append_history(total: usize, clients: usize, keys: usize) -> Vec<Operation> {
    let mut ivs = intervals(total, clients, 9);
    ivs.sort_by_key(|iv| iv.3);
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let mut lists: Vec<Vec<Value>> = vec![Vec::new(); keys];
    ivs.iter()
        .enumerate()
        .map(|(i, &(c, start, end, _))| {
            let mops: Vec<Value> = (0..2)
                .map(|_| {
                    let k = rng.gen_range(0..keys);
                    let key = Value::Str(format!("k{k}"));
                    if rng.gen_bool(0.5) {
                        lists[k].push(Value::Int(i as i64));
                        Value::List(vec!["append".into(), key, Value::Int(i as i64)])
                    } else {
                        Value::List(vec!["r".into(), key, Value::List(lists[k].clone())])
                    }
                })
                .collect();
            let t = Value::List(mops);
            Operation {
                id: OpId(i),
                process: format!("c{c}"),
                key: "txn".into(),
                f: "txn".into(),
                input: t.clone(),
                output: t,
                status: Status::Ok,
                invoke_ns: start,
                complete_ns: Some(end),
            }
        })
        .collect()
}

fn linear(table: &mut Table, samples: usize, total: usize, clients: usize) {
    let history = register_history(total, clients);
    let model = Register::default();
    let mut verdict = Verdict::Linearizable;
    let secs = median(samples, || {
        let (t, v) = timed(|| Linear::new(&model).check(&history));
        verdict = v;
        t.as_secs_f64()
    });
    let result = match verdict {
        Verdict::Linearizable => "linearizable".to_string(),
        Verdict::NotLinearizable(_) => "NOT linearizable (generator bug)".to_string(),
        Verdict::BudgetExhausted { steps, .. } => format!("budget of {steps} steps exhausted"),
    };
    table.push(Row {
        figure: format!("linearizability, register, {total} ops, {clients} clients"),
        groundhog: format!("{:.2} ms ({result})", secs * 1e3),
        baseline: "n/a".into(),
        ratio: "n/a".into(),
        target: "n/a".into(),
        met: None,
    });
}

fn anomalies(table: &mut Table, samples: usize, total: usize, clients: usize) {
    let history = append_history(total, clients, 20);
    let mut found = 0;
    let secs = median(samples, || {
        let (t, a) = timed(|| {
            Elle::new(Workload::ListAppend)
                .realtime(true)
                .check(&history)
        });
        found = a.len();
        t.as_secs_f64()
    });
    table.push(Row {
        figure: format!("anomalies, list-append, {total} txns, {clients} clients, real time"),
        groundhog: format!("{:.2} ms ({found} anomalies)", secs * 1e3),
        baseline: "n/a".into(),
        ratio: "n/a".into(),
        target: "n/a".into(),
        met: None,
    });
}
