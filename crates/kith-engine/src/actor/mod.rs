//! The engine actor: the one task that owns the store, the Olm state and the network
//! handle, and runs the messenger's rules.
//!
//! Where things live:
//!
//! - `handle.rs`: [`EngineHandle`], what callers hold; `table.rs`: every command, declared
//!   once; `config.rs`: how a node is started.
//! - `run.rs`: the loop, the batch (one write transaction per batch of commands and network
//!   events) and the effects carried out after its commit ([`After`]).
//! - `network.rs`: network events that need no write; `backlog.rs`: commands waiting for
//!   room in the network's queue.
//! - `pump.rs` with the delivery core (`crate::cores::delivery`): sending outboxes;
//!   `outbox.rs`: sealing and delivery answers; `inbound.rs`: opening what arrives;
//!   `commands.rs`: contacts, sending, marking read, by the rules of the contacts core
//!   (`crate::cores::contacts`), and mailbox registrations and pre-key claims served to
//!   others, by the rules of the mailbox core (`crate::cores::mailbox`), which also decides
//!   deposits, wake-ups, who receives kept mail, and its expiry.
//! - `records.rs`: our user record in the DHT; `mailboxes.rs`: our mailboxes and push
//!   endpoint; `watch.rs`: group topics kept at mailboxes; `presence.rs`: presence, typing,
//!   profiles, privacy, blocks; `groups.rs`: group chats; `views.rs`: what read commands show.
//!
//! The submodules are `impl` blocks on the one [`State`] (and [`Engine`]); the rules that
//! need no I/O move out into `crate::cores`, one protocol area at a time.

mod backlog;
mod backup;
mod calls;
pub(crate) mod chat;
mod commands;
mod config;
mod deposits;
mod devices;
mod group_calls;
mod group_typing;
mod groups;
mod handle;
mod held;
mod inbound;
mod mailboxes;
mod media;
mod media_save;
mod mentions;
mod network;
mod outbox;
mod prekeys;
mod presence;
mod pump;
mod records;
mod restored;
mod run;
mod scrub;
mod search;
mod stories;
mod story_photo;
pub(crate) mod table;
mod turn;
mod views;
mod watch;

use backlog::Backlog;
pub use calls::{CallConfig, MEDIA_EVENTS};
pub use config::{EngineConfig, ReachConfig};
#[cfg(feature = "test-hooks")]
use groups::GroupCmd;
use groups::Groups;
pub use groups::{GROUP_SYNC_EVERY, GroupChange, MAX_GROUPS};
use handle::Cmd;
pub use handle::EngineHandle;
use mailboxes::{encode_by_mailbox, load_by_mailbox, load_mailboxes, mailbox_from};
use presence::Social;
pub use presence::{HEARTBEAT, PRESENCE_TIMEOUT, TYPING_TTL};
pub use story_photo::set_story_lifetime_ms;
use table::{Call, Kind};
use views::keep_newest_texts;
use watch::Watching;
pub use watch::{MAILBOX_TOPIC_BYTES, MAILBOX_TOPIC_FRAMES, MAX_MAILBOX_TOPICS};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use kith_crypto::{Device, PeerSessions};
use kith_net::{Multiaddr, NetCommand, NetConfig, NetEvent, NetHandle, PeerId, Protocol};
use kith_proto::contact::ContactCard;
use kith_proto::record::{
    DeviceCert, MAX_MAILBOXES, MailboxRef, RecordDevice, UserRecord, user_record_key,
};
use kith_proto::wire::{
    Body, DeliveryResult, Envelope, Refusal, RejectReason, Request, Response, Sealed,
};
use kith_store::{
    ChatRef, Contact, KnownDevice, OutboxItem, Status, Store, StoreError, StoredMessage, WriteTx,
    device_key,
};
use kith_types::{
    BoundedMap, BoundedSet, CurveKey, DeviceKey, EnvelopeHash, GroupId, IdentityKey, MessageId,
    MessageIdGen, now_ms, safety_number,
};
use sha2::{Digest, Sha256};
use std::time::Instant;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::command::{
    self as cmd, AddContactParams, AddMailboxParams, BlockParams, Command, GroupCreateParams,
    GroupDescribeParams, GroupHistoryParams, GroupMemberParams, GroupParams, GroupRenameParams,
    GroupSendParams, HistoryParams, NoParams, Queued, RemoveContactParams, SendParams,
    SetPrivacyParams, TypingParams, WithContact,
};
use crate::cores::contacts::{self};
use crate::cores::delivery::{self, Delivery};
use crate::cores::mailbox::{self as mailbox_core, MailboxService};
pub use crate::cores::mailbox::{MAILBOX_QUOTA, MAILBOX_QUOTA_BYTES, MailboxConfig};
use crate::cores::record::{self, Publisher};
use crate::keys::KeyFile;
use crate::model::*;
use crate::push::{Waker, log_host};
use rand::rngs::StdRng;

/// Capacity of the command channel (API → engine).
pub const COMMAND_QUEUE: usize = 1024;
/// Capacity of the event broadcast (engine → watchers); a slow watcher misses events.
pub const EVENT_QUEUE: usize = 4096;
/// Most outbox items read for one delivery request.
const PUMP_READ: usize = 4096;
/// Most commands and network events applied in one transaction.
pub const MAX_GROUP: usize = 1024;
/// How long a published user record is valid.
pub const RECORD_LIFETIME_MS: u64 = 24 * 3600 * 1000;

/// How often the user record is republished.
pub const REPUBLISH_EVERY: Duration = Duration::from_secs(30 * 60);
/// How long envelope hashes are kept to recognise retries.
pub const SEEN_RETENTION_MS: u64 = 30 * 24 * 3600 * 1000;
/// Most connected peers the engine keeps track of.
const MAX_CONNECTED: usize = 65_536;
/// Most DHT record lookups awaited at once (older ones are forgotten).
const MAX_RECORD_LOOKUPS: usize = 8192;
/// Most callers waiting for mailboxes to answer a push endpoint change.
const MAX_PUSH_WAITS: usize = 64;
/// Addresses kept per device.
const MAX_DEVICE_ADDRS: usize = record::MAX_DEVICE_ADDRS;
/// Most text bytes one history answer carries (newest messages first).
pub const MAX_HISTORY_BYTES: usize = 32 << 20;
/// Most devices tried when opening an envelope a mailbox relayed.
pub const MAX_TRIAL: usize = 256;
/// Most trial decryptions one batch of envelopes may cost (the ratchet-key index finds the
/// rest in one lookup; past this, an envelope is answered `Undecryptable` and its mailbox
/// keeps it).
pub const MAX_TRIAL_PER_BATCH: usize = 1024;
/// How often the node checks it is connected to its mailboxes.
pub const MAILBOX_KEEPALIVE: Duration = Duration::from_secs(20);
/// Most devices whose Olm sessions are kept in memory between batches.
pub const MAX_CACHED_SESSIONS: usize = 1024;

/// Where a command's answer goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

/// What a batch leaves to do once its transaction has committed (or failed).
enum After {
    /// Answer a caller: `Ok` after a commit, `Internal` if it failed.
    Reply(Box<dyn FnOnce(Result<(), EngineError>) + Send>),
    /// Answer an inbound request; on a failed commit the peer is told to retry.
    Respond { id: u64, resp: Response },
    /// Send a network command.
    Net(NetCommand),
    /// Publish an event.
    Event(Event),
    /// Try to deliver to a device.
    Pump(DeviceKey),
    /// A read-only command, answered after the batch.
    Read(Cmd),
    /// A request to a device failed: back off.
    Failed(DeviceKey),
    /// Register with a mailbox (with an invite token, if it needs one).
    Register(MailboxRef, Option<String>, Option<Reply<MailboxView>>),
    /// A registration committed: answer it. The user record that lists the new mailbox
    /// goes out at the next tick, in the background (retried as the record core says);
    /// `status` shows how far it got.
    Registered(Reply<MailboxView>, MailboxView),
    /// Queue a push wake-up to this endpoint (a mailbox, after the deposit committed).
    Wake(String),
    /// The push endpoint changed: keep it, send it to every mailbox, answer when they did.
    PushAll(Option<String>, Reply<PushView>),
    /// Send the push endpoint to one mailbox (after a registration).
    SendPush(MailboxRef),
    /// A connected peer may have just become a contact's device: greet it (presence).
    Greet(PeerId),
    /// Publish a group frame (stored already) on the group's topic.
    GroupPublish(kith_store::GroupMsgKey, String, Vec<u8>),
    /// Catch up on a group with a peer.
    GroupSync(GroupId, PeerId),
    /// Look a person up in the DHT (a group member whose devices are not known).
    Lookup(IdentityKey),
    /// As a mailbox: the topics devices watch changed (subscribe, unsubscribe).
    Kept(kith_store::WatchChange),
    /// Catch up on a group with one of our mailboxes (a frame showed a gap).
    TopicSync(GroupId),
    /// Go on with a catch-up from a mailbox that was cut at its size limit.
    TopicSyncMore(GroupId, PeerId, Vec<kith_proto::groupwire::SenderMark>),
    /// Tell the live call's media task (start, answer, mute, stop).
    CallMedia(crate::cores::calls::MediaOp),
    /// Hand the media task a job (a download).
    Media(crate::media::Job),
}

// Work items live only in one batch vector; boxing the larger variant would cost an
// allocation per network event for nothing.
#[allow(clippy::large_enum_variant)]
enum Work {
    Cmd(Cmd),
    Net(NetEvent),
}

enum Pending {
    /// A step of linking a device (the approver's side).
    Link,
    /// A registration with one of our mailboxes (with the caller waiting, if any).
    Register {
        mailbox: MailboxRef,
        token: Option<String>,
        reply: Option<Reply<MailboxView>>,
        /// The first step: a pre-key claimed from the mailbox, to prove with it that this
        /// device holds its Curve25519 key (then the registration itself is sent).
        proving: bool,
    },
    /// Per envelope sent, the outbox items it carries; `via_mailbox` when it went to one of
    /// the device's mailboxes instead of the device.
    Deliver {
        dev: DeviceKey,
        seqs: Vec<Vec<u64>>,
        via_mailbox: bool,
    },
    Claim {
        dev: DeviceKey,
    },
    /// The push endpoint sent to one of our mailboxes (with a caller waiting, if any).
    SetPush {
        mailbox: Vec<u8>,
        wait: Option<u64>,
    },
    /// A catch-up request for a group.
    GroupSync {
        group: GroupId,
    },
    /// The topics of our groups, sent to one of our mailboxes (by peer id).
    Watch {
        mailbox: Vec<u8>,
        topics: Vec<String>,
    },
    /// A catch-up request for a group to one of our mailboxes; `floor` raises our marks to
    /// what earlier answers of the same catch-up brought.
    TopicSync {
        group: GroupId,
        floor: Vec<kith_proto::groupwire::SenderMark>,
    },
    /// TURN credentials asked of one of our mailboxes (by peer id).
    Turn {
        mailbox: Vec<u8>,
    },
}

/// A caller waiting for every mailbox to answer a push endpoint change.
struct PushWait {
    reply: Reply<PushView>,
    waiting: usize,
    refused: Vec<String>,
}

/// Quota figures a mailbox gave at the last registration.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
struct MailboxUsage {
    max_messages: u32,
    max_bytes: u64,
    used_messages: u64,
    used_bytes: u64,
    at_ms: u64,
}

/// The engine actor.
pub struct Engine {
    store: Store,
    st: State,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

struct State {
    /// The mailbox service (when this node serves as one) and the pre-key claim limit.
    mailbox: MailboxService,
    /// The mailboxes this device is registered with.
    my_mailboxes: Vec<MailboxRef>,
    /// Invite tokens for them, by mailbox peer id (secret: never logged or published).
    mailbox_tokens: HashMap<PeerId, String>,
    keys: KeyFile,
    me: IdentityKey,
    device: Device,
    net: NetHandle,
    /// Network commands waiting for room in the network actor's queue.
    backlog: Backlog,
    events: broadcast::Sender<Event>,
    sessions: HashMap<DeviceKey, PeerSessions>,
    dirty_sessions: HashSet<DeviceKey>,
    /// Devices with items queued in this batch, sealed before it commits.
    to_seal: std::collections::BTreeSet<DeviceKey>,
    account_dirty: bool,
    /// When and where each device's outbox goes next.
    delivery: Delivery,
    /// The engine's randomness (backoff jitter); cores take it as an argument.
    rng: StdRng,
    connected: BoundedSet<PeerId>,
    ids: MessageIdGen,
    pending: HashMap<u64, Pending>,
    next_tag: u64,
    /// Whose record each DHT lookup in flight asks for, by tag.
    record_tags: BoundedMap<u64, IdentityKey>,
    /// Group files (message ids) to deposit for a member whose devices' mailboxes are
    /// being looked up (`deposits.rs`).
    group_deposits: BoundedMap<IdentityKey, Vec<u128>>,
    /// When our user record is published.
    record: Publisher,
    last_keepalive: Instant,
    /// The full-text index of this node's history (none when it could not be opened).
    search: Option<crate::search::SearchIndex>,
    /// The index being built from the store at start, off the engine's task (`search.rs`).
    search_build: Option<search::Build>,
    /// What the current batch changed for the index, applied after its commit.
    index_ops: Vec<crate::search::IndexOp>,
    /// When disappearing messages were last expired.
    last_expiry: Instant,
    /// Text was removed or replaced since the last scrub, and when that was (`scrub.rs`).
    scrub: scrub::ScrubState,
    /// This device's push endpoint (secret: never logged).
    push_endpoint: Option<String>,
    /// What each of our mailboxes answered to it last, by mailbox peer id.
    push_status: HashMap<PeerId, String>,
    /// Callers waiting for mailboxes to answer a push endpoint change.
    push_waits: BoundedMap<u64, PushWait>,
    /// Quota figures of our mailboxes, by mailbox peer id.
    mailbox_usage: HashMap<PeerId, MailboxUsage>,
    /// As a mailbox: sends wake-ups.
    waker: Option<Waker>,
    /// Counters for the operator (`/metrics`), shared with the network's registry.
    metrics: kith_net::metrics::KithMetrics,
    /// Presence, typing, profiles, privacy and blocks.
    social: Social,
    /// The data directory (contacts' photos go to `avatars/` in it).
    data_dir: PathBuf,
    /// Group chats.
    groups: Groups,
    /// Group topics our mailboxes keep for us, and (as a mailbox) for our devices.
    watching: Watching,
    /// Calls: the call core and the live call's media task.
    calls: calls::CallState,
    /// The media task: file transfers (`crate::media`).
    media: crate::media::Media,
    /// Scheduled backups.
    backups: backup::Backups,
    /// Linking devices, and the person's other devices heard from.
    links: devices::Links,
}

fn load_device(store: &Store, keys: &KeyFile, peer: PeerId) -> Result<Device, EngineError> {
    let saved = store
        .read(|r| Ok((r.meta("account")?, r.meta("device_cert")?)))
        .map_err(internal)?;
    match saved {
        (Some(pickle), Some(cert)) => {
            let cert: DeviceCert = kith_proto::codec::decode(&cert, 4096).map_err(internal)?;
            let pickle = String::from_utf8(pickle).map_err(internal)?;
            let device = Device::restore(&pickle, cert, &keys.storage).map_err(internal)?;
            if device.cert().identity != keys.identity.public() {
                return Err(EngineError::Internal(
                    "the store belongs to another identity than the key file".into(),
                ));
            }
            Ok(device)
        }
        _ => {
            let device = Device::generate(&keys.identity, peer.to_bytes()).map_err(internal)?;
            let cert = kith_proto::codec::encode(device.cert()).map_err(internal)?;
            let pickle = device.pickle(&keys.storage);
            store
                .write(|w| {
                    w.set_meta("account", pickle.as_bytes())?;
                    w.set_meta("device_cert", &cert)
                })
                .map_err(internal)?;
            Ok(device)
        }
    }
}

fn decode_addrs(addrs: &[Vec<u8>]) -> Vec<Multiaddr> {
    addrs
        .iter()
        .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
        .collect()
}

fn reply<T: Send + 'static>(tx: Reply<T>, value: Result<T, EngineError>) -> After {
    After::Reply(Box::new(move |committed| {
        let _ = tx.send(committed.and(value));
    }))
}

fn envelope_hash(env: &Envelope) -> EnvelopeHash {
    let mut h = Sha256::new();
    h.update([env.kind]);
    h.update(&env.ciphertext);
    EnvelopeHash(h.finalize().into())
}

impl State {
    /// Sends a command to the network, or keeps it until there is room (never dropped
    /// silently; see [`Backlog`]).
    fn net_send(&mut self, cmd: NetCommand) {
        self.backlog.send(&self.net, cmd);
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Takes a device's sessions out of the cache (loading them on a miss); the caller puts
    /// them back with `self.sessions.insert`.
    fn take_sessions(
        &mut self,
        w: &WriteTx<'_>,
        dev: &DeviceKey,
        curve: CurveKey,
    ) -> Result<PeerSessions, Fatal> {
        let s = match self.sessions.remove(dev) {
            Some(s) => s,
            None => {
                let pickles = w.sessions(dev)?;
                PeerSessions::restore(curve, &pickles, &self.keys.storage).unwrap_or_else(|e| {
                    warn!(error = %e, "dropping unreadable sessions");
                    PeerSessions::new(curve)
                })
            }
        };
        if s.remote() != curve {
            // The device was re-keyed: its old sessions are of no use.
            self.dirty_sessions.insert(*dev);
            return Ok(PeerSessions::new(curve));
        }
        Ok(s)
    }

    /// Seals what this batch queued, then saves changed Olm state, in the batch's
    /// transaction.
    fn flush_crypto(&mut self, w: &mut WriteTx<'_>) -> Result<(), Fatal> {
        let queued: Vec<DeviceKey> = std::mem::take(&mut self.to_seal).into_iter().collect();
        for dev in queued {
            self.seal_waiting(w, &dev)?;
        }
        for dev in self.dirty_sessions.drain() {
            if let Some(s) = self.sessions.get(&dev) {
                w.put_sessions(&dev, &s.pickles(&self.keys.storage))?;
            }
        }
        if self.account_dirty {
            self.account_dirty = false;
            w.set_meta("account", self.device.pickle(&self.keys.storage).as_bytes())?;
        }
        Ok(())
    }
}
