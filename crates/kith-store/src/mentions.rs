//! Mentions: the group messages that name this user. The sender resolves `@name` to member
//! identities when it sends and carries them in the message; the receiver that finds
//! itself among them keeps one row here, by (group, message id), when it stores the
//! message. The row holds no text (the message keeps that, and loses it when deleted).

use kith_types::GroupId;
use redb::{ReadableTable, TableDefinition};

use crate::*;

/// (group id, message id) → when it was stored (ms).
pub(crate) const MENTIONS: TableDefinition<(&[u8], u128), u64> = TableDefinition::new("mentions");

macro_rules! mention_reads {
    ($t:ty) => {
        impl $t {
            /// Whether a group message names this user.
            pub fn is_mentioned(&self, group: &GroupId, id: u128) -> Result<bool, StoreError> {
                Ok(self
                    .table(MENTIONS)?
                    .get((group.0.as_slice(), id))?
                    .is_some())
            }

            /// The messages that name this user, newest first (at most `limit`): group, id
            /// and when stored.
            pub fn mentions(&self, limit: usize) -> Result<Vec<(GroupId, u128, u64)>, StoreError> {
                let mut out = Vec::new();
                for row in self.table(MENTIONS)?.iter()? {
                    let (k, v) = row?;
                    let (g, id) = k.value();
                    if let Ok(g) = <[u8; 16]>::try_from(g) {
                        out.push((GroupId(g), id, v.value()));
                    }
                }
                // Message ids are time-sortable: newest first.
                out.sort_by(|a, b| b.1.cmp(&a.1));
                out.truncate(limit);
                Ok(out)
            }
        }
    };
}

mention_reads!(ReadTx);
mention_reads!(WriteTx<'_>);

impl WriteTx<'_> {
    pub(crate) fn create_mention_tables(&mut self) -> Result<(), StoreError> {
        self.table_mut(MENTIONS)?;
        Ok(())
    }

    /// Notes that a group message names this user.
    pub fn put_mention(&mut self, group: &GroupId, id: u128, at_ms: u64) -> Result<(), StoreError> {
        self.table_mut(MENTIONS)?
            .insert((group.0.as_slice(), id), at_ms)?;
        Ok(())
    }

    /// Forgets a mention (its message is gone).
    pub fn drop_mention(&mut self, group: &GroupId, id: u128) -> Result<(), StoreError> {
        self.table_mut(MENTIONS)?.remove((group.0.as_slice(), id))?;
        Ok(())
    }
}
