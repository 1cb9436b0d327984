//! The agent table and its secondary indexes: staging a batch, committing it in one step, and
//! paged reads. No I/O and no locking here; `agents.rs` decides who may hold it how.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::{Agent, AgentId, Cursor, Health, Index, Op, OpError, Page};
use crate::Pid;

/// The committed agents, the indexes derived from them, and how many transactions committed.
///
/// Every index is updated in [`Table::put`], the one place an entry changes, so they cannot drift
/// from the entries; [`Table::check_invariants`] rebuilds them from scratch to prove it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Table {
    agents: BTreeMap<AgentId, Agent>,
    by_capability: BTreeMap<String, BTreeSet<AgentId>>,
    by_health: BTreeMap<Health, BTreeSet<AgentId>>,
    by_node: BTreeMap<u32, BTreeSet<AgentId>>,
    by_pid: BTreeMap<Pid, AgentId>,
    version: u64,
}

/// A validated batch: the final value of every entry it touches (`None`: removed), ready to
/// commit. Committing it cannot fail.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    changes: BTreeMap<AgentId, Option<Agent>>,
}

impl Staged {
    pub(crate) fn len(&self) -> usize {
        self.changes.len()
    }
}

impl Table {
    pub(crate) fn len(&self) -> usize {
        self.agents.len()
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }

    pub(crate) fn id_of_pid(&self, pid: Pid) -> Option<&AgentId> {
        self.by_pid.get(&pid)
    }

    /// Validates `ops` in order against this table plus the batch's own earlier ops, touching
    /// nothing. `before_op(i, op)` runs before op `i` is looked at (the fault-injection point).
    /// Fails with the first failing op's index.
    pub(crate) fn stage(
        &self,
        ops: &[Op],
        max_agents: usize,
        mut before_op: impl FnMut(usize, &Op),
    ) -> Result<Staged, (usize, OpError)> {
        let mut staged = Staged::default();
        let mut count = self.agents.len();
        for (i, op) in ops.iter().enumerate() {
            before_op(i, op);
            let fail = |e| (i, e);
            match op {
                Op::Register(agent) => {
                    agent.validate().map_err(fail)?;
                    if self.view(&staged, &agent.id).is_some() {
                        return Err(fail(OpError::AlreadyRegistered(agent.id.clone())));
                    }
                    if count >= max_agents {
                        return Err(fail(OpError::Full { max: max_agents }));
                    }
                    self.check_pid_free(&staged, agent).map_err(fail)?;
                    count += 1;
                    staged.changes.insert(agent.id.clone(), Some(agent.clone()));
                }
                Op::Update(agent) => {
                    agent.validate().map_err(fail)?;
                    if self.view(&staged, &agent.id).is_none() {
                        return Err(fail(OpError::NotFound(agent.id.clone())));
                    }
                    self.check_pid_free(&staged, agent).map_err(fail)?;
                    staged.changes.insert(agent.id.clone(), Some(agent.clone()));
                }
                Op::SetHealth { id, health } => {
                    let Some(current) = self.view(&staged, id) else {
                        return Err(fail(OpError::NotFound(id.clone())));
                    };
                    let mut next = current.clone();
                    next.health = *health;
                    staged.changes.insert(id.clone(), Some(next));
                }
                Op::Unregister(id) => {
                    if self.view(&staged, id).is_none() {
                        return Err(fail(OpError::NotFound(id.clone())));
                    }
                    count -= 1;
                    staged.changes.insert(id.clone(), None);
                }
            }
        }
        Ok(staged)
    }

    /// Applies a staged batch and counts one more committed transaction. Infallible: every
    /// check was made while staging, against this same table (the registry is the only writer).
    pub(crate) fn commit(&mut self, staged: Staged) -> u64 {
        for (id, value) in staged.changes {
            self.put(id, value);
        }
        self.version += 1;
        self.version
    }

    /// The entry `id` as the batch staged so far sees it.
    fn view<'a>(&'a self, staged: &'a Staged, id: &str) -> Option<&'a Agent> {
        match staged.changes.get(id) {
            Some(change) => change.as_ref(),
            None => self.agents.get(id),
        }
    }

    /// An agent's pid must not name another agent, as the batch staged so far sees them.
    fn check_pid_free(&self, staged: &Staged, agent: &Agent) -> Result<(), OpError> {
        let Some(pid) = agent.pid else {
            return Ok(());
        };
        let staged_owner = staged.changes.iter().find_map(|(id, a)| {
            a.as_ref()
                .filter(|a| a.pid == Some(pid) && *id != agent.id)
                .map(|_| id)
        });
        let committed_owner = self.by_pid.get(&pid).filter(|owner| {
            **owner != agent.id
                && self
                    .view(staged, owner)
                    .is_some_and(|now| now.pid == Some(pid))
        });
        match staged_owner.or(committed_owner) {
            Some(owner) => Err(OpError::PidInUse {
                pid,
                owner: owner.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The only place an entry changes: the old value leaves every index, the new one enters.
    fn put(&mut self, id: AgentId, value: Option<Agent>) {
        if let Some(old) = self.agents.remove(&id) {
            for cap in &old.capabilities {
                remove_from(&mut self.by_capability, cap, &id);
            }
            remove_from(&mut self.by_health, &old.health, &id);
            remove_from(&mut self.by_node, &old.node, &id);
            // A batch may hand this pid to another agent committed just before (changes commit
            // in id order), so only drop the index entry if it is still this agent's.
            if let Some(pid) = old.pid {
                if self.by_pid.get(&pid) == Some(&id) {
                    self.by_pid.remove(&pid);
                }
            }
        }
        if let Some(new) = value {
            for cap in &new.capabilities {
                self.by_capability
                    .entry(cap.clone())
                    .or_default()
                    .insert(id.clone());
            }
            self.by_health
                .entry(new.health)
                .or_default()
                .insert(id.clone());
            self.by_node.entry(new.node).or_default().insert(id.clone());
            if let Some(pid) = new.pid {
                self.by_pid.insert(pid, id.clone());
            }
            self.agents.insert(id, new);
        }
    }

    /// Up to `page_size` agents in `index`, in id order, after `after`. Reads only the page
    /// (plus one id to know whether more follow).
    pub(crate) fn index_page(
        &self,
        index: &Index,
        after: Option<&Cursor>,
        page_size: usize,
    ) -> Page {
        let ids = match index {
            Index::Capability(c) => self.by_capability.get(c),
            Index::Health(h) => self.by_health.get(h),
            Index::Node(n) => self.by_node.get(n),
        };
        let Some(ids) = ids else {
            return Page::default();
        };
        let start = after.map_or(Bound::Unbounded, |c| Bound::Excluded(&c.after));
        let mut range = ids.range::<AgentId, _>((start, Bound::Unbounded));
        let items: Vec<Agent> = range
            .by_ref()
            .take(page_size)
            .map(|id| self.agents[id].clone())
            .collect();
        let next = match (range.next(), items.last()) {
            (Some(_), Some(last)) => Some(Cursor {
                after: last.id.clone(),
            }),
            _ => None,
        };
        Page { items, next }
    }

    /// Agents matching `pred`, in id order after `after`: stops at `page_size` matches or after
    /// examining `budget` entries, whichever comes first, so one page never walks the whole
    /// table. `next` is set when entries remain past where the page stopped.
    pub(crate) fn scan_page(
        &self,
        pred: &dyn Fn(&Agent) -> bool,
        after: Option<&Cursor>,
        page_size: usize,
        budget: usize,
    ) -> Page {
        let start = after.map_or(Bound::Unbounded, |c| Bound::Excluded(&c.after));
        let mut range = self.agents.range::<AgentId, _>((start, Bound::Unbounded));
        let mut items = Vec::new();
        let mut last = None;
        for (examined, (id, agent)) in range.by_ref().enumerate() {
            if pred(agent) {
                items.push(agent.clone());
            }
            last = Some(id);
            if items.len() >= page_size || examined + 1 >= budget {
                break;
            }
        }
        let next = match (range.next(), last) {
            (Some(_), Some(last)) => Some(Cursor {
                after: last.clone(),
            }),
            _ => None,
        };
        Page { items, next }
    }

    /// Rebuilds every index from the entries and compares; the first difference, if any.
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        let mut rebuilt = Table::default();
        for (id, agent) in &self.agents {
            if *id != agent.id {
                return Err(format!("entry under key {id} has id {}", agent.id));
            }
            if let Some(pid) = agent.pid {
                if rebuilt.by_pid.contains_key(&pid) {
                    return Err(format!("pid {pid} names two agents"));
                }
            }
            rebuilt.put(id.clone(), Some(agent.clone()));
        }
        if rebuilt.by_capability != self.by_capability {
            return Err("capability index differs from the entries".into());
        }
        if rebuilt.by_health != self.by_health {
            return Err("health index differs from the entries".into());
        }
        if rebuilt.by_node != self.by_node {
            return Err("node index differs from the entries".into());
        }
        if rebuilt.by_pid != self.by_pid {
            return Err("pid index differs from the entries".into());
        }
        Ok(())
    }
}

fn remove_from<K: Ord>(index: &mut BTreeMap<K, BTreeSet<AgentId>>, key: &K, id: &str) {
    if let Some(ids) = index.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}
