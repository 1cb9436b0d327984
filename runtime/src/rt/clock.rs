//! Time as each node sees it: `Instant`, `sleep`, `sleep_until`, `timeout` and `system_time`.
//!
//! Under simulation every node has its own clocks, as a machine does: a monotonic clock
//! ([`Instant`], [`sleep`], [`timeout`]) and a wall clock ([`system_time`],
//! [`sleep_until_time`]), both driven by one oscillator whose rate the harness's `clock-drift`
//! fault sets, and the wall clock alone moved by `clock-skew` (a step, as `settimeofday` or an
//! NTP step moves `CLOCK_REALTIME` and never `CLOCK_MONOTONIC`). So a node whose clock runs fast
//! fires every timer early in global time, and a skewed node's wall-clock deadline fires at the
//! skewed global time; leases that compare wall-clock stamps across nodes see the skew. The
//! supervisor (the harness, outside every node) reads global time, as does
//! [`elapsed`](super::elapsed), which stamps traces.
//!
//! A timer already pending when its node's clocks change is re-aimed at once: a faster rate or a
//! wall-clock step past its deadline fires it, a slower rate or a step back delays it. The quiet
//! phase's undo sets the rate back to 1 and steps the wall clock back to global time; the
//! monotonic clock keeps what drift added (it never runs backwards).
//!
//! While no clock fault is applied, every call here makes exactly the timers madsim's own
//! functions would, so schedules (and trace hashes) are those of a world without clocks.
//!
//! In the real build these are tokio's, on the OS clock; clock faults do not exist there.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::Duration;

/// What `timeout` returns when the deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline has elapsed")]
pub struct Elapsed;

/// Waits until `duration` has passed on the calling node's clock.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep(backend::Sleep::after(duration))
}

/// Waits until the calling node's monotonic clock reads `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep(backend::Sleep::until(deadline.0))
}

/// Waits until the calling node's wall clock reads `at` (re-aimed if the clock is stepped under
/// simulation; in the real build a step of the OS clock while waiting is not followed).
pub fn sleep_until_time(at: std::time::SystemTime) -> Sleep {
    Sleep(backend::Sleep::until_time(at))
}

/// Runs `future` until it completes or `duration` passes on the calling node's clock.
pub fn timeout<F: Future>(
    duration: Duration,
    future: F,
) -> impl Future<Output = Result<F::Output, Elapsed>> {
    let mut timer = sleep(duration);
    async move {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(move |cx| {
            if let Poll::Ready(out) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            Pin::new(&mut timer).poll(cx).map(|()| Err(Elapsed))
        })
        .await
    }
}

/// The calling node's wall clock: under simulation the world's start date (drawn from the
/// seed) plus the node's wall reading, so skew and drift move it; the OS clock in the real build.
pub fn system_time() -> std::time::SystemTime {
    backend::system_time()
}

/// The calling node's wall-clock reading, when it differs from global time: nanoseconds since
/// the world started (negative after a step back). `None` for the supervisor, for a node whose
/// clock was never changed, and in the real build. Traces print it as `local=`.
pub fn local_nanos() -> Option<i128> {
    backend::local_nanos()
}

/// The future of [`sleep`] and [`sleep_until`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Sleep(backend::Sleep);

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll(cx)
    }
}

/// A reading of the calling node's monotonic clock (moved by drift, never by skew).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(backend::Reading);

impl Instant {
    pub fn now() -> Instant {
        Instant(backend::now())
    }

    /// Time since `earlier`; zero if `earlier` is later.
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }

    pub fn checked_duration_since(&self, earlier: Instant) -> Option<Duration> {
        backend::since(self.0, earlier.0)
    }

    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.checked_duration_since(earlier).unwrap_or_default()
    }

    /// Time since this reading, on the calling node's clock.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(*self)
    }

    pub fn checked_add(&self, d: Duration) -> Option<Instant> {
        backend::add(self.0, d).map(Instant)
    }

    pub fn checked_sub(&self, d: Duration) -> Option<Instant> {
        backend::sub(self.0, d).map(Instant)
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, d: Duration) -> Instant {
        self.checked_add(d)
            .expect("overflow when adding a duration to an instant")
    }
}

impl std::ops::AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl std::ops::Sub<Duration> for Instant {
    type Output = Instant;

    fn sub(self, d: Duration) -> Instant {
        self.checked_sub(d)
            .expect("overflow when subtracting a duration from an instant")
    }
}

impl std::ops::Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

#[cfg(madsim)]
pub(super) mod backend {
    //! Per-node clocks kept by a simulator plugin, so they live and die with their world.

    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::task::{Context, Poll, Waker};
    use std::time::SystemTime;

    use madsim::plugin::{self, Simulator};
    use madsim::rand::GlobalRng;
    use madsim::runtime::Handle;
    use madsim::task::NodeId;
    use madsim::time::TimeHandle;

    use super::Duration;

    /// Nanoseconds since the world started on some node's clock (negative after a step back).
    pub(in crate::rt) type Reading = i128;

    const PPB: i128 = 1_000_000_000;

    /// One node's clocks: `mono(g) = mono_at + (g - global_at) × rate_ppb / 10⁹`, rebased at
    /// every change so a new rate applies from the moment it is set, and `wall = mono + step`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct NodeClock {
        global_at: i128,
        mono_at: i128,
        rate_ppb: i128,
        step: i128,
    }

    const GLOBAL: NodeClock = NodeClock {
        global_at: 0,
        mono_at: 0,
        rate_ppb: PPB,
        step: 0,
    };

    impl NodeClock {
        fn mono(&self, global: i128) -> i128 {
            self.mono_at + (global - self.global_at) * self.rate_ppb / PPB
        }

        fn read(&self, global: i128, kind: Kind) -> i128 {
            match kind {
                Kind::Mono => self.mono(global),
                Kind::Wall => self.mono(global) + self.step,
            }
        }

        /// Global time for `local` to pass on this clock, rounded up so the clock has reached
        /// it when the timer fires.
        fn global_for(&self, local: i128) -> i128 {
            (local * PPB + self.rate_ppb - 1) / self.rate_ppb
        }
    }

    /// Which of a node's clocks a deadline is on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Mono,
        Wall,
    }

    #[derive(Default)]
    struct State {
        clocks: BTreeMap<NodeId, NodeClock>,
        /// Bumped on every change of a node's clocks, so its pending timers re-aim.
        epochs: BTreeMap<NodeId, u64>,
        /// Timers pending on each node, woken when its clocks change.
        waiting: BTreeMap<NodeId, BTreeMap<u64, Waker>>,
        next_timer: u64,
    }

    /// The world's per-node clocks (a madsim simulator plugin: no statics, gone with the world).
    pub(in crate::rt) struct Clocks {
        time: TimeHandle,
        state: Mutex<State>,
    }

    impl Simulator for Clocks {
        fn new(_rand: &GlobalRng, time: &TimeHandle, _config: &madsim::Config) -> Self {
            Clocks {
                time: time.clone(),
                state: Mutex::new(State::default()),
            }
        }
    }

    fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    impl Clocks {
        fn global(&self) -> i128 {
            self.time.elapsed().as_nanos() as i128
        }

        /// The clocks of `node`, or `None` when they read global time.
        fn clock(&self, node: NodeId) -> Option<NodeClock> {
            lock(&self.state).clocks.get(&node).copied()
        }

        fn epoch(&self, node: NodeId) -> u64 {
            lock(&self.state).epochs.get(&node).copied().unwrap_or(0)
        }

        fn read(&self, node: NodeId, kind: Kind) -> i128 {
            let global = self.global();
            self.clock(node).map_or(global, |c| c.read(global, kind))
        }

        fn change(&self, node: NodeId, f: impl FnOnce(NodeClock, i128) -> NodeClock) {
            let global = self.global();
            let mut st = lock(&self.state);
            let old = st.clocks.get(&node).copied().unwrap_or(GLOBAL);
            let rebased = NodeClock {
                global_at: global,
                mono_at: old.mono(global),
                ..old
            };
            let new = f(rebased, global);
            if new.mono_at == global && new.rate_ppb == PPB && new.step == 0 {
                st.clocks.remove(&node);
            } else {
                st.clocks.insert(node, new);
            }
            *st.epochs.entry(node).or_default() += 1;
            let woken = st.waiting.remove(&node).unwrap_or_default();
            drop(st);
            for waker in woken.into_values() {
                waker.wake();
            }
        }

        /// Steps `node`'s wall clock by `offset_ns` (either sign) at once.
        pub(in crate::rt) fn skew(&self, node: NodeId, offset_ns: i128) {
            self.change(node, |c, _| NodeClock {
                step: c.step + offset_ns,
                ..c
            });
        }

        /// From now on `node`'s clocks advance `rate` times as fast as global time.
        pub(in crate::rt) fn drift(&self, node: NodeId, rate: f64) {
            let rate_ppb = ((rate * PPB as f64).round() as i128).max(1);
            self.change(node, |c, _| NodeClock { rate_ppb, ..c });
        }

        /// `node`'s clocks run at global speed again and its wall clock is stepped back to
        /// global time; its monotonic clock keeps what drift added (it never runs backwards).
        pub(in crate::rt) fn reset(&self, node: NodeId) {
            if self.clock(node).is_some() {
                self.change(node, |c, global| NodeClock {
                    rate_ppb: PPB,
                    step: global - c.mono_at,
                    ..c
                });
            }
        }
    }

    /// The calling task's node and the world's clocks; `None` outside a world.
    fn here() -> Option<(NodeId, Arc<Clocks>)> {
        Handle::try_current().ok()?;
        Some((plugin::node(), plugin::simulator::<Clocks>()))
    }

    type Here = Option<(NodeId, Arc<Clocks>)>;

    fn read_at(here: &Here, kind: Kind) -> Reading {
        here.as_ref()
            .map_or(0, |(node, clocks)| clocks.read(*node, kind))
    }

    pub(in crate::rt) fn now() -> Reading {
        read_at(&here(), Kind::Mono)
    }

    pub(in crate::rt) fn local_nanos() -> Option<i128> {
        let (node, clocks) = here()?;
        let clock = clocks.clock(node)?;
        let global = clocks.global();
        let wall = clock.read(global, Kind::Wall);
        (wall != global).then_some(wall)
    }

    /// The world's start date (drawn from the seed by madsim).
    fn epoch_date() -> Option<SystemTime> {
        let time = TimeHandle::try_current()?;
        Some(time.now_time() - time.elapsed())
    }

    fn to_date(start: SystemTime, reading: Reading) -> SystemTime {
        let magnitude = Duration::from_nanos(reading.unsigned_abs().min(u64::MAX as u128) as u64);
        if reading >= 0 {
            start + magnitude
        } else {
            start - magnitude
        }
    }

    fn from_date(start: SystemTime, at: SystemTime) -> Reading {
        match at.duration_since(start) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        }
    }

    pub(in crate::rt) fn system_time() -> SystemTime {
        match epoch_date() {
            Some(start) => to_date(start, read_at(&here(), Kind::Wall)),
            None => std::time::UNIX_EPOCH,
        }
    }

    pub(in crate::rt) fn since(later: Reading, earlier: Reading) -> Option<Duration> {
        let d = later.checked_sub(earlier)?;
        u64::try_from(d).ok().map(Duration::from_nanos)
    }

    pub(in crate::rt) fn add(at: Reading, d: Duration) -> Option<Reading> {
        at.checked_add(i128::try_from(d.as_nanos()).ok()?)
    }

    pub(in crate::rt) fn sub(at: Reading, d: Duration) -> Option<Reading> {
        at.checked_sub(i128::try_from(d.as_nanos()).ok()?)
    }

    /// A timer on one of a node's clocks, over one madsim timer at a time.
    pub(in crate::rt) struct Sleep {
        deadline: Reading,
        kind: Kind,
        /// The node and clocks it was made on; `None` outside a world.
        here: Here,
        timer: madsim::time::Sleep,
        /// The node's clock epoch `timer` was aimed with.
        epoch: u64,
        /// This timer's key among its node's waiting timers, once it has waited.
        waiting: Option<u64>,
    }

    impl Sleep {
        pub(in crate::rt) fn after(duration: Duration) -> Sleep {
            let here = here();
            let deadline = add(read_at(&here, Kind::Mono), duration).unwrap_or(i128::MAX);
            match here.as_ref().and_then(|(n, c)| c.clock(*n)) {
                // Global time: the very timer madsim's own `sleep` makes.
                None => Sleep::new(deadline, Kind::Mono, here, madsim::time::sleep(duration)),
                Some(_) => Sleep::aimed(deadline, Kind::Mono, here),
            }
        }

        pub(in crate::rt) fn until(deadline: Reading) -> Sleep {
            Sleep::aimed(deadline, Kind::Mono, here())
        }

        pub(in crate::rt) fn until_time(at: SystemTime) -> Sleep {
            let deadline = epoch_date().map_or(0, |start| from_date(start, at));
            Sleep::aimed(deadline, Kind::Wall, here())
        }

        fn new(deadline: Reading, kind: Kind, here: Here, timer: madsim::time::Sleep) -> Sleep {
            let epoch = here.as_ref().map_or(0, |(n, c)| c.epoch(*n));
            Sleep {
                deadline,
                kind,
                here,
                timer,
                epoch,
                waiting: None,
            }
        }

        fn aimed(deadline: Reading, kind: Kind, here: Here) -> Sleep {
            let timer = madsim::time::sleep(global_wait(&here, kind, deadline));
            Sleep::new(deadline, kind, here, timer)
        }

        fn reached(&self) -> bool {
            read_at(&self.here, self.kind) >= self.deadline
        }

        fn reaim(&mut self) {
            self.timer = madsim::time::sleep(global_wait(&self.here, self.kind, self.deadline));
        }

        pub(in crate::rt) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
            use std::future::Future;
            loop {
                let epoch = self.here.as_ref().map_or(0, |(n, c)| c.epoch(*n));
                if epoch != self.epoch {
                    self.epoch = epoch;
                    if self.reached() {
                        return Poll::Ready(());
                    }
                    self.reaim();
                }
                match std::pin::Pin::new(&mut self.timer).poll(cx) {
                    Poll::Ready(()) if self.reached() => return Poll::Ready(()),
                    Poll::Ready(()) => self.reaim(),
                    Poll::Pending => {
                        self.wait_for_changes(cx);
                        return Poll::Pending;
                    }
                }
            }
        }

        /// Asks to be woken if this node's clocks change before the timer fires.
        fn wait_for_changes(&mut self, cx: &mut Context<'_>) {
            let Some((node, clocks)) = &self.here else {
                return;
            };
            let mut st = lock(&clocks.state);
            let key = *self.waiting.get_or_insert_with(|| {
                st.next_timer += 1;
                st.next_timer
            });
            st.waiting
                .entry(*node)
                .or_default()
                .insert(key, cx.waker().clone());
        }
    }

    impl Drop for Sleep {
        fn drop(&mut self) {
            if let (Some(key), Some((node, clocks))) = (self.waiting, &self.here) {
                let mut st = lock(&clocks.state);
                if let Some(timers) = st.waiting.get_mut(node) {
                    timers.remove(&key);
                    if timers.is_empty() {
                        st.waiting.remove(node);
                    }
                }
            }
        }
    }

    /// Global time until the node's `kind` clock reads `deadline`.
    fn global_wait(here: &Here, kind: Kind, deadline: Reading) -> Duration {
        let left = deadline.saturating_sub(read_at(here, kind)).max(0);
        let global = match here.as_ref().and_then(|(n, c)| c.clock(*n)) {
            Some(clock) => clock.global_for(left),
            None => left,
        };
        Duration::from_nanos(u64::try_from(global).unwrap_or(u64::MAX))
    }
}

#[cfg(not(madsim))]
pub(super) mod backend {
    //! The OS clock, through tokio.

    use std::task::{Context, Poll};

    use super::Duration;

    pub(in crate::rt) type Reading = tokio::time::Instant;

    pub(in crate::rt) fn now() -> Reading {
        tokio::time::Instant::now()
    }

    pub(in crate::rt) fn local_nanos() -> Option<i128> {
        None
    }

    pub(in crate::rt) fn system_time() -> std::time::SystemTime {
        std::time::SystemTime::now()
    }

    pub(in crate::rt) fn since(later: Reading, earlier: Reading) -> Option<Duration> {
        later.checked_duration_since(earlier)
    }

    pub(in crate::rt) fn add(at: Reading, d: Duration) -> Option<Reading> {
        at.checked_add(d)
    }

    pub(in crate::rt) fn sub(at: Reading, d: Duration) -> Option<Reading> {
        at.checked_sub(d)
    }

    pub(in crate::rt) struct Sleep(std::pin::Pin<Box<tokio::time::Sleep>>);

    impl Sleep {
        pub(in crate::rt) fn after(duration: Duration) -> Sleep {
            Sleep(Box::pin(tokio::time::sleep(duration)))
        }

        pub(in crate::rt) fn until(deadline: Reading) -> Sleep {
            Sleep(Box::pin(tokio::time::sleep_until(deadline)))
        }

        pub(in crate::rt) fn until_time(at: std::time::SystemTime) -> Sleep {
            let left = at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            Sleep::after(left)
        }

        pub(in crate::rt) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
            std::future::Future::poll(self.0.as_mut(), cx)
        }
    }
}
