//! The records kept in the store.

use kith_proto::record::{DeviceCert, MailboxRef, PrekeyBundle};
use kith_proto::wire::Envelope;
use kith_types::{DeviceKey, IdentityKey};
use serde::{Deserialize, Serialize};

/// Largest encoded value the store decodes (a message with its text, an outbox item).
pub const MAX_VALUE: usize = 256 * 1024;

/// A person this node talks to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Their identity key (a byte string, as `serde_bytes` wrote it).
    pub identity: IdentityKey,
    /// The name this user gave them (unique among contacts).
    pub name: String,
    /// When added.
    pub added_ms: u64,
    /// True when added by this user; false when they wrote first (a message request).
    pub added_by_user: bool,
    /// A device peer id from their contact code, until their certificate is known.
    #[serde(with = "serde_bytes")]
    pub peer_hint: Vec<u8>,
    /// Address hints from their contact code (encoded multiaddrs).
    #[serde(with = "kith_proto::codec::byte_list")]
    pub addr_hints: Vec<Vec<u8>>,
}

/// What is kept about a contact besides the contact record itself (a separate table, so the
/// contact's own encoding stays as it was).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactExtra {
    /// Blocked by this user: their messages are dropped, they get no presence, typing or
    /// profile, and their devices cannot connect.
    pub blocked: bool,
    /// When they were last seen online (ms), as far as they share it.
    pub last_seen_ms: Option<u64>,
    /// Their profile, as they last sent it.
    pub profile: Option<StoredProfile>,
}

/// A contact's profile as kept here; the photo is a file in the data directory.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredProfile {
    /// Their profile version (update time, ms).
    pub version: u64,
    /// Their display name.
    pub name: String,
    /// Their about text.
    pub about: String,
    /// The photo's file name inside the data directory's `avatars/` folder.
    pub avatar_file: Option<String>,
}

impl std::fmt::Debug for StoredProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredProfile")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A device of a contact. Devices are keyed by [`device_key`] of their libp2p peer id, so a
/// device is known (from a contact code) before its certificate is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDevice {
    /// The identity it belongs to (a byte string).
    pub identity: IdentityKey,
    /// Its libp2p peer id (encoded).
    #[serde(with = "serde_bytes")]
    pub peer_id: Vec<u8>,
    /// Its certificate, once fetched and checked against `identity` and `peer_id`.
    pub cert: Option<DeviceCert>,
    /// Addresses it was last seen at (encoded multiaddrs), newest first.
    #[serde(with = "kith_proto::codec::byte_list")]
    pub addrs: Vec<Vec<u8>>,
    /// Mailboxes that keep envelopes for it while it is offline (from its user record).
    pub mailboxes: Vec<MailboxRef>,
    /// Its published fallback pre-key (from its user record), for a first message while it
    /// is offline.
    pub prekey: Option<PrekeyBundle>,
}

/// The store key of a device: SHA-256 of its encoded peer id.
pub fn device_key(peer_id: &[u8]) -> DeviceKey {
    use sha2::{Digest, Sha256};
    DeviceKey(Sha256::digest(peer_id).into())
}

/// The state of a message, only ever raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Written to our outbox; not yet accepted anywhere.
    Pending,
    /// Accepted durably by a mailbox (or, for incoming messages, received).
    Sent,
    /// Stored durably by a recipient device.
    Delivered,
    /// Opened by the recipient.
    Read,
}

impl Status {
    /// The lowercase name used in the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Read => "read",
        }
    }
}

/// A message in a conversation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The sender's message id.
    pub id: u128,
    /// Sent by this user (true) or by the contact (false).
    pub outgoing: bool,
    /// The text.
    pub text: String,
    /// When the sender wrote it (sender's clock).
    pub sent_at_ms: u64,
    /// When this node stored it.
    pub stored_at_ms: u64,
    /// For outgoing: pending/sent/delivered/read. For incoming: delivered, or read once the
    /// user opened the conversation.
    pub status: Status,
}

impl std::fmt::Debug for StoredMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredMessage")
            .field("id", &self.id)
            .field("outgoing", &self.outgoing)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// The conversation of kept mail: envelopes this node's mailbox keeps for another device,
/// which belong to none of ours.
pub const NO_CONVERSATION: IdentityKey = IdentityKey([0; 32]);

/// Something waiting to be delivered to one remote device, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// The conversation (contact identity) it belongs to, [`NO_CONVERSATION`] for kept mail
    /// (a byte string).
    pub conversation: IdentityKey,
    /// Outgoing text message ids it carries (their state rises when it is acknowledged).
    pub message_ids: Vec<u128>,
    /// The encrypted envelope, once a session with the device exists.
    pub sealed: Option<Envelope>,
    /// The encoded body, kept until the item is acknowledged so it can be sealed again if the
    /// receiver loses its session.
    #[serde(with = "serde_bytes")]
    pub body: Option<Vec<u8>>,
    /// When it was queued.
    pub queued_ms: u64,
    /// How often it was re-sealed because the receiver could not decrypt it.
    pub resets: u8,
    /// With `sealed`: how many consecutive items (this one included) the envelope carries.
    pub covers: u32,
    /// Carried by the envelope of an earlier item (so it has none of its own).
    pub covered: bool,
}

impl OutboxItem {
    /// Whether this is an envelope a mailbox keeps for a registered device (it has no
    /// conversation and no body of ours to seal again).
    pub fn is_kept_mail(&self) -> bool {
        self.conversation == NO_CONVERSATION && self.body.is_none()
    }

    /// The ciphertext bytes this item counts against a mailbox's byte quota (0 for the
    /// node's own messages).
    pub fn kept_bytes(&self) -> u64 {
        match &self.sealed {
            Some(env) if self.is_kept_mail() => env.ciphertext.len() as u64,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::{dec, enc};

    /// The records as they were written before their identity keys were typed.
    mod old {
        use serde::Serialize;

        #[derive(Serialize)]
        pub struct Contact {
            #[serde(with = "serde_bytes")]
            pub identity: [u8; 32],
            pub name: String,
            pub added_ms: u64,
            pub added_by_user: bool,
            #[serde(with = "serde_bytes")]
            pub peer_hint: Vec<u8>,
            #[serde(with = "kith_proto::codec::byte_list")]
            pub addr_hints: Vec<Vec<u8>>,
        }

        #[derive(Serialize)]
        pub struct KnownDevice {
            #[serde(with = "serde_bytes")]
            pub identity: [u8; 32],
            #[serde(with = "serde_bytes")]
            pub peer_id: Vec<u8>,
            pub cert: Option<()>, // none here
            #[serde(with = "kith_proto::codec::byte_list")]
            pub addrs: Vec<Vec<u8>>,
            pub mailboxes: Vec<()>, // none here
            pub prekey: Option<()>, // none here
        }

        #[derive(Serialize)]
        pub struct Envelope {
            #[serde(with = "serde_bytes")]
            pub to_device: [u8; 32],
            pub kind: u8,
            #[serde(with = "serde_bytes")]
            pub ciphertext: Vec<u8>,
        }

        #[derive(Serialize)]
        pub struct OutboxItem {
            #[serde(with = "serde_bytes")]
            pub conversation: [u8; 32],
            pub message_ids: Vec<u128>,
            pub sealed: Option<Envelope>,
            #[serde(with = "serde_bytes")]
            pub body: Option<Vec<u8>>,
            pub queued_ms: u64,
            pub resets: u8,
            pub covers: u32,
            pub covered: bool,
        }
    }

    /// Decodes `old` bytes as `T`, checks the value, and that it encodes back to the same bytes.
    fn same<T>(old: Vec<u8>, want: T)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let typed: T = dec(&old).unwrap();
        assert_eq!(typed, want);
        assert_eq!(enc(&typed).unwrap(), old);
    }

    #[test]
    fn typed_identity_keys_keep_the_stored_encoding() {
        let contact = old::Contact {
            identity: [3; 32],
            name: "ann".into(),
            added_ms: 5,
            added_by_user: true,
            peer_hint: vec![1, 2],
            addr_hints: vec![vec![4, 127, 0, 0, 1]],
        };
        same(
            enc(&contact).unwrap(),
            Contact {
                identity: IdentityKey([3; 32]),
                name: "ann".into(),
                added_ms: 5,
                added_by_user: true,
                peer_hint: vec![1, 2],
                addr_hints: vec![vec![4, 127, 0, 0, 1]],
            },
        );
        let device = old::KnownDevice {
            identity: [4; 32],
            peer_id: vec![7],
            cert: None,
            addrs: vec![vec![1]],
            mailboxes: Vec::new(),
            prekey: None,
        };
        same(
            enc(&device).unwrap(),
            KnownDevice {
                identity: IdentityKey([4; 32]),
                peer_id: vec![7],
                cert: None,
                addrs: vec![vec![1]],
                mailboxes: Vec::new(),
                prekey: None,
            },
        );
        let item = old::OutboxItem {
            conversation: [5; 32],
            message_ids: vec![9],
            sealed: Some(old::Envelope {
                to_device: [6; 32],
                kind: 1,
                ciphertext: vec![8; 3],
            }),
            body: Some(vec![2]),
            queued_ms: 10,
            resets: 1,
            covers: 1,
            covered: false,
        };
        same(
            enc(&item).unwrap(),
            OutboxItem {
                conversation: IdentityKey([5; 32]),
                message_ids: vec![9],
                sealed: Some(Envelope {
                    to_device: kith_types::CurveKey([6; 32]),
                    kind: 1,
                    ciphertext: vec![8; 3],
                }),
                body: Some(vec![2]),
                queued_ms: 10,
                resets: 1,
                covers: 1,
                covered: false,
            },
        );
    }
}
