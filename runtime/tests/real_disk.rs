//! The real build's disk: a directory of files, durable only after `sync` (fsync), whose damaged
//! records are reported as corruption, never returned as data.
#![cfg(not(madsim))]

use std::fs;
use std::path::{Path, PathBuf};

use futures::executor::block_on;
use groundhog_runtime::rt::{Disk, DiskError};

/// A directory of the test's own under the system's temp dir, named from the test and the
/// process, removed when dropped (also when the test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("groundhog-real-disk-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Scratch(dir)
    }

    fn path(&self, sub: &str) -> String {
        self.0
            .join(sub)
            .to_str()
            .expect("a UTF-8 temp dir")
            .to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The file the real disk keeps `key` in (module docs: the key's bytes in hex).
fn record_file(dir: &str, key: &str) -> PathBuf {
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    Path::new(dir).join(hex)
}

#[test]
fn synced_writes_survive_a_reopen_and_unsynced_ones_do_not() {
    let scratch = Scratch::new("reopen");
    let dir = scratch.path("store");
    {
        let disk = Disk::open(&dir).expect("a fresh directory opens");
        block_on(async {
            disk.put("kept", b"synced").await.unwrap();
            disk.put("second", b"also synced").await.unwrap();
            disk.put("deleted", b"synced, then deleted").await.unwrap();
            disk.sync().await.unwrap();
            disk.delete("deleted").await.unwrap();
            disk.sync().await.unwrap();
            disk.put("late", b"after the last sync").await.unwrap();
            disk.delete("kept").await.unwrap();
            // Reads see the unsynced writes.
            assert_eq!(
                disk.get("late").await,
                Ok(Some(b"after the last sync".to_vec()))
            );
            assert_eq!(disk.get("kept").await, Ok(None));
        });
        // Dropped without a sync: as a crash, the buffered writes are lost.
    }
    let disk = Disk::open(&dir).expect("the same directory opens again");
    block_on(async {
        assert_eq!(disk.get("kept").await, Ok(Some(b"synced".to_vec())));
        assert_eq!(disk.get("second").await, Ok(Some(b"also synced".to_vec())));
        assert_eq!(
            disk.get("deleted").await,
            Ok(None),
            "a synced delete is durable"
        );
        assert_eq!(
            disk.get("late").await,
            Ok(None),
            "an unsynced write is gone"
        );
        assert_eq!(disk.get("never").await, Ok(None));
    });
}

#[test]
fn a_damaged_record_is_reported_as_corrupt_never_returned() {
    let scratch = Scratch::new("corrupt");
    let dir = scratch.path("store");
    let disk = Disk::open(&dir).unwrap();
    block_on(async {
        disk.put("flipped", b"some bytes worth keeping")
            .await
            .unwrap();
        disk.put("torn", b"a record cut short").await.unwrap();
        disk.put("stub", b"x").await.unwrap();
        disk.put("intact", b"fine").await.unwrap();
        disk.sync().await.unwrap();
    });
    // One bit flipped in the data, a record cut in half, one shorter than its checksum.
    let file = record_file(&dir, "flipped");
    let mut bytes = fs::read(&file).expect("the record is a file named by the key in hex");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&file, &bytes).unwrap();
    let file = record_file(&dir, "torn");
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    fs::write(record_file(&dir, "stub"), [0u8, 1]).unwrap();
    // A record copied under another key's name: the checksum covers the key too.
    fs::copy(record_file(&dir, "intact"), record_file(&dir, "moved")).unwrap();

    let reopened = Disk::open(&dir).unwrap();
    block_on(async {
        for key in ["flipped", "torn", "stub", "moved"] {
            for d in [&disk, &reopened] {
                assert_eq!(
                    d.get(key).await,
                    Err(DiskError::Corrupt { key: key.into() }),
                    "{key}"
                );
            }
        }
        assert_eq!(reopened.get("intact").await, Ok(Some(b"fine".to_vec())));
    });
    let message = DiskError::Corrupt { key: "torn".into() }.to_string();
    assert!(
        message.contains("torn") && message.contains("corrupt"),
        "{message}"
    );
}

#[test]
fn an_unusable_directory_is_a_clear_error() {
    let scratch = Scratch::new("unusable");
    // A missing directory is created, parents included.
    let deep = scratch.path("a/b/c");
    Disk::open(&deep).expect("a missing directory is created");
    assert!(Path::new(&deep).is_dir());
    // A directory that cannot exist: its parent is a regular file.
    let file = scratch.path("plain-file");
    fs::write(&file, b"not a directory").unwrap();
    let under_file = format!("{file}/store");
    match Disk::open(&under_file) {
        Err(DiskError::Io(message)) => {
            assert!(message.contains(&under_file), "names the path: {message}");
        }
        Err(other) => panic!("expected an I/O error, got {other:?}"),
        Ok(_) => panic!("opened a directory under a regular file"),
    }
    // A directory that vanished after the open: writes buffer, the sync reports it.
    let gone = scratch.path("gone");
    let disk = Disk::open(&gone).unwrap();
    fs::remove_dir_all(&gone).unwrap();
    block_on(async {
        disk.put("k", b"v").await.unwrap();
        match disk.sync().await {
            Err(DiskError::Io(message)) => assert!(message.contains(&gone), "{message}"),
            other => panic!("expected an I/O error naming the directory, got {other:?}"),
        }
        // The failed sync kept the write buffered: once the directory is back, it syncs.
        fs::create_dir_all(&gone).unwrap();
        disk.sync().await.expect("the retried sync succeeds");
        let reopened = Disk::open(&gone).unwrap();
        assert_eq!(reopened.get("k").await, Ok(Some(b"v".to_vec())));
    });
    assert!(matches!(Disk::open(""), Err(DiskError::BadKey(_))));
    let disk = Disk::open(&scratch.path("keys")).unwrap();
    block_on(async {
        assert!(matches!(disk.put("", b"").await, Err(DiskError::BadKey(_))));
        // The longest key fits a file name (and its temporary twin); one byte more is refused.
        let longest = "k".repeat(Disk::MAX_KEY);
        disk.put(&longest, b"v").await.unwrap();
        disk.sync()
            .await
            .expect("the longest key is a valid file name");
        assert_eq!(disk.get(&longest).await, Ok(Some(b"v".to_vec())));
        let too_long = format!("{longest}k");
        assert!(matches!(
            disk.put(&too_long, b"v").await,
            Err(DiskError::BadKey(_))
        ));
    });
}
