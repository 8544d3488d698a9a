//! Membership: the signed ops that make a group, and how they travel.
//!
//! The rule that turns a set of ops into the group's state lives in [`kith_proto::group`]
//! (no I/O, no clock); this file feeds it and acts on what changed.
//!
//! - **Making ops.** `kith group create` makes the `Create` op; `kith group
//!   add|remove|promote|demote|rename|describe|leave` check the change against the current
//!   state (only admins change members, admins, the name and the description), sign an op
//!   naming the log's heads as parents, and apply it here first. `delete` only hides a group
//!   this user is no longer in, and leaves its topic.
//! - **Sending ops.** Ops travel pairwise through the durable outbox as
//!   [`Body::GroupUpdate`], cut to fit a sealed payload, with the certificates of member
//!   devices (members who are not each other's contacts have no other way to know each
//!   other's devices). A new op goes to the members before and after it (so who leaves or
//!   is removed learns it); a member who was not in the group before gets the whole log,
//!   in the order members apply it.
//! - **Taking ops.** `on_group_update` checks each op's signature (a forged one penalises
//!   the peer), starts the log of a group this node is added to from its `Create`, and keeps
//!   ops whose parents are missing (the state leaves them out) while asking the member who
//!   sent them for the parents ([`Body::GroupWant`], answered by `on_group_want` to current
//!   members only). Without that, one member could stall others by sending an op to some
//!   members only and getting an admin to build on it.
//! - **Acting on a change** (`group_changed`): the state is recomputed from the whole log;
//!   the user is told what changed; joining subscribes to the topic, leaving stops sending
//!   (the topic stays until the group is deleted); members who are not contacts get a
//!   provisional contact; any change of members drops this device's sending session (keys),
//!   so that every session has the same members all its life; a few member devices are
//!   dialled for the topic's mesh; keys that waited for the change are taken.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Fatal, Outcome};
use kith_net::{NetCommand, PeerId};
use kith_proto::group::{GroupError, GroupLog, GroupOp, GroupState, Inserted, OpKind};
use kith_proto::groupwire::group_topic;
use kith_proto::record::DeviceCert;
use kith_proto::wire::{Body, MAX_UPDATE_DEVICES, MAX_UPDATE_OPS};
use kith_store::{Contact, GroupRow, KnownDevice, WriteTx, device_key};
use kith_types::{DeviceKey, GroupId, IdentityKey, OpHash};
use tracing::{debug, warn};

use super::change::{change_op, changed_by};
use super::{
    GROUP_DIALS, GroupChange, MAX_GROUPS, Now, encode_body, group_err, member_devices,
    stranger_name,
};
use crate::actor::{After, State, decode_addrs, internal};
use crate::cores::group_ops::{self, Offered, Route};
use crate::model::{EngineError, Event, GroupView};

impl State {
    /// `kith group create`.
    pub(in crate::actor) fn group_create(
        &mut self,
        w: &mut WriteTx<'_>,
        name: &str,
        members: &[String],
        now: Now,
        after: &mut Vec<After>,
    ) -> Outcome<GroupView> {
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
                Some(c) if !keys.contains(&c.identity) => keys.push(c.identity),
                Some(_) => {}
                None => return Ok(Err(EngineError::UnknownContact(m.to_string()))),
            }
        }
        if keys.len() >= kith_proto::group::MAX_GROUP_MEMBERS {
            return Ok(Err(group_err("too many members")));
        }
        let identity = &self.keys.identity;
        let op = match GroupOp::new(
            GroupId::default(),
            Vec::new(),
            self.me,
            now.ms,
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
        self.start_group(w, log, now)?;
        let before = GroupState::default();
        self.group_changed(w, id, &before, now, after)?;
        self.broadcast_ops(w, id, &before, &[op], now, after)?;
        self.group_view(w, id).map(Ok)
    }

    /// `kith group add|remove|promote|demote|rename|describe|leave|delete`.
    pub(in crate::actor) fn group_change(
        &mut self,
        w: &mut WriteTx<'_>,
        q: &str,
        change: GroupChange,
        now: Now,
        after: &mut Vec<After>,
    ) -> Outcome<GroupView> {
        let id = match self.find_group(w, q)? {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let Some(state) = self.groups.states.get(&id).cloned() else {
            return Ok(Err(EngineError::UnknownGroup(q.to_string())));
        };
        let me = self.me;
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
        let contact = |n: &str| -> Outcome<IdentityKey> {
            if n == "me" {
                return Ok(Ok(me));
            }
            Ok(match w.contact_by_name(n)? {
                Some(c) => Ok(c.identity),
                None => Err(EngineError::UnknownContact(n.to_string())),
            })
        };
        let kind = match change_op(&state, me, &change, contact)? {
            Ok(kind) => kind,
            Err(e) => return Ok(Err(e)),
        };
        let parents = match self.groups.logs.get(&id) {
            Some(l) => l.heads(),
            None => return Ok(Err(EngineError::UnknownGroup(q.to_string()))),
        };
        let identity = &self.keys.identity;
        let op = match GroupOp::new(id, parents, me, now.ms, kind, |b| identity.sign(b)) {
            Ok(op) => op,
            Err(e) => return Ok(Err(internal(e))),
        };
        if let Some(log) = self.groups.logs.get_mut(&id)
            && let Err(e) = log.insert(op.clone())
        {
            return Ok(Err(group_err(match e {
                GroupError::NotAllowed => "not allowed in the group as it stands".to_string(),
                e => e.to_string(),
            })));
        }
        self.save_op(w, id, &op)?;
        self.group_changed(w, id, &state, now, after)?;
        let changed = self.groups.states.get(&id).cloned().unwrap_or_default();
        if changed == state {
            warn!("a group op took no effect");
        }
        self.broadcast_ops(w, id, &state, &[op], now, after)?;
        self.group_view(w, id).map(Ok)
    }

    /// Ops (and member certificates) a peer sent pairwise.
    pub(in crate::actor) fn on_group_update(
        &mut self,
        w: &mut WriteTx<'_>,
        from: IdentityKey,
        ops: Vec<GroupOp>,
        devices: Vec<DeviceCert>,
        peer: PeerId,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let now = Now::read();
        let me = self.me;
        let mut touched: Vec<(GroupId, GroupState)> = Vec::new();
        // Parents named by ops we now hold but never got: asked of the sender below.
        let mut wanted: BTreeMap<GroupId, BTreeSet<OpHash>> = BTreeMap::new();
        let mut invited: BTreeSet<GroupId> = BTreeSet::new();
        // One strike per body at most, whatever it holds.
        let mut strike: Option<&'static str> = None;
        // Another device of this user's vouches like a contact the user added.
        let from_contact = from == me || w.contact(&from)?.is_some_and(|c| c.added_by_user);
        for op in ops {
            if op.check().is_err() {
                strike = Some("forged group op");
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
            let log = self.groups.logs.get(&id);
            let wants = match (log, op.hash()) {
                (Some(l), Ok(h)) => l.wants(&h),
                _ => false,
            };
            match group_ops::route(&op, log.map(|l| l.current()), wants, &me, from_contact) {
                Route::Ignore => continue,
                Route::Invite => {
                    if self.groups.invites.offer(id, op) == Offered::Held {
                        invited.insert(id);
                    }
                    continue;
                }
                Route::Log => {}
            }
            let Some(log) = self.groups.logs.get_mut(&id) else {
                continue;
            };
            let before = log.current().clone();
            let ins = log.insert(op.clone());
            match ins {
                Ok(Inserted::Duplicate) => continue,
                Ok(Inserted::Missing(parents)) => {
                    wanted.entry(id).or_default().extend(parents);
                    continue;
                }
                Ok(Inserted::Added(released)) => {
                    if !touched.iter().any(|(t, _)| *t == id) {
                        touched.push((id, before));
                    }
                    let mut taken = vec![op];
                    taken.extend(released.iter().filter_map(|h| log.get(h).cloned()));
                    for o in &taken {
                        self.save_op(w, id, o)?;
                    }
                }
                Err(GroupError::NotAllowed) => {
                    // Judged against its own ancestry, the same everywhere: no honest member
                    // makes or passes on such an op.
                    strike = Some("group op its author may not make");
                }
                Err(e) => debug!(error = %e, "group op refused"),
            }
        }
        if let Some(reason) = strike {
            after.push(After::Net(NetCommand::Penalize { peer, reason }));
        }
        // Invitations that now make us a member, from a contact the user added, become groups.
        for id in invited {
            let accept = match self.groups.invites.get(&id) {
                Some(log) => {
                    let contact = |k: &IdentityKey| -> Result<bool, Fatal> {
                        Ok(w.contact(k)?.is_some_and(|c| c.added_by_user))
                    };
                    match group_ops::made_member_by(log, &me) {
                        // A group this user made or joined on another device of theirs.
                        _ if from == me => log.current().members.contains(&me),
                        Some(by) if by != me => contact(&by)?,
                        _ => false,
                    }
                }
                None => false,
            };
            if !accept {
                continue;
            }
            if self.groups.logs.len() >= MAX_GROUPS {
                warn!("too many groups; a new one is ignored");
                continue;
            }
            let Some(log) = self.groups.invites.take(&id) else {
                continue;
            };
            let ops: Vec<GroupOp> = log.ops().cloned().collect();
            for o in &ops {
                self.save_op(w, id, o)?;
            }
            self.start_group(w, log, now)?;
            touched.push((id, GroupState::default()));
        }
        // An op whose parents we lack does not count until they come (the state leaves it
        // out): ask the member who sent it, who holds them. Without this, one member could
        // stall others by sending an op to some members only and getting an admin to build
        // on it.
        for (id, parents) in wanted {
            let Some(log) = self.groups.logs.get(&id) else {
                continue;
            };
            let still: Vec<OpHash> = parents
                .into_iter()
                .filter(|p| log.get(p).is_none())
                .take(MAX_UPDATE_OPS)
                .collect();
            if !still.is_empty() && from != self.me {
                debug!(n = still.len(), "asking for missing group ops");
                let body = Body::GroupWant {
                    group: id,
                    ops: still,
                };
                self.enqueue(w, &from, &body, Vec::new(), after)?;
            }
        }
        // Member devices: kept when their owner is a member of a group we are in.
        let mut learned: Vec<(DeviceKey, IdentityKey)> = Vec::new();
        for cert in devices {
            let member = self.groups.logs.iter().any(|(id, l)| {
                touched.iter().any(|(t, _)| t == id) && l.current().members.contains(&cert.identity)
            }) || self.groups.people.contains(&cert.identity);
            if !member || cert.identity == self.me || cert.validate().is_err() {
                continue;
            }
            let dev = device_key(&cert.peer_id);
            // A key bound to another device is never rebound (issue 14, hole 2).
            if !w.curve_free_for(&cert.curve25519, &dev)? {
                continue;
            }
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
                    self.ensure_member_contact(w, &cert.identity, cert.peer_id.clone(), now)?;
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
            let state = self.groups.logs.get(&id).map(|l| l.current());
            if state != Some(&before) {
                self.group_changed(w, id, &before, now, after)?;
            }
        }
        // After the state changes (an addition among them starts new sessions): devices of
        // members learned now get the sessions this node already sends with.
        for (dev, owner) in learned {
            self.share_late(w, dev, owner, now, after)?;
        }
        Ok(())
    }

    /// Another device of this user's was linked (or learned from the user's record): it
    /// gets every group this user is in (the whole log, with the member certificates this
    /// device knows) and this device's sending sessions from their start, so the groups
    /// appear there and it reads what this device sends.
    pub(in crate::actor) fn groups_to_own_device(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: DeviceKey,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let me = self.me;
        let now = Now::read();
        let ids: Vec<GroupId> = self
            .groups
            .states
            .iter()
            .filter(|(_, s)| s.members.contains(&me))
            .map(|(id, _)| *id)
            .collect();
        debug!(
            groups = ids.len(),
            "groups handed to another device of this person's"
        );
        for id in ids {
            let Some(members) = self.groups.states.get(&id).map(|s| s.members.clone()) else {
                continue;
            };
            let ops = self.ordered_ops(&id);
            let certs = self.member_certs(w, &members)?;
            self.send_ops(w, &[(dev, me)], &ops, &certs, now, after)?;
        }
        self.share_late(w, dev, me, now, after)
    }

    /// A member asks for ops it lacks: send those we hold (current members only).
    pub(in crate::actor) fn on_group_want(
        &mut self,
        w: &mut WriteTx<'_>,
        from: IdentityKey,
        group: GroupId,
        want: Vec<OpHash>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        if !self
            .groups
            .states
            .get(&group)
            .is_some_and(|s| s.members.contains(&from) && s.members.contains(&self.me))
        {
            return Ok(());
        }
        let Some(log) = self.groups.logs.get(&group) else {
            return Ok(());
        };
        let ops: Vec<GroupOp> = want
            .iter()
            .take(MAX_UPDATE_OPS)
            .filter_map(|h| log.get(h).cloned())
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        let one: BTreeSet<IdentityKey> = [from].into_iter().collect();
        let devices: Vec<(DeviceKey, IdentityKey)> = member_devices(w.devices()?, &one)?
            .into_iter()
            .map(|(dev, d)| (dev, d.identity))
            .collect();
        self.send_ops(w, &devices, &ops, &[], Now::read(), after)
    }

    /// Keeps a group this node just joined or made: its log in memory, a fresh row stored.
    fn start_group(&mut self, w: &mut WriteTx<'_>, log: GroupLog, now: Now) -> Result<(), Fatal> {
        let id = log.id();
        self.groups.logs.insert(id, log);
        w.put_group(
            &id,
            &GroupRow {
                next_seq: 1,
                joined_ms: now.ms,
                ..Default::default()
            },
        )?;
        Ok(())
    }

    fn save_op(&mut self, w: &mut WriteTx<'_>, id: GroupId, op: &GroupOp) -> Result<(), Fatal> {
        let hash = op.hash()?;
        let bytes = op.encode()?;
        w.put_group_op(&id, &hash, &bytes)?;
        Ok(())
    }

    /// Saves a group's new ops and recomputes its state; then shares keys with new member
    /// devices, drops the sending session when someone left, joins or leaves the topic, and
    /// reports what changed. Returns the ops that took effect.
    fn group_changed(
        &mut self,
        w: &mut WriteTx<'_>,
        id: GroupId,
        before: &GroupState,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(log) = self.groups.logs.get(&id) else {
            return Ok(());
        };
        let (state, applied) = log.state();
        let mut row = w.group(&id)?.unwrap_or_default();
        let me = self.me;
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
            self.groups.sending.drop_session(&id);
        }
        // Members who are not contacts get a provisional contact.
        for m in &state.members {
            if !before.members.contains(m) {
                self.ensure_member_contact(w, m, Vec::new(), now)?;
            }
            self.groups.people.insert(*m);
        }
        if is_member {
            let removed = before.members.iter().any(|m| !state.members.contains(m));
            let added = state.members.iter().any(|m| !before.members.contains(m));
            let devices = member_devices(w.devices()?, &state.members)?;
            if removed || added {
                // Someone left: the next message starts a new session they never get.
                // Someone joined: likewise, so that every session has the same members all
                // its life, and a member device learned of late may get it from its start
                // (`share_late`) without opening anything sent before its owner joined.
                row.out_session = None;
                row.out_shared.clear();
                self.groups.sending.drop_session(&id);
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
        self.take_early_keys(w, id, now, after)
    }

    /// Sends new ops to the members: the whole log to members who were not in `before`,
    /// just `ops` to the others (and to those who just left, so they learn it).
    fn broadcast_ops(
        &mut self,
        w: &mut WriteTx<'_>,
        id: GroupId,
        before: &GroupState,
        ops: &[GroupOp],
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(state) = self.groups.states.get(&id).cloned() else {
            return Ok(());
        };
        let mut everyone = state.members.clone();
        everyone.extend(before.members.iter().copied());
        let devices = member_devices(w.devices()?, &everyone)?;
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
            self.send_ops(w, &known, ops, &new_certs, now, after)?;
        }
        if !fresh.is_empty() {
            let all = self.ordered_ops(&id);
            self.send_ops(w, &fresh, &all, &certs, now, after)?;
        }
        Ok(())
    }

    /// Sends ops (and member certificates) of a group to devices, cut into bodies that fit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_ops(
        &mut self,
        w: &mut WriteTx<'_>,
        devices: &[(DeviceKey, IdentityKey)],
        ops: &[GroupOp],
        certs: &[DeviceCert],
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let bodies: Vec<Vec<u8>> = group_ops::cut_updates(ops, certs)
            .iter()
            .map(encode_body)
            .collect::<Result<_, _>>()?;
        for (dev, conv) in devices {
            for b in &bodies {
                self.enqueue_dev(w, *dev, *conv, b.clone(), now, after)?;
            }
        }
        Ok(())
    }

    /// The certificates of the member devices this node knows (its own included).
    fn member_certs(
        &self,
        w: &WriteTx<'_>,
        members: &BTreeSet<IdentityKey>,
    ) -> Result<Vec<DeviceCert>, Fatal> {
        let mut certs = vec![self.device.cert().clone()];
        for (_, d) in member_devices(w.devices()?, members)? {
            if let Some(c) = d.cert {
                certs.push(c);
            }
        }
        certs.truncate(MAX_UPDATE_DEVICES);
        Ok(certs)
    }

    /// The ops of a group in the order every member applies them (`Create` first), those
    /// that took no effect among them (later ops name them).
    pub(super) fn ordered_ops(&self, id: &GroupId) -> Vec<GroupOp> {
        self.groups
            .logs
            .get(id)
            .map(|l| l.ops().cloned().collect())
            .unwrap_or_default()
    }

    /// Makes sure a member who is not a contact has a provisional contact (so their devices
    /// can be looked up and written to).
    fn ensure_member_contact(
        &mut self,
        w: &mut WriteTx<'_>,
        identity: &IdentityKey,
        peer_hint: Vec<u8>,
        now: Now,
    ) -> Result<(), Fatal> {
        if identity == &self.me || w.contact(identity)?.is_some() {
            return Ok(());
        }
        let name = stranger_name(w, identity)?;
        w.put_contact(&Contact {
            identity: *identity,
            name,
            added_ms: now.ms,
            added_by_user: false,
            peer_hint,
            addr_hints: Vec::new(),
        })?;
        Ok(())
    }
}
