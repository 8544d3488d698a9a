//! The log of one group: which ops it takes, and the state they make.
//!
//! **What the log keeps.** Only ops whose whole ancestry is in the log and whose author had
//! the right to make them, judged against the state of that ancestry (its *causal state*):
//! an admin for add, remove, promote, demote, rename and describe; a member for leave; and
//! the op must change something there. This is a function of the op and its ancestors
//! alone, so every member keeps the same ops whatever else it holds or in what order ops
//! come; an honest member never makes an op it would refuse itself, so a refused op is
//! always someone's forgery of intent and its sender can be penalised.
//!
//! **What waits aside.** An op naming parents the log lacks waits in a bounded area
//! ([`MAX_PENDING`] per group, [`MAX_PENDING_PER_AUTHOR`] per author) and is neither a head
//! nor part of the state until its ancestry arrives; then it is judged like any other. So
//! an op with made-up parents can never become a parent of an honest op, and never stalls
//! one.
//!
//! **The order.** Each op's depth (one more than its deepest parent) is fixed when it
//! enters, and the log keeps its ops sorted by (depth, hash): the state is one pass over
//! them ([`apply`] each in turn), linear in the log. An op that sorts after every other
//! (the usual case: it names the heads) is applied to the cached state at once.

use std::collections::{BTreeSet, HashMap};

use kith_types::{GroupId, IdentityKey, OpHash};

use super::{GroupError, GroupOp, MAX_GROUP_MEMBERS, MAX_LOG_OPS, MAX_PARENTS, OpKind};
use crate::codec::DecodeError;

/// Most ops waiting for their parents, per group.
pub const MAX_PENDING: usize = 256;
/// Most ops of one author waiting for their parents, per group.
pub const MAX_PENDING_PER_AUTHOR: usize = 64;
/// Most ops of one author in a log, beyond which more are refused unless an op waiting
/// aside names them (then they are needed to place it).
pub const MAX_AUTHOR_OPS: usize = 4096;

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
    pub members: BTreeSet<IdentityKey>,
    /// Its admins (a subset of the members).
    pub admins: BTreeSet<IdentityKey>,
}

/// An op that took effect, in order (for the history: "Alice added Dave").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The op's hash.
    pub hash: OpHash,
    /// Who made it.
    pub author: IdentityKey,
    /// When (the author's clock).
    pub at_ms: u64,
    /// What it did.
    pub kind: OpKind,
}

/// What [`GroupLog::insert`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Taken into the log, with the hashes of ops that waited for it and were taken too
    /// (in the order they were taken).
    Added(Vec<OpHash>),
    /// Known already (a replay or a second copy): nothing changed.
    Duplicate,
    /// Waits aside: these parents are unknown (fetch them). The state ignores it until then.
    Missing(Vec<OpHash>),
}

#[derive(Clone, Debug)]
struct Held {
    op: GroupOp,
    depth: u64,
}

/// The ops of one group.
#[derive(Clone, Debug)]
pub struct GroupLog {
    id: GroupId,
    ops: HashMap<OpHash, Held>,
    /// Every op of `ops` by (depth, hash): the order in which they apply.
    order: BTreeSet<(u64, OpHash)>,
    /// The ops no other op names.
    heads: BTreeSet<OpHash>,
    /// Ops in the log per author.
    by_author: HashMap<IdentityKey, usize>,
    /// Ops waiting for parents.
    pending: HashMap<OpHash, GroupOp>,
    /// The state of the whole log and the ops that took effect, in order.
    state: GroupState,
    applied: Vec<Applied>,
}

impl GroupLog {
    /// A log started from the group's `Create` op.
    pub fn new(create: GroupOp) -> Result<Self, GroupError> {
        create.check()?;
        if !matches!(create.kind, OpKind::Create { .. }) {
            return Err(GroupError::Bad(DecodeError::Invalid("not a create op")));
        }
        let id = GroupOp::group_id_of(&create).map_err(|_| unencodable())?;
        let hash = create.hash().map_err(|_| unencodable())?;
        let mut log = Self {
            id,
            ops: HashMap::new(),
            order: BTreeSet::new(),
            heads: BTreeSet::new(),
            by_author: HashMap::new(),
            pending: HashMap::new(),
            state: GroupState {
                id,
                ..Default::default()
            },
            applied: Vec::new(),
        };
        log.take(hash, create, 0);
        Ok(log)
    }

    /// A log rebuilt from ops kept earlier (the store's copy), judged again as they enter:
    /// ops that would not be taken now (or whose ancestry is not among them) are left out.
    pub fn restore(
        create: GroupOp,
        ops: impl IntoIterator<Item = GroupOp>,
    ) -> Result<Self, GroupError> {
        let mut log = Self::new(create)?;
        // Parents before children, so that nothing waits and every op is appended.
        let mut rest: HashMap<OpHash, GroupOp> = HashMap::new();
        for op in ops {
            if op.check().is_ok()
                && !matches!(op.kind, OpKind::Create { .. })
                && op.group == log.id
                && let Ok(h) = op.hash()
            {
                rest.insert(h, op);
            }
        }
        let mut children: HashMap<OpHash, Vec<OpHash>> = HashMap::new();
        let mut waiting: HashMap<OpHash, usize> = HashMap::new();
        let mut ready: Vec<OpHash> = Vec::new();
        for (h, op) in &rest {
            let parents: BTreeSet<OpHash> = op.parents.iter().copied().collect();
            let unknown = parents.iter().filter(|p| rest.contains_key(*p)).count();
            for p in &parents {
                children.entry(*p).or_default().push(*h);
            }
            if unknown == 0 {
                ready.push(*h);
            } else {
                waiting.insert(*h, unknown);
            }
        }
        // Kahn's order by (depth, hash) batches: take every ready op, then their children.
        while !ready.is_empty() {
            let mut batch: Vec<(u64, OpHash)> = Vec::new();
            for h in ready.drain(..) {
                if let Some(op) = rest.get(&h)
                    && let Some(d) = log.depth_of(op)
                {
                    batch.push((d, h));
                }
            }
            batch.sort();
            for (_, h) in batch {
                if let Some(op) = rest.remove(&h) {
                    let _ = log.admit(h, op, true);
                }
                for c in children.remove(&h).unwrap_or_default() {
                    if let Some(n) = waiting.get_mut(&c) {
                        *n -= 1;
                        if *n == 0 {
                            waiting.remove(&c);
                            ready.push(c);
                        }
                    }
                }
            }
        }
        Ok(log)
    }

    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// How many ops the log holds (not counting those waiting aside).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Always false: a log holds at least its `Create`.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// How many ops wait aside for their parents.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether an op waiting aside names this hash as a parent (so the op is needed).
    pub fn wants(&self, hash: &OpHash) -> bool {
        self.pending.values().any(|o| o.parents.contains(hash))
    }

    /// Adds an op received from anywhere: checked (signature, group, sizes), then taken,
    /// set aside for its parents, or refused (see the module docs).
    pub fn insert(&mut self, op: GroupOp) -> Result<Inserted, GroupError> {
        op.check()?;
        if matches!(op.kind, OpKind::Create { .. }) || op.group != self.id {
            return Err(GroupError::WrongGroup);
        }
        let hash = op.hash().map_err(|_| unencodable())?;
        if self.ops.contains_key(&hash) || self.pending.contains_key(&hash) {
            return Ok(Inserted::Duplicate);
        }
        let missing: Vec<OpHash> = op
            .parents
            .iter()
            .copied()
            .filter(|p| !self.ops.contains_key(p))
            .collect();
        if !missing.is_empty() {
            let mine = self
                .pending
                .values()
                .filter(|o| o.author == op.author)
                .count();
            if self.pending.len() >= MAX_PENDING || mine >= MAX_PENDING_PER_AUTHOR {
                return Err(GroupError::Full);
            }
            self.pending.insert(hash, op);
            let ask: Vec<OpHash> = missing
                .into_iter()
                .filter(|p| !self.pending.contains_key(p))
                .collect();
            return Ok(Inserted::Missing(ask));
        }
        let wanted = self.wants(&hash);
        self.admit(hash, op, wanted)?;
        Ok(Inserted::Added(self.release(hash)))
    }

    /// Takes the ops that waited for `hash` (and for them, in turn) whose ancestry is now
    /// complete. Returns their hashes in the order taken.
    fn release(&mut self, hash: OpHash) -> Vec<OpHash> {
        let mut out = Vec::new();
        let mut arrived = vec![hash];
        while let Some(h) = arrived.pop() {
            let mut ready: Vec<(u64, OpHash)> = self
                .pending
                .iter()
                .filter(|(_, o)| o.parents.contains(&h))
                .filter_map(|(ph, o)| self.depth_of(o).map(|d| (d, *ph)))
                .collect();
            ready.sort();
            for (_, ph) in ready {
                let Some(op) = self.pending.remove(&ph) else {
                    continue;
                };
                let wanted = self.wants(&ph);
                if self.admit(ph, op, wanted).is_ok() {
                    out.push(ph);
                    arrived.push(ph);
                }
            }
        }
        out
    }

    /// Judges an op whose parents are all in the log, and takes it if it passes. `needed`:
    /// an op waiting aside names it (the author's quota does not apply).
    fn admit(&mut self, hash: OpHash, op: GroupOp, needed: bool) -> Result<(), GroupError> {
        let Some(depth) = self.depth_of(&op) else {
            return Err(GroupError::Bad(DecodeError::Invalid("missing parents")));
        };
        if self.ops.len() >= MAX_LOG_OPS {
            return Err(GroupError::Full);
        }
        if !needed && self.by_author.get(&op.author).copied().unwrap_or(0) >= MAX_AUTHOR_OPS {
            return Err(GroupError::Full);
        }
        let mut causal = self.state_at(&op.parents);
        if !apply(&mut causal, &op) {
            return Err(GroupError::NotAllowed);
        }
        self.take(hash, op, depth);
        Ok(())
    }

    /// Puts a judged op in the log and brings the state up to date.
    fn take(&mut self, hash: OpHash, op: GroupOp, depth: u64) {
        let last = self.order.last().is_none_or(|l| *l < (depth, hash));
        for p in &op.parents {
            self.heads.remove(p);
        }
        self.heads.insert(hash);
        *self.by_author.entry(op.author).or_default() += 1;
        self.order.insert((depth, hash));
        self.ops.insert(hash, Held { op, depth });
        if last {
            if let Some(h) = self.ops.get(&hash) {
                let op = h.op.clone();
                if apply(&mut self.state, &op) {
                    self.applied.push(applied(hash, &op));
                }
            }
        } else {
            let (state, applied) = self.compute(self.order.iter().map(|(_, h)| *h));
            self.state = state;
            self.applied = applied;
        }
    }

    /// One more than the deepest parent; `None` when a parent is not in the log.
    fn depth_of(&self, op: &GroupOp) -> Option<u64> {
        let mut d = 0;
        for p in &op.parents {
            d = d.max(self.ops.get(p)?.depth + 1);
        }
        Some(d)
    }

    /// The state made by these ops and all their ancestors (all in the log).
    fn state_at(&self, parents: &[OpHash]) -> GroupState {
        let names: BTreeSet<OpHash> = parents.iter().copied().collect();
        if names.is_superset(&self.heads) {
            return self.state.clone();
        }
        let mut seen: BTreeSet<(u64, OpHash)> = BTreeSet::new();
        let mut stack: Vec<OpHash> = names.into_iter().collect();
        while let Some(h) = stack.pop() {
            let Some(held) = self.ops.get(&h) else {
                continue;
            };
            if seen.insert((held.depth, h)) {
                stack.extend(held.op.parents.iter().copied());
            }
        }
        self.compute(seen.into_iter().map(|(_, h)| h)).0
    }

    /// Applies ops (given in order) from the empty state.
    fn compute(&self, order: impl Iterator<Item = OpHash>) -> (GroupState, Vec<Applied>) {
        let mut st = GroupState {
            id: self.id,
            ..Default::default()
        };
        let mut out = Vec::new();
        for h in order {
            if let Some(held) = self.ops.get(&h)
                && apply(&mut st, &held.op)
            {
                out.push(applied(h, &held.op));
            }
        }
        (st, out)
    }

    /// The ops no other op names as a parent: what a new op should name (only ops whose
    /// ancestry is complete; never an op waiting aside).
    pub fn heads(&self) -> Vec<OpHash> {
        self.heads.iter().take(MAX_PARENTS).copied().collect()
    }

    /// Every op in the log, in the order they apply (`Create` first).
    pub fn ops(&self) -> impl Iterator<Item = &GroupOp> {
        self.order
            .iter()
            .filter_map(|(_, h)| self.ops.get(h).map(|held| &held.op))
    }

    /// An op of the log by its hash (to answer a member who is missing it).
    pub fn get(&self, hash: &OpHash) -> Option<&GroupOp> {
        self.ops.get(hash).map(|h| &h.op)
    }

    /// The state, and the ops that took effect in order.
    pub fn state(&self) -> (GroupState, Vec<Applied>) {
        (self.state.clone(), self.applied.clone())
    }

    /// The state alone (no copy).
    pub fn current(&self) -> &GroupState {
        &self.state
    }

    /// The ops that took effect, in order (no copy).
    pub fn applied(&self) -> &[Applied] {
        &self.applied
    }
}

fn unencodable() -> GroupError {
    GroupError::Bad(DecodeError::Invalid("unencodable op"))
}

fn applied(hash: OpHash, op: &GroupOp) -> Applied {
    Applied {
        hash,
        author: op.author,
        at_ms: op.at_ms,
        kind: op.kind.clone(),
    }
}

/// Applies one op to the state if its author may make it and it changes something.
pub(super) fn apply(st: &mut GroupState, op: &GroupOp) -> bool {
    let author = op.author;
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
                st.members.insert(*m);
            }
            true
        }
        OpKind::Add(m) => admin && st.members.len() < MAX_GROUP_MEMBERS && st.members.insert(*m),
        OpKind::Remove(m) => {
            admin && {
                st.admins.remove(m);
                st.members.remove(m)
            }
        }
        OpKind::Promote(m) => admin && st.members.contains(m) && st.admins.insert(*m),
        OpKind::Demote(m) => admin && st.admins.remove(m),
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
