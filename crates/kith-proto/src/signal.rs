//! Frames of `/kith/signal/1`: presence, typing and profiles, between a device and the
//! devices of its contacts.
//!
//! These signals are ephemeral. They travel only on a live connection between two devices
//! (Noise-encrypted end to end, also through a relay), are never queued in an outbox, never
//! given to a mailbox and never written to disk by the sender; a lost one is simply replaced
//! by the next. They go only to devices of contacts, which the receiver checks by the
//! connection's authenticated peer id. Framing is the same as `/kith/msg/1` (a `u32`
//! big-endian length, a version byte, a bincode body) with a smaller limit,
//! [`MAX_SIGNAL_FRAME`].

use serde::{Deserialize, Serialize};

use crate::codec::{DecodeError, EncodeError};

/// The libp2p protocol name.
pub const SIGNAL_PROTOCOL: &str = "/kith/signal/1";
/// The frame version.
pub const SIGNAL_VERSION: u8 = 1;
/// Largest signal frame, length prefix excluded (room for a profile with its photo).
pub const MAX_SIGNAL_FRAME: usize = 320 * 1024;
/// Largest profile photo, in bytes.
pub const MAX_AVATAR: usize = 256 * 1024;
/// Largest profile photo, in pixels per side.
pub const MAX_AVATAR_SIDE: usize = 4096;
/// Longest profile name, in characters.
pub const MAX_PROFILE_NAME: usize = 64;
/// Longest profile "about" text, in characters.
pub const MAX_ABOUT: usize = 256;

/// A signal sent to a contact's device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Signal {
    /// Where the sender stands; sent on connect, every heartbeat and at a clean stop.
    Presence(Presence),
    /// The sender is typing (or recording, or stopped) in the conversation with the receiver.
    Typing(TypingState),
    /// Asks for the sender's current profile; answered with [`SignalAnswer::Profile`].
    GetProfile,
    /// The sender is typing (or recording, or stopped) in a group both belong to. Sent to
    /// the connected devices of the group's members, who check that the sender is one.
    GroupTyping {
        /// The group.
        group: kith_types::GroupId,
        /// What the sender does.
        state: TypingState,
    },
}

/// The answer to a [`Signal`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SignalAnswer {
    /// Taken.
    Ok,
    /// The profile asked for.
    Profile(Profile),
    /// Not taken (too many signals, or not from a contact); nothing to retry.
    Ignored,
}

/// A presence signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// Shown as online (false when the sender hides it, or is stopping).
    pub online: bool,
    /// The sender's last-seen time (ms), when the sender shares it with the receiver.
    pub last_seen_ms: Option<u64>,
    /// The version of the sender's profile (its update time, ms; 0 for none), so the
    /// receiver asks for it when it has an older one.
    pub profile_version: u64,
}

/// What a typing indicator says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TypingState {
    /// Typing a message.
    Typing,
    /// Recording audio.
    Recording,
    /// Stopped.
    Stopped,
}

/// A person's profile, as shown to contacts.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Update time (ms); higher is newer.
    pub version: u64,
    /// Display name (up to [`MAX_PROFILE_NAME`] characters).
    pub name: String,
    /// About text (up to [`MAX_ABOUT`] characters).
    pub about: String,
    /// The profile photo (PNG, JPEG or WebP, up to [`MAX_AVATAR`] bytes), if shared.
    #[serde(with = "serde_bytes")]
    pub avatar: Option<Vec<u8>>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("version", &self.version)
            .field("avatar_len", &self.avatar.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

/// The kind of a valid profile photo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    Webp,
}

impl ImageKind {
    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }
}

/// Checks a profile photo: size, a PNG, JPEG or WebP header, and sane dimensions.
pub fn check_avatar(bytes: &[u8]) -> Result<ImageKind, DecodeError> {
    if bytes.len() > MAX_AVATAR {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit: MAX_AVATAR,
        });
    }
    let kind = match imagesize::image_type(bytes) {
        Ok(imagesize::ImageType::Png) => ImageKind::Png,
        Ok(imagesize::ImageType::Jpeg) => ImageKind::Jpeg,
        Ok(imagesize::ImageType::Webp) => ImageKind::Webp,
        _ => return Err(DecodeError::Invalid("not a PNG, JPEG or WebP image")),
    };
    let size = imagesize::blob_size(bytes).map_err(|_| DecodeError::Invalid("damaged image"))?;
    if size.width == 0
        || size.height == 0
        || size.width > MAX_AVATAR_SIDE
        || size.height > MAX_AVATAR_SIDE
    {
        return Err(DecodeError::Invalid("image dimensions"));
    }
    Ok(kind)
}

impl Profile {
    /// Checks the limits of a profile (from a peer or from the user).
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.name.chars().count() > MAX_PROFILE_NAME {
            return Err(DecodeError::Invalid("profile name too long"));
        }
        if self.about.chars().count() > MAX_ABOUT {
            return Err(DecodeError::Invalid("profile about too long"));
        }
        if self.name.chars().any(char::is_control)
            || self.about.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(DecodeError::Invalid("control characters in profile"));
        }
        if let Some(a) = &self.avatar {
            check_avatar(a)?;
        }
        Ok(())
    }
}

fn frame<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    crate::wire::framed(SIGNAL_VERSION, value)
}

fn unframe<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    crate::wire::unframed(SIGNAL_VERSION, MAX_SIGNAL_FRAME, bytes)
}

impl Signal {
    /// Encodes the frame body (version byte and value).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        frame(self)
    }

    /// Decodes a frame body.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        unframe(bytes)
    }
}

impl SignalAnswer {
    /// Encodes the frame body (version byte and value).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        frame(self)
    }

    /// Decodes and validates a frame body.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let a: SignalAnswer = unframe(bytes)?;
        if let SignalAnswer::Profile(p) = &a {
            p.validate()?;
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A 1×1 PNG (the signature, an IHDR chunk; enough for the header checks).
    fn tiny_png() -> Vec<u8> {
        let mut v = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
        v.extend_from_slice(&[0, 0, 0, 13]);
        v.extend_from_slice(b"IHDR");
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(&[8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89]);
        v
    }

    #[test]
    fn signals_roundtrip() {
        for s in [
            Signal::Presence(Presence {
                online: true,
                last_seen_ms: Some(5),
                profile_version: 9,
            }),
            Signal::Typing(TypingState::Recording),
            Signal::GetProfile,
            Signal::GroupTyping {
                group: kith_types::GroupId::from([7u8; 16]),
                state: TypingState::Typing,
            },
        ] {
            assert_eq!(Signal::decode(&s.encode().unwrap()).unwrap(), s);
        }
        let p = SignalAnswer::Profile(Profile {
            version: 1,
            name: "Ada".into(),
            about: "hi".into(),
            avatar: Some(tiny_png()),
        });
        assert_eq!(SignalAnswer::decode(&p.encode().unwrap()).unwrap(), p);
    }

    #[test]
    fn photos_are_checked() {
        assert_eq!(check_avatar(&tiny_png()), Ok(ImageKind::Png));
        assert!(check_avatar(b"not an image at all").is_err());
        assert!(check_avatar(&vec![0u8; MAX_AVATAR + 1]).is_err());
        let mut huge = tiny_png();
        huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(check_avatar(&huge).is_err(), "dimensions are limited");
        let bad = SignalAnswer::Profile(Profile {
            version: 1,
            name: "x".repeat(MAX_PROFILE_NAME + 1),
            about: String::new(),
            avatar: None,
        });
        assert!(SignalAnswer::decode(&bad.encode().unwrap()).is_err());
    }

    #[test]
    fn debug_hides_the_profile() {
        let p = Profile {
            version: 1,
            name: "Secret Name".into(),
            about: "secret about".into(),
            avatar: None,
        };
        assert!(!format!("{p:?}").contains("ecret"));
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Signal::decode(&bytes);
            let _ = SignalAnswer::decode(&bytes);
            let _ = check_avatar(&bytes);
        }
    }
}
