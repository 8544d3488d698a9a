//! Media attached to messages: one row per message that carries a file (its manifest, the
//! conversation, whether it is wanted here), and who may fetch which file from this node.
//! The files themselves live beside the store, in `media/` (the engine's `media` module).

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::tx::{dec, enc};
use crate::*;

/// Message id → the encoded [`MediaRow`].
pub(crate) const MEDIA: SealedDef<u128> = SealedDef::new("media");
/// (root, identity) → the message id: that person was sent the file in that message, so may
/// fetch its chunks here.
pub(crate) const MEDIA_GRANTS: TableDefinition<(&[u8; 32], IdentityKey), u128> =
    TableDefinition::new("media_grants");

/// A file attached to a message.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRow {
    /// The conversation.
    pub chat: IdentityKey,
    /// Sent by this user.
    pub outgoing: bool,
    /// The manifest (`kith_proto::media::Manifest`), encoded.
    #[serde(with = "serde_bytes")]
    pub manifest: Vec<u8>,
    /// The file's root (also inside the manifest), for lookups without decoding.
    pub root: [u8; 32],
    /// Its size in bytes.
    pub size: u64,
    /// Download it (set by auto-download or by the user); a node restarted resumes it.
    pub wanted: bool,
    /// The sender device's peer id (where to fetch from).
    #[serde(with = "serde_bytes")]
    pub source: Vec<u8>,
    /// The group it was sent in (then `chat` is the sender).
    pub group: Option<kith_types::GroupId>,
}

impl std::fmt::Debug for MediaRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaRow")
            .field("outgoing", &self.outgoing)
            .field("size", &self.size)
            .field("wanted", &self.wanted)
            .finish_non_exhaustive()
    }
}

impl ReadTx {
    /// The file attached to message `id`, if any.
    pub fn media(&self, id: u128) -> Result<Option<MediaRow>, StoreError> {
        let t = self.table(MEDIA)?;
        t.get(id)?.map(|v| dec(v.value())).transpose()
    }

    /// Every message with a file, oldest id first.
    pub fn media_rows(&self) -> Result<Vec<(u128, MediaRow)>, StoreError> {
        let t = self.table(MEDIA)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value(), dec(v.value())?));
        }
        Ok(out)
    }

    /// The message in which `who` was sent the file with this root, if they were.
    pub fn media_granted(
        &self,
        root: &[u8; 32],
        who: &IdentityKey,
    ) -> Result<Option<u128>, StoreError> {
        Ok(self
            .table(MEDIA_GRANTS)?
            .get((root, *who))?
            .map(|v| v.value()))
    }
}

impl WriteTx<'_> {
    pub(crate) fn create_media_tables(&mut self) -> Result<(), StoreError> {
        self.table_mut(MEDIA)?;
        self.table_mut(MEDIA_GRANTS)?;
        Ok(())
    }

    /// The file attached to message `id`, if any.
    pub fn media(&self, id: u128) -> Result<Option<MediaRow>, StoreError> {
        let t = self.table(MEDIA)?;
        t.get(id)?.map(|v| dec(v.value())).transpose()
    }

    /// Every message with a file, oldest id first.
    pub fn media_rows(&self) -> Result<Vec<(u128, MediaRow)>, StoreError> {
        let t = self.table(MEDIA)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value(), dec(v.value())?));
        }
        Ok(out)
    }

    /// Keeps the file attached to message `id`.
    pub fn put_media(&mut self, id: u128, row: &MediaRow) -> Result<(), StoreError> {
        let bytes = enc(row)?;
        self.table_mut(MEDIA)?.insert(id, bytes.as_slice())?;
        Ok(())
    }

    /// Lets `who` fetch the file with this root (sent in message `id`) from this node.
    pub fn grant_media(
        &mut self,
        root: &[u8; 32],
        who: &IdentityKey,
        id: u128,
    ) -> Result<(), StoreError> {
        self.table_mut(MEDIA_GRANTS)?.insert((root, *who), id)?;
        Ok(())
    }

    /// Drops the file row of message `id` and the grants given with it (others' grants of
    /// the same root stay); returns the row it had. The files are the caller's to delete
    /// (see [`WriteTx::media_root_in_use`]).
    pub fn remove_media(&mut self, id: u128) -> Result<Option<MediaRow>, StoreError> {
        let Some(row) = self
            .table_mut(MEDIA)?
            .remove(id)?
            .map(|v| dec::<MediaRow>(v.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let mut grants = self.table_mut(MEDIA_GRANTS)?;
        let lo = (&row.root, IdentityKey([0; 32]));
        let hi = (&row.root, IdentityKey([0xff; 32]));
        let mine: Vec<IdentityKey> = grants
            .range(lo..=hi)?
            .filter_map(|e| e.ok())
            .filter(|(_, v)| v.value() == id)
            .map(|(k, _)| k.value().1)
            .collect();
        for who in mine {
            grants.remove((&row.root, who))?;
        }
        Ok(Some(row))
    }

    /// Whether another message than `except` still has a file row with this root (then its
    /// files stay).
    pub fn media_root_in_use(&self, root: &[u8; 32], except: u128) -> Result<bool, StoreError> {
        for e in self.table(MEDIA)?.iter()? {
            let (k, v) = e?;
            if k.value() != except && dec::<MediaRow>(v.value())?.root == *root {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_grants() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let row = MediaRow {
            chat: IdentityKey([1; 32]),
            outgoing: false,
            manifest: vec![1, 2, 3],
            root: [9; 32],
            size: 10,
            wanted: true,
            source: vec![4; 38],
            group: None,
        };
        store
            .write(|w| {
                w.put_media(7, &row)?;
                w.grant_media(&[9; 32], &IdentityKey([2; 32]), 7)?;
                assert_eq!(w.media(7)?, Some(row.clone()));
                Ok(())
            })
            .unwrap();
        store
            .read(|r| {
                assert_eq!(r.media_rows()?.len(), 1);
                assert_eq!(r.media_granted(&[9; 32], &IdentityKey([2; 32]))?, Some(7));
                assert_eq!(r.media_granted(&[9; 32], &IdentityKey([3; 32]))?, None);
                assert_eq!(r.media_granted(&[8; 32], &IdentityKey([2; 32]))?, None);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_row_is_removed_with_its_grants_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let row = MediaRow {
            chat: IdentityKey([1; 32]),
            outgoing: true,
            manifest: vec![1],
            root: [9; 32],
            size: 10,
            wanted: false,
            source: Vec::new(),
            group: None,
        };
        store
            .write(|w| {
                w.put_media(7, &row)?;
                w.put_media(8, &row)?;
                w.grant_media(&[9; 32], &IdentityKey([2; 32]), 7)?;
                w.grant_media(&[9; 32], &IdentityKey([3; 32]), 7)?;
                w.grant_media(&[9; 32], &IdentityKey([4; 32]), 8)?;
                assert!(w.media_root_in_use(&[9; 32], 7)?);
                assert_eq!(w.remove_media(7)?, Some(row.clone()));
                assert_eq!(w.remove_media(7)?, None);
                assert_eq!(w.media(7)?, None);
                assert!(!w.media_root_in_use(&[9; 32], 8)?);
                Ok(())
            })
            .unwrap();
        store
            .read(|r| {
                assert_eq!(r.media_granted(&[9; 32], &IdentityKey([2; 32]))?, None);
                assert_eq!(r.media_granted(&[9; 32], &IdentityKey([3; 32]))?, None);
                assert_eq!(r.media_granted(&[9; 32], &IdentityKey([4; 32]))?, Some(8));
                Ok(())
            })
            .unwrap();
    }
}
