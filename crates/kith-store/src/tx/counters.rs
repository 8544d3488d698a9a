//! The per-device counters kept beside the outbox (`OUTBOX_LEN`: items waiting;
//! `MAILBOX_BYTES`: ciphertext bytes of kept mail), cached for the life of one write
//! transaction.
//!
//! A mailbox touches both counters for every envelope it keeps (the quota check reads them,
//! the append raises them) and again for every envelope a device takes back (the removal
//! lowers them): four lookups and four writes per envelope and per counter table, for
//! values that change by one item at a time. Within a transaction the counters are read from
//! the table once per device, then held here; what changed is written back once, by
//! [`WriteTx::flush_counters`], which [`crate::Store::write_as`] calls before the commit.
//! So the tables always hold what the outbox holds at every commit, and a transaction
//! that fails drops the cache with everything else it did.
//!
//! Bounded: past [`MAX_CACHED`] counters (two per device) in one transaction, the cache is
//! written back and emptied before it takes another.

use std::collections::HashMap;

use kith_types::DeviceKey;
use redb::ReadableTable;

use super::WriteTx;
use crate::{MAILBOX_BYTES, OUTBOX_LEN, StoreError};

/// Most counters one transaction holds before writing them back.
pub(crate) const MAX_CACHED: usize = 4096;

/// One counter's value in this transaction, and whether the table still holds an older one.
#[derive(Debug, Clone, Copy)]
struct Slot {
    value: u64,
    dirty: bool,
}

/// The cached counters of the devices this transaction touched.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    len: HashMap<DeviceKey, Slot>,
    bytes: HashMap<DeviceKey, Slot>,
}

impl Counters {
    fn is_full(&self) -> bool {
        self.len.len() + self.bytes.len() >= MAX_CACHED
    }
}

/// Which of the two counters.
#[derive(Debug, Clone, Copy)]
enum Which {
    Len,
    Bytes,
}

impl WriteTx<'_> {
    fn cached(&self, which: Which, dev: &DeviceKey) -> Option<u64> {
        let c = self.counters.borrow();
        let map = match which {
            Which::Len => &c.len,
            Which::Bytes => &c.bytes,
        };
        map.get(dev).map(|s| s.value)
    }

    /// Reads a counter through the cache (the table once per device and transaction).
    fn counter(&self, which: Which, dev: &DeviceKey) -> Result<u64, StoreError> {
        if let Some(v) = self.cached(which, dev) {
            return Ok(v);
        }
        let value = match which {
            Which::Len => open!(self, OUTBOX_LEN).get(*dev)?.map_or(0, |v| v.value()),
            Which::Bytes => open!(self, MAILBOX_BYTES)
                .get(*dev)?
                .map_or(0, |v| v.value()),
        };
        self.hold_counter(
            which,
            *dev,
            Slot {
                value,
                dirty: false,
            },
        )?;
        Ok(value)
    }

    /// Puts a counter's value in the cache, writing the cache back first when it is full.
    fn hold_counter(&self, which: Which, dev: DeviceKey, slot: Slot) -> Result<(), StoreError> {
        let full = self.counters.borrow().is_full();
        if full {
            self.flush_counters()?;
            let mut c = self.counters.borrow_mut();
            c.len.clear();
            c.bytes.clear();
        }
        let mut c = self.counters.borrow_mut();
        let map = match which {
            Which::Len => &mut c.len,
            Which::Bytes => &mut c.bytes,
        };
        map.insert(dev, slot);
        Ok(())
    }

    /// How many items wait in a device's outbox (a counter kept with the outbox: one
    /// lookup, however long the outbox is; none when this transaction read it already).
    pub fn outbox_len(&self, device: &DeviceKey) -> Result<usize, StoreError> {
        Ok(usize::try_from(self.counter(Which::Len, device)?).unwrap_or(usize::MAX))
    }

    /// Ciphertext bytes this node's mailbox keeps for a device (by device key).
    pub fn mailbox_bytes(&self, dev: &DeviceKey) -> Result<u64, StoreError> {
        self.counter(Which::Bytes, dev)
    }

    /// Adds `add` and takes `sub` from a device's kept-bytes counter (saturating at 0).
    pub(crate) fn adjust_kept(
        &mut self,
        dev: &DeviceKey,
        add: u64,
        sub: u64,
    ) -> Result<(), StoreError> {
        if add == sub {
            return Ok(());
        }
        let value = self
            .mailbox_bytes(dev)?
            .saturating_add(add)
            .saturating_sub(sub);
        self.hold_counter(Which::Bytes, *dev, Slot { value, dirty: true })
    }

    /// Adds one to (`up`) or takes one from a device's outbox counter.
    pub(crate) fn count_outbox(&mut self, device: &DeviceKey, up: bool) -> Result<(), StoreError> {
        let n = self.counter(Which::Len, device)?;
        let value = if up {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        };
        self.hold_counter(Which::Len, *device, Slot { value, dirty: true })
    }

    /// Forgets the cached counters of `dev` (its rows were removed from the tables).
    pub(crate) fn forget_counters(&self, dev: &DeviceKey) {
        let mut c = self.counters.borrow_mut();
        c.len.remove(dev);
        c.bytes.remove(dev);
    }

    /// Forgets every cached counter (the tables were recounted).
    pub(crate) fn forget_all_counters(&self) {
        let mut c = self.counters.borrow_mut();
        c.len.clear();
        c.bytes.clear();
    }

    /// Writes the counters this transaction changed into their tables (a zero removes the
    /// row). Called before every commit; the values stay cached, now clean.
    pub(crate) fn flush_counters(&self) -> Result<(), StoreError> {
        let mut guard = self.counters.borrow_mut();
        let c = &mut *guard;
        for (which, map) in [(Which::Len, &mut c.len), (Which::Bytes, &mut c.bytes)] {
            if !map.values().any(|s| s.dirty) {
                continue;
            }
            let mut t = match which {
                Which::Len => open!(self, OUTBOX_LEN),
                Which::Bytes => open!(self, MAILBOX_BYTES),
            };
            for (dev, slot) in map.iter_mut().filter(|(_, s)| s.dirty) {
                if slot.value == 0 {
                    t.remove(*dev)?;
                } else {
                    t.insert(*dev, slot.value)?;
                }
                slot.dirty = false;
            }
        }
        Ok(())
    }
}
