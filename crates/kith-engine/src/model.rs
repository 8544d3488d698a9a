//! What the engine offers its callers: views, events and errors. These are the typed results
//! of the command model shared by the CLI and the JSON-RPC API.

use serde::{Deserialize, Serialize};

mod calls;
mod receipts;
pub use calls::*;
pub use receipts::*;

/// Errors a caller can get. [`EngineError::exit_code`] maps them to the CLI's exit codes.
#[derive(Debug, thiserror::Error, Serialize, Deserialize, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// No contact has that name.
    #[error("no contact named {0:?} (see `kith contacts list`)")]
    UnknownContact(String),
    /// A contact code could not be read.
    #[error("that contact code is not valid: {0}")]
    BadCode(String),
    /// A name is not acceptable.
    #[error("invalid name: {0}")]
    BadName(String),
    /// This person is already a contact under another name.
    #[error("this person is already in your contacts as {0:?}")]
    AlreadyContact(String),
    /// The code names a different identity key than the contact already known by that name.
    #[error(
        "{0:?} already names a contact with a different identity key: their safety number \
         changed. Compare safety numbers in person; to replace the contact, run \
         `kith contacts remove {0}` first"
    )]
    IdentityChanged(String),
    /// That code is this node's own.
    #[error("that is your own contact code")]
    OwnCode,
    /// The message text is empty or too long.
    #[error("message text must be 1 to {max} bytes")]
    BadText { max: usize },
    /// A store or other internal failure.
    #[error("internal error: {0}")]
    Internal(String),
    /// The network could not start (a listen address could not be bound).
    #[error("network: {0}")]
    Network(String),
    /// The engine has stopped.
    #[error("the node is shutting down")]
    Stopped,
    /// A push endpoint that is not a valid http(s) URL.
    #[error("invalid push endpoint: {0}")]
    BadEndpoint(String),
    /// A mailbox refused the push endpoint (or this device is not registered there).
    #[error("{0}")]
    PushRefused(String),
    /// The contact is blocked.
    #[error("{0:?} is blocked; `kith unblock {0}` first")]
    Blocked(String),
    /// A profile, photo or privacy setting that is not acceptable.
    #[error("{0}")]
    BadSetting(String),
    /// No group matches (or several do).
    #[error("{0}")]
    UnknownGroup(String),
    /// The group change is not allowed or changes nothing.
    #[error("{0}")]
    GroupRefused(String),
    /// A call command that does not fit the call's state (busy, nothing ringing).
    #[error("{0}")]
    Call(String),
    /// A file cannot be sent, found or fetched (what is wrong, in words).
    #[error("{0}")]
    Media(String),
    /// No message has that id (or it is not in a chat this user can act on).
    #[error("no message with id {0} (see `kith history`)")]
    UnknownMessage(String),
    /// A message action the rules do not allow (someone else's message, too late).
    #[error("{0}")]
    ActionRefused(String),
    /// The key file cannot be opened: it needs a passphrase, the passphrase is wrong, or
    /// the file is damaged (what is wrong, in words).
    #[error("{0}")]
    KeyFile(String),
}

impl EngineError {
    /// The CLI exit code: 1 for user errors, 2 for internal ones, 3 when the node is gone.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Internal(_) => 2,
            EngineError::Stopped | EngineError::Network(_) => 3,
            _ => 1,
        }
    }
}

/// What `kith id` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    /// The contact code to give to others.
    pub code: String,
    /// This device's libp2p peer id.
    pub peer_id: String,
    /// Addresses the node listens on.
    pub addrs: Vec<String>,
    /// The identity key's short fingerprint.
    pub identity: String,
}

/// A contact as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContactView {
    /// The name given to it.
    pub name: String,
    /// Identity fingerprint.
    pub identity: String,
    /// Whether this user added it (false: it wrote first).
    pub added_by_user: bool,
    /// Whether a device of it is connected now.
    pub connected: bool,
    /// Messages waiting in the outbox for it.
    pub pending: usize,
    /// `online`, `offline` or `unknown` (nothing heard yet, or they hide it).
    pub presence: String,
    /// When they were last seen online (ms), as far as they share it.
    pub last_seen: Option<u64>,
    /// `typing` or `recording` while they do, for a few seconds after each signal.
    pub typing: Option<String>,
    /// Blocked by you.
    pub blocked: bool,
    /// The name in their profile.
    pub profile_name: Option<String>,
    /// The about text in their profile.
    pub about: Option<String>,
    /// The file holding their profile photo, sealed at rest (`contact.photo` writes it out
    /// opened).
    pub avatar: Option<String>,
    /// The chat with them is archived / muted (`kith archive`, `kith mute`).
    #[serde(default)]
    pub archived: bool,
    /// See `archived`.
    #[serde(default)]
    pub muted: bool,
}

impl ContactView {
    /// A contact as listed, with nothing known of its presence or profile yet.
    pub fn new(name: String, identity: String, added_by_user: bool) -> Self {
        Self {
            name,
            identity,
            added_by_user,
            connected: false,
            pending: 0,
            presence: "unknown".into(),
            last_seen: None,
            typing: None,
            blocked: false,
            profile_name: None,
            about: None,
            avatar: None,
            archived: false,
            muted: false,
        }
    }
}

/// This user's own profile, as `kith profile` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProfileView {
    /// Display name.
    pub name: String,
    /// About text.
    pub about: String,
    /// Whether a photo is set, and its size in bytes.
    pub avatar_bytes: Option<usize>,
    /// Version (update time, ms; 0 when never set).
    pub version: u64,
}

/// Who sees what, as `kith privacy` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrivacyView {
    /// Who sees when you were last online: `everyone`, `contacts` or `nobody`.
    pub last_seen: String,
    /// Who sees that you are online now.
    pub online: String,
    /// Whether read receipts are sent (and shown).
    pub read_receipts: bool,
    /// Who sees your profile photo.
    pub profile_photo: String,
}

/// A message as shown in history.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageView {
    /// Message id (ULID text).
    pub id: String,
    /// "me" or the contact's name.
    pub from: String,
    /// The text.
    pub text: String,
    /// pending, sent, delivered or read.
    pub status: String,
    /// When the sender wrote it (ms since epoch).
    pub sent_at: u64,
    /// The file it carries, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentView>,
    /// Replies, reactions, edits, deletes, marks.
    #[serde(flatten, default)]
    pub extras: MessageExtras,
}

/// A file attached to a message, as `history` and `media` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttachmentView {
    /// The message id.
    pub id: String,
    /// The contact's name.
    pub chat: String,
    /// Sent by this user.
    pub outgoing: bool,
    /// photo, video, voice, audio or document.
    pub kind: String,
    /// The file name the sender gave.
    pub name: String,
    /// The media type, sniffed from the content.
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
    /// Width and height in pixels, when known.
    pub dimensions: Option<(u32, u32)>,
    /// Duration in milliseconds, when known.
    pub duration_ms: Option<u64>,
    /// waiting, downloading, ready or failed.
    pub state: String,
    /// How much is here, 0 to 100.
    pub percent: u8,
    /// Where the file is in clear: none (files are sealed at rest; `media.save` writes
    /// one out). Kept for clients that read the field.
    pub path: Option<String>,
    /// A thumbnail file, when there is one.
    pub thumbnail: Option<String>,
    /// Bytes of this file this node served to peers since it started (the sender's
    /// upload; a group member's share in passing it on): in `media` and `media.get`
    /// only (0, and left out, in histories).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uploaded: u64,
}

/// What message actions show on a message (all empty for a plain one).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageExtras {
    /// The id of the message it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The start of the answered message's text (or `None` when it is not here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// Forwarded from another chat.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// Edited by its author.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edited: bool,
    /// Deleted for everyone by its author (the text is gone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Starred by you.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub starred: bool,
    /// Pinned by you.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
    /// Reactions: who ("me" or a name) and the emoji.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<(String, String)>,
    /// When it disappears (ms since epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for MessageExtras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageExtras")
            .field("edited", &self.edited)
            .field("deleted", &self.deleted)
            .field("reactions", &self.reactions.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MessageView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageView")
            .field("id", &self.id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// What `kith send` returns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sent {
    /// The new message's id.
    pub id: String,
}

/// What `kith verify` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Verification {
    /// The contact.
    pub name: String,
    /// 60 digits in 12 groups, the same on both sides.
    pub safety_number: String,
    /// Our identity fingerprint.
    pub mine: String,
    /// Theirs.
    pub theirs: String,
}

/// A mailbox this device is registered with, with the quota figures it gave at the last
/// registration (0 when not known).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MailboxView {
    /// The mailbox's peer id.
    pub peer_id: String,
    /// How many envelopes it keeps for this device.
    pub quota: u32,
    /// How many ciphertext bytes it keeps for this device.
    #[serde(default)]
    pub quota_bytes: u64,
    /// Envelopes it held for this device then.
    #[serde(default)]
    pub used_messages: u64,
    /// Ciphertext bytes it held for this device then.
    #[serde(default)]
    pub used_bytes: u64,
    /// When the figures were given (ms since the epoch; 0 when never).
    #[serde(default)]
    pub updated_at: u64,
}

/// This device's push endpoint and what its mailboxes made of it. The URL itself is not
/// shown (it holds the push server's token): only its host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushView {
    /// Whether an endpoint is set.
    pub set: bool,
    /// Its host.
    pub host: Option<String>,
    /// Per mailbox, the outcome of the last time the endpoint was sent to it.
    pub mailboxes: Vec<PushMailboxView>,
}

/// What one mailbox answered to the push endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushMailboxView {
    /// The mailbox's peer id.
    pub peer_id: String,
    /// `accepted`, `cleared`, `refused: …`, `unreachable` or `not sent yet`.
    pub status: String,
}

/// Connection status of the node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeStatus {
    /// This device's peer id.
    pub peer_id: String,
    /// Peers connected now.
    pub connected_peers: Vec<String>,
    /// Items waiting in the outbox, over all devices (a mailbox's kept envelopes included).
    pub outbox: usize,
    /// Devices registered with this node's mailbox (0 when it is not one).
    pub mailbox_users: usize,
    /// Whether others can dial this node directly, as AutoNAT found: `public`, `private`
    /// or `unknown`.
    pub reachability: String,
    /// Relays holding a slot for this node (their peer ids).
    pub relays: Vec<String>,
    /// Serving as a relay: slots held for others, and connections relayed, now.
    pub relay_reservations: usize,
    /// See `relay_reservations`.
    pub relay_circuits: usize,
    /// TURN/STUN servers for calls learnt from our mailboxes (their URLs; credentials held).
    #[serde(default)]
    pub turn_servers: Vec<String>,
    /// This user's record in the DHT (what others look up to find this device and its
    /// mailboxes): `publishing` (a change, such as a new mailbox, is on its way),
    /// `published`, `retrying` (no DHT peer stored it; it goes out again soon) or
    /// `not published`.
    #[serde(default)]
    pub record: String,
}

/// A group as `kith groups` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupSummary {
    /// The group id (32 hex digits); any unique prefix of 4 or more names it in commands.
    pub id: String,
    /// Its name.
    pub name: String,
    /// How many members it has.
    pub members: usize,
    /// This user is an admin.
    pub admin: bool,
    /// This user is still a member (false after leaving or being removed).
    pub active: bool,
    /// Messages not read yet.
    pub unread: usize,
    /// Archived (`kith archive --group`).
    #[serde(default)]
    pub archived: bool,
    /// Muted (`kith mute --group`).
    #[serde(default)]
    pub muted: bool,
    /// A message not read yet names this user (`@name`).
    #[serde(default)]
    pub mentioned: bool,
}

/// A member as `kith group info` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberView {
    /// The contact name ("me" for this user; `~xxxx` for people not in the contacts).
    pub name: String,
    /// Identity fingerprint.
    pub identity: String,
    /// An admin of the group.
    pub admin: bool,
}

/// What `kith group info` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupView {
    /// The group id (32 hex digits).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Members, admins first.
    pub members: Vec<MemberView>,
    /// This user is an admin.
    pub admin: bool,
    /// This user is still a member.
    pub active: bool,
    /// Group frames this node holds (to give to members who missed them).
    pub frames: u64,
    /// Frames held that this node cannot open (yet, or ever: sent before it joined or after
    /// it left).
    pub undecryptable: u64,
}

/// One line of a group's history: a message or a membership change.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupItemView {
    /// `message` or `event`.
    pub kind: String,
    /// Message id (ULID text; the op hash for events).
    pub id: String,
    /// "me" or the member's name.
    pub from: String,
    /// The text (for events, what happened: "Ada added Bob").
    pub text: String,
    /// Outgoing messages: pending, sent, delivered (to every member) or read (by every
    /// member). Incoming: delivered or read.
    pub status: String,
    /// Outgoing: members who have it.
    pub delivered: u32,
    /// Outgoing: members who read it.
    pub read: u32,
    /// Outgoing: members it went to.
    pub of: u32,
    /// When the sender wrote it (ms since the epoch).
    pub sent_at: u64,
    /// The file it carries, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentView>,
    /// Replies, reactions, edits, deletes, marks.
    #[serde(flatten, default)]
    pub extras: MessageExtras,
    /// The sender named this user in it (`@name`).
    #[serde(default)]
    pub mentioned: bool,
}

impl std::fmt::Debug for GroupItemView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupItemView")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Something that happened, streamed by `kith watch`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A new incoming message.
    Message {
        /// The contact's name.
        contact: String,
        /// Message id.
        id: String,
        /// The text.
        text: String,
        /// Sender's time (ms).
        sent_at: u64,
    },
    /// An outgoing message's state rose.
    Status {
        /// The contact's name.
        contact: String,
        /// Message id.
        id: String,
        /// New state.
        status: String,
    },
    /// Someone not in the contacts wrote; they were added under a provisional name.
    NewContact {
        /// The provisional name.
        contact: String,
        /// Identity fingerprint.
        identity: String,
    },
    /// A peer presented keys that do not match the contact's identity.
    IdentityWarning {
        /// The contact's name.
        contact: String,
        /// What was wrong.
        detail: String,
    },
    /// Something the user should know about delivery to a contact (their mailbox is full).
    Notice {
        /// The contact's name.
        contact: String,
        /// What happened, in words.
        detail: String,
    },
    /// A contact came online or went offline.
    Presence {
        /// The contact's name.
        contact: String,
        /// Online now.
        online: bool,
        /// When last seen (ms), if they share it.
        last_seen: Option<u64>,
    },
    /// A contact started or stopped typing (or recording) to you.
    Typing {
        /// The contact's name.
        contact: String,
        /// `typing`, `recording` or `stopped`.
        state: String,
    },
    /// A contact's profile changed.
    Profile {
        /// The contact's name.
        contact: String,
        /// The name in their profile.
        name: String,
        /// Their about text.
        about: String,
        /// The file holding their photo.
        avatar: Option<String>,
    },
    /// A new message in a group.
    GroupMessage {
        /// The group's name.
        group: String,
        /// The group id.
        group_id: String,
        /// The sender's name.
        from: String,
        /// Message id.
        id: String,
        /// The text.
        text: String,
        /// Sender's time (ms).
        sent_at: u64,
        /// The sender named this user in it (`@name`).
        #[serde(default)]
        mentioned: bool,
    },
    /// Receipts for one of this user's group messages changed.
    GroupStatus {
        /// The group's name.
        group: String,
        /// Message id.
        id: String,
        /// Members who have it.
        delivered: u32,
        /// Members who read it.
        read: u32,
        /// Members it went to.
        of: u32,
    },
    /// A group changed (someone added, removed, renamed ...).
    GroupChanged {
        /// The group's name.
        group: String,
        /// What happened, in words.
        text: String,
    },
    /// A call's state changed: `connecting`, `ringing`, `connected`, `reconnecting`,
    /// `ended` (with how).
    Call {
        /// The call id.
        call: String,
        /// The contact's name.
        contact: String,
        /// `incoming` or `outgoing`.
        direction: String,
        /// The new state.
        state: String,
        /// When ended: `hung_up`, `remote_hung_up`, `declined`, `busy`, `no_answer`,
        /// `missed`, `cancelled`, `failed` (never connected) or `lost` (connected, then the
        /// link was gone).
        outcome: Option<String>,
        /// A group call: the group's name. Its states are the call's, and
        /// `member_joined`, `member_reconnecting` and `member_left` for the member named in
        /// `contact`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// Live quality of the call going on (every two seconds while connected).
    CallQuality {
        /// The call id.
        call: String,
        /// Round-trip time, ms.
        rtt_ms: u32,
        /// Packets lost of those expected from the peer, per thousand.
        loss_permille: u32,
        /// Jitter of what arrives, ms.
        jitter_ms: u32,
        /// Received bitrate, kbit/s.
        recv_kbps: u32,
        /// Sent bitrate, kbit/s.
        send_kbps: u32,
        /// Audio packets received so far.
        packets: u64,
    },
    /// A file's transfer moved on: `downloading` (with a percentage), `ready` or `failed`.
    Media {
        /// The contact's name (for `uploading`: the contact whose device fetched it).
        contact: String,
        /// The message id.
        id: String,
        /// waiting, downloading, ready or failed; on the sender's side, uploading.
        state: String,
        /// How much is here, 0 to 100 (uploading: how much of the file that contact's
        /// device was sent).
        percent: u8,
    },
    /// A message action from someone else changed a message or a chat (a reaction, an
    /// edit, a delete, a disappearing timer).
    MessageChanged {
        /// The contact's name or the group's name.
        chat: String,
        /// Who did it.
        from: String,
        /// The message id (empty for a chat setting).
        id: String,
        /// `react`, `edit`, `delete` or `disappear`.
        change: String,
    },
    /// A contact posted a status update (a story), or took one back (`deleted`).
    Story {
        /// The contact's name.
        from: String,
        /// The story's id.
        id: String,
        /// Taken back by its author.
        deleted: bool,
    },
    /// A contact viewed one of this user's stories.
    StoryViewed {
        /// The contact's name.
        by: String,
        /// The story's id.
        id: String,
    },
    /// A member started or stopped typing (or recording) in a group; `stopped` also when
    /// the indicator ran out.
    GroupTyping {
        /// The group's name.
        group: String,
        /// The group id.
        group_id: String,
        /// The member's name (a contact's name, or `~` and a fingerprint).
        member: String,
        /// `typing`, `recording` or `stopped`.
        state: String,
    },
    /// The history from the device that approved this one came further (`devices.history`).
    History {
        /// `receiving` or `done`.
        state: String,
        /// Conversations handed over entirely.
        conversations_done: u32,
        /// Conversations in all.
        conversations: u32,
        /// Messages walked.
        messages_done: u64,
        /// Messages in all.
        messages: u64,
    },
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Message { id, .. } => write!(f, "Message({id})"),
            Event::Status { id, status, .. } => write!(f, "Status({id}, {status})"),
            Event::NewContact { identity, .. } => write!(f, "NewContact({identity})"),
            Event::IdentityWarning { .. } => f.write_str("IdentityWarning"),
            Event::Presence { online, .. } => write!(f, "Presence({online})"),
            Event::Notice { .. } => f.write_str("Notice"),
            Event::MessageChanged { id, change, .. } => write!(f, "MessageChanged({id}, {change})"),
            Event::Story { id, deleted, .. } => write!(f, "Story({id}, {deleted})"),
            Event::StoryViewed { id, .. } => write!(f, "StoryViewed({id})"),
            Event::GroupTyping { state, .. } => write!(f, "GroupTyping({state})"),
            Event::History {
                messages_done,
                messages,
                ..
            } => write!(f, "History({messages_done}/{messages})"),
            Event::Typing { state, .. } => write!(f, "Typing({state})"),
            Event::Profile { .. } => f.write_str("Profile"),
            Event::GroupMessage { id, .. } => write!(f, "GroupMessage({id})"),
            Event::GroupStatus {
                id,
                delivered,
                read,
                ..
            } => write!(f, "GroupStatus({id}, {delivered}, {read})"),
            Event::GroupChanged { .. } => f.write_str("GroupChanged"),
            Event::Call { call, state, .. } => write!(f, "Call({call}, {state})"),
            Event::CallQuality { call, .. } => write!(f, "CallQuality({call})"),
            Event::Media {
                id, state, percent, ..
            } => write!(f, "Media({id}, {state}, {percent})"),
        }
    }
}

/// What fails a whole batch: its transaction is rolled back and nothing in it is
/// acknowledged (callers get `Internal`, peers `Refused(Internal)` and retry), and the Olm
/// state is reloaded from the store. An [`EngineError`] is the other kind of failure: an
/// answer to one caller inside a batch that goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Fatal {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] kith_store::StoreError),
    /// A value could not be encoded.
    #[error("cannot encode a value")]
    Encode(#[from] kith_proto::codec::EncodeError),
    /// A value this node stored does not decode.
    #[error("a stored value does not decode")]
    Decode(#[from] kith_proto::codec::DecodeError),
    /// Encrypting failed (a broken session or account).
    #[error("encryption failed")]
    Crypto(#[from] kith_crypto::CryptoError),
    /// A bug: something reached a place it never should.
    #[error("internal bug: {0}")]
    Bug(&'static str),
}

/// A rule's result inside a batch: the answer for its caller, or [`Fatal`] for the batch.
pub(crate) type Outcome<T> = Result<Result<T, EngineError>, Fatal>;

fn is_zero(n: &u64) -> bool {
    *n == 0
}
