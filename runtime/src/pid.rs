//! Process identifiers and references.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A process: the node it runs on, that node's incarnation when it was spawned, and a per-node
/// counter. A node's incarnation changes on every restart, so a pid from before a crash never
/// reaches a process started after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pid {
    pub node: u32,
    pub incarnation: u64,
    pub id: u64,
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}.{}.{}>", self.node, self.incarnation, self.id)
    }
}

/// A unique reference (monitors, calls, timers), made by one node incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ref {
    pub node: u32,
    pub incarnation: u64,
    pub n: u64,
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}.{}", self.node, self.incarnation, self.n)
    }
}
