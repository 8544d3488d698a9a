//! Group messages on the wire: the frame a member publishes on the group's gossipsub topic
//! (and hands to members who missed it), and the plaintext inside its Megolm ciphertext.
//!
//! A frame's header (`sender`, `session`, `seq`, `lamport`) is readable by anyone who sees
//! the frame, so members can notice gaps and ask for what they miss before they can decrypt
//! anything. The same `seq` and `lamport` are repeated inside the ciphertext (with the group
//! id), and a frame whose header disagrees with its plaintext is refused: nobody on the path
//! can renumber or move a frame.

use kith_types::{CurveKey, GroupId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, DecodeError, EncodeError};
use crate::limits::{MAX_CIPHERTEXT, MAX_TEXT};

pub use crate::limits::{MAX_SYNC_BYTES, MAX_SYNC_FRAMES, MAX_SYNC_MARKS};

/// Frame format version.
pub const FRAME_VERSION: u8 = 1;
/// Largest encoded frame (what gossipsub carries at most, too).
pub const MAX_GROUP_FRAME: usize = MAX_CIPHERTEXT + 512;
/// Longest Megolm session id (base64 of a 32-byte key is 43 characters).
pub const MAX_SESSION_ID: usize = 64;

/// The gossipsub topic of a group: a hash of its id, so the topic name reveals neither the
/// id (which keys the members' sync requests) nor anything about the group.
pub fn group_topic(group: &GroupId) -> String {
    let mut h = Sha256::new();
    h.update(b"kith-group-topic-v1");
    h.update(group);
    let d = h.finalize();
    format!("kith/g/{}", hex::encode(&d[..16]))
}

/// Whether `topic` has the form of a group topic ([`group_topic`]): `kith/g/` and 32
/// lowercase hex digits. (Whose group it is cannot be told from the topic.)
pub fn is_group_topic(topic: &str) -> bool {
    topic.len() == 7 + 32
        && topic.starts_with("kith/g/")
        && topic
            .bytes()
            .skip(7)
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// One group message as it travels.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFrame {
    /// [`FRAME_VERSION`].
    pub version: u8,
    /// The sending device's Curve25519 key.
    pub sender: CurveKey,
    /// The sender's Megolm session id.
    pub session: String,
    /// The sender device's sequence number in this group (1, 2, 3, ... across sessions).
    pub seq: u64,
    /// A Lamport clock: one more than the largest the sender had seen in the group. Members
    /// show messages ordered by it (then sender, then seq), the same order for everyone.
    pub lamport: u64,
    /// The Megolm message (signed by the session's key).
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for GroupFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupFrame")
            .field("seq", &self.seq)
            .field("lamport", &self.lamport)
            .field("len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl GroupFrame {
    /// Encodes the frame.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode(self)
    }

    /// Decodes a frame and checks its limits.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let f: GroupFrame = codec::decode(bytes, MAX_GROUP_FRAME)?;
        f.check()?;
        Ok(f)
    }

    /// Checks the limits of a frame decoded as part of something else.
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.version != FRAME_VERSION {
            return Err(DecodeError::UnsupportedVersion(self.version));
        }
        if self.session.is_empty()
            || self.session.len() > MAX_SESSION_ID
            || !self
                .session
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b))
        {
            return Err(DecodeError::Invalid("session id"));
        }
        if self.seq == 0 || self.lamport == 0 {
            return Err(DecodeError::Invalid("sequence numbers start at 1"));
        }
        if self.ciphertext.is_empty() || self.ciphertext.len() > MAX_CIPHERTEXT {
            return Err(DecodeError::Invalid("ciphertext length"));
        }
        Ok(())
    }
}

/// What a group message says.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum GroupContent {
    /// A text message.
    Text {
        /// Sender-chosen, unique, time-sortable id.
        id: u128,
        /// When the sender wrote it (sender's clock, ms).
        sent_at_ms: u64,
        /// The text.
        text: String,
    },
    /// A file, sealed once for the whole group: members fetch it by its root from the
    /// sender or from members who have it ([`crate::media`]).
    Media {
        /// Sender-chosen, unique, time-sortable id.
        id: u128,
        /// When the sender wrote it (sender's clock, ms).
        sent_at_ms: u64,
        /// How to fetch, check and open the file (boxed: the encoding is the manifest's).
        manifest: Box<crate::media::Manifest>,
        /// The caption (may be empty).
        caption: String,
    },
    /// A message action (reply, reaction, edit, delete, disappearing timer): see
    /// [`crate::chat`].
    Chat(crate::chat::ChatAction),
    /// A text that names members (`@name`): the sender resolved the names to member
    /// identities when it sent it (at most [`MAX_MENTIONS`]); a member finding itself among
    /// them keeps the message flagged.
    Mentions {
        /// Sender-chosen, unique, time-sortable id.
        id: u128,
        /// When the sender wrote it (sender's clock, ms).
        sent_at_ms: u64,
        /// The text.
        text: String,
        /// The message it answers (shown quoted).
        reply_to: Option<u128>,
        /// The members named.
        mentions: Vec<kith_types::IdentityKey>,
    },
}

/// Most members one group message names.
pub const MAX_MENTIONS: usize = 32;

impl std::fmt::Debug for GroupContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupContent::Text { id, .. } => write!(f, "Text {{ id: {id:x}, .. }}"),
            GroupContent::Media { id, manifest, .. } => {
                write!(f, "Media {{ id: {id:x}, {manifest:?}, .. }}")
            }
            GroupContent::Chat(a) => write!(f, "Chat({a:?})"),
            GroupContent::Mentions { id, mentions, .. } => {
                write!(
                    f,
                    "Mentions {{ id: {id:x}, named: {}, .. }}",
                    mentions.len()
                )
            }
        }
    }
}

/// The plaintext inside a frame's ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPlain {
    /// The group (a frame cannot be moved to another group).
    pub group: GroupId,
    /// Must equal the frame's `seq`.
    pub seq: u64,
    /// Must equal the frame's `lamport`.
    pub lamport: u64,
    /// The message.
    pub content: GroupContent,
}

impl GroupPlain {
    /// Encodes the plaintext.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode(self)
    }

    /// Decodes a decrypted plaintext and checks it against the frame it came in.
    pub fn decode(bytes: &[u8], group: &GroupId, frame: &GroupFrame) -> Result<Self, DecodeError> {
        let p: GroupPlain = codec::decode(bytes, MAX_CIPHERTEXT)?;
        if &p.group != group || p.seq != frame.seq || p.lamport != frame.lamport {
            return Err(DecodeError::Invalid(
                "frame header does not match its content",
            ));
        }
        match &p.content {
            GroupContent::Text { text, .. } if text.len() > MAX_TEXT => {
                Err(DecodeError::Invalid("text too long"))
            }
            GroupContent::Media {
                manifest, caption, ..
            } => {
                if caption.len() > MAX_TEXT {
                    return Err(DecodeError::Invalid("caption too long"));
                }
                manifest.check()?;
                Ok(p)
            }
            GroupContent::Chat(a) => a.check().map(|()| p),
            GroupContent::Mentions { text, mentions, .. } => {
                if text.len() > MAX_TEXT {
                    return Err(DecodeError::Invalid("text too long"));
                }
                if mentions.len() > MAX_MENTIONS {
                    return Err(DecodeError::Invalid("too many mentions"));
                }
                Ok(p)
            }
            _ => Ok(p),
        }
    }
}

/// How far a member has every frame of one sender device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderMark {
    /// The sender device's Curve25519 key.
    pub sender: CurveKey,
    /// Every frame up to and including this seq is held.
    pub seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame() -> GroupFrame {
        GroupFrame {
            version: 1,
            sender: CurveKey([3; 32]),
            session: "abcDEF012+/".into(),
            seq: 4,
            lamport: 9,
            ciphertext: vec![1; 100],
        }
    }

    #[test]
    fn round_trip_and_limits() {
        let f = frame();
        assert_eq!(GroupFrame::decode(&f.encode().unwrap()).unwrap(), f);
        for bad in [
            GroupFrame {
                version: 2,
                ..frame()
            },
            GroupFrame { seq: 0, ..frame() },
            GroupFrame {
                session: "".into(),
                ..frame()
            },
            GroupFrame {
                session: "a b".into(),
                ..frame()
            },
            GroupFrame {
                ciphertext: vec![],
                ..frame()
            },
        ] {
            assert!(GroupFrame::decode(&bad.encode().unwrap()).is_err());
        }
        assert!(!format!("{f:?}").contains("abcDEF"));
    }

    #[test]
    fn plaintext_must_match_the_header() {
        let f = frame();
        let p = GroupPlain {
            group: GroupId([7; 16]),
            seq: 4,
            lamport: 9,
            content: GroupContent::Text {
                id: 1,
                sent_at_ms: 2,
                text: "hi there".into(),
            },
        };
        let b = p.encode().unwrap();
        assert_eq!(GroupPlain::decode(&b, &GroupId([7; 16]), &f).unwrap(), p);
        assert!(GroupPlain::decode(&b, &GroupId([8; 16]), &f).is_err());
        assert!(
            GroupPlain::decode(&b, &GroupId([7; 16]), &GroupFrame { seq: 5, ..frame() }).is_err()
        );
        assert!(!format!("{p:?}").contains("hi there"));
    }

    #[test]
    fn mentions_are_bounded_and_kept_out_of_debug() {
        let f = frame();
        let plain = |n: usize| GroupPlain {
            group: GroupId([7; 16]),
            seq: 4,
            lamport: 9,
            content: GroupContent::Mentions {
                id: 1,
                sent_at_ms: 2,
                text: "@Ada secret".into(),
                reply_to: None,
                mentions: vec![kith_types::IdentityKey([1; 32]); n],
            },
        };
        let ok = plain(MAX_MENTIONS);
        let b = ok.encode().unwrap();
        assert_eq!(GroupPlain::decode(&b, &GroupId([7; 16]), &f).unwrap(), ok);
        let b = plain(MAX_MENTIONS + 1).encode().unwrap();
        assert!(GroupPlain::decode(&b, &GroupId([7; 16]), &f).is_err());
        assert!(!format!("{ok:?}").contains("secret"));
    }

    #[test]
    fn topics_hide_the_id() {
        let t = group_topic(&GroupId([1; 16]));
        assert!(t.starts_with("kith/g/"));
        assert_eq!(t.len(), 7 + 32);
        assert_ne!(t, group_topic(&GroupId([2; 16])));
        assert!(!t.contains("0101"));
        assert!(is_group_topic(&t));
        for bad in [
            "",
            "kith/g/",
            &t[..t.len() - 1],
            &format!("{t}0"),
            &t.to_uppercase(),
            &t.replace("kith/g/", "kith/x/"),
            "kith/g/0123456789abcdef0123456789abcdeg",
            "kith/g/0123456789abcdef0123456789abcdé",
        ] {
            assert!(!is_group_topic(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = GroupFrame::decode(&bytes);
            let _ = GroupPlain::decode(&bytes, &GroupId::default(), &frame());
        }
    }
}
