//! History at link time, on the new device: pages from the device that approved this one
//! (`history` is the walk there), stored as they were there (ids, ticks, order, reply,
//! reactions, edited or deleted state, stars, pins, files by manifest), messages already
//! here skipped by id. Progress is kept in the meta table (`history_in`) for
//! `devices.history` (and so `kith link`'s bar) and streamed as `history` events.

use kith_proto::link::{HistoryBatch, HistoryChat, HistoryItem, HistoryMeta, HistoryPage};
use kith_store::{
    ChatRef, GroupMessage, GroupMsgKey, MediaRow, MessageMeta, Status, StoredMessage,
};

use super::*;
use crate::command::HistoryProgressView;

/// Meta key: the history coming from the approving device ([`HistoryIn`]).
pub(super) const HISTORY_IN: &str = "history_in";

/// How far the history from the approving device has come.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct HistoryIn {
    pub done: u32,
    pub total: u32,
    pub walked: u64,
    pub messages: u64,
    pub stored: u64,
    pub end: bool,
}

fn status_of(c: u8) -> Status {
    match c {
        0 => Status::Pending,
        1 => Status::Sent,
        2 => Status::Delivered,
        _ => Status::Read,
    }
}

fn meta_from(h: HistoryMeta) -> MessageMeta {
    MessageMeta {
        reply_to: h.reply_to,
        forwarded: h.forwarded,
        edited_at_ms: h.edited_at_ms,
        deleted: h.deleted,
        starred: h.starred,
        pinned: h.pinned,
        reactions: h.reactions,
        ..MessageMeta::default()
    }
}

/// A message that is here already (a group's frames may come before the history): the
/// person's own marks on it (star, pin), which no frame carries, are taken from the
/// history; the rest came with the frames.
fn keep_own_marks(
    w: &mut WriteTx<'_>,
    chat: ChatRef,
    id: u128,
    h: Option<HistoryMeta>,
) -> Result<(), Fatal> {
    let Some(h) = h.filter(|h| h.starred || h.pinned) else {
        return Ok(());
    };
    let mut meta = w.message_meta(&chat, id)?.unwrap_or_default();
    if (meta.starred, meta.pinned) != (meta.starred || h.starred, meta.pinned || h.pinned) {
        meta.starred |= h.starred;
        meta.pinned |= h.pinned;
        w.put_message_meta(&chat, id, &meta)?;
    }
    Ok(())
}

pub(crate) fn progress_view(p: Option<HistoryIn>) -> HistoryProgressView {
    match p {
        None => HistoryProgressView {
            state: "waiting".into(),
            ..Default::default()
        },
        Some(p) => HistoryProgressView {
            state: if p.end { "done" } else { "receiving" }.into(),
            conversations_done: if p.end { p.total } else { p.done },
            conversations: p.total,
            messages_done: if p.end { p.messages } else { p.walked },
            messages: p.messages,
            stored: p.stored,
        },
    }
}

impl State {
    /// A page of history from the device that approved this one.
    pub(super) fn on_history_page(
        &mut self,
        w: &mut WriteTx<'_>,
        from: DeviceKey,
        h: HistoryPage,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let source = w.device(&from)?.map(|d| d.peer_id).unwrap_or_default();
        let n = h.items.len() as u64;
        let mut stored = 0u64;
        match h.chat {
            HistoryChat::Contact(conv) => {
                if w.contact(&conv)?.is_some() {
                    for m in h.items {
                        stored += u64::from(self.history_contact_item(w, conv, m, &source)?);
                    }
                }
            }
            HistoryChat::Group(g) => {
                if w.group(&g)?.is_some() {
                    for m in h.items {
                        stored += u64::from(self.history_group_item(w, g, m, &source)?);
                    }
                }
            }
        }
        let mut p: HistoryIn = w
            .meta(HISTORY_IN)?
            .and_then(|b| kith_proto::codec::decode(&b, 1024).ok())
            .unwrap_or_default();
        p.done = h.done;
        p.total = h.total;
        p.walked = (h.walked + n).min(h.messages);
        p.messages = h.messages;
        p.stored += stored;
        p.end |= h.end;
        w.set_meta(HISTORY_IN, &kith_proto::codec::encode(&p)?)?;
        debug!(
            stored,
            done = h.done,
            total = h.total,
            "history from the approving device"
        );
        let v = progress_view(Some(p));
        after.push(After::Event(Event::History {
            state: v.state,
            conversations_done: v.conversations_done,
            conversations: v.conversations,
            messages_done: v.messages_done,
            messages: v.messages,
        }));
        Ok(())
    }

    fn history_file(
        &self,
        w: &mut WriteTx<'_>,
        m: &HistoryItem,
        chat: IdentityKey,
        group: Option<GroupId>,
        source: &[u8],
    ) -> Result<(), Fatal> {
        let Some(bytes) = &m.manifest else {
            return Ok(());
        };
        let Ok(manifest) = kith_proto::media::decode_manifest(bytes) else {
            debug!("a history file's manifest does not decode");
            return Ok(());
        };
        if w.media(m.id)?.is_some() {
            return Ok(());
        }
        super::super::media::keep_thumbnail(&self.media, &manifest);
        w.put_media(
            m.id,
            &MediaRow {
                chat,
                // Not here yet, even when the person sent it: fetched like a received file.
                outgoing: false,
                manifest: bytes.clone(),
                root: manifest.root,
                size: manifest.size,
                wanted: false,
                source: source.to_vec(),
                group,
            },
        )?;
        Ok(())
    }

    fn history_contact_item(
        &mut self,
        w: &mut WriteTx<'_>,
        conv: IdentityKey,
        m: HistoryItem,
        source: &[u8],
    ) -> Result<bool, Fatal> {
        let msg = StoredMessage {
            id: m.id,
            outgoing: m.outgoing,
            text: m.text.clone(),
            sent_at_ms: m.sent_at_ms,
            stored_at_ms: now_ms(),
            status: status_of(m.status),
        };
        if w.append_message(&conv, &msg)?.is_none() {
            keep_own_marks(w, ChatRef::Contact(conv), m.id, m.meta)?;
            return Ok(false);
        }
        self.history_file(w, &m, conv, None, source)?;
        let chat = ChatRef::Contact(conv);
        if let Some(meta) = m.meta {
            w.put_message_meta(&chat, m.id, &meta_from(meta))?;
        }
        self.chat_stored(w, chat, m.id, msg.stored_at_ms, None)?;
        Ok(true)
    }

    fn history_group_item(
        &mut self,
        w: &mut WriteTx<'_>,
        g: GroupId,
        m: HistoryItem,
        source: &[u8],
    ) -> Result<bool, Fatal> {
        let Some((lamport, dev, seq)) = m.place else {
            return Ok(false);
        };
        let key = GroupMsgKey {
            group: g.0,
            lamport,
            sender_dev: CurveKey(dev),
            seq,
        };
        let recipients = match (m.outgoing, self.groups.states.get(&g)) {
            (true, Some(st)) => st.members.len().saturating_sub(1) as u32,
            _ => 0,
        };
        let msg = GroupMessage {
            id: m.id,
            sender: m.sender,
            outgoing: m.outgoing,
            text: m.text.clone(),
            sent_at_ms: m.sent_at_ms,
            stored_at_ms: now_ms(),
            recipients,
            flag: m.status > 0,
        };
        if !w.put_group_message(&key, &msg)? {
            keep_own_marks(w, ChatRef::Group(g), m.id, m.meta)?;
            return Ok(false);
        }
        self.history_file(w, &m, m.sender, Some(g), source)?;
        let chat = ChatRef::Group(g);
        if let Some(meta) = m.meta {
            w.put_message_meta(&chat, m.id, &meta_from(meta))?;
        }
        self.chat_stored(w, chat, m.id, msg.stored_at_ms, None)?;
        Ok(true)
    }

    /// A page of 1:1 texts in the first form (from a device of an older version): stored
    /// as it was there, messages already here skipped.
    pub(super) fn on_history(
        &mut self,
        w: &mut WriteTx<'_>,
        h: HistoryBatch,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(contact) = w.contact(&h.conversation)? else {
            return Ok(());
        };
        for m in h.messages {
            let msg = StoredMessage {
                id: m.id,
                outgoing: m.outgoing,
                text: m.text,
                sent_at_ms: m.sent_at_ms,
                stored_at_ms: now_ms(),
                status: status_of(m.status),
            };
            if w.append_message(&h.conversation, &msg)?.is_some() {
                self.chat_stored(
                    w,
                    ChatRef::Contact(h.conversation),
                    msg.id,
                    msg.stored_at_ms,
                    None,
                )?;
            }
        }
        after.push(After::Event(Event::Notice {
            contact: contact.name,
            detail: format!(
                "history from your other device: {} of {} conversations",
                h.done + 1,
                h.total
            ),
        }));
        Ok(())
    }
}
