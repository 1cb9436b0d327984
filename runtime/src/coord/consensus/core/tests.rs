//! Raft's rules without an executor: cores exchange messages through a bag that loses,
//! duplicates and reorders them, members crash (losing everything but their `Durable`), and
//! after every step the paper's safety properties must hold.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::rt::{seeded_rng, Stream};

#[derive(Debug, Clone)]
enum Step {
    Tick(usize),
    Deliver(usize),
    Duplicate(usize),
    Lose(usize),
    Propose(usize),
    Crash(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..5usize).prop_map(Step::Tick),
        12 => (0..64usize).prop_map(Step::Deliver),
        1 => (0..64usize).prop_map(Step::Duplicate),
        2 => (0..64usize).prop_map(Step::Lose),
        3 => (0..5usize).prop_map(Step::Propose),
        1 => (0..5usize).prop_map(Step::Crash),
    ]
}

struct Cluster {
    cores: Vec<Core<u32>>,
    disks: Vec<Durable<u32>>,
    bag: Vec<(u32, Peer<u32>)>,
    proposed: BTreeSet<u32>,
    /// Every leader seen, by term.
    leaders: BTreeMap<u64, BTreeSet<u32>>,
    /// Every committed entry seen, by index.
    committed: BTreeMap<u64, Entry<u32>>,
    restarts: u64,
}

const TICKS: Ticks = Ticks {
    election: 3,
    batch: 4,
    exact: false,
};

impl Cluster {
    fn new(n: usize, seed: u64) -> Cluster {
        let members: Vec<u32> = (0..n as u32).collect();
        let cores = members
            .iter()
            .map(|m| {
                Core::new(
                    *m,
                    members.clone(),
                    TICKS,
                    seeded_rng(seed, Stream::Extra(*m)),
                )
            })
            .collect();
        Cluster {
            cores,
            disks: vec![Durable::default(); n],
            bag: Vec::new(),
            proposed: BTreeSet::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            restarts: 0,
        }
    }

    fn collect(&mut self, i: usize) {
        self.bag.append(&mut self.cores[i].out);
    }

    fn apply(&mut self, step: &Step, next_value: &mut u32) {
        let n = self.cores.len();
        match *step {
            Step::Tick(i) => {
                let i = i % n;
                self.cores[i].tick(&mut self.disks[i]);
                self.collect(i);
            }
            Step::Deliver(k) | Step::Duplicate(k) | Step::Lose(k) if !self.bag.is_empty() => {
                let k = k % self.bag.len();
                let (to, msg) = match step {
                    Step::Duplicate(_) => self.bag[k].clone(),
                    _ => self.bag.remove(k),
                };
                if !matches!(step, Step::Lose(_)) {
                    let i = to as usize;
                    self.cores[i].receive(&mut self.disks[i], msg);
                    self.collect(i);
                }
            }
            Step::Deliver(_) | Step::Duplicate(_) | Step::Lose(_) => {}
            Step::Propose(i) => {
                let i = i % n;
                *next_value += 1;
                if self.cores[i]
                    .propose(&mut self.disks[i], *next_value)
                    .is_some()
                {
                    self.proposed.insert(*next_value);
                }
                self.collect(i);
            }
            Step::Crash(i) => {
                let i = i % n;
                self.restarts += 1;
                let members = self.cores[i].members.clone();
                let rng = seeded_rng(self.restarts, Stream::Extra(100 + i as u32));
                self.cores[i] = Core::new(i as u32, members, TICKS, rng);
            }
        }
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        for (i, c) in self.cores.iter().enumerate() {
            if c.role == Role::Leader {
                self.leaders
                    .entry(self.disks[i].term)
                    .or_default()
                    .insert(c.me);
            }
        }
        for (term, who) in &self.leaders {
            prop_assert!(who.len() <= 1, "term {term} has leaders {who:?}");
        }
        // Log matching: same index and term means the same prefix.
        for a in &self.disks {
            for b in &self.disks {
                let common = a.log.len().min(b.log.len());
                if let Some(last) = (0..common).rev().find(|i| a.log[*i].term == b.log[*i].term) {
                    prop_assert_eq!(&a.log[..=last], &b.log[..=last]);
                }
            }
        }
        // State machine safety and validity: a committed entry never changes, every committed
        // command was proposed.
        for d in &self.disks {
            prop_assert!(d.commit <= d.last_index());
            for (i, e) in d.log[..d.commit as usize].iter().enumerate() {
                let seen = self
                    .committed
                    .entry(i as u64 + 1)
                    .or_insert_with(|| e.clone());
                prop_assert_eq!(&*seen, e, "entry {} committed twice differently", i + 1);
                if let Some(v) = e.command {
                    prop_assert!(self.proposed.contains(&v), "{} was never proposed", v);
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        rng_seed: proptest::test_runner::RngSeed::Fixed(17),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn raft_rules_keep_their_safety_properties_under_any_delivery_order(
        n in prop_oneof![Just(1usize), Just(3), Just(5)],
        seed in 0..1_000u64,
        steps in proptest::collection::vec(step(), 1..400),
    ) {
        let mut cluster = Cluster::new(n, seed);
        let mut value = 0;
        for s in &steps {
            cluster.apply(s, &mut value);
            cluster.check()?;
        }
    }
}

/// Without faults a leader is elected, and then everything proposed commits on every member.
#[test]
fn a_quiet_cluster_elects_one_leader_and_commits_everywhere() {
    let mut c = Cluster::new(3, 7);
    let mut value = 0;
    for round in 0..200 {
        for i in 0..3 {
            c.apply(&Step::Tick(i), &mut value);
        }
        while !c.bag.is_empty() {
            c.apply(&Step::Deliver(0), &mut value);
        }
        if round % 10 == 9 {
            for i in 0..3 {
                c.apply(&Step::Propose(i), &mut value);
            }
        }
        c.check().unwrap();
    }
    let leaders = c.cores.iter().filter(|x| x.role == Role::Leader).count();
    assert_eq!(leaders, 1);
    assert_eq!(
        c.proposed.len(),
        20,
        "one proposal per round reached the leader"
    );
    for d in &c.disks {
        let values: BTreeSet<u32> = d.log[..d.commit as usize]
            .iter()
            .filter_map(|e| e.command)
            .collect();
        assert!(c.proposed.iter().take(19).all(|v| values.contains(v)));
    }
}

/// Two members of three campaign in the same term (the third cut off) and each hears the
/// other's request: a split vote. Their next attempts must come at least an election timeout
/// apart, lower index first, or they can split again round after round.
#[test]
fn a_split_vote_between_two_candidates_spaces_their_next_attempts() {
    let ticks = Ticks {
        election: 6,
        batch: 4,
        exact: true,
    };
    let election = u64::from(ticks.election) * MILLI;
    for seed in 0..200 {
        let members = vec![0, 1, 2];
        let mut cores: Vec<Core<u32>> = (0..2u32)
            .map(|m| {
                Core::new(
                    m,
                    members.clone(),
                    ticks,
                    seeded_rng(seed, Stream::Extra(m)),
                )
            })
            .collect();
        let mut disks = vec![Durable::<u32>::default(); 2];
        for i in 0..2 {
            cores[i].take_rearm();
            cores[i].election_due(&mut disks[i]);
            cores[i].take_rearm();
        }
        // Each hands the other its request for term 1 (the third member hears nothing).
        let requests: Vec<Vec<(u32, Peer<u32>)>> = cores
            .iter_mut()
            .map(|c| std::mem::take(&mut c.out))
            .collect();
        for (i, out) in requests.into_iter().enumerate() {
            let (to, vote) = out
                .into_iter()
                .find(|(to, _)| *to == 1 - i as u32)
                .expect("a request to the other candidate");
            let to = to as usize;
            cores[to].receive(&mut disks[to], vote);
        }
        let mut next = [0; 2];
        for i in 0..2 {
            assert_eq!((cores[i].role, disks[i].term), (Role::Candidate, 1));
            assert_eq!(disks[i].voted_for, Some(i as u32), "no vote changes");
            next[i] = cores[i]
                .take_rearm()
                .expect("the split redraws the timeout");
        }
        assert!(
            next[0] < election && next[1] >= 2 * election,
            "seed {seed}: next attempts {next:?} (thousandths of a tick) are not spaced"
        );
    }
}
