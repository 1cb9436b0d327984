//! Groundhog's scenario catalogue and the `groundhog` binary.
//!
//! Each scenario lives in its own file and has a `flawed` variant (the buggy pattern, written in
//! the scenario) and a `fixed` one. [`catalogue`] lists them all for the CLI.
//!
//! - `ping-pong` (`ping_pong.rs`): retransmitted pings; acknowledged means delivered once.
//! - `lost-update` (`lost_update.rs`): read-modify-write against compare-and-set.
//! - `monitor-race` (`monitor_race.rs`): check-then-subscribe misses deaths; monitor first.
//! - `orphan-task` (`orphan_task.rs`): leader announcements from a fire-and-forget task.

mod lost_update;
mod monitor_race;
mod orphan_task;
mod ping_pong;
mod wire;

pub use lost_update::LostUpdate;
pub use monitor_race::MonitorRace;
pub use orphan_task::OrphanTask;
pub use ping_pong::PingPong;

/// Every scenario of the project, in listing order.
pub fn catalogue() -> groundhog_sim::Catalogue {
    groundhog_sim::Catalogue::new()
        .with(PingPong)
        .with(LostUpdate)
        .with(MonitorRace)
        .with(OrphanTask)
}
