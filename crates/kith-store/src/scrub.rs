//! Scrubbing: making the bytes of text that was deleted (or disappeared) leave the file.
//!
//! redb writes copy-on-write: a changed or removed value's old page is freed, not cleared,
//! and keeps the old bytes until the page is used again. [`Store::scrub`] makes every free
//! page be used again with zeros, then gives the space back:
//!
//! 1. a few empty commits, so that pages freed by earlier commits are free for reuse;
//! 2. one transaction fills a scratch table with zero values, more than the free pages can
//!    hold (counted from the file's length and the allocated pages), so every free page is
//!    written (redb zeroes a page it hands out, and writes it whole);
//! 3. the scratch table is dropped, and the file compacted: pages at its end move down into
//!    free (now zeroed) places and the file is cut.
//!
//! It costs about as many page writes as the file has free pages, so the engine runs it only
//! when text was removed, at most every few minutes and at a clean stop.

use redb::TableDefinition;

use crate::*;

/// Zero values filling the free pages during a scrub (dropped before it ends).
const SCRUB_FILL: TableDefinition<u64, &[u8]> = TableDefinition::new("scrub_fill");

impl Store {
    /// Overwrites the free pages of the file (the size of which is `file_len`) with zeros
    /// and compacts it. Returns false when the compaction could not run because a read
    /// (a backup's snapshot) was in progress: the free pages are zeroed all the same.
    pub fn scrub(&mut self, file_len: u64) -> Result<bool, StoreError> {
        for _ in 0..3 {
            self.db.begin_write()?.commit()?;
        }
        let txn = self.db.begin_write()?;
        let _ = txn.delete_table(SCRUB_FILL)?;
        let stats = txn.stats()?;
        let page = (stats.page_size() as u64).max(512);
        let free = (file_len / page).saturating_sub(stats.allocated_pages());
        // A quarter page each: a leaf holds at most 3 or 4, so this is more pages than free.
        let entries = free.saturating_mul(4).saturating_add(64);
        {
            let mut t = txn.open_table(SCRUB_FILL)?;
            let zeros = vec![0u8; (page / 4) as usize];
            for i in 0..entries {
                t.insert(i, zeros.as_slice())?;
            }
        }
        txn.commit()?;
        let txn = self.db.begin_write()?;
        txn.delete_table(SCRUB_FILL)?;
        txn.commit()?;
        match self.db.compact() {
            Ok(_) => Ok(true),
            Err(redb::CompactionError::TransactionInProgress) => Ok(false),
            Err(e) => Err(StoreError::from(redb::Error::from(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const CANARY: &[u8] = b"zqx-canary-3141-scrub-me";

    fn holds(path: &std::path::Path, needle: &[u8]) -> bool {
        let bytes = std::fs::read(path).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    }

    /// Writes the canary among other rows, then overwrites it; returns the file's path.
    fn written(dir: &std::path::Path) -> (Store, std::path::PathBuf) {
        let path = dir.join("s.redb");
        let store = Store::open(&path).unwrap();
        store
            .write(|w| {
                for i in 0..200 {
                    w.set_meta(&format!("filler{i}"), &[7u8; 300])?;
                }
                // Big enough to fill pages of its own, which stay free (not rewritten)
                // once the value goes.
                w.set_meta("secret", &CANARY.repeat(4096))
            })
            .unwrap();
        // More after it, so that its page is not at the end of the file.
        for t in 0..20 {
            store
                .write(|w| {
                    for i in 0..50 {
                        w.set_meta(&format!("later{t}-{i}"), &[8u8; 300])?;
                    }
                    Ok(())
                })
                .unwrap();
        }
        store.write(|w| w.set_meta("secret", b"")).unwrap();
        (store, path)
    }

    #[test]
    fn a_removed_value_leaves_the_file_only_after_a_scrub() {
        let dir = tempfile::tempdir().unwrap();
        // Without a scrub, the old page keeps the bytes (what this module is for).
        let (store, path) = written(dir.path());
        drop(store);
        assert!(holds(&path, CANARY), "the test must see the leftover");

        let dir = tempfile::tempdir().unwrap();
        let (mut store, path) = written(dir.path());
        let len = std::fs::metadata(&path).unwrap().len();
        store.scrub(len).unwrap();
        drop(store);
        assert!(!holds(&path, CANARY), "scrubbed");
        // The rest is intact.
        let store = Store::open(&path).unwrap();
        let v = store.read(|r| r.meta("filler199")).unwrap();
        assert_eq!(v, Some(vec![7u8; 300]));
        assert_eq!(store.read(|r| r.meta("secret")).unwrap(), Some(vec![]));
    }
}
