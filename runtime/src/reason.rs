//! Why a process exited; also the reason an exit signal or a `Down` carries.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExitReason {
    /// The process finished its work. Links ignore it (unless trapping exits).
    Normal,
    /// Orderly shutdown, usually asked for by a supervisor.
    Shutdown,
    /// The untrappable kill request. Sent with [`Ctx::exit`](crate::Ctx::exit) it cannot be
    /// trapped and its target exits with [`Killed`](ExitReason::Killed). A process that itself
    /// exits with `Kill` sends `Kill` over its links, where it is an ordinary, trappable reason.
    Kill,
    /// What a process killed by an untrappable `Kill` (or by its node's shutdown) exits with,
    /// so its links and monitors see `Killed`, as in OTP; over a link it is trappable.
    Killed,
    /// Crashed (a panic, or a handler's own error).
    Error(String),
    /// The process did not exist (already dead, or a pid of an earlier node incarnation).
    NoProc,
    /// The process's node became unreachable.
    NoConnection,
}

impl ExitReason {
    pub fn error(msg: impl Into<String>) -> ExitReason {
        ExitReason::Error(msg.into())
    }

    /// `Normal` or `Shutdown`: what a transient child is not restarted for.
    pub fn is_clean(&self) -> bool {
        matches!(self, ExitReason::Normal | ExitReason::Shutdown)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::Kill => f.write_str("kill"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Error(e) => write!(f, "error: {e}"),
            ExitReason::NoProc => f.write_str("noproc"),
            ExitReason::NoConnection => f.write_str("noconnection"),
        }
    }
}
