//! Groundhog's scenario catalogue and the `groundhog` binary.
//!
//! Each scenario lives in its own file and has a `flawed` variant (the buggy pattern, written in
//! the scenario with the runtime's public API) and a `fixed` one (the runtime as designed).
//! [`catalogue`] lists them all for the CLI; `docs/catalogue.md` describes each, with the seed
//! that first catches its flaw.
//!
//! Demonstrations of the raw `rt` seam:
//! - `ping-pong` (`ping_pong.rs`): retransmitted pings; acknowledged means delivered once.
//! - `lost-update` (`lost_update.rs`): read-modify-write against compare-and-set.
//!
//! The flaws of the platform's two reports (the fix worklog and the code review), on the actor
//! runtime:
//! - `monitor-race` (`monitor_race.rs`): check alive, then subscribe to future deaths only,
//!   against monitor first (Fix #11).
//! - `transaction-rollback` (`transaction_rollback.rs`): agent-registry batches that fail or
//!   crash halfway; one call per op against an atomic transaction (Fix #3).
//! - `supervisor-limits` (`supervisor_limits.rs`): a crash loop under the test suite's lenient
//!   restart limits against production's (Fix #4).
//! - `blocking-call` (`blocking_call.rs`): a server blocking its loop on a slow request against
//!   a deferred reply from a supervised task (Fix #1).
//! - `stale-registry` (`stale_registry.rs`): a registry that bypasses its backend keeps names of
//!   dead processes and hides names from other nodes (004 issue 1).
//! - `orphan-task` (`orphan_task.rs`): leader announcements from an unsupervised task that
//!   swallows errors, against calls from a supervised task (004 issues 2 and 4).
//! - `leaked-timer` (`leaked_timer.rs`): a restarted cache's cleanup ticker that outlives it
//!   against a timer owned by the process (Fix #5).
//! - `split-registry` (`split_registry.rs`): one holder per name after a partition heals, and
//!   the loser told.
//!
//! The platform's services (`groundhog_runtime::services`):
//! - `config-after-start` (`config_after_start.rs`): services started before their configuration
//!   is validated, against a configuration checked whole before anything starts (Fix #16).
//! - `circular-start` (`circular_start.rs`): services that wait for each other at start-up and
//!   go on without, against a start order from the dependency graph that refuses a cycle by
//!   name (Fix #8).
//! - `event-fanout` (`event_fanout.rs`): events through two event systems, duplicated and out
//!   of order, against one bus (Fix #17).
//! - `flaky-backpressure` (`flaky_backpressure.rs`): an alert sent asynchronously after the
//!   write that crossed the threshold, against admission that tells before it returns (the
//!   resource-manager test that passed on retry).
//! - `unbounded-table` (`unbounded_table.rs`): a per-key rate-limit table that is never
//!   cleaned grows with churning keys, against the limiter's bounded, cleaned table (Fix #2).
//! - `read-bottleneck` (`read_bottleneck.rs`): reads through the store's mailbox queue behind
//!   slow writes, against reads of the table the store publishes (Fix #7).
//! - `full-scan` (`full_scan.rs`): lookups that examine every entry of a growing agent
//!   registry, against an index page and a bounded scan budget (Fix #12).
//!
//! Coordination (`coord`), each flaw against the runtime's primitive:
//! - `consensus-spawn` (`consensus_spawn.rs`): consensus rounds from unsupervised tasks that
//!   lose a round silently, against the runtime's Raft (004 issue 2).
//! - `swallowed-error` (`swallowed_error.rs`): votes whose errors are caught and ignored, so a
//!   partitioned participant believes it took part, against typed errors surfaced (004 issue 4).
//! - `unfenced-lock` (`unfenced_lock.rs`): a lease lock whose resource ignores the fencing
//!   token, so a stalled holder overwrites a newer one, against a `FencedResource`.
//!
//! Fault classes of their own:
//! - `failover` (`failover.rs`): a backup takes over after a primary outage longer than failure
//!   detection, and a restarted primary must not lead again (needs swarm plans' long episodes).
//! - `amnesiac-restart` (`amnesiac_restart.rs`): a supervised store killed by the plan restarts
//!   empty; acknowledged writes must survive it (needs faults aimed at processes).
//! - `impatient-lookup` (`impatient_lookup.rs`): a client that looks a restarted worker up once
//!   gives up when the restart comes late (needs buggify, no fault plan).
//! - `lease-drift` (`lease_drift.rs`): a lease holder trusting its own clock against a remote
//!   expiry stamp, against a monotonic timer with a drift margin (needs clock faults).
//! - `unsynced-ack` (`unsynced_ack.rs`): a write acknowledged before its sync, lost by a crash
//!   of the node's disk (`rt::Disk`), against sync-then-acknowledge.

mod amnesiac_restart;
mod blocking_call;
mod circular_start;
mod config_after_start;
mod consensus_spawn;
mod event_fanout;
mod failover;
mod flaky_backpressure;
mod full_scan;
mod impatient_lookup;
mod leaked_timer;
mod lease_drift;
mod lost_update;
mod monitor_race;
mod orphan_task;
mod ping_pong;
mod read_bottleneck;
mod split_registry;
mod stale_registry;
mod supervisor_limits;
mod swallowed_error;
mod transaction_rollback;
mod unbounded_table;
mod unfenced_lock;
mod unsynced_ack;
mod wire;

pub use amnesiac_restart::AmnesiacRestart;
pub use blocking_call::BlockingCall;
pub use circular_start::CircularStart;
pub use config_after_start::ConfigAfterStart;
pub use consensus_spawn::ConsensusSpawn;
pub use event_fanout::EventFanout;
pub use failover::Failover;
pub use flaky_backpressure::FlakyBackpressure;
pub use full_scan::FullScan;
pub use impatient_lookup::ImpatientLookup;
pub use leaked_timer::LeakedTimer;
pub use lease_drift::LeaseDrift;
pub use lost_update::LostUpdate;
pub use monitor_race::MonitorRace;
pub use orphan_task::OrphanTask;
pub use ping_pong::PingPong;
pub use read_bottleneck::ReadBottleneck;
pub use split_registry::SplitRegistry;
pub use stale_registry::StaleRegistry;
pub use supervisor_limits::SupervisorLimits;
pub use swallowed_error::SwallowedError;
pub use transaction_rollback::TransactionRollback;
pub use unbounded_table::UnboundedTable;
pub use unfenced_lock::UnfencedLock;
pub use unsynced_ack::UnsyncedAck;

/// Every scenario of the project, in listing order.
pub fn catalogue() -> groundhog_sim::Catalogue {
    groundhog_sim::Catalogue::new()
        .with(PingPong)
        .with(LostUpdate)
        .with(MonitorRace)
        .with(TransactionRollback)
        .with(SupervisorLimits)
        .with(BlockingCall)
        .with(StaleRegistry)
        .with(OrphanTask)
        .with(LeakedTimer)
        .with(SplitRegistry)
        .with(Failover)
        .with(ConfigAfterStart)
        .with(CircularStart)
        .with(EventFanout)
        .with(FlakyBackpressure)
        .with(UnboundedTable)
        .with(ReadBottleneck)
        .with(FullScan)
        .with(AmnesiacRestart)
        .with(ImpatientLookup)
        .with(LeaseDrift)
        .with(UnsyncedAck)
        .with(ConsensusSpawn)
        .with(SwallowedError)
        .with(UnfencedLock)
}
