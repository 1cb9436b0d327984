//! Leader election with terms, decided by [`consensus`]: the leader of a
//! term is the Raft leader of that term, so at most one leader per term (each member votes
//! once per term, a leader needs a majority of votes); a leader that has not heard from a
//! majority for an election timeout steps down, so none stays leader in a minority
//! partition (for at most that timeout it may still believe it leads: use a
//! [`lease`](super::lease) with fencing to act on leadership safely); followers learn the
//! leader from its first `AppendEntries`.
//!
//! One member per node, a supervised process ([`child_spec`]); its term and vote are on its
//! node's disk, synced before it answers a vote (consensus's stable storage, keyspace
//! `Config::dir`), so a restarted member never votes twice in a term. An [`ElectionStore`] is
//! the member's view of what it synced.

use serde::{Deserialize, Serialize};

use super::consensus::{self, ConsensusError, Role, Status, Store};
use crate::rt::Duration;
use crate::supervisor::ChildSpec;
use crate::{CallError, Ctx, Message, Node, Pid, StartError};

/// An election carries no commands: its log holds only the leaders' no-ops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoCommand {}

/// A member's view of its synced state (term, vote, the no-op log).
pub type ElectionStore = Store<NoCommand>;

/// What a member knows of the leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leadership {
    pub member: u32,
    pub term: u64,
    /// The leader of `term` as this member knows it (`None`: an election is under way, or
    /// this member is cut off).
    pub leader: Option<u32>,
    pub leader_pid: Option<Pid>,
    pub role: Role,
}

impl Leadership {
    /// This member leads `term`.
    pub fn leading(&self) -> bool {
        self.role == Role::Leader
    }
}

impl From<Status> for Leadership {
    fn from(s: Status) -> Leadership {
        Leadership {
            member: s.member,
            term: s.term,
            leader: s.leader,
            leader_pid: s.leader_pid,
            role: s.role,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    #[error("election member unreachable: {0}")]
    Unreachable(#[from] CallError),
    #[error("the member has too many watchers")]
    Busy,
}

impl From<ConsensusError> for ElectionError {
    fn from(e: ConsensusError) -> ElectionError {
        match e {
            ConsensusError::Call(c) => ElectionError::Unreachable(c),
            ConsensusError::Watch(_) | ConsensusError::Propose(_) => ElectionError::Busy,
        }
    }
}

/// An election over `members` (node indexes), registered as `name` on each.
pub fn config(name: &str, members: Vec<u32>, seed: u64) -> consensus::Config {
    consensus::Config::new(name, members, seed)
}

/// Starts this node's member, linked to `parent`.
pub async fn start(
    node: &Node,
    parent: Option<Pid>,
    config: consensus::Config,
    store: ElectionStore,
) -> Result<Pid, StartError> {
    consensus::start(node, parent, config, store).await
}

/// This node's member as a supervisor's child.
pub fn child_spec(config: consensus::Config, store: ElectionStore) -> ChildSpec {
    consensus::child_spec(config, store)
}

/// What member `member` knows now.
pub async fn leadership<M: Message>(
    ctx: &Ctx<M>,
    member: Pid,
    timeout: Duration,
) -> Result<Leadership, ElectionError> {
    Ok(consensus::status::<NoCommand, M>(ctx, member, timeout)
        .await?
        .into())
}

/// Waits (up to `timeout`) until member `member`'s term, role or leader differs from
/// `known`; returns what it knows then.
pub async fn changed<M: Message>(
    ctx: &Ctx<M>,
    member: Pid,
    known: &Leadership,
    timeout: Duration,
) -> Result<Leadership, ElectionError> {
    let status = Status {
        member: known.member,
        term: known.term,
        role: known.role,
        leader: known.leader,
        leader_pid: known.leader_pid,
        commit: 0,
        last_index: 0,
    };
    Ok(
        consensus::watch::<NoCommand, M>(ctx, member, &status, timeout)
            .await?
            .into(),
    )
}
