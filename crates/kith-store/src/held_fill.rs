//! How far each file a mailbox holds has been filled, and who asked for it: the depositing
//! peer, the sealed bytes actually stored, which chunks are here, and until when a filled
//! file is kept. The mailbox charges a device's media quota by what is stored (plus a
//! bounded reservation while a file fills), limits what one depositing peer may hold for a
//! device, and drops a file that stops filling (the engine's mailbox core decides; this
//! table is what it reads). A [`crate::HeldRow`] without a row here (kept before this
//! table existed) counts as filled, by nobody in particular.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::tx::{dec, enc};
use crate::*;

/// (device, root) → the encoded [`HeldFill`].
pub(crate) const HELD_FILL: TableDefinition<(DeviceKey, &[u8; 32]), &[u8]> =
    TableDefinition::new("held_fill");

/// Most bytes of a depositing peer's id kept (a libp2p peer id is at most 42 bytes).
pub const MAX_DEPOSITOR: usize = 64;

/// How far a held file is filled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldFill {
    /// The peer that asked the mailbox to hold it (its peer id bytes, at most
    /// [`MAX_DEPOSITOR`]).
    pub by: Vec<u8>,
    /// Sealed bytes stored so far (each chunk counted once).
    pub stored: u64,
    /// Chunks stored so far.
    pub filled: u32,
    /// One bit per chunk, set when it is stored (emptied once every chunk is).
    pub have: Vec<u8>,
    /// Until when the file is kept once filled (wall clock, ms): its retention.
    pub until_ms: u64,
}

impl HeldFill {
    /// A file of `chunks` chunks that nothing is stored of yet.
    pub fn new(by: &[u8], chunks: u32, until_ms: u64) -> Self {
        let by = by.get(..MAX_DEPOSITOR).unwrap_or(by).to_vec();
        Self {
            by,
            stored: 0,
            filled: 0,
            have: vec![0; (chunks as usize).div_ceil(8)],
            until_ms,
        }
    }

    /// Whether chunk `n` is stored already (every chunk is, once the bits are dropped).
    pub fn has(&self, n: u32) -> bool {
        if self.have.is_empty() {
            return true;
        }
        let (byte, bit) = ((n / 8) as usize, n % 8);
        self.have.get(byte).is_some_and(|b| b & (1 << bit) != 0)
    }

    /// Records chunk `n` of `len` sealed bytes as stored (once); returns whether it was new.
    /// When the file holds `chunks` chunks then, the bits are dropped.
    pub fn add(&mut self, n: u32, len: u64, chunks: u32) -> bool {
        if n >= chunks || self.has(n) {
            return false;
        }
        let (byte, bit) = ((n / 8) as usize, n % 8);
        let Some(b) = self.have.get_mut(byte) else {
            return false;
        };
        *b |= 1 << bit;
        self.stored = self.stored.saturating_add(len);
        self.filled = self.filled.saturating_add(1);
        if self.filled >= chunks {
            self.have = Vec::new();
        }
        true
    }
}

impl ReadTx {
    /// How far the file with this root held for `dev` is filled (`None`: filled, or not held).
    pub fn held_fill(
        &self,
        dev: &DeviceKey,
        root: &[u8; 32],
    ) -> Result<Option<HeldFill>, StoreError> {
        let t = self.table(HELD_FILL)?;
        t.get((*dev, root))?.map(|v| dec(v.value())).transpose()
    }
}

impl WriteTx<'_> {
    pub(crate) fn create_held_fill_tables(&mut self) -> Result<(), StoreError> {
        self.table_mut(HELD_FILL)?;
        Ok(())
    }

    /// How far the file with this root held for `dev` is filled (`None`: filled before this
    /// table existed, or not held).
    pub fn held_fill(
        &self,
        dev: &DeviceKey,
        root: &[u8; 32],
    ) -> Result<Option<HeldFill>, StoreError> {
        let t = self.table(HELD_FILL)?;
        t.get((*dev, root))?.map(|v| dec(v.value())).transpose()
    }

    /// Every fill row of the files held for `dev`: (root, fill).
    pub fn held_fills_of(&self, dev: &DeviceKey) -> Result<Vec<([u8; 32], HeldFill)>, StoreError> {
        let t = self.table(HELD_FILL)?;
        let mut out = Vec::new();
        let (lo, hi) = ([0u8; 32], [0xffu8; 32]);
        for e in t.range((*dev, &lo)..=(*dev, &hi))? {
            let (k, v) = e?;
            out.push((*k.value().1, dec(v.value())?));
        }
        Ok(out)
    }

    /// Records how far the file with this root held for `dev` is filled.
    pub fn set_held_fill(
        &mut self,
        dev: &DeviceKey,
        root: &[u8; 32],
        fill: &HeldFill,
    ) -> Result<(), StoreError> {
        let bytes = enc(fill)?;
        self.table_mut(HELD_FILL)?
            .insert((*dev, root), bytes.as_slice())?;
        Ok(())
    }

    /// Forgets the fill row of the file with this root held for `dev`.
    pub(crate) fn remove_held_fill(
        &mut self,
        dev: &DeviceKey,
        root: &[u8; 32],
    ) -> Result<(), StoreError> {
        self.table_mut(HELD_FILL)?.remove((*dev, root))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_chunk_counts_once_and_the_bits_go_when_filled() {
        let mut f = HeldFill::new(&[7; 100], 10, 99);
        assert_eq!(f.by.len(), MAX_DEPOSITOR, "the depositor is bounded");
        assert_eq!(f.have.len(), 2);
        assert!(f.add(3, 100, 10));
        assert!(!f.add(3, 100, 10), "a chunk counts once");
        assert!(!f.add(10, 100, 10), "no chunk past the file");
        assert!(!f.add(99, 100, 10), "no chunk past the file");
        assert_eq!((f.stored, f.filled), (100, 1));
        for n in 0..10 {
            f.add(n, 100, 10);
        }
        assert_eq!((f.stored, f.filled), (1000, 10));
        assert!(f.have.is_empty() && f.has(5), "filled: the bits go");
    }

    #[test]
    fn a_fill_row_goes_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let dev = DeviceKey([1; 32]);
        let row = crate::HeldRow {
            sealed: 100,
            chunks: 1,
            expires_ms: 10,
        };
        store
            .write(|w| {
                w.hold(&dev, &[9; 32], &row)?;
                w.set_held_fill(&dev, &[9; 32], &HeldFill::new(b"peer", 1, 50))?;
                assert_eq!(w.held_fills_of(&dev)?.len(), 1);
                assert_eq!(w.expire_held(20)?, vec![[9; 32]]);
                assert_eq!(w.held_fill(&dev, &[9; 32])?, None, "gone with its file");
                Ok(())
            })
            .unwrap();
    }
}
