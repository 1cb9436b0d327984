//! A member's stable storage on its node's disk ([`rt::Disk`]): Raft's `currentTerm`,
//! `votedFor` and log, plus the commit index.
//!
//! Layout, within the member's keyspace (`Config::dir`):
//!
//! - `meta`: the term, the vote, the commit index, the log's length, and the log's terms as
//!   runs (`(first index, term)`, one per change of term).
//! - `e{index}.{term}`: one entry. An entry is never rewritten under its key: by log matching
//!   an index and a term name one entry, so a conflicting leader's entry gets a new key.
//!
//! A save writes the new entries, then `meta`, then deletes the entries `meta` no longer
//! names, and syncs. `meta` decides what the log is, so a save torn anywhere (a crash in the
//! middle of a real sync, a write refused by a full disk) leaves either the old `meta`, whose
//! entries are all still there, or the new one, written after its entries. What is read back
//! is exactly what a sync made durable; a record that fails its checksum, does not decode, or
//! is missing where `meta` names it is a [`StoreError`], never data.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::core::{Durable, Entry};
use crate::rt::{Disk, DiskError};

/// The key of the member's term, vote, commit index and log shape.
const META: &str = "meta";
/// Largest record read back (a log entry is far smaller: it also travels in a datagram).
const MAX_RECORD: u64 = 16 << 20;

/// Why a member's stable storage could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The disk refused the operation, or a record failed its checksum
    /// ([`DiskError::Corrupt`]).
    #[error("raft disk: {0}")]
    Disk(#[from] DiskError),
    /// A record passed its checksum but is not what this member writes there.
    #[error("raft record `{key}` is malformed: {why}")]
    Malformed { key: String, why: String },
    /// `meta` names an entry the disk does not hold.
    #[error("raft record `{key}` is missing")]
    Missing { key: String },
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(MAX_RECORD)
        .reject_trailing_bytes()
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    options()
        .serialize(value)
        .map_err(|e| StoreError::Malformed {
            key: key.into(),
            why: e.to_string(),
        })
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    options()
        .deserialize(bytes)
        .map_err(|e| StoreError::Malformed {
            key: key.into(),
            why: e.to_string(),
        })
}

fn entry_key(index: u64, term: u64) -> String {
    format!("e{index}.{term}")
}

/// What `meta` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    term: u64,
    voted_for: Option<u32>,
    commit: u64,
    len: u64,
    /// `(first index, term)` of each run of entries of one term, in index order.
    runs: Vec<(u64, u64)>,
}

impl Meta {
    fn term_at(&self, index: u64) -> Option<u64> {
        if index == 0 || index > self.len {
            return None;
        }
        let run = self.runs.partition_point(|(first, _)| *first <= index);
        run.checked_sub(1).map(|r| self.runs[r].1)
    }

    /// The runs are in strictly increasing index and term order, start at 1 and fit the log.
    fn check(&self) -> Result<(), String> {
        if self.len == 0 {
            return if self.runs.is_empty() {
                Ok(())
            } else {
                Err("runs in an empty log".into())
            };
        }
        if self.runs.first().map(|r| r.0) != Some(1) {
            return Err("the first run does not start at 1".into());
        }
        let ordered = self
            .runs
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
        let last = self.runs.last().expect("non-empty");
        if !ordered || last.0 > self.len || last.1 > self.term {
            return Err("runs out of order or past the log".into());
        }
        if self.commit > self.len {
            return Err("commit past the log".into());
        }
        Ok(())
    }
}

/// A member's handle on its stable storage: the disk, and what it last made durable there.
pub(super) struct Stable {
    disk: Disk,
    saved: Meta,
}

impl Stable {
    /// Opens keyspace `dir` of this node's disk and reads what was synced there (an empty
    /// state if nothing was).
    pub(super) async fn open<C: DeserializeOwned>(
        dir: &str,
    ) -> Result<(Stable, Durable<C>), StoreError> {
        let disk = Disk::open(dir)?;
        let (saved, durable) = read(&disk).await?;
        Ok((Stable { disk, saved }, durable))
    }

    /// Whether `d` differs from what was saved, given that the log may differ from index
    /// `dirty_from` on.
    pub(super) fn changed<C>(&self, d: &Durable<C>, dirty_from: Option<u64>) -> bool {
        dirty_from.is_some()
            || (d.term, d.voted_for, d.commit, d.last_index())
                != (
                    self.saved.term,
                    self.saved.voted_for,
                    self.saved.commit,
                    self.saved.len,
                )
    }

    /// What making `d` durable takes (the log may differ from index `dirty_from` on): the
    /// writes, in order, and the new `meta`. Run them with [`Stable::apply`].
    pub(super) fn plan<C: Serialize>(
        &self,
        d: &Durable<C>,
        dirty_from: Option<u64>,
    ) -> Result<Save, StoreError> {
        let from = dirty_from
            .unwrap_or(d.last_index() + 1)
            .clamp(1, d.last_index() + 1);
        let mut runs: Vec<(u64, u64)> = self
            .saved
            .runs
            .iter()
            .copied()
            .filter(|(first, _)| *first < from)
            .collect();
        let mut writes = Vec::new();
        for index in from..=d.last_index() {
            let entry = &d.log[index as usize - 1];
            let key = entry_key(index, entry.term);
            let bytes = encode(&key, entry)?;
            writes.push((key, Some(bytes)));
            if runs.last().is_none_or(|r| r.1 != entry.term) {
                runs.push((index, entry.term));
            }
        }
        let meta = Meta {
            term: d.term,
            voted_for: d.voted_for,
            commit: d.commit,
            len: d.last_index(),
            runs,
        };
        writes.push((META.to_string(), Some(encode(META, &meta)?)));
        // Entries the old log had from `from` on that the new one does not.
        for index in from..=self.saved.len {
            let old = self.saved.term_at(index).expect("index within the old log");
            if meta.term_at(index) != Some(old) {
                writes.push((entry_key(index, old), None));
            }
        }
        Ok(Save { writes, meta })
    }

    /// Runs a [`Stable::plan`]'s writes and syncs; returns once they are durable.
    pub(super) async fn apply(&mut self, save: Save) -> Result<(), StoreError> {
        for (key, value) in &save.writes {
            match value {
                Some(bytes) => self.disk.put(key, bytes).await?,
                None => self.disk.delete(key).await?,
            }
        }
        self.disk.sync().await?;
        self.saved = save.meta;
        Ok(())
    }
}

/// A save's writes (`None`: a delete) and the `meta` it ends with.
pub(super) struct Save {
    writes: Vec<(String, Option<Vec<u8>>)>,
    meta: Meta,
}

/// Reads keyspace `dir` of this node's disk as a member would at start: what was synced.
/// Run it on the node (a process or task of that node).
pub async fn load<C: DeserializeOwned>(dir: &str) -> Result<Durable<C>, StoreError> {
    let disk = Disk::open(dir)?;
    Ok(read(&disk).await?.1)
}

async fn read<C: DeserializeOwned>(disk: &Disk) -> Result<(Meta, Durable<C>), StoreError> {
    let Some(bytes) = disk.get(META).await? else {
        return Ok((Meta::default(), Durable::default()));
    };
    let meta: Meta = decode(META, &bytes)?;
    meta.check().map_err(|why| StoreError::Malformed {
        key: META.into(),
        why,
    })?;
    let mut log = Vec::new();
    for index in 1..=meta.len {
        let term = meta.term_at(index).expect("checked: runs cover the log");
        let key = entry_key(index, term);
        let bytes = disk
            .get(&key)
            .await?
            .ok_or_else(|| StoreError::Missing { key: key.clone() })?;
        let entry: Entry<C> = decode(&key, &bytes)?;
        if entry.term != term {
            return Err(StoreError::Malformed {
                key,
                why: format!("holds an entry of term {}", entry.term),
            });
        }
        log.push(entry);
    }
    let durable = Durable {
        term: meta.term,
        voted_for: meta.voted_for,
        log,
        commit: meta.commit,
    };
    Ok((meta, durable))
}
