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
//! An op whose parents are not known yet is kept aside by the caller and added once they
//! arrive ([`Inserted::Missing`] says which to fetch). Everything is bounded: members
//! ([`MAX_GROUP_MEMBERS`]), parents per op, name and description lengths, ops per log.
//!
//! This module has no I/O and no clock: the caller gives it ops and reads the state.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kith_types::GroupId;
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

/// A 32-byte key (an identity, or an op's hash), encoded as a byte string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key(#[serde(with = "serde_bytes")] pub [u8; 32]);

/// What an op does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OpKind {
    /// Starts the group; the author is its first admin and a member.
    Create {
        /// The group's name.
        name: String,
        /// The other first members.
        members: Vec<Key>,
    },
    /// An admin adds a member.
    Add(Key),
    /// An admin removes a member (also from the admins).
    Remove(Key),
    /// An admin makes a member an admin.
    Promote(Key),
    /// An admin makes an admin a plain member again.
    Demote(Key),
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
    pub parents: Vec<Key>,
    /// The author's identity key.
    pub author: Key,
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
    parents: &'a [Key],
    author: &'a Key,
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
    /// The log holds as many ops as it may.
    #[error("too many ops in this group")]
    Full,
}

impl GroupOp {
    /// Makes and signs an op; `sign` signs with the author's identity key.
    pub fn new(
        group: GroupId,
        parents: Vec<Key>,
        author: [u8; 32],
        at_ms: u64,
        kind: OpKind,
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Result<Self, EncodeError> {
        let mut op = Self {
            group,
            parents,
            author: Key(author),
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
    pub fn hash(&self) -> Result<[u8; 32], EncodeError> {
        Ok(Sha256::digest(codec::encode(self)?).into())
    }

    /// The id of the group a `Create` op makes.
    pub fn group_id_of(create: &GroupOp) -> Result<GroupId, EncodeError> {
        let h = create.hash()?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&h[..16]);
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

/// The state of a group, as every member computes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupState {
    /// The group's id.
    pub id: GroupId,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its members (identity keys).
    pub members: BTreeSet<[u8; 32]>,
    /// Its admins (a subset of the members).
    pub admins: BTreeSet<[u8; 32]>,
}

/// An op that took effect, in order (for the history: "Alice added Dave").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The op's hash.
    pub hash: [u8; 32],
    /// Who made it.
    pub author: [u8; 32],
    /// When (the author's clock).
    pub at_ms: u64,
    /// What it did.
    pub kind: OpKind,
}

/// What [`GroupLog::insert`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// New, and its parents are known.
    Added,
    /// Known already (a replay or a second copy): nothing changed.
    Duplicate,
    /// Kept, but these parents are unknown: fetch them; the state ignores the op until then.
    Missing(Vec<[u8; 32]>),
}

/// The ops of one group.
#[derive(Clone, Debug)]
pub struct GroupLog {
    id: GroupId,
    ops: HashMap<[u8; 32], GroupOp>,
}

impl GroupLog {
    /// A log started from the group's `Create` op.
    pub fn new(create: GroupOp) -> Result<Self, GroupError> {
        create.check()?;
        if !matches!(create.kind, OpKind::Create { .. }) {
            return Err(GroupError::Bad(DecodeError::Invalid("not a create op")));
        }
        let id = GroupOp::group_id_of(&create)
            .map_err(|_| GroupError::Bad(DecodeError::Invalid("unencodable op")))?;
        let hash = create
            .hash()
            .map_err(|_| GroupError::Bad(DecodeError::Invalid("unencodable op")))?;
        let mut ops = HashMap::new();
        ops.insert(hash, create);
        Ok(Self { id, ops })
    }

    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// How many ops it holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Always false: a log holds at least its `Create`.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Adds an op received from anywhere (checked: signature, group, sizes).
    pub fn insert(&mut self, op: GroupOp) -> Result<Inserted, GroupError> {
        op.check()?;
        if matches!(op.kind, OpKind::Create { .. }) || op.group != self.id {
            return Err(GroupError::WrongGroup);
        }
        let hash = op
            .hash()
            .map_err(|_| GroupError::Bad(DecodeError::Invalid("unencodable op")))?;
        if self.ops.contains_key(&hash) {
            return Ok(Inserted::Duplicate);
        }
        if self.ops.len() >= MAX_LOG_OPS {
            return Err(GroupError::Full);
        }
        let missing: Vec<[u8; 32]> = op
            .parents
            .iter()
            .map(|p| p.0)
            .filter(|p| !self.ops.contains_key(p))
            .collect();
        self.ops.insert(hash, op);
        Ok(if missing.is_empty() {
            Inserted::Added
        } else {
            Inserted::Missing(missing)
        })
    }

    /// The ops no other op names as a parent: what a new op should name.
    pub fn heads(&self) -> Vec<Key> {
        let named: BTreeSet<[u8; 32]> = self
            .ops
            .values()
            .flat_map(|o| o.parents.iter().map(|p| p.0))
            .collect();
        let mut heads: Vec<Key> = self
            .ops
            .keys()
            .filter(|h| !named.contains(*h))
            .map(|h| Key(*h))
            .collect();
        heads.sort();
        heads.truncate(MAX_PARENTS);
        heads
    }

    /// Every op held, in no particular order.
    pub fn ops(&self) -> impl Iterator<Item = &GroupOp> {
        self.ops.values()
    }

    /// An op by its hash (to answer a member who is missing it).
    pub fn get(&self, hash: &[u8; 32]) -> Option<&GroupOp> {
        self.ops.get(hash)
    }

    /// The state, and the ops that took effect in order. Ops whose ancestry is not complete
    /// yet are left out until it is.
    pub fn state(&self) -> (GroupState, Vec<Applied>) {
        // Depth of every op whose ancestors are all known (iteratively, no recursion).
        let mut depth: HashMap<[u8; 32], u64> = HashMap::new();
        let mut changed = true;
        while changed {
            changed = false;
            for (h, op) in &self.ops {
                if depth.contains_key(h) {
                    continue;
                }
                if op.parents.is_empty() {
                    depth.insert(*h, 0);
                    changed = true;
                    continue;
                }
                let mut d = 0u64;
                let mut ready = true;
                for p in &op.parents {
                    match depth.get(&p.0) {
                        Some(pd) => d = d.max(pd + 1),
                        None => {
                            ready = false;
                            break;
                        }
                    }
                }
                if ready {
                    depth.insert(*h, d);
                    changed = true;
                }
            }
        }
        let order: BTreeMap<(u64, [u8; 32]), &GroupOp> = depth
            .iter()
            .filter_map(|(h, d)| self.ops.get(h).map(|op| ((*d, *h), op)))
            .collect();
        let mut st = GroupState {
            id: self.id,
            ..Default::default()
        };
        let mut applied = Vec::new();
        for ((_, hash), op) in order {
            if apply(&mut st, op) {
                applied.push(Applied {
                    hash,
                    author: op.author.0,
                    at_ms: op.at_ms,
                    kind: op.kind.clone(),
                });
            }
        }
        (st, applied)
    }
}

/// Applies one op to the state if its author may make it and it changes something.
fn apply(st: &mut GroupState, op: &GroupOp) -> bool {
    let author = op.author.0;
    let admin = st.admins.contains(&author);
    let done = match &op.kind {
        OpKind::Create { name, members } => {
            if !st.members.is_empty() {
                return false;
            }
            st.name = name.clone();
            st.members.insert(author);
            st.admins.insert(author);
            for m in members.iter().take(MAX_GROUP_MEMBERS - 1) {
                st.members.insert(m.0);
            }
            true
        }
        OpKind::Add(m) => admin && st.members.len() < MAX_GROUP_MEMBERS && st.members.insert(m.0),
        OpKind::Remove(m) => {
            admin && {
                st.admins.remove(&m.0);
                st.members.remove(&m.0)
            }
        }
        OpKind::Promote(m) => admin && st.members.contains(&m.0) && st.admins.insert(m.0),
        OpKind::Demote(m) => admin && st.admins.remove(&m.0),
        OpKind::Rename(n) => {
            admin && *n != st.name && {
                st.name = n.clone();
                true
            }
        }
        OpKind::Describe(d) => {
            admin && *d != st.description && {
                st.description = d.clone();
                true
            }
        }
        OpKind::Leave => {
            st.admins.remove(&author);
            st.members.remove(&author)
        }
    };
    // Never without an admin while anyone is left.
    if done
        && st.admins.is_empty()
        && let Some(first) = st.members.iter().next().copied()
    {
        st.admins.insert(first);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use proptest::prelude::*;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    fn pk(i: u8) -> [u8; 32] {
        key(i).verifying_key().to_bytes()
    }

    fn op(g: GroupId, parents: Vec<Key>, by: u8, at: u64, kind: OpKind) -> GroupOp {
        let k = key(by);
        GroupOp::new(g, parents, pk(by), at, kind, |m| {
            k.sign(m).to_bytes().to_vec()
        })
        .unwrap()
    }

    /// Alice (1) creates a group with Bob (2) and Carol (3).
    fn created() -> (GroupLog, GroupOp) {
        let c = op(
            GroupId::default(),
            vec![],
            1,
            0,
            OpKind::Create {
                name: "Family".into(),
                members: vec![Key(pk(2)), Key(pk(3))],
            },
        );
        (GroupLog::new(c.clone()).unwrap(), c)
    }

    #[test]
    fn admins_change_the_group_and_members_cannot() {
        let (mut log, c) = created();
        let g = log.id();
        let root = vec![Key(c.hash().unwrap())];
        assert_eq!(
            log.insert(op(g, root.clone(), 1, 1, OpKind::Add(Key(pk(4)))))
                .unwrap(),
            Inserted::Added
        );
        // Bob is not an admin: his rename is skipped.
        log.insert(op(g, root.clone(), 2, 1, OpKind::Rename("Mine".into())))
            .unwrap();
        let (st, applied) = log.state();
        assert_eq!(st.name, "Family");
        assert!(st.members.contains(&pk(4)));
        assert_eq!(
            applied.len(),
            2,
            "create and add took effect, the rename did not"
        );
        assert_eq!(st.admins, BTreeSet::from([pk(1)]));
    }

    #[test]
    fn forged_replayed_and_foreign_ops_are_refused() {
        let (mut log, c) = created();
        let g = log.id();
        let root = vec![Key(c.hash().unwrap())];
        let mut forged = op(g, root.clone(), 2, 1, OpKind::Promote(Key(pk(2))));
        forged.author = Key(pk(1)); // claims to be Alice
        assert!(matches!(log.insert(forged), Err(GroupError::Bad(_))));
        let add = op(g, root.clone(), 1, 1, OpKind::Add(Key(pk(4))));
        assert_eq!(log.insert(add.clone()).unwrap(), Inserted::Added);
        assert_eq!(log.insert(add).unwrap(), Inserted::Duplicate);
        let other = op(GroupId([9; 16]), root, 1, 1, OpKind::Add(Key(pk(5))));
        assert_eq!(log.insert(other), Err(GroupError::WrongGroup));
        // A second create can never join an existing group.
        assert_eq!(log.insert(c), Err(GroupError::WrongGroup));
    }

    #[test]
    fn concurrent_mutual_removal_ends_the_same_everywhere() {
        let (mut log, c) = created();
        let g = log.id();
        let root = vec![Key(c.hash().unwrap())];
        let promote = op(g, root, 1, 1, OpKind::Promote(Key(pk(2))));
        log.insert(promote.clone()).unwrap();
        let p = vec![Key(promote.hash().unwrap())];
        // Alice and Bob, both admins, remove each other at the same time.
        let a = op(g, p.clone(), 1, 2, OpKind::Remove(Key(pk(2))));
        let b = op(g, p, 2, 2, OpKind::Remove(Key(pk(1))));
        let mut one = log.clone();
        one.insert(a.clone()).unwrap();
        one.insert(b.clone()).unwrap();
        let mut two = log.clone();
        two.insert(b).unwrap();
        two.insert(a).unwrap();
        let (s1, _) = one.state();
        let (s2, _) = two.state();
        assert_eq!(s1, s2);
        assert_eq!(s1.members.len(), 2, "exactly one of them is out: {s1:?}");
        assert_eq!(s1.admins.len(), 1);
    }

    #[test]
    fn an_op_waits_for_its_parents() {
        let (mut log, c) = created();
        let g = log.id();
        let root = vec![Key(c.hash().unwrap())];
        let add = op(g, root, 1, 1, OpKind::Add(Key(pk(4))));
        let rename = op(
            g,
            vec![Key(add.hash().unwrap())],
            1,
            2,
            OpKind::Rename("Clan".into()),
        );
        assert_eq!(
            log.insert(rename).unwrap(),
            Inserted::Missing(vec![add.hash().unwrap()])
        );
        assert_eq!(
            log.state().0.name,
            "Family",
            "not applied before its parent"
        );
        log.insert(add).unwrap();
        assert_eq!(log.state().0.name, "Clan");
    }

    #[test]
    fn the_last_admin_leaving_leaves_an_admin_behind() {
        let (mut log, c) = created();
        let g = log.id();
        log.insert(op(g, vec![Key(c.hash().unwrap())], 1, 1, OpKind::Leave))
            .unwrap();
        let (st, _) = log.state();
        assert!(!st.members.contains(&pk(1)));
        assert_eq!(st.admins.len(), 1);
        assert!(st.members.is_superset(&st.admins));
    }

    #[test]
    fn ops_roundtrip_and_garbage_is_refused() {
        let (_, c) = created();
        assert_eq!(GroupOp::decode(&c.encode().unwrap()).unwrap(), c);
        let mut bad = c.encode().unwrap();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(GroupOp::decode(&bad).is_err());
    }

    proptest! {
        /// Members receive the same ops in any order, some twice: all end in one state, in
        /// which admins are members and nobody removed acts afterwards.
        #[test]
        fn any_delivery_order_gives_the_same_state(
            actions in proptest::collection::vec((1u8..6, 0u8..8, 1u8..7), 1..40),
            seed in any::<u64>(),
        ) {
            let (log, c) = created();
            let g = log.id();
            let mut ops = Vec::new();
            let mut heads = vec![Key(c.hash().unwrap())];
            for (i, (by, what, who)) in actions.into_iter().enumerate() {
                let kind = match what {
                    0 => OpKind::Add(Key(pk(who))),
                    1 => OpKind::Remove(Key(pk(who))),
                    2 => OpKind::Promote(Key(pk(who))),
                    3 => OpKind::Demote(Key(pk(who))),
                    4 => OpKind::Rename(format!("n{i}")),
                    5 => OpKind::Describe(format!("d{i}")),
                    _ => OpKind::Leave,
                };
                // Some ops build on the latest, some are concurrent with it.
                let parents = if i % 3 == 0 { vec![heads[0]] } else { heads.clone() };
                let o = op(g, parents, by, i as u64, kind);
                heads = vec![Key(o.hash().unwrap())];
                ops.push(o);
            }
            let mut a = log.clone();
            for o in &ops {
                let _ = a.insert(o.clone());
            }
            // Another member: a shuffled order, with repeats.
            let mut shuffled = ops.clone();
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            shuffled.extend(ops.iter().take(3).cloned());
            let mut b = log.clone();
            for o in shuffled {
                let _ = b.insert(o);
            }
            let (sa, applied) = a.state();
            let (sb, _) = b.state();
            prop_assert_eq!(&sa, &sb);
            prop_assert!(sa.members.is_superset(&sa.admins));
            prop_assert!(sa.members.is_empty() || !sa.admins.is_empty());
            // Replaying the applied ops by hand never lets a non-admin act.
            let mut st = GroupState::default();
            for ap in &applied {
                if !matches!(ap.kind, OpKind::Create { .. } | OpKind::Leave) {
                    prop_assert!(st.admins.contains(&ap.author));
                }
                let o = a.get(&ap.hash).unwrap();
                apply(&mut st, o);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = GroupOp::decode(&bytes);
        }
    }
}
