//! Group chats: membership ops, sender keys, frames on gossipsub, catching up, receipts.
//!
//! - Membership changes only through signed ops ([`kith_proto::group`]); every member computes
//!   the state from the whole set of ops with the same rule. Ops (and the certificates of
//!   member devices) travel pairwise through the durable outbox: to existing members as they
//!   are made, and the whole log to a member who is added. An admin often learns a member
//!   device's certificate only after its ops went out (when it first claims the device's
//!   pre-key); it then passes the certificate on to the other members, who may not be that
//!   member's contacts and have no other way to know the device.
//! - Each device sends with its own Megolm session per group ([`OutboundGroup`]), whose key
//!   goes pairwise to every other member device. When the members change (someone leaves,
//!   is removed or is added), the session is dropped and the next message starts a new one
//!   that only the members of that moment get: who left cannot open what comes after, who
//!   is added cannot open what came before. The sender keeps its own copy of each session
//!   from its start; a member device it learns of only after sending gets the session from
//!   there (so every member reads everything sent while it was a member), and on a first
//!   key a member asks the sender for the frames it did not keep.
//! - A message is a [`GroupFrame`], published on the group's gossipsub topic and kept by every
//!   member. Frames carry the sender's seq and a Lamport clock: a member that sees a gap, or
//!   a member joining the topic, or a timer, asks a member for what it lacks
//!   ([`Request::GroupSync`]). Messages are shown in (lamport, sender, seq) order, which is the
//!   same on every member whatever the order of arrival.
//! - Receipts go pairwise to the sender, which counts them per member.

use std::collections::{BTreeMap, BTreeSet};

use kith_crypto::{InboundGroup, OutboundGroup};
use kith_net::{GossipId, Verdict};
use kith_proto::group::{GroupLog, GroupOp, GroupState, Inserted, Key, OpKind};
use kith_proto::groupwire::{
    GroupContent, GroupFrame, GroupPlain, MAX_SYNC_BYTES, MAX_SYNC_FRAMES, MAX_SYNC_MARKS,
    SenderMark, group_topic,
};
use kith_proto::wire::{MAX_UPDATE_DEVICES, MAX_UPDATE_OPS};
use kith_store::{FrameRow, GroupMessage, GroupMsgKey, GroupRow, SenderRow};

use super::*;

/// Most groups a node keeps.
pub const MAX_GROUPS: usize = 1024;
/// Most frames waiting for their key, per group; more are dropped (sync fetches them again).
pub const MAX_PENDING_FRAMES: u64 = 20_000;
/// Frames kept per sender to answer members who missed them.
pub const KEEP_FRAMES_PER_SENDER: u64 = 10_000;
/// A new sending session after this many messages (as Matrix clients do).
pub const ROTATE_AFTER: u32 = 1000;
/// How often each group catches up with a connected member, at least.
pub const GROUP_SYNC_EVERY: Duration = Duration::from_secs(30);
/// Least time between two catch-ups of one group with one peer.
const SYNC_GAP: Duration = Duration::from_secs(2);
/// How long a catch-up request may take before another may start.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Member devices a node keeps a connection to per group (the gossipsub mesh forms over them).
const GROUP_DIALS: usize = 8;
/// Mailboxes of member devices a member dials per group in its round, at most.
pub const MEMBER_MAILBOX_DIALS: usize = 16;
/// Most (group, peer) catch-up times remembered.
const MAX_SYNC_ENTRIES: usize = 8192;
/// Encoded bytes of ops per `GroupUpdate` body (below the sealed-payload limit).
const UPDATE_BYTES: usize = 40 * 1024;
/// How long a delivery receipt for a group message waits for others to the same sender
/// device, so that one pairwise message carries them all.
pub const RECEIPT_DELAY: Duration = Duration::from_secs(1);
/// Most (sender device, group) receipt batches waiting; a receipt that finds no room goes
/// out on its own at once.
const MAX_DUE_RECEIPTS: usize = 4096;

/// What a user asks of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// Add a contact.
    Add(String),
    /// Remove a member.
    Remove(String),
    /// Make a member an admin.
    Promote(String),
    /// Make an admin a plain member.
    Demote(String),
    /// Rename the group.
    Rename(String),
    /// Set the description.
    Describe(String),
    /// Leave the group.
    Leave,
    /// Forget a group this user left or was removed from (hide it, leave its topic).
    Delete,
}

pub(super) enum GroupCmd {
    Create {
        name: String,
        members: Vec<String>,
        reply: Reply<GroupView>,
    },
    Change {
        group: String,
        change: GroupChange,
        reply: Reply<GroupView>,
    },
    List(Reply<Vec<GroupSummary>>),
    Info {
        group: String,
        reply: Reply<GroupView>,
    },
    Send {
        group: String,
        text: String,
        reply: Reply<Sent>,
    },
    History {
        group: String,
        limit: usize,
        reply: Reply<Vec<GroupItemView>>,
    },
    MarkRead {
        group: String,
        reply: Reply<usize>,
    },
    Receipts {
        id: String,
        reply: Reply<ReceiptsView>,
    },
    #[cfg(feature = "test-hooks")]
    TestOps {
        group: String,
        reply: Reply<Vec<GroupOp>>,
    },
    #[cfg(feature = "test-hooks")]
    TestSign {
        group: String,
        kind: OpKind,
        reply: Reply<GroupOp>,
    },
    #[cfg(feature = "test-hooks")]
    TestPush {
        group: String,
        ops: Vec<GroupOp>,
        reply: Reply<()>,
    },
}

/// The groups a node knows, in memory (the store holds the truth).
#[derive(Default)]
pub(super) struct Groups {
    logs: HashMap<[u8; 16], GroupLog>,
    states: HashMap<[u8; 16], GroupState>,
    topics: HashMap<String, [u8; 16]>,
    outbound: HashMap<[u8; 16], OutboundGroup>,
    /// Every identity that is a member of one of our groups (they are not strangers).
    pub(super) people: HashSet<[u8; 32]>,
    last_sync: HashMap<([u8; 16], PeerId), Instant>,
    syncing: HashMap<[u8; 16], Instant>,
    publishing: HashMap<u64, GroupMsgKey>,
    last_round: Option<Instant>,
    /// Keys that came before the ops making their sender (or us) a member:
    /// (group, sender device, key, seq), oldest first.
    early_keys: Vec<EarlyKey>,
    /// Delivery receipts waiting up to [`RECEIPT_DELAY`], per (sender device, group).
    receipts_due: HashMap<ReceiptTo, DueReceipts>,
}

/// Where a batch of group receipts goes: (sender device, group).
type ReceiptTo = ([u8; 32], [u8; 16]);

/// Delivery receipts for one sender device's messages in one group, not sent yet.
struct DueReceipts {
    /// The sender's identity (the pairwise conversation).
    identity: [u8; 32],
    ids: Vec<u128>,
    since: Instant,
    /// When the first of them arrived (the time the sender shows).
    at_ms: u64,
}

/// A key waiting for its group's ops: (group, sender device, key, seq).
type EarlyKey = ([u8; 16], [u8; 32], Vec<u8>, u64);

/// Most keys kept while their group's ops are on the way.
const MAX_EARLY_KEYS: usize = 1024;

fn hex16(id: &[u8; 16]) -> String {
    hex::encode(id)
}

fn group_err(msg: impl Into<String>) -> EngineError {
    EngineError::GroupRefused(msg.into())
}

impl Groups {
    /// Loads every group from the store.
    pub(super) fn load(store: &Store) -> Self {
        let mut g = Groups::default();
        let rows = store
            .read(|r| {
                let mut out = Vec::new();
                for (id, row) in r.groups()? {
                    out.push((id, row, r.group_ops(&id)?));
                }
                Ok(out)
            })
            .unwrap_or_default();
        for (id, row, ops) in rows {
            let ops: Vec<GroupOp> = ops.iter().filter_map(|b| GroupOp::decode(b).ok()).collect();
            let Some(create) = ops
                .iter()
                .find(|o| matches!(o.kind, OpKind::Create { .. }))
                .cloned()
            else {
                continue;
            };
            let Ok(mut log) = GroupLog::new(create) else {
                continue;
            };
            if log.id() != id {
                continue;
            }
            for op in ops {
                if !matches!(op.kind, OpKind::Create { .. }) {
                    let _ = log.insert(op);
                }
            }
            let (state, _) = log.state();
            if !row.deleted {
                g.topics.insert(group_topic(&id), id);
            }
            g.people.extend(state.members.iter().copied());
            g.states.insert(id, state);
            g.logs.insert(id, log);
        }
        g
    }

    /// The topics of groups not deleted (joined at startup).
    pub(super) fn topics(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }

    /// Whether this node joined a topic as a member (or former member) of its group.
    pub(super) fn has_topic(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    /// The groups `me` is a current member of, with their topics, in topic order.
    pub(super) fn current(&self, me: &[u8; 32]) -> Vec<(String, [u8; 16])> {
        let mut out: Vec<(String, [u8; 16])> = self
            .topics
            .iter()
            .filter(|(_, id)| self.states.get(*id).is_some_and(|s| s.members.contains(me)))
            .map(|(t, id)| (t.clone(), *id))
            .collect();
        out.sort();
        out
    }
}

/// What this node holds of a group's frames, per sender whose key it has (the marks of a
/// catch-up request). `None` when the store cannot be read.
pub(super) fn sync_marks(store: &Store, id: &[u8; 16]) -> Option<Vec<SenderMark>> {
    let rows = store.read(|r| r.group_senders(id)).ok()?;
    Some(
        rows.into_iter()
            .filter(|(_, row)| row.keyed)
            .take(MAX_SYNC_MARKS)
            .map(|(sender, row)| SenderMark {
                sender: Key(sender),
                seq: row.contiguous,
            })
            .collect(),
    )
}

impl Engine {
    /// Catch-up: each group, at most every [`GROUP_SYNC_EVERY`], asks one connected member
    /// for what it lacks (this covers messages lost at the tail, where no later frame shows
    /// a gap), and keeps a few member devices connected so the topic's mesh holds.
    /// Sends the delivery receipts that have waited long enough (all of them when `all`,
    /// as the node stops).
    pub(super) fn flush_group_receipts(&mut self, all: bool) {
        let due = self.st.take_due_receipts(all);
        if due.is_empty() {
            return;
        }
        self.write_then("cannot queue group receipts", |st, w, after| {
            for ((dev, group), d) in due {
                st.send_receipts(w, dev, d.identity, group, d.ids, d.at_ms, after)?;
            }
            Ok(())
        });
    }

    pub(super) fn groups_tick(&mut self) {
        self.flush_group_receipts(false);
        let now = Instant::now();
        if self
            .st
            .groups
            .last_round
            .is_some_and(|t| now.duration_since(t) < GROUP_SYNC_EVERY)
        {
            return;
        }
        self.st.groups.last_round = Some(now);
        let ids: Vec<[u8; 16]> = self.st.groups.topics.values().copied().collect();
        for id in ids {
            let Some(state) = self.st.groups.states.get(&id) else {
                continue;
            };
            if !state.members.contains(&self.st.me.0) {
                continue;
            }
            let members = state.members.clone();
            let devices = self
                .store
                .read(|r| member_devices(r.devices()?, &members, &self.st.me.0))
                .unwrap_or_default();
            // A sender must reach every member device with its key: members whose devices
            // are still unknown are looked up in the DHT (rate-limited). Members who only
            // read need no lookups: a sender's key arrives with its device's certificate.
            let sending = self
                .store
                .read(|r| r.group(&id))
                .ok()
                .flatten()
                .is_some_and(|row| row.out_session.is_some());
            if sending {
                let known: HashSet<[u8; 32]> = devices.iter().map(|(_, d)| d.identity).collect();
                let me = self.st.me.0;
                for m in members.iter().filter(|m| **m != me && !known.contains(*m)) {
                    self.lookup_identity(*m);
                }
            }
            // Member devices that do not have our current key yet (learned since): share it.
            let unshared: Vec<[u8; 32]> = self
                .store
                .read(|r| r.group(&id))
                .ok()
                .flatten()
                .filter(|row| row.out_session.is_some())
                .map(|row| {
                    devices
                        .iter()
                        .filter(|(k, _)| !row.out_shared.contains(k))
                        .map(|(_, d)| d.identity)
                        .collect()
                })
                .unwrap_or_default();
            if !unshared.is_empty() {
                self.write_then("cannot share a group key", |st, w, after| {
                    for who in &unshared {
                        st.group_devices_appeared(w, *who, after)?;
                    }
                    Ok(())
                });
            }
            // The mailboxes of member devices (from their user records): one that keeps the
            // group's frames for its user hears them only while connected to someone on the
            // topic, so members keep a few of them connected while that user is away.
            let mut mailboxes: Vec<(PeerId, Vec<Multiaddr>)> = Vec::new();
            for m in devices.iter().flat_map(|(_, d)| d.mailboxes.iter()) {
                if mailboxes.len() >= MEMBER_MAILBOX_DIALS {
                    break;
                }
                if let Ok(p) = PeerId::from_bytes(&m.peer_id)
                    && p != self.st.net.local_peer()
                    && !mailboxes.iter().any(|(q, _)| *q == p)
                {
                    mailboxes.push((p, decode_addrs(&m.addrs)));
                }
            }
            // Dialled also when connected, which marks the link as in use (not idle).
            for (peer, addrs) in mailboxes {
                let _ = self.st.net.send(NetCommand::Dial { peer, addrs });
            }
            let mut connected: Vec<PeerId> = Vec::new();
            let mut others: Vec<(PeerId, Vec<Multiaddr>)> = Vec::new();
            for (_, d) in devices {
                let Ok(p) = PeerId::from_bytes(&d.peer_id) else {
                    continue;
                };
                if self.st.connected.contains(&p) {
                    connected.push(p);
                } else {
                    others.push((p, decode_addrs(&d.addrs)));
                }
            }
            if connected.len() < GROUP_DIALS {
                use rand::seq::SliceRandom;
                others.shuffle(&mut rand::rng());
                for (peer, addrs) in others.into_iter().take(GROUP_DIALS - connected.len()) {
                    let _ = self.st.net.send(NetCommand::Dial { peer, addrs });
                }
            }
            if let Some(p) = connected.get(rand::random::<u32>() as usize % connected.len().max(1))
            {
                self.group_sync(id, *p);
            }
        }
    }

    /// Asks `peer` for the frames of group `id` that this node lacks (at most one request
    /// per group in flight, and one per peer every [`SYNC_GAP`]).
    pub(super) fn group_sync(&mut self, id: [u8; 16], peer: PeerId) {
        let now = Instant::now();
        let g = &mut self.st.groups;
        if g.syncing
            .get(&id)
            .is_some_and(|t| now.duration_since(*t) < SYNC_TIMEOUT)
        {
            return;
        }
        if g.last_sync
            .get(&(id, peer))
            .is_some_and(|t| now.duration_since(*t) < SYNC_GAP)
        {
            return;
        }
        if g.last_sync.len() >= MAX_SYNC_ENTRIES {
            g.last_sync.retain(|_, t| now.duration_since(*t) < SYNC_GAP);
            if g.last_sync.len() >= MAX_SYNC_ENTRIES {
                g.last_sync.clear();
            }
        }
        g.last_sync.insert((id, peer), now);
        let Some(have) = sync_marks(&self.store, &id) else {
            return;
        };
        if have.is_empty() {
            return;
        }
        let tag = self.st.tag();
        let req = NetCommand::Request {
            tag,
            peer,
            addrs: Vec::new(),
            req: Request::GroupSync { group: id, have },
        };
        if self.st.net.send(req).is_ok() {
            self.st.groups.syncing.insert(id, now);
            self.st
                .pending
                .insert(tag, Pending::GroupSync { group: id });
        }
    }

    /// A peer joined one of our group topics: catch up with it (it may hold what we missed,
    /// and asks us in turn).
    pub(super) fn on_gossip_joined(&mut self, peer: PeerId, topic: &str) {
        if let Some(id) = self.st.groups.topics.get(topic).copied() {
            self.group_sync(id, peer);
        }
    }

    /// A catch-up request failed or was answered.
    pub(super) fn group_sync_done(&mut self, id: [u8; 16]) {
        self.st.groups.syncing.remove(&id);
    }
}

/// The devices of these members, other than this user's.
fn member_devices(
    devices: Vec<KnownDevice>,
    members: &BTreeSet<[u8; 32]>,
    me: &[u8; 32],
) -> Result<Vec<([u8; 32], KnownDevice)>, StoreError> {
    Ok(devices
        .into_iter()
        .filter(|d| members.contains(&d.identity) && &d.identity != me)
        .map(|d| (device_key(&d.peer_id), d))
        .collect())
}

impl State {
    /// Resolves a group given by id, unique id prefix (4+ hex digits) or unique name.
    fn find_group(
        &self,
        w: &WriteTx<'_>,
        q: &str,
    ) -> Result<Result<[u8; 16], EngineError>, StoreError> {
        let q = q.trim();
        let rows = w.groups()?;
        let visible: Vec<&([u8; 16], GroupRow)> = rows.iter().filter(|(_, r)| !r.deleted).collect();
        let lower = q.to_ascii_lowercase();
        if lower.len() >= 4 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<[u8; 16]> = visible
                .iter()
                .filter(|(id, _)| hex16(id).starts_with(&lower))
                .map(|(id, _)| *id)
                .collect();
            if hits.len() == 1 {
                return Ok(Ok(hits[0]));
            }
        }
        let by_name: Vec<[u8; 16]> = visible
            .iter()
            .filter(|(id, _)| self.groups.states.get(id).is_some_and(|s| s.name == q))
            .map(|(id, _)| *id)
            .collect();
        Ok(match by_name.len() {
            1 => Ok(by_name[0]),
            0 => Err(EngineError::UnknownGroup(format!(
                "no group named {q:?} (see `kith groups`)"
            ))),
            _ => Err(EngineError::UnknownGroup(format!(
                "several groups are named {q:?}; use the id from `kith groups`"
            ))),
        })
    }

    /// The display name of a member.
    fn member_name(&self, w: &WriteTx<'_>, identity: &[u8; 32]) -> Result<String, StoreError> {
        if identity == &self.me.0 {
            return Ok("me".into());
        }
        Ok(w.contact(identity)?
            .map(|c| c.name)
            .unwrap_or_else(|| format!("~{}", IdentityKey(*identity).short())))
    }

    /// Makes sure a member who is not a contact has a provisional contact (so their devices
    /// can be looked up and written to).
    fn ensure_member_contact(
        &mut self,
        w: &mut WriteTx<'_>,
        identity: &[u8; 32],
        peer_hint: Vec<u8>,
    ) -> Result<(), StoreError> {
        if identity == &self.me.0 || w.contact(identity)?.is_some() {
            return Ok(());
        }
        let name = stranger_name(w, identity)?;
        w.put_contact(&Contact {
            identity: *identity,
            name,
            added_ms: now_ms(),
            added_by_user: false,
            peer_hint,
            addr_hints: Vec::new(),
        })
    }

    /// Queues a body for one device (pairwise, durable).
    fn enqueue_dev(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: [u8; 32],
        conv: [u8; 32],
        bytes: Vec<u8>,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        w.push_outbox(
            &dev,
            &OutboxItem {
                conversation: conv,
                message_ids: Vec::new(),
                sealed: None,
                body: Some(bytes),
                queued_ms: now_ms(),
                resets: 0,
                covers: 0,
                covered: false,
            },
        )?;
        self.to_seal.insert(dev);
        after.push(After::Pump(dev));
        Ok(())
    }

    /// The certificates of the member devices this node knows (its own included).
    fn member_certs(
        &self,
        w: &WriteTx<'_>,
        members: &BTreeSet<[u8; 32]>,
    ) -> Result<Vec<DeviceCert>, StoreError> {
        let mut certs = vec![self.device.cert().clone()];
        for (_, d) in member_devices(w.devices()?, members, &self.me.0)? {
            if let Some(c) = d.cert {
                certs.push(c);
            }
        }
        certs.truncate(MAX_UPDATE_DEVICES);
        Ok(certs)
    }

    /// Sends ops (and member certificates) of a group to devices, cut into bodies that fit.
    fn send_ops(
        &mut self,
        w: &mut WriteTx<'_>,
        devices: &[([u8; 32], [u8; 32])],
        ops: &[GroupOp],
        certs: &[DeviceCert],
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        let mut chunk: Vec<GroupOp> = Vec::new();
        let mut size = 0usize;
        let enc = encode_body;
        for op in ops {
            let len = op.encode().map(|b| b.len()).unwrap_or(UPDATE_BYTES);
            if !chunk.is_empty() && (size + len > UPDATE_BYTES || chunk.len() >= MAX_UPDATE_OPS) {
                bodies.push(enc(&Body::GroupUpdate {
                    ops: std::mem::take(&mut chunk),
                    devices: Vec::new(),
                })?);
                size = 0;
            }
            size += len;
            chunk.push(op.clone());
        }
        // The certificates ride with the last ops, in bodies of their own if need be.
        let mut cert_chunks = certs.chunks(64);
        bodies.push(enc(&Body::GroupUpdate {
            ops: chunk,
            devices: cert_chunks.next().map(|c| c.to_vec()).unwrap_or_default(),
        })?);
        for c in cert_chunks {
            bodies.push(enc(&Body::GroupUpdate {
                ops: Vec::new(),
                devices: c.to_vec(),
            })?);
        }
        for (dev, conv) in devices {
            for b in &bodies {
                self.enqueue_dev(w, *dev, *conv, b.clone(), after)?;
            }
        }
        Ok(())
    }

    /// The ops of a group in the order every member applies them (`Create` first).
    fn ordered_ops(&self, id: &[u8; 16]) -> Vec<GroupOp> {
        let Some(log) = self.groups.logs.get(id) else {
            return Vec::new();
        };
        let (_, applied) = log.state();
        let mut out: Vec<GroupOp> = applied
            .iter()
            .filter_map(|a| log.get(&a.hash).cloned())
            .collect();
        // Ops that took no effect are part of the graph too (later ops name them).
        let mut seen: HashSet<[u8; 32]> = applied.iter().map(|a| a.hash).collect();
        let mut rest: Vec<(u64, [u8; 32], GroupOp)> = Vec::new();
        for op in log_ops(log) {
            if let Ok(h) = op.hash()
                && seen.insert(h)
            {
                rest.push((op.at_ms, h, op));
            }
        }
        rest.sort_by_key(|a| (a.0, a.1));
        out.extend(rest.into_iter().map(|(_, _, o)| o));
        out
    }

    /// Saves a group's new ops and recomputes its state; then shares keys with new member
    /// devices, drops the sending session when someone left, joins or leaves the topic, and
    /// reports what changed. Returns the ops that took effect.
    fn group_changed(
        &mut self,
        w: &mut WriteTx<'_>,
        id: [u8; 16],
        before: &GroupState,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let Some(log) = self.groups.logs.get(&id) else {
            return Ok(());
        };
        let (state, applied) = log.state();
        let mut row = w.group(&id)?.unwrap_or_default();
        let me = self.me.0;
        let was_member = before.members.contains(&me);
        let is_member = state.members.contains(&me);
        // Tell the user what changed.
        let name = state.name.clone();
        for a in applied
            .iter()
            .rev()
            .take(16)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if before.id == id && was_member && !changed_by(before, &state, a) {
                continue;
            }
            let text = self.describe_op(w, a)?;
            after.push(After::Event(Event::GroupChanged {
                group: name.clone(),
                text,
            }));
        }
        let topic = group_topic(&id);
        if is_member != was_member {
            // The topics our mailboxes keep for us follow the groups we are in.
            self.watching.changed();
        }
        if is_member && !was_member {
            row.gone = false;
            row.deleted = false;
            self.groups.topics.insert(topic.clone(), id);
            after.push(After::Net(NetCommand::Subscribe { topic }));
        } else if was_member && !is_member {
            // Left or removed: nothing more is sent; the topic stays joined until the user
            // deletes the group (its frames are ciphertext this node cannot open).
            row.gone = true;
            row.out_session = None;
            row.out_shared.clear();
            self.groups.outbound.remove(&id);
        }
        // Members who are not contacts get a provisional contact.
        for m in &state.members {
            if !before.members.contains(m) {
                self.ensure_member_contact(w, m, Vec::new())?;
            }
            self.groups.people.insert(*m);
        }
        if is_member {
            let removed = before.members.iter().any(|m| !state.members.contains(m));
            let added = state.members.iter().any(|m| !before.members.contains(m));
            let devices = member_devices(w.devices()?, &state.members, &me)?;
            if removed || added {
                // Someone left: the next message starts a new session they never get.
                // Someone joined: likewise, so that every session has the same members all
                // its life, and a member device learned of late may get it from its start
                // (`share_late`) without opening anything sent before its owner joined.
                row.out_session = None;
                row.out_shared.clear();
                self.groups.outbound.remove(&id);
            }
            // Keep a few member devices connected for the mesh.
            for (_, d) in devices.iter().take(GROUP_DIALS) {
                if let Ok(peer) = PeerId::from_bytes(&d.peer_id)
                    && !self.connected.contains(&peer)
                {
                    after.push(After::Net(NetCommand::Dial {
                        peer,
                        addrs: decode_addrs(&d.addrs),
                    }));
                }
            }
        }
        w.put_group(&id, &row)?;
        self.groups.states.insert(id, state);
        // Keys that were waiting for this change.
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.groups.early_keys)
            .into_iter()
            .partition(|(g, ..)| *g == id);
        self.groups.early_keys = waiting;
        for (g, curve, key, seq) in ready {
            self.on_group_key(w, curve, g, &key, seq, after)?;
        }
        Ok(())
    }

    /// Devices of `identity` became known (from the DHT, or a group timer found devices
    /// without our keys): each gets our sending sessions from their start.
    pub(super) fn group_devices_appeared(
        &mut self,
        w: &mut WriteTx<'_>,
        identity: [u8; 32],
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        if !self.groups.people.contains(&identity) {
            return Ok(());
        }
        let one: BTreeSet<[u8; 32]> = [identity].into_iter().collect();
        for (dev, d) in member_devices(w.devices()?, &one, &self.me.0)? {
            self.share_late(w, dev, d.identity, after)?;
        }
        Ok(())
    }

    /// Queues this device's current group session key for `devices` (device key, owner).
    fn share_key(
        &mut self,
        w: &mut WriteTx<'_>,
        id: [u8; 16],
        row: &mut GroupRow,
        devices: &[([u8; 32], [u8; 32])],
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let Some(out) = self.outbound_session(id, row) else {
            return Ok(());
        };
        let body = Body::GroupKey {
            group: id,
            key: out.session_key(),
            seq: row.next_seq.max(1),
        };
        let bytes = encode_body(&body)?;
        for (dev, owner) in devices {
            self.enqueue_dev(w, *dev, *owner, bytes.clone(), after)?;
            if !row.out_shared.contains(dev) {
                row.out_shared.push(*dev);
            }
        }
        Ok(())
    }

    /// A member device became known after this node's sending sessions started (members who
    /// are not each other's contacts learn each other's devices from the ops and from
    /// relayed certificates, sometimes after their first message): gives it each such
    /// session from its first index, so it opens everything sent since. Its owner was a
    /// member all along, as adding a member starts new sessions.
    fn share_late(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: [u8; 32],
        owner: [u8; 32],
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let me = self.me.0;
        let ids: Vec<[u8; 16]> = self
            .groups
            .states
            .iter()
            .filter(|(_, s)| s.members.contains(&me) && s.members.contains(&owner))
            .map(|(id, _)| *id)
            .collect();
        let my_curve = self.device.curve_key();
        for id in ids {
            let Some(mut row) = w.group(&id)? else {
                continue;
            };
            if row.out_shared.contains(&dev) {
                continue;
            }
            let Some((session, index)) = self
                .outbound_session(id, &row)
                .map(|o| (o.session_id(), o.message_index()))
            else {
                continue;
            };
            let own = w
                .group_inbound(&id, &my_curve, &session)?
                .and_then(|p| InboundGroup::restore(&p, &self.keys.storage).ok());
            let Some(own) = own else {
                // No copy (a session older than copies): the current key, which opens what
                // comes next only.
                self.share_key(w, id, &mut row, &[(dev, owner)], after)?;
                w.put_group(&id, &row)?;
                continue;
            };
            let (key, first) = own.export_first();
            // One frame per message: the session's message `i` went out as seq
            // `next_seq - (index - i)`.
            let seq = row
                .next_seq
                .saturating_sub(u64::from(index.saturating_sub(first)))
                .max(1);
            let body = Body::GroupKey {
                group: id,
                key,
                seq,
            };
            let bytes = encode_body(&body)?;
            self.enqueue_dev(w, dev, owner, bytes, after)?;
            row.out_shared.push(dev);
            w.put_group(&id, &row)?;
        }
        Ok(())
    }

    /// This node learned the certificate of a device (claiming its pre-key, or from a sealed
    /// message): if its owner is in a group with us, the device gets our sending sessions;
    /// and in the groups we are an admin of (admins send the ops, with the certificates they
    /// know), the other members may not know the device yet, so the certificate goes to
    /// them. Only admins pass certificates on, so that the cost stays at one small body per
    /// member device for each certificate an admin learns late, not one per member too.
    pub(super) fn member_cert_learned(
        &mut self,
        w: &mut WriteTx<'_>,
        cert: &DeviceCert,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let me = self.me.0;
        if cert.identity == me || !self.groups.people.contains(&cert.identity) {
            return Ok(());
        }
        let shared: Vec<BTreeSet<[u8; 32]>> = self
            .groups
            .states
            .values()
            .filter(|s| s.admins.contains(&me) && s.members.contains(&cert.identity))
            .map(|s| s.members.clone())
            .collect();
        if !shared.is_empty() {
            let body = Body::GroupUpdate {
                ops: Vec::new(),
                devices: vec![cert.clone()],
            };
            let bytes = encode_body(&body)?;
            let devices = w.devices()?;
            let mut told: HashSet<[u8; 32]> = HashSet::new();
            for members in &shared {
                for (k, d) in member_devices(devices.clone(), members, &me)? {
                    if d.identity != cert.identity && told.insert(k) {
                        self.enqueue_dev(w, k, d.identity, bytes.clone(), after)?;
                    }
                }
            }
        }
        self.share_late(w, device_key(&cert.peer_id), cert.identity, after)
    }

    /// The sending session of a group (from the cache or the row), if there is one.
    fn outbound_session(&mut self, id: [u8; 16], row: &GroupRow) -> Option<&mut OutboundGroup> {
        if !self.groups.outbound.contains_key(&id) {
            let pickle = row.out_session.as_ref()?;
            match OutboundGroup::restore(pickle, &self.keys.storage) {
                Ok(s) => {
                    self.groups.outbound.insert(id, s);
                }
                Err(e) => {
                    warn!(error = %e, "unreadable group session; a new one will start");
                    return None;
                }
            }
        }
        self.groups.outbound.get_mut(&id)
    }

    fn describe_op(
        &self,
        w: &WriteTx<'_>,
        a: &kith_proto::group::Applied,
    ) -> Result<String, StoreError> {
        // "You added Bob" / "Ada added you" rather than "me added Bob".
        let me = self.me.0;
        let who = if a.author == me {
            "You".to_string()
        } else {
            self.member_name(w, &a.author)?
        };
        let name = |k: &Key| -> Result<String, StoreError> {
            if k.0 == me {
                Ok("you".into())
            } else {
                self.member_name(w, &k.0)
            }
        };
        Ok(match &a.kind {
            OpKind::Create { name: n, .. } => format!("{who} created the group {n:?}"),
            OpKind::Add(k) => format!("{who} added {}", name(k)?),
            OpKind::Remove(k) => format!("{who} removed {}", name(k)?),
            OpKind::Promote(k) => format!("{who} made {} an admin", name(k)?),
            OpKind::Demote(k) => format!("{who} made {} a member", name(k)?),
            OpKind::Rename(n) => format!("{who} renamed the group to {n:?}"),
            OpKind::Describe(_) => format!("{who} changed the description"),
            OpKind::Leave => format!("{who} left"),
            _ => format!("{who} changed the group"),
        })
    }

    /// `kith group create`.
    pub(super) fn group_create(
        &mut self,
        w: &mut WriteTx<'_>,
        name: &str,
        members: &[String],
        after: &mut Vec<After>,
    ) -> Result<Result<GroupView, EngineError>, StoreError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > kith_proto::group::MAX_GROUP_NAME {
            return Ok(Err(EngineError::BadName(format!(
                "a group name has 1 to {} characters",
                kith_proto::group::MAX_GROUP_NAME
            ))));
        }
        if self.groups.logs.len() >= MAX_GROUPS {
            return Ok(Err(group_err(format!("at most {MAX_GROUPS} groups"))));
        }
        let mut keys = Vec::new();
        for m in members.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
            match w.contact_by_name(m)? {
                Some(c) if !keys.contains(&Key(c.identity)) => keys.push(Key(c.identity)),
                Some(_) => {}
                None => return Ok(Err(EngineError::UnknownContact(m.to_string()))),
            }
        }
        if keys.len() >= kith_proto::group::MAX_GROUP_MEMBERS {
            return Ok(Err(group_err("too many members")));
        }
        let identity = &self.keys.identity;
        let op = match GroupOp::new(
            [0; 16],
            Vec::new(),
            self.me.0,
            now_ms(),
            OpKind::Create {
                name: name.to_string(),
                members: keys,
            },
            |b| identity.sign(b),
        ) {
            Ok(op) => op,
            Err(e) => return Ok(Err(internal(e))),
        };
        let log = match GroupLog::new(op.clone()) {
            Ok(l) => l,
            Err(e) => return Ok(Err(group_err(e.to_string()))),
        };
        let id = log.id();
        self.save_op(w, id, &op)?;
        self.start_group(w, log)?;
        let before = GroupState::default();
        self.group_changed(w, id, &before, after)?;
        self.broadcast_ops(w, id, &before, &[op], after)?;
        self.group_view(w, id).map(Ok)
    }

    fn save_op(
        &mut self,
        w: &mut WriteTx<'_>,
        id: [u8; 16],
        op: &GroupOp,
    ) -> Result<(), StoreError> {
        let hash = op.hash().map_err(|e| StoreError::Encode(e.to_string()))?;
        let bytes = op.encode().map_err(|e| StoreError::Encode(e.to_string()))?;
        w.put_group_op(&id, &hash, &bytes)?;
        Ok(())
    }

    /// Sends new ops to the members: the whole log to members who were not in `before`,
    /// just `ops` to the others (and to those who just left, so they learn it).
    fn broadcast_ops(
        &mut self,
        w: &mut WriteTx<'_>,
        id: [u8; 16],
        before: &GroupState,
        ops: &[GroupOp],
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let Some(state) = self.groups.states.get(&id).cloned() else {
            return Ok(());
        };
        let mut everyone = state.members.clone();
        everyone.extend(before.members.iter().copied());
        let devices = member_devices(w.devices()?, &everyone, &self.me.0)?;
        let (fresh, known): (Vec<_>, Vec<_>) = devices
            .into_iter()
            .map(|(k, d)| (k, d.identity))
            .partition(|(_, who)| !before.members.contains(who));
        let certs = self.member_certs(w, &state.members)?;
        if !known.is_empty() {
            // Existing members may not know the new members' devices yet.
            let new_certs: Vec<DeviceCert> = certs
                .iter()
                .filter(|c| !before.members.contains(&c.identity))
                .cloned()
                .collect();
            self.send_ops(w, &known, ops, &new_certs, after)?;
        }
        if !fresh.is_empty() {
            let all = self.ordered_ops(&id);
            self.send_ops(w, &fresh, &all, &certs, after)?;
        }
        Ok(())
    }

    /// `kith group add|remove|promote|demote|rename|describe|leave|delete`.
    pub(super) fn group_change(
        &mut self,
        w: &mut WriteTx<'_>,
        q: &str,
        change: GroupChange,
        after: &mut Vec<After>,
    ) -> Result<Result<GroupView, EngineError>, StoreError> {
        let id = match self.find_group(w, q)? {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let Some(state) = self.groups.states.get(&id).cloned() else {
            return Ok(Err(EngineError::UnknownGroup(q.to_string())));
        };
        let me = self.me.0;
        if change == GroupChange::Delete {
            if state.members.contains(&me) {
                return Ok(Err(group_err("leave the group first (`kith group leave`)")));
            }
            let mut row = w.group(&id)?.unwrap_or_default();
            row.deleted = true;
            w.put_group(&id, &row)?;
            self.groups.topics.remove(&group_topic(&id));
            after.push(After::Net(NetCommand::Unsubscribe {
                topic: group_topic(&id),
            }));
            return self.group_view(w, id).map(Ok);
        }
        if !state.members.contains(&me) {
            return Ok(Err(group_err("you are no longer a member of this group")));
        }
        let admin = state.admins.contains(&me);
        let contact =
            |w: &WriteTx<'_>, n: &str| -> Result<Result<[u8; 32], EngineError>, StoreError> {
                if n == "me" {
                    return Ok(Ok(me));
                }
                Ok(match w.contact_by_name(n)? {
                    Some(c) => Ok(c.identity),
                    None => Err(EngineError::UnknownContact(n.to_string())),
                })
            };
        let kind = match &change {
            GroupChange::Leave => OpKind::Leave,
            GroupChange::Rename(n) | GroupChange::Describe(n) if !admin => {
                let _ = n;
                return Ok(Err(group_err(
                    "only admins can change the group's name and description",
                )));
            }
            GroupChange::Rename(n) => OpKind::Rename(n.trim().to_string()),
            GroupChange::Describe(d) => OpKind::Describe(d.to_string()),
            GroupChange::Add(n)
            | GroupChange::Remove(n)
            | GroupChange::Promote(n)
            | GroupChange::Demote(n) => {
                if !admin {
                    return Ok(Err(group_err("only admins can change members and admins")));
                }
                let who = match contact(w, n)? {
                    Ok(k) => k,
                    Err(e) => return Ok(Err(e)),
                };
                match change {
                    GroupChange::Add(_) if state.members.contains(&who) => {
                        return Ok(Err(group_err(format!("{n} is already a member"))));
                    }
                    GroupChange::Add(_)
                        if state.members.len() >= kith_proto::group::MAX_GROUP_MEMBERS =>
                    {
                        return Ok(Err(group_err("the group is full")));
                    }
                    GroupChange::Add(_) => OpKind::Add(Key(who)),
                    _ if !state.members.contains(&who) => {
                        return Ok(Err(group_err(format!("{n} is not a member"))));
                    }
                    GroupChange::Remove(_) if who == me => {
                        return Ok(Err(group_err("to leave, use `kith group leave`")));
                    }
                    GroupChange::Remove(_) => OpKind::Remove(Key(who)),
                    GroupChange::Promote(_) if state.admins.contains(&who) => {
                        return Ok(Err(group_err(format!("{n} is already an admin"))));
                    }
                    GroupChange::Promote(_) => OpKind::Promote(Key(who)),
                    GroupChange::Demote(_) if !state.admins.contains(&who) => {
                        return Ok(Err(group_err(format!("{n} is not an admin"))));
                    }
                    _ => OpKind::Demote(Key(who)),
                }
            }
            GroupChange::Delete => return Ok(Err(group_err("cannot delete"))),
        };
        if let OpKind::Rename(n) | OpKind::Describe(n) = &kind {
            let max = if matches!(kind, OpKind::Rename(_)) {
                kith_proto::group::MAX_GROUP_NAME
            } else {
                kith_proto::group::MAX_DESCRIPTION
            };
            if (matches!(kind, OpKind::Rename(_)) && n.is_empty()) || n.chars().count() > max {
                return Ok(Err(EngineError::BadName(format!("1 to {max} characters"))));
            }
        }
        let parents = match self.groups.logs.get(&id) {
            Some(l) => l.heads(),
            None => return Ok(Err(EngineError::UnknownGroup(q.to_string()))),
        };
        let identity = &self.keys.identity;
        let op = match GroupOp::new(id, parents, me, now_ms(), kind, |b| identity.sign(b)) {
            Ok(op) => op,
            Err(e) => return Ok(Err(internal(e))),
        };
        if let Some(log) = self.groups.logs.get_mut(&id)
            && let Err(e) = log.insert(op.clone())
        {
            return Ok(Err(group_err(e.to_string())));
        }
        self.save_op(w, id, &op)?;
        self.group_changed(w, id, &state, after)?;
        let now = self.groups.states.get(&id).cloned().unwrap_or_default();
        if now == state {
            warn!("a group op took no effect");
        }
        self.broadcast_ops(w, id, &state, &[op], after)?;
        self.group_view(w, id).map(Ok)
    }

    /// Ops (and member certificates) a peer sent pairwise.
    pub(super) fn on_group_update(
        &mut self,
        w: &mut WriteTx<'_>,
        from: [u8; 32],
        ops: Vec<GroupOp>,
        devices: Vec<DeviceCert>,
        peer: PeerId,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let mut touched: Vec<([u8; 16], GroupState)> = Vec::new();
        // Parents named by ops we now hold but never got: asked of the sender below.
        let mut wanted: BTreeMap<[u8; 16], BTreeSet<[u8; 32]>> = BTreeMap::new();
        for op in ops {
            if op.check().is_err() {
                after.push(After::Net(NetCommand::Penalize {
                    peer,
                    reason: "forged group op",
                }));
                continue;
            }
            let id = if matches!(op.kind, OpKind::Create { .. }) {
                match GroupOp::group_id_of(&op) {
                    Ok(id) => id,
                    Err(_) => continue,
                }
            } else {
                op.group
            };
            if !touched.iter().any(|(t, _)| *t == id) {
                let before = self.groups.states.get(&id).cloned().unwrap_or_default();
                touched.push((id, before));
            }
            match self.groups.logs.get_mut(&id) {
                Some(log) => match log.insert(op.clone()) {
                    Ok(Inserted::Duplicate) => continue,
                    Ok(Inserted::Missing(parents)) => {
                        wanted.entry(id).or_default().extend(parents);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        debug!(error = %e, "group op refused");
                        continue;
                    }
                },
                None => {
                    if !matches!(op.kind, OpKind::Create { .. }) {
                        // Ops of a group we do not know, without its start: nothing to apply.
                        continue;
                    }
                    if self.groups.logs.len() >= MAX_GROUPS {
                        warn!("too many groups; a new one is ignored");
                        continue;
                    }
                    match GroupLog::new(op.clone()) {
                        Ok(log) => self.start_group(w, log)?,
                        Err(_) => continue,
                    }
                }
            }
            self.save_op(w, id, &op)?;
        }
        // An op whose parents we lack does not count until they come (the state leaves it
        // out): ask the member who sent it, who holds them. Without this, one member could
        // stall others by sending an op to some members only and getting an admin to build
        // on it.
        for (id, parents) in wanted {
            let Some(log) = self.groups.logs.get(&id) else {
                continue;
            };
            let still: Vec<Key> = parents
                .into_iter()
                .filter(|p| log.get(p).is_none())
                .take(MAX_UPDATE_OPS)
                .map(Key)
                .collect();
            if !still.is_empty() && from != self.me.0 {
                debug!(n = still.len(), "asking for missing group ops");
                let body = Body::GroupWant {
                    group: id,
                    ops: still,
                };
                self.enqueue(w, &from, &body, Vec::new(), after)?;
            }
        }
        // Member devices: kept when their owner is a member of a group we are in.
        let mut learned: Vec<([u8; 32], [u8; 32])> = Vec::new();
        for cert in devices {
            let member = self.groups.logs.iter().any(|(id, l)| {
                touched.iter().any(|(t, _)| t == id) && l.state().0.members.contains(&cert.identity)
            }) || self.groups.people.contains(&cert.identity);
            if !member || cert.identity == self.me.0 || cert.validate().is_err() {
                continue;
            }
            let dev = device_key(&cert.peer_id);
            match w.device(&dev)? {
                Some(d) if d.identity != cert.identity => continue,
                Some(d) if d.cert.is_some() => continue,
                Some(mut d) => {
                    learned.push((dev, cert.identity));
                    d.cert = Some(cert);
                    w.put_device(&dev, &d)?;
                }
                None => {
                    learned.push((dev, cert.identity));
                    self.ensure_member_contact(w, &cert.identity, cert.peer_id.clone())?;
                    w.put_device(
                        &dev,
                        &KnownDevice {
                            identity: cert.identity,
                            peer_id: cert.peer_id.clone(),
                            cert: Some(cert),
                            addrs: Vec::new(),
                            mailboxes: Vec::new(),
                            prekey: None,
                        },
                    )?;
                }
            }
        }
        for (id, before) in touched {
            let now = self.groups.logs.get(&id).map(|l| l.state().0);
            if now.as_ref() != Some(&before) {
                self.group_changed(w, id, &before, after)?;
            }
        }
        // After the state changes (an addition among them starts new sessions): devices of
        // members learned now get the sessions this node already sends with.
        for (dev, owner) in learned {
            self.share_late(w, dev, owner, after)?;
        }
        Ok(())
    }

    /// A member device's session key arrived pairwise.
    pub(super) fn on_group_key(
        &mut self,
        w: &mut WriteTx<'_>,
        curve: [u8; 32],
        group: [u8; 16],
        key: &[u8],
        seq: u64,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let Ok(inbound) = InboundGroup::from_key(key) else {
            return Ok(());
        };
        // Only a current member gives keys (a removed member cannot start a session that
        // others would read). A key may come before the ops that make its sender (or us) a
        // member, from another path: it waits in memory until they arrive.
        let owner = match w.device_by_curve(&curve)? {
            Some(dev) => w.device(&dev)?.map(|d| d.identity),
            None => None,
        };
        let member = |st: &GroupState, who: &[u8; 32]| st.members.contains(who);
        let ok = match (self.groups.states.get(&group), owner) {
            (Some(st), Some(o)) => member(st, &o) && member(st, &self.me.0),
            _ => false,
        };
        if !ok {
            if self.groups.early_keys.len() >= MAX_EARLY_KEYS {
                self.groups.early_keys.remove(0);
            }
            self.groups
                .early_keys
                .push((group, curve, key.to_vec(), seq));
            return Ok(());
        }
        let session = inbound.session_id();
        w.put_group_inbound(
            &group,
            &curve,
            &session,
            &inbound.pickle(&self.keys.storage),
        )?;
        let mut row = w.group_sender(&group, &curve)?.unwrap_or_default();
        if !row.keyed {
            // The first key from this sender: nothing before `seq` can be opened here, so
            // there is nothing before it to wait for.
            row.keyed = true;
            if row.contiguous < seq.saturating_sub(1) {
                row.contiguous = seq.saturating_sub(1);
                w.drop_group_frames_pending_before(&group, &curve, seq)?;
            }
            advance(w, &group, &curve, &mut row)?;
            w.put_group_sender(&group, &curve, &row)?;
            // Frames it sent before this node knew its device were not kept: ask it for them
            // now rather than at the next round.
            if let Some(dev) = w.device_by_curve(&curve)?
                && let Some(d) = w.device(&dev)?
                && let Ok(peer) = PeerId::from_bytes(&d.peer_id)
            {
                after.push(After::GroupSync(group, peer));
            }
        }
        // Frames that waited for this key.
        for s in w.group_pending(&group, &curve)? {
            if let Some(fr) = w.group_frame(&group, &curve, s)?
                && let Ok(frame) = GroupFrame::decode(&fr.frame)
                && frame.session == session
            {
                self.open_frame(w, group, &frame, None, after)?;
            }
        }
        Ok(())
    }

    /// A frame from gossipsub: decide whether to forward it.
    pub(super) fn on_gossip(
        &mut self,
        w: &mut WriteTx<'_>,
        (id, source): (GossipId, PeerId),
        author: Option<PeerId>,
        topic: &str,
        data: &[u8],
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let verdict = match self.groups.topics.get(topic).copied() {
            // Not our group, but one of the devices this mailbox serves watches it.
            None if self.watching.keeps(topic) => {
                self.keep_watched(w, source, topic, data, after)?
            }
            None => Verdict::Ignore,
            Some(group) => match GroupFrame::decode(data) {
                Err(e) => {
                    warn!(%source, error = %e, "malformed group frame");
                    after.push(After::Net(NetCommand::Penalize {
                        peer: source,
                        reason: "malformed group frame",
                    }));
                    Verdict::Reject
                }
                Ok(frame) => {
                    let (sender, seq) = (frame.sender.0, frame.seq);
                    let v = self.take_frame(w, group, frame, author, Some(source), after)?;
                    // A mailbox that is a member too keeps what it forwards for its devices.
                    if v == Verdict::Accept && self.watching.keeps(topic) {
                        self.keep_frame(w, topic, &sender, seq, data)?;
                    }
                    v
                }
            },
        };
        after.push(After::Net(NetCommand::Validated {
            id,
            source,
            verdict,
        }));
        Ok(())
    }

    /// Checks, keeps and (when its key is here) opens a frame of `group`. `author`, for a
    /// gossiped frame, is its publisher (who must be the sending device); `source` is the
    /// peer that handed it over (asked to catch up when the frame shows a gap).
    pub(super) fn take_frame(
        &mut self,
        w: &mut WriteTx<'_>,
        group: [u8; 16],
        frame: GroupFrame,
        author: Option<PeerId>,
        source: Option<PeerId>,
        after: &mut Vec<After>,
    ) -> Result<Verdict, StoreError> {
        let sender = frame.sender.0;
        let my_curve = self.device.curve_key();
        if sender == my_curve {
            // Our own frame, come back: keep it if we lost it, nothing else.
            if w.group_frame(&group, &sender, frame.seq)?.is_none() {
                keep_frame(w, &group, &frame)?;
            }
            return Ok(Verdict::Ignore);
        }
        let Some(dev) = w.device_by_curve(&sender)? else {
            // A device we do not know (yet): do not forward, do not keep.
            return Ok(Verdict::Ignore);
        };
        let Some(device) = w.device(&dev)? else {
            return Ok(Verdict::Ignore);
        };
        if let Some(a) = author
            && a.to_bytes() != device.peer_id
        {
            return Ok(Verdict::Reject);
        }
        // Only current members' frames are kept and forwarded. (A frame its sender sent
        // just before leaving may arrive after; it is dropped. A new member's frames that
        // arrive before the op adding it are fetched again once its key is here.)
        let member = self
            .groups
            .states
            .get(&group)
            .is_some_and(|st| st.members.contains(&device.identity));
        if !member {
            return Ok(Verdict::Ignore);
        }
        if w.group_frame(&group, &sender, frame.seq)?.is_some() {
            return Ok(Verdict::Accept);
        }
        let mut srow = w.group_sender(&group, &sender)?.unwrap_or_default();
        if srow.keyed && frame.seq <= srow.contiguous {
            // Before the point this node can open (or already dropped): not needed.
            return Ok(Verdict::Accept);
        }
        keep_frame(w, &group, &frame)?;
        let gap = srow.keyed && frame.seq > srow.contiguous + 1;
        srow.max = srow.max.max(frame.seq);
        advance(w, &group, &sender, &mut srow)?;
        w.put_group_sender(&group, &sender, &srow)?;
        let verdict = self.open_frame(w, group, &frame, source, after)?;
        if gap && let Some(p) = source {
            after.push(After::GroupSync(group, p));
            after.push(After::TopicSync(group));
        }
        Ok(verdict)
    }

    /// Opens a kept frame if its key is here; otherwise marks it waiting.
    fn open_frame(
        &mut self,
        w: &mut WriteTx<'_>,
        group: [u8; 16],
        frame: &GroupFrame,
        source: Option<PeerId>,
        after: &mut Vec<After>,
    ) -> Result<Verdict, StoreError> {
        let sender = frame.sender.0;
        let Some(pickle) = w.group_inbound(&group, &sender, &frame.session)? else {
            if w.group_pending_count(&group)? < MAX_PENDING_FRAMES {
                w.set_group_pending(&group, &sender, frame.seq, true)?;
            }
            return Ok(Verdict::Accept);
        };
        let plain = InboundGroup::restore(&pickle, &self.keys.storage)
            .and_then(|mut s| s.decrypt(&frame.ciphertext))
            .ok()
            .and_then(|p| GroupPlain::decode(&p, &group, frame).ok());
        let Some(plain) = plain else {
            // The session is known but the frame does not open or does not match its header:
            // forged or damaged. Drop it.
            if let Some(p) = source {
                after.push(After::Net(NetCommand::Penalize {
                    peer: p,
                    reason: "group frame does not open",
                }));
            }
            w.drop_group_frame(&group, &sender, frame.seq)?;
            return Ok(Verdict::Reject);
        };
        w.set_group_pending(&group, &sender, frame.seq, false)?;
        let Some(dev) = w.device_by_curve(&sender)? else {
            return Ok(Verdict::Accept);
        };
        let Some(device) = w.device(&dev)? else {
            return Ok(Verdict::Accept);
        };
        let mut row = w.group(&group)?.unwrap_or_default();
        if frame.lamport > row.lamport {
            row.lamport = frame.lamport;
            w.put_group(&group, &row)?;
        }
        match plain.content {
            GroupContent::Text {
                id,
                sent_at_ms,
                text,
            } => {
                let key = GroupMsgKey {
                    group,
                    lamport: frame.lamport,
                    sender_dev: sender,
                    seq: frame.seq,
                };
                let msg = GroupMessage {
                    id,
                    sender: device.identity,
                    outgoing: false,
                    text: text.clone(),
                    sent_at_ms,
                    stored_at_ms: now_ms(),
                    recipients: 0,
                    flag: false,
                };
                if w.put_group_message(&key, &msg)? {
                    let from = self.member_name(w, &device.identity)?;
                    let gname = self
                        .groups
                        .states
                        .get(&group)
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    after.push(After::Event(Event::GroupMessage {
                        group: gname,
                        group_id: hex16(&group),
                        from,
                        id: MessageId(id).to_string(),
                        text,
                        sent_at: sent_at_ms,
                    }));
                    // ✓✓ for the sender (unless blocked), batched with the other
                    // receipts due to the same device within RECEIPT_DELAY.
                    if !self.social.blocked.contains(&device.identity) {
                        self.receipt_due(w, dev, device.identity, group, id, after)?;
                    }
                }
            }
            _ => debug!("a group message of a kind this version does not show"),
        }
        Ok(Verdict::Accept)
    }

    /// Queues a delivery receipt for `id` to its sender device; sends the batch at once
    /// when it is full or there is no room for another batch.
    fn receipt_due(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: [u8; 32],
        identity: [u8; 32],
        group: [u8; 16],
        id: u128,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let due = &mut self.groups.receipts_due;
        let key = (dev, group);
        if !due.contains_key(&key) && due.len() >= MAX_DUE_RECEIPTS {
            return self.send_receipts(w, dev, identity, group, vec![id], now_ms(), after);
        }
        let entry = due.entry(key).or_insert_with(|| DueReceipts {
            identity,
            ids: Vec::new(),
            since: Instant::now(),
            at_ms: now_ms(),
        });
        entry.ids.push(id);
        if entry.ids.len() >= MAX_RECEIPT_IDS
            && let Some(full) = due.remove(&key)
        {
            return self.send_receipts(w, dev, full.identity, group, full.ids, full.at_ms, after);
        }
        Ok(())
    }

    /// Queues one pairwise receipt body for these group messages of `dev`.
    #[allow(clippy::too_many_arguments)]
    fn send_receipts(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: [u8; 32],
        identity: [u8; 32],
        group: [u8; 16],
        ids: Vec<u128>,
        at_ms: u64,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let body = Body::GroupReceipt {
            group,
            kind: ReceiptKind::Delivered,
            ids,
            at_ms,
        };
        let bytes = encode_body(&body)?;
        self.enqueue_dev(w, dev, identity, bytes, after)
    }

    /// Takes the receipt batches that have waited [`RECEIPT_DELAY`] (all of them when
    /// `all`).
    fn take_due_receipts(&mut self, all: bool) -> Vec<(ReceiptTo, DueReceipts)> {
        let due = &mut self.groups.receipts_due;
        if due.is_empty() {
            return Vec::new();
        }
        let keys: Vec<ReceiptTo> = due
            .iter()
            .filter(|(_, d)| all || d.since.elapsed() >= RECEIPT_DELAY)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| due.remove(&k).map(|d| (k, d)))
            .collect()
    }

    /// Keeps a group this node just joined or made: its log in memory, a fresh row stored.
    fn start_group(&mut self, w: &mut WriteTx<'_>, log: GroupLog) -> Result<(), StoreError> {
        let id = log.id();
        self.groups.logs.insert(id, log);
        w.put_group(
            &id,
            &GroupRow {
                next_seq: 1,
                joined_ms: now_ms(),
                ..Default::default()
            },
        )
    }

    /// A member asks for ops it lacks: send those we hold (current members only).
    pub(super) fn on_group_want(
        &mut self,
        w: &mut WriteTx<'_>,
        from: [u8; 32],
        group: [u8; 16],
        want: Vec<Key>,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        if !self
            .groups
            .states
            .get(&group)
            .is_some_and(|s| s.members.contains(&from) && s.members.contains(&self.me.0))
        {
            return Ok(());
        }
        let Some(log) = self.groups.logs.get(&group) else {
            return Ok(());
        };
        let ops: Vec<GroupOp> = want
            .iter()
            .take(MAX_UPDATE_OPS)
            .filter_map(|h| log.get(&h.0).cloned())
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        let one: BTreeSet<[u8; 32]> = [from].into_iter().collect();
        let devices: Vec<([u8; 32], [u8; 32])> = member_devices(w.devices()?, &one, &self.me.0)?
            .into_iter()
            .map(|(dev, d)| (dev, d.identity))
            .collect();
        self.send_ops(w, &devices, &ops, &[], after)
    }

    /// Receipts from a member for our messages.
    pub(super) fn on_group_receipt(
        &mut self,
        w: &mut WriteTx<'_>,
        from: [u8; 32],
        group: [u8; 16],
        kind: ReceiptKind,
        ids: Vec<u128>,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        if !self
            .groups
            .states
            .get(&group)
            .is_some_and(|s| s.members.contains(&from))
        {
            return Ok(());
        }
        if kind == ReceiptKind::Read && !self.social.privacy.read_receipts {
            return Ok(());
        }
        let now = now_ms();
        for id in ids {
            let Some((key, msg)) = w.group_message(id)? else {
                continue;
            };
            if key.group != group || !msg.outgoing {
                continue;
            }
            let (d, r) = match kind {
                ReceiptKind::Delivered => (now, 0),
                ReceiptKind::Read => (now, now),
            };
            if w.put_group_receipt(id, &from, d, r)? {
                let rs = w.group_receipts(id)?;
                let delivered = rs.iter().filter(|x| x.1 > 0).count() as u32;
                let read = rs.iter().filter(|x| x.2 > 0).count() as u32;
                let gname = self
                    .groups
                    .states
                    .get(&group)
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                after.push(After::Event(Event::GroupStatus {
                    group: gname,
                    id: MessageId(id).to_string(),
                    delivered,
                    read,
                    of: msg.recipients,
                }));
            }
        }
        Ok(())
    }

    /// `kith send --group`.
    pub(super) fn group_send(
        &mut self,
        w: &mut WriteTx<'_>,
        q: &str,
        text: String,
        after: &mut Vec<After>,
    ) -> Result<Result<Sent, EngineError>, StoreError> {
        if text.is_empty() || text.len() > MAX_TEXT {
            return Ok(Err(EngineError::BadText { max: MAX_TEXT }));
        }
        let id = match self.find_group(w, q)? {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let Some(state) = self.groups.states.get(&id).cloned() else {
            return Ok(Err(EngineError::UnknownGroup(q.to_string())));
        };
        let me = self.me.0;
        if !state.members.contains(&me) {
            return Ok(Err(group_err("you are no longer a member of this group")));
        }
        let mut row = w.group(&id)?.unwrap_or_default();
        if self
            .outbound_session(id, &row)
            .is_some_and(|s| s.message_index() >= ROTATE_AFTER)
        {
            self.groups.outbound.remove(&id);
            row.out_session = None;
            row.out_shared.clear();
        }
        if row.out_session.is_none() || !self.groups.outbound.contains_key(&id) {
            // A new session: its key goes to every member device. This device keeps a copy
            // from index 0, for member devices it learns of later (`share_late`).
            let out = OutboundGroup::new();
            if let Ok(own) = InboundGroup::from_key(&out.session_key()) {
                w.put_group_inbound(
                    &id,
                    &self.device.curve_key(),
                    &out.session_id(),
                    &own.pickle(&self.keys.storage),
                )?;
            }
            self.groups.outbound.insert(id, out);
            row.out_session = Some(String::new());
            row.out_shared.clear();
            let devices: Vec<([u8; 32], [u8; 32])> =
                member_devices(w.devices()?, &state.members, &me)?
                    .into_iter()
                    .map(|(k, d)| (k, d.identity))
                    .collect();
            // Members whose devices are not known yet: ask the DHT (they get the session
            // from its start once found).
            let known: HashSet<[u8; 32]> = devices.iter().map(|(_, who)| *who).collect();
            for m in state
                .members
                .iter()
                .filter(|m| **m != me && !known.contains(*m))
            {
                after.push(After::Lookup(*m));
            }
            self.share_key(w, id, &mut row, &devices, after)?;
        }
        let seq = row.next_seq.max(1);
        let lamport = row.lamport + 1;
        let msg_id = self.ids.next_id();
        let now = now_ms();
        let plain = GroupPlain {
            group: id,
            seq,
            lamport,
            content: GroupContent::Text {
                id: msg_id.0,
                sent_at_ms: now,
                text: text.clone(),
            },
        };
        let plain = plain
            .encode()
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        let Some(out) = self.groups.outbound.get_mut(&id) else {
            return Ok(Err(EngineError::Internal("no group session".into())));
        };
        let session = out.session_id();
        let ciphertext = out.encrypt(&plain);
        row.out_session = Some(out.pickle(&self.keys.storage));
        row.next_seq = seq + 1;
        row.lamport = lamport;
        let my_curve = self.device.curve_key();
        let frame = GroupFrame {
            version: kith_proto::groupwire::FRAME_VERSION,
            sender: Key(my_curve),
            session,
            seq,
            lamport,
            ciphertext,
        };
        let bytes = frame
            .encode()
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        w.put_group_frame(
            &id,
            &my_curve,
            seq,
            &FrameRow {
                frame: bytes.clone(),
                at_ms: now,
            },
        )?;
        let mut srow = w.group_sender(&id, &my_curve)?.unwrap_or_default();
        srow.keyed = true;
        srow.max = seq;
        srow.contiguous = srow.contiguous.max(seq);
        w.put_group_sender(&id, &my_curve, &srow)?;
        w.put_group(&id, &row)?;
        let key = GroupMsgKey {
            group: id,
            lamport,
            sender_dev: my_curve,
            seq,
        };
        w.put_group_message(
            &key,
            &GroupMessage {
                id: msg_id.0,
                sender: me,
                outgoing: true,
                text,
                sent_at_ms: now,
                stored_at_ms: now,
                recipients: (state.members.len() - 1) as u32,
                flag: false,
            },
        )?;
        after.push(After::GroupPublish(key, group_topic(&id), bytes));
        Ok(Ok(Sent {
            id: msg_id.to_string(),
        }))
    }

    /// A publication went out (✓ sent) or not (members fetch it when they catch up).
    pub(super) fn on_published(
        &mut self,
        w: &mut WriteTx<'_>,
        tag: u64,
        ok: bool,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let Some(key) = self.groups.publishing.remove(&tag) else {
            return Ok(());
        };
        if !ok {
            return Ok(());
        }
        self.mark_sent(w, &key, after)
    }

    fn mark_sent(
        &mut self,
        w: &mut WriteTx<'_>,
        key: &GroupMsgKey,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        let Some(mut msg) = w.group_history_at(key)? else {
            return Ok(());
        };
        if msg.flag {
            return Ok(());
        }
        msg.flag = true;
        w.update_group_message(key, &msg)?;
        let gname = self
            .groups
            .states
            .get(&key.group)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        after.push(After::Event(Event::GroupStatus {
            group: gname,
            id: MessageId(msg.id).to_string(),
            delivered: 0,
            read: 0,
            of: msg.recipients,
        }));
        Ok(())
    }

    /// Remembers a publication in flight (bounded).
    pub(super) fn publishing(&mut self, tag: u64, key: GroupMsgKey) {
        if self.groups.publishing.len() >= 4096 {
            self.groups.publishing.clear();
        }
        self.groups.publishing.insert(tag, key);
    }

    /// A member asks for frames it lacks.
    pub(super) fn answer_group_sync(
        &mut self,
        w: &WriteTx<'_>,
        peer: PeerId,
        group: [u8; 16],
        have: Vec<SenderMark>,
    ) -> Result<Response, StoreError> {
        let dev = device_key(&peer.to_bytes());
        let member = match w.device(&dev)? {
            Some(d) => self
                .groups
                .states
                .get(&group)
                .is_some_and(|s| s.members.contains(&d.identity)),
            None => false,
        };
        if !member {
            return Ok(Response::Refused(Refusal::Unauthorized));
        }
        let mut frames = Vec::new();
        let mut bytes = 0usize;
        let mut more = false;
        'outer: for mark in have {
            let rows = w.group_frames_after(&group, &mark.sender.0, mark.seq, MAX_SYNC_FRAMES)?;
            for (_, row) in rows {
                if frames.len() >= MAX_SYNC_FRAMES || bytes + row.frame.len() > MAX_SYNC_BYTES {
                    more = true;
                    break 'outer;
                }
                if let Ok(f) = GroupFrame::decode(&row.frame) {
                    bytes += row.frame.len() + 16;
                    frames.push(f);
                }
            }
        }
        Ok(Response::GroupFrames { frames, more })
    }

    /// The answer to our catch-up request to a member.
    pub(super) fn on_group_frames(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        group: [u8; 16],
        frames: Vec<GroupFrame>,
        more: bool,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        self.groups.syncing.remove(&group);
        let new = self.take_frames(w, group, frames, after)?;
        // Ask again only while answers bring something new: a peer that keeps answering
        // frames we hold (around a hole it cannot fill) does not keep us asking.
        if more && new > 0 {
            self.groups.last_sync.remove(&(group, peer));
            after.push(After::GroupSync(group, peer));
        }
        Ok(())
    }

    /// Takes frames a member or a mailbox handed over (with the checks gossiped frames
    /// get); returns how many were not held before.
    pub(super) fn take_frames(
        &mut self,
        w: &mut WriteTx<'_>,
        group: [u8; 16],
        frames: Vec<GroupFrame>,
        after: &mut Vec<After>,
    ) -> Result<usize, StoreError> {
        let mut new = 0usize;
        for f in frames {
            let (sender, seq) = (f.sender.0, f.seq);
            let held = w.group_frame(&group, &sender, seq)?.is_some();
            if self.take_frame(w, group, f, None, None, after)? == Verdict::Accept
                && !held
                && w.group_frame(&group, &sender, seq)?.is_some()
            {
                new += 1;
            }
        }
        Ok(new)
    }

    /// `kith group read`: marks a group's messages read and tells their senders.
    pub(super) fn group_mark_read(
        &mut self,
        w: &mut WriteTx<'_>,
        q: &str,
        after: &mut Vec<After>,
    ) -> Result<Result<usize, EngineError>, StoreError> {
        let id = match self.find_group(w, q)? {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let mut per_sender: HashMap<[u8; 32], Vec<u128>> = HashMap::new();
        let mut n = 0;
        for (key, mut msg) in w.group_history(&id, 10_000)? {
            if msg.outgoing || msg.flag {
                continue;
            }
            msg.flag = true;
            w.update_group_message(&key, &msg)?;
            n += 1;
            per_sender.entry(key.sender_dev).or_default().push(msg.id);
        }
        if self.social.privacy.read_receipts {
            for (curve, ids) in per_sender {
                let Some(dev) = w.device_by_curve(&curve)? else {
                    continue;
                };
                let Some(d) = w.device(&dev)? else { continue };
                if self.social.blocked.contains(&d.identity) {
                    continue;
                }
                for chunk in ids.chunks(MAX_RECEIPT_IDS) {
                    let body = Body::GroupReceipt {
                        group: id,
                        kind: ReceiptKind::Read,
                        ids: chunk.to_vec(),
                        at_ms: now_ms(),
                    };
                    let bytes = encode_body(&body)?;
                    self.enqueue_dev(w, dev, d.identity, bytes, after)?;
                }
            }
        }
        Ok(Ok(n))
    }

    pub(super) fn group_view(
        &self,
        w: &WriteTx<'_>,
        id: [u8; 16],
    ) -> Result<GroupView, StoreError> {
        let st = self.groups.states.get(&id).cloned().unwrap_or_default();
        let mut members = Vec::new();
        for m in st
            .admins
            .iter()
            .chain(st.members.iter().filter(|m| !st.admins.contains(*m)))
        {
            members.push(MemberView {
                name: self.member_name(w, m)?,
                identity: IdentityKey(*m).short(),
                admin: st.admins.contains(m),
            });
        }
        Ok(GroupView {
            id: hex16(&id),
            name: st.name.clone(),
            description: st.description.clone(),
            members,
            admin: st.admins.contains(&self.me.0),
            active: st.members.contains(&self.me.0),
            frames: w.group_frame_count(&id)?,
            undecryptable: w.group_pending_count(&id)?,
        })
    }

    pub(super) fn group_list(&self, w: &WriteTx<'_>) -> Result<Vec<GroupSummary>, StoreError> {
        let mut out = Vec::new();
        for (id, row) in w.groups()? {
            if row.deleted {
                continue;
            }
            let Some(st) = self.groups.states.get(&id) else {
                continue;
            };
            if !st.members.contains(&self.me.0) && !row.gone {
                // Ops of a group we were never added to.
                continue;
            }
            let unread = w
                .group_history(&id, 10_000)?
                .iter()
                .filter(|(_, m)| !m.outgoing && !m.flag)
                .count();
            out.push(GroupSummary {
                id: hex16(&id),
                name: st.name.clone(),
                members: st.members.len(),
                admin: st.admins.contains(&self.me.0),
                active: st.members.contains(&self.me.0),
                unread,
            });
        }
        Ok(out)
    }

    pub(super) fn group_history_view(
        &self,
        w: &WriteTx<'_>,
        q: &str,
        limit: usize,
    ) -> Result<Result<Vec<GroupItemView>, EngineError>, StoreError> {
        let id = match self.find_group(w, q)? {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let mut msgs = w.group_history(&id, limit)?;
        keep_newest_texts(&mut msgs, |m| m.text.len());
        let mut items: Vec<GroupItemView> = Vec::new();
        for (_, m) in msgs {
            let (status, delivered, read) = if m.outgoing {
                let rs = w.group_receipts(m.id)?;
                let d = rs.iter().filter(|x| x.1 > 0).count() as u32;
                let r = rs.iter().filter(|x| x.2 > 0).count() as u32;
                let s = if m.recipients > 0 && r >= m.recipients {
                    "read"
                } else if m.recipients > 0 && d >= m.recipients {
                    "delivered"
                } else if m.flag || d > 0 {
                    "sent"
                } else {
                    "pending"
                };
                (s, d, r)
            } else if m.flag {
                ("read", 0, 0)
            } else {
                ("delivered", 0, 0)
            };
            items.push(GroupItemView {
                kind: "message".into(),
                id: MessageId(m.id).to_string(),
                from: self.member_name(w, &m.sender)?,
                text: m.text,
                status: status.into(),
                delivered,
                read,
                of: m.recipients,
                sent_at: m.sent_at_ms,
            });
        }
        // Membership changes, placed by time among the messages.
        if let Some(log) = self.groups.logs.get(&id) {
            let (_, applied) = log.state();
            let first = items.first().map(|i| i.sent_at).unwrap_or(0);
            for a in applied {
                if !items.is_empty() && items.len() >= limit && a.at_ms < first {
                    continue;
                }
                let text = self.describe_op(w, &a)?;
                let pos = items
                    .iter()
                    .position(|i| i.kind == "message" && i.sent_at > a.at_ms)
                    .unwrap_or(items.len());
                items.insert(
                    pos,
                    GroupItemView {
                        kind: "event".into(),
                        id: hex::encode(&a.hash[..8]),
                        from: self.member_name(w, &a.author)?,
                        text,
                        status: String::new(),
                        delivered: 0,
                        read: 0,
                        of: 0,
                        sent_at: a.at_ms,
                    },
                );
            }
        }
        Ok(Ok(items))
    }

    pub(super) fn receipts_view(
        &self,
        w: &WriteTx<'_>,
        id: &str,
    ) -> Result<Result<ReceiptsView, EngineError>, StoreError> {
        let Some(mid) = MessageId::parse(id.trim()) else {
            return Ok(Err(EngineError::BadCode(format!(
                "{id:?} is not a message id"
            ))));
        };
        let Some((key, msg)) = w.group_message(mid.0)? else {
            return Ok(Err(EngineError::UnknownGroup(format!(
                "no group message with id {id}"
            ))));
        };
        if !msg.outgoing {
            return Ok(Err(group_err("receipts are shown for your own messages")));
        }
        let st = self
            .groups
            .states
            .get(&key.group)
            .cloned()
            .unwrap_or_default();
        let rs = w.group_receipts(mid.0)?;
        let mut members = Vec::new();
        let mut listed: HashSet<[u8; 32]> = HashSet::new();
        for (who, d, r) in &rs {
            listed.insert(*who);
            members.push(MemberReceipt {
                name: self.member_name(w, who)?,
                delivered_at: (*d > 0).then_some(*d),
                read_at: (*r > 0).then_some(*r),
            });
        }
        for m in st
            .members
            .iter()
            .filter(|m| **m != self.me.0 && !listed.contains(*m))
        {
            members.push(MemberReceipt {
                name: self.member_name(w, m)?,
                delivered_at: None,
                read_at: None,
            });
        }
        Ok(Ok(ReceiptsView {
            id: mid.to_string(),
            group: st.name,
            of: msg.recipients,
            members,
        }))
    }

    pub(super) fn group_cmd(
        &mut self,
        w: &mut WriteTx<'_>,
        cmd: GroupCmd,
        after: &mut Vec<After>,
    ) -> Result<(), StoreError> {
        match cmd {
            GroupCmd::Create {
                name,
                members,
                reply: tx,
            } => {
                let r = self.group_create(w, &name, &members, after)?;
                after.push(reply(tx, r));
            }
            GroupCmd::Change {
                group,
                change,
                reply: tx,
            } => {
                let r = self.group_change(w, &group, change, after)?;
                after.push(reply(tx, r));
            }
            GroupCmd::List(tx) => {
                let r = self.group_list(w)?;
                after.push(reply(tx, Ok(r)));
            }
            GroupCmd::Info { group, reply: tx } => {
                let r = match self.find_group(w, &group)? {
                    Ok(id) => Ok(self.group_view(w, id)?),
                    Err(e) => Err(e),
                };
                after.push(reply(tx, r));
            }
            GroupCmd::Send {
                group,
                text,
                reply: tx,
            } => {
                let r = self.group_send(w, &group, text, after)?;
                after.push(reply(tx, r));
            }
            GroupCmd::History {
                group,
                limit,
                reply: tx,
            } => {
                let r = self.group_history_view(w, &group, limit)?;
                after.push(reply(tx, r));
            }
            GroupCmd::MarkRead { group, reply: tx } => {
                let r = self.group_mark_read(w, &group, after)?;
                after.push(reply(tx, r));
            }
            GroupCmd::Receipts { id, reply: tx } => {
                let r = self.receipts_view(w, &id)?;
                after.push(reply(tx, r));
            }
            #[cfg(feature = "test-hooks")]
            GroupCmd::TestOps { group, reply: tx } => {
                let r = self.find_group(w, &group)?.map(|id| self.ordered_ops(&id));
                after.push(reply(tx, r));
            }
            #[cfg(feature = "test-hooks")]
            GroupCmd::TestSign {
                group,
                kind,
                reply: tx,
            } => {
                let r = self.find_group(w, &group)?.and_then(|id| {
                    let parents = self.groups.logs.get(&id).map(|l| l.heads());
                    let parents = parents.ok_or(EngineError::UnknownGroup(group))?;
                    let identity = &self.keys.identity;
                    GroupOp::new(id, parents, self.me.0, now_ms(), kind, |b| identity.sign(b))
                        .map_err(internal)
                });
                after.push(reply(tx, r));
            }
            #[cfg(feature = "test-hooks")]
            GroupCmd::TestPush {
                group,
                ops,
                reply: tx,
            } => {
                let r = match self.find_group(w, &group)? {
                    Ok(id) => {
                        let members = self.groups.states.get(&id).map(|s| s.members.clone());
                        let members = members.unwrap_or_default();
                        let devices: Vec<([u8; 32], [u8; 32])> =
                            member_devices(w.devices()?, &members, &self.me.0)?
                                .into_iter()
                                .map(|(k, d)| (k, d.identity))
                                .collect();
                        self.send_ops(w, &devices, &ops, &[], after)?;
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                after.push(reply(tx, r));
            }
        }
        Ok(())
    }

    /// A catch-up request was refused or answered wrongly.
    pub(super) fn groups_sync_failed(&mut self, id: [u8; 16]) {
        self.groups.syncing.remove(&id);
    }

    /// Drops frames beyond what is kept per sender.
    pub(super) fn prune_group_frames(&mut self, w: &mut WriteTx<'_>) -> Result<(), StoreError> {
        for (id, _) in w.groups()? {
            for (sender, row) in w.group_senders(&id)? {
                if row.max > KEEP_FRAMES_PER_SENDER {
                    w.drop_group_frames(&id, &sender, row.max - KEEP_FRAMES_PER_SENDER)?;
                }
            }
        }
        Ok(())
    }
}

/// Whether op `a` is new relative to `before` (a cheap test: its author, time and kind do
/// not describe a change `before` already shows). Used only to choose which changes to
/// announce.
fn changed_by(before: &GroupState, now: &GroupState, a: &kith_proto::group::Applied) -> bool {
    match &a.kind {
        OpKind::Create { .. } => before.members.is_empty(),
        OpKind::Add(k) => !before.members.contains(&k.0) && now.members.contains(&k.0),
        OpKind::Remove(k) => before.members.contains(&k.0) && !now.members.contains(&k.0),
        OpKind::Promote(k) => !before.admins.contains(&k.0) && now.admins.contains(&k.0),
        OpKind::Demote(k) => before.admins.contains(&k.0) && !now.admins.contains(&k.0),
        OpKind::Rename(n) => before.name != *n && now.name == *n,
        OpKind::Describe(d) => before.description != *d && now.description == *d,
        OpKind::Leave => before.members.contains(&a.author) && !now.members.contains(&a.author),
        _ => false,
    }
}

/// Moves a sender's `contiguous` mark over the frames held after it.
fn advance(
    w: &WriteTx<'_>,
    group: &[u8; 16],
    sender: &[u8; 32],
    row: &mut SenderRow,
) -> Result<(), StoreError> {
    loop {
        let next = w.group_frames_after(group, sender, row.contiguous, 256)?;
        let mut moved = false;
        for (seq, _) in next {
            if seq == row.contiguous + 1 {
                row.contiguous = seq;
                moved = true;
            } else {
                break;
            }
        }
        if !moved {
            break;
        }
    }
    row.max = row.max.max(row.contiguous);
    Ok(())
}

/// Stores a frame as received, by group, sender and seq.
fn keep_frame(w: &mut WriteTx<'_>, group: &[u8; 16], frame: &GroupFrame) -> Result<(), StoreError> {
    let bytes = frame
        .encode()
        .map_err(|e| StoreError::Encode(e.to_string()))?;
    w.put_group_frame(
        group,
        &frame.sender.0,
        frame.seq,
        &FrameRow {
            frame: bytes,
            at_ms: now_ms(),
        },
    )?;
    Ok(())
}

/// The name a person who is not a contact gets in the contact list: `~` and their short
/// fingerprint, with `-2`, `-3`... when that is taken.
pub(super) fn stranger_name(w: &WriteTx<'_>, identity: &[u8; 32]) -> Result<String, StoreError> {
    let short = IdentityKey(*identity).short();
    let mut name = format!("~{short}");
    let mut n = 1;
    while w.contact_by_name(&name)?.is_some() {
        n += 1;
        name = format!("~{short}-{n}");
    }
    Ok(name)
}

/// Every op in a log (the log keeps them by hash).
fn log_ops(log: &GroupLog) -> Vec<GroupOp> {
    log.ops().cloned().collect()
}

/// Encodes a pairwise body for the outbox (an encoding failure is a store-level error, as
/// elsewhere in the engine).
fn encode_body(body: &Body) -> Result<Vec<u8>, StoreError> {
    kith_proto::codec::encode(body).map_err(|e| StoreError::Encode(e.to_string()))
}
