//! Sender keys: each member device's Megolm session per group, and who gets which key.
//!
//! A device sends a group's messages with its own [`OutboundGroup`] session; the session's
//! key goes pairwise (the durable outbox, Olm) to every other member device as a
//! [`Body::GroupKey`], with the seq of the first frame it opens. The rules (when a session
//! is replaced, who gets which key from which seq, which keys are taken or wait) are in
//! [`crate::cores::group_keys`]; this file holds the Megolm sessions, the store and the
//! pairwise bodies:
//!
//! - A session has the same members all its life: when someone leaves, is removed or is
//!   added, the session is dropped (membership) and the next message starts a new one that
//!   only the members of that moment get. A session is also renewed after
//!   [`ROTATE_AFTER`](crate::cores::group_keys::ROTATE_AFTER) messages.
//! - The sender keeps its own inbound copy of each session from index 0, for member devices
//!   it learns of late (`share_late`).
//! - An admin who learns a member device's certificate late passes it on to the other
//!   members (`member_cert_learned`).
//! - A key that comes before the ops making its sender (or us) a member waits in
//!   [`EarlyKeys`] until they arrive (`take_early_keys`).
//!
//! Data flow:
//!
//! 1. `group_send` (frames) calls `sending_session`, which asks the core whether to keep,
//!    start or renew the session; a new one's key is queued for the member devices known
//!    (`share_key`), and members whose devices are unknown are looked up in the DHT.
//! 2. Devices that appear later (`group_devices_appeared`, `member_cert_learned`) get each
//!    current session from its start (`share_late`), or the current key when there is no
//!    copy.
//! 3. A member's `on_group_key` checks the sender is a member (or holds the key), stores
//!    the inbound session, moves the sender's marks on its first key and asks it for the
//!    frames not kept, and opens the frames that waited (`open_frame`).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::cores::group_keys::{
    EarlyKey, SessionPlan, cert_audiences, cert_concerns_groups, current_key_seq, first_key_mark,
    groups_shared_with, late_key_seq, may_take_key, members_to_look_up, session_plan,
};
use crate::model::Fatal;
use kith_crypto::{InboundGroup, OutboundGroup, StorageKey};
use kith_net::PeerId;
use kith_proto::record::DeviceCert;
use kith_proto::wire::Body;
use kith_store::{GroupRow, WriteTx, device_key};
use kith_types::{CurveKey, DeviceKey, GroupId, IdentityKey};
use tracing::warn;

use super::frames::advance;
use super::{Now, encode_body, member_devices};
use crate::actor::{After, State};

pub(super) use crate::cores::group_keys::EarlyKeys;

/// This device's sending sessions, by group (a cache of the pickles in the group rows).
pub(super) type Sending = crate::cores::group_keys::Sending<OutboundGroup>;

/// The session of group `id`, from memory or restored from its row's pickle.
fn restore<'a>(
    sending: &'a mut Sending,
    id: GroupId,
    row: &GroupRow,
    storage: &StorageKey,
) -> Option<&'a mut OutboundGroup> {
    sending.get_or_restore(id, || {
        match OutboundGroup::restore(row.out_session.as_ref()?, storage) {
            Ok(s) => Some(s),
            Err(err) => {
                warn!(error = %err, "unreadable group session; a new one will start");
                None
            }
        }
    })
}

impl State {
    /// Devices of `identity` became known (from the DHT, or a group timer found devices
    /// without our keys): each gets our sending sessions from their start.
    pub(in crate::actor) fn group_devices_appeared(
        &mut self,
        w: &mut WriteTx<'_>,
        identity: IdentityKey,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        if !self.groups.people.contains(&identity) {
            return Ok(());
        }
        let now = Now::read();
        let one: BTreeSet<IdentityKey> = [identity].into_iter().collect();
        for (dev, d) in member_devices(w.devices()?, &one)? {
            self.share_late(w, dev, d.identity, now, after)?;
        }
        Ok(())
    }

    /// A device of `identity` was removed (by its owner's newer record, or one of this
    /// user's by `devices remove`): the groups shared with `identity` drop this device's
    /// sending session, so the next message starts one the removed device never gets.
    pub(in crate::actor) fn group_device_removed(
        &mut self,
        w: &mut WriteTx<'_>,
        identity: IdentityKey,
    ) -> Result<(), Fatal> {
        for id in groups_shared_with(&self.groups.states, &self.me, &identity) {
            self.groups.sending.drop_session(&id);
            if let Some(mut row) = w.group(&id)? {
                row.out_session = None;
                row.out_shared.clear();
                w.put_group(&id, &row)?;
            }
        }
        Ok(())
    }

    /// This node learned the certificate of a device (claiming its pre-key, or from a sealed
    /// message): if its owner is in a group with us, the device gets our sending sessions;
    /// and in the groups we are an admin of (admins send the ops, with the certificates they
    /// know), the other members may not know the device yet, so the certificate goes to
    /// them. Only admins pass certificates on, so that the cost stays at one small body per
    /// member device for each certificate an admin learns late, not one per member too.
    pub(in crate::actor) fn member_cert_learned(
        &mut self,
        w: &mut WriteTx<'_>,
        cert: &DeviceCert,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let me = self.me;
        if !cert_concerns_groups(&cert.identity, &me, &self.groups.people) {
            return Ok(());
        }
        let now = Now::read();
        if !cert_audiences(&self.groups.states, &me, &cert.identity).is_empty()
            && self.groups.late_certs.add(cert.clone(), now.at)
        {
            let certs = self.groups.late_certs.take(now.at, true);
            self.pass_certs_on(w, &certs, now, after)?;
        }
        self.share_late(w, device_key(&cert.peer_id), cert.identity, now, after)
    }

    /// Passes certificates this admin learned late on to the other members of the groups
    /// it is an admin of: each member device gets the ones it needs in as few bodies as
    /// fit, rather than one body per certificate (a burst is gathered: `CertBatch`, in
    /// `cores/group_late.rs`). Members hold a frame whose device they do not know yet until
    /// its certificate comes, so the short wait costs no messages; and the gathered ones go
    /// before this admin's next group message (`group_post`), which may point at them.
    pub(in crate::actor) fn pass_certs_on(
        &mut self,
        w: &mut WriteTx<'_>,
        certs: &[DeviceCert],
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        if certs.is_empty() {
            return Ok(());
        }
        let me = self.me;
        let devices = w.devices()?;
        // For each member device, the certificates of others it shares a group with.
        let mut to: HashMap<DeviceKey, (IdentityKey, Vec<DeviceCert>)> = HashMap::new();
        for cert in certs {
            for members in cert_audiences(&self.groups.states, &me, &cert.identity) {
                for (k, d) in member_devices(devices.clone(), &members)? {
                    if d.identity == cert.identity {
                        continue;
                    }
                    let entry = to.entry(k).or_insert_with(|| (d.identity, Vec::new()));
                    if !entry.1.contains(cert) {
                        entry.1.push(cert.clone());
                    }
                }
            }
        }
        for (dev, (owner, list)) in to {
            for body in crate::cores::group_ops::cut_updates(&[], &list) {
                let bytes = encode_body(&body)?;
                self.enqueue_dev(w, dev, owner, bytes, now, after)?;
            }
        }
        Ok(())
    }

    /// A member device became known after this node's sending sessions started (members who
    /// are not each other's contacts learn each other's devices from the ops and from
    /// relayed certificates, sometimes after their first message): gives it each such
    /// session from its first index, so it opens everything sent since. Its owner was a
    /// member all along, as adding a member starts new sessions.
    pub(super) fn share_late(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: DeviceKey,
        owner: IdentityKey,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let ids = groups_shared_with(&self.groups.states, &self.me, &owner);
        let my_curve = self.device.curve_key();
        for id in ids {
            let Some(mut row) = w.group(&id)? else {
                continue;
            };
            if row.out_shared.contains(dev.as_bytes()) {
                continue;
            }
            let Some((session, index)) =
                restore(&mut self.groups.sending, id, &row, &self.keys.storage)
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
                self.share_key(w, id, &mut row, &[(dev, owner)], now, after)?;
                w.put_group(&id, &row)?;
                continue;
            };
            let (key, first) = own.export_first();
            let seq = late_key_seq(row.next_seq, index, first);
            let body = Body::GroupKey {
                group: id,
                key,
                seq,
            };
            let bytes = encode_body(&body)?;
            self.enqueue_dev(w, dev, owner, bytes, now, after)?;
            row.out_shared.push(dev.0);
            w.put_group(&id, &row)?;
        }
        Ok(())
    }

    /// Queues this device's current group session key for `devices` (device key, owner).
    fn share_key(
        &mut self,
        w: &mut WriteTx<'_>,
        id: GroupId,
        row: &mut GroupRow,
        devices: &[(DeviceKey, IdentityKey)],
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(out) = restore(&mut self.groups.sending, id, row, &self.keys.storage) else {
            return Ok(());
        };
        let body = Body::GroupKey {
            group: id,
            key: out.session_key(),
            seq: current_key_seq(row.next_seq),
        };
        let bytes = encode_body(&body)?;
        for (dev, owner) in devices {
            self.enqueue_dev(w, *dev, *owner, bytes.clone(), now, after)?;
            if !row.out_shared.contains(dev.as_bytes()) {
                row.out_shared.push(dev.0);
            }
        }
        Ok(())
    }

    /// Makes sure this device has a session to send to `members` of group `id` with:
    /// renews one that has sent [`ROTATE_AFTER`](crate::cores::group_keys::ROTATE_AFTER)
    /// messages, and starts one when there is none (the core's `session_plan`). A new
    /// session's key goes to every member device known; members whose devices are not
    /// known yet are looked up (they get the session from its start once found).
    pub(super) fn sending_session(
        &mut self,
        w: &mut WriteTx<'_>,
        id: GroupId,
        row: &mut GroupRow,
        members: &BTreeSet<IdentityKey>,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let sent = restore(&mut self.groups.sending, id, row, &self.keys.storage)
            .map(|s| s.message_index());
        match session_plan(sent, row.out_session.is_some()) {
            SessionPlan::Keep => return Ok(()),
            SessionPlan::Start => {}
            SessionPlan::Renew => {
                self.groups.sending.drop_session(&id);
                row.out_session = None;
                row.out_shared.clear();
            }
        }
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
        self.groups.sending.insert(id, out);
        row.out_session = Some(String::new());
        row.out_shared.clear();
        let me = self.me;
        let devices: Vec<(DeviceKey, IdentityKey)> = member_devices(w.devices()?, members)?
            .into_iter()
            .map(|(k, d)| (k, d.identity))
            .collect();
        let known: HashSet<IdentityKey> = devices.iter().map(|(_, who)| *who).collect();
        for m in members_to_look_up(members, &me, &known) {
            after.push(After::Lookup(m));
        }
        self.share_key(w, id, row, &devices, now, after)
    }

    /// A member device's session key arrived pairwise.
    pub(in crate::actor) fn on_group_key(
        &mut self,
        w: &mut WriteTx<'_>,
        curve: CurveKey,
        group: GroupId,
        key: &[u8],
        seq: u64,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        self.take_group_key(w, curve, group, key, seq, Now::read(), after)
    }

    /// Takes a member device's session key (see `on_group_key`), or keeps it until the
    /// ops that make its sender (or us) a member arrive.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn take_group_key(
        &mut self,
        w: &mut WriteTx<'_>,
        curve: CurveKey,
        group: GroupId,
        key: &[u8],
        seq: u64,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
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
        let members = self.groups.states.get(&group).map(|s| &s.members);
        if !may_take_key(members, owner.as_ref(), &self.me) {
            self.groups.early_keys.hold(EarlyKey {
                group,
                curve,
                key: key.to_vec(),
                seq,
            });
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
            if let Some(mark) = first_key_mark(row.contiguous, seq) {
                row.contiguous = mark;
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
            self.open_place(w, group, &curve, s, &session, now, after)?;
        }
        Ok(())
    }

    /// Takes the keys that waited for a change of group `id` (those that still cannot be
    /// taken wait again).
    pub(super) fn take_early_keys(
        &mut self,
        w: &mut WriteTx<'_>,
        id: GroupId,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        for k in self.groups.early_keys.take(&id) {
            self.take_group_key(w, k.curve, k.group, &k.key, k.seq, now, after)?;
        }
        Ok(())
    }
}
