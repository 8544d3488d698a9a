//! History at link time: the pages the approving device hands to a newly linked one
//! ([`crate::link::DeviceSync::HistoryPage`]), with their bounds. docs/protocol.md,
//! "History at link time".

use kith_types::IdentityKey;
use serde::{Deserialize, Serialize};

use crate::codec::DecodeError;
use crate::link::MAX_HISTORY_BATCH;

/// Most bytes of one [`HistoryPage`]'s items (texts, manifests, reactions; a first item
/// always goes, whatever its size, within [`MAX_HISTORY_ITEM`]).
pub const HISTORY_PAGE_BYTES: usize = 40 * 1024;
/// Most bytes one [`HistoryItem`] counts for (its text, manifest and reactions): an
/// item over it goes without its manifest, so that every page fits one envelope.
pub const MAX_HISTORY_ITEM: usize = 56 * 1024;
/// Most reactions carried with one message.
pub const MAX_HISTORY_REACTIONS: usize = 64;
/// Longest encoded manifest carried with one message.
pub const MAX_HISTORY_MANIFEST: usize = 24 * 1024;

/// The conversation of a [`HistoryPage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryChat {
    /// With a contact.
    Contact(IdentityKey),
    /// A group.
    Group(kith_types::GroupId),
}

/// One page of one conversation's history, oldest first, with the walk's progress.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The conversation.
    pub chat: HistoryChat,
    /// The messages (at most [`MAX_HISTORY_BATCH`]; none only on the last page).
    pub items: Vec<HistoryItem>,
    /// Conversations walked entirely before this page.
    pub done: u32,
    /// Conversations in the walk.
    pub total: u32,
    /// Messages walked before this page's (those outside the days asked for included).
    pub walked: u64,
    /// Messages in the conversations walked (when the walk began).
    pub messages: u64,
    /// The walk is over: nothing follows.
    pub end: bool,
}

/// A message of a [`HistoryPage`], as the approver holds it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryItem {
    /// The message id (the same on every device; duplicates are dropped by it).
    pub id: u128,
    /// Sent by the person (true) or by someone else.
    pub outgoing: bool,
    /// Its author (in a group; in a 1:1 conversation the contact or the person).
    pub sender: IdentityKey,
    /// When it was written (ms).
    pub sent_at_ms: u64,
    /// 1:1: its ticks (0 pending, 1 sent, 2 delivered, 3 read). Group: 1 when sent (own)
    /// or read (others').
    pub status: u8,
    /// The text (or the caption).
    pub text: String,
    /// In a group: its place (Lamport clock, sending device's Curve25519 key, seq), so
    /// that the order is the same on both devices.
    pub place: Option<(u64, [u8; 32], u64)>,
    /// What actions left on it, if any.
    pub meta: Option<HistoryMeta>,
    /// The attached file's manifest (encoded; at most [`MAX_HISTORY_MANIFEST`] bytes).
    #[serde(with = "serde_bytes")]
    pub manifest: Option<Vec<u8>>,
}

/// What actions left on a message, as handed over with it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryMeta {
    /// The message it answers.
    pub reply_to: Option<u128>,
    /// Forwarded.
    pub forwarded: bool,
    /// When its author last edited it (ms); 0: never.
    pub edited_at_ms: u64,
    /// Deleted for everyone (a tombstone).
    pub deleted: bool,
    /// Starred by the person.
    pub starred: bool,
    /// Pinned by the person.
    pub pinned: bool,
    /// One reaction per person (at most [`MAX_HISTORY_REACTIONS`]).
    pub reactions: Vec<(IdentityKey, String)>,
}

impl std::fmt::Debug for HistoryItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HistoryItem {{ id: {:x}, .. }}", self.id)
    }
}

impl std::fmt::Debug for HistoryMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HistoryMeta {{ reactions: {}, .. }}",
            self.reactions.len()
        )
    }
}

impl HistoryItem {
    /// The bytes it counts for in a page.
    pub fn weight(&self) -> usize {
        self.text.len()
            + self.manifest.as_ref().map_or(0, Vec::len)
            + self
                .meta
                .as_ref()
                .map_or(0, |m| m.reactions.iter().map(|r| 32 + r.1.len()).sum())
    }
}

impl std::fmt::Debug for HistoryPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HistoryPage {{ n: {}, done: {}, total: {}, end: {} }}",
            self.items.len(),
            self.done,
            self.total,
            self.end
        )
    }
}

impl HistoryPage {
    /// Checks counts and sizes.
    pub fn check(&self) -> Result<(), DecodeError> {
        let bad = |why| Err(DecodeError::Invalid(why));
        if self.items.len() > MAX_HISTORY_BATCH || (self.items.is_empty() && !self.end) {
            return bad("history page count");
        }
        if self.done > self.total || self.walked > self.messages {
            return bad("history page progress");
        }
        let mut bytes = 0usize;
        for m in &self.items {
            let reactions_ok = m.meta.as_ref().is_none_or(|x| {
                x.reactions.len() <= MAX_HISTORY_REACTIONS
                    && x.reactions.iter().all(|r| {
                        r.1.len() <= crate::chat::MAX_REACTION && !r.1.chars().any(char::is_control)
                    })
            });
            if m.text.len() > crate::limits::MAX_TEXT
                || m.status > 3
                || m.manifest
                    .as_ref()
                    .is_some_and(|b| b.is_empty() || b.len() > MAX_HISTORY_MANIFEST)
                || !reactions_ok
                || m.weight() > MAX_HISTORY_ITEM
            {
                return bad("history item");
            }
            if matches!(self.chat, HistoryChat::Group(_)) != m.place.is_some() {
                return bad("history item place");
            }
            bytes += m.weight();
        }
        if self.items.len() > 1 && bytes > HISTORY_PAGE_BYTES {
            return bad("history page size");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::link::DeviceSync;

    fn item(id: u128, text: &str, group: bool) -> HistoryItem {
        HistoryItem {
            id,
            outgoing: false,
            sender: IdentityKey([1; 32]),
            sent_at_ms: 1,
            status: 1,
            text: text.into(),
            place: group.then_some((1, [2; 32], id as u64)),
            meta: None,
            manifest: None,
        }
    }

    fn page(items: Vec<HistoryItem>, group: bool) -> HistoryPage {
        HistoryPage {
            chat: if group {
                HistoryChat::Group(kith_types::GroupId([3; 16]))
            } else {
                HistoryChat::Contact(IdentityKey([4; 32]))
            },
            items,
            done: 0,
            total: 1,
            walked: 0,
            messages: 100,
            end: false,
        }
    }

    #[test]
    fn history_pages_are_bounded_and_checked() {
        let ok = page(vec![item(1, "a", true), item(2, "b", true)], true);
        assert!(ok.check().is_ok());
        let bytes = codec::encode(&DeviceSync::HistoryPage(ok.clone())).unwrap();
        let back: DeviceSync = codec::decode(&bytes, 64 * 1024).unwrap();
        assert_eq!(back, DeviceSync::HistoryPage(ok.clone()));
        // Too many items, or too many bytes together.
        let many = page(
            (0..=MAX_HISTORY_BATCH as u128)
                .map(|i| item(i, "x", false))
                .collect(),
            false,
        );
        assert!(many.check().is_err());
        let big = "y".repeat(30 * 1024);
        assert!(
            page(vec![item(1, &big, false), item(2, &big, false)], false)
                .check()
                .is_err()
        );
        // One big item alone goes.
        assert!(page(vec![item(1, &big, false)], false).check().is_ok());
        // Empty only as the last page.
        assert!(page(Vec::new(), false).check().is_err());
        assert!(
            HistoryPage {
                end: true,
                ..page(Vec::new(), false)
            }
            .check()
            .is_ok()
        );
        // A group item needs its place, a 1:1 item has none.
        assert!(page(vec![item(1, "a", false)], true).check().is_err());
        assert!(page(vec![item(1, "a", true)], false).check().is_err());
        // Progress that does not add up, bad ticks, too many or too long reactions, a
        // manifest too large.
        assert!(
            HistoryPage {
                done: 2,
                ..ok.clone()
            }
            .check()
            .is_err()
        );
        assert!(
            HistoryPage {
                walked: 101,
                ..ok.clone()
            }
            .check()
            .is_err()
        );
        let mut bad = item(1, "a", true);
        bad.status = 4;
        assert!(page(vec![bad], true).check().is_err());
        let mut bad = item(1, "a", true);
        bad.meta = Some(HistoryMeta {
            reactions: vec![(IdentityKey([5; 32]), "z".repeat(33))],
            ..HistoryMeta::default()
        });
        assert!(page(vec![bad], true).check().is_err());
        let mut bad = item(1, "a", true);
        bad.meta = Some(HistoryMeta {
            reactions: vec![(IdentityKey([5; 32]), "+".into()); MAX_HISTORY_REACTIONS + 1],
            ..HistoryMeta::default()
        });
        assert!(page(vec![bad], true).check().is_err());
        let mut bad = item(1, "a", true);
        bad.manifest = Some(vec![0; MAX_HISTORY_MANIFEST + 1]);
        assert!(page(vec![bad], true).check().is_err());
    }
}
