use super::*;
use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;
use std::collections::BTreeSet;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

fn pk(i: u8) -> IdentityKey {
    IdentityKey(key(i).verifying_key().to_bytes())
}

fn op(g: GroupId, parents: Vec<OpHash>, by: u8, at: u64, kind: OpKind) -> GroupOp {
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
            members: vec![pk(2), pk(3)],
        },
    );
    (GroupLog::new(c.clone()).unwrap(), c)
}

#[test]
fn admins_change_the_group_and_members_cannot() {
    let (mut log, c) = created();
    let g = log.id();
    let root = vec![c.hash().unwrap()];
    assert_eq!(
        log.insert(op(g, root.clone(), 1, 1, OpKind::Add(pk(4))))
            .unwrap(),
        Inserted::Added(vec![])
    );
    // Bob is not an admin: his rename is refused.
    assert_eq!(
        log.insert(op(g, root.clone(), 2, 1, OpKind::Rename("Mine".into()))),
        Err(GroupError::NotAllowed)
    );
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
    let root = vec![c.hash().unwrap()];
    let mut forged = op(g, root.clone(), 2, 1, OpKind::Promote(pk(2)));
    forged.author = pk(1); // claims to be Alice
    assert!(matches!(log.insert(forged), Err(GroupError::Bad(_))));
    let add = op(g, root.clone(), 1, 1, OpKind::Add(pk(4)));
    assert_eq!(log.insert(add.clone()).unwrap(), Inserted::Added(vec![]));
    assert_eq!(log.insert(add).unwrap(), Inserted::Duplicate);
    let other = op(GroupId([9; 16]), root, 1, 1, OpKind::Add(pk(5)));
    assert_eq!(log.insert(other), Err(GroupError::WrongGroup));
    // A second create can never join an existing group.
    assert_eq!(log.insert(c), Err(GroupError::WrongGroup));
}

#[test]
fn concurrent_mutual_removal_ends_the_same_everywhere() {
    let (mut log, c) = created();
    let g = log.id();
    let root = vec![c.hash().unwrap()];
    let promote = op(g, root, 1, 1, OpKind::Promote(pk(2)));
    log.insert(promote.clone()).unwrap();
    let p = vec![promote.hash().unwrap()];
    // Alice and Bob, both admins, remove each other at the same time.
    let a = op(g, p.clone(), 1, 2, OpKind::Remove(pk(2)));
    let b = op(g, p, 2, 2, OpKind::Remove(pk(1)));
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
    let root = vec![c.hash().unwrap()];
    let add = op(g, root, 1, 1, OpKind::Add(pk(4)));
    let rename = op(
        g,
        vec![add.hash().unwrap()],
        1,
        2,
        OpKind::Rename("Clan".into()),
    );
    let rename_hash = rename.hash().unwrap();
    assert_eq!(
        log.insert(rename).unwrap(),
        Inserted::Missing(vec![add.hash().unwrap()])
    );
    assert_eq!(
        log.state().0.name,
        "Family",
        "not applied before its parent"
    );
    assert_eq!(log.insert(add).unwrap(), Inserted::Added(vec![rename_hash]));
    assert_eq!(log.state().0.name, "Clan");
}

#[test]
fn the_last_admin_leaving_leaves_an_admin_behind() {
    let (mut log, c) = created();
    let g = log.id();
    log.insert(op(g, vec![c.hash().unwrap()], 1, 1, OpKind::Leave))
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
        let mut heads = vec![c.hash().unwrap()];
        for (i, (by, what, who)) in actions.into_iter().enumerate() {
            let kind = match what {
                0 => OpKind::Add(pk(who)),
                1 => OpKind::Remove(pk(who)),
                2 => OpKind::Promote(pk(who)),
                3 => OpKind::Demote(pk(who)),
                4 => OpKind::Rename(format!("n{i}")),
                5 => OpKind::Describe(format!("d{i}")),
                _ => OpKind::Leave,
            };
            // Some ops build on the latest, some are concurrent with it.
            let parents = if i % 3 == 0 { vec![heads[0]] } else { heads.clone() };
            let o = op(g, parents, by, i as u64, kind);
            heads = vec![o.hash().unwrap()];
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

/// Bob (a plain member) sends ops naming parents nobody has: they wait aside, never become
/// heads, so Alice's removal of Bob builds on real ops only and takes effect.
#[test]
fn ops_with_made_up_parents_never_become_heads_and_a_removal_still_applies() {
    let (mut log, c) = created();
    let g = log.id();
    let heads_before = log.heads();
    for i in 0..10u8 {
        let junk = op(g, vec![OpHash([i; 32])], 2, u64::from(i), OpKind::Leave);
        assert!(matches!(log.insert(junk), Ok(Inserted::Missing(_))));
    }
    assert_eq!(log.heads(), heads_before, "junk is never a head");
    assert_eq!(log.pending(), 10);
    let remove = op(g, log.heads(), 1, 20, OpKind::Remove(pk(2)));
    assert_eq!(remove.parents, vec![c.hash().unwrap()]);
    assert!(matches!(log.insert(remove), Ok(Inserted::Added(_))));
    assert!(!log.state().0.members.contains(&pk(2)), "Bob is out");
}

/// Someone who is not a member, and a member who is not an admin, cannot make ops: they are
/// refused, not kept.
#[test]
fn strangers_and_plain_members_ops_are_refused() {
    let (mut log, c) = created();
    let g = log.id();
    let root = vec![c.hash().unwrap()];
    // Mallory (9) is no member.
    for kind in [
        OpKind::Add(pk(9)),
        OpKind::Remove(pk(1)),
        OpKind::Rename("pwned".into()),
        OpKind::Leave,
    ] {
        assert_eq!(
            log.insert(op(g, root.clone(), 9, 1, kind)),
            Err(GroupError::NotAllowed)
        );
    }
    // Bob is a member but no admin.
    assert_eq!(
        log.insert(op(g, root.clone(), 2, 1, OpKind::Remove(pk(1)))),
        Err(GroupError::NotAllowed)
    );
    // An admin's op that changes nothing is refused too (adding a member twice).
    assert_eq!(
        log.insert(op(g, root, 1, 1, OpKind::Add(pk(2)))),
        Err(GroupError::NotAllowed)
    );
    assert_eq!(log.len(), 1, "only the create is kept");
}

/// A removed member's later ops are refused: judged against the state of their ancestry,
/// where the author is gone.
#[test]
fn a_removed_member_cannot_act_after_its_removal() {
    let (mut log, c) = created();
    let g = log.id();
    let promote = op(g, vec![c.hash().unwrap()], 1, 1, OpKind::Promote(pk(2)));
    log.insert(promote.clone()).unwrap();
    let remove = op(g, log.heads(), 1, 2, OpKind::Remove(pk(2)));
    log.insert(remove).unwrap();
    let late = op(g, log.heads(), 2, 3, OpKind::Remove(pk(1)));
    assert_eq!(log.insert(late), Err(GroupError::NotAllowed));
    // Made concurrent with the removal (on the promote), it is kept but comes after the
    // removal in the order only if it sorts there; either way every member agrees.
    let concurrent = op(
        g,
        vec![promote.hash().unwrap()],
        2,
        3,
        OpKind::Rename("B".into()),
    );
    assert!(matches!(log.insert(concurrent), Ok(Inserted::Added(_))));
}

/// The area for ops waiting for parents is bounded per author and in all; another author's
/// op still finds room once one author is at its share.
#[test]
fn ops_waiting_for_parents_are_bounded_per_author() {
    let (mut log, _) = created();
    let g = log.id();
    let mut n = 0u64;
    loop {
        let junk = op(g, vec![OpHash([7; 32])], 2, n, OpKind::Leave);
        n += 1;
        match log.insert(junk) {
            Ok(Inserted::Missing(_)) => {}
            Err(GroupError::Full) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(log.pending(), MAX_PENDING_PER_AUTHOR);
    let carol = op(g, vec![OpHash([8; 32])], 3, 0, OpKind::Leave);
    assert!(matches!(log.insert(carol), Ok(Inserted::Missing(_))));
}

/// A log rebuilt from stored ops (in any order, junk among them) is the log that took them.
#[test]
fn a_restored_log_is_the_same_and_drops_junk() {
    let (mut log, c) = created();
    let g = log.id();
    let mut stored = Vec::new();
    for i in 0..30u64 {
        let kind = if i % 2 == 0 {
            OpKind::Rename(format!("n{i}"))
        } else {
            OpKind::Describe(format!("d{i}"))
        };
        let o = op(g, log.heads(), 1, i, kind);
        log.insert(o.clone()).unwrap();
        stored.push(o);
    }
    stored.push(op(g, log.heads(), 9, 99, OpKind::Rename("junk".into())));
    stored.push(op(
        g,
        vec![OpHash([3; 32])],
        1,
        99,
        OpKind::Rename("orphan".into()),
    ));
    stored.reverse();
    let restored = GroupLog::restore(c, stored).unwrap();
    assert_eq!(restored.state(), log.state());
    assert_eq!(restored.len(), log.len());
    assert_eq!(restored.heads(), log.heads());
}
