//! Group tables: the ops log, frames (kept to answer members who missed them), per-sender
//! progress, Megolm sessions, messages in display order, and receipts.

use kith_types::{GroupId, OpHash};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tx::{dec, enc};
use crate::*;

/// A group this node is in (or was in), by group id.
pub(crate) const GROUPS: SealedDef<GroupId> = SealedDef::new("groups");
/// Signed membership ops: (group, op hash) → encoded op.
pub(crate) const GROUP_OPS: SealedDef<(GroupId, OpHash)> = SealedDef::new("group_ops");
/// (group, sender device, seq).
type FrameKey = (GroupId, CurveKey, u64);
/// (group, lamport, sender device, seq).
type MsgKey = (GroupId, u64, CurveKey, u64);

/// Frames: (group, sender device Curve25519 key, seq) → [`FrameRow`].
pub(crate) const GROUP_FRAMES: SealedDef<FrameKey> = SealedDef::new("group_frames");
/// Frames held but not opened yet (their key has not arrived): (group, sender, seq).
pub(crate) const GROUP_PENDING: TableDefinition<FrameKey, ()> =
    TableDefinition::new("group_pending");
/// Other frames claiming a place whose held frame has not opened yet: (group, sender, seq,
/// SHA-256 of the frame) → the frame. One of them may be the real frame while the held one
/// is a forgery; whichever opens first takes the place (at most [`MAX_GROUP_ALTS`] per
/// group).
pub(crate) const GROUP_ALTS: SealedDef<(GroupId, CurveKey, u64, &[u8; 32])> =
    SealedDef::new("group_alts");
/// Most frames held aside per group (see `GROUP_ALTS`).
pub const MAX_GROUP_ALTS: u64 = 256;
/// Per sender device: how far every frame is held ([`SenderRow`]).
pub(crate) const GROUP_SENDERS: SealedDef<(GroupId, CurveKey)> = SealedDef::new("group_senders");
/// Inbound Megolm sessions: (group, sender device, session id) → encrypted pickle.
pub(crate) const GROUP_INBOUND: TableDefinition<(GroupId, CurveKey, &str), &str> =
    TableDefinition::new("group_inbound");
/// Messages in display order: (group, lamport, sender device, seq) → [`GroupMessage`].
pub(crate) const GROUP_MSGS: SealedDef<MsgKey> = SealedDef::new("group_msgs");
/// Message id → its [`GroupMsgKey`].
pub(crate) const GROUP_MSG_IDS: SealedDef<u128> = SealedDef::new("group_msg_ids");
/// Receipts for our group messages: (message id, member identity) → (delivered ms, read ms),
/// 0 for not yet.
pub(crate) const GROUP_RECEIPTS: TableDefinition<(u128, IdentityKey), (u64, u64)> =
    TableDefinition::new("group_receipts");

/// What this node keeps about a group besides its ops.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRow {
    /// This device's sending session (encrypted pickle), if one is in use.
    pub out_session: Option<String>,
    /// Devices (device keys) the current sending session's key was queued for.
    pub out_shared: Vec<[u8; 32]>,
    /// The next frame seq this device sends.
    pub next_seq: u64,
    /// The largest Lamport clock seen in the group.
    pub lamport: u64,
    /// When this node learned of the group.
    pub joined_ms: u64,
    /// The user left the group, or was removed: nothing is sent any more.
    pub gone: bool,
    /// The user deleted it: hidden and unsubscribed.
    pub deleted: bool,
}

impl std::fmt::Debug for GroupRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupRow")
            .field("next_seq", &self.next_seq)
            .field("gone", &self.gone)
            .finish_non_exhaustive()
    }
}

/// A frame as kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRow {
    /// The encoded frame.
    #[serde(with = "serde_bytes")]
    pub frame: Vec<u8>,
    /// When it was stored.
    pub at_ms: u64,
}

/// A sender device's progress in a group, as this node holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderRow {
    /// Every frame up to this seq is held (or was before the key this node got).
    pub contiguous: u64,
    /// The largest seq seen.
    pub max: u64,
    /// A key from this sender has arrived (before that, nothing of it is asked for).
    pub keyed: bool,
}

/// Where a group message sits in the display order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMsgKey {
    /// The group, as raw bytes: this key is stored encoded in `group_msg_ids`, and a
    /// [`GroupId`] would encode with a length prefix.
    pub group: [u8; 16],
    /// Its Lamport clock.
    pub lamport: u64,
    /// The sending device (written as a plain array, as the raw bytes were before).
    #[serde(with = "kith_types::plain_array")]
    pub sender_dev: CurveKey,
    /// The sender's seq.
    pub seq: u64,
}

/// A message in a group.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMessage {
    /// The sender's message id.
    pub id: u128,
    /// The sender's identity (written as a plain array, as the raw bytes were before).
    #[serde(with = "kith_types::plain_array")]
    pub sender: IdentityKey,
    /// Sent by this user.
    pub outgoing: bool,
    /// The text.
    pub text: String,
    /// When the sender wrote it (sender's clock).
    pub sent_at_ms: u64,
    /// When this node stored it.
    pub stored_at_ms: u64,
    /// Outgoing: the other members when it was sent (for "delivered to N/M").
    pub recipients: u32,
    /// Outgoing: published to at least one peer (✓). Incoming: read by this user.
    pub flag: bool,
}

impl std::fmt::Debug for GroupMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMessage")
            .field("id", &self.id)
            .field("outgoing", &self.outgoing)
            .finish_non_exhaustive()
    }
}

macro_rules! group_reads {
    ($t:ty) => {
        impl $t {
            /// Every group, with its row.
            pub fn groups(&self) -> Result<Vec<(GroupId, GroupRow)>, StoreError> {
                let t = self.table(GROUPS)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    let (k, v) = row?;
                    out.push((k.value(), dec(v.value())?));
                }
                Ok(out)
            }

            /// One group's row.
            pub fn group(&self, id: &GroupId) -> Result<Option<GroupRow>, StoreError> {
                let id = *id;
                let t = self.table(GROUPS)?;
                t.get(id)?.map(|v| dec(v.value())).transpose()
            }

            /// Every op of a group (encoded).
            pub fn group_ops(&self, id: &GroupId) -> Result<Vec<Vec<u8>>, StoreError> {
                let id = *id;
                let t = self.table(GROUP_OPS)?;
                let mut out = Vec::new();
                for row in t.range((id, OpHash([0u8; 32]))..=(id, OpHash([255u8; 32])))? {
                    out.push(row?.1.value().to_vec());
                }
                Ok(out)
            }

            /// A frame, if held.
            pub fn group_frame(
                &self,
                id: &GroupId,
                sender: &CurveKey,
                seq: u64,
            ) -> Result<Option<FrameRow>, StoreError> {
                let id = *id;
                let t = self.table(GROUP_FRAMES)?;
                t.get((id, *sender, seq))?
                    .map(|v| dec(v.value()))
                    .transpose()
            }

            /// Up to `limit` frames of one sender after `after`, in order.
            pub fn group_frames_after(
                &self,
                id: &GroupId,
                sender: &CurveKey,
                after: u64,
                limit: usize,
            ) -> Result<Vec<(u64, FrameRow)>, StoreError> {
                let id = *id;
                let t = self.table(GROUP_FRAMES)?;
                let mut out = Vec::new();
                if after == u64::MAX {
                    return Ok(out);
                }
                for row in t.range((id, *sender, after + 1)..=(id, *sender, u64::MAX))? {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, v) = row?;
                    out.push((k.value().2, dec(v.value())?));
                }
                Ok(out)
            }

            /// How many frames a group holds.
            pub fn group_frame_count(&self, id: &GroupId) -> Result<u64, StoreError> {
                let id = *id;
                let t = self.table(GROUP_FRAMES)?;
                let mut n = 0u64;
                for row in t.range(
                    (id, CurveKey([0u8; 32]), 0u64)..=(id, CurveKey([255u8; 32]), u64::MAX),
                )? {
                    row?;
                    n += 1;
                }
                Ok(n)
            }

            /// Seqs of a sender's frames that wait for a key.
            pub fn group_pending(
                &self,
                id: &GroupId,
                sender: &CurveKey,
            ) -> Result<Vec<u64>, StoreError> {
                let id = *id;
                let t = self.table(GROUP_PENDING)?;
                let mut out = Vec::new();
                for row in t.range((id, *sender, 0u64)..=(id, *sender, u64::MAX))? {
                    out.push(row?.0.value().2);
                }
                Ok(out)
            }

            /// How many frames of a group wait for a key.
            pub fn group_pending_count(&self, id: &GroupId) -> Result<u64, StoreError> {
                let id = *id;
                let t = self.table(GROUP_PENDING)?;
                let mut n = 0u64;
                for row in t.range(
                    (id, CurveKey([0u8; 32]), 0u64)..=(id, CurveKey([255u8; 32]), u64::MAX),
                )? {
                    row?;
                    n += 1;
                }
                Ok(n)
            }

            /// Whether the held frame (group, sender, seq) waits for its key.
            pub fn group_frame_waits(
                &self,
                id: &GroupId,
                sender: &CurveKey,
                seq: u64,
            ) -> Result<bool, StoreError> {
                let t = self.table(GROUP_PENDING)?;
                Ok(t.get((*id, *sender, seq))?.is_some())
            }

            /// The frames held aside for a place (see [`WriteTx::put_group_alt`]).
            pub fn group_alts(
                &self,
                id: &GroupId,
                sender: &CurveKey,
                seq: u64,
            ) -> Result<Vec<Vec<u8>>, StoreError> {
                let t = self.table(GROUP_ALTS)?;
                let (lo, hi) = ([0u8; 32], [255u8; 32]);
                let k = *sender;
                let mut out = Vec::new();
                for row in t.range((*id, k, seq, &lo)..=(*id, k, seq, &hi))? {
                    out.push(row?.1.value().to_vec());
                }
                Ok(out)
            }

            /// Every sender's progress in a group.
            pub fn group_senders(
                &self,
                id: &GroupId,
            ) -> Result<Vec<(CurveKey, SenderRow)>, StoreError> {
                let id = *id;
                let t = self.table(GROUP_SENDERS)?;
                let mut out = Vec::new();
                for row in t.range((id, CurveKey([0u8; 32]))..=(id, CurveKey([255u8; 32])))? {
                    let (k, v) = row?;
                    out.push((k.value().1, dec(v.value())?));
                }
                Ok(out)
            }

            /// One sender's progress.
            pub fn group_sender(
                &self,
                id: &GroupId,
                sender: &CurveKey,
            ) -> Result<Option<SenderRow>, StoreError> {
                let id = *id;
                let t = self.table(GROUP_SENDERS)?;
                t.get((id, *sender))?.map(|v| dec(v.value())).transpose()
            }

            /// An inbound session's pickle.
            pub fn group_inbound(
                &self,
                id: &GroupId,
                sender: &CurveKey,
                session: &str,
            ) -> Result<Option<String>, StoreError> {
                let id = *id;
                let t = self.table(GROUP_INBOUND)?;
                Ok(t.get((id, *sender, session))?
                    .map(|v| v.value().to_string()))
            }

            /// The last `limit` messages of a group in display order (oldest first).
            pub fn group_history(
                &self,
                id: &GroupId,
                limit: usize,
            ) -> Result<Vec<(GroupMsgKey, GroupMessage)>, StoreError> {
                let id = *id;
                let t = self.table(GROUP_MSGS)?;
                let mut out = Vec::new();
                let lo = (id, 0u64, CurveKey([0u8; 32]), 0u64);
                let hi = (id, u64::MAX, CurveKey([255u8; 32]), u64::MAX);
                for row in t.range(lo..=hi)?.rev() {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, v) = row?;
                    let (g, lamport, dev, seq) = k.value();
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
                out.reverse();
                Ok(out)
            }

            /// The message stored at a key.
            pub fn group_history_at(
                &self,
                key: &GroupMsgKey,
            ) -> Result<Option<GroupMessage>, StoreError> {
                let t = self.table(GROUP_MSGS)?;
                t.get((GroupId(key.group), key.lamport, key.sender_dev, key.seq))?
                    .map(|v| dec(v.value()))
                    .transpose()
            }

            /// A group message by id.
            pub fn group_message(
                &self,
                msg: u128,
            ) -> Result<Option<(GroupMsgKey, GroupMessage)>, StoreError> {
                let ids = self.table(GROUP_MSG_IDS)?;
                let Some(key) = ids
                    .get(msg)?
                    .map(|v| dec::<GroupMsgKey>(v.value()))
                    .transpose()?
                else {
                    return Ok(None);
                };
                let t = self.table(GROUP_MSGS)?;
                let m = t
                    .get((GroupId(key.group), key.lamport, key.sender_dev, key.seq))?
                    .map(|v| dec(v.value()))
                    .transpose()?;
                Ok(m.map(|m| (key, m)))
            }

            /// Receipts for one of our messages: (member identity, delivered ms, read ms).
            pub fn group_receipts(
                &self,
                msg: u128,
            ) -> Result<Vec<(IdentityKey, u64, u64)>, StoreError> {
                let t = self.table(GROUP_RECEIPTS)?;
                let mut out = Vec::new();
                for row in
                    t.range((msg, IdentityKey([0u8; 32]))..=(msg, IdentityKey([255u8; 32])))?
                {
                    let (k, v) = row?;
                    let (d, r) = v.value();
                    out.push((k.value().1, d, r));
                }
                Ok(out)
            }
        }
    };
}

group_reads!(ReadTx);
group_reads!(WriteTx<'_>);

impl WriteTx<'_> {
    pub(crate) fn create_group_tables(&mut self) -> Result<(), StoreError> {
        self.table_mut(GROUPS)?;
        self.table_mut(GROUP_OPS)?;
        self.table_mut(GROUP_FRAMES)?;
        self.table_mut(GROUP_PENDING)?;
        self.table_mut(GROUP_ALTS)?;
        self.table_mut(GROUP_SENDERS)?;
        self.table_mut(GROUP_INBOUND)?;
        self.table_mut(GROUP_MSGS)?;
        self.table_mut(GROUP_MSG_IDS)?;
        self.table_mut(GROUP_RECEIPTS)?;
        Ok(())
    }

    /// Saves a group's row.
    pub fn put_group(&mut self, id: &GroupId, row: &GroupRow) -> Result<(), StoreError> {
        let id = *id;
        self.table_mut(GROUPS)?.insert(id, enc(row)?.as_slice())?;
        Ok(())
    }

    /// Saves an op; returns false when it was there already.
    pub fn put_group_op(
        &mut self,
        id: &GroupId,
        hash: &OpHash,
        op: &[u8],
    ) -> Result<bool, StoreError> {
        self.injected("group op write")?;
        let id = *id;
        Ok(self
            .table_mut(GROUP_OPS)?
            .insert((id, *hash), op)?
            .is_none())
    }

    /// Saves a frame; returns false when one with this (sender, seq) was there already.
    pub fn put_group_frame(
        &mut self,
        id: &GroupId,
        sender: &CurveKey,
        seq: u64,
        row: &FrameRow,
    ) -> Result<bool, StoreError> {
        let id = *id;
        let mut t = self.table_mut(GROUP_FRAMES)?;
        if t.get((id, *sender, seq))?.is_some() {
            return Ok(false);
        }
        t.insert((id, *sender, seq), enc(row)?.as_slice())?;
        Ok(true)
    }

    /// Drops a sender's frames up to `upto` (retention).
    pub fn drop_group_frames(
        &mut self,
        id: &GroupId,
        sender: &CurveKey,
        upto: u64,
    ) -> Result<u64, StoreError> {
        let id = *id;
        let mut t = self.table_mut(GROUP_FRAMES)?;
        let mut n = 0u64;
        t.retain_in((id, *sender, 0u64)..=(id, *sender, upto), |_, _| {
            n += 1;
            false
        })?;
        let mut p = self.table_mut(GROUP_PENDING)?;
        p.retain_in((id, *sender, 0u64)..=(id, *sender, upto), |_, _| false)?;
        let (lo, hi) = ([0u8; 32], [255u8; 32]);
        self.table_mut(GROUP_ALTS)?.retain_in(
            (id, *sender, 0u64, &lo)..=(id, *sender, upto, &hi),
            |_, _| false,
        )?;
        Ok(n)
    }

    /// Drops one frame.
    pub fn drop_group_frame(
        &mut self,
        id: &GroupId,
        sender: &CurveKey,
        seq: u64,
    ) -> Result<(), StoreError> {
        let id = *id;
        self.table_mut(GROUP_FRAMES)?.remove((id, *sender, seq))?;
        self.table_mut(GROUP_PENDING)?.remove((id, *sender, seq))?;
        Ok(())
    }

    /// Holds another frame for a place whose held frame waits for its key; false when the
    /// group holds [`MAX_GROUP_ALTS`] already (or this one is held).
    pub fn put_group_alt(
        &mut self,
        id: &GroupId,
        sender: &CurveKey,
        seq: u64,
        frame: &[u8],
    ) -> Result<bool, StoreError> {
        let hash: [u8; 32] = Sha256::digest(frame).into();
        let mut t = self.table_mut(GROUP_ALTS)?;
        let (lo, hi) = ([0u8; 32], [255u8; 32]);
        let (a, b) = (CurveKey([0u8; 32]), CurveKey([255u8; 32]));
        let mut n = 0u64;
        for row in t.range((*id, a, 0u64, &lo)..=(*id, b, u64::MAX, &hi))? {
            row?;
            n += 1;
            if n >= MAX_GROUP_ALTS {
                return Ok(false);
            }
        }
        Ok(t.insert((*id, *sender, seq, &hash), frame)?.is_none())
    }

    /// Forgets the frames held aside for a place (one took it, or it was dropped).
    pub fn drop_group_alts(
        &mut self,
        id: &GroupId,
        sender: &CurveKey,
        seq: u64,
    ) -> Result<(), StoreError> {
        let (lo, hi) = ([0u8; 32], [255u8; 32]);
        let k = *sender;
        self.table_mut(GROUP_ALTS)?
            .retain_in((*id, k, seq, &lo)..=(*id, k, seq, &hi), |_, _| false)?;
        Ok(())
    }

    /// Drops a sender's waiting frames before `seq` (they can never be opened here).
    pub fn drop_group_frames_pending_before(
        &mut self,
        id: &GroupId,
        sender: &CurveKey,
        seq: u64,
    ) -> Result<(), StoreError> {
        let raw = *id;
        if seq == 0 {
            return Ok(());
        }
        let waiting: Vec<u64> = {
            let t = self.table(GROUP_PENDING)?;
            let mut v = Vec::new();
            for row in t.range((raw, *sender, 0u64)..(raw, *sender, seq))? {
                v.push(row?.0.value().2);
            }
            v
        };
        for s in waiting {
            self.drop_group_frame(id, sender, s)?;
        }
        Ok(())
    }

    /// Marks a frame as waiting for its key (or, with `waiting == false`, opened).
    pub fn set_group_pending(
        &mut self,
        id: &GroupId,
        sender: &CurveKey,
        seq: u64,
        waiting: bool,
    ) -> Result<(), StoreError> {
        let id = *id;
        let mut t = self.table_mut(GROUP_PENDING)?;
        if waiting {
            t.insert((id, *sender, seq), ())?;
        } else {
            t.remove((id, *sender, seq))?;
        }
        Ok(())
    }

    /// Saves a sender's progress.
    pub fn put_group_sender(
        &mut self,
        id: &GroupId,
        sender: &CurveKey,
        row: &SenderRow,
    ) -> Result<(), StoreError> {
        let id = *id;
        self.table_mut(GROUP_SENDERS)?
            .insert((id, *sender), enc(row)?.as_slice())?;
        Ok(())
    }

    /// Saves an inbound session.
    pub fn put_group_inbound(
        &mut self,
        id: &GroupId,
        sender: &CurveKey,
        session: &str,
        pickle: &str,
    ) -> Result<(), StoreError> {
        let id = *id;
        self.table_mut(GROUP_INBOUND)?
            .insert((id, *sender, session), pickle)?;
        Ok(())
    }

    /// Adds a message unless one with its id is there; returns whether it was added.
    pub fn put_group_message(
        &mut self,
        key: &GroupMsgKey,
        msg: &GroupMessage,
    ) -> Result<bool, StoreError> {
        let mut ids = self.table_mut(GROUP_MSG_IDS)?;
        if ids.get(msg.id)?.is_some() {
            return Ok(false);
        }
        ids.insert(msg.id, enc(key)?.as_slice())?;
        drop(ids);
        self.table_mut(GROUP_MSGS)?.insert(
            (GroupId(key.group), key.lamport, key.sender_dev, key.seq),
            enc(msg)?.as_slice(),
        )?;
        Ok(true)
    }

    /// Replaces a stored message (same key).
    pub fn update_group_message(
        &mut self,
        key: &GroupMsgKey,
        msg: &GroupMessage,
    ) -> Result<(), StoreError> {
        self.table_mut(GROUP_MSGS)?.insert(
            (GroupId(key.group), key.lamport, key.sender_dev, key.seq),
            enc(msg)?.as_slice(),
        )?;
        Ok(())
    }

    /// Records a receipt (never lowers: a time once set stays). Returns whether anything
    /// changed.
    pub fn put_group_receipt(
        &mut self,
        msg: u128,
        member: &IdentityKey,
        delivered_ms: u64,
        read_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut t = self.table_mut(GROUP_RECEIPTS)?;
        let (d0, r0) = t.get((msg, *member))?.map(|v| v.value()).unwrap_or((0, 0));
        let d = if d0 == 0 {
            delivered_ms.max(read_ms)
        } else {
            d0
        };
        let r = if r0 == 0 { read_ms } else { r0 };
        if (d, r) == (d0, r0) {
            return Ok(false);
        }
        t.insert((msg, *member), (d, r))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message key and message as they were written before the sender device and
    /// identity were typed: plain arrays (no length).
    #[derive(Serialize)]
    struct OldMsgKey {
        group: [u8; 16],
        lamport: u64,
        sender_dev: [u8; 32],
        seq: u64,
    }

    #[derive(Serialize)]
    struct OldMessage {
        id: u128,
        sender: [u8; 32],
        outgoing: bool,
        text: String,
        sent_at_ms: u64,
        stored_at_ms: u64,
        recipients: u32,
        flag: bool,
    }

    #[test]
    fn typed_group_message_keys_keep_the_stored_encoding() {
        let old = enc(&OldMsgKey {
            group: [1; 16],
            lamport: 9,
            sender_dev: [0xc5; 32],
            seq: 3,
        })
        .unwrap();
        let key: GroupMsgKey = dec(&old).unwrap();
        assert_eq!(key.sender_dev, CurveKey([0xc5; 32]));
        assert_eq!(enc(&key).unwrap(), old);

        let old = enc(&OldMessage {
            id: 7,
            sender: [0x1d; 32],
            outgoing: false,
            text: "hi".into(),
            sent_at_ms: 1,
            stored_at_ms: 2,
            recipients: 0,
            flag: true,
        })
        .unwrap();
        let msg: GroupMessage = dec(&old).unwrap();
        assert_eq!(msg.sender, IdentityKey([0x1d; 32]));
        assert_eq!(enc(&msg).unwrap(), old);
    }
}
