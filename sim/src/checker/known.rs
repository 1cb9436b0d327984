//! Known-answer tests: hand-built histories whose verdict is known, among them the classic
//! examples of Herlihy and Wing's linearizability paper and of the Elle paper, rebuilt by hand.

use crate::checker::linear::{Linear, Verdict};
use crate::checker::{Counter, Fence, Map, Queue, Register, Set};
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
fn a_fence_accepts_tokens_that_never_go_back() {
    let fence = |second: (u64, u64)| {
        let mut b = Build::default();
        b.op("p1", "r", "write", 4i64, NIL, (0, 10));
        b.op("p2", "r", "write", 3i64, NIL, second);
        b.op("p3", "r", "write", 2i64, NIL, (40, 50)).failed();
        ok(&Fence, &b)
    };
    // Token 3 accepted after token 4 was: a stale holder got through. Concurrent with it, 3
    // may have gone first. A refused write took no effect.
    assert!(!fence((20, 30)));
    assert!(fence((5, 30)));
}

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

/// Concurrent reads that fit are linearized at once, never reordered: refuting the impossible
/// last read costs a step per read, not one per subset of them (2^24 with plain backtracking).
#[test]
fn reads_that_fit_are_not_reordered() {
    let mut b = Build::default();
    b.op("w", "r", "write", 1i64, NIL, (0, 1));
    for i in 0..24 {
        b.op(&format!("p{i}"), "r", "read", NIL, 1i64, (2, 100));
    }
    b.op("w", "r", "write", 2i64, NIL, (2, 100));
    b.op("r", "r", "read", NIL, 3i64, (200, 201));
    let v = Linear::new(&Register::default()).budget(5_000).check(&b.0);
    assert!(matches!(v, Verdict::NotLinearizable(_)), "{v:?}");
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

mod anomalies {
    use super::Build;
    use crate::checker::elle::{Elle, Workload};
    use crate::history::Value;

    fn append(k: &str, v: i64) -> Value {
        Value::List(vec!["append".into(), k.into(), v.into()])
    }

    fn read_list(k: &str, vs: &[i64]) -> Value {
        let list = Value::List(vs.iter().map(|&v| v.into()).collect());
        Value::List(vec!["r".into(), k.into(), list])
    }

    fn w(k: &str, v: i64) -> Value {
        Value::List(vec!["w".into(), k.into(), v.into()])
    }

    fn r(k: &str, v: Option<i64>) -> Value {
        Value::List(vec!["r".into(), k.into(), v.into()])
    }

    /// Adds an ok transaction of `mops` (its output: reads carry what they saw).
    fn txn(b: &mut Build, process: &str, mops: Vec<Value>, span: (u64, u64)) {
        let t = Value::List(mops);
        b.op(process, "txn", "txn", t.clone(), t, span);
    }

    fn names(workload: Workload, b: &Build, realtime: bool) -> Vec<String> {
        Elle::new(workload)
            .process(false)
            .realtime(realtime)
            .check(&b.0)
            .into_iter()
            .map(|a| a.name)
            .collect()
    }

    const LA: Workload = Workload::ListAppend;
    const RR: Workload = Workload::RwRegister;

    #[test]
    fn serializable_list_append_has_no_anomaly() {
        let mut b = Build::default();
        txn(&mut b, "A", vec![append("x", 1)], (0, 1));
        txn(
            &mut b,
            "B",
            vec![read_list("x", &[1]), append("x", 2)],
            (2, 3),
        );
        txn(&mut b, "C", vec![read_list("x", &[1, 2])], (4, 5));
        assert!(names(LA, &b, true).is_empty());
    }

    /// Elle paper, G0 (write cycle): x says T1 then T2, y says T2 then T1.
    #[test]
    fn g0_write_cycle() {
        let mut b = Build::default();
        txn(&mut b, "A", vec![append("x", 1), append("y", 2)], (0, 10));
        txn(&mut b, "B", vec![append("x", 2), append("y", 1)], (0, 10));
        txn(
            &mut b,
            "C",
            vec![read_list("x", &[1, 2]), read_list("y", &[1, 2])],
            (20, 21),
        );
        assert_eq!(names(LA, &b, false), vec!["G0"]);
    }

    /// Elle paper, G1c (circular information flow): each reads the other's append.
    #[test]
    fn g1c_circular_information_flow() {
        let mut b = Build::default();
        txn(
            &mut b,
            "A",
            vec![append("x", 1), read_list("y", &[1])],
            (0, 10),
        );
        txn(
            &mut b,
            "B",
            vec![append("y", 1), read_list("x", &[1])],
            (0, 10),
        );
        assert_eq!(names(LA, &b, false), vec!["G1c"]);
    }

    /// Read skew: B sees A's y but not A's x.
    #[test]
    fn g_single_read_skew() {
        let mut b = Build::default();
        txn(&mut b, "A", vec![append("x", 1), append("y", 1)], (0, 10));
        txn(
            &mut b,
            "B",
            vec![read_list("x", &[]), read_list("y", &[1])],
            (0, 10),
        );
        txn(&mut b, "C", vec![read_list("x", &[1])], (20, 21));
        assert_eq!(names(LA, &b, false), vec!["G-single"]);
        // The same with registers.
        let mut reg = Build::default();
        txn(&mut reg, "A", vec![w("x", 1), w("y", 1)], (0, 10));
        txn(&mut reg, "B", vec![r("x", None), r("y", Some(1))], (0, 10));
        assert_eq!(names(RR, &reg, false), vec!["G-single"]);
    }

    /// Write skew: each read the key the other then appended to.
    #[test]
    fn g2_write_skew() {
        let mut b = Build::default();
        txn(
            &mut b,
            "A",
            vec![read_list("x", &[]), append("y", 1)],
            (0, 10),
        );
        txn(
            &mut b,
            "B",
            vec![read_list("y", &[]), append("x", 1)],
            (0, 10),
        );
        txn(
            &mut b,
            "C",
            vec![read_list("x", &[1]), read_list("y", &[1])],
            (20, 21),
        );
        assert_eq!(names(LA, &b, false), vec!["G2"]);
    }

    #[test]
    fn g1a_aborted_read_and_g1b_intermediate_read() {
        let mut b = Build::default();
        txn(&mut b, "A", vec![append("x", 1)], (0, 1));
        b.failed();
        txn(&mut b, "B", vec![read_list("x", &[1])], (2, 3));
        assert_eq!(names(LA, &b, false), vec!["G1a"]);
        let mut i = Build::default();
        txn(&mut i, "A", vec![append("x", 1), append("x", 2)], (0, 10));
        txn(&mut i, "B", vec![read_list("x", &[1])], (0, 10));
        txn(&mut i, "C", vec![read_list("x", &[1, 2])], (20, 21));
        // The intermediate read is also a read skew: B saw A half-way.
        assert_eq!(names(LA, &i, false), vec!["G1b", "G-single"]);
    }

    /// A value two transactions wrote to one key names neither: reading it is no aborted read
    /// even though one writer failed; a read of the initial version still precedes both.
    #[test]
    fn a_value_written_twice_names_no_writer() {
        let mut b = Build::default();
        txn(&mut b, "A", vec![w("x", 1)], (0, 1));
        txn(&mut b, "B", vec![w("x", 1)], (2, 3));
        b.failed();
        txn(&mut b, "C", vec![r("x", Some(1))], (4, 5));
        assert!(names(RR, &b, false).is_empty());
        // The same read with one writer only: that writer failed, so it is an aborted read.
        let mut one = Build::default();
        txn(&mut one, "B", vec![w("x", 1)], (2, 3));
        one.failed();
        txn(&mut one, "C", vec![r("x", Some(1))], (4, 5));
        assert_eq!(names(RR, &one, false), vec!["G1a"]);
        // D saw E's y but x before E's write of it: a read skew, found though A wrote x=1 too.
        let mut skew = Build::default();
        txn(&mut skew, "A", vec![w("x", 1)], (0, 1));
        txn(&mut skew, "E", vec![w("x", 1), w("y", 2)], (0, 10));
        txn(&mut skew, "D", vec![r("x", None), r("y", Some(2))], (0, 10));
        assert_eq!(names(RR, &skew, false), vec!["G-single"]);
        // One transaction writing the same value twice: its last write, not an intermediate
        // one, and no version comes after itself.
        let mut twice = Build::default();
        txn(&mut twice, "A", vec![w("x", 1), w("x", 1)], (0, 1));
        txn(&mut twice, "B", vec![r("x", Some(1))], (2, 3));
        assert!(names(RR, &twice, false).is_empty());
        // A wrote x=1 then x=2, B wrote x=1 last: C's x=1 may be B's, so A's x=2 need not have
        // overwritten it (A, B, C is a serial order).
        let mut again = Build::default();
        txn(
            &mut again,
            "A",
            vec![w("x", 1), w("x", 2), w("y", 3)],
            (0, 1),
        );
        txn(&mut again, "B", vec![w("x", 1)], (2, 3));
        txn(
            &mut again,
            "C",
            vec![r("x", Some(1)), r("y", Some(3))],
            (4, 5),
        );
        assert!(names(RR, &again, false).is_empty());
        // x=1, then 2, then 1 again in one transaction: a later reader of 1 saw its last write.
        let mut back = Build::default();
        txn(
            &mut back,
            "A",
            vec![w("x", 1), w("x", 2), w("x", 1)],
            (0, 1),
        );
        txn(&mut back, "B", vec![r("x", Some(1))], (2, 3));
        assert!(names(RR, &back, false).is_empty());
    }

    #[test]
    fn incompatible_orders_are_reported() {
        let mut b = Build::default();
        txn(&mut b, "A", vec![append("x", 1)], (0, 10));
        txn(&mut b, "B", vec![append("x", 2)], (0, 10));
        txn(&mut b, "C", vec![read_list("x", &[1, 2])], (20, 21));
        txn(&mut b, "D", vec![read_list("x", &[2])], (20, 21));
        assert_eq!(names(LA, &b, false), vec!["incompatible-order"]);
    }

    /// Serializable, but not strictly: B began after A was acknowledged and missed its append.
    #[test]
    fn realtime_edges_make_a_stale_read_an_anomaly() {
        let mut b = Build::default();
        txn(&mut b, "A", vec![append("x", 1)], (0, 1));
        txn(&mut b, "B", vec![read_list("x", &[])], (2, 3));
        txn(&mut b, "C", vec![read_list("x", &[1])], (4, 5));
        assert!(names(LA, &b, false).is_empty());
        assert_eq!(names(LA, &b, true), vec!["G-single-realtime"]);
    }
}
