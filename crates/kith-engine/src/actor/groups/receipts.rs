//! Receipts: ✓✓ delivered and read, per member, for the messages this device sent.
//!
//! Receipts go pairwise (the durable outbox, Olm) to the sending device as a
//! [`Body::GroupReceipt`]; the sender counts them per member and shows a message delivered
//! or read once every member who was there when it was sent has said so. The rules
//! (batching, which receipts are sent and taken, the counts) are in
//! [`crate::cores::group_receipts`]; this file reads the store, encodes the bodies and
//! queues them.
//!
//! Data flow:
//!
//! 1. **Delivered.** When a member opens a message (`open_frame`), `receipt_due` adds its
//!    receipt to [`DueReceipts`], where it waits up to
//!    [`RECEIPT_DELAY`](crate::cores::group_receipts::RECEIPT_DELAY) for others to the
//!    same sender device and group; a batch the core hands back at once (full, or no room
//!    for another) goes out now (`send_receipts`).
//! 2. The actor's tick sends the batches that have waited (`flush_group_receipts`), all of
//!    them as the node stops. Nothing goes to a blocked sender.
//! 3. **Read.** `kith group read` (`group_mark_read`) marks a group's messages read and
//!    sends one receipt per sender device, in chunks, if the user's privacy settings allow
//!    read receipts; with them off, read receipts from others are not shown either.
//! 4. The sender's `on_group_receipt` takes a receipt only from a current member, for an
//!    outgoing message of that group, stores it, and announces the new counts
//!    ([`Event::GroupStatus`]).

use std::collections::HashMap;

use crate::cores::group_receipts::{
    Batch, accept_receipt, marks_read, read_receipt_chunks, receipt_counts, receipt_times,
    sends_read_receipts,
};
use crate::model::{Fatal, Outcome};
use kith_proto::wire::{Body, ReceiptKind};
use kith_store::WriteTx;
use kith_types::{CurveKey, DeviceKey, GroupId, IdentityKey, MessageId};

use super::{Now, encode_body};
use crate::actor::{After, Engine, State};
use crate::model::Event;

pub(super) use crate::cores::group_receipts::DueReceipts;

impl Engine {
    /// Sends the delivery receipts that have waited long enough (all of them when `all`,
    /// as the node stops).
    pub(in crate::actor) fn flush_group_receipts(&mut self, all: bool) {
        let now = Now::read();
        let due = self.st.groups.receipts.take(now.at, all);
        if due.is_empty() {
            return;
        }
        self.write_then("cannot queue group receipts", |st, w, after| {
            for ((dev, group), batch) in due {
                st.send_receipts(w, dev, group, batch, now, after)?;
            }
            Ok(())
        });
    }
}

impl State {
    /// Queues a delivery receipt for `id` to its sender device; sends the batch at once
    /// when it is full or there is no room for another batch.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn receipt_due(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: DeviceKey,
        identity: IdentityKey,
        group: GroupId,
        id: u128,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        match self
            .groups
            .receipts
            .add((dev, group), identity, id, now.at, now.ms)
        {
            Some(batch) => self.send_receipts(w, dev, group, batch, now, after),
            None => Ok(()),
        }
    }

    /// Queues one pairwise receipt body for a batch of group messages of `dev`.
    fn send_receipts(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: DeviceKey,
        group: GroupId,
        batch: Batch,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let body = Body::GroupReceipt {
            group,
            kind: ReceiptKind::Delivered,
            ids: batch.ids,
            at_ms: batch.at_ms,
        };
        let bytes = encode_body(&body)?;
        self.enqueue_dev(w, dev, batch.identity, bytes, now, after)
    }

    /// Receipts from a member for our messages.
    pub(in crate::actor) fn on_group_receipt(
        &mut self,
        w: &mut WriteTx<'_>,
        from: IdentityKey,
        group: GroupId,
        kind: ReceiptKind,
        ids: Vec<u128>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let from_member = self
            .groups
            .states
            .get(&group)
            .is_some_and(|s| s.members.contains(&from));
        if !accept_receipt(from_member, kind, self.social.privacy.read_receipts) {
            return Ok(());
        }
        let now = Now::read().ms;
        for id in ids {
            let Some((key, msg)) = w.group_message(id)? else {
                continue;
            };
            if key.group != group.0 || !msg.outgoing {
                continue;
            }
            let (d, r) = receipt_times(kind, now);
            if w.put_group_receipt(id, &from, d, r)? {
                let (delivered, read) = receipt_counts(&w.group_receipts(id)?);
                let gname = self
                    .groups
                    .states
                    .get(&group)
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                after.push(After::Event(Event::GroupStatus {
                    group: gname,
                    id: MessageId(id).to_string(),
                    delivered,
                    read,
                    of: msg.recipients,
                }));
            }
        }
        Ok(())
    }

    /// `kith group read`: marks a group's messages read and tells their senders.
    pub(in crate::actor) fn group_mark_read(
        &mut self,
        w: &mut WriteTx<'_>,
        q: &str,
        now: Now,
        after: &mut Vec<After>,
    ) -> Outcome<usize> {
        let id = match self.find_group(w, q)? {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let mut per_sender: HashMap<CurveKey, Vec<u128>> = HashMap::new();
        let mut n = 0;
        for (key, mut msg) in w.group_history(&id, 10_000)? {
            if !marks_read(msg.outgoing, msg.flag) {
                continue;
            }
            msg.flag = true;
            w.update_group_message(&key, &msg)?;
            n += 1;
            per_sender.entry(key.sender_dev).or_default().push(msg.id);
        }
        if sends_read_receipts(self.social.privacy.read_receipts) {
            for (curve, ids) in per_sender {
                let Some(dev) = w.device_by_curve(&curve)? else {
                    continue;
                };
                let Some(d) = w.device(&dev)? else { continue };
                if self.social.blocked.contains(&d.identity) {
                    continue;
                }
                for chunk in read_receipt_chunks(&ids) {
                    let body = Body::GroupReceipt {
                        group: id,
                        kind: ReceiptKind::Read,
                        ids: chunk.to_vec(),
                        at_ms: now.ms,
                    };
                    let bytes = encode_body(&body)?;
                    self.enqueue_dev(w, dev, d.identity, bytes, now, after)?;
                }
            }
        }
        Ok(Ok(n))
    }
}
