//! What message actions leave behind: per message (reply, forward, edit, tombstone, star,
//! pin, reactions, expiry, actions that came before their message), per chat (archived,
//! muted, disappearing timer), and the expiry queue. Which action is allowed is the engine's
//! decision (`cores/chat`); this module only keeps what it decided.
//!
//! A chat is named by its key bytes ([`ChatRef::key`]): a contact's 32-byte identity key or a
//! group's 16-byte id, so the two never collide.

use kith_proto::chat::ChatAction;
use kith_types::{GroupId, IdentityKey};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::tx::{dec, enc};
use crate::*;

/// (chat key, message id) → [`MessageMeta`].
pub(crate) const CHAT_META: SealedDef<(&[u8], u128)> = SealedDef::new("chat_meta");
/// Chat key → [`ChatSettings`].
pub(crate) const CHAT_SETTINGS: SealedDef<&[u8]> = SealedDef::new("chat_settings");
/// (chat key, message id) of messages that are not here but have actions held for them
/// (so counting them per chat reads only those).
pub(crate) const CHAT_EARLY: TableDefinition<(&[u8], u128), ()> =
    TableDefinition::new("chat_early");
/// (expires at ms, chat key, message id): messages that disappear, soonest first.
pub(crate) const CHAT_EXPIRY: TableDefinition<(u64, &[u8], u128), ()> =
    TableDefinition::new("chat_expiry");

/// A one-to-one chat or a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChatRef {
    /// With a contact.
    Contact(IdentityKey),
    /// A group.
    Group(GroupId),
}

impl ChatRef {
    /// The key bytes the chat tables use.
    pub fn key(&self) -> Vec<u8> {
        match self {
            ChatRef::Contact(i) => i.0.to_vec(),
            ChatRef::Group(g) => g.0.to_vec(),
        }
    }

    /// The chat named by key bytes.
    pub fn from_key(k: &[u8]) -> Option<Self> {
        if let Ok(a) = <[u8; 32]>::try_from(k) {
            return Some(ChatRef::Contact(IdentityKey(a)));
        }
        <[u8; 16]>::try_from(k)
            .ok()
            .map(|a| ChatRef::Group(GroupId(a)))
    }
}

/// What actions left on one message. The default is a message nobody acted on.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// The message it answers.
    pub reply_to: Option<u128>,
    /// Forwarded from another chat.
    pub forwarded: bool,
    /// When the author last edited it (their clock, ms); 0: never.
    pub edited_at_ms: u64,
    /// Deleted for everyone by its author: the text is gone, a tombstone shows.
    pub deleted: bool,
    /// Deleted for me: not shown, text gone.
    pub hidden: bool,
    /// Starred by this user.
    pub starred: bool,
    /// Pinned in its chat by this user.
    pub pinned: bool,
    /// One reaction per person.
    pub reactions: Vec<(IdentityKey, String)>,
    /// When it disappears (this node's clock, ms); 0: never. Once past, the text is gone.
    pub expires_at_ms: u64,
    /// Disappeared: the text is gone.
    pub expired: bool,
    /// Actions that came before their message (the sender and the action), applied when
    /// it arrives if the rules allow them then.
    pub early: Vec<(IdentityKey, ChatAction)>,
}

impl std::fmt::Debug for MessageMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageMeta")
            .field("deleted", &self.deleted)
            .field("edited_at_ms", &self.edited_at_ms)
            .field("reactions", &self.reactions.len())
            .finish_non_exhaustive()
    }
}

/// A chat's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSettings {
    /// Archived (hidden from the main list until a new message).
    pub archived: bool,
    /// Muted (no notifications).
    pub muted: bool,
    /// New messages disappear after this many seconds; 0: off.
    pub disappear_secs: u32,
    /// When the timer was last set (setter's clock, ms): the latest wins.
    pub disappear_set_ms: u64,
}

macro_rules! chat_reads {
    ($t:ty) => {
        impl $t {
            /// What actions left on a message (the default when none).
            pub fn message_meta(
                &self,
                chat: &ChatRef,
                id: u128,
            ) -> Result<Option<MessageMeta>, StoreError> {
                let k = chat.key();
                self.table(CHAT_META)?
                    .get((k.as_slice(), id))?
                    .map(|v| dec(v.value()))
                    .transpose()
            }

            /// How many messages of a chat hold actions that came before them (counted up
            /// to `cap`).
            pub fn early_count(&self, chat: &ChatRef, cap: usize) -> Result<usize, StoreError> {
                let k = chat.key();
                let t = self.table(CHAT_EARLY)?;
                let mut n = 0;
                for row in t.range((k.as_slice(), 0u128)..=(k.as_slice(), u128::MAX))? {
                    row?;
                    n += 1;
                    if n >= cap {
                        break;
                    }
                }
                Ok(n)
            }

            /// A chat's settings (the default when none).
            pub fn chat_settings(&self, chat: &ChatRef) -> Result<ChatSettings, StoreError> {
                let k = chat.key();
                Ok(self
                    .table(CHAT_SETTINGS)?
                    .get(k.as_slice())?
                    .map(|v| dec(v.value()))
                    .transpose()?
                    .unwrap_or_default())
            }

            /// Every chat with settings.
            pub fn all_chat_settings(&self) -> Result<Vec<(ChatRef, ChatSettings)>, StoreError> {
                let mut out = Vec::new();
                for row in self.table(CHAT_SETTINGS)?.iter()? {
                    let (k, v) = row?;
                    if let Some(c) = ChatRef::from_key(k.value()) {
                        out.push((c, dec(v.value())?));
                    }
                }
                Ok(out)
            }

            /// Messages whose time ran out by `now_ms`, soonest first (at most `limit`).
            pub fn expired_messages(
                &self,
                now_ms: u64,
                limit: usize,
            ) -> Result<Vec<(u64, ChatRef, u128)>, StoreError> {
                let mut out = Vec::new();
                let t = self.table(CHAT_EXPIRY)?;
                let lo: (u64, &[u8], u128) = (0, &[], 0);
                for row in t.range(lo..)? {
                    let (k, _) = row?;
                    let (at, chat, id) = k.value();
                    if at > now_ms || out.len() >= limit {
                        break;
                    }
                    if let Some(c) = ChatRef::from_key(chat) {
                        out.push((at, c, id));
                    }
                }
                Ok(out)
            }

            /// A one-to-one message by conversation and id.
            pub fn message(
                &self,
                conv: &IdentityKey,
                id: u128,
            ) -> Result<Option<StoredMessage>, StoreError> {
                let Some(seq) = self.message_seq(conv, id)? else {
                    return Ok(None);
                };
                self.table(MESSAGES)?
                    .get((*conv, seq))?
                    .map(|v| dec(v.value()))
                    .transpose()
            }
        }
    };
}

chat_reads!(ReadTx);
chat_reads!(WriteTx<'_>);

impl WriteTx<'_> {
    pub(crate) fn create_chat_tables(&mut self) -> Result<(), StoreError> {
        self.table_mut(CHAT_META)?;
        self.table_mut(CHAT_SETTINGS)?;
        self.table_mut(CHAT_EXPIRY)?;
        self.table_mut(CHAT_EARLY)?;
        Ok(())
    }

    /// Saves what actions left on a message (and its place in the expiry queue).
    pub fn put_message_meta(
        &mut self,
        chat: &ChatRef,
        id: u128,
        meta: &MessageMeta,
    ) -> Result<(), StoreError> {
        let k = chat.key();
        if let Some(old) = self.message_meta(chat, id)?
            && old.expires_at_ms != 0
            && old.expires_at_ms != meta.expires_at_ms
        {
            self.table_mut(CHAT_EXPIRY)?
                .remove((old.expires_at_ms, k.as_slice(), id))?;
        }
        if meta.expires_at_ms != 0 && !meta.expired {
            self.table_mut(CHAT_EXPIRY)?
                .insert((meta.expires_at_ms, k.as_slice(), id), ())?;
        } else if meta.expires_at_ms != 0 {
            self.table_mut(CHAT_EXPIRY)?
                .remove((meta.expires_at_ms, k.as_slice(), id))?;
        }
        if meta.early.is_empty() {
            self.table_mut(CHAT_EARLY)?.remove((k.as_slice(), id))?;
        } else {
            self.table_mut(CHAT_EARLY)?.insert((k.as_slice(), id), ())?;
        }
        self.table_mut(CHAT_META)?
            .insert((k.as_slice(), id), enc(meta)?.as_slice())?;
        Ok(())
    }

    /// Saves a chat's settings.
    pub fn put_chat_settings(
        &mut self,
        chat: &ChatRef,
        s: &ChatSettings,
    ) -> Result<(), StoreError> {
        let k = chat.key();
        self.table_mut(CHAT_SETTINGS)?
            .insert(k.as_slice(), enc(s)?.as_slice())?;
        Ok(())
    }

    /// Replaces the stored text of a one-to-one message; returns whether it was there.
    pub fn set_message_text(
        &mut self,
        conv: &IdentityKey,
        id: u128,
        text: &str,
    ) -> Result<bool, StoreError> {
        let Some(seq) = self.message_seq(conv, id)? else {
            return Ok(false);
        };
        let mut t = self.table_mut(MESSAGES)?;
        let Some(mut m) = t
            .get((*conv, seq))?
            .map(|v| dec::<StoredMessage>(v.value()))
            .transpose()?
        else {
            return Ok(false);
        };
        m.text = text.to_string();
        t.insert((*conv, seq), enc(&m)?.as_slice())?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_settings_and_expiry_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let chat = ChatRef::Contact(IdentityKey([7; 32]));
        let group = ChatRef::Group(GroupId([7; 16]));
        store
            .write(|w| {
                let meta = MessageMeta {
                    expires_at_ms: 1000,
                    starred: true,
                    ..Default::default()
                };
                w.put_message_meta(&chat, 5, &meta)?;
                w.put_message_meta(&group, 5, &MessageMeta::default())?;
                assert_eq!(w.message_meta(&chat, 5)?, Some(meta.clone()));
                assert_eq!(w.message_meta(&group, 5)?, Some(MessageMeta::default()));
                assert!(w.expired_messages(999, 10)?.is_empty());
                assert_eq!(w.expired_messages(1000, 10)?, vec![(1000, chat, 5)]);
                // Moved in the queue when the time changes; out of it once expired.
                let later = MessageMeta {
                    expires_at_ms: 2000,
                    ..meta
                };
                w.put_message_meta(&chat, 5, &later)?;
                assert!(w.expired_messages(1500, 10)?.is_empty());
                let gone = MessageMeta {
                    expired: true,
                    ..later
                };
                w.put_message_meta(&chat, 5, &gone)?;
                assert!(w.expired_messages(u64::MAX, 10)?.is_empty());
                let s = ChatSettings {
                    muted: true,
                    disappear_secs: 300,
                    ..Default::default()
                };
                w.put_chat_settings(&group, &s)?;
                assert_eq!(w.chat_settings(&group)?, s);
                assert_eq!(w.chat_settings(&chat)?, ChatSettings::default());
                assert_eq!(w.all_chat_settings()?, vec![(group, s)]);
                // Held actions are counted per chat, and no longer once taken.
                let held = MessageMeta {
                    early: vec![(
                        IdentityKey([1; 32]),
                        ChatAction::Delete {
                            target: 9,
                            at_ms: 1,
                        },
                    )],
                    ..Default::default()
                };
                w.put_message_meta(&group, 9, &held)?;
                w.put_message_meta(&group, 10, &held)?;
                assert_eq!(w.early_count(&group, 100)?, 2);
                assert_eq!(w.early_count(&group, 1)?, 1);
                assert_eq!(w.early_count(&chat, 100)?, 0);
                w.put_message_meta(&group, 9, &MessageMeta::default())?;
                assert_eq!(w.early_count(&group, 100)?, 1);
                Ok(())
            })
            .unwrap();
    }
}
