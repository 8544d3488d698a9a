//! Walking a whole conversation page by page (the history a device hands to a newly linked
//! one).

use kith_types::IdentityKey;

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
        }
    };
}

history_reads!(ReadTx);
history_reads!(WriteTx<'_>);
