//! Group chats: membership ops, sender keys, frames on gossipsub, catching up, receipts.
//!
//! A group is a set of members who agree on its state from signed ops, and a gossipsub
//! topic on which each member device publishes its messages encrypted with its own Megolm
//! session. The parts, one file each:
//!
//! - [`membership`]: the ops. Membership changes only through signed ops
//!   ([`kith_proto::group`]); every member computes the state from the whole set of ops with
//!   the same rule. Ops (and the certificates of member devices) travel pairwise through the
//!   durable outbox: to existing members as they are made, and the whole log to a member who
//!   is added. An op whose parents are missing is asked for from the member who sent it.
//!   [`change`] holds the check of a user's change against the state, and which applied
//!   ops are news to announce.
//! - [`keys`]: sender keys. Each device sends with its own Megolm session per group, whose
//!   key goes pairwise to every other member device. When the members change, the session is
//!   dropped and the next message starts a new one that only the members of that moment
//!   get. The sender keeps its own copy of each session from its start, for member devices
//!   it learns of late; an admin passes on the certificates of member devices it learns of
//!   late, as other members may have no other way to know them. A key that comes before the
//!   ops making its sender a member waits for them.
//! - [`frames`]: messages. A message is a
//!   [`GroupFrame`](kith_proto::groupwire::GroupFrame) published on the group's topic and
//!   kept by every member; it carries the sender's seq and a Lamport clock, and is shown in
//!   (lamport, sender, seq) order, the same on every member whatever the order of arrival.
//! - [`sync`]: catching up. A member that sees a gap, a member joining the topic, or a timer
//!   asks a member for what it lacks
//!   ([`Request::GroupSync`](kith_proto::wire::Request::GroupSync)); the timer also keeps a
//!   few member devices (and their mailboxes) connected so the topic's mesh holds.
//! - [`receipts`]: delivery receipts go pairwise to the sender device, batched for
//!   [`RECEIPT_DELAY`](crate::cores::group_receipts::RECEIPT_DELAY); read receipts when
//!   the user reads. The sender counts them per member.
//! - [`views`]: what `kith groups`, `kith group info`, the history and the receipts show.
//!
//! The path of one message:
//!
//! 1. `group_send` (frames) starts a session if there is none (its key queued pairwise to
//!    each member device by `share_key`), encrypts, stores the frame and the message, and
//!    leaves the publication to the actor (`After::GroupPublish`).
//! 2. A member's `on_gossip` hands the frame to `take_frame`: sender and membership checks,
//!    kept by (group, sender, seq), a gap starts a catch-up; `open_frame` opens it with the
//!    sender's key, or marks it waiting until `on_group_key` brings the key.
//! 3. `open_frame` stores the message and queues a delivery receipt (`receipt_due`); the
//!    sender's `on_group_receipt` counts it.
//!
//! This file holds [`Groups`], what a node keeps of its groups in memory: the logs and
//! states (the store holds the truth), and one small part per concern, with its own
//! methods: the sending sessions and early keys (keys), catch-up times (sync),
//! publications in flight (frames), receipts waiting (receipts). It also holds the group
//! commands and their dispatcher (`group_cmd`), and the helpers the parts share. The time
//! is read once where a command or an event enters ([`Now`]) and passed down.

mod change;
mod frames;
mod keys;
mod membership;
mod receipts;
mod sync;
mod views;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use crate::model::{Fatal, Outcome};
use kith_proto::group::{GroupLog, GroupOp, GroupState, OpKind};
use kith_proto::groupwire::group_topic;
use kith_proto::wire::Body;
use kith_store::{KnownDevice, Store, StoreError, WriteTx, device_key};
use kith_types::{DeviceKey, GroupId, IdentityKey, now_ms};
use std::time::Instant;

pub(super) use sync::sync_marks;

#[cfg(feature = "test-hooks")]
use super::internal;
use super::{After, State};
#[cfg(feature = "test-hooks")]
use super::{Reply, reply};
use crate::model::{EngineError, GroupView};

/// Most groups a node keeps.
pub const MAX_GROUPS: usize = 1024;
/// How often each group catches up with a connected member, at least.
pub const GROUP_SYNC_EVERY: Duration = Duration::from_secs(30);
/// Member devices a node keeps a connection to per group (the gossipsub mesh forms over them).
const GROUP_DIALS: usize = 8;

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

/// Test hooks that play a misbehaving member.
#[cfg(feature = "test-hooks")]
pub(in crate::actor) enum GroupCmd {
    /// Sends a message action to a chat as is, without this node's own checks (a hostile
    /// contact or member editing or deleting someone else's message).
    Chat {
        chat: crate::command::ChatParams,
        action: kith_proto::chat::ChatAction,
        reply: Reply<()>,
    },
    Ops {
        group: String,
        reply: Reply<Vec<GroupOp>>,
    },
    Sign {
        group: String,
        parents: Option<Vec<kith_types::OpHash>>,
        kind: OpKind,
        reply: Reply<GroupOp>,
    },
    Push {
        group: String,
        ops: Vec<GroupOp>,
        reply: Reply<()>,
    },
    /// The frame held for (group, sender device (this one's if none), seq).
    Frame {
        group: String,
        sender: Option<kith_types::CurveKey>,
        seq: u64,
        reply: Reply<Option<Vec<u8>>>,
    },
    /// The frames held aside for (group, sender device, seq), waiting for a key to decide.
    Alts {
        group: String,
        sender: kith_types::CurveKey,
        seq: u64,
        reply: Reply<Vec<Vec<u8>>>,
    },
    /// Stores a frame as if received and not opened (waiting for a key; handed on when
    /// asked).
    Plant {
        group: String,
        frame: Vec<u8>,
        reply: Reply<()>,
    },
    /// Catches up with this peer now.
    Sync {
        group: String,
        peer: kith_net::PeerId,
        reply: Reply<()>,
    },
}

/// The groups a node knows, in memory (the store holds the truth).
#[derive(Default)]
pub(super) struct Groups {
    logs: HashMap<GroupId, GroupLog>,
    /// Groups not joined yet whose ops came (kept once they make us a member, by a contact).
    invites: crate::cores::group_ops::Invites,
    pub(in crate::actor) states: HashMap<GroupId, GroupState>,
    topics: HashMap<String, GroupId>,
    /// Every identity that is a member of one of our groups (they are not strangers).
    pub(super) people: HashSet<IdentityKey>,
    /// This device's sending sessions.
    sending: keys::Sending,
    /// Keys that came before the ops making their sender (or us) a member.
    early_keys: keys::EarlyKeys,
    /// When each group last caught up, and with whom.
    sync: sync::SyncTimes,
    /// Publications of our frames in flight.
    publishing: frames::Publishing,
    /// Delivery receipts waiting up to
    /// [`RECEIPT_DELAY`](crate::cores::group_receipts::RECEIPT_DELAY).
    receipts: receipts::DueReceipts,
    /// Frames whose sending device is not known yet, until its certificate comes.
    unknown: crate::cores::group_late::UnknownSenders<
        kith_proto::groupwire::GroupFrame,
        kith_net::PeerId,
    >,
    /// Certificates this admin learned late, gathered before they go to the members.
    late_certs: crate::cores::group_late::CertBatch<kith_proto::record::DeviceCert>,
    /// Typing indicators (`actor/group_typing.rs`): never stored.
    pub(in crate::actor) typing: crate::cores::group_typing::GroupTyping,
}

/// The time, read once where a command or an event enters the group code and passed down
/// to the rules (which never read a clock).
#[derive(Clone, Copy, Debug)]
pub(in crate::actor) struct Now {
    /// For timers and rate limits.
    pub(super) at: Instant,
    /// The wall clock, for what is stored or shown.
    pub(super) ms: u64,
}

impl Now {
    /// Reads both clocks.
    pub(in crate::actor) fn read() -> Self {
        Self {
            at: Instant::now(),
            ms: now_ms(),
        }
    }
}

impl Groups {
    /// Loads every group from the store.
    pub(super) fn load(store: &Store) -> Self {
        let mut g = Groups::default();
        g.load_logs(store);
        g
    }

    /// Reads the logs (and what follows from them) from the store again, after a commit
    /// failed: what is in memory is then what committed.
    pub(super) fn reload_logs(&mut self, store: &Store) {
        self.logs.clear();
        self.states.clear();
        self.topics.clear();
        self.invites = Default::default();
        self.load_logs(store);
    }

    fn load_logs(&mut self, store: &Store) {
        let g = self;
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
            let Ok(log) = GroupLog::restore(create, ops) else {
                continue;
            };
            if log.id() != id {
                continue;
            }
            let (state, _) = log.state();
            if !row.deleted {
                g.topics.insert(group_topic(&id), id);
            }
            g.people.extend(state.members.iter().copied());
            g.states.insert(id, state);
            g.logs.insert(id, log);
        }
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
    pub(super) fn current(&self, me: &IdentityKey) -> Vec<(String, GroupId)> {
        let mut out: Vec<(String, GroupId)> = self
            .topics
            .iter()
            .filter(|(_, id)| self.states.get(*id).is_some_and(|s| s.members.contains(me)))
            .map(|(t, id)| (t.clone(), *id))
            .collect();
        out.sort();
        out
    }
}

impl State {
    /// Queues a body for one device (pairwise, durable).
    fn enqueue_dev(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: DeviceKey,
        conv: IdentityKey,
        bytes: Vec<u8>,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        self.queue_body(w, dev, conv, bytes, Vec::new(), now.ms, after)
    }

    /// `group.info`: one group's members, admins and description.
    pub(in crate::actor) fn group_info(
        &mut self,
        w: &mut WriteTx<'_>,
        group: &str,
    ) -> Outcome<GroupView> {
        Ok(match self.find_group(w, group)? {
            Ok(id) => Ok(self.group_view(w, id)?),
            Err(e) => Err(e),
        })
    }

    #[cfg(feature = "test-hooks")]
    pub(in crate::actor) fn group_cmd(
        &mut self,
        w: &mut WriteTx<'_>,
        cmd: GroupCmd,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let now = Now::read();
        match cmd {
            GroupCmd::Chat {
                chat,
                action,
                reply: tx,
            } => {
                let r = match self.chat_of(w, &chat)? {
                    Ok((c, _)) => self.send_action(w, c, action, None, after)?,
                    Err(e) => Err(e),
                };
                after.push(reply(tx, r));
            }
            GroupCmd::Ops { group, reply: tx } => {
                let r = self.find_group(w, &group)?.map(|id| self.ordered_ops(&id));
                after.push(reply(tx, r));
            }
            GroupCmd::Sign {
                group,
                parents: named,
                kind,
                reply: tx,
            } => {
                let r = self.find_group(w, &group)?.and_then(|id| {
                    let parents = named.or_else(|| self.groups.logs.get(&id).map(|l| l.heads()));
                    let parents = parents.ok_or(EngineError::UnknownGroup(group))?;
                    let identity = &self.keys.identity;
                    GroupOp::new(id, parents, self.me, now.ms, kind, |b| identity.sign(b))
                        .map_err(internal)
                });
                after.push(reply(tx, r));
            }
            GroupCmd::Push {
                group,
                ops,
                reply: tx,
            } => {
                let r = match self.find_group(w, &group)? {
                    Ok(id) => {
                        let members = self.groups.states.get(&id).map(|s| s.members.clone());
                        let members = members.unwrap_or_default();
                        let devices: Vec<(DeviceKey, IdentityKey)> =
                            member_devices(w.devices()?, &members)?
                                .into_iter()
                                .map(|(k, d)| (k, d.identity))
                                .collect();
                        self.send_ops(w, &devices, &ops, &[], now, after)?;
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                after.push(reply(tx, r));
            }
            GroupCmd::Frame {
                group,
                sender,
                seq,
                reply: tx,
            } => {
                let r = match self.find_group(w, &group)? {
                    Ok(id) => {
                        let sender = sender.unwrap_or_else(|| self.device.curve_key());
                        Ok(w.group_frame(&id, &sender, seq)?.map(|f| f.frame))
                    }
                    Err(e) => Err(e),
                };
                after.push(reply(tx, r));
            }
            GroupCmd::Alts {
                group,
                sender,
                seq,
                reply: tx,
            } => {
                let r = match self.find_group(w, &group)? {
                    Ok(id) => Ok(w.group_alts(&id, &sender, seq)?),
                    Err(e) => Err(e),
                };
                after.push(reply(tx, r));
            }
            GroupCmd::Plant {
                group,
                frame,
                reply: tx,
            } => {
                let r = match self.find_group(w, &group)? {
                    Ok(id) => match kith_proto::groupwire::GroupFrame::decode(&frame) {
                        Ok(f) => {
                            let row = kith_store::FrameRow {
                                frame,
                                at_ms: now.ms,
                            };
                            w.put_group_frame(&id, &f.sender, f.seq, &row)?;
                            // Received and not opened: it waits for a key.
                            w.set_group_pending(&id, &f.sender, f.seq, true)?;
                            Ok(())
                        }
                        Err(e) => Err(internal(e)),
                    },
                    Err(e) => Err(e),
                };
                after.push(reply(tx, r));
            }
            GroupCmd::Sync {
                group,
                peer,
                reply: tx,
            } => {
                let r = match self.find_group(w, &group)? {
                    Ok(id) => {
                        after.push(After::GroupSync(id, peer));
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                after.push(reply(tx, r));
            }
        }
        Ok(())
    }
}

impl Groups {
    /// A group's name and members, if it is known.
    pub(super) fn name_and_members(&self, id: &GroupId) -> Option<(String, Vec<IdentityKey>)> {
        self.states
            .get(id)
            .map(|s| (s.name.clone(), s.members.iter().copied().collect()))
    }

    /// The id of the group with exactly this name, if one has it.
    pub(super) fn by_name(&self, name: &str) -> Option<GroupId> {
        let mut found = self.states.iter().filter(|(_, s)| s.name == name);
        match (found.next(), found.next()) {
            (Some((id, _)), None) => Some(*id),
            _ => None,
        }
    }
}

fn group_err(msg: impl Into<String>) -> EngineError {
    EngineError::GroupRefused(msg.into())
}

/// The devices of these members that this device writes to: other members' devices, and
/// (when this user is a member) this user's other linked devices, so a group reaches every
/// device of each member and what one of this user's devices sends shows on the others.
/// This device itself is never in the store's device table.
pub(in crate::actor) fn member_devices(
    devices: Vec<KnownDevice>,
    members: &BTreeSet<IdentityKey>,
) -> Result<Vec<(DeviceKey, KnownDevice)>, StoreError> {
    Ok(devices
        .into_iter()
        .filter(|d| members.contains(&d.identity))
        .map(|d| (device_key(&d.peer_id), d))
        .collect())
}

/// The name a person who is not a contact gets in the contact list: the first of the
/// contacts core's candidates ([`crate::cores::contacts::stranger_name`]) not in use.
pub(super) fn stranger_name(w: &WriteTx<'_>, identity: &IdentityKey) -> Result<String, Fatal> {
    let mut n = 1;
    loop {
        let name = crate::cores::contacts::stranger_name(identity, n);
        if w.contact_by_name(&name)?.is_none() {
            return Ok(name);
        }
        n += 1;
    }
}

/// Encodes a pairwise body for the outbox (an encoding failure is a store-level error, as
/// elsewhere in the engine).
fn encode_body(body: &Body) -> Result<Vec<u8>, Fatal> {
    Ok(kith_proto::codec::encode(body)?)
}
