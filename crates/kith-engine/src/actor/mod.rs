mod backlog;
mod commands;
mod groups;
mod inbound;
mod outbox;
mod presence;
pub(crate) mod table;
mod watch;

use backlog::Backlog;
#[cfg(feature = "test-hooks")]
use groups::GroupCmd;
use groups::Groups;
pub use groups::{GROUP_SYNC_EVERY, GroupChange, MAX_GROUPS};
use presence::Social;
pub use presence::{HEARTBEAT, PRESENCE_TIMEOUT, TYPING_TTL};
use table::{Call, Kind};
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
    Body, DeliveryResult, Envelope, MAX_BODIES, MAX_RECEIPT_IDS, MAX_TEXT, ReceiptKind, Refusal,
    RejectReason, Request, Response, Sealed,
};
use kith_store::{
    Contact, KnownDevice, OutboxItem, Status, Store, StoreError, StoredMessage, WriteTx, device_key,
};
use kith_types::{
    BoundedMap, BoundedSet, IdentityKey, MessageId, MessageIdGen, RateLimit, now_ms, safety_number,
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
use crate::cores::delivery::{self, Delivery};
use crate::keys::KeyFile;
use crate::model::*;
use crate::push::{PushPolicy, WAKE_EVERY, Waker, check_endpoint, log_host};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Capacity of the command channel (API → engine).
pub const COMMAND_QUEUE: usize = 1024;
/// Capacity of the event broadcast (engine → watchers); a slow watcher misses events.
pub const EVENT_QUEUE: usize = 4096;
/// Most plaintext bytes sealed into one envelope (below the sealed-payload limit).
pub const SEAL_BYTES: usize = 56 * 1024;
/// Most outbox items read for one delivery request.
const PUMP_READ: usize = 4096;
/// Most commands and network events applied in one transaction.
pub const MAX_GROUP: usize = 1024;
/// Pre-key claims one peer may make per minute before it only gets the fallback key.
pub const CLAIMS_PER_MINUTE: u32 = 10;
/// How long a published user record is valid.
pub const RECORD_LIFETIME_MS: u64 = 24 * 3600 * 1000;
/// Longest wait before publishing the user record again after no DHT peer stored it.
pub const MAX_RECORD_RETRY: Duration = Duration::from_secs(300);

/// The wait before publishing the user record again after `failures` publications in a row
/// that no DHT peer stored: 2 s, doubling, at most [`MAX_RECORD_RETRY`].
fn record_retry_after(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.clamp(1, 16)).min(MAX_RECORD_RETRY)
}

/// How often the user record is republished.
pub const REPUBLISH_EVERY: Duration = Duration::from_secs(30 * 60);
/// How long envelope hashes are kept to recognise retries.
pub const SEEN_RETENTION_MS: u64 = 30 * 24 * 3600 * 1000;
/// Times an item is re-sealed after the receiver could not decrypt it, before it is dropped.
pub const MAX_RESETS: u8 = 3;
/// Most peers tracked for pre-key claim rate limits.
const MAX_CLAIM_ENTRIES: usize = 4096;
/// Most connected peers the engine keeps track of.
const MAX_CONNECTED: usize = 65_536;
/// Most DHT record lookups awaited at once (older ones are forgotten).
const MAX_RECORD_LOOKUPS: usize = 8192;
/// Most callers waiting for the user record to be stored (older ones are answered at once).
const MAX_PUBLISH_WAITS: usize = 64;
/// Most callers waiting for mailboxes to answer a push endpoint change.
const MAX_PUSH_WAITS: usize = 64;
/// Addresses kept per device.
const MAX_DEVICE_ADDRS: usize = kith_proto::record::MAX_ADDRS;
/// Most text bytes one history answer carries (newest messages first).
pub const MAX_HISTORY_BYTES: usize = 32 << 20;
/// Most envelopes a mailbox keeps for one registered device, by default.
pub const MAILBOX_QUOTA: usize = 10_000;
/// Most ciphertext bytes a mailbox keeps for one registered device, by default (256 MiB).
pub const MAILBOX_QUOTA_BYTES: u64 = 256 << 20;
/// Most devices whose last wake-up time a mailbox remembers (for the rate limit).
const MAX_WAKE_ENTRIES: usize = 65_536;
/// Most devices a mailbox serves at once, by default.
pub const MAILBOX_MAX_DEVICES: usize = 100_000;
/// Most devices tried when opening an envelope a mailbox relayed.
pub const MAX_TRIAL: usize = 256;
/// How often the node checks it is connected to its mailboxes.
pub const MAILBOX_KEEPALIVE: Duration = Duration::from_secs(20);
/// Most devices whose Olm sessions are kept in memory between batches.
pub const MAX_CACHED_SESSIONS: usize = 1024;
/// Most people who wrote first (not added by the user) kept as provisional contacts; more
/// strangers are refused until some are removed.
pub const MAX_STRANGERS: usize = 1000;
/// Longest contact name, in characters.
pub const MAX_NAME: usize = 64;

/// How to start a node.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where keys and the store live.
    pub data_dir: PathBuf,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// DHT bootstrap peers.
    pub bootstrap: Vec<Multiaddr>,
    /// LAN discovery.
    pub mdns: bool,
    /// Serve as a mailbox: keep envelopes for devices that register.
    pub mailbox: Option<MailboxConfig>,
    /// Reachability: relays to hold a slot on, a relay to serve, AutoNAT settings.
    pub reach: ReachConfig,
    /// The store's page cache, bytes (`kith_store::DEFAULT_CACHE_BYTES` for a node).
    pub store_cache: usize,
    /// Every store commit is made durable with fsync: `true` for a real node. A simulation
    /// of hundreds of nodes on one disk turns it off (then one commit in
    /// `kith_store::SYNC_EVERY` still is), as their fsyncs would queue behind each other.
    pub store_fsync: bool,
    /// The network's transport, observer and timings: `Default` for a real node;
    /// simulations (`net-sim`) replace the transport and watch the network.
    pub net: kith_net::NetOptions,
}

/// How the node stays reachable and helps others be reachable.
#[derive(Debug, Clone, Default)]
pub struct ReachConfig {
    /// Circuit relays to hold a slot on (each ending in `/p2p/<relay id>`). Without any, the
    /// node picks relay servers among its peers when it cannot be dialled directly.
    pub relays: Vec<Multiaddr>,
    /// Serve as a circuit relay for others.
    pub relay_server: Option<kith_net::RelayServerConfig>,
    /// Treat private and loopback addresses as reachable (a LAN-only network, tests).
    pub private_ips: bool,
    /// Addresses others reach this node at, besides its listen addresses.
    pub external: Vec<Multiaddr>,
}

/// How a node serves as a mailbox.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    /// How long an envelope is kept for an offline device.
    pub retention: Duration,
    /// Most envelopes kept per registered device.
    pub quota: usize,
    /// When set, a device must present one of these tokens to register.
    pub tokens: Option<Vec<String>>,
    /// Most devices registered at once; more are refused as busy.
    pub max_devices: usize,
    /// Most ciphertext bytes kept per registered device.
    pub max_bytes: u64,
    /// Which push endpoints wake-ups may go to.
    pub push: PushPolicy,
}

impl Default for MailboxConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(30 * 24 * 3600),
            quota: MAILBOX_QUOTA,
            tokens: None,
            max_devices: MAILBOX_MAX_DEVICES,
            max_bytes: MAILBOX_QUOTA_BYTES,
            push: PushPolicy::default(),
        }
    }
}

/// Where a command's answer goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

enum Cmd {
    /// A command of the table (`table.rs`).
    Call(Call),
    /// Test hooks for group ops (a misbehaving member).
    #[cfg(feature = "test-hooks")]
    Group(GroupCmd),
    Shutdown(oneshot::Sender<()>),
}

/// A cheap, cloneable handle to the engine actor.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Cmd>,
    events: broadcast::Sender<Event>,
}

impl EngineHandle {
    /// Runs one command of the table and waits for its answer.
    pub async fn call<C: Command>(&self, params: C::Params) -> Result<C::Output, EngineError> {
        let params = C::prepare(params).await?;
        let (reply, rx) = oneshot::channel();
        let Queued(call) = C::queue(params, reply);
        self.tx
            .send(Cmd::Call(call))
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    // Shorthands for the commands that in-process callers (net-sim, tests, the bootstrap
    // node) use most; each is `call` with its params.

    /// The contact code and addresses.
    pub async fn info(&self) -> Result<NodeInfo, EngineError> {
        self.call::<cmd::Id>(NoParams {}).await
    }

    /// Adds (or updates) a contact from their code.
    pub async fn add_contact(
        &self,
        code: String,
        name: String,
    ) -> Result<ContactView, EngineError> {
        self.call::<cmd::ContactsAdd>(AddContactParams { code, name })
            .await
    }

    /// Removes a contact, its devices, sessions and undelivered messages (history stays).
    pub async fn remove_contact(&self, name: String) -> Result<ContactView, EngineError> {
        self.call::<cmd::ContactsRemove>(RemoveContactParams { name })
            .await
    }

    /// Every contact.
    pub async fn contacts(&self) -> Result<Vec<ContactView>, EngineError> {
        self.call::<cmd::ContactsList>(NoParams {}).await
    }

    /// Queues a text message; returns once it is durably in the outbox.
    pub async fn send(&self, to: String, text: String) -> Result<Sent, EngineError> {
        self.call::<cmd::Send>(SendParams { to, text }).await
    }

    /// The last `limit` messages with a contact, oldest first.
    pub async fn history(
        &self,
        with: String,
        limit: usize,
    ) -> Result<Vec<MessageView>, EngineError> {
        self.call::<cmd::History>(HistoryParams { with, limit })
            .await
    }

    /// Marks a conversation read (sending read receipts); returns how many messages changed.
    pub async fn mark_read(&self, with: String) -> Result<usize, EngineError> {
        let r = self.call::<cmd::Read>(WithContact { with }).await?;
        Ok(r.marked)
    }

    /// The safety number with a contact.
    pub async fn verify(&self, with: String) -> Result<Verification, EngineError> {
        self.call::<cmd::Verify>(WithContact { with }).await
    }

    /// Connections and queue sizes.
    pub async fn status(&self) -> Result<NodeStatus, EngineError> {
        self.call::<cmd::Status>(NoParams {}).await
    }

    /// Registers this device with a mailbox (given by its contact code); returns once the
    /// mailbox accepted.
    pub async fn add_mailbox(
        &self,
        code: String,
        token: Option<String>,
    ) -> Result<MailboxView, EngineError> {
        self.call::<cmd::MailboxAdd>(AddMailboxParams { code, token })
            .await
    }

    /// Tells a contact's connected devices that this user is `typing`, `recording` or
    /// `stopped`. Never stored or sent through a mailbox; repeats within 2 s are dropped.
    pub async fn typing(&self, to: String, state: &str) -> Result<(), EngineError> {
        let state = state.to_string();
        self.call::<cmd::Typing>(TypingParams { with: to, state })
            .await
            .map(|_| ())
    }

    /// This user's profile.
    pub async fn profile(&self) -> Result<ProfileView, EngineError> {
        self.call::<cmd::ProfileGet>(NoParams {}).await
    }

    /// The privacy settings.
    pub async fn privacy(&self) -> Result<PrivacyView, EngineError> {
        self.call::<cmd::PrivacyGet>(NoParams {}).await
    }

    /// Changes one privacy setting (`last-seen`, `online`, `profile-photo`: everyone,
    /// contacts or nobody; `read-receipts`: on or off).
    pub async fn set_privacy(
        &self,
        key: String,
        value: String,
    ) -> Result<PrivacyView, EngineError> {
        self.call::<cmd::PrivacySet>(SetPrivacyParams { key, value })
            .await
    }

    /// Blocks (or unblocks) a contact.
    pub async fn block(&self, name: String, blocked: bool) -> Result<ContactView, EngineError> {
        if blocked {
            self.call::<cmd::Block>(BlockParams { name }).await
        } else {
            self.call::<cmd::Unblock>(BlockParams { name }).await
        }
    }

    /// Creates a group with these contacts; this user is its first admin.
    pub async fn group_create(
        &self,
        name: String,
        members: Vec<String>,
    ) -> Result<GroupView, EngineError> {
        self.call::<cmd::GroupCreate>(GroupCreateParams { name, members })
            .await
    }

    /// Changes a group (given by name or id prefix): members, admins, name, description;
    /// leaving; deleting a group one has left.
    pub async fn group_change(
        &self,
        group: String,
        change: GroupChange,
    ) -> Result<GroupView, EngineError> {
        let member = |member| GroupMemberParams {
            group: group.clone(),
            member,
        };
        match change {
            GroupChange::Add(m) => self.call::<cmd::GroupAdd>(member(m)).await,
            GroupChange::Remove(m) => self.call::<cmd::GroupRemove>(member(m)).await,
            GroupChange::Promote(m) => self.call::<cmd::GroupPromote>(member(m)).await,
            GroupChange::Demote(m) => self.call::<cmd::GroupDemote>(member(m)).await,
            GroupChange::Rename(name) => {
                self.call::<cmd::GroupRename>(GroupRenameParams { group, name })
                    .await
            }
            GroupChange::Describe(text) => {
                self.call::<cmd::GroupDescribe>(GroupDescribeParams { group, text })
                    .await
            }
            GroupChange::Leave => self.call::<cmd::GroupLeave>(GroupParams { group }).await,
            GroupChange::Delete => self.call::<cmd::GroupDelete>(GroupParams { group }).await,
        }
    }

    /// One group: members, admins, description.
    pub async fn group_info(&self, group: String) -> Result<GroupView, EngineError> {
        self.call::<cmd::GroupInfo>(GroupParams { group }).await
    }

    /// Sends a text to a group; returns once it is stored (it is published at once, and
    /// members who miss it fetch it from any member later).
    pub async fn group_send(&self, group: String, text: String) -> Result<Sent, EngineError> {
        self.call::<cmd::GroupSend>(GroupSendParams { group, text })
            .await
    }

    /// The last `limit` messages of a group, with membership changes among them.
    pub async fn group_history(
        &self,
        group: String,
        limit: usize,
    ) -> Result<Vec<GroupItemView>, EngineError> {
        self.call::<cmd::GroupHistory>(GroupHistoryParams { group, limit })
            .await
    }

    #[cfg(feature = "test-hooks")]
    async fn group<T>(&self, make: impl FnOnce(Reply<T>) -> GroupCmd) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Group(make(reply)))
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// The ops in this node's log for a group (to replay them).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn test_group_ops(
        &self,
        group: &str,
    ) -> Result<Vec<kith_proto::group::GroupOp>, EngineError> {
        let group = group.to_string();
        self.group(|reply| GroupCmd::Ops { group, reply }).await
    }

    /// An op on the group's current heads signed by this node's identity, with no admin
    /// check (what a non-admin could make). Not inserted locally.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn test_sign_group_op(
        &self,
        group: &str,
        kind: kith_proto::group::OpKind,
    ) -> Result<kith_proto::group::GroupOp, EngineError> {
        let group = group.to_string();
        self.group(|reply| GroupCmd::Sign { group, kind, reply })
            .await
    }

    /// Sends these ops pairwise to every member device, as real ops are sent, without
    /// checking them or inserting them locally.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn test_push_group_ops(
        &self,
        group: &str,
        ops: Vec<kith_proto::group::GroupOp>,
    ) -> Result<(), EngineError> {
        let group = group.to_string();
        self.group(|reply| GroupCmd::Push { group, ops, reply })
            .await
    }

    /// A stream of events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Stops the engine after the work in hand is committed.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

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
    Pump([u8; 32]),
    /// A read-only command, answered after the batch.
    Read(Cmd),
    /// A request to a device failed: back off.
    Failed([u8; 32]),
    /// Register with a mailbox (with an invite token, if it needs one).
    Register(MailboxRef, Option<String>, Option<Reply<MailboxView>>),
    /// Publish the user record now and answer when a DHT peer stored it.
    Publish(PublishReply),
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
    GroupSync([u8; 16], PeerId),
    /// Look a person up in the DHT (a group member whose devices are not known).
    Lookup([u8; 32]),
    /// As a mailbox: the topics devices watch changed (subscribe, unsubscribe).
    Kept(kith_store::WatchChange),
    /// Catch up on a group with one of our mailboxes (a frame showed a gap).
    TopicSync([u8; 16]),
    /// Go on with a catch-up from a mailbox that was cut at its size limit.
    TopicSyncMore([u8; 16], PeerId, Vec<kith_proto::groupwire::SenderMark>),
}

// Work items live only in one batch vector; boxing the larger variant would cost an
// allocation per network event for nothing.
#[allow(clippy::large_enum_variant)]
enum Work {
    Cmd(Cmd),
    Net(NetEvent),
}

enum Pending {
    /// A registration with one of our mailboxes (with the caller waiting, if any).
    Register {
        mailbox: MailboxRef,
        token: Option<String>,
        reply: Option<Reply<MailboxView>>,
    },
    /// Per envelope sent, the outbox items it carries; `via_mailbox` when it went to one of
    /// the device's mailboxes instead of the device.
    Deliver {
        dev: [u8; 32],
        seqs: Vec<Vec<u64>>,
        via_mailbox: bool,
    },
    Claim {
        dev: [u8; 32],
    },
    /// The push endpoint sent to one of our mailboxes (with a caller waiting, if any).
    SetPush {
        mailbox: Vec<u8>,
        wait: Option<u64>,
    },
    /// A catch-up request for a group.
    GroupSync {
        group: [u8; 16],
    },
    /// The topics of our groups, sent to one of our mailboxes (by peer id).
    Watch {
        mailbox: Vec<u8>,
        topics: Vec<String>,
    },
    /// A catch-up request for a group to one of our mailboxes; `floor` raises our marks to
    /// what earlier answers of the same catch-up brought.
    TopicSync {
        group: [u8; 16],
        floor: Vec<kith_proto::groupwire::SenderMark>,
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
    /// Serving as a mailbox, and how.
    mailbox: Option<MailboxConfig>,
    /// The mailboxes this device is registered with.
    my_mailboxes: Vec<MailboxRef>,
    /// Invite tokens for them, by mailbox peer id (secret: never logged or published).
    mailbox_tokens: HashMap<Vec<u8>, String>,
    keys: KeyFile,
    me: IdentityKey,
    device: Device,
    net: NetHandle,
    /// Network commands waiting for room in the network actor's queue.
    backlog: Backlog,
    events: broadcast::Sender<Event>,
    sessions: HashMap<[u8; 32], PeerSessions>,
    dirty_sessions: HashSet<[u8; 32]>,
    /// Devices with items queued in this batch, sealed before it commits.
    to_seal: std::collections::BTreeSet<[u8; 32]>,
    account_dirty: bool,
    /// When and where each device's outbox goes next.
    delivery: Delivery,
    /// The engine's randomness (backoff jitter); cores take it as an argument.
    rng: StdRng,
    connected: BoundedSet<PeerId>,
    ids: MessageIdGen,
    pending: HashMap<u64, Pending>,
    next_tag: u64,
    /// Pre-key claims per peer per minute.
    claims: RateLimit<PeerId>,
    /// Whose record each DHT lookup in flight asks for, by tag.
    record_tags: BoundedMap<u64, [u8; 32]>,
    record_dirty: bool,
    /// The tag of the last publication of our record, while its outcome is awaited.
    record_tag: Option<u64>,
    /// Publications of our record in a row that no DHT peer stored, and when to try again.
    record_failures: u32,
    record_retry: Option<Instant>,
    last_keepalive: Instant,
    /// Callers waiting for a tagged record publication.
    publishing: BoundedMap<u64, PublishReply>,
    /// This device's push endpoint (secret: never logged).
    push_endpoint: Option<String>,
    /// What each of our mailboxes answered to it last, by mailbox peer id.
    push_status: HashMap<Vec<u8>, String>,
    /// Callers waiting for mailboxes to answer a push endpoint change.
    push_waits: BoundedMap<u64, PushWait>,
    /// Quota figures of our mailboxes, by mailbox peer id.
    mailbox_usage: HashMap<Vec<u8>, MailboxUsage>,
    /// As a mailbox: sends wake-ups.
    waker: Option<Waker>,
    /// As a mailbox: when each device was last woken.
    wakes: RateLimit<[u8; 32]>,
    /// As a mailbox: devices that registered on their current connection.
    registered_here: BoundedSet<PeerId>,
    /// Presence, typing, profiles, privacy and blocks.
    social: Social,
    /// The data directory (contacts' photos go to `avatars/` in it).
    data_dir: PathBuf,
    /// Group chats.
    groups: Groups,
    /// Group topics our mailboxes keep for us, and (as a mailbox) for our devices.
    watching: Watching,
}

/// A caller waiting for the user record to be published, with the answer to give.
type PublishReply = (Reply<MailboxView>, MailboxView);

impl Engine {
    /// Opens the data directory (creating keys and store on first run), starts the network
    /// and the actor. Returns the handle and the actor's task.
    pub async fn start(
        cfg: EngineConfig,
    ) -> Result<(EngineHandle, tokio::task::JoinHandle<()>), EngineError> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(internal)?;
        let (keys, created) = KeyFile::load_or_create(&cfg.data_dir.join("keys"))?;
        if created {
            info!("created a new identity");
        }
        let store = Store::open_with_cache(&cfg.data_dir.join("kith.redb"), cfg.store_cache)
            .map_err(|e| match e {
                StoreError::InUse => EngineError::Internal(
                    "another kith node is already running with this data directory".into(),
                ),
                other => internal(other),
            })?;
        let store = if cfg.store_fsync {
            store
        } else {
            store.without_fsync()
        };
        let peer = keys.p2p.public().to_peer_id();
        let device = load_device(&store, &keys, peer)?;
        let me = keys.identity.public();
        info!(identity = %me, %peer, "starting node");

        let (net, net_events, _net_task) = kith_net::spawn(NetConfig {
            keypair: keys.p2p.clone(),
            listen: cfg.listen.clone(),
            bootstrap: cfg.bootstrap.clone(),
            mdns: cfg.mdns,
            relays: cfg.reach.relays.clone(),
            relay_server: cfg.reach.relay_server.clone(),
            private_ips: cfg.reach.private_ips,
            external: cfg.reach.external.clone(),
            options: cfg.net.clone(),
        })
        .await
        .map_err(|e| EngineError::Network(e.to_string()))?;

        let my_mailboxes = load_mailboxes(&store);
        let mailbox_tokens: HashMap<Vec<u8>, String> = store
            .read(|r| r.meta("mailbox_tokens"))
            .ok()
            .flatten()
            .and_then(|b| kith_proto::codec::decode::<Vec<(Vec<u8>, String)>>(&b, 16 * 1024).ok())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let push_endpoint = store
            .read(|r| r.meta("push_endpoint"))
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok());
        let mailbox_usage: HashMap<Vec<u8>, MailboxUsage> = store
            .read(|r| r.meta("mailbox_usage"))
            .ok()
            .flatten()
            .and_then(|b| {
                kith_proto::codec::decode::<Vec<(Vec<u8>, MailboxUsage)>>(&b, 16 * 1024).ok()
            })
            .unwrap_or_default()
            .into_iter()
            .collect();
        let waker = match &cfg.mailbox {
            Some(m) => Some(Waker::spawn(m.push).map_err(internal)?),
            None => None,
        };
        let (tx, cmds) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let social = Social::load(&store);
        let groups = Groups::load(&store);
        let watching = Watching::load(&store, cfg.mailbox.is_some());
        let engine = Engine {
            store,
            st: State {
                social,
                groups,
                watching,
                data_dir: cfg.data_dir.clone(),
                mailbox: cfg.mailbox,
                my_mailboxes,
                mailbox_tokens,
                keys,
                me,
                device,
                net,
                backlog: Backlog::default(),
                events: events.clone(),
                sessions: HashMap::new(),
                dirty_sessions: HashSet::new(),
                to_seal: Default::default(),
                account_dirty: false,
                delivery: Delivery::new(),
                rng: StdRng::from_os_rng(),
                connected: BoundedSet::new(MAX_CONNECTED),
                ids: MessageIdGen::new(),
                pending: HashMap::new(),
                next_tag: 0,
                claims: RateLimit::new(
                    CLAIMS_PER_MINUTE,
                    Duration::from_secs(60),
                    MAX_CLAIM_ENTRIES,
                ),
                record_tags: BoundedMap::new(MAX_RECORD_LOOKUPS),
                record_dirty: true,
                record_tag: None,
                record_failures: 0,
                record_retry: None,
                last_keepalive: Instant::now(),
                publishing: BoundedMap::new(MAX_PUBLISH_WAITS),
                push_endpoint,
                push_status: HashMap::new(),
                push_waits: BoundedMap::new(MAX_PUSH_WAITS),
                mailbox_usage,
                waker,
                wakes: RateLimit::once_per(WAKE_EVERY, MAX_WAKE_ENTRIES),
                registered_here: BoundedSet::new(MAX_CONNECTED),
            },
        };
        let task = tokio::spawn(engine.run(cmds, net_events));
        Ok((EngineHandle { tx, events }, task))
    }

    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut net_events: mpsc::Receiver<NetEvent>,
    ) {
        self.startup();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut republish = tokio::time::interval(REPUBLISH_EVERY);
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            let first = tokio::select! {
                biased;
                ev = net_events.recv() => match ev {
                    Some(ev) => Work::Net(ev),
                    None => break,
                },
                c = cmds.recv() => match c {
                    Some(Cmd::Shutdown(tx)) => { shutdown = Some(tx); break; }
                    Some(c) => Work::Cmd(c),
                    None => break,
                },
                _ = tick.tick() => {
                    self.on_tick();
                    continue;
                }
                _ = republish.tick() => {
                    self.st.record_dirty = true;
                    self.prune();
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_GROUP {
                if let Ok(ev) = net_events.try_recv() {
                    batch.push(Work::Net(ev));
                    continue;
                }
                match cmds.try_recv() {
                    Ok(Cmd::Shutdown(tx)) => {
                        shutdown = Some(tx);
                        break;
                    }
                    Ok(c) => batch.push(Work::Cmd(c)),
                    Err(_) => break,
                }
            }
            self.process(batch);
            if shutdown.is_some() {
                break;
            }
        }
        if shutdown.is_some() {
            // Receipts still waiting for their batch go into the outbox now.
            self.flush_group_receipts(true);
            // A clean stop: tell connected contacts we are going, and give the goodbyes up
            // to a second to leave.
            let mut waiting: HashSet<u64> = self.presence_goodbye().into_iter().collect();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while !waiting.is_empty() {
                match tokio::time::timeout_at(deadline, net_events.recv()).await {
                    Ok(Some(NetEvent::SignalAnswered { tag, .. })) => {
                        waiting.remove(&tag);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        info!("engine stopped");
        if let Some(tx) = shutdown {
            let _ = tx.send(());
        }
    }

    fn startup(&mut self) {
        // Dial our contacts' devices so both sides learn current addresses (not the devices a
        // mailbox serves: they come to it), and queue outboxes.
        let (devices, contacts) = self
            .store
            .read(|r| Ok((r.devices()?, r.contacts()?)))
            .unwrap_or_default();
        let people: HashSet<[u8; 32]> = contacts.iter().map(|c| c.identity).collect();
        for d in devices.into_iter().filter(|d| people.contains(&d.identity)) {
            if let Ok(peer) = PeerId::from_bytes(&d.peer_id) {
                self.st.net_send(NetCommand::Dial {
                    peer,
                    addrs: decode_addrs(&d.addrs),
                });
            }
        }
        // And our mailboxes, so they hand over what they kept while we were away.
        self.st.dial_mailboxes();
        for topic in self.st.groups.topics() {
            self.st.net_send(NetCommand::Subscribe { topic });
        }
        self.watch_startup();
        match self.store.read(|r| r.outbox_devices()) {
            Ok(devs) => {
                for d in devs {
                    self.st.delivery.track(d);
                }
            }
            Err(e) => warn!(error = %e, "cannot read outbox"),
        }
        self.prune();
    }

    fn prune(&mut self) {
        let before = now_ms().saturating_sub(SEEN_RETENTION_MS);
        if let Err(e) = self.store.write(|w| w.prune_seen(before)) {
            warn!(error = %e, "cannot prune envelope hashes");
        }
        let st = &mut self.st;
        if let Err(e) = self.store.write(|w| st.prune_group_frames(w)) {
            warn!(error = %e, "cannot prune group frames");
        }
        if let Some(cfg) = &self.st.mailbox {
            let before = now_ms().saturating_sub(cfg.retention.as_millis() as u64);
            match self.store.write(|w| w.expire_topic_frames(before)) {
                Ok(0) => {}
                Ok(n) => info!(
                    expired = n,
                    "mailbox dropped group frames past their retention"
                ),
                Err(e) => warn!(error = %e, "cannot expire kept group frames"),
            }
        }
        self.expire_mail();
    }

    /// Drops envelopes a mailbox kept longer than its retention.
    fn expire_mail(&mut self) {
        let Some(cfg) = &self.st.mailbox else { return };
        let before = now_ms().saturating_sub(cfg.retention.as_millis() as u64);
        let res = self.store.write(|w| {
            let mut n = 0u64;
            for dev in w.outbox_devices()? {
                for (seq, item) in w.outbox(&dev, usize::MAX)? {
                    // Only kept mail: the node's own messages have a conversation.
                    if item.conversation == [0; 32] && item.queued_ms < before {
                        w.take_outbox(&dev, seq)?;
                        n += 1;
                    }
                }
            }
            Ok(n)
        });
        match res {
            Ok(0) => {}
            Ok(n) => info!(
                expired = n,
                "mailbox dropped envelopes past their retention"
            ),
            Err(e) => warn!(error = %e, "cannot expire mailbox envelopes"),
        }
    }

    fn on_tick(&mut self) {
        self.st.backlog.flush(&self.st.net);
        self.presence_tick();
        self.groups_tick();
        self.watch_tick();
        if self.st.record_retry.is_some_and(|t| t <= Instant::now()) {
            self.st.record_retry = None;
            self.st.record_dirty = true;
        }
        if self.st.record_dirty {
            self.st.record_dirty = false;
            self.publish_record();
        }
        if self.st.last_keepalive.elapsed() >= MAILBOX_KEEPALIVE {
            self.st.last_keepalive = Instant::now();
            // Also when connected: a dial marks the link as in use, so the network layer
            // does not close it as idle.
            self.st.dial_mailboxes();
            // As a mailbox, likewise the links of devices registered on them (new mail goes
            // out on them at once).
            if !self.st.registered_here.is_empty() {
                let peers: Vec<PeerId> = self.st.registered_here.iter().copied().collect();
                self.st.net_send(NetCommand::Keep { peers });
            }
        }
        for d in self.st.delivery.due(Instant::now()) {
            self.pump(d);
        }
    }

    /// The outcome of publishing our record. A record no DHT peer stored (a node that
    /// published before it had found any DHT peers, or while they were unreachable) leaves
    /// this user unreachable for anyone without their addresses, so it is published again
    /// soon, backing off to [`MAX_RECORD_RETRY`], instead of waiting for the half-hourly
    /// republication.
    fn record_published(&mut self, ok: bool) {
        if ok {
            self.st.record_failures = 0;
            self.st.record_retry = None;
            return;
        }
        self.st.record_failures = self.st.record_failures.saturating_add(1);
        let wait = record_retry_after(self.st.record_failures);
        if self.st.record_failures == 1 {
            warn!(
                retry_in_s = wait.as_secs(),
                "no DHT peer stored the user record; publishing it again soon"
            );
        }
        self.st.record_retry = Some(Instant::now() + wait);
    }

    fn publish_record(&mut self) {
        let tag = self.st.tag();
        self.publish_record_tagged(tag);
    }

    /// Publishes the user record; [`NetEvent::Published`] with `tag` follows. Returns
    /// whether the record went to the network.
    fn publish_record_tagged(&mut self, tag: u64) -> bool {
        let addrs = self.st.advertised_addrs();
        if addrs.is_empty() {
            return false;
        }
        self.st.record_tag = Some(tag);
        let issued = now_ms();
        let mut rec = UserRecord {
            version: 1,
            identity: self.st.me.0,
            devices: vec![RecordDevice {
                cert: self.st.device.cert().clone(),
                addrs: addrs.iter().map(|a| a.to_vec()).collect(),
                mailboxes: self.st.my_mailboxes.clone(),
                prekey: Some(self.st.device.claim_prekey(true)),
            }],
            issued_ms: issued,
            expires_ms: issued + RECORD_LIFETIME_MS,
            signature: Vec::new(),
        };
        let Ok(msg) = rec.signing_bytes() else {
            return false;
        };
        rec.signature = self.st.keys.identity.sign(&msg);
        match kith_proto::codec::encode(&rec) {
            Ok(value) => self
                .st
                .net
                .send(NetCommand::PutRecord {
                    key: user_record_key(&self.st.me.0),
                    value,
                    tag: Some(tag),
                })
                .is_ok(),
            Err(e) => {
                warn!(error = %e, "cannot encode user record");
                false
            }
        }
    }

    fn process(&mut self, batch: Vec<Work>) {
        let mut after: Vec<After> = Vec::new();
        let mut writes: Vec<Work> = Vec::new();
        for w in batch {
            match w {
                Work::Cmd(Cmd::Call(c)) if c.kind() == Kind::Read => {
                    after.push(After::Read(Cmd::Call(c)))
                }
                Work::Net(ev) => {
                    if let Some(ev) = self.on_net_now(ev) {
                        writes.push(Work::Net(ev));
                    }
                }
                other => writes.push(other),
            }
        }
        let mut staged: Vec<After> = Vec::new();
        let ok = if writes.is_empty() {
            true
        } else {
            let st = &mut self.st;
            let res = self.store.write(|w| {
                for item in writes {
                    st.apply(w, item, &mut staged)?;
                }
                st.flush_crypto(w)
            });
            match res {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e, "store commit failed; nothing in this batch is acknowledged");
                    self.reload_crypto();
                    false
                }
            }
        };
        staged.extend(after);
        for a in staged {
            self.run_after(a, ok);
        }
        // Everything in the cache is on disk now; keep the cache bounded.
        if self.st.sessions.len() > MAX_CACHED_SESSIONS {
            self.st.sessions.clear();
        }
    }

    /// Runs `f` on the state in one write transaction, with the crypto state flushed in the
    /// same transaction, then what it queued. On failure the crypto state is reloaded from
    /// the store and `what` logged. Returns whether it committed.
    fn write_then(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut State, &mut WriteTx<'_>, &mut Vec<After>) -> Result<(), StoreError>,
    ) -> bool {
        let st = &mut self.st;
        let mut after = Vec::new();
        let res = self.store.write(|w| {
            f(st, w, &mut after)?;
            st.flush_crypto(w)
        });
        let ok = res.is_ok();
        if let Err(e) = res {
            warn!(error = %e, "{what}");
            self.reload_crypto();
        }
        for a in after {
            self.run_after(a, ok);
        }
        ok
    }

    fn reload_crypto(&mut self) {
        self.st.sessions.clear();
        self.st.dirty_sessions.clear();
        self.st.to_seal.clear();
        self.st.account_dirty = false;
        let peer = self.st.net.local_peer();
        match load_device(&self.store, &self.st.keys, peer) {
            Ok(d) => self.st.device = d,
            Err(e) => warn!(error = %e, "cannot reload device keys"),
        }
    }

    fn run_after(&mut self, a: After, ok: bool) {
        match a {
            After::Greet(peer) => {
                if ok {
                    self.presence_connected(peer);
                }
            }
            After::Reply(f) => f(if ok {
                Ok(())
            } else {
                Err(EngineError::Internal("the store could not commit".into()))
            }),
            After::Respond { id, resp } => {
                let resp = if ok {
                    resp
                } else {
                    Response::Refused(Refusal::Internal)
                };
                self.st.net_send(NetCommand::Respond { id, resp });
            }
            After::Net(cmd) if ok => {
                self.st.net_send(cmd);
            }
            After::Event(ev) if ok => {
                let _ = self.st.events.send(ev);
            }
            After::Pump(dev) => {
                self.st.delivery.track(dev);
                self.pump(dev);
            }
            After::Read(cmd) => self.read_cmd(cmd),
            After::Failed(dev) => self.failed(dev),
            After::Register(mailbox, token, reply) => self.register_with(mailbox, token, reply),
            After::Publish((reply, _)) if !ok => {
                let _ = reply.send(Err(EngineError::Internal(
                    "the store could not commit".into(),
                )));
            }
            After::Publish(reply) => {
                // Answer once a DHT peer holds the record that lists the new mailbox (or at
                // once if there is no DHT peer to ask).
                let tag = self.st.tag();
                self.st.record_dirty = false;
                if self.publish_record_tagged(tag) {
                    if let Some((_, (tx, view))) = self.st.publishing.insert(tag, reply) {
                        // The oldest waiter gets its answer without the confirmation.
                        let _ = tx.send(Ok(view));
                    }
                } else {
                    let (tx, view) = reply;
                    let _ = tx.send(Ok(view));
                }
            }
            After::Wake(url) if ok => {
                if let Some(w) = &self.st.waker {
                    w.wake(url);
                }
            }
            After::PushAll(_, reply) if !ok => {
                let _ = reply.send(Err(EngineError::Internal(
                    "the store could not commit".into(),
                )));
            }
            After::PushAll(endpoint, reply) => {
                self.st.push_endpoint = endpoint;
                self.st.push_status.clear();
                let mailboxes = self.st.my_mailboxes.clone();
                if mailboxes.is_empty() {
                    let _ = reply.send(Ok(self.st.push_view()));
                    return;
                }
                let wait = self.st.tag();
                let evicted = self.st.push_waits.insert(
                    wait,
                    PushWait {
                        reply,
                        waiting: mailboxes.len(),
                        refused: Vec::new(),
                    },
                );
                if let Some((_, w)) = evicted {
                    let _ = w.reply.send(Err(EngineError::Network(
                        "too many push endpoint changes at once; try again".into(),
                    )));
                }
                for m in mailboxes {
                    self.send_push(m, Some(wait));
                }
            }
            After::SendPush(m) if ok => self.send_push(m, None),
            After::GroupPublish(key, topic, data) if ok => {
                let tag = self.st.tag();
                self.st.publishing(tag, key);
                self.st.net_send(NetCommand::Publish { tag, topic, data });
            }
            After::GroupSync(group, peer) if ok => self.group_sync(group, peer),
            After::Lookup(identity) if ok => self.lookup_identity(identity),
            After::Kept(change) if ok => {
                for cmd in self.st.kept_changed(change) {
                    self.st.net_send(cmd);
                }
            }
            After::TopicSync(group) if ok => self.topic_catch_up(group),
            After::TopicSyncMore(group, peer, floor) if ok => {
                self.topic_sync_more(group, peer, floor)
            }
            After::GroupPublish(..) | After::GroupSync(..) | After::Lookup(_) => {}
            After::Kept(_) | After::TopicSync(_) | After::TopicSyncMore(..) => {}
            After::Net(_) | After::Event(_) | After::Wake(_) | After::SendPush(_) => {}
        }
    }

    /// Sends the push endpoint (or its removal) to one of our mailboxes.
    fn send_push(&mut self, mailbox: MailboxRef, wait: Option<u64>) {
        let Ok(peer) = PeerId::from_bytes(&mailbox.peer_id) else {
            self.st
                .push_result(&mailbox.peer_id, wait, "unreachable".into(), None);
            return;
        };
        let tag = self.st.tag();
        let req = NetCommand::Request {
            tag,
            peer,
            addrs: decode_addrs(&mailbox.addrs),
            req: Request::SetPush {
                endpoint: self.st.push_endpoint.clone(),
            },
        };
        match self.st.net.send(req) {
            Ok(()) => {
                self.st.pending.insert(
                    tag,
                    Pending::SetPush {
                        mailbox: mailbox.peer_id,
                        wait,
                    },
                );
            }
            Err(_) => {
                self.st
                    .push_result(&mailbox.peer_id, wait, "unreachable".into(), None);
            }
        }
    }

    /// Handles network events that need no write; returns those that do.
    fn on_net_now(&mut self, ev: NetEvent) -> Option<NetEvent> {
        match ev {
            NetEvent::Listening { addr } => {
                info!(%addr, "listening");
                self.st.record_dirty = true;
                None
            }
            NetEvent::ListenerGone { addr } => {
                debug!(%addr, "no longer listening");
                self.st.record_dirty = true;
                None
            }
            NetEvent::Reachability { .. } => {
                // Addresses worth advertising may differ now.
                self.st.record_dirty = true;
                None
            }
            NetEvent::Connected { peer } => {
                self.st.connected.insert(peer);
                // Back in touch with one of our mailboxes: register again, which also makes
                // it hand over what it kept for us.
                let bytes = peer.to_bytes();
                if let Some(m) = self
                    .st
                    .my_mailboxes
                    .iter()
                    .find(|m| m.peer_id == bytes)
                    .cloned()
                {
                    let token = self.st.mailbox_tokens.get(&m.peer_id).cloned();
                    self.st.watching.connected(&m.peer_id);
                    self.register_with(m, token, None);
                }
                let dev = device_key(&peer.to_bytes());
                self.st.delivery.reachable(&dev);
                if self.st.delivery.is_tracked(&dev) {
                    self.pump(dev);
                }
                self.presence_connected(peer);
                None
            }
            NetEvent::Signal { id, peer, signal } => {
                self.on_signal(id, peer, signal);
                None
            }
            NetEvent::SignalAnswered { tag, result, .. } => {
                self.on_signal_answer(tag, result);
                None
            }
            NetEvent::GossipJoined { peer, topic } => {
                self.on_gossip_joined(peer, &topic);
                None
            }
            NetEvent::Published { tag, ok } => {
                if self.st.record_tag == Some(tag) {
                    self.st.record_tag = None;
                    self.record_published(ok);
                }
                if let Some((reply, view)) = self.st.publishing.remove(&tag) {
                    let _ = reply.send(Ok(view));
                }
                None
            }
            NetEvent::Disconnected { peer } => {
                self.st.connected.remove(&peer);
                self.st.registered_here.remove(&peer);
                self.st.watching.disconnected(&peer.to_bytes());
                self.presence_disconnected(peer);
                None
            }
            NetEvent::Response {
                tag,
                result: Err(error),
                peer,
            } => {
                match self.st.pending.remove(&tag) {
                    Some(Pending::Deliver { dev, .. } | Pending::Claim { dev }) => {
                        debug!(%peer, %error, "request failed");
                        self.failed(dev);
                    }
                    Some(Pending::SetPush { mailbox, wait }) => {
                        debug!(%peer, %error, "cannot send the push endpoint to a mailbox");
                        self.st
                            .push_result(&mailbox, wait, "unreachable".into(), None);
                    }
                    Some(Pending::GroupSync { group }) => {
                        debug!(%peer, %error, "group catch-up failed");
                        self.group_sync_done(group);
                    }
                    Some(p @ (Pending::Watch { .. } | Pending::TopicSync { .. })) => {
                        debug!(%peer, %error, "request to our mailbox failed");
                        self.watch_failed(p);
                    }
                    Some(Pending::Register { reply, .. }) => {
                        warn!(%peer, %error, "mailbox registration failed");
                        if let Some(r) = reply {
                            let _ = r.send(Err(EngineError::Network(format!(
                                "the mailbox did not answer: {error}"
                            ))));
                        }
                    }
                    None => {}
                }
                None
            }
            other => Some(other),
        }
    }

    /// Sends a registration to a mailbox; the answer is handled in a batch.
    fn register_with(
        &mut self,
        mailbox: MailboxRef,
        token: Option<String>,
        reply: Option<Reply<MailboxView>>,
    ) {
        let Ok(peer) = PeerId::from_bytes(&mailbox.peer_id) else {
            return;
        };
        let tag = self.st.tag();
        let req = NetCommand::Request {
            tag,
            peer,
            addrs: decode_addrs(&mailbox.addrs),
            req: Request::Register {
                cert: self.st.device.cert().clone(),
                token: token.clone(),
            },
        };
        match self.st.net.send(req) {
            Ok(()) => {
                self.st.pending.insert(
                    tag,
                    Pending::Register {
                        mailbox,
                        token,
                        reply,
                    },
                );
            }
            Err(e) => {
                if let Some(r) = reply {
                    let _ = r.send(Err(EngineError::Network(e.to_string())));
                }
            }
        }
    }

    /// A request to `dev` failed or could not be sent: the delivery core backs it off.
    fn failed(&mut self, dev: [u8; 32]) {
        let st = &mut self.st;
        let failure = st.delivery.failed(dev, Instant::now(), &mut st.rng);
        if failure.look_up {
            self.lookup_device(dev);
        }
    }

    /// Looks the device's owner up in the DHT, at most every [`delivery::LOOKUP_EVERY`].
    fn lookup_device(&mut self, dev: [u8; 32]) {
        let Ok(Some(d)) = self.store.read(|r| r.device(&dev)) else {
            return;
        };
        self.lookup_identity(d.identity);
    }

    /// Looks a person's user record up in the DHT, at most every [`delivery::LOOKUP_EVERY`].
    fn lookup_identity(&mut self, identity: [u8; 32]) {
        if !self.st.delivery.may_look_up(identity, Instant::now()) {
            return;
        }
        let tag = self.st.tag();
        let sent = self.st.net.send(NetCommand::GetRecord {
            tag,
            key: user_record_key(&identity),
        });
        if sent.is_ok() {
            self.st.record_tags.insert(tag, identity);
        }
    }

    /// Sends the next batch of a device's outbox, or claims a pre-key first.
    fn pump(&mut self, dev: [u8; 32]) {
        if !self.st.delivery.ready(&dev, Instant::now()) {
            return;
        }
        let read = self
            .store
            .read(|r| Ok((r.outbox(&dev, PUMP_READ)?, r.device(&dev)?)));
        let (items, device) = match read {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "cannot read outbox");
                return;
            }
        };
        let Some(device) = device.filter(|_| !items.is_empty()) else {
            self.st.delivery.forget(&dev);
            return;
        };
        let Ok(peer) = PeerId::from_bytes(&device.peer_id) else {
            self.st.delivery.forget(&dev);
            return;
        };
        // A mailbox hands kept mail only to a device that registered on its current
        // connection (it does on every connection): its registration answer then tells what
        // was kept, and offline devices are not dialled (they come to the mailbox).
        if self.st.mailbox.is_some()
            && items.first().is_some_and(|(_, it)| it.is_kept_mail())
            && !self.st.registered_here.contains(&peer)
        {
            self.st
                .delivery
                .hold(dev, Instant::now() + delivery::MAX_BACKOFF);
            return;
        }
        // A device that did not answer twice is likely offline: hand its envelopes to one of
        // its mailboxes (a different one on each failure) until it is back.
        let mailbox = self
            .st
            .delivery
            .route(&dev, self.st.connected.contains(&peer), &device.mailboxes)
            .and_then(|m| {
                PeerId::from_bytes(&m.peer_id)
                    .ok()
                    .map(|p| (p, decode_addrs(&m.addrs)))
            });
        let addrs = decode_addrs(&device.addrs);
        if addrs.is_empty() && !self.st.connected.contains(&peer) {
            // Nowhere to dial yet: ask the DHT where the device is (the dial below may still
            // succeed through addresses the network layer learned by itself).
            self.lookup_device(dev);
        }
        let delivery::Batch { seqs, envelopes } = delivery::plan_batch(&items);
        if envelopes.is_empty()
            && self
                .store
                .read(|r| r.sessions(&dev))
                .is_ok_and(|s| !s.is_empty())
        {
            // A session exists but the first item is not sealed (it was queued while a
            // claim was answered): seal now and try again.
            let st = &mut self.st;
            let res = self.store.write(|w| {
                st.seal_waiting(w, &dev)?;
                st.flush_crypto(w)
            });
            match res {
                Ok(()) => {
                    if self
                        .store
                        .read(|r| r.outbox(&dev, 1))
                        .is_ok_and(|o| o.first().is_some_and(|(_, it)| it.sealed.is_some()))
                    {
                        return self.pump(dev);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot seal the outbox");
                    self.reload_crypto();
                }
            }
        } else if envelopes.is_empty()
            && mailbox.is_some()
            && let Some(bundle) = device.prekey.clone()
        {
            // No session, the device is away, but its record carries a signed fallback
            // pre-key: open the session from it, seal, and leave the envelopes with a mailbox.
            let ok = self.write_then(
                "cannot open a session from a published pre-key",
                |st, w, after| st.on_prekey(w, peer, dev, bundle, after),
            );
            if ok
                && self
                    .store
                    .read(|r| r.outbox(&dev, 1))
                    .is_ok_and(|o| o.first().is_some_and(|(_, it)| it.sealed.is_some()))
            {
                return self.pump(dev);
            }
            return;
        }
        let tag = self.st.tag();
        let (req, pending, peer, addrs) = if envelopes.is_empty() {
            (Request::ClaimPrekey, Pending::Claim { dev }, peer, addrs)
        } else {
            let via_mailbox = mailbox.is_some();
            let (to, to_addrs) = mailbox.unwrap_or((peer, addrs));
            (
                Request::Deliver { envelopes },
                Pending::Deliver {
                    dev,
                    seqs,
                    via_mailbox,
                },
                to,
                to_addrs,
            )
        };
        // Deposits go from a throwaway identity, so the mailbox cannot tell who writes to its
        // user (sealed sender toward the mailbox), unless it can only be reached through a
        // relay, which that swarm cannot dial.
        let anonymous = matches!(
            pending,
            Pending::Deliver {
                via_mailbox: true,
                ..
            }
        ) && addrs.iter().any(|a| !kith_net::reach::is_circuit(a));
        let cmd = if anonymous {
            NetCommand::Deposit {
                tag,
                peer,
                addrs,
                req,
            }
        } else {
            NetCommand::Request {
                tag,
                peer,
                addrs,
                req,
            }
        };
        match self.st.net.send(cmd) {
            Ok(()) => {
                self.st.pending.insert(tag, pending);
                self.st.delivery.sent(dev);
            }
            Err(_) => self.failed(dev),
        }
    }

    fn read_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Call(c) => c.read(self),
            // Group test hooks run in a write batch (see `apply`).
            #[cfg(feature = "test-hooks")]
            Cmd::Group(_) => {}
            Cmd::Shutdown(tx) => {
                let _ = tx.send(());
            }
        }
    }

    /// `verify`: the safety number with a contact.
    fn verify(&self, with: &str) -> Result<Verification, EngineError> {
        self.store
            .read(|r| r.contact_by_name(with))
            .map_err(internal)
            .and_then(|c| c.ok_or(EngineError::UnknownContact(with.to_string())))
            .map(|c| {
                let theirs = IdentityKey(c.identity);
                Verification {
                    name: c.name,
                    safety_number: safety_number(&self.st.me, &theirs),
                    mine: self.st.me.to_hex(),
                    theirs: theirs.to_hex(),
                }
            })
    }

    /// `status`: connections, outbox, reachability.
    fn status(&self) -> Result<NodeStatus, EngineError> {
        let (outbox, mailbox_users) = self
            .store
            .read(|r| {
                let mut n = 0;
                for d in r.outbox_devices()? {
                    n += r.outbox_len(&d)?;
                }
                Ok((n, r.mailbox_users_len()?))
            })
            .unwrap_or((0, 0));
        let reach = self.st.net.reachability();
        Ok(NodeStatus {
            peer_id: self.st.net.local_peer().to_string(),
            connected_peers: self.st.connected.iter().map(|p| p.to_string()).collect(),
            outbox,
            mailbox_users,
            reachability: reach.status.as_str().to_string(),
            relays: reach.relays.iter().map(|p| p.to_string()).collect(),
            relay_reservations: reach.served_reservations,
            relay_circuits: reach.served_circuits,
        })
    }

    fn info(&self) -> Result<NodeInfo, EngineError> {
        let peer = self.st.net.local_peer();
        let addrs = self.st.advertised_addrs();
        let card = ContactCard {
            version: 1,
            identity: self.st.me.0,
            peer_id: peer.to_bytes(),
            addrs: addrs.iter().map(|a| a.to_vec()).collect(),
        };
        Ok(NodeInfo {
            code: card.to_code().map_err(internal)?,
            peer_id: peer.to_string(),
            addrs: addrs.iter().map(|a| format!("{a}/p2p/{peer}")).collect(),
            identity: self.st.me.short(),
        })
    }

    fn contacts(&self) -> Result<Vec<ContactView>, EngineError> {
        self.store
            .read(|r| {
                let devices = r.devices()?;
                let mut out = Vec::new();
                for c in r.contacts()? {
                    let mut connected = false;
                    let mut pending = 0;
                    for d in devices.iter().filter(|d| d.identity == c.identity) {
                        if let Ok(p) = PeerId::from_bytes(&d.peer_id) {
                            connected |= self.st.connected.contains(&p);
                        }
                        pending += r.outbox_len(&device_key(&d.peer_id))?;
                    }
                    let mut v =
                        ContactView::new(c.name, IdentityKey(c.identity).short(), c.added_by_user);
                    v.connected = connected;
                    v.pending = pending;
                    let extra = r.contact_extra(&c.identity)?;
                    self.st
                        .social
                        .fill_view(&mut v, &c.identity, &extra, &self.st.data_dir);
                    out.push(v);
                }
                out.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(out)
            })
            .map_err(internal)
    }

    fn history(&self, with: &str, limit: usize) -> Result<Vec<MessageView>, EngineError> {
        self.store
            .read(|r| {
                let Some(c) = r.contact_by_name(with)? else {
                    return Ok(Err(EngineError::UnknownContact(with.to_string())));
                };
                let mut msgs = r.history(&c.identity, limit)?;
                keep_newest_texts(&mut msgs, |m| m.text.len());
                Ok(Ok(msgs
                    .into_iter()
                    .map(|(_, m)| MessageView {
                        id: MessageId(m.id).to_string(),
                        from: if m.outgoing {
                            "me".into()
                        } else {
                            c.name.clone()
                        },
                        text: m.text,
                        status: m.status.as_str().into(),
                        sent_at: m.sent_at_ms,
                    })
                    .collect()))
            })
            .map_err(internal)?
    }
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
            if device.cert().identity != keys.identity.public().0 {
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

/// A mailbox given by its contact code, or by an address ending in `/p2p/<peer id>`.
/// Keeps a history answer to a sane size: the newest messages (oldest first in `msgs`)
/// whose texts add up to at most MAX_HISTORY_BYTES (10,000 texts of 48 KiB would not fit
/// the client's 64 MiB line).
fn keep_newest_texts<K, M>(msgs: &mut Vec<(K, M)>, len: impl Fn(&M) -> usize) {
    let mut total = 0usize;
    let keep = msgs
        .iter()
        .rev()
        .take_while(|(_, m)| {
            total += len(m);
            total <= MAX_HISTORY_BYTES
        })
        .count();
    msgs.drain(..msgs.len() - keep);
}

fn mailbox_from(code: &str) -> Result<MailboxRef, EngineError> {
    if code.starts_with('/') {
        let addr: Multiaddr = code
            .parse()
            .map_err(|e| EngineError::BadCode(format!("not a multiaddr: {e}")))?;
        return match addr.iter().last() {
            Some(Protocol::P2p(peer)) => Ok(MailboxRef {
                peer_id: peer.to_bytes(),
                addrs: vec![addr.to_vec()],
            }),
            _ => Err(EngineError::BadCode(
                "a mailbox address must end in /p2p/<peer id>".into(),
            )),
        };
    }
    let card = ContactCard::from_code(code).map_err(|e| EngineError::BadCode(e.to_string()))?;
    if PeerId::from_bytes(&card.peer_id).is_err() {
        return Err(EngineError::BadCode("bad peer id".into()));
    }
    Ok(MailboxRef {
        peer_id: card.peer_id,
        addrs: card.addrs,
    })
}

fn load_mailboxes(store: &Store) -> Vec<MailboxRef> {
    store
        .read(|r| r.meta("mailboxes"))
        .ok()
        .flatten()
        .and_then(|b| kith_proto::codec::decode(&b, 16 * 1024).ok())
        .unwrap_or_default()
}

fn decode_addrs(addrs: &[Vec<u8>]) -> Vec<Multiaddr> {
    addrs
        .iter()
        .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
        .collect()
}

fn valid_name(name: &str) -> Result<String, EngineError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(EngineError::BadName(format!("1 to {MAX_NAME} characters")));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(EngineError::BadName("no control characters".into()));
    }
    Ok(name.to_string())
}

fn reply<T: Send + 'static>(tx: Reply<T>, value: Result<T, EngineError>) -> After {
    After::Reply(Box::new(move |committed| {
        let _ = tx.send(committed.and(value));
    }))
}

fn envelope_hash(env: &Envelope) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([env.kind]);
    h.update(&env.ciphertext);
    h.finalize().into()
}

impl State {
    /// Sends a command to the network, or keeps it until there is room (never dropped
    /// silently; see [`Backlog`]).
    fn net_send(&mut self, cmd: NetCommand) {
        self.backlog.send(&self.net, cmd);
    }

    /// `mailbox.list`: the mailboxes this device is registered with.
    fn mailbox_views(&self) -> Vec<MailboxView> {
        self.my_mailboxes
            .iter()
            .map(|m| self.mailbox_view(&m.peer_id))
            .collect()
    }

    /// `push.set` / `push.clear`: stores the endpoint (or its removal); after the commit it
    /// goes to every mailbox and `reply` is answered when they all did.
    fn set_push_endpoint(
        &mut self,
        w: &mut WriteTx<'_>,
        endpoint: Option<String>,
        reply: Reply<PushView>,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        if let Some(url) = &endpoint
            && let Err(e) = kith_proto::wire::check_push_endpoint(url)
        {
            let _ = reply.send(Err(EngineError::BadEndpoint(e.to_string())));
            return Ok(());
        }
        match &endpoint {
            Some(url) => w.set_meta("push_endpoint", url.as_bytes())?,
            None => w.remove_meta("push_endpoint")?,
        }
        after.push(After::PushAll(endpoint, reply));
        Ok(())
    }

    /// Dials every mailbox this device is registered with.
    fn dial_mailboxes(&mut self) {
        let dials: Vec<NetCommand> = self
            .my_mailboxes
            .iter()
            .filter_map(|m| {
                let peer = PeerId::from_bytes(&m.peer_id).ok()?;
                Some(NetCommand::Dial {
                    peer,
                    addrs: decode_addrs(&m.addrs),
                })
            })
            .collect();
        for d in dials {
            self.net_send(d);
        }
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    fn mailbox_view(&self, peer_id: &[u8]) -> MailboxView {
        let u = self.mailbox_usage.get(peer_id).copied().unwrap_or_default();
        MailboxView {
            peer_id: PeerId::from_bytes(peer_id)
                .map(|p| p.to_string())
                .unwrap_or_default(),
            quota: u.max_messages,
            quota_bytes: u.max_bytes,
            used_messages: u.used_messages,
            used_bytes: u.used_bytes,
            updated_at: u.at_ms,
        }
    }

    fn push_view(&self) -> PushView {
        PushView {
            set: self.push_endpoint.is_some(),
            host: self.push_endpoint.as_deref().map(log_host),
            mailboxes: self
                .my_mailboxes
                .iter()
                .map(|m| PushMailboxView {
                    peer_id: PeerId::from_bytes(&m.peer_id)
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    status: self
                        .push_status
                        .get(&m.peer_id)
                        .cloned()
                        .unwrap_or_else(|| "not sent yet".into()),
                })
                .collect(),
        }
    }

    /// One mailbox answered a push endpoint change (or could not be reached); `refused`
    /// carries the reason it refused, if it did.
    fn push_result(
        &mut self,
        mailbox: &[u8],
        wait: Option<u64>,
        status: String,
        refused: Option<String>,
    ) {
        if self.my_mailboxes.iter().any(|m| m.peer_id == mailbox) {
            self.push_status.insert(mailbox.to_vec(), status);
        }
        let Some(id) = wait else { return };
        let Some(w) = self.push_waits.get_mut(&id) else {
            return;
        };
        w.waiting = w.waiting.saturating_sub(1);
        if let Some(r) = refused {
            let who = PeerId::from_bytes(mailbox)
                .map(|p| p.to_string())
                .unwrap_or_default();
            w.refused.push(format!("mailbox {who} {r}"));
        }
        if w.waiting == 0
            && let Some(w) = self.push_waits.remove(&id)
        {
            let r = if w.refused.is_empty() {
                Ok(self.push_view())
            } else {
                Err(EngineError::PushRefused(w.refused.join("; ")))
            };
            let _ = w.reply.send(r);
        }
    }

    /// Stores the quota figures a mailbox gave at registration.
    fn save_usage(
        &mut self,
        w: &mut WriteTx<'_>,
        mailbox: &[u8],
        u: MailboxUsage,
    ) -> Result<(), StoreError> {
        self.mailbox_usage.insert(mailbox.to_vec(), u);
        let mine: HashSet<&Vec<u8>> = self.my_mailboxes.iter().map(|m| &m.peer_id).collect();
        self.mailbox_usage
            .retain(|k, _| mine.contains(k) || k.as_slice() == mailbox);
        let list: Vec<(Vec<u8>, MailboxUsage)> = self
            .mailbox_usage
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let bytes =
            kith_proto::codec::encode(&list).map_err(|e| StoreError::Encode(e.to_string()))?;
        w.set_meta("mailbox_usage", &bytes)
    }

    /// As a mailbox: whether a device may be woken now (at most once per [`WAKE_EVERY`]);
    /// records the wake-up if so.
    fn may_wake(&mut self, dev: [u8; 32]) -> bool {
        self.wakes.allow(dev, Instant::now())
    }

    /// Listen addresses worth telling others: no unspecified ones, and loopback only when
    /// there is nothing else.
    fn advertised_addrs(&self) -> Vec<Multiaddr> {
        use kith_net::Multiaddr as M;
        let all: Vec<M> = self
            .net
            .listen_addrs()
            .into_iter()
            .filter(|a| {
                !a.iter().any(|p| {
                    matches!(p,
                        Protocol::Ip4(ip) if ip.is_unspecified())
                        || matches!(p, Protocol::Ip6(ip) if ip.is_unspecified())
                })
            })
            .collect();
        let non_loop: Vec<M> = all
            .iter()
            .filter(|a| {
                !a.iter().any(|p| {
                    matches!(p, Protocol::Ip4(ip) if ip.is_loopback())
                        || matches!(p, Protocol::Ip6(ip) if ip.is_loopback())
                })
            })
            .cloned()
            .collect();
        let (circuits, direct): (Vec<M>, Vec<M>) = if non_loop.is_empty() { all } else { non_loop }
            .into_iter()
            .partition(kith_net::reach::is_circuit);
        // Relay addresses always get room: behind NAT they are the only ones that work.
        let mut circuits = circuits;
        circuits.truncate(MAX_DEVICE_ADDRS / 2);
        let mut out = direct;
        out.truncate(MAX_DEVICE_ADDRS - circuits.len());
        out.extend(circuits);
        out
    }

    /// Takes a device's sessions out of the cache (loading them on a miss); the caller puts
    /// them back with `self.sessions.insert`.
    fn take_sessions(
        &mut self,
        w: &WriteTx<'_>,
        dev: &[u8; 32],
        curve: [u8; 32],
    ) -> Result<PeerSessions, StoreError> {
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
    fn flush_crypto(&mut self, w: &mut WriteTx<'_>) -> Result<(), StoreError> {
        let queued: Vec<[u8; 32]> = std::mem::take(&mut self.to_seal).into_iter().collect();
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

    fn apply(
        &mut self,
        w: &mut WriteTx<'_>,
        work: Work,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        match work {
            Work::Cmd(Cmd::Call(c)) if c.kind() == Kind::Write => c.write(self, w, after)?,
            #[cfg(feature = "test-hooks")]
            Work::Cmd(Cmd::Group(c)) => self.group_cmd(w, c, after)?,
            Work::Cmd(other) => after.push(After::Read(other)),
            Work::Net(NetEvent::InboundRequest { id, peer, req }) => match req {
                Request::ClaimPrekey => {
                    let bundle = self.claim(peer);
                    after.push(After::Respond {
                        id,
                        resp: Response::Prekey(bundle),
                    });
                }
                Request::Deliver { envelopes } => {
                    let results = self.receive(w, peer, envelopes, after)?;
                    after.push(After::Respond {
                        id,
                        resp: Response::Delivered { results },
                    });
                }
                Request::Register { cert, token } => {
                    let resp = self.register(w, peer, cert, token, after)?;
                    after.push(After::Respond { id, resp });
                }
                Request::SetPush { endpoint } => {
                    let resp = self.set_push(w, peer, endpoint)?;
                    after.push(After::Respond { id, resp });
                }
                Request::GroupSync { group, have } => {
                    let resp = self.answer_group_sync(w, peer, group, have)?;
                    after.push(After::Respond { id, resp });
                }
                Request::Watch { topics } => {
                    let resp = self.answer_watch(w, peer, topics, after)?;
                    after.push(After::Respond { id, resp });
                }
                Request::TopicSync { topic, have } => {
                    let resp = self.answer_topic_sync(w, peer, &topic, &have)?;
                    after.push(After::Respond { id, resp });
                }
                _ => after.push(After::Respond {
                    id,
                    resp: Response::Refused(Refusal::Invalid),
                }),
            },
            Work::Net(NetEvent::Response {
                tag,
                peer,
                result: Ok(resp),
            }) => {
                if let Some(p) = self.pending.remove(&tag) {
                    self.on_response(w, peer, p, resp, after)?;
                }
            }
            Work::Net(NetEvent::PeerAddrs { peer, addrs }) => {
                let dev = device_key(&peer.to_bytes());
                if let Some(mut d) = w.device(&dev)? {
                    let mut merged: Vec<Vec<u8>> = addrs.iter().map(|a| a.to_vec()).collect();
                    for a in &d.addrs {
                        if !merged.contains(a) {
                            merged.push(a.clone());
                        }
                    }
                    merged.truncate(MAX_DEVICE_ADDRS);
                    if merged != d.addrs {
                        d.addrs = merged;
                        w.put_device(&dev, &d)?;
                    }
                    after.push(After::Pump(dev));
                }
            }
            Work::Net(NetEvent::Gossip {
                id,
                source,
                author,
                topic,
                data,
            }) => {
                self.on_gossip(w, (id, source), author, &topic, &data, after)?;
            }
            Work::Net(NetEvent::GossipSent { tag, result }) => {
                if let Err(e) = &result {
                    debug!(error = %e, "group frame not published now; members fetch it later");
                }
                self.on_published(w, tag, result.is_ok(), after)?;
            }
            Work::Net(NetEvent::Record { tag, value }) => {
                if let (Some(identity), Some(value)) = (self.record_tags.remove(&tag), value) {
                    self.on_record(w, identity, &value, after)?;
                }
            }
            Work::Net(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_record_is_published_again_soon_then_less_often() {
        assert_eq!(record_retry_after(0), Duration::from_secs(2));
        assert_eq!(record_retry_after(1), Duration::from_secs(2));
        assert_eq!(record_retry_after(2), Duration::from_secs(4));
        assert_eq!(record_retry_after(7), Duration::from_secs(128));
        assert_eq!(record_retry_after(8), Duration::from_secs(256));
        assert_eq!(record_retry_after(9), MAX_RECORD_RETRY);
        assert_eq!(record_retry_after(u32::MAX), MAX_RECORD_RETRY);
        assert!(MAX_RECORD_RETRY < REPUBLISH_EVERY);
    }
}
