//! Message actions: what a person does to messages and chats beyond sending a text, as it
//! travels end-to-end encrypted, inside a one-to-one [`crate::wire::Body::Chat`] or a group
//! [`crate::groupwire::GroupContent::Chat`]. Every action names its target by the sender's
//! message id; who may do what (only the author edits or deletes, within time limits) is the
//! receiver's decision (`kith-engine`'s `cores/chat`), never taken on trust.
//!
//! Variants are only ever appended: the variant index is the wire encoding.

use serde::{Deserialize, Serialize};

use crate::codec::DecodeError;
use crate::limits::MAX_TEXT;
use crate::media::{Manifest, MediaKind};

/// Longest reaction (one emoji, possibly with modifiers and joiners), in bytes of UTF-8.
pub const MAX_REACTION: usize = 32;

/// The disappearing-message timers a chat may have, in seconds (0: off): 5 minutes, 1 hour,
/// 1 day, 7 days, 90 days.
pub const DISAPPEAR_CHOICES: [u32; 6] = [0, 300, 3600, 86_400, 7 * 86_400, 90 * 86_400];

/// How long a story shows: 24 hours.
pub const STORY_TTL_MS: u64 = 24 * 3600 * 1000;

/// Largest photo a story may carry, in bytes (a story's photo downloads by itself on every
/// device of its audience, so it is bounded well below a file's limit).
pub const MAX_STORY_PHOTO: u64 = 32 << 20;

/// One message action.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChatAction {
    /// A text message that replies to another, or was forwarded.
    Message {
        /// Sender-chosen, unique, time-sortable id.
        id: u128,
        /// When the sender wrote it (sender's clock, ms).
        sent_at_ms: u64,
        /// The text.
        text: String,
        /// The message it answers (shown quoted).
        reply_to: Option<u128>,
        /// Forwarded from another chat (shown "forwarded").
        forwarded: bool,
    },
    /// The sender's reaction to a message; an empty string takes it back. One per person:
    /// a new one replaces the old.
    React {
        /// The message.
        target: u128,
        /// The emoji (at most [`MAX_REACTION`] bytes), or empty.
        emoji: String,
    },
    /// The author's new text for one of their messages.
    Edit {
        /// The message.
        target: u128,
        /// The new text.
        text: String,
        /// When it was edited (sender's clock, ms); the latest edit wins.
        at_ms: u64,
    },
    /// The author deletes one of their messages for everyone: a tombstone replaces it.
    Delete {
        /// The message.
        target: u128,
        /// When (sender's clock, ms).
        at_ms: u64,
    },
    /// The sender sets the chat's disappearing-message timer (one of
    /// [`DISAPPEAR_CHOICES`]).
    Disappear {
        /// Seconds after which new messages disappear; 0 turns it off.
        secs: u32,
        /// When (sender's clock, ms); the latest setting wins.
        at_ms: u64,
    },
    /// A status update (a story): shown to the sender's contacts for [`STORY_TTL_MS`].
    Story {
        /// Sender-chosen, unique, time-sortable id.
        id: u128,
        /// When it was posted (sender's clock, ms); the receiver counts the time from
        /// the earlier of this and its own clock.
        posted_at_ms: u64,
        /// The text.
        text: String,
    },
    /// The sender viewed one of the receiver's stories (sent only with read receipts on).
    StoryViewed {
        /// The story.
        id: u128,
    },
    /// The author takes one of their stories back before it expires.
    StoryDelete {
        /// The story.
        id: u128,
    },
    /// A status update with a photo: shown like [`ChatAction::Story`]; the photo is fetched
    /// chunk by chunk like a photo message, and only the story's audience may fetch it.
    PhotoStory {
        /// Sender-chosen, unique, time-sortable id.
        id: u128,
        /// When it was posted (sender's clock, ms), as for [`ChatAction::Story`].
        posted_at_ms: u64,
        /// The caption (may be empty).
        caption: String,
        /// How to fetch, check and open the photo (a [`MediaKind::Photo`] of at most
        /// [`MAX_STORY_PHOTO`] bytes).
        manifest: Box<Manifest>,
    },
}

impl std::fmt::Debug for ChatAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the text or the emoji.
        match self {
            ChatAction::Message { id, reply_to, .. } => write!(
                f,
                "Message {{ id: {id:x}, reply: {}, .. }}",
                reply_to.is_some()
            ),
            ChatAction::React { target, .. } => write!(f, "React {{ target: {target:x}, .. }}"),
            ChatAction::Edit { target, .. } => write!(f, "Edit {{ target: {target:x}, .. }}"),
            ChatAction::Delete { target, .. } => write!(f, "Delete {{ target: {target:x} }}"),
            ChatAction::Disappear { secs, .. } => write!(f, "Disappear {{ secs: {secs} }}"),
            ChatAction::Story { id, .. } => write!(f, "Story {{ id: {id:x}, .. }}"),
            ChatAction::StoryViewed { id } => write!(f, "StoryViewed {{ id: {id:x} }}"),
            ChatAction::StoryDelete { id } => write!(f, "StoryDelete {{ id: {id:x} }}"),
            ChatAction::PhotoStory { id, manifest, .. } => {
                write!(f, "PhotoStory {{ id: {id:x}, {manifest:?}, .. }}")
            }
        }
    }
}

impl ChatAction {
    /// Checks the limits of a decoded action.
    pub fn check(&self) -> Result<(), DecodeError> {
        match self {
            ChatAction::Message { text, .. }
            | ChatAction::Edit { text, .. }
            | ChatAction::Story { text, .. }
                if text.is_empty() || text.len() > MAX_TEXT =>
            {
                Err(DecodeError::Invalid("text length"))
            }
            ChatAction::React { emoji, .. }
                if emoji.len() > MAX_REACTION || emoji.chars().any(char::is_control) =>
            {
                Err(DecodeError::Invalid("reaction"))
            }
            ChatAction::Disappear { secs, .. } if !DISAPPEAR_CHOICES.contains(secs) => {
                Err(DecodeError::Invalid("disappearing timer"))
            }
            ChatAction::PhotoStory {
                caption, manifest, ..
            } => {
                if caption.len() > MAX_TEXT {
                    return Err(DecodeError::Invalid("text length"));
                }
                manifest.check()?;
                if manifest.kind != MediaKind::Photo || manifest.size > MAX_STORY_PHOTO {
                    return Err(DecodeError::Invalid("story photo"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn limits_are_checked() {
        let ok = ChatAction::React {
            target: 1,
            emoji: "👍".into(),
        };
        assert!(ok.check().is_ok());
        let long = ChatAction::React {
            target: 1,
            emoji: "👍".repeat(9),
        };
        assert!(long.check().is_err());
        let ctl = ChatAction::React {
            target: 1,
            emoji: "\u{1b}[2J".into(),
        };
        assert!(ctl.check().is_err());
        let empty_edit = ChatAction::Edit {
            target: 1,
            text: String::new(),
            at_ms: 0,
        };
        assert!(empty_edit.check().is_err());
        let empty_story = ChatAction::Story {
            id: 1,
            posted_at_ms: 0,
            text: String::new(),
        };
        assert!(empty_story.check().is_err());
        let odd_timer = ChatAction::Disappear { secs: 7, at_ms: 0 };
        assert!(odd_timer.check().is_err());
        for secs in DISAPPEAR_CHOICES {
            assert!(ChatAction::Disappear { secs, at_ms: 0 }.check().is_ok());
        }
    }

    #[test]
    fn debug_shows_no_text() {
        let a = ChatAction::Edit {
            target: 1,
            text: "secret words".into(),
            at_ms: 0,
        };
        assert!(!format!("{a:?}").contains("secret"));
    }

    /// The encoding is a contract: pinned bytes for one action.
    #[test]
    fn encoding_is_pinned() {
        let a = ChatAction::Delete {
            target: 0x0102,
            at_ms: 5,
        };
        let bytes = codec::encode(&a).unwrap();
        let back: ChatAction = codec::decode(&bytes, 1024).unwrap();
        assert_eq!(back, a);
        assert_eq!(bytes[0], 3, "Delete is variant 3");
        let story = codec::encode(&ChatAction::StoryViewed { id: 1 }).unwrap();
        assert_eq!(story[0], 6, "StoryViewed is variant 6");
        let photo = codec::encode(&photo_story(10, MediaKind::Photo)).unwrap();
        assert_eq!(photo[0], 8, "PhotoStory is variant 8");
    }

    fn photo_story(size: u64, kind: MediaKind) -> ChatAction {
        ChatAction::PhotoStory {
            id: 1,
            posted_at_ms: 0,
            caption: String::new(),
            manifest: Box::new(Manifest {
                root: [1; 32],
                size,
                chunk_size: crate::media::CHUNK as u32,
                key: [2; 32],
                kind,
                mime: "image/png".into(),
                name: "p.png".into(),
                dimensions: None,
                duration_ms: None,
                thumbnail: None,
            }),
        }
    }

    #[test]
    fn a_photo_story_is_bounded() {
        assert!(photo_story(10, MediaKind::Photo).check().is_ok());
        assert!(photo_story(10, MediaKind::Document).check().is_err());
        assert!(
            photo_story(MAX_STORY_PHOTO + 1, MediaKind::Photo)
                .check()
                .is_err()
        );
        assert!(photo_story(u64::MAX, MediaKind::Photo).check().is_err());
        let s = photo_story(10, MediaKind::Photo);
        let bytes = codec::encode(&s).unwrap();
        let back: ChatAction = codec::decode(&bytes, 64 * 1024).unwrap();
        assert_eq!(back, s);
        assert!(!format!("{s:?}").contains("p.png"));
    }
}
