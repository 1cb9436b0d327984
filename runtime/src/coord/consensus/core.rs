//! Raft's rules as a state machine without I/O: an event in (a peer message, a tick, a
//! proposal), messages out. Written from the Raft paper (Ongaro and Ousterhout, 2014, §5):
//! terms, RequestVote with the up-to-date check, AppendEntries with the log-matching check,
//! commit by a majority of `match_index` for entries of the leader's own term. Added: a leader
//! steps down when it has not heard from a majority for an election timeout (check-quorum), so
//! none stays leader in a minority partition; and after a split vote the two candidates try
//! again at times set apart by member index, so two voters do not split round after round.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::rt::ChaCha8Rng;

/// One log entry: the term of the leader that appended it, and a command (`None`: the no-op
/// a leader appends when elected, which lets it commit entries of earlier terms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<C> {
    pub term: u64,
    pub command: Option<C>,
}

/// What Raft keeps on stable storage (currentTerm, votedFor, log), plus the commit index
/// (kept so a restarted member does not forget what it knew committed; committed is forever).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durable<C> {
    pub term: u64,
    pub voted_for: Option<u32>,
    /// Index 1 is `log[0]`.
    pub log: Vec<Entry<C>>,
    pub commit: u64,
}

impl<C> Default for Durable<C> {
    fn default() -> Self {
        Durable {
            term: 0,
            voted_for: None,
            log: Vec::new(),
            commit: 0,
        }
    }
}

impl<C> Durable<C> {
    pub fn last_index(&self) -> u64 {
        self.log.len() as u64
    }

    /// The term of entry `index` (0 for index 0, the empty prefix).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        match index {
            0 => Some(0),
            i => self.log.get(i as usize - 1).map(|e| e.term),
        }
    }

    fn last_term(&self) -> u64 {
        self.log.last().map_or(0, |e| e.term)
    }
}

/// A message between members of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Peer<C> {
    Vote {
        term: u64,
        candidate: u32,
        last_index: u64,
        last_term: u64,
    },
    VoteReply {
        term: u64,
        from: u32,
        granted: bool,
    },
    Append {
        term: u64,
        leader: u32,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry<C>>,
        commit: u64,
    },
    /// `index`: on success the last index known to match the leader's log; on failure a hint,
    /// the last index that may still match.
    AppendReply {
        term: u64,
        from: u32,
        success: bool,
        index: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    Follower,
    Candidate,
    Leader,
}

/// Timing, in ticks of the caller's clock.
#[derive(Debug, Clone, Copy)]
pub struct Ticks {
    /// An election starts after a random time in `election..2 * election` ticks without
    /// hearing from a leader (drawn in thousandths of a tick); after a split vote, in
    /// `election / 2..election` ticks for the lower member index and `2 * election..3 *
    /// election` for the higher. A leader steps down after `election` ticks without a majority.
    pub election: u32,
    /// Most entries per `Append`.
    pub batch: usize,
    /// The caller times elections itself: [`Core::take_rearm`] says when to arm its timer,
    /// [`Core::election_due`] is its expiry, and ticks do not count towards it. Otherwise an
    /// election starts on the first tick at or past the timeout.
    pub exact: bool,
}

/// Thousandths of a tick per tick: the resolution of election timeouts.
pub const MILLI: u64 = 1_000;

pub struct Core<C> {
    pub me: u32,
    pub members: Vec<u32>,
    pub role: Role,
    pub leader: Option<u32>,
    ticks: Ticks,
    rng: ChaCha8Rng,
    elapsed: u32,
    /// The current election timeout, in thousandths of a tick.
    timeout: u64,
    /// The election timer was reset since the caller last armed its timer.
    rearm: bool,
    votes: BTreeSet<u32>,
    next: BTreeMap<u32, u64>,
    matched: BTreeMap<u32, u64>,
    /// Members a leader heard from since its last quorum check.
    heard: BTreeSet<u32>,
    pub out: Vec<(u32, Peer<C>)>,
    /// The lowest log index changed since the caller last took it ([`Core::take_dirty`]): what
    /// the caller must write to stable storage before sending `out`.
    dirty_from: Option<u64>,
}

impl<C: Clone> Core<C> {
    pub fn new(me: u32, members: Vec<u32>, ticks: Ticks, mut rng: ChaCha8Rng) -> Core<C> {
        let election = u64::from(ticks.election) * MILLI;
        let timeout = rng.gen_range(election..2 * election);
        Core {
            me,
            members,
            role: Role::Follower,
            leader: None,
            ticks,
            rng,
            elapsed: 0,
            timeout,
            rearm: true,
            votes: BTreeSet::new(),
            next: BTreeMap::new(),
            matched: BTreeMap::new(),
            heard: BTreeSet::new(),
            out: Vec::new(),
            dirty_from: None,
        }
    }

    /// Log entry `index` (and maybe every later one) changed.
    fn touch(&mut self, index: u64) {
        self.dirty_from = Some(self.dirty_from.map_or(index, |d| d.min(index)));
    }

    /// The lowest log index changed since the last call, if any.
    pub fn take_dirty(&mut self) -> Option<u64> {
        self.dirty_from.take()
    }

    fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }

    fn peers(&self) -> Vec<u32> {
        self.members
            .iter()
            .copied()
            .filter(|m| *m != self.me)
            .collect()
    }

    fn reset_timer(&mut self) {
        let election = u64::from(self.ticks.election) * MILLI;
        self.reset_timer_in(election..2 * election);
    }

    /// Restarts the election timer with a timeout drawn from `range` (thousandths of a tick).
    fn reset_timer_in(&mut self, range: std::ops::Range<u64>) {
        self.elapsed = 0;
        self.timeout = self.rng.gen_range(range);
        self.rearm = true;
    }

    /// A candidate heard another candidate's request for the same term: a split vote, which
    /// with two voters (a majority of three cut from the third) is a lost election for both,
    /// and their timeouts, drawn at about the same moment, may come as close again. The lower
    /// member index tries again first (its timeout redrawn from half an election timeout to
    /// one), the higher waits two to three, so their next attempts are at least an election
    /// timeout apart, far more than a message takes. Timeouts only pace elections: the votes,
    /// and so one leader per term, are as before.
    fn split_vote(&mut self, rival: u32) {
        let election = u64::from(self.ticks.election) * MILLI;
        if rival < self.me {
            self.reset_timer_in(2 * election..3 * election);
        } else {
            self.reset_timer_in(election / 2..election);
        }
    }

    /// With [`Ticks::exact`]: `Some(timeout)` (thousandths of a tick from now) when the
    /// election timer was reset since the last call, and the caller's timer must be set
    /// again; an earlier one is void.
    pub fn take_rearm(&mut self) -> Option<u64> {
        std::mem::take(&mut self.rearm).then_some(self.timeout)
    }

    /// With [`Ticks::exact`]: the timer last armed ran out. A leader ignores it.
    pub fn election_due(&mut self, d: &mut Durable<C>) {
        if self.role != Role::Leader {
            self.campaign(d);
        }
    }

    /// A newer term seen: follow it, with no vote cast and no leader known yet.
    fn observe_term(&mut self, d: &mut Durable<C>, term: u64) {
        if term > d.term {
            d.term = term;
            d.voted_for = None;
            if self.role == Role::Leader {
                // A deposed leader had no election timer running: start one.
                self.reset_timer();
            }
            self.role = Role::Follower;
            self.leader = None;
        }
    }

    pub fn tick(&mut self, d: &mut Durable<C>) {
        self.elapsed += 1;
        match self.role {
            Role::Leader => {
                self.broadcast(d);
                if self.elapsed >= self.ticks.election {
                    self.elapsed = 0;
                    let heard = self.heard.len() + 1;
                    self.heard.clear();
                    if heard < self.majority() {
                        // Check-quorum: cut off from the majority, stop leading.
                        self.role = Role::Follower;
                        self.leader = None;
                        self.reset_timer();
                    }
                }
            }
            Role::Follower | Role::Candidate => {
                if !self.ticks.exact && u64::from(self.elapsed) * MILLI >= self.timeout {
                    self.campaign(d);
                }
            }
        }
    }

    fn campaign(&mut self, d: &mut Durable<C>) {
        self.reset_timer();
        d.term += 1;
        d.voted_for = Some(self.me);
        self.role = Role::Candidate;
        self.leader = None;
        self.votes = BTreeSet::from([self.me]);
        if self.votes.len() >= self.majority() {
            self.become_leader(d);
            return;
        }
        let (last_index, last_term) = (d.last_index(), d.last_term());
        for p in self.peers() {
            self.out.push((
                p,
                Peer::Vote {
                    term: d.term,
                    candidate: self.me,
                    last_index,
                    last_term,
                },
            ));
        }
    }

    fn become_leader(&mut self, d: &mut Durable<C>) {
        self.role = Role::Leader;
        self.leader = Some(self.me);
        self.elapsed = 0;
        self.heard.clear();
        d.log.push(Entry {
            term: d.term,
            command: None,
        });
        let last = d.last_index();
        self.touch(last);
        self.next = self.peers().into_iter().map(|p| (p, last)).collect();
        self.matched = self.peers().into_iter().map(|p| (p, 0)).collect();
        self.advance_commit(d);
        self.broadcast(d);
    }

    /// Appends `command` if this member leads: its index and term.
    pub fn propose(&mut self, d: &mut Durable<C>, command: C) -> Option<(u64, u64)> {
        if self.role != Role::Leader {
            return None;
        }
        d.log.push(Entry {
            term: d.term,
            command: Some(command),
        });
        self.touch(d.last_index());
        self.advance_commit(d);
        self.broadcast(d);
        Some((d.last_index(), d.term))
    }

    fn broadcast(&mut self, d: &Durable<C>) {
        for p in self.peers() {
            self.send_append(d, p);
        }
    }

    fn send_append(&mut self, d: &Durable<C>, to: u32) {
        let next = self.next.get(&to).copied().unwrap_or(1).max(1);
        let prev_index = next - 1;
        let prev_term = d.term_at(prev_index).unwrap_or(0);
        let from = prev_index as usize;
        let to_index = d.log.len().min(from + self.ticks.batch);
        let entries = d.log[from.min(d.log.len())..to_index].to_vec();
        self.out.push((
            to,
            Peer::Append {
                term: d.term,
                leader: self.me,
                prev_index,
                prev_term,
                entries,
                commit: d.commit,
            },
        ));
    }

    fn advance_commit(&mut self, d: &mut Durable<C>) {
        let mut n = d.last_index();
        while n > d.commit {
            if d.term_at(n) == Some(d.term) {
                let copies = 1 + self.matched.values().filter(|m| **m >= n).count();
                if copies >= self.majority() {
                    d.commit = n;
                    return;
                }
            } else {
                // Entries of earlier terms commit only with one of the current term (§5.4.2).
                return;
            }
            n -= 1;
        }
    }

    pub fn receive(&mut self, d: &mut Durable<C>, msg: Peer<C>) {
        match msg {
            Peer::Vote {
                term,
                candidate,
                last_index,
                last_term,
            } => {
                self.observe_term(d, term);
                let up_to_date = (last_term, last_index) >= (d.last_term(), d.last_index());
                let granted = term == d.term
                    && d.voted_for.is_none_or(|v| v == candidate)
                    && up_to_date
                    && self.role != Role::Leader;
                if granted {
                    d.voted_for = Some(candidate);
                    self.reset_timer();
                } else if term == d.term
                    && self.role == Role::Candidate
                    && d.voted_for == Some(self.me)
                {
                    self.split_vote(candidate);
                }
                self.out.push((
                    candidate,
                    Peer::VoteReply {
                        term: d.term,
                        from: self.me,
                        granted,
                    },
                ));
            }
            Peer::VoteReply {
                term,
                from,
                granted,
            } => {
                self.observe_term(d, term);
                if self.role == Role::Candidate && term == d.term && granted {
                    self.votes.insert(from);
                    if self.votes.len() >= self.majority() {
                        self.become_leader(d);
                    }
                }
            }
            Peer::Append {
                term,
                leader,
                prev_index,
                prev_term,
                entries,
                commit,
            } => self.on_append(d, term, leader, prev_index, prev_term, entries, commit),
            Peer::AppendReply {
                term,
                from,
                success,
                index,
            } => {
                self.observe_term(d, term);
                if self.role != Role::Leader || term != d.term || !self.next.contains_key(&from) {
                    return;
                }
                self.heard.insert(from);
                if success {
                    let m = self.matched.entry(from).or_default();
                    *m = (*m).max(index.min(d.last_index()));
                    let m = *m;
                    let next = self.next.entry(from).or_default();
                    *next = (*next).max(m + 1);
                    self.advance_commit(d);
                    if m < d.last_index() {
                        self.send_append(d, from);
                    }
                } else {
                    let next = self.next.entry(from).or_default();
                    *next = (*next).saturating_sub(1).min(index + 1).max(1);
                    self.send_append(d, from);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append(
        &mut self,
        d: &mut Durable<C>,
        term: u64,
        leader: u32,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry<C>>,
        commit: u64,
    ) {
        self.observe_term(d, term);
        let me = self.me;
        let reply = |d: &Durable<C>, success: bool, index: u64| Peer::AppendReply {
            term: d.term,
            from: me,
            success,
            index,
        };
        if term < d.term {
            let r = reply(d, false, d.last_index());
            self.out.push((leader, r));
            return;
        }
        // A leader of this term exists; it is not us (one leader per term).
        self.role = Role::Follower;
        self.leader = Some(leader);
        self.reset_timer();
        match d.term_at(prev_index) {
            None => {
                let r = reply(d, false, d.last_index());
                self.out.push((leader, r));
                return;
            }
            Some(t) if t != prev_term => {
                // Skip back over the whole conflicting term.
                let mut hint = prev_index - 1;
                while hint > d.commit && d.term_at(hint) == Some(t) {
                    hint -= 1;
                }
                let r = reply(d, false, hint);
                self.out.push((leader, r));
                return;
            }
            Some(_) => {}
        }
        let mut index = prev_index;
        for entry in entries {
            index += 1;
            match d.term_at(index) {
                Some(t) if t == entry.term => {}
                Some(_) if index <= d.commit => {
                    // Only a broken peer contradicts a committed entry: refuse, keep ours.
                    let r = reply(d, false, d.commit);
                    self.out.push((leader, r));
                    return;
                }
                Some(_) => {
                    d.log.truncate(index as usize - 1);
                    d.log.push(entry);
                    self.touch(index);
                }
                None => {
                    d.log.push(entry);
                    self.touch(index);
                }
            }
        }
        d.commit = d.commit.max(commit.min(index));
        let r = reply(d, true, index);
        self.out.push((leader, r));
    }
}

#[cfg(test)]
mod tests;
