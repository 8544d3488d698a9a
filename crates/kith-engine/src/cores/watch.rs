//! Group watching at mailboxes: the rules by which a device has its mailboxes keep its
//! groups' frames, and by which a mailbox agrees to keep them. A core with no I/O: it reads
//! no clock and touches neither the store nor the network. The engine actor
//! (`crate::actor::watch`) reads from the store what a rule needs, passes it in as plain
//! values with the time, and carries out the decision (a [`Step`], a [`Sub`], a refusal).
//! Mailboxes are opaque keys (`P`: the engine uses peer id bytes); groups are their ids.
//!
//! Data flow as a device:
//!
//! 1. Our groups change, one of our mailboxes (re)connects or we register with it
//!    ([`Watch::changed`], [`Watch::connected`], [`Watch::registered`]) → the next tick
//!    looks again.
//! 2. Each tick → [`Watch::tick`]: to each connected mailbox of ours with no `Watch` in
//!    flight and none refused, a [`Step::Tell`] with the topics of our current groups (the
//!    first [`MAX_WATCH_TOPICS`] in topic order) when it did not acknowledge exactly that
//!    set in this run; once it did, a [`Step::CatchUp`] for each of those groups not yet
//!    caught up with it since it (re)connected. Never on a timer: a tick with nothing
//!    changed does nothing.
//! 3. The actor sends a `Watch` ([`Watch::telling`]); the answer is an acknowledgement
//!    ([`Watch::acknowledged`]), a refusal ([`Watch::refused`]: wait for the next
//!    registration) or a failure ([`Watch::watch_failed`]: again at the next tick).
//! 4. A catch-up ([`Watch::may_sync`]): at most one per group and [`MAX_TOPIC_SYNCS`] in
//!    flight, one older than [`TOPIC_SYNC_TIMEOUT`] no longer counting; the question carries
//!    our marks raised to the floor ([`raise_marks`]). Sent → [`Watch::sync_started`] and,
//!    from a tick, [`Watch::caught_up`]; not sent → [`Watch::changed`] (the next tick tries
//!    again).
//! 5. A frame shows a gap → [`Watch::gap_candidates`]: connected mailboxes of ours that
//!    acknowledged the group's topic, skipping any asked for that group less than
//!    [`TOPIC_SYNC_GAP`] ago; the first that takes the question is enough.
//! 6. An answer cut at its size limit that brought something new is asked again from the
//!    floor its frames set ([`next_floor`], [`follow_up`]). A refusal as `Unauthorized`
//!    means the mailbox forgot our topics ([`Watch::sync_refused`]): they are told again
//!    after the next registration.
//!
//! Data flow as a mailbox:
//!
//! 1. A device gives its watch set → [`check_watch`]: only while serving, only a registered
//!    device, at most [`MAX_WATCH_TOPICS`] group topics (kept sorted, without duplicates);
//!    [`within_share`]: at most its share of topics nobody else watches (an operator's knob,
//!    `MailboxConfig::topics_per_device`), else `Busy`; [`has_room`]: at most
//!    [`MAX_MAILBOX_TOPICS`] subscribed topics, our own groups' included, else `Busy`.
//! 2. The store's change of the watched union → [`Watch::kept_changed`]: subscribe to the
//!    topics watched now and not ours anyway, unsubscribe from those nobody watches.
//! 3. Frames on a kept topic ([`Watch::keeps`]) are kept per topic within
//!    [`MAILBOX_TOPIC_FRAMES`] and [`MAILBOX_TOPIC_BYTES`]; only a registered device that
//!    watches the topic may ask for them ([`may_ask_kept`]).

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

use kith_proto::groupwire::{MAX_SYNC_MARKS, SenderMark, is_group_topic};
use kith_proto::wire::{MAX_WATCH_TOPICS, Refusal};
use kith_types::{BoundedMap, CurveKey, GroupId};

/// Most topics a mailbox subscribes to, watched ones and its own groups' together. A peer
/// tracks at most this many topics of another (`kith_net::MAX_PEER_TOPICS`), and gossipsub
/// tells a new peer every topic in one message: a mailbox on more would go unheard.
pub const MAX_MAILBOX_TOPICS: usize = kith_net::MAX_PEER_TOPICS;
/// Most frames a mailbox keeps per topic.
pub const MAILBOX_TOPIC_FRAMES: u64 = 4096;
/// Most frame bytes a mailbox keeps per topic (32 MiB).
pub const MAILBOX_TOPIC_BYTES: u64 = 32 << 20;
/// Catch-ups with mailboxes in flight at once (each group has at most one).
pub const MAX_TOPIC_SYNCS: usize = 16;
/// Least time between two catch-ups of one group with one mailbox (after a gap).
pub const TOPIC_SYNC_GAP: Duration = Duration::from_secs(2);
/// How long a catch-up with a mailbox may take before another may start.
pub const TOPIC_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Most (group, mailbox) catch-up times remembered.
pub const MAX_TOPIC_SYNC_ENTRIES: usize = 4096;

/// What a tick asks of the actor, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<P> {
    /// Send `Watch { topics }` to this mailbox; on success call [`Watch::telling`].
    Tell { mailbox: P, topics: Vec<String> },
    /// Catch `group` up with this mailbox; sent → [`Watch::caught_up`], else
    /// [`Watch::changed`].
    CatchUp { mailbox: P, group: GroupId },
}

/// A change of this mailbox's subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sub {
    Subscribe(String),
    Unsubscribe(String),
}

/// Watched topics (as a mailbox) and where each of our mailboxes stands (as a device).
#[derive(Debug)]
pub struct Watch<P> {
    /// As a mailbox: topics some registered device watches (all subscribed).
    kept: HashSet<String>,
    /// As a device: each of our mailboxes (only ours, so at most `MAX_MAILBOXES`).
    mailboxes: HashMap<P, MailboxWatch>,
    /// Our groups or mailboxes changed: compare at the next tick.
    check: bool,
    /// Catch-ups with a mailbox in flight, by group.
    syncing: HashMap<GroupId, Instant>,
    /// When each group last asked each mailbox.
    last: BoundedMap<(GroupId, P), Instant>,
}

/// Where one of our mailboxes stands.
#[derive(Debug, Default)]
struct MailboxWatch {
    /// The topics it acknowledged last, in this run.
    acked: Option<Vec<String>>,
    /// A `Watch` is on its way.
    in_flight: bool,
    /// It refused the last one: wait for the next registration.
    refused: bool,
    /// Groups caught up with it since it (re)connected.
    asked: HashSet<GroupId>,
}

impl<P: Clone + Eq + Hash> Watch<P> {
    /// A fresh state; `kept` is what devices watch here (from the store, as a mailbox).
    pub fn new(kept: impl IntoIterator<Item = String>) -> Self {
        Watch {
            kept: kept.into_iter().collect(),
            mailboxes: HashMap::new(),
            check: true,
            syncing: HashMap::new(),
            last: BoundedMap::new(MAX_TOPIC_SYNC_ENTRIES),
        }
    }

    /// Whether this mailbox keeps frames of `topic`.
    pub fn keeps(&self, topic: &str) -> bool {
        self.kept.contains(topic)
    }

    /// The topics to subscribe to at startup.
    pub fn kept_topics(&self) -> Vec<String> {
        self.kept.iter().cloned().collect()
    }

    /// Our groups changed (or a step could not go): look again at the next tick.
    pub fn changed(&mut self) {
        self.check = true;
    }

    /// A peer connected: if it is one of our mailboxes, a `Watch` it did not acknowledge
    /// in this run goes again, and every group catches up with it once.
    pub fn connected<Q>(&mut self, mailbox: &Q)
    where
        P: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(m) = self.mailboxes.get_mut(mailbox) {
            m.asked.clear();
            m.refused = false;
        }
        self.check = true;
    }

    /// A peer disconnected: groups catch up again when it is back.
    pub fn disconnected<Q>(&mut self, mailbox: &Q)
    where
        P: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(m) = self.mailboxes.get_mut(mailbox) {
            m.asked.clear();
        }
    }

    /// We registered with a mailbox: a refused `Watch` may go again.
    pub fn registered<Q>(&mut self, mailbox: &Q)
    where
        P: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(m) = self.mailboxes.get_mut(mailbox) {
            m.refused = false;
        }
        self.check = true;
    }

    /// As a device: what to tell or ask our mailboxes. `ours` are our mailboxes in order
    /// with whether each is connected; `current` our current groups as (topic, id) in topic
    /// order. Does nothing unless something changed since the last tick.
    pub fn tick(&mut self, ours: &[(P, bool)], current: &[(String, GroupId)]) -> Vec<Step<P>> {
        if !self.check {
            return Vec::new();
        }
        self.check = false;
        self.mailboxes
            .retain(|k, _| ours.iter().any(|(m, _)| m == k));
        let watched = &current[..current.len().min(MAX_WATCH_TOPICS)];
        let topics: Vec<String> = watched.iter().map(|(t, _)| t.clone()).collect();
        let mut steps = Vec::new();
        for (mailbox, connected) in ours {
            if !connected {
                continue;
            }
            let w = self.mailboxes.entry(mailbox.clone()).or_default();
            if w.in_flight || w.refused {
                continue;
            }
            if w.acked.as_ref() != Some(&topics) {
                steps.push(Step::Tell {
                    mailbox: mailbox.clone(),
                    topics: topics.clone(),
                });
                continue;
            }
            // The mailbox keeps our topics: catch each group up with it once.
            steps.extend(
                watched
                    .iter()
                    .filter(|(_, id)| !w.asked.contains(id))
                    .map(|(_, id)| Step::CatchUp {
                        mailbox: mailbox.clone(),
                        group: *id,
                    }),
            );
        }
        steps
    }

    /// A `Watch` went to `mailbox`.
    pub fn telling<Q>(&mut self, mailbox: &Q)
    where
        P: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(w) = self.mailboxes.get_mut(mailbox) {
            w.in_flight = true;
        }
    }

    /// A mailbox acknowledged the topics it keeps for us: catch up next (and tell it again
    /// if our groups changed meanwhile).
    pub fn acknowledged(&mut self, mailbox: P, topics: Vec<String>) {
        let w = self.mailboxes.entry(mailbox).or_default();
        w.in_flight = false;
        w.acked = Some(topics);
        self.check = true;
    }

    /// A mailbox refused our `Watch` (or answered it wrongly): wait for the next
    /// registration.
    pub fn refused(&mut self, mailbox: P) {
        let w = self.mailboxes.entry(mailbox).or_default();
        w.in_flight = false;
        w.refused = true;
    }

    /// A `Watch` failed on the network: it goes again while the mailbox is connected.
    pub fn watch_failed<Q>(&mut self, mailbox: &Q)
    where
        P: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(w) = self.mailboxes.get_mut(mailbox) {
            w.in_flight = false;
        }
        self.check = true;
    }

    /// A tick's catch-up of `group` with `mailbox` went out.
    pub fn caught_up<Q>(&mut self, mailbox: &Q, group: GroupId)
    where
        P: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(w) = self.mailboxes.get_mut(mailbox) {
            w.asked.insert(group);
        }
    }

    /// Whether a catch-up of `group` may start now: none of it in flight, and fewer than
    /// [`MAX_TOPIC_SYNCS`] in all (one older than [`TOPIC_SYNC_TIMEOUT`] is forgotten).
    pub fn may_sync(&mut self, group: GroupId, now: Instant) -> bool {
        self.syncing
            .retain(|_, t| now.saturating_duration_since(*t) < TOPIC_SYNC_TIMEOUT);
        !self.syncing.contains_key(&group) && self.syncing.len() < MAX_TOPIC_SYNCS
    }

    /// A catch-up of `group` went to `mailbox`.
    pub fn sync_started(&mut self, group: GroupId, mailbox: P, now: Instant) {
        self.syncing.insert(group, now);
        self.last.insert((group, mailbox), now);
    }

    /// A catch-up of `group` ended (answered or failed).
    pub fn sync_done(&mut self, group: GroupId) {
        self.syncing.remove(&group);
    }

    /// A mailbox refused a catch-up. `Unauthorized` means it no longer keeps our topics:
    /// tell it again after the next registration.
    pub fn sync_refused<Q>(&mut self, mailbox: &Q, group: GroupId, unauthorized: bool)
    where
        P: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.syncing.remove(&group);
        if unauthorized && let Some(w) = self.mailboxes.get_mut(mailbox) {
            w.acked = None;
            w.refused = true;
        }
    }

    /// A frame of `group` (on `topic`) showed a gap: the mailboxes to ask, in order, of
    /// `connected` (ours, connected): those that acknowledged the topic and were not asked
    /// for this group within [`TOPIC_SYNC_GAP`]. The first that takes it is enough.
    pub fn gap_candidates(
        &self,
        group: GroupId,
        topic: &str,
        connected: &[P],
        now: Instant,
    ) -> Vec<P> {
        connected
            .iter()
            .filter(|m| {
                self.mailboxes
                    .get(*m)
                    .and_then(|w| w.acked.as_ref())
                    .is_some_and(|t| t.iter().any(|x| x == topic))
            })
            .filter(|m| {
                self.last
                    .get(&(group, (*m).clone()))
                    .is_none_or(|t| now.saturating_duration_since(*t) >= TOPIC_SYNC_GAP)
            })
            .cloned()
            .collect()
    }

    /// As a mailbox: a committed change of the watched topics. Topics of our own groups
    /// (`own`) are subscribed anyway and left alone.
    pub fn kept_changed(
        &mut self,
        started: Vec<String>,
        stopped: Vec<String>,
        own: impl Fn(&str) -> bool,
    ) -> Vec<Sub> {
        let mut out = Vec::new();
        for topic in started {
            if !own(&topic) {
                out.push(Sub::Subscribe(topic.clone()));
            }
            self.kept.insert(topic);
        }
        for topic in stopped {
            if !own(&topic) {
                out.push(Sub::Unsubscribe(topic.clone()));
            }
            self.kept.remove(&topic);
        }
        out
    }
}

/// As a mailbox: may this `Watch` be kept? `registered` is whether the asking peer is a
/// device registered here (the actor need not look unless `serving`). Gives the topics
/// sorted and without duplicates.
pub fn check_watch(
    serving: bool,
    registered: bool,
    topics: Vec<String>,
) -> Result<Vec<String>, Refusal> {
    if !serving {
        return Err(Refusal::Invalid);
    }
    if !registered {
        return Err(Refusal::Unauthorized);
    }
    if topics.len() > MAX_WATCH_TOPICS || !topics.iter().all(|t| is_group_topic(t)) {
        return Err(Refusal::Invalid);
    }
    Ok(topics
        .into_iter()
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect())
}

/// As a mailbox: is there room to subscribe to the `topics` nobody watches yet? `kept` is
/// the watched union (sorted), `own` our own groups' topics; together they stay within
/// [`MAX_MAILBOX_TOPICS`].
pub fn has_room(topics: &[String], kept: &[String], own: &[String]) -> bool {
    let fresh = topics
        .iter()
        .filter(|t| kept.binary_search(t).is_err() && !own.contains(t))
        .count();
    let own_apart = own
        .iter()
        .filter(|t| kept.binary_search(t).is_err())
        .count();
    fresh == 0 || kept.len() + own_apart + fresh <= MAX_MAILBOX_TOPICS
}

/// As a mailbox: does a device's watch set stay within its `share` of topics it alone
/// would make this mailbox keep? `others[i]` tells whether another device watches
/// `topics[i]`; topics of our own groups cost nothing.
pub fn within_share(topics: &[String], others: &[bool], own: &[String], share: usize) -> bool {
    let alone = topics
        .iter()
        .zip(others)
        .filter(|(t, other)| !**other && !own.contains(t))
        .count();
    alone <= share
}

/// As a mailbox: may a peer ask for the frames kept on a topic? Only a registered device,
/// while serving, that watches the topic.
pub fn may_ask_kept(registered: bool, serving: bool, watches: bool) -> bool {
    registered && serving && watches
}

/// Our marks for a catch-up question: each sender's mark raised to the `floor`, at most
/// [`MAX_SYNC_MARKS`].
pub fn raise_marks(mut have: Vec<SenderMark>, floor: &[SenderMark]) -> Vec<SenderMark> {
    for f in floor {
        match have.iter_mut().find(|m| m.sender == f.sender) {
            Some(m) => m.seq = m.seq.max(f.seq),
            None => have.push(*f),
        }
    }
    have.truncate(MAX_SYNC_MARKS);
    have
}

/// The floor for the next question of a catch-up whose answer brought frames `got` (sender,
/// seq). The answer went oldest first, so the next question starts after the newest frame
/// of each sender it brought (our own marks cannot move past a frame the mailbox no longer
/// has, and would bring the same frames again).
pub fn next_floor(
    mut floor: Vec<SenderMark>,
    got: impl IntoIterator<Item = (CurveKey, u64)>,
) -> Vec<SenderMark> {
    for (sender, seq) in got {
        if let Some(m) = floor.iter_mut().find(|m| m.sender == sender) {
            m.seq = m.seq.max(seq);
        } else if floor.len() < MAX_SYNC_MARKS {
            floor.push(SenderMark { sender, seq });
        }
    }
    floor
}

/// Whether a catch-up answer calls for another question: it was cut (`more`) and brought
/// something new (a cut answer of nothing new would bring the same again).
pub fn follow_up(more: bool, new: usize) -> bool {
    more && new > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake clock: `at(ms)` is that many milliseconds after a fixed start.
    struct Clock(Instant);
    impl Clock {
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    fn groups(n: usize) -> Vec<(String, GroupId)> {
        (0..n)
            .map(|i| {
                let mut id = GroupId([0u8; 16]);
                id.0[..8].copy_from_slice(&(i as u64).to_le_bytes());
                (format!("t{i:04}"), id)
            })
            .collect()
    }

    fn topics(g: &[(String, GroupId)]) -> Vec<String> {
        g.iter().map(|(t, _)| t.clone()).collect()
    }

    /// A device whose mailbox 1 acknowledged the topics of `g`.
    fn acked(g: &[(String, GroupId)]) -> Watch<u8> {
        let mut w = Watch::new([]);
        let steps = w.tick(&[(1, true)], g);
        assert!(matches!(steps[..], [Step::Tell { .. }]));
        w.telling(&1);
        w.acknowledged(1, topics(g));
        w
    }

    #[test]
    fn tells_current_topics_once_and_only_to_connected_mailboxes() {
        let g = groups(2);
        let mut w: Watch<u8> = Watch::new([]);
        let steps = w.tick(&[(1, true), (2, false)], &g);
        assert_eq!(
            steps,
            vec![Step::Tell {
                mailbox: 1,
                topics: topics(&g)
            }]
        );
        w.telling(&1);
        // Nothing changed: a tick does nothing (no timer).
        assert!(w.tick(&[(1, true), (2, false)], &g).is_empty());
        // In flight: a change does not send it twice.
        w.changed();
        assert!(w.tick(&[(1, true)], &g).is_empty());
    }

    #[test]
    fn at_most_max_watch_topics_first_in_topic_order() {
        let g = groups(MAX_WATCH_TOPICS + 3);
        let mut w: Watch<u8> = Watch::new([]);
        let steps = w.tick(&[(1, true)], &g);
        let Step::Tell { topics: t, .. } = &steps[0] else {
            panic!("expected a Watch");
        };
        assert_eq!(t.len(), MAX_WATCH_TOPICS);
        assert_eq!(*t, topics(&g[..MAX_WATCH_TOPICS]));
    }

    #[test]
    fn acknowledged_set_leads_to_one_catch_up_per_group() {
        let g = groups(3);
        let mut w = acked(&g);
        let steps = w.tick(&[(1, true)], &g);
        let want: Vec<Step<u8>> = g
            .iter()
            .map(|(_, id)| Step::CatchUp {
                mailbox: 1,
                group: *id,
            })
            .collect();
        assert_eq!(steps, want);
        for (_, id) in &g {
            w.caught_up(&1, *id);
        }
        w.changed();
        assert!(w.tick(&[(1, true)], &g).is_empty());
    }

    #[test]
    fn changed_set_is_told_again() {
        let g = groups(3);
        let mut w = acked(&g[..2]);
        w.changed();
        assert_eq!(
            w.tick(&[(1, true)], &g),
            vec![Step::Tell {
                mailbox: 1,
                topics: topics(&g)
            }]
        );
    }

    #[test]
    fn reconnect_catches_up_again_but_does_not_retell_an_acknowledged_set() {
        let g = groups(1);
        let mut w = acked(&g);
        w.tick(&[(1, true)], &g);
        w.caught_up(&1, g[0].1);
        w.disconnected(&1);
        w.connected(&1);
        assert_eq!(
            w.tick(&[(1, true)], &g),
            vec![Step::CatchUp {
                mailbox: 1,
                group: g[0].1
            }]
        );
    }

    #[test]
    fn unacknowledged_watch_goes_again_on_failure_or_reconnect() {
        let g = groups(1);
        let mut w: Watch<u8> = Watch::new([]);
        w.tick(&[(1, true)], &g);
        w.telling(&1);
        w.watch_failed(&1);
        assert!(matches!(w.tick(&[(1, true)], &g)[..], [Step::Tell { .. }]));
        // Not sent (the actor did not call `telling`): a reconnect tries again.
        w.connected(&1);
        assert!(matches!(w.tick(&[(1, true)], &g)[..], [Step::Tell { .. }]));
    }

    #[test]
    fn refused_watch_waits_for_the_next_registration() {
        let g = groups(1);
        let mut w: Watch<u8> = Watch::new([]);
        w.tick(&[(1, true)], &g);
        w.telling(&1);
        w.refused(1);
        w.changed();
        assert!(w.tick(&[(1, true)], &g).is_empty());
        w.registered(&1);
        assert!(matches!(w.tick(&[(1, true)], &g)[..], [Step::Tell { .. }]));
    }

    #[test]
    fn unauthorized_catch_up_forgets_the_acknowledgement() {
        let g = groups(1);
        let mut w = acked(&g);
        let c = Clock(Instant::now());
        assert!(w.may_sync(g[0].1, c.at(0)));
        w.sync_started(g[0].1, 1, c.at(0));
        w.sync_refused(&1, g[0].1, true);
        assert!(w.may_sync(g[0].1, c.at(1)));
        w.changed();
        assert!(w.tick(&[(1, true)], &g).is_empty());
        w.registered(&1);
        assert!(matches!(w.tick(&[(1, true)], &g)[..], [Step::Tell { .. }]));
    }

    #[test]
    fn mailboxes_no_longer_ours_are_forgotten() {
        let g = groups(1);
        let mut w = acked(&g);
        w.changed();
        assert!(w.tick(&[(2, false)], &g).is_empty());
        w.changed();
        // Mailbox 1 is back among ours: its acknowledgement is gone.
        assert!(matches!(w.tick(&[(1, true)], &g)[..], [Step::Tell { .. }]));
    }

    #[test]
    fn catch_ups_one_per_group_at_most_max_in_flight_with_timeout() {
        let c = Clock(Instant::now());
        let mut w: Watch<u8> = Watch::new([]);
        for i in 0..MAX_TOPIC_SYNCS as u8 {
            assert!(w.may_sync(GroupId([i; 16]), c.at(0)));
            w.sync_started(GroupId([i; 16]), 1, c.at(0));
        }
        assert!(!w.may_sync(GroupId([0; 16]), c.at(1)), "one per group");
        assert!(
            !w.may_sync(GroupId([200; 16]), c.at(1)),
            "at most MAX_TOPIC_SYNCS"
        );
        w.sync_done(GroupId([3; 16]));
        assert!(w.may_sync(GroupId([200; 16]), c.at(1)));
        w.sync_started(GroupId([200; 16]), 1, c.at(1));
        let timeout = TOPIC_SYNC_TIMEOUT.as_millis() as u64;
        assert!(!w.may_sync(GroupId([201; 16]), c.at(timeout - 1)));
        // Those started at 0 time out; the one started at 1 ms is still in flight.
        assert!(w.may_sync(GroupId([201; 16]), c.at(timeout)));
        assert!(!w.may_sync(GroupId([200; 16]), c.at(timeout)));
        assert!(w.may_sync(GroupId([200; 16]), c.at(timeout + 1)));
    }

    #[test]
    fn gap_asks_acknowledging_mailboxes_at_most_once_per_gap() {
        let c = Clock(Instant::now());
        let g = groups(2);
        let mut w = acked(&g[..1]);
        let (topic, id) = (&g[0].0, g[0].1);
        assert_eq!(w.gap_candidates(id, topic, &[1, 2], c.at(0)), vec![1]);
        // The other topic was not acknowledged by anyone.
        assert!(w.gap_candidates(g[1].1, &g[1].0, &[1], c.at(0)).is_empty());
        w.sync_started(id, 1, c.at(0));
        w.sync_done(id);
        let gap = TOPIC_SYNC_GAP.as_millis() as u64;
        assert!(w.gap_candidates(id, topic, &[1], c.at(gap - 1)).is_empty());
        assert_eq!(w.gap_candidates(id, topic, &[1], c.at(gap)), vec![1]);
    }

    #[test]
    fn floor_raises_marks_and_follows_up_only_cut_answers_with_news() {
        let a = CurveKey([1; 32]);
        let b = CurveKey([2; 32]);
        let have = vec![SenderMark { sender: a, seq: 5 }];
        let floor = vec![
            SenderMark { sender: a, seq: 3 },
            SenderMark { sender: b, seq: 9 },
        ];
        let marks = raise_marks(have, &floor);
        assert_eq!(marks.len(), 2);
        assert_eq!((marks[0].seq, marks[1].seq), (5, 9));
        let next = next_floor(Vec::new(), [(a, 4), (a, 7), (b, 2)]);
        assert_eq!(next.len(), 2);
        assert_eq!((next[0].sender, next[0].seq), (a, 7));
        assert_eq!((next[1].sender, next[1].seq), (b, 2));
        assert!(follow_up(true, 1));
        assert!(!follow_up(true, 0));
        assert!(!follow_up(false, 3));
    }

    #[test]
    fn marks_are_bounded() {
        let key = |i: u64| {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&i.to_le_bytes());
            CurveKey(k)
        };
        let many = MAX_SYNC_MARKS as u64 + 5;
        let floor: Vec<SenderMark> = (0..many)
            .map(|i| SenderMark {
                sender: key(i),
                seq: i,
            })
            .collect();
        assert_eq!(raise_marks(Vec::new(), &floor).len(), MAX_SYNC_MARKS);
        let got = (0..many).map(|i| (key(i), i));
        assert_eq!(next_floor(Vec::new(), got).len(), MAX_SYNC_MARKS);
    }

    #[test]
    fn only_registered_devices_may_watch_valid_topics() {
        let t = |s: &GroupId| kith_proto::groupwire::group_topic(s);
        let ok = vec![
            t(&GroupId([2; 16])),
            t(&GroupId([1; 16])),
            t(&GroupId([2; 16])),
        ];
        assert_eq!(check_watch(false, true, ok.clone()), Err(Refusal::Invalid));
        assert_eq!(
            check_watch(true, false, ok.clone()),
            Err(Refusal::Unauthorized)
        );
        let mut want = vec![t(&GroupId([1; 16])), t(&GroupId([2; 16]))];
        want.sort();
        assert_eq!(check_watch(true, true, ok), Ok(want));
        assert_eq!(
            check_watch(true, true, vec!["chat".into()]),
            Err(Refusal::Invalid)
        );
        let many = (0..=MAX_WATCH_TOPICS as u16)
            .map(|i| {
                let mut id = GroupId([0u8; 16]);
                id.0[..2].copy_from_slice(&i.to_le_bytes());
                t(&id)
            })
            .collect();
        assert_eq!(check_watch(true, true, many), Err(Refusal::Invalid));
    }

    #[test]
    fn topic_cap_counts_kept_own_and_fresh_topics() {
        let name = |i: usize| format!("t{i:06}");
        let kept: Vec<String> = (0..MAX_MAILBOX_TOPICS - 2).map(name).collect();
        let own = vec![name(MAX_MAILBOX_TOPICS - 2)];
        // Already kept or our own: always room.
        assert!(has_room(&[name(0)], &kept, &own));
        assert!(has_room(&own, &kept, &own));
        // One fresh topic fits, two do not.
        assert!(has_room(&[name(MAX_MAILBOX_TOPICS)], &kept, &own));
        let two = [name(MAX_MAILBOX_TOPICS), name(MAX_MAILBOX_TOPICS + 1)];
        assert!(!has_room(&two, &kept, &own));
    }

    /// One device may make the mailbox keep at most its share of topics nobody else
    /// watches; topics others watch and our own cost it nothing.
    #[test]
    fn one_device_takes_no_more_than_its_share_of_topics() {
        let name = |i: usize| format!("t{i:06}");
        let topics: Vec<String> = (0..6).map(name).collect();
        let own = vec![name(5)];
        let alone = [false; 6];
        assert!(
            !within_share(&topics, &alone, &own, 4),
            "five alone, share four"
        );
        assert!(within_share(&topics, &alone, &own, 5));
        let shared = [true, false, false, false, false, false];
        assert!(within_share(&topics, &shared, &own, 4));
    }

    #[test]
    fn kept_frames_only_for_registered_serving_watchers() {
        assert!(may_ask_kept(true, true, true));
        assert!(!may_ask_kept(false, true, true));
        assert!(!may_ask_kept(true, false, true));
        assert!(!may_ask_kept(true, true, false));
    }

    #[test]
    fn watch_set_changes_subscribe_except_own_topics() {
        let mut w: Watch<u8> = Watch::new(["old".to_string(), "mine".to_string()]);
        assert!(w.keeps("old"));
        let own = |t: &str| t == "mine" || t == "also-mine";
        let subs = w.kept_changed(
            vec!["new".into(), "also-mine".into()],
            vec!["old".into(), "mine".into()],
            own,
        );
        assert_eq!(
            subs,
            vec![Sub::Subscribe("new".into()), Sub::Unsubscribe("old".into())]
        );
        assert!(w.keeps("new") && w.keeps("also-mine"));
        assert!(!w.keeps("old") && !w.keeps("mine"));
        let mut kept = w.kept_topics();
        kept.sort();
        assert_eq!(kept, vec!["also-mine".to_string(), "new".to_string()]);
    }
}
