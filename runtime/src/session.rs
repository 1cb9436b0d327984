//! One node's view of one peer: a reliable, ordered session over lossy, reordering datagrams.
//!
//! Outbound messages get sequence numbers in the current epoch and stay until acknowledged
//! (retransmitted on every tick); inbound messages are delivered in sequence order, early ones
//! buffered. A peer that restarts (new incarnation) or resets its outbound (new epoch) starts a
//! new inbound session; if the old one was live, the peer is down for us too, and our own
//! outbound moves to a new epoch as well (the peer moved on because it declared us down, so it
//! refuses what we had queued). Our outbound also moves on when the peer's frames name our epoch
//! as refused. Moving on for any other reason would make the peer see a new epoch while live and
//! reset in turn, forever (seen after a long pause).
//!
//! After a node-down, nothing of a session that began before it is delivered, on either side:
//! every epoch carries `base_epoch`, the epoch of ours its sender had heard when it
//! began, and a peer we declared down must open a session based on our post-down epoch; older
//! sessions are refused and named in `refused_epoch`, so the peer drops its backlog and moves on.
//! While a peer is down nothing is queued for it.
//!
//! Every number from the wire is checked: a frame acknowledging what we never sent, or naming
//! epochs or sequence numbers that cannot exist, is dropped with a reason, never a panic. No I/O,
//! no clock reads: the caller passes the time in, so this is tested without an executor.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::rt::{Duration, Instant};
use crate::wire::{encoded_len, Frame, Wire, BATCH_BYTES};

/// How many early messages a session buffers before dropping further ones (they are resent).
pub(crate) const REORDER_WINDOW: u64 = 1024;

/// How many user messages (sends, calls) may wait unacknowledged for one peer. At the bound a
/// send fails with a typed error (`SendError::Full`, `CallError::NotSent`).
pub(crate) const OUTBOUND_LIMIT: usize = 4096;

/// Room above [`OUTBOUND_LIMIT`] for control messages (links, exit signals, monitors, `Down`s,
/// replies), which have no sender to push back on. Past it a control message is dropped and the
/// peer is declared down (`why=overflow`), so its links and monitors fire: never a silent loss.
pub(crate) const CONTROL_RESERVE: usize = 1024;

pub(crate) struct Peer {
    pub(crate) index: u32,
    pub(crate) addr: SocketAddr,
    /// The peer's incarnation as last heard; 0 before.
    peer_incarnation: u64,
    out_epoch: u64,
    /// The peer's epoch we had heard when `out_epoch` began (0: none).
    out_base: u64,
    next_seq: u64,
    /// Sent and not yet acknowledged, by sequence number: always a run of consecutive numbers
    /// (acks remove a prefix, enqueue appends).
    unacked: BTreeMap<u64, Wire>,
    /// The first sequence number never transmitted (`next_seq` when all were).
    fresh_from: u64,
    /// A frame went to the peer since the last tick: it served as this tick's heartbeat.
    sent_since_tick: bool,
    /// (incarnation, epoch) of the peer's session we accept.
    in_session: Option<(u64, u64)>,
    in_alive: bool,
    expected: u64,
    early: BTreeMap<u64, Wire>,
    /// Since when an acknowledgement is owed (a message arrived and nothing carried the ack back).
    ack_due_since: Option<Instant>,
    last_heard: Instant,
    up: bool,
    /// Set when we declare the peer down: its sessions must be based on this epoch of ours or a
    /// later one; older ones began before the node-down (0: no floor).
    floor: u64,
    /// A control message found the queue past its reserve: declare the peer down at the next tick.
    overflowed: bool,
    /// Messages dropped from our backlog and reorder buffer since the caller last asked.
    dropped: usize,
}

/// What a received frame means for the node.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Received {
    /// The peer's previous session ended (restart, or it declared us down): it is down for us.
    pub(crate) reset: bool,
    /// Messages now deliverable, in order; the first has sequence number `first_seq`.
    pub(crate) deliver: Vec<Wire>,
    pub(crate) first_seq: u64,
    /// Why the frame was ignored: `stale-frame` (an earlier session, or aimed at an earlier
    /// incarnation of us), `node-down` (a session that began before we declared the peer down),
    /// or a nonsensical field (`bad-ack`, `bad-epoch`, `bad-seq`, `bad-incarnation`).
    pub(crate) dropped: Option<&'static str>,
}

/// Why a message was not queued for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unqueued {
    /// The peer is declared down: nothing is queued for after a heal.
    Down,
    /// The outbound queue is at its bound.
    Full,
}

impl Unqueued {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Unqueued::Down => "node-down",
            Unqueued::Full => "outbound-full",
        }
    }
}

/// Control messages count against the reserve; user messages against [`OUTBOUND_LIMIT`].
fn is_user(wire: &Wire) -> bool {
    matches!(
        wire,
        Wire::Send { .. } | Wire::SendName { .. } | Wire::Call { .. }
    )
}

impl Peer {
    pub(crate) fn new(index: u32, addr: SocketAddr, now: Instant) -> Peer {
        Peer {
            index,
            addr,
            peer_incarnation: 0,
            out_epoch: 1,
            out_base: 0,
            next_seq: 1,
            unacked: BTreeMap::new(),
            fresh_from: 1,
            sent_since_tick: false,
            in_session: None,
            in_alive: false,
            expected: 1,
            early: BTreeMap::new(),
            ack_due_since: None,
            last_heard: now,
            up: true,
            floor: 0,
            overflowed: false,
            dropped: 0,
        }
    }

    /// Not declared down (it may still be silent).
    pub(crate) fn is_up(&self) -> bool {
        self.up
    }

    /// Some incarnation of the peer answered our handshake or sent us a frame.
    pub(crate) fn was_heard(&self) -> bool {
        self.peer_incarnation != 0
    }

    /// Our handshake with the peer completed, answered by `incarnation`. Our frames name it from
    /// now on, so a later incarnation drops them as stale. Whether an earlier incarnation had
    /// answered or spoken before: the peer restarted, and what we queued may have reached the
    /// old one, so our outbound starts over (nothing is delivered twice, to either), as when the
    /// peer's own frames show a restart; the caller declares the old incarnation down.
    pub(crate) fn handshake_with(&mut self, incarnation: u64) -> bool {
        if incarnation <= self.peer_incarnation {
            return false;
        }
        let restarted = self.peer_incarnation != 0;
        self.peer_incarnation = incarnation;
        if restarted {
            self.reset_outbound();
        }
        restarted
    }

    /// Heard nothing for longer than `timeout`: down at the next tick.
    pub(crate) fn silent_for(&self, now: Instant, timeout: Duration) -> bool {
        now.saturating_duration_since(self.last_heard) > timeout
    }

    /// Queues a message; it goes out with the next [`Peer::fresh_frames`]. Refused while the
    /// peer is down (Erlang drops what is sent to a node known down) and at the queue's bound.
    pub(crate) fn enqueue(&mut self, wire: Wire) -> Result<(), Unqueued> {
        if !self.up {
            return Err(Unqueued::Down);
        }
        let limit = if is_user(&wire) {
            OUTBOUND_LIMIT
        } else {
            OUTBOUND_LIMIT + CONTROL_RESERVE
        };
        if self.unacked.len() >= limit {
            if !is_user(&wire) {
                self.overflowed = true;
            }
            return Err(Unqueued::Full);
        }
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        self.unacked.insert(seq, wire);
        Ok(())
    }

    /// How many messages were dropped from this session's queues (backlog, reorder buffer)
    /// since the last call; the caller traces them.
    pub(crate) fn take_dropped(&mut self) -> usize {
        std::mem::take(&mut self.dropped)
    }

    fn frame(&self, me: u32, my_incarnation: u64, seq: u64, msgs: Vec<Wire>) -> Frame {
        let (ack_epoch, ack, refused_epoch) = match self.in_session {
            Some((_, epoch)) if self.in_alive => (epoch, self.expected.saturating_sub(1), 0),
            Some((_, epoch)) => (0, 0, epoch),
            None => (0, 0, 0),
        };
        Frame {
            from: me,
            from_incarnation: my_incarnation,
            epoch: self.out_epoch,
            base_epoch: self.out_base,
            to_incarnation: self.peer_incarnation,
            ack_epoch,
            ack,
            refused_epoch,
            seq,
            msgs,
        }
    }

    /// Up to `max` unacknowledged messages from `from` on, as few frames as [`BATCH_BYTES`]
    /// allows (each frame a run of consecutive sequence numbers).
    fn batches(&self, me: u32, my_incarnation: u64, from: u64, max: usize) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut run: Vec<Wire> = Vec::new();
        let (mut first, mut bytes) = (0u64, 0usize);
        for (&seq, wire) in self.unacked.range(from..).take(max) {
            let len = encoded_len(wire);
            let fits = bytes.saturating_add(len) <= BATCH_BYTES;
            if !run.is_empty() && (!fits || seq != first + run.len() as u64) {
                frames.push(self.frame(me, my_incarnation, first, std::mem::take(&mut run)));
            }
            if run.is_empty() {
                (first, bytes) = (seq, 0);
            }
            bytes = bytes.saturating_add(len);
            run.push(wire.clone());
        }
        if !run.is_empty() {
            frames.push(self.frame(me, my_incarnation, first, run));
        }
        frames
    }

    /// Frames for the messages queued since the last call: one, unless they are too many bytes
    /// for one datagram. Each carries the acknowledgement owed, if any.
    pub(crate) fn fresh_frames(&mut self, me: u32, my_incarnation: u64) -> Vec<Frame> {
        if self.fresh_from >= self.next_seq {
            return Vec::new();
        }
        let frames = self.batches(me, my_incarnation, self.fresh_from, usize::MAX);
        self.fresh_from = self.next_seq;
        if !frames.is_empty() {
            self.ack_due_since = None;
            self.sent_since_tick = true;
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
        self.sent_since_tick = true;
        Some(self.frame(me, my_incarnation, 0, Vec::new()))
    }

    /// When the owed acknowledgement, if any, must go out on its own.
    pub(crate) fn ack_deadline(&self, delay: Duration) -> Option<Instant> {
        self.ack_due_since.map(|since| since + delay)
    }

    /// Every tick: up to `max` retransmissions, batched; with nothing to retransmit, a
    /// heartbeat, unless a frame already went to the peer since the last tick (any frame is a
    /// heartbeat: a busy link carries none of its own) and no acknowledgement is owed.
    pub(crate) fn tick_frames(&mut self, me: u32, my_incarnation: u64, max: usize) -> Vec<Frame> {
        let mut frames = self.batches(me, my_incarnation, 0, max);
        if frames.is_empty() && (!self.sent_since_tick || self.ack_due_since.is_some()) {
            frames.push(self.frame(me, my_incarnation, 0, Vec::new()));
        }
        self.ack_due_since = None;
        self.sent_since_tick = false;
        frames
    }

    /// Silent for longer than `timeout` while up, its queue overflowed, or this node itself
    /// `stalled`: declares it down (the caller then fails everything pending with the peer).
    /// The reason when it just went down.
    pub(crate) fn check_silence(
        &mut self,
        now: Instant,
        timeout: Duration,
        stalled: bool,
    ) -> Option<&'static str> {
        if !self.up {
            return None;
        }
        let why = if self.overflowed {
            "overflow"
        } else if stalled {
            "stall"
        } else if now.saturating_duration_since(self.last_heard) > timeout {
            "silence"
        } else {
            return None;
        };
        self.declare_down();
        Some(why)
    }

    fn declare_down(&mut self) {
        self.up = false;
        self.in_alive = false;
        self.overflowed = false;
        self.dropped += self.early.len();
        self.early.clear();
        self.reset_outbound();
        // Whatever the peer began before hearing this new epoch began before the node-down.
        self.floor = self.out_epoch;
    }

    fn reset_outbound(&mut self) {
        self.out_epoch = self.out_epoch.saturating_add(1);
        self.out_base = match self.in_session {
            Some((incarnation, epoch)) if incarnation == self.peer_incarnation => epoch,
            _ => 0,
        };
        self.next_seq = 1;
        self.fresh_from = 1;
        self.dropped += self.unacked.len();
        self.unacked.clear();
    }

    /// Fields no honest peer sends: refused without touching any state.
    fn nonsense(&self, frame: &Frame) -> Option<&'static str> {
        if frame.from != self.index {
            return Some("bad-peer");
        }
        if frame.from_incarnation == 0 {
            return Some("bad-incarnation");
        }
        if frame.epoch == 0
            || frame.ack_epoch > self.out_epoch
            || frame.refused_epoch > self.out_epoch
        {
            return Some("bad-epoch");
        }
        if frame.ack_epoch == self.out_epoch && frame.ack >= self.next_seq {
            // Acknowledges a message we never sent in this epoch.
            return Some("bad-ack");
        }
        if (frame.seq == 0) != frame.msgs.is_empty()
            || frame.seq.checked_add(frame.msgs.len() as u64).is_none()
        {
            return Some("bad-seq");
        }
        None
    }

    /// The peer's frames name our current epoch as refused: it declared it down, so whatever we
    /// queued in it is gone, and the peer is down for us too (if it was up).
    fn take_refusal(&mut self, frame: &Frame, was_up: bool, out: &mut Received) {
        if frame.refused_epoch != 0 && frame.refused_epoch == self.out_epoch {
            out.reset |= was_up;
            self.reset_outbound();
        }
    }

    pub(crate) fn receive(&mut self, frame: Frame, my_incarnation: u64, now: Instant) -> Received {
        let mut out = Received::default();
        if frame.to_incarnation != 0 && frame.to_incarnation != my_incarnation {
            out.dropped = Some("stale-frame");
            return out;
        }
        if let Some(why) = self.nonsense(&frame) {
            out.dropped = Some(why);
            return out;
        }
        let was_up = self.up;
        let key = (frame.from_incarnation, frame.epoch);
        match self.in_session {
            Some(current) if key < current => {
                out.dropped = Some("stale-frame");
                return out;
            }
            Some(current) if key == current && !self.in_alive => {
                // A session we refused; its frames still say what the peer refuses of ours.
                self.take_refusal(&frame, was_up, &mut out);
                out.dropped = Some(if self.up { "stale-frame" } else { "node-down" });
                return out;
            }
            Some(current) if key == current => {}
            _ if !self.up && frame.base_epoch < self.floor => {
                // Began before the peer heard of our node-down: its backlog is not delivered.
                // Naming it refused makes the peer drop it and open a new epoch.
                self.in_session = Some(key);
                self.in_alive = false;
                self.peer_incarnation = frame.from_incarnation;
                self.dropped += self.early.len();
                self.early.clear();
                self.take_refusal(&frame, was_up, &mut out);
                out.dropped = Some("node-down");
                return out;
            }
            _ => {
                let was_alive = self.in_alive;
                let restarted = frame.from_incarnation != self.peer_incarnation;
                // An earlier incarnation answered our handshake or spoke, even if its session
                // never became ours: what we queued was aimed at it.
                let knew_another = restarted && self.peer_incarnation != 0;
                self.in_session = Some(key);
                self.peer_incarnation = frame.from_incarnation;
                if was_alive {
                    // The peer's old stream ended with whatever it had not delivered: it is
                    // down for us. Our outbound moves on only if the peer restarted (it cannot
                    // take our old epoch); if it declared us down, its frames name our epoch
                    // refused and `take_refusal` moves us on. Moving on merely because its
                    // epoch changed made two nodes reset each other forever after a long pause
                    // (stale-registry fixed under pause-node 2 and crash-node 0).
                    out.reset = true;
                    if restarted {
                        self.reset_outbound();
                    }
                } else if knew_another {
                    // Retransmitted to the new incarnation, our backlog could deliver twice
                    // what the old one had already received: it is dropped, and the old
                    // incarnation is down for us.
                    out.reset = true;
                    self.reset_outbound();
                }
                self.in_alive = true;
                self.floor = 0;
                self.expected = 1;
                self.dropped += self.early.len();
                self.early.clear();
            }
        }
        self.peer_incarnation = frame.from_incarnation;
        self.last_heard = now;
        self.up = true;
        self.take_refusal(&frame, was_up, &mut out);
        if frame.ack_epoch == self.out_epoch && frame.ack > 0 {
            // `nonsense` has checked ack < next_seq, so ack + 1 cannot overflow.
            self.unacked = self.unacked.split_off(&(frame.ack + 1));
        }
        if !frame.msgs.is_empty() {
            self.ack_due_since.get_or_insert(now);
            // What is delivered is a run from here on.
            out.first_seq = self.expected;
            // `nonsense` has checked that the frame's last sequence number fits in a u64.
            for (i, wire) in frame.msgs.into_iter().enumerate() {
                self.accept(frame.seq + i as u64, wire, &mut out.deliver);
            }
        }
        out
    }

    /// Message `seq` arrived: delivered if it is the next expected (with the early ones it
    /// lets through), buffered if early and within the window, dropped if a duplicate.
    fn accept(&mut self, seq: u64, wire: Wire, deliver: &mut Vec<Wire>) {
        if seq == self.expected {
            deliver.push(wire);
            self.expected = self.expected.saturating_add(1);
            while let Some(next) = self.early.remove(&self.expected) {
                deliver.push(next);
                self.expected = self.expected.saturating_add(1);
            }
        } else if seq > self.expected
            && seq - self.expected < REORDER_WINDOW
            && self.early.len() < REORDER_WINDOW as usize
        {
            self.early.insert(seq, wire);
        }
    }

    /// The node could not deliver `rest`, the tail of a [`Received::deliver`] starting at
    /// sequence number `seq` (the receiver's mailbox is full): they are not acknowledged, the
    /// peer keeps retransmitting, and they are delivered in order once there is room.
    pub(crate) fn hold(&mut self, seq: u64, rest: Vec<Wire>) {
        if !self.in_alive || rest.is_empty() {
            return;
        }
        self.expected = seq;
        // The first one comes back with the peer's retransmission; keeping it here as well
        // would deliver it twice.
        for (i, wire) in rest.into_iter().enumerate().skip(1) {
            self.early.insert(seq.saturating_add(i as u64), wire);
        }
    }

    /// Messages waiting for an acknowledgement (the outbound queue's length).
    #[cfg(test)]
    pub(crate) fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// Messages buffered out of order.
    #[cfg(test)]
    pub(crate) fn early(&self) -> usize {
        self.early.len()
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
            a.enqueue(wire(n)).unwrap();
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
        a.enqueue(wire(1)).unwrap();
        for f in a.fresh_frames(0, 1) {
            b.receive(f, 1, now);
        }
        assert!(
            b.ack_frame(1, 1, now, delay).is_none(),
            "not before the delay"
        );
        assert_eq!(b.ack_deadline(delay), Some(now + delay));
        // A reply queued within the delay carries the ack; no ack of its own follows.
        b.enqueue(wire(2)).unwrap();
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
        a.enqueue(wire(1)).unwrap();
        for f in a.fresh_frames(0, 1) {
            b.receive(f, 1, now);
        }
        // Node 0 restarts as incarnation 2 with a fresh session.
        let (mut a2, _) = pair(now);
        a2.enqueue(wire(9)).unwrap();
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
        assert!(a.check_silence(t1, Duration::from_secs(1), false).is_some());
        // Brief heal, one way: b hears a's new epoch and resets.
        assert!(b.receive(a.tick_frames(0, 1, 8).remove(0), 1, t1).reset);
        // Cut again: b declares a down.
        let t2 = t1 + Duration::from_secs(10);
        assert!(b.check_silence(t2, Duration::from_secs(1), false).is_some());
        // Final heal: frames flow both ways for a while.
        let t3 = t2 + Duration::from_secs(1);
        for n in 0..4 {
            // Both sides are down: nothing is queued for after the heal.
            assert_eq!(a.enqueue(wire(100 + n)), Err(Unqueued::Down));
            assert_eq!(b.enqueue(wire(200 + n)), Err(Unqueued::Down));
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
        a.enqueue(wire(300)).unwrap();
        b.enqueue(wire(400)).unwrap();
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
        assert!(a
            .check_silence(later, Duration::from_secs(1), false)
            .is_some());
        // b hears a's new epoch: b's live session with a ended, so a is down for b. The same
        // frame names b's epoch as refused (a declared it down), so b moves on at once.
        let r = b.receive(a.tick_frames(0, 1, 8).remove(0), 1, later);
        assert!(r.reset);
        // a takes b's new epoch without a second reset, and from then on nothing resets.
        let r = a.receive(b.tick_frames(1, 1, 8).remove(0), 1, later);
        assert!(!r.reset && r.dropped.is_none());
        for _ in 0..3 {
            let r = b.receive(a.tick_frames(0, 1, 8).remove(0), 1, later);
            assert!(!r.reset && r.dropped.is_none());
            let r = a.receive(b.tick_frames(1, 1, 8).remove(0), 1, later);
            assert!(!r.reset && r.dropped.is_none());
        }
    }

    /// After a long pause, a hears b's backlog (a message queued before both declared each
    /// other down), then b's new epoch: a delivers none of the backlog, does not reset again (it
    /// had already declared b down), and neither side answers the other's epoch change with one
    /// of its own, or the two reset each other forever.
    #[crate::rt::test]
    async fn a_backlog_then_a_new_epoch_is_refused_and_settles() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        b.enqueue(wire(7)).unwrap();
        let backlog = b.tick_frames(1, 1, 8);
        let later = now + Duration::from_secs(3);
        assert!(b
            .check_silence(later, Duration::from_secs(1), false)
            .is_some());
        assert!(a
            .check_silence(later, Duration::from_secs(1), false)
            .is_some());
        assert_eq!(
            b.take_dropped(),
            1,
            "b's backlog is dropped at its node-down"
        );
        for f in backlog {
            let r = a.receive(f, 1, later);
            assert!(!r.reset && r.deliver.is_empty(), "{r:?}");
            assert_eq!(r.dropped, Some("node-down"));
        }
        let r = a.receive(b.tick_frames(1, 1, 8).remove(0), 1, later);
        assert!(!r.reset && r.deliver.is_empty(), "{r:?}");
        let mut resets = 0;
        let mut delivered = Vec::new();
        for _ in 0..10 {
            for f in a.tick_frames(0, 1, 8) {
                let r = b.receive(f, 1, later);
                resets += usize::from(r.reset);
                delivered.extend(r.deliver);
            }
            for f in b.tick_frames(1, 1, 8) {
                let r = a.receive(f, 1, later);
                resets += usize::from(r.reset);
                delivered.extend(r.deliver);
            }
        }
        assert_eq!(resets, 0, "the sessions kept resetting each other");
        assert!(
            delivered.is_empty(),
            "delivered from before the node-down: {delivered:?}"
        );
        a.enqueue(wire(1)).unwrap();
        b.enqueue(wire(2)).unwrap();
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

    /// Runs heartbeats both ways for a few rounds; returns what each side delivered.
    fn exchange(
        a: &mut Peer,
        a_inc: u64,
        b: &mut Peer,
        b_inc: u64,
        at: Instant,
    ) -> (Vec<Wire>, Vec<Wire>) {
        let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            for f in a.tick_frames(0, a_inc, 8) {
                at_b.extend(b.receive(f, b_inc, at).deliver);
            }
            for f in b.tick_frames(1, b_inc, 8) {
                at_a.extend(a.receive(f, a_inc, at).deliver);
            }
        }
        (at_a, at_b)
    }

    /// Issue 20's trace: a one-way clog holds b's reply; a declares b down without ever having
    /// heard a frame of b's session; the unclog then brings the held frames. None is delivered:
    /// the session began before the node-down. b drops its backlog when it hears a's new epoch,
    /// and a new connection starts clean. (The old code took the held frames as a new session
    /// and delivered the reply after the `Down`.)
    #[crate::rt::test]
    async fn declared_down_before_any_frame_was_heard_delivers_nothing_from_before() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        // b hears a (the clog is one way, b -> a).
        for f in a.tick_frames(0, 1, 8) {
            b.receive(f, 1, now);
        }
        b.enqueue(wire(1)).unwrap();
        let mut held = b.fresh_frames(1, 1);
        held.extend(b.tick_frames(1, 1, 8));
        let t1 = now + Duration::from_secs(2);
        assert_eq!(
            a.check_silence(t1, Duration::from_secs(1), false),
            Some("silence")
        );
        // b hears a's post-down epoch: the connection is dead for b too. Its backlog goes when
        // a names b's epoch refused (a new epoch alone does not move b on: that made two nodes
        // reset each other forever after a long pause).
        let r = b.receive(a.tick_frames(0, 1, 8).remove(0), 1, t1);
        assert!(r.reset);
        for f in held {
            let r = a.receive(f, 1, t1);
            assert!(r.deliver.is_empty(), "delivered after the node-down: {r:?}");
            assert!(!r.reset);
            assert_eq!(r.dropped, Some("node-down"));
        }
        let (at_a, at_b) = exchange(&mut a, 1, &mut b, 1, t1);
        assert!(at_a.is_empty() && at_b.is_empty());
        assert_eq!(
            (b.unacked(), b.take_dropped()),
            (0, 1),
            "b's backlog is dropped"
        );
        assert!(a.is_up() && b.is_up(), "the new connection is up");
        a.enqueue(wire(10)).unwrap();
        b.enqueue(wire(20)).unwrap();
        let (at_a, at_b) = exchange(&mut a, 1, &mut b, 1, t1);
        assert_eq!((at_a, at_b), (vec![wire(20)], vec![wire(10)]));
    }

    /// Issue 20's second case: b restarts, a resets its session to b's new incarnation, b never
    /// hears a's new session before a partition, both declare each other down, and a keeps
    /// sending. After the heal neither side delivers anything from before its node-down: not
    /// a's message queued in the session b never heard, not b's, not a's sends while down.
    #[crate::rt::test]
    async fn a_restart_then_a_partition_delivers_nothing_from_before_the_node_down() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        exchange(&mut a, 1, &mut b, 1, now);
        let (_, mut b2) = pair(now);
        let r = a.receive(b2.tick_frames(1, 2, 8).remove(0), 1, now);
        assert!(r.reset, "a restarted peer ends the old session");
        a.enqueue(wire(1)).unwrap();
        b2.enqueue(wire(2)).unwrap();
        let mut in_flight = a.fresh_frames(0, 1);
        in_flight.extend(a.tick_frames(0, 1, 8));
        let in_flight_b = b2.fresh_frames(1, 2);
        let t1 = now + Duration::from_secs(2);
        assert!(a.check_silence(t1, Duration::from_secs(1), false).is_some());
        assert!(b2
            .check_silence(t1, Duration::from_secs(1), false)
            .is_some());
        assert_eq!(
            a.enqueue(wire(3)),
            Err(Unqueued::Down),
            "nothing queued for a down peer"
        );
        let mut at_b: Vec<Wire> = in_flight
            .into_iter()
            .flat_map(|f| b2.receive(f, 2, t1).deliver)
            .collect();
        let mut at_a: Vec<Wire> = in_flight_b
            .into_iter()
            .flat_map(|f| a.receive(f, 1, t1).deliver)
            .collect();
        let (more_a, more_b) = exchange(&mut a, 1, &mut b2, 2, t1);
        at_a.extend(more_a);
        at_b.extend(more_b);
        assert!(
            at_a.is_empty(),
            "a delivered from before its node-down: {at_a:?}"
        );
        assert!(
            at_b.is_empty(),
            "b delivered from before its node-down: {at_b:?}"
        );
        assert!(a.is_up() && b2.is_up(), "the new connection is up");
        a.enqueue(wire(10)).unwrap();
        b2.enqueue(wire(20)).unwrap();
        let (at_a, at_b) = exchange(&mut a, 1, &mut b2, 2, t1);
        assert_eq!((at_a, at_b), (vec![wire(20)], vec![wire(10)]));
    }

    /// Sends to a down peer are refused, and the queue is bounded: user messages at
    /// `OUTBOUND_LIMIT`, control messages `CONTROL_RESERVE` later, which also marks the peer
    /// for a node-down (`overflow`) instead of losing a signal silently.
    #[crate::rt::test]
    async fn the_outbound_queue_is_bounded_and_overflow_takes_the_peer_down() {
        let now = Instant::now();
        let (mut a, _) = pair(now);
        let pid = Pid {
            node: 1,
            incarnation: 1,
            id: 1,
        };
        let send = || Wire::Send {
            from: pid,
            to: pid,
            payload: Vec::new(),
        };
        for _ in 0..OUTBOUND_LIMIT {
            a.enqueue(send()).unwrap();
        }
        assert_eq!(a.enqueue(send()), Err(Unqueued::Full));
        for n in 0..CONTROL_RESERVE as u64 {
            a.enqueue(wire(n)).unwrap();
        }
        assert_eq!(a.check_silence(now, Duration::from_secs(1), false), None);
        assert_eq!(a.enqueue(wire(0)), Err(Unqueued::Full));
        assert_eq!(a.unacked(), OUTBOUND_LIMIT + CONTROL_RESERVE);
        assert_eq!(
            a.check_silence(now, Duration::from_secs(1), false),
            Some("overflow")
        );
        assert_eq!(a.take_dropped(), OUTBOUND_LIMIT + CONTROL_RESERVE);
        assert_eq!(a.enqueue(send()), Err(Unqueued::Down));
    }

    /// A message the node cannot deliver (full mailbox) is held: not acknowledged, retried with
    /// the peer's retransmission, delivered once, in order with the ones after it.
    #[crate::rt::test]
    async fn a_held_message_is_not_acknowledged_and_is_delivered_once_later() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        for n in 1..=3 {
            a.enqueue(wire(n)).unwrap();
        }
        let frames = a.fresh_frames(0, 1);
        let mut got = Vec::new();
        for f in frames {
            let r = b.receive(f, 1, now);
            if r.deliver.contains(&wire(2)) {
                // The node could take 1 but not 2: 2 and what follows are held.
                let at = r.deliver.iter().position(|w| *w == wire(2)).unwrap();
                got.extend(r.deliver[..at].iter().cloned());
                b.hold(r.first_seq + at as u64, r.deliver[at..].to_vec());
            } else {
                got.extend(r.deliver);
            }
        }
        assert_eq!(got, vec![wire(1)]);
        let ack = b.ack_frame(1, 1, now, Duration::ZERO).unwrap();
        assert_eq!(ack.ack, 1, "only what was delivered is acknowledged");
        a.receive(ack, 1, now);
        assert_eq!(a.unacked(), 2);
        for f in a.tick_frames(0, 1, 8) {
            got.extend(b.receive(f, 1, now).deliver);
        }
        assert_eq!(got, vec![wire(1), wire(2), wire(3)]);
        assert_eq!(b.early(), 0);
    }

    /// A message sent to the incarnation that answered our handshake, never acknowledged, must
    /// not reach the next incarnation: once that one speaks, our backlog is dropped and the old
    /// incarnation is down for us (seen in `stale-registry` as a duplicate delivery after a
    /// crash, with the old incarnation's frames never heard).
    #[crate::rt::test]
    async fn a_backlog_for_an_incarnation_that_answered_never_reaches_the_next() {
        let now = Instant::now();
        let (mut a, _) = pair(now);
        assert!(!a.handshake_with(2), "a first handshake is no restart");
        a.enqueue(wire(1)).unwrap();
        assert_eq!(a.fresh_frames(0, 1)[0].to_incarnation, 2);
        // Incarnation 3 of the peer speaks first; its handshake may follow.
        let mut b3 = Peer::new(0, "10.0.0.1:1".parse().unwrap(), now);
        b3.enqueue(wire(9)).unwrap();
        let got = a.receive(b3.fresh_frames(1, 3).remove(0), 1, now);
        assert!(got.reset, "the old incarnation is down");
        assert_eq!(a.unacked(), 0, "the backlog aimed at incarnation 2 is gone");
        assert!(!a.handshake_with(3));
        // A later restart seen through the handshake first resets the same way.
        a.enqueue(wire(2)).unwrap();
        let _ = a.fresh_frames(0, 1);
        assert!(a.handshake_with(4));
        assert_eq!(a.unacked(), 0);
    }

    /// Values an attacker or a broken peer may put in a well-formed frame.
    fn hostile_u64() -> impl proptest::strategy::Strategy<Value = u64> {
        use proptest::prelude::*;
        prop_oneof![
            0u64..6,
            Just(u64::MAX),
            Just(u64::MAX - 1),
            (1u64 << 62)..u64::MAX,
            1_000u64..1_100,
            any::<u64>(),
        ]
    }

    /// Well-formed frames with hostile field values (acks and sequence numbers far ahead,
    /// epochs from the past and future, extreme incarnations), interleaved with honest traffic:
    /// never a panic (the old code overflowed at `ack + 1`), and the session's state stays
    /// within its bounds.
    #[crate::rt::test]
    async fn hostile_frames_never_panic_and_state_stays_bounded() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

        let now = Instant::now();
        // An honest frame of a's with some fields replaced by hostile values.
        let f = || proptest::option::of(hostile_u64());
        let frame = (
            (f(), f(), f(), f()),
            (f(), f(), f(), f()),
            any::<bool>(),
            prop_oneof![Just(0u32), 0u32..3],
        );
        type Overrides = (
            (Option<u64>, Option<u64>, Option<u64>, Option<u64>),
            (Option<u64>, Option<u64>, Option<u64>, Option<u64>),
            bool,
            u32,
        );
        let hostile = |honest: Frame, o: Overrides| {
            let ((inc, epoch, base, to_inc), (ack_e, ack, refused, seq), body, from) = o;
            let seq = seq.unwrap_or(honest.seq);
            Frame {
                from,
                from_incarnation: inc.unwrap_or(honest.from_incarnation),
                epoch: epoch.unwrap_or(honest.epoch),
                base_epoch: base.unwrap_or(honest.base_epoch),
                to_incarnation: to_inc.unwrap_or(honest.to_incarnation),
                ack_epoch: ack_e.unwrap_or(honest.ack_epoch),
                ack: ack.unwrap_or(honest.ack),
                refused_epoch: refused.unwrap_or(honest.refused_epoch),
                seq,
                msgs: if body { vec![wire(seq)] } else { Vec::new() },
            }
        };
        let config = Config {
            cases: 512,
            failure_persistence: None,
            ..Config::default()
        };
        let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        let mut runner = TestRunner::new_with_rng(config, rng);
        runner
            .run(&proptest::collection::vec(frame, 1..40), |frames| {
                let (mut a, mut b) = pair(now);
                exchange(&mut a, 1, &mut b, 1, now);
                for n in 0..5 {
                    b.enqueue(wire(n)).unwrap();
                }
                let mut delivered = 0;
                let count = frames.len();
                for (i, o) in frames.into_iter().enumerate() {
                    let t = now + Duration::from_millis(i as u64);
                    let honest = a.tick_frames(0, 1, 8).remove(0);
                    delivered += b.receive(hostile(honest, o), 1, t).deliver.len();
                    for f in a.tick_frames(0, 1, 8) {
                        delivered += b.receive(f, 1, t).deliver.len();
                    }
                    for f in b.tick_frames(1, 1, 8) {
                        a.receive(f, 1, t);
                    }
                    let _ = b.enqueue(wire(i as u64));
                    let _ = b.fresh_frames(1, 1);
                    let _ = b.ack_frame(1, 1, t, Duration::ZERO);
                    let _ = b.check_silence(t, Duration::from_secs(1), false);
                }
                prop_assert!(b.unacked() <= OUTBOUND_LIMIT + CONTROL_RESERVE);
                prop_assert!(b.early() <= REORDER_WINDOW as usize);
                // Each hostile frame carries at most one message; honest a sent none.
                prop_assert!(
                    delivered <= count,
                    "{delivered} delivered from {count} frames"
                );
                Ok(())
            })
            .unwrap();
    }
}
