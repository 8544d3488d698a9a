//! The whole store as rows of bytes, for backups: [`Snapshot::export`] streams every table
//! out of one read transaction (a consistent snapshot while writers go on), and
//! [`Store::import`] writes such rows into a new store.
//!
//! Rows travel as redb's own byte form of each key and value (`Key::as_bytes`), named by
//! their table. Every table the store has is listed once in [`for_each_table!`]; a test
//! checks that the list covers every table a store creates.

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, TableHandle, Value};

use crate::chat::*;
use crate::deposits::*;
use crate::groups::*;
use crate::held::*;
use crate::held_fill::*;
use crate::media::*;
use crate::mentions::*;
use crate::prekeys::*;
use crate::stories::*;
use crate::topics::*;
use crate::*;

/// Most bytes of one key or value a backup row may carry (checked on import).
pub const MAX_ROW_BYTES: usize = 64 << 20;

/// Calls `$m!(CONST)` for every table of the store.
macro_rules! for_each_table {
    ($m:ident) => {
        $m!(META);
        $m!(SEAL_STATE);
        $m!(CONTACTS);
        $m!(CONTACT_NAMES);
        $m!(DEVICES);
        $m!(CURVE_DEVICES);
        $m!(SESSIONS);
        $m!(MESSAGES);
        $m!(MSG_INDEX);
        $m!(OUTBOX);
        $m!(SEEN);
        $m!(CONTACT_EXTRAS);
        $m!(MAILBOX_USERS);
        $m!(MAILBOX_IDENTITIES);
        $m!(OUTBOX_LEN);
        $m!(MAILBOX_BYTES);
        $m!(PUSH_ENDPOINTS);
        $m!(RATCHET_DEVICES);
        $m!(DEVICE_RATCHETS);
        $m!(GROUPS);
        $m!(GROUP_OPS);
        $m!(GROUP_FRAMES);
        $m!(GROUP_PENDING);
        $m!(GROUP_ALTS);
        $m!(GROUP_SENDERS);
        $m!(GROUP_INBOUND);
        $m!(GROUP_MSGS);
        $m!(GROUP_MSG_IDS);
        $m!(GROUP_RECEIPTS);
        $m!(CHAT_META);
        $m!(CHAT_SETTINGS);
        $m!(CHAT_EARLY);
        $m!(CHAT_EXPIRY);
        $m!(MAILBOX_WATCHES);
        $m!(WATCHED_TOPICS);
        $m!(TOPIC_FRAMES);
        $m!(TOPIC_FRAME_INDEX);
        $m!(TOPIC_USAGE);
        $m!(MEDIA);
        $m!(MEDIA_GRANTS);
        $m!(PREKEY_SESSIONS);
        $m!(STORIES);
        $m!(STORY_EXPIRY);
        $m!(STORY_VIEWERS);
        $m!(HELD_MEDIA);
        $m!(MENTIONS);
        $m!(HELD_FILL);
        $m!(MEDIA_DEPOSITS);
    };
}

impl WriteTx<'_> {
    /// At open: refuses a sealed store opened without its key, checks the key of a sealed
    /// store (its schema version must open), and seals a clear store opened with a key, all
    /// in this one transaction (a crash before its commit leaves the store clear).
    pub(crate) fn check_seal(&mut self) -> Result<bool, StoreError> {
        let sealed = self
            .table(SEAL_STATE)?
            .get("sealed")?
            .is_some_and(|v| v.value() == 1);
        let (txn, seal) = self.raw_parts();
        match (sealed, seal) {
            (true, None) => Err(StoreError::NeedsKey),
            (false, None) => Ok(false),
            (true, Some(_)) => {
                // A store has a schema version from its first open: it must open.
                self.meta("schema_version")?;
                Ok(false)
            }
            (false, Some(seal)) => {
                macro_rules! one {
                    ($t:ident) => {
                        $t.seal_in_place(txn, &seal)?
                    };
                }
                for_each_table!(one);
                // Contact names: the name index is keyed by a keyed hash of the name.
                let mut names: Vec<(String, IdentityKey)> = Vec::new();
                {
                    let mut t = txn.open_table(CONTACT_NAMES)?;
                    for r in t.iter()? {
                        let (k, v) = r?;
                        names.push((k.value().to_string(), v.value()));
                    }
                    t.retain(|_, _| false)?;
                    for (name, id) in names {
                        t.insert(seal.name_slot(&name).as_str(), id)?;
                    }
                }
                txn.open_table(SEAL_STATE)?.insert("sealed", 1u64)?;
                Ok(true)
            }
        }
    }
}

/// A consistent, read-only view of the whole store as of [`Store::snapshot`]. It can move
/// to another thread; the store's writers go on while it is read.
pub struct Snapshot {
    txn: ReadTransaction,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Snapshot")
    }
}

fn export_table<D: Def, E: From<StoreError>>(
    txn: &ReadTransaction,
    def: D,
    row: &mut impl FnMut(&str, &[u8], &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let def = def.raw();
    let t = match txn.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(StoreError::from(e).into()),
    };
    let name = def.name();
    for r in t.iter().map_err(StoreError::from)? {
        let (k, v) = r.map_err(StoreError::from)?;
        let kv = k.value();
        let vv = v.value();
        row(
            name,
            D::Key::as_bytes(&kv).as_ref(),
            D::Value::as_bytes(&vv).as_ref(),
        )?;
    }
    Ok(())
}

fn check_width<T: Value>(b: &[u8]) -> Result<(), StoreError> {
    match T::fixed_width() {
        Some(n) if n != b.len() => Err(StoreError::Corrupt(
            "a backup row has the wrong width".into(),
        )),
        _ if b.len() > MAX_ROW_BYTES => Err(StoreError::Corrupt("a backup row is too long".into())),
        _ => Ok(()),
    }
}

fn import_table<D: Def>(
    txn: &redb::WriteTransaction,
    def: D,
    rows: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), StoreError> {
    let mut t = txn.open_table(def.raw())?;
    for (k, v) in rows {
        check_width::<D::Key>(k)?;
        check_width::<D::Value>(v)?;
        t.insert(D::Key::from_bytes(k), D::Value::from_bytes(v))?;
    }
    Ok(())
}

impl Snapshot {
    /// Calls `row(table, key, value)` for every row of every table, table by table, keys in
    /// order. Stops at the first error `row` returns.
    pub fn export<E: From<StoreError>>(
        &self,
        mut row: impl FnMut(&str, &[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        macro_rules! one {
            ($t:ident) => {
                export_table(&self.txn, $t, &mut row)?
            };
        }
        for_each_table!(one);
        Ok(())
    }
}

/// Whether `name` is a table of this store (what [`Store::import`] accepts).
pub fn is_table(name: &str) -> bool {
    let mut found = false;
    macro_rules! one {
        ($t:ident) => {
            found |= $t.raw().name() == name
        };
    }
    for_each_table!(one);
    found
}

impl Store {
    /// A consistent snapshot of the whole store (one read transaction).
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            txn: self.db.begin_read()?,
        })
    }

    /// Writes rows exported by [`Snapshot::export`] into table `table`, in one
    /// transaction. An unknown table, or a row of the wrong width, is an error and nothing
    /// of this call is kept.
    pub fn import(&self, table: &str, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        let mut done = false;
        macro_rules! one {
            ($t:ident) => {
                if !done && $t.raw().name() == table {
                    import_table(&txn, $t, rows)?;
                    done = true;
                }
            };
        }
        for_each_table!(one);
        if !done {
            return Err(StoreError::Corrupt(format!(
                "unknown table in backup: {table:.64}"
            )));
        }
        txn.commit()?;
        Ok(())
    }

    /// The names of every table the file holds (to check [`Snapshot::export`] covers them).
    pub fn table_names(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn
            .list_tables()
            .map_err(StoreError::from)?
            .map(|h| h.name().to_string())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_covers_every_table_and_import_restores_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(&dir.path().join("a.redb")).unwrap();
        for name in a.table_names().unwrap() {
            assert!(is_table(&name), "table {name} is not in for_each_table!");
        }
        a.write(|w| w.set_meta("canary", b"value")).unwrap();
        let mut rows: Vec<(String, Vec<u8>, Vec<u8>)> = Vec::new();
        a.snapshot()
            .unwrap()
            .export::<StoreError>(|t, k, v| {
                rows.push((t.to_string(), k.to_vec(), v.to_vec()));
                Ok(())
            })
            .unwrap();
        assert!(rows.iter().any(|(t, _, v)| t == "meta" && v == b"value"));
        let b = Store::open(&dir.path().join("b.redb")).unwrap();
        for (t, k, v) in &rows {
            b.import(t, &[(k.clone(), v.clone())]).unwrap();
        }
        assert_eq!(
            b.read(|r| r.meta("canary")).unwrap().as_deref(),
            Some(&b"value"[..])
        );
        assert!(b.import("nope", &[]).is_err());
        // A fixed-width value of the wrong width is refused, not a panic.
        assert!(
            b.import("outbox_len", &[(vec![0; 32], vec![1, 2])])
                .is_err()
        );
    }
}
