//! Observable events.
//!
//! Runtime and scenario code report what a trace reader should see through [`event!`](crate::event):
//! a `tracing` event whose target is `groundhog::<kind>`. A harness records every such event with
//! the simulated time; everything else `tracing` carries (madsim's own logs, user spans) is ignored.
//!
//! Stable kinds and their fields (trace readers may rely on these names):
//!
//! | kind                 | fields                                              | meaning                                            |
//! |----------------------|-----------------------------------------------------|----------------------------------------------------|
//! | `node`               | `node`, `state` (`start`), `incarnation`            | a node's program started or restarted              |
//! | `spawn`              | `node`, `task` / `node`, `pid`, `name`              | a named task / a runtime process started           |
//! | `exit`               | `node`, `task`, `reason` / `node`, `pid`, `name`, `reason` | a named task / a process ended, and why     |
//! | `send`               | `node`, `from`, `to` / `to_node`, `name`, `call`, `digest` | a message (or call, with its reference) was sent; remote ones carry the payload's [`Digest`] |
//! | `deliver`            | `node`, `from`, `to`, `digest`                      | a message was queued in the receiver's mailbox (`digest` when it came from another node) |
//! | `drop`               | `node`, `reason`, and `from`/`to`/`peer`/`reference`/`msg` | a message, reply, Down or frame was discarded: `full`, `noproc`, `undecodable`, `late-reply`, `stale-down`, `bad-frame`, `stale-frame`, `no-route`, `node-down` (to or from a peer declared down; `msgs` counts a dropped backlog), `outbound-full`, `bad-ack`/`bad-epoch`/`bad-seq`/`bad-incarnation` (nonsensical frame fields), ... |
//! | `hold`               | `node`, `from`, `to`, `reason` (`full`)             | a remote message waits at the session (not acknowledged, retried) until the mailbox has room |
//! | `link`               | `node`, `from`, `to`                                | a process linked to another                        |
//! | `signal`             | `node`, `from`, `to`, `reason`, `effect`            | an exit signal arrived: `trapped`, `ignored` or `killed` |
//! | `monitor`            | `node`, `watcher`, `pid`, `reference`               | a monitor was set                                  |
//! | `down`               | `node`, `watcher`, `pid`, `reference`, `reason`     | the one `Down` of a monitor (or of a call) fired   |
//! | `call-timeout`       | `node`, `from`, `to`, `call`                        | a call gave up waiting                             |
//! | `heartbeat`          | `node`, `peer`                                      | a heartbeat (with retransmissions) left for a peer |
//! | `node-down`          | `node`, `peer`, `why` (`silence` / `reset` / `overflow`) | a peer was declared down; its links and monitors fired |
//! | `child-start`        | `node`, `sup`, `child`, `pid`                       | a supervisor started a child                       |
//! | `child-start-failed` | `node`, `sup`, `child`, `error`                     | a child's start failed                             |
//! | `child-stop`         | `node`, `sup`, `child`, `pid`, `reason`             | a supervisor stopped a child                       |
//! | `restart`            | `node`, `sup`, `child`, `reason`, `intensity`, `period_ms` | a supervisor is restarting after a child's exit (within its limits: at most `intensity` restarts in `period_ms`) |
//! | `escalate`           | `node`, `sup`, `reason`                             | a supervisor reached its restart intensity and exits |
//! | `task-failed`        | `node`, `sup` (supervised tasks), `task`, `reason`  | a supervised task or a node service task failed    |
//! | `register`           | `node`, `name`, `pid`, `backend` (`local` / `cluster`) | a name was registered                          |
//! | `unregister`         | `node`, `name`, `pid`, `backend`, `why` (`asked`, `owner-dropped`, or the `Down` reason) | a name was removed |
//! | `name-conflict`      | `node`, `name`, `winner`, `loser`                   | after a heal, two holders of a name: the earlier registration won |
//! | `registry-replica`   | `node`, `pid`, `names`                              | a cluster registry replica (re)started             |
//! | `agents-start`       | `node`, `pid`, `version`                            | the agent registry process (re)started on the committed table |
//! | `agents-commit`      | `node`, `tx`, `ops`, `entries`                      | a transaction committed as one step                |
//! | `agents-abort`       | `node`, `index`, `op`, `agent`, `error`             | a transaction was refused at op `index`; nothing applied |
//! | `agents-crash-injected` | `node`, `index`                                  | the fault-injection hook crashed the registry before op `index` |
//! | `pressure`           | `node`, `state` (`high` / `low`), `total`           | the resource manager's pressure began or ended     |
//! | `bus-drop`           | `node`, `to`, `kind`, `seq`, `reason`               | the event bus dropped an event for one subscriber (`full` mailbox, or gone) |
//! | `cache-sweep`        | `node`, `removed`, `entries`                        | the cache's sweeper dropped expired entries        |
//! | `limiter-clean`      | `node`, `removed`, `keys`                           | the rate limiter's cleaner removed full buckets    |
//! | `breaker`            | `node`, `breaker`, `from`, `to` (`closed` / `open` / `half-open`), `generation` | a circuit breaker changed state |
//! | `pool-reclaim`       | `node`, `pool`, `conn`, `holder`, `reason`          | a connection came back to the pool at its holder's `Down` |
//! | `pool-refuse`        | `node`, `pool`, `to`, `why` (`exhausted` / `queue-full`) | a checkout got no connection              |
//! | `buggify`            | `site`, `delay_ms` (delay sites)                    | a buggify point fired (see [`crate::buggify`](mod@crate::buggify))     |
//! | `fault`              | `fault` and the fault's own fields; `pid` (the process a process fault resolved) or `skipped` | the harness applied a fault, or had nothing to apply it to |
//! | `check`              | `invariant`, `result` (`ok` / `violated`), `msg`    | an invariant was evaluated (always-on invariants trace only violations) |
//! | `note`               | `node` (optional), `msg`                            | a scenario's own remark                            |
//!
//! Pids print as `<node.incarnation.id>`, references as `#node.incarnation.n`.
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

/// A remote message's content digest, as `send` and `deliver` print it (`digest=`): FNV-1a 32
/// over the encoded payload. It lets a trace reader match a delivery to the sends it could be;
/// two messages with equal bytes share a digest, so a match is a candidate, never a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub u32);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        let mut h: u32 = 0x811c_9dc5;
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
        Digest(h)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}
