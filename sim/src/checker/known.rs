//! Known-answer tests: hand-built histories whose verdict is known, among them the classic
//! examples of Herlihy and Wing's linearizability paper and of the Elle paper, rebuilt by hand.

use crate::checker::linear::{Linear, Verdict};
use crate::checker::{Counter, Map, Queue, Register, Set};
use crate::history::{OpId, Operation, Status, Value};

/// Builds histories: times are plain integers (nanoseconds).
#[derive(Default)]
pub(crate) struct Build(pub(crate) Vec<Operation>);

impl Build {
    pub(crate) fn op(
        &mut self,
        process: &str,
        key: &str,
        f: &str,
        input: impl Into<Value>,
        output: impl Into<Value>,
        span: (u64, u64),
    ) -> &mut Self {
        let id = OpId(self.0.len());
        self.0.push(Operation {
            id,
            process: process.into(),
            key: key.into(),
            f: f.into(),
            input: input.into(),
            output: output.into(),
            status: Status::Ok,
            invoke_ns: span.0,
            complete_ns: Some(span.1),
        });
        self
    }

    /// The last operation did not return: a timeout.
    pub(crate) fn unknown(&mut self) -> &mut Self {
        let op = self.0.last_mut().expect("an operation");
        op.status = Status::Unknown;
        op.output = Value::Nil;
        op.complete_ns = None;
        self
    }

    /// The last operation failed.
    pub(crate) fn failed(&mut self) -> &mut Self {
        self.0.last_mut().expect("an operation").status = Status::Fail;
        self
    }
}

const NIL: Value = Value::Nil;

fn ok<M: crate::checker::Model>(model: &M, b: &Build) -> bool {
    match Linear::new(model).check(&b.0) {
        Verdict::Linearizable => true,
        Verdict::NotLinearizable(_) => false,
        Verdict::BudgetExhausted { .. } => panic!("budget exhausted"),
    }
}

fn failing_ids<M: crate::checker::Model>(model: &M, b: &Build) -> Vec<usize> {
    match Linear::new(model).check(&b.0) {
        Verdict::NotLinearizable(f) => {
            assert!(f.minimal);
            assert!(f.conflict.len() >= 2, "{f:?}");
            f.ops.iter().map(|o| o.id.0).collect()
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Herlihy and Wing, figure 1 (queue): A enqueues x, B enqueues y concurrently with A's
/// dequeue of x... the histories (a) and (c) are linearizable, (b) is not: x was enqueued
/// before y began, so y cannot be dequeued first.
#[test]
fn herlihy_wing_queue_histories() {
    // (a): A: Enq(x) [0,2]; B: Enq(y) [1,5]; A: Deq()->x [3,6]; B: Deq()->y [7,8].
    let mut a = Build::default();
    a.op("A", "q", "enqueue", "x", NIL, (0, 2))
        .op("B", "q", "enqueue", "y", NIL, (1, 5))
        .op("A", "q", "dequeue", NIL, "x", (3, 6))
        .op("B", "q", "dequeue", NIL, "y", (7, 8));
    assert!(ok(&Queue, &a));
    // (b): A: Enq(x) [0,2]; B: Enq(y) [3,5]; A: Deq()->y [6,7].
    let mut b = Build::default();
    b.op("A", "q", "enqueue", "x", NIL, (0, 2))
        .op("B", "q", "enqueue", "y", NIL, (3, 5))
        .op("A", "q", "dequeue", NIL, "y", (6, 7));
    assert!(!ok(&Queue, &b));
    // (c): the same with B's Enq(y) overlapping A's Enq(x): y may go first.
    let mut c = Build::default();
    c.op("A", "q", "enqueue", "x", NIL, (0, 4))
        .op("B", "q", "enqueue", "y", NIL, (1, 5))
        .op("A", "q", "dequeue", NIL, "y", (6, 7));
    assert!(ok(&Queue, &c));
    // Dequeue from an empty queue returns nil, and only while it is empty.
    let mut d = Build::default();
    d.op("A", "q", "enqueue", "x", NIL, (0, 1))
        .op("B", "q", "dequeue", NIL, NIL, (2, 3));
    assert!(!ok(&Queue, &d));
}

/// Herlihy and Wing's register example: a read that sees a concurrent write's new value,
/// followed by a read that sees the old one, is not linearizable (new-old inversion); the
/// reverse order is.
#[test]
fn register_new_old_inversion() {
    let mut good = Build::default();
    good.op("A", "r", "write", 1i64, NIL, (0, 10))
        .op("B", "r", "read", NIL, 0i64, (2, 3))
        .op("C", "r", "read", NIL, 1i64, (4, 5));
    assert!(ok(&Register::new(0i64), &good));
    let mut bad = Build::default();
    bad.op("A", "r", "write", 1i64, NIL, (0, 10))
        .op("B", "r", "read", NIL, 1i64, (2, 3))
        .op("C", "r", "read", NIL, 0i64, (4, 5));
    assert!(!ok(&Register::new(0i64), &bad));
    // Concurrent reads may see either value in either order.
    let mut overlap = Build::default();
    overlap
        .op("A", "r", "write", 1i64, NIL, (0, 10))
        .op("B", "r", "read", NIL, 1i64, (2, 6))
        .op("C", "r", "read", NIL, 0i64, (4, 8));
    assert!(ok(&Register::new(0i64), &overlap));
}

#[test]
fn register_cas_and_unknowns() {
    // A cas that swapped and one that did not, both explained.
    let mut b = Build::default();
    b.op("A", "r", "write", 1i64, NIL, (0, 1))
        .op(
            "B",
            "r",
            "cas",
            Value::List(vec![1.into(), 2.into()]),
            1i64,
            (2, 5),
        )
        .op(
            "C",
            "r",
            "cas",
            Value::List(vec![1.into(), 3.into()]),
            0i64,
            (3, 6),
        )
        .op("A", "r", "read", NIL, 2i64, (7, 8));
    assert!(ok(&Register::default(), &b));
    // Both cas from 1 succeeded: impossible.
    let mut two = Build::default();
    two.op("A", "r", "write", 1i64, NIL, (0, 1))
        .op(
            "B",
            "r",
            "cas",
            Value::List(vec![1.into(), 2.into()]),
            1i64,
            (2, 5),
        )
        .op(
            "C",
            "r",
            "cas",
            Value::List(vec![1.into(), 3.into()]),
            1i64,
            (3, 6),
        );
    assert!(!ok(&Register::default(), &two));
    // A timed-out write may have happened (the read explains it) ...
    let mut maybe = Build::default();
    maybe.op("A", "r", "write", 5i64, NIL, (0, 1)).unknown().op(
        "B",
        "r",
        "read",
        NIL,
        5i64,
        (20, 21),
    );
    assert!(ok(&Register::default(), &maybe));
    // ... or not, but not both: once seen, it cannot vanish.
    maybe.op("B", "r", "read", NIL, NIL, (22, 23));
    assert!(!ok(&Register::default(), &maybe));
    // A failed write never happened.
    let mut failed = Build::default();
    failed.op("A", "r", "write", 5i64, NIL, (0, 1)).failed().op(
        "B",
        "r",
        "read",
        NIL,
        5i64,
        (20, 21),
    );
    assert!(!ok(&Register::default(), &failed));
}

#[test]
fn unknown_initial_register_accepts_agreeing_reads_only() {
    let mut agree = Build::default();
    agree.op("n0", "leader", "read", NIL, "p1", (0, 1)).op(
        "n1",
        "leader",
        "read",
        NIL,
        "p1",
        (2, 3),
    );
    assert!(ok(&Register::unknown_initial(), &agree));
    agree.op("n2", "leader", "read", NIL, "p2", (4, 5));
    assert!(!ok(&Register::unknown_initial(), &agree));
}

#[test]
fn map_partitions_by_key() {
    // Each key alone is fine; a checker that mixed keys into one register would refuse it.
    let mut b = Build::default();
    b.op("A", "x", "write", 1i64, NIL, (0, 1))
        .op("B", "y", "write", 2i64, NIL, (2, 3))
        .op("A", "x", "read", NIL, 1i64, (4, 5))
        .op("B", "y", "read", NIL, 2i64, (6, 7))
        .op("C", "z", "read", NIL, NIL, (8, 9));
    assert!(ok(&Map, &b));
    b.op("C", "z", "read", NIL, 1i64, (10, 11));
    assert!(!ok(&Map, &b));
}

#[test]
fn counter_and_set() {
    // Two increments acknowledged, the count read afterwards is 1: a lost update.
    let mut lost = Build::default();
    lost.op("A", "c", "add", 1i64, NIL, (0, 5))
        .op("B", "c", "add", 1i64, NIL, (1, 6))
        .op("D", "c", "read", NIL, 1i64, (10, 11));
    assert!(!ok(&Counter, &lost));
    // During the increments, 1 is a fine read.
    let mut mid = Build::default();
    mid.op("A", "c", "add", 1i64, NIL, (0, 5))
        .op("B", "c", "add", 1i64, NIL, (1, 6))
        .op("D", "c", "read", NIL, 1i64, (2, 3))
        .op("D", "c", "read", NIL, 2i64, (10, 11));
    assert!(ok(&Counter, &mid));
    let mut set = Build::default();
    set.op("A", "s", "add", 1i64, NIL, (0, 1))
        .op("B", "s", "add", 2i64, NIL, (0, 3))
        .op("C", "s", "read", NIL, Value::List(vec![1.into()]), (2, 4))
        .op(
            "C",
            "s",
            "read",
            NIL,
            Value::List(vec![1.into(), 2.into()]),
            (5, 6),
        );
    assert!(ok(&Set, &set));
    set.op("C", "s", "read", NIL, Value::List(vec![2.into()]), (7, 8));
    assert!(!ok(&Set, &set));
}

/// The reported sub-history is the inversion (a read of the new value, a later read of the
/// old) and the two writes that explain each read alone, not the noise around them (other
/// keys, earlier and later operations on the same key).
#[test]
fn failure_names_only_the_operations_that_cannot_be_ordered() {
    let mut b = Build::default();
    b.op("A", "r", "write", 7i64, NIL, (0, 1))
        .op("D", "r", "read", NIL, 7i64, (2, 3))
        .op("A", "r", "write", 1i64, NIL, (10, 20)) // 2
        .op("E", "other", "write", 1i64, NIL, (10, 20))
        .op("B", "r", "read", NIL, 1i64, (12, 13)) // 4
        .op("D", "r", "read", NIL, 1i64, (12, 14))
        .op("C", "r", "read", NIL, 7i64, (15, 16)) // 6
        .op("D", "r", "read", NIL, 1i64, (30, 31));
    let ids = failing_ids(&Register::new(0i64), &b);
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(
        ids.contains(&0) && ids.contains(&2) && ids.contains(&6),
        "{ids:?}"
    );
    assert!(ids.contains(&4) || ids.contains(&5), "{ids:?}");
}

#[test]
fn budget_exhausted_is_no_verdict() {
    // Many overlapping writes and an impossible read at the end: the search must try every
    // order of the writes before it can say no.
    let mut b = Build::default();
    for i in 0..12 {
        b.op(&format!("p{i}"), "r", "write", i64::from(i), NIL, (0, 100));
    }
    b.op("r", "r", "read", NIL, 99i64, (200, 201));
    let v = Linear::new(&Register::default()).budget(50).check(&b.0);
    assert!(
        matches!(v, Verdict::BudgetExhausted { steps: 50, .. }),
        "{v:?}"
    );
    // With enough budget the memo makes the same search small.
    assert!(!ok(&Register::default(), &b));
}
