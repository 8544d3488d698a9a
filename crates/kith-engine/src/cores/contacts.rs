//! Contacts and identity: the rules for adding, naming and removing contacts, for what may
//! be sent to them, and for marking their messages read. A core with no I/O: it reads no
//! clock and touches neither the store nor the network. The engine actor
//! (`actor/commands.rs`) reads from the store what a rule needs, passes it in as plain
//! values with the time, and carries out the decision: it writes the store, queues bodies
//! in the outbox, dials, and publishes events.
//!
//! Data flow:
//!
//! 1. `kith contacts add CODE NAME`: [`read_code`] parses the code and refuses this user's
//!    own code ([`EngineError::OwnCode`]), a bad name ([`valid_name`]: trimmed, 1 to
//!    [`MAX_NAME`] characters, no control characters) and a bad peer id. The actor then reads
//!    the contact that has the name, the identity the store binds the code's device to, and
//!    the contact with the code's identity ([`Existing`]); [`check_add`] refuses a known name
//!    with another identity key ([`EngineError::IdentityChanged`], with a warning event), a
//!    device bound to another identity, and the same identity added by the user under another
//!    name ([`EngineError::AlreadyContact`]). A provisional contact (someone who wrote
//!    first) is replaced by the contact the user added ([`added_contact`]); the code's
//!    addresses go first in the device's address list ([`merge_addrs`]).
//! 2. Someone who is not a contact writes first, or turns up in a group: they get a
//!    provisional contact named by [`stranger_name`] (`~` and their short fingerprint, then
//!    `-2`, `-3`... while taken); past [`MAX_STRANGERS`] provisional contacts a new stranger
//!    who is no group member is refused ([`may_add_stranger`]).
//! 3. `kith contacts remove NAME`: the contact goes, and with it every device of its identity
//!    ([`devices_to_drop`]): the device records, their Olm sessions, their delivery state;
//!    what the presence core holds for the identity (last seen, typing, profile version,
//!    block) goes too. The conversation's messages stay.
//! 4. `kith send`: the text must be 1 to [`MAX_TEXT`] bytes ([`check_text`]) and the contact
//!    not blocked; [`outgoing_text`] makes the stored message and the body that is sent.
//! 5. `kith read`: every incoming message below `Read` among the last [`READ_SCAN`] of the
//!    conversation is marked read ([`unread`]); read receipts go back only when the privacy
//!    setting allows them and the contact is not blocked, [`MAX_RECEIPT_IDS`] ids per
//!    receipt ([`read_receipts`]).

use kith_net::PeerId;
use kith_proto::contact::ContactCard;
use kith_proto::wire::{Body, MAX_RECEIPT_IDS, MAX_TEXT, ReceiptKind};
use kith_store::{Contact, KnownDevice, Status, StoredMessage, device_key};
use kith_types::{DeviceKey, IdentityKey};

use crate::cores::record::MAX_DEVICE_ADDRS;
use crate::model::{EngineError, Event};

/// Most people who wrote first (not added by the user) kept as provisional contacts; more
/// strangers are refused until some are removed.
pub const MAX_STRANGERS: usize = 1000;
/// Longest contact name, in characters.
pub const MAX_NAME: usize = 64;
/// How many of a conversation's newest messages `read` looks at.
pub const READ_SCAN: usize = 10_000;

/// A contact name as the user typed it, trimmed; refused when empty, longer than
/// [`MAX_NAME`] characters, or holding control characters.
pub fn valid_name(name: &str) -> Result<String, EngineError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(EngineError::BadName(format!("1 to {MAX_NAME} characters")));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(EngineError::BadName("no control characters".into()));
    }
    Ok(name.to_string())
}

/// A message text may be sent: 1 to [`MAX_TEXT`] bytes.
pub fn check_text(text: &str) -> Result<(), EngineError> {
    if text.is_empty() || text.len() > MAX_TEXT {
        return Err(EngineError::BadText { max: MAX_TEXT });
    }
    Ok(())
}

/// A contact code the user wants to add, read and checked on its own (no store needed).
#[derive(Debug)]
pub struct Code {
    /// What the code carries.
    pub card: ContactCard,
    /// The name, as [`valid_name`] cleaned it.
    pub name: String,
    /// The peer id of the device that made the code.
    pub peer: PeerId,
}

/// Reads a contact code and the name to give it. In order: the code parses, it is not this
/// user's own (`me`), the name is valid, the code's peer id parses.
pub fn read_code(code: &str, name: &str, me: &IdentityKey) -> Result<Code, EngineError> {
    let card = ContactCard::from_code(code).map_err(|e| EngineError::BadCode(e.to_string()))?;
    if &card.identity == me {
        return Err(EngineError::OwnCode);
    }
    let name = valid_name(name)?;
    let peer = PeerId::from_bytes(&card.peer_id)
        .map_err(|_| EngineError::BadCode("bad peer id".into()))?;
    Ok(Code { card, name, peer })
}

/// What the store knows that adding a code must agree with.
#[derive(Debug, Default)]
pub struct Existing<'a> {
    /// The contact that has the name already.
    pub by_name: Option<&'a Contact>,
    /// The identity the store binds the code's device to, when it knows the device.
    pub device_identity: Option<IdentityKey>,
    /// The contact with the code's identity.
    pub by_identity: Option<&'a Contact>,
}

/// Why a code is not added.
#[derive(Debug, PartialEq, Eq)]
pub enum AddRefused {
    /// The caller gets this error.
    Error(EngineError),
    /// The name is known with another identity key: the caller gets
    /// [`EngineError::IdentityChanged`] and every watcher an identity warning.
    IdentityChanged(String),
}

impl AddRefused {
    /// The answer to the caller, and the event to publish with it (if any).
    pub fn into_parts(self) -> (EngineError, Option<Event>) {
        match self {
            AddRefused::Error(e) => (e, None),
            AddRefused::IdentityChanged(name) => (
                EngineError::IdentityChanged(name.clone()),
                Some(Event::IdentityWarning {
                    contact: name,
                    detail: "a new contact code for this name has a different identity key".into(),
                }),
            ),
        }
    }
}

/// Whether a read code may be added under its name, given what the store knows. Adding
/// again under the same name, or over a provisional contact, is allowed.
pub fn check_add(code: &Code, existing: &Existing<'_>) -> Result<(), AddRefused> {
    let identity = code.card.identity;
    if let Some(c) = existing.by_name
        && c.identity != identity
    {
        return Err(AddRefused::IdentityChanged(code.name.clone()));
    }
    if let Some(bound) = existing.device_identity
        && bound != identity
    {
        return Err(AddRefused::Error(EngineError::BadCode(
            "that device belongs to another identity".into(),
        )));
    }
    if let Some(other) = existing.by_identity
        && other.name != code.name
        && other.added_by_user
    {
        return Err(AddRefused::Error(EngineError::AlreadyContact(
            other.name.clone(),
        )));
    }
    Ok(())
}

/// The contact the user added from a code (it replaces a provisional one of the identity).
pub fn added_contact(code: &Code, now_ms: u64) -> Contact {
    Contact {
        identity: code.card.identity,
        name: code.name.clone(),
        added_ms: now_ms,
        added_by_user: true,
        peer_hint: code.card.peer_id.clone(),
        addr_hints: code.card.addrs.clone(),
    }
}

/// Puts a code's addresses first in a device's address list (in the code's order, without
/// duplicates), keeping at most [`MAX_DEVICE_ADDRS`].
pub fn merge_addrs(known: &mut Vec<Vec<u8>>, from_code: &[Vec<u8>]) {
    for a in from_code.iter().rev() {
        if !known.contains(a) {
            known.insert(0, a.clone());
        }
    }
    known.truncate(MAX_DEVICE_ADDRS);
}

/// The `n`th name tried for a person who is not a contact (counting from 1): `~` and their
/// short fingerprint, then with `-2`, `-3`... The caller takes the first one not in use.
pub fn stranger_name(identity: &IdentityKey, n: usize) -> String {
    let short = identity.short();
    if n <= 1 {
        format!("~{short}")
    } else {
        format!("~{short}-{n}")
    }
}

/// Whether a new stranger gets a provisional contact, with `strangers` provisional contacts
/// kept already: group members always do; others while there are fewer than
/// [`MAX_STRANGERS`].
pub fn may_add_stranger(strangers: usize, group_member: bool) -> bool {
    group_member || strangers < MAX_STRANGERS
}

/// The devices that go with a removed contact: every known device of its identity.
pub fn devices_to_drop(identity: &IdentityKey, devices: &[KnownDevice]) -> Vec<DeviceKey> {
    devices
        .iter()
        .filter(|d| &d.identity == identity)
        .map(|d| device_key(&d.peer_id))
        .collect()
}

/// The message a user sends, as stored in the conversation (pending) and as sealed for the
/// contact's devices.
pub fn outgoing_text(id: u128, text: String, now_ms: u64) -> (StoredMessage, Body) {
    let msg = StoredMessage {
        id,
        outgoing: true,
        text: text.clone(),
        sent_at_ms: now_ms,
        stored_at_ms: now_ms,
        status: Status::Pending,
    };
    let body = Body::Text {
        id,
        sent_at_ms: now_ms,
        text,
    };
    (msg, body)
}

/// The ids of the incoming messages not read yet, oldest first.
pub fn unread<'a>(history: impl IntoIterator<Item = &'a StoredMessage>) -> Vec<u128> {
    history
        .into_iter()
        .filter(|m| !m.outgoing && m.status < Status::Read)
        .map(|m| m.id)
        .collect()
}

/// The read receipts that go back for messages just read: none when read receipts are off
/// or the contact is blocked; else one per [`MAX_RECEIPT_IDS`] ids.
pub fn read_receipts(read: &[u128], receipts_on: bool, blocked: bool, now_ms: u64) -> Vec<Body> {
    if !receipts_on || blocked {
        return Vec::new();
    }
    read.chunks(MAX_RECEIPT_IDS)
        .map(|chunk| Body::Receipt {
            kind: ReceiptKind::Read,
            ids: chunk.to_vec(),
            at_ms: now_ms,
        })
        .collect()
}

#[cfg(test)]
mod tests;
