//! Receipts: ✓✓ delivered and read, per member, for the messages this device sent.
//!
//! Receipts go pairwise (the durable outbox, Olm) to the sending device as a
//! [`Body::GroupReceipt`]; the sender counts them per member and shows a message delivered
//! or read once every member who was there when it was sent has said so.
//!
//! - **Delivered.** When a member opens a message (`open_frame`), its receipt waits up to
//!   [`RECEIPT_DELAY`] in [`DueReceipts`] for others to the same sender device and group,
//!   so that one pairwise message carries them all; a batch goes at once when it holds
//!   [`MAX_RECEIPT_IDS`], and a receipt that finds no room for another batch goes alone.
//!   The actor's tick sends the batches that have waited (`flush_group_receipts`), all of
//!   them as the node stops. Nothing goes to a blocked sender.
//! - **Read.** `kith group read` marks a group's messages read and sends one receipt per
//!   sender device (in chunks of [`MAX_RECEIPT_IDS`]), if the user's privacy settings
//!   allow read receipts; with them off, read receipts from others are not shown either.
//! - A receipt is taken only from a current member, for an outgoing message of that group.

use std::collections::HashMap;

use crate::model::{Fatal, Outcome};
use kith_proto::wire::{Body, MAX_RECEIPT_IDS, ReceiptKind};
use kith_store::WriteTx;
use kith_types::{CurveKey, DeviceKey, MessageId};
use std::time::Instant;

use super::{Now, RECEIPT_DELAY, encode_body};
use crate::actor::{After, Engine, State};
use crate::model::Event;

/// Most (sender device, group) receipt batches waiting; a receipt that finds no room goes
/// out on its own at once.
const MAX_DUE_RECEIPTS: usize = 4096;

/// Where a batch of group receipts goes: (sender device, group).
type ReceiptTo = (DeviceKey, [u8; 16]);

/// Delivery receipts for one sender device's messages in one group, not sent yet.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Batch {
    /// The sender's identity (the pairwise conversation).
    identity: [u8; 32],
    ids: Vec<u128>,
    /// When the first of them arrived (the time the sender shows).
    at_ms: u64,
}

/// Delivery receipts waiting up to [`RECEIPT_DELAY`], per (sender device, group), with
/// when the first of each batch came.
#[derive(Default)]
pub(super) struct DueReceipts(HashMap<ReceiptTo, (Batch, Instant)>);

impl DueReceipts {
    /// Adds a receipt for message `id` of `to`'s sender (`identity`); returns a batch to
    /// send at once: the receipt alone when there is no room for another batch, or its
    /// batch when it is full.
    fn add(&mut self, to: ReceiptTo, identity: [u8; 32], id: u128, now: Now) -> Option<Batch> {
        if !self.0.contains_key(&to) && self.0.len() >= MAX_DUE_RECEIPTS {
            return Some(Batch {
                identity,
                ids: vec![id],
                at_ms: now.ms,
            });
        }
        let (batch, _) = self.0.entry(to).or_insert_with(|| {
            let batch = Batch {
                identity,
                ids: Vec::new(),
                at_ms: now.ms,
            };
            (batch, now.at)
        });
        batch.ids.push(id);
        if batch.ids.len() >= MAX_RECEIPT_IDS {
            return self.0.remove(&to).map(|(b, _)| b);
        }
        None
    }

    /// Takes the batches that have waited [`RECEIPT_DELAY`] at `now` (all of them when
    /// `all`).
    fn take(&mut self, now: Instant, all: bool) -> Vec<(ReceiptTo, Batch)> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let keys: Vec<ReceiptTo> = self
            .0
            .iter()
            .filter(|(_, (_, since))| all || now.duration_since(*since) >= RECEIPT_DELAY)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.0.remove(&k).map(|(b, _)| (k, b)))
            .collect()
    }
}

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
        identity: [u8; 32],
        group: [u8; 16],
        id: u128,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        match self.groups.receipts.add((dev, group), identity, id, now) {
            Some(batch) => self.send_receipts(w, dev, group, batch, now, after),
            None => Ok(()),
        }
    }

    /// Queues one pairwise receipt body for a batch of group messages of `dev`.
    fn send_receipts(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: DeviceKey,
        group: [u8; 16],
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
        from: [u8; 32],
        group: [u8; 16],
        kind: ReceiptKind,
        ids: Vec<u128>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        if !self
            .groups
            .states
            .get(&group)
            .is_some_and(|s| s.members.contains(&from))
        {
            return Ok(());
        }
        if kind == ReceiptKind::Read && !self.social.privacy.read_receipts {
            return Ok(());
        }
        let now = Now::read().ms;
        for id in ids {
            let Some((key, msg)) = w.group_message(id)? else {
                continue;
            };
            if key.group != group || !msg.outgoing {
                continue;
            }
            let (d, r) = match kind {
                ReceiptKind::Delivered => (now, 0),
                ReceiptKind::Read => (now, now),
            };
            if w.put_group_receipt(id, &from, d, r)? {
                let rs = w.group_receipts(id)?;
                let delivered = rs.iter().filter(|x| x.1 > 0).count() as u32;
                let read = rs.iter().filter(|x| x.2 > 0).count() as u32;
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
        let mut per_sender: HashMap<[u8; 32], Vec<u128>> = HashMap::new();
        let mut n = 0;
        for (key, mut msg) in w.group_history(&id, 10_000)? {
            if msg.outgoing || msg.flag {
                continue;
            }
            msg.flag = true;
            w.update_group_message(&key, &msg)?;
            n += 1;
            per_sender.entry(key.sender_dev).or_default().push(msg.id);
        }
        if self.social.privacy.read_receipts {
            for (curve, ids) in per_sender {
                let Some(dev) = w.device_by_curve(&CurveKey(curve))? else {
                    continue;
                };
                let Some(d) = w.device(&dev)? else { continue };
                if self.social.blocked.contains(&d.identity) {
                    continue;
                }
                for chunk in ids.chunks(MAX_RECEIPT_IDS) {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(start: Instant, ms: u64) -> Now {
        Now {
            at: start + Duration::from_millis(ms),
            ms: 1_000_000 + ms,
        }
    }

    #[test]
    fn receipts_wait_for_the_delay_then_go_in_one_batch() {
        let start = Instant::now();
        let mut due = DueReceipts::default();
        let to = (DeviceKey([1; 32]), [2; 16]);
        assert_eq!(due.add(to, [3; 32], 10, at(start, 0)), None);
        assert_eq!(due.add(to, [3; 32], 11, at(start, 400)), None);
        assert!(due.take(at(start, 999).at, false).is_empty());
        let sent = due.take(at(start, 1000).at, false);
        assert_eq!(
            sent,
            vec![(
                to,
                Batch {
                    identity: [3; 32],
                    ids: vec![10, 11],
                    at_ms: 1_000_000,
                }
            )]
        );
        assert!(due.take(at(start, 5000).at, true).is_empty());
    }

    #[test]
    fn a_full_batch_goes_at_once_and_a_receipt_without_room_goes_alone() {
        let start = Instant::now();
        let mut due = DueReceipts::default();
        let to = (DeviceKey([1; 32]), [2; 16]);
        for id in 0..MAX_RECEIPT_IDS as u128 - 1 {
            assert_eq!(due.add(to, [3; 32], id, at(start, 0)), None);
        }
        let full = due.add(to, [3; 32], 999, at(start, 5)).unwrap();
        assert_eq!(full.ids.len(), MAX_RECEIPT_IDS);
        assert_eq!(full.at_ms, 1_000_000, "the time of the first receipt");
        for n in 0..MAX_DUE_RECEIPTS {
            let other = (DeviceKey([9; 32]), (n as u128).to_le_bytes());
            assert_eq!(due.add(other, [3; 32], 1, at(start, 0)), None);
        }
        let alone = due.add(to, [3; 32], 7, at(start, 6)).unwrap();
        assert_eq!(alone.ids, vec![7]);
        assert_eq!(due.take(at(start, 0).at, true).len(), MAX_DUE_RECEIPTS);
    }
}
