//! The linearizability checker on generated histories: operations of a sequential model, each
//! given a random interval around its point in the sequence (random concurrency), are always
//! linearizable; the same history with one output corrupted never is.

use groundhog_sim::checker::{Counter, Linear, Model, Queue, Register, Verdict};
use groundhog_sim::{OpId, Operation, Status, Value};
use proptest::prelude::*;

use crate::config;

/// One generated operation: a function, the time its interval opens before its point in the
/// sequence, and closes after it (nanoseconds), and whether its answer was lost. Points are 10
/// apart and intervals reach 25 either side: up to five operations overlap (a queue's search
/// grows with the factorial of its concurrent enqueues).
#[derive(Debug, Clone)]
struct Gen {
    kind: u8,
    before: u64,
    after: u64,
    lost: bool,
}

fn gens(max: usize) -> impl Strategy<Value = Vec<Gen>> {
    prop::collection::vec(
        (0u8..3, 0u64..25, 1u64..25, prop::bool::weighted(0.1)).prop_map(
            |(kind, before, after, lost)| Gen {
                kind,
                before,
                after,
                lost,
            },
        ),
        1..max,
    )
}

/// Applies the generated operations in sequence (point `10 * i`) to `model`'s functions,
/// giving each the output the sequence gives it.
fn history(model: &str, gens: &[Gen]) -> Vec<Operation> {
    let mut register = Value::Int(-1);
    let mut count = 0i64;
    let mut queue = std::collections::VecDeque::new();
    gens.iter()
        .enumerate()
        .map(|(i, g)| {
            let point = 10 * (i as u64) + 100;
            let unique = Value::Int(i as i64);
            let (f, input, output) = match (model, g.kind) {
                ("register", 0) => {
                    register = unique.clone();
                    ("write", unique, Value::Nil)
                }
                ("register", _) => ("read", Value::Nil, register.clone()),
                ("counter", 0 | 1) => {
                    count += 1;
                    ("add", Value::Int(1), Value::Nil)
                }
                ("counter", _) => ("read", Value::Nil, Value::Int(count)),
                ("queue", 0 | 1) => {
                    queue.push_back(unique.clone());
                    ("enqueue", unique, Value::Nil)
                }
                _ => (
                    "dequeue",
                    Value::Nil,
                    queue.pop_front().unwrap_or(Value::Nil),
                ),
            };
            let lost = g.lost && f != "dequeue";
            Operation {
                id: OpId(i),
                process: format!("p{}", i % 5),
                key: "k".into(),
                f: f.into(),
                input,
                output: if lost { Value::Nil } else { output },
                status: if lost { Status::Unknown } else { Status::Ok },
                invoke_ns: point - g.before,
                complete_ns: (!lost).then_some(point + g.after),
            }
        })
        .collect()
}

fn verdict<M: Model>(model: &M, ops: &[Operation]) -> Verdict {
    Linear::new(model).budget(2_000_000).check(ops)
}

fn check(model: &str, ops: &[Operation]) -> Verdict {
    match model {
        "register" => verdict(&Register::new(-1i64), ops),
        "counter" => verdict(&Counter, ops),
        _ => verdict(&Queue, ops),
    }
}

/// Corrupts one answered observation so that no order explains it; `None` when the history
/// has none. A register read gets a value overwritten before it began (when two writes
/// completed in a row before it) or else a value never written; a counter read one more than
/// every add; a dequeue a value never enqueued.
fn corrupt(model: &str, ops: &mut [Operation], pick: usize) -> Option<()> {
    let reads: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.status == Status::Ok && (o.f == "read" || o.f == "dequeue"))
        .map(|(i, _)| i)
        .collect();
    let r = *reads.get(pick % reads.len().max(1))?;
    let adds = ops.iter().filter(|o| o.f == "add").count() as i64;
    let overwritten = || {
        let writes: Vec<&Operation> = ops
            .iter()
            .filter(|o| o.f == "write" && o.status == Status::Ok)
            .collect();
        writes.iter().find_map(|w| {
            writes
                .iter()
                .any(|w2| w.precedes(w2) && w2.precedes(&ops[r]))
                .then(|| w.input.clone())
        })
    };
    ops[r].output = match model {
        "register" => overwritten().unwrap_or(Value::Int(10_000)),
        "counter" => Value::Int(adds + 1),
        _ => Value::Int(10_000),
    };
    Some(())
}

proptest! {
    #![proptest_config(config(crate::cases(128), file!()))]

    #[test]
    fn sequential_histories_with_random_concurrency_are_linearizable(
        model in prop::sample::select(vec!["register", "counter", "queue"]),
        gens in gens(40),
    ) {
        let ops = history(model, &gens);
        let v = check(model, &ops);
        prop_assert!(v.is_linearizable(), "{model}: {v:?}");
    }

    #[test]
    fn a_corrupted_output_is_never_linearizable(
        model in prop::sample::select(vec!["register", "counter", "queue"]),
        // Shorter: proving a history wrong explores every order, and shrinking repeats it.
        gens in gens(16),
        pick in any::<usize>(),
    ) {
        let mut ops = history(model, &gens);
        if corrupt(model, &mut ops, pick).is_some() {
            match check(model, &ops) {
                Verdict::NotLinearizable(f) => {
                    // The reported sub-history fails on its own.
                    prop_assert!(matches!(check(model, &f.ops), Verdict::NotLinearizable(_)));
                }
                other => prop_assert!(false, "{model}: corrupted, yet {other:?}"),
            }
        }
    }
}
