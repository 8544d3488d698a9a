//! Group frames: the rules for taking a frame of a group and for numbering our own. A core
//! with no I/O: it reads no clock and touches neither the store, Megolm nor the network.
//! The engine actor (`crate::actor::groups::frames`) reads what a rule needs from the store
//! (is the sender a member, is the frame held, the sender's marks), passes it in as plain
//! values, and stores, opens and forwards as decided.
//!
//! Data flow of a frame that arrives (by gossipsub or by catch-up):
//!
//! 1. Our own frame come back is only stored again if lost. Another sender's →
//!    [`admit`]: its device must be known, its publisher (for a gossiped frame) must be
//!    that device ([`Admit::Reject`] otherwise) and its user a current member of the group
//!    ([`Admit::Ignore`] otherwise: neither kept nor forwarded).
//! 2. [`place`] dedupes by (sender, seq): a frame held already, or at or below the sender's
//!    `contiguous` mark once its key is here, is accepted and not kept again; a new one is
//!    kept, and shows a gap when it lies beyond `contiguous + 1` ([`Place::New`]), which
//!    has the actor catch up with the peer that handed it over and with our mailboxes.
//!    Its message id dedupes the shown message (the store keeps one per key).
//! 3. The sender's marks move: [`Marks::seen`] raises `max`; [`advance`] moves
//!    `contiguous` over the seqs held right after it.
//! 4. Without the sender's key the frame waits, at most [`MAX_PENDING_FRAMES`] per group
//!    ([`may_wait`]); more are dropped and fetched again by catch-up once the key is here.
//! 5. Opened, its Lamport clock raises ours ([`lamport_seen`]); messages are shown in
//!    [`DisplayKey`] order, (Lamport clock, sender device, seq), the same on every member
//!    whatever the order of arrival.
//!
//! Data flow of a frame we send:
//!
//! 1. [`next_send`] gives its seq (1, 2, 3… per device and group) and Lamport clock (one
//!    past the highest seen); [`Marks::sent`] records it as held and keyed.
//! 2. Its publication is remembered by network tag in [`Publishing`] (at most
//!    [`MAX_PUBLISHING`]) until its outcome marks it ✓ sent.

use kith_types::BoundedMap;

/// Most frames waiting for their key, per group; more are dropped (sync fetches them again).
pub const MAX_PENDING_FRAMES: u64 = 20_000;
/// Most publications remembered while their outcome is awaited.
pub const MAX_PUBLISHING: usize = 4096;

/// Our frames being published, by the network command's tag (`K`: what marks the message
/// ✓ sent).
#[derive(Debug)]
pub struct Publishing<K>(BoundedMap<u64, K>);

impl<K> Default for Publishing<K> {
    fn default() -> Self {
        Self(BoundedMap::new(MAX_PUBLISHING))
    }
}

impl<K> Publishing<K> {
    /// Remembers a publication (the oldest is forgotten when there are too many: its message
    /// then stays unmarked until a receipt comes).
    pub fn start(&mut self, tag: u64, key: K) {
        self.0.insert(tag, key);
    }

    /// The publication with `tag` ended; what it was, if still remembered.
    pub fn done(&mut self, tag: u64) -> Option<K> {
        self.0.remove(&tag)
    }
}

/// Whether another sender's frame is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Checked: go on to [`place`].
    Take,
    /// Not forwarded, not kept (unknown device, or not a current member).
    Ignore,
    /// Published by another device than its sender: rejected.
    Reject,
}

/// Decides on a frame from another device: `device` is whether its sending device is known,
/// `publisher_is_sender` whether its publisher (for a gossiped frame; `None` otherwise) is
/// that device, `member` whether its user is a current member. A frame its sender sent
/// just before leaving may arrive after and is dropped; a new member's frames that arrive
/// before the op adding it are fetched again once its key is here.
pub fn admit(device: bool, publisher_is_sender: Option<bool>, member: bool) -> Admit {
    if !device {
        return Admit::Ignore;
    }
    if publisher_is_sender == Some(false) {
        return Admit::Reject;
    }
    if !member {
        return Admit::Ignore;
    }
    Admit::Take
}

/// What this node knows of one sender's frames in a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    /// Whether this node holds a key of the sender (from then on frames are counted).
    pub keyed: bool,
    /// Every frame up to this seq is held (or no longer needed).
    pub contiguous: u64,
    /// The highest seq seen.
    pub max: u64,
}

impl Marks {
    /// A new frame `seq` was kept.
    pub fn seen(&mut self, seq: u64) {
        self.max = self.max.max(seq);
    }

    /// We sent our frame `seq`.
    pub fn sent(&mut self, seq: u64) {
        self.keyed = true;
        self.max = seq;
        self.contiguous = self.contiguous.max(seq);
    }
}

/// Where a frame of a member falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Held already: accepted, nothing to do.
    Held,
    /// At or below the mark this node can open from (or already dropped): accepted, not
    /// kept.
    Behind,
    /// New: kept; `gap` when frames between the mark and it are missing.
    New {
        /// Whether to catch up.
        gap: bool,
    },
}

/// Places frame `seq` of a sender given whether it is `held` and the sender's `marks`.
pub fn place(held: bool, marks: Marks, seq: u64) -> Place {
    if held {
        return Place::Held;
    }
    if marks.keyed && seq <= marks.contiguous {
        return Place::Behind;
    }
    Place::New {
        gap: marks.keyed && seq > marks.contiguous + 1,
    }
}

/// Moves `contiguous` over `held`, the seqs held after it in ascending order; returns
/// the new mark if it moved (the actor reads the next seqs after it and asks again).
pub fn advance(contiguous: u64, held: impl IntoIterator<Item = u64>) -> Option<u64> {
    let mut mark = contiguous;
    for seq in held {
        if seq != mark + 1 {
            break;
        }
        mark = seq;
    }
    (mark != contiguous).then_some(mark)
}

/// Whether one more frame may wait for its key, with `pending` waiting in its group.
pub fn may_wait(pending: u64) -> bool {
    pending < MAX_PENDING_FRAMES
}

/// Our Lamport clock after seeing `seen`: the new value when it moved.
pub fn lamport_seen(ours: u64, seen: u64) -> Option<u64> {
    (seen > ours).then_some(seen)
}

/// The seq and Lamport clock of the frame we send next, given the group's next seq and
/// the highest clock seen.
pub fn next_send(next_seq: u64, lamport: u64) -> (u64, u64) {
    (next_seq.max(1), lamport + 1)
}

/// After a restore, how long a group's sends wait for a first catch-up with a member (which
/// brings back this device's own frames sent after the backup, see [`restored_next_seq`]);
/// past it, sends go ahead with the numbering as it is.
pub const RESTORE_SYNC_WAIT_MS: u64 = 120_000;
/// The furthest one of our own frames coming back after a restore may move our numbering
/// (a bound on what a member replaying a forged "own" frame could do to it).
pub const MAX_RESTORE_JUMP: u64 = 1 << 20;

/// After a restore, our own frame `own_seq` came back from a member: the old device sent it
/// after the backup, so our next frame must come after it, or members would take it for
/// the one they hold. The new `next_seq`, when it must move.
pub fn restored_next_seq(next_seq: u64, own_seq: u64) -> Option<u64> {
    if own_seq >= next_seq && own_seq - next_seq < MAX_RESTORE_JUMP {
        own_seq.checked_add(1)
    } else {
        None
    }
}

/// Whether a send in a group restored at `restored_ms` (and not caught up since) waits.
pub fn restored_send_waits(restored_ms: u64, now_ms: u64) -> bool {
    now_ms >= restored_ms && now_ms - restored_ms < RESTORE_SYNC_WAIT_MS
}

/// The order messages are shown in: Lamport clock, then sender device, then seq (the
/// store's message key sorts the same way).
pub type DisplayKey = (u64, [u8; 32], u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_members_frames_from_their_own_device_are_taken() {
        assert_eq!(admit(false, None, true), Admit::Ignore, "unknown device");
        assert_eq!(
            admit(true, Some(false), true),
            Admit::Reject,
            "relayed as own"
        );
        assert_eq!(admit(true, Some(false), false), Admit::Reject);
        assert_eq!(
            admit(true, Some(true), false),
            Admit::Ignore,
            "not a member"
        );
        assert_eq!(admit(true, Some(true), true), Admit::Take);
        assert_eq!(admit(true, None, true), Admit::Take, "by catch-up");
    }

    #[test]
    fn frames_are_deduped_by_sender_and_seq_and_gaps_ask_for_catch_up() {
        let keyed = Marks {
            keyed: true,
            contiguous: 4,
            max: 4,
        };
        assert_eq!(place(true, keyed, 9), Place::Held);
        assert_eq!(place(false, keyed, 4), Place::Behind);
        assert_eq!(place(false, keyed, 5), Place::New { gap: false });
        assert_eq!(place(false, keyed, 7), Place::New { gap: true });
        let unkeyed = Marks::default();
        assert_eq!(
            place(false, unkeyed, 7),
            Place::New { gap: false },
            "before a key, seqs are not counted"
        );
    }

    #[test]
    fn contiguous_moves_over_held_frames_only() {
        assert_eq!(advance(4, [5, 6, 8]), Some(6));
        assert_eq!(advance(4, [6, 7]), None);
        assert_eq!(advance(0, []), None);
        let mut m = Marks::default();
        m.seen(3);
        m.seen(2);
        assert_eq!(m.max, 3);
    }

    #[test]
    fn waiting_frames_are_bounded_per_group() {
        assert!(may_wait(0));
        assert!(may_wait(MAX_PENDING_FRAMES - 1));
        assert!(!may_wait(MAX_PENDING_FRAMES));
    }

    #[test]
    fn sending_numbers_from_one_and_past_the_highest_clock() {
        assert_eq!(next_send(0, 0), (1, 1));
        assert_eq!(next_send(5, 9), (5, 10));
        let mut m = Marks {
            keyed: false,
            contiguous: 7,
            max: 2,
        };
        m.sent(5);
        assert_eq!(
            m,
            Marks {
                keyed: true,
                contiguous: 7,
                max: 5
            }
        );
        assert_eq!(lamport_seen(4, 9), Some(9));
        assert_eq!(lamport_seen(9, 9), None);
    }

    #[test]
    fn after_a_restore_our_own_frames_coming_back_move_the_numbering_past_them() {
        // The backup said next is 4; the old device went on to 9.
        assert_eq!(restored_next_seq(4, 9), Some(10));
        assert_eq!(restored_next_seq(4, 4), Some(5));
        // Frames we hold the numbers of already change nothing.
        assert_eq!(restored_next_seq(10, 9), None);
        assert_eq!(restored_next_seq(10, 3), None);
        // A forged frame far ahead cannot throw the numbering away.
        assert_eq!(restored_next_seq(4, 4 + MAX_RESTORE_JUMP), None);
        assert_eq!(restored_next_seq(4, u64::MAX), None);
        assert!(restored_send_waits(1_000, 1_000 + RESTORE_SYNC_WAIT_MS - 1));
        assert!(!restored_send_waits(1_000, 1_000 + RESTORE_SYNC_WAIT_MS));
        assert!(
            !restored_send_waits(5_000, 1_000),
            "a clock set back does not wait forever"
        );
    }

    #[test]
    fn display_order_is_clock_then_device_then_seq() {
        let mut keys: Vec<DisplayKey> = vec![(2, [1; 32], 1), (1, [9; 32], 5), (1, [2; 32], 7)];
        keys.sort();
        assert_eq!(
            keys,
            vec![(1, [2; 32], 7), (1, [9; 32], 5), (2, [1; 32], 1)]
        );
    }

    #[test]
    fn publications_in_flight_are_bounded() {
        let mut p = Publishing::default();
        for tag in 0..=MAX_PUBLISHING as u64 {
            p.start(tag, tag);
        }
        assert_eq!(p.done(0), None, "the oldest is forgotten");
        assert_eq!(p.done(1), Some(1));
        assert_eq!(p.done(1), None);
    }
}
