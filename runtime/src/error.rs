//! Typed errors of the process layer. A condition a caller can observe is one of these; a broken
//! runtime invariant is a panic.

use std::fmt;

use crate::{ExitReason, Pid};

/// A send that did not happen; the message is handed back.
pub enum SendError<M> {
    /// The receiver's mailbox is at capacity, or (remote) the outbound queue to its node is.
    Full { to: Pid, msg: M },
    /// The receiver does not exist (dead, never existed, or an earlier node incarnation).
    NoProc { to: Pid, msg: M },
    /// Encoded for the network, the message is over the frame size limit.
    TooLarge { to: Pid, size: usize, msg: M },
    /// The message could not be encoded for the network.
    Encode { to: Pid, error: String, msg: M },
}

impl<M> SendError<M> {
    /// The message that was not sent.
    pub fn into_message(self) -> M {
        match self {
            SendError::Full { msg, .. }
            | SendError::NoProc { msg, .. }
            | SendError::TooLarge { msg, .. }
            | SendError::Encode { msg, .. } => msg,
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full { to, .. } => write!(f, "mailbox of {to} is full"),
            SendError::NoProc { to, .. } => write!(f, "no process {to}"),
            SendError::TooLarge { to, size, .. } => {
                write!(f, "message to {to} is {size} bytes, over the frame limit")
            }
            SendError::Encode { to, error, .. } => write!(f, "message to {to}: {error}"),
        }
    }
}

impl<M> std::error::Error for SendError<M> {}

/// Why a call returned without a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no reply within the timeout")]
    Timeout,
    #[error("no such process")]
    NoProc,
    #[error("the callee's node is down")]
    NodeDown,
    #[error("the callee exited: {0}")]
    Exited(ExitReason),
    /// The request could not be queued (full mailbox) or encoded (size limit); nothing was sent.
    #[error("request not sent: {0}")]
    NotSent(String),
    /// A reply arrived but was not of the expected type.
    #[error("reply could not be decoded: {0}")]
    BadReply(String),
}

/// Why a process, child or supervisor did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StartError {
    /// The process's `init` failed, or it exited before acknowledging its start.
    #[error("init failed: {0}")]
    Init(ExitReason),
    /// A supervisor's child failed to start; start-up stopped there.
    #[error("child `{id}` failed to start: {error}")]
    Child { id: String, error: Box<StartError> },
    /// The configuration was rejected before anything started.
    #[error("invalid spec: {0}")]
    Invalid(String),
}
