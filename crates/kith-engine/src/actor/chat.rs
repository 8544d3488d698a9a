//! Message actions: the I/O side of [`crate::cores::chat`]. Replies and forwards travel as
//! [`ChatAction::Message`]; reactions, edits, deletes and disappearing timers as the other
//! actions, in a one-to-one [`Body::Chat`] through the outbox or a group
//! [`GroupContent::Chat`] frame. The core judges; this file finds the target message in the
//! store, writes what the core decided, and tells watchers.
//!
//! Data flow:
//!
//! 1. A user command (`message.*`, `chat.set`) names a message by id: [`State::locate`]
//!    finds it in the groups' index or in a contact's conversation; the core checks that the
//!    user may do it (own messages only for edit and delete-for-everyone, within the
//!    limits); the change is written here and the action sent to the chat.
//! 2. An action from a contact or member ([`State::on_contact_chat`],
//!    [`State::on_chat_action`]) is judged against the target *in that chat* (a contact can
//!    only touch messages of the conversation with them): refused, applied, or held until
//!    its message comes.
//! 3. Every stored message goes through [`State::chat_stored`]: its reply/forward marks, the
//!    actions held for it, and its expiry when the chat's timer is on.
//! 4. Every second the tick ([`Engine::chat_tick`]) blanks the messages whose time ran out.
//!
//! What changes a message's text is noted for the search index (`actor/search.rs`).

use kith_proto::chat::ChatAction;
use kith_proto::groupwire::GroupContent;
use kith_store::{ChatSettings, GroupMsgKey, MessageMeta};

use super::groups::Now;
use super::*;
use crate::command::{ActionResult, ChatParams, ChatSettingsView};
use crate::cores::chat::{self as rules, Applied, Target};
use crate::model::{EngineError, Event, Fatal, MessageExtras, Outcome, Sent};
use crate::search::IndexOp;

/// Most messages blanked in one expiry pass (the rest in the next).
const EXPIRE_BATCH: usize = 512;
/// Characters of the answered message shown as the quote.
const QUOTE_CHARS: usize = 80;

/// A message found by id.
#[derive(Debug, Clone)]
pub(super) struct Located {
    pub(super) chat: ChatRef,
    pub(super) id: u128,
    pub(super) author: IdentityKey,
    pub(super) sent_at_ms: u64,
    pub(super) text: String,
    group_key: Option<GroupMsgKey>,
}

impl Located {
    fn target(&self) -> Target {
        Target {
            author: self.author,
            sent_at_ms: self.sent_at_ms,
        }
    }
}

fn parse_id(id: &str) -> Result<u128, EngineError> {
    MessageId::parse(id.trim())
        .map(|m| m.0)
        .ok_or_else(|| EngineError::UnknownMessage(id.to_string()))
}

fn refused(e: &str) -> EngineError {
    EngineError::ActionRefused(e.to_string())
}

impl State {
    /// Notes a message's current text for the search index (applied after the commit).
    pub(super) fn index_put(&mut self, l: &Located, text: &str) {
        if !self.indexing() {
            return;
        }
        self.index_ops.push(IndexOp::Put {
            id: l.id,
            chat: l.chat.key(),
            from: l.author.0,
            sent_at: l.sent_at_ms,
            text: text.to_string(),
        });
    }

    /// A message in one chat, by id.
    pub(super) fn locate_in(
        &self,
        w: &WriteTx<'_>,
        chat: &ChatRef,
        id: u128,
    ) -> Result<Option<Located>, StoreError> {
        match chat {
            ChatRef::Contact(conv) => Ok(w.message(conv, id)?.map(|m| Located {
                chat: *chat,
                id,
                author: if m.outgoing { self.me } else { *conv },
                sent_at_ms: m.sent_at_ms,
                text: m.text,
                group_key: None,
            })),
            ChatRef::Group(g) => {
                Ok(w.group_message(id)?
                    .filter(|(k, _)| k.group == g.0)
                    .map(|(k, m)| Located {
                        chat: *chat,
                        id,
                        author: m.sender,
                        sent_at_ms: m.sent_at_ms,
                        text: m.text,
                        group_key: Some(k),
                    }))
            }
        }
    }

    /// A message in any chat, by id.
    pub(super) fn locate(&self, w: &WriteTx<'_>, id: u128) -> Result<Option<Located>, StoreError> {
        if let Some((k, _)) = w.group_message(id)? {
            return self.locate_in(w, &ChatRef::Group(GroupId(k.group)), id);
        }
        for c in w.contacts()? {
            let chat = ChatRef::Contact(c.identity);
            if let Some(l) = self.locate_in(w, &chat, id)? {
                return Ok(Some(l));
            }
        }
        Ok(None)
    }

    /// Replaces a stored message's text (an edit; empty for a tombstone or expiry).
    fn set_text(&mut self, w: &mut WriteTx<'_>, l: &Located, text: &str) -> Result<(), StoreError> {
        self.index_put(l, text);
        // The old text stays in freed pages and index segments until scrubbed.
        self.scrub.due = true;
        match (&l.chat, &l.group_key) {
            (ChatRef::Contact(conv), _) => {
                w.set_message_text(conv, l.id, text)?;
            }
            (ChatRef::Group(_), Some(k)) => {
                if let Some(mut m) = w.group_history_at(k)? {
                    m.text = text.to_string();
                    w.update_group_message(k, &m)?;
                }
            }
            (ChatRef::Group(_), None) => {}
        }
        Ok(())
    }

    /// The chat a command names.
    pub(super) fn chat_of(&self, w: &WriteTx<'_>, p: &ChatParams) -> Outcome<(ChatRef, String)> {
        match (&p.to, &p.group) {
            (Some(name), None) => match w.contact_by_name(name)? {
                Some(c) => Ok(Ok((ChatRef::Contact(c.identity), c.name))),
                None => Ok(Err(EngineError::UnknownContact(name.clone()))),
            },
            (None, Some(q)) => match self.find_group(w, q)? {
                Ok(g) => {
                    let name = self
                        .groups
                        .states
                        .get(&g)
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    Ok(Ok((ChatRef::Group(g), name)))
                }
                Err(e) => Ok(Err(e)),
            },
            _ => Ok(Err(EngineError::BadSetting(
                "name a contact or a group (--group), not both".into(),
            ))),
        }
    }

    /// Sends an action (or a reply/forward) to everyone in a chat.
    pub(super) fn send_action(
        &mut self,
        w: &mut WriteTx<'_>,
        chat: ChatRef,
        action: ChatAction,
        stored: Option<(u128, String)>,
        after: &mut Vec<After>,
    ) -> Outcome<()> {
        match chat {
            ChatRef::Contact(conv) => {
                if self.social.blocked.contains(&conv) {
                    return Ok(Err(EngineError::Blocked("this contact".into())));
                }
                let ids = stored.as_ref().map(|(id, _)| vec![*id]).unwrap_or_default();
                self.enqueue(w, &conv, &Body::Chat(action), ids, after)?;
                Ok(Ok(()))
            }
            ChatRef::Group(g) => {
                self.group_publish(w, g, GroupContent::Chat(action), stored, Now::read(), after)
            }
        }
    }

    /// `message.send` (a reply) and `message.forward`: a text with marks.
    pub(super) fn chat_send(
        &mut self,
        w: &mut WriteTx<'_>,
        chat: &ChatParams,
        text: String,
        reply_to: Option<&str>,
        forwarded: bool,
        after: &mut Vec<After>,
    ) -> Outcome<Sent> {
        if let Err(e) = crate::cores::contacts::check_text(&text) {
            return Ok(Err(e));
        }
        let (chat, _) = match self.chat_of(w, chat)? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let reply_to = match reply_to.map(parse_id).transpose() {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(r) = reply_to
            && self.locate_in(w, &chat, r)?.is_none()
        {
            return Ok(Err(EngineError::UnknownMessage(MessageId(r).to_string())));
        }
        let id = self.ids.next_id();
        let now = now_ms();
        let action = ChatAction::Message {
            id: id.0,
            sent_at_ms: now,
            text: text.clone(),
            reply_to,
            forwarded,
        };
        if let ChatRef::Contact(conv) = chat {
            let (msg, _) = crate::cores::contacts::outgoing_text(id.0, text.clone(), now);
            w.append_message(&conv, &msg)?;
        }
        // A group reply that names members goes as a mention frame (it carries the answered
        // message too), so the named get it flagged as with a plain `send --group`.
        let mentions = match chat {
            ChatRef::Group(g) if !forwarded => self.mentions_in(w, &g, &text)?,
            _ => Vec::new(),
        };
        let published = match chat {
            ChatRef::Group(g) if !mentions.is_empty() => {
                let content = GroupContent::Mentions {
                    id: id.0,
                    sent_at_ms: now,
                    text: text.clone(),
                    reply_to,
                    mentions,
                };
                self.group_publish(w, g, content, Some((id.0, text)), Now::read(), after)?
            }
            _ => self.send_action(w, chat, action, Some((id.0, text)), after)?,
        };
        if let Err(e) = published {
            return Ok(Err(e));
        }
        self.chat_stored(w, chat, id.0, now, Some((reply_to, forwarded)))?;
        Ok(Ok(Sent { id: id.to_string() }))
    }

    /// `message.forward`.
    pub(super) fn chat_forward(
        &mut self,
        w: &mut WriteTx<'_>,
        id: &str,
        to: &ChatParams,
        after: &mut Vec<After>,
    ) -> Outcome<Sent> {
        let id = match parse_id(id) {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        };
        let Some(l) = self.locate(w, id)? else {
            return Ok(Err(EngineError::UnknownMessage(MessageId(id).to_string())));
        };
        let meta = w.message_meta(&l.chat, id)?.unwrap_or_default();
        if meta.deleted || meta.expired || meta.hidden || l.text.is_empty() {
            return Ok(Err(refused("that message is gone")));
        }
        self.chat_send(w, to, l.text, None, true, after)
    }

    /// `message.react`, `message.edit`, `message.delete` (for everyone): the user's own
    /// action, checked by the core, applied here and sent to the chat.
    pub(super) fn chat_act(
        &mut self,
        w: &mut WriteTx<'_>,
        id: &str,
        make: impl FnOnce(u128, u64) -> ChatAction,
        after: &mut Vec<After>,
    ) -> Outcome<ActionResult> {
        let id = match parse_id(id) {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        };
        let Some(l) = self.locate(w, id)? else {
            return Ok(Err(EngineError::UnknownMessage(MessageId(id).to_string())));
        };
        let now = now_ms();
        let action = make(id, now);
        if let Err(e) = action.check() {
            return Ok(Err(EngineError::BadSetting(e.to_string())));
        }
        let name = match &action {
            ChatAction::React { .. } => "react",
            ChatAction::Edit { .. } => {
                if let Err(e) = rules::may_edit(&l.target(), &self.me, now) {
                    return Ok(Err(refused(e)));
                }
                "edit"
            }
            ChatAction::Delete { .. } => {
                if let Err(e) = rules::may_delete(&l.target(), &self.me, now) {
                    return Ok(Err(refused(e)));
                }
                "delete"
            }
            _ => return Ok(Err(refused("not a message action"))),
        };
        let mut meta = w.message_meta(&l.chat, id)?.unwrap_or_default();
        let applied = rules::apply(&mut meta, Some(&l.target()), self.me, &action);
        let changed = match applied {
            Applied::Refused(e) => return Ok(Err(refused(e))),
            Applied::Unchanged | Applied::Held => false,
            Applied::Done { text } => {
                if let Some(t) = text {
                    self.set_text(w, &l, &t)?;
                }
                w.put_message_meta(&l.chat, id, &meta)?;
                true
            }
        };
        if changed && let Err(e) = self.send_action(w, l.chat, action, None, after)? {
            return Ok(Err(e));
        }
        Ok(Ok(ActionResult {
            id: MessageId(id).to_string(),
            action: name.into(),
            changed,
        }))
    }

    /// `message.delete` without `everyone`, and `message.mark`: this user's own marks.
    pub(super) fn chat_mark(
        &mut self,
        w: &mut WriteTx<'_>,
        id: &str,
        mark: &str,
        on: bool,
    ) -> Outcome<ActionResult> {
        let id = match parse_id(id) {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        };
        let Some(l) = self.locate(w, id)? else {
            return Ok(Err(EngineError::UnknownMessage(MessageId(id).to_string())));
        };
        let mut meta = w.message_meta(&l.chat, id)?.unwrap_or_default();
        let before = meta.clone();
        match mark {
            "star" => meta.starred = on,
            "pin" => meta.pinned = on,
            "delete_for_me" => {
                meta.hidden = true;
                self.set_text(w, &l, "")?;
            }
            other => {
                return Ok(Err(EngineError::BadSetting(format!(
                    "{other:?}: mark must be star or pin"
                ))));
            }
        }
        let changed = meta != before;
        if changed {
            w.put_message_meta(&l.chat, id, &meta)?;
        }
        Ok(Ok(ActionResult {
            id: MessageId(id).to_string(),
            action: mark.into(),
            changed,
        }))
    }

    /// `chat.set`.
    pub(super) fn chat_set(
        &mut self,
        w: &mut WriteTx<'_>,
        p: &crate::command::ChatSetParams,
        after: &mut Vec<After>,
    ) -> Outcome<ChatSettingsView> {
        let (chat, name) = match self.chat_of(w, &p.chat)? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let mut s = w.chat_settings(&chat)?;
        if let Some(a) = p.archived {
            s.archived = a;
        }
        if let Some(m) = p.muted {
            s.muted = m;
        }
        if let Some(d) = &p.disappear {
            let secs = match rules::parse_disappear(d) {
                Ok(x) => x,
                Err(e) => return Ok(Err(EngineError::BadSetting(e))),
            };
            let now = now_ms().max(s.disappear_set_ms);
            rules::set_disappear(&mut s, secs, now);
            let action = ChatAction::Disappear { secs, at_ms: now };
            if let Err(e) = self.send_action(w, chat, action, None, after)? {
                return Ok(Err(e));
            }
        }
        w.put_chat_settings(&chat, &s)?;
        Ok(Ok(settings_view(name, &s)))
    }

    /// A message was stored in a chat (sent or received): its marks, the actions held for
    /// it, and its expiry.
    pub(super) fn chat_stored(
        &mut self,
        w: &mut WriteTx<'_>,
        chat: ChatRef,
        id: u128,
        now_ms: u64,
        marks: Option<(Option<u128>, bool)>,
    ) -> Result<(), Fatal> {
        let located = self.locate_in(w, &chat, id)?;
        if let Some(l) = &located {
            let text = l.text.clone();
            self.index_put(l, &text);
        }
        let settings = w.chat_settings(&chat)?;
        let held = w.message_meta(&chat, id)?;
        if marks.is_none() && held.is_none() && settings.disappear_secs == 0 {
            return Ok(());
        }
        let mut meta = held.unwrap_or_default();
        if let Some((reply_to, forwarded)) = marks {
            meta.reply_to = reply_to;
            meta.forwarded = forwarded;
        }
        if !meta.early.is_empty()
            && let Some(l) = &located
            && let Some(text) = rules::arrived(&mut meta, &l.target())
        {
            self.set_text(w, l, &text)?;
        }
        meta.expires_at_ms = rules::expires_at(&settings, now_ms);
        w.put_message_meta(&chat, id, &meta)?;
        Ok(())
    }

    /// A message action from a contact, in the conversation with them.
    pub(super) fn on_contact_chat(
        &mut self,
        w: &mut WriteTx<'_>,
        conv: IdentityKey,
        name: &str,
        action: ChatAction,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        if let ChatAction::Message {
            id,
            sent_at_ms,
            text,
            reply_to,
            forwarded,
        } = action
        {
            let msg = StoredMessage {
                id,
                outgoing: false,
                text: text.clone(),
                sent_at_ms,
                stored_at_ms: now_ms(),
                status: Status::Delivered,
            };
            if w.append_message(&conv, &msg)?.is_some() {
                let marks = Some((reply_to, forwarded));
                self.chat_stored(w, ChatRef::Contact(conv), id, msg.stored_at_ms, marks)?;
                after.push(After::Event(Event::Message {
                    contact: name.to_owned(),
                    id: MessageId(id).to_string(),
                    text,
                    sent_at: sent_at_ms,
                }));
            }
            return Ok(());
        }
        if matches!(
            action,
            ChatAction::Story { .. }
                | ChatAction::StoryViewed { .. }
                | ChatAction::StoryDelete { .. }
        ) {
            return self.on_story(w, conv, name, action, after);
        }
        self.on_chat_action(w, ChatRef::Contact(conv), conv, action, after)
    }

    /// A reaction, edit, delete or timer from `actor` in `chat`: judged by the core.
    pub(super) fn on_chat_action(
        &mut self,
        w: &mut WriteTx<'_>,
        chat: ChatRef,
        actor: IdentityKey,
        action: ChatAction,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let chat_name = match chat {
            ChatRef::Contact(c) => w.contact(&c)?.map(|c| c.name).unwrap_or_default(),
            ChatRef::Group(g) => self
                .groups
                .states
                .get(&g)
                .map(|s| s.name.clone())
                .unwrap_or_default(),
        };
        let from = self.member_name(w, &actor)?;
        let event = |id: String, change: &str| {
            After::Event(Event::MessageChanged {
                chat: chat_name.clone(),
                from: from.clone(),
                id,
                change: change.into(),
            })
        };
        let (target, change) = match &action {
            ChatAction::Disappear { secs, at_ms } => {
                let mut s = w.chat_settings(&chat)?;
                if rules::set_disappear(&mut s, *secs, *at_ms) {
                    w.put_chat_settings(&chat, &s)?;
                    after.push(event(String::new(), "disappear"));
                }
                return Ok(());
            }
            ChatAction::React { target, .. } => (*target, "react"),
            ChatAction::Edit { target, .. } => (*target, "edit"),
            ChatAction::Delete { target, .. } => (*target, "delete"),
            _ => return Ok(()),
        };
        let located = self.locate_in(w, &chat, target)?;
        let held = w.message_meta(&chat, target)?;
        if located.is_none()
            && held.as_ref().is_none_or(|m| m.early.is_empty())
            && w.early_count(&chat, rules::MAX_EARLY_PER_CHAT)? >= rules::MAX_EARLY_PER_CHAT
        {
            tracing::debug!("too many actions held for messages not here; dropped one");
            return Ok(());
        }
        let mut meta = held.unwrap_or_default();
        let target_view = located.as_ref().map(Located::target);
        match rules::apply(&mut meta, target_view.as_ref(), actor, &action) {
            Applied::Refused(why) => {
                tracing::debug!(why, "a message action was refused");
            }
            Applied::Unchanged => {}
            Applied::Held => w.put_message_meta(&chat, target, &meta)?,
            Applied::Done { text } => {
                if let (Some(t), Some(l)) = (text, &located) {
                    self.set_text(w, l, &t)?;
                }
                w.put_message_meta(&chat, target, &meta)?;
                after.push(event(MessageId(target).to_string(), change));
            }
        }
        Ok(())
    }

    /// Blanks the messages whose time ran out; returns how many.
    pub(super) fn expire_messages(
        &mut self,
        w: &mut WriteTx<'_>,
        now: u64,
    ) -> Result<usize, Fatal> {
        let due = w.expired_messages(now, EXPIRE_BATCH)?;
        for (_, chat, id) in &due {
            let mut meta = w.message_meta(chat, *id)?.unwrap_or_default();
            meta.expired = true;
            meta.reactions.clear();
            meta.early.clear();
            if let Some(l) = self.locate_in(w, chat, *id)? {
                self.set_text(w, &l, "")?;
            }
            w.put_message_meta(chat, *id, &meta)?;
        }
        Ok(due.len())
    }
}

/// A chat's settings as shown.
pub(super) fn settings_view(chat: String, s: &ChatSettings) -> ChatSettingsView {
    ChatSettingsView {
        chat,
        archived: s.archived,
        muted: s.muted,
        disappear: rules::timer_name(s.disappear_secs),
    }
}

/// What a message's meta shows: `None` when the message should not be shown at all
/// (deleted for me, disappeared). `name` names a person; `quote` finds an answered
/// message's text.
pub(super) fn extras_of(
    meta: Option<MessageMeta>,
    name: impl Fn(&IdentityKey) -> String,
    quote: impl Fn(u128) -> Option<String>,
) -> Option<MessageExtras> {
    let Some(m) = meta else {
        return Some(MessageExtras::default());
    };
    if m.hidden || m.expired {
        return None;
    }
    let q = m.reply_to.and_then(&quote).map(|t| {
        let mut s: String = t.chars().take(QUOTE_CHARS).collect();
        if t.chars().count() > QUOTE_CHARS {
            s.push('…');
        }
        s
    });
    Some(MessageExtras {
        reply_to: m.reply_to.map(|r| MessageId(r).to_string()),
        quote: q,
        forwarded: m.forwarded,
        edited: m.edited_at_ms != 0,
        deleted: m.deleted,
        starred: m.starred,
        pinned: m.pinned,
        reactions: m
            .reactions
            .iter()
            .map(|(who, e)| (name(who), e.clone()))
            .collect(),
        expires_at: (m.expires_at_ms != 0).then_some(m.expires_at_ms),
    })
}

impl Engine {
    /// Every second: messages whose disappearing time ran out lose their text.
    pub(super) fn chat_tick(&mut self) {
        if self.st.last_expiry.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.st.last_expiry = Instant::now();
        let now = now_ms();
        let st = &mut self.st;
        let res = self.store.write_as::<_, Fatal>(|w| {
            st.expire_messages(w, now)?;
            st.expire_stories(w, now)?;
            st.mark_index(w)
        });
        if let Err(e) = &res {
            tracing::warn!(error = %e, "cannot expire messages");
        }
        self.st.flush_index(res.is_ok());
    }
}
