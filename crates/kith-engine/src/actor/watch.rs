//! Mailboxes keep group frames for their users while they are away.
//!
//! Group frames travel on gossipsub, and a member who was offline catches up from another
//! member ([`Request::GroupSync`]). When no member holding the frames is online, its
//! mailboxes fill in:
//!
//! - **Device side.** A device tells each of its mailboxes the topics of the groups it is a
//!   current member of ([`Request::Watch`], at most [`MAX_WATCH_TOPICS`]): after it
//!   registers, when that set changes, and at startup; again when a mailbox reconnects and
//!   the last set was not acknowledged in this run. Once a mailbox acknowledged the set, the
//!   device asks it once per group for what it lacks ([`Request::TopicSync`], with the marks
//!   `GroupSync` uses), after startup and after each reconnect, and again when a frame shows
//!   a gap. Answers go through the same checks as a member's (`take_frames`): membership,
//!   dedupe, display order. No group id reaches the mailbox, only topics.
//! - **Mailbox side.** A mailbox keeps each registered device's watch set (store table
//!   `mailbox_watches`), subscribes to the union of watched topics (at most
//!   [`MAX_MAILBOX_TOPICS`], its own groups' topics included; restored at startup, left when
//!   nobody watches a topic any more), and keeps each frame that arrives on a watched topic
//!   of a group it is not in after a structural check ([`GroupFrame::decode`]; it cannot
//!   decrypt): per topic at most [`MAILBOX_TOPIC_FRAMES`] frames and
//!   [`MAILBOX_TOPIC_BYTES`], none older than its retention, oldest evicted first. A frame
//!   that does not decode is rejected and its sender penalised, as members do. It answers
//!   `TopicSync` only to a registered device that watches the topic.
//! - **Reachability.** A mailbox hears a topic only while connected to someone on it, so in
//!   their group round members dial the mailboxes listed in the member devices' user records
//!   (`groups_tick`).
//!
//! Data flow while Carol is away: Ada publishes a frame on the topic → Carol's mailbox, which
//! subscribed because Carol watches the topic, validates and keeps it, answers `Accept`
//! (gossipsub forwards it) → Carol starts, registers, watches, asks `TopicSync` → the mailbox
//! answers the frames Carol lacks → Carol opens them with the key Ada sent pairwise.

use std::collections::BTreeSet;

use kith_net::Verdict;
use kith_proto::group::Key;
use kith_proto::groupwire::{
    GroupFrame, MAX_SYNC_BYTES, MAX_SYNC_FRAMES, SenderMark, group_topic, is_group_topic,
};
use kith_proto::wire::MAX_WATCH_TOPICS;
use kith_store::TopicLimits;

use super::groups::sync_marks;
use super::*;

/// Most topics a mailbox subscribes to, watched ones and its own groups' together. A peer
/// tracks at most this many topics of another (`kith_net::MAX_PEER_TOPICS`), and gossipsub
/// tells a new peer every topic in one message: a mailbox on more would go unheard.
pub const MAX_MAILBOX_TOPICS: usize = kith_net::MAX_PEER_TOPICS;
/// Most frames a mailbox keeps per topic.
pub const MAILBOX_TOPIC_FRAMES: u64 = 4096;
/// Most frame bytes a mailbox keeps per topic (32 MiB).
pub const MAILBOX_TOPIC_BYTES: u64 = 32 << 20;
/// Catch-ups with mailboxes in flight at once (each group has at most one).
const MAX_TOPIC_SYNCS: usize = 16;
/// Least time between two catch-ups of one group with one mailbox.
const TOPIC_SYNC_GAP: Duration = Duration::from_secs(2);
/// How long a catch-up with a mailbox may take before another may start.
const TOPIC_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Most (group, mailbox) catch-up times remembered.
const MAX_TOPIC_SYNC_ENTRIES: usize = 4096;

/// Watched topics (as a mailbox) and where each of our mailboxes stands (as a device).
pub(super) struct Watching {
    /// As a mailbox: topics some registered device watches (all subscribed).
    kept: HashSet<String>,
    /// As a device: each of our mailboxes, by peer id (only ours, so at most
    /// `MAX_MAILBOXES`).
    mailboxes: HashMap<Vec<u8>, MailboxWatch>,
    /// Our groups or mailboxes changed: compare at the next tick.
    check: bool,
    /// Catch-ups with a mailbox in flight, by group.
    syncing: HashMap<[u8; 16], Instant>,
    /// When each group last asked each mailbox.
    last: BoundedMap<([u8; 16], PeerId), Instant>,
}

/// Where one of our mailboxes stands.
#[derive(Default)]
struct MailboxWatch {
    /// The topics it acknowledged last, in this run.
    acked: Option<Vec<String>>,
    /// A `Watch` is on its way.
    in_flight: bool,
    /// It refused the last one: wait for the next registration.
    refused: bool,
    /// Groups caught up with it since it (re)connected.
    asked: HashSet<[u8; 16]>,
}

impl Watching {
    /// As a mailbox: the topics devices watch, from the store.
    pub(super) fn load(store: &Store, mailbox: bool) -> Self {
        let kept = if mailbox {
            store
                .read(|r| r.watched_topics())
                .unwrap_or_default()
                .into_iter()
                .collect()
        } else {
            HashSet::new()
        };
        Watching {
            kept,
            mailboxes: HashMap::new(),
            check: true,
            syncing: HashMap::new(),
            last: BoundedMap::new(MAX_TOPIC_SYNC_ENTRIES),
        }
    }

    /// Whether this mailbox keeps frames of `topic`.
    pub(super) fn keeps(&self, topic: &str) -> bool {
        self.kept.contains(topic)
    }

    /// The topics to subscribe to at startup.
    pub(super) fn kept_topics(&self) -> Vec<String> {
        self.kept.iter().cloned().collect()
    }

    /// Our groups changed: tell the mailboxes at the next tick.
    pub(super) fn changed(&mut self) {
        self.check = true;
    }

    /// A peer connected: if it is one of our mailboxes, a `Watch` it did not acknowledge
    /// in this run goes again, and every group catches up with it once.
    pub(super) fn connected(&mut self, mailbox: &[u8]) {
        if let Some(m) = self.mailboxes.get_mut(mailbox) {
            m.asked.clear();
            m.refused = false;
        }
        self.check = true;
    }

    /// A peer disconnected: groups catch up again when it is back.
    pub(super) fn disconnected(&mut self, mailbox: &[u8]) {
        if let Some(m) = self.mailboxes.get_mut(mailbox) {
            m.asked.clear();
        }
    }

    /// We registered with a mailbox: a refused `Watch` may go again.
    pub(super) fn registered(&mut self, mailbox: &[u8]) {
        if let Some(m) = self.mailboxes.get_mut(mailbox) {
            m.refused = false;
        }
        self.check = true;
    }
}

impl Engine {
    /// As a mailbox, at startup: subscribe to the topics devices watch.
    pub(super) fn watch_startup(&mut self) {
        for topic in self.st.watching.kept_topics() {
            if !self.st.groups.has_topic(&topic) {
                self.st.net_send(NetCommand::Subscribe { topic });
            }
        }
    }

    /// As a device: tells each connected mailbox the topics of our groups when it does not
    /// have them, and once it does, catches each group up with it.
    pub(super) fn watch_tick(&mut self) {
        if !self.st.watching.check {
            return;
        }
        self.st.watching.check = false;
        let mine: HashSet<Vec<u8>> = self
            .st
            .my_mailboxes
            .iter()
            .map(|m| m.peer_id.clone())
            .collect();
        self.st.watching.mailboxes.retain(|k, _| mine.contains(k));
        if mine.is_empty() {
            return;
        }
        let current = self.st.groups.current(&self.st.me.0);
        let topics: Vec<String> = current
            .iter()
            .take(MAX_WATCH_TOPICS)
            .map(|(t, _)| t.clone())
            .collect();
        for m in self.st.my_mailboxes.clone() {
            let Ok(peer) = PeerId::from_bytes(&m.peer_id) else {
                continue;
            };
            if !self.st.connected.contains(&peer) {
                continue;
            }
            let w = self
                .st
                .watching
                .mailboxes
                .entry(m.peer_id.clone())
                .or_default();
            if w.in_flight || w.refused {
                continue;
            }
            let up_to_date = w.acked.as_ref() == Some(&topics);
            let asked = w.asked.clone();
            if !up_to_date {
                let tag = self.st.tag();
                let req = NetCommand::Request {
                    tag,
                    peer,
                    addrs: decode_addrs(&m.addrs),
                    req: Request::Watch {
                        topics: topics.clone(),
                    },
                };
                if self.st.net.send(req).is_ok() {
                    if let Some(w) = self.st.watching.mailboxes.get_mut(&m.peer_id) {
                        w.in_flight = true;
                    }
                    self.st.pending.insert(
                        tag,
                        Pending::Watch {
                            mailbox: m.peer_id.clone(),
                            topics: topics.clone(),
                        },
                    );
                }
                continue;
            }
            // The mailbox keeps our topics: catch each group up with it once.
            let waiting: Vec<[u8; 16]> = current
                .iter()
                .take(MAX_WATCH_TOPICS)
                .map(|(_, id)| *id)
                .filter(|id| !asked.contains(id))
                .collect();
            for id in waiting {
                if self.topic_sync(id, peer, Vec::new()) {
                    if let Some(w) = self.st.watching.mailboxes.get_mut(&m.peer_id) {
                        w.asked.insert(id);
                    }
                } else {
                    // Busy with this group or with others: try again at the next tick.
                    self.st.watching.check = true;
                }
            }
        }
    }

    /// A frame showed a gap: ask a connected mailbox that keeps the group's topic for us.
    pub(super) fn topic_catch_up(&mut self, id: [u8; 16]) {
        let topic = group_topic(&id);
        let now = Instant::now();
        let candidates: Vec<PeerId> = self
            .st
            .my_mailboxes
            .iter()
            .filter(|m| {
                self.st
                    .watching
                    .mailboxes
                    .get(&m.peer_id)
                    .and_then(|w| w.acked.as_ref())
                    .is_some_and(|t| t.contains(&topic))
            })
            .filter_map(|m| PeerId::from_bytes(&m.peer_id).ok())
            .filter(|p| self.st.connected.contains(p))
            .collect();
        for peer in candidates {
            let recent = self
                .st
                .watching
                .last
                .get(&(id, peer))
                .is_some_and(|t| now.duration_since(*t) < TOPIC_SYNC_GAP);
            if !recent && self.topic_sync(id, peer, Vec::new()) {
                return;
            }
        }
    }

    /// Asks mailbox `peer` for the frames of group `id` it kept that this node lacks, with
    /// our marks raised to `floor` (what earlier answers of the same catch-up brought).
    /// Returns whether the request went out.
    fn topic_sync(&mut self, id: [u8; 16], peer: PeerId, floor: Vec<SenderMark>) -> bool {
        let now = Instant::now();
        let w = &mut self.st.watching;
        w.syncing
            .retain(|_, t| now.duration_since(*t) < TOPIC_SYNC_TIMEOUT);
        if w.syncing.contains_key(&id) || w.syncing.len() >= MAX_TOPIC_SYNCS {
            return false;
        }
        let Some(mut have) = sync_marks(&self.store, &id) else {
            return false;
        };
        for f in &floor {
            match have.iter_mut().find(|m| m.sender == f.sender) {
                Some(m) => m.seq = m.seq.max(f.seq),
                None => have.push(*f),
            }
        }
        have.truncate(kith_proto::groupwire::MAX_SYNC_MARKS);
        let tag = self.st.tag();
        let req = NetCommand::Request {
            tag,
            peer,
            addrs: Vec::new(),
            req: Request::TopicSync {
                topic: group_topic(&id),
                have,
            },
        };
        if self.st.net.send(req).is_err() {
            return false;
        }
        let w = &mut self.st.watching;
        w.syncing.insert(id, now);
        w.last.insert((id, peer), now);
        self.st
            .pending
            .insert(tag, Pending::TopicSync { group: id, floor });
        true
    }

    /// A `Watch` or `TopicSync` failed on the network.
    pub(super) fn watch_failed(&mut self, pending: Pending) {
        match pending {
            Pending::Watch { mailbox, .. } => {
                if let Some(w) = self.st.watching.mailboxes.get_mut(&mailbox) {
                    w.in_flight = false;
                }
                // Sent again while the mailbox is connected (a reconnect sets this too).
                self.st.watching.check = true;
            }
            Pending::TopicSync { group, .. } => {
                self.st.watching.syncing.remove(&group);
            }
            _ => {}
        }
    }

    /// Re-sends a catch-up that was cut at its size limit (and brought something new).
    pub(super) fn topic_sync_more(&mut self, id: [u8; 16], peer: PeerId, floor: Vec<SenderMark>) {
        self.st.watching.syncing.remove(&id);
        self.topic_sync(id, peer, floor);
    }
}

impl State {
    /// As a mailbox: the device on `peer`, if it is registered here.
    pub(super) fn registered_device(
        &self,
        w: &WriteTx<'_>,
        peer: PeerId,
    ) -> Result<Option<DeviceKey>, Fatal> {
        let dev = device_key(&peer.to_bytes());
        Ok(match w.device(&dev)?.and_then(|d| d.cert) {
            Some(cert) if w.mailbox_user(&CurveKey(cert.curve25519))? == Some(dev) => Some(dev),
            _ => None,
        })
    }

    /// As a mailbox: a registered device gives the topics to keep for it.
    pub(super) fn answer_watch(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        topics: Vec<String>,
        after: &mut Vec<After>,
    ) -> Result<Response, Fatal> {
        if !self.mailbox.is_serving() {
            return Ok(Response::Refused(Refusal::Invalid));
        }
        let Some(dev) = self.registered_device(w, peer)? else {
            return Ok(Response::Refused(Refusal::Unauthorized));
        };
        if topics.len() > MAX_WATCH_TOPICS || !topics.iter().all(|t| is_group_topic(t)) {
            return Ok(Response::Refused(Refusal::Invalid));
        }
        let topics: Vec<String> = topics
            .into_iter()
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        // Room for the topics nobody watches yet (counted against what the store holds in
        // this transaction, and our own groups' topics).
        let kept = w.watched_topics()?;
        let fresh = topics
            .iter()
            .filter(|t| kept.binary_search(t).is_err() && !self.groups.has_topic(t))
            .count();
        let own = self
            .groups
            .topics()
            .iter()
            .filter(|t| kept.binary_search(t).is_err())
            .count();
        if fresh > 0 && kept.len() + own + fresh > MAX_MAILBOX_TOPICS {
            warn!("mailbox keeps as many group topics as it can; a watch is refused");
            return Ok(Response::Refused(Refusal::Busy));
        }
        let change = w.set_watches(&dev, &topics)?;
        for topic in &change.stopped {
            let n = w.drop_topic(topic)?;
            debug!(dropped = n, "nobody watches a group topic any more");
        }
        after.push(After::Kept(change));
        debug!(topics = topics.len(), "a device watches group topics");
        Ok(Response::Watching {
            topics: topics.len() as u32,
        })
    }

    /// As a mailbox: applies a committed change of the watched topics (subscriptions).
    pub(super) fn kept_changed(&mut self, change: kith_store::WatchChange) -> Vec<NetCommand> {
        let mut out = Vec::new();
        for topic in change.started {
            if !self.groups.has_topic(&topic) {
                out.push(NetCommand::Subscribe {
                    topic: topic.clone(),
                });
            }
            self.watching.kept.insert(topic);
        }
        for topic in change.stopped {
            if !self.groups.has_topic(&topic) {
                out.push(NetCommand::Unsubscribe {
                    topic: topic.clone(),
                });
            }
            self.watching.kept.remove(&topic);
        }
        out
    }

    /// As a mailbox: a registered device asks for the frames it lacks on a topic it watches.
    pub(super) fn answer_topic_sync(
        &mut self,
        w: &WriteTx<'_>,
        peer: PeerId,
        topic: &str,
        have: &[SenderMark],
    ) -> Result<Response, Fatal> {
        let Some(dev) = self.registered_device(w, peer)? else {
            return Ok(Response::Refused(Refusal::Unauthorized));
        };
        if !self.mailbox.is_serving() || !w.watches_topic(&dev, topic)? {
            return Ok(Response::Refused(Refusal::Unauthorized));
        }
        let marks: Vec<([u8; 32], u64)> = have.iter().map(|m| (m.sender.0, m.seq)).collect();
        let lacking = w.topic_frames_lacking(topic, &marks, MAX_SYNC_FRAMES, MAX_SYNC_BYTES)?;
        let frames: Vec<GroupFrame> = lacking
            .frames
            .iter()
            .filter_map(|b| GroupFrame::decode(b).ok())
            .collect();
        Ok(Response::GroupFrames {
            frames,
            more: lacking.more,
        })
    }

    /// As a mailbox: a frame on a topic a device watches, of a group this node is not in.
    /// It cannot be opened here: a frame that decodes is kept and forwarded; one that does
    /// not is rejected and its sender penalised.
    pub(super) fn keep_watched(
        &mut self,
        w: &mut WriteTx<'_>,
        source: PeerId,
        topic: &str,
        data: &[u8],
        after: &mut Vec<After>,
    ) -> Result<Verdict, Fatal> {
        match GroupFrame::decode(data) {
            Err(e) => {
                warn!(%source, error = %e, "malformed group frame on a watched topic");
                after.push(After::Net(NetCommand::Penalize {
                    peer: source,
                    reason: "malformed group frame",
                }));
                Ok(Verdict::Reject)
            }
            Ok(frame) => {
                self.keep_frame(w, topic, &frame.sender.0, frame.seq, data)?;
                Ok(Verdict::Accept)
            }
        }
    }

    /// As a mailbox: keeps a frame (already decoded) for the devices watching its topic.
    pub(super) fn keep_frame(
        &mut self,
        w: &mut WriteTx<'_>,
        topic: &str,
        sender: &[u8; 32],
        seq: u64,
        data: &[u8],
    ) -> Result<(), Fatal> {
        let now = now_ms();
        let Some(expire_before_ms) = self.mailbox.expiry_cutoff(now) else {
            return Ok(());
        };
        let limits = TopicLimits {
            max_frames: MAILBOX_TOPIC_FRAMES,
            max_bytes: MAILBOX_TOPIC_BYTES,
            expire_before_ms,
        };
        if w.keep_topic_frame(topic, sender, seq, data, now, limits)? {
            debug!(seq, "kept group frame");
        }
        Ok(())
    }

    /// As a device: a mailbox acknowledged the topics it keeps for us.
    pub(super) fn on_watching(&mut self, mailbox: Vec<u8>, topics: Vec<String>) {
        let w = self.watching.mailboxes.entry(mailbox).or_default();
        w.in_flight = false;
        w.acked = Some(topics);
        // Catch up next (and send again if our groups changed meanwhile).
        self.watching.check = true;
    }

    /// As a device: a mailbox refused our `Watch` (or answered it wrongly).
    pub(super) fn watch_refused(&mut self, peer: PeerId, mailbox: Vec<u8>, resp: &Response) {
        debug!(%peer, ?resp, "a mailbox refused to keep our group topics");
        let w = self.watching.mailboxes.entry(mailbox).or_default();
        w.in_flight = false;
        w.refused = true;
    }

    /// As a device: a mailbox answered a catch-up of `group` (asked with marks raised to
    /// `floor`).
    pub(super) fn on_topic_frames(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        (group, mut floor): ([u8; 16], Vec<SenderMark>),
        frames: Vec<GroupFrame>,
        more: bool,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        self.watching.syncing.remove(&group);
        // The answer went oldest first, so with `more` the next question starts after the
        // newest frame of each sender it brought (our own marks cannot move past a frame
        // the mailbox no longer has, and would bring the same frames again).
        for f in &frames {
            if let Some(m) = floor.iter_mut().find(|m| m.sender == f.sender) {
                m.seq = m.seq.max(f.seq);
            } else if floor.len() < kith_proto::groupwire::MAX_SYNC_MARKS {
                floor.push(SenderMark {
                    sender: Key(f.sender.0),
                    seq: f.seq,
                });
            }
        }
        let new = self.take_frames(w, group, frames, after)?;
        if new > 0 {
            debug!(new, "group frames from a mailbox");
        }
        if more && new > 0 {
            after.push(After::TopicSyncMore(group, peer, floor));
        }
        Ok(())
    }

    /// As a device: a mailbox refused a catch-up (or answered it wrongly). Unauthorized
    /// means it no longer keeps our topics: tell it again after the next registration.
    pub(super) fn topic_sync_refused(&mut self, peer: PeerId, group: [u8; 16], resp: &Response) {
        self.watching.syncing.remove(&group);
        if matches!(resp, Response::Refused(Refusal::Unauthorized))
            && let Some(w) = self.watching.mailboxes.get_mut(&peer.to_bytes())
        {
            w.acked = None;
            w.refused = true;
        }
    }
}
