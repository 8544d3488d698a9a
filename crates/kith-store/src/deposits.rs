//! Files this node still has to hand to a recipient's mailbox (deposits, the sender's side):
//! one row per (message, recipient device), written in the same transaction in which the
//! device's mailbox kept the message, and removed once the mailbox holds every chunk (or
//! refused the file for good). A node restarted (or killed) mid-deposit takes the rows up
//! again at its start, so a file whose message went to a mailbox always follows it there.
//! Which chunks the mailbox already acknowledged is the media task's business (a small file
//! beside the media, `media::upload`).

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::*;

/// (message id, recipient device) → the mailbox's peer id bytes.
pub(crate) const MEDIA_DEPOSITS: TableDefinition<(u128, DeviceKey), &[u8]> =
    TableDefinition::new("media_deposits");

/// Most deposits remembered; more are not recorded (they still run while the node does).
pub const MAX_DEPOSITS: u64 = 4096;
/// Most bytes of a mailbox's peer id kept (a libp2p peer id is at most 42 bytes).
const MAX_PEER_ID: usize = 64;

/// A deposit still to make: (message id, device, mailbox peer id bytes).
pub type DepositRow = (u128, DeviceKey, Vec<u8>);

fn rows(
    t: &impl ReadableTable<(u128, DeviceKey), &'static [u8]>,
) -> Result<Vec<DepositRow>, StoreError> {
    let mut out = Vec::new();
    for e in t.iter()? {
        let (k, v) = e?;
        let (msg, dev) = k.value();
        out.push((msg, dev, v.value().to_vec()));
    }
    Ok(out)
}

impl ReadTx {
    /// Every deposit still to make.
    pub fn deposits(&self) -> Result<Vec<DepositRow>, StoreError> {
        rows(&self.table(MEDIA_DEPOSITS)?)
    }
}

impl WriteTx<'_> {
    /// Every deposit still to make.
    pub fn deposits(&self) -> Result<Vec<DepositRow>, StoreError> {
        rows(&self.table(MEDIA_DEPOSITS)?)
    }

    pub(crate) fn create_deposit_tables(&mut self) -> Result<(), StoreError> {
        self.table_mut(MEDIA_DEPOSITS)?;
        Ok(())
    }

    /// Records that the file of message `msg` is to be deposited for `dev` at `mailbox`;
    /// false when [`MAX_DEPOSITS`] are recorded already (or the peer id is too long).
    pub fn add_deposit(
        &mut self,
        msg: u128,
        dev: &DeviceKey,
        mailbox: &[u8],
    ) -> Result<bool, StoreError> {
        if mailbox.len() > MAX_PEER_ID {
            return Ok(false);
        }
        let mut t = self.table_mut(MEDIA_DEPOSITS)?;
        if t.get((msg, *dev))?.is_none() && t.len()? >= MAX_DEPOSITS {
            return Ok(false);
        }
        t.insert((msg, *dev), mailbox)?;
        Ok(true)
    }

    /// The deposit of message `msg`'s file for `dev` is over.
    pub fn remove_deposit(&mut self, msg: u128, dev: &DeviceKey) -> Result<(), StoreError> {
        self.table_mut(MEDIA_DEPOSITS)?.remove((msg, *dev))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deposits_are_recorded_bounded_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let dev = DeviceKey([1; 32]);
        store
            .write(|w| {
                assert!(w.add_deposit(7, &dev, b"mailbox")?);
                assert!(!w.add_deposit(8, &dev, &[0; 100])?, "peer id too long");
                Ok(())
            })
            .unwrap();
        let rows = store.read(|r| r.deposits()).unwrap();
        assert_eq!(rows, vec![(7, dev, b"mailbox".to_vec())]);
        store.write(|w| w.remove_deposit(7, &dev)).unwrap();
        assert!(store.read(|r| r.deposits()).unwrap().is_empty());
    }
}
