//! Unknown operations at scale: a set history of a few hundred operations from several
//! concurrent clients, some of whose adds timed out (never applied, never seen). Each such add
//! stays a candidate for the rest of the history; tried at every point, the subsets of them
//! grow the search (and its memo) exponentially. The checker must answer, or at worst say its
//! budget ran out, in bounded memory.

use crate::checker::known::Build;
use crate::checker::linear::{Linear, Verdict};
use crate::checker::Set;
use crate::history::Value;

const CLIENTS: u64 = 4;

/// Rounds of four concurrent operations: every fifth round each client reads the whole set,
/// otherwise each adds its own value; one add in seven timed out and was never applied. With
/// `forget_from`, reads from that round on miss the first value acknowledged (an amnesiac
/// store).
fn rounds(rounds: u64, forget_from: Option<u64>) -> Build {
    let mut b = Build::default();
    let mut set: Vec<Value> = Vec::new();
    for r in 0..rounds {
        for c in 0..CLIENTS {
            let span = (100 * r + c, 100 * r + 50 + c);
            let p = format!("c{c}");
            if r % 5 == 4 {
                let mut seen = set.clone();
                if forget_from.is_some_and(|f| r >= f) {
                    seen.remove(0);
                }
                seen.sort();
                b.op(&p, "s", "read", Value::Nil, Value::List(seen), span);
            } else {
                let v = Value::Int((r * CLIENTS + c) as i64);
                b.op(&p, "s", "add", v.clone(), Value::Nil, span);
                if (r * CLIENTS + c) % 7 == 3 {
                    b.unknown();
                } else {
                    set.push(v);
                }
            }
        }
    }
    b
}

#[test]
fn timed_out_adds_nobody_saw_do_not_explode_the_search() {
    let b = rounds(75, None);
    assert_eq!(b.0.len(), 300);
    assert_eq!(Linear::new(&Set).check(&b.0), Verdict::Linearizable);
}

#[test]
fn a_forgotten_add_is_found_among_timed_out_ones() {
    // Shorter: shrinking the failure repeats the search a few hundred times.
    let b = rounds(30, Some(20));
    match Linear::new(&Set).check(&b.0) {
        Verdict::NotLinearizable(f) => {
            // A read that misses 0 (the last), given the add of 0: not the other adds its value
            // needs (no order explains it with or without them), nor the timed-out adds.
            assert!(f.minimal);
            let ops: Vec<(&str, u64)> = f.ops.iter().map(|o| (o.f.as_str(), o.invoke_ns)).collect();
            assert_eq!(ops, [("add", 0), ("read", 2_903)]);
            assert_eq!(f.conflict, [f.ops[1].id]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_timed_out_add_is_left_out_only_when_nothing_saw_or_removes_its_value() {
    let seen = |read: &[i64], remove: bool| {
        let mut b = Build::default();
        b.op("p1", "s", "add", 1i64, Value::Nil, (0, 10)).unknown();
        if remove {
            b.op("p2", "s", "remove", 1i64, Value::Nil, (20, 30));
        }
        let read = Value::List(read.iter().map(|&v| Value::Int(v)).collect());
        b.op("p2", "s", "read", Value::Nil, read, (40, 50));
        Linear::new(&Set).check(&b.0).is_linearizable()
    };
    // Seen: it took effect. Unseen: it never did (left out). Removed: either way.
    assert!(seen(&[1], false));
    assert!(seen(&[], false));
    assert!(seen(&[], true));
    assert!(!seen(&[2], false));
}
