//! Group ops from peers: which a device takes, which wait, and how its own travel. A core
//! with no I/O: the actor (`crate::actor::groups::membership`) reads what a rule needs (is
//! the author a contact the user added, is this device a member) and does what it decides.
//! Which ops a group's log keeps (authors with the right, complete ancestry, bounded waiting)
//! is the rule of [`kith_proto::group::log`]; this core decides which ops reach a log.
//!
//! - **Groups this device is in.** An op of a group whose current state has this user as a
//!   member goes to its log ([`route`] → [`Route::Log`]); so does one of a group it was in
//!   when the op adds it back, or when an op waiting in the log names it (it is needed to
//!   place that one). Anything else of a group it is not in is ignored.
//! - **Invitations.** Ops of a group this device does not know wait in [`Invites`] (at most
//!   [`MAX_INVITES`] groups, [`MAX_INVITE_BYTES`] of encoded ops each; the oldest goes
//!   first) until
//!   they make this user a member; the group is then kept only if whoever made this user a
//!   member — the `Create` naming it or the `Add` — is a contact the user added
//!   ([`accept_invite`]). So strangers cannot make phantom groups at a device, nor fill its
//!   contacts with their made-up members.
//! - **Sending.** Ops go pairwise through the outbox, cut by [`cut_updates`] into bodies
//!   that fit a sealed payload, with the member certificates riding with the last ops.

use kith_proto::group::{GroupLog, GroupOp, GroupState, Inserted, OpKind};
use kith_proto::record::DeviceCert;
use kith_proto::wire::{Body, MAX_UPDATE_OPS};
use kith_types::{BoundedMap, GroupId, IdentityKey};

/// Encoded bytes of ops per `GroupUpdate` body (below the sealed-payload limit).
pub const UPDATE_BYTES: usize = 40 * 1024;
/// Member certificates per `GroupUpdate` body.
pub const UPDATE_CERTS: usize = 64;
/// Groups not yet joined whose ops are held until they make this user a member.
pub const MAX_INVITES: usize = 32;
/// Most encoded bytes of ops held per invitation (a stranger can fill every invitation it
/// starts: this bounds what it makes a device hold, 32 MiB in all; an honest log of a few
/// thousand ops fits).
pub const MAX_INVITE_BYTES: usize = 1 << 20;

/// Where an op from a peer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the group's log.
    Log,
    /// To the invitations (a group this device does not know).
    Invite,
    /// Nowhere: a group this device is not in.
    Ignore,
}

/// Where an op of group `known` (its current state, if this device knows the group) goes.
/// `wanted`: an op waiting in the group's log names it. `me`: this user. `from_contact`: the
/// body came from a contact the user added: only such a sender's ops of an unknown group are
/// held as an invitation (one the user would accept; whoever adds the user sends the whole
/// log), so a stranger's flood of `Create`s cannot push a real invitation out.
pub fn route(
    op: &GroupOp,
    known: Option<&GroupState>,
    wanted: bool,
    me: &IdentityKey,
    from_contact: bool,
) -> Route {
    let Some(state) = known else {
        return if from_contact {
            Route::Invite
        } else {
            Route::Ignore
        };
    };
    let adds_me = matches!(&op.kind, OpKind::Add(k) if k == me);
    if state.members.contains(me) || adds_me || wanted {
        Route::Log
    } else {
        Route::Ignore
    }
}

/// Who made `me` a member in the ops that took effect (the last to do so), if anyone.
pub fn made_member_by(log: &GroupLog, me: &IdentityKey) -> Option<IdentityKey> {
    if !log.current().members.contains(me) {
        return None;
    }
    log.applied()
        .iter()
        .rev()
        .find(|a| match &a.kind {
            OpKind::Create { members, .. } => members.iter().any(|m| m == me),
            OpKind::Add(k) => k == me,
            _ => false,
        })
        .map(|a| a.author)
}

/// Whether an invitation becomes a group of this device: it made `me` a member, by an author
/// the user added as a contact (`is_contact`).
pub fn accept_invite(
    log: &GroupLog,
    me: &IdentityKey,
    is_contact: impl Fn(&IdentityKey) -> bool,
) -> bool {
    made_member_by(log, me).is_some_and(|by| by != *me && is_contact(&by))
}

/// Groups this device does not know yet, with the ops seen of them.
#[derive(Debug)]
pub struct Invites(BoundedMap<GroupId, (GroupLog, usize)>);

impl Default for Invites {
    fn default() -> Self {
        Self(BoundedMap::new(MAX_INVITES))
    }
}

/// What [`Invites::offer`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    /// Held (a new invitation, or an op of one).
    Held,
    /// Not held: not a `Create` of an unknown invitation, refused by the log, or too many.
    Dropped,
}

impl Invites {
    /// Holds an op of group `id` (a `Create` starts an invitation).
    pub fn offer(&mut self, id: GroupId, op: GroupOp) -> Offered {
        let size = op.encode().map_or(usize::MAX, |b| b.len());
        if let Some((log, bytes)) = self.0.get_mut(&id) {
            if bytes.saturating_add(size) > MAX_INVITE_BYTES {
                return Offered::Dropped;
            }
            return match log.insert(op) {
                Ok(Inserted::Duplicate) | Err(_) => Offered::Dropped,
                Ok(_) => {
                    *bytes += size;
                    Offered::Held
                }
            };
        }
        if !matches!(op.kind, OpKind::Create { .. }) {
            return Offered::Dropped;
        }
        match GroupLog::new(op) {
            Ok(log) if log.id() == id => {
                self.0.insert(id, (log, size));
                Offered::Held
            }
            _ => Offered::Dropped,
        }
    }

    /// The invitation of group `id`, if held.
    pub fn get(&self, id: &GroupId) -> Option<&GroupLog> {
        self.0.get(id).map(|(log, _)| log)
    }

    /// Takes the invitation of group `id` out.
    pub fn take(&mut self, id: &GroupId) -> Option<GroupLog> {
        self.0.remove(id).map(|(log, _)| log)
    }

    /// How many invitations are held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Cuts ops and certificates into `GroupUpdate` bodies: ops in order, at most
/// [`UPDATE_BYTES`] of encoded ops and [`MAX_UPDATE_OPS`] ops per body; the certificates
/// ride with the last ops, [`UPDATE_CERTS`] per body, in bodies of their own if need be.
pub fn cut_updates(ops: &[GroupOp], certs: &[DeviceCert]) -> Vec<Body> {
    let mut bodies = Vec::new();
    let mut chunk: Vec<GroupOp> = Vec::new();
    let mut size = 0usize;
    for op in ops {
        let len = op.encode().map(|b| b.len()).unwrap_or(UPDATE_BYTES);
        if !chunk.is_empty() && (size + len > UPDATE_BYTES || chunk.len() >= MAX_UPDATE_OPS) {
            bodies.push(Body::GroupUpdate {
                ops: std::mem::take(&mut chunk),
                devices: Vec::new(),
            });
            size = 0;
        }
        size += len;
        chunk.push(op.clone());
    }
    let mut cert_chunks = certs.chunks(UPDATE_CERTS);
    bodies.push(Body::GroupUpdate {
        ops: chunk,
        devices: cert_chunks.next().map(|c| c.to_vec()).unwrap_or_default(),
    });
    for c in cert_chunks {
        bodies.push(Body::GroupUpdate {
            ops: Vec::new(),
            devices: c.to_vec(),
        });
    }
    bodies
}

#[cfg(test)]
mod tests;
