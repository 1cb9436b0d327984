//! Observable events.
//!
//! Runtime and scenario code report what a trace reader should see through [`event!`](crate::event):
//! a `tracing` event whose target is `groundhog::<kind>`. A harness records every such event with
//! the simulated time; everything else `tracing` carries (madsim's own logs, user spans) is ignored.
//!
//! Stable kinds and their fields (trace readers may rely on these names):
//!
//! | kind      | fields                                         | meaning                                  |
//! |-----------|------------------------------------------------|------------------------------------------|
//! | `node`    | `node`, `state` (`start`), `incarnation`       | a node's program started or restarted    |
//! | `spawn`   | `node`, `task`                                 | a named task started                     |
//! | `exit`    | `node`, `task`, `reason`                       | a named task ended (`normal`, `killed`)  |
//! | `send`    | `node`, `to`, `msg`                            | a message left a node                    |
//! | `deliver` | `node`, `from`, `msg`                          | a message was handed to its receiver     |
//! | `drop`    | `node`, `from`, `reason`                       | a message was discarded, and why         |
//! | `fault`   | `fault` and the fault's own fields             | the harness applied a fault              |
//! | `check`   | `invariant`, `result` (`ok` / `violated`)      | an invariant was evaluated               |
//! | `note`    | `node` (optional), `msg`                       | a scenario's own remark                  |
//!
//! `node` is the Groundhog node index; events without it come from the harness.

/// Reports an observable event: `event!("send", node = 2, to = 1, msg = "ping 7")`.
#[macro_export]
macro_rules! event {
    ($kind:literal, $($fields:tt)+) => {
        $crate::__tracing::info!(target: concat!("groundhog::", $kind), $($fields)+)
    };
}

/// The `tracing` target prefix every Groundhog event carries.
pub const TARGET_PREFIX: &str = "groundhog::";
