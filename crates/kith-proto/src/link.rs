//! Linked devices: the one-time link code, the link handshake's messages, and what one
//! device of a person tells its other devices ([`DeviceSync`], inside [`crate::wire::Body`]).
//!
//! The link protocol (docs/protocol.md, "Linked devices"):
//!
//! 1. The new device N makes a [`LinkCode`]: its peer id, its addresses and a 128-bit random
//!    secret. The code is shown (text and QR) and typed or scanned on the approving device A.
//! 2. A dials N's peer id (libp2p Noise authenticates N's key, so only N answers) and sends
//!    [`LinkMsg::Hello`]: A's certificate sealed with XChaCha20-Poly1305 under
//!    [`link_key`] (SHA-256 of a domain tag and the secret). Only a holder of the code can
//!    make one that opens. N answers [`LinkMsg::Offer`]: its device keys, sealed the same way.
//! 3. Both show [`confirm_words`] of the transcript hash (the secret and both ciphertexts);
//!    the person checks they agree and approves on A.
//! 4. A certifies N's keys with the identity key and sends [`LinkMsg::Finish`]: the
//!    identity secret, N's certificate, A's devices and the contacts, sealed with the
//!    associated data bound to the transcript. N answers [`LinkMsg::Done`].
//!
//! Nothing here is new cryptography: a uniformly random 128-bit secret hashed with a domain
//! tag (a KDF for a secret that is already uniform), an AEAD, and libp2p's Noise channel.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kith_types::IdentityKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, DecodeError, EncodeError};
use crate::record::{DeviceCert, MAX_ADDR, MAX_ADDRS, MAX_PEER_ID};

pub use crate::history::{
    HISTORY_PAGE_BYTES, HistoryChat, HistoryItem, HistoryMeta, HistoryPage, MAX_HISTORY_ITEM,
    MAX_HISTORY_MANIFEST, MAX_HISTORY_REACTIONS,
};

/// A link code starts with this.
pub const LINK_PREFIX: &str = "kithlink1";
/// Longest link code accepted (characters).
pub const MAX_LINK_CODE: usize = 2048;
/// Largest sealed part of one link message.
pub const MAX_LINK_SEALED: usize = 256 * 1024;
/// Longest device name.
pub const MAX_DEVICE_NAME: usize = 64;
/// Most devices one person may have linked (this one included).
pub const MAX_LINKED_DEVICES: usize = 5;
/// Most contacts handed over at link time.
pub const MAX_LINK_CONTACTS: usize = 1000;
/// Longest contact name handed over.
pub const MAX_LINK_NAME: usize = 128;
const NONCE: usize = 24;
const TAG: usize = 16;

/// What the new device shows: where to reach it and the one-time secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCode {
    /// Format version (1).
    pub version: u8,
    /// The new device's libp2p peer id (encoded).
    #[serde(with = "serde_bytes")]
    pub peer_id: Vec<u8>,
    /// Its addresses (encoded multiaddrs).
    #[serde(with = "crate::codec::byte_list")]
    pub addrs: Vec<Vec<u8>>,
    /// The one-time secret.
    #[serde(with = "serde_bytes")]
    pub secret: [u8; 16],
}

impl std::fmt::Debug for LinkCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkCode")
            .field("addrs", &self.addrs.len())
            .finish_non_exhaustive()
    }
}

impl LinkCode {
    /// The text form: prefix, then base58 of the encoding and a 4-byte checksum.
    pub fn to_code(&self) -> Result<String, EncodeError> {
        let mut bytes = codec::encode(self)?;
        let sum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&sum[..4]);
        Ok(format!(
            "{LINK_PREFIX}{}",
            bs58::encode(bytes).into_string()
        ))
    }

    /// Parses and checks a code as typed or pasted.
    pub fn from_code(code: &str) -> Result<Self, DecodeError> {
        let code = code.trim();
        if code.len() > MAX_LINK_CODE {
            return Err(DecodeError::TooLarge {
                len: code.len(),
                limit: MAX_LINK_CODE,
            });
        }
        let body = code
            .strip_prefix(LINK_PREFIX)
            .ok_or(DecodeError::Invalid("a link code starts with kithlink1"))?;
        let bytes = bs58::decode(body)
            .into_vec()
            .map_err(|_| DecodeError::Invalid("not base58"))?;
        let Some(split) = bytes.len().checked_sub(4) else {
            return Err(DecodeError::Invalid("too short"));
        };
        let (payload, sum) = bytes.split_at(split);
        if Sha256::digest(payload)[..4] != *sum {
            return Err(DecodeError::Invalid("checksum (a typo?)"));
        }
        let c: LinkCode = codec::decode(payload, MAX_LINK_CODE)?;
        if c.version != 1 {
            return Err(DecodeError::UnsupportedVersion(c.version));
        }
        if c.peer_id.is_empty() || c.peer_id.len() > MAX_PEER_ID {
            return Err(DecodeError::Invalid("peer id length"));
        }
        if c.addrs.len() > MAX_ADDRS || c.addrs.iter().any(|a| a.is_empty() || a.len() > MAX_ADDR) {
            return Err(DecodeError::Invalid("addresses"));
        }
        Ok(c)
    }
}

/// One step of the link handshake (inside [`crate::wire::Request::Link`] and
/// [`crate::wire::Response::Link`]). Each sealed part is at most [`MAX_LINK_SEALED`] bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkMsg {
    /// Approver to new device: a sealed [`LinkHello`].
    Hello(#[serde(with = "serde_bytes")] Vec<u8>),
    /// New device to approver: a sealed [`LinkOffer`].
    Offer(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Approver to new device: a sealed [`LinkFinish`].
    Finish(#[serde(with = "serde_bytes")] Vec<u8>),
    /// New device to approver: linked.
    Done,
    /// Refused (wrong code, expired, used, too many tries, not an empty device).
    Refused,
}

impl std::fmt::Debug for LinkMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkMsg::Hello(_) => "Hello",
            LinkMsg::Offer(_) => "Offer",
            LinkMsg::Finish(_) => "Finish",
            LinkMsg::Done => "Done",
            LinkMsg::Refused => "Refused",
        })
    }
}

impl LinkMsg {
    /// Checks sizes.
    pub fn check(&self) -> Result<(), DecodeError> {
        match self {
            LinkMsg::Hello(b) | LinkMsg::Offer(b) | LinkMsg::Finish(b)
                if b.len() > MAX_LINK_SEALED || b.len() < NONCE + TAG =>
            {
                Err(DecodeError::Invalid("link message size"))
            }
            _ => Ok(()),
        }
    }
}

/// The approver's first message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkHello {
    /// The approving device's certificate (names the identity).
    pub approver: DeviceCert,
}

/// The new device's keys, for the approver to certify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkOffer {
    /// The new device's certificate as it stands (signed by a throwaway identity: only its
    /// peer id and keys are used; they must match the connection).
    pub device: DeviceCert,
    /// The name the new device chose.
    pub name: String,
}

/// A device of the person, as handed over at link time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedDevice {
    /// Its certificate (signed by the identity).
    pub cert: DeviceCert,
    /// Its name.
    pub name: String,
    /// Its addresses.
    #[serde(with = "crate::codec::byte_list")]
    pub addrs: Vec<Vec<u8>>,
}

/// A contact, as handed over at link time.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkContact {
    /// Their identity.
    pub identity: IdentityKey,
    /// The name the person gave them.
    pub name: String,
    /// Their devices known to the approver (certified ones only).
    pub devices: Vec<LinkedDevice>,
}

impl std::fmt::Debug for LinkContact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkContact")
            .field("identity", &self.identity)
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

/// What the approver hands over. `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFinish {
    /// The identity key's secret.
    #[serde(with = "serde_bytes")]
    pub identity_secret: [u8; 32],
    /// The new device's certificate, signed by the identity.
    pub cert: DeviceCert,
    /// The person's other devices (the approver first).
    pub devices: Vec<LinkedDevice>,
    /// The contacts.
    pub contacts: Vec<LinkContact>,
}

impl std::fmt::Debug for LinkFinish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkFinish")
            .field("devices", &self.devices.len())
            .field("contacts", &self.contacts.len())
            .finish_non_exhaustive()
    }
}

impl Drop for LinkFinish {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.identity_secret);
    }
}

impl LinkFinish {
    /// Checks counts and sizes (signatures are checked by the receiver against its keys).
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.devices.is_empty() || self.devices.len() >= MAX_LINKED_DEVICES {
            return Err(DecodeError::Invalid("device count"));
        }
        if self.contacts.len() > MAX_LINK_CONTACTS {
            return Err(DecodeError::Invalid("contact count"));
        }
        let dev_ok = |d: &LinkedDevice| {
            d.name.len() <= MAX_DEVICE_NAME
                && d.addrs.len() <= MAX_ADDRS
                && d.addrs.iter().all(|a| !a.is_empty() && a.len() <= MAX_ADDR)
                && d.cert.validate().is_ok()
        };
        if !self.devices.iter().all(dev_ok) {
            return Err(DecodeError::Invalid("device"));
        }
        for c in &self.contacts {
            if c.name.is_empty()
                || c.name.len() > MAX_LINK_NAME
                || c.devices.len() > crate::record::MAX_DEVICES
                || !c
                    .devices
                    .iter()
                    .all(|d| dev_ok(d) && d.cert.identity == c.identity)
            {
                return Err(DecodeError::Invalid("contact"));
            }
        }
        Ok(())
    }
}

/// What one device of a person tells the others (and, `Record`, its contacts).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceSync {
    /// The person's current signed user record (encoded), listing every linked device.
    /// Contacts learn new devices from it and drop the ones it no longer lists.
    Record(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A text the person sent from another device.
    Sent {
        /// To whom.
        to: IdentityKey,
        /// The message id.
        id: u128,
        /// When it was written (ms).
        sent_at_ms: u64,
        /// The text.
        text: String,
    },
    /// Messages of a conversation read on another device.
    Read {
        /// The conversation (the contact).
        conversation: IdentityKey,
        /// The ids (1 to [`crate::wire::MAX_RECEIPT_IDS`]).
        ids: Vec<u128>,
    },
    /// This device was removed from the person's devices: it stops acting for them.
    Removed,
    /// The sending device describes itself (sent when it starts, to the other devices):
    /// its name and its platform (`os/arch`), for `kith devices`.
    Info {
        /// Its name (at most [`MAX_DEVICE_NAME`] bytes).
        name: String,
        /// Its platform, e.g. `linux/x86_64` (at most [`MAX_PLATFORM`] bytes).
        platform: String,
    },
    /// A change of the person's own state made on the sending device (contacts, blocks,
    /// privacy settings): newest wins, item by item, by [`StateSync::version_ms`].
    State(StateSync),
    /// A page of the history handed to a newly linked device by the device that approved it
    /// (the last N days chosen at approval), in bounded batches.
    History(HistoryBatch),
    /// A page of history (1:1 or group, with what users see of each message: reply,
    /// reactions, edited or deleted state, stars, pins, and the attachment's manifest),
    /// handed to a newly linked device; the last page of the walk is [`HistoryPage::end`].
    HistoryPage(HistoryPage),
    /// One part of the person's profile photo when it is too large for a
    /// [`SyncItem::Profile`] (which then says `avatar_included: false`): the photo of the
    /// profile of `version`, cut in `parts` parts of at most [`PHOTO_PART`] bytes.
    ProfilePhoto {
        /// The version of the profile the photo belongs to.
        version: u64,
        /// This part's index, from 0.
        part: u16,
        /// How many parts the photo has (at most [`MAX_PHOTO_PARTS`]).
        parts: u16,
        /// The part's bytes.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

/// Most bytes of a profile photo in one [`DeviceSync::ProfilePhoto`] part.
pub const PHOTO_PART: usize = 40 * 1024;
/// Most parts of a profile photo (a photo is at most `signal::MAX_AVATAR` bytes).
pub const MAX_PHOTO_PARTS: u16 = crate::signal::MAX_AVATAR.div_ceil(PHOTO_PART) as u16;

/// Most messages in one [`HistoryBatch`].
pub const MAX_HISTORY_BATCH: usize = 64;
/// Most text bytes in one [`HistoryBatch`] (a first message always goes, whatever its size).
pub const HISTORY_BATCH_BYTES: usize = 40 * 1024;

/// One page of one conversation's history, oldest first.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryBatch {
    /// The conversation (the contact).
    pub conversation: IdentityKey,
    /// The messages (1 to [`MAX_HISTORY_BATCH`]).
    pub messages: Vec<HistoryMessage>,
    /// Conversations handed over entirely before this one (progress).
    pub done: u32,
    /// Conversations to hand over in all (progress).
    pub total: u32,
}

/// A message of a [`HistoryBatch`], as the approver holds it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryMessage {
    /// The message id (the same on every device; duplicates are dropped by it).
    pub id: u128,
    /// Sent by the person (true) or by the contact.
    pub outgoing: bool,
    /// When it was written (ms).
    pub sent_at_ms: u64,
    /// Its ticks: 0 pending, 1 sent, 2 delivered, 3 read.
    pub status: u8,
    /// The text.
    pub text: String,
}

impl std::fmt::Debug for HistoryMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HistoryMessage {{ id: {:x}, .. }}", self.id)
    }
}

impl std::fmt::Debug for HistoryBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HistoryBatch {{ n: {}, done: {}, total: {} }}",
            self.messages.len(),
            self.done,
            self.total
        )
    }
}

impl HistoryBatch {
    /// Checks sizes.
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.messages.is_empty()
            || self.messages.len() > MAX_HISTORY_BATCH
            || self.done > self.total
            || self
                .messages
                .iter()
                .any(|m| m.text.len() > crate::limits::MAX_TEXT || m.status > 3)
        {
            return Err(DecodeError::Invalid("history batch"));
        }
        Ok(())
    }
}

/// Longest encoded privacy settings carried in a [`SyncItem::Privacy`].
pub const MAX_SYNC_PRIVACY: usize = 1024;

/// One item of the person's state, as changed on one of their devices, with its version
/// (the changing device's clock, ms, raised above the last version it knew of the item).
/// A device applies an item only when its version is newer than the one it holds for the
/// same item, so a late or replayed sync never undoes a newer change.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSync {
    /// The item's version.
    pub version_ms: u64,
    /// What changed.
    pub item: SyncItem,
}

/// What changed in a [`StateSync`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncItem {
    /// A contact was added (or renamed) from their contact code.
    ContactAdded {
        /// The contact code (at most [`crate::contact::MAX_CODE_LEN`] bytes).
        code: String,
        /// The name the person gave them (at most [`MAX_LINK_NAME`] bytes).
        name: String,
    },
    /// A contact was removed.
    ContactRemoved {
        /// Who.
        identity: IdentityKey,
    },
    /// A contact was blocked or unblocked.
    Blocked {
        /// Who.
        identity: IdentityKey,
        /// Blocked (or unblocked).
        blocked: bool,
    },
    /// The privacy settings (encoded, at most [`MAX_SYNC_PRIVACY`] bytes; the engine's own
    /// type, decoded with that limit).
    Privacy(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The person's profile (name, about, and the photo when it fits: at most
    /// [`MAX_SYNC_AVATAR`] bytes; a larger one is left out and `avatar_included` is false,
    /// so the receiving device keeps the photo it has).
    Profile {
        /// The profile (its own version is newest-wins too).
        profile: crate::signal::Profile,
        /// `profile.avatar` is the person's photo (or its removal).
        avatar_included: bool,
    },
}

/// Largest profile photo carried in a [`SyncItem::Profile`] (the envelope holds 64 KiB).
pub const MAX_SYNC_AVATAR: usize = 48 * 1024;

impl std::fmt::Debug for SyncItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SyncItem::ContactAdded { .. } => "ContactAdded",
            SyncItem::ContactRemoved { .. } => "ContactRemoved",
            SyncItem::Blocked { .. } => "Blocked",
            SyncItem::Privacy(_) => "Privacy",
            SyncItem::Profile { .. } => "Profile",
        })
    }
}

impl std::fmt::Debug for StateSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StateSync {{ {:?}, version_ms: {} }}",
            self.item, self.version_ms
        )
    }
}

impl StateSync {
    /// Checks sizes.
    pub fn check(&self) -> Result<(), DecodeError> {
        match &self.item {
            SyncItem::ContactAdded { code, name }
                if code.len() > crate::contact::MAX_CODE_LEN || name.len() > MAX_LINK_NAME =>
            {
                Err(DecodeError::Invalid("contact sync size"))
            }
            SyncItem::Privacy(p) if p.len() > MAX_SYNC_PRIVACY => {
                Err(DecodeError::Invalid("privacy sync size"))
            }
            SyncItem::Profile { profile, .. }
                if profile
                    .avatar
                    .as_ref()
                    .is_some_and(|a| a.len() > MAX_SYNC_AVATAR)
                    || profile.validate().is_err() =>
            {
                Err(DecodeError::Invalid("profile sync"))
            }
            _ => Ok(()),
        }
    }
}

/// Longest platform description of a device (`os/arch`).
pub const MAX_PLATFORM: usize = 64;

impl std::fmt::Debug for DeviceSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSync::Record(r) => write!(f, "Record({} bytes)", r.len()),
            DeviceSync::Sent { id, .. } => write!(f, "Sent {{ id: {id:x}, .. }}"),
            DeviceSync::Read { ids, .. } => write!(f, "Read {{ n: {} }}", ids.len()),
            DeviceSync::Removed => f.write_str("Removed"),
            DeviceSync::Info { platform, .. } => write!(f, "Info {{ platform: {platform:?} }}"),
            DeviceSync::State(s) => write!(f, "{s:?}"),
            DeviceSync::History(h) => write!(f, "{h:?}"),
            DeviceSync::HistoryPage(h) => write!(f, "{h:?}"),
            DeviceSync::ProfilePhoto { part, parts, .. } => {
                write!(f, "ProfilePhoto({part}/{parts})")
            }
        }
    }
}

impl DeviceSync {
    /// Checks sizes.
    pub fn check(&self) -> Result<(), DecodeError> {
        match self {
            DeviceSync::Record(r) if r.len() > crate::record::MAX_USER_RECORD => {
                Err(DecodeError::Invalid("record size"))
            }
            DeviceSync::Sent { text, .. } if text.len() > crate::limits::MAX_TEXT => {
                Err(DecodeError::Invalid("text too long"))
            }
            DeviceSync::Read { ids, .. }
                if ids.is_empty() || ids.len() > crate::wire::MAX_RECEIPT_IDS =>
            {
                Err(DecodeError::Invalid("read size"))
            }
            DeviceSync::Info { name, platform }
                if name.len() > MAX_DEVICE_NAME || platform.len() > MAX_PLATFORM =>
            {
                Err(DecodeError::Invalid("device info size"))
            }
            DeviceSync::State(s) => s.check(),
            DeviceSync::History(h) => h.check(),
            DeviceSync::HistoryPage(h) => h.check(),
            DeviceSync::ProfilePhoto {
                part, parts, bytes, ..
            } if *parts == 0
                || *parts > MAX_PHOTO_PARTS
                || part >= parts
                || bytes.is_empty()
                || bytes.len() > PHOTO_PART =>
            {
                Err(DecodeError::Invalid("profile photo part"))
            }
            _ => Ok(()),
        }
    }
}

/// The key both sides derive from the code's secret.
pub fn link_key(secret: &[u8; 16]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"kith-link-key-v1");
    h.update(secret);
    h.finalize().into()
}

/// Seals `value` under `key` (nonce, then ciphertext and tag); `aad` names the step.
/// `nonce` must be random (the caller's RNG: 24 bytes, so random nonces never repeat).
pub fn seal<T: Serialize>(
    key: &[u8; 32],
    aad: &[u8],
    value: &T,
    nonce: [u8; NONCE],
) -> Result<Vec<u8>, EncodeError> {
    let mut buf = codec::encode(value)?;
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    cipher
        .encrypt_in_place(&XNonce::from(nonce), aad, &mut buf)
        .map_err(|_| EncodeError::other("link message too large"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Opens what [`seal`] made; fails (without saying why) for a wrong key or tampering.
pub fn open<T: serde::de::DeserializeOwned>(
    key: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
) -> Result<T, DecodeError> {
    if sealed.len() < NONCE + TAG || sealed.len() > MAX_LINK_SEALED {
        return Err(DecodeError::Invalid("link message size"));
    }
    let (nonce, ct) = sealed.split_at(NONCE);
    let nonce: [u8; NONCE] = nonce
        .try_into()
        .map_err(|_| DecodeError::Invalid("nonce"))?;
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let mut buf = ct.to_vec();
    cipher
        .decrypt_in_place(&XNonce::from(nonce), aad, &mut buf)
        .map_err(|_| DecodeError::BadSignature)?;
    codec::decode(&buf, MAX_LINK_SEALED)
}

/// The transcript hash: the secret and both sealed messages, in order.
pub fn transcript(secret: &[u8; 16], hello: &[u8], offer: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"kith-link-transcript-v1");
    h.update(secret);
    for part in [hello, offer] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

const WORDS: [&str; 64] = [
    "apple", "arrow", "badge", "bread", "brick", "cabin", "camel", "candy", "cedar", "chalk",
    "cloud", "coral", "crane", "daisy", "delta", "eagle", "ember", "fable", "fern", "flint",
    "frost", "glove", "grape", "harbor", "hazel", "honey", "igloo", "ivory", "jelly", "kayak",
    "kettle", "lemon", "lilac", "maple", "marble", "melon", "mint", "noble", "oasis", "olive",
    "onion", "otter", "panda", "pearl", "piano", "pilot", "quartz", "raven", "river", "robin",
    "saddle", "salmon", "spark", "stone", "tiger", "tulip", "umber", "velvet", "walnut", "willow",
    "yarrow", "zebra", "comet", "lotus",
];

/// Six words (36 bits) from the transcript hash, for the person to compare on both screens.
pub fn confirm_words(transcript: &[u8; 32]) -> String {
    let mut bits: u64 = 0;
    for b in &transcript[..8] {
        bits = (bits << 8) | u64::from(*b);
    }
    (0..6)
        .map(|i| WORDS[((bits >> (i * 6)) & 63) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_photo_parts_are_bounded() {
        let part = |part: u16, parts: u16, len: usize| DeviceSync::ProfilePhoto {
            version: 1,
            part,
            parts,
            bytes: vec![1; len],
        };
        assert_eq!(MAX_PHOTO_PARTS, 7, "256 KiB in parts of 40 KiB");
        assert!(part(0, 1, 1).check().is_ok());
        assert!(part(6, MAX_PHOTO_PARTS, PHOTO_PART).check().is_ok());
        for bad in [
            part(0, 0, 1),
            part(1, 1, 1),
            part(0, MAX_PHOTO_PARTS + 1, 1),
            part(0, 2, 0),
            part(0, 2, PHOTO_PART + 1),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn code_roundtrips_and_typos_are_caught() {
        let c = LinkCode {
            version: 1,
            peer_id: vec![1, 2, 3],
            addrs: vec![vec![4; 8]],
            secret: [9; 16],
        };
        let s = c.to_code().unwrap();
        assert_eq!(LinkCode::from_code(&format!(" {s}\n")).unwrap(), c);
        let mut chars: Vec<char> = s.chars().collect();
        let i = chars.len() - 3;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        assert!(LinkCode::from_code(&chars.into_iter().collect::<String>()).is_err());
        assert!(LinkCode::from_code("kithlink1").is_err());
        assert!(LinkCode::from_code("").is_err());
    }

    #[test]
    fn sealed_opens_only_with_the_right_key_and_step() {
        let k = link_key(&[1; 16]);
        let s = seal(&k, b"hello", &"text".to_string(), [3; 24]).unwrap();
        assert_eq!(open::<String>(&k, b"hello", &s).unwrap(), "text");
        assert!(open::<String>(&link_key(&[2; 16]), b"hello", &s).is_err());
        assert!(open::<String>(&k, b"offer", &s).is_err());
        assert!(open::<String>(&k, b"hello", &s[..10]).is_err());
    }

    #[test]
    fn words_follow_the_transcript() {
        let a = confirm_words(&transcript(&[1; 16], b"h", b"o"));
        assert_eq!(a, confirm_words(&transcript(&[1; 16], b"h", b"o")));
        assert_ne!(a, confirm_words(&transcript(&[1; 16], b"h", b"p")));
        assert_eq!(a.split(' ').count(), 6);
    }
}
