//! The one seam between Groundhog and its backend.
//!
//! Built with `--cfg madsim` (the workspace default), everything here is madsim's deterministic
//! simulator: a single-threaded executor, simulated time, simulated nodes that can be killed,
//! restarted and paused, and a lossy, clogging network. Built without it, the same names are real
//! tokio tasks, real time and real sockets (TCP for `Endpoint`, UDP for `Socket`), and the
//! simulated [`World`] cannot be created.
//!
//! This is the only file in the workspace that names madsim or `cfg(madsim)`; moving to another
//! executor or transport means changing this file alone.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;

use rand::SeedableRng;
pub use rand_chacha::ChaCha8Rng;

pub use madsim::net::Endpoint;
pub use madsim::task::{yield_now, AbortHandle, JoinHandle};
pub use madsim::time::Duration;

mod clock;
mod disk;
pub use clock::{
    local_nanos, sleep, sleep_until, sleep_until_time, system_time, timeout, Elapsed, Instant,
    Sleep,
};
pub use disk::{Disk, DiskError};

/// `#[rt::test]`: an async test on this build's executor, run by [`run_test`]: under
/// simulation a fresh world per seed of a fixed range, so every run explores the same schedules.
pub use groundhog_macros::test;

/// The first seed `#[rt::test]` runs when `MADSIM_TEST_SEED` is not set.
pub const TEST_SEED: u64 = 0;
/// How many consecutive seeds `#[rt::test]` runs when `MADSIM_TEST_NUM` is not set.
pub const TEST_SEEDS: u64 = 4;

/// The seeds `#[rt::test]` runs: `MADSIM_TEST_SEED` (default [`TEST_SEED`]) and the
/// `MADSIM_TEST_NUM` (default [`TEST_SEEDS`]) seeds after it. Never the wall clock.
pub fn test_seeds() -> Range<u64> {
    let var = |name: &str, default: u64| match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    };
    let start = var("MADSIM_TEST_SEED", TEST_SEED);
    let count = var("MADSIM_TEST_NUM", TEST_SEEDS).max(1);
    start..start.saturating_add(count)
}

/// The line a failed `#[rt::test]` prints, and appends to its panic message.
pub fn repro_line(test: &str, seed: u64) -> String {
    format!("reproduce with: MADSIM_TEST_SEED={seed} MADSIM_TEST_NUM=1 cargo test {test}")
}

/// True in the simulation build.
pub const SIMULATED: bool = cfg!(madsim);

/// Independent random streams derived from one seed, so adding a consumer of one stream never
/// shifts the draws of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The scenario's workload: which client does what, when.
    Workload,
    /// Generated fault plans.
    Faults,
    /// Anything a scenario wants that must not disturb the two above.
    Extra(u32),
    /// Buggify's draws (each site its own generator from this stream; see `buggify.rs`).
    Buggify,
}

impl Stream {
    fn id(self) -> u64 {
        match self {
            Stream::Workload => 1,
            Stream::Faults => 2,
            Stream::Extra(n) => 1_000 + u64::from(n),
            Stream::Buggify => 3,
        }
    }
}

/// A ChaCha8 generator for one purpose, derived from `seed`. Identical in both builds.
pub fn seeded_rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream.id());
    rng
}

/// Network behaviour of a simulated world.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// One-way latency, drawn uniformly from this range for each datagram.
    pub latency: Range<Duration>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            loss: 0.0,
            latency: Duration::from_millis(1)..Duration::from_millis(10),
        }
    }
}

/// The address simulated node `index` listens on at `port`: `10.0.x.y`, one per node.
pub fn node_addr(index: u32, port: u16) -> SocketAddr {
    let n = index + 1;
    let ip = Ipv4Addr::new(10, 0, (n >> 8) as u8, (n & 0xff) as u8);
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// The node index whose [`node_addr`] has this address's IP, if any.
pub fn node_index(addr: SocketAddr) -> Option<u32> {
    match addr.ip() {
        IpAddr::V4(ip) => {
            let [a, b, c, d] = ip.octets();
            let n = (u32::from(c) << 8) | u32::from(d);
            (a == 10 && b == 0 && n > 0).then(|| n - 1)
        }
        IpAddr::V6(_) => None,
    }
}

/// A datagram socket: the transport the runtime's distribution layer builds on.
///
/// Under simulation it is a madsim endpoint (datagrams can be lost, delayed and reordered by the
/// world's network config and faults); in the real build it is a UDP socket. Either way a datagram
/// longer than the receive buffer is truncated, so callers size buffers one byte past their limit.
pub struct Socket {
    inner: socket::Inner,
}

impl Socket {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Socket> {
        Ok(Socket {
            inner: socket::Inner::bind(addr).await?,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    pub async fn send_to(&self, to: SocketAddr, datagram: &[u8]) -> std::io::Result<()> {
        self.inner.send_to(to, datagram).await
    }

    pub async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.inner.recv_from(buf).await
    }
}

#[cfg(madsim)]
mod socket {
    use std::io;
    use std::net::SocketAddr;

    /// Every runtime datagram carries this madsim tag.
    const TAG: u64 = 0x6768;

    pub(super) struct Inner(madsim::net::Endpoint);

    impl Inner {
        pub(super) async fn bind(addr: SocketAddr) -> io::Result<Inner> {
            Ok(Inner(madsim::net::Endpoint::bind(addr).await?))
        }

        pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
            self.0.local_addr()
        }

        pub(super) async fn send_to(&self, to: SocketAddr, datagram: &[u8]) -> io::Result<()> {
            self.0.send_to(to, TAG, datagram).await
        }

        pub(super) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
            self.0.recv_from(TAG, buf).await
        }
    }
}

#[cfg(not(madsim))]
mod socket {
    use std::io;
    use std::net::SocketAddr;

    pub(super) struct Inner(tokio::net::UdpSocket);

    impl Inner {
        pub(super) async fn bind(addr: SocketAddr) -> io::Result<Inner> {
            Ok(Inner(tokio::net::UdpSocket::bind(addr).await?))
        }

        pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
            self.0.local_addr()
        }

        pub(super) async fn send_to(&self, to: SocketAddr, datagram: &[u8]) -> io::Result<()> {
            self.0.send_to(datagram, to).await.map(drop)
        }

        pub(super) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
            self.0.recv_from(buf).await
        }
    }
}

/// Why a simulated world could not be created.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("this binary was built without --cfg madsim; simulations need the default (simulation) build")]
    NotSimulated,
    #[error("invalid network config: {0}")]
    BadNetConfig(String),
}

fn check_net(net: &NetConfig) -> Result<(), WorldError> {
    if !(0.0..=1.0).contains(&net.loss) {
        return Err(WorldError::BadNetConfig(format!(
            "loss {} is not between 0 and 1",
            net.loss
        )));
    }
    if net.latency.start > net.latency.end {
        return Err(WorldError::BadNetConfig(format!(
            "latency range {:?}..{:?} is inverted",
            net.latency.start, net.latency.end
        )));
    }
    Ok(())
}

/// madsim draws latency from a half-open range, so a fixed latency becomes a 1 ns wide range.
#[cfg_attr(not(madsim), allow(dead_code))]
fn latency_range(net: &NetConfig) -> Range<Duration> {
    let start = net.latency.start;
    start..net.latency.end.max(start + Duration::from_nanos(1))
}

pub use backend::{
    datagram_count, elapsed, run_test, spawn, task_count, world_seed, world_state, Control,
    SimNode, World,
};

/// The generator of a node's handshake nonces. Under simulation it is derived from the world's
/// seed, the node and its incarnation (so runs replay); in the real build it is seeded by the
/// operating system, since a predictable nonce would let a stranger replay a handshake.
pub(crate) fn nonce_rng(index: u32, incarnation: u64) -> ChaCha8Rng {
    match world_seed() {
        Some(seed) => {
            let mut rng = seeded_rng(seed, Stream::Extra(u32::MAX));
            rng.set_stream((u64::from(index) << 40) ^ incarnation);
            rng
        }
        None => backend::entropy_rng(),
    }
}

#[cfg(madsim)]
mod backend {
    use super::clock::backend::Clocks;
    use super::disk::backend::Disks;
    use super::{check_net, latency_range, node_addr, Duration, NetConfig, WorldError};
    use madsim::net::NetSim;
    use madsim::plugin::{self, Simulator};
    use madsim::rand::GlobalRng;
    use madsim::runtime::{Handle, NodeHandle, Runtime};
    use madsim::task::{AbortHandle, JoinHandle, NodeId};
    use madsim::time::TimeHandle;
    use std::future::Future;
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

    /// The seed of the simulated world this runs in; `None` outside one.
    pub fn world_seed() -> Option<u64> {
        Handle::try_current().ok().map(|h| h.seed())
    }

    /// Unused under simulation: every node runs inside a seeded world.
    pub(crate) fn entropy_rng() -> super::ChaCha8Rng {
        super::seeded_rng(0, super::Stream::Extra(u32::MAX))
    }

    /// Simulated time since the current world started; zero outside a world.
    pub fn elapsed() -> Duration {
        madsim::time::TimeHandle::try_current()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a world must free when it ends, kept inside the world (a madsim simulator plugin).
    ///
    /// madsim never frees a task still pending when its runtime is dropped: a task's bookkeeping
    /// holds the task's own waker and the future holds the bookkeeping, a cycle only broken by
    /// running the task to its end, aborting it or killing its node. Such a task keeps whatever
    /// it captured, usually a `Control` and with it the whole world (docs/madsim.md). So a world
    /// records its nodes and the supervisor's own tasks, and kills and aborts them when dropped.
    struct Leftovers {
        /// The supervisor's node (the first one madsim announces), then every created node.
        nodes: Mutex<Vec<NodeId>>,
        /// Tasks spawned by the supervisor (outside every node), which no node kill reaches.
        tasks: Mutex<Vec<AbortHandle>>,
        /// How many of `tasks` were unfinished at the last pruning.
        live: Mutex<usize>,
    }

    impl Simulator for Leftovers {
        fn new(_rand: &GlobalRng, _time: &TimeHandle, _config: &madsim::Config) -> Self {
            Leftovers {
                nodes: Mutex::new(Vec::new()),
                tasks: Mutex::new(Vec::new()),
                live: Mutex::new(0),
            }
        }

        fn create_node(&self, id: NodeId) {
            lock(&self.nodes).push(id);
        }
    }

    impl Leftovers {
        fn track(&self, task: AbortHandle) {
            if lock(&self.nodes).first() != Some(&plugin::node()) {
                return;
            }
            let mut tasks = lock(&self.tasks);
            tasks.push(task);
            let mut live = lock(&self.live);
            if tasks.len() > 2 * *live + 16 {
                tasks.retain(|t| !t.is_finished());
                *live = tasks.len();
            }
        }
    }

    /// Spawns a task (on the current node, or the supervisor's). The world frees it when it
    /// ends, whether or not it finished.
    #[track_caller]
    pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = madsim::task::spawn(future);
        plugin::simulator::<Leftovers>().track(task.abort_handle());
        task
    }

    /// Per-world state of runtime modules (the runtime nodes a harness can reach, buggify's
    /// draws), one value per type, kept inside the world like [`Leftovers`]: never a static.
    /// Draws nothing from the world's randomness.
    struct Locals(
        Mutex<std::collections::BTreeMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>>,
    );

    impl Simulator for Locals {
        fn new(_rand: &GlobalRng, _time: &TimeHandle, _config: &madsim::Config) -> Self {
            Locals(Mutex::default())
        }
    }

    /// The current world's value of `T` (created with `T::default()` on first use); `None`
    /// outside a simulated world and in the real build.
    pub fn world_state<T: Default + Send + Sync + 'static>() -> Option<Arc<T>> {
        Handle::try_current().ok()?;
        let locals = plugin::simulator::<Locals>();
        let any = lock(&locals.0)
            .entry(std::any::TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()))
            .clone();
        any.downcast::<T>().ok()
    }

    /// One simulated world: a fresh deterministic runtime for one seed. Dropping it frees every
    /// task still pending in it.
    pub struct World {
        runtime: Runtime,
        leftovers: OnceLock<Arc<Leftovers>>,
    }

    impl World {
        pub fn new(
            seed: u64,
            net: &NetConfig,
            time_limit: Option<Duration>,
        ) -> Result<World, WorldError> {
            check_net(net)?;
            let mut config = madsim::Config::default();
            config.net.packet_loss_rate = net.loss;
            config.net.send_latency = latency_range(net);
            let mut world = World::with_config(seed, config);
            if let Some(limit) = time_limit {
                world.runtime.set_time_limit(limit);
            }
            Ok(world)
        }

        fn with_config(seed: u64, config: madsim::Config) -> World {
            let runtime = Runtime::with_seed_and_config(seed, config);
            // Draw nothing from the world's randomness, so schedules are unchanged.
            runtime.add_simulator::<Leftovers>();
            runtime.add_simulator::<Locals>();
            runtime.add_simulator::<Clocks>();
            runtime.add_simulator::<Disks>();
            World {
                runtime,
                leftovers: OnceLock::new(),
            }
        }

        /// Runs `future` as the world's supervisor (outside every simulated node) to completion.
        pub fn block_on<F: Future>(&self, future: F) -> F::Output {
            self.runtime.block_on(async {
                self.leftovers.get_or_init(plugin::simulator::<Leftovers>);
                future.await
            })
        }
    }

    impl Drop for World {
        fn drop(&mut self) {
            let Some(leftovers) = self.leftovers.get() else {
                return;
            };
            let handle = self.runtime.handle();
            for id in lock(&leftovers.nodes).iter().skip(1) {
                handle.kill(*id);
            }
            for task in lock(&leftovers.tasks).drain(..) {
                task.abort();
            }
            // Killing and aborting only wake the tasks; the executor drops a woken task's
            // future when it next runs, so run it once more. A panic from a dropped future
            // belongs to no run any more.
            let _ = catch_unwind(AssertUnwindSafe(|| self.runtime.block_on(async {})));
        }
    }

    /// Runs one `#[rt::test]`: a fresh world per seed of [`test_seeds`](super::test_seeds), each
    /// on its own thread (as madsim's runner does). The first failure prints its repro line,
    /// and the panic carries it too.
    pub fn run_test<F>(name: &str, test: fn() -> F)
    where
        F: Future<Output = ()> + 'static,
    {
        for seed in super::test_seeds() {
            let run = std::thread::spawn(move || {
                World::with_config(seed, madsim::Config::default()).block_on(test())
            });
            if let Err(panic) = run.join() {
                let repro = super::repro_line(name, seed);
                eprintln!("note: {repro}");
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied());
                match message {
                    Some(message) => resume_unwind(Box::new(format!("{message}\n{repro}"))),
                    None => resume_unwind(panic),
                }
            }
        }
    }

    /// Tasks alive in the current world, on every node and the supervisor's (so a test can
    /// check that a runtime object's tasks end with it); `None` in the real build.
    pub fn task_count() -> Option<usize> {
        let left = plugin::simulator::<Leftovers>();
        let on_supervisor = lock(&left.tasks)
            .iter()
            .filter(|t| !t.is_finished())
            .count();
        Some(Handle::current().metrics().num_tasks() + on_supervisor)
    }

    /// Datagrams the current world's network has carried so far (for benchmarks: madsim's own
    /// count); `None` in the real build.
    pub fn datagram_count() -> Option<u64> {
        Some(NetSim::current().stat().msg_count)
    }

    /// A simulated node created by [`Control::create_node`].
    #[derive(Clone)]
    pub struct SimNode {
        index: u32,
        handle: NodeHandle,
    }

    impl SimNode {
        pub fn index(&self) -> u32 {
            self.index
        }
    }

    /// The supervisor's levers on the current world: nodes and network.
    #[derive(Clone)]
    pub struct Control {
        handle: Handle,
        net: Arc<NetSim>,
    }

    impl Control {
        /// The current world's control, or `None` outside a simulation.
        pub fn current() -> Option<Control> {
            let handle = Handle::try_current().ok()?;
            Some(Control {
                handle,
                net: NetSim::current(),
            })
        }

        /// Creates node `index` at [`node_addr`]`(index, _)`. `init` runs when the node starts
        /// and again after every restart; everything it spawned dies with the node.
        pub fn create_node<F>(
            &self,
            index: u32,
            init: impl Fn() -> F + Send + Sync + 'static,
        ) -> SimNode
        where
            F: Future<Output = ()> + 'static,
        {
            let handle = self
                .handle
                .create_node()
                .name(format!("n{index}"))
                .ip(node_addr(index, 0).ip())
                .init(init)
                .build();
            SimNode { index, handle }
        }

        /// Spawns a task on `node` from outside it (dies with the node's current incarnation).
        pub fn spawn_on<F>(&self, node: &SimNode, future: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            // A NodeHandle keeps spawning into the incarnation it was made in, even after a
            // restart (measured: such tasks never run), so look the node up afresh.
            let current = self
                .handle
                .get_node(node.handle.id())
                .expect("a created node stays known to its world");
            drop(current.spawn(future));
        }

        pub fn crash(&self, node: &SimNode) {
            self.handle.kill(node.handle.id());
        }

        /// Restarts `node` from its init program, whether it was running or crashed.
        pub fn restart(&self, node: &SimNode) {
            // madsim's restart of a running node keeps its sockets bound, so the new
            // incarnation cannot bind its ports (measured); a kill first releases them.
            self.handle.kill(node.handle.id());
            self.handle.restart(node.handle.id());
        }

        pub fn pause(&self, node: &SimNode) {
            self.handle.pause(node.handle.id());
        }

        pub fn resume(&self, node: &SimNode) {
            self.handle.resume(node.handle.id());
        }

        /// Drops every datagram from `from` to `to` until unclogged.
        pub fn clog_link(&self, from: &SimNode, to: &SimNode) {
            self.net.clog_link(from.handle.id(), to.handle.id());
        }

        pub fn unclog_link(&self, from: &SimNode, to: &SimNode) {
            self.net.unclog_link(from.handle.id(), to.handle.id());
        }

        /// Steps `node`'s wall clock by `offset` (forward when `ahead`): `clock-skew`.
        pub fn skew_clock(&self, node: &SimNode, offset: Duration, ahead: bool) {
            let ns = offset.as_nanos() as i128;
            plugin::simulator::<Clocks>().skew(node.handle.id(), if ahead { ns } else { -ns });
        }

        /// From now on `node`'s clocks run `rate` times as fast as global time: `clock-drift`.
        pub fn drift_clock(&self, node: &SimNode, rate: f64) {
            plugin::simulator::<Clocks>().drift(node.handle.id(), rate);
        }

        /// The quiet phase's undo of skew and drift: `node`'s clocks run at global speed again
        /// and its wall clock reads global time (its monotonic clock keeps what drift added).
        pub fn reset_clock(&self, node: &SimNode) {
            plugin::simulator::<Clocks>().reset(node.handle.id());
        }

        /// Every operation on `node`'s disk first waits `latency` (zero: no stall): `disk-stall`.
        pub fn disk_stall(&self, node: &SimNode, latency: Duration) {
            plugin::simulator::<Disks>().stall(node.handle.id(), latency);
        }

        /// Writes to `node`'s disk fail with `DiskError::Full` while `full`: `disk-full`.
        pub fn disk_full(&self, node: &SimNode, full: bool) {
            plugin::simulator::<Disks>().full(node.handle.id(), full);
        }

        /// Damages `node`'s last unsynced write, or else its last synced record:
        /// `disk-corrupt`. Returns the damaged key, or `None` when there was nothing to damage.
        pub fn disk_corrupt(&self, node: &SimNode) -> Option<String> {
            plugin::simulator::<Disks>().corrupt(node.handle.id())
        }

        /// Writes made on `node`'s disk since its last sync (what a crash would lose now).
        pub fn unsynced_writes(&self, node: &SimNode) -> usize {
            plugin::simulator::<Disks>().unsynced(node.handle.id())
        }

        pub fn set_net(&self, net: &NetConfig) -> Result<(), WorldError> {
            check_net(net)?;
            self.net.update_config(|c| {
                c.packet_loss_rate = net.loss;
                c.send_latency = latency_range(net);
            });
            Ok(())
        }
    }
}

#[cfg(not(madsim))]
mod backend {
    use super::{Duration, NetConfig, WorldError};
    use std::convert::Infallible;
    use std::future::Future;

    pub use madsim::task::spawn;

    /// Simulated time exists only in the simulation build.
    pub fn elapsed() -> Duration {
        Duration::ZERO
    }

    /// There is no seeded world in the real build.
    pub fn world_seed() -> Option<u64> {
        None
    }

    /// A generator seeded by the operating system.
    pub(crate) fn entropy_rng() -> super::ChaCha8Rng {
        use rand::SeedableRng;
        super::ChaCha8Rng::from_entropy()
    }

    /// Not counted in the real build.
    pub fn task_count() -> Option<usize> {
        None
    }

    /// Not counted in the real build.
    pub fn datagram_count() -> Option<u64> {
        None
    }

    /// There is no simulated world in the real build.
    pub fn world_state<T: Default + Send + Sync + 'static>() -> Option<std::sync::Arc<T>> {
        None
    }

    /// Runs one `#[rt::test]` once, on a current-thread tokio runtime (there are no seeds).
    pub fn run_test<F>(_name: &str, test: fn() -> F)
    where
        F: Future<Output = ()> + 'static,
    {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread tokio runtime builds")
            .block_on(test());
    }

    /// Cannot be created in the real build: [`World::new`] says why.
    pub struct World {
        never: Infallible,
    }

    impl World {
        pub fn new(
            _seed: u64,
            net: &NetConfig,
            _time_limit: Option<Duration>,
        ) -> Result<World, WorldError> {
            super::check_net(net)?;
            Err(WorldError::NotSimulated)
        }

        pub fn block_on<F: Future>(&self, _future: F) -> F::Output {
            match self.never {}
        }
    }

    #[derive(Clone)]
    pub struct SimNode {
        never: Infallible,
    }

    impl SimNode {
        pub fn index(&self) -> u32 {
            match self.never {}
        }
    }

    #[derive(Clone)]
    pub struct Control {
        never: Infallible,
    }

    impl Control {
        pub fn current() -> Option<Control> {
            None
        }

        pub fn create_node<F>(
            &self,
            _index: u32,
            _init: impl Fn() -> F + Send + Sync + 'static,
        ) -> SimNode
        where
            F: Future<Output = ()> + 'static,
        {
            match self.never {}
        }

        pub fn spawn_on<F>(&self, _node: &SimNode, _future: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            match self.never {}
        }

        pub fn crash(&self, _node: &SimNode) {
            match self.never {}
        }

        pub fn restart(&self, _node: &SimNode) {
            match self.never {}
        }

        pub fn pause(&self, _node: &SimNode) {
            match self.never {}
        }

        pub fn resume(&self, _node: &SimNode) {
            match self.never {}
        }

        pub fn clog_link(&self, _from: &SimNode, _to: &SimNode) {
            match self.never {}
        }

        pub fn unclog_link(&self, _from: &SimNode, _to: &SimNode) {
            match self.never {}
        }

        pub fn skew_clock(&self, _node: &SimNode, _offset: Duration, _ahead: bool) {
            match self.never {}
        }

        pub fn drift_clock(&self, _node: &SimNode, _rate: f64) {
            match self.never {}
        }

        pub fn reset_clock(&self, _node: &SimNode) {
            match self.never {}
        }

        pub fn disk_stall(&self, _node: &SimNode, _latency: Duration) {
            match self.never {}
        }

        pub fn disk_full(&self, _node: &SimNode, _full: bool) {
            match self.never {}
        }

        pub fn disk_corrupt(&self, _node: &SimNode) -> Option<String> {
            match self.never {}
        }

        pub fn unsynced_writes(&self, _node: &SimNode) -> usize {
            match self.never {}
        }

        pub fn set_net(&self, _net: &NetConfig) -> Result<(), WorldError> {
            match self.never {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        node_addr, node_index, seeded_rng, spawn, Control, Duration, Endpoint, NetConfig, Stream,
        World, WorldError,
    };
    use rand::RngCore;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn streams_are_independent_and_reproducible() {
        let w1 = seeded_rng(3, Stream::Workload).next_u64();
        let w2 = seeded_rng(3, Stream::Workload).next_u64();
        let f = seeded_rng(3, Stream::Faults).next_u64();
        let other_seed = seeded_rng(4, Stream::Workload).next_u64();
        assert_eq!(w1, w2);
        assert_ne!(w1, f);
        assert_ne!(w1, other_seed);
    }

    #[test]
    fn node_addresses_are_distinct() {
        assert_eq!(node_addr(0, 7).to_string(), "10.0.0.1:7");
        assert_eq!(node_addr(255, 7).to_string(), "10.0.1.0:7");
        assert_ne!(node_addr(1, 7), node_addr(2, 7));
        for n in [0, 1, 254, 255, 300] {
            assert_eq!(node_index(node_addr(n, 9)), Some(n));
        }
        assert_eq!(node_index("127.0.0.1:9".parse().unwrap()), None);
    }

    #[test]
    fn bad_net_config_is_an_error() {
        let net = NetConfig {
            loss: 1.5,
            ..NetConfig::default()
        };
        assert!(matches!(
            World::new(0, &net, None),
            Err(WorldError::BadNetConfig(_))
        ));
    }

    /// Counts its drops.
    struct Guard(Arc<AtomicUsize>);

    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A world frees the tasks still pending when it ends: the supervisor's own, a node's, a
    /// crashed-then-restarted node's and a paused node's (madsim alone leaks them all, and with
    /// them whatever they hold, often the whole world).
    #[test]
    fn a_world_frees_its_pending_tasks_when_dropped() {
        if !super::SIMULATED {
            return;
        }
        let drops = Arc::new(AtomicUsize::new(0));
        {
            let world = World::new(1, &NetConfig::default(), None).unwrap();
            let d = drops.clone();
            world.block_on(async move {
                let control = Control::current().unwrap();
                let pending = |d: &Arc<AtomicUsize>| {
                    let guard = Guard(d.clone());
                    let control = Control::current().unwrap();
                    async move {
                        let _held = (guard, control);
                        std::future::pending::<()>().await
                    }
                };
                drop(spawn(pending(&d)));
                let nodes: Vec<_> = (0..3)
                    .map(|i| control.create_node(i, std::future::pending::<()>))
                    .collect();
                for node in &nodes {
                    control.spawn_on(node, pending(&d));
                }
                crate::rt::sleep(Duration::from_millis(1)).await;
                control.restart(&nodes[1]);
                control.spawn_on(&nodes[1], pending(&d));
                control.pause(&nodes[2]);
                crate::rt::sleep(Duration::from_millis(1)).await;
            });
            // The restart dropped the first incarnation's task.
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        } // The world is dropped here.
        assert_eq!(
            drops.load(Ordering::SeqCst),
            5,
            "every pending task was dropped"
        );
    }

    /// Per-node clocks: a timer follows its node's clocks, not global time. On a node whose
    /// wall clock is stepped +500 ms a wall-clock deadline of 2 s fires at global 1.5 s, while
    /// its monotonic sleeps keep global length; on a node running twice as fast a 1 s sleep (and
    /// a 1 s timeout) ends at global 0.5 s; a wall-clock deadline pending when its node's clock
    /// is stepped forward 5 s is re-aimed and fires 5 s early; the supervisor's own sleep keeps
    /// global time, and a reset node's wall clock reads global time again.
    #[test]
    fn a_skewed_or_drifting_nodes_timers_fire_at_its_own_time() {
        if !super::SIMULATED {
            return;
        }
        let world = World::new(1, &NetConfig::default(), None).unwrap();
        let fired = world.block_on(async {
            let control = Control::current().unwrap();
            let nodes: Vec<_> = (0..3)
                .map(|i| control.create_node(i, std::future::pending::<()>))
                .collect();
            let (tx, rx) = std::sync::mpsc::channel::<(&str, Duration)>();
            // The world's date at global time zero, as the supervisor's wall clock says.
            let date = super::system_time() - super::elapsed();
            control.skew_clock(&nodes[0], Duration::from_millis(500), true);
            control.drift_clock(&nodes[1], 2.0);
            let t = tx.clone();
            control.spawn_on(&nodes[0], async move {
                let local = super::system_time().duration_since(date).unwrap();
                assert!(local >= Duration::from_millis(500), "{local:?}");
                assert!(super::local_nanos().is_some());
                super::sleep(Duration::from_millis(100)).await;
                t.send(("skewed-sleep", super::elapsed())).unwrap();
                super::sleep_until_time(date + Duration::from_secs(2)).await;
                t.send(("skewed-deadline", super::elapsed())).unwrap();
            });
            let t = tx.clone();
            control.spawn_on(&nodes[1], async move {
                let began = super::Instant::now();
                super::sleep(Duration::from_secs(1)).await;
                let local = began.elapsed();
                t.send(("drift-sleep", super::elapsed())).unwrap();
                assert!(local >= Duration::from_secs(1), "{local:?}");
                let never = std::future::pending::<()>();
                let r = super::timeout(Duration::from_secs(1), never).await;
                assert_eq!(r, Err(super::Elapsed));
                t.send(("drift-timeout", super::elapsed())).unwrap();
            });
            let t = tx.clone();
            control.spawn_on(&nodes[2], async move {
                super::sleep_until_time(date + Duration::from_secs(10)).await;
                t.send(("stepped", super::elapsed())).unwrap();
            });
            super::sleep(Duration::from_secs(1)).await;
            control.skew_clock(&nodes[2], Duration::from_secs(5), true);
            super::sleep(Duration::from_secs(1)).await;
            tx.send(("supervisor", super::elapsed())).unwrap();
            control.reset_clock(&nodes[0]);
            let t = tx.clone();
            control.spawn_on(&nodes[0], async move {
                assert_eq!(super::local_nanos(), None, "reads global time again");
                t.send(("reset", super::elapsed())).unwrap();
            });
            super::sleep(Duration::from_secs(10)).await;
            drop(tx);
            rx.iter().collect::<Vec<_>>()
        });
        let got: Vec<(&str, u128)> = fired.into_iter().map(|(n, d)| (n, d.as_millis())).collect();
        assert_eq!(
            got,
            vec![
                ("skewed-sleep", 100),
                ("drift-sleep", 500),
                ("drift-timeout", 1000),
                ("skewed-deadline", 1500),
                ("supervisor", 2000),
                ("reset", 2000),
                ("stepped", 5000),
            ]
        );
    }

    /// A node's disk is crash-consistent: after `crash` and `restart` the node reads exactly
    /// what it synced (the unsynced write is gone, the synced one survives); a record damaged
    /// by `disk_corrupt` reads as `DiskError::Corrupt`, never as data; `disk_full` fails
    /// writes with `DiskError::Full`; `disk_stall` delays every operation.
    #[test]
    fn a_crash_loses_unsynced_writes_and_corruption_is_reported() {
        use super::{Disk, DiskError};
        if !super::SIMULATED {
            return;
        }
        type Seen = (
            Result<Option<Vec<u8>>, DiskError>,
            Result<Option<Vec<u8>>, DiskError>,
        );
        let world = World::new(1, &NetConfig::default(), None).unwrap();
        let (boots, later) = world.block_on(async {
            let control = Control::current().unwrap();
            let (tx, rx) = std::sync::mpsc::channel::<Seen>();
            let node = control.create_node(0, move || {
                let tx = tx.clone();
                async move {
                    let disk = Disk::open("data").unwrap();
                    let seen = (disk.get("synced").await, disk.get("unsynced").await);
                    let first = seen == (Ok(None), Ok(None));
                    tx.send(seen).unwrap();
                    if first {
                        disk.put("synced", b"kept").await.unwrap();
                        disk.sync().await.unwrap();
                        disk.put("unsynced", b"lost").await.unwrap();
                        assert_eq!(disk.get("unsynced").await, Ok(Some(b"lost".to_vec())));
                    }
                    // madsim ends a node whose init returns (docs/madsim.md).
                    std::future::pending::<()>().await
                }
            });
            super::sleep(Duration::from_millis(10)).await;
            assert_eq!(control.unsynced_writes(&node), 1);
            control.crash(&node);
            control.restart(&node);
            super::sleep(Duration::from_millis(10)).await;
            let boots: Vec<Seen> = rx.try_iter().collect();
            let (tx, rx) = std::sync::mpsc::channel::<(&str, String)>();
            let t = tx.clone();
            control.spawn_on(&node, async move {
                let disk = Disk::open("data").unwrap();
                disk.put("torn", b"half a record").await.unwrap();
                t.send(("put", String::new())).unwrap();
            });
            super::sleep(Duration::from_millis(10)).await;
            assert_eq!(control.disk_corrupt(&node).as_deref(), Some("data/torn"));
            control.disk_full(&node, true);
            control.disk_stall(&node, Duration::from_millis(100));
            let t = tx.clone();
            control.spawn_on(&node, async move {
                let disk = Disk::open("data").unwrap();
                let began = super::elapsed();
                let got = disk.get("torn").await;
                t.send(("torn", format!("{got:?}"))).unwrap();
                let stalled = super::elapsed() - began;
                t.send(("stalled", format!("{}", stalled.as_millis())))
                    .unwrap();
                let full = disk.put("more", b"x").await;
                t.send(("full", format!("{full:?}"))).unwrap();
            });
            super::sleep(Duration::from_secs(1)).await;
            drop(tx);
            (boots, rx.try_iter().collect::<Vec<_>>())
        });
        assert_eq!(
            boots,
            vec![(Ok(None), Ok(None)), (Ok(Some(b"kept".to_vec())), Ok(None)),],
            "the restarted node reads what it synced, not what it did not"
        );
        let later: Vec<(&str, &str)> = later.iter().map(|(a, b)| (*a, b.as_str())).collect();
        assert_eq!(
            later,
            vec![
                ("put", ""),
                ("torn", "Err(Corrupt { key: \"torn\" })"),
                ("stalled", "100"),
                ("full", "Err(Full)"),
            ]
        );
    }

    /// `#[rt::test]` runs a fixed range of seeds, not the wall clock's: two runs of the same
    /// failing test fail the same way (same schedule, same simulated time), and the panic names
    /// the seed to replay.
    #[test]
    fn test_seeds_are_fixed_and_a_failure_names_its_seed() {
        if !super::SIMULATED {
            return;
        }
        let unset = |v: &str| std::env::var_os(v).is_none();
        if unset("MADSIM_TEST_SEED") && unset("MADSIM_TEST_NUM") {
            let (start, n) = (super::TEST_SEED, super::TEST_SEEDS);
            assert_eq!(super::test_seeds(), start..start + n);
        }
        let failure = || {
            let run = std::panic::catch_unwind(|| {
                super::run_test("rt::tests::fails_on_purpose", || async {
                    // Each poll advances simulated time by a step drawn from the seed.
                    for _ in 0..8 {
                        super::yield_now().await;
                    }
                    panic!("on purpose at {:?}", super::elapsed());
                })
            });
            *run.expect_err("the test failed")
                .downcast::<String>()
                .expect("a message")
        };
        let (a, b) = (failure(), failure());
        assert_eq!(a, b, "the same seed, the same run");
        assert!(a.starts_with("on purpose at "), "{a}");
        let seed = super::test_seeds().start;
        assert!(a.contains(&format!("MADSIM_TEST_SEED={seed} ")), "{a}");
    }

    /// In both builds a datagram sent is a datagram received (simulated network, or TCP).
    #[crate::rt::test]
    async fn endpoint_round_trip() {
        let a = Endpoint::bind("127.0.0.1:0").await.unwrap();
        let b = Endpoint::bind("127.0.0.1:0").await.unwrap();
        a.send_to(b.local_addr().unwrap(), 9, b"hello")
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, _from) = b.recv_from(9, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
    }
}
