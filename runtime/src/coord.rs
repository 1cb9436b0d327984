//! Coordination primitives, each a supervised process on the runtime's public process API,
//! each failure a typed error.
//!
//! - [`consensus`]: a Raft replicated log (one member per node), for replicated state machines.
//! - [`election`]: leader election with terms, on [`consensus`].
//! - [`lease`]: a lease lock with fencing tokens, and the [`lease::FencedResource`] guard.
//! - [`barrier`]: N participants; a dead or cut-off one breaks the barrier for the others.
//!
//! Trace events of their own: `raft-role` (`node`, `pid`, `group`, `term`, `role`, `leader`,
//! `commit`: a member's term, role or known leader changed), `lease-grant` / `lease-expire` /
//! `lease-release` (`node`, `token`, `holder`), `barrier-release` / `barrier-broken`
//! (`node`, `generation`, and for a break the participant and reason).

pub mod barrier;
pub mod consensus;
pub mod election;
pub mod lease;
