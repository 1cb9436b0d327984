//! Groundhog's scenario catalogue and the `groundhog` binary.
//!
//! Each scenario lives in its own file and has a `flawed` variant (the buggy pattern, written in
//! the scenario) and a `fixed` one. [`catalogue`] lists them all for the CLI.
//!
//! - `ping-pong` (`ping_pong.rs`): retransmitted pings; acknowledged means delivered once.
//! - `lost-update` (`lost_update.rs`): read-modify-write against compare-and-set.
//! - `transaction-rollback` (`transaction_rollback.rs`): agent-registry batches that fail or
//!   crash halfway; one call per op against an atomic transaction.

mod lost_update;
mod ping_pong;
mod transaction_rollback;
mod wire;

pub use lost_update::LostUpdate;
pub use ping_pong::PingPong;
pub use transaction_rollback::TransactionRollback;

/// Every scenario of the project, in listing order.
pub fn catalogue() -> groundhog_sim::Catalogue {
    groundhog_sim::Catalogue::new()
        .with(PingPong)
        .with(LostUpdate)
        .with(TransactionRollback)
}
