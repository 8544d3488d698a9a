//! Walking a whole conversation page by page (the history a device hands to a newly linked
//! one).

use std::ops::Bound;

use kith_types::{GroupId, IdentityKey};

use crate::groups::{GROUP_MSGS, GroupMessage, GroupMsgKey};
use crate::model::StoredMessage;
use crate::tx::dec;
use crate::*;

macro_rules! history_reads {
    ($t:ty) => {
        impl $t {
            /// Up to `limit` messages of a conversation after local sequence number `after`,
            /// oldest first (a page of a walk through the whole conversation).
            pub fn messages_after(
                &self,
                conv: &IdentityKey,
                after: u64,
                limit: usize,
            ) -> Result<Vec<(u64, StoredMessage)>, StoreError> {
                let mut out = Vec::new();
                let Some(from) = after.checked_add(1) else {
                    return Ok(out);
                };
                let t = self.table(MESSAGES)?;
                for row in t.range((*conv, from)..=(*conv, u64::MAX))?.take(limit) {
                    let (k, v) = row?;
                    out.push((k.value().1, dec(v.value())?));
                }
                Ok(out)
            }

            /// How many messages a conversation holds.
            pub fn message_count(&self, conv: &IdentityKey) -> Result<u64, StoreError> {
                let t = self.table(MESSAGES)?;
                let mut n = 0u64;
                for row in t.range((*conv, 0u64)..=(*conv, u64::MAX))? {
                    row?;
                    n += 1;
                }
                Ok(n)
            }

            /// How many messages a group holds.
            pub fn group_message_count(&self, group: &GroupId) -> Result<u64, StoreError> {
                let t = self.table(GROUP_MSGS)?;
                let lo = (*group, 0u64, CurveKey([0u8; 32]), 0u64);
                let hi = (*group, u64::MAX, CurveKey([255u8; 32]), u64::MAX);
                let mut n = 0u64;
                for row in t.range(lo..=hi)? {
                    row?;
                    n += 1;
                }
                Ok(n)
            }

            /// Up to `limit` messages of a group in display order after the place `after`
            /// (Lamport clock, sending device, seq; `None`: from the start).
            pub fn group_messages_after(
                &self,
                group: &GroupId,
                after: Option<(u64, CurveKey, u64)>,
                limit: usize,
            ) -> Result<Vec<(GroupMsgKey, GroupMessage)>, StoreError> {
                let t = self.table(GROUP_MSGS)?;
                let g = *group;
                let lo = match after {
                    Some((l, d, s)) => Bound::Excluded((g, l, d, s)),
                    None => Bound::Included((g, 0u64, CurveKey([0u8; 32]), 0u64)),
                };
                let hi = Bound::Included((g, u64::MAX, CurveKey([255u8; 32]), u64::MAX));
                let mut out = Vec::new();
                for row in t.range((lo, hi))?.take(limit) {
                    let (k, v) = row?;
                    let (_, lamport, dev, seq) = k.value();
                    out.push((
                        GroupMsgKey {
                            group: g.0,
                            lamport,
                            sender_dev: dev,
                            seq,
                        },
                        dec(v.value())?,
                    ));
                }
                Ok(out)
            }
        }
    };
}

history_reads!(ReadTx);
history_reads!(WriteTx<'_>);
