//! One node's view of one peer: a reliable, ordered session over lossy, reordering datagrams.
//!
//! Outbound messages get sequence numbers in the current epoch and stay until acknowledged
//! (retransmitted on every tick); inbound messages are delivered in sequence order, early ones
//! buffered. A peer that restarts (new incarnation) or resets its outbound (new epoch) starts a
//! new inbound session; if the old one was live, the peer is down for us too. Our own outbound
//! epoch moves on only when the peer cannot take it any more: it restarted, or its frames name
//! our epoch as refused (it declared us down). Moving on for any other reason would make the
//! peer see a new epoch while live and reset in turn, forever (seen after a long pause). So both
//! sides agree that everything unacknowledged is gone, and settle. No I/O, no clock reads: the
//! caller passes the time in, so this is tested without an executor.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::rt::{Duration, Instant};
use crate::wire::{Frame, Wire};

/// How many early messages a session buffers before dropping further ones (they are resent).
const REORDER_WINDOW: u64 = 1024;

pub(crate) struct Peer {
    pub(crate) index: u32,
    pub(crate) addr: SocketAddr,
    /// The peer's incarnation as last heard; 0 before.
    peer_incarnation: u64,
    out_epoch: u64,
    next_seq: u64,
    unacked: BTreeMap<u64, Wire>,
    /// Sequence numbers never transmitted yet.
    fresh: Vec<u64>,
    /// (incarnation, epoch) of the peer's session we accept.
    in_session: Option<(u64, u64)>,
    in_alive: bool,
    expected: u64,
    early: BTreeMap<u64, Wire>,
    /// Since when an acknowledgement is owed (a message arrived and nothing carried the ack back).
    ack_due_since: Option<Instant>,
    last_heard: Instant,
    up: bool,
}

/// What a received frame means for the node.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Received {
    /// The peer's previous session ended (restart, or it declared us down): it is down for us.
    pub(crate) reset: bool,
    /// Messages now deliverable, in order.
    pub(crate) deliver: Vec<Wire>,
    /// The frame was ignored (stale session, or aimed at an earlier incarnation of us).
    pub(crate) stale: bool,
}

impl Peer {
    pub(crate) fn new(index: u32, addr: SocketAddr, now: Instant) -> Peer {
        Peer {
            index,
            addr,
            peer_incarnation: 0,
            out_epoch: 1,
            next_seq: 1,
            unacked: BTreeMap::new(),
            fresh: Vec::new(),
            in_session: None,
            in_alive: false,
            expected: 1,
            early: BTreeMap::new(),
            ack_due_since: None,
            last_heard: now,
            up: true,
        }
    }

    /// Not declared down (it may still be silent).
    pub(crate) fn is_up(&self) -> bool {
        self.up
    }

    /// Queues a message; it goes out with the next [`Peer::fresh_frames`].
    pub(crate) fn enqueue(&mut self, wire: Wire) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unacked.insert(seq, wire);
        self.fresh.push(seq);
    }

    fn frame(&self, me: u32, my_incarnation: u64, seq: u64, body: Option<Wire>) -> Frame {
        let (ack_epoch, ack, refused_epoch) = match self.in_session {
            Some((_, epoch)) if self.in_alive => (epoch, self.expected - 1, 0),
            Some((_, epoch)) => (0, 0, epoch),
            None => (0, 0, 0),
        };
        Frame {
            from: me,
            from_incarnation: my_incarnation,
            epoch: self.out_epoch,
            to_incarnation: self.peer_incarnation,
            ack_epoch,
            ack,
            refused_epoch,
            seq,
            body,
        }
    }

    /// Frames for messages queued since the last call.
    pub(crate) fn fresh_frames(&mut self, me: u32, my_incarnation: u64) -> Vec<Frame> {
        let fresh = std::mem::take(&mut self.fresh);
        let frames: Vec<Frame> = fresh
            .into_iter()
            .filter_map(|seq| {
                let wire = self.unacked.get(&seq)?.clone();
                Some(self.frame(me, my_incarnation, seq, Some(wire)))
            })
            .collect();
        if !frames.is_empty() {
            self.ack_due_since = None;
        }
        frames
    }

    /// A frame carrying only the acknowledgement, if one has been owed for at least `delay`.
    /// Waiting a little lets the ack ride on the next data frame instead (a call's reply, the
    /// next request), which halves the datagrams of a request/response exchange.
    pub(crate) fn ack_frame(
        &mut self,
        me: u32,
        my_incarnation: u64,
        now: Instant,
        delay: Duration,
    ) -> Option<Frame> {
        let since = self.ack_due_since?;
        if now < since + delay {
            return None;
        }
        self.ack_due_since = None;
        Some(self.frame(me, my_incarnation, 0, None))
    }

    /// When the owed acknowledgement, if any, must go out on its own.
    pub(crate) fn ack_deadline(&self, delay: Duration) -> Option<Instant> {
        self.ack_due_since.map(|since| since + delay)
    }

    /// Every tick: a heartbeat and up to `max` retransmissions.
    pub(crate) fn tick_frames(&mut self, me: u32, my_incarnation: u64, max: usize) -> Vec<Frame> {
        self.ack_due_since = None;
        let mut frames = vec![self.frame(me, my_incarnation, 0, None)];
        frames.extend(
            self.unacked
                .iter()
                .take(max)
                .map(|(seq, w)| self.frame(me, my_incarnation, *seq, Some(w.clone()))),
        );
        frames
    }

    /// Silent for longer than `timeout` while up: declares it down (the caller then fails
    /// everything pending with the peer). True when it just went down.
    pub(crate) fn check_silence(&mut self, now: Instant, timeout: Duration) -> bool {
        if self.up && now.duration_since(self.last_heard) > timeout {
            self.declare_down();
            return true;
        }
        false
    }

    fn declare_down(&mut self) {
        self.up = false;
        self.in_alive = false;
        self.early.clear();
        self.reset_outbound();
    }

    fn reset_outbound(&mut self) {
        self.out_epoch += 1;
        self.next_seq = 1;
        self.unacked.clear();
        self.fresh.clear();
    }

    pub(crate) fn receive(&mut self, frame: Frame, my_incarnation: u64, now: Instant) -> Received {
        let mut out = Received::default();
        if frame.to_incarnation != 0 && frame.to_incarnation != my_incarnation {
            out.stale = true;
            return out;
        }
        let key = (frame.from_incarnation, frame.epoch);
        match self.in_session {
            Some(current) if key < current => {
                out.stale = true;
                return out;
            }
            Some(current) if key == current && !self.in_alive => {
                // A session we declared down; the peer moves on once it hears our new epoch.
                out.stale = true;
                return out;
            }
            Some(current) if key == current => {}
            _ => {
                if self.in_alive {
                    // The peer's old stream ended with whatever it had not delivered: it is
                    // down for us. Our own outbound survives a new epoch of the same
                    // incarnation (if the peer refuses it, `refused_epoch` says so); a restarted
                    // peer knows nothing of it.
                    out.reset = true;
                    if self.in_session.map(|(incarnation, _)| incarnation) != Some(key.0) {
                        self.reset_outbound();
                    }
                }
                self.in_session = Some(key);
                self.in_alive = true;
                self.expected = 1;
                self.early.clear();
            }
        }
        self.peer_incarnation = frame.from_incarnation;
        self.last_heard = now;
        self.up = true;
        if frame.refused_epoch != 0 && frame.refused_epoch == self.out_epoch {
            // The peer declared our current epoch down: whatever we sent in it is gone for it,
            // so the peer is down for us too, and we move to a new epoch it will accept.
            out.reset = true;
            self.reset_outbound();
        }
        if frame.ack_epoch == self.out_epoch {
            self.unacked = self.unacked.split_off(&(frame.ack + 1));
        }
        if let (Some(wire), true) = (frame.body, frame.seq > 0) {
            self.ack_due_since.get_or_insert(now);
            if frame.seq == self.expected {
                out.deliver.push(wire);
                self.expected += 1;
                while let Some(next) = self.early.remove(&self.expected) {
                    out.deliver.push(next);
                    self.expected += 1;
                }
            } else if frame.seq > self.expected && frame.seq < self.expected + REORDER_WINDOW {
                self.early.insert(frame.seq, wire);
            }
        }
        out
    }

    #[cfg(test)]
    pub(crate) fn unacked(&self) -> usize {
        self.unacked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pid, Ref};

    fn wire(n: u64) -> Wire {
        let pid = Pid {
            node: 0,
            incarnation: 1,
            id: n,
        };
        Wire::Demonitor {
            reference: Ref {
                node: 0,
                incarnation: 1,
                n,
            },
            target: pid,
        }
    }

    fn pair(now: Instant) -> (Peer, Peer) {
        let a = "10.0.0.1:1".parse().unwrap();
        let b = "10.0.0.2:1".parse().unwrap();
        (Peer::new(1, b, now), Peer::new(0, a, now))
    }

    #[crate::rt::test]
    async fn reordered_and_duplicated_frames_deliver_in_order_once() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        for n in 1..=5 {
            a.enqueue(wire(n));
        }
        let mut frames = a.fresh_frames(0, 1);
        frames.reverse();
        frames.push(frames[0].clone());
        let mut got = Vec::new();
        for f in frames {
            got.extend(b.receive(f, 1, now).deliver);
        }
        assert_eq!(got, (1..=5).map(wire).collect::<Vec<_>>());
        let ack = b.ack_frame(1, 1, now, Duration::ZERO).unwrap();
        a.receive(ack, 1, now);
        assert_eq!(a.unacked(), 0);
    }

    #[crate::rt::test]
    async fn acks_wait_their_delay_and_ride_on_data_frames() {
        let now = Instant::now();
        let delay = Duration::from_millis(10);
        let (mut a, mut b) = pair(now);
        a.enqueue(wire(1));
        for f in a.fresh_frames(0, 1) {
            b.receive(f, 1, now);
        }
        assert!(
            b.ack_frame(1, 1, now, delay).is_none(),
            "not before the delay"
        );
        assert_eq!(b.ack_deadline(delay), Some(now + delay));
        // A reply queued within the delay carries the ack; no ack of its own follows.
        b.enqueue(wire(2));
        let reply = b.fresh_frames(1, 1).remove(0);
        assert_eq!(reply.ack, 1);
        assert!(b.ack_frame(1, 1, now + delay, delay).is_none());
        a.receive(reply, 1, now);
        assert_eq!(a.unacked(), 0);
        // Nothing to ride on: the ack goes alone once the delay has passed.
        assert!(a.ack_frame(0, 1, now + delay / 2, delay).is_none());
        let alone = a
            .ack_frame(0, 1, now + delay, delay)
            .expect("owed for the whole delay");
        assert_eq!((alone.seq, alone.ack), (0, 1));
        b.receive(alone, 1, now + delay);
        assert_eq!(b.unacked(), 0);
    }

    #[crate::rt::test]
    async fn a_peer_restart_resets_the_session() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        a.enqueue(wire(1));
        for f in a.fresh_frames(0, 1) {
            b.receive(f, 1, now);
        }
        // Node 0 restarts as incarnation 2 with a fresh session.
        let (mut a2, _) = pair(now);
        a2.enqueue(wire(9));
        let f = a2.fresh_frames(0, 2).remove(0);
        let r = b.receive(f, 1, now);
        assert!(r.reset);
        assert_eq!(r.deliver, vec![wire(9)]);
    }

    /// Flapping partitions: a declares b down; a brief heal lets b hear a's new epoch; the cut
    /// returns and b declares a down in turn. After the final heal, a (which had already declared
    /// b down) must not keep sending in the epoch b refused: both directions deliver again.
    #[crate::rt::test]
    async fn flapping_partitions_converge_in_both_directions() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        for f in a.tick_frames(0, 1, 8) {
            b.receive(f, 1, now);
        }
        for f in b.tick_frames(1, 1, 8) {
            a.receive(f, 1, now);
        }
        let t1 = now + Duration::from_secs(10);
        assert!(a.check_silence(t1, Duration::from_secs(1)));
        // Brief heal, one way: b hears a's new epoch and resets.
        assert!(b.receive(a.tick_frames(0, 1, 8).remove(0), 1, t1).reset);
        // Cut again: b declares a down.
        let t2 = t1 + Duration::from_secs(10);
        assert!(b.check_silence(t2, Duration::from_secs(1)));
        // Final heal: frames flow both ways for a while.
        let t3 = t2 + Duration::from_secs(1);
        for n in 0..4 {
            a.enqueue(wire(100 + n));
            b.enqueue(wire(200 + n));
        }
        let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            let frames = a.tick_frames(0, 1, 8);
            for f in frames {
                at_b.extend(b.receive(f, 1, t3).deliver);
            }
            let frames = b.tick_frames(1, 1, 8);
            for f in frames {
                at_a.extend(a.receive(f, 1, t3).deliver);
            }
        }
        // Messages queued in a refused epoch are gone (the reset said so); new ones arrive.
        a.enqueue(wire(300));
        b.enqueue(wire(400));
        for f in a.fresh_frames(0, 1) {
            at_b.extend(b.receive(f, 1, t3).deliver);
        }
        for f in b.fresh_frames(1, 1) {
            at_a.extend(a.receive(f, 1, t3).deliver);
        }
        assert!(at_b.contains(&wire(300)), "b never hears a again: {at_b:?}");
        assert!(at_a.contains(&wire(400)), "a never hears b again: {at_a:?}");
        // And it settles: another round resets nothing.
        for f in a.tick_frames(0, 1, 8) {
            assert!(!b.receive(f, 1, t3).reset);
        }
        for f in b.tick_frames(1, 1, 8) {
            assert!(!a.receive(f, 1, t3).reset);
        }
    }

    #[crate::rt::test]
    async fn declared_down_then_heard_again_converges_without_ping_pong() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        for f in a.tick_frames(0, 1, 8) {
            b.receive(f, 1, now);
        }
        for f in b.tick_frames(1, 1, 8) {
            a.receive(f, 1, now);
        }
        let later = now + Duration::from_secs(10);
        assert!(a.check_silence(later, Duration::from_secs(1)));
        // b hears a's new epoch: b's live session with a ended, so a is down for b. The same
        // frame names b's epoch as refused (a declared it down), so b moves on at once.
        let r = b.receive(a.tick_frames(0, 1, 8).remove(0), 1, later);
        assert!(r.reset);
        // a takes b's new epoch without a second reset, and from then on nothing resets.
        let r = a.receive(b.tick_frames(1, 1, 8).remove(0), 1, later);
        assert!(!r.reset && !r.stale);
        for _ in 0..3 {
            let r = b.receive(a.tick_frames(0, 1, 8).remove(0), 1, later);
            assert!(!r.reset && !r.stale);
            let r = a.receive(b.tick_frames(1, 1, 8).remove(0), 1, later);
            assert!(!r.reset && !r.stale);
        }
    }

    /// After a long pause, a hears b's backlog from before b declared it down, then b's new
    /// epoch: a resets once, and neither side may answer the other's epoch change with one of
    /// its own, or the two reset each other forever.
    #[crate::rt::test]
    async fn a_backlog_then_a_new_epoch_resets_once_and_settles() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        let backlog = b.tick_frames(1, 1, 8);
        let later = now + Duration::from_secs(3);
        assert!(b.check_silence(later, Duration::from_secs(1)));
        assert!(a.check_silence(later, Duration::from_secs(1)));
        for f in backlog {
            assert!(!a.receive(f, 1, later).reset);
        }
        assert!(a.receive(b.tick_frames(1, 1, 8).remove(0), 1, later).reset);
        let mut resets = 0;
        for _ in 0..10 {
            for f in a.tick_frames(0, 1, 8) {
                resets += usize::from(b.receive(f, 1, later).reset);
            }
            for f in b.tick_frames(1, 1, 8) {
                resets += usize::from(a.receive(f, 1, later).reset);
            }
        }
        assert_eq!(resets, 0, "the sessions kept resetting each other");
        a.enqueue(wire(1));
        b.enqueue(wire(2));
        let got_b: Vec<_> = a
            .fresh_frames(0, 1)
            .into_iter()
            .flat_map(|f| b.receive(f, 1, later).deliver)
            .collect();
        let got_a: Vec<_> = b
            .fresh_frames(1, 1)
            .into_iter()
            .flat_map(|f| a.receive(f, 1, later).deliver)
            .collect();
        assert_eq!((got_a, got_b), (vec![wire(2)], vec![wire(1)]));
    }
}
