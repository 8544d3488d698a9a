//! Group catch-up: the rules by which a member asks another for the frames it lacks, and
//! answers such questions. A core with no I/O: it reads no clock, touches neither the store
//! nor the network, and draws its randomness from a generator it is handed. The engine
//! actor (`crate::actor::groups::sync`) reads the store, passes in plain values with the
//! time, and sends or answers the `GroupSync` requests. Peers are opaque keys (`P`: the
//! engine uses libp2p peer ids).
//!
//! Data flow as the member that asks:
//!
//! 1. Each tick → [`SyncTimes::round_due`]: at most every `GROUP_SYNC_EVERY` a round over
//!    all groups starts. Per group, [`plan_round`] splits the member devices into connected
//!    and not: when fewer than `GROUP_DIALS` are connected, that many of the others, in a
//!    random order, are dialled; one connected member, picked at random, is asked.
//! 2. Any catch-up (a round, a gap, a peer joining the topic, a first key) →
//!    [`SyncTimes::may_ask`]: none while a request of the group is in flight (until
//!    [`SYNC_TIMEOUT`]), none with the same peer within [`SYNC_GAP`]; at most
//!    [`MAX_SYNC_ENTRIES`] (group, peer) times are remembered.
//! 3. The question carries our marks ([`marks`]): per sender whose key we hold, the seq up
//!    to which we hold every frame, at most `MAX_SYNC_MARKS` of them. Sent →
//!    [`SyncTimes::asked`].
//! 4. The answer, a refusal or a failure → [`SyncTimes::done`]. An answer cut at its limit
//!    that brought something new is followed at once ([`follow_up`], then
//!    [`SyncTimes::forget`] lifts the gap for that peer).
//!
//! Data flow as the member that answers:
//!
//! 1. Only a current member of the group is answered (the actor checks; else
//!    `Unauthorized`).
//! 2. Per mark, the frames held after it go into the answer while [`Answer::room`] says
//!    they fit: at most `MAX_SYNC_FRAMES` and `MAX_SYNC_BYTES` (each frame counted with 16
//!    bytes of framing); the first that does not fit cuts the answer, marked `more`.
//! 3. Each sender's frames are kept up to [`KEEP_FRAMES_PER_SENDER`] below its highest seq
//!    ([`prune_below`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use kith_proto::groupwire::{MAX_SYNC_BYTES, MAX_SYNC_FRAMES, MAX_SYNC_MARKS, SenderMark};
use kith_types::{BoundedMap, CurveKey, GroupId};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

/// Frames kept per sender to answer members who missed them.
pub const KEEP_FRAMES_PER_SENDER: u64 = 10_000;
/// Least time between two catch-ups of one group with one peer.
pub const SYNC_GAP: Duration = Duration::from_secs(2);
/// How long a catch-up request may take before another may start.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Most (group, peer) catch-up times remembered.
pub const MAX_SYNC_ENTRIES: usize = 8192;
/// Bytes counted per frame in an answer on top of the frame itself.
const FRAME_OVERHEAD: usize = 16;

/// When catch-ups were asked, to space them out.
#[derive(Debug)]
pub struct SyncTimes<P> {
    /// The last catch-up of each group with each peer.
    last: BoundedMap<(GroupId, P), Instant>,
    /// Groups with a catch-up in flight, since when.
    in_flight: HashMap<GroupId, Instant>,
    /// The last round over all groups.
    last_round: Option<Instant>,
}

impl<P: Eq + Hash + Clone> Default for SyncTimes<P> {
    fn default() -> Self {
        Self {
            last: BoundedMap::new(MAX_SYNC_ENTRIES),
            in_flight: HashMap::new(),
            last_round: None,
        }
    }
}

impl<P: Eq + Hash + Clone> SyncTimes<P> {
    /// Whether the round over all groups, due every `every`, is due at `now` (then it
    /// counts as started).
    pub fn round_due(&mut self, now: Instant, every: Duration) -> bool {
        if self
            .last_round
            .is_some_and(|t| now.duration_since(t) < every)
        {
            return false;
        }
        self.last_round = Some(now);
        true
    }

    /// Whether group `id` may catch up with `peer` at `now`: no request of the group in
    /// flight, none with that peer within [`SYNC_GAP`]. When it may, the time is kept.
    pub fn may_ask(&mut self, id: GroupId, peer: P, now: Instant) -> bool {
        if self
            .in_flight
            .get(&id)
            .is_some_and(|t| now.duration_since(*t) < SYNC_TIMEOUT)
        {
            return false;
        }
        let key = (id, peer);
        if self
            .last
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < SYNC_GAP)
        {
            return false;
        }
        if self.last.len() >= MAX_SYNC_ENTRIES {
            self.last.retain(|_, t| now.duration_since(*t) < SYNC_GAP);
        }
        self.last.insert(key, now);
        true
    }

    /// A request for group `id` went out at `now`.
    pub fn asked(&mut self, id: GroupId, now: Instant) {
        self.in_flight.insert(id, now);
    }

    /// The request for group `id` was answered, refused or failed.
    pub fn done(&mut self, id: &GroupId) {
        self.in_flight.remove(id);
    }

    /// Lets group `id` ask `peer` again at once (its answer was cut and brought news).
    pub fn forget(&mut self, id: GroupId, peer: P) {
        self.last.remove(&(id, peer));
    }
}

/// What one group does in a round.
#[derive(Debug, PartialEq, Eq)]
pub struct Round<P, A> {
    /// Member devices to dial (with their addresses).
    pub dial: Vec<(P, A)>,
    /// The connected member to catch up with, if any.
    pub ask: Option<P>,
}

/// Plans a group's round: with fewer than `dials` member devices `connected`, dials that
/// many of the `others` in a random order; asks one connected member picked at random.
/// The generator is drawn from in that order (a shuffle only when dialling, then a pick).
pub fn plan_round<P: Clone, A, R: Rng>(
    connected: &[P],
    mut others: Vec<(P, A)>,
    dials: usize,
    rng: &mut R,
) -> Round<P, A> {
    let mut dial = Vec::new();
    if connected.len() < dials {
        others.shuffle(rng);
        dial = others.into_iter().take(dials - connected.len()).collect();
    }
    let pick = rng.random::<u32>() as usize;
    let ask = connected.get(pick % connected.len().max(1)).cloned();
    Round { dial, ask }
}

/// The marks of a catch-up question: per sender whose key is held (`keyed`), the seq up to
/// which every frame is held; at most `MAX_SYNC_MARKS`, in the order given.
pub fn marks(senders: impl IntoIterator<Item = (CurveKey, bool, u64)>) -> Vec<SenderMark> {
    senders
        .into_iter()
        .filter(|(_, keyed, _)| *keyed)
        .take(MAX_SYNC_MARKS)
        .map(|(sender, _, contiguous)| SenderMark {
            sender,
            seq: contiguous,
        })
        .collect()
}

/// The size of an answer being filled, within `MAX_SYNC_FRAMES` and `MAX_SYNC_BYTES`.
#[derive(Debug, Default)]
pub struct Answer {
    frames: usize,
    bytes: usize,
    more: bool,
}

impl Answer {
    /// Whether a frame of `len` bytes still fits; when not, the answer is cut (`more`) and
    /// nothing more goes in.
    pub fn room(&mut self, len: usize) -> bool {
        if self.more || self.frames >= MAX_SYNC_FRAMES || self.bytes + len > MAX_SYNC_BYTES {
            self.more = true;
            return false;
        }
        true
    }

    /// A frame of `len` bytes went in.
    pub fn add(&mut self, len: usize) {
        self.frames += 1;
        self.bytes += len + FRAME_OVERHEAD;
    }

    /// Whether the answer was cut.
    pub fn more(&self) -> bool {
        self.more
    }
}

/// Whether a catch-up answer is followed by another question at once: only when it was cut
/// and brought frames not held before (a peer answering around a hole it cannot fill does
/// not keep us asking).
pub fn follow_up(more: bool, new: usize) -> bool {
    more && new > 0
}

/// Below which seq a sender's frames are dropped, given its highest seq (none while it has
/// sent no more than [`KEEP_FRAMES_PER_SENDER`]).
pub fn prune_below(max: u64) -> Option<u64> {
    (max > KEEP_FRAMES_PER_SENDER).then(|| max - KEEP_FRAMES_PER_SENDER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const EVERY: Duration = Duration::from_secs(30);

    #[test]
    fn catch_ups_are_spaced_per_peer_and_one_per_group_is_in_flight() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let (a, b) = (1u8, 2u8);
        let g = GroupId([1; 16]);
        let mut s = SyncTimes::default();
        assert!(s.may_ask(g, a, ms(0)));
        s.asked(g, ms(0));
        assert!(!s.may_ask(g, b, ms(10)), "one request per group in flight");
        s.done(&g);
        assert!(!s.may_ask(g, a, ms(1_999)), "the gap per peer");
        assert!(s.may_ask(g, b, ms(1_999)));
        assert!(s.may_ask(g, a, ms(2_000)));
        s.asked(g, ms(2_000));
        assert!(!s.may_ask(g, b, ms(31_999)));
        assert!(s.may_ask(g, b, ms(32_000)), "a request that took too long");
        s.forget(g, b);
        s.done(&g);
        assert!(
            s.may_ask(g, b, ms(32_001)),
            "a cut answer asks again at once"
        );
        assert!(
            s.may_ask(GroupId([2; 16]), a, ms(32_001)),
            "groups are apart"
        );
    }

    #[test]
    fn the_round_comes_every_period() {
        let t0 = Instant::now();
        let mut s = SyncTimes::<u8>::default();
        assert!(s.round_due(t0, EVERY));
        assert!(!s.round_due(t0 + EVERY - Duration::from_millis(1), EVERY));
        assert!(s.round_due(t0 + EVERY, EVERY));
    }

    #[test]
    fn remembered_times_are_bounded_and_stale_ones_go_first() {
        let t0 = Instant::now();
        let mut s = SyncTimes::default();
        for i in 0..MAX_SYNC_ENTRIES as u32 {
            assert!(s.may_ask(GroupId([0; 16]), i, t0));
        }
        let later = t0 + SYNC_GAP;
        assert!(s.may_ask(GroupId([0; 16]), u32::MAX, later));
        assert_eq!(s.last.len(), 1, "times older than the gap are dropped");
    }

    #[test]
    fn a_round_dials_up_to_the_target_and_asks_a_connected_member() {
        let others: Vec<(u8, ())> = (10..20).map(|p| (p, ())).collect();
        let mut rng = StdRng::seed_from_u64(7);
        let r = plan_round(&[1, 2, 3], others.clone(), 8, &mut rng);
        assert_eq!(r.dial.len(), 5);
        assert!(r.dial.iter().all(|(p, _)| (10..20).contains(p)));
        assert!(matches!(r.ask, Some(1..=3)));
        // The same seed gives the same round.
        let mut replay = StdRng::seed_from_u64(7);
        assert_eq!(plan_round(&[1, 2, 3], others.clone(), 8, &mut replay), r);

        let connected: Vec<u8> = (1..=8).collect();
        let full = plan_round(&connected, others.clone(), 8, &mut rng);
        assert!(full.dial.is_empty(), "enough connected: nobody dialled");
        assert!(full.ask.is_some());

        let alone = plan_round::<u8, (), _>(&[], others, 8, &mut rng);
        assert_eq!(alone.dial.len(), 8);
        assert_eq!(alone.ask, None, "nobody connected: nobody asked");
    }

    #[test]
    fn marks_cover_keyed_senders_only_within_the_cap() {
        let k = |b: u8| CurveKey([b; 32]);
        let rows = vec![(k(1), true, 5), (k(2), false, 9), (k(3), true, 0)];
        let m = marks(rows);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].sender, m[0].seq), (k(1), 5));
        assert_eq!((m[1].sender, m[1].seq), (k(3), 0));
        let many = (0..MAX_SYNC_MARKS as u64 + 5).map(|i| (k(0), true, i));
        assert_eq!(marks(many).len(), MAX_SYNC_MARKS);
    }

    #[test]
    fn an_answer_is_cut_at_its_frame_and_byte_limits() {
        let mut a = Answer::default();
        for _ in 0..MAX_SYNC_FRAMES {
            assert!(a.room(10));
            a.add(10);
        }
        assert!(!a.more());
        assert!(!a.room(10), "frame limit");
        assert!(a.more());

        let mut b = Answer::default();
        let half = MAX_SYNC_BYTES / 2;
        assert!(b.room(half));
        b.add(half);
        assert!(!b.room(half), "the framing counts too");
        assert!(b.more());
        assert!(!b.room(1), "a cut answer takes nothing more");
    }

    #[test]
    fn follow_ups_only_while_news_comes() {
        assert!(follow_up(true, 1));
        assert!(!follow_up(true, 0));
        assert!(!follow_up(false, 3));
    }

    #[test]
    fn pruning_keeps_the_last_frames_per_sender() {
        assert_eq!(prune_below(KEEP_FRAMES_PER_SENDER), None);
        assert_eq!(prune_below(KEEP_FRAMES_PER_SENDER + 7), Some(7));
    }
}
