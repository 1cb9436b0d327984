//! Groundhog's runtime: OTP-style processes over one executor seam.
//!
//! - [`rt`]: the one seam to the executor, clocks (per node under simulation), network, disks
//!   ([`rt::Disk`]), random source and (under simulation) the simulated world. Nothing else in
//!   Groundhog names the backend.
//! - [`disk`]: the simulated disk's store (buffered writes, checksummed records) behind
//!   [`rt::Disk`].
//! - [`trace`]: how runtime code reports observable events, so a harness can record them.
//! - Processes: [`Node`] (`node.rs`, `node/`) spawns them and holds their links, monitors and
//!   pending calls; a process sees its [`Ctx`] and receives [`Event`]s (`process.rs`).
//!   Identifiers in `pid.rs`, exit reasons in `reason.rs`, typed errors in `error.rs`.
//! - [`Actor`] (`actor.rs`): a handler with `init`, `handle` and `terminate` over a process.
//! - Names: [`Registry`] over a [`Backend`] (`registry.rs`, `registry/`): local or cluster-wide.
//! - Supervision: [`supervisor`] (static, dynamic and task supervisors).
//! - [`agents`]: the agent registry (indexes, paged reads off the writer's path, atomic
//!   transactions).
//! - [`buggify`](mod@buggify): two-level buggify points (`buggify!("site")`), on only when a simulation asks.
//! - [`agent_monitor`]: one supervised monitor per agent, reporting its health exactly once dead.
//! - [`coord`]: coordination (consensus, leader election, lease lock with fencing, barrier).
//! - Distribution: node authentication (handshake, session keys, frame MACs) in [`auth`],
//!   frames and codec in [`wire`], per-peer reliable sessions in `session.rs`, the network
//!   tasks in `net.rs`.
//!
//! ```
//! use groundhog_runtime::{rt, Ctx, Event, ExitReason, Node};
//!
//! // Runs under `#[rt::test]` or inside a simulated node.
//! async fn echo() {
//!     let node = Node::local(0, 1);
//!     let server = node.spawn("echo", |mut ctx: Ctx<String>| async move {
//!         while let Event::Call { msg, reply, .. } = ctx.recv().await {
//!             reply.reply(msg);
//!         }
//!         ExitReason::Normal
//!     });
//!     let (tx, rx) = futures::channel::oneshot::channel();
//!     node.spawn("client", move |ctx: Ctx<()>| async move {
//!         let answer: Result<String, _> =
//!             ctx.call(server, "hi".to_string(), rt::Duration::from_secs(1)).await;
//!         let _ = tx.send(answer);
//!         ExitReason::Normal
//!     });
//!     assert_eq!(rx.await.unwrap().unwrap(), "hi");
//! }
//! ```

// `#[rt::test]` names the crate by its path, from inside it too.
extern crate self as groundhog_runtime;

pub mod rt;
pub mod services;
pub mod trace;

mod actor;
pub mod agent_monitor;
pub mod agents;
pub mod auth;
pub mod buggify;
pub mod coord;
pub mod disk;
mod error;
mod mailbox;
mod net;
mod node;
mod pid;
mod process;
mod reason;
mod registry;
mod session;
pub mod supervisor;
pub mod wire;

pub use actor::{start_actor, Actor, Flow};
pub use agents::AgentRegistry;
pub use auth::{NetStats, Secret, SecretError};
pub use error::{CallError, SendError, StartError};
pub use node::{Node, NodeConfig, SpawnOpts, DIST_PORT};
pub use pid::{Pid, Ref};
pub use process::{Ctx, Event, Message, ReplyTo, Request};
pub use reason::ExitReason;
pub use registry::{
    Backend, NameConflict, Registry, RegistryError, KEEPER_NAME, REPLICA_NAME, SYNC_EVERY,
};

#[doc(hidden)]
pub use tracing as __tracing;
