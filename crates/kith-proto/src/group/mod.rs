//! Group membership: signed operations and the one rule every member uses to turn a set of
//! them into the same group state.
//!
//! A group changes only through [`GroupOp`]s: create, add, remove, promote, demote, rename,
//! describe (by an admin) and leave (by a member, for itself). Each op is signed by its
//! author's identity key and names the ops its author had seen last (`parents`), so the ops
//! of a group form a graph that grows from one `Create`. The group's id is the first 16
//! bytes of the `Create` op's hash, so nobody can make a second root for the same group.
//!
//! **The rule.** Members may receive ops in any order, and admins may act concurrently. The
//! state is never updated incrementally: it is always computed from the whole set of ops
//! known ([`GroupLog::state`]). The ops are put in one order that every member computes the
//! same way — by depth in the graph (one more than the deepest parent), then by hash — and
//! applied one by one, each checked against the state it lands on: an op whose author is not
//! (or no longer) allowed to make it, or that changes nothing, is skipped. So two admins who
//! remove each other at the same time end with exactly one of them removed, the same one for
//! everybody, and a member who was removed cannot act after the op that removed them. A
//! group whose last admin leaves or is removed makes the remaining member with the smallest
//! identity key an admin, so a group is never left without one.
//!
//! Which ops a log keeps, and how ops whose parents are missing wait aside, is in [`log`].
//! Everything is bounded: members ([`MAX_GROUP_MEMBERS`]), parents per op, name and
//! description lengths, ops per log and per author, ops waiting.
//!
//! This module has no I/O and no clock: the caller gives it ops and reads the state.

use kith_types::{GroupId, IdentityKey, OpHash};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, DecodeError, EncodeError};
use crate::record::{signable, verify};

/// Most members of a group.
pub const MAX_GROUP_MEMBERS: usize = 1024;
/// Longest group name, in characters.
pub const MAX_GROUP_NAME: usize = 64;
/// Longest group description, in characters.
pub const MAX_DESCRIPTION: usize = 512;
/// Most parents one op names.
pub const MAX_PARENTS: usize = 8;
/// Most ops kept for one group.
pub const MAX_LOG_OPS: usize = 65_536;
/// Largest encoded op (a `Create` with a full member list).
pub const MAX_OP: usize = 48 * 1024;

/// What an op does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OpKind {
    /// Starts the group; the author is its first admin and a member.
    Create {
        /// The group's name.
        name: String,
        /// The other first members.
        members: Vec<IdentityKey>,
    },
    /// An admin adds a member.
    Add(IdentityKey),
    /// An admin removes a member (also from the admins).
    Remove(IdentityKey),
    /// An admin makes a member an admin.
    Promote(IdentityKey),
    /// An admin makes an admin a plain member again.
    Demote(IdentityKey),
    /// An admin renames the group.
    Rename(String),
    /// An admin changes the description.
    Describe(String),
    /// A member leaves.
    Leave,
}

/// A signed change to a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOp {
    /// The group's id (all zero in the `Create` op, whose hash makes the id).
    pub group: GroupId,
    /// The ops the author had seen last (none for `Create`).
    pub parents: Vec<OpHash>,
    /// The author's identity key.
    pub author: IdentityKey,
    /// The author's clock when it was made (shown in history; not used for ordering).
    pub at_ms: u64,
    /// The change.
    pub kind: OpKind,
    /// The author's signature over the other fields.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

#[derive(Serialize)]
struct OpBody<'a> {
    group: &'a GroupId,
    parents: &'a [OpHash],
    author: &'a IdentityKey,
    at_ms: u64,
    kind: &'a OpKind,
}

/// Why an op was not taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The op is malformed or its signature does not verify.
    #[error("bad group op: {0}")]
    Bad(#[from] DecodeError),
    /// The op belongs to another group.
    #[error("the op belongs to another group")]
    WrongGroup,
    /// The log (or the area for ops waiting for their parents, or the author's share of
    /// either) holds as many ops as it may.
    #[error("too many ops in this group")]
    Full,
    /// The author had no right to make this op where it stands (against the state of its
    /// ancestry), or it changes nothing there: an honest member never makes one.
    #[error("the op's author may not make it")]
    NotAllowed,
}

impl GroupOp {
    /// Makes and signs an op; `sign` signs with the author's identity key.
    pub fn new(
        group: GroupId,
        parents: Vec<OpHash>,
        author: IdentityKey,
        at_ms: u64,
        kind: OpKind,
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Result<Self, EncodeError> {
        let mut op = Self {
            group,
            parents,
            author,
            at_ms,
            kind,
            signature: Vec::new(),
        };
        op.signature = sign(&op.signing_bytes()?);
        Ok(op)
    }

    /// The bytes the author signs.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        signable(
            b"kith-group-op-v1",
            &OpBody {
                group: &self.group,
                parents: &self.parents,
                author: &self.author,
                at_ms: self.at_ms,
                kind: &self.kind,
            },
        )
    }

    /// The op's hash (over its whole encoding, signature included).
    pub fn hash(&self) -> Result<OpHash, EncodeError> {
        Ok(OpHash(Sha256::digest(codec::encode(self)?).into()))
    }

    /// The id of the group a `Create` op makes.
    pub fn group_id_of(create: &GroupOp) -> Result<GroupId, EncodeError> {
        let h = create.hash()?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&h.0[..16]);
        Ok(GroupId(id))
    }

    /// Encodes the op.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode(self)
    }

    /// Decodes an op and checks it on its own: sizes and the author's signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let op: GroupOp = codec::decode(bytes, MAX_OP)?;
        op.check()?;
        Ok(op)
    }

    /// Checks sizes and the signature (not whether the author may make it: that depends on
    /// the state, see the module docs).
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.parents.len() > MAX_PARENTS {
            return Err(DecodeError::Invalid("too many parents"));
        }
        let create = matches!(self.kind, OpKind::Create { .. });
        if create != self.parents.is_empty() {
            return Err(DecodeError::Invalid("only a create op has no parents"));
        }
        if create && self.group != GroupId::default() {
            return Err(DecodeError::Invalid("a create op names no group"));
        }
        match &self.kind {
            OpKind::Create { name, members } => {
                check_text(name, MAX_GROUP_NAME)?;
                if members.len() >= MAX_GROUP_MEMBERS {
                    return Err(DecodeError::Invalid("too many members"));
                }
            }
            OpKind::Rename(name) => check_text(name, MAX_GROUP_NAME)?,
            OpKind::Describe(text) => check_text(text, MAX_DESCRIPTION)?,
            _ => {}
        }
        let msg = self
            .signing_bytes()
            .map_err(|_| DecodeError::Invalid("unencodable op"))?;
        verify(&self.author.0, &msg, &self.signature)
    }
}

fn check_text(s: &str, max: usize) -> Result<(), DecodeError> {
    if s.chars().count() > max || s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(DecodeError::Invalid("group text"));
    }
    Ok(())
}

pub mod log;

#[cfg(test)]
use log::apply;
pub use log::{
    Applied, GroupLog, GroupState, Inserted, MAX_AUTHOR_OPS, MAX_PENDING, MAX_PENDING_PER_AUTHOR,
};

#[cfg(test)]
mod tests;
