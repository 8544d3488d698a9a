//! Group receipts: how delivery receipts for group messages are batched on their way to the
//! sender device, and which receipts are sent, taken and counted. A core with no I/O: it
//! reads no clock and touches neither the store nor the network. The actor
//! (`actor/groups/receipts.rs`) passes the time and what it read from the store in, and
//! sends the batches it gets back as pairwise `GroupReceipt` bodies.
//!
//! Data flow:
//!
//! 1. A member opens a message: its delivery receipt joins the batch of its (sender device,
//!    group) in [`DueReceipts::add`]. A batch that reaches [`MAX_RECEIPT_IDS`] comes back at
//!    once; so does a receipt that finds no room for another batch (at most
//!    [`MAX_DUE_RECEIPTS`] wait), alone.
//! 2. The actor's tick takes the batches that have waited [`RECEIPT_DELAY`]
//!    ([`DueReceipts::take`]); all of them as the node stops. A batch carries the time its
//!    first receipt came (the time the sender shows).
//! 3. `kith group read` marks the incoming messages not read yet ([`marks_read`]) and, when
//!    the privacy settings allow read receipts, sends them per sender device in chunks of
//!    [`MAX_RECEIPT_IDS`] ([`sends_read_receipts`], [`read_receipt_chunks`]).
//! 4. The sender takes a receipt only from a current member, and a read receipt only while
//!    its own read receipts are on ([`accept_receipt`]); it stores the delivered and read
//!    times ([`receipt_times`]) per member and shows the counts ([`receipt_counts`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kith_proto::wire::{MAX_RECEIPT_IDS, ReceiptKind};
use kith_types::{DeviceKey, GroupId, IdentityKey};

/// How long a delivery receipt for a group message waits for others to the same sender
/// device, so that one pairwise message carries them all.
pub const RECEIPT_DELAY: Duration = Duration::from_secs(1);
/// Most (sender device, group) receipt batches waiting; a receipt that finds no room goes
/// out on its own at once.
pub const MAX_DUE_RECEIPTS: usize = 4096;

/// Where a batch of group receipts goes: (sender device, group).
pub type ReceiptTo = (DeviceKey, GroupId);

/// Delivery receipts for one sender device's messages in one group, not sent yet.
#[derive(Debug, PartialEq, Eq)]
pub struct Batch {
    /// The sender's identity (the pairwise conversation).
    pub identity: IdentityKey,
    /// The message ids.
    pub ids: Vec<u128>,
    /// When the first of them arrived (the time the sender shows), Unix milliseconds.
    pub at_ms: u64,
}

/// Delivery receipts waiting up to [`RECEIPT_DELAY`], per (sender device, group), with
/// when the first of each batch came.
#[derive(Debug, Default)]
pub struct DueReceipts(HashMap<ReceiptTo, (Batch, Instant)>);

impl DueReceipts {
    /// Adds a receipt for message `id` of `to`'s sender (`identity`), at `at` (`ms` on the
    /// wall clock); returns a batch to send at once: the receipt alone when there is no
    /// room for another batch, or its batch when it is full.
    pub fn add(
        &mut self,
        to: ReceiptTo,
        identity: IdentityKey,
        id: u128,
        at: Instant,
        ms: u64,
    ) -> Option<Batch> {
        if !self.0.contains_key(&to) && self.0.len() >= MAX_DUE_RECEIPTS {
            return Some(Batch {
                identity,
                ids: vec![id],
                at_ms: ms,
            });
        }
        let (batch, _) = self.0.entry(to).or_insert_with(|| {
            let batch = Batch {
                identity,
                ids: Vec::new(),
                at_ms: ms,
            };
            (batch, at)
        });
        batch.ids.push(id);
        if batch.ids.len() >= MAX_RECEIPT_IDS {
            return self.0.remove(&to).map(|(b, _)| b);
        }
        None
    }

    /// Takes the batches that have waited [`RECEIPT_DELAY`] at `now` (all of them when
    /// `all`).
    pub fn take(&mut self, now: Instant, all: bool) -> Vec<(ReceiptTo, Batch)> {
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

/// Whether a receipt is taken: it comes from a current member of its group, and, for a
/// read receipt, this user's read receipts are on (with them off, others' are not shown).
pub fn accept_receipt(from_member: bool, kind: ReceiptKind, read_receipts_on: bool) -> bool {
    from_member && (kind != ReceiptKind::Read || read_receipts_on)
}

/// The (delivered, read) times a receipt of `kind` taken at `now_ms` stores for its member
/// (0: not yet; a read message is delivered too).
pub fn receipt_times(kind: ReceiptKind, now_ms: u64) -> (u64, u64) {
    match kind {
        ReceiptKind::Delivered => (now_ms, 0),
        ReceiptKind::Read => (now_ms, now_ms),
    }
}

/// How many members have a message delivered and read, from its stored receipts (member,
/// delivered time, read time).
pub fn receipt_counts(receipts: &[(IdentityKey, u64, u64)]) -> (u32, u32) {
    let delivered = receipts.iter().filter(|x| x.1 > 0).count() as u32;
    let read = receipts.iter().filter(|x| x.2 > 0).count() as u32;
    (delivered, read)
}

/// Whether `kith group read` marks a message read: an incoming one not read yet.
pub fn marks_read(outgoing: bool, read: bool) -> bool {
    !outgoing && !read
}

/// Whether `kith group read` sends read receipts at all: only while this user's read
/// receipts are on.
pub fn sends_read_receipts(read_receipts_on: bool) -> bool {
    read_receipts_on
}

/// The read receipts to one sender device, in bodies of at most [`MAX_RECEIPT_IDS`] ids.
pub fn read_receipt_chunks(ids: &[u128]) -> std::slice::Chunks<'_, u128> {
    ids.chunks(MAX_RECEIPT_IDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> (Instant, u64) {
        (start + Duration::from_millis(ms), 1_000_000 + ms)
    }

    fn add(due: &mut DueReceipts, to: ReceiptTo, id: u128, t: (Instant, u64)) -> Option<Batch> {
        due.add(to, IdentityKey([3; 32]), id, t.0, t.1)
    }

    #[test]
    fn receipts_wait_for_the_delay_then_go_in_one_batch() {
        let start = Instant::now();
        let mut due = DueReceipts::default();
        let to = (DeviceKey([1; 32]), GroupId([2; 16]));
        assert_eq!(add(&mut due, to, 10, at(start, 0)), None);
        assert_eq!(add(&mut due, to, 11, at(start, 400)), None);
        assert!(due.take(at(start, 999).0, false).is_empty());
        let sent = due.take(at(start, 1000).0, false);
        assert_eq!(
            sent,
            vec![(
                to,
                Batch {
                    identity: IdentityKey([3; 32]),
                    ids: vec![10, 11],
                    at_ms: 1_000_000,
                }
            )]
        );
        assert!(due.take(at(start, 5000).0, true).is_empty());
    }

    #[test]
    fn all_batches_go_as_the_node_stops() {
        let start = Instant::now();
        let mut due = DueReceipts::default();
        add(
            &mut due,
            (DeviceKey([1; 32]), GroupId([2; 16])),
            1,
            at(start, 0),
        );
        add(
            &mut due,
            (DeviceKey([4; 32]), GroupId([2; 16])),
            2,
            at(start, 0),
        );
        assert!(due.take(at(start, 10).0, false).is_empty());
        assert_eq!(due.take(at(start, 10).0, true).len(), 2);
    }

    #[test]
    fn a_full_batch_goes_at_once_and_a_receipt_without_room_goes_alone() {
        let start = Instant::now();
        let mut due = DueReceipts::default();
        let to = (DeviceKey([1; 32]), GroupId([2; 16]));
        for id in 0..MAX_RECEIPT_IDS as u128 - 1 {
            assert_eq!(add(&mut due, to, id, at(start, 0)), None);
        }
        let full = add(&mut due, to, 999, at(start, 5)).unwrap();
        assert_eq!(full.ids.len(), MAX_RECEIPT_IDS);
        assert_eq!(full.at_ms, 1_000_000, "the time of the first receipt");
        for n in 0..MAX_DUE_RECEIPTS {
            let other = (DeviceKey([9; 32]), GroupId((n as u128).to_le_bytes()));
            assert_eq!(add(&mut due, other, 1, at(start, 0)), None);
        }
        let alone = add(&mut due, to, 7, at(start, 6)).unwrap();
        assert_eq!(alone.ids, vec![7]);
        assert_eq!(alone.at_ms, 1_000_006);
        assert_eq!(due.take(at(start, 0).0, true).len(), MAX_DUE_RECEIPTS);
    }

    #[test]
    fn receipts_are_taken_from_members_and_read_ones_follow_the_privacy_setting() {
        assert!(accept_receipt(true, ReceiptKind::Delivered, false));
        assert!(accept_receipt(true, ReceiptKind::Read, true));
        assert!(!accept_receipt(true, ReceiptKind::Read, false));
        assert!(!accept_receipt(false, ReceiptKind::Delivered, true));
        assert!(!accept_receipt(false, ReceiptKind::Read, true));
    }

    #[test]
    fn receipts_store_times_and_count_members() {
        assert_eq!(receipt_times(ReceiptKind::Delivered, 5), (5, 0));
        assert_eq!(receipt_times(ReceiptKind::Read, 5), (5, 5));
        let rs = [
            (IdentityKey([1; 32]), 5, 0),
            (IdentityKey([2; 32]), 6, 7),
            (IdentityKey([3; 32]), 0, 0),
        ];
        assert_eq!(receipt_counts(&rs), (2, 1));
        assert_eq!(receipt_counts(&[]), (0, 0));
    }

    #[test]
    fn reading_marks_incoming_unread_messages_and_sends_chunks_if_allowed() {
        assert!(marks_read(false, false));
        assert!(!marks_read(true, false));
        assert!(!marks_read(false, true));
        let ids: Vec<u128> = (0..MAX_RECEIPT_IDS as u128 + 1).collect();
        let chunks: Vec<&[u128]> = read_receipt_chunks(&ids).collect();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].len(), MAX_RECEIPT_IDS);
        assert_eq!(chunks[1], &[MAX_RECEIPT_IDS as u128][..]);
        assert!(sends_read_receipts(true));
        assert!(!sends_read_receipts(false));
    }
}
