//! Groundhog's scenario catalogue and the `groundhog` binary.
//!
//! Each scenario lives in its own file and has a `flawed` variant (the buggy pattern, written in
//! the scenario) and a `fixed` one. [`catalogue`] lists them all for the CLI.
//!
//! - `ping-pong` (`ping_pong.rs`): retransmitted pings; acknowledged means delivered once.
//! - `lost-update` (`lost_update.rs`): read-modify-write against compare-and-set.
//! - `split-registry` (`split_registry.rs`): one holder per name after a partition heals.
//! - `stale-registry` (`stale_registry.rs`): names of dead processes must stop resolving.
//! - `supervisor-limits` (`supervisor_limits.rs`): a crash loop under the test suite's lenient
//!   restart limits against production's (Fix #4).
//! - `blocking-call` (`blocking_call.rs`): a server blocking its loop on a slow request against
//!   a deferred reply from a supervised task (Fix #1).
//! - `leaked-timer` (`leaked_timer.rs`): a restarted cache's cleanup ticker that outlives it
//!   against a timer owned by the process (Fix #5).
//! - `transaction-rollback` (`transaction_rollback.rs`): agent-registry batches that fail or
//!   crash halfway; one call per op against an atomic transaction.

mod blocking_call;
mod leaked_timer;
mod lost_update;
mod ping_pong;
mod split_registry;
mod stale_registry;
mod supervisor_limits;
mod transaction_rollback;
mod wire;

pub use blocking_call::BlockingCall;
pub use leaked_timer::LeakedTimer;
pub use lost_update::LostUpdate;
pub use ping_pong::PingPong;
pub use split_registry::SplitRegistry;
pub use stale_registry::StaleRegistry;
pub use supervisor_limits::SupervisorLimits;
pub use transaction_rollback::TransactionRollback;

/// Every scenario of the project, in listing order.
pub fn catalogue() -> groundhog_sim::Catalogue {
    groundhog_sim::Catalogue::new()
        .with(PingPong)
        .with(LostUpdate)
        .with(StaleRegistry)
        .with(SplitRegistry)
        .with(SupervisorLimits)
        .with(BlockingCall)
        .with(LeakedTimer)
        .with(TransactionRollback)
}
