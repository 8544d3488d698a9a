//! Messages: group frames, published on the group's gossipsub topic and kept by every member.
//!
//! A [`GroupFrame`] carries, in the clear, the sending device's Curve25519 key, its Megolm
//! session id, the sender's seq (1, 2, 3… per device and group) and a Lamport clock; the
//! ciphertext holds a [`GroupPlain`] that repeats the header, so a frame cannot be moved to
//! another group or place. Messages are shown in (lamport, sender, seq) order, the same on
//! every member whatever the order of arrival.
//!
//! Data flow:
//!
//! 1. `group_send` makes sure there is a sending session (keys), encrypts the next seq,
//!    stores the frame (to answer catch-ups) and the message, and leaves the publication to
//!    the actor (`After::GroupPublish`); `on_published` marks it ✓ sent.
//! 2. `on_gossip` decodes a frame from the topic and hands it to `take_frame`, whose answer
//!    tells gossipsub whether to forward it. Frames that arrive by catch-up (sync) take the
//!    same path.
//! 3. `take_frame` reads what the rules of [`crate::cores::group_frames`] need: `admit`
//!    (the publisher is the sending device and a current member), `place` (dedupe by
//!    (group, sender, seq); a gap), then keeps the frame, moves the sender's `contiguous`
//!    mark (`advance`), and on a gap asks the peer (and our mailboxes) for what is missing.
//! 4. `open_frame` opens it with the sender's session key; without the key it marks it
//!    waiting (at most [`MAX_PENDING_FRAMES`](rules::MAX_PENDING_FRAMES) per group,
//!    `may_wait`) until `on_group_key` brings it. A frame that does not open with a known
//!    key is forged or damaged: dropped, its source penalised. An opened message is stored,
//!    shown, and its delivery receipt queued.

use crate::model::{Fatal, Outcome};
use kith_crypto::InboundGroup;
use kith_net::{GossipId, NetCommand, PeerId, Verdict};
use kith_proto::chat::ChatAction;
use kith_proto::groupwire::{GroupContent, GroupFrame, GroupPlain, group_topic};
use kith_proto::wire::MAX_TEXT;
use kith_store::ChatRef;
use kith_store::{FrameRow, GroupMessage, GroupMsgKey, SenderRow, WriteTx};
use kith_types::{CurveKey, GroupId, MessageId};
use tracing::{debug, warn};

use super::{Now, group_err};
use crate::actor::restored::restored_key;
use crate::actor::{After, State};
use crate::cores::group_frames::{self as rules, Admit, Marks, Place};
use crate::model::{EngineError, Event, Sent};

/// Our frames being published, by the network command's tag (to mark them ✓ sent).
pub(super) type Publishing = rules::Publishing<GroupMsgKey>;

impl State {
    /// `kith send --group`.
    pub(in crate::actor) fn group_send(
        &mut self,
        w: &mut WriteTx<'_>,
        q: &str,
        text: String,
        now: Now,
        after: &mut Vec<After>,
    ) -> Outcome<Sent> {
        if text.is_empty() || text.len() > MAX_TEXT {
            return Ok(Err(EngineError::BadText { max: MAX_TEXT }));
        }
        self.group_post(w, q, text, None, now, after)
            .map(|r| r.map(|(sent, _, _)| sent))
    }

    /// Posts a text, or a file with its caption (`media`), to a group; returns what was
    /// sent, the group and its members.
    pub(in crate::actor) fn group_post(
        &mut self,
        w: &mut WriteTx<'_>,
        q: &str,
        text: String,
        media: Option<kith_proto::media::Manifest>,
        now: Now,
        after: &mut Vec<After>,
    ) -> Outcome<(Sent, GroupId, Vec<kith_types::IdentityKey>)> {
        let id = match self.find_group(w, q)? {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        // Certificates this admin gathered go first: the message may point members at
        // devices they learn of from them (a file's other sources).
        if !self.groups.late_certs.is_empty() {
            let certs = self.groups.late_certs.take(now.at, true);
            self.pass_certs_on(w, &certs, now, after)?;
        }
        let msg_id = self.ids.next_id();
        let content = match media {
            Some(manifest) => GroupContent::Media {
                id: msg_id.0,
                sent_at_ms: now.ms,
                manifest: Box::new(manifest),
                caption: text.clone(),
            },
            None => {
                let mentions = self.mentions_in(w, &id, &text)?;
                if mentions.is_empty() {
                    GroupContent::Text {
                        id: msg_id.0,
                        sent_at_ms: now.ms,
                        text: text.clone(),
                    }
                } else {
                    GroupContent::Mentions {
                        id: msg_id.0,
                        sent_at_ms: now.ms,
                        text: text.clone(),
                        reply_to: None,
                        mentions,
                    }
                }
            }
        };
        if let Err(e) = self.group_publish(w, id, content, Some((msg_id.0, text)), now, after)? {
            return Ok(Err(e));
        }
        self.chat_stored(w, ChatRef::Group(id), msg_id.0, now.ms, None)?;
        let members = self
            .groups
            .states
            .get(&id)
            .map(|s| s.members.iter().copied().collect())
            .unwrap_or_default();
        Ok(Ok((
            Sent {
                id: msg_id.to_string(),
            },
            id,
            members,
        )))
    }

    /// Publishes `content` in group `id`; with `stored` (a message id and text), it is kept
    /// as this user's message too.
    pub(in crate::actor) fn group_publish(
        &mut self,
        w: &mut WriteTx<'_>,
        id: GroupId,
        content: GroupContent,
        stored: Option<(u128, String)>,
        now: Now,
        after: &mut Vec<After>,
    ) -> Outcome<()> {
        let Some(state) = self.groups.states.get(&id).cloned() else {
            return Ok(Err(EngineError::UnknownGroup(id.to_hex())));
        };
        let me = self.me;
        if !state.members.contains(&me) {
            return Ok(Err(group_err("you are no longer a member of this group")));
        }
        if let Some(at) = w.meta(&restored_key(&id))? {
            let at = at.try_into().map(u64::from_le_bytes).unwrap_or(0);
            if rules::restored_send_waits(at, now.ms) {
                return Ok(Err(group_err(
                    "catching up with this group after the restore: try again in a moment",
                )));
            }
            w.remove_meta(&restored_key(&id))?;
        }
        let mut row = w.group(&id)?.unwrap_or_default();
        self.sending_session(w, id, &mut row, &state.members, now, after)?;
        let (seq, lamport) = rules::next_send(row.next_seq, row.lamport);
        let plain = GroupPlain {
            group: id,
            seq,
            lamport,
            content,
        };
        let plain = plain.encode()?;
        let Some(out) = self.groups.sending.get_mut(&id) else {
            return Ok(Err(EngineError::Internal("no group session".into())));
        };
        let session = out.session_id();
        let ciphertext = out.encrypt(&plain);
        row.out_session = Some(out.pickle(&self.keys.storage));
        row.next_seq = seq + 1;
        row.lamport = lamport;
        let my_curve = self.device.curve_key();
        let frame = GroupFrame {
            version: kith_proto::groupwire::FRAME_VERSION,
            sender: my_curve,
            session,
            seq,
            lamport,
            ciphertext,
        };
        let bytes = frame.encode()?;
        w.put_group_frame(
            &id,
            &my_curve,
            seq,
            &FrameRow {
                frame: bytes.clone(),
                at_ms: now.ms,
            },
        )?;
        let mut srow = w.group_sender(&id, &my_curve)?.unwrap_or_default();
        let mut marks = marks_of(&srow);
        marks.sent(seq);
        set_marks(&mut srow, marks);
        w.put_group_sender(&id, &my_curve, &srow)?;
        w.put_group(&id, &row)?;
        let key = GroupMsgKey {
            group: id.0,
            lamport,
            sender_dev: my_curve,
            seq,
        };
        if let Some((msg_id, text)) = stored {
            w.put_group_message(
                &key,
                &GroupMessage {
                    id: msg_id,
                    sender: me,
                    outgoing: true,
                    text,
                    sent_at_ms: now.ms,
                    stored_at_ms: now.ms,
                    recipients: (state.members.len() - 1) as u32,
                    flag: false,
                },
            )?;
        }
        // For an action no message sits at `key`: marking it ✓ finds nothing.
        after.push(After::GroupPublish(key, group_topic(&id), bytes));
        Ok(Ok(()))
    }

    /// A frame from gossipsub: decide whether to forward it.
    pub(in crate::actor) fn on_gossip(
        &mut self,
        w: &mut WriteTx<'_>,
        (id, source): (GossipId, PeerId),
        author: Option<PeerId>,
        topic: &str,
        data: &[u8],
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let verdict = match self.groups.topics.get(topic).copied() {
            // Not our group, but one of the devices this mailbox serves watches it.
            None if self.watching.keeps(topic) => {
                self.keep_watched(w, source, topic, data, after)?
            }
            None => Verdict::Ignore,
            Some(group) => match GroupFrame::decode(data) {
                Err(e) => {
                    warn!(%source, error = %e, "malformed group frame");
                    after.push(After::Net(NetCommand::Penalize {
                        peer: source,
                        reason: "malformed group frame",
                    }));
                    Verdict::Reject
                }
                Ok(frame) => {
                    let (sender, seq) = (frame.sender, frame.seq);
                    let now = Now::read();
                    let v = self.take_frame(w, group, frame, author, Some(source), now, after)?;
                    // A mailbox that is a member too keeps what it forwards for its devices.
                    if v == Verdict::Accept && self.watching.keeps(topic) {
                        self.keep_frame(w, topic, &sender, seq, data)?;
                    }
                    v
                }
            },
        };
        after.push(After::Net(NetCommand::Validated {
            id,
            source,
            verdict,
        }));
        Ok(())
    }

    /// Checks, keeps and (when its key is here) opens a frame of `group`. `author`, for a
    /// gossiped frame, is its publisher (who must be the sending device); `source` is the
    /// peer that handed it over (asked to catch up when the frame shows a gap).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn take_frame(
        &mut self,
        w: &mut WriteTx<'_>,
        group: GroupId,
        frame: GroupFrame,
        author: Option<PeerId>,
        source: Option<PeerId>,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<Verdict, Fatal> {
        let sender = frame.sender;
        let my_curve = self.device.curve_key();
        if sender == my_curve {
            // Our own frame, come back: keep it if we lost it, nothing else; after a restore,
            // number our next frames past it (the old device sent it after the backup).
            if w.group_frame(&group, &sender, frame.seq)?.is_none() {
                store_frame(w, &group, &frame, now)?;
            }
            if w.meta(&restored_key(&group))?.is_some()
                && let Some(mut row) = w.group(&group)?
                && let Some(next) = rules::restored_next_seq(row.next_seq, frame.seq)
            {
                row.next_seq = next;
                row.lamport = row.lamport.max(frame.lamport);
                w.put_group(&group, &row)?;
                let mut srow = w.group_sender(&group, &sender)?.unwrap_or_default();
                srow.max = srow.max.max(frame.seq);
                advance(w, &group, &sender, &mut srow)?;
                w.put_group_sender(&group, &sender, &srow)?;
                debug!(
                    seq = next,
                    "own frames numbered past the ones sent before the restore"
                );
            }
            return Ok(Verdict::Ignore);
        }
        let device = match w.device_by_curve(&sender)? {
            Some(dev) => w.device(&dev)?,
            None => None,
        };
        if device.is_none() {
            // A device we do not know (yet): not forwarded, and held (bounded) in memory
            // until its certificate comes (`take_late_frames`), if we are in the group.
            let ours = self
                .groups
                .states
                .get(&group)
                .is_some_and(|st| st.members.contains(&self.me));
            if ours {
                self.groups
                    .unknown
                    .hold(sender, group, frame, author, source, now.at);
            }
            return Ok(Verdict::Ignore);
        }
        let publisher_is_sender = match (&device, author) {
            (Some(d), Some(a)) => Some(a.to_bytes() == d.peer_id),
            _ => None,
        };
        let member = device.as_ref().is_some_and(|d| {
            self.groups
                .states
                .get(&group)
                .is_some_and(|st| st.members.contains(&d.identity))
        });
        match rules::admit(device.is_some(), publisher_is_sender, member) {
            Admit::Take => {}
            Admit::Ignore => return Ok(Verdict::Ignore),
            Admit::Reject => return Ok(Verdict::Reject),
        }
        let held = w.group_frame(&group, &sender, frame.seq)?;
        if let Some(held) = &held
            && w.group_frame_waits(&group, &sender, frame.seq)?
        {
            // The place is taken by a frame that has not opened: either may be a forgery
            // (a catch-up or a mailbox's copy is not checked against its publisher), so the
            // held one must not win by coming first.
            return self.contest(w, group, frame, &held.frame, source, now, after);
        }
        let held = held.is_some();
        let mut srow = w.group_sender(&group, &sender)?.unwrap_or_default();
        let gap = match rules::place(held, marks_of(&srow), frame.seq) {
            Place::Held | Place::Behind => return Ok(Verdict::Accept),
            Place::New { gap } => gap,
        };
        store_frame(w, &group, &frame, now)?;
        let mut marks = marks_of(&srow);
        marks.seen(frame.seq);
        set_marks(&mut srow, marks);
        advance(w, &group, &sender, &mut srow)?;
        w.put_group_sender(&group, &sender, &srow)?;
        let verdict = self.open_frame(w, group, &frame, source, now, after)?;
        if gap && let Some(p) = source {
            after.push(After::GroupSync(group, p));
            after.push(After::TopicSync(group));
        }
        Ok(verdict)
    }

    /// Frames held for sending devices that were not known when they came: those whose
    /// device is known now are taken as if they had just come (every check again).
    /// Called after each batch of work, in its transaction.
    pub(in crate::actor) fn take_late_frames(
        &mut self,
        w: &mut WriteTx<'_>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        if self.groups.unknown.is_empty() {
            return Ok(());
        }
        let now = Now::read();
        self.groups.unknown.expire(now.at);
        for sender in self.groups.unknown.senders() {
            if w.device_by_curve(&sender)?.is_none() {
                continue;
            }
            for f in self.groups.unknown.take(&sender) {
                self.take_frame(w, f.group, f.frame, f.author, f.source, now, after)?;
            }
        }
        Ok(())
    }

    /// A frame for a place held by one that has not opened: the new one takes the place if
    /// it opens; one whose key is here but does not open is a forgery; one whose key is
    /// not here either waits aside (bounded) until a key decides.
    #[allow(clippy::too_many_arguments)]
    fn contest(
        &mut self,
        w: &mut WriteTx<'_>,
        group: GroupId,
        frame: GroupFrame,
        held: &[u8],
        source: Option<PeerId>,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<Verdict, Fatal> {
        let bytes = frame.encode()?;
        if bytes == held {
            return Ok(Verdict::Accept);
        }
        match self.try_open_frame(w, group, &frame)? {
            Opened::Plain(_) => {
                replace_frame(w, &group, &frame, now)?;
                self.open_frame(w, group, &frame, source, now, after)
            }
            Opened::Forged => {
                if let Some(p) = source {
                    after.push(After::Net(NetCommand::Penalize {
                        peer: p,
                        reason: "group frame does not open",
                    }));
                }
                Ok(Verdict::Reject)
            }
            Opened::NoKey => {
                w.put_group_alt(&group, &frame.sender, frame.seq, &bytes)?;
                Ok(Verdict::Ignore)
            }
        }
    }

    /// Whether a frame opens: its key is not here, it does not open with it (or does not
    /// match its header), or its plaintext.
    fn try_open_frame(
        &self,
        w: &WriteTx<'_>,
        group: GroupId,
        frame: &GroupFrame,
    ) -> Result<Opened, Fatal> {
        let Some(pickle) = w.group_inbound(&group, &frame.sender, &frame.session)? else {
            return Ok(Opened::NoKey);
        };
        Ok(InboundGroup::restore(&pickle, &self.keys.storage)
            .and_then(|mut s| s.decrypt(&frame.ciphertext))
            .ok()
            .and_then(|p| GroupPlain::decode(&p, &group, frame).ok())
            .map_or(Opened::Forged, Opened::Plain))
    }

    /// Opens the frames that claim a place (the held one, then those held aside) with a key
    /// that came for `session`: the first that opens takes the place.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_place(
        &mut self,
        w: &mut WriteTx<'_>,
        group: GroupId,
        sender: &CurveKey,
        seq: u64,
        session: &str,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        if let Some(fr) = w.group_frame(&group, sender, seq)?
            && let Ok(frame) = GroupFrame::decode(&fr.frame)
            && frame.session == session
            && self.open_frame(w, group, &frame, None, now, after)? == Verdict::Accept
        {
            return Ok(());
        }
        for alt in w.group_alts(&group, sender, seq)? {
            let Ok(frame) = GroupFrame::decode(&alt) else {
                continue;
            };
            if frame.session == session
                && matches!(self.try_open_frame(w, group, &frame)?, Opened::Plain(_))
            {
                replace_frame(w, &group, &frame, now)?;
                self.open_frame(w, group, &frame, None, now, after)?;
                return Ok(());
            }
        }
        Ok(())
    }

    /// Opens a kept frame if its key is here; otherwise marks it waiting.
    pub(super) fn open_frame(
        &mut self,
        w: &mut WriteTx<'_>,
        group: GroupId,
        frame: &GroupFrame,
        source: Option<PeerId>,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<Verdict, Fatal> {
        let sender = frame.sender;
        let plain = match self.try_open_frame(w, group, frame)? {
            Opened::NoKey => {
                if rules::may_wait(w.group_pending_count(&group)?) {
                    w.set_group_pending(&group, &sender, frame.seq, true)?;
                }
                return Ok(Verdict::Accept);
            }
            Opened::Forged => {
                // The session is known but the frame does not open or does not match its
                // header: forged or damaged. Drop it, and count its place as not held, so
                // that the real frame is fetched again (and taken) when it comes.
                if let Some(p) = source {
                    after.push(After::Net(NetCommand::Penalize {
                        peer: p,
                        reason: "group frame does not open",
                    }));
                }
                w.drop_group_frame(&group, &sender, frame.seq)?;
                let mut srow = w.group_sender(&group, &sender)?.unwrap_or_default();
                if srow.contiguous >= frame.seq {
                    srow.contiguous = frame.seq.saturating_sub(1);
                    w.put_group_sender(&group, &sender, &srow)?;
                }
                return Ok(Verdict::Reject);
            }
            Opened::Plain(p) => p,
        };
        w.drop_group_alts(&group, &sender, frame.seq)?;
        w.set_group_pending(&group, &sender, frame.seq, false)?;
        let Some(dev) = w.device_by_curve(&sender)? else {
            return Ok(Verdict::Accept);
        };
        let Some(device) = w.device(&dev)? else {
            return Ok(Verdict::Accept);
        };
        let mut row = w.group(&group)?.unwrap_or_default();
        if let Some(lamport) = rules::lamport_seen(row.lamport, frame.lamport) {
            row.lamport = lamport;
            w.put_group(&group, &row)?;
        }
        // Whether the sender named this user (`@name`).
        let mut named = false;
        let (id, sent_at_ms, text, extra, file) = match plain.content {
            GroupContent::Text {
                id,
                sent_at_ms,
                text,
            } => (id, sent_at_ms, text, None, None),
            GroupContent::Media {
                id,
                sent_at_ms,
                manifest,
                caption,
            } => (id, sent_at_ms, caption, None, Some(manifest)),
            GroupContent::Chat(ChatAction::Message {
                id,
                sent_at_ms,
                text,
                reply_to,
                forwarded,
            }) => (id, sent_at_ms, text, Some((reply_to, forwarded)), None),
            GroupContent::Mentions {
                id,
                sent_at_ms,
                text,
                reply_to,
                mentions,
            } => {
                named = mentions.contains(&self.me);
                let extra = reply_to.map(|r| (Some(r), false));
                (id, sent_at_ms, text, extra, None)
            }
            GroupContent::Chat(action) => {
                self.on_chat_action(w, ChatRef::Group(group), device.identity, action, after)?;
                return Ok(Verdict::Accept);
            }
            _ => {
                debug!("a group message of a kind this version does not show");
                return Ok(Verdict::Accept);
            }
        };
        let key = GroupMsgKey {
            group: group.0,
            lamport: frame.lamport,
            sender_dev: sender,
            seq: frame.seq,
        };
        // Sent from another device of this user's: shown as sent here too (✓ sent, since
        // it came back through the group).
        let mine = device.identity == self.me;
        let recipients = match (mine, self.groups.states.get(&group)) {
            (true, Some(st)) => st.members.len().saturating_sub(1) as u32,
            _ => 0,
        };
        let msg = GroupMessage {
            id,
            sender: device.identity,
            outgoing: mine,
            text: text.clone(),
            sent_at_ms,
            stored_at_ms: now.ms,
            recipients,
            flag: mine,
        };
        if w.put_group_message(&key, &msg)? {
            self.chat_stored(w, ChatRef::Group(group), id, now.ms, extra)?;
            if named {
                w.put_mention(&group, id, now.ms)?;
            }
            let from = self.member_name(w, &device.identity)?;
            let gname = self
                .groups
                .states
                .get(&group)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            if let Some(manifest) = file {
                let members: Vec<kith_types::IdentityKey> = self
                    .groups
                    .states
                    .get(&group)
                    .map(|s| s.members.iter().copied().collect())
                    .unwrap_or_default();
                self.receive_group_file(
                    w,
                    (group, &gname, &members),
                    (device.identity, &device.peer_id),
                    id,
                    *manifest,
                    after,
                )?;
            }
            after.push(After::Event(Event::GroupMessage {
                group: gname,
                group_id: group.to_hex(),
                from,
                id: MessageId(id).to_string(),
                text,
                sent_at: sent_at_ms,
                mentioned: named,
            }));
            // ✓✓ for the sender (unless blocked), batched with the other
            // receipts due to the same device within RECEIPT_DELAY.
            if !mine && !self.social.blocked.contains(&device.identity) {
                self.receipt_due(w, dev, device.identity, group, id, now, after)?;
            }
        }
        Ok(Verdict::Accept)
    }

    /// A publication went out (✓ sent) or not (members fetch it when they catch up).
    pub(in crate::actor) fn on_published(
        &mut self,
        w: &mut WriteTx<'_>,
        tag: u64,
        ok: bool,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(key) = self.groups.publishing.done(tag) else {
            return Ok(());
        };
        if !ok {
            return Ok(());
        }
        self.mark_sent(w, &key, after)
    }

    fn mark_sent(
        &mut self,
        w: &mut WriteTx<'_>,
        key: &GroupMsgKey,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(mut msg) = w.group_history_at(key)? else {
            return Ok(());
        };
        if msg.flag {
            return Ok(());
        }
        msg.flag = true;
        w.update_group_message(key, &msg)?;
        let gname = self
            .groups
            .states
            .get(&GroupId(key.group))
            .map(|s| s.name.clone())
            .unwrap_or_default();
        after.push(After::Event(Event::GroupStatus {
            group: gname,
            id: MessageId(msg.id).to_string(),
            delivered: 0,
            read: 0,
            of: msg.recipients,
        }));
        Ok(())
    }

    /// Remembers a publication in flight (bounded).
    pub(in crate::actor) fn publishing(&mut self, tag: u64, key: GroupMsgKey) {
        self.groups.publishing.start(tag, key);
    }
}

/// What opening a frame gave.
enum Opened {
    /// Its session's key is not here (yet).
    NoKey,
    /// The key is here and the frame does not open with it, or does not match its header.
    Forged,
    /// Its plaintext.
    Plain(GroupPlain),
}

/// Stores a frame as received, by group, sender and seq.
fn store_frame(
    w: &mut WriteTx<'_>,
    group: &GroupId,
    frame: &GroupFrame,
    now: Now,
) -> Result<(), Fatal> {
    let bytes = frame.encode()?;
    w.put_group_frame(
        group,
        &frame.sender,
        frame.seq,
        &FrameRow {
            frame: bytes,
            at_ms: now.ms,
        },
    )?;
    Ok(())
}

/// Puts a frame that opened in the place of the one held there (which did not open): the
/// store keeps the first frame of a place, so the held one goes first. What this node hands
/// on to members catching up is then the real frame, never the forgery.
fn replace_frame(
    w: &mut WriteTx<'_>,
    group: &GroupId,
    frame: &GroupFrame,
    now: Now,
) -> Result<(), Fatal> {
    w.drop_group_frame(group, &frame.sender, frame.seq)?;
    store_frame(w, group, frame, now)
}

/// Moves a sender's `contiguous` mark over the frames held after it.
pub(super) fn advance(
    w: &WriteTx<'_>,
    group: &GroupId,
    sender: &CurveKey,
    row: &mut SenderRow,
) -> Result<(), Fatal> {
    loop {
        let next = w.group_frames_after(group, sender, row.contiguous, 256)?;
        match rules::advance(row.contiguous, next.into_iter().map(|(seq, _)| seq)) {
            Some(mark) => row.contiguous = mark,
            None => break,
        }
    }
    row.max = row.max.max(row.contiguous);
    Ok(())
}

/// A sender's stored row as the core's marks.
fn marks_of(row: &SenderRow) -> Marks {
    Marks {
        keyed: row.keyed,
        contiguous: row.contiguous,
        max: row.max,
    }
}

/// Writes the core's marks back into a sender's stored row.
fn set_marks(row: &mut SenderRow, marks: Marks) {
    row.keyed = marks.keyed;
    row.contiguous = marks.contiguous;
    row.max = marks.max;
}
