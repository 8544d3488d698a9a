//! Media a mailbox holds for its registered devices: which files (by root) it keeps for
//! which device, how many sealed bytes each may take, and until when. The sealed chunks
//! themselves live beside the store (the engine's `media` module, `media/held/`); this
//! table is what the quota and the expiry read, in the same transaction that accepts a file.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::tx::{dec, enc};
use crate::*;

/// (device, root) → the encoded [`HeldRow`].
pub(crate) const HELD_MEDIA: SealedDef<(DeviceKey, &[u8; 32])> = SealedDef::new("held_media");

/// A file a mailbox keeps for one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldRow {
    /// Sealed bytes the sender announced (charged as they are stored, see
    /// [`crate::HeldFill`]; whole for a file kept before fill rows existed).
    pub sealed: u64,
    /// Chunks in the file.
    pub chunks: u32,
    /// When it is dropped (wall clock, ms): soon while it fills (each chunk stored puts
    /// it off), at the end of its retention once filled.
    pub expires_ms: u64,
}

fn rows_of<T: ReadableTable<(DeviceKey, &'static [u8; 32]), &'static [u8]>>(
    t: &SealedTable<(DeviceKey, &'static [u8; 32]), T>,
    dev: &DeviceKey,
) -> Result<Vec<([u8; 32], HeldRow)>, StoreError> {
    let mut out = Vec::new();
    let (lo, hi) = ([0u8; 32], [0xffu8; 32]);
    for e in t.range((*dev, &lo)..=(*dev, &hi))? {
        let (k, v) = e?;
        out.push((*k.value().1, dec(v.value())?));
    }
    Ok(out)
}

impl ReadTx {
    /// The file with this root kept for `dev`, if it is.
    pub fn held(&self, dev: &DeviceKey, root: &[u8; 32]) -> Result<Option<HeldRow>, StoreError> {
        let t = self.table(HELD_MEDIA)?;
        t.get((*dev, root))?.map(|v| dec(v.value())).transpose()
    }
}

impl WriteTx<'_> {
    pub(crate) fn create_held_tables(&mut self) -> Result<(), StoreError> {
        self.table_mut(HELD_MEDIA)?;
        Ok(())
    }

    /// The file with this root kept for `dev`, if it is.
    pub fn held(&self, dev: &DeviceKey, root: &[u8; 32]) -> Result<Option<HeldRow>, StoreError> {
        let t = self.table(HELD_MEDIA)?;
        t.get((*dev, root))?.map(|v| dec(v.value())).transpose()
    }

    /// Every file kept for `dev`: (root, row).
    pub fn held_of(&self, dev: &DeviceKey) -> Result<Vec<([u8; 32], HeldRow)>, StoreError> {
        rows_of(&self.table(HELD_MEDIA)?, dev)
    }

    /// Keeps the file with this root for `dev`.
    pub fn hold(
        &mut self,
        dev: &DeviceKey,
        root: &[u8; 32],
        row: &HeldRow,
    ) -> Result<(), StoreError> {
        let bytes = enc(row)?;
        self.table_mut(HELD_MEDIA)?
            .insert((*dev, root), bytes.as_slice())?;
        Ok(())
    }

    /// Stops keeping the file with this root for `dev`; returns whether any device still has
    /// it kept (if not, its chunks may go).
    pub fn unhold(&mut self, dev: &DeviceKey, root: &[u8; 32]) -> Result<bool, StoreError> {
        self.table_mut(HELD_MEDIA)?.remove((*dev, root))?;
        self.remove_held_fill(dev, root)?;
        self.held_by_anyone(root)
    }

    /// Whether any device has the file with this root kept.
    pub fn held_by_anyone(&self, root: &[u8; 32]) -> Result<bool, StoreError> {
        let t = self.table(HELD_MEDIA)?;
        for e in t.iter()? {
            let (k, _) = e?;
            if k.value().1 == root {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether the file with this root is kept here whole for some device (every chunk
    /// stored, or kept before fill rows existed): the row of one such device. A mailbox
    /// grants such a file to more of its devices without its chunks being sent again.
    pub fn held_whole(&self, root: &[u8; 32]) -> Result<Option<HeldRow>, StoreError> {
        let t = self.table(HELD_MEDIA)?;
        let mut devs = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            if k.value().1 == root {
                devs.push((k.value().0, dec::<HeldRow>(v.value())?));
            }
        }
        for (dev, row) in devs {
            match self.held_fill(&dev, root)? {
                Some(f) if f.filled < row.chunks => {}
                _ => return Ok(Some(row)),
            }
        }
        Ok(None)
    }

    /// Drops every kept file that expired by `now_ms`; returns the roots no device keeps any
    /// more (their chunks may go).
    pub fn expire_held(&mut self, now_ms: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut gone = Vec::new();
        {
            let t = self.table(HELD_MEDIA)?;
            for e in t.iter()? {
                let (k, v) = e?;
                let row: HeldRow = dec(v.value())?;
                if row.expires_ms <= now_ms {
                    let (dev, root) = k.value();
                    gone.push((dev, *root));
                }
            }
        }
        let mut freed = Vec::new();
        for (dev, root) in gone {
            if !self.unhold(&dev, &root)? && !freed.contains(&root) {
                freed.push(root);
            }
        }
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_per_device_released_and_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let (a, b) = (DeviceKey([1; 32]), DeviceKey([2; 32]));
        let row = |exp| HeldRow {
            sealed: 100,
            chunks: 1,
            expires_ms: exp,
        };
        store
            .write(|w| {
                w.hold(&a, &[9; 32], &row(10))?;
                w.hold(&a, &[8; 32], &row(50))?;
                w.hold(&b, &[9; 32], &row(50))?;
                assert_eq!(w.held_of(&a)?.len(), 2);
                assert_eq!(w.held_of(&b)?.len(), 1);
                assert_eq!(w.held_whole(&[9; 32])?, Some(row(10)), "no fill row: whole");
                assert_eq!(w.held_whole(&[7; 32])?, None);
                assert!(w.unhold(&b, &[9; 32])?, "a still keeps it");
                assert_eq!(w.expire_held(20)?, vec![[9; 32]]);
                assert_eq!(w.held_of(&a)?.len(), 1);
                assert!(!w.unhold(&a, &[8; 32])?);
                Ok(())
            })
            .unwrap();
        store
            .read(|r| {
                assert_eq!(r.held(&a, &[8; 32])?, None);
                Ok(())
            })
            .unwrap();
    }
}
