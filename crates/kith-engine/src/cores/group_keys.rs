//! Group sender keys: when a device's Megolm sending session for a group is replaced, who
//! gets its key and from which message, and which received keys are taken or kept waiting.
//! A core with no I/O: it touches neither the store, nor Olm/Megolm, nor a clock, nor the
//! network. The actor (`actor/groups/keys.rs`) reads the group rows and sessions, passes
//! their plain values in, and does what the answers say (encrypting, queueing pairwise
//! bodies, storing sessions). The sessions themselves are opaque here ([`Sending`] is generic
//! over them).
//!
//! Data flow:
//!
//! 1. Before a message goes out, [`session_plan`] tells the actor whether this device keeps
//!    its current session, starts one (none in memory or in the row), or renews one that
//!    has sent [`ROTATE_AFTER`] messages. Membership changes (someone left, was removed or
//!    was added) drop the session outright ([`Sending::drop_session`]), so the next message
//!    starts one that only the members of that moment get.
//! 2. A new session's key goes to every member device known, tagged with the seq of the
//!    next frame ([`current_key_seq`]); members with no device known are looked up
//!    ([`members_to_look_up`]).
//! 3. A member device learned later (from the DHT, or a certificate learned late) gets, in
//!    every group it shares with us ([`groups_shared_with`]), the session from index 0 of
//!    this device's own copy, tagged with the seq of the session's first frame
//!    ([`late_key_seq`]); so members at the start of a session read it from its first
//!    message, and a device found late still reads everything its owner was a member for.
//!    When no copy exists, it gets the current key instead (from the current index on).
//!    An admin also passes the certificate on to the other members of its groups
//!    ([`cert_audiences`]).
//! 4. A received key is taken only from a current member while this node is one
//!    ([`may_take_key`]); otherwise it waits in [`EarlyKeys`] (at most [`MAX_EARLY_KEYS`],
//!    oldest dropped first) until a change of its group brings the ops, when it is tried
//!    again. The first key from a sender moves the sender's contiguous mark up to just
//!    before the key's seq ([`first_key_mark`]): nothing before it can be opened here.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};

use kith_proto::group::GroupState;
use kith_types::{CurveKey, GroupId, IdentityKey};

/// A new sending session after this many messages (as Matrix clients do).
pub const ROTATE_AFTER: u32 = 1000;
/// Most keys kept while their group's ops are on the way.
pub const MAX_EARLY_KEYS: usize = 1024;

/// This device's sending sessions, by group (a cache of the pickles in the group rows).
/// `S` is the session type (Megolm's outbound session in the actor).
pub struct Sending<S>(HashMap<GroupId, S>);

impl<S> std::fmt::Debug for Sending<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sending")
            .field("groups", &self.0.len())
            .finish()
    }
}

impl<S> Default for Sending<S> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<S> Sending<S> {
    /// Forgets a group's session (the next message starts a new one).
    pub fn drop_session(&mut self, id: &GroupId) {
        self.0.remove(id);
    }

    /// Whether a session is in memory for a group.
    pub fn has(&self, id: &GroupId) -> bool {
        self.0.contains_key(id)
    }

    /// The session in memory for a group.
    pub fn get_mut(&mut self, id: &GroupId) -> Option<&mut S> {
        self.0.get_mut(id)
    }

    /// Keeps `session` as the group's session, replacing any other.
    pub fn insert(&mut self, id: GroupId, session: S) {
        self.0.insert(id, session);
    }

    /// The session of a group from memory, or else the one `restore` gives (kept for next
    /// time); `None` when neither has one.
    pub fn get_or_restore(
        &mut self,
        id: GroupId,
        restore: impl FnOnce() -> Option<S>,
    ) -> Option<&mut S> {
        match self.0.entry(id) {
            Entry::Occupied(e) => Some(e.into_mut()),
            Entry::Vacant(e) => restore().map(|s| e.insert(s)),
        }
    }
}

/// What to do about the sending session before a message goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPlan {
    /// Send with the current session.
    Keep,
    /// Start a session (there is none).
    Start,
    /// The current session has sent [`ROTATE_AFTER`] messages: forget it, then start one.
    Renew,
}

/// Decides about the sending session: `sent` is the current session's message index when
/// one is in memory (or could be restored), `in_row` whether the group row names one.
pub fn session_plan(sent: Option<u32>, in_row: bool) -> SessionPlan {
    match sent {
        Some(n) if n >= ROTATE_AFTER => SessionPlan::Renew,
        Some(_) if in_row => SessionPlan::Keep,
        _ => SessionPlan::Start,
    }
}

/// The seq a current key is tagged with: the next frame's (frames count from 1).
pub fn current_key_seq(next_seq: u64) -> u64 {
    next_seq.max(1)
}

/// The seq of the frame that carried message `first` of a session now at message `index`:
/// one frame per message, so message `i` went out as seq `next_seq - (index - i)`.
pub fn late_key_seq(next_seq: u64, index: u32, first: u32) -> u64 {
    next_seq
        .saturating_sub(u64::from(index.saturating_sub(first)))
        .max(1)
}

/// The members of a group with no device known, other than `me`: they are looked up.
pub fn members_to_look_up(
    members: &BTreeSet<IdentityKey>,
    me: &IdentityKey,
    known: &HashSet<IdentityKey>,
) -> Vec<IdentityKey> {
    members
        .iter()
        .filter(|m| *m != me && !known.contains(*m))
        .copied()
        .collect()
}

/// The groups whose members include both `me` and `owner` (a device of `owner` found late
/// gets this device's sessions of these groups).
pub fn groups_shared_with(
    states: &HashMap<GroupId, GroupState>,
    me: &IdentityKey,
    owner: &IdentityKey,
) -> Vec<GroupId> {
    states
        .iter()
        .filter(|(_, s)| s.members.contains(me) && s.members.contains(owner))
        .map(|(id, _)| *id)
        .collect()
}

/// Whether a certificate of `identity`'s device learned late concerns our groups: not our
/// own, and its owner is in one of them (`people`).
pub fn cert_concerns_groups(
    identity: &IdentityKey,
    me: &IdentityKey,
    people: &HashSet<IdentityKey>,
) -> bool {
    identity != me && people.contains(identity)
}

/// The member sets of the groups where `me` is an admin and `identity` a member: their
/// other members get a certificate of `identity`'s device that `me` learned late. Only
/// admins pass certificates on, so each costs one small body per member device once.
pub fn cert_audiences(
    states: &HashMap<GroupId, GroupState>,
    me: &IdentityKey,
    identity: &IdentityKey,
) -> Vec<BTreeSet<IdentityKey>> {
    states
        .values()
        .filter(|s| s.admins.contains(me) && s.members.contains(identity))
        .map(|s| s.members.clone())
        .collect()
}

/// Whether a received key is taken now: its group is known (`members`), and both its
/// sender's owner and `me` are members. A removed member cannot start a session others
/// would read; a key that fails this waits in [`EarlyKeys`].
pub fn may_take_key(
    members: Option<&BTreeSet<IdentityKey>>,
    owner: Option<&IdentityKey>,
    me: &IdentityKey,
) -> bool {
    match (members, owner) {
        (Some(m), Some(o)) => m.contains(o) && m.contains(me),
        _ => false,
    }
}

/// On a sender's first key (tagged `seq`): the new contiguous mark when it rises (the
/// frames waiting before `seq` are then dropped, as they cannot be opened here).
pub fn first_key_mark(contiguous: u64, seq: u64) -> Option<u64> {
    let floor = seq.saturating_sub(1);
    (contiguous < floor).then_some(floor)
}

/// A key waiting for its group's ops.
#[derive(Clone, PartialEq, Eq)]
pub struct EarlyKey {
    /// The group.
    pub group: GroupId,
    /// The sender device's Curve25519 key.
    pub curve: CurveKey,
    /// The exported session key (a secret: left out of the Debug output).
    pub key: Vec<u8>,
    /// The seq of the first frame the key opens.
    pub seq: u64,
}

impl std::fmt::Debug for EarlyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EarlyKey")
            .field("group", &self.group)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// Keys that came before the ops making their sender (or us) a member, oldest first; the
/// oldest goes when there are [`MAX_EARLY_KEYS`].
#[derive(Debug, Default)]
pub struct EarlyKeys(Vec<EarlyKey>);

impl EarlyKeys {
    /// Keeps a key until its group changes.
    pub fn hold(&mut self, key: EarlyKey) {
        if self.0.len() >= MAX_EARLY_KEYS {
            self.0.remove(0);
        }
        self.0.push(key);
    }

    /// Takes the keys waiting for `group`, oldest first.
    pub fn take(&mut self, group: &GroupId) -> Vec<EarlyKey> {
        let (ready, waiting) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|k| k.group == *group);
        self.0 = waiting;
        ready
    }

    /// How many keys wait.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u8]) -> BTreeSet<IdentityKey> {
        ids.iter().map(|b| IdentityKey([*b; 32])).collect()
    }

    fn state(members: &[u8], admins: &[u8]) -> GroupState {
        GroupState {
            members: set(members),
            admins: set(admins),
            ..GroupState::default()
        }
    }

    fn early(group: u8, n: u64) -> EarlyKey {
        EarlyKey {
            group: GroupId([group; 16]),
            curve: CurveKey([7; 32]),
            key: vec![1, 2, 3],
            seq: n,
        }
    }

    #[test]
    fn a_session_is_kept_started_or_renewed_after_rotate_after_messages() {
        assert_eq!(session_plan(None, false), SessionPlan::Start);
        assert_eq!(
            session_plan(None, true),
            SessionPlan::Start,
            "unreadable pickle"
        );
        assert_eq!(session_plan(Some(3), false), SessionPlan::Start);
        assert_eq!(session_plan(Some(0), true), SessionPlan::Keep);
        assert_eq!(
            session_plan(Some(ROTATE_AFTER - 1), true),
            SessionPlan::Keep
        );
        assert_eq!(session_plan(Some(ROTATE_AFTER), true), SessionPlan::Renew);
        assert_eq!(session_plan(Some(ROTATE_AFTER), false), SessionPlan::Renew);
    }

    #[test]
    fn sending_restores_once_and_forgets_on_drop() {
        let mut s: Sending<u32> = Sending::default();
        let id = GroupId([1; 16]);
        assert_eq!(s.get_or_restore(id, || None), None);
        assert!(!s.has(&id));
        assert_eq!(s.get_or_restore(id, || Some(5)).copied(), Some(5));
        assert_eq!(
            s.get_or_restore(id, || Some(9)).copied(),
            Some(5),
            "memory first"
        );
        s.insert(id, 6);
        assert_eq!(s.get_mut(&id).copied(), Some(6));
        s.drop_session(&id);
        assert!(!s.has(&id));
    }

    #[test]
    fn members_at_the_start_get_the_next_seq_and_late_devices_the_first_message() {
        assert_eq!(current_key_seq(0), 1);
        assert_eq!(current_key_seq(12), 12);
        // A session started at seq 10 has sent 5 messages (index 5): next seq is 15.
        assert_eq!(late_key_seq(15, 5, 0), 10);
        // A copy exported from a later index.
        assert_eq!(late_key_seq(15, 5, 2), 12);
        // Never below the first seq.
        assert_eq!(late_key_seq(3, 10, 0), 1);
        assert_eq!(late_key_seq(0, 0, 0), 1);
    }

    #[test]
    fn members_without_known_devices_are_looked_up_but_not_me() {
        let members = set(&[1, 2, 3]);
        let known: HashSet<IdentityKey> = [IdentityKey([2; 32])].into_iter().collect();
        assert_eq!(
            members_to_look_up(&members, &IdentityKey([1; 32]), &known),
            vec![IdentityKey([3; 32])]
        );
    }

    #[test]
    fn a_late_device_gets_the_sessions_of_the_groups_shared_with_its_owner() {
        let mut states = HashMap::new();
        states.insert(GroupId([1; 16]), state(&[1, 2], &[1]));
        states.insert(GroupId([2; 16]), state(&[1, 3], &[1]));
        states.insert(GroupId([3; 16]), state(&[2, 3], &[2]));
        assert_eq!(
            groups_shared_with(&states, &IdentityKey([1; 32]), &IdentityKey([2; 32])),
            vec![GroupId([1; 16])]
        );
        assert!(
            groups_shared_with(&states, &IdentityKey([1; 32]), &IdentityKey([4; 32])).is_empty()
        );
    }

    #[test]
    fn only_admins_pass_a_late_certificate_on_to_its_owners_groups() {
        let mut states = HashMap::new();
        states.insert(GroupId([1; 16]), state(&[1, 2, 3], &[1]));
        states.insert(GroupId([2; 16]), state(&[1, 2], &[2]));
        states.insert(GroupId([3; 16]), state(&[1, 4], &[1]));
        assert_eq!(
            cert_audiences(&states, &IdentityKey([1; 32]), &IdentityKey([2; 32])),
            vec![set(&[1, 2, 3])]
        );
        let people: HashSet<IdentityKey> = [IdentityKey([2; 32])].into_iter().collect();
        assert!(cert_concerns_groups(
            &IdentityKey([2; 32]),
            &IdentityKey([1; 32]),
            &people
        ));
        assert!(
            !cert_concerns_groups(&IdentityKey([1; 32]), &IdentityKey([1; 32]), &people),
            "our own"
        );
        assert!(
            !cert_concerns_groups(&IdentityKey([5; 32]), &IdentityKey([1; 32]), &people),
            "a stranger"
        );
    }

    #[test]
    fn a_key_is_taken_only_from_a_member_while_we_are_one() {
        let m = set(&[1, 2]);
        assert!(may_take_key(
            Some(&m),
            Some(&IdentityKey([2; 32])),
            &IdentityKey([1; 32])
        ));
        assert!(
            !may_take_key(Some(&m), Some(&IdentityKey([3; 32])), &IdentityKey([1; 32])),
            "not a member"
        );
        assert!(
            !may_take_key(Some(&m), Some(&IdentityKey([2; 32])), &IdentityKey([4; 32])),
            "we are not"
        );
        assert!(
            !may_take_key(None, Some(&IdentityKey([2; 32])), &IdentityKey([1; 32])),
            "unknown group"
        );
        assert!(
            !may_take_key(Some(&m), None, &IdentityKey([1; 32])),
            "unknown device"
        );
    }

    #[test]
    fn the_first_key_raises_the_contiguous_mark_to_just_before_its_seq() {
        assert_eq!(first_key_mark(0, 10), Some(9));
        assert_eq!(first_key_mark(9, 10), None);
        assert_eq!(first_key_mark(20, 10), None);
        assert_eq!(first_key_mark(0, 1), None);
        assert_eq!(first_key_mark(0, 0), None);
    }

    #[test]
    fn early_keys_wait_per_group_and_the_oldest_goes_at_the_cap() {
        let mut keys = EarlyKeys::default();
        keys.hold(early(1, 1));
        keys.hold(early(2, 2));
        keys.hold(early(1, 3));
        assert_eq!(keys.take(&GroupId([1; 16])), vec![early(1, 1), early(1, 3)]);
        assert_eq!(keys.len(), 1);
        assert!(keys.take(&GroupId([1; 16])).is_empty());
        for n in 0..MAX_EARLY_KEYS as u64 {
            keys.hold(early(3, 100 + n));
        }
        assert_eq!(keys.len(), MAX_EARLY_KEYS);
        assert!(keys.take(&GroupId([2; 16])).is_empty(), "the oldest went");
        let left = keys.take(&GroupId([3; 16]));
        assert_eq!(left.len(), MAX_EARLY_KEYS);
        assert_eq!(left[0].seq, 100);
        assert!(keys.is_empty());
    }
}
