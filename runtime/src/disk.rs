//! A node's simulated disk: a key-value store whose writes are buffered until `sync`, as a page
//! cache buffers them until `fsync`. [`rt::Disk`](crate::rt::Disk) is the API; this is the
//! state the simulated world keeps for each node, outside the node's tasks, so a crash
//! (`crash-node`, or the kill before a `restart-node`) loses exactly the unsynced writes and a
//! restarted node sees exactly what was synced.
//!
//! Every record carries a CRC-32 of its key and bytes, checked on every read: a record damaged
//! by `disk-corrupt` (the last unsynced write, or a torn last synced one) reads as
//! [`DiskError::Corrupt`], never as data. CRC-32 (IEEE, computed here bit by bit) rather than a
//! crate: it detects every burst error up to 32 bits, which is what a torn or flipped record is,
//! and a dozen lines need no new dependency; it is not a defence against a forger, which a
//! simulated disk has none of.

use std::collections::BTreeMap;

/// Why a disk operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiskError {
    /// The disk has no room (the `disk-full` fault, or a full real disk): the write was not made.
    #[error("disk full")]
    Full,
    /// The record's checksum does not match its bytes: it was damaged (torn or corrupted).
    #[error("record `{key}` is corrupt (checksum mismatch)")]
    Corrupt { key: String },
    /// A name the disk cannot store (empty, or a real file name it cannot be).
    #[error("invalid key `{0}`")]
    BadKey(String),
    /// Any other I/O failure (real build only).
    #[error("disk I/O: {0}")]
    Io(String),
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) of `parts` in order.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for part in parts {
        for &byte in *part {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                let mask = (crc & 1).wrapping_neg();
                crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
            }
        }
    }
    !crc
}

/// A stored value and the checksum written with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub data: Vec<u8>,
    pub crc: u32,
}

impl Record {
    pub fn new(key: &str, data: &[u8]) -> Record {
        Record {
            data: data.to_vec(),
            crc: crc32(&[key.as_bytes(), data]),
        }
    }

    /// The bytes, if the checksum still matches them.
    pub fn verify(&self, key: &str) -> Result<Vec<u8>, DiskError> {
        if crc32(&[key.as_bytes(), &self.data]) == self.crc {
            Ok(self.data.clone())
        } else {
            Err(DiskError::Corrupt { key: key.into() })
        }
    }

    /// Damages the record as a torn write does: its tail is lost (or, if empty, garbage
    /// appears), and the checksum no longer matches.
    fn tear(&mut self) {
        if self.data.is_empty() {
            self.data.push(0xa5);
        } else {
            let keep = self.data.len() / 2;
            self.data.truncate(keep);
            self.data.push(0xa5);
        }
    }
}

/// One node's disk: durable records, then the writes made since the last sync, in order
/// (`None`: a delete).
#[derive(Debug, Default)]
pub struct Store {
    durable: BTreeMap<String, Record>,
    pending: Vec<(String, Option<Record>)>,
    /// The key synced last, for a torn write when nothing is pending.
    last_synced: Option<String>,
    /// `disk-full`: writes fail with [`DiskError::Full`].
    pub full: bool,
}

impl Store {
    pub fn put(&mut self, key: &str, data: &[u8]) -> Result<(), DiskError> {
        if self.full {
            return Err(DiskError::Full);
        }
        self.pending
            .push((key.to_string(), Some(Record::new(key, data))));
        Ok(())
    }

    pub fn delete(&mut self, key: &str) {
        self.pending.push((key.to_string(), None));
    }

    /// The newest value of `key`, unsynced writes included (as reads through a page cache see
    /// them), checked against its checksum.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError> {
        let newest = match self.pending.iter().rev().find(|(k, _)| k == key) {
            Some((_, record)) => record.as_ref(),
            None => self.durable.get(key),
        };
        newest.map(|r| r.verify(key)).transpose()
    }

    /// Makes every write so far durable.
    pub fn sync(&mut self) {
        for (key, record) in self.pending.drain(..) {
            match record {
                Some(r) => {
                    self.durable.insert(key.clone(), r);
                    self.last_synced = Some(key);
                }
                None => {
                    self.durable.remove(&key);
                }
            }
        }
    }

    /// Power loss: every unsynced write is gone.
    pub fn crash(&mut self) {
        self.pending.clear();
    }

    /// Writes made since the last sync.
    pub fn unsynced(&self) -> usize {
        self.pending.len()
    }

    /// `disk-corrupt`: damages the last unsynced write, or if there is none the last synced
    /// record (a torn write found later). `None` when there was nothing to damage; otherwise
    /// the key damaged.
    pub fn corrupt(&mut self) -> Option<String> {
        if let Some((key, Some(record))) = self.pending.iter_mut().rev().find(|(_, r)| r.is_some())
        {
            record.tear();
            return Some(key.clone());
        }
        let key = self.last_synced.clone()?;
        self.durable.get_mut(&key)?.tear();
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The CRC-32/ISO-HDLC check value of "123456789".
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
    }

    #[test]
    fn a_crash_loses_exactly_the_unsynced_writes() {
        let mut s = Store::default();
        s.put("a", b"1").unwrap();
        s.sync();
        s.put("a", b"2").unwrap();
        s.put("b", b"3").unwrap();
        s.delete("a");
        assert_eq!(s.get("a"), Ok(None), "reads see unsynced writes");
        s.crash();
        assert_eq!(s.get("a"), Ok(Some(b"1".to_vec())));
        assert_eq!(s.get("b"), Ok(None));
        assert_eq!(s.unsynced(), 0);
    }

    #[test]
    fn a_damaged_record_is_reported_never_returned() {
        let mut s = Store::default();
        s.put("k", b"value").unwrap();
        assert_eq!(s.corrupt().as_deref(), Some("k"));
        assert_eq!(s.get("k"), Err(DiskError::Corrupt { key: "k".into() }));
        s.sync();
        assert!(
            s.get("k").is_err(),
            "a damaged write stays damaged once synced"
        );
        s.put("j", b"fine").unwrap();
        s.sync();
        assert_eq!(
            s.corrupt().as_deref(),
            Some("j"),
            "else the last synced record tears"
        );
        assert!(s.get("j").is_err());
        s.full = true;
        assert_eq!(s.put("x", b""), Err(DiskError::Full));
    }
}
