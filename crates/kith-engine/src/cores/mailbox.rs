//! The mailbox service: the rules by which a node started as a mailbox (`kith up --mailbox`,
//! or `kith-bootstrap`) keeps sealed envelopes for the devices that register with it, and
//! the rate at which any node hands out its one-time pre-keys. A core with no I/O: it reads
//! no clock and touches neither the store nor the network. The engine actor reads from the
//! store what a rule needs, passes it in as plain values with the time, and carries out the
//! decision ([`Verdict`]: accept, refuse, or refuse and penalise the peer).
//!
//! Data flow at a mailbox:
//!
//! 1. A device connects and registers ([`MailboxService::register`]), on every connection.
//!    The checks, in order: this node serves as a mailbox; the invite token, when the
//!    operator requires one; the certificate names the connection's own peer id; the
//!    registrant proves it holds the certificate's Curve25519 key ([`KeyProof`]: an Olm
//!    pre-key message to the mailbox binding both peers and the key); a device the store
//!    knows stays bound to the identity it was first seen with; a key bound to another
//!    device is never rebound; there is room for one more device
//!    ([`MailboxConfig::max_devices`]) unless its key is registered already.
//!    A wrong token, another peer's certificate, a false proof or another device's key is
//!    penalised; a registration without a proof (the older form) is refused. An accepted registration
//!    marks the connection *registered here* until it closes
//!    ([`MailboxService::disconnected`]), and the answer tells the device its quota and what
//!    is kept for it ([`MailboxService::registration_answer`]).
//! 2. Anyone deposits envelopes for a registered device ([`MailboxService::deposit`]): one
//!    for a key not registered here is penalised; one that would take the device past its
//!    quota — [`MailboxConfig::quota`] envelopes, or [`MailboxConfig::max_bytes`] bytes of
//!    ciphertext — is refused as `MailboxFull`.
//! 3. A kept envelope goes out through the device's outbox, but only to a device registered
//!    on its current connection ([`MailboxService::hands_over`]); otherwise the outbox waits
//!    [`KEPT_MAIL_HOLD`] (offline devices are not dialled: they come to the mailbox).
//! 4. A deposit for a device that is away and gave a push endpoint wakes it
//!    ([`MailboxService::wake`]), at most once per [`WAKE_EVERY`] per device, for up to
//!    [`MAX_WAKE_ENTRIES`] devices. Setting a new endpoint (only by a registered device,
//!    checked against the operator's [`PushPolicy`], [`MailboxService::push_verdict`]) does
//!    not reset that limit: a device changing endpoints is woken no more often.
//! 5. Anyone may ask it to hold a media file for a registered device ([`media`]): charged
//!    by what is stored, limited per depositing peer, and dropped soon when it stops
//!    filling.
//! 6. Kept envelopes older than [`MailboxConfig::retention`] are dropped
//!    ([`MailboxService::expiry_cutoff`], [`is_expired`]).
//!
//! On any node: a peer claims a one-time pre-key to open a session; past
//! [`CLAIMS_PER_MINUTE`] claims a minute it gets only the fallback key
//! ([`MailboxService::may_claim_one_time_key`]), for up to [`MAX_CLAIM_ENTRIES`] peers.

use std::time::{Duration, Instant};

use kith_net::PeerId;
use kith_proto::record::DeviceCert;
use kith_proto::wire::{Refusal, RejectReason, Response};
use kith_store::OutboxItem;
use kith_types::{BoundedSet, RateLimit};

use crate::cores::delivery;
use crate::push::{EndpointError, PushPolicy, WAKE_EVERY, check_endpoint};

/// Most envelopes a mailbox keeps for one registered device, by default.
pub const MAILBOX_QUOTA: usize = 10_000;
/// Most ciphertext bytes a mailbox keeps for one registered device, by default (256 MiB).
pub const MAILBOX_QUOTA_BYTES: u64 = 256 << 20;
/// Most devices a mailbox serves at once, by default.
pub const MAILBOX_MAX_DEVICES: usize = 100_000;
/// Most devices of one identity a mailbox serves, by default.
pub const MAILBOX_DEVICES_PER_IDENTITY: usize = 8;
/// Most group topics one device may make a mailbox keep that no other device watches, by
/// default (an eighth of what a mailbox can keep, `crate::cores::watch::MAX_MAILBOX_TOPICS`).
pub const MAILBOX_TOPICS_PER_DEVICE: usize = 128;
/// How long a mailbox keeps an envelope for an offline device, by default.
pub const MAILBOX_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most sealed media bytes a mailbox keeps for one registered device, by default (1 GiB).
pub const MAILBOX_MEDIA_BYTES: u64 = 1 << 30;
/// Most media files a mailbox keeps for one registered device, by default.
pub const MAILBOX_MEDIA_FILES: usize = 256;
/// How long a mailbox keeps a media file for a device, by default.
pub const MAILBOX_MEDIA_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
/// Why a peer is penalised.
pub const BAD_HELD_CHUNK: &str = "media chunk for a mailbox that fails its check";
/// Most devices whose last wake-up time a mailbox remembers (for the rate limit).
pub const MAX_WAKE_ENTRIES: usize = 65_536;
/// Most connections a mailbox remembers as registered (as many as peers it tracks).
pub const MAX_REGISTERED_HERE: usize = 65_536;
/// Pre-key claims one peer may make per minute before it only gets the fallback key.
pub const CLAIMS_PER_MINUTE: u32 = 10;
/// The window of [`CLAIMS_PER_MINUTE`].
pub const CLAIM_WINDOW: Duration = Duration::from_secs(60);
/// Most peers tracked for pre-key claim rate limits.
pub const MAX_CLAIM_ENTRIES: usize = 4096;
/// How long the outbox of a device not registered on its current connection waits before
/// kept mail is offered again (it registers on every connection, which ends the wait).
pub const KEPT_MAIL_HOLD: Duration = delivery::MAX_BACKOFF;

/// Why a peer is penalised.
pub const WRONG_TOKEN: &str = "mailbox registration with a wrong token";
/// Why a peer is penalised.
pub const ANOTHER_PEER: &str = "registration for another peer";
/// Why a peer is penalised.
pub const NO_KEY_PROOF: &str = "registration without proof of holding the key";
/// Why a peer is penalised.
pub const KEY_TAKEN: &str = "registration for a key bound to another device";
/// Why a peer is penalised.
pub const NOT_REGISTERED: &str = "envelope for another device";

pub use kith_types::DeviceKey;

/// How a node serves as a mailbox.
#[derive(Clone)]
pub struct MailboxConfig {
    /// How long an envelope is kept for an offline device.
    pub retention: Duration,
    /// Most envelopes kept per registered device.
    pub quota: usize,
    /// When set, a device must present one of these tokens to register.
    pub tokens: Option<Vec<String>>,
    /// Most devices registered at once; more are refused as busy.
    pub max_devices: usize,
    /// Most devices of one identity registered at once; more are refused as busy.
    pub max_devices_per_identity: usize,
    /// Most group topics one device may have kept that no other device watches; a watch
    /// past that is refused as busy.
    pub topics_per_device: usize,
    /// Most ciphertext bytes kept per registered device.
    pub max_bytes: u64,
    /// Which push endpoints wake-ups may go to.
    pub push: PushPolicy,
    /// The operator's TURN server, whose credentials registered devices may ask for.
    pub turn: Option<crate::turn::TurnOffer>,
    /// Most sealed media bytes kept per registered device (files whose senders could not
    /// reach it: `media/held/`).
    pub media_bytes: u64,
    /// Most media files kept per registered device.
    pub media_files: usize,
    /// How long a media file is kept for a device that does not fetch it.
    pub media_retention: Duration,
}

/// Invite tokens are secrets: Debug shows how many there are, never what they are.
impl std::fmt::Debug for MailboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxConfig")
            .field("retention", &self.retention)
            .field("quota", &self.quota)
            .field("tokens", &self.tokens.as_ref().map(Vec::len))
            .field("max_devices", &self.max_devices)
            .field("max_devices_per_identity", &self.max_devices_per_identity)
            .field("topics_per_device", &self.topics_per_device)
            .field("max_bytes", &self.max_bytes)
            .field("push", &self.push)
            .field("turn", &self.turn)
            .field("media_bytes", &self.media_bytes)
            .field("media_files", &self.media_files)
            .field("media_retention", &self.media_retention)
            .finish()
    }
}

impl Default for MailboxConfig {
    fn default() -> Self {
        Self {
            retention: MAILBOX_RETENTION,
            quota: MAILBOX_QUOTA,
            tokens: None,
            max_devices: MAILBOX_MAX_DEVICES,
            max_devices_per_identity: MAILBOX_DEVICES_PER_IDENTITY,
            topics_per_device: MAILBOX_TOPICS_PER_DEVICE,
            max_bytes: MAILBOX_QUOTA_BYTES,
            push: PushPolicy::default(),
            turn: None,
            media_bytes: MAILBOX_MEDIA_BYTES,
            media_files: MAILBOX_MEDIA_FILES,
            media_retention: MAILBOX_MEDIA_RETENTION,
        }
    }
}

/// What to do with a request: accept it (with what the acceptance names), refuse it, or
/// refuse it and penalise the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<R, A = ()> {
    /// Carry it out.
    Accept(A),
    /// Answer with this refusal.
    Refuse(R),
    /// Answer with this refusal and penalise the peer, for this reason.
    Penalize(R, &'static str),
}

/// A registration request, with what the store knows about the device.
#[derive(Clone, Copy)]
pub struct Registration<'a> {
    /// The peer on the connection the request came over.
    pub peer: PeerId,
    /// The certificate the device presented.
    pub cert: &'a DeviceCert,
    /// The invite token it presented.
    pub token: Option<&'a str>,
    /// The identity the store binds the certificate's device to, if it knows the device.
    pub bound_to: Option<kith_types::IdentityKey>,
    /// Whether the certificate's Curve25519 key is registered here already.
    pub key_registered: bool,
    /// Whether the key is bound to another device (registered here by it, or known as its
    /// key): never rebound.
    pub key_elsewhere: bool,
    /// The registrant's proof that it holds the key.
    pub proof: KeyProof,
    /// How many devices are registered here.
    pub devices: usize,
    /// How many devices of the certificate's identity are registered here (counted up to
    /// [`MailboxConfig::max_devices_per_identity`]).
    pub identity_devices: usize,
}

/// The invite token is a secret: Debug shows only whether there is one.
impl std::fmt::Debug for Registration<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("peer", &self.peer)
            .field("cert", &self.cert)
            .field("token", &self.token.map(|_| "<secret>"))
            .field("bound_to", &self.bound_to.is_some())
            .field("key_registered", &self.key_registered)
            .field("key_elsewhere", &self.key_elsewhere)
            .field("proof", &self.proof)
            .field("devices", &self.devices)
            .field("identity_devices", &self.identity_devices)
            .finish()
    }
}

/// A registrant's proof that it holds its certificate's Curve25519 key (an Olm pre-key
/// message to the mailbox; see docs/protocol.md, "Mailbox registration").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProof {
    /// None given (the old, unproven registration): refused, not penalised.
    Missing,
    /// Given, and it does not open or carries the wrong binding: penalised.
    Invalid,
    /// It opens and binds this mailbox, this connection's peer and the key.
    Valid,
}

/// What a mailbox keeps for one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kept {
    /// Envelopes in its outbox.
    pub messages: usize,
    /// Ciphertext bytes of the envelopes kept for it.
    pub bytes: u64,
}

/// What to do with a push endpoint a device sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushVerdict {
    /// Store it (or its removal).
    Set,
    /// Answer with this refusal.
    Refuse(Refusal),
    /// The endpoint breaks the operator's policy (answered as `EndpointRefused`).
    BadEndpoint(EndpointError),
}

/// The mailbox service's rules and state (and the pre-key claim limit every node keeps).
#[derive(Debug)]
pub struct MailboxService {
    /// Serving as a mailbox, and how.
    config: Option<MailboxConfig>,
    /// Connections on which a device registered (until they close).
    registered_here: BoundedSet<PeerId>,
    /// When each device was last woken.
    wakes: RateLimit<DeviceKey>,
    /// Pre-key claims per peer per minute.
    claims: RateLimit<PeerId>,
}

impl MailboxService {
    /// The service of a node that serves as a mailbox with `config`, or of one that does not
    /// (`None`: every mailbox request is refused; pre-key claims are still limited).
    pub fn new(config: Option<MailboxConfig>) -> Self {
        Self {
            config,
            registered_here: BoundedSet::new(MAX_REGISTERED_HERE),
            wakes: RateLimit::once_per(WAKE_EVERY, MAX_WAKE_ENTRIES),
            claims: RateLimit::new(CLAIMS_PER_MINUTE, CLAIM_WINDOW, MAX_CLAIM_ENTRIES),
        }
    }

    /// How this node serves as a mailbox, if it does.
    pub fn config(&self) -> Option<&MailboxConfig> {
        self.config.as_ref()
    }

    /// Whether this node serves as a mailbox.
    pub fn is_serving(&self) -> bool {
        self.config.is_some()
    }

    /// Decides a registration; an accepted one marks `r.peer` registered here. The checks
    /// run in the order the module documentation gives; the first that fails decides.
    pub fn register(&mut self, r: &Registration<'_>) -> Verdict<Refusal> {
        let Some(cfg) = &self.config else {
            return Verdict::Refuse(Refusal::Invalid);
        };
        if let Some(tokens) = &cfg.tokens
            && !r.token.is_some_and(|t| tokens.iter().any(|k| k == t))
        {
            return Verdict::Penalize(Refusal::Unauthorized, WRONG_TOKEN);
        }
        if r.cert.peer_id != r.peer.to_bytes() {
            return Verdict::Penalize(Refusal::Invalid, ANOTHER_PEER);
        }
        match r.proof {
            KeyProof::Valid => {}
            KeyProof::Missing => return Verdict::Refuse(Refusal::Invalid),
            KeyProof::Invalid => return Verdict::Penalize(Refusal::Invalid, NO_KEY_PROOF),
        }
        if r.bound_to.is_some_and(|id| id != r.cert.identity) {
            return Verdict::Refuse(Refusal::Invalid);
        }
        if r.key_elsewhere {
            return Verdict::Penalize(Refusal::Invalid, KEY_TAKEN);
        }
        if !r.key_registered
            && (r.identity_devices >= cfg.max_devices_per_identity || r.devices >= cfg.max_devices)
        {
            return Verdict::Refuse(Refusal::Busy);
        }
        self.registered_here.insert(r.peer);
        Verdict::Accept(())
    }

    /// The answer to an accepted registration: the device's quota and what is kept for it.
    pub fn registration_answer(&self, kept: Kept) -> Response {
        let Some(cfg) = &self.config else {
            return Response::Refused(Refusal::Invalid);
        };
        Response::Registration {
            max_messages: clamp_u32(cfg.quota),
            max_bytes: cfg.max_bytes,
            used_messages: clamp_u32(kept.messages),
            used_bytes: kept.bytes,
        }
    }

    /// The answer to a device's [`kith_proto::wire::Request::TurnCredentials`] at `now_s`
    /// (Unix seconds): credentials only for a device registered on this connection; an
    /// empty list where the operator runs no TURN server.
    pub fn turn_answer(&self, peer: &PeerId, now_s: u64) -> Response {
        let Some(cfg) = &self.config else {
            return Response::Refused(Refusal::Invalid);
        };
        if !self.registered_here.contains(peer) {
            return Response::Refused(Refusal::Unauthorized);
        }
        let servers = cfg
            .turn
            .iter()
            .map(|offer| crate::turn::issue(offer, &peer.to_base58(), now_s))
            .collect();
        Response::TurnServers { servers }
    }

    /// The connection to `peer` closed: it is no longer registered here.
    pub fn disconnected(&mut self, peer: &PeerId) {
        self.registered_here.remove(peer);
    }

    /// The connections devices registered on (kept open while mail may come for them).
    pub fn registered_peers(&self) -> Vec<PeerId> {
        self.registered_here.iter().copied().collect()
    }

    /// Whether the head of a device's outbox may go to `peer` now: always, except kept mail
    /// at a mailbox, which goes only to a device registered on its current connection (its
    /// registration answer has then told it what was kept). When this says no, the outbox
    /// waits [`KEPT_MAIL_HOLD`].
    pub fn hands_over(&self, peer: &PeerId, head_is_kept_mail: bool) -> bool {
        !self.is_serving() || !head_is_kept_mail || self.registered_here.contains(peer)
    }

    /// Decides a deposit of `size` ciphertext bytes. `to` is the device registered here
    /// under the envelope's key, with what is kept for it already (`None` when the key is
    /// not registered here); an accepted deposit is kept for that device.
    pub fn deposit(
        &self,
        to: Option<(DeviceKey, Kept)>,
        size: u64,
    ) -> Verdict<RejectReason, DeviceKey> {
        let (Some(cfg), Some((dev, kept))) = (&self.config, to) else {
            return Verdict::Penalize(RejectReason::WrongDevice, NOT_REGISTERED);
        };
        if kept.messages >= cfg.quota || kept.bytes.saturating_add(size) > cfg.max_bytes {
            return Verdict::Refuse(RejectReason::MailboxFull);
        }
        Verdict::Accept(dev)
    }

    /// Until when a media file accepted at `now_ms` is kept once filled (see [`media`]).
    pub fn held_until(&self, now_ms: u64) -> u64 {
        let keep = self.config.as_ref().map_or(0, |c| {
            u64::try_from(c.media_retention.as_millis()).unwrap_or(u64::MAX)
        });
        now_ms.saturating_add(keep)
    }

    /// Whether `dev` could be woken at `now` (none sent in the last [`WAKE_EVERY`]), so that
    /// the caller reads what [`Self::wake`] needs only then. Counts nothing.
    pub fn wake_due(&self, dev: &DeviceKey, now: Instant) -> bool {
        self.is_serving() && self.wakes.would_allow(dev, now)
    }

    /// A deposit for `dev` was accepted: whether to wake it at `now` — it gave an endpoint,
    /// it is `away` (known, and not connected here), and it was not woken in the last
    /// [`WAKE_EVERY`]. Records the wake-up if so.
    pub fn wake(&mut self, dev: DeviceKey, has_endpoint: bool, away: bool, now: Instant) -> bool {
        self.is_serving() && has_endpoint && away && self.wakes.allow(dev, now)
    }

    /// Decides a push endpoint (`None` clears it) set by a device; `registered` tells whether
    /// the connection's device is registered here.
    pub fn push_verdict(&self, registered: bool, endpoint: Option<&str>) -> PushVerdict {
        let Some(cfg) = &self.config else {
            return PushVerdict::Refuse(Refusal::Invalid);
        };
        // Only a registered device, known by the connection's peer id, may set its own.
        if !registered {
            return PushVerdict::Refuse(Refusal::Unauthorized);
        }
        if let Some(url) = endpoint
            && let Err(e) = check_endpoint(url, cfg.push)
        {
            return PushVerdict::BadEndpoint(e);
        }
        PushVerdict::Set
    }

    /// The time before which kept envelopes are dropped, given the wall clock `now_ms`
    /// (`None` when this node keeps none).
    pub fn expiry_cutoff(&self, now_ms: u64) -> Option<u64> {
        let cfg = self.config.as_ref()?;
        let retention = u64::try_from(cfg.retention.as_millis()).unwrap_or(u64::MAX);
        Some(now_ms.saturating_sub(retention))
    }

    /// A peer claims a pre-key at `now`: whether it may have a one-time key (at most
    /// [`CLAIMS_PER_MINUTE`] a minute), or only the fallback key. Counts the claim.
    pub fn may_claim_one_time_key(&mut self, peer: PeerId, now: Instant) -> bool {
        self.claims.allow(peer, now)
    }
}

/// Checks an operator's invite tokens (`kith up --mailbox-token`, kith-bootstrap's
/// `invite_tokens`): at least one, each 8 to 256 characters.
pub fn check_invite_tokens(tokens: &[String]) -> Result<(), &'static str> {
    if tokens.is_empty() {
        return Err("invite-only registration needs at least one invite token");
    }
    if tokens.iter().any(|t| t.len() < 8 || t.len() > 256) {
        return Err("invite tokens must be 8 to 256 characters");
    }
    Ok(())
}

/// Whether an outbox item is kept mail queued before `cutoff_ms` (see
/// [`MailboxService::expiry_cutoff`]). Only kept mail expires: the node's own messages have
/// a conversation.
pub fn is_expired(item: &OutboxItem, cutoff_ms: u64) -> bool {
    item.conversation == kith_store::NO_CONVERSATION && item.queued_ms < cutoff_ms
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub mod media;
#[cfg(test)]
mod tests;
