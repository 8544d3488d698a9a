//! Frames of the `/kith/msg/1` request-response protocol, and the sealed payload inside an
//! envelope.
//!
//! On a stream a frame is `[u32 big-endian length][version byte][bincode body]`; the length is
//! checked against [`MAX_FRAME`] before the body is read. Envelopes carry only the recipient
//! device's Curve25519 key and Olm ciphertext: the sender's identity, the message id and the
//! text travel inside the ciphertext (sealed sender).

use kith_types::{CurveKey, GroupId};
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError, EncodeError};
use crate::group::GroupOp;
use crate::groupwire::{GroupFrame, SenderMark};
use crate::limits::{MAX_SYNC_FRAMES, MAX_SYNC_MARKS};
use crate::record::{DeviceCert, PrekeyBundle};

pub use crate::limits::{MAX_CIPHERTEXT, MAX_TEXT};
pub use crate::push_endpoint::{PushEndpoint, check_push_endpoint};

/// The libp2p protocol name.
pub const PROTOCOL: &str = "/kith/msg/1";
/// The frame version this node speaks.
pub const WIRE_VERSION: u8 = 1;
/// The highest [`Envelope::kind`] this node reads (2: sealed to the recipient).
pub const MAX_ENVELOPE_KIND: u8 = 2;
/// Largest frame, length prefix excluded.
pub const MAX_FRAME: usize = 1 << 20;
/// Most envelopes in one delivery request.
pub const MAX_BATCH: usize = 256;
/// Most message ids in one receipt.
pub const MAX_RECEIPT_IDS: usize = 1024;
/// Largest sealed payload (the Olm plaintext).
pub const MAX_SEALED: usize = MAX_CIPHERTEXT - 512;
/// Longest mailbox invite token.
pub const MAX_TOKEN: usize = 256;
/// Most bodies sealed together in one envelope.
pub const MAX_BODIES: usize = 256;
/// Most group ops in one [`Body::GroupUpdate`].
pub const MAX_UPDATE_OPS: usize = 256;
/// Most device certificates in one [`Body::GroupUpdate`].
pub const MAX_UPDATE_DEVICES: usize = 256;
/// Longest push endpoint URL, in bytes.
pub const MAX_PUSH_ENDPOINT: usize = 1024;
/// Most topics in one [`Request::Watch`].
pub const MAX_WATCH_TOPICS: usize = 256;
/// Longest topic name accepted in a request (a group topic is 39 bytes; see
/// [`crate::groupwire::is_group_topic`]).
pub const MAX_TOPIC_LEN: usize = 64;

/// A request from one node to another. `Debug` is hand-written: it never shows invite tokens
/// or push endpoints (which carry secrets).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Ask the device for a one-time key to open an Olm session with it.
    ClaimPrekey,
    /// Hand over envelopes, in order: for the receiving device itself, or, when it is a
    /// mailbox, for devices registered with it.
    Deliver { envelopes: Vec<Envelope> },
    /// Ask a mailbox to keep envelopes for this device (the certificate's peer id must be the
    /// connection's).
    Register {
        cert: DeviceCert,
        /// An invite token, for mailboxes that require one.
        token: Option<String>,
    },
    /// Ask a mailbox this device is registered with to wake it through a push endpoint (an
    /// http(s) URL, UnifiedPush style) when envelopes arrive while it is away; `None` stops
    /// the wake-ups. Checked by [`check_push_endpoint`].
    SetPush { endpoint: Option<String> },
    /// Ask a member of a group for the group's frames this member lacks: every frame of
    /// each listed sender after its mark. Only members are answered.
    GroupSync {
        /// The group's id.
        group: GroupId,
        /// What the asker holds, per sender device.
        have: Vec<SenderMark>,
    },
    /// Ask a mailbox this device is registered with to keep the frames published on these
    /// group topics while the device is away (replaces the set given before; at most
    /// [`MAX_WATCH_TOPICS`], each a group topic). Only topics travel: the mailbox never
    /// learns a group id.
    Watch { topics: Vec<String> },
    /// Ask a mailbox for the frames it kept on a topic this device watches that the device
    /// lacks (frames of senders not listed, or after their mark); answered with
    /// [`Response::GroupFrames`].
    TopicSync {
        /// The group topic.
        topic: String,
        /// What the asker holds, per sender device.
        have: Vec<SenderMark>,
    },
    /// Ask a mailbox to keep envelopes for this device, proving that the device holds the
    /// secret of its certificate's Curve25519 key: `proof` is an Olm pre-key message to the
    /// mailbox, made from a pre-key the mailbox handed out, whose plaintext is
    /// [`registration_binding`] (docs/protocol.md, "Mailbox registration"). Mailboxes refuse
    /// the unproven [`Request::Register`].
    RegisterProven {
        cert: DeviceCert,
        /// An invite token, for mailboxes that require one.
        token: Option<String>,
        /// The proof (at most [`MAX_KEY_PROOF`] bytes).
        #[serde(with = "serde_bytes")]
        proof: Vec<u8>,
    },
    /// Ask a mailbox this device is registered with (on this connection) for time-limited
    /// credentials to the TURN/STUN servers its operator runs, for calls' relay candidates.
    /// Answered with [`Response::TurnServers`] (an empty list where the operator runs none),
    /// or refused as unauthorized for a device not registered here.
    TurnCredentials,
    /// A step of linking a new device (docs/protocol.md, "Linked devices").
    Link(crate::link::LinkMsg),
}

/// Most bytes of a registration's key proof (an Olm pre-key message of a short plaintext).
pub const MAX_KEY_PROOF: usize = 1024;

/// What a registering device encrypts to its mailbox to prove it holds its Curve25519 key:
/// a domain tag, the mailbox's peer id, the device's peer id (both length-prefixed) and the
/// key. Bound to both peers, a proof is worth nothing on another connection or mailbox.
pub fn registration_binding(mailbox: &[u8], device: &[u8], curve: &CurveKey) -> Vec<u8> {
    let mut out = b"kith-mailbox-register-v1".to_vec();
    for id in [mailbox, device] {
        out.extend_from_slice(&u32::try_from(id.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(id);
    }
    out.extend_from_slice(curve.as_bytes());
    out
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::ClaimPrekey => f.write_str("ClaimPrekey"),
            Request::Deliver { envelopes } => f
                .debug_struct("Deliver")
                .field("envelopes", &envelopes.len())
                .finish(),
            Request::Register { token, .. } => f
                .debug_struct("Register")
                .field("token", &token.as_ref().map(|_| "<redacted>"))
                .finish_non_exhaustive(),
            Request::RegisterProven { token, .. } => f
                .debug_struct("RegisterProven")
                .field("token", &token.as_ref().map(|_| "<redacted>"))
                .finish_non_exhaustive(),
            Request::SetPush { endpoint } => f
                .debug_struct("SetPush")
                .field("endpoint", &endpoint.as_ref().map(|_| "<redacted>"))
                .finish(),
            Request::GroupSync { have, .. } => f
                .debug_struct("GroupSync")
                .field("have", &have.len())
                .finish_non_exhaustive(),
            // Topics are hashes that name no group, but a list of them still says which
            // groups one device is in: only the count is shown.
            Request::Watch { topics } => f
                .debug_struct("Watch")
                .field("topics", &topics.len())
                .finish(),
            Request::TopicSync { have, .. } => f
                .debug_struct("TopicSync")
                .field("have", &have.len())
                .finish_non_exhaustive(),
            Request::TurnCredentials => f.write_str("TurnCredentials"),
            Request::Link(m) => write!(f, "Link({m:?})"),
        }
    }
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// A signed pre-key bundle.
    Prekey(PrekeyBundle),
    /// One result per envelope, in the order they were sent. Given only after the receiver's
    /// store has committed every envelope marked stored.
    Delivered { results: Vec<DeliveryResult> },

    /// The request was refused as a whole.
    Refused(Refusal),
    /// A mailbox registration was accepted; the mailbox keeps up to this many envelopes.
    /// (Older mailboxes; newer ones answer [`Response::Registration`].)
    Registered { quota: u32 },
    /// A mailbox registration was accepted, with the device's quotas and what it uses now.
    Registration {
        /// Most envelopes kept for the device.
        max_messages: u32,
        /// Most ciphertext bytes kept for the device.
        max_bytes: u64,
        /// Envelopes kept for it now.
        used_messages: u32,
        /// Ciphertext bytes kept for it now.
        used_bytes: u64,
    },
    /// A mailbox stored (or cleared) the device's push endpoint.
    PushSet,
    /// Group frames the asker lacked, oldest first per sender; `more` when the answer was
    /// cut at its size limit (ask again).
    GroupFrames { frames: Vec<GroupFrame>, more: bool },
    /// A mailbox took a device's [`Request::Watch`]: it keeps the frames of `topics` topics
    /// for it now.
    Watching { topics: u32 },
    /// The answer to [`Request::TurnCredentials`]: the operator's TURN/STUN servers with
    /// credentials for this device (at most [`MAX_TURN_SERVERS`]; see [`TurnServer::check`]).
    TurnServers { servers: Vec<TurnServer> },
    /// The answer to a [`Request::Link`] step.
    Link(crate::link::LinkMsg),
}

/// Most servers in one [`Response::TurnServers`].
pub const MAX_TURN_SERVERS: usize = 4;
/// Most URLs of one [`TurnServer`].
pub const MAX_TURN_URLS: usize = 4;
/// Longest URL, user name or credential of a [`TurnServer`], in bytes.
pub const MAX_TURN_FIELD: usize = 256;

/// One TURN (or STUN) server with time-limited credentials (the TURN REST scheme: the user
/// name is `expiry:user`, the credential an HMAC of it under a secret the server shares with
/// the mailbox that hands it out). `Debug` never shows the credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnServer {
    /// `turn:host:port?transport=udp` / `stun:host:port` URLs.
    pub urls: Vec<String>,
    /// The user name (empty for a STUN-only server).
    pub username: String,
    /// The credential (empty for a STUN-only server).
    pub credential: String,
    /// When the credentials stop working (seconds since the Unix epoch).
    pub expires_s: u64,
}

impl TurnServer {
    /// Checks the bounds a receiver relies on: 1 to [`MAX_TURN_URLS`] URLs, each a `turn:`,
    /// `turns:` or `stun:` URL, and no field longer than [`MAX_TURN_FIELD`].
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.urls.is_empty() || self.urls.len() > MAX_TURN_URLS {
            return Err(DecodeError::Invalid("turn server urls"));
        }
        let fields = self.urls.iter().chain([&self.username, &self.credential]);
        if fields.clone().any(|f| f.len() > MAX_TURN_FIELD) {
            return Err(DecodeError::Invalid("turn server field too long"));
        }
        if !self
            .urls
            .iter()
            .all(|u| u.starts_with("turn:") || u.starts_with("turns:") || u.starts_with("stun:"))
        {
            return Err(DecodeError::Invalid("turn server url scheme"));
        }
        Ok(())
    }
}

impl std::fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnServer")
            .field("urls", &self.urls)
            .field("expires_s", &self.expires_s)
            .finish_non_exhaustive()
    }
}

/// What became of one delivered envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DeliveryResult {
    /// Stored durably now by the recipient device.
    Stored,
    /// Already stored before (a retry); durable all the same.
    Duplicate,
    /// Refused; the sender should not retry it as is.
    Rejected(RejectReason),
    /// Stored durably by a mailbox for the recipient device (not yet delivered). New
    /// variants go last: the variant index is the wire encoding.
    Accepted,
}

/// Why an envelope was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RejectReason {
    /// It names another device's key.
    WrongDevice,
    /// It could not be decrypted.
    Undecryptable,
    /// It decrypted to something malformed.
    Malformed,
    /// A mailbox holds too much for that device already; try another mailbox or later.
    MailboxFull,
}

/// Why a whole request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Refusal {
    /// The receiver is overloaded; retry later.
    Busy,
    /// The request broke a protocol rule.
    Invalid,
    /// The receiver's store failed; retry later.
    Internal,
    /// Not allowed (a wrong or missing mailbox invite token; a push endpoint from a device
    /// that is not registered).
    Unauthorized,
    /// The mailbox does not send wake-ups to that push endpoint (plain http, or a loopback,
    /// private or link-local address, unless its operator allows them).
    EndpointRefused,
}

/// An Olm message for one device.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The recipient device's Curve25519 key (a byte string, as `serde_bytes` wrote it).
    pub to_device: CurveKey,
    /// 0: an Olm pre-key message, 1: a normal Olm message, 2: either of them sealed once
    /// more to the recipient (`kith_crypto::seal`), what current nodes send. Kinds 0 and 1
    /// are still read, from nodes before the seal and from envelopes kept before it.
    pub kind: u8,
    /// The ciphertext.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("kind", &self.kind)
            .field("len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// A frame body: the version byte, then the value (shared by the request-response
/// protocols).
pub(crate) fn framed<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![version];
    out.extend_from_slice(&codec::encode(value)?);
    Ok(out)
}

/// Reads a frame body written by [`framed`]: the version must be `version`, the value at
/// most `max` bytes.
pub(crate) fn unframed<T: serde::de::DeserializeOwned>(
    version: u8,
    max: usize,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    let (&v, body) = bytes
        .split_first()
        .ok_or(DecodeError::Invalid("empty frame"))?;
    if v != version {
        return Err(DecodeError::UnsupportedVersion(v));
    }
    codec::decode(body, max)
}

fn frame<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    framed(WIRE_VERSION, value)
}

fn unframe<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    unframed(WIRE_VERSION, MAX_FRAME, bytes)
}

impl Request {
    /// Encodes the frame body (version byte and value).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        frame(self)
    }

    /// Decodes and validates a frame body.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let req: Request = unframe(bytes)?;
        if let Request::Register { cert, token } | Request::RegisterProven { cert, token, .. } =
            &req
        {
            cert.validate()?;
            if token.as_ref().is_some_and(|t| t.len() > MAX_TOKEN) {
                return Err(DecodeError::Invalid("token too long"));
            }
        }
        if let Request::RegisterProven { proof, .. } = &req
            && proof.len() > MAX_KEY_PROOF
        {
            return Err(DecodeError::Invalid("key proof too long"));
        }
        if let Request::SetPush {
            endpoint: Some(url),
        } = &req
        {
            check_push_endpoint(url)?;
        }
        if let Request::GroupSync { have, .. } = &req
            && have.len() > MAX_SYNC_MARKS
        {
            return Err(DecodeError::Invalid("too many sync marks"));
        }
        // Sizes only: whether each topic is a group topic is the mailbox's check (answered
        // `Refused(Invalid)`), so a device with a newer topic format is told, not struck.
        if let Request::Watch { topics } = &req
            && (topics.len() > MAX_WATCH_TOPICS || topics.iter().any(|t| t.len() > MAX_TOPIC_LEN))
        {
            return Err(DecodeError::Invalid("watch size"));
        }
        if let Request::TopicSync { topic, have } = &req
            && (topic.len() > MAX_TOPIC_LEN || have.len() > MAX_SYNC_MARKS)
        {
            return Err(DecodeError::Invalid("topic sync size"));
        }
        if let Request::Deliver { envelopes } = &req {
            if envelopes.is_empty() || envelopes.len() > MAX_BATCH {
                return Err(DecodeError::Invalid("batch size"));
            }
            for e in envelopes {
                if e.kind > MAX_ENVELOPE_KIND {
                    return Err(DecodeError::Invalid("envelope kind"));
                }
                if e.ciphertext.is_empty() || e.ciphertext.len() > MAX_CIPHERTEXT {
                    return Err(DecodeError::Invalid("ciphertext length"));
                }
            }
        }
        if let Request::Link(m) = &req {
            m.check()?;
        }
        Ok(req)
    }
}

impl Response {
    /// Encodes the frame body (version byte and value).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        frame(self)
    }

    /// Decodes and validates a frame body.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let resp: Response = unframe(bytes)?;
        if let Response::Delivered { results } = &resp
            && results.len() > MAX_BATCH
        {
            return Err(DecodeError::Invalid("batch size"));
        }
        if let Response::Link(m) = &resp {
            m.check()?;
        }
        if let Response::TurnServers { servers } = &resp {
            if servers.len() > MAX_TURN_SERVERS {
                return Err(DecodeError::Invalid("too many turn servers"));
            }
            for s in servers {
                s.check()?;
            }
        }
        if let Response::GroupFrames { frames, .. } = &resp {
            if frames.len() > MAX_SYNC_FRAMES {
                return Err(DecodeError::Invalid("too many frames"));
            }
            for f in frames {
                f.check()?;
            }
        }
        Ok(resp)
    }
}

/// What a receipt reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptKind {
    /// Stored durably by a recipient device.
    Delivered,
    /// Seen by the person.
    Read,
}

/// The content of a sealed message.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Body {
    /// A text message.
    Text {
        /// Sender-chosen, unique, time-sortable id.
        id: u128,
        /// When the sender wrote it (sender's clock, ms).
        sent_at_ms: u64,
        /// The text.
        text: String,
    },
    /// A receipt for messages the recipient had sent.
    Receipt {
        /// Delivered or read.
        kind: ReceiptKind,
        /// The message ids it covers.
        ids: Vec<u128>,
        /// When (receipt sender's clock, ms).
        at_ms: u64,
    },
    /// Membership ops of one group (for a new member: all of them, `Create` first) and the
    /// certificates of member devices the recipient may not know yet.
    GroupUpdate {
        /// Signed ops, checked by the recipient.
        ops: Vec<GroupOp>,
        /// Member devices (each certificate is signed by its owner's identity).
        devices: Vec<DeviceCert>,
    },
    /// The sender device's group session key (Megolm) for a group, from its frame `seq` on.
    GroupKey {
        /// The group.
        group: GroupId,
        /// The Megolm session key (secret).
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The first frame seq this key opens.
        seq: u64,
    },
    /// Receipts for group messages the recipient had sent.
    GroupReceipt {
        /// The group.
        group: GroupId,
        /// Delivered or read.
        kind: ReceiptKind,
        /// The message ids it covers.
        ids: Vec<u128>,
        /// When (receipt sender's clock, ms).
        at_ms: u64,
    },
    /// Ask a member for group ops this device lacks: the parents named by ops it holds
    /// (1 to [`MAX_UPDATE_OPS`] hashes). Answered with a [`Body::GroupUpdate`] of those it
    /// has; only current members are answered.
    GroupWant {
        /// The group.
        group: GroupId,
        /// The ops' hashes.
        ops: Vec<kith_types::OpHash>,
    },
    /// A call offer: the caller's WebRTC description (its DTLS fingerprint and ICE
    /// candidates inside), bound to the caller's identity by the session it travels in.
    CallOffer {
        /// The call's id (random, chosen by the caller).
        call: u128,
        /// When the caller dialled (caller's clock, ms): an offer older than the ringing
        /// time is shown as missed, not rung.
        sent_at_ms: u64,
        /// The SDP offer (at most [`MAX_CALL_SDP`] bytes).
        sdp: String,
        /// The caller asks for video too.
        video: bool,
    },
    /// The callee took the call: its WebRTC description.
    CallAnswer {
        /// The call.
        call: u128,
        /// The SDP answer (at most [`MAX_CALL_SDP`] bytes).
        sdp: String,
    },
    /// More ICE candidates for a call (trickle), each an SDP `candidate:` attribute.
    CallCandidates {
        /// The call.
        call: u128,
        /// 1 to [`MAX_CALL_CANDIDATES`] candidates of at most [`MAX_CANDIDATE_LEN`] bytes.
        candidates: Vec<String>,
    },
    /// The sender ended the call (or gave up ringing).
    CallHangup {
        /// The call.
        call: u128,
    },
    /// The callee did not take the call: declined, or already in another call (`busy`).
    CallDecline {
        /// The call.
        call: u128,
        /// Busy in another call rather than declined.
        busy: bool,
    },
    /// A file (photo, video, voice note, document): its manifest, with the key, and a
    /// caption. The file itself is fetched by its root over `/kith/media/1`
    /// ([`crate::media`]).
    Media {
        /// Sender-chosen, unique, time-sortable id.
        id: u128,
        /// When the sender wrote it (sender's clock, ms).
        sent_at_ms: u64,
        /// How to fetch, check and open the file.
        manifest: crate::media::Manifest,
        /// The caption (may be empty).
        caption: String,
    },
    /// A message action (reply, reaction, edit, delete, disappearing timer): see
    /// [`crate::chat`].
    Chat(crate::chat::ChatAction),
    /// Between one person's devices (and, a record, to contacts): see
    /// [`crate::link::DeviceSync`].
    Devices(crate::link::DeviceSync),
    /// A group call's signalling: see [`crate::group_call`].
    GroupCall(crate::group_call::GroupCallMsg),
}

/// Longest SDP a call offer or answer may carry (bytes).
pub const MAX_CALL_SDP: usize = 16 * 1024;
/// Most ICE candidates in one [`Body::CallCandidates`].
pub const MAX_CALL_CANDIDATES: usize = 32;
/// Longest ICE candidate (bytes).
pub const MAX_CANDIDATE_LEN: usize = 512;

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Text { id, .. } => write!(f, "Text {{ id: {id:x}, .. }}"),
            Body::Receipt { kind, ids, .. } => {
                write!(f, "Receipt {{ kind: {kind:?}, n: {} }}", ids.len())
            }
            Body::GroupUpdate { ops, devices } => write!(
                f,
                "GroupUpdate {{ ops: {}, devices: {} }}",
                ops.len(),
                devices.len()
            ),
            Body::GroupKey { seq, .. } => write!(f, "GroupKey {{ seq: {seq}, .. }}"),
            Body::GroupReceipt { kind, ids, .. } => {
                write!(f, "GroupReceipt {{ kind: {kind:?}, n: {} }}", ids.len())
            }
            Body::GroupWant { ops, .. } => write!(f, "GroupWant {{ n: {} }}", ops.len()),
            // Descriptions name addresses and keys: only their sizes are shown.
            Body::CallOffer { call, sdp, .. } => {
                write!(
                    f,
                    "CallOffer {{ call: {call:x}, sdp: {} bytes }}",
                    sdp.len()
                )
            }
            Body::CallAnswer { call, sdp } => {
                write!(
                    f,
                    "CallAnswer {{ call: {call:x}, sdp: {} bytes }}",
                    sdp.len()
                )
            }
            Body::CallCandidates { call, candidates } => write!(
                f,
                "CallCandidates {{ call: {call:x}, n: {} }}",
                candidates.len()
            ),
            Body::CallHangup { call } => write!(f, "CallHangup {{ call: {call:x} }}"),
            Body::CallDecline { call, busy } => {
                write!(f, "CallDecline {{ call: {call:x}, busy: {busy} }}")
            }
            Body::Media { id, manifest, .. } => {
                write!(f, "Media {{ id: {id:x}, {manifest:?}, .. }}")
            }
            Body::Chat(a) => write!(f, "Chat({a:?})"),
            Body::Devices(d) => write!(f, "Devices({d:?})"),
            Body::GroupCall(m) => write!(f, "GroupCall({m:?})"),
        }
    }
}

/// The plaintext inside an Olm message: one or more bodies, in the order they were written.
/// Messages queued together for a device are sealed together, so a burst costs one Olm
/// encryption rather than one per message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Format version (1).
    pub version: u8,
    /// The sender device's certificate: present until the session has been answered, so the
    /// recipient can bind the session to a person.
    pub sender: Option<DeviceCert>,
    /// The contents (1 to [`MAX_BODIES`]).
    pub bodies: Vec<Body>,
}

impl Sealed {
    /// Encodes the plaintext.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode(self)
    }

    /// Decodes a decrypted plaintext and checks its limits (not the sender's certificate).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let s: Sealed = codec::decode(bytes, MAX_SEALED)?;
        if s.version != 1 {
            return Err(DecodeError::UnsupportedVersion(s.version));
        }
        if s.bodies.is_empty() || s.bodies.len() > MAX_BODIES {
            return Err(DecodeError::Invalid("body count"));
        }
        for body in &s.bodies {
            match body {
                Body::Text { text, .. } if text.len() > MAX_TEXT => {
                    return Err(DecodeError::Invalid("text too long"));
                }
                Body::Receipt { ids, .. } | Body::GroupReceipt { ids, .. }
                    if ids.is_empty() || ids.len() > MAX_RECEIPT_IDS =>
                {
                    return Err(DecodeError::Invalid("receipt size"));
                }
                Body::GroupUpdate { ops, devices }
                    if ops.len() > MAX_UPDATE_OPS || devices.len() > MAX_UPDATE_DEVICES =>
                {
                    return Err(DecodeError::Invalid("group update size"));
                }
                Body::GroupKey { key, seq, .. } if key.len() > 512 || *seq == 0 => {
                    return Err(DecodeError::Invalid("group key"));
                }
                Body::GroupWant { ops, .. } if ops.is_empty() || ops.len() > MAX_UPDATE_OPS => {
                    return Err(DecodeError::Invalid("group want size"));
                }
                Body::CallOffer { sdp, .. } | Body::CallAnswer { sdp, .. }
                    if sdp.len() > MAX_CALL_SDP =>
                {
                    return Err(DecodeError::Invalid("call description too long"));
                }
                Body::CallCandidates { candidates, .. }
                    if candidates.is_empty()
                        || candidates.len() > MAX_CALL_CANDIDATES
                        || candidates.iter().any(|c| c.len() > MAX_CANDIDATE_LEN) =>
                {
                    return Err(DecodeError::Invalid("call candidates size"));
                }
                Body::Media {
                    manifest, caption, ..
                } => {
                    if caption.len() > MAX_TEXT {
                        return Err(DecodeError::Invalid("caption too long"));
                    }
                    manifest.check()?;
                }
                Body::Chat(a) => a.check()?,
                Body::Devices(d) => d.check()?,
                Body::GroupCall(m) => m.check()?,
                _ => {}
            }
        }
        // The sender's certificate is checked by the caller when it binds a new device
        // (`DeviceCert::validate`): for a known device the session already proves who it is,
        // and verifying a signature on every message would be wasted work.
        Ok(s)
    }
}

#[cfg(test)]
mod tests;
