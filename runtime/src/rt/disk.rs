//! Durable storage: each node's disk, a key-value store whose writes are buffered until
//! [`Disk::sync`].
//!
//! Under simulation the disk is [`crate::disk::Store`] kept by the world for each node (a
//! simulator plugin, outside the node's tasks, no real I/O): a node's kill (`crash-node`, and
//! the kill before every `restart-node`) loses every unsynced write, and the restarted node
//! reads exactly what was synced. The harness's disk faults act on it: `disk-stall` delays
//! every operation, `disk-full` fails writes with [`DiskError::Full`], `disk-corrupt` damages a
//! record so that reading it is [`DiskError::Corrupt`].
//!
//! In the real build a disk is a directory: one file per key (its name the key in hex), holding
//! a CRC-32 and the bytes; `sync` writes each buffered record to a temporary file, fsyncs it,
//! renames it into place and fsyncs the directory. Dropping a `Disk` without a sync loses its
//! buffered writes, as a crash does; a new `Disk` on the same directory reads what was synced.
//! A failed file operation is [`DiskError::Io`] naming the path (a directory that cannot be
//! created, one that vanished), and a failed sync keeps the writes it did not make buffered.
//! A record file whose checksum does not match (flipped, truncated, or another key's) is
//! [`DiskError::Corrupt`]. `runtime/tests/real_disk.rs` checks each of these. (Blocking file
//! calls: this is the simple durable store a scenario or a small service needs, not a
//! database.)

pub use crate::disk::DiskError;

/// A handle on the calling node's disk, within the keyspace `dir`.
pub struct Disk {
    inner: backend::Disk,
}

impl Disk {
    /// The longest key, in bytes: in the real build a key's file name is its bytes in hex, and
    /// its temporary twin (`.tmp`) must still fit a file name (255 bytes).
    pub const MAX_KEY: usize = 125;

    /// Opens keyspace `dir` of the calling node's disk (real build: the directory `dir`,
    /// created if missing).
    pub fn open(dir: &str) -> Result<Disk, DiskError> {
        if dir.is_empty() {
            return Err(DiskError::BadKey(dir.into()));
        }
        Ok(Disk {
            inner: backend::Disk::open(dir)?,
        })
    }

    /// Buffers a write of `key`; durable only after [`Disk::sync`].
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), DiskError> {
        check_key(key)?;
        self.inner.put(key, value).await
    }

    /// Buffers a delete of `key`; durable only after [`Disk::sync`].
    pub async fn delete(&self, key: &str) -> Result<(), DiskError> {
        check_key(key)?;
        self.inner.delete(key).await
    }

    /// The newest value of `key` (unsynced writes included); a damaged record is
    /// [`DiskError::Corrupt`], never data.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError> {
        check_key(key)?;
        self.inner.get(key).await
    }

    /// Makes every write so far durable.
    pub async fn sync(&self) -> Result<(), DiskError> {
        self.inner.sync().await
    }
}

fn check_key(key: &str) -> Result<(), DiskError> {
    if key.is_empty() || key.len() > Disk::MAX_KEY {
        return Err(DiskError::BadKey(key.into()));
    }
    Ok(())
}

#[cfg(madsim)]
pub(super) mod backend {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, MutexGuard};

    use madsim::plugin::{self, Simulator};
    use madsim::rand::GlobalRng;
    use madsim::task::NodeId;
    use madsim::time::TimeHandle;

    use super::DiskError;
    use crate::disk::Store;
    use crate::rt::Duration;

    #[derive(Default)]
    struct NodeDisk {
        store: Store,
        stall: Duration,
    }

    /// Every node's disk, kept by the world (a madsim simulator plugin).
    #[derive(Default)]
    pub(in crate::rt) struct Disks {
        nodes: Mutex<BTreeMap<NodeId, NodeDisk>>,
    }

    impl Simulator for Disks {
        fn new(_rand: &GlobalRng, _time: &TimeHandle, _config: &madsim::Config) -> Self {
            Disks::default()
        }

        /// madsim calls this when it kills a node: power loss.
        fn reset_node(&self, id: NodeId) {
            if let Some(disk) = self.lock().get_mut(&id) {
                disk.store.crash();
            }
        }
    }

    impl Disks {
        fn lock(&self) -> MutexGuard<'_, BTreeMap<NodeId, NodeDisk>> {
            self.nodes.lock().unwrap_or_else(|e| e.into_inner())
        }

        pub(in crate::rt) fn stall(&self, node: NodeId, latency: Duration) {
            self.lock().entry(node).or_default().stall = latency;
        }

        pub(in crate::rt) fn full(&self, node: NodeId, full: bool) {
            self.lock().entry(node).or_default().store.full = full;
        }

        pub(in crate::rt) fn corrupt(&self, node: NodeId) -> Option<String> {
            self.lock().get_mut(&node)?.store.corrupt()
        }

        pub(in crate::rt) fn unsynced(&self, node: NodeId) -> usize {
            self.lock().get(&node).map_or(0, |d| d.store.unsynced())
        }
    }

    pub(in crate::rt) struct Disk {
        node: NodeId,
        dir: String,
        disks: Arc<Disks>,
    }

    impl Disk {
        pub(in crate::rt) fn open(dir: &str) -> Result<Disk, DiskError> {
            Ok(Disk {
                node: plugin::node(),
                dir: dir.to_string(),
                disks: plugin::simulator::<Disks>(),
            })
        }

        fn path(&self, key: &str) -> String {
            format!("{}/{key}", self.dir)
        }

        /// Waits out a `disk-stall`, then runs `op` on the node's store.
        async fn with<T>(&self, op: impl FnOnce(&mut Store) -> T) -> T {
            let stall = self
                .disks
                .lock()
                .get(&self.node)
                .map_or(Duration::ZERO, |d| d.stall);
            if !stall.is_zero() {
                crate::rt::sleep(stall).await;
            }
            op(&mut self.disks.lock().entry(self.node).or_default().store)
        }

        pub(in crate::rt) async fn put(&self, key: &str, value: &[u8]) -> Result<(), DiskError> {
            let path = self.path(key);
            self.with(|s| s.put(&path, value)).await
        }

        pub(in crate::rt) async fn delete(&self, key: &str) -> Result<(), DiskError> {
            let path = self.path(key);
            self.with(|s| s.delete(&path)).await;
            Ok(())
        }

        pub(in crate::rt) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError> {
            let path = self.path(key);
            let got = self.with(|s| s.get(&path)).await;
            // Report the caller's key, not the store's path.
            got.map_err(|e| match e {
                DiskError::Corrupt { .. } => DiskError::Corrupt { key: key.into() },
                other => other,
            })
        }

        pub(in crate::rt) async fn sync(&self) -> Result<(), DiskError> {
            self.with(Store::sync).await;
            Ok(())
        }
    }
}

#[cfg(not(madsim))]
pub(super) mod backend {
    use std::fs;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use super::DiskError;
    use crate::disk::Record;

    /// The error for a failed file operation on `path`: `Full` for ENOSPC, else one naming
    /// the path.
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
        move |e| {
            if e.raw_os_error() == Some(28) {
                DiskError::Full
            } else {
                DiskError::Io(format!("{}: {e}", path.display()))
            }
        }
    }

    pub(in crate::rt) struct Disk {
        dir: PathBuf,
        pending: Mutex<Vec<(String, Option<Vec<u8>>)>>,
    }

    impl Disk {
        pub(in crate::rt) fn open(dir: &str) -> Result<Disk, DiskError> {
            let dir = PathBuf::from(dir);
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            Ok(Disk {
                dir,
                pending: Mutex::new(Vec::new()),
            })
        }

        fn pending(&self) -> std::sync::MutexGuard<'_, Vec<(String, Option<Vec<u8>>)>> {
            self.pending.lock().unwrap_or_else(|e| e.into_inner())
        }

        fn file(&self, key: &str) -> PathBuf {
            let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
            self.dir.join(hex)
        }

        pub(in crate::rt) async fn put(&self, key: &str, value: &[u8]) -> Result<(), DiskError> {
            self.pending().push((key.to_string(), Some(value.to_vec())));
            Ok(())
        }

        pub(in crate::rt) async fn delete(&self, key: &str) -> Result<(), DiskError> {
            self.pending().push((key.to_string(), None));
            Ok(())
        }

        pub(in crate::rt) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError> {
            if let Some((_, v)) = self.pending().iter().rev().find(|(k, _)| k == key) {
                return Ok(v.clone());
            }
            let file = self.file(key);
            let bytes = match fs::read(&file) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io(&file)(e)),
            };
            let corrupt = || DiskError::Corrupt { key: key.into() };
            let (crc, data) = bytes.split_first_chunk::<4>().ok_or_else(corrupt)?;
            Record {
                data: data.to_vec(),
                crc: u32::from_le_bytes(*crc),
            }
            .verify(key)
            .map(Some)
        }

        /// Writes one buffered record (or delete) to its file.
        fn write(&self, key: &str, value: Option<&[u8]>) -> Result<(), DiskError> {
            let file = self.file(key);
            match value {
                Some(data) => {
                    let record = Record::new(key, data);
                    let tmp = file.with_extension("tmp");
                    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
                    f.write_all(&record.crc.to_le_bytes()).map_err(io(&tmp))?;
                    f.write_all(&record.data).map_err(io(&tmp))?;
                    f.sync_all().map_err(io(&tmp))?;
                    fs::rename(&tmp, &file).map_err(io(&file))
                }
                None => match fs::remove_file(&file) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io(&file)(e)),
                },
            }
        }

        pub(in crate::rt) async fn sync(&self) -> Result<(), DiskError> {
            let writes: Vec<_> = self.pending().drain(..).collect();
            for (i, (key, value)) in writes.iter().enumerate() {
                if let Err(e) = self.write(key, value.as_deref()) {
                    // The failed write and those after it stay buffered, ahead of any newer
                    // ones, so a later sync can still make them durable.
                    let mut pending = self.pending();
                    let newer = std::mem::take(&mut *pending);
                    pending.extend(writes[i..].iter().cloned());
                    pending.extend(newer);
                    return Err(e);
                }
            }
            fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&self.dir))
        }
    }
}
