//! Mailboxes keep group frames for their users while they are away.
//!
//! Group frames travel on gossipsub, and a member who was offline catches up from another
//! member ([`Request::GroupSync`]). When no member holding the frames is online, its
//! mailboxes fill in:
//!
//! - **Device side.** A device tells each of its mailboxes the topics of the groups it is a
//!   current member of ([`Request::Watch`], at most
//!   [`MAX_WATCH_TOPICS`](kith_proto::wire::MAX_WATCH_TOPICS)): after it registers, when
//!   that set changes, and at startup; again when a mailbox reconnects and the last set was
//!   not acknowledged in this run. Once a mailbox acknowledged the set, the
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
//! The rules (what to tell which mailbox and when, when to catch up, who may watch, the
//! topic caps) live in [`crate::cores::watch`]; this module reads and writes the store,
//! sends the requests and feeds the core what happens.
//!
//! Data flow while Carol is away: Ada publishes a frame on the topic → Carol's mailbox, which
//! subscribed because Carol watches the topic, validates and keeps it, answers `Accept`
//! (gossipsub forwards it) → Carol starts, registers, watches, asks `TopicSync` → the mailbox
//! answers the frames Carol lacks → Carol opens them with the key Ada sent pairwise.

use kith_net::Verdict;
use kith_proto::groupwire::{GroupFrame, MAX_SYNC_BYTES, MAX_SYNC_FRAMES, SenderMark, group_topic};
use kith_store::TopicLimits;

use super::groups::sync_marks;
use super::*;
use crate::cores::watch::{self as rules, Step, Sub, Watch};
pub use crate::cores::watch::{MAILBOX_TOPIC_BYTES, MAILBOX_TOPIC_FRAMES, MAX_MAILBOX_TOPICS};
use kith_types::GroupId;

/// The watching core, with our mailboxes keyed by their peer id bytes.
pub(super) struct Watching {
    core: Watch<Vec<u8>>,
}

impl Watching {
    /// As a mailbox: the topics devices watch, from the store.
    pub(super) fn load(store: &Store, mailbox: bool) -> Self {
        let kept = if mailbox {
            store.read(|r| r.watched_topics()).unwrap_or_default()
        } else {
            Vec::new()
        };
        Watching {
            core: Watch::new(kept),
        }
    }

    /// Whether this mailbox keeps frames of `topic`.
    pub(super) fn keeps(&self, topic: &str) -> bool {
        self.core.keeps(topic)
    }

    /// Our groups changed: tell the mailboxes at the next tick.
    pub(super) fn changed(&mut self) {
        self.core.changed();
    }

    /// A peer connected (see [`Watch::connected`]).
    pub(super) fn connected(&mut self, mailbox: &[u8]) {
        self.core.connected(mailbox);
    }

    /// A peer disconnected (see [`Watch::disconnected`]).
    pub(super) fn disconnected(&mut self, mailbox: &[u8]) {
        self.core.disconnected(mailbox);
    }

    /// We registered with a mailbox (see [`Watch::registered`]).
    pub(super) fn registered(&mut self, mailbox: &[u8]) {
        self.core.registered(mailbox);
    }
}

impl Engine {
    /// As a mailbox, at startup: subscribe to the topics devices watch.
    pub(super) fn watch_startup(&mut self) {
        for topic in self.st.watching.core.kept_topics() {
            if !self.st.groups.has_topic(&topic) {
                self.st.net_send(NetCommand::Subscribe { topic });
            }
        }
    }

    /// As a device: carries out what the core decides for our mailboxes: tell each the
    /// topics of our groups, or catch each group up with it.
    pub(super) fn watch_tick(&mut self) {
        let ours: Vec<(Vec<u8>, bool)> = self
            .st
            .my_mailboxes
            .iter()
            .map(|m| {
                let up =
                    PeerId::from_bytes(&m.peer_id).is_ok_and(|p| self.st.connected.contains(&p));
                (m.peer_id.clone(), up)
            })
            .collect();
        let current = self.st.groups.current(&self.st.me);
        for step in self.st.watching.core.tick(&ours, &current) {
            match step {
                Step::Tell { mailbox, topics } => {
                    let Ok(peer) = PeerId::from_bytes(&mailbox) else {
                        continue;
                    };
                    let addrs = self
                        .st
                        .my_mailboxes
                        .iter()
                        .find(|m| m.peer_id == mailbox)
                        .map(|m| decode_addrs(&m.addrs))
                        .unwrap_or_default();
                    let tag = self.st.tag();
                    let req = NetCommand::Request {
                        tag,
                        peer,
                        addrs,
                        req: Request::Watch {
                            topics: topics.clone(),
                        },
                    };
                    if self.st.net.send(req).is_ok() {
                        self.st.watching.core.telling(&mailbox);
                        self.st
                            .pending
                            .insert(tag, Pending::Watch { mailbox, topics });
                    }
                }
                Step::CatchUp { mailbox, group } => {
                    let Ok(peer) = PeerId::from_bytes(&mailbox) else {
                        continue;
                    };
                    if self.topic_sync(group, peer, Vec::new()) {
                        self.st.watching.core.caught_up(&mailbox, group);
                    } else {
                        // Busy with this group or with others: try again at the next tick.
                        self.st.watching.core.changed();
                    }
                }
            }
        }
    }

    /// A frame showed a gap: ask a connected mailbox that keeps the group's topic for us.
    pub(super) fn topic_catch_up(&mut self, id: GroupId) {
        let connected: Vec<Vec<u8>> = self
            .st
            .my_mailboxes
            .iter()
            .filter(|m| {
                PeerId::from_bytes(&m.peer_id).is_ok_and(|p| self.st.connected.contains(&p))
            })
            .map(|m| m.peer_id.clone())
            .collect();
        let candidates =
            self.st
                .watching
                .core
                .gap_candidates(id, &group_topic(&id), &connected, Instant::now());
        for mailbox in candidates {
            let Ok(peer) = PeerId::from_bytes(&mailbox) else {
                continue;
            };
            if self.topic_sync(id, peer, Vec::new()) {
                return;
            }
        }
    }

    /// Asks mailbox `peer` for the frames of group `id` it kept that this node lacks, with
    /// our marks raised to `floor` (what earlier answers of the same catch-up brought).
    /// Returns whether the request went out.
    fn topic_sync(&mut self, id: GroupId, peer: PeerId, floor: Vec<SenderMark>) -> bool {
        let now = Instant::now();
        if !self.st.watching.core.may_sync(id, now) {
            return false;
        }
        let Some(have) = sync_marks(&self.store, &id) else {
            return false;
        };
        let tag = self.st.tag();
        let req = NetCommand::Request {
            tag,
            peer,
            addrs: Vec::new(),
            req: Request::TopicSync {
                topic: group_topic(&id),
                have: rules::raise_marks(have, &floor),
            },
        };
        if self.st.net.send(req).is_err() {
            return false;
        }
        self.st.watching.core.sync_started(id, peer.to_bytes(), now);
        self.st
            .pending
            .insert(tag, Pending::TopicSync { group: id, floor });
        true
    }

    /// A `Watch` or `TopicSync` failed on the network.
    pub(super) fn watch_failed(&mut self, pending: Pending) {
        match pending {
            Pending::Watch { mailbox, .. } => self.st.watching.core.watch_failed(&mailbox),
            Pending::TopicSync { group, .. } => self.st.watching.core.sync_done(group),
            _ => {}
        }
    }

    /// Re-sends a catch-up that was cut at its size limit (and brought something new).
    pub(super) fn topic_sync_more(&mut self, id: GroupId, peer: PeerId, floor: Vec<SenderMark>) {
        self.st.watching.core.sync_done(id);
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
            Some(cert) if w.mailbox_user(&cert.curve25519)? == Some(dev) => Some(dev),
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
        let serving = self.mailbox.is_serving();
        let dev = if serving {
            self.registered_device(w, peer)?
        } else {
            None
        };
        let topics = match rules::check_watch(serving, dev.is_some(), topics) {
            Ok(topics) => topics,
            Err(why) => return Ok(Response::Refused(why)),
        };
        let Some(dev) = dev else {
            return Ok(Response::Refused(Refusal::Unauthorized));
        };
        // The device's share: topics only it would have kept (its own watch of a topic
        // does not count as another's).
        let share = self.mailbox.config().map_or(0, |c| c.topics_per_device);
        let mut others = Vec::with_capacity(topics.len());
        for t in &topics {
            let mine = u64::from(w.watches_topic(&dev, t)?);
            others.push(w.topic_watchers(t)?.saturating_sub(mine) > 0);
        }
        let own = self.groups.topics();
        if !rules::within_share(&topics, &others, &own, share) {
            warn!("a device watches more group topics than its share; refused");
            return Ok(Response::Refused(Refusal::Busy));
        }
        // Room for the topics nobody watches yet (counted against what the store holds in
        // this transaction, and our own groups' topics).
        let kept = w.watched_topics()?;
        if !rules::has_room(&topics, &kept, &own) {
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
        let groups = &self.groups;
        self.watching
            .core
            .kept_changed(change.started, change.stopped, |t| groups.has_topic(t))
            .into_iter()
            .map(|s| match s {
                Sub::Subscribe(topic) => NetCommand::Subscribe { topic },
                Sub::Unsubscribe(topic) => NetCommand::Unsubscribe { topic },
            })
            .collect()
    }

    /// As a mailbox: a registered device asks for the frames it lacks on a topic it watches.
    pub(super) fn answer_topic_sync(
        &mut self,
        w: &WriteTx<'_>,
        peer: PeerId,
        topic: &str,
        have: &[SenderMark],
    ) -> Result<Response, Fatal> {
        let dev = self.registered_device(w, peer)?;
        let serving = self.mailbox.is_serving();
        let watches = match &dev {
            Some(dev) if serving => w.watches_topic(dev, topic)?,
            _ => false,
        };
        if !rules::may_ask_kept(dev.is_some(), serving, watches) {
            return Ok(Response::Refused(Refusal::Unauthorized));
        }
        let marks: Vec<(CurveKey, u64)> = have.iter().map(|m| (m.sender, m.seq)).collect();
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
                self.keep_frame(w, topic, &frame.sender, frame.seq, data)?;
                Ok(Verdict::Accept)
            }
        }
    }

    /// As a mailbox: keeps a frame (already decoded) for the devices watching its topic.
    pub(super) fn keep_frame(
        &mut self,
        w: &mut WriteTx<'_>,
        topic: &str,
        sender: &CurveKey,
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
        self.watching.core.acknowledged(mailbox, topics);
    }

    /// As a device: a mailbox refused our `Watch` (or answered it wrongly).
    pub(super) fn watch_refused(&mut self, peer: PeerId, mailbox: Vec<u8>, resp: &Response) {
        debug!(%peer, ?resp, "a mailbox refused to keep our group topics");
        self.watching.core.refused(mailbox);
    }

    /// As a device: a mailbox answered a catch-up of `group` (asked with marks raised to
    /// `floor`).
    pub(super) fn on_topic_frames(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        (group, floor): (GroupId, Vec<SenderMark>),
        frames: Vec<GroupFrame>,
        more: bool,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        self.watching.core.sync_done(group);
        let floor = rules::next_floor(floor, frames.iter().map(|f| (f.sender, f.seq)));
        let new = self.take_frames(w, group, frames, after)?;
        if new > 0 {
            debug!(new, "group frames from a mailbox");
        }
        if rules::follow_up(more, new) {
            after.push(After::TopicSyncMore(group, peer, floor));
        }
        Ok(())
    }

    /// As a device: a mailbox refused a catch-up (or answered it wrongly).
    pub(super) fn topic_sync_refused(&mut self, peer: PeerId, group: GroupId, resp: &Response) {
        let unauthorized = matches!(resp, Response::Refused(Refusal::Unauthorized));
        self.watching
            .core
            .sync_refused(&peer.to_bytes(), group, unauthorized);
    }
}
